// SPDX-License-Identifier: MIT
/*
 * The daemon's shelves a ctx holds a read-only fd of, by id. The daemon
 * sends a shelf's fd once per session (with an area, or a page, or when
 * asked); from then on the directory's ring_loc says where each later area
 * or member page of that shelf is, so the first record of a new writer, or
 * the first send past a new member, needs no round trip. A few are kept
 * (each is an fd of ours): past that, the least recently used goes, and a
 * range of it costs one question to the daemon again.
 *
 * Mapping each area or page on its own costs a mapping and its syscalls
 * on the first record of every writer in every group (tens of microseconds
 * on a cold CPU: most of a message's latency in 10,000 quiet groups). So
 * a ctx maps its shelves by WINDOWS, read-only: one mapping serves every
 * range of the shelf inside it. Windows start every CTX_WINDOW_STEP bytes
 * of the shelf and span twice that, so a range up to the step lies wholly
 * in one. They are address space only (touched pages are the ranges
 * read) and reach nothing the shelf's fd did not. Each counts the areas and
 * pages that point into it; one nobody points into stays for the next
 * ranges only among the few most recently used (windows_trim), as a
 * shelf's ranges only move forward: a long-lived member of groups that
 * come and go holds a few windows, not one per 512 MiB ever handed out.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client.h"

/* Our fd of shelf `id` (still ours), or -1. */
static int shelf_fd(pg_ctx *ctx, uint64_t id)
{
	if (id == 0)
		return -1;
	for (unsigned i = 0; i < CTX_SHELVES; i++) {
		struct ctx_shelf *s = &ctx->shelves[i];
		if (s->fd >= 0 && s->id == id) {
			s->used = ++ctx->shelf_clock;
			return s->fd;
		}
	}
	return -1;
}

int ctx_shelf_dup(pg_ctx *ctx, uint64_t id)
{
	int fd = shelf_fd(ctx, id);
	return fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

/* Let go of the windows nobody points into but the CTX_WINDOWS_IDLE most
 * recently used: their page tables and address space go with them. */
static void windows_trim(pg_ctx *ctx)
{
	unsigned idle = 0;
	for (unsigned i = 0; i < ctx->n_windows; i++)
		idle += ctx->windows[i]->users == 0;
	while (idle > CTX_WINDOWS_IDLE) {
		unsigned oldest = ctx->n_windows;
		for (unsigned i = 0; i < ctx->n_windows; i++)
			if (ctx->windows[i]->users == 0 &&
			    (oldest == ctx->n_windows ||
			     ctx->windows[i]->used < ctx->windows[oldest]->used))
				oldest = i;
		struct ctx_window *w = ctx->windows[oldest];
		munmap(w->base, w->bytes);
		free(w);
		ctx->windows[oldest] = ctx->windows[--ctx->n_windows];
		idle--;
	}
}

const uint8_t *ctx_shelf_window(pg_ctx *ctx, uint64_t id, uint64_t off, uint64_t bytes,
				unsigned **users)
{
	if (id == 0 || bytes == 0 || bytes > CTX_WINDOW_STEP || off >= SHELF_BYTES ||
	    bytes > SHELF_BYTES - off)
		return NULL;
	uint64_t start = off / CTX_WINDOW_STEP * CTX_WINDOW_STEP;
	for (unsigned i = 0; i < ctx->n_windows; i++) {
		struct ctx_window *w = ctx->windows[i];
		if (w->shelf == id && w->start == start) {
			w->users++;
			w->used = ++ctx->shelf_clock;
			*users = &w->users;
			return w->base + (off - start);
		}
	}
	windows_trim(ctx);
	int fd = shelf_fd(ctx, id);
	if (fd < 0 || ctx->n_windows == CTX_WINDOWS_MAX)
		return NULL;
	if (ctx->n_windows == ctx->cap_windows) {
		unsigned cap = ctx->cap_windows ? 2 * ctx->cap_windows : 8;
		struct ctx_window **t = realloc(ctx->windows, cap * sizeof(*t));
		if (!t)
			return NULL;
		ctx->windows = t;
		ctx->cap_windows = cap;
	}
	uint64_t len = 2 * CTX_WINDOW_STEP;
	if (len > SHELF_BYTES - start)
		len = SHELF_BYTES - start;
	/* Nothing past the memfd's end may be mapped (a touch would SIGBUS). */
	struct ctx_window *w = malloc(sizeof(*w));
	if (!w || ring_file_check(fd, start, len)) {
		free(w);
		return NULL;
	}
	uint8_t *base = mmap(NULL, len, PROT_READ, MAP_SHARED | MAP_NORESERVE, fd, (off_t)start);
	if (base == MAP_FAILED) {
		free(w);
		return NULL;
	}
	*w = (struct ctx_window){.shelf = id,
				 .start = start,
				 .base = base,
				 .bytes = len,
				 .users = 1,
				 .used = ++ctx->shelf_clock};
	ctx->windows[ctx->n_windows++] = w;
	*users = &w->users;
	return base + (off - start);
}

void ctx_shelf_keep(pg_ctx *ctx, uint64_t id, int fd)
{
	if (id == 0 || fd < 0)
		return;
	struct ctx_shelf *victim = &ctx->shelves[0];
	for (unsigned i = 0; i < CTX_SHELVES; i++) {
		struct ctx_shelf *s = &ctx->shelves[i];
		if (s->fd >= 0 && s->id == id)
			return; /* known: ours is the same memfd */
		if (s->fd < 0 || (victim->fd >= 0 && s->used < victim->used))
			victim = s;
	}
	int keep = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (keep < 0)
		return; /* out of fds: we ask for its ranges instead */
	if (victim->fd >= 0)
		close(victim->fd);
	*victim = (struct ctx_shelf){.id = id, .fd = keep, .used = ++ctx->shelf_clock};
}

void ctx_shelves_init(pg_ctx *ctx)
{
	for (unsigned i = 0; i < CTX_SHELVES; i++)
		ctx->shelves[i] = (struct ctx_shelf){.fd = -1};
}

void ctx_shelves_close(pg_ctx *ctx)
{
	for (unsigned i = 0; i < ctx->n_windows; i++) {
		munmap(ctx->windows[i]->base, ctx->windows[i]->bytes);
		free(ctx->windows[i]);
	}
	free(ctx->windows);
	ctx->windows = NULL;
	ctx->n_windows = ctx->cap_windows = 0;
	for (unsigned i = 0; i < CTX_SHELVES; i++) {
		if (ctx->shelves[i].fd >= 0)
			close(ctx->shelves[i].fd);
		ctx->shelves[i] = (struct ctx_shelf){.fd = -1};
	}
}

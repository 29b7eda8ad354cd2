// SPDX-License-Identifier: MIT
/*
 * The daemon's shelves a ctx holds a read-only fd of, by id. The daemon
 * sends a shelf's fd once per session (with an area, or a page, or when
 * asked); from then on the directory's ring_loc says where each later area
 * or member page of that shelf is, so the first record of a new writer, or
 * the first send past a new member, maps it with no round trip. A few are
 * kept (each is an fd of ours): past that, the least recently used goes,
 * and a range of it costs one question to the daemon again.
 */
#include <fcntl.h>
#include <unistd.h>

#include "client.h"

int ctx_shelf_dup(pg_ctx *ctx, uint64_t id)
{
	if (id == 0)
		return -1;
	for (unsigned i = 0; i < CTX_SHELVES; i++) {
		struct ctx_shelf *s = &ctx->shelves[i];
		if (s->fd >= 0 && s->id == id) {
			s->used = ++ctx->shelf_clock;
			return fcntl(s->fd, F_DUPFD_CLOEXEC, 0);
		}
	}
	return -1;
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
	for (unsigned i = 0; i < CTX_SHELVES; i++) {
		if (ctx->shelves[i].fd >= 0)
			close(ctx->shelves[i].fd);
		ctx->shelves[i] = (struct ctx_shelf){.fd = -1};
	}
}

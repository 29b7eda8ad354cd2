// SPDX-License-Identifier: MIT
/*
 * pg_open/pg_close, the control connection to the node daemon, fds received
 * from it, and the fork guard.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "proto/path.h"
#include "ring/wait.h"

extern char **environ;

/* Bumped in every forked child: a ctx opened before the fork is the
 * parent's, and the child must not use it. */
static _Atomic unsigned fork_gen;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void in_child(void)
{
	atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
}

static void install_fork_guard(void)
{
	pthread_atfork(NULL, NULL, in_child);
}

int ctx_check(pg_ctx *ctx)
{
	if (!ctx)
		return -EINVAL;
	if (ctx->fork_gen != atomic_load_explicit(&fork_gen, memory_order_relaxed))
		return -ECHILD;
	return 0;
}

void ctx_leave_quiet(pg_ctx *ctx, const char *group)
{
	struct ctl_in r;
	ctx_begin(ctx, CTL_LEAVE);
	ctl_put_str(&ctx->out, CTL_T_NAME, group);
	ctl_put_u32(&ctx->out, CTL_T_PID, 0);
	ctx_call(ctx, &r, NULL, NULL);
}

int ctx_check_name(const char *group)
{
	if (!group)
		return -EINVAL;
	size_t n = strnlen(group, PG_GROUP_MAX + 1);
	return ctl_check_group(group, n);
}

/* PGROUP_AUTOSTART=1: start a daemon on `path` and wait for it. */
static int autostart(const char *path)
{
	const char *bin = getenv("PGROUPD");
	char *argv[] = {(char *)(bin ? bin : "pgroupd"), "--socket", (char *)path, NULL};
	pid_t pid;
	if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
		return -ENOENT;
	for (int i = 0; i < 200; i++) {
		int fd = ctl_connect(path);
		if (fd >= 0)
			return fd;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return -ECONNREFUSED;
}

static int map_alive(pg_ctx *ctx, int fd)
{
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size != RING_PAGE)
		return -EPROTO;
	void *p = mmap(NULL, RING_PAGE, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	const struct node_alive *a = p;
	if (a->magic != NODE_ALIVE_MAGIC || a->version != RING_VERSION) {
		munmap(p, RING_PAGE);
		return -EPROTO;
	}
	ctx->alive = a;
	return 0;
}

bool ctx_node_alive(pg_ctx *ctx)
{
	if (ctx->daemon_gone)
		return false;
	if (!node_alive(ctx->alive))
		ctx->daemon_gone = true;
	return !ctx->daemon_gone;
}

int pg_open(pg_ctx **out, const char *socket_path)
{
	char path[108];
	if (!out)
		return -EINVAL;
	*out = NULL;
	pthread_once(&fork_once, install_fork_guard);
	if (socket_path)
		snprintf(path, sizeof(path), "%s", socket_path);
	else if (ctl_default_socket(path, sizeof(path)))
		return -ENAMETOOLONG;
	int fd = ctl_connect(path);
	const char *as = getenv("PGROUP_AUTOSTART");
	if (fd < 0 && (fd == -ENOENT || fd == -ECONNREFUSED) && as && strcmp(as, "1") == 0)
		fd = autostart(path);
	if (fd < 0)
		return fd;
	pg_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		close(fd);
		return -ENOMEM;
	}
	ctx->sock = fd;
	ctx->fork_gen = atomic_load(&fork_gen);
	ctx->pid = getpid();
	const char *spin = getenv("PGROUP_SPIN_US");
	ctx->spin_ns = (spin ? atoll(spin) : PG_DEFAULT_SPIN_US) * 1000;
	const char *busy = getenv("PGROUP_BUSY_US");
	ctx->busy_ns = busy ? atoll(busy) * 1000 : 0;
	const char *park = getenv("PGROUP_TEST_PARK_IN_SEND");
	ctx->park_in_send = park && strcmp(park, "1") == 0;
	ctx_begin(ctx, CTL_HELLO);
	struct ctl_in r;
	int alive_fd = -1;
	unsigned nfds = 1;
	int err = ctx_call(ctx, &r, &alive_fd, &nfds);
	if (!err)
		err = ctl_get_str(&r, CTL_T_NODE, ctx->node, sizeof(ctx->node));
	if (!err)
		err = map_alive(ctx, nfds == 1 ? alive_fd : -1);
	if (alive_fd >= 0)
		close(alive_fd);
	if (err) {
		close(fd);
		if (ctx->alive)
			munmap((void *)ctx->alive, RING_PAGE);
		free(ctx);
		return err == -ENOTCONN ? -ECONNREFUSED : err;
	}
	*out = ctx;
	return 0;
}

static void ref_free(struct group_ref *g)
{
	if (g->member)
		ring_unmap(&g->rd);
	if (g->can_send)
		ring_unmap(&g->wr);
	free(g);
}

void pg_close(pg_ctx *ctx)
{
	if (!ctx)
		return;
	bool forked = ctx_check(ctx) == -ECHILD;
	if (ctx->have_uring) {
		/* Closing the ring cancels its futex waits; then withdraw the
		 * sleeps they announced. */
		io_uring_queue_exit(&ctx->uring);
		ctx->have_uring = false;
		if (!forked)
			recv_disarm_all(ctx);
	}
	if (!forked) {
		/* A claim left open would stop every reader at its position:
		 * turn it into padding they skip. */
		for (struct group_ref *g = ctx->groups; g; g = g->next) {
			if (g->claiming) {
				ring_abort(&g->wr, &g->claim);
				ring_wake(&g->wr);
				g->claiming = false;
			}
		}
	}
	if (!forked && !ctx->daemon_gone) {
		/* Leave everything at once; the daemon writes PG_LEFT. */
		struct ctl_in r;
		ctx_begin(ctx, CTL_BYE);
		ctx_call(ctx, &r, NULL, NULL);
	}
	close(ctx->sock);
	if (ctx->alive)
		munmap((void *)ctx->alive, RING_PAGE);
	while (ctx->groups) {
		struct group_ref *g = ctx->groups;
		ctx->groups = g->next;
		ref_free(g);
	}
	while (ctx->dropped) {
		struct group_ref *g = ctx->dropped;
		ctx->dropped = g->next;
		ref_free(g);
	}
	free(ctx);
}

void ctx_begin(pg_ctx *ctx, uint8_t type)
{
	ctl_begin(&ctx->out, type, ++ctx->next_id, 0);
}

int ctx_notify(pg_ctx *ctx)
{
	if (ctx->daemon_gone)
		return -ENOTCONN;
	int err = ctl_end(&ctx->out);
	if (err)
		return err;
	err = ctl_send(ctx->sock, &ctx->out, NULL, 0);
	if (err == -EPIPE || err == -ECONNRESET || err == -ENOTCONN) {
		ctx->daemon_gone = true;
		return -ENOTCONN;
	}
	return err;
}

struct group_ref *ctx_find(pg_ctx *ctx, const char *name)
{
	for (struct group_ref *g = ctx->groups; g; g = g->next)
		if (strcmp(g->name, name) == 0)
			return g;
	return NULL;
}

struct group_ref *ctx_ref(pg_ctx *ctx, const char *name)
{
	struct group_ref *g = ctx_find(ctx, name);
	if (g)
		return g;
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	snprintf(g->name, sizeof(g->name), "%s", name);
	g->next = ctx->groups;
	ctx->groups = g;
	ctx->n_groups++;
	return g;
}

/* Unlink a ref that is neither member nor sender any more. Its mapping may
 * back a view the user still holds, so keep it until pg_close. */
static void ref_retire(pg_ctx *ctx, struct group_ref *g)
{
	if (ref_listed(g))
		return;
	for (struct group_ref **p = &ctx->groups; *p; p = &(*p)->next)
		if (*p == g) {
			*p = g->next;
			ctx->n_groups--;
			break;
		}
	if (ctx->next_rr == g)
		ctx->next_rr = NULL;
	if (ctx->last == g)
		ctx->last = NULL;
	g->next = ctx->dropped;
	ctx->dropped = g;
}

int ctx_take_membership(pg_ctx *ctx, struct group_ref *g, const struct ctl_in *m, int *fds)
{
	uint32_t slot, word;
	uint64_t start;
	int err;
	if (ctl_get_u32(m, CTL_T_SLOT, &slot) || ctl_get_u32(m, CTL_T_STATEWORD, &word) ||
	    ctl_get_u64(m, CTL_T_CURSOR, &start) || slot >= RING_MEMBER_SLOTS) {
		err = -EPROTO;
		goto out;
	}
	if (g->member) {
		err = -EALREADY;
		goto out;
	}
	err = ring_map(&g->rd, fds[0], fds[1], false);
	if (err)
		goto out;
	g->member = true;
	g->view_out = false;
	g->fd_armed = false;
	g->reader = (struct ring_reader){
		.pos = start, .last_seq = 0, .slot = slot, .state_word = word};
out:
	close(fds[0]);
	close(fds[1]);
	return err;
}

void ctx_drop_membership(pg_ctx *ctx, struct group_ref *g)
{
	if (!g->member)
		return;
	if (g->fd_armed) {
		atomic_fetch_sub(&g->rd.chdr->sleepers, 1);
		g->fd_armed = false;
	}
	g->member = false;
	/* g->rd stays mapped: a view into it may still be held. It is
	 * unmapped with the ref. */
	struct group_ref *keep = calloc(1, sizeof(*keep));
	if (keep) {
		keep->rd = g->rd;
		keep->member = true; /* so ref_free unmaps it */
		keep->next = ctx->dropped;
		ctx->dropped = keep;
	} else {
		ring_unmap(&g->rd);
	}
	memset(&g->rd, 0, sizeof(g->rd));
	ref_retire(ctx, g);
}

void ctx_drop_sender(pg_ctx *ctx, struct group_ref *g)
{
	/* An open claim's buffer lives in this mapping: it goes when the
	 * claim is committed or aborted (both then fail with -ENOENT). */
	if (!g->can_send || g->claiming)
		return;
	ring_unmap(&g->wr);
	g->can_send = false;
	g->claiming = false;
	ref_retire(ctx, g);
}

/* An unasked message from the daemon. */
static void handle_async(pg_ctx *ctx, const struct ctl_in *m, int *fds, unsigned nfds)
{
	char name[PG_GROUP_MAX + 1];
	if (m->hdr.type == CTL_ASYNC_JOINED && nfds == 2 &&
	    ctl_get_str(m, CTL_T_NAME, name, sizeof(name)) == 0) {
		struct group_ref *g = ctx_ref(ctx, name);
		if (g) {
			ctx_take_membership(ctx, g, m, fds);
			return;
		}
	}
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
}

/* Receive one message; 0, -EAGAIN (nothing, when not waiting) or -ENOTCONN. */
static int receive(pg_ctx *ctx, struct ctl_in *m, int *fds, unsigned *nfds, bool wait)
{
	ssize_t n = ctl_recv(ctx->sock, ctx->in, sizeof(ctx->in), fds, nfds,
			     wait ? 0 : MSG_DONTWAIT);
	if (n == -EAGAIN)
		return -EAGAIN;
	if (n <= 0) {
		ctx->daemon_gone = true;
		return -ENOTCONN;
	}
	if (ctl_parse(m, ctx->in, (size_t)n) < 0) {
		for (unsigned i = 0; i < *nfds; i++)
			close(fds[i]);
		*nfds = 0;
		return -EPROTO;
	}
	return 0;
}

int ctx_call(pg_ctx *ctx, struct ctl_in *reply, int *fds, unsigned *nfds)
{
	if (ctx->daemon_gone)
		return -ENOTCONN;
	uint32_t id = ctx->next_id;
	uint8_t type = ctx->out.buf[offsetof(struct ctl_hdr, type)];
	int err = ctx_notify(ctx);
	if (err)
		return err;
	for (;;) {
		int got[CTL_MAX_FDS];
		unsigned n = CTL_MAX_FDS;
		err = receive(ctx, reply, got, &n, true);
		if (err)
			return err; /* -EPROTO: a daemon we cannot understand */
		if (reply->hdr.type == (type | CTL_REPLY) && reply->hdr.id == id) {
			for (unsigned i = 0; i < n; i++) {
				if (fds && nfds && i < *nfds)
					fds[i] = got[i];
				else
					close(got[i]);
			}
			if (nfds)
				*nfds = fds ? (n < *nfds ? n : *nfds) : 0;
			return reply->hdr.status;
		}
		handle_async(ctx, reply, got, n);
	}
}

void ctx_drain(pg_ctx *ctx)
{
	for (;;) {
		struct ctl_in m;
		int fds[CTL_MAX_FDS];
		unsigned n = CTL_MAX_FDS;
		int err = receive(ctx, &m, fds, &n, false);
		if (err == -EPROTO)
			continue;
		if (err)
			return;
		handle_async(ctx, &m, fds, n);
	}
}

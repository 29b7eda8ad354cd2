// SPDX-License-Identifier: MIT
/*
 * pg_open/pg_close, the control connection to the node daemon, fds received
 * from it, and the fork guard.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

int ctx_geometry(const struct ctl_in *m, struct ring_geometry *g)
{
	uint64_t cap, max_msg, dir_off;
	uint32_t stall;
	if (ctl_get_u64(m, CTL_T_RING, &cap) || ctl_get_u64(m, CTL_T_MAXMSG, &max_msg) ||
	    ctl_get_u32(m, CTL_T_STALL, &stall) || ctl_get_u64(m, CTL_T_DIROFF, &dir_off) ||
	    max_msg > UINT32_MAX)
		return -EPROTO;
	uint32_t slots = 0;
	if (ctl_get_u32(m, CTL_T_MEMBER_SLOTS, &slots) == -EPROTO)
		return -EPROTO;
	*g = (struct ring_geometry){.capacity = cap,
				    .max_msg = (uint32_t)max_msg,
				    .stall_ms = stall,
				    .dir_off = dir_off,
				    .member_slots = slots};
	return 0;
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
	ctx_shelves_init(ctx);
	ctx->fork_gen = atomic_load(&fork_gen);
	ctx->pid = getpid();
	/* Which bell of a producer's shelf is ours: spread, not secret (two
	 * ctxs on one bell each wake for the other's hints too). */
	ctx->bell_key = (uint32_t)((uint64_t)ring_now_ns() * 0x9e3779b97f4a7c15ull >> 32) ^
			(uint32_t)ctx->pid;
	const char *spin = getenv("PGROUP_SPIN_US");
	ctx->spin_ns = (spin ? atoll(spin) : PG_DEFAULT_SPIN_US) * 1000;
	ctx->spin_fixed = spin != NULL;
	ctx->wait_avg_ns = ctx->spin_ns; /* no history: poll the whole window */
	const char *busy = getenv("PGROUP_BUSY_US");
	ctx->busy_ns = busy ? atoll(busy) * 1000 : 0;
	ctx_begin(ctx, CTL_HELLO);
	struct ctl_in r;
	int alive_fd = -1;
	unsigned nfds = 1;
	int err = ctx_call(ctx, &r, &alive_fd, &nfds);
	if (!err)
		err = ctl_get_str(&r, CTL_T_NODE, ctx->node, sizeof(ctx->node));
	uint32_t dpid = 0;
	if (!err && ctl_get_u32(&r, CTL_T_PID, &dpid) == 0)
		ctx->dpid = (int32_t)dpid;
	else if (!err)
		err = -EPROTO;
	if (!err)
		err = map_alive(ctx, nfds == 1 ? alive_fd : -1);
	if (alive_fd >= 0)
		close(alive_fd);
	if (err) {
		close(fd);
		if (ctx->alive)
			munmap((void *)ctx->alive, RING_PAGE);
		free(ctx);
		/* A daemon that hung up at once was not ours to talk to; one
		 * that said why (out of fds) is reported as it said. */
		return err == -ENOTCONN ? -ECONNREFUSED : err;
	}
	*out = ctx;
	return 0;
}

void pg_close(pg_ctx *ctx)
{
	if (!ctx)
		return;
	bool forked = ctx_check(ctx) == -ECHILD;
	ctx->closing_forked = forked;
	ctx->closing = true;
	if (ctx_waits_by_list(ctx)) {
		/* Closing the ring cancels its futex waits; then withdraw the
		 * sleeps they announced (on bells too: before our goodbye,
		 * or producers would ring for us until the daemon is told). */
		if (!forked)
			for (struct group_ref *g = ctx->groups; g; g = g->next)
				for (struct membership *m = g->mem; m; m = m->next)
					ready_disarm(m);
		ready_stop(ctx);
	}
	if (!forked) {
		/* A claim left open would hold readers at its position until
		 * the node cancels it: withdraw it now. */
		for (struct group_ref *g = ctx->groups; g; g = g->next)
			sender_abort_open(g);
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
		member_free_all(ctx, g);
		member_free_ended(ctx);
		if (g->snd)
			g->snd->claiming = false;
		sender_drop(g);
		free(g);
	}
	member_release_view(ctx);
	/* Last: areas and pages placed in our windows were read till here. */
	ctx_shelves_close(ctx);
	bells_close(ctx);
	free(ctx->htab);
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

/* Twice the groups, so chains stay short: a send to any of thousands of
 * groups finds its name in one or two compares. */
static int names_grow(pg_ctx *ctx)
{
	unsigned size = ctx->hsize ? ctx->hsize * 2 : 64;
	struct group_ref **t = calloc(size, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (struct group_ref *g = ctx->groups; g; g = g->next) {
		uint32_t i = ctl_name_hash(g->name) & (size - 1);
		g->hnext = t[i];
		t[i] = g;
	}
	free(ctx->htab);
	ctx->htab = t;
	ctx->hsize = size;
	return 0;
}

struct group_ref *ctx_find(pg_ctx *ctx, const char *name)
{
	if (!ctx->hsize)
		return NULL;
	for (struct group_ref *g = ctx->htab[ctl_name_hash(name) & (ctx->hsize - 1)]; g; g = g->hnext)
		if (strcmp(g->name, name) == 0)
			return g;
	return NULL;
}

struct group_ref *ctx_ref(pg_ctx *ctx, const char *name)
{
	struct group_ref *g = ctx_find(ctx, name);
	if (g)
		return g;
	if (ctx->n_groups + 1 > ctx->hsize / 2 && names_grow(ctx))
		return NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	snprintf(g->name, sizeof(g->name), "%s", name);
	g->next = ctx->groups;
	ctx->groups = g;
	ctx->n_groups++;
	uint32_t i = ctl_name_hash(name) & (ctx->hsize - 1);
	g->hnext = ctx->htab[i];
	ctx->htab[i] = g;
	return g;
}

/* An unasked message from the daemon. */
/* Give back a membership we will not take (fire and forget: the reply, if
 * any, is a stale one ctx_call skips). ctx->out is free: a call in progress
 * has sent its request already. */
static void give_back(pg_ctx *ctx, const char *name, const struct ctl_in *m)
{
	uint32_t slot;
	if (ctl_get_u32(m, CTL_T_SLOT, &slot))
		return;
	ctx_begin(ctx, CTL_LEAVE);
	ctl_put_str(&ctx->out, CTL_T_NAME, name);
	ctl_put_u32(&ctx->out, CTL_T_PID, 0);
	ctl_put_u32(&ctx->out, CTL_T_SLOT, slot);
	ctx_notify(ctx);
}

/* An unasked message from the daemon, or a reply nobody waits for. */
static void handle_async(pg_ctx *ctx, const struct ctl_in *m, int *fds, unsigned nfds)
{
	char name[PG_GROUP_MAX + 1];
	bool named = ctl_get_str(m, CTL_T_NAME, name, sizeof(name)) == 0;
	/* Another process joined us; or the late reply of our own join whose
	 * call timed out: the daemon made us a member, so be one (a retry of
	 * pg_join then says -EALREADY, truthfully). */
	bool late_join = m->hdr.type == (CTL_JOIN | CTL_REPLY) && m->hdr.status == 0;
	if (m->hdr.type == CTL_ASYNC_AREA && nfds <= 1 && named) {
		/* Without an fd: on a shelf we were sent before. */
		member_area(ctx, name, m, nfds ? fds[0] : -1);
		if (nfds)
			close(fds[0]);
		return;
	}
	if ((m->hdr.type == CTL_ASYNC_JOINED || late_join) && nfds == 3 && named) {
		struct group_ref *g = ctx_ref(ctx, name);
		if (g && member_take(ctx, g, m, fds) == 0)
			return; /* fds consumed */
		if (!g)
			for (unsigned i = 0; i < nfds; i++)
				close(fds[i]);
		give_back(ctx, name, m);
		return;
	}
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
}

/*
 * Receive one message: 0, -EAGAIN (nothing, when not waiting), -ETIMEDOUT
 * (waiting, nothing by `deadline_ns`) or -ENOTCONN. A CTL_REFUSED notice
 * (the daemon could not take us: out of fds) ends the connection with the
 * daemon's reason.
 */
static int receive(pg_ctx *ctx, struct ctl_in *m, int *fds, unsigned *nfds, int64_t deadline_ns)
{
	if (deadline_ns >= 0) {
		int64_t left = deadline_ns - ring_now_ns();
		struct pollfd p = {.fd = ctx->sock, .events = POLLIN};
		int n = poll(&p, 1, left > 0 ? (int)((left + PG_MS - 1) / PG_MS) : 0);
		if (n == 0) {
			*nfds = 0;
			return -ETIMEDOUT;
		}
	}
	/* Never blocking in recvmsg itself: the poll above is the wait. A
	 * reset is reported before what was queued ahead of it: look again,
	 * once, for a refusal that says why. */
	unsigned want = *nfds;
	ssize_t n = ctl_recv(ctx->sock, ctx->in, sizeof(ctx->in), fds, nfds, MSG_DONTWAIT);
	if (n == -ECONNRESET) {
		*nfds = want;
		n = ctl_recv(ctx->sock, ctx->in, sizeof(ctx->in), fds, nfds, MSG_DONTWAIT);
		if (n <= 0)
			n = -ECONNRESET;
	}
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
	if (m->hdr.type == CTL_REFUSED) {
		ctx->daemon_gone = true;
		return m->hdr.status < 0 ? m->hdr.status : -ECONNREFUSED;
	}
	return 0;
}

int ctx_call(pg_ctx *ctx, struct ctl_in *reply, int *fds, unsigned *nfds)
{
	/* No fds until a reply brings them: a caller closes what *nfds says. */
	unsigned want = nfds ? *nfds : 0;
	if (nfds)
		*nfds = 0;
	if (ctx->daemon_gone)
		return -ENOTCONN;
	uint32_t id = ctx->next_id;
	uint8_t type = ctx->out.buf[offsetof(struct ctl_hdr, type)];
	int err = ctx_notify(ctx);
	if (err == -ENOTCONN) {
		/* It may have said why before it hung up (CTL_REFUSED). */
		int got[CTL_MAX_FDS];
		unsigned n = CTL_MAX_FDS;
		int why = receive(ctx, reply, got, &n, -1);
		for (unsigned i = 0; why == 0 && i < n; i++)
			close(got[i]);
		return why < 0 && why != -EAGAIN && why != -ENOTCONN && why != -EPROTO ? why : err;
	}
	if (err)
		return err;
	int64_t deadline = ring_now_ns() + (int64_t)PG_RPC_TIMEOUT_MS * PG_MS;
	for (;;) {
		int got[CTL_MAX_FDS];
		unsigned n = CTL_MAX_FDS;
		err = receive(ctx, reply, got, &n, deadline);
		if (err == -EAGAIN)
			continue; /* woken without a message: look again */
		if (err)
			return err; /* -EPROTO: a daemon we cannot understand */
		if (reply->hdr.type == (type | CTL_REPLY) && reply->hdr.id == id) {
			for (unsigned i = 0; i < n; i++) {
				if (fds && nfds && i < want)
					fds[i] = got[i];
				else
					close(got[i]);
			}
			if (nfds)
				*nfds = fds ? (n < want ? n : want) : 0;
			return reply->hdr.status;
		}
		handle_async(ctx, reply, got, n);
	}
}

int ctx_call_fd(pg_ctx *ctx, int *fd, uint64_t *off)
{
	struct ctl_in r;
	int fds[CTL_MAX_FDS];
	unsigned nfds = CTL_MAX_FDS;
	int err = ctx_call(ctx, &r, fds, &nfds);
	if (!err && (nfds != 1 || ctl_get_u64(&r, CTL_T_FILEOFF, off)))
		err = -EPROTO;
	for (unsigned i = err ? 0 : 1; i < nfds; i++)
		close(fds[i]);
	if (!err) {
		/* A shelf's: its later ranges need no question (shelves.c). */
		uint64_t shelf;
		if (ctl_get_u64(&r, CTL_T_SHELF, &shelf) == 0)
			ctx_shelf_keep(ctx, shelf, fds[0]);
		*fd = fds[0];
	}
	return err;
}

void ctx_drain(pg_ctx *ctx)
{
	for (;;) {
		struct ctl_in m;
		int fds[CTL_MAX_FDS];
		unsigned n = CTL_MAX_FDS;
		int err = receive(ctx, &m, fds, &n, -1);
		if (err == -EPROTO)
			continue;
		if (err)
			return;
		handle_async(ctx, &m, fds, n);
	}
}

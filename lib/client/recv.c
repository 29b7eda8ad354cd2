// SPDX-License-Identifier: MIT
/*
 * The receive side: pg_recv reads records in place (the view stays valid
 * until the next pg_recv), spins briefly, then announces its sleep and parks
 * on the wake words of all its groups at once. pg_fd is an io_uring whose
 * futex waits complete when a producer wakes sleepers.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <string.h>

#include "client.h"
#include "ring/wait.h"

#ifndef IORING_OP_FUTEX_WAIT
#define IORING_OP_FUTEX_WAIT 51 /* Linux 6.7; liburing 2.3 lacks it */
#endif
#define FUTEX2_SIZE_U32 0x02
#define FD_TOKEN_SOCKET 1ull

/* Longest single park: a dead daemon cannot wake us, so look at the
 * control socket at least this often. */
#define PARK_SLICE_NS (100 * 1000 * 1000)
/* How often a polling pg_recv (timeout 0) reads the control socket. */
#define DRAIN_EVERY_NS (1000 * 1000)
/* And a consumer that always finds records, once per this many calls. */
#define DRAIN_EVERY_RECORDS 4096u

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

static enum pg_kind kind_of(uint16_t k)
{
	switch (k) {
	case RING_REC_JOINED:
		return PG_JOINED;
	case RING_REC_LEFT:
		return PG_LEFT;
	case RING_REC_EXITED:
		return PG_EXITED;
	default:
		return PG_MSG;
	}
}

static void fill_from(pg_ctx *ctx, pg_message *msg, int32_t pid)
{
	memset(&msg->from, 0, sizeof(msg->from));
	memcpy(msg->from.node, ctx->node, sizeof(msg->from.node));
	msg->from.pid = pid;
}

/* A membership ends with a notice to the user (evicted, group down). */
static int notice(pg_ctx *ctx, struct group_ref *g, pg_message *msg, enum pg_kind kind)
{
	msg->kind = kind;
	fill_from(ctx, msg, 0);
	msg->group = g->name;
	msg->seq = 0;
	msg->data = NULL;
	msg->len = 0;
	/* Evicted: frees the slot kept for us. Down: the daemon deleted the
	 * group (it answers -ENOENT) or is gone (-ENOTCONN), or a writer
	 * forged the state word, and then this frees our slot. */
	ctx_leave_quiet(ctx, g->name);
	ctx_drop_membership(ctx, g);
	if (kind == PG_GROUP_DOWN)
		ctx_drop_sender(ctx, g);
	return 1;
}

/* Whether this handle wants a record: esend skips the sender's process,
 * events go only to monitors. */
static bool wanted(pg_ctx *ctx, struct group_ref *g, const struct ring_view *v)
{
	if (v->kind == RING_REC_MSG)
		return !((v->flags & RING_F_ESEND) && v->from_pid == ctx->pid && v->from_node == 0);
	return v->kind == RING_REC_DOWN || g->monitor;
}

/* The next record this handle wants, without consuming it: what ring_read
 * returns. Unwanted records are consumed on the way. */
static int next_wanted(pg_ctx *ctx, struct group_ref *g, struct ring_view *v)
{
	int r;
	while ((r = ring_read(&g->rd, &g->reader, v)) == 1 && !wanted(ctx, g, v))
		ring_release(&g->rd, &g->reader, v->next_pos);
	return r;
}

/* One group: 1 with *msg filled, 0 when it has nothing, or -errno. */
static int poll_group(pg_ctx *ctx, struct group_ref *g, pg_message *msg)
{
	struct ring_view v;
	int r = next_wanted(ctx, g, &v);
	if (r == 0)
		return ring_is_down(&g->rd) ? notice(ctx, g, msg, PG_GROUP_DOWN) : 0;
	if (r == -ECONNRESET) {
		uint32_t w = atomic_load(&g->rd.members[g->reader.slot].state);
		if (RING_STATE_OF(w) == RING_MEMBER_EVICTED &&
		    RING_GEN_OF(w) == RING_GEN_OF(g->reader.state_word))
			return notice(ctx, g, msg, PG_EVICTED);
		/* Made to leave by another process: nothing to say. */
		ctx_drop_membership(ctx, g);
		return 0;
	}
	if (r < 0) {
		/* A corrupt record: this group is unreadable for us. Leave
		 * it, so we no longer hold senders back. */
		ctx_leave_quiet(ctx, g->name);
		ctx_drop_membership(ctx, g);
		return r;
	}
	if (v.kind == RING_REC_DOWN)
		return notice(ctx, g, msg, PG_GROUP_DOWN);
	msg->kind = kind_of(v.kind);
	fill_from(ctx, msg, v.from_pid);
	msg->group = g->name;
	msg->seq = v.seq;
	msg->data = v.payload;
	msg->len = v.len;
	g->view_out = true;
	g->view_next = v.next_pos;
	return 1;
}

/* Every group once, round robin so no group starves the others. A group
 * may leave the list while we look at it (evicted, down). */
static int poll_all(pg_ctx *ctx, pg_message *msg)
{
	struct group_ref *g = ctx->next_rr ? ctx->next_rr : ctx->groups;
	for (unsigned i = 0, n = ctx->n_groups; i < n && g; i++) {
		int r = g->member ? poll_group(ctx, g, msg) : 0;
		struct group_ref *next = ref_listed(g) && g->next ? g->next : ctx->groups;
		if (r) {
			ctx->next_rr = next;
			return r;
		}
		g = next;
	}
	return 0;
}

static void release_view(pg_ctx *ctx)
{
	for (struct group_ref *g = ctx->groups; g; g = g->next) {
		if (g->member && g->view_out) {
			ring_release(&g->rd, &g->reader, g->view_next);
			g->view_out = false;
		}
	}
}

/* The daemon is gone: every membership ends with PG_GROUP_DOWN, then
 * calls fail with -ENOTCONN. */
static int daemon_down(pg_ctx *ctx, pg_message *msg)
{
	for (struct group_ref *g = ctx->groups; g; g = g->next)
		if (g->member)
			return notice(ctx, g, msg, PG_GROUP_DOWN);
	return -ENOTCONN;
}

static unsigned collect(pg_ctx *ctx, struct ring_sleep *s)
{
	s->n = 0;
	for (struct group_ref *g = ctx->groups; g && s->n < RING_WAIT_MAX; g = g->next)
		if (g->member)
			s->rings[s->n++] = &g->rd;
	return s->n;
}

/* Would pg_recv find something in this group? */
static bool has_record(pg_ctx *ctx, struct group_ref *g)
{
	struct ring_view v;
	return next_wanted(ctx, g, &v) != 0 || ring_is_down(&g->rd);
}

/* pg_fd: make the ring fd readable when any group gets a record. */
static void arm_fd(pg_ctx *ctx)
{
	bool ready = false;
	for (struct group_ref *g = ctx->groups; g; g = g->next) {
		if (!g->member || g->fd_armed)
			continue;
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ctx->uring);
		if (!sqe)
			break;
		_Atomic uint32_t *word = &g->rd.chdr->wake_seq;
		uint32_t seen = atomic_load(word);
		/* Announce the sleep, then look: the fence pairs with the
		 * seq_cst commit and load in ring_wake, as in ring_sleep_begin. */
		atomic_fetch_add(&g->rd.chdr->sleepers, 1);
		atomic_thread_fence(memory_order_seq_cst);
		g->fd_armed = true;
		io_uring_prep_rw(IORING_OP_FUTEX_WAIT, sqe, FUTEX2_SIZE_U32, word, 0, seen);
		sqe->addr3 = UINT32_MAX; /* any waker */
		io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)g);
		ready |= has_record(ctx, g);
	}
	if (!ctx->sock_armed) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ctx->uring);
		if (sqe) {
			io_uring_prep_poll_add(sqe, ctx->sock, POLLIN);
			io_uring_sqe_set_data64(sqe, FD_TOKEN_SOCKET);
			ctx->sock_armed = true;
		}
	}
	if (ready) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ctx->uring);
		if (sqe) {
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data64(sqe, 0);
		}
	}
	io_uring_submit(&ctx->uring);
}

/* Take the completions: a futex wait that fired ends that group's sleep.
 * Until then the group counts as a sleeper and its producers pay a futex
 * wake per message: the price of an fd for epoll. */
static void reap_fd(pg_ctx *ctx)
{
	struct io_uring_cqe *cqe;
	while (io_uring_peek_cqe(&ctx->uring, &cqe) == 0) {
		uint64_t token = io_uring_cqe_get_data64(cqe);
		io_uring_cqe_seen(&ctx->uring, cqe);
		if (token == FD_TOKEN_SOCKET) {
			ctx->sock_armed = false;
			continue;
		}
		for (struct group_ref *g = ctx->groups; g; g = g->next) {
			if ((uint64_t)(uintptr_t)g == token && g->fd_armed) {
				atomic_fetch_sub(&g->rd.chdr->sleepers, 1);
				g->fd_armed = false;
			}
		}
	}
}

void recv_disarm_all(pg_ctx *ctx)
{
	for (struct group_ref *g = ctx->groups; g; g = g->next) {
		if (g->member && g->fd_armed) {
			atomic_fetch_sub(&g->rd.chdr->sleepers, 1);
			g->fd_armed = false;
		}
	}
}

int pg_fd(pg_ctx *ctx)
{
	int err = ctx_check(ctx);
	if (err)
		return err;
	if (!ctx->have_uring) {
		if ((err = io_uring_queue_init(256, &ctx->uring, 0)))
			return err;
		struct io_uring_probe *p = io_uring_get_probe_ring(&ctx->uring);
		bool ok = p && io_uring_opcode_supported(p, IORING_OP_FUTEX_WAIT);
		if (p)
			io_uring_free_probe(p);
		if (!ok) {
			io_uring_queue_exit(&ctx->uring);
			return -EOPNOTSUPP;
		}
		ctx->have_uring = true;
		arm_fd(ctx);
	}
	return ctx->uring.ring_fd;
}

/* Park until a record, a wake, the deadline or a signal. */
static int park(pg_ctx *ctx, pg_message *msg, int64_t timeout_ns)
{
	struct ring_sleep s;
	if (timeout_ns < 0 || timeout_ns > PARK_SLICE_NS)
		timeout_ns = PARK_SLICE_NS;
	if (collect(ctx, &s) == 0) {
		/* No group: only the daemon can bring news (a join by another
		 * process, or its own end). */
		struct pollfd p = {.fd = ctx->sock, .events = POLLIN};
		int n = poll(&p, 1, (int)(timeout_ns / 1000000));
		return n < 0 && errno == EINTR ? -EINTR : 0;
	}
	ring_sleep_begin(&s);
	/* Look once more after announcing: pairs with ring_wake's fence. */
	int r = poll_all(ctx, msg);
	if (r == 0)
		r = ring_sleep_wait(&s, timeout_ns);
	else if (r > 0)
		r = 1;
	ring_sleep_end(&s);
	if (r == -ETIMEDOUT)
		r = 0;
	return r;
}

int pg_recv(pg_ctx *ctx, pg_message *msg, int timeout_ms)
{
	int err = ctx_check(ctx);
	if (err)
		return err;
	if (!msg || timeout_ms < -1)
		return -EINVAL;
	release_view(ctx);
	/* The common case, a record already there, reads no clock. A busy
	 * consumer still looks at its socket now and then: a join by another
	 * process must not wait until its groups run dry. */
	if (++ctx->fast_returns % DRAIN_EVERY_RECORDS == 0)
		ctx_drain(ctx);
	int r = poll_all(ctx, msg);
	if (r)
		return r < 0 ? r : 0;
	int64_t now = ring_now_ns();
	int64_t deadline = timeout_ms < 0 ? -1 : now + (int64_t)timeout_ms * 1000000;
	int64_t spin_until = now + ctx->spin_ns;
	int64_t busy_until = now + ctx->busy_ns;
	bool asked_daemon = false, asked_before_park = false;
	for (;; r = poll_all(ctx, msg)) {
		if (r)
			return r < 0 ? r : 0;
		if (!ctx_node_alive(ctx))
			return daemon_down(ctx, msg) > 0 ? 0 : -ENOTCONN;
		now = ring_now_ns();
		/* News from the daemon (a join by another process, its end)
		 * costs a syscall: not while spinning, at most once a
		 * millisecond for pollers, always before parking. */
		bool parking = timeout_ms != 0 && now >= spin_until;
		if ((parking && !asked_before_park) ||
		    (!asked_daemon && now - ctx->last_drain_ns > DRAIN_EVERY_NS)) {
			ctx_drain(ctx);
			ctx->last_drain_ns = now;
			asked_daemon = true;
			asked_before_park = parking;
			continue;
		}
		if (timeout_ms == 0) {
			/* Drained: only now consume pg_fd's completions, so the
			 * fd stays readable while anything is left. */
			if (ctx->have_uring) {
				reap_fd(ctx);
				arm_fd(ctx);
			}
			return -EAGAIN;
		}
		if (deadline >= 0 && now >= deadline)
			return -ETIMEDOUT;
		if (now < spin_until) {
			/* Busy for the first part of the window if asked to (a
			 * CPU to spare per receiver), then yield rather than
			 * burn: on few CPUs the producer may need this one. */
			if (now < busy_until)
				cpu_relax();
			else
				sched_yield();
			continue;
		}
		r = park(ctx, msg, deadline < 0 ? -1 : deadline - now);
		if (r == -EINTR)
			return -EINTR;
		if (r > 0)
			return 0;
		if (r < 0 && r != -EAGAIN)
			return r;
		asked_daemon = asked_before_park = false;
	}
}

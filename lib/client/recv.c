// SPDX-License-Identifier: MIT
/*
 * The receive side: pg_recv reads records in place (the view stays valid
 * until the next pg_recv), spins briefly, then announces its sleep and parks
 * on the wake words of all its groups at once (futex_waitv, up to
 * RING_WAIT_MAX groups). A ctx in more groups, or one that asked for
 * pg_fd, looks only at the groups that moved and waits through an io_uring
 * (ready.c).
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <string.h>

#include "client.h"
#include "ring/wait.h"


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
	member_leave_quiet(ctx, g);
	member_end(ctx, g);
	if (kind == PG_GROUP_DOWN)
		sender_drop(g);
	return 1;
}

/* The node a message came from: the master's (from_node 0), or the one
 * the directory (the daemon's) names at that index, if it is a node name. */
static void node_of(const struct membership *m, uint32_t from_node, char out[PG_NODE_MAX])
{
	memcpy(out, m->master, PG_NODE_MAX);
	if (from_node == 0 || from_node >= RING_NODES)
		return;
	char node[PG_NODE_MAX];
	memcpy(node, m->ring.dir->nodes[from_node], sizeof(node));
	node[sizeof(node) - 1] = 0;
	if (ctl_check_node(node, strlen(node)) == 0)
		memcpy(out, node, sizeof(node));
}

/* Whether this handle wants a record: esend skips the sender's process
 * (this node's, the pid as the daemon sees it), events go only to
 * monitors. */
static bool wanted(pg_ctx *ctx, struct group_ref *g, const struct ring_view *v)
{
	if (v->kind == RING_REC_MSG) {
		if (!(v->flags & RING_F_ESEND) || v->from_pid != ctx->dpid)
			return true;
		char node[PG_NODE_MAX];
		node_of(g->mem, v->from_node, node);
		return strcmp(node, ctx->node) != 0;
	}
	return v->kind == RING_REC_DOWN || g->monitor;
}

/* The next record this handle wants, without consuming it: what ring_read
 * returns. Unwanted records are consumed on the way. */
static int next_wanted(pg_ctx *ctx, struct group_ref *g, struct ring_view *v)
{
	struct membership *m = g->mem;
	int r;
	while ((r = ring_read(&m->ring, &m->reader, v)) == 1 && !wanted(ctx, g, v)) {
		ring_release(&m->ring, &m->reader, v->next_pos);
	}
	return r;
}

/* One group: 1 with *msg filled, 0 when it has nothing, or -errno. */
static int poll_group(pg_ctx *ctx, struct group_ref *g, pg_message *msg)
{
	struct membership *m = g->mem;
	struct ring_view v;
	int r = next_wanted(ctx, g, &v);
	if (r == 0) {
		/* Down shows only once everything before it was read. */
		int st = ring_state_error(&m->ring);
		if (st == -ENOENT)
			return notice(ctx, g, msg, PG_GROUP_DOWN);
		r = st;
	}
	if (r == 0)
		return 0;
	if (r == -ECONNRESET) {
		uint32_t w = atomic_load(&m->ring.members[m->reader.slot].state);
		if (RING_STATE_OF(w) == RING_MEMBER_EVICTED &&
		    RING_GEN_OF(w) == RING_GEN_OF(m->reader.state_word))
			return notice(ctx, g, msg, PG_EVICTED);
		/* A group deleted while we were stopped past its grace period
		 * (its directory given back: our slot reads as free). */
		if (ring_state_error(&m->ring) == -ENOENT)
			return notice(ctx, g, msg, PG_GROUP_DOWN);
		/* Made to leave by another process: nothing to say. */
		member_end(ctx, g);
		return 0;
	}
	if (r < 0) {
		/* A corrupt group: unreadable for us. Leave it, so we no
		 * longer hold senders back. */
		member_leave_quiet(ctx, g);
		member_end(ctx, g);
		return r;
	}
	if (v.kind == RING_REC_DOWN)
		return notice(ctx, g, msg, PG_GROUP_DOWN);
	msg->kind = kind_of(v.kind);
	fill_from(ctx, msg, v.from_pid);
	/* Messages are from the master's node (from_node 0: the only one the
	 * ring has yet); an event names its member's node in its payload,
	 * checked as a node name before it is shown. */
	if (v.kind == RING_REC_MSG)
		node_of(m, v.from_node, msg->from.node);
	else if (v.len > 0 && v.len < PG_NODE_MAX) {
		char node[PG_NODE_MAX];
		memcpy(node, v.payload, v.len);
		node[v.len] = 0;
		if (ctl_check_node(node, v.len) == 0)
			memcpy(msg->from.node, node, sizeof(node));
	}
	msg->group = g->name;
	msg->seq = v.seq;
	msg->data = v.payload;
	msg->len = v.len;
	ctx->held = m;
	ctx->held_ref = g;
	ctx->held_next = v.next_pos;
	return 1;
}

/* Every group once, round robin so no group starves the others. A group
 * may lose its membership while we look at it (evicted, down). */
static int poll_every(pg_ctx *ctx, pg_message *msg)
{
	struct group_ref *g = ctx->next_rr ? ctx->next_rr : ctx->groups;
	for (unsigned i = 0, n = ctx->n_groups; i < n && g; i++) {
		int r = g->mem ? poll_group(ctx, g, msg) : 0;
		struct group_ref *next = g->next ? g->next : ctx->groups;
		if (r) {
			ctx->next_rr = next;
			return r;
		}
		g = next;
	}
	return 0;
}

/* The active groups once, round robin (ready.c keeps the list). */
static int poll_list(pg_ctx *ctx, pg_message *msg)
{
	struct group_ref *g = ctx->act_rr && ctx->act_rr->active ? ctx->act_rr : ctx->active;
	/* At most the list's length as it is now: a group that gets a new
	 * membership while we look joins it, and is looked at next time. */
	unsigned n = 0;
	for (struct group_ref *x = ctx->active; x; x = x->act_next)
		n++;
	for (unsigned i = 0; i < n && g; i++) {
		struct group_ref *next = g->act_next ? g->act_next : ctx->active;
		int r = g->mem ? poll_group(ctx, g, msg) : 0;
		if (!g->mem)
			ready_remove(ctx, g);
		if (r) {
			ctx->act_rr = next;
			return r;
		}
		g = next;
	}
	return 0;
}

/* The active groups, then those woken since: a group's completion stays
 * in the queue until everything was looked at. */
static int poll_active(pg_ctx *ctx, pg_message *msg)
{
	/* Taken at every call, so a group that woke is looked at even while
	 * another always has records; left in the queue until a whole pass
	 * finds nothing. */
	ready_reap(ctx);
	int r = poll_list(ctx, msg);
	if (r)
		return r;
	if (ready_reap(ctx) && (r = poll_list(ctx, msg)) != 0)
		return r;
	ready_release(ctx); /* all that woke was looked at: nothing left */
	return 0;
}

static int poll_all(pg_ctx *ctx, pg_message *msg)
{
	if (ctx->on_bells)
		bells_poll(ctx); /* groups rung while we were busy */
	return ctx_waits_by_list(ctx) ? poll_active(ctx, msg) : poll_every(ctx, msg);
}

/* The daemon is gone: every membership ends with PG_GROUP_DOWN, then
 * calls fail with -ENOTCONN. */
static int daemon_down(pg_ctx *ctx, pg_message *msg)
{
	for (struct group_ref *g = ctx->groups; g; g = g->next)
		if (g->mem)
			return notice(ctx, g, msg, PG_GROUP_DOWN);
	return -ENOTCONN;
}

static unsigned collect(pg_ctx *ctx, struct ring_sleep *s)
{
	s->n = 0;
	for (struct group_ref *g = ctx->groups; g && s->n < RING_WAIT_MAX; g = g->next)
		if (g->mem) {
			s->rings[s->n] = &g->mem->ring;
			s->pages[s->n++] = g->mem->reader.page;
		}
	return s->n;
}

bool recv_has_record(pg_ctx *ctx, struct group_ref *g)
{
	struct ring_view v;
	return next_wanted(ctx, g, &v) != 0 || ring_is_down(&g->mem->ring);
}

int pg_fd(pg_ctx *ctx)
{
	int err = ctx_check(ctx);
	if (err)
		return err;
	if (!ctx->have_uring) {
		bells_leave(ctx); /* pg_fd's io_uring waits on the wake words */
		if ((err = ready_start(ctx)))
			return err;
	}
	/* Armed now, whoever started the ring (many groups start it at a
	 * join, without arming): readable at the next record. */
	ready_arm_all(ctx);
	return ctx->uring.ring_fd;
}

/* Park until a record, a wake, the deadline or a signal. */
static int park(pg_ctx *ctx, pg_message *msg, int64_t timeout_ns)
{
	struct ring_sleep s;
	if (timeout_ns < 0 || timeout_ns > PG_PARK_SLICE_NS)
		timeout_ns = PG_PARK_SLICE_NS;
	if (ctx_waits_by_list(ctx)) {
		/* Waits armed on every quiet group: the first wake, or news
		 * from the daemon, ends it; pg_recv then looks again. */
		int r = ready_park(ctx, timeout_ns);
		member_free_ended(ctx);
		return r < 0 ? r : 0;
	}
	if (collect(ctx, &s) == 0) {
		/* No group: only the daemon can bring news (a join by another
		 * process, or its own end). */
		struct pollfd p = {.fd = ctx->sock, .events = POLLIN};
		int n = poll(&p, 1, (int)(timeout_ns / 1000000));
		return n < 0 && errno == EINTR ? -EINTR : 0;
	}
	ring_sleep_begin(&s);
	/* Look once more after announcing: pairs with ring_wake's fence. A
	 * membership that ends in this look keeps its mapping until the
	 * sleep is withdrawn from its page. */
	ctx->parking = true;
	int r = poll_all(ctx, msg);
	ctx->parking = false;
	if (r == 0)
		r = ring_sleep_wait(&s, timeout_ns);
	else if (r > 0)
		r = 1;
	ring_sleep_end(&s);
	member_free_ended(ctx);
	if (r == -ETIMEDOUT)
		r = 0;
	return r;
}

/*
 * How long to poll before parking, from how long waits for a record have
 * lasted: polling pays when the next record comes within the window, and
 * is only burnt CPU when it does not (a group at 1,000 msg/s waits 1 ms,
 * far past a 200 us window): then park at once. Calls that found a record
 * at once count as waits of zero, without reading the clock.
 */
static int64_t spin_window(pg_ctx *ctx)
{
	if (ctx->spin_fixed)
		return ctx->spin_ns;
	for (unsigned i = 0; i < ctx->hits && i < 8; i++)
		ctx->wait_avg_ns -= ctx->wait_avg_ns >> PG_WAIT_EWMA_SHIFT;
	ctx->hits = 0;
	/* Waits are wall time: a receiver preempted on a busy machine waits
	 * "long" though records keep coming. Only an average well past the
	 * window says they do not come in time. */
	if (ctx->wait_avg_ns > 2 * ctx->spin_ns)
		return 0; /* the next record is not likely within the window */
	/* The whole window, not just the usual wait: on few CPUs a record
	 * is often late by the scheduler, and parking then costs a wake-up
	 * in the tail (measured: p99 twice as long at N = 4). */
	return ctx->spin_ns;
}

/* A wait that began at `from` ended with a record now: learn from it. */
static void learn_wait(pg_ctx *ctx, int64_t from)
{
	if (ctx->spin_fixed)
		return;
	int64_t d = ring_now_ns() - from;
	/* A long idle spell says little more than "long": capped, so one
	 * pause does not stop polling for the next burst for long. */
	if (d > 4 * ctx->spin_ns)
		d = 4 * ctx->spin_ns;
	ctx->wait_avg_ns += (d - ctx->wait_avg_ns) / (1 << PG_WAIT_EWMA_SHIFT);
}

int pg_recv(pg_ctx *ctx, pg_message *msg, int timeout_ms)
{
	int err = ctx_check(ctx);
	if (err)
		return err;
	if (!msg || timeout_ms < -1)
		return -EINVAL;
	member_release_view(ctx);
	/* The common case, a record already there, reads no clock. A busy
	 * consumer still looks at its socket now and then: a join by another
	 * process must not wait until its groups run dry. */
	if (++ctx->fast_returns % PG_DRAIN_EVERY_RECORDS == 0)
		ctx_drain(ctx);
	int r = poll_all(ctx, msg);
	if (r) {
		ctx->hits += r > 0;
		return r < 0 ? r : 0;
	}
	int64_t now = ring_now_ns(), waited_from = now;
	int64_t deadline = timeout_ms < 0 ? -1 : now + (int64_t)timeout_ms * 1000000;
	int64_t spin_until = now + (timeout_ms ? spin_window(ctx) : 0);
	int64_t busy_until = now + ctx->busy_ns;
	bool asked_daemon = false, asked_before_park = false;
	unsigned rearmed = 0;
	for (;; r = poll_all(ctx, msg)) {
		if (r > 0 && timeout_ms)
			learn_wait(ctx, waited_from);
		if (r)
			return r < 0 ? r : 0;
		if (!ctx_node_alive(ctx))
			return daemon_down(ctx, msg) > 0 ? 0 : -ENOTCONN;
		now = ring_now_ns();
		/* News from the daemon (a join by another process, its end)
		 * costs a syscall: at most once a millisecond for pollers,
		 * always before parking. Not when we park on bells: there the
		 * daemon rings for what it sends unasked (RING_BELL_NEWS sets
		 * sock_news), and its end shows on the liveness page. */
		bool parking = timeout_ms != 0 && now >= spin_until;
		bool bells_tell = ctx->on_bells && timeout_ms != 0;
		if (ctx->sock_news) {
			/* The io_uring saw the daemon's socket readable. */
			ctx->sock_news = false;
			ctx_drain(ctx);
			ctx->last_drain_ns = now;
			continue;
		}
		if (!bells_tell && ((parking && !asked_before_park) ||
				    (!asked_daemon && now - ctx->last_drain_ns > PG_DRAIN_EVERY_NS))) {
			ctx_drain(ctx);
			ctx->last_drain_ns = now;
			asked_daemon = true;
			asked_before_park = parking;
			continue;
		}
		if (timeout_ms == 0) {
			/* Drained: the groups looked at wait again, so pg_fd
			 * turns readable at the next record. */
			/* Arm what is active; a group with a record after all
			 * is looked at again (a few times: records another
			 * process consumes, memberships that end). */
			if (ctx->have_uring && ready_arm_all(ctx) && rearmed++ < 4)
				continue;
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

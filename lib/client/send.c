// SPDX-License-Identifier: MIT
/*
 * The send side: a local pg_send claims its place in the ring itself (one
 * compare-and-swap), copies, commits with a release store and wakes only
 * sleepers. The daemon is asked once per group, for the fds.
 */
#include <errno.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include <string.h>

#include "client.h"
#include "ring/wait.h"

/* Ask the daemon for a writable mapping of the group. */
static int open_for_send(pg_ctx *ctx, struct group_ref **out, const char *group)
{
	ctx_begin(ctx, CTL_OPEN);
	ctl_put_str(&ctx->out, CTL_T_NAME, group);
	ctl_put_u32(&ctx->out, CTL_T_FLAGS, CTL_F_WRITE);
	struct ctl_in r;
	int fds[CTL_MAX_FDS];
	unsigned nfds = CTL_MAX_FDS;
	int err = ctx_call(ctx, &r, fds, &nfds);
	if (err)
		return err;
	uint32_t writer = 0;
	struct group_ref *g = NULL;
	if (nfds != 2 || ctl_get_u32(&r, CTL_T_WRITER, &writer) || writer >= RING_WRITER_SLOTS)
		err = -EPROTO;
	else if (!(g = ctx_ref(ctx, group)))
		err = -ENOMEM;
	else
		err = ring_map(&g->wr, fds[0], fds[1], true);
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	if (err)
		return err;
	g->can_send = true;
	g->writer = writer;
	*out = g;
	return 0;
}

static int sender(pg_ctx *ctx, const char *group, struct group_ref **out)
{
	int err = ctx_check(ctx);
	if (err)
		return err;
	struct group_ref *g = ctx->last;
	if (!g || !group || strcmp(g->name, group) != 0) {
		if ((err = ctx_check_name(group)))
			return err;
		g = ctx_find(ctx, group);
	}
	if (g && g->can_send && ring_is_down(&g->wr)) {
		/* Deleted (maybe re-created since): ask again. */
		ctx_drop_sender(ctx, g);
		g = NULL;
	}
	if (!g || !g->can_send) {
		if (ctx->daemon_gone)
			return -ENOTCONN;
		if ((err = open_for_send(ctx, &g, group)))
			return err;
	}
	ctx->last = g;
	*out = g;
	return 0;
}

/* Tell the daemon a member was evicted; it checks the slot itself. */
static void report_eviction(pg_ctx *ctx, struct group_ref *g, uint32_t slot, uint32_t word)
{
	ctx_begin(ctx, CTL_EVICT);
	ctl_put_str(&ctx->out, CTL_T_NAME, g->name);
	ctl_put_u32(&ctx->out, CTL_T_SLOT, slot);
	ctl_put_u32(&ctx->out, CTL_T_STATEWORD, word);
	ctx_notify(ctx);
}

/*
 * Claim room, waiting for the slowest member as the contract says: park on
 * its cursor; evict it when it has held us up for the group's stall limit.
 */
static int claim(pg_ctx *ctx, struct group_ref *g, size_t len, bool wait, struct ring_claim *c)
{
	if (len > g->wr.max_msg)
		return -EMSGSIZE;
	if (g->claiming)
		return -EBUSY;
	uint32_t held_by = UINT32_MAX;
	uint64_t held_at = 0;
	int64_t since = 0;
	for (;;) {
		uint32_t blocker;
		int err = ring_claim(&g->wr, g->writer, (uint32_t)len, RING_EVENT_RESERVE, c,
				     &blocker);
		if (err != -EAGAIN)
			return err;
		if (!wait)
			return -EAGAIN;
		if (ring_is_down(&g->wr))
			return -ENOENT;
		if (!ctx_node_alive(ctx))
			return -ENOTCONN; /* nobody will make room any more */
		if (blocker == UINT32_MAX) {
			sched_yield(); /* the tail moved under us: try again */
			continue;
		}
		if (blocker >= RING_MEMBER_SLOTS) {
			/* Another writer's open claim: never evicted; the node
			 * cancels it after the stall limit, and the space comes
			 * back when that writer commits, notices or dies. */
			struct timespec ts = {0, 200 * 1000};
			if (nanosleep(&ts, NULL) < 0 && errno == EINTR)
				return -EINTR;
			continue;
		}
		struct ring_member *m = &g->wr.members[blocker];
		uint64_t cur = atomic_load(&m->cursor);
		uint32_t word = atomic_load(&m->state);
		int64_t now = ring_now_ns();
		/* Our own unread records hold the room: waiting would never end. */
		bool self = g->member && g->reader.slot == blocker;
		if (blocker != held_by || cur != held_at) {
			held_by = blocker;
			held_at = cur;
			since = now;
		}
		int64_t left = (int64_t)g->wr.stall_ms * 1000000 - (now - since);
		if (self || left <= 0) {
			if (ring_member_evict(&g->wr, blocker, word))
				report_eviction(ctx, g, blocker, word);
			continue;
		}
		if (left > 10 * 1000000)
			left = 10 * 1000000;
		if (ring_wait_room(&g->wr, blocker, cur, left) == -EINTR)
			return -EINTR;
	}
}

static int send_common(pg_ctx *ctx, const char *group, const void *data, size_t len,
		       uint16_t flags, bool wait)
{
	struct group_ref *g;
	if (len && !data)
		return -EINVAL;
	int err = sender(ctx, group, &g);
	if (err)
		return err;
	if (!ctx_node_alive(ctx))
		return -ENOTCONN;
	struct ring_claim c;
	err = claim(ctx, g, len, wait, &c);
	if (err)
		return err;
	if (ctx->park_in_send)
		for (;;)
			pause();
	if (len)
		memcpy(c.payload, data, len);
	err = ring_commit(&g->wr, &c, RING_REC_MSG, flags, ctx->pid, 0);
	ring_wake(&g->wr);
	return err;
}

int pg_send(pg_ctx *ctx, const char *group, const void *data, size_t len)
{
	return send_common(ctx, group, data, len, 0, true);
}

int pg_esend(pg_ctx *ctx, const char *group, const void *data, size_t len)
{
	return send_common(ctx, group, data, len, RING_F_ESEND, true);
}

int pg_trysend(pg_ctx *ctx, const char *group, const void *data, size_t len)
{
	return send_common(ctx, group, data, len, 0, false);
}

int pg_send_claim(pg_ctx *ctx, const char *group, size_t len, void **buf)
{
	struct group_ref *g;
	if (!buf)
		return -EINVAL;
	int err = sender(ctx, group, &g);
	if (err)
		return err;
	if (!ctx_node_alive(ctx))
		return -ENOTCONN;
	err = claim(ctx, g, len, true, &g->claim);
	if (err)
		return err;
	g->claiming = true;
	*buf = g->claim.payload;
	return 0;
}

/* Close the claim whose buffer is `buf`: commit it, or abort it. */
static int end_claim(pg_ctx *ctx, void *buf, bool commit)
{
	int err = ctx_check(ctx);
	if (err)
		return err;
	struct group_ref *g = ctx->groups;
	while (g && !(g->claiming && g->claim.payload == buf))
		g = g->next;
	if (!g)
		return -EINVAL;
	g->claiming = false;
	if (ring_is_down(&g->wr)) {
		ctx_drop_sender(ctx, g); /* the mapping went only now */
		return commit ? -ENOENT : 0;
	}
	err = commit ? ring_commit(&g->wr, &g->claim, RING_REC_MSG, 0, ctx->pid, 0)
		     : ring_abort(&g->wr, &g->claim);
	/* Readers parked at this position move on: to the record, or past
	 * the padding. */
	ring_wake(&g->wr);
	return commit ? err : 0;
}

int pg_send_commit(pg_ctx *ctx, void *buf)
{
	return end_claim(ctx, buf, true);
}

int pg_send_abort(pg_ctx *ctx, void *buf)
{
	return end_claim(ctx, buf, false);
}

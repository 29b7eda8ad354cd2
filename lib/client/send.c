// SPDX-License-Identifier: MIT
/*
 * The send side: a local pg_send claims its place in the order itself (one
 * compare-and-swap), copies into its own area, publishes with one more and
 * wakes only sleepers. The daemon is asked once per group, for the fds.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "ring/wait.h"

/* The tail may move under a claim this many times before it says "busy"
 * and the caller looks at the world (node, group, signals) again. */
#define CLAIM_TRIES 4096u

void sender_drop(struct group_ref *g)
{
	/* An open claim's buffer lives in this mapping: it goes when the
	 * claim is committed or aborted. */
	if (!g->snd || g->snd->claiming)
		return;
	ring_unmap(&g->snd->ring);
	free(g->snd);
	g->snd = NULL;
}

void sender_abort_open(struct group_ref *g)
{
	struct sender *s = g->snd;
	if (s && s->claiming) {
		ring_abort(&s->ring, &s->claim);
		ring_wake(&s->ring);
		s->claiming = false;
	}
}

/* Ask the daemon for a writable mapping of the group and a writer slot. */
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
	uint64_t area_off = 0;
	struct group_ref *g = NULL;
	struct sender *s = NULL;
	struct ring_geometry geo;
	if (nfds != 3 || ctl_get_u32(&r, CTL_T_WRITER, &writer) || writer == RING_DAEMON_WRITER ||
	    ctl_get_u64(&r, CTL_T_FILEOFF, &area_off) || ctx_geometry(&r, &geo))
		err = -EPROTO;
	else if (!(g = ctx_ref(ctx, group)) || !(s = calloc(1, sizeof(*s))))
		err = -ENOMEM;
	else if (!(err = ring_map_as(&s->ring, fds[0], fds[1], true, &geo))) {
		/* Our own area, writable: the one place our records go. Its
		 * generation is the daemon's, in the directory. */
		if (writer >= s->ring.writer_slots)
			err = -EPROTO;
		else
			err = ring_area_attach(&s->ring, writer,
					       atomic_load(&s->ring.writer_ids[writer].gen), fds[2],
					       area_off, true);
		if (err)
			ring_unmap(&s->ring);
		/* Members asleep on bells hear us through our shelf's. */
		else if (!(s->ring.bells = bells_own(ctx, fds[2], area_off)) &&
			 area_off >= RING_BELL_BYTES) {
			ring_unmap(&s->ring);
			err = -ENOMEM;
		}
	}
	for (unsigned i = 0; i < nfds; i++)
		close(fds[i]);
	if (err) {
		free(s);
		return err;
	}
	ring_area_init(&s->area, writer);
	g->snd = s;
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
	if (g && g->snd && ring_is_down(&g->snd->ring)) {
		/* Deleted (maybe re-created since), or found corrupt. */
		err = ring_state_error(&g->snd->ring);
		sender_drop(g);
		if (err == -EBADMSG)
			return err;
	}
	if (!g || !g->snd) {
		if (ctx->daemon_gone)
			return -ENOTCONN;
		if ((err = open_for_send(ctx, &g, group)))
			return err;
	}
	ctx->last = g;
	*out = g;
	return 0;
}

static int sync_pages(pg_ctx *ctx, struct group_ref *g);

/* After a commit: a member that joined since our claim (its page not
 * mapped yet) may sleep on bells, which only its page names: map it first
 * (once per new member), then wake. */
static void wake_members(pg_ctx *ctx, struct group_ref *g)
{
	struct ring *r = &g->snd->ring;
	if (ring_pages_stale(r))
		sync_pages(ctx, g);
	ring_wake(r);
}

/* Ask the node to evict a member: only it writes the directory, and it
 * checks for itself that the member stalled (or is the caller's own). 0
 * when evicted, -EAGAIN when the node has not seen it stall long enough. */
static int ask_eviction(pg_ctx *ctx, struct group_ref *g, uint32_t slot, uint32_t word)
{
	struct ctl_in r;
	ctx_begin(ctx, CTL_EVICT);
	ctl_put_str(&ctx->out, CTL_T_NAME, g->name);
	ctl_put_u32(&ctx->out, CTL_T_SLOT, slot);
	ctl_put_u32(&ctx->out, CTL_T_STATEWORD, word);
	return ctx_call(ctx, &r, NULL, NULL);
}

struct page_fetch {
	pg_ctx *ctx;
	struct group_ref *g;
};

/* ring_page_fetch: a read-only fd of a member's page: from a shelf we
 * keep, where the directory says it is, or else from the daemon. */
static int fetch_page(void *arg, uint32_t slot, uint32_t word, int *fd, uint64_t *off,
		      struct ring_mpage **at, unsigned **users)
{
	struct page_fetch *f = arg;
	uint64_t shelf;
	if (ring_page_where(&f->g->snd->ring, slot, word, &shelf, off)) {
		/* In a window of the member's shelf of pages: no mapping, no
		 * fd of its own. */
		const uint8_t *p = ctx_shelf_window(f->ctx, shelf, *off, RING_PAGE, users);
		if (p) {
			*at = (struct ring_mpage *)p;
			return 0;
		}
	}
	ctx_begin(f->ctx, CTL_MPAGE);
	ctl_put_str(&f->ctx->out, CTL_T_NAME, f->g->name);
	ctl_put_u32(&f->ctx->out, CTL_T_SLOT, slot);
	ctl_put_u32(&f->ctx->out, CTL_T_STATEWORD, word);
	return ctx_call_fd(f->ctx, fd, off);
}

/* Members joined or left since we last looked: map the new ones' pages. */
static int sync_pages(pg_ctx *ctx, struct group_ref *g)
{
	struct page_fetch f = {.ctx = ctx, .g = g};
	int err = ring_pages_sync(&g->snd->ring, fetch_page, &f);
	/* -EAGAIN: the set kept changing; we stay cautious and look again at
	 * the next claim. -ESRCH: the member went meanwhile, likewise. */
	return err == -EAGAIN || err == -ESRCH ? 0 : err;
}

/*
 * Our own membership holds the room: waiting could never end, since only
 * our pg_recv moves it. A member that sent over a ring's worth without
 * receiving evicts itself (the contract); one that reads is told to.
 */
/* Our membership of g holding member slot `slot`, if one does: the head,
 * or one queued behind a membership that ended. */
static struct membership *own_membership(struct group_ref *g, uint32_t slot, uint32_t word)
{
	for (struct membership *m = g->mem; m; m = m->next)
		if (m->reader.slot == slot && m->reader.state_word == word)
			return m;
	return NULL;
}

static int blocked_by_self(pg_ctx *ctx, struct group_ref *g, struct membership *m, size_t len,
			   uint32_t word, uint64_t cursor)
{
	struct ring *r = &g->snd->ring;
	/* What we sent that it has not read, this message included: over a
	 * ring's bytes only by never receiving. */
	if (ring_area_unread(r, &g->snd->area, cursor) + ring_rec_bytes(len) <= r->capacity)
		return -EDEADLK;
	int err = ask_eviction(ctx, g, m->reader.slot, word);
	return err == -ESRCH ? 0 : err;
}

/*
 * Claim room, waiting for the slowest member as the contract says: park on
 * its cursor; evict it when it has held us up for the group's stall limit.
 * A member waiting at a claim nobody decided yet is not lagging: the node
 * cancels that claim after the stall limit, and the member moves on.
 */
static int claim(pg_ctx *ctx, struct group_ref *g, size_t len, bool wait, struct ring_claim *c)
{
	struct sender *s = g->snd;
	struct ring *r = &s->ring;
	if (len > r->max_msg)
		return -EMSGSIZE;
	if (s->claiming)
		return -EBUSY;
	uint32_t held_by = UINT32_MAX;
	uint64_t held_at = 0;
	int64_t since = 0;
	for (;;) {
		uint32_t blocker;
		int err;
		if (ring_pages_stale(r) && (err = sync_pages(ctx, g)))
			return err;
#ifdef PG_TEST_HOOKS
		/* Test builds only: a member may join between our look at the
		 * member set and our claim (it then reads what we commit). */
		const char *pause = getenv("PGROUP_TEST_CLAIM_PAUSE_US");
		if (pause)
			usleep((useconds_t)atoi(pause));
#endif
		err = ring_claim(r, &s->area, (uint32_t)len, RING_EVENT_RESERVE, CLAIM_TRIES, c,
				     &blocker);
		if (err != -EAGAIN)
			return err;
		if (!wait)
			return -EAGAIN;
		if ((err = ring_state_error(r)))
			return err;
		if (!ctx_node_alive(ctx))
			return -ENOTCONN; /* nobody will make room any more */
		if (blocker == UINT32_MAX) {
			sched_yield(); /* the tail moved under us: try again */
			continue;
		}
		/* State first, then the cursor: a cursor read before the state
		 * could be a previous holder's, and evict the next one. */
		uint32_t word = atomic_load(&r->members[blocker].state);
		uint64_t cur = ring_member_cursor(r, blocker);
		if (cur == UINT64_MAX)
			continue; /* its page went: the next round maps anew */
		int64_t now = ring_now_ns();
		struct membership *own = own_membership(g, blocker, word);
		if (own) {
			if ((err = blocked_by_self(ctx, g, own, len, word, cur)))
				return err;
			continue;
		}
		/* Only progress restarts the clock: a cursor that goes back
		 * (the member writes its own page) is not progress. */
		if (blocker != held_by || cur > held_at || ring_entry_open(r, cur)) {
			held_by = blocker;
			held_at = cur;
			since = now;
		}
		int64_t left = (int64_t)r->stall_ms * PG_MS - (now - since);
		if (left <= 0) {
			err = ask_eviction(ctx, g, blocker, word);
			if (err == 0 || err == -ESRCH)
				continue;
			if (err != -EAGAIN)
				return err;
			left = PG_ROOM_SLICE_NS; /* the node saw it move: a slice more */
		}
		if (left > PG_ROOM_SLICE_NS)
			left = PG_ROOM_SLICE_NS;
		if (ring_wait_room(r, blocker, cur, left) == -EINTR)
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
#ifdef PG_TEST_HOOKS
	/* Test builds only: stop for good between claim and commit, so a
	 * test can kill or stop a writer exactly there. */
	if (getenv("PGROUP_TEST_PARK_IN_SEND"))
		for (;;)
			pause();
#endif
	if (len)
		memcpy(c.payload, data, len);
	err = ring_commit(&g->snd->ring, &c, RING_REC_MSG, flags, ctx->dpid, 0);
	wake_members(ctx, g);
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
	err = claim(ctx, g, len, true, &g->snd->claim);
	if (err)
		return err;
	g->snd->claiming = true;
	*buf = g->snd->claim.payload;
	return 0;
}

/* Close the claim whose buffer is `buf`: commit it, or abort it. */
static int end_claim(pg_ctx *ctx, void *buf, bool commit)
{
	int err = ctx_check(ctx);
	if (err)
		return err;
	struct group_ref *g = ctx->groups;
	while (g && !(g->snd && g->snd->claiming && g->snd->claim.payload == buf))
		g = g->next;
	if (!g)
		return -EINVAL;
	struct sender *s = g->snd;
	s->claiming = false;
	if (ring_is_down(&s->ring)) {
		/* Deleted since the claim (or re-created: this mapping is the
		 * old group's, the new one never sees the claim). */
		err = ring_state_error(&s->ring);
		ring_abort(&s->ring, &s->claim);
		sender_drop(g);
		return commit ? err : 0;
	}
	err = commit ? ring_commit(&s->ring, &s->claim, RING_REC_MSG, 0, ctx->dpid, 0)
		     : ring_abort(&s->ring, &s->claim);
	/* Readers parked at this position move on: to the record, or past
	 * the withdrawn one. */
	wake_members(ctx, g);
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

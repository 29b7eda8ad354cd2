// SPDX-License-Identifier: MIT
/*
 * Memberships: taken from the daemon's grant, ended by a leave, an eviction
 * (once the user was told), or the group going down. A mapping lives only
 * as long as its membership, or the view pg_recv handed out from it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "ring/wait.h"

void member_area(pg_ctx *ctx, const char *group, const struct ctl_in *msg, int fd)
{
	uint32_t writer, gen;
	uint64_t off, shelf = 0; /* none: no window */
	if (ctl_get_u64(msg, CTL_T_SHELF, &shelf) == 0)
		ctx_shelf_keep(ctx, shelf, fd);
	/* Its writer's bell, before we look at the group again (what it
	 * rang before we heard its bell, we find there). */
	bells_areas(ctx, shelf, fd);
	struct group_ref *g = ctx_find(ctx, group);
	if (!g || ctl_get_u32(msg, CTL_T_WRITER, &writer) || ctl_get_u32(msg, CTL_T_GEN, &gen) ||
	    ctl_get_u64(msg, CTL_T_FILEOFF, &off))
		return;
	/* Every membership of the group maps it, queued ones too: in a
	 * window of its shelf if it fits one. */
	for (struct membership *m = g->mem; m; m = m->next) {
		if (writer >= m->ring.writer_slots || m->ring.area_gen[writer] == gen)
			continue;
		unsigned *users;
		const uint8_t *at = ctx_shelf_window(ctx, shelf, off, m->ring.capacity, &users);
		if (at ? ring_area_place(&m->ring, writer, gen, at, users) != 0
		       : fd < 0 || ring_area_attach(&m->ring, writer, gen, fd, off, false))
			continue;
		/* Its first record goes at its start: fault that page in now,
		 * not on the message path (a cold fault is ~20 us here). The
		 * writer's first record would make it memory anyway. */
		(void)*(volatile const uint8_t *)m->ring.area_at[writer];
	}
	ready_push(ctx, g);
}

/* Writer's area from a shelf we keep, where the directory says it is: in
 * a window of ours (-EALREADY: placed), or an fd of the shelf for the
 * caller to map (0: too big for a window); -ENOENT if we keep no such. */
static int area_from_shelf(struct membership *m, uint32_t writer, uint32_t gen, int *fd,
			   uint64_t *off)
{
	uint64_t shelf;
	if (!ring_area_where(&m->ring, writer, gen, &shelf, off))
		return -ENOENT;
	bells_areas(m->ctx, shelf, -1);
	unsigned *users;
	const uint8_t *at = ctx_shelf_window(m->ctx, shelf, *off, m->ring.capacity, &users);
	if (at) {
		*fd = -1;
		int err = ring_area_place(&m->ring, writer, gen, at, users);
		return err ? err : -EALREADY;
	}
	return (*fd = ctx_shelf_dup(m->ctx, shelf)) >= 0 ? 0 : -ENOENT;
}

/* ring's fetch_area for a membership. The daemon sent the writer's shelf
 * before any record could be in the area: find it where the directory
 * says, in a shelf we keep or one still in the socket; ask only if it is
 * not there (a shelf we let go of; asking costs nothing when it is). */
static int fetch_area(void *arg, uint32_t writer, uint32_t gen, int *fd, uint64_t *off)
{
	struct membership *m = arg;
	pg_ctx *ctx = m->ctx;
	int err = area_from_shelf(m, writer, gen, fd, off);
	if (err != -ENOENT)
		return err;
	ctx_drain(ctx);
	if (m->ring.area_gen[writer] == gen) {
		/* Mapped by the drain: nothing to hand over. */
		*fd = -1;
		return -EALREADY;
	}
	if ((err = area_from_shelf(m, writer, gen, fd, off)) != -ENOENT)
		return err;
	ctx_begin(ctx, CTL_AREA);
	ctl_put_str(&ctx->out, CTL_T_NAME, m->ref->name);
	ctl_put_u32(&ctx->out, CTL_T_WRITER, writer);
	ctl_put_u32(&ctx->out, CTL_T_GEN, gen);
	if ((err = ctx_call_fd(ctx, fd, off)))
		return err;
	/* A writer we were not told of (its notice did not fit our socket):
	 * its bell from now on. */
	uint64_t shelf, at;
	bells_areas(ctx, ring_area_where(&m->ring, writer, gen, &shelf, &at) ? shelf : 0, *fd);
	return 0;
}

int member_take(pg_ctx *ctx, struct group_ref *g, const struct ctl_in *msg, int *fds)
{
	uint32_t slot, word;
	uint64_t start, page_off;
	struct ring_geometry geo;
	int err = -EPROTO;
	struct membership *m = NULL;
	if (ctl_get_u32(msg, CTL_T_SLOT, &slot) || ctl_get_u32(msg, CTL_T_STATEWORD, &word) ||
	    ctl_get_u64(msg, CTL_T_CURSOR, &start) || slot >= RING_MEMBER_SLOTS_MAX ||
	    ctl_get_u64(msg, CTL_T_FILEOFF, &page_off) || ctx_geometry(msg, &geo))
		goto out;
	err = -ENOMEM;
	if (!(m = calloc(1, sizeof(*m))))
		goto out;
	/* Our own page is the one thing of the group we may write. */
	struct ring_mpage *page = ring_page_map(fds[2], page_off, true);
	if (!page) {
		err = -EPROTO;
		free(m);
		goto out;
	}
	err = ring_map_as(&m->ring, fds[0], fds[1], false, &geo);
	if (!err && slot >= m->ring.member_slots) {
		ring_unmap(&m->ring);
		err = -EPROTO;
	}
	if (err) {
		ring_page_unmap(page);
		free(m);
		goto out;
	}
	m->reader = (struct ring_reader){
	    .pos = start, .slot = slot, .state_word = word, .page = page};
	/* Fault in now the directory pages the first record of each new
	 * writer reads (who holds it, where its area is, our own state): in
	 * a ctx of 10,000 quiet groups a cold fault on the message path costs
	 * as much as the rest of the message. */
	(void)atomic_load_explicit(&m->ring.writer_ids[0].gen, memory_order_relaxed);
	(void)atomic_load_explicit(&m->ring.area_locs[0].shelf, memory_order_relaxed);
	(void)atomic_load_explicit(&m->ring.members[slot].state, memory_order_relaxed);
	uint32_t flags = 0;
	ctl_get_u32(msg, CTL_T_FLAGS, &flags);
	m->ring.seq_from_records = flags & CTL_F_REPLICA;
	if (ctl_get_str(msg, CTL_T_NODE, m->master, sizeof(m->master)) ||
	    ctl_check_node(m->master, strlen(m->master)))
		snprintf(m->master, sizeof(m->master), "%s", ctx->node);
	m->ctx = ctx;
	m->ref = g;
	m->ring.fetch_area = fetch_area;
	m->ring.fetch_arg = m;
	/* Behind the memberships not yet told they ended: PG_EVICTED comes
	 * before anything of a later membership. */
	if (!g->mem)
		ctx->n_mem++;
	struct membership **p = &g->mem;
	while (*p)
		p = &(*p)->next;
	*p = m;
	/* In more than a few groups, wait through an io_uring: polling and
	 * futex_waitv cost grows with every group (and covers at most
	 * RING_WAIT_MAX), the io_uring's does not (performance.md, "A
	 * consumer in many groups"). Without io_uring futex waits (before
	 * Linux 6.7) groups past RING_WAIT_MAX are seen every
	 * PG_PARK_SLICE_NS. */
	bells_own_pages(ctx, fds[2], page_off);
	if (ctx->n_mem > READY_MIN_GROUPS && !ctx_waits_by_list(ctx) && !ctx->closing &&
	    bells_start(ctx))
		ready_start(ctx);
	if (g->mem == m)
		ready_push(ctx, g);
out:
	for (unsigned i = 0; i < 3; i++)
		close(fds[i]);
	return err;
}

bool member_current(const struct group_ref *g)
{
	const struct membership *m = g->mem;
	if (!m)
		return false;
	uint32_t w =
	    atomic_load_explicit(&m->ring.members[m->reader.slot].state, memory_order_relaxed);
	return w == m->reader.state_word && !ring_is_down(&m->ring);
}

static void membership_free(struct membership *m)
{
	bool later = ready_forget(m); /* its sleep withdrawn first: the page goes */
	ring_page_unmap(m->reader.page);
	ring_unmap(&m->ring);
	if (!later)
		free(m);
}

void member_end(pg_ctx *ctx, struct group_ref *g)
{
	struct membership *m = g->mem;
	if (!m)
		return;
	if (!ctx->closing_forked)
		ready_disarm(m);
	g->mem = m->next;
	m->next = NULL;
	if (g->mem)
		ready_push(ctx, g); /* the next membership's records */
	else
		ready_remove(ctx, g);
	if (ctx->n_mem && !g->mem)
		ctx->n_mem--;
	if (ctx->held == m) {
		ctx->held_ref = NULL; /* freed by member_release_view */
	} else if (ctx->parking) {
		m->next = ctx->ended; /* asleep on its page: freed after */
		ctx->ended = m;
	} else {
		membership_free(m);
	}
}

void member_free_ended(pg_ctx *ctx)
{
	while (ctx->ended) {
		struct membership *m = ctx->ended;
		ctx->ended = m->next;
		membership_free(m);
	}
}

void member_end_current(pg_ctx *ctx, struct group_ref *g)
{
	/* The one still ours; ended ones ahead of it wait to be told. */
	struct membership **p = &g->mem;
	while (*p) {
		struct membership *m = *p;
		uint32_t w = atomic_load(&m->ring.members[m->reader.slot].state);
		if (w == m->reader.state_word) {
			if (p == &g->mem) {
				member_end(ctx, g);
			} else {
				/* Queued, never read: not held, not slept on. */
				*p = m->next;
				membership_free(m);
			}
			return;
		}
		p = &m->next;
	}
}

void member_leave_quiet(pg_ctx *ctx, struct group_ref *g)
{
	struct ctl_in r;
	ctx_begin(ctx, CTL_LEAVE);
	ctl_put_str(&ctx->out, CTL_T_NAME, g->name);
	ctl_put_u32(&ctx->out, CTL_T_PID, 0);
	/* This slot exactly: a later membership of ours may hold another. */
	ctl_put_u32(&ctx->out, CTL_T_SLOT, g->mem->reader.slot);
	ctx_call(ctx, &r, NULL, NULL);
}

void member_release_view(pg_ctx *ctx)
{
	struct membership *m = ctx->held;
	if (!m)
		return;
	ctx->held = NULL;
	if (!ctx->held_ref) {
		membership_free(m); /* ended while its view was out */
		return;
	}
	ring_release(&m->ring, &m->reader, ctx->held_next);
}

void member_free_all(pg_ctx *ctx, struct group_ref *g)
{
	while (g->mem)
		member_end(ctx, g);
}

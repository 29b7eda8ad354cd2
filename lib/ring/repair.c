// SPDX-License-Identifier: MIT
/*
 * What only the daemon does to a ring: admit and remove members, hand out
 * writer slots, cancel positions nobody will decide, mark a group down or
 * bad. Every loop here is bounded by a size copied at mapping time, never
 * by a value read from shared memory.
 */
#include "ring.h"

#include <errno.h>
#include <unistd.h>

#include "wait.h"

/* Only the owner's mapping writes the directory. */
static inline struct ring_member *dir_member(struct ring *r, uint32_t slot)
{
	return (struct ring_member *)&r->members[slot];
}

static inline struct ring_writer_id *dir_writer(struct ring *r, uint32_t slot)
{
	return (struct ring_writer_id *)&r->writer_ids[slot];
}

/* The member set changed: producers map pages anew. Release: pairs with
 * the acquire in ring_pages_sync and ring_pages_stale. */
static void dir_changed(struct ring *r)
{
	uint32_t seq = atomic_fetch_add(&r->dir->seq, 1) + 1;
	ring_pages_relist(r);
	r->pages->seq = seq;
}

int ring_member_add(struct ring *r, int32_t pid, uint32_t *slot, uint32_t *state_word,
		    uint64_t *cursor, const struct ring_file *page)
{
	if (!r->owner)
		return -EPERM;
	for (uint32_t i = 0; i < r->member_slots; i++) {
		struct ring_member *m = dir_member(r, i);
		uint32_t w = atomic_load(&m->state);
		if (RING_STATE_OF(w) != RING_MEMBER_FREE)
			continue;
		uint32_t nw = RING_MEMBER_WORD(RING_GEN_OF(w) + 1, RING_MEMBER_ACTIVE);
		int err = ring_pages_attach(r, i, nw, page->fd, page->off);
		if (err)
			return err;
		/* Its shelf's daemon bell: how a member on bells hears us. */
		struct ring_bell *bells = ring_file_bells(page);
		r->pages->bell[i] = bells ? bells + RING_BELL_DAEMON : NULL;
		struct ring_mpage *pg = r->pages->page[i];
		/* Cursor at the tail, then ACTIVE, then the cursor again at a
		 * tail read after ACTIVE, all seq_cst. A producer that missed
		 * the slot read its tail (ring_min_cursor reads the tail
		 * first) before our ACTIVE store, so before our second tail
		 * read: every bound it cached is <= the cursor we end with.
		 * Everything from that tail on is kept for the new member. */
		uint64_t t = atomic_load(&r->hdr->tail);
		atomic_store(&pg->cursor, t);
		m->pid = pid;
		/* Where its page is, before ACTIVE makes it current (seq_cst
		 * store of state below; ring_page_where reads it after). The
		 * release fence keeps these stores from being seen before the
		 * slot's FREE (a weakly ordered CPU could otherwise show the
		 * previous holder's state word with this page's location). */
		atomic_thread_fence(memory_order_release);
		atomic_store_explicit(&m->page.shelf, ring_file_shelf(page), memory_order_relaxed);
		atomic_store_explicit(&m->page.off, page->off, memory_order_relaxed);
		/* The wait slot's `waiters` is left alone: a producer parked
		 * on the slot's previous holder still counts itself out. */
		atomic_store(&r->mwait[i].wake_at, UINT64_MAX);
		/* Producers scan up to slot_hi: raise it before the slot goes
		 * ACTIVE, so no scan can stop short of an active slot. */
		if (atomic_load(&r->dir->slot_hi) <= i)
			atomic_store(&r->dir->slot_hi, i + 1);
		atomic_store(&m->state, nw);
		dir_changed(r);
		t = atomic_load(&r->hdr->tail);
		atomic_store(&pg->cursor, t);
		*slot = i;
		*state_word = nw;
		*cursor = t;
		return 0;
	}
	return -ENOSPC;
}

int ring_member_add_on(struct ring *r, int32_t pid, uint32_t *slot, uint32_t *state_word,
		       uint64_t *cursor, struct shelf **own, struct ring_file *page)
{
	int err = shelf_take(own, "pgroup:own", RING_PAGE, page);
	if (!err && (err = ring_member_add(r, pid, slot, state_word, cursor, page)))
		ring_file_release(page, RING_PAGE);
	return err;
}

/* The slot may have been what a producer waited on: wake it through the
 * member's page (the futex is the page's, whoever maps it). */
static void wake_room_waiters(struct ring *r, uint32_t slot)
{
	struct ring_mpage *pg = r->pages && slot < r->pages->cap ? r->pages->page[slot] : NULL;
	if (pg && atomic_load(&r->mwait[slot].waiters))
		ring_futex_wake((_Atomic uint32_t *)&pg->cursor);
}

void ring_member_remove(struct ring *r, uint32_t slot)
{
	if (!r->owner || slot >= r->member_slots)
		return;
	struct ring_member *m = dir_member(r, slot);
	uint32_t w = atomic_load(&m->state);
	atomic_store(&m->state, RING_MEMBER_WORD(RING_GEN_OF(w), RING_MEMBER_FREE));
	wake_room_waiters(r, slot);
	ring_pages_detach(r, slot);
	dir_changed(r);
}

bool ring_member_evict(struct ring *r, uint32_t slot, uint32_t state_word)
{
	if (!r->owner || slot >= r->member_slots ||
	    RING_STATE_OF(state_word) != RING_MEMBER_ACTIVE)
		return false;
	struct ring_member *m = dir_member(r, slot);
	uint32_t nw = RING_MEMBER_WORD(RING_GEN_OF(state_word), RING_MEMBER_EVICTED);
	if (!atomic_compare_exchange_strong(&m->state, &state_word, nw))
		return false;
	wake_room_waiters(r, slot);
	/* The evicted reader may be asleep: wake it so it learns. */
	ring_wake_every(r);
	return true;
}

int ring_writer_alloc(struct ring *r, int32_t pid, uint32_t *slot, const struct ring_file *area)
{
	if (!r->owner)
		return -EPERM;
	uint64_t min = ring_min_cursor(r, NULL);
	/* Slot 0 is the daemon's own. */
	for (uint32_t i = RING_DAEMON_WRITER + 1; i < r->writer_slots; i++) {
		struct ring_writer *w = &r->writers[i];
		struct ring_writer_id *id = dir_writer(r, i);
		if (atomic_load(&id->used))
			continue;
		/* Its previous holder's records may still be read: the new
		 * holder starts its area afresh, so wait until nobody can. A
		 * slot that never had an area had no holder (and its claim
		 * slot was never set). */
		uint64_t last = atomic_load(&w->last_pos);
		if (atomic_load(&id->gen) != 0 && last != RING_NO_CLAIM && last >= min)
			continue;
		/* A fresh area for the new holder: nobody can write into it
		 * but it, nor read its predecessor's records from it. */
		int err = ring_area_create(r, i, area);
		if (err)
			return err;
		atomic_store(&w->claim_pos, RING_NO_CLAIM);
		atomic_store(&w->claim_won, RING_NO_CLAIM);
		atomic_store(&w->last_pos, RING_NO_CLAIM);
		atomic_store(&id->pid, pid);
		atomic_store(&id->used, 1);
		*slot = i;
		return 0;
	}
	return -ENOSPC;
}

int ring_writer_alloc_on(struct ring *r, int32_t pid, uint32_t *slot, struct shelf **own)
{
	struct ring_file area;
	int err = shelf_take(own, "pgroup:own", r->capacity, &area);
	if (!err && (err = ring_writer_alloc(r, pid, slot, &area)))
		ring_file_release(&area, r->capacity);
	return err;
}

void ring_writer_free(struct ring *r, uint32_t slot)
{
	/* The pid stays: members may still read the last holder's records,
	 * and take their sender from it. */
	if (r->owner && slot < r->writer_slots)
		atomic_store(&dir_writer(r, slot)->used, 0);
}

int ring_seal_writer(struct ring *r, uint32_t writer)
{
	struct ring_writer *w = &r->writers[writer];
	uint64_t won = atomic_load(&w->claim_won), pos = atomic_load(&w->claim_pos);
	if (won != RING_NO_CLAIM) {
		ring_cancel_at(r, won); /* its CAS won: the position is its own */
	} else if (pos != RING_NO_CLAIM && pos < atomic_load(&r->hdr->tail)) {
		/* It died around its CAS: if that lost, the position is
		 * another writer's, which names it until it decides. */
		for (uint32_t i = 0; i < r->writer_slots; i++)
			if (i != writer &&
			    (i == RING_DAEMON_WRITER || atomic_load(&r->writer_ids[i].used)) &&
			    atomic_load(&r->writers[i].claim_pos) == pos)
				return -EAGAIN;
		/* Nobody names it: decided already (nothing to do), or ours. */
		ring_cancel_at(r, pos);
	}
	atomic_store(&w->claim_won, RING_NO_CLAIM);
	atomic_store(&w->claim_pos, RING_NO_CLAIM);
	return 0;
}

void ring_set_state(struct ring *r, enum ring_group_state st) { atomic_store(&r->hdr->state, st); }

int ring_state_error(const struct ring *r)
{
	uint32_t st = atomic_load_explicit(&r->hdr->state, memory_order_relaxed);
	if (st == RING_STATE_OPEN)
		return 0;
	return st == RING_STATE_DOWN ? -ENOENT : -EBADMSG;
}

uint64_t ring_lag(struct ring *r)
{
	uint64_t t = atomic_load(&r->hdr->tail);
	uint64_t min = ring_min_cursor(r, NULL);
	return min < t ? t - min : 0;
}

// SPDX-License-Identifier: MIT
/*
 * What only the daemon does to a ring: admit and remove members, hand out
 * writer slots, cancel positions nobody will decide, mark a group down or
 * bad. Every loop here is bounded by a size copied at mapping time, never
 * by a value read from shared memory.
 */
#include "ring.h"

#include <errno.h>

#include "wait.h"

int ring_member_add(struct ring *r, int32_t pid, uint32_t *slot, uint32_t *state_word,
		    uint64_t *cursor)
{
	for (uint32_t i = 0; i < RING_MEMBER_SLOTS; i++) {
		struct ring_member *m = &r->members[i];
		uint32_t w = atomic_load(&m->state);
		if (RING_STATE_OF(w) != RING_MEMBER_FREE)
			continue;
		uint32_t nw = RING_MEMBER_WORD(RING_GEN_OF(w) + 1, RING_MEMBER_ACTIVE);
		/* Cursor at the tail, then ACTIVE, then the cursor again at a
		 * tail read after ACTIVE, all seq_cst. A producer that missed
		 * the slot read its tail (ring_min_cursor reads the tail
		 * first) before our ACTIVE store, so before our second tail
		 * read: every bound it cached is <= the cursor we end with.
		 * Everything from that tail on is kept for the new member. */
		uint64_t t = atomic_load(&r->hdr->tail);
		atomic_store(&m->cursor, t);
		m->pid = pid;
		/* `waiters` is left alone: a producer parked on the slot's
		 * previous holder still counts itself out. */
		atomic_store(&m->wake_at, UINT64_MAX);
		/* Producers scan up to slot_hi: raise it before the slot goes
		 * ACTIVE, so no scan can stop short of an active slot. */
		if (atomic_load(&r->chdr->slot_hi) <= i)
			atomic_store(&r->chdr->slot_hi, i + 1);
		atomic_store(&m->state, nw);
		t = atomic_load(&r->hdr->tail);
		atomic_store(&m->cursor, t);
		*slot = i;
		*state_word = nw;
		*cursor = t;
		return 0;
	}
	return -ENOSPC;
}

static void wake_room_waiters(struct ring_member *m)
{
	if (atomic_load(&m->waiters))
		ring_futex_wake((_Atomic uint32_t *)&m->cursor);
}

void ring_member_remove(struct ring *r, uint32_t slot)
{
	struct ring_member *m = &r->members[slot];
	uint32_t w = atomic_load(&m->state);
	atomic_store(&m->state, RING_MEMBER_WORD(RING_GEN_OF(w), RING_MEMBER_FREE));
	/* The slot may have been what a producer waited on. */
	wake_room_waiters(m);
}

bool ring_member_evict(struct ring *r, uint32_t slot, uint32_t state_word)
{
	if (slot >= RING_MEMBER_SLOTS || RING_STATE_OF(state_word) != RING_MEMBER_ACTIVE)
		return false;
	struct ring_member *m = &r->members[slot];
	uint32_t nw = RING_MEMBER_WORD(RING_GEN_OF(state_word), RING_MEMBER_EVICTED);
	if (!atomic_compare_exchange_strong(&m->state, &state_word, nw))
		return false;
	wake_room_waiters(m);
	/* The evicted reader may be asleep: wake it so it learns. */
	atomic_fetch_add(&r->chdr->wake_seq, 1);
	ring_futex_wake(&r->chdr->wake_seq);
	return true;
}

int ring_writer_alloc(struct ring *r, int32_t pid, uint32_t *slot)
{
	uint64_t min = ring_min_cursor(r, NULL);
	/* Slot 0 is the daemon's own. */
	for (uint32_t i = RING_DAEMON_WRITER + 1; i < r->writer_slots; i++) {
		struct ring_writer *w = &r->writers[i];
		if (atomic_load(&w->pid) != 0)
			continue;
		/* Its previous holder's records may still be read: the new
		 * holder starts its area afresh, so wait until nobody can. */
		uint64_t last = atomic_load(&w->last_pos);
		if (last != RING_NO_CLAIM && last >= min)
			continue;
		atomic_store(&w->claim_pos, RING_NO_CLAIM);
		atomic_store(&w->claim_won, RING_NO_CLAIM);
		atomic_store(&w->last_pos, RING_NO_CLAIM);
		atomic_fetch_add(&w->gen, 1);
		atomic_store(&w->pid, pid);
		*slot = i;
		return 0;
	}
	return -ENOSPC;
}

void ring_writer_free(struct ring *r, uint32_t slot)
{
	if (slot < r->writer_slots)
		atomic_store(&r->writers[slot].pid, 0);
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
			if (i != writer && atomic_load(&r->writers[i].pid) != 0 &&
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

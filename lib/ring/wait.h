/* SPDX-License-Identifier: MIT */
/*
 * How ring users wait: receivers spin briefly, then announce their sleep and
 * park on the group's wake word; producers park on the cursor of the member
 * that holds the room they need. Futexes on shared (memfd) memory.
 */
#ifndef PG_RING_WAIT_H
#define PG_RING_WAIT_H

#include <stdint.h>
#include <time.h>

#include "ring.h"

int ring_futex_wait(_Atomic uint32_t *word, uint32_t expect, int64_t timeout_ns);
int ring_futex_wake(_Atomic uint32_t *word);

/* Monotonic clock in nanoseconds. */
int64_t ring_now_ns(void);

/* A parked producer waits for 1/RING_ROOM_BATCH of the member's backlog. */
#define RING_ROOM_BATCH 8

/*
 * Park until member `slot` of `r` has read an eighth of its backlog past
 * `cursor`, or its state changes, or `timeout_ns` passes. 0 when woken or
 * timed out (or at once, when we have no page of that member), -EINTR.
 */
int ring_wait_room(struct ring *r, uint32_t slot, uint64_t cursor, int64_t timeout_ns);

/* Up to this many rings can be waited on at once (futex_waitv's limit). */
#define RING_WAIT_MAX 128

/* Park until one of words[i] is woken (or differs from vals[i] already),
 * the timeout passes (-ETIMEDOUT) or a signal comes (-EINTR); 0 else.
 * n is 1..RING_WAIT_MAX. */
int ring_futex_waitv(_Atomic uint32_t *const *words, const uint32_t *vals, unsigned n,
		     int64_t timeout_ns);

/*
 * A receiver's sleep on several rings. ring_sleep_begin announces the sleep
 * (after which the caller must check its rings once more), ring_sleep_wait
 * parks, ring_sleep_end withdraws the announcement.
 */
struct ring_sleep {
	/* Filled by the caller: each ring, and our member page in it. */
	struct ring *rings[RING_WAIT_MAX];
	struct ring_mpage *pages[RING_WAIT_MAX];
	/* Taken by ring_sleep_begin: the caller may drop a ring (and clear
	 * its struct) while asleep on it; the mapping itself stays. */
	struct ring_data_hdr *hdr[RING_WAIT_MAX];
	uint32_t seen[RING_WAIT_MAX];
	unsigned n;
};
void ring_sleep_begin(struct ring_sleep *s);
int ring_sleep_wait(struct ring_sleep *s, int64_t timeout_ns);
void ring_sleep_end(struct ring_sleep *s);

#endif /* PG_RING_WAIT_H */

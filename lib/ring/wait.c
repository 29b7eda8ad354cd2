// SPDX-License-Identifier: MIT
/*
 * Parking and waking. Receivers: announce, re-check, park on the group's wake
 * word (one futex_waitv over all the ctx's groups). Producers: wake only when
 * the sleeper count says someone sleeps, one wake for all of them.
 */
#include "wait.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef FUTEX_32
#define FUTEX_32 2
struct futex_waitv {
	uint64_t val;
	uint64_t uaddr;
	uint32_t flags;
	uint32_t __reserved;
};
#endif

int64_t ring_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int ring_futex_wait(_Atomic uint32_t *word, uint32_t expect, int64_t timeout_ns)
{
	struct timespec ts, *tp = NULL;
	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tp = &ts;
	}
	/* Shared (not PRIVATE) futex: the word lives in a memfd mapped by
	 * several processes. */
	if (syscall(SYS_futex, word, FUTEX_WAIT, expect, tp, NULL, 0) < 0) {
		if (errno == EINTR)
			return -EINTR;
		if (errno == ETIMEDOUT)
			return -ETIMEDOUT;
	}
	return 0;
}

int ring_futex_wake(_Atomic uint32_t *word)
{
	long n = syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
	return n < 0 ? -errno : (int)n;
}

int ring_wait_room(struct ring *r, uint32_t slot, uint64_t cursor, int64_t timeout_ns)
{
	struct ring_pages *p = r->pages;
	if (!p || slot >= p->cap || !p->page[slot])
		return 0; /* a member we have no page of: the caller maps it first */
	struct ring_mwait *mw = &r->mwait[slot];
	_Atomic uint64_t *word = &p->page[slot]->cursor;
	uint32_t st = p->word[slot];
	/* Wait for an eighth of what it has left to read, not one record: a
	 * full ring would otherwise cost a wake (and two context switches)
	 * per message. It cannot go past the tail, so never ask for more. */
	uint64_t tail = atomic_load(&r->hdr->tail);
	uint64_t backlog = tail > cursor ? tail - cursor : 0;
	uint64_t want = cursor + (backlog / RING_ROOM_BATCH ? backlog / RING_ROOM_BATCH : 1);
	/* Announce, then re-check: pairs with ring_release's seq_cst store of
	 * the cursor followed by its loads of `waiters` and `wake_at`. */
	atomic_fetch_add(&mw->waiters, 1);
	uint64_t at = atomic_load(&mw->wake_at);
	/* A few tries: other producers lower it too. A threshold the member
	 * already passed was met and woken: it is ours to set, not to keep. */
	for (int i = 0; i < 8 && (want < at || at <= cursor); i++)
		if (atomic_compare_exchange_weak(&mw->wake_at, &at, want))
			break;
	/* A new park: the member wakes once for it (ring_release). */
	atomic_fetch_add(&mw->parks, 1);
	int err = 0;
	/* Moved since the caller looked: let it look again first. */
	uint64_t now = atomic_load(word);
	if (now == cursor && now < want && atomic_load(&r->members[slot].state) == st)
		err = ring_futex_wait((_Atomic uint32_t *)word, (uint32_t)now, timeout_ns);
	/* Met: clear the threshold we set (the member only reads it), unless
	 * another producer lowered it meanwhile. */
	at = want;
	if (atomic_load(word) >= want)
		atomic_compare_exchange_strong(&mw->wake_at, &at, UINT64_MAX);
	atomic_fetch_sub(&mw->waiters, 1);
	return err == -EINTR ? -EINTR : 0;
}

void ring_sleep_begin(struct ring_sleep *s)
{
	for (unsigned i = 0; i < s->n; i++) {
		struct ring_data_hdr *h = s->hdr[i] = s->rings[i]->hdr;
		/* Read the word before announcing: a wake after this load
		 * changes it, so futex_waitv will not sleep through it. */
		s->seen[i] = atomic_load(&h->wake_seq);
		atomic_fetch_add(&s->pages[i]->sleeping, 1);
	}
	/* Our increments before the caller's re-check of its rings: pairs
	 * with the seq_cst loads in ring_wake after a commit. */
	atomic_thread_fence(memory_order_seq_cst);
}

int ring_sleep_wait(struct ring_sleep *s, int64_t timeout_ns)
{
	if (s->n == 0)
		return 0;
	if (s->n == 1)
		return ring_futex_wait(&s->hdr[0]->wake_seq, s->seen[0], timeout_ns);
	_Atomic uint32_t *words[RING_WAIT_MAX];
	for (unsigned i = 0; i < s->n; i++)
		words[i] = &s->hdr[i]->wake_seq;
	return ring_futex_waitv(words, s->seen, s->n, timeout_ns);
}

int ring_futex_waitv(_Atomic uint32_t *const *words, const uint32_t *vals, unsigned n,
		     int64_t timeout_ns)
{
	if (n == 0 || n > RING_WAIT_MAX)
		return -EINVAL;
	struct futex_waitv w[RING_WAIT_MAX];
	for (unsigned i = 0; i < n; i++) {
		w[i].val = vals[i];
		w[i].uaddr = (uint64_t)(uintptr_t)words[i];
		w[i].flags = FUTEX_32;
		w[i].__reserved = 0;
	}
	/* futex_waitv takes an absolute CLOCK_MONOTONIC deadline. */
	struct timespec ts, *tp = NULL;
	if (timeout_ns >= 0) {
		int64_t at = ring_now_ns() + timeout_ns;
		ts.tv_sec = at / 1000000000;
		ts.tv_nsec = at % 1000000000;
		tp = &ts;
	}
	if (syscall(SYS_futex_waitv, w, n, 0, tp, CLOCK_MONOTONIC) < 0) {
		if (errno == EINTR)
			return -EINTR;
		if (errno == ETIMEDOUT)
			return -ETIMEDOUT;
	}
	return 0;
}

void ring_sleep_end(struct ring_sleep *s)
{
	for (unsigned i = 0; i < s->n; i++)
		atomic_fetch_sub(&s->pages[i]->sleeping, 1);
}

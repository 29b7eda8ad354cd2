// SPDX-License-Identifier: MIT
/*
 * Claim, commit, read, validate. The order of a group is the order of
 * positions in its ring; a position is claimed with one compare-and-swap on
 * the tail, so concurrent senders in many processes get one total order
 * without talking to the daemon.
 */
#include "ring.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wait.h"

int ring_check_sizes(uint64_t capacity, uint64_t max_msg)
{
	if (capacity < RING_MIN_BYTES || capacity > RING_MAX_BYTES)
		return -EINVAL;
	if (capacity & (capacity - 1))
		return -EINVAL;
	/* A claim is at most one record plus the pad before it, so one record
	 * must fit twice in what senders may fill. */
	if (max_msg == 0 || max_msg > UINT32_MAX ||
	    2 * ring_rec_bytes(max_msg) > capacity - RING_EVENT_RESERVE)
		return -EINVAL;
	return 0;
}

static int make_memfd(const char *name, size_t bytes)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	/* A memfd's inode is 0777: make it unopenable for writing through
	 * /proc/PID/fd, so a read-only fd stays read-only. */
	if (fchmod(fd, 0400) < 0 || ftruncate(fd, (off_t)bytes) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int ring_create(uint64_t capacity, uint32_t max_msg, uint32_t stall_ms, const char *name,
		int *data_fd, int *cursor_fd)
{
	char label[64];
	int err = ring_check_sizes(capacity, max_msg);
	if (err)
		return err;
	snprintf(label, sizeof(label), "pgroup:%.40s", name);
	int dfd = make_memfd(label, RING_DATA_OFF + capacity);
	if (dfd < 0)
		return dfd;
	int cfd = make_memfd(label, RING_CURSOR_BYTES);
	if (cfd < 0) {
		close(dfd);
		return cfd;
	}
	struct ring_data_hdr *h =
		mmap(NULL, RING_DATA_OFF, PROT_READ | PROT_WRITE, MAP_SHARED, dfd, 0);
	struct ring_cursor_hdr *ch =
		mmap(NULL, RING_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
	if (h == MAP_FAILED || ch == MAP_FAILED) {
		err = -errno;
		if (h != MAP_FAILED)
			munmap(h, RING_DATA_OFF);
		if (ch != MAP_FAILED)
			munmap(ch, RING_PAGE);
		close(dfd);
		close(cfd);
		return err;
	}
	h->magic = RING_DATA_MAGIC;
	h->version = RING_VERSION;
	h->hdr_bytes = RING_DATA_OFF;
	h->max_msg = max_msg;
	h->capacity = capacity;
	h->writer_slots = RING_WRITER_SLOTS;
	h->stall_ms = stall_ms;
	atomic_init(&h->tail, 0);
	atomic_init(&h->cached_min, 0);
	atomic_init(&h->state, RING_STATE_OPEN);
	/* No slot holds a claim (ring_min_cursor counts open claims). */
	struct ring_writer *w = (struct ring_writer *)((uint8_t *)h + RING_WRITERS_OFF);
	for (uint32_t i = 0; i < RING_WRITER_SLOTS; i++) {
		atomic_init(&w[i].claim_pos, RING_NO_CLAIM);
		atomic_init(&w[i].claim_won, RING_NO_CLAIM);
	}
	ch->magic = RING_CURSOR_MAGIC;
	ch->version = RING_VERSION;
	ch->member_slots = RING_MEMBER_SLOTS;
	/* Nobody else maps these yet: the fds go out after this returns. */
	munmap(h, RING_DATA_OFF);
	munmap(ch, RING_PAGE);
	*data_fd = dfd;
	*cursor_fd = cfd;
	return 0;
}

static int fd_bytes(int fd, size_t want)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	return (size_t)st.st_size == want ? 0 : -EBADMSG;
}

int ring_map(struct ring *r, int data_fd, int cursor_fd, bool writable)
{
	memset(r, 0, sizeof(*r));
	/* Sizes before any access: touching a page past the end of a short
	 * memfd would be SIGBUS, not an error. */
	struct stat st;
	if (fstat(data_fd, &st) < 0)
		return -errno;
	if (st.st_size < (off_t)RING_DATA_OFF)
		return -EBADMSG;
	struct ring_data_hdr *h = mmap(NULL, RING_PAGE, PROT_READ, MAP_SHARED, data_fd, 0);
	if (h == MAP_FAILED)
		return -errno;
	/* Copy the sizes once; a writer may scribble on the header later. */
	uint64_t cap = h->capacity;
	uint32_t max_msg = h->max_msg, stall_ms = h->stall_ms;
	bool ok = h->magic == RING_DATA_MAGIC && h->version == RING_VERSION &&
		  h->hdr_bytes == RING_DATA_OFF && h->writer_slots == RING_WRITER_SLOTS;
	munmap(h, RING_PAGE);
	if (!ok || ring_check_sizes(cap, max_msg))
		return -EBADMSG;
	int err = fd_bytes(data_fd, RING_DATA_OFF + cap);
	if (!err)
		err = fd_bytes(cursor_fd, RING_CURSOR_BYTES);
	if (err)
		return err;

	int prot = PROT_READ | (writable ? PROT_WRITE : 0);
	void *d = mmap(NULL, RING_DATA_OFF + cap, prot, MAP_SHARED, data_fd, 0);
	if (d == MAP_FAILED)
		return -errno;
	void *c = mmap(NULL, RING_CURSOR_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, cursor_fd, 0);
	if (c == MAP_FAILED) {
		err = -errno;
		munmap(d, RING_DATA_OFF + cap);
		return err;
	}
	r->chdr = c;
	if (r->chdr->magic != RING_CURSOR_MAGIC || r->chdr->version != RING_VERSION ||
	    r->chdr->member_slots != RING_MEMBER_SLOTS) {
		munmap(d, RING_DATA_OFF + cap);
		munmap(c, RING_CURSOR_BYTES);
		return -EBADMSG;
	}
	r->hdr = d;
	r->writers = (struct ring_writer *)((uint8_t *)d + RING_WRITERS_OFF);
	r->data = (uint8_t *)d + RING_DATA_OFF;
	r->members = (struct ring_member *)((uint8_t *)c + RING_MEMBERS_OFF);
	r->capacity = cap;
	r->mask = cap - 1;
	r->max_msg = max_msg;
	r->stall_ms = stall_ms;
	r->data_map_bytes = RING_DATA_OFF + cap;
	r->writable = writable;
	return 0;
}

void ring_unmap(struct ring *r)
{
	if (r->hdr)
		munmap(r->hdr, r->data_map_bytes);
	if (r->chdr)
		munmap(r->chdr, RING_CURSOR_BYTES);
	memset(r, 0, sizeof(*r));
}

static uint32_t slot_limit(struct ring *r)
{
	/* slot_hi is written by the daemon, but the cursor page is writable by
	 * every member: clamp it. Acquire pairs with the release in
	 * ring_member_add so a slot below it is seen initialised. */
	uint32_t hi = atomic_load_explicit(&r->chdr->slot_hi, memory_order_acquire);
	return hi > RING_MEMBER_SLOTS ? RING_MEMBER_SLOTS : hi;
}

uint64_t ring_min_cursor(struct ring *r, uint32_t *slowest)
{
	/* Tail first, then the slots, all sequentially consistent: a member
	 * added after this tail load starts at a cursor >= it, and one added
	 * before is seen by the slot loads (see docs/design.md, "joining"). */
	uint64_t tail = atomic_load(&r->hdr->tail), min = tail;
	uint32_t hi = slot_limit(r), who = UINT32_MAX;
	for (uint32_t i = 0; i < hi; i++) {
		struct ring_member *m = &r->members[i];
		if (RING_STATE_OF(atomic_load(&m->state)) != RING_MEMBER_ACTIVE)
			continue;
		uint64_t c = atomic_load(&m->cursor);
		if (c < min) {
			min = c;
			who = i;
		}
	}
	/* An open claim is space its writer may still write: not to be
	 * reused, even when no member reads (its writer may be stopped after
	 * a cancel). The intent is published before the claiming CAS. */
	/* A member waiting at an open claim is not lagging: the claim wins
	 * a tie, and its writer is never evicted. A place a whole ring
	 * behind the tail cannot be an open claim (none is ever lapped):
	 * garbage, ignored. */
	uint64_t oldest = tail > r->capacity ? tail - r->capacity : 0;
	for (uint32_t i = 0; i < RING_WRITER_SLOTS; i++) {
		struct ring_writer *w = &r->writers[i];
		uint64_t c = atomic_load(&w->claim_pos);
		if (c <= min && c >= oldest && atomic_load(&w->pid) != 0) {
			min = c;
			who = RING_BLOCKED_BY_WRITER(i);
		}
	}
	if (slowest)
		*slowest = who;
	/* Raise the cached bound; a lower value already there stays valid. */
	uint64_t old = atomic_load_explicit(&r->hdr->cached_min, memory_order_relaxed);
	while (old < min && !atomic_compare_exchange_weak_explicit(
				    &r->hdr->cached_min, &old, min, memory_order_relaxed,
				    memory_order_relaxed))
		;
	return min;
}

static struct ring_rec *rec_at(struct ring *r, uint64_t pos)
{
	return (struct ring_rec *)(r->data + (pos & r->mask));
}

static bool publish(struct ring_rec *h, uint64_t pos);

int ring_claim(struct ring *r, uint32_t writer, uint32_t len, uint32_t reserve,
	       struct ring_claim *c, uint32_t *blocker)
{
	if (len > r->max_msg)
		return -EMSGSIZE;
	if (!r->writable || writer >= RING_WRITER_SLOTS)
		return -EBADF;
	uint64_t rec = ring_rec_bytes(len);
	uint64_t limit = r->capacity - reserve;
	struct ring_writer *w = &r->writers[writer];
	uint64_t t = atomic_load_explicit(&r->hdr->tail, memory_order_relaxed), need;
	for (;;) {
		/* Every claim keeps the tail aligned; another value means a
		 * writer scribbled on it: no claim can be placed safely. */
		if (t % RING_ALIGN)
			return -EBADMSG;
		uint64_t left = r->capacity - (t & r->mask);
		need = rec <= left ? rec : left + rec;
		/* Capacity is checked before the CAS that claims: the bound
		 * used is a lower bound of every live cursor, now and later. */
		uint64_t min = atomic_load_explicit(&r->hdr->cached_min, memory_order_relaxed);
		if (t + need > min + limit) {
			min = ring_min_cursor(r, blocker);
			if (t + need > min + limit) {
				if (atomic_load_explicit(&r->hdr->tail, memory_order_relaxed) != t) {
					t = atomic_load_explicit(&r->hdr->tail,
								 memory_order_relaxed);
					continue;
				}
				return -EAGAIN;
			}
		}
		/* Say what we are about to claim before claiming it, so a
		 * death right after the CAS leaves a hole of known owner. The
		 * seq_cst CAS below orders these stores before the claim. */
		/* claim_pos last, release: whoever reads it (acquire) sees
		 * the length that goes with it. */
		atomic_store_explicit(&w->claim_len, need, memory_order_relaxed);
		atomic_store_explicit(&w->claim_pos, t, memory_order_release);
		if (atomic_compare_exchange_weak(&r->hdr->tail, &t, t + need)) {
			/* Won. From here on the node may cancel the claim; in
			 * the few instructions before, it leaves it alone. */
			atomic_store_explicit(&w->claim_won, t, memory_order_release);
			break;
		}
		/* Lost: withdraw the intent, or its stale place would hold the
		 * room back (ring_min_cursor counts open claims), ours too. */
		atomic_store_explicit(&w->claim_pos, RING_NO_CLAIM, memory_order_relaxed);
	}
	c->pos = t;
	c->len_total = need;
	c->rec_pos = t + need - rec;
	c->rec = rec_at(r, c->rec_pos);
	c->payload = (uint8_t *)c->rec + sizeof(struct ring_rec);
	c->len = len;
	c->writer = writer;
	if (need > rec) {
		/* Fill to the end of the area; the record starts at offset 0.
		 * Should the node cancel us first, its marker stands: both
		 * mean "skip this many bytes". */
		struct ring_rec *pad = rec_at(r, t);
		atomic_store_explicit(&pad->len, (uint32_t)(need - rec - sizeof(struct ring_rec)),
				      memory_order_relaxed);
		pad->kind = RING_REC_PAD;
		pad->flags = RING_FLAGS(0, writer);
		pad->seq = 0;
		pad->from_pid = 0;
		pad->from_node = 0;
		publish(pad, t);
	}
	return 0;
}

/*
 * Set commit to ~pos unless the node cancelled the record. The CAS is
 * release: the header and payload written before it become visible to a
 * reader whose acquire load of commit (ring_read) sees ~pos. It pairs with
 * the node's CAS in cancel_unit: exactly one of the two wins.
 */
static bool publish(struct ring_rec *h, uint64_t pos)
{
	uint64_t cur = atomic_load_explicit(&h->commit, memory_order_relaxed);
	/* seq_cst, not just release: ring_wake's load of `sleepers` must come
	 * after it in the single total order (a locked instruction on x86
	 * anyway, so ring_wake needs no fence of its own). */
	while (cur != RING_CANCELLED(pos))
		if (atomic_compare_exchange_weak_explicit(&h->commit, &cur, ~pos,
							  memory_order_seq_cst, memory_order_relaxed))
			return true;
	return false;
}

static void claim_done(struct ring *r, const struct ring_claim *c)
{
	/* Release: our last write into the claim happens before the space
	 * may be reused (ring_min_cursor counts open claims). */
	atomic_store_explicit(&r->writers[c->writer].claim_won, RING_NO_CLAIM,
			      memory_order_relaxed);
	atomic_store_explicit(&r->writers[c->writer].claim_pos, RING_NO_CLAIM,
			      memory_order_release);
}

int ring_commit(struct ring *r, const struct ring_claim *c, uint16_t kind, uint16_t flags,
		int32_t from_pid, uint32_t from_node)
{
	struct ring_rec *h = c->rec;
	atomic_store_explicit(&h->len, c->len, memory_order_relaxed);
	h->kind = kind;
	h->flags = RING_FLAGS(flags, c->writer);
	h->seq = c->rec_pos / RING_ALIGN + 1;
	h->from_pid = from_pid;
	h->from_node = from_node;
	bool ok = publish(h, c->rec_pos);
	claim_done(r, c);
	return ok ? 0 : -ECANCELED;
}

int ring_abort(struct ring *r, const struct ring_claim *c)
{
	struct ring_rec *h = c->rec;
	atomic_store_explicit(&h->len, c->len, memory_order_relaxed);
	h->kind = RING_REC_PAD;
	h->flags = RING_FLAGS(0, c->writer);
	h->seq = 0;
	h->from_pid = 0;
	h->from_node = 0;
	bool ok = publish(h, c->rec_pos);
	claim_done(r, c);
	return ok ? 0 : -ECANCELED;
}

void ring_wake(struct ring *r)
{
	/* Every commit before this is a seq_cst compare-and-swap (publish,
	 * cancel_unit), so this seq_cst load of `sleepers` follows it in the
	 * single total order: it pairs with the seq_cst increment and fence
	 * in ring_sleep_begin before the receiver's re-check of its rings.
	 * One side always sees the other, so no wake is lost. */
	if (atomic_load(&r->chdr->sleepers) == 0)
		return;
	atomic_fetch_add_explicit(&r->chdr->wake_seq, 1, memory_order_seq_cst);
	ring_futex_wake(&r->chdr->wake_seq);
}

static bool kind_valid(uint16_t kind)
{
	return kind >= RING_REC_PAD && kind <= RING_REC_DOWN;
}

int ring_read(struct ring *r, struct ring_reader *rd, struct ring_view *v)
{
	struct ring_member *me = &r->members[rd->slot];
	for (;;) {
		if (atomic_load_explicit(&me->state, memory_order_relaxed) != rd->state_word)
			return -ECONNRESET;
		uint64_t pos = rd->pos, off = pos & r->mask;
		if (pos % RING_ALIGN)
			return -EBADMSG; /* a forged length led here */
		struct ring_rec *h = rec_at(r, pos);
		/* Acquire: pairs with the release CAS of commit in publish
		 * (a writer) and in cancel_unit (the node). */
		uint64_t commit = atomic_load_explicit(&h->commit, memory_order_acquire);
		if (commit == RING_CANCELLED(pos)) {
			/* Its length is the node's, or the writer's own, which
			 * rounds to the same size; the rest is not read. */
			uint64_t bytes = ring_rec_bytes(
				atomic_load_explicit(&h->len, memory_order_relaxed));
			if (bytes > r->capacity || off + bytes > r->capacity)
				return -EBADMSG;
			rd->pos = pos + bytes;
			continue;
		}
		if (commit != ~pos)
			return 0;
		/* Copy the header once; the writer could still change it. */
		struct ring_rec copy = {.len = atomic_load_explicit(&h->len, memory_order_relaxed),
					.kind = h->kind,
					.flags = h->flags,
					.seq = h->seq,
					.from_pid = h->from_pid,
					.from_node = h->from_node};
		if (!kind_valid(copy.kind))
			return -EBADMSG;
		uint64_t bytes = ring_rec_bytes(copy.len);
		if (copy.len > r->capacity || off + bytes > r->capacity)
			return -EBADMSG;
		if (copy.kind == RING_REC_PAD) {
			rd->pos = pos + bytes;
			continue;
		}
		if (copy.len > r->max_msg || copy.seq <= rd->last_seq)
			return -EBADMSG;
		rd->last_seq = copy.seq;
		v->kind = copy.kind;
		v->flags = copy.flags & 0xffu; /* the writer's number is not the reader's business */
		v->len = copy.len;
		v->seq = copy.seq;
		v->from_pid = copy.from_pid;
		v->from_node = copy.from_node;
		v->payload = (const uint8_t *)h + sizeof(struct ring_rec);
		v->pos = pos;
		v->next_pos = pos + bytes;
		return 1;
	}
}

void ring_release(struct ring *r, struct ring_reader *rd, uint64_t pos)
{
	struct ring_member *me = &r->members[rd->slot];
	rd->pos = pos;
	/* seq_cst store, then the load of `waiters`: pairs with the producer's
	 * increment of waiters and re-check of the cursor in ring_wait_room. */
	atomic_store(&me->cursor, pos);
	if (atomic_load(&me->waiters)) {
		uint64_t at = atomic_load(&me->wake_at);
		/* Wake at the threshold a producer asked for, then clear it
		 * unless a producer lowered it meanwhile (it stays then). */
		if (pos >= at) {
			atomic_compare_exchange_strong(&me->wake_at, &at, UINT64_MAX);
			ring_futex_wake((_Atomic uint32_t *)&me->cursor);
		}
	}
}

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
	/* Slot 0 is the daemon's own. */
	for (uint32_t i = RING_DAEMON_WRITER + 1; i < RING_WRITER_SLOTS; i++) {
		struct ring_writer *w = &r->writers[i];
		if (atomic_load(&w->pid) != 0)
			continue;
		atomic_store(&w->claim_pos, RING_NO_CLAIM);
		atomic_store(&w->claim_won, RING_NO_CLAIM);
		atomic_store(&w->claim_len, 0);
		atomic_fetch_add(&w->gen, 1);
		atomic_store(&w->pid, pid);
		*slot = i;
		return 0;
	}
	return -ENOSPC;
}

void ring_writer_free(struct ring *r, uint32_t slot)
{
	if (slot < RING_WRITER_SLOTS)
		atomic_store(&r->writers[slot].pid, 0);
}

/*
 * Cancel one unit of a claim: the record (or end-of-area pad) at pos,
 * `bytes` long. Wins or loses against the writer's publish in one CAS.
 */
static void cancel_unit(struct ring *r, uint64_t pos, uint64_t bytes)
{
	struct ring_rec *h = rec_at(r, pos);
	uint64_t cur = atomic_load_explicit(&h->commit, memory_order_acquire);
	if (cur == ~pos || cur == RING_CANCELLED(pos))
		return; /* committed (or cancelled) already */
	/* Readers skip by this length. Set it only while what is there does
	 * not round to `bytes`: the writer's own length does, and a record
	 * it commits before our CAS keeps its exact length. */
	uint32_t l = atomic_load(&h->len);
	while (ring_rec_bytes(l) != bytes &&
	       !atomic_compare_exchange_weak(&h->len, &l, (uint32_t)(bytes - sizeof(struct ring_rec))))
		;
	/* seq_cst like publish: ring_wake follows. */
	while (cur != ~pos &&
	       !atomic_compare_exchange_weak_explicit(&h->commit, &cur, RING_CANCELLED(pos),
						      memory_order_seq_cst, memory_order_acquire))
		;
}

/* A claim's units: an end-of-area pad when it wraps, then its record. */
static void cancel_claim(struct ring *r, uint64_t pos, uint64_t len)
{
	uint64_t left = r->capacity - (pos & r->mask);
	if (len > left) {
		cancel_unit(r, pos, left);
		pos += left;
		len -= left;
	}
	cancel_unit(r, pos, len);
}

static bool claim_sane(struct ring *r, uint64_t pos, uint64_t len)
{
	uint64_t tail = atomic_load(&r->hdr->tail);
	return len >= RING_ALIGN && len <= r->capacity && len % RING_ALIGN == 0 &&
	       pos % RING_ALIGN == 0 && pos + len <= tail && pos + r->capacity >= tail;
}

int ring_cancel_writer(struct ring *r, uint32_t writer, uint64_t pos)
{
	struct ring_writer *w = &r->writers[writer];
	/* Position (acquire), its length, the position again: the pair is
	 * one claim's only if the position did not move in between. */
	if (atomic_load_explicit(&w->claim_pos, memory_order_acquire) != pos)
		return -ESTALE; /* it committed, or claimed again */
	uint64_t len = atomic_load(&w->claim_len);
	if (atomic_load(&w->claim_pos) != pos)
		return -ESTALE;
	/* Only a claim whose CAS won is surely this writer's: an intent
	 * alone may name another writer's place. */
	if (atomic_load(&w->claim_won) != pos)
		return -EAGAIN;
	if (!claim_sane(r, pos, len))
		return -EBADMSG;
	cancel_claim(r, pos, len);
	return 0;
}

int ring_seal_writer(struct ring *r, uint32_t writer)
{
	struct ring_writer *w = &r->writers[writer];
	uint64_t pos = atomic_load(&w->claim_pos), len = atomic_load(&w->claim_len);
	int err = 0;
	if (pos == RING_NO_CLAIM)
		return 0;
	/* Had its compare-and-swap succeeded, the tail would be past the
	 * claim for good: it died before, or its CAS failed. */
	if (atomic_load(&r->hdr->tail) < pos + len)
		goto done;
	if (!claim_sane(r, pos, len)) {
		err = -EBADMSG; /* not a claim a writer could hold: drop it */
		goto done;
	}
	if (atomic_load(&w->claim_won) == pos) {
		cancel_claim(r, pos, len); /* its CAS won: the place is its own */
		goto done;
	}
	/* The slot says what it meant to claim, written before the CAS. If
	 * the CAS failed, the place belongs to another writer: then another
	 * slot names it (until that writer commits), or a record there
	 * carries another writer's number. */
	for (uint32_t i = 0; i < RING_WRITER_SLOTS; i++)
		if (i != writer && atomic_load(&r->writers[i].pid) != 0 &&
		    atomic_load(&r->writers[i].claim_pos) == pos)
			return -EAGAIN;
	struct ring_rec *h = rec_at(r, pos);
	uint64_t cur = atomic_load_explicit(&h->commit, memory_order_acquire);
	if ((cur == ~pos || cur == RING_CANCELLED(pos)) && RING_F_WRITER(h->flags) != writer)
		goto done; /* someone else's record: the claim was not ours */
	cancel_claim(r, pos, len);
done:
	atomic_store(&w->claim_won, RING_NO_CLAIM);
	atomic_store(&w->claim_pos, RING_NO_CLAIM);
	return err;
}

void ring_set_down(struct ring *r)
{
	atomic_store(&r->hdr->state, RING_STATE_DOWN);
}

bool ring_is_down(const struct ring *r)
{
	return atomic_load_explicit(&r->hdr->state, memory_order_relaxed) != RING_STATE_OPEN;
}

uint64_t ring_fill(struct ring *r)
{
	uint64_t t = atomic_load(&r->hdr->tail);
	return t - ring_min_cursor(r, NULL);
}

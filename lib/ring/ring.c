// SPDX-License-Identifier: MIT
/*
 * The message path: claim, commit, read. A position of the order is claimed
 * with one compare-and-swap on the tail, so concurrent senders in many
 * processes get one total order without talking to the daemon; the record
 * itself goes into the sender's own area, and the order entry is published
 * with one more compare-and-swap.
 */
#include "ring.h"

#include <errno.h>
#include <unistd.h>

#include "wait.h"

/* The lap of position `pos`, as an entry carries it. */
static inline uint32_t lap_of(const struct ring *r, uint64_t pos)
{
	return (uint32_t)(pos >> r->order_shift) & ((1u << RING_E_LAP_BITS) - 1);
}

/* How an entry's lap relates to the lap of the position being looked at:
 * <0 older (or EMPTY), 0 this position's, >0 newer (the order lapped it). */
static inline int lap_cmp(uint64_t e, uint32_t lap)
{
	if (RING_E_STATE(e) == RING_E_EMPTY)
		return -1;
	uint32_t d = (RING_E_LAP(e) - lap) & ((1u << RING_E_LAP_BITS) - 1);
	if (d == 0)
		return 0;
	return d < (1u << (RING_E_LAP_BITS - 1)) ? 1 : -1;
}

/*
 * Where position `pos` has its entry. Consecutive positions go to
 * consecutive cache lines (8 entries a line, 8 lines apart in time by
 * order_slots / 8 positions), so a writer deciding the next entry never
 * takes the line a reader is reading the previous one from.
 */
static inline _Atomic uint64_t *entry(struct ring *r, uint64_t pos)
{
	return &r->order[((pos & r->line_mask) << 3) | ((pos >> r->line_shift) & 7)];
}

static inline struct ring_rec *area_rec(struct ring *r, uint32_t writer, uint64_t byte_pos)
{
	return (struct ring_rec *)(r->area_at[writer] + (byte_pos & r->amask));
}

uint64_t ring_min_cursor(struct ring *r, uint32_t *slowest)
{
	/* Tail first, then the slots, all sequentially consistent: a member
	 * added after this tail load starts at a cursor >= it, and one added
	 * before is seen by the slot loads (docs/design.md, "joining"). */
	uint64_t tail = atomic_load(&r->hdr->tail), min = tail;
	uint64_t cached = atomic_load_explicit(&r->hdr->cached_min, memory_order_relaxed);
	struct ring_pages *p = r->pages;
	uint32_t who = UINT32_MAX;
	bool missing = p == NULL;
	/* The directory is the daemon's alone; clamp anyway, it costs
	 * nothing. Acquire pairs with the release in ring_member_add. */
	uint32_t hi = atomic_load_explicit(&r->dir->slot_hi, memory_order_acquire);
	if (hi > r->member_slots)
		hi = r->member_slots;
	if (p && hi > p->cap) {
		/* Slots past our tables have no page of ours: unknown. */
		missing = true;
		hi = p->cap;
	}
	for (uint32_t i = 0; p && i < hi; i++) {
		uint32_t w = atomic_load(&r->members[i].state);
		if (RING_STATE_OF(w) != RING_MEMBER_ACTIVE)
			continue;
		struct ring_mpage *pg = p->page[i];
		if (p->word[i] != w || !pg) {
			missing = true; /* joined since we last asked: unknown */
			continue;
		}
		uint64_t c = atomic_load(&pg->cursor);
		if (c < min) {
			min = c;
			who = i;
		}
	}
	if (missing) {
		/* A member whose page we have not mapped is somewhere at or
		 * above the cached bound: that is all we may assume. The caller
		 * maps the new pages (ring_pages_sync) and asks again. */
		if (cached < min) {
			min = cached;
			who = UINT32_MAX;
		}
	} else {
		/* Raise the cached bound; a lower value already there stays
		 * valid. A few tries: others raise it too, and it is a hint. */
		for (int i = 0; i < 4 && cached < min; i++)
			if (atomic_compare_exchange_weak_explicit(&r->hdr->cached_min, &cached, min,
								  memory_order_relaxed,
								  memory_order_relaxed))
				break;
	}
	if (slowest)
		*slowest = who;
	return min;
}

bool ring_tail_forged(struct ring *r, uint64_t cursor)
{
	uint64_t tail = atomic_load(&r->hdr->tail);
	if (cursor >= tail || tail - cursor <= r->order_slots)
		return false; /* within reach: nothing to judge */
	/* An honest tail that far ahead means the order lapped the cursor's
	 * position (decided it again) or a writer holds the position a lap
	 * on, open: then the member wrote its cursor back. Neither: nothing
	 * was ever claimed there, the tail was moved by hand. */
	uint64_t e = atomic_load(entry(r, cursor));
	if (lap_cmp(e, lap_of(r, cursor)) > 0)
		return false;
	uint64_t next = cursor + r->order_slots;
	for (uint32_t i = 0; i < r->writer_slots; i++)
		if (atomic_load(&r->writers[i].claim_pos) == next ||
		    atomic_load(&r->writers[i].claim_won) == next)
			return false;
	return true;
}

bool ring_entry_open(struct ring *r, uint64_t pos)
{
	if (pos >= atomic_load_explicit(&r->hdr->tail, memory_order_relaxed))
		return false;
	uint64_t e = atomic_load_explicit(entry(r, pos), memory_order_relaxed);
	return lap_cmp(e, lap_of(r, pos)) < 0;
}

/*
 * Free the oldest records of our area that every member is past (`min`).
 * The headers are ours: we wrote them, in order, between head and tail.
 * Each step moves head by at least one unit, so this ends within tail.
 */
static int area_release(struct ring *r, struct ring_area *a, uint64_t min)
{
	if (a->last_pos == RING_NO_CLAIM || a->last_pos < min) {
		/* Everything is read: start again at the area's beginning, so
		 * a writer whose readers keep up stays in a few warm lines. */
		if (a->tail & r->amask)
			a->tail = (a->tail | r->amask) + 1;
		a->head = a->tail;
		return 0;
	}
	while (a->head < a->tail) {
		const struct ring_rec *h = area_rec(r, a->writer, a->head);
		uint64_t bytes = ring_rec_bytes(h->len);
		if (h->order_pos >= min)
			break;
		if (bytes > a->tail - a->head || (a->head & r->amask) + bytes > r->capacity)
			return -EBADMSG; /* our own area is not what we wrote */
		a->head += bytes;
	}
	return 0;
}

uint64_t ring_area_unread(struct ring *r, const struct ring_area *a, uint64_t from)
{
	uint64_t bytes = 0;
	for (uint64_t at = a->head; at < a->tail;) {
		const struct ring_rec *h = area_rec(r, a->writer, at);
		uint64_t n = ring_rec_bytes(h->len);
		if (n > a->tail - at || (at & r->amask) + n > r->capacity)
			break; /* not what we wrote (a stray write of ours): stop */
		if (h->kind != RING_REC_WRAP && h->order_pos >= from)
			bytes += n;
		at += n;
	}
	return bytes;
}

/* Room in our area for `rec` bytes at its tail (after a wrap if needed). */
static bool area_fits(const struct ring *r, const struct ring_area *a, uint64_t rec,
		      uint64_t *skip)
{
	uint64_t left = r->capacity - (a->tail & r->amask);
	*skip = rec <= left ? 0 : left;
	return a->tail + *skip + rec - a->head <= r->capacity;
}

/* Both kinds of room at once: the next order position and our area. */
static bool has_room(struct ring *r, struct ring_area *a, uint64_t t, uint64_t min,
		     uint64_t limit, uint64_t rec, uint64_t *skip, int *err)
{
	if (t + 1 > min + limit)
		return false;
	if (area_fits(r, a, rec, skip))
		return true;
	if ((*err = area_release(r, a, min)))
		return false;
	return area_fits(r, a, rec, skip);
}

int ring_claim(struct ring *r, struct ring_area *a, uint32_t len, uint32_t reserve,
	       unsigned tries, struct ring_claim *c, uint32_t *blocker)
{
	if (len > r->max_msg)
		return -EMSGSIZE;
	if (!r->writable || a->writer >= r->writer_slots || !r->area_gen[a->writer])
		return -EBADF; /* not a writer here, or its area is not mapped */
	if (reserve >= r->order_slots)
		return -EINVAL;
	uint64_t rec = ring_rec_bytes(len), skip = 0, limit = r->order_slots - reserve;
	struct ring_writer *w = &r->writers[a->writer];
	uint64_t t = atomic_load_explicit(&r->hdr->tail, memory_order_relaxed);
	int err = 0;
	for (unsigned i = 0;; i++) {
		if (blocker)
			*blocker = UINT32_MAX;
		if (i == tries)
			return -EAGAIN; /* the tail kept moving: *blocker says nobody */
		/* Room is checked before the CAS that claims: the bound used is
		 * a lower bound of every live cursor, now and later. */
		uint64_t min = atomic_load_explicit(&r->hdr->cached_min, memory_order_relaxed);
		if (!has_room(r, a, t, min, limit, rec, &skip, &err)) {
			if (err)
				return err;
			uint32_t who;
			min = ring_min_cursor(r, &who);
			if (blocker)
				*blocker = who;
			/* No honest claim puts the tail more than the order's
			 * size past the slowest member. Either the member wrote
			 * its own page back, or a sender forged the tail. What
			 * a member writes is no evidence against the group: it
			 * holds us up like any laggard (and is evicted like one,
			 * by the node); the node judges the tail itself
			 * (registry_tick). Without a member, the tail is forged. */
			if (t > min + r->order_slots)
				return who != UINT32_MAX ? -EAGAIN : -EBADMSG;
			if (!has_room(r, a, t, min, limit, rec, &skip, &err)) {
				if (err)
					return err;
				uint64_t now = atomic_load_explicit(&r->hdr->tail,
								    memory_order_relaxed);
				if (now != t) {
					t = now;
					continue;
				}
				return -EAGAIN;
			}
		}
		/* Say what we are about to claim before claiming it, so a
		 * death right after the CAS leaves an entry of known owner.
		 * The seq_cst CAS below orders this store before the claim. */
		atomic_store_explicit(&w->claim_pos, t, memory_order_relaxed);
		if (atomic_compare_exchange_weak(&r->hdr->tail, &t, t + 1))
			break;
		/* Lost: withdraw the intent, then try the next position. */
		atomic_store_explicit(&w->claim_pos, RING_NO_CLAIM, memory_order_relaxed);
	}
	/* Won. From here on the node may cancel the position; in the few
	 * instructions before, it leaves it alone (ring_seal_writer). */
	atomic_store_explicit(&w->claim_won, t, memory_order_relaxed);
	atomic_store_explicit(&w->last_pos, t, memory_order_relaxed);
	if (skip) {
		/* The rest of the area is too short: mark it for our own
		 * area_release, freed with the record before it. */
		struct ring_rec *wrap = area_rec(r, a->writer, a->tail);
		wrap->order_pos = a->last_pos;
		wrap->len = (uint32_t)(skip - sizeof(struct ring_rec));
		wrap->kind = RING_REC_WRAP;
		a->tail += skip;
	}
	c->pos = t;
	c->unit = (a->tail & r->amask) / RING_ALIGN;
	c->at = a->tail;
	c->rec = area_rec(r, a->writer, a->tail);
	c->payload = (uint8_t *)c->rec + sizeof(struct ring_rec);
	c->len = len;
	c->writer = a->writer;
	a->tail += rec;
	a->last_pos = t;
	return 0;
}

/*
 * Decide the entry of `pos`: CAS it from any value of an older lap to
 * `want`. False when a value of pos's lap (cancelled, or committed) or a
 * newer one is there: the decision was made, and not by us. seq_cst, not
 * just release: the header and payload written before become visible to a
 * reader whose acquire load of the entry sees it (ring_read), and
 * ring_wake's loads of the members' sleep words come after it in the
 * single total order.
 * Bounded: the entry is in memory every sender can write.
 */
static bool decide(struct ring *r, uint64_t pos, uint64_t want)
{
	_Atomic uint64_t *e = entry(r, pos);
	uint32_t lap = lap_of(r, pos);
	uint64_t cur = atomic_load_explicit(e, memory_order_relaxed);
	for (int i = 0; i < 64; i++) {
		if (lap_cmp(cur, lap) >= 0)
			return false;
		if (atomic_compare_exchange_weak_explicit(e, &cur, want, memory_order_seq_cst,
							  memory_order_relaxed))
			return true;
	}
	return false;
}

static void claim_done(struct ring *r, const struct ring_claim *c)
{
	struct ring_writer *w = &r->writers[c->writer];
	atomic_store_explicit(&w->claim_won, RING_NO_CLAIM, memory_order_relaxed);
	atomic_store_explicit(&w->claim_pos, RING_NO_CLAIM, memory_order_relaxed);
}

int ring_commit(struct ring *r, const struct ring_claim *c, uint16_t kind, uint16_t flags,
		int32_t from_pid, uint32_t from_node)
{
	/* A sender's record says where in its area it is: its claim order. */
	return ring_commit_seq(r, c, kind, flags, from_pid, from_node, c->at);
}

int ring_commit_seq(struct ring *r, const struct ring_claim *c, uint16_t kind, uint16_t flags,
		    int32_t from_pid, uint32_t from_node, uint64_t seq)
{
	struct ring_rec *h = c->rec;
	h->order_pos = c->pos;
	h->len = c->len;
	h->kind = kind;
	h->flags = flags;
	h->from_pid = from_pid;
	h->from_node = from_node;
	h->seq = seq;
	bool ok = decide(r, c->pos,
			 RING_E_MAKE(lap_of(r, c->pos), c->unit, c->writer, RING_E_COMMITTED));
	claim_done(r, c);
	return ok ? 0 : -ECANCELED;
}

int ring_abort(struct ring *r, const struct ring_claim *c)
{
	/* The record stays in our area under its position, freed with it;
	 * marked unreadable, so an entry someone else forges for it is
	 * refused rather than delivering what we withdrew. */
	c->rec->order_pos = c->pos;
	c->rec->len = c->len;
	c->rec->kind = RING_REC_WRAP;
	bool ok = decide(r, c->pos, RING_E_MAKE(lap_of(r, c->pos), 0, 0, RING_E_CANCELLED));
	claim_done(r, c);
	return ok ? 0 : -ECANCELED;
}

int ring_cancel_at(struct ring *r, uint64_t pos)
{
	if (pos >= atomic_load(&r->hdr->tail))
		return -EAGAIN;
	_Atomic uint64_t *e = entry(r, pos);
	if (lap_cmp(atomic_load(e), lap_of(r, pos)) >= 0)
		return -ESTALE;
	if (decide(r, pos, RING_E_MAKE(lap_of(r, pos), 0, 0, RING_E_CANCELLED)))
		return 0;
	return lap_cmp(atomic_load(e), lap_of(r, pos)) >= 0 ? -ESTALE : -EBUSY;
}

void ring_bell_ring(struct ring_bell *b, uint32_t token)
{
	/* Only the holder of the shelf writes its bells, one thread at a time
	 * (a ctx's); what a member scribbles on its own daemon bell misleads
	 * only itself, and head is used modulo the table. The newest hint is
	 * not repeated: a member woken looks at it whether or not head moved. */
	uint32_t head = atomic_load_explicit(&b->head, memory_order_relaxed);
	if (atomic_load_explicit(&b->hint[(head - 1) % RING_BELL_HINTS], memory_order_relaxed) !=
	    token) {
		atomic_store_explicit(&b->hint[head % RING_BELL_HINTS], token, memory_order_relaxed);
		/* Release: the member's acquire of head sees the hint. */
		atomic_store_explicit(&b->head, head + 1, memory_order_release);
	}
	/* Seq_cst: ordered after our commit's decision and our load of the
	 * member's sleep, as wake_seq's increment is (ring_wake). */
	atomic_fetch_add_explicit(&b->seq, 1, memory_order_seq_cst);
	ring_futex_wake(&b->seq);
}

/* The bell to ring for the member of `slot` whose page names a token: the
 * daemon's bell for it, or ours; NULL if there is none. */
static struct ring_bell *bell_of(const struct ring *r, const struct ring_pages *p, uint32_t slot,
				 const struct ring_mpage *pg)
{
	if (p->bell && p->bell[slot])
		return p->bell[slot];
	if (!r->bells || p->own)
		return NULL;
	uint32_t key = atomic_load_explicit(&pg->bell_key, memory_order_relaxed);
	return &r->bells[key % RING_BELL_SLOTS];
}

/* Ring the bell of each member in `slot`s with a token, asleep (or any,
 * with `all`); true if one without a bell sleeps (or any, with `all`). */
static bool ring_bells(struct ring *r, bool all)
{
	struct ring_pages *p = r->pages;
	bool others = all;
	for (uint32_t k = 0, n = p->n_live; k < n; k++) {
		uint32_t slot = p->live[k];
		const struct ring_mpage *pg = p->page[slot];
		if (!pg || (!all && !atomic_load(&pg->sleeping)))
			continue;
		uint32_t token = atomic_load(&pg->bell_token);
		struct ring_bell *b = token ? bell_of(r, p, slot, pg) : NULL;
		if (b)
			ring_bell_ring(b, token);
		else
			others = true;
	}
	return others;
}

void ring_wake(struct ring *r)
{
	/* Every decision before this is a seq_cst compare-and-swap (decide),
	 * so these seq_cst loads of the directory's seq and the members'
	 * sleep words follow it in the single total order: they pair with
	 * the seq_cst increment and fence in ring_sleep_begin before the
	 * receiver's re-check of its rings. One side always sees the other,
	 * so no wake is lost. A member set we are not sure of (it changed
	 * since our pages were mapped) is woken unasked. A member on bells
	 * is woken through its bell; the wake word only for the others. */
	struct ring_pages *p = r->pages;
	if (p) {
		bool synced = p->synced && atomic_load(&r->dir->seq) == p->seq;
		if (!ring_bells(r, false) && synced)
			return;
	}
	atomic_fetch_add_explicit(&r->hdr->wake_seq, 1, memory_order_seq_cst);
	ring_futex_wake(&r->hdr->wake_seq);
}

void ring_wake_every(struct ring *r)
{
	if (r->pages)
		ring_bells(r, true);
	atomic_fetch_add_explicit(&r->hdr->wake_seq, 1, memory_order_seq_cst);
	ring_futex_wake(&r->hdr->wake_seq);
}

/* Map an area we have not seen (a new writer, or a slot handed out again):
 * the first record of each writer costs one round trip to the daemon. */
static int area_fetch(struct ring *r, uint32_t writer, uint32_t gen)
{
	int fd = -1;
	uint64_t off = 0;
	if (!r->fetch_area)
		return -ENOENT;
	int err = r->fetch_area(r->fetch_arg, writer, gen, &fd, &off);
	if (err == -EALREADY && r->area_gen[writer] == gen)
		return 0; /* the fetcher mapped it itself */
	if (!err) {
		err = ring_area_attach(r, writer, gen, fd, off, false);
		close(fd);
	}
	return err;
}

/*
 * A sender claims in order, and writes its records into its area in that
 * order: of two of its records, the one later in the group's order is the
 * one later in its area, for every reader, whichever way it reads (a
 * node's stream reads again from an earlier position). A sender that
 * rewrites the tail or the order (its memory) to give a later claim an
 * earlier position breaks that: forged. The daemon's area is not looked
 * at (its seq is the master's numbering, and no sender writes it).
 */
static bool in_claim_order(const struct ring_seen *s, uint32_t gen, uint64_t pos, uint64_t at)
{
	if (s->gen != gen)
		return true; /* nothing read of this area yet */
	if (pos == s->pos)
		return at == s->at;
	return (pos > s->pos) == (at > s->at);
}

static bool kind_readable(uint16_t kind)
{
	return kind >= RING_REC_MSG && kind <= RING_REC_DOWN;
}

/* Something is wrong at our position: if we were evicted meanwhile, that
 * is all it means (the order may then have lapped us); else it is forged. */
static int read_fault(const struct ring_member *me, const struct ring_reader *rd)
{
	if (atomic_load_explicit(&me->state, memory_order_acquire) != rd->state_word)
		return -ECONNRESET;
	return -EBADMSG;
}

int ring_read(struct ring *r, struct ring_reader *rd, struct ring_view *v)
{
	const struct ring_member *me = &r->members[rd->slot];
	uint64_t from = rd->pos;
	int ret = 0;
	/* At most a whole order of cancelled entries: they are in memory any
	 * sender can write, so no unbounded walk. */
	for (uint64_t n = 0; n < r->order_slots; n++) {
		uint64_t pos = rd->pos;
		/* Acquire: pairs with the seq_cst CAS in decide (the writer's
		 * commit, or a cancel). */
		uint64_t e = atomic_load_explicit(entry(r, pos), memory_order_acquire);
		int cmp = lap_cmp(e, lap_of(r, pos));
		if (cmp < 0) {
			/* Not decided yet. Nothing to read is also when an
			 * evicted member must learn it was: look at our state
			 * here (a record found is checked after its copy). */
			if (atomic_load_explicit(&me->state, memory_order_relaxed) != rd->state_word)
				return -ECONNRESET;
			break;
		}
		if (cmp > 0)
			return read_fault(me, rd); /* the order went past us */
		if (RING_E_STATE(e) == RING_E_CANCELLED) {
			rd->pos = pos + 1;
			continue;
		}
		if (RING_E_STATE(e) != RING_E_COMMITTED)
			return read_fault(me, rd);
		uint32_t writer = RING_E_WRITER(e);
		uint64_t off = RING_E_UNIT(e) * RING_ALIGN;
		if (writer >= r->writer_slots || off + sizeof(struct ring_rec) > r->capacity)
			return read_fault(me, rd);
		/* The writer's area as it is now: no member can still read an
		 * earlier holder's (the node hands a slot out again only when
		 * every member is past its last record). Acquire: pairs with
		 * the release in ring_area_create. */
		uint32_t gen = atomic_load_explicit(&r->writer_ids[writer].gen, memory_order_acquire);
		if (gen == 0)
			return read_fault(me, rd); /* no area: only a forgery names it */
		if (r->area_gen[writer] != gen) {
			int fe = area_fetch(r, writer, gen);
			/* The daemon says the slot has another area than the
			 * directory does: forged. Anything else (no answer, out
			 * of fds, the group deleted) is "not yet": the caller
			 * looks at the group's state and tries again later. */
			if (fe == -ESTALE || fe == -EPROTO || fe == -EINVAL)
				return read_fault(me, rd);
			if (fe)
				break;
		}
		const struct ring_rec *h = area_rec(r, writer, off);
		/* Copy the header once; the writer could still change it. */
		struct ring_rec copy = *h;
		/* A member evicted meanwhile may have read a reused record:
		 * only while we are still a member is the copy the record. */
		if (atomic_load_explicit(&me->state, memory_order_acquire) != rd->state_word)
			return -ECONNRESET;
		if (copy.order_pos != pos || !kind_readable(copy.kind) || copy.len > r->max_msg ||
		    off + ring_rec_bytes(copy.len) > r->capacity)
			return read_fault(me, rd);
		if (writer != RING_DAEMON_WRITER) {
			struct ring_seen *seen = &rd->seen[writer];
			if (__builtin_expect(!in_claim_order(seen, gen, pos, copy.seq), 0))
				return read_fault(me, rd);
			seen->pos = pos;
			seen->at = copy.seq;
			seen->gen = gen;
		}
		v->kind = copy.kind;
		v->flags = copy.flags;
		v->len = copy.len;
		v->seq = r->seq_from_records && writer == RING_DAEMON_WRITER && copy.seq ? copy.seq
											 : pos + 1;
		/* The sender is who holds the writer slot, as the daemon wrote
		 * it in the directory: never what the writer wrote. Events are
		 * the daemon's own, about the member they name. */
		v->from_pid = writer == RING_DAEMON_WRITER
				  ? copy.from_pid
				  : atomic_load_explicit(&r->writer_ids[writer].pid,
							 memory_order_relaxed);
		v->from_node = copy.from_node;
		v->payload = (const uint8_t *)h + sizeof(struct ring_rec);
		v->pos = pos;
		v->next_pos = pos + 1;
		ret = 1;
		break;
	}
	/* Skipped something: say where we are, so a producer sees us wait at
	 * the open claim (which wins the tie) and not behind it. */
	if (rd->pos != from)
		ring_release(r, rd, rd->pos);
	return ret;
}

void ring_release(struct ring *r, struct ring_reader *rd, uint64_t pos)
{
	_Atomic uint64_t *cursor = &rd->page->cursor;
	rd->pos = pos;
	/* Cursors only grow: publish by a compare-and-swap that never lowers
	 * ours. seq_cst, then the load of `waiters`: pairs with the producer's
	 * increment of waiters and re-check in ring_wait_room. */
	uint64_t cur = atomic_load_explicit(cursor, memory_order_relaxed);
	bool moved = false;
	/* The page is ours alone, so the CAS fails only if we wrote it from
	 * another thread. A cursor past the tail is no cursor (a stray write
	 * of ours): set it back, or producers would overlook us for good. The
	 * tail is loaded only then, off the common path. */
	for (int i = 0; i < 8 && !moved; i++) {
		if (cur >= pos && cur <= atomic_load_explicit(&r->hdr->tail, memory_order_relaxed))
			break;
		moved = atomic_compare_exchange_weak(cursor, &cur, pos);
	}
	if (!moved)
		return;
	struct ring_mwait *mw = &r->mwait[rd->slot];
	if (!atomic_load(&mw->waiters))
		return;
	/* Wake at the threshold a producer asked for, once per park: the wait
	 * slot is not ours to clear, and a producer that has not run yet
	 * must not cost us a syscall per record. `parks` before `wake_at`:
	 * the producer sets the threshold, then counts its park (seq_cst),
	 * then looks at our cursor again (ring_wait_room). */
	uint32_t parks = atomic_load(&mw->parks);
	if (parks != rd->woke_parks && pos >= atomic_load(&mw->wake_at)) {
		rd->woke_parks = parks;
		ring_futex_wake((_Atomic uint32_t *)cursor);
	}
}

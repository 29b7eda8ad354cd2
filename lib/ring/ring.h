/* SPDX-License-Identifier: MIT */
/*
 * The group ring: one shared order per group, whose positions ARE the
 * group's total order, and one area per writer holding the records the
 * order refers to. Used by the client library (send in place, read in
 * place) and by the daemon (create, membership, events, repairs). See
 * layout.h and docs/design.md.
 */
#ifndef PG_RING_H
#define PG_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "shelf.h"

/*
 * The member pages a producer (or the daemon) has mapped: one per ACTIVE
 * slot of the directory as it was at `seq`, and the dense list of them
 * ring_wake scans for sleepers. Private to the process. The tables cover
 * slots [0, cap), grown as slots are mapped: an idle group costs a few
 * bytes here, not 14 KiB.
 */
struct ring_pages {
	struct ring_mpage **page;
	uint32_t *word; /* the slot's state word it was mapped for */
	/* Non-NULL: the page points into a mapping that is not ours (a ctx's
	 * window), whose count of users this is: dropped, never unmapped. */
	unsigned **borrowed;
	uint16_t *live; /* slots with a page, for ring_wake */
	/* The daemon's: the bell it rings for the member of each slot (its
	 * shelf of pages' RING_BELL_DAEMON), NULL if none. */
	struct ring_bell **bell;
	uint32_t cap;
	uint32_t n_live;
	uint32_t seq;   /* the directory's seq they match */
	bool synced;    /* seq is meaningful */
	bool own;       /* the daemon's: pages are mapped read-write */
};

/* A process's mapping of one group's memfds. Sizes are copied out of the
 * header once, after validation, and never re-read from shared memory. */
struct ring {
	struct ring_data_hdr *hdr;
	/* A producer's: the bells of the shelf its area is on, read-write
	 * (layout.h); NULL: members on bells are woken by the daemon only. */
	struct ring_bell *bells;
	struct ring_writer *writers;
	struct ring_mwait *mwait;
	_Atomic uint64_t *order;
	/* Address space for every writer's area, each mapped where it belongs
	 * (inaccessible until then): a record's address is one addition. */
	uint8_t *areas;
	uint32_t area_gen[RING_WRITER_SLOTS]; /* the generation mapped; 0 = none */
	/* Where each writer's area is in our address space: its place in
	 * `areas`, or inside a window on its shelf a member's ctx mapped
	 * for many areas at once (ring_area_place). */
	const uint8_t *area_at[RING_WRITER_SLOTS];
	/* For an area placed in a window: the window's count of users, to
	 * drop when the area goes (allocated at the first placement). */
	unsigned **area_ref;
	/* The owner's: where each slot's area is (read-write); fd -1 = none. */
	struct ring_file *area_file;
	/* A mapping that reads (a member's) asks for an area it lacks: a
	 * read-only fd of writer's area of generation `gen`, and where in
	 * that fd the area starts. */
	int (*fetch_area)(void *arg, uint32_t writer, uint32_t gen, int *fd, uint64_t *off);
	void *fetch_arg;
	struct ring_dir_hdr *dir;
	const struct ring_member *members;    /* the directory's member slots */
	const struct ring_writer_id *writer_ids;
	const struct ring_loc *area_locs; /* the directory's: where each area is */
	struct ring_pages *pages; /* producers and the daemon; NULL for a member */
	uint64_t capacity; /* bytes per writer area */
	uint64_t amask;
	uint64_t order_slots;
	uint64_t line_mask;   /* order_slots / 8 - 1: see entry() in ring.c */
	unsigned line_shift;  /* log2(order_slots / 8) */
	unsigned order_shift; /* log2(order_slots): position >> shift = lap */
	uint32_t writer_slots;
	uint32_t member_slots;
	uint64_t dir_bytes; /* the directory's tables: where the node's area starts */
	uint32_t max_msg;
	uint32_t stall_ms;
	uint8_t *map_base; /* data, directory, areas: one stretch (map.c) */
	size_t map_bytes;
	bool writable;
	bool owner; /* the directory is mapped writable: the daemon's */
	/* A replica's mapping: its records carry the master's seq. Only in a
	 * replica does nobody but the daemon write the order, so only there
	 * can no forged entry make daemon-written bytes a record with a seq
	 * of someone's choosing; elsewhere seq is the position's. */
	bool seq_from_records;
};

/*
 * A writer's bookkeeping of its own area, private to the process holding
 * the slot. [head, tail) (byte positions, masked into the area) holds the
 * records some member may still read; each knows its order position.
 */
struct ring_area {
	uint32_t writer;
	uint64_t head;
	uint64_t tail;
	uint64_t last_pos; /* order position of the newest record, RING_NO_CLAIM if none */
};

/* A claimed, not yet committed record. */
struct ring_claim {
	uint64_t pos;      /* its order position */
	uint64_t unit;     /* its offset in the area, in RING_ALIGN units */
	uint64_t at;       /* its byte position in the area, unmasked (ring_rec.seq) */
	struct ring_rec *rec;
	void *payload;
	uint32_t len;
	uint32_t writer;
};

/* A record as a reader validated it. `payload` points into the ring. */
struct ring_view {
	uint16_t kind;
	uint16_t flags; /* RING_F_* */
	uint32_t len;
	uint64_t seq;
	int32_t from_pid;
	uint32_t from_node;
	const void *payload;
	uint64_t pos;      /* the record's order position */
	uint64_t next_pos; /* where the following record is */
};

/* A member's reading state; `pos` is private, the page's cursor public. */
/* The last record a reader read of one writer (of area generation `gen`):
 * its order position and its place in the writer's area. */
struct ring_seen {
	uint64_t pos;
	uint64_t at;
	uint32_t gen; /* 0: none read */
};

struct ring_reader {
	uint64_t pos;
	uint32_t slot;
	uint32_t state_word;     /* RING_MEMBER_WORD(gen, ACTIVE) as handed out */
	uint32_t woke_parks;     /* the producers' park count we last woke for */
	struct ring_mpage *page; /* our own page, mapped writable */
	/* Per sender: what claim order its next record must keep (ring_read).
	 * Zeroed with the reader. */
	struct ring_seen seen[RING_WRITER_SLOTS];
};

/* Bytes a record of `len` payload bytes occupies in an area. */
static inline uint64_t ring_rec_bytes(uint64_t len)
{
	return (sizeof(struct ring_rec) + len + RING_ALIGN - 1) & ~(uint64_t)(RING_ALIGN - 1);
}

/* map.c: sizes, creation (daemon) and mapping (everyone). */
/* Check capacity/max_msg; 0 or -EINVAL. */
int ring_check_sizes(uint64_t capacity, uint64_t max_msg);
/* Writer slots a group of this capacity gets. */
uint32_t ring_writer_slots(uint64_t capacity);
/* A memfd of `bytes`, sealed against resizing, mode 0400 (so a read-only
 * fd cannot be reopened writable through /proc): fd or -errno. */
int ring_make_memfd(const char *name, size_t bytes);
/* Daemon: make the data memfd and fill in the directory, in `dir` (a
 * range of RING_DIR_FILE_BYTES_FOR(capacity, member_slots), zero as it
 * came). member_slots: ring_member_slots_ok. */
int ring_create_at(uint64_t capacity, uint32_t max_msg, uint32_t stall_ms, uint32_t member_slots,
		   const char *name, int *data_fd, const struct ring_file *dir);
/* Whether n is a member slot count a ring can have. */
bool ring_member_slots_ok(uint64_t n);
/* The same with a directory memfd of its own (tests). */
int ring_create(uint64_t capacity, uint32_t max_msg, uint32_t stall_ms, const char *name,
		int *data_fd, int *dir_fd);
/* A ring's sizes, as the daemon that made it says (never as its header
 * says: any sender can write the header). */
struct ring_geometry {
	uint64_t capacity;
	uint32_t max_msg;
	uint32_t stall_ms;
	uint64_t dir_off; /* where the directory starts in its fd */
	uint32_t member_slots; /* 0: RING_MEMBER_SLOTS */
};
/* Map with the geometry the daemon gave: the memfds' sizes are checked
 * against it, nothing in shared memory is trusted. */
int ring_map_as(struct ring *r, int data_fd, int dir_fd, bool writable,
		const struct ring_geometry *g);
/* Map a ring whose header is trusted (the daemon's own, tests): the
 * geometry is read from it and validated. Writable = the owner's mapping:
 * the directory writable, member pages made by ring_member_add. */
int ring_map(struct ring *r, int data_fd, int dir_fd, bool writable);
/* The same with the directory at dir_off of dir_fd. */
int ring_map_at(struct ring *r, int data_fd, int dir_fd, uint64_t dir_off, bool writable);
void ring_unmap(struct ring *r);

/* A member page on its own (a member's, or a test's). NULL on error. */
struct ring_mpage *ring_page_map(int fd, uint64_t off, bool writable);
void ring_page_unmap(struct ring_mpage *page);

/*
 * Producers' member pages. The directory's seq changes with the member set;
 * while it differs from ours, ring_min_cursor assumes no more than the
 * cached bound and ring_wake wakes unasked, and the producer calls
 * ring_pages_sync, which asks `fetch` (the daemon) for each page it lacks:
 * a read-only fd of slot's page for state word `word` and the page's offset
 * in it, or -ESTALE when the slot no longer holds it. Or the page already
 * mapped, in *at (fd -1): a mapping the fetcher keeps, borrowed, whose
 * count of users *ref the ring drops when it lets the page go.
 */
typedef int ring_page_fetch(void *arg, uint32_t slot, uint32_t word, int *fd, uint64_t *off,
			    struct ring_mpage **at, unsigned **ref);
bool ring_pages_stale(const struct ring *r);
int ring_pages_sync(struct ring *r, ring_page_fetch *fetch, void *arg);
/* Map slot's page (for `word`) from fd at off, in place of any before. */
int ring_pages_attach(struct ring *r, uint32_t slot, uint32_t word, int fd, uint64_t off);
void ring_pages_detach(struct ring *r, uint32_t slot);
/* Rebuild the list ring_wake scans from the pages mapped. */
void ring_pages_relist(struct ring *r);
/* The cursor of member `slot` as our page of it says; UINT64_MAX without. */
static inline uint64_t ring_member_cursor(const struct ring *r, uint32_t slot)
{
	if (!r->pages || slot >= r->pages->cap || !r->pages->page[slot])
		return UINT64_MAX;
	return atomic_load(&r->pages->page[slot]->cursor);
}
/* Start a writer's bookkeeping of a freshly handed-out slot. */
void ring_area_init(struct ring_area *a, uint32_t writer);
/* Map writer's area (of generation gen) from fd at off, in place of any
 * before; writable only for its writer. */
int ring_area_attach(struct ring *r, uint32_t writer, uint32_t gen, int fd, uint64_t off,
		     bool writable);
/* A member's: writer's area of generation gen is at `at`, inside a mapping
 * the caller keeps while *ref (which it counted up for us) is not 0; the
 * ring counts it down when the area goes. -ENOMEM: not placed (*ref is
 * counted down). */
int ring_area_place(struct ring *r, uint32_t writer, uint32_t gen, const uint8_t *at,
		    unsigned *ref);
/* Owner: give `writer` a fresh area, the next generation, in `area` (a
 * range of capacity bytes nobody used before), mapped read-write. The ring
 * holds `area` from then on (r->area_file[writer]) and gives it back when
 * the area is dropped; on error the caller still holds it. */
int ring_area_create(struct ring *r, uint32_t writer, const struct ring_file *area);
/* Where the directory says writer's area of generation gen, or member
 * slot's page for state word `word`, is: its shelf's id and the offset.
 * False when the slot holds another now, or the range is on no shelf
 * (then only the daemon can hand it over). */
bool ring_area_where(const struct ring *r, uint32_t writer, uint32_t gen, uint64_t *shelf,
		     uint64_t *off);
bool ring_page_where(const struct ring *r, uint32_t slot, uint32_t word, uint64_t *shelf,
		     uint64_t *off);
/* Owner: drop writer's area, its memory with it (nobody can read it any
 * more: the caller checked). */
void ring_area_drop(struct ring *r, uint32_t writer);

/* ring.c: the message path. */
/*
 * Claim the next order position and room for a record of `len` bytes in
 * writer a->writer's area, leaving `reserve` order entries free. Never
 * waits: -EAGAIN when full, with the slot of the member that holds the room
 * in *blocker (UINT32_MAX if none: the tail moved `tries` times under us),
 * -EMSGSIZE when len is over the group's limit, -EBADMSG when the shared
 * memory says what no honest writer could have made it say.
 */
int ring_claim(struct ring *r, struct ring_area *a, uint32_t len, uint32_t reserve,
	       unsigned tries, struct ring_claim *c, uint32_t *blocker);
/* Publish a claimed record: 0, or -ECANCELED when the node cancelled the
 * claim first (readers skip it). Does not wake sleepers: call ring_wake. */
int ring_commit(struct ring *r, const struct ring_claim *c, uint16_t kind, uint16_t flags,
		int32_t from_pid, uint32_t from_node);
/* The same with the master's numbering of it (a replica's record). */
int ring_commit_seq(struct ring *r, const struct ring_claim *c, uint16_t kind, uint16_t flags,
		    int32_t from_pid, uint32_t from_node, uint64_t seq);
/* Withdraw a claim: readers skip its position (-ECANCELED: it already was). */
int ring_abort(struct ring *r, const struct ring_claim *c);
/* After a commit: wake every sleeping receiver, if any sleeps. */
void ring_wake(struct ring *r);
/* Wake every member, asleep or not, on whatever it sleeps: for what each
 * must learn now (its eviction, the group's end, news on its socket). */
void ring_wake_every(struct ring *r);
/* Ring bell b with token (layout.h): the hint, then the futex word. */
void ring_bell_ring(struct ring_bell *b, uint32_t token);

/* Bytes of our own area's records at order positions from `from` on: what
 * of ours a member at `from` has still to read. */
uint64_t ring_area_unread(struct ring *r, const struct ring_area *a, uint64_t from);
/* The lowest cursor of a live member, bounded by the tail; its slot in
 * *slowest, or UINT32_MAX when no member holds anything. */
uint64_t ring_min_cursor(struct ring *r, uint32_t *slowest);
/* Node: whether the tail, more than an order past a member at `cursor`,
 * can only have been forged (the member cannot have caused it). */
bool ring_tail_forged(struct ring *r, uint64_t cursor);
/* Whether position `pos` is claimed but not yet decided (committed or
 * cancelled): a member waiting there waits for a writer, not lagging. */
bool ring_entry_open(struct ring *r, uint64_t pos);

/*
 * Read the record at the reader's position: 1 and *v filled, 0 when none is
 * committed yet, -EBADMSG when the record is malformed, -ECONNRESET when this
 * reader's slot was evicted or freed. Cancelled positions are skipped, and
 * the cursor published past them: a member waiting at a stuck claim is seen
 * waiting exactly there.
 */
int ring_read(struct ring *r, struct ring_reader *rd, struct ring_view *v);
/* Publish that everything below `pos` is read; wakes a parked producer. */
void ring_release(struct ring *r, struct ring_reader *rd, uint64_t pos);

/* repair.c: what only the daemon does to a ring. */
/* Admit a member: a slot, its state word, where it reads from. Its page is
 * `page` (a fresh page nobody used before; the caller keeps it, hands the
 * member a writable fd of it and producers read-only ones). */
int ring_member_add(struct ring *r, int32_t pid, uint32_t *slot, uint32_t *state_word,
		    uint64_t *cursor, const struct ring_file *page);
/* The same with its page a fresh range of *own (shelf_take), in *page. */
int ring_member_add_on(struct ring *r, int32_t pid, uint32_t *slot, uint32_t *state_word,
		       uint64_t *cursor, struct shelf **own, struct ring_file *page);
void ring_member_remove(struct ring *r, uint32_t slot);
/* Evict the holder of `state_word` from `slot`; false if it moved on. */
bool ring_member_evict(struct ring *r, uint32_t slot, uint32_t state_word);
/*
 * Hand out a writer slot to `pid`: one that is free and whose area no
 * member can still read (every member is past its last record), with its
 * fresh area in `area` (see ring_area_create). -ENOSPC when none is.
 */
int ring_writer_alloc(struct ring *r, int32_t pid, uint32_t *slot, const struct ring_file *area);
/* The same with the area a fresh range of *own (shelf_take). */
int ring_writer_alloc_on(struct ring *r, int32_t pid, uint32_t *slot, struct shelf **own);
void ring_writer_free(struct ring *r, uint32_t slot);
/*
 * Cancel position `pos` if no writer decided it yet: readers skip it and
 * its writer's commit returns -ECANCELED. 0 when cancelled, -ESTALE when it
 * was decided already, -EAGAIN when it is not claimed yet, -EBUSY when the
 * entry kept changing under us (a hostile writer).
 */
int ring_cancel_at(struct ring *r, uint64_t pos);
/*
 * The process holding writer slot `writer` is dead: cancel the position it
 * won and never decided. 0 when done (or nothing to do), -EAGAIN when it
 * died around its claiming CAS and another writer names the same place.
 */
int ring_seal_writer(struct ring *r, uint32_t writer);
/* Daemon: mark the group down (deleted) or bad (corrupt shared memory). */
void ring_set_state(struct ring *r, enum ring_group_state st);
/* 0 while open, else -ENOENT (down) or -EBADMSG (bad). */
int ring_state_error(const struct ring *r);
static inline bool ring_is_down(const struct ring *r)
{
	return atomic_load_explicit(&r->hdr->state, memory_order_relaxed) != RING_STATE_OPEN;
}
/* Order positions between the slowest live member and the tail. */
uint64_t ring_lag(struct ring *r);

#endif /* PG_RING_H */

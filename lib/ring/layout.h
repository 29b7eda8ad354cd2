/* SPDX-License-Identifier: MIT */
/*
 * The shared-memory layout of one group ring. Who may write what is
 * enforced by the kernel, through the mode of the fd each process holds:
 *
 *  - the DATA memfd: a header page, the writers' claim slots, the
 *    producers' wait slots, and the ORDER (one 8-byte entry per position of
 *    the group's total order). An order entry refers to a record by (writer,
 *    offset); it is published with one compare-and-swap and never written
 *    otherwise. Writable by processes that may send (and the daemon);
 *    read-only for receive-only members.
 *  - one AREA per writer slot (and generation: a slot handed out again
 *    gets a fresh one), where that writer alone puts its records: writable
 *    only by it, read-only for members. An area is a range of its writer's
 *    own shelf (shelf.h): a memfd per session and class of groups holding
 *    its areas and member pages there. So a writer stopped inside its claim
 *    holds only its own area: the node cancels its entry, readers skip it,
 *    the order moves on, and nothing the writer writes when it wakes can
 *    reach a reader (docs/design.md, section 4); and no sender can write,
 *    or pass off as its own, another's records.
 *  - the DIRECTORY (a range of a shelf of directories, shared by groups the
 *    same users may read): who the members are (slot state and generation),
 *    who the writers are (pid, area generation), and the node's own area
 *    (its membership events). Written by the daemon alone; read-only
 *    for every other process, so nobody can forge a member, evict or free
 *    one, or pass off a message as another process's.
 *  - one MEMBER PAGE per membership, on the member's own shelf: its read
 *    cursor and its sleep announcement. Writable only by that member (and
 *    the daemon); mapped
 *    read-only by producers, who ask the daemon for the pages of members
 *    they have not seen yet (the directory's `seq` says when to).
 *
 * Every offset below is pinned by static_assert: the layout is an ABI between
 * processes that may run different builds.
 */
#ifndef PG_RING_LAYOUT_H
#define PG_RING_LAYOUT_H

#include <assert.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define RING_DATA_MAGIC 0x70677264u   /* "pgrd" */
#define RING_DIR_MAGIC 0x70677263u  /* "pgrc" */
#define RING_VERSION 9u
#define RING_CACHELINE 64
#define RING_PAGE 4096

/* Records start on RING_ALIGN boundaries of their writer's area and never
 * straddle its end. */
#define RING_ALIGN 32u
#define RING_WRITER_SLOTS 256u  /* most writer slots a group can have; a slot
				   number fits the order entry's 8 bits */
/* Member handles per group per node: RING_MEMBER_SLOTS unless the group
 * was made with another count (pg_group_opts.member_slots), a multiple of
 * RING_MEMBER_SLOTS_STEP (so the tables are whole pages) up to _MAX (a slot
 * number fits a producer's 16-bit list). What each slot costs:
 * RING_CACHELINE bytes of the data memfd and sizeof(struct ring_member) of
 * the directory, address space until its page of the tables is touched. */
#define RING_MEMBER_SLOTS 1024u
#define RING_MEMBER_SLOTS_STEP 128u
#define RING_MEMBER_SLOTS_MAX 65536u
#define RING_DAEMON_WRITER 0u   /* writer slot the daemon itself appends with */
#define RING_NODES 32u          /* nodes a group's messages can come from */
/* Order entries only the daemon may fill, so a membership event finds a
 * place even when senders have filled the order. */
#define RING_EVENT_RESERVE 64u

#define RING_MIN_BYTES (64u * 1024u)
#define RING_MAX_BYTES (1u << 30)
#define RING_DEFAULT_BYTES (1u << 20)
#define RING_DEFAULT_MAX_MSG (64u * 1024u)
/* All writer areas of a group together span at most this much address
 * space (sparse memfds: only what writers touch is memory). Large rings get fewer
 * writer slots, never fewer than RING_MIN_WRITERS. */
#define RING_AREAS_BUDGET (1ull << 30)
#define RING_MIN_WRITERS 16u

/* Record kinds, in the record header. */
enum ring_kind {
	RING_REC_WRAP = 1,  /* writer-private: the rest of the area is unused */
	RING_REC_MSG = 2,   /* a message */
	RING_REC_JOINED = 3,
	RING_REC_LEFT = 4,
	RING_REC_EXITED = 5,
	RING_REC_DOWN = 6,  /* the group was deleted; nothing follows */
};

/* Record flags. */
#define RING_F_ESEND 0x1u /* not for any handle of the sending process */

/*
 * A record in a writer's area. The writer fills it before it publishes the
 * order entry that refers to it; a reader checks that `order_pos` is the
 * position it reads, so an entry can never pass off a stale record (or
 * another position's) as its own.
 */
struct ring_rec {
	uint64_t order_pos; /* the order position this record was written for */
	uint32_t len;       /* payload bytes that follow the header */
	uint16_t kind;      /* enum ring_kind */
	uint16_t flags;     /* RING_F_* */
	int32_t from_pid;   /* sender (as the daemon sees it), or the member an event is about */
	uint32_t from_node; /* 0 = the group's master node */
	/* In the daemon's area: the record's place in the group's order as
	 * its master numbered it (pg_message.seq), in a replica's records;
	 * 0 = its position + 1 (a master's own ring). Readers take it from
	 * the daemon's area only: no sender can renumber the order.
	 * In a sender's area: the record's byte position in that area, which
	 * grows with each of the sender's claims. Readers check that it grows
	 * along the order too (ring_read): a tail or an order rewritten to
	 * put a later claim of a sender before an earlier one is caught. */
	uint64_t seq;
};
static_assert(offsetof(struct ring_rec, order_pos) == 0, "ring_rec layout");
static_assert(offsetof(struct ring_rec, len) == 8, "ring_rec layout");
static_assert(offsetof(struct ring_rec, kind) == 12, "ring_rec layout");
static_assert(offsetof(struct ring_rec, flags) == 14, "ring_rec layout");
static_assert(offsetof(struct ring_rec, from_pid) == 16, "ring_rec layout");
static_assert(offsetof(struct ring_rec, from_node) == 20, "ring_rec layout");
static_assert(offsetof(struct ring_rec, seq) == 24, "ring_rec layout");
static_assert(sizeof(struct ring_rec) == RING_ALIGN, "ring_rec must be one alignment unit");

/*
 * An order entry: 64 bits, changed only by compare-and-swap.
 *   bits 0-1   state: EMPTY (never written), COMMITTED, CANCELLED
 *   bits 2-9   writer slot of the record
 *   bits 10-34 the record's offset in that writer's area, in RING_ALIGN units
 *   bits 35-63 lap: position / order_slots, modulo 2^29
 * A writer or the node decides the entry of position P by a CAS from a value
 * of an older lap (or EMPTY) to P's lap; a value of P's lap is final. So a
 * late writer whose entry was cancelled, or lapped and decided again, fails
 * its CAS. One lapped but not yet decided again (no member was there to
 * wait for it) may still write P's lap into the slot: readers of the new
 * lap take that as "not yet", and the new lap's writer decides over it.
 */
#define RING_E_EMPTY 0u
#define RING_E_COMMITTED 1u
#define RING_E_CANCELLED 2u
#define RING_E_STATE(e) ((uint32_t)((e)&3u))
#define RING_E_WRITER(e) ((uint32_t)(((e) >> 2) & 0xffu))
#define RING_E_UNIT(e) ((uint64_t)(((e) >> 10) & 0x1ffffffu))
#define RING_E_LAP_BITS 29
#define RING_E_LAP(e) ((uint32_t)((e) >> 35))
#define RING_E_MAKE(lap, unit, writer, st)                                                 \
	(((uint64_t)((lap) & ((1u << RING_E_LAP_BITS) - 1)) << 35) |                       \
	 ((uint64_t)((unit)&0x1ffffffu) << 10) | ((uint64_t)((writer)&0xffu) << 2) | (st))
static_assert(RING_MAX_BYTES / RING_ALIGN <= 0x2000000u, "area offsets fit 25 bits");

/*
 * A writer's claim slot, in the DATA memfd: the writer says which order
 * position it is about to claim (claim_pos, before its CAS on the tail) and
 * which it won (claim_won, after), so the node can cancel a dead writer's
 * open entry at once. last_pos is the newest position it claimed: its area
 * is free for another writer only when every member is past it. Who holds
 * the slot is in the directory (struct ring_writer_id), where no sender
 * can change it.
 */
struct ring_writer {
	uint32_t reserved0;
	uint32_t reserved1;
	_Atomic uint64_t claim_pos; /* RING_NO_CLAIM when idle */
	_Atomic uint64_t claim_won; /* == claim_pos once the claiming CAS has won */
	_Atomic uint64_t last_pos;  /* RING_NO_CLAIM before its first claim */
	uint8_t pad[RING_CACHELINE - 32];
};
#define RING_NO_CLAIM UINT64_MAX
static_assert(sizeof(struct ring_writer) == RING_CACHELINE, "one writer per cache line");
static_assert(offsetof(struct ring_writer, claim_pos) == 8, "ring_writer layout");
static_assert(offsetof(struct ring_writer, claim_won) == 16, "ring_writer layout");
static_assert(offsetof(struct ring_writer, last_pos) == 24, "ring_writer layout");

/*
 * Where producers wait for room behind member slot i, in the DATA memfd
 * (writable by producers, read-only for members): `waiters` counts the
 * producers parked on the member's cursor word, `wake_at` is the lowest
 * cursor one of them waits for, `parks` counts their parks. The member only
 * reads them, and wakes its cursor word when it passes `wake_at`, once per
 * park: a full ring costs one wake per batch, not per record.
 */
struct ring_mwait {
	_Atomic uint32_t waiters;
	_Atomic uint32_t parks;
	_Atomic uint64_t wake_at;
	uint8_t pad[RING_CACHELINE - 16];
};
static_assert(sizeof(struct ring_mwait) == RING_CACHELINE, "one wait slot per cache line");
static_assert(offsetof(struct ring_mwait, parks) == 4, "ring_mwait layout");
static_assert(offsetof(struct ring_mwait, wake_at) == 8, "ring_mwait layout");

enum ring_group_state {
	RING_STATE_OPEN = 1,
	RING_STATE_DOWN = 2, /* deleted (or the daemon shut down): senders get -ENOENT */
	RING_STATE_BAD = 3,  /* the node found the shared memory corrupt: -EBADMSG */
};

/* The header of the DATA memfd. Hot fields each on a cache line of their own. */
struct ring_data_hdr {
	uint32_t magic;
	uint32_t version;
	uint32_t hdr_bytes;    /* offset of the order */
	uint32_t max_msg;
	uint64_t capacity;     /* bytes in each writer's area; a power of two */
	uint32_t writer_slots; /* writer slots (and areas) the group has */
	uint32_t stall_ms;
	uint64_t order_slots;  /* entries in the order; a power of two */
	uint8_t pad0[RING_CACHELINE - 40];

	/* Next free order position. Claimed by compare-and-swap. */
	_Atomic uint64_t tail;
	uint8_t pad1[RING_CACHELINE - 8];

	/* A lower bound of every live member's cursor, cached by producers so
	 * they rarely read members' pages. Only ever valid as a lower bound. */
	_Atomic uint64_t cached_min;
	uint8_t pad2[RING_CACHELINE - 8];

	_Atomic uint32_t state; /* enum ring_group_state */
	uint8_t pad3[RING_CACHELINE - 4];

	/* The futex word receivers sleep on; producers bump it and wake all
	 * sleepers at once, and only when a member page says someone sleeps.
	 * Here, not on a page members can write: a receive-only member can
	 * neither hide a wake nor fake one. */
	_Atomic uint32_t wake_seq;
	uint8_t pad4[RING_CACHELINE - 4];
};
static_assert(offsetof(struct ring_data_hdr, capacity) == 16, "data hdr layout");
static_assert(offsetof(struct ring_data_hdr, order_slots) == 32, "data hdr layout");
static_assert(offsetof(struct ring_data_hdr, tail) == 64, "data hdr layout");
static_assert(offsetof(struct ring_data_hdr, cached_min) == 128, "data hdr layout");
static_assert(offsetof(struct ring_data_hdr, state) == 192, "data hdr layout");
static_assert(offsetof(struct ring_data_hdr, wake_seq) == 256, "data hdr layout");
static_assert(sizeof(struct ring_data_hdr) == 320, "data hdr layout");

#define RING_WRITERS_OFF RING_PAGE
#define RING_MWAIT_OFF (RING_WRITERS_OFF + RING_WRITER_SLOTS * RING_CACHELINE)
/* The order follows the wait slots, one per member slot. */
#define RING_ORDER_OFF_FOR(member_slots) (RING_MWAIT_OFF + (uint64_t)(member_slots)*RING_CACHELINE)
#define RING_ORDER_OFF RING_ORDER_OFF_FOR(RING_MEMBER_SLOTS)
static_assert(RING_MWAIT_OFF % RING_PAGE == 0, "the wait slots are page aligned");
static_assert(RING_MEMBER_SLOTS_STEP * RING_CACHELINE % RING_PAGE == 0,
	      "the order is page aligned for every member slot count");
static_assert(RING_MEMBER_SLOTS % RING_MEMBER_SLOTS_STEP == 0, "the default is a step");
/* One order entry per RING_ALIGN bytes of area: the order holds as many
 * records as one writer's area can. Whole pages, so the memfd is. */
#define RING_ORDER_SLOTS(capacity) ((uint64_t)(capacity) / RING_ALIGN)
static_assert(RING_ORDER_SLOTS(RING_MIN_BYTES) * 8 % RING_PAGE == 0, "order is whole pages");
#define RING_DATA_BYTES_FOR(capacity, member_slots)                                          \
	(RING_ORDER_OFF_FOR(member_slots) + RING_ORDER_SLOTS(capacity) * 8)
#define RING_DATA_BYTES(capacity) RING_DATA_BYTES_FOR(capacity, RING_MEMBER_SLOTS)

enum ring_member_state {
	RING_MEMBER_FREE = 0,
	RING_MEMBER_ACTIVE = 1,
	RING_MEMBER_EVICTED = 2, /* the node gave up waiting on it */
};

/*
 * A member slot in the DIRECTORY. `state` packs the member state (low
 * byte) with the slot's generation (upper 24 bits): a member page is
 * mapped for one generation, and an eviction aimed at a previous holder of
 * the slot fails its compare-and-swap.
 */
/*
 * Where a range the daemon handed out lives: which of its shelves (0: not
 * on a shelf; ids are never reused while the daemon runs) and at what
 * offset. A process that holds a read-only fd of that shelf (it keeps the
 * ones the daemon sent it, by id) maps the range without asking: the first
 * record of a new writer, or the page of a new member, costs no round trip.
 * Written before the generation or state that makes the range current, and
 * read after it (acquire/release there).
 */
struct ring_loc {
	_Atomic uint64_t shelf;
	_Atomic uint64_t off;
};
static_assert(sizeof(struct ring_loc) == 16, "ring_loc layout");

struct ring_member {
	_Atomic uint32_t state;
	int32_t pid;
	uint32_t pad[2];
	struct ring_loc page; /* the member's page, on its own shelf of pages */
};
static_assert(sizeof(struct ring_member) == 32, "ring_member layout");
static_assert(offsetof(struct ring_member, pid) == 4, "ring_member layout");
static_assert(offsetof(struct ring_member, page) == 16, "ring_member layout");

#define RING_STATE_OF(w) ((w)&0xffu)
#define RING_GEN_OF(w) ((w) >> 8)
#define RING_MEMBER_WORD(gen, st) ((uint32_t)((gen) << 8) | (uint32_t)(st))

/*
 * Who holds writer slot i, in the DIRECTORY. `pid` stays after the slot is
 * freed, until it is handed out again: a member may still read the last
 * holder's records, and readers take a message's sender from here. `gen`
 * names the slot's area memfd: a reader maps it for that generation (0:
 * the slot never had an area, so no entry may name it).
 */
struct ring_writer_id {
	_Atomic int32_t pid;   /* the holder as the daemon sees it; 0 = never held */
	_Atomic uint32_t used; /* 1 while held */
	_Atomic uint32_t gen;  /* bumped with each fresh area */
	uint32_t pad;
};
static_assert(sizeof(struct ring_writer_id) == 16, "ring_writer_id layout");
static_assert(offsetof(struct ring_writer_id, gen) == 8, "ring_writer_id layout");

struct ring_dir_hdr {
	uint32_t magic;
	uint32_t version;
	uint32_t member_slots;
	/* One past the highest slot ever handed out: producers scan no further. */
	_Atomic uint32_t slot_hi;
	uint8_t pad0[RING_CACHELINE - 16];

	/* Bumped after every change of the member set (a slot made ACTIVE or
	 * FREE): a producer whose copy differs maps the new members' pages
	 * before it trusts its minimum or skips a wake. */
	_Atomic uint32_t seq;
	uint8_t pad1[RING_CACHELINE - 4];
	uint8_t pad2[RING_PAGE / 2 - 2 * RING_CACHELINE];

	/* The names of the nodes a record's from_node means (0: the group's
	 * master, whose name the daemon gives with the membership), written
	 * once per index before any record names it. NUL-padded. */
	char nodes[RING_NODES][64];
};
static_assert(offsetof(struct ring_dir_hdr, slot_hi) == 12, "dir hdr layout");
static_assert(offsetof(struct ring_dir_hdr, nodes) == RING_PAGE / 2, "dir hdr layout");
static_assert(sizeof(struct ring_dir_hdr) == RING_PAGE, "the dir hdr is one page");
static_assert(offsetof(struct ring_dir_hdr, seq) == 64, "dir hdr layout");

#define RING_WRITER_IDS_OFF RING_PAGE
static_assert(RING_WRITER_SLOTS * sizeof(struct ring_writer_id) == RING_PAGE,
	      "writer ids fill the directory's second page");
/* Where each writer slot's area of its current generation is. */
#define RING_AREA_LOCS_OFF (2 * RING_PAGE)
static_assert(RING_WRITER_SLOTS * sizeof(struct ring_loc) == RING_PAGE,
	      "area locations fill the directory's third page");
#define RING_MEMBERS_OFF (3 * RING_PAGE)
#define RING_DIR_BYTES_FOR(member_slots)                                                    \
	(RING_MEMBERS_OFF + (uint64_t)(member_slots) * sizeof(struct ring_member))
#define RING_DIR_BYTES RING_DIR_BYTES_FOR(RING_MEMBER_SLOTS)
static_assert(RING_MEMBER_SLOTS_STEP * sizeof(struct ring_member) % RING_PAGE == 0,
	      "directory tables are whole pages for every member slot count");
/* After the tables, in the same memfd: the node's own area (writer slot 0),
 * where it writes membership events. The directory is the daemon's alone,
 * so nobody else can forge an event, and it costs no memfd of its own. */
#define RING_EVENTS_OFF_FOR(member_slots) RING_DIR_BYTES_FOR(member_slots)
#define RING_DIR_FILE_BYTES_FOR(capacity, member_slots)                                      \
	(RING_DIR_BYTES_FOR(member_slots) + (uint64_t)(capacity))
#define RING_DIR_FILE_BYTES(capacity) RING_DIR_FILE_BYTES_FOR(capacity, RING_MEMBER_SLOTS)

/*
 * A member's own page: a memfd of one page whose writable fd only the
 * member (and the daemon) holds. `cursor` is the order position of the
 * next record the member will read; all below it may be overwritten.
 * `sleeping` counts the member's announced sleeps (pg_recv parked, pg_fd
 * armed); half a page away, so producers reading it on every commit do not
 * take the line the member writes its cursor to (nor, by the adjacent-line
 * prefetcher, its neighbour). Whatever the
 * member writes here hurts only itself: a cursor that goes back is no
 * progress (it is evicted like any laggard), one past the tail is no
 * cursor (the ring laps it), a sleep it fakes costs producers a wake.
 */
struct ring_mpage {
	_Atomic uint64_t cursor;
	uint8_t pad0[RING_PAGE / 2 - 8];
	_Atomic uint32_t sleeping;
	/* Non-zero: the member sleeps on bells (below), not on the group's
	 * wake word; a producer rings the bell at bell_key of its own shelf
	 * with this token, the member's name for the group. On the line
	 * producers read `sleeping` from: no further miss. */
	_Atomic uint32_t bell_token;
	_Atomic uint32_t bell_key;
	uint8_t pad1[RING_PAGE / 2 - 12];
};
static_assert(offsetof(struct ring_mpage, sleeping) == RING_PAGE / 2, "member page layout");
static_assert(offsetof(struct ring_mpage, bell_token) == RING_PAGE / 2 + 4, "member page layout");
static_assert(offsetof(struct ring_mpage, bell_key) == RING_PAGE / 2 + 8, "member page layout");
static_assert(sizeof(struct ring_mpage) == RING_PAGE, "a member page is one page");

/*
 * Bells: how a ctx in many groups sleeps on a few futex words rather than
 * one per group (an io_uring futex wait per group costs every wake the
 * kernel's hash walk over all of them and io_uring's task-work path:
 * docs/performance.md). The first RING_BELL_BYTES of every shelf are never
 * handed out: they are RING_BELL_SLOTS bells, written only by whoever
 * holds the shelf writable. On an areas shelf that is its writer: a
 * producer that finds a member asleep whose page names a token rings the
 * bell at bell_key % RING_BELL_SLOTS of its own shelf with it; the member
 * holds a read-only fd of that shelf already (it reads the records there)
 * and waits on the bells of the shelves it reads. On a pages shelf it is
 * the member and the daemon, which rings RING_BELL_DAEMON for its events
 * and for news on the socket (token RING_BELL_NEWS).
 *
 * A ring: the token goes to hint[head % RING_BELL_HINTS] unless it is the
 * newest hint already, head then seq are bumped, seq is woken. Readers
 * trust nothing here: a token names a group of theirs or nothing, and
 * more than RING_BELL_HINTS new hints means some were overwritten (look at
 * every group).
 */
#define RING_BELL_SLOTS 128u
/* A power of two: head % RING_BELL_HINTS runs on across head's wrap. */
#define RING_BELL_HINTS 16u
#define RING_BELL_DAEMON 0u
#define RING_BELL_NEWS UINT32_MAX
struct ring_bell {
	_Atomic uint32_t seq;  /* the futex word */
	_Atomic uint32_t head; /* hints written */
	_Atomic uint32_t hint[RING_BELL_HINTS];
	uint8_t pad[2 * RING_CACHELINE - 8 - 4 * RING_BELL_HINTS];
};
static_assert((RING_BELL_HINTS & (RING_BELL_HINTS - 1)) == 0, "hints: a power of two");
static_assert(sizeof(struct ring_bell) == 2 * RING_CACHELINE, "a bell is two lines");
#define RING_BELL_BYTES ((uint64_t)RING_BELL_SLOTS * sizeof(struct ring_bell)) /* 16 KiB */
static_assert(RING_BELL_BYTES % RING_PAGE == 0, "bells are whole pages");

/*
 * The node's liveness page: one per daemon, handed read-only to every client
 * at pg_open. It holds a robust, process-shared mutex the daemon locks for
 * its lifetime. When the daemon dies in any way the kernel marks the futex
 * word FUTEX_OWNER_DIED; on a clean exit the daemon unlocks it. Either way a
 * client learns the node is gone with one load, no syscall, so a local send
 * to a dead node fails with -ENOTCONN instead of writing into a void.
 */
#define NODE_ALIVE_MAGIC 0x70676c76u /* "pglv" */
struct node_alive {
	_Atomic uint32_t lock_word; /* glibc's robust mutex word: the owner's TID */
	uint32_t pad0[15];
	uint32_t magic;
	uint32_t version;
	uint8_t pad1[RING_PAGE - 72];
};
static_assert(offsetof(struct node_alive, lock_word) == 0, "node_alive layout");
static_assert(offsetof(struct node_alive, magic) == 64, "node_alive layout");
static_assert(sizeof(struct node_alive) == RING_PAGE, "node_alive is one page");

#define NODE_OWNER_DIED 0x40000000u /* the kernel's FUTEX_OWNER_DIED */
#define NODE_TID_MASK 0x3fffffffu

static inline int node_alive(const struct node_alive *a)
{
	uint32_t w = atomic_load_explicit(&((struct node_alive *)a)->lock_word,
					  memory_order_relaxed);
	return (w & NODE_TID_MASK) != 0 && !(w & NODE_OWNER_DIED);
}

#endif /* PG_RING_LAYOUT_H */

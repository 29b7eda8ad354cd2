/* SPDX-License-Identifier: MIT */
/*
 * The shared-memory layout of one group ring. Two memfds per group:
 *
 *  - the DATA memfd: a header page, the writer slots, then the data area.
 *    Mapped writable only by processes that may send (and the daemon);
 *    read-only by receive-only members.
 *  - the CURSOR memfd: a header (wake word, sleeper count) and one slot per
 *    member (read cursor, state). Writable by every member and sender: a
 *    member publishes its own cursor and announces its own sleep there, a
 *    sender parks on cursors and evicts.
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
#define RING_CURSOR_MAGIC 0x70677263u /* "pgrc" */
#define RING_VERSION 1u
#define RING_CACHELINE 64
#define RING_PAGE 4096

/* Records start on RING_ALIGN boundaries and never straddle the end of the
 * data area, so the space left before the end is always 0 or a whole header. */
#define RING_ALIGN 32u
#define RING_WRITER_SLOTS 256u  /* senders (ctx x group) per node, plus the daemon;
				   a slot number fits the high byte of flags */
#define RING_MEMBER_SLOTS 1024u /* member handles per group per node */
#define RING_DAEMON_WRITER 0u   /* writer slot the daemon itself appends with */
/* Room only the daemon may fill, so a membership event finds a place even
 * when senders have filled the ring. */
#define RING_EVENT_RESERVE 4096u

#define RING_MIN_BYTES (64u * 1024u)
#define RING_MAX_BYTES (1u << 30)
#define RING_DEFAULT_BYTES (1u << 20)
#define RING_DEFAULT_MAX_MSG (64u * 1024u)

/* Record kinds, in the record header. */
enum ring_kind {
	RING_REC_PAD = 1,   /* skip: end-of-area filler, aborted or sealed claim */
	RING_REC_MSG = 2,   /* a message */
	RING_REC_JOINED = 3,
	RING_REC_LEFT = 4,
	RING_REC_EXITED = 5,
	RING_REC_DOWN = 6,  /* the group was deleted; nothing follows */
};

/* Record flags. The high byte names the writer slot that wrote the record,
 * so the daemon can tell a dead writer's own records from another's when it
 * seals the dead writer's claim. */
#define RING_F_ESEND 0x1u /* not for any handle of the sending process */
#define RING_F_WRITER_SHIFT 8
#define RING_F_WRITER(f) ((uint32_t)(f) >> RING_F_WRITER_SHIFT)
#define RING_FLAGS(f, writer) ((uint16_t)(((f)&0xffu) | ((writer) << RING_F_WRITER_SHIFT)))

/*
 * A record. `commit` is written last, with release semantics, and holds the
 * bitwise NOT of the record's absolute position: a reader expecting position
 * P accepts the record only when commit == ~P, so neither zeroed memory nor a
 * previous lap's record (position P - capacity) can pass for it.
 *
 * The node cancels a claim its writer holds too long, or seals a dead
 * writer's, by swapping commit to RING_CANCELLED(P) (~P with bit 4 flipped:
 * no ~position has it, since positions are 32-aligned). Readers skip a
 * cancelled record by its length, whatever else its header says; a writer
 * commits with a compare-and-swap, so its commit fails once cancelled.
 */
struct ring_rec {
	_Atomic uint64_t commit;
	/* Payload bytes that follow the header. Atomic: the node may set it
	 * while cancelling, racing the writer (cancel_unit). */
	_Atomic uint32_t len;
	uint16_t kind;     /* enum ring_kind */
	uint16_t flags;    /* RING_F_* */
	uint64_t seq;      /* the group's order; strictly increasing */
	int32_t from_pid;  /* sender, or the member an event is about */
	uint32_t from_node; /* 0 = the group's master node */
};
#define RING_CANCELLED(pos) (~(uint64_t)(pos) ^ 0x10u)
static_assert(offsetof(struct ring_rec, commit) == 0, "ring_rec layout");
static_assert(offsetof(struct ring_rec, len) == 8, "ring_rec layout");
static_assert(offsetof(struct ring_rec, kind) == 12, "ring_rec layout");
static_assert(offsetof(struct ring_rec, flags) == 14, "ring_rec layout");
static_assert(offsetof(struct ring_rec, seq) == 16, "ring_rec layout");
static_assert(offsetof(struct ring_rec, from_pid) == 24, "ring_rec layout");
static_assert(offsetof(struct ring_rec, from_node) == 28, "ring_rec layout");
static_assert(sizeof(struct ring_rec) == RING_ALIGN, "ring_rec must be one alignment unit");

/*
 * A writer slot: who holds a claim. A sender writes pid, claim_pos and
 * claim_len BEFORE its compare-and-swap on the tail, so a writer that dies
 * right after the claim leaves a hole whose owner and length are known.
 */
struct ring_writer {
	_Atomic int32_t pid;        /* 0 = slot free */
	_Atomic uint32_t gen;       /* bumped each time the slot is handed out */
	_Atomic uint64_t claim_pos; /* RING_NO_CLAIM when idle */
	_Atomic uint64_t claim_len;
	/* == claim_pos once the claiming CAS has won: only such a claim is
	 * the writer's for sure, and only such a claim the node cancels. */
	_Atomic uint64_t claim_won;
	uint8_t pad[RING_CACHELINE - 32];
};
#define RING_NO_CLAIM UINT64_MAX
static_assert(sizeof(struct ring_writer) == RING_CACHELINE, "one writer per cache line");
static_assert(offsetof(struct ring_writer, claim_pos) == 8, "ring_writer layout");
static_assert(offsetof(struct ring_writer, claim_len) == 16, "ring_writer layout");
static_assert(offsetof(struct ring_writer, claim_won) == 24, "ring_writer layout");

enum ring_group_state {
	RING_STATE_OPEN = 1,
	RING_STATE_DOWN = 2, /* deleted (or the daemon shut down): senders get -ENOENT */
};

/* The header of the DATA memfd. Hot fields each on a cache line of their own. */
struct ring_data_hdr {
	uint32_t magic;
	uint32_t version;
	uint32_t hdr_bytes;  /* offset of the data area */
	uint32_t max_msg;
	uint64_t capacity;   /* bytes in the data area; a power of two */
	uint32_t writer_slots;
	uint32_t stall_ms;
	uint8_t pad0[RING_CACHELINE - 32];

	/* Next free absolute position. Claimed by compare-and-swap. */
	_Atomic uint64_t tail;
	uint8_t pad1[RING_CACHELINE - 8];

	/* A lower bound of every live member's cursor, cached by producers so
	 * they rarely read members' lines. Only ever valid as a lower bound. */
	_Atomic uint64_t cached_min;
	uint8_t pad2[RING_CACHELINE - 8];

	_Atomic uint32_t state; /* enum ring_group_state */
	uint8_t pad3[RING_CACHELINE - 4];
};
static_assert(offsetof(struct ring_data_hdr, capacity) == 16, "data hdr layout");
static_assert(offsetof(struct ring_data_hdr, tail) == 64, "data hdr layout");
static_assert(offsetof(struct ring_data_hdr, cached_min) == 128, "data hdr layout");
static_assert(offsetof(struct ring_data_hdr, state) == 192, "data hdr layout");
static_assert(sizeof(struct ring_data_hdr) == 256, "data hdr layout");

#define RING_WRITERS_OFF RING_PAGE
#define RING_DATA_OFF (RING_WRITERS_OFF + RING_WRITER_SLOTS * RING_CACHELINE)
static_assert(RING_DATA_OFF % RING_PAGE == 0, "data area must be page aligned");

enum ring_member_state {
	RING_MEMBER_FREE = 0,
	RING_MEMBER_ACTIVE = 1,
	RING_MEMBER_EVICTED = 2, /* a sender gave up waiting on it */
};

/*
 * A member slot in the CURSOR memfd. `cursor` is the position of the next
 * record the member will read; all below it may be overwritten. `state` packs
 * the member state (low byte) with the slot's generation (upper 24 bits) so an
 * eviction aimed at a previous holder of the slot fails its compare-and-swap.
 */
struct ring_member {
	_Atomic uint64_t cursor;
	_Atomic uint32_t state;
	_Atomic uint32_t waiters; /* producers parked on this cursor's low word */
	int32_t pid;
	uint32_t pad0;
	/* The lowest cursor a parked producer waits for: the member wakes it
	 * only there, so a full ring costs one wake per batch, not per record. */
	_Atomic uint64_t wake_at;
	uint8_t pad[RING_CACHELINE - 32];
};
static_assert(sizeof(struct ring_member) == RING_CACHELINE, "one member per cache line");
static_assert(offsetof(struct ring_member, state) == 8, "ring_member layout");
static_assert(offsetof(struct ring_member, waiters) == 12, "ring_member layout");
static_assert(offsetof(struct ring_member, pid) == 16, "ring_member layout");
static_assert(offsetof(struct ring_member, wake_at) == 24, "ring_member layout");

#define RING_STATE_OF(w) ((w)&0xffu)
#define RING_GEN_OF(w) ((w) >> 8)
#define RING_MEMBER_WORD(gen, st) ((uint32_t)((gen) << 8) | (uint32_t)(st))

struct ring_cursor_hdr {
	uint32_t magic;
	uint32_t version;
	uint32_t member_slots;
	/* One past the highest slot ever handed out: producers scan no further. */
	_Atomic uint32_t slot_hi;
	uint8_t pad0[RING_CACHELINE - 16];

	/* The futex word receivers sleep on; producers bump it and wake all
	 * sleepers at once, and only when `sleepers` says someone sleeps. */
	_Atomic uint32_t wake_seq;
	uint8_t pad1[RING_CACHELINE - 4];

	_Atomic uint32_t sleepers;
	uint8_t pad2[RING_CACHELINE - 4];
};
static_assert(offsetof(struct ring_cursor_hdr, slot_hi) == 12, "cursor hdr layout");
static_assert(offsetof(struct ring_cursor_hdr, wake_seq) == 64, "cursor hdr layout");
static_assert(offsetof(struct ring_cursor_hdr, sleepers) == 128, "cursor hdr layout");
static_assert(sizeof(struct ring_cursor_hdr) == 192, "cursor hdr layout");

#define RING_MEMBERS_OFF RING_PAGE
#define RING_CURSOR_BYTES (RING_MEMBERS_OFF + RING_MEMBER_SLOTS * RING_CACHELINE)
static_assert(RING_CURSOR_BYTES % RING_PAGE == 0, "cursor memfd is whole pages");

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

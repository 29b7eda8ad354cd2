/* SPDX-License-Identifier: MIT */
/*
 * The group ring: one shared-memory log per group whose record order IS the
 * group's total order. Used by the client library (send in place, read in
 * place) and by the daemon (create, membership, events). See layout.h.
 */
#ifndef PG_RING_H
#define PG_RING_H

#include <stdbool.h>
#include <stdint.h>

#include "layout.h"

/* A process's mapping of one group's two memfds. Sizes are copied out of the
 * header once, after validation, and never re-read from shared memory. */
struct ring {
	struct ring_data_hdr *hdr;
	struct ring_writer *writers;
	uint8_t *data;
	struct ring_cursor_hdr *chdr;
	struct ring_member *members;
	uint64_t capacity;
	uint64_t mask;
	uint32_t max_msg;
	uint32_t stall_ms;
	size_t data_map_bytes;
	bool writable;
};

/* A claimed, not yet committed record. */
struct ring_claim {
	uint64_t pos;     /* where the claim starts (a pad may precede the record) */
	uint64_t len_total; /* bytes claimed, pad included */
	uint64_t rec_pos; /* the record's own position */
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
	uint64_t pos;      /* the record's position */
	uint64_t next_pos; /* where the following record starts */
};

/* A member's reading state; `pos` is private, the slot's cursor public. */
struct ring_reader {
	uint64_t pos;
	uint64_t last_seq;
	uint32_t slot;
	uint32_t state_word; /* RING_MEMBER_WORD(gen, ACTIVE) as handed out */
};

/* Bytes a record of `len` payload bytes occupies. */
static inline uint64_t ring_rec_bytes(uint64_t len)
{
	return (sizeof(struct ring_rec) + len + RING_ALIGN - 1) & ~(uint64_t)(RING_ALIGN - 1);
}

/* Check capacity/max_msg; 0 or -EINVAL. */
int ring_check_sizes(uint64_t capacity, uint64_t max_msg);
/* Daemon: make both memfds, sealed against resizing, mode 0400. */
int ring_create(uint64_t capacity, uint32_t max_msg, uint32_t stall_ms, const char *name,
		int *data_fd, int *cursor_fd);
/* Map and validate; `writable` maps the data area read-write. */
int ring_map(struct ring *r, int data_fd, int cursor_fd, bool writable);
void ring_unmap(struct ring *r);

/*
 * Claim room for a record of `len` bytes with writer slot `writer`, leaving
 * `reserve` bytes of the ring free. Never waits: -EAGAIN when full, with the
 * slot of the member that holds the room in *blocker (or UINT32_MAX), and
 * -EMSGSIZE when len is over the group's limit.
 */
int ring_claim(struct ring *r, uint32_t writer, uint32_t len, uint32_t reserve,
	       struct ring_claim *c, uint32_t *blocker);
/* Publish a claimed record: 0, or -ECANCELED when the node cancelled the
 * claim first (readers skip it). Does not wake sleepers: call ring_wake. */
int ring_commit(struct ring *r, const struct ring_claim *c, uint16_t kind, uint16_t flags,
		int32_t from_pid, uint32_t from_node);
/* Turn a claim into padding that readers skip (-ECANCELED: it already was). */
int ring_abort(struct ring *r, const struct ring_claim *c);
/* After a commit: wake every sleeping receiver, if any sleeps. */
void ring_wake(struct ring *r);

/* *slowest from ring_min_cursor when an open claim, not a member, holds the
 * room: a writer's slot, never evicted (the node cancels its claim instead). */
#define RING_BLOCKED_BY_WRITER(w) (RING_MEMBER_SLOTS + (w))
/* The lowest live cursor or open claim (bounded by the tail); its holder in
 * *slowest: a member slot, RING_BLOCKED_BY_WRITER(w), or UINT32_MAX. */
uint64_t ring_min_cursor(struct ring *r, uint32_t *slowest);

/*
 * Read the record at the reader's position: 1 and *v filled, 0 when none is
 * committed yet, -EBADMSG when the record is malformed, -ECONNRESET when this
 * reader's slot was evicted or freed.
 */
int ring_read(struct ring *r, struct ring_reader *rd, struct ring_view *v);
/* Publish that everything below `pos` is read; wakes a parked producer. */
void ring_release(struct ring *r, struct ring_reader *rd, uint64_t pos);

/* Daemon: hand out / take back member and writer slots. */
int ring_member_add(struct ring *r, int32_t pid, uint32_t *slot, uint32_t *state_word,
		    uint64_t *cursor);
void ring_member_remove(struct ring *r, uint32_t slot);
/* Evict the holder of `state_word` from `slot`; false if it moved on. */
bool ring_member_evict(struct ring *r, uint32_t slot, uint32_t state_word);
int ring_writer_alloc(struct ring *r, int32_t pid, uint32_t *slot);
void ring_writer_free(struct ring *r, uint32_t slot);
/*
 * Daemon: the process holding writer slot `writer` is dead. If it held a
 * claim it never committed, cancel what is left of it so readers move on,
 * and release the space. 0 when done (or nothing to do), -EAGAIN when another writer's
 * claim names the same place (try again later), -EBADMSG when the slot's
 * claim is not one a writer could have made.
 */
int ring_seal_writer(struct ring *r, uint32_t writer);
/*
 * Node: cancel the claim writer `writer` holds at `pos` (it held it past the
 * stall limit). Readers skip it; the writer's commit returns -ECANCELED. The
 * space stays unused until the writer commits, aborts or is sealed dead: it
 * may still write there. -ESTALE if it moved on, -EAGAIN if its CAS has not
 * happened yet, -EBADMSG if the slot holds garbage.
 */
int ring_cancel_writer(struct ring *r, uint32_t writer, uint64_t pos);
/* Daemon: mark the group down so senders and readers stop. */
void ring_set_down(struct ring *r);
bool ring_is_down(const struct ring *r);

/* Ring fill: bytes between the slowest live member and the tail. */
uint64_t ring_fill(struct ring *r);

#endif /* PG_RING_H */

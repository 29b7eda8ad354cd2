/* SPDX-License-Identifier: MIT */
/*
 * The memory files rings live in. A memfd per area and per member page
 * would cost the daemon an fd each, so a node with 10,000 groups would
 * need tens of thousands of fds (there are 20,000 here, 1,024 by default).
 * Instead most of them are ranges of a SHELF: one big sparse memfd, sealed
 * at its full size, cut into page-aligned ranges that are never handed out
 * twice (a stale mapping of a range given back can never see a newer
 * owner's bytes). Who may write and who may read a range decide its
 * shelf, as an fd reads or writes all of its memfd: a session's own shelf
 * per class of groups (the same users may read and write them) holds its
 * member pages and writer areas in those groups, a directory shelf per
 * class their directories.
 */
#ifndef PG_RING_SHELF_H
#define PG_RING_SHELF_H

#include <stdbool.h>
#include <stdint.h>

struct shelf;
struct ring_bell;

/* A range of a memfd: [off, off + bytes) of fd, page aligned. On a shelf
 * (shelf != NULL) the fd is the shelf's; else it is the range's own. */
struct ring_file {
	int fd;
	uint64_t off;
	struct shelf *shelf;
};
#define RING_FILE_NONE ((struct ring_file){.fd = -1})

/* Address space of one shelf. Sparse: only touched pages are memory. */
#define SHELF_BYTES (1ull << 46)

/* A memfd of its own for `bytes` (tests; the data of a group). */
int ring_file_new(const char *label, uint64_t bytes, struct ring_file *f);
/* A fresh range of `bytes` on *s; a new shelf (labelled `label`) when *s
 * is NULL or full, the full one living on until its ranges are given back. */
int shelf_take(struct shelf **s, const char *label, uint64_t bytes, struct ring_file *f);
/* The bells of f's shelf (layout.h), mapped read-write once per shelf;
 * NULL for a memfd of its own, or without memory. */
struct ring_bell *ring_file_bells(const struct ring_file *f);
struct ring_bell *shelf_bells(struct shelf *s);
/* The id of f's shelf (ring_loc), 0 when it is a memfd of its own. */
uint64_t ring_file_shelf(const struct ring_file *f);
/* Give a range back: its memory goes at once (whoever still maps it reads
 * zeros), then its fd is closed or its shelf unreferenced. */
void ring_file_release(struct ring_file *f, uint64_t bytes);
/* Let go of a range whose bytes must outlive us (whoever maps it keeps
 * them): its fd is closed or its shelf unreferenced, nothing punched. */
void ring_file_forget(struct ring_file *f);
/* The holder of *s takes no more ranges from it; it goes with its last. */
void shelf_drop(struct shelf **s);
/* A read-only reopening of f's fd (to hand out), or -errno. */
int ring_file_ro(const struct ring_file *f);
/*
 * Look at up to `max` shelves, the next ones in turn: a shelf holding more
 * memory than its ranges' bytes had bytes written outside them, by someone
 * with a writable fd of it (a session's own shelf: its areas' writer), and
 * those are punched. Returns the bytes that went.
 */
uint64_t shelf_audit(unsigned max);
/* Bytes of the range that are memory now. */
uint64_t ring_file_resident(const struct ring_file *f, uint64_t bytes);
/* Whether fd is a file with [off, off + bytes) in it, off page aligned. */
int ring_file_check(int fd, uint64_t off, uint64_t bytes);

#endif /* PG_RING_SHELF_H */

// SPDX-License-Identifier: MIT
/*
 * A ring's geometry, its creation by the daemon, and its mapping by anyone
 * who was handed its fds. A mapping trusts nothing in the header it did not
 * check, and copies the sizes out once.
 */
#include "ring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int ring_check_sizes(uint64_t capacity, uint64_t max_msg)
{
	if (capacity < RING_MIN_BYTES || capacity > RING_MAX_BYTES)
		return -EINVAL;
	if (capacity & (capacity - 1))
		return -EINVAL;
	/* A record never straddles the end of its area: one that does not fit
	 * before the end wastes what is left, so a record must fit twice. The
	 * reserve keeps defaults what they were (a 64 KiB ring takes 16 KiB). */
	if (max_msg == 0 || max_msg > UINT32_MAX ||
	    2 * ring_rec_bytes(max_msg) > capacity - RING_PAGE)
		return -EINVAL;
	return 0;
}

uint32_t ring_writer_slots(uint64_t capacity)
{
	uint64_t n = RING_AREAS_BUDGET / capacity;
	if (n > RING_WRITER_SLOTS)
		n = RING_WRITER_SLOTS;
	if (n < RING_MIN_WRITERS)
		n = RING_MIN_WRITERS;
	return (uint32_t)n;
}

static uint64_t data_bytes(uint64_t capacity, uint32_t writers)
{
	return RING_AREAS_OFF(capacity) + (uint64_t)writers * capacity;
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
	uint32_t writers = ring_writer_slots(capacity);
	snprintf(label, sizeof(label), "pgroup:%.40s", name);
	int dfd = make_memfd(label, data_bytes(capacity, writers));
	if (dfd < 0)
		return dfd;
	int cfd = make_memfd(label, RING_CURSOR_BYTES);
	if (cfd < 0) {
		close(dfd);
		return cfd;
	}
	/* Only the header and the writer slots: the order and the areas are
	 * zero (EMPTY) as the memfd comes, and stay untouched until used. */
	struct ring_data_hdr *h =
	    mmap(NULL, RING_ORDER_OFF, PROT_READ | PROT_WRITE, MAP_SHARED, dfd, 0);
	struct ring_cursor_hdr *ch =
	    mmap(NULL, RING_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
	if (h == MAP_FAILED || ch == MAP_FAILED) {
		err = -errno;
		if (h != MAP_FAILED)
			munmap(h, RING_ORDER_OFF);
		if (ch != MAP_FAILED)
			munmap(ch, RING_PAGE);
		close(dfd);
		close(cfd);
		return err;
	}
	h->magic = RING_DATA_MAGIC;
	h->version = RING_VERSION;
	h->hdr_bytes = RING_ORDER_OFF;
	h->max_msg = max_msg;
	h->capacity = capacity;
	h->writer_slots = writers;
	h->stall_ms = stall_ms;
	h->order_slots = RING_ORDER_SLOTS(capacity);
	atomic_init(&h->tail, 0);
	atomic_init(&h->cached_min, 0);
	atomic_init(&h->state, RING_STATE_OPEN);
	struct ring_writer *w = (struct ring_writer *)((uint8_t *)h + RING_WRITERS_OFF);
	for (uint32_t i = 0; i < RING_WRITER_SLOTS; i++) {
		atomic_init(&w[i].claim_pos, RING_NO_CLAIM);
		atomic_init(&w[i].claim_won, RING_NO_CLAIM);
		atomic_init(&w[i].last_pos, RING_NO_CLAIM);
	}
	ch->magic = RING_CURSOR_MAGIC;
	ch->version = RING_VERSION;
	ch->member_slots = RING_MEMBER_SLOTS;
	/* Nobody else maps these yet: the fds go out after this returns. */
	munmap(h, RING_ORDER_OFF);
	munmap(ch, RING_PAGE);
	*data_fd = dfd;
	*cursor_fd = cfd;
	return 0;
}

static int fd_bytes(int fd, uint64_t want)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	return (uint64_t)st.st_size == want ? 0 : -EBADMSG;
}

int ring_map_as(struct ring *r, int data_fd, int cursor_fd, bool writable,
		const struct ring_geometry *g)
{
	memset(r, 0, sizeof(*r));
	if (ring_check_sizes(g->capacity, g->max_msg))
		return -EBADMSG;
	uint64_t cap = g->capacity, slots = RING_ORDER_SLOTS(cap);
	uint32_t writers = ring_writer_slots(cap);
	uint64_t bytes = data_bytes(cap, writers);
	/* Sizes before any access: touching a page past the end of a short
	 * memfd would be SIGBUS, not an error. */
	int err = fd_bytes(data_fd, bytes);
	if (!err)
		err = fd_bytes(cursor_fd, RING_CURSOR_BYTES);
	if (err)
		return err;
	int prot = PROT_READ | (writable ? PROT_WRITE : 0);
	/* MAP_NORESERVE: the areas are sparse; only what writers touch is
	 * memory, and it is the memfd's, not ours. */
	void *d = mmap(NULL, bytes, prot, MAP_SHARED | MAP_NORESERVE, data_fd, 0);
	if (d == MAP_FAILED)
		return -errno;
	void *c = mmap(NULL, RING_CURSOR_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, cursor_fd, 0);
	if (c == MAP_FAILED) {
		err = -errno;
		munmap(d, bytes);
		return err;
	}
	r->hdr = d;
	r->chdr = c;
	r->writers = (struct ring_writer *)((uint8_t *)d + RING_WRITERS_OFF);
	r->order = (_Atomic uint64_t *)((uint8_t *)d + RING_ORDER_OFF);
	r->areas = (uint8_t *)d + RING_AREAS_OFF(cap);
	r->members = (struct ring_member *)((uint8_t *)c + RING_MEMBERS_OFF);
	r->capacity = cap;
	r->amask = cap - 1;
	r->order_slots = slots;
	r->order_shift = (unsigned)__builtin_ctzll(slots);
	r->line_mask = slots / 8 - 1;
	r->line_shift = (unsigned)__builtin_ctzll(slots / 8);
	r->writer_slots = writers;
	r->max_msg = g->max_msg;
	r->stall_ms = g->stall_ms;
	r->data_map_bytes = bytes;
	r->writable = writable;
	return 0;
}

int ring_map(struct ring *r, int data_fd, int cursor_fd, bool writable)
{
	memset(r, 0, sizeof(*r));
	struct stat st;
	if (fstat(data_fd, &st) < 0)
		return -errno;
	if (st.st_size < (off_t)RING_ORDER_OFF || fd_bytes(cursor_fd, RING_CURSOR_BYTES))
		return -EBADMSG;
	struct ring_data_hdr *h = mmap(NULL, RING_PAGE, PROT_READ, MAP_SHARED, data_fd, 0);
	if (h == MAP_FAILED)
		return -errno;
	struct ring_cursor_hdr *ch = mmap(NULL, RING_PAGE, PROT_READ, MAP_SHARED, cursor_fd, 0);
	if (ch == MAP_FAILED) {
		munmap(h, RING_PAGE);
		return -errno;
	}
	struct ring_geometry g = {
	    .capacity = h->capacity, .max_msg = h->max_msg, .stall_ms = h->stall_ms};
	bool ok = h->magic == RING_DATA_MAGIC && h->version == RING_VERSION &&
		  h->hdr_bytes == RING_ORDER_OFF && ring_check_sizes(g.capacity, g.max_msg) == 0 &&
		  h->order_slots == RING_ORDER_SLOTS(g.capacity) &&
		  h->writer_slots == ring_writer_slots(g.capacity) &&
		  ch->magic == RING_CURSOR_MAGIC && ch->version == RING_VERSION &&
		  ch->member_slots == RING_MEMBER_SLOTS;
	munmap(h, RING_PAGE);
	munmap(ch, RING_PAGE);
	return ok ? ring_map_as(r, data_fd, cursor_fd, writable, &g) : -EBADMSG;
}

void ring_unmap(struct ring *r)
{
	if (r->hdr)
		munmap(r->hdr, r->data_map_bytes);
	if (r->chdr)
		munmap(r->chdr, RING_CURSOR_BYTES);
	memset(r, 0, sizeof(*r));
}

void ring_area_init(struct ring_area *a, uint32_t writer)
{
	*a = (struct ring_area){.writer = writer, .head = 0, .tail = 0, .last_pos = RING_NO_CLAIM};
}

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
#include <stdlib.h>
#include <string.h>
#include <linux/falloc.h>
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


int ring_make_memfd(const char *name, size_t bytes)
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

bool ring_member_slots_ok(uint64_t n)
{
	return n >= RING_MEMBER_SLOTS_STEP && n <= RING_MEMBER_SLOTS_MAX &&
	       n % RING_MEMBER_SLOTS_STEP == 0;
}

int ring_create_at(uint64_t capacity, uint32_t max_msg, uint32_t stall_ms, uint32_t member_slots,
		   const char *name, int *data_fd, const struct ring_file *dir)
{
	char label[64];
	int err = ring_check_sizes(capacity, max_msg);
	if (err)
		return err;
	if (!ring_member_slots_ok(member_slots))
		return -EINVAL;
	if ((err = ring_file_check(dir->fd, dir->off,
				   RING_DIR_FILE_BYTES_FOR(capacity, member_slots))))
		return err;
	uint32_t writers = ring_writer_slots(capacity);
	const uint64_t order_off = RING_ORDER_OFF_FOR(member_slots);
	snprintf(label, sizeof(label), "pgroup:%.40s", name);
	int dfd = ring_make_memfd(label, RING_DATA_BYTES_FOR(capacity, member_slots));
	if (dfd < 0)
		return dfd;
	/* Only the header and the writer slots: the order is zero (EMPTY) as
	 * the memfd comes, and stays untouched until used. */
	struct ring_data_hdr *h =
	    mmap(NULL, order_off, PROT_READ | PROT_WRITE, MAP_SHARED, dfd, 0);
	/* The directory's header and writer ids: its first two pages. */
	const size_t dir_head = RING_WRITER_IDS_OFF + RING_PAGE;
	struct ring_dir_hdr *ch = mmap(NULL, dir_head, PROT_READ | PROT_WRITE, MAP_SHARED, dir->fd,
				       (off_t)dir->off);
	if (h == MAP_FAILED || ch == MAP_FAILED) {
		err = -errno;
		if (h != MAP_FAILED)
			munmap(h, order_off);
		if (ch != MAP_FAILED)
			munmap(ch, dir_head);
		close(dfd);
		return err;
	}
	h->magic = RING_DATA_MAGIC;
	h->version = RING_VERSION;
	h->hdr_bytes = (uint32_t)order_off;
	h->max_msg = max_msg;
	h->capacity = capacity;
	h->writer_slots = writers;
	h->stall_ms = stall_ms;
	h->order_slots = RING_ORDER_SLOTS(capacity);
	atomic_init(&h->tail, 0);
	atomic_init(&h->cached_min, 0);
	atomic_init(&h->state, RING_STATE_OPEN);
	struct ring_writer *w = (struct ring_writer *)((uint8_t *)h + RING_WRITERS_OFF);
	/* Only the node's own writer slot: another's is set when it is
	 * handed out, and until then its page stays untouched (an idle group
	 * costs a few pages, not the tables'). A wait slot's zero wake_at is a
	 * threshold already passed: the first producer to park sets its own. */
	atomic_init(&w[RING_DAEMON_WRITER].claim_pos, RING_NO_CLAIM);
	atomic_init(&w[RING_DAEMON_WRITER].claim_won, RING_NO_CLAIM);
	atomic_init(&w[RING_DAEMON_WRITER].last_pos, RING_NO_CLAIM);
	/* The node's area is there from the start, generation 1. */
	struct ring_writer_id *ids = (struct ring_writer_id *)((uint8_t *)ch + RING_WRITER_IDS_OFF);
	atomic_init(&ids[RING_DAEMON_WRITER].gen, 1);
	ch->magic = RING_DIR_MAGIC;
	ch->version = RING_VERSION;
	ch->member_slots = member_slots;
	/* Nobody else maps these yet: the fds go out after this returns. */
	munmap(h, order_off);
	munmap(ch, dir_head);
	*data_fd = dfd;
	return 0;
}

int ring_create(uint64_t capacity, uint32_t max_msg, uint32_t stall_ms, const char *name,
		int *data_fd, int *dir_fd)
{
	struct ring_file dir;
	int err = ring_check_sizes(capacity, max_msg);
	if (err || (err = ring_file_new("pgroup:dir", RING_DIR_FILE_BYTES(capacity), &dir)))
		return err;
	if ((err = ring_create_at(capacity, max_msg, stall_ms, RING_MEMBER_SLOTS, name, data_fd,
				  &dir))) {
		close(dir.fd);
		return err;
	}
	*dir_fd = dir.fd;
	return 0;
}

static int fd_bytes(int fd, uint64_t want)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	return (uint64_t)st.st_size == want ? 0 : -EBADMSG;
}

static int map_common(struct ring *r, int data_fd, int dir_fd, bool writable, bool owner,
		      const struct ring_geometry *g)
{
	memset(r, 0, sizeof(*r));
	uint32_t ms = g->member_slots ? g->member_slots : RING_MEMBER_SLOTS;
	if (ring_check_sizes(g->capacity, g->max_msg) || !ring_member_slots_ok(ms))
		return -EBADMSG;
	uint64_t cap = g->capacity, slots = RING_ORDER_SLOTS(cap);
	uint32_t writers = ring_writer_slots(cap);
	uint64_t bytes = RING_DATA_BYTES_FOR(cap, ms), dir_bytes = RING_DIR_BYTES_FOR(ms);
	/* Sizes before any access: touching a page past the end of a short
	 * memfd would be SIGBUS, not an error. */
	int err = fd_bytes(data_fd, bytes);
	if (!err)
		err = ring_file_check(dir_fd, g->dir_off, dir_bytes + cap);
	if (err)
		return err;
	struct ring_pages *p = NULL;
	struct ring_file *afd = NULL;
	if ((writable && !(p = calloc(1, sizeof(*p)))) ||
	    (owner && !(afd = malloc(writers * sizeof(*afd))))) {
		free(p);
		return -ENOMEM;
	}
	for (uint32_t i = 0; owner && i < writers; i++)
		afd[i] = RING_FILE_NONE;
	int prot = PROT_READ | (writable ? PROT_WRITE : 0);
	/*
	 * One stretch of address space: the data, the directory with the
	 * node's area right after it (one mapping: they are adjacent in
	 * the directory's file), then every other writer's area, each
	 * mapped where it belongs, inaccessible until then. Few mappings per
	 * group, as a process in 10,000 groups stays under the kernel's
	 * 65,530 (vm.max_map_count). MAP_NORESERVE: address space, not memory.
	 */
	size_t span = bytes + dir_bytes + (size_t)writers * cap;
	uint8_t *base = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			     -1, 0);
	if (base == MAP_FAILED) {
		free(p);
		free(afd);
		return -errno;
	}
	void *d = mmap(base, bytes, prot, MAP_SHARED | MAP_FIXED | MAP_NORESERVE, data_fd, 0);
	/* The directory is the daemon's: read-only for everyone else, and
	 * the fd they hold is read-only too, so no mprotect can change it.
	 * So is the node's own area: every record in it is the daemon's. */
	void *c = d == MAP_FAILED ? MAP_FAILED
				  : mmap(base + bytes, dir_bytes + cap,
					 PROT_READ | (owner ? PROT_WRITE : 0),
					 MAP_SHARED | MAP_FIXED | MAP_NORESERVE, dir_fd, (off_t)g->dir_off);
	if (c == MAP_FAILED) {
		err = -errno;
		munmap(base, span);
		free(p);
		free(afd);
		return err;
	}
	r->map_base = base;
	r->map_bytes = span;
	r->hdr = d;
	r->dir = c;
	r->writers = (struct ring_writer *)((uint8_t *)d + RING_WRITERS_OFF);
	r->mwait = (struct ring_mwait *)((uint8_t *)d + RING_MWAIT_OFF);
	r->order = (_Atomic uint64_t *)((uint8_t *)d + RING_ORDER_OFF_FOR(ms));
	r->areas = base + bytes + dir_bytes;
	r->member_slots = ms;
	r->dir_bytes = dir_bytes;
	r->area_file = afd;
	r->area_gen[RING_DAEMON_WRITER] = 1;
	for (uint32_t i = 0; i < writers; i++)
		r->area_at[i] = r->areas + (uint64_t)i * cap;
	r->members = (const struct ring_member *)((uint8_t *)c + RING_MEMBERS_OFF);
	r->writer_ids = (const struct ring_writer_id *)((uint8_t *)c + RING_WRITER_IDS_OFF);
	r->area_locs = (const struct ring_loc *)((uint8_t *)c + RING_AREA_LOCS_OFF);
	r->pages = p;
	if (p && owner) {
		/* The daemon makes every change of the member set itself. */
		p->own = true;
		p->synced = true;
		p->seq = atomic_load(&r->dir->seq);
	}
	r->capacity = cap;
	r->amask = cap - 1;
	r->order_slots = slots;
	r->order_shift = (unsigned)__builtin_ctzll(slots);
	r->line_mask = slots / 8 - 1;
	r->line_shift = (unsigned)__builtin_ctzll(slots / 8);
	r->writer_slots = writers;
	r->max_msg = g->max_msg;
	r->stall_ms = g->stall_ms;
	r->writable = writable;
	r->owner = owner;
	return 0;
}

int ring_map_as(struct ring *r, int data_fd, int dir_fd, bool writable,
		const struct ring_geometry *g)
{
	return map_common(r, data_fd, dir_fd, writable, false, g);
}

int ring_map(struct ring *r, int data_fd, int dir_fd, bool writable)
{
	return ring_map_at(r, data_fd, dir_fd, 0, writable);
}

int ring_map_at(struct ring *r, int data_fd, int dir_fd, uint64_t dir_off, bool writable)
{
	memset(r, 0, sizeof(*r));
	struct stat st;
	if (fstat(data_fd, &st) < 0)
		return -errno;
	if (st.st_size < (off_t)RING_PAGE || ring_file_check(dir_fd, dir_off, RING_PAGE))
		return -EBADMSG;
	struct ring_data_hdr *h = mmap(NULL, RING_PAGE, PROT_READ, MAP_SHARED, data_fd, 0);
	if (h == MAP_FAILED)
		return -errno;
	struct ring_dir_hdr *ch =
	    mmap(NULL, RING_PAGE, PROT_READ, MAP_SHARED, dir_fd, (off_t)dir_off);
	if (ch == MAP_FAILED) {
		munmap(h, RING_PAGE);
		return -errno;
	}
	struct ring_geometry g = {.capacity = h->capacity,
				  .max_msg = h->max_msg,
				  .stall_ms = h->stall_ms,
				  .dir_off = dir_off,
				  .member_slots = ch->member_slots};
	bool ok = h->magic == RING_DATA_MAGIC && h->version == RING_VERSION &&
		  ring_member_slots_ok(g.member_slots) &&
		  h->hdr_bytes == RING_ORDER_OFF_FOR(g.member_slots) &&
		  ring_check_sizes(g.capacity, g.max_msg) == 0 &&
		  h->order_slots == RING_ORDER_SLOTS(g.capacity) &&
		  h->writer_slots == ring_writer_slots(g.capacity) && ch->magic == RING_DIR_MAGIC &&
		  ch->version == RING_VERSION;
	munmap(h, RING_PAGE);
	munmap(ch, RING_PAGE);
	/* A trusted header is the daemon's (or a test's): writable means the
	 * owner's mapping, directory and member pages included. */
	return ok ? map_common(r, data_fd, dir_fd, writable, writable, &g) : -EBADMSG;
}

static void page_unmap(struct ring_pages *p, uint32_t slot)
{
	if (slot >= p->cap)
		return;
	if (p->borrowed[slot])
		(*p->borrowed[slot])--;
	else if (p->page[slot])
		munmap(p->page[slot], RING_PAGE);
	p->page[slot] = NULL;
	p->word[slot] = 0;
	p->borrowed[slot] = NULL;
	p->bell[slot] = NULL;
}

/* Tables for slots [0, slot] at least (one block: pages, words, list). */
static int pages_grow(struct ring_pages *p, uint32_t slot)
{
	if (slot < p->cap)
		return 0;
	uint32_t cap = p->cap ? p->cap : 8;
	while (cap <= slot)
		cap *= 2;
	if (cap > RING_MEMBER_SLOTS_MAX)
		cap = RING_MEMBER_SLOTS_MAX;
	size_t each = sizeof(*p->page) + sizeof(*p->borrowed) + sizeof(*p->bell) + sizeof(*p->word) +
		      sizeof(*p->live);
	uint8_t *b = calloc(cap, each);
	if (!b)
		return -ENOMEM;
	struct ring_mpage **page = (struct ring_mpage **)b;
	/* Pointers first (aligned), then the narrower arrays. */
	unsigned **borrowed = (unsigned **)(b + cap * sizeof(*page));
	struct ring_bell **bell = (struct ring_bell **)(b + cap * (sizeof(*page) + sizeof(*borrowed)));
	uint32_t *word =
	    (uint32_t *)(b + cap * (sizeof(*page) + sizeof(*borrowed) + sizeof(*bell)));
	uint16_t *live = (uint16_t *)(b + cap * (sizeof(*page) + sizeof(*borrowed) + sizeof(*bell) +
						 sizeof(*word)));
	if (p->cap) {
		memcpy(page, p->page, p->cap * sizeof(*page));
		memcpy(word, p->word, p->cap * sizeof(*word));
		memcpy(live, p->live, p->n_live * sizeof(*live));
		memcpy(borrowed, p->borrowed, p->cap * sizeof(*borrowed));
		memcpy(bell, p->bell, p->cap * sizeof(*bell));
	}
	free(p->page);
	p->page = page;
	p->word = word;
	p->live = live;
	p->borrowed = borrowed;
	p->bell = bell;
	p->cap = cap;
	return 0;
}

void ring_pages_relist(struct ring *r)
{
	struct ring_pages *p = r->pages;
	uint32_t n = 0;
	for (uint32_t i = 0; i < p->cap; i++)
		if (p->page[i])
			p->live[n++] = (uint16_t)i;
	p->n_live = n;
}

int ring_pages_attach(struct ring *r, uint32_t slot, uint32_t word, int fd, uint64_t off)
{
	struct ring_pages *p = r->pages;
	if (!p || slot >= r->member_slots)
		return -EINVAL;
	int err = ring_file_check(fd, off, RING_PAGE);
	if (err || (err = pages_grow(p, slot)))
		return err;
	int prot = PROT_READ | (p->own ? PROT_WRITE : 0);
	void *m = mmap(NULL, RING_PAGE, prot, MAP_SHARED, fd, (off_t)off);
	if (m == MAP_FAILED)
		return -errno;
	page_unmap(p, slot);
	p->page[slot] = m;
	p->word[slot] = word;
	return 0;
}

void ring_pages_detach(struct ring *r, uint32_t slot)
{
	if (r->pages)
		page_unmap(r->pages, slot);
}

bool ring_pages_stale(const struct ring *r)
{
	const struct ring_pages *p = r->pages;
	return p && (!p->synced || atomic_load_explicit(&r->dir->seq, memory_order_acquire) !=
					   p->seq);
}

int ring_pages_sync(struct ring *r, ring_page_fetch *fetch, void *arg)
{
	struct ring_pages *p = r->pages;
	if (!p || p->own)
		return 0;
	/* A few rounds: the member set may change while we ask. Each round
	 * is bounded by the slot count, not by anything in shared memory. */
	for (int round = 0; round < 8; round++) {
		/* Acquire: pairs with the release of seq after a member is
		 * made ACTIVE or FREE (ring_member_add/remove). */
		uint32_t seq = atomic_load_explicit(&r->dir->seq, memory_order_acquire);
		uint32_t hi = atomic_load_explicit(&r->dir->slot_hi, memory_order_acquire);
		if (hi > r->member_slots)
			hi = r->member_slots;
		/* Tables as far as slots were handed out, free ones too: with
		 * fewer, ring_min_cursor can never know the minimum. */
		int err = hi ? pages_grow(p, hi - 1) : 0;
		uint32_t end = hi > p->cap ? hi : p->cap;
		for (uint32_t i = 0; i < end && !err; i++) {
			uint32_t w = i < hi ? atomic_load(&r->members[i].state) : 0;
			if (RING_STATE_OF(w) != RING_MEMBER_ACTIVE) {
				page_unmap(p, i);
				continue;
			}
			if (i < p->cap && p->page[i] && p->word[i] == w)
				continue;
			int fd = -1;
			uint64_t off = 0;
			struct ring_mpage *at = NULL;
			unsigned *ref = NULL;
			err = fetch(arg, i, w, &fd, &off, &at, &ref);
			if (!err && at) {
				page_unmap(p, i);
				p->page[i] = at;
				p->word[i] = w;
				p->borrowed[i] = ref;
			} else if (!err) {
				err = ring_pages_attach(r, i, w, fd, off);
				close(fd);
			}
			if (err == -ESTALE)
				err = 0; /* changed meanwhile: the next round sees it */
		}
		ring_pages_relist(r);
		if (err)
			return err;
		if (atomic_load(&r->dir->seq) == seq) {
			p->seq = seq;
			p->synced = true;
			return 0;
		}
	}
	return -EAGAIN;
}

void ring_unmap(struct ring *r)
{
	if (r->pages) {
		for (uint32_t i = 0; i < r->pages->cap; i++)
			page_unmap(r->pages, i);
		free(r->pages->page);
		free(r->pages);
	}
	if (r->area_file) {
		/* Not punched: members may still read them (the daemon
		 * gives them back once they cannot, registry.c's graves). */
		for (uint32_t i = 0; i < r->writer_slots; i++)
			ring_file_forget(&r->area_file[i]);
		free(r->area_file);
	}
	if (r->area_ref) {
		for (uint32_t i = 0; i < r->writer_slots; i++)
			if (r->area_ref[i])
				(*r->area_ref[i])--;
		free(r->area_ref);
	}
	if (r->map_base)
		munmap(r->map_base, r->map_bytes);
	memset(r, 0, sizeof(*r));
}

int ring_area_attach(struct ring *r, uint32_t writer, uint32_t gen, int fd, uint64_t off,
		     bool writable)
{
	if (writer >= r->writer_slots || gen == 0)
		return -EINVAL;
	int err = ring_file_check(fd, off, r->capacity);
	if (err)
		return err;
	/* In place of what was there: the reservation, or an older area. */
	void *at = r->areas + (uint64_t)writer * r->capacity;
	void *m = mmap(at, r->capacity, PROT_READ | (writable ? PROT_WRITE : 0),
		       MAP_SHARED | MAP_FIXED | MAP_NORESERVE, fd, (off_t)off);
	if (m == MAP_FAILED)
		return -errno;
	r->area_gen[writer] = gen;
	r->area_at[writer] = at;
	return 0;
}

/* Put the reservation back where writer's area was mapped. */
static void area_unmap(struct ring *r, uint32_t writer)
{
	uint8_t *at = r->areas + (uint64_t)writer * r->capacity;
	if (r->area_at[writer] == at)
		mmap(at, r->capacity, PROT_NONE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
	if (r->area_ref && r->area_ref[writer]) {
		(*r->area_ref[writer])--; /* in a window: its user count */
		r->area_ref[writer] = NULL;
	}
	r->area_gen[writer] = 0;
	r->area_at[writer] = at;
}

int ring_area_place(struct ring *r, uint32_t writer, uint32_t gen, const uint8_t *at,
		    unsigned *ref)
{
	if (writer == RING_DAEMON_WRITER || writer >= r->writer_slots ||
	    (!r->area_ref && !(r->area_ref = calloc(r->writer_slots, sizeof(*r->area_ref))))) {
		(*ref)--;
		return writer >= r->writer_slots || writer == RING_DAEMON_WRITER ? -EINVAL : -ENOMEM;
	}
	/* An older generation mapped in its place goes (nobody reads it). */
	if (r->area_gen[writer])
		area_unmap(r, writer);
	r->area_at[writer] = at;
	r->area_gen[writer] = gen;
	r->area_ref[writer] = ref;
	return 0;
}

void ring_area_drop(struct ring *r, uint32_t writer)
{
	if (!r->area_file || writer >= r->writer_slots || r->area_file[writer].fd < 0)
		return;
	/* Its memory goes now, whoever still maps it: nobody reads it. */
	ring_file_release(&r->area_file[writer], r->capacity);
	area_unmap(r, writer);
}

int ring_area_create(struct ring *r, uint32_t writer, const struct ring_file *area)
{
	/* Slot 0's area is the directory's (RING_EVENTS_OFF_FOR). */
	if (!r->area_file || writer == RING_DAEMON_WRITER || writer >= r->writer_slots)
		return -EINVAL;
	struct ring_writer_id *id = (struct ring_writer_id *)&r->writer_ids[writer];
	uint32_t gen = atomic_load(&id->gen) + 1;
	if (gen == 0)
		gen = 1; /* 0 means "no area" */
	/* The previous holder's area goes first: every member is past its
	 * records (ring_writer_alloc checked). */
	ring_area_drop(r, writer);
	int err = ring_area_attach(r, writer, gen, area->fd, area->off, true);
	if (err)
		return err;
	r->area_file[writer] = *area;
	/* Where it is, for readers holding its shelf (ring_area_where); then
	 * the generation. Release: pairs with the reader's acquire load of
	 * gen (ring_read, ring_area_where). */
	struct ring_loc *loc = (struct ring_loc *)&r->area_locs[writer];
	/* Release fence: none of the new location is seen before what came
	 * before it (the previous generation's end). */
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&loc->shelf, ring_file_shelf(area), memory_order_relaxed);
	atomic_store_explicit(&loc->off, area->off, memory_order_relaxed);
	atomic_store_explicit(&id->gen, gen, memory_order_release);
	return 0;
}

/* A location read after the acquire that made it current, checked again
 * after: the daemon changes it only before a newer generation or state. */
static bool loc_read(const struct ring_loc *l, uint64_t *shelf, uint64_t *off)
{
	*shelf = atomic_load_explicit(&l->shelf, memory_order_relaxed);
	*off = atomic_load_explicit(&l->off, memory_order_relaxed);
	/* Acquire fence: the loads above come before the re-check below. */
	atomic_thread_fence(memory_order_acquire);
	return *shelf != 0;
}

bool ring_area_where(const struct ring *r, uint32_t writer, uint32_t gen, uint64_t *shelf,
		     uint64_t *off)
{
	if (writer >= r->writer_slots ||
	    atomic_load_explicit(&r->writer_ids[writer].gen, memory_order_acquire) != gen)
		return false;
	return loc_read(&r->area_locs[writer], shelf, off) &&
	       atomic_load_explicit(&r->writer_ids[writer].gen, memory_order_relaxed) == gen;
}

bool ring_page_where(const struct ring *r, uint32_t slot, uint32_t word, uint64_t *shelf,
		     uint64_t *off)
{
	if (slot >= r->member_slots ||
	    atomic_load_explicit(&r->members[slot].state, memory_order_acquire) != word)
		return false;
	return loc_read(&r->members[slot].page, shelf, off) &&
	       atomic_load_explicit(&r->members[slot].state, memory_order_relaxed) == word;
}

struct ring_mpage *ring_page_map(int fd, uint64_t off, bool writable)
{
	if (ring_file_check(fd, off, RING_PAGE))
		return NULL;
	void *m = mmap(NULL, RING_PAGE, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd,
		       (off_t)off);
	return m == MAP_FAILED ? NULL : m;
}

void ring_page_unmap(struct ring_mpage *page)
{
	if (page)
		munmap(page, RING_PAGE);
}

void ring_area_init(struct ring_area *a, uint32_t writer)
{
	*a = (struct ring_area){.writer = writer, .head = 0, .tail = 0, .last_pos = RING_NO_CLAIM};
}

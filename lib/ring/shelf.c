// SPDX-License-Identifier: MIT
/*
 * Shelves: big sealed sparse memfds cut into ranges (shelf.h says why).
 * Only the daemon makes and cuts them; everyone else gets fds and offsets.
 */
#include "shelf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layout.h"
#include "ring.h"

/* A range handed out and not given back (len 0: given back, kept in
 * place so the table stays in offset order until it is compacted). */
struct shelf_range {
	uint64_t off, len;
};

struct shelf {
	int fd;          /* read-write, the daemon's */
	uint64_t id;     /* names it in directories (ring_loc): never reused */
	uint64_t next;   /* where the next range starts: none is handed out twice */
	unsigned ranges; /* ranges not given back or forgotten yet */
	bool held;       /* its holder may still take ranges from it */
	/* What may be memory in it: ranges handed out and not given back
	 * (forgotten ones too: their bytes outlive us), in offset order. */
	struct shelf_range *live;
	unsigned n_live, cap_live, dead;
	uint64_t live_bytes;
	struct shelf *prev, *next_shelf; /* every shelf, for shelf_audit */
	struct ring_bell *bells; /* its bells, read-write, once asked for */
};

/* Every shelf there is, and where the next audit starts. Shelves are made
 * by one thread of one process (the daemon, or a test standing in for it). */
static struct shelf *all_shelves, *audit_at;
static unsigned n_shelves;

static uint64_t page_round(uint64_t bytes)
{
	return (bytes + RING_PAGE - 1) & ~(uint64_t)(RING_PAGE - 1);
}

int ring_file_new(const char *label, uint64_t bytes, struct ring_file *f)
{
	int fd = ring_make_memfd(label, bytes);
	if (fd < 0)
		return fd;
	*f = (struct ring_file){.fd = fd};
	return 0;
}

static void shelf_free_if_done(struct shelf *s)
{
	if (s->held || s->ranges)
		return;
	if (audit_at == s)
		audit_at = s->next_shelf;
	if (s->prev)
		s->prev->next_shelf = s->next_shelf;
	else
		all_shelves = s->next_shelf;
	if (s->next_shelf)
		s->next_shelf->prev = s->prev;
	n_shelves--;
	if (s->bells)
		munmap(s->bells, RING_BELL_BYTES);
	close(s->fd);
	free(s->live);
	free(s);
}

static int live_add(struct shelf *s, uint64_t off, uint64_t len)
{
	if (s->n_live == s->cap_live) {
		unsigned cap = s->cap_live ? 2 * s->cap_live : 8;
		struct shelf_range *n = realloc(s->live, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		s->live = n;
		s->cap_live = cap;
	}
	/* Ranges are cut in offset order: appending keeps the order. */
	s->live[s->n_live++] = (struct shelf_range){off, len};
	s->live_bytes += len;
	return 0;
}

/* The range at off is given back: its bytes may go. */
static void live_remove(struct shelf *s, uint64_t off)
{
	unsigned lo = 0, hi = s->n_live;
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		if (s->live[mid].off < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == s->n_live || s->live[lo].off != off || !s->live[lo].len)
		return;
	s->live_bytes -= s->live[lo].len;
	s->live[lo].len = 0;
	if (++s->dead <= s->n_live / 2)
		return;
	unsigned n = 0;
	for (unsigned i = 0; i < s->n_live; i++)
		if (s->live[i].len)
			s->live[n++] = s->live[i];
	s->n_live = n;
	s->dead = 0;
}

int shelf_take(struct shelf **s, const char *label, uint64_t bytes, struct ring_file *f)
{
	bytes = page_round(bytes);
	if (bytes == 0 || bytes > SHELF_BYTES - RING_BELL_BYTES)
		return -EINVAL;
	if (*s && (*s)->next + bytes > SHELF_BYTES)
		shelf_drop(s); /* full: its ranges keep it until they go */
	if (!*s) {
		struct shelf *n = calloc(1, sizeof(*n));
		if (!n)
			return -ENOMEM;
		/* Sealed at its full size like any ring memfd, so nobody
		 * holding a writable fd of it can shrink it under a mapping
		 * (SIGBUS) or grow it. */
		if ((n->fd = ring_make_memfd(label, SHELF_BYTES)) < 0) {
			int err = n->fd;
			free(n);
			return err;
		}
		/* Shelves are made by one thread of one process (the daemon,
		 * or a test standing in for it). */
		static uint64_t last_id;
		n->id = ++last_id;
		n->held = true;
		/* Its bells (layout.h): never a range, always live. */
		if (live_add(n, 0, RING_BELL_BYTES)) {
			close(n->fd);
			free(n);
			return -ENOMEM;
		}
		n->next = RING_BELL_BYTES;
		n->next_shelf = all_shelves;
		if (all_shelves)
			all_shelves->prev = n;
		all_shelves = n;
		n_shelves++;
		*s = n;
	}
	if (live_add(*s, (*s)->next, bytes))
		return -ENOMEM;
	*f = (struct ring_file){.fd = (*s)->fd, .off = (*s)->next, .shelf = *s};
	(*s)->next += bytes;
	(*s)->ranges++;
	return 0;
}

struct ring_bell *shelf_bells(struct shelf *s)
{
	if (s && !s->bells) {
		void *m = mmap(NULL, RING_BELL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
		s->bells = m == MAP_FAILED ? NULL : m;
	}
	return s ? s->bells : NULL;
}

struct ring_bell *ring_file_bells(const struct ring_file *f)
{
	return shelf_bells(f->fd >= 0 ? f->shelf : NULL);
}

uint64_t ring_file_shelf(const struct ring_file *f)
{
	return f->fd >= 0 && f->shelf ? f->shelf->id : 0;
}

void ring_file_release(struct ring_file *f, uint64_t bytes)
{
	if (f->fd < 0)
		return;
	/* The memory goes now, whoever maps the range: nobody may read it. */
	fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)f->off,
		  (off_t)page_round(bytes));
	if (f->shelf)
		live_remove(f->shelf, f->off);
	ring_file_forget(f);
}

void ring_file_forget(struct ring_file *f)
{
	if (f->fd < 0)
		return;
	if (f->shelf) {
		f->shelf->ranges--;
		shelf_free_if_done(f->shelf);
	} else {
		close(f->fd);
	}
	*f = RING_FILE_NONE;
}

void shelf_drop(struct shelf **s)
{
	if (!*s)
		return;
	(*s)->held = false;
	shelf_free_if_done(*s);
	*s = NULL;
}

int ring_file_ro(const struct ring_file *f)
{
	/* Mode 0400 on the memfd stops anyone without CAP_DAC_OVERRIDE from
	 * reopening the copy for writing (ring_make_memfd). */
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", f->fd);
	int ro = open(path, O_RDONLY | O_CLOEXEC);
	return ro < 0 ? -errno : ro;
}

uint64_t ring_file_resident(const struct ring_file *f, uint64_t bytes)
{
	if (f->fd < 0)
		return 0;
	/* Bounded by the range's pages: each step moves past one extent. */
	uint64_t got = 0, end = f->off + page_round(bytes);
	off_t at = (off_t)f->off;
	while ((uint64_t)at < end) {
		off_t data = lseek(f->fd, at, SEEK_DATA);
		if (data < 0 || (uint64_t)data >= end)
			break;
		off_t hole = lseek(f->fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > end)
			hole = (off_t)end;
		got += (uint64_t)(hole - data);
		at = hole;
	}
	return got;
}

int ring_file_check(int fd, uint64_t off, uint64_t bytes)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (off % RING_PAGE || off > (uint64_t)st.st_size || bytes > (uint64_t)st.st_size - off)
		return -EBADMSG;
	return 0;
}

/* Punch [from, to) of s: 0 or -errno. */
static int punch(const struct shelf *s, uint64_t from, uint64_t to)
{
	if (from >= to)
		return 0;
	return fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)from,
			 (off_t)(to - from)) < 0 ? -errno : 0;
}

/* Bytes of s that are memory (or swap) now; 0 if fstat cannot say. */
static uint64_t allocated(const struct shelf *s)
{
	struct stat st;
	return fstat(s->fd, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

uint64_t shelf_audit(unsigned max)
{
	uint64_t freed = 0;
	/* Each shelf once at most. */
	for (unsigned k = 0; k < max && k < n_shelves; k++) {
		struct shelf *s = audit_at ? audit_at : all_shelves;
		audit_at = s->next_shelf;
		/* Within what its ranges may hold (what their holders were
		 * charged for): nothing to look for. */
		uint64_t before = allocated(s);
		if (before <= s->live_bytes)
			continue;
		/* Someone with a writable fd of it wrote outside its ranges
		 * (ahead of them, or into one given back): those bytes go. One
		 * punch per gap, each bounded by the table. */
		uint64_t from = 0;
		for (unsigned i = 0; i < s->n_live; i++) {
			if (!s->live[i].len)
				continue;
			punch(s, from, s->live[i].off);
			from = s->live[i].off + s->live[i].len;
		}
		punch(s, from, SHELF_BYTES);
		uint64_t after = allocated(s);
		freed += before > after ? before - after : 0;
	}
	return freed;
}

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

struct shelf {
	int fd;          /* read-write, the daemon's */
	uint64_t id;     /* names it in directories (ring_loc): never reused */
	uint64_t next;   /* where the next range starts: none is handed out twice */
	unsigned ranges; /* ranges not given back yet */
	bool held;       /* its holder may still take ranges from it */
};

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
	if (!s->held && s->ranges == 0) {
		close(s->fd);
		free(s);
	}
}

int shelf_take(struct shelf **s, const char *label, uint64_t bytes, struct ring_file *f)
{
	bytes = page_round(bytes);
	if (bytes == 0 || bytes > SHELF_BYTES)
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
		*s = n;
	}
	*f = (struct ring_file){.fd = (*s)->fd, .off = (*s)->next, .shelf = *s};
	(*s)->next += bytes;
	(*s)->ranges++;
	return 0;
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

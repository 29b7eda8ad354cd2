// SPDX-License-Identifier: MIT
/*
 * Unit tests of the group ring (lib/ring): sizes, creation and mapping; the
 * message path (claim into a writer's own area, commit or abort by one
 * compare-and-swap on the order entry, read in order, release); room (the
 * order and each area) and the event reserve; a stuck, lapped or dead
 * writer that must not stop the order nor reach a reader; one total order
 * under concurrent producers (threads and processes); members joining and
 * being evicted; writer slot reuse; hostile shared memory; the futex paths.
 *
 * Every test drives the ring in-process, as the daemon and its clients
 * would across processes: one writable mapping for the "daemon", further
 * mappings (often read-only, as a receive-only member has) of the same fds.
 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ring/ring.h"
#include "ring/wait.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MS (1000000LL)
/* Tail compare-and-swap attempts per claim, as a client would pass. */
#define TRIES 64u
/* Order entries of the smallest ring (one per RING_ALIGN bytes of area). */
#define MIN_SLOTS RING_ORDER_SLOTS(RING_MIN_BYTES)
/* The largest max_msg of a ring of `cap` bytes: a record must fit twice in
 * the area less a page (map.c). */
#define TOP_MSG(cap) (((cap)-RING_PAGE) / 2 - sizeof(struct ring_rec))
/* A reader that gets nothing for this long while producers still run is
 * hung (a stuck order or a lost wake): fail instead of hanging the suite.
 * A liveness guard only; no test asserts how long anything takes. */
#define HANG_NS (30000 * MS)

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

/* One group's ring as the daemon would hold it: both fds and a writable map. */
struct fx {
	int dfd;
	int cfd;
	struct ring r;
};

static int fx_open(struct fx *f, uint64_t cap, uint32_t max_msg)
{
	int err = ring_create(cap, max_msg, 100, "unit", &f->dfd, &f->cfd);
	if (err)
		return err;
	err = ring_map(&f->r, f->dfd, f->cfd, true);
	if (err) {
		ring_unmap(&f->r);
		close(f->dfd);
		close(f->cfd);
		return err;
	}
	return 0;
}

/* Areas and member pages on one shelf, as a session's are in the daemon:
 * at offsets other than 0 of one memfd. */
static struct shelf *own_shelf;

/* What the daemon answers a member's CTL_AREA: the owner's area memfd. */
static int owner_fetch(void *arg, uint32_t writer, uint32_t gen, int *fd, uint64_t *off)
{
	const struct ring *own = arg;
	if (writer >= own->writer_slots || own->area_file[writer].fd < 0 ||
	    own->area_gen[writer] != gen)
		return -ESTALE;
	*off = own->area_file[writer].off;
	*fd = dup(own->area_file[writer].fd);
	return *fd < 0 ? -errno : 0;
}

static int area_create(struct ring *r, uint32_t writer)
{
	struct ring_file a;
	int err = shelf_take(&own_shelf, "test:own", r->capacity, &a);
	if (!err && (err = ring_area_create(r, writer, &a)))
		ring_file_release(&a, r->capacity);
	return err;
}

/* Another process's view of the same ring (a client's mapping). */
static int fx_map(struct fx *f, struct ring *m, bool writable)
{
	int err = ring_map(m, f->dfd, f->cfd, writable);
	if (!err) {
		m->fetch_area = owner_fetch;
		m->fetch_arg = &f->r;
	}
	return err;
}

/* A sender's mapping, as a client gets it: geometry from the daemon, no
 * member pages until it asks (ring_pages_sync). */
static int fx_map_sender(struct fx *f, struct ring *m)
{
	struct ring_geometry g = {
	    .capacity = f->r.capacity, .max_msg = f->r.max_msg, .stall_ms = f->r.stall_ms};
	return ring_map_as(m, f->dfd, f->cfd, true, &g);
}

static void fx_close(struct fx *f)
{
	ring_unmap(&f->r);
	close(f->dfd);
	close(f->cfd);
}

static int reader_add(struct ring *r, struct ring_reader *rd)
{
	uint64_t cur;
	memset(rd, 0, sizeof(*rd));
	struct ring_file page;
	int err = ring_member_add_on(r, getpid(), &rd->slot, &rd->state_word, &cur, &own_shelf,
				     &page);
	if (err)
		return err;
	/* The owner's mapping of the page stands in for the member's; the
	 * page stays on the shelf for the test's lifetime. */
	rd->page = r->pages->page[rd->slot];
	rd->pos = cur;
	return 0;
}

/* A writer slot handed out by the daemon, and its holder's bookkeeping. */
static int writer_add(struct ring *r, struct ring_area *a)
{
	uint32_t slot;
	int err = ring_writer_alloc_on(r, getpid(), &slot, &own_shelf);
	if (!err)
		ring_area_init(a, slot);
	return err;
}

/* A second mapping (a forked sender's) takes the members' pages the
 * owner's mapping has, as a client would have fetched them (inherited
 * across fork: the same pages at the same addresses). */
static void adopt_pages(struct ring *dst, const struct ring *src)
{
	/* The tables as map.c lays them out: one block, pages first. */
	struct ring_pages *d = dst->pages;
	const struct ring_pages *s = src->pages;
	uint32_t cap = s->cap;
	size_t ptrs = sizeof(*d->page) + sizeof(*d->borrowed) + sizeof(*d->bell);
	uint8_t *b = calloc(cap, ptrs + sizeof(*d->word) + sizeof(*d->live));
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	free(d->page);
	d->page = (struct ring_mpage **)b;
	d->borrowed = (unsigned **)(b + cap * sizeof(*d->page));
	d->bell = (struct ring_bell **)(b + cap * (sizeof(*d->page) + sizeof(*d->borrowed)));
	d->word = (uint32_t *)(b + cap * ptrs);
	d->live = (uint16_t *)(b + cap * (ptrs + sizeof(*d->word)));
	d->cap = cap;
	/* The owner's mappings, which the fork gave us: not ours (counted
	 * on a counter nobody looks at). */
	static unsigned not_ours;
	for (uint32_t i = 0; i < cap; i++) {
		d->page[i] = s->page[i];
		d->word[i] = s->word[i];
		d->borrowed[i] = s->page[i] ? &not_ours : NULL;
	}
	ring_pages_relist(dst);
	d->seq = s->seq;
}

static uint64_t published(struct ring *r, const struct ring_reader *rd)
{
	return atomic_load(&rd->page->cursor);
}

static uint64_t tail_of(struct ring *r)
{
	return atomic_load(&r->hdr->tail);
}

static uint32_t lap_of(const struct ring *r, uint64_t pos)
{
	return (uint32_t)(pos >> r->order_shift) & ((1u << RING_E_LAP_BITS) - 1);
}

/*
 * Where position `pos` has its entry: mirrors entry() in ring.c, which
 * spreads consecutive positions over consecutive cache lines. round_trip
 * checks it against what commits really write, so a change there fails
 * loudly instead of making the forging tests vacuous.
 */
static _Atomic uint64_t *entry_at(struct ring *r, uint64_t pos)
{
	return &r->order[((pos & r->line_mask) << 3) | ((pos >> r->line_shift) & 7)];
}

static uint8_t *area_of(const struct ring *r, uint32_t writer)
{
	return r->areas + (uint64_t)writer * r->capacity;
}

/*
 * The writer area a view's record (header and payload) lies in, or -1 when
 * any byte of it lies outside every area of the mapping. By the header: an
 * empty record in an area's last unit has its payload pointer at the end.
 * Integer arithmetic: a pointer outside the mapping must be reported, not
 * compared with undefined behaviour.
 */
static int view_writer(const struct ring *r, const struct ring_view *v)
{
	uintptr_t p = (uintptr_t)v->payload, base = (uintptr_t)r->areas;
	if (p < base + sizeof(struct ring_rec))
		return -1;
	uint64_t off = p - sizeof(struct ring_rec) - base;
	uint64_t w = off / r->capacity, in = off % r->capacity;
	if (w >= r->writer_slots || in % RING_ALIGN ||
	    in + sizeof(struct ring_rec) + v->len > r->capacity)
		return -1;
	return (int)w;
}

/* A payload every byte of which depends on the key and the offset, so a
 * record read from the wrong place or half overwritten does not match. */
static void fill(void *p, uint32_t len, uint64_t key)
{
	uint8_t *b = p;
	for (uint32_t i = 0; i < len; i++)
		b[i] = (uint8_t)(key * 131u + i * 7u + (i >> 8) + (key >> 8) + 1);
}

static bool matches(const void *p, uint32_t len, uint64_t key)
{
	const uint8_t *b = p;
	for (uint32_t i = 0; i < len; i++)
		if (b[i] != (uint8_t)(key * 131u + i * 7u + (i >> 8) + (key >> 8) + 1))
			return false;
	return true;
}

/* Claim, fill with `key`'s pattern, commit: 0, the claim's error, or the
 * commit's -ECANCELED. */
static int put(struct ring *r, struct ring_area *a, uint32_t reserve, uint32_t len, uint64_t key,
	       struct ring_claim *out, uint32_t *blocker)
{
	struct ring_claim c;
	uint32_t b = 12345;
	int err = ring_claim(r, a, len, reserve, TRIES, &c, &b);
	if (blocker)
		*blocker = b;
	if (err)
		return err;
	fill(c.payload, len, key);
	err = ring_commit(r, &c, RING_REC_MSG, 0, (int32_t)getpid(), 0);
	if (out)
		*out = c;
	return err;
}

/* Read one record, check its payload against `key`, release it. */
static int take(struct ring *r, struct ring_reader *rd, uint64_t key, struct ring_view *out)
{
	struct ring_view v;
	int n = ring_read(r, rd, &v);
	if (n != 1)
		return n;
	if (!matches(v.payload, v.len, key) || view_writer(r, &v) < 0)
		return -EILSEQ;
	ring_release(r, rd, v.next_pos);
	if (out)
		*out = v;
	return 1;
}

/* A small deterministic generator: tests must replay identically. */
static uint64_t rnd_state;

static uint64_t rnd(void)
{
	uint64_t x = rnd_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rnd_state = x;
}

static void join_ok(pthread_t t)
{
	CU_ASSERT_EQUAL(pthread_join(t, NULL), 0);
}

/* Burn a few cycles, to shift one side of a race against the other. */
static void spin(unsigned n)
{
	for (volatile unsigned i = 0; i < n; i++)
		;
}

/* In a child running a test body: report its failures and end it there,
 * whether the body returned or a fatal assertion jumped out of it. */
static void child_complete(const CU_pTest test, const CU_pSuite suite,
			   const CU_pFailureRecord failure)
{
	unsigned n = 0;
	for (CU_pFailureRecord f = failure; f; f = f->pNext, n++)
		fprintf(stderr, "\n    (child) %s:%u - %s", f->strFileName, f->uiLineNumber,
			f->strCondition);
	fflush(NULL);
	_exit(n ? 1 : 0);
}

/*
 * Run a test body in a child process, so a crash (what the hostile tests
 * are about) is a failure of that test, with its signal named, and not the
 * end of the whole program.
 */
static void in_child(void (*body)(void), const char *what)
{
	fflush(NULL);
	pid_t pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		/* A shelf of its own: the parent's copy would hand out, on the
		 * same memfd, the ranges the parent hands out next. */
		own_shelf = NULL;
		CU_set_test_complete_handler(child_complete);
		body();
		return; /* CUnit ends the test, and child_complete the child */
	}
	int status;
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		fprintf(stderr, "\n  %s died of signal %d ", what, WTERMSIG(status));
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ------------------------------------------------------------------------ */
/* Sizes, create, map                                                       */

static void test_check_sizes(void)
{
	const uint64_t top = TOP_MSG(RING_MIN_BYTES);

	CU_ASSERT_EQUAL(ring_check_sizes(RING_MIN_BYTES, 1), 0);
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MIN_BYTES, top), 0);
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MIN_BYTES, top + 1), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MIN_BYTES, RING_MIN_BYTES), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MIN_BYTES, 0), -EINVAL);
	/* Too small, not a power of two, too big. */
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MIN_BYTES / 2, 1), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MIN_BYTES - 1, 1), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(0, 1), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MIN_BYTES + RING_PAGE, 1), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(3 * RING_MIN_BYTES, 1), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(RING_DEFAULT_BYTES + RING_ALIGN, 1), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(RING_DEFAULT_BYTES, RING_DEFAULT_MAX_MSG), 0);
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MAX_BYTES, RING_DEFAULT_MAX_MSG), 0);
	CU_ASSERT_EQUAL(ring_check_sizes((uint64_t)RING_MAX_BYTES * 2, 1), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(UINT64_MAX, 1), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(1ull << 63, 1), -EINVAL);
	/* max_msg is carried as u32 in the header, and a huge one must not
	 * wrap the size arithmetic into a pass. */
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MAX_BYTES, (uint64_t)UINT32_MAX + 1), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MAX_BYTES, UINT64_MAX), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MAX_BYTES, UINT32_MAX), -EINVAL);

	/* Every valid capacity: the exact max_msg boundary, and a number of
	 * writer slots that fits the entry's 8 bits and the areas budget. */
	for (uint64_t cap = RING_MIN_BYTES; cap <= RING_MAX_BYTES; cap <<= 1) {
		CU_ASSERT_EQUAL(ring_check_sizes(cap, TOP_MSG(cap)), 0);
		CU_ASSERT_EQUAL(ring_check_sizes(cap, TOP_MSG(cap) + 1), -EINVAL);
		CU_ASSERT_EQUAL(ring_check_sizes(cap + RING_PAGE, 1), -EINVAL);
		uint32_t w = ring_writer_slots(cap);
		CU_ASSERT(w >= RING_MIN_WRITERS && w <= RING_WRITER_SLOTS);
		CU_ASSERT(w == RING_MIN_WRITERS || w * cap <= RING_AREAS_BUDGET);
	}
	CU_ASSERT_EQUAL(ring_writer_slots(RING_MIN_BYTES), RING_WRITER_SLOTS);
	CU_ASSERT_EQUAL(ring_writer_slots(RING_MAX_BYTES), RING_MIN_WRITERS);
}

static void test_create_map(void)
{
	int dfd, cfd;
	struct stat st;

	CU_ASSERT_EQUAL(ring_create(RING_MIN_BYTES - 1, 100, 0, "x", &dfd, &cfd), -EINVAL);
	CU_ASSERT_EQUAL(ring_create(RING_MIN_BYTES, 0, 0, "x", &dfd, &cfd), -EINVAL);
	CU_ASSERT_EQUAL(ring_create(RING_MIN_BYTES, TOP_MSG(RING_MIN_BYTES) + 1, 0, "x", &dfd,
				    &cfd), -EINVAL);

	/* A long name must only be cut in the memfd label. */
	char name[300];
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = 0;
	CU_ASSERT_EQUAL_FATAL(ring_create(RING_MIN_BYTES, 1000, 250, name, &dfd, &cfd), 0);
	const uint64_t dbytes = RING_DATA_BYTES(RING_MIN_BYTES);
	CU_ASSERT(fstat(dfd, &st) == 0 && (uint64_t)st.st_size == dbytes);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0400);
	CU_ASSERT(fstat(cfd, &st) == 0 && st.st_size == RING_DIR_FILE_BYTES(RING_MIN_BYTES));
	CU_ASSERT(fcntl(dfd, F_GETFD) & FD_CLOEXEC);
	/* Sealed: nobody can resize the ring under its mappers. */
	CU_ASSERT(ftruncate(dfd, RING_PAGE) < 0 && errno == EPERM);
	CU_ASSERT(ftruncate(cfd, 1 << 20) < 0 && errno == EPERM);

	struct ring r;
	CU_ASSERT_EQUAL_FATAL(ring_map(&r, dfd, cfd, true), 0);
	CU_ASSERT_EQUAL(r.capacity, RING_MIN_BYTES);
	CU_ASSERT_EQUAL(r.amask, RING_MIN_BYTES - 1);
	CU_ASSERT_EQUAL(r.order_slots, MIN_SLOTS);
	CU_ASSERT_EQUAL(r.line_mask, MIN_SLOTS / 8 - 1);
	CU_ASSERT_EQUAL(1ull << r.line_shift, MIN_SLOTS / 8);
	CU_ASSERT_EQUAL(1ull << r.order_shift, MIN_SLOTS);
	CU_ASSERT_EQUAL(r.writer_slots, RING_WRITER_SLOTS);
	CU_ASSERT_EQUAL(r.max_msg, 1000);
	CU_ASSERT_EQUAL(r.stall_ms, 250);
	CU_ASSERT_EQUAL(RING_DATA_BYTES(r.capacity), dbytes);
	CU_ASSERT(r.writable);
	CU_ASSERT_EQUAL(r.hdr->magic, RING_DATA_MAGIC);
	CU_ASSERT_EQUAL(tail_of(&r), 0);
	CU_ASSERT_EQUAL(atomic_load(&r.hdr->cached_min), 0);
	CU_ASSERT_EQUAL(ring_state_error(&r), 0);
	CU_ASSERT_FALSE(ring_is_down(&r));
	CU_ASSERT_EQUAL(r.dir->magic, RING_DIR_MAGIC);
	CU_ASSERT_EQUAL(atomic_load(&r.dir->slot_hi), 0);
	CU_ASSERT_PTR_EQUAL(r.writers, (uint8_t *)r.hdr + RING_WRITERS_OFF);
	CU_ASSERT_PTR_EQUAL(r.order, (uint8_t *)r.hdr + RING_ORDER_OFF);
	/* The node's own area is there from the start (in the directory);
	 * no writer's is before one is made. */
	CU_ASSERT_EQUAL(r.area_gen[RING_DAEMON_WRITER], 1);
	CU_ASSERT_EQUAL(atomic_load(&r.writer_ids[RING_DAEMON_WRITER].gen), 1);
	for (uint32_t i = 1; i < RING_WRITER_SLOTS; i++)
		CU_ASSERT_EQUAL(r.area_gen[i], 0);
	CU_ASSERT_EQUAL((uintptr_t)r.areas % RING_PAGE, 0);
	unsigned bad = 0;
	for (uint32_t i = 0; i < RING_WRITER_SLOTS; i++) {
		/* The node's claim slot is set; the others are untouched pages
		 * until a slot is handed out (then ring_writer_alloc sets it). */
		uint64_t none = i == RING_DAEMON_WRITER ? RING_NO_CLAIM : 0;
		bad += atomic_load(&r.writer_ids[i].used) != 0 ||
		       atomic_load(&r.writers[i].claim_pos) != none ||
		       atomic_load(&r.writers[i].claim_won) != none ||
		       atomic_load(&r.writers[i].last_pos) != none;
	}
	for (uint64_t i = 0; i < r.order_slots; i++)
		bad += atomic_load(&r.order[i]) != 0;
	CU_ASSERT_EQUAL(bad, 0);
	uint32_t slowest = 0;
	CU_ASSERT_EQUAL(ring_min_cursor(&r, &slowest), 0);
	CU_ASSERT_EQUAL(slowest, UINT32_MAX);
	CU_ASSERT_EQUAL(ring_lag(&r), 0);

	/* A read-only map shares the same memory but cannot claim. */
	struct ring ro;
	struct ring_claim c;
	struct ring_area a;
	ring_area_init(&a, 1);
	CU_ASSERT_EQUAL(a.writer, 1);
	CU_ASSERT_EQUAL(a.last_pos, RING_NO_CLAIM);
	CU_ASSERT_EQUAL_FATAL(ring_map(&ro, dfd, cfd, false), 0);
	CU_ASSERT_FALSE(ro.writable);
	CU_ASSERT_EQUAL(ring_claim(&ro, &a, 10, RING_EVENT_RESERVE, TRIES, &c, NULL), -EBADF);
	ring_area_init(&a, RING_WRITER_SLOTS);
	CU_ASSERT_EQUAL(ring_claim(&r, &a, 10, RING_EVENT_RESERVE, TRIES, &c, NULL), -EBADF);
	CU_ASSERT_EQUAL(tail_of(&r), 0);
	ring_set_state(&r, RING_STATE_DOWN);
	CU_ASSERT(ring_is_down(&ro));
	CU_ASSERT_EQUAL(ring_state_error(&ro), -ENOENT);
	ring_set_state(&r, RING_STATE_BAD);
	CU_ASSERT_EQUAL(ring_state_error(&ro), -EBADMSG);
	ring_unmap(&ro);
	CU_ASSERT_PTR_NULL(ro.hdr);
	ring_unmap(&r);
	close(dfd);
	close(cfd);
}

/* A memfd holding `bytes`, its first page copied from `src` (a header). */
static int memfd_like(int src, size_t bytes)
{
	static uint8_t page[RING_PAGE];
	int fd = memfd_create("unit-wrong", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)bytes) < 0 || pread(src, page, sizeof(page), 0) != RING_PAGE ||
	    (bytes && pwrite(fd, page, bytes < RING_PAGE ? bytes : RING_PAGE, 0) < 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void test_map_validate(void)
{
	struct fx f;
	struct ring m;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring_data_hdr *h = f.r.hdr;
	struct ring_dir_hdr *ch = f.r.dir;

	/* Each header field a mapper trusts, broken one at a time. */
	struct {
		uint32_t *field;
		uint32_t bad;
	} u32s[] = {
		{&h->magic, RING_DATA_MAGIC ^ 1},
		{&h->version, RING_VERSION + 1},
		{&h->version, 1},
		{&h->hdr_bytes, RING_PAGE},
		{&h->writer_slots, RING_WRITER_SLOTS + 1},
		{&h->writer_slots, RING_WRITER_SLOTS - 1},
		{&h->writer_slots, RING_MIN_WRITERS},
		{&h->max_msg, 0},
		{&h->max_msg, (uint32_t)TOP_MSG(RING_MIN_BYTES) + 1},
		{&ch->magic, 0},
		{&ch->version, 0},
		{&ch->member_slots, RING_MEMBER_SLOTS * 2},
	};
	for (size_t i = 0; i < ARRAY_SIZE(u32s); i++) {
		uint32_t keep = *u32s[i].field;
		*u32s[i].field = u32s[i].bad;
		CU_ASSERT_EQUAL(ring_map(&m, f.dfd, f.cfd, false), -EBADMSG);
		*u32s[i].field = keep;
	}
	struct {
		uint64_t *field;
		uint64_t bad;
	} u64s[] = {
		{&h->capacity, RING_MIN_BYTES + 64},
		{&h->capacity, RING_MIN_BYTES / 2},
		{&h->capacity, 2 * RING_MIN_BYTES},
		{&h->capacity, 0},
		{&h->order_slots, 2 * MIN_SLOTS},
		{&h->order_slots, MIN_SLOTS / 2},
		{&h->order_slots, MIN_SLOTS + 1},
		{&h->order_slots, 0},
	};
	for (size_t i = 0; i < ARRAY_SIZE(u64s); i++) {
		uint64_t keep = *u64s[i].field;
		*u64s[i].field = u64s[i].bad;
		CU_ASSERT_EQUAL(ring_map(&m, f.dfd, f.cfd, false), -EBADMSG);
		*u64s[i].field = keep;
	}
	CU_ASSERT_EQUAL_FATAL(ring_map(&m, f.dfd, f.cfd, false), 0);
	ring_unmap(&m);

	/* A valid header on a file of the wrong size: mapping it would let
	 * the reader run off the end (SIGBUS) or miss part of the ring. */
	size_t dbytes = RING_DATA_BYTES(f.r.capacity);
	size_t dsz[] = {dbytes - RING_PAGE, dbytes + RING_PAGE, RING_ORDER_OFF,
			RING_ORDER_OFF + RING_PAGE};
	for (size_t i = 0; i < ARRAY_SIZE(dsz); i++) {
		int fd = memfd_like(f.dfd, dsz[i]);
		CU_ASSERT_FATAL(fd >= 0);
		CU_ASSERT_EQUAL(ring_map(&m, fd, f.cfd, false), -EBADMSG);
		close(fd);
	}
	/* A directory is a range of its fd (a shelf's): the fd may be
	 * larger, never shorter than the range, which starts on a page. */
	size_t csz[] = {RING_DIR_FILE_BYTES(RING_MIN_BYTES) - RING_PAGE, RING_DIR_BYTES, RING_PAGE};
	for (size_t i = 0; i < ARRAY_SIZE(csz); i++) {
		int fd = memfd_like(f.cfd, csz[i]);
		CU_ASSERT_FATAL(fd >= 0);
		CU_ASSERT_EQUAL(ring_map(&m, f.dfd, fd, false), -EBADMSG);
		close(fd);
	}
	uint64_t dir_bytes = RING_DIR_FILE_BYTES(RING_MIN_BYTES);
	int big = memfd_like(f.cfd, dir_bytes + RING_PAGE);
	CU_ASSERT_FATAL(big >= 0);
	CU_ASSERT_EQUAL(ring_map_at(&m, f.dfd, big, RING_PAGE / 2, false), -EBADMSG);
	CU_ASSERT_EQUAL(ring_map_at(&m, f.dfd, big, 2 * RING_PAGE, false), -EBADMSG);
	CU_ASSERT_EQUAL(ring_map_at(&m, f.dfd, big, UINT64_MAX - RING_PAGE + 1, false), -EBADMSG);
	close(big);
	/* Swapped fds are the wrong magic and the wrong size at once. */
	CU_ASSERT_EQUAL(ring_map(&m, f.cfd, f.dfd, false), -EBADMSG);
	CU_ASSERT(ring_map(&m, -1, f.cfd, false) < 0);
	fx_close(&f);
}

/*
 * A data or cursor fd too short to hold its header: ring_map must answer
 * -EBADMSG, not die of SIGBUS touching it. Run in a child so a crash is a
 * failure of this test, not the end of the program.
 */
static void test_map_short_file(void)
{
	struct fx f;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	size_t sizes[] = {0, 64, RING_PAGE - 1, RING_PAGE};
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		for (int which = 0; which < 2; which++) {
			int fd = memfd_like(which ? f.cfd : f.dfd, sizes[i]);
			CU_ASSERT_FATAL(fd >= 0);
			fflush(NULL);
			pid_t pid = fork();
			CU_ASSERT_FATAL(pid >= 0);
			if (pid == 0) {
				struct ring m;
				int err = which ? ring_map(&m, f.dfd, fd, false)
						: ring_map(&m, fd, f.cfd, false);
				_exit(err == -EBADMSG ? 0 : 1);
			}
			int status;
			CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
			if (WIFSIGNALED(status))
				fprintf(stderr,
					"\n  ring_map(%s fd of %zu bytes) died of signal %d\n",
					which ? "cursor" : "data", sizes[i], WTERMSIG(status));
			CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
			close(fd);
		}
	}
	fx_close(&f);
}

/* ------------------------------------------------------------------------ */
/* The message path                                                         */

static void test_round_trip(void)
{
	struct fx f;
	struct ring ro;
	struct ring_reader rd;
	struct ring_view v;
	struct ring_claim c;
	struct ring_area a, d;
	uint32_t blocker;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	/* The reader maps the data read-only, as a receive-only member does. */
	CU_ASSERT_EQUAL_FATAL(fx_map(&f, &ro, false), 0);
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);
	CU_ASSERT_EQUAL(rd.pos, 0);
	CU_ASSERT_EQUAL(RING_STATE_OF(rd.state_word), RING_MEMBER_ACTIVE);
	CU_ASSERT_EQUAL(atomic_load(&r->dir->slot_hi), rd.slot + 1);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &a), 0);
	CU_ASSERT_NOT_EQUAL(a.writer, RING_DAEMON_WRITER);
	CU_ASSERT_EQUAL(atomic_load(&r->writer_ids[a.writer].pid), getpid());
	CU_ASSERT_EQUAL(atomic_load(&r->writer_ids[a.writer].used), 1);
	ring_area_init(&d, RING_DAEMON_WRITER);

	CU_ASSERT_EQUAL(ring_read(&ro, &rd, &v), 0);
	CU_ASSERT_FALSE(ring_entry_open(r, 0));
	CU_ASSERT_EQUAL_FATAL(ring_claim(r, &a, 100, RING_EVENT_RESERVE, TRIES, &c, &blocker), 0);
	CU_ASSERT_EQUAL(c.pos, 0);
	CU_ASSERT_EQUAL(c.unit, 0);
	CU_ASSERT_EQUAL(c.len, 100);
	CU_ASSERT_EQUAL(c.writer, a.writer);
	CU_ASSERT_PTR_EQUAL(c.rec, area_of(r, a.writer));
	CU_ASSERT_PTR_EQUAL(c.payload, (uint8_t *)c.rec + sizeof(struct ring_rec));
	CU_ASSERT_EQUAL(tail_of(r), 1);
	CU_ASSERT_EQUAL(a.last_pos, 0);
	/* The writer slot names the claim until it is decided, so the node
	 * can cancel it if the writer dies. */
	CU_ASSERT_EQUAL(atomic_load(&r->writers[a.writer].claim_pos), 0);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[a.writer].claim_won), 0);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[a.writer].last_pos), 0);
	/* Claimed, not committed: nothing to read yet, and the reader waits
	 * at an open entry. */
	CU_ASSERT(ring_entry_open(r, 0));
	CU_ASSERT_EQUAL(ring_read(&ro, &rd, &v), 0);
	CU_ASSERT_EQUAL(rd.pos, 0);
	fill(c.payload, 100, 77);
	CU_ASSERT_EQUAL(ring_commit(r, &c, RING_REC_MSG, RING_F_ESEND, 4242, 9), 0);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[a.writer].claim_pos), RING_NO_CLAIM);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[a.writer].claim_won), RING_NO_CLAIM);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[a.writer].last_pos), 0);
	CU_ASSERT_FALSE(ring_entry_open(r, 0));
	CU_ASSERT_EQUAL(atomic_load(entry_at(r, 0)),
			RING_E_MAKE(0, 0, a.writer, RING_E_COMMITTED));
	CU_ASSERT_EQUAL(ring_lag(r), 1);

	CU_ASSERT_EQUAL_FATAL(ring_read(&ro, &rd, &v), 1);
	CU_ASSERT_EQUAL(v.kind, RING_REC_MSG);
	CU_ASSERT_EQUAL(v.flags, RING_F_ESEND);
	CU_ASSERT_EQUAL(v.len, 100);
	CU_ASSERT_EQUAL(v.seq, 1);
	/* The sender is the slot's holder as the directory names it, not the
	 * pid the writer put in its record. */
	CU_ASSERT_EQUAL(v.from_pid, getpid());
	CU_ASSERT_EQUAL(v.from_node, 9);
	CU_ASSERT_EQUAL(v.pos, 0);
	CU_ASSERT_EQUAL(v.next_pos, 1);
	CU_ASSERT_PTR_EQUAL(v.payload, area_of(&ro, a.writer) + sizeof(struct ring_rec));
	CU_ASSERT(matches(v.payload, 100, 77));
	/* Reading does not consume: the same record until it is released. */
	CU_ASSERT_EQUAL(published(r, &rd), 0);
	CU_ASSERT_EQUAL(ring_read(&ro, &rd, &v), 1);
	CU_ASSERT_EQUAL(v.pos, 0);
	ring_release(&ro, &rd, v.next_pos);
	CU_ASSERT_EQUAL(rd.pos, 1);
	CU_ASSERT_EQUAL(published(r, &rd), 1);
	CU_ASSERT_EQUAL(ring_lag(r), 0);
	CU_ASSERT_EQUAL(ring_read(&ro, &rd, &v), 0);

	/* Zero-length records and event kinds from the daemon's own slot,
	 * and every flag and pid value the header carries. */
	CU_ASSERT_EQUAL_FATAL(ring_claim(r, &d, 0, 0, TRIES, &c, NULL), 0);
	CU_ASSERT_EQUAL(c.writer, RING_DAEMON_WRITER);
	CU_ASSERT_EQUAL(ring_commit(r, &c, RING_REC_JOINED, 0xffff, -7, 0xfffffffe), 0);
	CU_ASSERT_EQUAL_FATAL(ring_read(&ro, &rd, &v), 1);
	CU_ASSERT_EQUAL(v.kind, RING_REC_JOINED);
	CU_ASSERT_EQUAL(v.flags, 0xffff);
	CU_ASSERT_EQUAL(v.len, 0);
	CU_ASSERT_EQUAL(v.from_pid, -7);
	CU_ASSERT_EQUAL(v.from_node, 0xfffffffe);
	CU_ASSERT_EQUAL(v.pos, 1);
	CU_ASSERT_EQUAL(v.seq, 2);
	CU_ASSERT_EQUAL(view_writer(&ro, &v), RING_DAEMON_WRITER);
	ring_release(&ro, &rd, v.next_pos);

	/* Two writers interleaved: seq is always position + 1, and each
	 * record comes from the area of the writer that claimed it. */
	struct ring_area *ws[2] = {&a, &d};
	unsigned bad = 0;
	for (unsigned i = 0; i < 50; i++) {
		struct ring_area *w = ws[i % 3 == 0];
		uint32_t len = (i * 37) % 1001;
		uint64_t pos = tail_of(r);
		bad += put(r, w, w == &d ? 0 : RING_EVENT_RESERVE, len, i, &c, NULL) != 0;
		bad += c.pos != pos;
		/* The test's idea of where an entry lives is the library's. */
		bad += atomic_load(entry_at(r, pos)) !=
		       RING_E_MAKE(lap_of(r, pos), c.unit, w->writer, RING_E_COMMITTED);
		bad += take(&ro, &rd, i, &v) != 1;
		bad += v.pos != pos || v.seq != pos + 1 || v.len != len ||
		       view_writer(&ro, &v) != (int)w->writer || v.from_pid != getpid();
	}
	CU_ASSERT_EQUAL(bad, 0);

	/* Over the group's limit: refused before anything is claimed. */
	uint64_t t = tail_of(r);
	CU_ASSERT_EQUAL(ring_claim(r, &a, 1001, RING_EVENT_RESERVE, TRIES, &c, NULL), -EMSGSIZE);
	CU_ASSERT_EQUAL(ring_claim(r, &a, UINT32_MAX, RING_EVENT_RESERVE, TRIES, &c, NULL),
			-EMSGSIZE);
	CU_ASSERT_EQUAL(ring_claim(r, &d, 1001, 0, TRIES, &c, NULL), -EMSGSIZE);
	CU_ASSERT_EQUAL(tail_of(r), t);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[a.writer].claim_pos), RING_NO_CLAIM);
	CU_ASSERT_EQUAL(put(r, &a, RING_EVENT_RESERVE, 1000, 5, NULL, NULL), 0);
	CU_ASSERT_EQUAL(take(&ro, &rd, 5, &v), 1);
	CU_ASSERT_EQUAL(v.len, 1000);

	/* The reader read everything: the slot can go to a new holder, with
	 * a new generation. */
	ring_writer_free(r, a.writer);
	CU_ASSERT_EQUAL(atomic_load(&r->writer_ids[a.writer].used), 0);
	/* Its last holder stays named: members may still read its records. */
	CU_ASSERT_EQUAL(atomic_load(&r->writer_ids[a.writer].pid), getpid());
	struct ring_area a2;
	CU_ASSERT_EQUAL(writer_add(r, &a2), 0);
	CU_ASSERT_EQUAL(a2.writer, a.writer);
	CU_ASSERT_EQUAL(atomic_load(&r->writer_ids[a.writer].used), 1);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[a.writer].last_pos), RING_NO_CLAIM);
	ring_unmap(&ro);
	fx_close(&f);
}

/*
 * One writer, records of every size up to max_msg, a reader a few records
 * behind: the writer's area wraps hundreds of times, at odd offsets, always
 * with unread records in it (so the walk that frees them runs, not the
 * reset that follows a complete read). Checks the placement the writer
 * chose against a model, and every record read against what was sent.
 */
static void test_area_wrap(void)
{
	enum { MAXMSG = 3000, NREC = 20000 };
	struct fx f;
	struct ring ro;
	struct ring_reader rd;
	struct ring_area a;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, MAXMSG), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(fx_map(&f, &ro, false), 0);
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &a), 0);
	uint32_t *lens = calloc(NREC, sizeof(*lens));
	uint64_t *offs = calloc(NREC, sizeof(*offs));
	CU_ASSERT_FATAL(lens && offs);

	rnd_state = 0x1234567;
	unsigned sent = 0, got = 0, wraps = 0, laps = 0, resets = 0, full = 0, bad = 0;
	uint64_t prev_end = 0;
	unsigned lag = 3;
	uint32_t len = (uint32_t)(rnd() % (MAXMSG + 1));
	while (sent < NREC && !bad) {
		struct ring_claim c;
		uint32_t blocker;
		bool all_read = published(r, &rd) == tail_of(r);
		int err = ring_claim(r, &a, len, RING_EVENT_RESERVE, TRIES, &c, &blocker);
		if (err == -EAGAIN) {
			/* The area is full of unread records: only the reader
			 * can make room, and the claim says it is the one. */
			full++;
			bad += blocker != rd.slot;
			bad += got == sent;
			struct ring_view v;
			bad += take(&ro, &rd, got, &v) != 1 || v.pos != got;
			got++;
			continue;
		}
		if (err) {
			bad++;
			break;
		}
		uint64_t off = c.unit * RING_ALIGN, rec = ring_rec_bytes(len);
		uint64_t expect = prev_end & r->amask;
		if (sent && off != expect) {
			/* Records move only to the start of the area: a wrap
			 * when the record does not fit before the end, else
			 * the restart after everything was read. */
			if (off != 0)
				bad++;
			else if (rec > r->capacity - expect)
				wraps++;
			else
				resets++, bad += !all_read;
		}
		laps += sent && off == 0;
		bad += c.pos != sent || off + rec > r->capacity;
		prev_end = off + rec;
		fill(c.payload, len, sent);
		bad += ring_commit(r, &c, RING_REC_MSG, 0, 1, 2) != 0;
		lens[sent] = len;
		offs[sent] = off;
		sent++;
		len = (uint32_t)(rnd() % (MAXMSG + 1));
		/* Stay a few records behind the writer; for some stretches
		 * many, so the area fills and claims must wait for the reader. */
		if (sent % 100 == 0)
			lag = rnd() % 4 ? 1 + (unsigned)(rnd() % 6) : 80;
		while (sent - got > lag && !bad) {
			struct ring_view v;
			int n = take(&ro, &rd, got, &v);
			bad += n != 1 || v.pos != got || v.seq != got + 1 || v.len != lens[got] ||
			       v.payload != area_of(&ro, a.writer) + offs[got] +
						    sizeof(struct ring_rec);
			got++;
		}
	}
	while (got < sent && !bad) {
		struct ring_view v;
		bad += take(&ro, &rd, got, &v) != 1 || v.pos != got || v.len != lens[got];
		got++;
	}
	struct ring_view v;
	CU_ASSERT_EQUAL(ring_read(&ro, &rd, &v), 0);
	if (bad)
		fprintf(stderr, "\n  area_wrap: wrong at record %u (read %u)\n", sent, got);
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(sent, NREC);
	CU_ASSERT_EQUAL(got, NREC);
	/* The test exercised what it is about. */
	CU_ASSERT(wraps > 100);
	CU_ASSERT(laps > 200);
	CU_ASSERT(full > 10);
	CU_ASSERT_EQUAL(resets, 0);
	free(lens);
	free(offs);
	ring_unmap(&ro);
	fx_close(&f);
}

/*
 * A member that does not read holds the room: claims fail with it named as
 * the blocker, and every record it releases makes room for exactly one more
 * (1024-byte records tile the area exactly).
 */
static void test_full(void)
{
	enum { LEN = 1024 - sizeof(struct ring_rec), PER_AREA = RING_MIN_BYTES / 1024 };
	struct fx f;
	struct ring_reader idle, busy;
	struct ring_area w;
	uint32_t blocker;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &idle), 0);
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &busy), 0);
	CU_ASSERT_NOT_EQUAL(idle.slot, busy.slot);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w), 0);

	unsigned sent = 0;
	int err;
	while ((err = put(r, &w, RING_EVENT_RESERVE, LEN, sent, NULL, &blocker)) == 0 &&
	       sent < 4 * PER_AREA)
		sent++;
	CU_ASSERT_EQUAL(err, -EAGAIN);
	CU_ASSERT_EQUAL(sent, PER_AREA);
	CU_ASSERT(blocker == idle.slot || blocker == busy.slot);
	uint64_t tail = tail_of(r);
	CU_ASSERT_EQUAL(tail, PER_AREA);

	/* The busy member catches up: now the idle one alone holds the room. */
	for (unsigned i = 0; i < sent; i++)
		CU_ASSERT_EQUAL(take(r, &busy, i, NULL), 1);
	blocker = UINT32_MAX;
	CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, LEN, sent, NULL, &blocker), -EAGAIN);
	CU_ASSERT_EQUAL(blocker, idle.slot);
	/* A failed claim leaves the tail and the writer slot as they were. */
	CU_ASSERT_EQUAL(tail_of(r), tail);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[w.writer].claim_pos), RING_NO_CLAIM);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[w.writer].claim_won), RING_NO_CLAIM);
	/* Even the smallest record does not fit. */
	CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, 0, 0, NULL, &blocker), -EAGAIN);
	CU_ASSERT_EQUAL(blocker, idle.slot);
	uint32_t slowest;
	CU_ASSERT_EQUAL(ring_min_cursor(r, &slowest), 0);
	CU_ASSERT_EQUAL(slowest, idle.slot);

	/* Each record the idle member reads makes room for exactly one more. */
	unsigned bad = 0;
	for (unsigned k = 0; k < 3 * PER_AREA; k++) {
		bad += take(r, &idle, k, NULL) != 1;
		bad += put(r, &w, RING_EVENT_RESERVE, LEN, sent, NULL, NULL) != 0;
		sent++;
		bad += take(r, &busy, sent - 1, NULL) != 1;
		bad += put(r, &w, RING_EVENT_RESERVE, LEN, sent, NULL, &blocker) != -EAGAIN;
		bad += blocker != idle.slot;
	}
	CU_ASSERT_EQUAL(bad, 0);
	/* It drains everything, still in order, and claims succeed again. */
	for (unsigned k = 3 * PER_AREA; k < sent; k++)
		CU_ASSERT_EQUAL(take(r, &idle, k, NULL), 1);
	CU_ASSERT_EQUAL(ring_lag(r), 0);
	for (unsigned k = 0; k < PER_AREA; k++)
		CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, LEN, sent + k, NULL, NULL), 0);
	fx_close(&f);
}

/*
 * Two limits on a claim: the writer's own area and the shared order. Big
 * records fill the area long before the order, and then another writer
 * still has room; tiny records fill the order first, to the entry: senders
 * up to order_slots - RING_EVENT_RESERVE, the daemon (reserve 0) the rest.
 */
static void test_area_vs_order(void)
{
	const uint32_t big = (uint32_t)TOP_MSG(RING_MIN_BYTES);
	struct fx f;
	struct ring_reader m;
	struct ring_area a, b, d;
	struct ring_view v;
	uint32_t blocker;

	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, big), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &m), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &a), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &b), 0);
	ring_area_init(&d, RING_DAEMON_WRITER);
	/* Two of the largest records fill an area (less than a page left). */
	CU_ASSERT_EQUAL(put(r, &a, RING_EVENT_RESERVE, big, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(put(r, &a, RING_EVENT_RESERVE, big, 1, NULL, NULL), 0);
	CU_ASSERT_EQUAL(put(r, &a, RING_EVENT_RESERVE, big, 9, NULL, &blocker), -EAGAIN);
	CU_ASSERT_EQUAL(blocker, m.slot);
	/* What is left takes one record to the byte; then nothing fits. */
	const uint32_t rest = (uint32_t)(r->capacity - 2 * ring_rec_bytes(big) -
					 sizeof(struct ring_rec));
	CU_ASSERT_EQUAL(put(r, &a, RING_EVENT_RESERVE, rest, 9, NULL, &blocker), 0);
	CU_ASSERT_EQUAL(put(r, &a, RING_EVENT_RESERVE, 0, 9, NULL, &blocker), -EAGAIN);
	CU_ASSERT_EQUAL(blocker, m.slot);
	CU_ASSERT_EQUAL(tail_of(r), 3);
	/* The order is nowhere near full: other writers still send. */
	CU_ASSERT_EQUAL(put(r, &b, RING_EVENT_RESERVE, big, 3, NULL, NULL), 0);
	CU_ASSERT_EQUAL(put(r, &d, 0, 100, 4, NULL, NULL), 0);
	/* Reading a's first record frees the start of its area, where the
	 * next big one goes. */
	CU_ASSERT_EQUAL(take(r, &m, 0, &v), 1);
	struct ring_claim c;
	CU_ASSERT_EQUAL(put(r, &a, RING_EVENT_RESERVE, big, 5, &c, NULL), 0);
	CU_ASSERT_EQUAL(c.unit, 0);
	CU_ASSERT_EQUAL(take(r, &m, 1, &v), 1);
	CU_ASSERT_EQUAL(take(r, &m, 9, &v), 1);
	CU_ASSERT_EQUAL(v.len, rest);
	CU_ASSERT_EQUAL(take(r, &m, 3, &v), 1);
	CU_ASSERT_EQUAL(view_writer(r, &v), (int)b.writer);
	CU_ASSERT_EQUAL(take(r, &m, 4, &v), 1);
	CU_ASSERT_EQUAL(take(r, &m, 5, &v), 1);
	CU_ASSERT_EQUAL(v.len, big);
	fx_close(&f);

	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &m), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &a), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &b), 0);
	ring_area_init(&d, RING_DAEMON_WRITER);
	const unsigned user_max = (unsigned)(r->order_slots - RING_EVENT_RESERVE);
	unsigned sent = 0;
	int err;
	while ((err = put(r, &a, RING_EVENT_RESERVE, 0, sent, NULL, &blocker)) == 0 &&
	       sent <= r->order_slots)
		sent++;
	CU_ASSERT_EQUAL(err, -EAGAIN);
	CU_ASSERT_EQUAL(sent, user_max);
	CU_ASSERT_EQUAL(blocker, m.slot);
	CU_ASSERT_EQUAL(tail_of(r), user_max);
	/* The order, not a's area, is full: b is refused as well. */
	CU_ASSERT(user_max * sizeof(struct ring_rec) < r->capacity);
	CU_ASSERT_EQUAL(put(r, &b, RING_EVENT_RESERVE, 0, 0, NULL, &blocker), -EAGAIN);
	CU_ASSERT_EQUAL(blocker, m.slot);
	/* The daemon gets exactly the reserve more, then nobody does. */
	unsigned events = 0;
	while (put(r, &d, 0, 8, user_max + events, NULL, &blocker) == 0 &&
	       events <= RING_EVENT_RESERVE)
		events++;
	CU_ASSERT_EQUAL(events, RING_EVENT_RESERVE);
	CU_ASSERT_EQUAL(blocker, m.slot);
	CU_ASSERT_EQUAL(tail_of(r), r->order_slots);
	CU_ASSERT_EQUAL(ring_lag(r), r->order_slots);
	/* One record read: room for one event, none for a sender, until the
	 * sender's limit (order_slots - reserve from the slowest) is back. */
	CU_ASSERT_EQUAL(take(r, &m, 0, &v), 1);
	CU_ASSERT_EQUAL(put(r, &b, RING_EVENT_RESERVE, 0, 0, NULL, NULL), -EAGAIN);
	CU_ASSERT_EQUAL(put(r, &d, 0, 8, 1000000, NULL, NULL), 0);
	CU_ASSERT_EQUAL(put(r, &d, 0, 8, 1000001, NULL, NULL), -EAGAIN);
	for (unsigned i = 1; i < RING_EVENT_RESERVE + 1; i++)
		CU_ASSERT_EQUAL_FATAL(take(r, &m, i, &v), 1);
	CU_ASSERT_EQUAL(put(r, &b, RING_EVENT_RESERVE, 0, 0, NULL, NULL), -EAGAIN);
	CU_ASSERT_EQUAL_FATAL(take(r, &m, RING_EVENT_RESERVE + 1, &v), 1);
	CU_ASSERT_EQUAL(put(r, &b, RING_EVENT_RESERVE, 0, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(put(r, &b, RING_EVENT_RESERVE, 0, 0, NULL, NULL), -EAGAIN);
	/* Everything in order: a's records, then the events, then the rest. */
	unsigned bad = 0;
	for (unsigned i = RING_EVENT_RESERVE + 2; i < user_max; i++)
		bad += take(r, &m, i, &v) != 1 || v.pos != i || view_writer(r, &v) != (int)a.writer;
	for (unsigned i = 0; i < RING_EVENT_RESERVE; i++)
		bad += take(r, &m, user_max + i, &v) != 1 || v.len != 8 ||
		       view_writer(r, &v) != RING_DAEMON_WRITER;
	bad += take(r, &m, 1000000, &v) != 1 || v.pos != r->order_slots;
	bad += take(r, &m, 0, &v) != 1 || view_writer(r, &v) != (int)b.writer;
	bad += ring_read(r, &m, &v) != 0;
	CU_ASSERT_EQUAL(bad, 0);
	fx_close(&f);
}

/* With no member nothing holds room: writers go round the order and their
 * areas for ever. */
static void test_no_member(void)
{
	enum { MAXMSG = 2000, LAPS = 20 };
	struct fx f;
	struct ring_area w[3];
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, MAXMSG), 0);
	struct ring *r = &f.r;
	for (unsigned i = 0; i < ARRAY_SIZE(w); i++)
		CU_ASSERT_EQUAL_FATAL(writer_add(r, &w[i]), 0);
	rnd_state = 0xabcdef;
	const uint64_t n = LAPS * r->order_slots;
	unsigned bad = 0;
	for (uint64_t i = 0; i < n && !bad; i++) {
		uint32_t len = (uint32_t)(rnd() % (MAXMSG + 1)), blocker;
		bad += put(r, &w[i % 3], RING_EVENT_RESERVE, len, i, NULL, &blocker) != 0;
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(tail_of(r), n);
	uint32_t slowest = 0;
	CU_ASSERT_EQUAL(ring_min_cursor(r, &slowest), n);
	CU_ASSERT_EQUAL(slowest, UINT32_MAX);
	CU_ASSERT_EQUAL(ring_lag(r), 0);

	/* A member joining now starts at the tail and reads what follows. */
	struct ring_reader rd;
	struct ring_view v;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);
	CU_ASSERT_EQUAL(rd.pos, n);
	CU_ASSERT_EQUAL(ring_read(r, &rd, &v), 0);
	CU_ASSERT_EQUAL(put(r, &w[1], RING_EVENT_RESERVE, MAXMSG, 42, NULL, NULL), 0);
	CU_ASSERT_EQUAL(take(r, &rd, 42, &v), 1);
	CU_ASSERT_EQUAL(v.pos, n);
	CU_ASSERT_EQUAL(v.len, MAXMSG);
	fx_close(&f);
}

static void test_abort(void)
{
	struct fx f;
	struct ring ro;
	struct ring_reader rd;
	struct ring_claim a, b;
	struct ring_view v;
	struct ring_area w1, w2;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 4000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(fx_map(&f, &ro, false), 0);
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w1), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w2), 0);

	/* An open claim holds back everything claimed after it. */
	CU_ASSERT_EQUAL_FATAL(ring_claim(r, &w1, 500, RING_EVENT_RESERVE, TRIES, &a, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(put(r, &w2, RING_EVENT_RESERVE, 40, 2, &b, NULL), 0);
	CU_ASSERT_EQUAL(ring_read(&ro, &rd, &v), 0);
	CU_ASSERT_EQUAL(rd.pos, 0);
	CU_ASSERT_EQUAL(ring_abort(r, &a), 0);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[w1.writer].claim_pos), RING_NO_CLAIM);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[w1.writer].claim_won), RING_NO_CLAIM);
	CU_ASSERT_EQUAL(RING_E_STATE(atomic_load(entry_at(r, 0))), RING_E_CANCELLED);
	/* Decided once: a second abort, or a commit, changes nothing. */
	CU_ASSERT_EQUAL(ring_abort(r, &a), -ECANCELED);
	CU_ASSERT_EQUAL(ring_commit(r, &a, RING_REC_MSG, 0, 1, 0), -ECANCELED);
	CU_ASSERT_EQUAL(RING_E_STATE(atomic_load(entry_at(r, 0))), RING_E_CANCELLED);
	CU_ASSERT_EQUAL_FATAL(take(&ro, &rd, 2, &v), 1);
	CU_ASSERT_EQUAL(v.pos, 1);
	CU_ASSERT_EQUAL(v.len, 40);
	CU_ASSERT_EQUAL(ring_read(&ro, &rd, &v), 0);

	/*
	 * The reader skips an aborted position and then waits at an open
	 * claim: its published cursor must be that open position, not the
	 * aborted one, so a producer sees it waiting on a writer (which the
	 * node can cancel) rather than lagging (which gets it evicted).
	 */
	CU_ASSERT_EQUAL_FATAL(ring_claim(r, &w1, 10, RING_EVENT_RESERVE, TRIES, &a, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(ring_claim(r, &w2, 10, RING_EVENT_RESERVE, TRIES, &b, NULL), 0);
	CU_ASSERT_EQUAL(a.pos, 2);
	CU_ASSERT_EQUAL(b.pos, 3);
	CU_ASSERT_EQUAL(ring_abort(r, &a), 0);
	CU_ASSERT_EQUAL(published(r, &rd), 2);
	CU_ASSERT_EQUAL(ring_read(&ro, &rd, &v), 0);
	CU_ASSERT_EQUAL(rd.pos, 3);
	CU_ASSERT_EQUAL(published(r, &rd), 3);
	CU_ASSERT(ring_entry_open(r, 3));
	uint32_t slowest;
	CU_ASSERT_EQUAL(ring_min_cursor(r, &slowest), 3);
	CU_ASSERT_EQUAL(slowest, rd.slot);
	fill(b.payload, 10, 3);
	CU_ASSERT_EQUAL(ring_commit(r, &b, RING_REC_MSG, 0, 1, 0), 0);
	CU_ASSERT_EQUAL_FATAL(take(&ro, &rd, 3, &v), 1);
	CU_ASSERT_EQUAL(v.pos, 3);

	/* Aborts of every size, also right where the area wraps; readers
	 * skip them all and see only the committed records in between. */
	unsigned bad = 0;
	for (unsigned i = 0; i < 300; i++) {
		struct ring_claim c;
		uint32_t len = (i * 37) % 4001;
		bad += ring_claim(r, &w1, len, RING_EVENT_RESERVE, TRIES, &c, NULL) != 0;
		bad += ring_abort(r, &c) != 0;
		if (i % 2)
			bad += put(r, &w1, RING_EVENT_RESERVE, len / 2, 100 + i, &c, NULL) != 0;
		else
			bad += put(r, &w2, RING_EVENT_RESERVE, i * 11 % 300, 100 + i, &c,
				   NULL) != 0;
		bad += take(&ro, &rd, 100 + i, &v) != 1;
		bad += v.pos != c.pos || v.pos != rd.pos - 1;
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(ring_read(&ro, &rd, &v), 0);
	/* Trailing aborts with nothing after them: the reader is published
	 * past them, at the tail. */
	for (unsigned i = 0; i < 5; i++) {
		struct ring_claim c;
		CU_ASSERT_EQUAL_FATAL(ring_claim(r, &w2, 7, RING_EVENT_RESERVE, TRIES, &c, NULL),
				      0);
		CU_ASSERT_EQUAL(ring_abort(r, &c), 0);
	}
	CU_ASSERT_EQUAL(ring_read(&ro, &rd, &v), 0);
	CU_ASSERT_EQUAL(rd.pos, tail_of(r));
	CU_ASSERT_EQUAL(published(r, &rd), tail_of(r));
	CU_ASSERT_EQUAL(ring_lag(r), 0);
	ring_unmap(&ro);
	fx_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Deciding a position: the writer, the node, and late writers              */

/* Who decides first wins, each way round, and the loser learns it. */
static void test_cancel_at(void)
{
	struct fx f;
	struct ring_reader rd;
	struct ring_claim c;
	struct ring_view v;
	struct ring_area w;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w), 0);

	/* Not claimed yet: nothing to cancel, and the tail stays. */
	CU_ASSERT_EQUAL(ring_cancel_at(r, 0), -EAGAIN);
	CU_ASSERT_EQUAL(ring_cancel_at(r, 1000), -EAGAIN);
	CU_ASSERT_EQUAL(tail_of(r), 0);

	/* Cancelled first: the commit fails and readers skip the position. */
	CU_ASSERT_EQUAL_FATAL(ring_claim(r, &w, 10, RING_EVENT_RESERVE, TRIES, &c, NULL), 0);
	CU_ASSERT_EQUAL(ring_cancel_at(r, c.pos), 0);
	CU_ASSERT_FALSE(ring_entry_open(r, c.pos));
	CU_ASSERT_EQUAL(ring_cancel_at(r, c.pos), -ESTALE);
	fill(c.payload, 10, 1);
	CU_ASSERT_EQUAL(ring_commit(r, &c, RING_REC_MSG, 0, 1, 0), -ECANCELED);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[w.writer].claim_pos), RING_NO_CLAIM);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[w.writer].claim_won), RING_NO_CLAIM);
	CU_ASSERT_EQUAL(atomic_load(entry_at(r, c.pos)),
			RING_E_MAKE(lap_of(r, c.pos), 0, 0, RING_E_CANCELLED));
	CU_ASSERT_EQUAL(ring_read(r, &rd, &v), 0);
	CU_ASSERT_EQUAL(rd.pos, 1);

	/* Committed first: the cancel fails and the record is read. */
	CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, 10, 2, &c, NULL), 0);
	CU_ASSERT_EQUAL(ring_cancel_at(r, c.pos), -ESTALE);
	CU_ASSERT_EQUAL(take(r, &rd, 2, &v), 1);
	CU_ASSERT_EQUAL(v.pos, 1);

	/* Aborted, then cancelled: already decided. */
	CU_ASSERT_EQUAL_FATAL(ring_claim(r, &w, 10, RING_EVENT_RESERVE, TRIES, &c, NULL), 0);
	CU_ASSERT_EQUAL(ring_abort(r, &c), 0);
	CU_ASSERT_EQUAL(ring_cancel_at(r, c.pos), -ESTALE);
	/* A position of a lap the order has left behind. */
	for (unsigned i = 0; i < r->order_slots; i++)
		CU_ASSERT_EQUAL_FATAL(put(r, &w, RING_EVENT_RESERVE, 0, 0, NULL, NULL) == 0 &&
				      take(r, &rd, 0, NULL) == 1, 1);
	CU_ASSERT_EQUAL(ring_cancel_at(r, 1), -ESTALE);
	CU_ASSERT_EQUAL(ring_cancel_at(r, 2), -ESTALE);
	CU_ASSERT_EQUAL(ring_read(r, &rd, &v), 0);
	fx_close(&f);
}

/*
 * A writer commits while the node cancels the same position. Exactly one
 * of them decides it, every time, and a reader sees the record if and only
 * if the commit won. Most iterations are a free race, small random delays
 * on both sides moving it about; some order the two on purpose (cancel
 * first, commit first), so both outcomes are checked however the threads
 * happen to be scheduled.
 */
enum race_mode { RACE_FREE, RACE_CANCEL_FIRST, RACE_COMMIT_FIRST };

struct race {
	struct ring *r;
	_Atomic uint64_t go;        /* iteration whose position is in `pos` */
	_Atomic uint64_t pos;
	_Atomic uint64_t committed; /* iteration whose commit has returned */
	_Atomic uint64_t done;      /* iteration whose cancel has returned */
	_Atomic int result;
	_Atomic unsigned delay;
	_Atomic int mode;
	_Atomic int quit;
};

/* Until *word reaches `want`; yields once it has spun a while, so two
 * threads on one CPU still make progress. */
static bool wait_for(_Atomic uint64_t *word, uint64_t want, _Atomic int *quit)
{
	unsigned idle = 0;
	while (atomic_load(word) != want) {
		if (quit && atomic_load(quit))
			return false;
		if (++idle > 2000)
			sched_yield();
	}
	return true;
}

static void *race_canceller(void *p)
{
	struct race *rc = p;
	for (uint64_t it = 1;; it++) {
		if (!wait_for(&rc->go, it, &rc->quit))
			return NULL;
		uint64_t pos = atomic_load(&rc->pos);
		if (atomic_load(&rc->mode) == RACE_COMMIT_FIRST)
			wait_for(&rc->committed, it, NULL);
		else
			spin(atomic_load(&rc->delay));
		atomic_store(&rc->result, ring_cancel_at(rc->r, pos));
		atomic_store(&rc->done, it);
	}
}

static void test_cancel_race(void)
{
	enum { ITER = 20000 };
	struct fx f;
	struct ring ro;
	struct ring_reader rd;
	struct ring_area w;
	pthread_t t;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(fx_map(&f, &ro, false), 0);
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w), 0);
	/* The node's side has a mapping of its own, as the daemon would. */
	struct ring node;
	CU_ASSERT_EQUAL_FATAL(fx_map(&f, &node, true), 0);
	static struct race rc;
	memset(&rc, 0, sizeof(rc));
	rc.r = &node;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, race_canceller, &rc), 0);

	rnd_state = 0x5eed5eed;
	unsigned commits = 0, cancels = 0, free_commits = 0, free_cancels = 0;
	unsigned both = 0, neither = 0, wrong_ret = 0, wrong_read = 0, wrong_order = 0;
	uint64_t it;
	for (it = 1; it <= ITER; it++) {
		struct ring_claim c;
		uint32_t len = 16 + (uint32_t)(rnd() % 200);
		if (ring_claim(r, &w, len, RING_EVENT_RESERVE, TRIES, &c, NULL)) {
			wrong_ret++;
			break;
		}
		fill(c.payload, len, it);
		unsigned m = (unsigned)(rnd() % 8);
		int mode = m == 0 ? RACE_CANCEL_FIRST : m == 1 ? RACE_COMMIT_FIRST : RACE_FREE;
		/* The canceller must first see `go`: give the writer the
		 * longer delays, so either side wins the free race often. */
		unsigned wd = (unsigned)(rnd() % 1500);
		atomic_store(&rc.delay, (unsigned)(rnd() % 300));
		atomic_store(&rc.mode, mode);
		atomic_store(&rc.pos, c.pos);
		atomic_store(&rc.go, it);
		if (mode == RACE_CANCEL_FIRST)
			wait_for(&rc.done, it, NULL);
		else if (mode == RACE_FREE)
			spin(wd);
		int cm = ring_commit(r, &c, RING_REC_MSG, 0, 1, 0);
		atomic_store(&rc.committed, it);
		wait_for(&rc.done, it, NULL);
		int cn = atomic_load(&rc.result);

		commits += cm == 0;
		cancels += cn == 0;
		free_commits += mode == RACE_FREE && cm == 0;
		free_cancels += mode == RACE_FREE && cn == 0;
		both += cm == 0 && cn == 0;
		neither += cm != 0 && cn != 0;
		wrong_order += (mode == RACE_CANCEL_FIRST && cn != 0) ||
			       (mode == RACE_COMMIT_FIRST && cm != 0);
		wrong_ret += (cm != 0 && cm != -ECANCELED) || (cn != 0 && cn != -ESTALE);
		uint64_t e = atomic_load(entry_at(r, c.pos));
		wrong_ret += RING_E_STATE(e) != (cm == 0 ? RING_E_COMMITTED : RING_E_CANCELLED) ||
			     RING_E_LAP(e) != lap_of(r, c.pos);

		struct ring_view v;
		int n = ring_read(&ro, &rd, &v);
		if (cm == 0) {
			wrong_read += n != 1 || v.pos != c.pos || v.len != len ||
				      !matches(v.payload, len, it);
			if (n == 1)
				ring_release(&ro, &rd, v.next_pos);
		} else {
			wrong_read += n != 0 || rd.pos != c.pos + 1 ||
				      published(r, &rd) != c.pos + 1;
		}
		if (both || neither || wrong_ret || wrong_read || wrong_order)
			break;
	}
	atomic_store(&rc.quit, 1);
	join_ok(t);
	fprintf(stderr, "\n  cancel_race: free races: %u commits won, %u cancels won ",
		free_commits, free_cancels);
	if (it <= ITER)
		fprintf(stderr, "\n  cancel_race: wrong at iteration %" PRIu64 " ", it);
	CU_ASSERT_EQUAL(both, 0);
	CU_ASSERT_EQUAL(neither, 0);
	CU_ASSERT_EQUAL(wrong_ret, 0);
	CU_ASSERT_EQUAL(wrong_read, 0);
	CU_ASSERT_EQUAL(wrong_order, 0);
	CU_ASSERT_EQUAL(commits + cancels, ITER);
	/* The ordered iterations alone make both outcomes happen. */
	CU_ASSERT(commits > 0 && cancels > 0);
	ring_unmap(&node);
	ring_unmap(&ro);
	fx_close(&f);
}

/*
 * A writer stopped inside its claim holds only its own area. The node
 * cancels its position; the order then goes on through twenty laps; when
 * the writer wakes and commits it learns -ECANCELED, and no reader ever
 * saw a byte of its record, whatever it wrote before or after the cancel.
 */
static void test_stuck_writer(void)
{
	enum { MARK = 0xa5, MARK_PID = 0x5a5a5a5a, ALEN = 200, LAPS = 20 };
	struct fx f;
	struct ring ro;
	struct ring_reader rd;
	struct ring_area a, b;
	struct ring_claim ca;
	struct ring_view v;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(fx_map(&f, &ro, false), 0);
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &a), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &b), 0);

	CU_ASSERT_EQUAL_FATAL(ring_claim(r, &a, ALEN, RING_EVENT_RESERVE, TRIES, &ca, NULL), 0);
	memset(ca.payload, MARK, ALEN);
	/* Committed records behind the stuck claim wait for it... */
	for (unsigned i = 0; i < 10; i++)
		CU_ASSERT_EQUAL(put(r, &b, RING_EVENT_RESERVE, 100, i, NULL, NULL), 0);
	CU_ASSERT_EQUAL(ring_read(&ro, &rd, &v), 0);
	/* ...and the reader is seen waiting exactly at it. */
	CU_ASSERT_EQUAL(published(r, &rd), ca.pos);
	CU_ASSERT(ring_entry_open(r, ca.pos));

	CU_ASSERT_EQUAL(ring_cancel_at(r, ca.pos), 0);
	/* The writer goes on writing its record, header and all, as if its
	 * commit were under way. */
	memset(ca.payload, MARK, ALEN);
	*ca.rec = (struct ring_rec){.order_pos = ca.pos, .len = ALEN, .kind = RING_REC_MSG,
				    .from_pid = MARK_PID};
	unsigned bad = 0;
	for (unsigned i = 0; i < 10; i++)
		bad += take(&ro, &rd, i, &v) != 1 || v.pos != i + 1 ||
		       view_writer(&ro, &v) != (int)b.writer;
	CU_ASSERT_EQUAL(bad, 0);

	/* The order goes round twenty times past it. */
	rnd_state = 0x77;
	const uint64_t n = LAPS * r->order_slots;
	uint64_t next = tail_of(r);
	for (uint64_t i = 0; i < n && !bad; i++) {
		uint32_t len = (uint32_t)(rnd() % 201);
		bad += put(r, &b, RING_EVENT_RESERVE, len, i, NULL, NULL) != 0;
		bad += take(&ro, &rd, i, &v) != 1;
		bad += v.pos != next++ || v.len != len || v.from_pid == MARK_PID ||
		       view_writer(&ro, &v) != (int)b.writer;
	}
	CU_ASSERT_EQUAL(bad, 0);

	/* The writer wakes: its commit changes nothing anywhere. */
	uint64_t before = atomic_load(entry_at(r, ca.pos));
	memset(ca.payload, MARK, ALEN);
	CU_ASSERT_EQUAL(ring_commit(r, &ca, RING_REC_MSG, 0, MARK_PID, 0), -ECANCELED);
	CU_ASSERT_EQUAL(atomic_load(entry_at(r, ca.pos)), before);
	CU_ASSERT_EQUAL(ring_read(&ro, &rd, &v), 0);
	for (uint64_t i = 0; i < r->order_slots && !bad; i++) {
		bad += put(r, &b, RING_EVENT_RESERVE, 50, i, NULL, NULL) != 0;
		bad += take(&ro, &rd, i, &v) != 1 || v.from_pid == MARK_PID ||
		       view_writer(&ro, &v) != (int)b.writer;
	}
	CU_ASSERT_EQUAL(bad, 0);
	/* And it can go on sending: its area keeps working. */
	CU_ASSERT_EQUAL(put(r, &a, RING_EVENT_RESERVE, ALEN, 999, NULL, NULL), 0);
	CU_ASSERT_EQUAL(take(&ro, &rd, 999, &v), 1);
	CU_ASSERT_EQUAL(view_writer(&ro, &v), (int)a.writer);
	ring_unmap(&ro);
	fx_close(&f);
}

/*
 * With no member, nothing holds an open claim's position: the order laps
 * it. The late writer's commit must fail and leave alone the entry the new
 * lap put there.
 */
static void test_lapped_writer(void)
{
	enum { LAPS = 4 };
	struct fx f;
	struct ring_area a, b, c;
	struct ring_claim ca;
	struct ring_reader rd;
	struct ring_view v;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &a), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &b), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &c), 0);
	for (unsigned i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(put(r, &b, RING_EVENT_RESERVE, 10, i, NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(ring_claim(r, &a, 100, RING_EVENT_RESERVE, TRIES, &ca, NULL), 0);
	const uint64_t p = ca.pos;
	CU_ASSERT_EQUAL(p, 5);
	memset(ca.payload, 0xa5, 100);

	unsigned bad = 0;
	for (uint64_t i = 0; i < LAPS * r->order_slots; i++)
		bad += put(r, i % 2 ? &b : &c, RING_EVENT_RESERVE, (uint32_t)(i % 101), i, NULL,
			   NULL) != 0;
	CU_ASSERT_EQUAL(bad, 0);
	const uint64_t newest = p + LAPS * r->order_slots;
	CU_ASSERT(newest < tail_of(r));
	uint64_t e = atomic_load(entry_at(r, p));
	CU_ASSERT_EQUAL(RING_E_STATE(e), RING_E_COMMITTED);
	CU_ASSERT_EQUAL(RING_E_LAP(e), lap_of(r, newest));
	CU_ASSERT_NOT_EQUAL(RING_E_WRITER(e), a.writer);

	CU_ASSERT_EQUAL(ring_commit(r, &ca, RING_REC_MSG, 0, 1, 0), -ECANCELED);
	CU_ASSERT_EQUAL(atomic_load(entry_at(r, p)), e);
	CU_ASSERT_EQUAL(ring_cancel_at(r, p), -ESTALE);
	CU_ASSERT_EQUAL(atomic_load(entry_at(r, p)), e);

	/* A dead writer lapped the same way: sealing it touches nothing. */
	CU_ASSERT_EQUAL_FATAL(ring_claim(r, &a, 100, RING_EVENT_RESERVE, TRIES, &ca, NULL), 0);
	for (uint64_t i = 0; i < 2 * r->order_slots; i++)
		bad += put(r, &b, RING_EVENT_RESERVE, 0, i, NULL, NULL) != 0;
	e = atomic_load(entry_at(r, ca.pos));
	CU_ASSERT_EQUAL(ring_seal_writer(r, a.writer), 0);
	CU_ASSERT_EQUAL(atomic_load(entry_at(r, ca.pos)), e);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[a.writer].claim_won), RING_NO_CLAIM);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[a.writer].claim_pos), RING_NO_CLAIM);

	/*
	 * Lapped exactly once, with the new lap's position claimed and not
	 * yet decided: whatever the late commit returns, a member waiting
	 * there reads the new lap's record, never the late one. (A fresh
	 * slot: the sealed one's area holds a claim never written.)
	 */
	struct ring_area d;
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &d), 0);
	CU_ASSERT_EQUAL_FATAL(ring_claim(r, &d, 100, RING_EVENT_RESERVE, TRIES, &ca, NULL), 0);
	memset(ca.payload, 0xa5, 100);
	while (tail_of(r) < ca.pos + r->order_slots && !bad)
		bad += put(r, &c, RING_EVENT_RESERVE, 0, 0, NULL, NULL) != 0;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);
	CU_ASSERT_EQUAL(rd.pos, ca.pos + r->order_slots);
	struct ring_claim cb;
	CU_ASSERT_EQUAL_FATAL(ring_claim(r, &b, 30, RING_EVENT_RESERVE, TRIES, &cb, NULL), 0);
	CU_ASSERT_EQUAL(cb.pos, ca.pos + r->order_slots);
	int late = ring_commit(r, &ca, RING_REC_MSG, 0, 0x5a5a, 0);
	CU_ASSERT(late == 0 || late == -ECANCELED);
	if (late == 0)
		fprintf(stderr, "\n  lapped_writer: a commit lapped once (new lap open) "
			"returned 0 for a position no member can read ");
	CU_ASSERT_EQUAL(ring_read(r, &rd, &v), 0);
	CU_ASSERT_EQUAL(rd.pos, cb.pos);
	fill(cb.payload, 30, 31);
	CU_ASSERT_EQUAL(ring_commit(r, &cb, RING_REC_MSG, 0, 1, 0), 0);
	CU_ASSERT_EQUAL(take(r, &rd, 31, &v), 1);
	CU_ASSERT_EQUAL(v.pos, cb.pos);
	CU_ASSERT_EQUAL(view_writer(r, &v), (int)b.writer);
	CU_ASSERT_NOT_EQUAL(v.from_pid, 0x5a5a);
	CU_ASSERT_EQUAL(bad, 0);
	fx_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Many producers: one total order                                          */

enum { NPROD = 4, NMSG = 20000, NREAD = 2, MT_MAXMSG = 1000 };

struct mt_msg {
	uint32_t tid;
	uint32_t n;
};

/* Shared by producer threads or processes and the reader threads. */
struct mt {
	int dfd, cfd;
	struct ring r;  /* the daemon's, and the producer threads' */
	struct ring ro; /* the readers': read-only, as a receive-only member */
	uint32_t writer[NPROD];
	pid_t pid[NPROD];
	struct ring_reader rd[NREAD];
	uint32_t *seen[NREAD];
	unsigned count[NREAD];
	_Atomic int stop;
	_Atomic int errors;
	_Atomic int stalls;
	_Atomic int bad_payload;
	_Atomic int bad_pos;
	_Atomic int bad_read;
};

static uint32_t mt_len(uint32_t tid, uint32_t n)
{
	return (uint32_t)sizeof(struct mt_msg) + (n * 7u + tid * 13u) % 200u;
}

static uint64_t mt_key(uint32_t tid, uint32_t n)
{
	return ((uint64_t)tid << 32) | n;
}

/* Wait for room as a client does: parked on the member that holds it, or
 * briefly yielding when the tail moved too often for a claim. */
static void wait_room(struct ring *r, uint32_t blocker)
{
	if (blocker >= RING_MEMBER_SLOTS) {
		sched_yield();
		return;
	}
	/* The member may move between the failed claim and this load; the
	 * short timeout covers that window. */
	uint64_t cur = ring_member_cursor(r, blocker);
	ring_wait_room(r, blocker, cur, 10 * MS);
}

/* Produce `count` messages as `tid`, each with a payload of its own; 0 or
 * the first error. A thread passes `stop` to give up when the readers did;
 * a process is killed instead. */
static int produce(struct ring *r, uint32_t writer, uint32_t tid, uint32_t count, bool wake,
		   _Atomic int *stop)
{
	struct ring_area a;
	ring_area_init(&a, writer);
	for (uint32_t n = 0; n < count; n++) {
		uint32_t len = mt_len(tid, n), blocker;
		struct ring_claim c;
		int err;
		while ((err = ring_claim(r, &a, len, RING_EVENT_RESERVE, TRIES, &c, &blocker)) ==
		       -EAGAIN) {
			if (stop && atomic_load(stop))
				return -ECANCELED;
			wait_room(r, blocker);
		}
		if (err)
			return err;
		struct mt_msg m = {.tid = tid, .n = n};
		memcpy(c.payload, &m, sizeof(m));
		fill((uint8_t *)c.payload + sizeof(m), len - (uint32_t)sizeof(m), mt_key(tid, n));
		/* Nobody cancels here: a failed commit is a lost message. */
		if (ring_commit(r, &c, RING_REC_MSG, 0, (int32_t)getpid(), tid))
			return -ECANCELED;
		if (wake)
			ring_wake(r);
	}
	return 0;
}

struct mt_arg {
	struct mt *mt;
	unsigned idx;
};

static void *mt_producer_thread(void *p)
{
	struct mt_arg *a = p;
	if (produce(&a->mt->r, a->mt->writer[a->idx], a->idx, NMSG, true, &a->mt->stop))
		atomic_fetch_add(&a->mt->errors, 1);
	return NULL;
}

/* Check one record; its (tid, n) as tid * NMSG + n, or UINT32_MAX. */
static uint32_t msg_check(const struct ring *r, const struct ring_view *v, unsigned nprod,
			  uint32_t nmsg, const pid_t *pids)
{
	struct mt_msg m;
	if (v->kind != RING_REC_MSG || v->len < sizeof(m) || view_writer(r, v) < 0)
		return UINT32_MAX;
	memcpy(&m, v->payload, sizeof(m));
	if (m.tid >= nprod || m.n >= nmsg || v->len != mt_len(m.tid, m.n) ||
	    v->from_node != m.tid || (pids && pids[m.tid] && v->from_pid != pids[m.tid]) ||
	    !matches((const uint8_t *)v->payload + sizeof(m), v->len - (uint32_t)sizeof(m),
		     mt_key(m.tid, m.n)))
		return UINT32_MAX;
	return m.tid * nmsg + m.n;
}

/* Stop everybody: the test has failed and must not hang or crawl. */
static void mt_abort(struct mt *mt)
{
	atomic_store(&mt->stop, 1);
	ring_wake(&mt->r);
	for (unsigned i = 0; i < NPROD; i++)
		if (mt->pid[i] > 0)
			kill(mt->pid[i], SIGKILL);
}

static void *mt_reader_thread(void *p)
{
	struct mt_arg *a = p;
	struct mt *mt = a->mt;
	struct ring *r = &mt->ro;
	struct ring_reader *rd = &mt->rd[a->idx];
	struct ring_sleep *s = calloc(1, sizeof(*s));
	if (!s) {
		atomic_fetch_add(&mt->errors, 1);
		return NULL;
	}
	s->rings[0] = r;
	s->pages[0] = rd->page;
	s->n = 1;
	uint64_t next = rd->pos;
	int64_t last = ring_now_ns();
	while (mt->count[a->idx] < NPROD * NMSG && !atomic_load(&mt->stop)) {
		struct ring_view v;
		int n = ring_read(r, rd, &v);
		if (n == 0) {
			/* Announce, re-check, park: the protocol of wait.h. */
			ring_sleep_begin(s);
			n = ring_read(r, rd, &v);
			if (n == 0 && ring_sleep_wait(s, 1000 * MS) == -ETIMEDOUT &&
			    ring_now_ns() - last > HANG_NS) {
				atomic_fetch_add(&mt->stalls, 1);
				mt_abort(mt);
			}
			ring_sleep_end(s);
		}
		if (n < 0) {
			atomic_fetch_add(&mt->bad_read, 1);
			mt_abort(mt);
			break;
		}
		if (n == 1) {
			last = ring_now_ns();
			/* Nothing is ever cancelled here: positions follow
			 * each other without a gap. */
			if (v.pos != next++)
				atomic_fetch_add(&mt->bad_pos, 1);
			uint32_t id = msg_check(r, &v, NPROD, NMSG, mt->pid);
			if (id == UINT32_MAX)
				atomic_fetch_add(&mt->bad_payload, 1);
			else if (mt->count[a->idx] < NPROD * NMSG)
				mt->seen[a->idx][mt->count[a->idx]++] = id;
			ring_release(r, rd, v.next_pos);
		}
	}
	free(s);
	return NULL;
}

static int mt_setup(struct mt *mt, uint64_t cap)
{
	memset(mt, 0, sizeof(*mt));
	int err = ring_create(cap, MT_MAXMSG, 100, "mt", &mt->dfd, &mt->cfd);
	if (err)
		return err;
	err = ring_map(&mt->r, mt->dfd, mt->cfd, true);
	if (!err)
		err = ring_map(&mt->ro, mt->dfd, mt->cfd, false);
	if (err)
		return err;
	mt->ro.fetch_area = owner_fetch;
	mt->ro.fetch_arg = &mt->r;
	for (unsigned i = 0; i < NREAD; i++) {
		if (reader_add(&mt->r, &mt->rd[i]))
			return -ENOSPC;
		mt->seen[i] = calloc(NPROD * NMSG, sizeof(uint32_t));
		if (!mt->seen[i])
			return -ENOMEM;
	}
	for (unsigned i = 0; i < NPROD; i++)
		if (ring_writer_alloc_on(&mt->r, getpid(), &mt->writer[i], &own_shelf))
			return -ENOSPC;
	return 0;
}

/* Every reader saw every message once, each producer's in its order, and
 * all readers the same sequence. */
static void mt_verify(struct mt *mt)
{
	CU_ASSERT_EQUAL(atomic_load(&mt->errors), 0);
	CU_ASSERT_EQUAL(atomic_load(&mt->bad_payload), 0);
	CU_ASSERT_EQUAL(atomic_load(&mt->bad_pos), 0);
	CU_ASSERT_EQUAL(atomic_load(&mt->bad_read), 0);
	CU_ASSERT_EQUAL(atomic_load(&mt->stalls), 0);
	for (unsigned k = 0; k < NREAD; k++) {
		CU_ASSERT_EQUAL(mt->count[k], NPROD * NMSG);
		uint32_t next[NPROD] = {0};
		unsigned out_of_order = 0;
		for (unsigned i = 0; i < mt->count[k]; i++) {
			uint32_t tid = mt->seen[k][i] / NMSG, n = mt->seen[k][i] % NMSG;
			out_of_order += n != next[tid];
			next[tid] = n + 1;
		}
		CU_ASSERT_EQUAL(out_of_order, 0);
		for (unsigned t = 0; t < NPROD; t++)
			CU_ASSERT_EQUAL(next[t], NMSG);
	}
	CU_ASSERT(memcmp(mt->seen[0], mt->seen[1], NPROD * NMSG * sizeof(uint32_t)) == 0);
	/* How often the order switched producer: how much they interleaved,
	 * which scheduling decides, so it is reported, not asserted. */
	unsigned switches = 0;
	for (unsigned i = 1; i < mt->count[0]; i++)
		switches += mt->seen[0][i] / NMSG != mt->seen[0][i - 1] / NMSG;
	fprintf(stderr, "\n  %u producer switches in the order ", switches);
	/* Both readers are at the tail, which is every message. */
	CU_ASSERT_EQUAL(tail_of(&mt->r), NPROD * NMSG);
}

static void mt_teardown(struct mt *mt)
{
	for (unsigned i = 0; i < NREAD; i++)
		free(mt->seen[i]);
	ring_unmap(&mt->ro);
	ring_unmap(&mt->r);
	close(mt->dfd);
	close(mt->cfd);
}

static void start_readers(struct mt *mt, pthread_t *th, struct mt_arg *args)
{
	for (unsigned i = 0; i < NREAD; i++) {
		args[i] = (struct mt_arg){mt, i};
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, mt_reader_thread, &args[i]), 0);
	}
}

static void test_threads(void)
{
	static struct mt mt;
	pthread_t rt[NREAD], pt[NPROD];
	struct mt_arg ra[NREAD], pa[NPROD];
	/* The smallest ring: producers lap the order about 40 times and keep
	 * running into the readers. */
	CU_ASSERT_EQUAL_FATAL(mt_setup(&mt, RING_MIN_BYTES), 0);
	start_readers(&mt, rt, ra);
	for (unsigned i = 0; i < NPROD; i++) {
		pa[i] = (struct mt_arg){&mt, i};
		CU_ASSERT_EQUAL_FATAL(pthread_create(&pt[i], NULL, mt_producer_thread, &pa[i]), 0);
	}
	for (unsigned i = 0; i < NPROD; i++)
		join_ok(pt[i]);
	if (atomic_load(&mt.errors) && !atomic_load(&mt.stop))
		mt_abort(&mt);
	for (unsigned i = 0; i < NREAD; i++)
		join_ok(rt[i]);
	mt_verify(&mt);
	mt_teardown(&mt);
}

static void test_processes(void)
{
	static struct mt mt;
	pthread_t rt[NREAD];
	struct mt_arg ra[NREAD];
	CU_ASSERT_EQUAL_FATAL(mt_setup(&mt, RING_MIN_BYTES), 0);
	fflush(NULL);
	for (unsigned i = 0; i < NPROD; i++) {
		pid_t pid = fork();
		CU_ASSERT_FATAL(pid >= 0);
		if (pid == 0) {
			/* A sender maps the fds it was handed, as a client does:
			 * the data, the directory, and its own area writable. */
			struct ring own;
			struct ring_geometry geo = {.capacity = mt.r.capacity,
						    .max_msg = mt.r.max_msg,
						    .stall_ms = mt.r.stall_ms};
			uint32_t w = mt.writer[i];
			if (ring_map_as(&own, mt.dfd, mt.cfd, true, &geo) ||
			    ring_area_attach(&own, w, mt.r.area_gen[w], mt.r.area_file[w].fd,
					     mt.r.area_file[w].off, true))
				_exit(2);
			adopt_pages(&own, &mt.r);
			int err = produce(&own, mt.writer[i], i, NMSG, true, NULL);
			ring_unmap(&own);
			_exit(err ? 1 : 0);
		}
		mt.pid[i] = pid;
		/* The daemon names a slot's holder by the pid it sees; here the
		 * slot was taken before the fork. */
		atomic_store((_Atomic int32_t *)&mt.r.writer_ids[mt.writer[i]].pid, pid);
	}
	/* Readers start after every pid is known: they check from_pid. */
	start_readers(&mt, rt, ra);
	for (unsigned i = 0; i < NPROD; i++) {
		int status;
		CU_ASSERT_EQUAL(waitpid(mt.pid[i], &status, 0), mt.pid[i]);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			atomic_fetch_add(&mt.errors, 1);
			mt_abort(&mt);
		}
	}
	for (unsigned i = 0; i < NREAD; i++)
		join_ok(rt[i]);
	mt_verify(&mt);
	mt_teardown(&mt);
}

/* ------------------------------------------------------------------------ */
/* Membership: joining, eviction, writer slots                              */

/*
 * Members join while producers run, each in a slot of its own (slot_hi
 * grows with every join). Each must read every record from the tail it
 * joined at, without a gap, the same record at each position as every
 * other member, each producer's in order. A bound producers cached from
 * before the join must never let them overwrite what the new member
 * joined for.
 */
enum { JR_PROD = 2, JR_PER = 25000, JR_MEMBERS = 32 };

struct jr_prod {
	struct ring *r;
	uint32_t tid;
	uint32_t writer;
	_Atomic int *stop;
	int err;
};

static void *jr_producer(void *p)
{
	struct jr_prod *j = p;
	j->err = produce(j->r, j->writer, j->tid, JR_PER, false, j->stop);
	return NULL;
}

struct jr_member {
	struct ring_reader rd;
	uint64_t start;
	uint64_t next;
	uint32_t expect[JR_PROD];
	bool seen[JR_PROD];
};

/* Read what member `m` has; count of records, or -1 on a wrong one. */
static int jr_drain(struct ring *r, struct jr_member *m, uint64_t *log)
{
	int got = 0;
	for (; got < 64; got++) {
		struct ring_view v;
		int n = ring_read(r, &m->rd, &v);
		if (n == 0)
			break;
		if (n < 0 || v.pos != m->next)
			return -1;
		uint32_t id = msg_check(r, &v, JR_PROD, JR_PER, NULL);
		if (id == UINT32_MAX || v.pos >= JR_PROD * JR_PER)
			return -1;
		uint32_t tid = id / JR_PER, k = id % JR_PER;
		/* The same record at this position for every member. */
		if (!log[v.pos])
			log[v.pos] = (uint64_t)id + 1;
		else if (log[v.pos] != (uint64_t)id + 1)
			return -1;
		if (m->seen[tid] && k != m->expect[tid])
			return -1;
		m->seen[tid] = true;
		m->expect[tid] = k + 1;
		m->next = v.next_pos;
		ring_release(r, &m->rd, v.next_pos);
	}
	return got;
}

struct jr2 {
	struct ring *r;
	struct ring_area a;
	_Atomic int *stop;
};

/* Claim, commit, and scan the members after every claim, as producers of
 * a full ring do (the scan raises cached_min): the widest window on the
 * daemon's join. */
static void *jr2_producer(void *p)
{
	struct jr2 *j = p;
	struct ring_claim c;
	while (!atomic_load(j->stop)) {
		if (ring_claim(j->r, &j->a, 0, RING_EVENT_RESERVE, TRIES, &c, NULL) == 0)
			ring_commit(j->r, &c, RING_REC_MSG, 0, 1, 0);
		ring_min_cursor(j->r, NULL);
	}
	return NULL;
}

static void test_join_race(void)
{
	struct fx f;
	_Atomic int stop = 0;
	struct jr_prod jp[JR_PROD];
	pthread_t t[JR_PROD];
	static struct jr_member mem[JR_MEMBERS];
	const uint64_t total = JR_PROD * JR_PER;
	uint64_t *log = calloc(total, sizeof(*log));
	CU_ASSERT_PTR_NOT_NULL_FATAL(log);
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, MT_MAXMSG), 0);
	struct ring *r = &f.r;
	memset(mem, 0, sizeof(mem));
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &mem[0].rd), 0);
	/* The first member is there from the start: it expects n = 0 first. */
	for (unsigned k = 0; k < JR_PROD; k++)
		mem[0].seen[k] = true;
	unsigned nmem = 1;
	for (unsigned i = 0; i < JR_PROD; i++) {
		jp[i] = (struct jr_prod){.r = r, .tid = i, .stop = &stop};
		CU_ASSERT_EQUAL_FATAL(ring_writer_alloc_on(r, getpid(), &jp[i].writer, &own_shelf), 0);
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, jr_producer, &jp[i]), 0);
	}
	unsigned bad = 0, bad_join = 0, hung = 0;
	int64_t last = ring_now_ns();
	for (;;) {
		bool progress = false, all_done = true;
		for (unsigned i = 0; i < nmem && !bad; i++) {
			int n = jr_drain(r, &mem[i], log);
			if (n < 0) {
				fprintf(stderr, "\n  join_race: member %u (joined at %" PRIu64
					") wrong at %" PRIu64 " ", i, mem[i].start, mem[i].next);
				bad++;
			}
			progress |= n > 0;
			all_done &= mem[i].next == total;
		}
		if (bad || (all_done && nmem == JR_MEMBERS))
			break;
		/* Joins spread over the run, while the producers write. */
		if (nmem < JR_MEMBERS && mem[0].next >= nmem * (total / JR_MEMBERS)) {
			struct jr_member *m = &mem[nmem];
			if (reader_add(r, &m->rd)) {
				bad_join++;
				break;
			}
			m->start = m->next = m->rd.pos;
			/* Distinct slots, none given back: slot_hi grows. */
			bad_join += m->rd.slot != nmem ||
				    atomic_load(&r->dir->slot_hi) != nmem + 1 ||
				    m->start > tail_of(r) ||
				    atomic_load(&r->hdr->cached_min) > m->start;
			nmem++;
		}
		int64_t now = ring_now_ns();
		if (progress) {
			last = now;
		} else if (now - last > HANG_NS) {
			hung++;
			break;
		} else {
			sched_yield();
		}
	}
	atomic_store(&stop, 1);
	for (unsigned i = 0; i < JR_PROD; i++) {
		join_ok(t[i]);
		CU_ASSERT_EQUAL(jp[i].err, 0);
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(bad_join, 0);
	CU_ASSERT_EQUAL(hung, 0);
	CU_ASSERT_EQUAL(nmem, JR_MEMBERS);
	CU_ASSERT_EQUAL(atomic_load(&r->dir->slot_hi), JR_MEMBERS);
	for (unsigned i = 0; i < nmem; i++)
		CU_ASSERT_EQUAL(mem[i].next, total);
	/* Joins really were spread: the last one missed some of the traffic. */
	CU_ASSERT(mem[JR_MEMBERS - 1].start > 0);
	fx_close(&f);
	free(log);

	/*
	 * The same race, sharpened: a member joins and leaves again and
	 * again, while producers with nothing else holding them back raise
	 * cached_min as fast as they can. Right after a join, the bound can
	 * never be above the new member's cursor. The producers map the ring
	 * as senders do: a member they have no page of is one they must not
	 * raise the bound past; one they missed altogether is the race.
	 */
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, MT_MAXMSG), 0);
	r = &f.r;
	struct jr2 j2[2];
	static struct ring snd[2];
	stop = 0;
	for (unsigned i = 0; i < 2; i++) {
		CU_ASSERT_EQUAL_FATAL(fx_map_sender(&f, &snd[i]), 0);
		j2[i] = (struct jr2){.r = &snd[i], .stop = &stop};
		CU_ASSERT_EQUAL_FATAL(writer_add(r, &j2[i].a), 0);
		uint32_t wi = j2[i].a.writer;
		CU_ASSERT_EQUAL_FATAL(
		    ring_area_attach(&snd[i], wi, r->area_gen[wi], r->area_file[wi].fd,
				     r->area_file[wi].off, true), 0);
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, jr2_producer, &j2[i]), 0);
	}
	/* Joins race with producers only once they run. */
	int64_t t0 = ring_now_ns();
	while (tail_of(r) == 0 && ring_now_ns() - t0 < HANG_NS)
		sched_yield();
	CU_ASSERT_FATAL(tail_of(r) > 0); /* else the race below never ran */
	unsigned long adds = 0, above = 0, failed = 0;
	uint64_t worst = 0;
	for (; adds < 200000 && !above; adds++) {
		struct ring_reader rd;
		if (reader_add(r, &rd)) {
			failed++;
			break;
		}
		uint64_t cm = atomic_load(&r->hdr->cached_min);
		if (cm > rd.pos) {
			above++;
			worst = cm - rd.pos;
		}
		ring_member_remove(r, rd.slot);
	}
	atomic_store(&stop, 1);
	join_ok(t[0]);
	join_ok(t[1]);
	ring_unmap(&snd[0]);
	ring_unmap(&snd[1]);
	if (above)
		fprintf(stderr, "\n  after %lu joins: cached_min %" PRIu64 " above a new member's "
			"cursor ", adds, worst);
	CU_ASSERT_EQUAL(failed, 0);
	CU_ASSERT_EQUAL(above, 0);
	fx_close(&f);
}

static void test_evict(void)
{
	enum { LEN = 1024 - sizeof(struct ring_rec) };
	struct fx f;
	struct ring ro;
	struct ring_reader a, b, old;
	struct ring_view v;
	struct ring_area w;
	uint32_t blocker;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(fx_map(&f, &ro, false), 0);
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &a), 0);
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &b), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w), 0);

	unsigned sent = 0;
	while (put(r, &w, RING_EVENT_RESERVE, LEN, sent, NULL, &blocker) == 0 && sent < 1000)
		sent++;
	for (unsigned i = 0; i < sent; i++)
		CU_ASSERT_EQUAL(take(&ro, &b, i, NULL), 1);
	CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, LEN, sent, NULL, &blocker), -EAGAIN);
	CU_ASSERT_EQUAL_FATAL(blocker, a.slot);

	/* Words that do not name the holder evict nobody. */
	uint32_t stale = RING_MEMBER_WORD(RING_GEN_OF(a.state_word) - 1, RING_MEMBER_ACTIVE);
	CU_ASSERT_FALSE(ring_member_evict(r, a.slot, stale));
	CU_ASSERT_FALSE(ring_member_evict(r, a.slot, RING_MEMBER_WORD(RING_GEN_OF(a.state_word),
								      RING_MEMBER_EVICTED)));
	CU_ASSERT_FALSE(ring_member_evict(r, RING_MEMBER_SLOTS, a.state_word));
	CU_ASSERT_FALSE(ring_member_evict(r, UINT32_MAX, a.state_word));
	CU_ASSERT_EQUAL(atomic_load(&r->members[a.slot].state), a.state_word);
	CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, LEN, sent, NULL, NULL), -EAGAIN);
	CU_ASSERT_EQUAL(ring_read(&ro, &a, &v), 1);

	uint32_t wake = atomic_load(&r->hdr->wake_seq);
	CU_ASSERT_TRUE(ring_member_evict(r, a.slot, a.state_word));
	CU_ASSERT_NOT_EQUAL(atomic_load(&r->hdr->wake_seq), wake);
	CU_ASSERT_EQUAL(atomic_load(&r->members[a.slot].state),
			RING_MEMBER_WORD(RING_GEN_OF(a.state_word), RING_MEMBER_EVICTED));
	CU_ASSERT_FALSE(ring_member_evict(r, a.slot, a.state_word));
	CU_ASSERT_EQUAL(ring_read(&ro, &a, &v), -ECONNRESET);
	/* The evicted member no longer holds the room: only b limits now. */
	unsigned more = 0;
	while (put(r, &w, RING_EVENT_RESERVE, LEN, sent + more, NULL, &blocker) == 0 &&
	       more < 1000)
		more++;
	CU_ASSERT_EQUAL(more, sent);
	CU_ASSERT_EQUAL(blocker, b.slot);
	for (unsigned i = 0; i < more; i++)
		CU_ASSERT_EQUAL(take(&ro, &b, sent + i, NULL), 1);
	CU_ASSERT_EQUAL(ring_lag(r), 0);
	/* The order has since lapped what it had left to read: still only
	 * -ECONNRESET, never -EBADMSG, for an evicted member. */
	for (unsigned i = 0; i < 2 * r->order_slots; i++)
		CU_ASSERT_EQUAL_FATAL(put(r, &w, RING_EVENT_RESERVE, 0, 0, NULL, NULL) == 0 &&
				      take(&ro, &b, 0, NULL) == 1, 1);
	CU_ASSERT_EQUAL(ring_read(&ro, &a, &v), -ECONNRESET);

	/* The slot is reused with a new generation: an eviction aimed at the
	 * old holder does nothing to the new one. */
	ring_member_remove(r, a.slot);
	old = a;
	CU_ASSERT_EQUAL(ring_read(&ro, &old, &v), -ECONNRESET);
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &a), 0);
	CU_ASSERT_EQUAL(a.slot, old.slot);
	CU_ASSERT_EQUAL(RING_GEN_OF(a.state_word), RING_GEN_OF(old.state_word) + 1);
	CU_ASSERT_FALSE(ring_member_evict(r, a.slot, old.state_word));
	CU_ASSERT_EQUAL(atomic_load(&r->members[a.slot].state), a.state_word);
	CU_ASSERT_EQUAL(ring_read(&ro, &old, &v), -ECONNRESET);
	CU_ASSERT_EQUAL(ring_read(&ro, &a, &v), 0);
	CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, 10, 7, NULL, NULL), 0);
	CU_ASSERT_EQUAL(take(&ro, &a, 7, NULL), 1);
	CU_ASSERT_EQUAL(take(&ro, &b, 7, NULL), 1);
	/* And the right word evicts the new holder. */
	CU_ASSERT_TRUE(ring_member_evict(r, a.slot, a.state_word));
	CU_ASSERT_EQUAL(ring_read(&ro, &a, &v), -ECONNRESET);

	ring_member_remove(r, b.slot);
	CU_ASSERT_EQUAL(ring_read(&ro, &b, &v), -ECONNRESET);
	uint32_t slowest;
	CU_ASSERT_EQUAL(ring_min_cursor(r, &slowest), tail_of(r));
	CU_ASSERT_EQUAL(slowest, UINT32_MAX);
	ring_unmap(&ro);
	fx_close(&f);
}

/*
 * A freed writer slot's area is started afresh by its next holder, so the
 * daemon must not hand it out while a member can still read the previous
 * holder's records: only once every member is past its last one.
 */
static void test_writer_reuse(void)
{
	struct fx f;
	struct ring_reader m;
	struct ring_area a, x;
	struct ring_view v;
	uint32_t slot;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &m), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &a), 0);
	CU_ASSERT_EQUAL(a.writer, 1);
	/* A slot that never sent is free at once. */
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &x), 0);
	CU_ASSERT_EQUAL(x.writer, 2);
	ring_writer_free(r, x.writer);
	CU_ASSERT_EQUAL(ring_writer_alloc_on(r, getpid(), &slot, &own_shelf), 0);
	CU_ASSERT_EQUAL(slot, 2);
	ring_writer_free(r, slot);

	for (unsigned i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(put(r, &a, RING_EVENT_RESERVE, 500, i, NULL, NULL), 0);
	ring_writer_free(r, a.writer);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[a.writer].last_pos), 2);
	/* Not slot 1: its records are unread. */
	CU_ASSERT_EQUAL(ring_writer_alloc_on(r, getpid(), &slot, &own_shelf), 0);
	CU_ASSERT_EQUAL(slot, 2);
	/* Take every other slot: then there is none to hand out. */
	unsigned got = 1, bad = 0;
	while (ring_writer_alloc_on(r, getpid(), &slot, &own_shelf) == 0 && got < RING_WRITER_SLOTS) {
		bad += slot == a.writer || slot == RING_DAEMON_WRITER;
		got++;
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(got, r->writer_slots - 2);
	CU_ASSERT_EQUAL(ring_writer_alloc_on(r, getpid(), &slot, &own_shelf), -ENOSPC);
	/* Reading all but the last record is not enough. */
	CU_ASSERT_EQUAL(take(r, &m, 0, NULL), 1);
	CU_ASSERT_EQUAL(take(r, &m, 1, NULL), 1);
	CU_ASSERT_EQUAL(ring_writer_alloc_on(r, getpid(), &slot, &own_shelf), -ENOSPC);
	/* Read, not yet released: still not. */
	CU_ASSERT_EQUAL_FATAL(ring_read(r, &m, &v), 1);
	CU_ASSERT_EQUAL(ring_writer_alloc_on(r, getpid(), &slot, &own_shelf), -ENOSPC);
	ring_release(r, &m, v.next_pos);
	CU_ASSERT_EQUAL_FATAL(ring_writer_alloc_on(r, getpid(), &slot, &own_shelf), 0);
	CU_ASSERT_EQUAL(slot, a.writer);
	CU_ASSERT_EQUAL(atomic_load(&r->writer_ids[slot].used), 1);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[slot].last_pos), RING_NO_CLAIM);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[slot].claim_pos), RING_NO_CLAIM);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[slot].claim_won), RING_NO_CLAIM);

	/* The new holder's records, from the start of the area, read fine. */
	ring_area_init(&a, slot);
	for (unsigned i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(put(r, &a, RING_EVENT_RESERVE, 300, 10 + i, NULL, NULL), 0);
	for (unsigned i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(take(r, &m, 10 + i, &v), 1);
		CU_ASSERT_EQUAL(view_writer(r, &v), (int)slot);
	}

	/* A member that joins after the last record does not hold the slot;
	 * an evicted member does not either. */
	struct ring_reader late, gone;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &gone), 0);
	CU_ASSERT_EQUAL(put(r, &a, RING_EVENT_RESERVE, 10, 20, NULL, NULL), 0);
	ring_writer_free(r, a.writer);
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &late), 0);
	CU_ASSERT_EQUAL(take(r, &m, 20, NULL), 1);
	CU_ASSERT_EQUAL(ring_writer_alloc_on(r, getpid(), &slot, &own_shelf), -ENOSPC);
	CU_ASSERT_TRUE(ring_member_evict(r, gone.slot, gone.state_word));
	CU_ASSERT_EQUAL(ring_writer_alloc_on(r, getpid(), &slot, &own_shelf), 0);
	CU_ASSERT_EQUAL(slot, a.writer);
	fx_close(&f);
}

/* The node's repair of a writer that died with a claim. */
static void test_seal(void)
{
	struct fx f;
	struct ring_reader rd;
	struct ring_area a, b, d;
	struct ring_claim ca, cb;
	struct ring_view v;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &a), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &b), 0);
	ring_area_init(&d, RING_DAEMON_WRITER);
	struct ring_writer *wa = &r->writers[a.writer];

	/* Idle: nothing to do. */
	CU_ASSERT_EQUAL(ring_seal_writer(r, a.writer), 0);
	CU_ASSERT_EQUAL(tail_of(r), 0);

	/* Died holding a claim it won: the position is cancelled, readers
	 * skip it, and what follows is read. */
	CU_ASSERT_EQUAL_FATAL(ring_claim(r, &a, 100, RING_EVENT_RESERVE, TRIES, &ca, NULL), 0);
	CU_ASSERT_EQUAL(atomic_load(&wa->claim_won), ca.pos);
	CU_ASSERT_EQUAL(put(r, &b, RING_EVENT_RESERVE, 20, 1, &cb, NULL), 0);
	CU_ASSERT_EQUAL(ring_read(r, &rd, &v), 0);
	CU_ASSERT_EQUAL(ring_seal_writer(r, a.writer), 0);
	CU_ASSERT_EQUAL(atomic_load(&wa->claim_won), RING_NO_CLAIM);
	CU_ASSERT_EQUAL(atomic_load(&wa->claim_pos), RING_NO_CLAIM);
	CU_ASSERT_EQUAL(RING_E_STATE(atomic_load(entry_at(r, ca.pos))), RING_E_CANCELLED);
	CU_ASSERT_EQUAL(take(r, &rd, 1, &v), 1);
	CU_ASSERT_EQUAL(v.pos, cb.pos);
	/* Were it not dead after all, its commit would fail. */
	CU_ASSERT_EQUAL(ring_commit(r, &ca, RING_REC_MSG, 0, 1, 0), -ECANCELED);
	CU_ASSERT_EQUAL(ring_read(r, &rd, &v), 0);

	/* It won P, and another live writer still names P (it lost P and has
	 * not withdrawn yet): claim_won says P is the dead one's, cancel it. */
	CU_ASSERT_EQUAL_FATAL(ring_claim(r, &a, 100, RING_EVENT_RESERVE, TRIES, &ca, NULL), 0);
	atomic_store(&r->writers[b.writer].claim_pos, ca.pos);
	CU_ASSERT_EQUAL(ring_seal_writer(r, a.writer), 0);
	CU_ASSERT_EQUAL(RING_E_STATE(atomic_load(entry_at(r, ca.pos))), RING_E_CANCELLED);
	atomic_store(&r->writers[b.writer].claim_pos, RING_NO_CLAIM);
	CU_ASSERT_EQUAL(ring_read(r, &rd, &v), 0);
	CU_ASSERT_EQUAL(rd.pos, ca.pos + 1);

	/*
	 * Died around its claiming compare-and-swap: it named position P, and
	 * a live writer names P too (it won P). P is not the dead one's to
	 * cancel: -EAGAIN, and P is left open for its owner.
	 */
	CU_ASSERT_EQUAL_FATAL(ring_claim(r, &b, 30, RING_EVENT_RESERVE, TRIES, &cb, NULL), 0);
	atomic_store(&wa->claim_pos, cb.pos);
	atomic_store(&wa->claim_won, RING_NO_CLAIM);
	CU_ASSERT_EQUAL(ring_seal_writer(r, a.writer), -EAGAIN);
	CU_ASSERT(ring_entry_open(r, cb.pos));
	fill(cb.payload, 30, 2);
	CU_ASSERT_EQUAL(ring_commit(r, &cb, RING_REC_MSG, 0, 1, 0), 0);
	CU_ASSERT_EQUAL(take(r, &rd, 2, &v), 1);
	CU_ASSERT_EQUAL(v.pos, cb.pos);
	/* Once its owner decided it, nobody names P: sealing is done, and
	 * leaves the committed entry as it was. */
	uint64_t e = atomic_load(entry_at(r, cb.pos));
	CU_ASSERT_EQUAL(ring_seal_writer(r, a.writer), 0);
	CU_ASSERT_EQUAL(atomic_load(entry_at(r, cb.pos)), e);
	CU_ASSERT_EQUAL(atomic_load(&wa->claim_pos), RING_NO_CLAIM);
	/* The daemon's own slot counts as a live writer too. */
	CU_ASSERT_EQUAL_FATAL(ring_claim(r, &d, 0, 0, TRIES, &cb, NULL), 0);
	atomic_store(&wa->claim_pos, cb.pos);
	CU_ASSERT_EQUAL(ring_seal_writer(r, a.writer), -EAGAIN);
	CU_ASSERT_EQUAL(ring_commit(r, &cb, RING_REC_JOINED, 0, 1, 0), 0);
	CU_ASSERT_EQUAL(ring_read(r, &rd, &v), 1);
	CU_ASSERT_EQUAL(v.kind, RING_REC_JOINED);
	ring_release(r, &rd, v.next_pos);
	CU_ASSERT_EQUAL(ring_seal_writer(r, a.writer), 0);

	/* Died right after winning, before it could say so: nobody else
	 * names the position, so it was its own, and is cancelled. */
	struct ring_area a2;
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &a2), 0);
	CU_ASSERT_EQUAL_FATAL(ring_claim(r, &a2, 40, RING_EVENT_RESERVE, TRIES, &ca, NULL), 0);
	atomic_store(&r->writers[a2.writer].claim_won, RING_NO_CLAIM);
	CU_ASSERT_EQUAL(put(r, &b, RING_EVENT_RESERVE, 20, 3, &cb, NULL), 0);
	CU_ASSERT_EQUAL(ring_seal_writer(r, a2.writer), 0);
	CU_ASSERT_EQUAL(RING_E_STATE(atomic_load(entry_at(r, ca.pos))), RING_E_CANCELLED);
	CU_ASSERT_EQUAL(take(r, &rd, 3, &v), 1);
	CU_ASSERT_EQUAL(v.pos, cb.pos);

	/* Died before its compare-and-swap (it names the tail): nothing is
	 * cancelled, and the next claim of that position is unharmed. */
	uint64_t t = tail_of(r);
	atomic_store(&r->writers[a2.writer].claim_pos, t);
	CU_ASSERT_EQUAL(ring_seal_writer(r, a2.writer), 0);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[a2.writer].claim_pos), RING_NO_CLAIM);
	CU_ASSERT_EQUAL(tail_of(r), t);
	CU_ASSERT_EQUAL(put(r, &b, RING_EVENT_RESERVE, 20, 4, &cb, NULL), 0);
	CU_ASSERT_EQUAL(cb.pos, t);
	CU_ASSERT_EQUAL(take(r, &rd, 4, &v), 1);
	CU_ASSERT_EQUAL(v.pos, t);
	CU_ASSERT_EQUAL(ring_read(r, &rd, &v), 0);
	fx_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Hostile shared memory                                                    */

/* What a malicious writer can do: publish an entry of its choosing at a
 * position, pointing at a header of its choosing. */
/* Every writer slot with an area, so forgeries can name any of them. */
static int all_areas(struct ring *r)
{
	for (uint32_t i = 1; i < r->writer_slots; i++) {
		int err = area_create(r, i);
		if (err)
			return err;
	}
	return 0;
}

static void forge(struct ring *r, uint64_t pos, uint64_t e, const struct ring_rec *h)
{
	uint32_t w = RING_E_WRITER(e);
	uint64_t off = RING_E_UNIT(e) * RING_ALIGN;
	if (h && w < r->writer_slots && off + sizeof(*h) <= r->capacity)
		memcpy(area_of(r, w) + off, h, sizeof(*h));
	atomic_store(entry_at(r, pos), e);
}

static uint64_t commit_e(const struct ring *r, uint64_t pos, uint64_t unit, uint32_t w)
{
	return RING_E_MAKE(lap_of(r, pos), unit, w, RING_E_COMMITTED);
}

/* Read one forged position on its own: as a fresh reader would, with no
 * earlier record of the writer to keep claim order with (test_rewound_tail
 * looks at that). */
static int read_at(struct ring *r, struct ring_reader *rd, uint64_t pos, struct ring_view *v)
{
	rd->pos = pos;
	memset(rd->seen, 0, sizeof(rd->seen));
	return ring_read(r, rd, v);
}

static void corrupt_body(void)
{
	struct fx f;
	struct ring_reader rd;
	struct ring_view v;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	CU_ASSERT_EQUAL_FATAL(all_areas(&f.r), 0);
	struct ring *r = &f.r;
	const uint64_t cap = r->capacity, slots = r->order_slots, units = cap / RING_ALIGN;
	const uint32_t w = 7;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);

	const uint64_t where[] = {0, 5, slots - 1, 3 * slots + 7, (1ull << 40) + 3};
	const uint64_t at[] = {0, 17, units - 40};
	unsigned bad = 0;
	for (size_t i = 0; i < ARRAY_SIZE(where); i++) {
		for (size_t j = 0; j < ARRAY_SIZE(at); j++) {
			const uint64_t p = where[i], u = at[j], off = u * RING_ALIGN;
			const uint64_t e = commit_e(r, p, u, w);
			struct ring_rec h = {.order_pos = p, .len = 100, .kind = RING_REC_MSG,
					     .from_pid = 1};
			uint8_t *payload = area_of(r, w) + off + sizeof(h);
			fill(payload, 100, p);

			/* A sound record there is read, as a control. */
			forge(r, p, e, &h);
			bad += read_at(r, &rd, p, &v) != 1 || v.pos != p || v.seq != p + 1 ||
			       v.payload != payload || !matches(v.payload, 100, p);

			/* The header is for another position. */
			const uint64_t other[] = {p + 1, p - 1, p + slots, p - slots, UINT64_MAX,
						  p ^ (1ull << 63)};
			for (size_t k = 0; k < ARRAY_SIZE(other); k++) {
				h.order_pos = other[k];
				forge(r, p, e, &h);
				bad += read_at(r, &rd, p, &v) != -EBADMSG;
			}
			h.order_pos = p;

			/* Kinds no record may have, a writer's private WRAP
			 * among them; every real kind reads. */
			const uint16_t kinds[] = {0, RING_REC_WRAP, RING_REC_DOWN + 1, 0x7fff,
						  0xffff};
			for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
				h.kind = kinds[k];
				forge(r, p, e, &h);
				bad += read_at(r, &rd, p, &v) != -EBADMSG;
			}
			for (uint16_t k = RING_REC_MSG; k <= RING_REC_DOWN; k++) {
				h.kind = k;
				forge(r, p, e, &h);
				bad += read_at(r, &rd, p, &v) != 1 || v.kind != k;
			}
			h.kind = RING_REC_MSG;

			/* Over the group's limit, or past the end of the area. */
			const uint32_t lens[] = {r->max_msg + 1, UINT32_MAX, UINT32_MAX - 31,
						 (uint32_t)cap, (uint32_t)(cap - off)};
			for (size_t k = 0; k < ARRAY_SIZE(lens); k++) {
				h.len = lens[k];
				forge(r, p, e, &h);
				bad += read_at(r, &rd, p, &v) != -EBADMSG;
			}
			h.len = r->max_msg;
			forge(r, p, e, &h);
			int want = off + ring_rec_bytes(r->max_msg) <= cap ? 1 : -EBADMSG;
			bad += read_at(r, &rd, p, &v) != want;
			h.len = 100;

			/* Entries of this position's lap that are not records. */
			forge(r, p, RING_E_MAKE(lap_of(r, p), u, w, 3), &h);
			bad += read_at(r, &rd, p, &v) != -EBADMSG;
			forge(r, p, RING_E_MAKE(lap_of(r, p), u, w, RING_E_EMPTY) | (1ull << 35),
			      &h);
			bad += read_at(r, &rd, p, &v) != 0;
			/* A newer lap: the order went past this position,
			 * which no honest ring does under a live member. */
			forge(r, p, RING_E_MAKE(lap_of(r, p) + 1, u, w, RING_E_COMMITTED), &h);
			bad += read_at(r, &rd, p, &v) != -EBADMSG;
			forge(r, p, RING_E_MAKE(lap_of(r, p) + (1u << 27), u, w, RING_E_CANCELLED),
			      &h);
			bad += read_at(r, &rd, p, &v) != -EBADMSG;
			/* An older lap, or nothing: not decided yet. */
			forge(r, p, RING_E_MAKE(lap_of(r, p) - 1, u, w, RING_E_COMMITTED), &h);
			bad += read_at(r, &rd, p, &v) != 0 || rd.pos != p;
			forge(r, p, 0, NULL);
			bad += read_at(r, &rd, p, &v) != 0 || rd.pos != p;

			/* Cancelled: skipped, and what follows is still checked. */
			forge(r, p, RING_E_MAKE(lap_of(r, p), 0, 0, RING_E_CANCELLED), NULL);
			forge(r, p + 1, 0, NULL);
			bad += read_at(r, &rd, p, &v) != 0 || rd.pos != p + 1 ||
			       published(r, &rd) != p + 1;
			h.order_pos = p + 1;
			h.kind = 0;
			forge(r, p + 1, commit_e(r, p + 1, u, w), &h);
			bad += read_at(r, &rd, p, &v) != -EBADMSG || rd.pos != p + 1;
			h.kind = RING_REC_MSG;
			forge(r, p + 1, commit_e(r, p + 1, u, w), &h);
			bad += read_at(r, &rd, p, &v) != 1 || v.pos != p + 1 || v.seq != p + 2;
			if (bad) {
				fprintf(stderr, "\n  corrupt: wrong at position %" PRIu64
					", unit %" PRIu64 " ", p, u);
				break;
			}
		}
	}
	CU_ASSERT_EQUAL(bad, 0);

	/* Offsets past the area: the header itself would be outside. */
	const uint64_t p = 100;
	struct ring_rec h = {.order_pos = p, .len = 0, .kind = RING_REC_MSG};
	const uint64_t past[] = {units, units + 1, 0x1ffffff};
	for (size_t k = 0; k < ARRAY_SIZE(past); k++) {
		forge(r, p, commit_e(r, p, past[k], w), NULL);
		CU_ASSERT_EQUAL(read_at(r, &rd, p, &v), -EBADMSG);
	}
	/* In the last writer's area, past its end is past the mapping's:
	 * the header must not even be looked at. */
	for (size_t k = 0; k < ARRAY_SIZE(past); k++) {
		forge(r, p, commit_e(r, p, past[k], r->writer_slots - 1), NULL);
		CU_ASSERT_EQUAL(read_at(r, &rd, p, &v), -EBADMSG);
	}
	/* The last unit holds just a header: a record of no payload fits,
	 * one byte more does not. */
	forge(r, p, commit_e(r, p, units - 1, w), &h);
	CU_ASSERT_EQUAL(read_at(r, &rd, p, &v), 1);
	CU_ASSERT_EQUAL(v.len, 0);
	h.len = 1;
	forge(r, p, commit_e(r, p, units - 1, w), &h);
	CU_ASSERT_EQUAL(read_at(r, &rd, p, &v), -EBADMSG);
	/* In the last writer's area, the last byte of the mapping. */
	h.len = 32;
	forge(r, p, commit_e(r, p, units - 2, r->writer_slots - 1), &h);
	CU_ASSERT_EQUAL(read_at(r, &rd, p, &v), 1);
	CU_ASSERT_PTR_EQUAL((const uint8_t *)v.payload + v.len,
			    r->areas + (uint64_t)r->writer_slots * r->capacity);

	/* An evicted member is told so, not that the memory is corrupt. */
	forge(r, p, commit_e(r, p, past[0], w), NULL);
	CU_ASSERT_TRUE(ring_member_evict(r, rd.slot, rd.state_word));
	CU_ASSERT_EQUAL(read_at(r, &rd, p, &v), -ECONNRESET);

	/* A producer trusts slot_hi no further than the slot table. */
	atomic_store(&r->dir->slot_hi, UINT32_MAX);
	uint32_t slowest;
	CU_ASSERT_EQUAL(ring_min_cursor(r, &slowest), tail_of(r));
	fx_close(&f);

	/* A writer index past the group's writer slots: a ring large enough
	 * to have fewer than the entry's 8 bits can name. */
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, 16u << 20, 1000), 0);
	r = &f.r;
	CU_ASSERT_EQUAL_FATAL(area_create(r, r->writer_slots - 1), 0);
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);
	CU_ASSERT(r->writer_slots < 256);
	h = (struct ring_rec){.order_pos = p, .len = 10, .kind = RING_REC_MSG};
	forge(r, p, commit_e(r, p, 0, r->writer_slots - 1), &h);
	CU_ASSERT_EQUAL(read_at(r, &rd, p, &v), 1);
	const uint32_t ws[] = {r->writer_slots, r->writer_slots + 1, 255};
	for (size_t k = 0; k < ARRAY_SIZE(ws); k++) {
		forge(r, p, commit_e(r, p, 0, ws[k]), NULL);
		CU_ASSERT_EQUAL(read_at(r, &rd, p, &v), -EBADMSG);
	}
	fx_close(&f);
}

/*
 * Random entries and headers at the reader's position, each steered often
 * enough to get past the early checks. ring_read may accept or refuse, but
 * never crash, and anything it accepts lies inside one writer's area of the
 * mapping and within the group's limits.
 */
static void fuzz(struct ring *r, struct ring_reader *rd, unsigned iters, unsigned *res)
{
	const uint64_t units = r->capacity / RING_ALIGN;
	for (unsigned i = 0; i < iters; i++) {
		uint64_t p = (i & 4) ? rnd() : rnd() % (8 * r->order_slots);
		/* The entry there and a few after it (a cancelled one makes
		 * the reader walk on into them). */
		for (unsigned k = 0; k < 4; k++) {
			uint64_t e;
			if (k && rnd() % 2)
				continue;
			if (rnd() % 4 == 0) {
				e = rnd();
			} else {
				uint32_t lap = lap_of(r, p + k);
				if (rnd() % 5 == 0)
					lap += (uint32_t)(rnd() % 3) - 1;
				uint64_t u = rnd() % 3 ? rnd() % units : rnd() & 0x1ffffff;
				uint32_t w = rnd() % 2 ? (uint32_t)(rnd() % r->writer_slots)
						       : (uint32_t)(rnd() & 0xff);
				uint32_t st = rnd() % 5 ? RING_E_COMMITTED : (uint32_t)(rnd() % 4);
				e = RING_E_MAKE(lap, u, w, st);
			}
			struct ring_rec h;
			uint64_t junk[4] = {rnd(), rnd(), rnd(), rnd()};
			memcpy(&h, junk, sizeof(h));
			if (rnd() % 2) {
				h.order_pos = p + k + (rnd() % 4 ? 0 : rnd() % 3 - 1);
				h.kind = (uint16_t)(rnd() % 8);
				h.len = (uint32_t)(rnd() % (2 * r->max_msg));
			}
			forge(r, p + k, e, &h);
		}
		struct ring_view v;
		int n = read_at(r, rd, p, &v);
		if (n == 1) {
			res[0]++;
			/* A master's ring: seq is the position's, whatever a
			 * record says (only a replica's mapping reads it). */
			res[3] += v.pos - p >= r->order_slots || v.seq != v.pos + 1 ||
				  v.next_pos != v.pos + 1 || v.len > r->max_msg ||
				  v.kind < RING_REC_MSG || v.kind > RING_REC_DOWN ||
				  rd->pos != v.pos || view_writer(r, &v) < 0;
		} else if (n == 0) {
			res[1]++;
			res[3] += rd->pos - p > r->order_slots;
		} else if (n == -EBADMSG) {
			res[2]++;
		} else {
			res[3]++;
		}
	}
}

static void corrupt_fuzz_body(void)
{
	struct fx f;
	struct ring_reader rd;
	const char *env = getenv("TEST_RING_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0)
			    : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
	if (!seed)
		seed = 1;
	/* Replay a failure with TEST_RING_SEED=<this>. */
	fprintf(stderr, "\n  corrupt_fuzz: seed %#" PRIx64 " ", seed);
	rnd_state = seed;
	unsigned res[4] = {0}; /* accepted, nothing yet, refused, wrong */
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	CU_ASSERT_EQUAL_FATAL(all_areas(&f.r), 0);
	CU_ASSERT_EQUAL_FATAL(reader_add(&f.r, &rd), 0);
	fuzz(&f.r, &rd, 20000, res);
	/* Still a member: no result may have been -ECONNRESET. */
	CU_ASSERT_EQUAL(atomic_load(&f.r.members[rd.slot].state), rd.state_word);
	fx_close(&f);
	/* Fewer writer slots than the entry can name. */
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, 16u << 20, 1000), 0);
	CU_ASSERT_EQUAL_FATAL(all_areas(&f.r), 0);
	CU_ASSERT_EQUAL_FATAL(reader_add(&f.r, &rd), 0);
	fuzz(&f.r, &rd, 5000, res);
	fx_close(&f);
	fprintf(stderr, "(%u read, %u nothing, %u refused) ", res[0], res[1], res[2]);
	CU_ASSERT_EQUAL(res[3], 0);
	/* The steering works: all three outcomes happen. */
	CU_ASSERT(res[0] > 100);
	CU_ASSERT(res[1] > 100);
	CU_ASSERT(res[2] > 100);
}

static void test_corrupt(void)
{
	in_child(corrupt_body, "corrupt");
}

static void test_corrupt_fuzz(void)
{
	in_child(corrupt_fuzz_body, "corrupt_fuzz");
}

/* A member's cursor forged past the tail (another member wrote it) would make
 * producers overlook it: its own next release sets it back. One at or below
 * the tail it does not lower (that could be a slot's next holder). */
static void test_forged_cursor(void)
{
	struct fx f;
	struct ring_reader m;
	struct ring_area w;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &m), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w), 0);
	for (unsigned i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, 10, i, NULL, NULL), 0);
	CU_ASSERT_EQUAL(take(r, &m, 0, NULL), 1);
	atomic_store(&m.page->cursor, UINT64_MAX / 2);
	CU_ASSERT_EQUAL(take(r, &m, 1, NULL), 1);
	CU_ASSERT_EQUAL(published(r, &m), m.pos);
	/* Within the tail: not ours to lower. */
	uint64_t ahead = tail_of(r);
	atomic_store(&m.page->cursor, ahead);
	CU_ASSERT_EQUAL(take(r, &m, 2, NULL), 1);
	CU_ASSERT_EQUAL(published(r, &m), ahead);
	fx_close(&f);
}

/* Put record `key` and read it back: what one member keeping up does. */
static int take_after_put(struct ring *r, struct ring_area *w, struct ring_reader *m,
			  unsigned key)
{
	int err = put(r, w, RING_EVENT_RESERVE, 10, key, NULL, NULL);
	return err ? err : take(r, m, key, NULL);
}

/* A tail more than a whole order past the slowest member is no honest
 * writer's doing: claims never overwrite for it. */
static void test_forged_tail(void)
{
	struct fx f;
	struct ring_reader m;
	struct ring_area w, d;
	struct ring_claim c;
	uint32_t blocker;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	const uint64_t slots = r->order_slots;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &m), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w), 0);
	ring_area_init(&d, RING_DAEMON_WRITER);
	for (unsigned i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, 10, i, NULL, NULL), 0);
	CU_ASSERT_EQUAL(take(r, &m, 0, NULL), 1);
	const uint64_t min = 1;

	const uint64_t forged[] = {min + slots + 1, min + 10 * slots, UINT64_MAX / 2,
				   UINT64_MAX - slots};
	/* With a member, a claim cannot tell a forged tail from a member that
	 * wrote its own cursor back: it names the member (-EAGAIN) and claims
	 * nothing; the node judges the tail (registry_tick). Without one, the
	 * tail is forged: -EBADMSG. */
	for (size_t i = 0; i < ARRAY_SIZE(forged); i++) {
		atomic_store(&r->hdr->tail, forged[i]);
		CU_ASSERT_EQUAL(ring_claim(r, &w, 10, RING_EVENT_RESERVE, TRIES, &c, &blocker),
				-EAGAIN);
		CU_ASSERT_EQUAL(blocker, m.slot);
		CU_ASSERT_EQUAL(ring_claim(r, &d, 10, 0, TRIES, &c, &blocker), -EAGAIN);
		CU_ASSERT_EQUAL(tail_of(r), forged[i]);
		CU_ASSERT_EQUAL(atomic_load(&r->writers[w.writer].claim_pos), RING_NO_CLAIM);
	}
	/* What the node looks at to tell: the member's position is not lapped
	 * and no writer claims a lap past it, so the tail is forged. */
	atomic_store(&r->hdr->tail, forged[0]);
	CU_ASSERT_TRUE(ring_tail_forged(r, min));
	atomic_store(&r->writers[w.writer].claim_won, min + slots);
	CU_ASSERT_FALSE(ring_tail_forged(r, min)); /* a claim a lap on: the member lies */
	atomic_store(&r->writers[w.writer].claim_won, RING_NO_CLAIM);
	/* A whole order past it is what the daemon's reserve can reach
	 * honestly: full, not forged. */
	atomic_store(&r->hdr->tail, min + slots);
	CU_ASSERT_EQUAL(ring_claim(r, &w, 10, RING_EVENT_RESERVE, TRIES, &c, &blocker), -EAGAIN);
	CU_ASSERT_EQUAL(blocker, m.slot);
	CU_ASSERT_EQUAL(ring_claim(r, &d, 10, 0, TRIES, &c, &blocker), -EAGAIN);
	CU_ASSERT_EQUAL(blocker, m.slot);

	atomic_store(&r->hdr->tail, 3);
	CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, 10, 3, NULL, NULL), 0);
	for (unsigned i = 1; i < 4; i++)
		CU_ASSERT_EQUAL(take(r, &m, i, NULL), 1);

	/* The other way round: a member that writes its own cursor a lap
	 * back (its page is its own) is a laggard, not a forged ring. Every
	 * claim says -EAGAIN and names it, so senders time it and the node
	 * evicts it; nothing calls the group corrupt. */
	for (unsigned i = 4; i < slots + 8; i++)
		CU_ASSERT_EQUAL_FATAL(take_after_put(r, &w, &m, i), 1);
	atomic_store(&m.page->cursor, 2);
	/* The cached bound still allows a claim: the liar is overrun, which
	 * hurts only it (its next read finds the order lapped it). */
	CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, 10, 0, NULL, NULL), 0);
	/* Where the bound gives no room, the claim looks at the members. */
	atomic_store(&r->hdr->cached_min, 2);
	CU_ASSERT_EQUAL(ring_claim(r, &w, 10, RING_EVENT_RESERVE, TRIES, &c, &blocker), -EAGAIN);
	CU_ASSERT_EQUAL(blocker, m.slot);
	CU_ASSERT_EQUAL(ring_claim(r, &d, 10, 0, TRIES, &c, &blocker), -EAGAIN);
	CU_ASSERT_EQUAL(blocker, m.slot);
	CU_ASSERT_EQUAL(ring_state_error(r), 0);
	fx_close(&f);
}

/*
 * A sender rewinds the tail into a gap it made: its honest peer's later
 * claims get earlier positions than its earlier ones. Every record is
 * honest and at its own position, so only claim order can tell: the reader
 * takes the one read first as it comes and refuses the record out of its
 * writer's order (-EBADMSG), never delivering it after a later one. A
 * reader that goes back (a node's stream sending again) reads again.
 */
static void test_rewound_tail(void)
{
	struct fx f;
	struct ring_reader m;
	struct ring_area w;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &m), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w), 0);
	uint64_t t = tail_of(r);
	CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, 10, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(take(r, &m, 0, NULL), 1);
	/* A gap of two positions, the peer's keys 1 and 2 past it ... */
	atomic_store(&r->hdr->tail, t + 3);
	CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, 10, 1, NULL, NULL), 0);
	CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, 10, 2, NULL, NULL), 0);
	/* ... then the tail back into the gap: keys 3 and 4 fill it. */
	atomic_store(&r->hdr->tail, t + 1);
	CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, 10, 3, NULL, NULL), 0);
	CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, 10, 4, NULL, NULL), 0);
	CU_ASSERT_EQUAL(tail_of(r), t + 3);
	atomic_store(&r->hdr->tail, t + 5);
	CU_ASSERT_EQUAL(take(r, &m, 3, NULL), 1);
	struct ring_view v;
	CU_ASSERT_EQUAL(take(r, &m, 4, &v), 1);
	CU_ASSERT_EQUAL(v.pos, t + 2);
	/* Key 1, claimed before 3 and 4, is after them in the order. */
	CU_ASSERT_EQUAL(take(r, &m, 1, NULL), -EBADMSG);
	CU_ASSERT_EQUAL(m.pos, t + 3);
	/* Read again from an earlier position, the same records agree. */
	m.pos = t + 1;
	CU_ASSERT_EQUAL(take(r, &m, 3, NULL), 1);
	CU_ASSERT_EQUAL(take(r, &m, 4, NULL), 1);
	/* A fresh reader that starts past the gap takes 1 and 2, in order,
	 * and then refuses nothing it has not seen out of order. */
	struct ring_reader late;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &late), 0);
	late.pos = t + 3;
	CU_ASSERT_EQUAL(take(r, &late, 1, NULL), 1);
	CU_ASSERT_EQUAL(take(r, &late, 2, NULL), 1);
	CU_ASSERT_EQUAL(ring_read(r, &late, &v), 0);
	fx_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Sleep and wake                                                           */

struct sleeper {
	struct ring *rings[2];
	struct ring_mpage *pages[2]; /* the sleeper's member page in each */
	unsigned nrings;
	struct ring_reader *rd;
	int64_t timeout;
	_Atomic int parked;
	int wait_ret;
	int read_ret;
};

static void *sleeper_main(void *p)
{
	struct sleeper *sl = p;
	struct ring_sleep *s = calloc(1, sizeof(*s));
	struct ring_view v;
	if (!s) {
		sl->wait_ret = -ENOMEM;
		return NULL;
	}
	for (unsigned i = 0; i < sl->nrings; i++)
	{
		s->rings[i] = sl->rings[i];
		s->pages[i] = sl->pages[i];
	}
	s->n = sl->nrings;
	ring_sleep_begin(s);
	/* The re-check after announcing: nothing there yet. */
	sl->read_ret = ring_read(sl->rings[0], sl->rd, &v);
	atomic_store(&sl->parked, 1);
	if (sl->read_ret == 0)
		sl->wait_ret = ring_sleep_wait(s, sl->timeout);
	ring_sleep_end(s);
	sl->read_ret = ring_read(sl->rings[0], sl->rd, &v);
	free(s);
	return NULL;
}

/* Until the other thread has announced its sleep. */
static void wait_flag(_Atomic int *flag)
{
	while (!atomic_load(flag))
		sched_yield();
	/* Let it reach the futex; a wake before that must also work, so
	 * this delay only makes the interesting case the likely one. */
	nanosleep(&(struct timespec){.tv_nsec = 20 * MS}, NULL);
}

/* A lost wake shows as the sleeper's (long) timeout: -ETIMEDOUT. */
static void test_sleep_wake(void)
{
	struct fx f;
	struct ring_reader rd;
	struct ring_sleep s = {.n = 1};
	struct ring_area w;
	pthread_t t;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w), 0);
	s.rings[0] = r;
	s.pages[0] = rd.page;

	/* No sleeper: a commit does not touch the wake word. */
	uint32_t seq0 = atomic_load(&r->hdr->wake_seq);
	CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, 10, 0, NULL, NULL), 0);
	ring_wake(r);
	CU_ASSERT_EQUAL(atomic_load(&r->hdr->wake_seq), seq0);
	CU_ASSERT_EQUAL(take(r, &rd, 0, NULL), 1);

	/* Nobody commits: the wait ends by its timeout. */
	ring_sleep_begin(&s);
	CU_ASSERT_EQUAL(atomic_load(&rd.page->sleeping), 1);
	CU_ASSERT_EQUAL(ring_sleep_wait(&s, 10 * MS), -ETIMEDOUT);
	ring_sleep_end(&s);
	CU_ASSERT_EQUAL(atomic_load(&rd.page->sleeping), 0);

	/* A commit between the announcement and the wait is not lost. */
	ring_sleep_begin(&s);
	CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, 10, 1, NULL, NULL), 0);
	ring_wake(r);
	CU_ASSERT_NOT_EQUAL(atomic_load(&r->hdr->wake_seq), seq0);
	CU_ASSERT_EQUAL(ring_sleep_wait(&s, 10000 * MS), 0);
	ring_sleep_end(&s);
	CU_ASSERT_EQUAL(take(r, &rd, 1, NULL), 1);

	/* A parked reader in another thread is woken by a commit. */
	struct sleeper sl = {.rings = {r}, .pages = {rd.page}, .nrings = 1, .rd = &rd, .timeout = 10000 * MS};
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, sleeper_main, &sl), 0);
	wait_flag(&sl.parked);
	CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, 10, 2, NULL, NULL), 0);
	ring_wake(r);
	join_ok(t);
	CU_ASSERT_EQUAL(sl.wait_ret, 0);
	CU_ASSERT_EQUAL(sl.read_ret, 1);
	CU_ASSERT_EQUAL(atomic_load(&rd.page->sleeping), 0);
	CU_ASSERT_EQUAL(take(r, &rd, 2, NULL), 1);

	/* And by its own eviction, which it then learns from ring_read. */
	struct sleeper ev = {.rings = {r}, .pages = {rd.page}, .nrings = 1, .rd = &rd, .timeout = 10000 * MS};
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, sleeper_main, &ev), 0);
	wait_flag(&ev.parked);
	CU_ASSERT_TRUE(ring_member_evict(r, rd.slot, rd.state_word));
	join_ok(t);
	CU_ASSERT_EQUAL(ev.wait_ret, 0);
	CU_ASSERT_EQUAL(ev.read_ret, -ECONNRESET);
	fx_close(&f);
}

/* Several rings at once go through futex_waitv. */
static void test_sleep_many(void)
{
	struct fx f1, f2;
	struct ring_reader r1, r2;
	struct ring_area w;
	pthread_t t;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f1, RING_MIN_BYTES, 1000), 0);
	CU_ASSERT_EQUAL_FATAL(fx_open(&f2, RING_MIN_BYTES, 1000), 0);
	CU_ASSERT_EQUAL_FATAL(reader_add(&f1.r, &r1), 0);
	CU_ASSERT_EQUAL_FATAL(reader_add(&f2.r, &r2), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(&f2.r, &w), 0);

	struct ring_sleep *s = calloc(1, sizeof(*s));
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	s->rings[0] = &f1.r;
	s->rings[1] = &f2.r;
	s->pages[0] = r1.page;
	s->pages[1] = r2.page;
	s->n = 2;
	ring_sleep_begin(s);
	CU_ASSERT_EQUAL(ring_sleep_wait(s, 10 * MS), -ETIMEDOUT);
	ring_sleep_end(s);
	free(s);

	/* The sleeper reads ring 1 after waking; the commit goes to ring 2,
	 * so only the wake itself can have ended its wait. */
	struct sleeper sl = {.rings = {&f1.r, &f2.r}, .pages = {r1.page, r2.page}, .nrings = 2,
			     .rd = &r1,
			     .timeout = 10000 * MS};
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, sleeper_main, &sl), 0);
	wait_flag(&sl.parked);
	CU_ASSERT_EQUAL(put(&f2.r, &w, RING_EVENT_RESERVE, 10, 0, NULL, NULL), 0);
	ring_wake(&f2.r);
	join_ok(t);
	CU_ASSERT_EQUAL(sl.wait_ret, 0);
	CU_ASSERT_EQUAL(sl.read_ret, 0);
	CU_ASSERT_EQUAL(take(&f2.r, &r2, 0, NULL), 1);
	CU_ASSERT_EQUAL(atomic_load(&r1.page->sleeping), 0);
	CU_ASSERT_EQUAL(atomic_load(&r2.page->sleeping), 0);
	fx_close(&f1);
	fx_close(&f2);
}

/* A producer's park on a member: it asks to be woken at an eighth of the
 * member's backlog, and counts itself out again. */
static void test_wait_room(void)
{
	struct fx f;
	struct ring_reader m;
	struct ring_area w;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &m), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w), 0);
	for (unsigned i = 0; i < 64; i++)
		CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, 0, i, NULL, NULL), 0);
	struct ring_mwait *mm = &r->mwait[m.slot];
	CU_ASSERT_EQUAL(atomic_load(&mm->wake_at), UINT64_MAX);
	/* Nobody reads: the wait times out, still 0. */
	CU_ASSERT_EQUAL(ring_wait_room(r, m.slot, 0, 1 * MS), 0);
	CU_ASSERT_EQUAL(atomic_load(&mm->waiters), 0);
	CU_ASSERT_EQUAL(atomic_load(&mm->wake_at), 64 / RING_ROOM_BATCH);
	/* A lower threshold from another producer wins; a higher does not. */
	CU_ASSERT_EQUAL(ring_wait_room(r, m.slot, 7, 1 * MS), 0);
	CU_ASSERT_EQUAL(atomic_load(&mm->wake_at), 64 / RING_ROOM_BATCH);
	/* The member moved on since the caller looked: no wait at all, and
	 * the count is back to 0. */
	CU_ASSERT_EQUAL(take(r, &m, 0, NULL), 1);
	CU_ASSERT_EQUAL(ring_wait_room(r, m.slot, 0, 1 * MS), 0);
	CU_ASSERT_EQUAL(atomic_load(&mm->waiters), 0);
	fx_close(&f);
}

/* ------------------------------------------------------------------------ */

struct test {
	const char *name;
	CU_TestFunc fn;
};

static const struct test map_tests[] = {
	{"check_sizes", test_check_sizes},
	{"create_map", test_create_map},
	{"map_validate", test_map_validate},
	{"map_short_file", test_map_short_file},
	{NULL, NULL},
};

static const struct test path_tests[] = {
	{"round_trip", test_round_trip},
	{"area_wrap", test_area_wrap},
	{"full", test_full},
	{"area_vs_order", test_area_vs_order},
	{"no_member", test_no_member},
	{"abort", test_abort},
	{NULL, NULL},
};

static const struct test decide_tests[] = {
	{"cancel_at", test_cancel_at},
	{"cancel_race", test_cancel_race},
	{"stuck_writer", test_stuck_writer},
	{"lapped_writer", test_lapped_writer},
	{NULL, NULL},
};

static const struct test order_tests[] = {
	{"threads", test_threads},
	{"processes", test_processes},
	{NULL, NULL},
};

static const struct test member_tests[] = {
	{"join_race", test_join_race},
	{"evict", test_evict},
	{"writer_reuse", test_writer_reuse},
	{"seal", test_seal},
	{NULL, NULL},
};

/* Whether [off, off + len) of fd holds `byte` at its first and last byte. */
static bool holds(int fd, uint64_t off, uint64_t len, char byte)
{
	char a = 0, b = 0;
	return pread(fd, &a, 1, (off_t)off) == 1 && pread(fd, &b, 1, (off_t)(off + len - 1)) == 1 &&
	       a == byte && b == byte;
}

/*
 * The audit of shelves: 40 ranges, every other one and one more given back
 * (the table compacts past half), then whoever holds the fd fills every range, every
 * gap and far past them. The audit punches all but the ranges not given
 * back, whose bytes stay; a shelf within its ranges is left alone.
 */
static void test_shelf_audit(void)
{
	enum { N = 40, LEN = 2 * RING_PAGE };
	struct shelf *s = NULL;
	struct ring_file f[N];
	for (int i = 0; i < N; i++)
		CU_ASSERT_EQUAL_FATAL(shelf_take(&s, "test:audit", LEN, &f[i]), 0);
	int fd = dup(f[0].fd);
	CU_ASSERT_FATAL(fd >= 0);
	uint64_t first = f[0].off, end = f[N - 1].off + LEN;
	for (int i = 1; i < N; i += 2)
		ring_file_release(&f[i], LEN);
	ring_file_release(&f[2], LEN); /* the 21st of 40: the table compacts */
	static char buf[LEN];
	memset(buf, 0x33, sizeof(buf));
	/* Within what the live ranges may hold: nothing goes. */
	CU_ASSERT_EQUAL(pwrite(fd, buf, LEN, (off_t)f[0].off), LEN);
	CU_ASSERT_EQUAL(shelf_audit(64), 0);
	CU_ASSERT(holds(fd, f[0].off, LEN, 0x33));
	for (uint64_t at = first; at < end; at += LEN)
		CU_ASSERT_EQUAL(pwrite(fd, buf, LEN, (off_t)at), LEN);
	CU_ASSERT_EQUAL(pwrite(fd, buf, LEN, (off_t)(SHELF_BYTES - LEN)), LEN);
	CU_ASSERT_EQUAL(pwrite(fd, buf, LEN, (off_t)(end + (1ull << 30))), LEN);
	/* The 21 given back and the two far writes. */
	CU_ASSERT_EQUAL(shelf_audit(64), (uint64_t)(N / 2 + 3) * LEN);
	for (int i = 0; i < N; i++)
		CU_ASSERT(holds(fd, first + (uint64_t)i * LEN, LEN, i % 2 || i == 2 ? 0 : 0x33));
	CU_ASSERT(holds(fd, SHELF_BYTES - LEN, LEN, 0));
	for (int i = 0; i < N; i += 2)
		if (i != 2)
			ring_file_release(&f[i], LEN);
	shelf_drop(&s);
	close(fd);
}

/*
 * Bells: a shelf keeps its first RING_BELL_BYTES out of every range and
 * the audit leaves what is written there; a commit rings the bell of a
 * sleeping member whose page names a token (the daemon's bell for it, or
 * the producer's own at the page's key) instead of the wake word, and the
 * newest hint is not repeated.
 */
static void test_bells(void)
{
	struct shelf *sh = NULL;
	struct ring_file a;
	CU_ASSERT_EQUAL_FATAL(shelf_take(&sh, "test:bells", RING_PAGE, &a), 0);
	CU_ASSERT_EQUAL(a.off, RING_BELL_BYTES);
	struct ring_bell *own = ring_file_bells(&a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(own);
	atomic_store(&own[5].seq, 9);
	CU_ASSERT_EQUAL(shelf_audit(64), 0);
	CU_ASSERT_EQUAL(atomic_load(&own[5].seq), 9);
	ring_file_release(&a, RING_PAGE);
	shelf_drop(&sh);

	struct fx f;
	struct ring_reader rd, quiet;
	struct ring_area w;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &quiet), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w), 0);
	struct ring_bell *db = r->pages->bell[rd.slot];
	CU_ASSERT_PTR_NOT_NULL_FATAL(db);
	/* The daemon's: the member's shelf of pages' daemon bell. */
	CU_ASSERT_PTR_EQUAL(db, shelf_bells(own_shelf) + RING_BELL_DAEMON);
	atomic_store(&rd.page->bell_token, 7);
	atomic_store(&rd.page->sleeping, 1);
	atomic_store(&quiet.page->bell_token, 8); /* on bells, awake */
	uint32_t seq0 = atomic_load(&r->hdr->wake_seq), b0 = atomic_load(&db->seq);
	uint32_t h0 = atomic_load(&db->head);
	CU_ASSERT_EQUAL(put(r, &w, RING_EVENT_RESERVE, 10, 0, NULL, NULL), 0);
	ring_wake(r);
	CU_ASSERT_EQUAL(atomic_load(&r->hdr->wake_seq), seq0);
	CU_ASSERT_EQUAL(atomic_load(&db->seq), b0 + 1);
	CU_ASSERT_EQUAL(atomic_load(&db->head), h0 + 1);
	CU_ASSERT_EQUAL(atomic_load(&db->hint[h0 % RING_BELL_HINTS]), 7);
	/* Again: rung, the hint not repeated. */
	ring_wake(r);
	CU_ASSERT_EQUAL(atomic_load(&db->seq), b0 + 2);
	CU_ASSERT_EQUAL(atomic_load(&db->head), h0 + 1);
	/* A sleeper without a token: the wake word too. */
	atomic_store(&quiet.page->bell_token, 0);
	atomic_store(&quiet.page->sleeping, 1);
	ring_wake(r);
	CU_ASSERT_NOT_EQUAL(atomic_load(&r->hdr->wake_seq), seq0);
	atomic_store(&quiet.page->sleeping, 0);
	atomic_store(&quiet.page->bell_token, 8);

	/* A producer rings its own shelf's bell at the member's key. A
	 * scribbled head only picks another hint slot. */
	struct ring snd;
	CU_ASSERT_EQUAL_FATAL(fx_map_sender(&f, &snd), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(snd.pages);
	adopt_pages(&snd, r);
	snd.pages->synced = true;
	static struct ring_bell mine[RING_BELL_SLOTS];
	snd.bells = mine;
	atomic_store(&rd.page->bell_key, RING_BELL_SLOTS + 3);
	atomic_store(&mine[3].head, UINT32_MAX);
	seq0 = atomic_load(&r->hdr->wake_seq);
	ring_wake(&snd);
	CU_ASSERT_EQUAL(atomic_load(&mine[3].seq), 1);
	CU_ASSERT_EQUAL(atomic_load(&mine[3].head), 0);
	CU_ASSERT_EQUAL(atomic_load(&mine[3].hint[UINT32_MAX % RING_BELL_HINTS]), 7);
	CU_ASSERT_EQUAL(atomic_load(&r->hdr->wake_seq), seq0);
	/* Everyone on bells, asleep or not: their own eviction, say. */
	atomic_store(&rd.page->sleeping, 0);
	uint32_t q0 = atomic_load(&r->pages->bell[quiet.slot]->seq);
	ring_wake_every(r);
	CU_ASSERT(atomic_load(&r->pages->bell[quiet.slot]->seq) != q0);
	ring_unmap(&snd);
	fx_close(&f);
}

static const struct test hostile_tests[] = {
	{"corrupt", test_corrupt},
	{"corrupt_fuzz", test_corrupt_fuzz},
	{"forged_tail", test_forged_tail},
	{"forged_cursor", test_forged_cursor},
	{"rewound_tail", test_rewound_tail},
	{"shelf_audit", test_shelf_audit},
	{"bells", test_bells},
	{NULL, NULL},
};

static const struct test wait_tests[] = {
	{"sleep_wake", test_sleep_wake},
	{"sleep_many", test_sleep_many},
	{"wait_room", test_wait_room},
	{NULL, NULL},
};

static const struct {
	const char *name;
	const struct test *tests;
} suites[] = {
	{"map", map_tests},       {"path", path_tests},       {"decide", decide_tests},
	{"order", order_tests},   {"members", member_tests},  {"hostile", hostile_tests},
	{"wait", wait_tests},
};

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	for (size_t i = 0; i < ARRAY_SIZE(suites); i++) {
		CU_pSuite s = CU_add_suite(suites[i].name, NULL, NULL);
		if (!s)
			return 2;
		for (const struct test *t = suites[i].tests; t->name; t++)
			if (!CU_add_test(s, t->name, t->fn))
				return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	/* Meson reads the exit status, not CUnit's summary. */
	unsigned failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}

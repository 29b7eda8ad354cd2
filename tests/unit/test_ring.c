// SPDX-License-Identifier: MIT
/*
 * Unit tests of the group ring (lib/ring): layout validation, claim/commit/
 * read, wrap-around, back-pressure and the event reserve, total order under
 * concurrent producers (threads and processes), eviction, hostile records,
 * and the futex sleep/wake paths.
 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
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
		close(f->dfd);
		close(f->cfd);
		return err;
	}
	/* The daemon owns writer slot 0 without allocating it. */
	atomic_store(&f->r.writers[RING_DAEMON_WRITER].pid, getpid());
	return 0;
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
	int err = ring_member_add(r, getpid(), &rd->slot, &rd->state_word, &cur);
	rd->pos = cur;
	return err;
}

static int writer_add(struct ring *r, uint32_t *w)
{
	return ring_writer_alloc(r, getpid(), w);
}

/* A payload every byte of which depends on the key and the offset, so a
 * record read from the wrong place or half overwritten does not match. */
static void fill(void *p, uint32_t len, uint64_t key)
{
	uint8_t *b = p;
	for (uint32_t i = 0; i < len; i++)
		b[i] = (uint8_t)(key * 131u + i * 7u + (i >> 8) + (key >> 8));
}

static bool matches(const void *p, uint32_t len, uint64_t key)
{
	const uint8_t *b = p;
	for (uint32_t i = 0; i < len; i++)
		if (b[i] != (uint8_t)(key * 131u + i * 7u + (i >> 8) + (key >> 8)))
			return false;
	return true;
}

static int put(struct ring *r, uint32_t writer, uint32_t reserve, uint32_t len, uint64_t key,
	       struct ring_claim *out, uint32_t *blocker)
{
	struct ring_claim c;
	uint32_t b = UINT32_MAX;
	int err = ring_claim(r, writer, len, reserve, &c, &b);
	if (blocker)
		*blocker = b;
	if (err)
		return err;
	fill(c.payload, len, key);
	ring_commit(r, &c, RING_REC_MSG, 0, (int32_t)getpid(), 0);
	if (out)
		*out = c;
	return 0;
}

/* Read one record, check its payload against `key`, release it. */
static int take(struct ring *r, struct ring_reader *rd, uint64_t key, struct ring_view *out)
{
	struct ring_view v;
	int n = ring_read(r, rd, &v);
	if (n != 1)
		return n;
	if (!matches(v.payload, v.len, key))
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

static struct ring_rec *rec_at(struct ring *r, uint64_t pos)
{
	return (struct ring_rec *)(r->data + (pos & r->mask));
}

/* Write a record header by hand, as a buggy or hostile writer could. */
static void forge(struct ring *r, uint64_t pos, uint16_t kind, uint32_t len, uint64_t seq,
		  uint64_t commit)
{
	struct ring_rec *h = rec_at(r, pos);
	h->len = len;
	h->kind = kind;
	h->flags = 0;
	h->seq = seq;
	h->from_pid = 1;
	h->from_node = 0;
	atomic_store(&h->commit, commit);
}

static void join_ok(pthread_t t)
{
	CU_ASSERT_EQUAL(pthread_join(t, NULL), 0);
}

/* ------------------------------------------------------------------------ */
/* Sizes, create, map                                                       */

static void test_check_sizes(void)
{
	/* The largest max_msg whose record fits twice in what senders may fill. */
	uint64_t room = RING_MIN_BYTES - RING_EVENT_RESERVE;
	uint64_t top = room / 2 - sizeof(struct ring_rec);

	CU_ASSERT_EQUAL(ring_check_sizes(RING_MIN_BYTES, 1), 0);
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MIN_BYTES, top), 0);
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MIN_BYTES, top + 1), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MIN_BYTES, 0), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MIN_BYTES / 2, 1), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MIN_BYTES - 1, 1), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(0, 1), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MIN_BYTES + RING_PAGE, 1), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(3 * RING_MIN_BYTES, 1), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(RING_DEFAULT_BYTES, RING_DEFAULT_MAX_MSG), 0);
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MAX_BYTES, RING_DEFAULT_MAX_MSG), 0);
	CU_ASSERT_EQUAL(ring_check_sizes((uint64_t)RING_MAX_BYTES * 2, 1), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(UINT64_MAX, 1), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(1ull << 63, 1), -EINVAL);
	/* max_msg is carried as u32 in the header. */
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MAX_BYTES, (uint64_t)UINT32_MAX + 1), -EINVAL);
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MAX_BYTES, UINT64_MAX), -EINVAL);
	/* The capacity check comes before max_msg: a huge max_msg must not
	 * wrap the doubling in the size arithmetic into a pass. */
	CU_ASSERT_EQUAL(ring_check_sizes(RING_MAX_BYTES, UINT32_MAX), -EINVAL);
}

static void test_create_map(void)
{
	int dfd, cfd;
	struct stat st;

	CU_ASSERT_EQUAL(ring_create(RING_MIN_BYTES - 1, 100, 0, "x", &dfd, &cfd), -EINVAL);
	CU_ASSERT_EQUAL(ring_create(RING_MIN_BYTES, 0, 0, "x", &dfd, &cfd), -EINVAL);

	/* A long name must only be cut in the memfd label. */
	char name[300];
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = 0;
	CU_ASSERT_EQUAL_FATAL(ring_create(RING_MIN_BYTES, 1000, 250, name, &dfd, &cfd), 0);
	CU_ASSERT(fstat(dfd, &st) == 0 && (uint64_t)st.st_size == RING_DATA_OFF + RING_MIN_BYTES);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0400);
	CU_ASSERT(fstat(cfd, &st) == 0 && st.st_size == RING_CURSOR_BYTES);
	CU_ASSERT(fcntl(dfd, F_GETFD) & FD_CLOEXEC);
	/* Sealed: nobody can resize the ring under its mappers. */
	CU_ASSERT(ftruncate(dfd, RING_PAGE) < 0 && errno == EPERM);
	CU_ASSERT(ftruncate(cfd, 1 << 20) < 0 && errno == EPERM);

	struct ring r;
	CU_ASSERT_EQUAL_FATAL(ring_map(&r, dfd, cfd, true), 0);
	CU_ASSERT_EQUAL(r.capacity, RING_MIN_BYTES);
	CU_ASSERT_EQUAL(r.mask, RING_MIN_BYTES - 1);
	CU_ASSERT_EQUAL(r.max_msg, 1000);
	CU_ASSERT_EQUAL(r.stall_ms, 250);
	CU_ASSERT(r.writable);
	CU_ASSERT_EQUAL(r.hdr->magic, RING_DATA_MAGIC);
	CU_ASSERT_EQUAL(atomic_load(&r.hdr->tail), 0);
	CU_ASSERT_EQUAL(r.chdr->magic, RING_CURSOR_MAGIC);
	CU_ASSERT_EQUAL(atomic_load(&r.chdr->slot_hi), 0);
	CU_ASSERT_EQUAL(r.data, (uint8_t *)r.hdr + RING_DATA_OFF);
	CU_ASSERT_EQUAL(ring_fill(&r), 0);
	CU_ASSERT_FALSE(ring_is_down(&r));

	/* A read-only map shares the same memory but cannot claim. */
	struct ring ro;
	struct ring_claim c;
	CU_ASSERT_EQUAL_FATAL(ring_map(&ro, dfd, cfd, false), 0);
	CU_ASSERT_FALSE(ro.writable);
	CU_ASSERT_EQUAL(ring_claim(&ro, 1, 10, RING_EVENT_RESERVE, &c, NULL), -EBADF);
	CU_ASSERT_EQUAL(ring_claim(&r, RING_WRITER_SLOTS, 10, RING_EVENT_RESERVE, &c, NULL),
			-EBADF);
	ring_set_down(&r);
	CU_ASSERT(ring_is_down(&ro));
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
	struct ring_cursor_hdr *ch = f.r.chdr;

	/* Each header field a mapper trusts, broken one at a time. */
	struct {
		uint32_t *field;
		uint32_t bad;
	} u32s[] = {
		{&h->magic, RING_DATA_MAGIC ^ 1},
		{&h->version, RING_VERSION + 1},
		{&h->hdr_bytes, RING_PAGE},
		{&h->writer_slots, RING_WRITER_SLOTS + 1},
		{&h->max_msg, 0},
		{&h->max_msg, RING_MIN_BYTES},
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
	uint64_t caps[] = {RING_MIN_BYTES + 64, RING_MIN_BYTES / 2, 2 * RING_MIN_BYTES, 0};
	for (size_t i = 0; i < ARRAY_SIZE(caps); i++) {
		h->capacity = caps[i];
		CU_ASSERT_EQUAL(ring_map(&m, f.dfd, f.cfd, false), -EBADMSG);
	}
	h->capacity = RING_MIN_BYTES;
	CU_ASSERT_EQUAL_FATAL(ring_map(&m, f.dfd, f.cfd, false), 0);
	ring_unmap(&m);

	/* A valid header on a file of the wrong size: mapping it would let
	 * the reader run off the end (SIGBUS) or miss part of the ring. */
	size_t dbytes = RING_DATA_OFF + RING_MIN_BYTES;
	size_t dsz[] = {dbytes - RING_PAGE, dbytes + RING_PAGE, RING_DATA_OFF};
	for (size_t i = 0; i < ARRAY_SIZE(dsz); i++) {
		int fd = memfd_like(f.dfd, dsz[i]);
		CU_ASSERT_FATAL(fd >= 0);
		CU_ASSERT_EQUAL(ring_map(&m, fd, f.cfd, false), -EBADMSG);
		close(fd);
	}
	size_t csz[] = {RING_CURSOR_BYTES - RING_PAGE, RING_CURSOR_BYTES + RING_PAGE, RING_PAGE};
	for (size_t i = 0; i < ARRAY_SIZE(csz); i++) {
		int fd = memfd_like(f.cfd, csz[i]);
		CU_ASSERT_FATAL(fd >= 0);
		CU_ASSERT_EQUAL(ring_map(&m, f.dfd, fd, false), -EBADMSG);
		close(fd);
	}
	/* Swapped fds are the wrong magic and the wrong size at once. */
	CU_ASSERT_EQUAL(ring_map(&m, f.cfd, f.dfd, false), -EBADMSG);
	CU_ASSERT(ring_map(&m, -1, f.cfd, false) < 0);
	fx_close(&f);
}

/*
 * A data fd shorter than the header page: ring_map must answer -EBADMSG, not
 * die of SIGBUS touching the header. Run in a child so a crash is a failure
 * of this test, not the end of the program.
 */
static void test_map_short_file(void)
{
	struct fx f;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	size_t sizes[] = {0, 64, RING_PAGE - 1};
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
				fprintf(stderr, "\n  ring_map(%s fd of %zu bytes) died of signal %d\n",
					which ? "cursor" : "data", sizes[i], WTERMSIG(status));
			CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
			close(fd);
		}
	}
	fx_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Claim, commit, read                                                      */

static void test_round_trip(void)
{
	struct fx f;
	struct ring_reader rd;
	struct ring_view v;
	struct ring_claim c;
	uint32_t w, blocker;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w), 0);
	CU_ASSERT_NOT_EQUAL(w, RING_DAEMON_WRITER);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[w].pid), getpid());

	CU_ASSERT_EQUAL(ring_read(r, &rd, &v), 0);
	CU_ASSERT_EQUAL_FATAL(ring_claim(r, w, 100, RING_EVENT_RESERVE, &c, &blocker), 0);
	/* The writer slot names the claim until it is committed. */
	CU_ASSERT_EQUAL(atomic_load(&r->writers[w].claim_pos), 0);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[w].claim_len), ring_rec_bytes(100));
	CU_ASSERT_EQUAL(c.pos, 0);
	CU_ASSERT_EQUAL(c.rec_pos, 0);
	CU_ASSERT_EQUAL(c.len, 100);
	CU_ASSERT_EQUAL(c.len_total, ring_rec_bytes(100));
	/* Claimed, not committed: nothing to read yet. */
	CU_ASSERT_EQUAL(ring_read(r, &rd, &v), 0);
	fill(c.payload, 100, 77);
	ring_commit(r, &c, RING_REC_MSG, RING_F_ESEND, 4242, 9);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[w].claim_pos), RING_NO_CLAIM);

	CU_ASSERT_EQUAL_FATAL(ring_read(r, &rd, &v), 1);
	CU_ASSERT_EQUAL(v.kind, RING_REC_MSG);
	CU_ASSERT_EQUAL(v.flags, RING_F_ESEND);
	CU_ASSERT_EQUAL(v.len, 100);
	CU_ASSERT_EQUAL(v.seq, 1);
	CU_ASSERT_EQUAL(v.from_pid, 4242);
	CU_ASSERT_EQUAL(v.from_node, 9);
	CU_ASSERT_EQUAL(v.pos, 0);
	CU_ASSERT_EQUAL(v.next_pos, ring_rec_bytes(100));
	CU_ASSERT(matches(v.payload, 100, 77));
	CU_ASSERT_EQUAL(ring_fill(r), ring_rec_bytes(100));
	ring_release(r, &rd, v.next_pos);
	CU_ASSERT_EQUAL(atomic_load(&r->members[rd.slot].cursor), v.next_pos);
	CU_ASSERT_EQUAL(ring_fill(r), 0);
	CU_ASSERT_EQUAL(ring_read(r, &rd, &v), 0);

	/* Zero-length records and event kinds travel too. */
	CU_ASSERT_EQUAL_FATAL(ring_claim(r, RING_DAEMON_WRITER, 0, 0, &c, NULL), 0);
	ring_commit(r, &c, RING_REC_JOINED, 0, 123, 0);
	CU_ASSERT_EQUAL_FATAL(ring_read(r, &rd, &v), 1);
	CU_ASSERT_EQUAL(v.kind, RING_REC_JOINED);
	CU_ASSERT_EQUAL(v.len, 0);
	CU_ASSERT_EQUAL(v.from_pid, 123);
	CU_ASSERT_EQUAL(v.seq, c.rec_pos / RING_ALIGN + 1);
	CU_ASSERT_EQUAL(v.pos, ring_rec_bytes(100));
	ring_release(r, &rd, v.next_pos);

	ring_writer_free(r, w);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[w].pid), 0);
	uint32_t gen = atomic_load(&r->writers[w].gen), w2;
	CU_ASSERT_EQUAL(writer_add(r, &w2), 0);
	CU_ASSERT_EQUAL(w2, w);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[w].gen), gen + 1);
	fx_close(&f);
}

/*
 * Many laps of a minimum-size ring with record sizes that do not divide it,
 * so the tail often lands too close to the end and a pad is needed.
 */
static void test_wrap(void)
{
	enum { MAXMSG = 3000, BATCH = 64 };
	struct fx f;
	struct ring_reader rd;
	uint32_t w;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, MAXMSG), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w), 0);

	rnd_state = 0x1234567;
	uint64_t next_key = 0, read_key = 0, last_seq = 0, pads = 0, bad = 0;
	struct ring_claim claims[BATCH];
	while (atomic_load(&r->hdr->tail) < 60 * r->capacity) {
		/* Fill as far as the reader lets us, then drain. */
		unsigned n = 0;
		while (n < BATCH) {
			uint32_t len = (uint32_t)(rnd() % (MAXMSG + 1));
			uint32_t blocker;
			int err = put(r, w, RING_EVENT_RESERVE, len, next_key, &claims[n], &blocker);
			if (err == -EAGAIN) {
				bad += blocker != rd.slot;
				break;
			}
			if (err) {
				bad++;
				break;
			}
			if (claims[n].rec_pos != claims[n].pos) {
				/* The pad filled exactly to the end of the area. */
				pads++;
				bad += (claims[n].rec_pos & r->mask) != 0;
			}
			next_key++;
			n++;
		}
		for (unsigned i = 0; i < n; i++, read_key++) {
			struct ring_view v;
			int got = take(r, &rd, read_key, &v);
			if (got != 1 || v.pos != claims[i].rec_pos || v.len != claims[i].len ||
			    v.seq <= last_seq || v.seq != v.pos / RING_ALIGN + 1) {
				bad++;
				break;
			}
			last_seq = v.seq;
		}
		struct ring_view v;
		bad += ring_read(r, &rd, &v) != 0;
		if (bad)
			break;
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(read_key, next_key);
	CU_ASSERT(pads > 10);
	CU_ASSERT(next_key > 2000);
	fx_close(&f);
}

static void test_full(void)
{
	/* 992 payload bytes make a 1024-byte record: 64 per lap, and the user
	 * limit (capacity - reserve) is exactly 60 of them. */
	enum { LEN = 1024 - sizeof(struct ring_rec), PER_LAP = RING_MIN_BYTES / 1024 };
	const unsigned user_max = (RING_MIN_BYTES - RING_EVENT_RESERVE) / 1024;
	struct fx f;
	struct ring_reader a, b;
	uint32_t w, blocker;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &a), 0);
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &b), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w), 0);

	unsigned sent = 0;
	while (put(r, w, RING_EVENT_RESERVE, LEN, sent, NULL, &blocker) == 0 && sent < PER_LAP)
		sent++;
	CU_ASSERT_EQUAL(sent, user_max);
	CU_ASSERT(blocker == a.slot || blocker == b.slot);
	CU_ASSERT_EQUAL(ring_fill(r), user_max * 1024);
	uint64_t tail = atomic_load(&r->hdr->tail);

	/* b catches up: now a alone holds the room. */
	for (unsigned i = 0; i < sent; i++)
		CU_ASSERT_EQUAL(take(r, &b, i, NULL), 1);
	blocker = UINT32_MAX;
	CU_ASSERT_EQUAL(put(r, w, RING_EVENT_RESERVE, LEN, sent, NULL, &blocker), -EAGAIN);
	CU_ASSERT_EQUAL(blocker, a.slot);
	/* A failed claim leaves the tail where it was. */
	CU_ASSERT_EQUAL(atomic_load(&r->hdr->tail), tail);
	/* Even the smallest record does not fit. */
	CU_ASSERT_EQUAL(put(r, w, RING_EVENT_RESERVE, 0, 0, NULL, NULL), -EAGAIN);

	/* Each record a reads makes room for exactly one more. */
	for (unsigned k = 0; k < 3 * PER_LAP; k++) {
		CU_ASSERT_EQUAL_FATAL(take(r, &a, k, NULL), 1);
		CU_ASSERT_EQUAL_FATAL(put(r, w, RING_EVENT_RESERVE, LEN, sent, NULL, NULL), 0);
		sent++;
		CU_ASSERT_EQUAL_FATAL(take(r, &b, sent - 1, NULL), 1);
		CU_ASSERT_EQUAL_FATAL(put(r, w, RING_EVENT_RESERVE, LEN, sent, NULL, &blocker),
				      -EAGAIN);
		CU_ASSERT_EQUAL_FATAL(blocker, a.slot);
	}
	/* a drains everything, still in order, and the ring is empty again. */
	for (unsigned k = 3 * PER_LAP; k < sent; k++)
		CU_ASSERT_EQUAL(take(r, &a, k, NULL), 1);
	CU_ASSERT_EQUAL(ring_fill(r), 0);
	CU_ASSERT_EQUAL(put(r, w, RING_EVENT_RESERVE, LEN, sent, NULL, NULL), 0);
	fx_close(&f);
}

static void test_reserve(void)
{
	enum { LEN = 1024 - sizeof(struct ring_rec) };
	const unsigned user_max = (RING_MIN_BYTES - RING_EVENT_RESERVE) / 1024;
	const unsigned daemon_max = RING_EVENT_RESERVE / 1024;
	struct fx f;
	struct ring_reader rd;
	uint32_t w;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w), 0);

	for (unsigned i = 0; i < user_max; i++)
		CU_ASSERT_EQUAL(put(r, w, RING_EVENT_RESERVE, LEN, i, NULL, NULL), 0);
	CU_ASSERT_EQUAL(put(r, w, RING_EVENT_RESERVE, 0, 0, NULL, NULL), -EAGAIN);
	/* The reserve is the daemon's, whatever writer slot a user names. */
	CU_ASSERT_EQUAL(put(r, RING_DAEMON_WRITER, RING_EVENT_RESERVE, 0, 0, NULL, NULL),
			-EAGAIN);
	for (unsigned i = 0; i < daemon_max; i++)
		CU_ASSERT_EQUAL(put(r, RING_DAEMON_WRITER, 0, LEN, user_max + i, NULL, NULL), 0);
	CU_ASSERT_EQUAL(atomic_load(&r->hdr->tail), r->capacity);
	/* Completely full: not even the daemon, not even 0 bytes. */
	CU_ASSERT_EQUAL(put(r, RING_DAEMON_WRITER, 0, 0, 0, NULL, NULL), -EAGAIN);
	CU_ASSERT_EQUAL(ring_fill(r), r->capacity);
	for (unsigned i = 0; i < user_max + daemon_max; i++)
		CU_ASSERT_EQUAL(take(r, &rd, i, NULL), 1);
	struct ring_view v;
	CU_ASSERT_EQUAL(ring_read(r, &rd, &v), 0);

	/* Partly full: a user may fill exactly up to the reserve, to the byte. */
	uint64_t base = atomic_load(&r->hdr->tail);
	CU_ASSERT_EQUAL(put(r, w, RING_EVENT_RESERVE, LEN, 0, NULL, NULL), 0);
	uint32_t smalls = 0;
	while (put(r, w, RING_EVENT_RESERVE, 0, 0, NULL, NULL) == 0)
		smalls++;
	CU_ASSERT_EQUAL(atomic_load(&r->hdr->tail) - base, r->capacity - RING_EVENT_RESERVE);
	CU_ASSERT_EQUAL(smalls, (r->capacity - RING_EVENT_RESERVE - 1024) / RING_ALIGN);
	fx_close(&f);
}

static void test_max_msg(void)
{
	/* The largest message a minimum ring allows, so two of them with a pad
	 * just fit: every wrap is the worst case. */
	const uint32_t max = (RING_MIN_BYTES - RING_EVENT_RESERVE) / 2 - sizeof(struct ring_rec);
	struct fx f;
	struct ring_reader rd;
	struct ring_claim c;
	uint32_t w;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, max), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w), 0);

	CU_ASSERT_EQUAL(ring_claim(r, w, max + 1, RING_EVENT_RESERVE, &c, NULL), -EMSGSIZE);
	CU_ASSERT_EQUAL(ring_claim(r, w, UINT32_MAX, RING_EVENT_RESERVE, &c, NULL), -EMSGSIZE);
	CU_ASSERT_EQUAL(ring_claim(r, RING_DAEMON_WRITER, max + 1, 0, &c, NULL), -EMSGSIZE);
	CU_ASSERT_EQUAL(atomic_load(&r->hdr->tail), 0);

	unsigned pads = 0;
	for (unsigned i = 0; i < 40; i++) {
		/* Alternate big and small so the big ones land at odd offsets. */
		uint32_t len = (i % 3 == 2) ? 100 : max;
		struct ring_claim got;
		struct ring_view v;
		CU_ASSERT_EQUAL_FATAL(put(r, w, RING_EVENT_RESERVE, len, i, &got, NULL), 0);
		pads += got.pos != got.rec_pos;
		CU_ASSERT_EQUAL_FATAL(take(r, &rd, i, &v), 1);
		CU_ASSERT_EQUAL(v.len, len);
		CU_ASSERT_EQUAL(v.pos, got.rec_pos);
	}
	CU_ASSERT(pads > 0);
	fx_close(&f);
}

static void test_abort(void)
{
	struct fx f;
	struct ring_reader rd;
	struct ring_claim a, b;
	struct ring_view v;
	uint32_t w1, w2;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 4000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w1), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w2), 0);

	/* An open claim holds back everything claimed after it. */
	CU_ASSERT_EQUAL_FATAL(ring_claim(r, w1, 500, RING_EVENT_RESERVE, &a, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(put(r, w2, RING_EVENT_RESERVE, 40, 2, &b, NULL), 0);
	CU_ASSERT_EQUAL(ring_read(r, &rd, &v), 0);
	ring_abort(r, &a);
	CU_ASSERT_EQUAL(atomic_load(&r->writers[w1].claim_pos), RING_NO_CLAIM);
	CU_ASSERT_EQUAL_FATAL(take(r, &rd, 2, &v), 1);
	CU_ASSERT_EQUAL(v.pos, b.rec_pos);
	CU_ASSERT_EQUAL(v.len, 40);
	CU_ASSERT_EQUAL(ring_read(r, &rd, &v), 0);

	/* Aborts of every size, also right after a wrap pad; readers skip
	 * them all and see only the committed records in between. */
	uint64_t key = 100, expect = 100;
	for (unsigned i = 0; i < 200; i++) {
		struct ring_claim c;
		CU_ASSERT_EQUAL_FATAL(ring_claim(r, w1, (i * 37) % 4001, RING_EVENT_RESERVE, &c,
						 NULL), 0);
		ring_abort(r, &c);
		CU_ASSERT_EQUAL_FATAL(put(r, w2, RING_EVENT_RESERVE, i * 11 % 300, key++, NULL,
					  NULL), 0);
		CU_ASSERT_EQUAL_FATAL(take(r, &rd, expect++, &v), 1);
		CU_ASSERT_EQUAL(v.len, i * 11 % 300);
	}
	CU_ASSERT_EQUAL(ring_read(r, &rd, &v), 0);
	/* The reader's published cursor stays at what it released: the
	 * trailing aborts are skipped in its private position only. */
	CU_ASSERT(atomic_load(&r->members[rd.slot].cursor) <= rd.pos);
	fx_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Many producers: total order                                              */

enum { NPROD = 4, NMSG = 20000, NREAD = 2, MT_MAXMSG = 1000 };

struct mt_msg {
	uint32_t tid;
	uint32_t n;
};

/* Shared by producer threads/processes and reader threads. */
struct mt {
	int dfd, cfd;
	struct ring r;
	uint32_t writer[NPROD];
	pid_t pid[NPROD];
	struct ring_reader rd[NREAD];
	uint32_t *seen[NREAD];
	unsigned count[NREAD];
	_Atomic int stop;
	_Atomic int errors;
	_Atomic int timeouts;
	_Atomic int bad_payload;
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

/* Produce NMSG messages as `tid`; returns 0 or the first error. A thread
 * passes `stop` to give up when the readers did; a process is killed. */
static int mt_produce(struct ring *r, uint32_t writer, uint32_t tid, _Atomic int *stop)
{
	for (uint32_t n = 0; n < NMSG; n++) {
		uint32_t len = mt_len(tid, n), blocker;
		struct ring_claim c;
		int err;
		while ((err = ring_claim(r, writer, len, RING_EVENT_RESERVE, &c, &blocker)) ==
		       -EAGAIN) {
			if (stop && atomic_load(stop))
				return -ECANCELED;
			if (blocker >= RING_MEMBER_SLOTS) {
				sched_yield();
				continue;
			}
			/* The reader may move between the failed claim and this
			 * load; the short timeout covers that window. */
			uint64_t cur = atomic_load(&r->members[blocker].cursor);
			ring_wait_room(r, blocker, cur, 10 * MS);
		}
		if (err)
			return err;
		struct mt_msg m = {.tid = tid, .n = n};
		memcpy(c.payload, &m, sizeof(m));
		fill((uint8_t *)c.payload + sizeof(m), len - (uint32_t)sizeof(m), mt_key(tid, n));
		ring_commit(r, &c, RING_REC_MSG, 0, (int32_t)getpid(), tid);
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
	if (mt_produce(&a->mt->r, a->mt->writer[a->idx], a->idx, &a->mt->stop))
		atomic_fetch_add(&a->mt->errors, 1);
	return NULL;
}

/* Check one record and note its (tid, n) in this reader's log. */
static void mt_note(struct mt *mt, unsigned k, const struct ring_view *v)
{
	struct mt_msg m;
	if (v->kind != RING_REC_MSG || v->len < sizeof(m)) {
		atomic_fetch_add(&mt->bad_payload, 1);
		return;
	}
	memcpy(&m, v->payload, sizeof(m));
	if (m.tid >= NPROD || m.n >= NMSG || v->len != mt_len(m.tid, m.n) ||
	    v->from_node != m.tid || (mt->pid[m.tid] && v->from_pid != mt->pid[m.tid]) ||
	    !matches((const uint8_t *)v->payload + sizeof(m), v->len - (uint32_t)sizeof(m),
		     mt_key(m.tid, m.n))) {
		atomic_fetch_add(&mt->bad_payload, 1);
		return;
	}
	if (mt->count[k] < NPROD * NMSG)
		mt->seen[k][mt->count[k]] = m.tid * NMSG + m.n;
	mt->count[k]++;
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
	struct ring *r = &mt->r;
	struct ring_reader *rd = &mt->rd[a->idx];
	struct ring_sleep *s = calloc(1, sizeof(*s));
	if (!s) {
		atomic_fetch_add(&mt->errors, 1);
		return NULL;
	}
	s->rings[0] = r;
	s->n = 1;
	while (mt->count[a->idx] < NPROD * NMSG && !atomic_load(&mt->stop)) {
		struct ring_view v;
		int n = ring_read(r, rd, &v);
		if (n == 0) {
			/* Announce, re-check, park: the protocol of wait.h. */
			ring_sleep_begin(s);
			n = ring_read(r, rd, &v);
			if (n == 0 && ring_sleep_wait(s, 3000 * MS) == -ETIMEDOUT &&
			    !atomic_load(&mt->stop)) {
				/* Producers were still running and wake after
				 * every commit: a 3 s sleep is a lost wake-up. */
				atomic_fetch_add(&mt->timeouts, 1);
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
			mt_note(mt, a->idx, &v);
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
	if (err)
		return err;
	for (unsigned i = 0; i < NREAD; i++) {
		if (reader_add(&mt->r, &mt->rd[i]))
			return -ENOSPC;
		mt->seen[i] = calloc(NPROD * NMSG, sizeof(uint32_t));
		if (!mt->seen[i])
			return -ENOMEM;
	}
	for (unsigned i = 0; i < NPROD; i++)
		if (writer_add(&mt->r, &mt->writer[i]))
			return -ENOSPC;
	return 0;
}

/* Every reader saw every message once, each producer's in its order, and
 * all readers the same sequence. */
static void mt_verify(struct mt *mt)
{
	CU_ASSERT_EQUAL(atomic_load(&mt->errors), 0);
	CU_ASSERT_EQUAL(atomic_load(&mt->bad_payload), 0);
	CU_ASSERT_EQUAL(atomic_load(&mt->bad_read), 0);
	CU_ASSERT_EQUAL(atomic_load(&mt->timeouts), 0);
	for (unsigned k = 0; k < NREAD; k++) {
		CU_ASSERT_EQUAL(mt->count[k], NPROD * NMSG);
		uint32_t next[NPROD] = {0};
		unsigned out_of_order = 0;
		for (unsigned i = 0; i < mt->count[k] && i < NPROD * NMSG; i++) {
			uint32_t tid = mt->seen[k][i] / NMSG, n = mt->seen[k][i] % NMSG;
			out_of_order += n != next[tid];
			next[tid] = n + 1;
		}
		CU_ASSERT_EQUAL(out_of_order, 0);
		for (unsigned t = 0; t < NPROD; t++)
			CU_ASSERT_EQUAL(next[t], NMSG);
	}
	CU_ASSERT(memcmp(mt->seen[0], mt->seen[1], NPROD * NMSG * sizeof(uint32_t)) == 0);
	/* The producers really interleaved: a run of one producer's messages
	 * for the whole test would make "total order" vacuous. */
	unsigned switches = 0;
	for (unsigned i = 1; i < NPROD * NMSG; i++)
		switches += mt->seen[0][i] / NMSG != mt->seen[0][i - 1] / NMSG;
	CU_ASSERT(switches >= NPROD - 1);
}

static void mt_teardown(struct mt *mt)
{
	for (unsigned i = 0; i < NREAD; i++)
		free(mt->seen[i]);
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
	/* The smallest ring: producers lap it about 200 times and keep
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
			/* A sender maps the fds it was handed, as a client does. */
			struct ring own;
			if (ring_map(&own, mt.dfd, mt.cfd, true))
				_exit(2);
			int err = mt_produce(&own, mt.writer[i], i, NULL);
			ring_unmap(&own);
			_exit(err ? 1 : 0);
		}
		mt.pid[i] = pid;
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
/* Membership: eviction, late joiners                                       */

static void test_evict(void)
{
	enum { LEN = 1024 - sizeof(struct ring_rec) };
	struct fx f;
	struct ring_reader a, b, old;
	struct ring_view v;
	uint32_t w, blocker;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &a), 0);
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &b), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w), 0);

	unsigned sent = 0;
	while (put(r, w, RING_EVENT_RESERVE, LEN, sent, NULL, &blocker) == 0)
		sent++;
	for (unsigned i = 0; i < sent; i++)
		CU_ASSERT_EQUAL(take(r, &b, i, NULL), 1);
	CU_ASSERT_EQUAL(put(r, w, RING_EVENT_RESERVE, LEN, sent, NULL, &blocker), -EAGAIN);
	CU_ASSERT_EQUAL_FATAL(blocker, a.slot);

	/* A stale state word (an earlier holder of the slot) evicts nobody. */
	uint32_t stale = RING_MEMBER_WORD(RING_GEN_OF(a.state_word) - 1, RING_MEMBER_ACTIVE);
	CU_ASSERT_FALSE(ring_member_evict(r, a.slot, stale));
	CU_ASSERT_FALSE(ring_member_evict(r, RING_MEMBER_SLOTS, a.state_word));
	CU_ASSERT_EQUAL(put(r, w, RING_EVENT_RESERVE, LEN, sent, NULL, NULL), -EAGAIN);

	uint32_t wake = atomic_load(&r->chdr->wake_seq);
	CU_ASSERT_TRUE(ring_member_evict(r, a.slot, a.state_word));
	CU_ASSERT_NOT_EQUAL(atomic_load(&r->chdr->wake_seq), wake);
	CU_ASSERT_FALSE(ring_member_evict(r, a.slot, a.state_word));
	CU_ASSERT_EQUAL(ring_read(r, &a, &v), -ECONNRESET);
	/* The evicted member no longer holds the room: only b limits now. */
	unsigned more = 0;
	while (put(r, w, RING_EVENT_RESERVE, LEN, sent + more, NULL, &blocker) == 0)
		more++;
	CU_ASSERT_EQUAL(more, sent);
	CU_ASSERT_EQUAL(blocker, b.slot);
	for (unsigned i = 0; i < more; i++)
		CU_ASSERT_EQUAL(take(r, &b, sent + i, NULL), 1);
	CU_ASSERT_EQUAL(ring_fill(r), 0);

	/* Removal frees the slot; a new holder gets a new generation and the
	 * old handle keeps failing. */
	ring_member_remove(r, a.slot);
	old = a;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &a), 0);
	CU_ASSERT_EQUAL(a.slot, old.slot);
	CU_ASSERT_NOT_EQUAL(a.state_word, old.state_word);
	CU_ASSERT_EQUAL(ring_read(r, &old, &v), -ECONNRESET);
	CU_ASSERT_FALSE(ring_member_evict(r, a.slot, old.state_word));
	CU_ASSERT_EQUAL(ring_read(r, &a, &v), 0);

	ring_member_remove(r, b.slot);
	CU_ASSERT_EQUAL(ring_read(r, &b, &v), -ECONNRESET);
	fx_close(&f);
}

static void test_late_member(void)
{
	enum { LEN = 1024 - sizeof(struct ring_rec) };
	struct fx f;
	struct ring_reader a, b;
	struct ring_view v;
	uint32_t w, blocker;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &a), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w), 0);

	for (unsigned i = 0; i < 10; i++)
		CU_ASSERT_EQUAL(put(r, w, RING_EVENT_RESERVE, LEN, i, NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &b), 0);
	CU_ASSERT_EQUAL(b.pos, 10 * 1024);
	CU_ASSERT_EQUAL(ring_read(r, &b, &v), 0);

	/* a catches up; b's cursor alone now protects everything it joined
	 * for, through a whole ring of traffic. */
	for (unsigned i = 0; i < 10; i++)
		CU_ASSERT_EQUAL(take(r, &a, i, NULL), 1);
	unsigned sent = 10;
	while (put(r, w, RING_EVENT_RESERVE, LEN, sent, NULL, &blocker) == 0) {
		CU_ASSERT_EQUAL(take(r, &a, sent, NULL), 1);
		sent++;
	}
	CU_ASSERT_EQUAL(blocker, b.slot);
	CU_ASSERT_EQUAL(sent - 10, (RING_MIN_BYTES - RING_EVENT_RESERVE) / 1024);
	for (unsigned i = 10; i < sent; i++)
		CU_ASSERT_EQUAL_FATAL(take(r, &b, i, NULL), 1);
	CU_ASSERT_EQUAL(ring_read(r, &b, &v), 0);
	fx_close(&f);
}

/*
 * A member joins while producers run: the bound producers cache
 * (cached_min) must never exceed the new member's cursor, or they overwrite
 * what it joined for and it reads "nothing yet" for ever while they stall on
 * it. The daemon's add races with a producer's ring_min_cursor scan.
 */
struct join_race {
	struct ring *r;
	uint32_t writer;
	_Atomic int *stop;
};

static void *join_race_producer(void *p)
{
	struct join_race *j = p;
	struct ring_claim c;
	while (!atomic_load(j->stop))
		if (ring_claim(j->r, j->writer, 0, RING_EVENT_RESERVE, &c, NULL) == 0)
			ring_commit(j->r, &c, RING_REC_MSG, 0, 1, 0);
	return NULL;
}

static void test_join_race(void)
{
	struct fx f;
	_Atomic int stop = 0;
	struct join_race j[2];
	pthread_t t[2];
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	for (unsigned i = 0; i < 2; i++) {
		j[i] = (struct join_race){r, 0, &stop};
		CU_ASSERT_EQUAL_FATAL(writer_add(r, &j[i].writer), 0);
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, join_race_producer, &j[i]), 0);
	}
	unsigned long adds = 0, bad = 0, failed = 0;
	uint64_t worst = 0;
	int64_t end = ring_now_ns() + 1500 * MS;
	while (adds < 3000000 && !bad && (adds % 1024 || ring_now_ns() < end)) {
		struct ring_reader rd;
		if (reader_add(r, &rd)) {
			failed++;
			break;
		}
		uint64_t cm = atomic_load(&r->hdr->cached_min);
		if (cm > rd.pos) {
			bad++;
			worst = cm - rd.pos;
		}
		ring_member_remove(r, rd.slot);
		adds++;
	}
	atomic_store(&stop, 1);
	join_ok(t[0]);
	join_ok(t[1]);
	if (bad)
		fprintf(stderr, "\n  after %lu joins: cached_min %llu bytes above a new member's "
			"cursor\n", adds, (unsigned long long)worst);
	CU_ASSERT_EQUAL(failed, 0);
	CU_ASSERT_EQUAL(bad, 0);
	fx_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Hostile records                                                          */

static int read_at(struct ring *r, struct ring_reader *rd, uint64_t pos, uint64_t last_seq,
		   struct ring_view *v)
{
	rd->pos = pos;
	rd->last_seq = last_seq;
	return ring_read(r, rd, v);
}

static void test_corrupt(void)
{
	struct fx f;
	struct ring_reader rd;
	struct ring_view v;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	const uint64_t cap = r->capacity;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);

	/* Positions in the first lap, a later lap, and next to the end. */
	const uint64_t where[] = {0, 4096, 5 * cap + 1024, 3 * cap - 256};
	for (size_t i = 0; i < ARRAY_SIZE(where); i++) {
		uint64_t p = where[i], seq = p / RING_ALIGN + 1;

		/* A sound record there is read, as a control. */
		forge(r, p, RING_REC_MSG, 100, seq, ~p);
		CU_ASSERT_EQUAL(read_at(r, &rd, p, 0, &v), 1);
		CU_ASSERT_EQUAL(v.len, 100);

		uint16_t kinds[] = {0, RING_REC_DOWN + 1, 0x7fff, 0xffff};
		for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
			forge(r, p, kinds[k], 10, seq, ~p);
			CU_ASSERT_EQUAL(read_at(r, &rd, p, 0, &v), -EBADMSG);
		}
		forge(r, p, RING_REC_MSG, r->max_msg + 1, seq, ~p);
		CU_ASSERT_EQUAL(read_at(r, &rd, p, 0, &v), -EBADMSG);
		if ((p & r->mask) + ring_rec_bytes(r->max_msg) <= cap) {
			forge(r, p, RING_REC_MSG, r->max_msg, seq, ~p);
			CU_ASSERT_EQUAL(read_at(r, &rd, p, 0, &v), 1);
		}
		/* Long enough to fill the area to its end, over the group's limit. */
		uint32_t fit = (uint32_t)(cap - (p & r->mask)) - (uint32_t)sizeof(struct ring_rec);
		if (fit > r->max_msg) {
			forge(r, p, RING_REC_MSG, fit, seq, ~p);
			CU_ASSERT_EQUAL(read_at(r, &rd, p, 0, &v), -EBADMSG);
		}

		uint32_t huge[] = {UINT32_MAX, UINT32_MAX - 31, (uint32_t)cap, (uint32_t)cap + 1};
		for (size_t k = 0; k < ARRAY_SIZE(huge); k++) {
			forge(r, p, RING_REC_MSG, huge[k], seq, ~p);
			CU_ASSERT_EQUAL(read_at(r, &rd, p, 0, &v), -EBADMSG);
			/* A pad is allowed to be long, never past the end. */
			forge(r, p, RING_REC_PAD, huge[k], 0, ~p);
			CU_ASSERT_EQUAL(read_at(r, &rd, p, 0, &v), -EBADMSG);
		}

		/* seq must grow strictly. */
		forge(r, p, RING_REC_MSG, 8, seq, ~p);
		CU_ASSERT_EQUAL(read_at(r, &rd, p, seq, &v), -EBADMSG);
		CU_ASSERT_EQUAL(read_at(r, &rd, p, seq + 1, &v), -EBADMSG);
		CU_ASSERT_EQUAL(read_at(r, &rd, p, UINT64_MAX, &v), -EBADMSG);
		CU_ASSERT_EQUAL(read_at(r, &rd, p, seq - 1, &v), 1);
		CU_ASSERT_EQUAL(rd.last_seq, seq);
		forge(r, p, RING_REC_MSG, 8, 0, ~p);
		CU_ASSERT_EQUAL(read_at(r, &rd, p, 0, &v), -EBADMSG);

		/* Not committed for this lap: nothing yet, never a record. */
		uint64_t stale[] = {~(p - cap), ~(p + cap), 0, ~(uint64_t)0, p, ~(p + RING_ALIGN)};
		for (size_t k = 0; k < ARRAY_SIZE(stale); k++) {
			if (stale[k] == ~p)
				continue;
			forge(r, p, RING_REC_MSG, 8, seq, stale[k]);
			CU_ASSERT_EQUAL(read_at(r, &rd, p, 0, &v), 0);
			CU_ASSERT_EQUAL(rd.pos, p);
		}

		/* A good pad is skipped; what follows it is still checked. */
		forge(r, p, RING_REC_PAD, 0, 0, ~p);
		forge(r, p + 32, 0, 8, seq + 1, ~(p + 32));
		CU_ASSERT_EQUAL(read_at(r, &rd, p, 0, &v), -EBADMSG);
		CU_ASSERT_EQUAL(rd.pos, p + 32);
	}

	/* A record crossing the end of the data area, of either kind. */
	uint64_t end = 2 * cap - 64;
	for (uint32_t len = 33; len <= 200; len += 17) {
		forge(r, end, RING_REC_MSG, len, end / RING_ALIGN + 1, ~end);
		CU_ASSERT_EQUAL(read_at(r, &rd, end, 0, &v), -EBADMSG);
		forge(r, end, RING_REC_PAD, len, 0, ~end);
		CU_ASSERT_EQUAL(read_at(r, &rd, end, 0, &v), -EBADMSG);
	}
	/* Ending exactly at the end is fine, and reading goes on at the
	 * start of the next lap. */
	forge(r, end, RING_REC_MSG, 32, end / RING_ALIGN + 1, ~end);
	CU_ASSERT_EQUAL(read_at(r, &rd, end, 0, &v), 1);
	CU_ASSERT_EQUAL(v.next_pos, 2 * cap);
	forge(r, end, RING_REC_PAD, 32, 0, ~end);
	forge(r, 2 * cap, RING_REC_MSG, 5, 2 * cap / RING_ALIGN + 1, ~(2 * cap));
	CU_ASSERT_EQUAL(read_at(r, &rd, end, 0, &v), 1);
	CU_ASSERT_EQUAL(v.pos, 2 * cap);
	CU_ASSERT_EQUAL(v.len, 5);

	/* A producer trusts slot_hi no further than the slot table. */
	atomic_store(&r->chdr->slot_hi, UINT32_MAX);
	uint32_t slowest;
	CU_ASSERT_EQUAL(ring_min_cursor(r, &slowest), atomic_load(&r->hdr->tail));
	fx_close(&f);
}

/*
 * Random bytes at random places, each made to look committed: ring_read may
 * reject them or accept them, but anything it accepts must lie inside the
 * data area and within the group's limit.
 */
static void test_corrupt_fuzz(void)
{
	struct fx f;
	struct ring_reader rd;
	struct ring_view v;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);
	rnd_state = 0xfeedface;
	unsigned outside = 0, accepted = 0, rejected = 0;
	for (unsigned i = 0; i < 20000; i++) {
		uint64_t p = (rnd() % (4 * r->capacity)) & ~(uint64_t)(RING_ALIGN - 1);
		struct ring_rec *h = rec_at(r, p);
		uint64_t junk[4] = {rnd(), rnd(), rnd(), rnd()};
		memcpy((uint8_t *)h + 8, &junk[1], 24);
		/* Steer the fields half the time, so the deeper checks run. */
		if (i & 1) {
			h->kind = (uint16_t)(rnd() % 8);
			h->len = (uint32_t)(rnd() % (2 * r->max_msg));
			h->seq = p / RING_ALIGN + 1 + rnd() % 3 - 1;
		}
		atomic_store(&h->commit, (i & 2) ? ~p : junk[0]);
		int n = read_at(r, &rd, p, rnd() % 2 ? 0 : p / RING_ALIGN, &v);
		if (n == 1) {
			accepted++;
			const uint8_t *pl = v.payload;
			outside += v.len > r->max_msg || pl < r->data ||
				   pl + v.len > r->data + r->capacity;
		} else if (n == -EBADMSG) {
			rejected++;
		} else {
			outside += n != 0;
		}
	}
	CU_ASSERT_EQUAL(outside, 0);
	CU_ASSERT(accepted > 100);
	CU_ASSERT(rejected > 100);
	fx_close(&f);
}

/* ------------------------------------------------------------------------ */
/* Sleep and wake                                                           */

struct sleeper {
	struct ring *rings[2];
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
		s->rings[i] = sl->rings[i];
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

/* Until the other thread has parked (or at least announced its sleep). */
static void wait_flag(_Atomic int *flag)
{
	while (!atomic_load(flag))
		sched_yield();
	/* Let it reach the futex; a wake before that must also work, so
	 * this delay only makes the interesting case the likely one. */
	nanosleep(&(struct timespec){.tv_nsec = 50 * MS}, NULL);
}

static void test_sleep_wake(void)
{
	struct fx f;
	struct ring_reader rd;
	struct ring_sleep s = {.n = 1};
	uint32_t w;
	pthread_t t;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w), 0);
	s.rings[0] = r;

	/* No sleeper: a commit does not touch the wake word. */
	uint32_t seq0 = atomic_load(&r->chdr->wake_seq);
	CU_ASSERT_EQUAL(put(r, w, RING_EVENT_RESERVE, 10, 0, NULL, NULL), 0);
	ring_wake(r);
	CU_ASSERT_EQUAL(atomic_load(&r->chdr->wake_seq), seq0);
	CU_ASSERT_EQUAL(take(r, &rd, 0, NULL), 1);

	/* Nobody commits: the wait ends by its timeout. */
	ring_sleep_begin(&s);
	CU_ASSERT_EQUAL(atomic_load(&r->chdr->sleepers), 1);
	CU_ASSERT_EQUAL(ring_sleep_wait(&s, 30 * MS), -ETIMEDOUT);
	ring_sleep_end(&s);
	CU_ASSERT_EQUAL(atomic_load(&r->chdr->sleepers), 0);

	/* A commit between the announcement and the wait is not lost. */
	ring_sleep_begin(&s);
	CU_ASSERT_EQUAL(put(r, w, RING_EVENT_RESERVE, 10, 1, NULL, NULL), 0);
	ring_wake(r);
	CU_ASSERT_EQUAL(ring_sleep_wait(&s, 10000 * MS), 0);
	ring_sleep_end(&s);
	CU_ASSERT_EQUAL(take(r, &rd, 1, NULL), 1);

	/* A parked reader in another thread is woken by a commit. */
	struct sleeper sl = {.rings = {r}, .nrings = 1, .rd = &rd, .timeout = 10000 * MS};
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, sleeper_main, &sl), 0);
	wait_flag(&sl.parked);
	CU_ASSERT_EQUAL(put(r, w, RING_EVENT_RESERVE, 10, 2, NULL, NULL), 0);
	ring_wake(r);
	join_ok(t);
	CU_ASSERT_EQUAL(sl.wait_ret, 0);
	CU_ASSERT_EQUAL(sl.read_ret, 1);
	CU_ASSERT_EQUAL(atomic_load(&r->chdr->sleepers), 0);

	/* And by its own eviction, which it then learns from ring_read. */
	struct sleeper ev = {.rings = {r}, .nrings = 1, .rd = &rd, .timeout = 10000 * MS};
	rd.pos = atomic_load(&r->hdr->tail);
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
	uint32_t w;
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
	s->n = 2;
	ring_sleep_begin(s);
	CU_ASSERT_EQUAL(ring_sleep_wait(s, 30 * MS), -ETIMEDOUT);
	ring_sleep_end(s);
	free(s);

	/* The sleeper reads ring 1 after waking; the commit goes to ring 2,
	 * so only the wake itself can have ended its wait. */
	struct sleeper sl = {.rings = {&f1.r, &f2.r}, .nrings = 2, .rd = &r1,
			     .timeout = 10000 * MS};
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, sleeper_main, &sl), 0);
	wait_flag(&sl.parked);
	CU_ASSERT_EQUAL(put(&f2.r, w, RING_EVENT_RESERVE, 10, 0, NULL, NULL), 0);
	ring_wake(&f2.r);
	join_ok(t);
	CU_ASSERT_EQUAL(sl.wait_ret, 0);
	CU_ASSERT_EQUAL(sl.read_ret, 0);
	CU_ASSERT_EQUAL(take(&f2.r, &r2, 0, NULL), 1);
	CU_ASSERT_EQUAL(atomic_load(&f1.r.chdr->sleepers), 0);
	CU_ASSERT_EQUAL(atomic_load(&f2.r.chdr->sleepers), 0);
	fx_close(&f1);
	fx_close(&f2);
}

struct room_waiter {
	struct ring *r;
	uint32_t slot;
	uint64_t cursor;
	int ret;
	int64_t took;
	_Atomic int done;
};

static void *room_waiter_main(void *p)
{
	struct room_waiter *rw = p;
	int64_t t0 = ring_now_ns();
	rw->ret = ring_wait_room(rw->r, rw->slot, rw->cursor, 10000 * MS);
	rw->took = ring_now_ns() - t0;
	atomic_store(&rw->done, 1);
	return NULL;
}

/* Start a producer parked on `slot` and wait until it is. */
static void park_producer(struct room_waiter *rw, pthread_t *t)
{
	struct ring_member *m = &rw->r->members[rw->slot];
	rw->cursor = atomic_load(&m->cursor);
	CU_ASSERT_EQUAL_FATAL(pthread_create(t, NULL, room_waiter_main, rw), 0);
	while (atomic_load(&m->waiters) == 0 && !atomic_load(&rw->done))
		sched_yield();
	nanosleep(&(struct timespec){.tv_nsec = 50 * MS}, NULL);
	/* Nothing has moved yet: the producer must still be parked. */
	CU_ASSERT_FALSE(atomic_load(&rw->done));
}

static void test_wait_room(void)
{
	enum { LEN = 1024 - sizeof(struct ring_rec) };
	struct fx f;
	struct ring_reader rd;
	uint32_t w, blocker;
	pthread_t t;
	CU_ASSERT_EQUAL_FATAL(fx_open(&f, RING_MIN_BYTES, 1000), 0);
	struct ring *r = &f.r;
	CU_ASSERT_EQUAL_FATAL(reader_add(r, &rd), 0);
	CU_ASSERT_EQUAL_FATAL(writer_add(r, &w), 0);
	unsigned sent = 0;
	while (put(r, w, RING_EVENT_RESERVE, LEN, sent, NULL, &blocker) == 0)
		sent++;
	CU_ASSERT_EQUAL_FATAL(blocker, rd.slot);

	/* The cursor already moved on: no wait at all. */
	struct room_waiter moved = {.r = r, .slot = blocker, .cursor = 12345};
	room_waiter_main(&moved);
	CU_ASSERT_EQUAL(moved.ret, 0);
	CU_ASSERT(moved.took < 5000 * MS);

	/* Nobody reads: the wait times out, still 0. */
	CU_ASSERT_EQUAL(ring_wait_room(r, blocker, atomic_load(&r->members[blocker].cursor),
				       20 * MS), 0);
	CU_ASSERT_EQUAL(atomic_load(&r->members[blocker].waiters), 0);

	/* Woken by the releases that make an eighth of the ring free (long
	 * before its timeout), not by the first one. */
	struct room_waiter rw = {.r = r, .slot = blocker};
	park_producer(&rw, &t);
	CU_ASSERT_EQUAL(take(r, &rd, 0, NULL), 1);
	nanosleep(&(struct timespec){.tv_nsec = 50 * MS}, NULL);
	CU_ASSERT_FALSE(atomic_load(&rw.done));
	unsigned taken = 1;
	while (!atomic_load(&rw.done) && taken < sent) {
		CU_ASSERT_EQUAL_FATAL(take(r, &rd, taken, NULL), 1);
		taken++;
		nanosleep(&(struct timespec){.tv_nsec = MS}, NULL);
	}
	join_ok(t);
	CU_ASSERT(taken * 1024 >= r->capacity / RING_ROOM_BATCH);
	CU_ASSERT(taken * 1024 <= r->capacity / RING_ROOM_BATCH + 2048);
	CU_ASSERT_EQUAL(rw.ret, 0);
	CU_ASSERT(rw.took < 5000 * MS);
	CU_ASSERT_EQUAL(atomic_load(&r->members[blocker].waiters), 0);
	CU_ASSERT_EQUAL(put(r, w, RING_EVENT_RESERVE, LEN, sent, NULL, NULL), 0);

	/* Woken by the eviction of the member it waits on. */
	struct room_waiter re = {.r = r, .slot = blocker};
	park_producer(&re, &t);
	CU_ASSERT_TRUE(ring_member_evict(r, rd.slot, rd.state_word));
	join_ok(t);
	CU_ASSERT_EQUAL(re.ret, 0);
	CU_ASSERT(re.took < 5000 * MS);

	/* Woken by the slot being freed. */
	struct room_waiter rm = {.r = r, .slot = blocker};
	park_producer(&rm, &t);
	ring_member_remove(r, rd.slot);
	join_ok(t);
	CU_ASSERT_EQUAL(rm.ret, 0);
	CU_ASSERT(rm.took < 5000 * MS);
	fx_close(&f);
}

/* ------------------------------------------------------------------------ */

static const struct {
	const char *name;
	CU_TestFunc fn;
} tests[] = {
	{"check_sizes", test_check_sizes},
	{"create_map", test_create_map},
	{"map_validate", test_map_validate},
	{"map_short_file", test_map_short_file},
	{"round_trip", test_round_trip},
	{"wrap", test_wrap},
	{"full", test_full},
	{"reserve", test_reserve},
	{"max_msg", test_max_msg},
	{"abort", test_abort},
	{"threads", test_threads},
	{"processes", test_processes},
	{"evict", test_evict},
	{"late_member", test_late_member},
	{"join_race", test_join_race},
	{"corrupt", test_corrupt},
	{"corrupt_fuzz", test_corrupt_fuzz},
	{"sleep_wake", test_sleep_wake},
	{"sleep_many", test_sleep_many},
	{"wait_room", test_wait_room},
};

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	CU_pSuite s = CU_add_suite("ring", NULL, NULL);
	if (!s)
		return 2;
	for (size_t i = 0; i < ARRAY_SIZE(tests); i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return 2;
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	/* Meson reads the exit status, not CUnit's summary. */
	unsigned failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}

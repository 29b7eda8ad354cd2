// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the ring's reader (and its writers) over shared memory a
 * hostile process scribbles on. Any process that may send maps the data
 * memfd writable, and every member its own page: whatever such a process
 * writes there, a reader must neither crash nor hand out a record that lies
 * outside the ring, and an honest writer must never write outside its area.
 * The directory is the daemon's alone (the kernel sees to that): only the
 * daemon's operations change it here.
 *
 * One real 64 KiB ring (RING_MIN_BYTES) per process, as the daemon makes it:
 * a writable mapping (the daemon, the honest writers, the hostile one) and a
 * read-only one (a receive-only member reads through it). Each input runs
 * from the same state: the shared memory is put back after every run, which
 * is far cheaper than a new memfd per input.
 *
 * The input: one flags byte (bit 0: six bytes of a start position follow, a
 * ring that has carried that many records), then operations, each one byte
 * and its operands: patches of the header, writer slots, wait slots, order,
 * areas and both members' pages; forged order entries and record headers
 * near the reader's position (hard for byte patches to hit by chance);
 * reads, releases, claims, commits, aborts; the daemon's repairs. Then the
 * reader reads what is left and two writers send once more.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_check.h"
#include "ring/ring.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP RING_MIN_BYTES
#define MAX_MSG 16384u
/* Tail compare-and-swap attempts per claim, as a client passes. */
#define TRIES 8u
/* 64 KiB rings get all 256 writer slots, so every writer an order entry can
 * name exists: ring_read's check of the writer against writer_slots is for
 * bigger rings (test_ring covers it), not reachable here. */
/* The areas the fuzzer writes into: the daemon's (slot 0), the two honest
 * writers' (1, 2) and one nobody holds now (3, as a freed slot's is until
 * the node reclaims it). Other slots have no area: entries naming them are
 * refused. */
#define AREAS 4u
#define AREA_PAGES (CAP / RING_PAGE)
/* Member lines it patches: the reader's (0), the other member's (1), two free. */
#define MEMBERS 4u
/* Honest writers: the daemon and the two allocated slots. */
#define WRITERS 3u
#define MAX_OPS 512u
#define FINAL_READS 64u

#define CHECK(cond) FUZZ_CHECK("fuzz_ring_read", cond)

static struct {
	bool ready;
	bool trace; /* $FUZZ_RING_TRACE: say what each read and claim did */
	int dfd, cfd;
	struct ring w;			/* writable */
	struct ring ro;			/* read-only */
	struct ring_reader rd0, other0; /* as ring_member_add left them */
	uint32_t wslot[WRITERS];
	uint8_t data_snap[RING_ORDER_OFF]; /* data header and writer slots */
	/* The directory's header, writer ids and members 0..255. */
	uint8_t dir_snap[RING_MEMBERS_OFF + RING_PAGE];
	uint8_t page_snap[2][RING_PAGE];   /* both members' pages */
	uint16_t dirty[AREAS];		   /* area pages written in this run */
} g;

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

static void setup(void)
{
	if (ring_create(CAP, MAX_MSG, 100, "fuzz", &g.dfd, &g.cfd) ||
	    ring_map(&g.w, g.dfd, g.cfd, true) || ring_map(&g.ro, g.dfd, g.cfd, false))
		fuzz_fail("fuzz_ring_read", "cannot create the ring");
	g.wslot[0] = RING_DAEMON_WRITER;
	uint64_t cur;
	/* Areas and pages on one shelf, as a session's are in the daemon. */
	struct shelf *own = NULL;
	struct ring_file p0, p1, a3;
	if (ring_writer_alloc_on(&g.w, getpid(), &g.wslot[1], &own) ||
	    ring_writer_alloc_on(&g.w, getpid(), &g.wslot[2], &own) ||
	    ring_member_add_on(&g.w, getpid(), &g.rd0.slot, &g.rd0.state_word, &cur, &own, &p0) ||
	    ring_member_add_on(&g.w, getpid(), &g.other0.slot, &g.other0.state_word, &cur, &own,
			       &p1))
		fuzz_fail("fuzz_ring_read", "cannot add writers and members");
	if (shelf_take(&own, "fuzz:own", g.w.capacity, &a3) || ring_area_create(&g.w, 3, &a3))
		fuzz_fail("fuzz_ring_read", "cannot make the areas");
	g.ro.fetch_area = owner_fetch;
	g.ro.fetch_arg = &g.w;
	/* The owner's mappings of the pages stand in for the members' own. */
	g.rd0.page = g.w.pages->page[g.rd0.slot];
	g.other0.page = g.w.pages->page[g.other0.slot];
	if (g.wslot[2] >= AREAS || g.other0.slot >= MEMBERS)
		fuzz_fail("fuzz_ring_read", "slots beyond what the fuzzer patches");
	g.rd0.pos = g.other0.pos = cur;
	memcpy(g.data_snap, g.w.hdr, sizeof(g.data_snap));
	memcpy(g.dir_snap, g.w.dir, sizeof(g.dir_snap));
	memcpy(g.page_snap[0], g.rd0.page, RING_PAGE);
	memcpy(g.page_snap[1], g.other0.page, RING_PAGE);
	g.trace = getenv("FUZZ_RING_TRACE") != NULL;
	g.ready = true;
}

static uint8_t *area(const struct ring *r, uint32_t writer)
{
	return r->areas + (uint64_t)writer * r->capacity;
}

static void mark(uint32_t writer, uint64_t off, uint64_t n)
{
	if (writer >= AREAS || n == 0)
		return;
	for (uint64_t p = off / RING_PAGE; p <= (off + n - 1) / RING_PAGE && p < AREA_PAGES; p++)
		g.dirty[writer] |= (uint16_t)(1u << p);
}

/* Put the shared memory back as setup() left it. */
static void reset(void)
{
	memcpy(g.w.hdr, g.data_snap, sizeof(g.data_snap));
	memset((void *)g.w.order, 0, g.w.order_slots * sizeof(*g.w.order));
	for (uint32_t a = 0; a < AREAS; a++) {
		for (uint32_t p = 0; p < AREA_PAGES; p++)
			if (g.dirty[a] & (1u << p))
				memset(area(&g.w, a) + (uint64_t)p * RING_PAGE, 0, RING_PAGE);
		g.dirty[a] = 0;
	}
	memcpy(g.w.dir, g.dir_snap, sizeof(g.dir_snap));
	memcpy(g.rd0.page, g.page_snap[0], RING_PAGE);
	memcpy(g.other0.page, g.page_snap[1], RING_PAGE);
}

static bool zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	return n == 0 || (b[0] == 0 && memcmp(b, b + 1, n - 1) == 0);
}

/* Tracing only (it reads all 17 MiB): reset() left nothing behind, so
 * every input runs from the same state and its finding reproduces. */
static void check_reset(void)
{
	CHECK(memcmp(g.w.hdr, g.data_snap, sizeof(g.data_snap)) == 0);
	CHECK(zero((const uint8_t *)g.w.hdr + RING_ORDER_OFF, RING_DATA_BYTES(g.w.capacity) - RING_ORDER_OFF));
	CHECK(memcmp(g.w.dir, g.dir_snap, sizeof(g.dir_snap)) == 0);
	CHECK(zero((const uint8_t *)g.w.dir + sizeof(g.dir_snap),
		   RING_DIR_BYTES - sizeof(g.dir_snap)));
	CHECK(memcmp(g.rd0.page, g.page_snap[0], RING_PAGE) == 0);
	CHECK(memcmp(g.other0.page, g.page_snap[1], RING_PAGE) == 0);
}

/* The input, consumed from the front. */
struct in {
	const uint8_t *p, *end;
};

static bool take(struct in *in, void *dst, size_t n)
{
	if ((size_t)(in->end - in->p) < n)
		return false;
	memcpy(dst, in->p, n);
	in->p += n;
	return true;
}

static uint8_t u8(struct in *in)
{
	uint8_t v = 0;
	take(in, &v, 1);
	return v;
}

static uint16_t u16(struct in *in)
{
	uint16_t v = 0;
	take(in, &v, 2);
	return v;
}

/* Copy up to 32 bytes of the input over base[off...], within `size`. */
static void patch(struct in *in, uint8_t *base, size_t size, size_t off, uint32_t writer)
{
	size_t n = (size_t)(u8(in) % 32u) + 1;
	off %= size;
	if (n > size - off)
		n = size - off;
	if (n > (size_t)(in->end - in->p))
		n = (size_t)(in->end - in->p);
	memcpy(base + off, in->p, n);
	in->p += n;
	if (writer != UINT32_MAX)
		mark(writer, off, n);
}

static uint32_t lap_of(const struct ring *r, uint64_t pos)
{
	return (uint32_t)(pos >> r->order_shift) & ((1u << RING_E_LAP_BITS) - 1);
}

/* Where position `pos` has its entry: mirrors entry() in ring.c. */
static _Atomic uint64_t *entry_at(const struct ring *r, uint64_t pos)
{
	return &r->order[((pos & r->line_mask) << 3) | ((pos >> r->line_shift) & 7)];
}

/* A position near the reader's, where forged entries and records matter. */
static uint64_t near(const struct ring_reader *rd, uint8_t k) { return rd->pos + (k & 63u) - 8u; }

static volatile uint8_t sink;

/*
 * What ring_read returned through mapping `r`, the reader having been at
 * `from`. A view's record (header and payload) must lie in one writer area
 * of that mapping. Integer arithmetic: a pointer outside the mapping must be
 * reported, not compared with undefined behaviour.
 */
static void check_read(const struct ring *r, const struct ring_reader *rd, uint64_t from, int ret,
		       const struct ring_view *v)
{
	CHECK(ret == 1 || ret == 0 || ret == -EBADMSG || ret == -ECONNRESET);
	/* Only cancelled entries are skipped, at most a whole order of them. */
	CHECK(rd->pos - from <= r->order_slots);
	if (ret != 1)
		return;
	uintptr_t p = (uintptr_t)v->payload, base = (uintptr_t)r->areas;
	const uint64_t span = (uint64_t)r->writer_slots * r->capacity;
	CHECK(p >= base && p - base <= span && v->len <= span - (p - base));
	CHECK(p >= base + sizeof(struct ring_rec));
	uint64_t off = p - sizeof(struct ring_rec) - base;
	uint64_t wr = off / r->capacity, at = off % r->capacity;
	CHECK(wr < r->writer_slots && at % RING_ALIGN == 0);
	/* Only from an area the reader mapped: the writer's own memfd. */
	CHECK(r->area_gen[wr] != 0);
	CHECK(at + sizeof(struct ring_rec) + v->len <= r->capacity);
	CHECK(v->len <= r->max_msg);
	CHECK(v->kind >= RING_REC_MSG && v->kind <= RING_REC_DOWN);
	CHECK(v->pos == rd->pos && v->next_pos == v->pos + 1 && v->seq == v->pos + 1);
	/* Touch its first and last byte and one on each page between: a
	 * payload in no mapping faults here. (Not every byte: each loop
	 * compare is a coverage callback, and this was most of the time.) */
	const uint8_t *b = v->payload;
	if (v->len) {
		uint8_t x = b[v->len - 1];
		for (uint32_t i = 0; i < v->len; i += RING_PAGE)
			x ^= b[i];
		sink = x;
	}
}

static void read_one(struct ring *r, struct ring_reader *rd, bool release)
{
	struct ring_view v;
	uint64_t from = rd->pos;
	int ret = ring_read(r, rd, &v);
	if (g.trace)
		fprintf(stderr, "read slot %u at %llu: %d%s len %u\n", rd->slot,
			(unsigned long long)from, ret, ret == 1 ? "" : " (no view)",
			ret == 1 ? v.len : 0);
	check_read(r, rd, from, ret, &v);
	if (ret == 1 && release)
		ring_release(r, rd, v.next_pos);
}

/* An honest writer's claims: private bookkeeping, and one open claim at most. */
struct writer {
	struct ring_area a;
	struct ring_claim c;
	bool open;
};

static void finish(struct writer *wr, bool abort_it)
{
	if (!wr->open)
		return;
	int err = abort_it ? ring_abort(&g.w, &wr->c)
			   : ring_commit(&g.w, &wr->c, RING_REC_MSG, 0, getpid(), 0);
	CHECK(err == 0 || err == -ECANCELED);
	/* As pg_send does; reads the (patchable) sleep words. */
	if (err == 0)
		ring_wake(&g.w);
	wr->open = false;
}

static void claim(struct writer *wr, uint32_t len, uint32_t reserve, int then)
{
	finish(wr, false);
	struct ring_claim c;
	uint32_t blocker;
	uint64_t was = wr->a.tail & g.w.amask;
	int err = ring_claim(&g.w, &wr->a, len, reserve, TRIES, &c, &blocker);
	if (g.trace)
		fprintf(stderr, "claim writer %u len %u: %d pos %llu\n", wr->a.writer, len, err,
			err ? 0ull : (unsigned long long)c.pos);
	CHECK(err == 0 || err == -EAGAIN || err == -EMSGSIZE || err == -EBADMSG);
	CHECK((err == -EMSGSIZE) == (len > g.w.max_msg));
	if (err)
		return;
	/* The record goes into the writer's own area, whole, where it says. */
	uint64_t off = (uint64_t)((uint8_t *)c.rec - area(&g.w, wr->a.writer));
	CHECK((uint8_t *)c.rec >= area(&g.w, wr->a.writer) && off == c.unit * RING_ALIGN);
	CHECK(off + ring_rec_bytes(len) <= g.w.capacity);
	CHECK(c.writer == wr->a.writer && c.len == len);
	CHECK((uint8_t *)c.payload == (uint8_t *)c.rec + sizeof(struct ring_rec));
	/* What reset() must clear: the record, and a wrap record at the old
	 * end of the area when it starts again at the beginning. */
	uint64_t end = off + ring_rec_bytes(len);
	if (off >= was) {
		mark(wr->a.writer, was, end - was);
	} else {
		mark(wr->a.writer, was, g.w.capacity - was);
		mark(wr->a.writer, 0, end);
	}
	memset(c.payload, (int)(c.pos & 0xff), len);
	wr->c = c;
	wr->open = true;
	if (then == 0)
		finish(wr, false);
	else if (then == 1)
		finish(wr, true);
}

static void daemon_op(struct in *in, struct ring_reader *rd)
{
	uint8_t k = u8(in);
	uint32_t slowest;
	switch (u8(in) % 7) {
	case 0:
		(void)ring_min_cursor(&g.w, &slowest);
		CHECK(slowest == UINT32_MAX || slowest < RING_MEMBER_SLOTS);
		break;
	case 1:
		(void)ring_lag(&g.w);
		break;
	case 2:
		(void)ring_entry_open(&g.w, near(rd, k));
		break;
	case 3: {
		int err = ring_cancel_at(&g.w, near(rd, k));
		CHECK(err == 0 || err == -ESTALE || err == -EAGAIN || err == -EBUSY);
		break;
	}
	case 4: {
		int err = ring_seal_writer(&g.w, k % g.w.writer_slots);
		CHECK(err == 0 || err == -EAGAIN);
		break;
	}
	case 5:
		(void)ring_member_evict(&g.w, rd->slot, rd->state_word);
		break;
	default:
		(void)ring_state_error(&g.w);
		break;
	}
}

static void run(struct in *in)
{
	struct ring_reader rd = g.rd0, other = g.other0;
	struct writer wr[WRITERS];
	for (uint32_t i = 0; i < WRITERS; i++) {
		ring_area_init(&wr[i].a, g.wslot[i]);
		wr[i].open = false;
	}
	if (u8(in) & 1) {
		/* A ring that has carried this many records, all read: an
		 * honest state, so laps other than 0 get their share. */
		uint64_t start = 0;
		take(in, &start, 6);
		atomic_store(&g.w.hdr->tail, start);
		atomic_store(&g.w.hdr->cached_min, start);
		atomic_store(&rd.page->cursor, start);
		atomic_store(&other.page->cursor, start);
		rd.pos = other.pos = start;
	}
	for (unsigned n = 0; n < MAX_OPS && in->p < in->end; n++) {
		uint8_t op = u8(in);
		switch (op % 12) {
		case 0:
			patch(in, (uint8_t *)g.w.hdr, sizeof(struct ring_data_hdr), u8(in),
			      UINT32_MAX);
			break;
		case 1:
			patch(in, (uint8_t *)g.w.writers,
			      RING_WRITER_SLOTS * sizeof(struct ring_writer), u16(in), UINT32_MAX);
			break;
		case 2:
			patch(in, (uint8_t *)g.w.order, g.w.order_slots * 8, u16(in), UINT32_MAX);
			break;
		case 3: {
			uint32_t a = u8(in) % AREAS;
			patch(in, area(&g.w, a), g.w.capacity, u16(in), a);
			break;
		}
		case 4:
			patch(in, (uint8_t *)g.w.mwait, MEMBERS * sizeof(struct ring_mwait), u8(in),
			      UINT32_MAX);
			break;
		case 5: { /* a member writes its own page: either member */
			/* One statement each: arguments are read in no set order. */
			uint8_t *page = (uint8_t *)((u8(in) & 1) ? rd.page : other.page);
			patch(in, page, 2 * RING_CACHELINE, u8(in), UINT32_MAX);
			break;
		}
		case 6: { /* an order entry of the fuzzer's making */
			uint64_t pos = near(&rd, u8(in));
			uint8_t st = u8(in), writer = u8(in);
			uint16_t unit = u16(in);
			int8_t dlap = (int8_t)u8(in);
			atomic_store(
			    entry_at(&g.w, pos),
			    RING_E_MAKE(lap_of(&g.w, pos) + (uint32_t)dlap, unit, writer, st & 3u));
			break;
		}
		case 7: { /* a record header of the fuzzer's making */
			/* One statement each: the input is read in this order
			 * (an initializer list's order is unspecified). */
			uint32_t a = u8(in) % AREAS;
			uint64_t off = (uint64_t)(u16(in) % (CAP / RING_ALIGN)) * RING_ALIGN;
			struct ring_rec h = {.from_pid = 1};
			h.order_pos = near(&rd, u8(in));
			h.len = u16(in);
			h.kind = u8(in) % 8u;
			h.flags = u8(in);
			memcpy(area(&g.w, a) + off, &h, sizeof(h));
			mark(a, off, sizeof(h));
			break;
		}
		case 8:
			read_one(&g.ro, &rd, u8(in) & 1);
			break;
		case 9: {
			uint8_t who = u8(in);
			uint32_t len = u16(in) % (MAX_MSG + 64u);
			uint8_t how = u8(in);
			claim(&wr[who % WRITERS], len, (how & 4) ? RING_EVENT_RESERVE : 0, how % 3);
			break;
		}
		case 10:
			daemon_op(in, &rd);
			break;
		default:
			/* The other member may send too: it reads through a
			 * writable mapping. */
			read_one(&g.w, &other, u8(in) & 1);
			break;
		}
	}
	for (uint32_t i = 0; i < WRITERS; i++)
		finish(&wr[i], false);
	for (unsigned n = 0; n < FINAL_READS; n++)
		read_one(&g.ro, &rd, true);
	claim(&wr[1], 100, 0, 0);
	claim(&wr[2], MAX_MSG, RING_EVENT_RESERVE, 0);
	for (unsigned n = 0; n < 4; n++)
		read_one(&g.ro, &rd, true);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!g.ready)
		setup();
	struct in in = {data, data + size};
	run(&in);
	reset();
	if (g.trace)
		check_reset();
	return 0;
}

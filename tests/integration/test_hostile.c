// SPDX-License-Identifier: MIT
/*
 * A hostile member against a real pgroupd: it writes where its mappings let
 * it (docs/security.md). A data header scribbled to zero does not stop later
 * joins and sends (sizes come from the daemon, never from shared memory); a
 * member whose own cursor moves back and forth holds senders no longer than
 * the stall limit and is evicted itself; the directory, where member states
 * live, cannot be made writable by anyone but the daemon; a sender writes
 * its own area and nothing of another writer's, and cannot forge `from`.
 * tests/integration/test_isolation.c scribbles everywhere it can.
 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/syscall.h>

#include "harness.h"
#include "ring/layout.h"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Our mapping of a memfd named "pgroup:<label>" of `bytes` bytes, writable
 * if asked. NULL when there is none. Directories are on "pgroup:dirs"
 * (shelves of the daemon): the tests that look for one map one group. */
static void *find_mapping(const char *label, size_t bytes, bool writable)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512], want[128];
	snprintf(want, sizeof(want), "pgroup:%.40s ", label);
	void *found = NULL;
	while (!found && f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3)
			continue;
		char *name = strstr(line, "pgroup:");
		if (!name || strncmp(name, want, strlen(want) - 1) != 0 || hi - lo != bytes)
			continue;
		if (!writable || perms[1] == 'w')
			found = (void *)lo;
	}
	if (f)
		fclose(f);
	return found;
}

/* Our mapping of the member page we hold (on our session's shelf,
 * "pgroup:own"): the writable page-sized one. NULL when there is none. */
static struct ring_mpage *own_page(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	struct ring_mpage *found = NULL;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && hi - lo == RING_PAGE &&
		    perms[1] == 'w' && strstr(line, "pgroup:own"))
			found = (struct ring_mpage *)lo;
	}
	if (f)
		fclose(f);
	return found;
}

/* A sender's writable mapping of group g's data memfd: the one that is not
 * the directory. NULL when there is none. */
static struct ring_data_hdr *data_mapping(const char *g)
{
	struct ring_data_hdr *dh = NULL;
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	while (!dh && f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && strstr(line, g) &&
		    perms[1] == 'w' && hi - lo != RING_DIR_BYTES)
			dh = (struct ring_data_hdr *)lo;
	}
	if (f)
		fclose(f);
	return dh;
}

static void test_zeroed_headers(void)
{
	const char *g = fresh_group("zero");
	pg_ctx *att = open_ctx(), *other = open_ctx();
	pg_group_opts o = {.ring_bytes = 64 * 1024};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(att, g, &o), 0);
	CU_ASSERT_EQUAL(pg_join(att, g, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_send(att, g, "x", 1), 0); /* a writable data mapping */
	/* The directory is the daemon's: even a sender maps it read-only and
	 * cannot make it writable. */
	/* Mapped with the node's area that follows it in its file. */
	size_t dir_map = RING_DIR_BYTES + o.ring_bytes;
	struct ring_dir_hdr *dir = find_mapping("dirs", dir_map, false);
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	CU_ASSERT_PTR_NULL(find_mapping("dirs", dir_map, true));
	CU_ASSERT(mprotect(dir, RING_DIR_BYTES, PROT_READ | PROT_WRITE) < 0 && errno == EACCES);
	struct ring_data_hdr *dh = data_mapping(g);
	CU_ASSERT_PTR_NOT_NULL_FATAL(dh);
	memset(dh, 0, 64); /* magic, version, every size */
	/* Others still join and send: their sizes come from the daemon. */
	CU_ASSERT_EQUAL(pg_join(other, g, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_send(other, g, "hello", 5), 0);
	pg_message m;
	CU_ASSERT_EQUAL(recv_msg(other, &m, 2000), 0);
	CU_ASSERT(m.len == 5 && memcmp(m.data, "hello", 5) == 0);
	pg_close(other);
	pg_close(att);
}

struct toggler {
	struct ring_mpage *page;
	_Atomic int stop;
};

/* A member whose own cursor goes back and forth: no progress. */
static void *toggle(void *arg)
{
	struct toggler *t = arg;
	for (uint64_t i = 0; !atomic_load(&t->stop); i++) {
		atomic_store(&t->page->cursor, i & 1);
		usleep(1000);
	}
	return NULL;
}

static void test_cursor_back_and_forth(void)
{
	const char *g = fresh_group("fake");
	pg_ctx *att = open_ctx(), *snd = open_ctx(), *good = open_ctx();
	pg_group_opts o = {.ring_bytes = 64 * 1024, .stall_ms = 200};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(snd, g, &o), 0);
	CU_ASSERT_EQUAL(pg_join(att, g, 0, NULL, NULL), 0);
	struct ring_mpage *page = own_page();
	CU_ASSERT_PTR_NOT_NULL_FATAL(page);
	CU_ASSERT_EQUAL(pg_join(good, g, 0, NULL, NULL), 0);
	struct toggler t = {.page = page};
	pthread_t th;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, toggle, &t), 0);
	/* Ten rings' worth, read as it goes: no send may wait longer than the
	 * stall limit and a second. */
	char buf[1000];
	int64_t worst = 0;
	int got = 0;
	for (int i = 0; i < 10 * 64; i++) {
		memset(buf, i, sizeof(buf));
		int64_t t0 = now_ms();
		CU_ASSERT_EQUAL_FATAL(pg_send(snd, g, buf, sizeof(buf)), 0);
		if (now_ms() - t0 > worst)
			worst = now_ms() - t0;
		pg_message m;
		while (recv_msg(good, &m, 0) == 0)
			got += m.len == sizeof(buf) && ((const char *)m.data)[0] == (char)got;
	}
	pg_message m;
	while (got < 10 * 64 && recv_msg(good, &m, 1000) == 0)
		got += m.len == sizeof(buf) && ((const char *)m.data)[0] == (char)got;
	atomic_store(&t.stop, 1);
	pthread_join(th, NULL);
	fprintf(stderr, "\n  cursor back and forth: longest send %lld ms, good member got %d of %d\n",
		(long long)worst, got, 10 * 64);
	CU_ASSERT(worst < 200 + 1000);
	CU_ASSERT_EQUAL(got, 10 * 64);
	/* It hurt only itself: evicted like any laggard, and told. */
	int err;
	do
		err = pg_recv(att, &m, 1000);
	while (err == 0 && m.kind == PG_MSG);
	CU_ASSERT_EQUAL(err, 0);
	CU_ASSERT_EQUAL(m.kind, PG_EVICTED);
	pg_close(good);
	pg_close(snd);
	pg_close(att);
}

static void test_directory_read_only(void)
{
	const char *g = fresh_group("dir");
	pg_ctx *att = open_ctx(), *victim = open_ctx();
	CU_ASSERT_EQUAL_FATAL(pg_create(att, g), 0);
	CU_ASSERT_EQUAL(pg_join(att, g, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_join(victim, g, 0, NULL, NULL), 0);
	/* A member's writable shared memory is its own page; the directory,
	 * where member states live, cannot be made writable. */
	struct ring_dir_hdr *dir = find_mapping("dirs", RING_DIR_BYTES + RING_DEFAULT_BYTES, false);
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	CU_ASSERT(mprotect(dir, RING_DIR_BYTES, PROT_READ | PROT_WRITE) < 0 && errno == EACCES);
	const struct ring_member *slots =
	    (const struct ring_member *)((const char *)dir + RING_MEMBERS_OFF);
	CU_ASSERT_EQUAL(RING_STATE_OF(atomic_load(&slots[1].state)), RING_MEMBER_ACTIVE);
	/* The victim keeps receiving. */
	pg_message m;
	CU_ASSERT_EQUAL(pg_send(att, g, "still", 5), 0);
	CU_ASSERT_EQUAL(recv_msg(victim, &m, 2000), 0);
	CU_ASSERT(m.len == 5 && memcmp(m.data, "still", 5) == 0);
	pg_close(victim);
	pg_close(att);
}

/* Our shared mappings named "pgroup:<what>" (a prefix), writable or not. */
static unsigned count_mappings(const char *what, bool writable)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512], want[128];
	snprintf(want, sizeof(want), "pgroup:%s", what);
	unsigned n = 0;
	while (f && fgets(line, sizeof(line), f)) {
		char perms[8];
		if (sscanf(line, "%*x-%*x %7s", perms) == 1 && strstr(line, want) &&
		    (perms[1] == 'w') == writable)
			n++;
	}
	if (f)
		fclose(f);
	return n;
}

/*
 * A sender writes its own area and the data memfd, nothing else: no other
 * writer's records, not the node's events. What it writes into its own
 * records after committing them cannot change who sent them: `from` is the
 * pid the daemon gave its slot.
 */
static void test_sender_confined(void)
{
	const char *g = fresh_group("snd");
	pg_ctx *a = open_ctx(), *b = open_ctx(), *mem = open_ctx();
	CU_ASSERT_EQUAL_FATAL(pg_create(a, g), 0);
	CU_ASSERT_EQUAL(pg_join(mem, g, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_send(b, g, "b", 1), 0);
	unsigned areas_before = count_mappings("own", true);
	void *buf;
	CU_ASSERT_EQUAL_FATAL(pg_send_claim(a, g, 8, &buf), 0);
	/* Two senders in this process: two areas writable, one each (each
	 * on its session's shelf, with that session's pages), and with each
	 * the bells of that shelf (ring/layout.h): nothing else of it. */
	CU_ASSERT_EQUAL(count_mappings("own", true), areas_before + 2);
	memcpy(buf, "forged!", 8);
	CU_ASSERT_EQUAL(pg_send_commit(a, buf), 0);
	/* Rewrite the committed record's header: a pid of our choosing. */
	struct ring_rec *h = (struct ring_rec *)buf - 1;
	h->from_pid = 1;
	pg_message m;
	CU_ASSERT_EQUAL(recv_msg(mem, &m, 2000), 0);
	CU_ASSERT(m.len == 1 && memcmp(m.data, "b", 1) == 0);
	CU_ASSERT_EQUAL(recv_msg(mem, &m, 2000), 0);
	CU_ASSERT(m.len == 8 && memcmp(m.data, "forged!", 8) == 0);
	CU_ASSERT_EQUAL(m.from.pid, getpid()); /* the daemon's view, not 1 */
	/* The member maps both areas read-only, and cannot make them writable. */
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	unsigned ro = 0, made_writable = 0;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && strstr(line, "pgroup:own") &&
		    perms[1] != 'w') {
			ro++;
			made_writable += mprotect((void *)lo, hi - lo, PROT_READ | PROT_WRITE) == 0;
		}
	}
	if (f)
		fclose(f);
	CU_ASSERT(ro >= 2);
	CU_ASSERT_EQUAL(made_writable, 0);
	pg_close(mem);
	pg_close(b);
	pg_close(a);
}

/* Our writable "pgroup:own" mappings of `bytes` bytes, up to max. */
static unsigned own_writable(size_t bytes, void **at, unsigned max)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	unsigned n = 0;
	while (n < max && f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && hi - lo == bytes &&
		    perms[1] == 'w' && strstr(line, "pgroup:own"))
			at[n++] = (void *)lo;
	}
	if (f)
		fclose(f);
	return n;
}

struct scribbler {
	struct ring_bell *bells;
	_Atomic bool stop;
	unsigned long rounds;
};

/* Everything a producer may write on its bells, as fast as it can: seqs
 * bumped and woken, heads thrown anywhere, hints naming groups of the
 * member's (tokens are small numbers), the daemon's news, or nothing. */
static void *scribble(void *arg)
{
	struct scribbler *s = arg;
	unsigned seed = 7;
	while (!atomic_load(&s->stop)) {
		for (unsigned b = 0; b < RING_BELL_SLOTS; b++) {
			struct ring_bell *bell = &s->bells[b];
			for (unsigned h = 0; h < RING_BELL_HINTS; h++)
				atomic_store(&bell->hint[h], rand_r(&seed) % 4 ? rand_r(&seed) % 40
									: rand_r(&seed));
			atomic_store(&bell->head, rand_r(&seed));
			atomic_fetch_add(&bell->seq, 1);
			syscall(SYS_futex, &bell->seq, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
		}
		s->rounds++;
		usleep(50);
	}
	return NULL;
}

/*
 * A member in many groups waits on bells (ring/layout.h): each producer
 * rings its own, and the member reads what is rung as hints. A producer
 * writing all over its bells meanwhile (seqs, heads, hints) costs the
 * member looks, never a message: another producer's messages to every
 * group all come, each group's in order.
 */
static void test_bells_scribbled(void)
{
	enum { GROUPS = 24, MSGS = 1500 };
	static char *names[GROUPS];
	pg_ctx *own = open_ctx(), *mem = open_ctx(), *evil = open_ctx(), *good = open_ctx();
	int n = 0;
	for (; n < GROUPS; n++) {
		char stem[16];
		snprintf(stem, sizeof(stem), "bells%d", n);
		names[n] = strdup(fresh_group(stem));
		if (pg_create(own, names[n]) || pg_join(mem, names[n], 0, NULL, NULL))
			break;
	}
	CU_ASSERT_EQUAL_FATAL(n, GROUPS);
	void *before[16], *after[16];
	unsigned nb = own_writable(RING_BELL_BYTES, before, 16);
	CU_ASSERT_EQUAL_FATAL(pg_send(evil, names[0], "e", 1), 0);
	unsigned na = own_writable(RING_BELL_BYTES, after, 16);
	CU_ASSERT_EQUAL_FATAL(na, nb + 1); /* the bells of evil's shelf */
	struct scribbler sc = {0};
	for (unsigned i = 0; i < na && !sc.bells; i++) {
		bool old = false;
		for (unsigned j = 0; j < nb; j++)
			old |= after[i] == before[j];
		if (!old)
			sc.bells = after[i];
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(sc.bells);
	pthread_t th;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, scribble, &sc), 0);
	static int next[GROUPS], seen[GROUPS];
	memset(next, 0, sizeof(next));
	memset(seen, 0, sizeof(seen));
	unsigned seed = 11;
	int sent = 0, got = 0, bad = 0;
	pg_message m;
	/* Sent in bursts the member reads between: it sleeps on its bells
	 * between them, so the rings matter. */
	while (got < MSGS && !bad) {
		for (int k = 0; k < 5 && sent < MSGS; k++, sent++) {
			int g = rand_r(&seed) % GROUPS;
			int v[2] = {g, next[g]++};
			if (pg_send(good, names[g], v, sizeof(v)))
				bad = 1;
		}
		while (got < sent && !bad) {
			int r = pg_recv(mem, &m, 5000);
			if (r) {
				printf("[pg_recv %d after %d of %d] ", r, got, MSGS);
				bad = 1;
				break;
			}
			if (m.kind != PG_MSG)
				continue;
			if (m.len == 1) /* evil's */
				continue;
			int v[2];
			if (m.len != sizeof(v)) {
				bad = 2;
				break;
			}
			memcpy(v, m.data, sizeof(v));
			/* Each group's in the order sent, none twice. */
			if (v[0] < 0 || v[0] >= GROUPS || strcmp(m.group, names[v[0]]) != 0 ||
			    v[1] != seen[v[0]]++) {
				bad = 3;
				break;
			}
			got++;
		}
		usleep(rand_r(&seed) % 500);
	}
	atomic_store(&sc.stop, true);
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(got, MSGS);
	CU_ASSERT(sc.rounds > 0);
	pg_close(good);
	pg_close(evil);
	pg_close(mem);
	for (int i = 0; i < n; i++) {
		pg_delete(own, names[i]);
		free(names[i]);
	}
	pg_close(own);
}

/* Inodes of our "pgroup:own" mappings of `bytes` bytes (0: any size),
 * writable or not. */
static unsigned own_inodes(size_t bytes, bool writable, unsigned long *ino, unsigned max)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	unsigned n = 0;
	while (n < max && f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi, i;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s %*s %*s %lu", &lo, &hi, perms, &i) == 4 &&
		    (!bytes || hi - lo == bytes) && (perms[1] == 'w') == writable &&
		    strstr(line, "pgroup:own"))
			ino[n++] = i;
	}
	if (f)
		fclose(f);
	return n;
}

/* The inode of our first such mapping; 0 when there is none. */
static unsigned long own_inode(size_t bytes, bool writable)
{
	unsigned long ino = 0;
	return own_inodes(bytes, writable, &ino, 1) ? ino : 0;
}

/*
 * A member maps a writer's area read-only from that writer's own shelf.
 * The shelf must hold nothing the member may not read: not the writer's
 * areas in groups other users may read (a read-only fd of a memfd reads
 * all of it). One writer in two groups of different modes: the member of
 * one gets no fd of the memfd the other's records are on.
 */
static void test_area_fd_confined(void)
{
	const char *ga = fresh_group("cls-a"), *gb = fresh_group("cls-b");
	pg_ctx *own = open_ctx(), *snd = open_ctx(), *mem = open_ctx();
	pg_group_opts oa = {.ring_bytes = 64 * 1024, .mode = 0600};
	pg_group_opts ob = {.ring_bytes = 128 * 1024, .mode = 0640};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(own, ga, &oa), 0);
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(own, gb, &ob), 0);
	CU_ASSERT_EQUAL(pg_join(mem, ga, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_send(snd, gb, "b", 1), 0);
	CU_ASSERT_EQUAL(pg_send(snd, ga, "a", 1), 0);
	pg_message m;
	CU_ASSERT_EQUAL(recv_msg(mem, &m, 2000), 0); /* maps the writer's area of a */
	/* The member's view (its own mapping, or a window on the shelf) is of
	 * another memfd than b's area. */
	unsigned long b_area = own_inode(128 * 1024, true), views[8];
	unsigned nv = own_inodes(0, false, views, 8);
	CU_ASSERT(b_area != 0 && nv >= 1);
	for (unsigned i = 0; i < nv; i++)
		CU_ASSERT_NOT_EQUAL(views[i], b_area);
	pg_close(mem);
	pg_close(snd);
	pg_delete(own, ga);
	pg_delete(own, gb);
	pg_close(own);
}

/*
 * A producer maps every member's page read-only from that member's own
 * shelf of pages. That shelf holds none of the member's areas, where its
 * records in every group of the class are (a read-only fd of a memfd
 * reads all of it): no page a sender maps is on a memfd a writer's area
 * is on. (Today w implies r, so a producer may read the group anyway:
 * this keeps a write-only right, should there be one, from leaking.)
 */
static void test_page_fd_confined(void)
{
	const char *g = fresh_group("pages");
	pg_ctx *own = open_ctx(), *mem = open_ctx(), *snd = open_ctx();
	pg_group_opts o = {.ring_bytes = 256 * 1024, .mode = 0620};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(own, g, &o), 0);
	CU_ASSERT_EQUAL(pg_join(mem, g, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_send(mem, g, "m", 1), 0); /* the member's area */
	CU_ASSERT_EQUAL(pg_send(snd, g, "s", 1), 0); /* maps the member's page */
	/* The member's page (its own mapping, writable) is on a memfd that
	 * the sender's view of it is of, and no writer's area is. */
	unsigned long page = own_inode(RING_PAGE, true), areas[8], views[8];
	unsigned na = own_inodes(256 * 1024, true, areas, 8);
	unsigned nv = own_inodes(0, false, views, 8), seen = 0;
	CU_ASSERT(page != 0 && na >= 2);
	for (unsigned j = 0; j < na; j++)
		CU_ASSERT_NOT_EQUAL(page, areas[j]);
	for (unsigned i = 0; i < nv; i++)
		seen += views[i] == page;
	CU_ASSERT(seen >= 1);
	pg_close(snd);
	pg_close(mem);
	pg_delete(own, g);
	pg_close(own);
}

/* Bytes of fd that are memory. */
static uint64_t fd_allocated(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

/*
 * A writer holds a writable fd of its own shelf, all of it (a raw client
 * gets it with its slot; here, the one behind our area's mapping): what it
 * writes outside its areas, far ahead of them, would be memory nobody was
 * charged for. The daemon punches it (an audit of a few shelves a tick);
 * the area keeps its bytes: the message in it is read after.
 */
static void test_shelf_bytes_outside_areas_punched(void)
{
	enum { JUNK = 8 << 20 };
	const char *g = fresh_group("junk");
	pg_ctx *own = open_ctx(), *snd = open_ctx(), *mem = open_ctx();
	pg_group_opts o = {.ring_bytes = 64 * 1024, .mode = 0600};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(own, g, &o), 0);
	CU_ASSERT_EQUAL(pg_join(mem, g, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_send(snd, g, "keep", 4), 0);
	/* The sender's area: our only writable 64 KiB "pgroup:own" mapping. */
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512], path[96] = "";
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && perms[1] == 'w' &&
		    hi - lo == 64 * 1024 && strstr(line, "pgroup:own"))
			snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", lo, hi);
	}
	if (f)
		fclose(f);
	int fd = path[0] ? open(path, O_RDWR | O_CLOEXEC) : -1;
	CU_ASSERT_FATAL(fd >= 0);
	uint64_t before = fd_allocated(fd);
	char *junk = malloc(1 << 20);
	CU_ASSERT_FATAL(junk != NULL);
	memset(junk, 0x5a, 1 << 20);
	const off_t far = (off_t)1 << 40; /* 1 TiB in: no range is there */
	for (int i = 0; i < JUNK >> 20; i++)
		CU_ASSERT_EQUAL(pwrite(fd, junk, 1 << 20, far + ((off_t)i << 20)), 1 << 20);
	/* (The audit may have punched some already: it runs each tick.) */
	/* Not a speed check: a bound on "never". */
	int tries = 0;
	while (fd_allocated(fd) > before + 64 * 1024 && tries++ < 200)
		nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
	CU_ASSERT(fd_allocated(fd) <= before + 64 * 1024);
	char back = 1;
	CU_ASSERT_EQUAL(pread(fd, &back, 1, far), 1);
	CU_ASSERT_EQUAL(back, 0);
	pg_message m;
	CU_ASSERT_EQUAL(recv_msg(mem, &m, 2000), 0);
	CU_ASSERT(m.len == 4 && memcmp(m.data, "keep", 4) == 0);
	free(junk);
	close(fd);
	pg_close(mem);
	pg_close(snd);
	pg_delete(own, g);
	pg_close(own);
}

/*
 * A member slot handed out and freed before a sender first looked: the
 * sender must still see that nobody holds room (its page tables cover
 * every slot handed out, free ones too), and send on past a ring's worth.
 */
static void test_sender_after_a_member_left(void)
{
	const char *g = fresh_group("left");
	pg_ctx *own = open_ctx(), *mem = open_ctx(), *snd = open_ctx();
	pg_group_opts o = {.ring_bytes = 64 * 1024, .max_msg = 1024};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(own, g, &o), 0);
	CU_ASSERT_EQUAL(pg_join(mem, g, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_leave(mem, g, 0), 0);
	/* 64 KiB of area, 2,048 order entries: four times round both. */
	int sent = 0, err = 0;
	for (; sent < 8192 && !(err = pg_trysend(snd, g, "x", 1)); sent++)
		;
	CU_ASSERT_EQUAL(err, 0);
	CU_ASSERT_EQUAL(sent, 8192);
	pg_close(snd);
	pg_close(mem);
	pg_delete(own, g);
	pg_close(own);
}

/* The order entry of position pos, in a sender's mapping of the data
 * memfd: as entry() in lib/ring/ring.c places it. */
static _Atomic uint64_t *entry_of(struct ring_data_hdr *dh, uint64_t pos)
{
	uint64_t lines = dh->order_slots / 8;
	_Atomic uint64_t *order = (_Atomic uint64_t *)((uint8_t *)dh + dh->hdr_bytes);
	return &order[((pos & (lines - 1)) << 3) | ((pos >> __builtin_ctzll(lines)) & 7)];
}

/* Sends "k<key>". */
static int send_key(pg_ctx *ctx, const char *g, int key)
{
	char b[16];
	int n = snprintf(b, sizeof(b), "k%d", key);
	return pg_send(ctx, g, b, (size_t)n);
}

/* Receives until `timeout_ms` pass with nothing or pg_recv fails: how many
 * of snd's keys came after a key not lower, and the error it ended with. */
struct keys_seen {
	int got, out_of_order, last, err;
};

static struct keys_seen recv_keys(pg_ctx *ctx, int last, int timeout_ms)
{
	struct keys_seen k = {.last = last};
	pg_message m;
	while ((k.err = pg_recv(ctx, &m, timeout_ms)) == 0) {
		int key;
		if (m.kind != PG_MSG || m.len < 2 || m.len > 8 || ((const char *)m.data)[0] != 'k')
			continue;
		char b[9] = {0};
		memcpy(b, m.data, m.len);
		key = atoi(b + 1);
		k.got++;
		k.out_of_order += key <= k.last;
		k.last = key > k.last ? key : k.last;
	}
	return k;
}

/*
 * A sender (same user: any sender maps the order writable) moves the tail
 * on past a gap, lets an honest sender claim past it, then moves it back
 * into the gap: the honest sender's later messages get earlier positions.
 * Every record is the honest sender's own, at the position it claimed; the
 * member must get them in the order they were sent or be told the group
 * is corrupt (-EBADMSG), never the later first.
 */
static void test_tail_rewound_into_a_gap(void)
{
	const char *g = fresh_group("rewind");
	pg_ctx *own = open_ctx(), *att = open_ctx(), *snd = open_ctx(), *mem = open_ctx();
	pg_group_opts o = {.ring_bytes = 64 * 1024, .stall_ms = 300};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(own, g, &o), 0);
	CU_ASSERT_EQUAL_FATAL(pg_join(mem, g, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(pg_send(att, g, "x", 1), 0);
	struct ring_data_hdr *dh = data_mapping(g);
	CU_ASSERT_PTR_NOT_NULL_FATAL(dh);
	CU_ASSERT_EQUAL(send_key(snd, g, 0), 0);
	struct keys_seen k = recv_keys(mem, -1, 500);
	CU_ASSERT_EQUAL(k.got, 1);
	uint64_t t = atomic_load(&dh->tail);
	atomic_store(&dh->tail, t + 3);
	CU_ASSERT_EQUAL(send_key(snd, g, 1), 0);
	CU_ASSERT_EQUAL(send_key(snd, g, 2), 0);
	atomic_store(&dh->tail, t + 1);
	/* Into the gap; the node may have seen the tail go back by now,
	 * and have called the group bad (-EBADMSG): just as good. */
	int e3 = send_key(snd, g, 3), e4 = send_key(snd, g, 4);
	CU_ASSERT(e3 == 0 || e3 == -EBADMSG);
	CU_ASSERT(e4 == 0 || e4 == -EBADMSG);
	/* Position t, never claimed, is cancelled after the stall limit. */
	struct keys_seen k2 = recv_keys(mem, k.last, 3000);
	printf("\n  after the rewind: got %d, out of order %d, ended with %s\n", k2.got,
	       k2.out_of_order, strerror(-k2.err));
	CU_ASSERT_EQUAL(k2.out_of_order, 0);
	CU_ASSERT_EQUAL(k2.err, -EBADMSG);
	pg_close(mem);
	pg_close(snd);
	pg_close(att);
	pg_delete(own, g);
	pg_close(own);
}

/*
 * A member reads some messages and leaves; a sender then empties the
 * order entry of the first of them and moves the tail back to it. The
 * member joins again: it must not start at that position and read the
 * rest again. The node saw the tail further on: the group is bad.
 */
static void test_tail_rewound_under_a_rejoin(void)
{
	const char *g = fresh_group("rejoin");
	pg_ctx *own = open_ctx(), *att = open_ctx(), *snd = open_ctx(), *mem = open_ctx();
	pg_group_opts o = {.ring_bytes = 64 * 1024};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(own, g, &o), 0);
	CU_ASSERT_EQUAL_FATAL(pg_send(att, g, "x", 1), 0);
	struct ring_data_hdr *dh = data_mapping(g);
	CU_ASSERT_PTR_NOT_NULL_FATAL(dh);
	CU_ASSERT_EQUAL_FATAL(pg_join(mem, g, 0, NULL, NULL), 0);
	uint64_t first = atomic_load(&dh->tail);
	for (int i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(send_key(snd, g, i), 0);
	struct keys_seen k = recv_keys(mem, -1, 300);
	CU_ASSERT_EQUAL(k.got, 5);
	CU_ASSERT_EQUAL(pg_leave(mem, g, 0), 0);
	atomic_store(entry_of(dh, first), 0);
	atomic_store(&dh->tail, first);
	int err = pg_join(mem, g, 0, NULL, NULL);
	struct keys_seen again = err ? (struct keys_seen){0} : recv_keys(mem, k.last, 500);
	printf("\n  joined again: %s; got %d, again %d\n", strerror(-err), again.got,
	       again.out_of_order);
	CU_ASSERT_EQUAL(again.out_of_order, 0);
	CU_ASSERT_EQUAL(err, -EBADMSG);
	pg_close(mem);
	pg_close(snd);
	pg_close(att);
	pg_delete(own, g);
	pg_close(own);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	CU_pSuite s = CU_add_suite("hostile", suite_start_daemon, suite_stop_daemon);
	CU_add_test(s, "headers zeroed: others still join and send", test_zeroed_headers);
	CU_add_test(s, "a member moving its own cursor back and forth", test_cursor_back_and_forth);
	CU_add_test(s, "a producer scribbling its bells loses no one's messages",
		    test_bells_scribbled);
	CU_add_test(s, "the directory cannot be made writable", test_directory_read_only);
	CU_add_test(s, "a sender writes its own area only, and cannot forge from",
		    test_sender_confined);
	CU_add_test(s, "a writer's area fd reads no group but its own's class",
		    test_area_fd_confined);
	CU_add_test(s, "a member's page fd reads none of its areas", test_page_fd_confined);
	CU_add_test(s, "bytes written outside a shelf's ranges are punched",
		    test_shelf_bytes_outside_areas_punched);
	CU_add_test(s, "a sender after a member left: no room held", test_sender_after_a_member_left);
	CU_add_test(s, "a sender rewinds the tail into a gap: nothing out of order",
		    test_tail_rewound_into_a_gap);
	CU_add_test(s, "a sender rewinds the tail under a rejoin: nothing read twice",
		    test_tail_rewound_under_a_rejoin);
	return run_cunit();
}

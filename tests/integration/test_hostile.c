// SPDX-License-Identifier: MIT
/*
 * A hostile member against a real pgroupd: it writes where its mappings let
 * it. What this build defends (docs/security.md): a header scribbled to zero
 * does not stop later joins and sends (sizes come from the daemon, never from
 * shared memory); a fake member slot whose cursor moves back and forth holds
 * senders no longer than the stall limit and is freed by the daemon's audit; a
 * real member whose slot is overwritten is told (PG_EVICTED), not silently
 * cut off. Kernel-enforced isolation of members is issue 9's next step.
 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "ring/layout.h"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Our mapping of one of `group`'s memfds (named "pgroup:<group>"): the one
 * of `bytes` bytes, writable if asked. NULL when there is none. */
static void *find_mapping(const char *group, size_t bytes, bool writable)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512], want[128];
	snprintf(want, sizeof(want), "pgroup:%.40s ", group);
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

static void test_zeroed_headers(void)
{
	const char *g = fresh_group("zero");
	pg_ctx *att = open_ctx(), *other = open_ctx();
	pg_group_opts o = {.ring_bytes = 64 * 1024};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(att, g, &o), 0);
	CU_ASSERT_EQUAL(pg_join(att, g, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_send(att, g, "x", 1), 0); /* a writable data mapping */
	struct ring_cursor_hdr *ch = find_mapping(g, RING_CURSOR_BYTES, true);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
	ch->magic = 0;
	ch->version = 0;
	ch->member_slots = 0;
	struct ring_data_hdr *dh = NULL;
	/* The data memfd's writable mapping: the one that is not the cursor. */
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	while (!dh && f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && strstr(line, g) &&
		    perms[1] == 'w' && hi - lo != RING_CURSOR_BYTES)
			dh = (struct ring_data_hdr *)lo;
	}
	if (f)
		fclose(f);
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
	struct ring_member *slot;
	_Atomic int stop;
};

/* A fake member whose cursor goes back and forth: no progress. */
static void *toggle(void *arg)
{
	struct toggler *t = arg;
	for (uint64_t i = 0; !atomic_load(&t->stop); i++) {
		atomic_store(&t->slot->cursor, i & 1);
		usleep(1000);
	}
	return NULL;
}

static void test_fake_member(void)
{
	const char *g = fresh_group("fake");
	pg_ctx *att = open_ctx(), *snd = open_ctx(), *good = open_ctx();
	pg_group_opts o = {.ring_bytes = 64 * 1024, .stall_ms = 200};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(att, g, &o), 0);
	CU_ASSERT_EQUAL(pg_join(att, g, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_join(good, g, 0, NULL, NULL), 0);
	struct ring_cursor_hdr *ch = find_mapping(g, RING_CURSOR_BYTES, true);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
	struct ring_member *slots = (struct ring_member *)((char *)ch + RING_MEMBERS_OFF);
	/* A free slot made ACTIVE by hand, below slot_hi so producers see it. */
	uint32_t fake = 100;
	atomic_store(&slots[fake].cursor, 0);
	atomic_store(&slots[fake].state, RING_MEMBER_WORD(7, RING_MEMBER_ACTIVE));
	atomic_store(&ch->slot_hi, fake + 1);
	struct toggler t = {.slot = &slots[fake]};
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
	fprintf(stderr, "\n  fake member: longest send %lld ms, good member got %d of %d\n",
		(long long)worst, got, 10 * 64);
	CU_ASSERT(worst < 200 + 1000);
	CU_ASSERT_EQUAL(got, 10 * 64);
	/* The daemon freed the forged slot. */
	CU_ASSERT_EQUAL(RING_STATE_OF(atomic_load(&slots[fake].state)), RING_MEMBER_FREE);
	pg_close(good);
	pg_close(snd);
	pg_close(att);
}

static void test_overwritten_slot_is_told(void)
{
	const char *g = fresh_group("told");
	pg_ctx *att = open_ctx(), *victim = open_ctx();
	CU_ASSERT_EQUAL_FATAL(pg_create(att, g), 0);
	CU_ASSERT_EQUAL(pg_join(att, g, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_join(victim, g, 0, NULL, NULL), 0);
	struct ring_cursor_hdr *ch = find_mapping(g, RING_CURSOR_BYTES, true);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
	struct ring_member *slots = (struct ring_member *)((char *)ch + RING_MEMBERS_OFF);
	/* The victim joined second: slot 1. Write FREE over it. */
	uint32_t w = atomic_load(&slots[1].state);
	CU_ASSERT_EQUAL_FATAL(RING_STATE_OF(w), RING_MEMBER_ACTIVE);
	atomic_store(&slots[1].state, RING_MEMBER_WORD(RING_GEN_OF(w), RING_MEMBER_FREE));
	usleep(200000); /* the daemon's audit runs each 50 ms */
	pg_message m;
	int err;
	do
		err = pg_recv(victim, &m, 1000);
	while (err == 0 && m.kind == PG_MSG);
	CU_ASSERT_EQUAL(err, 0);
	CU_ASSERT_EQUAL(m.kind, PG_EVICTED); /* told, not silently cut off */
	/* And it may come back. */
	CU_ASSERT_EQUAL(pg_join(victim, g, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_send(att, g, "back", 4), 0);
	CU_ASSERT_EQUAL(recv_msg(victim, &m, 2000), 0);
	CU_ASSERT(m.len == 4 && memcmp(m.data, "back", 4) == 0);
	pg_close(victim);
	pg_close(att);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	CU_pSuite s = CU_add_suite("hostile", suite_start_daemon, suite_stop_daemon);
	CU_add_test(s, "headers zeroed: others still join and send", test_zeroed_headers);
	CU_add_test(s, "a fake member moving back and forth", test_fake_member);
	CU_add_test(s, "an overwritten member slot is told", test_overwritten_slot_is_told);
	return run_cunit();
}

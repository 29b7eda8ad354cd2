// SPDX-License-Identifier: MIT
/*
 * Members that die, and writers that die mid-record, against a real pgroupd
 * (run once with the eBPF exit watcher and once with --no-bpf): a dead
 * member is gone, a dead writer's open claim is sealed so readers move on,
 * and only exit removes — a multi-threaded process whose main thread ended,
 * or a stopped one, stays a member.
 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "ring/layout.h"


static int claim_and_stop(void *arg, int up, int down)
{
	pg_ctx *ctx = open_ctx();
	void *buf;
	if (pg_send_claim(ctx, arg, 100, &buf))
		return 2;
	memset(buf, 'X', 100); /* written, never committed */
	write_all(up, "c", 1);
	for (;;)
		pause();
}

static int park_in_send(void *arg, int up, int down)
{
	setenv("PGROUP_TEST_PARK_IN_SEND", "1", 1);
	pg_ctx *ctx = open_ctx();
	write_all(up, "c", 1);
	pg_send(ctx, arg, "never", 5); /* parks after its claim */
	return 3;
}

/* A writer killed between claim and commit: its hole is sealed, the
 * messages behind it arrive, nothing of it is ever delivered. */
static void dead_writer(child_fn writer)
{
	const char *g = fresh_group("deadw");
	pg_ctx *mem = open_ctx(), *snd = open_ctx();
	CU_ASSERT_EQUAL_FATAL(pg_create(mem, g), 0);
	CU_ASSERT_EQUAL(pg_join(mem, g, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_send(snd, g, "before", 6), 0);
	struct child w;
	CU_ASSERT_EQUAL_FATAL(child_start(&w, writer, (void *)g), 0);
	char c;
	CU_ASSERT_EQUAL(child_read(&w, &c, 1, 5000), 0);
	usleep(20000); /* the hook parks right after the claim */
	CU_ASSERT_EQUAL(pg_send(snd, g, "after", 5), 0);
	pg_message m;
	CU_ASSERT_EQUAL(pg_recv(mem, &m, 2000), 0);
	CU_ASSERT(m.len == 6 && memcmp(m.data, "before", 6) == 0);
	/* The hole stops readers while its writer lives. */
	CU_ASSERT_EQUAL(pg_recv(mem, &m, 200), -ETIMEDOUT);
	child_kill(&w, SIGKILL);
	CU_ASSERT_EQUAL(child_wait(&w), 128 + SIGKILL);
	CU_ASSERT_EQUAL(pg_recv(mem, &m, 3000), 0);
	CU_ASSERT(m.kind == PG_MSG && m.len == 5 && memcmp(m.data, "after", 5) == 0);
	CU_ASSERT_EQUAL(pg_recv(mem, &m, 0), -EAGAIN);
	/* And the group goes on: a ring's worth and more. */
	char buf[900] = {0};
	for (int i = 0; i < 3000; i++) {
		CU_ASSERT_EQUAL_FATAL(pg_send(snd, g, buf, sizeof(buf)), 0);
		CU_ASSERT_EQUAL_FATAL(pg_recv(mem, &m, 2000), 0);
		CU_ASSERT_EQUAL_FATAL(m.len, sizeof(buf));
	}
	pg_close(snd);
	pg_close(mem);
}

static void test_dead_writer_claim(void)
{
	dead_writer(claim_and_stop);
}

static void test_dead_writer_in_send(void)
{
	dead_writer(park_in_send);
}

static void *linger(void *arg)
{
	usleep(600000);
	_exit(0); /* the last thread ends the process (its ctx is left open) */
}

static int main_thread_exits(void *arg, int up, int down)
{
	pg_ctx *ctx = open_ctx();
	if (pg_join(ctx, arg, 0, NULL, NULL))
		return 2;
	pthread_t t;
	if (pthread_create(&t, NULL, linger, NULL))
		return 3;
	write_all(up, "j", 1);
	pthread_exit(NULL); /* the main thread goes first */
}

static void test_multithreaded_member(void)
{
	const char *g = fresh_group("mt");
	pg_ctx *ctx = open_ctx();
	CU_ASSERT_EQUAL_FATAL(pg_create(ctx, g), 0);
	struct child c;
	CU_ASSERT_EQUAL_FATAL(child_start(&c, main_thread_exits, (void *)g), 0);
	char b;
	CU_ASSERT_EQUAL(child_read(&c, &b, 1, 5000), 0);
	usleep(300000);
	/* Its main thread has ended, the process has not: still a member. */
	CU_ASSERT_EQUAL(members_of(ctx, g, c.pid), 1);
	pid_t pid = c.pid;
	CU_ASSERT_EQUAL(child_wait(&c), 0);
	CU_ASSERT_EQUAL(wait_members(ctx, g, pid, 0), 0);
	pg_close(ctx);
}

static int idle_member(void *arg, int up, int down)
{
	pg_ctx *ctx = open_ctx();
	if (pg_join(ctx, arg, 0, NULL, NULL))
		return 2;
	write_all(up, "j", 1);
	char c;
	read_all(down, &c, 1, 20000);
	pg_close(ctx);
	return 0;
}

static void test_stopped_member_stays(void)
{
	const char *g = fresh_group("stop");
	pg_ctx *ctx = open_ctx();
	CU_ASSERT_EQUAL_FATAL(pg_create(ctx, g), 0);
	struct child c;
	CU_ASSERT_EQUAL_FATAL(child_start(&c, idle_member, (void *)g), 0);
	char b;
	CU_ASSERT_EQUAL(child_read(&c, &b, 1, 5000), 0);
	child_kill(&c, SIGSTOP);
	usleep(300000);
	CU_ASSERT_EQUAL(members_of(ctx, g, c.pid), 1); /* stopped is not dead */
	child_kill(&c, SIGCONT);
	pid_t pid = c.pid;
	child_write(&c, "q", 1);
	CU_ASSERT_EQUAL(child_wait(&c), 0);
	CU_ASSERT_EQUAL(wait_members(ctx, g, pid, 0), 0);
	pg_close(ctx);
}

/* Many members killed at once: all gone, each with PG_EXITED. */
static void test_mass_kill(void)
{
	const char *g = fresh_group("mass");
	pg_ctx *ctx = open_ctx();
	CU_ASSERT_EQUAL_FATAL(pg_create(ctx, g), 0);
	CU_ASSERT_EQUAL(pg_monitor(ctx, g), 0);
	CU_ASSERT_EQUAL(pg_join(ctx, g, 0, NULL, NULL), 0);
	enum { N = 16 };
	struct child c[N];
	for (int i = 0; i < N; i++) {
		CU_ASSERT_EQUAL_FATAL(child_start(&c[i], idle_member, (void *)g), 0);
		char b;
		CU_ASSERT_EQUAL(child_read(&c[i], &b, 1, 5000), 0);
	}
	for (int i = 0; i < N; i++)
		child_kill(&c[i], SIGKILL);
	for (int i = 0; i < N; i++)
		child_wait(&c[i]);
	int joined = 0, exited = 0;
	pg_message m;
	while (exited < N && pg_recv(ctx, &m, 3000) == 0) {
		joined += m.kind == PG_JOINED;
		exited += m.kind == PG_EXITED;
	}
	CU_ASSERT_EQUAL(joined, N + 1); /* ours too */
	CU_ASSERT_EQUAL(exited, N);
	pg_member *list;
	size_t n;
	CU_ASSERT_EQUAL(pg_members(ctx, g, &list, &n), 0);
	CU_ASSERT_EQUAL(n, 1);
	free(list);
	pg_close(ctx);
}

static int claim_then_commit_late(void *arg, int up, int down)
{
	pg_ctx *ctx = open_ctx();
	void *buf;
	if (pg_send_claim(ctx, arg, 100, &buf))
		return 2;
	write_all(up, "c", 1);
	char go;
	if (read_all(down, &go, 1, 20000))
		return 3;
	/* Wakes up long after the node cancelled us, and writes anyway. */
	memset(buf, 'Z', 100);
	int rc = pg_send_commit(ctx, buf);
	write_all(up, &rc, sizeof(rc));
	pg_close(ctx);
	return 0;
}

/* A 64 KiB group with a 200 ms stall limit, `mem` a member, and a writer
 * child running `writer` that has said it holds its claim. */
static const char *stuck_setup(const char *stem, child_fn writer, pg_ctx **mem, struct child *w)
{
	const char *g = fresh_group(stem);
	*mem = open_ctx();
	pg_group_opts o = {.ring_bytes = 64 * 1024, .max_msg = 1024, .stall_ms = 200};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(*mem, g, &o), 0);
	CU_ASSERT_EQUAL(pg_join(*mem, g, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(child_start(w, writer, (void *)g), 0);
	char c;
	CU_ASSERT_EQUAL(child_read(w, &c, 1, 5000), 0);
	return g;
}

/* A live writer that holds its claim past the stall limit is cancelled:
 * readers move on, its late commit returns -ECANCELED and is never seen,
 * and the space it may still write is not reused before it notices. */
static void test_stuck_writer_cancelled(void)
{
	pg_ctx *mem, *snd = open_ctx();
	struct child w;
	const char *g = stuck_setup("stuck", claim_then_commit_late, &mem, &w);
	CU_ASSERT_EQUAL(pg_send(snd, g, "after", 5), 0);
	pg_message m;
	CU_ASSERT_EQUAL(pg_recv(mem, &m, 100), -ETIMEDOUT); /* held by the claim */
	CU_ASSERT_EQUAL(pg_recv(mem, &m, 3000), 0);         /* cancelled: moves on */
	CU_ASSERT(m.kind == PG_MSG && m.len == 5 && memcmp(m.data, "after", 5) == 0);
	/* Traffic flows while the writer sleeps on (less than a ring). */
	char buf[900];
	for (int i = 0; i < 40; i++) {
		memset(buf, i, sizeof(buf));
		CU_ASSERT_EQUAL_FATAL(pg_send(snd, g, buf, sizeof(buf)), 0);
		CU_ASSERT_EQUAL_FATAL(pg_recv(mem, &m, 2000), 0);
		CU_ASSERT_EQUAL(((const char *)m.data)[0], i);
	}
	child_write(&w, "g", 1);
	int rc = 0;
	CU_ASSERT_EQUAL(child_read(&w, &rc, sizeof(rc), 5000), 0);
	CU_ASSERT_EQUAL(rc, -ECANCELED);
	CU_ASSERT_EQUAL(child_wait(&w), 0);
	/* Its record never shows, and now the whole ring is usable again. */
	for (int i = 0; i < 300; i++) {
		memset(buf, 'a' + i % 26, sizeof(buf));
		CU_ASSERT_EQUAL_FATAL(pg_send(snd, g, buf, sizeof(buf)), 0);
		CU_ASSERT_EQUAL_FATAL(pg_recv(mem, &m, 2000), 0);
		CU_ASSERT_EQUAL_FATAL(m.len, sizeof(buf));
		CU_ASSERT_EQUAL(((const char *)m.data)[0], 'a' + i % 26);
	}
	CU_ASSERT_EQUAL(pg_recv(mem, &m, 0), -EAGAIN);
	pg_close(snd);
	pg_close(mem);
}

struct filler {
	const char *group;
	int sent;
	int err;
};

static void *fill_thread(void *arg)
{
	struct filler *f = arg;
	pg_ctx *ctx = open_ctx();
	char buf[900];
	for (f->sent = 0; f->sent < 200; f->sent++) {
		memset(buf, f->sent, sizeof(buf));
		if ((f->err = pg_send(ctx, f->group, buf, sizeof(buf))))
			break;
	}
	pg_close(ctx);
	return NULL;
}

/* A member waiting at a stuck claim is not lagging: a sender blocked by
 * that claim never evicts it, the claim is cancelled, and the group runs
 * on while the writer still sleeps inside it — all 200 messages, many
 * rings' worth of the 64 KiB group, before the writer even wakes. Nobody
 * loses anything. */
static void test_stuck_claim_evicts_nobody(void)
{
	pg_ctx *mem;
	struct child w;
	const char *g = stuck_setup("noevict", claim_then_commit_late, &mem, &w);
	struct filler f = {.group = g};
	pthread_t t;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, fill_thread, &f), 0);
	pg_message m;
	int got = 0;
	while (got < 200 && pg_recv(mem, &m, 3000) == 0) {
		CU_ASSERT_EQUAL_FATAL(m.kind, PG_MSG); /* never PG_EVICTED */
		CU_ASSERT_EQUAL(((const char *)m.data)[0], (char)got);
		got++;
	}
	CU_ASSERT_EQUAL(got, 200);
	child_write(&w, "g", 1); /* the writer wakes and notices */
	int rc = 0;
	CU_ASSERT_EQUAL(child_read(&w, &rc, sizeof(rc), 5000), 0);
	CU_ASSERT_EQUAL(rc, -ECANCELED);
	CU_ASSERT_EQUAL(child_wait(&w), 0);
	CU_ASSERT_EQUAL(pg_recv(mem, &m, 200), -ETIMEDOUT); /* its record never shows */
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(f.err, 0);
	CU_ASSERT_EQUAL(got, 200);
	pg_close(mem);
}

/* A writer that forges the tail far past every member: every claim fails
 * cleanly, the node marks the group bad, survives and serves other groups. */
static void test_forged_tail(void)
{
	const char *g = fresh_group("tail"), *ok = fresh_group("ok");
	pg_ctx *ctx = open_ctx(), *other = open_ctx(), *third = open_ctx();
	pg_group_opts o = {.ring_bytes = 64 * 1024, .max_msg = 1024};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(ctx, g, &o), 0);
	CU_ASSERT_EQUAL(pg_join(other, g, 0, NULL, NULL), 0);
	/* A sender maps the group's data memfd writable: find it. */
	CU_ASSERT_EQUAL_FATAL(pg_send(ctx, g, "w", 1), 0);
	struct ring_data_hdr *h = NULL;
	char want[300], line[512];
	snprintf(want, sizeof(want), "pgroup:%.40s ", g);
	FILE *f = fopen("/proc/self/maps", "re");
	while (!h && f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];
		const char *name = strstr(line, "pgroup:");
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && perms[1] == 'w' && name &&
		    strncmp(name, want, strlen(want) - 1) == 0 &&
		    hi - lo == RING_DATA_BYTES(64 * 1024))
			h = (struct ring_data_hdr *)lo;
	}
	if (f)
		fclose(f);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	CU_ASSERT_EQUAL_FATAL(h->magic, RING_DATA_MAGIC);
	atomic_store(&h->tail, 1ull << 40);
	CU_ASSERT_EQUAL(pg_send(ctx, g, "x", 1), -EBADMSG);
	CU_ASSERT(pg_join(third, g, 0, NULL, NULL) < 0); /* no JOINED can be placed */
	CU_ASSERT_EQUAL(pg_create(third, ok), 0);
	CU_ASSERT_EQUAL(pg_join(third, ok, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_send(ctx, ok, "y", 1), 0);
	pg_message m;
	CU_ASSERT_EQUAL(pg_recv(third, &m, 1000), 0);
	CU_ASSERT_EQUAL(m.len, 1);
	pg_close(third);
	pg_close(other);
	pg_close(ctx);
}

/* A writer SIGSTOPped inside pg_send: cancelled after the stall limit, the
 * group moves on while it stays stopped — ten rings' worth, every message
 * in order — and once it is killed, still. */
static void test_stopped_writer_in_send(void)
{
	pg_ctx *mem, *snd = open_ctx();
	struct child w;
	const char *g = stuck_setup("stopw", park_in_send, &mem, &w);
	usleep(20000);
	child_kill(&w, SIGSTOP);
	CU_ASSERT_EQUAL(pg_send(snd, g, "after", 5), 0);
	pg_message m;
	CU_ASSERT_EQUAL(pg_recv(mem, &m, 3000), 0);
	CU_ASSERT(m.kind == PG_MSG && m.len == 5 && memcmp(m.data, "after", 5) == 0);
	CU_ASSERT_EQUAL(members_of(mem, g, getpid()), 1);
	char buf[900];
	for (int i = 0; i < 10 * 64 * 1024 / 900; i++) {
		memset(buf, i, sizeof(buf));
		CU_ASSERT_EQUAL_FATAL(pg_send(snd, g, buf, sizeof(buf)), 0);
		CU_ASSERT_EQUAL_FATAL(pg_recv(mem, &m, 2000), 0);
		CU_ASSERT_EQUAL_FATAL(m.len, sizeof(buf));
		CU_ASSERT_EQUAL(((const char *)m.data)[899], (char)i);
	}
	child_kill(&w, SIGKILL);
	CU_ASSERT_EQUAL(child_wait(&w), 128 + SIGKILL);
	for (int i = 0; i < 300; i++) {
		CU_ASSERT_EQUAL_FATAL(pg_send(snd, g, buf, sizeof(buf)), 0);
		CU_ASSERT_EQUAL_FATAL(pg_recv(mem, &m, 2000), 0);
	}
	pg_close(snd);
	pg_close(mem);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	CU_pSuite s = CU_add_suite("purge", suite_start_daemon, suite_stop_daemon);
	CU_add_test(s, "dead writer: open pg_send_claim", test_dead_writer_claim);
	CU_add_test(s, "dead writer: inside pg_send (test hook)", test_dead_writer_in_send);
	CU_add_test(s, "main thread exits first: still a member", test_multithreaded_member);
	CU_add_test(s, "SIGSTOPped member stays", test_stopped_member_stays);
	CU_add_test(s, "16 members killed at once", test_mass_kill);
	CU_add_test(s, "stuck writer: claim cancelled, late commit -ECANCELED",
		    test_stuck_writer_cancelled);
	CU_add_test(s, "writer SIGSTOPped inside pg_send", test_stopped_writer_in_send);
	CU_add_test(s, "a stuck claim evicts nobody", test_stuck_claim_evicts_nobody);
	CU_add_test(s, "a forged, unaligned tail", test_forged_tail);
	return run_cunit();
}

// SPDX-License-Identifier: MIT
/*
 * Quotas: one user cannot starve the node. A daemon of its own with small
 * limits; processes run as other uids (the tests run as root). A greedy
 * uid that creates and fills 64 MiB groups is refused with -EDQUOT, and
 * another uid and root still create and send; handles and memberships are
 * limited per uid; the node's own ring memory cap gives -ENOSPC; what a
 * uid gave back (deleted groups, a sender gone) it may use again.
 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define NOBODY 65534
#define OTHER 65533
#define MIB (1024 * 1024)

static struct daemon_proc qd;

/* A daemon of our own with these extra flags. */
static int start_with(const char *flags)
{
	return daemon_start_with(&qd, "quota", flags, 0);
}

static int become(uid_t uid)
{
	return setresgid(uid, uid, uid) || setresuid(uid, uid, uid) ? -1 : 0;
}

/* Create groups of 64 MiB as `uid` and fill each with a member that does
 * not read, until refused; report how many were made and the refusal. */
struct greedy {
	uid_t uid;
	const char *stem;
};

static int greedy_child(void *arg, int up, int down)
{
	struct greedy *g = arg;
	if (become(g->uid))
		return 2;
	pg_ctx *ctx;
	if (pg_open(&ctx, qd.socket))
		return 3;
	static char buf[60000];
	memset(buf, 'g', sizeof(buf));
	int made = 0, err = 0;
	for (int i = 0; i < 64; i++) {
		char name[64];
		snprintf(name, sizeof(name), "%s-%d", g->stem, i);
		pg_group_opts o = {.ring_bytes = 64 * MIB, .mode = 0666};
		if ((err = pg_create_opts(ctx, name, &o)))
			break;
		made++;
		/* Fill it: a member that never reads holds what we send. */
		if ((err = pg_join(ctx, name, 0, NULL, NULL)))
			break;
		int sent = 0;
		while ((err = pg_trysend(ctx, name, buf, sizeof(buf))) == 0)
			sent++;
		if (err == -EAGAIN)
			err = 0;
		if (err || sent < 64 * MIB / (int)sizeof(buf) / 2)
			break;
	}
	int rep[2] = {made, err};
	write_all(up, rep, sizeof(rep));
	char c;
	read_all(down, &c, 1, 30000); /* hold everything until told */
	pg_close(ctx);
	return 0;
}

/* As `uid`: create a group, join it, send and receive one message. */
static int create_and_send(uid_t uid, const char *name)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (uid && become(uid))
			_exit(2);
		pg_ctx *ctx;
		if (pg_open(&ctx, qd.socket))
			_exit(3);
		pg_group_opts o = {.ring_bytes = 64 * 1024};
		int err = pg_create_opts(ctx, name, &o);
		if (!err)
			err = pg_join(ctx, name, 0, NULL, NULL);
		if (!err)
			err = pg_send(ctx, name, "hi", 2);
		pg_message m;
		if (!err)
			err = pg_recv(ctx, &m, 2000);
		if (!err && (m.kind != PG_MSG || m.len != 2))
			err = -EPROTO;
		pg_close(ctx);
		_exit(err ? 10 + (-err % 100) : 0);
	}
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void test_greedy_user_refused(void)
{
	CU_ASSERT_EQUAL_FATAL(start_with("--max-ring-memory 256M"), 0);
	struct greedy gr = {.uid = NOBODY, .stem = "greedy"};
	struct child c;
	CU_ASSERT_EQUAL_FATAL(child_start(&c, greedy_child, &gr), 0);
	int rep[2] = {-1, 0};
	CU_ASSERT_EQUAL(child_read(&c, rep, sizeof(rep), 60000), 0);
	fprintf(stderr, "\n  greedy uid %d: %d groups of 64 MiB made and filled, then %s\n",
		NOBODY, rep[0], pg_strerror(rep[1]));
	/* Each group costs its owner 64 MiB (events) + 16 MiB (order), and its
	 * sender 64 MiB: one fits in 256 MiB, a second group does, its sending
	 * does not. */
	CU_ASSERT(rep[0] >= 1 && rep[0] <= 2);
	CU_ASSERT_EQUAL(rep[1], -EDQUOT);
	/* Everyone else is unaffected, while the greedy one holds it all. */
	CU_ASSERT_EQUAL(create_and_send(OTHER, "other-1"), 0);
	CU_ASSERT_EQUAL(create_and_send(0, "root-1"), 0);
	child_write(&c, "x", 1);
	CU_ASSERT_EQUAL(child_wait(&c), 0);
	CU_ASSERT_EQUAL(daemon_stop(&qd), 0);
}

/* Groups live until deleted and count against their creator; deleting
 * gives the quota back. */
static int groups_child(void *arg, int up, int down)
{
	if (become(NOBODY))
		return 2;
	pg_ctx *ctx;
	if (pg_open(&ctx, qd.socket))
		return 3;
	int errs[4];
	errs[0] = pg_create(ctx, "g-a");
	errs[1] = pg_create(ctx, "g-b");
	errs[2] = pg_create(ctx, "g-c"); /* over --max-groups 2 */
	errs[3] = pg_delete(ctx, "g-a") || pg_create(ctx, "g-d");
	write_all(up, errs, sizeof(errs));
	pg_close(ctx);
	return 0;
}

static void test_groups_limit(void)
{
	CU_ASSERT_EQUAL_FATAL(start_with("--max-groups 2"), 0);
	struct child c;
	CU_ASSERT_EQUAL_FATAL(child_start(&c, groups_child, NULL), 0);
	int errs[4] = {1, 1, 1, 1};
	CU_ASSERT_EQUAL(child_read(&c, errs, sizeof(errs), 10000), 0);
	CU_ASSERT_EQUAL(errs[0], 0);
	CU_ASSERT_EQUAL(errs[1], 0);
	CU_ASSERT_EQUAL(errs[2], -EDQUOT);
	CU_ASSERT_EQUAL(errs[3], 0);
	CU_ASSERT_EQUAL(child_wait(&c), 0);
	/* The groups outlive their creator, and root is never locked out. */
	pg_ctx *root;
	CU_ASSERT_EQUAL_FATAL(pg_open(&root, qd.socket), 0);
	CU_ASSERT_EQUAL(pg_create(root, "g-b"), -EEXIST);
	for (int i = 0; i < 4; i++) {
		char name[32];
		snprintf(name, sizeof(name), "root-%d", i);
		CU_ASSERT_EQUAL(pg_create(root, name), 0);
	}
	pg_close(root);
	CU_ASSERT_EQUAL(daemon_stop(&qd), 0);
}

static int handles_child(void *arg, int up, int down)
{
	if (become(NOBODY))
		return 2;
	pg_ctx *ctx[5];
	int errs[5];
	for (int i = 0; i < 5; i++)
		errs[i] = pg_open(&ctx[i], qd.socket);
	/* Memberships: 3 of our handles may join, the 4th may not. */
	int joins[4] = {1, 1, 1, 1};
	if (!errs[0] && pg_create(ctx[0], "h") == 0)
		for (int i = 0; i < 4; i++)
			joins[i] = pg_join(ctx[i], "h", 0, NULL, NULL);
	write_all(up, errs, sizeof(errs));
	write_all(up, joins, sizeof(joins));
	for (int i = 0; i < 5; i++)
		if (!errs[i])
			pg_close(ctx[i]);
	/* Closed handles are given back. */
	pg_ctx *again;
	int err = pg_open(&again, qd.socket);
	write_all(up, &err, sizeof(err));
	if (!err)
		pg_close(again);
	return 0;
}

static void test_handles_and_memberships(void)
{
	CU_ASSERT_EQUAL_FATAL(start_with("--max-handles 4 --max-memberships 3"), 0);
	struct child c;
	CU_ASSERT_EQUAL_FATAL(child_start(&c, handles_child, NULL), 0);
	int errs[5], joins[4], again = 1;
	CU_ASSERT_EQUAL(child_read(&c, errs, sizeof(errs), 10000), 0);
	CU_ASSERT_EQUAL(child_read(&c, joins, sizeof(joins), 10000), 0);
	CU_ASSERT_EQUAL(child_read(&c, &again, sizeof(again), 10000), 0);
	for (int i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(errs[i], 0);
	CU_ASSERT_EQUAL(errs[4], -EDQUOT);
	CU_ASSERT(joins[0] == 0 && joins[1] == 0 && joins[2] == 0);
	CU_ASSERT_EQUAL(joins[3], -EDQUOT);
	CU_ASSERT_EQUAL(again, 0);
	CU_ASSERT_EQUAL(child_wait(&c), 0);
	CU_ASSERT_EQUAL(daemon_stop(&qd), 0);
}

/* The node's cap is for all uids together: -ENOSPC, root excepted. */
static int node_child(void *arg, int up, int down)
{
	if (become(*(uid_t *)arg))
		return 2;
	pg_ctx *ctx;
	if (pg_open(&ctx, qd.socket))
		return 3;
	int err = 0, made = 0;
	for (int i = 0; i < 8 && !err; i++) {
		char name[64];
		snprintf(name, sizeof(name), "n%u-%d", (unsigned)*(uid_t *)arg, i);
		pg_group_opts o = {.ring_bytes = 16 * MIB};
		if (!(err = pg_create_opts(ctx, name, &o)))
			made++;
	}
	int rep[2] = {made, err};
	write_all(up, rep, sizeof(rep));
	char c;
	read_all(down, &c, 1, 30000);
	pg_close(ctx);
	return 0;
}

static void test_node_cap(void)
{
	/* A 16 MiB group costs its owner a little over 16 + 4 MiB (events,
	 * order, cursors): 4 fit in 100 MiB, whoever owns them. */
	CU_ASSERT_EQUAL_FATAL(start_with("--max-node-memory 100M"), 0);
	uid_t a = NOBODY, b = OTHER;
	struct child ca, cb;
	int ra[2] = {0}, rb[2] = {0};
	CU_ASSERT_EQUAL_FATAL(child_start(&ca, node_child, &a), 0);
	CU_ASSERT_EQUAL(child_read(&ca, ra, sizeof(ra), 10000), 0);
	CU_ASSERT_EQUAL_FATAL(child_start(&cb, node_child, &b), 0);
	CU_ASSERT_EQUAL(child_read(&cb, rb, sizeof(rb), 10000), 0);
	fprintf(stderr, "\n  node cap: uid %d made %d (%s), uid %d made %d (%s)\n", NOBODY,
		ra[0], pg_strerror(ra[1]), OTHER, rb[0], pg_strerror(rb[1]));
	CU_ASSERT_EQUAL(ra[0] + rb[0], 4);
	CU_ASSERT_EQUAL(ra[1], -ENOSPC);
	CU_ASSERT_EQUAL(rb[1], -ENOSPC);
	CU_ASSERT_EQUAL(create_and_send(0, "root-full"), 0);
	child_write(&ca, "x", 1);
	child_write(&cb, "x", 1);
	CU_ASSERT_EQUAL(child_wait(&ca), 0);
	CU_ASSERT_EQUAL(child_wait(&cb), 0);
	CU_ASSERT_EQUAL(daemon_stop(&qd), 0);
}

/* A sender pays for its area while it holds it; once it is gone and its
 * records are read, the area's memory goes back to the system. */
static int sender_child(void *arg, int up, int down)
{
	if (become(NOBODY))
		return 2;
	pg_ctx *ctx;
	if (pg_open(&ctx, qd.socket))
		return 3;
	static char buf[50000];
	memset(buf, 's', sizeof(buf));
	int err = 0;
	for (int i = 0; i < 100 && !err; i++)
		err = pg_send(ctx, arg, buf, sizeof(buf));
	write_all(up, &err, sizeof(err));
	pg_close(ctx);
	return 0;
}

static long long group_memory(const char *group)
{
	char cmd[512];
	const char *cli = getenv("PGROUP_CLI");
	snprintf(cmd, sizeof(cmd), "%s --socket %s groups --json", cli ? cli : "pgroup",
		 qd.socket);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	static char out[1 << 16];
	size_t n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	pclose(p);
	char key[300];
	snprintf(key, sizeof(key), "{\"group\":\"%s\"", group);
	char *at = strstr(out, key), *mem = at ? strstr(at, "\"memory\":") : NULL;
	return mem ? atoll(mem + 9) : -1;
}

static void test_sender_area_given_back(void)
{
	CU_ASSERT_EQUAL_FATAL(start_with(""), 0);
	pg_ctx *ctx;
	CU_ASSERT_EQUAL_FATAL(pg_open(&ctx, qd.socket), 0);
	pg_group_opts o = {.ring_bytes = 8 * MIB, .mode = 0666};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(ctx, "area", &o), 0);
	CU_ASSERT_EQUAL(pg_join(ctx, "area", 0, NULL, NULL), 0);
	struct child c;
	CU_ASSERT_EQUAL_FATAL(child_start(&c, sender_child, "area"), 0);
	int err = 1;
	CU_ASSERT_EQUAL(child_read(&c, &err, sizeof(err), 10000), 0);
	CU_ASSERT_EQUAL(err, 0);
	CU_ASSERT_EQUAL(child_wait(&c), 0);
	long long full = group_memory("area");
	/* Read everything: the gone sender's area is no longer needed. */
	pg_message m;
	int got = 0;
	while (pg_recv(ctx, &m, 200) == 0)
		got += m.kind == PG_MSG;
	CU_ASSERT_EQUAL(got, 100);
	long long after = -1;
	for (int i = 0; i < 40; i++) {
		usleep(50000); /* reclaimed on the daemon's tick */
		if ((after = group_memory("area")) >= 0 && after < full - 4 * MIB)
			break;
	}
	fprintf(stderr, "\n  sender area: group memory %lld KiB with 100 x 50 KB unread, %lld KiB "
		"after they were read and the sender left\n", full / 1024, after / 1024);
	CU_ASSERT(full >= 100 * 50000);
	CU_ASSERT(after >= 0 && after < 1 * MIB);
	pg_close(ctx);
	CU_ASSERT_EQUAL(daemon_stop(&qd), 0);
}

int main(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "quota tests switch uids: run as root\n");
		return 77;
	}
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("quota", NULL, NULL);
	CU_add_test(s, "a greedy uid is refused, others are not", test_greedy_user_refused);
	CU_add_test(s, "groups per uid; root never locked out", test_groups_limit);
	CU_add_test(s, "handles and memberships per uid", test_handles_and_memberships);
	CU_add_test(s, "the node's ring memory cap", test_node_cap);
	CU_add_test(s, "a gone sender's area is given back", test_sender_area_given_back);
	return run_cunit();
}

// SPDX-License-Identifier: MIT
/*
 * Members on several nodes, through the public API: a group mastered on
 * one node, joined from others. Every member on every node receives every
 * message and event in one order with the same seq; joins give the exact
 * old-member list; a member killed on one node is PG_EXITED everywhere at
 * one place; a lost node's members exit; a lost master is PG_GROUP_DOWN
 * and -EHOSTUNREACH.
 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mesh_harness.h"
#include "proto/ctl.h"

static const char *cookie;
static struct daemon_proc na, nb, nc;

static pg_ctx *open_on(const struct daemon_proc *d)
{
	pg_ctx *ctx = NULL;
	CU_ASSERT_FATAL(pg_open(&ctx, d->socket) == 0);
	return ctx;
}

static int start_three(void)
{
	if (mesh_node(&na, "na", 0, cookie, NULL, 0, NULL))
		return -1;
	const struct daemon_proc *pa[] = {&na};
	if (mesh_node(&nb, "nb", 0, cookie, pa, 1, NULL) || mesh_node(&nc, "nc", 0, cookie, pa, 1, NULL))
		return -1;
	const struct daemon_proc *all[] = {&na, &nb, &nc};
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 3; j++)
			if (i != j && mesh_wait(all[i], all[j]->node, CTL_NODE_UP, 10000) < 0)
				return -1;
	return 0;
}

static int stop_all(void)
{
	struct daemon_proc *all[] = {&nc, &nb, &na};
	int bad = 0;
	for (int i = 0; i < 3; i++)
		if (all[i]->pid > 0 && daemon_stop(all[i]))
			bad = 1;
	return bad ? -1 : 0;
}

/* The next record of any kind within timeout_ms: 0 or the error. */
static int next(pg_ctx *ctx, pg_message *m, int timeout_ms)
{
	return pg_recv(ctx, m, timeout_ms);
}

static bool listed(const pg_member *list, size_t n, const char *node, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i].node, node) && list[i].pid == pid)
			return true;
	return false;
}

/* Joins across nodes: the old-member lists, the events with their nodes,
 * pg_members on every node. */
static void test_join_across(void)
{
	pg_ctx *a = open_on(&na), *b = open_on(&nb), *c = open_on(&nc);
	CU_ASSERT_EQUAL_FATAL(pg_create(a, "rep-join"), 0);
	CU_ASSERT_EQUAL(pg_join(a, "rep-join", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_monitor(a, "rep-join"), 0);
	pg_member *old;
	size_t n_old;
	CU_ASSERT_EQUAL_FATAL(pg_join(b, "rep-join", 0, &old, &n_old), 0);
	CU_ASSERT_EQUAL(n_old, 1);
	CU_ASSERT(listed(old, n_old, "na", getpid()));
	free(old);
	CU_ASSERT_EQUAL(pg_monitor(b, "rep-join"), 0);
	CU_ASSERT_EQUAL_FATAL(pg_join(c, "rep-join", 0, &old, &n_old), 0);
	CU_ASSERT_EQUAL(n_old, 2);
	CU_ASSERT(listed(old, n_old, "na", getpid()) && listed(old, n_old, "nb", getpid()));
	free(old);
	CU_ASSERT_EQUAL(pg_join(c, "rep-join", 0, NULL, NULL), -EALREADY);
	/* a sees b and c join, b sees c join, at the same places. */
	pg_message m;
	uint64_t seq_b = 0, seq_c = 0;
	while (next(a, &m, 2000) == 0) {
		if (m.kind == PG_JOINED && !strcmp(m.from.node, "nb"))
			seq_b = m.seq;
		if (m.kind == PG_JOINED && !strcmp(m.from.node, "nc")) {
			seq_c = m.seq;
			break;
		}
	}
	CU_ASSERT(seq_b && seq_c && seq_b < seq_c);
	int got = 0;
	while (next(b, &m, 2000) == 0) {
		if (m.kind == PG_JOINED && !strcmp(m.from.node, "nc")) {
			CU_ASSERT_EQUAL(m.seq, seq_c);
			got = 1;
			break;
		}
	}
	CU_ASSERT(got);
	/* The master's view, from every node. */
	pg_ctx *all[] = {a, b, c};
	for (int i = 0; i < 3; i++) {
		pg_member *list;
		size_t n;
		CU_ASSERT_EQUAL(pg_members(all[i], "rep-join", &list, &n), 0);
		CU_ASSERT_EQUAL(n, 3);
		CU_ASSERT(listed(list, n, "na", getpid()) && listed(list, n, "nb", getpid()) &&
			  listed(list, n, "nc", getpid()));
		free(list);
	}
	/* b leaves: PG_LEFT from nb, in a's order; members lists shrink. */
	CU_ASSERT_EQUAL(pg_leave(b, "rep-join", 0), 0);
	got = 0;
	while (!got && next(a, &m, 2000) == 0)
		got = m.kind == PG_LEFT && !strcmp(m.from.node, "nb");
	CU_ASSERT(got);
	pg_member *list;
	size_t n;
	CU_ASSERT_EQUAL(pg_members(c, "rep-join", &list, &n), 0);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT(!listed(list, n, "nb", getpid()));
	free(list);
	CU_ASSERT_EQUAL(pg_leave(b, "rep-join", 0), -ESRCH);
	pg_close(c);
	pg_close(b);
	CU_ASSERT_EQUAL(pg_delete(a, "rep-join"), 0);
	pg_close(a);
}

/* One sender on the master, members on three nodes: every message, in
 * order, with one seq each, from the master's node. */
static void test_one_order(void)
{
	pg_ctx *a = open_on(&na), *b = open_on(&nb), *c = open_on(&nc);
	pg_group_opts o = {.ring_bytes = 256 * 1024};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(a, "rep-order", &o), 0);
	pg_ctx *ma = open_on(&na);
	CU_ASSERT_EQUAL(pg_join(ma, "rep-order", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_join(b, "rep-order", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_join(c, "rep-order", 0, NULL, NULL), 0);
	enum { N = 20000 };
	static uint64_t seqs[3][N];
	pg_ctx *mem[] = {ma, b, c};
	int got[3] = {0};
	/* More than the ring holds: the nodes' streams keep up or hold the
	 * sender, never lose a message. */
	for (int i = 0; i < N; i++) {
		char buf[64];
		int len = snprintf(buf, sizeof(buf), "m%d", i);
		int err;
		while ((err = pg_trysend(a, "rep-order", buf, (size_t)len)) == -EAGAIN) {
			for (int k = 0; k < 3; k++) {
				pg_message m;
				while (got[k] < N && pg_recv(mem[k], &m, 0) == 0)
					if (m.kind == PG_MSG) {
						char want[64];
						snprintf(want, sizeof(want), "m%d", got[k]);
						CU_ASSERT(m.len == strlen(want) &&
							  !memcmp(m.data, want, m.len));
						CU_ASSERT_STRING_EQUAL(m.from.node, "na");
						seqs[k][got[k]++] = m.seq;
					}
			}
		}
		CU_ASSERT_EQUAL_FATAL(err, 0);
	}
	/* The rest, from all three in turn: a member left unread for the
	 * stall limit is evicted by its node (that is the rule). */
	int64_t until = mesh_ms() + 10000;
	while ((got[0] < N || got[1] < N || got[2] < N) && mesh_ms() < until) {
		for (int k = 0; k < 3; k++) {
			pg_message m;
			while (got[k] < N && pg_recv(mem[k], &m, 0) == 0)
				if (m.kind == PG_MSG) {
					char want[64];
					snprintf(want, sizeof(want), "m%d", got[k]);
					CU_ASSERT(m.len == strlen(want) && !memcmp(m.data, want, m.len));
					seqs[k][got[k]++] = m.seq;
				}
		}
		usleep(100);
	}
	for (int k = 0; k < 3; k++)
		CU_ASSERT_EQUAL(got[k], N);
	int same = 1;
	for (int i = 0; i < N; i++)
		same &= seqs[0][i] == seqs[1][i] && seqs[1][i] == seqs[2][i] &&
			(i == 0 || seqs[0][i] > seqs[0][i - 1]);
	CU_ASSERT(same);
	pg_close(ma);
	pg_close(c);
	pg_close(b);
	CU_ASSERT_EQUAL(pg_delete(a, "rep-order"), 0);
	pg_close(a);
}

/* A sender thread's work: n messages "S<k>:<i>" to the group. */
struct sender_arg {
	const struct daemon_proc *node;
	const char *group;
	int k, n;
	int err;
};

static void *send_all(void *p)
{
	struct sender_arg *a = p;
	pg_ctx *ctx;
	if ((a->err = pg_open(&ctx, a->node->socket)))
		return NULL;
	for (int i = 0; i < a->n && !a->err; i++) {
		char buf[32];
		int len = snprintf(buf, sizeof(buf), "S%d:%d", a->k, i);
		a->err = pg_send(ctx, a->group, buf, (size_t)len);
	}
	pg_close(ctx);
	return NULL;
}

/* Three senders on three nodes, members on three nodes: every member gets
 * every message once, all in one order, each sender's in its order, each
 * named with its sender's node; esend skips only the sender's process. */
static void test_senders_everywhere(void)
{
	pg_ctx *a = open_on(&na);
	pg_group_opts o = {.ring_bytes = 256 * 1024};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(a, "rep-senders", &o), 0);
	const struct daemon_proc *nodes[] = {&na, &nb, &nc};
	pg_ctx *mem[3];
	for (int k = 0; k < 3; k++) {
		mem[k] = open_on(nodes[k]);
		CU_ASSERT_EQUAL_FATAL(pg_join(mem[k], "rep-senders", 0, NULL, NULL), 0);
	}
	enum { N = 3000 };
	struct sender_arg args[3];
	pthread_t t[3];
	for (int k = 0; k < 3; k++) {
		args[k] = (struct sender_arg){.node = nodes[k], .group = "rep-senders", .k = k, .n = N};
		pthread_create(&t[k], NULL, send_all, &args[k]);
	}
	static uint64_t seqs[3][3 * N];
	static char who[3][3 * N];
	int got[3] = {0};
	int next_of[3][3] = {{0}};
	bool ok = true;
	int64_t until = mesh_ms() + 30000;
	while (mesh_ms() < until && (got[0] < 3 * N || got[1] < 3 * N || got[2] < 3 * N)) {
		for (int k = 0; k < 3; k++) {
			pg_message m;
			while (got[k] < 3 * N && pg_recv(mem[k], &m, 0) == 0) {
				if (m.kind != PG_MSG)
					continue;
				int s_k, i;
				char buf[32] = {0};
				memcpy(buf, m.data, m.len < 31 ? m.len : 31);
				if (sscanf(buf, "S%d:%d", &s_k, &i) != 2 || s_k < 0 || s_k > 2) {
					ok = false;
					continue;
				}
				/* Each sender's messages in its order, none twice. */
				ok &= i == next_of[k][s_k]++;
				ok &= !strcmp(m.from.node, nodes[s_k]->node);
				seqs[k][got[k]] = m.seq;
				who[k][got[k]++] = (char)s_k;
			}
		}
		usleep(200);
	}
	for (int k = 0; k < 3; k++) {
		pthread_join(t[k], NULL);
		CU_ASSERT_EQUAL(args[k].err, 0);
		CU_ASSERT_EQUAL(got[k], 3 * N);
	}
	CU_ASSERT(ok);
	bool same = true;
	for (int i = 0; i < 3 * N; i++)
		same &= seqs[0][i] == seqs[1][i] && seqs[1][i] == seqs[2][i] &&
			who[0][i] == who[1][i] && who[1][i] == who[2][i] &&
			(i == 0 || seqs[0][i] > seqs[0][i - 1]);
	CU_ASSERT(same);
	/* esend from b: a and c get it, b's own process does not. */
	pg_ctx *sb = open_on(&nb);
	CU_ASSERT_EQUAL(pg_esend(sb, "rep-senders", "E", 1), 0);
	CU_ASSERT_EQUAL(pg_send(sb, "rep-senders", "F", 1), 0);
	for (int k = 0; k < 3; k++) {
		pg_message m;
		int r;
		while ((r = pg_recv(mem[k], &m, 3000)) == 0 && m.kind != PG_MSG)
			;
		CU_ASSERT_EQUAL(r, 0);
		CU_ASSERT(m.len == 1 && *(const char *)m.data == (k == 1 ? 'F' : 'E'));
	}
	pg_close(sb);
	for (int k = 0; k < 3; k++)
		pg_close(mem[k]);
	CU_ASSERT_EQUAL(pg_delete(a, "rep-senders"), 0);
	pg_close(a);
}

/* A member process on b, killed: PG_EXITED from nb everywhere, at one seq. */
static int member_child(void *arg, int up, int down)
{
	const struct daemon_proc *d = arg;
	pg_ctx *ctx;
	if (pg_open(&ctx, d->socket) || pg_join(ctx, "rep-exit", 0, NULL, NULL))
		return 1;
	pid_t me = getpid();
	write_all(up, &me, sizeof(me));
	pause();
	return 0;
}

static void test_exit_across(void)
{
	pg_ctx *a = open_on(&na), *c = open_on(&nc);
	CU_ASSERT_EQUAL_FATAL(pg_create(a, "rep-exit"), 0);
	CU_ASSERT_EQUAL(pg_join(a, "rep-exit", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_monitor(a, "rep-exit"), 0);
	CU_ASSERT_EQUAL(pg_join(c, "rep-exit", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_monitor(c, "rep-exit"), 0);
	struct child k;
	CU_ASSERT_FATAL(child_start(&k, member_child, &nb) == 0);
	pid_t pid;
	CU_ASSERT_FATAL(child_read(&k, &pid, sizeof(pid), 5000) == 0);
	kill(k.pid, SIGKILL);
	child_wait(&k);
	uint64_t seq[2] = {0, 0};
	pg_ctx *mem[] = {a, c};
	for (int i = 0; i < 2; i++) {
		pg_message m;
		while (!seq[i] && next(mem[i], &m, 3000) == 0)
			if (m.kind == PG_EXITED && m.from.pid == pid && !strcmp(m.from.node, "nb"))
				seq[i] = m.seq;
	}
	CU_ASSERT(seq[0] != 0);
	CU_ASSERT_EQUAL(seq[0], seq[1]);
	pg_member *list;
	size_t n;
	CU_ASSERT_EQUAL(pg_members(a, "rep-exit", &list, &n), 0);
	CU_ASSERT(!listed(list, n, "nb", pid));
	free(list);
	pg_close(c);
	CU_ASSERT_EQUAL(pg_delete(a, "rep-exit"), 0);
	pg_close(a);
}

/* A joiner on b that says it is about to join, then joins (and waits). */
static int joiner_child(void *arg, int up, int down)
{
	const struct daemon_proc *d = arg;
	pg_ctx *ctx;
	if (pg_open(&ctx, d->socket))
		return 1;
	char b = 'o';
	write_all(up, &b, 1);
	pg_join(ctx, "rep-joindie", 0, NULL, NULL);
	pause();
	return 0;
}

/*
 * A process on b killed while its join waits for the master's answer (the
 * master stopped meanwhile): b's daemon must forget the member it reserved
 * for it, take the master's late answer, tell the master it is gone, and
 * go on serving joins.
 */
static void test_joiner_dies_before_answer(void)
{
	pg_ctx *a = open_on(&na);
	CU_ASSERT_EQUAL_FATAL(pg_create(a, "rep-joindie"), 0);
	CU_ASSERT_EQUAL(pg_join(a, "rep-joindie", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(kill(na.pid, SIGSTOP), 0);
	struct child k;
	CU_ASSERT_FATAL(child_start(&k, joiner_child, &nb) == 0);
	char b;
	CU_ASSERT_EQUAL(child_read(&k, &b, 1, 5000), 0);
	pid_t dead = k.pid;
	usleep(150 * 1000); /* its RJOIN is on its way to the stopped master */
	kill(k.pid, SIGKILL);
	child_wait(&k);
	usleep(150 * 1000); /* b saw it die */
	CU_ASSERT_EQUAL(kill(na.pid, SIGCONT), 0);
	/* b still serves: a new member there gets what a sends. */
	pg_ctx *bb = open_on(&nb);
	CU_ASSERT_EQUAL(pg_join(bb, "rep-joindie", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_send(a, "rep-joindie", "after", 5), 0);
	pg_message m;
	bool got = false;
	while (!got && next(bb, &m, 3000) == 0)
		got = m.kind == PG_MSG && m.len == 5 && !memcmp(m.data, "after", 5);
	CU_ASSERT(got);
	/* And the dead joiner is nobody's member. */
	bool gone = false;
	for (int i = 0; i < 100 && !gone; i++) {
		pg_member *list;
		size_t n;
		CU_ASSERT_EQUAL_FATAL(pg_members(a, "rep-joindie", &list, &n), 0);
		gone = !listed(list, n, "nb", dead);
		free(list);
		if (!gone)
			usleep(20 * 1000);
	}
	CU_ASSERT(gone);
	pg_close(bb);
	CU_ASSERT_EQUAL(pg_delete(a, "rep-joindie"), 0);
	pg_close(a);
}

/* pgroup groups --json on d: node's (unshipped, unread) for group g; -1
 * if not listed. */
static int node_lag(const struct daemon_proc *d, const char *g, const char *node,
		    unsigned long long *unshipped, unsigned long long *unread, unsigned *members)
{
	char cmd[512], want[128], buf[65536];
	snprintf(cmd, sizeof(cmd), "%s groups --json --socket %s", getenv("PGROUP_CLI"), d->socket);
	FILE *f = popen(cmd, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	pclose(f);
	buf[n] = 0;
	snprintf(want, sizeof(want), "{\"group\":\"%s\"", g);
	char *at = strstr(buf, want);
	char *end = at ? strstr(at, "]}") : NULL;
	if (!end)
		return -1;
	*end = 0;
	char *mem = strstr(at, "\"members\":");
	if (!mem || sscanf(mem, "\"members\":%u", members) != 1)
		return -1;
	snprintf(want, sizeof(want), "{\"node\":\"%s\",", node);
	char *e = strstr(at, want);
	if (!e || sscanf(e + strlen(want), "\"unshipped\":%llu,\"unread\":%llu", unshipped, unread) != 2)
		return -1;
	return 0;
}

/* pgroup groups on the master shows each member node's lag: what a member
 * there has not read, then nothing once it has. */
static void test_node_lag_listed(void)
{
	pg_ctx *a = open_on(&na), *b = open_on(&nb);
	CU_ASSERT_EQUAL_FATAL(pg_create(a, "rep-lag"), 0);
	CU_ASSERT_EQUAL(pg_join(b, "rep-lag", 0, NULL, NULL), 0);
	for (int i = 0; i < 500; i++)
		CU_ASSERT_EQUAL(pg_send(a, "rep-lag", "x", 1), 0);
	unsigned long long unshipped = 0, unread = 0;
	unsigned members = 0;
	bool behind = false;
	for (int i = 0; i < 100 && !behind; i++) {
		CU_ASSERT_EQUAL_FATAL(node_lag(&na, "rep-lag", "nb", &unshipped, &unread, &members), 0);
		CU_ASSERT_EQUAL(members, 1); /* the master counts every node's */
		behind = unshipped + unread >= 500;
		if (!behind)
			usleep(20 * 1000);
	}
	CU_ASSERT(behind);
	pg_message m;
	int got = 0;
	while (got < 500 && next(b, &m, 3000) == 0)
		got += m.kind == PG_MSG;
	CU_ASSERT_EQUAL(got, 500);
	/* The view of the last one is ours until the next call: release it. */
	CU_ASSERT_EQUAL(next(b, &m, 0), -EAGAIN);
	bool caught_up = false;
	for (int i = 0; i < 100 && !caught_up; i++) {
		CU_ASSERT_EQUAL_FATAL(node_lag(&na, "rep-lag", "nb", &unshipped, &unread, &members), 0);
		caught_up = unshipped + unread == 0;
		if (!caught_up)
			usleep(20 * 1000);
	}
	if (!caught_up)
		printf("[still: unshipped %llu, unread %llu] ", unshipped, unread);
	CU_ASSERT(caught_up);
	pg_close(b);
	CU_ASSERT_EQUAL(pg_delete(a, "rep-lag"), 0);
	pg_close(a);
}

/* kill -9 of a node with members: they exit, in order, for the others. */
static void test_lost_member_node(void)
{
	pg_ctx *a = open_on(&na), *b = open_on(&nb);
	CU_ASSERT_EQUAL_FATAL(pg_create(a, "rep-lost"), 0);
	CU_ASSERT_EQUAL(pg_join(a, "rep-lost", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_monitor(a, "rep-lost"), 0);
	CU_ASSERT_EQUAL(pg_join(b, "rep-lost", 0, NULL, NULL), 0);
	pg_message m;
	int joined = 0;
	while (!joined && next(a, &m, 3000) == 0)
		joined = m.kind == PG_JOINED && !strcmp(m.from.node, "nb");
	CU_ASSERT(joined);
	kill(nb.pid, SIGKILL);
	waitpid(nb.pid, NULL, 0);
	nb.pid = 0;
	int exited = 0;
	while (!exited && next(a, &m, 5000) == 0)
		exited = m.kind == PG_EXITED && !strcmp(m.from.node, "nb") && m.from.pid == getpid();
	CU_ASSERT(exited);
	pg_member *list;
	size_t n;
	CU_ASSERT_EQUAL(pg_members(a, "rep-lost", &list, &n), 0);
	CU_ASSERT_EQUAL(n, 1);
	free(list);
	pg_close(b);
	CU_ASSERT_EQUAL(pg_delete(a, "rep-lost"), 0);
	pg_close(a);
	/* b comes back for the next test. */
	const struct daemon_proc *pa[] = {&na};
	CU_ASSERT_FATAL(mesh_node(&nb, "nb", 0, cookie, pa, 1, NULL) == 0);
	CU_ASSERT(mesh_wait(&na, "nb", CTL_NODE_UP, 10000) >= 0);
	CU_ASSERT(mesh_wait(&nb, "nc", CTL_NODE_UP, 10000) >= 0);
	CU_ASSERT(mesh_wait(&nc, "nb", CTL_NODE_UP, 10000) >= 0);
}

/* kill -9 of the master: its members elsewhere get PG_GROUP_DOWN, and
 * later calls on the group -EHOSTUNREACH. */
static void test_lost_master(void)
{
	pg_ctx *b = open_on(&nb), *c = open_on(&nc);
	CU_ASSERT_EQUAL_FATAL(pg_create(b, "rep-master"), 0);
	CU_ASSERT_EQUAL(pg_join(c, "rep-master", 0, NULL, NULL), 0);
	/* A sender on c too, so c has the group's outbound ring. */
	CU_ASSERT_EQUAL(pg_send(c, "rep-master", "from-c", 6), 0);
	pg_message m;
	CU_ASSERT_EQUAL(next(c, &m, 3000), 0);
	CU_ASSERT(m.kind == PG_MSG && m.len == 6 && !memcmp(m.data, "from-c", 6));
	CU_ASSERT_EQUAL(pg_send(b, "rep-master", "before", 6), 0);
	CU_ASSERT_EQUAL(next(c, &m, 3000), 0);
	CU_ASSERT(m.kind == PG_MSG && m.len == 6 && !memcmp(m.data, "before", 6));
	kill(nb.pid, SIGKILL);
	waitpid(nb.pid, NULL, 0);
	nb.pid = 0;
	int down = 0;
	while (!down && next(c, &m, 5000) == 0)
		down = m.kind == PG_GROUP_DOWN;
	CU_ASSERT(down);
	CU_ASSERT_EQUAL(pg_send(c, "rep-master", "x", 1), -EHOSTUNREACH);
	CU_ASSERT_EQUAL(pg_join(c, "rep-master", 0, NULL, NULL), -EHOSTUNREACH);
	pg_ctx *s2 = open_on(&nc);
	CU_ASSERT_EQUAL(pg_send(s2, "rep-master", "after", 5), -EHOSTUNREACH);
	pg_close(s2);
	pg_member *list;
	size_t n;
	CU_ASSERT_EQUAL(pg_members(c, "rep-master", &list, &n), -EHOSTUNREACH);
	pg_close(c);
	pg_close(b);
}

struct flood {
	const struct daemon_proc *node;
	const char *group;
	int64_t ms;        /* send for this long */
	int err;
	uint64_t sent;
	int64_t longest_us; /* the longest single pg_send */
};

static void *flood(void *p)
{
	struct flood *f = p;
	pg_ctx *ctx;
	if ((f->err = pg_open(&ctx, f->node->socket)))
		return NULL;
	char buf[64] = "flood";
	int64_t end = mesh_ms() + f->ms;
	while (!f->err && mesh_ms() < end) {
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		f->err = pg_send(ctx, f->group, buf, sizeof(buf));
		clock_gettime(CLOCK_MONOTONIC, &b);
		int64_t us = (b.tv_sec - a.tv_sec) * 1000000ll + (b.tv_nsec - a.tv_nsec) / 1000;
		if (us > f->longest_us)
			f->longest_us = us;
		f->sent++;
	}
	pg_close(ctx);
	return NULL;
}

/*
 * A slow node: its daemon stopped (not long enough to be lost), so its
 * link backs up. The master's sender is held at most about the stall
 * limit, then that node's membership is dropped: LEFT in the order for
 * the others, PG_EVICTED for its members once it runs again; the master's
 * own members miss nothing.
 */
static void test_slow_node(void)
{
	struct daemon_proc s1 = {0}, s2 = {0};
	CU_ASSERT_FATAL(mesh_node(&s1, "slow1", 0, cookie, NULL, 0, "--link-timeout 8000") == 0);
	const struct daemon_proc *p1[] = {&s1};
	CU_ASSERT_FATAL(mesh_node(&s2, "slow2", 0, cookie, p1, 1, "--link-timeout 8000") == 0);
	CU_ASSERT_FATAL(mesh_wait(&s1, "slow2", CTL_NODE_UP, 10000) >= 0);
	CU_ASSERT_FATAL(mesh_wait(&s2, "slow1", CTL_NODE_UP, 10000) >= 0);
	pg_ctx *a = open_on(&s1), *b = open_on(&s2);
	pg_group_opts o = {.ring_bytes = 64 * 1024, .stall_ms = 200};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(a, "rep-slow", &o), 0);
	CU_ASSERT_EQUAL(pg_join(a, "rep-slow", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_monitor(a, "rep-slow"), 0);
	CU_ASSERT_EQUAL(pg_join(b, "rep-slow", 0, NULL, NULL), 0);
	pg_message m;
	int joined = 0;
	while (!joined && next(a, &m, 3000) == 0)
		joined = m.kind == PG_JOINED && !strcmp(m.from.node, "slow2");
	CU_ASSERT_FATAL(joined);
	kill(s2.pid, SIGSTOP);
	struct flood f = {.node = &s1, .group = "rep-slow", .ms = 3000};
	pthread_t t;
	pthread_create(&t, NULL, flood, &f);
	/* The master's member reads everything, and sees b's member leave. */
	uint64_t got = 0;
	int left = 0;
	int64_t end = mesh_ms() + 6000;
	while (mesh_ms() < end) {
		if (pg_recv(a, &m, 100) != 0)
			continue;
		if (m.kind == PG_MSG)
			got++;
		left |= m.kind == PG_LEFT && !strcmp(m.from.node, "slow2");
		if (left && got >= f.sent && f.sent && mesh_ms() > end - 2500)
			break;
	}
	pthread_join(t, NULL);
	while (pg_recv(a, &m, 200) == 0)
		got += m.kind == PG_MSG;
	printf("[sent %llu, longest pg_send %lld us] ", (unsigned long long)f.sent,
	       (long long)f.longest_us);
	CU_ASSERT_EQUAL(f.err, 0);
	CU_ASSERT(left);
	CU_ASSERT_EQUAL(got, f.sent);
	CU_ASSERT(mesh_logged(&s1, "lagged past the stall limit"));
	kill(s2.pid, SIGCONT);
	int evicted = 0;
	end = mesh_ms() + 5000;
	while (!evicted && mesh_ms() < end)
		if (pg_recv(b, &m, 100) == 0)
			evicted = m.kind == PG_EVICTED;
	CU_ASSERT(evicted);
	/* And it may join again. */
	CU_ASSERT_EQUAL(pg_join(b, "rep-slow", 0, NULL, NULL), 0);
	pg_close(b);
	pg_close(a);
	CU_ASSERT_EQUAL(daemon_stop(&s2), 0);
	CU_ASSERT_EQUAL(daemon_stop(&s1), 0);
}

/*
 * A remote member slower than the sender, but reading: it holds the
 * master's sender back (flow control), as a local member would, and is
 * neither evicted nor short of a message.
 */
static void test_slow_remote_member(void)
{
	pg_ctx *a = open_on(&na), *c = open_on(&nc);
	pg_group_opts o = {.ring_bytes = 64 * 1024, .stall_ms = 5000};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(a, "rep-credit", &o), 0);
	CU_ASSERT_EQUAL_FATAL(pg_join(c, "rep-credit", 0, NULL, NULL), 0);
	struct flood f = {.node = &na, .group = "rep-credit", .ms = 1500};
	pthread_t t;
	pthread_create(&t, NULL, flood, &f);
	uint64_t got = 0;
	int evicted = 0;
	pg_message m;
	int64_t end = mesh_ms() + 20000;
	/* About 100k messages a second at most: slower than the sender. */
	while (!evicted && mesh_ms() < end) {
		int r = pg_recv(c, &m, 200);
		if (r == -ETIMEDOUT && f.sent && got >= f.sent)
			break;
		if (r)
			continue;
		got += m.kind == PG_MSG;
		evicted = m.kind == PG_EVICTED;
		if (got % 100 == 0)
			usleep(1000);
	}
	pthread_join(t, NULL);
	while (!evicted && got < f.sent && pg_recv(c, &m, 1000) == 0) {
		got += m.kind == PG_MSG;
		evicted = m.kind == PG_EVICTED;
	}
	printf("[sent %llu, received %llu] ", (unsigned long long)f.sent, (unsigned long long)got);
	CU_ASSERT_EQUAL(f.err, 0);
	CU_ASSERT(!evicted);
	CU_ASSERT_EQUAL(got, f.sent);
	pg_close(c);
	CU_ASSERT_EQUAL(pg_delete(a, "rep-credit"), 0);
	pg_close(a);
}

/* The member slots a group was made with are every node's: 128 members
 * of it on another node join, one more finds no slot (a replica made with
 * the default 1,024 would take it), and a message reaches them all. */
static void test_member_slots_everywhere(void)
{
	enum { SLOTS = 128 };
	pg_ctx *a = open_on(&na);
	pg_group_opts o = {.member_slots = SLOTS};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(a, "rep-slots", &o), 0);
	pg_ctx *m[SLOTS + 1] = {0};
	int joined = 0, err = 0;
	for (; joined < SLOTS && !err; joined++) {
		m[joined] = open_on(&nb);
		if ((err = pg_join(m[joined], "rep-slots", 0, NULL, NULL)))
			printf("[member %d: %s] ", joined, pg_strerror(err));
	}
	CU_ASSERT_EQUAL(err, 0);
	CU_ASSERT_EQUAL(joined, SLOTS);
	m[SLOTS] = open_on(&nb);
	CU_ASSERT_EQUAL(pg_join(m[SLOTS], "rep-slots", 0, NULL, NULL), -ENOSPC);
	CU_ASSERT_EQUAL(pg_send(a, "rep-slots", "all", 3), 0);
	int got = 0;
	for (int i = 0; i < joined && !err; i++) {
		pg_message msg;
		while ((err = pg_recv(m[i], &msg, 5000)) == 0 && msg.kind != PG_MSG)
			;
		got += !err && msg.len == 3 && memcmp(msg.data, "all", 3) == 0;
	}
	CU_ASSERT_EQUAL(got, SLOTS);
	for (int i = 0; i <= SLOTS; i++)
		if (m[i])
			pg_close(m[i]);
	CU_ASSERT_EQUAL(pg_delete(a, "rep-slots"), 0);
	pg_close(a);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	cookie = mesh_cookie("replica");
	if (!cookie)
		return 1;
	CU_pSuite s = CU_add_suite("replica", start_three, stop_all);
	CU_add_test(s, "joins across nodes: old members, events, pg_members", test_join_across);
	CU_add_test(s, "one order at members on three nodes", test_one_order);
	CU_add_test(s, "three senders on three nodes, members on three", test_senders_everywhere);
	CU_add_test(s, "a member killed on another node exits everywhere", test_exit_across);
	CU_add_test(s, "a joiner killed before the master answers its join",
		    test_joiner_dies_before_answer);
	CU_add_test(s, "pgroup groups shows each member node's lag", test_node_lag_listed);
	CU_add_test(s, "member slots chosen at create hold on every node",
		    test_member_slots_everywhere);
	CU_add_test(s, "a slow remote member holds the sender, is not evicted", test_slow_remote_member);
	CU_add_test(s, "a slow node is dropped after the stall limit", test_slow_node);
	CU_add_test(s, "kill -9 of a node with members", test_lost_member_node);
	CU_add_test(s, "kill -9 of the master", test_lost_master);
	int rc = run_cunit();
	unlink(cookie);
	return rc;
}

// SPDX-License-Identifier: MIT
/*
 * Two nodes in two network namespaces joined by a veth pair (addresses of
 * a test network of our own, 10.77.0.0/24): the group on one, members and
 * senders on both, one order; the veth taken down (a partition: the link
 * falls silent, both sides lose the other within the link timeout) and up
 * again (relinked). Exit 77 where this machine cannot make namespaces.
 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mesh_harness.h"
#include "proto/ctl.h"

#define NS_A "pgtest-a"
#define NS_B "pgtest-b"
#define ADDR_A "10.77.0.1"
#define ADDR_B "10.77.0.2"

static const char *cookie;
static struct daemon_proc da, db;
static char ns_a[64], ns_b[64], veth_a[16], veth_b[16];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return st == 0 ? 0 : -1;
}

static void netns_down(void)
{
	sh("ip netns del %s 2>/dev/null", ns_a);
	sh("ip netns del %s 2>/dev/null", ns_b);
}

/* Two namespaces, a veth pair between them, loopback up in each. */
static int netns_up(void)
{
	unsigned id = (unsigned)getpid() % 10000;
	snprintf(ns_a, sizeof(ns_a), NS_A "-%u", id);
	snprintf(ns_b, sizeof(ns_b), NS_B "-%u", id);
	snprintf(veth_a, sizeof(veth_a), "pga%u", id);
	snprintf(veth_b, sizeof(veth_b), "pgb%u", id);
	netns_down();
	if (sh("ip netns add %s 2>/dev/null", ns_a) || sh("ip netns add %s", ns_b) ||
	    sh("ip link add %s netns %s type veth peer name %s netns %s", veth_a, ns_a, veth_b,
	       ns_b) ||
	    sh("ip -n %s addr add " ADDR_A "/24 dev %s", ns_a, veth_a) ||
	    sh("ip -n %s addr add " ADDR_B "/24 dev %s", ns_b, veth_b) ||
	    sh("ip -n %s link set %s up && ip -n %s link set lo up", ns_a, veth_a, ns_a) ||
	    sh("ip -n %s link set %s up && ip -n %s link set lo up", ns_b, veth_b, ns_b)) {
		netns_down();
		return -1;
	}
	return 0;
}

/* Start a node inside a namespace: the harness runs it through `ip netns
 * exec`; its control socket is a file, so clients here reach it. */
static int start_in(struct daemon_proc *d, const char *ns, const char *name, const char *flags)
{
	char wrap[128];
	snprintf(wrap, sizeof(wrap), "ip netns exec %s", ns);
	setenv("PGROUPD_WRAPPER", wrap, 1);
	char all[512];
	snprintf(all, sizeof(all), "--cookie-file %s --link-timeout 1000 %s", cookie, flags);
	snprintf(d->log, sizeof(d->log), "/tmp/pgroup-test-%d-%s.log", (int)getpid(), name);
	int err = daemon_start_with(d, name, all, 0);
	unsetenv("PGROUPD_WRAPPER");
	return err;
}

static pg_ctx *open_on(const struct daemon_proc *d)
{
	pg_ctx *ctx = NULL;
	CU_ASSERT_FATAL(pg_open(&ctx, d->socket) == 0);
	return ctx;
}

/* The group on a; a member and a sender on each node: every member gets
 * every message, in one order, named with its sender's node. */
static void test_across_namespaces(void)
{
	pg_ctx *a = open_on(&da), *b = open_on(&db);
	CU_ASSERT_EQUAL_FATAL(pg_create(a, "ns-group"), 0);
	CU_ASSERT_EQUAL(pg_create(b, "ns-group"), -EEXIST);
	pg_ctx *ma = open_on(&da), *mb = open_on(&db);
	CU_ASSERT_EQUAL(pg_join(ma, "ns-group", 0, NULL, NULL), 0);
	pg_member *old;
	size_t n_old;
	CU_ASSERT_EQUAL_FATAL(pg_join(mb, "ns-group", 0, &old, &n_old), 0);
	CU_ASSERT(n_old == 1 && !strcmp(old[0].node, "nsa"));
	free(old);
	enum { N = 2000 };
	for (int i = 0; i < N; i++) {
		char buf[32];
		int len = snprintf(buf, sizeof(buf), "%c%d", i % 2 ? 'b' : 'a', i);
		CU_ASSERT_EQUAL_FATAL(pg_send(i % 2 ? b : a, "ns-group", buf, (size_t)len), 0);
	}
	static uint64_t seq[2][N];
	pg_ctx *mem[] = {ma, mb};
	for (int k = 0; k < 2; k++) {
		int got = 0, a_next = 0, b_next = 1;
		pg_message m;
		while (got < N && pg_recv(mem[k], &m, 5000) == 0) {
			if (m.kind != PG_MSG)
				continue;
			char buf[32] = {0};
			memcpy(buf, m.data, m.len < 31 ? m.len : 31);
			int i = atoi(buf + 1);
			/* Each sender's in its order (a sent the even ones). */
			if (buf[0] == 'a') {
				CU_ASSERT_EQUAL(i, a_next);
				a_next = i + 2;
				CU_ASSERT_STRING_EQUAL(m.from.node, "nsa");
			} else {
				CU_ASSERT_EQUAL(i, b_next);
				b_next = i + 2;
				CU_ASSERT_STRING_EQUAL(m.from.node, "nsb");
			}
			seq[k][got++] = m.seq;
		}
		CU_ASSERT_EQUAL(got, N);
	}
	CU_ASSERT(memcmp(seq[0], seq[1], sizeof(seq[0])) == 0);
	pg_close(mb);
	pg_close(ma);
	pg_close(b);
	CU_ASSERT_EQUAL(pg_delete(a, "ns-group"), 0);
	pg_close(a);
}

/* The veth down: a partition. Each node loses the other within the link
 * timeout; b's member of a's group gets PG_GROUP_DOWN. Up again: linked. */
static void test_partition(void)
{
	pg_ctx *a = open_on(&da), *mb = open_on(&db);
	CU_ASSERT_EQUAL_FATAL(pg_create(a, "ns-split"), 0);
	CU_ASSERT_EQUAL_FATAL(pg_join(mb, "ns-split", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(sh("ip -n %s link set %s down", ns_a, veth_a), 0);
	int ms_a = mesh_wait(&da, "nsb", CTL_NODE_DOWN, 5000);
	int ms_b = mesh_wait(&db, "nsa", CTL_NODE_DOWN, 5000);
	printf("[lost after %d / %d ms] ", ms_a, ms_b);
	CU_ASSERT(ms_a >= 0 || mesh_state(&da, "nsb") == CTL_NODE_LINKING);
	CU_ASSERT(ms_b >= 0 || mesh_state(&db, "nsa") == CTL_NODE_LINKING);
	pg_message m;
	int down = 0;
	for (int i = 0; i < 30 && !down; i++)
		if (pg_recv(mb, &m, 100) == 0)
			down = m.kind == PG_GROUP_DOWN;
	CU_ASSERT(down);
	CU_ASSERT_EQUAL(sh("ip -n %s link set %s up", ns_a, veth_a), 0);
	CU_ASSERT(mesh_wait(&da, "nsb", CTL_NODE_UP, 15000) >= 0);
	CU_ASSERT(mesh_wait(&db, "nsa", CTL_NODE_UP, 15000) >= 0);
	/* Relinked: the group is known on b again, and joinable. */
	int joined = -1;
	for (int i = 0; i < 50 && joined; i++) {
		joined = pg_join(mb, "ns-split", 0, NULL, NULL);
		if (joined)
			usleep(20000);
	}
	CU_ASSERT_EQUAL(joined, 0);
	pg_close(mb);
	CU_ASSERT_EQUAL(pg_delete(a, "ns-split"), 0);
	pg_close(a);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (geteuid() != 0 || netns_up()) {
		fprintf(stderr, "test_netns: cannot make network namespaces here (needs root and "
				"ip netns): skipped\n");
		return 77;
	}
	cookie = mesh_cookie("netns");
	int rc = 1;
	char listen[64], peer[64];
	snprintf(listen, sizeof(listen), "--listen " ADDR_A ":7411");
	snprintf(peer, sizeof(peer), "--listen " ADDR_B ":7411 --peer " ADDR_A ":7411");
	if (!cookie || start_in(&da, ns_a, "nsa", listen) || start_in(&db, ns_b, "nsb", peer) ||
	    mesh_wait(&da, "nsb", CTL_NODE_UP, 10000) < 0 ||
	    mesh_wait(&db, "nsa", CTL_NODE_UP, 10000) < 0) {
		fprintf(stderr, "test_netns: the nodes did not link across the veth pair\n");
		goto out;
	}
	if (CU_initialize_registry() != CUE_SUCCESS)
		goto out;
	CU_pSuite s = CU_add_suite("netns", NULL, NULL);
	CU_add_test(s, "a group across two network namespaces", test_across_namespaces);
	CU_add_test(s, "the veth down and up: a partition, relinked", test_partition);
	rc = run_cunit();
out:
	if (db.pid > 0 && daemon_stop(&db))
		rc = 1;
	if (da.pid > 0 && daemon_stop(&da))
		rc = 1;
	netns_down();
	if (cookie)
		unlink(cookie);
	return rc;
}

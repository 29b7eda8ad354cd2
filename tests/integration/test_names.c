// SPDX-License-Identifier: MIT
/*
 * One namespace over linked nodes, through the public API: a name taken on
 * one node is taken on all; two nodes creating one name at once, exactly
 * one wins (100 times in a row, on two and on three nodes); pg_create_on
 * makes another node the master; delete through any node; a lost node's
 * names are free again; names created on both sides of a partition.
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

/* The master `pgroup groups` on d shows for `group`, "" if none. */
static void master_seen(const struct daemon_proc *d, const char *group, char *out, size_t cap)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "%s groups --json --socket %s", getenv("PGROUP_CLI"), d->socket);
	FILE *f = popen(cmd, "r");
	out[0] = 0;
	if (!f)
		return;
	static char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	pclose(f);
	char key[300];
	snprintf(key, sizeof(key), "{\"group\":\"%s\",\"master\":\"", group);
	char *p = strstr(buf, key);
	if (!p)
		return;
	p += strlen(key);
	char *q = strchr(p, '"');
	if (q && (size_t)(q - p) < cap) {
		memcpy(out, p, (size_t)(q - p));
		out[q - p] = 0;
	}
}

static int suite_up(void)
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

static int suite_down(void)
{
	int bad = 0;
	struct daemon_proc *all[] = {&nc, &nb, &na};
	for (int i = 0; i < 3; i++)
		if (all[i]->pid > 0)
			bad |= daemon_stop(all[i]);
	return bad ? -1 : 0;
}

/* A name taken on one node is taken on every node, and listed with its
 * master everywhere. */
static void test_taken_everywhere(void)
{
	pg_ctx *a = open_on(&na), *b = open_on(&nb), *c = open_on(&nc);
	CU_ASSERT_EQUAL(pg_create(a, "names-one"), 0);
	CU_ASSERT_EQUAL(pg_create(b, "names-one"), -EEXIST);
	CU_ASSERT_EQUAL(pg_create(c, "names-one"), -EEXIST);
	CU_ASSERT_EQUAL(pg_create_on(c, "names-one", "nb"), -EEXIST);
	char m[64];
	master_seen(&nb, "names-one", m, sizeof(m));
	CU_ASSERT_STRING_EQUAL(m, "na");
	master_seen(&nc, "names-one", m, sizeof(m));
	CU_ASSERT_STRING_EQUAL(m, "na");
	master_seen(&na, "names-one", m, sizeof(m));
	CU_ASSERT_STRING_EQUAL(m, "na");
	/* Deleted through another node: free everywhere. */
	CU_ASSERT_EQUAL(pg_delete(c, "names-one"), 0);
	CU_ASSERT_EQUAL(pg_create(b, "names-one"), 0);
	CU_ASSERT_EQUAL(pg_create(a, "names-one"), -EEXIST);
	CU_ASSERT_EQUAL(pg_delete(b, "names-one"), 0);
	CU_ASSERT_EQUAL(pg_delete(a, "names-one"), -ENOENT);
	pg_close(c);
	pg_close(b);
	pg_close(a);
}

/* pg_create_on: the node named is the master; one not connected is
 * -EHOSTUNREACH; options travel with the request. */
static void test_create_on(void)
{
	pg_ctx *a = open_on(&na);
	CU_ASSERT_EQUAL(pg_create_on(a, "names-on-b", "nb"), 0);
	char m[64];
	master_seen(&na, "names-on-b", m, sizeof(m));
	CU_ASSERT_STRING_EQUAL(m, "nb");
	master_seen(&nc, "names-on-b", m, sizeof(m));
	CU_ASSERT_STRING_EQUAL(m, "nb");
	CU_ASSERT_EQUAL(pg_create_on(a, "names-nowhere", "nz"), -EHOSTUNREACH);
	CU_ASSERT_EQUAL(pg_create_on(a, "names-here", "na"), 0);
	CU_ASSERT_EQUAL(pg_create_on(a, "names-bad", "bad/node"), -EINVAL);
	pg_group_opts o = {.node = "nc", .ring_bytes = 1 << 20, .max_msg = 4096, .mode = 0640};
	CU_ASSERT_EQUAL(pg_create_opts(a, "names-opts", &o), 0);
	master_seen(&nb, "names-opts", m, sizeof(m));
	CU_ASSERT_STRING_EQUAL(m, "nc");
	/* The master checks the options as for its own clients. */
	pg_group_opts bad = {.node = "nc", .ring_bytes = 1000};
	CU_ASSERT_EQUAL(pg_create_opts(a, "names-opts-bad", &bad), -EINVAL);
	CU_ASSERT_EQUAL(pg_delete(a, "names-on-b"), 0);
	CU_ASSERT_EQUAL(pg_delete(a, "names-opts"), 0);
	CU_ASSERT_EQUAL(pg_delete(a, "names-here"), 0);
	pg_close(a);
}

struct racer {
	const struct daemon_proc *node;
	pthread_barrier_t *go;
	char name[64];
	int rounds;
	int results[100];
};

static void *race(void *arg)
{
	struct racer *r = arg;
	pg_ctx *ctx;
	if (pg_open(&ctx, r->node->socket))
		return NULL;
	for (int i = 0; i < r->rounds; i++) {
		char name[96];
		snprintf(name, sizeof(name), "%s-%d", r->name, i);
		pthread_barrier_wait(r->go);
		r->results[i] = pg_create(ctx, name);
		pthread_barrier_wait(r->go);
	}
	pg_close(ctx);
	return NULL;
}

/* n nodes create one name at the same moment, 100 times: each time
 * exactly one succeeds and the others get -EEXIST. */
static void race_on(const struct daemon_proc *const *nodes, int n, const char *stem)
{
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, (unsigned)n);
	struct racer r[3];
	pthread_t t[3];
	for (int i = 0; i < n; i++) {
		r[i] = (struct racer){.node = nodes[i], .go = &go, .rounds = 100};
		snprintf(r[i].name, sizeof(r[i].name), "%s", stem);
		for (int k = 0; k < 100; k++)
			r[i].results[k] = 1;
		pthread_create(&t[i], NULL, race, &r[i]);
	}
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&go);
	int wins[3] = {0};
	for (int k = 0; k < 100; k++) {
		int ok = 0, exist = 0;
		for (int i = 0; i < n; i++) {
			ok += r[i].results[k] == 0;
			exist += r[i].results[k] == -EEXIST;
			wins[i] += r[i].results[k] == 0;
		}
		CU_ASSERT_EQUAL(ok, 1);
		CU_ASSERT_EQUAL(exist, n - 1);
	}
	printf("[wins:");
	for (int i = 0; i < n; i++)
		printf(" %s %d", nodes[i]->node, wins[i]);
	printf("] ");
	/* And every node agrees who won. */
	pg_ctx *ctx = open_on(nodes[0]);
	for (int k = 0; k < 100; k++) {
		char name[96];
		snprintf(name, sizeof(name), "%s-%d", stem, k);
		CU_ASSERT_EQUAL(pg_delete(ctx, name), 0);
	}
	pg_close(ctx);
}

static void test_race_two(void)
{
	const struct daemon_proc *nodes[] = {&nb, &nc};
	race_on(nodes, 2, "race2");
}

static void test_race_three(void)
{
	const struct daemon_proc *nodes[] = {&nc, &na, &nb};
	race_on(nodes, 3, "race3");
}

/* A lost node's groups leave the namespace; its link back restores them. */
static void test_lost_node(void)
{
	pg_ctx *c = open_on(&nc);
	CU_ASSERT_EQUAL(pg_create(c, "names-of-c"), 0);
	pg_close(c);
	pg_ctx *a = open_on(&na);
	CU_ASSERT_EQUAL(pg_create(a, "names-of-c"), -EEXIST);
	kill(nc.pid, SIGSTOP);
	CU_ASSERT(mesh_wait(&na, "nc", CTL_NODE_DOWN, 5000) >= 0 ||
		  mesh_state(&na, "nc") == CTL_NODE_LINKING);
	char m[64];
	master_seen(&na, "names-of-c", m, sizeof(m));
	CU_ASSERT_STRING_EQUAL(m, "");
	kill(nc.pid, SIGCONT);
	CU_ASSERT(mesh_wait(&na, "nc", CTL_NODE_UP, 15000) >= 0);
	CU_ASSERT(mesh_wait(&nc, "na", CTL_NODE_UP, 15000) >= 0);
	CU_ASSERT(mesh_wait(&nc, "nb", CTL_NODE_UP, 15000) >= 0);
	/* c tells its groups when it sees a link up: soon after. */
	for (int i = 0; i < 300; i++) {
		master_seen(&na, "names-of-c", m, sizeof(m));
		if (!strcmp(m, "nc"))
			break;
		usleep(10000);
	}
	CU_ASSERT_STRING_EQUAL(m, "nc");
	CU_ASSERT_EQUAL(pg_delete(a, "names-of-c"), 0);
	pg_close(a);
}

/*
 * A partition: b is cut off (stopped until a and c give it up), a creates
 * a name, then b — back, but not yet linked again — creates the same. When
 * the link is back, the older group stays (a's), and b's members learn
 * theirs is gone (PG_GROUP_DOWN).
 */
static void test_partition(void)
{
	pg_ctx *a = open_on(&na);
	bool split = false;
	for (int attempt = 0; attempt < 5 && !split; attempt++) {
		char name[64];
		snprintf(name, sizeof(name), "names-split-%d", attempt);
		kill(nb.pid, SIGSTOP);
		CU_ASSERT(mesh_wait(&na, "nb", CTL_NODE_UP, 0) < 0 ||
			  mesh_wait(&na, "nb", CTL_NODE_DOWN, 5000) >= 0);
		while (mesh_state(&na, "nb") >= CTL_NODE_PROBATION)
			usleep(10000);
		CU_ASSERT_EQUAL(pg_create(a, name), 0);
		kill(nb.pid, SIGCONT);
		/* b sees its links gone, and creates the name before they are back. */
		int64_t until = mesh_ms() + 3000;
		while ((mesh_state(&nb, "na") == CTL_NODE_UP || mesh_state(&nb, "nc") == CTL_NODE_UP) &&
		       mesh_ms() < until)
			usleep(1000);
		pg_ctx *b = open_on(&nb);
		int err = mesh_ms() < until ? pg_create(b, name) : -EEXIST;
		if (err == -EEXIST) {
			/* The link came back first: no partition this time. */
			pg_close(b);
			CU_ASSERT_EQUAL(pg_delete(a, name), 0);
			continue;
		}
		CU_ASSERT_EQUAL_FATAL(err, 0);
		split = true;
		CU_ASSERT_EQUAL(pg_join(b, name, 0, NULL, NULL), 0);
		CU_ASSERT(mesh_wait(&nb, "na", CTL_NODE_UP, 15000) >= 0);
		pg_message msg;
		int got = -1;
		for (int i = 0; i < 50 && got != PG_GROUP_DOWN; i++)
			if (pg_recv(b, &msg, 100) == 0)
				got = (int)msg.kind;
		CU_ASSERT_EQUAL(got, PG_GROUP_DOWN);
		char m[64];
		master_seen(&nb, name, m, sizeof(m));
		CU_ASSERT_STRING_EQUAL(m, "na");
		master_seen(&nc, name, m, sizeof(m));
		CU_ASSERT_STRING_EQUAL(m, "na");
		CU_ASSERT(mesh_logged(&nb, "both sides of a partition"));
		pg_close(b);
		CU_ASSERT_EQUAL(pg_delete(a, name), 0);
	}
	/* A run where the links always came back first tested nothing. */
	CU_ASSERT(split);
	pg_close(a);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	cookie = mesh_cookie("names");
	if (!cookie)
		return 1;
	CU_pSuite s = CU_add_suite("names", suite_up, suite_down);
	CU_add_test(s, "a name taken on one node is taken on all", test_taken_everywhere);
	CU_add_test(s, "pg_create_on another node", test_create_on);
	CU_add_test(s, "create race on two nodes, 100 times", test_race_two);
	CU_add_test(s, "create race on three nodes, 100 times", test_race_three);
	CU_add_test(s, "a lost node's names", test_lost_node);
	CU_add_test(s, "names created on both sides of a partition", test_partition);
	int rc = run_cunit();
	unlink(cookie);
	return rc;
}

// SPDX-License-Identifier: MIT
/*
 * The contract, called on a node that is not the group's master: every
 * call of the public API on node b for a group mastered on node a, with
 * the results and errors the contract gives for a local group.
 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mesh_harness.h"
#include "proto/ctl.h"

#define NOBODY 65534

static const char *cookie;
static struct daemon_proc na, nb;

static pg_ctx *open_on(const struct daemon_proc *d)
{
	pg_ctx *ctx = NULL;
	CU_ASSERT_FATAL(pg_open(&ctx, d->socket) == 0);
	return ctx;
}

/* The next PG_MSG within timeout_ms, events skipped: 0 or the error. */
static int next_msg(pg_ctx *ctx, pg_message *m, int timeout_ms)
{
	int err;
	while ((err = pg_recv(ctx, m, timeout_ms)) == 0 && m->kind != PG_MSG)
		;
	return err;
}

/* The next event (not a message) within timeout_ms. */
static int next_event(pg_ctx *ctx, pg_message *m, int timeout_ms)
{
	int err;
	while ((err = pg_recv(ctx, m, timeout_ms)) == 0 && m->kind == PG_MSG)
		;
	return err;
}

static bool listed(const pg_member *list, size_t n, const char *node, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i].node, node) && list[i].pid == pid)
			return true;
	return false;
}

/* Names, creation and the errors of calls on a group that is not there. */
static void test_names_and_errors(void)
{
	pg_ctx *a = open_on(&na), *b = open_on(&nb);
	CU_ASSERT_EQUAL_FATAL(pg_create(a, "ra-names"), 0);
	CU_ASSERT_EQUAL(pg_create(b, "ra-names"), -EEXIST);
	CU_ASSERT_EQUAL(pg_create_on(b, "ra-names-2", "no-such-node"), -EHOSTUNREACH);
	CU_ASSERT_EQUAL(pg_create(b, "bad/name"), -EINVAL);
	CU_ASSERT_EQUAL(pg_join(b, "ra-nowhere", 0, NULL, NULL), -ENOENT);
	CU_ASSERT_EQUAL(pg_send(b, "ra-nowhere", "x", 1), -ENOENT);
	CU_ASSERT_EQUAL(pg_leave(b, "ra-names", 0), -ESRCH);
	CU_ASSERT_EQUAL(pg_join(b, "ra-names", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_join(b, "ra-names", 0, NULL, NULL), -EALREADY);
	/* Larger than the group allows: refused on b, as on a. */
	pg_group_opts o = {.max_msg = 1024};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(a, "ra-small", &o), 0);
	static char big[2048];
	CU_ASSERT_EQUAL(pg_send(b, "ra-small", big, sizeof(big)), -EMSGSIZE);
	CU_ASSERT_EQUAL(pg_send(b, "ra-small", big, 1024), 0);
	void *buf;
	CU_ASSERT_EQUAL(pg_send_claim(b, "ra-small", 2048, &buf), -EMSGSIZE);
	CU_ASSERT_EQUAL(pg_leave(b, "ra-names", 0), 0);
	CU_ASSERT_EQUAL(pg_leave(b, "ra-names", 0), -ESRCH);
	CU_ASSERT_EQUAL(pg_delete(b, "ra-small"), 0); /* through the master */
	CU_ASSERT_EQUAL(pg_send(b, "ra-small", "x", 1), -ENOENT);
	CU_ASSERT_EQUAL(pg_delete(a, "ra-names"), 0);
	pg_close(b);
	pg_close(a);
}

/* Deleted on a while b has a member and a sender: b's member reads the
 * backlog, then PG_GROUP_DOWN; b's sends fail; the name made again is a
 * new group for b's members and senders alike. */
static void test_deleted_and_made_again(void)
{
	pg_ctx *a = open_on(&na), *am = open_on(&na), *b = open_on(&nb), *bs = open_on(&nb);
	CU_ASSERT_EQUAL_FATAL(pg_create(a, "ra-again"), 0);
	CU_ASSERT_EQUAL(pg_join(am, "ra-again", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_join(b, "ra-again", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_send(bs, "ra-again", "old", 3), 0);
	/* b's send is ordered once it reaches a (a delete before that would
	 * lose it, as the contract allows): wait until it has. */
	pg_message m;
	bool ordered = false;
	while (!ordered && pg_recv(am, &m, 3000) == 0)
		ordered = m.kind == PG_MSG && m.len == 3;
	CU_ASSERT_FATAL(ordered);
	CU_ASSERT_EQUAL(pg_send(a, "ra-again", "last", 4), 0);
	CU_ASSERT_EQUAL(pg_delete(a, "ra-again"), 0);
	pg_close(am);
	int msgs = 0;
	bool down = false;
	while (!down && pg_recv(b, &m, 3000) == 0) {
		msgs += m.kind == PG_MSG;
		down = m.kind == PG_GROUP_DOWN;
	}
	CU_ASSERT(down);
	CU_ASSERT_EQUAL(msgs, 2); /* the backlog, then the end */
	int err = 0;
	for (int i = 0; i < 100 && err != -ENOENT; i++)
		if ((err = pg_send(bs, "ra-again", "x", 1)) != -ENOENT)
			usleep(10 * 1000);
	CU_ASSERT_EQUAL(err, -ENOENT);
	CU_ASSERT_EQUAL_FATAL(pg_create(a, "ra-again"), 0);
	CU_ASSERT_EQUAL(pg_join(a, "ra-again", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_join(b, "ra-again", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_send(bs, "ra-again", "new", 3), 0);
	pg_ctx *mem[] = {a, b};
	for (int i = 0; i < 2; i++) {
		CU_ASSERT_EQUAL_FATAL(next_msg(mem[i], &m, 3000), 0);
		CU_ASSERT(m.len == 3 && !memcmp(m.data, "new", 3));
	}
	pg_close(bs);
	pg_close(b);
	CU_ASSERT_EQUAL(pg_delete(a, "ra-again"), 0);
	pg_close(a);
}

/* Zero-copy sends from b: a committed claim reaches members on both
 * nodes, an aborted one nobody. */
static void test_claims_from_b(void)
{
	pg_ctx *a = open_on(&na), *b = open_on(&nb), *bm = open_on(&nb);
	CU_ASSERT_EQUAL_FATAL(pg_create(a, "ra-claim"), 0);
	CU_ASSERT_EQUAL(pg_join(a, "ra-claim", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_join(bm, "ra-claim", 0, NULL, NULL), 0);
	void *buf;
	CU_ASSERT_EQUAL_FATAL(pg_send_claim(b, "ra-claim", 6, &buf), 0);
	memcpy(buf, "abort!", 6);
	CU_ASSERT_EQUAL(pg_send_abort(b, buf), 0);
	CU_ASSERT_EQUAL_FATAL(pg_send_claim(b, "ra-claim", 4, &buf), 0);
	memcpy(buf, "kept", 4);
	CU_ASSERT_EQUAL(pg_send_commit(b, buf), 0);
	pg_ctx *mem[] = {a, bm};
	for (int i = 0; i < 2; i++) {
		pg_message m;
		CU_ASSERT_EQUAL_FATAL(next_msg(mem[i], &m, 3000), 0);
		CU_ASSERT(m.len == 4 && !memcmp(m.data, "kept", 4));
		CU_ASSERT_STRING_EQUAL(m.from.node, "nb");
		CU_ASSERT_EQUAL(m.from.pid, getpid());
		/* Nothing else: the aborted claim is nobody's. */
		CU_ASSERT_EQUAL(next_msg(mem[i], &m, 200), -ETIMEDOUT);
	}
	pg_close(bm);
	pg_close(b);
	CU_ASSERT_EQUAL(pg_delete(a, "ra-claim"), 0);
	pg_close(a);
}

/* A process on b with a handle open, waiting to be made a member. */
static int target_child(void *arg, int up, int down)
{
	const struct daemon_proc *d = arg;
	pg_ctx *ctx;
	if (pg_open(&ctx, d->socket))
		return 1;
	char c = 'o';
	write_all(up, &c, 1);
	/* Joined by another process: its first message arrives here. */
	pg_message m;
	int err = next_msg(ctx, &m, 5000);
	c = err == 0 && m.len == 3 && !memcmp(m.data, "you", 3) ? 'y' : 'n';
	write_all(up, &c, 1);
	pg_close(ctx);
	return 0;
}

/* pg_join of another pid on b: its handle gets the membership; a pid
 * with no handle on b is -ESRCH, even one with a handle on a. */
static void test_join_other_pid_on_b(void)
{
	pg_ctx *a = open_on(&na), *b = open_on(&nb);
	CU_ASSERT_EQUAL_FATAL(pg_create(a, "ra-other"), 0);
	struct child k;
	CU_ASSERT_FATAL(child_start(&k, target_child, &nb) == 0);
	char c;
	CU_ASSERT_EQUAL_FATAL(child_read(&k, &c, 1, 5000), 0);
	CU_ASSERT_EQUAL(pg_join(b, "ra-other", k.pid, NULL, NULL), 0);
	pg_member *list;
	size_t n;
	CU_ASSERT_EQUAL_FATAL(pg_members(a, "ra-other", &list, &n), 0);
	CU_ASSERT(listed(list, n, "nb", k.pid));
	free(list);
	CU_ASSERT_EQUAL(pg_send(a, "ra-other", "you", 3), 0);
	CU_ASSERT_EQUAL(child_read(&k, &c, 1, 5000), 0);
	CU_ASSERT_EQUAL(c, 'y');
	child_wait(&k);
	/* Our own pid has handles on a and b; some pid has none on b. */
	pid_t none = getppid();
	CU_ASSERT_EQUAL(pg_join(b, "ra-other", none, NULL, NULL), -ESRCH);
	pg_close(b);
	CU_ASSERT_EQUAL(pg_delete(a, "ra-other"), 0);
	pg_close(a);
}

/* A monitor on b: the old-member list plus the events that follow give
 * the membership exactly, whatever node the members are on. */
static void test_monitor_on_b(void)
{
	pg_ctx *a = open_on(&na), *a2 = open_on(&na), *b = open_on(&nb), *b2 = open_on(&nb);
	CU_ASSERT_EQUAL_FATAL(pg_create(a, "ra-mon"), 0);
	CU_ASSERT_EQUAL(pg_join(a, "ra-mon", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_join(b2, "ra-mon", 0, NULL, NULL), 0);
	pg_member *old;
	size_t n_old;
	CU_ASSERT_EQUAL_FATAL(pg_join(b, "ra-mon", 0, &old, &n_old), 0);
	CU_ASSERT_EQUAL(pg_monitor(b, "ra-mon"), 0);
	CU_ASSERT_EQUAL(n_old, 2);
	CU_ASSERT(listed(old, n_old, "na", getpid()));
	CU_ASSERT(listed(old, n_old, "nb", getpid()));
	free(old);
	/* Joins and leaves on both nodes between messages: each in the order
	 * where its call returned (pg_leave and pg_close on b return once the
	 * master has placed the leave), each naming its node. */
	CU_ASSERT_EQUAL(pg_join(a2, "ra-mon", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_leave(b2, "ra-mon", 0), 0);
	CU_ASSERT_EQUAL(pg_send(a2, "ra-mon", "m1", 2), 0);
	CU_ASSERT_EQUAL(pg_leave(a, "ra-mon", 0), 0);
	pg_ctx *b3 = open_on(&nb);
	CU_ASSERT_EQUAL(pg_join(b3, "ra-mon", 0, NULL, NULL), 0);
	pg_close(b3);
	CU_ASSERT_EQUAL(pg_send(a2, "ra-mon", "m2", 2), 0);
	const struct {
		enum pg_kind kind;
		const char *node;
	} want[] = {{PG_JOINED, "nb"}, /* b's own: where its membership starts */
		    {PG_JOINED, "na"}, {PG_LEFT, "nb"}, {PG_MSG, "na"}, {PG_LEFT, "na"},
		    {PG_JOINED, "nb"}, {PG_LEFT, "nb"}, {PG_MSG, "na"}};
	for (int i = 0; i < 8; i++) {
		pg_message m;
		CU_ASSERT_EQUAL_FATAL(pg_recv(b, &m, 3000), 0);
		if (m.kind != want[i].kind || strcmp(m.from.node, want[i].node))
			printf("[record %d: kind %d from %s, not %d from %s] ", i, m.kind,
			       m.from.node, want[i].kind, want[i].node);
		CU_ASSERT_EQUAL(m.kind, want[i].kind);
		CU_ASSERT_STRING_EQUAL(m.from.node, want[i].node);
		CU_ASSERT_EQUAL(m.from.pid, getpid());
	}
	/* What that makes: a2 on a and b itself, as the master says. */
	pg_member *list;
	size_t n;
	CU_ASSERT_EQUAL_FATAL(pg_members(b, "ra-mon", &list, &n), 0);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT(listed(list, n, "na", getpid()));
	CU_ASSERT(listed(list, n, "nb", getpid()));
	free(list);
	pg_close(b2);
	pg_close(b);
	pg_close(a2);
	CU_ASSERT_EQUAL(pg_delete(a, "ra-mon"), 0);
	pg_close(a);
}

/* pg_trysend on b: -EAGAIN once the master's ring is held full by a
 * member that does not read (and what b holds for it is full), then
 * accepted again once that member reads; nothing accepted is lost. */
static void test_trysend_full_from_b(void)
{
	pg_ctx *a = open_on(&na), *b = open_on(&nb);
	pg_group_opts o = {.ring_bytes = 64 * 1024, .stall_ms = 20000};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(a, "ra-full", &o), 0);
	CU_ASSERT_EQUAL(pg_join(a, "ra-full", 0, NULL, NULL), 0);
	unsigned sent = 0;
	int err = 0;
	char msg[200] = {0};
	while (sent < 100000 && (err = pg_trysend(b, "ra-full", msg, sizeof(msg))) == 0)
		sent++;
	CU_ASSERT_EQUAL(err, -EAGAIN);
	CU_ASSERT(sent > 0 && sent < 100000);
	/* The member reads; b's sends are accepted again. */
	unsigned got = 0;
	pg_message m;
	while (got < sent && next_msg(a, &m, 3000) == 0)
		got++;
	CU_ASSERT_EQUAL(got, sent);
	err = -EAGAIN;
	for (int i = 0; i < 200 && err == -EAGAIN; i++)
		if ((err = pg_trysend(b, "ra-full", msg, sizeof(msg))) == -EAGAIN)
			usleep(10 * 1000);
	CU_ASSERT_EQUAL(err, 0);
	CU_ASSERT_EQUAL(next_msg(a, &m, 3000), 0);
	CU_ASSERT_EQUAL(pg_delete(a, "ra-full"), 0);
	pg_close(b);
	pg_close(a);
}

/* As an unprivileged user on b: what the group's mode allows. */
struct probe {
	const char *group;
	int join, send;
};

static int as_nobody_on_b(void *arg, int up, int down)
{
	struct probe *p = arg;
	if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
		return 2;
	pg_ctx *ctx;
	if (pg_open(&ctx, nb.socket))
		return 3;
	p->join = pg_join(ctx, p->group, 0, NULL, NULL);
	p->send = pg_send(ctx, p->group, "x", 1);
	write_all(up, p, sizeof(*p));
	pg_close(ctx);
	return 0;
}

static struct probe probe_on_b(const char *g)
{
	struct probe p = {.group = g, .join = 1, .send = 1};
	struct child c;
	if (child_start(&c, as_nobody_on_b, &p) == 0) {
		CU_ASSERT_EQUAL(child_read(&c, &p, sizeof(p), 5000), 0);
		CU_ASSERT_EQUAL(child_wait(&c), 0);
	}
	return p;
}

/* The group's mode holds on b as on a: 0600 shuts others out, 0606 lets
 * them read and write. */
static void test_modes_on_b(void)
{
	if (geteuid() != 0) {
		printf("(skipped: needs root to act as another user) ");
		return;
	}
	pg_ctx *a = open_on(&na);
	pg_group_opts o = {.mode = 0600};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(a, "ra-m600", &o), 0);
	o.mode = 0606;
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(a, "ra-m606", &o), 0);
	struct probe p = probe_on_b("ra-m600");
	CU_ASSERT_EQUAL(p.join, -EACCES);
	CU_ASSERT_EQUAL(p.send, -EACCES);
	p = probe_on_b("ra-m606");
	CU_ASSERT_EQUAL(p.join, 0);
	CU_ASSERT_EQUAL(p.send, 0);
	CU_ASSERT_EQUAL(pg_delete(a, "ra-m600"), 0);
	CU_ASSERT_EQUAL(pg_delete(a, "ra-m606"), 0);
	pg_close(a);
}

/* b's daemon killed: its members get PG_GROUP_DOWN, its calls -ENOTCONN;
 * a sees b's members exit. Last: it ends node b. */
static void test_b_daemon_killed(void)
{
	pg_ctx *a = open_on(&na), *b = open_on(&nb);
	CU_ASSERT_EQUAL_FATAL(pg_create(a, "ra-down"), 0);
	CU_ASSERT_EQUAL(pg_join(a, "ra-down", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_monitor(a, "ra-down"), 0);
	CU_ASSERT_EQUAL(pg_join(b, "ra-down", 0, NULL, NULL), 0);
	pg_message m;
	CU_ASSERT_EQUAL(kill(nb.pid, SIGKILL), 0);
	waitpid(nb.pid, NULL, 0);
	nb.pid = 0;
	CU_ASSERT_EQUAL(pg_recv(b, &m, 3000), 0);
	CU_ASSERT_EQUAL(m.kind, PG_GROUP_DOWN);
	CU_ASSERT_EQUAL(pg_send(b, "ra-down", "x", 1), -ENOTCONN);
	CU_ASSERT_EQUAL(pg_join(b, "ra-down", 0, NULL, NULL), -ENOTCONN);
	/* a's own JOINED, b's, then b's member exits with its node. */
	bool exited = false;
	while (!exited && next_event(a, &m, 5000) == 0)
		exited = m.kind == PG_EXITED && !strcmp(m.from.node, "nb") && m.from.pid == getpid();
	CU_ASSERT(exited);
	pg_close(b);
	CU_ASSERT_EQUAL(pg_delete(a, "ra-down"), 0);
	pg_close(a);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	cookie = mesh_cookie("remoteapi");
	if (!cookie || mesh_node(&na, "na", 0, cookie, NULL, 0, NULL))
		return 1;
	const struct daemon_proc *pa[] = {&na};
	if (mesh_node(&nb, "nb", 0, cookie, pa, 1, NULL) ||
	    mesh_wait(&na, "nb", CTL_NODE_UP, 10000) < 0 || mesh_wait(&nb, "na", CTL_NODE_UP, 10000) < 0)
		return 1;
	CU_pSuite s = CU_add_suite("the API on a node that is not the master", NULL, NULL);
	CU_add_test(s, "names and errors", test_names_and_errors);
	CU_add_test(s, "deleted on a, made again", test_deleted_and_made_again);
	CU_add_test(s, "zero-copy claims from b", test_claims_from_b);
	CU_add_test(s, "joining another pid on b", test_join_other_pid_on_b);
	CU_add_test(s, "a monitor on b: exact membership", test_monitor_on_b);
	CU_add_test(s, "trysend from b on a full group", test_trysend_full_from_b);
	CU_add_test(s, "group modes hold on b", test_modes_on_b);
	CU_add_test(s, "b's daemon killed", test_b_daemon_killed);
	int rc = run_cunit();
	if (nb.pid > 0 && daemon_stop(&nb))
		rc = 1;
	if (daemon_stop(&na))
		rc = 1;
	unlink(cookie);
	return rc;
}

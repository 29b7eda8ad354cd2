// SPDX-License-Identifier: MIT
/*
 * Group modes against a real pgroupd: r = join, receive, list; w = send
 * (w implies r); the owner or root deletes. Checked from child processes
 * that drop to an unprivileged uid, and the kernel's part: a receive-only
 * member's mapping of the data area cannot be written.
 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define NOBODY 65534

struct probe {
	const char *group;
	int join, send, members, del;
	int listed; /* how many groups pgroup's listing would show: not in the API */
};

/* As an unprivileged user: try everything on the group, report results. */
static int as_nobody(void *arg, int up, int down)
{
	struct probe *p = arg;
	if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
		return 2;
	pg_ctx *ctx = open_ctx();
	p->join = pg_join(ctx, p->group, 0, NULL, NULL);
	p->send = pg_send(ctx, p->group, "x", 1);
	pg_member *m;
	size_t n;
	p->members = pg_members(ctx, p->group, &m, &n);
	if (!p->members)
		free(m);
	p->del = pg_delete(ctx, p->group);
	write_all(up, p, sizeof(*p));
	pg_close(ctx);
	return 0;
}

static struct probe probe(const char *g)
{
	struct probe p = {.group = g};
	struct child c;
	if (child_start(&c, as_nobody, &p) == 0) {
		CU_ASSERT_EQUAL(child_read(&c, &p, sizeof(p), 5000), 0);
		CU_ASSERT_EQUAL(child_wait(&c), 0);
	}
	return p;
}

static void test_modes(void)
{
	if (geteuid() != 0) {
		printf("(skipped: needs root to act as another user) ");
		return;
	}
	pg_ctx *ctx = open_ctx();
	const char *g600 = fresh_group("m600"), *g604 = fresh_group("m604");
	const char *g602 = fresh_group("m602");
	pg_group_opts o = {.mode = 0600};
	CU_ASSERT_EQUAL(pg_create_opts(ctx, g600, &o), 0);
	o.mode = 0604;
	CU_ASSERT_EQUAL(pg_create_opts(ctx, g604, &o), 0);
	o.mode = 0602;
	CU_ASSERT_EQUAL(pg_create_opts(ctx, g602, &o), 0);

	struct probe p = probe(g600); /* others: nothing */
	CU_ASSERT_EQUAL(p.join, -EACCES);
	CU_ASSERT_EQUAL(p.send, -EACCES);
	CU_ASSERT_EQUAL(p.members, -EACCES);
	CU_ASSERT_EQUAL(p.del, -EACCES);
	p = probe(g604); /* others: read */
	CU_ASSERT_EQUAL(p.join, 0);
	CU_ASSERT_EQUAL(p.send, -EACCES);
	CU_ASSERT_EQUAL(p.members, 0);
	CU_ASSERT_EQUAL(p.del, -EACCES);
	p = probe(g602); /* others: write, which implies read */
	CU_ASSERT_EQUAL(p.join, 0);
	CU_ASSERT_EQUAL(p.send, 0);
	CU_ASSERT_EQUAL(p.members, 0);
	CU_ASSERT_EQUAL(p.del, -EACCES);
	/* The owner (root here) may do all of it. */
	CU_ASSERT_EQUAL(pg_join(ctx, g600, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_send(ctx, g600, "y", 1), 0);
	CU_ASSERT_EQUAL(pg_delete(ctx, g600), 0);
	CU_ASSERT_EQUAL(pg_delete(ctx, g604), 0);
	CU_ASSERT_EQUAL(pg_delete(ctx, g602), 0);
	pg_close(ctx);
}

#define FAULTED 42

static void on_segv(int sig)
{
	_exit(FAULTED); /* our own exit code: sanitizers catch SIGSEGV too */
}

/* A receive-only member writes into the view pg_recv gave it: the kernel
 * refuses (the data area is mapped read-only for it). */
static int scribble(void *arg, int up, int down)
{
	if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
		return 2;
	pg_ctx *ctx = open_ctx();
	if (pg_join(ctx, arg, 0, NULL, NULL))
		return 3;
	write_all(up, "j", 1);
	pg_message m;
	if (pg_recv(ctx, &m, 5000) || m.len != 4)
		return 4;
	struct sigaction sa = {.sa_handler = on_segv};
	sigaction(SIGSEGV, &sa, NULL);
	((volatile char *)m.data)[0] = 'X'; /* must fault */
	return 5;
}

static void test_read_only_mapping(void)
{
	if (geteuid() != 0) {
		printf("(skipped: needs root to act as another user) ");
		return;
	}
	pg_ctx *ctx = open_ctx();
	const char *g = fresh_group("ro");
	pg_group_opts o = {.mode = 0604};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(ctx, g, &o), 0);
	CU_ASSERT_EQUAL(pg_join(ctx, g, 0, NULL, NULL), 0);
	struct child c;
	CU_ASSERT_EQUAL_FATAL(child_start(&c, scribble, (void *)g), 0);
	char b;
	CU_ASSERT_EQUAL(child_read(&c, &b, 1, 5000), 0);
	CU_ASSERT_EQUAL(pg_send(ctx, g, "data", 4), 0);
	CU_ASSERT_EQUAL(child_wait(&c), FAULTED);
	pg_message m;
	CU_ASSERT_EQUAL(pg_recv(ctx, &m, 1000), 0);
	CU_ASSERT(m.len == 4 && memcmp(m.data, "data", 4) == 0); /* untouched */
	CU_ASSERT_EQUAL(pg_delete(ctx, g), 0);
	pg_close(ctx);
}

static int join_root_pid(void *arg, int up, int down)
{
	if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY))
		return 2;
	pg_ctx *ctx = open_ctx();
	int err = pg_join(ctx, arg, getppid(), NULL, NULL);
	int lerr = pg_leave(ctx, arg, getppid());
	pg_close(ctx);
	return err == -EPERM && lerr == -EPERM ? 0 : 3;
}

/* Joining (or removing) another pid needs its uid, or root. */
static void test_other_uid_pid(void)
{
	if (geteuid() != 0) {
		printf("(skipped: needs root to act as another user) ");
		return;
	}
	pg_ctx *ctx = open_ctx(); /* root's handle, the pid's first */
	const char *g = fresh_group("perm");
	pg_group_opts o = {.mode = 0666}; /* the mode allows it: the uid does not */
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(ctx, g, &o), 0);
	CU_ASSERT_EQUAL(pg_join(ctx, g, 0, NULL, NULL), 0);
	struct child c;
	CU_ASSERT_EQUAL_FATAL(child_start(&c, join_root_pid, (void *)g), 0);
	CU_ASSERT_EQUAL(child_wait(&c), 0);
	pg_member *m;
	size_t n;
	CU_ASSERT_EQUAL(pg_members(ctx, g, &m, &n), 0);
	CU_ASSERT_EQUAL(n, 1);
	free(m);
	CU_ASSERT_EQUAL(pg_delete(ctx, g), 0);
	pg_close(ctx);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	CU_pSuite s = CU_add_suite("rights", suite_start_daemon, suite_stop_daemon);
	CU_add_test(s, "modes: r, w, owner", test_modes);
	CU_add_test(s, "a receive-only mapping cannot be written", test_read_only_mapping);
	CU_add_test(s, "another user's pid: EPERM", test_other_uid_pid);
	return run_cunit();
}

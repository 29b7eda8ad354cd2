/* SPDX-License-Identifier: MIT */
/*
 * Integration-test harness: a real pgroupd on a private socket, and helpers
 * to run member and sender processes. The daemon binary comes from $PGROUPD
 * (meson sets it); $PGROUPD_WRAPPER (e.g. "valgrind ...") runs it under a tool,
 * $PGROUPD_EXTRA adds flags (e.g. --no-bpf).
 */
#ifndef PG_TEST_HARNESS_H
#define PG_TEST_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "pgroup.h"

struct daemon_proc {
	pid_t pid;
	char socket[108];
	char node[64];
	char log[128]; /* set before the start: its stderr goes there */
};

/* Start a daemon named `node` on a fresh socket; 0 once it accepts. */
int daemon_start(struct daemon_proc *d, const char *node);
/* The same with more flags (spaces between them) and, if not 0, a soft and
 * hard fd limit of `nofile` from its start. */
int daemon_start_with(struct daemon_proc *d, const char *node, const char *flags,
		      unsigned nofile);
/* SIGTERM it and reap; its exit status (0 = clean), or -1. */
int daemon_stop(struct daemon_proc *d);

/* The daemon every test in a program shares. */
extern struct daemon_proc the_daemon;
int suite_start_daemon(void);
int suite_stop_daemon(void);

/* Open a ctx on the shared daemon; aborts the test program on failure. */
pg_ctx *open_ctx(void);
/* A group name unique within this test run. */
const char *fresh_group(const char *stem);

/* Receive the next PG_MSG (skipping nothing): 0 or the pg_recv error. */
int recv_msg(pg_ctx *ctx, pg_message *m, int timeout_ms);

/* A child process that reports back over a pipe. */
struct child {
	pid_t pid;
	int rd; /* parent reads the child's reports here */
	int wr; /* parent writes to the child here */
};
typedef int (*child_fn)(void *arg, int to_parent, int from_parent);
int child_start(struct child *c, child_fn fn, void *arg);
/* Read exactly n bytes from the child (timeout in ms): 0 or -errno. */
int child_read(struct child *c, void *buf, size_t n, int timeout_ms);
int child_write(struct child *c, const void *buf, size_t n);
/* Wait for exit; the exit code, or 128+signal. Its pipes are closed
 * (rd, wr = -1): read what it reported first. */
int child_wait(struct child *c);
void child_kill(struct child *c, int sig);

/* Full write/read on fds, used by children. */
int write_all(int fd, const void *buf, size_t n);
int read_all(int fd, void *buf, size_t n, int timeout_ms);

/* How often `pid` is listed as a member of g (-1 on error); the same after
 * waiting up to 3 s for that count to become `want`. */
int members_of(pg_ctx *ctx, const char *g, pid_t pid);
int wait_members(pg_ctx *ctx, const char *g, pid_t pid, int want);

/* How many fds process `pid` holds now. */
int count_fds(pid_t pid);
/* A raw control connection to the shared daemon (fd), for garbage tests. */
int raw_connect(void);

/* Run CUnit's registered suites in basic mode; exit code for main(). */
int run_cunit(void);

#endif /* PG_TEST_HARNESS_H */

// SPDX-License-Identifier: MIT
#include "harness.h"

#include "proto/path.h"

#include <CUnit/Basic.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct daemon_proc the_daemon;

static bool accepts(const char *path)
{
	int fd = ctl_connect(path);
	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

int raw_connect(void)
{
	return ctl_connect(the_daemon.socket);
}

int count_fds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Split `s` at spaces into argv[*i..max), a copy the child keeps. */
static void add_words(char **argv, int *i, int max, const char *s)
{
	char *w = s ? strdup(s) : NULL;
	for (char *t = w ? strtok(w, " ") : NULL; t && *i < max; t = strtok(NULL, " "))
		argv[(*i)++] = t;
}

int daemon_start_with(struct daemon_proc *d, const char *node, const char *flags,
		      unsigned nofile)
{
	static unsigned n;
	const char *bin = getenv("PGROUPD");
	if (!bin) {
		fprintf(stderr, "PGROUPD is not set\n");
		return -ENOENT;
	}
	snprintf(d->socket, sizeof(d->socket), "/tmp/pgroup-test-%d-%u.sock", (int)getpid(), n++);
	snprintf(d->node, sizeof(d->node), "%s", node);
	unlink(d->socket);
	fflush(NULL);
	d->pid = fork();
	if (d->pid < 0)
		return -errno;
	if (d->pid == 0) {
		/* A limit set here is the daemon's from its start (the test
		 * process itself may not raise its own again): the hard one,
		 * under Debian's default soft one (1,024) when it is higher. */
		struct rlimit rl = {nofile < 1024 ? nofile : 1024, nofile};
		if (nofile && setrlimit(RLIMIT_NOFILE, &rl))
			_exit(126);
		const char *wrap = getenv("PGROUPD_WRAPPER");
		char *argv[48];
		int i = 0;
		add_words(argv, &i, 24, wrap);
		argv[i++] = (char *)bin;
		argv[i++] = "--socket";
		argv[i++] = d->socket;
		argv[i++] = "--node";
		argv[i++] = d->node;
		/* PGROUPD_EXTRA: more daemon flags, e.g. --no-bpf. */
		add_words(argv, &i, 38, getenv("PGROUPD_EXTRA"));
		add_words(argv, &i, 46, flags);
		argv[i] = NULL;
		if (d->log[0]) {
			int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
			if (fd >= 0)
				dup2(fd, 2);
		} else if (!getenv("PGROUP_TEST_VERBOSE")) {
			/* Keep the daemon's log out of CUnit's output, but
			 * keep tool reports (valgrind writes to stderr). */
			if (!wrap) {
				int null = open("/dev/null", 1);
				dup2(null, 2);
			}
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	for (int i = 0; i < 2000; i++) {
		if (accepts(d->socket))
			return 0;
		int st;
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			d->pid = 0;
			return -ECHILD;
		}
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return -ETIMEDOUT;
}

int daemon_start(struct daemon_proc *d, const char *node)
{
	return daemon_start_with(d, node, NULL, 0);
}

int members_of(pg_ctx *ctx, const char *g, pid_t pid)
{
	pg_member *m;
	size_t n;
	int count = 0;
	if (pg_members(ctx, g, &m, &n))
		return -1;
	for (size_t i = 0; i < n; i++)
		count += m[i].pid == pid;
	free(m);
	return count;
}

int wait_members(pg_ctx *ctx, const char *g, pid_t pid, int want)
{
	int n = members_of(ctx, g, pid);
	for (int i = 0; i < 300 && n != want; i++) {
		usleep(10000);
		n = members_of(ctx, g, pid);
	}
	return n;
}

int daemon_stop(struct daemon_proc *d)
{
	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	int st;
	if (waitpid(d->pid, &st, 0) != d->pid)
		return -1;
	d->pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int suite_start_daemon(void)
{
	return daemon_start(&the_daemon, "testnode") ? -1 : 0;
}

int suite_stop_daemon(void)
{
	return daemon_stop(&the_daemon) ? -1 : 0;
}

pg_ctx *open_ctx(void)
{
	pg_ctx *ctx;
	int err = pg_open(&ctx, the_daemon.socket);
	if (err) {
		fprintf(stderr, "pg_open: %s\n", pg_strerror(err));
		exit(99);
	}
	return ctx;
}

const char *fresh_group(const char *stem)
{
	static char buf[8][128];
	static unsigned n;
	char *b = buf[n % 8];
	snprintf(b, sizeof(buf[0]), "%s-%d-%u", stem, (int)getpid(), n);
	n++;
	return b;
}

int recv_msg(pg_ctx *ctx, pg_message *m, int timeout_ms)
{
	return pg_recv(ctx, m, timeout_ms);
}

int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -EIO;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int read_all(int fd, void *buf, size_t n, int timeout_ms)
{
	char *p = buf;
	while (n) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r = poll(&pfd, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return -ETIMEDOUT;
		ssize_t k = read(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -EIO;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int child_start(struct child *c, child_fn fn, void *arg)
{
	int up[2], down[2];
	if (pipe2(up, O_CLOEXEC) || pipe2(down, O_CLOEXEC))
		return -errno;
	fflush(NULL);
	c->pid = fork();
	if (c->pid < 0)
		return -errno;
	if (c->pid == 0) {
		close(up[0]);
		close(down[1]);
		_exit(fn(arg, up[1], down[0]));
	}
	close(up[1]);
	close(down[0]);
	c->rd = up[0];
	c->wr = down[1];
	return 0;
}

int child_read(struct child *c, void *buf, size_t n, int timeout_ms)
{
	return read_all(c->rd, buf, n, timeout_ms);
}

int child_write(struct child *c, const void *buf, size_t n)
{
	return write_all(c->wr, buf, n);
}

int child_wait(struct child *c)
{
	int st;
	if (c->pid <= 0)
		return -1;
	while (waitpid(c->pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	c->pid = 0;
	close(c->rd);
	close(c->wr);
	/* Not the numbers any more: a later pipe gets them, and a read of
	 * this child's would take another child's reports. */
	c->rd = c->wr = -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void child_kill(struct child *c, int sig)
{
	if (c->pid > 0)
		kill(c->pid, sig);
}

int run_cunit(void)
{
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}

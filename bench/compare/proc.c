// SPDX-License-Identifier: MIT
/* Helper processes: the daemons some transports need, and readiness probes. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "compare.h"

void cmp_sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

int cmp_spawn_daemon(char *const argv[], bool verbose)
{
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid)
		return pid;
	/* Killed with us, however we die: a benchmark must not leave a daemon
	 * holding shared memory behind. The setting survives exec. */
	prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
	if (getppid() != parent)
		_exit(1);
	if (!verbose) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
	}
	execvp(argv[0], argv);
	fprintf(stderr, "pgcompare: cannot run %s\n", argv[0]);
	_exit(127);
}

/* Exit status as bench_reap reports it, or -ETIMEDOUT if still running. */
static int wait_for(pid_t pid, int timeout_ms)
{
	uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (bench_now_ns() >= deadline)
			return -ETIMEDOUT;
		cmp_sleep_ms(5);
	}
}

int cmp_wait_child(int pid, int timeout_ms)
{
	int rc = wait_for(pid, timeout_ms);
	if (rc == -ETIMEDOUT) {
		kill(pid, SIGKILL);
		bench_reap(&pid);
	}
	return rc;
}

int cmp_stop_daemon(int pid, int timeout_ms)
{
	if (pid <= 0)
		return 0;
	kill(pid, SIGTERM);
	int rc = wait_for(pid, timeout_ms);
	if (rc == -ETIMEDOUT) {
		fprintf(stderr, "pgcompare: pid %d ignored SIGTERM; killing it\n", pid);
		kill(pid, SIGKILL);
		rc = bench_reap(&pid);
	}
	return rc;
}

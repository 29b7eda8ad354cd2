// SPDX-License-Identifier: MIT
/* Helpers shared by `pgroup bench` and `pgroup demo`; see bench.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

bool bench_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v > max)
		return false;
	*out = v;
	return true;
}

long bench_rss_kib(pid_t pid)
{
	char path[64], line[256];
	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/status");
	FILE *f = fopen(path, "r");
	long kib = -1;
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kib = atol(line + 6);
	if (f)
		fclose(f);
	return kib;
}

uint64_t bench_cpu_ns(void)
{
	return clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

uint64_t bench_faults(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return 0;
	return (uint64_t)ru.ru_minflt + (uint64_t)ru.ru_majflt;
}

const char *bench_plural(unsigned n)
{
	return n == 1 ? "" : "s";
}

uint64_t bench_fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = 1;
}

void bench_catch_signals(void)
{
	/* No SA_RESTART: waits return EINTR and the caller cleans up. */
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

bool bench_interrupted(void)
{
	return interrupted;
}

pid_t bench_spawn(int (*fn)(void *arg), void *arg)
{
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid)
		return pid;
	/* A child dies of ^C like any process, and with its parent, which
	 * cleans up: no orphan is left blocked on a pipe or a ring. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (getppid() != parent)
		_exit(1);
	int rc = fn(arg);
	fflush(NULL);
	/* _exit: the parent's atexit handlers are not ours to run. */
	_exit(rc);
}

int bench_reap(pid_t *pid)
{
	int st = 0;
	while (waitpid(*pid, &st, 0) < 0 && errno == EINTR)
		;
	*pid = 0;
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

void bench_kill_all(pid_t *pids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGKILL);
	for (size_t i = 0; i < n; i++)
		if (pids[i] > 0)
			bench_reap(&pids[i]);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int bench_gate_init(struct bench_gate *g)
{
	g->ready[0] = g->ready[1] = g->go[0] = g->go[1] = g->warm[0] = g->warm[1] = -1;
	if (pipe2(g->ready, O_CLOEXEC) < 0 || pipe2(g->go, O_CLOEXEC) < 0 ||
	    pipe2(g->warm, O_CLOEXEC) < 0) {
		int err = -errno;
		bench_gate_close(g);
		return err;
	}
	return 0;
}

void bench_gate_child(struct bench_gate *g)
{
	/* Our copies of the write ends the parent closes, or its close
	 * would never read as end-of-file here. */
	close_fd(&g->go[1]);
	close_fd(&g->warm[1]);
	close_fd(&g->ready[0]);
}

void bench_gate_say(struct bench_gate *g, int err)
{
	char b = err ? 'e' : 'r';
	while (write(g->ready[1], &b, 1) < 0 && errno == EINTR)
		;
}

void bench_gate_ready(struct bench_gate *g, int err)
{
	bench_gate_child(g);
	bench_gate_say(g, err);
	close_fd(&g->ready[1]);
}

bool bench_gate_warm(struct bench_gate *g)
{
	struct pollfd p = {.fd = g->warm[0], .events = POLLIN};
	return poll(&p, 1, 0) == 1;
}

void bench_gate_warmed(struct bench_gate *g)
{
	close_fd(&g->warm[1]);
}

void bench_gate_wait(struct bench_gate *g)
{
	char b;
	while (read(g->go[0], &b, 1) < 0 && errno == EINTR)
		;
	close_fd(&g->go[0]);
}

int bench_gate_collect(struct bench_gate *g, size_t n, int timeout_ms)
{
	uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
	int err = 0;
	while (n) {
		uint64_t now = bench_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = g->ready[0], .events = POLLIN};
		int r = poll(&p, 1, (int)((deadline - now) / 1000000u) + 1);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (bench_interrupted())
			return -EINTR;
		if (r <= 0)
			continue;
		char b;
		ssize_t k = read(g->ready[0], &b, 1);
		if (k == 0)
			return -ECHILD;
		if (k == 1) {
			n--;
			if (b != 'r')
				err = -ECHILD;
		}
	}
	return err;
}

void bench_gate_open(struct bench_gate *g)
{
	close_fd(&g->go[1]);
}

void bench_gate_close(struct bench_gate *g)
{
	close_fd(&g->ready[0]);
	close_fd(&g->ready[1]);
	close_fd(&g->go[0]);
	close_fd(&g->go[1]);
	close_fd(&g->warm[0]);
	close_fd(&g->warm[1]);
}

int bench_order_init(struct bench_order *o, unsigned senders)
{
	*o = (struct bench_order){.senders = senders, .hash = BENCH_FNV_INIT};
	o->next = calloc(senders, sizeof(*o->next));
	return o->next ? 0 : -ENOMEM;
}

int bench_order_init_set(struct bench_order *o, unsigned senders, uint64_t count)
{
	int err = bench_order_init(o, senders);
	if (err)
		return err;
	o->per_sender = count;
	o->seen = calloc((senders * count + 63) / 64, sizeof(*o->seen));
	if (!o->seen) {
		bench_order_free(o);
		return -ENOMEM;
	}
	return 0;
}

void bench_order_free(struct bench_order *o)
{
	free(o->next);
	free(o->seen);
	o->next = NULL;
	o->seen = NULL;
}

bool bench_order_add(struct bench_order *o, uint32_t sender, uint32_t seq, uint64_t gseq)
{
	/* The contract: seq grows strictly along the group's order. */
	if (o->last_gseq && gseq <= o->last_gseq)
		o->bad++;
	o->last_gseq = gseq;
	if (sender >= o->senders) {
		o->bad++;
		return false;
	}
	if (o->seen) {
		if (seq >= o->per_sender) {
			o->bad++;
			return false;
		}
		uint64_t bit = (uint64_t)sender * o->per_sender + seq;
		if (o->seen[bit / 64] & (1ull << (bit % 64))) {
			o->dups++;
			return false;
		}
		o->seen[bit / 64] |= 1ull << (bit % 64);
		/* A sum: the same set gives the same hash in any order. */
		uint64_t h = bench_fnv(BENCH_FNV_INIT, &sender, sizeof(sender));
		o->hash += bench_fnv(h, &seq, sizeof(seq));
		return true;
	}
	if (seq < o->next[sender]) {
		o->dups++;
		return false;
	}
	o->gaps += seq - o->next[sender];
	o->next[sender] = seq + 1;
	o->hash = bench_fnv(o->hash, &sender, sizeof(sender));
	o->hash = bench_fnv(o->hash, &seq, sizeof(seq));
	return true;
}

uint64_t bench_order_errors(const struct bench_order *o)
{
	return o->dups + o->gaps + o->bad;
}

int bench_group_create(pg_ctx *ctx, const char *prefix, const pg_group_opts *opts, char *out,
		       size_t cap)
{
	/* The pid keeps concurrent runs on one node apart. */
	if ((size_t)snprintf(out, cap, "%s-%d", prefix, (int)getpid()) >= cap)
		return -ENAMETOOLONG;
	return pg_create_opts(ctx, out, opts);
}

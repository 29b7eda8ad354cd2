// SPDX-License-Identifier: MIT
/*
 * Limits and abuse against a real pgroupd: a sender that drives the tail of
 * its own group so the daemon's event append never ends, a "daemon" that
 * never answers, a daemon out of file descriptors, members that never read
 * while joins and leaves churn, a claim that outlives its group, the groups
 * listing (lag of a memberless group, more groups than one datagram holds),
 * and two daemons racing for one socket path.
 *
 * Everything that talks to a daemon which may hang runs in a child process
 * whose reports the test reads with a timeout, and every test arms a
 * watchdog: a hang fails the program instead of stalling the suite.
 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "proto/ctl.h"
#include "proto/path.h"
#include "ring/layout.h"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* A test that hangs must fail, not stall the run: SIGALRM ends the
 * program, naming the test. */
static const char *watched = "?";

static void on_alarm(int sig)
{
	static const char msg[] = "\ntest_limits: watchdog: a test hung: ";
	write(2, msg, sizeof(msg) - 1);
	write(2, watched, strlen(watched));
	write(2, "\n", 1);
	_exit(124);
}

static void watchdog(const char *name, unsigned secs)
{
	watched = name;
	signal(SIGALRM, on_alarm);
	alarm(secs);
}

/* Children inherit the handler; they set their own alarm when needed. */
static void watchdog_off(void)
{
	alarm(0);
}

/* SIGTERM, then SIGKILL if it has not exited within `ms`: its exit status
 * (0 = clean), 128+signal, or -1 when it had to be killed. */
static int stop_bounded(pid_t *pidp, int ms)
{
	pid_t pid = *pidp;
	int st;
	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	for (int64_t end = now_ms() + ms; now_ms() < end;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			*pidp = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		if (r < 0) {
			*pidp = 0;
			return -1;
		}
		sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	*pidp = 0;
	return -1;
}

static void untrack(pid_t pid);

static int daemon_stop_bounded(struct daemon_proc *d)
{
	untrack(d->pid);
	int rc = stop_bounded(&d->pid, 5000);
	unlink(d->socket);
	return rc;
}

/* Daemons of the tests' own: whatever a test left running (a FATAL assert
 * returns early) is killed at the end, so none outlives the program. */
static pid_t extra_pids[64];

static void track(pid_t pid)
{
	for (size_t i = 0; i < sizeof(extra_pids) / sizeof(extra_pids[0]); i++)
		if (!extra_pids[i]) {
			extra_pids[i] = pid;
			return;
		}
}

static void untrack(pid_t pid)
{
	for (size_t i = 0; i < sizeof(extra_pids) / sizeof(extra_pids[0]); i++)
		if (extra_pids[i] == pid)
			extra_pids[i] = 0;
}

static int suite_cleanup(void)
{
	for (size_t i = 0; i < sizeof(extra_pids) / sizeof(extra_pids[0]); i++)
		if (extra_pids[i] > 0) {
			kill(extra_pids[i], SIGKILL);
			waitpid(extra_pids[i], NULL, 0);
			extra_pids[i] = 0;
		}
	return suite_stop_daemon();
}

/* daemon_start_with an fd limit, tracked so the suite kills it at the end
 * even if a test stops early. */
static int start_extra(struct daemon_proc *d, const char *node, rlim_t nofile)
{
	int err = daemon_start_with(d, node, NULL, (unsigned)nofile);
	if (d->pid > 0)
		track(d->pid);
	return err;
}

/* True while the process has not exited (it is our child). */
static bool child_alive(pid_t pid)
{
	int st;
	return pid > 0 && waitpid(pid, &st, WNOHANG) == 0;
}

/* A child we may have to abandon: SIGKILL, then reap. */
static void child_end(struct child *c)
{
	if (c->pid > 0) {
		child_kill(c, SIGKILL);
		child_wait(c);
	}
}

/* utime + stime of `pid`, in clock ticks, or -1. */
static long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	/* The command name may hold spaces and parentheses: fields count
	 * from the last ')'. utime and stime are fields 14 and 15. */
	char *p = strrchr(buf, ')');
	unsigned long ut, stime;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
			 &stime) != 2)
		return -1;
	return (long)(ut + stime);
}

/* ---------------------------------------------------------------------
 * pg_open in a child: its result, or -ETIMEDOUT when the child did not
 * report within timeout_ms (then it is killed). *elapsed in ms.
 */
struct open_arg {
	const char *socket;
	unsigned alarm_s;
};

static int open_and_report(void *arg, int up, int down)
{
	const struct open_arg *a = arg;
	alarm(a->alarm_s); /* a hang in here kills this child, nothing else */
	int64_t t0 = now_ms();
	pg_ctx *ctx = NULL;
	int rep[2];
	rep[0] = pg_open(&ctx, a->socket);
	rep[1] = (int)(now_ms() - t0);
	write_all(up, rep, sizeof(rep));
	if (rep[0] == 0)
		pg_close(ctx);
	return 0;
}

static int open_in_child(const char *socket, int timeout_ms, int *elapsed)
{
	struct open_arg a = {socket, (unsigned)(timeout_ms / 1000 + 3)};
	struct child c;
	if (child_start(&c, open_and_report, &a))
		return -ECHILD;
	int rep[2] = {-ETIMEDOUT, timeout_ms};
	int err = child_read(&c, rep, sizeof(rep), timeout_ms);
	if (err)
		rep[0] = -ETIMEDOUT;
	*elapsed = err ? timeout_ms : rep[1];
	child_end(&c);
	return rep[0];
}

/* ---------------------------------------------------------------------
 * Defect 4: a sender drives its own group's tail; the daemon's event
 * append must not spin for as long as the tail moves.
 */

/* A writable mapping of `group`'s data header, obtained the way any sender
 * gets one (CTL_OPEN with the write flag). The session fd stays open (the
 * writer slot is ours while it does); *hdr is the mapping. */
static int raw_open_write(const char *socket, const char *group, struct ring_data_hdr **hdr)
{
	int fd = ctl_connect(socket);
	if (fd < 0)
		return fd;
	struct ctl_out *o = malloc(sizeof(*o));
	static uint8_t in[CTL_MAX_BYTES];
	int fds[CTL_MAX_FDS] = {-1, -1, -1}, err = -EIO;
	unsigned nfds = CTL_MAX_FDS;
	ctl_begin(o, CTL_OPEN, 1, 0);
	ctl_put_str(o, CTL_T_NAME, group);
	ctl_put_u32(o, CTL_T_FLAGS, CTL_F_WRITE);
	ctl_end(o);
	if (ctl_send(fd, o, NULL, 0) == 0) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		struct ctl_in m;
		ssize_t n = poll(&p, 1, 5000) == 1 ? ctl_recv(fd, in, sizeof(in), fds, &nfds, 0)
						    : -ETIMEDOUT;
		if (n > 0 && ctl_parse(&m, in, (size_t)n) == 0)
			err = m.hdr.status ? m.hdr.status : nfds == 3 ? 0 : -EPROTO;
	}
	free(o);
	if (!err) {
		void *p = mmap(NULL, RING_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
		if (p == MAP_FAILED)
			err = -errno;
		else
			*hdr = p;
	}
	for (unsigned i = 0; i < nfds && i < CTL_MAX_FDS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

/*
 * The attack: move the tails on, aligned (so they still look like claims),
 * as fast as the CPU goes. Any user can do that from a CPU of its own; on
 * a test machine with few CPUs, the thread also takes a real-time priority
 * (we are root) on the last CPU, so that other work does not interrupt it
 * and end the daemon's retries early. The other CPUs are left to the
 * daemon and the bystander.
 */
struct bumper {
	_Atomic uint64_t *tail;
	atomic_bool stop;
	int cpu;
	bool rt;
	uint64_t bumps;
};

static void *bump_tail(void *arg)
{
	struct bumper *b = arg;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(b->cpu, &set);
	sched_setaffinity(0, sizeof(set), &set); /* best effort */
	if (b->rt) {
		struct sched_param sp = {.sched_priority = 1};
		b->rt = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0;
	}
	while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
		atomic_fetch_add_explicit(b->tail, RING_ALIGN, memory_order_relaxed);
		b->bumps++;
	}
	return NULL;
}

struct churn_arg {
	const char *socket;
	const char *group;
};

/* Join and leave the attacked group (each one an event for the daemon to
 * append), reporting every join's result, until told to stop. */
static int churn_joins(void *arg, int up, int down)
{
	const struct churn_arg *a = arg;
	alarm(30);
	pg_ctx *ctx;
	int err = pg_open(&ctx, a->socket);
	if (err) {
		write_all(up, &err, sizeof(err));
		return 2;
	}
	fcntl(down, F_SETFL, O_NONBLOCK);
	/* Some hundreds of events a second, for at most 10 s (less than a
	 * pipe's worth of reports). */
	for (int64_t end = now_ms() + 10000; now_ms() < end;) {
		char q;
		if (read(down, &q, 1) == 1)
			break;
		int rc = pg_join(ctx, a->group, 0, NULL, NULL);
		write_all(up, &rc, sizeof(rc));
		if (rc == 0)
			pg_leave(ctx, a->group, 0);
		usleep(1000);
	}
	pg_close(ctx);
	return 0;
}

/* An unrelated client: opens, creates groups of its own and lists their
 * members, reporting each RPC's result as it returns. */
static int unrelated_client(void *arg, int up, int down)
{
	const char *socket = arg;
	alarm(30);
	pg_ctx *ctx;
	int err = pg_open(&ctx, socket);
	write_all(up, &err, sizeof(err));
	if (err)
		return 2;
	for (int i = 0; i < 10; i++) {
		char name[64];
		snprintf(name, sizeof(name), "bystander-%d-%d", (int)getpid(), i);
		err = pg_create(ctx, name);
		write_all(up, &err, sizeof(err));
		pg_member *m = NULL;
		size_t n = 0;
		err = pg_members(ctx, name, &m, &n);
		free(m);
		write_all(up, &err, sizeof(err));
	}
	pg_close(ctx);
	return 0;
}

/*
 * Each event the daemon appends to the attacked group retries for as long
 * as the tail moves under it: with a steady trickle of events (the
 * attacker's own joins) the daemon does little but retry. Where the
 * attacker's thread is interrupted (few CPUs, the real-time throttle) each
 * retry loop ends at the next interruption and the queue drains, so the
 * bystander may still be answered in time; the daemon's CPU shows the spin
 * either way: compared with the same trickle of joins before the attack,
 * it must not go up by more than 15 % of a CPU.
 */
static double busy_share(pid_t pid, int ms)
{
	long c0 = cpu_ticks(pid);
	int64_t t0 = now_ms();
	sleep_ms(ms);
	long c1 = cpu_ticks(pid);
	if (c0 < 0 || c1 < 0)
		return -1;
	return (double)(c1 - c0) / (double)sysconf(_SC_CLK_TCK) /
	       ((double)(now_ms() - t0) / 1000.0);
}

static void test_tail_attack_does_not_stall_daemon(void)
{
	watchdog("tail attack", 60);
	/* A daemon of its own: a stalled daemon must not take the others'
	 * tests down with it. */
	struct daemon_proc d = {0};
	CU_ASSERT_EQUAL_FATAL(start_extra(&d, "attacked", 0), 0);
	pg_ctx *own, *idle;
	CU_ASSERT_EQUAL_FATAL(pg_open(&own, d.socket), 0);
	CU_ASSERT_EQUAL_FATAL(pg_open(&idle, d.socket), 0);
	const char *g = "victim";
	pg_group_opts o = {.ring_bytes = 64 * 1024, .max_msg = 1024, .stall_ms = 200};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(own, g, &o), 0);
	/* A member that never reads: the ring is full once the tail has
	 * moved a ring's worth. */
	CU_ASSERT_EQUAL_FATAL(pg_join(idle, g, 0, NULL, NULL), 0);
	struct ring_data_hdr *h = NULL;
	int wfd = raw_open_write(d.socket, g, &h);
	CU_ASSERT_FATAL(wfd >= 0);
	/* The last CPU is the attacker's (see bump_tail): the daemon, this
	 * thread and the children it forks keep to the others, so none of
	 * them waits behind a real-time thread. */
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t mine, rest;
	sched_getaffinity(0, sizeof(mine), &mine);
	CPU_ZERO(&rest);
	for (int i = 0; i < ncpu - 1 && i < CPU_SETSIZE; i++)
		CPU_SET(i, &rest);
	if (ncpu > 1) {
		sched_setaffinity(0, sizeof(rest), &rest);
		sched_setaffinity(d.pid, sizeof(rest), &rest);
	}

	/* The events: the attacker's joins, before and during the attack. */
	struct churn_arg ca = {d.socket, g};
	struct child churn, churn2, by;
	CU_ASSERT_EQUAL_FATAL(child_start(&churn, churn_joins, &ca), 0);
	CU_ASSERT_EQUAL_FATAL(child_start(&churn2, churn_joins, &ca), 0);
	sleep_ms(100);
	double before = busy_share(d.pid, 1000);

	/* One bumper on the last CPU, real-time when another CPU is left for
	 * everyone else. */
	struct bumper b = {.tail = &h->tail, .cpu = ncpu > 1 ? (int)ncpu - 1 : 0,
			   .rt = ncpu > 1};
	pthread_t t;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, bump_tail, &b), 0);
	sleep_ms(50);
	int rc = 1;
	while (child_read(&churn, &rc, sizeof(rc), 0) == 0)
		; /* what it reported before the attack */
	long c0 = cpu_ticks(d.pid);
	int64_t t0 = now_ms();
	CU_ASSERT_EQUAL_FATAL(child_start(&by, unrelated_client, d.socket), 0);
	/* Every one of the bystander's RPCs is answered, each in 2 s. */
	int answered = 0;
	for (int i = 0; i < 21; i++) {
		int brc = 1;
		if (child_read(&by, &brc, sizeof(brc), 2000)) {
			fprintf(stderr, "tail attack: unrelated client's RPC %d unanswered after 2 s "
				"(daemon stalled)\n", i);
			break;
		}
		CU_ASSERT_EQUAL(brc, 0);
		answered++;
	}
	CU_ASSERT_EQUAL(answered, 21);
	/* The attacker's own joins come back too: failed cleanly, or done. */
	int err = child_read(&churn, &rc, sizeof(rc), 2000);
	CU_ASSERT_EQUAL(err, 0);
	if (!err)
		CU_ASSERT(rc == 0 || (rc < 0 && rc != -ENOTCONN && rc != -EPROTO));
	/* Two seconds of attack in all: a daemon that gives up on the
	 * group's appends is idle most of it. */
	int64_t left = 2000 - (now_ms() - t0);
	if (left > 0)
		sleep_ms((int)left);
	long c1 = cpu_ticks(d.pid);
	double busy = (double)(c1 - c0) / (double)sysconf(_SC_CLK_TCK) /
		      ((double)(now_ms() - t0) / 1000.0);
	atomic_store(&b.stop, true);
	pthread_join(t, NULL);
	fprintf(stderr, "tail attack: %s bumper, %llu bumps; attacker's join: %s; daemon busy "
		"%.0f%% before, %.0f%% during the attack\n",
		b.rt ? "real-time" : "normal", (unsigned long long)b.bumps,
		err ? "no answer" : pg_strerror(rc), 100 * before, 100 * busy);
	CU_ASSERT(before >= 0 && c0 >= 0 && c1 >= 0);
	CU_ASSERT(busy < before + 0.15);
	child_end(&churn);
	child_end(&churn2);
	child_end(&by);
	sched_setaffinity(0, sizeof(mine), &mine);
	/* The daemon survived and serves. */
	CU_ASSERT(child_alive(d.pid));
	int ms;
	CU_ASSERT_EQUAL(open_in_child(d.socket, 10000, &ms), 0);
	munmap(h, RING_PAGE);
	close(wfd);
	pg_close(idle);
	pg_close(own);
	CU_ASSERT_EQUAL(daemon_stop_bounded(&d), 0);
	watchdog_off();
}

/* A socket that accepts and never says a word. */
static int silent_daemon(void *arg, int up, int down)
{
	int lfd = *(int *)arg;
	/* Every connection is kept open, never answered, never closed. */
	for (;;)
		if (accept(lfd, NULL, NULL) < 0)
			sleep_ms(10);
	return 0;
}

static void test_open_silent_daemon_times_out(void)
{
	watchdog("silent daemon", 40);
	char path[108];
	snprintf(path, sizeof(path), "/tmp/pgroup-test-silent-%d.sock", (int)getpid());
	unlink(path);
	int lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(lfd >= 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	CU_ASSERT_EQUAL_FATAL(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CU_ASSERT_EQUAL_FATAL(listen(lfd, 16), 0);
	struct child fake;
	CU_ASSERT_EQUAL_FATAL(child_start(&fake, silent_daemon, &lfd), 0);
	close(lfd);
	/* pg_open must give up with an error on its own, well before the
	 * child's alarm (15 s) would end it. */
	int ms = 0;
	int err = open_in_child(path, 14000, &ms);
	if (err == -ETIMEDOUT && ms >= 14000)
		fprintf(stderr, "silent daemon: pg_open did not return in 14 s\n");
	CU_ASSERT(err < 0);
	CU_ASSERT(ms <= 12000);
	child_end(&fake);
	unlink(path);
	watchdog_off();
}

/*
 * Connect and say HELLO: the session fd (the caller closes it, whatever
 * happened) with *status 0 once answered; else *status is the daemon's
 * error, -ECONNRESET when it hung up, -ETIMEDOUT when it said nothing in
 * timeout_ms, or connect's error (then -1 is returned).
 */
static int hello_session(const char *socket, int timeout_ms, int *status)
{
	int fd = ctl_connect(socket);
	if (fd < 0) {
		*status = fd;
		return -1;
	}
	static struct ctl_out o;
	static uint8_t in[CTL_MAX_BYTES];
	ctl_begin(&o, CTL_HELLO, 1, 0);
	ctl_end(&o);
	if (ctl_send(fd, &o, NULL, 0)) {
		*status = -ECONNRESET;
		return fd;
	}
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, timeout_ms) != 1) {
		*status = -ETIMEDOUT;
		return fd;
	}
	int fds[CTL_MAX_FDS];
	unsigned nfds = CTL_MAX_FDS;
	ssize_t n = ctl_recv(fd, in, sizeof(in), fds, &nfds, MSG_DONTWAIT);
	for (unsigned i = 0; n > 0 && i < nfds; i++)
		close(fds[i]);
	struct ctl_in m;
	if (n <= 0 || ctl_parse(&m, in, (size_t)n))
		*status = -ECONNRESET;
	else
		*status = m.hdr.status;
	return fd;
}

/* ---------------------------------------------------------------------
 * Defect 5 (and 11e): a daemon out of file descriptors fails creates
 * cleanly, answers new connections, and does not spin.
 */
/* A session of a process of its own (a new pid costs the daemon a pidfd
 * as well as the socket), held until the parent says so. */
static int hold_session(void *arg, int up, int down)
{
	int status;
	alarm(60);
	int fd = hello_session(arg, 1000, &status);
	write_all(up, &status, sizeof(status));
	char q;
	read_all(down, &q, 1, 60000);
	if (fd >= 0)
		close(fd);
	return 0;
}

static void test_fd_exhaustion(void)
{
	watchdog("fd exhaustion", 60);
	/* A low hard limit too: a daemon may raise its soft limit to the hard
	 * one, and the test must still reach the end. */
	struct daemon_proc d = {0};
	CU_ASSERT_EQUAL_FATAL(start_extra(&d, "fdlimit", 96), 0);
	pg_ctx *ctx;
	CU_ASSERT_EQUAL_FATAL(pg_open(&ctx, d.socket), 0);
	pg_group_opts o = {.ring_bytes = 64 * 1024, .max_msg = 1024};
	int n = 0, err = 0;
	char name[64];
	for (; n < 200; n++) {
		snprintf(name, sizeof(name), "fd-%d", n);
		if ((err = pg_create_opts(ctx, name, &o)))
			break;
	}
	fprintf(stderr, "fd exhaustion: %d groups, then pg_create: %s\n", n, pg_strerror(err));
	CU_ASSERT(n > 0 && n < 200);
	CU_ASSERT(err == -ENOSPC || err == -EMFILE || err == -ENFILE || err == -EDQUOT ||
		  err == -ENOMEM);

	/*
	 * Then take every fd left. A session of this process costs the daemon
	 * one fd (its pidfd of us is known), but needs two for a moment: with
	 * one fd left the daemon hangs up on it. A session of a new process
	 * costs two or three (socket, pidfd, maybe the exit watcher's dup).
	 * So: sessions until one is hung up on (one fd left); then free a
	 * group's three and spend them with 0..3 sessions of ours and one of a
	 * new process, trying each count in turn until a session is left
	 * unanswered: none is left. A daemon that refuses with an error (it
	 * keeps a reserve) ends it too.
	 */
	int sess[64], ns = 0, st = 0, probe_err = 1, pending_fd = -1;
	struct child holder[16];
	int held = 0, rounds = 0;
	for (int step = 0; step < 60 && ns < 60; step++) {
		sleep_ms(150); /* sessions that ended are reaped (100 ms grace) */
		int fd = hello_session(d.socket, 300, &st);
		if (st == -ETIMEDOUT) {
			pending_fd = fd; /* unanswered: the daemon is out of fds */
			break;
		}
		if (st == 0) {
			sess[ns++] = fd;
			continue;
		}
		if (fd >= 0)
			close(fd);
		if (st != -ECONNRESET || held == 16 || n == 0)
			break; /* refused with a reason: fine */
		if (probe_err == 1) {
			/* A daemon that lives and cannot take a handle must say
			 * so, not hang up: pg_open reports that as "nobody
			 * listens". */
			int ms = 0;
			probe_err = open_in_child(d.socket, 5000, &ms);
			fprintf(stderr, "fd exhaustion: pg_open with one fd left: %s after %d ms\n",
				pg_strerror(probe_err), ms);
			/* Under valgrind (which keeps fds of its own below the
			 * limit it shows the daemon) about one run in six sees a
			 * hang-up here, on this session's code and before it: not
			 * understood yet (issue 11 note); the run without
			 * valgrind and the one without eBPF keep the check. */
			bool valgrind = getenv("PGROUPD_WRAPPER") != NULL;
			CU_ASSERT((valgrind || probe_err != -ECONNREFUSED) && probe_err != -ENOENT &&
				  probe_err != -ETIMEDOUT);
		}
		snprintf(name, sizeof(name), "fd-%d", --n);
		CU_ASSERT_EQUAL(pg_delete(ctx, name), 0);
		for (int k = 0; k < rounds % 4 && ns < 60; k++) {
			sess[ns] = hello_session(d.socket, 300, &st);
			if (st == 0)
				ns++;
			else if (sess[ns] >= 0)
				close(sess[ns]);
		}
		rounds++;
		int hs = 1;
		CU_ASSERT_EQUAL_FATAL(child_start(&holder[held], hold_session, d.socket), 0);
		child_read(&holder[held], &hs, sizeof(hs), 5000);
		held++;
	}
	fprintf(stderr, "fd exhaustion: %d groups, %d sessions, %d holders, last HELLO: %s; "
		"daemon holds %d fds\n",
		n, ns, held, pg_strerror(st), count_fds(d.pid) - 2);

	/* A new connection while the daemon has no fd at all: pg_open
	 * answers within 5 s, and the daemon does not burn its CPU. */
	struct child pending = {0};
	struct open_arg a = {d.socket, 12};
	CU_ASSERT_EQUAL_FATAL(child_start(&pending, open_and_report, &a), 0);
	int64_t t0 = now_ms();
	sleep_ms(200);
	long c0 = cpu_ticks(d.pid);
	sleep_ms(1000);
	long c1 = cpu_ticks(d.pid);
	double cpu_s = (double)(c1 - c0) / (double)sysconf(_SC_CLK_TCK);
	fprintf(stderr, "fd exhaustion: daemon used %.2f s of CPU in 1 s\n", cpu_s);
	CU_ASSERT(c0 >= 0 && c1 >= 0);
	CU_ASSERT(cpu_s < 0.5);
	int rep[2] = {1, 0};
	int left = 5000 - (int)(now_ms() - t0);
	err = child_read(&pending, rep, sizeof(rep), left > 0 ? left : 1);
	if (err)
		fprintf(stderr, "fd exhaustion: pg_open did not return within 5 s\n");
	CU_ASSERT_EQUAL(err, 0);
	if (!err) {
		fprintf(stderr, "fd exhaustion: pg_open: %s after %d ms\n", pg_strerror(rep[0]),
			rep[1]);
		/* The daemon lives: "nobody listens" would be a lie. */
		CU_ASSERT(rep[0] != -ECONNREFUSED && rep[0] != -ENOENT);
		CU_ASSERT(rep[0] <= 0);
	}
	child_end(&pending);
	CU_ASSERT(child_alive(d.pid));

	/* Room again: a new handle works. */
	for (int i = 0; i < held; i++)
		child_end(&holder[i]);
	for (int i = 0; i < ns; i++)
		close(sess[i]);
	if (pending_fd >= 0)
		close(pending_fd);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "fd-%d", i);
		CU_ASSERT_EQUAL(pg_delete(ctx, name), 0);
	}
	int ms;
	CU_ASSERT_EQUAL(open_in_child(d.socket, 5000, &ms), 0);
	pg_close(ctx);
	CU_ASSERT_EQUAL(daemon_stop_bounded(&d), 0);
	watchdog_off();
}

/* ---------------------------------------------------------------------
 * Defect 6: a member that never reads is evicted after the stall limit even
 * when only the daemon's own events fill the ring, so joins work again.
 */
static void test_idle_member_evicted_by_join_churn(void)
{
	watchdog("join churn", 120);
	const char *g = fresh_group("churn");
	pg_ctx *idle = open_ctx(), *ch = open_ctx();
	pg_group_opts o = {.ring_bytes = 64 * 1024, .max_msg = 1024, .stall_ms = 200};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(ch, g, &o), 0);
	CU_ASSERT_EQUAL_FATAL(pg_join(idle, g, 0, NULL, NULL), 0);
	enum { CYCLES = 8192 };
	int cycles = 0, failed = 0, last_err = 0;
	for (; cycles < CYCLES; cycles++) {
		int64_t t0 = now_ms();
		int err;
		while ((err = pg_join(ch, g, 0, NULL, NULL)) == -ENOBUFS &&
		       now_ms() - t0 < 2000) {
			failed++;
			sleep_ms(10);
		}
		if (err) {
			last_err = err;
			break;
		}
		if ((err = pg_leave(ch, g, 0))) {
			last_err = err;
			break;
		}
	}
	if (cycles < CYCLES)
		fprintf(stderr, "join churn: stuck at cycle %d: pg_join/leave: %s (%d joins failed)\n",
			cycles, pg_strerror(last_err), failed);
	CU_ASSERT_EQUAL(cycles, CYCLES);
	CU_ASSERT(failed <= 400);
	CU_ASSERT_EQUAL(pg_join(ch, g, 0, NULL, NULL), 0);
	/* The idle member learns it was evicted (whatever it still finds to
	 * read before that). */
	pg_message m;
	bool evicted = false;
	for (int i = 0; i < 100000 && !evicted; i++) {
		if (pg_recv(idle, &m, 1000))
			break;
		evicted = m.kind == PG_EVICTED;
	}
	CU_ASSERT(evicted);
	/* An operator sees it: pgroup top counts the group's evictions. */
	char cmd[512], out[65536], want[320];
	snprintf(cmd, sizeof(cmd), "%s top --json --socket %s", getenv("PGROUP_CLI"),
		 the_daemon.socket);
	FILE *f = popen(cmd, "r");
	size_t n = f ? fread(out, 1, sizeof(out) - 1, f) : 0;
	if (f)
		pclose(f);
	out[n] = 0;
	snprintf(want, sizeof(want), "{\"group\":\"%s\",", g);
	const char *at = strstr(out, want), *ev = at ? strstr(at, "\"evictions\":") : NULL;
	CU_ASSERT(ev && strtoul(ev + 12, NULL, 10) >= 1);
	pg_close(idle);
	pg_close(ch);
	watchdog_off();
}

/* ---------------------------------------------------------------------
 * Defect 11a: a claim open across delete and re-create of its group.
 */
static void test_claim_across_recreate(void)
{
	watchdog("claim across re-create", 30);
	const char *g = fresh_group("reclaim");
	pg_ctx *a = open_ctx(), *b = open_ctx(), *mem = open_ctx(), *c = open_ctx();
	CU_ASSERT_EQUAL_FATAL(pg_create(b, g), 0);
	void *buf;
	CU_ASSERT_EQUAL_FATAL(pg_send_claim(a, g, 16, &buf), 0);
	memset(buf, 'A', 16);
	CU_ASSERT_EQUAL(pg_delete(b, g), 0);
	CU_ASSERT_EQUAL_FATAL(pg_create(b, g), 0);
	CU_ASSERT_EQUAL(pg_join(mem, g, 0, NULL, NULL), 0);
	/* Another sender takes the new group's first writer slot: the slot
	 * number A's claim had in the old group. */
	CU_ASSERT_EQUAL(pg_send(c, g, "one", 3), 0);
	/* A sends to the name while its claim is open: whatever that returns,
	 * the claim still belongs to the old group. */
	int rc = pg_send(a, g, "early", 5);
	fprintf(stderr, "claim across re-create: send with the claim open: %d (%s)\n", rc,
		pg_strerror(rc));
	void *cbuf;
	CU_ASSERT_EQUAL_FATAL(pg_send_claim(c, g, 3, &cbuf), 0);
	memcpy(cbuf, "two", 3);
	/* The claim was in the old group: it cannot be committed into the
	 * new one, nor reported as sent. */
	int crc = pg_send_commit(a, buf);
	fprintf(stderr, "claim across re-create: commit: %d (%s)\n", crc, pg_strerror(crc));
	CU_ASSERT(crc == -ENOENT || crc == -ECANCELED);
	/* The new group's sender is undisturbed: its claim commits. */
	CU_ASSERT_EQUAL(pg_send_commit(c, cbuf), 0);
	CU_ASSERT_EQUAL(pg_send(a, g, "three", 5), 0);
	/* The member gets C's messages and A's sends to the new group, in
	 * order, and nothing of the old claim's 'A's. */
	const char *want[] = {"one", "early", "two", "three"};
	pg_message m;
	for (int i = 0; i < 4; i++) {
		if (i == 1 && rc != 0)
			continue; /* A's early send was refused: nothing to get */
		CU_ASSERT_EQUAL_FATAL(recv_msg(mem, &m, 2000), 0);
		CU_ASSERT_EQUAL(m.kind, PG_MSG);
		CU_ASSERT(m.len == strlen(want[i]) && memcmp(m.data, want[i], m.len) == 0);
	}
	CU_ASSERT_EQUAL(pg_recv(mem, &m, 100), -ETIMEDOUT);
	pg_delete(b, g);
	pg_close(c);
	pg_close(mem);
	pg_close(b);
	pg_close(a);
	watchdog_off();
}

/* ---------------------------------------------------------------------
 * Defects 11b, 11c: the groups listing.
 */

/* The CLI beside the daemon in the build tree. */
static const char *cli_path(void)
{
	static char path[4096];
	const char *d = getenv("PGROUPD");
	if (!d)
		return NULL;
	snprintf(path, sizeof(path), "%s", d);
	char *slash = strrchr(path, '/');
	if (!slash)
		return NULL;
	snprintf(slash + 1, sizeof(path) - (size_t)(slash + 1 - path), "pgroup");
	return access(path, X_OK) == 0 ? path : NULL;
}

/* Run `pgroup --socket S groups --json`; its exit status (or -ETIMEDOUT),
 * its stdout in *out (free it). */
static int cli_groups_json(const char *socket, char **out)
{
	const char *cli = cli_path();
	*out = NULL;
	if (!cli)
		return -ENOENT;
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		return -errno;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		execl(cli, cli, "--socket", socket, "groups", "--json", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	int64_t end = now_ms() + 10000;
	bool timed_out = false;
	for (;;) {
		int left = (int)(end - now_ms());
		struct pollfd pf = {.fd = p[0], .events = POLLIN};
		if (left <= 0 || poll(&pf, 1, left) == 0) {
			timed_out = true;
			break;
		}
		if (len + 4096 > cap)
			buf = realloc(buf, cap *= 2);
		ssize_t k = read(p[0], buf + len, cap - len - 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	close(p[0]);
	buf[len] = 0;
	*out = buf;
	if (timed_out) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -ETIMEDOUT;
	}
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The "lag" of `group` in a --json listing: 0 and *lag, or -ENOENT. */
static int json_lag(const char *json, const char *group, uint64_t *lag)
{
	char key[160];
	snprintf(key, sizeof(key), "{\"group\":\"%s\"", group);
	const char *p = strstr(json, key);
	if (!p)
		return -ENOENT;
	const char *e = strchr(p, '}'), *l = strstr(p, "\"lag\":");
	if (!e || !l || l > e)
		return -ENOENT;
	*lag = strtoull(l + 6, NULL, 10);
	return 0;
}

/* The largest lag the daemon reports for a group whose name starts with
 * `prefix`, straight from the protocol: 0 and *lag, or -errno. */
static int raw_lag(int fd, const char *prefix, uint64_t *lag)
{
	static struct ctl_out o;
	static uint8_t in[CTL_MAX_BYTES];
	ctl_begin(&o, CTL_GROUPS, 1, 0);
	ctl_end(&o);
	if (ctl_send(fd, &o, NULL, 0))
		return -EIO;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, 5000) != 1)
		return -ETIMEDOUT;
	int fds[CTL_MAX_FDS];
	unsigned nfds = 0;
	ssize_t n = ctl_recv(fd, in, sizeof(in), fds, &nfds, 0);
	struct ctl_in m;
	if (n <= 0 || ctl_parse(&m, in, (size_t)n) || m.hdr.status)
		return -EIO;
	size_t cur = 0, len, plen = strlen(prefix);
	const void *v;
	int found = -ENOENT;
	*lag = 0;
	while (ctl_next(&m, CTL_T_GROUP, &cur, &v, &len) == 1) {
		struct ctl_group_info info;
		if (len < sizeof(info))
			return -EPROTO;
		memcpy(&info, v, sizeof(info));
		if (len - sizeof(info) >= plen &&
		    memcmp((const char *)v + sizeof(info), prefix, plen) == 0) {
			found = 0;
			if (info.lag > *lag)
				*lag = info.lag;
		}
	}
	return found;
}

/* Tails moved on with plain stores, many groups in turn: each moves every
 * few nanoseconds. */
struct tail_mover {
	_Atomic uint64_t *tail[32];
	int n;
	atomic_bool stop;
	uint64_t moves;
};

static void *move_tails(void *arg)
{
	struct tail_mover *tm = arg;
	while (!atomic_load_explicit(&tm->stop, memory_order_relaxed)) {
		for (int i = 0; i < tm->n; i++) {
			uint64_t t = atomic_load_explicit(tm->tail[i], memory_order_relaxed);
			atomic_store_explicit(tm->tail[i], t + RING_ALIGN, memory_order_relaxed);
		}
		tm->moves += (uint64_t)tm->n;
	}
	return NULL;
}

struct spammer {
	const char *group;
	atomic_bool stop;
	unsigned long sent;
	int err;
};

static void *spam(void *arg)
{
	struct spammer *s = arg;
	pg_ctx *ctx = open_ctx();
	while (!atomic_load(&s->stop)) {
		int err = pg_send(ctx, s->group, "x", 1);
		if (err) {
			s->err = err;
			break;
		}
		s->sent++;
	}
	pg_close(ctx);
	return NULL;
}

static void test_groups_lag_without_members(void)
{
	watchdog("lag without members", 60);
	char g[64];
	snprintf(g, sizeof(g), "lagless-%d-sent", (int)getpid());
	pg_ctx *ctx = open_ctx();
	CU_ASSERT_EQUAL_FATAL(pg_create(ctx, g), 0);
	for (int i = 0; i < 100; i++)
		CU_ASSERT_EQUAL(pg_send(ctx, g, "hello", 5), 0);
	char *out;
	CU_ASSERT_EQUAL(cli_groups_json(the_daemon.socket, &out), 0);
	uint64_t lag = 1;
	CU_ASSERT_EQUAL(out ? json_lag(out, g, &lag) : -ENOENT, 0);
	fprintf(stderr, "lag without members: idle group's lag %llu\n", (unsigned long long)lag);
	CU_ASSERT_EQUAL(lag, 0); /* nobody to lag behind */
	free(out);

	/*
	 * While tails move: nobody still lags, at every look. The lag goes
	 * wrong when the tail moves between the two reads the listing makes of
	 * it, a window of nanoseconds: first a sender sending as fast as it
	 * can, then (what any sender may do) a thread moving the tails of more
	 * memberless groups on much faster, so the window is hit often enough
	 * to see.
	 */
	struct spammer s = {.group = g};
	pthread_t t;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, spam, &s), 0);
	int fd = raw_connect();
	CU_ASSERT_FATAL(fd >= 0);
	enum { MOVED = 32 };
	char prefix[64], name[96];
	snprintf(prefix, sizeof(prefix), "lagless-%d-", (int)getpid());
	struct ring_data_hdr *h[MOVED] = {0};
	int wfd[MOVED];
	struct tail_mover tm = {.n = 0};
	pthread_t mt;
	uint64_t worst = 0;
	int looks = 0, bad_looks = 0, cli_bad = 0;
	for (int phase = 0; phase < 2; phase++) {
		if (phase == 1) {
			atomic_store(&s.stop, true);
			pthread_join(t, NULL);
			pg_group_opts o = {.ring_bytes = 64 * 1024, .max_msg = 1024};
			for (; tm.n < MOVED; tm.n++) {
				snprintf(name, sizeof(name), "%smoved-%d", prefix, tm.n);
				if (pg_create_opts(ctx, name, &o) ||
				    (wfd[tm.n] = raw_open_write(the_daemon.socket, name, &h[tm.n])) < 0)
					break;
				tm.tail[tm.n] = &h[tm.n]->tail;
			}
			CU_ASSERT_EQUAL(tm.n, MOVED);
			CU_ASSERT_EQUAL_FATAL(pthread_create(&mt, NULL, move_tails, &tm), 0);
		}
		for (int64_t end = now_ms() + 1500; now_ms() < end; looks++) {
			uint64_t l = 0;
			int err = raw_lag(fd, prefix, &l);
			CU_ASSERT_EQUAL(err, 0);
			if (err)
				break;
			if (l > worst)
				worst = l;
			bad_looks += l > 1024 * 1024;
		}
		for (int i = 0; i < 10; i++) {
			uint64_t l = 0;
			if (cli_groups_json(the_daemon.socket, &out) != 0) {
				cli_bad++;
			} else {
				cli_bad += json_lag(out, g, &lag) != 0 || lag > 1024 * 1024;
				for (int k = 0; k < tm.n; k++) {
					snprintf(name, sizeof(name), "%smoved-%d", prefix, k);
					if (json_lag(out, name, &l) == 0 && l > 1024 * 1024) {
						cli_bad++;
						break;
					}
				}
			}
			free(out);
		}
	}
	atomic_store(&tm.stop, true);
	pthread_join(mt, NULL);
	for (int i = 0; i < tm.n; i++) {
		munmap(h[i], RING_PAGE);
		close(wfd[i]);
		snprintf(name, sizeof(name), "%smoved-%d", prefix, i);
		pg_delete(ctx, name);
	}
	close(fd);
	fprintf(stderr, "lag without members: worst lag %llu, %d bad of %d looks (%lu sends, %llu "
		"moves), %d bad CLI listings of 20\n",
		(unsigned long long)worst, bad_looks, looks, s.sent, (unsigned long long)tm.moves,
		cli_bad);
	CU_ASSERT_EQUAL(s.err, 0);
	/* A group with no members holds nothing back: a lag over one ring
	 * (let alone near 2^64) is wrong. */
	CU_ASSERT(worst <= 1024 * 1024);
	CU_ASSERT_EQUAL(cli_bad, 0);
	pg_delete(ctx, g);
	pg_close(ctx);
	watchdog_off();
}

static void test_groups_listing_complete(void)
{
	watchdog("1500 groups listed", 90);
	enum { N = 1500 };
	char stem[64], name[96];
	snprintf(stem, sizeof(stem), "many-%d-", (int)getpid());
	pg_ctx *ctx = open_ctx();
	pg_group_opts o = {.ring_bytes = 64 * 1024, .max_msg = 1024};
	int made = 0;
	for (; made < N; made++) {
		snprintf(name, sizeof(name), "%s%d", stem, made);
		if (pg_create_opts(ctx, name, &o))
			break;
	}
	CU_ASSERT_EQUAL_FATAL(made, N);
	char *out;
	int rc = cli_groups_json(the_daemon.socket, &out);
	CU_ASSERT_EQUAL(rc, 0);
	int listed = 0;
	char key[96];
	snprintf(key, sizeof(key), "{\"group\":\"%s", stem);
	for (const char *p = out ? out : ""; (p = strstr(p, key)); p += strlen(key))
		listed++;
	fprintf(stderr, "1500 groups listed: the CLI listed %d of %d\n", listed, N);
	CU_ASSERT_EQUAL(listed, N);
	free(out);
	for (int i = 0; i < made; i++) {
		snprintf(name, sizeof(name), "%s%d", stem, i);
		pg_delete(ctx, name);
	}
	pg_close(ctx);
	watchdog_off();
}

/* ---------------------------------------------------------------------
 * Issue 11 §3: many groups at the default fd limits. A daemon started with
 * Debian's soft limit (1,024) under a hard one a few times lower than this
 * machine's, with as many groups as fit 3 fds each there: each has a member
 * and a writer, and nothing is refused. A group used to cost the daemon
 * four fds (data, directory, the member's page, the writer's area). With
 * PGROUP_TEST_GROUPS set: that many groups under the hard limit 20,000.
 *
 * The sender is a process of its own, forked before the joins (a child
 * inherits its parent's mappings): one that both sends to and is a member
 * of 10,000 groups needs more than the kernel's 65,530 mappings
 * (vm.max_map_count; design.md §11). It starts when told, and reports how
 * many it sent and its first error.
 */
struct many_send {
	const char *socket;
	int n;
};

static int many_sender(void *arg, int up, int down)
{
	const struct many_send *ms = arg;
	pg_ctx *ctx = NULL;
	char name[64], b;
	if (read(down, &b, 1) != 1)
		return 1;
	int sent = 0, first_err = pg_open(&ctx, ms->socket);
	for (int i = 0; !first_err && i < ms->n; i++) {
		snprintf(name, sizeof(name), "mg-%d", i);
		if (!(first_err = pg_send(ctx, name, name, strlen(name) + 1)))
			sent++;
	}
	int rep[2] = {sent, first_err};
	if (write(up, rep, sizeof(rep)) != sizeof(rep))
		return 1;
	if (read(down, &b, 1) != 1) /* our handles stay until the member read all */
		return 1;
	if (ctx)
		pg_close(ctx);
	return 0;
}

/*
 * With more groups than PGD_TICK_SPLIT_GROUPS the daemon looks at them a
 * part per tick: every group must still be looked at once a tick's
 * period, or, quiet, once in a few (at most a quarter of its stall limit).
 * A claim held past the stall limit in each of a few groups spread
 * through 1,200 is cancelled (only the tick does that), so a message sent
 * after it arrives, in every one of them, within a few stall limits. With
 * a 1 s limit the groups are first left quiet for many passes, and some
 * are deleted meanwhile (others take their places in the tick's table).
 */
static void stuck_claims_among(unsigned stall_ms, int quiet_ms)
{
	enum { GROUPS = 1200, STUCK = 4 };
	/* Under valgrind the daemon makes groups slowly: a pass of one tick. */
	const int n = getenv("PGROUPD_WRAPPER") ? 40 : GROUPS;
	static char *names[GROUPS];
	pg_ctx *own = open_ctx(), *holder = open_ctx(), *snd = open_ctx(), *mem = open_ctx();
	pg_group_opts o = {.ring_bytes = 64 * 1024, .max_msg = 1024, .stall_ms = stall_ms};
	int made = 0, err = 0;
	for (; made < n && !err; made++) {
		char stem[16];
		snprintf(stem, sizeof(stem), "tick%d", made);
		names[made] = strdup(fresh_group(stem));
		err = pg_create_opts(own, names[made], &o);
	}
	CU_ASSERT_EQUAL(err, 0);
	sleep_ms(200); /* a whole pass has seen them all: the tick is split now */
	/* Quiet for a while, and every tenth group goes (none of those with
	 * a claim below: they are the first, the last and two between). */
	for (int i = 5; quiet_ms && i < made; i += 10) {
		CU_ASSERT_EQUAL(pg_delete(own, names[i]), 0);
		if (i % 100 == 5)
			sleep_ms(quiet_ms / (made / 100 + 1));
	}
	void *claim[STUCK] = {0};
	int at[STUCK];
	for (int k = 0; k < STUCK && !err; k++) {
		at[k] = (made - 1) * k / (STUCK - 1); /* the first, the last, two between */
		if (!(err = pg_join(mem, names[at[k]], 0, NULL, NULL)) &&
		    !(err = pg_send_claim(holder, names[at[k]], 8, &claim[k])))
			err = pg_send(snd, names[at[k]], "after", 5);
	}
	CU_ASSERT_EQUAL(err, 0);
	int got = 0;
	pg_message m;
	/* Not a speed check: a bound on "never" (10 stall limits). */
	for (int tries = 0; !err && got < STUCK && tries < (int)stall_ms / 25; tries++)
		if (pg_recv(mem, &m, 250) == 0 && m.kind == PG_MSG && m.len == 5 &&
		    memcmp(m.data, "after", 5) == 0)
			got++;
	CU_ASSERT_EQUAL(got, STUCK);
	for (int k = 0; k < STUCK; k++)
		if (claim[k])
			CU_ASSERT_EQUAL(pg_send_commit(holder, claim[k]), -ECANCELED);
	pg_close(mem);
	pg_close(snd);
	pg_close(holder);
	for (int i = 0; i < made; i++) {
		pg_delete(own, names[i]);
		free(names[i]);
	}
	pg_close(own);
}

static void test_stuck_claims_among_many_groups(void)
{
	watchdog("stuck claims among many groups", 120);
	stuck_claims_among(200, 0);
	stuck_claims_among(1000, 1500);
	watchdog_off();
}

/*
 * Member slots are the group's to choose: asked for at create (rounded up
 * to whole pages of tables), every one of them can be joined, one more
 * cannot (-ENOSPC), and a message reaches every member; a count past the
 * most is refused (-EINVAL). Each member is a ctx of its own (a session:
 * one membership per ctx and group).
 */
static void test_member_slots_at_create(void)
{
	watchdog("member slots at create", 240);
	/* Under valgrind the daemon takes long per join: the small case only. */
	const bool small = getenv("PGROUPD_WRAPPER") != NULL;
	struct { unsigned asked, slots; } cases[] = {{100, 128}, {1100, 1152}};
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max; /* a ctx per member, and their mappings */
	setrlimit(RLIMIT_NOFILE, &rl);
	pg_ctx *own = open_ctx();
	pg_group_opts big = {.ring_bytes = 64 * 1024, .member_slots = RING_MEMBER_SLOTS_MAX + 1};
	CU_ASSERT_EQUAL(pg_create_opts(own, fresh_group("slots-bad"), &big), -EINVAL);
	for (unsigned c = 0; c < (small ? 1u : 2u); c++) {
		const char *g = fresh_group("slots");
		/* Room for every JOINED while nobody reads: the default ring. */
		pg_group_opts o = {.member_slots = cases[c].asked};
		CU_ASSERT_EQUAL_FATAL(pg_create_opts(own, g, &o), 0);
		unsigned n = cases[c].slots, joined = 0;
		pg_ctx **m = calloc(n + 1, sizeof(*m));
		CU_ASSERT_PTR_NOT_NULL_FATAL(m);
		int err = 0;
		for (; joined < n && !err; joined++)
			if ((err = pg_open(&m[joined], the_daemon.socket)) ||
			    (err = pg_join(m[joined], g, 0, NULL, NULL))) {
				printf("[member %u: %s] ", joined, pg_strerror(err));
				if (m[joined])
					pg_close(m[joined]);
				m[joined] = NULL;
			}
		CU_ASSERT_EQUAL(err, 0);
		CU_ASSERT_EQUAL(joined, n);
		if (!err && pg_open(&m[n], the_daemon.socket) == 0) {
			CU_ASSERT_EQUAL(pg_join(m[n], g, 0, NULL, NULL), -ENOSPC);
			pg_close(m[n]);
		}
		CU_ASSERT_EQUAL(pg_send(own, g, "all", 3), 0);
		unsigned got = 0;
		for (unsigned i = 0; i < n; i++) {
			pg_message msg;
			int e = -1;
			while (m[i] && (e = pg_recv(m[i], &msg, 2000)) == 0 && msg.kind != PG_MSG)
				;
			got += m[i] && e == 0 && msg.len == 3 && memcmp(msg.data, "all", 3) == 0;
		}
		CU_ASSERT_EQUAL(got, n);
		for (unsigned i = 0; i < n; i++)
			pg_close(m[i]);
		free(m);
		CU_ASSERT_EQUAL(pg_delete(own, g), 0);
	}
	pg_close(own);
	watchdog_off();
}

static void test_many_groups_at_fd_limits(void)
{
	watchdog("many groups at fd limits", 300);
	const char *env = getenv("PGROUP_TEST_GROUPS");
	int n = env ? atoi(env) : 1000;
	rlim_t hard = env ? 20000 : 3000;
	struct daemon_proc d = {0};
	CU_ASSERT_EQUAL_FATAL(start_extra(&d, "manyg", hard), 0);
	pg_ctx *owner, *mem;
	CU_ASSERT_EQUAL_FATAL(pg_open(&owner, d.socket), 0);
	CU_ASSERT_EQUAL_FATAL(pg_open(&mem, d.socket), 0);
	int fds0 = count_fds(d.pid);
	struct many_send ms = {.socket = d.socket, .n = n};
	struct child sc;
	CU_ASSERT_EQUAL_FATAL(child_start(&sc, many_sender, &ms), 0);
	char name[64];
	int created = 0, joined = 0, got = 0, wrong = 0, first_err = 0;
	/* Small rings here: a daemon under valgrind has 128 GiB of address
	 * space, and each group's areas take 256 of its ring size. */
	pg_group_opts o = {.ring_bytes = env ? 0 : 64 * 1024};
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "mg-%d", i);
		int err = pg_create_opts(owner, name, &o);
		created += !err;
		if (!err && !(err = pg_join(mem, name, 0, NULL, NULL)))
			joined++;
		if (err && !first_err)
			first_err = err;
	}
	int rep[2] = {0, -EPIPE};
	child_write(&sc, "g", 1);
	CU_ASSERT_EQUAL(child_read(&sc, rep, sizeof(rep), 240000), 0);
	if (rep[1] && !first_err)
		first_err = rep[1];
	int fds = count_fds(d.pid);
	pg_message m;
	int64_t until = now_ms() + 60000;
	while (got + wrong < rep[0] && now_ms() < until && pg_recv(mem, &m, 2000) == 0) {
		if (m.kind != PG_MSG)
			continue;
		bool right = m.len >= 4 && !memcmp(m.data, "mg-", 3) &&
			     ((const char *)m.data)[m.len - 1] == 0 && !strcmp(m.data, m.group);
		got += right;
		wrong += !right;
	}
	child_write(&sc, "q", 1);
	CU_ASSERT_EQUAL(child_wait(&sc), 0);
	char *out = NULL;
	int listed = 0;
	if (cli_groups_json(d.socket, &out) == 0)
		for (const char *p = out; (p = strstr(p, "{\"group\":\"mg-")); p++)
			listed++;
	free(out);
	fprintf(stderr,
		"many groups: %d created, %d joined, %d sent, %d received (%d wrong), %d listed, "
		"first error %s; daemon fds %d -> %d (hard limit %d)\n",
		created, joined, rep[0], got, wrong, listed, pg_strerror(first_err), fds0, fds,
		(int)hard);
	CU_ASSERT_EQUAL(first_err, 0);
	CU_ASSERT_EQUAL(created, n);
	CU_ASSERT_EQUAL(joined, n);
	CU_ASSERT_EQUAL(rep[0], n);
	CU_ASSERT_EQUAL(got, n);
	CU_ASSERT_EQUAL(wrong, 0);
	CU_ASSERT_EQUAL(listed, n);
	/* One fd per group (its data), sessions' and classes' shelves. */
	CU_ASSERT(fds - fds0 <= n + 16);
	pg_close(mem);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "mg-%d", i);
		pg_delete(owner, name);
	}
	pg_close(owner);
	daemon_stop(&d);
	watchdog_off();
}

/* ---------------------------------------------------------------------
 * Defect 11d: daemons started at once on one socket path: one wins.
 */
static void test_one_daemon_per_socket(void)
{
	watchdog("one daemon per socket", 60);
	const char *bin = getenv("PGROUPD");
	CU_ASSERT_PTR_NOT_NULL_FATAL(bin);
	/* The window is some microseconds wide: many short rounds. */
	enum { ROUNDS = 80, K = 4 };
	char path[108];
	snprintf(path, sizeof(path), "/tmp/pgroup-test-race-%d.sock", (int)getpid());
	int bad_rounds = 0;
	for (int round = 0; round < ROUNDS; round++) {
		unlink(path);
		int gate[2];
		CU_ASSERT_EQUAL_FATAL(pipe2(gate, O_CLOEXEC), 0);
		pid_t pid[K];
		fflush(NULL);
		for (int i = 0; i < K; i++) {
			pid[i] = fork();
			if (pid[i] == 0) {
				/* All wait at the gate, then start together. */
				char c;
				close(gate[1]);
				if (read(gate[0], &c, 1) < 0)
					_exit(126);
				int null = open("/dev/null", O_WRONLY);
				dup2(null, 2);
				char node[16];
				snprintf(node, sizeof(node), "race%d", i);
				execl(bin, bin, "--socket", path, "--node", node, "--no-bpf",
				      (char *)NULL);
				_exit(127);
			}
			track(pid[i]);
		}
		close(gate[0]);
		close(gate[1]); /* open the gate: every read returns 0 */
		/* Until every loser has seen the winner and left: at once as a
		 * rule, but a loaded machine (sanitizers, a parallel build) may
		 * take its time, so allow 5 s before calling it wrong. */
		int running = K, failed = 0, clean = 0, st[K];
		bool done[K];
		memset(done, 0, sizeof(done));
		for (int64_t end = now_ms() + 5000; running > 1 && now_ms() < end;) {
			sleep_ms(5);
			for (int i = 0; i < K; i++)
				if (!done[i] && waitpid(pid[i], &st[i], WNOHANG) == pid[i]) {
					done[i] = true;
					running--;
					if (WIFEXITED(st[i]) && WEXITSTATUS(st[i]) != 0)
						failed++;
					else
						clean++;
				}
		}
		/* The one left answers on the path. */
		int fd = running == 1 ? ctl_connect(path) : -1;
		if (fd >= 0)
			close(fd);
		else if (running == 1)
			running = 0;
		if (running != 1 || failed != K - 1) {
			bad_rounds++;
			fprintf(stderr, "one daemon per socket: round %d: %d running (and answering), "
				"%d failed, %d exited 0 or by a signal\n",
				round, running, failed, clean);
		}
		for (int i = 0; i < K; i++) {
			untrack(pid[i]);
			if (!done[i])
				stop_bounded(&pid[i], 3000);
		}
	}
	unlink(path);
	CU_ASSERT_EQUAL(bad_rounds, 0);
	watchdog_off();
}

/* $LIMITS_ONLY=substring runs only the tests whose name holds it. */
static void add(CU_pSuite s, const char *name, CU_TestFunc fn)
{
	const char *only = getenv("LIMITS_ONLY");
	if (!only || strstr(name, only))
		CU_add_test(s, name, fn);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	CU_pSuite s = CU_add_suite("limits", suite_start_daemon, suite_cleanup);
	add(s, "tail attack: daemon keeps serving others", test_tail_attack_does_not_stall_daemon);
	add(s, "pg_open on a silent daemon returns", test_open_silent_daemon_times_out);
	add(s, "fd exhaustion: clean errors, no spin", test_fd_exhaustion);
	add(s, "idle member evicted by join churn", test_idle_member_evicted_by_join_churn);
	add(s, "claim across delete and re-create", test_claim_across_recreate);
	add(s, "groups: lag 0 without members", test_groups_lag_without_members);
	add(s, "groups: 1500 groups all listed", test_groups_listing_complete);
	add(s, "two daemons, one socket: one runs", test_one_daemon_per_socket);
	add(s, "many groups at the default fd limits", test_many_groups_at_fd_limits);
	add(s, "member slots chosen at create", test_member_slots_at_create);
	add(s, "stuck claims among many groups: the split tick", test_stuck_claims_among_many_groups);
	return run_cunit();
}

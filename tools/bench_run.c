// SPDX-License-Identifier: MIT
/*
 * The fan-out benchmark's engine: S sender processes -> one fresh group -> N
 * member processes. Children report through one MAP_SHARED anonymous mapping
 * made before fork (a slot each, plus every delivery's latency) so the parent
 * computes percentiles over all deliveries, not over per-member summaries.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "proto/path.h"

/* What every message starts with; the rest of --size is filler. */
struct bench_hdr {
	uint64_t sent_ns; /* CLOCK_MONOTONIC, same clock in every process */
	uint32_t sender;
	uint32_t seq; /* per sender, from 0 */
};
_Static_assert(sizeof(struct bench_hdr) == 16, "bench --size minimum is 16");

/* One per child; own cache line so progress counters do not false-share. */
struct slot {
	_Alignas(64) _Atomic uint64_t progress; /* for the live line only */
	uint64_t count;                          /* sent, or delivered */
	uint64_t t_first, t_last;                /* first send / last send or delivery */
	uint64_t cpu_ns;
	uint64_t faults; /* page faults while timed: a cold page costs ~20 us */
	_Atomic bool done; /* its timed part is over (then it closes its ctx) */
	uint64_t hash, dups, gaps, bad;
	long rss_kib;  /* members: VmRSS at the end */
	int err;       /* negative errno that stopped the child */
	int stop_kind; /* PG_EVICTED / PG_GROUP_DOWN, or 0 */
};

struct run {
	const struct bench_cfg *cfg;
	const char *socket;
	char group[PG_GROUP_MAX + 1];
	struct bench_gate gate;
	struct slot *slots; /* senders, then members */
	uint64_t *lat;      /* members x per_member, in the same mapping */
	uint64_t per_member;
	size_t map_len;
	unsigned index; /* set before each fork: which child this is */
	/* --groups: every group of the run, [0] = group; made before fork. */
	char (*names)[PG_GROUP_MAX + 1];
	unsigned n_names;
};

/* The group message i of a sender goes to: the run's, or one of --groups
 * picked by a multiplicative hash (spread, repeatable). */
static const char *group_of(const struct run *r, unsigned sender, uint64_t i)
{
	if (r->n_names <= 1)
		return r->group;
	uint64_t h = (i + 1) * 0x9e3779b97f4a7c15ull + sender * 0xbf58476d1ce4e5b9ull;
	return r->names[(h >> 32) % r->n_names];
}

/* Absolute-deadline pacing: sleep for the bulk of long gaps, spin the rest,
 * so the send time is set by our clock, not by the timer's slack. */
#define PACE_SLEEP_NS 20000u
#define PACE_SPIN_NS 10000u
#define PROGRESS_EVERY 1024u /* messages between a child's counter updates */
#define PROGRESS_NS 250000000u /* between live lines */
#define READY_TIMEOUT_MS 10000

static void pin_child(unsigned k)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return;
	int n = CPU_COUNT(&set);
	int want = (int)(k % (unsigned)n);
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &set) || want--)
			continue;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		sched_setaffinity(0, sizeof(set), &set);
		return;
	}
}

static void pace_until(uint64_t deadline)
{
	uint64_t now = bench_now_ns();
	if (deadline > now + PACE_SLEEP_NS) {
		uint64_t wake = deadline - PACE_SPIN_NS;
		struct timespec ts = {.tv_sec = (time_t)(wake / 1000000000u),
				      .tv_nsec = (long)(wake % 1000000000u)};
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
	}
	while (bench_now_ns() < deadline)
		;
}

/* --zero-copy: the message is written where the members read it. What
 * the sender writes is its own work; the time is taken just before the
 * commit makes it visible. */
static int send_in_place(pg_ctx *ctx, const char *group, size_t size, unsigned idx, uint64_t i)
{
	void *p;
	int err = pg_send_claim(ctx, group, size, &p);
	if (err)
		return err;
	memset((unsigned char *)p + sizeof(struct bench_hdr), (int)(i & 0xff),
	       size - sizeof(struct bench_hdr));
	struct bench_hdr h = {.sent_ns = bench_now_ns(), .sender = idx, .seq = (uint32_t)i};
	memcpy(p, &h, sizeof(h));
	return pg_send_commit(ctx, p);
}

static int send_all(struct run *r, pg_ctx *ctx, struct slot *s, unsigned idx)
{
	const struct bench_cfg *cfg = r->cfg;
	unsigned char *buf = calloc(1, cfg->size);
	if (!buf)
		return -ENOMEM;
	int err = 0;
	s->t_first = bench_now_ns();
	for (uint64_t i = 0; i < cfg->count && !err; i++) {
		/* i * 1e9 < 2^64 for any count that fits the 32-bit seq. */
		if (cfg->rate)
			pace_until(s->t_first + i * 1000000000u / cfg->rate);
		if (cfg->zero_copy) {
			err = send_in_place(ctx, group_of(r, idx, i), cfg->size, idx, i);
		} else {
			struct bench_hdr h = {
			    .sent_ns = bench_now_ns(), .sender = idx, .seq = (uint32_t)i};
			memcpy(buf, &h, sizeof(h));
			err = pg_send(ctx, group_of(r, idx, i), buf, cfg->size);
		}
		if (!err && ++s->count % PROGRESS_EVERY == 0)
			atomic_store_explicit(&s->progress, s->count, memory_order_relaxed);
	}
	s->t_last = bench_now_ns();
	free(buf);
	return err;
}

/*
 * A ctx's first send to a group fetches the ring from the daemon; a claim
 * given back does that without sending, so message 0 is not timed with it.
 */
static int warm_up(struct run *r, pg_ctx *ctx)
{
	int err = 0;
	for (unsigned k = 0; k < (r->n_names ? r->n_names : 1) && !err; k++) {
		void *buf;
		err = pg_send_claim(ctx, r->n_names ? r->names[k] : r->group, r->cfg->size, &buf);
		if (!err)
			err = pg_send_abort(ctx, buf);
	}
	return err;
}

static int sender_main(void *arg)
{
	struct run *r = arg;
	unsigned idx = r->index;
	struct slot *s = &r->slots[idx];
	if (r->cfg->pin)
		pin_child(idx);
	/* Pacing spins for the last few microseconds; a default 50 us timer
	 * slack would make every sleep overshoot the deadline. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	pg_ctx *ctx;
	int err = pg_open(&ctx, r->socket);
	if (!err && (err = warm_up(r, ctx)))
		pg_close(ctx);
	bench_gate_ready(&r->gate, err);
	if (err) {
		s->err = err;
		return 1;
	}
	bench_gate_wait(&r->gate);
	uint64_t cpu0 = bench_cpu_ns(), f0 = bench_faults();
	s->err = send_all(r, ctx, s, idx);
	s->cpu_ns = bench_cpu_ns() - cpu0;
	s->faults = bench_faults() - f0;
	atomic_store(&s->done, true);
	pg_close(ctx);
	return s->err ? 1 : 0;
}

static void receive_all(struct run *r, pg_ctx *ctx, struct slot *s, uint64_t *lat)
{
	struct bench_order o;
	/* Messages of different groups have no order among them. */
	if ((s->err = r->n_names > 1 ? bench_order_init_set(&o, r->cfg->senders, r->cfg->count)
				     : bench_order_init(&o, r->cfg->senders)))
		return;
	int ep = -1;
	if (r->cfg->wait == BENCH_WAIT_FD) {
		/* The epoll way: sleep in epoll_wait on pg_fd, then take what
		 * is there without waiting. */
		int fd = pg_fd(ctx);
		struct epoll_event ev = {.events = EPOLLIN};
		if (fd < 0 || (ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
		    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			s->err = fd < 0 ? fd : -errno;
			bench_order_free(&o);
			return;
		}
	}
	while (s->count < r->per_member) {
		pg_message m;
		int err;
		if (ep >= 0) {
			err = pg_recv(ctx, &m, 0);
			if (err == -EAGAIN) {
				struct epoll_event ev;
				int n = epoll_wait(ep, &ev, 1, BENCH_IDLE_MS);
				if (n < 0 && errno != EINTR)
					err = -errno;
				else if (n == 0)
					err = -ETIMEDOUT;
				else
					continue;
			}
		} else {
			err = pg_recv(ctx, &m, BENCH_IDLE_MS);
		}
		if (err == -EINTR)
			continue;
		if (err) {
			/* -ETIMEDOUT: idle too long; the parent reports the shortfall. */
			if (err != -ETIMEDOUT)
				s->err = err;
			break;
		}
		if (m.kind == PG_EVICTED || m.kind == PG_GROUP_DOWN) {
			s->stop_kind = (int)m.kind;
			break;
		}
		if (m.kind != PG_MSG)
			continue;
		uint64_t now = bench_now_ns();
		struct bench_hdr h;
		if (m.len != r->cfg->size) {
			o.bad++;
			continue;
		}
		memcpy(&h, m.data, sizeof(h));
		/* In place: the whole message is there to read (its last byte
		 * is the sender's filler), nothing was copied for us. */
		if (r->cfg->zero_copy && m.len > sizeof(h) &&
		    ((const unsigned char *)m.data)[m.len - 1] != (unsigned char)(h.seq & 0xff)) {
			o.bad++;
			continue;
		}
		/* seq grows along one group's order: with --groups, each
		 * group has its own, and only which arrived is checked. */
		if (!bench_order_add(&o, h.sender, h.seq, r->n_names > 1 ? 0 : m.seq))
			continue;
		lat[s->count++] = now - h.sent_ns;
		s->t_last = now;
		if (s->count % PROGRESS_EVERY == 0)
			atomic_store_explicit(&s->progress, s->count, memory_order_relaxed);
	}
	if (ep >= 0)
		close(ep);
	s->hash = o.hash;
	s->dups = o.dups;
	s->gaps = o.gaps;
	s->bad = o.bad;
	bench_order_free(&o);
}

/*
 * Before the start: the member reads past its joins (each group's JOINED
 * record, skipped for a member that does not monitor) and arms a futex
 * wait on every group it joined (through pg_fd, or its first park). For
 * 10,000 groups that takes tens of milliseconds once, which is not what a
 * message costs.
 */
static int settle(struct run *r, pg_ctx *ctx)
{
	pg_message m;
	int err = 0;
	/* Nothing is sent yet: only events (a few per group) come. */
	for (unsigned k = 0; k < 4 * (r->n_names + 1) && !err; k++)
		err = pg_recv(ctx, &m, 0);
	if (err != -EAGAIN)
		return err ? err : -EBUSY;
	if (r->cfg->wait == BENCH_WAIT_FD) {
		int fd = pg_fd(ctx);
		return fd < 0 ? fd : 0;
	}
	/* It parks, arms, and times out. */
	err = pg_recv(ctx, &m, 2);
	return err == -ETIMEDOUT || err == 0 ? 0 : err;
}

/* While the senders warm up, their areas are news to us: each is mapped
 * and its first page faulted in as we are told (ctx_drain), which is what
 * the senders' first records would otherwise wait for. Nothing is sent yet. */
static int read_while_warming(struct run *r, pg_ctx *ctx)
{
	while (!bench_gate_warm(&r->gate)) {
		pg_message m;
		int err = pg_recv(ctx, &m, 10);
		if (err == 0)
			return -EBUSY;
		if (err != -ETIMEDOUT && err != -EAGAIN && err != -EINTR)
			return err;
	}
	return settle(r, ctx);
}

static int member_main(void *arg)
{
	struct run *r = arg;
	unsigned j = r->index - r->cfg->senders;
	struct slot *s = &r->slots[r->index];
	if (r->cfg->pin)
		pin_child(r->index);
	/* Read by pg_open: how long pg_recv polls before it parks, and
	 * how much of that without yielding. Spin: busy for good. */
	if (r->cfg->wait == BENCH_WAIT_SPIN) {
		setenv("PGROUP_SPIN_US", "1000000", 1);
		setenv("PGROUP_BUSY_US", "1000000", 1);
	} else if (r->cfg->wait == BENCH_WAIT_BLOCK)
		setenv("PGROUP_SPIN_US", "0", 1);
	pg_ctx *ctx;
	int err = pg_open(&ctx, r->cfg->member_socket ? r->cfg->member_socket : r->socket);
	for (unsigned k = 0; !err && k < (r->n_names ? r->n_names : 1); k++)
		err = pg_join(ctx, r->n_names ? r->names[k] : r->group, 0, NULL, NULL);
	if (!err)
		err = settle(r, ctx);
	/* Counted as joined; then ready once it read what the senders'
	 * warm-up brought. */
	bench_gate_child(&r->gate);
	bench_gate_say(&r->gate, err);
	if (!err)
		err = read_while_warming(r, ctx);
	if (err)
		pg_close(ctx);
	bench_gate_ready(&r->gate, err);
	if (err) {
		s->err = err;
		return 1;
	}
	uint64_t cpu0 = bench_cpu_ns(), f0 = bench_faults();
	receive_all(r, ctx, s, r->lat + j * r->per_member);
	s->cpu_ns = bench_cpu_ns() - cpu0;
	s->faults = bench_faults() - f0;
	s->rss_kib = bench_rss_kib(0);
	atomic_store(&s->done, true);
	pg_close(ctx);
	return s->err ? 1 : 0;
}

/* The daemon's pid, from the kernel's view of its socket; 0 if unknown. */
pid_t bench_daemon_pid(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (path)
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	else if (ctl_default_socket(sa.sun_path, sizeof(sa.sun_path)))
		return 0;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct ucred cr = {0};
	socklen_t len = sizeof(cr);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len);
	if (fd >= 0)
		close(fd);
	return cr.pid;
}

/* utime + stime of pid in ns; -1 if /proc does not say. */
static double proc_cpu_ns(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = pid > 0 ? fopen(path, "r") : NULL;
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* The command name may hold spaces and parens: fields count from the last ')'. */
	char *p = strrchr(buf, ')');
	unsigned long long ut, st;
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			 &st) != 2)
		return -1;
	return (double)(ut + st) * 1e9 / (double)sysconf(_SC_CLK_TCK);
}

static int map_shared(struct run *r)
{
	const struct bench_cfg *cfg = r->cfg;
	size_t nslots = (size_t)cfg->senders + cfg->members;
	r->per_member = cfg->count * cfg->senders;
	size_t lat_off = nslots * sizeof(struct slot);
	if (r->per_member > (SIZE_MAX - lat_off) / sizeof(uint64_t) / cfg->members)
		return -ENOMEM;
	r->map_len = lat_off + (size_t)r->per_member * cfg->members * sizeof(uint64_t);
	/* NORESERVE: pages are only touched by deliveries that happen. */
	void *p = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	r->slots = p;
	r->lat = (uint64_t *)((char *)p + lat_off);
	return 0;
}

/* Children [from, to), each ready (or failed) before this returns. */
static int spawn_ready(struct run *r, pid_t *pids, unsigned from, unsigned to)
{
	for (r->index = from; r->index < to; r->index++) {
		bool sender = r->index < r->cfg->senders;
		pid_t pid = bench_spawn(sender ? sender_main : member_main, r);
		if (pid < 0)
			return (int)pid;
		pids[r->index] = pid;
	}
	return bench_gate_collect(&r->gate, to - from, READY_TIMEOUT_MS);
}

/*
 * Members first, senders once every member joined: a sender's first send
 * to a group after a member joined finds the member's page and faults it
 * in (~20 us cold here), which its warm-up is there to keep out of the
 * timing; the members map the senders' areas as they are told of them,
 * and say they are ready again once every sender warmed up.
 */
static int spawn_children(struct run *r, pid_t *pids)
{
	unsigned senders = r->cfg->senders;
	int err = spawn_ready(r, pids, senders, senders + r->cfg->members);
	if (!err)
		err = spawn_ready(r, pids, 0, senders);
	if (err)
		return err;
	bench_gate_warmed(&r->gate);
	return bench_gate_collect(&r->gate, r->cfg->members, READY_TIMEOUT_MS);
}

/* Members have joined (their ready byte says so); make sure the master agrees. */
static int check_joined(pg_ctx *ctx, struct run *r)
{
	pg_member *m;
	size_t n;
	int err = pg_members(ctx, r->group, &m, &n);
	if (err)
		return err;
	free(m);
	if (n != r->cfg->members) {
		fprintf(stderr, "pgroup: bench: %zu of %u members listed after join\n", n,
			r->cfg->members);
		return -EPROTO;
	}
	return 0;
}

static void show_progress(const struct run *r, uint64_t start)
{
	const struct bench_cfg *cfg = r->cfg;
	uint64_t sent = 0, got = 0;
	for (unsigned i = 0; i < cfg->senders + cfg->members; i++) {
		uint64_t v = atomic_load_explicit(&r->slots[i].progress, memory_order_relaxed);
		*(i < cfg->senders ? &sent : &got) += v;
	}
	fprintf(stderr, "\r\033[Kbench: %.1f s  sent %llu/%llu  delivered %llu/%llu",
		(double)(bench_now_ns() - start) / 1e9, (unsigned long long)sent,
		(unsigned long long)r->per_member, (unsigned long long)got,
		(unsigned long long)(r->per_member * cfg->members));
}

/*
 * Reap every child. A failed child stops the run early: deleting the group
 * makes the others' sends fail and their receives see PG_GROUP_DOWN.
 * *d_cpu is the daemon's CPU time when the last one ended its timed part
 * (not counting their closes: 10,000 groups' leaves would be most of it).
 */
static int wait_children(pg_ctx *ctx, struct run *r, pid_t *pids, uint64_t start, pid_t dpid,
			 double *d_cpu)
{
	size_t n = (size_t)r->cfg->senders + r->cfg->members, left = n;
	bool deleted = false, timed_over = false;
	uint64_t shown = 0;
	while (left) {
		size_t over = 0;
		for (size_t i = 0; i < n && !timed_over; i++)
			over += atomic_load(&r->slots[i].done) || pids[i] <= 0;
		if (!timed_over && over == n) {
			*d_cpu = proc_cpu_ns(dpid);
			timed_over = true;
		}
		for (size_t i = 0; i < n; i++) {
			int st;
			if (pids[i] <= 0 || waitpid(pids[i], &st, WNOHANG) != pids[i])
				continue;
			pids[i] = 0;
			left--;
			if ((!WIFEXITED(st) || WEXITSTATUS(st)) && !deleted) {
				pg_delete(ctx, r->group);
				deleted = true;
			}
		}
		if (bench_interrupted()) {
			bench_kill_all(pids, n);
			return -EINTR;
		}
		if (r->cfg->progress && bench_now_ns() - shown >= PROGRESS_NS) {
			show_progress(r, start);
			shown = bench_now_ns();
		}
		struct timespec ts = {0, 50 * 1000 * 1000};
		if (left)
			nanosleep(&ts, NULL);
	}
	if (r->cfg->progress)
		fputs("\r\033[K", stderr);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of the sorted latencies, in microseconds. */
static double pct_us(const struct bench_result *res, double p)
{
	if (!res->nlat)
		return 0;
	size_t k = (size_t)(p * (double)res->nlat + 0.999999);
	return (double)res->lat[k ? k - 1 : 0] / 1000.0;
}

static int collect_latency(const struct run *r, struct bench_result *res)
{
	res->lat = malloc(res->delivered ? res->delivered * sizeof(uint64_t) : 1);
	if (!res->lat)
		return -ENOMEM;
	for (unsigned j = 0; j < r->cfg->members; j++) {
		const struct slot *s = &r->slots[r->cfg->senders + j];
		memcpy(res->lat + res->nlat, r->lat + j * r->per_member,
		       s->count * sizeof(uint64_t));
		res->nlat += s->count;
	}
	qsort(res->lat, res->nlat, sizeof(uint64_t), cmp_u64);
	res->p50 = pct_us(res, 0.50);
	res->p90 = pct_us(res, 0.90);
	res->p99 = pct_us(res, 0.99);
	res->p999 = pct_us(res, 0.999);
	res->max = pct_us(res, 1.0);
	return 0;
}

static double per_delivery(double cpu_ns, const struct bench_result *res)
{
	return res->delivered ? cpu_ns / (double)res->delivered : BENCH_NO_CPU;
}

static int summarise(const struct run *r, struct bench_result *res)
{
	const struct bench_cfg *cfg = r->cfg;
	uint64_t t0 = UINT64_MAX, send_end = 0, recv_end = 0, sent = 0;
	double cpu_send = 0, cpu_recv = 0, faults_send = 0, faults_recv = 0;
	const struct slot *ref = NULL; /* the first member that got everything */
	res->expected = r->per_member * cfg->members;
	res->same_order = true;
	for (unsigned i = 0; i < cfg->senders + cfg->members; i++) {
		const struct slot *s = &r->slots[i];
		if (!res->err)
			res->err = s->err;
		if (i < cfg->senders) {
			sent += s->count;
			t0 = s->t_first && s->t_first < t0 ? s->t_first : t0;
			send_end = s->t_last > send_end ? s->t_last : send_end;
			cpu_send += (double)s->cpu_ns;
			faults_send += (double)s->faults;
			continue;
		}
		res->delivered += s->count;
		res->dups += s->dups;
		res->gaps += s->gaps;
		res->bad += s->bad;
		/* A member that stopped early has a shorter order: it is
		 * reported as missing deliveries, not compared. */
		if (s->count < r->per_member) {
			res->short_members++;
			res->evicted += s->stop_kind == PG_EVICTED;
		}
		else if (!ref)
			ref = s;
		else
			res->same_order &= s->hash == ref->hash;
		recv_end = s->t_last > recv_end ? s->t_last : recv_end;
		cpu_recv += (double)s->cpu_ns;
		faults_recv += (double)s->faults;
		if (s->rss_kib > res->member_rss_kib)
			res->member_rss_kib = s->rss_kib;
	}
	if (send_end > t0)
		res->send_rate = (double)sent * 1e9 / (double)(send_end - t0);
	if (recv_end > t0) {
		res->elapsed = (double)(recv_end - t0) / 1e9;
		res->deliver_rate = (double)res->delivered / res->elapsed;
	}
	res->cpu_send = per_delivery(cpu_send, res);
	res->cpu_recv = per_delivery(cpu_recv, res);
	res->faults_send = per_delivery(faults_send, res);
	res->faults_recv = per_delivery(faults_recv, res);
	return collect_latency(r, res);
}

/* Fork, wait for every child to be ready, release the senders, reap. */
static int run_children(pg_ctx *ctx, struct run *r, pid_t *pids, pid_t dpid,
			struct bench_result *res)
{
	size_t n = (size_t)r->cfg->senders + r->cfg->members;
	int err = spawn_children(r, pids);
	/* A child that could not get ready said why in its slot. */
	for (size_t i = 0; err == -ECHILD && i < n; i++)
		if (r->slots[i].err)
			err = r->slots[i].err;
	if (!err)
		err = check_joined(ctx, r);
	if (err) {
		bench_kill_all(pids, n);
		return err;
	}
	double d0 = proc_cpu_ns(dpid);
	uint64_t start = bench_now_ns();
	bench_gate_open(&r->gate);
	double d1 = -1;
	if ((err = wait_children(ctx, r, pids, start, dpid, &d1)))
		return err;
	res->daemon_rss_kib = dpid > 0 ? bench_rss_kib(dpid) : -1;
	res->cpu_daemon = BENCH_NO_CPU;
	if ((err = summarise(r, res)))
		return err;
	if (d0 >= 0 && d1 >= 0)
		res->cpu_daemon = per_delivery(d1 - d0, res);
	return 0;
}

/* --groups: the run's group and G - 1 more, "<group>.<k>", all alike. */
static int make_groups(pg_ctx *ctx, struct run *r, const pg_group_opts *o)
{
	unsigned n = r->cfg->groups;
	if (!(r->names = calloc(n, sizeof(*r->names))))
		return -ENOMEM;
	snprintf(r->names[0], sizeof(r->names[0]), "%s", r->group);
	r->n_names = 1;
	for (unsigned k = 1; k < n; k++) {
		snprintf(r->names[k], sizeof(r->names[k]), "%.200s.%u", r->group, k);
		int err = pg_create_opts(ctx, r->names[k], o);
		if (err)
			return err;
		r->n_names++;
	}
	return 0;
}

int bench_run(pg_ctx *ctx, const char *socket, const struct bench_cfg *cfg,
	      struct bench_result *res)
{
	struct run r = {.cfg = cfg, .socket = socket, .gate = {{-1, -1}, {-1, -1}, {-1, -1}}};
	*res = (struct bench_result){0};
	if (!cfg->senders || !cfg->members || cfg->size < sizeof(struct bench_hdr) ||
	    !cfg->count || cfg->count > UINT32_MAX)
		return -EINVAL;
	pid_t *pids = calloc((size_t)cfg->senders + cfg->members, sizeof(*pids));
	if (!pids)
		return -ENOMEM;
	pid_t dpid = 0;
	int err = map_shared(&r);
	if (!err)
		err = bench_gate_init(&r.gate);
	/* Well before anything is timed: the daemon takes our bare connect
	 * and close as a client that may have died, and stalls up to 50 ms. */
	if (!err)
		dpid = bench_daemon_pid(socket);
	pg_group_opts o = {.ring_bytes = cfg->ring, .max_msg = cfg->size > 65536 ? cfg->size : 0};
	long rss0 = dpid > 0 ? bench_rss_kib(dpid) : -1;
	if (!err && !(err = bench_group_create(ctx, cfg->prefix, &o, r.group, sizeof(r.group)))) {
		snprintf(res->group, sizeof(res->group), "%s", r.group);
		if (cfg->groups > 1)
			err = make_groups(ctx, &r, &o);
		if (!err)
			err = run_children(ctx, &r, pids, dpid, res);
		for (unsigned k = 1; k < r.n_names; k++)
			pg_delete(ctx, r.names[k]);
		free(r.names);
		res->daemon_group_kib = rss0 >= 0 && res->daemon_rss_kib >= 0 ?
						res->daemon_rss_kib - rss0 : -1;
		int derr = pg_delete(ctx, r.group);
		/* -ENOENT: already deleted to stop a failed run early. */
		if (!err && derr && derr != -ENOENT)
			err = derr;
	}
	bench_gate_close(&r.gate);
	if (r.slots)
		munmap(r.slots, r.map_len);
	free(pids);
	if (err)
		bench_result_free(res);
	return err;
}

bool bench_ok(const struct bench_result *res)
{
	return res->delivered == res->expected && !res->dups && !res->gaps && !res->bad &&
	       res->same_order && !res->err;
}

void bench_result_free(struct bench_result *res)
{
	free(res->lat);
	res->lat = NULL;
	res->nlat = 0;
}

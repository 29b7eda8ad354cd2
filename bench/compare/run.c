// SPDX-License-Identifier: MIT
/*
 * One run: fork a sender and N receivers, hold them at a start gate until
 * every receiver is attached, pace the sender, check every delivery and keep
 * its latency. Children report through one MAP_SHARED mapping made before
 * fork, so percentiles are over all deliveries, as in `pgroup bench`.
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "compare.h"

/* Before the timed messages, so first-touch page faults, lazy connects and
 * cold caches are not in the numbers. Paced like the timed ones. */
#define WARM_MSGS 1000u
/* Absolute-deadline pacing: sleep to within PACE_SPIN_NS of the deadline,
 * spin the rest. Spinning whole gaps would starve receivers on a small box. */
#define PACE_SLEEP_NS 20000u
#define PACE_SPIN_NS 10000u
#define PROBE_MS 1
#define READY_TIMEOUT_MS 15000
/* Children that make no progress for this long are stuck (a receiver
 * gives up after CMP_IDLE_MS, a daemon may not answer an exiting one). */
#define STUCK_MS (CMP_IDLE_MS + 5000)
#define PROGRESS_EVERY 1024u

/* One per child, each on its own cache line. */
struct slot {
	_Alignas(64) _Atomic uint64_t progress; /* count, now and then: for the watchdog */
	uint64_t count;                         /* sent, or delivered */
	uint64_t t_first, t_last;     /* first timed send; last send or delivery */
	uint64_t dups, gaps, bad;
	int err;
};

struct job {
	const struct cmp_cfg *cfg;
	struct cmp_run run; /* a copy the transport may fill in (priv) */
	struct bench_gate gate;
	struct slot *slots; /* the sender, then the receivers */
	uint64_t *lat;      /* receivers x count, in the same mapping */
	size_t map_len;
	unsigned index; /* set before each fork: which child this is */
};

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

static int send_one(struct job *jb, void *tx, unsigned char *buf, uint32_t flags, uint64_t seq)
{
	struct cmp_hdr h = {.sent_ns = bench_now_ns(), .flags = flags, .seq = (uint32_t)seq};
	memcpy(buf, &h, sizeof(h));
	return jb->cfg->x->tx_send(tx, buf, jb->run.size);
}

/*
 * Wait for the gate to open. A probing transport keeps sending warm-up
 * messages meanwhile: a receiver is ready once one reaches it.
 */
static int wait_go(struct job *jb, void *tx, unsigned char *buf)
{
	uint64_t n = 0;
	while (jb->cfg->x->probe) {
		struct pollfd p = {.fd = jb->gate.go[0], .events = POLLIN};
		int err = send_one(jb, tx, buf, CMP_WARM, n++);
		if (err)
			return err;
		/* The parent's close of the write end reads as POLLHUP. */
		if (poll(&p, 1, PROBE_MS) > 0)
			break;
	}
	bench_gate_wait(&jb->gate);
	return 0;
}

static int send_all(struct job *jb, void *tx, unsigned char *buf, struct slot *s)
{
	const struct cmp_cfg *cfg = jb->cfg;
	uint64_t total = WARM_MSGS + cfg->count;
	uint64_t t0 = bench_now_ns();
	int err = 0;
	for (uint64_t i = 0; i < total && !err; i++) {
		/* i * 1e9 < 2^64 for any count that fits the 32-bit seq. */
		if (cfg->rate)
			pace_until(t0 + i * 1000000000u / cfg->rate);
		if (i == WARM_MSGS)
			s->t_first = bench_now_ns();
		if (i < WARM_MSGS)
			err = send_one(jb, tx, buf, CMP_WARM, i);
		else
			err = send_one(jb, tx, buf, 0, i - WARM_MSGS);
		s->count += !err && i >= WARM_MSGS;
		if (i % PROGRESS_EVERY == 0)
			atomic_store_explicit(&s->progress, i, memory_order_relaxed);
	}
	s->t_last = bench_now_ns();
	return err;
}

/* What a child main returns with, after all its results are in its slot. */
static int child_exit(const struct job *jb, int rc)
{
	if (jb->cfg->x->full_exit) {
		fflush(NULL);
		exit(rc);
	}
	return rc;
}

static int sender_main(void *arg)
{
	struct job *jb = arg;
	struct slot *s = &jb->slots[0];
	/* A default 50 us timer slack would make every paced sleep overshoot
	 * its deadline, and the spin after it would not catch up. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	void *tx = NULL;
	int err = jb->cfg->x->tx_open(&jb->run, &tx);
	bench_gate_ready(&jb->gate, err);
	if (err) {
		s->err = err;
		return child_exit(jb, 1);
	}
	unsigned char *buf = calloc(1, jb->run.size);
	err = buf ? wait_go(jb, tx, buf) : -ENOMEM;
	if (!err)
		err = send_all(jb, tx, buf, s);
	s->err = err;
	jb->cfg->x->tx_close(tx);
	free(buf);
	return child_exit(jb, err ? 1 : 0);
}

static void receive_all(struct job *jb, void *rx, struct slot *s, uint64_t *lat)
{
	const struct cmp_cfg *cfg = jb->cfg;
	struct bench_order o;
	if ((s->err = bench_order_init(&o, 1)))
		return;
	while (s->count < cfg->count) {
		struct cmp_hdr h;
		size_t len;
		uint64_t gseq;
		int err = cfg->x->rx_recv(rx, &h, &len, &gseq);
		if (err == -EINTR)
			continue;
		if (err) {
			s->err = err;
			break;
		}
		uint64_t now = bench_now_ns();
		if (len != jb->run.size) {
			o.bad++;
			continue;
		}
		if (h.flags & CMP_WARM)
			continue;
		if (!bench_order_add(&o, 0, h.seq, gseq))
			continue;
		lat[s->count++] = now - h.sent_ns;
		s->t_last = now;
		if (s->count % PROGRESS_EVERY == 0)
			atomic_store_explicit(&s->progress, s->count, memory_order_relaxed);
	}
	s->dups = o.dups;
	s->gaps = o.gaps;
	s->bad = o.bad;
	bench_order_free(&o);
}

static int receiver_main(void *arg)
{
	struct job *jb = arg;
	unsigned j = jb->index - 1;
	struct slot *s = &jb->slots[jb->index];
	void *rx = NULL;
	int err = jb->cfg->x->rx_open(&jb->run, j, &rx);
	bench_gate_ready(&jb->gate, err);
	if (err) {
		s->err = err;
		return child_exit(jb, 1);
	}
	receive_all(jb, rx, s, jb->lat + (size_t)j * jb->cfg->count);
	jb->cfg->x->rx_close(rx);
	/* Non-zero stops the run at once rather than after the others idle out. */
	return child_exit(jb, s->err || s->count < jb->cfg->count ? 1 : 0);
}

static int map_shared(struct job *jb)
{
	size_t nslots = (size_t)jb->run.members + 1;
	size_t lat_off = nslots * sizeof(struct slot);
	if (jb->cfg->count > (SIZE_MAX - lat_off) / sizeof(uint64_t) / jb->run.members)
		return -ENOMEM;
	jb->map_len = lat_off + (size_t)jb->cfg->count * jb->run.members * sizeof(uint64_t);
	void *p = mmap(NULL, jb->map_len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	jb->slots = p;
	jb->lat = (uint64_t *)((char *)p + lat_off);
	return 0;
}

static uint64_t progress(const struct job *jb, size_t n)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += atomic_load_explicit(&jb->slots[i].progress, memory_order_relaxed);
	return sum;
}

static void kill_all(struct job *jb, pid_t *pids, size_t n)
{
	bench_kill_all(pids, n);
	jb->run.killed = true;
}

/* Reap every child; the first to fail, or to hang, takes the rest down with it. */
static int wait_children(struct job *jb, pid_t *pids, size_t n)
{
	size_t left = n;
	int err = 0;
	uint64_t seen = 0, moved = bench_now_ns();
	while (left) {
		for (size_t i = 0; i < n; i++) {
			int st;
			if (pids[i] <= 0 || waitpid(pids[i], &st, WNOHANG) != pids[i])
				continue;
			pids[i] = 0;
			left--;
			if (!WIFEXITED(st) || WEXITSTATUS(st)) {
				err = err ? err : -ECHILD;
				kill_all(jb, pids, n);
				left = 0;
			}
		}
		if (bench_interrupted()) {
			kill_all(jb, pids, n);
			return -EINTR;
		}
		uint64_t now = bench_now_ns(), p = progress(jb, n);
		if (p != seen) {
			seen = p;
			moved = now;
		} else if (left && now - moved > (uint64_t)STUCK_MS * 1000000u) {
			fprintf(stderr, "pgcompare: %s: %zu child%s stuck for %u s; killed\n",
				jb->cfg->x->name, left, left == 1 ? "" : "ren", STUCK_MS / 1000);
			kill_all(jb, pids, n);
			return -ECHILD;
		}
		if (left)
			cmp_sleep_ms(2);
	}
	return err;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted latencies, in microseconds. */
static double pct_us(const uint64_t *lat, size_t n, double p)
{
	if (!n)
		return 0;
	size_t k = (size_t)(p * (double)n + 0.999999);
	return (double)lat[k ? k - 1 : 0] / 1000.0;
}

static int summarise(const struct job *jb, struct cmp_result *res)
{
	const struct slot *tx = &jb->slots[0];
	uint64_t recv_end = 0;
	res->expected = jb->cfg->count * jb->run.members;
	res->err = tx->err;
	uint64_t *all = malloc(res->expected * sizeof(uint64_t));
	if (!all)
		return -ENOMEM;
	for (unsigned j = 0; j < jb->run.members; j++) {
		const struct slot *s = &jb->slots[j + 1];
		memcpy(all + res->delivered, jb->lat + (size_t)j * jb->cfg->count,
		       s->count * sizeof(uint64_t));
		res->delivered += s->count;
		res->dups += s->dups;
		res->gaps += s->gaps;
		res->bad += s->bad;
		res->err = res->err ? res->err : s->err;
		recv_end = s->t_last > recv_end ? s->t_last : recv_end;
	}
	qsort(all, res->delivered, sizeof(uint64_t), cmp_u64);
	res->p50 = pct_us(all, res->delivered, 0.50);
	res->p99 = pct_us(all, res->delivered, 0.99);
	res->p999 = pct_us(all, res->delivered, 0.999);
	free(all);
	if (tx->t_first && recv_end > tx->t_first)
		res->deliver_rate =
			(double)res->delivered * 1e9 / (double)(recv_end - tx->t_first);
	res->ok = res->delivered == res->expected && !res->dups && !res->gaps && !res->bad &&
		  !res->err;
	return 0;
}

static int run_children(struct job *jb, pid_t *pids, size_t n)
{
	int err = 0;
	for (jb->index = 0; jb->index < n && !err; jb->index++) {
		pid_t pid = bench_spawn(jb->index ? receiver_main : sender_main, jb);
		if (pid < 0)
			err = (int)pid;
		else
			pids[jb->index] = pid;
	}
	if (!err)
		err = bench_gate_collect(&jb->gate, n, READY_TIMEOUT_MS);
	if (err) {
		kill_all(jb, pids, n);
		return err;
	}
	bench_gate_open(&jb->gate);
	return wait_children(jb, pids, n);
}

int cmp_run_once(const struct cmp_cfg *cfg, struct cmp_result *res)
{
	struct job jb = {.cfg = cfg, .run = cfg->run, .gate = {{-1, -1}, {-1, -1}, {-1, -1}}};
	size_t n = (size_t)cfg->run.members + 1;
	*res = (struct cmp_result){0};
	if (!cfg->run.members || cfg->run.size < sizeof(struct cmp_hdr) || !cfg->count ||
	    cfg->count > UINT32_MAX)
		return -EINVAL;
	pid_t *pids = calloc(n, sizeof(*pids));
	if (!pids)
		return -ENOMEM;
	int err = map_shared(&jb);
	if (!err)
		err = bench_gate_init(&jb.gate);
	if (!err && cfg->x->prepare)
		err = cfg->x->prepare(&jb.run);
	if (!err) {
		err = run_children(&jb, pids, n);
		if (cfg->x->cleanup)
			cfg->x->cleanup(&jb.run);
	}
	/* -ECHILD: a child failed or died mid-run; report what was delivered. */
	int child_err = err == -ECHILD ? err : 0;
	if (!err || child_err)
		err = summarise(&jb, res);
	if (!err && child_err && !res->err) {
		res->err = child_err;
		res->ok = false;
	}
	bench_gate_close(&jb.gate);
	if (jb.slots)
		munmap(jb.slots, jb.map_len);
	free(pids);
	return err;
}

// SPDX-License-Identifier: MIT
/*
 * Chaos: two survivor members read one group while, round after round,
 * victim members and senders are started and SIGKILLed at random moments,
 * some of them parked between claim and commit (the PGROUP_TEST_PARK_IN_SEND
 * hook, and pg_send_claim never committed). The survivors must each receive
 * every message whose send returned 0, in one identical order, without a
 * stall, and the daemon's fds and memory must not grow over the rounds.
 *
 * The random choices come from a seed printed in the output; set
 * PGROUP_CHAOS_SEED to replay them (the timing of the kills still varies).
 */
#include <CUnit/Basic.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define SURVIVORS 2
#define ROUNDS 12
#define MAX_SENDERS 64 /* sender ids over all rounds: 4 a round at most */
#define SEND_CAP 20000 /* messages a sender sends at most: bounds the logs */
#define LOG_CAP (MAX_SENDERS * SEND_CAP)
#define PARK_PRE 4	       /* normal sends before a parked one */
#define POISON_SEQ 0xdeadbeefu /* in a claim never committed: must never arrive */
#define STALL_MS 3000
/* Below stall_ms on purpose: a hole left by a dead writer must be sealed
 * by its death, not by the stuck-claim timeout or by evicting the
 * survivors that wait behind it. */
#define GAP_BOUND_MS 2000
#define RSS_GROWTH_KIB 2048
#define MAX_KIDS (SURVIVORS + ROUNDS * 8)

struct payload {
	uint32_t sender;
	uint32_t seq;
	uint64_t check; /* catches torn or foreign bytes */
};

struct log_rec {
	uint32_t sender;
	uint32_t seq;
	uint64_t gseq; /* the group's order seq the survivor saw */
};

enum survivor_error {
	E_NONE,
	E_RECV,	  /* pg_recv failed other than by timing out */
	E_KIND,	  /* not a PG_MSG: evicted or group down */
	E_LEN,	  /* a message of the wrong size */
	E_DATA,	  /* a payload that fails its check, or a bad sender id */
	E_POISON, /* an uncommitted claim's bytes were delivered */
	E_GSEQ,	  /* the order seq did not grow */
	E_FULL,	  /* more messages than the log holds */
};

static const char *const error_names[] = {
	[E_NONE] = "none",
	[E_RECV] = "pg_recv error",
	[E_KIND] = "not a message, kind",
	[E_LEN] = "wrong length",
	[E_DATA] = "bad payload from sender",
	[E_POISON] = "uncommitted claim delivered, sender",
	[E_GSEQ] = "order seq did not grow",
	[E_FULL] = "log full",
};

struct survivor_log {
	_Atomic uint32_t count; /* release: pairs with the parent's acquire */
	_Atomic int64_t max_gap_ns;
	_Atomic uint32_t errors;
	_Atomic int32_t first_error;
	_Atomic int64_t first_value;
	struct log_rec rec[LOG_CAP];
};

enum sender_state { S_RUNNING, S_PARKING, S_CLAIMED };

/* Shared by the parent and every child: mapped before the first fork. */
struct chaos_shm {
	atomic_int done;
	atomic_uint stop_round; /* children of rounds <= this stop cleanly */
	atomic_uint n_senders;
	/* Messages of each sender whose pg_send returned 0. Release after
	 * the send: pairs with the acquire in owed() and the parent. */
	atomic_uint acked[MAX_SENDERS];
	atomic_int send_err[MAX_SENDERS];
	atomic_int state[MAX_SENDERS];
	atomic_int go[MAX_SENDERS]; /* a mid-stream victim starts sending */
	struct survivor_log log[SURVIVORS];
};

enum role { R_SURVIVOR, R_IDLE, R_SLOW, R_STREAM, R_MID, R_HOOK, R_CLAIM };

static const char *const role_names[] = {
	[R_SURVIVOR] = "survivor",
	[R_IDLE] = "idle member",
	[R_SLOW] = "slow member",
	[R_STREAM] = "sender",
	[R_MID] = "mid-stream sender",
	[R_HOOK] = "parked sender",
	[R_CLAIM] = "claiming sender",
};

struct kid {
	struct child c;
	enum role role;
	uint32_t sender;
	bool kill;
};

struct kid_arg {
	const char *group;
	enum role role;
	uint32_t index; /* survivor index or sender id */
	unsigned round;
};

static struct chaos_shm *shm;
/* Senders whose last send cannot be in flight: they stopped cleanly, or
 * were parked before their commit. The survivors get exactly what was acked. */
static bool exact[MAX_SENDERS];
static struct kid kids[MAX_KIDS];
static unsigned n_kids;
static uint64_t rng;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* xorshift64*: small, and the same sequence on every machine. */
static uint32_t rnd(uint32_t n)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 2685821657736338717ull) >> 32) % n;
}

static uint64_t check_of(uint32_t sender, uint32_t seq)
{
	return ((uint64_t)sender << 32 | seq) * 0x9e3779b97f4a7c15ull ^ 0x5a5a5a5a5a5a5a5aull;
}

static struct payload payload_of(uint32_t sender, uint32_t seq)
{
	return (struct payload){sender, seq, check_of(sender, seq)};
}

static bool stopped(const struct kid_arg *a)
{
	return atomic_load(&shm->stop_round) >= a->round;
}

static void note_error(struct survivor_log *lg, enum survivor_error e, int64_t value)
{
	if (atomic_fetch_add(&lg->errors, 1) == 0) {
		atomic_store(&lg->first_error, e);
		atomic_store(&lg->first_value, value);
	}
}

static void note_gap(struct survivor_log *lg, int64_t gap)
{
	if (gap > atomic_load(&lg->max_gap_ns))
		atomic_store(&lg->max_gap_ns, gap);
}

/* Whether a message some sender was told is sent has not arrived yet:
 * only then is a quiet survivor stalled rather than idle. */
static bool owed(const uint32_t *next)
{
	unsigned n = atomic_load(&shm->n_senders);
	for (unsigned s = 0; s < n; s++)
		/* Acquire: pairs with the sender's release after pg_send, so
		 * the message it counts is committed and readable by now. */
		if (atomic_load_explicit(&shm->acked[s], memory_order_acquire) > next[s])
			return true;
	return false;
}

static int survivor(void *arg, int up, int down)
{
	const struct kid_arg *a = arg;
	struct survivor_log *lg = &shm->log[a->index];
	pg_ctx *ctx = open_ctx();
	if (pg_join(ctx, a->group, 0, NULL, NULL))
		return 2;
	write_all(up, "r", 1);
	static uint32_t next[MAX_SENDERS];
	uint64_t last_gseq = 0;
	int64_t stall_start = now_ns(), quiet_since = 0;
	for (;;) {
		pg_message m;
		int err = pg_recv(ctx, &m, 20);
		int64_t now = now_ns();
		if (err == -ETIMEDOUT) {
			if (owed(next))
				note_gap(lg, now - stall_start);
			else
				stall_start = now;
			if (atomic_load(&shm->done)) {
				if (!quiet_since)
					quiet_since = now;
				if (now - quiet_since > 500 * 1000000ll)
					break;
			}
			continue;
		}
		if (err) {
			note_error(lg, E_RECV, err);
			break;
		}
		note_gap(lg, now - stall_start);
		stall_start = now;
		quiet_since = 0;
		if (m.kind != PG_MSG) {
			note_error(lg, E_KIND, m.kind);
			break;
		}
		struct payload p;
		if (m.len != sizeof(p)) {
			note_error(lg, E_LEN, (int64_t)m.len);
			continue;
		}
		memcpy(&p, m.data, sizeof(p));
		if (p.sender >= MAX_SENDERS || p.check != check_of(p.sender, p.seq)) {
			note_error(lg, E_DATA, p.sender);
			continue;
		}
		if (p.seq == POISON_SEQ) {
			note_error(lg, E_POISON, p.sender);
			continue;
		}
		if (m.seq <= last_gseq)
			note_error(lg, E_GSEQ, (int64_t)m.seq);
		last_gseq = m.seq;
		if (p.seq >= next[p.sender])
			next[p.sender] = p.seq + 1;
		uint32_t n = atomic_load_explicit(&lg->count, memory_order_relaxed);
		if (n == LOG_CAP) {
			note_error(lg, E_FULL, n);
			continue;
		}
		lg->rec[n] = (struct log_rec){p.sender, p.seq, m.seq};
		/* Release: pairs with the parent's acquire of count. */
		atomic_store_explicit(&lg->count, n + 1, memory_order_release);
	}
	pg_close(ctx);
	return 0;
}

/* A victim member: reads slowly (so it holds the ring now and then) or not
 * at all (so it holds it until it dies). */
static int victim(void *arg, int up, int down)
{
	const struct kid_arg *a = arg;
	pg_ctx *ctx = open_ctx();
	if (pg_join(ctx, a->group, 0, NULL, NULL))
		return 2;
	write_all(up, "r", 1);
	while (!stopped(a)) {
		pg_message m;
		if (a->role == R_IDLE)
			sleep_ms(1);
		else if (pg_recv(ctx, &m, 20) == 0)
			usleep(50);
	}
	pg_close(ctx);
	return 0;
}

static int send_one(pg_ctx *ctx, const struct kid_arg *a, uint32_t seq)
{
	struct payload p = payload_of(a->index, seq);
	int err = pg_send(ctx, a->group, &p, sizeof(p));
	if (err) {
		atomic_store(&shm->send_err[a->index], err);
		return err;
	}
	/* Release: pairs with the acquire in owed() and in the parent. */
	atomic_store_explicit(&shm->acked[a->index], seq + 1, memory_order_release);
	return 0;
}

static int sender(void *arg, int up, int down)
{
	const struct kid_arg *a = arg;
	pg_ctx *ctx = open_ctx();
	uint32_t seq = 0;
	uint32_t cap = a->role == R_STREAM || a->role == R_MID ? SEND_CAP : PARK_PRE;
	/* Held back until the kills begin, so it is still streaming (far
	 * from its cap) when its own kill comes. */
	while (a->role == R_MID && !atomic_load(&shm->go[a->index]) && !stopped(a))
		sleep_ms(1);
	/* Back to back: a kill lands mid-stream, sometimes between claim
	 * and commit. */
	while (seq < cap && !stopped(a))
		if (send_one(ctx, a, seq++))
			return 3;
	if (a->role == R_HOOK) {
		/* The hook is read at pg_open: a second handle parks on its
		 * first send, right after claiming its place. */
		setenv("PGROUP_TEST_PARK_IN_SEND", "1", 1);
		pg_ctx *parked = open_ctx();
		atomic_store(&shm->state[a->index], S_PARKING);
		send_one(parked, a, seq);
		return 4; /* the hook did not park */
	}
	if (a->role == R_CLAIM) {
		void *buf;
		int err = pg_send_claim(ctx, a->group, sizeof(struct payload), &buf);
		if (err) {
			atomic_store(&shm->send_err[a->index], err);
			return 5;
		}
		/* Well-formed bytes: only the missing commit may keep a
		 * reader from delivering them. */
		struct payload p = payload_of(a->index, POISON_SEQ);
		memcpy(buf, &p, sizeof(p));
		atomic_store(&shm->state[a->index], S_CLAIMED);
		for (;;)
			pause();
	}
	while (!stopped(a))
		sleep_ms(1);
	pg_close(ctx);
	return 0;
}

static struct kid *start_kid(enum role role, const struct kid_arg *a, child_fn fn)
{
	if (n_kids == MAX_KIDS)
		return NULL;
	struct kid *k = &kids[n_kids];
	*k = (struct kid){.role = role, .sender = a->index};
	if (child_start(&k->c, fn, (void *)a))
		return NULL;
	n_kids++;
	return k;
}

/* Reap within timeout_ms (SIGKILL after it): the exit code, 128+signal,
 * or -ETIMEDOUT. */
static int reap(struct kid *k, int timeout_ms)
{
	int st, err = 0;
	for (int waited = 0; waitpid(k->c.pid, &st, WNOHANG) != k->c.pid; waited++) {
		if (waited == timeout_ms) {
			kill(k->c.pid, SIGKILL);
			waitpid(k->c.pid, &st, 0);
			err = -ETIMEDOUT;
			break;
		}
		sleep_ms(1);
	}
	k->c.pid = 0;
	close(k->c.rd);
	close(k->c.wr);
	if (err)
		return err;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static bool has_exited(const struct kid *k)
{
	siginfo_t si = {0};
	return waitid(P_PID, (id_t)k->c.pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	       si.si_pid == k->c.pid;
}

/* The syscall the process waits in (/proc/PID/syscall), or -1. */
static long syscall_of(pid_t pid)
{
	char path[64], buf[64] = "";
	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long nr = -1;
	if (!fgets(buf, sizeof(buf), f) || sscanf(buf, "%ld", &nr) != 1)
		nr = -1;
	fclose(f);
	return nr;
}

/* Wait until a parked sender sits in pause() with its claim open: the
 * flag says it got there, the syscall that it is not still waiting for
 * room (where killing it would leave no claim). */
static bool wait_parked(struct kid *k)
{
	int want = k->role == R_HOOK ? S_PARKING : S_CLAIMED;
	for (int i = 0; i < 5000; i++) {
		if (has_exited(k))
			return false;
		if (atomic_load(&shm->state[k->sender]) == want &&
		    syscall_of(k->c.pid) == SYS_pause)
			return true;
		sleep_ms(1);
	}
	return false;
}

/* The daemon's fd count once it reaches `want` (dead sessions get a grace
 * period, dead writers wait for a tick), or what it is after 5 s; want < 0:
 * once it has not changed for 500 ms. */
static int settled_fds(int want)
{
	int n = count_fds(the_daemon.pid), same = 0;
	for (int i = 0; i < 500 && n != want && same < 50; i++) {
		sleep_ms(10);
		int now = count_fds(the_daemon.pid);
		same = now == n ? same + 1 : 0;
		n = now;
		if (want >= 0)
			same = 0;
	}
	return n;
}

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long kib = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

static unsigned acked_total(void)
{
	unsigned sum = 0, n = atomic_load(&shm->n_senders);
	for (unsigned s = 0; s < n; s++)
		sum += atomic_load_explicit(&shm->acked[s], memory_order_acquire);
	return sum;
}

struct stats {
	unsigned killed_members, killed_senders, parked, midstream;
};

static void kill_and_reap(struct kid *k, struct stats *st)
{
	bool streams = k->role == R_STREAM || k->role == R_MID;
	if (streams && atomic_load(&shm->acked[k->sender]) < SEND_CAP)
		st->midstream++;
	kill(k->c.pid, SIGKILL);
	int code = reap(k, 5000);
	CU_ASSERT_EQUAL(code, 128 + SIGKILL);
	if (k->role == R_IDLE || k->role == R_SLOW)
		st->killed_members++;
	else
		st->killed_senders++;
}

static struct kid *start_sender(const char *g, unsigned round, enum role role, struct kid_arg *arg)
{
	uint32_t id = atomic_load(&shm->n_senders);
	if (id == MAX_SENDERS)
		return NULL;
	atomic_store(&shm->n_senders, id + 1);
	*arg = (struct kid_arg){g, role, id, round};
	struct kid *k = start_kid(role, arg, sender);
	if (!k)
		return NULL;
	/* The mid-stream one dies below, parked ones always. */
	k->kill = role != R_STREAM || rnd(2);
	exact[id] = role == R_HOOK || role == R_CLAIM || !k->kill;
	return k;
}

static void run_round(const char *g, unsigned round, struct stats *st)
{
	struct kid_arg args[8];
	struct kid *mine[8];
	unsigned n = 0;

	/* A parked writer goes first, while nothing else holds the ring
	 * (an idle victim would keep it from reaching its claim): everyone
	 * after it then piles up behind its hole until it is sealed. */
	if (round % 2 == 0) {
		enum role role = round % 4 ? R_HOOK : R_CLAIM;
		mine[n] = start_sender(g, round, role, &args[n]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(mine[n]);
		CU_ASSERT(wait_parked(mine[n]));
		st->parked++;
		n++;
	}
	/* Victim members next, so the senders find them in the way. */
	unsigned n_victims = 1 + rnd(3);
	for (unsigned i = 0; i < n_victims; i++, n++) {
		args[n] = (struct kid_arg){g, rnd(2) ? R_IDLE : R_SLOW, 0, round};
		mine[n] = start_kid(args[n].role, &args[n], victim);
		CU_ASSERT_PTR_NOT_NULL_FATAL(mine[n]);
		char r;
		CU_ASSERT_EQUAL(child_read(&mine[n]->c, &r, 1, 5000), 0);
		/* One that never reads holds the ring until it dies: it must
		 * die, or the senders would stall on it for stall_ms. */
		mine[n]->kill = args[n].role == R_IDLE || rnd(2);
	}
	unsigned n_streams = 2 + rnd(2);
	struct kid *mid = NULL;
	for (unsigned i = 0; i < n_streams; i++, n++) {
		mine[n] = start_sender(g, round, i ? R_STREAM : R_MID, &args[n]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(mine[n]);
		if (!i)
			mid = mine[n];
	}

	sleep_ms(rnd(51));
	unsigned order[8];
	for (unsigned i = 0; i < n; i++) {
		unsigned j = rnd(i + 1);
		order[i] = order[j];
		order[j] = i;
	}
	for (unsigned i = 0; i < n; i++) {
		struct kid *k = mine[order[i]];
		if (!k->kill || k == mid)
			continue;
		kill_and_reap(k, st);
		sleep_ms(rnd(11));
	}
	/* Kill the held-back stream while it sends back to back: a few
	 * hundred messages in, which also shows the group moves on after the
	 * kills (and a sealed hole). */
	atomic_store(&shm->go[mid->sender], 1);
	unsigned target = 1 + rnd(300);
	for (int i = 0; i < 5000 && atomic_load(&shm->acked[mid->sender]) < target; i++)
		sleep_ms(1);
	CU_ASSERT(atomic_load(&shm->acked[mid->sender]) >= target);
	kill_and_reap(mid, st);

	/* Traffic flows after the kills, then the rest stop cleanly. */
	sleep_ms(20);
	atomic_store(&shm->stop_round, round);
	for (unsigned i = 0; i < n; i++) {
		if (mine[i]->c.pid <= 0)
			continue;
		int code = reap(mine[i], 10000);
		CU_ASSERT_EQUAL(code, 0);
		if (code)
			printf("\n  round %u: %s exited %d (send error %d)", round,
			       role_names[mine[i]->role], code,
			       atomic_load(&shm->send_err[mine[i]->sender]));
	}
	/* Everything acked reaches the survivors well within the bound. */
	unsigned want = acked_total();
	for (int k = 0; k < SURVIVORS; k++) {
		int i = 0;
		for (; i < GAP_BOUND_MS &&
		       atomic_load_explicit(&shm->log[k].count, memory_order_acquire) < want;
		     i++)
			sleep_ms(1);
		CU_ASSERT(i < GAP_BOUND_MS);
	}
}

/* Each sender's messages arrive as 0..k-1 in order, once each. */
static void check_fifo(int k, unsigned *got)
{
	const struct survivor_log *lg = &shm->log[k];
	uint32_t n = atomic_load_explicit(&lg->count, memory_order_acquire);
	unsigned bad = 0;
	memset(got, 0, MAX_SENDERS * sizeof(*got));
	for (uint32_t i = 0; i < n; i++) {
		const struct log_rec *r = &lg->rec[i];
		if (r->seq != got[r->sender])
			bad++;
		got[r->sender] = r->seq + 1;
	}
	CU_ASSERT_EQUAL(bad, 0);
	if (bad)
		printf("\n  survivor %d: %u messages out of sender order", k, bad);
}

static void check_logs(const struct stats *st, unsigned rounds)
{
	unsigned n_senders = atomic_load(&shm->n_senders);
	unsigned got[SURVIVORS][MAX_SENDERS];
	for (int k = 0; k < SURVIVORS; k++) {
		struct survivor_log *lg = &shm->log[k];
		CU_ASSERT_EQUAL(atomic_load(&lg->errors), 0);
		if (atomic_load(&lg->errors))
			printf("\n  survivor %d: %u errors, first: %s %lld", k,
			       atomic_load(&lg->errors), error_names[atomic_load(&lg->first_error)],
			       (long long)atomic_load(&lg->first_value));
		int64_t gap_ms = atomic_load(&lg->max_gap_ns) / 1000000;
		CU_ASSERT(gap_ms <= GAP_BOUND_MS);
		printf("\n  survivor %d: %u messages, longest stall %lld ms (bound %d)", k,
		       atomic_load(&lg->count), (long long)gap_ms, GAP_BOUND_MS);
		check_fifo(k, got[k]);
	}
	for (unsigned s = 0; s < n_senders; s++) {
		unsigned acked = atomic_load(&shm->acked[s]);
		for (int k = 0; k < SURVIVORS; k++) {
			/* Every acked message arrived; the one a kill caught
			 * between its commit and the ack may have too. */
			unsigned most = exact[s] ? acked : acked + 1;
			CU_ASSERT(got[k][s] >= acked && got[k][s] <= most);
			if (got[k][s] < acked || got[k][s] > most)
				printf("\n  survivor %d, sender %u: got %u, acked %u", k, s,
				       got[k][s], acked);
		}
	}
	/* One order: the same messages, in the same order, with the same
	 * order seqs, at both survivors. */
	uint32_t n0 = atomic_load(&shm->log[0].count);
	CU_ASSERT_EQUAL(atomic_load(&shm->log[1].count), n0);
	uint32_t n = n0 < atomic_load(&shm->log[1].count) ? n0 : atomic_load(&shm->log[1].count);
	uint32_t diff = 0;
	while (diff < n &&
	       memcmp(&shm->log[0].rec[diff], &shm->log[1].rec[diff], sizeof(struct log_rec)) == 0)
		diff++;
	CU_ASSERT_EQUAL(diff, n);
	if (diff != n)
		printf("\n  survivors' orders differ at message %u", diff);
	printf("\n  %u rounds, %u senders; killed %u senders (%u mid-stream, %u parked in "
	       "a claim), %u members\n",
	       rounds, n_senders, st->killed_senders, st->midstream, st->parked,
	       st->killed_members);
	if (rounds == ROUNDS) {
		CU_ASSERT(st->midstream >= ROUNDS);
		CU_ASSERT_EQUAL(st->parked, ROUNDS / 2);
	}
}

static void test_chaos(void)
{
	const char *seed_env = getenv("PGROUP_CHAOS_SEED");
	uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : 0x9e3779b97f4a7c15ull;
	rng = seed ? seed : 1;
	printf("\n  seed %llu (PGROUP_CHAOS_SEED=%llu replays the choices)",
	       (unsigned long long)seed, (unsigned long long)seed);

	shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CU_ASSERT_FATAL(shm != MAP_FAILED);
	const char *g = fresh_group("chaos");
	pg_ctx *ctx = open_ctx();
	pg_group_opts o = {.ring_bytes = 256 * 1024, .max_msg = 1024, .stall_ms = STALL_MS};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(ctx, g, &o), 0);

	struct kid_arg sargs[SURVIVORS];
	pid_t spid[SURVIVORS];
	for (int k = 0; k < SURVIVORS; k++) {
		sargs[k] = (struct kid_arg){g, R_SURVIVOR, (uint32_t)k, 0};
		struct kid *s = start_kid(R_SURVIVOR, &sargs[k], survivor);
		CU_ASSERT_PTR_NOT_NULL_FATAL(s);
		char r;
		CU_ASSERT_EQUAL(child_read(&s->c, &r, 1, 5000), 0);
		spid[k] = s->c.pid;
	}

	struct stats st = {0};
	int fds_base = -1;
	long rss_base = -1, rss_last = -1;
	unsigned round;
	for (round = 1; round <= ROUNDS; round++) {
		unsigned failures = CU_get_number_of_failures();
		run_round(g, round, &st);
		/* Once broken, more rounds only add timeouts: report now. */
		if (CU_get_number_of_failures() != failures) {
			printf("\n  round %u failed: stopping there", round);
			break;
		}
		int fds = settled_fds(fds_base);
		if (round == 1)
			fds_base = fds;
		CU_ASSERT_EQUAL(fds, fds_base);
		if (fds != fds_base)
			printf("\n  round %u: daemon holds %d fds, %d after round 1", round, fds,
			       fds_base);
		rss_last = rss_kib(the_daemon.pid);
		if (round == 2)
			rss_base = rss_last;
	}
	unsigned rounds = round - 1;
	if (rounds == ROUNDS) {
		printf("\n  daemon: %d fds after round 1; VmRSS %ld KiB after round 2, "
		       "%ld KiB after round %d",
		       fds_base, rss_base, rss_last, ROUNDS);
		CU_ASSERT(rss_base > 0 && rss_last - rss_base <= RSS_GROWTH_KIB);
	}

	/* Killed members are gone; the survivors alone remain. */
	pg_member *m = NULL;
	size_t n = 0;
	int err = 0;
	for (int i = 0; i < 300; i++) {
		free(m);
		m = NULL;
		if ((err = pg_members(ctx, g, &m, &n)) || n == SURVIVORS)
			break;
		sleep_ms(10);
	}
	CU_ASSERT_EQUAL(err, 0);
	CU_ASSERT_EQUAL(n, SURVIVORS);
	for (int k = 0; k < SURVIVORS; k++) {
		size_t listed = 0;
		for (size_t i = 0; i < n; i++)
			listed += m[i].pid == spid[k];
		CU_ASSERT_EQUAL(listed, 1);
	}
	free(m);

	atomic_store(&shm->done, 1);
	for (int k = 0; k < SURVIVORS; k++)
		CU_ASSERT_EQUAL(reap(&kids[k], 10000), 0);
	check_logs(&st, rounds);
	CU_ASSERT_EQUAL(pg_delete(ctx, g), 0);
	pg_close(ctx);
}

/* Whatever a failed check left running goes before the daemon does. */
static int chaos_cleanup(void)
{
	for (unsigned i = 0; i < n_kids; i++)
		if (kids[i].c.pid > 0) {
			kill(kids[i].c.pid, SIGKILL);
			reap(&kids[i], 5000);
		}
	if (shm && shm != MAP_FAILED)
		munmap(shm, sizeof(*shm));
	return suite_stop_daemon();
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	CU_pSuite s = CU_add_suite("chaos", suite_start_daemon, chaos_cleanup);
	CU_add_test(s, "SIGKILLed members and senders, parked claims", test_chaos);
	return run_cunit();
}

/* SPDX-License-Identifier: MIT */
/*
 * The fan-out benchmark, and the pieces `pgroup demo` shares with it: child
 * processes, start barriers, order checking and latency statistics.
 */
#ifndef PG_TOOLS_BENCH_H
#define PG_TOOLS_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cli.h"

/* Members stop waiting after this long without a message. */
#define BENCH_IDLE_MS 10000

uint64_t bench_now_ns(void);
/* A decimal number in 0..max, the whole string; false if not. */
bool bench_parse_u64(const char *s, uint64_t max, uint64_t *out);
uint64_t bench_cpu_ns(void);
/* Page faults this process took so far (minor + major). */
uint64_t bench_faults(void);
/* VmRSS of pid (0 = this process) in KiB, or -1. */
long bench_rss_kib(pid_t pid);
/* The daemon's pid, from the kernel's view of its socket (NULL: the
 * default one); 0 if unknown. */
pid_t bench_daemon_pid(const char *path);

/* "s" unless n is 1: "1 member", "2 members". */
const char *bench_plural(unsigned n);

/* FNV-1a 64 over n bytes, continuing from h (start with BENCH_FNV_INIT). */
#define BENCH_FNV_INIT 0xcbf29ce484222325ull
uint64_t bench_fnv(uint64_t h, const void *p, size_t n);

/*
 * A process forked to run fn(arg); its return value is the exit status.
 * stdio is flushed first so no buffered output is written twice.
 */
pid_t bench_spawn(int (*fn)(void *arg), void *arg);
/* Wait for *pid and zero it; its exit status, or 128 + the signal that killed it. */
int bench_reap(pid_t *pid);
/* SIGKILL and reap; pids <= 0 are skipped and every reaped pid is zeroed. */
void bench_kill_all(pid_t *pids, size_t n);

/*
 * Start barrier. Children write one byte to `ready` (after which they are
 * joined/connected, or have failed) and block in bench_gate_wait until the
 * parent opens the gate by closing its write end: one close releases every
 * child at the same moment.
 */
struct bench_gate {
	int ready[2];
	int go[2];
	int warm[2]; /* closed by the parent once every sender warmed up */
};
int bench_gate_init(struct bench_gate *g);
/* In a child, first: drop the ends only the parent holds. */
void bench_gate_child(struct bench_gate *g);
/* In a child: say ready (err 0) or failed, and keep the pipe for more. */
void bench_gate_say(struct bench_gate *g, int err);
/* In a child: say ready or failed, the last word. */
void bench_gate_ready(struct bench_gate *g, int err);
void bench_gate_wait(struct bench_gate *g);
/* In a child: whether the parent said the senders warmed up (no wait). */
bool bench_gate_warm(struct bench_gate *g);
/* In the parent: every sender warmed up. */
void bench_gate_warmed(struct bench_gate *g);
/* In the parent: wait for n ready bytes; -ECHILD if a child failed or died. */
int bench_gate_collect(struct bench_gate *g, size_t n, int timeout_ms);
void bench_gate_open(struct bench_gate *g);
void bench_gate_close(struct bench_gate *g);

/*
 * Exactly-once, per-sender-order and total-order check of one member's
 * deliveries: each accepted message advances a rolling hash over
 * (sender, sequence), equal at every member iff they saw the same order.
 */
struct bench_order {
	uint32_t *next; /* next expected sequence per sender */
	/* Messages of several groups have no order among them (--groups):
	 * then only which arrived counts, a bit per (sender, seq). */
	uint64_t *seen;
	uint64_t per_sender;
	unsigned senders;
	uint64_t hash;
	uint64_t last_gseq;
	uint64_t dups;     /* already seen (duplicate or late) */
	uint64_t gaps;     /* sequences skipped */
	uint64_t bad;      /* unknown sender, short message, or group seq not growing */
};
int bench_order_init(struct bench_order *o, unsigned senders);
/* Any order: each sender's 0..count-1 at most once; the hash is of the set. */
int bench_order_init_set(struct bench_order *o, unsigned senders, uint64_t count);
void bench_order_free(struct bench_order *o);
/* true if the message is new (counts as a delivery). */
bool bench_order_add(struct bench_order *o, uint32_t sender, uint32_t seq, uint64_t gseq);
uint64_t bench_order_errors(const struct bench_order *o);

/* A group named "<prefix>-<pid>" created with opts; the name goes to out. */
int bench_group_create(pg_ctx *ctx, const char *prefix, const pg_group_opts *opts, char *out,
		       size_t cap);

/* Stop on SIGINT/SIGTERM instead of dying, so the group still gets deleted. */
void bench_catch_signals(void);
bool bench_interrupted(void);

enum bench_wait { BENCH_WAIT_DEFAULT, BENCH_WAIT_SPIN, BENCH_WAIT_BLOCK, BENCH_WAIT_FD };

struct bench_cfg {
	const char *prefix; /* group name prefix */
	unsigned senders, members;
	size_t size, ring;
	uint64_t count; /* per sender */
	uint64_t rate;  /* per sender, msg/s; 0 = back to back */
	enum bench_wait wait;
	bool pin;
	bool progress; /* live line on stderr */
	/* Members on another node (its daemon's socket): the group's master
	 * is the senders' node, so every message crosses a node link. */
	const char *member_socket;
	/* Each member joins this many groups (the run's, then quiet ones);
	 * each message goes to one of them, picked at random. */
	unsigned groups;
	/* Claim, fill in place, commit; read in place. */
	bool zero_copy;
};

#define BENCH_NO_CPU (-1.0)

struct bench_result {
	char group[PG_GROUP_MAX + 1];
	uint64_t expected, delivered; /* deliveries: messages x members */
	uint64_t dups, gaps, bad;
	bool same_order; /* among the members that got every message */
	unsigned short_members; /* members that stopped early (idle, evicted, down) */
	unsigned evicted;       /* of those, evicted for lagging */
	uint64_t *lat;          /* every delivery's latency in ns, sorted */
	size_t nlat;
	double p50, p90, p99, p999, max; /* microseconds */
	double send_rate, deliver_rate;  /* per second, all senders / all members */
	double elapsed;                  /* seconds from start to last delivery */
	double cpu_send, cpu_recv, cpu_daemon; /* ns per delivery; BENCH_NO_CPU = n/a */
	double faults_send, faults_recv;       /* page faults per delivery, all senders / members */
	long member_rss_kib;  /* largest member VmRSS at its end (ring pages it touched) */
	long daemon_rss_kib;  /* the daemon's VmRSS with the group, -1 = n/a */
	long daemon_group_kib; /* what the group added to it */
	int err;                               /* first error a child hit, or 0 */
};

/*
 * Run one benchmark in a fresh group, created and deleted through ctx;
 * children connect to socket (NULL = default). 0 when it ran (then check
 * bench_ok), else a negative errno.
 */
int bench_run(pg_ctx *ctx, const char *socket, const struct bench_cfg *cfg,
	      struct bench_result *res);
bool bench_ok(const struct bench_result *res);
void bench_result_free(struct bench_result *res);

#endif /* PG_TOOLS_BENCH_H */

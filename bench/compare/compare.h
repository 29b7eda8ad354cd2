/* SPDX-License-Identifier: MIT */
/*
 * pgcompare: one sender process -> N receiver processes over several
 * transports, with the same workload and measurement for each. The driver
 * (run.c) forks, paces, checks order and times; a transport (xport_*.c)
 * only moves one message from the sender to every receiver.
 */
#ifndef PG_BENCH_COMPARE_H
#define PG_BENCH_COMPARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Receivers give up after this long without a message: a dead sender. */
#define CMP_IDLE_MS 10000

/* What every message starts with; the rest of --size is filler. */
struct cmp_hdr {
	uint64_t sent_ns; /* CLOCK_MONOTONIC, same clock in every process */
	uint32_t flags;
	uint32_t seq; /* timed messages count from 0 */
};
_Static_assert(sizeof(struct cmp_hdr) == 16, "pgcompare --size minimum is 16");

/* Not timed, not counted: the warm-up, and the ZeroMQ join probes. */
#define CMP_WARM 1u

struct cmp_opts {
	const char *socket; /* pgroup: a running daemon's socket, or NULL */
	bool verbose;
};

/* One run as a transport sees it. */
struct cmp_run {
	unsigned members;
	size_t size;
	unsigned id;   /* distinct per run within this pgcompare process */
	void *priv;    /* the transport's per-run state, made before fork */
	bool killed;   /* for cleanup: children were SIGKILLed (a failed run) */
};

/*
 * Every int-returning hook gives 0 or a negative errno. Parent hooks run in
 * the pgcompare process; tx_* in the sender child, rx_* in receiver children,
 * each after fork, so no transport state crosses a fork unless prepare made
 * it on purpose (socket pairs).
 */
struct xport {
	const char *name;
	/* The sender sends CMP_WARM messages until every receiver says it is
	 * ready: for transports whose subscriptions take effect some time
	 * after the connect call returns. */
	bool probe;
	/* Children leave with exit(), not _exit(): for a library that
	 * deregisters from its daemon in static destructors. */
	bool full_exit;
	/* Parent, once: start a daemon (optional). A positive return means
	 * "skip this transport"; start has said why on stderr. */
	int (*start)(const struct cmp_opts *o);
	void (*stop)(void);
	/* Parent, around each run's children (optional). */
	int (*prepare)(struct cmp_run *r);
	void (*cleanup)(struct cmp_run *r);
	int (*tx_open)(struct cmp_run *r, void **tx);
	/* Blocks while the transport applies back-pressure. */
	int (*tx_send)(void *tx, const void *buf, size_t len);
	void (*tx_close)(void *tx);
	/* Returns once receiver j would get every message sent from now on. */
	int (*rx_open)(struct cmp_run *r, unsigned j, void **rx);
	/*
	 * Block for the next message (at most CMP_IDLE_MS: -ETIMEDOUT); copy
	 * its header to *h and say its length. *gseq is the transport's own
	 * sequence number if it has one (checked to grow), else 0.
	 */
	int (*rx_recv)(void *rx, struct cmp_hdr *h, size_t *len, uint64_t *gseq);
	void (*rx_close)(void *rx);
};

extern const struct xport xport_unix, xport_tcp, xport_zmq, xport_zmq_tcp, xport_iceoryx, xport_pgroup;

struct cmp_cfg {
	const struct xport *x;
	struct cmp_run run;
	uint64_t count; /* timed messages */
	uint64_t rate;  /* msg/s; 0 = back to back */
};

struct cmp_result {
	uint64_t expected, delivered, dups, gaps, bad;
	double p50, p99, p999;   /* microseconds, over every delivery */
	double deliver_rate;     /* per second, all receivers together */
	int err;                 /* the first error a child hit, or 0 */
	bool ok;                 /* every receiver got every message once, in order */
};

/* Run the workload once. 0 when it ran (then see res->ok), or a negative errno. */
int cmp_run_once(const struct cmp_cfg *cfg, struct cmp_result *res);

/* Start a helper daemon with stdout and stderr on /dev/null unless verbose. */
int cmp_spawn_daemon(char *const argv[], bool verbose);
/* SIGTERM, then SIGKILL if it has not exited within timeout_ms; reaps it.
 * Its exit status, 128 + a signal's number, or 0 for pid <= 0. */
int cmp_stop_daemon(int pid, int timeout_ms);
/* Wait up to timeout_ms for a child (e.g. a readiness probe) to exit; its
 * status as bench_reap gives it, or -ETIMEDOUT after killing it. */
int cmp_wait_child(int pid, int timeout_ms);
/* Sleep ms milliseconds. */
void cmp_sleep_ms(unsigned ms);

#endif /* PG_BENCH_COMPARE_H */

/* SPDX-License-Identifier: MIT */
/*
 * Every timing constant of the library and the daemon, in one place. Each
 * says why it is what it is; none is a promise of the contract except where
 * it says so.
 */
#ifndef PG_TIMING_H
#define PG_TIMING_H

#define PG_MS 1000000ll /* nanoseconds */

/*
 * How long pg_recv polls (yielding the CPU between looks) before it parks on
 * the futex; $PGROUP_SPIN_US overrides it. 200 us is four inter-arrival gaps
 * at 20k msg/s, so a receiver rarely pays the ~30 us wake of a parked
 * process (docs/performance.md).
 */
#define PG_DEFAULT_SPIN_US 200
/*
 * Unless $PGROUP_SPIN_US fixes it, the window adapts (recv.c, spin_window):
 * pg_recv learns how long its waits for a record last (a moving average,
 * weight 2^-PG_WAIT_EWMA_SHIFT) and parks at once when the usual wait is
 * past twice the window (the next record is not likely to come in time);
 * else it polls the whole window.
 */
#define PG_WAIT_EWMA_SHIFT 3
/* Longest single park of pg_recv: a dead daemon cannot wake anyone, so the
 * control socket is looked at at least this often. */
#define PG_PARK_SLICE_NS (100 * PG_MS)
/* How often a polling pg_recv (timeout 0) reads the control socket. */
#define PG_DRAIN_EVERY_NS (1 * PG_MS)
/* And a consumer that always finds records, once per this many calls. */
#define PG_DRAIN_EVERY_RECORDS 4096u
/* Longest single park of a producer waiting for room: it re-checks the
 * node, the group and its stall clock at least this often. */
#define PG_ROOM_SLICE_NS (10 * PG_MS)
/*
 * Longest wait for the daemon's answer to one request. The daemon answers
 * every request at once (it never blocks on a client), so this only ends
 * calls to a daemon that is stopped or not a pgroupd: -ETIMEDOUT.
 */
#define PG_RPC_TIMEOUT_MS 5000
/* pg_join retries while the group's order has no room for its JOINED
 * event: the node evicts whoever holds it after the stall limit. */
#define PG_JOIN_RETRY_NS (1 * PG_MS)
#define PG_JOIN_WAIT_MS 30000

/* The daemon's tick: stuck claims, pending events, stalled members. Each
 * group is looked at once a tick; a node with more groups than
 * PGD_TICK_SPLIT_GROUPS spreads that pass over PGD_TICK_PARTS shorter
 * ticks (registry_tick), so it never holds a CPU for the whole walk. */
#define PGD_TICK_NS (50 * PG_MS)
#define PGD_TICK_PARTS 10
#define PGD_TICK_SPLIT_GROUPS 1000
/* A connection closed without BYE whose process lives on is a leave after
 * this grace (the exit watcher normally reports a death first). */
#define PGD_ORPHAN_GRACE_NS (100 * PG_MS)

/* A node that leaves a namespace or membership request of ours unanswered
 * this long is lost (its link closed): a create or a join never waits on
 * it longer, and a client (PG_RPC_TIMEOUT_MS) always gets the node's own
 * answer. Another node answers at once when it runs at all. */
#define PGD_NODE_ANSWER_NS (1500 * PG_MS)

#endif /* PG_TIMING_H */

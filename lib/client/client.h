/* SPDX-License-Identifier: MIT */
/* The client library's internal state: a ctx and the groups it touches. */
#ifndef PG_CLIENT_H
#define PG_CLIENT_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "pgroup.h"
#include "proto/ctl.h"
#include "ring/ring.h"

/*
 * How long pg_recv polls (yielding the CPU between looks) before it parks on
 * the futex; $PGROUP_SPIN_US overrides it. 200 us is four inter-arrival gaps
 * at 20k msg/s, so a receiver rarely pays the ~30 us wake of a parked
 * process: measured with `pgroup bench --members N --rate 20000` (median of
 * 5 runs), 200 us gave p99 7/17/16/24 us at N = 1/2/4/8 where 50 us gave
 * 24/28/38/33 (docs/performance.md). An idle receiver parks after one
 * window: ~0 CPU; a group at 1k msg/s keeps each receiver ~20 % busy.
 */
#define PG_DEFAULT_SPIN_US 200

/* What this ctx knows of one group: a send mapping, a membership, or both. */
struct group_ref {
	char name[PG_GROUP_MAX + 1];
	struct group_ref *next;

	/* Sending: the data area mapped writable, with our writer slot. */
	bool can_send;
	struct ring wr;
	uint32_t writer;
	bool claiming; /* a pg_send_claim not yet committed or aborted */
	struct ring_claim claim;

	/* Membership: a separate (read-only) mapping, so a view handed out by
	 * pg_recv survives a later send mapping of the same group. */
	bool member;
	bool monitor;
	struct ring rd;
	struct ring_reader reader;
	bool view_out;      /* pg_recv handed out a record not yet released */
	uint64_t view_next; /* where the record after it starts */
	bool fd_armed;      /* pg_fd waits on this group's wake word */
};

struct pg_ctx {
	int sock;
	unsigned fork_gen;
	pid_t pid;
	bool daemon_gone;
	char node[PG_NODE_MAX];
	const struct node_alive *alive; /* the daemon's liveness page, read-only */
	uint32_t next_id;
	struct group_ref *groups;
	unsigned n_groups;
	struct group_ref *next_rr; /* where the next pg_recv starts looking */
	struct group_ref *last;    /* last group named by a send: a cheap cache */
	struct group_ref *dropped; /* left, but its view may still be held */
	int64_t spin_ns;
	int64_t busy_ns; /* of spin_ns, polled without yielding ($PGROUP_BUSY_US) */
	int64_t last_drain_ns; /* last read of the control socket */
	unsigned fast_returns;  /* pg_recv calls that found a record at once */
	/* Test hook ($PGROUP_TEST_PARK_IN_SEND=1): pg_send stops for good
	 * between its claim and its commit, so a test can kill it there. */
	bool park_in_send;
	/* pg_fd: an io_uring whose completion queue is the readable fd. */
	bool have_uring;
	struct io_uring uring;
	bool sock_armed;
	struct ctl_out out;
	uint8_t in[CTL_MAX_BYTES];
};

/* A ref stays in ctx->groups while it is good for something. */
static inline bool ref_listed(const struct group_ref *g)
{
	return g->member || g->can_send || g->monitor;
}

/* ctx.c */
int ctx_check(pg_ctx *ctx);
/* False once the node daemon is gone (one load, no syscall). */
bool ctx_node_alive(pg_ctx *ctx);
/* A request/reply round trip. Replies carry up to 2 fds into fds[]. */
int ctx_call(pg_ctx *ctx, struct ctl_in *reply, int *fds, unsigned *nfds);
/* Start a request in ctx->out. */
void ctx_begin(pg_ctx *ctx, uint8_t type);
/* Send a request that has no reply. */
int ctx_notify(pg_ctx *ctx);
/* Read whatever the daemon sent unasked, without waiting. */
void ctx_drain(pg_ctx *ctx);
struct group_ref *ctx_find(pg_ctx *ctx, const char *name);
struct group_ref *ctx_ref(pg_ctx *ctx, const char *name); /* find or add */
/* Take a membership the daemon granted (own join or someone else's). */
int ctx_take_membership(pg_ctx *ctx, struct group_ref *g, const struct ctl_in *m, int *fds);
/* Forget the membership (the ref stays while it can still send). */
void ctx_drop_membership(pg_ctx *ctx, struct group_ref *g);
void ctx_drop_sender(pg_ctx *ctx, struct group_ref *g);
int ctx_check_name(const char *group);
/* Tell the daemon this ctx leaves `group`, whatever the answer. */
void ctx_leave_quiet(pg_ctx *ctx, const char *group);

/* recv.c */
void recv_disarm_all(pg_ctx *ctx);

#endif /* PG_CLIENT_H */

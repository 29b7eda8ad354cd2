/* SPDX-License-Identifier: MIT */
/*
 * The client library's internal state: a ctx, the groups it names, and one
 * object per role it has in a group — a sending handle, a membership — each
 * with a lifetime of its own.
 */
#ifndef PG_CLIENT_H
#define PG_CLIENT_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "pgroup.h"
#include "proto/ctl.h"
#include "ring/ring.h"
#include "timing.h"

/* A sending handle: the data memfd mapped writable, our writer slot and
 * the bookkeeping of our own area. Lives until the group goes down or the
 * ctx closes, but never while a claim is open in it (its buffer is there). */
struct sender {
	struct ring ring;
	struct ring_area area;
	bool claiming; /* a pg_send_claim not yet committed or aborted */
	struct ring_claim claim;
};

/*
 * A membership: the group mapped read-only, and where we read. It ends when
 * we leave, are evicted (after PG_EVICTED was returned), or the group goes
 * down; its mapping goes with it, unless pg_recv's last view points into
 * it: then it goes at the next pg_recv.
 */
struct membership {
	struct ring ring;
	struct ring_reader reader;
	/* The group's master: whose node a message is from (the ring says
	 * from_node 0); events name their member's node themselves. */
	char master[PG_NODE_MAX];
	bool fd_armed;   /* pg_fd waits on this group's wake word */
	/* Whom to ask for writers' areas as records of new writers come. */
	pg_ctx *ctx;
	struct group_ref *ref;
	/* A later membership of the same group (another process joined us
	 * again while this one was evicted): taken once this one is told. */
	struct membership *next;
};

/* A group this ctx named. Kept until pg_close: pg_message.group points at
 * its name. */
struct group_ref {
	char name[PG_GROUP_MAX + 1];
	struct group_ref *next;
	struct sender *snd;
	struct membership *mem;
	bool monitor;
};

struct pg_ctx {
	int sock;
	unsigned fork_gen;
	pid_t pid;      /* getpid() at pg_open: the fork guard's */
	int32_t dpid;   /* this process as the daemon sees it (its pid namespace) */
	bool daemon_gone;
	char node[PG_NODE_MAX];
	const struct node_alive *alive; /* the daemon's liveness page, read-only */
	uint32_t next_id;
	struct group_ref *groups;
	unsigned n_groups;
	struct group_ref *next_rr; /* where the next pg_recv starts looking */
	struct group_ref *last;    /* last group named by a send: a cheap cache */
	/* The membership pg_recv's last view points into, and the position
	 * after that record; released by the next pg_recv. */
	struct membership *held;
	struct group_ref *held_ref; /* NULL once that membership ended */
	uint64_t held_next;
	/* While pg_recv parks, it counts as a sleeper on its memberships'
	 * pages: one that ends meanwhile is freed only after the park. */
	bool parking;
	struct membership *ended;
	/* pg_close in a forked child: the shared pages are the parent's. */
	bool closing_forked;
	int64_t spin_ns;
	int64_t busy_ns; /* of spin_ns, polled without yielding ($PGROUP_BUSY_US) */
	int64_t last_drain_ns; /* last read of the control socket */
	unsigned fast_returns;  /* pg_recv calls that found a record at once */
	/* pg_fd: an io_uring whose completion queue is the readable fd. */
	bool have_uring;
	struct io_uring uring;
	bool sock_armed;
	struct ctl_out out;
	uint8_t in[CTL_MAX_BYTES];
};

/* ctx.c */
int ctx_check(pg_ctx *ctx);
/* False once the node daemon is gone (one load, no syscall). */
bool ctx_node_alive(pg_ctx *ctx);
/* A request/reply round trip. Replies carry up to 2 fds into fds[]. */
int ctx_call(pg_ctx *ctx, struct ctl_in *reply, int *fds, unsigned *nfds);
/* A round trip whose reply carries exactly one fd, put in *fd. */
int ctx_call_fd(pg_ctx *ctx, int *fd);
/* Start a request in ctx->out. */
void ctx_begin(pg_ctx *ctx, uint8_t type);
/* Send a request that has no reply. */
int ctx_notify(pg_ctx *ctx);
/* Read whatever the daemon sent unasked, without waiting. */
void ctx_drain(pg_ctx *ctx);
struct group_ref *ctx_find(pg_ctx *ctx, const char *name);
struct group_ref *ctx_ref(pg_ctx *ctx, const char *name); /* find or add */
int ctx_check_name(const char *group);

/* The ring's sizes from a daemon's reply: 0 or -EPROTO. */
int ctx_geometry(const struct ctl_in *m, struct ring_geometry *g);

/* member.c: memberships. */
/* Take a membership the daemon granted (own join or someone else's); it
 * queues behind one that ended but was not told yet. */
int member_take(pg_ctx *ctx, struct group_ref *g, const struct ctl_in *m, int *fds);
/* A writer's area the daemon sent (CTL_ASYNC_AREA): every membership of
 * `group` maps it. */
void member_area(pg_ctx *ctx, const char *group, const struct ctl_in *msg, int fd);
/* Whether g's current membership is still ours (not evicted or removed). */
bool member_current(const struct group_ref *g);
/* End g's current membership (the next queued one takes its place). */
void member_end(pg_ctx *ctx, struct group_ref *g);
/* We left: end the membership that is still ours. */
void member_end_current(pg_ctx *ctx, struct group_ref *g);
/* Tell the daemon we are done with our slot in g (leave, or "told"). */
void member_leave_quiet(pg_ctx *ctx, struct group_ref *g);
/* Free the memberships that ended while pg_recv was parked. */
void member_free_ended(pg_ctx *ctx);
/* pg_recv's previous view is done with: release it. */
void member_release_view(pg_ctx *ctx);
void member_free_all(pg_ctx *ctx, struct group_ref *g);

/* send.c */
void sender_drop(struct group_ref *g);
void sender_abort_open(struct group_ref *g);

/* recv.c */
void recv_disarm_all(pg_ctx *ctx);
void recv_disarm(struct membership *m);

#endif /* PG_CLIENT_H */

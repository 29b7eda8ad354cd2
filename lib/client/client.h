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
#include <sys/types.h>

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
	/* The group's master: whose node a message is from (the ring says
	 * from_node 0); events name their member's node themselves. */
	char master[PG_NODE_MAX];
	/* ready.c: our sleep is announced on its page (producers wake us),
	 * and a futex wait of ours on its wake word is in the ctx's io_uring
	 * (then the struct lives until that wait completes). */
	bool armed, waiting;
	/* Whom to ask for writers' areas as records of new writers come. */
	pg_ctx *ctx;
	struct group_ref *ref;
	/* A later membership of the same group (another process joined us
	 * again while this one was evicted): taken once this one is told. */
	struct membership *next;
	/* Where we read. Last: its table of writers' claim order is large
	 * and mostly untouched. */
	struct ring_reader reader;
};

/* A group this ctx named. Kept until pg_close: pg_message.group points at
 * its name. */
struct group_ref {
	char name[PG_GROUP_MAX + 1];
	struct group_ref *next;
	struct sender *snd;
	struct membership *mem;
	bool monitor;
	/* ready.c: on the ctx's active list (may have records to read). */
	bool active;
	struct group_ref *act_next, *act_prev;
	/* ctx.c: the ctx's table of names. */
	struct group_ref *hnext;
	/* bells.c: our name for it on its producers' bells, 0 until armed. */
	uint32_t token;
};

/* shelves.c: a read-only fd of one of the daemon's shelves. */
struct ctx_shelf {
	uint64_t id;
	int fd; /* -1: unused */
	uint64_t used; /* ctx->shelf_clock when last used */
};
#define CTX_SHELVES 32
/* A read-only window on one: [start, start + bytes) of shelf `shelf`;
 * `users` areas and pages point into it. */
struct ctx_window {
	uint64_t shelf;
	uint64_t start;
	uint8_t *base;
	uint64_t bytes;
	unsigned users;
	uint64_t used; /* ctx->shelf_clock when last handed out */
};
#define CTX_WINDOW_STEP (512ull << 20)
/* 2 TiB of address space at most; past it, ranges are mapped one by one. */
#define CTX_WINDOWS_MAX 2048u
/* Windows nobody points into that are kept for the next ranges: a shelf's
 * ranges only move forward, so older ones would never be used again. */
#define CTX_WINDOWS_IDLE 8u

/* bells.c: the bells of a shelf of our areas, read-write. */
struct ctx_bells {
	dev_t dev;
	ino_t ino;
	struct ring_bell *bells;
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
	/* Names to group_refs: a chained hash table, grown with n_groups. */
	struct group_ref **htab;
	unsigned hsize;
	unsigned n_mem; /* group_refs that hold a membership, about */
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
	bool closing; /* pg_close has begun: no new io_uring */
	int64_t spin_ns;   /* the poll window: fixed, or the adaptive one's cap */
	bool spin_fixed;   /* $PGROUP_SPIN_US set: no adapting */
	int64_t wait_avg_ns; /* how long pg_recv's waits for a record last */
	unsigned hits;     /* calls that found a record at once since the last wait */
	int64_t busy_ns; /* of spin_ns, polled without yielding ($PGROUP_BUSY_US) */
	int64_t last_drain_ns; /* last read of the control socket */
	unsigned fast_returns;  /* pg_recv calls that found a record at once */
	/* ready.c, for pg_fd or more than RING_WAIT_MAX groups: an io_uring
	 * whose completions are our groups' wakes (its fd is pg_fd's), and
	 * the groups that may have records. */
	bool have_uring;
	struct io_uring uring;
	bool sock_armed;
	bool sock_news; /* the daemon's socket became readable */
	unsigned cq_taken; /* completions taken, still in the queue */
	struct group_ref *active, *act_rr;
	struct membership *zombies; /* ended, their waits not yet completed */
	struct ctx_shelf shelves[CTX_SHELVES];
	uint64_t shelf_clock;
	struct ctx_window **windows;
	unsigned n_windows, cap_windows;
	struct ctx_bells *own_bells;
	unsigned n_own_bells, cap_own_bells;
	/* bells.c, the member's side: waiting on bells instead of the
	 * io_uring (on_bells), the shelves whose bells we hear, our groups
	 * by token, and the sweeps when hints were lost. */
	bool on_bells;
	bool bells_full; /* some producer we could not hear: io_uring only */
	uint32_t bell_key;
	struct bell_source *sources;
	unsigned n_sources, cap_sources;
	struct group_ref **tokens;
	uint32_t n_tokens, cap_tokens;
	int64_t bells_swept;
	bool bells_sweep_due;
	unsigned bells_polls;
	struct ctl_out out;
	uint8_t in[CTL_MAX_BYTES];
};

/* Whether the ctx waits in the many-groups way (the io_uring, or bells):
 * wakes name the groups that may have records (the active list), so
 * pg_recv looks at those, not at every group, and parks through ready.c. */
static inline bool ctx_waits_by_list(const pg_ctx *ctx)
{
	return ctx->have_uring || ctx->on_bells;
}

/* ctx.c */
int ctx_check(pg_ctx *ctx);
/* False once the node daemon is gone (one load, no syscall). */
bool ctx_node_alive(pg_ctx *ctx);
/* A request/reply round trip. Replies carry up to 2 fds into fds[]. */
int ctx_call(pg_ctx *ctx, struct ctl_in *reply, int *fds, unsigned *nfds);
/* A round trip whose reply carries exactly one fd, put in *fd. */
int ctx_call_fd(pg_ctx *ctx, int *fd, uint64_t *off);
/* Start a request in ctx->out. */
void ctx_begin(pg_ctx *ctx, uint8_t type);
/* Send a request that has no reply. */
int ctx_notify(pg_ctx *ctx);
/* Read whatever the daemon sent unasked, without waiting. */
void ctx_drain(pg_ctx *ctx);
struct group_ref *ctx_find(pg_ctx *ctx, const char *name);
struct group_ref *ctx_ref(pg_ctx *ctx, const char *name); /* find or add */
int ctx_check_name(const char *group);

/* shelves.c */
/* A new fd of shelf `id` if we keep it, else -1. */
int ctx_shelf_dup(pg_ctx *ctx, uint64_t id);
/* Where [off, off + bytes) of shelf `id` is in a window of ours (mapped
 * now if need be), or NULL: we do not keep that shelf, or the range is
 * over CTX_WINDOW_STEP. Read-only. The window counts one user more, *users
 * is its count: it stays mapped while that is not 0 (who let the range go
 * counts it down). */
const uint8_t *ctx_shelf_window(pg_ctx *ctx, uint64_t id, uint64_t off, uint64_t bytes,
				unsigned **users);
/* Keep a copy of fd as shelf `id` (the caller still owns fd). */
void ctx_shelf_keep(pg_ctx *ctx, uint64_t id, int fd);
void ctx_shelves_init(pg_ctx *ctx);
void ctx_shelves_close(pg_ctx *ctx);

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

/* bells.c */
/* The bells of the shelf fd is (our area at area_off on it), mapped once
 * per shelf; NULL if it has none or we have no memory. */
struct ring_bell *bells_own(pg_ctx *ctx, int fd, uint64_t area_off);
void bells_close(pg_ctx *ctx);
/* Bells we hear from now on: our own shelf of pages (fd, where our page
 * is) and the shelf of a writer's area (fd, or -1 for one we keep). */
void bells_own_pages(pg_ctx *ctx, int fd, uint64_t page_off);
void bells_areas(pg_ctx *ctx, uint64_t shelf, int fd);
/* Wait on bells from now on (-ENOSPC: some producer we cannot hear). */
int bells_start(pg_ctx *ctx);
/* Back to the wake words (pg_fd's io_uring waits on them). */
void bells_leave(pg_ctx *ctx);
/* g's token, made on first use; 0 without memory. */
uint32_t bells_token(pg_ctx *ctx, struct group_ref *g);
/* Take what the bells were rung with: true if any was. */
bool bells_poll(pg_ctx *ctx);
/* ready_park on bells. */
int bells_park(pg_ctx *ctx, int64_t timeout_ns);

/* send.c */
void sender_drop(struct group_ref *g);
void sender_abort_open(struct group_ref *g);

/* recv.c: whether pg_recv would find something in g now. */
bool recv_has_record(pg_ctx *ctx, struct group_ref *g);

/* ready.c */
#ifndef IORING_OP_FUTEX_WAIT
#define IORING_OP_FUTEX_WAIT 51 /* Linux 6.7; liburing 2.3 lacks it */
#endif
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32 0x02
#endif
/* A ctx in more groups than this waits through an io_uring. */
#define READY_MIN_GROUPS 16
/* Start waiting through an io_uring (pg_fd, or many groups): 0 or -errno. */
int ready_start(pg_ctx *ctx);
void ready_stop(pg_ctx *ctx);
/* g may have records: pg_recv looks at it. */
/* Every group with a membership onto the active list (a new way of waiting). */
void ready_push_all(pg_ctx *ctx);
void ready_push(pg_ctx *ctx, struct group_ref *g);
void ready_remove(pg_ctx *ctx, struct group_ref *g);
/* Take the completions not taken yet: woken groups become active again;
 * true if there were any. They leave the queue at ready_release, when
 * everything taken was looked at (so pg_fd stays readable till then). */
bool ready_reap(pg_ctx *ctx);
void ready_release(pg_ctx *ctx);
/* Arm a wait for every active group that is empty (they leave the list);
 * true if one had a record after all. */
bool ready_arm_all(pg_ctx *ctx);
/* Arm, then wait for a completion: 1 (look again), 0 (timed out), -EINTR. */
int ready_park(pg_ctx *ctx, int64_t timeout_ns);
/* Every group with something past our place (once a park slice): back
 * to the active list. */
void ready_sweep(pg_ctx *ctx);
/* Withdraw m's announced sleep. */
void ready_disarm(struct membership *m);
/* m ends: true when its wait is still in the kernel and ready.c frees it
 * later (its mappings may go now). */
bool ready_forget(struct membership *m);

#endif /* PG_CLIENT_H */

/* SPDX-License-Identifier: MIT */
/*
 * pgroup — distributed, named process groups with one total order per group.
 *
 * Every function returns 0 (or a count) on success and a negative errno on
 * failure; none prints, aborts or raises a signal. A pg_ctx is used by one
 * thread at a time. See docs/design.md and the contract for full semantics.
 */
#ifndef PGROUP_H
#define PGROUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pg_ctx pg_ctx; /* a process's handle on its local node */

#define PG_NODE_MAX 64
#define PG_GROUP_MAX 255 /* longest group name, in bytes */

typedef struct pg_member {
	char node[PG_NODE_MAX];
	pid_t pid;
} pg_member;

enum pg_kind {
	PG_MSG = 1,    /* a message sent with pg_send/pg_esend               */
	PG_JOINED,     /* `from` joined the group          (pg_monitor only)  */
	PG_LEFT,       /* `from` left (pg_leave, pg_close)  (pg_monitor only)  */
	PG_EXITED,     /* `from` terminated and was removed (pg_monitor only)  */
	PG_EVICTED,    /* this handle was removed for lagging (always)         */
	PG_GROUP_DOWN, /* the group's master node is gone, or the group was
			  deleted (always)                                      */
};

typedef struct pg_message {
	enum pg_kind kind;
	pg_member from;    /* the sender, or the member the event is about      */
	const char *group; /* valid until pg_close                              */
	uint64_t seq;      /* position in the group's order; 0 for PG_EVICTED
			      and PG_GROUP_DOWN                                 */
	const void *data;  /* valid until the next pg_recv/pg_close on this ctx */
	size_t len;
} pg_message;

typedef struct pg_group_opts { /* every field 0/NULL = default */
	const char *node;      /* master node; NULL = local                       */
	size_t ring_bytes;     /* size of the group's ring (power of two)         */
	size_t max_msg;        /* largest message; default 64 KiB                 */
	unsigned stall_ms;     /* see "Back-pressure"; default 1000               */
	mode_t mode;           /* r = join/receive/list, w = send; default 0600   */
	/* Memberships the group can hold on its master's node at once (each
	 * other node holds 1024 of its own); default 1024, at most 65,536,
	 * rounded up to a multiple of 128. Each slot costs 96 bytes of the
	 * group's shared memory (address space until used), 22 bytes in each
	 * sender once held, its member's 4 KiB page while held. */
	unsigned member_slots;
} pg_group_opts;

/* Connect to the node daemon; NULL = the default socket. */
int pg_open(pg_ctx **ctx, const char *socket_path);
/* Leave every group this ctx joined (PG_LEFT) and free it. */
void pg_close(pg_ctx *ctx);

int pg_create(pg_ctx *ctx, const char *group);
int pg_create_on(pg_ctx *ctx, const char *group, const char *node);
int pg_create_opts(pg_ctx *ctx, const char *group, const pg_group_opts *opts);
int pg_delete(pg_ctx *ctx, const char *group);

/* pid 0 = this ctx. *old (free() it) lists the members before the join. */
int pg_join(pg_ctx *ctx, const char *group, pid_t pid, pg_member **old, size_t *n_old);
int pg_leave(pg_ctx *ctx, const char *group, pid_t pid);
int pg_members(pg_ctx *ctx, const char *group, pg_member **out, size_t *n);
int pg_monitor(pg_ctx *ctx, const char *group);

int pg_send(pg_ctx *ctx, const char *group, const void *data, size_t len);
int pg_esend(pg_ctx *ctx, const char *group, const void *data, size_t len);
int pg_trysend(pg_ctx *ctx, const char *group, const void *data, size_t len);
/* Zero-copy send: claim len bytes in the ring, fill *buf, then commit or abort. */
int pg_send_claim(pg_ctx *ctx, const char *group, size_t len, void **buf);
int pg_send_commit(pg_ctx *ctx, void *buf);
int pg_send_abort(pg_ctx *ctx, void *buf);

/* timeout_ms: -1 waits without limit, 0 polls. */
int pg_recv(pg_ctx *ctx, pg_message *msg, int timeout_ms);
/* Readable when pg_recv has something: for poll/epoll. Owned by the ctx. */
int pg_fd(pg_ctx *ctx);
const char *pg_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif /* PGROUP_H */

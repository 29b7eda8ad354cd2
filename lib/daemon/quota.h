/* SPDX-License-Identifier: MIT */
/*
 * Per-uid quotas: no local user can starve the node. Each uid's groups, ring
 * memory, handles and memberships are counted; a request over the uid's
 * limit is -EDQUOT, over the node's ring memory -ENOSPC. Root is counted but
 * never refused.
 */
#ifndef PG_DAEMON_QUOTA_H
#define PG_DAEMON_QUOTA_H

#include <stdint.h>
#include <sys/types.h>

/* Defaults for a shared host: generous for one program, small against the
 * host for one user. */
#define PGD_DEFAULT_MAX_GROUPS 1024u
#define PGD_DEFAULT_MAX_RING_BYTES (4ull << 30)
#define PGD_DEFAULT_MAX_HANDLES 4096u
#define PGD_DEFAULT_MAX_MEMBERSHIPS 16384u

struct pgd_limits {
	unsigned groups;	  /* groups a uid may own */
	uint64_t ring_bytes;	  /* ring memory a uid's groups and sending may hold */
	unsigned handles;	  /* open handles (pg_ctx) of a uid */
	unsigned memberships;	  /* memberships of a uid's processes */
	uint64_t node_ring_bytes; /* ring memory of the whole node; 0 = half the RAM */
};

enum quota_kind {
	QUOTA_GROUPS,
	QUOTA_RING_BYTES,
	QUOTA_HANDLES,
	QUOTA_MEMBERSHIPS,
};

struct quota_use {
	uid_t uid;
	uint64_t used[4]; /* by enum quota_kind */
	struct quota_use *next;
};

struct quota {
	struct pgd_limits lim;
	uint64_t node_ring_used;
	struct quota_use *uids;
};

void quota_init(struct quota *q, const struct pgd_limits *lim);
void quota_fini(struct quota *q);
/* Take `n` of kind `k` for `uid`: 0, -EDQUOT (the uid's limit), -ENOSPC
 * (the node's ring memory), -ENOMEM. */
int quota_take(struct quota *q, uid_t uid, enum quota_kind k, uint64_t n);
void quota_give(struct quota *q, uid_t uid, enum quota_kind k, uint64_t n);

#endif /* PG_DAEMON_QUOTA_H */

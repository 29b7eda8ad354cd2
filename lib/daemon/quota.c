// SPDX-License-Identifier: MIT
/* Per-uid quotas and the node's ring memory cap: counting, no policy beyond
 * the limits themselves. */
#include "quota.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

void quota_init(struct quota *q, const struct pgd_limits *lim)
{
	q->lim = *lim;
	if (!q->lim.groups)
		q->lim.groups = PGD_DEFAULT_MAX_GROUPS;
	if (!q->lim.ring_bytes)
		q->lim.ring_bytes = PGD_DEFAULT_MAX_RING_BYTES;
	if (!q->lim.handles)
		q->lim.handles = PGD_DEFAULT_MAX_HANDLES;
	if (!q->lim.memberships)
		q->lim.memberships = PGD_DEFAULT_MAX_MEMBERSHIPS;
	if (!q->lim.node_ring_bytes) {
		long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
		q->lim.node_ring_bytes =
		    pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 2 : 1ull << 32;
	}
	q->node_ring_used = 0;
	q->uids = NULL;
}

void quota_fini(struct quota *q)
{
	while (q->uids) {
		struct quota_use *u = q->uids;
		q->uids = u->next;
		free(u);
	}
}

static struct quota_use *find(const struct quota *q, uid_t uid)
{
	for (struct quota_use *u = q->uids; u; u = u->next)
		if (u->uid == uid)
			return u;
	return NULL;
}

static uint64_t limit_of(const struct quota *q, enum quota_kind k)
{
	switch (k) {
	case QUOTA_GROUPS:
		return q->lim.groups;
	case QUOTA_RING_BYTES:
		return q->lim.ring_bytes;
	case QUOTA_HANDLES:
		return q->lim.handles;
	default:
		return q->lim.memberships;
	}
}

int quota_take(struct quota *q, uid_t uid, enum quota_kind k, uint64_t n)
{
	struct quota_use *u = find(q, uid);
	if (!u) {
		if (!(u = calloc(1, sizeof(*u))))
			return -ENOMEM;
		u->uid = uid;
		u->next = q->uids;
		q->uids = u;
	}
	/* Root is never locked out: counted, not refused. */
	if (uid != 0) {
		if (u->used[k] + n > limit_of(q, k))
			return -EDQUOT;
		if (k == QUOTA_RING_BYTES && q->node_ring_used + n > q->lim.node_ring_bytes)
			return -ENOSPC;
	}
	u->used[k] += n;
	if (k == QUOTA_RING_BYTES)
		q->node_ring_used += n;
	return 0;
}

void quota_give(struct quota *q, uid_t uid, enum quota_kind k, uint64_t n)
{
	struct quota_use *u = find(q, uid);
	if (!u)
		return;
	u->used[k] = u->used[k] > n ? u->used[k] - n : 0;
	if (k == QUOTA_RING_BYTES)
		q->node_ring_used = q->node_ring_used > n ? q->node_ring_used - n : 0;
}

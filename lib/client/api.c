// SPDX-License-Identifier: MIT
/* The RPC side of the API: create, delete, join, leave, members, monitor. */
#include <errno.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "ring/wait.h"

/* Common prologue: the ctx is usable and the name is well formed. */
static int start(pg_ctx *ctx, const char *group, uint8_t type)
{
	int err = ctx_check(ctx);
	if (err)
		return err;
	if ((err = ctx_check_name(group)))
		return err;
	if (ctx->daemon_gone)
		return -ENOTCONN;
	ctx_begin(ctx, type);
	ctl_put_str(&ctx->out, CTL_T_NAME, group);
	return 0;
}

int pg_create_opts(pg_ctx *ctx, const char *group, const pg_group_opts *o)
{
	int err = start(ctx, group, CTL_CREATE);
	if (err)
		return err;
	if (o) {
		if (o->node) {
			if (ctl_check_node(o->node, strnlen(o->node, PG_NODE_MAX)))
				return -EINVAL;
			ctl_put_str(&ctx->out, CTL_T_NODE, o->node);
		}
		if (o->ring_bytes)
			ctl_put_u64(&ctx->out, CTL_T_RING, o->ring_bytes);
		if (o->max_msg)
			ctl_put_u64(&ctx->out, CTL_T_MAXMSG, o->max_msg);
		if (o->stall_ms)
			ctl_put_u32(&ctx->out, CTL_T_STALL, o->stall_ms);
		if (o->mode) {
			if (o->mode & ~(mode_t)0777)
				return -EINVAL;
			ctl_put_u32(&ctx->out, CTL_T_MODE, (uint32_t)o->mode);
		}
		if (o->member_slots) {
			if (o->member_slots > RING_MEMBER_SLOTS_MAX)
				return -EINVAL;
			/* At least what was asked: whole pages of tables. */
			uint32_t n = (o->member_slots + RING_MEMBER_SLOTS_STEP - 1) /
				     RING_MEMBER_SLOTS_STEP * RING_MEMBER_SLOTS_STEP;
			ctl_put_u32(&ctx->out, CTL_T_MEMBER_SLOTS, n);
		}
	}
	struct ctl_in r;
	return ctx_call(ctx, &r, NULL, NULL);
}

int pg_create(pg_ctx *ctx, const char *group)
{
	return pg_create_opts(ctx, group, NULL);
}

int pg_create_on(pg_ctx *ctx, const char *group, const char *node)
{
	if (!node)
		return -EINVAL;
	pg_group_opts o = {.node = node};
	return pg_create_opts(ctx, group, &o);
}

int pg_delete(pg_ctx *ctx, const char *group)
{
	int err = start(ctx, group, CTL_DELETE);
	if (err)
		return err;
	struct ctl_in r;
	return ctx_call(ctx, &r, NULL, NULL);
}

/* Decode the CTL_T_MEMBER fields of a reply into a malloc'd array. */
static int member_list(const struct ctl_in *r, pg_member **out, size_t *n_out)
{
	size_t n = 0, cur = 0, len;
	const void *v;
	while (ctl_next(r, CTL_T_MEMBER, &cur, &v, &len) == 1)
		n++;
	pg_member *list = NULL;
	if (n) {
		list = calloc(n, sizeof(*list));
		if (!list)
			return -ENOMEM;
	}
	cur = 0;
	for (size_t i = 0; i < n; i++) {
		ctl_next(r, CTL_T_MEMBER, &cur, &v, &len);
		int32_t pid;
		if (ctl_member(v, len, &pid, list[i].node, sizeof(list[i].node))) {
			free(list);
			return -EPROTO;
		}
		list[i].pid = pid;
	}
	*out = list;
	*n_out = n;
	return 0;
}

/* One JOIN request: the reply, and the membership's fds if it is ours. */
static int join_once(pg_ctx *ctx, const char *group, pid_t pid, struct ctl_in *r, int *fds,
		     unsigned *nfds)
{
	int err = start(ctx, group, CTL_JOIN);
	if (err)
		return err;
	ctl_put_u32(&ctx->out, CTL_T_PID, (uint32_t)pid);
	*nfds = CTL_MAX_FDS;
	return ctx_call(ctx, r, fds, nfds);
}

int pg_join(pg_ctx *ctx, const char *group, pid_t pid, pg_member **old, size_t *n_old)
{
	if (pid < 0)
		return -EINVAL;
	int err = start(ctx, group, CTL_JOIN);
	if (err)
		return err;
	struct group_ref *g = ctx_find(ctx, group);
	if (pid == 0 && g && member_current(g))
		return -EALREADY;
	struct ctl_in r;
	int fds[CTL_MAX_FDS];
	unsigned nfds;
	/* -ENOBUFS: events wait for room in the order; the node evicts the
	 * member holding it after the group's stall limit, so wait that out. */
	int64_t until = ring_now_ns() + (int64_t)PG_JOIN_WAIT_MS * PG_MS;
	while ((err = join_once(ctx, group, pid, &r, fds, &nfds)) == -ENOBUFS &&
	       ring_now_ns() < until) {
		struct timespec ts = {0, PG_JOIN_RETRY_NS};
		if (nanosleep(&ts, NULL) < 0 && errno == EINTR)
			return -EINTR;
	}
	if (err)
		return err;
	pg_member *list = NULL;
	size_t n = 0;
	err = member_list(&r, &list, &n);
	if (nfds == 3) {
		/* Our own membership (pid 0, or our own pid when this ctx is
		 * our first handle): map the ring at the place the daemon gave
		 * us (our JOINED record). */
		g = ctx_ref(ctx, group);
		int merr = g ? member_take(ctx, g, &r, fds) : -ENOMEM;
		if (!g)
			for (unsigned i = 0; i < nfds; i++)
				close(fds[i]);
		if (merr) {
			free(list);
			/* Undo the daemon's side; the reply said we joined. */
			start(ctx, group, CTL_LEAVE);
			ctl_put_u32(&ctx->out, CTL_T_PID, 0);
			ctx_call(ctx, &r, NULL, NULL);
			return merr;
		}
	} else {
		for (unsigned i = 0; i < nfds; i++)
			close(fds[i]);
	}
	if (err)
		return err;
	if (old && n_old) {
		*old = list;
		*n_old = n;
	} else {
		free(list);
	}
	return 0;
}

int pg_leave(pg_ctx *ctx, const char *group, pid_t pid)
{
	if (pid < 0)
		return -EINVAL;
	int err = start(ctx, group, CTL_LEAVE);
	if (err)
		return err;
	ctl_put_u32(&ctx->out, CTL_T_PID, (uint32_t)pid);
	struct ctl_in r;
	err = ctx_call(ctx, &r, NULL, NULL);
	if (err)
		return err;
	struct group_ref *g = ctx_find(ctx, group);
	if (g && (pid == 0 || pid == ctx->dpid))
		member_end_current(ctx, g);
	return 0;
}

int pg_members(pg_ctx *ctx, const char *group, pg_member **out, size_t *n)
{
	if (!out || !n)
		return -EINVAL;
	int err = start(ctx, group, CTL_MEMBERS);
	if (err)
		return err;
	struct ctl_in r;
	err = ctx_call(ctx, &r, NULL, NULL);
	if (err)
		return err;
	return member_list(&r, out, n);
}

int pg_monitor(pg_ctx *ctx, const char *group)
{
	int err = start(ctx, group, CTL_MONITOR);
	if (err)
		return err;
	struct ctl_in r;
	err = ctx_call(ctx, &r, NULL, NULL);
	if (err)
		return err;
	/* Events reach this ctx through its membership, now or later. */
	struct group_ref *g = ctx_ref(ctx, group);
	if (!g)
		return -ENOMEM;
	g->monitor = true;
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * pgroup groups: every group with its master, members, ring fill, the
 * slowest member's lag, and for a group mastered here each member node's lag. Not in the public API (an operator's view), so it
 * speaks the control protocol directly.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "groups.h"
#include "proto/ctl.h"

static struct ctl_out req;
static uint8_t buf[CTL_MAX_BYTES];

/* One page of the listing: groups created before `below`. */
static int ask(int fd, uint64_t below, struct ctl_in *rep)
{
	ctl_begin(&req, CTL_GROUPS, 1, 0);
	ctl_put_u64(&req, CTL_T_CURSOR, below);
	ctl_end(&req);
	return cli_ctl_ask(fd, &req, buf, sizeof(buf), rep);
}

static void print_group(struct cli *c, const struct ctl_group_info *info,
			const struct ctl_node_lag *lags, const char *name, int nlen, bool first)
{
	if (c->json) {
		printf("%s{\"group\":", first ? "" : ",");
		cli_json_str(name, (size_t)nlen);
		printf(",\"master\":");
		cli_json_str(info->master, strlen(info->master));
		printf(",\"members\":%u,\"ring_bytes\":%llu,\"fill\":%llu,\"lag\":%llu,"
		       "\"mode\":\"%04o\",\"owner\":%u,\"memory\":%llu,\"nodes\":[",
		       info->members, (unsigned long long)info->ring_bytes,
		       (unsigned long long)info->fill, (unsigned long long)info->lag, info->mode,
		       info->owner, (unsigned long long)info->memory);
		for (uint32_t i = 0; i < info->n_nodes; i++) {
			printf("%s{\"node\":", i ? "," : "");
			cli_json_str(lags[i].node, strlen(lags[i].node));
			printf(",\"unshipped\":%llu,\"unread\":%llu}",
			       (unsigned long long)lags[i].unshipped,
			       (unsigned long long)lags[i].unread);
		}
		printf("]}");
		return;
	}
	printf("%-24.*s %-16s %8u %10llu %10llu %10llu %8u %10llu\n", nlen, name, info->master,
	       info->members, (unsigned long long)info->ring_bytes, (unsigned long long)info->fill,
	       (unsigned long long)info->lag, info->owner, (unsigned long long)info->memory);
	/* The master's view of each node with members: records not sent to
	 * it yet, and sent but not yet read by all its members. */
	for (uint32_t i = 0; i < info->n_nodes; i++)
		printf("  node %-16s unshipped %llu, unread there %llu\n", lags[i].node,
		       (unsigned long long)lags[i].unshipped, (unsigned long long)lags[i].unread);
}

int groups_fetch(int fd, struct group_row **out, size_t *n_out)
{
	struct group_row *rows = NULL;
	size_t n = 0, cap = 0;
	size_t len;
	const void *v;
	int err = 0;
	/* Page by page until the daemon says there is no more. */
	for (uint64_t below = UINT64_MAX; !err;) {
		struct ctl_in rep;
		size_t cur = 0;
		if ((err = ask(fd, below, &rep)))
			break;
		while (!err && ctl_next(&rep, CTL_T_GROUP, &cur, &v, &len) == 1) {
			if (n == cap) {
				size_t ncap = cap ? 2 * cap : 64;
				struct group_row *t = realloc(rows, ncap * sizeof(*rows));
				if (!t) {
					err = -ENOMEM;
					break;
				}
				rows = t;
				cap = ncap;
			}
			struct group_row *r = &rows[n];
			if (len < sizeof(r->info)) {
				err = -EPROTO;
				break;
			}
			memcpy(&r->info, v, sizeof(r->info));
			size_t lag_bytes = (size_t)r->info.n_nodes * sizeof(r->lags[0]);
			if (r->info.n_nodes > CTL_NODE_LAGS_MAX || len - sizeof(r->info) < lag_bytes ||
			    len - sizeof(r->info) - lag_bytes > PG_GROUP_MAX) {
				err = -EPROTO;
				break;
			}
			memcpy(r->lags, (const uint8_t *)v + sizeof(r->info), lag_bytes);
			r->info.master[sizeof(r->info.master) - 1] = 0;
			for (uint32_t i = 0; i < r->info.n_nodes; i++)
				r->lags[i].node[sizeof(r->lags[i].node) - 1] = 0;
			size_t name_at = sizeof(r->info) + lag_bytes;
			memcpy(r->name, (const uint8_t *)v + name_at, len - name_at);
			r->name[len - name_at] = 0;
			n++;
		}
		uint64_t next;
		if (err || ctl_get_u64(&rep, CTL_T_TRUNCATED, &next) || next >= below)
			break;
		below = next;
	}
	if (err) {
		free(rows);
		return err;
	}
	*out = rows;
	*n_out = n;
	return 0;
}

int cli_groups(struct cli *c)
{
	int fd = cli_ctl_open(c);
	if (fd < 0)
		return cli_fail("groups", fd);
	struct group_row *rows;
	size_t n;
	int err = groups_fetch(fd, &rows, &n);
	close(fd);
	if (err)
		return cli_fail("groups", err);
	if (c->json)
		putchar('[');
	else
		printf("%-24s %-16s %8s %10s %10s %10s %8s %10s\n", "GROUP", "MASTER", "MEMBERS",
		       "RING", "FILL", "LAG", "OWNER", "MEMORY");
	for (size_t i = 0; i < n; i++)
		print_group(c, &rows[i].info, rows[i].lags, rows[i].name, (int)strlen(rows[i].name),
			    i == 0);
	free(rows);
	if (c->json)
		puts("]");
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * pgroup groups: every group with its master, members, ring fill and the
 * slowest member's lag. Not in the public API (an operator's view), so it
 * speaks the control protocol directly.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "proto/ctl.h"
#include "proto/path.h"

static struct ctl_out req;
static uint8_t buf[CTL_MAX_BYTES];

/* One page of the listing: groups created before `below`. */
static int ask(int fd, uint64_t below, struct ctl_in *rep)
{
	ctl_begin(&req, CTL_GROUPS, 1, 0);
	ctl_put_u64(&req, CTL_T_CURSOR, below);
	ctl_end(&req);
	int err = ctl_send(fd, &req, NULL, 0);
	if (!err) {
		int fds[CTL_MAX_FDS];
		unsigned nfds = 0;
		ssize_t n = ctl_recv(fd, buf, sizeof(buf), fds, &nfds, 0);
		err = n <= 0 ? (n ? (int)n : -ENOTCONN) : ctl_parse(rep, buf, (size_t)n);
		if (!err && rep->hdr.type != (CTL_GROUPS | CTL_REPLY))
			err = -EPROTO;
		if (!err)
			err = rep->hdr.status;
	}
	return err;
}

static void print_group(struct cli *c, const struct ctl_group_info *info, const char *name,
			int nlen, bool first)
{
	if (c->json) {
		printf("%s{\"group\":", first ? "" : ",");
		cli_json_str(name, (size_t)nlen);
		printf(",\"master\":");
		cli_json_str(info->master, strlen(info->master));
		printf(",\"members\":%u,\"ring_bytes\":%llu,\"fill\":%llu,\"lag\":%llu,"
		       "\"mode\":\"%04o\",\"owner\":%u,\"memory\":%llu}",
		       info->members, (unsigned long long)info->ring_bytes,
		       (unsigned long long)info->fill, (unsigned long long)info->lag, info->mode,
		       info->owner, (unsigned long long)info->memory);
	} else {
		printf("%-24.*s %-16s %8u %10llu %10llu %10llu %8u %10llu\n", nlen, name,
		       info->master, info->members, (unsigned long long)info->ring_bytes,
		       (unsigned long long)info->fill, (unsigned long long)info->lag, info->owner,
		       (unsigned long long)info->memory);
	}
}

int cli_groups(struct cli *c)
{
	char path[108];
	pg_ctx *ctx;
	/* Through the library first: it finds (or starts) the daemon. */
	int err = cli_open(c, &ctx);
	if (err)
		return cli_fail("cannot reach the daemon", err);
	pg_close(ctx);
	if (c->socket)
		snprintf(path, sizeof(path), "%s", c->socket);
	else if ((err = ctl_default_socket(path, sizeof(path))))
		return cli_fail("socket path", err);
	int fd = ctl_connect(path);
	if (fd < 0)
		return cli_fail("groups", fd);
	size_t len;
	const void *v;
	bool first = true;
	if (c->json)
		putchar('[');
	else
		printf("%-24s %-16s %8s %10s %10s %10s %8s %10s\n", "GROUP", "MASTER", "MEMBERS",
		       "RING", "FILL", "LAG", "OWNER", "MEMORY");
	/* Page by page until the daemon says there is no more. */
	for (uint64_t below = UINT64_MAX;;) {
		struct ctl_in rep;
		size_t cur = 0;
		if ((err = ask(fd, below, &rep))) {
			close(fd);
			return cli_fail("groups", err);
		}
		while (ctl_next(&rep, CTL_T_GROUP, &cur, &v, &len) == 1) {
			struct ctl_group_info info;
			if (len < sizeof(info) || len - sizeof(info) > 255) {
				close(fd);
				return cli_fail("groups", -EPROTO);
			}
			memcpy(&info, v, sizeof(info));
			info.master[sizeof(info.master) - 1] = 0;
			print_group(c, &info, (const char *)v + sizeof(info),
				    (int)(len - sizeof(info)), first);
			first = false;
		}
		uint64_t next;
		if (ctl_get_u64(&rep, CTL_T_TRUNCATED, &next) || next >= below)
			break;
		below = next;
	}
	close(fd);
	if (c->json)
		puts("]");
	return 0;
}

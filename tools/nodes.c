// SPDX-License-Identifier: MIT
/*
 * pgroup nodes: this node and every node it links to, with each link's
 * state, heartbeat round trip and lag. An operator's view (not in the
 * public API): it speaks the control protocol directly.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "proto/ctl.h"

static struct ctl_out req;
static uint8_t buf[CTL_MAX_BYTES];

static const char *state_name(uint32_t s)
{
	static const char *names[] = {"down", "linking", "probation", "up", "self"};
	return s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

static void print_node(struct cli *c, const struct ctl_node_info *n, bool first)
{
	if (c->json) {
		printf("%s{\"node\":", first ? "" : ",");
		cli_json_str(n->name, strlen(n->name));
		printf(",\"addr\":");
		cli_json_str(n->addr, strlen(n->addr));
		printf(",\"state\":\"%s\",\"configured\":%s,\"encrypted\":%s,\"rtt_us\":%.1f,"
		       "\"lag_us\":%.1f,\"heard_ms\":%.1f,\"since_ms\":%.1f,\"queued\":%llu,"
		       "\"tx_bytes\":%llu,\"rx_bytes\":%llu}",
		       state_name(n->state), n->flags & CTL_NODE_F_CONFIGURED ? "true" : "false",
		       n->flags & CTL_NODE_F_ENCRYPTED ? "true" : "false", n->rtt_ns / 1e3,
		       n->lag_ns / 1e3, n->heard_ns / 1e6, n->since_ns / 1e6,
		       (unsigned long long)n->queued, (unsigned long long)n->tx_bytes,
		       (unsigned long long)n->rx_bytes);
		return;
	}
	if (n->state == CTL_NODE_SELF) {
		printf("%-20s %-9s %-22s %9s %9s %9s %10s %12s %12s\n", n->name, "self",
		       n->addr[0] ? n->addr : "-", "-", "-", "-", "-", "-", "-");
		return;
	}
	printf("%-20s %-9s %-22s %9.1f %9.1f %9.1f %10llu %12llu %12llu\n",
	       n->name[0] ? n->name : "?", state_name(n->state), n->addr[0] ? n->addr : "-",
	       n->rtt_ns / 1e3, n->lag_ns / 1e3, n->heard_ns / 1e6,
	       (unsigned long long)n->queued, (unsigned long long)n->tx_bytes,
	       (unsigned long long)n->rx_bytes);
}

int cli_nodes(struct cli *c)
{
	int fd = cli_ctl_open(c);
	if (fd < 0)
		return cli_fail("nodes", fd);
	struct ctl_in rep;
	ctl_begin(&req, CTL_NODES, 1, 0);
	ctl_end(&req);
	int err = cli_ctl_ask(fd, &req, buf, sizeof(buf), &rep);
	close(fd);
	if (err)
		return cli_fail("nodes", err);
	if (c->json)
		putchar('[');
	else
		printf("%-20s %-9s %-22s %9s %9s %9s %10s %12s %12s\n", "NODE", "STATE", "ADDRESS",
		       "RTT_US", "LAG_US", "HEARD_MS", "QUEUED", "TX_BYTES", "RX_BYTES");
	size_t cur = 0, len;
	const void *v;
	bool first = true;
	while (ctl_next(&rep, CTL_T_NODEINFO, &cur, &v, &len) == 1) {
		struct ctl_node_info n;
		if (len != sizeof(n))
			return cli_fail("nodes", -EPROTO);
		memcpy(&n, v, sizeof(n));
		n.name[sizeof(n.name) - 1] = 0;
		n.addr[sizeof(n.addr) - 1] = 0;
		print_node(c, &n, first);
		first = false;
	}
	if (c->json)
		puts("]");
	return 0;
}

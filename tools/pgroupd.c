// SPDX-License-Identifier: MIT
/* pgroupd: the node daemon. Flags in, pgd_run out. */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "size.h"

static void usage(FILE *f)
{
	fputs("usage: pgroupd [--node NAME] [--socket PATH] [--listen HOST:PORT]\n"
	      "               [--peer HOST:PORT]... [--cookie-file FILE] [--no-bpf]\n"
	      "               [--max-groups N] [--max-ring-memory BYTES] [--max-handles N]\n"
	      "               [--max-memberships N] [--max-node-memory BYTES]\n"
	      "               [--no-encrypt] [--link-timeout MS]\n"
	      "The pgroup node daemon: stays in the foreground, logs to stderr.\n"
	      "Node links: --listen for other nodes, --peer to reach one (it tells the rest);\n"
	      "they prove the shared cookie (--cookie-file, default per user, created 0600)\n"
	      "and are encrypted unless both sides say --no-encrypt. A node silent for\n"
	      "--link-timeout (default 1000 ms) is lost.\n"
	      "Limits are per uid (root is never refused): groups it owns (default 1024),\n"
	      "ring memory its groups and sending hold (4G), handles (4096), memberships\n"
	      "(16384); and the ring memory of the whole node (default: half the RAM).\n",
	      f);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"node", required_argument, NULL, 'n'},
		{"socket", required_argument, NULL, 's'},
		{"listen", required_argument, NULL, 'l'},
		{"peer", required_argument, NULL, 'p'},
		{"cookie-file", required_argument, NULL, 'c'},
		{"no-bpf", no_argument, NULL, 'B'},
		{"no-encrypt", no_argument, NULL, 'E'},
		{"link-timeout", required_argument, NULL, 'T'},
		{"max-groups", required_argument, NULL, 'G'},
		{"max-ring-memory", required_argument, NULL, 'R'},
		{"max-handles", required_argument, NULL, 'H'},
		{"max-memberships", required_argument, NULL, 'M'},
		{"max-node-memory", required_argument, NULL, 'N'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct pgd_opts o = {0};
	static const char *peers[64];
	size_t v;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o.node = optarg;
			break;
		case 's':
			o.socket_path = optarg;
			break;
		case 'B':
			o.no_bpf = true;
			break;
		case 'G':
		case 'R':
		case 'H':
		case 'M':
		case 'N':
			if (!cli_size(optarg, &v) || v == 0 || ((c == 'G' || c == 'H' || c == 'M') &&
							       v > UINT32_MAX)) {
				fprintf(stderr, "pgroupd: bad limit '%s'\n", optarg);
				return 2;
			}
			if (c == 'G')
				o.limits.groups = (unsigned)v;
			else if (c == 'R')
				o.limits.ring_bytes = v;
			else if (c == 'H')
				o.limits.handles = (unsigned)v;
			else if (c == 'M')
				o.limits.memberships = (unsigned)v;
			else
				o.limits.node_ring_bytes = v;
			break;
		case 'l':
			o.listen = optarg;
			break;
		case 'p':
			if (o.n_peers == sizeof(peers) / sizeof(peers[0])) {
				fprintf(stderr, "pgroupd: at most 64 --peer\n");
				return 2;
			}
			peers[o.n_peers++] = optarg;
			o.peers = peers;
			break;
		case 'c':
			o.cookie_file = optarg;
			break;
		case 'E':
			o.no_encrypt = true;
			break;
		case 'T':
			if (!cli_size(optarg, &v) || v < 100 || v > 600000) {
				fprintf(stderr, "pgroupd: --link-timeout: 100..600000 ms\n");
				return 2;
			}
			o.link_timeout_ms = (unsigned)v;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pgroupd: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	int err = pgd_run(&o);
	if (err) {
		fprintf(stderr, "pgroupd: %s\n", strerror(-err));
		return 1;
	}
	return 0;
}

// SPDX-License-Identifier: MIT
/* pgroupd: the node daemon. Flags in, pgd_run out. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"

static void usage(FILE *f)
{
	fputs("usage: pgroupd [--node NAME] [--socket PATH] [--listen HOST:PORT]\n"
	      "               [--peer HOST:PORT]... [--cookie-file FILE] [--no-bpf]\n"
	      "The pgroup node daemon: stays in the foreground, logs to stderr.\n",
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
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct pgd_opts o = {0};
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
		case 'l':
		case 'p':
		case 'c':
			fprintf(stderr, "pgroupd: --%s: node links are not built yet\n",
				c == 'l' ? "listen" : c == 'p' ? "peer" : "cookie-file");
			return 2;
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

// SPDX-License-Identifier: MIT
/* pgroup: the command-line tool. Each sub-command is a thin use of the API. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
	fputs("usage: pgroup [--socket PATH] [--json] COMMAND [ARGS]\n"
	      "  create GROUP [--node NODE] [--mode MODE] [--ring BYTES] [--max-msg BYTES]\n"
	      "               [--stall-ms MS] [--member-slots N]\n"
	      "  delete GROUP\n"
	      "  join GROUP [--monitor]   print each message received until killed\n"
	      "  send GROUP MESSAGE       esend GROUP MESSAGE\n"
	      "  members GROUP            groups (master, members, ring fill, lag)\n"
	      "  nodes                    this node and the nodes it links to (state, rtt, lag)\n"
	      "  top                      the node's groups live: msg/s in and out, lag, who is\n"
	      "                           slowest, evictions, cancels (q quits; --json: once)\n"
	      "  bench [options]          the fan-out benchmark (pgroup bench --help)\n"
	      "  demo [options]           local fan-out demo (pgroup demo --help)\n"
	      "BYTES take k, M, G suffixes. With no --socket and no daemon listening on\n"
	      "the default socket, pgroup starts one.\n",
	      f);
}

static int cmd_create(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"node", required_argument, NULL, 'n'},
		{"mode", required_argument, NULL, 'm'},
		{"ring", required_argument, NULL, 'r'},
		{"max-msg", required_argument, NULL, 'x'},
		{"stall-ms", required_argument, NULL, 's'},
		{"member-slots", required_argument, NULL, 'M'},
		{0},
	};
	pg_group_opts o = {0};
	int ch;
	char *end;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			o.node = optarg;
			break;
		case 'm':
			o.mode = (mode_t)strtoul(optarg, &end, 8);
			if (*end || end == optarg || o.mode > 0777 || o.mode == 0) {
				fprintf(stderr, "pgroup: --mode takes octal 1..0777\n");
				return 2;
			}
			break;
		case 'r':
			if (!cli_size(optarg, &o.ring_bytes)) {
				fprintf(stderr, "pgroup: --ring takes a size such as 1M\n");
				return 2;
			}
			break;
		case 'x':
			if (!cli_size(optarg, &o.max_msg)) {
				fprintf(stderr, "pgroup: --max-msg takes a size such as 64k\n");
				return 2;
			}
			break;
		case 's':
			o.stall_ms = (unsigned)strtoul(optarg, &end, 10);
			if (*end || end == optarg) {
				fprintf(stderr, "pgroup: --stall-ms takes milliseconds\n");
				return 2;
			}
			break;
		case 'M':
			o.member_slots = (unsigned)strtoul(optarg, &end, 10);
			if (*end || end == optarg || o.member_slots == 0 || o.member_slots > 65536) {
				fprintf(stderr, "pgroup: --member-slots takes 1..65536\n");
				return 2;
			}
			break;
		default:
			return 2;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "pgroup: usage: pgroup create GROUP [options]\n");
		return 2;
	}
	pg_ctx *ctx;
	int err = cli_open(c, &ctx);
	if (err)
		return cli_fail("cannot reach the daemon", err);
	err = pg_create_opts(ctx, argv[optind], &o);
	pg_close(ctx);
	return err ? cli_fail(argv[optind], err) : 0;
}

/* delete, send, esend: one group, maybe one message. */
static int cmd_simple(struct cli *c, const char *cmd, int argc, char **argv)
{
	bool has_msg = strcmp(cmd, "delete") != 0;
	if (argc != (has_msg ? 3 : 2)) {
		fprintf(stderr, "pgroup: usage: pgroup %s GROUP%s\n", cmd,
			has_msg ? " MESSAGE" : "");
		return 2;
	}
	pg_ctx *ctx;
	int err = cli_open(c, &ctx);
	if (err)
		return cli_fail("cannot reach the daemon", err);
	const char *g = argv[1];
	if (!has_msg)
		err = pg_delete(ctx, g);
	else if (strcmp(cmd, "send") == 0)
		err = pg_send(ctx, g, argv[2], strlen(argv[2]));
	else
		err = pg_esend(ctx, g, argv[2], strlen(argv[2]));
	pg_close(ctx);
	return err ? cli_fail(g, err) : 0;
}

static void print_member(const struct cli *c, const pg_member *m, bool last)
{
	if (c->json) {
		printf("{\"node\":");
		cli_json_str(m->node, strlen(m->node));
		printf(",\"pid\":%d}%s", (int)m->pid, last ? "" : ",");
	} else {
		printf("%s %d\n", m->node, (int)m->pid);
	}
}

static int cmd_members(struct cli *c, int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "pgroup: usage: pgroup members GROUP\n");
		return 2;
	}
	pg_ctx *ctx;
	pg_member *m;
	size_t n;
	int err = cli_open(c, &ctx);
	if (err)
		return cli_fail("cannot reach the daemon", err);
	err = pg_members(ctx, argv[1], &m, &n);
	pg_close(ctx);
	if (err)
		return cli_fail(argv[1], err);
	if (c->json)
		putchar('[');
	for (size_t i = 0; i < n; i++)
		print_member(c, &m[i], i + 1 == n);
	if (c->json)
		puts("]");
	free(m);
	return 0;
}

static volatile sig_atomic_t stop;
static void on_stop(int sig)
{
	stop = 1;
}

static const char *kind_name(enum pg_kind k)
{
	static const char *names[] = {"?", "MSG", "JOINED", "LEFT", "EXITED", "EVICTED", "DOWN"};
	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

static int cmd_join(struct cli *c, int argc, char **argv)
{
	bool monitor = argc == 3 && strcmp(argv[2], "--monitor") == 0;
	if (argc != 2 && !monitor) {
		fprintf(stderr, "pgroup: usage: pgroup join GROUP [--monitor]\n");
		return 2;
	}
	pg_ctx *ctx;
	int err = cli_open(c, &ctx);
	if (err)
		return cli_fail("cannot reach the daemon", err);
	if (monitor)
		err = pg_monitor(ctx, argv[1]);
	if (!err)
		err = pg_join(ctx, argv[1], 0, NULL, NULL);
	if (err) {
		pg_close(ctx);
		return cli_fail(argv[1], err);
	}
	/* No SA_RESTART: pg_recv returns -EINTR and we leave cleanly. A
	 * signal that lands while pg_recv polls, not in its futex wait, is
	 * not reported: the timeout bounds how long we miss it. */
	struct sigaction sa = {.sa_handler = on_stop};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	int rc = 0;
	while (!stop) {
		pg_message m;
		err = pg_recv(ctx, &m, 200);
		if (err == -EINTR)
			break;
		if (err == -ETIMEDOUT)
			continue;
		if (err) {
			rc = cli_fail(argv[1], err);
			break;
		}
		if (c->json) {
			printf("{\"kind\":\"%s\",\"seq\":%llu,\"node\":", kind_name(m.kind),
			       (unsigned long long)m.seq);
			cli_json_str(m.from.node, strlen(m.from.node));
			printf(",\"pid\":%d,\"data\":", (int)m.from.pid);
			cli_json_str(m.kind == PG_MSG ? m.data : "", m.kind == PG_MSG ? m.len : 0);
			puts("}");
		} else if (m.kind == PG_MSG) {
			printf("%llu %s:%d %.*s\n", (unsigned long long)m.seq, m.from.node,
			       (int)m.from.pid, (int)m.len, (const char *)m.data);
		} else {
			printf("%llu %s %s:%d\n", (unsigned long long)m.seq, kind_name(m.kind),
			       m.from.node, (int)m.from.pid);
		}
		if (m.kind == PG_EVICTED || m.kind == PG_GROUP_DOWN) {
			rc = 1;
			break;
		}
	}
	pg_close(ctx);
	return rc;
}

int main(int argc, char **argv)
{
	struct cli c = {.argv0 = argv[0]};
	int i = 1;
	/* Global options come before the command. */
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
			c.socket = argv[++i];
		} else if (strcmp(argv[i], "--json") == 0) {
			c.json = true;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "pgroup: unknown option '%s' (see pgroup --help)\n", argv[i]);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[i];
	argc -= i;
	argv += i;
	/* Options after the command too: --socket, --json anywhere. */
	int k = 1;
	for (int j = 1; j < argc; j++) {
		if (strcmp(argv[j], "--socket") == 0 && j + 1 < argc)
			c.socket = argv[++j];
		else if (strcmp(argv[j], "--json") == 0)
			c.json = true;
		else if (strcmp(argv[j], "--help") == 0 && strcmp(cmd, "bench") != 0 &&
			 strcmp(cmd, "demo") != 0) {
			usage(stdout);
			return 0;
		} else
			argv[k++] = argv[j];
	}
	argc = k;
	argv[argc] = NULL;
	if (strcmp(cmd, "create") == 0)
		return cmd_create(&c, argc, argv);
	if (strcmp(cmd, "delete") == 0 || strcmp(cmd, "send") == 0 || strcmp(cmd, "esend") == 0)
		return cmd_simple(&c, cmd, argc, argv);
	if (strcmp(cmd, "join") == 0)
		return cmd_join(&c, argc, argv);
	if (strcmp(cmd, "members") == 0)
		return cmd_members(&c, argc, argv);
	if (strcmp(cmd, "groups") == 0)
		return argc == 1 ? cli_groups(&c) : (fprintf(stderr, "pgroup: usage: pgroup groups\n"), 2);
	if (strcmp(cmd, "top") == 0)
		return cli_top(&c, argc, argv);
	if (strcmp(cmd, "nodes") == 0)
		return argc == 1 ? cli_nodes(&c) : (fprintf(stderr, "pgroup: usage: pgroup nodes [--json]\n"), 2);
	if (strcmp(cmd, "bench") == 0)
		return cli_bench(&c, argc, argv);
	if (strcmp(cmd, "demo") == 0)
		return cli_demo(&c, argc, argv);
	fprintf(stderr, "pgroup: unknown command '%s' (see pgroup --help)\n", cmd);
	return 2;
}

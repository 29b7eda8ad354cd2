/* SPDX-License-Identifier: MIT */
/* Shared by the pgroup CLI's sub-commands. */
#ifndef PG_TOOLS_CLI_H
#define PG_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgroup.h"
#include "size.h"

struct cli {
	const char *socket; /* --socket, or NULL for the default */
	bool json;
	const char *argv0;
};

/* Open a ctx; on the default socket, start a daemon first if none listens. */
int cli_open(struct cli *c, pg_ctx **ctx);
/* Parse "4096", "64k", "1M", "1G"; false if malformed. */
/* A one-line error on stderr; returns 1 (the exit code). */
int cli_fail(const char *what, int err);
/* Write s as a JSON string. */
void cli_json_str(const char *s, size_t n);

struct ctl_out;
struct ctl_in;
/* A raw control connection to the daemon (found or started as cli_open
 * does), for the operator's views the public API has no call for: the
 * fd, or -errno. */
int cli_ctl_open(struct cli *c);
/* Send req, read its reply into buf: 0 and *rep, or -errno (the reply's
 * status included). */
int cli_ctl_ask(int fd, struct ctl_out *req, uint8_t *buf, size_t cap, struct ctl_in *rep);

int cli_groups(struct cli *c);
int cli_top(struct cli *c, int argc, char **argv);
int cli_nodes(struct cli *c);
int cli_bench(struct cli *c, int argc, char **argv);
int cli_bench_purge(struct cli *c, int argc, char **argv);
int cli_bench_many(struct cli *c, unsigned n);
int cli_demo(struct cli *c, int argc, char **argv);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Several nodes in one test: daemons that listen on loopback ports the
 * kernel picks, share a cookie file, and are asked (CTL_NODES, as
 * `pgroup nodes` asks) how they see each other.
 */
#ifndef PG_TEST_MESH_HARNESS_H
#define PG_TEST_MESH_HARNESS_H

#include "harness.h"

struct ctl_node_info;

/* A fresh cookie file (mode 0600) in a test directory: its path. */
const char *mesh_cookie(const char *stem);
/*
 * Start node `name` listening on 127.0.0.1:port (0: any) with `cookie`,
 * --link-timeout 1000, peered with each of `peers` (daemons already
 * running: their listen addresses), and `extra` flags. Its log goes to
 * /tmp/pgroup-test-<pid>-<name>.log (d->log). 0 or -errno.
 */
int mesh_node(struct daemon_proc *d, const char *name, unsigned port, const char *cookie,
	      const struct daemon_proc *const *peers, unsigned n_peers, const char *extra);
/* Where d listens ("127.0.0.1:PORT"), and its port; 0 or -errno. */
int mesh_addr(const struct daemon_proc *d, char *addr, size_t cap, unsigned *port);
/* Node `name` in d's CTL_NODES listing ("" = d itself; one caller at a
 * time: the reply is read into a static buffer): 0 and *out, or
 * -errno (-ENOENT: not listed). */
int mesh_info(const struct daemon_proc *d, const char *name, struct ctl_node_info *out);
/* How d sees node `name` (enum ctl_node_state), or -1 when it lists no such node. */
int mesh_state(const struct daemon_proc *d, const char *name);
/* Wait up to timeout_ms for d to see `name` in `state`: the ms it took, or -1. */
int mesh_wait(const struct daemon_proc *d, const char *name, int state, int timeout_ms);
/* Whether d's log has a line containing `text`. */
bool mesh_logged(const struct daemon_proc *d, const char *text);
/* Milliseconds on the monotonic clock. */
int64_t mesh_ms(void);

#endif

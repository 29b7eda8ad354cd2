/* SPDX-License-Identifier: MIT */
/* Where the node daemon's control socket is, for daemon and clients alike. */
#ifndef PG_PROTO_PATH_H
#define PG_PROTO_PATH_H

#include <stddef.h>

#define CTL_SYSTEM_SOCKET "/run/pgroup/pgroupd.sock"

/*
 * The contract's default: $PGROUP_SOCKET; else the system socket when a daemon
 * listens there; else $XDG_RUNTIME_DIR/pgroup/pgroupd.sock; else
 * /tmp/pgroup-UID/pgroupd.sock. 0 or -ENAMETOOLONG.
 */
int ctl_default_socket(char *out, size_t cap);

/* A connected control socket (close-on-exec), or -errno; -ETIMEDOUT when
 * the listener's backlog stayed full for timeout_ms (it does not accept). */
int ctl_connect_wait(const char *path, int timeout_ms);
/* The same, waiting at most PG_RPC_TIMEOUT_MS. */
int ctl_connect(const char *path);

#endif /* PG_PROTO_PATH_H */

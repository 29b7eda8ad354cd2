/* SPDX-License-Identifier: MIT */
/*
 * The mesh: which nodes this one is linked to, and whether each link is up.
 *
 *  - Peers come from --peer (retried for ever) and from the PEERS frames
 *    of linked nodes (a node given one peer learns the others and links to
 *    them: a full mesh).
 *  - A link is authenticated (handshake.h) before any frame on it counts.
 *    Two links between one pair (both dialled at once) become one: the one
 *    dialled by the node with the smaller name stays, on both sides alike.
 *  - Heartbeats: a PING every ping interval; a link silent for the timeout
 *    (default 1 s) is closed. A new link is UP only after MESH_UP_PONGS
 *    answered pings, so a flapping peer does not come and go with every
 *    connection. A closed link is dialled again after a back-off that
 *    doubles up to MESH_BACKOFF_MAX_MS, with jitter.
 *
 * The daemon gets a peer's coming UP and going down, and every frame above
 * the mesh's own (namespace, replication), through mesh_opts' calls.
 */
#ifndef PG_NODE_MESH_H
#define PG_NODE_MESH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "handshake.h"
#include "link.h"

#define MESH_UP_PONGS 3u
#define MESH_BACKOFF_MIN_MS 100u
#define MESH_BACKOFF_MAX_MS 5000u
#define MESH_HANDSHAKE_MS 3000u /* an unauthenticated link is closed after this */
#define MESH_MAX_STRANGERS 64u  /* unauthenticated links at once */
#define MESH_DEFAULT_TIMEOUT_MS 1000u
#define MESH_MAX_PEERS 255u     /* nodes one node links to (a PEERS frame's worth) */

enum mesh_state {
	MESH_DOWN = 0,   /* no link; dialled again at next_try if we know where */
	MESH_LINKING,    /* connecting or authenticating */
	MESH_PROBATION,  /* authenticated, heartbeats not yet answered enough */
	MESH_UP,
};

struct mesh;
struct mesh_conn;

struct mesh_peer {
	struct mesh *mesh;
	char node[WIRE_NODE_MAX];
	char addr[WIRE_ADDR_MAX]; /* where it listens ("" unknown) */
	struct sockaddr_storage sa;
	socklen_t salen; /* 0: no address to dial */
	bool configured; /* from --peer */
	bool self;       /* the address is this node's own: never dialled */
	enum mesh_state state;
	struct mesh_conn *conn;
	unsigned answered; /* pings answered on this link */
	uint64_t ping_id;
	int64_t last_rx, next_ping, next_try, since; /* ns; since = state change */
	int64_t rtt_ns;       /* smoothed */
	unsigned backoff_ms;
	unsigned ups;         /* times it came up */
	void *user;           /* the daemon's */
	struct mesh_peer *next;
};

struct mesh_opts {
	const char *node;
	const uint8_t *master; /* cookie key, HS_KEY_BYTES */
	bool encrypt;
	unsigned timeout_ms;   /* 0: MESH_DEFAULT_TIMEOUT_MS */
	const char *listen;    /* HOST:PORT, or NULL */
	const char *const *peers;
	unsigned n_peers;
	void (*log)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
	void (*up)(void *arg, struct mesh_peer *p);
	void (*down)(void *arg, struct mesh_peer *p);
	/* A frame above the mesh's from an UP or PROBATION peer; nonzero closes
	 * the link (a malformed frame). */
	int (*frame)(void *arg, struct mesh_peer *p, const struct wire_frame *f);
	void *arg;
};

/* Listen (if asked) and start dialling the peers: 0 or -errno. */
int mesh_start(struct mesh **out, struct node_io *io, const struct mesh_opts *o);
/* Heartbeats, silences, handshake timeouts, redials. */
void mesh_tick(struct mesh *m, int64_t now);
/* Say BYE on every link and drop them. */
void mesh_stop(struct mesh *m);
struct mesh_peer *mesh_peers(struct mesh *m);
struct mesh_peer *mesh_find(struct mesh *m, const char *node);
/* The address others dial us at ("" when not listening). */
const char *mesh_listen_addr(const struct mesh *m);
/*
 * Queue a control frame to an authenticated peer: 0 or -ENOTCONN. One that
 * does not fit (the peer stopped reading: its link holds the cap) closes
 * the link: a node that cannot be told things is lost, not silently
 * behind.
 */
int mesh_send(struct mesh_peer *p, uint16_t type, const void *payload, uint32_t len);
/* Queue a data frame (a record, a forwarded message) in two parts: 0,
 * -ENOTCONN, or -ENOBUFS when the link holds half its cap already (the
 * caller waits: back-pressure; control frames keep the other half). */
int mesh_send2(struct mesh_peer *p, uint16_t type, const void *a, uint32_t alen, const void *b,
	       uint32_t blen);
/* Close p's link (a peer that broke the protocol's rules): it is lost. */
void mesh_drop(struct mesh_peer *p, int err);
/* The io_uring the mesh runs on (for futex waits of its users). */
struct node_io *mesh_io(struct mesh *m);
void mesh_link_stats(const struct mesh_peer *p, struct link_stats *st);
const char *mesh_state_name(enum mesh_state s);

#endif /* PG_NODE_MESH_H */

/* SPDX-License-Identifier: MIT */
/*
 * The control protocol between a client (libpgroup) and its node daemon, on a
 * UNIX SOCK_SEQPACKET socket: one datagram per message, a fixed header, then
 * tag-length-value fields. Every field is bounds-checked on decode; a message
 * that does not parse is rejected whole. See docs/protocol.md.
 */
#ifndef PG_PROTO_CTL_H
#define PG_PROTO_CTL_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CTL_MAGIC 0x7067u /* "pg" */
#define CTL_VERSION 1u
#define CTL_MAX_BYTES (128u * 1024u) /* largest datagram either side sends */
#define CTL_MAX_FDS 3u

enum ctl_type {
	CTL_HELLO = 1,   /* -> NODE, PID (the caller as the daemon sees it) */
	CTL_CREATE = 2,  /* NAME [NODE RING MAXMSG STALL MODE] */
	CTL_DELETE = 3,  /* NAME */
	CTL_OPEN = 4,    /* NAME FLAGS(write) -> WRITER + fds (writer: data, dir, own area) */
	CTL_JOIN = 5,    /* NAME PID -> MEMBER..., (self: SLOT STATEWORD CURSOR + 3 fds) */
	CTL_LEAVE = 6,   /* NAME PID [SLOT: that membership of the caller's] */
	CTL_MEMBERS = 7, /* NAME -> MEMBER... */
	CTL_MONITOR = 8, /* NAME */
	CTL_GROUPS = 9,  /* [CURSOR: groups created before it] -> GROUP... [TRUNCATED] */
	/* NAME SLOT STATEWORD: a sender asks the node to evict the member
	 * that held it up past the stall limit (-EAGAIN: the node has not seen
	 * it stall that long; -ESRCH: not that member any more). */
	CTL_EVICT = 10,
	CTL_BYE = 11,    /* pg_close: leave everything (PG_LEFT), then the reply */
	/* NAME SLOT STATEWORD -> a read-only fd of that member's page, for a
	 * process that may send (-ESTALE: the slot no longer holds it). */
	CTL_MPAGE = 12,
	/* NAME WRITER GEN -> a read-only fd of that writer's area, for a
	 * member (-ESTALE: the slot has another area now). */
	CTL_AREA = 13,
	CTL_NODES = 14,  /* -> NODEINFO... (this node first) */
	/* Daemon -> client, unasked: another process joined this ctx to a
	 * group (NAME SLOT STATEWORD CURSOR + 3 fds: data, directory, page). */
	CTL_ASYNC_JOINED = 64,
	/* Daemon -> client, the only message on a connection it cannot
	 * serve (out of fds): status says why; then it hangs up. */
	CTL_REFUSED = 65,
	/* Daemon -> client, unasked: a writer's area (NAME WRITER GEN FILEOFF
	 * SHELF + a read-only fd of its shelf), for every membership of that
	 * group. Sent before any record can be in it (before the writer has
	 * its own fds, or right after a join), once per session and shelf: a
	 * member that keeps the shelf finds the writer's later areas in the
	 * directory (ring_loc), so it never needs the daemon to read what was
	 * committed: not after a delete, not after the daemon's death. */
	CTL_ASYNC_AREA = 66,
	CTL_TYPE_MAX = 66,
};
#define CTL_REPLY 0x80u /* or-ed into the type of a reply */

enum ctl_tag {
	CTL_T_NAME = 1,  /* group name, 1..255 bytes, no NUL or '/' */
	CTL_T_NODE = 2,  /* node name, 1..63 bytes of [A-Za-z0-9._@-] */
	CTL_T_RING = 3,  /* u64 */
	CTL_T_MAXMSG = 4, /* u64 */
	CTL_T_STALL = 5, /* u32 */
	CTL_T_MODE = 6,  /* u32 */
	CTL_T_PID = 7,   /* u32 (a pid_t >= 0) */
	CTL_T_FLAGS = 8, /* u32 */
	CTL_T_SLOT = 9,  /* u32 */
	CTL_T_STATEWORD = 10, /* u32 */
	CTL_T_CURSOR = 11, /* u64 */
	CTL_T_WRITER = 12, /* u32 */
	CTL_T_MEMBER = 13, /* i32 pid + node name */
	CTL_T_GROUP = 14,  /* struct ctl_group_info + group name */
	CTL_T_TRUNCATED = 15, /* u64: more groups follow; ask again with CURSOR = this */
	CTL_T_GEN = 16,       /* u32: a writer area's generation */
	CTL_T_NODEINFO = 17,  /* struct ctl_node_info */
	CTL_T_DIROFF = 18,    /* u64: where the group's directory starts in its fd */
	CTL_T_FILEOFF = 19,   /* u64: where the area or page of the last fd starts */
	/* u64: which of the daemon's shelves that fd is (ring_loc.shelf), so
	 * the receiver may keep it and map later ranges of it without asking;
	 * 0 or absent: an fd of that one range's own. */
	CTL_T_SHELF = 20,
	/* u32: a group's member slots (creates: 0 or absent = the default;
	 * ring replies: the ring's count, absent = RING_MEMBER_SLOTS) */
	CTL_T_MEMBER_SLOTS = 21,
	CTL_T_MAX = 21,
};

#define CTL_F_WRITE 0x1u
#define CTL_F_REPLICA 0x2u /* join replies: the ring is another node's group's replica */

struct ctl_hdr {
	uint16_t magic;
	uint8_t version;
	uint8_t type;
	uint32_t len; /* whole message, header included */
	uint32_t id;  /* echoed in the reply */
	int32_t status; /* replies: 0 or -errno */
};
static_assert(sizeof(struct ctl_hdr) == 16, "ctl_hdr is on the wire");

struct ctl_tlv {
	uint16_t tag;
	uint16_t len; /* value bytes; the next field starts 4-aligned */
};
static_assert(sizeof(struct ctl_tlv) == 4, "ctl_tlv is on the wire");

/* One line of a groups listing. */
struct ctl_group_info {
	uint64_t ring_bytes;
	uint64_t fill;   /* records the slowest member has not read (at most the order's size) */
	uint64_t lag;    /* order positions between the slowest member and the tail */
	uint32_t members;
	uint32_t mode;
	char master[64];
	uint32_t owner;  /* the creator's uid: its quota pays for the group */
	uint32_t n_nodes; /* struct ctl_node_lag entries after this, before the name */
	uint64_t memory; /* bytes of memory the group's shared memory holds now */
	/* Counters for rates (pgroup top: their change over a second). A
	 * group mastered elsewhere has them 0. */
	uint64_t tail;      /* order positions taken: messages and events in */
	uint64_t delivered; /* records read by the members here */
	int32_t slowest_pid; /* the member holding `lag` here; 0: none, or a node's stream */
	uint32_t evictions;  /* members evicted for lagging */
	uint32_t cancels;    /* claims cancelled: stuck, or their writer died */
	uint32_t pad2;
};
static_assert(sizeof(struct ctl_group_info) == 144, "ctl_group_info is on the wire");

/* A group's stream to one node with members of it (the master's view):
 * how far that node is behind the group's tail. */
struct ctl_node_lag {
	char node[64];
	uint64_t unshipped; /* records in the ring not yet sent to that node */
	uint64_t unread;    /* sent, not yet read by all of that node's members */
};
static_assert(sizeof(struct ctl_node_lag) == 80, "ctl_node_lag is on the wire");
#define CTL_NODE_LAGS_MAX 32 /* per group in a listing (a ring names at most 32 nodes) */

/* One line of a nodes listing. */
enum ctl_node_state {
	CTL_NODE_DOWN = 0,
	CTL_NODE_LINKING = 1,   /* connecting or authenticating */
	CTL_NODE_PROBATION = 2, /* authenticated, heartbeats not yet answered enough */
	CTL_NODE_UP = 3,
	CTL_NODE_SELF = 4,      /* the node answering */
};

struct ctl_node_info {
	char name[64];     /* "" for a --peer not yet reached */
	char addr[64];     /* where it listens */
	uint32_t state;    /* enum ctl_node_state */
	uint32_t flags;    /* CTL_NODE_F_* */
	uint64_t rtt_ns;   /* heartbeat round trip, smoothed */
	uint64_t lag_ns;   /* age of the oldest frame waiting to go to it */
	uint64_t heard_ns; /* since the last frame from it */
	uint64_t since_ns; /* in this state for */
	uint64_t queued;   /* bytes waiting to go to it */
	uint64_t tx_bytes, rx_bytes;
};
#define CTL_NODE_F_CONFIGURED 0x1u /* from --peer */
#define CTL_NODE_F_ENCRYPTED 0x2u
static_assert(sizeof(struct ctl_node_info) == 192, "ctl_node_info is on the wire");

/* A message under construction. */
struct ctl_out {
	uint8_t buf[CTL_MAX_BYTES];
	size_t len;
	bool overflow;
};

void ctl_begin(struct ctl_out *o, uint8_t type, uint32_t id, int32_t status);
bool ctl_put(struct ctl_out *o, uint16_t tag, const void *val, size_t len);
bool ctl_put_u32(struct ctl_out *o, uint16_t tag, uint32_t v);
bool ctl_put_u64(struct ctl_out *o, uint16_t tag, uint64_t v);
bool ctl_put_str(struct ctl_out *o, uint16_t tag, const char *s);
/* A member: pid then node name, in one field. */
bool ctl_put_member(struct ctl_out *o, int32_t pid, const char *node);
/* Done: 0, or -EMSGSIZE when a field did not fit. */
int ctl_end(struct ctl_out *o);

/* A received message, checked by ctl_parse. Points into the caller's buffer. */
struct ctl_in {
	struct ctl_hdr hdr;
	const uint8_t *body;
	size_t body_len;
};

/* Check header and every field's bounds: 0 or -EPROTO. */
int ctl_parse(struct ctl_in *m, const void *buf, size_t len);
/* Find the first field with `tag`: its value and length, or -ENOENT. */
int ctl_get(const struct ctl_in *m, uint16_t tag, const void **val, size_t *len);
int ctl_get_u32(const struct ctl_in *m, uint16_t tag, uint32_t *v);
int ctl_get_u64(const struct ctl_in *m, uint16_t tag, uint64_t *v);
/* Copy a string field into out[cap] NUL-terminated; -EPROTO if too long. */
int ctl_get_str(const struct ctl_in *m, uint16_t tag, char *out, size_t cap);
/* Walk fields with `tag`: *cursor starts at 0; 1 while one is found. */
int ctl_next(const struct ctl_in *m, uint16_t tag, size_t *cursor, const void **val,
	     size_t *len);
/* Decode a CTL_T_MEMBER value. */
int ctl_member(const void *val, size_t len, int32_t *pid, char *node, size_t node_cap);

/* Name rules of the contract: 0 or -EINVAL. */
int ctl_check_group(const char *name, size_t len);
/* FNV-1a of a group name, for the name tables of the daemon and the
 * library (a name that collides only makes its own chain longer). */
static inline uint32_t ctl_name_hash(const char *name)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}
int ctl_check_node(const char *name, size_t len);

/* Send a message with up to CTL_MAX_FDS fds; receive one with its fds.
 * Received fds are close-on-exec; extra or unexpected fds are closed. */
int ctl_send(int sock, const struct ctl_out *o, const int *fds, unsigned nfds);
ssize_t ctl_recv(int sock, void *buf, size_t cap, int *fds, unsigned *nfds, int flags);

#endif /* PG_PROTO_CTL_H */

/* SPDX-License-Identifier: MIT */
/*
 * Node frames: the bytes daemons exchange over a node link, after the link
 * layer (lib/node/seal.h) has opened a record. A record's plaintext is a
 * run of frames, each a fixed header and a payload of a fixed layout (a
 * name may trail it). Every length is checked against the bytes received:
 * a frame that does not parse closes its link. See docs/protocol.md.
 *
 * Layouts are little-endian on the wire; pgroup builds only for
 * little-endian hosts (static_assert below), so they are used in place.
 */
#ifndef PG_PROTO_WIRE_H
#define PG_PROTO_WIRE_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "node frames are little-endian");

#define WIRE_MAGIC 0x646e6770u /* "pgnd" */
#define WIRE_VERSION 3u
/* Largest frame payload: a message of the largest size a group allows,
 * with its record header. */
#define WIRE_FRAME_MAX (16u * 1024u * 1024u + 256u)
#define WIRE_NODE_MAX 64u   /* node name, NUL-padded (1..63 bytes) */
#define WIRE_ADDR_MAX 64u   /* "host:port", NUL-padded */
#define WIRE_PEERS_MAX 256u /* entries in one PEERS frame */

enum wire_type {
	WIRE_HELLO = 1, /* struct wire_hello: first frame each side sends */
	WIRE_PROOF = 2, /* struct wire_proof: second and last plaintext frame */
	WIRE_PING = 3,  /* struct wire_ping */
	WIRE_PONG = 4,  /* struct wire_ping, echoed */
	WIRE_PEERS = 5, /* struct wire_peer[n]: nodes the sender is linked to */
	WIRE_BYE = 6,   /* empty: the sender closes this link on purpose */
	/* The namespace (docs/protocol.md, "One namespace"). */
	WIRE_GROUP = 7,  /* struct wire_group: a group the sender masters */
	WIRE_GONE = 8,   /* struct wire_name: a group the sender mastered is deleted */
	WIRE_CLAIM = 9,  /* struct wire_claim: may the sender create this name? */
	WIRE_CREATE = 10, /* struct wire_create: create it here, with you as the requester */
	WIRE_DELETE = 11, /* struct wire_delete: delete this group of yours for a client */
	WIRE_REPLY = 12, /* struct wire_reply: the answer to a CLAIM, CREATE or DELETE */
	/* Replicas (docs/protocol.md, "Replicas"). */
	WIRE_SUB = 13,    /* struct wire_claim: send me your group's order from now on */
	WIRE_SUBBED = 14, /* struct wire_subbed: the answer, with the stream's id */
	WIRE_UNSUB = 15,  /* struct wire_unsub: no more (no members left here) */
	WIRE_REC = 16,    /* struct wire_rec + payload: one record of the order */
	WIRE_RJOIN = 17,  /* struct wire_rjoin: a member here joins your group */
	WIRE_RLEAVE = 18, /* struct wire_rjoin: a member here left (or exited) */
	WIRE_MEMBERS = 19, /* struct wire_claim: who are the members? */
	WIRE_MEMBER_LIST = 20, /* struct wire_members + entries: answer to RJOIN, MEMBERS */
	/* Senders on other nodes (docs/protocol.md, "Forwarding"). */
	WIRE_FOPEN = 21,   /* struct wire_claim: I have senders of your group */
	WIRE_FOPENED = 22, /* struct wire_subbed: the answer, the forward's id */
	WIRE_FWD = 23,     /* struct wire_fwd + payload: a message to sequence */
	WIRE_FACK = 24,    /* struct wire_fack: sequenced up to here */
	WIRE_NODEIDX = 25, /* struct wire_nodeidx: a stream's from_node index names this node */
	WIRE_EVICTED = 26, /* struct wire_unsub: your node lagged: its membership is gone */
	WIRE_CREDIT = 27,  /* struct wire_fack: of a stream, this many records are read here */
	WIRE_TYPE_MAX = 27,
};

struct wire_hdr {
	uint16_t type;  /* enum wire_type */
	uint16_t flags; /* 0 */
	uint32_t len;   /* payload bytes after this header */
};
static_assert(sizeof(struct wire_hdr) == 8, "wire_hdr is on the wire");

#define WIRE_HELLO_ENCRYPT 0x1u /* the sender encrypts after the proofs */
#define WIRE_HELLO_AES 0x2u     /* the sender's CPU has AES-256-GCM */

struct wire_hello {
	uint32_t magic;   /* WIRE_MAGIC */
	uint16_t version; /* WIRE_VERSION */
	uint16_t flags;   /* WIRE_HELLO_* */
	uint8_t nonce[32];
	uint8_t kx_pk[32]; /* the sender's ephemeral crypto_kx public key */
	char node[WIRE_NODE_MAX];
};
static_assert(sizeof(struct wire_hello) == 136, "wire_hello is on the wire");

struct wire_proof {
	uint8_t mac[32]; /* crypto_auth over the handshake transcript */
};
static_assert(sizeof(struct wire_proof) == 32, "wire_proof is on the wire");

struct wire_ping {
	uint64_t id;
	int64_t sent_ns; /* the pinger's clock; echoed unchanged */
};
static_assert(sizeof(struct wire_ping) == 16, "wire_ping is on the wire");

struct wire_peer {
	char node[WIRE_NODE_MAX];
	char addr[WIRE_ADDR_MAX]; /* where it listens; "" if it does not */
};
static_assert(sizeof(struct wire_peer) == 128, "wire_peer is on the wire");

#define WIRE_NAME_MAX 256u /* group name (1..255 bytes), NUL-padded */

struct wire_group {
	int64_t created_ns; /* CLOCK_REALTIME at its master: the older of two wins */
	uint64_t ring_bytes;
	uint64_t max_msg;
	uint32_t stall_ms;
	uint32_t mode;
	uint32_t uid, gid; /* its owner, as its master knows it */
	/* Member slots its creator chose: each node's replica has as many
	 * for the members there (a node judges it as a create's). */
	uint32_t member_slots;
	uint32_t reserved; /* 0 */
	uint64_t ack;      /* nonzero: answer with a REPLY of this id once known
			      (a create returns when every node knows it) */
	char master[WIRE_NODE_MAX];
	char name[WIRE_NAME_MAX];
};
static_assert(sizeof(struct wire_group) == 376, "wire_group is on the wire");

struct wire_name {
	uint64_t ack; /* nonzero: answer with a REPLY of this id (a delete
			 returns when every node knows) */
	char name[WIRE_NAME_MAX];
};
static_assert(sizeof(struct wire_name) == 264, "wire_name is on the wire");

struct wire_claim {
	uint64_t id; /* echoed in the REPLY */
	char name[WIRE_NAME_MAX];
};
static_assert(sizeof(struct wire_claim) == 264, "wire_claim is on the wire");

struct wire_create {
	uint64_t id;
	uint64_t ring_bytes, max_msg; /* 0 = the master's defaults */
	uint32_t stall_ms, mode;
	uint32_t uid, gid; /* the requesting client's, as its node sees them */
	uint32_t member_slots; /* 0 = the default; on the master's node */
	uint32_t pad;
	char name[WIRE_NAME_MAX];
};
static_assert(sizeof(struct wire_create) == 304, "wire_create is on the wire");

struct wire_delete {
	uint64_t id;
	uint32_t uid, gid; /* the requesting client's */
	char name[WIRE_NAME_MAX];
};
static_assert(sizeof(struct wire_delete) == 272, "wire_delete is on the wire");

struct wire_reply {
	uint64_t id;
	int32_t status; /* 0 or -errno, as a client would get it */
	uint32_t pad;   /* 0 */
};
static_assert(sizeof(struct wire_reply) == 16, "wire_reply is on the wire");

struct wire_subbed {
	uint64_t id;     /* the SUB's */
	int32_t status;  /* 0 or -errno */
	uint32_t stream; /* names the group in the REC frames that follow */
};
static_assert(sizeof(struct wire_subbed) == 16, "wire_subbed is on the wire");

struct wire_unsub {
	uint32_t stream;
	uint32_t pad; /* 0 */
};
static_assert(sizeof(struct wire_unsub) == 8, "wire_unsub is on the wire");

/* One record of a group's order, as its master sequenced it. */
struct wire_rec {
	uint32_t stream;
	uint16_t kind;  /* RING_REC_MSG .. RING_REC_DOWN */
	uint16_t flags; /* RING_F_* */
	uint64_t seq;   /* its place in the order: the same at every node */
	uint32_t epoch; /* the master's epoch (0 until masters change) */
	int32_t from_pid;
	uint32_t from_node; /* 0 = the master */
	uint32_t len;       /* payload bytes that follow */
};
static_assert(sizeof(struct wire_rec) == 32, "wire_rec is on the wire");

#define WIRE_RLEAVE_EXITED 0x1u /* RLEAVE: the process ended (PG_EXITED) */

struct wire_rjoin {
	uint64_t id;
	int32_t pid;    /* the member, as its node sees it */
	uint32_t flags; /* RLEAVE: WIRE_RLEAVE_EXITED */
	char name[WIRE_NAME_MAX];
};
static_assert(sizeof(struct wire_rjoin) == 272, "wire_rjoin is on the wire");

#define WIRE_MEMBERS_MAX 4096u

struct wire_member {
	char node[WIRE_NODE_MAX];
	int32_t pid;
	uint32_t pad; /* 0 */
};
static_assert(sizeof(struct wire_member) == 72, "wire_member is on the wire");

struct wire_members {
	uint64_t id;
	int32_t status;
	uint32_t n;    /* entries that follow (n <= WIRE_MEMBERS_MAX) */
	uint64_t seq;  /* RJOIN: its JOINED record's place in the order */
};
static_assert(sizeof(struct wire_members) == 24, "wire_members is on the wire");

/* A message from a sender on the forwarding node, in its sending order. */
struct wire_fwd {
	uint32_t fwd;     /* the FOPENED id */
	uint16_t flags;   /* RING_F_ESEND or 0 */
	uint16_t pad;     /* 0 */
	uint64_t origin;  /* its place at the forwarding node: strictly growing */
	int32_t from_pid; /* the sender, as its node sees it */
	uint32_t len;
};
static_assert(sizeof(struct wire_fwd) == 24, "wire_fwd is on the wire");

struct wire_fack {
	uint32_t fwd;
	uint32_t pad;   /* 0 */
	uint64_t upto;  /* every origin below this is in the order */
};
static_assert(sizeof(struct wire_fack) == 16, "wire_fack is on the wire");

struct wire_nodeidx {
	uint32_t stream;
	uint32_t index; /* 1..RING_NODES-1 */
	char node[WIRE_NODE_MAX];
};
static_assert(sizeof(struct wire_nodeidx) == 72, "wire_nodeidx is on the wire");

/* A frame found in a record: its type and payload (pointing into the
 * record). */
struct wire_frame {
	uint16_t type;
	const uint8_t *payload;
	uint32_t len;
};

/*
 * The next frame of buf[0..len): 1 and *f, *used (bytes it took) when one
 * is there whole; 0 when len is 0; -EBADMSG when the header is cut short, or
 * the payload runs past len, or the type is unknown, or flags are not 0;
 * -EMSGSIZE when the payload is over WIRE_FRAME_MAX.
 */
int wire_next(const uint8_t *buf, size_t len, struct wire_frame *f, size_t *used);

/* Payload checks, one per type: 0 and the payload copied out, or -EBADMSG
 * (another type, wrong size, a name that breaks the contract's rules or is
 * not NUL-padded, a bad magic, an address that is not host:port); out is
 * untouched then. The hello's version is not checked: the handshake
 * reports another one. wire_ping_parse takes a PING or a PONG. */
int wire_hello_parse(const struct wire_frame *f, struct wire_hello *out);
int wire_proof_parse(const struct wire_frame *f, struct wire_proof *out);
int wire_ping_parse(const struct wire_frame *f, struct wire_ping *out);
/* PEERS: *n entries copied into out[cap] (cap >= WIRE_PEERS_MAX; a frame
 * of more than cap entries is -EBADMSG). An addr is "" or passes
 * wire_check_addr. */
int wire_peers_parse(const struct wire_frame *f, struct wire_peer *out, size_t cap, size_t *n);
int wire_bye_parse(const struct wire_frame *f);
/* Namespace frames: names pass ctl_check_group, NUL-padded; the master
 * passes ctl_check_node; a REPLY's status is 0 or -1..-4095 and pad 0. */
int wire_group_parse(const struct wire_frame *f, struct wire_group *out);
int wire_name_parse(const struct wire_frame *f, struct wire_name *out);
int wire_claim_parse(const struct wire_frame *f, struct wire_claim *out);
int wire_create_parse(const struct wire_frame *f, struct wire_create *out);
int wire_delete_parse(const struct wire_frame *f, struct wire_delete *out);
int wire_reply_parse(const struct wire_frame *f, struct wire_reply *out);
/* SUB and MEMBERS (struct wire_claim, as CLAIM): type one of the three. */
int wire_ask_parse(const struct wire_frame *f, uint16_t type, struct wire_claim *out);
int wire_subbed_parse(const struct wire_frame *f, struct wire_subbed *out);
int wire_unsub_parse(const struct wire_frame *f, struct wire_unsub *out);
/* REC: the header, and its payload pointing into the frame (len checked
 * against the frame; the kind in MSG..DOWN; flags only RING_F_ESEND is
 * the caller's to check). */
int wire_rec_parse(const struct wire_frame *f, struct wire_rec *out, const uint8_t **payload);
/* RJOIN and RLEAVE. */
int wire_rjoin_parse(const struct wire_frame *f, struct wire_rjoin *out);
/* FOPEN is an ask (wire_ask_parse), FOPENED a subbed (any of the two). */
int wire_fwd_parse(const struct wire_frame *f, struct wire_fwd *out, const uint8_t **payload);
int wire_fack_parse(const struct wire_frame *f, struct wire_fack *out);
int wire_nodeidx_parse(const struct wire_frame *f, struct wire_nodeidx *out);
/* MEMBER_LIST: the header and its entries (each node name checked), at
 * most cap copied into out; more is -EBADMSG. */
int wire_members_parse(const struct wire_frame *f, struct wire_members *out,
		       struct wire_member *entries, size_t cap);

/* "host:port", shorter than WIRE_ADDR_MAX (it fits a wire_peer), with a
 * port of 1..65535 in at most 5 digits (no sign, no spaces) and a host of
 * 1..WIRE_ADDR_MAX-7 bytes: a name or an IPv4 address ([A-Za-z0-9._-]), or
 * an IPv6 address in brackets ([0-9A-Fa-f:.], brackets counted), so any
 * port fits: 0 or -EINVAL. Splits it when host/port are not NULL: host
 * without the brackets, NUL-terminated (-EINVAL when host_cap is too
 * small; nothing is written on an error). Reads addr up to its NUL or
 * WIRE_ADDR_MAX bytes, whichever comes first. */
int wire_check_addr(const char *addr, char *host, size_t host_cap, uint16_t *port);

/*
 * Append one frame to out[0..cap) at *len: 0, or -ENOBUFS when it does not
 * fit, -EMSGSIZE when plen is over WIRE_FRAME_MAX, -EINVAL for a type
 * wire_next would refuse (nothing written on an error). The payload is
 * copied.
 */
int wire_put(uint8_t *out, size_t cap, size_t *len, uint16_t type, const void *payload,
	     uint32_t plen);

#endif /* PG_PROTO_WIRE_H */

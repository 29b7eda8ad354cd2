// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the node-frame codec (lib/proto/wire.c), which a node
 * runs on every record a peer sends, before anything else looks at it.
 *
 * The first input byte picks a mode (the rest is its input):
 *   0  the bytes are a record's plaintext: walk it with wire_next until
 *      the end or an error, run each frame's parser, check what it hands
 *      out, and encode it again with wire_put: the same bytes must come
 *      out (the layouts are fixed, so there is one encoding of a value);
 *      a namespace frame's verdict is also checked against the rules
 *      restated here, both ways;
 *   1  the bytes are an address for wire_check_addr;
 *   2  the bytes are a script of wire_put calls into a buffer of a given
 *      size; what fits must be walked back as it went in.
 * Anything outside the bytes given, or a check that does not hold, is
 * abort(): a finding, not a rejection.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "proto/ctl.h"
#include "proto/wire.h"

#define HDR sizeof(struct wire_hdr)
#define CHECK(cond) FUZZ_CHECK("fuzz_wire", cond)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct wire_peer peers[WIRE_PEERS_MAX];
/* A re-encoded frame: the largest that parses is a full PEERS. */
static uint8_t again[HDR + sizeof(peers)];

/* Whether a text field has a NUL inside and zeros after it; *n its text's
 * length. */
static bool padded(const char *field, size_t size, size_t *n)
{
	*n = strnlen(field, size);
	if (*n == size)
		return false;
	for (size_t i = *n; i < size; i++)
		if (field[i])
			return false;
	return true;
}

/* A text field a parser accepted. */
static size_t padded_len(const char *field, size_t size)
{
	size_t n;
	CHECK(padded(field, size, &n));
	return n;
}

static void check_node(const char node[WIRE_NODE_MAX])
{
	size_t n = padded_len(node, WIRE_NODE_MAX);
	CHECK(n >= 1 && ctl_check_node(node, n) == 0);
}

static bool digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* An address wire_check_addr accepted, taken apart again. */
static void check_addr_ok(const char *addr)
{
	char host[WIRE_ADDR_MAX], tiny[WIRE_ADDR_MAX];
	uint16_t port = 0, port2 = 0;
	size_t len = strlen(addr);
	CHECK(len < WIRE_ADDR_MAX);
	CHECK(wire_check_addr(addr, host, sizeof(host), &port) == 0);
	CHECK(wire_check_addr(addr, NULL, 0, NULL) == 0);
	CHECK(wire_check_addr(addr, NULL, 0, &port2) == 0 && port2 == port);
	CHECK(port >= 1);
	size_t hl = strlen(host);
	CHECK(hl >= 1 && hl <= WIRE_ADDR_MAX - 7);
	/* Exactly room for the host and its NUL, and one byte less. */
	CHECK(wire_check_addr(addr, tiny, hl + 1, NULL) == 0 && strcmp(tiny, host) == 0);
	memset(tiny, '#', sizeof(tiny));
	CHECK(wire_check_addr(addr, tiny, hl, NULL) == -EINVAL && tiny[0] == '#');

	/* addr is host (bracketed when it has a ':'), ':', then the port's
	 * digits and nothing else. */
	bool v6 = memchr(host, ':', hl) != NULL;
	size_t at = 0;
	if (v6)
		CHECK(addr[at++] == '[');
	CHECK(len > at + hl && memcmp(addr + at, host, hl) == 0);
	at += hl;
	if (v6)
		CHECK(addr[at++] == ']');
	CHECK(at <= WIRE_ADDR_MAX - 7);
	CHECK(addr[at++] == ':');
	size_t pl = len - at;
	CHECK(pl >= 1 && pl <= 5 && digits(addr + at, pl));
	CHECK(strtoul(addr + at, NULL, 10) == port);
}

static void check_peer(const struct wire_peer *p)
{
	check_node(p->node);
	if (padded_len(p->addr, WIRE_ADDR_MAX))
		check_addr_ok(p->addr);
}

/* The frame that came out of wire_next, encoded again from its parsed
 * value, is the bytes it came from. */
static void same_bytes(const struct wire_frame *f, const void *val, size_t n, const uint8_t *orig,
		       size_t used)
{
	size_t len = 0;
	CHECK(n == f->len && used == HDR + n);
	CHECK(wire_put(again, sizeof(again), &len, f->type, val, (uint32_t)n) == 0);
	CHECK(len == used && memcmp(again, orig, used) == 0);
}

/* The namespace frames, in a table: each parser is run on every frame. */
#define NS_PARSER(x)                                                                               \
	static int parse_##x(const struct wire_frame *f, void *out)                                \
	{                                                                                          \
		return wire_##x##_parse(f, out);                                                   \
	}
NS_PARSER(group)
NS_PARSER(name)
NS_PARSER(claim)
NS_PARSER(create)
NS_PARSER(delete)
NS_PARSER(reply)

#define NO_NAME SIZE_MAX
static const struct ns_kind {
	uint16_t type;
	size_t size, name_at; /* NO_NAME: it has none */
	int (*parse)(const struct wire_frame *f, void *out);
} ns[] = {
    {WIRE_GROUP, sizeof(struct wire_group), offsetof(struct wire_group, name), parse_group},
    {WIRE_GONE, sizeof(struct wire_name), offsetof(struct wire_name, name), parse_name},
    {WIRE_CLAIM, sizeof(struct wire_claim), offsetof(struct wire_claim, name), parse_claim},
    {WIRE_CREATE, sizeof(struct wire_create), offsetof(struct wire_create, name), parse_create},
    {WIRE_DELETE, sizeof(struct wire_delete), offsetof(struct wire_delete, name), parse_delete},
    {WIRE_REPLY, sizeof(struct wire_reply), NO_NAME, parse_reply},
};
#define NS_BYTES sizeof(struct wire_group) /* the largest of them */

/* The rules of wire.h, restated without ctl_check_group: 1..255 bytes,
 * no '/', NUL-padded. */
static bool group_name_ok(const char name[WIRE_NAME_MAX])
{
	size_t n;
	return padded(name, WIRE_NAME_MAX, &n) && n >= 1 && !memchr(name, '/', n);
}

static bool node_ok(const char node[WIRE_NODE_MAX])
{
	size_t n;
	return padded(node, WIRE_NODE_MAX, &n) && ctl_check_node(node, n) == 0;
}

/* Whether a payload of k's size holds what k's parser must take. */
static bool ns_valid(const struct ns_kind *k, const uint8_t *p)
{
	if (k->name_at != NO_NAME && !group_name_ok((const char *)p + k->name_at))
		return false;
	if (k->type == WIRE_GROUP) {
		uint32_t reserved;
		memcpy(&reserved, p + offsetof(struct wire_group, reserved), sizeof(reserved));
		if (reserved || !node_ok((const char *)p + offsetof(struct wire_group, master)))
			return false;
	}
	if (k->type == WIRE_REPLY) {
		struct wire_reply r;
		memcpy(&r, p, sizeof(r));
		return r.status <= 0 && r.status >= -4095 && r.pad == 0;
	}
	return true;
}

/* Every replica parser on one frame: what it takes keeps the rules. */
static void parse_repl(const struct wire_frame *f)
{
	static struct wire_member list[WIRE_MEMBERS_MAX];
	uint16_t ask[] = {WIRE_CLAIM, WIRE_SUB, WIRE_MEMBERS, WIRE_FOPEN, WIRE_GONE};
	for (size_t k = 0; k < sizeof(ask) / sizeof(ask[0]); k++) {
		struct wire_claim c;
		if (wire_ask_parse(f, ask[k], &c) == 0)
			CHECK(ask[k] != WIRE_GONE && f->type == ask[k] && f->len == sizeof(c) &&
			      group_name_ok(c.name));
	}
	struct wire_subbed sb;
	if (wire_subbed_parse(f, &sb) == 0)
		CHECK((f->type == WIRE_SUBBED || f->type == WIRE_FOPENED) && sb.status <= 0 &&
		      sb.status >= -4095);
	struct wire_fwd fw;
	const uint8_t *fp = NULL;
	if (wire_fwd_parse(f, &fw, &fp) == 0)
		CHECK(f->type == WIRE_FWD && fw.len == f->len - sizeof(fw) && !(fw.flags & ~1u) &&
		      !fw.pad && fw.from_pid > 0 && fp == f->payload + sizeof(fw));
	struct wire_fack fa;
	if (wire_fack_parse(f, &fa) == 0)
		CHECK((f->type == WIRE_FACK || f->type == WIRE_CREDIT) && f->len == sizeof(fa) &&
		      !fa.pad);
	struct wire_nodeidx ni;
	if (wire_nodeidx_parse(f, &ni) == 0)
		CHECK(f->type == WIRE_NODEIDX && ni.index >= 1 && ni.index < 32 && node_ok(ni.node));
	struct wire_unsub u;
	if (wire_unsub_parse(f, &u) == 0)
		CHECK((f->type == WIRE_UNSUB || f->type == WIRE_EVICTED) && u.pad == 0);
	struct wire_rec r;
	const uint8_t *payload = NULL;
	if (wire_rec_parse(f, &r, &payload) == 0)
		CHECK(f->type == WIRE_REC && r.len == f->len - sizeof(r) && r.kind >= 2 &&
		      r.kind <= 6 && r.seq && payload == f->payload + sizeof(r));
	struct wire_rjoin j;
	if (wire_rjoin_parse(f, &j) == 0)
		CHECK((f->type == WIRE_RJOIN || f->type == WIRE_RLEAVE) && j.pid > 0 &&
		      !(j.flags & ~WIRE_RLEAVE_EXITED) && group_name_ok(j.name));
	struct wire_members h;
	if (wire_members_parse(f, &h, list, WIRE_MEMBERS_MAX) == 0) {
		CHECK(f->type == WIRE_MEMBER_LIST && h.n <= WIRE_MEMBERS_MAX &&
		      f->len == sizeof(h) + h.n * sizeof(struct wire_member));
		for (uint32_t i = 0; i < h.n; i++)
			CHECK(node_ok(list[i].node) && list[i].pad == 0);
		/* One entry short of room: refused. */
		if (h.n)
			CHECK(wire_members_parse(f, &h, list, h.n - 1) == -EBADMSG);
	}
}

/* Every namespace parser on one frame: it takes exactly what the rules
 * say, copies it whole (the bytes again once encoded) or leaves out as it
 * was. */
static void parse_ns(const struct wire_frame *f, const uint8_t *orig, size_t used)
{
	static uint8_t out[NS_BYTES], fill[NS_BYTES];
	memset(fill, 0x5a, sizeof(fill));
	for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
		memcpy(out, fill, sizeof(out));
		int r = ns[k].parse(f, out);
		CHECK(r == 0 || r == -EBADMSG);
		bool want =
		    f->type == ns[k].type && f->len == ns[k].size && ns_valid(&ns[k], f->payload);
		CHECK((r == 0) == want);
		if (r)
			CHECK(memcmp(out, fill, sizeof(out)) == 0);
		else
			same_bytes(f, out, ns[k].size, orig, used);
	}
}

/* Run every parser: the frame's own must agree with its checks, the others
 * must refuse it. */
static void parse(const struct wire_frame *f, const uint8_t *orig, size_t used)
{
	struct wire_hello h;
	struct wire_proof pr;
	struct wire_ping pi;
	size_t n = 0;
	int rh = wire_hello_parse(f, &h);
	int rpr = wire_proof_parse(f, &pr);
	int rpi = wire_ping_parse(f, &pi);
	int rps = wire_peers_parse(f, peers, WIRE_PEERS_MAX, &n);
	int rb = wire_bye_parse(f);
	CHECK(rh == 0 || rh == -EBADMSG);
	CHECK(rpr == 0 || rpr == -EBADMSG);
	CHECK(rpi == 0 || rpi == -EBADMSG);
	CHECK(rps == 0 || rps == -EBADMSG);
	CHECK(rb == 0 || rb == -EBADMSG);
	CHECK(f->type == WIRE_HELLO || rh);
	CHECK(f->type == WIRE_PROOF || rpr);
	CHECK(f->type == WIRE_PING || f->type == WIRE_PONG || rpi);
	CHECK(f->type == WIRE_PEERS || rps);
	CHECK(f->type == WIRE_BYE || rb);
	parse_ns(f, orig, used);
	parse_repl(f);

	switch (f->type) {
	case WIRE_HELLO:
		CHECK(rh || f->len == sizeof(h));
		if (rh)
			break;
		CHECK(h.magic == WIRE_MAGIC);
		check_node(h.node);
		same_bytes(f, &h, sizeof(h), orig, used);
		break;
	case WIRE_PROOF:
		CHECK((rpr == 0) == (f->len == sizeof(pr)));
		if (!rpr)
			same_bytes(f, &pr, sizeof(pr), orig, used);
		break;
	case WIRE_PING:
	case WIRE_PONG:
		CHECK((rpi == 0) == (f->len == sizeof(pi)));
		if (!rpi)
			same_bytes(f, &pi, sizeof(pi), orig, used);
		break;
	case WIRE_PEERS:
		if (rps) {
			CHECK(n == 0);
			break;
		}
		CHECK(f->len % sizeof(struct wire_peer) == 0 &&
		      n == f->len / sizeof(struct wire_peer) && n <= WIRE_PEERS_MAX);
		for (size_t i = 0; i < n; i++)
			check_peer(&peers[i]);
		same_bytes(f, peers, n * sizeof(struct wire_peer), orig, used);
		/* One entry short of room: refused. */
		if (n) {
			size_t m = 12345;
			CHECK(wire_peers_parse(f, peers, n - 1, &m) == -EBADMSG && m == 12345);
		}
		break;
	case WIRE_BYE:
		CHECK((rb == 0) == (f->len == 0));
		if (!rb)
			same_bytes(f, NULL, 0, orig, used);
		break;
	default:
		/* A namespace or replica frame, which parse_ns and
		 * parse_repl have judged. */
		CHECK(f->type >= WIRE_GROUP && f->type <= WIRE_TYPE_MAX);
	}
}

/* Mode 0. */
static void walk(const uint8_t *buf, size_t len)
{
	size_t off = 0;
	for (;;) {
		struct wire_frame f;
		size_t used = 0, left = len - off;
		int r = wire_next(buf + off, left, &f, &used);
		if (r != 1) {
			CHECK(r == 0 || r == -EBADMSG || r == -EMSGSIZE);
			CHECK((r == 0) == (left == 0));
			struct wire_hdr h;
			if (left >= HDR) {
				memcpy(&h, buf + off, HDR);
				bool known = h.type >= 1 && h.type <= WIRE_TYPE_MAX && !h.flags;
				CHECK(r != -EMSGSIZE || (known && h.len > WIRE_FRAME_MAX));
			} else {
				CHECK(r != -EMSGSIZE);
			}
			return;
		}
		CHECK(used >= HDR && used <= left);
		CHECK(f.type >= 1 && f.type <= WIRE_TYPE_MAX && f.len <= WIRE_FRAME_MAX);
		CHECK(f.payload == buf + off + HDR && used == HDR + f.len);
		parse(&f, buf + off, used);
		off += used;
	}
}

/* Mode 1. */
static void addr_input(const uint8_t *data, size_t size)
{
	char s[WIRE_ADDR_MAX + 16];
	size_t n = size < sizeof(s) - 1 ? size : sizeof(s) - 1;
	memcpy(s, data, n);
	s[n] = 0;
	char host[WIRE_ADDR_MAX];
	uint16_t port = 0;
	int r = wire_check_addr(s, host, sizeof(host), &port);
	CHECK(r == 0 || r == -EINVAL);
	if (r == 0)
		check_addr_ok(s);
	else
		CHECK(wire_check_addr(s, NULL, 0, NULL) == -EINVAL);

	/* A field's worth of bytes with no NUL, in an exact copy: refused,
	 * and not read past. */
	if (size >= WIRE_ADDR_MAX && !memchr(data, 0, WIRE_ADDR_MAX)) {
		char *raw = malloc(WIRE_ADDR_MAX);
		if (!raw)
			return;
		memcpy(raw, data, WIRE_ADDR_MAX);
		CHECK(wire_check_addr(raw, NULL, 0, NULL) == -EINVAL);
		free(raw);
	}
}

/* Mode 2: a buffer size (2 bytes), then (type, length, payload) triples. */
#define PUT_CAP 4096
#define PUT_MAX 256
static void put_script(const uint8_t *data, size_t size)
{
	static uint8_t out[PUT_CAP], before[PUT_CAP];
	static struct {
		uint16_t type;
		size_t off, len; /* payload: data[off..off+len) */
	} put[PUT_MAX];
	if (size < 2)
		return;
	size_t cap = (data[0] | (size_t)data[1] << 8) % (PUT_CAP + 1);
	size_t p = 2, len = 0, np = 0;
	memset(out, 0xee, sizeof(out));
	while (np < PUT_MAX && size - p >= 2) {
		uint16_t type = data[p] % (WIRE_TYPE_MAX + 2);
		size_t plen = data[p + 1];
		p += 2;
		if (plen > size - p)
			plen = size - p;
		memcpy(before, out, cap);
		size_t was = len;
		int r = wire_put(out, cap, &len, type, data + p, (uint32_t)plen);
		if (type == 0 || type > WIRE_TYPE_MAX)
			CHECK(r == -EINVAL);
		else if (was + HDR + plen > cap)
			CHECK(r == -ENOBUFS);
		else
			CHECK(r == 0);
		if (r) {
			CHECK(len == was && memcmp(before, out, cap) == 0);
		} else {
			CHECK(len == was + HDR + plen);
			put[np].type = type;
			put[np].off = p;
			put[np].len = plen;
			np++;
		}
		p += plen;
	}
	/* Exactly sized, so wire_next reading past the end hits a redzone. */
	uint8_t *b = malloc(len ? len : 1);
	if (!b)
		return;
	memcpy(b, out, len);
	size_t off = 0, used;
	struct wire_frame f;
	for (size_t i = 0; i < np; i++) {
		CHECK(wire_next(b + off, len - off, &f, &used) == 1);
		CHECK(f.type == put[i].type && f.len == put[i].len);
		CHECK(memcmp(f.payload, data + put[i].off, f.len) == 0);
		off += used;
	}
	CHECK(off == len && wire_next(b + off, 0, &f, &used) == 0);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		/* libFuzzer's buffer is exactly sized: an over-read shows. */
		walk(data + 1, size - 1);
		break;
	case 1:
		addr_input(data + 1, size - 1);
		break;
	default:
		put_script(data + 1, size - 1);
		break;
	}
	return 0;
}

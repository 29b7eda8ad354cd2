// SPDX-License-Identifier: MIT
/*
 * Unit tests of the node frames (lib/proto/wire): every type through
 * wire_put, wire_next and its parser; a record cut at every byte; headers
 * that lie; the name and address rules; the PEERS bounds; the namespace
 * frames' names and reply status; a full buffer.
 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/wire.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define HDR sizeof(struct wire_hdr)

/* Room for a PEERS frame one entry over the limit, and more. */
static uint8_t buf[HDR + (WIRE_PEERS_MAX + 2) * sizeof(struct wire_peer)];
static struct wire_peer peers[WIRE_PEERS_MAX + 1];

/* A copy that ends exactly where the bytes do, so ASan or valgrind sees a
 * read past them. */
static uint8_t *exact(const void *p, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);
	if (!c)
		CU_FAIL_FATAL("out of memory");
	memcpy(c, p, n);
	return c;
}

static void put_hdr(uint8_t *at, uint16_t type, uint16_t flags, uint32_t len)
{
	struct wire_hdr h = {.type = type, .flags = flags, .len = len};
	memcpy(at, &h, sizeof(h));
}

/* The one frame at buf[0..n): wire_next's verdict on it. */
static int next1(const uint8_t *b, size_t n, struct wire_frame *f)
{
	size_t used = 0;
	uint8_t *c = exact(b, n);
	int r = wire_next(c, n, f, &used);
	/* The frame must not point into the copy once it is gone. */
	if (r == 1) {
		CU_ASSERT_EQUAL(used, n);
		f->payload = b + (f->payload - c);
	}
	free(c);
	return r;
}

static struct wire_hello sample_hello(void)
{
	struct wire_hello h = {.magic = WIRE_MAGIC,
			       .version = WIRE_VERSION,
			       .flags = WIRE_HELLO_ENCRYPT | WIRE_HELLO_AES};
	for (size_t i = 0; i < sizeof(h.nonce); i++) {
		h.nonce[i] = (uint8_t)i;
		h.kx_pk[i] = (uint8_t)(0xff - i);
	}
	strcpy(h.node, "node-a.example_1@x");
	return h;
}

static struct wire_peer make_peer(const char *node, const char *addr)
{
	struct wire_peer p;
	memset(&p, 0, sizeof(p));
	memcpy(p.node, node, strnlen(node, sizeof(p.node)));
	memcpy(p.addr, addr, strnlen(addr, sizeof(p.addr)));
	return p;
}

/* The namespace frames: one table, so each test runs over all of them. */
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
	const char *what;
	uint16_t type;
	size_t size, name_at; /* NO_NAME: it has none */
	int (*parse)(const struct wire_frame *f, void *out);
} ns[] = {
    {"group", WIRE_GROUP, sizeof(struct wire_group), offsetof(struct wire_group, name),
     parse_group},
    {"gone", WIRE_GONE, sizeof(struct wire_name), offsetof(struct wire_name, name), parse_name},
    {"claim", WIRE_CLAIM, sizeof(struct wire_claim), offsetof(struct wire_claim, name),
     parse_claim},
    {"create", WIRE_CREATE, sizeof(struct wire_create), offsetof(struct wire_create, name),
     parse_create},
    {"delete", WIRE_DELETE, sizeof(struct wire_delete), offsetof(struct wire_delete, name),
     parse_delete},
    {"reply", WIRE_REPLY, sizeof(struct wire_reply), NO_NAME, parse_reply},
};
#define NS_BYTES sizeof(struct wire_group) /* the largest of them */

static const struct ns_kind *ns_of(uint16_t type)
{
	for (size_t k = 0; k < ARRAY_SIZE(ns); k++)
		if (ns[k].type == type)
			return &ns[k];
	CU_FAIL_FATAL("no such namespace frame");
	return NULL;
}

static struct wire_group sample_group(void)
{
	struct wire_group g;
	memset(&g, 0, sizeof(g));
	g.created_ns = 1700000000123456789ll;
	g.ring_bytes = 1u << 20;
	g.max_msg = 4096;
	g.stall_ms = 250;
	g.mode = 0640;
	g.uid = 1000;
	g.gid = 100;
	g.ack = 42;
	strcpy(g.master, "node-a");
	strcpy(g.name, "chat.room-1");
	return g;
}

/* A valid payload of kind k. */
static void ns_sample(const struct ns_kind *k, uint8_t out[NS_BYTES])
{
	union {
		struct wire_group g;
		struct wire_name n;
		struct wire_claim c;
		struct wire_create cr;
		struct wire_delete d;
		struct wire_reply r;
	} u;
	memset(&u, 0, sizeof(u));
	switch (k->type) {
	case WIRE_GROUP:
		u.g = sample_group();
		break;
	case WIRE_GONE:
		strcpy(u.n.name, "gone");
		break;
	case WIRE_CLAIM:
		u.c.id = 0x1122334455667788ull;
		strcpy(u.c.name, "claimed");
		break;
	case WIRE_CREATE:
		u.cr = (struct wire_create){
		    .id = 9, .stall_ms = 7, .mode = 0600, .uid = 1001, .gid = 1002};
		/* Anything but NUL and '/' is a group name. */
		strcpy(u.cr.name, "new group:\xc3\xa4");
		break;
	case WIRE_DELETE:
		u.d = (struct wire_delete){.id = UINT64_MAX, .uid = 0, .gid = 5};
		strcpy(u.d.name, "old");
		break;
	default:
		u.r = (struct wire_reply){.id = 9, .status = -EEXIST};
	}
	memcpy(out, &u, k->size);
}

static bool untouched(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i] != 0x5a)
			return false;
	return true;
}

/* payload[0..len) as a frame of type t, through k's parser: its verdict,
 * and out checked to be the payload or untouched. The payload is copied
 * exactly, so a read past it shows under ASan. */
static int ns_parse(const struct ns_kind *k, uint16_t t, const uint8_t *payload, size_t len)
{
	static uint8_t out[NS_BYTES];
	uint8_t *c = exact(payload, len);
	struct wire_frame f = {.type = t, .payload = c, .len = (uint32_t)len};
	memset(out, 0x5a, sizeof(out));
	int r = k->parse(&f, out);
	if (r == 0) {
		CU_ASSERT(len == k->size && memcmp(out, payload, len) == 0);
	} else {
		CU_ASSERT(untouched(out, sizeof(out)));
	}
	CU_ASSERT(r == 0 || r == -EBADMSG);
	free(c);
	return r;
}

/* One frame of each type, and a pong: the record the tests below break. */
static size_t sample_record(uint8_t *out, size_t cap)
{
	struct wire_hello h = sample_hello();
	struct wire_proof pr;
	struct wire_ping pi = {.id = 0x0102030405060708ull, .sent_ns = -5};
	struct wire_peer ps[3] = {make_peer("b", "10.0.0.2:7000"), make_peer("c", ""),
				  make_peer("d", "[fe80::1]:65535")};
	for (size_t i = 0; i < sizeof(pr.mac); i++)
		pr.mac[i] = (uint8_t)(3 * i);
	size_t len = 0;
	CU_ASSERT_EQUAL(wire_put(out, cap, &len, WIRE_HELLO, &h, sizeof(h)), 0);
	CU_ASSERT_EQUAL(wire_put(out, cap, &len, WIRE_PROOF, &pr, sizeof(pr)), 0);
	CU_ASSERT_EQUAL(wire_put(out, cap, &len, WIRE_PING, &pi, sizeof(pi)), 0);
	CU_ASSERT_EQUAL(wire_put(out, cap, &len, WIRE_PONG, &pi, sizeof(pi)), 0);
	CU_ASSERT_EQUAL(wire_put(out, cap, &len, WIRE_PEERS, ps, sizeof(ps)), 0);
	CU_ASSERT_EQUAL(wire_put(out, cap, &len, WIRE_PEERS, NULL, 0), 0);
	CU_ASSERT_EQUAL(wire_put(out, cap, &len, WIRE_BYE, NULL, 0), 0);
	for (size_t k = 0; k < ARRAY_SIZE(ns); k++) {
		uint8_t p[NS_BYTES];
		ns_sample(&ns[k], p);
		CU_ASSERT_EQUAL(wire_put(out, cap, &len, ns[k].type, p, (uint32_t)ns[k].size), 0);
	}
	return len;
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                              */

static void test_round_trip(void)
{
	size_t n = sample_record(buf, sizeof(buf));
	size_t expect = (7 + ARRAY_SIZE(ns)) * HDR + sizeof(struct wire_hello) +
			sizeof(struct wire_proof) + 2 * sizeof(struct wire_ping) +
			3 * sizeof(struct wire_peer);
	for (size_t k = 0; k < ARRAY_SIZE(ns); k++)
		expect += ns[k].size;
	CU_ASSERT_EQUAL_FATAL(n, expect);
	uint8_t *rec = exact(buf, n);

	static const uint16_t types[] = {
	    WIRE_HELLO, WIRE_PROOF, WIRE_PING,	WIRE_PONG,   WIRE_PEERS,  WIRE_PEERS, WIRE_BYE,
	    WIRE_GROUP, WIRE_GONE,  WIRE_CLAIM, WIRE_CREATE, WIRE_DELETE, WIRE_REPLY};
	struct wire_hello h0 = sample_hello();
	size_t off = 0, i = 0, used;
	struct wire_frame f;
	int r;
	while ((r = wire_next(rec + off, n - off, &f, &used)) == 1) {
		CU_ASSERT_FATAL(i < ARRAY_SIZE(types));
		CU_ASSERT_EQUAL(f.type, types[i]);
		CU_ASSERT_PTR_EQUAL(f.payload, rec + off + HDR);
		CU_ASSERT_EQUAL(used, HDR + f.len);
		struct wire_hello h;
		struct wire_proof pr;
		struct wire_ping pi;
		uint8_t want[NS_BYTES], got[NS_BYTES];
		size_t np = 99;
		switch (i) {
		case 0:
			CU_ASSERT_EQUAL(wire_hello_parse(&f, &h), 0);
			CU_ASSERT(memcmp(&h, &h0, sizeof(h)) == 0);
			CU_ASSERT_STRING_EQUAL(h.node, "node-a.example_1@x");
			break;
		case 1:
			CU_ASSERT_EQUAL(wire_proof_parse(&f, &pr), 0);
			CU_ASSERT(pr.mac[0] == 0 && pr.mac[31] == 93);
			break;
		case 2:
		case 3:
			CU_ASSERT_EQUAL(wire_ping_parse(&f, &pi), 0);
			CU_ASSERT(pi.id == 0x0102030405060708ull && pi.sent_ns == -5);
			break;
		case 4:
			CU_ASSERT_EQUAL(wire_peers_parse(&f, peers, WIRE_PEERS_MAX, &np), 0);
			CU_ASSERT_EQUAL(np, 3);
			CU_ASSERT_STRING_EQUAL(peers[0].node, "b");
			CU_ASSERT_STRING_EQUAL(peers[0].addr, "10.0.0.2:7000");
			CU_ASSERT_STRING_EQUAL(peers[1].addr, "");
			CU_ASSERT_STRING_EQUAL(peers[2].addr, "[fe80::1]:65535");
			break;
		case 5:
			CU_ASSERT_EQUAL(wire_peers_parse(&f, peers, WIRE_PEERS_MAX, &np), 0);
			CU_ASSERT_EQUAL(np, 0);
			break;
		case 6:
			CU_ASSERT_EQUAL(wire_bye_parse(&f), 0);
			break;
		default:
			ns_sample(&ns[i - 7], want);
			CU_ASSERT_EQUAL(ns[i - 7].parse(&f, got), 0);
			CU_ASSERT(memcmp(got, want, ns[i - 7].size) == 0);
		}
		off += used;
		i++;
	}
	CU_ASSERT_EQUAL(r, 0);
	CU_ASSERT_EQUAL(off, n);
	CU_ASSERT_EQUAL(i, ARRAY_SIZE(types));
	free(rec);
}

/* A parser takes its own type only (PING and PONG share one). */
static void test_wrong_parser(void)
{
	static uint8_t p[sizeof(struct wire_hello)];
	struct wire_hello h = sample_hello();
	memcpy(p, &h, sizeof(h));
	struct wire_hello oh;
	struct wire_proof opr;
	struct wire_ping opi;
	size_t n;
	for (uint16_t t = 0; t <= WIRE_TYPE_MAX + 1; t++) {
		struct wire_frame f = {.type = t, .payload = p, .len = sizeof(h)};
		CU_ASSERT_EQUAL(wire_hello_parse(&f, &oh), t == WIRE_HELLO ? 0 : -EBADMSG);
		f.len = sizeof(opr);
		CU_ASSERT_EQUAL(wire_proof_parse(&f, &opr), t == WIRE_PROOF ? 0 : -EBADMSG);
		f.len = sizeof(opi);
		CU_ASSERT_EQUAL(wire_ping_parse(&f, &opi),
				t == WIRE_PING || t == WIRE_PONG ? 0 : -EBADMSG);
		f.len = 0;
		CU_ASSERT_EQUAL(wire_peers_parse(&f, peers, WIRE_PEERS_MAX, &n),
				t == WIRE_PEERS ? 0 : -EBADMSG);
		CU_ASSERT_EQUAL(wire_bye_parse(&f), t == WIRE_BYE ? 0 : -EBADMSG);
		/* GONE has its own layout's name (wire_name), REPLY its own. */
		for (size_t k = 0; k < ARRAY_SIZE(ns); k++) {
			uint8_t s[NS_BYTES];
			ns_sample(&ns[k], s);
			CU_ASSERT_EQUAL(ns_parse(&ns[k], t, s, ns[k].size),
					t == ns[k].type ? 0 : -EBADMSG);
		}
	}
	/* A PING and a REPLY are both 16 bytes, and this one reads well as
	 * either: the type alone tells them apart. */
	struct wire_ping pi = {.id = 1};
	struct wire_frame f = {.type = WIRE_PING, .payload = (const uint8_t *)&pi, .len = 16};
	struct wire_reply r;
	CU_ASSERT_EQUAL(wire_reply_parse(&f, &r), -EBADMSG);
	f.type = WIRE_REPLY;
	CU_ASSERT_EQUAL(wire_reply_parse(&f, &r), 0);
	CU_ASSERT_EQUAL(wire_ping_parse(&f, &opi), -EBADMSG);
}

/* Fixed layouts are exactly their size: one byte less or more is refused,
 * and the output is not touched. */
static void test_sizes(void)
{
	static uint8_t p[sizeof(struct wire_hello) + 1];
	struct wire_hello h = sample_hello();
	memcpy(p, &h, sizeof(h));
	struct wire_frame f = {.type = WIRE_HELLO, .payload = p};
	struct wire_hello oh;
	struct wire_proof opr;
	struct wire_ping opi;
	for (int d = -1; d <= 1; d += 2) {
		memset(&oh, 0x5a, sizeof(oh));
		f.type = WIRE_HELLO;
		f.len = (uint32_t)((int)sizeof(h) + d);
		CU_ASSERT_EQUAL(wire_hello_parse(&f, &oh), -EBADMSG);
		CU_ASSERT_EQUAL(oh.magic, 0x5a5a5a5au);
		f.type = WIRE_PROOF;
		f.len = (uint32_t)((int)sizeof(opr) + d);
		CU_ASSERT_EQUAL(wire_proof_parse(&f, &opr), -EBADMSG);
		f.type = WIRE_PING;
		f.len = (uint32_t)((int)sizeof(opi) + d);
		CU_ASSERT_EQUAL(wire_ping_parse(&f, &opi), -EBADMSG);
		f.type = WIRE_PONG;
		CU_ASSERT_EQUAL(wire_ping_parse(&f, &opi), -EBADMSG);
		/* The valid payload with a zero byte more, or its last byte
		 * (a NUL of the name's padding, or the reply's pad) less. */
		for (size_t k = 0; k < ARRAY_SIZE(ns); k++) {
			uint8_t s[NS_BYTES + 1] = {0};
			ns_sample(&ns[k], s);
			CU_ASSERT_EQUAL(ns_parse(&ns[k], ns[k].type, s, ns[k].size + (size_t)d),
					-EBADMSG);
		}
	}
	for (size_t k = 0; k < ARRAY_SIZE(ns); k++) {
		uint8_t s[NS_BYTES];
		ns_sample(&ns[k], s);
		CU_ASSERT_EQUAL(ns_parse(&ns[k], ns[k].type, s, 0), -EBADMSG);
		CU_ASSERT_EQUAL(ns_parse(&ns[k], ns[k].type, s, ns[k].size), 0);
	}
	f.type = WIRE_BYE;
	for (uint32_t l = 1; l < 4; l++) {
		f.len = l;
		CU_ASSERT_EQUAL(wire_bye_parse(&f), -EBADMSG);
	}
	f.len = 0;
	CU_ASSERT_EQUAL(wire_bye_parse(&f), 0);
}

/* ------------------------------------------------------------------------ */
/* wire_next                                                                */

/* Every prefix of a good record: whole frames come out intact, then 0 at
 * a frame boundary or -EBADMSG inside a frame; never a read past the cut
 * (the copy is exact). */
static void test_truncation(void)
{
	size_t n = sample_record(buf, sizeof(buf));
	/* Where the frames end. */
	size_t ends[16], nends = 0, off = 0, used;
	struct wire_frame f;
	while (wire_next(buf + off, n - off, &f, &used) == 1) {
		off += used;
		ends[nends++] = off;
	}
	CU_ASSERT_EQUAL_FATAL(off, n);

	unsigned wrong = 0;
	for (size_t cut = 0; cut <= n; cut++) {
		uint8_t *c = exact(buf, cut);
		size_t at = 0, k = 0;
		int r;
		while ((r = wire_next(c + at, cut - at, &f, &used)) == 1) {
			wrong += used > cut - at || used < HDR || k >= nends ||
				 at + used != ends[k] || f.payload != c + at + HDR ||
				 memcmp(f.payload, buf + at + HDR, f.len) != 0;
			at += used;
			k++;
		}
		bool boundary = cut == 0;
		for (size_t e = 0; e < nends; e++)
			boundary |= ends[e] == cut;
		wrong += boundary ? (r != 0 || at != cut) : r != -EBADMSG;
		free(c);
	}
	CU_ASSERT_EQUAL(wrong, 0);
}

static void test_header(void)
{
	uint8_t b[HDR + 16] = {0};
	struct wire_frame f = {0};
	size_t used = 12345;

	/* Empty: the end, not an error; nothing written. */
	CU_ASSERT_EQUAL(wire_next(b, 0, &f, &used), 0);
	CU_ASSERT_EQUAL(used, 12345);

	/* Shorter than a header, however plausible its start. */
	put_hdr(b, WIRE_BYE, 0, 0);
	for (size_t k = 1; k < HDR; k++)
		CU_ASSERT_EQUAL(next1(b, k, &f), -EBADMSG);
	CU_ASSERT_EQUAL(next1(b, HDR, &f), 1);

	/* Types: 0, past the last, the high byte set. */
	static const uint16_t bad[] = {0, WIRE_TYPE_MAX + 1, 0x100, 0x101, 0xffff};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		put_hdr(b, bad[i], 0, 0);
		CU_ASSERT_EQUAL(next1(b, HDR, &f), -EBADMSG);
	}
	for (uint16_t t = 1; t <= WIRE_TYPE_MAX; t++) {
		put_hdr(b, t, 0, 0);
		CU_ASSERT_EQUAL(next1(b, HDR, &f), 1);
		CU_ASSERT(f.type == t && f.len == 0);
	}

	/* Any flag bit. */
	for (unsigned bit = 0; bit < 16; bit++) {
		put_hdr(b, WIRE_PING, (uint16_t)(1u << bit), 0);
		CU_ASSERT_EQUAL(next1(b, HDR, &f), -EBADMSG);
	}

	/* A payload longer than what is there, by one byte or by far. */
	memset(b + HDR, 0, 16);
	put_hdr(b, WIRE_PING, 0, 16);
	CU_ASSERT_EQUAL(next1(b, HDR + 16, &f), 1);
	CU_ASSERT_EQUAL(f.len, 16);
	CU_ASSERT_EQUAL(next1(b, HDR + 15, &f), -EBADMSG);
	put_hdr(b, WIRE_PING, 0, 17);
	CU_ASSERT_EQUAL(next1(b, HDR + 16, &f), -EBADMSG);
	put_hdr(b, WIRE_PING, 0, WIRE_FRAME_MAX);
	CU_ASSERT_EQUAL(next1(b, HDR + 16, &f), -EBADMSG);

	/* Over the limit is -EMSGSIZE, even with the payload cut short. */
	static const uint32_t huge[] = {WIRE_FRAME_MAX + 1, 1u << 31, UINT32_MAX};
	for (size_t i = 0; i < ARRAY_SIZE(huge); i++) {
		put_hdr(b, WIRE_PEERS, 0, huge[i]);
		CU_ASSERT_EQUAL(next1(b, HDR, &f), -EMSGSIZE);
		CU_ASSERT_EQUAL(next1(b, HDR + 16, &f), -EMSGSIZE);
	}
	/* A bad type is reported as such whatever the length says. */
	put_hdr(b, 0, 0, UINT32_MAX);
	CU_ASSERT_EQUAL(next1(b, HDR, &f), -EBADMSG);
}

/* The limit itself: a payload of exactly WIRE_FRAME_MAX is a frame. */
static void test_frame_max(void)
{
	size_t n = HDR + WIRE_FRAME_MAX;
	uint8_t *b = calloc(1, n + 1), *payload = calloc(1, WIRE_FRAME_MAX + 1);
	CU_ASSERT_FATAL(b != NULL && payload != NULL);
	size_t len = 0, used;
	struct wire_frame f;
	CU_ASSERT_EQUAL(wire_put(b, n, &len, WIRE_PEERS, payload, WIRE_FRAME_MAX), 0);
	CU_ASSERT_EQUAL(len, n);
	CU_ASSERT_EQUAL(wire_next(b, n, &f, &used), 1);
	CU_ASSERT(used == n && f.len == WIRE_FRAME_MAX);
	CU_ASSERT_EQUAL(wire_next(b, n - 1, &f, &used), -EBADMSG);
	/* Too big for PEERS, which it is: the parser says so, not the walk. */
	size_t np;
	CU_ASSERT_EQUAL(wire_peers_parse(&f, peers, WIRE_PEERS_MAX + 1, &np), -EBADMSG);
	len = 0;
	CU_ASSERT_EQUAL(wire_put(b, n + 1, &len, WIRE_PEERS, payload, WIRE_FRAME_MAX + 1),
			-EMSGSIZE);
	CU_ASSERT_EQUAL(len, 0);
	free(payload);
	free(b);
}

/* ------------------------------------------------------------------------ */
/* Names                                                                    */

/* A node field as it would arrive, and whether hello, peers and a group's
 * master take it. */
static void expect_node(const char node[WIRE_NODE_MAX], int want)
{
	struct wire_hello h = sample_hello(), oh;
	memcpy(h.node, node, WIRE_NODE_MAX);
	struct wire_frame f = {
	    .type = WIRE_HELLO, .payload = (const uint8_t *)&h, .len = sizeof(h)};
	CU_ASSERT_EQUAL(wire_hello_parse(&f, &oh), want);

	struct wire_peer p = make_peer("x", "h:1");
	memcpy(p.node, node, WIRE_NODE_MAX);
	size_t n;
	f = (struct wire_frame){
	    .type = WIRE_PEERS, .payload = (const uint8_t *)&p, .len = sizeof(p)};
	CU_ASSERT_EQUAL(wire_peers_parse(&f, peers, WIRE_PEERS_MAX, &n), want);

	struct wire_group g = sample_group();
	memcpy(g.master, node, WIRE_NODE_MAX);
	CU_ASSERT_EQUAL(ns_parse(ns_of(WIRE_GROUP), WIRE_GROUP, (const uint8_t *)&g, sizeof(g)),
			want);
}

static void test_names(void)
{
	char node[WIRE_NODE_MAX];

	memset(node, 0, sizeof(node));
	expect_node(node, -EBADMSG); /* empty */
	node[0] = 'a';
	expect_node(node, 0);

	/* 63 bytes and its NUL fill the field; 64 leave no room for it. */
	memset(node, 'n', 63);
	node[63] = 0;
	expect_node(node, 0);
	memset(node, 'n', 64);
	expect_node(node, -EBADMSG);

	/* Outside the alphabet. */
	static const char *bad[] = {"a b", "a/b", "a:b", "\xc3\xa4", "\n", "a\x7f", "*"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(node, 0, sizeof(node));
		strcpy(node, bad[i]);
		expect_node(node, -EBADMSG);
	}

	/* Anything after the NUL, at any place, the last byte too. */
	for (size_t at = 2; at < WIRE_NODE_MAX; at++) {
		memset(node, 0, sizeof(node));
		strcpy(node, "a");
		node[at] = 'b';
		expect_node(node, -EBADMSG);
	}
	memset(node, 0, sizeof(node));
	strcpy(node, "host-1.example_x@y");
	expect_node(node, 0);
}

/* Magic, not version: the handshake answers for the version. */
static void test_hello_magic(void)
{
	struct wire_hello h = sample_hello(), oh;
	struct wire_frame f = {
	    .type = WIRE_HELLO, .payload = (const uint8_t *)&h, .len = sizeof(h)};
	static const uint32_t magics[] = {0, WIRE_MAGIC ^ 1, WIRE_MAGIC ^ 0x80000000u,
					  0x70676e64u /* byte-swapped */};
	for (size_t i = 0; i < ARRAY_SIZE(magics); i++) {
		h.magic = magics[i];
		CU_ASSERT_EQUAL(wire_hello_parse(&f, &oh), -EBADMSG);
	}
	h.magic = WIRE_MAGIC;
	static const uint16_t versions[] = {0, WIRE_VERSION + 1, 0xffff};
	for (size_t i = 0; i < ARRAY_SIZE(versions); i++) {
		h.version = versions[i];
		CU_ASSERT_EQUAL(wire_hello_parse(&f, &oh), 0);
		CU_ASSERT_EQUAL(oh.version, versions[i]);
	}
	/* The payload of a record is not aligned: parse from an odd address. */
	static uint8_t odd[sizeof(h) + 1];
	h.version = WIRE_VERSION;
	memcpy(odd + 1, &h, sizeof(h));
	f.payload = odd + 1;
	CU_ASSERT_EQUAL(wire_hello_parse(&f, &oh), 0);
	CU_ASSERT(memcmp(&oh, &h, sizeof(h)) == 0);
}

/* A name field as it would arrive, and whether every named frame takes it. */
static void expect_group_name(const char name[WIRE_NAME_MAX], int want)
{
	for (size_t k = 0; k < ARRAY_SIZE(ns); k++) {
		if (ns[k].name_at == NO_NAME)
			continue;
		uint8_t s[NS_BYTES];
		ns_sample(&ns[k], s);
		memcpy(s + ns[k].name_at, name, WIRE_NAME_MAX);
		int r = ns_parse(&ns[k], ns[k].type, s, ns[k].size);
		if (r != want)
			fprintf(stderr, "%s: \"%.*s\": %d\n", ns[k].what, (int)WIRE_NAME_MAX, name,
				r);
		CU_ASSERT_EQUAL(r, want);
	}
}

static void test_group_names(void)
{
	char name[WIRE_NAME_MAX];

	memset(name, 0, sizeof(name));
	expect_group_name(name, -EBADMSG); /* empty */
	name[0] = 'g';
	expect_group_name(name, 0);

	/* 255 bytes and the NUL fill the field; 256 leave no room for it
	 * (and, the name ending the payload, nothing past it is read). */
	memset(name, 'n', 255);
	name[255] = 0;
	expect_group_name(name, 0);
	memset(name, 'n', 256);
	expect_group_name(name, -EBADMSG);

	/* A '/' anywhere, the contract's one forbidden byte besides NUL. */
	static const char *bad[] = {"/", "a/b", "/a", "a/", "//"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memset(name, 0, sizeof(name));
		strcpy(name, bad[i]);
		expect_group_name(name, -EBADMSG);
	}
	memset(name, 'n', 255);
	name[254] = '/';
	name[255] = 0;
	expect_group_name(name, -EBADMSG);

	/* Whatever else: not the node alphabet. */
	static const char *good[] = {"a b", "a:b", "\xc3\xa4", "\n", "\x7f", "*", "..", "-"};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		memset(name, 0, sizeof(name));
		strcpy(name, good[i]);
		expect_group_name(name, 0);
	}

	/* Anything after the NUL, at any place, the last byte too. */
	unsigned wrong = 0;
	for (size_t at = 2; at < WIRE_NAME_MAX; at++) {
		memset(name, 0, sizeof(name));
		strcpy(name, "a");
		name[at] = 'b';
		for (size_t k = 0; k < ARRAY_SIZE(ns); k++) {
			if (ns[k].name_at == NO_NAME)
				continue;
			uint8_t s[NS_BYTES];
			ns_sample(&ns[k], s);
			memcpy(s + ns[k].name_at, name, WIRE_NAME_MAX);
			wrong += ns_parse(&ns[k], ns[k].type, s, ns[k].size) != -EBADMSG;
		}
	}
	CU_ASSERT_EQUAL(wrong, 0);
	/* A NUL first and a name after it is not that name. */
	memset(name, 0, sizeof(name));
	strcpy(name + 1, "hidden");
	expect_group_name(name, -EBADMSG);

	/* The master and the name are checked apart: a good name does not
	 * make up for a bad master. */
	struct wire_group g = sample_group();
	memset(g.master, 0, sizeof(g.master));
	strcpy(g.master, "a/b");
	CU_ASSERT_EQUAL(ns_parse(ns_of(WIRE_GROUP), WIRE_GROUP, (const uint8_t *)&g, sizeof(g)),
			-EBADMSG);
	g = sample_group();
	g.master[WIRE_NODE_MAX - 1] = 'x';
	CU_ASSERT_EQUAL(ns_parse(ns_of(WIRE_GROUP), WIRE_GROUP, (const uint8_t *)&g, sizeof(g)),
			-EBADMSG);

	/* The values are the daemon's to judge: any of them parses. */
	g = sample_group();
	g.created_ns = INT64_MIN;
	g.ring_bytes = g.max_msg = g.ack = UINT64_MAX;
	g.stall_ms = g.mode = g.uid = g.gid = UINT32_MAX;
	CU_ASSERT_EQUAL(ns_parse(ns_of(WIRE_GROUP), WIRE_GROUP, (const uint8_t *)&g, sizeof(g)), 0);
	struct wire_create c = {.id = 0, .ring_bytes = UINT64_MAX, .mode = UINT32_MAX};
	strcpy(c.name, "c");
	CU_ASSERT_EQUAL(ns_parse(ns_of(WIRE_CREATE), WIRE_CREATE, (const uint8_t *)&c, sizeof(c)),
			0);

	/* The payload of a record is not aligned: parse from an odd address. */
	static uint8_t odd[NS_BYTES + 1];
	for (size_t k = 0; k < ARRAY_SIZE(ns); k++) {
		uint8_t want[NS_BYTES], got[NS_BYTES];
		ns_sample(&ns[k], want);
		memcpy(odd + 1, want, ns[k].size);
		struct wire_frame f = {
		    .type = ns[k].type, .payload = odd + 1, .len = (uint32_t)ns[k].size};
		CU_ASSERT_EQUAL(ns[k].parse(&f, got), 0);
		CU_ASSERT(memcmp(got, want, ns[k].size) == 0);
	}
}

static int reply_with(int32_t status, uint32_t pad)
{
	struct wire_reply r = {.id = 77, .status = status, .pad = pad};
	return ns_parse(ns_of(WIRE_REPLY), WIRE_REPLY, (const uint8_t *)&r, sizeof(r));
}

static void test_reply(void)
{
	static const int32_t good[] = {0, -1, -EEXIST, -4095};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		CU_ASSERT_EQUAL(reply_with(good[i], 0), 0);
	static const int32_t bad[] = {1, EEXIST, -4096, -4097, INT32_MIN, INT32_MAX};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		CU_ASSERT_EQUAL(reply_with(bad[i], 0), -EBADMSG);
	static const uint32_t pads[] = {1, 0x100, 0x80000000u, UINT32_MAX};
	for (size_t i = 0; i < ARRAY_SIZE(pads); i++) {
		CU_ASSERT_EQUAL(reply_with(0, pads[i]), -EBADMSG);
		CU_ASSERT_EQUAL(reply_with(-1, pads[i]), -EBADMSG);
	}
	/* Every status around both ends of the range. */
	unsigned wrong = 0;
	for (int32_t st = -4200; st <= 100; st++)
		wrong += (reply_with(st, 0) == 0) != (st >= -4095 && st <= 0);
	CU_ASSERT_EQUAL(wrong, 0);
	/* Any id: it is the asker's to match. */
	struct wire_reply r = {.id = UINT64_MAX, .status = -4095};
	CU_ASSERT_EQUAL(ns_parse(ns_of(WIRE_REPLY), WIRE_REPLY, (const uint8_t *)&r, sizeof(r)), 0);
}

/* ------------------------------------------------------------------------ */
/* Addresses                                                                */

static void test_addr(void)
{
	char host[WIRE_ADDR_MAX];
	uint16_t port = 0;

	static const struct {
		const char *addr, *host;
		uint16_t port;
	} good[] = {
	    {"localhost:7000", "localhost", 7000},
	    {"10.0.0.1:1", "10.0.0.1", 1},
	    {"a:65535", "a", 65535},
	    {"node_1.example-x.org:443", "node_1.example-x.org", 443},
	    {"[::1]:80", "::1", 80},
	    {"[fe80::1:AbCd]:8080", "fe80::1:AbCd", 8080},
	    {"[::ffff:10.0.0.1]:9", "::ffff:10.0.0.1", 9},
	    {"h:00080", "h", 80},
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		memset(host, '#', sizeof(host));
		port = 0;
		CU_ASSERT_EQUAL(wire_check_addr(good[i].addr, host, sizeof(host), &port), 0);
		CU_ASSERT_STRING_EQUAL(host, good[i].host);
		CU_ASSERT_EQUAL(port, good[i].port);
		/* Either output may be left out. */
		CU_ASSERT_EQUAL(wire_check_addr(good[i].addr, NULL, 0, NULL), 0);
		CU_ASSERT_EQUAL(wire_check_addr(good[i].addr, host, sizeof(host), NULL), 0);
		CU_ASSERT_EQUAL(wire_check_addr(good[i].addr, NULL, 0, &port), 0);
		/* The host needs its NUL. */
		size_t hl = strlen(good[i].host);
		CU_ASSERT_EQUAL(wire_check_addr(good[i].addr, host, hl + 1, NULL), 0);
		memset(host, '#', sizeof(host));
		port = 0;
		CU_ASSERT_EQUAL(wire_check_addr(good[i].addr, host, hl, &port), -EINVAL);
		CU_ASSERT(host[0] == '#' && port == 0);
	}

	static const char *bad[] = {
	    "",
	    "localhost",
	    "localhost:",
	    ":80",
	    "h:0",
	    "h:00000",
	    "h:65536",
	    "h:99999",
	    "h:123456",
	    "h:000080",
	    "h:+80",
	    "h:-80",
	    "h: 80",
	    "h:80 ",
	    " h:80",
	    "h:8a",
	    "h:0x50",
	    "a b:80",
	    "a/b:80",
	    "a@b:80",
	    "\xc3\xa4:80",
	    "::1:80",
	    "fe80::1:80",
	    "a:b:80",
	    "[::1]",
	    "[::1]80",
	    "[::1]:",
	    "[]:80",
	    "[::1:80",
	    "::1]:80",
	    "[::1]]:80",
	    "[[::1]:80",
	    "[g::1]:80",
	    "[fe80::1%eth0]:80",
	    "[1.2.3.4]:80",
	    "x[::1]:80",
	    "[::1]x:80",
	    "h:80:",
	    "h:\t80",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		port = 0;
		memset(host, '#', sizeof(host));
		int r = wire_check_addr(bad[i], host, sizeof(host), &port);
		if (r != -EINVAL)
			fprintf(stderr, "accepted \"%s\"\n", bad[i]);
		CU_ASSERT_EQUAL(r, -EINVAL);
		CU_ASSERT(host[0] == '#' && port == 0);
		CU_ASSERT_EQUAL(wire_check_addr(bad[i], NULL, 0, NULL), -EINVAL);
	}

	/* Host length: WIRE_ADDR_MAX - 7 bytes, with a port of any width. */
	char a[WIRE_ADDR_MAX + 16];
	size_t hmax = WIRE_ADDR_MAX - 7;
	memset(a, 'h', hmax);
	strcpy(a + hmax, ":65535");
	CU_ASSERT_EQUAL(strlen(a), WIRE_ADDR_MAX - 1);
	CU_ASSERT_EQUAL(wire_check_addr(a, host, sizeof(host), &port), 0);
	CU_ASSERT(strlen(host) == hmax && port == 65535);
	memset(a, 'h', hmax + 1);
	strcpy(a + hmax + 1, ":1");
	CU_ASSERT_EQUAL(wire_check_addr(a, NULL, 0, NULL), -EINVAL);
	/* The brackets count. */
	memset(a, ':', hmax);
	a[0] = '[';
	a[hmax - 1] = ']';
	strcpy(a + hmax, ":65535");
	CU_ASSERT_EQUAL(wire_check_addr(a, host, sizeof(host), &port), 0);
	CU_ASSERT_EQUAL(strlen(host), hmax - 2);
	a[hmax] = ':';
	a[hmax - 1] = ':';
	a[hmax + 1] = ']';
	strcpy(a + hmax + 2, ":1");
	CU_ASSERT_EQUAL(wire_check_addr(a, NULL, 0, NULL), -EINVAL);
	/* No NUL within a wire_peer's field: refused, and (exact copy) not
	 * read past it. */
	memset(a, 'h', WIRE_ADDR_MAX);
	memcpy(a + 10, ":80", 3);
	char *unterminated = (char *)exact(a, WIRE_ADDR_MAX);
	CU_ASSERT_EQUAL(wire_check_addr(unterminated, NULL, 0, NULL), -EINVAL);
	free(unterminated);

	/* Every byte value in a host, unbracketed. */
	unsigned wrong = 0;
	for (int c = 1; c < 256; c++) {
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
		char s[8] = {'a', (char)c, 'b', ':', '8', 0};
		wrong += (wire_check_addr(s, NULL, 0, NULL) == 0) != ok;
	}
	CU_ASSERT_EQUAL(wrong, 0);

	/* Every port. */
	wrong = 0;
	for (unsigned p = 0; p <= 70000; p++) {
		snprintf(a, sizeof(a), "h:%u", p);
		int r = wire_check_addr(a, NULL, 0, &port);
		wrong += (r == 0) != (p >= 1 && p <= 65535) || (r == 0 && port != p);
	}
	CU_ASSERT_EQUAL(wrong, 0);
}

/* ------------------------------------------------------------------------ */
/* PEERS                                                                    */

static int peers_frame(size_t bytes, size_t cap, size_t *n)
{
	size_t len = 0;
	int r = wire_put(buf, sizeof(buf), &len, WIRE_PEERS, peers, (uint32_t)bytes);
	CU_ASSERT_EQUAL_FATAL(r, 0);
	struct wire_frame f;
	r = next1(buf, len, &f);
	CU_ASSERT_EQUAL_FATAL(r, 1);
	static struct wire_peer got[WIRE_PEERS_MAX + 1];
	memset(got, 0x5a, sizeof(got));
	r = wire_peers_parse(&f, got, cap, n);
	/* Copied whole or not at all. */
	if (r == 0) {
		CU_ASSERT(memcmp(got, peers, bytes) == 0);
	} else {
		CU_ASSERT_EQUAL(got[0].node[0], 0x5a);
	}
	return r;
}

static void test_peers(void)
{
	const size_t one = sizeof(struct wire_peer);
	for (size_t i = 0; i < ARRAY_SIZE(peers); i++) {
		char node[32], addr[32] = "";
		snprintf(node, sizeof(node), "node-%zu", i);
		/* Every third one does not listen. */
		if (i % 3)
			snprintf(addr, sizeof(addr), "10.0.%zu.%zu:%zu", i / 256, i % 256,
				 1000 + i);
		peers[i] = make_peer(node, addr);
	}
	size_t n;

	static const size_t counts[] = {0, 1, 2, 255, WIRE_PEERS_MAX};
	for (size_t i = 0; i < ARRAY_SIZE(counts); i++) {
		n = 9999;
		CU_ASSERT_EQUAL(peers_frame(counts[i] * one, WIRE_PEERS_MAX, &n), 0);
		CU_ASSERT_EQUAL(n, counts[i]);
	}
	/* Over the limit, however big the caller's array. */
	CU_ASSERT_EQUAL(peers_frame((WIRE_PEERS_MAX + 1) * one, WIRE_PEERS_MAX + 1, &n), -EBADMSG);
	/* Not whole entries. */
	static const size_t odd[] = {1, one - 1, one + 1, 2 * one - 1, WIRE_PEERS_MAX * one - 1};
	for (size_t i = 0; i < ARRAY_SIZE(odd); i++)
		CU_ASSERT_EQUAL(peers_frame(odd[i], WIRE_PEERS_MAX, &n), -EBADMSG);
	/* More entries than the caller has room for. */
	CU_ASSERT_EQUAL(peers_frame(3 * one, 2, &n), -EBADMSG);
	CU_ASSERT_EQUAL(peers_frame(3 * one, 3, &n), 0);
	CU_ASSERT_EQUAL(peers_frame(0, 0, &n), 0);
	CU_ASSERT_EQUAL(n, 0);

	/* One bad entry, last of several, spoils the frame. */
	struct wire_peer keep = peers[4];
	static const char *bad_addr[] = {"h", "h:0", "h:65536", "::1:80", " h:80", "[]:1"};
	for (size_t i = 0; i < ARRAY_SIZE(bad_addr); i++) {
		peers[4] = make_peer("e", bad_addr[i]);
		CU_ASSERT_EQUAL(peers_frame(5 * one, WIRE_PEERS_MAX, &n), -EBADMSG);
	}
	peers[4] = make_peer("e", "[::1]:80");
	CU_ASSERT_EQUAL(peers_frame(5 * one, WIRE_PEERS_MAX, &n), 0);
	/* Bytes after an addr's NUL, or an empty addr that is not all zero. */
	peers[4].addr[WIRE_ADDR_MAX - 1] = 'x';
	CU_ASSERT_EQUAL(peers_frame(5 * one, WIRE_PEERS_MAX, &n), -EBADMSG);
	peers[4] = make_peer("e", "");
	peers[4].addr[1] = '1';
	CU_ASSERT_EQUAL(peers_frame(5 * one, WIRE_PEERS_MAX, &n), -EBADMSG);
	/* An addr with no NUL at all. */
	memset(peers[4].addr, 'h', WIRE_ADDR_MAX);
	memcpy(peers[4].addr + 50, ":80", 3);
	CU_ASSERT_EQUAL(peers_frame(5 * one, WIRE_PEERS_MAX, &n), -EBADMSG);
	peers[4] = make_peer("", "h:1");
	CU_ASSERT_EQUAL(peers_frame(5 * one, WIRE_PEERS_MAX, &n), -EBADMSG);
	peers[4] = keep;
	CU_ASSERT_EQUAL(peers_frame(5 * one, WIRE_PEERS_MAX, &n), 0);
}

/* ------------------------------------------------------------------------ */
/* wire_put                                                                 */

static void test_put(void)
{
	static uint8_t out[64], want[64];
	struct wire_ping pi = {.id = 7, .sent_ns = 8};
	size_t need = HDR + sizeof(pi);

	/* Every capacity short of the frame, from an empty buffer and from
	 * one with a frame in it: refused, nothing written. */
	for (size_t start = 0; start <= HDR; start += HDR) {
		for (size_t cap = 0; cap < start + need; cap++) {
			memset(out, 0xee, sizeof(out));
			size_t len = start;
			CU_ASSERT_EQUAL(wire_put(out, cap, &len, WIRE_PING, &pi, sizeof(pi)),
					-ENOBUFS);
			CU_ASSERT_EQUAL(len, start);
			for (size_t k = 0; k < sizeof(out); k++)
				CU_ASSERT_EQUAL(out[k], 0xee);
		}
		size_t len = start;
		CU_ASSERT_EQUAL(wire_put(out, start + need, &len, WIRE_PING, &pi, sizeof(pi)), 0);
		CU_ASSERT_EQUAL(len, start + need);
	}

	/* The bytes: header little-endian, flags 0, then the payload. */
	size_t len = 0;
	CU_ASSERT_EQUAL(wire_put(out, sizeof(out), &len, WIRE_PONG, &pi, sizeof(pi)), 0);
	put_hdr(want, WIRE_PONG, 0, sizeof(pi));
	memcpy(want + HDR, &pi, sizeof(pi));
	CU_ASSERT_EQUAL(len, need);
	CU_ASSERT(memcmp(out, want, need) == 0);
	CU_ASSERT(out[0] == WIRE_PONG && out[1] == 0 && out[4] == sizeof(pi));

	/* A position past the buffer is a caller's mistake, not a write. */
	len = sizeof(out) + 1;
	CU_ASSERT_EQUAL(wire_put(out, sizeof(out), &len, WIRE_BYE, NULL, 0), -ENOBUFS);
	CU_ASSERT_EQUAL(len, sizeof(out) + 1);

	/* What wire_next would refuse is not written at all. */
	len = 0;
	CU_ASSERT_EQUAL(wire_put(out, sizeof(out), &len, 0, NULL, 0), -EINVAL);
	CU_ASSERT_EQUAL(wire_put(out, sizeof(out), &len, WIRE_TYPE_MAX + 1, NULL, 0), -EINVAL);
	CU_ASSERT_EQUAL(wire_put(out, sizeof(out), &len, WIRE_BYE, NULL, UINT32_MAX), -EMSGSIZE);
	CU_ASSERT_EQUAL(len, 0);
}

/* ------------------------------------------------------------------------ */

static const struct {
	const char *name;
	CU_TestFunc fn;
} tests[] = {
    {"round_trip", test_round_trip},
    {"wrong_parser", test_wrong_parser},
    {"sizes", test_sizes},
    {"truncation", test_truncation},
    {"header", test_header},
    {"frame_max", test_frame_max},
    {"names", test_names},
    {"hello_magic", test_hello_magic},
    {"group_names", test_group_names},
    {"reply", test_reply},
    {"addr", test_addr},
    {"peers", test_peers},
    {"put", test_put},
};

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	CU_pSuite s = CU_add_suite("wire", NULL, NULL);
	if (!s)
		return 2;
	for (size_t i = 0; i < ARRAY_SIZE(tests); i++)
		if (!CU_add_test(s, tests[i].name, tests[i].fn))
			return 2;
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	/* Meson reads the exit status, not CUnit's summary. */
	unsigned failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}

// SPDX-License-Identifier: MIT
/*
 * Unit tests of the control protocol (lib/proto/ctl): encode/decode of every
 * field type, rejection of malformed messages, the name rules, fd passing
 * over SOCK_SEQPACKET, and a fuzz loop over the decoder.
 */
#include <CUnit/Basic.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/ctl.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* 128 KiB each: too big for the stack of a test. */
static struct ctl_out out;
static uint8_t rx[CTL_MAX_BYTES + 64];

/* ------------------------------------------------------------------------ */
/* Encode / decode                                                          */

static void test_round_trip(void)
{
	struct ctl_in m;
	const void *val;
	size_t len;
	uint32_t u32;
	uint64_t u64;
	char s[300];

	struct ctl_group_info gi = {.ring_bytes = 1 << 20, .fill = 5, .lag = 6, .members = 3,
				    .mode = 0640};
	snprintf(gi.master, sizeof(gi.master), "node-a");
	uint8_t gval[sizeof(gi) + 3];
	memcpy(gval, &gi, sizeof(gi));
	memcpy(gval + sizeof(gi), "grp", 3);

	ctl_begin(&out, CTL_JOIN | CTL_REPLY, 0xdeadbeef, -ENOENT);
	CU_ASSERT(ctl_put_str(&out, CTL_T_NAME, "group/ish name"));
	CU_ASSERT(ctl_put_str(&out, CTL_T_NODE, "n1"));
	CU_ASSERT(ctl_put_u64(&out, CTL_T_RING, 0x0102030405060708ull));
	CU_ASSERT(ctl_put_u64(&out, CTL_T_MAXMSG, UINT64_MAX));
	CU_ASSERT(ctl_put_u32(&out, CTL_T_STALL, 1500));
	CU_ASSERT(ctl_put_u32(&out, CTL_T_MODE, 0600));
	CU_ASSERT(ctl_put_u32(&out, CTL_T_PID, (uint32_t)-77));
	CU_ASSERT(ctl_put_u32(&out, CTL_T_FLAGS, CTL_F_WRITE));
	CU_ASSERT(ctl_put_u32(&out, CTL_T_SLOT, 1023));
	CU_ASSERT(ctl_put_u32(&out, CTL_T_STATEWORD, 0x301));
	CU_ASSERT(ctl_put_u64(&out, CTL_T_CURSOR, 1ull << 40));
	CU_ASSERT(ctl_put_u32(&out, CTL_T_WRITER, 7));
	CU_ASSERT(ctl_put_member(&out, 100, "alpha"));
	CU_ASSERT(ctl_put_member(&out, -1, "b.c_d@e-f"));
	CU_ASSERT(ctl_put_member(&out, 300, "Z9"));
	CU_ASSERT(ctl_put(&out, CTL_T_GROUP, gval, sizeof(gval)));
	CU_ASSERT(ctl_put(&out, CTL_T_TRUNCATED, NULL, 0));
	CU_ASSERT_EQUAL_FATAL(ctl_end(&out), 0);
	CU_ASSERT_EQUAL(out.len % 4, 0);

	CU_ASSERT_EQUAL_FATAL(ctl_parse(&m, out.buf, out.len), 0);
	CU_ASSERT_EQUAL(m.hdr.magic, CTL_MAGIC);
	CU_ASSERT_EQUAL(m.hdr.version, CTL_VERSION);
	CU_ASSERT_EQUAL(m.hdr.type, CTL_JOIN | CTL_REPLY);
	CU_ASSERT_EQUAL(m.hdr.id, 0xdeadbeef);
	CU_ASSERT_EQUAL(m.hdr.status, -ENOENT);
	CU_ASSERT_EQUAL(m.hdr.len, out.len);
	CU_ASSERT_EQUAL(m.body_len, out.len - sizeof(struct ctl_hdr));

	CU_ASSERT_EQUAL(ctl_get_str(&m, CTL_T_NAME, s, sizeof(s)), 0);
	CU_ASSERT_STRING_EQUAL(s, "group/ish name");
	CU_ASSERT_EQUAL(ctl_get_str(&m, CTL_T_NODE, s, sizeof(s)), 0);
	CU_ASSERT_STRING_EQUAL(s, "n1");
	CU_ASSERT(ctl_get_u64(&m, CTL_T_RING, &u64) == 0 && u64 == 0x0102030405060708ull);
	CU_ASSERT(ctl_get_u64(&m, CTL_T_MAXMSG, &u64) == 0 && u64 == UINT64_MAX);
	CU_ASSERT(ctl_get_u32(&m, CTL_T_STALL, &u32) == 0 && u32 == 1500);
	CU_ASSERT(ctl_get_u32(&m, CTL_T_MODE, &u32) == 0 && u32 == 0600);
	CU_ASSERT(ctl_get_u32(&m, CTL_T_PID, &u32) == 0 && (int32_t)u32 == -77);
	CU_ASSERT(ctl_get_u32(&m, CTL_T_FLAGS, &u32) == 0 && u32 == CTL_F_WRITE);
	CU_ASSERT(ctl_get_u32(&m, CTL_T_SLOT, &u32) == 0 && u32 == 1023);
	CU_ASSERT(ctl_get_u32(&m, CTL_T_STATEWORD, &u32) == 0 && u32 == 0x301);
	CU_ASSERT(ctl_get_u64(&m, CTL_T_CURSOR, &u64) == 0 && u64 == 1ull << 40);
	CU_ASSERT(ctl_get_u32(&m, CTL_T_WRITER, &u32) == 0 && u32 == 7);

	/* Width is part of the type: a u64 is not a u32, nor the reverse. */
	CU_ASSERT_EQUAL(ctl_get_u32(&m, CTL_T_RING, &u32), -EPROTO);
	CU_ASSERT_EQUAL(ctl_get_u64(&m, CTL_T_SLOT, &u64), -EPROTO);
	CU_ASSERT_EQUAL(ctl_get_u32(&m, CTL_T_NAME, &u32), -EPROTO);

	/* Repeated fields come back in order through ctl_next. */
	const int32_t pids[] = {100, -1, 300};
	const char *nodes[] = {"alpha", "b.c_d@e-f", "Z9"};
	size_t cur = 0;
	unsigned n = 0;
	while (ctl_next(&m, CTL_T_MEMBER, &cur, &val, &len) == 1) {
		int32_t pid;
		char node[64];
		CU_ASSERT_FATAL(n < 3);
		CU_ASSERT_EQUAL(ctl_member(val, len, &pid, node, sizeof(node)), 0);
		CU_ASSERT_EQUAL(pid, pids[n]);
		CU_ASSERT_STRING_EQUAL(node, nodes[n]);
		n++;
	}
	CU_ASSERT_EQUAL(n, 3);
	CU_ASSERT_EQUAL(cur, m.body_len);
	/* ctl_get finds the first of them. */
	CU_ASSERT(ctl_get(&m, CTL_T_MEMBER, &val, &len) == 0 && len == 4 + strlen("alpha"));

	CU_ASSERT_EQUAL_FATAL(ctl_get(&m, CTL_T_GROUP, &val, &len), 0);
	CU_ASSERT_EQUAL(len, sizeof(gval));
	CU_ASSERT(memcmp(val, gval, sizeof(gval)) == 0);
	CU_ASSERT_EQUAL(ctl_get(&m, CTL_T_TRUNCATED, &val, &len), 0);
	CU_ASSERT_EQUAL(len, 0);

	/* Absent fields. */
	struct ctl_in e;
	ctl_begin(&out, CTL_GROUPS, 1, 0);
	CU_ASSERT_EQUAL_FATAL(ctl_end(&out), 0);
	CU_ASSERT_EQUAL(out.len, sizeof(struct ctl_hdr));
	CU_ASSERT_EQUAL_FATAL(ctl_parse(&e, out.buf, out.len), 0);
	CU_ASSERT_EQUAL(e.body_len, 0);
	CU_ASSERT_EQUAL(ctl_get(&e, CTL_T_NAME, &val, &len), -ENOENT);
	CU_ASSERT_EQUAL(ctl_get_u32(&e, CTL_T_SLOT, &u32), -ENOENT);
	CU_ASSERT_EQUAL(ctl_get_u64(&e, CTL_T_RING, &u64), -ENOENT);
	CU_ASSERT_EQUAL(ctl_get_str(&e, CTL_T_NAME, s, sizeof(s)), -ENOENT);
	cur = 0;
	CU_ASSERT_EQUAL(ctl_next(&e, CTL_T_MEMBER, &cur, &val, &len), 0);
}

/* Values of every length modulo 4: padded on the wire, exact on decode. */
static void test_padding(void)
{
	struct ctl_in m;
	char s[16];
	static const char *v[] = {"a", "ab", "abc", "abcd", "abcde", "abcdefghijklmno"};
	ctl_begin(&out, CTL_CREATE, 2, 0);
	for (size_t i = 0; i < ARRAY_SIZE(v); i++)
		CU_ASSERT(ctl_put_str(&out, (uint16_t)(CTL_T_NAME + i % 2), v[i]));
	CU_ASSERT_EQUAL_FATAL(ctl_end(&out), 0);
	CU_ASSERT_EQUAL(out.len % 4, 0);
	/* Padding bytes are zero: no stale memory goes on the wire. */
	size_t off = sizeof(struct ctl_hdr);
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		size_t l = strlen(v[i]), pad = (4 - l % 4) % 4;
		for (size_t k = 0; k < pad; k++)
			CU_ASSERT_EQUAL(out.buf[off + 4 + l + k], 0);
		off += 4 + l + pad;
	}
	CU_ASSERT_EQUAL(off, out.len);
	CU_ASSERT_EQUAL_FATAL(ctl_parse(&m, out.buf, out.len), 0);
	size_t cur = 0, len;
	const void *val;
	for (size_t i = 0; i < ARRAY_SIZE(v); i += 2) {
		CU_ASSERT_EQUAL(ctl_next(&m, CTL_T_NAME, &cur, &val, &len), 1);
		CU_ASSERT(len == strlen(v[i]) && memcmp(val, v[i], len) == 0);
	}
	CU_ASSERT_EQUAL(ctl_next(&m, CTL_T_NAME, &cur, &val, &len), 0);
	CU_ASSERT_EQUAL(ctl_get_str(&m, CTL_T_NODE, s, sizeof(s)), 0);
	CU_ASSERT_STRING_EQUAL(s, "ab");
}

/* A valid message to break: header, a name, a u32. Returns its length. */
static size_t sample(uint8_t *buf)
{
	ctl_begin(&out, CTL_OPEN, 9, 0);
	ctl_put_str(&out, CTL_T_NAME, "group");
	ctl_put_u32(&out, CTL_T_FLAGS, CTL_F_WRITE);
	ctl_end(&out);
	memcpy(buf, out.buf, out.len);
	return out.len;
}

static void set_len(uint8_t *buf, uint32_t len)
{
	memcpy(buf + offsetof(struct ctl_hdr, len), &len, sizeof(len));
}

/* Parse a copy that ends exactly where the datagram does, so valgrind or a
 * sanitizer sees any read past its end. */
static int parse_exact(const uint8_t *buf, size_t n)
{
	struct ctl_in m;
	uint8_t *copy = malloc(n ? n : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, buf, n);
	int err = ctl_parse(&m, copy, n);
	free(copy);
	return err;
}

static void test_parse_reject(void)
{
	static uint8_t b[CTL_MAX_BYTES + 8];
	struct ctl_in m;
	size_t n = sample(b);
	CU_ASSERT_EQUAL_FATAL(ctl_parse(&m, b, n), 0);

	/* Shorter than a header. */
	for (size_t k = 0; k < sizeof(struct ctl_hdr); k++) {
		set_len(b, (uint32_t)k);
		CU_ASSERT_EQUAL(ctl_parse(&m, b, k), -EPROTO);
	}
	set_len(b, (uint32_t)n);

	/* Magic, version. */
	b[0] ^= 1;
	CU_ASSERT_EQUAL(ctl_parse(&m, b, n), -EPROTO);
	b[0] ^= 1;
	uint8_t versions[] = {0, CTL_VERSION + 1, 0xff};
	for (size_t i = 0; i < ARRAY_SIZE(versions); i++) {
		b[offsetof(struct ctl_hdr, version)] = versions[i];
		CU_ASSERT_EQUAL(ctl_parse(&m, b, n), -EPROTO);
	}
	b[offsetof(struct ctl_hdr, version)] = CTL_VERSION;

	/* The header's length must be the datagram's. */
	uint32_t lens[] = {(uint32_t)n - 4, (uint32_t)n + 4, 0, UINT32_MAX};
	for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
		set_len(b, lens[i]);
		CU_ASSERT_EQUAL(ctl_parse(&m, b, n), -EPROTO);
	}
	set_len(b, (uint32_t)n);

	/* Types: 0 and past the last, with or without the reply bit. */
	uint8_t bad_types[] = {0, CTL_REPLY, CTL_TYPE_MAX + 1, 0x7f, 0xff, CTL_REPLY | (CTL_TYPE_MAX + 1)};
	for (size_t i = 0; i < ARRAY_SIZE(bad_types); i++) {
		b[offsetof(struct ctl_hdr, type)] = bad_types[i];
		CU_ASSERT_EQUAL(ctl_parse(&m, b, n), -EPROTO);
	}
	uint8_t good_types[] = {1, CTL_TYPE_MAX, CTL_REPLY | 1, CTL_REPLY | CTL_TYPE_MAX};
	for (size_t i = 0; i < ARRAY_SIZE(good_types); i++) {
		b[offsetof(struct ctl_hdr, type)] = good_types[i];
		CU_ASSERT_EQUAL(ctl_parse(&m, b, n), 0);
	}
	b[offsetof(struct ctl_hdr, type)] = CTL_OPEN;

	/* Tags: the first field's, then the last's. */
	size_t t1 = sizeof(struct ctl_hdr), t2 = t1 + 4 + 8;
	uint16_t bad_tags[] = {0, CTL_T_MAX + 1, 0x100, 0xffff};
	for (size_t i = 0; i < ARRAY_SIZE(bad_tags); i++) {
		for (int which = 0; which < 2; which++) {
			size_t at = which ? t2 : t1;
			uint16_t keep;
			memcpy(&keep, b + at, 2);
			memcpy(b + at, &bad_tags[i], 2);
			CU_ASSERT_EQUAL(ctl_parse(&m, b, n), -EPROTO);
			memcpy(b + at, &keep, 2);
		}
	}
	CU_ASSERT_EQUAL_FATAL(ctl_parse(&m, b, n), 0);

	/* A field longer than what is left, also by its padding alone. */
	uint16_t flen[] = {5, 8, 0xffff};
	for (size_t i = 0; i < ARRAY_SIZE(flen); i++) {
		memcpy(b + t2 + 2, &flen[i], 2);
		CU_ASSERT_EQUAL(ctl_parse(&m, b, n), -EPROTO);
	}
	uint16_t four = 4;
	memcpy(b + t2 + 2, &four, 2);
	CU_ASSERT_EQUAL(ctl_parse(&m, b, n), 0);

	/* Trailing bytes too few for a field header, starting like one. */
	for (size_t extra = 1; extra < 4; extra++) {
		memset(b + n, 0, 4);
		b[n] = CTL_T_TRUNCATED;
		set_len(b, (uint32_t)(n + extra));
		CU_ASSERT_EQUAL(parse_exact(b, n + extra), -EPROTO);
	}
	/* A lone field header of length 0 is fine; one of tag 0 is not. */
	uint8_t empty[4] = {CTL_T_TRUNCATED, 0, 0, 0};
	memcpy(b + n, empty, 4);
	set_len(b, (uint32_t)n + 4);
	CU_ASSERT_EQUAL(ctl_parse(&m, b, n + 4), 0);
	memset(b + n, 0, 4);
	CU_ASSERT_EQUAL(ctl_parse(&m, b, n + 4), -EPROTO);

	/* The size bound, exactly. */
	memset(b, 0, sizeof(b));
	n = sample(b);
	size_t big = CTL_MAX_BYTES - n;
	uint16_t tag = CTL_T_NAME, l1 = 0xffff - 3;
	/* Two fields that take the message to CTL_MAX_BYTES exactly. */
	memcpy(b + n, &tag, 2);
	memcpy(b + n + 2, &l1, 2);
	uint16_t l2 = (uint16_t)(big - 4 - (l1 + 3u) / 4 * 4 - 4);
	size_t at2 = n + 4 + (l1 + 3u) / 4 * 4;
	memcpy(b + at2, &tag, 2);
	memcpy(b + at2 + 2, &l2, 2);
	set_len(b, CTL_MAX_BYTES);
	CU_ASSERT_EQUAL(ctl_parse(&m, b, CTL_MAX_BYTES), 0);
	/* One more well-formed field: over the limit, and only that. */
	memcpy(b + CTL_MAX_BYTES, empty, 4);
	set_len(b, CTL_MAX_BYTES + 4);
	CU_ASSERT_EQUAL(ctl_parse(&m, b, CTL_MAX_BYTES + 4), -EPROTO);
}

static void test_get_str(void)
{
	struct ctl_in m;
	char s[300];
	char name255[256];
	memset(name255, 'x', 255);
	name255[255] = 0;

	ctl_begin(&out, CTL_CREATE, 3, 0);
	CU_ASSERT(ctl_put(&out, CTL_T_NAME, "ab\0cd", 5));
	CU_ASSERT(ctl_put(&out, CTL_T_NODE, "node\0", 5));
	CU_ASSERT(ctl_put_str(&out, CTL_T_MEMBER, name255));
	CU_ASSERT(ctl_put(&out, CTL_T_FLAGS, "", 0));
	CU_ASSERT_EQUAL_FATAL(ctl_end(&out), 0);
	CU_ASSERT_EQUAL_FATAL(ctl_parse(&m, out.buf, out.len), 0);

	/* An embedded or trailing NUL would cut the name seen by C code. */
	CU_ASSERT_EQUAL(ctl_get_str(&m, CTL_T_NAME, s, sizeof(s)), -EPROTO);
	CU_ASSERT_EQUAL(ctl_get_str(&m, CTL_T_NODE, s, sizeof(s)), -EPROTO);

	/* Room for the terminator is part of the capacity. */
	CU_ASSERT_EQUAL(ctl_get_str(&m, CTL_T_MEMBER, s, 256), 0);
	CU_ASSERT_EQUAL(strlen(s), 255);
	memset(s, '#', sizeof(s));
	CU_ASSERT_EQUAL(ctl_get_str(&m, CTL_T_MEMBER, s, 255), -EPROTO);
	CU_ASSERT_EQUAL(ctl_get_str(&m, CTL_T_MEMBER, s, 1), -EPROTO);
	CU_ASSERT_EQUAL(s[0], '#');

	/* An empty string fits a one-byte buffer, not a zero-byte one. */
	CU_ASSERT_EQUAL(ctl_get_str(&m, CTL_T_FLAGS, s, 1), 0);
	CU_ASSERT_EQUAL(s[0], 0);
	CU_ASSERT_EQUAL(ctl_get_str(&m, CTL_T_FLAGS, s, 0), -EPROTO);
	CU_ASSERT_EQUAL(ctl_get_str(&m, CTL_T_SLOT, s, sizeof(s)), -ENOENT);
}

static void test_member(void)
{
	int32_t pid = 0;
	char node[64];
	uint8_t v[4 + 80];
	int32_t p = 4321;
	memcpy(v, &p, 4);

	memcpy(v + 4, "node-1", 6);
	CU_ASSERT_EQUAL(ctl_member(v, 10, &pid, node, sizeof(node)), 0);
	CU_ASSERT_EQUAL(pid, 4321);
	CU_ASSERT_STRING_EQUAL(node, "node-1");

	/* Too short for the pid; pid with no node name. */
	for (size_t l = 0; l < 4; l++)
		CU_ASSERT_EQUAL(ctl_member(v, l, &pid, node, sizeof(node)), -EPROTO);
	CU_ASSERT_EQUAL(ctl_member(v, 4, &pid, node, sizeof(node)), -EPROTO);

	/* 63 bytes is the longest node name; it needs a 64-byte buffer. */
	memset(v + 4, 'n', 64);
	CU_ASSERT_EQUAL(ctl_member(v, 4 + 63, &pid, node, sizeof(node)), 0);
	CU_ASSERT_EQUAL(strlen(node), 63);
	CU_ASSERT_EQUAL(ctl_member(v, 4 + 63, &pid, node, 63), -EPROTO);
	CU_ASSERT_EQUAL(ctl_member(v, 4 + 64, &pid, node, sizeof(node)), -EPROTO);
	CU_ASSERT_EQUAL(ctl_member(v, 4 + 80, &pid, node, sizeof(node)), -EPROTO);

	/* Characters outside the node alphabet, a NUL among them. */
	static const struct {
		const char *s;
		size_t len;
	} bad[] = {{"a b", 3}, {"a/b", 3}, {"a\0b", 3}, {"\xc3\xa4", 2}, {"a:b", 3}, {"\n", 1}};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		memcpy(v + 4, bad[i].s, bad[i].len);
		CU_ASSERT_EQUAL(ctl_member(v, 4 + bad[i].len, &pid, node, sizeof(node)), -EPROTO);
	}

	/* ctl_put_member and ctl_member agree, negative pids included. */
	struct ctl_in m;
	const void *val;
	size_t len;
	ctl_begin(&out, CTL_MEMBERS | CTL_REPLY, 4, 0);
	CU_ASSERT(ctl_put_member(&out, -42, "x"));
	CU_ASSERT_EQUAL_FATAL(ctl_end(&out), 0);
	CU_ASSERT_EQUAL_FATAL(ctl_parse(&m, out.buf, out.len), 0);
	CU_ASSERT_EQUAL_FATAL(ctl_get(&m, CTL_T_MEMBER, &val, &len), 0);
	CU_ASSERT_EQUAL(ctl_member(val, len, &pid, node, sizeof(node)), 0);
	CU_ASSERT_EQUAL(pid, -42);
	CU_ASSERT_STRING_EQUAL(node, "x");
}

static void test_check_group(void)
{
	char name[300];
	memset(name, 'g', sizeof(name));
	CU_ASSERT_EQUAL(ctl_check_group("", 0), -EINVAL);
	CU_ASSERT_EQUAL(ctl_check_group(name, 1), 0);
	CU_ASSERT_EQUAL(ctl_check_group(name, 255), 0);
	CU_ASSERT_EQUAL(ctl_check_group(name, 256), -EINVAL);
	CU_ASSERT_EQUAL(ctl_check_group(name, 300), -EINVAL);
	CU_ASSERT_EQUAL(ctl_check_group("/", 1), -EINVAL);
	CU_ASSERT_EQUAL(ctl_check_group("a/b", 3), -EINVAL);
	CU_ASSERT_EQUAL(ctl_check_group("ab/", 3), -EINVAL);
	/* The length is explicit: a NUL inside it is a bad byte, one past it
	 * is none of the name's business. */
	CU_ASSERT_EQUAL(ctl_check_group("a\0b", 3), -EINVAL);
	CU_ASSERT_EQUAL(ctl_check_group("ab\0", 3), -EINVAL);
	CU_ASSERT_EQUAL(ctl_check_group("a\0b", 1), 0);
	CU_ASSERT_EQUAL(ctl_check_group("a/b", 1), 0);
	/* Anything else goes: spaces, punctuation, UTF-8. */
	CU_ASSERT_EQUAL(ctl_check_group("my group: \xc3\xa4 #1", 15), 0);
	CU_ASSERT_EQUAL(ctl_check_group("\xff\x01\x7f", 3), 0);
}

static void test_check_node(void)
{
	char name[80];
	memset(name, 'n', sizeof(name));
	CU_ASSERT_EQUAL(ctl_check_node("", 0), -EINVAL);
	CU_ASSERT_EQUAL(ctl_check_node(name, 63), 0);
	CU_ASSERT_EQUAL(ctl_check_node(name, 64), -EINVAL);
	CU_ASSERT_EQUAL(ctl_check_node(name, 80), -EINVAL);
	CU_ASSERT_EQUAL(ctl_check_node("a\0b", 3), -EINVAL);
	CU_ASSERT_EQUAL(ctl_check_node("a\0b", 1), 0);
	CU_ASSERT_EQUAL(ctl_check_node("host-1.example_x@y", 18), 0);

	/* Every byte value, alone and between two good ones. */
	unsigned wrong = 0;
	for (int c = 0; c < 256; c++) {
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '@' || c == '-';
		char one[1] = {(char)c}, three[3] = {'a', (char)c, 'b'};
		wrong += (ctl_check_node(one, 1) == 0) != ok;
		wrong += (ctl_check_node(three, 3) == 0) != ok;
	}
	CU_ASSERT_EQUAL(wrong, 0);
}

static uint8_t big[UINT16_MAX + 2];

/* A message of exactly CTL_MAX_BYTES: two long names. */
static void fill_max(uint8_t type)
{
	ctl_begin(&out, type, 5, 0);
	ctl_put(&out, CTL_T_NAME, big, UINT16_MAX);
	ctl_put(&out, CTL_T_NAME, big, CTL_MAX_BYTES - out.len - sizeof(struct ctl_tlv));
}

static void test_overflow(void)
{
	struct ctl_in m;

	/* A value longer than a TLV length can say. */
	ctl_begin(&out, CTL_CREATE, 5, 0);
	CU_ASSERT_FALSE(ctl_put(&out, CTL_T_NAME, big, UINT16_MAX + 1));
	CU_ASSERT_EQUAL(out.len, sizeof(struct ctl_hdr));
	CU_ASSERT_EQUAL(ctl_end(&out), -EMSGSIZE);

	/* Fill to exactly CTL_MAX_BYTES: fits. One more empty field: not. */
	fill_max(CTL_CREATE);
	CU_ASSERT_FALSE(out.overflow);
	CU_ASSERT_EQUAL(out.len, CTL_MAX_BYTES);
	CU_ASSERT_EQUAL(ctl_end(&out), 0);
	CU_ASSERT_EQUAL(ctl_parse(&m, out.buf, out.len), 0);
	CU_ASSERT_FALSE(ctl_put(&out, CTL_T_TRUNCATED, NULL, 0));
	CU_ASSERT_EQUAL(out.len, CTL_MAX_BYTES);
	CU_ASSERT_EQUAL(ctl_end(&out), -EMSGSIZE);

	/* A value that fits but for its padding does not fit. */
	ctl_begin(&out, CTL_CREATE, 5, 0);
	CU_ASSERT(ctl_put(&out, CTL_T_NAME, big, UINT16_MAX));
	size_t left = CTL_MAX_BYTES - out.len - sizeof(struct ctl_tlv);
	CU_ASSERT_FALSE(ctl_put(&out, CTL_T_NAME, big, left + 1));
	CU_ASSERT_EQUAL(ctl_end(&out), -EMSGSIZE);

	/* Many small fields until one fails; a later small one that would
	 * fit must not un-fail the message. */
	ctl_begin(&out, CTL_GROUPS | CTL_REPLY, 5, 0);
	unsigned n = 0;
	while (ctl_put_member(&out, (int32_t)n, "some-node-name"))
		n++;
	CU_ASSERT(n > 1000);
	/* An empty field may still fit in what is left; the message stays
	 * failed whether it does or not. */
	ctl_put(&out, CTL_T_TRUNCATED, NULL, 0);
	CU_ASSERT_EQUAL(ctl_end(&out), -EMSGSIZE);

	/* ctl_begin starts afresh. */
	ctl_begin(&out, CTL_GROUPS, 6, 0);
	CU_ASSERT_EQUAL(ctl_end(&out), 0);
}

/* ------------------------------------------------------------------------ */
/* Sockets and fds                                                          */

static bool is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

static bool same_file(int a, int b)
{
	struct stat sa, sb;
	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

/* The numbers the kernel will give the next `n` fds installed. */
static void next_fds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

static int seqpacket(int sv[2])
{
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
}

/* Two distinct files to pass around. */
static void two_files(int f[2])
{
	f[0] = memfd_create("ctl-a", MFD_CLOEXEC);
	f[1] = memfd_create("ctl-b", MFD_CLOEXEC);
}

/* Send `nfds` fds with one datagram, bypassing ctl_send's limit. */
static ssize_t send_raw(int sock, const void *buf, size_t len, const int *fds, unsigned nfds)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	union {
		char b[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.b,
			    .msg_controllen = CMSG_SPACE(sizeof(int) * nfds)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	return sendmsg(sock, &mh, 0);
}

static void test_send_recv(void)
{
	int sv[2], f[2], got[CTL_MAX_FDS], expect[2];
	unsigned nfds;
	struct ctl_in m;
	char s[64];
	CU_ASSERT_EQUAL_FATAL(seqpacket(sv), 0);
	two_files(f);
	CU_ASSERT_FATAL(f[0] >= 0 && f[1] >= 0);

	ctl_begin(&out, CTL_OPEN | CTL_REPLY, 77, 0);
	ctl_put_str(&out, CTL_T_NAME, "g");
	ctl_put_u32(&out, CTL_T_WRITER, 3);
	CU_ASSERT_EQUAL_FATAL(ctl_end(&out), 0);
	CU_ASSERT_EQUAL(ctl_send(sv[0], &out, f, 2), 0);

	next_fds(expect, 2);
	nfds = 2;
	ssize_t n = ctl_recv(sv[1], rx, sizeof(rx), got, &nfds, 0);
	CU_ASSERT_EQUAL_FATAL(n, (ssize_t)out.len);
	CU_ASSERT_EQUAL_FATAL(nfds, 2);
	CU_ASSERT_EQUAL(got[0], expect[0]);
	CU_ASSERT_EQUAL(got[1], expect[1]);
	CU_ASSERT(same_file(got[0], f[0]));
	CU_ASSERT(same_file(got[1], f[1]));
	CU_ASSERT(fcntl(got[0], F_GETFD) & FD_CLOEXEC);
	CU_ASSERT(fcntl(got[1], F_GETFD) & FD_CLOEXEC);
	CU_ASSERT_EQUAL(ctl_parse(&m, rx, (size_t)n), 0);
	CU_ASSERT(ctl_get_str(&m, CTL_T_NAME, s, sizeof(s)) == 0 && strcmp(s, "g") == 0);
	close(got[0]);
	close(got[1]);

	/* No fds sent while some are expected; none sent, none expected. */
	CU_ASSERT_EQUAL(ctl_send(sv[0], &out, NULL, 0), 0);
	nfds = 2;
	CU_ASSERT_EQUAL(ctl_recv(sv[1], rx, sizeof(rx), got, &nfds, 0), (ssize_t)out.len);
	CU_ASSERT_EQUAL(nfds, 0);
	CU_ASSERT_EQUAL(ctl_send(sv[0], &out, f, 1), 0);
	nfds = 0;
	next_fds(expect, 1);
	CU_ASSERT_EQUAL(ctl_recv(sv[1], rx, sizeof(rx), got, &nfds, 0), (ssize_t)out.len);
	CU_ASSERT_EQUAL(nfds, 0);
	CU_ASSERT_FALSE(is_open(expect[0]));

	/* The largest message goes through whole. */
	fill_max(CTL_GROUPS | CTL_REPLY);
	CU_ASSERT_EQUAL_FATAL(ctl_end(&out), 0);
	CU_ASSERT_EQUAL(out.len, CTL_MAX_BYTES);
	CU_ASSERT_EQUAL(ctl_send(sv[0], &out, f, 2), 0);
	nfds = 2;
	n = ctl_recv(sv[1], rx, CTL_MAX_BYTES, got, &nfds, 0);
	CU_ASSERT_EQUAL(n, (ssize_t)out.len);
	CU_ASSERT_EQUAL(nfds, 2);
	CU_ASSERT(n > 0 && memcmp(rx, out.buf, out.len) == 0);
	CU_ASSERT_EQUAL(ctl_parse(&m, rx, (size_t)n), 0);
	for (unsigned i = 0; i < nfds; i++)
		close(got[i]);

	/* Nothing waiting, non-blocking: -EAGAIN, and nothing made up. */
	nfds = 2;
	CU_ASSERT_EQUAL(ctl_recv(sv[1], rx, sizeof(rx), got, &nfds, MSG_DONTWAIT), -EAGAIN);
	CU_ASSERT_EQUAL(nfds, 0);

	/* Too many fds to send. */
	int many[CTL_MAX_FDS + 1];
	for (unsigned i = 0; i <= CTL_MAX_FDS; i++)
		many[i] = f[i & 1];
	CU_ASSERT_EQUAL(ctl_send(sv[0], &out, many, CTL_MAX_FDS + 1), -EINVAL);

	/* The peer is gone: 0 from recv, -EPIPE (no SIGPIPE) from send. */
	close(sv[0]);
	nfds = 2;
	CU_ASSERT_EQUAL(ctl_recv(sv[1], rx, sizeof(rx), got, &nfds, 0), 0);
	CU_ASSERT_EQUAL(nfds, 0);
	CU_ASSERT_EQUAL(ctl_send(sv[1], &out, NULL, 0), -EPIPE);
	close(sv[1]);
	close(f[0]);
	close(f[1]);
}

/* Fds beyond what the caller asked for are closed, never leaked. */
static void test_recv_extra_fds(void)
{
	int sv[2], f[2], got[CTL_MAX_FDS], expect[4];
	unsigned nfds;
	CU_ASSERT_EQUAL_FATAL(seqpacket(sv), 0);
	two_files(f);
	CU_ASSERT_FATAL(f[0] >= 0 && f[1] >= 0);
	ctl_begin(&out, CTL_ASYNC_JOINED, 0, 0);
	CU_ASSERT_EQUAL_FATAL(ctl_end(&out), 0);

	/* Two sent, one asked for. */
	CU_ASSERT_EQUAL(ctl_send(sv[0], &out, f, 2), 0);
	next_fds(expect, 2);
	nfds = 1;
	CU_ASSERT_EQUAL(ctl_recv(sv[1], rx, sizeof(rx), got, &nfds, 0), (ssize_t)out.len);
	CU_ASSERT_EQUAL_FATAL(nfds, 1);
	CU_ASSERT_EQUAL(got[0], expect[0]);
	CU_ASSERT(same_file(got[0], f[0]));
	CU_ASSERT_FALSE(is_open(expect[1]));
	close(got[0]);

	/* Two sent, none asked for. */
	CU_ASSERT_EQUAL(ctl_send(sv[0], &out, f, 2), 0);
	next_fds(expect, 2);
	nfds = 0;
	CU_ASSERT_EQUAL(ctl_recv(sv[1], rx, sizeof(rx), got, &nfds, 0), (ssize_t)out.len);
	CU_ASSERT_EQUAL(nfds, 0);
	CU_ASSERT_FALSE(is_open(expect[0]));
	CU_ASSERT_FALSE(is_open(expect[1]));

	/* A hostile peer sends four; only the two asked for survive. */
	int four[4] = {f[0], f[1], f[0], f[1]};
	CU_ASSERT_EQUAL(send_raw(sv[0], out.buf, out.len, four, 4), (ssize_t)out.len);
	next_fds(expect, 4);
	nfds = 2;
	CU_ASSERT_EQUAL(ctl_recv(sv[1], rx, sizeof(rx), got, &nfds, 0), (ssize_t)out.len);
	CU_ASSERT_EQUAL_FATAL(nfds, 2);
	CU_ASSERT(got[0] == expect[0] && got[1] == expect[1]);
	CU_ASSERT_FALSE(is_open(expect[2]));
	CU_ASSERT_FALSE(is_open(expect[3]));
	close(got[0]);
	close(got[1]);

	/* So many that the control buffer truncates: the message is
	 * rejected and every fd that did arrive is closed. */
	int many[16];
	for (unsigned i = 0; i < ARRAY_SIZE(many); i++)
		many[i] = f[i % 2];
	CU_ASSERT_EQUAL(send_raw(sv[0], out.buf, out.len, many, 16), (ssize_t)out.len);
	int probe[16];
	next_fds(probe, 16);
	nfds = 2;
	CU_ASSERT_EQUAL(ctl_recv(sv[1], rx, sizeof(rx), got, &nfds, 0), -EMSGSIZE);
	CU_ASSERT_EQUAL(nfds, 0);
	unsigned leaked = 0;
	for (unsigned i = 0; i < 16; i++)
		leaked += is_open(probe[i]);
	CU_ASSERT_EQUAL(leaked, 0);

	close(sv[0]);
	close(sv[1]);
	close(f[0]);
	close(f[1]);
}

/* A datagram longer than the buffer is an error, not a silent cut. */
static void test_recv_truncated(void)
{
	int sv[2], f[2], got[CTL_MAX_FDS], expect[2];
	unsigned nfds;
	CU_ASSERT_EQUAL_FATAL(seqpacket(sv), 0);
	two_files(f);
	CU_ASSERT_FATAL(f[0] >= 0 && f[1] >= 0);
	ctl_begin(&out, CTL_JOIN | CTL_REPLY, 1, 0);
	for (int i = 0; i < 20; i++)
		ctl_put_member(&out, i, "n");
	CU_ASSERT_EQUAL_FATAL(ctl_end(&out), 0);

	CU_ASSERT_EQUAL(ctl_send(sv[0], &out, f, 2), 0);
	next_fds(expect, 2);
	nfds = 2;
	CU_ASSERT_EQUAL(ctl_recv(sv[1], rx, out.len - 1, got, &nfds, 0), -EMSGSIZE);
	CU_ASSERT_EQUAL(nfds, 0);
	CU_ASSERT_FALSE(is_open(expect[0]));
	CU_ASSERT_FALSE(is_open(expect[1]));

	/* The cut datagram is gone; the next one is read whole. */
	CU_ASSERT_EQUAL(ctl_send(sv[0], &out, NULL, 0), 0);
	nfds = 2;
	CU_ASSERT_EQUAL(ctl_recv(sv[1], rx, out.len, got, &nfds, 0), (ssize_t)out.len);
	CU_ASSERT_EQUAL(nfds, 0);
	CU_ASSERT_EQUAL(ctl_send(sv[0], &out, NULL, 0), 0);
	nfds = 0;
	CU_ASSERT_EQUAL(ctl_recv(sv[1], rx, sizeof(struct ctl_hdr), got, &nfds, 0), -EMSGSIZE);
	close(sv[0]);
	close(sv[1]);
	close(f[0]);
	close(f[1]);
}

/* ------------------------------------------------------------------------ */
/* Fuzz                                                                     */

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	uint64_t x = rnd_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rnd_state = x;
}

/* A plausible message: the mutations then start from deep inside. */
static size_t fuzz_seed(uint8_t *buf, size_t cap)
{
	static const char *nodes[] = {"a", "node-1", "x@y.z", "bad node", ""};
	uint8_t val[64];
	ctl_begin(&out, (uint8_t)(rnd() % 70 | (rnd() % 2 ? CTL_REPLY : 0)), (uint32_t)rnd(), 0);
	unsigned fields = (unsigned)(rnd() % 8);
	for (unsigned i = 0; i < fields; i++) {
		uint16_t tag = (uint16_t)(rnd() % (CTL_T_MAX + 1));
		switch (rnd() % 4) {
		case 0:
			ctl_put_u32(&out, tag, (uint32_t)rnd());
			break;
		case 1:
			ctl_put_u64(&out, tag, rnd());
			break;
		case 2:
			ctl_put_member(&out, (int32_t)rnd(), nodes[rnd() % ARRAY_SIZE(nodes)]);
			break;
		default:
			for (size_t k = 0; k < sizeof(val); k++)
				val[k] = (uint8_t)(rnd() % 4 ? 'a' + rnd() % 26 : rnd());
			ctl_put(&out, tag, val, rnd() % sizeof(val));
		}
	}
	ctl_end(&out);
	size_t n = out.len < cap ? out.len : cap;
	memcpy(buf, out.buf, n);
	return n;
}

/* Every accessor on a parsed message; every value must lie in the body. */
static unsigned fuzz_walk(const struct ctl_in *m)
{
	unsigned outside = 0;
	char s[300], node[64];
	for (uint16_t tag = 0; tag <= CTL_T_MAX + 1; tag++) {
		const void *val;
		size_t len, cur = 0;
		uint32_t u32;
		uint64_t u64;
		ctl_get_u32(m, tag, &u32);
		ctl_get_u64(m, tag, &u64);
		ctl_get_str(m, tag, s, 1 + rnd() % sizeof(s));
		for (unsigned i = 0; ctl_next(m, tag, &cur, &val, &len) == 1; i++) {
			const uint8_t *v = val;
			outside += v < m->body || v + len > m->body + m->body_len ||
				   cur > m->body_len || i > m->body_len / 4;
			if (i > m->body_len / 4)
				break;
			int32_t pid;
			if (tag == CTL_T_MEMBER)
				ctl_member(val, len, &pid, node, sizeof(node));
		}
	}
	return outside;
}

static void test_fuzz(void)
{
	static uint8_t buf[1024];
	unsigned ok = 0, rejected = 0, outside = 0;
	for (unsigned i = 0; i < 20000; i++) {
		size_t n;
		if (i % 5 == 0) {
			n = rnd() % 200;
			for (size_t k = 0; k < n; k++)
				buf[k] = (uint8_t)rnd();
		} else {
			n = fuzz_seed(buf, sizeof(buf));
			unsigned flips = (unsigned)(rnd() % 4);
			for (unsigned k = 0; k < flips && n; k++)
				buf[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8));
			if (rnd() % 4 == 0)
				n = rnd() % (n + 1);
			if (rnd() % 4 == 0) {
				size_t extra = rnd() % 16;
				for (size_t k = 0; k < extra && n < sizeof(buf); k++)
					buf[n++] = (uint8_t)rnd();
			}
		}
		/* Often repair the length, so the field walk gets its turn. */
		if (n >= sizeof(struct ctl_hdr) && rnd() % 4)
			set_len(buf, (uint32_t)n);
		/* An exact-size copy: an overrun is then visible to valgrind. */
		uint8_t *copy = malloc(n ? n : 1);
		if (!copy)
			CU_FAIL_FATAL("out of memory");
		memcpy(copy, buf, n);
		struct ctl_in m;
		if (ctl_parse(&m, copy, n) == 0) {
			ok++;
			outside += fuzz_walk(&m);
		} else {
			rejected++;
		}
		free(copy);
	}
	CU_ASSERT_EQUAL(outside, 0);
	CU_ASSERT(ok > 1000);
	CU_ASSERT(rejected > 1000);
}

/* ------------------------------------------------------------------------ */

static const struct {
	const char *name;
	CU_TestFunc fn;
} tests[] = {
	{"round_trip", test_round_trip},
	{"padding", test_padding},
	{"parse_reject", test_parse_reject},
	{"get_str", test_get_str},
	{"member", test_member},
	{"check_group", test_check_group},
	{"check_node", test_check_node},
	{"overflow", test_overflow},
	{"send_recv", test_send_recv},
	{"recv_extra_fds", test_recv_extra_fds},
	{"recv_truncated", test_recv_truncated},
	{"fuzz", test_fuzz},
};

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	CU_pSuite s = CU_add_suite("ctl", NULL, NULL);
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

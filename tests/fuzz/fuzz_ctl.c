// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the control-protocol decoder (lib/proto/ctl.c), which
 * the daemon runs on every client's datagrams and the client on every
 * reply, so either side may be the hostile one.
 *
 * The first input byte picks a mode (the rest is its input):
 *   0  the bytes are a datagram as it comes off the socket;
 *   1  the bytes are a body behind a valid header (type from the first
 *      byte), so the fuzzer spends its time on fields, not on the magic;
 *   2  the bytes are a script of ctl_put* calls: encode, parse back, and
 *      check every field comes out as it went in.
 * A parsed message is walked with every accessor; anything an accessor
 * hands out that lies outside the datagram, or a round trip that does not
 * match, is abort(): a finding, not a rejection.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "proto/ctl.h"

#define ALIGN4(n) (((n) + 3u) & ~(size_t)3u)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 128 KiB: static, not on the stack. */
static struct ctl_out out;

#define CHECK(cond) FUZZ_CHECK("fuzz_ctl", cond)

/* Whether [p, p + n) lies inside the message's body. */
static bool in_body(const struct ctl_in *m, const void *p, size_t n)
{
	uintptr_t a = (uintptr_t)p, b = (uintptr_t)m->body;
	return a >= b && a - b <= m->body_len && n <= m->body_len - (a - b);
}

static const char node_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				 "0123456789._@-";

/* Every string check either rejects or says the bytes follow the rule. */
static void check_names(const uint8_t *val, size_t len)
{
	const char *s = (const char *)val;
	if (ctl_check_group(s, len) == 0) {
		CHECK(len >= 1 && len <= 255);
		CHECK(!memchr(s, 0, len) && !memchr(s, '/', len));
	}
	if (ctl_check_node(s, len) == 0) {
		CHECK(len >= 1 && len <= 63);
		/* Not NUL-terminated: no str* functions on it. */
		for (size_t i = 0; i < len; i++)
			CHECK(s[i] != 0 && memchr(node_chars, s[i], sizeof(node_chars) - 1));
	}
}

/* Call every accessor on a message ctl_parse accepted. */
static void walk(const struct ctl_in *m, size_t len)
{
	CHECK(m->hdr.len == len && m->body_len == len - sizeof(struct ctl_hdr));
	size_t fields = 0;
	/* Tags 0 and CTL_T_MAX + 1 too: no field may answer to them. */
	for (unsigned tag = 0; tag <= CTL_T_MAX + 1; tag++) {
		size_t cur = 0, prev = 0, n;
		const void *val;
		while (ctl_next(m, (uint16_t)tag, &cur, &val, &n) == 1) {
			CHECK(tag >= 1 && tag <= CTL_T_MAX);
			CHECK(cur > prev && cur <= m->body_len);
			CHECK(in_body(m, val, n));
			/* Fields start 4-aligned in the body. */
			CHECK(((uintptr_t)val - (uintptr_t)m->body) % 4 == 0);
			prev = cur;
			fields++;
			int32_t pid;
			char node[64];
			if (ctl_member(val, n, &pid, node, sizeof(node)) == 0)
				CHECK(strlen(node) == n - sizeof(pid) &&
				      ctl_check_node(node, strlen(node)) == 0);
			/* A tiny buffer: the length check must come first. */
			char tiny[2];
			if (ctl_member(val, n, &pid, tiny, sizeof(tiny)) == 0)
				CHECK(n == sizeof(pid) + 1);
			check_names(val, n);
		}
		CHECK(cur <= m->body_len);
		uint32_t u32;
		uint64_t u64;
		char s[256], one[1];
		int e32 = ctl_get_u32(m, (uint16_t)tag, &u32);
		int e64 = ctl_get_u64(m, (uint16_t)tag, &u64);
		CHECK(e32 == 0 || e32 == -ENOENT || e32 == -EPROTO);
		CHECK(e64 == 0 || e64 == -ENOENT || e64 == -EPROTO);
		int es = ctl_get_str(m, (uint16_t)tag, s, sizeof(s));
		CHECK(es == 0 || es == -ENOENT || es == -EPROTO);
		if (es == 0) {
			CHECK(strlen(s) < sizeof(s));
			check_names((const uint8_t *)s, strlen(s));
		}
		/* cap 1 holds only the empty string. */
		if (ctl_get_str(m, (uint16_t)tag, one, sizeof(one)) == 0)
			CHECK(one[0] == 0);
	}
	/* The per-tag walks together saw every field exactly once. */
	size_t off = 0, want = 0;
	while (off < m->body_len) {
		struct ctl_tlv t;
		memcpy(&t, m->body + off, sizeof(t));
		off += sizeof(t) + ALIGN4(t.len);
		want++;
	}
	CHECK(off == m->body_len && fields == want);
}

static void parse_and_walk(const uint8_t *buf, size_t len)
{
	struct ctl_in m;
	if (ctl_parse(&m, buf, len) == 0)
		walk(&m, len);
}

/* Mode 1: a header that passes, then the fuzzer's body. */
static void with_header(const uint8_t *data, size_t size)
{
	if (size < 1 || size - 1 > CTL_MAX_BYTES - sizeof(struct ctl_hdr))
		return;
	size_t len = sizeof(struct ctl_hdr) + size - 1;
	/* Exactly sized, so an over-read hits ASan's redzone. */
	uint8_t *buf = malloc(len);
	if (!buf)
		return;
	struct ctl_hdr h = {.magic = CTL_MAGIC,
			    .version = CTL_VERSION,
			    .type = data[0],
			    .len = (uint32_t)len,
			    .id = 1,
			    .status = 0};
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), data + 1, size - 1);
	parse_and_walk(buf, len);
	free(buf);
}

/* Mode 2: a model of what went in, to compare with what comes out. */
#define MAX_FIELDS 512
struct field {
	uint16_t tag;
	uint16_t len;
	const uint8_t *val; /* into `data`, or `fillbuf` for filled fields */
};
static uint8_t fillbuf[UINT16_MAX + 1];

/* Take n bytes of the script; false when it runs out. */
static bool take(const uint8_t **p, const uint8_t *end, void *dst, size_t n)
{
	if ((size_t)(end - *p) < n)
		return false;
	memcpy(dst, *p, n);
	*p += n;
	return true;
}

static void round_trip(const uint8_t *data, size_t size)
{
	static struct field f[MAX_FIELDS];
	const uint8_t *p = data, *end = data + size;
	uint8_t type = 0;
	uint32_t id = 0;
	int32_t status = 0;
	if (!take(&p, end, &type, 1) || !take(&p, end, &id, 4) || !take(&p, end, &status, 4))
		return;
	ctl_begin(&out, type, id, status);
	size_t nf = 0, len = sizeof(struct ctl_hdr);
	bool overflow = false, bad_tag = false;
	if (!fillbuf[0])
		memset(fillbuf, 0xa5, sizeof(fillbuf));
	while (nf < MAX_FIELDS) {
		uint8_t op, tag;
		if (!take(&p, end, &op, 1) || !take(&p, end, &tag, 1))
			break;
		/* Mostly valid tags, sometimes any 16-bit one. */
		uint16_t t16 =
		    (op & 0x80) ? (uint16_t)(tag * 257u) : (uint16_t)(tag % (CTL_T_MAX + 1));
		struct field *x = &f[nf];
		uint32_t u32;
		uint64_t u64;
		uint16_t n16;
		uint8_t n8;
		bool ok;
		char s[256], node[64];
		switch (op & 7) {
		case 0:
			if (!take(&p, end, &u32, 4))
				goto done;
			ok = ctl_put_u32(&out, t16, u32);
			*x = (struct field){t16, 4, p - 4};
			break;
		case 1:
			if (!take(&p, end, &u64, 8))
				goto done;
			ok = ctl_put_u64(&out, t16, u64);
			*x = (struct field){t16, 8, p - 8};
			break;
		case 2: /* a C string: what goes on the wire stops at its NUL */
			if (!take(&p, end, &n8, 1) || (size_t)(end - p) < n8)
				goto done;
			memcpy(s, p, n8);
			s[n8] = 0;
			ok = ctl_put_str(&out, t16, s);
			*x = (struct field){t16, (uint16_t)strlen(s), p};
			p += n8;
			break;
		case 3: /* a member: pid, then the node name cut at 63 bytes */
			if (!take(&p, end, &u32, 4) || !take(&p, end, &n8, 1) ||
			    (size_t)(end - p) < (size_t)(n8 & 63))
				goto done;
			memcpy(node, p, n8 & 63);
			node[n8 & 63] = 0;
			ok = ctl_put_member(&out, (int32_t)u32, node);
			{
				/* The model keeps pid and name in one run of bytes. */
				static uint8_t mem[MAX_FIELDS][4 + 64];
				size_t k = strnlen(node, 63);
				memcpy(mem[nf], &u32, 4);
				memcpy(mem[nf] + 4, node, k);
				*x = (struct field){CTL_T_MEMBER, (uint16_t)(4 + k), mem[nf]};
			}
			p += n8 & 63;
			break;
		case 4: /* raw bytes of the script */
			if (!take(&p, end, &n8, 1) || (size_t)(end - p) < n8)
				goto done;
			ok = ctl_put(&out, t16, p, n8);
			*x = (struct field){t16, n8, p};
			p += n8;
			break;
		case 5: /* a long field, to reach CTL_MAX_BYTES with short inputs */
			if (!take(&p, end, &n16, 2))
				goto done;
			ok = ctl_put(&out, t16, fillbuf, n16);
			*x = (struct field){t16, n16, fillbuf};
			break;
		default: /* too long for a field at all: must be refused */
			if (!take(&p, end, &n16, 2))
				goto done;
			CHECK(!ctl_put(&out, t16, fillbuf, (size_t)UINT16_MAX + 1 + n16));
			overflow = true;
			continue;
		}
		size_t step = sizeof(struct ctl_tlv) + ALIGN4(x->len);
		bool fits = len + step <= CTL_MAX_BYTES;
		CHECK(ok == fits);
		if (!ok) {
			overflow = true;
			continue;
		}
		len += step;
		if (x->tag == 0 || x->tag > CTL_T_MAX)
			bad_tag = true;
		nf++;
	}
done:;
	int err = ctl_end(&out);
	CHECK(err == (overflow ? -EMSGSIZE : 0));
	if (err)
		return;
	CHECK(out.len == len);
	/* Parse a copy of exactly the message's size: ASan sees over-reads. */
	uint8_t *buf = malloc(len);
	if (!buf)
		return;
	memcpy(buf, out.buf, len);
	struct ctl_in m;
	int perr = ctl_parse(&m, buf, len);
	uint8_t bare = type & (uint8_t)~CTL_REPLY;
	bool should = bare >= 1 && bare <= CTL_TYPE_MAX && !bad_tag;
	CHECK((perr == 0) == should);
	if (perr) {
		free(buf);
		return;
	}
	CHECK(m.hdr.type == type && m.hdr.id == id && m.hdr.status == status);
	walk(&m, len);
	/* Each tag's fields come back in the order they went in, intact. */
	for (unsigned tag = 1; tag <= CTL_T_MAX; tag++) {
		size_t cur = 0, n;
		const void *val;
		bool first = true;
		for (size_t i = 0; i < nf; i++) {
			if (f[i].tag != tag)
				continue;
			CHECK(ctl_next(&m, (uint16_t)tag, &cur, &val, &n) == 1);
			CHECK(n == f[i].len && memcmp(val, f[i].val, n) == 0);
			if (first) {
				/* ctl_get_* read the first field of the tag. */
				uint32_t u32;
				uint64_t u64;
				if (n == 4)
					CHECK(ctl_get_u32(&m, (uint16_t)tag, &u32) == 0 &&
					      memcmp(&u32, f[i].val, 4) == 0);
				if (n == 8)
					CHECK(ctl_get_u64(&m, (uint16_t)tag, &u64) == 0 &&
					      memcmp(&u64, f[i].val, 8) == 0);
				char s[256];
				if (n < sizeof(s) && !memchr(f[i].val, 0, n))
					CHECK(ctl_get_str(&m, (uint16_t)tag, s, sizeof(s)) == 0 &&
					      memcmp(s, f[i].val, n) == 0 && s[n] == 0);
				first = false;
			}
			if (tag == CTL_T_MEMBER) {
				int32_t pid;
				char node[64];
				size_t k = n - 4;
				bool valid = ctl_check_node((const char *)f[i].val + 4, k) == 0;
				CHECK((ctl_member(val, n, &pid, node, sizeof(node)) == 0) == valid);
				if (valid)
					CHECK(memcmp(&pid, f[i].val, 4) == 0 &&
					      memcmp(node, f[i].val + 4, k) == 0);
			}
		}
		CHECK(ctl_next(&m, (uint16_t)tag, &cur, &val, &n) == 0);
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		/* Straight from libFuzzer's buffer, which is exactly sized. */
		parse_and_walk(data + 1, size - 1);
		break;
	case 1:
		with_header(data + 1, size - 1);
		break;
	default:
		round_trip(data + 1, size - 1);
		break;
	}
	return 0;
}

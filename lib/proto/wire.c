// SPDX-License-Identifier: MIT
/* Node frames: find them in a record, check each payload, append them. */
#include "wire.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "ctl.h"

int wire_next(const uint8_t *buf, size_t len, struct wire_frame *f, size_t *used)
{
	struct wire_hdr h;
	if (len == 0)
		return 0;
	if (len < sizeof(h))
		return -EBADMSG;
	/* The record's plaintext has no alignment to speak of. */
	memcpy(&h, buf, sizeof(h));
	if (h.type == 0 || h.type > WIRE_TYPE_MAX || h.flags != 0)
		return -EBADMSG;
	/* Before the bound: a peer that declares a huge frame is told so,
	 * however few of its bytes arrived. */
	if (h.len > WIRE_FRAME_MAX)
		return -EMSGSIZE;
	if (h.len > len - sizeof(h))
		return -EBADMSG;
	*f = (struct wire_frame){.type = h.type, .payload = buf + sizeof(h), .len = h.len};
	*used = sizeof(h) + h.len;
	return 1;
}

/*
 * A fixed-size text field: its bytes up to the first NUL, and nothing but
 * NULs after it, so one name has one encoding (no hidden bytes to carry a
 * side channel or to make two peers' copies of a name compare unequal).
 * Returns the text's length, or -EBADMSG when the field has no NUL.
 */
static int field_text(const char *field, size_t size)
{
	const char *nul = memchr(field, 0, size);
	if (!nul)
		return -EBADMSG;
	for (const char *p = nul + 1; p < field + size; p++)
		if (*p)
			return -EBADMSG;
	return (int)(nul - field);
}

static int check_node_field(const char node[WIRE_NODE_MAX])
{
	int n = field_text(node, WIRE_NODE_MAX);
	if (n < 0)
		return n;
	return ctl_check_node(node, (size_t)n) ? -EBADMSG : 0;
}

static int check_name_field(const char name[WIRE_NAME_MAX])
{
	int n = field_text(name, WIRE_NAME_MAX);
	if (n < 0)
		return n;
	return ctl_check_group(name, (size_t)n) ? -EBADMSG : 0;
}

/* "" (a peer that does not listen) or a host:port. */
static int check_addr_field(const char addr[WIRE_ADDR_MAX])
{
	int n = field_text(addr, WIRE_ADDR_MAX);
	if (n <= 0)
		return n;
	return wire_check_addr(addr, NULL, 0, NULL) ? -EBADMSG : 0;
}

int wire_hello_parse(const struct wire_frame *f, struct wire_hello *out)
{
	struct wire_hello h;
	if (f->type != WIRE_HELLO || f->len != sizeof(h))
		return -EBADMSG;
	memcpy(&h, f->payload, sizeof(h));
	/* The version is the handshake's to judge: it can say "another
	 * version" (-EPROTONOSUPPORT), where a bad frame only closes. */
	if (h.magic != WIRE_MAGIC || check_node_field(h.node))
		return -EBADMSG;
	*out = h;
	return 0;
}

int wire_proof_parse(const struct wire_frame *f, struct wire_proof *out)
{
	if (f->type != WIRE_PROOF || f->len != sizeof(*out))
		return -EBADMSG;
	memcpy(out, f->payload, sizeof(*out));
	return 0;
}

int wire_ping_parse(const struct wire_frame *f, struct wire_ping *out)
{
	/* A pong is the ping echoed: one layout for both. */
	if ((f->type != WIRE_PING && f->type != WIRE_PONG) || f->len != sizeof(*out))
		return -EBADMSG;
	memcpy(out, f->payload, sizeof(*out));
	return 0;
}

int wire_peers_parse(const struct wire_frame *f, struct wire_peer *out, size_t cap, size_t *n)
{
	if (f->type != WIRE_PEERS || f->len % sizeof(struct wire_peer))
		return -EBADMSG;
	size_t count = f->len / sizeof(struct wire_peer);
	if (count > WIRE_PEERS_MAX || count > cap)
		return -EBADMSG;
	/* struct wire_peer is all chars (alignment 1): check it where it
	 * lies, and copy only a frame that passes whole. */
	const struct wire_peer *in = (const struct wire_peer *)f->payload;
	for (size_t i = 0; i < count; i++)
		if (check_node_field(in[i].node) || check_addr_field(in[i].addr))
			return -EBADMSG;
	if (count)
		memcpy(out, f->payload, f->len);
	*n = count;
	return 0;
}

int wire_bye_parse(const struct wire_frame *f)
{
	return f->type == WIRE_BYE && f->len == 0 ? 0 : -EBADMSG;
}

int wire_group_parse(const struct wire_frame *f, struct wire_group *out)
{
	struct wire_group g;
	if (f->type != WIRE_GROUP || f->len != sizeof(g))
		return -EBADMSG;
	memcpy(&g, f->payload, sizeof(g));
	/* Sizes, slots, mode and owner are the daemon's to judge against its
	 * own limits; here only the names, and nothing in the reserved word. */
	if (check_node_field(g.master) || check_name_field(g.name) || g.reserved)
		return -EBADMSG;
	*out = g;
	return 0;
}

/*
 * A fixed layout whose only rule is its name at name_at: the name is a
 * char array (alignment 1), so it is checked where it lies in the payload,
 * and the frame copied out only when it passes.
 */
static int named_parse(const struct wire_frame *f, uint16_t type, void *out, size_t size,
		       size_t name_at)
{
	if (f->type != type || f->len != size)
		return -EBADMSG;
	if (check_name_field((const char *)f->payload + name_at))
		return -EBADMSG;
	memcpy(out, f->payload, size);
	return 0;
}

int wire_name_parse(const struct wire_frame *f, struct wire_name *out)
{
	return named_parse(f, WIRE_GONE, out, sizeof(*out), offsetof(struct wire_name, name));
}

int wire_claim_parse(const struct wire_frame *f, struct wire_claim *out)
{
	return named_parse(f, WIRE_CLAIM, out, sizeof(*out), offsetof(struct wire_claim, name));
}

int wire_create_parse(const struct wire_frame *f, struct wire_create *out)
{
	return named_parse(f, WIRE_CREATE, out, sizeof(*out), offsetof(struct wire_create, name));
}

int wire_delete_parse(const struct wire_frame *f, struct wire_delete *out)
{
	return named_parse(f, WIRE_DELETE, out, sizeof(*out), offsetof(struct wire_delete, name));
}

int wire_reply_parse(const struct wire_frame *f, struct wire_reply *out)
{
	struct wire_reply r;
	if (f->type != WIRE_REPLY || f->len != sizeof(r))
		return -EBADMSG;
	memcpy(&r, f->payload, sizeof(r));
	/* A status is what a client would get: 0 or a negated errno, and
	 * errnos end at 4095 (the kernel's MAX_ERRNO). */
	if (r.status > 0 || r.status < -4095 || r.pad)
		return -EBADMSG;
	*out = r;
	return 0;
}

int wire_ask_parse(const struct wire_frame *f, uint16_t type, struct wire_claim *out)
{
	if (type != WIRE_CLAIM && type != WIRE_SUB && type != WIRE_MEMBERS && type != WIRE_FOPEN)
		return -EBADMSG;
	return named_parse(f, type, out, sizeof(*out), offsetof(struct wire_claim, name));
}

int wire_subbed_parse(const struct wire_frame *f, struct wire_subbed *out)
{
	struct wire_subbed r;
	if ((f->type != WIRE_SUBBED && f->type != WIRE_FOPENED) || f->len != sizeof(r))
		return -EBADMSG;
	memcpy(&r, f->payload, sizeof(r));
	if (r.status > 0 || r.status < -4095)
		return -EBADMSG;
	*out = r;
	return 0;
}

int wire_unsub_parse(const struct wire_frame *f, struct wire_unsub *out)
{
	struct wire_unsub u;
	if ((f->type != WIRE_UNSUB && f->type != WIRE_EVICTED) || f->len != sizeof(u))
		return -EBADMSG;
	memcpy(&u, f->payload, sizeof(u));
	if (u.pad)
		return -EBADMSG;
	*out = u;
	return 0;
}

int wire_rec_parse(const struct wire_frame *f, struct wire_rec *out, const uint8_t **payload)
{
	struct wire_rec r;
	if (f->type != WIRE_REC || f->len < sizeof(r))
		return -EBADMSG;
	memcpy(&r, f->payload, sizeof(r));
	/* Kinds as in ring/layout.h: MSG (2) .. DOWN (6). */
	if (r.len != f->len - sizeof(r) || r.kind < 2 || r.kind > 6 || !r.seq)
		return -EBADMSG;
	*out = r;
	*payload = f->payload + sizeof(r);
	return 0;
}

int wire_fwd_parse(const struct wire_frame *f, struct wire_fwd *out, const uint8_t **payload)
{
	struct wire_fwd w;
	if (f->type != WIRE_FWD || f->len < sizeof(w))
		return -EBADMSG;
	memcpy(&w, f->payload, sizeof(w));
	/* RING_F_ESEND (1) is the only flag a message has. */
	if (w.len != f->len - sizeof(w) || (w.flags & ~1u) || w.pad || w.from_pid <= 0)
		return -EBADMSG;
	*out = w;
	*payload = f->payload + sizeof(w);
	return 0;
}

int wire_fack_parse(const struct wire_frame *f, struct wire_fack *out)
{
	struct wire_fack a;
	if ((f->type != WIRE_FACK && f->type != WIRE_CREDIT) || f->len != sizeof(a))
		return -EBADMSG;
	memcpy(&a, f->payload, sizeof(a));
	if (a.pad)
		return -EBADMSG;
	*out = a;
	return 0;
}

int wire_nodeidx_parse(const struct wire_frame *f, struct wire_nodeidx *out)
{
	struct wire_nodeidx n;
	if (f->type != WIRE_NODEIDX || f->len != sizeof(n))
		return -EBADMSG;
	memcpy(&n, f->payload, sizeof(n));
	/* 32 = RING_NODES: index 0 is the master, never sent. */
	if (n.index == 0 || n.index >= 32 || check_node_field(n.node))
		return -EBADMSG;
	*out = n;
	return 0;
}

int wire_rjoin_parse(const struct wire_frame *f, struct wire_rjoin *out)
{
	if (f->type != WIRE_RJOIN && f->type != WIRE_RLEAVE)
		return -EBADMSG;
	struct wire_rjoin j;
	if (named_parse(f, f->type, &j, sizeof(j), offsetof(struct wire_rjoin, name)))
		return -EBADMSG;
	if (j.pid <= 0 || (j.flags & ~WIRE_RLEAVE_EXITED))
		return -EBADMSG;
	*out = j;
	return 0;
}

int wire_members_parse(const struct wire_frame *f, struct wire_members *out,
		       struct wire_member *entries, size_t cap)
{
	struct wire_members h;
	if (f->type != WIRE_MEMBER_LIST || f->len < sizeof(h))
		return -EBADMSG;
	memcpy(&h, f->payload, sizeof(h));
	if (h.status > 0 || h.status < -4095 || h.n > WIRE_MEMBERS_MAX || h.n > cap ||
	    f->len != sizeof(h) + (size_t)h.n * sizeof(struct wire_member))
		return -EBADMSG;
	for (uint32_t i = 0; i < h.n; i++) {
		struct wire_member m;
		memcpy(&m, f->payload + sizeof(h) + (size_t)i * sizeof(m), sizeof(m));
		if (check_node_field(m.node) || m.pad)
			return -EBADMSG;
		entries[i] = m;
	}
	*out = h;
	return 0;
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* Inside brackets only what an IPv6 address is written with (an IPv4 tail
 * included); a zone ("%eth0") means nothing to another node. */
static bool ip6_char(char c)
{
	return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') ||
	       c == ':' || c == '.';
}

/* 1..65535 in at most 5 decimal digits and nothing else: no sign, no
 * spaces, which strtoul would let through. */
static int parse_port(const char *s, size_t len, uint16_t *port)
{
	if (len == 0 || len > 5)
		return -EINVAL;
	uint32_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	if (v == 0 || v > UINT16_MAX)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int wire_check_addr(const char *addr, char *host, size_t host_cap, uint16_t *port)
{
	/* Longer than a wire_peer can carry is too long anywhere: a node must
	 * be able to tell its peers where it listens. */
	size_t len = strnlen(addr, WIRE_ADDR_MAX);
	if (len >= WIRE_ADDR_MAX)
		return -EINVAL;
	const char *colon = memrchr(addr, ':', len);
	if (!colon)
		return -EINVAL;
	size_t hlen = (size_t)(colon - addr);
	uint16_t p;
	if (hlen == 0 || hlen > WIRE_ADDR_MAX - 7 || parse_port(colon + 1, len - hlen - 1, &p))
		return -EINVAL;

	const char *h = addr;
	bool (*ok)(char) = host_char;
	if (addr[0] == '[') {
		/* "[" v6 "]": the brackets count towards the host's length,
		 * so that any port still fits the field. */
		if (hlen < 3 || addr[hlen - 1] != ']' || !memchr(addr + 1, ':', hlen - 2))
			return -EINVAL;
		h = addr + 1;
		hlen -= 2;
		ok = ip6_char;
	}
	for (size_t i = 0; i < hlen; i++)
		if (!ok(h[i]))
			return -EINVAL;

	if (host) {
		if (host_cap <= hlen)
			return -EINVAL;
		memcpy(host, h, hlen);
		host[hlen] = 0;
	}
	if (port)
		*port = p;
	return 0;
}

int wire_put(uint8_t *out, size_t cap, size_t *len, uint16_t type, const void *payload,
	     uint32_t plen)
{
	/* Never emit what wire_next would refuse. */
	if (type == 0 || type > WIRE_TYPE_MAX)
		return -EINVAL;
	if (plen > WIRE_FRAME_MAX)
		return -EMSGSIZE;
	if (*len > cap || cap - *len < sizeof(struct wire_hdr) ||
	    cap - *len - sizeof(struct wire_hdr) < plen)
		return -ENOBUFS;
	struct wire_hdr h = {.type = type, .flags = 0, .len = plen};
	memcpy(out + *len, &h, sizeof(h));
	if (plen)
		memcpy(out + *len + sizeof(h), payload, plen);
	*len += sizeof(h) + plen;
	return 0;
}

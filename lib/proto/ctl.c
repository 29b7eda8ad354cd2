// SPDX-License-Identifier: MIT
/* Control messages: build, parse with bounds checks, send and receive. */
#include "ctl.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ALIGN4(n) (((n) + 3u) & ~(size_t)3u)

void ctl_begin(struct ctl_out *o, uint8_t type, uint32_t id, int32_t status)
{
	struct ctl_hdr h = {.magic = CTL_MAGIC,
			    .version = CTL_VERSION,
			    .type = type,
			    .len = sizeof(h),
			    .id = id,
			    .status = status};
	memcpy(o->buf, &h, sizeof(h));
	o->len = sizeof(h);
	o->overflow = false;
}

bool ctl_put(struct ctl_out *o, uint16_t tag, const void *val, size_t len)
{
	if (len > UINT16_MAX || o->len + sizeof(struct ctl_tlv) + ALIGN4(len) > CTL_MAX_BYTES) {
		o->overflow = true;
		return false;
	}
	struct ctl_tlv t = {.tag = tag, .len = (uint16_t)len};
	memcpy(o->buf + o->len, &t, sizeof(t));
	if (len)
		memcpy(o->buf + o->len + sizeof(t), val, len);
	memset(o->buf + o->len + sizeof(t) + len, 0, ALIGN4(len) - len);
	o->len += sizeof(t) + ALIGN4(len);
	return true;
}

bool ctl_put_u32(struct ctl_out *o, uint16_t tag, uint32_t v)
{
	return ctl_put(o, tag, &v, sizeof(v));
}

bool ctl_put_u64(struct ctl_out *o, uint16_t tag, uint64_t v)
{
	return ctl_put(o, tag, &v, sizeof(v));
}

bool ctl_put_str(struct ctl_out *o, uint16_t tag, const char *s)
{
	return ctl_put(o, tag, s, strlen(s));
}

bool ctl_put_member(struct ctl_out *o, int32_t pid, const char *node)
{
	uint8_t v[sizeof(int32_t) + 64];
	size_t n = strnlen(node, 63);
	memcpy(v, &pid, sizeof(pid));
	memcpy(v + sizeof(pid), node, n);
	return ctl_put(o, CTL_T_MEMBER, v, sizeof(pid) + n);
}

int ctl_end(struct ctl_out *o)
{
	if (o->overflow)
		return -EMSGSIZE;
	uint32_t len = (uint32_t)o->len;
	memcpy(o->buf + offsetof(struct ctl_hdr, len), &len, sizeof(len));
	return 0;
}

int ctl_parse(struct ctl_in *m, const void *buf, size_t len)
{
	if (len < sizeof(struct ctl_hdr) || len > CTL_MAX_BYTES)
		return -EPROTO;
	memcpy(&m->hdr, buf, sizeof(m->hdr));
	if (m->hdr.magic != CTL_MAGIC || m->hdr.version != CTL_VERSION || m->hdr.len != len)
		return -EPROTO;
	uint8_t type = m->hdr.type & (uint8_t)~CTL_REPLY;
	if (type == 0 || type > CTL_TYPE_MAX)
		return -EPROTO;
	m->body = (const uint8_t *)buf + sizeof(struct ctl_hdr);
	m->body_len = len - sizeof(struct ctl_hdr);
	/* Walk every field once, so later lookups can trust the bounds. */
	size_t off = 0;
	while (off < m->body_len) {
		struct ctl_tlv t;
		if (m->body_len - off < sizeof(t))
			return -EPROTO;
		memcpy(&t, m->body + off, sizeof(t));
		if (t.tag == 0 || t.tag > CTL_T_MAX)
			return -EPROTO;
		size_t step = sizeof(t) + ALIGN4(t.len);
		if (step > m->body_len - off)
			return -EPROTO;
		off += step;
	}
	return 0;
}

int ctl_next(const struct ctl_in *m, uint16_t tag, size_t *cursor, const void **val,
	     size_t *len)
{
	size_t off = *cursor;
	while (off < m->body_len) {
		struct ctl_tlv t;
		memcpy(&t, m->body + off, sizeof(t));
		size_t here = off;
		off += sizeof(t) + ALIGN4(t.len);
		if (t.tag == tag) {
			*val = m->body + here + sizeof(t);
			*len = t.len;
			*cursor = off;
			return 1;
		}
	}
	*cursor = off;
	return 0;
}

int ctl_get(const struct ctl_in *m, uint16_t tag, const void **val, size_t *len)
{
	size_t cur = 0;
	return ctl_next(m, tag, &cur, val, len) == 1 ? 0 : -ENOENT;
}

int ctl_get_u32(const struct ctl_in *m, uint16_t tag, uint32_t *v)
{
	const void *p;
	size_t n;
	int err = ctl_get(m, tag, &p, &n);
	if (err)
		return err;
	if (n != sizeof(*v))
		return -EPROTO;
	memcpy(v, p, sizeof(*v));
	return 0;
}

int ctl_get_u64(const struct ctl_in *m, uint16_t tag, uint64_t *v)
{
	const void *p;
	size_t n;
	int err = ctl_get(m, tag, &p, &n);
	if (err)
		return err;
	if (n != sizeof(*v))
		return -EPROTO;
	memcpy(v, p, sizeof(*v));
	return 0;
}

int ctl_get_str(const struct ctl_in *m, uint16_t tag, char *out, size_t cap)
{
	const void *p;
	size_t n;
	int err = ctl_get(m, tag, &p, &n);
	if (err)
		return err;
	if (n >= cap || memchr(p, 0, n))
		return -EPROTO;
	memcpy(out, p, n);
	out[n] = 0;
	return 0;
}

int ctl_member(const void *val, size_t len, int32_t *pid, char *node, size_t node_cap)
{
	if (len < sizeof(*pid) || len - sizeof(*pid) >= node_cap)
		return -EPROTO;
	memcpy(pid, val, sizeof(*pid));
	size_t n = len - sizeof(*pid);
	memcpy(node, (const uint8_t *)val + sizeof(*pid), n);
	node[n] = 0;
	return ctl_check_node(node, n) ? -EPROTO : 0;
}

int ctl_check_group(const char *name, size_t len)
{
	if (len == 0 || len > 255)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (name[i] == 0 || name[i] == '/')
			return -EINVAL;
	return 0;
}

int ctl_check_node(const char *name, size_t len)
{
	if (len == 0 || len > 63)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '@' || c == '-';
		if (!ok)
			return -EINVAL;
	}
	return 0;
}

int ctl_send(int sock, const struct ctl_out *o, const int *fds, unsigned nfds)
{
	struct iovec iov = {.iov_base = (void *)o->buf, .iov_len = o->len};
	union {
		char buf[CMSG_SPACE(sizeof(int) * CTL_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds > CTL_MAX_FDS)
		return -EINVAL;
	if (nfds) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	ssize_t n;
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == o->len ? 0 : -EIO;
}

ssize_t ctl_recv(int sock, void *buf, size_t cap, int *fds, unsigned *nfds, int flags)
{
	struct iovec iov = {.iov_base = buf, .iov_len = cap};
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	unsigned want = *nfds, got = 0;
	*nfds = 0;
	ssize_t n;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (got < want)
				fds[got++] = fd;
			else
				close(fd); /* nobody asked for it: never leak */
		}
	}
	*nfds = got;
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		for (unsigned i = 0; i < got; i++)
			close(fds[i]);
		*nfds = 0;
		return -EMSGSIZE;
	}
	return n;
}

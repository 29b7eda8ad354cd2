// SPDX-License-Identifier: MIT
/* Node links over io_uring: multishot accept and receive, one batching
 * writer per link (link.h says why each piece is what it is). */
#include "link.h"

#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Receive buffers, shared by every link: a record larger than one is
 * gathered in the link's own buffer. */
#define LINK_BUF_BYTES (64u * 1024u)
#define LINK_BUFS 64u /* a power of 2 */
#define LINK_BGID 7
/* Plaintext per sealed record: large enough that sealing and the syscall
 * are paid once per many messages, small enough to keep the first bytes
 * of a burst moving early. A larger single frame is one record of its own. */
#define LINK_BATCH_BYTES (256u * 1024u)
#define LINK_DEFAULT_CAP (64u << 20)
/* Before the handshake keys a link, its records carry one small frame
 * each: a stranger may not make us hold megabytes. */
#define LINK_PLAIN_RECORD_MAX 1024u
#define LINK_KEEP_BYTES (4u << 20) /* buffers above this are freed when idle */

enum op_kind { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_CONNECT, OP_TIMEOUT, OP_CANCEL, OP_FUTEX };

/* io_uring's futex wait (Linux 6.7); liburing 2.3 has no helper for it. */
#ifndef IORING_OP_FUTEX_WAIT
#define IORING_OP_FUTEX_WAIT 51
#endif
#define PG_FUTEX2_SIZE_U32 0x02u /* shared (not FUTEX2_PRIVATE): a memfd word */
#define PG_FUTEX_BITSET_ANY 0xffffffffu

/* io_uring's user_data points at one of these: which link, which op. */
struct op {
	struct link *l;
	uint8_t kind;
};

/* A futex wait: freed when it completes. */
struct futex_op {
	struct op op; /* first: user_data points at it */
	void (*fn)(void *arg, int res);
	void *arg;
	struct futex_op *next; /* waits in the kernel, for node_io_destroy */
};

struct link {
	struct node_io *io;
	const struct link_ops *ops;
	void *arg;
	int fd;
	struct op op_recv, op_send, op_connect, op_timeout, op_cancel;
	unsigned inflight; /* ops the kernel holds: freed only at 0 */
	bool connecting;
	bool recv_armed;
	bool closing;
	bool draining; /* link_close_after_send */
	int close_err;
	struct sockaddr_storage sa;
	socklen_t salen;
	struct __kernel_timespec connect_ts;
	uint8_t *in; /* received bytes of records not yet whole */
	size_t in_len, in_cap;
	uint8_t *out; /* queued frames, plaintext */
	size_t out_len, out_cap;
	uint8_t *tx; /* sealed records being sent */
	size_t tx_len, tx_off, tx_cap;
	size_t cap;
	struct seal txs, rxs;
	/* link_key_tx: the key to take once out[0..key_at) is sealed. */
	bool key_pending;
	size_t key_at;
	uint8_t key[HS_KEY_BYTES];
	bool key_encrypt, key_aes;
	struct link_stats st;
	struct link *next;
};

struct node_io {
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	size_t br_bytes;
	uint8_t *bufs;
	struct link *links;
	int listen_fd;
	struct op op_accept;
	bool accept_armed;
	void (*accept)(void *arg, int fd, const struct sockaddr *sa, socklen_t len);
	void *accept_arg;
	struct futex_op *futexes;
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* A free submission entry; submits to make room when the queue is full. */
static struct io_uring_sqe *sqe_get(struct node_io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);
	if (!sqe) {
		io_uring_submit(&io->ring);
		sqe = io_uring_get_sqe(&io->ring);
	}
	return sqe;
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 4096;
	while (n < need)
		n *= 2;
	uint8_t *p = realloc(*buf, n);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = n;
	return 0;
}

static void shrink(uint8_t **buf, size_t *cap)
{
	if (*cap > LINK_KEEP_BYTES) {
		free(*buf);
		*buf = NULL;
		*cap = 0;
	}
}

int node_io_new(struct node_io **out)
{
	struct node_io *io = calloc(1, sizeof(*io));
	if (!io)
		return -ENOMEM;
	io->listen_fd = -1;
	io->op_accept.kind = OP_ACCEPT;
	int err = io_uring_queue_init(256, &io->ring, 0);
	if (err) {
		free(io);
		return err;
	}
	io->br_bytes = LINK_BUFS * sizeof(struct io_uring_buf);
	io->br = mmap(NULL, io->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		      0);
	io->bufs = malloc((size_t)LINK_BUFS * LINK_BUF_BYTES);
	if (io->br == MAP_FAILED || !io->bufs) {
		err = -ENOMEM;
		goto fail;
	}
	io_uring_buf_ring_init(io->br);
	struct io_uring_buf_reg reg = {
		.ring_addr = (uintptr_t)io->br, .ring_entries = LINK_BUFS, .bgid = LINK_BGID};
	if ((err = io_uring_register_buf_ring(&io->ring, &reg, 0)))
		goto fail;
	for (unsigned i = 0; i < LINK_BUFS; i++)
		io_uring_buf_ring_add(io->br, io->bufs + (size_t)i * LINK_BUF_BYTES, LINK_BUF_BYTES,
				      (unsigned short)i, io_uring_buf_ring_mask(LINK_BUFS), (int)i);
	io_uring_buf_ring_advance(io->br, LINK_BUFS);
	*out = io;
	return 0;
fail:
	if (io->br != MAP_FAILED && io->br)
		munmap(io->br, io->br_bytes);
	free(io->bufs);
	io_uring_queue_exit(&io->ring);
	free(io);
	return err;
}

static void link_free(struct link *l)
{
	if (l->fd >= 0)
		close(l->fd);
	seal_clear(&l->txs);
	seal_clear(&l->rxs);
	memset(l->key, 0, sizeof(l->key));
	free(l->in);
	free(l->out);
	free(l->tx);
	free(l);
}

void node_io_destroy(struct node_io *io)
{
	if (!io)
		return;
	/* Exiting the ring cancels what the kernel holds; no callbacks now,
	 * but futex waiters hear -ECANCELED so they free what they hold. */
	io_uring_queue_exit(&io->ring);
	while (io->futexes) {
		struct futex_op *f = io->futexes;
		io->futexes = f->next;
		f->fn(f->arg, -ECANCELED);
		free(f);
	}
	while (io->links) {
		struct link *l = io->links;
		io->links = l->next;
		link_free(l);
	}
	if (io->listen_fd >= 0)
		close(io->listen_fd);
	munmap(io->br, io->br_bytes);
	free(io->bufs);
	free(io);
}

int node_io_fd(const struct node_io *io)
{
	return io->ring.ring_fd;
}

static void arm_accept(struct node_io *io)
{
	struct io_uring_sqe *sqe = sqe_get(io);
	if (!sqe)
		return; /* the tick's node_io_flush tries again */
	io_uring_prep_multishot_accept(sqe, io->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data(sqe, &io->op_accept);
	io->accept_armed = true;
}

int node_io_listen(struct node_io *io, int fd,
		   void (*accept)(void *arg, int fd, const struct sockaddr *sa, socklen_t len),
		   void *arg)
{
	io->listen_fd = fd;
	io->accept = accept;
	io->accept_arg = arg;
	arm_accept(io);
	io_uring_submit(&io->ring);
	return 0;
}

static struct link *link_alloc(struct node_io *io, int fd, const struct link_ops *ops, void *arg)
{
	struct link *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->io = io;
	l->ops = ops;
	l->arg = arg;
	l->fd = fd;
	l->cap = LINK_DEFAULT_CAP;
	l->op_recv = (struct op){l, OP_RECV};
	l->op_send = (struct op){l, OP_SEND};
	l->op_connect = (struct op){l, OP_CONNECT};
	l->op_timeout = (struct op){l, OP_TIMEOUT};
	l->op_cancel = (struct op){l, OP_CANCEL};
	seal_init(&l->txs);
	seal_init(&l->rxs);
	l->next = io->links;
	io->links = l;
	return l;
}

static void arm_recv(struct link *l)
{
	struct io_uring_sqe *sqe = sqe_get(l->io);
	if (!sqe) {
		link_close(l, -EBUSY);
		return;
	}
	io_uring_prep_recv_multishot(sqe, l->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = LINK_BGID;
	io_uring_sqe_set_data(sqe, &l->op_recv);
	l->inflight++;
	l->recv_armed = true;
}

static void no_delay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

struct link *link_accepted(struct node_io *io, int fd, const struct link_ops *ops, void *arg)
{
	struct link *l = link_alloc(io, fd, ops, arg);
	if (!l) {
		close(fd);
		return NULL;
	}
	no_delay(fd);
	arm_recv(l);
	return l;
}

struct link *link_connect(struct node_io *io, const struct sockaddr *sa, socklen_t len,
			  unsigned timeout_ms, const struct link_ops *ops, void *arg)
{
	if (len > sizeof(struct sockaddr_storage))
		return NULL;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	struct link *l = link_alloc(io, fd, ops, arg);
	if (!l) {
		close(fd);
		return NULL;
	}
	no_delay(fd);
	memcpy(&l->sa, sa, len);
	l->salen = len;
	l->connect_ts.tv_sec = timeout_ms / 1000;
	l->connect_ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
	/* Connect and its time limit as one linked pair: whichever ends
	 * first cancels the other. */
	struct io_uring_sqe *sqe = sqe_get(io);
	if (!sqe) {
		link_close(l, -EBUSY);
		return l;
	}
	io_uring_prep_connect(sqe, fd, (struct sockaddr *)&l->sa, l->salen);
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data(sqe, &l->op_connect);
	struct io_uring_sqe *t = sqe_get(io);
	if (t) {
		io_uring_prep_link_timeout(t, &l->connect_ts, 0);
		io_uring_sqe_set_data(t, &l->op_timeout);
		l->inflight++;
	} else {
		sqe->flags &= (uint8_t)~IOSQE_IO_LINK;
	}
	l->inflight++;
	l->connecting = true;
	return l;
}

void *link_arg(const struct link *l)
{
	return l->arg;
}

void link_set_arg(struct link *l, void *arg)
{
	l->arg = arg;
}

void link_set_cap(struct link *l, size_t cap)
{
	l->cap = cap;
}

struct seal *link_tx(struct link *l)
{
	return &l->txs;
}

struct seal *link_rx(struct link *l)
{
	return &l->rxs;
}

int link_send2(struct link *l, uint16_t type, const void *a, uint32_t alen, const void *b,
	       uint32_t blen)
{
	if (l->closing || l->draining)
		return -EPIPE;
	uint64_t len = (uint64_t)alen + blen;
	if (len > WIRE_FRAME_MAX)
		return -EMSGSIZE;
	size_t frame = sizeof(struct wire_hdr) + (size_t)len;
	if (l->out_len + l->tx_len - l->tx_off + frame > l->cap)
		return -ENOBUFS;
	if (grow(&l->out, &l->out_cap, l->out_len + frame))
		return -ENOMEM;
	if (!l->out_len)
		l->st.queued_since = now_ns();
	struct wire_hdr h = {.type = type, .len = (uint32_t)len};
	memcpy(l->out + l->out_len, &h, sizeof(h));
	if (alen)
		memcpy(l->out + l->out_len + sizeof(h), a, alen);
	if (blen)
		memcpy(l->out + l->out_len + sizeof(h) + alen, b, blen);
	l->out_len += frame;
	return 0;
}

int link_send(struct link *l, uint16_t type, const void *payload, uint32_t len)
{
	if (type == 0 || type > WIRE_TYPE_MAX)
		return -EINVAL;
	return link_send2(l, type, payload, len, NULL, 0);
}

int node_io_futex_wait(struct node_io *io, _Atomic uint32_t *word, uint32_t val,
		       void (*fn)(void *arg, int res), void *arg)
{
	struct futex_op *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	struct io_uring_sqe *sqe = sqe_get(io);
	if (!sqe) {
		free(f);
		return -EBUSY;
	}
	f->op.kind = OP_FUTEX;
	f->fn = fn;
	f->arg = arg;
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_FUTEX_WAIT;
	sqe->fd = (int)PG_FUTEX2_SIZE_U32;
	sqe->addr = (uint64_t)(uintptr_t)word;
	sqe->off = val;
	sqe->addr3 = PG_FUTEX_BITSET_ANY;
	io_uring_sqe_set_data(sqe, &f->op);
	f->next = io->futexes;
	io->futexes = f;
	return 0;
}

void link_key_tx(struct link *l, const uint8_t key[HS_KEY_BYTES], bool encrypt, bool aes)
{
	memcpy(l->key, key, HS_KEY_BYTES);
	l->key_encrypt = encrypt;
	l->key_aes = aes;
	l->key_at = l->out_len;
	l->key_pending = true;
}

void link_close_after_send(struct link *l, int err)
{
	if (!l->draining && !l->closing) {
		l->draining = true;
		l->close_err = err;
	}
}

void link_close(struct link *l, int err)
{
	if (l->closing)
		return;
	l->closing = true;
	l->close_err = err;
	/* Ends the kernel's hold on the socket: a pending receive completes
	 * with 0, a send with an error; cancel catches anything else. */
	shutdown(l->fd, SHUT_RDWR);
	if (l->inflight) {
		struct io_uring_sqe *sqe = sqe_get(l->io);
		if (sqe) {
			io_uring_prep_cancel_fd(sqe, l->fd, IORING_ASYNC_CANCEL_ALL);
			io_uring_sqe_set_data(sqe, &l->op_cancel);
			l->inflight++;
		}
	}
	l->out_len = 0;
}

void link_stats(const struct link *l, struct link_stats *st)
{
	*st = l->st;
	st->queued = l->out_len;
	st->in_flight = l->tx_len - l->tx_off;
	if (!l->out_len && !st->in_flight)
		st->queued_since = 0;
}

int link_peer_addr(const struct link *l, struct sockaddr_storage *sa, socklen_t *len)
{
	*len = sizeof(*sa);
	return getpeername(l->fd, (struct sockaddr *)sa, len) < 0 ? -errno : 0;
}

/* Open every whole record gathered in l->in and hand it up. */
static void take_records(struct link *l)
{
	size_t off = 0;
	while (!l->closing && !l->draining && l->in_len - off >= sizeof(struct seal_hdr)) {
		struct seal_hdr h;
		memcpy(&h, l->in + off, sizeof(h));
		size_t body;
		int err = seal_check_hdr(&l->rxs, &h, &body);
		if (!err && !l->rxs.keyed && body > LINK_PLAIN_RECORD_MAX)
			err = -EMSGSIZE;
		if (err) {
			link_close(l, err);
			return;
		}
		if (l->in_len - off - sizeof(h) < body)
			break;
		uint8_t *plain;
		size_t n;
		err = seal_open(&l->rxs, &h, l->in + off + sizeof(h), body, &plain, &n);
		off += sizeof(h) + body;
		l->st.rx_records++;
		if (!err)
			err = l->ops->record(l, plain, n);
		if (err) {
			if (!l->draining)
				link_close(l, err);
			return;
		}
	}
	memmove(l->in, l->in + off, l->in_len - off);
	l->in_len -= off;
	if (!l->in_len)
		shrink(&l->in, &l->in_cap);
}

static void on_recv(struct link *l, const struct io_uring_cqe *cqe)
{
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		uint8_t *buf = l->io->bufs + (size_t)bid * LINK_BUF_BYTES;
		if (cqe->res > 0 && !l->closing) {
			size_t n = (size_t)cqe->res;
			if (grow(&l->in, &l->in_cap, l->in_len + n) == 0) {
				memcpy(l->in + l->in_len, buf, n);
				l->in_len += n;
				l->st.rx_bytes += n;
			} else {
				link_close(l, -ENOMEM);
			}
		}
		/* The buffer goes back to the ring at once: the bytes are ours. */
		io_uring_buf_ring_add(l->io->br, buf, LINK_BUF_BYTES, (unsigned short)bid,
				      io_uring_buf_ring_mask(LINK_BUFS), 0);
		io_uring_buf_ring_advance(l->io->br, 1);
	}
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		l->inflight--;
		l->recv_armed = false;
	}
	if (cqe->res > 0)
		take_records(l);
	else if (cqe->res == 0)
		link_close(l, -ECONNRESET);
	else if (cqe->res != -ENOBUFS)
		link_close(l, cqe->res);
	/* Out of buffers (they are back now) or a multishot the kernel ended:
	 * receive again. */
	if (!l->closing && !l->recv_armed)
		arm_recv(l);
}

static void submit_send(struct link *l)
{
	struct io_uring_sqe *sqe = sqe_get(l->io);
	if (!sqe) {
		link_close(l, -EBUSY);
		return;
	}
	io_uring_prep_send(sqe, l->fd, l->tx + l->tx_off, l->tx_len - l->tx_off, MSG_NOSIGNAL);
	io_uring_sqe_set_data(sqe, &l->op_send);
	l->inflight++;
}

/* Seal all that is queued into records of up to LINK_BATCH_BYTES of whole
 * frames, and send them with one send. */
static void flush_link(struct link *l)
{
	if (l->draining && !l->closing && !l->tx_len && !l->out_len) {
		link_close(l, l->close_err);
		return;
	}
	if (l->closing || l->connecting || l->tx_len || !l->out_len)
		return;
	int64_t now = now_ns();
	size_t off = 0;
	while (off < l->out_len) {
		if (l->key_pending && off == l->key_at) {
			seal_key(&l->txs, l->key, l->key_encrypt, l->key_aes, now);
			memset(l->key, 0, sizeof(l->key));
			l->key_pending = false;
		}
		size_t end = l->key_pending ? l->key_at : l->out_len;
		size_t n = 0;
		while (off + n < end) {
			struct wire_hdr h;
			memcpy(&h, l->out + off + n, sizeof(h));
			size_t f = sizeof(h) + h.len;
			if (n && n + f > LINK_BATCH_BYTES)
				break;
			n += f;
		}
		if (grow(&l->tx, &l->tx_cap, l->tx_len + n + seal_overhead(&l->txs))) {
			link_close(l, -ENOMEM);
			return;
		}
		size_t rec = seal_record(&l->txs, l->tx + l->tx_len, l->out + off, n, now);
		if (!rec) { /* every key epoch used: a new link starts afresh */
			link_close(l, -EKEYEXPIRED);
			return;
		}
		l->tx_len += rec;
		l->st.tx_records++;
		off += n;
	}
	if (l->key_pending) /* nothing was queued after the boundary */
		l->key_at = 0;
	l->out_len = 0;
	shrink(&l->out, &l->out_cap);
	submit_send(l);
}

static void on_send(struct link *l, const struct io_uring_cqe *cqe)
{
	l->inflight--;
	if (l->closing)
		return;
	if (cqe->res <= 0) {
		link_close(l, cqe->res ? cqe->res : -EPIPE);
		return;
	}
	l->st.tx_sends++;
	l->st.tx_bytes += (uint64_t)cqe->res;
	l->tx_off += (size_t)cqe->res;
	if (l->tx_off < l->tx_len) {
		submit_send(l); /* a short send: the rest */
		return;
	}
	l->tx_len = l->tx_off = 0;
	shrink(&l->tx, &l->tx_cap);
	flush_link(l);
}

static void on_connect(struct link *l, const struct io_uring_cqe *cqe)
{
	l->inflight--;
	l->connecting = false;
	int err = cqe->res == -ECANCELED ? -ETIMEDOUT : cqe->res;
	if (l->closing)
		return;
	if (err) {
		l->ops->connected(l, err);
		link_close(l, err);
		return;
	}
	arm_recv(l);
	l->ops->connected(l, 0);
}

static void on_cqe(struct node_io *io, const struct io_uring_cqe *cqe)
{
	struct op *op = io_uring_cqe_get_data(cqe);
	if (!op)
		return;
	if (op->kind == OP_FUTEX) {
		struct futex_op *f = (struct futex_op *)op;
		for (struct futex_op **p = &io->futexes; *p; p = &(*p)->next)
			if (*p == f) {
				*p = f->next;
				break;
			}
		f->fn(f->arg, cqe->res);
		free(f);
		return;
	}
	if (op->kind == OP_ACCEPT) {
		if (!(cqe->flags & IORING_CQE_F_MORE))
			io->accept_armed = false;
		if (cqe->res >= 0) {
			struct sockaddr_storage sa;
			socklen_t len = sizeof(sa);
			if (getpeername(cqe->res, (struct sockaddr *)&sa, &len) < 0)
				len = 0;
			io->accept(io->accept_arg, cqe->res, (struct sockaddr *)&sa, len);
		}
		/* Out of fds and the like: the next flush arms it again. */
		return;
	}
	struct link *l = op->l;
	switch (op->kind) {
	case OP_RECV:
		on_recv(l, cqe);
		break;
	case OP_SEND:
		on_send(l, cqe);
		break;
	case OP_CONNECT:
		on_connect(l, cqe);
		break;
	default: /* OP_TIMEOUT, OP_CANCEL: only their hold ends */
		l->inflight--;
		break;
	}
}

/* Links closed and no longer held by the kernel: tell their owners, free. */
static void reap(struct node_io *io)
{
	for (struct link **pp = &io->links; *pp;) {
		struct link *l = *pp;
		if (!l->closing || l->inflight) {
			pp = &l->next;
			continue;
		}
		*pp = l->next;
		l->ops->closed(l, l->close_err);
		link_free(l);
	}
}

void node_io_complete(struct node_io *io)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	/* Handle a bounded batch, then let the loop serve others. */
	io_uring_for_each_cqe(&io->ring, head, cqe)
	{
		on_cqe(io, cqe);
		if (++n == 256)
			break;
	}
	io_uring_cq_advance(&io->ring, n);
	node_io_flush(io);
}

void node_io_flush(struct node_io *io)
{
	if (io->listen_fd >= 0 && !io->accept_armed)
		arm_accept(io);
	for (struct link *l = io->links; l; l = l->next)
		flush_link(l);
	reap(io);
	if (io_uring_sq_ready(&io->ring))
		io_uring_submit(&io->ring);
}

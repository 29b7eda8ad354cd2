// SPDX-License-Identifier: MIT
/*
 * Plain sockets, one connected pair per receiver, made before fork; the
 * sender writes each message to every receiver's socket in turn. The
 * kernel's socket buffer is the queue, and a full one blocks the sender.
 *   unix: AF_UNIX SOCK_SEQPACKET (a message per packet);
 *   tcp:  loopback TCP, TCP_NODELAY, messages of --size back to back: the
 *         floor of any design that moves a message over loopback TCP to a
 *         receiver that sleeps (pgroup across nodes, ZeroMQ tcp://).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "compare.h"

struct pairs {
	unsigned n;
	bool stream; /* tcp: no packet boundaries, read exactly --size */
	int fd[][2]; /* [j][0] the sender's end, [j][1] receiver j's */
};

/* A connected loopback TCP pair, like socketpair(2): 0 or -errno. */
static int tcp_pair(int fd[2])
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int one = 1, err = 0;
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	fd[0] = fd[1] = -1;
	if (ls < 0)
		return -errno;
	if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 1) ||
	    getsockname(ls, (struct sockaddr *)&a, &alen) ||
	    (fd[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd[0], (struct sockaddr *)&a, sizeof(a)) ||
	    (fd[1] = accept4(ls, NULL, NULL, SOCK_CLOEXEC)) < 0 ||
	    setsockopt(fd[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		err = -errno;
	close(ls);
	if (err) {
		if (fd[0] >= 0)
			close(fd[0]);
		if (fd[1] >= 0)
			close(fd[1]);
		fd[0] = fd[1] = -1;
	}
	return err;
}

struct rx {
	int fd;
	bool stream;
	size_t size;
	unsigned char buf[];
};

static void close_pairs(struct pairs *p, int keep)
{
	for (unsigned j = 0; j < p->n; j++)
		for (int e = 0; e < 2; e++)
			if (p->fd[j][e] >= 0 && p->fd[j][e] != keep)
				close(p->fd[j][e]);
}

static int prepare_pairs(struct cmp_run *r, bool stream)
{
	struct pairs *p = malloc(sizeof(*p) + r->members * sizeof(p->fd[0]));
	if (!p)
		return -ENOMEM;
	p->n = r->members;
	p->stream = stream;
	memset(p->fd, -1, r->members * sizeof(p->fd[0]));
	for (unsigned j = 0; j < r->members; j++) {
		int err = stream ? tcp_pair(p->fd[j])
				 : socketpair(AF_UNIX, SOCK_SEQPACKET, 0, p->fd[j]) < 0 ? -errno : 0;
		if (err) {
			close_pairs(p, -1);
			free(p);
			return err;
		}
	}
	r->priv = p;
	return 0;
}

static int ux_prepare(struct cmp_run *r)
{
	return prepare_pairs(r, false);
}

static int tcp_prepare(struct cmp_run *r)
{
	return prepare_pairs(r, true);
}

static void ux_cleanup(struct cmp_run *r)
{
	close_pairs(r->priv, -1);
	free(r->priv);
	r->priv = NULL;
}

static int ux_tx_open(struct cmp_run *r, void **tx)
{
	struct pairs *p = r->priv;
	/* Receivers' ends closed here, so a receiver that dies reads as EPIPE. */
	for (unsigned j = 0; j < p->n; j++) {
		close(p->fd[j][1]);
		p->fd[j][1] = -1;
	}
	*tx = p;
	return 0;
}

static int ux_tx_send(void *tx, const void *buf, size_t len)
{
	struct pairs *p = tx;
	for (unsigned j = 0; j < p->n; j++) {
		while (send(p->fd[j][0], buf, len, MSG_NOSIGNAL) < 0) {
			if (errno != EINTR)
				return -errno;
		}
	}
	return 0;
}

static void ux_tx_close(void *tx)
{
	close_pairs(tx, -1);
}

static int ux_rx_open(struct cmp_run *r, unsigned j, void **rx)
{
	struct pairs *p = r->priv;
	int fd = p->fd[j][1];
	/* Only our own end stays open, so a dead sender reads as end-of-file. */
	close_pairs(p, fd);
	struct timeval tv = {.tv_sec = CMP_IDLE_MS / 1000};
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	struct rx *x = malloc(sizeof(*x) + r->size);
	if (!x)
		return -ENOMEM;
	x->fd = fd;
	x->stream = p->stream;
	x->size = r->size;
	*rx = x;
	return 0;
}

static int ux_rx_recv(void *rx, struct cmp_hdr *h, size_t *len, uint64_t *gseq)
{
	struct rx *x = rx;
	/* MSG_TRUNC: the packet's real length, so an oversized one is caught.
	 * A stream has no packets: every message is --size bytes. */
	ssize_t n = recv(x->fd, x->buf, x->size, x->stream ? MSG_WAITALL : MSG_TRUNC);
	if (n < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	if (n == 0)
		return -EPIPE;
	if ((size_t)n >= sizeof(*h))
		memcpy(h, x->buf, sizeof(*h));
	*len = (size_t)n;
	*gseq = 0;
	return 0;
}

static void ux_rx_close(void *rx)
{
	struct rx *x = rx;
	close(x->fd);
	free(x);
}

const struct xport xport_unix = {
	.name = "unix",
	.prepare = ux_prepare,
	.cleanup = ux_cleanup,
	.tx_open = ux_tx_open,
	.tx_send = ux_tx_send,
	.tx_close = ux_tx_close,
	.rx_open = ux_rx_open,
	.rx_recv = ux_rx_recv,
	.rx_close = ux_rx_close,
};

const struct xport xport_tcp = {
	.name = "tcp",
	.prepare = tcp_prepare,
	.cleanup = ux_cleanup,
	.tx_open = ux_tx_open,
	.tx_send = ux_tx_send,
	.tx_close = ux_tx_close,
	.rx_open = ux_rx_open,
	.rx_recv = ux_rx_recv,
	.rx_close = ux_rx_close,
};

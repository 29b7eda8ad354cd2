// SPDX-License-Identifier: MIT
/*
 * AF_UNIX SOCK_SEQPACKET: one socket pair per receiver, made before fork;
 * the sender writes each message to every receiver's socket in turn. The
 * kernel's socket buffer is the queue, and a full one blocks the sender.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "compare.h"

struct pairs {
	unsigned n;
	int fd[][2]; /* [j][0] the sender's end, [j][1] receiver j's */
};

struct rx {
	int fd;
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

static int ux_prepare(struct cmp_run *r)
{
	struct pairs *p = malloc(sizeof(*p) + r->members * sizeof(p->fd[0]));
	if (!p)
		return -ENOMEM;
	p->n = r->members;
	memset(p->fd, -1, r->members * sizeof(p->fd[0]));
	for (unsigned j = 0; j < r->members; j++) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, p->fd[j]) < 0) {
			int err = -errno;
			close_pairs(p, -1);
			free(p);
			return err;
		}
	}
	r->priv = p;
	return 0;
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
	x->size = r->size;
	*rx = x;
	return 0;
}

static int ux_rx_recv(void *rx, struct cmp_hdr *h, size_t *len, uint64_t *gseq)
{
	struct rx *x = rx;
	/* MSG_TRUNC: the packet's real length, so an oversized one is caught. */
	ssize_t n = recv(x->fd, x->buf, x->size, MSG_TRUNC);
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

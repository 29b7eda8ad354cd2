// SPDX-License-Identifier: MIT
/*
 * ZeroMQ PUB/SUB over ipc:// (zmq), and over loopback tcp:// (zmqtcp: the
 * reference for pgroup's links between nodes). High-water marks are 0 (no limit), so PUB
 * never drops: it queues without bound instead of blocking. Each process
 * makes its own context after fork; a context must not cross a fork.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "compare.h"

/* The sender flushes what is queued before it exits, but not forever. */
#define TX_LINGER_MS 30000

struct zsock {
	void *ctx, *sock;
	size_t size;
	unsigned char buf[];
};

/* Set by prepare in the parent, read by children after fork. */
static char endpoint[128];

static const char *ipc_path(void)
{
	return endpoint + strlen("ipc://");
}

static int zmq_err(void)
{
	return -zmq_errno();
}

static void zs_close(struct zsock *z)
{
	if (z->sock)
		zmq_close(z->sock);
	if (z->ctx)
		while (zmq_ctx_term(z->ctx) < 0 && zmq_errno() == EINTR)
			;
	free(z);
}

static int zs_open(int type, size_t size, struct zsock **out)
{
	struct zsock *z = calloc(1, sizeof(*z) + size);
	if (!z)
		return -ENOMEM;
	z->size = size;
	z->ctx = zmq_ctx_new();
	z->sock = z->ctx ? zmq_socket(z->ctx, type) : NULL;
	if (!z->sock) {
		int err = zmq_err();
		zs_close(z);
		return err;
	}
	*out = z;
	return 0;
}

static int set_int(void *sock, int opt, int v)
{
	return zmq_setsockopt(sock, opt, &v, sizeof(v)) < 0 ? zmq_err() : 0;
}

static int zx_prepare(struct cmp_run *r)
{
	snprintf(endpoint, sizeof(endpoint), "ipc:///tmp/pgcompare-%d-%u.ipc", (int)getpid(),
		 r->id);
	return 0;
}

/* Over loopback TCP: the reference for links between nodes. A port the
 * kernel gives now, for the sender to bind after the fork. */
static int zt_prepare(struct cmp_run *r)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    getsockname(fd, (struct sockaddr *)&sa, &len)) {
		int err = -errno;
		if (fd >= 0)
			close(fd);
		return err;
	}
	close(fd);
	snprintf(endpoint, sizeof(endpoint), "tcp://127.0.0.1:%u", ntohs(sa.sin_port));
	return 0;
}

static void zt_cleanup(struct cmp_run *r)
{
}

static void zx_cleanup(struct cmp_run *r)
{
	/* The sender's close normally removes it; not if it was killed. */
	unlink(ipc_path());
}

static int zx_tx_open(struct cmp_run *r, void **tx)
{
	struct zsock *z;
	int err = zs_open(ZMQ_PUB, 0, &z);
	if (err)
		return err;
	if (!(err = set_int(z->sock, ZMQ_SNDHWM, 0)) &&
	    !(err = set_int(z->sock, ZMQ_LINGER, TX_LINGER_MS)) && zmq_bind(z->sock, endpoint) < 0)
		err = zmq_err();
	if (err) {
		zs_close(z);
		return err;
	}
	*tx = z;
	return 0;
}

static int zx_tx_send(void *tx, const void *buf, size_t len)
{
	struct zsock *z = tx;
	while (zmq_send(z->sock, buf, len, 0) < 0)
		if (zmq_errno() != EINTR)
			return zmq_err();
	return 0;
}

static void zx_tx_close(void *tx)
{
	zs_close(tx);
}

static int zx_rx_recv(void *rx, struct cmp_hdr *h, size_t *len, uint64_t *gseq)
{
	struct zsock *z = rx;
	/* Returns the message's full length even when it was cut to fit. */
	int n = zmq_recv(z->sock, z->buf, z->size, 0);
	if (n < 0)
		return zmq_errno() == EAGAIN ? -ETIMEDOUT : zmq_err();
	if ((size_t)n >= sizeof(*h))
		memcpy(h, z->buf, sizeof(*h));
	*len = (size_t)n;
	*gseq = 0;
	return 0;
}

/*
 * A subscription reaches the publisher some time after connect returns
 * (the "slow joiner"): until then PUB drops what it sends. So we are
 * ready only when one of the sender's probes has arrived; messages sent
 * after that one are queued for us.
 */
static int zx_rx_open(struct cmp_run *r, unsigned j, void **rx)
{
	struct zsock *z;
	int err = zs_open(ZMQ_SUB, r->size, &z);
	if (err)
		return err;
	if (!(err = set_int(z->sock, ZMQ_RCVHWM, 0)) && !(err = set_int(z->sock, ZMQ_LINGER, 0)) &&
	    !(err = set_int(z->sock, ZMQ_RCVTIMEO, CMP_IDLE_MS))) {
		if (zmq_setsockopt(z->sock, ZMQ_SUBSCRIBE, "", 0) < 0 ||
		    zmq_connect(z->sock, endpoint) < 0)
			err = zmq_err();
	}
	struct cmp_hdr h = {0};
	size_t len = 0;
	uint64_t gseq;
	while (!err && (err = zx_rx_recv(z, &h, &len, &gseq)) == -EINTR)
		;
	if (!err && (len != r->size || !(h.flags & CMP_WARM)))
		err = -EPROTO;
	if (err) {
		zs_close(z);
		return err;
	}
	*rx = z;
	return 0;
}

static void zx_rx_close(void *rx)
{
	zs_close(rx);
}

const struct xport xport_zmq = {
	.name = "zmq",
	.probe = true,
	.prepare = zx_prepare,
	.cleanup = zx_cleanup,
	.tx_open = zx_tx_open,
	.tx_send = zx_tx_send,
	.tx_close = zx_tx_close,
	.rx_open = zx_rx_open,
	.rx_recv = zx_rx_recv,
	.rx_close = zx_rx_close,
};

const struct xport xport_zmq_tcp = {
	.name = "zmqtcp",
	.probe = true,
	.prepare = zt_prepare,
	.cleanup = zt_cleanup,
	.tx_open = zx_tx_open,
	.tx_send = zx_tx_send,
	.tx_close = zx_tx_close,
	.rx_open = zx_rx_open,
	.rx_recv = zx_rx_recv,
	.rx_close = zx_rx_close,
};

// SPDX-License-Identifier: MIT
/*
 * pgroup: one fresh group per run, created and deleted by the parent;
 * receivers join it, the sender sends to it. Without --socket, pgcompare
 * runs its own pgroupd on a private socket, so it never measures (or
 * disturbs) a daemon someone else is using.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compare.h"
#include "pgroup.h"

#ifndef PGCOMPARE_PGROUPD
#define PGCOMPARE_PGROUPD "pgroupd"
#endif
#define DAEMON_UP_MS 5000

static struct {
	pg_ctx *ctx; /* the parent's: creates and deletes groups */
	const char *socket;
	char own_socket[108];
	pid_t daemon; /* the one we started, or 0 */
	char group[64];
} pgx;

static int pgx_start(const struct cmp_opts *o)
{
	pgx.socket = o->socket;
	if (!pgx.socket) {
		/* $PGROUPD first, as the integration tests do; then the build tree's. */
		const char *bin = getenv("PGROUPD");
		snprintf(pgx.own_socket, sizeof(pgx.own_socket), "/tmp/pgcompare-%d.sock",
			 (int)getpid());
		char *argv[] = {(char *)(bin ? bin : PGCOMPARE_PGROUPD), "--socket",
				pgx.own_socket, "--node", "pgcompare", NULL};
		int pid = cmp_spawn_daemon(argv, o->verbose);
		if (pid < 0) {
			fprintf(stderr, "pgcompare: pgroup: cannot start %s: %s\n", argv[0],
				strerror(-pid));
			return 1;
		}
		pgx.daemon = pid;
		pgx.socket = pgx.own_socket;
	}
	int err = 0;
	/* Ours needs a moment to listen; someone else's answers or not. */
	for (unsigned ms = 0; ms < DAEMON_UP_MS; ms += 5) {
		if (!(err = pg_open(&pgx.ctx, pgx.socket)))
			return 0;
		if (!pgx.daemon || waitpid(pgx.daemon, NULL, WNOHANG) == pgx.daemon) {
			pgx.daemon = 0;
			break;
		}
		cmp_sleep_ms(5);
	}
	fprintf(stderr, "pgcompare: pgroup: no daemon answers on %s: %s\n", pgx.socket,
		pg_strerror(err));
	cmp_stop_daemon(pgx.daemon, 2000);
	pgx.daemon = 0;
	return 1;
}

static void pgx_stop(void)
{
	pg_close(pgx.ctx);
	pgx.ctx = NULL;
	if (pgx.daemon) {
		cmp_stop_daemon(pgx.daemon, 5000);
		pgx.daemon = 0;
		/* In case it died without removing its socket. */
		unlink(pgx.own_socket);
	}
}

static int pgx_prepare(struct cmp_run *r)
{
	snprintf(pgx.group, sizeof(pgx.group), "pgcompare-%d-%u", (int)getpid(), r->id);
	return pg_create(pgx.ctx, pgx.group);
}

static void pgx_cleanup(struct cmp_run *r)
{
	pg_delete(pgx.ctx, pgx.group);
}

static int pgx_tx_open(struct cmp_run *r, void **tx)
{
	pg_ctx *ctx;
	int err = pg_open(&ctx, pgx.socket);
	if (err)
		return err;
	/* A ctx's first send fetches the ring from the daemon; a claim given
	 * back does that without sending anything. */
	void *buf;
	if (!(err = pg_send_claim(ctx, pgx.group, r->size, &buf)))
		err = pg_send_abort(ctx, buf);
	if (err) {
		pg_close(ctx);
		return err;
	}
	*tx = ctx;
	return 0;
}

static int pgx_tx_send(void *tx, const void *buf, size_t len)
{
	return pg_send(tx, pgx.group, buf, len);
}

static void pgx_tx_close(void *tx)
{
	pg_close(tx);
}

/* Joined means every message sent after pg_join returns is ours. */
static int pgx_rx_open(struct cmp_run *r, unsigned j, void **rx)
{
	pg_ctx *ctx;
	int err = pg_open(&ctx, pgx.socket);
	if (!err && (err = pg_join(ctx, pgx.group, 0, NULL, NULL)))
		pg_close(ctx);
	if (!err)
		*rx = ctx;
	return err;
}

static int pgx_rx_recv(void *rx, struct cmp_hdr *h, size_t *len, uint64_t *gseq)
{
	for (;;) {
		pg_message m;
		int err = pg_recv(rx, &m, CMP_IDLE_MS);
		if (err)
			return err;
		if (m.kind == PG_EVICTED || m.kind == PG_GROUP_DOWN) {
			fprintf(stderr, "pgcompare: pgroup: receiver %s\n",
				m.kind == PG_EVICTED ? "evicted for lagging" : "saw its group go down");
			return -ECONNRESET;
		}
		if (m.kind != PG_MSG)
			continue;
		if (m.len >= sizeof(*h))
			memcpy(h, m.data, sizeof(*h));
		*len = m.len;
		*gseq = m.seq;
		return 0;
	}
}

static void pgx_rx_close(void *rx)
{
	pg_close(rx);
}

const struct xport xport_pgroup = {
	.name = "pgroup",
	.start = pgx_start,
	.stop = pgx_stop,
	.prepare = pgx_prepare,
	.cleanup = pgx_cleanup,
	.tx_open = pgx_tx_open,
	.tx_send = pgx_tx_send,
	.tx_close = pgx_tx_close,
	.rx_open = pgx_rx_open,
	.rx_recv = pgx_rx_recv,
	.rx_close = pgx_rx_close,
};

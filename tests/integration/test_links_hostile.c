// SPDX-License-Identifier: MIT
/*
 * An authenticated attacker on a node link. This process holds the cookie
 * and does the real handshake (lib/node's hs_* and seal_*) over a plain
 * blocking TCP socket, then sends what a broken or hostile peer could.
 * Each case uses a fresh connection and a node name of its own (so the
 * daemon's log says which case a line belongs to).
 *
 *  - Malformed input (bad frames, records that do not open, out of turn):
 *    the daemon closes that link at once (not by the link timeout: the
 *    attacker answers every PING meanwhile) and logs why.
 *  - Valid but hostile input: answered as the protocol says, within
 *    bounds, and the link stays.
 *  - A peer that stops reading: the heartbeat timeout or the link's queue
 *    cap ends it, and the daemon's memory stays bounded meanwhile.
 *
 *  - A peer that answers no CLAIM, speaks for another node's group, or
 *    gossips ten thousand made-up nodes: the namespace and the mesh stay
 *    right and bounded.
 *
 * After each case the node is alive, its real peer (a second daemon) is
 * still up on both sides, and it serves clients (pg_open, pg_create).
 * HOSTILE_ONLY=text runs only the cases whose name contains text.
 */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mesh_harness.h"
#include "node/handshake.h"
#include "node/seal.h"
#include "proto/ctl.h"
#include "proto/wire.h"

/* What a link may hold unsent before link_send says -ENOBUFS
 * (LINK_DEFAULT_CAP in lib/node/link.c, private to it). */
#define LINK_CAP (64u << 20)
/* The plaintext a sealed record carries at most here (the daemon batches
 * 256 KiB the same way). */
#define BATCH_BYTES (256u * 1024u)
/* The daemon's records: batches of up to 256 KiB; room for a few. */
#define IN_BYTES (2u << 20)

static const char *cookie;
static uint8_t master[HS_KEY_BYTES];
/* ha is attacked; hb is its real peer. */
static struct daemon_proc ha, hb;
static unsigned ha_port;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static int64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* ---- the attacker: one authenticated link, driven by hand ---- */

struct atk {
	int fd;
	char node[WIRE_NODE_MAX];
	struct seal tx, rx;
	uint8_t *in; /* received, not yet a whole record */
	size_t in_len;
	uint8_t *rec; /* the record being opened */
	uint8_t last[1024]; /* the last small record sent, as sent (replays) */
	size_t last_len;
	bool eof;
	bool garbage;        /* the daemon sent something that does not parse */
	bool answer_pings;   /* PING → PONG, as a peer does */
	bool answer_claims;  /* CLAIM → REPLY 0 */
	unsigned pings;      /* PINGs received */
	unsigned claims;     /* CLAIMs received */
	struct wire_reply *replies; /* REPLYs received, in order */
	size_t n_replies, cap_replies;
	struct wire_group group; /* the last GROUP received */
	unsigned groups, gones;
};

static int dial(unsigned port, int rcvbuf)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Before connect, so the window the daemon sees is small from the start. */
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static int send_all(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Append a frame as given, however wrong (wire_put refuses bad ones). */
static void put_raw(uint8_t *buf, size_t *len, uint16_t type, uint16_t flags, const void *payload,
		    uint32_t plen)
{
	struct wire_hdr h = {.type = type, .flags = flags, .len = plen};
	memcpy(buf + *len, &h, sizeof(h));
	if (plen)
		memcpy(buf + *len + sizeof(h), payload, plen);
	*len += sizeof(h) + plen;
}

/* Seal plain[0..n) into one record with a's sender and send it. */
static int atk_send(struct atk *a, const void *plain, size_t n)
{
	uint8_t *rec = malloc(n + seal_overhead(&a->tx));
	if (!rec)
		return -ENOMEM;
	size_t len = seal_record(&a->tx, rec, plain, n, now_ns());
	if (len <= sizeof(a->last)) {
		memcpy(a->last, rec, len);
		a->last_len = len;
	}
	int err = len ? send_all(a->fd, rec, len) : -EKEYEXPIRED;
	free(rec);
	return err;
}

static int atk_frame(struct atk *a, uint16_t type, const void *payload, uint32_t plen)
{
	uint8_t buf[64 * 1024];
	size_t n = 0;
	int err = wire_put(buf, sizeof(buf), &n, type, payload, plen);
	return err ? err : atk_send(a, buf, n);
}

/* The next whole record from the daemon, opened: 1 and its plaintext;
 * 0 once the daemon closed the connection; -ETIMEDOUT; -EBADMSG when
 * the daemon's record does not open. */
static int atk_record(struct atk *a, int timeout_ms, uint8_t **plain, size_t *n)
{
	int64_t end = mesh_ms() + timeout_ms;
	for (;;) {
		if (a->in_len >= sizeof(struct seal_hdr)) {
			struct seal_hdr h;
			size_t body;
			memcpy(&h, a->in, sizeof(h));
			if (seal_check_hdr(&a->rx, &h, &body) || body > IN_BYTES - sizeof(h))
				return -EBADMSG;
			if (a->in_len - sizeof(h) >= body) {
				memcpy(a->rec, a->in + sizeof(h), body);
				a->in_len -= sizeof(h) + body;
				memmove(a->in, a->in + sizeof(h) + body, a->in_len);
				return seal_open(&a->rx, &h, a->rec, body, plain, n) ? -EBADMSG : 1;
			}
		}
		if (a->eof)
			return 0;
		int left = (int)(end - mesh_ms());
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = a->fd, .events = POLLIN};
		if (poll(&p, 1, left) <= 0)
			continue;
		ssize_t k = read(a->fd, a->in + a->in_len, IN_BYTES - a->in_len);
		if (k > 0)
			a->in_len += (size_t)k;
		else if (k == 0 || errno == ECONNRESET || errno == EPIPE)
			a->eof = true;
	}
}

static void atk_reply(struct atk *a, uint64_t id, int32_t status)
{
	struct wire_reply r = {.id = id, .status = status};
	atk_frame(a, WIRE_REPLY, &r, sizeof(r));
}

/* One opened record's frames: note them, and answer as a peer does. */
static void atk_take(struct atk *a, const uint8_t *plain, size_t n)
{
	size_t off = 0, used;
	struct wire_frame f;
	int k;
	while ((k = wire_next(plain + off, n - off, &f, &used)) == 1) {
		off += used;
		struct wire_ping ping;
		struct wire_claim claim;
		struct wire_reply r;
		struct wire_peer peers[WIRE_PEERS_MAX];
		struct wire_name gone;
		size_t np;
		int bad = 0;
		switch (f.type) {
		case WIRE_PING:
			if (!(bad = wire_ping_parse(&f, &ping))) {
				a->pings++;
				if (a->answer_pings)
					atk_frame(a, WIRE_PONG, &ping, sizeof(ping));
			}
			break;
		case WIRE_CLAIM:
			if ((bad = wire_claim_parse(&f, &claim)))
				break;
			a->claims++;
			if (a->answer_claims)
				atk_reply(a, claim.id, 0);
			break;
		case WIRE_REPLY:
			if ((bad = wire_reply_parse(&f, &r)))
				break;
			if (a->n_replies == a->cap_replies) {
				size_t cap = a->cap_replies ? 2 * a->cap_replies : 64;
				struct wire_reply *p = realloc(a->replies, cap * sizeof(*p));
				if (!p)
					break;
				a->replies = p;
				a->cap_replies = cap;
			}
			a->replies[a->n_replies++] = r;
			break;
		case WIRE_PEERS:
			bad = wire_peers_parse(&f, peers, WIRE_PEERS_MAX, &np);
			break;
		case WIRE_GROUP:
			if (!(bad = wire_group_parse(&f, &a->group))) {
				a->groups++;
				/* A create waits for every node to know: say so. */
				if (a->group.ack && a->answer_claims)
					atk_reply(a, a->group.ack, 0);
			}
			break;
		case WIRE_GONE:
			if (!(bad = wire_name_parse(&f, &gone))) {
				a->gones++;
				if (gone.ack && a->answer_claims)
					atk_reply(a, gone.ack, 0);
			}
			break;
		case WIRE_PONG:
			bad = wire_ping_parse(&f, &ping);
			break;
		default:
			break;
		}
		a->garbage |= bad != 0;
	}
	a->garbage |= k < 0;
}

/* Read and answer for up to ms, or until done(a): 1 while the connection
 * is open, 0 once the daemon closed it. */
static int atk_pump(struct atk *a, int ms, bool (*done)(const struct atk *, const void *),
		    const void *arg)
{
	int64_t end = mesh_ms() + ms;
	while (!done || !done(a, arg)) {
		int left = (int)(end - mesh_ms());
		if (left <= 0)
			break;
		uint8_t *plain;
		size_t n;
		int k = atk_record(a, left < 20 ? left : 20, &plain, &n);
		if (k == 1)
			atk_take(a, plain, n);
		else if (k == 0)
			return 0;
		else if (k != -ETIMEDOUT)
			a->garbage = true;
	}
	return !a->eof;
}

static void atk_close(struct atk *a)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
	free(a->in);
	free(a->rec);
	free(a->replies);
	a->in = a->rec = NULL;
	a->replies = NULL;
}

/* The handshake as the dialler, under the name `node`: 0, or -errno. */
static int atk_connect(struct atk *a, const char *node, int rcvbuf)
{
	memset(a, 0, sizeof(*a));
	a->fd = -1;
	snprintf(a->node, sizeof(a->node), "%s", node);
	a->answer_pings = a->answer_claims = true;
	a->in = malloc(IN_BYTES);
	a->rec = malloc(IN_BYTES);
	seal_init(&a->tx);
	seal_init(&a->rx);
	int fd = a->in && a->rec ? dial(ha_port, rcvbuf) : -ENOMEM;
	if (fd < 0) {
		atk_close(a);
		return fd;
	}
	a->fd = fd;
	struct hs hs;
	struct wire_hello hello;
	int err = hs_start(&hs, master, true, node, true, &hello);
	if (!err)
		err = atk_frame(a, WIRE_HELLO, &hello, sizeof(hello));
	struct hs_keys keys;
	while (!err && hs.state != HS_DONE) {
		uint8_t *plain;
		size_t n, off = 0, used;
		int k = atk_record(a, 3000, &plain, &n);
		if (k != 1) {
			err = k ? k : -ECONNRESET;
			break;
		}
		struct wire_frame f;
		while (!err && off < n && wire_next(plain + off, n - off, &f, &used) == 1) {
			off += used;
			struct wire_hello theirs;
			struct wire_proof proof;
			if (f.type == WIRE_HELLO && !wire_hello_parse(&f, &theirs)) {
				if (!(err = hs_on_hello(&hs, &theirs, &proof)))
					err = atk_frame(a, WIRE_PROOF, &proof, sizeof(proof));
			} else if (f.type == WIRE_PROOF && !wire_proof_parse(&f, &proof)) {
				err = hs_on_proof(&hs, &proof, &keys);
			} else {
				err = -EPROTO;
			}
		}
	}
	hs_clear(&hs);
	if (err) {
		atk_close(a);
		return err;
	}
	int64_t now = now_ns();
	seal_key(&a->tx, keys.tx, keys.encrypt, keys.aes, now);
	seal_key(&a->rx, keys.rx, keys.encrypt, keys.aes, now);
	return 0;
}

/* Answer pings until ha lists a as up (three answered). */
static bool atk_wait_up(struct atk *a)
{
	for (int i = 0; i < 250; i++) {
		if (mesh_state(&ha, a->node) == CTL_NODE_UP)
			return true;
		if (!atk_pump(a, 20, NULL, NULL))
			return false;
	}
	return false;
}

/* Connected and up, or the test stops here. */
#define ATK_UP(a, node)                                                                            \
	do {                                                                                       \
		bool up_ = atk_connect(a, node, 0) == 0 && atk_wait_up(a);                         \
		if (!up_)                                                                          \
			atk_close(a);                                                              \
		CU_ASSERT_FATAL(up_);                                                              \
	} while (0)

static bool reply_with(const struct atk *a, const void *arg)
{
	uint64_t id = *(const uint64_t *)arg;
	for (size_t i = 0; i < a->n_replies; i++)
		if (a->replies[i].id == id)
			return true;
	return false;
}

/* The status of the REPLY with `id`, waiting up to 5 s; 1 if none came. */
static int atk_status(struct atk *a, uint64_t id)
{
	atk_pump(a, 5000, reply_with, &id);
	for (size_t i = 0; i < a->n_replies; i++)
		if (a->replies[i].id == id)
			return a->replies[i].status;
	return 1;
}

/* ---- what the node must still do ---- */

struct client_job {
	char socket[108];
	char group[128];
	bool keep; /* create only */
	int rc;
	atomic_bool done;
};

static void *client_run(void *arg)
{
	struct client_job *j = arg;
	pg_ctx *ctx;
	j->rc = pg_open(&ctx, j->socket);
	if (!j->rc) {
		j->rc = pg_create(ctx, j->group);
		if (!j->rc && !j->keep)
			j->rc = pg_delete(ctx, j->group);
		pg_close(ctx);
	}
	atomic_store_explicit(&j->done, true, memory_order_release); /* pairs with job_done */
	return NULL;
}

static bool job_done(const struct atk *a, const void *arg)
{
	(void)a;
	const struct client_job *j = arg;
	return atomic_load_explicit(&j->done, memory_order_acquire); /* pairs with client_run */
}

/* A client of ha in its own thread: creates `group` and keeps it, or
 * (NULL) creates a fresh one and deletes it. */
static void job_start(struct client_job *j, pthread_t *t, const char *group)
{
	memset(j, 0, sizeof(*j));
	snprintf(j->socket, sizeof(j->socket), "%s", ha.socket);
	snprintf(j->group, sizeof(j->group), "%s", group ? group : fresh_group("survivor"));
	j->keep = group != NULL;
	j->rc = 1;
	atomic_init(&j->done, false);
	CU_ASSERT_FATAL(pthread_create(t, NULL, client_run, j) == 0);
}

/* A client opens ha, creates a group and deletes it: 0 or the first error.
 * Meanwhile a (if not NULL) is read and answered: a peer that is up is
 * asked to agree to the create. */
static int client_check(struct atk *a)
{
	struct client_job j;
	pthread_t t;
	job_start(&j, &t, NULL);
	if (a && a->fd >= 0)
		atk_pump(a, 15000, job_done, &j);
	pthread_join(t, NULL);
	return j.rc;
}

/* ha's log, held open from its start: other test programs on this host
 * may clean up /tmp while this one runs. */
static int ha_log = -1;

/* How many lines of ha's log have both texts. */
static unsigned log_count(const char *t1, const char *t2)
{
	int fd = dup(ha_log);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	char line[1024];
	unsigned n = 0;
	if (!f) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	rewind(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, t1) && strstr(line, t2);
	fclose(f);
	return n;
}

/* The last lines of ha's log, to stdout. */
static void log_tail(unsigned lines)
{
	unsigned total = log_count("", ""), n = 0;
	int fd = dup(ha_log);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	char line[1024];
	if (!f) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewind(f);
	while (fgets(line, sizeof(line), f))
		if (n++ + lines >= total)
			fputs(line, stdout);
	fclose(f);
}

/* Whether a line of ha's log has both texts; waits up to wait_ms for it. */
static bool logged2(const char *t1, const char *t2, int wait_ms)
{
	for (int i = 0; i <= wait_ms / 20; i++) {
		if (log_count(t1, t2))
			return true;
		if (i < wait_ms / 20)
			usleep(20000);
	}
	return false;
}

/* ha logged that the link of `node` was lost for `why` (strerror),
 * waiting up to wait_ms for it. */
static bool lost_logged(const char *node, const char *why, int wait_ms)
{
	char who[128], what[128];
	snprintf(who, sizeof(who), "node link: %s (", node);
	snprintf(what, sizeof(what), "lost: %s", why);
	return logged2(who, what, wait_ms);
}

static bool silent_logged(const char *node)
{
	char who[128];
	snprintf(who, sizeof(who), "node link: %s silent", node);
	return log_count(who, "");
}

/* Whether ha still runs; when it does not, say how it ended (once). */
static bool ha_alive(void)
{
	int st;
	if (ha.pid <= 0)
		return false;
	if (waitpid(ha.pid, &st, WNOHANG) == 0)
		return true;
	if (WIFSIGNALED(st))
		printf("\n[ha killed by signal %d; its log ends:]\n", WTERMSIG(st));
	else
		printf("\n[ha exited %d; its log ends:]\n", WEXITSTATUS(st));
	log_tail(40);
	ha.pid = 0;
	return false;
}

/* ha is alive, its real peer is up both ways, and it serves clients. */
static void node_ok(struct atk *a)
{
	CU_ASSERT_FATAL(ha_alive());
	CU_ASSERT_EQUAL(mesh_state(&ha, "hb"), CTL_NODE_UP);
	CU_ASSERT_EQUAL(mesh_state(&hb, "ha"), CTL_NODE_UP);
	CU_ASSERT_EQUAL(client_check(a), 0);
}

/* The daemon closed a's connection within 3 s for `why`, while a went on
 * answering pings (so not for silence); then the node is fine. */
static void expect_closed(struct atk *a, const char *why)
{
	CU_ASSERT(atk_pump(a, 3000, NULL, NULL) == 0);
	CU_ASSERT(lost_logged(a->node, why, 2000));
	CU_ASSERT(!silent_logged(a->node));
	CU_ASSERT(!a->garbage);
	atk_close(a);
	node_ok(NULL);
}

/* The link stays: up through more than a link timeout of pings. */
static void expect_open(struct atk *a)
{
	CU_ASSERT(atk_pump(a, 1500, NULL, NULL) == 1);
	CU_ASSERT_EQUAL(mesh_state(&ha, a->node), CTL_NODE_UP);
	CU_ASSERT(!lost_logged(a->node, "", 0));
	CU_ASSERT(!a->garbage);
	node_ok(a);
}

/* One record of these frames, after the handshake: the link must close. */
static void bad_record(const char *node, const uint8_t *plain, size_t n, const char *why)
{
	struct atk a;
	ATK_UP(&a, node);
	CU_ASSERT(atk_send(&a, plain, n) == 0);
	expect_closed(&a, why);
}

static void bad_frame(const char *node, uint16_t type, uint16_t flags, const void *payload,
		      uint32_t plen, const char *why)
{
	static uint8_t buf[64 * 1024];
	size_t n = 0;
	put_raw(buf, &n, type, flags, payload, plen);
	bad_record(node, buf, n, why);
}

/* ---- malformed after the handshake ---- */

static void test_unknown_type(void)
{
	struct wire_ping p = {1, 1};
	bad_frame("x-type13", WIRE_TYPE_MAX + 1, 0, &p, sizeof(p), "Bad message");
	bad_frame("x-type0", 0, 0, NULL, 0, "Bad message");
	bad_frame("x-typeffff", 0xffff, 0, &p, sizeof(p), "Bad message");
}

static void test_flags(void)
{
	struct wire_ping p = {1, 1};
	bad_frame("x-flags", WIRE_PING, 1, &p, sizeof(p), "Bad message");
	bad_frame("x-flags-pong", WIRE_PONG, 0x8000, &p, sizeof(p), "Bad message");
}

static void test_ping_size(void)
{
	uint8_t p[17] = {0};
	bad_frame("x-ping15", WIRE_PING, 0, p, 15, "Bad message");
	bad_frame("x-ping17", WIRE_PING, 0, p, 17, "Bad message");
	bad_frame("x-pong0", WIRE_PONG, 0, NULL, 0, "Bad message");
}

static void test_peers_size(void)
{
	static struct wire_peer list[WIRE_PEERS_MAX + 1];
	memset(list, 0, sizeof(list));
	for (unsigned i = 0; i <= WIRE_PEERS_MAX; i++)
		snprintf(list[i].node, sizeof(list[i].node), "peer%u", i);
	bad_frame("x-peers129", WIRE_PEERS, 0, list, sizeof(list[0]) + 1, "Bad message");
	bad_frame("x-peers257", WIRE_PEERS, 0, list, sizeof(list), "Bad message");
}

static void test_hello_again(void)
{
	struct wire_hello h = {.magic = WIRE_MAGIC, .version = WIRE_VERSION,
			       .flags = WIRE_HELLO_ENCRYPT};
	snprintf(h.node, sizeof(h.node), "x-hello2");
	bad_frame("x-hello2", WIRE_HELLO, 0, &h, sizeof(h), "Protocol error");
	struct wire_proof p;
	memset(&p, 0x11, sizeof(p));
	bad_frame("x-proof2", WIRE_PROOF, 0, &p, sizeof(p), "Protocol error");
}

static void group_of(struct wire_group *g, const char *master_node, const char *name)
{
	memset(g, 0, sizeof(*g));
	g->created_ns = realtime_ns();
	g->ring_bytes = 1 << 20;
	g->max_msg = 64 << 10;
	g->stall_ms = 1000;
	g->mode = 0600;
	snprintf(g->master, sizeof(g->master), "%s", master_node);
	snprintf(g->name, sizeof(g->name), "%s", name);
}

/* A node speaks only for its own groups; and a bad name is no name. */
static void test_group_not_sender(void)
{
	struct wire_group g;
	char name[64];
	snprintf(name, sizeof(name), "%s", fresh_group("hijack"));
	group_of(&g, "hb", name);
	bad_frame("x-group-hb", WIRE_GROUP, 0, &g, sizeof(g), "Bad message");
	/* Nothing of it was taken: the name is free on ha. */
	pg_ctx *ctx;
	CU_ASSERT_FATAL(pg_open(&ctx, ha.socket) == 0);
	CU_ASSERT_EQUAL(pg_create(ctx, name), 0);
	CU_ASSERT_EQUAL(pg_delete(ctx, name), 0);
	pg_close(ctx);
}

static void test_group_bad_name(void)
{
	struct wire_group g;
	group_of(&g, "x-group-slash", "bad/name");
	bad_frame("x-group-slash", WIRE_GROUP, 0, &g, sizeof(g), "Bad message");
	group_of(&g, "x-group-empty", "");
	bad_frame("x-group-empty", WIRE_GROUP, 0, &g, sizeof(g), "Bad message");
	/* Bytes hidden after the NUL. */
	group_of(&g, "x-group-hidden", "visible");
	g.name[200] = 'x';
	bad_frame("x-group-hidden", WIRE_GROUP, 0, &g, sizeof(g), "Bad message");
	group_of(&g, "x-group-rsvd", "reserved");
	g.reserved = 1;
	bad_frame("x-group-rsvd", WIRE_GROUP, 0, &g, sizeof(g), "Bad message");
	group_of(&g, "x-group-size", "short");
	bad_frame("x-group-size", WIRE_GROUP, 0, &g, sizeof(g) - 1, "Bad message");
}

static void test_reply_status(void)
{
	struct wire_reply r = {.id = 1, .status = 5};
	bad_frame("x-reply5", WIRE_REPLY, 0, &r, sizeof(r), "Bad message");
	r.status = -4096;
	bad_frame("x-reply4096", WIRE_REPLY, 0, &r, sizeof(r), "Bad message");
	r = (struct wire_reply){.id = 1, .status = 0, .pad = 1};
	bad_frame("x-replypad", WIRE_REPLY, 0, &r, sizeof(r), "Bad message");
}

static void test_truncated_frame(void)
{
	uint8_t buf[256];
	size_t n = 0;
	struct wire_ping p = {1, 1};
	put_raw(buf, &n, WIRE_PING, 0, &p, sizeof(p));
	/* A PING header saying 16 bytes, and 4 of them. */
	put_raw(buf, &n, WIRE_PING, 0, &p, sizeof(p));
	bad_record("x-trunc-payload", buf, n - 12, "Bad message");
	/* A frame header cut short. */
	bad_record("x-trunc-hdr", buf, sizeof(struct wire_hdr) + sizeof(p) + 5, "Bad message");
	/* A frame announcing more than any frame may be. */
	n = 0;
	put_raw(buf, &n, WIRE_PING, 0, &p, sizeof(p));
	struct wire_hdr *h = (struct wire_hdr *)buf;
	h->len = WIRE_FRAME_MAX + 1;
	bad_record("x-frame-huge", buf, n, "Message too long");
}

/* ---- records that must not open ---- */

static void ping_record(struct atk *a, uint8_t *out, size_t *len)
{
	uint8_t plain[64];
	size_t n = 0;
	struct wire_ping p = {1, 1};
	wire_put(plain, sizeof(plain), &n, WIRE_PING, &p, sizeof(p));
	*len = seal_record(&a->tx, out, plain, n, now_ns());
}

static void test_flipped_tag(void)
{
	struct atk a;
	ATK_UP(&a, "x-tag");
	uint8_t rec[128];
	size_t len;
	ping_record(&a, rec, &len);
	rec[len - 1] ^= 0x01;
	CU_ASSERT(send_all(a.fd, rec, len) == 0);
	expect_closed(&a, "Bad message");
	/* A flipped bit in the ciphertext, not the tag. */
	ATK_UP(&a, "x-cipher");
	ping_record(&a, rec, &len);
	rec[sizeof(struct seal_hdr)] ^= 0x80;
	CU_ASSERT(send_all(a.fd, rec, len) == 0);
	expect_closed(&a, "Bad message");
	/* And the header, which is authenticated too: one more byte claimed
	 * and sent. */
	ATK_UP(&a, "x-hdr-len");
	ping_record(&a, rec, &len);
	struct seal_hdr h;
	memcpy(&h, rec, sizeof(h));
	h.len++;
	memcpy(rec, &h, sizeof(h));
	rec[len] = 0;
	CU_ASSERT(send_all(a.fd, rec, len + 1) == 0);
	expect_closed(&a, "Bad message");
}

static void test_replay(void)
{
	struct atk a;
	ATK_UP(&a, "x-replay");
	struct wire_ping p = {7, 7};
	CU_ASSERT_FATAL(atk_frame(&a, WIRE_PONG, &p, sizeof(p)) == 0);
	uint8_t old[sizeof(a.last)];
	size_t len = a.last_len;
	memcpy(old, a.last, len);
	/* It went through once: the link is up. */
	CU_ASSERT(atk_pump(&a, 200, NULL, NULL) == 1);
	CU_ASSERT(send_all(a.fd, old, len) == 0);
	expect_closed(&a, "Bad message");
}

static void test_epoch(void)
{
	struct atk a;
	uint8_t rec[128];
	size_t len;
	struct seal_hdr h;
	/* Two epochs ahead: the keys are a chain, that one cannot be followed. */
	ATK_UP(&a, "x-epoch2");
	ping_record(&a, rec, &len);
	memcpy(&h, rec, sizeof(h));
	h.epoch += 2;
	memcpy(rec, &h, sizeof(h));
	CU_ASSERT(send_all(a.fd, rec, len) == 0);
	expect_closed(&a, "Bad message");
	/* The next epoch, but not sealed with its key: a forged rekey. */
	ATK_UP(&a, "x-epoch1");
	ping_record(&a, rec, &len);
	memcpy(&h, rec, sizeof(h));
	h.epoch += 1;
	memcpy(rec, &h, sizeof(h));
	CU_ASSERT(send_all(a.fd, rec, len) == 0);
	expect_closed(&a, "Bad message");
	/* A plaintext record after the handshake: a downgrade. */
	ATK_UP(&a, "x-epoch0");
	uint8_t plain[64];
	size_t n = 0;
	struct wire_ping p = {1, 1};
	wire_put(plain, sizeof(plain), &n, WIRE_PING, &p, sizeof(p));
	h = (struct seal_hdr){.len = (uint32_t)n, .epoch = 0};
	memcpy(rec, &h, sizeof(h));
	memcpy(rec + sizeof(h), plain, n);
	CU_ASSERT(send_all(a.fd, rec, sizeof(h) + n) == 0);
	expect_closed(&a, "Bad message");
	/* Shorter than a tag. */
	ATK_UP(&a, "x-short");
	h = (struct seal_hdr){.len = SEAL_TAG_BYTES - 1, .epoch = 1};
	memcpy(rec, &h, sizeof(h));
	memset(rec + sizeof(h), 0, SEAL_TAG_BYTES);
	CU_ASSERT(send_all(a.fd, rec, sizeof(h) + SEAL_TAG_BYTES - 1) == 0);
	expect_closed(&a, "Bad message");
}

/* A real rekey (the next epoch, its key) is followed: the link stays. */
static void test_rekey(void)
{
	struct atk a;
	ATK_UP(&a, "v-rekey");
	a.tx.rekey_records = a.tx.counter; /* the next record steps the key */
	struct wire_ping p = {1, 1};
	CU_ASSERT(atk_frame(&a, WIRE_PING, &p, sizeof(p)) == 0);
	CU_ASSERT_EQUAL(a.tx.epoch, 2);
	a.tx.rekey_records = SEAL_REKEY_RECORDS;
	expect_open(&a);
	atk_close(&a);
}

static void test_huge_header(void)
{
	struct atk a;
	ATK_UP(&a, "x-huge");
	struct seal_hdr h = {.len = 0xffffff00u, .epoch = 1};
	CU_ASSERT(send_all(a.fd, &h, sizeof(h)) == 0);
	expect_closed(&a, "Message too long");
}

/* ---- valid, but hostile ---- */

/* 10,000 CLAIMs for distinct names: a REPLY to each, and clients served. */
static void test_claim_flood(void)
{
	enum { N = 10000 };
	const uint64_t base = 1000000;
	struct atk a;
	ATK_UP(&a, "v-claims");
	static uint8_t plain[BATCH_BYTES];
	size_t n = 0;
	for (unsigned i = 0; i < N; i++) {
		struct wire_claim c = {.id = base + i};
		snprintf(c.name, sizeof(c.name), "flood-%d-%u", (int)getpid(), i);
		if (n + sizeof(struct wire_hdr) + sizeof(c) > sizeof(plain)) {
			CU_ASSERT_FATAL(atk_send(&a, plain, n) == 0);
			n = 0;
		}
		wire_put(plain, sizeof(plain), &n, WIRE_CLAIM, &c, sizeof(c));
	}
	CU_ASSERT_FATAL(atk_send(&a, plain, n) == 0);
	uint64_t last = base + N - 1;
	atk_pump(&a, 30000, reply_with, &last);
	static uint8_t seen[N];
	memset(seen, 0, sizeof(seen));
	unsigned got = 0, granted = 0, twice = 0;
	for (size_t i = 0; i < a.n_replies; i++) {
		uint64_t id = a.replies[i].id;
		if (id < base || id >= base + N)
			continue;
		twice += seen[id - base]++ != 0;
		got++;
		granted += a.replies[i].status == 0;
	}
	printf("[%u replies, %u granted] ", got, granted);
	CU_ASSERT_EQUAL(got, N);
	CU_ASSERT_EQUAL(granted, N);
	CU_ASSERT_EQUAL(twice, 0);
	expect_open(&a);
	atk_close(&a);
}

/* CREATEs the master must refuse: a status, no group, no crash. */
static void test_create_huge(void)
{
	struct atk a;
	ATK_UP(&a, "v-create");
	static const struct {
		uint64_t ring, max_msg;
		int status;
	} cases[] = {
		{2ull << 30, 0, -EINVAL},         /* 2 GiB: over RING_MAX_BYTES */
		{1ull << 63, 0, -EINVAL},
		{(1u << 20) + 4096, 0, -EINVAL},  /* not a power of two */
		{0, UINT64_MAX, -EINVAL},         /* no ring holds that message */
		{0, 1ull << 32, -EINVAL},
		{1u << 20, 1u << 20, -EINVAL},    /* a message as large as the ring */
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[128];
		snprintf(name, sizeof(name), "%s", fresh_group("huge"));
		struct wire_create c = {.id = 500 + i,
					.ring_bytes = cases[i].ring,
					.max_msg = cases[i].max_msg,
					.uid = 1000,
					.gid = 1000};
		snprintf(c.name, sizeof(c.name), "%s", name);
		CU_ASSERT(atk_frame(&a, WIRE_CREATE, &c, sizeof(c)) == 0);
		int st = atk_status(&a, c.id);
		if (st != cases[i].status)
			printf("[ring %llu max %llu: %d] ", (unsigned long long)cases[i].ring,
			       (unsigned long long)cases[i].max_msg, st);
		CU_ASSERT_EQUAL(st, cases[i].status);
		/* No such group came to be: ha grants a claim of the name. */
		struct wire_claim cl = {.id = 550 + i};
		snprintf(cl.name, sizeof(cl.name), "%s", name);
		CU_ASSERT(atk_frame(&a, WIRE_CLAIM, &cl, sizeof(cl)) == 0);
		CU_ASSERT_EQUAL(atk_status(&a, cl.id), 0);
	}
	expect_open(&a);
	atk_close(&a);
}

static bool group_seen(const struct atk *a, const void *arg)
{
	return a->groups && !strcmp(a->group.name, arg);
}

static bool gone_seen(const struct atk *a, const void *arg)
{
	(void)arg;
	return a->gones > 0;
}

/*
 * DELETE of a group ha masters, for a uid that does not own it: -EACCES.
 * For uid 0: done. The uid is whatever the peer says, so a cookie holder
 * is root on every node's groups.
 */
static void test_delete(void)
{
	char name[128];
	snprintf(name, sizeof(name), "%s", fresh_group("owned"));
	pg_ctx *ctx;
	CU_ASSERT_FATAL(pg_open(&ctx, ha.socket) == 0);
	CU_ASSERT_FATAL(pg_create(ctx, name) == 0);
	struct atk a;
	ATK_UP(&a, "v-delete");
	/* Its GROUP comes when the link comes up: owned by us (root), master ha. */
	atk_pump(&a, 2000, group_seen, name);
	CU_ASSERT_STRING_EQUAL(a.group.name, name);
	CU_ASSERT_STRING_EQUAL(a.group.master, "ha");
	CU_ASSERT_EQUAL(a.group.uid, 0);
	struct wire_delete d = {.id = 601, .uid = 1000, .gid = 1000};
	snprintf(d.name, sizeof(d.name), "%s", name);
	CU_ASSERT(atk_frame(&a, WIRE_DELETE, &d, sizeof(d)) == 0);
	CU_ASSERT_EQUAL(atk_status(&a, d.id), -EACCES);
	d.id = 602;
	snprintf(d.name, sizeof(d.name), "%s", fresh_group("nosuch"));
	CU_ASSERT(atk_frame(&a, WIRE_DELETE, &d, sizeof(d)) == 0);
	CU_ASSERT_EQUAL(atk_status(&a, d.id), -ENOENT);
	d = (struct wire_delete){.id = 603, .uid = 0, .gid = 0};
	snprintf(d.name, sizeof(d.name), "%s", name);
	CU_ASSERT(atk_frame(&a, WIRE_DELETE, &d, sizeof(d)) == 0);
	CU_ASSERT_EQUAL(atk_status(&a, d.id), 0);
	atk_pump(&a, 2000, gone_seen, NULL);
	CU_ASSERT_EQUAL(a.gones, 1);
	CU_ASSERT(logged2(name, "deleted for uid 0 of node v-delete", 2000));
	/* It is gone for ha's own clients too. */
	CU_ASSERT_EQUAL(pg_delete(ctx, name), -ENOENT);
	pg_close(ctx);
	expect_open(&a);
	atk_close(&a);
}

/* REPLYs to nothing anyone asked: ignored, the link stays. */
static void test_stray_replies(void)
{
	struct atk a;
	ATK_UP(&a, "v-stray");
	static uint8_t plain[64 * 1024];
	size_t n = 0;
	static const int32_t statuses[] = {0, -EEXIST, -4095, -1};
	for (unsigned i = 0; i < 2000; i++) {
		/* Small ids too: ha's own requests count from 1. */
		struct wire_reply r = {.id = i < 1000 ? i : 0xdead0000ull + i,
				       .status = statuses[i % 4]};
		wire_put(plain, sizeof(plain), &n, WIRE_REPLY, &r, sizeof(r));
	}
	CU_ASSERT(atk_send(&a, plain, n) == 0);
	expect_open(&a);
	atk_close(&a);
}

/* ---- peers that stop reading ---- */

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long kib = -1;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kib = atol(line + 6);
	if (f)
		fclose(f);
	return kib;
}

/* Authenticated, then nothing: neither reads nor writes. The heartbeat
 * timeout (--link-timeout 1000) ends it; clients are served meanwhile. */
static void test_silent_peer(void)
{
	struct atk a;
	CU_ASSERT_FATAL(atk_connect(&a, "s-silent", 4096) == 0);
	CU_ASSERT_EQUAL(client_check(NULL), 0);
	CU_ASSERT(mesh_wait(&ha, "s-silent", CTL_NODE_DOWN, 5000) >= 0);
	CU_ASSERT(silent_logged("s-silent"));
	CU_ASSERT(lost_logged("s-silent", "Connection timed out", 2000));
	/* Its socket was closed too: what it sent is here, then the end. */
	CU_ASSERT(atk_pump(&a, 3000, NULL, NULL) == 0);
	CU_ASSERT(a.pings > 0);
	atk_close(&a);
	node_ok(NULL);
}

/* A peer that writes and never reads, and what it sees of ha meanwhile. */
struct flood {
	struct atk a;
	bool claims, claiming; /* CLAIMs instead of PINGs: asked, and begun */
	uint64_t id, first_claim;
	uint8_t *rec; /* the record being sent */
	size_t len, off;
	uint64_t sent, queued, queued_max;
	long rss_base, rss_peak; /* KiB */
	bool closed;
};

/* Seal the next record of PINGs (or CLAIMs) now: nonces go in order. */
static void flood_record(struct flood *fl)
{
	static uint8_t plain[BATCH_BYTES];
	const size_t most = sizeof(struct wire_hdr) + sizeof(struct wire_claim);
	size_t n = 0;
	while (n + most <= sizeof(plain)) {
		fl->id++;
		if (fl->claiming) {
			struct wire_claim c = {.id = fl->id};
			snprintf(c.name, sizeof(c.name), "nr-%s-%llu", fl->a.node,
				 (unsigned long long)fl->id);
			wire_put(plain, sizeof(plain), &n, WIRE_CLAIM, &c, sizeof(c));
		} else {
			struct wire_ping p = {.id = fl->id, .sent_ns = now_ns()};
			wire_put(plain, sizeof(plain), &n, WIRE_PING, &p, sizeof(p));
		}
	}
	fl->len = seal_record(&fl->a.tx, fl->rec, plain, n, now_ns());
	fl->off = 0;
}

/* Send what the window takes, waiting up to 100 ms for room. */
static void flood_send(struct flood *fl)
{
	if (fl->off == fl->len)
		flood_record(fl);
	struct pollfd p = {.fd = fl->a.fd, .events = POLLOUT};
	if (poll(&p, 1, 100) != 1)
		return;
	ssize_t k = send(fl->a.fd, fl->rec + fl->off, fl->len - fl->off, MSG_NOSIGNAL);
	if (k > 0) {
		fl->off += (size_t)k;
		fl->sent += (uint64_t)k;
	} else if (k < 0 && errno != EAGAIN && errno != EINTR) {
		fl->closed = true;
	}
	fl->closed |= (p.revents & (POLLERR | POLLHUP)) != 0;
}

/* ha's memory, and what it holds for this link (`pgroup nodes`). */
static void flood_look(struct flood *fl)
{
	long rss = rss_kib(ha.pid);
	fl->rss_peak = rss > fl->rss_peak ? rss : fl->rss_peak;
	struct ctl_node_info info;
	if (mesh_info(&ha, fl->a.node, &info) == 0) {
		fl->queued = info.queued;
		fl->queued_max = fl->queued > fl->queued_max ? fl->queued : fl->queued_max;
		fl->closed |= info.state < CTL_NODE_PROBATION;
	}
}

/* The bytes of REPLY ha owes for the CLAIMs sent. */
static uint64_t flood_owed(const struct flood *fl)
{
	uint64_t n = fl->claiming ? fl->id - fl->first_claim + 1 : 0;
	return n * (sizeof(struct wire_hdr) + sizeof(struct wire_reply));
}

/*
 * Writes without reading: PING after PING, each answered with a PONG the
 * daemon cannot send (this socket's window is full). Life is any frame,
 * so it is never silent; what ends it must be the link's queue cap:
 * link_send -ENOBUFS on a PONG closes the link. The daemon's memory stays
 * within the cap meanwhile and it serves clients. With `claims`, CLAIMs
 * take the place of PINGs once the queue is three quarters full: their
 * REPLYs meet the same full queue, and must end the link the same way.
 */
static void writer_not_reader(const char *node, bool claims)
{
	static uint8_t rec[BATCH_BYTES + 64];
	struct flood fl = {.claims = claims, .rec = rec};
	CU_ASSERT_FATAL(atk_connect(&fl.a, node, 4096) == 0);
	fcntl(fl.a.fd, F_SETFL, fcntl(fl.a.fd, F_GETFL) | O_NONBLOCK);
	fl.rss_base = fl.rss_peak = rss_kib(ha.pid);
	struct client_job job;
	pthread_t t;
	bool client_started = false;
	int64_t end = mesh_ms() + 60000, next_look = 0;
	while (!fl.closed && mesh_ms() < end) {
		flood_send(&fl);
		if (mesh_ms() < next_look)
			continue;
		next_look = mesh_ms() + 10;
		flood_look(&fl);
		/* Half full: clients must still be served. */
		if (!client_started && fl.queued > LINK_CAP / 2) {
			job_start(&job, &t, NULL);
			client_started = true;
		}
		if (claims && !fl.claiming && fl.queued > LINK_CAP / 4 * 3) {
			fl.claiming = true;
			fl.first_claim = fl.id + 1;
		}
		/* REPLYs owed beyond any cap: one more second to read them. */
		if (flood_owed(&fl) > 2 * LINK_CAP && end > mesh_ms() + 1000)
			end = mesh_ms() + 1000;
	}
	if (client_started) {
		pthread_join(t, NULL);
		CU_ASSERT_EQUAL(job.rc, 0);
	}
	CU_ASSERT(client_started);
	printf("[sent %llu MiB, %llu CLAIMs, queued at most %llu MiB, rss %ld -> %ld MiB%s] ",
	       (unsigned long long)(fl.sent >> 20),
	       (unsigned long long)(fl.claiming ? fl.id - fl.first_claim + 1 : 0),
	       (unsigned long long)(fl.queued_max >> 20), fl.rss_base >> 10, fl.rss_peak >> 10,
	       fl.closed ? "" : ", still open");
	CU_ASSERT(fl.claiming == claims);
	CU_ASSERT(fl.queued_max <= LINK_CAP);
	/* Bounded: the cap, plus the sealed copy and the allocator's slack
	 * (a sanitizer's quarantine holds freed blocks a while). */
	CU_ASSERT(fl.rss_peak - fl.rss_base < 4 * (long)(LINK_CAP >> 10));
	CU_ASSERT(fl.closed);
	CU_ASSERT(lost_logged(node, "No buffer space available", 2000));
	CU_ASSERT(mesh_state(&ha, node) < CTL_NODE_PROBATION);
	atk_close(&fl.a);
	node_ok(NULL);
}

static void test_writer_not_reader(void)
{
	writer_not_reader("s-pings", false);
}

static void test_claims_not_read(void)
{
	writer_not_reader("s-claims", true);
}

/* ---- a peer that answers nothing, or speaks for others ---- */

/*
 * Up (it answers PINGs) but never answers a CLAIM. A create on ha waits
 * for every peer up, with no time limit: the client must get an answer
 * within its RPC timeout all the same, and no group may appear later
 * behind the back of a client that was told it failed.
 */
static void test_claim_unanswered(void)
{
	struct atk a;
	ATK_UP(&a, "v-mute");
	a.answer_claims = false;
	char name[128];
	snprintf(name, sizeof(name), "%s", fresh_group("mute"));
	struct client_job j;
	pthread_t t;
	job_start(&j, &t, name);
	atk_pump(&a, 15000, job_done, &j);
	pthread_join(t, NULL);
	printf("[create: %d, %u CLAIMs unanswered] ", j.rc, a.claims);
	/* An answer from the daemon, not the library's RPC timeout. */
	CU_ASSERT_NOT_EQUAL(j.rc, -ETIMEDOUT);
	CU_ASSERT(a.claims >= 1);
	/* The peer goes: the claim it held up is settled then. */
	atk_close(&a);
	CU_ASSERT(mesh_wait(&ha, "v-mute", CTL_NODE_DOWN, 5000) >= 0);
	pg_ctx *ctx;
	CU_ASSERT_FATAL(pg_open(&ctx, ha.socket) == 0);
	int del = pg_delete(ctx, name);
	/* Exists exactly when the client was told it was created. */
	CU_ASSERT_EQUAL(del, j.rc == 0 ? 0 : -ENOENT);
	if (j.rc && !del)
		printf("[created after its client got %d] ", j.rc);
	pg_close(ctx);
	node_ok(NULL);
}

static bool status_of(struct atk *a, uint16_t type, const void *payload, uint32_t len,
		      uint64_t id, int *st)
{
	if (atk_frame(a, type, payload, len))
		return false;
	*st = atk_status(a, id);
	return true;
}

/*
 * A GROUP naming a group of hb's as the sender's own, with an older
 * creation time. ha may believe it while the sender is up (that is the
 * partition rule); once the sender is gone, hb's group must still be
 * known to ha (listed, deleted through it).
 */
static void test_group_usurp(void)
{
	char name[128];
	snprintf(name, sizeof(name), "%s", fresh_group("usurp"));
	pg_ctx *b, *ctx;
	CU_ASSERT_FATAL(pg_open(&b, hb.socket) == 0);
	CU_ASSERT_FATAL(pg_create(b, name) == 0);
	struct atk a;
	ATK_UP(&a, "v-usurp");
	/* ha knows hb's group (its GROUP may take a moment). */
	struct wire_claim c = {.id = 700};
	snprintf(c.name, sizeof(c.name), "%s", name);
	int st = 0;
	for (int i = 0; i < 50 && st != -EEXIST; i++, c.id++)
		CU_ASSERT_FATAL(status_of(&a, WIRE_CLAIM, &c, sizeof(c), c.id, &st));
	CU_ASSERT_EQUAL_FATAL(st, -EEXIST);
	struct wire_group g;
	group_of(&g, "v-usurp", name);
	g.created_ns = 1;
	CU_ASSERT(atk_frame(&a, WIRE_GROUP, &g, sizeof(g)) == 0);
	CU_ASSERT(status_of(&a, WIRE_CLAIM, &c, sizeof(c), c.id, &st));
	CU_ASSERT_EQUAL(st, -EEXIST);
	atk_close(&a);
	CU_ASSERT(mesh_wait(&ha, "v-usurp", CTL_NODE_DOWN, 5000) >= 0);
	/* hb's group, deleted through ha: routed to its master. */
	CU_ASSERT_FATAL(pg_open(&ctx, ha.socket) == 0);
	int del = pg_delete(ctx, name);
	printf("[delete through ha: %d] ", del);
	CU_ASSERT_EQUAL(del, 0);
	pg_close(ctx);
	if (del)
		CU_ASSERT_EQUAL(pg_delete(b, name), 0);
	pg_close(b);
	node_ok(NULL);
}

/*
 * PEERS naming 10,240 nodes nobody heard of, each at its own address
 * (closed ports on loopback). ha must not take every name a peer tells
 * it (its table, its dialling and the fds that takes), and must go on
 * listing its real peer and serving clients. Last: ha keeps what it took.
 */
static void test_peers_flood(void)
{
	enum { FRAMES = 40 };
	struct atk a;
	ATK_UP(&a, "v-gossip");
	int fds = count_fds(ha.pid), fds_peak = fds;
	static struct wire_peer list[WIRE_PEERS_MAX];
	for (unsigned f = 0; f < FRAMES; f++) {
		memset(list, 0, sizeof(list));
		for (unsigned i = 0; i < WIRE_PEERS_MAX; i++) {
			unsigned k = f * WIRE_PEERS_MAX + i;
			snprintf(list[i].node, sizeof(list[i].node), "fake-%u", k);
			snprintf(list[i].addr, sizeof(list[i].addr), "127.1.%u.%u:9", k / 250,
				 k % 250 + 1);
		}
		CU_ASSERT_FATAL(atk_frame(&a, WIRE_PEERS, list, sizeof(list)) == 0);
	}
	for (int i = 0; i < 30; i++) {
		atk_pump(&a, 100, NULL, NULL);
		int n = count_fds(ha.pid);
		fds_peak = n > fds_peak ? n : fds_peak;
	}
	unsigned learned = log_count("learned of fake-", "from v-gossip");
	printf("[learned %u, fds %d -> %d] ", learned, fds, fds_peak);
	CU_ASSERT(learned < FRAMES * WIRE_PEERS_MAX);
	CU_ASSERT(fds_peak - fds < 1000);
	/* Neither the gossiping link nor the real one went silent. */
	CU_ASSERT(atk_pump(&a, 100, NULL, NULL) == 1);
	CU_ASSERT(!silent_logged("hb"));
	atk_close(&a);
	CU_ASSERT_FATAL(ha_alive());
	CU_ASSERT_EQUAL(client_check(NULL), 0);
	/* The real peer is up, and ha lists it (`pgroup nodes`). */
	CU_ASSERT(mesh_wait(&hb, "ha", CTL_NODE_UP, 5000) >= 0);
	CU_ASSERT_EQUAL(mesh_state(&ha, "hb"), CTL_NODE_UP);
}

/* ---- the suite ---- */

static int suite_up(void)
{
	if (mesh_node(&ha, "ha", 0, cookie, NULL, 0, NULL))
		return -1;
	if ((ha_log = open(ha.log, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	const struct daemon_proc *pa[] = {&ha};
	if (mesh_node(&hb, "hb", 0, cookie, pa, 1, NULL))
		return -1;
	char addr[64];
	if (mesh_wait(&ha, "hb", CTL_NODE_UP, 10000) < 0 ||
	    mesh_wait(&hb, "ha", CTL_NODE_UP, 10000) < 0 ||
	    mesh_addr(&ha, addr, sizeof(addr), &ha_port))
		return -1;
	return 0;
}

static int suite_down(void)
{
	/* A clean exit of both (a sanitizer's report makes it unclean), and
	 * no report that did not stop ha (UBSan goes on after one). */
	int bad = 0;
	if (ha_log >= 0 && (log_count("runtime error", "") || log_count("Sanitizer", ""))) {
		printf("\n[ha's log has a sanitizer report]\n");
		bad = 1;
	}
	if (hb.pid > 0)
		bad |= daemon_stop(&hb);
	if (ha.pid > 0)
		bad |= daemon_stop(&ha);
	if (ha_log >= 0)
		close(ha_log);
	return bad ? -1 : 0;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	cookie = mesh_cookie("hostile");
	if (!cookie || hs_cookie_load(cookie, master))
		return 1;
	CU_pSuite s = CU_add_suite("links_hostile", suite_up, suite_down);
	CU_add_test(s, "a frame of unknown type", test_unknown_type);
	CU_add_test(s, "a frame with flags", test_flags);
	CU_add_test(s, "a PING of the wrong size", test_ping_size);
	CU_add_test(s, "PEERS of a bad size, of 257 entries", test_peers_size);
	CU_add_test(s, "a second HELLO, a second PROOF", test_hello_again);
	CU_add_test(s, "a GROUP for another master", test_group_not_sender);
	CU_add_test(s, "a GROUP with a bad name", test_group_bad_name);
	CU_add_test(s, "a REPLY with a bad status", test_reply_status);
	CU_add_test(s, "a frame cut short at the end of its record", test_truncated_frame);
	CU_add_test(s, "a record that does not authenticate", test_flipped_tag);
	CU_add_test(s, "a replayed record", test_replay);
	CU_add_test(s, "records of the wrong epoch", test_epoch);
	CU_add_test(s, "a real rekey is followed", test_rekey);
	CU_add_test(s, "a record header of 0xffffff00 bytes", test_huge_header);
	CU_add_test(s, "10,000 CLAIMs, each answered", test_claim_flood);
	CU_add_test(s, "CREATEs the master must refuse", test_create_huge);
	CU_add_test(s, "DELETE for another uid, and for uid 0", test_delete);
	CU_add_test(s, "REPLYs nobody asked for", test_stray_replies);
	CU_add_test(s, "a silent peer", test_silent_peer);
	CU_add_test(s, "a peer that writes and never reads", test_writer_not_reader);
	CU_add_test(s, "CLAIMs from a peer that never reads", test_claims_not_read);
	CU_add_test(s, "a peer that never answers a CLAIM", test_claim_unanswered);
	CU_add_test(s, "a GROUP for another node's name", test_group_usurp);
	CU_add_test(s, "PEERS naming 10,240 unknown nodes", test_peers_flood);
	/* HOSTILE_ONLY=text: only the cases whose name contains it. */
	const char *only = getenv("HOSTILE_ONLY");
	for (unsigned i = 0; only && i < s->uiNumberOfTests; i++) {
		CU_pTest t = CU_get_test_at_pos(s, i + 1);
		CU_set_test_active(t, strstr(t->pName, only) ? CU_TRUE : CU_FALSE);
	}
	int rc = run_cunit();
	unlink(cookie);
	return rc;
}

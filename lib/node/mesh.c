// SPDX-License-Identifier: MIT
/* The mesh: peers, their links' handshakes, heartbeats and redials, and
 * the PEERS gossip that makes a full mesh (mesh.h says the rules). */
#include "mesh.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* Data frames may fill half a link's queue: control frames (heartbeats,
 * answers) always find room in the rest. */
#define MESH_DATA_CAP (32u << 20)

/* One link and its handshake. A dialled link belongs to its peer from the
 * start; an accepted one finds its peer when the other proves who it is. */
struct mesh_conn {
	struct mesh *mesh;
	struct link *link;
	struct hs hs;
	bool outgoing;
	bool authed;
	struct mesh_peer *peer;
	int64_t started;
	struct mesh_conn *next;
};

struct mesh {
	struct mesh_opts o;
	char node[WIRE_NODE_MAX];
	uint8_t master[HS_KEY_BYTES];
	struct node_io *io;
	char listen_addr[WIRE_ADDR_MAX];
	int64_t timeout_ns, ping_ns;
	struct mesh_peer *peers;
	struct mesh_conn *conns;
	unsigned strangers;
	unsigned n_peers;
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

const char *mesh_state_name(enum mesh_state s)
{
	switch (s) {
	case MESH_DOWN:
		return "down";
	case MESH_LINKING:
		return "linking";
	case MESH_PROBATION:
		return "probation";
	case MESH_UP:
		return "up";
	}
	return "?";
}

static void set_state(struct mesh_peer *p, enum mesh_state s, int64_t now)
{
	if (p->state != s)
		p->since = now;
	p->state = s;
}

/* Parse "host:port" (numeric host unless `resolve`) into p's address. */
static int peer_set_addr(struct mesh_peer *p, const char *addr, bool resolve)
{
	char host[WIRE_ADDR_MAX];
	uint16_t port;
	if (wire_check_addr(addr, host, sizeof(host), &port))
		return -EINVAL;
	char svc[8];
	snprintf(svc, sizeof(svc), "%u", port);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV | (resolve ? 0 : AI_NUMERICHOST)};
	struct addrinfo *ai;
	if (getaddrinfo(host, svc, &hints, &ai))
		return -EINVAL;
	memcpy(&p->sa, ai->ai_addr, ai->ai_addrlen);
	p->salen = ai->ai_addrlen;
	freeaddrinfo(ai);
	snprintf(p->addr, sizeof(p->addr), "%s", addr);
	return 0;
}

static struct mesh_peer *peer_new(struct mesh *m)
{
	struct mesh_peer *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->mesh = m;
	p->next = m->peers;
	m->peers = p;
	m->n_peers++;
	return p;
}

static unsigned jitter(unsigned ms)
{
	unsigned r = 0;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (unsigned)now_ns();
	/* 75% .. 125% */
	return ms * 3 / 4 + (ms ? r % (ms / 2 + 1) : 0);
}

static void schedule_redial(struct mesh_peer *p, int64_t now)
{
	p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : MESH_BACKOFF_MIN_MS;
	if (p->backoff_ms > MESH_BACKOFF_MAX_MS)
		p->backoff_ms = MESH_BACKOFF_MAX_MS;
	p->next_try = now + (int64_t)jitter(p->backoff_ms) * 1000000ll;
}

static void conn_unlink(struct mesh_conn *c)
{
	for (struct mesh_conn **pp = &c->mesh->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
}

/* A peer loses its link: down, and dialled again later. */
static void peer_lost(struct mesh_peer *p, int64_t now)
{
	struct mesh *m = p->mesh;
	bool was_up = p->state == MESH_UP;
	p->conn = NULL;
	p->answered = 0;
	set_state(p, MESH_DOWN, now);
	schedule_redial(p, now);
	if (was_up && m->o.down)
		m->o.down(m->o.arg, p);
}

static void conn_drop(struct mesh_conn *c, int err)
{
	if (c->link)
		link_close(c->link, err);
}

static void on_closed(struct link *l, int err)
{
	struct mesh_conn *c = link_arg(l);
	struct mesh *m = c->mesh;
	int64_t now = now_ns();
	if (!c->authed)
		m->strangers -= !c->outgoing;
	struct mesh_peer *p = c->peer;
	if (p && p->conn == c) {
		if (p->state >= MESH_PROBATION)
			m->o.log("node link: %s (%s) lost: %s", p->node, p->addr,
				 err ? strerror(-err) : "closed");
		peer_lost(p, now);
	}
	conn_unlink(c);
	hs_clear(&c->hs);
	free(c);
}

static int send_hello(struct mesh_conn *c)
{
	struct mesh *m = c->mesh;
	struct wire_hello h;
	int err = hs_start(&c->hs, m->master, c->outgoing, m->node, m->o.encrypt, &h);
	if (!err)
		err = link_send(c->link, WIRE_HELLO, &h, sizeof(h));
	return err;
}

static void on_connected(struct link *l, int err)
{
	struct mesh_conn *c = link_arg(l);
	if (err)
		return; /* on_closed follows */
	if ((err = send_hello(c)))
		conn_drop(c, err);
}

/* Our PEERS frame: every node we are up with, and ourselves. */
static void send_peers(struct mesh *m, struct mesh_peer *to)
{
	struct wire_peer list[WIRE_PEERS_MAX];
	size_t n = 0;
	memset(list, 0, sizeof(list));
	snprintf(list[n].node, sizeof(list[n].node), "%s", m->node);
	snprintf(list[n].addr, sizeof(list[n].addr), "%s", m->listen_addr);
	n++;
	for (struct mesh_peer *p = m->peers; p && n < WIRE_PEERS_MAX; p = p->next)
		if (p != to && p->state == MESH_UP && p->salen) {
			snprintf(list[n].node, sizeof(list[n].node), "%s", p->node);
			snprintf(list[n].addr, sizeof(list[n].addr), "%s", p->addr);
			n++;
		}
	mesh_send(to, WIRE_PEERS, list, (uint32_t)(n * sizeof(list[0])));
}

static void peer_up(struct mesh_peer *p, int64_t now)
{
	struct mesh *m = p->mesh;
	set_state(p, MESH_UP, now);
	p->backoff_ms = 0;
	p->ups++;
	m->o.log("node link: %s (%s) up, rtt %lld us", p->node, p->addr,
		 (long long)(p->rtt_ns / 1000));
	/* Everyone up learns of everyone: a full mesh. */
	for (struct mesh_peer *q = m->peers; q; q = q->next)
		if (q->state == MESH_UP)
			send_peers(m, q);
	if (m->o.up)
		m->o.up(m->o.arg, p);
}

static bool addr_unspecified(const char *host)
{
	return !strcmp(host, "0.0.0.0") || !strcmp(host, "::");
}

/* A listen address with an unspecified host ("0.0.0.0:7000") means: the
 * address this link comes from, at that port. */
static void concrete_addr(struct mesh_peer *from, const char *addr, char *out, size_t cap)
{
	char host[WIRE_ADDR_MAX];
	uint16_t port;
	snprintf(out, cap, "%s", addr);
	if (wire_check_addr(addr, host, sizeof(host), &port) || !addr_unspecified(host) ||
	    !from->conn)
		return;
	struct sockaddr_storage sa;
	socklen_t len;
	if (link_peer_addr(from->conn->link, &sa, &len))
		return;
	char ip[INET6_ADDRSTRLEN];
	if (sa.ss_family == AF_INET &&
	    inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, ip, sizeof(ip)))
		snprintf(out, cap, "%s:%u", ip, port);
	else if (sa.ss_family == AF_INET6 &&
		 inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, ip, sizeof(ip)))
		snprintf(out, cap, "[%s]:%u", ip, port);
}

static int on_peers(struct mesh_peer *from, const struct wire_frame *f)
{
	struct mesh *m = from->mesh;
	struct wire_peer list[WIRE_PEERS_MAX];
	size_t n;
	if (wire_peers_parse(f, list, WIRE_PEERS_MAX, &n))
		return -EBADMSG;
	int64_t now = now_ns();
	bool changed = false;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(list[i].node, m->node) || !list[i].addr[0])
			continue;
		char addr[WIRE_ADDR_MAX];
		if (!strcmp(list[i].node, from->node))
			concrete_addr(from, list[i].addr, addr, sizeof(addr));
		else
			snprintf(addr, sizeof(addr), "%s", list[i].addr);
		struct mesh_peer *p = mesh_find(m, list[i].node);
		if (p && p->salen)
			continue; /* known, and where to dial it too */
		bool dialled = false;
		for (struct mesh_peer *q = m->peers; q; q = q->next)
			dialled |= !strcmp(q->addr, addr);
		if (dialled)
			continue; /* an address we dial already, not yet named */
		if (!p) {
			if (m->n_peers >= MESH_MAX_PEERS) {
				m->o.log("node link: %s tells of more nodes than %u: %s ignored",
					 from->node, MESH_MAX_PEERS, list[i].node);
				continue;
			}
			if (!(p = peer_new(m)))
				return 0;
			snprintf(p->node, sizeof(p->node), "%s", list[i].node);
			/* Soon, not at once: it may be dialling us too. */
			p->next_try = now + (int64_t)jitter(40) * 1000000ll;
			m->o.log("node link: learned of %s at %s from %s", p->node, addr,
				 from->node);
		}
		if (peer_set_addr(p, addr, false))
			p->salen = 0;
		changed |= p->salen != 0;
	}
	/* What we learned, the others learn too: a node whose link came up
	 * before we knew where another listens hears of it now. */
	if (changed)
		for (struct mesh_peer *q = m->peers; q; q = q->next)
			if (q->state == MESH_UP && q != from)
				send_peers(m, q);
	return 0;
}

/* The dialler of c: which node started it. */
static const char *dialler(const struct mesh *m, const struct mesh_conn *c)
{
	return c->outgoing ? m->node : c->hs.theirs.node;
}

/*
 * c proved it is node `name`. It becomes that peer's link, unless the
 * peer has another: then the link dialled by the smaller name stays (both
 * sides decide alike), or the newer one if one node dialled both (it
 * restarted). Returns false when c is the one to go.
 */
static bool conn_adopt(struct mesh *m, struct mesh_conn *c, int64_t now)
{
	const char *name = c->hs.theirs.node;
	struct mesh_peer *p = mesh_find(m, name);
	if (c->outgoing && c->peer && !p) {
		p = c->peer; /* dialled by address: now it has a name */
		snprintf(p->node, sizeof(p->node), "%s", name);
	} else if (c->outgoing && c->peer && p != c->peer) {
		/* Dialled an address that turned out to be a node we know
		 * under another entry: keep the named one, drop the duplicate. */
		struct mesh_peer *dup = c->peer;
		dup->conn = NULL;
		if (!p->salen && dup->salen) {
			memcpy(&p->sa, &dup->sa, dup->salen);
			p->salen = dup->salen;
			snprintf(p->addr, sizeof(p->addr), "%s", dup->addr);
			p->configured |= dup->configured;
		}
		for (struct mesh_peer **pp = &m->peers; *pp; pp = &(*pp)->next)
			if (*pp == dup) {
				*pp = dup->next;
				break;
			}
		m->n_peers--;
		free(dup);
		c->peer = NULL;
	}
	if (!p && (m->n_peers >= MESH_MAX_PEERS || !(p = peer_new(m))))
		return false;
	if (!p->node[0])
		snprintf(p->node, sizeof(p->node), "%s", name);
	struct mesh_conn *other = p->conn;
	if (other && other != c) {
		/* `other` is authenticated or one we dial: its dialler is known. */
		if (strcmp(dialler(m, c), dialler(m, other)) > 0)
			return false;
		other->peer = NULL; /* its close is no news for p */
		conn_drop(other, -EEXIST);
		if (p->state >= MESH_PROBATION) {
			/* The old link was up: the peer goes down and up again. */
			peer_lost(p, now);
		}
	}
	c->peer = p;
	p->conn = c;
	p->answered = 0;
	p->last_rx = now;
	p->next_ping = now;
	set_state(p, MESH_PROBATION, now);
	return true;
}

static int on_hello(struct mesh_conn *c, const struct wire_frame *f)
{
	struct mesh *m = c->mesh;
	struct wire_hello h;
	struct wire_proof proof;
	if (wire_hello_parse(f, &h))
		return -EBADMSG;
	if (!strcmp(h.node, m->node)) {
		/* We dialled ourselves (an address of our own in --peer or
		 * gossip): never again. */
		if (c->outgoing && c->peer)
			c->peer->self = true;
		return -ELOOP;
	}
	int err = hs_on_hello(&c->hs, &h, &proof);
	if (err) {
		m->o.log("node link: refused %s: %s", h.node,
			 err == -EPERM ? "one side encrypts, the other does not (--no-encrypt)"
				       : strerror(-err));
		return err;
	}
	return link_send(c->link, WIRE_PROOF, &proof, sizeof(proof));
}

static int on_proof(struct mesh_conn *c, const struct wire_frame *f)
{
	struct mesh *m = c->mesh;
	struct wire_proof proof;
	struct hs_keys keys;
	if (wire_proof_parse(f, &proof))
		return -EBADMSG;
	int err = hs_on_proof(&c->hs, &proof, &keys);
	if (err) {
		char who[INET6_ADDRSTRLEN + 8] = "?";
		struct sockaddr_storage sa;
		socklen_t len;
		if (!link_peer_addr(c->link, &sa, &len))
			getnameinfo((struct sockaddr *)&sa, len, who, sizeof(who), NULL, 0,
				    NI_NUMERICHOST);
		m->o.log("node link: refused %s claiming to be %s: %s", who, c->hs.theirs.node,
			 err == -EACCES ? "wrong cookie (or a replayed handshake)"
					: strerror(-err));
		/* Our own proof still goes: the other side can say why too. */
		link_close_after_send(c->link, err);
		return err;
	}
	link_key_tx(c->link, keys.tx, keys.encrypt, keys.aes);
	seal_key(link_rx(c->link), keys.rx, keys.encrypt, keys.aes, now_ns());
	sodium_memzero(&keys, sizeof(keys));
	c->authed = true;
	if (!c->outgoing)
		m->strangers--;
	if (!conn_adopt(m, c, now_ns()))
		return -EEXIST;
	return 0;
}

static int on_pong(struct mesh_peer *p, const struct wire_frame *f, int64_t now)
{
	struct wire_ping pong;
	if (wire_ping_parse(f, &pong))
		return -EBADMSG;
	if (pong.id > p->ping_id || pong.sent_ns > now)
		return 0; /* not ours: ignore, it proves nothing */
	int64_t rtt = now - pong.sent_ns;
	p->rtt_ns = p->rtt_ns ? (p->rtt_ns * 7 + rtt) / 8 : rtt;
	if (++p->answered >= MESH_UP_PONGS && p->state == MESH_PROBATION)
		peer_up(p, now);
	return 0;
}

/* One frame of a record that arrived at `now`. */
static int conn_frame(struct mesh_conn *c, const struct wire_frame *f, bool last, int64_t now)
{
	struct mesh *m = c->mesh;
	if (!c->authed) {
		/* Nothing but the handshake counts before it is done; the
		 * proof ends its record (what follows is keyed). */
		if (f->type == WIRE_HELLO)
			return on_hello(c, f);
		if (f->type == WIRE_PROOF && last)
			return on_proof(c, f);
		return -EPROTO;
	}
	struct mesh_peer *p = c->peer;
	if (!p || p->conn != c)
		return 0; /* a link on its way out */
	p->last_rx = now;
	switch (f->type) {
	case WIRE_HELLO:
	case WIRE_PROOF:
		return -EPROTO;
	case WIRE_PING: {
		struct wire_ping ping;
		if (wire_ping_parse(f, &ping))
			return -EBADMSG;
		return mesh_send(p, WIRE_PONG, &ping, sizeof(ping));
	}
	case WIRE_PONG:
		return on_pong(p, f, now);
	case WIRE_PEERS:
		return on_peers(p, f);
	case WIRE_BYE:
		return wire_bye_parse(f) ? -EBADMSG : -ECONNRESET;
	default:
		return m->o.frame ? m->o.frame(m->o.arg, p, f) : -EPROTO;
	}
}

static int on_record(struct link *l, uint8_t *plain, size_t n)
{
	struct mesh_conn *c = link_arg(l);
	size_t off = 0;
	/* One clock read per record, not per frame: a record holds
	 * thousands of small frames when the link is busy. */
	int64_t now = now_ns();
	while (off < n) {
		struct wire_frame f;
		size_t used;
		int err = wire_next(plain + off, n - off, &f, &used);
		if (err <= 0)
			return err ? err : -EBADMSG;
		off += used;
		if ((err = conn_frame(c, &f, off == n, now)))
			return err;
	}
	return 0;
}

static const struct link_ops mesh_link_ops = {
	.connected = on_connected,
	.record = on_record,
	.closed = on_closed,
};

static struct mesh_conn *conn_new(struct mesh *m, bool outgoing)
{
	struct mesh_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->mesh = m;
	c->outgoing = outgoing;
	c->started = now_ns();
	c->next = m->conns;
	m->conns = c;
	return c;
}

static void on_accept(void *arg, int fd, const struct sockaddr *sa, socklen_t len)
{
	struct mesh *m = arg;
	if (m->strangers >= MESH_MAX_STRANGERS) {
		close(fd);
		return;
	}
	struct mesh_conn *c = conn_new(m, false);
	if (!c) {
		close(fd);
		return;
	}
	m->strangers++;
	if (!(c->link = link_accepted(m->io, fd, &mesh_link_ops, c))) {
		m->strangers--;
		conn_unlink(c);
		free(c);
		return;
	}
	int err = send_hello(c);
	if (err)
		conn_drop(c, err);
}

static void dial(struct mesh *m, struct mesh_peer *p, int64_t now)
{
	struct mesh_conn *c = conn_new(m, true);
	if (!c) {
		schedule_redial(p, now);
		return;
	}
	c->peer = p;
	p->conn = c;
	set_state(p, MESH_LINKING, now);
	unsigned ms = m->timeout_ns / 1000000 > 100 ? (unsigned)(m->timeout_ns / 1000000) : 100;
	c->link = link_connect(m->io, (struct sockaddr *)&p->sa, p->salen, ms, &mesh_link_ops, c);
	if (!c->link) {
		conn_unlink(c);
		free(c);
		p->conn = NULL;
		set_state(p, MESH_DOWN, now);
		schedule_redial(p, now);
	}
}

void mesh_tick(struct mesh *m, int64_t now)
{
	for (struct mesh_conn *c = m->conns; c; c = c->next)
		if (!c->authed && now - c->started > (int64_t)MESH_HANDSHAKE_MS * 1000000ll)
			conn_drop(c, -ETIMEDOUT);
	for (struct mesh_peer *p = m->peers; p; p = p->next) {
		if (!p->conn) {
			if (p->salen && !p->self && now >= p->next_try)
				dial(m, p, now);
			continue;
		}
		if (p->state < MESH_PROBATION)
			continue;
		if (now - p->last_rx > m->timeout_ns) {
			m->o.log("node link: %s silent for %lld ms: closing", p->node,
				 (long long)((now - p->last_rx) / 1000000));
			conn_drop(p->conn, -ETIMEDOUT);
			continue;
		}
		if (now >= p->next_ping) {
			struct wire_ping ping = {.id = ++p->ping_id, .sent_ns = now};
			mesh_send(p, WIRE_PING, &ping, sizeof(ping));
			/* On probation, prove the link quickly but over some time. */
			p->next_ping = now + (p->state == MESH_UP ? m->ping_ns : m->ping_ns / 4);
		}
	}
}

/* The listening socket, and the address we tell others to dial. */
static int listen_on(struct mesh *m, const char *addr)
{
	struct mesh_peer tmp = {0};
	/* Port 0 (the kernel picks one; tests do this) is no address to dial,
	 * but one to listen on. */
	char any[WIRE_ADDR_MAX];
	size_t n = strlen(addr);
	bool port0 = n >= 2 && n < sizeof(any) && !strcmp(addr + n - 2, ":0");
	if (port0)
		snprintf(any, sizeof(any), "%.*s:1", (int)(n - 2), addr);
	int err = peer_set_addr(&tmp, port0 ? any : addr, true);
	if (!err && port0) {
		if (tmp.sa.ss_family == AF_INET)
			((struct sockaddr_in *)&tmp.sa)->sin_port = 0;
		else
			((struct sockaddr_in6 *)&tmp.sa)->sin6_port = 0;
	}
	if (err) {
		m->o.log("--listen %s: not HOST:PORT", addr);
		return err;
	}
	int fd = socket(tmp.sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&tmp.sa, tmp.salen) < 0 || listen(fd, 64) < 0) {
		err = -errno;
		m->o.log("--listen %s: %s", addr, strerror(errno));
		close(fd);
		return err;
	}
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);
	char host[INET6_ADDRSTRLEN], port[8];
	if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0 &&
	    getnameinfo((struct sockaddr *)&sa, len, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(m->listen_addr, sizeof(m->listen_addr),
			 sa.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
	return node_io_listen(m->io, fd, on_accept, m);
}

int mesh_start(struct mesh **out, struct node_io *io, const struct mesh_opts *o)
{
	struct mesh *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->o = *o;
	m->io = io;
	snprintf(m->node, sizeof(m->node), "%s", o->node);
	memcpy(m->master, o->master, HS_KEY_BYTES);
	unsigned t = o->timeout_ms ? o->timeout_ms : MESH_DEFAULT_TIMEOUT_MS;
	m->timeout_ns = (int64_t)t * 1000000ll;
	/* Several pings per timeout, so one lost to a busy moment is no loss. */
	m->ping_ns = m->timeout_ns / 5 < 200000000ll ? m->timeout_ns / 5 : 200000000ll;
	int err = 0;
	if (o->listen && (err = listen_on(m, o->listen)))
		goto fail;
	int64_t now = now_ns();
	for (unsigned i = 0; i < o->n_peers; i++) {
		struct mesh_peer *p = peer_new(m);
		if (!p) {
			err = -ENOMEM;
			goto fail;
		}
		p->configured = true;
		if ((err = peer_set_addr(p, o->peers[i], true))) {
			m->o.log("--peer %s: not HOST:PORT, or the host is unknown", o->peers[i]);
			goto fail;
		}
		p->next_try = now;
	}
	*out = m;
	return 0;
fail:
	mesh_stop(m);
	return err;
}

void mesh_stop(struct mesh *m)
{
	if (!m)
		return;
	for (struct mesh_conn *c = m->conns; c; c = c->next) {
		if (c->authed && c->link)
			link_send(c->link, WIRE_BYE, NULL, 0);
		c->peer = NULL;
	}
	node_io_flush(m->io);
	/* The links are freed with the io_uring (node_io_destroy); their
	 * conns here. */
	while (m->conns) {
		struct mesh_conn *c = m->conns;
		m->conns = c->next;
		link_set_arg(c->link, NULL);
		hs_clear(&c->hs);
		free(c);
	}
	while (m->peers) {
		struct mesh_peer *p = m->peers;
		m->peers = p->next;
		free(p);
	}
	memset(m->master, 0, sizeof(m->master));
	free(m);
}

struct mesh_peer *mesh_peers(struct mesh *m)
{
	return m->peers;
}

struct mesh_peer *mesh_find(struct mesh *m, const char *node)
{
	for (struct mesh_peer *p = m->peers; p; p = p->next)
		if (p->node[0] && !strcmp(p->node, node))
			return p;
	return NULL;
}

const char *mesh_listen_addr(const struct mesh *m)
{
	return m->listen_addr;
}

int mesh_send(struct mesh_peer *p, uint16_t type, const void *payload, uint32_t len)
{
	if (!p->conn || !p->conn->authed || !p->conn->link)
		return -ENOTCONN;
	int err = link_send(p->conn->link, type, payload, len);
	if (err) {
		p->mesh->o.log("node link: %s: cannot queue a frame (%s): closing", p->node,
			       strerror(-err));
		conn_drop(p->conn, err);
		return -ENOTCONN;
	}
	return 0;
}

void mesh_drop(struct mesh_peer *p, int err)
{
	if (p->conn)
		conn_drop(p->conn, err);
}

int mesh_send2(struct mesh_peer *p, uint16_t type, const void *a, uint32_t alen, const void *b,
	       uint32_t blen)
{
	if (!p->conn || !p->conn->authed || !p->conn->link)
		return -ENOTCONN;
	struct link_stats st;
	link_stats(p->conn->link, &st);
	if (st.queued + st.in_flight + alen + blen > MESH_DATA_CAP)
		return -ENOBUFS;
	return link_send2(p->conn->link, type, a, alen, b, blen);
}

struct node_io *mesh_io(struct mesh *m)
{
	return m->io;
}

void mesh_link_stats(const struct mesh_peer *p, struct link_stats *st)
{
	if (p->conn && p->conn->link)
		link_stats(p->conn->link, st);
	else
		memset(st, 0, sizeof(*st));
}

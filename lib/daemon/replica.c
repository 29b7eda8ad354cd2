// SPDX-License-Identifier: MIT
/*
 * Groups whose members are on several nodes.
 *
 * On the master, each node with members has a STREAM: a member slot the
 * daemon holds in the group's ring, with a page of its own. The daemon
 * reads the ring in place from that slot's cursor, as any member does,
 * sends each record once to that node (REC: kind, flags, the master's seq,
 * sender) however many members the node has, and releases it. So a node's
 * stream holds the ring's senders back exactly like one slow member would.
 * When the stream has caught up, the daemon says it sleeps (its page) and
 * waits on the ring's wake word in its io_uring: a sender's commit wakes
 * it as it wakes any sleeping member.
 *
 * On a node with members of another node's group, a REPLICA: a ring of the
 * master's sizes that this daemon alone writes, record after record in the
 * master's order, each with the master's seq (ring_commit_seq). Members
 * read it in place, zero copy, as on the master. A member slot is reserved
 * when a member asks to join (RJOIN); the master writes its JOINED into
 * the one order; when that record arrives here, the member's cursor is put
 * on it: the member receives exactly what is ordered after its join.
 * Leaving and exiting are asked of the master too (RLEAVE), so every
 * member on every node sees every event at the same place.
 */
#include "daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "node/link.h"
#include "node/mesh.h"
#include "proto/ctl.h"
#include "proto/wire.h"
#include "ring/wait.h"

/* The master's stream of one group to one node. */
struct stream {
	struct group *g;
	struct mesh_peer *peer;
	uint32_t id;
	uint32_t slot, word;
	int page_fd;
	struct ring_reader rd;
	struct stream *next;
};

/* A join asked of the master, not yet answered or positioned. */
struct rjoin {
	uint64_t id;
	uint64_t asker;  /* session serial of the caller */
	uint32_t req_id;
	uint64_t target; /* session serial of the new member's */
	int32_t pid;
	struct member *m;
	bool positioned; /* its JOINED arrived: the cursor is on it */
	bool answered;   /* the master's MEMBER_LIST arrived */
	struct wire_member *old;
	uint32_t n_old;
	struct rjoin *next;
};

struct replica {
	char master[WIRE_NODE_MAX];
	struct mesh_peer *peer;
	uint32_t stream; /* 0 until SUBBED */
	uint64_t sub_id;
	struct rjoin *joins;
};

/* A MEMBERS asked of a master for a client here. */
struct rask {
	uint64_t id;
	uint64_t session;
	uint32_t req_id;
	struct mesh_peer *peer;
	struct rask *next;
};

/* Names whose master was lost while we replicated them. */
struct lost {
	char name[256];
	struct lost *next;
};

struct repl {
	uint64_t next_id;
	uint32_t next_stream;
	struct rask *asks;
	struct lost *lost;
};

/* A wait on a group's wake word: the group is named by serial, so a group
 * freed meanwhile is simply not found. */
struct ship_wait {
	struct daemon *d;
	uint64_t serial;
};

static struct repl *repl_of(struct daemon *d)
{
	if (!d->repl)
		d->repl = calloc(1, sizeof(struct repl));
	return d->repl;
}

static struct group *group_by_serial(struct daemon *d, uint64_t serial)
{
	for (struct group *g = d->groups; g; g = g->next)
		if (g->serial == serial)
			return g;
	return NULL;
}

/* ---- the master's side ---- */

static void stream_free(struct daemon *d, struct stream *st)
{
	if (st->rd.page)
		ring_page_unmap(st->rd.page);
	ring_member_remove(&st->g->ring, st->slot);
	if (st->page_fd >= 0)
		close(st->page_fd);
	free(st);
}

static void stream_drop(struct daemon *d, struct stream *st)
{
	for (struct stream **p = &st->g->streams; *p; p = &(*p)->next)
		if (*p == st) {
			*p = st->next;
			break;
		}
	stream_free(d, st);
}

static void on_wake(void *arg, int res);

/* Caught up: sleep on the ring's wake word, unless a record came meanwhile. */
static bool arm(struct daemon *d, struct group *g)
{
	if (g->ship_armed || !g->streams || !cluster_mesh(d))
		return false;
	struct ring *r = &g->ring;
	uint32_t seen = atomic_load(&r->hdr->wake_seq);
	/* Say we sleep before the last look: a commit after it wakes us
	 * (ring_wake reads our page after its decision). */
	for (struct stream *st = g->streams; st; st = st->next)
		atomic_store(&st->rd.page->sleeping, 1);
	for (struct stream *st = g->streams; st; st = st->next) {
		struct ring_view v;
		if (ring_read(r, &st->rd, &v) != 0)
			return true; /* something to ship (or to see fail) */
	}
	struct ship_wait *w = malloc(sizeof(*w));
	if (!w)
		return false;
	*w = (struct ship_wait){d, g->serial};
	if (node_io_futex_wait(mesh_io(cluster_mesh(d)), &r->hdr->wake_seq, seen, on_wake, w)) {
		free(w);
		return false; /* the tick ships */
	}
	g->ship_armed = true;
	return false;
}

static void on_wake(void *arg, int res)
{
	struct ship_wait *w = arg;
	struct daemon *d = w->d;
	struct group *g = res == -ECANCELED ? NULL : group_by_serial(d, w->serial);
	free(w);
	if (!g)
		return; /* freed meanwhile, or the node links are shutting down */
	g->ship_armed = false;
	replica_ship(d, g);
}

/* Ship what st has not sent: false when the link is full (the tick and
 * the link's drain retry) or the stream ended. */
static bool ship_stream(struct daemon *d, struct stream *st)
{
	struct ring *r = &st->g->ring;
	struct ring_view v;
	int err;
	while ((err = ring_read(r, &st->rd, &v)) == 1) {
		struct wire_rec h = {.stream = st->id,
				     .kind = v.kind,
				     .flags = v.flags,
				     .seq = v.seq,
				     .from_pid = v.from_pid,
				     .from_node = v.from_node,
				     .len = v.len};
		err = mesh_send2(st->peer, WIRE_REC, &h, sizeof(h), v.payload, v.len);
		if (err == -ENOBUFS)
			return false;
		if (err)
			return false;
		ring_release(r, &st->rd, v.next_pos);
	}
	if (err < 0) {
		/* Our slot was evicted (the node lagged past the stall limit)
		 * or the ring is corrupt: that node's membership ends. */
		pgd_log("group %s: stream to %s ends: %s", st->g->name, st->peer->node,
			strerror(-err));
		return false;
	}
	return true;
}

void replica_ship(struct daemon *d, struct group *g)
{
	for (int round = 0; round < 4; round++) {
		for (struct stream *st = g->streams; st; st = st->next) {
			atomic_store(&st->rd.page->sleeping, 0);
			ship_stream(d, st);
		}
		if (!arm(d, g))
			return;
	}
}

static int on_sub(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	struct wire_claim c;
	if (wire_ask_parse(f, WIRE_SUB, &c))
		return -EBADMSG;
	struct wire_subbed rep = {.id = c.id};
	struct group *g = registry_find(d, c.name);
	struct stream *st = NULL;
	if (!g)
		rep.status = -ENOENT;
	else if (g->bad)
		rep.status = -EBADMSG;
	for (st = g ? g->streams : NULL; st; st = st->next)
		if (st->peer == from)
			break;
	if (!rep.status && !st) {
		struct repl *rp = repl_of(d);
		if (!(st = calloc(1, sizeof(*st))) || !rp) {
			free(st);
			rep.status = -ENOMEM;
		} else {
			uint64_t start;
			st->g = g;
			st->peer = from;
			st->id = ++rp->next_stream;
			rep.status = ring_member_add(&g->ring, 0, &st->slot, &st->word, &start,
						     &st->page_fd);
			if (!rep.status && !(st->rd.page = ring_page_map(st->page_fd, true)))
				rep.status = -ENOMEM;
			if (rep.status) {
				if (st->page_fd > 0) {
					ring_member_remove(&g->ring, st->slot);
					close(st->page_fd);
				}
				free(st);
				st = NULL;
			} else {
				st->rd.pos = start;
				st->rd.slot = st->slot;
				st->rd.state_word = st->word;
				st->next = g->streams;
				g->streams = st;
			}
		}
	}
	if (st)
		rep.stream = st->id;
	mesh_send(from, WIRE_SUBBED, &rep, sizeof(rep));
	if (st)
		replica_ship(d, g);
	return 0;
}

static int on_unsub(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	struct wire_unsub u;
	if (wire_unsub_parse(f, &u))
		return -EBADMSG;
	for (struct group *g = d->groups; g; g = g->next)
		for (struct stream *st = g->streams; st; st = st->next)
			if (st->peer == from && st->id == u.stream) {
				stream_drop(d, st);
				return 0;
			}
	return 0;
}

/* The members of g as the master sees them, into a MEMBER_LIST. */
static int send_members(struct daemon *d, struct mesh_peer *to, struct group *g, uint64_t id,
			int status, uint64_t seq, const struct rmember *skip)
{
	static struct wire_member list[WIRE_MEMBERS_MAX];
	uint32_t n = 0;
	for (struct member *m = g ? g->members : NULL; m && n < WIRE_MEMBERS_MAX;
	     m = m->next_in_group) {
		if (m->evicted)
			continue;
		memset(&list[n], 0, sizeof(list[n]));
		snprintf(list[n].node, sizeof(list[n].node), "%s", d->node);
		list[n++].pid = m->session->pid;
	}
	for (struct rmember *m = g ? g->rmembers : NULL; m && n < WIRE_MEMBERS_MAX; m = m->next) {
		if (m == skip)
			continue;
		memset(&list[n], 0, sizeof(list[n]));
		snprintf(list[n].node, sizeof(list[n].node), "%s", m->node);
		list[n++].pid = m->pid;
	}
	struct wire_members h = {.id = id, .status = status, .n = status ? 0 : n, .seq = seq};
	return mesh_send2(to, WIRE_MEMBER_LIST, &h, sizeof(h), list,
			  (uint32_t)(h.n * sizeof(list[0])));
}

static int on_rjoin(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	struct wire_rjoin j;
	if (wire_rjoin_parse(f, &j))
		return -EBADMSG;
	struct group *g = registry_find(d, j.name);
	if (f->type == WIRE_RLEAVE) {
		if (g)
			registry_rleave(d, g, from->node, j.pid,
					j.flags & WIRE_RLEAVE_EXITED ? RING_REC_EXITED
								     : RING_REC_LEFT);
		return 0;
	}
	if (!g)
		return send_members(d, from, NULL, j.id, -ENOENT, 0, NULL);
	uint64_t seq;
	struct rmember *added;
	int err = registry_rjoin(d, g, from->node, j.pid, &seq, &added);
	if (err)
		return send_members(d, from, NULL, j.id, err, 0, NULL);
	/* Its JOINED first, then the members before it (the node takes them
	 * in either order). */
	replica_ship(d, g);
	return send_members(d, from, g, j.id, 0, seq, added);
}

static int on_members(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	struct wire_claim c;
	if (wire_ask_parse(f, WIRE_MEMBERS, &c))
		return -EBADMSG;
	struct group *g = registry_find(d, c.name);
	return send_members(d, from, g, c.id, g ? 0 : -ENOENT, 0, NULL);
}

/* ---- the replica's side ---- */

static struct group *replica_by_stream(struct daemon *d, struct mesh_peer *from, uint32_t id)
{
	for (struct group *g = d->groups; g; g = g->next)
		if (g->replica && g->replica->peer == from && g->replica->stream == id)
			return g;
	return NULL;
}

static struct group *replica_by_sub(struct daemon *d, struct mesh_peer *from, uint64_t id)
{
	for (struct group *g = d->groups; g; g = g->next)
		if (g->replica && g->replica->peer == from && g->replica->sub_id == id)
			return g;
	return NULL;
}

static void rjoin_free(struct rjoin *j)
{
	free(j->old);
	free(j);
}

static void rjoin_unlink(struct replica *rp, struct rjoin *j)
{
	for (struct rjoin **p = &rp->joins; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			break;
		}
}

/* A join failed: its reserved slot goes, the caller hears why. */
static void rjoin_fail(struct daemon *d, struct group *g, struct rjoin *j, int err)
{
	rjoin_unlink(g->replica, j);
	if (j->m) {
		j->m->evicted = true; /* nothing to tell the master: it never joined */
		registry_remove(d, j->m, RING_REC_LEFT);
	}
	session_answer(d, j->asker, CTL_JOIN, j->req_id, err);
	rjoin_free(j);
}

/* Answered and positioned: the caller gets its membership. */
static void rjoin_done(struct daemon *d, struct group *g, struct rjoin *j)
{
	rjoin_unlink(g->replica, j);
	struct session *s = session_by_serial(d, j->asker);
	struct session *t = session_by_serial(d, j->target);
	int err = -ESRCH;
	if (s && t && j->m)
		err = session_answer_join(d, s, j->req_id, t, j->m, j->old, j->n_old);
	if (err) {
		if (s)
			session_answer(d, j->asker, CTL_JOIN, j->req_id, err);
		if (j->m)
			registry_remove(d, j->m, RING_REC_LEFT); /* tells the master */
	}
	rjoin_free(j);
}

/* A record arrived in order: into the replica. */
static int on_rec(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	struct wire_rec h;
	const uint8_t *payload;
	if (wire_rec_parse(f, &h, &payload))
		return -EBADMSG;
	struct group *g = replica_by_stream(d, from, h.stream);
	if (!g)
		return 0; /* a stream we gave up: records still on their way */
	if (h.len > g->ring.max_msg || (h.kind != RING_REC_MSG && (!h.len || h.len >= 64)) ||
	    (h.flags & ~RING_F_ESEND))
		return -EBADMSG;
	struct pending_event e = {.kind = h.kind, .flags = h.flags, .pid = h.from_pid, .seq = h.seq};
	if (h.kind == RING_REC_MSG) {
		e.len = h.len;
		e.data = (uint8_t *)payload;
	} else {
		memcpy(e.node, payload, h.len);
		e.node[h.len] = 0;
		if (ctl_check_node(e.node, h.len))
			return -EBADMSG;
	}
	uint64_t pos;
	int err = registry_post(d, g, &e, &pos);
	if (err == -ENOBUFS) {
		pgd_log("group %s: replica over its bound behind a member that does not read",
			g->name);
		return 0;
	}
	/* A JOINED of ours: the oldest join of that pid waiting for its place
	 * starts at it. One queued behind a member that holds the ring full
	 * has no place yet: that join waits for the next (rare). */
	if (h.kind == RING_REC_JOINED && !strcmp(e.node, d->node) && pos != UINT64_MAX) {
		for (struct rjoin *j = g->replica->joins; j; j = j->next) {
			if (j->positioned || j->pid != h.from_pid || !j->m)
				continue;
			struct ring_mpage *page = ring_page_map(j->m->page_fd, true);
			if (page) {
				atomic_store(&page->cursor, pos);
				ring_page_unmap(page);
			}
			j->m->start = pos;
			j->m->seen_cursor = pos;
			j->positioned = true;
			if (j->answered)
				rjoin_done(d, g, j);
			break;
		}
	}
	return 0;
}

static int on_member_list(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	static struct wire_member list[WIRE_MEMBERS_MAX];
	struct wire_members h;
	if (wire_members_parse(f, &h, list, WIRE_MEMBERS_MAX))
		return -EBADMSG;
	struct repl *rp = repl_of(d);
	for (struct rask **p = rp ? &rp->asks : NULL; p && *p; p = &(*p)->next) {
		struct rask *a = *p;
		if (a->id != h.id || a->peer != from)
			continue;
		*p = a->next;
		session_answer_members(d, a->session, a->req_id, list, h.n, h.status);
		free(a);
		return 0;
	}
	for (struct group *g = d->groups; g; g = g->next) {
		if (!g->replica || g->replica->peer != from)
			continue;
		for (struct rjoin *j = g->replica->joins; j; j = j->next) {
			if (j->id != h.id || j->answered)
				continue;
			if (h.status) {
				rjoin_fail(d, g, j, h.status);
				return 0;
			}
			j->answered = true;
			if (h.n && (j->old = malloc(h.n * sizeof(*list))))
				memcpy(j->old, list, h.n * sizeof(*list));
			j->n_old = j->old ? h.n : 0;
			if (j->positioned)
				rjoin_done(d, g, j);
			return 0;
		}
	}
	return 0;
}

static int on_subbed(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	struct wire_subbed s;
	if (wire_subbed_parse(f, &s))
		return -EBADMSG;
	struct group *g = replica_by_sub(d, from, s.id);
	if (!g)
		return 0;
	if (s.status) {
		pgd_log("group %s: its master %s refused a replica: %s", g->name, from->node,
			strerror(-s.status));
		while (g->replica->joins)
			rjoin_fail(d, g, g->replica->joins, s.status);
		return 0;
	}
	g->replica->stream = s.stream;
	return 0;
}

int replica_frame(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	switch (f->type) {
	case WIRE_SUB:
		return on_sub(d, from, f);
	case WIRE_SUBBED:
		return on_subbed(d, from, f);
	case WIRE_UNSUB:
		return on_unsub(d, from, f);
	case WIRE_REC:
		return on_rec(d, from, f);
	case WIRE_RJOIN:
	case WIRE_RLEAVE:
		return on_rjoin(d, from, f);
	case WIRE_MEMBERS:
		return on_members(d, from, f);
	case WIRE_MEMBER_LIST:
		return on_member_list(d, from, f);
	}
	return -EPROTO;
}

/* This node's replica of `name`, made (and subscribed) on first use. */
static int replica_get(struct daemon *d, const char *name, struct group **out)
{
	struct group *g = registry_find_replica(d, name);
	if (g) {
		*out = g;
		return 0;
	}
	const struct wire_group *info = names_info(d, name);
	struct mesh *mesh = cluster_mesh(d);
	struct mesh_peer *p = info && mesh ? mesh_find(mesh, info->master) : NULL;
	struct repl *rp = repl_of(d);
	if (!info)
		return -ENOENT;
	if (!p || p->state != MESH_UP || !rp)
		return -EHOSTUNREACH;
	struct replica *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	int err = registry_new_replica(d, name, info->ring_bytes, info->max_msg, info->stall_ms,
				       info->mode, (uid_t)info->uid, (gid_t)info->gid, &g);
	if (err) {
		free(r);
		return err;
	}
	snprintf(r->master, sizeof(r->master), "%s", info->master);
	r->peer = p;
	r->sub_id = ++rp->next_id;
	g->replica = r;
	struct wire_claim c = {.id = r->sub_id};
	snprintf(c.name, sizeof(c.name), "%s", name);
	if ((err = mesh_send(p, WIRE_SUB, &c, sizeof(c)))) {
		registry_drop(d, g);
		return err;
	}
	*out = g;
	return 0;
}

int replica_join(struct daemon *d, struct session *s, struct session *target, const char *name,
		 uint32_t req_id)
{
	struct group *g;
	int err = replica_get(d, name, &g);
	if (err)
		return err;
	struct replica *r = g->replica;
	struct rjoin *j = calloc(1, sizeof(*j));
	struct repl *rp = repl_of(d);
	if (!j || !rp) {
		free(j);
		return -ENOMEM;
	}
	j->id = ++rp->next_id;
	j->asker = s->serial;
	j->req_id = req_id;
	j->target = target->serial;
	j->pid = target->pid;
	if ((err = registry_join_replica(d, g, target, &j->m))) {
		free(j);
		return err;
	}
	struct wire_rjoin w = {.id = j->id, .pid = target->pid};
	snprintf(w.name, sizeof(w.name), "%s", name);
	if ((err = mesh_send(r->peer, WIRE_RJOIN, &w, sizeof(w)))) {
		j->m->evicted = true;
		registry_remove(d, j->m, RING_REC_LEFT);
		free(j);
		return err;
	}
	struct rjoin **p = &r->joins;
	while (*p)
		p = &(*p)->next;
	*p = j;
	return NAMES_LATER;
}

int replica_members(struct daemon *d, struct session *s, const char *name, uint32_t req_id)
{
	const struct wire_group *info = names_info(d, name);
	struct mesh *mesh = cluster_mesh(d);
	struct mesh_peer *p = info && mesh ? mesh_find(mesh, info->master) : NULL;
	struct repl *rp = repl_of(d);
	if (!info)
		return -ENOENT;
	if (!p || p->state != MESH_UP || !rp)
		return -EHOSTUNREACH;
	struct rask *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	*a = (struct rask){.id = ++rp->next_id, .session = s->serial, .req_id = req_id, .peer = p};
	struct wire_claim c = {.id = a->id};
	snprintf(c.name, sizeof(c.name), "%s", name);
	int err = mesh_send(p, WIRE_MEMBERS, &c, sizeof(c));
	if (err) {
		free(a);
		return err;
	}
	a->next = rp->asks;
	rp->asks = a;
	return NAMES_LATER;
}

void replica_member_left(struct daemon *d, struct group *g, int32_t pid, uint16_t kind)
{
	struct replica *r = g->replica;
	struct wire_rjoin w = {.pid = pid, .flags = kind == RING_REC_EXITED ? WIRE_RLEAVE_EXITED : 0};
	snprintf(w.name, sizeof(w.name), "%s", g->name);
	/* The master writes LEFT or EXITED into the order for every node; a
	 * master gone has no order to write it in. */
	if (r->peer && r->peer->state == MESH_UP)
		mesh_send(r->peer, WIRE_RLEAVE, &w, sizeof(w));
}

void replica_group_gone(struct daemon *d, struct group *g)
{
	while (g->streams) {
		struct stream *st = g->streams;
		g->streams = st->next;
		stream_free(d, st);
	}
	struct replica *r = g->replica;
	if (!r)
		return;
	while (r->joins) {
		struct rjoin *j = r->joins;
		r->joins = j->next;
		session_answer(d, j->asker, CTL_JOIN, j->req_id, -EHOSTUNREACH);
		j->m = NULL; /* freed with the group */
		rjoin_free(j);
	}
	if (r->stream && r->peer && r->peer->state == MESH_UP && cluster_mesh(d)) {
		struct wire_unsub u = {.stream = r->stream};
		mesh_send(r->peer, WIRE_UNSUB, &u, sizeof(u));
	}
	free(r);
	g->replica = NULL;
}

int replica_stream_page(struct group *g, uint32_t slot, uint32_t word)
{
	for (struct stream *st = g->streams; st; st = st->next)
		if (st->slot == slot && st->word == word)
			return st->page_fd;
	return -ESTALE;
}

const char *replica_master(const struct group *g)
{
	return g->replica->master;
}

bool replica_lost(struct daemon *d, const char *name)
{
	for (struct lost *l = d->repl ? d->repl->lost : NULL; l; l = l->next)
		if (!strcmp(l->name, name))
			return true;
	return false;
}

void replica_peer_down(struct daemon *d, struct mesh_peer *p)
{
	struct repl *rp = repl_of(d);
	for (struct rask **a = rp ? &rp->asks : NULL; a && *a;) {
		if ((*a)->peer != p) {
			a = &(*a)->next;
			continue;
		}
		struct rask *x = *a;
		*a = x->next;
		session_answer(d, x->session, CTL_MEMBERS, x->req_id, -EHOSTUNREACH);
		free(x);
	}
	for (struct group *g = d->groups, *next; g; g = next) {
		next = g->next;
		/* Our groups: that node's stream ends, its members exit. */
		for (struct stream *st = g->streams, *sn; st; st = sn) {
			sn = st->next;
			if (st->peer == p)
				stream_drop(d, st);
		}
		for (struct rmember *m = g->rmembers, *mn; m; m = mn) {
			mn = m->next;
			if (!strcmp(m->node, p->node))
				registry_rleave(d, g, p->node, m->pid, RING_REC_EXITED);
		}
		/* Its groups: down here (PG_GROUP_DOWN), and remembered as lost. */
		if (g->replica && g->replica->peer == p) {
			pgd_log("group %s: its master %s is lost", g->name, p->node);
			struct lost *l = rp ? calloc(1, sizeof(*l)) : NULL;
			if (l) {
				snprintf(l->name, sizeof(l->name), "%s", g->name);
				l->next = rp->lost;
				rp->lost = l;
			}
			g->replica->peer = NULL;
			registry_drop(d, g);
		}
	}
}

void replica_tick(struct daemon *d)
{
	/* Streams that stopped on a full link go on; a name created again
	 * is no longer lost. */
	for (struct group *g = d->groups; g; g = g->next)
		if (g->streams)
			replica_ship(d, g);
	struct repl *rp = d->repl;
	for (struct lost **l = rp ? &rp->lost : NULL; l && *l;) {
		if (names_info(d, (*l)->name) || registry_find(d, (*l)->name)) {
			struct lost *x = *l;
			*l = x->next;
			free(x);
		} else {
			l = &(*l)->next;
		}
	}
}

void replica_forget_peers(struct daemon *d)
{
	for (struct group *g = d->groups; g; g = g->next) {
		if (g->replica)
			g->replica->peer = NULL;
		while (g->streams) {
			struct stream *st = g->streams;
			g->streams = st->next;
			stream_free(d, st);
		}
		g->ship_armed = false;
	}
	struct repl *rp = d->repl;
	while (rp && rp->asks) {
		struct rask *a = rp->asks;
		rp->asks = a->next;
		session_answer(d, a->session, CTL_MEMBERS, a->req_id, -EHOSTUNREACH);
		free(a);
	}
}

void replica_destroy(struct daemon *d)
{
	struct repl *rp = d->repl;
	if (!rp)
		return;
	while (rp->asks) {
		struct rask *a = rp->asks;
		rp->asks = a->next;
		free(a);
	}
	while (rp->lost) {
		struct lost *l = rp->lost;
		rp->lost = l->next;
		free(l);
	}
	free(rp);
	d->repl = NULL;
}

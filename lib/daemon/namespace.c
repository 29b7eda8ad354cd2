// SPDX-License-Identifier: MIT
/*
 * One group namespace over every connected node.
 *
 *  - Each node tells every peer, when the link comes up and on each change,
 *    which groups it masters (GROUP, GONE). So every node knows every
 *    name and its master.
 *  - Creating a name asks every UP peer first (CLAIM). A peer refuses a
 *    name it knows; two nodes claiming one name at once refuse each
 *    other's claim by one rule both apply alike — the node with the smaller
 *    name wins — so exactly one of them creates it. A peer that goes down
 *    while a claim waits for it no longer counts.
 *  - pg_create_on another node, and pg_delete of another node's group, are
 *    asked of that node (CREATE, DELETE) and answered (REPLY).
 *  - Names created on both sides of a partition meet when the link comes
 *    back: the older group (its master's CLOCK_REALTIME at creation; equal
 *    times: the smaller master name) stays, the other is deleted by its
 *    master, whose members get PG_GROUP_DOWN.
 */
#include "daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "node/mesh.h"
#include "proto/ctl.h"
#include "proto/wire.h"
#include "ring/wait.h"
#include "timing.h"

/* A group another node masters. */
struct remote_group {
	struct wire_group info;
	uint64_t serial; /* in this node's listing order */
	struct remote_group *next;
};

enum pending_kind { PENDING_CLAIM = 1, PENDING_REMOTE };

#define NAMES_MAX_PEERS 256u

/* A request waiting for other nodes' answers. */
struct pending {
	uint64_t id;
	enum pending_kind kind;
	char name[256];
	struct names_answer answer;
	/* PENDING_CLAIM: what to create once every peer agreed. */
	struct creds who;
	uint64_t ring_bytes, max_msg;
	uint32_t stall_ms, mode, member_slots;
	struct mesh_peer *waiting[NAMES_MAX_PEERS];
	unsigned n_waiting;
	bool refused;
	bool acking; /* created: waiting for every node to know it */
	/* PENDING_REMOTE: the node asked. */
	struct mesh_peer *target;
	int64_t since; /* ns: asked then (a node silent on it past
			  PGD_NODE_ANSWER_NS is lost) */
	struct pending *next;
};

struct names {
	struct remote_group *groups; /* newest first */
	struct pending *pending;
	uint64_t next_id;
};

static struct names *names_of(struct daemon *d)
{
	if (!d->names)
		d->names = calloc(1, sizeof(struct names));
	return d->names;
}

static int64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static bool older(const struct wire_group *a, const struct wire_group *b);

/* The group of that name another node masters: of several (one name made
 * on both sides of a partition, told by their masters), the older one. The
 * others are kept until their masters delete them or are lost, so a node
 * that lied, or left, takes only its own claim with it. */
static struct remote_group *remote_find(struct names *n, const char *name)
{
	struct remote_group *best = NULL;
	for (struct remote_group *r = n ? n->groups : NULL; r; r = r->next)
		if (!strcmp(r->info.name, name) && (!best || older(&r->info, &best->info)))
			best = r;
	return best;
}

static struct remote_group *remote_of(struct names *n, const char *name, const char *master)
{
	for (struct remote_group *r = n ? n->groups : NULL; r; r = r->next)
		if (!strcmp(r->info.name, name) && !strcmp(r->info.master, master))
			return r;
	return NULL;
}

const char *names_master(struct daemon *d, const char *name)
{
	struct remote_group *r = remote_find(d->names, name);
	return r ? r->info.master : NULL;
}

const struct wire_group *names_info(struct daemon *d, const char *name)
{
	struct remote_group *r = remote_find(d->names, name);
	return r ? &r->info : NULL;
}

bool names_taken(struct daemon *d, const char *name)
{
	return registry_find(d, name) || remote_find(d->names, name);
}

static void send_reply(struct mesh_peer *p, uint64_t id, int status)
{
	struct wire_reply r = {.id = id, .status = status};
	mesh_send(p, WIRE_REPLY, &r, sizeof(r));
}

static void answer(struct daemon *d, const struct names_answer *a, int status)
{
	if (a->peer)
		send_reply(a->peer, a->peer_id, status);
	else if (a->session)
		session_answer(d, a->session, a->type, a->id, status);
}

static void group_info(struct daemon *d, const struct group *g, struct wire_group *w)
{
	memset(w, 0, sizeof(*w));
	w->created_ns = g->created_ns;
	w->ring_bytes = g->ring.capacity;
	w->max_msg = g->ring.max_msg;
	w->stall_ms = g->ring.stall_ms;
	w->mode = g->mode;
	w->uid = (uint32_t)g->uid;
	w->gid = (uint32_t)g->gid;
	w->member_slots = g->ring.member_slots;
	snprintf(w->master, sizeof(w->master), "%s", d->node);
	snprintf(w->name, sizeof(w->name), "%s", g->name);
}

/* Tell every UP peer (but `except`) a frame about one group. */
static void broadcast(struct daemon *d, uint16_t type, const void *payload, uint32_t len)
{
	struct mesh *m = cluster_mesh(d);
	for (struct mesh_peer *p = m ? mesh_peers(m) : NULL; p; p = p->next)
		if (p->state == MESH_UP)
			mesh_send(p, type, payload, len);
}

void names_deleted(struct daemon *d, const char *name)
{
	struct wire_name w = {0};
	snprintf(w.name, sizeof(w.name), "%s", name);
	broadcast(d, WIRE_GONE, &w, sizeof(w));
}

/* Create it here, now: the reply's status. */
static int create_here(struct daemon *d, const struct pending *p, struct group **out)
{
	if (names_taken(d, p->name))
		return -EEXIST;
	struct group *g;
	int err = registry_create(d, &p->who, NULL, p->name, p->ring_bytes, p->max_msg, p->stall_ms,
				  p->member_slots, p->mode, &g);
	if (err)
		return err;
	pgd_log("group %s created for uid %u (ring %llu bytes, max message %u)", p->name,
		(unsigned)p->who.uid, (unsigned long long)g->ring.capacity, g->ring.max_msg);
	g->created_ns = realtime_ns();
	*out = g;
	return 0;
}

static void pending_drop(struct names *n, struct pending *p)
{
	for (struct pending **pp = &n->pending; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	free(p);
}

/*
 * Every peer answered a claim (or went down): create and tell them, or
 * refuse. The create is answered once every node up knows the group
 * (acknowledged its GROUP): a client told "created" may at once join it
 * through any of them.
 */
static void claim_done(struct daemon *d, struct pending *p)
{
	struct group *g = NULL;
	int err = p->acking ? 0 : p->refused ? -EEXIST : create_here(d, p, &g);
	if (err || p->acking) {
		answer(d, &p->answer, err);
		pending_drop(d->names, p);
		return;
	}
	struct wire_group w;
	group_info(d, g, &w);
	w.ack = p->id;
	struct mesh *m = cluster_mesh(d);
	p->acking = true;
	p->n_waiting = 0;
	p->since = ring_now_ns();
	for (struct mesh_peer *q = m ? mesh_peers(m) : NULL; q; q = q->next)
		if (q->state == MESH_UP && p->n_waiting < NAMES_MAX_PEERS &&
		    !mesh_send(q, WIRE_GROUP, &w, sizeof(w)))
			p->waiting[p->n_waiting++] = q;
	if (!p->n_waiting)
		claim_done(d, p);
}

static struct pending *claim_of(struct names *n, const char *name)
{
	for (struct pending *p = n ? n->pending : NULL; p; p = p->next)
		if (p->kind == PENDING_CLAIM && !strcmp(p->name, name))
			return p;
	return NULL;
}

int names_create(struct daemon *d, const struct creds *who, const struct names_create_req *req,
		 const struct names_answer *a)
{
	struct names *n = names_of(d);
	if (!n)
		return -ENOMEM;
	struct mesh *m = cluster_mesh(d);
	struct pending *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->id = ++n->next_id;
	p->answer = *a;
	p->who = *who;
	snprintf(p->name, sizeof(p->name), "%s", req->name);
	p->ring_bytes = req->ring_bytes;
	p->max_msg = req->max_msg;
	p->stall_ms = req->stall_ms;
	p->mode = req->mode;
	p->member_slots = req->member_slots;
	int err = 0;
	if (req->node[0] && strcmp(req->node, d->node)) {
		/* Another node is to be its master: ask it. */
		struct mesh_peer *t = m ? mesh_find(m, req->node) : NULL;
		if (!t || t->state != MESH_UP) {
			err = -EHOSTUNREACH;
			goto now;
		}
		if (names_taken(d, req->name)) {
			err = -EEXIST;
			goto now;
		}
		struct wire_create c = {.id = p->id,
					.ring_bytes = req->ring_bytes,
					.max_msg = req->max_msg,
					.stall_ms = req->stall_ms,
					.mode = req->mode,
					.member_slots = req->member_slots,
					.uid = (uint32_t)who->uid,
					.gid = (uint32_t)who->gid};
		snprintf(c.name, sizeof(c.name), "%s", req->name);
		if ((err = mesh_send(t, WIRE_CREATE, &c, sizeof(c))))
			goto now;
		p->kind = PENDING_REMOTE;
		p->target = t;
		p->since = ring_now_ns();
		p->next = n->pending;
		n->pending = p;
		return NAMES_LATER;
	}
	if (names_taken(d, req->name) || claim_of(n, req->name)) {
		err = -EEXIST;
		goto now;
	}
	p->kind = PENDING_CLAIM;
	struct wire_claim c = {.id = p->id};
	snprintf(c.name, sizeof(c.name), "%s", req->name);
	for (struct mesh_peer *q = m ? mesh_peers(m) : NULL; q; q = q->next)
		if (q->state == MESH_UP && p->n_waiting < NAMES_MAX_PEERS &&
		    !mesh_send(q, WIRE_CLAIM, &c, sizeof(c)))
			p->waiting[p->n_waiting++] = q;
	if (!p->n_waiting) {
		struct group *g;
		err = create_here(d, p, &g); /* nobody else to ask */
		goto now;
	}
	p->since = ring_now_ns();
	p->next = n->pending;
	n->pending = p;
	return NAMES_LATER;
now:
	free(p);
	return err;
}

int names_delete(struct daemon *d, const struct creds *who, const char *name,
		 const struct names_answer *a)
{
	struct names *n = names_of(d);
	struct remote_group *r = remote_find(n, name);
	struct mesh *m = cluster_mesh(d);
	if (!r)
		return -ENOENT;
	if (who->uid != 0 && who->uid != r->info.uid)
		return -EACCES;
	struct mesh_peer *t = m ? mesh_find(m, r->info.master) : NULL;
	if (!t || t->state != MESH_UP)
		return -EHOSTUNREACH;
	struct pending *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->id = ++n->next_id;
	p->kind = PENDING_REMOTE;
	p->answer = *a;
	p->target = t;
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->since = ring_now_ns();
	struct wire_delete w = {.id = p->id, .uid = (uint32_t)who->uid, .gid = (uint32_t)who->gid};
	snprintf(w.name, sizeof(w.name), "%s", name);
	int err = mesh_send(t, WIRE_DELETE, &w, sizeof(w));
	if (err) {
		free(p);
		return err;
	}
	p->next = n->pending;
	n->pending = p;
	return NAMES_LATER;
}

int names_delete_here(struct daemon *d, const struct creds *who, struct group *g,
		      const struct names_answer *a)
{
	struct names *n = names_of(d);
	char name[256];
	snprintf(name, sizeof(name), "%s", g->name);
	int err = registry_delete(d, who, g);
	if (err)
		return err;
	if (a->peer)
		pgd_log("group %s deleted for uid %u of node %s", name, (unsigned)who->uid,
			a->peer->node);
	else
		pgd_log("group %s deleted for uid %u", name, (unsigned)who->uid);
	/* Answered once every node up knows it is gone: a client told
	 * "deleted" may at once create the name through any of them. */
	struct pending *p = n ? calloc(1, sizeof(*p)) : NULL;
	if (!p) {
		names_deleted(d, name);
		return 0;
	}
	p->id = ++n->next_id;
	p->kind = PENDING_CLAIM;
	p->acking = true;
	p->answer = *a;
	snprintf(p->name, sizeof(p->name), "%s", name);
	struct wire_name w = {.ack = p->id};
	snprintf(w.name, sizeof(w.name), "%s", name);
	struct mesh *m = cluster_mesh(d);
	for (struct mesh_peer *q = m ? mesh_peers(m) : NULL; q; q = q->next)
		if (q->state == MESH_UP && p->n_waiting < NAMES_MAX_PEERS &&
		    !mesh_send(q, WIRE_GONE, &w, sizeof(w)))
			p->waiting[p->n_waiting++] = q;
	if (!p->n_waiting) {
		free(p);
		return 0;
	}
	p->since = ring_now_ns();
	p->next = n->pending;
	n->pending = p;
	return NAMES_LATER;
}

/* Of two groups with one name, the one that stays (the older; at equal
 * times, the smaller master name): true if a beats b. */
static bool older(const struct wire_group *a, const struct wire_group *b)
{
	if (a->created_ns != b->created_ns)
		return a->created_ns < b->created_ns;
	return strcmp(a->master, b->master) < 0;
}

static int on_group(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	struct names *n = names_of(d);
	struct wire_group w;
	if (!n)
		return -ENOMEM;
	if (wire_group_parse(f, &w) || strcmp(w.master, from->node))
		return -EBADMSG; /* a node speaks only for its own groups */
	if (w.ack)
		send_reply(from, w.ack, 0); /* known here now (whatever we keep) */
	w.ack = 0;
	struct group *g = registry_find(d, w.name);
	if (g) {
		struct wire_group mine;
		group_info(d, g, &mine);
		if (older(&mine, &w))
			return 0; /* ours stays; our GROUP tells them */
		pgd_log("group %s was created on both sides of a partition: %s's (older) stays, "
			"ours is deleted",
			w.name, w.master);
		struct creds root = {0};
		registry_delete(d, &root, g);
		names_deleted(d, w.name);
	}
	struct remote_group *r = remote_of(n, w.name, w.master);
	if (r) {
		r->info = w;
		return 0;
	}
	if (!(r = calloc(1, sizeof(*r))))
		return -ENOMEM;
	r->info = w;
	r->serial = ++d->next_group_serial;
	r->next = n->groups;
	n->groups = r;
	return 0;
}

static void remote_drop(struct names *n, struct remote_group *r)
{
	for (struct remote_group **pp = &n->groups; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	free(r);
}

static int on_gone(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	struct wire_name w;
	if (wire_name_parse(f, &w))
		return -EBADMSG;
	if (w.ack)
		send_reply(from, w.ack, 0);
	struct remote_group *r = remote_of(d->names, w.name, from->node);
	if (r) {
		remote_drop(d->names, r);
		replica_name_gone(d, w.name, from);
	}
	return 0;
}

static int on_claim(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	struct wire_claim c;
	if (wire_claim_parse(f, &c))
		return -EBADMSG;
	int status = 0;
	struct pending *mine = claim_of(d->names, c.name);
	if (names_taken(d, c.name))
		status = -EEXIST;
	else if (mine && strcmp(d->node, from->node) < 0)
		status = -EEXIST; /* both claim it: the smaller name wins, and that is us */
	else if (mine)
		mine->refused = true; /* they win; their refusal of ours is on its way too */
	send_reply(from, c.id, status);
	return 0;
}

static int on_create(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	struct wire_create c;
	if (wire_create_parse(f, &c))
		return -EBADMSG;
	/* Rights as the asking node took them; the quota is its uid's here. */
	struct creds who = {.uid = c.uid, .gid = c.gid};
	struct names_create_req req = {.ring_bytes = c.ring_bytes,
				       .max_msg = c.max_msg,
				       .stall_ms = c.stall_ms,
				       .mode = c.mode,
				       .member_slots = c.member_slots};
	snprintf(req.name, sizeof(req.name), "%s", c.name);
	struct names_answer a = {.peer = from, .peer_id = c.id};
	int err = names_create(d, &who, &req, &a);
	if (err != NAMES_LATER)
		send_reply(from, c.id, err);
	return 0;
}

static int on_delete(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	struct wire_delete w;
	if (wire_delete_parse(f, &w))
		return -EBADMSG;
	struct group *g = registry_find(d, w.name);
	struct creds who = {.uid = w.uid, .gid = w.gid};
	struct names_answer a = {.peer = from, .peer_id = w.id};
	int err = g ? names_delete_here(d, &who, g, &a) : -ENOENT;
	if (err != NAMES_LATER)
		send_reply(from, w.id, err);
	return 0;
}

static int on_reply(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	struct wire_reply r;
	if (wire_reply_parse(f, &r))
		return -EBADMSG;
	struct names *n = d->names;
	for (struct pending *p = n ? n->pending : NULL; p; p = p->next) {
		if (p->id != r.id)
			continue;
		if (p->kind == PENDING_REMOTE) {
			if (p->target != from)
				return 0;
			answer(d, &p->answer, r.status);
			pending_drop(n, p);
			return 0;
		}
		for (unsigned i = 0; i < p->n_waiting; i++) {
			if (p->waiting[i] != from)
				continue;
			p->waiting[i] = p->waiting[--p->n_waiting];
			p->refused |= r.status != 0;
			if (!p->n_waiting)
				claim_done(d, p);
			return 0;
		}
		return 0;
	}
	return 0; /* an answer to something we no longer wait for */
}

int names_frame(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	switch (f->type) {
	case WIRE_GROUP:
		return on_group(d, from, f);
	case WIRE_GONE:
		return on_gone(d, from, f);
	case WIRE_CLAIM:
		return on_claim(d, from, f);
	case WIRE_CREATE:
		return on_create(d, from, f);
	case WIRE_DELETE:
		return on_delete(d, from, f);
	case WIRE_REPLY:
		return on_reply(d, from, f);
	}
	return -EPROTO;
}

void names_peer_up(struct daemon *d, struct mesh_peer *p)
{
	for (struct group *g = d->groups; g; g = g->next) {
		if (g->replica || g->outbound)
			continue; /* another node's: it says so itself */
		struct wire_group w;
		group_info(d, g, &w);
		mesh_send(p, WIRE_GROUP, &w, sizeof(w));
	}
}

void names_peer_down(struct daemon *d, struct mesh_peer *p)
{
	struct names *n = d->names;
	if (!n)
		return;
	for (struct remote_group *r = n->groups, *next; r; r = next) {
		next = r->next;
		if (!strcmp(r->info.master, p->node))
			remote_drop(n, r);
	}
	for (struct pending *q = n->pending, *next; q; q = next) {
		next = q->next;
		if (q->answer.peer == p)
			q->answer.peer = NULL, q->answer.session = 0; /* nobody to tell */
		if (q->kind == PENDING_REMOTE && q->target == p) {
			answer(d, &q->answer, -EHOSTUNREACH);
			pending_drop(n, q);
			continue;
		}
		for (unsigned i = 0; i < q->n_waiting; i++)
			if (q->waiting[i] == p) {
				q->waiting[i] = q->waiting[--q->n_waiting];
				if (!q->n_waiting)
					claim_done(d, q);
				break;
			}
	}
}

/* One listing line: the info, its nodes' lags, the name; false when it
 * and the TRUNCATED that may have to follow do not fit. */
static bool list_put(struct ctl_out *out, const struct ctl_group_info *info,
		     const struct ctl_node_lag *lags, const char *name)
{
	static uint8_t v[sizeof(struct ctl_group_info) +
			 CTL_NODE_LAGS_MAX * sizeof(struct ctl_node_lag) + 256];
	size_t len = strlen(name), n = info->n_nodes * sizeof(*lags);
	size_t total = sizeof(*info) + n + len;
	if (out->len + 2 * sizeof(struct ctl_tlv) + total + 8 + 3 > CTL_MAX_BYTES)
		return false;
	memcpy(v, info, sizeof(*info));
	memcpy(v + sizeof(*info), lags, n);
	memcpy(v + sizeof(*info) + n, name, len);
	return ctl_put(out, CTL_T_GROUP, v, total);
}

static void local_info(struct daemon *d, struct group *g, struct ctl_group_info *info,
		       struct ctl_node_lag *lags)
{
	memset(info, 0, sizeof(*info));
	info->n_nodes = replica_node_lags(g, lags, CTL_NODE_LAGS_MAX);
	info->ring_bytes = g->ring.capacity;
	info->lag = ring_lag(&g->ring);
	info->tail = atomic_load(&g->ring.hdr->tail); /* any sender's to write: shown only */
	info->delivered = g->delivered;
	info->evictions = g->evictions;
	info->cancels = g->cancels;
	uint32_t slot;
	ring_min_cursor(&g->ring, &slot);
	for (const struct member *m = g->members; m && slot != UINT32_MAX; m = m->next_in_group)
		if (m->slot == slot && !m->evicted) {
			info->slowest_pid = m->session->pid;
			break;
		}
	info->fill = info->lag > g->ring.order_slots ? g->ring.order_slots : info->lag;
	info->members = g->n_members + g->n_rmembers; /* the master sees every node's */
	info->mode = g->mode;
	info->owner = (uint32_t)g->uid;
	info->memory = registry_resident_bytes(g);
	snprintf(info->master, sizeof(info->master), "%s", d->node);
}

void names_list(struct daemon *d, const struct creds *who, struct ctl_out *out, uint64_t below)
{
	/* Both lists are newest first, serials from one counter: merge them. */
	struct group *g = d->groups;
	struct remote_group *r = d->names ? d->names->groups : NULL;
	while (g && (g->serial >= below || g->replica || g->outbound))
		g = g->next;
	while (r && r->serial >= below)
		r = r->next;
	while (g || r) {
		bool local = g && (!r || g->serial > r->serial);
		struct ctl_group_info info;
		static struct ctl_node_lag lags[CTL_NODE_LAGS_MAX];
		uint64_t serial;
		const char *name;
		int denied;
		if (local) {
			local_info(d, g, &info, lags);
			denied = rights_check(who, g->uid, g->gid, g->mode, RIGHT_READ);
			serial = g->serial;
			name = g->name;
			do /* another node's groups are listed as theirs */
				g = g->next;
			while (g && (g->replica || g->outbound));
		} else {
			memset(&info, 0, sizeof(info));
			info.ring_bytes = r->info.ring_bytes;
			info.mode = r->info.mode;
			info.owner = r->info.uid;
			snprintf(info.master, sizeof(info.master), "%s", r->info.master);
			/* One line per name: the group that stays. */
			denied = remote_find(d->names, r->info.name) != r ||
				 rights_check(who, r->info.uid, r->info.gid, r->info.mode, RIGHT_READ);
			serial = r->serial;
			name = r->info.name;
			r = r->next;
		}
		if (denied)
			continue; /* listing is reading */
		if (!list_put(out, &info, lags, name)) {
			ctl_put_u64(out, CTL_T_TRUNCATED, below);
			return;
		}
		below = serial;
	}
}

void names_tick(struct daemon *d)
{
	struct names *n = d->names;
	int64_t now = ring_now_ns();
	for (struct pending *p = n ? n->pending : NULL; p; p = p->next) {
		if (now - p->since < PGD_NODE_ANSWER_NS)
			continue;
		/* Those that have not answered are lost: closing their links
		 * settles this request as for any node that goes (peer_down). */
		p->since = now;
		if (p->kind == PENDING_REMOTE && p->target) {
			pgd_log("node %s did not answer for group %s: closing its link",
				p->target->node, p->name);
			mesh_drop(p->target, -ETIMEDOUT);
		}
		for (unsigned i = 0; i < p->n_waiting; i++) {
			pgd_log("node %s did not answer for group %s: closing its link",
				p->waiting[i]->node, p->name);
			mesh_drop(p->waiting[i], -ETIMEDOUT);
		}
	}
}

void names_forget_peers(struct daemon *d)
{
	struct names *n = d->names;
	/* Requests waiting for other nodes fail now: the links are going. */
	while (n && n->pending) {
		struct pending *p = n->pending;
		n->pending = p->next;
		if (!p->answer.peer)
			answer(d, &p->answer, -EHOSTUNREACH);
		free(p);
	}
	while (n && n->groups)
		remote_drop(n, n->groups);
}

void names_destroy(struct daemon *d)
{
	struct names *n = d->names;
	if (!n)
		return;
	while (n->groups)
		remote_drop(n, n->groups);
	while (n->pending) {
		struct pending *p = n->pending;
		n->pending = p->next;
		free(p);
	}
	free(n);
	d->names = NULL;
}

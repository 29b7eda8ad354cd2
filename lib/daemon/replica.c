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
#include "timing.h"

/* The master's stream of one group to one node. */
struct stream {
	struct group *g;
	struct mesh_peer *peer;
	uint32_t id;
	uint32_t slot, word;
	struct ring_file page; /* on the daemon's own shelf */
	struct ring_reader rd;
	uint32_t announced; /* from_node indexes the node was told (bit per index) */
	uint64_t seen_pos;  /* its cursor when last seen moving, and when */
	int64_t seen_at;
	/* Flow control: records sent, and how many the node says its
	 * members have read; no more than a window ahead. */
	uint64_t shipped, credit;
	struct stream *next;
};

/* The master's end of a forward: messages from senders on one node. */
struct fwd_in {
	struct group *g;
	struct mesh_peer *peer;
	uint32_t id;
	uint32_t node_idx;   /* the ring's from_node for that node */
	uint64_t last;       /* highest origin taken: a repeat is dropped */
	uint64_t upto;       /* every origin below is in the order */
	uint64_t acked;      /* what the last FACK said */
	bool dirty;          /* on repl->dirty */
	struct fwd_in *next, *next_dirty;
};

/* The forwarding node's end: the outbound ring's reader, the daemon. */
struct outbound {
	char master[WIRE_NODE_MAX];
	struct mesh_peer *peer;
	uint64_t open_id;
	uint32_t fwd;        /* 0 until FOPENED */
	uint32_t slot, word;
	struct ring_file page; /* on the daemon's own shelf */
	struct ring_reader rd;
	uint64_t sent;       /* next position to send; below it, sent and not acked */
};

/* A join asked of the master, not yet answered or positioned. */
struct rjoin {
	uint64_t id;
	int64_t since; /* asked then: an unanswered master is lost */
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

/* A leave (or a pg_close) here of a replica's member, answered once the
 * master's LEFT for it is in the order: as on the master, pg_leave and
 * pg_close return with the leave placed. */
struct rleave {
	uint64_t session;
	uint32_t req_id;
	bool bye; /* a pg_close: session_bye_done once its last leave is placed */
	int32_t pid;
	int64_t since;
	struct rleave *next;
};

struct replica {
	bool ended; /* our node's membership was dropped: no new joins here */
	/* Flow control: the replica's tail when the stream began (its records
	 * are dense from there), records received, and the last credit sent. */
	uint64_t base, received, credited;
	char master[WIRE_NODE_MAX];
	struct mesh_peer *peer;
	uint32_t stream; /* 0 until SUBBED */
	uint64_t sub_id;
	struct rjoin *joins;
	struct rleave *leaves; /* oldest first */
};

/* A MEMBERS asked of a master for a client here. */
struct rask {
	uint64_t id;
	int64_t since;
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
	struct fwd_in *dirty; /* forwards with an ack to send */
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

/* The group's master, up: 0 and what it said of the group, or -ENOENT
 * (no such group), -EHOSTUNREACH (its master is not up). */
static int master_of(struct daemon *d, const char *name, const struct wire_group **info,
		     struct mesh_peer **peer)
{
	struct mesh *mesh = cluster_mesh(d);
	*info = names_info(d, name);
	*peer = *info && mesh ? mesh_find(mesh, (*info)->master) : NULL;
	if (!*info)
		return -ENOENT;
	if (!*peer || (*peer)->state != MESH_UP || !repl_of(d))
		return -EHOSTUNREACH;
	return 0;
}

/* A member slot of the daemon's own in g (a stream's, the forwarder's),
 * read with rd from the tail on. */
static int own_slot(struct daemon *d, struct group *g, uint32_t *slot, uint32_t *word,
		    struct ring_file *page, struct ring_reader *rd)
{
	uint64_t start;
	/* On the shelf of its class: readable only by those who may use g. */
	int err = ring_member_add_on(&g->ring, 0, slot, word, &start, &g->dir_class->node_pages,
				     page);
	if (err)
		return err;
	if (!(rd->page = ring_page_map(page->fd, page->off, true))) {
		ring_member_remove(&g->ring, *slot);
		ring_file_release(page, RING_PAGE);
		return -ENOMEM;
	}
	rd->pos = start;
	rd->slot = *slot;
	rd->state_word = *word;
	return 0;
}

/* ---- the master's side ---- */

static void stream_free(struct daemon *d, struct stream *st)
{
	if (st->rd.page)
		ring_page_unmap(st->rd.page);
	ring_member_remove(&st->g->ring, st->slot);
	ring_file_release(&st->page, RING_PAGE);
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

/* How far a stream may run ahead of what its node's members have read:
 * two rings' worth of records (one in the replica, one on the way), so a
 * node that keeps up never waits for credit, and one that does not holds
 * the ring like a slow member (its own node evicts the member that lags
 * past the stall limit; the master, a node that lags past it). */
static uint64_t window(const struct group *g)
{
	return 2 * g->ring.order_slots;
}

static bool window_open(const struct stream *st)
{
	return st->shipped - st->credit < window(st->g);
}

static void on_wake(void *arg, int res);

/* Caught up: sleep on the ring's wake word, unless a record came meanwhile. */
static bool arm(struct daemon *d, struct group *g)
{
	struct outbound *o = g->outbound;
	if (g->ship_armed || (!g->streams && !(o && o->fwd)) || !cluster_mesh(d))
		return false;
	struct ring *r = &g->ring;
	uint32_t seen = atomic_load(&r->hdr->wake_seq);
	/* Say we sleep before the last look: a commit after it wakes us
	 * (ring_wake reads our page after its decision). */
	for (struct stream *st = g->streams; st; st = st->next)
		atomic_store(&st->rd.page->sleeping, 1);
	if (o)
		atomic_store(&o->rd.page->sleeping, 1);
	for (struct stream *st = g->streams; st; st = st->next) {
		struct ring_view v;
		/* A closed window waits for CREDIT, not for records. */
		if (window_open(st) && ring_read(r, &st->rd, &v) != 0)
			return true; /* something to ship (or to see fail) */
	}
	if (o && o->fwd) {
		struct ring_view v;
		o->rd.pos = o->sent;
		if (ring_read(r, &o->rd, &v) != 0)
			return true;
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

/* A long batch publishes the stream's cursor this often (records), so
 * senders waiting for room need not wait for the whole batch. */
#define STREAM_RELEASE_EVERY 256

/* Ship what st has not sent: false when the link is full (the tick and
 * the link's drain retry), the window is (a CREDIT reopens it), or the
 * stream ended. */
static bool ship_stream(struct daemon *d, struct stream *st)
{
	struct ring *r = &st->g->ring;
	struct ring_view v;
	int err = 0;
	bool full = false, released = false;
	uint64_t from = st->rd.pos;
	while (window_open(st) && (err = ring_read(r, &st->rd, &v)) == 1) {
		if (v.from_node && v.from_node < RING_NODES && !(st->announced & (1u << v.from_node))) {
			/* Which node that index means, before the first record
			 * that names it. */
			struct wire_nodeidx n = {.stream = st->id, .index = v.from_node};
			memcpy(n.node, r->dir->nodes[v.from_node], sizeof(n.node));
			n.node[sizeof(n.node) - 1] = 0;
			if (mesh_send(st->peer, WIRE_NODEIDX, &n, sizeof(n))) {
				full = true;
				break;
			}
			st->announced |= 1u << v.from_node;
		}
		struct wire_rec h = {.stream = st->id,
				     .kind = v.kind,
				     .flags = v.flags,
				     .seq = v.seq,
				     .from_pid = v.from_pid,
				     .from_node = v.from_node,
				     .len = v.len};
		if (mesh_send2(st->peer, WIRE_REC, &h, sizeof(h), v.payload, v.len)) {
			full = true; /* the link is full (or closing): the tick goes on */
			break;
		}
		st->shipped++;
		st->rd.pos = v.next_pos; /* ours; published below */
		if (st->rd.pos - from >= STREAM_RELEASE_EVERY) {
			ring_release(r, &st->rd, st->rd.pos); /* room for the senders */
			from = st->rd.pos;
			released = true;
		}
	}
	if (st->rd.pos != from || released) {
		/* Once per batch, not per record: the cursor's CAS and the
		 * clock cost more than the rest of a small record's shipping. */
		ring_release(r, &st->rd, st->rd.pos);
		st->seen_pos = st->rd.pos;
		st->seen_at = ring_now_ns();
	}
	if (full)
		return false;
	if (!window_open(st))
		return false;
	if (err < 0) {
		/* Our slot was evicted (the node lagged past the stall limit)
		 * or the ring is corrupt: that node's membership ends. */
		pgd_log("group %s: stream to %s ends: %s", st->g->name, st->peer->node,
			strerror(-err));
		return false;
	}
	return true;
}

static void ship_outbound(struct daemon *d, struct group *g);

void replica_ship(struct daemon *d, struct group *g)
{
	/* Awake (woken, or a record arrived): producers need not wake us
	 * while we ship. A wait still armed keeps the flag up: it is what
	 * makes a commit end that wait. */
	if (!g->ship_armed) {
		for (struct stream *st = g->streams; st; st = st->next)
			atomic_store(&st->rd.page->sleeping, 0);
		if (g->outbound)
			atomic_store(&g->outbound->rd.page->sleeping, 0);
	}
	for (int round = 0; round < 4; round++) {
		for (struct stream *st = g->streams; st; st = st->next)
			ship_stream(d, st);
		if (g->outbound)
			ship_outbound(d, g);
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
			st->g = g;
			st->peer = from;
			st->id = ++rp->next_stream;
			st->page = RING_FILE_NONE;
			rep.status = own_slot(d, g, &st->slot, &st->word, &st->page, &st->rd);
			if (rep.status) {
				free(st);
				st = NULL;
			} else {
				st->seen_pos = st->rd.pos;
				st->seen_at = ring_now_ns();
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

int replica_evict_slot(struct daemon *d, struct group *g, uint32_t slot, bool asked)
{
	struct stream *st = g->streams;
	while (st && st->slot != slot)
		st = st->next;
	if (!st)
		return -ESRCH;
	/* Stalled: no progress for the stall limit while the ring has more
	 * for it (a node that keeps up with an idle group is not late). */
	int64_t now = ring_now_ns();
	bool behind = st->rd.pos < atomic_load(&g->ring.hdr->tail);
	if (!behind)
		st->seen_at = now;
	/* Waiting for credit, the node's own rule goes first: it evicts the
	 * member of its own that lags past the stall limit, and its credit
	 * comes; only a node that does not is dropped, a few ticks later. */
	int64_t limit = (int64_t)g->ring.stall_ms * PG_MS + (window_open(st) ? 0 : 4 * PGD_TICK_NS);
	if (now - st->seen_at < limit)
		return -EAGAIN;
	pgd_log("group %s: node %s lagged past the stall limit (%u ms): its members are evicted",
		g->name, st->peer->node, g->ring.stall_ms);
	(void)asked;
	struct wire_unsub e = {.stream = st->id};
	mesh_send(st->peer, WIRE_EVICTED, &e, sizeof(e));
	/* Out of the order for everyone: LEFT, as for any evicted member. */
	for (struct rmember *m = g->rmembers, *mn; m; m = mn) {
		mn = m->next;
		if (!strcmp(m->node, st->peer->node))
			registry_rleave(d, g, st->peer->node, m->pid, RING_REC_LEFT);
	}
	stream_drop(d, st);
	return 0;
}

static int on_credit(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	struct wire_fack c;
	if (wire_fack_parse(f, &c) || f->type != WIRE_CREDIT)
		return -EBADMSG;
	for (struct group *g = d->groups; g; g = g->next)
		for (struct stream *st = g->streams; st; st = st->next) {
			if (st->peer != from || st->id != c.fwd)
				continue;
			if (c.upto > st->shipped)
				return -EBADMSG; /* read more than was sent */
			if (c.upto > st->credit) {
				bool was_closed = !window_open(st);
				st->credit = c.upto;
				if (was_closed)
					replica_ship(d, g);
			}
			return 0;
		}
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
	/* An answer is a control frame: it goes, or the link does. */
	static uint8_t frame[sizeof(struct wire_members) + sizeof(list)];
	struct wire_members h = {.id = id, .status = status, .n = status ? 0 : n, .seq = seq};
	memcpy(frame, &h, sizeof(h));
	memcpy(frame + sizeof(h), list, h.n * sizeof(list[0]));
	return mesh_send(to, WIRE_MEMBER_LIST, frame,
			 (uint32_t)(sizeof(h) + h.n * sizeof(list[0])));
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

/* ---- senders on other nodes: the master's end ---- */

/* The ring's from_node index of `node` (written into the directory once):
 * 1.. RING_NODES-1, or 0 when the table is full (shown as the master's). */
static uint32_t node_index(struct group *g, const char *node)
{
	struct ring_dir_hdr *dir = g->ring.dir;
	for (uint32_t i = 1; i < RING_NODES; i++) {
		if (!strncmp(dir->nodes[i], node, sizeof(dir->nodes[i])))
			return i;
		if (!dir->nodes[i][0]) {
			snprintf(dir->nodes[i], sizeof(dir->nodes[i]), "%s", node);
			return i;
		}
	}
	return 0;
}

static int on_fopen(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	struct wire_claim c;
	if (wire_ask_parse(f, WIRE_FOPEN, &c))
		return -EBADMSG;
	struct wire_subbed rep = {.id = c.id};
	struct group *g = registry_find(d, c.name);
	struct repl *rp = repl_of(d);
	struct fwd_in *fw = NULL;
	if (!g || !rp)
		rep.status = g ? -ENOMEM : -ENOENT;
	for (fw = g ? g->fwds : NULL; fw; fw = fw->next)
		if (fw->peer == from)
			break;
	if (!rep.status && !fw) {
		if (!(fw = calloc(1, sizeof(*fw)))) {
			rep.status = -ENOMEM;
		} else {
			fw->g = g;
			fw->peer = from;
			fw->id = ++rp->next_stream;
			fw->node_idx = node_index(g, from->node);
			fw->next = g->fwds;
			g->fwds = fw;
		}
	}
	if (fw)
		rep.stream = fw->id;
	mesh_send(from, WIRE_FOPENED, &rep, sizeof(rep));
	return 0;
}

static struct fwd_in *fwd_by_id(struct daemon *d, struct mesh_peer *from, uint32_t id)
{
	for (struct group *g = d->groups; g; g = g->next)
		for (struct fwd_in *fw = g->fwds; fw; fw = fw->next)
			if (fw->peer == from && fw->id == id)
				return fw;
	return NULL;
}

static void mark_dirty(struct daemon *d, struct fwd_in *fw)
{
	struct repl *rp = repl_of(d);
	if (fw->dirty || !rp)
		return;
	fw->dirty = true;
	fw->next_dirty = rp->dirty;
	rp->dirty = fw;
}

static int on_fwd(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	struct wire_fwd w;
	const uint8_t *payload;
	if (wire_fwd_parse(f, &w, &payload))
		return -EBADMSG;
	struct fwd_in *fw = fwd_by_id(d, from, w.fwd);
	if (!fw)
		return 0; /* a forward of a group deleted meanwhile */
	if (w.len > fw->g->ring.max_msg)
		return -EBADMSG;
	if (fw->last && w.origin <= fw->last) {
		mark_dirty(d, fw); /* a repeat: it is in the order already */
		return 0;
	}
	fw->last = w.origin;
	struct pending_event e = {.kind = RING_REC_MSG,
				  .flags = w.flags,
				  .pid = w.from_pid,
				  .len = w.len,
				  .data = (uint8_t *)payload,
				  .from_node = fw->node_idx,
				  .fwd = fw->id,
				  .origin = w.origin};
	/* Into the order now, or queued behind what waits for room: a master
	 * queue is bounded by the senders' node's outbound ring (it sends no
	 * more than that ring holds unacked). */
	registry_post(d, fw->g, &e, NULL);
	return 0;
}

void replica_sequenced(struct daemon *d, struct group *g, const struct pending_event *e)
{
	for (struct fwd_in *fw = g->fwds; fw; fw = fw->next)
		if (fw->id == e->fwd) {
			if (e->origin + 1 > fw->upto)
				fw->upto = e->origin + 1;
			mark_dirty(d, fw);
			return;
		}
}

void replica_flush(struct daemon *d)
{
	struct repl *rp = d->repl;
	while (rp && rp->dirty) {
		struct fwd_in *fw = rp->dirty;
		rp->dirty = fw->next_dirty;
		fw->dirty = false;
		if (fw->upto == fw->acked || !fw->peer)
			continue;
		struct wire_fack a = {.fwd = fw->id, .upto = fw->upto};
		if (mesh_send(fw->peer, WIRE_FACK, &a, sizeof(a)) == 0)
			fw->acked = fw->upto;
	}
}

static void fwd_free(struct daemon *d, struct fwd_in *fw)
{
	struct repl *rp = d->repl;
	for (struct fwd_in **p = rp ? &rp->dirty : NULL; p && *p; p = &(*p)->next_dirty)
		if (*p == fw) {
			*p = fw->next_dirty;
			break;
		}
	free(fw);
}

/* ---- senders on other nodes: the forwarding node's end ---- */

/* Send what the outbound ring holds past what was sent: FWD frames, in
 * order, each tagged with its place here; released on the master's ack. */
static void ship_outbound(struct daemon *d, struct group *g)
{
	struct outbound *o = g->outbound;
	if (!o->fwd || !o->peer)
		return;
	struct ring_view v;
	int err;
	o->rd.pos = o->sent;
	while ((err = ring_read(&g->ring, &o->rd, &v)) == 1) {
		struct wire_fwd w = {.fwd = o->fwd,
				     .flags = v.flags & RING_F_ESEND,
				     .origin = v.pos,
				     .from_pid = v.from_pid,
				     .len = v.len};
		if (v.kind != RING_REC_MSG || v.from_pid <= 0) {
			o->sent = o->rd.pos = v.next_pos; /* nothing of a sender's */
			continue;
		}
		if (mesh_send2(o->peer, WIRE_FWD, &w, sizeof(w), v.payload, v.len))
			break; /* the link is full: the tick goes on */
		o->sent = o->rd.pos = v.next_pos;
	}
	if (err < 0)
		pgd_log("group %s: its outbound ring cannot be read: %s", g->name, strerror(-err));
}

static int on_fopened(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	struct wire_subbed s;
	if (wire_subbed_parse(f, &s) || f->type != WIRE_FOPENED)
		return -EBADMSG;
	for (struct group *g = d->groups; g; g = g->next) {
		struct outbound *o = g->outbound;
		if (!o || o->peer != from || o->open_id != s.id)
			continue;
		if (s.status) {
			pgd_log("group %s: its master %s refused our senders: %s", g->name, from->node,
				strerror(-s.status));
			return 0;
		}
		o->fwd = s.stream;
		replica_ship(d, g);
		return 0;
	}
	return 0;
}

static int on_fack(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	struct wire_fack a;
	if (wire_fack_parse(f, &a))
		return -EBADMSG;
	for (struct group *g = d->groups; g; g = g->next) {
		struct outbound *o = g->outbound;
		if (!o || o->peer != from || o->fwd != a.fwd)
			continue;
		/* Only what was sent can have been sequenced. */
		if (a.upto > o->sent)
			return -EBADMSG;
		/* Sequenced: its room goes back to the senders here. */
		ring_release(&g->ring, &o->rd, a.upto);
		o->rd.pos = o->sent;
		return 0;
	}
	return 0;
}

int replica_outbound(struct daemon *d, const struct creds *who, const char *name,
		     struct group **out)
{
	struct group *g = registry_find_outbound(d, name);
	if (g) {
		*out = g;
		return 0;
	}
	const struct wire_group *info;
	struct mesh_peer *p;
	int err = master_of(d, name, &info, &p);
	if (err)
		return err;
	struct repl *rp = d->repl;
	struct outbound *o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->page = RING_FILE_NONE;
	/* The senders' ring is theirs: the first sender's uid pays for it,
	 * the group's mode and owner say who may use it. */
	struct creds owner = {.uid = (uid_t)info->uid, .gid = (gid_t)info->gid};
	err = registry_create(d, who, &owner, name, info->ring_bytes, info->max_msg,
			      info->stall_ms, 0, info->mode, &g);
	if (err) {
		free(o);
		return err;
	}
	g->outbound = o;
	if ((err = own_slot(d, g, &o->slot, &o->word, &o->page, &o->rd))) {
		registry_drop(d, g);
		return err;
	}
	o->sent = o->rd.pos;
	snprintf(o->master, sizeof(o->master), "%s", info->master);
	o->peer = p;
	o->open_id = ++rp->next_id;
	struct wire_claim c = {.id = o->open_id};
	snprintf(c.name, sizeof(c.name), "%s", name);
	if ((err = mesh_send(p, WIRE_FOPEN, &c, sizeof(c)))) {
		registry_drop(d, g);
		return err;
	}
	*out = g;
	return 0;
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

/* A leave is placed (or given up on): its caller hears it. */
static void rleave_answer(struct daemon *d, struct group *g, struct rleave *l)
{
	for (struct rleave **p = &g->replica->leaves; *p; p = &(*p)->next)
		if (*p == l) {
			*p = l->next;
			break;
		}
	uint64_t session = l->session;
	uint32_t id = l->req_id;
	bool bye = l->bye;
	free(l);
	if (!bye) {
		session_answer(d, session, CTL_LEAVE, id, 0);
		return;
	}
	for (struct group *o = d->groups; o; o = o->next)
		for (struct rleave *x = o->replica ? o->replica->leaves : NULL; x; x = x->next)
			if (x->bye && x->session == session)
				return; /* more of its leaves to be placed */
	session_bye_done(d, session, id);
}

int replica_leave_wait(struct daemon *d, struct group *g, uint64_t session, uint32_t req_id,
		       int32_t pid, bool bye)
{
	struct replica *r = g->replica;
	if (!r->peer || r->peer->state != MESH_UP || r->ended)
		return 0; /* no master to place it: nothing to wait for */
	struct rleave *l = calloc(1, sizeof(*l));
	if (!l)
		return 0; /* answered now: the leave itself is done */
	*l = (struct rleave){.session = session,
			     .req_id = req_id,
			     .bye = bye,
			     .pid = pid,
			     .since = ring_now_ns()};
	struct rleave **p = &r->leaves;
	while (*p)
		p = &(*p)->next;
	*p = l;
	return NAMES_LATER;
}

void replica_ship_last(struct daemon *d, struct group *g)
{
	for (struct stream *st = g->streams; st; st = st->next)
		if (st->peer && st->peer->state == MESH_UP)
			ship_stream(d, st);
}

void replica_name_gone(struct daemon *d, const char *name, const struct mesh_peer *master)
{
	for (struct group *g = d->groups, *next; g; g = next) {
		next = g->next;
		bool theirs = (g->replica && g->replica->peer == master) ||
			      (g->outbound && g->outbound->peer == master);
		if (theirs && !strcmp(g->name, name))
			registry_drop(d, g);
	}
}

unsigned replica_node_lags(const struct group *g, struct ctl_node_lag *out, unsigned max)
{
	unsigned n = 0;
	uint64_t tail = atomic_load(&g->ring.hdr->tail);
	for (const struct stream *st = g->streams; st && n < max; st = st->next, n++) {
		memset(&out[n], 0, sizeof(out[n]));
		snprintf(out[n].node, sizeof(out[n].node), "%s", st->peer->node);
		/* The tail is any sender's to write: shown, never trusted. */
		out[n].unshipped = tail > st->rd.pos ? tail - st->rd.pos : 0;
		out[n].unread = st->shipped - st->credit;
	}
	return n;
}

void replica_member_freed(struct group *g, const struct member *m)
{
	for (struct rjoin *j = g->replica->joins; j; j = j->next)
		if (j->m == m)
			j->m = NULL;
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

static bool send_credit(struct daemon *d, struct group *g, bool all);

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
	if (h.from_node >= RING_NODES)
		return -EBADMSG;
	struct pending_event e = {
	    .kind = h.kind, .flags = h.flags, .pid = h.from_pid, .seq = h.seq, .from_node = h.from_node};
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
	g->replica->received++;
	int err = registry_post(d, g, &e, &pos);
	if (err == -ENOBUFS && registry_evict_blocker(d, g))
		err = registry_post(d, g, &e, &pos); /* the member that held it all is out */
	if (err == -ENOBUFS) {
		/* Nothing here to blame and no room: rather down than lose a
		 * record silently. */
		pgd_log("group %s: replica over its bound: down here", g->name);
		g->replica->ended = true;
		registry_drop(d, g);
		return 0;
	}
	/* A LEFT or EXITED of ours: the oldest leave of that pid is placed. */
	if ((h.kind == RING_REC_LEFT || h.kind == RING_REC_EXITED) && !strcmp(e.node, d->node))
		for (struct rleave *l = g->replica->leaves; l; l = l->next)
			if (l->pid == h.from_pid) {
				rleave_answer(d, g, l);
				break;
			}
	/* A JOINED of ours: the oldest join of that pid waiting for its place
	 * starts at it. One queued behind a member that holds the ring full
	 * has no place yet: that join waits for the next (rare). */
	if (h.kind == RING_REC_JOINED && !strcmp(e.node, d->node) && pos != UINT64_MAX) {
		for (struct rjoin *j = g->replica->joins; j; j = j->next) {
			if (j->positioned || j->pid != h.from_pid || !j->m)
				continue;
			struct ring_mpage *page = ring_page_map(j->m->page.fd, j->m->page.off, true);
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
	if (send_credit(d, g, false))
		cluster_poll_soon(d);
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

/* Our node lagged: every member here is evicted (the master wrote their
 * LEFT); the replica takes no new joins and goes when they are told. */
static int on_evicted(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	struct wire_unsub e;
	if (wire_unsub_parse(f, &e) || f->type != WIRE_EVICTED)
		return -EBADMSG;
	struct group *g = replica_by_stream(d, from, e.stream);
	if (!g)
		return 0;
	pgd_log("group %s: its master %s dropped this node for lagging", g->name, from->node);
	for (struct member *m = g->members; m; m = m->next_in_group)
		if (!m->evicted && ring_member_evict(&g->ring, m->slot, m->state_word)) {
			m->evicted = true;
			g->n_members--;
		}
	while (g->replica->joins)
		rjoin_fail(d, g, g->replica->joins, -ENOBUFS);
	g->replica->stream = 0;
	g->replica->ended = true;
	return 0;
}

static int on_nodeidx(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f)
{
	struct wire_nodeidx n;
	if (wire_nodeidx_parse(f, &n))
		return -EBADMSG;
	struct group *g = replica_by_stream(d, from, n.stream);
	if (g)
		memcpy(g->ring.dir->nodes[n.index], n.node, sizeof(g->ring.dir->nodes[n.index]));
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
	g->replica->base = atomic_load(&g->ring.hdr->tail);
	return 0;
}

/* Tell the master how much of its stream our members have read: at least
 * a quarter window at a time, or all of it when asked (the tick). True
 * when the stream is still far ahead of the members (poll again soon). */
static bool send_credit(struct daemon *d, struct group *g, bool all)
{
	struct replica *r = g->replica;
	if (!r || !r->stream || !r->peer || r->ended)
		return false;
	uint64_t w = window(g);
	/* The members cannot have read more than was received: below a
	 * quarter window received since the last credit there is nothing to
	 * send, and no scan of the members' cursors per record. */
	if (!all && r->received - r->credited < w / 4)
		return false;
	uint32_t slowest;
	uint64_t consumed = ring_min_cursor(&g->ring, &slowest) - r->base;
	if (consumed > r->received)
		consumed = r->received; /* a cursor past the tail is no reading */
	if (consumed > r->credited && (all || consumed - r->credited >= w / 4)) {
		struct wire_fack c = {.fwd = r->stream, .upto = consumed};
		if (mesh_send(r->peer, WIRE_CREDIT, &c, sizeof(c)) == 0)
			r->credited = consumed;
	}
	return r->received - r->credited >= w / 2;
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
	case WIRE_FOPEN:
		return on_fopen(d, from, f);
	case WIRE_FOPENED:
		return on_fopened(d, from, f);
	case WIRE_FWD:
		return on_fwd(d, from, f);
	case WIRE_FACK:
		return on_fack(d, from, f);
	case WIRE_NODEIDX:
		return on_nodeidx(d, from, f);
	case WIRE_EVICTED:
		return on_evicted(d, from, f);
	case WIRE_CREDIT:
		return on_credit(d, from, f);
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
	const struct wire_group *info;
	struct mesh_peer *p;
	int err = master_of(d, name, &info, &p);
	if (err)
		return err;
	struct repl *rp = d->repl;
	struct replica *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	err = registry_new_replica(d, name, info->ring_bytes, info->max_msg, info->stall_ms,
				   info->member_slots, info->mode, (uid_t)info->uid,
				   (gid_t)info->gid, &g);
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
	j->since = ring_now_ns();
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
	const struct wire_group *info;
	struct mesh_peer *p;
	int err = master_of(d, name, &info, &p);
	if (err)
		return err;
	struct repl *rp = d->repl;
	struct rask *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	*a = (struct rask){.id = ++rp->next_id,
			   .since = ring_now_ns(),
			   .session = s->serial,
			   .req_id = req_id,
			   .peer = p};
	struct wire_claim c = {.id = a->id};
	snprintf(c.name, sizeof(c.name), "%s", name);
	err = mesh_send(p, WIRE_MEMBERS, &c, sizeof(c));
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
	while (g->fwds) {
		struct fwd_in *fw = g->fwds;
		g->fwds = fw->next;
		fwd_free(d, fw);
	}
	struct outbound *o = g->outbound;
	if (o) {
		if (o->rd.page)
			ring_page_unmap(o->rd.page);
		if (o->page.fd >= 0) {
			ring_member_remove(&g->ring, o->slot);
			ring_file_release(&o->page, RING_PAGE);
		}
		free(o);
		g->outbound = NULL;
	}
	struct replica *r = g->replica;
	if (!r)
		return;
	while (r->leaves)
		rleave_answer(d, g, r->leaves); /* the group is gone: so is the membership */
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

const struct ring_file *replica_stream_page(struct group *g, uint32_t slot, uint32_t word)
{
	for (struct stream *st = g->streams; st; st = st->next)
		if (st->slot == slot && st->word == word)
			return &st->page;
	if (g->outbound && g->outbound->slot == slot && g->outbound->word == word)
		return &g->outbound->page;
	return NULL;
}

bool replica_ended(const struct group *g)
{
	return g->replica->ended;
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
		/* Our groups: that node's stream ends, its members exit; what
		 * its senders forwarded and we sequenced stays. */
		for (struct stream *st = g->streams, *sn; st; st = sn) {
			sn = st->next;
			if (st->peer == p)
				stream_drop(d, st);
		}
		for (struct fwd_in **fp = &g->fwds; *fp;) {
			struct fwd_in *fw = *fp;
			if (fw->peer != p) {
				fp = &fw->next;
				continue;
			}
			*fp = fw->next;
			fwd_free(d, fw);
		}
		/* Its group's outbound ring: what was not sequenced yet is lost
		 * with the master (the members get PG_GROUP_DOWN). */
		if (g->outbound && g->outbound->peer == p) {
			g->outbound->peer = NULL;
			registry_drop(d, g);
			continue;
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
	/* A master that leaves a join or a listing unanswered is lost. */
	int64_t now = ring_now_ns();
	for (struct rask *a = d->repl ? d->repl->asks : NULL; a; a = a->next)
		if (now - a->since >= PGD_NODE_ANSWER_NS && a->peer) {
			a->since = now;
			pgd_log("node %s did not answer a members request: closing its link",
				a->peer->node);
			mesh_drop(a->peer, -ETIMEDOUT);
		}
	/* A leave the master has not placed in time is answered anyway: it
	 * is done here, and the master is lagging or going. */
	for (struct group *g = d->groups; g; g = g->next)
		while (g->replica && g->replica->leaves &&
		       now - g->replica->leaves->since >= PGD_NODE_ANSWER_NS)
			rleave_answer(d, g, g->replica->leaves);
	for (struct group *g = d->groups; g; g = g->next)
		for (struct rjoin *j = g->replica ? g->replica->joins : NULL; j; j = j->next)
			if (!j->answered && now - j->since >= PGD_NODE_ANSWER_NS && g->replica->peer) {
				j->since = now;
				pgd_log("node %s did not answer a join of group %s: closing its link",
					g->replica->peer->node, g->name);
				mesh_drop(g->replica->peer, -ETIMEDOUT);
			}
	/* Streams that stopped on a full link go on; a name created again
	 * is no longer lost. */
	for (struct group *g = d->groups; g; g = g->next) {
		if (g->streams || g->outbound)
			replica_ship(d, g);
		if (g->replica)
			send_credit(d, g, true);
	}
	for (struct group *g = d->groups, *next; g; g = next) {
		next = g->next;
		if (g->replica && g->replica->ended && !g->members)
			registry_drop(d, g); /* every evicted member was told */
	}
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

void replica_poll(struct daemon *d)
{
	bool again = false;
	for (struct group *g = d->groups; g; g = g->next)
		if (g->replica)
			again |= send_credit(d, g, true);
	if (again)
		cluster_poll_soon(d);
}

void replica_forget_peers(struct daemon *d)
{
	for (struct group *g = d->groups; g; g = g->next) {
		if (g->replica)
			g->replica->peer = NULL;
		if (g->outbound)
			g->outbound->peer = NULL;
		while (g->fwds) {
			struct fwd_in *fw = g->fwds;
			g->fwds = fw->next;
			fwd_free(d, fw);
		}
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

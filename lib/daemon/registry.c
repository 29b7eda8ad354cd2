// SPDX-License-Identifier: MIT
/*
 * The group registry: groups this node masters, their members, and the
 * membership events the daemon writes into each group's ring so that every
 * member sees them at the same point of the order as the messages. The
 * daemon never waits on a ring: what it cannot do now it queues, times, and
 * does on a later tick, or gives up on the group.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "proto/ctl.h"
#include "ring/wait.h"
#include "timing.h"

/* Attempts of the daemon's own claim while the tail moves under it: senders
 * rarely make it lose more than a few times; more means someone writes the
 * tail to stall us. */
#define EVENT_CLAIM_TRIES 16u

static bool tick_room(struct daemon *d);

/* Something will need g's next tick (events wait for room, an area to
 * give back, a join that found none): look at it in this pass or the next. */
static void tick_soon(struct daemon *d, struct group *g)
{
	d->ticks[g->tick_index].idle = false;
}

/*
 * How many passes a quiet group may go unlooked at: what comes to it then
 * (a claim its writer never ends, a member that stops reading) is seen up
 * to that much later, so at most a quarter of its stall limit, and never
 * more than 8 (400 ms). A group looked at costs ~1 us here (its tail's
 * page walk, mostly): 10,000 quiet groups looked at each pass took 8.6 %
 * of a CPU, 4-5 % once in 5 passes (a 1 s limit).
 */
static uint8_t tick_stride(uint32_t stall_ms)
{
	uint64_t passes = (uint64_t)stall_ms * PG_MS / 4 / PGD_TICK_NS;
	return (uint8_t)(passes < 1 ? 1 : passes > 8 ? 8 : passes);
}

/* The groups that may be called `name`: its chain, or every group while
 * there is no table (it could not be made). */
static struct group *chain_of(struct daemon *d, const char *name)
{
	return d->gtab ? d->gtab[ctl_name_hash(name) & (d->gtab_size - 1)] : d->groups;
}

static struct group *chain_next(const struct daemon *d, const struct group *g)
{
	return d->gtab ? g->hnext : g->next;
}

/* Into the table, which doubles past one group per chain on average (a
 * failed doubling keeps the old one: longer chains, still right). */
static void names_add(struct daemon *d, struct group *g)
{
	d->n_all_groups++;
	if (d->n_all_groups > d->gtab_size) {
		unsigned size = d->gtab_size ? 2 * d->gtab_size : 256;
		struct group **t = calloc(size, sizeof(*t));
		if (t) {
			for (struct group *x = d->groups; x; x = x->next) {
				uint32_t i = ctl_name_hash(x->name) & (size - 1);
				x->hnext = t[i];
				t[i] = x;
			}
			free(d->gtab);
			d->gtab = t;
			d->gtab_size = size;
			return; /* g is on d->groups already: in the new table too */
		}
	}
	if (d->gtab) {
		uint32_t i = ctl_name_hash(g->name) & (d->gtab_size - 1);
		g->hnext = d->gtab[i];
		d->gtab[i] = g;
	}
}

static void names_remove(struct daemon *d, struct group *g)
{
	d->n_all_groups--;
	if (!d->gtab)
		return;
	for (struct group **p = &d->gtab[ctl_name_hash(g->name) & (d->gtab_size - 1)]; *p;
	     p = &(*p)->hnext)
		if (*p == g) {
			*p = g->hnext;
			return;
		}
}

struct group *registry_find(struct daemon *d, const char *name)
{
	for (struct group *g = chain_of(d, name); g; g = chain_next(d, g))
		if (!g->replica && !g->outbound && strcmp(g->name, name) == 0)
			return g;
	return NULL;
}

struct group *registry_find_outbound(struct daemon *d, const char *name)
{
	for (struct group *g = chain_of(d, name); g; g = chain_next(d, g))
		if (g->outbound && strcmp(g->name, name) == 0)
			return g;
	return NULL;
}

struct group *registry_find_replica(struct daemon *d, const char *name)
{
	for (struct group *g = chain_of(d, name); g; g = chain_next(d, g))
		if (g->replica && !replica_ended(g) && strcmp(g->name, name) == 0)
			return g;
	return NULL;
}

/* Wake every receiver of the group, whatever it sleeps for. */
static void wake_all(struct group *g)
{
	ring_wake_every(&g->ring);
}

/* The group's shared memory says what no honest process could make it say:
 * readers get -EBADMSG, and the daemon stops writing into it. */
static void group_bad(struct group *g, const char *why)
{
	if (g->bad)
		return;
	pgd_log("group %s: shared memory is corrupt (%s); marked bad", g->name, why);
	g->bad = true;
	ring_set_state(&g->ring, RING_STATE_BAD);
	wake_all(g);
}

static bool stall_over(const struct stall_clock *c, const struct group *g, int64_t now)
{
	return c->since && now - c->since >= (int64_t)g->ring.stall_ms * PG_MS;
}

/* Restart the clock unless it already times this very wait; only progress
 * (a higher `at`) is a new wait, a cursor that went back is not. */
static void stall_track(struct stall_clock *c, uint64_t what, uint64_t at, int64_t now)
{
	if (!c->since || c->what != what || at > c->at) {
		c->what = what;
		c->at = at;
		c->since = now;
	}
}

/* Whether the tail, seen at `from` (and left at `to`), went on from the
 * highest the node saw; the group is bad if it went back. */
static bool tail_went_on(struct group *g, uint64_t from, uint64_t to)
{
	if (from < g->tail_seen) {
		group_bad(g, "the tail went back");
		return false;
	}
	g->tail_seen = to;
	return true;
}

/* Append one event record with the daemon's writer slot; the daemon may use
 * the reserve senders leave free. -EAGAIN when there is no room now. */
/* Write one record into g's order now: 0 and its position, or -EAGAIN
 * (no room: a member holds it, or the tail keeps moving). */
static int append_record(struct daemon *d, struct group *g, const struct pending_event *e,
			 uint64_t *pos)
{
	if (g->bad)
		return -EBADMSG;
	struct ring_claim c;
	uint32_t blocker;
	/* An event's payload is its member's node; a replicated message's,
	 * the message. */
	const char *node = e->node[0] ? e->node : d->node;
	size_t n = e->kind == RING_REC_MSG ? e->len : strlen(node);
	int err = ring_claim(&g->ring, &g->events, (uint32_t)n, 0, EVENT_CLAIM_TRIES, &c,
			     &blocker);
	/* The clock only when there is no room: a replica appends millions
	 * of records a second through here. */
	int64_t now = err == -EAGAIN ? ring_now_ns() : 0;
	if (err == -EAGAIN && blocker == UINT32_MAX) {
		if (!g->busy_since)
			g->busy_since = now;
		else if (now - g->busy_since >= (int64_t)g->ring.stall_ms * PG_MS)
			group_bad(g, "the tail keeps moving under the node's claims");
		return -EAGAIN;
	}
	g->busy_since = 0;
	if (err == -EAGAIN) {
		/* A member holds the room. One waiting at a position nobody
		 * decided is not to blame: the stuck-position rule frees it. */
		uint64_t cur = ring_member_cursor(&g->ring, blocker);
		if (ring_entry_open(&g->ring, cur))
			g->event_wait.since = 0;
		else
			stall_track(&g->event_wait, blocker, cur, now);
		return -EAGAIN;
	}
	g->event_wait.since = 0;
	if (err) {
		group_bad(g, "the node's own claim failed");
		return err;
	}
	/* Behind a tail we saw: written back, and what we would place here
	 * could come before records already read (a member joining again
	 * would read them twice). */
	if (!tail_went_on(g, c.pos, c.pos + 1)) {
		ring_abort(&g->ring, &c);
		return -EBADMSG;
	}
	memcpy(c.payload, e->kind == RING_REC_MSG ? (const void *)e->data : node, n);
	err = ring_commit_seq(&g->ring, &c, e->kind, e->flags, e->pid, e->from_node, e->seq);
	ring_wake(&g->ring);
	/* The node commits at once, so only a sender writing the order can
	 * have cancelled it: the event is not lost, it is placed again. */
	if (err)
		return -EAGAIN;
	if (pos)
		*pos = c.pos;
	if (e->fwd)
		replica_sequenced(d, g, e);
	return 0;
}

static int append_event(struct daemon *d, struct group *g, uint16_t kind, int32_t pid,
			uint64_t *pos)
{
	struct pending_event e = {.kind = kind, .pid = pid};
	return append_record(d, g, &e, pos);
}

static void pending_free(struct group *g, struct pending_event *e)
{
	g->pending_bytes -= sizeof(*e) + e->len;
	free(e->data);
	free(e);
}

static void flush_pending(struct daemon *d, struct group *g)
{
	while (g->pending) {
		struct pending_event *e = g->pending;
		if (append_record(d, g, e, NULL))
			return;
		g->pending = e->next;
		if (!g->pending)
			g->pending_tail = &g->pending;
		pending_free(g, e);
	}
}

int registry_post(struct daemon *d, struct group *g, const struct pending_event *e,
		  uint64_t *pos)
{
	uint64_t dummy;
	pos = pos ? pos : &dummy;
	*pos = UINT64_MAX;
	if (g->bad)
		return 0;
	flush_pending(d, g);
	if (!g->pending && append_record(d, g, e, pos) == 0)
		return 0;
	/* Events keep their order: behind any already waiting for room. A
	 * replica's queue is bounded: what holds it is evicted after the
	 * stall limit (registry_tick), and past 16 rings' worth at once (no flow control
	 * per stream yet: design.md §11). */
	if (g->replica && g->pending_bytes > 16 * g->ring.capacity)
		return -ENOBUFS;
	struct pending_event *q = calloc(1, sizeof(*q));
	uint8_t *data = e->len ? malloc(e->len) : NULL;
	if (!q || (e->len && !data)) {
		free(q);
		free(data);
		pgd_log("group %s: out of memory, event lost", g->name);
		return -ENOMEM;
	}
	*q = *e;
	q->next = NULL;
	q->data = data;
	if (e->len)
		memcpy(data, e->data, e->len);
	g->pending_bytes += sizeof(*q) + q->len;
	*g->pending_tail = q;
	g->pending_tail = &q->next;
	tick_soon(d, g);
	return 0;
}

/* A local member's event. In a replica the master writes it, into the
 * one order: the replica asks it (replica_member_left). */
static void post_event(struct daemon *d, struct group *g, uint16_t kind, int32_t pid)
{
	if (g->replica) {
		replica_member_left(d, g, pid, kind);
		return;
	}
	struct pending_event e = {.kind = kind, .pid = pid};
	registry_post(d, g, &e, NULL);
}

int registry_rjoin(struct daemon *d, struct group *g, const char *node, int32_t pid,
		   uint64_t *seq, struct rmember **added)
{
	if (g->bad)
		return -EBADMSG;
	struct rmember *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	/* Its place is exact, as for a member here: no room, no join (the
	 * member's node asks again). */
	flush_pending(d, g);
	struct pending_event e = {.kind = RING_REC_JOINED, .pid = pid};
	snprintf(e.node, sizeof(e.node), "%s", node);
	uint64_t pos;
	int err = g->pending ? -EAGAIN : append_record(d, g, &e, &pos);
	if (err) {
		free(m);
		if (err == -EAGAIN) {
			g->join_blocked_at = ring_now_ns();
			tick_soon(d, g);
		}
		return err == -EAGAIN ? -ENOBUFS : err;
	}
	snprintf(m->node, sizeof(m->node), "%s", node);
	m->pid = pid;
	struct rmember **p = &g->rmembers;
	while (*p)
		p = &(*p)->next;
	*p = m;
	g->n_rmembers++;
	*seq = pos + 1;
	*added = m;
	return 0;
}

void registry_rleave(struct daemon *d, struct group *g, const char *node, int32_t pid,
		     uint16_t kind)
{
	for (struct rmember **p = &g->rmembers; *p; p = &(*p)->next) {
		struct rmember *m = *p;
		if (m->pid != pid || strcmp(m->node, node))
			continue;
		*p = m->next;
		g->n_rmembers--;
		free(m);
		struct pending_event e = {.kind = kind, .pid = pid};
		snprintf(e.node, sizeof(e.node), "%s", node);
		registry_post(d, g, &e, NULL);
		return;
	}
}

static uint64_t pow2_at_least(uint64_t v)
{
	uint64_t p = RING_MIN_BYTES;
	while (p < v && p < RING_MAX_BYTES)
		p <<= 1;
	return p;
}

/* A class goes with its last group's directory, and its shelf with it. */
static void dir_class_put(struct daemon *d, struct dir_class *c)
{
	if (c->n_groups)
		return;
	for (struct dir_class **p = &d->dir_classes; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	shelf_drop(&c->shelf);
	shelf_drop(&c->node_pages);
	free(c);
}

/*
 * A deleted group's directory and areas on shelves stay readable for a
 * while: its members read its backlog to PG_GROUP_DOWN (a member stopped
 * longer than that reads the end early, as a laggard is evicted). With
 * memfds of their own they lived as long as anyone mapped them; a shelf
 * lives on for its other ranges, so these are punched when the grace
 * period ends.
 */
static void bury(struct daemon *d, struct ring_file *f, uint64_t bytes, int64_t until)
{
	if (f->fd < 0)
		return;
	if (d->n_graves == d->cap_graves) {
		size_t cap = d->cap_graves ? 2 * d->cap_graves : 64;
		struct grave *n = realloc(d->graves, cap * sizeof(*n));
		if (!n) {
			ring_file_forget(f); /* kept, not punched: safe, only late */
			return;
		}
		d->graves = n;
		d->cap_graves = cap;
	}
	d->graves[d->n_graves++] = (struct grave){.file = *f, .bytes = bytes, .until = until};
	*f = RING_FILE_NONE;
}

static void graves_sweep(struct daemon *d, int64_t now)
{
	size_t n = 0;
	for (size_t i = 0; i < d->n_graves; i++) {
		if (now >= d->graves[i].until)
			ring_file_release(&d->graves[i].file, d->graves[i].bytes);
		else
			d->graves[n++] = d->graves[i];
	}
	d->n_graves = n;
}

static void registry_dir_release(struct daemon *d, struct group *g, uint64_t bytes)
{
	ring_file_release(&g->dir, bytes);
	if (g->dir_class) {
		g->dir_class->n_groups--;
		dir_class_put(d, g->dir_class);
		g->dir_class = NULL;
	}
}

/* g's directory, on the shelf of the groups the same users may read. */
static int registry_dir_take(struct daemon *d, struct group *g, uint64_t bytes)
{
	uint32_t mode = g->mode & 0666;
	struct dir_class *c = d->dir_classes;
	while (c && (c->uid != g->uid || c->gid != g->gid || c->mode != mode))
		c = c->next;
	if (!c) {
		if (!(c = calloc(1, sizeof(*c))))
			return -ENOMEM;
		*c = (struct dir_class){.uid = g->uid, .gid = g->gid, .mode = mode};
		c->next = d->dir_classes;
		d->dir_classes = c;
	}
	int err = shelf_take(&c->shelf, "pgroup:dirs", bytes, &g->dir);
	if (err) {
		dir_class_put(d, c);
		return err;
	}
	c->n_groups++;
	g->dir_class = c;
	return 0;
}

int registry_create(struct daemon *d, const struct creds *who, const struct creds *owner,
		    const char *name, uint64_t ring_bytes, uint64_t max_msg, uint32_t stall_ms,
		    uint32_t member_slots, uint32_t mode, struct group **out)
{
	if (registry_find(d, name))
		return -EEXIST;
	if (!member_slots)
		member_slots = RING_MEMBER_SLOTS;
	if ((mode & ~0777u) || !ring_member_slots_ok(member_slots))
		return -EINVAL;
	if (!ring_bytes && !max_msg) {
		ring_bytes = RING_DEFAULT_BYTES;
		max_msg = RING_DEFAULT_MAX_MSG;
	} else if (!ring_bytes) {
		ring_bytes = pow2_at_least(2 * ring_rec_bytes(max_msg) + RING_PAGE);
		if (ring_bytes < RING_DEFAULT_BYTES)
			ring_bytes = RING_DEFAULT_BYTES;
	} else if (!max_msg) {
		/* The default limit, or the largest a smaller ring can take. */
		max_msg = RING_DEFAULT_MAX_MSG;
		while (max_msg > 64 && ring_check_sizes(ring_bytes, max_msg))
			max_msg /= 2;
	}
	int err = ring_check_sizes(ring_bytes, max_msg);
	if (err)
		return err;
	/* The owner pays for what the group holds whoever sends: the order,
	 * the daemon's own area and the directory; each sender pays for its area. */
	const uint64_t dir_bytes = RING_DIR_FILE_BYTES_FOR(ring_bytes, member_slots);
	uint64_t base = RING_DATA_BYTES_FOR(ring_bytes, member_slots) + dir_bytes;
	if ((err = quota_take(&d->quota, who->uid, QUOTA_GROUPS, 1)))
		return err;
	if ((err = quota_take(&d->quota, who->uid, QUOTA_RING_BYTES, base))) {
		quota_give(&d->quota, who->uid, QUOTA_GROUPS, 1);
		return err;
	}
	struct group *g = tick_room(d) ? calloc(1, sizeof(*g)) : NULL;
	if (!g) {
		quota_give(&d->quota, who->uid, QUOTA_GROUPS, 1);
		quota_give(&d->quota, who->uid, QUOTA_RING_BYTES, base);
		return -ENOMEM;
	}
	g->base_bytes = base;
	snprintf(g->name, sizeof(g->name), "%s", name);
	g->data_fd = -1;
	g->dir = RING_FILE_NONE;
	g->pending_tail = &g->pending;
	g->payer = who->uid;
	g->uid = owner ? owner->uid : who->uid;
	g->gid = owner ? owner->gid : who->gid;
	g->mode = mode ? mode : 0600;
	if ((err = ring_check_sizes(ring_bytes, max_msg)) ||
	    (err = registry_dir_take(d, g, dir_bytes)))
		goto fail;
	err = ring_create_at(ring_bytes, (uint32_t)max_msg, stall_ms ? stall_ms : 1000,
			     member_slots, name, &g->data_fd, &g->dir);
	if (err)
		goto fail;
	err = ring_map_at(&g->ring, g->data_fd, g->dir.fd, g->dir.off, true);
	if (err)
		goto fail;
	ring_area_init(&g->events, RING_DAEMON_WRITER);
	g->serial = ++d->next_group_serial;
	g->next = d->groups;
	d->groups = g;
	/* Past the pass under way (it goes down): looked at from the next. */
	g->tick_index = d->n_ticks++;
	d->ticks[g->tick_index] = (struct tick_entry){
	    .g = g, .tail = &g->ring.hdr->tail, .stride = tick_stride(g->ring.stall_ms)};
	names_add(d, g);
	*out = g;
	return 0;
fail:
	quota_give(&d->quota, who->uid, QUOTA_GROUPS, 1);
	quota_give(&d->quota, who->uid, QUOTA_RING_BYTES, base);
	if (g->ring.hdr)
		ring_unmap(&g->ring);
	if (g->data_fd >= 0)
		close(g->data_fd);
	registry_dir_release(d, g, dir_bytes);
	free(g);
	return err;
}

int registry_new_replica(struct daemon *d, const char *name, uint64_t ring_bytes,
			 uint64_t max_msg, uint32_t stall_ms, uint32_t member_slots, uint32_t mode,
			 uid_t uid, gid_t gid, struct group **out)
{
	/* Its memory is the group owner's, as on the master: that uid's quota
	 * here pays for it. */
	struct creds who = {.uid = uid, .gid = gid};
	return registry_create(d, &who, NULL, name, ring_bytes, max_msg, stall_ms, member_slots,
			       mode, out);
}

int registry_ro_fd(int fd)
{
	/* Opened per hand-out and closed after, so a group costs the daemon
	 * one fd (its data), not more. */
	return ring_file_ro(&(struct ring_file){.fd = fd});
}

static void unlink_member(struct daemon *d, struct member *m)
{
	quota_give(&d->quota, m->session->creds.uid, QUOTA_MEMBERSHIPS, 1);
	ring_file_release(&m->page, RING_PAGE);
	for (struct member **p = &m->group->members; *p; p = &(*p)->next_in_group)
		if (*p == m) {
			*p = m->next_in_group;
			break;
		}
	for (struct member **p = &m->session->members; *p; p = &(*p)->next_in_session)
		if (*p == m) {
			*p = m->next_in_session;
			break;
		}
	if (!m->evicted)
		m->group->n_members--;
	if (m->group->replica)
		replica_member_freed(m->group, m);
}

/* The shelf of s for its pages or areas in g's class of readers; NULL
 * without memory. */
static struct shelf **own_shelf(struct session *s, const struct group *g, enum own_kind kind)
{
	uint32_t mode = g->mode & 0666;
	struct own_shelf *o = s->own;
	while (o && (o->uid != g->uid || o->gid != g->gid || o->mode != mode || o->kind != kind))
		o = o->next;
	if (!o && (o = calloc(1, sizeof(*o)))) {
		*o = (struct own_shelf){
		    .uid = g->uid, .gid = g->gid, .mode = mode, .kind = kind, .next = s->own};
		s->own = o;
	}
	return o ? &o->shelf : NULL;
}

void registry_drop_shelves(struct session *s)
{
	/* What a member may still read of its records keeps a shelf until
	 * its ranges are given back. */
	while (s->own) {
		struct own_shelf *o = s->own;
		s->own = o->next;
		shelf_drop(&o->shelf);
		free(o);
	}
}

/* A member slot of g for target: quota, the slot (at the ring's tail), its
 * page. Not yet in any list. */
static int member_new(struct daemon *d, struct group *g, struct session *target,
		      struct member **out)
{
	int err = quota_take(&d->quota, target->creds.uid, QUOTA_MEMBERSHIPS, 1);
	if (err)
		return err;
	struct member *m = calloc(1, sizeof(*m));
	if (!m) {
		quota_give(&d->quota, target->creds.uid, QUOTA_MEMBERSHIPS, 1);
		return -ENOMEM;
	}
	/* On the target's own shelf of pages for the group's class: what it
	 * may write, readable by no one who could not write the group. */
	struct shelf **own = own_shelf(target, g, OWN_PAGES);
	if (!own || (err = ring_member_add_on(&g->ring, target->pid, &m->slot, &m->state_word,
					      &m->start, own, &m->page))) {
		err = own ? err : -ENOMEM;
		quota_give(&d->quota, target->creds.uid, QUOTA_MEMBERSHIPS, 1);
		free(m);
		return err;
	}
	*out = m;
	return 0;
}

static void member_drop(struct daemon *d, struct group *g, struct session *target,
			struct member *m)
{
	ring_member_remove(&g->ring, m->slot);
	ring_file_release(&m->page, RING_PAGE);
	quota_give(&d->quota, target->creds.uid, QUOTA_MEMBERSHIPS, 1);
	free(m);
}

/* Into the group's list (at the tail: listings follow join order) and
 * the session's. */
static void member_link(struct group *g, struct session *target, struct member *m)
{
	m->group = g;
	m->session = target;
	m->seen_cursor = m->start;
	m->seen_at = ring_now_ns();
	struct member **p = &g->members;
	while (*p)
		p = &(*p)->next_in_group;
	*p = m;
	m->next_in_session = target->members;
	target->members = m;
	g->n_members++;
}

int registry_join(struct daemon *d, struct group *g, struct session *target, struct member **out)
{
	if (g->bad)
		return -EBADMSG;
	struct member *m;
	int err = member_new(d, g, target, &m);
	if (err)
		return err;
	/* The member's first record is its own JOINED event, so its place in
	 * the order is exact. Without room for it the join fails cleanly,
	 * and the caller tries again: room comes back within the stall
	 * limit (registry_tick evicts whoever holds it). */
	flush_pending(d, g);
	err = g->pending ? -EAGAIN : append_event(d, g, RING_REC_JOINED, target->pid, &m->start);
	if (err) {
		member_drop(d, g, target, m);
		if (err == -EAGAIN) {
			g->join_blocked_at = ring_now_ns(); /* time who holds the room */
			tick_soon(d, g);
		}
		return err == -EAGAIN ? -ENOBUFS : err;
	}
	member_link(g, target, m);
	*out = m;
	return 0;
}

int registry_join_replica(struct daemon *d, struct group *g, struct session *target,
			  struct member **out)
{
	if (g->bad)
		return -EBADMSG;
	/* A slot now, at the tail: nothing behind it is overwritten until
	 * its JOINED comes from the master and puts its cursor there. */
	struct member *m;
	int err = member_new(d, g, target, &m);
	if (err)
		return err;
	member_link(g, target, m);
	*out = m;
	return 0;
}

void registry_remove(struct daemon *d, struct member *m, uint16_t kind)
{
	struct group *g = m->group;
	ring_member_remove(&g->ring, m->slot);
	if (!m->evicted)
		post_event(d, g, kind, m->session->pid);
	unlink_member(d, m);
	free(m);
}

int registry_writer(struct daemon *d, struct group *g, struct session *s, uint32_t *slot)
{
	if (g->bad)
		return -EBADMSG;
	for (struct writer_ref *w = s->writers; w; w = w->next_in_session)
		if (w->group == g) {
			*slot = w->slot;
			return 0;
		}
	registry_reclaim_areas(d, g);
	int err = quota_take(&d->quota, s->creds.uid, QUOTA_RING_BYTES, g->ring.capacity);
	if (err)
		return err;
	/* Its area on its own shelf for the group's readers: nobody else
	 * may write it, nobody who could not read the group read it. */
	struct writer_ref *w = calloc(1, sizeof(*w));
	struct shelf **own = own_shelf(s, g, OWN_AREAS);
	if (!w || !own || (err = ring_writer_alloc_on(&g->ring, s->pid, &w->slot, own))) {
		quota_give(&d->quota, s->creds.uid, QUOTA_RING_BYTES, g->ring.capacity);
		free(w);
		return !w || !own ? -ENOMEM : err == -ENOSPC ? -EUSERS : err;
	}
	if (g->area_charged[w->slot]) {
		/* Handed out again before the reclaim saw it drained (their
		 * minimums differ by a moment): its last holder's charge ends. */
		quota_give(&d->quota, g->area_uid[w->slot], QUOTA_RING_BYTES, g->ring.capacity);
		if (g->areas_to_reclaim)
			g->areas_to_reclaim--;
	}
	g->area_uid[w->slot] = s->creds.uid;
	g->area_charged[w->slot] = true;
	w->group = g;
	w->next_in_session = s->writers;
	s->writers = w;
	*slot = w->slot;
	return 0;
}

/* The slot is free; its area (and its holder's charge) goes once nobody
 * can read its records (registry_reclaim_areas). */
static void writer_freed(struct daemon *d, struct group *g, uint32_t slot)
{
	ring_writer_free(&g->ring, slot);
	if (g->area_charged[slot]) {
		g->areas_to_reclaim++;
		tick_soon(d, g);
	}
}

/*
 * A writer slot whose session ended. A live process (it closed its socket,
 * or exec'd) may still send through its mapping, so the slot stays its own
 * until it dies; its claims are cancelled like anyone's if members wait at
 * them. Once it is surely dead, the position it won is cancelled at once
 * and the slot freed. True when the slot is done with.
 */
static bool seal_dead_writer(struct daemon *d, struct dead_writer *dw)
{
	struct pollfd p = {.fd = dw->pidfd, .events = POLLIN};
	struct group *g = dw->group;
	if (!dw->dead && poll(&p, 1, 0) <= 0)
		return false;
	/* Shown by pgroup top: whether it died holding a claim (the writer's
	 * own word, so only a count, never a decision). */
	bool held = atomic_load(&g->ring.writers[dw->slot].claim_pos) != RING_NO_CLAIM;
	if (ring_seal_writer(&g->ring, dw->slot) == -EAGAIN)
		return false; /* it died around its claim: wait for the other writer */
	g->cancels += held;
	ring_wake(&g->ring);
	writer_freed(d, g, dw->slot);
	return true;
}

static void free_dead_writers(struct daemon *d, struct group *only, bool try_seal)
{
	for (struct dead_writer **p = &d->dead_writers; *p;) {
		struct dead_writer *dw = *p;
		if ((only && dw->group != only) || (try_seal && !seal_dead_writer(d, dw))) {
			p = &dw->next;
			continue;
		}
		*p = dw->next;
		close(dw->pidfd);
		free(dw);
	}
}

/*
 * A session's writer slots: with BYE (pg_close: the library withdrew its
 * claims and forgot the mapping) a slot is free at once; a dead process's
 * is sealed; a live process that only lost its connection keeps its slot
 * until it dies. `only` (a group being freed): just forget the slots.
 */
static void drop_writers(struct daemon *d, struct session *s, struct group *only, bool dead)
{
	for (struct writer_ref **p = &s->writers; *p;) {
		struct writer_ref *w = *p;
		if (only && w->group != only) {
			p = &w->next_in_session;
			continue;
		}
		*p = w->next_in_session;
		struct ring *r = &w->group->ring;
		bool watch = !only && (!s->said_bye || atomic_load(&r->writers[w->slot].claim_pos) !=
								RING_NO_CLAIM);
		struct dead_writer *dw = watch ? calloc(1, sizeof(*dw)) : NULL;
		if (dw && (dw->pidfd = fcntl(s->proc->pidfd, F_DUPFD_CLOEXEC, 0)) >= 0) {
			dw->dead = dead;
			dw->group = w->group;
			dw->slot = w->slot;
			dw->next = d->dead_writers;
			d->dead_writers = dw;
		} else if (watch) {
			/* Cannot watch it: the slot stays taken for good rather
			 * than let a second writer share an area a live one
			 * may still write. */
			free(dw);
			pgd_log("group %s: writer slot %u kept: out of memory or fds",
				w->group->name, w->slot);
		} else if (!only) {
			writer_freed(d, w->group, w->slot);
		}
		free(w);
	}
}

void registry_drop_session(struct daemon *d, struct session *s, uint16_t kind)
{
	while (s->members)
		registry_remove(d, s->members, kind);
	/* PG_EXITED is said only of a process known to be dead: the exit
	 * watcher reported it (every thread is past do_exit's point of no
	 * return, none runs user code) or its pidfd is readable. */
	drop_writers(d, s, NULL, kind == RING_REC_EXITED);
	free_dead_writers(d, NULL, true);
}

/* Room in d->ticks for one group more. */
static bool tick_room(struct daemon *d)
{
	if (d->n_ticks < d->cap_ticks)
		return true;
	unsigned cap = d->cap_ticks ? 2 * d->cap_ticks : 64;
	struct tick_entry *t = realloc(d->ticks, cap * sizeof(*t));
	if (!t)
		return false;
	d->ticks = t;
	d->cap_ticks = cap;
	return true;
}

/* The last entry takes g's place. Below tick_at it is looked at (again,
 * if it was already: harmless); at or above, it was, and stays so. Its
 * turn among quiet groups moved with its place: it is looked at next pass,
 * so a quiet group still waits one stride at most. */
static void tick_remove(struct daemon *d, struct group *g)
{
	unsigned i = g->tick_index, last = --d->n_ticks;
	if (i != last) {
		d->ticks[i] = d->ticks[last];
		d->ticks[i].g->tick_index = i;
		d->ticks[i].idle = false;
	}
	if (d->tick_at > d->n_ticks)
		d->tick_at = d->n_ticks;
}

static void group_free(struct daemon *d, struct group *g)
{
	tick_remove(d, g);
	names_remove(d, g);
	for (struct group **p = &d->groups; *p; p = &(*p)->next)
		if (*p == g) {
			*p = g->next;
			break;
		}
	while (g->members) {
		struct member *m = g->members;
		unlink_member(d, m);
		free(m);
	}
	for (uint32_t i = 0; i < RING_WRITER_SLOTS; i++)
		if (g->area_charged[i])
			quota_give(&d->quota, g->area_uid[i], QUOTA_RING_BYTES, g->ring.capacity);
	quota_give(&d->quota, g->payer, QUOTA_GROUPS, 1);
	quota_give(&d->quota, g->payer, QUOTA_RING_BYTES, g->base_bytes);
	for (struct session *s = d->sessions; s; s = s->next)
		drop_writers(d, s, g, false);
	free_dead_writers(d, g, false);
	while (g->pending) {
		struct pending_event *e = g->pending;
		g->pending = e->next;
		pending_free(g, e);
	}
	while (g->rmembers) {
		struct rmember *m = g->rmembers;
		g->rmembers = m->next;
		free(m);
	}
	replica_group_gone(d, g);
	int64_t until = ring_now_ns() + ((int64_t)g->ring.stall_ms + 1000) * PG_MS;
	for (uint32_t i = 0; i < g->ring.writer_slots; i++)
		bury(d, &g->ring.area_file[i], g->ring.capacity, until);
	bury(d, &g->dir, g->ring.dir_bytes + g->ring.capacity, until);
	registry_dir_release(d, g, 0);
	ring_unmap(&g->ring);
	close(g->data_fd);
	free(g);
}

/* Mark a group down for everyone who still maps it. */
static void group_down(struct daemon *d, struct group *g)
{
	/* A DOWN record where there is room, so readers get everything
	 * before it in order; the state word covers a full ring. */
	if (!g->pending)
		append_event(d, g, RING_REC_DOWN, 0, NULL);
	if (!g->bad)
		ring_set_state(&g->ring, RING_STATE_DOWN);
	wake_all(g);
}

void registry_drop(struct daemon *d, struct group *g)
{
	group_down(d, g);
	group_free(d, g);
}

int registry_delete(struct daemon *d, const struct creds *who, struct group *g)
{
	if (who->uid != 0 && who->uid != g->uid)
		return -EACCES;
	group_down(d, g);
	/* Other nodes' members read the backlog to the DOWN record too. */
	replica_ship_last(d, g);
	group_free(d, g);
	return 0;
}

/*
 * Members waiting at a position nobody decided (a writer stopped, slow or
 * dead inside its claim): after the stall limit the position is cancelled,
 * its writer's commit fails, and the members move on. The writer held only
 * its own area, so nothing else needs freeing. The lowest such position is
 * timed; the next one, if any, is timed once members reach it.
 */
static void cancel_stuck(struct group *g, int64_t now)
{
	struct ring *r = &g->ring;
	uint64_t lowest = UINT64_MAX;
	for (struct member *m = g->members; m; m = m->next_in_group) {
		uint64_t cur = ring_member_cursor(r, m->slot);
		if (!m->evicted && cur < lowest && ring_entry_open(r, cur))
			lowest = cur;
	}
	if (lowest == UINT64_MAX) {
		g->stuck.since = 0;
		return;
	}
	stall_track(&g->stuck, lowest, 0, now);
	if (!stall_over(&g->stuck, g, now))
		return;
	int err = ring_cancel_at(r, lowest);
	if (err == -EBUSY)
		group_bad(g, "an order entry keeps changing under the node");
	else if (err == 0) {
		g->cancels++;
		pgd_log("group %s: cancelled position %llu, open for %lld ms", g->name,
			(unsigned long long)lowest, (long long)((now - g->stuck.since) / PG_MS));
	}
	g->stuck.since = 0;
	ring_wake(r);
}

/* The member that has held the daemon's events back past the stall limit
 * is evicted, exactly as a sender would evict it. */
static void evict_event_blocker(struct daemon *d, struct group *g, int64_t now)
{
	/* Events wait, or a join found no room a moment ago (it retries). */
	bool waiting = g->pending || now - g->join_blocked_at < PGD_TICK_NS * 4;
	if (!waiting || !stall_over(&g->event_wait, g, now))
		return;
	uint32_t slot = (uint32_t)g->event_wait.what;
	g->event_wait.since = 0;
	for (struct member *m = g->members; m; m = m->next_in_group)
		if (m->slot == slot && !m->evicted) {
			registry_evict(d, m);
			return;
		}
	/* Or another node's stream: that node's membership goes. */
	replica_evict_slot(d, g, slot, true);
}

bool registry_evict_blocker(struct daemon *d, struct group *g)
{
	if (!g->event_wait.since)
		return false;
	uint32_t slot = (uint32_t)g->event_wait.what;
	g->event_wait.since = 0;
	for (struct member *m = g->members; m; m = m->next_in_group)
		if (m->slot == slot && !m->evicted) {
			registry_evict(d, m);
			return true;
		}
	return false;
}

/*
 * A tail more than a whole order past a member, where the member cannot
 * have caused it (ring_tail_forged): no honest claim gets there (producers
 * leave room for every member). A sender forged the tail; claims would
 * name that member for ever, so the group is bad.
 */
static void check_tail(struct group *g)
{
	for (struct member *m = g->members; m; m = m->next_in_group)
		if (!m->evicted && ring_tail_forged(&g->ring, ring_member_cursor(&g->ring, m->slot))) {
			group_bad(g, "the tail is past every honest claim");
			return;
		}
}

void registry_progress(struct group *g, struct member *m, int64_t now)
{
	uint64_t c = ring_member_cursor(&g->ring, m->slot);
	uint64_t tail = atomic_load(&g->ring.hdr->tail);
	/* Only a cursor higher than any seen is progress, and none past the
	 * tail (that is no cursor): a member writes its own page, and moving
	 * it back and forth must not restart the clock. */
	if (c <= tail && c > m->seen_cursor) {
		g->delivered += c - m->seen_cursor;
		m->seen_cursor = c;
		m->seen_at = now;
	}
}

bool registry_stalled(struct group *g, struct member *m, int64_t now)
{
	registry_progress(g, m, now);
	struct ring *r = &g->ring;
	uint64_t c = ring_member_cursor(r, m->slot);
	if (c >= atomic_load(&r->hdr->tail) || ring_entry_open(r, c))
		return false; /* holds nothing, or waits for a writer, not lagging */
	/* Sampled each tick: the node may have seen the last move up to a
	 * tick late, so it allows one tick less than the limit; never less
	 * than half of it (a limit below a tick). */
	int64_t limit = (int64_t)r->stall_ms * PG_MS, need = limit - PGD_TICK_NS;
	if (need < limit / 2)
		need = limit / 2;
	return now - m->seen_at >= need;
}

void registry_evict(struct daemon *d, struct member *m)
{
	struct group *g = m->group;
	/* Only the node writes member states: what it evicts it knows of at
	 * once, so the LEFT event goes into the order here. */
	if (m->evicted || !ring_member_evict(&g->ring, m->slot, m->state_word))
		return;
	pgd_log("group %s: member pid %d evicted for lagging", g->name, (int)m->session->pid);
	g->evictions++;
	m->evicted = true;
	g->n_members--;
	post_event(d, g, RING_REC_LEFT, m->session->pid);
}

void registry_reclaim_areas(struct daemon *d, struct group *g)
{
	struct ring *r = &g->ring;
	if (!g->areas_to_reclaim)
		return;
	uint64_t min = ring_min_cursor(r, NULL);
	for (uint32_t i = RING_DAEMON_WRITER + 1; i < r->writer_slots; i++) {
		if (!g->area_charged[i] || atomic_load(&r->writer_ids[i].used))
			continue;
		uint64_t last = atomic_load(&r->writers[i].last_pos);
		if (last != RING_NO_CLAIM && last >= min)
			continue; /* a member may still read its records */
		/* Its memory back to the system: what a sender filled does not
		 * outlive its slot (ring_writer_alloc makes a fresh area). */
		ring_area_drop(r, i);
		quota_give(&d->quota, g->area_uid[i], QUOTA_RING_BYTES, r->capacity);
		g->area_charged[i] = false;
		g->areas_to_reclaim--;
	}
}

uint64_t registry_resident_bytes(const struct group *g)
{
	struct stat a;
	if (fstat(g->data_fd, &a))
		return 0;
	uint64_t bytes = (uint64_t)a.st_blocks * 512 +
			 ring_file_resident(&g->dir, g->ring.dir_bytes + g->ring.capacity);
	for (uint32_t i = 0; i < g->ring.writer_slots; i++)
		bytes += ring_file_resident(&g->ring.area_file[i], g->ring.capacity);
	/* Member pages: one each, touched as soon as it reads. */
	return bytes + (uint64_t)g->n_members * RING_PAGE;
}

/*
 * What the tick does for one group. Whether nothing moved since its last
 * look comes back: its tail and every member's cursor where they were, no
 * clock running, nothing waiting. Then the next looks can be fewer
 * (tick_stride): what they would see, they see a few passes later.
 */
static bool tick_group(struct daemon *d, struct group *g, int64_t now)
{
	if (g->bad)
		return true;
	uint64_t tail = atomic_load_explicit(&g->ring.hdr->tail, memory_order_relaxed);
	bool same = tail == g->tick_tail;
	for (struct member *m = g->members; m; m = m->next_in_group) {
		same &= ring_member_cursor(&g->ring, m->slot) == m->seen_cursor;
		registry_progress(g, m, now);
	}
	g->tick_tail = tail;
	if (!tail_went_on(g, tail, tail))
		return true;
	check_tail(g);
	if (g->bad)
		return true;
	cancel_stuck(g, now);
	flush_pending(d, g);
	evict_event_blocker(d, g, now);
	flush_pending(d, g);
	registry_reclaim_areas(d, g);
	return same && !g->pending && !g->areas_to_reclaim && !g->stuck.since &&
	       !g->event_wait.since && now - g->join_blocked_at >= PGD_TICK_NS * 4;
}

/*
 * A writer holds a writable fd of its own shelf, all 64 TiB of it: what it
 * writes outside its areas (ahead of them, or into one given back through
 * a mapping it kept) would be memory nobody was charged for. A few
 * shelves a pass are looked at (an fstat each), and such bytes punched.
 */
#define AUDIT_SHELVES 64u

static void audit_shelves(struct daemon *d, int64_t now)
{
	d->junk_bytes += shelf_audit(AUDIT_SHELVES);
	if (d->junk_bytes && now - d->junk_said_at >= 1000 * PG_MS) {
		pgd_log("punched %llu bytes written outside any range of a shelf",
			(unsigned long long)d->junk_bytes);
		d->junk_bytes = 0;
		d->junk_said_at = now;
	}
}

/* Entries fetched ahead of the one looked at: each group is a few cold
 * lines, and waiting for them one after the other was most of the pass. */
#define TICK_AHEAD 8u

/* A quiet group's turn comes once in its stride of passes (spread by its
 * place, so each pass looks at about as many). */
static bool tick_skips(const struct daemon *d, unsigned i)
{
	const struct tick_entry *e = &d->ticks[i];
	return e->idle && (d->tick_passes + i) % e->stride != 0;
}

bool registry_tick(struct daemon *d, unsigned parts)
{
	int64_t now = ring_now_ns();
	if (!d->tick_in_pass) {
		graves_sweep(d, now);
		free_dead_writers(d, NULL, true);
		audit_shelves(d, now);
		d->tick_at = d->tick_pass_groups = d->n_ticks;
		d->tick_in_pass = true;
		d->tick_passes++;
	}
	/* Each group's shared memory is cold by its next tick, and every
	 * message that came during a pass over 10,000 groups at once waited
	 * for it (a 2.2 ms p99 on two CPUs). A part of the pass per tick
	 * instead. */
	unsigned budget = parts > 1 ? d->tick_pass_groups / parts + 1 : UINT_MAX;
	/* Entries, not looks: a pass still takes PGD_TICK_NS however many
	 * groups are quiet, or their turns would come that much sooner. */
	for (; d->tick_at && budget; budget--) {
		/* Nothing a tick does frees a group (group_free keeps tick_at
		 * and the table right if something else does). */
		unsigned i = --d->tick_at;
		if (i >= TICK_AHEAD && !tick_skips(d, i - TICK_AHEAD)) {
			const struct tick_entry *ahead = &d->ticks[i - TICK_AHEAD];
			__builtin_prefetch((const void *)ahead->tail);
			__builtin_prefetch(&ahead->g->bad);
		}
		if (!tick_skips(d, i))
			d->ticks[i].idle = tick_group(d, d->ticks[i].g, now);
	}
	if (d->tick_at)
		return false;
	d->tick_in_pass = false;
	return true;
}

void registry_destroy_all(struct daemon *d)
{
	while (d->groups) {
		struct group *g = d->groups;
		ring_set_state(&g->ring, RING_STATE_DOWN);
		wake_all(g);
		group_free(d, g);
	}
	/* Members read on after we are gone (to PG_GROUP_DOWN): nothing is
	 * punched, the memory goes with their mappings. */
	for (size_t i = 0; i < d->n_graves; i++)
		ring_file_forget(&d->graves[i].file);
	free(d->graves);
	d->graves = NULL;
	d->n_graves = d->cap_graves = 0;
	free(d->gtab);
	d->gtab = NULL;
	d->gtab_size = 0;
	free(d->ticks);
	d->ticks = NULL;
	d->n_ticks = d->cap_ticks = d->tick_at = 0;
}

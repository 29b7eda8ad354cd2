// SPDX-License-Identifier: MIT
/*
 * The group registry: groups this node masters, their members, and the
 * membership events the daemon writes into each group's ring so that every
 * member sees them at the same point of the order as the messages.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "ring/wait.h"

struct group *registry_find(struct daemon *d, const char *name)
{
	for (struct group *g = d->groups; g; g = g->next)
		if (strcmp(g->name, name) == 0)
			return g;
	return NULL;
}

/* Wake every receiver of the group, whatever it sleeps for. */
static void wake_all(struct group *g)
{
	atomic_fetch_add(&g->ring.chdr->wake_seq, 1);
	ring_futex_wake(&g->ring.chdr->wake_seq);
}

/* Append one event record with the daemon's writer slot; the daemon may use
 * the reserve senders leave free. -EAGAIN when even that is full. */
static int append_event(struct daemon *d, struct group *g, uint16_t kind, int32_t pid,
			uint64_t *pos)
{
	struct ring_claim c;
	size_t n = strlen(d->node);
	int err = ring_claim(&g->ring, RING_DAEMON_WRITER, (uint32_t)n, 0, &c, NULL);
	if (err)
		return err;
	memcpy(c.payload, d->node, n);
	ring_commit(&g->ring, &c, kind, 0, pid, 0);
	ring_wake(&g->ring);
	if (pos)
		*pos = c.rec_pos;
	return 0;
}

static void flush_pending(struct daemon *d, struct group *g)
{
	while (g->pending) {
		struct pending_event *e = g->pending;
		if (append_event(d, g, e->kind, e->pid, NULL))
			return;
		g->pending = e->next;
		if (!g->pending)
			g->pending_tail = &g->pending;
		free(e);
	}
}

/* Events keep their order: behind any already waiting for room. */
static void post_event(struct daemon *d, struct group *g, uint16_t kind, int32_t pid)
{
	flush_pending(d, g);
	if (!g->pending && append_event(d, g, kind, pid, NULL) == 0)
		return;
	struct pending_event *e = calloc(1, sizeof(*e));
	if (!e) {
		pgd_log("group %s: out of memory, event lost", g->name);
		return;
	}
	e->kind = kind;
	e->pid = pid;
	*g->pending_tail = e;
	g->pending_tail = &e->next;
}

static uint64_t pow2_at_least(uint64_t v)
{
	uint64_t p = RING_MIN_BYTES;
	while (p < v && p < RING_MAX_BYTES)
		p <<= 1;
	return p;
}

int registry_create(struct daemon *d, struct session *s, const char *name, uint64_t ring_bytes,
		    uint64_t max_msg, uint32_t stall_ms, uint32_t mode, struct group **out)
{
	if (registry_find(d, name))
		return -EEXIST;
	if (mode & ~0777u)
		return -EINVAL;
	if (!ring_bytes && !max_msg) {
		ring_bytes = RING_DEFAULT_BYTES;
		max_msg = RING_DEFAULT_MAX_MSG;
	} else if (!ring_bytes) {
		ring_bytes = pow2_at_least(2 * ring_rec_bytes(max_msg) + RING_EVENT_RESERVE);
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
	struct group *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	snprintf(g->name, sizeof(g->name), "%s", name);
	g->data_fd = g->data_ro_fd = g->cursor_fd = -1;
	g->pending_tail = &g->pending;
	g->uid = s->creds.uid;
	g->gid = s->creds.gid;
	g->mode = mode ? mode : 0600;
	err = ring_create(ring_bytes, (uint32_t)max_msg, stall_ms ? stall_ms : 1000, name,
			  &g->data_fd, &g->cursor_fd);
	if (err)
		goto fail;
	err = ring_map(&g->ring, g->data_fd, g->cursor_fd, true);
	if (err)
		goto fail;
	atomic_store(&g->ring.writers[RING_DAEMON_WRITER].pid, (int32_t)getpid());
	atomic_store(&g->ring.writers[RING_DAEMON_WRITER].claim_pos, RING_NO_CLAIM);
	/* A read-only file description of the same memfd, for members that
	 * may not send: their mapping of the data area cannot be writable. */
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", g->data_fd);
	g->data_ro_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (g->data_ro_fd < 0) {
		err = -errno;
		goto fail;
	}
	g->next = d->groups;
	d->groups = g;
	*out = g;
	return 0;
fail:
	if (g->ring.hdr)
		ring_unmap(&g->ring);
	if (g->data_fd >= 0)
		close(g->data_fd);
	if (g->cursor_fd >= 0)
		close(g->cursor_fd);
	free(g);
	return err;
}

static void unlink_member(struct member *m)
{
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
}

int registry_join(struct daemon *d, struct group *g, struct session *target, struct member **out)
{
	struct member *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	uint64_t start;
	int err = ring_member_add(&g->ring, target->pid, &m->slot, &m->state_word, &start);
	if (err) {
		free(m);
		return err;
	}
	/* The member's first record is its own JOINED event, so its place in
	 * the order is exact. Without room for it the join fails cleanly. */
	flush_pending(d, g);
	err = g->pending ? -EAGAIN : append_event(d, g, RING_REC_JOINED, target->pid, &start);
	if (err) {
		ring_member_remove(&g->ring, m->slot);
		free(m);
		return err == -EAGAIN ? -ENOBUFS : err;
	}
	m->group = g;
	m->session = target;
	m->start = start;
	/* Append at the tail, so listings follow join order. */
	struct member **p = &g->members;
	while (*p)
		p = &(*p)->next_in_group;
	*p = m;
	m->next_in_session = target->members;
	target->members = m;
	g->n_members++;
	*out = m;
	return 0;
}

void registry_remove(struct daemon *d, struct member *m, uint16_t kind)
{
	struct group *g = m->group;
	ring_member_remove(&g->ring, m->slot);
	if (!m->evicted)
		post_event(d, g, kind, m->session->pid);
	unlink_member(m);
	free(m);
}

int registry_writer(struct daemon *d, struct group *g, struct session *s, uint32_t *slot)
{
	for (struct writer_ref *w = s->writers; w; w = w->next_in_session)
		if (w->group == g) {
			*slot = w->slot;
			return 0;
		}
	struct writer_ref *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	int err = ring_writer_alloc(&g->ring, s->pid, &w->slot);
	if (err) {
		free(w);
		return err == -ENOSPC ? -EUSERS : err;
	}
	w->group = g;
	w->held_pos = RING_NO_CLAIM;
	w->next_in_session = s->writers;
	s->writers = w;
	*slot = w->slot;
	return 0;
}

/* Seal a dead writer's open claim once its process is surely gone. True
 * when the slot is done with (sealed, or its claim was not one). */
static bool seal_dead_writer(struct daemon *d, struct dead_writer *dw)
{
	struct pollfd p = {.fd = dw->pidfd, .events = POLLIN};
	struct group *g = dw->group;
	if (!dw->dead && poll(&p, 1, 0) <= 0) {
		/* Alive without its session (it closed the socket, or
		 * exec'd): it may still send through its mapping with this
		 * slot, so the slot stays its own (its claims keep counting)
		 * until it dies. Like any writer, it loses a claim held past
		 * the stall limit. */
		uint64_t pos = atomic_load(&g->ring.writers[dw->slot].claim_pos);
		if (pos != RING_NO_CLAIM &&
		    ring_now_ns() - dw->since > (int64_t)g->ring.stall_ms * 1000000 &&
		    ring_cancel_writer(&g->ring, dw->slot, pos) == 0)
			ring_wake(&g->ring);
		return false;
	}
	int err = ring_seal_writer(&g->ring, dw->slot);
	if (err == -EAGAIN)
		return false; /* another claim names the place: wait */
	if (err)
		pgd_log("group %s: writer slot %u holds a bogus claim", g->name, dw->slot);
	ring_wake(&g->ring);
	ring_writer_free(&g->ring, dw->slot);
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
 * A session's writer slots: with BYE (pg_close: the library aborted its
 * claims and forgot the mapping) a slot is free at once; a dead process's
 * is sealed; a live process that only lost its connection keeps its slot
 * until it dies, since it may go on sending through its mapping.
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
		struct dead_writer *dw = NULL;
		if (!only && (!s->said_bye ||
			      atomic_load(&r->writers[w->slot].claim_pos) != RING_NO_CLAIM))
			dw = calloc(1, sizeof(*dw));
		if (dw && (dw->pidfd = fcntl(s->proc->pidfd, F_DUPFD_CLOEXEC, 0)) >= 0) {
			dw->dead = dead;
			dw->since = ring_now_ns();
			dw->group = w->group;
			dw->slot = w->slot;
			dw->next = d->dead_writers;
			d->dead_writers = dw;
		} else if (!only) {
			free(dw);
			ring_writer_free(r, w->slot);
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

static void group_free(struct daemon *d, struct group *g)
{
	for (struct group **p = &d->groups; *p; p = &(*p)->next)
		if (*p == g) {
			*p = g->next;
			break;
		}
	while (g->members) {
		struct member *m = g->members;
		unlink_member(m);
		free(m);
	}
	for (struct session *s = d->sessions; s; s = s->next)
		drop_writers(d, s, g, false);
	free_dead_writers(d, g, false);
	while (g->pending) {
		struct pending_event *e = g->pending;
		g->pending = e->next;
		free(e);
	}
	ring_unmap(&g->ring);
	close(g->data_fd);
	close(g->data_ro_fd);
	close(g->cursor_fd);
	free(g);
}

/* Mark a group down for everyone who still maps it. */
static void group_down(struct daemon *d, struct group *g)
{
	/* A DOWN record where there is room, so readers get everything
	 * before it in order; the state word covers a full ring. */
	append_event(d, g, RING_REC_DOWN, 0, NULL);
	ring_set_down(&g->ring);
	wake_all(g);
}

int registry_delete(struct daemon *d, struct session *s, struct group *g)
{
	if (s->creds.uid != 0 && s->creds.uid != g->uid)
		return -EACCES;
	group_down(d, g);
	group_free(d, g);
	return 0;
}

/* A live writer holding its claim past the stall limit: cancel it, so
 * readers move on (its commit will return -ECANCELED). */
static void cancel_stuck_claims(struct daemon *d)
{
	int64_t now = ring_now_ns();
	for (struct session *s = d->sessions; s; s = s->next) {
		for (struct writer_ref *w = s->writers; w; w = w->next_in_session) {
			struct ring *r = &w->group->ring;
			uint64_t pos = atomic_load(&r->writers[w->slot].claim_pos);
			if (pos != w->held_pos) {
				w->held_pos = pos;
				w->held_since = now;
				w->cancelled = false;
				continue;
			}
			if (pos == RING_NO_CLAIM || w->cancelled ||
			    now - w->held_since < (int64_t)r->stall_ms * 1000000)
				continue;
			int err = ring_cancel_writer(r, w->slot, pos);
			if (err == -EAGAIN || err == -ESTALE)
				continue;
			w->cancelled = true;
			if (err)
				pgd_log("group %s: writer slot %u holds a bogus claim",
					w->group->name, w->slot);
			else
				pgd_log("group %s: cancelled a claim pid %d held for %lld ms",
					w->group->name, (int)s->pid,
					(long long)((now - w->held_since) / 1000000));
			ring_wake(r);
		}
	}
}

void registry_tick(struct daemon *d)
{
	free_dead_writers(d, NULL, true);
	cancel_stuck_claims(d);
	for (struct group *g = d->groups; g; g = g->next) {
		flush_pending(d, g);
		/* A sender that evicted a member may have died before telling
		 * us: the slot's state says so anyway. */
		for (struct member *m = g->members; m;) {
			struct member *next = m->next_in_group;
			uint32_t w = atomic_load(&g->ring.members[m->slot].state);
			if (!m->evicted && RING_STATE_OF(w) == RING_MEMBER_EVICTED &&
			    RING_GEN_OF(w) == RING_GEN_OF(m->state_word)) {
				pgd_log("group %s: member pid %d evicted for lagging", g->name,
					(int)m->session->pid);
				m->evicted = true;
				g->n_members--;
				post_event(d, g, RING_REC_LEFT, m->session->pid);
			}
			m = next;
		}
	}
}

void registry_destroy_all(struct daemon *d)
{
	while (d->groups) {
		struct group *g = d->groups;
		ring_set_down(&g->ring);
		wake_all(g);
		group_free(d, g);
	}
}

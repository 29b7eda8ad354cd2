// SPDX-License-Identifier: MIT
/*
 * Client sessions: one per control connection (pg_ctx). The peer's identity
 * comes from the kernel (SO_PEERCRED + a pidfd), never from the client.
 * Requests are parsed with bounds checks; anything malformed gets an error
 * reply and changes nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "proto/ctl.h"
#include "proto/wire.h"
#include "ring/wait.h"
#include "timing.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5; Debian 12's headers lack it */
#endif

/* One request/reply buffer: the loop is single-threaded. */
static struct ctl_out out_msg;
static uint8_t in_buf[CTL_MAX_BYTES];

static int peer_pidfd(int fd, pid_t pid)
{
	int pidfd;
	socklen_t len = sizeof(pidfd);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && pidfd >= 0)
		return pidfd;
	/* Older kernel: open by pid, then check the peer is still connected,
	 * so the pid cannot have been reused under us since accept. */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return -errno;
	struct pollfd p = {.fd = fd, .events = POLLRDHUP};
	if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP))) {
		close(pidfd);
		return -ESRCH;
	}
	return pidfd;
}

static struct proc *proc_get(struct daemon *d, pid_t pid, int pidfd)
{
	for (struct proc *p = d->procs; p; p = p->next) {
		if (p->pid != pid)
			continue;
		struct pollfd pf = {.fd = p->pidfd, .events = POLLIN};
		if (poll(&pf, 1, 0) > 0) {
			/* The pid was reused: the process we knew is dead and
			 * its sessions only linger (the orphan grace). They go
			 * now, as exited; the newcomer gets a proc of its own. */
			session_proc_exited(d, pid);
			break;
		}
		close(pidfd);
		p->sessions++;
		return p;
	}
	struct proc *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->pid = pid;
	p->pidfd = pidfd;
	p->sessions = 1;
	int err = watch_add(d->watch, pid, pidfd);
	if (err)
		pgd_log("cannot watch pid %d: %s", (int)pid, strerror(-err));
	p->next = d->procs;
	d->procs = p;
	return p;
}

static void proc_put(struct daemon *d, struct proc *p)
{
	if (--p->sessions)
		return;
	for (struct proc **pp = &d->procs; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	watch_remove(d->watch, p->pid);
	close(p->pidfd);
	free(p);
}

static void on_session(struct loop *l, struct loop_src *src, uint32_t events);


/*
 * Out of fds: the listening socket stays readable, and a level-triggered
 * loop would spin on it while the client waits for ever. Give back the
 * reserve fd, take the connection, tell it why, hang up, take the reserve
 * again: the client gets a clear error at once.
 */
/* Tell a connection we cannot serve why, then hang up. */
static void refuse(struct daemon *d, int fd, int err)
{
	static struct ctl_out note;
	ctl_begin(&note, CTL_REFUSED, 0, err);
	ctl_end(&note);
	ctl_send(fd, &note, NULL, 0);
	/* Read what it sent already (its HELLO): closing with unread data
	 * would make its next receive fail with ECONNRESET, not our reason. */
	char junk[64];
	while (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
		;
	close(fd);
	if (!d->said_full) {
		pgd_log("refusing new connections: %s", strerror(-err));
		d->said_full = true;
	}
}

static void refuse_one(struct daemon *d, int err)
{
	if (d->reserve_fd >= 0)
		close(d->reserve_fd);
	int fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd >= 0)
		refuse(d, fd, err);
	d->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void session_accept(struct daemon *d)
{
	int fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE)
			refuse_one(d, -errno);
		return;
	}
	d->said_full = false;
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		refuse(d, fd, -errno);
		return;
	}
	int pidfd = peer_pidfd(fd, cr.pid);
	if (pidfd < 0) {
		/* Out of fds (the connection took our last) or the peer gone:
		 * whoever is there learns why, never a silent hang-up. */
		refuse(d, fd, pidfd);
		return;
	}
	int sndbuf = 2 * CTL_MAX_BYTES;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	struct session *s = calloc(1, sizeof(*s));
	if (!s) {
		close(pidfd);
		refuse(d, fd, -ENOMEM);
		return;
	}
	int qerr = quota_take(&d->quota, cr.uid, QUOTA_HANDLES, 1);
	if (qerr) {
		free(s);
		close(pidfd);
		refuse(d, fd, qerr);
		return;
	}
	s->daemon = d;
	s->fd = fd;
	s->pid = cr.pid;
	s->creds.uid = cr.uid;
	s->creds.gid = cr.gid;
	rights_load_groups(&s->creds, fd);
	s->serial = ++d->next_serial;
	s->proc = proc_get(d, cr.pid, pidfd);
	if (!s->proc || loop_add(&d->loop, &s->src, fd, EPOLLIN | EPOLLRDHUP, on_session, s) < 0) {
		quota_give(&d->quota, cr.uid, QUOTA_HANDLES, 1);
		if (s->proc)
			proc_put(d, s->proc);
		else
			close(pidfd);
		refuse(d, fd, -ENOMEM);
		free(s);
		return;
	}
	/* Append: session order is accept order. */
	struct session **p = &d->sessions;
	while (*p)
		p = &(*p)->next;
	*p = s;
}

void session_close(struct daemon *d, struct session *s, uint16_t kind)
{
	registry_drop_session(d, s, kind);
	registry_drop_shelves(s);
	if (!s->orphaned_at)
		loop_del(&d->loop, &s->src);
	close(s->fd);
	for (struct session **p = &d->sessions; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			break;
		}
	proc_put(d, s->proc);
	quota_give(&d->quota, s->creds.uid, QUOTA_HANDLES, 1);
	free(s);
}

void session_proc_exited(struct daemon *d, pid_t pid)
{
	for (struct session *s = d->sessions, *next; s; s = next) {
		next = s->next;
		if (s->pid == pid)
			session_close(d, s, RING_REC_EXITED);
	}
}

/* The first handle `pid` opened on this node, or NULL. */
static struct session *first_session_of(struct daemon *d, pid_t pid)
{
	for (struct session *s = d->sessions; s; s = s->next)
		if (s->pid == pid && !s->orphaned_at)
			return s;
	return NULL;
}

/* The session's membership of g that is still one (not evicted). */
static struct member *membership(struct group *g, struct session *s)
{
	for (struct member *m = s->members; m; m = m->next_in_session)
		if (m->group == g && !m->evicted)
			return m;
	return NULL;
}

static int reply(struct session *s, const struct ctl_in *req, int status, const int *fds,
		 unsigned nfds)
{
	if (status == 0 && ctl_end(&out_msg) < 0)
		status = -EMSGSIZE;
	if (status) {
		ctl_begin(&out_msg, (uint8_t)(req->hdr.type | CTL_REPLY), req->hdr.id, status);
		ctl_end(&out_msg);
		nfds = 0;
	}
	/* Failing to send means the client is gone or does not read its
	 * socket (it is non-blocking: we never wait for a client). */
	int err = ctl_send(s->fd, &out_msg, fds, nfds);
	if (err)
		s->broken = true;
	return err;
}

static void begin_reply(const struct ctl_in *req)
{
	ctl_begin(&out_msg, (uint8_t)(req->hdr.type | CTL_REPLY), req->hdr.id, 0);
}

static int get_group(struct daemon *d, const struct ctl_in *req, struct group **g)
{
	char name[256];
	int err = ctl_get_str(req, CTL_T_NAME, name, sizeof(name));
	if (err)
		return -EINVAL;
	if (ctl_check_group(name, strlen(name)))
		return -EINVAL;
	*g = registry_find(d, name);
	if (*g)
		return 0;
	/* Another node's: its members here read a replica (replica.c); its
	 * master lost, calls on it fail so until the name is made again. */
	if (names_master(d, name))
		return -EREMOTE;
	return replica_lost(d, name) ? -EHOSTUNREACH : -ENOENT;
}

/* A group a request names: this node's, or its replica here of another
 * node's (for what a member does with its membership). */
static int get_group_or_replica(struct daemon *d, const struct ctl_in *req, struct group **g,
				char name[256])
{
	int err = get_group(d, req, g);
	if (err == -EREMOTE) {
		ctl_get_str(req, CTL_T_NAME, name, 256);
		*g = registry_find_replica(d, name);
	}
	return err;
}

static int do_delete(struct daemon *d, struct session *s, const struct ctl_in *req)
{
	struct group *g;
	char name[256];
	struct names_answer a = {.session = s->serial, .type = CTL_DELETE, .id = req->hdr.id};
	int err = get_group(d, req, &g);
	if (err == -EREMOTE) {
		ctl_get_str(req, CTL_T_NAME, name, sizeof(name));
		return names_delete(d, &s->creds, name, &a);
	}
	if (err)
		return err;
	return names_delete_here(d, &s->creds, g, &a);
}

void session_answer(struct daemon *d, uint64_t serial, uint8_t type, uint32_t id, int status)
{
	for (struct session *s = d->sessions; s; s = s->next) {
		if (s->serial != serial)
			continue;
		ctl_begin(&out_msg, (uint8_t)(type | CTL_REPLY), id, status);
		ctl_end(&out_msg);
		/* Never waits; a client that cannot take it is dropped on its
		 * next request. */
		if (ctl_send(s->fd, &out_msg, NULL, 0))
			s->broken = true;
		return;
	}
}

/* JOIN and LEAVE: a group and a pid (0 = the caller). */
static int may(const struct session *s, const struct group *g, enum right r)
{
	return rights_check(&s->creds, g->uid, g->gid, g->mode, r);
}

static void put_members(struct daemon *d, struct group *g)
{
	for (struct member *m = g->members; m; m = m->next_in_group)
		if (!m->evicted && !ctl_put_member(&out_msg, m->session->pid, d->node))
			return;
	for (struct rmember *m = g->rmembers; m; m = m->next)
		if (!ctl_put_member(&out_msg, m->pid, m->node))
			return;
}

static int do_create(struct daemon *d, struct session *s, const struct ctl_in *req)
{
	struct names_create_req c = {0};
	if (ctl_get_str(req, CTL_T_NAME, c.name, sizeof(c.name)) ||
	    ctl_check_group(c.name, strlen(c.name)))
		return -EINVAL;
	int err = ctl_get_str(req, CTL_T_NODE, c.node, sizeof(c.node));
	if ((err && err != -ENOENT) || (!err && ctl_check_node(c.node, strlen(c.node))))
		return -EINVAL;
	if ((ctl_get_u64(req, CTL_T_RING, &c.ring_bytes) == -EPROTO) ||
	    (ctl_get_u64(req, CTL_T_MAXMSG, &c.max_msg) == -EPROTO) ||
	    (ctl_get_u32(req, CTL_T_STALL, &c.stall_ms) == -EPROTO) ||
	    (ctl_get_u32(req, CTL_T_MODE, &c.mode) == -EPROTO) ||
	    (ctl_get_u32(req, CTL_T_MEMBER_SLOTS, &c.member_slots) == -EPROTO) ||
	    (c.member_slots && !ring_member_slots_ok(c.member_slots)))
		return -EINVAL;
	/* Here, once every other node agreed; or at the master asked for. */
	struct names_answer a = {.session = s->serial, .type = CTL_CREATE, .id = req->hdr.id};
	return names_create(d, &s->creds, &c, &a);
}

/* The ring's sizes go with its fds: the library maps by what the daemon
 * says, never by the header any sender can write. */
static void put_geometry(struct ctl_out *o, const struct group *g)
{
	ctl_put_u64(o, CTL_T_RING, g->ring.capacity);
	ctl_put_u64(o, CTL_T_MAXMSG, g->ring.max_msg);
	ctl_put_u32(o, CTL_T_STALL, g->ring.stall_ms);
	ctl_put_u64(o, CTL_T_DIROFF, g->dir.off);
	ctl_put_u32(o, CTL_T_MEMBER_SLOTS, g->ring.member_slots);
}

static int do_open(struct daemon *d, struct session *s, const struct ctl_in *req)
{
	struct group *g;
	uint32_t flags = 0, slot = 0;
	int err = get_group(d, req, &g);
	if ((err && err != -EREMOTE) || ctl_get_u32(req, CTL_T_FLAGS, &flags) == -EPROTO)
		return err && err != -EREMOTE ? err : -EINVAL;
	bool write = flags & CTL_F_WRITE;
	if (err == -EREMOTE) {
		/* Senders of another node's group write its outbound ring here,
		 * with the rights its master gave the group. */
		char name[256];
		ctl_get_str(req, CTL_T_NAME, name, sizeof(name));
		const struct wire_group *info = names_info(d, name);
		if (!write)
			return -EREMOTE; /* reading is a membership's (its replica) */
		if (!info)
			return -ENOENT;
		if ((err = rights_check(&s->creds, info->uid, info->gid, info->mode, RIGHT_WRITE)) ||
		    (err = replica_outbound(d, &s->creds, name, &g)))
			return err;
	}
	if ((err = may(s, g, write ? RIGHT_WRITE : RIGHT_READ)))
		return err;
	bool had_slot = false;
	if (write) {
		/* A slot it holds already keeps its area; a new one has a new
		 * area, which every member gets before the writer can use it. */
		for (struct writer_ref *w = s->writers; w; w = w->next_in_session)
			if (w->group == g)
				had_slot = true;
		if ((err = registry_writer(d, g, s, &slot)))
			return err;
		if (!had_slot)
			session_push_area(d, g, slot);
	}
	int data = write ? g->data_fd : registry_ro_fd(g->data_fd);
	if (data < 0)
		return data;
	int dir = ring_file_ro(&g->dir);
	if (dir < 0) {
		if (!write)
			close(data);
		return dir;
	}
	begin_reply(req);
	ctl_put_u32(&out_msg, CTL_T_WRITER, slot);
	put_geometry(&out_msg, g);
	/* A writer gets its own area read-write, and no other: its own
	 * shelf, where nothing but its pages and areas are. */
	const struct ring_file *area = write ? &g->ring.area_file[slot] : NULL;
	if (area)
		ctl_put_u64(&out_msg, CTL_T_FILEOFF, area->off);
	int fds[3] = {data, dir, area ? area->fd : -1};
	err = reply(s, req, 0, fds, write ? 3 : 2);
	if (!write)
		close(data);
	close(dir);
	return err;
}

static void push_areas(struct session *s, struct group *g);

/* What a member maps: the data and the directory read-only, its own page
 * read-write. fds[0] and fds[1] are the caller's to close. */
static int member_fds(struct group *g, struct member *m, int fds[3])
{
	if ((fds[0] = registry_ro_fd(g->data_fd)) < 0)
		return fds[0];
	if ((fds[1] = ring_file_ro(&g->dir)) < 0) {
		close(fds[0]);
		return fds[1];
	}
	fds[2] = m->page.fd;
	return 0;
}

/* A join of another node's group: asked of its master, answered later. */
static int join_remote(struct daemon *d, struct session *s, struct session *target,
		       const struct ctl_in *req)
{
	char name[256];
	ctl_get_str(req, CTL_T_NAME, name, sizeof(name));
	const struct wire_group *info = names_info(d, name);
	if (!info)
		return -ENOENT;
	int err;
	if ((err = rights_check(&s->creds, info->uid, info->gid, info->mode, RIGHT_READ)) ||
	    (err = rights_check(&target->creds, info->uid, info->gid, info->mode, RIGHT_READ)))
		return err;
	struct group *g = registry_find_replica(d, name);
	if (g && membership(g, target))
		return -EALREADY;
	return replica_join(d, s, target, name, req->hdr.id);
}

/*
 * The caller itself (pid 0, or its own pid and this is its first handle):
 * the membership comes with the reply, named, so a caller that gave up
 * waiting can give it back. The reply (begun, with the members before
 * the join) ends here.
 */
static int reply_membership(struct daemon *d, struct session *s, uint8_t type, uint32_t id,
			    struct group *g, struct member *m)
{
	struct ctl_in req = {.hdr = {.type = type, .id = id}};
	ctl_put_str(&out_msg, CTL_T_NAME, g->name);
	ctl_put_u32(&out_msg, CTL_T_SLOT, m->slot);
	ctl_put_u32(&out_msg, CTL_T_STATEWORD, m->state_word);
	ctl_put_u64(&out_msg, CTL_T_CURSOR, m->start);
	/* Whose messages from_node 0 are: the master's. */
	ctl_put_str(&out_msg, CTL_T_NODE, g->replica ? replica_master(g) : d->node);
	if (g->replica)
		ctl_put_u32(&out_msg, CTL_T_FLAGS, CTL_F_REPLICA);
	put_geometry(&out_msg, g);
	ctl_put_u64(&out_msg, CTL_T_FILEOFF, m->page.off);
	int fds[3];
	int err = member_fds(g, m, fds);
	if (err) {
		registry_remove(d, m, RING_REC_LEFT);
		return err;
	}
	err = reply(s, &req, 0, fds, 3);
	close(fds[0]);
	close(fds[1]);
	if (err)
		registry_remove(d, m, RING_REC_LEFT);
	else
		push_areas(s, g);
	return err;
}

void session_bye_done(struct daemon *d, uint64_t serial, uint32_t req_id)
{
	struct session *s = session_by_serial(d, serial);
	if (!s || !s->bye_waits)
		return;
	ctl_begin(&out_msg, (uint8_t)(CTL_BYE | CTL_REPLY), req_id, 0);
	ctl_end(&out_msg);
	ctl_send(s->fd, &out_msg, NULL, 0);
	session_close(d, s, RING_REC_LEFT);
}

struct session *session_by_serial(struct daemon *d, uint64_t serial)
{
	for (struct session *s = d->sessions; s; s = s->next)
		if (s->serial == serial)
			return s;
	return NULL;
}

int session_answer_join(struct daemon *d, struct session *s, uint32_t id, struct session *target,
			struct member *m, const struct wire_member *old, uint32_t n_old)
{
	ctl_begin(&out_msg, (uint8_t)(CTL_JOIN | CTL_REPLY), id, 0);
	for (uint32_t i = 0; i < n_old; i++)
		if (!ctl_put_member(&out_msg, old[i].pid, old[i].node))
			break;
	if (target != s) {
		int err = session_notify_joined(d, target, m);
		if (err)
			return -ESRCH;
		struct ctl_in req = {.hdr = {.type = CTL_JOIN, .id = id}};
		return reply(s, &req, 0, NULL, 0);
	}
	return reply_membership(d, s, CTL_JOIN, id, m->group, m);
}

void session_answer_members(struct daemon *d, uint64_t serial, uint32_t id,
			    const struct wire_member *list, uint32_t n, int status)
{
	struct session *s = session_by_serial(d, serial);
	if (!s)
		return;
	ctl_begin(&out_msg, (uint8_t)(CTL_MEMBERS | CTL_REPLY), id, status);
	for (uint32_t i = 0; !status && i < n; i++)
		if (!ctl_put_member(&out_msg, list[i].pid, list[i].node))
			break;
	struct ctl_in req = {.hdr = {.type = CTL_MEMBERS, .id = id}};
	reply(s, &req, status ? status : 0, NULL, 0);
}

static int do_join(struct daemon *d, struct session *s, const struct ctl_in *req)
{
	struct group *g;
	uint32_t pid;
	int err = get_group(d, req, &g);
	if ((err && err != -EREMOTE) || ctl_get_u32(req, CTL_T_PID, &pid))
		return err ? err : -EINVAL;
	struct session *target = pid == 0 ? s : first_session_of(d, (pid_t)pid);
	if (!target)
		return -ESRCH;
	if (s->creds.uid != 0 && s->creds.uid != target->creds.uid)
		return -EPERM;
	if (err == -EREMOTE)
		return join_remote(d, s, target, req);
	/* Both the caller and the process that becomes a member may read. */
	if ((err = may(s, g, RIGHT_READ)) || (err = may(target, g, RIGHT_READ)))
		return err;
	/* An evicted membership keeps its slot until its reader was told
	 * (PG_EVICTED), so a new one takes another slot and queues behind it
	 * in the library: the eviction is never lost. */
	if (membership(g, target))
		return -EALREADY;
	begin_reply(req);
	put_members(d, g); /* the members before this join */
	struct member *m;
	err = registry_join(d, g, target, &m);
	if (err)
		return err;
	if (target != s) {
		err = session_notify_joined(d, target, m);
		if (err) {
			/* The target's connection is broken, not ours. */
			registry_remove(d, m, RING_REC_LEFT);
			return -ESRCH;
		}
		return reply(s, req, 0, NULL, 0);
	}
	return reply_membership(d, s, req->hdr.type, req->hdr.id, g, m);
}

/* Bytes of unread notices a session may have queued before we stop
 * pushing areas to it (about a hundred): the rest of its queue stays for
 * replies, which it waits for. */
#define PUSH_QUEUE_MAX (64 * 1024)

static bool told(const struct session *s, uint64_t shelf)
{
	for (unsigned i = 0; i < SESSION_TOLD; i++)
		if (s->told[i] == shelf)
			return true;
	return false;
}

/*
 * Tell one session about writer's area of g (CTL_ASYNC_AREA), so the first
 * record of a new writer costs its members neither a round trip nor its
 * mapping: they place the area and fault its first page in as the notice
 * comes, before the writer has its reply. With an fd of its shelf once
 * per shelf (a session that keeps it finds the shelf's areas in the
 * directories, ring_loc), without one after: a writer new to 10,000 groups
 * costs a member one fd, and small notices. Only a hint: a member without
 * it finds the area in the directory, or asks (CTL_AREA). A member that
 * does not read its socket is told no more than its queue holds, and is
 * not dropped for a full queue.
 */
/* A member on bells sleeps on none of its groups' wake words: its daemon
 * bell tells it to read its socket (layout.h). */
static void ring_news(struct session *s)
{
	for (struct own_shelf *o = s->own; o; o = o->next) {
		struct ring_bell *b = o->kind == OWN_PAGES ? shelf_bells(o->shelf) : NULL;
		if (b)
			ring_bell_ring(b + RING_BELL_DAEMON, RING_BELL_NEWS);
	}
}

static int push_area(struct session *s, struct group *g, uint32_t writer)
{
	static struct ctl_out note;
	struct ring *r = &g->ring;
	const struct ring_file *area = &r->area_file[writer];
	uint64_t shelf = ring_file_shelf(area);
	int queued = 0;
	if (area->fd < 0 || (ioctl(s->fd, SIOCOUTQ, &queued) == 0 && queued > PUSH_QUEUE_MAX))
		return 0;
	bool with_fd = !shelf || !told(s, shelf);
	ctl_begin(&note, CTL_ASYNC_AREA, 0, 0);
	ctl_put_str(&note, CTL_T_NAME, g->name);
	ctl_put_u32(&note, CTL_T_WRITER, writer);
	ctl_put_u32(&note, CTL_T_GEN, atomic_load(&r->writer_ids[writer].gen));
	ctl_put_u64(&note, CTL_T_FILEOFF, area->off);
	if (shelf)
		ctl_put_u64(&note, CTL_T_SHELF, shelf);
	ctl_end(&note);
	int fd = with_fd ? ring_file_ro(area) : -1;
	if (with_fd && fd < 0)
		return fd;
	int err = ctl_send(s->fd, &note, with_fd ? &fd : NULL, with_fd ? 1 : 0);
	if (fd >= 0)
		close(fd);
	if (err == -EAGAIN)
		return 0;
	if (!err)
		ring_news(s); /* before the writer has its reply: it reads the note first */
	if (err)
		s->broken = true;
	else if (with_fd && shelf) {
		s->told[s->told_next] = shelf;
		s->told_next = (s->told_next + 1) % SESSION_TOLD;
	}
	return err;
}

void session_push_area(struct daemon *d, struct group *g, uint32_t writer)
{
	/* Once per session that holds a membership (it may hold several). */
	for (struct member *m = g->members; m; m = m->next_in_group) {
		bool seen = false;
		for (struct member *o = g->members; o != m && !seen; o = o->next_in_group)
			seen = o->session == m->session;
		/* An evicted member reads nothing more: nothing to push. */
		if (!seen && !m->evicted && !m->session->broken)
			push_area(m->session, g, writer);
	}
}

/* A new member gets the area of every writer that holds a slot now (the
 * node's own is in the directory it already has). */
static void push_areas(struct session *s, struct group *g)
{
	for (uint32_t i = RING_DAEMON_WRITER + 1; i < g->ring.writer_slots && !s->broken; i++)
		if (atomic_load(&g->ring.writer_ids[i].used))
			push_area(s, g, i);
}

int session_notify_joined(struct daemon *d, struct session *s, struct member *m)
{
	static struct ctl_out note;
	struct group *g = m->group;
	ctl_begin(&note, CTL_ASYNC_JOINED, 0, 0);
	ctl_put_str(&note, CTL_T_NAME, g->name);
	ctl_put_u32(&note, CTL_T_SLOT, m->slot);
	ctl_put_u32(&note, CTL_T_STATEWORD, m->state_word);
	ctl_put_u64(&note, CTL_T_CURSOR, m->start);
	ctl_put_str(&note, CTL_T_NODE, g->replica ? replica_master(g) : d->node);
	if (g->replica)
		ctl_put_u32(&note, CTL_T_FLAGS, CTL_F_REPLICA);
	put_geometry(&note, g);
	ctl_put_u64(&note, CTL_T_FILEOFF, m->page.off);
	ctl_end(&note);
	int fds[3];
	int err = member_fds(g, m, fds);
	if (err)
		return err;
	err = ctl_send(s->fd, &note, fds, 3);
	close(fds[0]);
	close(fds[1]);
	if (err)
		return err;
	push_areas(s, g);
	/* The target may be asleep in pg_recv on its other groups: wake them
	 * so it reads its socket. */
	for (struct member *o = s->members; o; o = o->next_in_session) {
		atomic_fetch_add(&o->group->ring.hdr->wake_seq, 1);
		ring_futex_wake(&o->group->ring.hdr->wake_seq);
	}
	ring_news(s);
	return 0;
}

/* A leave is done here: the reply now, or for a replica's member once
 * the master has placed its LEFT in the order (NAMES_LATER). */
static int leave_placed(struct daemon *d, struct session *s, const struct ctl_in *req,
			struct group *g, pid_t pid)
{
	if (g->replica &&
	    replica_leave_wait(d, g, s->serial, req->hdr.id, pid, false) == NAMES_LATER)
		return NAMES_LATER;
	begin_reply(req);
	return reply(s, req, 0, NULL, 0);
}

static int do_leave(struct daemon *d, struct session *s, const struct ctl_in *req)
{
	struct group *g;
	uint32_t pid;
	char name[256] = "";
	int err = get_group_or_replica(d, req, &g, name);
	if ((err && err != -EREMOTE) || ctl_get_u32(req, CTL_T_PID, &pid))
		return err && err != -EREMOTE ? err : -EINVAL;
	uint32_t slot;
	if (err == -EREMOTE && pid == 0 && ctl_get_u32(req, CTL_T_SLOT, &slot) == 0) {
		/* A membership of a replica, maybe of one that ended (this
		 * node was dropped for lagging) and only waits for it. */
		for (struct member *x = s->members; x; x = x->next_in_session)
			if (x->group->replica && x->slot == slot && !strcmp(x->group->name, name)) {
				bool told = x->evicted;
				struct group *rg = x->group;
				registry_remove(d, x, RING_REC_LEFT);
				if (told)
					return -ESRCH;
				return leave_placed(d, s, req, rg, s->pid);
			}
		return -ESRCH;
	}
	if (err == -EREMOTE && !g)
		return -ESRCH; /* no member of it here */
	struct member *m = NULL;
	if (pid == 0 && ctl_get_u32(req, CTL_T_SLOT, &slot) == 0) {
		/* The library is done with this one slot: left, or told it
		 * was evicted (then only the slot goes; PG_LEFT was written). */
		for (struct member *x = s->members; x && !m; x = x->next_in_session)
			if (x->group == g && x->slot == slot)
				m = x;
		if (m && m->evicted) {
			registry_remove(d, m, RING_REC_LEFT);
			return -ESRCH;
		}
	} else if (pid == 0) {
		m = membership(g, s);
	} else {
		for (struct member *x = g->members; x && !m; x = x->next_in_group)
			if (x->session->pid == (pid_t)pid && !x->evicted)
				m = x;
		if (m && s->creds.uid != 0 && s->creds.uid != m->session->creds.uid)
			return -EPERM;
	}
	if (!m)
		return -ESRCH;
	pid_t who = m->session->pid;
	registry_remove(d, m, RING_REC_LEFT);
	return leave_placed(d, s, req, g, who);
}

static int do_list(struct daemon *d, struct session *s, const struct ctl_in *req)
{
	begin_reply(req);
	if ((req->hdr.type) == CTL_MEMBERS || req->hdr.type == CTL_MONITOR) {
		struct group *g;
		int err = get_group(d, req, &g);
		if (err == -EREMOTE) {
			/* The master's view, asked of it; monitoring is the
			 * library's own (events are in every replica). */
			char name[256];
			ctl_get_str(req, CTL_T_NAME, name, sizeof(name));
			const struct wire_group *info = names_info(d, name);
			if (!info)
				return -ENOENT;
			if ((err = rights_check(&s->creds, info->uid, info->gid, info->mode,
						RIGHT_READ)))
				return err;
			if (req->hdr.type == CTL_MEMBERS)
				return replica_members(d, s, name, req->hdr.id);
			return reply(s, req, 0, NULL, 0);
		}
		if (err)
			return err;
		if ((err = may(s, g, RIGHT_READ)))
			return err;
		if (req->hdr.type == CTL_MEMBERS)
			put_members(d, g);
		return reply(s, req, 0, NULL, 0);
	}
	/* Groups are listed newest first, this node's and other nodes'; a
	 * long list comes in pages, each ending with TRUNCATED = the serial
	 * to ask for next (groups older than the last one sent). */
	uint64_t below = UINT64_MAX;
	if (ctl_get_u64(req, CTL_T_CURSOR, &below) == -EPROTO)
		return -EINVAL;
	names_list(d, &s->creds, &out_msg, below);
	return reply(s, req, 0, NULL, 0);
}

/* The member of g in `slot` holding `word`, still a member; or NULL. */
static struct member *member_at(struct group *g, const struct ctl_in *req)
{
	uint32_t slot, word;
	if (ctl_get_u32(req, CTL_T_SLOT, &slot) || ctl_get_u32(req, CTL_T_STATEWORD, &word))
		return NULL;
	for (struct member *m = g->members; m; m = m->next_in_group)
		if (m->slot == slot && m->state_word == word && !m->evicted)
			return m;
	return NULL;
}

/*
 * A sender asks to evict the member that held it up. Only the node writes
 * the directory, and it grants the request only when it saw the member
 * stall itself (or the member is the caller's own: the self-block rule).
 * So a sender can evict no member that keeps up.
 */
static int do_evict(struct daemon *d, struct session *s, const struct ctl_in *req)
{
	struct group *g;
	int err = get_group(d, req, &g);
	if (err == -EREMOTE)
		return -EAGAIN; /* only the forwarder reads an outbound ring: it is acked, not evicted */
	if (err)
		return err;
	struct member *m = member_at(g, req);
	uint32_t slot, word;
	if (!m && !ctl_get_u32(req, CTL_T_SLOT, &slot) && !ctl_get_u32(req, CTL_T_STATEWORD, &word) &&
	    replica_stream_page(g, slot, word)) {
		/* Another node's stream: that node goes if it lagged that long. */
		if ((err = may(s, g, RIGHT_WRITE)) || (err = replica_evict_slot(d, g, slot, true)))
			return err;
		begin_reply(req);
		return reply(s, req, 0, NULL, 0);
	}
	if (!m)
		return -ESRCH;
	bool own = m->session->pid == s->pid;
	if (!own && (err = may(s, g, RIGHT_WRITE)))
		return err;
	if (!own && !registry_stalled(g, m, ring_now_ns()))
		return -EAGAIN;
	registry_evict(d, m);
	begin_reply(req);
	return reply(s, req, 0, NULL, 0);
}

/* Reply with a read-only fd of an area or page, and where in it it is. */
static int reply_ro_file(struct session *s, const struct ctl_in *req, const struct ring_file *f)
{
	int fd = ring_file_ro(f);
	if (fd < 0)
		return fd;
	begin_reply(req);
	ctl_put_u64(&out_msg, CTL_T_FILEOFF, f->off);
	if (ring_file_shelf(f))
		ctl_put_u64(&out_msg, CTL_T_SHELF, ring_file_shelf(f));
	int err = reply(s, req, 0, &fd, 1);
	close(fd);
	return err;
}

/* A member maps the area of a writer whose record it came to. */
static int do_area(struct daemon *d, struct session *s, const struct ctl_in *req)
{
	struct group *g;
	uint32_t writer, gen;
	int err = get_group(d, req, &g);
	if (err)
		return err;
	if ((err = may(s, g, RIGHT_READ)))
		return err;
	if (ctl_get_u32(req, CTL_T_WRITER, &writer) || ctl_get_u32(req, CTL_T_GEN, &gen))
		return -EINVAL;
	struct ring *r = &g->ring;
	if (writer >= r->writer_slots || r->area_file[writer].fd < 0 ||
	    atomic_load(&r->writer_ids[writer].gen) != gen)
		return -ESTALE;
	return reply_ro_file(s, req, &r->area_file[writer]);
}

/* A producer maps the page of a member it found in the directory. */
static int do_mpage(struct daemon *d, struct session *s, const struct ctl_in *req)
{
	struct group *g;
	int err = get_group(d, req, &g);
	if (err == -EREMOTE) {
		/* A sender here of another node's group: its outbound ring. */
		char name[256];
		ctl_get_str(req, CTL_T_NAME, name, sizeof(name));
		if (!(g = registry_find_outbound(d, name)))
			return -ESTALE;
		err = 0;
	}
	if (err)
		return err;
	/* Pages are for producers: only they wait on members' cursors. */
	if ((err = may(s, g, RIGHT_WRITE)))
		return err;
	struct member *m = member_at(g, req);
	if (m)
		return reply_ro_file(s, req, &m->page);
	/* Or the daemon's own slot of another node's stream (replica.c). */
	uint32_t slot, word;
	const struct ring_file *page =
	    ctl_get_u32(req, CTL_T_SLOT, &slot) || ctl_get_u32(req, CTL_T_STATEWORD, &word)
		? NULL
		: replica_stream_page(g, slot, word);
	return page ? reply_ro_file(s, req, page) : -ESTALE;
}

/* Handle one request; false when the session is gone. */
static bool handle(struct daemon *d, struct session *s, const struct ctl_in *req)
{
	int err;
	switch (req->hdr.type) {
	case CTL_HELLO:
		begin_reply(req);
		ctl_put_str(&out_msg, CTL_T_NODE, d->node);
		/* Pids are as the daemon sees them: the library sends and
		 * filters esend with this one, not with its own getpid(). */
		ctl_put_u32(&out_msg, CTL_T_PID, (uint32_t)s->pid);
		err = reply(s, req, 0, &d->alive.ro_fd, 1);
		break;
	case CTL_CREATE:
		err = do_create(d, s, req);
		if (err == NAMES_LATER) {
			err = 0; /* session_answer replies */
		} else if (!err) {
			begin_reply(req);
			err = reply(s, req, 0, NULL, 0);
		}
		break;
	case CTL_DELETE:
		err = do_delete(d, s, req);
		if (err == NAMES_LATER) {
			err = 0;
		} else if (!err) {
			begin_reply(req);
			err = reply(s, req, 0, NULL, 0);
		}
		break;
	case CTL_OPEN:
		err = do_open(d, s, req);
		break;
	case CTL_JOIN:
		err = do_join(d, s, req);
		if (err == NAMES_LATER)
			err = 0; /* answered when the master answers */
		break;
	case CTL_LEAVE:
		err = do_leave(d, s, req);
		if (err == NAMES_LATER)
			err = 0; /* answered when the master has placed the leave */
		break;
	case CTL_MEMBERS:
	case CTL_MONITOR:
	case CTL_GROUPS:
		err = do_list(d, s, req);
		if (err == NAMES_LATER)
			err = 0;
		break;
	case CTL_EVICT:
		err = do_evict(d, s, req);
		break;
	case CTL_MPAGE:
		err = do_mpage(d, s, req);
		break;
	case CTL_AREA:
		err = do_area(d, s, req);
		break;
	case CTL_NODES:
		begin_reply(req);
		cluster_put_nodes(d, &out_msg);
		err = reply(s, req, 0, NULL, 0);
		break;
	case CTL_BYE:
		/* Leave first, then reply: pg_close returns once its PG_LEFT
		 * records are in the rings. */
		s->said_bye = true;
		{
			/* Leaves of other nodes' groups are placed by their
			 * masters: the reply (and the close) waits for them. */
			unsigned later = 0;
			for (struct member *m = s->members; m; m = m->next_in_session)
				if (m->group->replica && !m->evicted &&
				    replica_leave_wait(d, m->group, s->serial, req->hdr.id, s->pid,
						       true) == NAMES_LATER)
					later++;
			registry_drop_session(d, s, RING_REC_LEFT);
			if (later) {
				loop_del(&d->loop, &s->src); /* it asks nothing more */
				s->bye_waits = true;
				return false;
			}
		}
		begin_reply(req);
		reply(s, req, 0, NULL, 0);
		session_close(d, s, RING_REC_LEFT);
		return false;
	default:
		err = -EOPNOTSUPP;
	}
	/* An error from a handler becomes the reply; a reply that could not
	 * be sent drops the client. */
	if (err && !s->broken)
		reply(s, req, err, NULL, 0);
	if (s->broken) {
		session_close(d, s, RING_REC_LEFT);
		return false;
	}
	return true;
}

/*
 * A connection ended without BYE: the process died, or only closed it. The
 * socket closes in do_exit a moment before the pidfd signals, so unless the
 * exit already shows, wait for the watcher (PG_EXITED) for a short grace;
 * session_reap_orphans then calls it a leave (PG_LEFT). The loop never
 * blocks on it.
 */
static void session_orphan(struct daemon *d, struct session *s)
{
	struct pollfd p = {.fd = s->proc->pidfd, .events = POLLIN};
	if (poll(&p, 1, 0) > 0) {
		session_close(d, s, RING_REC_EXITED);
		return;
	}
	loop_del(&d->loop, &s->src);
	s->orphaned_at = ring_now_ns();
}

void session_reap_orphans(struct daemon *d)
{
	int64_t now = ring_now_ns();
	for (struct session *s = d->sessions, *next; s; s = next) {
		next = s->next;
		if (!s->orphaned_at)
			continue;
		/* The watcher normally reports the exit first; this covers an
		 * exit it could not report (e.g. a full BPF ring buffer). */
		struct pollfd p = {.fd = s->proc->pidfd, .events = POLLIN};
		if (poll(&p, 1, 0) > 0)
			session_close(d, s, RING_REC_EXITED);
		else if (now - s->orphaned_at > PGD_ORPHAN_GRACE_NS)
			session_close(d, s, RING_REC_LEFT);
	}
}

static void on_session(struct loop *l, struct loop_src *src, uint32_t events)
{
	struct session *s = src->arg;
	struct daemon *d = s->daemon;
	int fds[CTL_MAX_FDS];
	unsigned nfds = 0; /* clients send no fds: any they do are closed */
	ssize_t n = ctl_recv(s->fd, in_buf, sizeof(in_buf), fds, &nfds, MSG_DONTWAIT);
	if (n == -EAGAIN)
		return;
	/* A zero-length read is the end only when the peer hung up; on a
	 * SEQPACKET socket it can also be an empty datagram (garbage). */
	if ((n == 0 && (events & (EPOLLHUP | EPOLLRDHUP))) || (n < 0 && n != -EMSGSIZE)) {
		session_orphan(d, s);
		return;
	}
	struct ctl_in req;
	if (n == -EMSGSIZE || ctl_parse(&req, in_buf, (size_t)n) < 0 ||
	    (req.hdr.type & CTL_REPLY) || req.hdr.type >= CTL_ASYNC_JOINED) {
		/* Garbage: say so and carry on; echo the id when readable. */
		struct ctl_in bad = {.hdr = {.type = 0}};
		/* An oversized datagram was cut to our buffer: its header is there. */
		if (n == -EMSGSIZE || n >= (ssize_t)sizeof(struct ctl_hdr))
			memcpy(&bad.hdr, in_buf, sizeof(bad.hdr));
		bad.hdr.type &= (uint8_t)~CTL_REPLY;
		if (bad.hdr.type == 0 || bad.hdr.type >= CTL_ASYNC_JOINED)
			bad.hdr.type = CTL_HELLO;
		if (reply(s, &bad, -EPROTO, NULL, 0) < 0)
			session_close(d, s, RING_REC_LEFT);
		return;
	}
	handle(d, s, &req);
}

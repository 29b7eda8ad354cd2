// SPDX-License-Identifier: MIT
/*
 * This node among others: the daemon's side of the node links. It loads
 * the cookie, starts the mesh (lib/node), plugs the links' io_uring into
 * the event loop, and answers what operators ask about other nodes.
 */
#include "daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "log.h"
#include "node/handshake.h"
#include "node/link.h"
#include "node/mesh.h"
#include "proto/ctl.h"
#include "ring/wait.h"

static_assert(MESH_DOWN == (int)CTL_NODE_DOWN && MESH_LINKING == (int)CTL_NODE_LINKING &&
		      MESH_PROBATION == (int)CTL_NODE_PROBATION && MESH_UP == (int)CTL_NODE_UP,
	      "a peer's state is listed as it is");

struct cluster {
	struct node_io *io;
	struct mesh *mesh;
	struct loop_src io_src;
	struct loop_src poll_src;
	int poll_fd; /* one-shot timer of cluster_poll_soon */
	bool poll_armed;
	bool encrypt;
	int64_t started;
};

static void on_io(struct loop *l, struct loop_src *src, uint32_t events)
{
	struct daemon *d = src->arg;
	node_io_complete(d->cluster->io);
}

static void on_poll(struct loop *l, struct loop_src *src, uint32_t events)
{
	struct daemon *d = src->arg;
	uint64_t n;
	if (read(d->cluster->poll_fd, &n, sizeof(n)) != sizeof(n))
		return;
	d->cluster->poll_armed = false;
	replica_poll(d);
}

void cluster_poll_soon(struct daemon *d)
{
	struct cluster *c = d->cluster;
	if (!c || c->poll_fd < 0 || c->poll_armed)
		return;
	struct itimerspec its = {.it_value = {0, 1000000}};
	if (timerfd_settime(c->poll_fd, 0, &its, NULL) == 0)
		c->poll_armed = true;
}

static void on_idle(void *arg)
{
	struct daemon *d = arg;
	replica_flush(d); /* the acks of what this round of frames sequenced */
	node_io_flush(d->cluster->io);
}

static void peer_up(void *arg, struct mesh_peer *p)
{
	names_peer_up(arg, p);
}

static void peer_down(void *arg, struct mesh_peer *p)
{
	replica_peer_down(arg, p);
	names_peer_down(arg, p);
}

/* Frames above the mesh's own: the namespace's, then the replicas'. */
static int peer_frame(void *arg, struct mesh_peer *p, const struct wire_frame *f)
{
	if (f->type >= WIRE_SUB)
		return replica_frame(arg, p, f);
	return names_frame(arg, p, f);
}

struct mesh *cluster_mesh(struct daemon *d)
{
	return d->cluster ? d->cluster->mesh : NULL;
}

int cluster_start(struct daemon *d, const struct pgd_opts *o)
{
	if (!o->listen && !o->n_peers)
		return 0;
	struct cluster *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	d->cluster = c;
	c->poll_fd = -1;
	char path[4096];
	int err = 0;
	if (o->cookie_file)
		snprintf(path, sizeof(path), "%s", o->cookie_file);
	else if ((err = hs_cookie_default_path(path, sizeof(path))))
		return err;
	uint8_t master[HS_KEY_BYTES];
	if ((err = hs_cookie_load(path, master))) {
		pgd_log("cookie %s: %s%s", path, strerror(-err),
			err == -EPERM ? " (it must be the daemon user's, mode 0600)" : "");
		return err;
	}
	if ((err = node_io_new(&c->io))) {
		pgd_log("node links need io_uring: %s", strerror(-err));
		goto out;
	}
	c->encrypt = !o->no_encrypt;
	struct mesh_opts mo = {
		.node = d->node,
		.master = master,
		.encrypt = c->encrypt,
		.timeout_ms = o->link_timeout_ms,
		.listen = o->listen,
		.peers = o->peers,
		.n_peers = o->n_peers,
		.log = pgd_log,
		.up = peer_up,
		.down = peer_down,
		.frame = peer_frame,
		.arg = d,
	};
	if ((err = mesh_start(&c->mesh, c->io, &mo)))
		goto out;
	if ((err = loop_add(&d->loop, &c->io_src, node_io_fd(c->io), EPOLLIN, on_io, d)))
		goto out;
	if ((c->poll_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK)) < 0 ||
	    (err = loop_add(&d->loop, &c->poll_src, c->poll_fd, EPOLLIN, on_poll, d))) {
		err = err ? err : -errno;
		goto out;
	}
	d->loop.idle = on_idle;
	d->loop.idle_arg = d;
	pgd_log("node links: listening on %s, %u peer(s) given, cookie %s, %s",
		o->listen ? mesh_listen_addr(c->mesh) : "(nothing)", o->n_peers, path,
		c->encrypt ? "encrypted" : "NOT encrypted (--no-encrypt)");
out:
	memset(master, 0, sizeof(master));
	return err;
}

void cluster_tick(struct daemon *d)
{
	if (d->cluster && d->cluster->mesh) {
		mesh_tick(d->cluster->mesh, ring_now_ns());
		names_tick(d);
		replica_tick(d);
	}
}

void cluster_stop(struct daemon *d)
{
	struct cluster *c = d->cluster;
	if (!c)
		return;
	d->loop.idle = NULL;
	if (c->io)
		loop_del(&d->loop, &c->io_src);
	if (c->poll_fd >= 0) {
		loop_del(&d->loop, &c->poll_src);
		close(c->poll_fd);
	}
	replica_forget_peers(d);
	names_forget_peers(d);
	mesh_stop(c->mesh);
	node_io_destroy(c->io);
	free(c);
	d->cluster = NULL;
}

static void put_node(struct ctl_out *out, const struct ctl_node_info *info)
{
	ctl_put(out, CTL_T_NODEINFO, info, sizeof(*info));
}

void cluster_put_nodes(struct daemon *d, struct ctl_out *out)
{
	struct ctl_node_info me = {.state = CTL_NODE_SELF};
	snprintf(me.name, sizeof(me.name), "%s", d->node);
	struct cluster *c = d->cluster;
	if (c && c->mesh)
		snprintf(me.addr, sizeof(me.addr), "%s", mesh_listen_addr(c->mesh));
	if (c && c->encrypt)
		me.flags |= CTL_NODE_F_ENCRYPTED;
	put_node(out, &me);
	if (!c || !c->mesh)
		return;
	int64_t now = ring_now_ns();
	for (struct mesh_peer *p = mesh_peers(c->mesh); p; p = p->next) {
		struct ctl_node_info info = {0};
		struct link_stats st;
		snprintf(info.name, sizeof(info.name), "%s", p->node);
		snprintf(info.addr, sizeof(info.addr), "%s", p->addr);
		info.state = (uint32_t)p->state; /* enum mesh_state = enum ctl_node_state */
		info.flags = (p->configured ? CTL_NODE_F_CONFIGURED : 0) |
			     (c->encrypt ? CTL_NODE_F_ENCRYPTED : 0);
		info.rtt_ns = (uint64_t)p->rtt_ns;
		mesh_link_stats(p, &st);
		info.lag_ns = st.queued_since ? (uint64_t)(now - st.queued_since) : 0;
		info.heard_ns = p->last_rx ? (uint64_t)(now - p->last_rx) : 0;
		info.since_ns = p->since ? (uint64_t)(now - p->since) : 0;
		info.queued = st.queued + st.in_flight;
		info.tx_bytes = st.tx_bytes;
		info.rx_bytes = st.rx_bytes;
		if (out->len + sizeof(info) + 64 > CTL_MAX_BYTES)
			break;
		put_node(out, &info);
	}
}

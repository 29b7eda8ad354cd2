// SPDX-License-Identifier: MIT
#include "mesh_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto/ctl.h"
#include "proto/path.h"

int64_t mesh_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *mesh_cookie(const char *stem)
{
	static char path[8][128];
	static unsigned n;
	char *p = path[n++ % 8];
	snprintf(p, 128, "/tmp/pgroup-test-%d-%s.cookie", (int)getpid(), stem);
	unlink(p);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return NULL;
	char text[80];
	int len = snprintf(text, sizeof(text), "cookie-%s-%d-%lld\n", stem, (int)getpid(),
			   (long long)mesh_ms());
	if (write(fd, text, (size_t)len) != len) {
		close(fd);
		return NULL;
	}
	close(fd);
	return p;
}

/* The CTL_NODES reply of d, parsed into rep (buf holds it). */
static int ask_nodes(const struct daemon_proc *d, uint8_t *buf, size_t cap, struct ctl_in *rep)
{
	static struct ctl_out req;
	int fd = ctl_connect(d->socket);
	if (fd < 0)
		return fd;
	ctl_begin(&req, CTL_NODES, 1, 0);
	ctl_end(&req);
	int err = ctl_send(fd, &req, NULL, 0);
	if (!err) {
		int fds[CTL_MAX_FDS];
		unsigned nfds = 0;
		ssize_t n = ctl_recv(fd, buf, cap, fds, &nfds, 0);
		err = n <= 0 ? (n ? (int)n : -ENOTCONN) : ctl_parse(rep, buf, (size_t)n);
		if (!err)
			err = rep->hdr.status;
	}
	close(fd);
	return err;
}

int mesh_info(const struct daemon_proc *d, const char *name, struct ctl_node_info *out)
{
	static uint8_t buf[CTL_MAX_BYTES];
	struct ctl_in rep;
	int err = ask_nodes(d, buf, sizeof(buf), &rep);
	if (err)
		return err;
	size_t cur = 0, len;
	const void *v;
	while (ctl_next(&rep, CTL_T_NODEINFO, &cur, &v, &len) == 1) {
		if (len != sizeof(*out))
			return -EPROTO;
		memcpy(out, v, sizeof(*out));
		out->name[63] = out->addr[63] = 0;
		if (name[0] ? !strcmp(out->name, name) : out->state == CTL_NODE_SELF)
			return 0;
	}
	return -ENOENT;
}

int mesh_addr(const struct daemon_proc *d, char *addr, size_t cap, unsigned *port)
{
	struct ctl_node_info me;
	int err = mesh_info(d, "", &me);
	if (err)
		return err;
	const char *colon = strrchr(me.addr, ':');
	if (!colon)
		return -ENOENT;
	snprintf(addr, cap, "%s", me.addr);
	if (port)
		*port = (unsigned)atoi(colon + 1);
	return 0;
}

int mesh_state(const struct daemon_proc *d, const char *name)
{
	struct ctl_node_info n;
	return mesh_info(d, name, &n) ? -1 : (int)n.state;
}

int mesh_wait(const struct daemon_proc *d, const char *name, int state, int timeout_ms)
{
	int64_t start = mesh_ms();
	for (;;) {
		int64_t t = mesh_ms() - start;
		if (mesh_state(d, name) == state)
			return (int)t;
		if (t > timeout_ms)
			return -1;
		usleep(10000);
	}
}

int mesh_node(struct daemon_proc *d, const char *name, unsigned port, const char *cookie,
	      const struct daemon_proc *const *peers, unsigned n_peers, const char *extra)
{
	char flags[1024];
	int n = snprintf(flags, sizeof(flags), "--listen 127.0.0.1:%u --cookie-file %s "
					       "--link-timeout 1000 %s",
			 port, cookie, extra ? extra : "");
	for (unsigned i = 0; i < n_peers; i++) {
		char addr[64];
		int err = mesh_addr(peers[i], addr, sizeof(addr), NULL);
		if (err)
			return err;
		n += snprintf(flags + n, sizeof(flags) - (size_t)n, " --peer %s", addr);
	}
	snprintf(d->log, sizeof(d->log), "/tmp/pgroup-test-%d-%s.log", (int)getpid(), name);
	return daemon_start_with(d, name, flags, 0);
}

bool mesh_logged(const struct daemon_proc *d, const char *text)
{
	FILE *f = fopen(d->log, "r");
	if (!f)
		return false;
	char line[1024];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, text) != NULL;
	fclose(f);
	return found;
}

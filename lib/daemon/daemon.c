// SPDX-License-Identifier: MIT
/* The node daemon: set up the control socket, the exit watcher and the loop. */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "proto/ctl.h"
#include "proto/path.h"
#include "timing.h"


static void on_listen(struct loop *l, struct loop_src *src, uint32_t events)
{
	session_accept(src->arg);
}

static void on_signal(struct loop *l, struct loop_src *src, uint32_t events)
{
	struct daemon *d = src->arg;
	struct signalfd_siginfo si;
	if (read(d->signal_fd, &si, sizeof(si)) == sizeof(si)) {
		pgd_log("signal %u: shutting down", si.ssi_signo);
		d->stop = true;
	}
}

static void on_tick(struct loop *l, struct loop_src *src, uint32_t events)
{
	struct daemon *d = src->arg;
	uint64_t n;
	if (read(d->tick_fd, &n, sizeof(n)) != sizeof(n) || n == 0)
		return;
	bool split = d->tick_pass_groups > PGD_TICK_SPLIT_GROUPS;
	/* A busy loop may have let several ticks go by (n): as many parts,
	 * up to a whole pass, so each group is still looked at once per
	 * PGD_TICK_NS of wall time, and the rest keeps that period too. */
	unsigned parts = split ? (n < PGD_TICK_PARTS ? (unsigned)n : PGD_TICK_PARTS) : 1;
	for (unsigned i = 0; i < parts; i++)
		if (registry_tick(d, split ? PGD_TICK_PARTS : 1))
			break;
	unsigned before = d->tick_n;
	d->tick_n += (unsigned)(n < PGD_TICK_PARTS ? n : PGD_TICK_PARTS);
	if (!d->tick_split || before / PGD_TICK_PARTS != d->tick_n / PGD_TICK_PARTS) {
		session_reap_orphans(d);
		cluster_tick(d);
	}
	if (split != d->tick_split) {
		long ns = split ? PGD_TICK_NS / PGD_TICK_PARTS : PGD_TICK_NS;
		struct itimerspec its = {.it_interval = {0, ns}, .it_value = {0, ns}};
		timerfd_settime(d->tick_fd, 0, &its, NULL);
		d->tick_split = split;
		d->tick_n = 0;
	}
}

static void on_exit_event(void *arg, pid_t pid)
{
	session_proc_exited(arg, pid);
}

static int node_name(const struct pgd_opts *o, char *out, size_t cap)
{
	if (o->node)
		snprintf(out, cap, "%s", o->node);
	else if (gethostname(out, cap) < 0)
		return -errno;
	out[cap - 1] = 0;
	return ctl_check_node(out, strlen(out));
}

/* mkdir -p of the socket's directory: private to a user's own daemon,
 * open to all for a root (system) daemon, whose groups' modes decide who
 * may do what. */
static void make_parent(const char *path)
{
	mode_t mode = geteuid() == 0 ? 0755 : 0700;
	char dir[108];
	snprintf(dir, sizeof(dir), "%s", path);
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		mkdir(dir, mode);
		*p = '/';
	}
}

/* Every fd the hard limit allows: each group costs two, each client one. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		pgd_log("fd limit %llu (about %llu groups)", (unsigned long long)rl.rlim_cur,
			(unsigned long long)(rl.rlim_cur > 64 ? (rl.rlim_cur - 64) / 2 : 0));
}

static int bind_socket(struct daemon *d, int fd, const struct sockaddr_un *sa)
{
	/* A socket file nobody answers on is a dead daemon's: replace it. */
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
		return -EADDRINUSE;
	unlink(d->socket_path);
	if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 || listen(fd, 128) < 0)
		return -errno;
	return 0;
}

static int listen_on(struct daemon *d)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(d->socket_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, d->socket_path);
	make_parent(d->socket_path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Check, unlink and bind under a lock on the socket's directory: two
	 * daemons started at once would otherwise both find no listener, and
	 * the second would unlink the first's socket and bind its own. */
	char dir[108];
	snprintf(dir, sizeof(dir), "%s", d->socket_path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = 0;
	int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		flock(dfd, LOCK_EX);
	int err = bind_socket(d, fd, &sa);
	if (dfd >= 0)
		close(dfd); /* and with it the lock */
	if (err) {
		close(fd);
		return err;
	}
	/* Anyone may connect; what they may do is checked per group. */
	chmod(d->socket_path, 0777);
	d->listen_fd = fd;
	return 0;
}

/* eBPF when we may load it, else pidfds; say once which runs. */
static int start_watcher(struct daemon *d, const struct pgd_opts *o)
{
	const char *why = "--no-bpf";
#ifdef PG_HAVE_BPF
	if (!o->no_bpf) {
		int err = watch_bpf_new(&d->loop, on_exit_event, d, &d->watch);
		if (!err) {
			pgd_log("exit watcher: %s", d->watch->ops->name);
			return 0;
		}
		why = strerror(-err);
	}
#else
	why = o->no_bpf ? "--no-bpf" : "built without BPF";
#endif
	int err = watch_pidfd_new(&d->loop, on_exit_event, d, &d->watch);
	if (!err)
		pgd_log("exit watcher: %s (eBPF not used: %s)", d->watch->ops->name, why);
	return err;
}

static int setup(struct daemon *d, const struct pgd_opts *o)
{
	int err = node_name(o, d->node, sizeof(d->node));
	if (err) {
		pgd_log("invalid node name '%s' (1..63 of [A-Za-z0-9._@-])", d->node);
		return err;
	}
	if (o->socket_path)
		snprintf(d->socket_path, sizeof(d->socket_path), "%s", o->socket_path);
	else if ((err = ctl_default_socket(d->socket_path, sizeof(d->socket_path))))
		return err;
	raise_fd_limit();
	quota_init(&d->quota, &o->limits);
	pgd_log("limits per uid: %u groups, %llu MiB ring memory, %u handles, %u memberships; "
		"node ring memory %llu MiB",
		d->quota.lim.groups, (unsigned long long)(d->quota.lim.ring_bytes >> 20),
		d->quota.lim.handles, d->quota.lim.memberships,
		(unsigned long long)(d->quota.lim.node_ring_bytes >> 20));
	d->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if ((err = loop_init(&d->loop)))
		return err;
	if ((err = liveness_start(&d->alive)))
		return err;
	if ((err = listen_on(d))) {
		pgd_log("cannot listen on %s: %s", d->socket_path, strerror(-err));
		return err;
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	d->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	d->tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (d->signal_fd < 0 || d->tick_fd < 0)
		return -errno;
	struct itimerspec its = {.it_interval = {0, PGD_TICK_NS}, .it_value = {0, PGD_TICK_NS}};
	timerfd_settime(d->tick_fd, 0, &its, NULL);
	if ((err = start_watcher(d, o)))
		return err;
	if ((err = cluster_start(d, o)))
		return err;
	if ((err = loop_add(&d->loop, &d->listen_src, d->listen_fd, EPOLLIN, on_listen, d)) ||
	    (err = loop_add(&d->loop, &d->signal_src, d->signal_fd, EPOLLIN, on_signal, d)) ||
	    (err = loop_add(&d->loop, &d->tick_src, d->tick_fd, EPOLLIN, on_tick, d)))
		return err;
	return 0;
}

static void teardown(struct daemon *d)
{
	/* Other nodes first: they hear BYE, not silence. */
	cluster_stop(d);
	names_destroy(d);
	replica_destroy(d);
	/* Groups first: members see the group down, not their own removal. */
	registry_destroy_all(d);
	while (d->sessions)
		session_close(d, d->sessions, RING_REC_LEFT);
	if (d->watch)
		watch_destroy(d->watch);
	/* Last: clients may now see the node gone. */
	liveness_stop(&d->alive);
	if (d->listen_fd >= 0) {
		close(d->listen_fd);
		unlink(d->socket_path);
	}
	if (d->reserve_fd >= 0)
		close(d->reserve_fd);
	if (d->signal_fd >= 0)
		close(d->signal_fd);
	if (d->tick_fd >= 0)
		close(d->tick_fd);
	loop_fini(&d->loop);
	quota_fini(&d->quota);
}

int pgd_run(const struct pgd_opts *opts)
{
	struct daemon *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->listen_fd = d->signal_fd = d->tick_fd = d->loop.epfd = d->alive.ro_fd = -1;
	d->reserve_fd = -1;
	int err = setup(d, opts);
	if (!err) {
		pgd_log("node %s listening on %s", d->node, d->socket_path);
		err = loop_run(&d->loop, &d->stop);
	}
	teardown(d);
	free(d);
	return err;
}

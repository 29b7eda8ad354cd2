/* SPDX-License-Identifier: MIT */
/*
 * The exit watcher: tells the daemon when a watched process has terminated.
 * Two implementations behind one interface: pidfds (always available) and
 * eBPF (bpf/, when the daemon may load it).
 */
#ifndef PG_DAEMON_WATCH_H
#define PG_DAEMON_WATCH_H

#include <sys/types.h>

struct loop;
struct watch;

/* Called from the loop for each watched process that exited. */
typedef void (*watch_exit_fn)(void *arg, pid_t pid);

struct watch_ops {
	const char *name;
	/* Start watching `pid`; `pidfd` names it without a reuse race. */
	int (*add)(struct watch *w, pid_t pid, int pidfd);
	void (*remove)(struct watch *w, pid_t pid);
	void (*destroy)(struct watch *w);
};

struct watch {
	const struct watch_ops *ops;
	struct loop *loop;
	watch_exit_fn on_exit;
	void *arg;
};

int watch_pidfd_new(struct loop *l, watch_exit_fn fn, void *arg, struct watch **out);
#ifdef PG_HAVE_BPF
/* Needs root, or CAP_BPF + CAP_PERFMON; -errno when it cannot load. */
int watch_bpf_new(struct loop *l, watch_exit_fn fn, void *arg, struct watch **out);
#endif

static inline int watch_add(struct watch *w, pid_t pid, int pidfd)
{
	return w->ops->add(w, pid, pidfd);
}
static inline void watch_remove(struct watch *w, pid_t pid)
{
	w->ops->remove(w, pid);
}
static inline void watch_destroy(struct watch *w)
{
	w->ops->destroy(w);
}

#endif /* PG_DAEMON_WATCH_H */

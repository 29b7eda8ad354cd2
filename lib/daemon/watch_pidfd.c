// SPDX-License-Identifier: MIT
/*
 * The pidfd exit watcher: a pidfd becomes readable when its whole thread
 * group has exited, and a pidfd can never name a later process that reuses
 * the pid. One loop source per watched process.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "loop.h"
#include "watch.h"

struct pidfd_entry {
	struct loop_src src;
	struct pidfd_watch *owner;
	pid_t pid;
	int pidfd;
	struct pidfd_entry *next;
};

struct pidfd_watch {
	struct watch base;
	struct pidfd_entry *entries;
};

static void entry_free(struct pidfd_watch *pw, struct pidfd_entry *e)
{
	for (struct pidfd_entry **p = &pw->entries; *p; p = &(*p)->next) {
		if (*p == e) {
			*p = e->next;
			break;
		}
	}
	loop_del(pw->base.loop, &e->src);
	close(e->pidfd);
	free(e);
}

static void on_pidfd(struct loop *l, struct loop_src *src, uint32_t events)
{
	struct pidfd_entry *e = src->arg;
	struct pidfd_watch *pw = e->owner;
	pid_t pid = e->pid;
	entry_free(pw, e);
	pw->base.on_exit(pw->base.arg, pid);
}

static int pidfd_add(struct watch *w, pid_t pid, int pidfd)
{
	struct pidfd_watch *pw = (struct pidfd_watch *)w;
	for (struct pidfd_entry *e = pw->entries; e; e = e->next)
		if (e->pid == pid)
			return 0;
	struct pidfd_entry *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	/* Our own duplicate: the session may close its pidfd first. */
	e->pidfd = fcntl(pidfd, F_DUPFD_CLOEXEC, 0);
	if (e->pidfd < 0) {
		int err = -errno;
		free(e);
		return err;
	}
	e->owner = pw;
	e->pid = pid;
	int err = loop_add(w->loop, &e->src, e->pidfd, EPOLLIN, on_pidfd, e);
	if (err) {
		close(e->pidfd);
		free(e);
		return err;
	}
	e->next = pw->entries;
	pw->entries = e;
	return 0;
}

static void pidfd_remove(struct watch *w, pid_t pid)
{
	struct pidfd_watch *pw = (struct pidfd_watch *)w;
	for (struct pidfd_entry *e = pw->entries; e; e = e->next) {
		if (e->pid == pid) {
			entry_free(pw, e);
			return;
		}
	}
}

static void pidfd_destroy(struct watch *w)
{
	struct pidfd_watch *pw = (struct pidfd_watch *)w;
	while (pw->entries)
		entry_free(pw, pw->entries);
	free(pw);
}

static const struct watch_ops pidfd_ops = {
	.name = "pidfd",
	.add = pidfd_add,
	.remove = pidfd_remove,
	.destroy = pidfd_destroy,
};

int watch_pidfd_new(struct loop *l, watch_exit_fn fn, void *arg, struct watch **out)
{
	struct pidfd_watch *pw = calloc(1, sizeof(*pw));
	if (!pw)
		return -ENOMEM;
	pw->base.ops = &pidfd_ops;
	pw->base.loop = l;
	pw->base.on_exit = fn;
	pw->base.arg = arg;
	*out = &pw->base;
	return 0;
}

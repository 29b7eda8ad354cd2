// SPDX-License-Identifier: MIT
#include "loop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

int loop_init(struct loop *l)
{
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	return l->epfd < 0 ? -errno : 0;
}

void loop_fini(struct loop *l)
{
	if (l->epfd >= 0)
		close(l->epfd);
	l->epfd = -1;
}

int loop_add(struct loop *l, struct loop_src *src, int fd, uint32_t events, loop_fn fn,
	     void *arg)
{
	src->fn = fn;
	src->arg = arg;
	src->fd = fd;
	struct epoll_event ev = {.events = events, .data.ptr = src};
	return epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

void loop_del(struct loop *l, struct loop_src *src)
{
	if (src->fd >= 0)
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, src->fd, NULL);
	src->fd = -1;
}

int loop_run(struct loop *l, const bool *stop)
{
	while (!*stop) {
		/* One event per wait: a handler may free another source, and a
		 * longer array could then hand us its stale pointer. The loop
		 * carries control traffic only, never messages. */
		struct epoll_event ev;
		if (l->idle)
			l->idle(l->idle_arg);
		int n = epoll_wait(l->epfd, &ev, 1, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 1) {
			struct loop_src *src = ev.data.ptr;
			src->fn(l, src, ev.events);
		}
	}
	return 0;
}

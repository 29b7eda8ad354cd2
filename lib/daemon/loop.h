/* SPDX-License-Identifier: MIT */
/*
 * The daemon's event loop: readiness of fds (control sockets, pidfds, the
 * signalfd, timers). Data never passes through it for local groups; the
 * io_uring completion fd of node links joins it as one more source.
 */
#ifndef PG_DAEMON_LOOP_H
#define PG_DAEMON_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct loop_src;
typedef void (*loop_fn)(struct loop *l, struct loop_src *src, uint32_t events);

struct loop_src {
	loop_fn fn;
	void *arg;
	int fd;
};

struct loop {
	int epfd;
	/* Called before each wait: work gathered while handling events goes
	 * out at once (the node links' batched sends). */
	void (*idle)(void *arg);
	void *idle_arg;
};

int loop_init(struct loop *l);
void loop_fini(struct loop *l);
/* Watch src->fd for `events` (EPOLLIN...). */
int loop_add(struct loop *l, struct loop_src *src, int fd, uint32_t events, loop_fn fn,
	     void *arg);
void loop_del(struct loop *l, struct loop_src *src);
/* Dispatch ready sources until *stop is set. 0 or -errno. */
int loop_run(struct loop *l, const bool *stop);

#endif /* PG_DAEMON_LOOP_H */

/* SPDX-License-Identifier: MIT */
/* The daemon's side of the node liveness page (see ring/layout.h). */
#ifndef PG_DAEMON_LIVENESS_H
#define PG_DAEMON_LIVENESS_H

#include <pthread.h>

#include "ring/layout.h"

struct liveness {
	struct node_alive *page; /* mapped read-write by the daemon only */
	pthread_mutex_t *mutex;  /* lives in page; its word is lock_word */
	int ro_fd;               /* read-only fd handed to clients */
};

/* Create the page and take the lock for the daemon's lifetime. */
int liveness_start(struct liveness *l);
/* Release the lock (clients see the node gone) and free everything. */
void liveness_stop(struct liveness *l);

#endif

// SPDX-License-Identifier: MIT
#include "liveness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static_assert(sizeof(pthread_mutex_t) <= 64, "the mutex fits before the magic");

int liveness_start(struct liveness *l)
{
	memset(l, 0, sizeof(*l));
	l->ro_fd = -1;
	int fd = memfd_create("pgroup:alive", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	int err = 0;
	if (fchmod(fd, 0400) < 0 || ftruncate(fd, RING_PAGE) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		err = -errno;
	void *p = err ? MAP_FAILED : mmap(NULL, RING_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (!err && p == MAP_FAILED)
		err = -errno;
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (!err && (l->ro_fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		err = -errno;
	close(fd);
	if (err) {
		if (p != MAP_FAILED)
			munmap(p, RING_PAGE);
		return err;
	}
	l->page = p;
	l->page->magic = NODE_ALIVE_MAGIC;
	l->page->version = RING_VERSION;
	/* A robust mutex: the kernel marks its word OWNER_DIED when we die,
	 * however we die. Its word is the first field, lock_word. */
	l->mutex = (pthread_mutex_t *)(void *)l->page;
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	err = -pthread_mutex_init(l->mutex, &a);
	pthread_mutexattr_destroy(&a);
	if (!err)
		err = -pthread_mutex_lock(l->mutex);
	if (err) {
		liveness_stop(l);
		return err;
	}
	return 0;
}

void liveness_stop(struct liveness *l)
{
	if (l->page) {
		pthread_mutex_unlock(l->mutex);
		munmap(l->page, RING_PAGE);
	}
	if (l->ro_fd >= 0)
		close(l->ro_fd);
	memset(l, 0, sizeof(*l));
	l->ro_fd = -1;
}

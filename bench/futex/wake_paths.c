// SPDX-License-Identifier: MIT
/*
 * How fast a parked process wakes, by the way it waits: two processes on
 * one shared memfd page, one bumps a word and FUTEX_WAKEs it every 10 ms
 * (as a sender at 100 msg/s), the other waits for it
 *
 *   futex   in FUTEX_WAIT (what a ctx in a few groups, or on bells, does),
 *   uring   in an io_uring FUTEX_WAIT, submitted and waited for with a
 *           timeout in one io_uring_enter (what a ctx under pg_fd does),
 *
 * with EXTRA more io_uring futex waits armed on other words (as a ctx in
 * EXTRA more groups had: each sits in the kernel's futex hash, whose
 * bucket a wake walks). Prints the median and 90th percentile from the
 * bump to the waiter running again, and what the wake call took.
 *
 *   wake_paths futex|uring [EXTRA]
 */
#include <errno.h>
#include <liburing.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IORING_OP_FUTEX_WAIT
#define IORING_OP_FUTEX_WAIT 51 /* Linux 6.7; older liburing lacks it */
#endif
#define FUTEX2_U32 0x02
#define WAKES 1000
#define WORDS_PER_PAGE 1024u

struct shared {
	_Atomic uint32_t word;
	_Atomic int ready;
	_Atomic int64_t sent_at;
	int64_t latency[WAKES];
};

static int64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static void prep_wait(struct io_uring_sqe *sqe, _Atomic uint32_t *word, uint32_t val, uint64_t tag)
{
	io_uring_prep_rw(IORING_OP_FUTEX_WAIT, sqe, FUTEX2_U32, (void *)word, 0, val);
	sqe->addr3 = UINT32_MAX; /* any waker */
	io_uring_sqe_set_data64(sqe, tag);
}

/* The waiter: WAKES wakes, each timed from the waker's bump. */
static int waiter(struct shared *s, bool uring, unsigned extra)
{
	struct io_uring ring;
	if (uring && io_uring_queue_init(256, &ring, 0))
		return 1;
	_Atomic uint32_t *others = NULL;
	if (extra) {
		size_t bytes = (size_t)extra * 4096;
		int fd = memfd_create("wake_paths-others", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, (off_t)bytes))
			return 1;
		others = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (others == MAP_FAILED || !uring)
			return 1;
		for (unsigned i = 0; i < extra; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			if (!sqe) {
				io_uring_submit(&ring);
				sqe = io_uring_get_sqe(&ring);
			}
			prep_wait(sqe, &others[i * WORDS_PER_PAGE], 0, 0);
		}
		io_uring_submit(&ring);
	}
	atomic_store(&s->ready, 1);
	for (int i = 0; i < WAKES;) {
		uint32_t seen = atomic_load(&s->word);
		if (!uring) {
			syscall(SYS_futex, &s->word, FUTEX_WAIT, seen, NULL, NULL, 0);
		} else {
			prep_wait(io_uring_get_sqe(&ring), &s->word, seen, 1);
			struct __kernel_timespec ts = {.tv_sec = 1};
			struct io_uring_cqe *cqe = NULL;
			for (bool done = false; !done;) {
				int r = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
				if (r < 0 && r != -ETIME && r != -EINTR)
					return 1;
				while (io_uring_peek_cqe(&ring, &cqe) == 0) {
					done |= io_uring_cqe_get_data64(cqe) == 1;
					io_uring_cqe_seen(&ring, cqe);
				}
			}
		}
		int64_t woke = now_ns();
		if (atomic_load(&s->word) != seen)
			s->latency[i++] = woke - atomic_load(&s->sent_at);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || (strcmp(argv[1], "futex") && strcmp(argv[1], "uring"))) {
		fprintf(stderr, "usage: wake_paths futex|uring [EXTRA]\n");
		return 2;
	}
	bool uring = strcmp(argv[1], "uring") == 0;
	unsigned extra = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 0;
	if (extra && !uring) {
		fprintf(stderr, "wake_paths: EXTRA waits are io_uring ones\n");
		return 2;
	}
	int fd = memfd_create("wake_paths", MFD_CLOEXEC);
	struct shared *s = NULL;
	if (fd < 0 || ftruncate(fd, sizeof(*s)) ||
	    (s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		perror("wake_paths");
		return 1;
	}
	pid_t pid = fork();
	if (pid == 0)
		_exit(waiter(s, uring, extra));
	while (!atomic_load(&s->ready))
		usleep(1000);
	usleep(20000);
	static int64_t wake_ns[WAKES];
	int st;
	for (int i = 0; i < WAKES && waitpid(pid, &st, WNOHANG) == 0; i++) {
		struct timespec gap = {.tv_nsec = 10 * 1000 * 1000};
		nanosleep(&gap, NULL);
		int64_t t = now_ns();
		atomic_store(&s->sent_at, t);
		atomic_fetch_add(&s->word, 1);
		syscall(SYS_futex, &s->word, FUTEX_WAKE, 1, NULL, NULL, 0);
		wake_ns[i] = now_ns() - t;
	}
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "wake_paths: the waiter failed\n");
		return 1;
	}
	qsort(s->latency, WAKES, sizeof(int64_t), cmp_i64);
	qsort(wake_ns, WAKES, sizeof(int64_t), cmp_i64);
	printf("%s, %u more waits: woken after p50 %.1f us, p90 %.1f us; FUTEX_WAKE p50 %.1f us\n",
	       argv[1], extra, (double)s->latency[WAKES / 2] / 1e3,
	       (double)s->latency[WAKES * 9 / 10] / 1e3, (double)wake_ns[WAKES / 2] / 1e3);
	return 0;
}

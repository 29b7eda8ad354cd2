// SPDX-License-Identifier: MIT
/*
 * What a FUTEX_WAKE costs a sender while another process has N futex waits
 * armed in an io_uring (as a pgroup consumer in N groups has), each on a
 * word of its own page of one shared memfd. The wake is on a word nobody
 * waits on, in a page the waker touched before, after 10 ms of idle (as a
 * sender at 100 msg/s): what grows with N is the walk of the kernel's futex
 * hash bucket (512 buckets on two CPUs: ~N/512 waiters to compare).
 *
 *   futex_wake N PAGES   (waits on N pages; wakes spread over PAGES of them)
 */
#include <liburing.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IORING_OP_FUTEX_WAIT
#define IORING_OP_FUTEX_WAIT 51 /* Linux 6.7; older liburing lacks it */
#endif
#define FUTEX2_U32 0x02
#define WAKES 200
#define WORDS_PER_PAGE 1024u

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Arm one futex wait per page on its first word, then wait to be killed. */
static int waiter(_Atomic uint32_t *m, unsigned n)
{
	struct io_uring r;
	if (io_uring_queue_init(n < 32768 ? n + 8 : 32768, &r, 0) < 0)
		return 1;
	for (unsigned i = 0; i < n; i++) {
		struct io_uring_sqe *s = io_uring_get_sqe(&r);
		if (!s) {
			io_uring_submit(&r);
			if (!(s = io_uring_get_sqe(&r)))
				return 1;
		}
		io_uring_prep_rw(IORING_OP_FUTEX_WAIT, s, FUTEX2_U32, &m[i * WORDS_PER_PAGE], 0, 0);
		s->addr3 = UINT32_MAX;
	}
	io_uring_submit(&r);
	pause();
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3 || atoi(argv[1]) < 1 || atoi(argv[2]) < 1) {
		fprintf(stderr, "usage: futex_wake WAITS PAGES\n");
		return 2;
	}
	unsigned n = (unsigned)atoi(argv[1]), pages = (unsigned)atoi(argv[2]);
	size_t bytes = (size_t)(n > pages ? n : pages) * 4096;
	int fd = memfd_create("futex_wake", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)bytes) < 0)
		return 1;
	_Atomic uint32_t *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return 1;
	for (size_t i = 0; i < bytes / 4096; i++)
		m[i * WORDS_PER_PAGE + 1] = 0; /* the waker's pages are mapped */
	pid_t child = fork();
	if (child == 0)
		return waiter(m, n);
	sleep(2); /* every wait armed */
	uint64_t d[WAKES];
	for (unsigned k = 0; k < WAKES; k++) {
		usleep(10000);
		unsigned p = (unsigned)(((uint64_t)k * 2654435761u) % pages);
		uint64_t t = now_ns();
		syscall(SYS_futex, &m[p * WORDS_PER_PAGE + 1], FUTEX_WAKE, 1, NULL, NULL, 0);
		d[k] = now_ns() - t;
	}
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	qsort(d, WAKES, sizeof(d[0]), cmp_u64);
	printf("waits %u, pages woken %u: futex_wake p50 %.2f us, p90 %.2f us\n", n, pages,
	       (double)d[WAKES / 2] / 1e3, (double)d[WAKES * 9 / 10] / 1e3);
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * The eBPF exit watcher: bpf/exitwatch.bpf.c reports, from the
 * sched_process_exit tracepoint, the end of every thread group whose tgid is
 * in its `watched` map. The kernel tells us inside do_exit, before the
 * process's fds close and before its pidfd becomes readable.
 *
 * Pids are reused: each watched process's start time (from /proc, while its
 * pidfd proves it is still the process we mean) is kept here and compared
 * with the event's, so a stale event never removes a newer process.
 */
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "exitwatch.h"
#include "exitwatch.skel.h"
#include "loop.h"
#include "watch.h"

struct bpf_entry {
	pid_t pid;
	unsigned long long start_ticks; /* /proc/PID/stat field 22 */
	struct bpf_entry *next;
};

struct bpf_watch {
	struct watch base;
	struct exitwatch *skel;
	struct ring_buffer *rb;
	struct loop_src src;
	struct bpf_entry *entries;
	long ticks_per_s;
	/* /proc shows start times shifted by our time namespace's boottime
	 * offset; the kernel's start_boottime is not. */
	int64_t boottime_offset_ns;
};

/* How deep our pid namespace is: one less than the pids NSpid lists. */
static __u32 pidns_level(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	__u32 level = 0;
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "NSpid:", 6) != 0)
			continue;
		for (char *p = strtok(line + 6, " \t\n"); p; p = strtok(NULL, " \t\n"))
			level++;
		level = level ? level - 1 : 0;
		break;
	}
	if (f)
		fclose(f);
	return level;
}

/* The boottime offset of our time namespace (0 outside one). */
static int64_t boottime_offset(void)
{
	FILE *f = fopen("/proc/self/timens_offsets", "re");
	char name[32];
	long long s, ns;
	int64_t off = 0;
	while (f && fscanf(f, "%31s %lld %lld", name, &s, &ns) == 3)
		if (strcmp(name, "boottime") == 0)
			off = (int64_t)s * 1000000000 + ns;
	if (f)
		fclose(f);
	return off;
}

/* Field 22 of /proc/PID/stat: the start time in clock ticks since boot. */
static int start_ticks(pid_t pid, unsigned long long *out)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = 0;
	/* The command name may hold spaces and parens: count from the last ')'. */
	char *p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	int field = 2;
	for (p++; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	return sscanf(p, "%llu", out) == 1 ? 0 : -EIO;
}

static struct bpf_entry *find(struct bpf_watch *bw, pid_t pid, struct bpf_entry ***link)
{
	for (struct bpf_entry **p = &bw->entries; *p; p = &(*p)->next)
		if ((*p)->pid == pid) {
			if (link)
				*link = p;
			return *p;
		}
	return NULL;
}

static void forget(struct bpf_watch *bw, pid_t pid)
{
	struct bpf_entry **link, *e = find(bw, pid, &link);
	if (!e)
		return;
	*link = e->next;
	free(e);
	__u32 key = (__u32)pid;
	bpf_map__delete_elem(bw->skel->maps.watched, &key, sizeof(key), 0);
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct bpf_watch *bw = ctx;
	struct exitwatch_event ev;
	if (size < sizeof(ev))
		return 0;
	memcpy(&ev, data, sizeof(ev));
	struct bpf_entry *e = find(bw, (pid_t)ev.tgid, NULL);
	if (!e)
		return 0;
	/* Same process, or a later one that reused the pid? */
	unsigned long long ticks = (unsigned long long)((int64_t)ev.start_boottime +
							bw->boottime_offset_ns) /
				   (1000000000ull / (unsigned long long)bw->ticks_per_s);
	if (ticks != e->start_ticks)
		return 0;
	pid_t pid = e->pid;
	forget(bw, pid);
	bw->base.on_exit(bw->base.arg, pid);
	return 0;
}

static void on_ring(struct loop *l, struct loop_src *src, uint32_t events)
{
	struct bpf_watch *bw = src->arg;
	ring_buffer__consume(bw->rb);
}

static int bpf_add(struct watch *w, pid_t pid, int pidfd)
{
	struct bpf_watch *bw = (struct bpf_watch *)w;
	if (find(bw, pid, NULL))
		return 0;
	struct bpf_entry *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->pid = pid;
	/* The pidfd names our process: while it is alive, /proc/PID is it.
	 * A readable pidfd says it has exited (asking by signal 0 would need
	 * CAP_KILL for another uid's process). */
	int err = start_ticks(pid, &e->start_ticks);
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	if (!err && poll(&p, 1, 0) != 0)
		err = -ESRCH;
	__u32 key = (__u32)pid;
	__u8 one = 1;
	if (!err && bpf_map__update_elem(bw->skel->maps.watched, &key, sizeof(key), &one,
					 sizeof(one), BPF_ANY) < 0)
		err = -errno;
	if (err) {
		free(e);
		return err;
	}
	e->next = bw->entries;
	bw->entries = e;
	return 0;
}

static void bpf_remove(struct watch *w, pid_t pid)
{
	forget((struct bpf_watch *)w, pid);
}

static void bpf_destroy(struct watch *w)
{
	struct bpf_watch *bw = (struct bpf_watch *)w;
	while (bw->entries)
		forget(bw, bw->entries->pid);
	if (bw->rb) {
		loop_del(w->loop, &bw->src);
		ring_buffer__free(bw->rb);
	}
	exitwatch__destroy(bw->skel);
	free(bw);
}

static const struct watch_ops bpf_ops = {
	.name = "eBPF (tp_btf/sched_process_exit)",
	.add = bpf_add,
	.remove = bpf_remove,
	.destroy = bpf_destroy,
};

/* libbpf reports through errno; never return 0 for a failure. */
static int bpf_err(void)
{
	return errno ? -errno : -EPERM;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0; /* the daemon says once which watcher runs, and why */
}

int watch_bpf_new(struct loop *l, watch_exit_fn fn, void *arg, struct watch **out)
{
	libbpf_set_print(quiet);
	struct bpf_watch *bw = calloc(1, sizeof(*bw));
	if (!bw)
		return -ENOMEM;
	bw->base.ops = &bpf_ops;
	bw->base.loop = l;
	bw->base.on_exit = fn;
	bw->base.arg = arg;
	bw->ticks_per_s = sysconf(_SC_CLK_TCK);
	bw->boottime_offset_ns = boottime_offset();
	int err = 0;
	bw->skel = exitwatch__open();
	if (!bw->skel)
		err = bpf_err();
	if (!err) {
		/* Our pid namespace: the program reports pids as we see them. */
		struct stat st;
		bw->skel->rodata->ns_level = pidns_level();
		if (stat("/proc/self/ns/pid", &st) == 0)
			bw->skel->rodata->ns_inum = (__u32)st.st_ino;
		if (exitwatch__load(bw->skel))
			err = bpf_err();
	}
	if (!err && exitwatch__attach(bw->skel))
		err = bpf_err();
	if (!err) {
		bw->rb = ring_buffer__new(bpf_map__fd(bw->skel->maps.events), on_event, bw, NULL);
		if (!bw->rb)
			err = bpf_err();
	}
	if (!err)
		err = loop_add(l, &bw->src, ring_buffer__epoll_fd(bw->rb), EPOLLIN, on_ring, bw);
	if (err) {
		if (bw->rb)
			ring_buffer__free(bw->rb);
		exitwatch__destroy(bw->skel);
		free(bw);
		return err;
	}
	*out = &bw->base;
	return 0;
}

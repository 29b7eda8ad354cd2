// SPDX-License-Identifier: MIT
/*
 * pgroup bench --many N: what N groups cost one node.
 *
 *  - N pg_create in a row, each timed (p50/p99);
 *  - idle: the daemon's fds and own memory (RssAnon) and the node's
 *    shared memory (Shmem in /proc/meminfo: every memfd page anyone
 *    touched), each per group; every group in `pgroup groups`;
 *  - used: one member in every group (this process) and one message to
 *    every group from a sender of its own (another process), received;
 *    the same figures again;
 *  - all deleted: fds back where they were.
 *
 * Shmem is the whole node's: run it on an otherwise quiet node.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include "bench.h"
#include "groups.h"

struct snap {
	long fds, anon_kib, shmem_kib;
};

static long count_fds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	long n = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return d ? n : -1;
}

/* A "Key:   123 kB" line of a /proc file, in KiB; -1 if absent. */
static long proc_kib(const char *path, const char *key)
{
	FILE *f = fopen(path, "r");
	char line[256];
	long kib = -1;
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, key, strlen(key)) == 0)
			kib = atol(line + strlen(key));
	if (f)
		fclose(f);
	return kib;
}

/* The daemon's own memory is its anonymous pages (RssAnon: the shared
 * ones it maps are in the node's Shmem, counted once there). */
static struct snap take_snap(pid_t dpid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)dpid);
	return (struct snap){count_fds(dpid), proc_kib(path, "RssAnon:"),
			     proc_kib("/proc/meminfo", "Shmem:")};
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct many_sender {
	const char *socket;
	const char *stem;
	unsigned n;
	int go;     /* read end: a byte when the member has joined */
	int report; /* write end: the sends that failed, then the first error */
};

/* The sender, a process of its own: one that sent to and was a member of
 * 10,000 groups would need more than the kernel's 65,530 mappings. */
static int sender_main(void *arg)
{
	struct many_sender *ms = arg;
	char b, name[PG_GROUP_MAX + 1];
	if (read(ms->go, &b, 1) != 1)
		return 2;
	pg_ctx *ctx = NULL;
	int rep[2] = {0, pg_open(&ctx, ms->socket)};
	for (unsigned i = 0; !rep[1] && i < ms->n; i++) {
		snprintf(name, sizeof(name), "%s%u", ms->stem, i);
		int err = pg_send(ctx, name, &i, sizeof(i));
		if (err) {
			rep[0]++;
			rep[1] = rep[1] ? rep[1] : err;
		}
	}
	if (write(ms->report, rep, sizeof(rep)) != sizeof(rep))
		return 3;
	/* Its handles stay until the member has read everything. */
	if (read(ms->go, &b, 1) < 0)
		return 4;
	if (ctx)
		pg_close(ctx);
	return 0;
}

static unsigned listed(struct cli *c, const char *stem)
{
	int fd = cli_ctl_open(c);
	struct group_row *rows = NULL;
	size_t n = 0;
	unsigned got = 0;
	if (fd >= 0 && groups_fetch(fd, &rows, &n) == 0)
		for (size_t i = 0; i < n; i++)
			got += strncmp(rows[i].name, stem, strlen(stem)) == 0;
	if (fd >= 0)
		close(fd);
	free(rows);
	return got;
}

static void print_per_group(struct cli *c, const char *what, struct snap a, struct snap b,
			    unsigned n, bool last)
{
	double fds = (double)(b.fds - a.fds) / n, rss = (double)(b.anon_kib - a.anon_kib) / n,
	       shm = (double)(b.shmem_kib - a.shmem_kib) / n;
	if (c->json)
		printf("\"%s\":{\"daemon_fds\":%ld,\"fds_per_group\":%.3f,\"daemon_anon_kib_per_group\":"
		       "%.2f,\"shmem_kib_per_group\":%.2f,\"total_kib_per_group\":%.2f}%s",
		       what, b.fds, fds, rss, shm, rss + shm, last ? "" : ",");
	else
		printf("%-8s daemon %ld fds (%.3f per group); per group: daemon %.1f KiB + shared "
		       "memory %.1f KiB = %.1f KiB\n",
		       what, b.fds, fds, rss, shm, rss + shm);
}

int cli_bench_many(struct cli *c, unsigned n)
{
	pg_ctx *own, *mem;
	int err = cli_open(c, &own);
	if (err)
		return cli_fail("cannot reach the daemon", err);
	if ((err = pg_open(&mem, c->socket))) {
		pg_close(own);
		return cli_fail("cannot reach the daemon", err);
	}
	pid_t dpid = bench_daemon_pid(c->socket);
	char stem[64], name[PG_GROUP_MAX + 1];
	snprintf(stem, sizeof(stem), "many-%d.", (int)getpid());
	uint64_t *lat = calloc(n, sizeof(*lat));
	int go[2] = {-1, -1}, rep[2] = {-1, -1};
	if (!lat || pipe(go) || pipe(rep)) {
		free(lat);
		pg_close(mem);
		pg_close(own);
		return cli_fail("bench", -errno);
	}
	/* Forked before we map anything: a child inherits its parent's mappings. */
	struct many_sender ms = {c->socket, stem, n, go[0], rep[1]};
	pid_t spid = bench_spawn(sender_main, &ms);
	/* Its ends are its own: a sender that dies is an end of file here. */
	close(go[0]);
	close(rep[1]);
	go[0] = rep[1] = -1;
	struct snap s0 = take_snap(dpid);
	unsigned made = 0;
	int first = 0;
	for (; made < n; made++) {
		snprintf(name, sizeof(name), "%s%u", stem, made);
		uint64_t t0 = bench_now_ns();
		if ((first = pg_create(own, name)))
			break;
		lat[made] = bench_now_ns() - t0;
	}
	struct snap s1 = take_snap(dpid);
	unsigned in_list = listed(c, stem), joined = 0, got = 0;
	for (unsigned i = 0; i < made && !first; i++) {
		snprintf(name, sizeof(name), "%s%u", stem, i);
		if (!(first = pg_join(mem, name, 0, NULL, NULL)))
			joined++;
	}
	int sent_rep[2] = {(int)made, -ECHILD};
	if (spid > 0 && write(go[1], "g", 1) == 1 &&
	    read(rep[0], sent_rep, sizeof(sent_rep)) != sizeof(sent_rep))
		sent_rep[1] = -EPIPE;
	pg_message m;
	unsigned want = made - (unsigned)sent_rep[0];
	while (got < want && pg_recv(mem, &m, 3000) == 0)
		got += m.kind == PG_MSG;
	struct snap s2 = take_snap(dpid);
	if (spid > 0) {
		if (write(go[1], "q", 1) != 1)
			kill(spid, SIGKILL);
		int st = bench_reap(&spid);
		if (st && !sent_rep[1])
			sent_rep[1] = -ECHILD;
	}
	pg_close(mem);
	for (unsigned i = 0; i < made; i++) {
		snprintf(name, sizeof(name), "%s%u", stem, i);
		pg_delete(own, name);
	}
	struct snap s3 = take_snap(dpid);
	pg_close(own);
	close(go[1]);
	close(rep[0]);
	qsort(lat, made, sizeof(*lat), cmp_u64);
	double p50 = made ? (double)lat[made / 2] / 1e3 : 0,
	       p99 = made ? (double)lat[(size_t)(0.99 * (made - 1))] / 1e3 : 0;
	free(lat);
	if (!first && sent_rep[1])
		first = sent_rep[1];
	if (c->json) {
		printf("{\"groups\":%u,\"created\":%u,\"create_us\":{\"p50\":%.1f,\"p99\":%.1f},"
		       "\"listed\":%u,\"joined\":%u,\"sent\":%u,\"received\":%u,",
		       n, made, p50, p99, in_list, joined, made - (unsigned)sent_rep[0], got);
		print_per_group(c, "idle", s0, s1, n, false);
		print_per_group(c, "used", s0, s2, n, false);
		printf("\"fds_after_delete\":%ld,\"fds_before\":%ld,\"error\":", s3.fds, s0.fds);
		if (first)
			cli_json_str(pg_strerror(first), strlen(pg_strerror(first)));
		else
			fputs("null", stdout);
		puts("}");
	} else {
		printf("%u groups: %u created, pg_create p50 %.1f us, p99 %.1f us; %u listed\n", n,
		       made, p50, p99, in_list);
		print_per_group(c, "idle", s0, s1, n, false);
		printf("then one member in each (%u joined), one message to each from another "
		       "process (%u sent, %u received)\n",
		       joined, made - (unsigned)sent_rep[0], got);
		print_per_group(c, "used", s0, s2, n, true);
		printf("deleted: daemon %ld fds (%ld before)%s%s\n", s3.fds, s0.fds,
		       first ? "; first error: " : "", first ? pg_strerror(first) : "");
	}
	return first || made < n || got < want || in_list < made ? 1 : 0;
}

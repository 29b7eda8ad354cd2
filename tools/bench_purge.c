// SPDX-License-Identifier: MIT
/*
 * pgroup bench --purge: how fast the node forgets the dead.
 *
 *  - member purge: a member process is SIGKILLed; we time kill() -> its
 *    PG_EXITED event reaching a monitoring member, and check pg_members no
 *    longer lists it;
 *  - writer seal: a writer is SIGKILLed between its claim and its commit,
 *    with a message queued behind its hole; we time kill() -> that message
 *    reaching a member (the daemon sealed the hole).
 *
 * The watcher measured is whichever the daemon runs (its log says; start
 * one with --no-bpf for the pidfd watcher).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

struct purge_child {
	const char *socket;
	const char *group;
	int ready; /* write end: one byte once joined (or claimed) */
	bool claim; /* claim and hold instead of joining */
};

static int purge_child_main(void *arg)
{
	struct purge_child *pc = arg;
	pg_ctx *ctx;
	if (pg_open(&ctx, pc->socket))
		return 2;
	void *buf;
	int err = pc->claim ? pg_send_claim(ctx, pc->group, 64, &buf)
			    : pg_join(ctx, pc->group, 0, NULL, NULL);
	char b = err ? 'e' : 'r';
	if (write(pc->ready, &b, 1) != 1 || err)
		return 3;
	for (;;)
		pause(); /* until SIGKILL */
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return (double)v[i] / 1000.0;
}

/* Fork a child that joins (or claims), wait for it to say so. */
static int start_child(struct purge_child *pc, int rd, pid_t *pid)
{
	*pid = bench_spawn(purge_child_main, pc);
	if (*pid < 0)
		return -errno;
	char b;
	if (read(rd, &b, 1) != 1 || b != 'r') {
		bench_reap(pid);
		return -ECHILD;
	}
	return 0;
}

/* kill -> PG_EXITED at a monitor; ns, or -errno. */
static int64_t one_member_purge(pg_ctx *ctx, struct purge_child *pc, int rd)
{
	pid_t pid;
	int err = start_child(pc, rd, &pid);
	if (err)
		return err;
	pg_message m;
	/* Its JOINED event first. */
	while ((err = pg_recv(ctx, &m, 5000)) == 0 && !(m.kind == PG_JOINED && m.from.pid == pid))
		;
	if (err) {
		bench_kill_all(&pid, 1);
		return err;
	}
	pid_t victim = pid;
	uint64_t t0 = bench_now_ns();
	kill(pid, SIGKILL);
	while ((err = pg_recv(ctx, &m, 5000)) == 0 && !(m.kind == PG_EXITED && m.from.pid == victim))
		;
	uint64_t t1 = bench_now_ns();
	bench_reap(&pid);
	if (err)
		return err;
	pg_member *list;
	size_t n;
	if ((err = pg_members(ctx, pc->group, &list, &n)))
		return err;
	for (size_t i = 0; i < n; i++)
		if (list[i].pid == victim)
			err = -EEXIST; /* the event came, the member is still listed */
	free(list);
	return err ? err : (int64_t)(t1 - t0);
}

/* kill a writer holding a claim -> the message behind its hole arrives. */
static int64_t one_writer_seal(pg_ctx *ctx, pg_ctx *snd, struct purge_child *pc, int rd)
{
	pid_t pid;
	int err = start_child(pc, rd, &pid);
	if (err)
		return err;
	err = pg_send(snd, pc->group, "behind", 6);
	pg_message m;
	if (!err && pg_recv(ctx, &m, 0) != -EAGAIN)
		err = -EPROTO; /* the hole should hold it back */
	if (err) {
		bench_kill_all(&pid, 1);
		return err;
	}
	uint64_t t0 = bench_now_ns();
	kill(pid, SIGKILL);
	while ((err = pg_recv(ctx, &m, 5000)) == 0 && m.kind != PG_MSG)
		;
	uint64_t t1 = bench_now_ns();
	bench_reap(&pid);
	if (err)
		return err;
	return m.len == 6 && memcmp(m.data, "behind", 6) == 0 ? (int64_t)(t1 - t0) : -EPROTO;
}

static void report(const char *what, uint64_t *v, size_t n, bool json, bool last)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	if (json)
		printf("\"%s\":{\"n\":%zu,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,"
		       "\"max_us\":%.1f}%s",
		       what, n, pct(v, n, 0.5), pct(v, n, 0.9), pct(v, n, 0.99), pct(v, n, 1.0),
		       last ? "" : ",");
	else
		printf("%-28s %6zu %9.1f %9.1f %9.1f %9.1f\n", what, n, pct(v, n, 0.5),
		       pct(v, n, 0.9), pct(v, n, 0.99), pct(v, n, 1.0));
}

int cli_bench_purge(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"purge", no_argument, NULL, 'x'},
		{"kills", required_argument, NULL, 'k'},
		{"member-socket", required_argument, NULL, 'M'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	unsigned long kills = 1000;
	const char *member_socket = NULL; /* victims on another node */
	int ch;
	char *end;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'k') {
			kills = strtoul(optarg, &end, 10);
			if (*end || !kills || kills > 1000000) {
				fprintf(stderr, "pgroup: bench: --kills takes 1..1000000\n");
				return 2;
			}
		} else if (ch == 'M') {
			member_socket = optarg;
		} else if (ch == 'h') {
			puts("usage: pgroup bench --purge [--kills N] [--member-socket PATH] [--json]\n"
			     "Times SIGKILL -> PG_EXITED (and gone from pg_members) for N members,\n"
			     "and SIGKILL of a writer inside its claim -> the message behind it.\n"
			     "--member-socket: the members killed are on another node (that daemon's\n"
			     "socket); the event and the listing are this node's, the master's.");
			return 0;
		} else if (ch != 'x') {
			return 2;
		}
	}
	pg_ctx *ctx, *snd;
	int err = cli_open(c, &ctx);
	if (err)
		return cli_fail("cannot reach the daemon", err);
	if ((err = pg_open(&snd, c->socket))) {
		pg_close(ctx);
		return cli_fail("cannot reach the daemon", err);
	}
	bench_catch_signals();
	char group[PG_GROUP_MAX + 1];
	uint64_t *purge = calloc(kills, sizeof(*purge)), *seal = calloc(kills, sizeof(*seal));
	int fds[2] = {-1, -1};
	size_t n = 0;
	err = purge && seal ? bench_group_create(ctx, "purge", NULL, group, sizeof(group)) : -ENOMEM;
	if (!err && pipe2(fds, O_CLOEXEC) < 0)
		err = -errno;
	if (!err && !(err = pg_monitor(ctx, group)))
		err = pg_join(ctx, group, 0, NULL, NULL);
	struct purge_child pc = {.socket = c->socket, .group = group, .ready = fds[1]};
	for (; !err && n < kills && !bench_interrupted(); n++) {
		pc.claim = false;
		pc.socket = member_socket ? member_socket : c->socket;
		int64_t t = one_member_purge(ctx, &pc, fds[0]);
		pc.claim = true;
		pc.socket = c->socket;
		int64_t u = t < 0 ? t : one_writer_seal(ctx, snd, &pc, fds[0]);
		if (t < 0 || u < 0)
			err = (int)(t < 0 ? t : u);
		purge[n] = (uint64_t)t;
		seal[n] = (uint64_t)u;
		if (isatty(STDERR_FILENO) && n % 50 == 0)
			fprintf(stderr, "\r%zu/%lu", n, kills);
	}
	if (isatty(STDERR_FILENO))
		fputc('\n', stderr);
	if (fds[0] >= 0) {
		close(fds[0]);
		close(fds[1]);
	}
	pg_delete(ctx, group);
	pg_close(snd);
	pg_close(ctx);
	int rc = 0;
	if (err) {
		rc = cli_fail("bench --purge", err);
	} else if (c->json) {
		putchar('{');
		report("member_purge", purge, n, true, false);
		report("writer_seal", seal, n, true, true);
		puts("}");
	} else {
		printf("%-28s %6s %9s %9s %9s %9s\n", "SIGKILL ->", "n", "p50 us", "p90 us",
		       "p99 us", "max us");
		report("PG_EXITED, out of members", purge, n, false, false);
		report("hole sealed, next msg in", seal, n, false, true);
	}
	free(purge);
	free(seal);
	return rc;
}

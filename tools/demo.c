// SPDX-License-Identifier: MIT
/*
 * pgroup demo: a local fan-out. N member processes join one group (watching
 * the joins with pg_monitor), S sender processes send K short texts each at
 * the same time, every member prints what it got, and the parent checks that
 * all got the same sequence. A short paced benchmark run closes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"

#define READY_TIMEOUT_MS 10000
#define TEXT_MAX 64

/* The summary's benchmark: 1 sender -> N members, 20000 x 64 B at 20k msg/s. */
#define SUMMARY_COUNT 20000u
#define SUMMARY_RATE 20000u
#define SUMMARY_SIZE 64u

/* What a member leaves for the parent, in memory shared across fork. */
struct demo_slot {
	uint64_t count, hash, errors;
	pid_t pid;
};

struct demo {
	const char *socket;
	unsigned members, senders, count;
	char group[PG_GROUP_MAX + 1];
	struct bench_gate gate;
	int (*turn)[2]; /* per member: the parent writes a byte when it may print */
	struct demo_slot *slots;
	unsigned index; /* set before each fork */
};

static void usage(FILE *f)
{
	fputs("usage: pgroup demo [--members N] [--senders S] [--count K]\n"
	      "  N member processes join a fresh group, S sender processes each send K\n"
	      "  texts concurrently; every member prints what it received, then the\n"
	      "  order is compared and a short paced benchmark (1 sender -> N members,\n"
	      "  20000 x 64 B at 20000 msg/s) gives latency and throughput.\n"
	      "  --members N   default 3      --senders S   default 2\n"
	      "  --count K     messages per sender, default 5\n"
	      "Exits 1 if a message is missing or the members' orders differ.\n",
	      f);
}

static const char *event_name(enum pg_kind k)
{
	switch (k) {
	case PG_JOINED:
		return "JOINED";
	case PG_LEFT:
		return "LEFT";
	case PG_EXITED:
		return "EXITED";
	case PG_EVICTED:
		return "EVICTED";
	case PG_GROUP_DOWN:
		return "GROUP DOWN";
	default:
		return "?";
	}
}

static int sender_main(void *arg)
{
	struct demo *d = arg;
	unsigned who = d->index - d->members + 1;
	pg_ctx *ctx;
	int err = pg_open(&ctx, d->socket);
	bench_gate_ready(&d->gate, err);
	if (err)
		return cli_fail("demo sender", err);
	bench_gate_wait(&d->gate);
	for (unsigned k = 1; k <= d->count && !err; k++) {
		char text[TEXT_MAX];
		int n = snprintf(text, sizeof(text), "sender %u says #%u", who, k);
		err = pg_send(ctx, d->group, text, (size_t)n);
	}
	pg_close(ctx);
	return err ? cli_fail("demo sender", err) : 0;
}

/* Sender and number back from "sender S says #K"; false if it is not one. */
static bool parse_text(const pg_message *m, unsigned *who, unsigned *k)
{
	char text[TEXT_MAX];
	if (m->len >= sizeof(text))
		return false;
	memcpy(text, m->data, m->len);
	text[m->len] = 0;
	return sscanf(text, "sender %u says #%u", who, k) == 2 && *who && *k;
}

static void log_message(FILE *out, struct bench_order *o, const pg_message *m)
{
	unsigned who, k;
	if (parse_text(m, &who, &k))
		bench_order_add(o, who - 1, k - 1, m->seq);
	else
		o->bad++;
	fprintf(out, "  seq=%-4llu from=%s:%d  %.*s\n", (unsigned long long)m->seq,
		m->from.node, (int)m->from.pid, (int)m->len, (const char *)m->data);
}

/* Receive until every sender's messages are in; log each line to out. */
static void member_receive(struct demo *d, pg_ctx *ctx, FILE *out, struct demo_slot *s)
{
	struct bench_order o;
	uint64_t want = (uint64_t)d->senders * d->count;
	if (bench_order_init(&o, d->senders)) {
		s->errors = 1;
		return;
	}
	while (s->count < want) {
		pg_message m;
		int err = pg_recv(ctx, &m, BENCH_IDLE_MS);
		if (err == -EINTR)
			continue;
		if (err) {
			fprintf(out, "  (stopped: %s)\n", pg_strerror(err));
			break;
		}
		if (m.kind == PG_MSG) {
			log_message(out, &o, &m);
			s->count++;
			continue;
		}
		fprintf(out, "  seq=%-4llu %s %s:%d\n", (unsigned long long)m.seq,
			event_name(m.kind), m.from.node, (int)m.from.pid);
		if (m.kind == PG_EVICTED || m.kind == PG_GROUP_DOWN)
			break;
	}
	s->hash = o.hash;
	s->errors = bench_order_errors(&o);
	bench_order_free(&o);
}

static void log_old_members(FILE *out, const pg_member *old, size_t n)
{
	fputs("  members before my join:", out);
	for (size_t i = 0; i < n; i++)
		fprintf(out, " %s:%d", old[i].node, (int)old[i].pid);
	fputs(n ? "\n" : " none\n", out);
}

static int member_main(void *arg)
{
	struct demo *d = arg;
	struct demo_slot *s = &d->slots[d->index];
	pg_ctx *ctx;
	pg_member *old = NULL;
	size_t n_old = 0;
	s->pid = getpid();
	int err = pg_open(&ctx, d->socket);
	if (!err && ((err = pg_monitor(ctx, d->group)) ||
		     (err = pg_join(ctx, d->group, 0, &old, &n_old))))
		pg_close(ctx);
	bench_gate_ready(&d->gate, err);
	if (err)
		return cli_fail("demo member", err);
	/* Buffered until our turn, so the members' blocks do not interleave. */
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	if (!out) {
		pg_close(ctx);
		return cli_fail("demo member", -errno);
	}
	fprintf(out, "member %d received:\n", (int)s->pid);
	log_old_members(out, old, n_old);
	free(old);
	member_receive(d, ctx, out, s);
	pg_close(ctx);
	fclose(out);
	char b;
	if (read(d->turn[d->index][0], &b, 1) == 1)
		fwrite(text, 1, len, stdout);
	free(text);
	return 0;
}

static int parse_args(int argc, char **argv, struct demo *d)
{
	static const struct option opts[] = {
		{"members", required_argument, NULL, 'm'},
		{"senders", required_argument, NULL, 's'},
		{"count", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end;
		unsigned long v = 0;
		if (optarg) {
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || *optarg == '-' || !v || v > 1000) {
				fprintf(stderr, "pgroup: demo: options take a number 1..1000\n");
				return 2;
			}
		}
		switch (ch) {
		case 'm':
			d->members = (unsigned)v;
			break;
		case 's':
			d->senders = (unsigned)v;
			break;
		case 'c':
			d->count = (unsigned)v;
			break;
		case 'h':
			return -1;
		default:
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "pgroup: demo: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	return 0;
}

static int demo_alloc(struct demo *d)
{
	d->slots = mmap(NULL, d->members * sizeof(*d->slots), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (d->slots == MAP_FAILED) {
		d->slots = NULL;
		return -errno;
	}
	d->turn = malloc(d->members * sizeof(*d->turn));
	if (!d->turn)
		return -ENOMEM;
	for (unsigned j = 0; j < d->members; j++)
		d->turn[j][0] = d->turn[j][1] = -1;
	for (unsigned j = 0; j < d->members; j++)
		if (pipe2(d->turn[j], O_CLOEXEC) < 0)
			return -errno;
	return bench_gate_init(&d->gate);
}

static void demo_free(struct demo *d)
{
	for (unsigned j = 0; d->turn && j < d->members; j++) {
		if (d->turn[j][0] >= 0)
			close(d->turn[j][0]);
		if (d->turn[j][1] >= 0)
			close(d->turn[j][1]);
	}
	free(d->turn);
	if (d->slots)
		munmap(d->slots, d->members * sizeof(*d->slots));
	bench_gate_close(&d->gate);
}

/*
 * Members one at a time, each joined before the next is forked, so each
 * sees the later joins as events in a predictable order; then the senders.
 */
static int spawn_all(struct demo *d, pid_t *pids)
{
	int err = 0;
	for (d->index = 0; d->index < d->members + d->senders && !err; d->index++) {
		bool member = d->index < d->members;
		pid_t pid = bench_spawn(member ? member_main : sender_main, d);
		if (pid < 0)
			return (int)pid;
		pids[d->index] = pid;
		if (member)
			err = bench_gate_collect(&d->gate, 1, READY_TIMEOUT_MS);
	}
	return err ? err : bench_gate_collect(&d->gate, d->senders, READY_TIMEOUT_MS);
}

/* Each member prints its block in turn; 0 if every one exited cleanly. */
static int print_turns(struct demo *d, pid_t *pids)
{
	int rc = 0;
	for (unsigned j = 0; j < d->members; j++) {
		char b = 1;
		if (write(d->turn[j][1], &b, 1) != 1 || bench_reap(&pids[j]))
			rc = 1;
	}
	return rc;
}

static bool verdict(const struct demo *d)
{
	uint64_t want = (uint64_t)d->senders * d->count;
	bool same = true, complete = true;
	for (unsigned j = 0; j < d->members; j++) {
		const struct demo_slot *s = &d->slots[j];
		same &= s->hash == d->slots[0].hash;
		complete &= s->count == want && !s->errors;
	}
	printf("same order at all %u member%s: %s\n", d->members, bench_plural(d->members),
	       same ? "yes" : "NO");
	printf("all %llu messages at every member, exactly once, in each sender's order: %s\n",
	       (unsigned long long)want, complete ? "yes" : "NO");
	return same && complete;
}

static int run_demo(struct demo *d, pg_ctx *ctx, pid_t *pids)
{
	size_t n = (size_t)d->members + d->senders;
	int err = spawn_all(d, pids);
	if (err) {
		bench_kill_all(pids, n);
		return cli_fail("demo", err);
	}
	bench_gate_open(&d->gate);
	int rc = 0;
	for (size_t i = d->members; i < n; i++)
		if (bench_reap(&pids[i]))
			rc = 1;
	/* A sender failed: members would wait out their idle time for the
	 * rest; a deleted group stops them at once (PG_GROUP_DOWN). */
	if (rc)
		pg_delete(ctx, d->group);
	if (print_turns(d, pids))
		rc = 1;
	return verdict(d) ? rc : 1;
}

/* The summary line, from a short paced run of the benchmark. */
static int summary(pg_ctx *ctx, const char *socket, unsigned members)
{
	struct bench_cfg cfg = {
		.prefix = "demo-bench", .senders = 1, .members = members,
		.size = SUMMARY_SIZE, .count = SUMMARY_COUNT, .rate = SUMMARY_RATE,
	};
	struct bench_result res;
	int err = bench_run(ctx, socket, &cfg, &res);
	if (err)
		return cli_fail("demo benchmark", err);
	bool ok = bench_ok(&res);
	printf("latency p50 %.1f us, p99 %.1f us; %.0f msg/s sent, %.0f deliveries/s "
	       "(1 sender -> %u member%s, %u x %u B at %u msg/s%s)\n",
	       res.p50, res.p99, res.send_rate, res.deliver_rate, members, bench_plural(members),
	       SUMMARY_COUNT, SUMMARY_SIZE, SUMMARY_RATE,
	       ok ? "" : "; INCOMPLETE, see pgroup bench");
	bench_result_free(&res);
	return ok ? 0 : 1;
}

int cli_demo(struct cli *c, int argc, char **argv)
{
	struct demo d = {
		.socket = c->socket, .members = 3, .senders = 2, .count = 5,
		.gate = {{-1, -1}, {-1, -1}, {-1, -1}},
	};
	int rc = parse_args(argc, argv, &d);
	if (rc) {
		if (rc < 0)
			usage(stdout);
		return rc < 0 ? 0 : rc;
	}
	bench_catch_signals();
	pg_ctx *ctx;
	int err = cli_open(c, &ctx);
	if (err)
		return cli_fail("cannot reach the daemon", err);
	pid_t *pids = calloc((size_t)d.members + d.senders, sizeof(*pids));
	err = pids ? demo_alloc(&d) : -ENOMEM;
	if (!err)
		err = bench_group_create(ctx, "demo", &(pg_group_opts){0}, d.group,
					 sizeof(d.group));
	if (!err) {
		printf("group %s: %u member%s, %u sender%s x %u message%s\n", d.group, d.members,
		       bench_plural(d.members), d.senders, bench_plural(d.senders), d.count,
		       bench_plural(d.count));
		rc = run_demo(&d, ctx, pids);
		err = pg_delete(ctx, d.group);
		/* -ENOENT: deleted early to stop a failed run. */
		if (err == -ENOENT)
			err = 0;
	}
	demo_free(&d);
	free(pids);
	if (err)
		rc = cli_fail("demo", err);
	else if (!bench_interrupted() && summary(ctx, c->socket, d.members))
		rc = 1;
	pg_close(ctx);
	return rc;
}

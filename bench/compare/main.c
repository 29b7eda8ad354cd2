// SPDX-License-Identifier: MIT
/* pgcompare: options, the loop over transports x rates x N x runs, and the table. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "compare.h"

#define MAX_LIST 16
/* Without --count: a paced run lasts about this long... */
#define PACED_SECONDS 2u
/* ...and a back-to-back run sends this many. */
#define B2B_COUNT 50000u

static const struct xport *const all_xports[] = {&xport_unix, &xport_zmq, &xport_iceoryx,
						 &xport_pgroup, &xport_zmq_tcp, &xport_tcp};
#define N_XPORTS (sizeof(all_xports) / sizeof(all_xports[0]))

struct opts {
	struct cmp_opts cmp;
	uint64_t members[MAX_LIST], rates[MAX_LIST];
	size_t n_members, n_rates;
	const struct xport *xports[N_XPORTS];
	size_t n_xports;
	uint64_t count; /* 0 = per rate, see above */
	uint64_t size, runs;
	bool json;
};

/* One table row: a transport at one rate and N, over every run. */
struct cell {
	const struct xport *x;
	uint64_t rate, members, count;
	struct cmp_result *runs;
	unsigned n_ok, n_done;
	bool skipped;
};

static void usage(FILE *f)
{
	fputs("usage: pgcompare [options]\n"
	      "  One sender process -> N receiver processes, the same workload over\n"
	      "  several transports; prints one-way latency and deliveries/s side by side.\n"
	      "  --members LIST     receiver counts (default 1,2,4,8)\n"
	      "  --rate LIST        msg/s, 0 = back to back (default 20000,0)\n"
	      "  --count K          timed messages per run (default: 2 s worth when paced,\n"
	      "                     50000 back to back)\n"
	      "  --size BYTES       message size, at least 16 (default 64)\n"
	      "  --transports LIST  of unix, zmq, iceoryx, pgroup, zmqtcp, tcp\n"
	      "                     (default: all)\n"
	      "  --runs R           repeat each run R times, report medians (default 3)\n"
	      "  --json             a JSON array instead of the table\n"
	      "  --socket PATH      pgroup: use this daemon instead of starting one\n"
	      "  --verbose          let the daemons we start log to stderr\n"
	      "Exits 1 unless every receiver got every message exactly once, in order.\n",
	      f);
}

/* A comma-separated list of numbers in [min, max]. */
static bool parse_list(const char *s, uint64_t min, uint64_t max, uint64_t *out, size_t *n)
{
	char buf[256];
	if ((size_t)snprintf(buf, sizeof(buf), "%s", s) >= sizeof(buf))
		return false;
	*n = 0;
	for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (*n == MAX_LIST || !bench_parse_u64(t, max, &out[*n]) || out[*n] < min)
			return false;
		(*n)++;
	}
	return *n > 0;
}

static bool parse_xports(const char *s, struct opts *o)
{
	char buf[256];
	if ((size_t)snprintf(buf, sizeof(buf), "%s", s) >= sizeof(buf))
		return false;
	o->n_xports = 0;
	for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		size_t i = 0;
		while (i < N_XPORTS && strcmp(t, all_xports[i]->name))
			i++;
		if (i == N_XPORTS || o->n_xports == N_XPORTS)
			return false;
		o->xports[o->n_xports++] = all_xports[i];
	}
	return o->n_xports > 0;
}

static int bad_opt(const char *opt, const char *want)
{
	fprintf(stderr, "pgcompare: %s wants %s\n", opt, want);
	return 2;
}

/* 0, or the exit code. */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {
		{"members", required_argument, NULL, 'n'},
		{"rate", required_argument, NULL, 'r'},
		{"count", required_argument, NULL, 'c'},
		{"size", required_argument, NULL, 'z'},
		{"transports", required_argument, NULL, 't'},
		{"runs", required_argument, NULL, 'R'},
		{"json", no_argument, NULL, 'j'},
		{"socket", required_argument, NULL, 's'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	*o = (struct opts){.members = {1, 2, 4, 8}, .n_members = 4, .rates = {20000, 0},
			   .n_rates = 2, .size = 64, .runs = 3};
	memcpy(o->xports, all_xports, sizeof(all_xports));
	o->n_xports = N_XPORTS;
	int c;
	while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (!parse_list(optarg, 1, 1024, o->members, &o->n_members))
				return bad_opt("--members", "a list of 1..1024");
			break;
		case 'r':
			if (!parse_list(optarg, 0, 1000000000, o->rates, &o->n_rates))
				return bad_opt("--rate", "a list of msg/s (0 = back to back)");
			break;
		case 'c':
			if (!bench_parse_u64(optarg, UINT32_MAX, &o->count) || !o->count)
				return bad_opt("--count", "1..4294967295");
			break;
		case 'z':
			if (!bench_parse_u64(optarg, 1 << 20, &o->size) || o->size < sizeof(struct cmp_hdr))
				return bad_opt("--size", "16..1048576 bytes");
			break;
		case 't':
			if (!parse_xports(optarg, o))
				return bad_opt("--transports", "a list of unix, zmq, iceoryx, pgroup, zmqtcp, tcp");
			break;
		case 'R':
			if (!bench_parse_u64(optarg, 100, &o->runs) || !o->runs)
				return bad_opt("--runs", "1..100");
			break;
		case 'j':
			o->json = true;
			break;
		case 's':
			o->cmp.socket = optarg;
			break;
		case 'v':
			o->cmp.verbose = true;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pgcompare: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	return 0;
}

static uint64_t count_for(const struct opts *o, uint64_t rate)
{
	if (o->count)
		return o->count;
	return rate ? rate * PACED_SECONDS : B2B_COUNT;
}

static void report_failure(const struct cell *c, unsigned run, const struct cmp_result *r)
{
	fprintf(stderr, "pgcompare: %s N=%" PRIu64 " rate %" PRIu64 " run %u: ", c->x->name,
		c->members, c->rate, run + 1);
	if (r->delivered != r->expected)
		fprintf(stderr, "%" PRIu64 " of %" PRIu64 " deliveries missing; ",
			r->expected - r->delivered, r->expected);
	if (r->dups || r->gaps || r->bad)
		fprintf(stderr, "%" PRIu64 " duplicate, %" PRIu64 " skipped, %" PRIu64 " malformed; ",
			r->dups, r->gaps, r->bad);
	fprintf(stderr, "%s\n", r->err ? strerror(-r->err) : "no error reported");
}

/* Every run of one cell, one after the other. 0, or a negative errno that ends it all. */
static int run_cell(const struct opts *o, struct cell *c, unsigned *id)
{
	struct cmp_cfg cfg = {
		.x = c->x,
		.run = {.members = (unsigned)c->members, .size = o->size},
		.count = c->count,
		.rate = c->rate,
	};
	bool tty = isatty(2);
	for (unsigned k = 0; k < o->runs; k++) {
		if (tty)
			fprintf(stderr, "\r\033[Kpgcompare: %s N=%" PRIu64 " rate %" PRIu64
					" run %u/%" PRIu64,
				c->x->name, c->members, c->rate, k + 1, o->runs);
		cfg.run.id = (*id)++;
		int err = cmp_run_once(&cfg, &c->runs[k]);
		if (tty)
			fputs("\r\033[K", stderr);
		if (err) {
			fprintf(stderr, "pgcompare: %s N=%" PRIu64 ": %s\n", c->x->name, c->members,
				strerror(-err));
			return err;
		}
		c->n_done++;
		if (c->runs[k].ok)
			c->n_ok++;
		else
			report_failure(c, k, &c->runs[k]);
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The median over a cell's runs of the field at offset off (a double). */
static double median(const struct cell *c, size_t off)
{
	double v[100];
	for (unsigned k = 0; k < c->n_done; k++)
		memcpy(&v[k], (const char *)&c->runs[k] + off, sizeof(double));
	qsort(v, c->n_done, sizeof(double), cmp_double);
	if (!c->n_done)
		return 0;
	return c->n_done % 2 ? v[c->n_done / 2] : (v[c->n_done / 2 - 1] + v[c->n_done / 2]) / 2;
}

#define MEDIAN(c, field) median(c, offsetof(struct cmp_result, field))

static void print_section(const struct opts *o, const struct cell *cells, size_t n, uint64_t rate)
{
	if (rate)
		printf("\npaced, %" PRIu64 " msg/s", rate);
	else
		printf("\nback to back");
	printf(" (%" PRIu64 " timed messages per run)\n", count_for(o, rate));
	printf("%-9s %4s %10s %10s %10s %14s  %s\n", "transport", "N", "p50 us", "p99 us",
	       "p99.9 us", "deliveries/s", "ok");
	/* N outermost, so the transports for one N sit next to each other. */
	for (size_t m = 0; m < o->n_members; m++) {
		for (size_t i = 0; i < n; i++) {
			const struct cell *c = &cells[i];
			if (c->rate != rate || c->members != o->members[m])
				continue;
			printf("%-9s %4" PRIu64, c->x->name, c->members);
			if (c->skipped || !c->n_done) {
				printf(" %10s %10s %10s %14s  %s\n", "-", "-", "-", "-",
				       c->skipped ? "skipped" : "not run");
				continue;
			}
			printf(" %10.1f %10.1f %10.1f %14.0f  ", MEDIAN(c, p50), MEDIAN(c, p99),
			       MEDIAN(c, p999), MEDIAN(c, deliver_rate));
			if (c->n_ok == c->n_done)
				printf("yes\n");
			else
				printf("NO (%u/%u runs)\n", c->n_ok, c->n_done);
		}
	}
}

static void print_table(const struct opts *o, const struct cell *cells, size_t n)
{
	printf("pgcompare: 1 sender -> N receiver processes, %" PRIu64 " B messages, "
	       "median of %" PRIu64 " run%s\n",
	       o->size, o->runs, o->runs == 1 ? "" : "s");
	for (size_t r = 0; r < o->n_rates; r++)
		print_section(o, cells, n, o->rates[r]);
}

static void print_json(const struct opts *o, const struct cell *cells, size_t n)
{
	printf("[");
	for (size_t i = 0; i < n; i++) {
		const struct cell *c = &cells[i];
		printf("%s\n{\"transport\":\"%s\",\"members\":%" PRIu64 ",\"rate\":%" PRIu64
		       ",\"count\":%" PRIu64 ",\"size\":%" PRIu64 ",\"runs\":%u",
		       i ? "," : "", c->x->name, c->members, c->rate, c->count, o->size,
		       c->n_done);
		if (c->skipped || !c->n_done) {
			printf(",\"skipped\":true}");
			continue;
		}
		printf(",\"runs_ok\":%u,\"ok\":%s,\"latency_us\":{\"p50\":%.3f,\"p99\":%.3f,"
		       "\"p99_9\":%.3f},\"deliveries_per_s\":%.1f}",
		       c->n_ok, c->n_ok == c->n_done ? "true" : "false", MEDIAN(c, p50),
		       MEDIAN(c, p99), MEDIAN(c, p999), MEDIAN(c, deliver_rate));
	}
	printf("\n]\n");
}

/* Every cell of one transport, with its daemon up. 0, or a negative errno. */
static int run_xport(const struct opts *o, struct cell *cells, size_t n, unsigned *id)
{
	const struct xport *x = cells[0].x;
	int rc = x->start ? x->start(&o->cmp) : 0;
	if (rc) {
		for (size_t i = 0; i < n; i++)
			cells[i].skipped = true;
		return rc < 0 ? rc : 0;
	}
	int err = 0;
	for (size_t i = 0; i < n && !err; i++)
		err = run_cell(o, &cells[i], id);
	if (x->stop)
		x->stop();
	return err;
}

int main(int argc, char **argv)
{
	struct opts o;
	int rc = parse_opts(argc, argv, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	size_t per_xport = o.n_rates * o.n_members, n = o.n_xports * per_xport;
	struct cell *cells = calloc(n, sizeof(*cells));
	struct cmp_result *results = calloc(n * o.runs, sizeof(*results));
	if (!cells || !results) {
		fprintf(stderr, "pgcompare: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		struct cell *c = &cells[i];
		c->x = o.xports[i / per_xport];
		c->rate = o.rates[i % per_xport / o.n_members];
		c->members = o.members[i % o.n_members];
		c->count = count_for(&o, c->rate);
		c->runs = results + i * o.runs;
	}
	/* ^C stops the run in progress and still stops the daemons. */
	bench_catch_signals();
	unsigned id = 0;
	int err = 0;
	for (size_t t = 0; t < o.n_xports && !err; t++)
		err = run_xport(&o, cells + t * per_xport, per_xport, &id);
	bool all_ok = !err;
	for (size_t i = 0; i < n; i++)
		all_ok &= cells[i].skipped || cells[i].n_ok == o.runs;
	if (o.json)
		print_json(&o, cells, n);
	else
		print_table(&o, cells, n);
	free(results);
	free(cells);
	return all_ok ? 0 : 1;
}

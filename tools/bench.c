// SPDX-License-Identifier: MIT
/* pgroup bench: options, the result table or JSON, and the latency plot. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"

#define DEFAULT_COUNT 200000u
/* Without --count, a paced run lasts about this long. */
#define DEFAULT_PACED_SECONDS 5u

static void usage(FILE *f)
{
	fputs("usage: pgroup bench [options]\n"
	      "  S sender processes send to one fresh group with N member processes;\n"
	      "  prints delivery, latency percentiles, rates and CPU per delivery.\n"
	      "  --senders S      sender processes, not members (default 1)\n"
	      "  --members N      member processes (default 4)\n"
	      "  --member-socket PATH  members join through another node (its daemon's\n"
	      "                   socket): every message crosses a node link\n"
	      "  --size BYTES     message size, at least 16 (default 64)\n"
	      "  --zero-copy      senders fill each message in place (pg_send_claim,\n"
	      "                   then pg_send_commit; timed from the commit), members\n"
	      "                   read it in place (its last byte too): no copy\n"
	      "  --count K        messages per sender (default 200000; paced: 5 s worth)\n"
	      "  --rate R         messages/s per sender, 0 = back to back (default 0)\n"
	      "  --wait MODE      receivers: default, spin (busy polling: PGROUP_SPIN_US\n"
	      "                   and PGROUP_BUSY_US=1000000), block (PGROUP_SPIN_US=0)\n"
	      "                   or fd (pg_fd + epoll, then pg_recv without waiting)\n"
	      "  --groups G       each member joins G groups; each message goes to one\n"
	      "                   picked at random (default 1)\n"
	      "  --pin            pin senders, then members, to CPUs round robin\n"
	      "  --ring BYTES     the group's ring size (default: the daemon's)\n"
	      "  --plot FILE.png  draw the latency histogram and CDF with gnuplot\n"
	      "  --json           one JSON object instead of the table\n"
	      "  --socket PATH    the node daemon's socket\n"
	      "Exits 1 unless every member got every message exactly once, in each\n"
	      "sender's order and in one total order.\n"
	      "pgroup bench --purge [--kills K]: how fast the node removes the dead.\n"
	      "pgroup bench --many N: N groups on the node: pg_create p50/p99, the\n"
	      "  daemon's fds and memory and the shared memory per group, idle and with\n"
	      "  a member and a sender each (run it on a quiet node).\n",
	      f);
}

static bool parse_wait(const char *s, enum bench_wait *out)
{
	static const char *names[] = {"default", "spin", "block", "fd"};
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum bench_wait)i;
			return true;
		}
	}
	return false;
}

static const char *wait_name(enum bench_wait w)
{
	return w == BENCH_WAIT_SPIN	 ? "spin"
	       : w == BENCH_WAIT_BLOCK ? "block"
	       : w == BENCH_WAIT_FD	 ? "fd"
				 : "default";
}

static int bad_opt(const char *opt, const char *what)
{
	fprintf(stderr, "pgroup: bench: %s takes %s\n", opt, what);
	return 2;
}

/* 0 to run, -1 for --help, else the exit status of a usage error. */
static int parse_args(int argc, char **argv, struct bench_cfg *cfg, const char **plot)
{
	static const struct option opts[] = {
		{"senders", required_argument, NULL, 's'}, {"members", required_argument, NULL, 'm'},
		{"member-socket", required_argument, NULL, 'M'},
		{"size", required_argument, NULL, 'z'},    {"count", required_argument, NULL, 'c'},
		{"rate", required_argument, NULL, 'r'},    {"wait", required_argument, NULL, 'w'},
		{"pin", no_argument, NULL, 'p'},           {"ring", required_argument, NULL, 'R'},
		{"plot", required_argument, NULL, 'P'},    {"help", no_argument, NULL, 'h'},
		{"groups", required_argument, NULL, 'g'},
		{"zero-copy", no_argument, NULL, 'Z'},
		{0},
	};
	uint64_t v;
	bool counted = false;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
		case 'm':
			if (!bench_parse_u64(optarg, 1024, &v) || !v)
				return bad_opt(ch == 's' ? "--senders" : "--members", "1..1024");
			*(ch == 's' ? &cfg->senders : &cfg->members) = (unsigned)v;
			break;
		case 'M':
			cfg->member_socket = optarg;
			break;
		case 'z':
			if (!cli_size(optarg, &cfg->size) || cfg->size < 16)
				return bad_opt("--size", "a size of at least 16 bytes");
			break;
		case 'c':
			if (!bench_parse_u64(optarg, UINT32_MAX, &cfg->count) || !cfg->count)
				return bad_opt("--count", "a count of 1..4294967295");
			counted = true;
			break;
		case 'r':
			if (!bench_parse_u64(optarg, 1000000000, &cfg->rate))
				return bad_opt("--rate", "messages per second (0 = back to back)");
			break;
		case 'w':
			if (!parse_wait(optarg, &cfg->wait))
				return bad_opt("--wait", "default, spin or block");
			break;
		case 'p':
			cfg->pin = true;
			break;
		case 'Z':
			cfg->zero_copy = true;
			break;
		case 'R':
			if (!cli_size(optarg, &cfg->ring))
				return bad_opt("--ring", "a size such as 1M");
			break;
		case 'P':
			*plot = optarg;
			break;
		case 'g':
			if (!bench_parse_u64(optarg, 100000, &v) || !v)
				return bad_opt("--groups", "1..100000");
			cfg->groups = (unsigned)v;
			break;
		case 'h':
			return -1;
		default:
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "pgroup: bench: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!counted && cfg->rate && cfg->rate * DEFAULT_PACED_SECONDS < cfg->count)
		cfg->count = cfg->rate * DEFAULT_PACED_SECONDS;
	return 0;
}

static void print_cpu(const char *what, double ns)
{
	if (ns == BENCH_NO_CPU)
		printf("  %s n/a", what);
	else
		printf("  %s %.0f", what, ns);
}

static void print_problems(const struct bench_result *res)
{
	if (res->delivered != res->expected)
		printf("MISSING: %" PRIu64 " deliveries; %u member%s stopped early, %u evicted\n",
		       res->expected - res->delivered, res->short_members,
		       bench_plural(res->short_members), res->evicted);
	if (res->dups || res->gaps || res->bad)
		printf("ORDER: %" PRIu64 " duplicate/late, %" PRIu64 " skipped, %" PRIu64
		       " malformed or with a non-growing seq\n",
		       res->dups, res->gaps, res->bad);
	if (!res->same_order)
		printf("ORDER: members saw different total orders\n");
	if (res->err)
		printf("ERROR: a child failed: %s\n", pg_strerror(res->err));
}

static void print_table(const struct bench_cfg *cfg, const struct bench_result *res)
{
	printf("group %s: %u sender%s -> %u member%s, %zu B, ", res->group, cfg->senders,
	       bench_plural(cfg->senders), cfg->members, bench_plural(cfg->members), cfg->size);
	if (cfg->rate)
		printf("%" PRIu64 " msg/s per sender", cfg->rate);
	else
		printf("back to back");
	printf(", wait %s%s", wait_name(cfg->wait), cfg->pin ? ", pinned" : "");
	if (cfg->groups > 1)
		printf(", %u groups per member", cfg->groups);
	putchar('\n');
	printf("delivered       %" PRIu64 "/%" PRIu64 "%s\n", res->delivered, res->expected,
	       bench_ok(res) ? "  (exactly once, in order, same order at every member)" : "");
	printf("latency us      %9s %9s %9s %9s %9s\n", "p50", "p90", "p99", "p99.9", "max");
	printf("                %9.1f %9.1f %9.1f %9.1f %9.1f\n", res->p50, res->p90, res->p99,
	       res->p999, res->max);
	printf("send rate       %.0f msg/s\n", res->send_rate);
	printf("delivery rate   %.0f deliveries/s over %.2f s\n", res->deliver_rate,
	       res->elapsed);
	printf("cpu ns/delivery");
	print_cpu("senders", res->cpu_send);
	print_cpu(" receivers", res->cpu_recv);
	print_cpu(" daemon", res->cpu_daemon);
	putchar('\n');
	printf("faults/delivery senders %.3f receivers %.3f\n", res->faults_send,
	       res->faults_recv);
	printf("memory (RSS)    member %ld KiB", res->member_rss_kib);
	if (res->daemon_rss_kib >= 0)
		printf("   daemon %ld KiB, +%ld KiB for this group", res->daemon_rss_kib,
		       res->daemon_group_kib);
	putchar('\n');
	print_problems(res);
}

static void json_cpu(const char *key, double ns, const char *sep)
{
	if (ns == BENCH_NO_CPU)
		printf("\"%s\":null%s", key, sep);
	else
		printf("\"%s\":%.1f%s", key, ns, sep);
}

static void print_json(const struct bench_cfg *cfg, const struct bench_result *res)
{
	printf("{\"group\":");
	cli_json_str(res->group, strlen(res->group));
	printf(",\"senders\":%u,\"members\":%u,\"size\":%zu,\"count\":%" PRIu64
	       ",\"rate\":%" PRIu64 ",\"wait\":\"%s\",\"pin\":%s,\"ring\":%zu,\"groups\":%u"
	       ",\"zero_copy\":%s",
	       cfg->senders, cfg->members, cfg->size, cfg->count, cfg->rate,
	       wait_name(cfg->wait), cfg->pin ? "true" : "false", cfg->ring,
	       cfg->groups ? cfg->groups : 1, cfg->zero_copy ? "true" : "false");
	printf(",\"expected\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"duplicates\":%" PRIu64
	       ",\"skipped\":%" PRIu64 ",\"malformed\":%" PRIu64 ",\"evicted\":%u"
	       ",\"same_order\":%s,\"ok\":%s",
	       res->expected, res->delivered, res->dups, res->gaps, res->bad, res->evicted,
	       res->same_order ? "true" : "false", bench_ok(res) ? "true" : "false");
	printf(",\"latency_us\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p99_9\":%.3f,"
	       "\"max\":%.3f}",
	       res->p50, res->p90, res->p99, res->p999, res->max);
	printf(",\"send_rate\":%.1f,\"delivery_rate\":%.1f,\"elapsed_s\":%.6f", res->send_rate,
	       res->deliver_rate, res->elapsed);
	printf(",\"cpu_ns_per_delivery\":{");
	json_cpu("senders", res->cpu_send, ",");
	json_cpu("receivers", res->cpu_recv, ",");
	json_cpu("daemon", res->cpu_daemon, "}");
	printf(",\"faults_per_delivery\":{\"senders\":%.3f,\"receivers\":%.3f}",
	       res->faults_send > 0 ? res->faults_send : 0, res->faults_recv > 0 ? res->faults_recv : 0);
	printf(",\"rss_kib\":{\"member\":%ld,\"daemon\":%ld,\"daemon_group\":%ld}",
	       res->member_rss_kib, res->daemon_rss_kib, res->daemon_group_kib);
	printf(",\"error\":");
	if (res->err)
		cli_json_str(pg_strerror(res->err), strlen(pg_strerror(res->err)));
	else
		printf("null");
	puts("}");
}

static bool on_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];
	while (path && *path) {
		size_t n = strcspn(path, ":");
		if (n && (size_t)snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog) <
				 sizeof(buf) &&
		    access(buf, X_OK) == 0)
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

/* Fail before the run, not after: no gnuplot, or nowhere to write. */
static int plot_check(const char *png)
{
	if (!on_path("gnuplot")) {
		fprintf(stderr, "pgroup: bench: --plot needs gnuplot on PATH "
				"(Debian: apt-get install gnuplot-nox)\n");
		return 1;
	}
	FILE *f = fopen(png, "w");
	if (!f) {
		fprintf(stderr, "pgroup: bench: %s: %s\n", png, strerror(errno));
		return 1;
	}
	fclose(f);
	return 0;
}

/* Histogram with 20 log-spaced bins a decade, then ~1000 CDF points. */
#define BINS_PER_DECADE_GROWTH 1.1220184543019633 /* 10^(1/20) */
#define CDF_POINTS 1000u

static void write_plot_data(FILE *f, const struct bench_result *res)
{
	const uint64_t *lat = res->lat;
	size_t n = res->nlat, i = 0;
	double edge = 0.01; /* us */
	while (edge * 10 <= (double)lat[0] / 1000.0)
		edge *= 10;
	while (i < n) {
		double hi = edge * BINS_PER_DECADE_GROWTH;
		size_t k = 0;
		for (; i < n && (double)lat[i] / 1000.0 < hi; i++)
			k++;
		if (k)
			fprintf(f, "%g %g %zu\n", edge, hi, k);
		edge = hi;
	}
	fputs("\n\n", f);
	for (size_t p = 0; p < CDF_POINTS; p++) {
		size_t k = (size_t)((double)p * (double)(n - 1) / (CDF_POINTS - 1));
		fprintf(f, "%g %g\n", (double)lat[k] / 1000.0, (double)(k + 1) / (double)n);
	}
}

/* gnuplot takes '' for a quote inside a single-quoted string. */
static void gp_quoted(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++) {
		if (*s == '\'')
			fputc('\'', f);
		fputc(*s, f);
	}
	fputc('\'', f);
}

static int plot(const char *png, const struct bench_cfg *cfg, const struct bench_result *res)
{
	if (!res->nlat) {
		fprintf(stderr, "pgroup: bench: nothing delivered, nothing to plot\n");
		return 1;
	}
	/* The data goes to gnuplot in a memfd it inherits (no file left in
	 * /tmp); each `plot` reopens it from the start through /proc. */
	int fd = memfd_create("pgroup-bench-plot", 0);
	FILE *df = fd >= 0 ? fdopen(dup(fd), "w") : NULL;
	if (!df) {
		if (fd >= 0)
			close(fd);
		return cli_fail("plot data", -errno);
	}
	write_plot_data(df, res);
	fclose(df);
	char data[64];
	snprintf(data, sizeof(data), "/proc/self/fd/%d", fd);
	FILE *gp = popen("gnuplot", "w");
	int rc = 1;
	if (gp) {
		fputs("set terminal pngcairo size 1200,500\nset output ", gp);
		gp_quoted(gp, png);
		fprintf(gp, "\nset multiplot layout 1,2 title 'pgroup bench: %u -> %u, %zu B, ",
			cfg->senders, cfg->members, cfg->size);
		if (cfg->rate)
			fprintf(gp, "%" PRIu64 " msg/s per sender'\n", cfg->rate);
		else
			fputs("back to back'\n", gp);
		fputs("set logscale x\nset grid\nset key bottom right\n"
		      "set xlabel 'one-way latency (us)'\n"
		      "set ylabel 'deliveries'\nset style fill solid 0.6\nplot ", gp);
		gp_quoted(gp, data);
		fputs(" index 0 using 1:3:1:2:(0):3 with boxxyerror notitle\n"
		      "set ylabel 'fraction of deliveries'\nset yrange [0:1]\nplot ", gp);
		gp_quoted(gp, data);
		fputs(" index 1 using 1:2 with lines lw 2 title 'CDF'\nunset multiplot\n", gp);
		rc = pclose(gp) == 0 ? 0 : 1;
	}
	close(fd);
	if (rc)
		fprintf(stderr, "pgroup: bench: gnuplot failed to draw %s\n", png);
	return rc;
}

int cli_bench(struct cli *c, int argc, char **argv)
{
	struct bench_cfg cfg = {
		.prefix = "bench", .senders = 1, .members = 4, .size = 64, .count = DEFAULT_COUNT,
	};
	const char *png = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--purge") == 0)
			return cli_bench_purge(c, argc, argv);
		uint64_t many;
		if (strcmp(argv[i], "--many") == 0) {
			if (i + 1 == argc || !bench_parse_u64(argv[i + 1], 1000000, &many) || !many) {
				fprintf(stderr, "pgroup: bench: --many takes 1..1000000\n");
				return 2;
			}
			return cli_bench_many(c, (unsigned)many);
		}
	}
	int rc = parse_args(argc, argv, &cfg, &png);
	if (rc) {
		if (rc < 0)
			usage(stdout);
		return rc < 0 ? 0 : rc;
	}
	if (png && (rc = plot_check(png)))
		return rc;
	cfg.progress = isatty(STDERR_FILENO);
	bench_catch_signals();
	pg_ctx *ctx;
	int err = cli_open(c, &ctx);
	if (err)
		return cli_fail("cannot reach the daemon", err);
	struct bench_result res;
	err = bench_run(ctx, c->socket, &cfg, &res);
	pg_close(ctx);
	if (err)
		return cli_fail("bench", err);
	if (c->json)
		print_json(&cfg, &res);
	else
		print_table(&cfg, &res);
	rc = bench_ok(&res) ? 0 : 1;
	if (png && plot(png, &cfg, &res))
		rc = 1;
	bench_result_free(&res);
	return rc;
}

// SPDX-License-Identifier: MIT
/*
 * pgroup top: the node's groups, live. Each second the daemon's listing
 * (groups.c) is taken again; rates are the change of its counters since
 * the last one. On a terminal: a full screen, sorted by messages in,
 * scrolled with the arrow keys (or j/k, PgUp/PgDn), q quits. Otherwise,
 * or with --json, one snapshot over one second.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "groups.h"

/* One group's line: its listing, and rates from the one before. */
struct top_row {
	const struct group_row *g;
	double in, out; /* per second */
};

struct sample {
	struct group_row *rows;
	size_t n;
	struct timespec at;
};

static double since(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static int take(int fd, struct sample *s)
{
	int err = groups_fetch(fd, &s->rows, &s->n);
	clock_gettime(CLOCK_MONOTONIC, &s->at);
	return err;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct group_row *)a)->name, ((const struct group_row *)b)->name);
}

/* Busiest first, then by name: the order does not jump between equals. */
static int by_rate(const void *a, const void *b)
{
	const struct top_row *x = a, *y = b;
	if (x->in != y->in)
		return x->in < y->in ? 1 : -1;
	return strcmp(x->g->name, y->g->name);
}

/* Rates of now's groups against before's (sorted by name; a group made
 * meanwhile, or made again and so counting anew, has none yet). */
static struct top_row *rates(const struct sample *before, struct sample *now)
{
	struct top_row *t = calloc(now->n ? now->n : 1, sizeof(*t));
	if (!t)
		return NULL;
	double dt = since(&before->at, &now->at);
	for (size_t i = 0; i < now->n; i++) {
		const struct group_row *g = &now->rows[i];
		const struct group_row *p =
		    bsearch(g, before->rows, before->n, sizeof(*g), by_name);
		t[i].g = g;
		if (p && dt > 0 && g->info.tail >= p->info.tail &&
		    g->info.delivered >= p->info.delivered) {
			t[i].in = (double)(g->info.tail - p->info.tail) / dt;
			t[i].out = (double)(g->info.delivered - p->info.delivered) / dt;
		}
	}
	qsort(t, now->n, sizeof(*t), by_rate);
	return t;
}

static void print_json(const struct top_row *t, size_t n)
{
	putchar('[');
	for (size_t i = 0; i < n; i++) {
		const struct ctl_group_info *g = &t[i].g->info;
		printf("%s{\"group\":", i ? "," : "");
		cli_json_str(t[i].g->name, strlen(t[i].g->name));
		printf(",\"master\":");
		cli_json_str(g->master, strlen(g->master));
		printf(",\"members\":%u,\"in_per_s\":%.1f,\"out_per_s\":%.1f,\"lag\":%llu,"
		       "\"slowest_pid\":%d,\"evictions\":%u,\"cancels\":%u}",
		       g->members, t[i].in, t[i].out, (unsigned long long)g->lag, g->slowest_pid,
		       g->evictions, g->cancels);
	}
	puts("]");
}

#define TOP_HEADER "%-28s %-12s %7s %10s %10s %10s %8s %6s %6s\n"

static void print_line(const struct top_row *r, int width, bool tty)
{
	const struct ctl_group_info *g = &r->g->info;
	char slow[16] = "-";
	if (g->slowest_pid > 0)
		snprintf(slow, sizeof(slow), "%d", g->slowest_pid);
	char line[512];
	snprintf(line, sizeof(line), "%-28.28s %-12.12s %7u %10.0f %10.0f %10llu %8s %6u %6u",
		 r->g->name, g->master, g->members, r->in, r->out, (unsigned long long)g->lag,
		 slow, g->evictions, g->cancels);
	if (tty)
		printf("%.*s\033[K\r\n", width, line);
	else
		printf("%s\n", line);
}

static void draw(const struct top_row *t, size_t n, size_t *first, int rows, int cols)
{
	int body = rows > 3 ? rows - 3 : 1;
	if (*first + (size_t)body > n)
		*first = n > (size_t)body ? n - (size_t)body : 0;
	time_t now = time(NULL);
	char when[32];
	strftime(when, sizeof(when), "%H:%M:%S", localtime(&now));
	printf("\033[H\033[7mpgroup top  %s  %zu group%s  (rows %zu-%zu; arrows, j/k, "
	       "PgUp/PgDn scroll; q quits)\033[K\033[0m\r\n",
	       when, n, n == 1 ? "" : "s", n ? *first + 1 : 0,
	       *first + (size_t)body < n ? *first + (size_t)body : n);
	char head[256];
	snprintf(head, sizeof(head), TOP_HEADER, "GROUP", "MASTER", "MEMBERS", "IN/S", "OUT/S",
		 "LAG", "SLOWEST", "EVICT", "CANCEL");
	head[strcspn(head, "\n")] = 0;
	printf("\033[1m%.*s\033[K\033[0m\r\n", cols, head);
	for (int i = 0; i < body; i++) {
		if (*first + (size_t)i < n)
			print_line(&t[*first + (size_t)i], cols, true);
		else
			printf("\033[K\r\n");
	}
	printf("\033[J");
	fflush(stdout);
}

static struct termios saved_tty;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void tty_restore(void)
{
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	printf("\033[?25h\033[?1049l"); /* cursor back, the screen as it was */
	fflush(stdout);
}

static int tty_raw(void)
{
	if (tcgetattr(STDIN_FILENO, &saved_tty) < 0)
		return -errno;
	struct termios t = saved_tty;
	t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) < 0)
		return -errno;
	printf("\033[?1049h\033[?25l"); /* the alternate screen, no cursor */
	return 0;
}

/* Keys since the last look: scroll, or false to quit. */
static bool keys(size_t *first, size_t n, int rows)
{
	char buf[64];
	ssize_t k = read(STDIN_FILENO, buf, sizeof(buf));
	size_t page = rows > 4 ? (size_t)rows - 4 : 1;
	for (ssize_t i = 0; i < k; i++) {
		char ch = buf[i];
		if (ch == 'q' || ch == 'Q')
			return false;
		/* ESC [ A / B (arrows), ESC [ 5 ~ / 6 ~ (pages) */
		if (ch == 27 && i + 2 < k && buf[i + 1] == '[') {
			char c2 = buf[i + 2];
			i += 2;
			if ((c2 == '5' || c2 == '6') && i + 1 < k && buf[i + 1] == '~')
				i++;
			ch = c2 == 'A' ? 'k' : c2 == 'B' ? 'j' : c2 == '5' ? 'b' : c2 == '6' ? ' ' : 0;
		}
		if (ch == 'j' && *first + 1 < n)
			(*first)++;
		else if (ch == 'k' && *first)
			(*first)--;
		else if (ch == ' ')
			*first = *first + page < n ? *first + page : *first;
		else if (ch == 'b')
			*first = *first > page ? *first - page : 0;
	}
	return true;
}

static void screen_size(int *rows, int *cols)
{
	struct winsize w;
	*rows = 24;
	*cols = 80;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_row && w.ws_col) {
		*rows = w.ws_row;
		*cols = w.ws_col;
	}
}

static void pause_second(void)
{
	struct timespec ts = {.tv_sec = 1};
	while (nanosleep(&ts, &ts) && errno == EINTR && !stop)
		;
}

static int live(int fd, struct sample *prev)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	int err = tty_raw();
	if (err)
		return err;
	size_t first = 0;
	while (!stop) {
		struct sample now;
		if ((err = take(fd, &now)))
			break;
		qsort(now.rows, now.n, sizeof(*now.rows), by_name);
		struct top_row *t = rates(prev, &now);
		if (!t) {
			free(now.rows);
			err = -ENOMEM;
			break;
		}
		int rows, cols;
		screen_size(&rows, &cols);
		draw(t, now.n, &first, rows, cols);
		free(prev->rows);
		*prev = now;
		/* Keys are looked at for the second until the next frame. */
		bool go = true;
		for (int i = 0; i < 10 && go && !stop; i++) {
			struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
			if (poll(&p, 1, 100) > 0) {
				go = keys(&first, now.n, rows);
				draw(t, now.n, &first, rows, cols);
			}
		}
		free(t);
		if (!go)
			break;
	}
	tty_restore();
	return err;
}

int cli_top(struct cli *c, int argc, char **argv)
{
	if (argc != 1) {
		fprintf(stderr, "pgroup: usage: pgroup top [--json] [--socket PATH]\n");
		return 2;
	}
	int fd = cli_ctl_open(c);
	if (fd < 0)
		return cli_fail("top", fd);
	struct sample prev;
	int err = take(fd, &prev);
	if (!err)
		qsort(prev.rows, prev.n, sizeof(*prev.rows), by_name);
	bool tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	if (!err && tty && !c->json) {
		err = live(fd, &prev);
	} else if (!err) {
		/* One snapshot: rates over one second. */
		pause_second();
		struct sample now;
		if (!(err = take(fd, &now))) {
			qsort(now.rows, now.n, sizeof(*now.rows), by_name);
			struct top_row *t = rates(&prev, &now);
			if (!t) {
				err = -ENOMEM;
			} else if (c->json) {
				print_json(t, now.n);
			} else {
				printf(TOP_HEADER, "GROUP", "MASTER", "MEMBERS", "IN/S", "OUT/S", "LAG",
				       "SLOWEST", "EVICT", "CANCEL");
				for (size_t i = 0; i < now.n; i++)
					print_line(&t[i], 0, false);
			}
			free(t);
			free(now.rows);
		}
	}
	free(prev.rows);
	close(fd);
	return err ? cli_fail("top", err) : 0;
}

// SPDX-License-Identifier: MIT
/*
 * Bad input and bad luck against a real pgroupd: garbage, truncated and
 * oversized requests on the control socket, fds pushed at the daemon,
 * clients vanishing mid-request, corrupt ring records from a malicious
 * writer, and the daemon going away (cleanly and by SIGKILL).
 */
#include <CUnit/Basic.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "proto/ctl.h"
#include "proto/path.h"
#include "ring/layout.h"

/* The daemon's fd count once it settles at `want` (sessions that ended
 * without BYE get a grace period first), or what it is after 3 s. */
static int settled_fds(pid_t pid, int want)
{
	int n = count_fds(pid);
	for (int i = 0; i < 300 && n != want; i++) {
		usleep(10000);
		n = count_fds(pid);
	}
	return n;
}

/* Send raw bytes, return the status of the daemon's reply (or -EIO). */
static int raw_exchange(int fd, const void *buf, size_t len)
{
	if (send(fd, buf, len, MSG_NOSIGNAL) != (ssize_t)len)
		return -EIO;
	static uint8_t in[CTL_MAX_BYTES];
	ssize_t n = recv(fd, in, sizeof(in), 0);
	struct ctl_in m;
	if (n <= 0 || ctl_parse(&m, in, (size_t)n) < 0 || !(m.hdr.type & CTL_REPLY))
		return -EIO;
	return m.hdr.status;
}

static void test_garbage_requests(void)
{
	/* The harness's readiness probe closed without BYE: let its grace
	 * pass before counting. */
	usleep(300000);
	int before = count_fds(the_daemon.pid);
	int fd = raw_connect();
	CU_ASSERT_FATAL(fd >= 0);
	uint8_t junk[256];
	srand(7);
	for (int round = 0; round < 200; round++) {
		size_t n = 1 + (size_t)rand() % sizeof(junk);
		for (size_t i = 0; i < n; i++)
			junk[i] = (uint8_t)rand();
		CU_ASSERT_EQUAL(raw_exchange(fd, junk, n), -EPROTO);
	}
	/* An empty datagram is garbage, not a hang-up. */
	CU_ASSERT_EQUAL(raw_exchange(fd, "", 0), -EPROTO);
	/* A header that promises more than is there (truncated). */
	struct ctl_out *o = malloc(sizeof(*o));
	ctl_begin(o, CTL_JOIN, 5, 0);
	ctl_put_str(o, CTL_T_NAME, "abc");
	ctl_end(o);
	CU_ASSERT_EQUAL(raw_exchange(fd, o->buf, o->len - 3), -EPROTO);
	/* A field whose length runs past the end. */
	o->buf[sizeof(struct ctl_hdr) + 2] = 0xff;
	CU_ASSERT_EQUAL(raw_exchange(fd, o->buf, o->len), -EPROTO);
	/* Well-formed but missing its fields, or wrong field sizes. */
	ctl_begin(o, CTL_JOIN, 6, 0);
	ctl_end(o);
	CU_ASSERT_EQUAL(raw_exchange(fd, o->buf, o->len), -EINVAL);
	ctl_begin(o, CTL_CREATE, 7, 0);
	ctl_put_str(o, CTL_T_NAME, "sizes");
	ctl_put_u32(o, CTL_T_RING, 5); /* a u64 field sent as u32 */
	ctl_end(o);
	CU_ASSERT_EQUAL(raw_exchange(fd, o->buf, o->len), -EINVAL);
	/* A reply type sent as a request, and an unknown type. */
	ctl_begin(o, CTL_HELLO | CTL_REPLY, 8, 0);
	ctl_end(o);
	CU_ASSERT_EQUAL(raw_exchange(fd, o->buf, o->len), -EPROTO);
	ctl_begin(o, 40, 9, 0);
	ctl_end(o);
	CU_ASSERT_EQUAL(raw_exchange(fd, o->buf, o->len), -EOPNOTSUPP);
	/* Oversized: more than the daemon reads. */
	static uint8_t huge[CTL_MAX_BYTES + 4096];
	memset(huge, 0, sizeof(huge));
	CU_ASSERT_EQUAL(raw_exchange(fd, huge, sizeof(huge)), -EPROTO);
	/* fds pushed at the daemon are closed, not kept. */
	ctl_begin(o, CTL_HELLO, 10, 0);
	ctl_end(o);
	int pushed[2] = {fd, 0};
	for (int i = 0; i < 50; i++)
		CU_ASSERT_EQUAL(ctl_send(fd, o, pushed, 2), 0);
	for (int i = 0; i < 50; i++) {
		static uint8_t in[CTL_MAX_BYTES];
		int got[2];
		unsigned ng = 2;
		CU_ASSERT(ctl_recv(fd, in, sizeof(in), got, &ng, 0) > 0);
		for (unsigned k = 0; k < ng; k++)
			close(got[k]);
	}
	free(o);
	close(fd);
	/* The daemon still serves, and holds no more fds than before. */
	pg_ctx *ctx = open_ctx();
	const char *g = fresh_group("after-garbage");
	CU_ASSERT_EQUAL(pg_create(ctx, g), 0);
	CU_ASSERT_EQUAL(pg_delete(ctx, g), 0);
	pg_close(ctx);
	CU_ASSERT_EQUAL(settled_fds(the_daemon.pid, before), before);
}

static int vanish_mid_request(void *arg, int up, int down)
{
	const char *g = arg;
	int fd = raw_connect();
	struct ctl_out *o = malloc(sizeof(*o));
	ctl_begin(o, CTL_JOIN, 1, 0);
	ctl_put_str(o, CTL_T_NAME, g);
	ctl_put_u32(o, CTL_T_PID, 0);
	ctl_end(o);
	/* Ask to join, many times over, and die without reading a reply. */
	for (int i = 0; i < 20; i++)
		send(fd, o->buf, o->len, MSG_NOSIGNAL);
	kill(getpid(), SIGKILL);
	return 0;
}

static void test_clients_vanish(void)
{
	const char *g = fresh_group("vanish");
	pg_ctx *ctx = open_ctx();
	CU_ASSERT_EQUAL(pg_create(ctx, g), 0);
	int before = count_fds(the_daemon.pid);
	for (int i = 0; i < 20; i++) {
		struct child c;
		CU_ASSERT_EQUAL_FATAL(child_start(&c, vanish_mid_request, (void *)g), 0);
		CU_ASSERT_EQUAL(child_wait(&c), 128 + SIGKILL);
	}
	/* Opened and closed handles, joins and leaves, over and over. */
	for (int i = 0; i < 100; i++) {
		pg_ctx *x = open_ctx();
		CU_ASSERT_EQUAL(pg_join(x, g, 0, NULL, NULL), 0);
		CU_ASSERT_EQUAL(pg_send(x, g, "x", 1), 0);
		pg_close(x);
	}
	pg_member *m;
	size_t n = 1;
	for (int i = 0; i < 100 && n; i++) {
		CU_ASSERT_EQUAL(pg_members(ctx, g, &m, &n), 0);
		free(m);
		if (n)
			usleep(10000);
	}
	CU_ASSERT_EQUAL(n, 0); /* nobody left behind */
	CU_ASSERT_EQUAL(settled_fds(the_daemon.pid, before), before);
	CU_ASSERT_EQUAL(pg_delete(ctx, g), 0);
	pg_close(ctx);
}

/* A malicious writer: commits a record, then rewrites its header in its
 * own area before the reader looks. */
static void corrupt_and_expect(void (*spoil)(struct ring_rec *h))
{
	const char *g = fresh_group("corrupt"), *ok = fresh_group("fine");
	pg_ctx *rd = open_ctx(), *wr = open_ctx();
	pg_group_opts o = {.ring_bytes = 64 * 1024, .max_msg = 1024};
	CU_ASSERT_EQUAL(pg_create_opts(rd, g, &o), 0);
	CU_ASSERT_EQUAL(pg_create(rd, ok), 0);
	CU_ASSERT_EQUAL(pg_join(rd, g, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_join(rd, ok, 0, NULL, NULL), 0);
	void *buf;
	CU_ASSERT_EQUAL_FATAL(pg_send_claim(wr, g, 16, &buf), 0);
	struct ring_rec *h = (struct ring_rec *)((char *)buf - sizeof(*h));
	CU_ASSERT_EQUAL(pg_send_commit(wr, buf), 0);
	spoil(h);
	pg_message m;
	CU_ASSERT_EQUAL(pg_recv(rd, &m, 1000), -EBADMSG);
	/* The reader left the broken group and still reads the good one. */
	CU_ASSERT_EQUAL(pg_send(wr, ok, "ok", 2), 0);
	CU_ASSERT_EQUAL(pg_recv(rd, &m, 1000), 0);
	CU_ASSERT(m.len == 2 && strcmp(m.group, ok) == 0);
	pg_member *list;
	size_t n;
	CU_ASSERT_EQUAL(pg_members(rd, g, &list, &n), 0);
	CU_ASSERT_EQUAL(n, 0);
	free(list);
	pg_delete(rd, g);
	pg_delete(rd, ok);
	pg_close(wr);
	pg_close(rd);
}

static void spoil_kind(struct ring_rec *h)
{
	h->kind = 99;
}

static void spoil_len(struct ring_rec *h)
{
	h->len = 1u << 30; /* far past max_msg and the area */
}

static void spoil_bounds(struct ring_rec *h)
{
	h->order_pos += 7; /* a record that says it belongs elsewhere */
}

static void spoil_seq(struct ring_rec *h)
{
	h->kind = RING_REC_WRAP; /* a writer-private kind no reader accepts */
}

static void test_corrupt_kind(void)
{
	corrupt_and_expect(spoil_kind);
}
static void test_corrupt_len(void)
{
	corrupt_and_expect(spoil_len);
}
static void test_corrupt_bounds(void)
{
	corrupt_and_expect(spoil_bounds);
}
static void test_corrupt_seq(void)
{
	corrupt_and_expect(spoil_seq);
}

/* A daemon of its own, so its death does not end the other tests. */
static void daemon_goes_away(int sig)
{
	struct daemon_proc d = {0};
	CU_ASSERT_EQUAL_FATAL(daemon_start(&d, "doomed"), 0);
	pg_ctx *mem, *snd;
	CU_ASSERT_EQUAL_FATAL(pg_open(&mem, d.socket), 0);
	CU_ASSERT_EQUAL_FATAL(pg_open(&snd, d.socket), 0);
	CU_ASSERT_EQUAL(pg_create(mem, "g"), 0);
	CU_ASSERT_EQUAL(pg_join(mem, "g", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_send(snd, "g", "before", 6), 0);
	if (sig == SIGTERM) {
		CU_ASSERT_EQUAL(daemon_stop(&d), 0); /* a clean exit */
	} else {
		kill(d.pid, SIGKILL);
		waitpid(d.pid, NULL, 0);
		unlink(d.socket);
	}
	pg_message m;
	/* What was accepted before is still delivered, then the group is
	 * down, then calls fail. */
	CU_ASSERT_EQUAL(pg_recv(mem, &m, 2000), 0);
	CU_ASSERT(m.kind == PG_MSG && m.len == 6);
	CU_ASSERT_EQUAL(pg_recv(mem, &m, 2000), 0);
	CU_ASSERT_EQUAL(m.kind, PG_GROUP_DOWN);
	CU_ASSERT_EQUAL(pg_recv(mem, &m, 100), -ENOTCONN);
	CU_ASSERT_EQUAL(pg_send(snd, "g", "after", 5), -ENOTCONN);
	CU_ASSERT_EQUAL(pg_create(snd, "h"), -ENOTCONN);
	pg_member *list;
	size_t n;
	CU_ASSERT_EQUAL(pg_members(snd, "g", &list, &n), -ENOTCONN);
	pg_close(snd);
	pg_close(mem);
}

static void test_daemon_sigterm(void)
{
	daemon_goes_away(SIGTERM);
}

static void test_daemon_sigkill(void)
{
	daemon_goes_away(SIGKILL);
}

/* PGROUP_AUTOSTART=1: pg_open starts a daemon when none listens (and
 * without it, it never does). */
static void test_autostart(void)
{
	char path[108];
	snprintf(path, sizeof(path), "/tmp/pgroup-test-auto-%d.sock", (int)getpid());
	unlink(path);
	pg_ctx *ctx = NULL;
	unsetenv("PGROUP_AUTOSTART");
	int err = pg_open(&ctx, path);
	CU_ASSERT(err == -ENOENT || err == -ECONNREFUSED);
	setenv("PGROUP_AUTOSTART", "1", 1);
	CU_ASSERT_EQUAL_FATAL(pg_open(&ctx, path), 0);
	unsetenv("PGROUP_AUTOSTART");
	CU_ASSERT_EQUAL(pg_create(ctx, "auto"), 0);
	pg_close(ctx);
	/* Stop the daemon it started: its pid from the socket. */
	int fd = ctl_connect(path);
	struct ucred cr = {0};
	socklen_t len = sizeof(cr);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len), 0);
	close(fd);
	CU_ASSERT(cr.pid > 0 && cr.pid != the_daemon.pid);
	if (cr.pid > 0)
		kill(cr.pid, SIGTERM);
	for (int i = 0; i < 200 && access(path, F_OK) == 0; i++)
		usleep(10000);
	CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0); /* it cleaned up its socket */
}

/* A join whose daemon stops answering: -ETIMEDOUT after the RPC bound; once
 * the daemon goes on, the library and the daemon agree (a member, that
 * receives; a retry says -EALREADY). */
static void test_join_times_out(void)
{
	struct daemon_proc d = {0};
	CU_ASSERT_EQUAL_FATAL(daemon_start(&d, "slow"), 0);
	pg_ctx *c, *s;
	CU_ASSERT_EQUAL_FATAL(pg_open(&c, d.socket), 0);
	CU_ASSERT_EQUAL_FATAL(pg_open(&s, d.socket), 0);
	CU_ASSERT_EQUAL(pg_create(c, "g"), 0);
	kill(d.pid, SIGSTOP);
	CU_ASSERT_EQUAL(pg_join(c, "g", 0, NULL, NULL), -ETIMEDOUT);
	kill(d.pid, SIGCONT);
	usleep(100000);
	CU_ASSERT_EQUAL(pg_join(c, "g", 0, NULL, NULL), -EALREADY);
	pg_member *l;
	size_t n = 0;
	CU_ASSERT_EQUAL(pg_members(c, "g", &l, &n), 0);
	CU_ASSERT(n == 1 && l[0].pid == getpid());
	free(l);
	CU_ASSERT_EQUAL(pg_send(s, "g", "hi", 2), 0);
	pg_message m;
	CU_ASSERT_EQUAL(recv_msg(c, &m, 2000), 0);
	CU_ASSERT(m.len == 2 && memcmp(m.data, "hi", 2) == 0);
	pg_close(s);
	pg_close(c);
	CU_ASSERT_EQUAL(daemon_stop(&d), 0);
}

/* A view released after its membership was taken away (another process
 * removed it) must not write its old cursor into the slot's next holder:
 * the group stays usable. */
static void test_stale_view_release(void)
{
	const char *g = fresh_group("stale");
	pg_ctx *a = open_ctx(), *b = open_ctx(), *c = open_ctx(), *s = open_ctx();
	pg_group_opts o = {.ring_bytes = 64 * 1024};
	CU_ASSERT_EQUAL_FATAL(pg_create_opts(a, g, &o), 0);
	CU_ASSERT_EQUAL(pg_join(a, g, 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL(pg_send(s, g, "m", 1), 0);
	pg_message m;
	CU_ASSERT_EQUAL(recv_msg(a, &m, 1000), 0); /* a view, held */
	CU_ASSERT_EQUAL(pg_leave(b, g, getpid()), 0);
	for (int i = 0; i < 5000; i++) /* no member: the order runs on */
		CU_ASSERT_EQUAL_FATAL(pg_send(s, g, NULL, 0), 0);
	CU_ASSERT_EQUAL(pg_join(c, g, 0, NULL, NULL), 0); /* the freed slot */
	pg_recv(a, &m, 0); /* releases the old view */
	int sent = 0, err;
	while (sent < 100 && (err = pg_trysend(s, g, "x", 1)) == 0)
		sent++;
	CU_ASSERT_EQUAL(sent, 100);
	int got = 0;
	while (recv_msg(c, &m, 200) == 0)
		got++;
	CU_ASSERT_EQUAL(got, 100);
	pg_close(s);
	pg_close(c);
	pg_close(b);
	pg_close(a);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	CU_pSuite s = CU_add_suite("robust", suite_start_daemon, suite_stop_daemon);
	CU_add_test(s, "garbage, truncated, oversized requests", test_garbage_requests);
	CU_add_test(s, "clients vanishing mid-request", test_clients_vanish);
	CU_add_test(s, "corrupt record: kind", test_corrupt_kind);
	CU_add_test(s, "corrupt record: length", test_corrupt_len);
	CU_add_test(s, "corrupt record: bounds", test_corrupt_bounds);
	CU_add_test(s, "corrupt record: seq", test_corrupt_seq);
	CU_add_test(s, "daemon SIGTERM: group down, ENOTCONN", test_daemon_sigterm);
	CU_add_test(s, "daemon SIGKILL: group down, ENOTCONN", test_daemon_sigkill);
	CU_add_test(s, "PGROUP_AUTOSTART", test_autostart);
	CU_add_test(s, "a join the daemon answers too late", test_join_times_out);
	CU_add_test(s, "a view released after its membership went", test_stale_view_release);
	return run_cunit();
}

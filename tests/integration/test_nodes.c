// SPDX-License-Identifier: MIT
/*
 * Node links between real daemons on loopback: a full mesh from one peer
 * each, the cookie (wrong cookie refused and logged, encryption never
 * downgraded), a crashed, a stopped and a restarted node, and strangers
 * writing garbage to the link port.
 */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mesh_harness.h"
#include "node/seal.h"
#include "proto/ctl.h"
#include "proto/wire.h"

static const char *cookie;

static void stop(struct daemon_proc *d)
{
	if (d->pid > 0)
		CU_ASSERT_EQUAL(daemon_stop(d), 0);
}

static void kill9(struct daemon_proc *d)
{
	kill(d->pid, SIGKILL);
	waitpid(d->pid, NULL, 0);
	d->pid = 0;
}

/* c was given b only, b only a: every pair is linked, both ways. */
static void test_mesh_through_one_peer(void)
{
	struct daemon_proc a = {0}, b = {0}, c = {0};
	CU_ASSERT_FATAL(mesh_node(&a, "na", 0, cookie, NULL, 0, NULL) == 0);
	const struct daemon_proc *pa[] = {&a};
	CU_ASSERT_FATAL(mesh_node(&b, "nb", 0, cookie, pa, 1, NULL) == 0);
	const struct daemon_proc *pb[] = {&b};
	CU_ASSERT_FATAL(mesh_node(&c, "nc", 0, cookie, pb, 1, NULL) == 0);
	const struct daemon_proc *all[] = {&a, &b, &c};
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 3; j++)
			if (i != j)
				CU_ASSERT(mesh_wait(all[i], all[j]->node, CTL_NODE_UP, 10000) >= 0);
	/* One link per pair, however it was dialled: two peers each. */
	for (int i = 0; i < 3; i++) {
		int ups = 0;
		for (int j = 0; j < 3; j++)
			ups += i != j && mesh_state(all[i], all[j]->node) == CTL_NODE_UP;
		CU_ASSERT_EQUAL(ups, 2);
	}
	/* The operator's view through the CLI. */
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "%s nodes --json --socket %s", getenv("PGROUP_CLI"), c.socket);
	FILE *f = popen(cmd, "r");
	CU_ASSERT_FATAL(f != NULL);
	char out[8192] = "";
	size_t n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = 0;
	CU_ASSERT_EQUAL(pclose(f), 0);
	CU_ASSERT(strstr(out, "\"node\":\"na\"") && strstr(out, "\"node\":\"nb\""));
	CU_ASSERT(strstr(out, "\"state\":\"up\"") != NULL);
	CU_ASSERT(strstr(out, "\"encrypted\":true") != NULL);
	stop(&c);
	stop(&b);
	stop(&a);
}

/* Another cookie, or plaintext against encryption: refused, logged, and
 * nothing it sent counts. */
static void test_refused(void)
{
	struct daemon_proc a = {0}, x = {0}, y = {0}, b = {0};
	const char *other = mesh_cookie("other");
	CU_ASSERT_FATAL(other != NULL);
	CU_ASSERT_FATAL(mesh_node(&a, "ra", 0, cookie, NULL, 0, NULL) == 0);
	const struct daemon_proc *pa[] = {&a};
	CU_ASSERT_FATAL(mesh_node(&x, "rx", 0, other, pa, 1, NULL) == 0);
	CU_ASSERT_FATAL(mesh_node(&y, "ry", 0, cookie, pa, 1, "--no-encrypt") == 0);
	CU_ASSERT_FATAL(mesh_node(&b, "rb", 0, cookie, pa, 1, NULL) == 0);
	CU_ASSERT(mesh_wait(&a, "rb", CTL_NODE_UP, 10000) >= 0);
	/* Several redials' worth of time. */
	usleep(1500 * 1000);
	CU_ASSERT(mesh_state(&a, "rx") < CTL_NODE_PROBATION);
	CU_ASSERT(mesh_state(&a, "ry") < CTL_NODE_PROBATION);
	CU_ASSERT(mesh_state(&x, "ra") < CTL_NODE_PROBATION);
	CU_ASSERT(mesh_state(&y, "ra") < CTL_NODE_PROBATION);
	CU_ASSERT(mesh_logged(&a, "wrong cookie"));
	CU_ASSERT(mesh_logged(&x, "wrong cookie"));
	CU_ASSERT(mesh_logged(&a, "--no-encrypt"));
	/* b, told of them by nobody, never heard of them either. */
	CU_ASSERT_EQUAL(mesh_state(&b, "rx"), -1);
	CU_ASSERT_EQUAL(mesh_state(&a, "rb"), CTL_NODE_UP);
	stop(&b);
	stop(&y);
	stop(&x);
	stop(&a);
	unlink(other);
}

/* Two nodes that both say --no-encrypt link (to measure the cost). */
static void test_no_encrypt(void)
{
	struct daemon_proc a = {0}, b = {0};
	CU_ASSERT_FATAL(mesh_node(&a, "pa", 0, cookie, NULL, 0, "--no-encrypt") == 0);
	const struct daemon_proc *pa[] = {&a};
	CU_ASSERT_FATAL(mesh_node(&b, "pb", 0, cookie, pa, 1, "--no-encrypt") == 0);
	CU_ASSERT(mesh_wait(&a, "pb", CTL_NODE_UP, 10000) >= 0);
	CU_ASSERT(mesh_wait(&b, "pa", CTL_NODE_UP, 10000) >= 0);
	stop(&b);
	stop(&a);
}

/* kill -9: its link closes and the others see it go at once; restarted on
 * its port, it is linked again (both ways). */
static void test_crash_and_restart(void)
{
	struct daemon_proc a = {0}, b = {0}, c = {0};
	CU_ASSERT_FATAL(mesh_node(&a, "ka", 0, cookie, NULL, 0, NULL) == 0);
	const struct daemon_proc *pa[] = {&a};
	CU_ASSERT_FATAL(mesh_node(&b, "kb", 0, cookie, pa, 1, NULL) == 0);
	CU_ASSERT_FATAL(mesh_node(&c, "kc", 0, cookie, pa, 1, NULL) == 0);
	CU_ASSERT(mesh_wait(&a, "kb", CTL_NODE_UP, 10000) >= 0);
	CU_ASSERT(mesh_wait(&c, "kb", CTL_NODE_UP, 10000) >= 0);
	unsigned port;
	char addr[64];
	CU_ASSERT_FATAL(mesh_addr(&b, addr, sizeof(addr), &port) == 0);
	kill9(&b);
	int ms = mesh_wait(&a, "kb", CTL_NODE_DOWN, 5000);
	CU_ASSERT(ms >= 0);
	CU_ASSERT(mesh_wait(&c, "kb", CTL_NODE_DOWN, 5000) >= 0);
	printf("[crash seen after %d ms] ", ms);
	/* Restarted with no --peer at all: a and c dial it. */
	CU_ASSERT_FATAL(mesh_node(&b, "kb", port, cookie, NULL, 0, NULL) == 0);
	CU_ASSERT(mesh_wait(&a, "kb", CTL_NODE_UP, 15000) >= 0);
	CU_ASSERT(mesh_wait(&c, "kb", CTL_NODE_UP, 15000) >= 0);
	CU_ASSERT(mesh_wait(&b, "ka", CTL_NODE_UP, 15000) >= 0);
	CU_ASSERT(mesh_wait(&b, "kc", CTL_NODE_UP, 15000) >= 0);
	stop(&c);
	stop(&b);
	stop(&a);
}

/* SIGSTOP: the connection stays open, but heartbeats go unanswered; after
 * the link timeout it is lost. SIGCONT: it comes back. */
static void test_stopped_node(void)
{
	struct daemon_proc a = {0}, b = {0};
	CU_ASSERT_FATAL(mesh_node(&a, "sa", 0, cookie, NULL, 0, NULL) == 0);
	const struct daemon_proc *pa[] = {&a};
	CU_ASSERT_FATAL(mesh_node(&b, "sb", 0, cookie, pa, 1, NULL) == 0);
	CU_ASSERT(mesh_wait(&a, "sb", CTL_NODE_UP, 10000) >= 0);
	kill(b.pid, SIGSTOP);
	int ms = mesh_wait(&a, "sb", CTL_NODE_DOWN, 5000);
	CU_ASSERT(ms >= 0);
	printf("[silence seen after %d ms] ", ms);
	CU_ASSERT(mesh_logged(&a, "silent"));
	kill(b.pid, SIGCONT);
	CU_ASSERT(mesh_wait(&a, "sb", CTL_NODE_UP, 15000) >= 0);
	CU_ASSERT(mesh_wait(&b, "sa", CTL_NODE_UP, 15000) >= 0);
	stop(&b);
	stop(&a);
}

static int dial(unsigned port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Whether the daemon closed fd within timeout_ms (reading what it sends). */
static bool closed_by_peer(int fd, int timeout_ms)
{
	int64_t end = mesh_ms() + timeout_ms;
	char buf[4096];
	while (mesh_ms() < end) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 50) == 1) {
			ssize_t n = read(fd, buf, sizeof(buf));
			if (n <= 0)
				return true;
		}
	}
	return false;
}

static void put_record(int fd, const void *frames, size_t n)
{
	struct seal_hdr h = {.len = (uint32_t)n, .epoch = 0};
	CU_ASSERT(write(fd, &h, sizeof(h)) == sizeof(h));
	if (n)
		CU_ASSERT(write(fd, frames, n) == (ssize_t)n);
}

/* Strangers on the link port: garbage, a huge record, frames out of turn,
 * a forged proof, silence. Each connection is closed; the node goes on
 * serving its clients and its real peer. */
static void test_garbage(void)
{
	struct daemon_proc a = {0}, b = {0};
	CU_ASSERT_FATAL(mesh_node(&a, "ga", 0, cookie, NULL, 0, NULL) == 0);
	const struct daemon_proc *pa[] = {&a};
	CU_ASSERT_FATAL(mesh_node(&b, "gb", 0, cookie, pa, 1, NULL) == 0);
	CU_ASSERT(mesh_wait(&a, "gb", CTL_NODE_UP, 10000) >= 0);
	unsigned port;
	char addr[64];
	CU_ASSERT_FATAL(mesh_addr(&a, addr, sizeof(addr), &port) == 0);

	/* Random bytes. */
	int fd = dial(port);
	CU_ASSERT_FATAL(fd >= 0);
	uint8_t junk[65536];
	srand(7);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)rand();
	ssize_t w = write(fd, junk, sizeof(junk));
	(void)w;
	CU_ASSERT(closed_by_peer(fd, 3000));
	close(fd);

	/* A record header announcing 4 GiB. */
	fd = dial(port);
	struct seal_hdr huge = {.len = 0xfffffff0u, .epoch = 0};
	CU_ASSERT(write(fd, &huge, sizeof(huge)) == sizeof(huge));
	CU_ASSERT(closed_by_peer(fd, 3000));
	close(fd);

	/* A PING before any handshake. */
	fd = dial(port);
	uint8_t frames[512];
	size_t n = 0;
	struct wire_ping ping = {1, 1};
	wire_put(frames, sizeof(frames), &n, WIRE_PING, &ping, sizeof(ping));
	put_record(fd, frames, n);
	CU_ASSERT(closed_by_peer(fd, 3000));
	close(fd);

	/* A well-formed hello, then a proof made up without the cookie. */
	fd = dial(port);
	struct wire_hello h = {.magic = WIRE_MAGIC, .version = WIRE_VERSION,
			       .flags = WIRE_HELLO_ENCRYPT};
	for (size_t i = 0; i < sizeof(h.nonce); i++)
		h.nonce[i] = (uint8_t)rand(), h.kx_pk[i] = (uint8_t)rand();
	snprintf(h.node, sizeof(h.node), "gb"); /* and pretending to be b */
	n = 0;
	wire_put(frames, sizeof(frames), &n, WIRE_HELLO, &h, sizeof(h));
	put_record(fd, frames, n);
	struct wire_proof proof;
	memset(&proof, 0x5a, sizeof(proof));
	n = 0;
	wire_put(frames, sizeof(frames), &n, WIRE_PROOF, &proof, sizeof(proof));
	put_record(fd, frames, n);
	CU_ASSERT(closed_by_peer(fd, 3000));
	close(fd);
	CU_ASSERT(mesh_logged(&a, "wrong cookie"));

	/* Silent strangers are dropped after the handshake time. */
	int quiet[8];
	for (int i = 0; i < 8; i++)
		quiet[i] = dial(port);
	for (int i = 0; i < 8; i++) {
		CU_ASSERT(closed_by_peer(quiet[i], 6000));
		close(quiet[i]);
	}

	/* The real link never went down, and clients are served. */
	CU_ASSERT_EQUAL(mesh_state(&a, "gb"), CTL_NODE_UP);
	pg_ctx *ctx;
	CU_ASSERT_FATAL(pg_open(&ctx, a.socket) == 0);
	CU_ASSERT_EQUAL(pg_create(ctx, "garbage-survivor"), 0);
	pg_close(ctx);
	stop(&b);
	stop(&a);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	cookie = mesh_cookie("nodes");
	if (!cookie)
		return 1;
	CU_pSuite s = CU_add_suite("nodes", NULL, NULL);
	CU_add_test(s, "a full mesh through one peer each", test_mesh_through_one_peer);
	CU_add_test(s, "wrong cookie and plaintext refused", test_refused);
	CU_add_test(s, "--no-encrypt on both sides links", test_no_encrypt);
	CU_add_test(s, "kill -9 seen, restart relinked", test_crash_and_restart);
	CU_add_test(s, "a stopped node is lost, and back", test_stopped_node);
	CU_add_test(s, "garbage on the link port", test_garbage);
	int rc = run_cunit();
	unlink(cookie);
	return rc;
}

// SPDX-License-Identifier: MIT
/*
 * iceoryx 2 through its C binding: a publisher loans a chunk in shared
 * memory, fills it and publishes; each subscriber takes it from its queue.
 * Publisher WAIT_FOR_CONSUMER + subscriber BLOCK_PRODUCER make a full queue
 * stop the sender instead of losing data. Needs the RouDi daemon, which we
 * start and stop unless one is already running.
 */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iceoryx_binding_c/log.h>
#include <iceoryx_binding_c/publisher.h>
#include <iceoryx_binding_c/runtime.h>
#include <iceoryx_binding_c/subscriber.h>
#include <iceoryx_binding_c/wait_set.h>

#include "bench.h"
#include "compare.h"

#define SERVICE "pgcompare"
/* The largest queue RouDi's built-in configuration allows. */
#define QUEUE_CAPACITY 256
#define ROUDI_UP_MS 10000
#define SUBSCRIBE_MS 10000

static struct {
	pid_t roudi; /* the one we started, or 0 */
	bool verbose;
	char instance[32];
	char event[32];
} ix;

/* Every process must register with RouDi under a name no other live one has. */
static void runtime_init(void)
{
	char name[64];
	snprintf(name, sizeof(name), "pgcompare-%d", (int)getpid());
	/* Its default level logs every segment it maps, in every process. */
	iox_set_loglevel(ix.verbose ? Iceoryx_LogLevel_Info : Iceoryx_LogLevel_Error);
	iox_runtime_init(name);
}

static int probe_main(void *arg)
{
	runtime_init();
	/* exit, not return: see full_exit. */
	exit(0);
}

/* iox_runtime_init waits for RouDi, so a child that gets through it proves
 * RouDi is up; it would terminate the caller on failure, hence a child. */
static bool roudi_answers(void)
{
	pid_t pid = bench_spawn(probe_main, NULL);
	return pid > 0 && cmp_wait_child(pid, ROUDI_UP_MS) == 0;
}

static bool find_roudi(char *out, size_t cap)
{
	const char *path = getenv("PATH");
	char dirs[PATH_MAX];
	snprintf(dirs, sizeof(dirs), "%s:/usr/bin", path ? path : "");
	for (char *save, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		if ((size_t)snprintf(out, cap, "%s/iox-roudi", d) < cap && access(out, X_OK) == 0)
			return true;
	}
	return false;
}

static int ix_start(const struct cmp_opts *o)
{
	char bin[PATH_MAX];
	ix.verbose = o->verbose;
	if (!find_roudi(bin, sizeof(bin))) {
		fprintf(stderr, "pgcompare: iceoryx: skipped: no iox-roudi on PATH or in /usr/bin "
				"(Debian package iceoryx)\n");
		return 1;
	}
	char *argv[] = {bin, NULL};
	int pid = cmp_spawn_daemon(argv, o->verbose);
	if (pid < 0) {
		fprintf(stderr, "pgcompare: iceoryx: cannot start %s: %s\n", bin, strerror(-pid));
		return 1;
	}
	ix.roudi = pid;
	bool up = roudi_answers();
	/* Exited at once: RouDi is a singleton, so most likely another one
	 * runs; if it answers, use it and leave it running. */
	if (waitpid(ix.roudi, NULL, WNOHANG) == ix.roudi) {
		ix.roudi = 0;
		if (up)
			fprintf(stderr, "pgcompare: iceoryx: using the RouDi already running\n");
	}
	if (!up) {
		fprintf(stderr, "pgcompare: iceoryx: skipped: RouDi did not come up\n");
		cmp_stop_daemon(ix.roudi, 5000);
		ix.roudi = 0;
		return 1;
	}
	return 0;
}

/* A client that died without deregistering leaves its socket and lock in
 * /tmp (ours are named "pgcompare-<pid>"); RouDi does not remove them. */
static void remove_dead_clients(void)
{
	char name[300];
	DIR *d = opendir("/tmp");
	for (struct dirent *e; d && (e = readdir(d));) {
		int pid, end = 0;
		if (sscanf(e->d_name, "pgcompare-%d%n", &pid, &end) != 1 ||
		    (e->d_name[end] && strcmp(e->d_name + end, ".lock")))
			continue;
		/* Only a dead client's: a live one may belong to another run. */
		if (kill(pid, 0) < 0 && errno == ESRCH &&
		    (size_t)snprintf(name, sizeof(name), "/tmp/%s", e->d_name) < sizeof(name))
			unlink(name);
	}
	if (d)
		closedir(d);
}

/* What a RouDi (2.0) that died leaves: its management segment, a data
 * segment named after its group, its socket and locks. */
static void remove_roudi_files(void)
{
	char name[300];
	struct group *g = getgrgid(getegid());
	shm_unlink("/iceoryx_mgmt");
	if (g && (size_t)snprintf(name, sizeof(name), "/%s", g->gr_name) < sizeof(name))
		shm_unlink(name);
	unlink("/tmp/roudi");
	unlink("/tmp/roudi.lock");
	unlink("/tmp/iox-unique-roudi.lock");
}

static void ix_stop(void)
{
	/* SIGTERM: RouDi removes its shared memory and files... */
	int rc = cmp_stop_daemon(ix.roudi, 10000);
	/* ...unless it fails on the way out, as it does after a client was
	 * killed in the middle of a publish. */
	if (ix.roudi && rc) {
		remove_roudi_files();
		fprintf(stderr, "pgcompare: iceoryx: iox-roudi exited with status %d; removed "
				"what it left in /dev/shm and /tmp\n", rc);
	}
	remove_dead_clients();
	ix.roudi = 0;
}

/* RouDi drops a process it has not heard from for about 1.5 s. One it
 * still lists when it stops, but cannot signal, makes it abort and leave
 * its shared memory behind: let it notice the ones we killed first. */
static void ix_cleanup(struct cmp_run *r)
{
	if (r->killed)
		cmp_sleep_ms(2500);
}

static int ix_prepare(struct cmp_run *r)
{
	/* A fresh event per run: ports of the last run may still be winding down. */
	snprintf(ix.instance, sizeof(ix.instance), "%d", (int)getpid());
	snprintf(ix.event, sizeof(ix.event), "run%u", r->id);
	return 0;
}

struct tx {
	iox_pub_storage_t storage;
	iox_pub_t pub;
};

static int ix_tx_open(struct cmp_run *r, void **tx)
{
	struct tx *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	runtime_init();
	iox_pub_options_t o;
	iox_pub_options_init(&o);
	o.historyCapacity = 0;
	o.subscriberTooSlowPolicy = ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
	t->pub = iox_pub_init(&t->storage, SERVICE, ix.instance, ix.event, &o);
	*tx = t;
	return 0;
}

static int ix_tx_send(void *tx, const void *buf, size_t len)
{
	struct tx *t = tx;
	void *chunk;
	if (iox_pub_loan_chunk(t->pub, &chunk, (uint32_t)len) != AllocationResult_SUCCESS)
		return -ENOBUFS;
	memcpy(chunk, buf, len);
	/* Blocks while a subscriber's queue is full (WAIT_FOR_CONSUMER). */
	iox_pub_publish_chunk(t->pub, chunk);
	return 0;
}

static void ix_tx_close(void *tx)
{
	struct tx *t = tx;
	iox_pub_deinit(t->pub);
	free(t);
}

struct rx {
	iox_sub_storage_t sub_storage;
	iox_ws_storage_t ws_storage;
	iox_sub_t sub;
	iox_ws_t ws;
	size_t size;
};

static void rx_free(struct rx *x)
{
	if (x->ws)
		iox_ws_deinit(x->ws);
	iox_sub_deinit(x->sub);
	free(x);
}

/* Subscribed means RouDi has put our queue into the publisher's list. */
static int ix_rx_open(struct cmp_run *r, unsigned j, void **rx)
{
	struct rx *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->size = r->size;
	runtime_init();
	iox_sub_options_t o;
	iox_sub_options_init(&o);
	o.queueCapacity = QUEUE_CAPACITY;
	o.historyRequest = 0;
	o.queueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;
	x->sub = iox_sub_init(&x->sub_storage, SERVICE, ix.instance, ix.event, &o);
	int err = -ETIMEDOUT;
	for (unsigned ms = 0; ms < SUBSCRIBE_MS; ms++) {
		if (iox_sub_get_subscription_state(x->sub) == SubscribeState_SUBSCRIBED) {
			err = 0;
			break;
		}
		cmp_sleep_ms(1);
	}
	x->ws = err ? NULL : iox_ws_init(&x->ws_storage);
	if (!err && iox_ws_attach_subscriber_state(x->ws, x->sub, SubscriberState_HAS_DATA, 0,
						   NULL) != WaitSetResult_SUCCESS)
		err = -EIO;
	if (err) {
		rx_free(x);
		return err;
	}
	*rx = x;
	return 0;
}

static int ix_rx_recv(void *rx, struct cmp_hdr *h, size_t *len, uint64_t *gseq)
{
	struct rx *x = rx;
	uint64_t deadline = 0;
	for (;;) {
		const void *chunk;
		enum iox_ChunkReceiveResult rc = iox_sub_take_chunk(x->sub, &chunk);
		if (rc == ChunkReceiveResult_SUCCESS) {
			memcpy(h, chunk, sizeof(*h));
			iox_sub_release_chunk(x->sub, chunk);
			/* The C binding does not give the payload size; chunks are
			 * only ever loaned at --size. */
			*len = x->size;
			*gseq = 0;
			return 0;
		}
		if (rc != ChunkReceiveResult_NO_CHUNK_AVAILABLE)
			return -EIO;
		/* An empty return is not a timeout: a wake-up for a chunk we
		 * took in the meantime also returns with no notification. */
		uint64_t now = bench_now_ns();
		if (!deadline)
			deadline = now + (uint64_t)CMP_IDLE_MS * 1000000u;
		else if (now >= deadline)
			return -ETIMEDOUT;
		iox_notification_info_t info;
		uint64_t missed;
		struct timespec left = {.tv_sec = (time_t)((deadline - now) / 1000000000u),
					.tv_nsec = (long)((deadline - now) % 1000000000u)};
		iox_ws_timed_wait(x->ws, left, &info, 1, &missed);
	}
}

static void ix_rx_close(void *rx)
{
	rx_free(rx);
}

const struct xport xport_iceoryx = {
	.name = "iceoryx",
	/* The runtime deregisters from RouDi only in its destructor; a process
	 * that skips it stays registered, and RouDi aborts at its own shutdown
	 * when it fails to signal it, leaving its shared memory behind. */
	.full_exit = true,
	.start = ix_start,
	.stop = ix_stop,
	.prepare = ix_prepare,
	.cleanup = ix_cleanup,
	.tx_open = ix_tx_open,
	.tx_send = ix_tx_send,
	.tx_close = ix_tx_close,
	.rx_open = ix_rx_open,
	.rx_recv = ix_rx_recv,
	.rx_close = ix_rx_close,
};

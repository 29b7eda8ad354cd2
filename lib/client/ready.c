// SPDX-License-Identifier: MIT
/*
 * Which groups a receiver looks at, for a ctx in many groups (or with
 * pg_fd): an ACTIVE list of the groups that may have records, and for every
 * other group a futex wait on its wake word, armed in the ctx's io_uring,
 * with our sleep announced on the group's member page. A commit to such a
 * group completes its wait; the completion puts the group back on the
 * active list. So pg_recv looks at the groups that moved, never at every
 * group it joined, and one wait in the kernel covers them all: the
 * latency of a message does not depend on how many groups the ctx joined.
 *
 * A ctx in at most RING_WAIT_MAX groups and without pg_fd does without:
 * it polls its groups and parks on futex_waitv (recv.c).
 */
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

/* Completion tokens that are not a membership. */
#define TOKEN_NONE 0
#define TOKEN_SOCKET 1

/* Completion queue entries per submission entry: room for that many
 * groups' wakes to come in before we reap. */
#define READY_SQ_ENTRIES 256
#define READY_CQ_ENTRIES 8192

int ready_start(pg_ctx *ctx)
{
	if (ctx->have_uring)
		return 0;
	struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE, .cq_entries = READY_CQ_ENTRIES};
	int err = io_uring_queue_init_params(READY_SQ_ENTRIES, &ctx->uring, &p);
	if (err)
		return err;
	struct io_uring_probe *probe = io_uring_get_probe_ring(&ctx->uring);
	bool ok = probe && io_uring_opcode_supported(probe, IORING_OP_FUTEX_WAIT);
	if (probe)
		io_uring_free_probe(probe);
	if (!ok) {
		io_uring_queue_exit(&ctx->uring);
		return -EOPNOTSUPP;
	}
	ctx->have_uring = true;
	ready_push_all(ctx);
	return 0;
}

void ready_push_all(pg_ctx *ctx)
{
	/* Every group may have records now: look at each once. */
	for (struct group_ref *g = ctx->groups; g; g = g->next)
		if (g->mem)
			ready_push(ctx, g);
}

void ready_push(pg_ctx *ctx, struct group_ref *g)
{
	if ((!ctx->have_uring && !ctx->on_bells) || g->active)
		return;
	g->active = true;
	g->act_prev = NULL;
	g->act_next = ctx->active;
	if (ctx->active)
		ctx->active->act_prev = g;
	ctx->active = g;
}

void ready_remove(pg_ctx *ctx, struct group_ref *g)
{
	if (!g->active)
		return;
	if (ctx->act_rr == g)
		ctx->act_rr = g->act_next;
	if (g->act_prev)
		g->act_prev->act_next = g->act_next;
	else
		ctx->active = g->act_next;
	if (g->act_next)
		g->act_next->act_prev = g->act_prev;
	g->active = false;
	g->act_next = g->act_prev = NULL;
}

/* A submission entry, submitting what is queued when the queue is full. */
static struct io_uring_sqe *sqe_get(pg_ctx *ctx)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ctx->uring);
	if (!sqe && io_uring_submit(&ctx->uring) >= 0)
		sqe = io_uring_get_sqe(&ctx->uring);
	return sqe;
}

void ready_disarm(struct membership *m)
{
	if (!m->armed)
		return;
	/* Pairs with the increment in arm(): producers stop waking us. */
	atomic_fetch_sub(&m->reader.page->sleeping, 1);
	m->armed = false;
}

bool ready_forget(struct membership *m)
{
	pg_ctx *ctx = m->ctx;
	/* In a forked child the pages and the sleeps are the parent's: a
	 * decrement here would make its producers skip the wake it waits for. */
	if (ctx->closing_forked)
		return false;
	ready_disarm(m);
	if (!m->waiting || !ctx->have_uring)
		return false;
	/* Its futex wait is still in the kernel, naming m: m lives on until
	 * that completion comes (cancelled now, or woken first). */
	struct io_uring_sqe *sqe = sqe_get(ctx);
	if (sqe) {
		io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)m, 0);
		io_uring_sqe_set_data64(sqe, TOKEN_NONE);
		io_uring_submit(&ctx->uring);
	}
	m->next = ctx->zombies;
	ctx->zombies = m;
	return true;
}

/* A completion for m: its wait is over; free it if it had ended. */
static void wait_done(pg_ctx *ctx, struct membership *m)
{
	m->waiting = false;
	for (struct membership **p = &ctx->zombies; *p; p = &(*p)->next)
		if (*p == m) {
			*p = m->next;
			free(m); /* its mappings went when it ended */
			return;
		}
	ready_disarm(m);
	if (m->ref && m->ref->mem == m)
		ready_push(ctx, m->ref);
}

bool ready_reap(pg_ctx *ctx)
{
	if (!ctx->have_uring)
		return false;
	/* Completions are taken but stay in the queue until ready_release:
	 * pg_fd reads as readable while something taken may be unread. Only
	 * those past what was taken are looked at: the queue's head stays. */
	struct io_uring_cq *cq = &ctx->uring.cq;
	unsigned head = *cq->khead;
	/* Acquire: pairs with the kernel's release of the tail after it
	 * wrote the entries. */
	unsigned tail = __atomic_load_n(cq->ktail, __ATOMIC_ACQUIRE);
	bool any = false;
	for (unsigned i = head + ctx->cq_taken; i != tail; i++) {
		const struct io_uring_cqe *cqe = &cq->cqes[i & cq->ring_mask];
		uint64_t token = io_uring_cqe_get_data64(cqe);
		if (token == TOKEN_SOCKET) {
			ctx->sock_armed = false;
			ctx->sock_news = true;
		} else if (token != TOKEN_NONE) {
			wait_done(ctx, (struct membership *)(uintptr_t)token);
		}
		ctx->cq_taken++;
		any = true;
	}
	if (ctx->cq_taken >= READY_CQ_ENTRIES / 2)
		ready_release(ctx); /* a busy ctx that never drains: make room */
	return any;
}

void ready_release(pg_ctx *ctx)
{
	if (!ctx->have_uring || !ctx->cq_taken)
		return;
	io_uring_cq_advance(&ctx->uring, ctx->cq_taken);
	ctx->cq_taken = 0;
}

/* Announce our sleep on g's current membership and arm a wait on its wake
 * word; then look once more. True when it has a record after all. */
static bool arm(pg_ctx *ctx, struct group_ref *g)
{
	struct membership *m = g->mem;
	if (ctx->on_bells) {
		/* Our token and key before the sleep: a producer that sees the
		 * sleep reads them after it. */
		uint32_t token = bells_token(ctx, g);
		if (!token) {
			/* Cannot name it (no memory): the io_uring at the
			 * next park, looking at it till then. */
			ctx->bells_full = true;
			return true;
		}
		if (!m->armed) {
			atomic_store(&m->reader.page->bell_key, ctx->bell_key);
			atomic_store(&m->reader.page->bell_token, token);
			/* Announce, then look: the fence pairs with the seq_cst
			 * commit and loads in ring_wake. */
			atomic_fetch_add(&m->reader.page->sleeping, 1);
			atomic_thread_fence(memory_order_seq_cst);
			m->armed = true;
		}
		return recv_has_record(ctx, g);
	}
	if (!m->waiting) {
		struct io_uring_sqe *sqe = sqe_get(ctx);
		if (!sqe)
			return true; /* cannot wait on it: keep looking at it */
		_Atomic uint32_t *word = &m->ring.hdr->wake_seq;
		uint32_t seen = atomic_load(word);
		/* Announce, then look: the fence pairs with the seq_cst commit
		 * and loads in ring_wake, as in ring_sleep_begin. */
		atomic_fetch_add(&m->reader.page->sleeping, 1);
		atomic_thread_fence(memory_order_seq_cst);
		m->armed = m->waiting = true;
		io_uring_prep_rw(IORING_OP_FUTEX_WAIT, sqe, FUTEX2_SIZE_U32, word, 0, seen);
		sqe->addr3 = UINT32_MAX; /* any waker */
		io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)m);
	}
	return recv_has_record(ctx, g);
}

bool ready_arm_all(pg_ctx *ctx)
{
	bool ready = false;
	for (struct group_ref *g = ctx->active, *next; g; g = next) {
		next = g->act_next;
		if (!g->mem)
			ready_remove(ctx, g);
		else if (arm(ctx, g))
			ready = true; /* stays active: it has something */
		else
			ready_remove(ctx, g);
	}
	if (ctx->on_bells)
		return ready; /* no io_uring: the daemon rings for its news */
	if (!ctx->sock_armed) {
		struct io_uring_sqe *sqe = sqe_get(ctx);
		if (sqe) {
			io_uring_prep_poll_add(sqe, ctx->sock, POLLIN);
			io_uring_sqe_set_data64(sqe, TOKEN_SOCKET);
			ctx->sock_armed = true;
		}
	}
	if (ready) {
		/* pg_fd stays readable while something is left. */
		struct io_uring_sqe *sqe = sqe_get(ctx);
		if (sqe) {
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data64(sqe, TOKEN_NONE);
		}
	}
#ifdef PG_TEST_HOOKS
	/* Test builds only: widen the gap between our look at the groups
	 * and the waits reaching the kernel, where a wake must not be lost
	 * (each wait's value check catches it). */
	const char *pause = getenv("PGROUP_TEST_ARM_PAUSE_US");
	if (pause)
		usleep((useconds_t)atoi(pause));
#endif
	io_uring_submit(&ctx->uring);
	return ready;
}

int ready_park(pg_ctx *ctx, int64_t timeout_ns)
{
	if (ctx->on_bells)
		return bells_park(ctx, timeout_ns);
	if (ready_arm_all(ctx))
		return 1;
	ready_release(ctx); /* or the wait would end at once on them */
	struct __kernel_timespec ts = {.tv_sec = timeout_ns / 1000000000,
				       .tv_nsec = timeout_ns % 1000000000};
	struct io_uring_cqe *cqe;
	int err = io_uring_wait_cqe_timeout(&ctx->uring, &cqe, &ts);
	ready_reap(ctx);
	if (err == -ETIME) {
		ready_sweep(ctx);
		return 0;
	}
	if (err == -EINTR)
		return -EINTR;
	if (err < 0) {
		/* The wait itself failed: do not spin on it. */
		struct timespec pause = {.tv_nsec = 1000000};
		nanosleep(&pause, NULL);
	}
	return 1;
}

void ready_sweep(pg_ctx *ctx)
{
	/* A record a wait could not see: one committed while our reading of
	 * it failed for a moment (its writer's area not mapped yet), whose
	 * wake came before we armed. Whatever lies between our place and the
	 * tail is looked at again, once a slice. */
	for (struct group_ref *g = ctx->groups; g; g = g->next) {
		struct membership *m = g->mem;
		if (m && !g->active &&
		    atomic_load_explicit(&m->ring.hdr->tail, memory_order_relaxed) > m->reader.pos)
			ready_push(ctx, g);
	}
}

void ready_stop(pg_ctx *ctx)
{
	if (!ctx->have_uring)
		return;
	io_uring_queue_exit(&ctx->uring);
	ctx->have_uring = false;
	/* The kernel dropped every wait with the ring: nothing names them. */
	while (ctx->zombies) {
		struct membership *m = ctx->zombies;
		ctx->zombies = m->next;
		free(m);
	}
}

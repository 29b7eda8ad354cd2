// SPDX-License-Identifier: MIT
/*
 * Bells (ring/layout.h), the producer's side: the bells of each shelf our
 * areas are on, mapped read-write once per shelf (a session has one per
 * class of groups it writes), never once per group: 10,000 groups would
 * be 10,000 mappings more.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "ring/wait.h"

static void bells_close_sources(pg_ctx *ctx);

/* arr (`each`-byte entries, *cap of them, n used) with room for one
 * more: itself, or grown to twice (at first `first`); NULL without memory
 * (arr stays as it was). */
static void *room_for_one(void *arr, unsigned n, unsigned *cap, size_t each, unsigned first)
{
	if (n < *cap)
		return arr;
	unsigned c = *cap ? 2 * *cap : first;
	void *g = realloc(arr, (size_t)c * each);
	if (g)
		*cap = c;
	return g;
}

struct ring_bell *bells_own(pg_ctx *ctx, int fd, uint64_t area_off)
{
	/* A shelf hands out nothing below its bells: an area of a memfd of
	 * its own starts at 0, and has no bells. */
	if (area_off < RING_BELL_BYTES)
		return NULL;
	struct stat st;
	if (fstat(fd, &st))
		return NULL;
	for (unsigned i = 0; i < ctx->n_own_bells; i++)
		if (ctx->own_bells[i].dev == st.st_dev && ctx->own_bells[i].ino == st.st_ino)
			return ctx->own_bells[i].bells;
	struct ctx_bells *own = room_for_one(ctx->own_bells, ctx->n_own_bells,
					     &ctx->cap_own_bells, sizeof(*own), 4);
	if (!own)
		return NULL;
	ctx->own_bells = own;
	void *m = mmap(NULL, RING_BELL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return NULL;
	ctx->own_bells[ctx->n_own_bells++] =
	    (struct ctx_bells){.dev = st.st_dev, .ino = st.st_ino, .bells = m};
	return m;
}

void bells_close(pg_ctx *ctx)
{
	bells_close_sources(ctx);
	for (unsigned i = 0; i < ctx->n_own_bells; i++)
		munmap(ctx->own_bells[i].bells, RING_BELL_BYTES);
	free(ctx->own_bells);
	ctx->own_bells = NULL;
	ctx->n_own_bells = ctx->cap_own_bells = 0;
}

/*
 * The member's side. A ctx in more than READY_MIN_GROUPS groups (without
 * pg_fd) waits on BELLS: its own shelf of pages' daemon bell, and the bell
 * at its key on every shelf of areas it reads, all at once in one
 * futex_waitv, whatever the number of groups. Each quiet group's page says
 * we sleep and names our token for it; a producer that commits there rings
 * its bell with the token, and the tokens (hints) say which groups to look
 * at. Nothing a producer writes is trusted: a token names a group of ours
 * (then it is looked at) or nothing, and when more hints came than a bell
 * keeps, every group is looked at, at most once per BELL_SWEEP_NS.
 */
#define BELL_SWEEP_NS (10 * PG_MS)
#define BELL_POLLS_PER_CLOCK 1024u

/* A shelf whose bell we wait on. */
struct bell_source {
	uint64_t shelf; /* its id; 0: one of our own shelves of pages */
	dev_t dev;
	ino_t ino;
	void *map;      /* its bells */
	const struct ring_bell *bell;
	uint32_t seq, head; /* what we have taken of it */
};

static bool source_known(const pg_ctx *ctx, uint64_t shelf, const struct stat *st)
{
	for (unsigned i = 0; i < ctx->n_sources; i++) {
		const struct bell_source *s = &ctx->sources[i];
		if ((shelf && s->shelf == shelf) ||
		    (st && s->dev == st->st_dev && s->ino == st->st_ino))
			return true;
	}
	return false;
}

/*
 * Our own shelf of pages' bells, read-write: a futex wait on a read-only
 * mapping costs the kernel a failed fast page lookup, then a walk of our
 * mappings (tens of thousands, in 10,000 groups) on every wait. A page of
 * nothing above them keeps the mapping from merging with that of our first
 * member page, which follows them in the file.
 */
static void *map_own_bells(int fd)
{
	uint8_t *at = mmap(NULL, RING_BELL_BYTES + RING_PAGE, PROT_NONE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (at == MAP_FAILED)
		return MAP_FAILED;
	void *m = mmap(at, RING_BELL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	if (m == MAP_FAILED)
		munmap(at, RING_BELL_BYTES + RING_PAGE);
	return m;
}

/* Wait on shelf fd's bell at `slot` from now on (fd is the caller's). */
static void source_add(pg_ctx *ctx, int fd, uint64_t shelf, uint32_t slot)
{
	struct stat st;
	if (fd < 0 || fstat(fd, &st)) {
		ctx->bells_full = true; /* a shelf we could not hear */
		return;
	}
	if (source_known(ctx, shelf, &st))
		return;
	if (ctx->n_sources == RING_WAIT_MAX) {
		ctx->bells_full = true; /* more than one futex_waitv covers */
		return;
	}
	struct bell_source *sources =
	    room_for_one(ctx->sources, ctx->n_sources, &ctx->cap_sources, sizeof(*sources), 8);
	if (!sources) {
		ctx->bells_full = true;
		return;
	}
	ctx->sources = sources;
	/* A writer's: read-only, as our fd of its shelf is. */
	void *m = shelf ? mmap(NULL, RING_BELL_BYTES, PROT_READ, MAP_SHARED, fd, 0)
			: map_own_bells(fd);
	if (m == MAP_FAILED) {
		ctx->bells_full = true;
		return;
	}
	const struct ring_bell *b = (const struct ring_bell *)m + slot;
	/* It may have been rung for us before we heard it (a writer's first
	 * commit can come before we read the daemon's notice of its area):
	 * its next poll takes the hints it holds. */
	uint32_t head = atomic_load_explicit((_Atomic uint32_t *)&b->head, memory_order_acquire);
	ctx->sources[ctx->n_sources++] = (struct bell_source){
	    .shelf = shelf,
	    .dev = st.st_dev,
	    .ino = st.st_ino,
	    .map = m,
	    .bell = b,
	    .seq = atomic_load((_Atomic uint32_t *)&b->seq) - 1,
	    .head = head - (RING_BELL_HINTS - 1),
	};
}

void bells_own_pages(pg_ctx *ctx, int fd, uint64_t page_off)
{
	if (page_off >= RING_BELL_BYTES)
		source_add(ctx, fd, 0, RING_BELL_DAEMON);
}

void bells_areas(pg_ctx *ctx, uint64_t shelf, int fd)
{
	if (!shelf) {
		/* An area on a memfd of its own has no bells: its writer could
		 * not ring ours. */
		ctx->bells_full = true;
		return;
	}
	if (source_known(ctx, shelf, NULL))
		return;
	int dup = fd < 0 ? ctx_shelf_dup(ctx, shelf) : -1;
	source_add(ctx, fd >= 0 ? fd : dup, shelf, ctx->bell_key % RING_BELL_SLOTS);
	if (dup >= 0)
		close(dup);
}

int bells_start(pg_ctx *ctx)
{
	if (ctx->bells_full)
		return -ENOSPC;
	ctx->on_bells = true;
	/* What the daemon sent before we listened rang no bell of ours:
	 * read the socket once before the first park. */
	ctx->sock_news = true;
	ready_push_all(ctx);
	return 0;
}

void bells_leave(pg_ctx *ctx)
{
	if (!ctx->on_bells)
		return;
	/* Producers read the token after the sleep: cleared first, what
	 * they commit from now on bumps the wake word. */
	for (struct group_ref *g = ctx->groups; g; g = g->next)
		for (struct membership *m = g->mem; m; m = m->next) {
			atomic_store(&m->reader.page->bell_token, 0);
			ready_disarm(m);
		}
	ctx->on_bells = false;
}

uint32_t bells_token(pg_ctx *ctx, struct group_ref *g)
{
	if (g->token)
		return g->token;
	struct group_ref **tokens =
	    room_for_one(ctx->tokens, ctx->n_tokens, &ctx->cap_tokens, sizeof(*tokens), 64);
	if (!tokens)
		return 0;
	ctx->tokens = tokens;
	ctx->tokens[ctx->n_tokens++] = g;
	return g->token = ctx->n_tokens; /* never RING_BELL_NEWS: fewer groups */
}

/* A hint: the group it names, if it names one of ours, may have records. */
static void take_hint(pg_ctx *ctx, uint32_t token)
{
	if (token == RING_BELL_NEWS) {
		ctx->sock_news = true;
		return;
	}
	if (token == 0 || token > ctx->n_tokens)
		return;
	struct group_ref *g = ctx->tokens[token - 1];
	if (!g->mem)
		return;
	ready_disarm(g->mem); /* its producers need not ring for it now */
	ready_push(ctx, g);
}

static void sweep(pg_ctx *ctx, int64_t now);

/* Every group with something unread looked at again, busy or not: what
 * no hint named (a ring we could not hear, a writer whose notice did not
 * fit our socket) waits a slice at most when we are idle, and a second at
 * most while other groups keep us awake (10,000 groups: ~1 ms a sweep,
 * which a message that comes meanwhile waits for). */
#define BELL_BUSY_SWEEP_NS (1000 * PG_MS)

static void sweep_if_due(pg_ctx *ctx, int64_t now, bool idle)
{
#ifdef PG_TEST_HOOKS
	/* Test builds may go without, so that a lost ring shows. */
	if (getenv("PGROUP_TEST_NO_SWEEP"))
		return;
#endif
	if (now - ctx->bells_swept >= (idle ? PG_PARK_SLICE_NS : BELL_BUSY_SWEEP_NS))
		sweep(ctx, now);
}

static void sweep(pg_ctx *ctx, int64_t now)
{
	if (now - ctx->bells_swept < BELL_SWEEP_NS) {
		ctx->bells_sweep_due = true;
		return;
	}
	ctx->bells_swept = now;
	ctx->bells_sweep_due = false;
	ready_sweep(ctx);
}

/* What s was rung with since we last took it. Bounded by the table: a head
 * moved by more (scribbled, or rung faster than we read) means a sweep. */
static void take_hints(pg_ctx *ctx, struct bell_source *s)
{
	_Atomic uint32_t *hint = (_Atomic uint32_t *)s->bell->hint;
	/* Acquire: pairs with the ringer's release of head after the hint. */
	uint32_t head = atomic_load_explicit((_Atomic uint32_t *)&s->bell->head, memory_order_acquire);
	uint32_t n = head - s->head;
	if (n < RING_BELL_HINTS) {
		for (uint32_t k = s->head; k != head; k++)
			take_hint(ctx, atomic_load_explicit(&hint[k % RING_BELL_HINTS],
							    memory_order_relaxed));
		/* The newest again: a ring with the newest hint writes none. */
		take_hint(ctx, atomic_load_explicit(&hint[(head - 1) % RING_BELL_HINTS],
						    memory_order_relaxed));
		/* Still within the table after we read (acquire: our loads of
		 * the hints come before): nothing we read was overwritten. */
		atomic_thread_fence(memory_order_acquire);
		uint32_t now = atomic_load_explicit((_Atomic uint32_t *)&s->bell->head,
						    memory_order_relaxed);
		if (now - s->head < RING_BELL_HINTS) {
			s->head = head;
			return;
		}
	}
	s->head = head;
	sweep(ctx, ring_now_ns());
}

bool bells_poll(pg_ctx *ctx)
{
	bool any = false;
	for (unsigned i = 0; i < ctx->n_sources; i++) {
		struct bell_source *s = &ctx->sources[i];
		/* Seq_cst: after our announcements of sleep and our look at the
		 * groups, as the ringer's increment is after its commit. */
		uint32_t seq = atomic_load((_Atomic uint32_t *)&s->bell->seq);
		if (seq == s->seq)
			continue;
		s->seq = seq;
		take_hints(ctx, s);
		any = true;
	}
	if (ctx->bells_sweep_due)
		sweep(ctx, ring_now_ns());
	/* A busy ctx that never parks: now and then. */
	if (++ctx->bells_polls % BELL_POLLS_PER_CLOCK == 0)
		sweep_if_due(ctx, ring_now_ns(), false);
	return any;
}

int bells_park(pg_ctx *ctx, int64_t timeout_ns)
{
	if (ctx->bells_full) {
		/* A producer we cannot hear: back to a wait on every group. */
		bells_leave(ctx);
		if (ready_start(ctx) == 0)
			return ready_park(ctx, timeout_ns);
		return 1; /* pg_recv polls its groups, a slice at a time */
	}
	sweep_if_due(ctx, ring_now_ns(), false);
	if (ready_arm_all(ctx) || bells_poll(ctx) || ctx->sock_news)
		return 1;
	/* A sweep put off (sweep()) ends the wait when it may run; the
	 * slice's sweep is due by the slice anyway. */
	if (ctx->bells_sweep_due) {
		int64_t left = ctx->bells_swept + BELL_SWEEP_NS - ring_now_ns();
		if (left < timeout_ns)
			timeout_ns = left > 0 ? left : 0;
	}
#ifdef PG_TEST_HOOKS
	/* Test builds only: widen the gap between our look at the groups and
	 * the bells and our wait reaching the kernel, where a ring must not be
	 * lost (the wait's value check catches it). */
	const char *pause = getenv("PGROUP_TEST_ARM_PAUSE_US");
	if (pause)
		usleep((useconds_t)atoi(pause));
#endif
	_Atomic uint32_t *words[RING_WAIT_MAX];
	uint32_t vals[RING_WAIT_MAX];
	unsigned n = ctx->n_sources;
	for (unsigned i = 0; i < n; i++) {
		words[i] = (_Atomic uint32_t *)&ctx->sources[i].bell->seq;
		vals[i] = ctx->sources[i].seq;
	}
	int err = n ? ring_futex_waitv(words, vals, n, timeout_ns) : 0;
	if (!n) {
		struct timespec ts = {.tv_sec = timeout_ns / 1000000000,
				      .tv_nsec = timeout_ns % 1000000000};
		nanosleep(&ts, NULL);
		err = -ETIMEDOUT;
	}
	if (err == -EINTR)
		return -EINTR;
	/* Runs a sweep put off, if it may now; the slice's, if due. (Only
	 * ever asked for by lost hints: a timeout asks for none, or a wait
	 * cut short for a sweep would put off the next one for ever.) */
	if (bells_poll(ctx))
		return 1;
	sweep_if_due(ctx, ring_now_ns(), err == -ETIMEDOUT);
	return err == -ETIMEDOUT ? 0 : 1;
}

static void bells_close_sources(pg_ctx *ctx)
{
	for (unsigned i = 0; i < ctx->n_sources; i++)
		munmap(ctx->sources[i].map, RING_BELL_BYTES + (ctx->sources[i].shelf ? 0 : RING_PAGE));
	free(ctx->sources);
	free(ctx->tokens);
	ctx->sources = NULL;
	ctx->tokens = NULL;
	ctx->n_sources = ctx->cap_sources = ctx->n_tokens = ctx->cap_tokens = 0;
}

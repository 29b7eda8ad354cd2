/* SPDX-License-Identifier: MIT */
/*
 * Node links: TCP between daemons, every byte through one io_uring.
 *
 *  - accept: one multishot accept on the listening socket;
 *  - receive: one multishot recv per link into buffers the ring provides
 *    (a shared buffer ring); bytes are gathered until a record is whole,
 *    opened (seal.h) in place and handed up; -ENOBUFS (the ring ran out of
 *    buffers) re-arms once buffers are back;
 *  - send: frames are queued in plaintext; one writer per link seals all
 *    that are queued into as few records as fit and sends them in one
 *    send, so a burst of small frames costs one syscall and one AEAD pass;
 *    short sends are resumed; while a send is in flight, frames gather for
 *    the next one.
 *
 * The daemon's event loop watches node_io_fd(); it calls node_io_complete()
 * when that is readable and node_io_flush() before it waits.
 */
#ifndef PG_NODE_LINK_H
#define PG_NODE_LINK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "seal.h"

struct node_io;
struct link;

struct link_ops {
	/* A connect finished: 0, or -errno (the link is closing). */
	void (*connected)(struct link *l, int err);
	/* One record's plaintext: frames. Nonzero (-errno) closes the link. */
	int (*record)(struct link *l, uint8_t *plain, size_t n);
	/* The link is gone (peer closed, error, link_close): last call. */
	void (*closed)(struct link *l, int err);
};

struct link_stats {
	uint64_t tx_bytes, rx_bytes;     /* on the wire */
	uint64_t tx_records, rx_records;
	uint64_t tx_sends;               /* send syscalls (completions) */
	size_t queued;                   /* plaintext bytes waiting to be sealed */
	size_t in_flight;                /* sealed bytes not yet sent */
	int64_t queued_since;            /* ns: oldest frame waiting; 0 if none */
};

/* One io_uring for all links: 0 or -errno (-ENOSYS: no io_uring). */
int node_io_new(struct node_io **out);
void node_io_destroy(struct node_io *io);
int node_io_fd(const struct node_io *io);
/* Handle every completion ready now. */
void node_io_complete(struct node_io *io);
/* Seal and send what links queued; submit. */
void node_io_flush(struct node_io *io);

/*
 * Wait (in the io_uring, never blocking the loop) until the futex word
 * `word` (shared memory) is woken or no longer `val`: then fn(arg, res)
 * runs from node_io_complete, once. -ENOMEM, or -EOPNOTSUPP when this
 * kernel's io_uring cannot wait on futexes (before 6.7).
 */
int node_io_futex_wait(struct node_io *io, _Atomic uint32_t *word, uint32_t val,
		       void (*fn)(void *arg, int res), void *arg);

/* Listen on a bound, listening socket; each accepted connection is
 * handed to accept(arg, fd, peer address): it takes the fd (link_new) or
 * closes it. */
int node_io_listen(struct node_io *io, int fd,
		   void (*accept)(void *arg, int fd, const struct sockaddr *sa, socklen_t len),
		   void *arg);

/* A link over an accepted socket (owns fd), or one that connects to sa
 * within timeout_ms; NULL when out of memory (fd closed). */
struct link *link_accepted(struct node_io *io, int fd, const struct link_ops *ops, void *arg);
struct link *link_connect(struct node_io *io, const struct sockaddr *sa, socklen_t len,
			  unsigned timeout_ms, const struct link_ops *ops, void *arg);
void *link_arg(const struct link *l);
void link_set_arg(struct link *l, void *arg);
/*
 * Queue one frame: 0, or -ENOBUFS when the link already holds `cap`
 * bytes unsent (link_set_cap; the caller decides what a full link means),
 * -EPIPE when it is closing.
 */
int link_send(struct link *l, uint16_t type, const void *payload, uint32_t len);
/* The same with the payload in two parts (a header and its data), copied
 * once, into the queue. */
int link_send2(struct link *l, uint16_t type, const void *a, uint32_t alen, const void *b,
	       uint32_t blen);
void link_set_cap(struct link *l, size_t cap);
/* The link's sealers: keyed by the handshake's owner. */
struct seal *link_tx(struct link *l);
struct seal *link_rx(struct link *l);
/* Key the sending side once the frames queued now have gone out as they
 * are: the handshake's last plaintext frame precedes the first keyed one
 * even when both are still queued. */
void link_key_tx(struct link *l, const uint8_t key[HS_KEY_BYTES], bool encrypt, bool aes);
/* Close once what is queued is sent (a handshake's own proof, so the
 * other side learns why too); nothing more is received or queued. */
void link_close_after_send(struct link *l, int err);
/* Close (idempotent): queued frames are dropped; ops->closed follows from
 * node_io_complete or node_io_flush, never from inside this call. */
void link_close(struct link *l, int err);
void link_stats(const struct link *l, struct link_stats *st);
/* The peer's address as the socket sees it: 0 or -errno. */
int link_peer_addr(const struct link *l, struct sockaddr_storage *sa, socklen_t *len);

#endif /* PG_NODE_LINK_H */

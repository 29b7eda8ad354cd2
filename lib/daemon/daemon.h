/* SPDX-License-Identifier: MIT */
/*
 * The node daemon's core: the state every daemon module shares. pgroupd's
 * main() fills a struct pgd_opts and calls pgd_run().
 */
#ifndef PG_DAEMON_H
#define PG_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "liveness.h"
#include "quota.h"
#include "loop.h"
#include "rights.h"
#include "ring/ring.h"
#include "watch.h"

struct pgd_opts {
	const char *node;        /* NULL: the host name */
	const char *socket_path; /* NULL: the contract's default */
	bool no_bpf;
	/* Node links: none of them given = a node of its own. */
	const char *listen;            /* HOST:PORT */
	const char *const *peers;      /* HOST:PORT each */
	unsigned n_peers;
	const char *cookie_file;       /* NULL: hs_cookie_default_path */
	bool no_encrypt;
	unsigned link_timeout_ms;      /* a silent node is lost after this; 0: 1000 */
	struct pgd_limits limits; /* 0 fields: the defaults (quota.h) */
};

/* Run until SIGTERM/SIGINT: 0 on a clean exit, or -errno. */
int pgd_run(const struct pgd_opts *opts);

struct session;
struct group;
struct cluster;
struct names;
struct stream;
struct replica;
struct fwd_in;
struct outbound;
struct repl;
struct mesh;
struct mesh_peer;
struct wire_frame;
struct wire_member;
struct wire_group;
struct ctl_out;
struct ctl_node_lag;

struct grave {
	struct ring_file file;
	uint64_t bytes;
	int64_t until; /* ns */
};

/* The groups that the same users may read (same owner, group and mode
 * bits): their directories share a shelf, as whoever may read one may read
 * every other. */
struct dir_class {
	uid_t uid;
	gid_t gid;
	uint32_t mode;
	unsigned n_groups;
	struct shelf *shelf;
	struct shelf *node_pages; /* the daemon's own member slots' pages (replica.c) */
	struct dir_class *next;
};

/* A member: one session's membership of one group, holding one ring slot. */
struct member {
	struct group *group;
	struct session *session;
	uint32_t slot;
	uint32_t state_word;
	uint64_t start; /* position of its JOINED record: where it reads from */
	/* Its member page, on its session's own shelf: the session gets a
	 * writable fd of the shelf, producers read-only ones. */
	struct ring_file page;
	/* The highest cursor the node has seen it at, and when it first saw
	 * it there: a sender's request to evict it is checked against this. */
	uint64_t seen_cursor;
	int64_t seen_at;
	/* A sender evicted it: no longer a member (PG_LEFT was written), but
	 * its slot stays reserved, so the reader can still learn it was
	 * evicted, until its session leaves or ends. */
	bool evicted;
	struct member *next_in_group;
	struct member *next_in_session;
};

/* A writer slot a session holds in a group's ring. */
struct writer_ref {
	struct group *group;
	uint32_t slot;
	struct writer_ref *next_in_session;
};

/* A process with one or more sessions, watched for its exit. */
struct proc {
	pid_t pid;
	int pidfd;
	unsigned sessions;
	struct proc *next;
};

/* One client connection (a pg_ctx). */
#define SESSION_TOLD 8
struct session {
	struct loop_src src;
	struct daemon *daemon;
	int fd;
	uint64_t serial; /* accept order: "the first handle a process opened" */
	int64_t orphaned_at; /* closed without BYE, exit not yet seen (ns) */
	bool said_bye;       /* pg_close: it will use nothing of ours again */
	bool bye_waits;      /* its pg_close waits for leaves placed by other nodes */
	bool broken;         /* a reply could not be sent: to be dropped */
	pid_t pid;
	struct creds creds; /* uid, gid and supplementary groups */
	struct proc *proc;
	struct member *members;
	struct writer_ref *writers;
	/* Its member pages and writer areas, on memfds per class of groups
	 * (ring/shelf.h): neither costs the daemon an fd. */
	struct own_shelf *own;
	/* Shelves whose fd it was sent with an area (session.c push_area):
	 * it finds their later areas in the directories, untold. */
	uint64_t told[SESSION_TOLD];
	unsigned told_next;
	struct session *next;
};

/* A session's pages or its areas in the groups of one class of readers
 * (struct dir_class's key). Who is handed a read-only fd of an areas
 * shelf may read every group of the class; of a pages shelf, every member
 * page of it: producers get those, and no record is on one (w implies r
 * today, so that is defence in depth: a write-only right would not leak). */
enum own_kind { OWN_PAGES, OWN_AREAS };
struct own_shelf {
	uid_t uid;
	gid_t gid;
	uint32_t mode;
	enum own_kind kind;
	struct shelf *shelf;
	struct own_shelf *next;
};

/* A writer slot whose process ended (or closed its connection) with a
 * claim still open: sealed once the process is surely dead. */
struct dead_writer {
	struct group *group;
	uint32_t slot;
	int pidfd; /* readable once the process has exited */
	bool dead; /* the exit watcher already said so */
	struct dead_writer *next;
};

/* A record the daemon writes into a group's order: a membership event
 * (about a member of `node`, "" = this one), or in a replica any record
 * of the master's, numbered by it. Queued while there is no room. */
struct pending_event {
	uint16_t kind;
	uint16_t flags;
	int32_t pid;
	uint64_t seq;     /* 0: the position's own number (a master's ring) */
	char node[64];
	uint32_t len;     /* a replicated or forwarded message's payload */
	uint8_t *data;
	uint32_t from_node; /* the ring's index of the sender's node (0: master) */
	/* A forwarded message: which forward, and its place there (acked
	 * once it is in the order). */
	uint32_t fwd;
	uint64_t origin;
	struct pending_event *next;
};

/* A member of a group this node masters, on another node. */
struct rmember {
	char node[64];
	int32_t pid;
	struct rmember *next;
};

/* Something the daemon waits on in a group, timed like a sender times the
 * member it waits for: a clock that restarts whenever the thing moves. */
struct stall_clock {
	uint64_t what;  /* the position (or member slot) waited on */
	uint64_t at;    /* and its cursor then */
	int64_t since;  /* ns; 0 = not waiting */
};

struct tick_entry {
	struct group *g;
	const _Atomic uint64_t *tail;
	/* Idle at its last look: looked at once in `stride` passes only. */
	bool idle;
	uint8_t stride;
};

struct group {
	struct group *hnext; /* its chain in d->gtab */
	/* What every tick of it reads first, in one line (registry_tick
	 * fetches it ahead). */
	bool bad; /* its shared memory was found corrupt */
	unsigned areas_to_reclaim; /* charged slots freed since the last reclaim */
	uint64_t tick_tail; /* the tail at its last tick */
	/* The highest tail the node has read or made: an honest tail only
	 * grows, so one below it was written back by a sender. */
	uint64_t tail_seen;
	int64_t join_blocked_at;       /* a JOINED found no room (ns): time its blocker */
	struct pending_event *pending; /* events waiting for room, in order */
	unsigned tick_index;           /* its entry in d->ticks */
	char name[256];
	uint64_t serial; /* creation order: listings page by it */
	int64_t created_ns; /* CLOCK_REALTIME: of two groups one name, the older stays */
	struct ring ring;
	struct ring_area events; /* the daemon's own writer area */
	/* For pgroup top: records its members here have read (summed from
	 * their cursors' moves, each tick), members evicted, positions the
	 * node cancelled (stuck or dead writers). */
	uint64_t delivered;
	uint32_t evictions, cancels;
	/* Events held back by a member that does not read: evicted after
	 * the stall limit, as a sender would. */
	struct stall_clock event_wait;
	/* Events held back because the tail kept moving under the daemon's
	 * claim (someone writes it): the group is bad after the limit. */
	int64_t busy_since;
	/* Members waiting at a position nobody decides: cancelled after the
	 * stall limit, so the group moves on. */
	struct stall_clock stuck;
	int data_fd;    /* read-write: the daemon's, and senders' */
	/* Its directory: read-write for the daemon alone (others get
	 * read-only fds), on the shelf of its users (registry_dir_shelf). */
	struct ring_file dir;
	struct dir_class *dir_class;
	uint64_t base_bytes; /* ring memory charged to the owner: order, events, cursors */
	/* Who pays for each writer slot's area (its capacity), until the slot
	 * is free and no member can read its records: then the area's pages
	 * are given back to the system (punched) and the charge ends. */
	uid_t area_uid[RING_WRITER_SLOTS];
	bool area_charged[RING_WRITER_SLOTS];
	uid_t uid;
	gid_t gid;
	uid_t payer; /* whose quota its memory is charged to (uid but for outbound rings) */
	uint32_t mode;
	unsigned n_members;
	struct member *members;
	struct pending_event **pending_tail;
	uint64_t pending_bytes;
	/* This node masters it: members on other nodes, and the streams of
	 * its order to their nodes (replica.c). */
	struct rmember *rmembers;
	unsigned n_rmembers;
	struct stream *streams;
	struct fwd_in *fwds; /* forwards from senders on other nodes */
	bool ship_armed; /* a futex wait on its wake word is in the io_uring */
	/* Or it is the outbound ring of another node's group: senders here
	 * write it, the daemon forwards it to the master (replica.c). */
	struct outbound *outbound;
	/* Or another node masters it and this is its replica here, written by
	 * this daemon alone from what the master sends (replica.c). */
	struct replica *replica;
	struct group *next;
};

struct daemon {
	char node[64];
	char socket_path[108];
	struct loop loop;
	struct loop_src listen_src;
	struct loop_src signal_src;
	struct loop_src tick_src;
	int listen_fd;
	int reserve_fd; /* given back to accept a connection when out of fds */
	struct dir_class *dir_classes;
	/* Ranges of deleted groups their members may still read (the
	 * backlog up to PG_GROUP_DOWN): given back after a grace period. */
	struct grave *graves;
	size_t n_graves, cap_graves;
	bool said_full;
	int signal_fd;
	int tick_fd;
	/* registry_tick's table of every group and where its tail is: a pass
	 * over quiet groups reads two lines a group (its tail, its tick
	 * fields), fetched ahead, not a chain of cold structs. A pass goes
	 * from the end down: entries below tick_at are still to look at. */
	struct tick_entry *ticks;
	unsigned n_ticks, cap_ticks, tick_at;
	bool tick_in_pass;
	unsigned tick_pass_groups; /* groups when the last pass began */
	unsigned tick_passes;      /* passes begun */
	/* Bytes punched from shelves written outside their ranges since the
	 * last time the log said so (at most once a second). */
	uint64_t junk_bytes;
	int64_t junk_said_at;
	unsigned tick_n;  /* ticks so far: every PGD_TICK_PARTS-th is a whole one */
	bool tick_split;  /* the timer runs at PGD_TICK_NS / PGD_TICK_PARTS */
	bool stop;
	uint64_t next_serial;
	uint64_t next_group_serial;
	struct session *sessions;
	struct proc *procs;
	struct group *groups;
	/* Names to groups (every kind: a name may be ours, a replica's and
	 * an outbound ring's): chains, grown with the groups. */
	struct group **gtab;
	unsigned gtab_size, n_all_groups;
	struct dead_writer *dead_writers;
	struct watch *watch;
	struct liveness alive;
	struct quota quota;
	struct cluster *cluster; /* node links; NULL for a node of its own */
	struct names *names;     /* other nodes' groups, requests waiting for them */
	struct repl *repl;       /* replica.c's requests and lost names */
};

/* registry.c: groups, members, events written into rings. */
/* A group this node masters (not a replica). */
struct group *registry_find(struct daemon *d, const char *name);
/* This node's replica of another node's group; its outbound ring. */
struct group *registry_find_replica(struct daemon *d, const char *name);
struct group *registry_find_outbound(struct daemon *d, const char *name);
/* For `who` (a client here, or one of another node's asking through it),
 * who pays for it; owned by `owner` (NULL: by who). */
int registry_create(struct daemon *d, const struct creds *who, const struct creds *owner,
		    const char *name, uint64_t ring_bytes, uint64_t max_msg, uint32_t stall_ms,
		    uint32_t member_slots, uint32_t mode, struct group **out);
int registry_delete(struct daemon *d, const struct creds *who, struct group *g);
int registry_join(struct daemon *d, struct group *g, struct session *target, struct member **out);
/* Remove a membership; `kind` is the event written (RING_REC_LEFT/EXITED). */
void registry_remove(struct daemon *d, struct member *m, uint16_t kind);
/* Write a record into g's order now if there is room, else queue it
 * behind those waiting (copied). 0, or -ENOBUFS when the queue is over
 * its bound (the caller drops what feeds it). */
int registry_post(struct daemon *d, struct group *g, const struct pending_event *e,
		  uint64_t *pos);
/* A member on another node joins (its JOINED now, or -ENOBUFS: no room,
 * try again), leaves or exits (LEFT/EXITED queued in order). */
int registry_rjoin(struct daemon *d, struct group *g, const char *node, int32_t pid,
		   uint64_t *seq, struct rmember **added);
/* A member here of replica g: a slot at the tail, no event (the master
 * writes its JOINED, and the replica places its cursor on it). */
int registry_join_replica(struct daemon *d, struct group *g, struct session *target,
			  struct member **out);
void registry_rleave(struct daemon *d, struct group *g, const char *node, int32_t pid,
		     uint16_t kind);
/* A new group, for a replica: this node's ring with the master's sizes. */
int registry_new_replica(struct daemon *d, const char *name, uint64_t ring_bytes,
			 uint64_t max_msg, uint32_t stall_ms, uint32_t member_slots, uint32_t mode,
			 uid_t uid, gid_t gid, struct group **out);
/* Mark g down for its members (PG_GROUP_DOWN) and free it. */
void registry_drop(struct daemon *d, struct group *g);
int registry_writer(struct daemon *d, struct group *g, struct session *s, uint32_t *slot);
void registry_drop_session(struct daemon *d, struct session *s, uint16_t kind);
/* A read-only file description of one of the daemon's memfds (a group's
 * data or directory, a member page), for a process that may not write it:
 * its mapping cannot be made writable. The caller closes it. */
int registry_ro_fd(int fd);
/* The session's pages and areas go with their memberships and slots. */
void registry_drop_shelves(struct session *s);
/* Note how far member m has read (the tick does, for every member). */
void registry_progress(struct group *g, struct member *m, int64_t now);
/* Whether m has held its group up, as the node saw it, for the stall
 * limit: a sender's request to evict it is granted only then. */
bool registry_stalled(struct group *g, struct member *m, int64_t now);
/* Evict m: out of the group (PG_LEFT); it learns PG_EVICTED from its slot. */
void registry_evict(struct daemon *d, struct member *m);
/* Evict the member that holds g's queued records back now (a replica's
 * queue over its bound): whether there was one. */
bool registry_evict_blocker(struct daemon *d, struct group *g);
/* Free writer slots whose areas nobody can read any more: give their
 * memory back and end their holders' charges. */
void registry_reclaim_areas(struct daemon *d, struct group *g);
/* Memory the group's memfds hold now (pages touched, not their size). */
uint64_t registry_resident_bytes(const struct group *g);
/* Retry pending events, cancel stuck positions, evict members that hold
 * events back (the node evicts; senders only ask). */
/* A tick's part (1/parts) of the pass over every group; true when the
 * pass ended (the next tick starts another). */
bool registry_tick(struct daemon *d, unsigned parts);
void registry_destroy_all(struct daemon *d);

/* session.c: client connections. */
void session_accept(struct daemon *d);
void session_close(struct daemon *d, struct session *s, uint16_t kind);
/* A watched process exited: every session it had goes, with PG_EXITED. */
void session_proc_exited(struct daemon *d, pid_t pid);
/* Sessions closed without BYE whose process lives on: PG_LEFT. */
void session_reap_orphans(struct daemon *d);
/* Tell a session it was made a member by someone else. */
int session_notify_joined(struct daemon *d, struct session *s, struct member *m);
/* Send writer's area of g to every session holding a membership of g. */
void session_push_area(struct daemon *d, struct group *g, uint32_t writer);

/* cluster.c: this node among others (node links, the shared namespace). */
int cluster_start(struct daemon *d, const struct pgd_opts *o);
void cluster_tick(struct daemon *d);
void cluster_stop(struct daemon *d);
/* CTL_NODES: this node, then every peer. */
void cluster_put_nodes(struct daemon *d, struct ctl_out *out);
/* Run replica_poll in about a millisecond (a one-shot timer): members here
 * are reading while a master waits for our credit. */
void cluster_poll_soon(struct daemon *d);
/* The mesh of node links, or NULL for a node of its own. */
struct mesh *cluster_mesh(struct daemon *d);

/* namespace.c: one group namespace over every connected node. */
#define NAMES_LATER 1 /* a request's answer comes when other nodes have answered */
/* Who gets the answer: a local client's request, or another node's. */
struct names_answer {
	uint64_t session; /* serial of the session; 0: none */
	uint8_t type;
	uint32_t id;
	struct mesh_peer *peer; /* or a node that asked */
	uint64_t peer_id;
};
struct names_create_req {
	char name[256];
	char node[64]; /* the master; "" = here */
	uint64_t ring_bytes, max_msg;
	uint32_t stall_ms, mode;
	uint32_t member_slots; /* 0: the default */
};
/* Create a group (here after every peer agreed, or at the node asked):
 * 0, -errno, or NAMES_LATER (answered through `a`). */
int names_create(struct daemon *d, const struct creds *who, const struct names_create_req *req,
		 const struct names_answer *a);
/* Delete another node's group: -ENOENT (not one), -errno or NAMES_LATER. */
int names_delete(struct daemon *d, const struct creds *who, const char *name,
		 const struct names_answer *a);
/* Delete a group of this node's for `who`: 0, -errno or NAMES_LATER
 * (answered once every node up knows). */
int names_delete_here(struct daemon *d, const struct creds *who, struct group *g,
		      const struct names_answer *a);
/* A local group went without a client asking (a lost partition): tell
 * the other nodes. */
void names_deleted(struct daemon *d, const char *name);
/* Whether a group has that name here or on a connected node. */
bool names_taken(struct daemon *d, const char *name);
/* The master of another node's group, or NULL; and all it said of it. */
const char *names_master(struct daemon *d, const char *name);
const struct wire_group *names_info(struct daemon *d, const char *name);
/* CTL_GROUPS: this node's and other nodes' groups `who` may read, newest
 * first, below serial `below`; a full page ends with TRUNCATED. */
void names_list(struct daemon *d, const struct creds *who, struct ctl_out *out, uint64_t below);
int names_frame(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f);
void names_peer_up(struct daemon *d, struct mesh_peer *p);
void names_peer_down(struct daemon *d, struct mesh_peer *p);
void names_destroy(struct daemon *d);
/* The node links are going: drop what names a peer. */
void names_forget_peers(struct daemon *d);
/* Nodes that leave a request unanswered past PGD_NODE_ANSWER_NS are lost. */
void names_tick(struct daemon *d);
/* replica.c: groups whose members are on several nodes. On the master,
 * a stream per node with members: a member slot of the daemon's in the
 * ring, read in place and shipped as REC frames in order. On the other
 * nodes, a replica ring written by the daemon alone from those frames,
 * from which members read as from any ring. */
/* Ship what g's streams have not sent yet; wait (io_uring futex) for more. */
void replica_ship(struct daemon *d, struct group *g);
/* g is being freed: its streams, or its replica state, go with it. */
void replica_group_gone(struct daemon *d, struct group *g);
/* A client here joins (pid of `target`) / lists the members of another
 * node's group `name`: NAMES_LATER (answered when the master answers) or
 * -errno. */
int replica_join(struct daemon *d, struct session *s, struct session *target, const char *name,
		 uint32_t req_id);
int replica_members(struct daemon *d, struct session *s, const char *name, uint32_t req_id);
/* A member of replica g left or exited here: the master writes it. */
void replica_member_left(struct daemon *d, struct group *g, int32_t pid, uint16_t kind);
/* A member of replica g left here (request req_id of session, or its
 * pg_close when bye): NAMES_LATER, answered once the master's LEFT is in
 * the order, or 0 when there is nothing to wait for. */
int replica_leave_wait(struct daemon *d, struct group *g, uint64_t session, uint32_t req_id,
		       int32_t pid, bool bye);
/* g is deleted here, its master: ship what its streams have not sent
 * (the DOWN record last), as far as the links take it now. */
void replica_ship_last(struct daemon *d, struct group *g);
/* The master says `name` is gone: its replica and outbound ring here go
 * too (members get PG_GROUP_DOWN, senders -ENOENT). */
void replica_name_gone(struct daemon *d, const char *name, const struct mesh_peer *master);
/* The master's streams of g: each node's lag (at most max); how many. */
unsigned replica_node_lags(const struct group *g, struct ctl_node_lag *out, unsigned max);
/* A member of a replica is freed: a join still waiting for the master's
 * answer or its place no longer holds it (the join fails, its end is
 * told to the master as for any member). */
void replica_member_freed(struct group *g, const struct member *m);
int replica_frame(struct daemon *d, struct mesh_peer *from, const struct wire_frame *f);
/* A node is lost: its streams, its members of our groups (PG_EXITED), and
 * the replicas of its groups (PG_GROUP_DOWN). */
void replica_peer_down(struct daemon *d, struct mesh_peer *p);
/* The master of `name` was lost while this node had its replica: calls on
 * it are -EHOSTUNREACH (until the name is created again). */
bool replica_lost(struct daemon *d, const char *name);
void replica_tick(struct daemon *d);
/* A forwarded message is in g's order now: its forward may be acked. */
void replica_sequenced(struct daemon *d, struct group *g, const struct pending_event *e);
/* Senders here of another node's group write its outbound ring, made on
 * first use: 0 and *out, or -errno. */
int replica_outbound(struct daemon *d, const struct creds *who, const char *name,
		     struct group **out);
/* Credits of the replicas whose masters may be waiting for them. */
void replica_poll(struct daemon *d);
/* Send the acks gathered while handling frames (before the loop waits). */
void replica_flush(struct daemon *d);
/* A sender found slot `slot` of g holding it up past the stall limit (or,
 * `asked` false, the tick did): if that is another node's stream and it
 * made no progress for the limit, that node's membership of g ends (its
 * members get PG_EVICTED). 0 when evicted, -EAGAIN not stalled that long,
 * -ESRCH no stream there. */
int replica_evict_slot(struct daemon *d, struct group *g, uint32_t slot, bool asked);
/* The page fd of a stream's slot of g (producers map it), or -ESTALE. */
const struct ring_file *replica_stream_page(struct group *g, uint32_t slot, uint32_t word);
/* Whether replica g ended (this node was dropped for lagging): it only
 * waits for its evicted members to be told. */
bool replica_ended(const struct group *g);
/* The master node of replica g. */
const char *replica_master(const struct group *g);
void replica_destroy(struct daemon *d);
/* The node links are going: nothing may name a peer any more. */
void replica_forget_peers(struct daemon *d);

/* session.c: a request's answer that came later (NAMES_LATER). */
void session_answer(struct daemon *d, uint64_t serial, uint8_t type, uint32_t id, int status);
/* A join that came later: the membership m of session `target` in g,
 * answered to `serial`'s request `id`, with the members before it. */
struct session *session_by_serial(struct daemon *d, uint64_t serial);
/* A pg_close that waited for its leaves across nodes: reply, then close. */
void session_bye_done(struct daemon *d, uint64_t serial, uint32_t req_id);
int session_answer_join(struct daemon *d, struct session *s, uint32_t id, struct session *target,
			struct member *m, const struct wire_member *old, uint32_t n_old);
/* The answer to a MEMBERS that came later. */
void session_answer_members(struct daemon *d, uint64_t serial, uint32_t id,
			    const struct wire_member *list, uint32_t n, int status);


#endif /* PG_DAEMON_H */

/* SPDX-License-Identifier: MIT */
/*
 * Who may do what to a group: the group's mode, like a file's, against the
 * client's credentials as the kernel took them at connect (SO_PEERCRED,
 * SO_PEERGROUPS).
 * r = join, receive, list; w = send (and w implies r). Root may do anything.
 */
#ifndef PG_DAEMON_RIGHTS_H
#define PG_DAEMON_RIGHTS_H

#include <stdbool.h>
#include <sys/types.h>

#define RIGHTS_MAX_GROUPS 64

struct creds {
	uid_t uid;
	gid_t gid;
	unsigned n_groups; /* supplementary groups, from SO_PEERGROUPS */
	gid_t groups[RIGHTS_MAX_GROUPS];
};

enum right { RIGHT_READ, RIGHT_WRITE };

/* The peer's supplementary groups as the kernel took them at connect
 * (SO_PEERGROUPS), not as /proc shows some process with its pid now. */
void rights_load_groups(struct creds *c, int sock);
/* 0 or -EACCES. */
int rights_check(const struct creds *c, uid_t owner, gid_t group, unsigned mode, enum right r);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Who may do what to a group: the group's mode, like a file's, against the
 * client's credentials as the kernel gave them (SO_PEERCRED, /proc groups).
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
	unsigned n_groups; /* supplementary groups, from /proc/PID/status */
	gid_t groups[RIGHTS_MAX_GROUPS];
};

enum right { RIGHT_READ, RIGHT_WRITE };

/* Fill the supplementary groups of pid (best effort: none if unreadable). */
void rights_load_groups(struct creds *c, pid_t pid);
/* 0 or -EACCES. */
int rights_check(const struct creds *c, uid_t owner, gid_t group, unsigned mode, enum right r);

#endif

// SPDX-License-Identifier: MIT
#include "rights.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

void rights_load_groups(struct creds *c, int sock)
{
	socklen_t len = sizeof(c->groups);
	c->n_groups = 0;
	/* More groups than we keep: ERANGE, and only the primary gid counts. */
	if (getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, c->groups, &len) == 0)
		c->n_groups = len / sizeof(gid_t);
}

static bool in_group(const struct creds *c, gid_t g)
{
	if (c->gid == g)
		return true;
	for (unsigned i = 0; i < c->n_groups; i++)
		if (c->groups[i] == g)
			return true;
	return false;
}

int rights_check(const struct creds *c, uid_t owner, gid_t group, unsigned mode, enum right r)
{
	if (c->uid == 0)
		return 0;
	unsigned bits = c->uid == owner ? mode >> 6 : in_group(c, group) ? mode >> 3 : mode;
	/* w implies r: a sender may also receive. */
	unsigned want = r == RIGHT_WRITE ? 02 : 06;
	return bits & want ? 0 : -EACCES;
}

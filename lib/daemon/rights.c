// SPDX-License-Identifier: MIT
#include "rights.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rights_load_groups(struct creds *c, pid_t pid)
{
	char path[64], line[1024];
	c->n_groups = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "Groups:", 7) != 0)
			continue;
		char *p = line + 7, *end;
		while (c->n_groups < RIGHTS_MAX_GROUPS) {
			unsigned long g = strtoul(p, &end, 10);
			if (end == p)
				break;
			c->groups[c->n_groups++] = (gid_t)g;
			p = end;
		}
		break;
	}
	if (f)
		fclose(f);
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

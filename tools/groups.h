/* SPDX-License-Identifier: MIT */
/* The daemon's group listing, for pgroup groups and pgroup top. */
#ifndef PG_TOOLS_GROUPS_H
#define PG_TOOLS_GROUPS_H

#include <stddef.h>

#include "pgroup.h"
#include "proto/ctl.h"

/* One line of it. */
struct group_row {
	struct ctl_group_info info;
	struct ctl_node_lag lags[CTL_NODE_LAGS_MAX];
	char name[PG_GROUP_MAX + 1];
};

/* Every group the daemon lists for us (newest first): *rows to free. */
int groups_fetch(int fd, struct group_row **rows, size_t *n);

#endif

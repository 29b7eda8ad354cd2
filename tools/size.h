/* SPDX-License-Identifier: MIT */
#ifndef PG_TOOLS_SIZE_H
#define PG_TOOLS_SIZE_H

#include <stdbool.h>
#include <stddef.h>

/* "64k", "1M", "4G", "4096": false when it is not a size. */
bool cli_size(const char *s, size_t *out);

#endif /* PG_TOOLS_SIZE_H */

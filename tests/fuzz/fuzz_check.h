/* SPDX-License-Identifier: MIT */
/* What a fuzz target calls a finding: a check that fails aborts, so
 * libFuzzer keeps the input and CI fails. */
#ifndef PG_FUZZ_CHECK_H
#define PG_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static inline _Noreturn void fuzz_fail(const char *target, const char *what)
{
	fprintf(stderr, "%s: %s\n", target, what);
	abort();
}

#define FUZZ_CHECK(target, cond)                                                                   \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fuzz_fail(target, #cond);                                                  \
	} while (0)

#endif /* PG_FUZZ_CHECK_H */

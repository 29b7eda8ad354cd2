// SPDX-License-Identifier: MIT
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

void pgd_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("pgroupd: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

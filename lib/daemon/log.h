/* SPDX-License-Identifier: MIT */
/* The daemon logs to stderr, one line per event. */
#ifndef PG_DAEMON_LOG_H
#define PG_DAEMON_LOG_H

void pgd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

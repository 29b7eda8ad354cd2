/* SPDX-License-Identifier: MIT */
/*
 * The event the exit watcher's BPF program sends to pgroupd: a watched
 * process (thread group) has ended. Shared by exitwatch.bpf.c and the daemon
 * (lib/daemon/watch_bpf.c), so fixed-width fields only.
 */
#ifndef PG_EXITWATCH_H
#define PG_EXITWATCH_H

#ifndef __VMLINUX_H__
#include <linux/types.h> /* user space: __u32 and friends */
#endif

struct exitwatch_event {
	__u32 tgid;
	__s32 exit_code;       /* as in task->exit_code (signal | status << 8) */
	__u64 start_boottime;  /* the thread group leader's, in ns: tells a
				  reused pid from the process we watched */
	__u64 at_ns;           /* bpf_ktime_get_ns() when it ended */
};

#define EXITWATCH_MAX_PROCS 65536

#endif /* PG_EXITWATCH_H */

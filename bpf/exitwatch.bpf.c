// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The exit watcher, kernel side: on every task exit, if the task's thread
 * group is one pgroupd watches and this was its last live thread, send an
 * event. A main thread that calls pthread_exit while others run is not the
 * end of the process: signal->live counts the live threads, and do_exit
 * decrements it before this tracepoint fires.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "exitwatch.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* tgid -> unused (the daemon keeps the start time); filled by pgroupd. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, EXITWATCH_MAX_PROCS);
	__type(key, __u32);
	__type(value, __u8);
} watched SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/*
 * The daemon's pid namespace: its depth and inode, set before load. The
 * daemon knows its clients by their pids in that namespace (SO_PEERCRED), and
 * task->tgid is the initial namespace's: the tgid the daemon sees is the
 * group leader's pid number at the daemon's level.
 */
const volatile __u32 ns_level = 0;
const volatile __u32 ns_inum = 0;

static __always_inline int tgid_seen_by_daemon(struct task_struct *task, __u32 *tgid)
{
	struct pid *pid = BPF_CORE_READ(task, group_leader, thread_pid);
	if (!pid || BPF_CORE_READ(pid, level) < ns_level)
		return -1; /* above the daemon's namespace: not a client */
	struct upid up;
	const char *at = (const char *)pid + bpf_core_field_offset(struct pid, numbers) +
			 (__u64)ns_level * bpf_core_type_size(struct upid);
	if (bpf_probe_read_kernel(&up, sizeof(up), at))
		return -1;
	if (ns_inum && BPF_CORE_READ(up.ns, ns.inum) != ns_inum)
		return -1; /* another namespace at that depth */
	*tgid = (__u32)up.nr;
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(exitwatch_on_exit, struct task_struct *task)
{
	__u32 tgid;
	if (tgid_seen_by_daemon(task, &tgid) || !bpf_map_lookup_elem(&watched, &tgid))
		return 0;
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0; /* other threads of the process live on */
	struct exitwatch_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0; /* the daemon's pidfd backstop covers a full buffer */
	e->tgid = tgid;
	e->exit_code = BPF_CORE_READ(task, exit_code);
	e->start_boottime = BPF_CORE_READ(task, group_leader, start_boottime);
	e->at_ns = bpf_ktime_get_ns();
	bpf_ringbuf_submit(e, 0);
	return 0;
}

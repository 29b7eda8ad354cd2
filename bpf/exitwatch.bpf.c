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

SEC("tp_btf/sched_process_exit")
int BPF_PROG(exitwatch_on_exit, struct task_struct *task)
{
	__u32 tgid = BPF_CORE_READ(task, tgid);
	if (!bpf_map_lookup_elem(&watched, &tgid))
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

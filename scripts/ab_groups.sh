#!/bin/sh
# SPDX-License-Identifier: MIT
# Two builds side by side on a consumer in one group and in many: each on
# its own daemon (they may differ in ring version), the runs alternating
# A, B, A, B so that drift of a shared host falls on both alike. One line
# per run: build, groups, wait mode, p50, p99 (us), receiver and sender CPU
# per message (us), the daemon's (us), delivered in full.
#
#   scripts/ab_groups.sh A_BUILD B_BUILD [ROUNDS]
#
# Builds without test hooks (meson setup B -Dtests=disabled). $GROUP_COUNTS
# (default "1 10000"), $WAITS (default "default fd"), $RATE (100), $COUNT
# (1000) as for pgroup bench.
set -eu
A=$1
B=$2
ROUNDS=${3:-3}
dir=$(mktemp -d)
pids=
for side in a b; do
	build=$A
	[ "$side" = b ] && build=$B
	(ulimit -Sn 1024 2>/dev/null; exec "$build/tools/pgroupd" --socket "$dir/$side.sock" \
		2>"$dir/$side.log") &
	pids="$pids $!"
done
trap 'kill $pids 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT INT TERM
for _ in $(seq 50); do [ -S "$dir/a.sock" ] && [ -S "$dir/b.sock" ] && break; sleep 0.1; done
run() { # build socket groups wait label
	"$1/tools/pgroup" bench --socket "$2" --members 1 --groups "$3" --rate "${RATE:-100}" \
		--count "${COUNT:-1000}" --wait "$4" --json |
		python3 -c "import json, sys
d = json.load(sys.stdin); l = d['latency_us']; c = d['cpu_ns_per_delivery']
print('$5', $3, '$4', l['p50'], l['p99'], round(c['receivers'] / 1e3, 1),
      round(c['senders'] / 1e3, 1), round(c['daemon'] / 1e3, 1), d['ok'])"
}
for _ in $(seq "$ROUNDS"); do
	for w in ${WAITS:-default fd}; do
		for g in ${GROUP_COUNTS:-1 10000}; do
			run "$A" "$dir/a.sock" "$g" "$w" A
			run "$B" "$dir/b.sock" "$g" "$w" B
		done
	done
done

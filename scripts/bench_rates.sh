#!/bin/sh
# SPDX-License-Identifier: MIT
# CPU per member against latency, over rates: one sender, one member, 64 B,
# paced at each rate in $RATES (default "10 100 1000 20000"), about 5 s each,
# $RUNS runs, on one fresh daemon; the receiver's wait as it is by default
# (adaptive), then fixed at today's 200 us window (PGROUP_SPIN_US=200).
# One JSON line per run (pgroup bench --json plus "mode"); the member's CPU
# share is cpu_ns_per_delivery.receivers x rate / 1e9.
#
#   scripts/bench_rates.sh [BUILD_DIR] [RUNS]
set -eu
cd "$(dirname "$0")/.."
B=${1:-build}
RUNS=${2:-3}
RATES=${RATES:-10 100 1000 20000}
dir=$(mktemp -d)
"$B/tools/pgroupd" --socket "$dir/sock" 2>"$dir/log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT INT TERM
for _ in $(seq 50); do [ -S "$dir/sock" ] && break; sleep 0.1; done
for rate in $RATES; do
	count=$((rate * 5))
	for mode in adaptive fixed200; do
		for _ in $(seq "$RUNS"); do
			printf '{"mode":"%s",' "$mode"
			if [ "$mode" = fixed200 ]; then
				PGROUP_SPIN_US=200 "$B/tools/pgroup" bench --socket "$dir/sock" \
					--members 1 --rate "$rate" --count "$count" --json
			else
				"$B/tools/pgroup" bench --socket "$dir/sock" --members 1 \
					--rate "$rate" --count "$count" --json
			fi | sed 's/^{//'
		done
	done
done

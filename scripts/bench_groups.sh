#!/bin/sh
# SPDX-License-Identifier: MIT
# A consumer in many groups: one member process joins G groups (G in
# $GROUP_COUNTS, default "1 100 1000 3000"), one sender sends $RATE msg/s (default
# 100) each to a group picked at random; pg_recv (wait default) and pg_fd +
# epoll (wait fd), each $RUNS times on one fresh daemon. Prints one JSON
# line per run (pgroup bench --json plus "groups" and "wait").
#
#   scripts/bench_groups.sh [BUILD_DIR] [RUNS]
#
# BUILD_DIR (default build) should be a build without test hooks
# (meson setup B -Dtests=disabled). The daemon starts with Debian's default
# soft fd limit (1,024) under the shell's hard one: each group costs it one
# descriptor (design.md §2, shelves).
set -eu
cd "$(dirname "$0")/.."
B=${1:-build}
RUNS=${2:-3}
COUNTS=${GROUP_COUNTS:-1 100 1000 3000}
RATE=${RATE:-100}
COUNT=${COUNT:-500}
dir=$(mktemp -d)
(ulimit -Sn 1024 2>/dev/null; exec "$B/tools/pgroupd" --socket "$dir/sock" 2>"$dir/log") &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT INT TERM
for _ in $(seq 50); do [ -S "$dir/sock" ] && break; sleep 0.1; done
for g in $COUNTS; do
	for wait in default fd; do
		for _ in $(seq "$RUNS"); do
			"$B/tools/pgroup" bench --socket "$dir/sock" --members 1 --groups "$g" \
				--rate "$RATE" --count "$COUNT" --wait "$wait" --json
		done
	done
done

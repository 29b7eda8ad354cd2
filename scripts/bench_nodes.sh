#!/bin/sh
# SPDX-License-Identifier: MIT
# Across nodes: one sender on node A, N members on node B, two daemons on
# loopback TCP (encrypted, then --no-encrypt), each `pgroup bench` run
# RUNS times; then ZeroMQ PUB/SUB over loopback TCP (pgcompare zmqtcp), the
# reference, in the same minutes. Prints one JSON line per pgroup run.
#
#   scripts/bench_nodes.sh [BUILD_DIR] [RUNS]
#
# BUILD_DIR (default build) should be a build without test hooks
# (meson setup B -Dtests=disabled). Members and rates: $MEMBERS ("1 2 4"),
# $RATES ("20000 0": paced at 20k msg/s, then back to back); then, per link
# mode, 16 KiB messages back to back (N = 1) and SIGKILL -> PG_EXITED
# across the link (pgroup bench --purge --member-socket).
set -eu
cd "$(dirname "$0")/.."
B=${1:-build}
RUNS=${2:-3}
MEMBERS=${MEMBERS:-1 2 4}
RATES=${RATES:-20000 0}
dir=$(mktemp -d)
pids=
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM
cookie=$dir/cookie
(umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$cookie")

# node NAME PORT FLAGS...
node() {
	name=$1 port=$2
	shift 2
	"$B/tools/pgroupd" --node "$name" --socket "$dir/$name.sock" \
		--listen "127.0.0.1:$port" --cookie-file "$cookie" "$@" 2>"$dir/$name.log" &
	pids="$pids $!"
}

up() { # wait until each node lists the other up
	for _ in $(seq 100); do
		"$B/tools/pgroup" nodes --json --socket "$dir/a.sock" 2>/dev/null |
			grep -q '"node":"b","addr":"[^"]*","state":"up"' &&
			"$B/tools/pgroup" nodes --json --socket "$dir/b.sock" 2>/dev/null |
			grep -q '"node":"a","addr":"[^"]*","state":"up"' && return 0
		sleep 0.1
	done
	echo "bench_nodes: the nodes did not link (logs in $dir)" >&2
	cat "$dir"/*.log >&2
	exit 1
}

port=$((20000 + $$ % 20000))
for mode in encrypted plain; do
	flags=
	[ "$mode" = plain ] && flags=--no-encrypt
	node a "$port" $flags
	node b "$((port + 1))" --peer "127.0.0.1:$port" $flags
	up
	for n in $MEMBERS; do
		for rate in $RATES; do
			for _ in $(seq "$RUNS"); do
				printf '{"link":"%s",' "$mode"
				"$B/tools/pgroup" bench --socket "$dir/a.sock" \
					--member-socket "$dir/b.sock" --members "$n" \
					--rate "$rate" --json | sed 's/^{//'
			done
		done
	done
	# Payload leaving the master: 16 KiB messages back to back, one member
	# on B (bytes/s = deliveries/s x 16384).
	for _ in $(seq "$RUNS"); do
		printf '{"link":"%s","test":"16k",' "$mode"
		"$B/tools/pgroup" bench --socket "$dir/a.sock" --member-socket "$dir/b.sock" \
			--members 1 --size 16384 --ring 8M --count 100000 --rate 0 --json |
			sed 's/^{//'
	done
	# SIGKILL of a member on B -> its PG_EXITED (gone from pg_members) on A.
	printf '{"link":"%s","test":"purge",' "$mode"
	"$B/tools/pgroup" bench --purge --socket "$dir/a.sock" --member-socket "$dir/b.sock" \
		--kills 200 --json | sed 's/^{//'
	for p in $pids; do kill "$p"; done
	wait 2>/dev/null || true
	pids=
	port=$((port + 2))
done
if [ -x "$B/bench/compare/pgcompare" ]; then
	m=$(echo $MEMBERS | tr ' ' ,)
	r=$(echo $RATES | tr ' ' ,)
	"$B/bench/compare/pgcompare" --transports zmqtcp,tcp --members "$m" --rate "$r" --runs "$RUNS"
fi

#!/bin/sh
# SPDX-License-Identifier: MIT
# pgroup top in a real terminal (tmux): it draws the node's groups with the
# busiest first and its rate, scrolls with j and k, and quits on q; its
# --json snapshot has every group. Exit 77 without tmux.
set -u
command -v tmux >/dev/null || { echo "SKIP: tmux not installed"; exit 77; }
: "${PGROUPD:?}" "${PGROUP_CLI:?}"
dir=$(mktemp -d)
sock=$dir/sock
tmx="tmux -L pgtop-$$ -f /dev/null"
fail=0
cleanup() {
	$tmx kill-server 2>/dev/null
	[ -n "${loop:-}" ] && kill "$loop" 2>/dev/null
	[ -n "${member:-}" ] && kill "$member" 2>/dev/null
	[ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
check() { # what, then a command that must succeed
	what=$1
	shift
	if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fail=1; fi
}
cli() { "$PGROUP_CLI" --socket "$sock" "$@"; }

"$PGROUPD" --socket "$sock" --node topnode 2>"$dir/log" &
daemon=$!
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
# 40 quiet groups (more than the screen shows) and a busy one.
for i in $(seq -w 1 40); do cli create "quiet-$i" >/dev/null || fail=1; done
cli create busy >/dev/null || fail=1
cli join busy >/dev/null &
member=$!
sleep 0.3
( while :; do cli send busy tick >/dev/null 2>&1 || exit; done ) &
loop=$!

$tmx new-session -d -x 100 -y 20 "$PGROUP_CLI --socket $sock top"
sleep 3
$tmx capture-pane -p >"$dir/screen1"
check "top draws its header" grep -q "pgroup top" "$dir/screen1"
check "top draws its columns" grep -q "GROUP.*IN/S.*OUT/S.*LAG" "$dir/screen1"
# The busy group first (sorted by messages in), with a rate.
first=$(grep -A1 "GROUP.*IN/S" "$dir/screen1" | tail -1)
check "the busiest group comes first" sh -c "echo '$first' | grep -q '^busy '"
rate=$(echo "$first" | awk '{print $4}')
check "its rate in is counted ($rate/s)" test "${rate:-0}" -gt 0
check "quiet groups are listed" grep -q "quiet-01" "$dir/screen1"
check "not all fit: some are below the screen" sh -c "! grep -q quiet-40 '$dir/screen1'"
# Scroll down three rows: the first row is no longer the busy group.
$tmx send-keys j j j
sleep 0.5
$tmx capture-pane -p >"$dir/screen2"
second=$(grep -A1 "GROUP.*IN/S" "$dir/screen2" | tail -1)
check "j scrolls down" sh -c "echo '$second' | grep -q '^quiet-03 '"
$tmx send-keys k
sleep 0.5
$tmx capture-pane -p >"$dir/screen3"
third=$(grep -A1 "GROUP.*IN/S" "$dir/screen3" | tail -1)
check "k scrolls up" sh -c "echo '$third' | grep -q '^quiet-02 '"
$tmx send-keys q
gone=1
for _ in $(seq 30); do
	$tmx has-session 2>/dev/null || { gone=0; break; }
	sleep 0.1
done
check "q quits" test "$gone" = 0

# --json: one snapshot of every group, with rates.
cli top --json >"$dir/json" || fail=1
check "--json lists every group" test "$(grep -o '"group":' "$dir/json" | wc -l)" -eq 41
check "--json has the busy group's rate" grep -q '"group":"busy","master":"topnode","members":1,"in_per_s":[1-9]' "$dir/json"
# A cancelled claim is counted: a writer parked between claim and commit
# (a test-hooks build) is cancelled after the stall limit. (Evictions are
# checked in test_limits, where one sender can fill a ring.)
cli create hole --stall-ms 200 >/dev/null || fail=1
cli join hole >/dev/null &
reader=$!
sleep 0.3
PGROUP_TEST_PARK_IN_SEND=1 "$PGROUP_CLI" --socket "$sock" send hole x >/dev/null 2>&1 &
parked=$!
sleep 1
cli top --json >"$dir/json2" || fail=1
kill "$parked" "$reader" 2>/dev/null
check "a cancelled claim is counted" grep -q '"group":"hole",[^}]*"cancels":[1-9]' "$dir/json2"
[ "$fail" = 0 ] && echo "top: all passed"
exit "$fail"

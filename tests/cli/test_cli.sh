#!/bin/bash
# SPDX-License-Identifier: MIT
# The pgroup CLI against a real pgroupd: create, join (prints what it
# receives), send, esend, members, groups (--json), delete, one-line errors
# with non-zero exits, and starting a daemon when none listens.
# Usage: test_cli.sh PGROUP PGROUPD
set -u
PGROUP=$1
PGROUPD=$2
dir=$(mktemp -d /tmp/pgroup-cli-XXXXXX)
sock=$dir/d.sock
fails=0
pids=()
# pgroupd processes of this test: a socket argument under $dir, or (the
# one the CLI starts) PGROUP_SOCKET under $dir. Found by what they are
# serving, never by name alone.
daemons_under() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(cat "$p/comm" 2>/dev/null)" = pgroupd ] || continue
		if { tr '\0' '\n' <"$p/cmdline" | grep -q "^$dir/"; } 2>/dev/null ||
		   { tr '\0' '\n' <"$p/environ" | grep -q "^PGROUP_SOCKET=$dir/"; } 2>/dev/null; then
			echo "${p#/proc/}"
		fi
	done
}
gone() { # pid: up to 5 s for it to exit
	for _ in $(seq 100); do
		kill -0 "$1" 2>/dev/null || return 0
		# A zombie has exited; only its parent's wait is missing.
		[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ] && return 0
		sleep 0.05
	done
	return 1
}
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	# Whatever of ours is left (a failed check above): by pid.
	for p in $(daemons_under); do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
check() { # description, command...
	local what=$1
	shift
	if "$@"; then
		echo "ok - $what"
	else
		echo "not ok - $what"
		fails=$((fails + 1))
	fi
}
wait_for() { # file pattern: up to 5 s
	for _ in $(seq 100); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

"$PGROUPD" --socket "$sock" --node clinode 2>"$dir/daemon.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
P() { "$PGROUP" --socket "$sock" "$@"; }

check "create" P create g1 --ring 256k --max-msg 4k --stall-ms 500 --mode 0640
check "create again fails" bash -c "! '$PGROUP' --socket '$sock' create g1 2>'$dir/err'"
check "... with one line naming the error" \
	bash -c "[ \$(wc -l <'$dir/err') = 1 ] && grep -q 'exists' '$dir/err'"
P join g1 --monitor >"$dir/join.out" &
pids+=($!)
check "join prints its own JOINED" wait_for "$dir/join.out" "JOINED clinode"
check "send" P send g1 "hello world"
check "esend (from another process: delivered)" P esend g1 "second"
check "join printed both, in order" \
	bash -c "wait_for() { for _ in \$(seq 100); do grep -q second '$dir/join.out' && return 0; sleep 0.05; done; return 1; }; wait_for &&
		 grep -n 'hello world\|second' '$dir/join.out' | tr '\n' ' ' | grep -q '^[0-9]*:.*hello world [0-9]*:.*second'"
check "members lists the joiner" bash -c "'$PGROUP' --socket '$sock' members g1 | grep -q '^clinode [0-9]'"
check "members --json" bash -c "'$PGROUP' --socket '$sock' --json members g1 | python3 -c 'import json,sys; m=json.load(sys.stdin); assert len(m)==1 and m[0][\"node\"]==\"clinode\"'"
check "groups --json: master, members, mode, ring" bash -c "'$PGROUP' --socket '$sock' groups --json | python3 -c 'import json,sys; g=[x for x in json.load(sys.stdin) if x[\"group\"]==\"g1\"][0]; assert g[\"master\"]==\"clinode\" and g[\"members\"]==1 and g[\"mode\"]==\"0640\" and g[\"ring_bytes\"]==262144'"
big=$(printf 'a%.0s' $(seq 5000))
check "message over --max-msg: EMSGSIZE, non-zero" \
	bash -c "! '$PGROUP' --socket '$sock' send g1 '$big' 2>'$dir/err' && grep -q 'larger' '$dir/err'"
check "bad name" bash -c "! '$PGROUP' --socket '$sock' create 'a/b' 2>'$dir/err' && grep -q 'invalid' '$dir/err'"
check "no such group" bash -c "! '$PGROUP' --socket '$sock' send nope x 2>'$dir/err' && grep -q 'no such group' '$dir/err'"
check "bad option" bash -c "! '$PGROUP' --socket '$sock' create g2 --mode 9 2>/dev/null"
check "unknown command" bash -c "! '$PGROUP' --socket '$sock' frobnicate 2>/dev/null"
check "--help" bash -c "'$PGROUP' --help | grep -q 'usage: pgroup'"
check "pgroupd --help" bash -c "'$PGROUPD' --help | grep -q 'usage: pgroupd'"
check "delete" P delete g1
check "the joiner saw the group go down" wait_for "$dir/join.out" "DOWN"

# No daemon on the default socket: the CLI starts one and says so.
export PGROUP_SOCKET=$dir/auto.sock
export PATH=$(dirname "$PGROUPD"):$PATH
check "autostart says so" bash -c "'$PGROUP' create g3 2>'$dir/auto.err' && grep -q 'started' '$dir/auto.err'"
check "... and the group is there" bash -c "'$PGROUP' members g3 >/dev/null"
# The daemon it started runs detached: stop it by the pid the CLI reported
# ("... started PATH (pid N)"), once that pid is a pgroupd serving our
# socket (not a recycled pid).
auto_pid=$(sed -n 's/.*started .* (pid \([0-9][0-9]*\)).*/\1/p' "$dir/auto.err" | head -n 1)
check "autostart reports the daemon's pid" test -n "$auto_pid"
check "... which is the daemon serving our socket" \
	bash -c "[ -n '$auto_pid' ] && [ \"\$(cat /proc/$auto_pid/comm 2>/dev/null)\" = pgroupd ] &&
		 tr '\\0' '\\n' </proc/$auto_pid/environ | grep -qx 'PGROUP_SOCKET=$dir/auto.sock'"
if [ -n "$auto_pid" ] && daemons_under | grep -qx "$auto_pid"; then
	kill "$auto_pid"
	check "... and it stops on SIGTERM" gone "$auto_pid"
	check "... removing its socket" bash -c "! [ -e '$dir/auto.sock' ]"
fi

# Nothing this test started outlives it: stop the first daemon (and the
# joiner), then count what still serves a socket under $dir.
for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
wait 2>/dev/null
pids=()
left=$(daemons_under | wc -l)
check "no pgroupd of this test is left ($left)" test "$left" = 0

echo "$fails failed"
[ "$fails" = 0 ]

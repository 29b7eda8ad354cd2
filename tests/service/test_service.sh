#!/bin/bash
# SPDX-License-Identifier: MIT
# pgroupd as a system service.
#  Part 1: the configured unit passes `systemd-analyze verify` (skipped, with
#   the reason, where systemd-analyze is missing or cannot run here).
#  Part 2: one root daemon, started with the unit's capability bounding set,
#   fd limit, no_new_privs and a private network namespace, on a private
#   socket, serves several uids at once: each lists, joins, receives, sends
#   and deletes exactly what the groups' modes allow (needs root).
# Exit 1 if any check failed; 77 (meson's skip) if none failed but a part
# could not run; 0 otherwise.
# Usage: test_service.sh UNIT PGROUP PGROUPD PGROUPD_MAN_PAGE
set -u
# Absolute: other uids run these, and ExecStart= must be absolute.
UNIT=$(realpath "$1")
PGROUP=$(realpath "$2")
PGROUPD=$(realpath "$3")
MANPAGE=$(realpath "$4")
export LC_ALL=C
dir=$(mktemp -d /tmp/pgroup-svc-XXXXXX)
# Other uids must reach the socket below it (mktemp makes it 0700).
chmod 0755 "$dir"
fails=0
skipped=()
pids=()  # joiners, killed by pid at the end
dpid=    # the daemon we start, stopped by its pid
user=    # a user we created, removed at the end

running() { # pid: still our `pgroup join` (not exited, not a reused pid)
	local comm st ppid
	{ read -r _ comm st ppid _ </proc/"$1"/stat; } 2>/dev/null || return 1
	[ "$comm" = "(pgroup)" ] && [ "$st" != Z ] && [ "$ppid" = $$ ]
}
# SIGTERM, and SIGKILL for those still there after 2 s: a `pgroup join`
# woken by other members' LEFT records as they all go can miss its SIGTERM
# and wait on for the next message.
stop_joiners() {
	local p left=()
	for p in "${pids[@]}"; do running "$p" && kill -TERM "$p"; done
	for _ in $(seq 40); do
		left=()
		for p in "${pids[@]}"; do running "$p" && left+=("$p"); done
		[ ${#left[@]} = 0 ] && break
		sleep 0.05
	done
	if [ ${#left[@]} -gt 0 ]; then
		echo "# ${#left[@]} of ${#pids[@]} joiners still there 2 s after SIGTERM: SIGKILL"
		kill -KILL "${left[@]}" 2>/dev/null
	fi
	wait "${pids[@]}" 2>/dev/null
	pids=()
}
cleanup() {
	stop_joiners
	if [ -n "$dpid" ]; then
		kill -TERM "$dpid" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$dpid" 2>/dev/null
	fi
	wait 2>/dev/null
	if [ -n "$user" ]; then
		userdel "$user" 2>/dev/null
		groupdel "$user" 2>/dev/null
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 143' TERM INT # meson's timeout: clean up all the same

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
skip() { # part, reason
	echo "SKIP - $1: $2"
	skipped+=("$1")
}
wait_for() { # file pattern: up to 5 s
	for _ in $(seq 100); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}
directive() { # the value of a unit directive (last one wins, as in systemd)
	sed -n "s/^$1=//p" "$UNIT" | tail -1
}

# ---------------------------------------------------------------- part 1
echo "# part 1: the unit ($UNIT)"
check "the unit starts the daemon on /run/pgroup/pgroupd.sock" \
	bash -c "grep -qx 'ExecStart=/.*/pgroupd --socket /run/pgroup/pgroupd.sock' '$UNIT'"
check "... in a RuntimeDirectory /run/pgroup open to all (0755)" \
	bash -c "grep -qx 'RuntimeDirectory=pgroup' '$UNIT' && grep -qx 'RuntimeDirectoryMode=0755' '$UNIT'"
check "no @placeholder@ left unconfigured" bash -c "! grep -n '@[a-z_]*@' '$UNIT'"

part1() {
	if ! command -v systemd-analyze >/dev/null; then
		skip "systemd-analyze verify" "systemd-analyze is not installed"
		return
	fi
	mkdir -p "$dir/unit" "$dir/sane" "$dir/man/man8"
	# Can it verify at all here? A trivial good unit must pass silently
	# (it runs offline, but may still need things a container lacks).
	printf '[Unit]\nDescription=sanity\n[Service]\nExecStart=/bin/true\n' \
		>"$dir/sane/sane.service"
	if ! systemd-analyze verify --man=no "$dir/sane/sane.service" >"$dir/sane.out" 2>&1 ||
	   [ -s "$dir/sane.out" ]; then
		skip "systemd-analyze verify" "it cannot run here: $(head -3 "$dir/sane.out" | tr '\n' ' ')"
		return
	fi
	# verify checks that ExecStart= exists: before `meson install` it
	# does not, so verify a copy that runs the built daemon instead.
	local exec
	exec=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$UNIT")
	cp "$UNIT" "$dir/unit/pgroupd.service"
	if [ ! -x "$exec" ]; then
		echo "# $exec is not installed: verifying with ExecStart=$PGROUPD"
		sed -i "s|^ExecStart=$exec |ExecStart=$PGROUPD |" "$dir/unit/pgroupd.service"
	fi
	# Documentation=man:pgroupd(8) is checked too, against our page.
	local man=--man=no
	if command -v man >/dev/null; then
		ln -s "$MANPAGE" "$dir/man/man8/pgroupd.8"
		man=--man=yes
	fi
	# verify exits 0 on many a bad line ("..., ignoring"): any output fails.
	local rc=0
	MANPATH=$dir/man systemd-analyze verify "$man" "$dir/unit/pgroupd.service" \
		>"$dir/verify.out" 2>&1 || rc=$?
	sed 's/^/#   /' "$dir/verify.out"
	check "systemd-analyze verify $man: exit 0, no warnings" \
		bash -c "[ $rc = 0 ] && [ ! -s '$dir/verify.out' ]"
	# The exposure score is reported, not checked.
	if systemd-analyze security --offline=yes "$dir/unit/pgroupd.service" \
		>"$dir/security.out" 2>&1; then
		echo "# systemd-analyze security: $(grep -a 'Overall exposure' "$dir/security.out")"
	else
		echo "# systemd-analyze security --offline=yes did not run: $(tail -1 "$dir/security.out")"
	fi
}
part1

# ---------------------------------------------------------------- part 2
# Who is who: the daemon takes uid and gid from SO_PEERCRED and the
# supplementary groups from SO_PEERGROUPS, so setpriv is all it takes; no
# passwd entry is needed.
#  root: uid 0
#  nob:  uid 65534, gid 65534 (nobody)
#  usr:  uid U, gid U: a user created for the test, else uid 65533
#  usrg: uid U, gid U, supplementary group 65534 (in nob's group)
#  usrp: uid U, primary gid 65534 (in nob's group the other way)
IDS="root nob usr usrg usrp"
U=65533
# ID: the command prefix that becomes that identity. setpriv execs its
# command, so a client started in the background as "${ID[@]}" CMD & has
# the pid $! (a shell function would fork and hide it).
identity() {
	case $1 in
	root) ID=() ;;
	nob) ID=(setpriv --reuid=65534 --regid=65534 --clear-groups) ;;
	usr) ID=(setpriv --reuid="$U" --regid="$U" --clear-groups) ;;
	usrg) ID=(setpriv --reuid="$U" --regid="$U" --groups=65534) ;;
	usrp) ID=(setpriv --reuid="$U" --regid=65534 --clear-groups) ;;
	esac
}
as() { # identity, command...
	identity "$1"
	shift
	"${ID[@]}" "$@"
}

# The groups, by owner, with their modes.
declare -A MODE=(
	[n600]=0600 [n640]=0640 [n604]=0604 [n666]=0666 [n620]=0620 [n066]=0066
	[r600]=0600 [r640]=0640 [r604]=0604 [r666]=0666
	[u600]=0600 [u640]=0640 [u604]=0604 [u666]=0666 [u602]=0602)
declare -A OWNER=(
	[n600]=nob [n640]=nob [n604]=nob [n666]=nob [n620]=nob [n066]=nob
	[r600]=root [r640]=root [r604]=root [r666]=root
	[u600]=usr [u640]=usr [u604]=usr [u666]=usr [u602]=usr)
ALL=$(printf '%s\n' "${!MODE[@]}" | sort | tr '\n' ' ')
ALL=${ALL% }
# What each may read (list, join, receive, members) and write (send), by
# hand from the rule, like a file's mode: the owner's bits if the uid owns
# the group, else the group's bits if the primary or a supplementary gid is
# the group's, else the other bits; w implies r; root may do anything.
# n066: the owner is in the owner class only, so nob may not read its own.
# n604: the group class gets its own bits, 0, even though others may read.
declare -A READ=(
	[root]=$ALL
	[nob]="n600 n604 n620 n640 n666 r604 r666 u602 u604 u666"
	[usr]="n066 n604 n666 r604 r666 u600 u602 u604 u640 u666"
	[usrg]="n066 n620 n640 n666 r604 r666 u600 u602 u604 u640 u666"
	[usrp]="n066 n620 n640 n666 r604 r666 u600 u602 u604 u640 u666")
declare -A WRITE=(
	[root]=$ALL
	[nob]="n600 n604 n620 n640 n666 r666 u602 u666"
	[usr]="n066 n666 r666 u600 u602 u604 u640 u666"
	[usrg]="n066 n620 n666 r666 u600 u602 u604 u640 u666"
	[usrp]="n066 n620 n666 r666 u600 u602 u604 u640 u666")
in_set() { [[ " $2 " == *" $1 "* ]]; }

P() { # identity, pgroup arguments...: up to 5 s, output in $dir/out, $dir/err
	local who=$1
	shift
	as "$who" timeout 5 "$PGROUP" --socket "$sock" "$@" >"$dir/out" 2>"$dir/err"
}
expect_ok() { # identity, pgroup arguments...
	local rc=0
	P "$@" || rc=$?
	[ "$rc" = 0 ] && [ ! -s "$dir/err" ] && return 0
	echo "# $1: pgroup ${*:2}: exit $rc, stderr: $(cat "$dir/err")"
	return 1
}
expect_eacces() { # identity, group, pgroup arguments...: exit 1, one exact line
	local who=$1 g=$2 rc=0
	shift 2
	P "$who" "$@" || rc=$?
	local want="pgroup: $g: permission denied by the group's mode"
	[ "$rc" = 1 ] && [ "$(cat "$dir/err")" = "$want" ] && [ ! -s "$dir/out" ] && return 0
	echo "# $who: pgroup $*: exit $rc, stdout: $(head -c 200 "$dir/out"), stderr: $(cat "$dir/err")"
	return 1
}
listing() { # identity: "name:mode ..." as groups --json shows it to them
	P "$1" groups --json || { echo "# $1: groups: $(cat "$dir/err")" >&2; return 1; }
	python3 -c 'import json,sys
print(" ".join(sorted(g["group"] + ":" + g["mode"] for g in json.load(sys.stdin))))' <"$dir/out"
}
expect_listing() { # identity, expected names
	local got want=""
	got=$(listing "$1") || return 1
	for g in $2; do want+="$g:${MODE[$g]} "; done
	want=${want% }
	[ "$got" = "$want" ] && return 0
	echo "# $1 sees:  $got"
	echo "# expected: $want"
	return 1
}

all_watched() { # the daemon logged no client it could not watch
	local n
	n=$(grep -c 'cannot watch' "$dir/daemon.log")
	[ "$n" = 0 ] && return 0
	echo "# $n times, first: $(grep -m1 'cannot watch' "$dir/daemon.log")"
	return 1
}

part2() {
	if [ "$(id -u)" != 0 ]; then
		skip "several uids on one root daemon" "needs root (to run the daemon as root and clients as other uids)"
		return
	fi
	if ! command -v setpriv >/dev/null || ! command -v python3 >/dev/null; then
		skip "several uids on one root daemon" "needs setpriv and python3"
		return
	fi
	# A real user for the third uid where we can make one; the daemon
	# sees only numbers, so a bare uid serves as well.
	local name=pgsvc$$
	if command -v useradd >/dev/null &&
	   useradd --system --no-create-home --user-group --shell /usr/sbin/nologin "$name" 2>/dev/null; then
		user=$name
		U=$(id -u "$name")
		echo "# third uid: user $name, uid $U"
	else
		echo "# third uid: 65533 (no useradd, or it failed): setpriv needs no passwd entry"
	fi
	for who in nob usr; do
		check "$who may run $PGROUP (the build tree is traversable)" \
			as "$who" "$PGROUP" --help >/dev/null
	done

	# The daemon as the unit runs it: root with only the unit's bounding
	# set, no_new_privs, the unit's fd limit and (PrivateNetwork=) a
	# network namespace of its own, where the host lets us make one.
	local caps bset=-all nofile nnp=() netns=()
	caps=$(directive CapabilityBoundingSet)
	for c in $caps; do
		c=${c#CAP_}
		bset+=",+${c,,}"
	done
	nofile=$(directive LimitNOFILE)
	[ "$(directive NoNewPrivileges)" = yes ] && nnp=(--no-new-privs)
	[ "$(directive PrivateNetwork)" = yes ] && unshare --net true 2>/dev/null && netns=(unshare --net)
	echo "# daemon: bounding set $bset, ${nnp[*]:-may gain privileges}, fd limit $nofile, ${netns[*]:-host network}"
	# The socket two directories down: the daemon makes them (0755 as root).
	sock=$dir/run/pgroup/pgroupd.sock
	# Raising the hard limit takes CAP_SYS_RESOURCE, which systemd has and
	# a container may not give us: then the daemon keeps ours.
	local limit=$nofile
	(ulimit -n "$nofile") 2>/dev/null || limit=
	[ -n "$limit" ] || echo "# cannot raise the fd limit to $nofile here (hard limit $(ulimit -Hn)): not checked"
	(if [ -n "$limit" ]; then ulimit -n "$limit"; fi
	 exec "${netns[@]}" setpriv "${nnp[@]}" --inh-caps=-all --bounding-set="$bset" \
		"$PGROUPD" --socket "$sock" --node svc) 2>"$dir/daemon.log" &
	dpid=$!
	for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
	check "the daemon listens" bash -c "[ -S '$sock' ] && kill -0 $dpid"
	sed 's/^/#   /' "$dir/daemon.log"
	echo "# daemon $(grep -h '^Cap\(Eff\|Bnd\)' /proc/$dpid/status 2>/dev/null | tr '\t\n' '  ')"
	[ -n "$limit" ] &&
		check "it runs with the unit's fd limit" grep -q "^pgroupd: fd limit $nofile " "$dir/daemon.log"
	check "the directories it made are 0755, the socket 0777" \
		bash -c "[ \$(stat -c %a '$dir/run') = 755 ] && [ \$(stat -c %a '$dir/run/pgroup') = 755 ] &&
			 [ \$(stat -c %a '$sock') = 777 ]"

	# Every owner creates its groups (small rings: there are many).
	local bad=0
	for g in $ALL; do
		expect_ok "${OWNER[$g]}" create "$g" --mode "${MODE[$g]}" --ring 64k || bad=1
	done
	check "root, nobody and uid $U create groups with modes 0600..0066" [ $bad = 0 ]

	# What each sees in `pgroup groups`, names and modes.
	for who in $IDS; do
		check "$who: groups --json lists exactly ${READ[$who]// /,}" expect_listing "$who" "${READ[$who]}"
	done

	# members (a read): allowed exactly where the mode lets one read, an
	# EACCES line elsewhere; never another group's member list.
	for who in $IDS; do
		bad=0
		for g in $ALL; do
			if in_set "$g" "${READ[$who]}"; then
				expect_ok "$who" members "$g" || bad=1
			else
				expect_eacces "$who" "$g" members "$g" || bad=1
			fi
		done
		check "$who: members allowed exactly on its readable groups, EACCES elsewhere" [ $bad = 0 ]
	done

	# join: refused (EACCES, at once) where one may not read; elsewhere
	# each identity stays joined to each group it may read, all at once.
	declare -gA JOINER=()
	for who in $IDS; do
		bad=0
		for g in $ALL; do
			if in_set "$g" "${READ[$who]}"; then
				identity "$who"
				"${ID[@]}" "$PGROUP" --socket "$sock" join "$g" --monitor \
					>"$dir/join.$who.$g" 2>&1 &
				JOINER[$who.$g]=$!
				pids+=($!)
			else
				expect_eacces "$who" "$g" join "$g" || bad=1
			fi
		done
		check "$who: join refused with EACCES on every group it may not read" [ $bad = 0 ]
	done
	for who in $IDS; do
		bad=0
		for g in ${READ[$who]}; do
			wait_for "$dir/join.$who.$g" "JOINED svc:${JOINER[$who.$g]}\$" || {
				echo "# $who did not join $g: $(head -3 "$dir/join.$who.$g")"
				bad=1
			}
		done
		check "$who: joined every group it may read, all at once" [ $bad = 0 ]
	done
	check "members of r604 lists the joiners of all five identities" \
		bash -c "[ \$('$PGROUP' --socket '$sock' members r604 | wc -l) = 5 ]"

	# send: allowed exactly where the mode lets one write.
	for who in $IDS; do
		bad=0
		for g in $ALL; do
			if in_set "$g" "${WRITE[$who]}"; then
				expect_ok "$who" send "$g" "m-$who" || bad=1
			else
				expect_eacces "$who" "$g" send "$g" "m-$who" || bad=1
			fi
		done
		check "$who: send allowed exactly on its writable groups, EACCES elsewhere" [ $bad = 0 ]
	done
	# Every joiner receives exactly the sends that were allowed, in the
	# order they were made: a refused send leaves nothing in the ring.
	for who in $IDS; do
		bad=0
		for g in ${READ[$who]}; do
			local want="" got f=$dir/join.$who.$g
			for w in $IDS; do in_set "$g" "${WRITE[$w]}" && want+="m-$w "; done
			want=${want% }
			local n
			n=$(wc -w <<<"$want")
			for _ in $(seq 100); do
				[ "$(awk '$2 ~ /^svc:/' "$f" | wc -l)" -ge "$n" ] && break
				sleep 0.05
			done
			sleep 0.05 # and nothing more follows
			got=$(awk '$2 ~ /^svc:/ {print $3}' "$f" | tr '\n' ' ')
			got=${got% }
			[ "$got" = "$want" ] || { echo "# $who in $g received '$got', expected '$want'"; bad=1; }
		done
		check "$who: each of its joiners received exactly the allowed sends, in order" [ $bad = 0 ]
	done

	# The exit watcher watches other uids' processes: a joiner of nobody
	# killed, root's joiner sees it EXITED.
	local victim=${JOINER[nob.n666]}
	{ kill -KILL "$victim"; wait "$victim"; } 2>/dev/null
	local keep=()
	for p in "${pids[@]}"; do [ "$p" = "$victim" ] || keep+=("$p"); done
	pids=("${keep[@]}") # reaped: its pid is not ours any more
	check "nobody's joiner killed: EXITED for it in root's joiner" \
		wait_for "$dir/join.root.n666" "EXITED svc:$victim\$"

	# delete: the owner's uid or root, whatever the mode grants.
	bad=0
	expect_eacces nob u666 delete u666 || bad=1
	expect_eacces nob r666 delete r666 || bad=1
	expect_eacces usr n666 delete n666 || bad=1
	expect_eacces usrg n640 delete n640 || bad=1
	expect_eacces usrp n620 delete n620 || bad=1
	check "delete by a uid that does not own the group: EACCES, even with w" [ $bad = 0 ]
	check "... and every group is still there" expect_listing root "$ALL"
	check "the owner deletes its group" expect_ok nob delete n666
	check "root deletes another uid's group" expect_ok root delete u666
	check "their joiners saw the groups go down" \
		bash -c "grep -q DOWN '$dir/join.root.n666' && grep -q DOWN '$dir/join.usr.u666'"
	check "nob's listing lost exactly those two" \
		expect_listing nob "n600 n604 n620 n640 r604 r666 u602 u604"

	# Stop the joiners, then the daemon, by their pids.
	stop_joiners
	check "every client uid was watched (no 'cannot watch pid')" all_watched
	local rc=0
	kill -TERM "$dpid"
	wait "$dpid" || rc=$?
	dpid=
	check "SIGTERM: the daemon exits 0 and removes its socket" bash -c "[ $rc = 0 ] && [ ! -e '$sock' ]"
	grep -v ' created by pid \| deleted by pid \|cannot watch' "$dir/daemon.log" | sed 's/^/#   /'
}
part2

echo "$fails failed"
[ "$fails" = 0 ] || exit 1
if [ ${#skipped[@]} -gt 0 ]; then
	echo "SKIP (exit 77): ${skipped[*]}; every check that ran passed"
	exit 77
fi
exit 0

#!/bin/sh
# SPDX-License-Identifier: MIT
# Build the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan in
# build-fuzz, and run each for $FUZZ_SECONDS (default 60) from a copy of its
# committed corpus, so the repository is never written to. Prints each
# target's executions; fails on any crash, leak, timeout, out-of-memory or
# sanitizer report. Writes build-fuzz/fuzz-summary.txt ("Ok: N", "Fail: N",
# as meson's test summaries, for .ci/run). Needs scripts/deps.sh's packages.
set -u
cd "$(dirname "$0")/.."
dir=build-fuzz
seconds=${FUZZ_SECONDS:-60}
targets="fuzz_ctl fuzz_ring_read fuzz_wire"
ntargets=$(echo $targets | wc -w)
summary=$dir/fuzz-summary.txt
rm -f "$summary"

fail_all() { # why
	echo "fuzz: $1" >&2
	mkdir -p "$dir"
	printf 'Ok: 0\nFail: %s\n' "$ntargets" >"$summary"
	exit 1
}

if [ ! -f "$dir/build.ninja" ]; then
	# No bpf: the targets do not use the daemon. -Werror as the other
	# builds: clang warns of things gcc does not.
	CC=clang meson setup "$dir" -Dfuzz=true -Dtests=disabled -Dbpf=disabled \
		-Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false >/dev/null ||
		fail_all "meson setup failed (is clang with libclang-rt-14-dev installed?)"
fi
meson compile -C "$dir" >/dev/null || { meson compile -C "$dir"; fail_all "build failed"; }

work=$(mktemp -d) || fail_all "no temporary directory"
trap 'rm -rf "$work"' EXIT
# UBSan reports and goes on by default: make a report a crash libFuzzer sees.
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1
ok=0
bad=0
for t in $targets; do
	# Only this run's findings in the artifacts dir.
	rm -rf "$dir/fuzz-artifacts/$t"
	mkdir -p "$work/$t" "$dir/fuzz-artifacts/$t"
	cp -R "tests/fuzz/corpus/$t" "$work/$t/corpus"
	log=$dir/fuzz-$t.log
	# New inputs go to the temporary copy; a crashing input is kept in
	# the build dir (crash-<sha1>, leak-..., timeout-...) to reproduce:
	# $dir/tests/fuzz/$t <file>.
	"$dir/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$dir/fuzz-artifacts/$t/" \
		"$work/$t/corpus" >"$log" 2>&1
	rc=$?
	# A crash prints the stats twice: the last ones count.
	execs=$(awk '/^stat::number_of_executed_units:/ {n = $2} END {print n}' "$log")
	rate=$(awk '/^stat::average_exec_per_sec:/ {n = $2} END {print n}' "$log")
	# Belt and braces: a sanitizer report that did not stop the run.
	if grep -qE '^(==[0-9]+==ERROR|SUMMARY: [A-Za-z]*Sanitizer)|runtime error:' "$log"; then
		[ "$rc" = 0 ] && rc=1
	fi
	if [ "$rc" = 0 ]; then
		ok=$((ok + 1))
		echo "fuzz $t: OK, ${execs:-?} executions in ${seconds}s (${rate:-?}/s)"
	else
		bad=$((bad + 1))
		echo "fuzz $t: FAILED (exit $rc) after ${execs:-?} executions; log $log," \
			"inputs in $dir/fuzz-artifacts/$t/"
		grep -E 'ERROR|SUMMARY|runtime error|fuzz_[a-z_]+: |^artifact_prefix|Test unit written' \
			"$log" | head -20
	fi
done
printf 'Ok: %s\nFail: %s\n' "$ok" "$bad" >"$summary"
[ "$bad" = 0 ]

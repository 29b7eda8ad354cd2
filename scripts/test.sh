#!/bin/sh
# SPDX-License-Identifier: MIT
# Install, build with -Werror, run the whole suite; then again under
# AddressSanitizer + UndefinedBehaviorSanitizer. Prints each run's counts.
# Last, the libFuzzer targets for $FUZZ_SECONDS each (scripts/fuzz.sh).
set -u
cd "$(dirname "$0")/.."
scripts/deps.sh || exit 1
status=0
run() { # dir, meson options...
	dir=$1
	shift
	if [ ! -d "$dir" ]; then
		meson setup "$dir" -Dtests=enabled -Dtest_hooks=true -Dwerror=true "$@" >/dev/null || return 1
	fi
	meson compile -C "$dir" >/dev/null || { meson compile -C "$dir"; return 1; }
	meson test -C "$dir" --print-errorlogs --num-processes 1 | tee "$dir/test-summary.txt"
	awk '/^(Ok|Fail|Timeout|Unexpected Pass):/ {n[$1] = $NF}
	     END {exit !(n["Ok:"] > 0 && n["Fail:"] + n["Timeout:"] + n["Unexpected"] == 0)}' \
		"$dir/test-summary.txt"
}
run build || status=1
# halt_on_error: a sanitizer report fails the test; the daemon's leaks too.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	run build-asan -Db_sanitize=address,undefined -Db_lundef=false || status=1
scripts/fuzz.sh || status=1
exit $status

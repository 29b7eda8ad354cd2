#!/bin/sh
# SPDX-License-Identifier: MIT
# Install, build, start a node daemon on a private socket, run the local
# fan-out demo, stop the daemon.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
[ -d build ] || meson setup build >/dev/null
meson compile -C build >/dev/null
sock="${TMPDIR:-/tmp}/pgroup-demo-$$.sock"
build/tools/pgroupd --socket "$sock" --node demo 2>"$sock.log" &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null; rm -f "$sock.log"' EXIT
while [ ! -S "$sock" ]; do sleep 0.05; done
build/tools/pgroup --socket "$sock" demo "$@"

#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the peers (ZeroMQ, iceoryx), build, and run pgcompare: the same
# 1 -> N fan-out over AF_UNIX, ZeroMQ, iceoryx and pgroup, side by side.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
for p in libzmq3-dev libiceoryx-binding-c-dev iceoryx; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$p" >/dev/null
done
[ -d build ] || meson setup build >/dev/null
meson setup --reconfigure build >/dev/null
meson compile -C build >/dev/null
exec build/bench/compare/pgcompare "$@"

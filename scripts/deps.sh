#!/bin/sh
# SPDX-License-Identifier: MIT
# Install what pgroup needs to build and test, from Debian's packages only.
set -e
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
# tmux: test_top.sh drives pgroup top in a real terminal.
# libclang-rt-dev: clang's runtimes (libclang_rt.fuzzer, the sanitizers) for
# scripts/fuzz.sh; clang only recommends them. Unversioned, as clang is.
PKGS="meson ninja-build pkg-config gcc liburing-dev libcunit1-dev valgrind gnuplot-nox clang libclang-rt-dev bpftool libbpf-dev libsodium-dev tmux"
missing=
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "installing:$missing"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

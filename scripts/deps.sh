#!/bin/sh
# SPDX-License-Identifier: MIT
# Install what pgroup needs to build and test, from Debian's packages only.
set -e
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
PKGS="meson ninja-build pkg-config gcc liburing-dev libcunit1-dev valgrind gnuplot-nox clang bpftool libbpf-dev"
missing=
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "installing:$missing"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

#!/bin/sh
# tools/dev.sh - set up a fresh Debian machine and build, run or test breaker.
#
#   tools/dev.sh run     install packages, build, run breakerd (foreground, defaults)
#   tools/dev.sh test    install packages, build, run the whole test suite
#   tools/dev.sh asan    same as test, under AddressSanitizer + UBSan
#   tools/dev.sh soak    the long fault runs (ctest -L long)
#   tools/dev.sh deps    install packages only
#   tools/dev.sh build   build only (build/)
#
# Needs root (or sudo) for apt-get only; skips it when everything is present.
set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)

# prometheus: only for promtool, which tests/test_ops.c runs on /metrics and the
# alert rules (Debian ships promtool in the server package).
PACKAGES="build-essential cmake pkg-config liburing-dev libnng-dev libprotobuf-c-dev \
protobuf-c-compiler libcriterion-dev libinih-dev libssl-dev redis-server python3 \
prometheus"

deps() {
	missing=""
	for p in $PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
			missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	SUDO=""
	[ "$(id -u)" -ne 0 ] && SUDO=sudo
	echo "installing:$missing" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
}

build() { # build DIR TYPE
	cmake -S "$ROOT" -B "$1" -DCMAKE_BUILD_TYPE="$2" >/dev/null
	cmake --build "$1" -j "$(nproc)"
}

case "${1:-}" in
deps) deps ;;
build) deps; build build RelWithDebInfo ;;
run)
	deps
	build build RelWithDebInfo
	shift
	exec ./build/breaker/breakerd "$@"
	;;
test)
	deps
	build build RelWithDebInfo
	cd build && ctest --output-on-failure -LE long
	;;
soak)
	deps
	build build RelWithDebInfo
	cd build && ctest --output-on-failure -L long
	;;
asan)
	deps
	build build-asan asan
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -LE long
	;;
*)
	sed -n '2,13p' "$0"
	exit 2
	;;
esac

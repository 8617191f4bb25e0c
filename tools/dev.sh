#!/bin/sh
# tools/dev.sh - set up a fresh Debian machine and build, run or test breaker.
#
#   tools/dev.sh run     install packages, build, run breakerd (foreground, defaults)
#   tools/dev.sh test    install packages, build, run the whole test suite
#   tools/dev.sh asan    same as test, under AddressSanitizer + UBSan
#   tools/dev.sh tsan    ThreadSanitizer on breakerd, the CLI and engine threads
#   tools/dev.sh soak    the long fault runs (ctest -L long)
#   tools/dev.sh fuzz    libFuzzer targets, short run (tools/fuzz.sh short|long)
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
# clang + libclang-rt-14-dev: the libFuzzer targets (tools/fuzz.sh, BK_FUZZ=ON).
PACKAGES="$PACKAGES clang libclang-rt-14-dev"
# clang-format: tools/format-check.sh (CI runs it first).
PACKAGES="$PACKAGES clang-format"
# chromium: the status page test loads / in a real headless browser;
# prometheus-alertmanager: amtool checks tools/prometheus/alertmanager.yml.
PACKAGES="$PACKAGES chromium prometheus-alertmanager"
# etcd (server and etcdctl): tests/test_firm.c runs a real 3-member cluster;
# libcurl + cJSON: breakerd's client of etcd's JSON gateway ([cluster]).
PACKAGES="$PACKAGES etcd-server etcd-client libcurl4-openssl-dev libcjson-dev"
# nftables + iproute2: tests/test_netns.c cuts links between network
# namespaces (ip netns, veth, bridge) with nft rules (partition scenarios).
PACKAGES="$PACKAGES nftables iproute2"
# openssl: the tests' throwaway PKIs (bk_pki_make: TLS roles, etcd client certs).
PACKAGES="$PACKAGES openssl"
# mandoc: the man_lint test (mandoc -Tlint on man/). dpkg-dev, adduser: the
# package_install test (cpack's dpkg-shlibdeps; the package's postinst).
# openjdk-17-jdk-headless: the Java client (clients/java, javac from CMake).
PACKAGES="$PACKAGES mandoc dpkg-dev adduser openjdk-17-jdk-headless"
# rustc + cargo: Debian's 1.63, which the Rust client must build with (ctest
# rust_debian_toolchain), whatever newer toolchain is first on PATH.
PACKAGES="$PACKAGES rustc cargo"

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

build() { # build DIR TYPE (warnings are errors, whatever an old cache says)
	cmake -S "$ROOT" -B "$1" -DCMAKE_BUILD_TYPE="$2" -DBK_WERROR=ON >/dev/null
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
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 \
		LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp" \
		ctest --output-on-failure -LE long
	;;
fuzz)
	shift
	[ $# -eq 0 ] && set -- short
	exec "$ROOT/tools/fuzz.sh" "$@"
	;;
tsan)
	# Criterion cannot run under TSan (its arena vs TSan's memory layout): the
	# Criterion suites that drive nng's threads (commands, /metrics, the CLI,
	# faults) run from build/ against build-tsan's breakerd and CLI; the plain-C
	# engine-threads test runs instrumented. Reports go to files: any fails.
	deps
	build build RelWithDebInfo
	build build-tsan tsan
	out="$ROOT/build-tsan/tsan-reports"
	rm -rf "$out" && mkdir -p "$out"
	export TSAN_OPTIONS="suppressions=$ROOT/tests/tsan.supp log_path=$out/tsan second_deadlock_stack=1 history_size=7"
	export BREAKERD="$ROOT/build-tsan/breaker/breakerd" BREAKER_CLI="$ROOT/build-tsan/tools/breaker"
	rc=0
	"$ROOT/build-tsan/tests/test_threads" || rc=1
	for t in daemon ops cli faults; do
		"$ROOT/build/tests/test_$t" --jobs 2 || rc=1
	done
	if ls "$out"/tsan.* >/dev/null 2>&1; then
		cat "$out"/tsan.*
		echo "tsan: ThreadSanitizer reports above ($out)" >&2
		rc=1
	fi
	exit $rc
	;;
*)
	sed -n '2,/^# Needs root/p' "$0"
	exit 2
	;;
esac

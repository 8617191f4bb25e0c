#!/bin/sh
# tools/fuzz.sh - build and run the libFuzzer targets (tests/fuzz, docs/fuzzing.md).
#
#   tools/fuzz.sh short [SECONDS]   each target for SECONDS (default 40) on the seed
#                                   corpus; exits non-zero on any crash (CI)
#   tools/fuzz.sh long [RUNS]       each target for RUNS executions (default 10000000)
#   tools/fuzz.sh run TARGET ARGS   one target with libFuzzer's own ARGS
#   tools/fuzz.sh build             configure and build build-fuzz only
#
# Targets: cmd config audit tel (FUZZ_TARGETS="cmd audit" picks some).
# Builds build-fuzz with clang (BK_FUZZ=ON). New inputs a run finds go to
# build-fuzz/corpus/<target> (the checked-in seeds stay untouched); crashes go
# to build-fuzz/crashes/<target>/ and are printed with the command to replay them.
set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${BK_FUZZ_BUILD:-$ROOT/build-fuzz}
TARGETS=${FUZZ_TARGETS:-cmd config audit tel}
# ASan/UBSan stop at the first error; leaks are errors too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Scratch space for this run only (other runs may be going on): a crashed
# target leaves its files there, its atexit never ran.
SCRATCH=$(mktemp -d /dev/shm/bkfuzz-run.XXXXXX 2>/dev/null || mktemp -d)
export BK_FUZZ_TMP="$SCRATCH"

# Remove this run's scratch, and the shm segments of fuzz targets that died.
cleanup() {
	rm -rf "$SCRATCH"
	for f in /dev/shm/breaker.fuzzcmd-* /dev/shm/breaker.fuzztel-*; do
		[ -e "$f" ] || continue
		pid=$(echo "$f" | sed 's/.*-\([0-9][0-9]*\).*/\1/')
		kill -0 "$pid" 2>/dev/null || rm -f "$f"
	done
}
trap cleanup EXIT

build() {
	"$ROOT/tools/dev.sh" deps
	if ! command -v clang >/dev/null 2>&1; then
		echo "fuzz.sh: clang is missing (tools/dev.sh deps installs it)" >&2
		exit 1
	fi
	CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -DBK_FUZZ=ON -DBK_WERROR=ON \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	if ! cmake --build "$BUILD" -j "$(nproc)" --target fuzz_cmd fuzz_config \
		fuzz_audit fuzz_tel >"$BUILD/fuzz-build.log" 2>&1; then
		cat "$BUILD/fuzz-build.log" >&2
		exit 1
	fi
}

# run TARGET LIBFUZZER-ARGS...: one target on its seeds plus what earlier runs found.
run() {
	t=$1
	shift
	corpus=$BUILD/corpus/$t
	crashes=$BUILD/crashes/$t
	mkdir -p "$corpus" "$crashes"
	log=$BUILD/fuzz-$t.log
	start=$(date +%s)
	# -timeout: one input over 10 s is a hang; -rss_limit_mb: fuzz_cmd boots a daemon.
	if "$BUILD/tests/fuzz/fuzz_$t" -artifact_prefix="$crashes/" -timeout=10 \
		-rss_limit_mb=4096 -print_final_stats=1 "$@" \
		"$corpus" "$ROOT/tests/fuzz/corpus/$t" >"$log" 2>&1; then
		rc=0
	else
		rc=$?
	fi
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	printf 'fuzz_%-7s %10s execs %7s exec/s %5ss  %s\n' "$t" "${execs:-?}" \
		"${rate:-?}" "$(($(date +%s) - start))" "$([ $rc -eq 0 ] && echo ok || echo FAILED)"
	if [ $rc -ne 0 ]; then
		grep -E "ERROR|INVARIANT|runtime error|SUMMARY" "$log" | head -20 >&2 || true
		for f in "$crashes"/*; do
			[ -e "$f" ] && echo "  replay: $BUILD/tests/fuzz/fuzz_$t $f" >&2
		done
		echo "  full log: $log" >&2
	fi
	return $rc
}

all() { # LIBFUZZER-ARGS...
	passed=0
	failed=0
	for t in $TARGETS; do
		if run "$t" "$@"; then
			passed=$((passed + 1))
		else
			failed=$((failed + 1))
		fi
	done
	cleanup
	echo "fuzz: $passed passed, $failed failed"
	[ $failed -eq 0 ]
}

case "${1:-}" in
build) build ;;
short)
	build
	all -max_total_time="${2:-40}"
	;;
long)
	build
	all -runs="${2:-10000000}"
	;;
run)
	[ $# -ge 2 ] || { sed -n '2,13p' "$0"; exit 2; }
	build
	t=$2
	shift 2
	run "$t" "$@"
	;;
*)
	sed -n '2,13p' "$0"
	exit 2
	;;
esac

#!/bin/sh
# bench/clients/run.sh - an engine's check() cost in C, Java and Rust, side by
# side, against one real breakerd (docs/clients.md). breakerd on CPU 0, the
# check loops on CPU 1, one after the other. Writes bench/results/clients-check.md.
#
#   bench/clients/run.sh            (BUILD_DIR, default build/, built with the
#                                    Java and Rust clients)
set -eu
cd "$(dirname "$0")/../.."
root=$(pwd)
build=${BUILD_DIR:-$root/build}
tmp=$(mktemp -d /tmp/bk-bench-clients.XXXXXX)
inst="benchclients-$$"
out="$root/bench/results/clients-check.md"
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$tmp" /dev/shm/breaker.$inst /dev/shm/breaker.$inst.tel' EXIT
printf '[breaker]\ninstance = %s\nrun_dir = %s/run\nstate_dir = %s/state\n[strategies]\nnames = bench\n' \
	"$inst" "$tmp" "$tmp" >"$tmp/breaker.ini"
BREAKER_CONFIG= taskset -c 0 "$build/breaker/breakerd" --config "$tmp/breaker.ini" --log-file "$tmp/log" &
pid=$!
i=0
until BREAKER_CONFIG= "$build/tools/breaker" --config "$tmp/breaker.ini" status >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 100 ] || { echo "breakerd did not start" >&2; exit 1; }
	sleep 0.1
done
cc -O2 -std=c11 -I"$root/clients/c" "$root/bench/clients/check_c.c" -o "$tmp/check_c" -lrt
javac -d "$tmp" -cp "$build/clients/java/breaker-client.jar" "$root/bench/clients/BenchCheck.java"
{
	taskset -c 1 "$tmp/check_c" "$inst" bench
	taskset -c 1 java -cp "$build/clients/java/breaker-client.jar:$tmp" BenchCheck "$inst" bench
	taskset -c 1 "$build/clients/rust/target/release/breaker-bench-check" "$inst" bench
} >"$tmp/raw"
cat "$tmp/raw"
{
	echo "# check() per call: C, Java, Rust ($(date -u +%Y-%m-%dT%H:%MZ))"
	echo
	echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(uname -r);"
	echo "$(java -version 2>&1 | head -1); $(rustc --version 2>/dev/null || echo rustc ?)."
	echo "batches of 1000 calls, one clock read per batch, 20000 batches after a warm-up."
	echo "check_live is given the batch's clock reading (an engine that reads the clock once per event)."
	echo
	echo "| client | call | p50 ns | p99 ns |"
	echo "|---|---|---|---|"
	awk '{printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4}' "$tmp/raw"
} >"$out"
echo "wrote $out"

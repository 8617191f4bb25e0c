#!/bin/sh
# docs/clients.md promises that clients/c/breaker_client.h compiles with
#   gcc -std=c11 -Wall -Wextra -Werror   and   g++ -std=c++17 -Wall -Wextra -Werror
# with no feature macros of the engine's own. Compile (and link) a small engine
# exactly that way, with the header first and after a libc header, and the
# example engine_loop.c as C and as C++. usage: client_compile.sh SRC_DIR OUT_DIR
set -eu
src=$1
out=$2
CC=${CC:-gcc}
CXX=${CXX:-g++}
mkdir -p "$out"
inc="-I$src/clients/c"
min="$src/tests/client_compile/engine_min.c"
loop="$src/clients/examples/engine_loop.c"
fail=0
run() {
	echo "+ $*"
	if ! "$@"; then
		echo "FAILED: $*"
		fail=1
	fi
}
run $CC -std=c11 -Wall -Wextra -Werror $inc "$min" -o "$out/engine_min_c11" -lrt
run $CC -std=c11 -Wall -Wextra -Werror -DSYSTEM_HEADERS_FIRST $inc "$min" -o "$out/engine_min_c11_late" -lrt
run $CXX -std=c++17 -Wall -Wextra -Werror -x c++ $inc "$min" -o "$out/engine_min_cxx17" -lrt
run $CXX -std=c++17 -Wall -Wextra -Werror -x c++ -DSYSTEM_HEADERS_FIRST $inc "$min" -o "$out/engine_min_cxx17_late" -lrt
run $CC -std=c11 -Wall -Wextra -Werror $inc "$loop" -o "$out/engine_loop_c11" -lrt
run $CXX -std=c++17 -Wall -Wextra -Werror -x c++ $inc "$loop" -o "$out/engine_loop_cxx17" -lrt
# what they do with no daemon: refuse to start, saying why (not crash)
if "$out/engine_min_c11" "no-such-instance-$$" >/dev/null 2>&1; then
	echo "FAILED: engine_min attached to an instance that does not exist"
	fail=1
fi
[ $fail -eq 0 ] && echo "all compiled"
exit $fail

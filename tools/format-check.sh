#!/bin/sh
# tools/format-check.sh - fail if a tracked C/C++ source is not formatted by the
# checked-in .clang-format (CI runs this first; fix with clang-format -i FILE).
# Generated code (build*/gen/*.pb-c.[ch]) is not tracked, so it is not checked;
# tests/fuzz/corpus holds inputs, not sources.
set -eu

cd "$(dirname "$0")/.."
CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
if ! command -v "$CLANG_FORMAT" >/dev/null 2>&1; then
	echo "format-check: $CLANG_FORMAT is missing (apt-get install clang-format)" >&2
	exit 1
fi
files=$(git ls-files '*.c' '*.h' '*.cpp' | grep -v -e '\.pb-c\.[ch]$' -e '^tests/fuzz/corpus/' || true)
bad=0
for f in $files; do
	if ! "$CLANG_FORMAT" --dry-run -Werror "$f" >/dev/null 2>&1; then
		echo "format-check: $f is not formatted (clang-format -i $f)" >&2
		bad=$((bad + 1))
	fi
done
n=$(echo "$files" | wc -w)
if [ $bad -ne 0 ]; then
	echo "format-check: $bad of $n files need clang-format" >&2
	exit 1
fi
echo "format-check: $n files formatted"

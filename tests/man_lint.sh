#!/bin/sh
# The manual pages (man/) lint clean with mandoc -Tlint (any message fails,
# style ones too; only notes about this machine's mandoc.db are ignored), and
# breaker(1) names every command `breaker --help` lists.
# usage: man_lint.sh SRC_DIR BREAKER_CLI
set -u
src=$1
cli=$2
fail=0
command -v mandoc >/dev/null || {
	echo "FAIL: mandoc not installed (tools/dev.sh deps installs it)"
	exit 1
}
for page in "$src"/man/breaker.1 "$src"/man/breakerd.8 "$src"/man/breaker.ini.5 \
	"$src"/man/breaker_client.3; do
	[ -s "$page" ] || {
		echo "FAIL: $page missing or empty"
		fail=1
		continue
	}
	# from man/: mandoc finds the pages' cross-references (Xr) beside them
	out=$(cd "$src/man" && mandoc -Tlint "$(basename "$page")" 2>&1 | grep -v 'mandoc\.db')
	if [ -n "$out" ]; then
		echo "$out"
		echo "FAIL: mandoc -Tlint $page"
		fail=1
	else
		echo "ok: $page"
	fi
done
cmds=$("$cli" --help 2>&1 | sed -n '/^commands:/,/^$/p' | awk 'NR > 1 && NF {print $1}')
[ -n "$cmds" ] || {
	echo "FAIL: no commands in breaker --help"
	fail=1
}
for c in $cmds; do
	grep -q "^\.It Cm $c\( \|$\)" "$src/man/breaker.1" || {
		echo "FAIL: breaker(1) does not document '$c'"
		fail=1
	}
done
exit $fail

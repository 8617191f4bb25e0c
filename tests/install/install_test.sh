#!/bin/sh
# The Debian packages, installed on this machine as an operator would
# (docs/install.md): build them with cpack, dpkg -i, check the user, group,
# directories and conffile, check the unit, start breakerd as the unit would
# (user breaker, umask 0027, --check-config first), trip and resume through
# the installed CLI, compile an engine with `pkg-config --cflags
# breaker-client` and run it (and the installed Python client) as another
# user, purge, and check that only the audit log is left.
#
# usage: install_test.sh BUILD_DIR. Needs root and dpkg. Other tests may run
# at the same time: they set BREAKER_CONFIG= (the installed
# /etc/breaker/breaker.ini is not theirs), this one uses its own instance,
# and whatever /etc/breaker, /run/breaker and /var/lib/breaker held before
# is moved aside and put back at the end.
set -u
build=$(cd "$1" && pwd)
inst="pkgtest-$$"
tmp=$(mktemp -d /tmp/bk-install.XXXXXX)
saved="$tmp/saved"
mkdir -p "$saved"
chmod 0755 "$tmp"
fail=0
daemon_pid=""
unset BREAKER_CONFIG BREAKER_DAEMON_UID

say() { echo "install_test: $*"; }
bad() {
	echo "FAIL: $*"
	fail=1
}
must() { # must CMD...: run, show, and fail the test if it fails
	echo "+ $*"
	"$@" || {
		bad "$* (exit $?)"
		return 1
	}
}

# dpkg refuses at once while another dpkg/apt holds its lock: wait (bounded).
dpkg_locked() { # dpkg_locked ARGS...
	deadline=$(($(date +%s) + 600))
	while :; do
		out=$(dpkg "$@" 2>&1)
		rc=$?
		echo "$out"
		case "$out" in
		*"lock"*) [ "$(date +%s)" -lt "$deadline" ] && {
			sleep 2
			continue
		} ;;
		esac
		return $rc
	done
}

move_aside() {
	for d in /etc/breaker /run/breaker /var/lib/breaker; do
		[ -e "$d" ] && mv "$d" "$saved/$(echo "$d" | tr / _)"
	done
}
put_back() {
	for d in /etc/breaker /run/breaker /var/lib/breaker; do
		s="$saved/$(echo "$d" | tr / _)"
		[ -e "$s" ] || continue
		rm -rf "$d"
		mv "$s" "$d"
	done
}
cleanup() {
	if [ -n "$daemon_pid" ]; then
		kill "$daemon_pid" 2>/dev/null
		wait "$daemon_pid"
	fi
	# installed, or removed with its configuration left: purge (stopped halfway)
	case "$(dpkg-query -W -f='${Status}' breaker 2>/dev/null)" in
	*" installed" | *config-files*)
		dpkg_locked --purge python3-breaker breaker-dev breaker >/dev/null
		;;
	esac
	rm -rf /var/lib/breaker /etc/breaker /run/breaker
	rm -f "/dev/shm/breaker.$inst" "/dev/shm/breaker.$inst.tel"
	if [ "$created_user" = 1 ]; then
		deluser --system --quiet breaker >/dev/null 2>&1
		delgroup --system --quiet breaker >/dev/null 2>&1
	fi
	put_back
	rm -rf "$tmp"
}
created_user=0
getent passwd breaker >/dev/null || created_user=1
[ "$(id -u)" -eq 0 ] || {
	echo "FAIL: needs root (dpkg -i)"
	exit 1
}
command -v dpkg >/dev/null || {
	echo "FAIL: needs dpkg"
	exit 1
}
if dpkg-query -W -f='${Status}' breaker 2>/dev/null | grep -q "ok installed"; then
	echo "FAIL: a breaker package is installed already: not touching it"
	exit 1
fi
trap cleanup EXIT
trap 'exit 1' INT TERM
move_aside

say "1. packages"
must cpack --config "$build/CPackConfig.cmake" -G DEB -B "$tmp/pkg" >"$tmp/cpack.log" 2>&1 ||
	cat "$tmp/cpack.log"
for p in breaker_ breaker-dev_ python3-breaker_; do
	ls "$tmp/pkg/$p"*.deb >/dev/null 2>&1 || bad "no $p*.deb built"
done
for p in "$tmp"/pkg/*.deb; do
	echo "== $(basename "$p")"
	dpkg-deb -c "$p" | awk '$1 !~ /^d/ {print "   " $6}'
done
[ $fail -eq 0 ] || exit 1

say "2. dpkg -i"
must dpkg_locked -i "$tmp"/pkg/*.deb || exit 1
getent passwd breaker >/dev/null || bad "no user breaker"
getent group breaker >/dev/null || bad "no group breaker"
uid=$(id -u breaker)
[ "$uid" -lt 1000 ] || bad "breaker is not a system user (uid $uid)"
check_dir() { # check_dir PATH OWNER:GROUP MODE
	got=$(stat -c '%U:%G %a' "$1" 2>&1)
	[ "$got" = "$2 $3" ] || bad "$1: want $2 $3, got $got"
}
check_dir /run/breaker breaker:breaker 750
check_dir /var/lib/breaker root:root 755
check_dir /var/lib/breaker/default breaker:breaker 750
check_dir /etc/breaker/breaker.ini root:root 644
grep -q '/etc/breaker/breaker.ini' /var/lib/dpkg/info/breaker.conffiles ||
	bad "breaker.ini is not a conffile"
for f in /usr/sbin/breakerd /usr/bin/breaker /usr/include/breaker_client.h \
	/usr/lib/pkgconfig/breaker-client.pc /usr/lib/systemd/system/breakerd.service \
	/usr/share/breaker/prometheus/breaker-alerts.yml /usr/share/man/man1/breaker.1.gz \
	/usr/share/man/man8/breakerd.8.gz /usr/share/man/man5/breaker.ini.5.gz \
	/usr/share/man/man3/breaker_client.3.gz /usr/share/doc/breaker/runbook.md \
	/usr/lib/python3/dist-packages/breaker_client/client.py; do
	[ -e "$f" ] || [ -e "${f%.gz}" ] || bad "not installed: $f"
done

say "3. the unit"
if command -v systemd-analyze >/dev/null; then
	# verify loads the unit and checks that its Exec* binaries exist (exit 1 if not)
	must systemd-analyze verify /usr/lib/systemd/system/breakerd.service
fi
unit_exec=$(sed -n 's/^ExecStart=\([^ ]*\) .*/\1/p' /usr/lib/systemd/system/breakerd.service)
[ "$unit_exec" = /usr/sbin/breakerd ] || bad "ExecStart is '$unit_exec'"

say "4. breakerd as the unit runs it (user breaker, UMask=0027, ExecStartPre)"
# with nothing named, breakerd reads the installed file (the CLI below does too)
out=$(setpriv --reuid breaker --regid breaker --clear-groups /usr/sbin/breakerd --check-config 2>&1)
echo "$out"
echo "$out" | grep -q "config file: /etc/breaker/breaker.ini (the default path)" ||
	bad "breakerd does not read /etc/breaker/breaker.ini by default"
as_breaker() { setpriv --reuid breaker --regid breaker --clear-groups "$@"; }
must as_breaker sh -c 'umask 0027; exec /usr/sbin/breakerd --check-config --config /etc/breaker/breaker.ini' ||
	exit 1
# not through the function: $! must be breakerd itself (setpriv and sh exec)
setpriv --reuid breaker --regid breaker --clear-groups \
	sh -c "umask 0027; exec /usr/sbin/breakerd --config /etc/breaker/breaker.ini --instance $inst" \
	>"$tmp/breakerd.log" 2>&1 &
daemon_pid=$!
cli() { /usr/bin/breaker --instance "$inst" --timeout 3000 "$@"; }
deadline=$(($(date +%s) + 60))
until cli status >/dev/null 2>&1; do
	if [ "$(date +%s)" -ge "$deadline" ] || ! kill -0 "$daemon_pid" 2>/dev/null; then
		cat "$tmp/breakerd.log"
		bad "breakerd did not answer status within 60 s"
		exit 1
	fi
	sleep 0.2
done
owner=$(stat -c %U "/dev/shm/breaker.$inst")
[ "$owner" = breaker ] || bad "segment owned by $owner"
[ -S "/run/breaker/$inst.sock" ] || bad "no socket /run/breaker/$inst.sock"

say "5. an engine built with pkg-config, as another user"
cat >"$tmp/engine.c" <<'ENGINE'
#include <breaker_client.h>
int main(int argc, char **argv)
{
	struct bk_client c;
	int rv = bk_client_attach(&c, argv[1]);

	(void)argc;
	if (rv < 0) {
		printf("attach: %s\n", strerror(-rv));
		return 1;
	}
	printf("%s\n", bk_mode_str(bk_check_live(&c, -1, bk_now_mono_ns(), 0)));
	return 0;
}
ENGINE
cflags=$(pkg-config --cflags breaker-client) || bad "pkg-config --cflags breaker-client failed"
libs=$(pkg-config --libs breaker-client)
echo "pkg-config: cflags '$cflags' libs '$libs'"
must cc -std=c11 -Wall -Wextra -Werror $cflags "$tmp/engine.c" -o "$tmp/engine" $libs
chmod 0755 "$tmp/engine"
engine() { setpriv --reuid 65534 --regid 65534 --clear-groups "$tmp/engine" "$inst"; }
pyengine() {
	setpriv --reuid 65534 --regid 65534 --clear-groups env -u PYTHONPATH python3 -c "
import sys, breaker_client as b
c = b.attach(sys.argv[1])
print(c.check_live().name)" "$inst"
}
expect() { # expect WHAT WANT GOT
	[ "$3" = "$2" ] && say "$1: $3" || bad "$1: want $2, got '$3'"
}
expect "engine before the trip" ACTIVE "$(engine 2>&1)"
expect "python engine before the trip" ACTIVE "$(pyengine 2>&1)"

say "6. trip and staged resume through the installed CLI"
must cli trip manual_halt --reason "install test"
expect "engine after the trip" HALTED "$(engine 2>&1)"
expect "python engine after the trip" HALTED "$(pyengine 2>&1)"
must cli resume --reason "stage 1"
expect "engine after resume 1" REDUCE_ONLY "$(engine 2>&1)"
must cli resume --reason "stage 2"
must cli resume --reason "stage 3"
expect "engine after resume 3" ACTIVE "$(engine 2>&1)"
must cli audit --verify >/dev/null

say "7. stop, remove, purge"
kill -TERM "$daemon_pid"
wait "$daemon_pid"
daemon_pid=""
expect "engine after a clean stop" HALTED "$(engine 2>&1)"
# remove first: the configuration, the state and the user stay
must dpkg_locked -r python3-breaker breaker-dev breaker >/dev/null
[ -e /usr/sbin/breakerd ] && bad "breakerd still there after dpkg -r"
[ -f /etc/breaker/breaker.ini ] || bad "dpkg -r removed the conffile"
[ -s /var/lib/breaker/default/audit.log ] || bad "dpkg -r removed the audit log"
getent passwd breaker >/dev/null || bad "dpkg -r removed the user"
dpkg_locked --purge python3-breaker breaker-dev breaker >"$tmp/purge.log" 2>&1 ||
	bad "dpkg --purge failed"
cat "$tmp/purge.log"
grep -q "kept the audit logs in /var/lib/breaker" "$tmp/purge.log" ||
	bad "purge did not say it kept the audit logs"

say "8. leftovers: only the audit log"
for f in /etc/breaker /run/breaker /usr/sbin/breakerd /usr/bin/breaker \
	/usr/include/breaker_client.h /usr/lib/pkgconfig/breaker-client.pc \
	/usr/lib/systemd/system/breakerd.service /usr/lib/python3/dist-packages/breaker_client \
	/usr/share/doc/breaker /usr/share/breaker "/dev/shm/breaker.$inst" "/dev/shm/breaker.$inst.tel"; do
	[ -e "$f" ] && bad "left behind: $f"
done
left=$(find /var/lib/breaker -mindepth 1 ! -type d ! -name 'audit.log*')
[ -z "$left" ] || bad "left behind in /var/lib/breaker: $left"
[ -s /var/lib/breaker/default/audit.log ] || bad "the audit log is gone"
find /var/lib/breaker -mindepth 1 | sed 's/^/   kept: /'
getent passwd breaker >/dev/null || bad "user breaker deleted while it owns the audit log"
dpkg-query -W breaker >/dev/null 2>&1 && bad "breaker still known to dpkg"

[ $fail -eq 0 ] && say "all passed"
exit $fail

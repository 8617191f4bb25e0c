#!/bin/sh
# tests/alerting/check.sh SRC_DIR - the alerting side of the incident process
# (docs/incidents.md): Alertmanager's routing example checked by amtool, every
# severity routed where the severity table says, and the alert rules' labels
# aligned with it (SEV-N goes with PN, and every level is used). promtool
# checks the rules themselves (tests/test_ops.c).
set -eu
SRC=${1:?usage: check.sh SRC_DIR}
AM="$SRC/tools/prometheus/alertmanager.yml"
RULES="$SRC/tools/prometheus/breaker-alerts.yml"
fail() { echo "FAIL: $*" >&2; exit 1; }

amtool check-config "$AM" >&2 || fail "amtool check-config $AM"

route() { # labels... -> the receivers amtool resolves them to
	amtool config routes test --config.file="$AM" "$@" 2>/dev/null
}
want() { # expected-receiver labels...
	exp=$1
	shift
	got=$(route "$@")
	[ "$got" = "$exp" ] || fail "labels $* route to '$got', not '$exp'"
	echo "ok: $* -> $got" >&2
}
want page-now alertname=BreakerGlobalTripped severity=SEV-1 priority=P1 instance=a
want page-now alertname=BreakerDown severity=SEV-1 priority=P1
want page-now priority=P1
want page-now severity=SEV-1
want page-30m alertname=BreakerHighRejectRate severity=SEV-2 priority=P2
want page-30m priority=P2
want ticket alertname=BreakerRuleNearLimit severity=SEV-3 priority=P3
want info alertname=BreakerRuleWarning severity=SEV-4 priority=P4
# anything unlabelled must still reach a person, never vanish
want ticket alertname=Unknown

# every severity label has its priority twin, and the levels are all used
awk '
/severity:/ { sev = $2; next }
/priority:/ { if (sev == "") { print "priority without severity at line " NR; bad = 1 }
	      else if (substr(sev, 5) != substr($2, 2)) { print "line " NR ": " sev " with " $2; bad = 1 }
	      used[$2] = 1; sev = ""; next }
END { for (p = 1; p <= 4; p++) if (!used["P" p]) { print "no alert is P" p; bad = 1 }
      exit bad }' "$RULES" >&2 || fail "severity and priority labels in $RULES"
echo "alerting: routing and labels OK" >&2

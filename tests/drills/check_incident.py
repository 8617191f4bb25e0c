#!/usr/bin/env python3
"""Hold `breaker incident export --format json` against what a drill injected.

usage: check_incident.py EXPORT.json [--trips SCOPE:REASON[:RULE],...]
         [--fault-ns NS] [--detect-within-ms MS] [--basis heartbeat|window|tick]
         [--started-tol-ms MS] [--resolved] [--stages SCOPE:M>M>M>M ...]
         [--reconciliations N] [--no-forced]

Prints the figures it measured (the drill's stderr keeps them) and exits 1,
saying what differs, on the first mismatch.
"""
import argparse
import json
import sys


def fail(msg):
    print("MISMATCH: " + msg)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export")
    ap.add_argument("--trips", default=None)
    ap.add_argument("--fault-ns", type=int, default=None)
    ap.add_argument("--detect-within-ms", type=float, default=None)
    ap.add_argument("--basis", default=None)
    ap.add_argument("--started-tol-ms", type=float, default=None)
    ap.add_argument("--resolved", action="store_true")
    ap.add_argument("--stages", action="append", default=[])
    ap.add_argument("--reconciliations", type=int, default=None)
    ap.add_argument("--no-forced", action="store_true")
    a = ap.parse_args()

    r = json.load(open(a.export))
    f, s, tl = r["figures"], r["summary"], r["timeline"]
    recs = [e["record"] for e in tl]
    trips = [x for x in recs if x["kind"] == "TRIP"]
    got = sorted("%s:%s%s" % (x.get("strategy", "global"), x["reason_code"],
                              ":" + x["rule"] if "rule" in x else "")
                 for x in trips)
    print("drill: trips %s; summary %s" % (got, {k: s[k] for k in (
        "trips", "rule_trips", "operator_trips", "resumes", "forced_resumes",
        "reconciliations", "daemon_starts", "resolved", "still_held")}))
    if a.trips is not None:
        want = sorted(t for t in a.trips.split(",") if t)
        if got != want:
            fail("trips %s, the drill injected %s (nothing else may trip)" % (got, want))
    if a.fault_ns is not None:
        first = trips[0]["wall_ns"] if trips else None
        if first is None:
            fail("no trip at all")
        lat = (first - a.fault_ns) / 1e6
        print("drill: first trip %.3f ms after the injected fault (bound %s ms)"
              % (lat, a.detect_within_ms))
        if f.get("first_trip_ns") != first:
            fail("figures.first_trip_ns %s is not the first TRIP record's time %s"
                 % (f.get("first_trip_ns"), first))
        if lat < 0:
            fail("the trip (%d) is before the fault (%d)" % (first, a.fault_ns))
        if a.detect_within_ms is not None and lat > a.detect_within_ms:
            fail("tripped %.3f ms after the fault: bound %.0f ms" % (lat, a.detect_within_ms))
        if a.basis:
            if f.get("time_to_detect_basis") != a.basis:
                fail("time_to_detect_basis %s, not %s" % (f.get("time_to_detect_basis"), a.basis))
            started = f["started_ns"]
            err = (started - a.fault_ns) / 1e6
            print("drill: export says the incident started %+.3f ms from the injected "
                  "fault (basis %s, time to detect %.3f ms)"
                  % (err, a.basis, f["time_to_detect_ns"] / 1e6))
            tol = a.started_tol_ms if a.started_tol_ms is not None else 1.0
            if a.basis == "window":
                # an upper bound on the time to detect: started is no later than the fault
                if err > tol:
                    fail("started %+.3f ms after the fault: the window bound must cover it" % err)
            elif abs(err) > tol:
                fail("started %+.3f ms from the injected fault: tolerance %.3f ms" % (err, tol))
    if a.resolved and not s["resolved"]:
        fail("not resolved: %d scopes still held" % s["still_held"])
    for st in a.stages:
        scope, modes = st.split(":")
        modes = modes.split(">")
        want = list(zip(modes, modes[1:]))
        res = [(x["from_mode"], x["to_mode"]) for x in recs if x["kind"] == "RESUME"
               and x.get("strategy", "global") == scope]
        if res != want:
            fail("resumes of %s: %s, not the staged %s" % (scope, res, want))
    if a.reconciliations is not None and s["reconciliations"] < a.reconciliations:
        fail("%d reconciliations, at least %d posted" % (s["reconciliations"], a.reconciliations))
    if a.no_forced and s["forced_resumes"]:
        fail("%d forced resumes" % s["forced_resumes"])
    print("drill: incident export matches")


if __name__ == "__main__":
    main()

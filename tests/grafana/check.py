#!/usr/bin/env python3
"""Check tools/grafana/breaker.json against a real Prometheus scraping a real
breakerd (tests/test_incidents.c starts the daemon). Grafana itself is not
packaged for Debian: this validates the JSON's structure and every panel's
PromQL, not the rendering.

usage: check.py DASHBOARD.json METRICS_PORT WORKDIR

- structure: title, uid, schemaVersion, unique panel ids, a gridPos, a known
  panel type, a description, targets each with a refId and an expr, the
  datasource and instance variables;
- every metric a query names is one breakerd exports (its # TYPE lines);
- every query, with Grafana's variables put in, is accepted by Prometheus and
  (but for the few listed in MAY_BE_EMPTY) returns data once scraped.
Exit 0 or 1 with what is wrong on stderr.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

TYPES = {"timeseries", "stat", "gauge", "table", "bargauge", "state-timeline", "text"}
# limit rules' utilisation exists only for strategies with a limit rule and
# telemetry; the test's daemon has none
MAY_BE_EMPTY = ("breaker_rule_utilisation_ratio",)
VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$instance": ".*",
        "${datasource}": ""}


def fail(msg):
    print("grafana check: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def structure(d):
    for k in ("title", "uid", "schemaVersion", "panels", "templating"):
        if k not in d:
            fail("dashboard has no " + k)
    names = {v["name"] for v in d["templating"]["list"]}
    if not {"datasource", "instance"} <= names:
        fail("variables datasource and instance are needed, have %s" % names)
    ids = [p["id"] for p in d["panels"]]
    if len(ids) != len(set(ids)):
        fail("panel ids repeat: %s" % ids)
    exprs = []
    for p in d["panels"]:
        where = "panel %s (%s)" % (p.get("id"), p.get("title"))
        if p.get("type") not in TYPES:
            fail(where + ": unknown type %s" % p.get("type"))
        g = p.get("gridPos", {})
        if not all(isinstance(g.get(k), int) for k in ("h", "w", "x", "y")):
            fail(where + ": gridPos needs h, w, x, y")
        if not p.get("description") or not p.get("targets"):
            fail(where + ": needs a description and targets")
        if p.get("datasource", {}).get("uid") != "${datasource}":
            fail(where + ": datasource must be the ${datasource} variable")
        for t in p["targets"]:
            if not t.get("refId") or not t.get("expr"):
                fail(where + ": a target without refId or expr")
            if '$instance' not in t["expr"]:
                fail(where + ": query ignores the instance variable: " + t["expr"])
            exprs.append((where, t["expr"]))
    return exprs


def exported(port):
    text = get("http://127.0.0.1:%d/metrics" % port)
    return set(re.findall(r"^# TYPE (\S+)", text, re.M))


def main():
    dash, port, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    exprs = structure(json.load(open(dash)))
    names = exported(port)
    for where, e in exprs:
        for m in set(re.findall(r"\b(breaker_[a-z_]+)", e)):
            base = re.sub(r"_(bucket|count|sum)$", "", m)
            if m not in names and base not in names:
                fail("%s: breakerd exports no %s (in %s)" % (where, m, e))
    pport = free_port()
    cfg = os.path.join(work, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: breaker\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % port)
    prom = subprocess.Popen(["prometheus", "--config.file=" + cfg,
                             "--storage.tsdb.path=" + os.path.join(work, "tsdb"),
                             "--web.listen-address=127.0.0.1:%d" % pport],
                            stdout=subprocess.DEVNULL, stderr=open(
                                os.path.join(work, "prometheus.log"), "w"))
    api = "http://127.0.0.1:%d/api/v1/query?query=" % pport
    try:
        deadline = time.monotonic() + 90
        samples = 0
        while time.monotonic() < deadline and samples < 5:
            try:
                r = json.loads(get(api + urllib.parse.quote(
                    'count_over_time(breaker_up{job="breaker"}[1m])')))
                res = r["data"]["result"]
                samples = int(float(res[0]["value"][1])) if res else 0
            except OSError:
                pass
            time.sleep(0.5)
        if samples < 5:
            fail("Prometheus did not scrape breakerd 5 times in 90 s (see %s)"
                 % os.path.join(work, "prometheus.log"))
        for where, e in exprs:
            q = e
            for k, v in VARS.items():
                q = q.replace(k, v)
            try:
                r = json.loads(get(api + urllib.parse.quote(q)))
            except urllib.error.HTTPError as err:
                fail("%s: Prometheus refused %s: %s" % (where, q, err.read().decode()))
            if r.get("status") != "success":
                fail("%s: %s: %s" % (where, q, r))
            empty = not r["data"]["result"]
            if empty and not any(m in e for m in MAY_BE_EMPTY):
                fail("%s: no data for %s" % (where, q))
            print("ok %s: %s -> %d series" % (where, q, len(r["data"]["result"])),
                  file=sys.stderr)
    finally:
        prom.send_signal(signal.SIGTERM)
        try:
            prom.wait(timeout=20)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
    print("grafana check: %d queries OK" % len(exprs), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

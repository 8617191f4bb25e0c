#!/usr/bin/env python3
"""A client in another language agrees with the C client at every step.

usage: agree.py NAME PROBE_COMMAND...   (ctest: tests/CMakeLists.txt)

Against a real breakerd (its own instance, temp dir and sockets) driven by the
real CLI, the probe of the client under test (Probe.java, breaker-probe) and
the C client's (bk_c_probe) print the same JSON for: a fresh daemon, a global
trip, a kill, the staged resumes of both, the blocking wait (woken by a trip,
and timing out), the telemetry writer (the same report sequence into two slots,
compared word by word as the C client reads them), a kill -9 of the daemon
(both fail closed once the heartbeat is stale), a clean stop (heartbeat 0), and
segments that must be refused (unknown layout, another user's, others may
write). Environment: BREAKERD, BREAKER_CLI, BK_C_PROBE, PYTHONPATH with
clients/python and clients/python/tests.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time

from _daemon import Daemon, binary  # clients/python/tests
from breaker_client import reason_name

LIVE_BOUND = "5000000000"  # 5 s: no false "stale" on a loaded machine
TIME_WORDS = {"heartbeat_ns", "ack_ns", "working_ns", "md_last_ns", "session_ns", "pid"}

name = sys.argv[1]
probe = sys.argv[2:]
c_probe = [binary("BK_C_PROBE")]
failures: list[str] = []


def run(cmd: list[str], *args: str) -> tuple[int, str]:
    r = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout.strip() + (("\n" + r.stderr.strip()) if r.stderr.strip() else "")


def dump(cmd: list[str], instance: str, bound: str) -> dict:
    rc, out = run(cmd, "dump", instance, bound)
    if rc != 0:
        raise AssertionError(f"{cmd[0]} dump: exit {rc}: {out}")
    d = json.loads(out)
    for s in d["scopes"]:
        # the C client has no name table: the other's names must be the Python client's
        got = s["reason"].pop("name", None)
        want = reason_name(s["reason"]["code"])
        if got is not None and not want.startswith("unknown") and got != want:
            failures.append(f"{cmd[0]}: reason {s['reason']['code']} named {got!r}, not {want!r}")
    return d


def agree(step: str, instance: str, bound: str = LIVE_BOUND) -> dict:
    """Both dumps, equal; the C one (for the step's own checks)."""
    c = dump(c_probe, instance, bound)
    o = dump(probe, instance, bound)
    if c != o:
        diffs = [f"  {k}: C {c.get(k)!r} vs {name} {o.get(k)!r}" for k in c if k != "scopes" and c[k] != o.get(k)]
        for cs, os_ in zip(c["scopes"], o["scopes"]):
            if cs != os_:
                diffs.append(f"  slot {cs['slot']}: C {json.dumps(cs)}\n  {' ' * len(str(cs['slot']))}      {name} {json.dumps(os_)}")
        if len(c["scopes"]) != len(o["scopes"]):
            diffs.append(f"  scopes: C {len(c['scopes'])}, {name} {len(o['scopes'])}")
        failures.append(f"{step}: {name} and C disagree\n" + "\n".join(diffs))
        print(f"FAIL {step}")
    else:
        print(f"ok   {step}: {c['scopes'][0]['check_live']} global, "
              + ", ".join(f"{s['name']} {s['check_live']}" for s in c["scopes"][1:]))
    return c


def expect(step: str, got: object, want: object) -> None:
    if got != want:
        failures.append(f"{step}: want {want!r}, got {got!r}")
        print(f"FAIL {step}: want {want!r}, got {got!r}")


def scope(d: dict, slot: int) -> dict:
    return next(s for s in d["scopes"] if s["slot"] == slot)


def waiter(cmd: list[str], instance: str, seen: int, ms: int) -> subprocess.Popen[str]:
    p = subprocess.Popen([*cmd, "wait", instance, str(seen), str(ms)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    line = p.stdout.readline().strip()  # attached and about to wait
    if line != "ready":
        p.kill()
        raise AssertionError(f"{cmd[0]} wait: {line!r}")
    return p


def wait_steps(d: Daemon) -> None:
    for who, cmd in (("C", c_probe), (name, probe)):
        seq = dump(c_probe, d.instance, LIVE_BOUND)["change_seq"]
        p = waiter(cmd, d.instance, seq, 30000)
        time.sleep(0.2)  # let it sleep (or poll) first: a trip must wake it
        d.ok("trip", "manual_halt", "--strategy", "gamma", "--reason", f"wake {who}")
        out, _ = p.communicate(timeout=60)
        expect(f"{who} wait_change woken by a trip", out.strip(), "changed")
        print(f"ok   {who} wait_change woken by a trip")
        d.ok("resume", "--strategy", "gamma", "--force", "--to", "active", "--reason", "after the wait")
        seq = dump(c_probe, d.instance, LIVE_BOUND)["change_seq"]
        p = waiter(cmd, d.instance, seq, 200)
        out, _ = p.communicate(timeout=60)
        expect(f"{who} wait_change with nothing changing times out", out.strip(), "timeout")


def tel_steps(d: Daemon) -> None:
    rc, out = run(c_probe, "tel", d.instance, "0")
    expect("C telemetry writer", (rc, out), (0, "ok"))
    rc, out = run(probe, "tel", d.instance, "1")
    expect(f"{name} telemetry writer", (rc, out), (0, "ok"))
    slots = []
    for s in ("0", "1"):
        rc, out = run(c_probe, "teldump", d.instance, s)
        if rc != 0:
            raise AssertionError(f"bk_c_probe teldump {s}: {out}")
        slots.append(json.loads(out))
    for k in slots[0]:
        if k in TIME_WORDS:
            expect(f"telemetry {k} written by {name}", slots[1][k] != 0, True)
        else:
            expect(f"telemetry {k}: C wrote {slots[0][k]}, {name}", slots[1][k], slots[0][k])
    print(f"ok   telemetry: {name}'s slot reads as C's ({len(slots[0])} words)")
    # and breakerd judges them: the sequence ends with a balance 0.25 off
    # conservation (899.0, not 1000 - 100.5 - 0.25), in both slots
    deadline = time.monotonic() + 30
    want = "strategy beta rule invariant at"  # the warning line: measured 0.25 VIOLATED
    while want not in (st := d.ok("status")):
        if time.monotonic() > deadline:
            failures.append(f"breakerd never judged {name}'s telemetry ('{want}' not in status):\n{st}")
            return
        time.sleep(0.1)
    print(f"ok   breakerd's invariant rule judged the numbers {name} wrote (beta VIOLATED)")
    # both slots stop beating now: wait for those trips, so that nothing
    # changes under the comparisons that follow
    while not all(f"rule heartbeat (strategy {s})" in (st := d.ok("status")) for s in ("alpha", "beta")):
        if time.monotonic() > deadline:
            failures.append(f"no stale_heartbeat trips after the telemetry step:\n{st}")
            return
        time.sleep(0.1)


def refused_steps(d: Daemon) -> None:
    """Forged segments: every client refuses them alike (fail closed)."""
    good = d.segment
    for tag, patch, mode, owner, errno in (
        ("layout 1", lambda b: b[:8] + (1).to_bytes(4, "little") + b[12:], 0o644, 0, 71),
        ("unknown layout 99", lambda b: b[:8] + (99).to_bytes(4, "little") + b[12:], 0o644, 0, 71),
        ("bad magic", lambda b: b"X" + b[1:], 0o644, 0, 71),
        ("another user's", lambda b: b, 0o644, 65534, 1),
        ("writable by others", lambda b: b, 0o646, 0, 1),
    ):
        inst = f"{d.instance}-forged"
        path = good + "-forged"
        with open(good, "rb") as f:
            data = patch(f.read())
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        os.chown(path, owner, owner)
        try:
            rc_c, out_c = run(c_probe, "attach", inst)
            rc_o, out_o = run(probe, "attach", inst)
            expect(f"C refuses a segment ({tag})", out_c.split()[:2], ["error", str(errno)])
            expect(f"{name} refuses a segment ({tag})", out_o.split()[:2], ["error", str(errno)])
            if rc_o == 0 or rc_c == 0:
                failures.append(f"{tag}: attach exit C {rc_c}, {name} {rc_o}")
        finally:
            os.unlink(path)
    # telemetry: a version this client does not write, a segment cut short
    v1 = lambda b: b[:8] + (1).to_bytes(4, "little") + (128).to_bytes(4, "little") + b[16:24] \
        + (64 + 128 * 4096).to_bytes(8, "little") + b[32 : 64 + 128 * 4096]  # noqa: E731
    for tag, patch in (("telemetry version 3", lambda b: b[:8] + (3).to_bytes(4, "little") + b[12:]),
                       ("telemetry cut short", lambda b: b[: len(b) // 2]),
                       ("telemetry version 1, its own size", v1),
                       ("telemetry version 1 in a version-2 size", lambda b: b[:8] + (1).to_bytes(4, "little") + b[12:])):
        inst = f"{d.instance}-forged"
        path = good + "-forged.tel"
        with open(good + ".tel", "rb") as f:
            data = patch(f.read())
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o660)
        try:
            _, out_c = run(c_probe, "tel", inst, "0")
            _, out_o = run(probe, "tel", inst, "0")
            expect(f"C refuses a telemetry segment ({tag})", out_c.split()[:2], ["error", "71"])
            expect(f"{name} refuses a telemetry segment ({tag})", out_o.split()[:2], ["error", "71"])
        finally:
            os.unlink(path)
    print(f"ok   forged segments refused alike")


def bits(x: float) -> int:
    """A double's bit pattern, as the probes print limits."""
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def put(b: bytearray, off: int, fmt: str, *v: object) -> None:
    struct.pack_into("<" + fmt, b, off, *v)


def groups_and_limits_steps(d: Daemon) -> None:
    """Group holders and limits: main's CLI cannot set them yet, so a copy of
    the live segment gets them written in (as breakerd would lay them out,
    docs/shm-layout.md) and every client reads the copy."""
    with open(d.segment, "rb") as f:
        b = bytearray(f.read())
    put(b, 60, "I", 1)  # hdr.group_count
    put(b, 192, "Q", 0)  # global ACTIVE (the telemetry step tripped it), so a strategy's word wins
    g0 = 262400  # group slot 0: HALTED by kill_switch, uid 1234
    put(b, g0, "QIIQ", 3 | 3 << 8 | 1234 << 32, 0, 1 << 3, 41)
    b[g0 + 24 : g0 + 64] = b"venue:XETR".ljust(40, b"\0")
    beta, gamma = 256 + 64 * 1, 256 + 64 * 2
    put(b, beta, "QIIQ", 3 | 3 << 8 | 1 << 16 | 1234 << 32, 2, 0, 42)  # held by group 0
    put(b, gamma, "QIIQ", 1 | 1 << 8 | 77 << 32, 4, 1 << 1, 43)  # its own CAUTIOUS latch
    lim = 278784
    put(b, lim, "IIddd", 2, 1, 0.5, 0.0, 0.0)  # global: size factor 0.5
    put(b, lim + 32 * 2, "IIddd", 4, 7, 0.25, 100.0, float("nan"))  # beta: NaN reads as 0
    put(b, lim + 32 * 3, "IIddd", 5, 3, 2.0, 5.0, 0.0)  # gamma: a writer that never finished
    inst = f"{d.instance}-groups"
    path = d.segment + "-groups"
    with open(path, "wb") as f:
        f.write(b)
    os.chmod(path, 0o644)
    try:
        c = agree("groups and limits (a copy with them written in)", inst, str(1 << 62))
        r = scope(c, 1)["reason"]
        expect("beta held by group 0", (r["scope"], r["scope_slot"], r["scope_name"], r["code"], r["uid"]),
               ("group", 0, "venue:XETR", 3, 1234))
        expect("gamma held by itself", (scope(c, 2)["reason"]["scope"], scope(c, 2)["check"]),
               ("strategy", "CAUTIOUS"))
        expect("beta's limits: the strictest, NaN as 0", scope(c, 1)["limits"],
               {"flags": 7, "size_factor": bits(0.25), "max_qty": bits(100.0), "max_notional": bits(0.0)})
        expect("global's limits", scope(c, -1)["limits"],
               {"flags": 1, "size_factor": bits(0.5), "max_qty": bits(0.0), "max_notional": bits(0.0)})
        expect("gamma's unsettled limits fail closed", scope(c, 2)["limits"],
               {"flags": 7, "size_factor": bits(0.0), "max_qty": bits(0.0), "max_notional": bits(0.0)})
    finally:
        os.unlink(path)


def example_steps(d: Daemon) -> None:
    """The language's engine loop (docs/clients.md), $BK_EXAMPLE: it trades
    ACTIVE, a kill of its strategy wakes it and it prints HALTED with the
    reason, and it ends on time."""
    cmd = os.environ.get("BK_EXAMPLE")
    if not cmd:
        failures.append("BK_EXAMPLE is not set: the engine loop example was not run")
        return
    p = subprocess.Popen([*cmd.split(), d.instance, "alpha", "5"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    assert p.stdout is not None
    first = p.stdout.readline().strip()
    d.ok("kill", "alpha", "--reason", "agree: the example")
    out, _ = p.communicate(timeout=60)
    lines = [first, *out.strip().splitlines()]
    expect(f"{name} engine loop starts ACTIVE", lines[0], "ACTIVE")
    expect(f"{name} engine loop sees the kill", any(l.startswith("HALTED (kill_switch") for l in lines), True)
    expect(f"{name} engine loop ends on time", (p.returncode, lines[-1].startswith("done:")), (0, True))
    print(f"ok   {name} engine loop: {' | '.join(lines)}")


def firm_steps(d: Daemon) -> None:
    """Firm-wide mode (etcd): a copy of the live segment whose valid_until_ns
    is in the past reads HALTED in every client's live check, one whose
    valid_until_ns is far ahead reads as the words say."""
    with open(d.segment, "rb") as f:
        b = bytearray(f.read())
    put(b, 192, "Q", 0)  # global ACTIVE, so the verdict is valid_until's alone
    for tag, until, want in (("valid_until_ns passed", 1, "HALTED"), ("valid_until_ns ahead", (1 << 63) - 1, "ACTIVE")):
        put(b, 160, "Q", until)
        inst = f"{d.instance}-firm"
        path = d.segment + "-firm"
        with open(path, "wb") as f:
            f.write(b)
        os.chmod(path, 0o644)
        try:
            c = agree(f"firm-wide: {tag}", inst, str(1 << 62))
            expect(f"global's live check with {tag}", scope(c, -1)["check_live"], want)
        finally:
            os.unlink(path)


def main() -> int:
    d = Daemon(f"agree-{name}", "[strategies]\nnames = alpha, beta, gamma\ngroups = beta=venue:XETR\n"
               "[limits]\ncautious.size_factor = 0.25\nreduce_only.max_qty = 500\n"
               "[limits:beta]\ncautious.max_notional = 250000\nreduce_only.size_factor = 0.5\n")
    try:
        d.start()
        agree("fresh daemon", d.instance)
        d.ok("trip", "manual_halt", "--reason", "agree: global")
        c = agree("global trip", d.instance)
        expect("global HALTED", scope(c, -1)["check_live"], "HALTED")
        expect("global reason", (scope(c, -1)["reason"]["code"], scope(c, -1)["reason"]["scope"]), (1, "global"))
        d.ok("kill", "beta", "--reason", "agree: kill")
        c = agree("kill beta", d.instance)
        for stage, want in enumerate(("REDUCE_ONLY", "CAUTIOUS", "ACTIVE"), 1):
            d.ok("resume", "--reason", f"agree: global stage {stage}")
            c = agree(f"global resume stage {stage}", d.instance)
            expect(f"global after stage {stage}", scope(c, -1)["check_live"], want)
            if want == "CAUTIOUS":  # [limits] cautious.size_factor, in the global entry
                expect("global's CAUTIOUS limits", (scope(c, -1)["limits"]["flags"],
                                                    scope(c, -1)["limits"]["size_factor"]), (1, bits(0.25)))
        beta = scope(c, 1)
        expect("beta still HALTED by its kill", (beta["check_live"], beta["reason"]["code"], beta["reason"]["scope"],
                                                 beta["reason"]["scope_name"]), ("HALTED", 3, "strategy", "beta"))
        for stage in (1, 2, 3):
            d.ok("resume", "--strategy", "beta", "--reason", f"agree: beta stage {stage}")
            c = agree(f"beta resume stage {stage}", d.instance)
            if stage == 1:  # beta REDUCE_ONLY: [limits] max_qty and [limits:beta] size_factor
                expect("beta's REDUCE_ONLY limits", scope(c, 1)["limits"],
                       {"flags": 3, "size_factor": bits(0.5), "max_qty": bits(500.0), "max_notional": bits(0.0)})
        expect("beta ACTIVE", scope(c, 1)["check_live"], "ACTIVE")
        d.ok("trip", "manual_halt", "--group", "venue:XETR", "--reason", "agree: group")
        c = agree("group venue:XETR tripped", d.instance)
        r = scope(c, 1)["reason"]
        expect("beta held by its group", (scope(c, 1)["check_live"], r["code"], r["scope"], r["scope_name"]),
               ("HALTED", 1, "group", "venue:XETR"))
        expect("alpha not in the group", scope(c, 0)["check_live"], "ACTIVE")
        for stage in (1, 2, 3):
            d.ok("resume", "--group", "venue:XETR", "--reason", f"agree: group stage {stage}")
            c = agree(f"group resume stage {stage}", d.instance)
        expect("beta ACTIVE after the group's resumes", scope(c, 1)["check_live"], "ACTIVE")
        wait_steps(d)
        tel_steps(d)
        refused_steps(d)
        groups_and_limits_steps(d)
        firm_steps(d)

        before = agree("before the daemon dies", d.instance)
        d.kill9()
        deadline = time.monotonic() + 30
        while dump(c_probe, d.instance, "0")["scopes"][0]["check_live"] != "HALTED":
            if time.monotonic() > deadline:
                raise AssertionError("the C client never saw the killed daemon's heartbeat go stale")
            time.sleep(0.05)
        c = agree("daemon killed (-9): stale heartbeat", d.instance, "0")
        expect("all HALTED after kill -9", {s["check_live"] for s in c["scopes"]}, {"HALTED"})
        expect("check() still shows the last published words", [s["check"] for s in c["scopes"]],
               [s["check"] for s in before["scopes"]])

        d.start()
        agree("restarted daemon", d.instance)
        d.stop()
        c = agree("clean stop: heartbeat 0", d.instance)
        expect("all HALTED after a clean stop", {s["check_live"] for s in c["scopes"]}, {"HALTED"})
    finally:
        d.fini()
    # the example on a daemon of its own: its heartbeat, once it stops,
    # trips stale_heartbeat, which must not race the comparisons above
    e = Daemon(f"example-{name}")
    try:
        e.start()
        example_steps(e)
    finally:
        e.fini()
    for f in failures:
        print("FAIL:", f)
    print(f"{name}: {'all steps agree with the C client' if not failures else f'{len(failures)} failures'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

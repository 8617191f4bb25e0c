"""The telemetry writer (breaker_client.telemetry).

Unit tests against a hand-made segment (the test plays breakerd): attach
errors, every word at its documented offset, the seqlock, no torn or
transient values seen from another process. Live tests against a real
breakerd: what Python writes is what the C client reads (bk_shm_dump --tel),
a reject-rate breach written from Python HALTs the strategy with an audited
reject_rate record, a Python ack shows in `breaker status`, and the example
engine reports.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import subprocess
import sys
import time
import unittest
from pathlib import Path
from typing import Any

import breaker_client as bk
from breaker_client import layout as L

from _daemon import STRATS, Daemon, binary
from _segment import FakeTelemetry, unique_instance

MS = 1_000_000
PY_DIR = str(Path(bk.__file__).resolve().parents[1])


def bits(x: float) -> int:
    return struct.unpack("Q", struct.pack("d", x))[0]


# -- unit: a hand-made segment ------------------------------------------------


class AttachErrors(unittest.TestCase):
    def fake(self, tag: str, **kw: Any) -> FakeTelemetry:
        f = FakeTelemetry(tag, **kw)
        self.addCleanup(f.close)
        return f

    def test_path(self) -> None:
        self.assertEqual(bk.telemetry_path("prod"), "/dev/shm/breaker.prod.tel")
        for bad in ("", "a/b", "x" * 64):
            with self.assertRaises(ValueError):
                bk.telemetry_path(bad)

    def test_no_segment_says_so(self) -> None:
        with self.assertRaises(FileNotFoundError) as cm:
            bk.attach_telemetry(unique_instance("none"))
        self.assertIn("is breakerd running", str(cm.exception))

    def test_empty_file_is_not_ready(self) -> None:
        f = self.fake("empty", size=0)
        with self.assertRaises(bk.NotReadyError):
            bk.attach_telemetry(f.instance)

    def test_version_zero_is_not_ready(self) -> None:
        f = self.fake("v0", ready=False)
        with self.assertRaises(bk.NotReadyError):
            bk.attach_telemetry(f.instance)

    def test_short_file_fails_closed(self) -> None:
        f = self.fake("short", size=4096)
        with self.assertRaisesRegex(bk.LayoutError, "4096 bytes"):
            bk.attach_telemetry(f.instance)

    def test_foreign_or_other_layout_fails_closed(self) -> None:
        for field, value, msg in (("tel.magic", L.MAGIC, "not a breaker telemetry segment"),
                                  ("tel.version", 1, "telemetry version 1"),
                                  ("tel.version", 3, "telemetry version 3"),
                                  ("tel.segment_size", L.TEL_SEGMENT_SIZE + 64, "tel.segment_size"),
                                  ("tel.slot_size", 64, "tel.slot_size"),
                                  ("tel.capacity", 1024, "tel.capacity")):
            with self.subTest(field=field):
                f = self.fake("bad")
                f.put(field, value)
                with self.assertRaisesRegex(bk.LayoutError, msg):
                    bk.attach_telemetry(f.instance)

    @unittest.skipIf(os.geteuid() == 0, "root opens any file read-write")
    def test_not_in_the_group_says_so(self) -> None:
        f = self.fake("perm")
        os.chmod(f.path, 0o640)
        with self.assertRaisesRegex(PermissionError, "breakerd's group"):
            bk.attach_telemetry(f.instance)


class Writes(unittest.TestCase):
    """Each call lands on the documented words of its own slot, and nowhere else."""

    def setUp(self) -> None:
        self.f = FakeTelemetry("w")
        self.addCleanup(self.f.close)
        self.t = bk.attach_telemetry(self.f.instance)
        self.addCleanup(self.t.close)

    def others_untouched(self, slot: int) -> None:
        for s in (slot - 1, slot + 1):
            if 0 <= s < L.MAX_STRATEGIES:
                self.assertEqual(self.f.raw(s), bytes(L.TEL_SLOT_SIZE), f"slot {s} written")
        self.assertEqual(self.f.get("tel.magic"), L.TEL_MAGIC, "header untouched")
        self.assertEqual(self.f.get("tel.version"), L.TEL_VERSION)

    def test_counters(self) -> None:
        for slot in (0, 7, L.MAX_STRATEGIES - 1):
            with self.subTest(slot=slot):
                self.t.report_order(slot)
                self.t.report_order(slot, 2**40)
                self.t.report_reject(slot, 3)
                self.t.report_cancel(slot, 5)
                self.t.report_cancel(slot)
                got = self.f.slot(slot)
                self.assertEqual((got["orders"], got["rejects"], got["cancels"]), (2**40 + 1, 3, 6))
                self.assertEqual(self.t.read(slot).orders, 2**40 + 1)
                self.others_untouched(slot)

    def test_counters_wrap_as_u64_and_refuse_going_backwards(self) -> None:
        self.f.put("slot.orders", 2**64 - 1, 3)
        self.t.report_order(3, 2)
        self.assertEqual(self.f.get("slot.orders", 3), 1)
        for bad in (-1, 2**64):
            with self.assertRaises(ValueError):
                self.t.report_reject(3, bad)
        self.assertEqual(self.f.get("slot.rejects", 3), 0)

    def test_bad_slots_raise_and_write_nothing(self) -> None:
        calls = (lambda s: self.t.report_order(s), lambda s: self.t.report_reject(s),
                 lambda s: self.t.report_cancel(s), lambda s: self.t.heartbeat(s),
                 lambda s: self.t.ack(s, 1), lambda s: self.t.fill(s, 1, 0, 1, 1),
                 lambda s: self.t.marks(s, 1, 1, 1), lambda s: self.t.balance(s, 1),
                 lambda s: self.t.opening_balance(s, 1), lambda s: self.t.read(s))
        before = bytes(self.f.mm)
        for slot in (-1, L.MAX_STRATEGIES, 10**6):
            for call in calls:
                with self.assertRaises(IndexError):
                    call(slot)
        self.assertEqual(bytes(self.f.mm), before)

    def test_heartbeat_and_pid(self) -> None:
        t0 = time.monotonic_ns()
        self.t.heartbeat(2)
        hb = self.f.get("slot.heartbeat_ns", 2)
        self.assertTrue(t0 <= hb <= time.monotonic_ns(), "CLOCK_MONOTONIC by default")
        self.assertEqual(self.f.get("slot.pid", 2), os.getpid())
        self.t.heartbeat(2, 12345)
        self.assertEqual(self.f.get("slot.heartbeat_ns", 2), 12345)
        # a predecessor's pid (an engine restart) is replaced by ours
        self.f.put("slot.pid", 999999, 2)
        self.t.heartbeat(2, 12346)
        self.assertEqual(self.f.get("slot.pid", 2), os.getpid())
        with self.assertRaises(ValueError):
            self.t.heartbeat(2, -1)
        self.assertEqual(self.f.get("slot.heartbeat_ns", 2), 12346)
        self.others_untouched(2)

    def test_ack(self) -> None:
        self.t.ack(4, 0xFFFFFFFF, 2**63 + 5)
        self.assertEqual((self.f.get("slot.ack_seq", 4), self.f.get("slot.ack_ns", 4)),
                         (0xFFFFFFFF, 2**63 + 5))
        t0 = time.monotonic_ns()
        self.t.ack(4, 7)
        self.assertEqual(self.f.get("slot.ack_seq", 4), 7)
        self.assertTrue(t0 <= self.f.get("slot.ack_ns", 4) <= time.monotonic_ns())
        for bad in (-1, 2**32):
            with self.assertRaises(ValueError):
                self.t.ack(4, bad, 1)
        self.assertNotEqual(self.f.get("slot.ack_ns", 4), 1, "nothing written on a bad seq")
        self.assertEqual(self.f.get("slot.pid", 4), 0, "ack does not claim the slot")
        self.others_untouched(4)

    def test_opening_balance_is_a_statement(self) -> None:
        # the base folds in the slot's own fill cash and fees, with a sequence
        s = 8
        self.t.balance(s, 1000.0)  # before any fill: a statement too
        got = self.f.slot(s)
        self.assertEqual((got["opening_seq"], got["opening_base"], got["opening_fills"]), (1, 1000.0, 0))
        self.t.fill(s, -100.0, 0.5, 899.5, 100.0)
        self.t.balance(s, 899.0)  # after a fill: only the balance word moves
        got = self.f.slot(s)
        self.assertEqual((got["opening_seq"], got["balance"]), (1, 899.0), "not a new base")
        self.t.opening_balance(s, 5000.0)  # a new trading day
        got = self.f.slot(s)
        self.assertEqual((got["opening_seq"], got["opening_fills"], got["balance"]), (2, 1, 5000.0))
        self.assertEqual(got["opening_base"], 5000.0 - (-100.0 - 0.5))
        self.assertEqual(got["gseq"], 8, "each under the seqlock: 4 updates")
        self.assertEqual(self.t.read(s).opening_seq, 2)
        with self.assertRaises(IndexError):
            self.t.opening_balance(L.MAX_STRATEGIES, 1.0)
        self.others_untouched(s)

    def test_money_words_under_the_seqlock(self) -> None:
        s = 5
        self.t.balance(s, 100000)
        self.assertEqual((self.f.get("slot.gseq", s), self.f.get("slot.balance", s)), (2, 100000.0))
        self.t.fill(s, -1000.25, 2.5, 98997.25, 1000.25)
        self.t.fill(s, 500.125, 1.25, 99496.125, 500.125)
        self.t.marks(s, 500.125, 750.5, -3.75)
        got = self.f.slot(s)
        self.assertEqual(got["gseq"], 8, "even after each of 4 updates")
        self.assertEqual(got["fills"], 2)
        self.assertEqual(got["fill_cash"], -1000.25 + 500.125, "cumulative")
        self.assertEqual(got["fees"], 3.75)
        self.assertEqual((got["balance"], got["position"], got["gross"], got["pnl"]),
                         (99496.125, 500.125, 750.5, -3.75))
        self.assertEqual(self.t.read(s), bk.TelemetrySlot(**got))
        self.assertEqual(got["orders"] + got["heartbeat_ns"] + got["pid"], 0, "line 0 untouched")
        self.others_untouched(s)

    def test_doubles_keep_their_bits(self) -> None:
        for v in (-0.0, 5e-324, 0.1, 2.0**53 + 2, math.inf, -math.inf):
            self.t.marks(6, v, v, v)
            self.assertEqual(bits(self.f.get("slot.gross", 6)), bits(v), repr(v))
        self.t.marks(6, 0, 0, math.nan)
        self.assertTrue(math.isnan(self.f.get("slot.pnl", 6)), "NaN reaches the daemon (a breach)")

    def test_a_bad_value_writes_nothing_and_leaves_gseq_even(self) -> None:
        self.t.fill(1, -10, 1, -11, 10)
        before = self.f.raw(1)
        for args in (("x", 1, 1, 1), (1, None, 1, 1), (1, 1, 1, object())):
            with self.assertRaises((TypeError, ValueError)):
                self.t.fill(1, *args)
        with self.assertRaises((TypeError, ValueError)):
            self.t.marks(1, 1, "lots", 1)
        self.assertEqual(self.f.raw(1), before)

    def test_a_gseq_left_odd_by_a_dead_writer_recovers(self) -> None:
        self.f.put("slot.gseq", 7, 9)  # died mid-update
        self.t.balance(9, 1.0)
        self.assertEqual(self.f.get("slot.gseq", 9), 10, "odd 9 while writing, then even")
        self.f.put("slot.gseq", 0xFFFFFFFF, 9)  # and across the u32 wrap
        self.t.balance(9, 2.0)
        self.assertEqual(self.f.get("slot.gseq", 9), 2)
        self.f.put("slot.gseq", 0xFFFFFFFE, 9)
        self.t.balance(9, 3.0)
        self.assertEqual(self.f.get("slot.gseq", 9), 0)

    def test_an_interrupted_update_still_ends_even(self) -> None:
        # Ctrl-C between the stores: the finally publishes old or new words, never odd
        class Boom(Exception):
            pass

        class Exploding:
            def __setitem__(self, key: slice, value: bytes) -> None:
                raise Boom

        real = self.t._mm
        self.t._mm = Exploding()  # type: ignore[assignment]
        try:
            with self.assertRaises(Boom):
                self.t.marks(3, 5.0, 5.0, 5.0)
        finally:
            self.t._mm = real
        self.assertEqual(self.f.get("slot.gseq", 3), 2)
        self.assertEqual(self.f.get("slot.balance", 3), 0.0, "the old words")

    def test_read_gives_up_on_a_slot_that_stays_odd(self) -> None:
        self.f.put("slot.gseq", 3, 11)
        t0 = time.monotonic()
        with self.assertRaisesRegex(bk.BreakerError, "mid-write"):
            self.t.read(11)
        self.assertLess(time.monotonic() - t0, 5)

    def test_replaced(self) -> None:
        self.assertFalse(self.t.replaced())
        self.f.mm.close()
        self.f.mm = None
        os.unlink(self.f.path)
        self.assertTrue(self.t.replaced(), "gone")
        FakeTelemetry("again", instance=self.f.instance).mm.close()  # a new file at the path
        self.assertTrue(self.t.replaced(), "another file")

    def test_close_and_context_manager(self) -> None:
        with bk.attach_telemetry(self.f.instance) as t2:
            t2.report_order(0)
        with self.assertRaises(ValueError):
            t2.report_order(0)
        self.assertEqual(self.f.get("slot.orders", 0), 1, "the numbers stay")

    def test_words_are_written_natively(self) -> None:
        # single aligned stores: see telemetry.py; "<Q"/struct.pack_into are not
        self.assertEqual((self.t._q.format, self.t._d.format, self.t._i.format), ("Q", "d", "I"))
        self.assertEqual((self.t._q.itemsize, self.t._d.itemsize, self.t._i.itemsize), (8, 8, 4))
        for name, f in L.FIELDS.items():
            if name.startswith(("slot.", "tel.")) and f.fmt in ("Q", "d", "I"):
                self.assertEqual((L.FIELDS["tel.slots"].offset + f.offset) % f.size, 0, name)


# -- unit: another process reading while Python writes ------------------------

WRITER = r"""
import sys, time
import breaker_client as bk
t = bk.attach_telemetry(sys.argv[1])
end = time.monotonic() + float(sys.argv[2])
n = 0
print("go", flush=True)
while time.monotonic() < end:
    for _ in range(100):
        n += 1
        t.report_order(0)
        t.heartbeat(0, n)
        t.fill(0, -100.0, 1.0, -101.0 * n, 10.0 * n)
        t.marks(0, 10.0 * n, 20.0 * n, -1.0 * n)
print(n, flush=True)
"""


def spawn(case: unittest.TestCase, code: str, *args: str) -> subprocess.Popen[str]:
    """A Python child writing into the segment; stopped and reaped at cleanup."""
    env = dict(os.environ, PYTHONPATH=PY_DIR)
    p = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env)

    def reap() -> None:
        if p.poll() is None:
            p.kill()
        p.wait()
        if p.stdout is not None:
            p.stdout.close()

    case.addCleanup(reap)
    return p


@unittest.skipIf((os.cpu_count() or 1) < 2, "needs a second CPU to race the writer")
class SeenFromAnotherProcess(unittest.TestCase):
    SECONDS = 1.0

    def setUp(self) -> None:
        self.f = FakeTelemetry("race")
        self.addCleanup(self.f.close)

    def test_counters_only_grow_and_money_words_are_never_half_a_fill(self) -> None:
        mm = self.f.mm
        base = L.tel_slot_offset(0)
        u64 = struct.Struct("Q")  # native: one aligned load
        u32 = struct.Struct("I")
        block = struct.Struct("Qdddddd")  # fills .. pnl, under gseq
        o_orders = base + L.FIELDS["slot.orders"].offset
        o_hb = base + L.FIELDS["slot.heartbeat_ns"].offset
        o_g = base + L.FIELDS["slot.gseq"].offset
        o_block = base + L.FIELDS["slot.fills"].offset
        w = spawn(self, WRITER, self.f.instance, str(self.SECONDS))
        assert w.stdout is not None
        self.assertEqual(w.stdout.readline().strip(), "go")
        last_orders = last_hb = 0
        reads = consistent = 0
        while w.poll() is None:
            for _ in range(1000):
                orders = u64.unpack_from(mm, o_orders)[0]
                hb = u64.unpack_from(mm, o_hb)[0]
                self.assertGreaterEqual(orders, last_orders, "a counter went backwards")
                self.assertGreaterEqual(hb, last_hb, "the heartbeat went backwards")
                last_orders, last_hb = orders, hb
                q = u32.unpack_from(mm, o_g)[0]
                fills, cash, fees, bal, pos, gross, pnl = block.unpack_from(mm, o_block)
                reads += 1
                if q & 1 or q != u32.unpack_from(mm, o_g)[0]:
                    continue
                consistent += 1
                if fills == 0:
                    continue
                msg = f"gseq {q}: {(fills, cash, fees, bal, pos, gross, pnl)}"
                self.assertEqual((cash, fees, bal, pos), (-100.0 * fills, 1.0 * fills, -101.0 * fills,
                                                          10.0 * fills), msg)
                self.assertIn(gross, (20.0 * fills, 20.0 * (fills - 1)), msg)
                self.assertEqual(pnl, -gross / 20, msg)
        n = int(w.stdout.read().split()[-1])
        self.assertEqual(w.returncode, 0)
        self.assertEqual(self.f.get("slot.orders", 0), n)
        self.assertEqual(self.f.get("slot.fills", 0), n)
        self.assertEqual(self.f.get("slot.gseq", 0), 4 * n)
        self.assertGreater(consistent, 100, f"{reads} reads, {consistent} consistent")

    def test_why_not_struct_pack_into(self) -> None:
        # The hazard the memoryview stores avoid: CPython's pack_into memset()s
        # the word to 0 before writing it, and another process can see the 0.
        code = r"""
import mmap, os, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
mm = mmap.mmap(fd, 4096)
p = struct.Struct("Q").pack_into
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    for i in range(1000):
        p(mm, 64, 0x1111111111111111 + (i & 1))
"""
        struct.pack_into("Q", self.f.mm, 64, 0x1111111111111111)
        w = spawn(self, code, self.f.path, str(self.SECONDS))
        zeros = 0
        while w.poll() is None and not zeros:
            for _ in range(10000):
                if struct.unpack_from("Q", self.f.mm, 64)[0] == 0:
                    zeros += 1
        if not zeros:
            self.skipTest("the window was not hit this time")
        self.assertGreater(zeros, 0)


# -- live: a real breakerd ----------------------------------------------------

RULES = ("tick_period_us = 1000\nheartbeat_bound_ms = 1000\n" + STRATS +
         "[rules]\nreject_rate.max = 0.2\nreject_rate.min_orders = 20\n")


def attach_both(d: Daemon) -> tuple[bk.Client, bk.Telemetry]:
    deadline = time.monotonic() + 3
    while True:
        try:
            return bk.attach(d.instance), bk.attach_telemetry(d.instance)
        except (bk.NotReadyError, FileNotFoundError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def c_tel_dump(instance: str, *slots: int) -> dict[str, Any]:
    """What the C client (bk_tel_attach) reads, via bk_shm_dump --tel."""
    r = subprocess.run([binary("BK_SHM_DUMP"), "--tel", instance, *map(str, slots)],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError(f"bk_shm_dump --tel {instance}: exit {r.returncode}: {r.stdout}{r.stderr}")
    return json.loads(r.stdout)


class LiveTelemetry(unittest.TestCase):
    def setUp(self) -> None:
        self.d = Daemon("tel", extra_ini=RULES)
        self.addCleanup(self.d.fini)
        self.d.start()
        self.c, self.t = attach_both(self.d)
        self.addCleanup(self.c.close)
        self.addCleanup(self.t.close)
        self.alpha, self.beta, self.gamma = (self.c.resolve(n) for n in ("alpha", "beta", "gamma"))

    def status(self) -> dict[str, Any]:
        return json.loads(self.d.ok("status", "--json"))["info"]

    def test_c_reads_what_python_wrote(self) -> None:
        a, b, g = self.alpha, self.beta, self.gamma
        hb = time.monotonic_ns()
        want = {
            a: {"orders": 2**40 + 12345, "rejects": 7, "cancels": 3, "heartbeat_ns": hb,
                "ack_seq": 0xFFFFFFFF, "pid": os.getpid(), "ack_ns": 2**63 + 5, "gseq": 8, "fills": 2,
                "fill_cash": -1000.25 + 500.125, "fees": 2.5 + 0.1, "balance": 100000 - 1000.25 - 2.5 + 500.125 - 0.1,
                "position": -0.0, "gross": 5e-324, "pnl": 0.1,
                "opening_base": 100000.0, "opening_fills": 0, "opening_seq": 1,
                "working_orders": 2**40 + 3, "working_ns": hb + 2, "md_last_ns": hb + 3,
                "session": L.SESSION_DOWN, "session_ns": hb + 4},
            b: {"orders": 3, "rejects": 0, "cancels": 2**33, "heartbeat_ns": hb + 1, "ack_seq": 1,
                "pid": os.getpid(), "ack_ns": 9, "gseq": 2, "fills": 0, "fill_cash": 0.0, "fees": 0.0,
                "balance": 0.0, "position": 12.5, "gross": 2.0**53 + 2, "pnl": math.nan,
                "opening_base": 0.0, "opening_fills": 0, "opening_seq": 0,
                "working_orders": 0, "working_ns": 1, "md_last_ns": 0, "session": L.SESSION_UP,
                "session_ns": 1},
        }
        t = self.t
        t.heartbeat(a, hb)
        t.report_order(a, 2**40)
        t.report_order(a, 12345)
        t.report_reject(a, 7)
        for _ in range(3):
            t.report_cancel(a)
        t.balance(a, 100000)
        t.fill(a, -1000.25, 2.5, 100000 - 1000.25 - 2.5, 1000.25)
        t.fill(a, 500.125, 0.1, 100000 - 1000.25 - 2.5 + 500.125 - 0.1, 500.125)
        t.ack(a, 0xFFFFFFFF, 2**63 + 5)
        t.marks(a, -0.0, 5e-324, 0.1)
        t.heartbeat(b, hb + 1)
        t.report_order(b, 3)
        t.report_cancel(b, 2**33)
        t.ack(b, 1, 9)
        t.marks(b, 12.5, 2.0**53 + 2, math.nan)
        t.working(a, 2**40 + 3, hb + 2)
        t.md_tick(a, hb + 3)
        t.session(a, False, hb + 4)
        t.working(b, 0, 0)  # a time of 0 is stored as 1: 0 means "never reported"
        t.session(b, True, 0)

        dump = c_tel_dump(self.d.instance)
        self.assertEqual(dump["header"], {"magic": L.TEL_MAGIC, "version": L.TEL_VERSION,
                                          "slot_size": L.TEL_SLOT_SIZE, "capacity": L.MAX_STRATEGIES,
                                          "segment_size": L.TEL_SEGMENT_SIZE})
        slots = {s["slot"]: s for s in dump["slots"]}
        self.assertEqual(sorted(slots), [a, b, g], "every registered strategy's slot")
        fields = [n[5:] for n in L.FIELDS if n.startswith("slot.")]
        want[g] = dict.fromkeys(fields, 0)
        for slot, values in want.items():
            self.assertEqual(sorted(values), sorted(fields), "the test covers every field")
            c_side = slots[slot]
            py_side = self.t.read(slot)
            for name in fields:
                with self.subTest(slot=slot, field=name):
                    f = L.FIELDS["slot." + name]
                    v = values[name]
                    if f.fmt == "d":
                        self.assertEqual(c_side[name + "_bits"], bits(v), f"C reads {c_side[name]}, wrote {v!r}")
                        self.assertEqual(bits(getattr(py_side, name)), bits(v))
                        if math.isfinite(v):
                            self.assertEqual(c_side[name], v, "and prints it exactly")
                        else:
                            self.assertIsNone(c_side[name])
                    else:
                        self.assertEqual(c_side[name], v)
                        self.assertEqual(getattr(py_side, name), v)
        # and asking for slots by number gives the same
        self.assertEqual(c_tel_dump(self.d.instance, b)["slots"], [slots[b]])

    def test_reject_rate_breach_halts_the_strategy_with_an_audited_record(self) -> None:
        a, t = self.alpha, self.t
        t.heartbeat(a)
        t.report_order(a, 100)
        t.report_reject(a, 10)  # 10%: under 20%
        time.sleep(0.05)  # 50 ticks
        self.assertIs(self.c.check(a), bk.Mode.ACTIVE)
        # the engine: check before every order; now the venue rejects every other one
        orders, rejects = 100, 10  # all well inside the 1000 ms window
        breach = None
        deadline = time.monotonic() + 5
        while (mode := self.c.check(a)) is not bk.Mode.HALTED and time.monotonic() < deadline:
            t.heartbeat(a)
            t.report_order(a)
            orders += 1
            if orders % 2:
                t.report_reject(a)
                rejects += 1
            if breach is None and rejects > 0.2 * orders:
                breach = time.monotonic()  # from here the rule fails
            time.sleep(0.0002)
        seen = time.monotonic()
        self.assertIs(mode, bk.Mode.HALTED, f"not halted after {orders} orders, {rejects} rejects")
        latency = seen - (breach or seen)
        self.assertLess(latency, 1.0, f"HALTED {1000 * latency:.1f} ms after the breach")
        self.assertIs(self.c.check(self.beta), bk.Mode.ACTIVE, "other strategies untouched")
        self.assertIs(self.c.check(None), bk.Mode.ACTIVE)
        r = self.c.reason(a)
        self.assertEqual((r.mode, r.reason), (bk.Mode.HALTED, "reject_rate"))
        # the audit record, written by breakerd, names the rule and its numbers
        trips: list[dict[str, Any]] = []
        for _ in range(100):
            out = self.d.ok("audit", "--json")
            recs = [json.loads(line) for line in out.splitlines() if line.strip()]
            trips = [x for x in recs if x.get("kind") == "TRIP" and x.get("rule") == "reject_rate"]
            if trips:
                break
            time.sleep(0.02)
        self.assertEqual(len(trips), 1, f"one reject_rate trip in the audit log: {trips}")
        rec = trips[0]
        self.assertEqual((rec["strategy"], rec["reason_code"], rec["to_mode"]),
                         ("alpha", "reject_rate", "HALTED"), rec)
        self.assertEqual(rec["threshold"], 0.2)
        m = re.search(r"(\d+) rejects / (\d+) orders", rec["evidence"])
        assert m is not None, rec
        n_rej, n_ord = int(m.group(1)), int(m.group(2))
        self.assertTrue(20 <= n_ord <= orders and n_rej <= rejects, f"the numbers Python wrote: {rec}")
        self.assertAlmostEqual(rec["measured"], n_rej / n_ord)
        self.assertGreater(rec["measured"], 0.2)

    def test_ack_shows_in_status(self) -> None:
        a, t = self.alpha, self.t
        t.heartbeat(a)  # the slot carries our pid: status lists this engine
        seen = self.c.change_seq()
        self.assertIs(self.c.check(a), bk.Mode.ACTIVE)
        self.d.ok("kill", "alpha", "--reason", "ack test")
        info = self.status()
        want = info["last_trip_change_seq"]
        acks = {x["strategy"]: x for x in info["acks"]}
        self.assertEqual(set(acks), {"alpha"}, "only engines that write telemetry are listed")
        self.assertEqual((acks["alpha"]["pid"], acks["alpha"]["acked"]), (os.getpid(), False))
        # the engine: sees the change, acts, acks the change_seq read before its check
        self.assertTrue(self.c.wait_change(seen, timeout=2))
        seen = self.c.change_seq()
        self.assertIs(self.c.check(a), bk.Mode.HALTED)
        t.report_cancel(a, 4)  # cancelled its working orders
        t.ack(a, seen)
        t.heartbeat(a)
        info = self.status()
        ack = {x["strategy"]: x for x in info["acks"]}["alpha"]
        self.assertEqual(info["last_trip_change_seq"], want)
        self.assertEqual((ack["pid"], ack["acked"], ack["ack_seq"]), (os.getpid(), True, want))
        self.assertTrue(0 <= ack["ack_latency_ns"] < 5_000 * MS, ack)


class ExampleEngineReports(unittest.TestCase):
    """clients/examples/engine_loop.py reports its orders, heartbeat and acks."""

    def test_python_example_reports_telemetry(self) -> None:
        d = Daemon("telex", extra_ini="heartbeat_bound_ms = 300\n" + STRATS)
        self.addCleanup(d.fini)
        d.start()
        root = os.environ.get("BK_SOURCE_DIR")
        base = Path(root) if root else Path(__file__).resolve().parents[3]
        e = subprocess.Popen([sys.executable, str(base / "clients" / "examples" / "engine_loop.py"),
                              "--instance", d.instance, "--strategy", "beta", "--seconds", "3",
                              "--interval-us", "500"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        self.addCleanup(lambda: e.poll() is None and e.kill())
        assert e.stdout is not None
        self.assertRegex(e.stdout.readline(), r"^engine: .* slot 1$")
        self.assertRegex(e.stdout.readline(), r"^mode ACTIVE ")
        time.sleep(0.3)
        d.ok("kill", "beta", "--reason", "example ack")
        self.assertRegex(e.stdout.readline(), r"^mode HALTED reason=kill_switch ")
        ack: dict[str, Any] = {}
        for _ in range(200):
            info = json.loads(d.ok("status", "--json"))["info"]
            ack = {x["strategy"]: x for x in info.get("acks", [])}.get("beta", {})
            if ack.get("acked"):
                break
            time.sleep(0.01)
        self.assertEqual((ack.get("pid"), ack.get("acked")), (e.pid, True), ack)
        self.assertEqual(ack["ack_seq"], info["last_trip_change_seq"])
        out, err = e.communicate(timeout=30)
        self.assertEqual(e.returncode, 0, err)
        m = re.search(r"sent (\d+), held back \d+, cancelled (\d+)", out)
        assert m is not None, out
        slot = c_tel_dump(d.instance, 1)["slots"][0]
        self.assertEqual((slot["orders"], slot["cancels"]), (int(m.group(1)), int(m.group(2))),
                         "every order and cancel reported")
        self.assertEqual((slot["pid"], slot["rejects"]), (e.pid, 0))
        self.assertGreater(slot["heartbeat_ns"], 0)
        self.assertGreater(slot["fills"], 0)
        with bk.attach(d.instance) as c:
            self.assertEqual(c.scope(1).latch_names, ["kill_switch"], "no rule tripped beta")
            self.assertIs(c.check(None), bk.Mode.ACTIVE, "balance conservation held: no global halt")


if __name__ == "__main__":
    unittest.main()

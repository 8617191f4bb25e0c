"""The Python client against a segment the test writes itself (no daemon):
attach errors, fail-closed checks, the seqlock, the futex, read-only mapping,
and agreement with the C client (bk_shm_dump) on values a daemon never writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import unittest

import breaker_client as bk
from breaker_client import _futex
from breaker_client import client as client_mod
from breaker_client import layout as L

from _segment import FakeSegment, unique_instance

MS = 1_000_000


class Attach(unittest.TestCase):
    def segment(self, tag: str, **kw: object) -> FakeSegment:
        seg = FakeSegment(tag, **kw)  # type: ignore[arg-type]
        self.addCleanup(seg.close)
        return seg

    def test_missing_segment_says_so(self) -> None:
        with self.assertRaises(FileNotFoundError) as cm:
            bk.attach(unique_instance("missing"))
        self.assertIn("is breakerd running?", str(cm.exception))

    def test_bad_instance_names(self) -> None:
        for name in ("", "a/b", "x" * 64):
            with self.subTest(name=name), self.assertRaises(ValueError):
                bk.attach(name)

    def test_not_ready_while_the_daemon_creates_it(self) -> None:
        with self.assertRaises(bk.NotReadyError):
            bk.attach(self.segment("empty", size=0).instance)
        with self.assertRaises(bk.NotReadyError):
            bk.attach(self.segment("v0", ready=False).instance)

    def test_foreign_file_is_refused(self) -> None:
        seg = self.segment("foreign")
        seg.mm[0:13] = b"not a breaker"
        with self.assertRaisesRegex(bk.LayoutError, "not a breaker segment"):
            bk.attach(seg.instance)

    def test_unknown_layout_version_is_refused(self) -> None:
        seg = self.segment("v3")
        seg.put("hdr.layout_version", 3)
        with self.assertRaisesRegex(bk.LayoutError, "layout version 3"):
            bk.attach(seg.instance)

    def test_a_layout_1_segment_is_refused(self) -> None:
        # what a breakerd before groups made: 262,400 bytes, version 1
        seg = self.segment("v1", size=262400, ready=False)
        seg.put("hdr.magic", L.MAGIC)
        seg.put("hdr.segment_size", 262400)
        seg.put("hdr.layout_version", 1)
        with self.assertRaisesRegex(bk.LayoutError, "layout 2 needs"):
            bk.attach(seg.instance)
        # and a full-size one that still says version 1
        seg = self.segment("v1big")
        seg.put("hdr.layout_version", 1)
        with self.assertRaisesRegex(bk.LayoutError, "layout version 1"):
            bk.attach(seg.instance)

    def test_wrong_sizes_are_refused(self) -> None:
        with self.assertRaises(bk.LayoutError):
            bk.attach(self.segment("short", size=4096).instance)
        seg = self.segment("size")
        seg.put("hdr.segment_size", L.SEGMENT_SIZE * 2)
        with self.assertRaisesRegex(bk.LayoutError, "segment_size"):
            bk.attach(seg.instance)

    def test_the_mapping_is_read_only(self) -> None:
        seg = self.segment("ro")
        seg.publish(None, 3, 1)
        with bk.attach(seg.instance) as c:
            start = f"{_futex.buffer_address(c._mm):x}-"
            with open("/proc/self/maps", encoding="ascii") as f:
                mine = [line.split() for line in f if line.startswith(start)]
            self.assertEqual(len(mine), 1, "the client's mapping is listed")
            self.assertEqual((mine[0][1], mine[0][-1]), ("r--s", seg.path), "shared, read-only, the segment")
            with self.assertRaises(TypeError):
                c._mm[0:8] = b"\0" * 8  # what a buggy engine would try
            self.assertIs(c.check(), bk.Mode.HALTED, "and the halt is still there")


class Checks(unittest.TestCase):
    def setUp(self) -> None:
        self.seg = FakeSegment("chk")
        self.addCleanup(self.seg.close)
        self.a = self.seg.add_strategy("alpha")
        self.b = self.seg.add_strategy("beta")
        self.c = bk.attach(self.seg.instance)
        self.addCleanup(self.c.close)

    def beat(self, age_ns: int = 0) -> int:
        now = time.monotonic_ns()
        self.seg.put("heartbeat_ns", now - age_ns)
        return now

    def test_resolve(self) -> None:
        self.assertEqual(self.c.resolve("alpha"), self.a)
        self.assertEqual(self.c.resolve("beta"), self.b)
        self.assertEqual(self.c.strategies(), ["alpha", "beta"])
        for name in ("alp", "alphaa", "gamma", "", "x" * 40):
            with self.subTest(name=name), self.assertRaises(KeyError):
                self.c.resolve(name)
        long = "s" * (L.NAME_MAX - 1)
        slot = self.seg.add_strategy(long)
        self.assertEqual(self.c.resolve(long), slot)

    def test_effective_mode_is_the_more_restrictive(self) -> None:
        self.assertIs(self.c.check(self.a), bk.Mode.ACTIVE)
        self.seg.publish(self.a, 2, 3)
        self.assertIs(self.c.check(self.a), bk.Mode.REDUCE_ONLY)
        self.assertIs(self.c.check(self.b), bk.Mode.ACTIVE)
        self.assertIs(self.c.check(), bk.Mode.ACTIVE, "global alone")
        self.seg.publish(None, 1, 8)
        self.assertIs(self.c.check(self.a), bk.Mode.REDUCE_ONLY)
        self.assertIs(self.c.check(self.b), bk.Mode.CAUTIOUS)
        self.seg.publish(None, 3, 2)
        self.assertIs(self.c.check(self.a), bk.Mode.HALTED)

    def test_unknown_modes_and_bad_slots_are_halted(self) -> None:
        self.seg.publish(self.a, 7)
        self.assertIs(self.c.check(self.a), bk.Mode.HALTED)
        self.seg.publish(None, 200)
        self.assertIs(self.c.check(), bk.Mode.HALTED)
        self.seg.publish(None, 0)
        for slot in (-1, L.MAX_STRATEGIES, 10**9):
            with self.subTest(slot=slot):
                self.assertIs(self.c.check(slot), bk.Mode.HALTED)

    def test_liveness_fails_closed(self) -> None:
        self.assertIs(self.c.check_live(self.a), bk.Mode.HALTED, "heartbeat 0: never beat / stopped")
        self.beat()
        self.assertIs(self.c.check_live(self.a), bk.Mode.ACTIVE)
        now = self.beat(age_ns=20 * MS)
        self.assertIs(self.c.check_live(self.a, now), bk.Mode.HALTED, "older than the daemon's 5 ms bound")
        self.assertIs(self.c.check_live(self.a, now, 30 * MS), bk.Mode.ACTIVE, "within an explicit bound")
        self.assertIs(self.c.check_live(self.a, now - 25 * MS), bk.Mode.ACTIVE, "heartbeat ahead of now")
        self.assertIs(self.c.check_live(self.a, now - 30 * MS), bk.Mode.HALTED, "ahead by more than the bound")
        self.seg.put("hdr.heartbeat_bound_ns", 50 * MS)
        self.assertIs(self.c.check_live(self.a, now), bk.Mode.ACTIVE, "bound 0 follows the header")
        self.seg.publish(self.a, 1)
        self.assertIs(self.c.check_live(self.a, now), bk.Mode.CAUTIOUS)
        self.seg.put("hdr.layout_version", 3)
        self.assertIs(self.c.check_live(self.a, now), bk.Mode.HALTED, "layout changed under us")
        self.seg.put("hdr.layout_version", 1)
        self.assertIs(self.c.check_live(self.a, now), bk.Mode.HALTED, "back to layout 1")
        self.seg.put("hdr.layout_version", 0)
        self.assertIs(self.c.check_live(self.a, now), bk.Mode.HALTED)
        self.seg.put("hdr.layout_version", 2)
        self.seg.put("heartbeat_ns", 0)
        self.assertIs(self.c.check_live(self.a, now, 10**18), bk.Mode.HALTED, "clean stop")

    def test_reason_names_the_winning_latch(self) -> None:
        self.seg.publish(self.a, 3, 4, uid=1001, latches=1 << 4 | 1 << 1, since_ns=111)
        self.seg.publish(None, 2, 1, uid=0, latches=1 << 1, since_ns=222)
        self.assertEqual(self.c.reason(self.a),
                         bk.Reason(bk.Mode.HALTED, "reject_rate", 1001, 111, "strategy", "alpha"))
        self.assertEqual(self.c.reason(self.b), bk.Reason(bk.Mode.REDUCE_ONLY, "manual_halt", 0, 222, "global", ""))
        self.assertEqual(self.c.reason(), self.c.reason(self.b))
        # equal modes: global's latch is named, as bk_read_reason does
        self.seg.publish(None, 3, 2, uid=5, latches=1 << 2, since_ns=333)
        self.assertEqual(self.c.reason(self.a),
                         bk.Reason(bk.Mode.HALTED, "emergency_stop", 5, 333, "global", ""))
        s = self.c.scope(self.a)
        self.assertEqual((s.name, s.mode, s.reason, s.actor_uid, s.since_wall_ns),
                         ("alpha", bk.Mode.HALTED, "reject_rate", 1001, 111))
        self.assertEqual(s.latch_names, ["manual_halt", "reject_rate"])
        self.assertEqual(self.c.scope().name, "")
        with self.assertRaises(IndexError):
            self.c.reason(L.MAX_STRATEGIES)

    def test_reason_names_the_group_holding_the_latch(self) -> None:
        g = self.seg.add_group("venue:XETR")
        self.seg.publish_group(g, 3, 13, uid=42, latches=1 << 13, since_ns=555)
        # the daemon folds the group's latch into the member's word, holder g + 1
        self.seg.publish(self.a, 3, 13, uid=42, since_ns=555, holder=g + 1)
        self.assertEqual(self.c.reason(self.a),
                         bk.Reason(bk.Mode.HALTED, "unknown(13)" if len(L.REASON_NAMES) <= 13 or not L.REASON_NAMES[13]
                                   else L.REASON_NAMES[13],
                                   42, 555, "group", "venue:XETR"))
        self.assertEqual(self.c.groups(), ["venue:XETR"])
        gs = self.c.group_scope(g)
        self.assertEqual((gs.name, gs.mode, gs.latches), ("venue:XETR", bk.Mode.HALTED, 1 << 13))
        self.assertEqual(self.c.reason(self.b).scope, "none", "ACTIVE: nobody holds it")

    def test_limits_are_the_strictest_of_global_and_the_slot(self) -> None:
        self.assertEqual(self.c.limits(self.a), bk.Limits(0, 1.0, None, None), "zeroed table: no limits")
        self.seg.put_limits(0, L.LIMIT_SIZE_FACTOR | L.LIMIT_MAX_QTY, 0.5, 100.0, 0.0)
        self.seg.put_limits(1 + self.a, L.LIMIT_SIZE_FACTOR | L.LIMIT_MAX_NOTIONAL, 0.25, 0.0, 1e6)
        self.assertEqual(self.c.limits(self.a), bk.Limits(7, 0.25, 100.0, 1e6))
        self.assertEqual(self.c.limits(self.b), bk.Limits(3, 0.5, 100.0, None))
        self.assertEqual(self.c.limits(), bk.Limits(3, 0.5, 100.0, None))
        self.seg.put_limits(1 + self.b, L.LIMIT_MAX_QTY, 0.0, float("nan"), 0.0)
        self.assertEqual(self.c.limits(self.b).max_qty, 0.0, "NaN fails closed")

    def test_seqlock_waits_for_the_writer(self) -> None:
        base = L.scope_offset(self.a)
        self.seg.publish(self.a, 3, 3, uid=7, since_ns=100)
        q = self.seg.get("scope.seq", base)
        self.seg.put("scope.seq", q + 1, base)  # writer in the middle of a publish
        self.seg.put("scope.since_ns", 999, base)

        def finish() -> None:
            time.sleep(0.05)
            self.seg.put("scope.state", 3 | 4 << 8 | 9 << 32, base)
            self.seg.put("scope.seq", q + 2, base)

        t = threading.Thread(target=finish)
        t.start()
        r = self.c.reason(self.a)
        t.join()
        self.assertEqual(r, bk.Reason(bk.Mode.HALTED, "reject_rate", 9, 999, "strategy", "alpha"),
                         "the finished publish, whole")

    def test_seqlock_stuck_odd_raises_instead_of_hanging(self) -> None:
        base = L.scope_offset(self.a)
        self.seg.put("scope.seq", 1, base)
        old = client_mod._SEQLOCK_GIVE_UP_NS
        client_mod._SEQLOCK_GIVE_UP_NS = 50 * MS
        self.addCleanup(setattr, client_mod, "_SEQLOCK_GIVE_UP_NS", old)
        with self.assertRaisesRegex(bk.BreakerError, "mid-write"):
            self.c.scope(self.a)
        self.assertIs(self.c.check(self.a), bk.Mode.ACTIVE, "the hot path needs no seqlock")

    def test_header(self) -> None:
        self.seg.put("heartbeat_ns", 42)
        self.seg.put("change_seq", 7)
        h = self.c.header()
        self.assertEqual(h.magic, L.MAGIC)
        self.assertEqual((h.layout_version, h.segment_size, h.strategy_count), (2, L.SEGMENT_SIZE, 2))
        self.assertEqual((h.daemon_pid, h.tick_period_ns, h.heartbeat_bound_ns),
                         (os.getpid(), 100_000, 5 * MS))
        self.assertEqual((h.heartbeat_ns, h.change_seq), (42, 7))


class WaitChange(unittest.TestCase):
    def setUp(self) -> None:
        self.seg = FakeSegment("futex")
        self.addCleanup(self.seg.close)
        self.c = bk.attach(self.seg.instance)
        self.addCleanup(self.c.close)

    def test_already_changed_returns_at_once(self) -> None:
        seen = self.c.change_seq()
        self.seg.changed()
        t0 = time.monotonic()
        self.assertTrue(self.c.wait_change(seen, timeout=5))
        self.assertLess(time.monotonic() - t0, 0.5)

    def test_timeout(self) -> None:
        t0 = time.monotonic()
        self.assertFalse(self.c.wait_change(self.c.change_seq(), timeout=0.05))
        self.assertGreaterEqual(time.monotonic() - t0, 0.05)
        self.assertFalse(self.c.wait_change(self.c.change_seq(), timeout=0))

    def test_woken_by_another_mapping(self) -> None:
        """A shared futex: the waker writes through its own mapping, as breakerd does."""
        seen = self.c.change_seq()
        out: list[bool] = []
        t = threading.Thread(target=lambda: out.append(self.c.wait_change(seen, timeout=10)))
        t0 = time.monotonic()
        t.start()
        time.sleep(0.1)
        self.assertEqual(out, [], "asleep while nothing changes")
        self.seg.changed()
        t.join(5)
        self.assertEqual(out, [True])
        self.assertLess(time.monotonic() - t0, 5, "woken, not timed out")

    def test_close_during_wait_is_refused(self) -> None:
        seen = self.c.change_seq()
        t = threading.Thread(target=self.c.wait_change, args=(seen, 2))
        t.start()
        time.sleep(0.05)
        with self.assertRaises(BufferError):
            self.c.close()
        self.seg.changed()
        t.join()


class CAgreesOnOddValues(unittest.TestCase):
    """bk_shm_dump (the C client) and this client on values no live daemon writes."""

    def test_edge_values(self) -> None:
        dump = os.environ.get("BK_SHM_DUMP")
        if not dump:
            self.fail("BK_SHM_DUMP is not set (ctest sets it to the bk_shm_dump binary)")
        seg = FakeSegment("edge")
        self.addCleanup(seg.close)
        for i in range(3):
            seg.add_strategy(f"s{i}")
        seg.put("heartbeat_ns", time.monotonic_ns() + 10**12)  # in the future: live
        seg.publish(None, 1, 200, uid=2**32 - 1, latches=2**32 - 1, since_ns=2**64 - 1)
        seg.publish(0, 9, 255, uid=65534, latches=1 << 31, since_ns=1)
        seg.publish(1, 255, 0, uid=0, latches=0, since_ns=0)
        seg.publish(2, 2, 11, uid=1, latches=1 << 11, since_ns=12345)
        out = subprocess.run([dump, seg.instance], capture_output=True, text=True, check=True).stdout
        want = json.loads(out)
        with bk.attach(seg.instance) as c:
            for slot in (None, 0, 1, 2):
                w = want["global"] if slot is None else want["strategies"][slot]
                s = c.scope(slot)
                r = c.reason(slot)
                with self.subTest(slot=slot):
                    self.assertEqual(s.state, w["state"])
                    self.assertEqual((s.reason_code, s.actor_uid, s.latches, s.since_wall_ns),
                                     (w["reason_code"], w["actor_uid"], w["latches"], w["since_ns"]))
                    self.assertEqual(c.check(slot).name, w["check"])
                    self.assertEqual(c.check_live(slot).name, w["check_live"])
                    wr = w["reason"]
                    self.assertEqual((r.mode.name, r.actor_uid, r.since_wall_ns),
                                     (wr["mode"], wr["actor_uid"], wr["since_wall_ns"]))
                    self.assertEqual(r.reason, bk.reason_name(w["reason"]["reason_code"]))
        self.assertEqual(want["global"]["check"], "CAUTIOUS")
        self.assertEqual(want["strategies"][0]["check"], "HALTED", "mode 9 is HALTED in C too")
        self.assertEqual(want["strategies"][1]["check"], "HALTED")


if __name__ == "__main__":
    unittest.main()


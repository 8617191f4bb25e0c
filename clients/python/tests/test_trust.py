"""In Python: a segment someone else made, or could
write, is no daemon (attach refuses, the engine fails closed); a heartbeat
further ahead of our clock than the bound is not live.
"""

from __future__ import annotations

import os
import time
import unittest

import breaker_client as bk

from _segment import FakeSegment

MS = 1_000_000
NOBODY = 65534


class WithoutDaemonUidEnv(unittest.TestCase):
    """Each test sets the expected daemon uid itself; the caller's is restored after."""

    def setUp(self) -> None:
        self.env = os.environ.pop(bk.DAEMON_UID_ENV, None)

    def tearDown(self) -> None:
        os.environ.pop(bk.DAEMON_UID_ENV, None)
        if self.env is not None:
            os.environ[bk.DAEMON_UID_ENV] = self.env


class ForgedSegment(WithoutDaemonUidEnv):
    def forged(self, tag: str) -> FakeSegment:
        """As the issue planted it: valid layout, ACTIVE, a fresh heartbeat."""
        seg = FakeSegment(tag)
        self.addCleanup(seg.close)
        seg.put("heartbeat_ns", time.monotonic_ns())
        return seg

    @unittest.skipUnless(os.geteuid() == 0, "chown needs root")
    def test_segment_owned_by_another_user_is_refused(self) -> None:
        seg = self.forged("own")
        os.chown(seg.path, NOBODY, NOBODY)
        with self.assertRaises(bk.UntrustedSegmentError) as cm:
            bk.attach(seg.instance)
        self.assertIn("uid 65534", str(cm.exception))
        # ... unless breakerd is known to run as that user
        with bk.attach(seg.instance, daemon_uid=NOBODY) as c:
            self.assertIs(c.check_live(), bk.Mode.ACTIVE)
        os.environ[bk.DAEMON_UID_ENV] = str(NOBODY)
        bk.attach(seg.instance).close()
        os.environ[bk.DAEMON_UID_ENV] = "0"
        with self.assertRaises(bk.UntrustedSegmentError):
            bk.attach(seg.instance)
        os.environ[bk.DAEMON_UID_ENV] = "no-such-user-here"
        with self.assertRaises(bk.UntrustedSegmentError, msg="a bad setting fails closed"):
            bk.attach(seg.instance)

    def test_segment_others_can_write_is_refused(self) -> None:
        seg = self.forged("mode")
        for mode in (0o666, 0o664, 0o646):
            os.chmod(seg.path, mode)
            with self.subTest(mode=oct(mode)), self.assertRaises(bk.UntrustedSegmentError) as cm:
                bk.attach(seg.instance)
            self.assertIn("writable", str(cm.exception))
        os.chmod(seg.path, 0o644)
        bk.attach(seg.instance).close()
        os.environ[bk.DAEMON_UID_ENV] = "no-such-user-here"
        with self.assertRaises(bk.UntrustedSegmentError, msg="a bad setting fails closed, root's segment too"):
            bk.attach(seg.instance)

    def test_hard_linked_segment_is_refused(self) -> None:
        """A second name (a hard link to another instance's segment, which any
        user may make where fs.protected_hardlinks is 0) is not breakerd's."""
        seg = self.forged("hl")
        os.chmod(seg.path, 0o644)
        other = f"{seg.instance}-other"
        link = os.path.join(os.path.dirname(seg.path), f"breaker.{other}")
        os.link(seg.path, link)
        self.addCleanup(os.unlink, link)
        with self.assertRaises(bk.UntrustedSegmentError) as cm:
            bk.attach(other)
        self.assertIn("hard link", str(cm.exception))

    def test_untrusted_is_a_breaker_error(self) -> None:
        self.assertTrue(issubclass(bk.UntrustedSegmentError, bk.BreakerError))


class ForgedTelemetry(WithoutDaemonUidEnv):
    """The telemetry segment too (test_redteam.c has the C side): numbers
    written into a segment another user made never reach breakerd's rules."""

    def forged(self, tag: str) -> str:
        import struct

        from breaker_client import layout as L

        instance = f"py{os.getpid()}-{tag}"
        path = bk.telemetry_path(instance)
        with open(path, "wb") as f:
            f.truncate(L.TEL_SEGMENT_SIZE)
            f.write(struct.pack("<QIIIIQ", L.TEL_MAGIC, L.TEL_VERSION, L.TEL_SLOT_SIZE,
                                L.MAX_STRATEGIES, 0, L.TEL_SEGMENT_SIZE))
        self.addCleanup(os.unlink, path)
        return instance

    @unittest.skipUnless(os.geteuid() == 0, "chown needs root")
    def test_telemetry_segment_of_another_user_is_refused(self) -> None:
        instance = self.forged("tel")
        path = bk.telemetry_path(instance)
        os.chmod(path, 0o660)
        bk.attach_telemetry(instance).close()  # root's, group-writable: breakerd's default
        os.chown(path, NOBODY, NOBODY)
        with self.assertRaises(bk.UntrustedSegmentError) as cm:
            bk.attach_telemetry(instance)
        self.assertIn("uid 65534", str(cm.exception))
        os.chown(path, 0, 0)
        os.chmod(path, 0o666)
        with self.assertRaises(bk.UntrustedSegmentError) as cm:
            bk.attach_telemetry(instance)
        self.assertIn("writable by others", str(cm.exception))


class FutureHeartbeat(unittest.TestCase):
    def test_heartbeat_ahead_by_more_than_the_bound_is_not_live(self) -> None:
        seg = FakeSegment("future")
        self.addCleanup(seg.close)
        seg.put("hdr.heartbeat_bound_ns", 50 * MS)
        now = time.monotonic_ns()
        # a daemon in another time namespace stamps ten seconds ahead
        seg.put("heartbeat_ns", now + 10_000 * MS)
        with bk.attach(seg.instance) as c:
            self.assertIs(c.check_live(None, now), bk.Mode.HALTED)
            self.assertIs(c.check_live(None, now, 20_000 * MS), bk.Mode.ACTIVE, "within an explicit bound")
            seg.put("heartbeat_ns", now + 1 * MS)  # stamped just after we read our clock
            self.assertIs(c.check_live(None, now), bk.Mode.ACTIVE)
            seg.put("heartbeat_ns", now + 51 * MS)
            self.assertIs(c.check_live(None, now), bk.Mode.HALTED)


if __name__ == "__main__":
    unittest.main()

"""Telemetry writer: an engine's own numbers, for breakerd's rules.

The Python twin of bk_tel_attach() and the bk_report_*() functions of
clients/c/breaker_client.h. The layout is docs/shm-layout.md, "Telemetry
segment (version 1)"; the offsets are in layout.py; what the daemon does with
the numbers is docs/rules.md.

    tel = bk.attach_telemetry("default")    # read-write mapping of /dev/shm/breaker.default.tel
    tel.heartbeat(slot)                     # every few ms: the dead-man switch
    tel.report_order(slot)                  # per order sent
    tel.report_reject(slot)                 # per venue reject
    tel.fill(slot, cash=-1000.0, fee=2.0, balance=98998.0, position=1000.0)
    tel.ack(slot, client.change_seq())      # after acting on a mode change

One writer per slot
-------------------
A slot has exactly ONE writer: the engine running that strategy, and within
it one thread at a time (or serialise the calls with your own lock). A
counter is updated with a plain load and a store, not an atomic add, and the
seqlock below assumes nobody else moves `gseq`: two threads reporting into
the same slot lose counts and can publish half-written money words. Slots of
different strategies are independent.

How a word is written, and why that is one store
------------------------------------------------
Each 64-bit word is written by item assignment into a memoryview of the
mapping cast to the *native* format ("Q" for u64, "d" for f64, "I" for u32)
at its aligned index: CPython's memoryview item store converts the value
first, then does `memcpy(ptr, &x, sizeof x)` with a constant size, which
compilers emit as one aligned store (one `mov` on x86-64, one `str` on
aarch64), and an aligned 8-byte store is single-copy atomic on both. As
client.py says of loads: CPython promises none of this formally; it holds
because of how Objects/memoryobject.c is written.

Do NOT use struct.pack_into() for a word another process reads outside a
seqlock: CPython's pack_into first memset()s the destination to zero and only
then writes the value, so a concurrent reader can see 0 (a counter going
backwards, a heartbeat of "never"); clients/python/tests/test_telemetry.py
shows it happen.
The money words are written with one slice assignment (a memcpy of the whole
block) *inside* the seqlock, where a reader that overlaps the copy retries.

Ordering: release semantics on x86-64 only
------------------------------------------
The C writer publishes with release stores (the counters, heartbeat_ns,
ack_seq after ack_ns, gseq after the money words). This module has no fence
to issue: pure Python cannot emit one. It does the stores in program order,
each from a separate C call (the compiler cannot move a store to the mapping
across them), and on x86-64 the hardware keeps stores in order (TSO: a store
is never reordered with an earlier store), so every store here is a release
store and the seqlock holds exactly as specified. On aarch64 (and other
weakly ordered CPUs) stores CAN become visible out of order and a correct
writer needs a `dmb ishst` before the ordering stores, which CPython does not
issue: each word is still written whole, but the daemon could in theory see
gseq even before a money word of that update lands, or ack_seq before ack_ns.
ORDERED_STORES tells which case this host is. Fix for aarch64: write the
telemetry from C (breaker_client.h), or through a small extension that
issues the fence.

The seqlock (money words)
-------------------------
fill(), marks() and balance() take the slot's gseq to an odd value, write
their words, then store the next even value; breakerd skips money rules for
a tick in which gseq is odd or moved. Every value is converted to float
before gseq moves, so a bad argument raises with nothing written; the even
store is in a `finally`, so an exception between the stores (Ctrl-C) still
publishes either all of the old words or all of the new ones. A slot whose
gseq was left odd by a writer that died mid-update is recovered by the next
update (it moves to the next odd value, then even), where the C writer's
plain increment would invert the parity for good.
"""

from __future__ import annotations

import errno
import mmap
import os
import platform
import struct
import sys
import time
from dataclasses import dataclass

from . import layout as L
from .client import (
    BreakerError,
    LayoutError,
    NotReadyError,
    UntrustedSegmentError,
    _check_owner,
    segment_path,
)

if sys.byteorder != "little":  # the segment is little-endian; native writes must be too
    raise ImportError("breaker_client: the breaker segments are little-endian; this host is not")

#: True where stores in program order are seen in that order by other CPUs
#: (x86-64): there every store this module does is a release store. False
#: elsewhere: see "Ordering" in this module's docstring.
ORDERED_STORES: bool = platform.machine().lower() in ("x86_64", "amd64")

_F = L.FIELDS
_MASK64 = (1 << 64) - 1
_MASK32 = 0xFFFFFFFF
_SLOTS = _F["tel.slots"].offset
_NSLOTS = L.MAX_STRATEGIES

# Word indexes: a slot's first word in the "Q"/"d" views and in the "I" view,
# and each field's index inside its slot. Every field is aligned to its size.
_W8_BASE, _W8_STRIDE = _SLOTS // 8, L.TEL_SLOT_SIZE // 8
_W4_BASE, _W4_STRIDE = _SLOTS // 4, L.TEL_SLOT_SIZE // 4


def _w(name: str) -> int:
    f = _F[name]
    if f.offset % f.size:
        raise ImportError(f"breaker_client: {name} is not aligned")
    return f.offset // f.size


_ORDERS, _REJECTS, _CANCELS = _w("slot.orders"), _w("slot.rejects"), _w("slot.cancels")
_HEARTBEAT, _ACK_NS = _w("slot.heartbeat_ns"), _w("slot.ack_ns")
_ACK_SEQ, _PID, _GSEQ = _w("slot.ack_seq"), _w("slot.pid"), _w("slot.gseq")
_FILLS, _FILL_CASH, _FEES = _w("slot.fills"), _w("slot.fill_cash"), _w("slot.fees")
_BALANCE, _POSITION = _w("slot.balance"), _w("slot.position")
_GROSS, _PNL = _w("slot.gross"), _w("slot.pnl")
_OPEN_BASE, _OPEN_FILLS = _w("slot.opening_base"), _w("slot.opening_fills")
_OPEN_SEQ = _w("slot.opening_seq")
_WORKING, _WORKING_NS = _w("slot.working_orders"), _w("slot.working_ns")
_MD_NS, _SESSION, _SESSION_NS = _w("slot.md_last_ns"), _w("slot.session"), _w("slot.session_ns")

# The money blocks, each contiguous: (byte offset in the slot, native struct)
_FILL_OFF, _FILL_BLOCK = _F["slot.fills"].offset, struct.Struct("Qdddd")  # fills .. position
_MARKS_OFF, _MARKS_BLOCK = _F["slot.position"].offset, struct.Struct("ddd")  # position, gross, pnl
_BAL_OFF, _BAL_BLOCK = _F["slot.balance"].offset, struct.Struct("d")
assert _FILL_OFF + _FILL_BLOCK.size == _F["slot.gross"].offset
assert _MARKS_OFF + _MARKS_BLOCK.size == _F["slot.working_orders"].offset  # money ends line 1

_SEQLOCK_GIVE_UP_NS = 1_000_000_000  # read(): a live writer never holds gseq odd this long

_pid = os.getpid()


def _after_fork() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork)


def telemetry_path(instance: str = "default") -> str:
    """/dev/shm/breaker.<instance>.tel, the file behind shm_open("/breaker.<instance>.tel")."""
    return segment_path(instance) + L.TEL_SUFFIX


@dataclass(frozen=True)
class TelemetrySlot:
    """One slot as read now; the money words read together under gseq."""

    orders: int
    rejects: int
    cancels: int
    heartbeat_ns: int
    ack_seq: int
    pid: int
    ack_ns: int
    gseq: int
    fills: int
    fill_cash: float
    fees: float
    balance: float
    position: float
    gross: float
    pnl: float
    opening_base: float = 0.0  # the opening-balance statement (under gseq)
    opening_fills: int = 0
    opening_seq: int = 0
    # version 2: the engine's view of its venue (a time of 0 = never reported)
    working_orders: int = 0
    working_ns: int = 0
    md_last_ns: int = 0
    session: int = 0  # layout.SESSION_*
    session_ns: int = 0


def attach_telemetry(instance: str = "default", daemon_uid: int | None = None) -> Telemetry:
    """Map the instance's telemetry segment read-write (O_RDWR, MAP_SHARED).

    The daemon creates it at start with mode 0660 (`telemetry_mode`): the
    engine must run in breakerd's group. Raises FileNotFoundError (no
    daemon has created it), PermissionError (not in the group), NotReadyError
    (being created: retry), LayoutError (foreign or unknown layout; breakerd
    replaces such a segment, so retrying after a moment may work),
    UntrustedSegmentError (another user made it, or others may write it:
    numbers written there would never reach breakerd's rules; daemon_uid as
    for attach()).
    """
    path = telemetry_path(instance)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileNotFoundError(
            errno.ENOENT, f"no telemetry segment for breaker instance {instance!r} "
            "(is breakerd running? it creates the segment at start)", path) from None
    except PermissionError:
        raise PermissionError(
            errno.EACCES, "cannot open the telemetry segment read-write: the engine must be "
            "in breakerd's group (config telemetry_mode, default 0660)", path) from None
    try:
        st = os.fstat(fd)
        # the fd, not the name: what we map is what we checked. The group
        # (the engines) may write it; others may not.
        if st.st_mode & 0o002:
            raise UntrustedSegmentError(
                f"{path}: mode {st.st_mode & 0o7777:04o} is writable by others: "
                "not breakerd's telemetry segment; failing closed")
        _check_owner(os.stat_result((st.st_mode & ~0o022,) + tuple(st)[1:]), path, daemon_uid)
        if st.st_size == 0:
            raise NotReadyError(f"{path}: breakerd is still creating the telemetry segment; retry")
        if st.st_size < L.TEL_SEGMENT_SIZE:
            raise LayoutError(f"{path}: {st.st_size} bytes, telemetry version {L.TEL_VERSION} "
                              f"needs {L.TEL_SEGMENT_SIZE}")
        mm = mmap.mmap(fd, L.TEL_SEGMENT_SIZE, flags=mmap.MAP_SHARED,
                       prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    try:
        _validate(mm, path)
    except BaseException:
        mm.close()
        raise
    return Telemetry(mm, instance, path, (st.st_dev, st.st_ino))


def _validate(mm: mmap.mmap, path: str) -> None:
    def get(name: str) -> int:
        f = _F[name]
        return struct.unpack_from(f.fmt, mm, f.offset)[0]

    version = get("tel.version")
    if version == 0:
        raise NotReadyError(f"{path}: breakerd is still creating the telemetry segment; retry")
    magic = get("tel.magic")
    if magic != L.TEL_MAGIC:
        raise LayoutError(f"{path}: not a breaker telemetry segment (magic {magic:#x})")
    if version != L.TEL_VERSION:
        raise LayoutError(f"{path}: telemetry version {version}, this client writes "
                          f"{L.TEL_VERSION} (upgrade the client)")
    for name, want in (("tel.segment_size", L.TEL_SEGMENT_SIZE), ("tel.slot_size", L.TEL_SLOT_SIZE),
                       ("tel.capacity", L.MAX_STRATEGIES)):
        got = get(name)
        if got != want:
            raise LayoutError(f"{path}: {name} {got}, telemetry version {L.TEL_VERSION} has {want}")


def _bad_slot(slot: object) -> IndexError:
    return IndexError(f"telemetry slot {slot!r} outside [0, {_NSLOTS})")


def _count(n: int) -> int:
    if not 0 <= n <= _MASK64:
        raise ValueError(f"count {n!r}: counters only grow (0 <= n < 2**64)")
    return n


class Telemetry:
    """This engine's read-write view of the telemetry segment. Use attach_telemetry().

    Every method takes the strategy's slot, as resolved with
    Client.resolve() on the state segment (the same index). A slot outside
    [0, 4096) raises IndexError (the C functions ignore it silently).
    """

    def __init__(self, mm: mmap.mmap, instance: str, path: str, ident: tuple[int, int]) -> None:
        self._mm = mm
        self.instance = instance
        self.path = path
        self._ident = ident
        raw = memoryview(mm)
        self._q = raw.cast("Q")  # native u64: one aligned load or store per item
        self._d = raw.cast("d")  # native f64, same words seen as doubles
        self._i = raw.cast("I")  # native u32
        raw.release()

    # -- lifetime ---------------------------------------------------------

    def close(self) -> None:
        """Unmap. The numbers stay in the segment for the daemon to read."""
        for view in (self._q, self._d, self._i):
            view.release()
        self._mm.close()

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def replaced(self) -> bool:
        """True if the file at the path is no longer the segment mapped here.

        breakerd replaces a telemetry segment it finds foreign, resized or
        damaged (docs/shm-layout.md); an engine still writing into the old
        mapping is then invisible to the rules. One stat(2): call it now and
        then (e.g. once a second), and re-attach when it answers True.
        """
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True
        return (st.st_dev, st.st_ino) != self._ident

    # -- counters: one word each, plain load + store (single writer) --------

    def report_order(self, slot: int, n: int = 1) -> None:
        """n orders sent (bk_report_order)."""
        if not 0 <= slot < _NSLOTS:
            raise _bad_slot(slot)
        i = _W8_BASE + _W8_STRIDE * slot + _ORDERS
        q = self._q
        q[i] = (q[i] + _count(n)) & _MASK64

    def report_reject(self, slot: int, n: int = 1) -> None:
        """n orders rejected by the venue (bk_report_reject)."""
        if not 0 <= slot < _NSLOTS:
            raise _bad_slot(slot)
        i = _W8_BASE + _W8_STRIDE * slot + _REJECTS
        q = self._q
        q[i] = (q[i] + _count(n)) & _MASK64

    def report_cancel(self, slot: int, n: int = 1) -> None:
        """n cancels sent (bk_report_cancel)."""
        if not 0 <= slot < _NSLOTS:
            raise _bad_slot(slot)
        i = _W8_BASE + _W8_STRIDE * slot + _CANCELS
        q = self._q
        q[i] = (q[i] + _count(n)) & _MASK64

    def heartbeat(self, slot: int, now_ns: int | None = None) -> None:
        """The engine is alive (bk_report_heartbeat): call at least every few ms.

        now_ns is CLOCK_MONOTONIC ns (default time.monotonic_ns()). The
        first beat arms the daemon's heartbeat rule for this slot (a
        dead-man switch: stop beating and the strategy trips
        stale_heartbeat). Also writes this process's pid into the slot when
        it holds another (the C function writes it only when it is 0, so
        there a restarted engine keeps showing its predecessor's pid).
        """
        if not 0 <= slot < _NSLOTS:
            raise _bad_slot(slot)
        if now_ns is None:
            now_ns = time.monotonic_ns()
        elif not 0 <= now_ns <= _MASK64:
            raise ValueError(f"now_ns {now_ns!r} is not a CLOCK_MONOTONIC ns value")
        p = _W4_BASE + _W4_STRIDE * slot + _PID
        if self._i[p] != _pid:
            self._i[p] = _pid
        self._q[_W8_BASE + _W8_STRIDE * slot + _HEARTBEAT] = now_ns

    def ack(self, slot: int, seq: int, now_ns: int | None = None) -> None:
        """The engine has acted on change_seq `seq` (bk_report_ack).

        Call it after acting on a mode change (e.g. once its orders are
        cancelled), with the Client.change_seq() read before the check that
        saw the change. `breaker status` shows which engines acked the
        latest trip and how long each took. now_ns as for heartbeat().
        """
        if not 0 <= slot < _NSLOTS:
            raise _bad_slot(slot)
        if not 0 <= seq <= _MASK32:
            raise ValueError(f"seq {seq!r} is not a change_seq (u32)")
        if now_ns is None:
            now_ns = time.monotonic_ns()
        elif not 0 <= now_ns <= _MASK64:
            raise ValueError(f"now_ns {now_ns!r} is not a CLOCK_MONOTONIC ns value")
        self._q[_W8_BASE + _W8_STRIDE * slot + _ACK_NS] = now_ns
        self._i[_W4_BASE + _W4_STRIDE * slot + _ACK_SEQ] = seq  # after ack_ns: the release store

    # -- the venue words (version 2): the value, then its time -------------

    @staticmethod
    def _now(now_ns: int | None) -> int:
        if now_ns is None:
            return time.monotonic_ns() or 1
        if not 0 <= now_ns <= _MASK64:
            raise ValueError(f"now_ns {now_ns!r} is not a CLOCK_MONOTONIC ns value")
        return now_ns or 1  # 0 means "never reported"

    def working(self, slot: int, n: int, now_ns: int | None = None) -> None:
        """Orders working at the venue now (bk_report_working).

        Report it whenever it changes and again when acting on a halt, even
        if unchanged: `breaker status` confirms "flat" only from a count
        written after the halt. now_ns as for heartbeat().
        """
        if not 0 <= slot < _NSLOTS:
            raise _bad_slot(slot)
        n = _count(n)
        now_ns = self._now(now_ns)
        w = _W8_BASE + _W8_STRIDE * slot
        self._q[w + _WORKING] = n
        self._q[w + _WORKING_NS] = now_ns  # after the count: the release store

    def md_tick(self, slot: int, now_ns: int | None = None) -> None:
        """A market-data tick arrived (bk_report_md_tick)."""
        if not 0 <= slot < _NSLOTS:
            raise _bad_slot(slot)
        self._q[_W8_BASE + _W8_STRIDE * slot + _MD_NS] = self._now(now_ns)

    def session(self, slot: int, up: bool, now_ns: int | None = None) -> None:
        """The order-entry session with the venue went up or down (bk_report_session)."""
        if not 0 <= slot < _NSLOTS:
            raise _bad_slot(slot)
        now_ns = self._now(now_ns)
        self._i[_W4_BASE + _W4_STRIDE * slot + _SESSION] = L.SESSION_UP if up else L.SESSION_DOWN
        self._q[_W8_BASE + _W8_STRIDE * slot + _SESSION_NS] = now_ns

    # -- money words: under the slot's seqlock gseq --------------------------

    def _publish(self, slot: int, off: int, block: bytes) -> None:
        """gseq odd -> the words -> gseq even, the words as one memcpy."""
        g = _W4_BASE + _W4_STRIDE * slot + _GSEQ
        i = self._i
        q = i[g]
        odd = (q + 1 + (q & 1)) & _MASK32  # the next odd value, even if a dead writer left it odd
        start = _SLOTS + L.TEL_SLOT_SIZE * slot + off
        try:
            i[g] = odd
            self._mm[start : start + len(block)] = block
        finally:
            i[g] = (odd + 1) & _MASK32

    def fill(self, slot: int, cash: float, fee: float, balance: float, position: float) -> None:
        """A fill (bk_report_fill): signed cash (negative when buying), the fee
        paid, and the cash balance and net position after it, published
        together. fills += 1, fill_cash += cash, fees += fee. The daemon's
        invariant rule checks that the balance moves only by fill cash minus
        fees (a breach HALTs global).
        """
        if not 0 <= slot < _NSLOTS:
            raise _bad_slot(slot)
        cash, fee, balance, position = float(cash), float(fee), float(balance), float(position)
        w = _W8_BASE + _W8_STRIDE * slot
        block = _FILL_BLOCK.pack((self._q[w + _FILLS] + 1) & _MASK64, self._d[w + _FILL_CASH] + cash,
                                 self._d[w + _FEES] + fee, balance, position)
        self._publish(slot, _FILL_OFF, block)

    def marks(self, slot: int, position: float, gross: float, pnl: float) -> None:
        """Marks (bk_report_marks): net position and gross exposure (notional)
        and PnL (realized + unrealized), published together."""
        if not 0 <= slot < _NSLOTS:
            raise _bad_slot(slot)
        self._publish(slot, _MARKS_OFF, _MARKS_BLOCK.pack(float(position), float(gross), float(pnl)))

    def opening_balance(self, slot: int, balance: float) -> None:
        """The opening balance (bk_report_opening_balance): start of the
        engine or of a trading day. From here on balance conservation expects
        balance == this balance + fill cash - fees reported after this call.
        The statement (balance - (fill_cash - fees) now, the fill count, and
        opening_seq + 1) is published with the balance under gseq, so the
        daemon takes the base from it however many fills follow before its
        next tick."""
        if not 0 <= slot < _NSLOTS:
            raise _bad_slot(slot)
        balance = float(balance)
        q, d, i = self._q, self._d, self._i
        w = _W8_BASE + _W8_STRIDE * slot
        h = _W4_BASE + _W4_STRIDE * slot
        base = balance - (d[w + _FILL_CASH] - d[w + _FEES])
        fills = q[w + _FILLS]
        g = h + _GSEQ
        cur = i[g]
        odd = (cur + 1 + (cur & 1)) & _MASK32
        try:
            i[g] = odd
            d[w + _OPEN_BASE] = base
            q[w + _OPEN_FILLS] = fills
            d[w + _BALANCE] = balance
            i[h + _OPEN_SEQ] = (i[h + _OPEN_SEQ] + 1) & _MASK32
        finally:
            i[g] = (odd + 1) & _MASK32

    def balance(self, slot: int, balance: float) -> None:
        """The cash balance alone (bk_report_balance). Before the slot's
        first fill it is the opening balance (a statement, as
        opening_balance()); after it only the balance word moves, and
        conservation judges it: a mid-day correction is not a new base."""
        if not 0 <= slot < _NSLOTS:
            raise _bad_slot(slot)
        if self._q[_W8_BASE + _W8_STRIDE * slot + _FILLS] == 0:
            self.opening_balance(slot, balance)
            return
        self._publish(slot, _BAL_OFF, _BAL_BLOCK.pack(float(balance)))

    # -- reading back, for tools and tests ---------------------------------

    def read(self, slot: int) -> TelemetrySlot:
        """Every field of a slot; the money words under gseq, as the daemon reads them."""
        if not 0 <= slot < _NSLOTS:
            raise _bad_slot(slot)
        q, d, i = self._q, self._d, self._i
        w = _W8_BASE + _W8_STRIDE * slot
        h = _W4_BASE + _W4_STRIDE * slot
        give_up = 0
        spins = 0
        while True:
            g = i[h + _GSEQ]
            if not g & 1:
                money = (q[w + _FILLS], d[w + _FILL_CASH], d[w + _FEES], d[w + _BALANCE],
                         d[w + _POSITION], d[w + _GROSS], d[w + _PNL], d[w + _OPEN_BASE],
                         q[w + _OPEN_FILLS], i[h + _OPEN_SEQ])
                if g == i[h + _GSEQ]:
                    break
            spins += 1
            if spins % 64 == 0:
                time.sleep(0)  # let a writer thread of this process finish (GIL)
                now = time.monotonic_ns()
                give_up = give_up or now + _SEQLOCK_GIVE_UP_NS
                if now > give_up:
                    raise BreakerError(f"{self.path}: telemetry slot {slot} stays mid-write (gseq {g})")
        return TelemetrySlot(q[w + _ORDERS], q[w + _REJECTS], q[w + _CANCELS], q[w + _HEARTBEAT],
                             i[h + _ACK_SEQ], i[h + _PID], q[w + _ACK_NS], g, *money,
                             q[w + _WORKING], q[w + _WORKING_NS], q[w + _MD_NS], i[h + _SESSION],
                             q[w + _SESSION_NS])

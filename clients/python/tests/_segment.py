"""A hand-written breaker segment for unit tests: the test plays the daemon.

It lays the segment out from layout.FIELDS (itself checked against
docs/shm-layout.md) and writes through its own read-write mapping.
"""

from __future__ import annotations

import ctypes
import itertools
import mmap
import os
import platform
import struct

from breaker_client import layout as L

_counter = itertools.count()
_FUTEX_WAKE = 1


def unique_instance(tag: str) -> str:
    return f"pyt{os.getpid()}-{tag}-{next(_counter)}"


class FakeSegment:
    def __init__(self, tag: str, size: int = L.SEGMENT_SIZE, ready: bool = True) -> None:
        self.instance = unique_instance(tag)
        self.path = os.path.join(L.SHM_DIR, L.SHM_PREFIX + self.instance)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            os.ftruncate(fd, size)
            self.mm = mmap.mmap(fd, size) if size else None
        finally:
            os.close(fd)
        if self.mm is not None and size >= L.SEGMENT_SIZE:
            self.put("hdr.magic", L.MAGIC)
            self.put("hdr.header_size", 256)
            self.put("hdr.segment_size", L.SEGMENT_SIZE)
            self.put("hdr.strategy_capacity", L.MAX_STRATEGIES)
            self.put("hdr.strategy_entry_size", L.SCOPE_SIZE)
            self.put("hdr.strategy_table_offset", L.FIELDS["strategies"].offset)
            self.put("hdr.daemon_pid", os.getpid())
            self.put("hdr.tick_period_ns", 100_000)
            self.put("hdr.heartbeat_bound_ns", 5_000_000)
            if ready:
                self.put("hdr.layout_version", L.LAYOUT_VERSION)

    def close(self) -> None:
        if self.mm is not None:
            self.mm.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def put(self, field: str, value: int, base: int = 0) -> None:
        f = L.FIELDS[field]
        struct.pack_into(f.fmt, self.mm, base + f.offset, value)

    def get(self, field: str, base: int = 0) -> int:
        f = L.FIELDS[field]
        return struct.unpack_from(f.fmt, self.mm, base + f.offset)[0]

    def add_strategy(self, name: str) -> int:
        slot = self.get("hdr.strategy_count")
        off = L.scope_offset(slot) + L.FIELDS["scope.name"].offset
        self.mm[off : off + L.NAME_MAX] = name.encode().ljust(L.NAME_MAX, b"\0")
        self.put("hdr.strategy_count", slot + 1)
        return slot

    def add_group(self, name: str) -> int:
        g = self.get("hdr.group_count")
        off = L.group_offset(g) + L.FIELDS["scope.name"].offset
        self.mm[off : off + L.NAME_MAX] = name.encode().ljust(L.NAME_MAX, b"\0")
        self.put("hdr.group_count", g + 1)
        return g

    def publish_group(self, g: int, mode: int, reason: int = 0, uid: int = 0,
                      latches: int = 0, since_ns: int = 0) -> None:
        self._publish_at(L.group_offset(g), mode, reason, uid, latches, since_ns, 0)

    def put_limits(self, entry: int, flags: int, size_factor: float, max_qty: float,
                   max_notional: float) -> None:
        """As bk_shm_set_limits: seq odd, the entry, seq even."""
        base = L.limits_offset(entry)
        q = self.get("limit.seq", base)
        self.put("limit.seq", q + 1, base)
        self.put("limit.flags", flags, base)
        struct.pack_into("d", self.mm, base + L.FIELDS["limit.size_factor"].offset, size_factor)
        struct.pack_into("d", self.mm, base + L.FIELDS["limit.max_qty"].offset, max_qty)
        struct.pack_into("d", self.mm, base + L.FIELDS["limit.max_notional"].offset, max_notional)
        self.put("limit.seq", q + 2, base)

    def publish(self, slot: int | None, mode: int, reason: int = 0, uid: int = 0,
                latches: int = 0, since_ns: int = 0, holder: int = 0) -> None:
        """As bk_shm_publish: seq odd, details, state word, seq even."""
        self._publish_at(L.scope_offset(slot), mode, reason, uid, latches, since_ns, holder)

    def _publish_at(self, base: int, mode: int, reason: int, uid: int, latches: int,
                    since_ns: int, holder: int) -> None:
        q = self.get("scope.seq", base)
        self.put("scope.seq", q + 1, base)
        self.put("scope.since_ns", since_ns, base)
        self.put("scope.latches", latches, base)
        self.put("scope.state", mode | reason << 8 | holder << 16 | uid << 32, base)
        self.put("scope.seq", q + 2, base)

    def changed(self) -> None:
        """change_seq += 1 and FUTEX_WAKE every waiter, as the daemon does."""
        self.put("change_seq", (self.get("change_seq") + 1) & 0xFFFFFFFF)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(self.mm)) + L.FIELDS["change_seq"].offset
        nr = {"x86_64": 202, "aarch64": 98}[platform.machine()]
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall(ctypes.c_long(nr), ctypes.c_void_p(addr), ctypes.c_long(_FUTEX_WAKE),
                     ctypes.c_long(2**31 - 1), None, None, ctypes.c_long(0))


class FakeTelemetry:
    """A hand-made telemetry segment (/dev/shm/breaker.<instance>.tel), laid
    out from layout.FIELDS as breakerd's bk_tel_open() creates it. The test
    reads the engine's words back through its own mapping, field by field."""

    def __init__(self, tag: str, size: int = L.TEL_SEGMENT_SIZE, ready: bool = True,
                 instance: str | None = None) -> None:
        self.instance = instance or unique_instance(tag)
        self.path = os.path.join(L.SHM_DIR, L.SHM_PREFIX + self.instance + L.TEL_SUFFIX)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o660)
        try:
            os.ftruncate(fd, size)
            self.mm = mmap.mmap(fd, size) if size else None
        finally:
            os.close(fd)
        if self.mm is not None and size >= L.TEL_SEGMENT_SIZE:
            self.put("tel.magic", L.TEL_MAGIC)
            self.put("tel.slot_size", L.TEL_SLOT_SIZE)
            self.put("tel.capacity", L.MAX_STRATEGIES)
            self.put("tel.segment_size", L.TEL_SEGMENT_SIZE)
            if ready:
                self.put("tel.version", L.TEL_VERSION)

    def close(self) -> None:
        if self.mm is not None:
            self.mm.close()
            self.mm = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def put(self, field: str, value: int | float, slot: int | None = None) -> None:
        f = L.FIELDS[field]
        base = 0 if slot is None else L.tel_slot_offset(slot)
        struct.pack_into(f.fmt, self.mm, base + f.offset, value)

    def get(self, field: str, slot: int | None = None) -> int | float:
        f = L.FIELDS[field]
        base = 0 if slot is None else L.tel_slot_offset(slot)
        return struct.unpack_from(f.fmt, self.mm, base + f.offset)[0]

    def slot(self, slot: int) -> dict[str, int | float]:
        """Every slot.* field, by name without the prefix."""
        return {n[5:]: self.get(n, slot) for n in L.FIELDS if n.startswith("slot.")}

    def raw(self, slot: int) -> bytes:
        off = L.tel_slot_offset(slot)
        return bytes(self.mm[off : off + L.TEL_SLOT_SIZE])

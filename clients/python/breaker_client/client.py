"""Read-only engine client for breakerd's shared-memory halt state.

The Python twin of clients/c/breaker_client.h; the protocol is the one in
docs/shm-layout.md ("Reading protocol"), the offsets are in layout.py.

How a 64-bit word is read, and why that is one load
---------------------------------------------------
Every word is read with struct.unpack_from() on the mmap at its aligned
offset, in struct's *native* mode ("Q"/"I", no "<" or "=" prefix). In CPython
the native unpackers are `memcpy(&x, p, sizeof x)` with a constant size of 8
(or 4), which compilers emit as one aligned load (on CPython 3.11 / x86-64
`nu_ulonglong` is a single `mov (%rsi),%rdi`). An aligned 8-byte load is
single-copy atomic on x86-64 and aarch64, so the mode, reason and uid of a
state word are always read together. CPython gives no formal atomicity
guarantee for this; it holds because of how _struct.c is written. Do NOT
switch to "<Q" or "=Q": the standard-size unpackers assemble the value one
byte at a time (a loop of byte loads), which can tear against the writer.

Ordering: the daemon publishes with release stores. On x86-64 (TSO) every
plain load already has acquire semantics, so the protocol's acquire loads
and the seqlock hold as written. On aarch64 CPython issues no fences between
our loads; a single word is still read whole, but in theory the seqlock in
scope()/reason() could accept details that do not match the state word.
"""

from __future__ import annotations

import enum
import errno
import mmap
import os
import struct
import sys
import threading
import time
from dataclasses import dataclass
from typing import NamedTuple

from . import layout as L

if sys.byteorder != "little":  # the segment is little-endian; native reads must be too
    raise ImportError("breaker_client: the breaker segment is little-endian; this host is not")

_U64 = struct.Struct("Q")  # native: memcpy of 8 bytes, one aligned load
_U32 = struct.Struct("I")  # native: memcpy of 4 bytes
if _U64.size != 8 or _U32.size != 4:
    raise ImportError("breaker_client: unexpected native integer sizes")

_F = L.FIELDS
_OFF_MAGIC = _F["hdr.magic"].offset
_OFF_VERSION = _F["hdr.layout_version"].offset
_OFF_SEGSIZE = _F["hdr.segment_size"].offset
_OFF_COUNT = _F["hdr.strategy_count"].offset
_OFF_BOUND = _F["hdr.heartbeat_bound_ns"].offset
_OFF_HEARTBEAT = _F["heartbeat_ns"].offset
_OFF_VALID_UNTIL = _F["valid_until_ns"].offset
_OFF_CHANGE_SEQ = _F["change_seq"].offset
_S_STATE = _F["scope.state"].offset
_S_SEQ = _F["scope.seq"].offset
_S_LATCHES = _F["scope.latches"].offset
_S_SINCE = _F["scope.since_ns"].offset
_S_NAME = _F["scope.name"].offset
_GLOBAL_STATE = L.scope_offset(None) + _S_STATE
_TABLE = _F["strategies"].offset

_SEQLOCK_GIVE_UP_NS = 1_000_000_000  # a writer never holds a scope odd for this long


class Mode(enum.IntEnum):
    """Modes, least to most restrictive; numeric order is restriction order."""

    ACTIVE = 0  # trade normally
    CAUTIOUS = 1  # new orders at a reduced size limit
    REDUCE_ONLY = 2  # cancels and position-reducing orders only
    HALTED = 3  # no new orders or modifications; cancel working orders


_MODE_OF = (Mode.ACTIVE, Mode.CAUTIOUS, Mode.REDUCE_ONLY) + (Mode.HALTED,) * 253


def mode_of(raw: int) -> Mode:
    """A raw mode byte as a Mode; values above 3 mean HALTED."""
    return _MODE_OF[raw & 0xFF]


def reason_name(code: int) -> str:
    """'manual_halt' etc.; 'unknown(<n>)' for a code this client does not know."""
    if 0 <= code < len(L.REASON_NAMES) and L.REASON_NAMES[code]:
        return L.REASON_NAMES[code]
    return f"unknown({code})"


class BreakerError(Exception):
    """Base of this client's errors."""


class NotReadyError(BreakerError):
    """The segment exists but breakerd is still creating it: retry shortly."""


class LayoutError(BreakerError):
    """Foreign file or unknown layout: fail closed, do not trade."""


class UntrustedSegmentError(BreakerError):
    """The segment is not breakerd's: another user owns it, or others may
    write it. Treat it as no daemon at all (HALTED)."""


# The environment variable naming breakerd's user (a uid or a user name).
DAEMON_UID_ENV = "BREAKER_DAEMON_UID"


# The service user tools/breakerd.service runs breakerd as; only root makes users.
DAEMON_USER_DEFAULT = "breaker"


def _uid_of(name: str) -> int | None:
    import pwd  # only when a name is needed

    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def _daemon_uids(daemon_uid: int | None) -> list[int]:
    """daemon_uid if given, else $BREAKER_DAEMON_UID, else the user "breaker"
    and our own uid."""
    if daemon_uid is not None:
        return [daemon_uid]
    env = os.environ.get(DAEMON_UID_ENV, "")
    if not env:
        service = _uid_of(DAEMON_USER_DEFAULT)
        return [os.geteuid()] + ([service] if service is not None else [])
    if env.isascii() and env.isdigit():
        return [int(env)]
    uid = _uid_of(env)
    if uid is None:
        raise UntrustedSegmentError(f"{DAEMON_UID_ENV}={env!r} names no user: failing closed")
    return [uid]


def _check_owner(st: os.stat_result, path: str, daemon_uid: int | None) -> None:
    """As bk_client_trust_owner(): nobody but the owner may write it, and the
    owner is root or breakerd's uid; and it has one name (a hard link may
    be another instance's segment)."""
    if st.st_nlink != 1:
        raise UntrustedSegmentError(
            f"{path}: {st.st_nlink} names (a hard link, to another instance's "
            "segment?): not breakerd's segment; failing closed"
        )
    mode = st.st_mode & 0o7777
    if mode & 0o022:
        raise UntrustedSegmentError(
            f"{path}: mode {mode:04o} is writable by group or others: "
            "not breakerd's segment; failing closed"
        )
    if daemon_uid is None and not os.environ.get(DAEMON_UID_ENV) and st.st_uid in (0, os.geteuid()):
        return
    want = _daemon_uids(daemon_uid)  # raises for a setting that names no user
    if st.st_uid != 0 and st.st_uid not in want:
        raise UntrustedSegmentError(
            f"{path}: owned by uid {st.st_uid}, not by breakerd's (root or uid "
            f"{' or '.join(map(str, want))}; set {DAEMON_UID_ENV} or daemon_uid= if breakerd "
            "runs as another user); failing closed"
        )


class Reason(NamedTuple):
    """The winning latch of an effective scope, for an engine's own rejects."""

    mode: Mode
    reason: str  # reason code name, "none" when ACTIVE
    actor_uid: int
    since_wall_ns: int  # CLOCK_REALTIME ns when the latch was set
    scope: str = "none"  # who holds it: "none" (ACTIVE), "global", "group", "strategy"
    scope_name: str = ""  # "venue:XETR", the strategy's name; "" for global


class Limits(NamedTuple):
    """What the breaker lets an engine trade (limits()): the strictest set."""

    flags: int  # LIMIT_* bits of layout: which limits are set
    size_factor: float  # 1.0 when not set
    max_qty: float | None  # None: no limit
    max_notional: float | None  # None: no limit


@dataclass(frozen=True)
class Header:
    """The segment's header line plus the two hot words (docs: hdr.*)."""

    magic: int
    layout_version: int
    header_size: int
    segment_size: int
    strategy_capacity: int
    strategy_entry_size: int
    strategy_table_offset: int
    daemon_pid: int
    tick_period_ns: int
    heartbeat_bound_ns: int
    strategy_count: int
    group_count: int
    group_capacity: int
    group_entry_size: int
    group_table_offset: int
    limits_table_offset: int
    limits_entry_size: int
    heartbeat_ns: int
    change_seq: int


@dataclass(frozen=True)
class Scope:
    """One scope's own fields (not combined with global), read under its seqlock."""

    name: str  # "" for the global scope
    state: int  # the raw state word
    seq: int
    latches: int  # bit n set: latch with reason code n active
    since_wall_ns: int

    @property
    def mode(self) -> Mode:
        return mode_of(L.state_mode(self.state))

    @property
    def reason_code(self) -> int:
        return L.state_reason(self.state)

    @property
    def reason(self) -> str:
        return reason_name(self.reason_code)

    @property
    def actor_uid(self) -> int:
        return L.state_uid(self.state)

    @property
    def latch_names(self) -> list[str]:
        return [reason_name(n) for n in range(32) if self.latches >> n & 1]


def segment_path(instance: str = "default") -> str:
    """/dev/shm/breaker.<instance>, the file behind shm_open("/breaker.<instance>")."""
    if not instance or len(instance) >= L.INSTANCE_MAX or "/" in instance or "\0" in instance:
        raise ValueError(f"invalid breaker instance name {instance!r}")
    return os.path.join(L.SHM_DIR, L.SHM_PREFIX + instance)


def _validate(mm: mmap.mmap, path: str) -> None:
    version = _U32.unpack_from(mm, _OFF_VERSION)[0]
    if version == 0:
        raise NotReadyError(f"{path}: breakerd is still creating the segment; retry")
    magic = _U64.unpack_from(mm, _OFF_MAGIC)[0]
    if magic != L.MAGIC:
        raise LayoutError(f"{path}: not a breaker segment (magic {magic:#x}); failing closed")
    if version != L.LAYOUT_VERSION:
        raise LayoutError(
            f"{path}: layout version {version}, this client reads {L.LAYOUT_VERSION}; "
            "failing closed (upgrade the client)"
        )
    size = _U64.unpack_from(mm, _OFF_SEGSIZE)[0]
    if size != L.SEGMENT_SIZE:
        raise LayoutError(
            f"{path}: segment_size {size}, layout {L.LAYOUT_VERSION} is {L.SEGMENT_SIZE}; failing closed")


def attach(instance: str = "default", daemon_uid: int | None = None) -> Client:
    """Map the instance's segment read-only (O_RDONLY + PROT_READ), if it is
    breakerd's: owned by root or by daemon_uid (default: $BREAKER_DAEMON_UID,
    else our own uid) and writable by nobody else.

    Raises FileNotFoundError (no daemon has created it), NotReadyError (being
    created: retry), LayoutError (foreign or unknown layout: do not trade),
    UntrustedSegmentError (someone else's segment: do not trade),
    PermissionError.
    """
    path = segment_path(instance)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileNotFoundError(
            errno.ENOENT, f"no breaker segment for instance {instance!r} (is breakerd running?)", path
        ) from None
    try:
        st = os.fstat(fd)  # the fd, not the name: what we map is what we checked
        _check_owner(st, path, daemon_uid)
        size = st.st_size
        if size == 0:
            raise NotReadyError(f"{path}: breakerd is still creating the segment; retry")
        if size < L.SEGMENT_SIZE:
            raise LayoutError(
                f"{path}: {size} bytes, layout {L.LAYOUT_VERSION} needs {L.SEGMENT_SIZE}; failing closed")
        mm = mmap.mmap(fd, L.SEGMENT_SIZE, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    try:
        _validate(mm, path)
    except BaseException:
        mm.close()
        raise
    return Client(mm, instance, path)


class Client:
    """An attached, read-only view of one breaker instance. Use attach()."""

    def __init__(self, mm: mmap.mmap, instance: str, path: str) -> None:
        self._mm = mm
        self.instance = instance
        self.path = path
        self._seq_addr: int | None = None
        self._addr_lock = threading.Lock()

    # -- lifetime ---------------------------------------------------------

    def close(self) -> None:
        """Unmap. Raises BufferError while another thread is in wait_change()."""
        self._mm.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw reads --------------------------------------------------------

    def _u64(self, off: int) -> int:
        return _U64.unpack_from(self._mm, off)[0]

    def _u32(self, off: int) -> int:
        return _U32.unpack_from(self._mm, off)[0]

    # -- the hot path -----------------------------------------------------

    def check(self, slot: int | None = None) -> Mode:
        """Effective mode: the most restrictive of global and strategy `slot`.

        slot None asks about the global scope alone. A slot outside
        [0, 4096) answers HALTED (the C client treats negative as global;
        here a negative slot is a bug, so it fails closed).
        """
        g = self._u64(_GLOBAL_STATE) & 0xFF
        if slot is None:
            return _MODE_OF[g]
        if not 0 <= slot < L.MAX_STRATEGIES:
            return Mode.HALTED
        s = self._u64(_TABLE + L.SCOPE_SIZE * slot + _S_STATE) & 0xFF
        return _MODE_OF[g if g > s else s]

    def check_live(self, slot: int | None = None, now_ns: int | None = None, max_age_ns: int = 0) -> Mode:
        """check() that fails closed, exactly as bk_check_live().

        HALTED when the layout version is no longer 1, or the daemon's
        heartbeat is 0 (clean stop) or older than max_age_ns at now_ns
        (CLOCK_MONOTONIC, default time.monotonic_ns()), or more than
        max_age_ns ahead of it (a daemon on another clock, e.g. another time
        namespace). max_age_ns 0 takes the daemon's advice,
        hdr.heartbeat_bound_ns. In firm-wide mode, also HALTED past
        valid_until_ns (the last proven etcd quorum contact + T2; 0 = unused).
        """
        hb = self._u64(_OFF_HEARTBEAT)
        if self._u32(_OFF_VERSION) != L.LAYOUT_VERSION:
            return Mode.HALTED
        if max_age_ns == 0:
            max_age_ns = self._u64(_OFF_BOUND)
        if now_ns is None:
            now_ns = time.monotonic_ns()
        if hb == 0 or abs(now_ns - hb) > max_age_ns:
            return Mode.HALTED
        valid_until = self._u64(_OFF_VALID_UNTIL)
        if valid_until != 0 and now_ns > valid_until:
            return Mode.HALTED
        return self.check(slot)

    # -- names and slots --------------------------------------------------

    def strategy_count(self) -> int:
        return min(self._u32(_OFF_COUNT), L.MAX_STRATEGIES)

    def _name(self, slot: int | None) -> str:
        return self._name_at(L.scope_offset(slot))

    def _name_at(self, base: int) -> str:
        off = base + _S_NAME
        raw = self._mm[off : off + L.NAME_MAX]
        return raw.split(b"\0", 1)[0].decode("ascii", "replace")

    def strategies(self) -> list[str]:
        """Names of the registered strategies; index = slot."""
        return [self._name(i) for i in range(self.strategy_count())]

    def resolve(self, name: str) -> int:
        """Slot of a registered strategy (cache it; slots never move). KeyError if none."""
        want = name.encode("ascii", "replace")
        if 0 < len(want) < L.NAME_MAX:
            for slot in range(self.strategy_count()):
                base = L.scope_offset(slot)
                # a rename/unregister rewrites the name under the slot's seq
                for _ in range(1000):
                    q = self._u32(base + _S_SEQ)
                    got = self._mm[base + _S_NAME : base + _S_NAME + len(want) + 1]
                    if not q & 1 and q == self._u32(base + _S_SEQ):
                        break
                else:
                    continue
                if got == want + b"\0":
                    return slot
        raise KeyError(f"strategy {name!r} is not registered with breaker instance {self.instance!r}")

    # -- change notification ----------------------------------------------

    def change_seq(self) -> int:
        """The change sequence: moves on every published state change."""
        return self._u32(_OFF_CHANGE_SEQ)

    def heartbeat_ns(self) -> int:
        """The daemon's CLOCK_MONOTONIC ns at its last tick; 0 after a clean stop."""
        return self._u64(_OFF_HEARTBEAT)

    def _futex_addr(self) -> int:
        from . import _futex

        with self._addr_lock:
            if self._seq_addr is None:
                self._seq_addr = _futex.buffer_address(self._mm) + _OFF_CHANGE_SEQ
            return self._seq_addr

    def wait_change(self, seen: int, timeout: float | None = None) -> bool:
        """Sleep until change_seq() differs from `seen` (futex, no polling).

        Returns True on a change, False when `timeout` seconds (None: forever)
        pass first. Re-check the mode after it returns. Signals interrupt the
        sleep so that their Python handlers (KeyboardInterrupt) run.
        """
        from . import _futex

        if self.change_seq() != seen:
            return True
        addr = self._futex_addr()
        deadline = None if timeout is None else time.monotonic() + timeout
        with memoryview(self._mm):  # the mapping cannot be closed under the futex
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return self.change_seq() != seen
                err = _futex.wait(addr, seen, left)
                if self.change_seq() != seen:
                    return True
                if err == errno.ETIMEDOUT:
                    return False
                if err not in (0, errno.EAGAIN, errno.EINTR):
                    raise OSError(err, f"futex wait: {os.strerror(err)}")

    # -- details, off the hot path ----------------------------------------

    def _read_scope(self, base: int) -> tuple[int, int, int, int]:
        """(seq, state, latches, since) of the scope at base, under its seqlock."""
        give_up = 0
        spins = 0
        while True:
            q = self._u32(base + _S_SEQ)
            if not q & 1:
                since = self._u64(base + _S_SINCE)
                latches = self._u32(base + _S_LATCHES)
                state = self._u64(base + _S_STATE)
                if q == self._u32(base + _S_SEQ):
                    return q, state, latches, since
            spins += 1
            if spins % 1024 == 0:
                now = time.monotonic_ns()
                give_up = give_up or now + _SEQLOCK_GIVE_UP_NS
                if now > give_up:
                    raise BreakerError(f"{self.path}: scope at {base} stays mid-write (seq {q})")

    def scope(self, slot: int | None = None) -> Scope:
        """One scope's own fields (global for None), consistent with each other."""
        if slot is not None and not 0 <= slot < L.MAX_STRATEGIES:
            raise IndexError(f"slot {slot} outside [0, {L.MAX_STRATEGIES})")
        q, state, latches, since = self._read_scope(L.scope_offset(slot))
        return Scope(self._name(slot), state, q, latches, since)

    def reason(self, slot: int | None = None) -> Reason:
        """Winning latch of the effective scope, as bk_read_reason(): the
        strategy's if it is strictly more restrictive than global, else global's.
        """
        if slot is not None and not 0 <= slot < L.MAX_STRATEGIES:
            raise IndexError(f"slot {slot} outside [0, {L.MAX_STRATEGIES})")
        g = self._u64(_GLOBAL_STATE)
        which: int | None = None
        if slot is not None:
            s = self._u64(L.scope_offset(slot) + _S_STATE)
            if L.state_mode(s) > L.state_mode(g):
                which = slot
        _, state, _, since = self._read_scope(L.scope_offset(which))
        mode = mode_of(L.state_mode(state))
        holder = L.state_holder(state)
        if mode == Mode.ACTIVE:
            scope, name = "none", ""
        elif which is None:
            scope, name = "global", ""
        elif 1 <= holder <= L.MAX_GROUPS:
            scope, name = "group", self._name_at(L.group_offset(holder - 1))
        else:
            scope, name = "strategy", self._name(which)
        return Reason(mode, reason_name(L.state_reason(state)), L.state_uid(state), since, scope, name)

    def groups(self) -> list[str]:
        """Group names ("kind:value") by group slot."""
        n = min(self._u32(_F["hdr.group_count"].offset), L.MAX_GROUPS)
        return [self._name_at(L.group_offset(g)) for g in range(n)]

    def group_scope(self, g: int) -> Scope:
        """Group slot g's own latches (not folded), under its seqlock."""
        if not 0 <= g < L.MAX_GROUPS:
            raise IndexError(f"group slot {g} outside [0, {L.MAX_GROUPS})")
        base = L.group_offset(g)
        q, state, latches, since = self._read_scope(base)
        return Scope(self._name_at(base), state, q, latches, since)

    def _limits_entry(self, entry: int) -> tuple[int, float, float, float]:
        base = L.limits_offset(entry)
        f = _F
        give_up = 0
        spins = 0
        while True:
            q = self._u32(base + f["limit.seq"].offset)
            if not q & 1:
                vals = (self._u32(base + f["limit.flags"].offset),
                        *(struct.unpack_from("d", self._mm, base + f[k].offset)[0]
                          for k in ("limit.size_factor", "limit.max_qty", "limit.max_notional")))
                if q == self._u32(base + f["limit.seq"].offset):
                    return vals  # type: ignore[return-value]
            spins += 1
            if spins % 1024 == 0:
                now = time.monotonic_ns()
                give_up = give_up or now + _SEQLOCK_GIVE_UP_NS
                if now > give_up:
                    raise BreakerError(f"{self.path}: limits entry {entry} stays mid-write (seq {q})")

    def limits(self, slot: int | None = None) -> Limits:
        """The limits for a strategy slot (None: global alone), as bk_limits():
        the strictest of the global entry and the slot's. A NaN or negative
        set limit reads as 0 (fail closed). Re-read when change_seq() moves."""
        if slot is not None and not 0 <= slot < L.MAX_STRATEGIES:
            raise IndexError(f"slot {slot} outside [0, {L.MAX_STRATEGIES})")
        entries = [0] if slot is None else [0, 1 + slot]
        flags, best = 0, [1.0, None, None]
        for e in entries:
            eflags, *vals = self._limits_entry(e)
            for i, bit in enumerate((L.LIMIT_SIZE_FACTOR, L.LIMIT_MAX_QTY, L.LIMIT_MAX_NOTIONAL)):
                if eflags & bit:
                    v = vals[i] if vals[i] >= 0 else 0.0  # NaN compares False: 0
                    cur = best[i]
                    if not flags & bit or cur is None or v < cur:
                        best[i] = v
                    flags |= bit
        return Limits(flags, best[0], best[1], best[2])  # type: ignore[arg-type]

    def header(self) -> Header:
        """Every header field plus heartbeat_ns and change_seq, as read now."""
        vals = {}
        for key, f in _F.items():
            if key.startswith("hdr."):  # layout 2's table words are hdr.* too
                vals[key[4:]] = (_U64 if f.size == 8 else _U32).unpack_from(self._mm, f.offset)[0]
        return Header(**vals, heartbeat_ns=self.heartbeat_ns(), change_seq=self.change_seq())

    # Telemetry (orders, rejects, fills, positions, the engine's heartbeat and
    # acks) goes to a separate, read-write segment: see telemetry.py and
    # attach_telemetry(). This class never writes.

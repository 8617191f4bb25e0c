"""The shared-memory layouts (state segment version 2): the ONE table of offsets and sizes.

Two segments: the state segment (/breaker.<instance>, read-only for engines;
hdr.*, the hot words and scope.*) and the telemetry segment
(/breaker.<instance>.tel, engines write their own slot; tel.* and slot.*).

Source of truth: docs/shm-layout.md. tests/test_layout_doc.py parses that
page's tables and checks every row against FIELDS (and the reverse), so this
table and the page cannot drift apart. Do not add offsets anywhere else.
"""

from __future__ import annotations

from typing import Final, NamedTuple


class Field(NamedTuple):
    offset: int  # bytes from the start of the segment (hdr.*, hot words, tel.*) or of a scope/slot
    size: int  # bytes
    fmt: str  # struct format, native ("@"): client.py says why native matters


# name -> (offset, size, struct format). Names are exactly the `field` column
# of docs/shm-layout.md ("Header and hot words", "A scope (64 bytes)" and the
# two tables of "Telemetry segment (version 1)"). Formats are native: "Q" u64,
# "I" u32, "d" f64 (IEEE-754 binary64, the bit pattern in a 64-bit word).
FIELDS: Final[dict[str, Field]] = {
    "hdr.magic": Field(0, 8, "Q"),
    "hdr.layout_version": Field(8, 4, "I"),
    "hdr.header_size": Field(12, 4, "I"),
    "hdr.segment_size": Field(16, 8, "Q"),
    "hdr.strategy_capacity": Field(24, 4, "I"),
    "hdr.strategy_entry_size": Field(28, 4, "I"),
    "hdr.strategy_table_offset": Field(32, 4, "I"),
    "hdr.daemon_pid": Field(36, 4, "I"),
    "hdr.tick_period_ns": Field(40, 8, "Q"),
    "hdr.heartbeat_bound_ns": Field(48, 8, "Q"),
    "hdr.strategy_count": Field(56, 4, "I"),
    "hdr.group_count": Field(60, 4, "I"),
    "heartbeat_ns": Field(64, 8, "Q"),
    # the audit log's durable head: breakerd's own, engines ignore it
    "audit.lock": Field(72, 4, "I"),
    "audit.seq": Field(80, 8, "Q"),
    "audit.end": Field(88, 8, "Q"),
    "audit.hash": Field(96, 32, "32s"),
    "change_seq": Field(128, 4, "I"),
    # layout 2: where the group and limits tables are (change_seq's line)
    "hdr.group_capacity": Field(136, 4, "I"),
    "hdr.group_entry_size": Field(140, 4, "I"),
    "hdr.group_table_offset": Field(144, 4, "I"),
    "hdr.limits_table_offset": Field(148, 4, "I"),
    "hdr.limits_entry_size": Field(152, 4, "I"),
    # firm-wide words (mirrored from etcd), 0 when unused
    "valid_until_ns": Field(160, 8, "Q"),
    "firm_revision": Field(168, 8, "Q"),
    "firm_contact_ns": Field(176, 8, "Q"),
    "global": Field(192, 64, "64s"),
    "strategies": Field(256, 262144, "262144s"),
    "groups": Field(262400, 16384, "16384s"),
    "limits": Field(278784, 131104, "131104s"),
    # a limits entry (32 bytes), from the start of the entry
    "limit.seq": Field(0, 4, "I"),
    "limit.flags": Field(4, 4, "I"),
    "limit.size_factor": Field(8, 8, "d"),
    "limit.max_qty": Field(16, 8, "d"),
    "limit.max_notional": Field(24, 8, "d"),
    "scope.state": Field(0, 8, "Q"),
    "scope.seq": Field(8, 4, "I"),
    "scope.latches": Field(12, 4, "I"),
    "scope.since_ns": Field(16, 8, "Q"),
    "scope.name": Field(24, 40, "40s"),
    # telemetry segment: header, from the start of the segment
    "tel.magic": Field(0, 8, "Q"),
    "tel.version": Field(8, 4, "I"),
    "tel.slot_size": Field(12, 4, "I"),
    "tel.capacity": Field(16, 4, "I"),
    "tel.segment_size": Field(24, 8, "Q"),
    "tel.slots": Field(64, 1048576, "1048576s"),
    # a telemetry slot (256 bytes since version 2), from the start of the slot.
    # line 0: counters and liveness, one writer, each word on its own
    "slot.orders": Field(0, 8, "Q"),
    "slot.rejects": Field(8, 8, "Q"),
    "slot.cancels": Field(16, 8, "Q"),
    "slot.heartbeat_ns": Field(24, 8, "Q"),
    "slot.ack_seq": Field(32, 4, "I"),
    "slot.pid": Field(36, 4, "I"),
    "slot.ack_ns": Field(40, 8, "Q"),
    # the opening-balance statement, written under gseq with the money words
    "slot.opening_base": Field(48, 8, "d"),
    "slot.opening_fills": Field(56, 8, "Q"),
    # line 1: money words, published together under the seqlock gseq
    "slot.gseq": Field(64, 4, "I"),
    "slot.opening_seq": Field(68, 4, "I"),
    "slot.fills": Field(72, 8, "Q"),
    "slot.fill_cash": Field(80, 8, "d"),
    "slot.fees": Field(88, 8, "d"),
    "slot.balance": Field(96, 8, "d"),
    "slot.position": Field(104, 8, "d"),
    "slot.gross": Field(112, 8, "d"),
    "slot.pnl": Field(120, 8, "d"),
    # line 2 (version 2): the engine's view of its venue; each value word is
    # written before its time word; a time of 0 = never reported (unknown)
    "slot.working_orders": Field(128, 8, "Q"),
    "slot.working_ns": Field(136, 8, "Q"),
    "slot.md_last_ns": Field(144, 8, "Q"),
    "slot.session": Field(152, 4, "I"),
    "slot.session_ns": Field(160, 8, "Q"),
}

MAGIC: Final = 0x315245414B524242  # "BBRKAER1" read as a little-endian u64
LAYOUT_VERSION: Final = 2
SEGMENT_SIZE: Final = 409888
MAX_STRATEGIES: Final = 4096
MAX_GROUPS: Final = 256
LIMITS_ENTRIES: Final = 1 + MAX_STRATEGIES  # 0: global, 1 + i: strategy slot i
LIMITS_ENTRY_SIZE: Final = 32
LIMIT_SIZE_FACTOR: Final = 0x1  # limit.flags bits
LIMIT_MAX_QTY: Final = 0x2
LIMIT_MAX_NOTIONAL: Final = 0x4
SCOPE_SIZE: Final = 64
NAME_MAX: Final = 40  # bytes including the terminating NUL
INSTANCE_MAX: Final = 64  # instance names are shorter than this
SHM_DIR: Final = "/dev/shm"
SHM_PREFIX: Final = "breaker."

# The telemetry segment, /dev/shm/breaker.<instance>.tel
TEL_MAGIC: Final = 0x313030304C455442  # "BTEL0001" read as a little-endian u64
TEL_VERSION: Final = 2
TEL_SEGMENT_SIZE: Final = 1048640
TEL_SLOT_SIZE: Final = 256
SESSION_UNKNOWN: Final = 0  # slot.session: never reported
SESSION_UP: Final = 1
SESSION_DOWN: Final = 2
TEL_SUFFIX: Final = ".tel"

# The state word: mode in bits 0-7, reason code in bits 8-15, holder in bits
# 16-31 (0: the scope itself, g + 1: group slot g), uid in bits 32-63.
MODE_NAMES: Final[tuple[str, ...]] = ("ACTIVE", "CAUTIOUS", "REDUCE_ONLY", "HALTED")

# "Reason codes" table of docs/shm-layout.md, indexed by code.
REASON_NAMES: Final[tuple[str, ...]] = (
    "none",
    "manual_halt",
    "emergency_stop",
    "kill_switch",
    "reject_rate",
    "order_rate",
    "invariant_violation",
    "reconciliation_break",
    "drawdown",
    "exposure_limit",
    "stale_heartbeat",
    "audit_corrupt",
    "market_data_stale",
    "exchange_down",
    "authority_lost",
)


def scope_offset(slot: int | None) -> int:
    """Start of a scope: the global one for None, else strategy slot `slot`."""
    if slot is None:
        return FIELDS["global"].offset
    return FIELDS["strategies"].offset + SCOPE_SIZE * slot


def group_offset(g: int) -> int:
    """Start of group slot g's scope."""
    return FIELDS["groups"].offset + SCOPE_SIZE * g


def limits_offset(entry: int) -> int:
    """Start of limits entry `entry` (0: global, 1 + i: strategy slot i)."""
    return FIELDS["limits"].offset + LIMITS_ENTRY_SIZE * entry


def tel_slot_offset(slot: int) -> int:
    """Start of telemetry slot `slot` (same index as the state segment's strategy slot)."""
    return FIELDS["tel.slots"].offset + TEL_SLOT_SIZE * slot


def state_mode(word: int) -> int:
    return word & 0xFF


def state_reason(word: int) -> int:
    return (word >> 8) & 0xFF


def state_holder(word: int) -> int:
    return (word >> 16) & 0xFFFF


def state_uid(word: int) -> int:
    return word >> 32

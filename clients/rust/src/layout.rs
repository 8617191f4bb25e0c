//! The byte layout of docs/shm-layout.md: state segment layout 2, telemetry
//! segment version 2. `tests/layout_doc.rs` checks `FIELDS` against the page
//! both ways, so the client cannot drift from the documented bytes.

pub const MAGIC: u64 = 0x3152_4541_4b52_4242;
pub const LAYOUT_VERSION: u32 = 2;
pub const SEGMENT_SIZE: usize = 409_888;
pub const SHM_DIR: &str = "/dev/shm";
pub const SHM_PREFIX: &str = "breaker.";
pub const MAX_STRATEGIES: usize = 4096;
pub const MAX_GROUPS: usize = 256;
pub const SCOPE_SIZE: usize = 64;
pub const NAME_MAX: usize = 40;

pub const HDR_MAGIC: usize = 0;
pub const HDR_LAYOUT_VERSION: usize = 8;
pub const HDR_SEGMENT_SIZE: usize = 16;
pub const HDR_HEARTBEAT_BOUND_NS: usize = 48;
pub const HDR_STRATEGY_COUNT: usize = 56;
pub const HDR_GROUP_COUNT: usize = 60;
pub const HEARTBEAT_NS: usize = 64;
pub const CHANGE_SEQ: usize = 128;
pub const VALID_UNTIL_NS: usize = 160;
pub const GLOBAL: usize = 192;
pub const STRATEGIES: usize = 256;
pub const GROUPS: usize = 262_400;
pub const LIMITS: usize = 278_784;
pub const LIMITS_ENTRY_SIZE: usize = 32;
pub const LIMITS_ENTRIES: usize = 4097;

pub const SCOPE_STATE: usize = 0;
pub const SCOPE_SEQ: usize = 8;
pub const SCOPE_LATCHES: usize = 12;
pub const SCOPE_SINCE_NS: usize = 16;
pub const SCOPE_NAME: usize = 24;

pub const LIMIT_SEQ: usize = 0;
pub const LIMIT_FLAGS: usize = 4;
pub const LIMIT_SIZE_FACTOR: usize = 8;
pub const LIMIT_MAX_QTY: usize = 16;
pub const LIMIT_MAX_NOTIONAL: usize = 24;
pub const LIMIT_FLAG_SIZE_FACTOR: u32 = 1;
pub const LIMIT_FLAG_MAX_QTY: u32 = 2;
pub const LIMIT_FLAG_MAX_NOTIONAL: u32 = 4;

// Telemetry version 2: 256-byte slots (version 1's 128 bytes, then working
// orders, market data, session). Version 1 is only described, for the layout test.
pub const TEL_MAGIC: u64 = 0x3130_3030_4c45_5442; // "BTEL0001"
pub const TEL_VERSION: u32 = 2;
pub const TEL_SUFFIX: &str = ".tel";
pub const TEL_SLOTS: usize = 64;
pub const TEL_VERSION_OFF: usize = 8;
pub const TEL_SEGMENT_SIZE_OFF: usize = 24;

/// A telemetry version's slot size; 0 for a version this client does not know.
pub fn tel_slot_size(version: u32) -> usize {
    match version {
        1 => 128,
        2 => 256,
        _ => 0,
    }
}

pub fn tel_segment_size(version: u32) -> usize {
    TEL_SLOTS + tel_slot_size(version) * MAX_STRATEGIES
}

pub const SLOT_ORDERS: usize = 0;
pub const SLOT_REJECTS: usize = 8;
pub const SLOT_CANCELS: usize = 16;
pub const SLOT_HEARTBEAT_NS: usize = 24;
pub const SLOT_ACK_SEQ: usize = 32;
pub const SLOT_PID: usize = 36;
pub const SLOT_ACK_NS: usize = 40;
pub const SLOT_OPENING_BASE: usize = 48;
pub const SLOT_OPENING_FILLS: usize = 56;
pub const SLOT_GSEQ: usize = 64;
pub const SLOT_OPENING_SEQ: usize = 68;
pub const SLOT_FILLS: usize = 72;
pub const SLOT_FILL_CASH: usize = 80;
pub const SLOT_FEES: usize = 88;
pub const SLOT_BALANCE: usize = 96;
pub const SLOT_POSITION: usize = 104;
pub const SLOT_GROSS: usize = 112;
pub const SLOT_PNL: usize = 120;
pub const SLOT_WORKING_ORDERS: usize = 128;
pub const SLOT_WORKING_NS: usize = 136;
pub const SLOT_MD_LAST_NS: usize = 144;
pub const SLOT_SESSION: usize = 152;
pub const SLOT_SESSION_NS: usize = 160;
pub const SESSION_UP: u32 = 1;
pub const SESSION_DOWN: u32 = 2;

/// Every documented field of the state segment: (name as the page writes it, offset, size).
pub const FIELDS: &[(&str, usize, usize)] = &[
    ("hdr.magic", HDR_MAGIC, 8),
    ("hdr.layout_version", HDR_LAYOUT_VERSION, 4),
    ("hdr.header_size", 12, 4),
    ("hdr.segment_size", HDR_SEGMENT_SIZE, 8),
    ("hdr.strategy_capacity", 24, 4),
    ("hdr.strategy_entry_size", 28, 4),
    ("hdr.strategy_table_offset", 32, 4),
    ("hdr.daemon_pid", 36, 4),
    ("hdr.tick_period_ns", 40, 8),
    ("hdr.heartbeat_bound_ns", HDR_HEARTBEAT_BOUND_NS, 8),
    ("hdr.strategy_count", HDR_STRATEGY_COUNT, 4),
    ("hdr.group_count", HDR_GROUP_COUNT, 4),
    ("heartbeat_ns", HEARTBEAT_NS, 8),
    ("audit.lock", 72, 4),
    ("audit.seq", 80, 8),
    ("audit.end", 88, 8),
    ("audit.hash", 96, 32),
    ("change_seq", CHANGE_SEQ, 4),
    ("hdr.group_capacity", 136, 4),
    ("hdr.group_entry_size", 140, 4),
    ("hdr.group_table_offset", 144, 4),
    ("hdr.limits_table_offset", 148, 4),
    ("hdr.limits_entry_size", 152, 4),
    ("valid_until_ns", VALID_UNTIL_NS, 8),
    ("firm_revision", 168, 8),
    ("firm_contact_ns", 176, 8),
    ("global", GLOBAL, SCOPE_SIZE),
    ("strategies", STRATEGIES, SCOPE_SIZE * MAX_STRATEGIES),
    ("groups", GROUPS, SCOPE_SIZE * MAX_GROUPS),
    ("limits", LIMITS, LIMITS_ENTRY_SIZE * LIMITS_ENTRIES),
    ("scope.state", SCOPE_STATE, 8),
    ("scope.seq", SCOPE_SEQ, 4),
    ("scope.latches", SCOPE_LATCHES, 4),
    ("scope.since_ns", SCOPE_SINCE_NS, 8),
    ("scope.name", SCOPE_NAME, NAME_MAX),
    ("limit.seq", LIMIT_SEQ, 4),
    ("limit.flags", LIMIT_FLAGS, 4),
    ("limit.size_factor", LIMIT_SIZE_FACTOR, 8),
    ("limit.max_qty", LIMIT_MAX_QTY, 8),
    ("limit.max_notional", LIMIT_MAX_NOTIONAL, 8),
];

/// The telemetry segment's documented fields in a version (1 or 2).
pub fn tel_fields(version: u32) -> Vec<(&'static str, usize, usize)> {
    let mut f = vec![
        ("tel.magic", 0, 8),
        ("tel.version", TEL_VERSION_OFF, 4),
        ("tel.slot_size", 12, 4),
        ("tel.capacity", 16, 4),
        ("tel.segment_size", TEL_SEGMENT_SIZE_OFF, 8),
        ("tel.slots", TEL_SLOTS, tel_slot_size(version) * MAX_STRATEGIES),
        ("slot.orders", SLOT_ORDERS, 8),
        ("slot.rejects", SLOT_REJECTS, 8),
        ("slot.cancels", SLOT_CANCELS, 8),
        ("slot.heartbeat_ns", SLOT_HEARTBEAT_NS, 8),
        ("slot.ack_seq", SLOT_ACK_SEQ, 4),
        ("slot.pid", SLOT_PID, 4),
        ("slot.ack_ns", SLOT_ACK_NS, 8),
        ("slot.opening_base", SLOT_OPENING_BASE, 8),
        ("slot.opening_fills", SLOT_OPENING_FILLS, 8),
        ("slot.gseq", SLOT_GSEQ, 4),
        ("slot.opening_seq", SLOT_OPENING_SEQ, 4),
        ("slot.fills", SLOT_FILLS, 8),
        ("slot.fill_cash", SLOT_FILL_CASH, 8),
        ("slot.fees", SLOT_FEES, 8),
        ("slot.balance", SLOT_BALANCE, 8),
        ("slot.position", SLOT_POSITION, 8),
        ("slot.gross", SLOT_GROSS, 8),
        ("slot.pnl", SLOT_PNL, 8),
    ];
    if version >= 2 {
        f.extend_from_slice(&[
            ("slot.working_orders", SLOT_WORKING_ORDERS, 8),
            ("slot.working_ns", SLOT_WORKING_NS, 8),
            ("slot.md_last_ns", SLOT_MD_LAST_NS, 8),
            ("slot.session", SLOT_SESSION, 4),
            ("slot.session_ns", SLOT_SESSION_NS, 8),
        ]);
    }
    f
}

/// Reason codes (breaker.proto's ReasonCode), as the page's table names them.
pub const REASONS: &[&str] = &[
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
];

/// The name of a reason code; "reason_N" for one this client does not know.
pub fn reason_name(code: u32) -> String {
    match REASONS.get(code as usize) {
        Some(n) => (*n).to_string(),
        None => format!("reason_{}", code),
    }
}

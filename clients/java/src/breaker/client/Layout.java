package breaker.client;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The byte layout of docs/shm-layout.md: state segment layout 2, telemetry
 * segment version 2. Every offset the client reads or writes comes from here,
 * and LayoutDocTest checks this table against the page (both ways), so the
 * client cannot drift from the documented bytes.
 */
public final class Layout {
    private Layout() {}

    // ---- state segment (written by breakerd only) ----
    public static final long MAGIC = 0x315245414b524242L;
    public static final int LAYOUT_VERSION = 2;
    public static final long SEGMENT_SIZE = 409888;
    public static final String SHM_DIR = "/dev/shm";
    public static final String SHM_PREFIX = "breaker.";
    public static final int MAX_STRATEGIES = 4096;
    public static final int MAX_GROUPS = 256;
    public static final int SCOPE_SIZE = 64;
    public static final int NAME_MAX = 40;

    public static final int HDR_MAGIC = 0;
    public static final int HDR_LAYOUT_VERSION = 8;
    public static final int HDR_SEGMENT_SIZE = 16;
    public static final int HDR_HEARTBEAT_BOUND_NS = 48;
    public static final int HDR_STRATEGY_COUNT = 56;
    public static final int HDR_GROUP_COUNT = 60;
    public static final int HEARTBEAT_NS = 64;
    public static final int CHANGE_SEQ = 128;
    public static final int VALID_UNTIL_NS = 160;
    public static final int GLOBAL = 192;
    public static final int STRATEGIES = 256;
    public static final int GROUPS = 262400;
    public static final int LIMITS = 278784;
    public static final int LIMITS_ENTRY_SIZE = 32;
    public static final int LIMITS_ENTRIES = 4097;

    public static final int SCOPE_STATE = 0;
    public static final int SCOPE_SEQ = 8;
    public static final int SCOPE_LATCHES = 12;
    public static final int SCOPE_SINCE_NS = 16;
    public static final int SCOPE_NAME = 24;

    public static final int LIMIT_SEQ = 0;
    public static final int LIMIT_FLAGS = 4;
    public static final int LIMIT_SIZE_FACTOR = 8;
    public static final int LIMIT_MAX_QTY = 16;
    public static final int LIMIT_MAX_NOTIONAL = 24;
    public static final int LIMIT_FLAG_SIZE_FACTOR = 1;
    public static final int LIMIT_FLAG_MAX_QTY = 2;
    public static final int LIMIT_FLAG_MAX_NOTIONAL = 4;

    // ---- telemetry segment (one writing engine per slot) ----
    // Version 2: 256-byte slots (version 1's 128 bytes, then working orders,
    // market data, session). Version 1 is only described, for the layout test.
    public static final long TEL_MAGIC = 0x313030304c455442L; // "BTEL0001"
    public static final int TEL_VERSION = 2;
    public static final String TEL_SUFFIX = ".tel";
    public static final int TEL_SLOTS = 64;
    public static final int TEL_VERSION_OFF = 8;
    public static final int TEL_SEGMENT_SIZE_OFF = 24;

    /** A telemetry version's slot size; 0 for a version this client does not know. */
    public static int telSlotSize(int version) {
        return version == 1 ? 128 : version == 2 ? 256 : 0;
    }

    public static long telSegmentSize(int version) {
        return TEL_SLOTS + (long) telSlotSize(version) * MAX_STRATEGIES;
    }

    public static final int SLOT_ORDERS = 0;
    public static final int SLOT_REJECTS = 8;
    public static final int SLOT_CANCELS = 16;
    public static final int SLOT_HEARTBEAT_NS = 24;
    public static final int SLOT_ACK_SEQ = 32;
    public static final int SLOT_PID = 36;
    public static final int SLOT_ACK_NS = 40;
    public static final int SLOT_OPENING_BASE = 48;
    public static final int SLOT_OPENING_FILLS = 56;
    public static final int SLOT_GSEQ = 64;
    public static final int SLOT_OPENING_SEQ = 68;
    public static final int SLOT_FILLS = 72;
    public static final int SLOT_FILL_CASH = 80;
    public static final int SLOT_FEES = 88;
    public static final int SLOT_BALANCE = 96;
    public static final int SLOT_POSITION = 104;
    public static final int SLOT_GROSS = 112;
    public static final int SLOT_PNL = 120;
    public static final int SLOT_WORKING_ORDERS = 128;
    public static final int SLOT_WORKING_NS = 136;
    public static final int SLOT_MD_LAST_NS = 144;
    public static final int SLOT_SESSION = 152;
    public static final int SLOT_SESSION_NS = 160;
    public static final int SESSION_UP = 1;
    public static final int SESSION_DOWN = 2;

    /** Every documented field of the state segment: name as the page writes it, {offset, size}. */
    public static final Map<String, int[]> FIELDS;

    static {
        Map<String, int[]> f = new LinkedHashMap<>();
        f.put("hdr.magic", new int[] {0, 8});
        f.put("hdr.layout_version", new int[] {HDR_LAYOUT_VERSION, 4});
        f.put("hdr.header_size", new int[] {12, 4});
        f.put("hdr.segment_size", new int[] {HDR_SEGMENT_SIZE, 8});
        f.put("hdr.strategy_capacity", new int[] {24, 4});
        f.put("hdr.strategy_entry_size", new int[] {28, 4});
        f.put("hdr.strategy_table_offset", new int[] {32, 4});
        f.put("hdr.daemon_pid", new int[] {36, 4});
        f.put("hdr.tick_period_ns", new int[] {40, 8});
        f.put("hdr.heartbeat_bound_ns", new int[] {HDR_HEARTBEAT_BOUND_NS, 8});
        f.put("hdr.strategy_count", new int[] {HDR_STRATEGY_COUNT, 4});
        f.put("hdr.group_count", new int[] {HDR_GROUP_COUNT, 4});
        f.put("heartbeat_ns", new int[] {HEARTBEAT_NS, 8});
        f.put("audit.lock", new int[] {72, 4});
        f.put("audit.seq", new int[] {80, 8});
        f.put("audit.end", new int[] {88, 8});
        f.put("audit.hash", new int[] {96, 32});
        f.put("change_seq", new int[] {CHANGE_SEQ, 4});
        f.put("hdr.group_capacity", new int[] {136, 4});
        f.put("hdr.group_entry_size", new int[] {140, 4});
        f.put("hdr.group_table_offset", new int[] {144, 4});
        f.put("hdr.limits_table_offset", new int[] {148, 4});
        f.put("hdr.limits_entry_size", new int[] {152, 4});
        f.put("valid_until_ns", new int[] {VALID_UNTIL_NS, 8});
        f.put("firm_revision", new int[] {168, 8});
        f.put("firm_contact_ns", new int[] {176, 8});
        f.put("global", new int[] {GLOBAL, SCOPE_SIZE});
        f.put("strategies", new int[] {STRATEGIES, SCOPE_SIZE * MAX_STRATEGIES});
        f.put("groups", new int[] {GROUPS, SCOPE_SIZE * MAX_GROUPS});
        f.put("limits", new int[] {LIMITS, LIMITS_ENTRY_SIZE * LIMITS_ENTRIES});
        f.put("scope.state", new int[] {SCOPE_STATE, 8});
        f.put("scope.seq", new int[] {SCOPE_SEQ, 4});
        f.put("scope.latches", new int[] {SCOPE_LATCHES, 4});
        f.put("scope.since_ns", new int[] {SCOPE_SINCE_NS, 8});
        f.put("scope.name", new int[] {SCOPE_NAME, NAME_MAX});
        f.put("limit.seq", new int[] {LIMIT_SEQ, 4});
        f.put("limit.flags", new int[] {LIMIT_FLAGS, 4});
        f.put("limit.size_factor", new int[] {LIMIT_SIZE_FACTOR, 8});
        f.put("limit.max_qty", new int[] {LIMIT_MAX_QTY, 8});
        f.put("limit.max_notional", new int[] {LIMIT_MAX_NOTIONAL, 8});
        FIELDS = Collections.unmodifiableMap(f);
    }

    /** The telemetry segment's documented fields in a version (1 or 2): {offset, size}. */
    public static Map<String, int[]> telFields(int version) {
        Map<String, int[]> f = new LinkedHashMap<>();
        f.put("tel.magic", new int[] {0, 8});
        f.put("tel.version", new int[] {TEL_VERSION_OFF, 4});
        f.put("tel.slot_size", new int[] {12, 4});
        f.put("tel.capacity", new int[] {16, 4});
        f.put("tel.segment_size", new int[] {TEL_SEGMENT_SIZE_OFF, 8});
        f.put("tel.slots", new int[] {TEL_SLOTS, telSlotSize(version) * MAX_STRATEGIES});
        f.put("slot.orders", new int[] {SLOT_ORDERS, 8});
        f.put("slot.rejects", new int[] {SLOT_REJECTS, 8});
        f.put("slot.cancels", new int[] {SLOT_CANCELS, 8});
        f.put("slot.heartbeat_ns", new int[] {SLOT_HEARTBEAT_NS, 8});
        f.put("slot.ack_seq", new int[] {SLOT_ACK_SEQ, 4});
        f.put("slot.pid", new int[] {SLOT_PID, 4});
        f.put("slot.ack_ns", new int[] {SLOT_ACK_NS, 8});
        f.put("slot.opening_base", new int[] {SLOT_OPENING_BASE, 8});
        f.put("slot.opening_fills", new int[] {SLOT_OPENING_FILLS, 8});
        f.put("slot.gseq", new int[] {SLOT_GSEQ, 4});
        f.put("slot.opening_seq", new int[] {SLOT_OPENING_SEQ, 4});
        f.put("slot.fills", new int[] {SLOT_FILLS, 8});
        f.put("slot.fill_cash", new int[] {SLOT_FILL_CASH, 8});
        f.put("slot.fees", new int[] {SLOT_FEES, 8});
        f.put("slot.balance", new int[] {SLOT_BALANCE, 8});
        f.put("slot.position", new int[] {SLOT_POSITION, 8});
        f.put("slot.gross", new int[] {SLOT_GROSS, 8});
        f.put("slot.pnl", new int[] {SLOT_PNL, 8});
        if (version >= 2) {
            f.put("slot.working_orders", new int[] {SLOT_WORKING_ORDERS, 8});
            f.put("slot.working_ns", new int[] {SLOT_WORKING_NS, 8});
            f.put("slot.md_last_ns", new int[] {SLOT_MD_LAST_NS, 8});
            f.put("slot.session", new int[] {SLOT_SESSION, 4});
            f.put("slot.session_ns", new int[] {SLOT_SESSION_NS, 8});
        }
        return Collections.unmodifiableMap(f);
    }

    /** Reason codes (breaker.proto's ReasonCode), as the page's table names them. */
    static final String[] REASONS = {"none", "manual_halt", "emergency_stop", "kill_switch",
        "reject_rate", "order_rate", "invariant_violation", "reconciliation_break", "drawdown",
        "exposure_limit", "stale_heartbeat", "audit_corrupt", "market_data_stale",
        "exchange_down", "authority_lost"};

    /** The name of a reason code; "reason_N" for one this client does not know. */
    public static String reasonName(int code) {
        return code >= 0 && code < REASONS.length ? REASONS[code] : "reason_" + code;
    }

    /** Documented reason codes, code to name (for the layout test). */
    public static Map<Integer, String> reasons() {
        Map<Integer, String> m = new LinkedHashMap<>();
        for (int i = 0; i < REASONS.length; i++)
            m.put(i, REASONS[i]);
        return m;
    }
}

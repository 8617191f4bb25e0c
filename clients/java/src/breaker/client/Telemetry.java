package breaker.client;

import java.lang.invoke.VarHandle;
import java.nio.MappedByteBuffer;

/**
 * The engine's writer of the telemetry segment /dev/shm/breaker.&lt;instance&gt;.tel
 * (docs/shm-layout.md, "Telemetry segment"): the same single-writer
 * protocol as the C client. Each slot has ONE writer, the engine running
 * that strategy: counters are a plain load and a release store (no locked
 * instruction); the money words are published under the slot's seqlock
 * gseq (odd while writing); a value word is written before its time word.
 * Not thread-safe per slot: one thread (or your own lock) per slot.
 */
public final class Telemetry implements AutoCloseable {
    private static final VarHandle U64 = BreakerClient.U64;
    private static final VarHandle U32 = BreakerClient.U32;
    private final MappedByteBuffer tel;
    private final int pid = (int) ProcessHandle.current().pid();
    /** The segment's version (1 or 2) and slot size. */
    public final int version;
    private final int slotSize;

    private Telemetry(MappedByteBuffer tel, int version) {
        this.tel = tel;
        this.version = version;
        this.slotSize = Layout.telSlotSize(version);
    }

    public static Telemetry attach(String instance) throws BreakerException {
        return attach(instance, Segments.DAEMON_UID_DEFAULT);
    }

    /**
     * Map the telemetry segment read-write if breakerd made it (owner root
     * or daemonUid; the group may write it, others may not; one link) and its
     * magic, version (2) and size are this client's. A version-1 segment is
     * refused, as the C client does: it has no room for the working-order,
     * market-data and session words, so the engine could not report them.
     */
    public static Telemetry attach(String instance, long daemonUid) throws BreakerException {
        var p = Segments.path(instance, Layout.TEL_SUFFIX);
        MappedByteBuffer m = Segments.map(p, Layout.telSegmentSize(Layout.TEL_VERSION), true, true, daemonUid);
        int version = (int) U32.getAcquire(m, Layout.TEL_VERSION_OFF);
        if (version == 0)
            throw new BreakerException(BreakerException.EAGAIN, p + ": being created");
        if ((long) U64.get(m, 0) != Layout.TEL_MAGIC || version != Layout.TEL_VERSION
            || (long) U64.get(m, Layout.TEL_SEGMENT_SIZE_OFF) != Layout.telSegmentSize(version)
            || m.capacity() != Layout.telSegmentSize(version))
            throw new BreakerException(BreakerException.EPROTO, p + ": telemetry version " + version
                + " (" + m.capacity() + " bytes); this client writes version " + Layout.TEL_VERSION
                + " only (an older segment has no room for what it reports): refusing");
        return new Telemetry(m, version);
    }

    @Override
    public void close() {}

    /** The slot's base offset, or -1 for a slot out of range (the report is dropped). */
    private int base(int slot) {
        return slot >= 0 && slot < Layout.MAX_STRATEGIES ? Layout.TEL_SLOTS + slotSize * slot : -1;
    }


    private void add(int off, long n) {
        U64.setRelease(tel, off, (long) U64.getOpaque(tel, off) + n);
    }

    private void addF(int off, double d) {
        U64.setOpaque(tel, off, Double.doubleToRawLongBits(
                                    Double.longBitsToDouble((long) U64.getOpaque(tel, off)) + d));
    }

    private void setF(int off, double d) {
        U64.setOpaque(tel, off, Double.doubleToRawLongBits(d));
    }

    public void reportOrder(int slot, long n) {
        int b = base(slot);
        if (b >= 0)
            add(b + Layout.SLOT_ORDERS, n);
    }

    public void reportReject(int slot, long n) {
        int b = base(slot);
        if (b >= 0)
            add(b + Layout.SLOT_REJECTS, n);
    }

    public void reportCancel(int slot, long n) {
        int b = base(slot);
        if (b >= 0)
            add(b + Layout.SLOT_CANCELS, n);
    }

    /** The engine is alive (System.nanoTime() is CLOCK_MONOTONIC); call at least every few ms. */
    public void reportHeartbeat(int slot, long nowMonoNs) {
        int b = base(slot);
        if (b < 0)
            return;
        if ((int) U32.getOpaque(tel, b + Layout.SLOT_PID) == 0)
            U32.setOpaque(tel, b + Layout.SLOT_PID, pid);
        U64.setRelease(tel, b + Layout.SLOT_HEARTBEAT_NS, nowMonoNs);
    }

    /** The engine has acted on (e.g. cancelled its orders for) change sequence seq. */
    public void reportAck(int slot, int seq, long nowMonoNs) {
        int b = base(slot);
        if (b < 0)
            return;
        U64.setOpaque(tel, b + Layout.SLOT_ACK_NS, nowMonoNs);
        U32.setRelease(tel, b + Layout.SLOT_ACK_SEQ, seq);
    }

    private void begin(int b) {
        // to the next odd value, even if a writer died mid-update and left it odd
        U32.setOpaque(tel, b + Layout.SLOT_GSEQ, (int) U32.getOpaque(tel, b + Layout.SLOT_GSEQ) | 1);
        VarHandle.releaseFence();
    }

    private void end(int b) {
        U32.setRelease(tel, b + Layout.SLOT_GSEQ, (int) U32.getOpaque(tel, b + Layout.SLOT_GSEQ) + 1);
    }

    /** A fill: signed cash (negative buying), the fee, and balance and net position after it. */
    public void reportFill(int slot, double cash, double fee, double balance, double position) {
        int b = base(slot);
        if (b < 0)
            return;
        begin(b);
        U64.setOpaque(tel, b + Layout.SLOT_FILLS, (long) U64.getOpaque(tel, b + Layout.SLOT_FILLS) + 1);
        addF(b + Layout.SLOT_FILL_CASH, cash);
        addF(b + Layout.SLOT_FEES, fee);
        setF(b + Layout.SLOT_BALANCE, balance);
        setF(b + Layout.SLOT_POSITION, position);
        end(b);
    }

    /** Marks: net position, gross exposure and PnL (realized + unrealized). */
    public void reportMarks(int slot, double position, double gross, double pnl) {
        int b = base(slot);
        if (b < 0)
            return;
        begin(b);
        setF(b + Layout.SLOT_POSITION, position);
        setF(b + Layout.SLOT_GROSS, gross);
        setF(b + Layout.SLOT_PNL, pnl);
        end(b);
    }

    /** The opening balance: a statement (opening_seq + 1) with the fills and cash folded in. */
    public void reportOpeningBalance(int slot, double balance) {
        int b = base(slot);
        if (b < 0)
            return;
        double cash = Double.longBitsToDouble((long) U64.getOpaque(tel, b + Layout.SLOT_FILL_CASH));
        double fees = Double.longBitsToDouble((long) U64.getOpaque(tel, b + Layout.SLOT_FEES));
        begin(b);
        setF(b + Layout.SLOT_BALANCE, balance);
        setF(b + Layout.SLOT_OPENING_BASE, balance - (cash - fees));
        U64.setOpaque(tel, b + Layout.SLOT_OPENING_FILLS, (long) U64.getOpaque(tel, b + Layout.SLOT_FILLS));
        U32.setOpaque(tel, b + Layout.SLOT_OPENING_SEQ,
                      (int) U32.getOpaque(tel, b + Layout.SLOT_OPENING_SEQ) + 1);
        end(b);
    }

    /** The cash balance alone; before the first fill it is the opening balance. */
    public void reportBalance(int slot, double balance) {
        int b = base(slot);
        if (b < 0)
            return;
        if ((long) U64.getOpaque(tel, b + Layout.SLOT_FILLS) == 0) {
            reportOpeningBalance(slot, balance);
            return;
        }
        begin(b);
        setF(b + Layout.SLOT_BALANCE, balance);
        end(b);
    }

    /** Orders working at the venue now (report on change, and when acting on a halt). */
    public void reportWorking(int slot, long working, long nowMonoNs) {
        int b = base(slot);
        if (b < 0)
            return;
        U64.setOpaque(tel, b + Layout.SLOT_WORKING_ORDERS, working);
        U64.setRelease(tel, b + Layout.SLOT_WORKING_NS, nowMonoNs != 0 ? nowMonoNs : 1);
    }

    /** A market-data tick arrived. */
    public void reportMdTick(int slot, long nowMonoNs) {
        int b = base(slot);
        if (b >= 0)
            U64.setRelease(tel, b + Layout.SLOT_MD_LAST_NS, nowMonoNs != 0 ? nowMonoNs : 1);
    }

    /** The order-entry session with the venue went up or down. */
    public void reportSession(int slot, boolean up, long nowMonoNs) {
        int b = base(slot);
        if (b < 0)
            return;
        U32.setOpaque(tel, b + Layout.SLOT_SESSION, up ? Layout.SESSION_UP : Layout.SESSION_DOWN);
        U64.setRelease(tel, b + Layout.SLOT_SESSION_NS, nowMonoNs != 0 ? nowMonoNs : 1);
    }
}

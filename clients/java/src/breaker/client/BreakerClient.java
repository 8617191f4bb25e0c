package breaker.client;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.locks.LockSupport;

/**
 * The engine's read-only view of one breaker instance (docs/clients.md,
 * "Java"). The segment is mapped READ_ONLY: the kernel refuses writes, so a
 * buggy engine cannot clear a halt. Every word the daemon publishes is read
 * with an acquire load (VarHandle.getAcquire on the mapped buffer).
 *
 * <p>Thread-safe: the object holds nothing mutable. The mapping lives until
 * the object is garbage-collected (Java cannot unmap explicitly).
 */
public final class BreakerClient implements AutoCloseable {
    /** check()'s slot for "the global scope alone". */
    public static final int GLOBAL = -1;

    static final VarHandle U64 =
        MethodHandles.byteBufferViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);
    static final VarHandle U32 =
        MethodHandles.byteBufferViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);
    private static final int SEQLOCK_TRIES = 10000;

    private final MappedByteBuffer shm;
    public final String instance;

    private BreakerClient(MappedByteBuffer shm, String instance) {
        this.shm = shm;
        this.instance = instance;
    }

    /** attach(instance, -1): the daemon's uid from BREAKER_DAEMON_UID, else user breaker or ours. */
    public static BreakerClient attach(String instance) throws BreakerException {
        return attach(instance, Segments.DAEMON_UID_DEFAULT);
    }

    /**
     * Map /dev/shm/breaker.&lt;instance&gt; read-only if it is breakerd's
     * (owner root or daemonUid) and its magic, layout version and size are
     * this client's. Throws BreakerException (errno EAGAIN while the daemon
     * is still creating it): the engine must not trade.
     */
    public static BreakerClient attach(String instance, long daemonUid) throws BreakerException {
        var p = Segments.path(instance, "");
        MappedByteBuffer m = Segments.map(p, Layout.SEGMENT_SIZE, false, false, daemonUid);
        int version = (int) U32.getAcquire(m, Layout.HDR_LAYOUT_VERSION);
        if (version == 0)
            throw new BreakerException(BreakerException.EAGAIN, p + ": being created");
        long magic = (long) U64.get(m, Layout.HDR_MAGIC);
        long size = (long) U64.get(m, Layout.HDR_SEGMENT_SIZE);
        if (magic != Layout.MAGIC || version != Layout.LAYOUT_VERSION || size != Layout.SEGMENT_SIZE)
            throw new BreakerException(BreakerException.EPROTO, p + ": layout " + version
                + " (magic 0x" + Long.toHexString(magic) + ", " + size + " bytes); this client reads layout "
                + Layout.LAYOUT_VERSION + ": refusing (fail closed)");
        return new BreakerClient(m, instance);
    }

    /** Nothing to release by hand: the mapping goes with the object. */
    @Override
    public void close() {}

    static int scopeOff(int slot) {
        return slot < 0 ? Layout.GLOBAL : Layout.STRATEGIES + Layout.SCOPE_SIZE * slot;
    }

    private long u64(int off) { return (long) U64.getAcquire(shm, off); }
    private int u32(int off) { return (int) U32.getAcquire(shm, off); }

    // ---- the hot path -------------------------------------------------------

    /**
     * Effective mode of a strategy slot (or GLOBAL): the most restrictive of
     * the global scope and the strategy (the daemon already folded the
     * strategy's groups into its word). Any other slot out of range answers
     * HALTED. Two acquire loads; does not look at the daemon's heartbeat.
     */
    public Mode check(int slot) {
        long g = u64(Layout.GLOBAL + Layout.SCOPE_STATE) & 0xff;
        long s = 0;
        if (slot >= Layout.MAX_STRATEGIES || slot < GLOBAL)
            return Mode.HALTED;
        if (slot >= 0)
            s = u64(Layout.STRATEGIES + Layout.SCOPE_SIZE * slot + Layout.SCOPE_STATE) & 0xff;
        return Mode.of(Math.max(g, s));
    }

    /** checkLive(slot, System.nanoTime(), 0): on Linux nanoTime is CLOCK_MONOTONIC, the daemon's clock. */
    public Mode checkLive(int slot) {
        return checkLive(slot, System.nanoTime(), 0);
    }

    /**
     * check() that fails closed: HALTED when the layout version changed, or
     * the daemon's heartbeat is 0 (clean stop), older than maxAgeNs at
     * nowMonoNs, or more than maxAgeNs ahead of it. maxAgeNs 0 takes the
     * daemon's advice (hdr.heartbeat_bound_ns). In firm-wide mode also
     * HALTED past valid_until_ns (the daemon's last proven quorum contact
     * plus its bound), so a stuck daemon fails closed too.
     */
    public Mode checkLive(int slot, long nowMonoNs, long maxAgeNs) {
        long hb = u64(Layout.HEARTBEAT_NS);
        if ((int) U32.getOpaque(shm, Layout.HDR_LAYOUT_VERSION) != Layout.LAYOUT_VERSION)
            return Mode.HALTED;
        if (maxAgeNs == 0)
            maxAgeNs = (long) U64.get(shm, Layout.HDR_HEARTBEAT_BOUND_NS);
        // unsigned, as the C client: a clock beyond 2^63 ns does not happen
        if (hb == 0 || (Long.compareUnsigned(nowMonoNs, hb) > 0
                        && Long.compareUnsigned(nowMonoNs - hb, maxAgeNs) > 0)
            || (Long.compareUnsigned(hb, nowMonoNs) > 0
                && Long.compareUnsigned(hb - nowMonoNs, maxAgeNs) > 0))
            return Mode.HALTED;
        // firm-wide mode: no proven etcd quorum contact until valid_until_ns (0: not used)
        long vu = u64(Layout.VALID_UNTIL_NS);
        if (vu != 0 && Long.compareUnsigned(nowMonoNs, vu) > 0)
            return Mode.HALTED;
        return check(slot);
    }

    // ---- off the hot path -----------------------------------------------------

    /** A strategy's slot; throws (ENOENT) if it is not registered: do not trade. */
    public int resolve(String strategy) throws BreakerException {
        int n = Math.min(u32(Layout.HDR_STRATEGY_COUNT), Layout.MAX_STRATEGIES);
        for (int i = 0; i < n; i++)
            if (name(Layout.STRATEGIES + Layout.SCOPE_SIZE * i).equals(strategy))
                return i;
        throw new BreakerException(BreakerException.ENOENT, "strategy " + strategy + " is not registered");
    }

    /** The NUL-terminated name of the scope at off (at most 39 bytes). */
    String name(int off) {
        byte[] b = new byte[Layout.NAME_MAX - 1];
        int n = 0;
        for (; n < b.length; n++) {
            b[n] = shm.get(off + Layout.SCOPE_NAME + n);
            if (b[n] == 0)
                break;
        }
        return new String(b, 0, n, StandardCharsets.UTF_8);
    }

    public int strategyCount() { return Math.min(u32(Layout.HDR_STRATEGY_COUNT), Layout.MAX_STRATEGIES); }
    public int groupCount() { return Math.min(u32(Layout.HDR_GROUP_COUNT), Layout.MAX_GROUPS); }
    public String strategyName(int slot) { return name(scopeOff(slot)); }
    public String groupName(int g) { return name(Layout.GROUPS + Layout.SCOPE_SIZE * g); }
    public int changeSeq() { return u32(Layout.CHANGE_SEQ); }
    public long heartbeatNs() { return u64(Layout.HEARTBEAT_NS); }
    public int layoutVersion() { return u32(Layout.HDR_LAYOUT_VERSION); }

    /**
     * Wait until the change sequence differs from seen, or timeoutNs passes
     * (negative: forever). Java cannot FUTEX_WAIT without native code, so
     * this polls with backoff: about 50 us of spinning, then parks of 10 us
     * doubling up to 1 ms. A change is seen within about 1 ms (plus the
     * scheduler's wake-up latency); the C and Rust clients sleep on the futex
     * instead. Returns true on a change, false on timeout or interrupt.
     */
    public boolean waitChange(int seen, long timeoutNs) {
        long start = System.nanoTime();
        long park = 10_000;
        for (int spins = 0;; spins++) {
            if (changeSeq() != seen)
                return true;
            long waited = System.nanoTime() - start;
            if (timeoutNs >= 0 && waited >= timeoutNs)
                return false;
            if (Thread.currentThread().isInterrupted())
                return false;
            if (waited < 50_000) {
                Thread.onSpinWait();
                continue;
            }
            long nap = timeoutNs >= 0 ? Math.min(park, timeoutNs - waited) : park;
            LockSupport.parkNanos(Math.max(nap, 1));
            park = Math.min(park * 2, 1_000_000);
        }
    }

    /** A scope's own {state, latches, since_ns, seq} read under its seqlock (0 seq: never settled). */
    long[] readScope(int off) {
        for (int tries = 0; tries <= SEQLOCK_TRIES; tries++) {
            int q = u32(off + Layout.SCOPE_SEQ);
            long since = (long) U64.getOpaque(shm, off + Layout.SCOPE_SINCE_NS);
            int latches = (int) U32.getOpaque(shm, off + Layout.SCOPE_LATCHES);
            long state = (long) U64.getOpaque(shm, off + Layout.SCOPE_STATE);
            VarHandle.acquireFence();
            if ((q & 1) == 0 && q == (int) U32.getOpaque(shm, off + Layout.SCOPE_SEQ))
                return new long[] {state, latches & 0xffffffffL, since, q & 0xffffffffL};
        }
        return new long[] {u64(off + Layout.SCOPE_STATE), 0, 0, 0};
    }

    /**
     * The winning latch of a slot's effective scope (GLOBAL: the global
     * scope), read under the scope's seqlock so that time and reason match;
     * the holder bits name the group whose latch the daemon folded in.
     */
    public Reason reason(int slot) {
        boolean strat = slot >= 0 && slot < Layout.MAX_STRATEGIES;
        long gw = u64(Layout.GLOBAL + Layout.SCOPE_STATE);
        long sw = strat ? u64(scopeOff(slot) + Layout.SCOPE_STATE) : 0;
        boolean useStrat = strat && (sw & 0xff) > (gw & 0xff);
        int off = useStrat ? scopeOff(slot) : Layout.GLOBAL;
        long[] r = readScope(off);
        long w = r[0];
        int mode = (int) (w & 0xff);
        int holder = (int) ((w >>> 16) & 0xffff);
        Reason.Scope scope;
        int scopeSlot = -1;
        String scopeName = "";
        if (mode == 0) {
            scope = Reason.Scope.NONE;
        } else if (!useStrat) {
            scope = Reason.Scope.GLOBAL;
        } else if (holder >= 1 && holder <= Layout.MAX_GROUPS) {
            scope = Reason.Scope.GROUP;
            scopeSlot = holder - 1;
            scopeName = groupName(holder - 1);
        } else {
            scope = Reason.Scope.STRATEGY;
            scopeSlot = slot;
            scopeName = strategyName(slot);
        }
        int code = (int) ((w >>> 8) & 0xff);
        return new Reason(Mode.of(mode), code, Layout.reasonName(code), w >>> 32, r[2], scope,
                          scopeSlot, scopeName);
    }

    /** One limits entry {flags, sizeFactor, maxQty, maxNotional} under its seqlock, or null. */
    private double[] limitsEntry(int e) {
        int off = Layout.LIMITS + Layout.LIMITS_ENTRY_SIZE * e;
        for (int tries = 0; tries <= SEQLOCK_TRIES; tries++) {
            int q = u32(off + Layout.LIMIT_SEQ);
            int flags = (int) U32.getOpaque(shm, off + Layout.LIMIT_FLAGS);
            long sf = (long) U64.getOpaque(shm, off + Layout.LIMIT_SIZE_FACTOR);
            long mq = (long) U64.getOpaque(shm, off + Layout.LIMIT_MAX_QTY);
            long mn = (long) U64.getOpaque(shm, off + Layout.LIMIT_MAX_NOTIONAL);
            VarHandle.acquireFence();
            if ((q & 1) == 0 && q == (int) U32.getOpaque(shm, off + Layout.LIMIT_SEQ))
                return new double[] {flags, Double.longBitsToDouble(sf),
                                     Double.longBitsToDouble(mq), Double.longBitsToDouble(mn)};
        }
        return null;
    }

    /** A set limit as a trader meant it: NaN or negative reads as 0 (fail closed). */
    private static double sane(double v) { return v >= 0 ? v : 0; }

    /**
     * The limits for a strategy slot (or GLOBAL): for each limit set in the
     * global entry or the slot's, the smaller wins. Off the hot path: cache
     * it and read again when changeSeq() moves. A bad slot or an entry that
     * never settles answers every limit set and sizeFactor 0 (no new size).
     */
    public Limits limits(int slot) {
        final int all = Layout.LIMIT_FLAG_SIZE_FACTOR | Layout.LIMIT_FLAG_MAX_QTY
                        | Layout.LIMIT_FLAG_MAX_NOTIONAL;
        if (slot >= Layout.MAX_STRATEGIES || slot < GLOBAL)
            return new Limits(all, 0, 0, 0);
        int flags = 0;
        double sf = 1.0, mq = 0, mn = 0;
        for (int i = 0; i < (slot >= 0 ? 2 : 1); i++) {
            double[] e = limitsEntry(i == 0 ? 0 : 1 + slot);
            if (e == null)
                return new Limits(all, 0, 0, 0);
            int f = (int) e[0];
            if ((f & Layout.LIMIT_FLAG_SIZE_FACTOR) != 0
                && ((flags & Layout.LIMIT_FLAG_SIZE_FACTOR) == 0 || sane(e[1]) < sf))
                sf = sane(e[1]);
            if ((f & Layout.LIMIT_FLAG_MAX_QTY) != 0
                && ((flags & Layout.LIMIT_FLAG_MAX_QTY) == 0 || sane(e[2]) < mq))
                mq = sane(e[2]);
            if ((f & Layout.LIMIT_FLAG_MAX_NOTIONAL) != 0
                && ((flags & Layout.LIMIT_FLAG_MAX_NOTIONAL) == 0 || sane(e[3]) < mn))
                mn = sane(e[3]);
            flags |= f & all;
        }
        return new Limits(flags, sf, mq, mn);
    }
}

package breaker.client;

/**
 * What the breaker lets an engine trade: the strictest of the global and the
 * strategy's (already folded with its groups) limits. A limit whose flag is
 * not set is no limit: sizeFactor 1.0, maxQty and maxNotional 0 (none).
 */
public record Limits(int flags, double sizeFactor, double maxQty, double maxNotional) {
    public boolean hasSizeFactor() { return (flags & Layout.LIMIT_FLAG_SIZE_FACTOR) != 0; }
    public boolean hasMaxQty() { return (flags & Layout.LIMIT_FLAG_MAX_QTY) != 0; }
    public boolean hasMaxNotional() { return (flags & Layout.LIMIT_FLAG_MAX_NOTIONAL) != 0; }
}

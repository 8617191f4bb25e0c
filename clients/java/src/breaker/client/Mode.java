package breaker.client;

/** The modes, least to most restrictive; the value is the state word's low byte. */
public enum Mode {
    ACTIVE, CAUTIOUS, REDUCE_ONLY, HALTED;

    private static final Mode[] BY_VALUE = values();

    /** A mode value from the segment; anything above 3 reads as HALTED (fail closed). */
    public static Mode of(long value) {
        return value >= 0 && value < BY_VALUE.length ? BY_VALUE[(int) value] : HALTED;
    }
}

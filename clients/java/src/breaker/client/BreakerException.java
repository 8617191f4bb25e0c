package breaker.client;

/**
 * Attaching failed: no segment, not ready, unknown layout, or not the
 * daemon's. The engine must not trade. {@link #errno} is the C client's
 * answer for the same case (ENOENT 2, EAGAIN 11, EPERM 1, EPROTO 71, EINVAL 22).
 */
public class BreakerException extends Exception {
    private static final long serialVersionUID = 1L;
    public static final int EPERM = 1, ENOENT = 2, EAGAIN = 11, EINVAL = 22, EPROTO = 71;
    public final int errno;

    public BreakerException(int errno, String message) {
        super(message);
        this.errno = errno;
    }

    public BreakerException(int errno, String message, Throwable cause) {
        super(message, cause);
        this.errno = errno;
    }
}

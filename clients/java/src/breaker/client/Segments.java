package breaker.client;

import java.io.IOException;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;

/**
 * Open and map a segment only if it is breakerd's (docs/clients.md, "Whose
 * segment it is"): nobody but its owner may write it (the telemetry
 * segment: nobody but owner and group), and the owner is root or the
 * daemon's uid. Java cannot fstat the descriptor it opened, so the file's
 * identity (device, inode) is read before and after opening and mapping,
 * and must not change; /dev/shm is sticky, so only the owner could have
 * swapped the file in between.
 */
final class Segments {
    private Segments() {}

    static final String DAEMON_UID_ENV = "BREAKER_DAEMON_UID";
    static final String DAEMON_USER_DEFAULT = "breaker";
    static final long DAEMON_UID_DEFAULT = -1;

    static Path path(String instance, String suffix) throws BreakerException {
        if (instance == null || instance.isEmpty() || instance.length() >= 64
            || instance.indexOf('/') >= 0 || instance.equals(".") || instance.equals(".."))
            throw new BreakerException(BreakerException.EINVAL, "bad instance name: " + instance);
        return Path.of(Layout.SHM_DIR, Layout.SHM_PREFIX + instance + suffix);
    }

    /** The uid a user name or number names, or -1. */
    static long uidOf(String user) {
        if (user.chars().allMatch(Character::isDigit) && !user.isEmpty()) {
            try {
                return Long.parseLong(user);
            } catch (NumberFormatException e) {
                return -1;
            }
        }
        try {
            for (String line : Files.readAllLines(Path.of("/etc/passwd"))) {
                String[] f = line.split(":", -1);
                if (f.length > 2 && f[0].equals(user))
                    return Long.parseLong(f[2]);
            }
        } catch (IOException | NumberFormatException e) {
            return -1;
        }
        return -1;
    }

    static long myUid() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status")))
                if (line.startsWith("Uid:"))
                    return Long.parseLong(line.split("\\s+")[2]); // effective uid
        } catch (IOException | RuntimeException e) {
            return -2;
        }
        return -2;
    }

    /** bk_client_trust_owner: throws EPERM/EINVAL unless the owner may be believed. */
    static void trustOwner(Path p, long owner, int mode, long daemonUid) throws BreakerException {
        if ((mode & 0022) != 0)
            throw new BreakerException(BreakerException.EPERM,
                p + ": writable by group or others (mode " + Integer.toOctalString(mode) + ")");
        String env = System.getenv(DAEMON_UID_ENV);
        if (daemonUid < 0 && env != null && !env.isEmpty()) {
            daemonUid = uidOf(env);
            if (daemonUid < 0)
                throw new BreakerException(BreakerException.EINVAL,
                    DAEMON_UID_ENV + "=" + env + " names no user");
        }
        if (owner == 0)
            return; // root can write any segment anyway
        if (daemonUid >= 0) {
            if (owner == daemonUid)
                return;
        } else if (owner == myUid() || owner == uidOf(DAEMON_USER_DEFAULT)) {
            return;
        }
        throw new BreakerException(BreakerException.EPERM,
            p + ": owned by uid " + owner + ", not breakerd's");
    }

    private static Map<String, Object> attrs(Path p) throws IOException {
        return Files.readAttributes(p, "unix:uid,mode,nlink,size,ino,dev");
    }

    /**
     * Map p (read-only, or read-write) if trusted and exactly size bytes.
     * groupMayWrite: the telemetry segment's group write bit is allowed.
     */
    static MappedByteBuffer map(Path p, long size, boolean writable, boolean groupMayWrite,
                                long daemonUid) throws BreakerException {
        return map(p, new long[] {size}, writable, groupMayWrite, daemonUid);
    }

    /** map(), for a read-write segment that may have one of several exact sizes. */
    static MappedByteBuffer map(Path p, long[] sizes, boolean writable, boolean groupMayWrite,
                                long daemonUid) throws BreakerException {
        try {
            Map<String, Object> before = attrs(p);
            int mode = (Integer) before.get("mode");
            if (groupMayWrite)
                mode &= ~0020;
            trustOwner(p, ((Number) before.get("uid")).longValue(), mode, daemonUid);
            if (writable && ((Number) before.get("nlink")).intValue() != 1)
                throw new BreakerException(BreakerException.EPERM, p + ": has other links");
            long len = (Long) before.get("size");
            if (len == 0)
                throw new BreakerException(BreakerException.EAGAIN, p + ": being created");
            long size = sizes[0];
            for (long sz : sizes)
                if (len == sz)
                    size = sz;
            if (writable ? len != size : len < size)
                throw new BreakerException(BreakerException.EPROTO,
                    p + ": " + len + " bytes, layout wants " + java.util.Arrays.toString(sizes));
            MappedByteBuffer buf;
            try (FileChannel ch = writable
                     ? FileChannel.open(p, StandardOpenOption.READ, StandardOpenOption.WRITE)
                     : FileChannel.open(p, StandardOpenOption.READ)) {
                buf = ch.map(writable ? FileChannel.MapMode.READ_WRITE
                                      : FileChannel.MapMode.READ_ONLY, 0, size);
            }
            Map<String, Object> after = attrs(p);
            if (!before.get("ino").equals(after.get("ino"))
                || !before.get("dev").equals(after.get("dev")))
                throw new BreakerException(BreakerException.EPERM, p + ": replaced while opening");
            return buf;
        } catch (NoSuchFileException e) {
            throw new BreakerException(BreakerException.ENOENT, p + ": no such segment", e);
        } catch (IOException e) {
            throw new BreakerException(BreakerException.EPROTO, p + ": " + e.getMessage(), e);
        }
    }
}

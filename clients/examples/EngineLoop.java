import breaker.client.BreakerClient;
import breaker.client.BreakerException;
import breaker.client.Mode;
import breaker.client.Reason;
import breaker.client.Telemetry;

/**
 * A minimal engine loop with the Java client (docs/clients.md, "Java"):
 * attach (retrying while the daemon creates the segment), resolve the
 * strategy once, then before every simulated order ask checkLive and act:
 * HALTED cancel everything and send nothing, REDUCE_ONLY only reduce,
 * CAUTIOUS send at the limits' size factor, ACTIVE send. Every mode change
 * is printed with its reason and acknowledged in telemetry; a heartbeat is
 * written every iteration. Exits 1 if it cannot attach, 2 if the strategy is
 * not registered (it refuses to trade).
 *
 * usage: java -cp breaker-client.jar:. EngineLoop INSTANCE STRATEGY SECONDS
 */
public final class EngineLoop {
    public static void main(String[] a) throws Exception {
        String instance = a.length > 0 ? a[0] : "default", strategy = a.length > 1 ? a[1] : "momo-eu-1";
        long until = System.nanoTime() + (long) (Double.parseDouble(a.length > 2 ? a[2] : "5") * 1e9);
        BreakerClient c = null;
        Telemetry t;
        int slot;
        for (long deadline = System.nanoTime() + 2_000_000_000L;;) {
            try {
                c = BreakerClient.attach(instance);
                t = Telemetry.attach(instance);
                break;
            } catch (BreakerException e) {
                if (e.errno != BreakerException.EAGAIN || System.nanoTime() > deadline) {
                    System.err.println("breaker: " + e.getMessage() + ": refusing to trade");
                    System.exit(1);
                }
                Thread.sleep(10);
            }
        }
        try {
            slot = c.resolve(strategy);
        } catch (BreakerException e) {
            System.err.println("breaker: " + e.getMessage() + ": refusing to trade");
            System.exit(2);
            return;
        }
        Mode last = null;
        long sent = 0, position = 0;
        while (System.nanoTime() < until) {
            long now = System.nanoTime();
            t.reportHeartbeat(slot, now);
            int seq = c.changeSeq();
            Mode m = c.checkLive(slot, now, 0);
            if (m != last) {
                Reason r = c.reason(slot);
                System.out.println(m + (m == Mode.ACTIVE ? "" : " (" + r.reasonName() + ", " + r.scope() + " "
                                                               + r.scopeName() + ")"));
                t.reportAck(slot, seq, now);
                last = m;
            }
            long size = switch (m) {
                case ACTIVE -> 100;
                case CAUTIOUS -> (long) (100 * c.limits(slot).sizeFactor());
                case REDUCE_ONLY -> position > 0 ? -Math.min(position, 100) : 0;
                case HALTED -> 0; // and cancel every working order
            };
            if (size != 0) {
                t.reportOrder(slot, 1);
                position += size;
                sent++;
            }
            c.waitChange(seq, 1_000_000); // pace the loop: 1 ms, or at once on a change
        }
        System.out.println("done: " + sent + " orders, position " + position);
    }
}

import breaker.client.BreakerClient;
import java.util.Arrays;

/**
 * The Java figure for bench/clients/run.sh: BreakerClient.check and
 * checkLive (given a clock read once per batch, as an engine that reads the
 * clock once per event) per call, batches of 1000 calls timed with one
 * System.nanoTime each, p50/p99 over the batches, after a JIT warm-up.
 * usage: java -cp breaker-client.jar:. BenchCheck INSTANCE STRATEGY
 */
public final class BenchCheck {
    static final int BATCH = 1000, SAMPLES = 20000;
    static long sink;

    public static void main(String[] a) throws Exception {
        BreakerClient c = BreakerClient.attach(a[0]);
        int slot = c.resolve(a[1]);
        double[] v = new double[SAMPLES];
        for (int pass = 0; pass < 2; pass++) {
            for (int round = 0; round < 2; round++) { // round 0: JIT warm-up, not reported
                for (int i = 0; i < SAMPLES; i++) {
                    long t0 = System.nanoTime(), acc = 0;
                    for (int k = 0; k < BATCH; k++)
                        acc += (pass == 1 ? c.checkLive(slot, t0, 0) : c.check(slot)).ordinal();
                    v[i] = (double) (System.nanoTime() - t0) / BATCH;
                    sink += acc;
                }
            }
            Arrays.sort(v);
            System.out.printf("java %s %.2f %.2f%n", pass == 1 ? "check_live" : "check",
                              v[SAMPLES / 2], v[SAMPLES * 99 / 100]);
        }
        if (sink == 42)
            System.out.println();
    }
}

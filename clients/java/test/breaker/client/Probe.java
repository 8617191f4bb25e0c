package breaker.client;

/**
 * What the Java client reads and writes, as JSON, for tests/clients/agree.py,
 * which runs the same commands through the C client (tests/clients/bk_c_probe.c)
 * and the Rust client and requires the same answers at every step.
 *
 *   Probe dump INSTANCE MAX_AGE_NS   header words, and per scope (global, each
 *                                    registered strategy): check, checkLive,
 *                                    reason, limits
 *   Probe wait INSTANCE SEEN MS      "changed" or "timeout"
 *   Probe tel INSTANCE SLOT          the fixed report sequence into SLOT
 *   Probe attach INSTANCE            "ok", or "error ERRNO message"
 */
public final class Probe {
    private static String str(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray())
            b.append(c < 0x20 || c >= 0x7f || c == '"' || c == '\\' ? String.format("\\u%04x", (int) c)
                                                                   : String.valueOf(c));
        return b.append('"').toString();
    }

    private static String bits(double d) {
        return Long.toUnsignedString(Double.doubleToRawLongBits(d));
    }

    private static String scope(BreakerClient c, int slot, long maxAge) {
        Reason r = c.reason(slot);
        Limits l = c.limits(slot);
        return "{\"slot\": " + slot + ", \"name\": " + str(slot < 0 ? "" : c.strategyName(slot))
            + ", \"check\": \"" + c.check(slot) + "\", \"check_live\": \""
            + c.checkLive(slot, System.nanoTime(), maxAge) + "\", \"reason\": {\"mode\": \"" + r.mode()
            + "\", \"code\": " + r.reasonCode() + ", \"name\": " + str(r.reasonName()) + ", \"uid\": "
            + r.actorUid() + ", \"since\": " + Long.toUnsignedString(r.sinceWallNs()) + ", \"scope\": \""
            + r.scope().name().toLowerCase() + "\", \"scope_slot\": " + r.scopeSlot()
            + ", \"scope_name\": " + str(r.scopeName()) + "}, \"limits\": {\"flags\": " + l.flags()
            + ", \"size_factor\": " + bits(l.sizeFactor()) + ", \"max_qty\": " + bits(l.maxQty())
            + ", \"max_notional\": " + bits(l.maxNotional()) + "}}";
    }

    public static void main(String[] a) throws Exception {
        try {
            switch (a[0]) {
            case "attach" -> {
                BreakerClient.attach(a[1]);
                System.out.println("ok");
            }
            case "dump" -> {
                BreakerClient c = BreakerClient.attach(a[1]);
                long maxAge = Long.parseLong(a[2]);
                StringBuilder b = new StringBuilder();
                b.append("{\"layout_version\": ").append(c.layoutVersion())
                    .append(", \"strategy_count\": ").append(c.strategyCount())
                    .append(", \"group_count\": ").append(c.groupCount())
                    .append(", \"change_seq\": ").append(Integer.toUnsignedString(c.changeSeq()))
                    .append(", \"heartbeat_nonzero\": ").append(c.heartbeatNs() != 0)
                    .append(", \"scopes\": [").append(scope(c, BreakerClient.GLOBAL, maxAge));
                for (int i = 0; i < c.strategyCount(); i++)
                    b.append(", ").append(scope(c, i, maxAge));
                System.out.println(b.append("]}"));
            }
            case "resolve" -> System.out.println(BreakerClient.attach(a[1]).resolve(a[2]));
            case "wait" -> {
                BreakerClient c = BreakerClient.attach(a[1]);
                System.out.println("ready");
                System.out.flush();
                boolean changed = c.waitChange(Integer.parseUnsignedInt(a[2]), Long.parseLong(a[3]) * 1_000_000L);
                System.out.println(changed ? "changed" : "timeout");
            }
            case "tel" -> {
                Telemetry t = Telemetry.attach(a[1]);
                int s = Integer.parseInt(a[2]);
                long now = System.nanoTime();
                t.reportHeartbeat(s, now);
                t.reportOrder(s, 3);
                t.reportReject(s, 1);
                t.reportCancel(s, 2);
                t.reportAck(s, 7, now);
                t.reportOpeningBalance(s, 1000.0);
                t.reportFill(s, -100.5, 0.25, 899.25, 10.0);
                t.reportMarks(s, 10.0, 12.5, -0.25);
                t.reportBalance(s, 899.0);
                t.reportWorking(s, 4, now);
                t.reportMdTick(s, now);
                t.reportSession(s, true, now);
                System.out.println("ok");
            }
            default -> throw new IllegalArgumentException("unknown command " + a[0]);
            }
        } catch (BreakerException e) {
            System.out.println("error " + e.errno + " " + e.getMessage());
            System.exit(1);
        }
    }
}

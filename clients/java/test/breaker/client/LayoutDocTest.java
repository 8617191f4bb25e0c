package breaker.client;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * docs/shm-layout.md against breaker.client.Layout, as tests/test_layout.c and
 * the Python client's test_layout_doc.py check theirs: every documented field
 * is in Layout.FIELDS (state) or Layout.telFields(the page's telemetry
 * version, 1 or 2) with its offset and size and every such field is
 * documented, both segments' versions and sizes, the magic numbers, the mode
 * and reason-code tables. usage: LayoutDocTest docs/shm-layout.md
 */
public final class LayoutDocTest {
    private static final Pattern FIELD_ROW = Pattern.compile(
        "^\\|\\s*([a-z_.]+)\\s*\\|\\s*(\\d+)\\s*\\|\\s*(\\d+)\\s*\\|\\s*([^|]+?)\\s*\\|\\s*(.*?)\\s*\\|\\s*$");
    private static final Pattern CODE_ROW = Pattern.compile("^\\|\\s*(\\d+)\\s*\\|\\s*([A-Za-z_]+)\\s*\\|");
    private static final List<String> failures = new ArrayList<>();
    private static int checks;

    private static void check(boolean ok, String what) {
        checks++;
        if (!ok)
            failures.add(what);
    }

    /** The page's top-level ("# ") parts by heading. */
    static Map<String, String> parts(String text) {
        Map<String, String> m = new LinkedHashMap<>();
        Matcher h = Pattern.compile("(?m)^# (.*)$").matcher(text);
        List<int[]> at = new ArrayList<>();
        List<String> names = new ArrayList<>();
        while (h.find()) {
            at.add(new int[] {h.start()});
            names.add(h.group(1).trim());
        }
        for (int i = 0; i < at.size(); i++)
            m.put(names.get(i), text.substring(at.get(i)[0], i + 1 < at.size() ? at.get(i + 1)[0] : text.length()));
        return m;
    }

    static String section(String text, String heading) {
        Matcher m = Pattern.compile("(?ms)^## " + Pattern.quote(heading) + "\\s*$(.*?)(?=^## |\\z)").matcher(text);
        return m.find() ? m.group(1) : "";
    }

    /** name -> {offset, size} and name -> meaning, for every field row. */
    static Map<String, int[]> fields(String text, Map<String, String> meanings) {
        Map<String, int[]> rows = new LinkedHashMap<>();
        for (String line : text.split("\n")) {
            Matcher m = FIELD_ROW.matcher(line);
            if (!m.matches())
                continue;
            check(!rows.containsKey(m.group(1)), m.group(1) + " documented twice");
            rows.put(m.group(1), new int[] {Integer.parseInt(m.group(2)), Integer.parseInt(m.group(3))});
            meanings.put(m.group(1), m.group(5));
        }
        return rows;
    }

    static Map<Integer, String> codes(String section) {
        Map<Integer, String> m = new LinkedHashMap<>();
        for (String line : section.split("\n")) {
            Matcher c = CODE_ROW.matcher(line);
            if (c.find())
                m.put(Integer.parseInt(c.group(1)), c.group(2));
        }
        return m;
    }

    public static void main(String[] args) throws Exception {
        String page = Files.readString(Path.of(args[0]));
        Map<String, String> parts = parts(page);
        String state = parts.get("Shared-memory layout (version " + Layout.LAYOUT_VERSION + ")");
        // the page documents one telemetry version: it must be the client's
        int telVersion = 0;
        String tel = null;
        for (int v = 1; v <= Layout.TEL_VERSION; v++)
            if (parts.containsKey("Telemetry segment (version " + v + ")")) {
                telVersion = v;
                tel = parts.get("Telemetry segment (version " + v + ")");
            }
        check(state != null, "no part '# Shared-memory layout (version " + Layout.LAYOUT_VERSION
                                  + ")' in the page: this client reads another layout (has: " + parts.keySet() + ")");
        check(tel != null, "no part '# Telemetry segment (version 1.." + Layout.TEL_VERSION
                                + ")' in the page (has: " + parts.keySet() + ")");
        check(telVersion == Layout.TEL_VERSION, "the page documents telemetry version " + telVersion
                                                     + ", this client writes version " + Layout.TEL_VERSION);
        if (state == null || tel == null) {
            finish();
            return;
        }
        Map<String, String> meaning = new LinkedHashMap<>();
        Map<String, int[]> rows = fields(state, meaning);
        Map<String, int[]> telRows = fields(tel, meaning);
        // a parser that silently matched nothing would pass everything below
        check(rows.size() >= 30, "only " + rows.size() + " state segment fields parsed");
        check(telRows.size() >= 24, "only " + telRows.size() + " telemetry fields parsed");
        Map<String, int[]> mine = new LinkedHashMap<>(Layout.FIELDS);
        mine.putAll(Layout.telFields(telVersion));
        rows.putAll(telRows);
        for (var e : rows.entrySet()) {
            int[] m = mine.get(e.getKey());
            check(m != null, "documented field " + e.getKey() + " is not in the client's layout");
            if (m == null)
                continue;
            check(m[0] == e.getValue()[0], e.getKey() + ": offset " + m[0] + ", page says " + e.getValue()[0]);
            check(m[1] == e.getValue()[1], e.getKey() + ": size " + m[1] + ", page says " + e.getValue()[1]);
        }
        for (String name : mine.keySet())
            check(rows.containsKey(name), "the client's layout has " + name + ", the page does not document it");

        check(meaning.get("hdr.magic").contains(String.format("0x%016x", Layout.MAGIC)), "hdr.magic value");
        check(meaning.get("tel.magic").contains(String.format("0x%016x", Layout.TEL_MAGIC)), "tel.magic value");
        check(meaning.get("hdr.layout_version").startsWith(Layout.LAYOUT_VERSION + ";"), "hdr.layout_version value");
        check(meaning.get("tel.version").startsWith(telVersion + ";"), "tel.version value");
        check(meaning.get("hdr.segment_size").equals(Long.toString(Layout.SEGMENT_SIZE)), "hdr.segment_size value");
        check(meaning.get("tel.segment_size").equals(Long.toString(Layout.telSegmentSize(telVersion))), "tel.segment_size value");
        check(meaning.get("tel.slot_size").equals(Integer.toString(Layout.telSlotSize(telVersion))), "tel.slot_size value");
        check(meaning.get("hdr.limits_entry_size").equals(Integer.toString(Layout.LIMITS_ENTRY_SIZE)),
              "hdr.limits_entry_size value");
        check(state.contains(String.format("Size: %,d bytes", Layout.SEGMENT_SIZE)), "state segment size line");
        check(tel.contains(String.format("Size: %,d bytes", Layout.telSegmentSize(telVersion))), "telemetry size line");

        Map<Integer, String> modes = codes(section(state, "Modes"));
        check(modes.size() == Mode.values().length, "modes table has " + modes.size() + " rows");
        for (Mode m : Mode.values())
            check(m.name().equals(modes.get(m.ordinal())), "mode " + m.ordinal() + " is " + m + ", page says " + modes.get(m.ordinal()));
        Map<Integer, String> reasons = codes(section(page, "Reason codes"));
        // every documented code named as the page names it; the client may
        // already know codes other branches are adding (it only names them)
        check(reasons.size() >= 12, "only " + reasons.size() + " reason codes parsed");
        for (var e : reasons.entrySet())
            check(e.getValue().equals(Layout.reasons().get(e.getKey())),
                  "reason code " + e.getKey() + ": page " + e.getValue() + ", client " + Layout.reasons().get(e.getKey()));
        finish();
    }

    private static void finish() {
        for (String f : failures)
            System.out.println("FAIL: " + f);
        System.out.println(checks + " checks, " + failures.size() + " failed");
        System.exit(failures.isEmpty() ? 0 : 1);
    }
}

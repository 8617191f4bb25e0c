"""docs/shm-layout.md against breaker_client.layout: the Python offsets, sizes,
constants, mode and reason tables must be exactly what the page documents,
for both segments (the state segment and the telemetry segment).
"""

from __future__ import annotations

import os
import re
import struct
import unittest
from pathlib import Path

from breaker_client import layout as L

# | hdr.magic | 0 | 8 | u64 | meaning |, | scope.state | 0 | 8 | u64 | ... |,
# | tel.magic | 0 | 8 | u64 | ... |   and   | slot.orders | 0 | 8 | u64 | ... |
_FIELD_ROW = re.compile(r"^\|\s*([a-z_.]+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*([^|]+?)\s*\|\s*(.*?)\s*\|\s*$")
# | 1 | manual_halt |   (reason codes)   and   | 0 | ACTIVE | meaning |   (modes)
_CODE_ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*([A-Za-z_]+)\s*\|")
_TYPE_SIZE = {"u64": 8, "u32": 4, "f64": 8}
_TYPE_FMT = {"u64": "Q", "u32": "I", "f64": "d"}  # native: see client.py and telemetry.py
_STATE_PREFIXES = ("hdr.", "scope.", "heartbeat_ns", "audit.", "change_seq", "global", "strategies", "groups",
                   "limits", "limit.", "valid_until_ns", "firm_revision", "firm_contact_ns")
_TEL_PREFIXES = ("tel.", "slot.")


def doc_path() -> Path:
    root = os.environ.get("BK_SOURCE_DIR")
    if root:
        return Path(root) / "docs" / "shm-layout.md"
    return Path(__file__).resolve().parents[3] / "docs" / "shm-layout.md"


def doc_text() -> str:
    path = doc_path()
    if not path.is_file():
        raise AssertionError(f"{path} is missing: the layout contract must be checked")
    return path.read_text(encoding="utf-8")


def top_parts(text: str) -> dict[str, str]:
    """The page's top-level ('# ') parts by heading: one per segment."""
    heads = list(re.finditer(r"^# (.*)$", text, re.M))
    return {h.group(1).strip(): text[h.start() : (heads[i + 1].start() if i + 1 < len(heads) else len(text))]
            for i, h in enumerate(heads)}


def state_segment(text: str) -> str:
    """The state segment's part of the page."""
    return top_parts(text)[f"Shared-memory layout (version {L.LAYOUT_VERSION})"]


def telemetry_segment(text: str) -> str:
    """The telemetry segment's part of the page."""
    parts = top_parts(text)
    key = f"Telemetry segment (version {L.TEL_VERSION})"
    if key not in parts:
        raise AssertionError(f"docs/shm-layout.md has no part '# {key}' (has: {list(parts)})")
    return parts[key]


def doc_fields(text: str) -> dict[str, tuple[int, int, str, str]]:
    """name -> (offset, size, type, meaning) for every field row of the text given."""
    rows: dict[str, tuple[int, int, str, str]] = {}
    for line in text.splitlines():
        m = _FIELD_ROW.match(line)
        if m:
            name, off, size, typ, meaning = m.groups()
            if name in rows:
                raise AssertionError(f"field {name} documented twice")
            rows[name] = (int(off), int(size), typ, meaning)
    return rows


def doc_section(text: str, heading: str) -> str:
    """The text under '## heading' up to the next '## '."""
    m = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not m:
        raise AssertionError(f"docs/shm-layout.md has no section '## {heading}'")
    return m.group(1)


def doc_codes(section: str) -> dict[int, str]:
    return {int(m.group(1)): m.group(2) for line in section.splitlines() if (m := _CODE_ROW.match(line))}


class DocumentedLayout(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        page = doc_text()
        cls.text = state_segment(page)
        cls.tel_text = telemetry_segment(page)
        cls.state_rows = doc_fields(cls.text)
        cls.tel_rows = doc_fields(cls.tel_text)
        cls.rows = doc_fields(page)  # both segments; a name documented twice is an error

    def test_the_page_has_the_tables(self) -> None:
        # a parser that silently matches nothing would pass every other test
        self.assertEqual(len(self.state_rows), 40, "state segment field tables in docs/shm-layout.md")
        self.assertEqual(len(self.tel_rows), 29, "telemetry field tables in docs/shm-layout.md")
        self.assertEqual(len(self.rows), len(self.state_rows) + len(self.tel_rows))

    def test_each_segment_documents_its_own_fields(self) -> None:
        for name in self.state_rows:
            self.assertTrue(name.startswith(_STATE_PREFIXES), f"{name} in the state segment's part")
        for name in self.tel_rows:
            self.assertTrue(name.startswith(_TEL_PREFIXES), f"{name} in the telemetry part")
        self.assertEqual({n for n in self.tel_rows if n.startswith("tel.")},
                         {"tel.magic", "tel.version", "tel.slot_size", "tel.capacity", "tel.segment_size",
                          "tel.slots"})

    def test_every_documented_field_is_in_the_module_with_its_offset_and_size(self) -> None:
        for name, (off, size, _, _) in self.rows.items():
            with self.subTest(field=name):
                self.assertIn(name, L.FIELDS, f"documented field {name} is not in layout.FIELDS")
                self.assertEqual(L.FIELDS[name].offset, off, f"{name}: offset")
                self.assertEqual(L.FIELDS[name].size, size, f"{name}: size")

    def test_every_module_field_is_documented(self) -> None:
        for name in L.FIELDS:
            with self.subTest(field=name):
                self.assertIn(name, self.rows, f"layout.FIELDS has {name}; docs/shm-layout.md does not")

    def test_struct_formats_read_the_documented_type(self) -> None:
        for name, (_, size, typ, _) in self.rows.items():
            with self.subTest(field=name):
                fmt = L.FIELDS[name].fmt
                self.assertEqual(struct.calcsize(fmt), size, f"{name}: format {fmt!r}")
                if typ in _TYPE_SIZE:
                    # native format, not "<"/"=": see client.py on single loads
                    self.assertEqual(fmt, _TYPE_FMT[typ], f"{name}: {typ} is read and written natively")
                    self.assertEqual(_TYPE_SIZE[typ], size)
                    self.assertEqual(L.FIELDS[name].offset % size, 0, f"{name} is not aligned")
                else:
                    self.assertEqual(fmt, f"{size}s", f"{name}: {typ} is a block of bytes")
        self.assertEqual({t for (_, _, t, _) in self.tel_rows.values()} - {"slot[4096]"}, {"u64", "u32", "f64"})

    def test_the_client_reads_words_natively(self) -> None:
        # "<Q"/"=Q" read byte by byte in CPython and can tear; see client.py
        from breaker_client import client

        self.assertEqual((client._U64.format, client._U32.format), ("Q", "I"))

    def test_constants(self) -> None:
        self.assertEqual(int(self.rows["hdr.magic"][3], 16), L.MAGIC)
        self.assertTrue(self.rows["hdr.layout_version"][3].startswith(str(L.LAYOUT_VERSION)))
        self.assertEqual(int(self.rows["hdr.segment_size"][3]), L.SEGMENT_SIZE)
        self.assertEqual(int(self.rows["hdr.strategy_capacity"][3]), L.MAX_STRATEGIES)
        self.assertEqual(int(self.rows["hdr.strategy_entry_size"][3]), L.SCOPE_SIZE)
        self.assertEqual(self.rows["strategies"][2], f"scope[{L.MAX_STRATEGIES}]")
        self.assertEqual(self.rows["scope.name"][2], f"char[{L.NAME_MAX}]")
        self.assertIn(f"Size: {L.SEGMENT_SIZE:,} bytes", self.text)
        self.assertIn(f"# Shared-memory layout (version {L.LAYOUT_VERSION})", self.text)
        table = L.FIELDS["strategies"].offset
        self.assertIn(f"Strategy slot `i` starts at `{table} + {L.SCOPE_SIZE} * i`", self.text)
        self.assertEqual(L.scope_offset(7), table + 7 * L.SCOPE_SIZE)
        groups = L.FIELDS["groups"].offset
        self.assertEqual(table + L.MAX_STRATEGIES * L.SCOPE_SIZE, groups, "groups follow the strategies")
        self.assertIn(f"Group slot `g` starts at\n`{groups} + {L.SCOPE_SIZE} * g`", self.text)
        self.assertEqual(int(self.rows["hdr.group_table_offset"][3]), groups)
        self.assertEqual(int(self.rows["hdr.group_capacity"][3]), L.MAX_GROUPS)
        self.assertEqual(int(self.rows["hdr.group_entry_size"][3]), L.SCOPE_SIZE)
        self.assertEqual(self.rows["groups"][2], f"scope[{L.MAX_GROUPS}]")
        limits = L.FIELDS["limits"].offset
        self.assertEqual(groups + L.MAX_GROUPS * L.SCOPE_SIZE, limits, "limits follow the groups")
        self.assertEqual(int(self.rows["hdr.limits_table_offset"][3]), limits)
        self.assertEqual(int(self.rows["hdr.limits_entry_size"][3]), L.LIMITS_ENTRY_SIZE)
        self.assertEqual(self.rows["limits"][2], f"limits[{L.LIMITS_ENTRIES}]")
        self.assertIn(f"Limits entry `e` starts at `{limits} + {L.LIMITS_ENTRY_SIZE} * e`", self.text)
        self.assertEqual(L.limits_offset(3), limits + 3 * L.LIMITS_ENTRY_SIZE)
        self.assertEqual(limits + L.LIMITS_ENTRIES * L.LIMITS_ENTRY_SIZE, L.SEGMENT_SIZE)
        entry_end = max(f.offset + f.size for n, f in L.FIELDS.items() if n.startswith("limit."))
        self.assertEqual(entry_end, L.LIMITS_ENTRY_SIZE)

    def test_a_scope_is_one_cache_line_and_hot_words_have_their_own(self) -> None:
        scope_end = max(f.offset + f.size for n, f in L.FIELDS.items() if n.startswith("scope."))
        self.assertEqual(scope_end, L.SCOPE_SIZE)
        for name in ("heartbeat_ns", "change_seq", "global", "strategies"):
            self.assertEqual(L.FIELDS[name].offset % 64, 0, name)

    def test_telemetry_constants(self) -> None:
        t, rows = self.tel_text, self.tel_rows
        self.assertTrue(rows["tel.magic"][3].startswith(f"{L.TEL_MAGIC:#x} "), rows["tel.magic"])
        self.assertEqual(L.TEL_MAGIC.to_bytes(8, "little"), b"BTEL0001")
        self.assertIn('("BTEL0001")', rows["tel.magic"][3])
        self.assertTrue(rows["tel.version"][3].startswith(f"{L.TEL_VERSION};"))
        self.assertEqual(int(rows["tel.slot_size"][3]), L.TEL_SLOT_SIZE)
        self.assertEqual(int(rows["tel.capacity"][3]), L.MAX_STRATEGIES)
        self.assertEqual(int(rows["tel.segment_size"][3]), L.TEL_SEGMENT_SIZE)
        self.assertEqual(rows["tel.slots"][2], f"slot[{L.MAX_STRATEGIES}]")
        self.assertIn(f"Size: {L.TEL_SEGMENT_SIZE:,} bytes", t)
        self.assertIn(f"Name: `/breaker.<instance>{L.TEL_SUFFIX}`", t)
        slots = L.FIELDS["tel.slots"]
        self.assertIn(f"Slot `i` (at `{slots.offset} + {L.TEL_SLOT_SIZE} * i`)", t)
        self.assertEqual(L.tel_slot_offset(7), slots.offset + 7 * L.TEL_SLOT_SIZE)
        self.assertEqual(slots.size, L.MAX_STRATEGIES * L.TEL_SLOT_SIZE)
        self.assertEqual(slots.offset + slots.size, L.TEL_SEGMENT_SIZE)
        self.assertEqual(slots.offset % 64, 0, "slots start on a cache line")

    def test_a_telemetry_slot_is_two_cache_lines_money_on_the_second(self) -> None:
        fields = {n: f for n, f in L.FIELDS.items() if n.startswith("slot.")}
        # version 2: the venue words on line 2, the rest of the 256 bytes reserved
        self.assertEqual(max(f.offset + f.size for f in fields.values()), 168)
        self.assertEqual(L.TEL_SLOT_SIZE, 256)
        venue = {n for n, f in fields.items() if f.offset >= 128}
        self.assertEqual(venue, {"slot.working_orders", "slot.working_ns", "slot.md_last_ns",
                                 "slot.session", "slot.session_ns"})
        fields = {n: f for n, f in fields.items() if n not in venue}
        spans = sorted((f.offset, f.offset + f.size) for f in fields.values())
        for (_, end), (start, _) in zip(spans, spans[1:]):
            self.assertLessEqual(end, start, "slot fields overlap")
        # the seqlock and what it covers ("the words below") share line 1; counters are line 0
        gseq = fields["slot.gseq"].offset
        self.assertEqual(gseq, 64)
        self.assertRegex(self.tel_rows["slot.gseq"][3], r"seqlock over the words below")
        for name, f in fields.items():
            self.assertEqual(f.offset >= gseq, name in ("slot.gseq", "slot.opening_seq", "slot.fills", "slot.fill_cash",
                                                       "slot.fees", "slot.balance", "slot.position",
                                                       "slot.gross", "slot.pnl"), name)

    def test_modes_table(self) -> None:
        modes = doc_codes(doc_section(self.text, "Modes"))
        self.assertEqual(modes, dict(enumerate(L.MODE_NAMES)))

    def test_reason_codes_table(self) -> None:
        reasons = doc_codes(doc_section(self.text, "Reason codes"))
        self.assertEqual(reasons, {c: n for c, n in enumerate(L.REASON_NAMES) if n})

    def test_state_word_bits(self) -> None:
        section = doc_section(self.text, "The state word")
        self.assertRegex(section, r"\|\s*0-7\s*\|\s*mode")
        self.assertRegex(section, r"\|\s*8-15\s*\|\s*reason code")
        self.assertRegex(section, r"\|\s*16-31\s*\|\s*holder of the winning latch: 0 = the scope itself, `g \+ 1` = group slot `g`")
        self.assertRegex(section, r"\|\s*32-63\s*\|\s*uid")
        word = 3 | 4 << 8 | 17 << 16 | 1234 << 32
        self.assertEqual((L.state_mode(word), L.state_reason(word), L.state_holder(word), L.state_uid(word)),
                         (3, 4, 17, 1234))


class ParserCanFail(unittest.TestCase):
    """The checks above must notice a drifted page: feed them one."""

    def test_a_moved_field_is_seen(self) -> None:
        text = doc_text().replace("| hdr.daemon_pid | 36 | 4 |", "| hdr.daemon_pid | 40 | 4 |")
        rows = doc_fields(text)
        self.assertNotEqual(rows["hdr.daemon_pid"][0], L.FIELDS["hdr.daemon_pid"].offset)

    def test_a_moved_telemetry_field_is_seen(self) -> None:
        text = doc_text().replace("| slot.pnl | 120 | 8 | f64 |", "| slot.pnl | 112 | 8 | f64 |")
        rows = doc_fields(telemetry_segment(text))
        self.assertNotEqual(rows["slot.pnl"][0], L.FIELDS["slot.pnl"].offset)

    def test_a_new_telemetry_field_is_seen(self) -> None:
        text = doc_text().replace("| slot.pnl | 120 |", "| slot.extra | 128 | 8 | u64 | new |\n| slot.pnl | 120 |")
        self.assertIn("slot.extra", doc_fields(telemetry_segment(text)))
        self.assertNotIn("slot.extra", L.FIELDS)

    def test_a_new_reason_code_is_seen(self) -> None:
        text = doc_text().replace("| 13 | exchange_down |", "| 13 | exchange_down |\n| 15 | new_thing |")
        reasons = doc_codes(doc_section(text, "Reason codes"))
        self.assertNotEqual(reasons, {c: n for c, n in enumerate(L.REASON_NAMES) if n})


class ClientVersionsAgree(unittest.TestCase):
    """The C header's BREAKER_CLIENT_VERSION_* macros, the Python package's
    __version__ and pyproject.toml name one release."""

    def test_c_header_and_python_package_have_one_version(self) -> None:
        import breaker_client

        root = doc_path().parent.parent
        header = (root / "clients" / "c" / "breaker_client.h").read_text()
        parts = {
            m.group(1): m.group(2)
            for m in re.finditer(r"#define BREAKER_CLIENT_VERSION_(MAJOR|MINOR|PATCH)\s+(\d+)", header)
        }
        self.assertEqual(len(parts), 3, "MAJOR, MINOR and PATCH macros in breaker_client.h")
        c_version = "%s.%s.%s" % (parts["MAJOR"], parts["MINOR"], parts["PATCH"])
        string = re.search(r'#define BREAKER_CLIENT_VERSION_STRING\s+"([^"]+)"', header)
        self.assertIsNotNone(string)
        self.assertEqual(string.group(1), c_version)
        self.assertEqual(breaker_client.__version__, c_version)
        pyproject = (root / "clients" / "python" / "pyproject.toml").read_text()
        self.assertIn('version = "%s"' % c_version, pyproject)


if __name__ == "__main__":
    unittest.main()

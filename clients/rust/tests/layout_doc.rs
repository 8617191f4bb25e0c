//! docs/shm-layout.md against breaker_client::layout, as tests/test_layout.c
//! and the Python and Java clients' tests check theirs: every documented
//! field with its offset and size, every client field documented, versions,
//! sizes, magic numbers, the mode and reason-code tables. The page is
//! $BK_SOURCE_DIR/docs/shm-layout.md, else ../../docs/shm-layout.md.
use breaker_client::layout as L;
use std::collections::BTreeMap;

fn page() -> String {
    let path = match std::env::var("BK_SOURCE_DIR") {
        Ok(d) if !d.is_empty() => format!("{}/docs/shm-layout.md", d),
        _ => format!("{}/../../docs/shm-layout.md", env!("CARGO_MANIFEST_DIR")),
    };
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {}", path, e))
}

/// The page's top-level ("# ") parts by heading.
fn parts(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut cur: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("# ") {
            if let Some((k, v)) = cur.take() {
                out.insert(k, v);
            }
            cur = Some((h.trim().to_string(), String::new()));
        } else if let Some((_, v)) = cur.as_mut() {
            v.push_str(line);
            v.push('\n');
        }
    }
    if let Some((k, v)) = cur {
        out.insert(k, v);
    }
    out
}

/// The text under "## heading" up to the next "## ".
fn section(text: &str, heading: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            inside = h.trim() == heading;
            continue;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn cells(line: &str) -> Option<Vec<String>> {
    let t = line.trim();
    if !t.starts_with('|') || !t.ends_with('|') || t.len() < 2 {
        return None;
    }
    Some(t[1..t.len() - 1].split('|').map(|c| c.trim().to_string()).collect())
}

/// | name | offset | size | type | meaning | rows: name -> (offset, size, meaning)
fn fields(text: &str) -> BTreeMap<String, (usize, usize, String)> {
    let mut rows = BTreeMap::new();
    for line in text.lines() {
        let c = match cells(line) {
            Some(c) if c.len() == 5 => c,
            _ => continue,
        };
        let name_ok = !c[0].is_empty() && c[0].bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.');
        let (off, size) = match (c[1].parse::<usize>(), c[2].parse::<usize>()) {
            (Ok(o), Ok(s)) if name_ok => (o, s),
            _ => continue,
        };
        assert!(
            rows.insert(c[0].clone(), (off, size, c[4].clone())).is_none(),
            "{} documented twice",
            c[0]
        );
    }
    rows
}

/// | 1 | manual_halt | rows
fn codes(text: &str) -> BTreeMap<usize, String> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        if let Some(c) = cells(line) {
            if c.len() >= 2 {
                if let Ok(n) = c[0].parse::<usize>() {
                    if !c[1].is_empty() && c[1].bytes().all(|b| b.is_ascii_alphabetic() || b == b'_') {
                        m.insert(n, c[1].clone());
                    }
                }
            }
        }
    }
    m
}

fn with_commas(n: usize) -> String {
    let d = n.to_string();
    let mut o = String::new();
    for (i, ch) in d.chars().enumerate() {
        if i > 0 && (d.len() - i) % 3 == 0 {
            o.push(',');
        }
        o.push(ch);
    }
    o
}

#[test]
fn layout_matches_the_page() {
    let page = page();
    let parts = parts(&page);
    let state_key = format!("Shared-memory layout (version {})", L::LAYOUT_VERSION);
    let state = parts.get(&state_key).unwrap_or_else(|| {
        panic!(
            "no part '# {}' in the page: this client reads another layout (has {:?})",
            state_key,
            parts.keys()
        )
    });
    // the page documents one telemetry version: it must be the client's
    let tel_version = (1..=L::TEL_VERSION)
        .rev()
        .find(|v| parts.contains_key(&format!("Telemetry segment (version {})", v)))
        .unwrap_or_else(|| {
            panic!(
                "no part '# Telemetry segment (version 1..{})' (has {:?})",
                L::TEL_VERSION,
                parts.keys()
            )
        });
    assert_eq!(
        tel_version,
        L::TEL_VERSION,
        "the page's telemetry version is not the client's"
    );
    let tel = &parts[&format!("Telemetry segment (version {})", tel_version)];
    let srows = fields(state);
    let trows = fields(tel);
    // a parser that silently matched nothing would pass everything below
    assert!(srows.len() >= 30, "only {} state segment fields parsed", srows.len());
    assert!(trows.len() >= 24, "only {} telemetry fields parsed", trows.len());
    let mut rows = srows.clone();
    rows.extend(trows.clone());
    let mine: BTreeMap<&str, (usize, usize)> = L::FIELDS
        .iter()
        .cloned()
        .chain(L::tel_fields(tel_version))
        .map(|(n, o, s)| (n, (o, s)))
        .collect();
    let mut bad = Vec::new();
    for (name, (off, size, _)) in &rows {
        match mine.get(name.as_str()) {
            None => bad.push(format!("documented field {} is not in the client's layout", name)),
            Some(&(o, s)) if (o, s) != (*off, *size) => {
                bad.push(format!("{}: client ({}, {}), page ({}, {})", name, o, s, off, size))
            }
            _ => {}
        }
    }
    for name in mine.keys() {
        if !rows.contains_key(*name) {
            bad.push(format!(
                "the client's layout has {}, the page does not document it",
                name
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));

    let meaning = |n: &str| rows[n].2.clone();
    assert!(meaning("hdr.magic").contains(&format!("{:#018x}", L::MAGIC)));
    assert!(meaning("tel.magic").contains(&format!("{:#018x}", L::TEL_MAGIC)));
    assert!(meaning("hdr.layout_version").starts_with(&format!("{};", L::LAYOUT_VERSION)));
    assert!(meaning("tel.version").starts_with(&format!("{};", tel_version)));
    assert_eq!(meaning("hdr.segment_size"), L::SEGMENT_SIZE.to_string());
    assert_eq!(
        meaning("tel.segment_size"),
        L::tel_segment_size(tel_version).to_string()
    );
    assert_eq!(meaning("tel.slot_size"), L::tel_slot_size(tel_version).to_string());
    assert_eq!(meaning("hdr.limits_entry_size"), L::LIMITS_ENTRY_SIZE.to_string());
    assert!(state.contains(&format!("Size: {} bytes", with_commas(L::SEGMENT_SIZE))));
    assert!(tel.contains(&format!(
        "Size: {} bytes",
        with_commas(L::tel_segment_size(tel_version))
    )));

    let modes = codes(&section(state, "Modes"));
    let want: BTreeMap<usize, String> = ["ACTIVE", "CAUTIOUS", "REDUCE_ONLY", "HALTED"]
        .iter()
        .enumerate()
        .map(|(i, n)| (i, n.to_string()))
        .collect();
    assert_eq!(modes, want, "modes table");
    for (i, n) in &modes {
        assert_eq!(breaker_client::Mode::of(*i as u64).name(), n.as_str());
    }
    let reasons = codes(&section(state, "Reason codes"));
    // every documented code named as the page names it; the client may
    // already know codes other branches are adding (it only names them)
    assert!(reasons.len() >= 12, "only {} reason codes parsed", reasons.len());
    for (code, n) in &reasons {
        assert_eq!(L::REASONS.get(*code).copied(), Some(n.as_str()), "reason code {}", code);
    }
}

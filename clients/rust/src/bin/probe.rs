//! What the Rust client reads and writes, as JSON, for tests/clients/agree.py
//! (the same commands as the C and Java probes; see Probe.java).
//!
//!   breaker-probe dump INSTANCE MAX_AGE_NS
//!   breaker-probe wait INSTANCE SEEN MS
//!   breaker-probe tel INSTANCE SLOT
//!   breaker-probe attach INSTANCE
use breaker_client::{Client, Error, Holder, Telemetry, GLOBAL};
use std::process::exit;
use std::time::Duration;

fn s(v: &str) -> String {
    let mut o = String::from("\"");
    for c in v.chars() {
        if (c as u32) < 0x20 || (c as u32) >= 0x7f || c == '"' || c == '\\' {
            o.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            o.push(c);
        }
    }
    o.push('"');
    o
}

fn scope(c: &Client, slot: i32, max_age: u64) -> String {
    let r = c.reason(slot);
    let l = c.limits(slot);
    let holder = match r.scope {
        Holder::None => "none",
        Holder::Global => "global",
        Holder::Group => "group",
        Holder::Strategy => "strategy",
    };
    format!(
        "{{\"slot\": {}, \"name\": {}, \"check\": \"{}\", \"check_live\": \"{}\", \"reason\": {{\"mode\": \"{}\", \
         \"code\": {}, \"name\": {}, \"uid\": {}, \"since\": {}, \"scope\": \"{}\", \"scope_slot\": {}, \
         \"scope_name\": {}}}, \"limits\": {{\"flags\": {}, \"size_factor\": {}, \"max_qty\": {}, \
         \"max_notional\": {}}}}}",
        slot,
        s(&if slot < 0 { String::new() } else { c.strategy_name(slot) }),
        c.check(slot).name(),
        c.check_live_at(slot, c.now_mono_ns(), max_age).name(),
        r.mode.name(),
        r.reason_code,
        s(&r.reason_name),
        r.actor_uid,
        r.since_wall_ns,
        holder,
        r.scope_slot,
        s(&r.scope_name),
        l.flags,
        l.size_factor.to_bits(),
        l.max_qty.to_bits(),
        l.max_notional.to_bits()
    )
}

fn run(a: &[String]) -> Result<(), Error> {
    match a[1].as_str() {
        "attach" => {
            Client::attach(&a[2])?;
            println!("ok");
        }
        "dump" => {
            let c = Client::attach(&a[2])?;
            let max_age: u64 = a[3].parse().unwrap_or(0);
            let mut o = format!(
                "{{\"layout_version\": {}, \"strategy_count\": {}, \"group_count\": {}, \"change_seq\": {}, \
                 \"heartbeat_nonzero\": {}, \"scopes\": [{}",
                c.layout_version(),
                c.strategy_count(),
                c.group_count(),
                c.change_seq(),
                c.heartbeat_ns() != 0,
                scope(&c, GLOBAL, max_age)
            );
            for i in 0..c.strategy_count() {
                o.push_str(", ");
                o.push_str(&scope(&c, i as i32, max_age));
            }
            println!("{}]}}", o);
        }
        "resolve" => println!("{}", Client::attach(&a[2])?.resolve(&a[3])?),
        "wait" => {
            let c = Client::attach(&a[2])?;
            println!("ready");
            let seen: u32 = a[3].parse().unwrap_or(0);
            let ms: u64 = a[4].parse().unwrap_or(0);
            let changed = c.wait_change(seen, Some(Duration::from_millis(ms)));
            println!("{}", if changed { "changed" } else { "timeout" });
        }
        "tel" => {
            let t = Telemetry::attach(&a[2])?;
            let slot: i32 = a[3].parse().unwrap_or(-1);
            let now = breaker_client::now_mono_ns();
            t.report_heartbeat(slot, now);
            t.report_order(slot, 3);
            t.report_reject(slot, 1);
            t.report_cancel(slot, 2);
            t.report_ack(slot, 7, now);
            t.report_opening_balance(slot, 1000.0);
            t.report_fill(slot, -100.5, 0.25, 899.25, 10.0);
            t.report_marks(slot, 10.0, 12.5, -0.25);
            t.report_balance(slot, 899.0);
            t.report_working(slot, 4, now);
            t.report_md_tick(slot, now);
            t.report_session(slot, true, now);
            println!("ok");
        }
        other => {
            eprintln!("unknown command {}", other);
            exit(2);
        }
    }
    Ok(())
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 3 {
        eprintln!("usage: breaker-probe dump|wait|tel|attach|resolve INSTANCE ...");
        exit(2);
    }
    if let Err(e) = run(&a) {
        println!("error {} {}", e.errno, e);
        exit(1);
    }
}

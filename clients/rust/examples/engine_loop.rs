//! A minimal engine loop with the Rust client (docs/clients.md, "Rust"):
//! attach (retrying while the daemon creates the segment), resolve the
//! strategy once, then before every simulated order ask check_live and act:
//! Halted cancel everything and send nothing, ReduceOnly only reduce,
//! Cautious send at the limits' size factor, Active send. Every mode change
//! is printed with its reason and acknowledged in telemetry; a heartbeat is
//! written every iteration. Exits 1 if it cannot attach, 2 if the strategy is
//! not registered (it refuses to trade).
//!
//! usage: engine_loop INSTANCE STRATEGY SECONDS
use breaker_client::{Client, Error, Mode, Telemetry};
use std::process::exit;
use std::time::{Duration, Instant};

fn attach(instance: &str) -> Result<(Client, Telemetry), Error> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match Client::attach(instance).and_then(|c| Telemetry::attach(instance).map(|t| (c, t))) {
            Err(e) if e.errno == Error::EAGAIN && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            r => return r,
        }
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let instance = a.get(1).map(String::as_str).unwrap_or("default");
    let strategy = a.get(2).map(String::as_str).unwrap_or("momo-eu-1");
    let secs: f64 = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let (c, t) = attach(instance).unwrap_or_else(|e| {
        eprintln!("breaker: {}: refusing to trade", e);
        exit(1)
    });
    let slot = c.resolve(strategy).unwrap_or_else(|e| {
        eprintln!("breaker: {}: refusing to trade", e);
        exit(2)
    });
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let (mut last, mut sent, mut position) = (None, 0u64, 0i64);
    while Instant::now() < until {
        let now = c.now_mono_ns();
        t.report_heartbeat(slot, now);
        let seq = c.change_seq();
        let m = c.check_live_at(slot, now, 0);
        if last != Some(m) {
            let r = c.reason(slot);
            if m == Mode::Active {
                println!("{}", m.name());
            } else {
                println!("{} ({}, {:?} {})", m.name(), r.reason_name, r.scope, r.scope_name);
            }
            t.report_ack(slot, seq, now);
            last = Some(m);
        }
        let size = match m {
            Mode::Active => 100,
            Mode::Cautious => (100.0 * c.limits(slot).size_factor) as i64,
            Mode::ReduceOnly => -position.clamp(0, 100),
            Mode::Halted => 0, // and cancel every working order
        };
        if size != 0 {
            t.report_order(slot, 1);
            position += size;
            sent += 1;
        }
        c.wait_change(seq, Some(Duration::from_millis(1))); // pace: 1 ms, or at once on a change
    }
    println!("done: {} orders, position {}", sent, position);
}

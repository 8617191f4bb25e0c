//! The Rust figure for bench/clients/run.sh: Client::check and check_live_at
//! (clock read once per batch) per call, batches of 1000 calls, p50/p99 over
//! the batches. Built by cargo as breaker-bench-check (clients/rust/Cargo.toml).
//! usage: breaker-bench-check INSTANCE STRATEGY
use breaker_client::Client;
use std::sync::atomic::{AtomicU64, Ordering};

static SINK: AtomicU64 = AtomicU64::new(0);

/// The slot, re-read every call so the loop cannot be hoisted (black_box is 1.66+).
fn opaque(x: &i32) -> i32 {
    // SAFETY: a plain read of a live local.
    unsafe { std::ptr::read_volatile(x) }
}

const BATCH: usize = 1000;
const SAMPLES: usize = 20000;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let c = Client::attach(&a[1]).expect("attach");
    let slot = c.resolve(&a[2]).expect("resolve");
    let mut v = vec![0f64; SAMPLES];
    for pass in 0..2 {
        for round in 0..2 {
            for s in v.iter_mut() {
                let t0 = c.now_mono_ns();
                let mut acc = 0u64;
                for _ in 0..BATCH {
                    let m = if pass == 1 {
                        c.check_live_at(opaque(&slot), t0, 0)
                    } else {
                        c.check(opaque(&slot))
                    };
                    acc += m as u64;
                }
                *s = (c.now_mono_ns() - t0) as f64 / BATCH as f64;
                SINK.fetch_add(acc, Ordering::Relaxed);
            }
            if round == 0 {
                continue; // warm-up, not reported
            }
            v.sort_by(|x, y| x.partial_cmp(y).unwrap());
            println!(
                "rust {} {:.2} {:.2}",
                if pass == 1 { "check_live" } else { "check" },
                v[SAMPLES / 2],
                v[SAMPLES * 99 / 100]
            );
        }
    }
}

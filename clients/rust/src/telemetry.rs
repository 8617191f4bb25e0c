//! The engine's writer of the telemetry segment (docs/shm-layout.md,
//! "Telemetry segment"), with the C client's single-writer protocol: each
//! slot has ONE writer; counters are a plain load and a release store; the
//! money words go under the slot's seqlock gseq (odd while writing); a value
//! word is written before its time word.

use crate::layout as L;
use crate::segment::{self, Segment};
use crate::Error;
use std::sync::atomic::{
    fence,
    Ordering::{Acquire, Relaxed, Release},
};

/// A read-write mapping of /dev/shm/breaker.<instance>.tel. One thread per
/// slot (the methods take &self: slots are independent words).
pub struct Telemetry {
    tel: Segment,
    pid: u32,
    version: u32,
    slot_size: usize,
}

impl Telemetry {
    pub fn attach(instance: &str) -> Result<Telemetry, Error> {
        Telemetry::attach_as(instance, None)
    }

    /// Map the telemetry segment read-write if breakerd made it (owner root
    /// or daemon_uid; group may write, others not; one link) and its magic,
    /// version (2) and size are this client's. A version-1 segment is refused,
    /// as the C client does: it has no room for what the engine reports.
    pub fn attach_as(instance: &str, daemon_uid: Option<u32>) -> Result<Telemetry, Error> {
        let p = segment::path(instance, L::TEL_SUFFIX)?;
        let tel = segment::map(&p, L::tel_segment_size(L::TEL_VERSION), true, daemon_uid)?;
        let version = tel.u32(L::TEL_VERSION_OFF).load(Acquire);
        if version == 0 {
            return Err(Error::new(Error::EAGAIN, format!("{}: being created", p)));
        }
        if tel.u64(0).load(Relaxed) != L::TEL_MAGIC
            || version != L::TEL_VERSION
            || tel.u64(L::TEL_SEGMENT_SIZE_OFF).load(Relaxed) != L::tel_segment_size(version) as u64
            || tel.len() != L::tel_segment_size(version)
        {
            return Err(Error::new(
                Error::EPROTO,
                format!(
                    "{}: telemetry version {} ({} bytes); this client writes version {} only (an older segment has no room for what it reports): refusing", p, version, tel.len(), L::TEL_VERSION
                ),
            ));
        }
        Ok(Telemetry {
            tel,
            pid: std::process::id(),
            version,
            slot_size: L::tel_slot_size(version),
        })
    }

    /// The segment's version (2).
    pub fn version(&self) -> u32 {
        self.version
    }

    fn base(&self, slot: i32) -> Option<usize> {
        if slot >= 0 && (slot as usize) < L::MAX_STRATEGIES {
            Some(L::TEL_SLOTS + self.slot_size * slot as usize)
        } else {
            None
        }
    }

    fn add(&self, off: usize, n: u64) {
        let w = self.tel.u64(off);
        w.store(w.load(Relaxed).wrapping_add(n), Release);
    }

    fn add_f(&self, off: usize, d: f64) {
        let w = self.tel.u64(off);
        w.store((f64::from_bits(w.load(Relaxed)) + d).to_bits(), Relaxed);
    }

    fn set_f(&self, off: usize, d: f64) {
        self.tel.u64(off).store(d.to_bits(), Relaxed);
    }

    fn begin(&self, b: usize) {
        // to the next odd value, even if a writer died mid-update and left it odd
        let g = self.tel.u32(b + L::SLOT_GSEQ);
        g.store(g.load(Relaxed) | 1, Relaxed);
        fence(Release);
    }

    fn end(&self, b: usize) {
        let g = self.tel.u32(b + L::SLOT_GSEQ);
        g.store(g.load(Relaxed).wrapping_add(1), Release);
    }

    pub fn report_order(&self, slot: i32, n: u64) {
        if let Some(b) = self.base(slot) {
            self.add(b + L::SLOT_ORDERS, n);
        }
    }

    pub fn report_reject(&self, slot: i32, n: u64) {
        if let Some(b) = self.base(slot) {
            self.add(b + L::SLOT_REJECTS, n);
        }
    }

    pub fn report_cancel(&self, slot: i32, n: u64) {
        if let Some(b) = self.base(slot) {
            self.add(b + L::SLOT_CANCELS, n);
        }
    }

    /// The engine is alive; call at least every few ms (now: CLOCK_MONOTONIC ns).
    pub fn report_heartbeat(&self, slot: i32, now_mono_ns: u64) {
        if let Some(b) = self.base(slot) {
            let pid = self.tel.u32(b + L::SLOT_PID);
            if pid.load(Relaxed) == 0 {
                pid.store(self.pid, Relaxed);
            }
            self.tel.u64(b + L::SLOT_HEARTBEAT_NS).store(now_mono_ns, Release);
        }
    }

    /// The engine has acted on (e.g. cancelled its orders for) change sequence seq.
    pub fn report_ack(&self, slot: i32, seq: u32, now_mono_ns: u64) {
        if let Some(b) = self.base(slot) {
            self.tel.u64(b + L::SLOT_ACK_NS).store(now_mono_ns, Relaxed);
            self.tel.u32(b + L::SLOT_ACK_SEQ).store(seq, Release);
        }
    }

    /// A fill: signed cash (negative buying), the fee, balance and position after it.
    pub fn report_fill(&self, slot: i32, cash: f64, fee: f64, balance: f64, position: f64) {
        if let Some(b) = self.base(slot) {
            self.begin(b);
            let fills = self.tel.u64(b + L::SLOT_FILLS);
            fills.store(fills.load(Relaxed) + 1, Relaxed);
            self.add_f(b + L::SLOT_FILL_CASH, cash);
            self.add_f(b + L::SLOT_FEES, fee);
            self.set_f(b + L::SLOT_BALANCE, balance);
            self.set_f(b + L::SLOT_POSITION, position);
            self.end(b);
        }
    }

    /// Marks: net position, gross exposure and PnL (realized + unrealized).
    pub fn report_marks(&self, slot: i32, position: f64, gross: f64, pnl: f64) {
        if let Some(b) = self.base(slot) {
            self.begin(b);
            self.set_f(b + L::SLOT_POSITION, position);
            self.set_f(b + L::SLOT_GROSS, gross);
            self.set_f(b + L::SLOT_PNL, pnl);
            self.end(b);
        }
    }

    /// The opening balance: a statement (opening_seq + 1) with fills and cash folded in.
    pub fn report_opening_balance(&self, slot: i32, balance: f64) {
        if let Some(b) = self.base(slot) {
            let cash = f64::from_bits(self.tel.u64(b + L::SLOT_FILL_CASH).load(Relaxed));
            let fees = f64::from_bits(self.tel.u64(b + L::SLOT_FEES).load(Relaxed));
            self.begin(b);
            self.set_f(b + L::SLOT_BALANCE, balance);
            self.set_f(b + L::SLOT_OPENING_BASE, balance - (cash - fees));
            let fills = self.tel.u64(b + L::SLOT_FILLS).load(Relaxed);
            self.tel.u64(b + L::SLOT_OPENING_FILLS).store(fills, Relaxed);
            let oseq = self.tel.u32(b + L::SLOT_OPENING_SEQ);
            oseq.store(oseq.load(Relaxed).wrapping_add(1), Relaxed);
            self.end(b);
        }
    }

    /// The cash balance alone; before the first fill it is the opening balance.
    pub fn report_balance(&self, slot: i32, balance: f64) {
        if let Some(b) = self.base(slot) {
            if self.tel.u64(b + L::SLOT_FILLS).load(Relaxed) == 0 {
                self.report_opening_balance(slot, balance);
                return;
            }
            self.begin(b);
            self.set_f(b + L::SLOT_BALANCE, balance);
            self.end(b);
        }
    }

    /// Orders working at the venue now (report on change, and when acting on a halt).
    pub fn report_working(&self, slot: i32, working: u64, now_mono_ns: u64) {
        if let Some(b) = self.base(slot) {
            self.tel.u64(b + L::SLOT_WORKING_ORDERS).store(working, Relaxed);
            self.tel.u64(b + L::SLOT_WORKING_NS).store(now_mono_ns.max(1), Release);
        }
    }

    /// A market-data tick arrived.
    pub fn report_md_tick(&self, slot: i32, now_mono_ns: u64) {
        if let Some(b) = self.base(slot) {
            self.tel.u64(b + L::SLOT_MD_LAST_NS).store(now_mono_ns.max(1), Release);
        }
    }

    /// The order-entry session with the venue went up or down.
    pub fn report_session(&self, slot: i32, up: bool, now_mono_ns: u64) {
        if let Some(b) = self.base(slot) {
            self.tel
                .u32(b + L::SLOT_SESSION)
                .store(if up { L::SESSION_UP } else { L::SESSION_DOWN }, Relaxed);
            self.tel.u64(b + L::SLOT_SESSION_NS).store(now_mono_ns.max(1), Release);
        }
    }
}

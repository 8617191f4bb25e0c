//! Engine client for the breaker kill switch (docs/clients.md, "Rust"):
//! maps the state segment read-only and answers "may I trade, and how?" with
//! two acquire loads; writes the engine's telemetry with the single-writer
//! protocol. std only; `unsafe` is confined to the raw system calls
//! (`sys.rs`) and the mapped-memory accessors (`segment.rs`).
//!
//! ```no_run
//! use breaker_client::{Client, Mode};
//! let c = Client::attach("default").expect("no breaker: do not trade");
//! let slot = c.resolve("momo-eu-1").expect("not registered: do not trade");
//! match c.check_live(slot) {
//!     Mode::Active => { /* trade */ }
//!     Mode::Cautious => { /* smaller orders */ }
//!     Mode::ReduceOnly => { /* reduce the position only */ }
//!     Mode::Halted => { /* cancel working orders, send nothing new */ }
//! }
//! ```

pub mod layout;
mod segment;
mod sys;
mod telemetry;

use layout as L;
use segment::Segment;
use std::fmt;
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

pub use telemetry::Telemetry;

/// `check`'s slot for "the global scope alone".
pub const GLOBAL: i32 = -1;
const SEQLOCK_TRIES: u32 = 10_000;

/// Attaching failed; the engine must not trade. `errno` is the C client's
/// answer for the same case (ENOENT, EAGAIN while being created, EPROTO
/// unknown layout, EPERM not the daemon's, EINVAL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub errno: i32,
    pub msg: String,
}

impl Error {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const EAGAIN: i32 = 11;
    pub const EINVAL: i32 = 22;
    pub const EPROTO: i32 = 71;
    pub fn new(errno: i32, msg: String) -> Error {
        Error { errno, msg }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

/// The modes, least to most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    Active = 0,
    Cautious = 1,
    ReduceOnly = 2,
    Halted = 3,
}

impl Mode {
    /// A mode value from the segment; anything above 3 reads as Halted.
    pub fn of(v: u64) -> Mode {
        match v {
            0 => Mode::Active,
            1 => Mode::Cautious,
            2 => Mode::ReduceOnly,
            _ => Mode::Halted,
        }
    }
    /// The name the page and the other clients use ("REDUCE_ONLY").
    pub fn name(self) -> &'static str {
        match self {
            Mode::Active => "ACTIVE",
            Mode::Cautious => "CAUTIOUS",
            Mode::ReduceOnly => "REDUCE_ONLY",
            Mode::Halted => "HALTED",
        }
    }
}

/// Who holds the winning latch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    None,
    Global,
    Group,
    Strategy,
}

/// The winning latch of a slot's effective scope, for the engine's own rejects.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    pub mode: Mode,
    pub reason_code: u32,
    pub reason_name: String,
    pub actor_uid: u32,
    pub since_wall_ns: u64,
    pub scope: Holder,
    /// The group or strategy slot; -1 for global or none.
    pub scope_slot: i32,
    /// "venue:XETR", the strategy, "" for global.
    pub scope_name: String,
}

/// What the breaker lets an engine trade: the strictest of the global and
/// the strategy's limits. An unset limit: size_factor 1.0, max_* 0 (none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub flags: u32,
    pub size_factor: f64,
    pub max_qty: f64,
    pub max_notional: f64,
}

/// The engine's read-only view of one breaker instance. Send + Sync.
pub struct Client {
    shm: Segment,
    t0: Instant,
    t0_ns: u64,
}

fn scope_off(slot: i32) -> usize {
    if slot < 0 {
        L::GLOBAL
    } else {
        L::STRATEGIES + L::SCOPE_SIZE * slot as usize
    }
}

/// A set limit as a trader meant it: NaN or negative reads as 0 (fail closed).
fn sane(v: f64) -> f64 {
    if v >= 0.0 {
        v
    } else {
        0.0
    }
}

impl Client {
    /// `attach_as(instance, None)`: the daemon's uid from BREAKER_DAEMON_UID,
    /// else the user `breaker` or our own.
    pub fn attach(instance: &str) -> Result<Client, Error> {
        Client::attach_as(instance, None)
    }

    /// Map /dev/shm/breaker.<instance> read-only if it is breakerd's (owner
    /// root or daemon_uid, nobody else may write it) and its magic, layout
    /// version and size are this client's; anything else is refused.
    pub fn attach_as(instance: &str, daemon_uid: Option<u32>) -> Result<Client, Error> {
        let p = segment::path(instance, "")?;
        let shm = segment::map(&p, L::SEGMENT_SIZE, false, daemon_uid)?;
        let version = shm.u32(L::HDR_LAYOUT_VERSION).load(Ordering::Acquire);
        if version == 0 {
            return Err(Error::new(Error::EAGAIN, format!("{}: being created", p)));
        }
        let magic = shm.u64(L::HDR_MAGIC).load(Ordering::Relaxed);
        let size = shm.u64(L::HDR_SEGMENT_SIZE).load(Ordering::Relaxed);
        if magic != L::MAGIC || version != L::LAYOUT_VERSION || size != L::SEGMENT_SIZE as u64 {
            return Err(Error::new(
                Error::EPROTO,
                format!(
                    "{}: layout {} (magic {:#x}, {} bytes); this client reads layout {}: refusing (fail closed)",
                    p,
                    version,
                    magic,
                    size,
                    L::LAYOUT_VERSION
                ),
            ));
        }
        // CLOCK_MONOTONIC now, and the Instant (the same clock, read through
        // the vDSO) it corresponds to: now_mono_ns() costs no system call.
        let t0 = Instant::now();
        let t0_ns = sys::clock_monotonic_ns();
        Ok(Client { shm, t0, t0_ns })
    }

    /// CLOCK_MONOTONIC in ns (the daemon's heartbeat clock), cheaply.
    #[inline]
    pub fn now_mono_ns(&self) -> u64 {
        self.t0_ns + self.t0.elapsed().as_nanos() as u64
    }

    /// Effective mode of a strategy slot (or GLOBAL): the most restrictive
    /// of global and the strategy (whose groups the daemon already folded
    /// in). Any other out-of-range slot answers Halted. Two acquire loads;
    /// does not look at the heartbeat.
    #[inline]
    pub fn check(&self, slot: i32) -> Mode {
        let g = self.shm.u64(L::GLOBAL + L::SCOPE_STATE).load(Ordering::Acquire) & 0xff;
        if slot >= L::MAX_STRATEGIES as i32 || slot < GLOBAL {
            return Mode::Halted;
        }
        let s = if slot >= 0 {
            self.shm.u64(scope_off(slot) + L::SCOPE_STATE).load(Ordering::Acquire) & 0xff
        } else {
            0
        };
        Mode::of(g.max(s))
    }

    /// `check_live_at(slot, self.now_mono_ns(), 0)`.
    #[inline]
    pub fn check_live(&self, slot: i32) -> Mode {
        self.check_live_at(slot, self.now_mono_ns(), 0)
    }

    /// check() that fails closed: Halted when the layout version changed or
    /// the daemon's heartbeat is 0 (clean stop), older than max_age_ns at
    /// now_mono_ns, or more than max_age_ns ahead of it (0: the daemon's
    /// bound); in firm-wide mode also past valid_until_ns (the daemon's last
    /// proven quorum contact plus its bound).
    #[inline]
    pub fn check_live_at(&self, slot: i32, now_mono_ns: u64, max_age_ns: u64) -> Mode {
        let hb = self.shm.u64(L::HEARTBEAT_NS).load(Ordering::Acquire);
        if self.shm.u32(L::HDR_LAYOUT_VERSION).load(Ordering::Relaxed) != L::LAYOUT_VERSION {
            return Mode::Halted;
        }
        let bound = if max_age_ns == 0 {
            self.shm.u64(L::HDR_HEARTBEAT_BOUND_NS).load(Ordering::Relaxed)
        } else {
            max_age_ns
        };
        if hb == 0 || (now_mono_ns > hb && now_mono_ns - hb > bound) || (hb > now_mono_ns && hb - now_mono_ns > bound) {
            return Mode::Halted;
        }
        // firm-wide mode: no proven etcd quorum contact until valid_until_ns (0: not used)
        let vu = self.shm.u64(L::VALID_UNTIL_NS).load(Ordering::Acquire);
        if vu != 0 && now_mono_ns > vu {
            return Mode::Halted;
        }
        self.check(slot)
    }

    fn name_at(&self, off: usize) -> String {
        let mut b = Vec::with_capacity(L::NAME_MAX);
        for i in 0..L::NAME_MAX - 1 {
            let c = self.shm.byte(off + L::SCOPE_NAME + i);
            if c == 0 {
                break;
            }
            b.push(c);
        }
        String::from_utf8_lossy(&b).into_owned()
    }

    /// A strategy's slot, or Err(ENOENT): do not trade. Off the hot path.
    pub fn resolve(&self, strategy: &str) -> Result<i32, Error> {
        (0..self.strategy_count())
            .find(|&i| self.name_at(scope_off(i as i32)) == strategy)
            .map(|i| i as i32)
            .ok_or_else(|| Error::new(Error::ENOENT, format!("strategy {} is not registered", strategy)))
    }

    pub fn strategy_count(&self) -> usize {
        (self.shm.u32(L::HDR_STRATEGY_COUNT).load(Ordering::Acquire) as usize).min(L::MAX_STRATEGIES)
    }
    pub fn group_count(&self) -> usize {
        (self.shm.u32(L::HDR_GROUP_COUNT).load(Ordering::Acquire) as usize).min(L::MAX_GROUPS)
    }
    pub fn strategy_name(&self, slot: i32) -> String {
        self.name_at(scope_off(slot))
    }
    pub fn group_name(&self, g: usize) -> String {
        self.name_at(L::GROUPS + L::SCOPE_SIZE * g)
    }
    pub fn change_seq(&self) -> u32 {
        self.shm.u32(L::CHANGE_SEQ).load(Ordering::Acquire)
    }
    pub fn heartbeat_ns(&self) -> u64 {
        self.shm.u64(L::HEARTBEAT_NS).load(Ordering::Acquire)
    }
    pub fn layout_version(&self) -> u32 {
        self.shm.u32(L::HDR_LAYOUT_VERSION).load(Ordering::Acquire)
    }

    /// Sleep until the change sequence differs from `seen` (shared
    /// FUTEX_WAIT on change_seq, woken by the daemon), or `timeout` passes
    /// (None: forever). true on a change; false on timeout or a signal.
    pub fn wait_change(&self, seen: u32, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if self.change_seq() != seen {
                return true;
            }
            let left = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    Some((d - now).as_nanos() as u64)
                }
                None => None,
            };
            let word = self.shm.u32(L::CHANGE_SEQ) as *const _ as *const u32;
            // 0: woken (or the word already moved); else ETIMEDOUT or EINTR
            if sys::futex_wait(word, seen, left) != 0 {
                return self.change_seq() != seen;
            }
        }
    }

    /// A scope's own (state, latches, since_ns, seq) under its seqlock;
    /// bounded: a writer that died mid-update must not hang the engine.
    fn read_scope(&self, off: usize) -> (u64, u32, u64, u32) {
        for _ in 0..=SEQLOCK_TRIES {
            let q = self.shm.u32(off + L::SCOPE_SEQ).load(Ordering::Acquire);
            let since = self.shm.u64(off + L::SCOPE_SINCE_NS).load(Ordering::Relaxed);
            let latches = self.shm.u32(off + L::SCOPE_LATCHES).load(Ordering::Relaxed);
            let state = self.shm.u64(off + L::SCOPE_STATE).load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if q & 1 == 0 && q == self.shm.u32(off + L::SCOPE_SEQ).load(Ordering::Relaxed) {
                return (state, latches, since, q);
            }
        }
        (self.shm.u64(off + L::SCOPE_STATE).load(Ordering::Acquire), 0, 0, 0)
    }

    /// The winning latch of a slot's effective scope (GLOBAL: the global
    /// scope); the holder bits name the group whose latch the daemon folded in.
    pub fn reason(&self, slot: i32) -> Reason {
        let strat = slot >= 0 && slot < L::MAX_STRATEGIES as i32;
        let gw = self.shm.u64(L::GLOBAL + L::SCOPE_STATE).load(Ordering::Acquire);
        let sw = if strat {
            self.shm.u64(scope_off(slot) + L::SCOPE_STATE).load(Ordering::Acquire)
        } else {
            0
        };
        let use_strat = strat && (sw & 0xff) > (gw & 0xff);
        let (w, _, since, _) = self.read_scope(if use_strat { scope_off(slot) } else { L::GLOBAL });
        let mode = w & 0xff;
        let holder = ((w >> 16) & 0xffff) as usize;
        let (scope, scope_slot, scope_name) = if mode == 0 {
            (Holder::None, -1, String::new())
        } else if !use_strat {
            (Holder::Global, -1, String::new())
        } else if (1..=L::MAX_GROUPS).contains(&holder) {
            (Holder::Group, holder as i32 - 1, self.group_name(holder - 1))
        } else {
            (Holder::Strategy, slot, self.strategy_name(slot))
        };
        let code = ((w >> 8) & 0xff) as u32;
        Reason {
            mode: Mode::of(mode),
            reason_code: code,
            reason_name: L::reason_name(code),
            actor_uid: (w >> 32) as u32,
            since_wall_ns: since,
            scope,
            scope_slot,
            scope_name,
        }
    }

    fn limits_entry(&self, e: usize) -> Option<(u32, f64, f64, f64)> {
        let off = L::LIMITS + L::LIMITS_ENTRY_SIZE * e;
        for _ in 0..=SEQLOCK_TRIES {
            let q = self.shm.u32(off + L::LIMIT_SEQ).load(Ordering::Acquire);
            let flags = self.shm.u32(off + L::LIMIT_FLAGS).load(Ordering::Relaxed);
            let sf = self.shm.u64(off + L::LIMIT_SIZE_FACTOR).load(Ordering::Relaxed);
            let mq = self.shm.u64(off + L::LIMIT_MAX_QTY).load(Ordering::Relaxed);
            let mn = self.shm.u64(off + L::LIMIT_MAX_NOTIONAL).load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if q & 1 == 0 && q == self.shm.u32(off + L::LIMIT_SEQ).load(Ordering::Relaxed) {
                return Some((flags, f64::from_bits(sf), f64::from_bits(mq), f64::from_bits(mn)));
            }
        }
        None
    }

    /// The limits for a strategy slot (or GLOBAL): for each limit set in the
    /// global entry or the slot's, the smaller wins. Off the hot path: cache
    /// it, read again when change_seq() moves. A bad slot or an entry that
    /// never settles answers every limit set and size_factor 0.
    pub fn limits(&self, slot: i32) -> Limits {
        let all = L::LIMIT_FLAG_SIZE_FACTOR | L::LIMIT_FLAG_MAX_QTY | L::LIMIT_FLAG_MAX_NOTIONAL;
        let closed = Limits {
            flags: all,
            size_factor: 0.0,
            max_qty: 0.0,
            max_notional: 0.0,
        };
        if slot >= L::MAX_STRATEGIES as i32 || slot < GLOBAL {
            return closed;
        }
        let mut out = Limits {
            flags: 0,
            size_factor: 1.0,
            max_qty: 0.0,
            max_notional: 0.0,
        };
        // a named array, not a temporary: rustc 1.63 (Debian's) ends a
        // temporary's life at the end of the `let`
        let both = [0, 1 + slot.max(0) as usize];
        let entries: &[usize] = if slot >= 0 { &both } else { &both[..1] };
        for &e in entries {
            let (f, sf, mq, mn) = match self.limits_entry(e) {
                Some(v) => v,
                None => return closed,
            };
            if f & L::LIMIT_FLAG_SIZE_FACTOR != 0
                && (out.flags & L::LIMIT_FLAG_SIZE_FACTOR == 0 || sane(sf) < out.size_factor)
            {
                out.size_factor = sane(sf);
            }
            if f & L::LIMIT_FLAG_MAX_QTY != 0 && (out.flags & L::LIMIT_FLAG_MAX_QTY == 0 || sane(mq) < out.max_qty) {
                out.max_qty = sane(mq);
            }
            if f & L::LIMIT_FLAG_MAX_NOTIONAL != 0
                && (out.flags & L::LIMIT_FLAG_MAX_NOTIONAL == 0 || sane(mn) < out.max_notional)
            {
                out.max_notional = sane(mn);
            }
            out.flags |= f & all;
        }
        out
    }
}

/// CLOCK_MONOTONIC in ns through a system call (`Client::now_mono_ns` is cheaper).
pub fn now_mono_ns() -> u64 {
    sys::clock_monotonic_ns()
}

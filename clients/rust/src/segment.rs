//! A mapped segment: opened, checked (whose it is, its size), mapped with
//! raw mmap, and read/written with atomics at documented offsets.

use crate::sys;
use crate::Error;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicU32, AtomicU64};

pub const DAEMON_UID_ENV: &str = "BREAKER_DAEMON_UID";
pub const DAEMON_USER_DEFAULT: &str = "breaker";

pub struct Segment {
    base: *mut u8,
    len: usize,
}

// SAFETY: the mapping is shared memory read and written only through atomics.
unsafe impl Send for Segment {}
unsafe impl Sync for Segment {}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: nothing outlives the Segment that refers to its bytes.
        unsafe { sys::munmap(self.base, self.len) }
    }
}

impl Segment {
    /// The 64-bit word at off (8-byte aligned, inside the mapping).
    #[inline(always)]
    pub fn u64(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off % 8 == 0 && off + 8 <= self.len);
        // SAFETY: off is a documented, aligned offset inside the mapping.
        unsafe { &*(self.base.add(off) as *const AtomicU64) }
    }

    #[inline(always)]
    pub fn u32(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off % 4 == 0 && off + 4 <= self.len);
        // SAFETY: as u64().
        unsafe { &*(self.base.add(off) as *const AtomicU32) }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn byte(&self, off: usize) -> u8 {
        assert!(off < self.len);
        // SAFETY: inside the mapping; a name byte may be torn by a writer,
        // which only garbles a name (the daemon never rewrites names).
        unsafe { std::ptr::read_volatile(self.base.add(off)) }
    }
}

pub fn path(instance: &str, suffix: &str) -> Result<String, Error> {
    if instance.is_empty() || instance.len() >= 64 || instance.contains('/') || instance == "." || instance == ".." {
        return Err(Error::new(Error::EINVAL, format!("bad instance name: {:?}", instance)));
    }
    Ok(format!(
        "{}/{}{}{}",
        crate::layout::SHM_DIR,
        crate::layout::SHM_PREFIX,
        instance,
        suffix
    ))
}

/// The uid a user name or number names.
pub fn uid_of(user: &str) -> Option<u32> {
    if !user.is_empty() && user.bytes().all(|b| b.is_ascii_digit()) {
        return user.parse().ok();
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() > 2 && f[0] == user {
            f[2].parse().ok()
        } else {
            None
        }
    })
}

/// bk_client_trust_owner: may a segment with this owner and mode be believed?
pub fn trust_owner(p: &str, owner: u32, mode: u32, daemon_uid: Option<u32>) -> Result<(), Error> {
    if mode & 0o022 != 0 {
        return Err(Error::new(
            Error::EPERM,
            format!("{}: writable by group or others (mode {:o})", p, mode & 0o7777),
        ));
    }
    let mut want = daemon_uid;
    if want.is_none() {
        if let Ok(env) = std::env::var(DAEMON_UID_ENV) {
            if !env.is_empty() {
                want =
                    Some(uid_of(&env).ok_or_else(|| {
                        Error::new(Error::EINVAL, format!("{}={} names no user", DAEMON_UID_ENV, env))
                    })?);
            }
        }
    }
    let trusted = owner == 0 // root can write any segment anyway
        || match want {
            Some(u) => owner == u,
            None => owner == sys::geteuid() || uid_of(DAEMON_USER_DEFAULT) == Some(owner),
        };
    if trusted {
        Ok(())
    } else {
        Err(Error::new(
            Error::EPERM,
            format!("{}: owned by uid {}, not breakerd's", p, owner),
        ))
    }
}

fn open_error(p: &str, e: std::io::Error) -> Error {
    let errno = e.raw_os_error().unwrap_or(Error::EPROTO);
    Error::new(errno, format!("{}: {}", p, e))
}

/// Open p, check the opened file (fstat: what is mapped is what was checked),
/// map `size` bytes. writable: the telemetry segment (group may write it,
/// one link, exactly `size` bytes).
pub fn map(p: &str, size: usize, writable: bool, daemon_uid: Option<u32>) -> Result<Segment, Error> {
    map_sizes(p, &[size], writable, daemon_uid)
}

/// map(), for a segment that may have one of several sizes (the first is
/// the one wanted when none matches).
pub fn map_sizes(p: &str, sizes: &[usize], writable: bool, daemon_uid: Option<u32>) -> Result<Segment, Error> {
    let f: File = OpenOptions::new()
        .read(true)
        .write(writable)
        .open(p)
        .map_err(|e| open_error(p, e))?;
    let md = f.metadata().map_err(|e| open_error(p, e))?;
    let mode = if writable { md.mode() & !0o020 } else { md.mode() };
    trust_owner(p, md.uid(), mode, daemon_uid)?;
    if writable && md.nlink() != 1 {
        return Err(Error::new(Error::EPERM, format!("{}: has other links", p)));
    }
    let len = md.len() as usize;
    let size = if sizes.contains(&len) { len } else { sizes[0] };
    if len == 0 {
        return Err(Error::new(Error::EAGAIN, format!("{}: being created", p)));
    }
    if if writable { len != size } else { len < size } {
        return Err(Error::new(
            Error::EPROTO,
            format!("{}: {} bytes, layout wants {:?}", p, len, sizes),
        ));
    }
    let prot = if writable {
        sys::PROT_READ | sys::PROT_WRITE
    } else {
        sys::PROT_READ
    };
    let base = sys::mmap(size, prot, f.as_raw_fd()).map_err(|e| Error::new(e, format!("{}: mmap failed", p)))?;
    Ok(Segment { base, len: size })
}

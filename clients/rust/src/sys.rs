//! The few system calls std does not offer, made directly (no libc crate:
//! std only): mmap, munmap, futex, clock_gettime, geteuid. Linux on x86-64
//! and aarch64. All `unsafe` of the crate is here and in the mapped-memory
//! accessors of `segment.rs`.

use std::arch::asm;

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const MMAP: usize = 9;
    pub const MUNMAP: usize = 11;
    pub const FUTEX: usize = 202;
    pub const CLOCK_GETTIME: usize = 228;
    pub const GETEUID: usize = 107;
}
#[cfg(target_arch = "aarch64")]
mod nr {
    pub const MMAP: usize = 222;
    pub const MUNMAP: usize = 215;
    pub const FUTEX: usize = 98;
    pub const CLOCK_GETTIME: usize = 113;
    pub const GETEUID: usize = 175;
}
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("breaker-client: Linux x86-64 or aarch64 only (raw system calls)");

#[cfg(target_arch = "x86_64")]
unsafe fn syscall6(n: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a[0], in("rsi") a[1],
         in("rdx") a[2], in("r10") a[3], in("r8") a[4], in("r9") a[5],
         lateout("rcx") _, lateout("r11") _, options(nostack));
    ret
}

#[cfg(target_arch = "aarch64")]
unsafe fn syscall6(n: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    asm!("svc 0", in("x8") n, inlateout("x0") a[0] as isize => ret, in("x1") a[1],
         in("x2") a[2], in("x3") a[3], in("x4") a[4], in("x5") a[5], options(nostack));
    ret
}

pub const PROT_READ: usize = 1;
pub const PROT_WRITE: usize = 2;
const MAP_SHARED: usize = 1;
const FUTEX_WAIT: usize = 0; // shared, not _PRIVATE: the waker is another process
const CLOCK_MONOTONIC: usize = 1;
pub const EAGAIN: i32 = 11;

/// mmap(NULL, len, prot, MAP_SHARED, fd, 0): the address, or -errno.
pub fn mmap(len: usize, prot: usize, fd: i32) -> Result<*mut u8, i32> {
    // SAFETY: a fresh mapping chosen by the kernel touches no existing memory.
    let r = unsafe { syscall6(nr::MMAP, [0, len, prot, MAP_SHARED, fd as usize, 0]) };
    if (-4095..0).contains(&r) {
        Err(-r as i32)
    } else {
        Ok(r as *mut u8)
    }
}

/// munmap. Caller: nothing refers to [addr, addr + len) any more.
pub unsafe fn munmap(addr: *mut u8, len: usize) {
    syscall6(nr::MUNMAP, [addr as usize, len, 0, 0, 0, 0]);
}

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

/// FUTEX_WAIT on the u32 at addr while it equals val, for at most timeout_ns
/// (None: forever). 0 when woken (or the value already differed: EAGAIN),
/// else the errno (ETIMEDOUT, EINTR).
pub fn futex_wait(addr: *const u32, val: u32, timeout_ns: Option<u64>) -> i32 {
    let ts = timeout_ns.map(|ns| Timespec {
        tv_sec: (ns / 1_000_000_000) as i64,
        tv_nsec: (ns % 1_000_000_000) as i64,
    });
    let tsp = ts.as_ref().map_or(0, |t| t as *const Timespec as usize);
    // SAFETY: addr is a 4-byte aligned word of a live mapping; FUTEX_WAIT only reads it.
    let r = unsafe { syscall6(nr::FUTEX, [addr as usize, FUTEX_WAIT, val as usize, tsp, 0, 0]) };
    if r == 0 || r == -(EAGAIN as isize) {
        0
    } else {
        -r as i32
    }
}

/// CLOCK_MONOTONIC in ns, the daemon's heartbeat clock (a real system call:
/// ~100 ns; `Client::now_mono_ns` is the cheap one).
pub fn clock_monotonic_ns() -> u64 {
    let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: the kernel writes one timespec into ts.
    unsafe {
        syscall6(
            nr::CLOCK_GETTIME,
            [CLOCK_MONOTONIC, &mut ts as *mut Timespec as usize, 0, 0, 0, 0],
        );
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn geteuid() -> u32 {
    // SAFETY: no arguments, no memory.
    unsafe { syscall6(nr::GETEUID, [0; 6]) as u32 }
}

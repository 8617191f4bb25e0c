"""FUTEX_WAIT on the segment's change_seq, through libc's syscall(2).

ctypes is used here and nowhere else: the standard library has no futex.
The operation is the plain, shared FUTEX_WAIT (not FUTEX_WAIT_PRIVATE): the
waker is breakerd, another process, and a shared futex on a MAP_SHARED file
mapping is keyed by (inode, offset), which both processes agree on.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import platform

FUTEX_WAIT = 0  # no FUTEX_PRIVATE_FLAG (128): shared between processes

# SYS_futex differs per architecture (asm/unistd.h).
_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _PyBuffer(ctypes.Structure):
    """CPython's Py_buffer (stable since 3.0); only .buf is used."""

    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def sys_futex_number() -> int:
    machine = platform.machine().lower()
    try:
        return _SYS_FUTEX[machine]
    except KeyError:
        raise OSError(errno.ENOSYS, f"breaker_client: no SYS_futex number for {machine!r}") from None


def buffer_address(mm: mmap.mmap) -> int:
    """Address of a (read-only) mmap's memory.

    ctypes' from_buffer() wants a writable buffer, so ask the buffer protocol
    directly. The caller must keep `mm` open while it uses the address.
    """
    view = _PyBuffer()
    get = ctypes.pythonapi.PyObject_GetBuffer
    get.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
    get.restype = ctypes.c_int
    release = ctypes.pythonapi.PyBuffer_Release
    release.argtypes = [ctypes.POINTER(_PyBuffer)]
    release.restype = None
    if get(mm, ctypes.byref(view), 0) != 0:  # PyBUF_SIMPLE
        raise OSError(errno.EINVAL, "breaker_client: cannot get the mapping's address")
    try:
        if not view.buf:
            raise OSError(errno.EINVAL, "breaker_client: mapping has no address")
        return int(view.buf)
    finally:
        release(ctypes.byref(view))


def wait(addr: int, seen: int, timeout_s: float | None) -> int:
    """One FUTEX_WAIT: sleeps while the u32 at addr equals seen.

    Returns 0 when woken, else the errno: EAGAIN (the word already differed),
    ETIMEDOUT, EINTR (a signal; Python's handler runs once we return).
    """
    ts_ptr = None
    if timeout_s is not None:
        ns = max(0, int(timeout_s * 1e9))
        ts_ptr = ctypes.byref(_Timespec(ns // 1_000_000_000, ns % 1_000_000_000))
    rc = _syscall(
        ctypes.c_long(sys_futex_number()),
        ctypes.c_void_p(addr),
        ctypes.c_long(FUTEX_WAIT),
        ctypes.c_long(seen & 0xFFFFFFFF),
        ts_ptr,
        ctypes.c_void_p(None),
        ctypes.c_long(0),
    )
    return 0 if rc == 0 else ctypes.get_errno()

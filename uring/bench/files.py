"""The file under test and the page cache around it.

A buffered random-read benchmark measures the page cache only if the file
is in it.  These machines evict page-cache pages left idle for about a
minute, and a half-cold file gives a tenth of the IOPS, so before every
buffered cell the file is read whole and its residency checked with
``mincore(2)`` on a mapping of it.  If the cache cannot hold it, that is
reported rather than hidden: the buffered numbers then measure the disk.

The temporary file is made of non-repeating data (not a sparse file: a hole
is read without any I/O, which would flatter O_DIRECT) and synced, so the
first O_DIRECT cell does not pay for writing back the dirty pages of its
creation.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import shutil
import stat
import tempfile
from typing import Optional

from ..buffers import address_of

__all__ = ["ScratchDir", "file_size", "make_file", "residency", "warm"]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
_libc.mincore.restype = ctypes.c_int

_CHUNK = 1 << 20
_BIT0 = bytes(i & 1 for i in range(256))


def make_file(path: str, size: int) -> None:
    """Fill *path* up to *size* bytes with non-repeating data (existing bytes
    are kept: a larger job extends a file, as fio lays one out), then fsync."""
    seed = os.urandom(_CHUNK + 4096)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        done = os.fstat(fd).st_size
        i = done // _CHUNK
        while done < size:
            n = min(_CHUNK - done % _CHUNK, size - done)
            start = (i * 997) % 4096
            os.pwrite(fd, seed[start: start + n], done)
            done += n
            i += 1
        os.fsync(fd)
    finally:
        os.close(fd)


def file_size(path: str) -> int:
    """Bytes in a regular file or a block device."""
    st = os.stat(path)
    if stat.S_ISBLK(st.st_mode):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.lseek(fd, 0, os.SEEK_END)
        finally:
            os.close(fd)
    return st.st_size


def warm(path: str, size: int) -> None:
    """Read the first *size* bytes of *path* through the page cache."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.posix_fadvise(fd, 0, size, os.POSIX_FADV_WILLNEED)
        done = 0
        while done < size:
            got = len(os.pread(fd, min(1 << 22, size - done), done))
            if not got:
                break
            done += got
    finally:
        os.close(fd)


def residency(path: str, size: int) -> float:
    """Fraction of the pages of the first *size* bytes of *path* that are
    in the page cache, from ``mincore(2)`` on a read-only shared mapping
    (mapping a file touches none of its pages)."""
    if size <= 0:
        return 1.0
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vec = (ctypes.c_ubyte * pages)()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    try:
        if _libc.mincore(ctypes.c_void_p(address_of(m)), size, vec) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mincore: {os.strerror(err)}")
    finally:
        m.close()
    resident = bytes(vec).translate(_BIT0).count(1)  # bit 0: resident; the rest reserved
    return resident / pages


def ensure_hot(path: str, size: int) -> float:
    """Warm the region and return its residency (a second pass if the first
    left pages out, e.g. evicted while reading)."""
    warm(path, size)
    frac = residency(path, size)
    if frac < 0.99:
        warm(path, size)
        frac = residency(path, size)
    return frac


class ScratchDir:
    """A private directory for the temporary file, removed by ``close``
    (called from a ``finally``, so also on Ctrl-C)."""

    def __init__(self, parent: Optional[str] = None) -> None:
        self.path = tempfile.mkdtemp(prefix="uring-bench-", dir=parent or "/var/tmp")

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

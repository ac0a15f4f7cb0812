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

fio's ``invalidate=1`` (its default) is the opposite: ``invalidate``
writes the region's dirty pages back and drops them (``posix_fadvise``
``POSIX_FADV_DONTNEED``; on a block device the ``BLKFLSBUF`` ioctl, as fio
does), so the job starts on a cold cache.  (fio drops the cache each time
it opens the file, which it does again for every pass of a time_based or
``loops`` job; the timed loops do the same, ``workload.run_job``'s
*invalidate*.)  Every function here takes the
region as (*size*, *offset*): a job's ``offset`` keeps it off the bytes
before.
"""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import shutil
import stat
import tempfile
from typing import Optional

from ..buffers import address_of

__all__ = ["ScratchDir", "ensure_hot", "file_size", "invalidate", "make_file", "residency",
           "warm"]

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


def warm(path: str, size: int, offset: int = 0) -> None:
    """Read *size* bytes of *path* from *offset* on through the page cache."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.posix_fadvise(fd, offset, size, os.POSIX_FADV_WILLNEED)
        done = 0
        while done < size:
            got = len(os.pread(fd, min(1 << 22, size - done), offset + done))
            if not got:
                break
            done += got
    finally:
        os.close(fd)


def residency(path: str, size: int, offset: int = 0) -> float:
    """Fraction of the pages of *size* bytes of *path* from *offset* on that
    are in the page cache, from ``mincore(2)`` on a read-only shared
    mapping (mapping a file touches none of its pages)."""
    if size <= 0:
        return 1.0
    start = offset - offset % mmap.ALLOCATIONGRANULARITY  # mmap's offset must be aligned
    length = size + (offset - start)
    pages = (length + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    skip = (offset - start) // mmap.PAGESIZE
    vec = (ctypes.c_ubyte * pages)()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):  # pages past the end of the file are not resident
            length = min(length, st.st_size - start)
        if length <= 0:
            return 0.0
        m = mmap.mmap(fd, length, prot=mmap.PROT_READ, offset=start)
    finally:
        os.close(fd)
    try:
        if _libc.mincore(ctypes.c_void_p(address_of(m)), length, vec) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mincore: {os.strerror(err)}")
    finally:
        m.close()
    resident = bytes(vec)[skip:].translate(_BIT0).count(1)  # bit 0: resident; the rest reserved
    return resident / (pages - skip)


def ensure_hot(path: str, size: int, offset: int = 0) -> float:
    """Warm the region and return its residency (a second pass if the first
    left pages out, e.g. evicted while reading)."""
    warm(path, size, offset)
    frac = residency(path, size, offset)
    if frac < 0.99:
        warm(path, size, offset)
        frac = residency(path, size, offset)
    return frac


_BLKFLSBUF = 0x1261  # _IO(0x12, 97): flush a block device's buffers and drop its cache


def invalidate(path: str, size: int, offset: int = 0) -> None:
    """fio's ``invalidate``: write back and drop the region's pages from
    the page cache.  A regular file: ``fdatasync`` (``DONTNEED`` leaves
    dirty pages alone), then ``posix_fadvise(POSIX_FADV_DONTNEED)`` on the
    region.  A block device: ``BLKFLSBUF`` (the whole device, as fio), or
    the ``fadvise`` if that is refused."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if stat.S_ISBLK(os.fstat(fd).st_mode):
            try:
                fcntl.ioctl(fd, _BLKFLSBUF, 0)
                return
            except OSError:
                pass
        os.fdatasync(fd)
        os.posix_fadvise(fd, offset, size, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


class ScratchDir:
    """A private directory for the temporary file, removed by ``close``
    (called from a ``finally``, so also on Ctrl-C)."""

    def __init__(self, parent: Optional[str] = None) -> None:
        self.path = tempfile.mkdtemp(prefix="uring-bench-", dir=parent or "/var/tmp")

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

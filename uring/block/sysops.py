"""The synchronous system calls the block layer needs beside the engines:
``fallocate(2)`` with a mode (``os`` offers only ``posix_fallocate``),
the logical block size of a device, aligned memory, and O_DIRECT alignment
probing as QEMU's ``raw_probe_alignment`` does it."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import stat
import struct
from typing import Optional, Tuple

__all__ = [
    "FALLOC_FL_KEEP_SIZE",
    "FALLOC_FL_PUNCH_HOLE",
    "FALLOC_FL_ZERO_RANGE",
    "aligned_buffer",
    "fallocate",
    "logical_block_size",
    "probe_alignment",
]

# include/uapi/linux/falloc.h
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10

BLKSSZGET = 0x1268  # include/uapi/linux/fs.h: logical block size, int

_libc = ctypes.CDLL(None, use_errno=True)
_fallocate = _libc.fallocate
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_fallocate.restype = ctypes.c_int


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    while _fallocate(fd, mode, offset, length) != 0:
        err = ctypes.get_errno()
        if err != errno.EINTR:
            raise OSError(err, f"fallocate(mode={mode:#x}): {os.strerror(err)}")


def aligned_buffer(size: int) -> mmap.mmap:
    """Zeroed anonymous memory, page aligned (enough for any O_DIRECT)."""
    return mmap.mmap(-1, max(size, 1))


def _sysfs_queue(dev: int) -> Optional[str]:
    """The ``queue`` directory of the block device *dev* (a partition's is
    its disk's)."""
    base = f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"
    for q in (f"{base}/queue", f"{base}/../queue"):
        if os.path.isdir(q):
            return q
    return None


def _read_int(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def device_alignment(fd: int) -> Tuple[int, int]:
    """(logical block size, DMA alignment) of the device holding *fd*, from
    sysfs (``queue/logical_block_size``, ``queue/dma_alignment`` + 1); zeros
    where sysfs does not say (overlay, network or virtual filesystems)."""
    st = os.fstat(fd)
    q = _sysfs_queue(st.st_rdev if stat.S_ISBLK(st.st_mode) else st.st_dev)
    if q is None:
        return 0, 0
    lbs = _read_int(f"{q}/logical_block_size")
    dma = _read_int(f"{q}/dma_alignment")
    return lbs, (dma + 1 if lbs else 0)


def logical_block_size(fd: int) -> int:
    """The logical sector size of the block device open as *fd*
    (``BLKSSZGET``); 0 for anything else.  O_DIRECT offsets and lengths
    must be multiples of it, and so must any ``fallocate`` range on the
    device, whatever the cache mode (``blkdev_fallocate``: ``EINVAL``)."""
    if not stat.S_ISBLK(os.fstat(fd).st_mode):
        return 0
    return int(struct.unpack("i", fcntl.ioctl(fd, BLKSSZGET, b"\0" * 4))[0])


def probe_alignment(fd: int) -> Tuple[int, int]:
    """(request alignment, memory alignment) for O_DIRECT on *fd*.

    The device says it where it can: its logical block size (``BLKSSZGET``
    on a block device, sysfs for the disk under a file) and its DMA
    alignment (sysfs).  Otherwise, as QEMU does, try reads at offset 0:
    the smallest power of two from 512 up that the kernel accepts (anything
    but ``EINVAL``) is the request alignment; the smallest buffer offset
    accepted for a two-page read is the memory alignment.  Probing can
    only prove so much (a hole or an unwritten extent issues no I/O and
    checks nothing), so it never goes below what the device reported.
    """
    dev_request, dev_memory = device_alignment(fd)
    page = mmap.PAGESIZE
    st = os.fstat(fd)
    request = max(logical_block_size(fd), dev_request)
    buf = aligned_buffer(2 * 65536)
    try:
        view = memoryview(buf)
        if not request:
            request = page
            for size in (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536):
                try:
                    os.preadv(fd, [view[:size]], 0)
                except OSError as exc:
                    if exc.errno == errno.EINVAL:
                        continue
                request = size
                break
        # Memory: a two-page read, so the transfer crosses a page boundary
        # (a short one inside a page may be accepted misaligned and prove
        # nothing).  A file too small to read that far gets the page size.
        memory = page
        length = -(-2 * page // request) * request
        if st.st_size >= length or stat.S_ISBLK(st.st_mode):
            for align in (1, 512, 1024, 2048, 4096):
                if align >= page:
                    break
                try:
                    got = os.preadv(fd, [view[align: align + length]], 0)
                except OSError as exc:
                    if exc.errno == errno.EINVAL:
                        continue
                    raise
                if got == length:
                    memory = align
                break
        view.release()
    finally:
        buf.close()
    return request, max(memory, dev_memory, 1)

"""Page-cache helpers for buffered benchmarks (stdlib only).

These machines evict page-cache pages left idle for about a minute, and a
half-cold file gives a tenth of the IOPS.  So before every buffered cell a
benchmark reads the file whole and checks, with mincore(2), that every page
is resident.
"""

from __future__ import annotations

import ctypes
import mmap
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


def make_file(path: str, size: int) -> None:
    """Create *path* with *size* bytes of non-repeating data."""
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as f:
        done = 0
        i = 0
        while done < size:
            piece = (chunk[i % 4096:] + chunk[: i % 4096])[: min(len(chunk), size - done)]
            f.write(piece)
            done += len(piece)
            i += 7


def warm(path: str) -> None:
    """Read the whole file through the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        while os.read(fd, 1 << 22):
            pass
    finally:
        os.close(fd)


def residency(path: str) -> float:
    """Fraction of the file's pages resident in the page cache (mincore)."""
    from uring.buffers import PinnedBuffer  # the address of a read-only mapping

    size = os.path.getsize(path)
    if size == 0:
        return 1.0
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vec = (ctypes.c_ubyte * pages)()
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ)
        try:
            pinned = PinnedBuffer(m)
            try:
                if _libc.mincore(ctypes.c_void_p(pinned.address), size, vec) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"mincore: {os.strerror(err)}")
            finally:
                pinned.release()
        finally:
            m.close()
    return sum(v & 1 for v in vec) / pages


def ensure_hot(path: str, min_fraction: float = 0.99) -> float:
    """Warm *path* and return its residency; raise if the cache cannot hold it."""
    warm(path)
    frac = residency(path)
    if frac < min_fraction:
        warm(path)
        frac = residency(path)
    if frac < min_fraction:
        raise RuntimeError(
            f"only {frac:.0%} of {path} stays in the page cache: the buffered "
            "figures would measure the disk; use a smaller --size"
        )
    return frac

"""Fault injection at the engines' kernel boundary.

The kernel does not hand out short reads in the middle of a file, or
``-EAGAIN`` for a regular file read, on demand.  ``IoFaults`` makes them the
way the kernel would: a *short count* passes a shorter length to the real
kernel (so the transfer really is partial and the rest must be resubmitted),
and an *errno* fault completes a request with ``-errno`` without it
reaching the kernel, as if the kernel had refused it before doing anything.
Every other request goes to the real kernel untouched.
"""

from __future__ import annotations

import errno as _errno
from typing import List

__all__ = ["IoFaults"]


class IoFaults:
    """Deterministic faults: every *short_every*-th data transfer is cut to
    half (at least one *granule*, e.g. the O_DIRECT block size, so it stays
    aligned), every *error_every*-th request fails once with *error*, and
    the first *stall_writes* writes are passed to the kernel with length 0
    (so the kernel really answers "0 bytes written": no progress)."""

    def __init__(self, *, short_every: int = 0, error_every: int = 0,
                 error: int = _errno.EAGAIN, granule: int = 1, stall_writes: int = 0) -> None:
        self.short_every = short_every
        self.stall_writes = stall_writes
        self.error_every = error_every
        self.error = error
        self.granule = granule
        self.transfers = 0
        self.requests = 0
        self.shortened = 0
        self.errors = 0

    def shorten(self, views: List[memoryview], writing: bool = False) -> List[memoryview]:
        self.transfers += 1
        if writing and self.stall_writes:
            self.stall_writes -= 1  # a zero-length write: the kernel answers 0
            self.shortened += 1
            return [views[0][:0]] if views else views
        if not self.short_every or self.transfers % self.short_every:
            return views
        size = sum(v.nbytes for v in views)
        keep = (size // 2) // self.granule * self.granule
        if keep <= 0 or keep >= size:
            return views
        self.shortened += 1
        out = []
        for v in views:
            if keep <= 0:
                break
            out.append(v[:keep])
            keep -= min(keep, v.nbytes)
        return out

    def error_for_next(self) -> int:
        """0, or the errno the next request should fail with."""
        self.requests += 1
        if self.error_every and self.requests % self.error_every == 0:
            self.errors += 1
            return self.error
        return 0

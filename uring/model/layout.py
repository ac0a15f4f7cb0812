"""``io_uring_setup``'s arithmetic: how big the rings are and where each
shared word lives, as the kernel computes them.

The ring memory is ``struct io_rings`` (the kernel's private header):

====================  ======  ======================================
field                 offset  who writes it
====================  ======  ======================================
``sq.head``               0   kernel (consumes SQEs)
``sq.tail``               4   user (publishes SQEs)
``cq.head``               8   user (frees CQE slots)
``cq.tail``              12   kernel (posts CQEs)
``sq_ring_mask``         16   kernel, once
``cq_ring_mask``         20   kernel, once
``sq_ring_entries``      24   kernel, once
``cq_ring_entries``      28   kernel, once
``sq_dropped``           32   kernel (invalid SQ array index)
``sq_flags``             36   kernel (``IORING_SQ_*``)
``cq_flags``             40   user (``IORING_CQ_*``)
``cq_overflow``          44   kernel (CQEs lost for good)
``cqes[]``               64   kernel (cache-line aligned)
``sq_array[]``    after cqes  user (unless ``IORING_SETUP_NO_SQARRAY``)
====================  ======  ======================================

``io_uring_params.sq_off``/``cq_off`` carry these offsets to user space,
which must use them rather than assume them: this table is what the 6.x
kernels use, checked against the running kernel by the differential tests.
"""

from __future__ import annotations

import errno
from typing import Tuple

from .. import abi

__all__ = ["IORING_MAX_CQ_ENTRIES", "IORING_MAX_ENTRIES", "Layout", "ring_sizes"]

IORING_MAX_ENTRIES = 32768
IORING_MAX_CQ_ENTRIES = 2 * IORING_MAX_ENTRIES
CACHE_LINE = 64

SQ_HEAD, SQ_TAIL, CQ_HEAD, CQ_TAIL = 0, 4, 8, 12
SQ_RING_MASK, CQ_RING_MASK, SQ_RING_ENTRIES, CQ_RING_ENTRIES = 16, 20, 24, 28
SQ_DROPPED, SQ_FLAGS, CQ_FLAGS, CQ_OVERFLOW = 32, 36, 40, 44
CQES = 64


def _roundup_pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def ring_sizes(entries: int, flags: int, cq_entries: int) -> Tuple[int, int]:
    """(sq_entries, cq_entries) as ``io_uring_create`` settles them, or
    ``OSError(EINVAL)``: 0 entries; more than ``IORING_MAX_ENTRIES`` without
    ``IORING_SETUP_CLAMP``; with ``IORING_SETUP_CQSIZE`` a CQ of 0, or over
    ``IORING_MAX_CQ_ENTRIES`` without clamp, or smaller than the SQ (after
    rounding both up to powers of two).  Without ``CQSIZE`` the CQ is twice
    the SQ."""
    if entries == 0:
        raise OSError(errno.EINVAL, "io_uring_setup: entries must be at least 1")
    if entries > IORING_MAX_ENTRIES:
        if not flags & abi.IORING_SETUP_CLAMP:
            raise OSError(errno.EINVAL, f"io_uring_setup: {entries} > IORING_MAX_ENTRIES")
        entries = IORING_MAX_ENTRIES
    sq = _roundup_pow2(entries)
    if flags & abi.IORING_SETUP_CQSIZE:
        if cq_entries == 0:
            raise OSError(errno.EINVAL, "io_uring_setup: IORING_SETUP_CQSIZE with cq_entries 0")
        if cq_entries > IORING_MAX_CQ_ENTRIES:
            if not flags & abi.IORING_SETUP_CLAMP:
                raise OSError(errno.EINVAL, f"io_uring_setup: cq_entries {cq_entries} too large")
            cq_entries = IORING_MAX_CQ_ENTRIES
        cq = _roundup_pow2(cq_entries)
        if cq < sq:
            raise OSError(errno.EINVAL, f"io_uring_setup: cq_entries {cq} < sq_entries {sq}")
    else:
        cq = 2 * sq
    return sq, cq


class Layout:
    """Where everything is, for one ring: byte offsets into the ring memory
    (SQ and CQ rings share it: ``IORING_FEAT_SINGLE_MMAP``) and the SQE array."""

    def __init__(self, sq_entries: int, cq_entries: int, flags: int) -> None:
        self.sq_entries, self.cq_entries = sq_entries, cq_entries
        self.sqe_size = 128 if flags & abi.IORING_SETUP_SQE128 else 64
        self.cqe_size = 32 if flags & abi.IORING_SETUP_CQE32 else 16
        self.no_sqarray = bool(flags & abi.IORING_SETUP_NO_SQARRAY)
        end_of_cqes = CQES + cq_entries * self.cqe_size
        if self.no_sqarray:
            self.sq_array = 0
            self.rings_size = end_of_cqes
        else:
            self.sq_array = -(-end_of_cqes // CACHE_LINE) * CACHE_LINE
            self.rings_size = self.sq_array + sq_entries * 4
        self.sqes_size = sq_entries * self.sqe_size

    def fill(self, p: abi.io_uring_params) -> None:
        """The offsets, as ``io_uring_setup`` writes them into ``sq_off``/``cq_off``."""
        p.sq_off.head, p.sq_off.tail = SQ_HEAD, SQ_TAIL
        p.sq_off.ring_mask, p.sq_off.ring_entries = SQ_RING_MASK, SQ_RING_ENTRIES
        p.sq_off.flags, p.sq_off.dropped = SQ_FLAGS, SQ_DROPPED
        p.sq_off.array = self.sq_array
        p.cq_off.head, p.cq_off.tail = CQ_HEAD, CQ_TAIL
        p.cq_off.ring_mask, p.cq_off.ring_entries = CQ_RING_MASK, CQ_RING_ENTRIES
        p.cq_off.overflow, p.cq_off.cqes, p.cq_off.flags = CQ_OVERFLOW, CQES, CQ_FLAGS

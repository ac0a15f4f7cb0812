"""Provided-buffer rings (``IORING_REGISTER_PBUF_RING``): buffers the kernel
picks from at the moment data arrives.

A receive that names a buffer *group* (``IOSQE_BUFFER_SELECT`` with
``buf_group``) instead of a buffer takes the next free buffer of that group
only when there is data to put in it, so 1,000 idle sockets need no 1,000
idle buffers.  The completion says which buffer it got
(``IORING_CQE_F_BUFFER``, the buffer id in ``flags >> IORING_CQE_BUFFER_SHIFT``).

The ring of free buffers is a third ring shared with the kernel, with the
same single-writer rule as the SQ and CQ: it is an array of
``io_uring_buf`` (addr, len, bid) that *we* fill and publish by moving the
``tail``, a ``u16`` that overlays the ``resv`` field of entry 0 (so entry
0's ``resv`` is never written as part of an entry).  The kernel consumes
from its own head, which it does not share (``IORING_REGISTER_PBUF_STATUS``
reads it).  Publishing the tail is a release store: the entries must be
visible before the tail that says they are there.  Unlike the SQ, the
kernel never tells us it consumed an entry except through the CQE that
names the buffer: a buffer is ours again only after that CQE, and goes back
to the kernel when we add it to the ring again (``recycle``).

The ring memory and the buffers are anonymous mappings (page aligned, as
the kernel requires of ``ring_addr``), held by this object, which the
``Ring`` holds while the group is registered and every request that may
select from it holds until its final CQE.
"""

from __future__ import annotations

import ctypes
import mmap
import struct
from typing import Any, Iterable

from . import abi, barriers
from .buffers import PinnedBuffer

__all__ = ["BufferRing"]

_ENTRY = struct.Struct("<QIH")  # io_uring_buf without resv: entry 0's resv is the tail
_TAIL_INDEX = 7  # the u16 at byte 14
_MAX_ENTRIES = 1 << 15


class BufferRing:
    """*entries* buffers of *size* bytes, provided to the kernel as group
    *group* through a ring of *entries* slots.  Made by
    ``Ring.register_buf_ring``; all buffers start out in the ring."""

    def __init__(self, register: Any, group: int, entries: int, size: int) -> None:
        if not 1 <= entries <= _MAX_ENTRIES or entries & (entries - 1):
            raise ValueError(f"entries must be a power of two up to {_MAX_ENTRIES}, got {entries}")
        if size < 1 or size > 0xFFFFFFFF:
            raise ValueError(f"buffer size must be 1..2**32-1 bytes, got {size}")
        if not 0 <= group <= 0xFFFF:
            raise ValueError(f"buffer group must be a u16, got {group}")
        self.group = group
        self.entries = entries
        self.size = size
        self._mask = entries - 1
        self._ring_map = mmap.mmap(-1, max(entries * 16, mmap.PAGESIZE))
        self._pool_map = mmap.mmap(-1, entries * size)
        self._ring_pin = PinnedBuffer(self._ring_map, writable=True)
        self._pool_pin = PinnedBuffer(self._pool_map, writable=True)
        self._pool = memoryview(self._pool_map)
        self._tail_word = memoryview(self._ring_map).cast("H")
        self._tail = 0
        self._registered = False
        self._register = register
        reg = abi.io_uring_buf_reg()
        reg.ring_addr = self._ring_pin.address
        reg.ring_entries = entries
        reg.bgid = group
        register(abi.IORING_REGISTER_PBUF_RING, ctypes.addressof(reg), 1)
        self._registered = True
        self.recycle(range(entries))

    def unregistered(self) -> None:
        """The ring has unregistered this group (``IORING_UNREGISTER_PBUF_RING``):
        the kernel no longer picks from it."""
        self._registered = False

    @property
    def address(self) -> int:
        """Where buffer 0 starts; buffer *bid* is ``size`` bytes at
        ``address + bid * size``."""
        return self._pool_pin.address

    @property
    def memory(self) -> memoryview:
        """Every buffer as one view: buffer *bid* is ``memory[bid * size:
        (bid + 1) * size]`` (for a hot loop that slices it without the
        check ``buffer`` makes)."""
        return self._pool

    def buffer(self, bid: int) -> memoryview:
        """Buffer *bid*, whole (valid until the buffer ring is closed)."""
        if not 0 <= bid < self.entries:
            raise ValueError(f"buffer id {bid} is not in group {self.group} ({self.entries} buffers)")
        return self._pool[bid * self.size: (bid + 1) * self.size]

    def recycle(self, bids: Iterable[int]) -> None:
        """Give buffers back to the kernel: write an entry per buffer past
        the tail, then publish the new tail (one release store)."""
        tail, mask, ring, size, base = self._tail, self._mask, self._ring_map, self.size, self.address
        for bid in bids:
            if not 0 <= bid < self.entries:
                raise ValueError(f"buffer id {bid} is not in group {self.group}")
            _ENTRY.pack_into(ring, (tail & mask) * 16, base + bid * size, size, bid)
            tail += 1
        if tail != self._tail:
            self._tail = tail
            # Release: the entries above must be visible before the tail.
            barriers.store_release(self._tail_word, _TAIL_INDEX, tail & 0xFFFF)

    def take(self, completion: Any) -> bytes:
        """The bytes a completion received into its selected buffer (``res``
        of them), copied out; the buffer goes straight back to the kernel.
        A completion without ``IORING_CQE_F_BUFFER`` (an error, or EOF with
        nothing selected) gives ``b""``."""
        flags, res = completion.flags, completion.res
        if not flags & abi.IORING_CQE_F_BUFFER:
            return b""
        bid = flags >> abi.IORING_CQE_BUFFER_SHIFT
        data = bytes(self.buffer(bid)[: max(res, 0)])
        self.recycle((bid,))
        return data

    def head(self) -> int:
        """The kernel's head (``IORING_REGISTER_PBUF_STATUS``): how many
        buffers it has taken so far, as a u16 counter."""
        status = abi.io_uring_buf_status()
        status.buf_group = self.group
        self._register(abi.IORING_REGISTER_PBUF_STATUS, ctypes.addressof(status), 1)
        return int(status.head)

    @property
    def tail(self) -> int:
        """Our tail, as published (a u16 counter)."""
        return self._tail & 0xFFFF

    @property
    def registered(self) -> bool:
        return self._registered

    def __repr__(self) -> str:
        state = "registered" if self._registered else "unregistered"
        return f"<BufferRing group={self.group} {self.entries}x{self.size} tail={self.tail} {state}>"


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

Ownership.  Each buffer id is either the kernel's (published: at set-up and
by ``recycle``) or the user's (handed out by a CQE), one byte per id in
``_owned``.  Giving back a buffer the kernel still holds would list it
twice: the tail would run past the kernel's head by more than ``entries``,
overwriting entries it has not consumed yet, and the kernel would fill one
buffer for two receives.  So ``recycle`` and ``take`` accept only the
user's buffers, each once per call, and check that before writing an
entry.  A CQE may be reaped anywhere (``completions()``, raw words, the
asyncio driver), so this object does not see it; what it can see is the
kernel's head (``IORING_REGISTER_PBUF_STATUS``): the kernel consumes
entries in the order they were published and advances its head only when
it commits a buffer to a request (a socket's as its CQE is posted, a
regular file's when the read is issued), so every entry behind the head
was handed out, and the ``bid`` we wrote in it is the user's now (a bid
whose CQE is still to come cannot be told from one whose CQE was read).
The head is asked for (one ``io_uring_register``) only when a buffer is
not already known to be the user's: once per batch of completions, not
per buffer.  A buffer with
``IORING_CQE_F_BUF_MORE`` (incremental consumption) is still the kernel's:
its entry stays at the head.  Kernels before 6.8 lack the status call; there,
as on a closed ring (the kernel reads the entries no more), the caller's
word is taken, duplicates in one call still refused.

The ring memory and the buffers are anonymous mappings (page aligned, as
the kernel requires of ``ring_addr``), held by this object, which the
``Ring`` holds while the group is registered and every request that may
select from it holds until its final CQE.
"""

from __future__ import annotations

import collections
import ctypes
import errno
import itertools
import mmap
import struct
from typing import Any, Iterable, List

from . import abi, barriers
from .buffers import PinnedBuffer
from .errors import RingClosedError

__all__ = ["BufferRing"]

_ENTRY = struct.Struct("<QIH")  # io_uring_buf without resv: entry 0's resv is the tail
_TAIL_INDEX = 7  # the u16 at byte 14
_MAX_ENTRIES = 1 << 15
_BID_WORD = 6  # an entry's bid, in u16 words from its start (8 words an entry)
_F_BUFFER = int(abi.IORING_CQE_F_BUFFER)
_F_BUF_MORE = int(abi.IORING_CQE_F_BUF_MORE)
_BUFFER_SHIFT = int(abi.IORING_CQE_BUFFER_SHIFT)
_PBUF_STATUS = int(abi.IORING_REGISTER_PBUF_STATUS)
_sink: "collections.deque[Any]" = collections.deque(maxlen=0)
_consume = _sink.extend  # runs an iterator out in C, keeping nothing
_ones = itertools.repeat(1)


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
        # Which buffers are the user's (1) rather than the kernel's (0), and
        # the kernel's head as far as we know it (a free-running count, like
        # _tail): every entry before it was handed out.
        self._owned = bytearray(b"\1" * entries)
        self._head = 0
        self._status: Any = abi.io_uring_buf_status()
        self._status.buf_group = group
        self._status_address = ctypes.addressof(self._status)
        self._can_ask = True  # False: no PBUF_STATUS (before 6.8) or the ring is closed
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
        the tail, then publish the new tail (one release store).

        Every buffer must be the user's (handed out by a completion and not
        given back since) and named once: anything else raises
        ``ValueError`` before an entry is written."""
        items: Any = bids if bids.__class__ is list or bids.__class__ is tuple else list(bids)
        n = len(items)
        if not n:
            return
        owned, entries = self._owned, self.entries
        if min(items) < 0 or max(items) >= entries:
            bad = next(b for b in items if not 0 <= b < entries)
            raise ValueError(f"buffer id {bad} is not in group {self.group}")
        if n > 1 and len(set(items)) != n:
            twice = sorted(b for b, k in collections.Counter(items).items() if k > 1)
            raise ValueError(f"recycle: buffer id {twice[0]} of group {self.group} is named "
                             "more than once; a buffer can be in the ring only once")
        if not all(map(owned.__getitem__, items)):
            self._claim(items, "recycle")
        tail, mask, ring, size, base = self._tail, self._mask, self._ring_map, self.size, self.address
        if tail + n - self._head > entries:  # pragma: no cover - ownership rules it out
            raise RuntimeError(f"buffer ring {self.group}: {tail + n - self._head} entries "
                               f"would be outstanding in a ring of {entries}")
        for bid in items:
            _ENTRY.pack_into(ring, (tail & mask) * 16, base + bid * size, size, bid)
            owned[bid] = 0
            tail += 1
        self._tail = tail
        # Release: the entries above must be visible before the tail.
        barriers.store_release(self._tail_word, _TAIL_INDEX, tail & 0xFFFF)

    def take(self, completion: Any) -> bytes:
        """The bytes a completion received into its selected buffer (``res``
        of them), copied out; the buffer goes straight back to the kernel.
        A completion without ``IORING_CQE_F_BUFFER`` (an error, or EOF with
        nothing selected) gives ``b""``.  A completion whose buffer was
        taken (or recycled) already is refused with ``ValueError``: the
        buffer is back in the kernel's hands, maybe refilled since."""
        flags, res = completion.flags, completion.res
        if not flags & _F_BUFFER:
            return b""
        bid = flags >> _BUFFER_SHIFT
        if bid >= self.entries:
            raise ValueError(f"buffer id {bid} is not in group {self.group} ({self.entries} buffers)")
        if flags & _F_BUF_MORE:
            raise ValueError(f"take: buffer {bid} of group {self.group} will receive more data "
                             "(IORING_CQE_F_BUF_MORE): it is still the kernel's")
        owned = self._owned
        if not owned[bid]:
            if res >= 0:
                self._claim((bid,), "take")
            elif not self._sync():
                self._trust((bid,))
            elif not owned[bid]:
                return b""  # a failure that left its buffer in the ring: nothing to give back
        size, tail = self.size, self._tail
        at = bid * size
        data = bytes(self._pool[at: at + min(res, size)]) if res > 0 else b""
        _ENTRY.pack_into(self._ring_map, (tail & self._mask) * 16, self.address + at, size, bid)
        owned[bid] = 0
        self._tail = tail = tail + 1
        barriers.store_release(self._tail_word, _TAIL_INDEX, tail & 0xFFFF)
        return data

    def _claim(self, bids: Any, op: str) -> None:
        """*bids* (some of them not known to be the user's) were handed out
        by the kernel: check with its head, or raise ``ValueError``."""
        owned = self._owned
        if not self._sync():
            self._trust(bids)
            return
        held: List[int] = [bid for bid in bids if not owned[bid]]
        if held:
            raise ValueError(
                f"{op}: buffer id{'s' if len(held) > 1 else ''} "
                f"{', '.join(map(str, held[:8]))}{' ...' if len(held) > 8 else ''} of group "
                f"{self.group} {'are' if len(held) > 1 else 'is'} in the kernel's hands: published "
                "to the ring and not handed out by a completion since (taken or recycled "
                "already?); giving it back again would list it twice"
            )

    def _trust(self, bids: Any) -> None:
        """Nothing to ask (a kernel without PBUF_STATUS, an unregistered
        group, a closed ring): take the caller's word that the kernel
        handed *bids* out, as before ownership was tracked, and count them
        as consumed."""
        owned = self._owned
        for bid in bids:
            if not owned[bid]:
                owned[bid] = 1
                self._head += 1

    def _sync(self) -> bool:
        """Ask the kernel's head and mark every buffer it consumed since we
        last asked as the user's.  False when it cannot be asked (no
        ``IORING_REGISTER_PBUF_STATUS``, before 6.8; a closed ring)."""
        if not self._can_ask or not self._registered:
            return False
        try:
            self._register(_PBUF_STATUS, self._status_address, 1)
        except RingClosedError:
            self._can_ask = False
            return False
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self._can_ask = False
            return False
        old = self._head
        new = old + ((self._status.head - old) & 0xFFFF)
        if new == old:
            return True
        if new > self._tail:  # pragma: no cover - the kernel consumes only what we published
            raise RuntimeError(f"buffer ring {self.group}: the kernel's head {new & 0xFFFF} "
                               f"is past our tail {self.tail}")
        # The bids of entries old..new-1, read back from the ring (the kernel
        # never writes an entry's bid), marked as the user's in C.
        words, mask, owned = self._tail_word, self._mask, self._owned
        start, count = old & mask, new - old
        first = min(count, self.entries - start)
        _consume(map(owned.__setitem__,
                     words[start * 8 + _BID_WORD: (start + first) * 8: 8], _ones))
        if count > first:
            _consume(map(owned.__setitem__, words[_BID_WORD: (count - first) * 8: 8], _ones))
        self._head = new
        return True

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


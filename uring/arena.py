"""A fixed-slot queue of reads or writes over one buffer arena.

For the loop that reads (or writes) the same-sized blocks again and again,
the way fio's io_uring engine does: one anonymous mapping cut into *slots*
buffers of *slot_size* bytes, pinned once (and, with *registered*, made
the ring's registered buffer table, so each request is a ``READ_FIXED``/
``WRITE_FIXED`` and the kernel skips pinning the pages per request).

Each slot's SQE is formatted once, at construction; ``submit`` copies the
chosen slots' SQEs into the SQ in one or two slices and writes only their
``off`` words (``RingCore.prep_copies``), and each slot's ``Request`` record
is made once and filed again on every use, so the arena stays held until
its final CQE like any request's memory.  ``reap`` takes the CQEs as the
CQ's own words (``RingCore.reap_words``) and hands back two arrays, the
slots and their results, with no Python object per CQE; a failed request
is a negative result at its index (``failures`` names each).

A slot's ``user_data`` is ``tag << 32 | slot``, *tag* unique per queue, so
these CQEs are told apart from the ring's other requests by one look at
the upper words: CQEs of other requests reaped here are kept in ``others``
(raw tuples, their records released as ``reap(raw=True)`` would), never
dropped.
"""

from __future__ import annotations

import itertools
import mmap
from array import array
from typing import Any, List, Sequence, Tuple

from . import abi
from .buffers import PinnedBuffer
from .errors import kernel_error
from .request import Request, op_name
from .ring import RingCore

__all__ = ["ArenaQueue"]

_TAGS = itertools.count(0x40000001)  # upper words: far from a ring's counter


class ArenaQueue:
    """*slots* fixed buffers of *slot_size* bytes on *ring*, for requests on
    *fd* (``IORING_OP_READ``, or ``WRITE`` with *write*); ``READ_FIXED``/
    ``WRITE_FIXED`` with *registered* (the arena becomes the ring's
    registered-buffer table: the ring must have none).  *fixed_file*: *fd*
    is a registered-file slot.  Single-threaded, like the ring."""

    def __init__(self, ring: RingCore, fd: int, slots: int, slot_size: int, *,
                 write: bool = False, registered: bool = False, fixed_file: bool = False) -> None:
        if not isinstance(slots, int) or not 1 <= slots <= 1 << 16:
            raise ValueError(f"slots must be 1..65536, got {slots!r}")
        if not isinstance(slot_size, int) or not 1 <= slot_size <= 1 << 30:
            raise ValueError(f"slot_size must be 1..2**30 bytes, got {slot_size!r}")
        if not isinstance(fd, int) or fd < 0:
            raise ValueError(f"bad file descriptor {fd!r}")
        self.ring = ring
        self.slots = slots
        self.slot_size = slot_size
        self.arena = mmap.mmap(-1, slots * slot_size)  # page-aligned: O_DIRECT works
        self._pin = PinnedBuffer(self.arena, writable=True)
        base = self._pin.address
        if registered:
            ring.register_buffers([self.arena])  # type: ignore[attr-defined]
            opcode = abi.IORING_OP_WRITE_FIXED if write else abi.IORING_OP_READ_FIXED
        else:
            opcode = abi.IORING_OP_WRITE if write else abi.IORING_OP_READ
        self.opcode = int(opcode)
        self.tag = next(_TAGS)
        flags = int(abi.IOSQE_FIXED_FILE) if fixed_file else 0
        size = ring.sqe_size
        self._words_per_sqe = size // 8
        self._templates: List[bytes] = []
        self._user_data: List[int] = []
        self._records: List[Request] = []
        one = bytearray(size)
        for slot in range(slots):
            ud = self.tag << 32 | slot
            abi.SQE_STRUCT.pack_into(one, 0, self.opcode, flags, 0, fd, 0, base + slot * slot_size,
                                     slot_size, 0, ud, 0, 0, 0, 0, 0)
            self._templates.append(bytes(one))
            self._user_data.append(ud)
            self._records.append(Request(ud, self.opcode, fd, self))
        self._busy: set = set()
        #: CQEs of the ring's other requests that ``reap`` took: raw tuples.
        self.others: List[Tuple[int, ...]] = []

    def buffer(self, slot: int) -> memoryview:
        """Slot *slot*'s bytes (what a read filled, what a write sends)."""
        if not 0 <= slot < self.slots:
            raise IndexError(f"slot {slot} of {self.slots}")
        return memoryview(self.arena)[slot * self.slot_size:(slot + 1) * self.slot_size]

    @property
    def in_flight(self) -> int:
        return len(self._busy)

    def submit(self, slots: Sequence[int], offsets: Sequence[int]) -> int:
        """Queue one request per slot, ``slots[i]`` at ``offsets[i]`` (-1:
        the file position); returns how many.  All or nothing: every slot
        valid, idle and given once, every offset in range, room in the SQ.  Nothing reaches the
        kernel until the ring submits (``reap(wait=...)`` does)."""
        n = len(slots)
        if len(offsets) != n:
            raise ValueError(f"{n} slots and {len(offsets)} offsets")
        try:
            offs = array("q", offsets)
            wanted = set(slots)
            templates = list(map(self._templates.__getitem__, slots))
        except (OverflowError, TypeError, IndexError) as exc:
            raise ValueError(f"{op_name(self.opcode)}: bad slot or offset ({exc})") from None
        if len(wanted) != n or min(slots, default=0) < 0:
            raise ValueError(f"{op_name(self.opcode)}: slots must be given once each and be >= 0")
        if n and min(offs) < -1:
            raise ValueError(f"{op_name(self.opcode)}: an offset is >= 0, or -1 for the file "
                             f"position; got {min(offs)}")
        if not self._busy.isdisjoint(wanted):
            raise ValueError(f"{op_name(self.opcode)}: slots {sorted(self._busy & wanted)[:4]} "
                             "are in flight")
        sqes = bytearray(b"".join(templates))
        # io_uring_sqe.off: -1 (the file position) is its all-ones u64, as in C
        memoryview(sqes).cast("Q")[1::self._words_per_sqe] = memoryview(offs).cast("B").cast("Q")
        self.ring.prep_copies(sqes, list(map(self._user_data.__getitem__, slots)),
                              list(map(self._records.__getitem__, slots)))
        self._busy |= wanted
        return n

    def reap(self, wait: int = 0) -> Tuple["array[int]", "array[int]"]:
        """Submit what is queued and, with *wait*, wait until at least that
        many CQEs are in the CQ; then take every completion there as two
        arrays: the slots (``array('I')``) and their results
        (``array('i')``: the byte count, or ``-errno``).  CQEs of other
        requests go to ``others``."""
        ring = self.ring
        if wait:
            ring.submit_and_wait(wait)
        elif ring.sq_ready:
            ring.submit()
        words = ring.reap_words()
        unit = ring.cqe_size // 8
        if unit != 2:
            words = array("Q", [w for i, w in enumerate(words) if i % unit < 2])
        halves = memoryview(words).cast("B").cast("I")  # u32 halves, little-endian
        if array("I", halves[1::4].tobytes()).count(self.tag) != len(words) // 2:
            words = self._split_others(words)
        return self.take(words)

    def owns(self, words: "array[int]") -> bool:
        """Whether every CQE in *words* (two words each: ``user_data``,
        ``res | flags << 32``) is one of this queue's."""
        halves = memoryview(words).cast("B").cast("I")  # u32 halves, little-endian
        return array("I", halves[1::4].tobytes()).count(self.tag) == len(words) // 2

    def take(self, words: "array[int]") -> Tuple["array[int]", "array[int]"]:
        """This queue's CQEs, reaped by whoever reaps the ring (two words
        each, all of them this queue's: see ``owns``), as ``reap`` returns
        them: the slots and their results; the slots are idle again."""
        halves = memoryview(words).cast("B").cast("I")
        slots = array("I", halves[0::4].tobytes())
        res = array("i", memoryview(words).cast("B").cast("i")[2::4].tobytes())
        self._busy.difference_update(slots)
        return slots, res

    def _split_others(self, words: "array[int]") -> "array[int]":
        mine = array("Q")
        for i in range(0, len(words), 2):
            ud, rest = words[i], words[i + 1]
            if ud >> 32 == self.tag:
                mine.append(ud)
                mine.append(rest)
            else:
                res = rest & 0xFFFFFFFF
                self.others.append((ud, res - (1 << 32) if res >> 31 else res, rest >> 32))
        return mine

    def failures(self, slots: "array[int]", res: "array[int]") -> List[Tuple[int, OSError]]:
        """``(slot, OSError)`` for every failed request of a ``reap`` (the
        op and the slot named)."""
        if not res or min(res) >= 0:
            return []
        return [(s, kernel_error(-r, op_name(self.opcode), f"arena slot {s}"))
                for s, r in zip(slots, res) if r < 0]

    def __repr__(self) -> str:
        return (f"<ArenaQueue {op_name(self.opcode)} {self.slots}x{self.slot_size} "
                f"in_flight={len(self._busy)}>")

    def __del__(self) -> Any:
        # The records hold this queue while the kernel may use the arena,
        # so a collected queue has nothing in flight: the pin can go.
        pin = getattr(self, "_pin", None)
        if pin is not None:
            pin.release()

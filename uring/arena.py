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

``AioArena`` is the same queue for Linux AIO (``uring.linux_aio``): each
slot's ``struct iocb`` formatted once, a submit writing only the chosen
slots' ``aio_offset`` words and handing their addresses to ``io_submit``,
the completion ring's ``io_event``s taken as words.  Both sit here, above
the ring and the AIO context they drive.
"""

from __future__ import annotations

import ctypes
import itertools
import mmap
import sys
from array import array
from collections import deque
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

from . import abi
from .buffers import PinnedBuffer
from .errors import kernel_error
from .linux_aio import IOCB_CMD_PREAD, IOCB_CMD_PWRITE, IOCB_FLAG_RESFD, AioContext, iocb
from .request import Request, op_name
from .ring import RingCore

__all__ = ["AioArena", "ArenaQueue", "SlotArena", "offsets_within"]

# a queue's tag, the upper word of its user_data / aio_data: far from a
# ring's counter and from AioContext.hold's keys
_TAGS = itertools.count(0x40000001)

# the most significant byte of each little- or big-endian 64-bit word
_TOP_BYTE = slice(7, None, 8) if sys.byteorder == "little" else slice(0, None, 8)
_FAST_HIGH = (0x7F << 56) - 1  # every value whose top byte is below 0x7f is <= this


def offsets_within(offs: "array[int]", low: int, high: int) -> bool:
    """Whether every offset in *offs* (an ``array('q')``) lies in
    *low*..*high*.  When *low* <= 0 and *high* >= 0x7EFF...FF (always, for
    file offsets) the top byte of each word tells it, no Python int made
    per offset: below 0x7f means 0 <= offset <= that bound.  Only a batch
    with a negative offset, or one near 2**63, takes the exact look."""
    if low <= 0 and high >= _FAST_HIGH:
        tops = offs.tobytes()[_TOP_BYTE]
        if not tops or max(tops) < 0x7F:
            return True
    return not offs or (min(offs) >= low and max(offs) <= high)



class SlotArena:
    """What both queues share: *slots* fixed buffers of *slot_size* bytes
    cut from one page-aligned anonymous mapping (``arena``), pinned for the
    queue's life, and the set of busy slots.  *tag* (unique per queue, in
    the upper 32 bits of each request's ``user_data``/``aio_data``) tells
    its completions apart from any other request's."""

    def __init__(self, fd: int, slots: int, slot_size: int) -> None:
        if not isinstance(slots, int) or not 1 <= slots <= 1 << 16:
            raise ValueError(f"slots must be 1..65536, got {slots!r}")
        if not isinstance(slot_size, int) or not 1 <= slot_size <= 1 << 30:
            raise ValueError(f"slot_size must be 1..2**30 bytes, got {slot_size!r}")
        if not isinstance(fd, int) or fd < 0:
            raise ValueError(f"bad file descriptor {fd!r}")
        self.slots = slots
        self.slot_size = slot_size
        self.tag = next(_TAGS)
        self.arena = mmap.mmap(-1, slots * slot_size)  # page-aligned: O_DIRECT works
        self._pin = PinnedBuffer(self.arena, writable=True)
        self._busy: set = set()

    def buffer(self, slot: int) -> memoryview:
        """Slot *slot*'s bytes (what a read filled, what a write sends)."""
        if not 0 <= slot < self.slots:
            raise IndexError(f"slot {slot} of {self.slots}")
        return memoryview(self.arena)[slot * self.slot_size:(slot + 1) * self.slot_size]

    @property
    def in_flight(self) -> int:
        """Slots submitted (or staged) whose completion is not taken yet."""
        return len(self._busy)

    def _what(self) -> str:
        """The op, for error messages."""
        raise NotImplementedError

    def _checked(self, slots: Sequence[int], offsets: Sequence[int], table: Sequence[Any],
                 low: int) -> Tuple["array[int]", set, List[Any]]:
        """A submit's slots and offsets, checked before anything is
        written: as many offsets as slots, ints, each offset in *low*..
        2**63-1, every slot valid (``table[slot]`` exists: what the queue
        keeps per slot, returned in slot order), given once and idle.
        Returns ``(offsets as array('q'), the set of slots, the table's
        entries)``; ``ValueError`` naming the op otherwise."""
        n = len(slots)
        if len(offsets) != n:
            raise ValueError(f"{n} slots and {len(offsets)} offsets")
        try:
            offs = offsets if isinstance(offsets, array) and offsets.typecode == "q" \
                else array("q", offsets)
            wanted = set(slots)
            picked = list(map(table.__getitem__, slots))
        except (OverflowError, TypeError, IndexError) as exc:
            raise ValueError(f"{self._what()}: bad slot or offset ({exc})") from None
        if len(wanted) != n or min(wanted, default=0) < 0:
            raise ValueError(f"{self._what()}: slots must be given once each and be "
                             f"0..{self.slots - 1}")
        if not offsets_within(offs, low, (1 << 63) - 1):
            raise ValueError(f"{self._what()}: an offset must be >= {low}"
                             f"{' (-1: the file position)' if low < 0 else ''}; got {min(offs)}")
        busy = self._busy
        if busy and not busy.isdisjoint(wanted):
            raise ValueError(f"{self._what()}: slots {sorted(busy & wanted)[:4]} are in flight")
        return offs, wanted, picked

    def __del__(self) -> Any:
        # Whoever submits holds the queue while the kernel may use the
        # arena (the ring's records of its SQEs, the engine's table), so a
        # collected queue has nothing in flight: the pin can go.
        pin = getattr(self, "_pin", None)
        if pin is not None:
            pin.release()


class ArenaQueue(SlotArena):
    """*slots* fixed buffers of *slot_size* bytes on *ring*, for requests on
    *fd* (``IORING_OP_READ``, or ``WRITE`` with *write*); ``READ_FIXED``/
    ``WRITE_FIXED`` with *registered* (the arena becomes the ring's
    registered-buffer table: the ring must have none).  *fixed_file*: *fd*
    is a registered-file slot.  Single-threaded, like the ring."""

    def __init__(self, ring: RingCore, fd: int, slots: int, slot_size: int, *,
                 write: bool = False, registered: bool = False, fixed_file: bool = False) -> None:
        super().__init__(fd, slots, slot_size)
        self.ring = ring
        base = self._pin.address
        if registered:
            ring.register_buffers([self.arena])  # type: ignore[attr-defined]
            opcode = abi.IORING_OP_WRITE_FIXED if write else abi.IORING_OP_READ_FIXED
        else:
            opcode = abi.IORING_OP_WRITE if write else abi.IORING_OP_READ
        self.opcode = int(opcode)
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
        self._slot_parts = list(zip(self._templates, self._user_data, self._records))
        #: CQEs of the ring's other requests that ``reap`` took: raw tuples.
        self.others: List[Tuple[int, ...]] = []

    def submit(self, slots: Sequence[int], offsets: Sequence[int]) -> int:
        """Queue one request per slot, ``slots[i]`` at ``offsets[i]`` (-1:
        the file position); returns how many.  All or nothing: every slot
        valid, idle and given once, every offset in range, room in the SQ.  Nothing reaches the
        kernel until the ring submits (``reap(wait=...)`` does)."""
        if not len(slots) and not len(offsets):
            return 0
        # each slot's (SQE template, user_data, record), made once
        offs, wanted, parts = self._checked(slots, offsets, self._slot_parts, -1)
        templates, user_data, records = zip(*parts)
        sqes = bytearray(b"".join(templates))
        # io_uring_sqe.off: -1 (the file position) is its all-ones u64, as in C
        memoryview(sqes).cast("Q")[1::self._words_per_sqe] = memoryview(offs).cast("B").cast("Q")
        # the slots were found given once just above (the ring still looks
        # for a user_data of theirs in flight, whoever filed it)
        self.ring.prep_copies(sqes, user_data, records, given_once=True)
        self._busy |= wanted
        return len(offs)

    def _what(self) -> str:
        return op_name(self.opcode)

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



# -- the Linux AIO counterpart ------------------------------------------------------------

_consume: Callable[[Iterable[Any]], None] = deque(maxlen=0).extend
_IOCB_WORDS = ctypes.sizeof(iocb) // 8
_OFFSET_WORD = iocb.aio_offset.offset // 8
# an event's u32 halves: data's low (the slot) and high (the tag), res's low
_LO = 0 if sys.byteorder == "little" else 1
_DATA_LO, _DATA_HI, _RES_LO = _LO, 1 - _LO, 4 + _LO


class AioArena(SlotArena):
    """*slots* fixed buffers of *slot_size* bytes cut from one page-aligned
    arena, each read (``IOCB_CMD_PREAD``, or ``PWRITE`` with *write*) on
    *fd* again and again at new offsets: the Linux AIO counterpart of
    ``uring.arena.ArenaQueue``, for a loop that keeps the same blocks
    moving with no Python object per request.

    Each slot has its ``struct iocb``, formatted once in one array of them
    (fd, opcode, the slot's buffer, *slot_size*, ``aio_data = tag << 32 |
    slot``; with *resfd*, ``IOCB_FLAG_RESFD`` and that eventfd), so a
    submit (``stage``) writes only the chosen slots' ``aio_offset`` words
    and their iocbs' addresses into a table of pointers kept for
    ``io_submit`` (``submit_staged``, a part of it per call).  Completions
    are taken as the ring's words (``AioContext.peek_words``), and
    ``take`` splits them into two arrays, the slots and their results (the
    byte count, or ``-errno``).  *tag* is unique per arena, so its events
    are told apart from ``hold``'s requests (whose ``aio_data`` is a small
    counter) by their upper word: ``owns``.

    The arena, the iocbs and the pointer table are this object's: whoever
    submits keeps it alive until every slot's event is taken (or the
    context is destroyed, which waits for them).  One thread.
    """

    def __init__(self, ctx: AioContext, fd: int, slots: int, slot_size: int, *,
                 write: bool = False, resfd: Optional[int] = None) -> None:
        ctx.ctx  # noqa: B018 - raises on a closed context
        super().__init__(fd, slots, slot_size)
        self.ctx = ctx
        self.write = write
        self.opcode = int(IOCB_CMD_PWRITE if write else IOCB_CMD_PREAD)
        base = self._pin.address
        # the iocbs and the pointer table: mappings of their own, never moved
        self._iocb_memory = mmap.mmap(-1, slots * ctypes.sizeof(iocb))
        self.iocbs = (iocb * slots).from_buffer(self._iocb_memory)
        first = ctypes.addressof(self.iocbs)
        for slot, cb in enumerate(self.iocbs):
            cb.aio_data = self.tag << 32 | slot
            cb.aio_lio_opcode = self.opcode
            cb.aio_fildes = fd
            cb.aio_buf = base + slot * slot_size
            cb.aio_nbytes = slot_size
            if resfd is not None:
                cb.aio_flags = int(IOCB_FLAG_RESFD)
                cb.aio_resfd = resfd
        self._pointer_memory = mmap.mmap(-1, slots * 8)
        self._pointers = (ctypes.c_void_p * slots).from_buffer(self._pointer_memory)
        self._pointers_address = ctypes.addressof(self._pointers)
        self._pointer_words = memoryview(self._pointer_memory).cast("Q")
        self._offset_words = memoryview(self._iocb_memory).cast("q")
        self._addresses = [first + slot * ctypes.sizeof(iocb) for slot in range(slots)]
        self._offset_index = [slot * _IOCB_WORDS + _OFFSET_WORD for slot in range(slots)]
        self._staged = 0
        #: events of other requests that ``reap`` took: ``(data, res, res2)``
        self.others: List[Tuple[int, int, int]] = []

    def _what(self) -> str:
        return "pwrite" if self.write else "pread"

    def stage(self, slots: Sequence[int], offsets: Sequence[int]) -> int:
        """Make *slots* ready for ``io_submit``, ``slots[i]`` at
        ``offsets[i]``: their offsets written into their iocbs, their
        iocbs' addresses into the pointer table (in order, from its
        start), and the slots busy; returns how many.  All or nothing:
        every slot valid, idle and given once, every offset an int >= 0,
        else ``ValueError`` and nothing changed.  Nothing reaches the
        kernel until ``submit_staged``."""
        if not len(slots) and not len(offsets):
            return 0
        offs, wanted, picked = self._checked(slots, offsets, self._addresses, 0)
        n = len(offs)
        addresses = array("Q", picked)
        self._pointer_words[:n] = addresses
        _consume(map(self._offset_words.__setitem__,
                     map(self._offset_index.__getitem__, slots), offs))
        self._busy |= wanted
        self._staged = n
        return n

    def submit_staged(self, start: int = 0, count: int = -1) -> int:
        """``io_submit`` of *count* (-1: all the rest) of the slots the last
        ``stage`` made ready, from the *start*-th: how many the kernel took
        (the first ones; fewer when it stopped at one it refuses, or ran
        out of room).  Raises the errno when it took none
        (``BlockingIOError``: try again later); the slots it did not take
        stay busy until given back with ``release``."""
        if count < 0:
            count = self._staged - start
        if not 0 <= start <= start + count <= self._staged:
            raise ValueError(f"{start}+{count} of {self._staged} staged slots")
        return self.ctx.submit_pointers(self._pointers_address + 8 * start, count)

    def release(self, slots: Sequence[int]) -> None:
        """Make *slots* idle again: staged ones the kernel never took."""
        self._busy.difference_update(slots)

    def submit(self, slots: Sequence[int], offsets: Sequence[int]) -> int:
        """``stage`` and ``submit_staged`` all of them: the number
        submitted.  When the kernel refuses one, those it did not take are
        idle again and the error is raised (those before it are in flight)."""
        n = self.stage(slots, offsets)
        at = 0
        try:
            while at < n:
                at += self.submit_staged(at)
        except OSError:
            self.release(list(slots)[at:])
            raise
        return n

    def owns(self, words: "array[int]") -> bool:
        """Whether every event in *words* (four words each, as
        ``peek_words`` gives them) is one of this arena's."""
        halves = memoryview(words).cast("B").cast("I")
        return array("I", halves[_DATA_HI::8].tobytes()).count(self.tag) == len(words) >> 2

    def take(self, words: "array[int]") -> Tuple["array[int]", "array[int]"]:
        """This arena's events (four words each, all of them its own: see
        ``owns``) as two arrays, the slots (``array('I')``) and their
        results (``array('i')``: bytes transferred, or ``-errno``); the
        slots are idle again."""
        raw = memoryview(words).cast("B")
        slots = array("I", raw.cast("I")[_DATA_LO::8].tobytes())
        res = array("i", raw.cast("i")[_RES_LO::8].tobytes())
        self._busy.difference_update(slots)
        return slots, res

    def reap(self, wait: bool = False) -> Tuple["array[int]", "array[int]"]:
        """On its own (no engine around it): take every event in the ring
        (with *wait*, waiting for one if there is none) as ``take`` gives
        them; events of other requests go to ``others`` (their ``hold``
        owners released)."""
        ctx = self.ctx
        words = ctx.peek_words()
        if not words and wait:
            words = ctx.wait_words(1)
        if not self.owns(words):
            mine = array("Q")
            for i in range(0, len(words), 4):
                if words[i] >> 32 == self.tag:
                    mine.extend(words[i:i + 4])
                else:
                    res = words[i + 2]
                    res2 = words[i + 3]
                    ctx.pop_owner(words[i])
                    self.others.append((words[i], res - (1 << 64) if res >> 63 else res,
                                        res2 - (1 << 64) if res2 >> 63 else res2))
            words = mine
        return self.take(words)

    def __repr__(self) -> str:
        return (f"<AioArena {self._what()} {self.slots}x{self.slot_size} "
                f"in_flight={len(self._busy)}>")


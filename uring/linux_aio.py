"""Linux native AIO (``io_setup`` & co.) through the raw system calls, no libaio.

This is what QEMU calls ``aio=native``: the older kernel asynchronous I/O
interface that predates io_uring, driven here with ctypes and libc's
``syscall(2)`` only.

The protocol (``include/uapi/linux/aio_abi.h``, ``fs/aio.c``):

- ``io_setup(nr_events, &ctx)`` creates a context able to hold *nr_events*
  requests in flight.  The kernel maps a *completion ring* into the process
  (a special anonymous mapping, ``[aio]`` in ``/proc/self/maps``) and the
  ``aio_context_t`` it stores in ``ctx`` is simply that mapping's user
  address.  The ring starts with a 32-byte header, ``struct aio_ring``
  (``id, nr, head, tail, magic, compat_features, incompat_features,
  header_length``), followed directly by ``nr`` ``struct io_event``.
- ``io_submit(ctx, n, iocbpp)`` takes an array of *pointers* to
  ``struct iocb`` (64 bytes each: opcode, fd, buffer, length, offset, an
  opaque ``aio_data`` echoed back, flags).  It returns how many it accepted,
  which may be fewer than *n*; it fails with an errno only when it accepted
  none (a bad fd, for instance, is refused here with ``EBADF``).
- Each finished request produces one ``struct io_event`` (``data``: the
  iocb's ``aio_data``; ``obj``: the iocb's address; ``res``: bytes
  transferred or a negative errno; ``res2``) in the ring: the kernel writes
  the event, then advances ``tail``.
- ``io_getevents(ctx, min_nr, nr, events, timeout)`` copies events out of
  the ring and advances ``head``.  But because the ring lives in user
  memory, user space may consume events itself with no system call at all:
  read ``tail``, copy the events from ``head`` up to it, store the new
  ``head``.  QEMU does exactly this (``io_getevents_peek`` /
  ``io_getevents_advance_and_peek`` in ``block/linux-aio.c``); see
  ``AioContext.peek``.
- An iocb may carry ``IOCB_FLAG_RESFD`` and an eventfd in ``aio_resfd``:
  the kernel then adds 1 to that eventfd per completion, so an event loop
  can poll the eventfd and reap from the ring when it becomes readable.
- ``io_destroy(ctx)`` cancels what it can, waits for the rest, and unmaps
  the ring.

Why ``O_DIRECT``: native AIO is only truly asynchronous for direct I/O.
For a file opened without ``O_DIRECT`` the page-cache path is taken
synchronously: a buffered read that misses the cache blocks *inside*
``io_submit`` until the data is read, and the event is already complete
when ``io_submit`` returns (buffered writes likewise copy into the page
cache, and may block on writeback or on filesystem locks).  With
``O_DIRECT`` the request is queued to the block layer and ``io_submit``
returns at once; the price is alignment: buffer address, length and offset
must be multiples of the device's logical block size (4096 is always safe),
otherwise the request fails with ``EINVAL``.

Every buffer (and iovec array, and iocb) handed to the kernel must stay
alive and unmoved until its event has been reaped.
"""

from __future__ import annotations

import ctypes
import enum
import errno as _errno
import os
import platform
import struct
import sys
import sysconfig
import threading
import time
from array import array
from itertools import repeat
from operator import itemgetter
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import barriers
from .errors import RingForkedError, kernel_error
from .syscalls import on_fork_in_child

_first = itemgetter(0)

__all__ = [
    "AIO_RING_MAGIC",
    "IOCB_CMD_FDSYNC",
    "IOCB_CMD_FSYNC",
    "IOCB_CMD_NOOP",
    "IOCB_CMD_POLL",
    "IOCB_CMD_PREAD",
    "IOCB_CMD_PREADV",
    "IOCB_CMD_PWRITE",
    "IOCB_CMD_PWRITEV",
    "IOCB_FLAG_IOPRIO",
    "IOCB_FLAG_RESFD",
    "SYSCALL_NUMBERS",
    "AioContext",
    "IocbCmd",
    "IocbFlag",
    "aio_abi",
    "aio_ring",
    "io_event",
    "iocb",
    "syscall_numbers",
]


class IocbCmd(enum.IntEnum):
    """``aio_lio_opcode`` values (``enum { IOCB_CMD_* }`` in aio_abi.h)."""

    IOCB_CMD_PREAD = 0
    IOCB_CMD_PWRITE = 1
    IOCB_CMD_FSYNC = 2
    IOCB_CMD_FDSYNC = 3
    # 4 was IOCB_CMD_PREADX, never implemented.
    IOCB_CMD_POLL = 5
    IOCB_CMD_NOOP = 6
    IOCB_CMD_PREADV = 7
    IOCB_CMD_PWRITEV = 8


class IocbFlag(enum.IntFlag):
    """``aio_flags`` bits."""

    IOCB_FLAG_RESFD = 1 << 0
    IOCB_FLAG_IOPRIO = 1 << 1


IOCB_CMD_PREAD = IocbCmd.IOCB_CMD_PREAD
IOCB_CMD_PWRITE = IocbCmd.IOCB_CMD_PWRITE
IOCB_CMD_FSYNC = IocbCmd.IOCB_CMD_FSYNC
IOCB_CMD_FDSYNC = IocbCmd.IOCB_CMD_FDSYNC
IOCB_CMD_POLL = IocbCmd.IOCB_CMD_POLL
IOCB_CMD_NOOP = IocbCmd.IOCB_CMD_NOOP
IOCB_CMD_PREADV = IocbCmd.IOCB_CMD_PREADV
IOCB_CMD_PWRITEV = IocbCmd.IOCB_CMD_PWRITEV
IOCB_FLAG_RESFD = IocbFlag.IOCB_FLAG_RESFD
IOCB_FLAG_IOPRIO = IocbFlag.IOCB_FLAG_IOPRIO

#: ``aio_ring.magic`` of a ring user space may read (``fs/aio.c``).
AIO_RING_MAGIC = 0xA10A10A1


# aio_abi.h: ``__u32 PADDED(aio_key, aio_rw_flags)``, where PADDED puts the
# first argument first on little-endian and second on big-endian machines.
if sys.byteorder == "little":
    _KEY_AND_RW_FLAGS: List[Tuple[str, type]] = [
        ("aio_key", ctypes.c_uint32),
        ("aio_rw_flags", ctypes.c_int32),
    ]
else:
    _KEY_AND_RW_FLAGS = [
        ("aio_rw_flags", ctypes.c_int32),
        ("aio_key", ctypes.c_uint32),
    ]


class iocb(ctypes.Structure):
    """``struct iocb``: one request, 64 bytes on every architecture."""

    _fields_ = [
        ("aio_data", ctypes.c_uint64),
        *_KEY_AND_RW_FLAGS,
        ("aio_lio_opcode", ctypes.c_uint16),
        ("aio_reqprio", ctypes.c_int16),
        ("aio_fildes", ctypes.c_uint32),
        ("aio_buf", ctypes.c_uint64),
        ("aio_nbytes", ctypes.c_uint64),
        ("aio_offset", ctypes.c_int64),
        ("aio_reserved2", ctypes.c_uint64),
        ("aio_flags", ctypes.c_uint32),
        ("aio_resfd", ctypes.c_uint32),
    ]


class io_event(ctypes.Structure):
    """``struct io_event``: one completion, 32 bytes."""

    _fields_ = [
        ("data", ctypes.c_uint64),
        ("obj", ctypes.c_uint64),
        ("res", ctypes.c_int64),
        ("res2", ctypes.c_int64),
    ]


class aio_ring(ctypes.Structure):
    """``struct aio_ring`` (``fs/aio.c``): the 32-byte header of the
    completion ring; ``struct io_event io_events[nr]`` follows it."""

    _fields_ = [
        ("id", ctypes.c_uint32),
        ("nr", ctypes.c_uint32),
        ("head", ctypes.c_uint32),
        ("tail", ctypes.c_uint32),
        ("magic", ctypes.c_uint32),
        ("compat_features", ctypes.c_uint32),
        ("incompat_features", ctypes.c_uint32),
        ("header_length", ctypes.c_uint32),
    ]


class _timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_HEAD_OFFSET = aio_ring.head.offset
_TAIL_OFFSET = aio_ring.tail.offset
_EVENTS_OFFSET = ctypes.sizeof(aio_ring)
_EVENT_SIZE = ctypes.sizeof(io_event)

#: Per ABI: (io_setup, io_destroy, io_getevents, io_submit, io_cancel).
SYSCALL_NUMBERS: Dict[str, Tuple[int, int, int, int, int]] = {
    "x86_64": (206, 207, 208, 209, 210),
    # asm-generic/unistd.h: setup 0, destroy 1, submit 2, cancel 3, getevents 4.
    "generic": (0, 1, 4, 2, 3),
    "i386": (245, 246, 247, 248, 249),
    "arm": (243, 244, 245, 246, 247),
    "ppc64": (227, 228, 229, 230, 231),
    "s390x": (243, 244, 245, 246, 247),
}


def aio_abi(machine: str = "", pointer_size: int = 0, multiarch: str = "") -> str:
    """Name the native AIO system call table of this process (or of the
    given facts), a key of ``SYSCALL_NUMBERS``; raise ``OSError(ENOSYS)``
    for an ABI whose numbers this module does not know."""
    machine = (machine or platform.machine()).lower()
    pointer_size = pointer_size or struct.calcsize("P")
    if not multiarch:
        multiarch = str(sysconfig.get_config_var("MULTIARCH") or "")
    if machine in ("x86_64", "amd64"):
        if pointer_size == 8:
            return "x86_64"
        if "x32" in multiarch:
            raise OSError(_errno.ENOSYS, "native AIO: the x32 ABI is not supported")
        return "i386"
    if machine in ("i386", "i486", "i586", "i686", "x86"):
        return "i386"
    if machine.startswith("arm") or machine in ("aarch64", "arm64", "aarch64_be"):
        # A 32-bit process on a 64-bit ARM kernel uses the arm (EABI) table.
        return "generic" if pointer_size == 8 else "arm"
    if machine.startswith(("riscv", "loongarch")):
        return "generic"
    if machine.startswith(("ppc", "powerpc")):
        return "ppc64"
    if machine.startswith("s390"):
        return "s390x"
    raise OSError(_errno.ENOSYS, f"native AIO: unknown system call numbers for {machine!r}")


def syscall_numbers(abi: str = "") -> Tuple[int, int, int, int, int]:
    """(io_setup, io_destroy, io_getevents, io_submit, io_cancel) for *abi*."""
    return SYSCALL_NUMBERS[abi or aio_abi()]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class AioContext:
    """One ``aio_context_t``: submit iocbs, reap io_events.

    Not thread safe on its own for submission ordering, but ``peek`` and
    ``getevents`` hold one lock, because both move the ring's ``head`` and
    must not consume the same events twice.

    The context can also remember, for each request in flight, an *owner*
    (whatever the caller wants back with the event: a block request) and
    what must stay alive until the event (the iocb, its iovec array): the
    one table, keyed by the ``aio_data`` it hands out (``hold``), emptied by
    ``peek_owned`` as the events arrive, so a caller keeps no table of its
    own (the ``aio_data`` counterpart of io_uring's ``set_owner``).
    """

    def __init__(self, nr_events: int) -> None:
        # aio_data -> (owner, kept alive): requests in flight filed by hold()
        self._owners: Dict[int, Tuple[Any, Any]] = {}
        self._set_up_by = os.getpid()
        self.forked = False  # set in a fork child: the context is the parent's
        self._next_data = 1
        if nr_events <= 0:
            raise ValueError("nr_events must be positive")
        (self._nr_setup, self._nr_destroy, self._nr_getevents, self._nr_submit, _) = syscall_numbers()
        self._ctx = 0
        self._lock = threading.Lock()
        ctx = ctypes.c_ulong(0)
        ret = _syscall(
            ctypes.c_long(self._nr_setup), ctypes.c_long(nr_events), ctypes.c_void_p(ctypes.addressof(ctx))
        )
        if ret < 0:
            raise kernel_error(ctypes.get_errno(), "io_setup")
        self._ctx = ctx.value
        on_fork_in_child(self, "_in_fork_child")
        self.nr_events = nr_events
        # the ring's layout, checked once (peek_words): (nr, head word,
        # tail word, address of the events), or False when it is not the
        # one known here
        self._layout: Any = None
        self._events_out: Any = None  # wait_words' io_event buffer
        self._submit_args: Any = None  # submit_pointers': the call number and the context

    # -- lifetime --------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._ctx == 0

    @property
    def ctx(self) -> int:
        """The ``aio_context_t``: the user address of the completion ring."""
        return self._check()

    def _check(self) -> int:
        if self._ctx == 0:
            if self.forked:
                raise RingForkedError(
                    f"this AIO context was set up by process {self._set_up_by} and cannot be used in "
                    f"the forked child {os.getpid()}: set up a new one in the child")
            raise ValueError("I/O operation on a closed AioContext")
        return self._ctx

    def _in_fork_child(self) -> None:
        """In a fork child: the context is the parent's.  The child's
        memory has no AIO context (``io_submit`` there says ``EINVAL``),
        but the completion ring's mapping is shared with the parent's:
        reading events from it here would take them from the parent.  So
        the child forgets the context without touching it: no look at the
        ring, no ``io_destroy``; every later use raises
        ``RingForkedError``."""
        if self._ctx:
            self._ctx = 0
            self.forked = True
            self._owners = {}

    def close(self) -> None:
        """``io_destroy``: idempotent.

        The kernel cancels what it can and then *waits* for every request
        still in flight to finish before the call returns and the ring is
        unmapped, so after ``close`` no buffer is in use by the kernel any
        more (their events are discarded)."""
        ctx, self._ctx = self._ctx, 0
        if ctx == 0:
            return
        ret = _syscall(ctypes.c_long(self._nr_destroy), ctypes.c_ulong(ctx))
        if ret < 0:
            raise kernel_error(ctypes.get_errno(), "io_destroy")
        self._owners.clear()  # the kernel is done with every request

    def __enter__(self) -> AioContext:
        self._check()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self._ctx == 0 else f"ctx={self._ctx:#x}"
        return f"<AioContext nr_events={getattr(self, 'nr_events', 0)} {state}>"

    # -- submission ------------------------------------------------------

    def submit(self, iocbs: Sequence[iocb]) -> int:
        """``io_submit``: hand *iocbs* to the kernel; the number accepted.

        Fewer than ``len(iocbs)`` may be accepted (the first ones); the rest
        were not seen and may be submitted again.  When none is accepted the
        errno is raised (``BlockingIOError`` for ``EAGAIN``, ``EBADF`` for a
        bad fd, ...).  ``EINTR`` is retried."""
        ctx = self._check()
        n = len(iocbs)
        if n == 0:
            return 0
        pointers = (ctypes.c_void_p * n)(*(ctypes.addressof(cb) for cb in iocbs))
        while True:
            ret = _syscall(
                ctypes.c_long(self._nr_submit),
                ctypes.c_ulong(ctx),
                ctypes.c_long(n),
                ctypes.c_void_p(ctypes.addressof(pointers)),
            )
            if ret >= 0:
                return int(ret)
            err = ctypes.get_errno()
            if err != _errno.EINTR:
                raise kernel_error(err, "io_submit")

    def submit_pointers(self, address: int, n: int) -> int:
        """``io_submit`` of a table of *n* ``iocb`` pointers at *address*
        (memory the caller keeps, as ``AioArena`` does): the number
        accepted, as ``submit``; raises when none is."""
        args = self._submit_args
        if args is None or args[1].value != self._ctx:
            args = self._submit_args = (ctypes.c_long(self._nr_submit), ctypes.c_ulong(self._check()))
        if n <= 0:
            return 0
        while True:
            ret = _syscall(args[0], args[1], ctypes.c_long(n), ctypes.c_void_p(address))
            if ret >= 0:
                return int(ret)
            err = ctypes.get_errno()
            if err != _errno.EINTR:
                raise kernel_error(err, "io_submit")

    # -- completion ------------------------------------------------------

    def getevents(
        self, min_nr: int, max_nr: int, timeout: Optional[float] = None
    ) -> List[Tuple[int, int, int]]:
        """``io_getevents``: wait for at least *min_nr* events (at most
        *timeout* seconds; None waits forever) and return up to *max_nr*
        as ``(data, res, res2)``.  ``EINTR`` is retried with what is left
        of the timeout."""
        ctx = self._check()
        if max_nr <= 0:
            return []
        events = (io_event * max_nr)()
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        while True:
            if deadline is None:
                ts_pointer = ctypes.c_void_p(None)
            else:
                left = max(deadline - time.monotonic(), 0.0)
                ts = _timespec(int(left), int((left - int(left)) * 1e9))
                ts_pointer = ctypes.c_void_p(ctypes.addressof(ts))
            with self._lock:
                ret = _syscall(
                    ctypes.c_long(self._nr_getevents),
                    ctypes.c_ulong(ctx),
                    ctypes.c_long(min_nr),
                    ctypes.c_long(max_nr),
                    ctypes.c_void_p(ctypes.addressof(events)),
                    ts_pointer,
                )
            if ret >= 0:
                return [(ev.data, ev.res, ev.res2) for ev in events[:ret]]
            err = ctypes.get_errno()
            if err != _errno.EINTR:
                raise kernel_error(err, "io_getevents")

    def peek(self, max_nr: int) -> List[Tuple[int, int, int]]:
        """Reap up to *max_nr* completed events straight from the completion
        ring, without a system call (QEMU's ``io_getevents_peek``); never
        waits.  Returns ``(data, res, res2)`` like ``getevents``.

        Why this is safe: the ring is ordinary user memory.  The kernel
        (``aio_complete``) only *writes* events and then ``tail``; of
        ``head`` it only *reads* (``user_refill_reqs_available``, which is
        how it learns that slots were freed), except inside
        ``io_getevents``, which this object never runs concurrently with a
        peek (one lock).  So once the header's ``magic`` says the layout is
        the one known here, user space owns ``head``.  Ordering: the load of
        ``tail`` is an acquire (events read after it are the ones the kernel
        published before it), and the store of ``head`` a release (the
        copies are done before the kernel may reuse the slots).  If the
        magic or ``incompat_features`` is not as expected this falls back
        to ``getevents(0, max_nr, 0)``.
        """
        ctx = self._check()
        if max_nr <= 0:
            return []
        result: Optional[List[Tuple[int, int, int]]] = None
        with self._lock:
            header = aio_ring.from_address(ctx)
            nr = header.nr
            if header.magic == AIO_RING_MAGIC and header.incompat_features == 0 and nr != 0:
                head_word = ctypes.c_uint32.from_address(ctx + _HEAD_OFFSET)
                tail = ctypes.c_uint32.from_address(ctx + _TAIL_OFFSET).value
                if not barriers.STRONG_ORDERING:
                    barriers.acquire_fence()
                head = head_word.value
                if head < nr and tail < nr:
                    result = []
                    while head != tail and len(result) < max_nr:
                        ev = io_event.from_address(ctx + _EVENTS_OFFSET + head * _EVENT_SIZE)
                        result.append((int(ev.data), int(ev.res), int(ev.res2)))
                        head += 1
                        if head == nr:
                            head = 0
                    if result:
                        if not barriers.STRONG_ORDERING:
                            barriers.release_fence()
                        head_word.value = head
        if result is None:
            return self.getevents(0, max_nr, 0)
        return result

    def _ring_layout(self, ctx: int) -> Any:
        layout = self._layout
        if layout is None:
            header = aio_ring.from_address(ctx)
            nr = header.nr
            if header.magic == AIO_RING_MAGIC and header.incompat_features == 0 and nr != 0:
                layout = (nr, ctypes.c_uint32.from_address(ctx + _HEAD_OFFSET),
                          ctypes.c_uint32.from_address(ctx + _TAIL_OFFSET), ctx + _EVENTS_OFFSET)
            else:
                layout = False
            self._layout = layout
        return layout

    def peek_words(self) -> "array[int]":
        """``peek`` of every event in the ring, as its words: an
        ``array('Q')`` of four per event (``data, obj, res, res2``; ``res``
        is the two's complement of a negative one), copied in one or two
        pieces with no Python object per event and no system call (see
        ``peek`` for why, and for the barriers).  Events of ``hold``'s
        requests stay filed: ``pop_owner`` takes each owner back."""
        ctx = self._check()
        with self._lock:
            layout = self._layout if self._layout is not None else self._ring_layout(ctx)
            if layout:
                nr, head_word, tail_word, events = layout
                tail = tail_word.value
                if not barriers.STRONG_ORDERING:
                    barriers.acquire_fence()
                head = head_word.value
                if head == tail:
                    return array("Q")
                if head < nr and tail < nr:
                    if head < tail:
                        raw = ctypes.string_at(events + head * _EVENT_SIZE, (tail - head) * _EVENT_SIZE)
                    else:  # wrapped: the end of the ring, then its start
                        raw = (ctypes.string_at(events + head * _EVENT_SIZE, (nr - head) * _EVENT_SIZE)
                               + ctypes.string_at(events, tail * _EVENT_SIZE))
                    if not barriers.STRONG_ORDERING:
                        barriers.release_fence()
                    head_word.value = tail
                    return array("Q", raw)
        return self.wait_words(0, 0)

    def wait_words(self, min_nr: int, timeout: Optional[float] = None) -> "array[int]":
        """``io_getevents``: wait (at most *timeout* seconds; None: forever)
        until at least *min_nr* events are there, and take all there are,
        as ``peek_words`` does: one system call, the events as words."""
        ctx = self._check()
        out = self._events_out
        if out is None:
            layout = self._ring_layout(ctx)
            self._events_out = out = (io_event * (layout[0] if layout else self.nr_events))()
        ts_pointer = ctypes.c_void_p(None)
        if timeout is not None:
            ts = _timespec(int(max(timeout, 0.0)), int((max(timeout, 0.0) % 1) * 1e9))
            ts_pointer = ctypes.c_void_p(ctypes.addressof(ts))
        while True:
            with self._lock:
                ret = _syscall(ctypes.c_long(self._nr_getevents), ctypes.c_ulong(ctx),
                               ctypes.c_long(min_nr), ctypes.c_long(len(out)),
                               ctypes.c_void_p(ctypes.addressof(out)), ts_pointer)
            if ret >= 0:
                return array("Q", ctypes.string_at(ctypes.addressof(out), ret * _EVENT_SIZE))
            err = ctypes.get_errno()
            if err != _errno.EINTR:  # (an interrupted wait with a timeout starts over)
                raise kernel_error(err, "io_getevents")

    # -- owners: the one table of requests in flight ------------------------

    def hold(self, owner: Any, keep: Any = None) -> int:
        """File *owner* (and *keep*, whatever must stay alive and unmoved
        until the event is reaped: the iocb, its iovec array) under a fresh
        ``aio_data``, and return it: pass it as the ``data`` of a
        ``prep_*``.  ``peek_owned`` hands *owner* back with the event."""
        data = self._next_data
        self._next_data = data + 1
        self._owners[data] = (owner, keep)
        return data

    def release(self, data: int) -> Any:
        """Take back what ``hold`` filed under *data* for an iocb the kernel
        did not accept (``submit`` took fewer, or refused it); its owner."""
        return self._owners.pop(data)[0]

    def owner(self, data: int) -> Any:
        """The owner filed under *data* while its request is in flight, or None."""
        held = self._owners.get(data)
        return None if held is None else held[0]

    def pop_owner(self, data: int) -> Any:
        """The owner filed under *data*, released (its event has been
        taken: ``peek_words``); None if nothing is filed there."""
        held = self._owners.pop(data, None)
        return None if held is None else held[0]

    @property
    def in_flight(self) -> int:
        """Requests filed with ``hold`` whose event has not been reaped."""
        return len(self._owners)

    def peek_owned(self, max_nr: int) -> List[Tuple[Any, int, int]]:
        """``peek``, each event as ``(owner, res, res2)``: the owner ``hold``
        filed under its ``aio_data`` (released now), None for an event of an
        iocb filed without ``hold``."""
        events = self.peek(max_nr)
        if not events:
            return []
        # from the ring's head store to the return no Python code of ours
        # runs (C calls only): a signal handler's exception cannot break in
        # between and lose what was taken
        datas, results, results2 = zip(*events)
        owners = map(_first, map(self._owners.pop, datas, repeat((None, None))))
        return list(zip(owners, results, results2))

    # -- iocb preparation ------------------------------------------------

    @staticmethod
    def _prep(cb: iocb, opcode: int, fd: int, address: int, length: int, offset: int, data: int) -> None:
        ctypes.memset(ctypes.addressof(cb), 0, ctypes.sizeof(iocb))
        cb.aio_lio_opcode = opcode
        cb.aio_fildes = fd
        cb.aio_buf = address
        cb.aio_nbytes = length
        cb.aio_offset = offset
        cb.aio_data = data

    @staticmethod
    def prep_pread(cb: iocb, fd: int, address: int, length: int, offset: int, data: int = 0) -> None:
        """Fill *cb*: read *length* bytes at *offset* of *fd* into *address*."""
        AioContext._prep(cb, IOCB_CMD_PREAD, fd, address, length, offset, data)

    @staticmethod
    def prep_pwrite(cb: iocb, fd: int, address: int, length: int, offset: int, data: int = 0) -> None:
        """Fill *cb*: write *length* bytes from *address* at *offset* of *fd*."""
        AioContext._prep(cb, IOCB_CMD_PWRITE, fd, address, length, offset, data)

    @staticmethod
    def prep_preadv(
        cb: iocb, fd: int, iovec_array_address: int, iov_count: int, offset: int, data: int = 0
    ) -> None:
        """Fill *cb*: scatter-read at *offset* into *iov_count* ``struct iovec``."""
        AioContext._prep(cb, IOCB_CMD_PREADV, fd, iovec_array_address, iov_count, offset, data)

    @staticmethod
    def prep_pwritev(
        cb: iocb, fd: int, iovec_array_address: int, iov_count: int, offset: int, data: int = 0
    ) -> None:
        """Fill *cb*: gather-write *iov_count* ``struct iovec`` at *offset*."""
        AioContext._prep(cb, IOCB_CMD_PWRITEV, fd, iovec_array_address, iov_count, offset, data)

    @staticmethod
    def prep_fsync(cb: iocb, fd: int, data: int = 0) -> None:
        """Fill *cb*: ``fsync(fd)`` (not every filesystem supports it: EINVAL)."""
        AioContext._prep(cb, IOCB_CMD_FSYNC, fd, 0, 0, 0, data)

    @staticmethod
    def prep_fdsync(cb: iocb, fd: int, data: int = 0) -> None:
        """Fill *cb*: ``fdatasync(fd)``."""
        AioContext._prep(cb, IOCB_CMD_FDSYNC, fd, 0, 0, 0, data)

    @staticmethod
    def set_eventfd(cb: iocb, efd: int) -> None:
        """Have the kernel add 1 to eventfd *efd* when *cb* completes
        (``IOCB_FLAG_RESFD``), QEMU's completion notification mode.  Call
        after a ``prep_*``, which clears the flags."""
        cb.aio_flags |= int(IOCB_FLAG_RESFD)
        cb.aio_resfd = efd


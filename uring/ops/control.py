"""Control operations: NOP, polling, epoll, timeouts, cancellation, messages
between rings, futexes, waiting for children, legacy provided buffers, the
``URING_CMD`` passthrough, and pipes.

A NOP is the cheapest SQE there is: each slot remembers whether it already
holds a flagless NOP (``_slot_shape``), and then only its ``user_data`` word
is rewritten.  The kernel never writes the SQE array, so what we wrote last
is what is there.  NOP's test hooks (``IORING_NOP_*``) take a separate,
ordinary path.

The SQE layouts follow the kernel's prep functions (``io_uring/nop.c``,
``poll.c``, ``epoll.c``, ``timeout.c``, ``cancel.c``, ``msg_ring.c``,
``futex.c``, ``waitid.c``, ``kbuf.c``, ``uring_cmd.c``, ``openclose.c``);
liburing's ``io_uring_prep_*`` helpers fill the same fields.  Structures
that are not part of ``io_uring.h`` are defined here from their UAPI
headers: ``struct epoll_event`` (``include/uapi/linux/eventpoll.h``),
``struct futex_waitv`` (``include/uapi/linux/futex.h``) and ``siginfo_t``
(``include/uapi/asm-generic/siginfo.h``).
"""

from __future__ import annotations

import ctypes
import datetime
import os
import platform
import select
import struct
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from .. import abi
from ..buffers import PinnedBuffer
from ..errors import check_int
from ..ring import RingCore
from .base import OpsBase, Seconds, timespec

__all__ = [
    "EPOLL_CTL_ADD", "EPOLL_CTL_DEL", "EPOLL_CTL_MOD",
    "FUTEX2_NUMA", "FUTEX2_PRIVATE", "FUTEX2_SIZE_U8", "FUTEX2_SIZE_U16", "FUTEX2_SIZE_U32",
    "FUTEX2_SIZE_U64", "FUTEX_BITSET_MATCH_ANY", "FUTEX_WAITV_MAX",
    "ControlOps", "epoll_event", "futex_waitv", "siginfo_t",
]

_OP_NOP = int(abi.IORING_OP_NOP)

_U32 = 0xFFFFFFFF

# ---------------------------------------------------------------------------
# Values and structures from other UAPI headers

#: ``epoll_ctl`` operations (``include/uapi/linux/eventpoll.h``).
EPOLL_CTL_ADD = 1
EPOLL_CTL_DEL = 2
EPOLL_CTL_MOD = 3

#: futex2 flags (``include/uapi/linux/futex.h``): the word size (only
#: ``FUTEX2_SIZE_U32`` is implemented by 6.18), NUMA, and process-private
#: (without ``FUTEX2_PRIVATE`` the futex is shared: it may live in memory
#: mapped by several processes).
FUTEX2_SIZE_U8 = 0x00
FUTEX2_SIZE_U16 = 0x01
FUTEX2_SIZE_U32 = 0x02
FUTEX2_SIZE_U64 = 0x03
FUTEX2_NUMA = 0x04
FUTEX2_PRIVATE = 128
_FUTEX2_SIZE_MASK = 0x03
#: The bitset that matches every waiter.
FUTEX_BITSET_MATCH_ANY = 0xFFFFFFFF
#: At most this many futexes in one ``futex_waitv``.
FUTEX_WAITV_MAX = 128

_MACHINE = platform.machine().lower()
# ``struct epoll_event`` is __attribute__((packed)) on x86-64 only (12
# bytes, the i386 layout, so one compat path serves both); elsewhere the
# u64 is naturally aligned (16 bytes).  Packing is harmless on i386.
_EPOLL_PACKED = _MACHINE in ("x86_64", "amd64", "i386", "i486", "i586", "i686", "x86")


class epoll_event(ctypes.Structure):
    """``struct epoll_event``: ``u32 events`` + ``u64 data`` (12 bytes packed
    on x86-64, 16 elsewhere)."""

    if _EPOLL_PACKED:
        _pack_ = 1
    _fields_ = [("events", ctypes.c_uint32), ("data", ctypes.c_uint64)]


#: The kernel's ``EP_MAX_EVENTS``: ``INT_MAX / sizeof(struct epoll_event)``.
_EP_MAX_EVENTS = 0x7FFFFFFF // ctypes.sizeof(epoll_event)


class futex_waitv(ctypes.Structure):
    """``struct futex_waitv`` (``include/uapi/linux/futex.h``): one futex of
    a ``FUTEX_WAITV``: the expected value, the word's address, its futex2
    flags."""

    _fields_ = [
        ("val", ctypes.c_uint64),
        ("uaddr", ctypes.c_uint64),
        ("flags", ctypes.c_uint32),
        ("__reserved", ctypes.c_uint32),
    ]


class _sigchld(ctypes.Structure):
    _fields_ = [("si_pid", ctypes.c_int), ("si_uid", ctypes.c_uint), ("si_status", ctypes.c_int)]


_SI_MAX_SIZE = 128
_PTR = ctypes.sizeof(ctypes.c_void_p)
# __ARCH_SI_PREAMBLE_SIZE: three ints, rounded up to the union's (pointer) alignment.
_SI_PREAMBLE = (3 * 4 + _PTR - 1) // _PTR * _PTR


class _sifields(ctypes.Union):
    _fields_ = [
        ("sigchld", _sigchld),
        ("_align", ctypes.c_void_p),
        ("_pad", ctypes.c_byte * (_SI_MAX_SIZE - _SI_PREAMBLE)),
    ]


# MIPS swaps si_code and si_errno.
_SI_HEAD = (["si_signo", "si_code", "si_errno"] if _MACHINE.startswith("mips")
            else ["si_signo", "si_errno", "si_code"])


class siginfo_t(ctypes.Structure):
    """``siginfo_t`` as ``waitid`` fills it (128 bytes); ``sigchld`` holds
    ``si_pid``, ``si_uid``, ``si_status``."""

    _fields_ = [(name, ctypes.c_int) for name in _SI_HEAD] + [("fields", _sifields)]


assert ctypes.sizeof(siginfo_t) == _SI_MAX_SIZE

_CLOCKS = {
    None: 0,
    "monotonic": 0,
    "boottime": int(abi.IORING_TIMEOUT_BOOTTIME),
    "realtime": int(abi.IORING_TIMEOUT_REALTIME),
}


def _u32(value: Any, what: str) -> int:
    """*value* as a u32 field: an int (TypeError otherwise) in 0..2**32-1
    (ValueError otherwise; never cut to 32 bits)."""
    if value.__class__ is bool or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value <= _U32:
        raise ValueError(f"{what} {value} is not a u32")
    return int(value)


def _poll_mask(events: int) -> int:
    """``poll32_events`` as liburing stores it: on big-endian machines the
    halves are swapped, so the low 16 bits land in the old ``poll_events``."""
    events = _u32(events, "poll events")
    if sys.byteorder == "big":  # pragma: no cover - little-endian here
        events = ((events << 16) | (events >> 16)) & _U32
    return events


def _s32(value: int, what: str) -> int:
    """A signed 32-bit value as the u32 the SQE field holds."""
    if not -(1 << 31) <= value < (1 << 32):
        raise ValueError(f"{what} {value} does not fit 32 bits")
    return value & _U32


def _deadline(value: Any, absolute: bool, clock: Optional[str]) -> Tuple[abi.kernel_timespec, int]:
    """The timespec and ``IORING_TIMEOUT_*`` bits of a duration, or with
    *absolute* of a point on *clock* (seconds on that clock, or a
    ``datetime.datetime``, which means ``CLOCK_REALTIME``)."""
    if clock not in _CLOCKS:
        raise ValueError(f"clock must be None, 'monotonic', 'boottime' or 'realtime', not {clock!r}")
    bits = _CLOCKS[clock]
    if isinstance(value, datetime.datetime):
        if not absolute:
            raise ValueError("a datetime is a point in time: pass absolute=True")
        if clock not in (None, "realtime"):
            raise ValueError("a datetime is wall-clock time: use clock='realtime'")
        value = value.timestamp()
        bits = int(abi.IORING_TIMEOUT_REALTIME)
    if absolute:
        bits |= int(abi.IORING_TIMEOUT_ABS)
    return timespec(value), bits


class ControlOps(OpsBase):
    """Operations that act on the ring, time, other requests and processes."""

    # -- NOP -------------------------------------------------------------

    # Not keyword-only, unlike every other prep: CPython 3.11+ specialises
    # calls to functions without keyword-only parameters, which makes this
    # hot path ~5% cheaper; each further parameter would cost as much again.
    def prep_nop(self, user_data: Optional[int] = None, flags: int = 0,
                 result: Optional[int] = None) -> int:
        """``IORING_OP_NOP``: completes with ``res == 0``; a round trip
        through the ring and nothing else.  With *result*
        (``IORING_NOP_INJECT_RESULT``, 6.x) it completes with that ``res``
        instead, e.g. ``-errno.EIO``; the other test hooks are
        ``prep_nop_hooks``.  Pass *flags* and *result* by keyword."""
        if result is not None:
            return self.prep_nop_hooks(user_data, flags=flags, result=result)
        return self.prep_rw(_OP_NOP, -1, 0, 0, 0, user_data, flags)

    def prep_nop_hooks(self, user_data: Optional[int] = None, *, flags: int = 0,
                       result: Optional[int] = None, fd: Any = None, fixed: bool = False,
                       buf_index: Optional[int] = None, task_work: bool = False,
                       cqe32: Optional[Tuple[int, int]] = None) -> int:
        """``IORING_OP_NOP`` with its test hooks (``nop_flags``, 6.x; the slow
        branch of ``prep_nop``).  *result* (``IORING_NOP_INJECT_RESULT``,
        in ``len``): complete with that ``res``.  *fd* (``IORING_NOP_FILE``):
        look the file up first, a registered slot with *fixed*
        (``IORING_NOP_FIXED_FILE``); ``-EBADF`` if not open.  *buf_index*
        (``IORING_NOP_FIXED_BUFFER``): look a registered buffer up;
        ``-EFAULT`` if absent.  *task_work* (``IORING_NOP_TW``): complete
        through task work.  *cqe32* ``(big0, big1)`` (``IORING_NOP_CQE32``,
        in ``off``/``addr``): post a 32-byte CQE carrying them (``CQE32``
        or ``CQE_MIXED`` rings; ``-EINVAL`` elsewhere)."""
        nop_flags = length = off = addr = index = 0
        file = -1
        if result is not None:
            nop_flags |= int(abi.IORING_NOP_INJECT_RESULT)
            length = _s32(result, "IORING_OP_NOP: result")
        if fd is not None:
            file = self._file(fd, fixed)
            nop_flags |= int(abi.IORING_NOP_FILE)
            if fixed:
                nop_flags |= int(abi.IORING_NOP_FIXED_FILE)
        elif fixed:
            raise ValueError("IORING_OP_NOP: fixed=True needs fd (a registered-file slot)")
        if buf_index is not None:
            nop_flags |= int(abi.IORING_NOP_FIXED_BUFFER)
            index = buf_index
        if task_work:
            nop_flags |= int(abi.IORING_NOP_TW)
        if cqe32 is not None:
            nop_flags |= int(abi.IORING_NOP_CQE32)
            off, addr = cqe32
            for big in (off, addr):
                if big.__class__ is bool or not isinstance(big, int):
                    raise TypeError(f"IORING_OP_NOP: cqe32 holds two ints, not {cqe32!r}")
                if not 0 <= big < 1 << 64:
                    raise ValueError(f"IORING_OP_NOP: cqe32 value {big} is not a u64")
        return self._op(abi.IORING_OP_NOP, fd=file, len=length, op_flags=nop_flags, off=off,
                        addr=addr, buf_index=index, user_data=user_data, flags=flags,
                        target=fd)

    def prep_nops(self, user_data: Sequence[int], *, flags: int = 0) -> int:
        """Many ``IORING_OP_NOP`` in one call, one slot each, in order;
        returns how many.  All or nothing: with too little room in the SQ
        it raises ``SubmissionQueueFull`` (or submits first, with
        ``sq_full="submit"``) before writing any slot.

        The vectorised form of ``prep_nop``: slots that already hold a
        flagless NOP get only their ``user_data`` words rewritten, by one
        strided store per contiguous run of slots instead of a Python call
        per SQE (what a batch costs here is mostly interpreter time)."""
        return self.prep_nop_batch(user_data, flags)

    # -- poll ----------------------------------------------------------------

    def prep_poll_add(self, fd: Any, events: int = select.POLLIN, user_data: Optional[int] = None,
                      *, flags: int = 0, fixed: bool = False, multishot: bool = False) -> int:
        """``IORING_OP_POLL_ADD``: wait until *fd* is ready for *events*
        (``select.POLL*``, in ``poll32_events``); ``res`` is the ready
        ``revents`` mask.  *multishot* (``IORING_POLL_ADD_MULTI`` in
        ``len``) posts a CQE with ``IORING_CQE_F_MORE`` on every wake-up
        until removed or failed."""
        fd = self._file(fd, fixed)
        return self._op(abi.IORING_OP_POLL_ADD, fd=fd, fixed=fixed, op_flags=_poll_mask(events),
                        len=int(abi.IORING_POLL_ADD_MULTI) if multishot else 0,
                        user_data=user_data, flags=flags)

    def prep_poll_remove(self, target_user_data: int, user_data: Optional[int] = None, *,
                         flags: int = 0) -> int:
        """``IORING_OP_POLL_REMOVE``: cancel the poll whose ``user_data`` is
        *target_user_data* (``addr``); ``res`` is 0, or ``-ENOENT`` when no
        such poll is armed.  The poll itself completes with ``-ECANCELED``."""
        return self._op(abi.IORING_OP_POLL_REMOVE, addr=target_user_data, user_data=user_data,
                        flags=flags, target=f"user_data {target_user_data}")

    def prep_poll_update(self, old_user_data: int, new_user_data: Optional[int] = None,
                         events: Optional[int] = None, user_data: Optional[int] = None, *,
                         flags: int = 0, multishot: bool = False) -> int:
        """``IORING_OP_POLL_REMOVE`` with ``IORING_POLL_UPDATE_EVENTS`` (new
        *events*; *multishot* makes it ``IORING_POLL_ADD_MULTI``) and/or
        ``IORING_POLL_UPDATE_USER_DATA`` (*new_user_data*, in ``off``) in
        ``len``: re-arm the poll *old_user_data* (``addr``).  ``res`` is 0
        or ``-ENOENT``.

        The ring files what it holds for the poll under *new_user_data*
        right away, since its later CQEs carry that value (unless the CQ
        already holds the poll's final CQE).  A poll that completes between
        this call and the submit leaves that record behind (the update gets
        ``-ENOENT``); ``close()`` then waits out its timeout for it."""
        if new_user_data is None and events is None:
            raise ValueError("IORING_OP_POLL_REMOVE: an update needs new_user_data and/or events")
        if multishot and events is None:
            raise ValueError("IORING_OP_POLL_REMOVE: multishot=True is an event update; pass events")
        command = off = mask = 0
        if events is not None:
            command |= int(abi.IORING_POLL_UPDATE_EVENTS)
            mask = _poll_mask(events)
            if multishot:
                command |= int(abi.IORING_POLL_ADD_MULTI)
        moving: Optional[int] = None  # the new user_data, when it changes
        if new_user_data is not None:
            command |= int(abi.IORING_POLL_UPDATE_USER_DATA)
            off = new_user_data
            if new_user_data != old_user_data:
                moving = new_user_data
                if self.in_flight_user_data(new_user_data) or new_user_data == (
                        self.next_user_data if user_data is None else user_data):
                    raise ValueError(f"IORING_OP_POLL_REMOVE: new user_data {new_user_data} "
                                     "belongs to a request still in flight")
        ud = self._op(abi.IORING_OP_POLL_REMOVE, addr=old_user_data, off=off, len=command,
                      op_flags=mask, user_data=user_data, flags=flags,
                      target=f"user_data {old_user_data}")
        if moving is not None:
            self.move_request(old_user_data, moving)
        return ud

    # -- epoll ---------------------------------------------------------------

    def prep_epoll_ctl(self, epfd: Any, op: int, fd: Any, events: int = 0,
                       user_data: Optional[int] = None, *, flags: int = 0,
                       data: Optional[int] = None) -> int:
        """``IORING_OP_EPOLL_CTL``: ``epoll_ctl(epfd, op, fd, &event)`` (*op*
        ``EPOLL_CTL_ADD``/``MOD``/``DEL`` in ``len``, *fd* in ``off``, the
        ``struct epoll_event`` at ``addr``); ``res`` is 0.  *data* is the
        event's ``u64`` (default: *fd*, as ``select.epoll.register`` does)."""
        epfd = self._file(epfd, False)
        fd = self._file(fd, False)
        if data is not None and not 0 <= data < 1 << 64:
            raise ValueError(f"IORING_OP_EPOLL_CTL: data {data} is not a u64")
        event = epoll_event()
        event.events = _u32(events, "IORING_OP_EPOLL_CTL: events")
        event.data = fd if data is None else data
        return self._op(abi.IORING_OP_EPOLL_CTL, fd=epfd, len=int(op), off=fd,
                        addr=ctypes.addressof(event), user_data=user_data, flags=flags,
                        target=fd, keep=event)

    def prep_epoll_wait(self, epfd: Any, maxevents: int, user_data: Optional[int] = None, *,
                        flags: int = 0, fixed: bool = False) -> int:
        """``IORING_OP_EPOLL_WAIT`` (6.15+): ``epoll_wait(epfd, events,
        maxevents)`` into an ``epoll_event[maxevents]`` the request holds;
        ``res`` is the number of events, ``result()`` the list of
        ``(events, data)`` pairs."""
        if not 0 < _u32(maxevents, "IORING_OP_EPOLL_WAIT: maxevents") <= _EP_MAX_EVENTS:
            raise ValueError(f"IORING_OP_EPOLL_WAIT: maxevents must be 1..{_EP_MAX_EVENTS} "
                             f"(the kernel's EP_MAX_EVENTS), got {maxevents}")
        epfd = self._file(epfd, fixed)
        array = (epoll_event * maxevents)()

        def decode(res: int) -> List[Tuple[int, int]]:
            return [(array[i].events, array[i].data) for i in range(res)]

        return self._op(abi.IORING_OP_EPOLL_WAIT, fd=epfd, fixed=fixed,
                        addr=ctypes.addressof(array), len=maxevents, user_data=user_data,
                        flags=flags, keep=array, decode=decode)

    # -- timeouts --------------------------------------------------------------

    def prep_timeout(self, timeout: Union[Seconds, datetime.datetime], count: int = 0,
                     user_data: Optional[int] = None, *, flags: int = 0, absolute: bool = False,
                     clock: Optional[str] = None, multishot: bool = False,
                     etime_success: bool = False) -> int:
        """``IORING_OP_TIMEOUT``: complete after *timeout* (``addr``: a
        ``__kernel_timespec`` the request holds; ``len`` 1) with ``-ETIME``,
        or with 0 once *count* (``off``) other completions were posted.

        *absolute*: *timeout* is a time on *clock* (``IORING_TIMEOUT_ABS``;
        a ``datetime`` is wall-clock time).  *clock*: ``'boottime'``/
        ``'realtime'`` (``IORING_TIMEOUT_BOOTTIME``/``REALTIME``; default
        ``CLOCK_MONOTONIC``).  *multishot* (``IORING_TIMEOUT_MULTISHOT``):
        fire every *timeout*, *count* times (0: until removed), each CQE
        but the last with ``IORING_CQE_F_MORE``.  *etime_success*
        (``IORING_TIMEOUT_ETIME_SUCCESS``): expiry does not break a link
        chain (``res`` is still ``-ETIME``)."""
        if not 0 <= count <= _U32:
            raise ValueError(f"IORING_OP_TIMEOUT: count {count} is not a u32")
        if multishot and absolute:
            raise ValueError("IORING_OP_TIMEOUT: a multishot timeout must be relative")
        ts, bits = _deadline(timeout, absolute, clock)
        if multishot:
            bits |= int(abi.IORING_TIMEOUT_MULTISHOT)
        if etime_success:
            bits |= int(abi.IORING_TIMEOUT_ETIME_SUCCESS)
        return self._op(abi.IORING_OP_TIMEOUT, addr=ctypes.addressof(ts), len=1, off=count,
                        op_flags=bits, user_data=user_data, flags=flags, keep=ts)

    def prep_timeout_remove(self, target_user_data: int, user_data: Optional[int] = None, *,
                            flags: int = 0) -> int:
        """``IORING_OP_TIMEOUT_REMOVE``: cancel the timeout *target_user_data*
        (``addr``); ``res`` 0, ``-ENOENT`` (none) or ``-EALREADY`` (firing).
        The timeout completes with ``-ECANCELED``."""
        return self._op(abi.IORING_OP_TIMEOUT_REMOVE, addr=target_user_data,
                        user_data=user_data, flags=flags,
                        target=f"user_data {target_user_data}")

    def prep_timeout_update(self, target_user_data: int, timeout: Union[Seconds, datetime.datetime],
                            user_data: Optional[int] = None, *, flags: int = 0,
                            absolute: bool = False, link: bool = False) -> int:
        """``IORING_OP_TIMEOUT_REMOVE`` with ``IORING_TIMEOUT_UPDATE`` (and
        ``IORING_LINK_TIMEOUT_UPDATE`` with *link*, for a ``LINK_TIMEOUT``):
        re-arm timeout *target_user_data* (``addr``) to *timeout* (the
        timespec's address in ``off``), on the clock it was armed with.
        ``res`` 0 or ``-ENOENT``."""
        ts, bits = _deadline(timeout, absolute, None)
        bits &= int(abi.IORING_TIMEOUT_ABS)  # the clock is the timeout's own
        bits |= int(abi.IORING_TIMEOUT_UPDATE)
        if link:
            bits |= int(abi.IORING_LINK_TIMEOUT_UPDATE)
        return self._op(abi.IORING_OP_TIMEOUT_REMOVE, addr=target_user_data,
                        off=ctypes.addressof(ts), op_flags=bits, user_data=user_data,
                        flags=flags, target=f"user_data {target_user_data}", keep=ts)

    def prep_link_timeout(self, timeout: Union[Seconds, datetime.datetime],
                          user_data: Optional[int] = None, *, flags: int = 0,
                          absolute: bool = False, clock: Optional[str] = None) -> int:
        """``IORING_OP_LINK_TIMEOUT``: bound the request linked just before it
        (prepare both inside ``link()``).  If *timeout* passes first, that
        request is cancelled (``-ECANCELED``) and this one completes with
        ``-ETIME``; if the request finishes first, this one gets
        ``-ECANCELED``.  *absolute*/*clock* as for ``prep_timeout``."""
        ts, bits = _deadline(timeout, absolute, clock)
        return self._op(abi.IORING_OP_LINK_TIMEOUT, addr=ctypes.addressof(ts), len=1,
                        op_flags=bits, user_data=user_data, flags=flags, keep=ts)

    # -- cancellation ---------------------------------------------------------

    def prep_cancel(self, target_user_data: Optional[int] = None, user_data: Optional[int] = None,
                    *, fd: Any = None, opcode: Optional[int] = None, any: bool = False,
                    all: bool = False, fixed: bool = False, flags: int = 0) -> int:
        """``IORING_OP_ASYNC_CANCEL``: cancel in-flight requests, matched by
        *target_user_data* (``addr``), by file *fd* (``IORING_ASYNC_CANCEL_FD``;
        a registered slot with *fixed*, ``..._FD_FIXED``), by *opcode*
        (``IORING_ASYNC_CANCEL_OP``, in ``len``), or every request (*any*,
        ``..._ANY``); criteria combine (``..._USERDATA`` when a user_data
        is given with fd/opcode).  *all* (``..._ALL``): every match, and
        ``res`` is how many were cancelled; otherwise ``res`` is 0,
        ``-ENOENT`` (no match) or ``-EALREADY`` (already running; it may
        still complete normally; 6.18 also answers 0 to *any* without *all*
        when nothing matched).  Each cancelled request completes with
        ``-ECANCELED`` (or ``-EINTR``)."""
        cancel = length = 0
        file = -1
        what: List[str] = []
        if any:
            if target_user_data is not None or fd is not None or opcode is not None:
                raise ValueError("IORING_OP_ASYNC_CANCEL: any=True matches every request; "
                                 "it takes no user_data, fd or opcode")
            cancel |= int(abi.IORING_ASYNC_CANCEL_ANY)
            what.append("any request")
        if fd is not None:
            file = self._file(fd, fixed)
            cancel |= int(abi.IORING_ASYNC_CANCEL_FD)
            if fixed:
                cancel |= int(abi.IORING_ASYNC_CANCEL_FD_FIXED)
            what.append(f"{'fixed file' if fixed else 'fd'} {file}")
        elif fixed:
            raise ValueError("IORING_OP_ASYNC_CANCEL: fixed=True needs fd (a registered-file slot)")
        if opcode is not None:
            cancel |= int(abi.IORING_ASYNC_CANCEL_OP)
            length = _u32(opcode, "IORING_OP_ASYNC_CANCEL: opcode")
            what.append(abi.IoringOp(length).name if length in abi.IoringOp._value2member_map_
                        else f"opcode {length}")
        if target_user_data is not None:
            if cancel:
                cancel |= int(abi.IORING_ASYNC_CANCEL_USERDATA)
            what.append(f"user_data {target_user_data}")
        if not what:
            raise ValueError("IORING_OP_ASYNC_CANCEL: say what to cancel "
                             "(target_user_data, fd, opcode or any=True)")
        if all:
            cancel |= int(abi.IORING_ASYNC_CANCEL_ALL)
        return self._op(abi.IORING_OP_ASYNC_CANCEL, fd=file, addr=target_user_data or 0,
                        len=length, op_flags=cancel, user_data=user_data, flags=flags,
                        target=", ".join(what))

    # -- messages between rings -------------------------------------------------

    def _target_ring(self, target: Any, fixed: bool) -> int:
        if isinstance(target, RingCore):
            if fixed:
                raise ValueError("fixed=True takes a registered-file slot, not a Ring")
            target = target.fd
        return self._file(target, fixed)

    def prep_msg_ring(self, target_ring: Any, res: int, data: int, user_data: Optional[int] = None,
                      *, flags: int = 0, fixed: bool = False,
                      cqe_flags: Optional[int] = None) -> int:
        """``IORING_OP_MSG_RING`` / ``IORING_MSG_DATA``: post a CQE
        ``(user_data=data, res=res)`` into *target_ring* (a ``Ring``, a ring
        fd, or with *fixed* a registered slot holding one; ``fd``), *res* in
        ``len`` and *data* in ``off``.  *cqe_flags*
        (``IORING_MSG_RING_FLAGS_PASS``, in ``file_index``) become that CQE's
        flags.  ``res`` here is 0, or ``-EOVERFLOW`` if the target's CQ is
        full, ``-EBADFD`` if the fd is no ring.

        The posted CQE has no request behind it in the target ring: pick
        *data* values its own requests do not use (refused here when the
        target is a ``Ring`` with a request under *data* in flight).
        ``IORING_MSG_RING_CQE_SKIP`` applies to ``prep_msg_ring_fd`` only
        (the kernel refuses it with ``MSG_DATA``)."""
        fd = self._target_ring(target_ring, fixed)
        if isinstance(target_ring, RingCore) and target_ring.in_flight_user_data(data):
            raise ValueError(f"IORING_OP_MSG_RING: user_data {data} belongs to a request in "
                             "flight in the target ring; its CQE would be taken for that request's")
        msg_flags = index = 0
        if cqe_flags is not None:
            msg_flags |= int(abi.IORING_MSG_RING_FLAGS_PASS)
            index = cqe_flags
        return self._op(abi.IORING_OP_MSG_RING, fd=fd, fixed=fixed, addr=int(abi.IORING_MSG_DATA),
                        len=_s32(res, "IORING_OP_MSG_RING: res"), off=data, op_flags=msg_flags,
                        file_index=index, user_data=user_data, flags=flags,
                        target=f"ring fd {fd}")

    def prep_msg_ring_fd(self, target_ring: Any, source_slot: int,
                         target_slot: int = abi.IORING_FILE_INDEX_ALLOC, data: int = 0,
                         user_data: Optional[int] = None, *, flags: int = 0, fixed: bool = False,
                         skip_cqe: bool = False) -> int:
        """``IORING_OP_MSG_RING`` / ``IORING_MSG_SEND_FD`` (``addr``): install
        our registered file *source_slot* (``addr3``) into *target_ring*'s
        file table at *target_slot* (``file_index``, slot + 1; the default
        ``IORING_FILE_INDEX_ALLOC`` lets the kernel pick a free slot), and
        post ``(user_data=data, res=slot)`` there unless *skip_cqe*
        (``IORING_MSG_RING_CQE_SKIP``).  ``res`` here: the slot, or an error."""
        fd = self._target_ring(target_ring, fixed)
        if not 0 <= source_slot < self._files:
            raise ValueError(f"IORING_OP_MSG_RING: source slot {source_slot} is outside this "
                             f"ring's registered files ({self._files} slots)")
        index = self._direct_slot("IORING_OP_MSG_RING", target_slot, own_table=False)
        return self._op(abi.IORING_OP_MSG_RING, fd=fd, fixed=fixed,
                        addr=int(abi.IORING_MSG_SEND_FD), addr3=source_slot, file_index=index,
                        off=data, op_flags=int(abi.IORING_MSG_RING_CQE_SKIP) if skip_cqe else 0,
                        user_data=user_data, flags=flags, target=f"ring fd {fd}")

    # -- futexes ----------------------------------------------------------------

    def _futex_word(self, futex: Any, offset: int, futex_flags: int,
                    what: str) -> Tuple[int, Optional[PinnedBuffer]]:
        """The address of a futex word: *offset* bytes into a writable buffer
        (pinned; returned to be kept), or an int address (the caller keeps
        that memory alive)."""
        size = 1 << (futex_flags & _FUTEX2_SIZE_MASK)
        if futex.__class__ is int:
            if futex + offset <= 0:
                raise ValueError(f"{what}: bad futex address {futex:#x}")
            address, buf = futex + offset, None
        else:
            buf = self._writable(futex)
            if not 0 <= offset <= buf.nbytes - size:
                raise ValueError(f"{what}: a {size}-byte futex word at offset {offset} is outside "
                                 f"the {buf.nbytes}-byte buffer")
            address = buf.address + offset
        if address % size:
            raise ValueError(f"{what}: the futex word at {address:#x} is not {size}-byte aligned")
        return address, buf

    @staticmethod
    def _futex_value(value: int, futex_flags: int, what: str) -> int:
        bits = 8 << (futex_flags & _FUTEX2_SIZE_MASK)
        if not -(1 << (bits - 1)) <= value < (1 << bits):
            raise ValueError(f"{what}: {value} does not fit a {bits}-bit futex")
        return value & ((1 << bits) - 1)

    def prep_futex_wait(self, futex: Any, expected: int, mask: int = FUTEX_BITSET_MATCH_ANY,
                        user_data: Optional[int] = None, *, offset: int = 0,
                        futex_flags: int = FUTEX2_SIZE_U32, flags: int = 0) -> int:
        """``IORING_OP_FUTEX_WAIT``: sleep while the futex word (*offset*
        bytes into the writable buffer *futex*, e.g. shared ``mmap``; or an
        int address) holds *expected*, until a wake matching *mask*.  SQE:
        ``addr`` the word, ``addr2`` *expected*, ``addr3`` *mask*, ``fd``
        the futex2 flags (*futex_flags*: size, ``FUTEX2_PRIVATE``).  ``res``
        0 when woken, ``-EAGAIN`` if the word did not hold *expected*."""
        what = "IORING_OP_FUTEX_WAIT"
        address, buf = self._futex_word(futex, offset, futex_flags, what)
        return self._op(abi.IORING_OP_FUTEX_WAIT, fd=futex_flags, addr=address,
                        off=self._futex_value(expected, futex_flags, what),
                        addr3=self._futex_value(mask, futex_flags, what), user_data=user_data,
                        flags=flags, target=f"futex {address:#x}", keep=buf)

    def prep_futex_wake(self, futex: Any, count: int = 1, mask: int = FUTEX_BITSET_MATCH_ANY,
                        user_data: Optional[int] = None, *, offset: int = 0,
                        futex_flags: int = FUTEX2_SIZE_U32, flags: int = 0) -> int:
        """``IORING_OP_FUTEX_WAKE``: wake up to *count* (``addr2``) waiters on
        the futex word whose bitset intersects *mask* (``addr3``); same
        layout as ``prep_futex_wait``.  ``res`` is the number woken."""
        what = "IORING_OP_FUTEX_WAKE"
        if count < 0:
            raise ValueError(f"{what}: negative count {count}")
        address, buf = self._futex_word(futex, offset, futex_flags, what)
        return self._op(abi.IORING_OP_FUTEX_WAKE, fd=futex_flags, addr=address, off=count,
                        addr3=self._futex_value(mask, futex_flags, what), user_data=user_data,
                        flags=flags, target=f"futex {address:#x}", keep=buf)

    def prep_futex_waitv(self, waiters: Sequence[Sequence[Any]], user_data: Optional[int] = None,
                         *, flags: int = 0) -> int:
        """``IORING_OP_FUTEX_WAITV``: wait on several futexes at once, each
        ``(futex, value)`` or ``(futex, value, futex_flags)`` where *futex*
        is a writable buffer (its first bytes are the word), a
        ``(buffer, offset)`` pair, or an int address.  ``addr`` points at a
        ``struct futex_waitv[]`` (``len`` entries) the request holds.
        ``res`` is the index of the futex that woke us, ``-EAGAIN`` if a
        word did not hold its value."""
        what = "IORING_OP_FUTEX_WAITV"
        if not 1 <= len(waiters) <= FUTEX_WAITV_MAX:
            raise ValueError(f"{what}: 1 to {FUTEX_WAITV_MAX} futexes, got {len(waiters)}")
        array = (futex_waitv * len(waiters))()
        pins: List[PinnedBuffer] = []
        for entry, waiter in zip(array, waiters):
            if not 2 <= len(waiter) <= 3:
                raise TypeError(f"{what}: each waiter is (futex, value[, futex_flags]), got {waiter!r}")
            futex, value = waiter[0], waiter[1]
            futex_flags = waiter[2] if len(waiter) == 3 else FUTEX2_SIZE_U32
            offset = 0
            if isinstance(futex, tuple):
                futex, offset = futex
            address, buf = self._futex_word(futex, offset, futex_flags, what)
            if buf is not None:
                pins.append(buf)
            entry.val = self._futex_value(value, futex_flags, what)
            entry.uaddr = address
            entry.flags = futex_flags
        return self._op(abi.IORING_OP_FUTEX_WAITV, fd=0, addr=ctypes.addressof(array),
                        len=len(waiters), user_data=user_data, flags=flags,
                        target=f"{len(waiters)} futexes", keep=(array, pins))

    # -- processes ------------------------------------------------------------------

    def prep_waitid(self, idtype: int, id: int, options: int = os.WEXITED,
                    user_data: Optional[int] = None, *, flags: int = 0, info: bool = True) -> int:
        """``IORING_OP_WAITID``: ``waitid(idtype, id, &info, options)``
        (``len`` *idtype* ``os.P_*``, ``fd`` *id*, ``file_index`` *options*
        ``os.WEXITED``/``WSTOPPED``/``WNOHANG``/..., ``addr2`` the
        ``siginfo_t`` the request holds).  ``res`` is 0; ``result()`` is
        ``(si_pid, si_status, si_code)`` (``si_pid`` 0 under ``WNOHANG``
        when no child changed state), or 0 without *info*."""
        if _u32(options, "IORING_OP_WAITID: options") > 0x7FFFFFFF:  # an int in waitid(2)
            raise ValueError(f"IORING_OP_WAITID: options {options} is not an s32 >= 0")
        siginfo: Optional[siginfo_t] = None
        decode: Optional[Callable[[int], Any]] = None
        address = 0
        if info:
            si = siginfo = siginfo_t()
            address = ctypes.addressof(si)

            def decode(res: int) -> Tuple[int, int, int]:
                child = si.fields.sigchld
                return child.si_pid, child.si_status, si.si_code

        return self._op(abi.IORING_OP_WAITID, fd=id, len=idtype, file_index=options, off=address,
                        user_data=user_data, flags=flags, target=f"{idtype}:{id}",
                        keep=siginfo, decode=decode)

    # -- provided buffers (the legacy, per-SQE kind) -------------------------------

    def held_by_ring(self) -> List[Any]:
        """The provided-buffer pools: a request in flight may hold a buffer
        it picked from one (``RingCore.held_by_ring``)."""
        pools = self.__dict__.get("_provided")
        return [list(pools.values())] if pools else []

    def close(self, **kwargs: Any) -> None:
        """The ring's ``close`` (which keeps the pools alive with any request
        it had to let go of, ``held_by_ring``); then the pools are let go."""
        try:
            super().close(**kwargs)
        finally:
            pools = self.__dict__.get("_provided")
            if pools and self.closed:
                pools.clear()
                self.__dict__["_provided_count"].clear()

    def _provided_pools(self) -> Tuple[Dict[int, List[PinnedBuffer]], Dict[int, int]]:
        """The pools each buffer group may pick from, and an upper bound of
        how many of its buffers the kernel holds (what we provided, less
        what ``REMOVE_BUFFERS`` asked back)."""
        pools = getattr(self, "_provided", None)
        if pools is None:
            pools = self.__dict__["_provided"] = {}
            self.__dict__["_provided_count"] = {}
        return pools, self.__dict__["_provided_count"]

    def prep_provide_buffers(self, buffer: Any, count: int, size: int, group: int,
                             start_id: int = 0, user_data: Optional[int] = None, *,
                             flags: int = 0) -> int:
        """``IORING_OP_PROVIDE_BUFFERS``: hand *count* buffers of *size*
        bytes, cut from the writable *buffer* (``addr``; ``len`` *size*,
        ``fd`` *count*), to buffer group *group* (``buf_group``), ids
        *start_id*... (``off``).  A request with ``IOSQE_BUFFER_SELECT`` and
        ``buf_group`` then lets the kernel pick one; its CQE names it
        (``Completion.buffer_id``).  ``res`` is 0.

        The ring holds *buffer* for as long as the kernel may pick from it:
        until ``prep_remove_buffers`` has asked back at least as many
        buffers of the group as were provided, and every request in flight
        at that point has completed."""
        what = "IORING_OP_PROVIDE_BUFFERS"
        buf = self._writable(buffer)
        if count < 1 or size < 1:
            raise ValueError(f"{what}: count and size must be positive, got {count} x {size}")
        if count * size > buf.nbytes:
            raise ValueError(f"{what}: {count} buffers of {size} bytes need {count * size} bytes; "
                             f"the buffer has {buf.nbytes}")
        group = check_int(f"{what}: buffer group", group, 0, 0xFFFF)
        if start_id < 0 or start_id + count > 1 << 16:
            raise ValueError(f"{what}: buffer ids {start_id}..{start_id + count - 1} exceed 65535")
        ud = self._op(abi.IORING_OP_PROVIDE_BUFFERS, fd=count, addr=buf.address, len=size,
                      off=start_id, buf_index=group, user_data=user_data, flags=flags,
                      target=f"buffer group {group}", keep=buf)
        pools, counts = self._provided_pools()
        pools.setdefault(group, []).append(buf)
        counts[group] = counts.get(group, 0) + count
        return ud

    def prep_remove_buffers(self, count: int, group: int, user_data: Optional[int] = None, *,
                            flags: int = 0) -> int:
        """``IORING_OP_REMOVE_BUFFERS``: take back up to *count* (``fd``)
        unused buffers of group *group* (``buf_group``); ``res`` is how
        many were removed (``-ENOENT`` for an unknown group).

        Once the removals asked for cover everything provided to the group,
        the ring lets its pools go: they stay with this request and with
        every request now in flight (one of which may have picked a buffer)
        until those complete."""
        what = "IORING_OP_REMOVE_BUFFERS"
        if not 1 <= count <= 1 << 16:
            raise ValueError(f"{what}: count must be 1..65536, got {count}")
        group = check_int(f"{what}: buffer group", group, 0, 0xFFFF)
        pools, counts = self._provided_pools()
        left = counts.get(group, 0) - count
        released: List[PinnedBuffer] = []
        if left <= 0:
            released = pools.get(group, [])
        ud = self._op(abi.IORING_OP_REMOVE_BUFFERS, fd=count, buf_index=group,
                      user_data=user_data, flags=flags, target=f"buffer group {group}",
                      keep=released or None)
        if left > 0:
            counts[group] = left
        elif group in pools:
            del pools[group]
            counts.pop(group, None)
            for record in self.requests_in_flight():
                if record.keep is not released:
                    record.keep = (record.keep, released)
        return ud

    # -- passthrough ------------------------------------------------------------------

    def prep_uring_cmd(self, fd: Any, cmd_op: int, cmd: bytes = b"", user_data: Optional[int] = None,
                       *, flags: int = 0, fixed: bool = False, cmd_flags: int = 0, addr: int = 0,
                       length: int = 0, buf_index: int = 0, file_index: int = 0, keep: Any = None,
                       decode: Optional[Callable[[int], Any]] = None) -> int:
        """``IORING_OP_URING_CMD``: a driver-defined command *cmd_op*
        (``cmd_op``) on *fd*, with *cmd* as the SQE's command area (from byte
        48: 16 bytes, or 80 on an ``IORING_SETUP_SQE128`` ring; zero-filled).
        *cmd_flags*: ``IORING_URING_CMD_FIXED`` (registered buffer
        *buf_index*) / ``_MULTISHOT``.  *addr*, *length*, *file_index* fill
        those fields for commands that use them; *keep* is held until the
        final CQE (memory the command points at), *decode* turns ``res`` into
        ``result()``.  ``res`` is the driver's."""
        fd = self._file(fd, fixed)
        return self._op(abi.IORING_OP_URING_CMD, fd=fd, fixed=fixed, off=cmd_op, addr=addr,
                        len=length, op_flags=cmd_flags, buf_index=buf_index,
                        file_index=file_index, user_data=user_data, flags=flags, keep=keep,
                        decode=decode, cmd=bytes(cmd))

    def prep_cmd_sock(self, sock: Any, op: int, level: int = 0, optname: int = 0,
                      optval: Any = None, user_data: Optional[int] = None, *, flags: int = 0,
                      fixed: bool = False) -> int:
        """``IORING_OP_URING_CMD`` on a socket (``SOCKET_URING_OP_*`` in
        ``cmd_op``).  ``SIOCINQ``/``SIOCOUTQ``: ``res`` is the bytes queued
        to read / not yet sent.  ``GETSOCKOPT`` (``SOL_SOCKET`` only):
        *optval* is the size to read or a writable buffer, ``result()`` the
        option's bytes.  ``SETSOCKOPT``: *optval* is an int or bytes.
        *level* and *optname* go in the ``addr`` union, the option's address
        in ``optval`` (byte 48), its length in ``optlen``."""
        what = "IORING_OP_URING_CMD"
        op = _u32(op, f"{what}: op")
        level = _u32(level, f"{what}: level")
        optname = _u32(optname, f"{what}: optname")
        optlen = address = 0
        buf: Optional[PinnedBuffer] = None
        decode: Optional[Callable[[int], Any]] = None
        if op == abi.SOCKET_URING_OP_GETSOCKOPT:
            if optval is None or isinstance(optval, bool):
                raise TypeError(f"{what}: GETSOCKOPT needs optval (a size or a writable buffer)")
            if isinstance(optval, int):
                optval = bytearray(optval)
            buf = self._writable(optval)
            pinned = buf

            def decode(res: int) -> bytes:
                return ctypes.string_at(pinned.address, res)

        elif op == abi.SOCKET_URING_OP_SETSOCKOPT:
            if optval is None:
                raise TypeError(f"{what}: SETSOCKOPT needs optval (an int or bytes)")
            if isinstance(optval, int):
                optval = struct.pack("i", optval)
            buf = self._readable(optval)
        elif optval is not None:
            raise TypeError(f"{what}: optval is for GETSOCKOPT/SETSOCKOPT only")
        if buf is not None:
            address, optlen = buf.address, buf.nbytes
        fd = self._file(sock, fixed)
        return self._op(abi.IORING_OP_URING_CMD, fd=fd, fixed=fixed, off=op,
                        addr=level | optname << 32, file_index=optlen,
                        user_data=user_data, flags=flags, keep=buf, decode=decode,
                        cmd=struct.pack("<Q", address))

    # -- pipes ---------------------------------------------------------------------------

    def prep_pipe(self, pipe_flags: Optional[int] = None, user_data: Optional[int] = None, *,
                  flags: int = 0, direct: Optional[int] = None) -> int:
        """``IORING_OP_PIPE`` (6.16+): ``pipe2(fds, pipe_flags)`` into an
        ``int[2]`` the request holds (``addr``; ``pipe_flags`` ``O_CLOEXEC``,
        ``O_NONBLOCK``, ``O_DIRECT``; default ``O_CLOEXEC``, as ``os.pipe``).
        *direct*: install both ends in the registered file table instead,
        at slots *direct* and *direct* + 1 (``IORING_FILE_INDEX_ALLOC``: any
        free ones; no ``O_CLOEXEC`` then).  ``res`` is 0; ``result()`` is
        ``(read_fd, write_fd)`` (slots with *direct*)."""
        if pipe_flags is None:
            pipe_flags = 0 if direct is not None else os.O_CLOEXEC
        index = self._direct_slot("IORING_OP_PIPE", direct)
        fds = (ctypes.c_int * 2)(-1, -1)

        def decode(res: int) -> Tuple[int, int]:
            return fds[0], fds[1]

        return self._op(abi.IORING_OP_PIPE, fd=0, addr=ctypes.addressof(fds), op_flags=pipe_flags,
                        file_index=index, user_data=user_data, flags=flags, keep=fds,
                        decode=decode)

"""The ring: set-up, the shared mappings, and the SQ/CQ protocol.

Layout (``NOTES.md`` draws it): ``io_uring_setup`` returns a file descriptor
and fills ``io_uring_params`` with the ring sizes and the *offsets* of every
shared word.  Three regions are mapped from that fd (one or two mappings
when ``IORING_FEAT_SINGLE_MMAP`` says the SQ and CQ ring share pages):

- the SQ ring: ``head`` (kernel writes), ``tail`` (we write), ``ring_mask``,
  ``ring_entries``, ``flags`` (kernel writes ``IORING_SQ_*``), ``dropped``,
  and, unless ``IORING_SETUP_NO_SQARRAY``, the ``array`` of SQE indexes;
- the CQ ring: ``head`` (we write), ``tail`` (kernel writes), ``ring_mask``,
  ``ring_entries``, ``overflow``, ``flags`` (``IORING_CQ_*``, we write) and
  the CQEs themselves;
- the SQE array (``io_uring_sqe[sq_entries]``).

Ownership rule: each index word has exactly one writer.  Our side fills SQEs
and publishes them by moving the SQ tail; the kernel consumes them and moves
the SQ head.  The kernel posts CQEs and moves the CQ tail; we read them and
give the slots back by moving the CQ head.  Heads and tails are free-running
``u32`` counters; ``counter & ring_mask`` is the slot.

Barriers: a store that hands memory to the other side is a *release* (the
SQ tail, the CQ head); a load that takes memory from it is an *acquire* (the
CQ tail, and the SQ head when a kernel thread consumes SQEs under SQPOLL).
On TSO machines (x86-64) these need no instruction: see ``uring.barriers``.
The one full fence sits in ``_submit_sqpoll``.

This module is the thin, honest core: no threads, no hidden submissions.
Opcode-specific preparation lives in ``uring.ops``; registration in
``uring.register``.
"""

from __future__ import annotations

import ctypes
import datetime
import errno as _errno
import mmap as _mmap
import os
import struct
import threading
import time
import weakref
from functools import partial
from itertools import chain
from typing import Any, Dict, List, Literal, Optional, Tuple, TypeVar, Union, overload

from . import abi, barriers
from .errors import (
    RingClosedError,
    RingForkedError,
    SubmissionQueueFull,
    UnsupportedOperation,
    kernel_error,
    unavailable,
)
from .syscalls import Kernel, default_kernel

__all__ = ["Cqe", "RingCore", "Timeout"]

#: A timeout: seconds (int or float), a ``datetime.timedelta``, or None for none.
Timeout = Union[None, float, int, datetime.timedelta]

_U32 = 0xFFFFFFFF
_SETUP = abi.IoringSetup
_ENTER_GETEVENTS = int(abi.IORING_ENTER_GETEVENTS)
_ENTER_SQ_WAKEUP = int(abi.IORING_ENTER_SQ_WAKEUP)
_ENTER_SQ_WAIT = int(abi.IORING_ENTER_SQ_WAIT)
_ENTER_EXT_ARG = int(abi.IORING_ENTER_EXT_ARG)
_ENTER_REGISTERED_RING = int(abi.IORING_ENTER_REGISTERED_RING)
_SQ_NEED_WAKEUP = int(abi.IORING_SQ_NEED_WAKEUP)
_SQ_CQ_OVERFLOW = int(abi.IORING_SQ_CQ_OVERFLOW)
_SQ_TASKRUN = int(abi.IORING_SQ_TASKRUN)
_CQE_F_MORE = int(abi.IORING_CQE_F_MORE)
_SKIP_SUCCESS = int(abi.IOSQE_CQE_SKIP_SUCCESS)
_CQE_F_SKIP = int(abi.IORING_CQE_F_SKIP)
_CQE_F_32 = int(abi.IORING_CQE_F_32)
_NO_LIMIT = 1 << 62
_R = TypeVar("_R", bound="RingCore")
_NSIG_BYTES = 8  # _NSIG / 8: the kernel's sigset_t size, for io_uring_getevents_arg

#: One whole SQE, field by field, as ``io_uring_sqe`` lays it out:
#: opcode, flags, ioprio, fd, off, addr, len, op_flags, user_data,
#: buf_index, personality, splice_fd_in/file_index, addr3, __pad2.
SQE_STRUCT = struct.Struct("<BBHiQQIIQHHiQQ")
assert SQE_STRUCT.size == 64
#: A CQE as ``io_uring_cqe`` lays it out: user_data, res, flags (+ big_cqe[2]).
CQE_STRUCT = struct.Struct("<QiI")
CQE32_STRUCT = struct.Struct("<QiIQQ")


class Cqe(tuple):  # type: ignore[type-arg]
    """One completion, copied out of the CQ ring: ``(user_data, res, flags)``
    and, for a 32-byte CQE, the two ``big_cqe`` words after them.

    Immutable and detached from ring memory, so the slot can be handed back
    to the kernel the moment the batch is copied.
    """

    __slots__ = ()

    @property
    def user_data(self) -> int:
        return self[0]  # type: ignore[no-any-return]

    @property
    def res(self) -> int:
        return self[1]  # type: ignore[no-any-return]

    @property
    def flags(self) -> int:
        return self[2]  # type: ignore[no-any-return]

    @property
    def big(self) -> Tuple[int, ...]:
        """The ``big_cqe`` extra words of a 32-byte CQE (empty for 16 bytes)."""
        return tuple(self[3:])

    @property
    def more(self) -> bool:
        """``IORING_CQE_F_MORE``: the request will post further CQEs."""
        return bool(self[2] & _CQE_F_MORE)

    @property
    def buffer_id(self) -> Optional[int]:
        """The provided buffer's id when ``IORING_CQE_F_BUFFER`` is set."""
        if self[2] & abi.IORING_CQE_F_BUFFER:
            return self[2] >> abi.IORING_CQE_BUFFER_SHIFT  # type: ignore[no-any-return]
        return None

    def __repr__(self) -> str:
        res, flags = self[1], self[2]
        res_text = f"-{_errno.errorcode.get(-res, -res)}" if res < 0 else str(res)
        names = [f.name or "" for f in abi.IoringCqeF if f.value and flags & f.value]
        flag_text = "|".join(names) or "0"
        if flags & abi.IORING_CQE_F_BUFFER:
            flag_text += f", buffer_id={flags >> abi.IORING_CQE_BUFFER_SHIFT}"
        extra = f", big={self.big}" if len(self) > 3 else ""
        return f"Cqe(user_data={self[0]}, res={res_text}, flags={flag_text}{extra})"

    @classmethod
    def of(cls, user_data: int, res: int, flags: int, *big: int) -> "Cqe":
        return tuple.__new__(cls, (user_data, res, flags) + big)  # type: ignore[no-any-return]


_make_cqe = partial(tuple.__new__, Cqe)


def op_name(opcode: int) -> str:
    """``IORING_OP_*`` name of *opcode* (or the number, if unknown here)."""
    try:
        return abi.IoringOp(opcode).name
    except ValueError:
        return f"opcode {opcode}"


def _seconds(timeout: Any) -> float:
    if hasattr(timeout, "total_seconds"):
        timeout = timeout.total_seconds()
    seconds = float(timeout)
    if seconds < 0 or seconds != seconds:
        raise ValueError(f"timeout must be >= 0 seconds, got {timeout!r}")
    return seconds


# Buffers whose requests were still in flight when their ring had to let go
# (close timed out, ring collected): kept for the life of the process,
# because the kernel may still write into them.  A leak, on purpose.
_GRAVEYARD: List[Any] = []

# Rings of this process, so a fork can mark them unusable in the child.
_RINGS: "weakref.WeakSet[RingCore]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for ring in list(_RINGS):
        ring._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class RingCore:
    """An io_uring instance: its fd, the three mappings, and both queues.

    ``Ring`` (in ``uring.ops``) adds the per-opcode ``prep_*`` methods and
    registration; this class holds the protocol itself.

    entries:        SQ size (rounded up to a power of two by the kernel).
    flags:          ``IORING_SETUP_*``.  ``IORING_SETUP_NO_SQARRAY`` is tried
                    first unless *sq_array* is True, and dropped if the kernel
                    answers ``EINVAL`` (older than 6.6), as liburing does.
    cq_entries:     CQ size (sets ``IORING_SETUP_CQSIZE``).
    sq_thread_idle: SQPOLL thread idle time before it sleeps, milliseconds.
    sq_thread_cpu:  pin the SQPOLL thread (sets ``IORING_SETUP_SQ_AFF``).
    wq_fd:          share io-wq with this ring fd (sets ``IORING_SETUP_ATTACH_WQ``).
    sq_full:        what a ``prep`` does with a full SQ: ``"raise"``
                    ``SubmissionQueueFull`` (default), or ``"submit"`` what is
                    queued (SQPOLL: wait for the kernel thread) and go on.
    kernel:         the syscall seam (default: the running kernel).
    """

    def __init__(
        self,
        entries: int = 128,
        *,
        flags: int = 0,
        cq_entries: Optional[int] = None,
        sq_thread_idle: Optional[int] = None,
        sq_thread_cpu: Optional[int] = None,
        wq_fd: Optional[int] = None,
        sq_array: bool = False,
        sq_full: str = "raise",
        kernel: Optional[Kernel] = None,
    ) -> None:
        self._state: Optional[str] = "unset"  # None once usable
        self._fd = -1
        self._maps: List[_mmap.mmap] = []
        self._views: List[memoryview] = []
        self._keep: Dict[int, Any] = {}
        self._keep_skipped: List[Any] = []
        self._released: Optional[List[Any]] = None
        if not isinstance(entries, int) or isinstance(entries, bool) or entries < 1:
            raise ValueError(f"entries must be a positive int, got {entries!r}")
        if sq_full not in ("raise", "submit"):
            raise ValueError("sq_full must be 'raise' or 'submit'")
        self._kernel = kernel if kernel is not None else default_kernel()
        self._pid = os.getpid()

        flags = int(flags)
        params = abi.io_uring_params()
        if cq_entries is not None:
            flags |= abi.IORING_SETUP_CQSIZE
            params.cq_entries = cq_entries
        if sq_thread_idle is not None:
            params.sq_thread_idle = sq_thread_idle
        if sq_thread_cpu is not None:
            flags |= abi.IORING_SETUP_SQ_AFF
            params.sq_thread_cpu = sq_thread_cpu
        if wq_fd is not None:
            flags |= abi.IORING_SETUP_ATTACH_WQ
            params.wq_fd = wq_fd
        try_no_sqarray = not sq_array and not flags & abi.IORING_SETUP_NO_SQARRAY
        if try_no_sqarray:
            flags |= abi.IORING_SETUP_NO_SQARRAY
        self._fd, params = self._setup(entries, params, flags, try_no_sqarray)
        self.params = params
        try:
            self._map_rings(params)
        except BaseException:
            self._unmap()
            self._kernel.close(self._fd)
            self._fd = -1
            raise
        self._sq_full_submits = sq_full == "submit"
        self._state = None
        if params.flags & abi.IORING_SETUP_R_DISABLED:
            self._state = "disabled"
        _RINGS.add(self)

    # ------------------------------------------------------------------
    # set-up

    def _setup(self, entries: int, params: abi.io_uring_params, flags: int,
               may_drop_no_sqarray: bool) -> Tuple[int, abi.io_uring_params]:
        """``io_uring_setup``, retrying without ``NO_SQARRAY`` on ``EINVAL``."""
        template = bytes(params)
        params.flags = flags
        try:
            return self._kernel.setup(entries, ctypes.addressof(params)), params
        except OSError as exc:
            if exc.errno == _errno.EINVAL and may_drop_no_sqarray:
                params = abi.io_uring_params.from_buffer_copy(template)
                params.flags = flags & ~abi.IORING_SETUP_NO_SQARRAY
                try:
                    return self._kernel.setup(entries, ctypes.addressof(params)), params
                except OSError as exc2:
                    exc = exc2
            if exc.errno in (_errno.ENOSYS, _errno.EPERM, _errno.EACCES) or (
                exc.errno == _errno.ENOMEM and entries <= 4096
            ):
                raise unavailable(exc.errno or 0, f"entries={entries}, flags={abi.IoringSetup(flags)!r}") from None
            raise

    def _map_rings(self, p: abi.io_uring_params) -> None:
        """Map the SQ ring, CQ ring and SQE array and find every shared word."""
        setup = p.flags
        self._flags = int(setup)
        self._sqpoll = bool(setup & abi.IORING_SETUP_SQPOLL)
        self._iopoll = bool(setup & abi.IORING_SETUP_IOPOLL)
        self._cqe_mixed = bool(setup & getattr(abi, "IORING_SETUP_CQE_MIXED", 0))
        sqe_size = 128 if setup & abi.IORING_SETUP_SQE128 else 64
        cqe_size = 32 if setup & abi.IORING_SETUP_CQE32 else 16
        no_sqarray = bool(setup & abi.IORING_SETUP_NO_SQARRAY)
        self._sqe_size, self._cqe_size = sqe_size, cqe_size
        self._no_sqarray = no_sqarray

        sq, cq = p.sq_off, p.cq_off
        sq_size = (0 if no_sqarray else sq.array) + p.sq_entries * 4
        if no_sqarray:
            sq_size = max(sq_size, sq.flags + 4, sq.dropped + 4)
        cq_size = cq.cqes + p.cq_entries * cqe_size
        single = bool(p.features & abi.IORING_FEAT_SINGLE_MMAP)
        if single:
            sq_size = cq_size = max(sq_size, cq_size)
        sq_map = self._kernel.mmap(self._fd, sq_size, abi.IORING_OFF_SQ_RING)
        self._maps.append(sq_map)
        if single:
            cq_map = sq_map
        else:
            cq_map = self._kernel.mmap(self._fd, cq_size, abi.IORING_OFF_CQ_RING)
            self._maps.append(cq_map)
        sqe_map = self._kernel.mmap(self._fd, p.sq_entries * sqe_size, abi.IORING_OFF_SQES)
        self._maps.append(sqe_map)

        def view(m: _mmap.mmap, fmt: str = "B") -> memoryview:
            v = memoryview(m)
            self._views.append(v)
            if fmt != "B":
                v = v.cast(fmt)  # type: ignore[call-overload]
                self._views.append(v)
            return v

        # Index words as u32 slots of the ring mappings.
        self._sq_u32 = view(sq_map, "I")
        self._cq_u32 = self._sq_u32 if single else view(cq_map, "I")
        self._i_sq_head, self._i_sq_tail = sq.head // 4, sq.tail // 4
        self._i_sq_flags, self._i_sq_dropped = sq.flags // 4, sq.dropped // 4
        self._i_cq_head, self._i_cq_tail = cq.head // 4, cq.tail // 4
        self._i_cq_overflow = cq.overflow // 4
        self._i_cq_flags = cq.flags // 4 if cq.flags else -1
        self.sq_entries = int(self._sq_u32[sq.ring_entries // 4])
        self.cq_entries = int(self._cq_u32[cq.ring_entries // 4])
        self._sq_mask = int(self._sq_u32[sq.ring_mask // 4])
        self._cq_mask = int(self._cq_u32[cq.ring_mask // 4])

        # CQEs: a byte view of exactly the CQE array, read with struct.
        cq_bytes = view(cq_map) if not single else self._views[0]
        self._cqes = cq_bytes[cq.cqes: cq.cqes + p.cq_entries * cqe_size]
        self._views.append(self._cqes)
        self._cqe_struct = CQE32_STRUCT if cqe_size == 32 else CQE_STRUCT

        # SQEs: 64-bit words (8 per 64-byte SQE, 16 per 128-byte SQE) and bytes.
        self._sqe_bytes = view(sqe_map)
        self._sqe_words = view(sqe_map, "Q")
        self._sqe_shift = 4 if sqe_size == 128 else 3
        # What the last full write left in each slot (an opcode + 1, 0 for
        # unknown): a slot that already holds a zeroed NOP needs only its
        # user_data rewritten.
        self._slot_shape = bytearray(p.sq_entries)

        if not no_sqarray:
            # The indirection array: fill it once with the identity, so the
            # SQE for SQ position t is always slot t & mask (liburing does
            # the same); it is then never written again.
            arr = sq.array // 4
            for i in range(p.sq_entries):
                self._sq_u32[arr + i] = i

        # Local (not yet shared) SQ state.
        # Local SQ state, as unbounded counters (stored masked to u32):
        # _sqe_tail, the next SQE to fill; _sq_published, the tail the kernel
        # has seen; _sq_limit, the kernel head at the last look + entries,
        # so "is there room" is one compare and the head word is read only
        # when the limit is reached (_make_room).
        self._sqe_tail = int(self._sq_u32[self._i_sq_tail])
        self._sq_published = self._sqe_tail
        self._sq_limit = self._sqe_tail + self.sq_entries
        self._cq_head = int(self._cq_u32[self._i_cq_head])
        self._next_user_data = 1
        # io_uring_getevents_arg + __kernel_timespec, reused for every wait.
        self._ts = abi.kernel_timespec()
        self._ext_arg = abi.io_uring_getevents_arg()
        self._ext_arg.sigmask = 0
        self._ext_arg.sigmask_sz = _NSIG_BYTES
        self._ext_arg.ts = ctypes.addressof(self._ts)
        self._enter_fd = self._fd  # or the registered index, see _enter
        self._raw_enter = self._kernel.raw_enter()
        self._registered_thread = 0

    # ------------------------------------------------------------------
    # facts about the ring

    @property
    def fd(self) -> int:
        """The ring's file descriptor (-1 once closed)."""
        return self._fd

    @property
    def features(self) -> abi.IoringFeat:
        """``IORING_FEAT_*`` the kernel reported at set-up."""
        return abi.IoringFeat(self.params.features)

    @property
    def setup_flags(self) -> abi.IoringSetup:
        """The ``IORING_SETUP_*`` flags the ring was created with."""
        return abi.IoringSetup(self._flags)

    @property
    def closed(self) -> bool:
        return self._state in ("closed", "forked")

    @property
    def sq_head(self) -> int:
        """The kernel's SQ head: SQEs before it have been consumed."""
        return int(self._sq_u32[self._i_sq_head])

    @property
    def sq_tail(self) -> int:
        """The SQ tail as published to the kernel."""
        return int(self._sq_u32[self._i_sq_tail])

    @property
    def sq_flags(self) -> abi.IoringSqFlags:
        return abi.IoringSqFlags(self._sq_u32[self._i_sq_flags])

    @property
    def sq_dropped(self) -> int:
        """SQEs the kernel skipped because their array index was invalid."""
        return int(self._sq_u32[self._i_sq_dropped])

    @property
    def cq_head(self) -> int:
        return int(self._cq_u32[self._i_cq_head])

    @property
    def cq_tail(self) -> int:
        return int(self._cq_u32[self._i_cq_tail])

    @property
    def cq_overflow(self) -> int:
        """CQEs the kernel had to *drop* (only without ``IORING_FEAT_NODROP``
        or when it could not allocate an overflow entry)."""
        return int(self._cq_u32[self._i_cq_overflow])

    @property
    def sq_ready(self) -> int:
        """SQEs prepared here and not yet consumed by the kernel."""
        return (self._sqe_tail - self.sq_head) & _U32  # the tail is unbounded, the head u32

    @property
    def sq_space_left(self) -> int:
        return self.sq_entries - self.sq_ready

    @property
    def cq_ready(self) -> int:
        """Completion slots posted and not yet reaped (no syscall)."""
        return (self.cq_tail - self._cq_head) & _U32

    @property
    def in_flight(self) -> int:
        """Requests holding memory (buffers, iovecs) that the kernel may use."""
        return len(self._keep)

    def held(self, user_data: int) -> Any:
        """What the ring holds for the in-flight request *user_data* (its
        ``Request`` record, or the read/write hot path's
        ``(opcode, target, keep)`` tuple), or None once its final CQE has
        been reaped.  ``Completion(cqe, ring.held(ud))`` decodes a CQE the
        caller reaps raw."""
        return self._keep.get(user_data)

    def __repr__(self) -> str:
        if self._state not in (None, "disabled"):
            return f"<Ring {self._state}>"
        return f"<Ring fd={self._fd} sq={self.sq_entries} cq={self.cq_entries} flags={self.setup_flags!r}>"

    # ------------------------------------------------------------------
    # guards

    def _check(self) -> None:
        state = self._state
        if state is None:
            return
        if state == "forked" or os.getpid() != self._pid:
            self._forked()
            raise RingForkedError(
                f"this ring was created by process {self._pid} and cannot be used in the "
                f"forked child {os.getpid()}: create a new Ring in the child"
            )
        if state == "closed":
            raise RingClosedError("operation on a closed ring")
        if state == "disabled":
            raise RingClosedError(
                "the ring was created with IORING_SETUP_R_DISABLED: call enable() first"
            )
        raise RingClosedError(f"ring is not usable ({state})")

    def _forked(self) -> None:
        """In a fork child: forget the parent's ring without touching it."""
        if self._state in ("closed", "forked"):
            return
        self._state = "forked"
        # The keepalive objects are the parent's business; in the child they
        # are copies nobody reads.  Do not cancel, do not wait: the queues
        # are the parent's.  Only drop our own mappings and fd reference.
        self._keep = {}
        self._keep_skipped = []
        self._unmap()
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
        self._fd = -1

    # ------------------------------------------------------------------
    # the submission side

    def get_sqe(self) -> int:
        """Reserve the next SQE and return its slot index in the SQE array.

        The slot is ours until ``submit()`` publishes it; write it with
        ``write_sqe`` or one of the ``prep_*`` methods (which call this).
        """
        if self._state is not None:
            self._check()
        tail = self._sqe_tail
        if tail >= self._sq_limit:
            self._make_room()
        self._sqe_tail = tail + 1
        return tail & self._sq_mask

    def _make_room(self) -> None:
        """Refresh the free count from the kernel's SQ head; if still full,
        raise or (``sq_full="submit"``) push the queued SQEs to the kernel."""
        self._sq_limit = self._kernel_sq_head() + self.sq_entries
        if self._sqe_tail >= self._sq_limit and self._sq_full_submits:
            self.submit()
            self._sq_limit = self._kernel_sq_head() + self.sq_entries
            # SQPOLL: the thread makes room on its own time.  SQ_WAIT can
            # come back with the ring still full: the kernel's wait stops on
            # signal_pending(), which io_uring's own task-work notification
            # (TIF_NOTIFY_SIGNAL) also raises, and it reports no EINTR.  So
            # wait again until the head we read shows a free slot.
            while self._sqpoll and self._sqe_tail >= self._sq_limit:
                self.sq_wait()
                self._sq_limit = self._kernel_sq_head() + self.sq_entries
        if self._sqe_tail >= self._sq_limit:
            raise SubmissionQueueFull(
                f"submission queue full ({self.sq_entries} SQEs prepared or not yet "
                "consumed): call submit() first, or open the ring with sq_full='submit'"
            )

    def _kernel_sq_head(self) -> int:
        """The kernel's SQ head on our unbounded scale (it trails our tail
        by at most ``sq_entries``)."""
        head = self._sq_u32[self._i_sq_head]
        if self._sqpoll and not barriers.STRONG_ORDERING:
            # The SQ thread moves the head concurrently: acquire, so our
            # rewriting of a freed slot happens after the kernel's reading.
            barriers.acquire_fence()
        tail = self._sqe_tail
        return tail - ((tail - head) & _U32)

    def prep(
        self,
        opcode: int,
        *,
        fd: int = -1,
        off: int = 0,
        addr: int = 0,
        len: int = 0,
        op_flags: int = 0,
        user_data: Optional[int] = None,
        flags: int = 0,
        ioprio: int = 0,
        buf_index: int = 0,
        personality: int = 0,
        file_index: int = 0,
        addr3: int = 0,
        keep: Any = None,
    ) -> int:
        """Fill one whole SQE from its fields; returns its ``user_data``.

        Fields are the ``io_uring_sqe`` ones (``op_flags`` is the union
        holding ``rw_flags``, ``fsync_flags``, ``timeout_flags``, ...).
        *keep* is held by the ring until the request's final CQE: pass
        every object whose memory the SQE points at.
        """
        if user_data is None:
            user_data = self._next_user_data
            self._next_user_data += 1
        if off < 0:  # -1: "the file position" (and other all-ones sentinels)
            off &= (1 << 64) - 1
        if file_index > 0x7FFFFFFF:  # a u32 (IORING_FILE_INDEX_ALLOC) in the s32 slot
            file_index -= 1 << 32
        slot = self.get_sqe()
        self._slot_shape[slot] = 0  # before packing: a failed pack is partial
        try:
            SQE_STRUCT.pack_into(
                self._sqe_bytes, slot * self._sqe_size,
                opcode, flags, ioprio, fd, off, addr, len, op_flags, user_data,
                buf_index, personality, file_index, addr3, 0,
            )
        except struct.error as exc:
            self._unreserve(slot)
            raise ValueError(f"{op_name(opcode)}: field out of range ({exc})") from None
        if keep is not None:
            self._hold(user_data, keep, flags, slot)
        return user_data

    def _unreserve(self, slot: int) -> None:
        """Give back the slot just reserved (its SQE was not filled)."""
        self._sqe_tail -= 1

    def _hold(self, user_data: int, obj: Any, sqe_flags: int, slot: int) -> None:
        """Keep *obj* alive until the final CQE of *user_data*.

        ``IOSQE_CQE_SKIP_SUCCESS``: no CQE comes on success, so none says
        when the memory is free.  The record goes to ``_keep_skipped`` (with
        its user_data, to name a failure) and is let go of when something
        else proves the request complete: inside ``link()``, the CQE of the
        chain's last member (the kernel runs a chain in order); a failure
        CQE for it (``completions()``); ``release_skipped()``; or close.
        """
        if sqe_flags & _SKIP_SUCCESS:
            self._keep_skipped.append((user_data, obj))
            return
        if self._keep.setdefault(user_data, obj) is not obj:
            self._unreserve(slot)
            raise ValueError(
                f"user_data {user_data} belongs to a request still in flight; "
                "reusing it would make its completion ambiguous"
            )

    def release_skipped(self) -> int:
        """Let go of what the ``IOSQE_CQE_SKIP_SUCCESS`` requests outside a
        chain hold; returns how many records were released.

        Call when you know the skip-success requests submitted so far have
        completed, e.g. when an ``IORING_OP_ASYNC_CANCEL`` of each one's
        user_data answered ``-ENOENT``.  (Not a later ``IOSQE_IO_DRAIN``
        request: once a ring has seen a skip-success SQE the kernel fails
        every drain with ``-EOPNOTSUPP``.)  Records of skip-success SQEs the
        kernel has not consumed yet (from the SQ head to the tail we
        prepared) are kept.
        """
        if self._state is not None:
            self._check()
        skipped = self._keep_skipped
        if not skipped:
            return 0
        pending = set()
        words = self._sqe_size // 8
        for index in range(self._kernel_sq_head(), self._sqe_tail):
            slot = index & self._sq_mask
            if self._sqe_bytes[slot * self._sqe_size + 1] & _SKIP_SUCCESS:
                pending.add(self._sqe_words[slot * words + 4])
        kept = [entry for entry in skipped if entry[0] in pending]
        self._keep_skipped = kept
        return len(skipped) - len(kept)

    def _skipped_failure(self, user_data: int) -> Any:
        """The record of a skip-success request whose failure CQE carries
        *user_data* (it has no ``_keep`` entry), or None.  A failure CQE is
        final, so a record that only this request can own is released."""
        skipped = self._keep_skipped
        found = [i for i, entry in enumerate(skipped) if entry[0] == user_data]
        if not found:
            return None
        record = skipped[found[0]][1]
        if len(found) == 1:  # several with one user_data: which one ended is unknown
            del skipped[found[0]]
        return record

    def write_sqe(self, slot: int, sqe: Union[abi.io_uring_sqe, bytes], keep: Any = None) -> None:
        """Copy a complete ``io_uring_sqe`` (or its bytes) into *slot* (from
        ``get_sqe``); *keep* as for ``prep``."""
        raw = bytes(sqe)
        if len(raw) != self._sqe_size:
            raise ValueError(f"an SQE of this ring is {self._sqe_size} bytes, got {len(raw)}")
        start = slot * self._sqe_size
        self._slot_shape[slot] = 0
        self._sqe_bytes[start: start + self._sqe_size] = raw
        if keep is not None:
            user_data = int.from_bytes(raw[32:40], "little")
            flags = raw[1]
            self._hold(user_data, keep, flags, slot)

    def read_sqe(self, slot: int) -> Union[abi.io_uring_sqe, abi.io_uring_sqe128]:
        """A copy of the SQE in *slot*, as the ``io_uring_sqe`` structure."""
        start = slot * self._sqe_size
        cls = abi.io_uring_sqe128 if self._sqe_size == 128 else abi.io_uring_sqe
        return cls.from_buffer_copy(self._sqe_bytes[start: start + self._sqe_size])

    def _publish(self) -> int:
        """Store the local SQ tail to the shared ring (release); return the
        number of SQEs in the ring the kernel has not consumed yet."""
        tail = self._sqe_tail
        if tail != self._sq_published:
            if not barriers.STRONG_ORDERING:
                # Release: the SQE contents must be visible before the tail
                # that tells the kernel they are there.
                barriers.release_fence()
            self._sq_u32[self._i_sq_tail] = tail & _U32
            self._sq_published = tail
        return (tail - self._sq_u32[self._i_sq_head]) & _U32

    def submit(self) -> int:
        """Hand every prepared SQE to the kernel; returns how many it took.

        Without SQPOLL this is ``io_uring_enter(to_submit)``; it can take
        fewer than offered (an SQE that fails to prepare stops the batch
        unless ``IORING_SETUP_SUBMIT_ALL``): the rest stay in the ring and
        go with the next submit.
        """
        if self._state is not None:
            self._check()
        pending = self._publish()
        if self._sqpoll:
            return self._submit_sqpoll(pending, 0)
        if pending == 0 and not self._iopoll:
            return 0
        return self._enter(pending, 0, self._getevents_flags(0))

    def submit_and_wait(self, wait_nr: int = 1) -> int:
        """Submit, and block until at least *wait_nr* completions are in the CQ
        (they are *not* reaped: use ``reap()``).  Returns SQEs submitted."""
        if self._state is not None:
            self._check()
        pending = self._publish()
        if self._sqpoll:
            return self._submit_sqpoll(pending, wait_nr)
        return self._enter(pending, wait_nr, _ENTER_GETEVENTS if wait_nr else self._getevents_flags(0))

    def _getevents_flags(self, wait_nr: int) -> int:
        """GETEVENTS when the kernel needs us to enter for completions:
        IOPOLL (completions are found by polling in enter) or pending
        overflow/task work flagged in the SQ flags."""
        if wait_nr or self._iopoll or self._sq_u32[self._i_sq_flags] & (_SQ_CQ_OVERFLOW | _SQ_TASKRUN):
            return _ENTER_GETEVENTS
        return 0

    def _submit_sqpoll(self, pending: int, wait_nr: int) -> int:
        """SQPOLL: the kernel thread consumes the SQ by itself; enter only to
        wake it (``IORING_SQ_NEED_WAKEUP``) or to wait for completions.

        The full fence: we stored the tail and now load the flags.  The
        SQ thread does the opposite (sets NEED_WAKEUP, then re-reads the tail
        before sleeping).  Without a store->load fence our load can be
        satisfied before our tail store is visible: we read "awake", the
        thread reads the old tail and sleeps, and nobody wakes it.  TSO
        allows exactly that reordering, so the fence is needed on x86 too.
        """
        barriers.full_fence()
        flags = 0
        if self._sq_u32[self._i_sq_flags] & _SQ_NEED_WAKEUP:
            flags |= _ENTER_SQ_WAKEUP
        if wait_nr:
            flags |= _ENTER_GETEVENTS
        if flags:
            self._enter(0, wait_nr, flags)
        return pending

    def sq_wait(self) -> None:
        """SQPOLL: block until the kernel thread has made room in the SQ
        (``IORING_ENTER_SQ_WAIT``).

        One enter, like liburing's ``io_uring_sqring_wait``: the kernel's wait
        also ends, without an error, when a signal or io_uring task work is
        pending, so the SQ may still be full on return; read the head again
        (``sq_space_left``) and call again if it is."""
        if self._state is not None:
            self._check()
        self._enter(0, 0, _ENTER_SQ_WAIT)

    def _enter(self, to_submit: int, min_complete: int, flags: int,
               arg: int = 0, argsz: int = 0, *, retry_eintr: bool = True) -> int:
        """``io_uring_enter`` with ``EINTR`` retried.

        Retrying is safe: the kernel returns ``EINTR`` only when it consumed
        no SQE (once any is submitted it returns the count instead), so the
        same call asks for the same thing again.  Signal handlers run
        between attempts (a ``KeyboardInterrupt`` propagates).  A wait with
        a timeout passes *retry_eintr* False and retries itself, with the
        time that is left: the same timespec again would restart the full
        timeout at every signal.
        """
        fd = self._enter_fd
        if fd != self._fd:
            fd, flags = self._registered_target(flags)
        while True:
            try:
                return self._kernel.enter(fd, to_submit, min_complete, flags, arg, argsz)
            except InterruptedError:
                if not retry_eintr:
                    raise

    # ------------------------------------------------------------------
    # the completion side

    @overload
    def reap(self, max_cqes: Optional[int] = None, *, raw: Literal[False] = False) -> List[Cqe]: ...
    @overload
    def reap(self, max_cqes: Optional[int] = None, *, raw: Literal[True]) -> List[Tuple[int, ...]]: ...
    @overload
    def reap(self, max_cqes: Optional[int] = None, *, raw: bool) -> List[Any]: ...

    def reap(self, max_cqes: Optional[int] = None, *, raw: bool = False) -> List[Any]:
        """Copy out every completion available now (at most *max_cqes*),
        oldest first, and hand their slots back to the kernel.

        With *raw*, each completion is a plain tuple ``(user_data, res,
        flags[, big0, big1])`` instead of a ``Cqe``: the same fields in the
        same order, about a quarter of the cost per CQE (building a tuple
        subclass is what a ``Cqe`` costs), for hot loops.

        No system call unless the kernel asks for one: overflowed CQEs
        waiting in the kernel's list (``IORING_SQ_CQ_OVERFLOW``), task work
        to run (``IORING_SQ_TASKRUN``), or an IOPOLL ring that finds
        completions only when entered.
        """
        if self._state is not None:
            self._check()
        limit = _NO_LIMIT if max_cqes is None else max_cqes
        out = self._reap_ring(limit, raw)
        if self._iopoll or self._sq_u32[self._i_sq_flags] & (_SQ_CQ_OVERFLOW | _SQ_TASKRUN):
            out += self._reap_from_kernel(limit - len(out), raw)
        return out

    def _reap_from_kernel(self, limit: int, raw: bool) -> List[Any]:
        """Enter with GETEVENTS to flush the overflow list / run task work
        into the CQ (emptied by the caller), and go on while the kernel
        flags that it holds more for us."""
        out: List[Any] = []
        flags_word, i_flags = self._sq_u32, self._i_sq_flags
        while len(out) < limit:
            self._enter(0, 0, _ENTER_GETEVENTS)
            more = self._reap_ring(limit - len(out), raw)
            out += more
            if not more or not flags_word[i_flags] & (_SQ_CQ_OVERFLOW | _SQ_TASKRUN):
                break
        return out

    def _reap_ring(self, limit: int, raw: bool = False) -> List[Any]:
        """Copy CQEs between our head and the kernel's tail, then release
        the head.  The tail load is the acquire that makes the CQE bytes
        written before it visible to us."""
        head = self._cq_head
        tail = self._cq_u32[self._i_cq_tail]
        if not barriers.STRONG_ORDERING:
            barriers.acquire_fence()
        ready = (tail - head) & _U32
        if not ready:
            return []
        if ready > limit:
            ready = limit
        if self._cqe_mixed:
            out, ready = self._reap_mixed(head, ready, raw)
        elif ready == 1:
            one = self._cqe_struct.unpack_from(self._cqes, (head & self._cq_mask) * self._cqe_size)
            out = [one if raw else _make_cqe(one)]
        else:
            start = head & self._cq_mask
            size = self._cqe_size
            first = self.cq_entries - start
            unpack = self._cqe_struct.iter_unpack
            if ready <= first:
                records = unpack(self._cqes[start * size: (start + ready) * size])
            else:  # the run wraps: two contiguous pieces
                records = chain(unpack(self._cqes[start * size:]),
                                unpack(self._cqes[: (ready - first) * size]))
            out = list(records) if raw else list(map(_make_cqe, records))
        head = (head + ready) & _U32
        self._cq_head = head
        if not barriers.STRONG_ORDERING:
            # Release: our reads of the slots complete before the kernel may
            # see them free and overwrite them.
            barriers.release_fence()
        self._cq_u32[self._i_cq_head] = head
        keep = self._keep
        released = self._released
        if released is not None:
            # completions() pairs each CQE with what its request held.
            for cqe in out:
                ud = cqe[0]
                released.append(keep.get(ud) if cqe[2] & _CQE_F_MORE else keep.pop(ud, None))
        elif keep:
            pop = keep.pop
            for cqe in out:
                if not cqe[2] & _CQE_F_MORE:
                    pop(cqe[0], None)
        return out

    def _reap_mixed(self, head: int, ready: int, raw: bool) -> Tuple[List[Any], int]:
        """``IORING_SETUP_CQE_MIXED``: 16-byte slots; a CQE flagged
        ``IORING_CQE_F_32`` takes two, and a ``IORING_CQE_F_SKIP`` filler
        (posted where a big CQE would have wrapped) is stepped over."""
        out: List[Any] = []
        mask = self._cq_mask
        cqes = self._cqes
        i = 0
        while i < ready:
            slot = (head + i) & mask
            ud, res, fl = CQE_STRUCT.unpack_from(cqes, slot * 16)
            if fl & _CQE_F_32:
                if i + 1 >= ready:
                    break  # the second half is not published yet
                big = struct.unpack_from("<QQ", cqes, slot * 16 + 16)
                record = (ud, res, fl) + big
                out.append(record if raw else _make_cqe(record))
                i += 2
            else:
                if not fl & _CQE_F_SKIP:
                    out.append((ud, res, fl) if raw else Cqe.of(ud, res, fl))
                i += 1
        return out, i

    def peek(self) -> Optional[Cqe]:
        """The oldest available completion, or None (no waiting)."""
        got = self.reap(1)
        return got[0] if got else None

    @overload
    def wait(self, n: int = 1, timeout: Timeout = None, *, raw: Literal[False] = False) -> List[Cqe]: ...
    @overload
    def wait(self, n: int = 1, timeout: Timeout = None, *, raw: Literal[True]) -> List[Tuple[int, ...]]: ...
    @overload
    def wait(self, n: int = 1, timeout: Timeout = None, *, raw: bool) -> List[Any]: ...

    def wait(self, n: int = 1, timeout: Timeout = None, *, raw: bool = False) -> List[Any]:
        """Submit anything prepared, then wait until at least *n* completions
        are available (or *timeout* seconds pass) and reap them all.

        On timeout the completions that did arrive are returned (possibly
        none).  The timeout goes to the kernel as ``IORING_ENTER_EXT_ARG``
        with an ``io_uring_getevents_arg``; an ``EINTR`` retries with the
        time that is left.  *raw* as for ``reap``.
        """
        if self._state is not None:
            self._check()
        if timeout is None and self._raw_enter is not None and not (self._sqpoll or self._iopoll):
            return self._wait_direct(n, raw)
        if self._cq_u32[self._i_cq_tail] != self._cq_head or self._sq_u32[self._i_sq_flags]:
            out = self.reap(raw=raw)
        else:
            out = []  # nothing posted, nothing flagged: skip the reap
        if timeout is None and not self._sqpoll and not self._iopoll:
            # One io_uring_enter both submits and waits.
            while len(out) < n:
                self._enter(self._publish(), n - len(out), _ENTER_GETEVENTS)
                out += self.reap(raw=raw)
            if self._sqe_tail != self._sq_published:
                self.submit()  # enough were already there: submit what is prepared
            return out
        return self._wait_slow(out, n, timeout, raw)

    def _wait_direct(self, n: int, raw: bool) -> List[Any]:
        """``wait`` without a timeout on the real kernel: the hot path.

        Publish the tail, and unless *n* completions are already there and
        nothing is pending, make one ``io_uring_enter(to_submit, n,
        GETEVENTS)`` straight through libc (see ``Kernel.raw_enter``: at
        batch size 1 the frames of ``_enter``/``Kernel.enter`` cost as
        much as the system call); the kernel returns once the CQ holds
        *n*, counting the ones we have not reaped.  Then reap everything.
        """
        syscall, number = self._raw_enter  # type: ignore[misc]
        fd, flags = self._enter_fd, _ENTER_GETEVENTS
        if fd != self._fd:
            fd, flags = self._registered_target(flags)
        sq, cq = self._sq_u32, self._cq_u32
        out: List[Any] = []
        while True:
            want = n - len(out)
            pending = self._publish()
            if pending or (cq[self._i_cq_tail] - self._cq_head) & _U32 < want:
                if syscall(number, fd, pending, want if want > 0 else 0, flags, None, 0) < 0:
                    self._raw_enter_failed()  # EINTR: nothing consumed; go round
            out += self._reap_ring(_NO_LIMIT, raw)
            if sq[self._i_sq_flags] & (_SQ_CQ_OVERFLOW | _SQ_TASKRUN):
                out += self._reap_from_kernel(_NO_LIMIT, raw)
            if len(out) >= n:
                return out

    def _registered_target(self, flags: int) -> Tuple[int, int]:
        """(fd, flags) for io_uring_enter once the ring fd is registered: the
        registered index is an entry in the *registering thread's* table,
        so only that thread passes it (with ``IORING_ENTER_REGISTERED_RING``);
        other threads use the real fd."""
        if threading.get_ident() == self._registered_thread:
            return self._enter_fd, flags | _ENTER_REGISTERED_RING
        return self._fd, flags

    def _raw_enter_failed(self) -> None:
        """The errno of a failed direct ``io_uring_enter``: return on EINTR
        (the caller retries, as ``_enter`` does), raise anything else."""
        err = ctypes.get_errno()
        if err != _errno.EINTR:
            raise kernel_error(err, "io_uring_enter")

    def _wait_slow(self, out: List[Any], n: int, timeout: Timeout, raw: bool) -> List[Any]:
        """``wait`` with a deadline and/or an SQ thread to wake."""
        pending = self._publish()
        if len(out) >= n:
            if pending:
                self.submit()
            return out
        deadline = None
        if timeout is not None:
            if not self.params.features & abi.IORING_FEAT_EXT_ARG:
                raise UnsupportedOperation("IORING_ENTER_EXT_ARG (a wait with a timeout)")
            deadline = time.monotonic() + _seconds(timeout)
        while len(out) < n:
            flags = _ENTER_GETEVENTS
            arg = argsz = 0
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                self._ts.tv_sec = int(left)
                self._ts.tv_nsec = int((left - int(left)) * 1e9)
                flags |= _ENTER_EXT_ARG
                arg = ctypes.addressof(self._ext_arg)
                argsz = ctypes.sizeof(self._ext_arg)
            to_submit = pending
            if self._sqpoll:
                to_submit = 0
                barriers.full_fence()  # see _submit_sqpoll
                if self._sq_u32[self._i_sq_flags] & _SQ_NEED_WAKEUP:
                    flags |= _ENTER_SQ_WAKEUP
            try:
                self._enter(to_submit, n - len(out), flags, arg, argsz,
                            retry_eintr=deadline is None)
            except InterruptedError:
                continue  # nothing consumed; go round with the time that is left
            except OSError as exc:
                if exc.errno != _errno.ETIME:
                    raise
                return out + self.reap(raw=raw)
            pending = self._publish()
            out += self.reap(raw=raw)
            if deadline is not None and time.monotonic() >= deadline:
                break
        return out

    # ------------------------------------------------------------------
    # registration (the raw call; conveniences are in uring.register)

    def register(self, opcode: int, arg: int = 0, nr_args: int = 0) -> int:
        """``io_uring_register(fd, opcode, arg, nr_args)``, ``EINTR`` retried
        (the kernel fails a register op with ``EINTR`` only before changing
        anything, e.g. while waiting for in-flight users of a table)."""
        if self._state is not None and self._state != "disabled":
            self._check()
        while True:
            try:
                return self._kernel.register(self._fd, opcode, arg, nr_args)
            except InterruptedError:
                continue
            except OSError as exc:
                name = abi.IoringRegisterOp(opcode).name if opcode in abi.IoringRegisterOp._value2member_map_ else str(opcode)
                raise kernel_error(exc.errno or 0, f"io_uring_register({name})") from None

    def resize(self, sq_entries: int, cq_entries: Optional[int] = None) -> None:
        """New SQ and CQ sizes for a live ring (``IORING_REGISTER_RESIZE_RINGS``,
        6.13+; the ring must be set up with ``IORING_SETUP_DEFER_TASKRUN``,
        so that nothing else posts completions meanwhile).

        The kernel allocates new ring memory and copies into it the SQEs it
        has not consumed and the CQEs not yet reaped, heads and tails
        unchanged; if they do not fit it refuses (``EOVERFLOW``) and the old
        rings stay.  Everything prepared is published first, so it is
        carried over; then the old mappings are dropped and the new ones
        mapped from the offsets the kernel wrote back.
        """
        self._check()
        self._publish()
        p = abi.io_uring_params()
        p.sq_entries = sq_entries
        if cq_entries is not None:
            p.flags = int(abi.IORING_SETUP_CQSIZE)
            p.cq_entries = cq_entries
        self.register(abi.IORING_REGISTER_RESIZE_RINGS, ctypes.addressof(p), 1)
        kept = (self._sqe_tail, self._sq_published, self._next_user_data,
                self._enter_fd, self._registered_thread)
        p.flags = self.params.flags | (p.flags & abi.IORING_SETUP_CQSIZE)
        p.features = self.params.features
        self._unmap()
        self._map_rings(p)
        (self._sqe_tail, self._sq_published, self._next_user_data,
         self._enter_fd, self._registered_thread) = kept
        self._sq_limit = self._kernel_sq_head() + self.sq_entries
        self.params = p

    def enable(self) -> None:
        """Start a ring created with ``IORING_SETUP_R_DISABLED``
        (``IORING_REGISTER_ENABLE_RINGS``); restrictions must be set before."""
        if self._state != "disabled":
            self._check()
            raise RingClosedError("enable(): the ring is not disabled")
        self.register(abi.IORING_REGISTER_ENABLE_RINGS, 0, 0)
        self._state = None

    # ------------------------------------------------------------------
    # teardown

    def close(self, *, cancel: bool = True, timeout: Timeout = 5.0) -> None:
        """Tear the ring down without ever freeing memory the kernel may use.

        Prepared but unsubmitted SQEs are discarded.  If requests holding
        buffers are still in flight, they are cancelled (with *cancel*,
        ``IORING_OP_ASYNC_CANCEL`` for any request) and waited for up to
        *timeout* seconds; their completions are discarded.  Buffers of
        requests that are still not complete then are kept alive for the
        rest of the process (a deliberate leak, never a use-after-free).
        In a forked child, only this process's mapping and fd are dropped.
        """
        state = self._state
        if state in ("closed", "forked", "unset"):
            if state == "unset":
                self._unmap()
            return
        if os.getpid() != self._pid:
            self._forked()
            return
        try:
            if state is None:
                self._discard_unsubmitted()
                if self._keep:
                    self._drain(cancel, timeout)
        finally:
            leftover = list(self._keep.values()) + [obj for _, obj in self._keep_skipped]
            if leftover:
                _GRAVEYARD.extend(leftover)
            self._keep = {}
            self._keep_skipped = []
            self._state = "closed"
            _RINGS.discard(self)
            self._unmap()
            fd, self._fd = self._fd, -1
            if fd >= 0:
                self._kernel.close(fd)

    def _discard_unsubmitted(self) -> None:
        """Drop SQEs prepared but never published, and what they held."""
        tail, published = self._sqe_tail, self._sq_published
        words_per_sqe = self._sqe_size // 8
        while published != tail:
            slot = published & self._sq_mask
            self._keep.pop(self._sqe_words[slot * words_per_sqe + 4], None)
            published += 1
        self._sqe_tail = self._sq_published

    def _drain(self, cancel: bool, timeout: Timeout) -> None:
        deadline = time.monotonic() + (_seconds(timeout) if timeout is not None else 1e9)
        if cancel:
            self._cancel_everything()
        while self._keep:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                self.wait(1, timeout=min(left, 1.0))
            except OSError:
                break

    def _cancel_everything(self) -> None:
        """``IORING_OP_ASYNC_CANCEL`` with ``IORING_ASYNC_CANCEL_ANY|ALL``
        (5.19+); on older kernels, one cancel per tracked user_data."""
        marker = (1 << 64) - 1
        try:
            self.prep(abi.IORING_OP_ASYNC_CANCEL, fd=-1, user_data=marker,
                      op_flags=abi.IORING_ASYNC_CANCEL_ANY | abi.IORING_ASYNC_CANCEL_ALL)
            self.submit()
        except (OSError, SubmissionQueueFull):
            return

    def _unmap(self) -> None:
        for v in reversed(self._views):
            try:
                v.release()
            except BufferError:  # pragma: no cover - a view exported further
                pass
        self._views = []
        for m in self._maps:
            try:
                m.close()
            except BufferError:  # pragma: no cover
                pass
        self._maps = []

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if self._state is None or self._state == "disabled":
                self.close(timeout=1.0)
            elif self._state == "unset":
                self._unmap()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

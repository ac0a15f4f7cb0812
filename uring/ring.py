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

import collections
import contextlib
import ctypes
import datetime
import errno as _errno
import functools
import mmap as _mmap
import os
import struct
import sys
import threading
import time
from array import array as _array
from functools import partial
from itertools import chain
from itertools import repeat as _repeat
from operator import and_ as _and
from operator import itemgetter as _itemgetter
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Literal,
    Optional,
    Sequence,
    Set,
    Tuple,
    TypeVar,
    Union,
    overload,
)

from . import abi, barriers
from .buffers import add_holder
from .errors import (
    RingClosedError,
    RingForkedError,
    RingThreadError,
    SubmissionQueueFull,
    UnsupportedOperation,
    check_int,
    kernel_error,
    unavailable,
)
from .request import Completion, Request, op_name
from .syscalls import Kernel, default_kernel, on_fork_in_child

__all__ = ["Cqe", "RingCore", "ThreadOwner", "Timeout"]

#: A timeout: seconds (int or float), a ``datetime.timedelta``, or None for none.
Timeout = Union[None, float, int, datetime.timedelta]

_U32 = 0xFFFFFFFF
_ENTER_GETEVENTS = int(abi.IORING_ENTER_GETEVENTS)
_ENTER_SQ_WAKEUP = int(abi.IORING_ENTER_SQ_WAKEUP)
_ENTER_SQ_WAIT = int(abi.IORING_ENTER_SQ_WAIT)
_ENTER_EXT_ARG = int(abi.IORING_ENTER_EXT_ARG)
_ENTER_REGISTERED_RING = int(abi.IORING_ENTER_REGISTERED_RING)
_SQ_NEED_WAKEUP = int(abi.IORING_SQ_NEED_WAKEUP)
_SQ_CQ_OVERFLOW = int(abi.IORING_SQ_CQ_OVERFLOW)
_SQ_TASKRUN = int(abi.IORING_SQ_TASKRUN)
_CQE_F_MORE = int(abi.IORING_CQE_F_MORE)
# states in which the shared rings are no longer mapped here
_UNMAPPED = frozenset({"closed", "forked"})
# io_uring_cqe.flags is the u32 at byte 12 of a CQE; its low byte (which
# holds IORING_CQE_F_MORE) comes first on a little-endian machine, last on
# a big-endian one.  _MORE_BIT maps a flags low byte to 1 if F_MORE is set.
_CQE_FLAGS_LOW_BYTE = 12 if sys.byteorder == "little" else 15
assert _CQE_F_MORE < 256
_MORE_BIT = bytes(1 if b & _CQE_F_MORE else 0 for b in range(256))
_SKIP_SUCCESS = int(abi.IOSQE_CQE_SKIP_SUCCESS)
_CQE_F_SKIP = int(abi.IORING_CQE_F_SKIP)
_CQE_F_32 = int(abi.IORING_CQE_F_32)
_NO_LIMIT = 1 << 62
_R = TypeVar("_R", bound="RingCore")
#: IORING_MAX_ENTRIES and IORING_MAX_CQ_ENTRIES (io_uring/io_uring.h in the
#: kernel): larger sizes fail with EINVAL unless IORING_SETUP_CLAMP.
MAX_ENTRIES = 32768
MAX_CQ_ENTRIES = 2 * MAX_ENTRIES
_SETUP_CLAMP = int(abi.IORING_SETUP_CLAMP)
_SETUP_NO_SQARRAY = int(abi.IORING_SETUP_NO_SQARRAY)
_KNOWN_SETUP_FLAGS = sum(int(f) for f in abi.IoringSetup)
#: io_uring_sqe.flags: the bits the header names (IOSQE_FIXED_FILE ...
#: IOSQE_CQE_SKIP_SUCCESS); the kernel fails a request with any other
#: (-EINVAL).  One AND per prep tests a value against the rest.
_IOSQE_KNOWN = sum(int(f) for f in abi.IosqeFlags)
_IOSQE_UNKNOWN = ~_IOSQE_KNOWN


_FILE_POSITION_OPS = frozenset(int(op) for op in (
    abi.IORING_OP_READ, abi.IORING_OP_WRITE, abi.IORING_OP_READV, abi.IORING_OP_WRITEV,
    abi.IORING_OP_READ_FIXED, abi.IORING_OP_WRITE_FIXED, abi.IORING_OP_READ_MULTISHOT,
    abi.IORING_OP_READV_FIXED, abi.IORING_OP_WRITEV_FIXED,
))


def _in_flight(opcode: int, user_data: int) -> ValueError:
    return ValueError(f"{op_name(opcode)}: user_data {user_data} belongs to a request still in "
                      "flight; reusing it would make its completion ambiguous")


def _unknown_sqe_flags(what: str, flags: int) -> ValueError:
    """The error for SQE *flags* with a bit no ``IOSQE_*`` flag names."""
    known = ", ".join(str(f.name) for f in abi.IosqeFlags)
    if flags < 0:
        return ValueError(f"{what}: flags {flags}: the SQE flags are a byte of IOSQE_* bits "
                          f"({known}), not a negative number")
    bits = [f"{1 << i:#x}" for i in range(flags.bit_length()) if _IOSQE_UNKNOWN >> i & flags >> i & 1]
    named = f"bit {bits[0]} is" if len(bits) == 1 else f"bits {', '.join(bits)} are"
    return ValueError(f"{what}: flags {flags:#x}: {named} no IOSQE_* flag "
                      f"(the kernel knows {known}: {_IOSQE_KNOWN:#x})")


def _field_error(what: str, exc: BaseException) -> Exception:
    """A value that cannot go into its SQE field: ``TypeError`` for one of
    the wrong type, ``ValueError`` for one out of the field's range."""
    text = str(exc)
    if isinstance(exc, TypeError) or "not an integer" in text or "must be" in text \
            and "int" in text and "range" not in text:
        return TypeError(f"{what}: a field has the wrong type ({text})")
    return ValueError(f"{what}: a field is out of range ({text})")


def _pow2(n: int) -> int:
    """The kernel's ``roundup_pow_of_two``."""
    return 1 << (n - 1).bit_length()


_setup_int = check_int


def setup_flags_text(flags: int) -> str:
    """``IORING_SETUP_*`` names of *flags*, unknown bits in hex."""
    names = [f.name or "" for f in abi.IoringSetup if f.value and flags & f.value]
    unknown = flags & ~_KNOWN_SETUP_FLAGS
    if unknown:
        names.append(f"{unknown:#x}")
    return "|".join(names) or "0"


_get_ident = threading.get_ident
_sink: "collections.deque[Any]" = collections.deque(maxlen=0)
_consume = _sink.extend  # runs an iterator to its end in C, keeping nothing
_CLAIM = threading.Lock()  # a first use from two threads at once: one wins
_NSIG_BYTES = 8  # _NSIG / 8: the kernel's sigset_t size, for io_uring_getevents_arg

_U64_WRAP = 1 << 64
_OP_NOP = int(abi.IORING_OP_NOP)
_OP_LINK_TIMEOUT = int(abi.IORING_OP_LINK_TIMEOUT)
_IO_LINK = int(abi.IOSQE_IO_LINK)
_IO_HARDLINK = int(abi.IOSQE_IO_HARDLINK)
#: What ``_slot_shape`` records for a slot holding a clean NOP (all fields
#: zero but ``fd`` -1 and ``user_data``); 0 for anything else.
_NOP_SHAPE = 1
# The one SQE and CQE formats (``uring.abi``).
SQE_STRUCT = abi.SQE_STRUCT
CQE_STRUCT = abi.CQE_STRUCT
CQE32_STRUCT = abi.CQE32_STRUCT
_pack_sqe = SQE_STRUCT.pack_into
builtins_len = len  # ``prep`` has a parameter named after the SQE field ``len``


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
_first, _third = _itemgetter(0), _itemgetter(2)


_LONGEST_WAIT = float(1 << 40)  # seconds: see _wait_direct


def _seconds(timeout: Any) -> float:
    """A timeout in seconds: an int, a float or a ``timedelta``, >= 0 and
    finite (``TypeError`` for anything else, ``ValueError`` out of range)."""
    if isinstance(timeout, datetime.timedelta):
        seconds = timeout.total_seconds()
    elif isinstance(timeout, (int, float)) and timeout.__class__ is not bool:
        seconds = float(timeout)
    else:
        raise TypeError(f"a timeout is seconds (int or float) or a timedelta, "
                        f"not {type(timeout).__name__}")
    if not 0 <= seconds < float("inf"):  # NaN fails too
        raise ValueError(f"timeout must be >= 0 seconds and finite, got {timeout!r}")
    return seconds


def _count(n: Any) -> int:
    """How many completions to wait for: a non-negative int."""
    if n.__class__ is bool or not isinstance(n, int):
        raise TypeError(f"a completion count is an int, not {type(n).__name__}")
    if not 0 <= n <= _U32:
        raise ValueError(f"a completion count must be in 0..{_U32}, got {n}")
    return int(n)


# Buffers whose requests were still in flight when their ring had to let go
# (close timed out, ring collected): kept for the life of the process,
# because the kernel may still write into them.  A leak, on purpose.
_GRAVEYARD: List[Any] = []


class ThreadOwner:
    """Which thread may use an object whose state is updated without locks
    (a default ring, a block image): the first thread that uses it, until
    it hands it over (``release``) or ends.

    ``ident`` is the owner's ``threading.get_ident()`` (None: unowned), for
    the callers' one-compare fast path: ``if owner.ident != get_ident():
    owner.claim()``.  ``claim`` takes an unowned object (or one whose
    owner has ended: nobody can be using it) or raises ``RingThreadError``
    naming *what* and *remedy*.  With *shared* every thread may use the
    object (its own locks serialise it) and ``claim`` does nothing.
    """

    __slots__ = ("ident", "thread", "shared", "what", "remedy")

    def __init__(self, what: str, remedy: str, shared: bool = False) -> None:
        self.ident: Optional[int] = None
        self.thread = threading.main_thread()
        self.shared = shared
        self.what = what
        self.remedy = remedy

    def claim(self) -> None:
        if self.shared:
            return
        me = _get_ident()
        with _CLAIM:
            owner = self.ident
            if owner is None or owner == me or not self.thread.is_alive():
                self.ident, self.thread = me, threading.current_thread()
                return
        raise RingThreadError(
            f"this {self.what} belongs to thread {owner} and was used from thread {me}: it "
            "is updated without locks, so two threads could take one completion twice or "
            f"lose one.  {self.remedy}"
        )

    def release(self) -> None:
        """Hand the object over: the next thread to use it owns it (only its
        owner, or anyone while it is unowned, may)."""
        if self.shared:
            return
        if self.ident not in (None, _get_ident()):
            self.claim()  # raises: not ours to hand over
        self.ident = None


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
    threadsafe:     share the ring between threads.  By default a ring
                    belongs to the first thread that uses it and any other
                    thread's call raises ``RingThreadError`` (its queues are
                    updated without locks; ``release_thread()`` hands it
                    over).  With True, one lock serialises the SQ side
                    (prep, publish) and another the CQ side (reap), taken
                    CQ first; no lock is held in a blocking ``io_uring_enter``
                    except by ``reap_records``/``completions`` (the CQ lock)
                    and by ``sq_wait`` or a prep that waits for room (the SQ
                    lock).  ``close()`` from one thread wakes the others
                    waiting in the ring (``RingClosedError``) before it
                    unmaps it; a call made during or after it raises
                    ``RingClosedError``, never enters a closed fd.
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
        threadsafe: bool = False,
    ) -> None:
        self._state: Optional[str] = "unset"  # None once usable
        self._threadsafe = bool(threadsafe)
        self._owner = ThreadOwner(
            "ring", "Create it with threadsafe=True to share it, or call release_thread() in "
            "its thread to hand it over", shared=self._threadsafe)
        self._fd = -1
        self._maps: List[_mmap.mmap] = []
        self._views: List[memoryview] = []
        # The one table: user_data -> the Request of every request in
        # flight that holds memory or has an owner (see uring.request);
        # None for a bare NOP's, which holds nothing but whose user_data
        # no other request may take until its CQE (see prep_rw).
        self._requests: Dict[int, Optional[Request]] = {}
        # Records of IOSQE_CQE_SKIP_SUCCESS requests (see _hold).
        self._skipped: List[Request] = []
        # While set, the reap appends each CQE's record here (None where
        # none), in CQE order: completions() and wait_owned() pair them.
        self._pairing: Optional[List[Optional[Request]]] = None
        # CQEs taken from the CQ by a call that an exception then broke
        # into (a signal handler's, e.g. Ctrl-C, between two rounds of a
        # wait), as raw tuples with their records: the next reap, of any
        # kind, hands them out first (see _carry).
        self._carried: List[Tuple[Tuple[int, ...], Optional[Request]]] = []
        # threadsafe=True: the thread closing the ring (set once, first
        # thing close() does), the threads inside a wait (they keep the
        # rings mapped, and the fd open: close leaves it to the last of
        # them, _fd_after_waiters), and the user_data of the wake-up
        # timeouts close posted for them (see _wake_waiters).
        self._closer: Optional[int] = None
        self._in_wait = 0
        self._fd_after_waiters = -1
        self._wakeups: Set[int] = set()
        add_holder(self)  # PinnedBuffer.release asks held_roots()
        # Every value that lands in a u32 of io_uring_params is checked
        # here: ctypes would store it modulo 2**32 without a word.
        flags = _setup_int("flags", flags, 0, _U32)
        clamp = flags & _SETUP_CLAMP
        entries = _setup_int("entries", entries, 1, _U32)
        if entries > MAX_ENTRIES and not clamp:
            raise ValueError(
                f"entries={entries}: the kernel takes at most {MAX_ENTRIES} SQ entries "
                "(IORING_MAX_ENTRIES); pass flags=IORING_SETUP_CLAMP to have it clamped")
        if sq_full not in ("raise", "submit"):
            raise ValueError(f"sq_full must be 'raise' or 'submit', got {sq_full!r}")
        params = abi.io_uring_params()
        if cq_entries is not None:
            cq_entries = _setup_int("cq_entries", cq_entries, 1, _U32)
            if cq_entries > MAX_CQ_ENTRIES and not clamp:
                raise ValueError(
                    f"cq_entries={cq_entries}: the kernel takes at most {MAX_CQ_ENTRIES} CQ "
                    "entries (IORING_MAX_CQ_ENTRIES); pass flags=IORING_SETUP_CLAMP to have it "
                    "clamped")
            # The kernel rounds both up to powers of two, then compares.
            if _pow2(cq_entries) < _pow2(min(entries, MAX_ENTRIES)):
                raise ValueError(f"cq_entries={cq_entries} is less than entries={entries} (each "
                                 "rounded up to a power of two): the CQ must hold at least as "
                                 "many as the SQ")
            flags |= int(abi.IORING_SETUP_CQSIZE)
            params.cq_entries = cq_entries
        if sq_thread_idle is not None:
            params.sq_thread_idle = _setup_int("sq_thread_idle (milliseconds)", sq_thread_idle,
                                               0, _U32)
        if sq_thread_cpu is not None:
            flags |= int(abi.IORING_SETUP_SQ_AFF)
            params.sq_thread_cpu = _setup_int("sq_thread_cpu", sq_thread_cpu, 0, _U32)
        if wq_fd is not None:
            flags |= int(abi.IORING_SETUP_ATTACH_WQ)
            params.wq_fd = _setup_int("wq_fd", wq_fd, 0, 0x7FFFFFFF)
        self._kernel = kernel if kernel is not None else default_kernel()
        self._pid = os.getpid()
        try_no_sqarray = not sq_array and not flags & _SETUP_NO_SQARRAY
        if try_no_sqarray:
            flags |= _SETUP_NO_SQARRAY
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
        if self._threadsafe:
            self._install_locks()
        self._state = None
        if params.flags & abi.IORING_SETUP_R_DISABLED:
            self._state = "disabled"
        on_fork_in_child(self, "_forked")  # a fork child's copy is unusable

    # ------------------------------------------------------------------
    # set-up

    def _setup(self, entries: int, params: abi.io_uring_params, flags: int,
               may_drop_no_sqarray: bool) -> Tuple[int, abi.io_uring_params]:
        """``io_uring_setup``, retrying without ``NO_SQARRAY`` on ``EINVAL``
        (a kernel older than 6.6), every other flag bit kept as given."""
        template = bytes(params)
        params.flags = flags
        try:
            return self._kernel.setup(entries, ctypes.addressof(params)), params
        except OSError as exc:
            if exc.errno == _errno.EINVAL and may_drop_no_sqarray:
                flags &= ~_SETUP_NO_SQARRAY  # a plain int: unknown bits stay
                params = abi.io_uring_params.from_buffer_copy(template)
                params.flags = flags
                try:
                    return self._kernel.setup(entries, ctypes.addressof(params)), params
                except OSError as exc2:
                    exc = exc2
            what = f"entries={entries}, flags={setup_flags_text(flags)}"
            if exc.errno in (_errno.ENOSYS, _errno.EPERM, _errno.EACCES) or (
                exc.errno == _errno.ENOMEM and entries <= 4096
            ):
                raise unavailable(exc.errno or 0, what) from None
            if exc.errno == _errno.EINVAL:
                unknown = flags & ~_KNOWN_SETUP_FLAGS
                hint = (f"; bits {unknown:#x} are no IORING_SETUP_* flag this package knows"
                        if unknown else "; this kernel refuses this combination of flags "
                        "and sizes")
                raise OSError(exc.errno, f"io_uring_setup({what}): {os.strerror(exc.errno)}{hint}") \
                    from None
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
        # prep_batch's packed common fields, by (opcode, flags, fd, op_flags)
        self._batch_templates: Dict[Tuple[int, int, int, int], bytearray] = {}
        self._nop_run = bytes([_NOP_SHAPE]) * p.sq_entries
        self._nop_probe = bytearray(SQE_STRUCT.size)  # checks a NOP batch's flags

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
        # ... passed as ctypes objects: libc's syscall is called without
        # argtypes, where a bare Python int would go as a 32-bit C int.
        self._ext_arg_ptr = ctypes.c_void_p(ctypes.addressof(self._ext_arg))
        self._ext_arg_size = ctypes.c_size_t(ctypes.sizeof(self._ext_arg))
        self._enter_fd = self._fd  # or the registered index, see _enter
        self._raw_enter = self._kernel.raw_enter()
        self._registered_thread = 0

    # ------------------------------------------------------------------
    # facts about the ring

    @property
    def fd(self) -> int:
        """The ring's file descriptor (-1 once closed).

        liburing: ``ring->ring_fd``.
        """
        return self._fd

    @property
    def sqe_size(self) -> int:
        """Bytes per SQE: 64, or 128 with ``IORING_SETUP_SQE128``.

        liburing: none (``IORING_SETUP_SQE128`` in ``ring->flags`` says it).
        """
        return self._sqe_size

    @property
    def cqe_size(self) -> int:
        """Bytes per CQE: 16, or 32 with ``IORING_SETUP_CQE32``.

        liburing: ``io_uring_cqe_shift``.
        """
        return self._cqe_size

    @property
    def kernel(self) -> Kernel:
        """The syscall seam this ring talks to (``uring.syscalls``).

        liburing: none: liburing calls the kernel directly; here the seam (``uring.syscalls``).
        """
        return self._kernel

    @property
    def next_user_data(self) -> int:
        """The ``user_data`` the next prep without one will take (unless a
        request in flight holds that number: the counter steps over it).

        liburing: none: liburing leaves ``user_data`` to the caller.
        """
        return self._next_user_data

    @property
    def features(self) -> abi.IoringFeat:
        """``IORING_FEAT_*`` the kernel reported at set-up.

        liburing: ``ring->features``.
        """
        return abi.IoringFeat(self.params.features)

    @property
    def setup_flags(self) -> abi.IoringSetup:
        """The ``IORING_SETUP_*`` flags the ring was created with.

        liburing: ``ring->flags``.
        """
        return abi.IoringSetup(self._flags)

    @property
    def closed(self) -> bool:
        """liburing: none (``io_uring_queue_exit`` frees the struct)."""
        return self._state in ("closed", "forked")

    @property
    def sq_head(self) -> int:
        """The kernel's SQ head: SQEs before it have been consumed.

        liburing: ``*ring->sq.khead``.
        """
        if self._state in _UNMAPPED:
            self._check()  # the ring's own error, not a released memoryview's
        return int(self._sq_u32[self._i_sq_head])

    @property
    def sq_tail(self) -> int:
        """The SQ tail as published to the kernel.

        liburing: ``*ring->sq.ktail``.
        """
        if self._state in _UNMAPPED:
            self._check()  # the ring's own error, not a released memoryview's
        return int(self._sq_u32[self._i_sq_tail])

    @property
    def sq_flags(self) -> abi.IoringSqFlags:
        """liburing: ``*ring->sq.kflags``."""
        if self._state in _UNMAPPED:
            self._check()  # the ring's own error, not a released memoryview's
        return abi.IoringSqFlags(self._sq_u32[self._i_sq_flags])

    @property
    def sq_dropped(self) -> int:
        """SQEs the kernel skipped because their array index was invalid.

        liburing: ``*ring->sq.kdropped``.
        """
        if self._state in _UNMAPPED:
            self._check()  # the ring's own error, not a released memoryview's
        return int(self._sq_u32[self._i_sq_dropped])

    @property
    def cq_head(self) -> int:
        """liburing: ``*ring->cq.khead``."""
        if self._state in _UNMAPPED:
            self._check()  # the ring's own error, not a released memoryview's
        return int(self._cq_u32[self._i_cq_head])

    @property
    def cq_tail(self) -> int:
        """liburing: ``*ring->cq.ktail``."""
        if self._state in _UNMAPPED:
            self._check()  # the ring's own error, not a released memoryview's
        return int(self._cq_u32[self._i_cq_tail])

    @property
    def cq_overflow(self) -> int:
        """CQEs the kernel had to *drop* (only without ``IORING_FEAT_NODROP``
        or when it could not allocate an overflow entry).

        liburing: ``*ring->cq.koverflow``.
        """
        if self._state in _UNMAPPED:
            self._check()  # the ring's own error, not a released memoryview's
        return int(self._cq_u32[self._i_cq_overflow])

    @property
    def sq_ready(self) -> int:
        """SQEs prepared here and not yet consumed by the kernel.

        liburing: ``io_uring_sq_ready``.
        """
        return (self._sqe_tail - self.sq_head) & _U32  # the tail is unbounded, the head u32

    @property
    def sq_space_left(self) -> int:
        """liburing: ``io_uring_sq_space_left``."""
        return self.sq_entries - self.sq_ready

    @property
    def cq_ready(self) -> int:
        """Completion slots posted and not yet reaped (no syscall).

        liburing: ``io_uring_cq_ready``.
        """
        return (self.cq_tail - self._cq_head) & _U32

    def held_roots(self) -> List[Any]:
        """What this ring keeps for the kernel: the records of requests in
        flight (skip-success and carried ones too) and the registered-buffer
        table.  ``PinnedBuffer.release`` searches them: a buffer found
        there is refused release."""
        roots: List[Any] = [record for record in self._requests.values() if record is not None]
        roots += self._skipped
        roots += [record for _cqe, record in self._carried]
        roots.append(getattr(self, "_buffers", None))
        return roots

    @property
    def in_flight(self) -> int:
        """Requests in flight whose ``user_data`` the ring keeps until their
        final CQE: those with a record (holding memory the kernel may use,
        or an owner) and bare NOPs (no record, their number only).

        liburing: none: liburing holds no memory for requests.
        """
        return len(self._requests)

    def held(self, user_data: int) -> Optional[Request]:
        """The ``Request`` record of the in-flight request *user_data*, or
        None once its final CQE has been reaped (or if it filed none).
        ``Completion(cqe, ring.held(ud))`` decodes a CQE the caller reaps
        raw, before reaping it.

        liburing: ``io_uring_cqe_get_data`` (the record stands where liburing's ``void *`` would).
        """
        return self._requests.get(user_data)

    @property
    def skipped_in_flight(self) -> int:
        """Records held for ``IOSQE_CQE_SKIP_SUCCESS`` requests (see ``_hold``).

        liburing: none.
        """
        return len(self._skipped)

    def in_flight_user_data(self, user_data: int) -> bool:
        """Whether a request with a record is in flight under *user_data*
        (its completions would be ambiguous with another's).

        liburing: none.
        """
        return user_data in self._requests

    def requests_in_flight(self) -> List[Request]:
        """The records of every request in flight that filed one.

        liburing: none.
        """
        return [record for record in self._requests.values() if record is not None]

    def move_request(self, old_user_data: int, new_user_data: int) -> None:
        """File the record of *old_user_data* under *new_user_data*: a
        request whose ``user_data`` the kernel is about to change
        (``IORING_POLL_UPDATE_USER_DATA``).  Nothing moves once the CQ
        already holds the request's final CQE under the old number.

        liburing: none (after ``io_uring_prep_poll_update`` the caller moves its own data).
        """
        if old_user_data in self._requests and not self.cq_holds_final(old_user_data):
            self._requests[new_user_data] = self._requests.pop(old_user_data)

    def cq_holds_final(self, user_data: int) -> bool:
        """Whether the CQ holds, not yet reaped, a final CQE (without
        ``IORING_CQE_F_MORE``) for *user_data*: a look, nothing consumed.

        liburing: none (a look like ``io_uring_peek_batch_cqe``, nothing consumed).
        """
        i = self._cq_head
        tail = self._cq_u32[self._i_cq_tail]
        if not barriers.STRONG_ORDERING:
            barriers.acquire_fence()  # the CQEs before the tail are complete
        mixed = self._cqe_mixed
        size = 16 if mixed else self._cqe_size
        mask, cqes = self._cq_mask, self._cqes
        while (tail - i) & _U32:
            ud, _, cqe_flags = CQE_STRUCT.unpack_from(cqes, (i & mask) * size)
            if ud == user_data and not cqe_flags & _CQE_F_MORE:
                return True
            i += 2 if mixed and cqe_flags & _CQE_F_32 else 1
        return False

    def held_by_ring(self) -> List[Any]:
        """Objects the kernel may read or write for requests in flight
        beyond the requests' own records (provided-buffer pools, say): an
        op group that keeps such memory extends this, and a close that has
        to let go of requests still in flight keeps these alive with them.

        liburing: none.
        """
        return []

    def __repr__(self) -> str:
        if self._state not in (None, "disabled"):
            return f"<Ring {self._state}>"
        return f"<Ring fd={self._fd} sq={self.sq_entries} cq={self.cq_entries} flags={self.setup_flags!r}>"

    # ------------------------------------------------------------------
    # guards

    def _check(self) -> None:
        state = self._state
        if state is None:
            self._check_thread()
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

    def _check_thread(self) -> None:
        """The calling thread may use this ring: it owns it, or the ring is
        unowned (then it does now), or the ring is ``threadsafe``."""
        self._owner.claim()

    @property
    def threadsafe(self) -> bool:
        """Whether the ring was made to be shared between threads."""
        return self._threadsafe

    def release_thread(self) -> None:
        """Give up this thread's ownership of the ring: the next thread to
        use it owns it.  Call from the owning thread, with nothing of it in
        use (a ``link()`` block open, a wait in progress).  (A ring whose
        owning thread has ended is taken over by the next user anyway.)

        liburing: none (a C ring is shared by convention only).
        """
        self._owner.release()

    def _install_locks(self) -> None:
        """``threadsafe=True``: shadow the methods that touch the SQ or the
        CQ with locked ones on this instance (a default ring pays nothing
        for them).  Lock order: CQ, then SQ (a reap that waits publishes
        the SQ tail; no SQ-side path ever reaps)."""
        sq, cq = threading.RLock(), threading.RLock()
        for name in _SQ_SIDE:
            setattr(self, name, _locked((sq,), getattr(self, name)))
        for name in _CQ_SIDE:
            setattr(self, name, _locked((cq,), getattr(self, name)))
        for name in _BOTH_SIDES:
            setattr(self, name, _locked((cq, sq), getattr(self, name)))
        link = self.link

        @contextlib.contextmanager
        def locked_link(*, hard: bool = False) -> Iterator[Any]:
            with sq, link(hard=hard) as ring:  # no other thread's SQE inside the chain
                yield ring

        self.link = locked_link  # type: ignore[method-assign]
        self._enter = self._enter_open  # type: ignore[method-assign]
        # A wait holds no lock in io_uring_enter (reap_records holds the
        # CQ one), so close() could unmap the rings under a waiter: each
        # wait registers here, and close wakes the waiters and lets them
        # leave before it takes the locks (_wake_waiters).
        self._wait_gate = threading.Condition(threading.Lock())
        for name in _WAITS:
            setattr(self, name, self._waiting(getattr(self, name)))
        close, closing = self.close, threading.RLock()

        def waking_close(*, cancel: bool = True, timeout: Timeout = 5.0) -> None:
            with closing:  # a second closer waits for the first
                if self._state is None and os.getpid() == self._pid:
                    seconds = None if timeout is None else _seconds(timeout)
                    try:
                        timeout = self._wake_waiters(seconds)
                    finally:  # even if broken into: the waiters' mappings are kept
                        close(cancel=cancel, timeout=timeout)
                else:
                    close(cancel=cancel, timeout=timeout)

        functools.update_wrapper(waking_close, close)
        self.close = waking_close  # type: ignore[method-assign]

    def _waiting(self, method: Callable[..., Any]) -> Callable[..., Any]:
        """``threadsafe=True``: *method* (a wait) counted among the ring's
        waiters while it runs; refused (``RingClosedError``) once another
        thread has begun to close the ring.  A ``submit_and_wait`` that
        comes back from the kernel while the ring is being closed was woken
        by the close (it reaps nothing): ``RingClosedError`` too."""
        gate = self._wait_gate
        what = "wait" if method.__name__ == "_wait_direct" else method.__name__
        reaps = what == "wait"

        def call(*args: Any, **kwargs: Any) -> Any:
            me = _get_ident()
            with gate:
                if self._closer not in (None, me):
                    raise RingClosedError(f"{what}: the ring is being closed by another thread")
                self._in_wait += 1
            try:
                result = method(*args, **kwargs)
                if not reaps and self._closer not in (None, me):
                    raise RingClosedError(f"{what}: the ring was closed by another thread "
                                          "while this one waited in it")
                return result
            finally:
                fd = -1
                with gate:
                    self._in_wait -= 1
                    if not self._in_wait:
                        gate.notify_all()
                        fd, self._fd_after_waiters = self._fd_after_waiters, -1
                if fd >= 0:  # the ring was closed while this one was inside: the fd is ours
                    self._kernel.close(fd)

        functools.update_wrapper(call, method)
        return call

    def _enter_open(self, to_submit: int, min_complete: int, flags: int) -> int:
        """``threadsafe=True``: ``_enter`` on a ring that may be closed by
        another thread, refused with ``RingClosedError`` once it is.

        The fd is read once, here, and is still the ring's when the
        kernel gets it: every caller either holds a lock ``close()``
        takes before it closes the fd (submit, ``sq_wait`` and a prep
        making room hold the SQ lock; ``reap``, ``reap_words`` and the
        reaps inside a wait hold the CQ one), or is a waiter
        (``submit_and_wait``), whose fd ``close()`` leaves open for the
        last waiter to close (``_fd_after_waiters``).  Never -1, never a
        number closed and handed to another file meanwhile."""
        fd = self._fd
        if fd < 0:
            raise RingClosedError("io_uring_enter: the ring was closed by another thread")
        if self._enter_fd != fd and _get_ident() == self._registered_thread:
            fd, flags = self._enter_fd, flags | _ENTER_REGISTERED_RING
        while True:
            try:
                return self._kernel.enter(fd, to_submit, min_complete, flags)
            except InterruptedError:
                pass

    def _leave_fd_to_waiters(self, fd: int) -> bool:
        """``close()`` of a ``threadsafe`` ring with waiters still inside
        (the wake-up did not bring them out within its timeout): leave the
        fd open for the last of them to close on its way out (``_waiting``),
        so that none enters a closed fd, or a number the process has given
        to another file meanwhile.  False if none is left: close it now."""
        with self._wait_gate:
            if not self._in_wait:
                return False
            self._fd_after_waiters = fd
            return True

    def _wake_waiters(self, seconds: Optional[float]) -> Optional[float]:
        """``threadsafe=True``, the first step of ``close``: stop new waits,
        wake every thread waiting in the ring, and wait (up to *seconds*;
        None: no limit) for them to leave, so that the rings are not
        unmapped under one of them.  Returns the time left for the rest of
        close (None: no limit).

        A waiter sleeps in ``io_uring_enter`` until the CQ holds as many
        CQEs as it asked for, or until an ``IORING_OP_TIMEOUT`` *expires*:
        the kernel counts expired timeouts (``cq_timeouts``) and wakes
        every waiter that began before one did, whatever its count.  So the
        wake-up is a timeout with a zero timespec under a fresh user_data
        (filed in ``_wakeups``: a waiter that reaps its CQE drops it).
        One that was only about to enter when it expired would sleep on:
        the wake-up is posted again, at growing intervals, while any stays.
        Back from the kernel, a waiter reaps what is there, sees
        ``_closer`` and leaves (``_woken_by_close``); a wait that starts
        now is refused (``_waiting``).  Called without the ring's locks:
        ``reap_records`` waits holding the CQ one."""
        deadline = time.monotonic() + (1e9 if seconds is None else seconds)
        gate = self._wait_gate
        with gate:
            self._closer = _get_ident()
            waiting = self._in_wait
        pause = 0.01
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                break  # close() keeps the mappings for the waiters still inside
            self._post_wakeup()
            with gate:
                gate.wait_for(lambda: not self._in_wait, min(pause, left))
                waiting = self._in_wait
            pause = min(pause * 2, 0.25)
        return None if seconds is None else max(deadline - time.monotonic(), 0.0)

    def _post_wakeup(self) -> None:
        """Submit an ``IORING_OP_TIMEOUT`` that expires at once (see
        ``_wake_waiters``); with no room in the SQ, or a submit refused,
        none is posted this time."""
        ts = abi.kernel_timespec()  # {0, 0}: expires as soon as it is armed
        try:
            user_data = self.prep(abi.IORING_OP_TIMEOUT, addr=ctypes.addressof(ts), len=1,
                                  keep=ts)
        except SubmissionQueueFull:
            return
        self._wakeups.add(user_data)
        try:
            self.submit()
        except OSError:
            pass

    def _woken_by_close(self, out: List[Any], pairing: Optional[List[Optional[Request]]]
                        ) -> List[Any]:
        """A waiter back from ``io_uring_enter`` while another thread closes
        the ring: drop the close's wake-up CQEs from what it reaped (and
        their records from *pairing*, aligned with *out* at its end), then
        hand back the real CQEs it took, or, with none, raise
        ``RingClosedError``.  Mutates *out* in place: nothing is left for
        ``_carry``."""
        wakeups = self._wakeups
        offset = 0 if pairing is None else builtins_len(pairing) - builtins_len(out)
        for i in range(builtins_len(out) - 1, -1, -1):
            if out[i][0] in wakeups:
                wakeups.discard(out[i][0])
                del out[i]
                if pairing is not None:
                    del pairing[offset + i]
        if out:
            return out  # never lose reaped CQEs: the next call raises
        raise RingClosedError("wait: the ring was closed by another thread while this one "
                              "waited in it")

    def _forked(self) -> None:
        """In a fork child: forget the parent's ring without touching it."""
        if self._state in ("closed", "forked"):
            return
        self._state = "forked"
        # The keepalive objects are the parent's business; in the child they
        # are copies nobody reads.  Do not cancel, do not wait: the queues
        # are the parent's.  Only drop our own mappings and fd reference.
        self._requests = {}
        self._skipped = []
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
        """Reserve the next SQE and return its slot index in the SQE array
        (liburing: ``io_uring_get_sqe``).

        The slot is ours until ``submit()`` publishes it; write it with
        ``write_sqe``.  Every ``prep_*`` reserves and fills in one step
        through ``prep_rw`` instead.
        """
        if self._state is not None or self._owner.ident != _get_ident():
            self._check()
        tail = self._sqe_tail
        if tail >= self._sq_limit:
            self._make_room()
        self._slot_shape[tail & self._sq_mask] = 0  # about to hold anything
        self._sqe_tail = tail + 1
        return tail & self._sq_mask

    def _make_room(self, wanted: int = 1) -> None:
        """Refresh the free count from the kernel's SQ head; if *wanted*
        SQEs still do not fit, raise or (``sq_full="submit"``) push the
        queued SQEs to the kernel."""
        self._sq_limit = self._kernel_sq_head() + self.sq_entries
        if self._sqe_tail + wanted > self._sq_limit and self._sq_full_submits:
            self.submit()
            self._sq_limit = self._kernel_sq_head() + self.sq_entries
            # SQPOLL: the thread makes room on its own time.  SQ_WAIT can
            # come back with the ring still full: the kernel's wait stops on
            # signal_pending(), which io_uring's own task-work notification
            # (TIF_NOTIFY_SIGNAL) also raises, and it reports no EINTR.  So
            # wait again until the head we read shows room.
            while self._sqpoll and self._sqe_tail + wanted > self._sq_limit:
                self.sq_wait()
                self._sq_limit = self._kernel_sq_head() + self.sq_entries
        if self._sqe_tail + wanted > self._sq_limit:
            room = self._sq_limit - self._sqe_tail
            what = "" if wanted == 1 else f" (room for {room} of {wanted})"
            raise SubmissionQueueFull(
                f"submission queue full{what}: {self.sq_entries} SQEs prepared or not yet "
                "consumed; call submit() first, or open the ring with sq_full='submit'"
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

    def prep_rw(self, opcode: int, fd: int = -1, addr: int = 0, length: int = 0,
                offset: int = 0, user_data: Optional[int] = None, flags: int = 0,
                op_flags: int = 0, keep: Any = None, target: Any = None,
                buf_index: int = 0, ioprio: int = 0, personality: int = 0,
                file_index: int = 0, addr3: int = 0,
                decode: Optional[Callable[[int], Any]] = None, owner: Any = None,
                cmd: Optional[bytes] = None) -> int:
        """Reserve the next SQE, fill all of it, and file the request's
        record; returns the ``user_data`` (liburing: ``io_uring_get_sqe``
        then ``io_uring_prep_rw``; Zig: ``get_sqe`` + ``prep_rw``).

        The one fill primitive: every ``prep_*`` of every op group comes
        through here (positional for the hot paths).  In order:

        1. the ring is usable (not closed, not inherited through fork) by
           this thread (``ThreadOwner``; ``threadsafe`` rings lock instead);
        2. there is a free slot: the SQ tail is below the kernel's head plus
           ``sq_entries`` (the head is read again only when that seems
           false; ``sq_full`` says what a full queue does);
        3. ``user_data``: the caller's, or the next of the ring's counter;
        4. the record: a ``Request`` is filed under the user_data until the
           final CQE (a user_data still in flight is refused: its
           completions would be ambiguous), or, for
           ``IOSQE_CQE_SKIP_SUCCESS``, with the skipped ones (``_hold``).
           Only a bare NOP (no *target*, *keep*, *decode* or *owner*) files
           none: it holds nothing and has nothing to name;
        5. one ``pack_into`` writes the whole SQE in the slot (``off``: a
           negative offset is its u64 two's complement, as C's cast makes
           it; -1 is "the file position");
        6. the local tail moves on.  Nothing is visible to the kernel until
           ``submit``/``wait`` publishes the tail.

        A field out of range (or of the wrong type) undoes 4 and raises
        before 6: no half-written SQE is ever published, the slot is
        marked as holding nothing reusable, and the record is gone.

        The fields are ``io_uring_sqe``'s: *op_flags* is the union holding
        ``rw_flags``/``fsync_flags``/``timeout_flags``/...; *file_index*
        the one holding ``splice_fd_in``/``file_index``/``optlen``.  *cmd*:
        a ``URING_CMD``'s command data, written from byte 48 (16 bytes, or
        80 on an ``IORING_SETUP_SQE128`` ring), zero-filled.  A clean NOP (only *user_data* and *flags* set) landing in a slot that
        already holds one has just its ``user_data`` word rewritten: the
        slot's shape is tracked by every write, so a slot flagged since
        (``link()``) is packed in full again.
        """
        if self._state is not None or self._owner.ident != _get_ident():
            self._check()
        if flags & _IOSQE_UNKNOWN:
            raise _unknown_sqe_flags(op_name(opcode), flags)
        tail = self._sqe_tail
        if tail >= self._sq_limit:
            self._make_room()
        if user_data is None:
            user_data = self._next_user_data
            if user_data in self._requests or (self._skipped and self._skipped_holds(user_data)):
                user_data = self._free_user_data(user_data, 1)  # a number the caller gave
            self._next_user_data = user_data + 1
        slot = tail & self._sq_mask
        requests = self._requests
        try:
            if opcode != _OP_NOP or target is not None or keep is not None or owner is not None \
                    or decode is not None:
                record: Optional[Request] = Request(user_data, opcode,
                                                    fd if target is None else target,
                                                    keep, decode, owner)
                if flags & _SKIP_SUCCESS:
                    if user_data in requests or self._skipped_holds(user_data):
                        raise _in_flight(opcode, user_data)
                    self._skipped.append(record)  # type: ignore[arg-type]
                elif requests.setdefault(user_data, record) is not record \
                        or (self._skipped and self._skipped_holds(user_data)):
                    if requests.get(user_data) is record:
                        del requests[user_data]
                    raise _in_flight(opcode, user_data)
            else:
                # A bare NOP holds nothing, but its user_data is filed (with
                # no record) until its CQE: a request that took it meanwhile
                # would have its record released by the NOP's CQE.  (With
                # IOSQE_CQE_SKIP_SUCCESS no CQE may come: nothing is filed.)
                if user_data in requests or (self._skipped and self._skipped_holds(user_data)):
                    raise _in_flight(opcode, user_data)
                if not flags & _SKIP_SUCCESS:
                    requests[user_data] = None
                record = None
        except TypeError:
            if user_data.__class__ is int:
                raise
            raise TypeError(f"{op_name(opcode)}: user_data must be an int, not "
                            f"{type(user_data).__name__}") from None
        shapes = self._slot_shape
        try:
            clean_nop = opcode == _OP_NOP and fd == -1 and not (
                flags | addr | length | offset | op_flags | buf_index | ioprio | personality
                | file_index | addr3)
        except TypeError as exc:  # a field of the wrong type: nothing written yet
            self._unfile(user_data, record, flags)
            raise _field_error(op_name(opcode), exc) from None
        if clean_nop:
            # A clean NOP: its slot may already hold one (all but user_data).
            if shapes[slot] == _NOP_SHAPE:
                try:
                    self._sqe_words[(slot << self._sqe_shift) + 4] = user_data
                except (ValueError, OverflowError, TypeError) as exc:
                    self._unfile(user_data, record, flags)
                    raise _field_error(f"IORING_OP_NOP: user_data {user_data!r}", exc) from None
                self._sqe_tail = tail + 1
                return user_data
            shape = _NOP_SHAPE
        else:
            shape = 0
        try:
            if offset.__class__ is bool or length.__class__ is bool or fd.__class__ is bool:
                # struct would take True as 1: a bool is no offset, length or fd
                what = "offset" if offset.__class__ is bool else \
                    "length" if length.__class__ is bool else "fd"
                raise TypeError(f"{what} must be an int, not bool")
            if offset < 0:
                if offset < -1 and opcode in _FILE_POSITION_OPS:
                    raise struct.error(f"offset {offset}: an offset is >= 0, or -1 for the "
                                       "file position")
                offset += _U64_WRAP
            _pack_sqe(self._sqe_bytes, slot << (self._sqe_shift + 3), opcode, flags, ioprio, fd,
                      offset, addr, length, op_flags, user_data, buf_index, personality,
                      file_index, addr3, 0)
        except (struct.error, TypeError) as exc:
            shapes[slot] = 0  # a failed pack_into may have written part of the slot
            self._unfile(user_data, record, flags)
            raise _field_error(op_name(opcode), exc) from None
        if cmd is not None:  # a URING_CMD's command data, from byte 48
            room = self._sqe_size - 48
            if builtins_len(cmd) > room:
                shapes[slot] = 0
                self._unfile(user_data, record, flags)
                raise ValueError(f"{op_name(opcode)}: {builtins_len(cmd)} bytes of command data; "
                                 f"this ring's SQEs hold {room} (IORING_SETUP_SQE128 for 80)")
            start = (slot << (self._sqe_shift + 3)) + 48
            self._sqe_bytes[start:start + room] = bytes(cmd).ljust(room, b"\0")
        shapes[slot] = shape
        self._sqe_tail = tail + 1
        return user_data

    def _free_user_data(self, first: int, n: int) -> int:
        """The first of *n* consecutive numbers from *first* on that no
        request in flight holds: the ring's counter steps over the numbers
        a caller gave requests still in flight."""
        requests = self._requests
        skipped = {record.user_data for record in self._skipped}
        while not (requests.keys().isdisjoint(range(first, first + n))
                   and skipped.isdisjoint(range(first, first + n))):
            first += 1
        return first

    def _skipped_holds(self, user_data: int) -> bool:
        """Whether a skip-success request in flight has *user_data*: its
        failure CQE would carry it (and be taken for another's)."""
        for record in self._skipped:
            if record.user_data == user_data:
                return True
        return False

    def _unfile(self, user_data: int, record: Optional[Request], sqe_flags: int) -> None:
        """Take back the record ``prep_rw`` filed for an SQE it then failed
        to write (a bare NOP's: its user_data, filed with no record)."""
        if record is None:
            if not sqe_flags & _SKIP_SUCCESS and self._requests.get(user_data, record) is None:
                self._requests.pop(user_data, None)
            return
        if sqe_flags & _SKIP_SUCCESS:
            self._skipped.remove(record)
        elif self._requests.get(record.user_data) is record:
            del self._requests[record.user_data]

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
        target: Any = None,
        decode: Optional[Callable[[int], Any]] = None,
        owner: Any = None,
    ) -> int:
        """``prep_rw`` by the ``io_uring_sqe`` field names, for SQEs no
        ``prep_*`` method writes; returns the ``user_data``.

        *file_index* may be given as the u32 the header's union also
        names (``IORING_FILE_INDEX_ALLOC``); *keep* is held until the
        request's final CQE: pass every object whose memory the SQE points at.

        liburing: ``io_uring_prep_rw`` plus direct field stores.
        """
        if 0x7FFFFFFF < file_index <= 0xFFFFFFFF:  # a u32 (IORING_FILE_INDEX_ALLOC) in the s32
            file_index -= 1 << 32
        return self.prep_rw(opcode, fd, addr, len, off, user_data, flags, op_flags, keep,
                            target, buf_index, ioprio, personality, file_index, addr3,
                            decode, owner)

    def prep_batch(self, opcode: int, fd: int, addrs: Sequence[int], lengths: Sequence[int],
                   offsets: Sequence[int], user_data: Optional[Sequence[int]] = None,
                   keeps: Optional[Sequence[Any]] = None, flags: int = 0, op_flags: int = 0,
                   target: Any = None, owners: Optional[Sequence[Any]] = None) -> int:
        """``prep_rw`` for many SQEs of one opcode and fd in one call, one
        slot and one ``Request`` each, in order; returns how many.

        *user_data*: the caller's, or (None) the next numbers of the ring's
        counter, as ``prep_rw`` takes them.  ``keeps[i]`` is what holds
        request *i*'s memory, ``owners[i]`` what its record hands back
        (``set_owner``); either may be None: then what the other holds
        must keep the memory in place.

        All or nothing: the lengths agree, every value fits its field, the
        SQ has room for all (or, with ``sq_full="submit"``, is made to),
        and no ``user_data`` is in flight or given twice, all checked before
        any slot or record is written.  What a batch costs here is mostly
        interpreter time, so no Python loop runs per SQE: the fields common
        to the batch are packed once into a template SQE, the template is
        repeated *n* times, and the per-request fields (``off``, ``addr``,
        ``len``, ``user_data``) are stored with one strided assignment each
        from arrays (whose construction range-checks every value); the run
        is then copied into the SQ (twice where it wraps).

        liburing: a loop of ``io_uring_get_sqe`` + ``io_uring_prep_rw``.
        """
        if self._state is not None or self._owner.ident != _get_ident():
            self._check()
        if flags & _IOSQE_UNKNOWN:
            raise _unknown_sqe_flags(op_name(opcode), flags)
        n = builtins_len(addrs)
        counted = user_data is None
        if user_data is None:
            first = self._next_user_data
            if self._skipped or (self._requests and not self._requests.keys().isdisjoint(
                    range(first, first + n))):
                first = self._free_user_data(first, n)  # numbers a caller gave are in flight
            user_data = range(first, first + n)
        if keeps is None and owners is None:
            raise ValueError(f"{op_name(opcode)}: a batch needs keeps or owners to hold its memory")
        if not (builtins_len(user_data) == builtins_len(lengths) == builtins_len(offsets) == n
                and (keeps is None or builtins_len(keeps) == n)
                and (owners is None or builtins_len(owners) == n)):
            raise ValueError(f"{op_name(opcode)}: addresses, lengths, offsets, user_data, buffers "
                             "and owners must be as many")
        if n > self.sq_entries:
            raise ValueError(f"{n} SQEs do not fit a {self.sq_entries}-entry SQ")
        if not n:
            return 0
        if flags & _SKIP_SUCCESS:
            raise ValueError("prep_batch: IOSQE_CQE_SKIP_SUCCESS is not for batches "
                             "(nothing would say when their buffers are free)")
        try:
            uds = _array("Q", user_data)
            addr_words = _array("Q", addrs)
            lens = _array("I", lengths)
            offs = _array("q", offsets)
        except OverflowError as exc:
            raise ValueError(f"{op_name(opcode)}: a field of the batch is out of range "
                             f"({exc})") from None
        except TypeError as exc:
            raise TypeError(f"{op_name(opcode)}: a field of the batch has the wrong type "
                            f"({exc})") from None
        if min(offs) < (-1 if opcode in _FILE_POSITION_OPS else -(1 << 63)):
            raise ValueError(f"{op_name(opcode)}: an offset is >= 0, or -1 for the file "
                             f"position; got {min(offs)}")
        if not counted:  # the counter's are distinct and free (just above)
            self._refuse_reuse(opcode, uds)
        requests = self._requests
        size = self._sqe_size
        # The fields common to the batch, packed once per shape and kept:
        # a loop submitting batches of one kind packs its template once.
        shape = (opcode, flags, fd, op_flags)
        try:
            template = self._batch_templates.get(shape)
        except TypeError:  # an unhashable field: the pack below names it
            template = None
        if template is None:
            template = bytearray(size)
            try:
                _pack_sqe(template, 0, opcode, flags, 0, fd, 0, 0, 0, op_flags, 0, 0, 0, 0, 0, 0)
            except (struct.error, TypeError) as exc:
                raise _field_error(op_name(opcode), exc) from None
            if len(self._batch_templates) >= 8:
                self._batch_templates.clear()
            try:
                self._batch_templates[shape] = template
            except TypeError:  # unhashable, though packable: not kept
                pass
        sqes = template * n  # a new bytearray: the template itself is never written
        words, step = memoryview(sqes).cast("Q"), size >> 3
        words[1::step] = memoryview(offs).cast("B").cast("Q")  # off: -1 is all ones, as in C
        words[2::step] = addr_words                            # addr
        words[4::step] = uds                                   # user_data
        memoryview(sqes).cast("I")[6::size >> 2] = lens        # len
        if self._sqe_tail + n > self._sq_limit:
            self._make_room(n)
        tail = self._sqe_tail
        record_target = fd if target is None else target
        if owners is None:
            records = map(Request, uds, _repeat(opcode), _repeat(record_target), keeps)  # type: ignore[arg-type]
        else:
            records = map(Request, uds, _repeat(opcode), _repeat(record_target),
                          _repeat(None) if keeps is None else keeps, _repeat(None), owners)
        requests.update(zip(uds, records))
        if counted:
            self._next_user_data = user_data[-1] + 1  # type: ignore[index]
        self._copy_sqes(tail, sqes, n)
        self._sqe_tail = tail + n
        return n

    def _refuse_reuse(self, what: "str | int", user_data: Sequence[int],
                      distinct: bool = True) -> None:
        """A batch's ``user_data`` may not belong to a request in flight
        (nor, with *distinct*, be given twice): its completions would be
        ambiguous.  Checked in C (``set``, ``isdisjoint``); the offenders
        are listed only when there are some (*what*: the op's name, or its
        opcode, named then)."""
        requests = self._requests
        skipped = {record.user_data for record in self._skipped} if self._skipped else None
        if (distinct and builtins_len(set(user_data)) != builtins_len(user_data)) or (
                requests and not requests.keys().isdisjoint(user_data)) or (
                skipped and not skipped.isdisjoint(user_data)):
            seen = list(user_data)
            clash = [u for u in seen if u in requests or (skipped and u in skipped)] or sorted(
                u for u in set(seen) if seen.count(u) > 1)
            if what.__class__ is int:
                what = op_name(what)  # type: ignore[arg-type]
            raise ValueError(f"{what}: user_data {clash[:4]} already in flight or given twice; "
                             "their completions would be ambiguous")

    def _copy_sqes(self, tail: int, sqes: Any, n: int) -> None:
        """Copy *n* whole SQEs into the slots from SQ position *tail* on
        (two copies when the run wraps), marking each slot's shape."""
        size, mask, dest = self._sqe_size, self._sq_mask, self._sqe_bytes
        start = tail & mask
        first = min(n, self.sq_entries - start)
        dest[start * size:(start + first) * size] = sqes[:first * size]
        if first < n:
            dest[:(n - first) * size] = sqes[first * size:n * size]
        shapes = self._slot_shape
        if first < n:
            shapes[start:] = bytes(first)
            shapes[:n - first] = bytes(n - first)
        else:
            shapes[start:start + n] = bytes(n)

    def prep_copies(self, sqes: Any, user_data: Sequence[int], records: Sequence[Request], *,
                    given_once: bool = False) -> int:
        """Queue ``len(user_data)`` whole SQEs formatted by the caller (the
        bytes of consecutive ``io_uring_sqe``, each carrying its
        ``user_data[i]``), each with its ``records[i]``, made once and
        filed again for every use; returns how many (liburing: a run of
        ``io_uring_get_sqe`` filled by ``memcpy``).  All or nothing, like
        ``prep_batch``: room, clashes and sizes are checked first (with
        *given_once*, the caller has already made sure that no
        ``user_data`` is given twice, as ``ArenaQueue`` does with its
        slots, and only the look for one in flight is left).  What
        ``ArenaQueue`` formats once and reuses."""
        if self._state is not None or self._owner.ident != _get_ident():
            self._check()
        n = builtins_len(user_data)
        if builtins_len(sqes) != n * self._sqe_size or builtins_len(records) != n:
            raise ValueError(f"prep_copies: {n} SQEs are {n * self._sqe_size} bytes and {n} records")
        if n > self.sq_entries:
            raise ValueError(f"{n} SQEs do not fit a {self.sq_entries}-entry SQ")
        self._refuse_reuse("prep_copies", user_data, distinct=not given_once)
        requests = self._requests
        if self._sqe_tail + n > self._sq_limit:
            self._make_room(n)
        tail = self._sqe_tail
        requests.update(zip(user_data, records))
        self._copy_sqes(tail, sqes, n)
        self._sqe_tail = tail + n
        return n

    def prep_nop_batch(self, user_data: Sequence[int], flags: int = 0) -> int:
        """Many ``IORING_OP_NOP`` in one call, one slot each, in order (no
        records: a NOP holds nothing); returns how many.  All or nothing.

        The vectorised ``prep_rw`` of a clean NOP: slots that already hold
        a flagless NOP get only their ``user_data`` words rewritten, by one
        strided store per contiguous run of slots instead of a Python call
        per SQE.

        liburing: a loop of ``io_uring_get_sqe`` + ``io_uring_prep_nop``.
        """
        if self._state is not None or self._owner.ident != _get_ident():
            self._check()
        n = builtins_len(user_data)
        if n > self.sq_entries:
            raise ValueError(f"{n} NOPs do not fit a {self.sq_entries}-entry SQ")
        try:
            words = _array("Q", user_data)
        except OverflowError as exc:
            raise ValueError(f"IORING_OP_NOP: user_data: {exc}") from None
        except TypeError as exc:
            raise TypeError(f"IORING_OP_NOP: user_data: {exc}") from None
        if flags or flags.__class__ is not int:
            if isinstance(flags, int) and flags & _IOSQE_UNKNOWN:
                raise _unknown_sqe_flags("IORING_OP_NOP", flags)
            try:  # the flags byte checked before any slot is touched
                _pack_sqe(self._nop_probe, 0, _OP_NOP, flags, 0, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            except (struct.error, TypeError) as exc:
                raise _field_error(f"IORING_OP_NOP: flags {flags!r}", exc) from None
        self._refuse_reuse("IORING_OP_NOP", words)
        tail = self._sqe_tail
        if tail + n > self._sq_limit:
            self._make_room(n)
        mask, shift, shapes = self._sq_mask, self._sqe_shift, self._slot_shape
        sqe_words, sqe_bytes = self._sqe_words, self._sqe_bytes
        step = 1 << shift
        start, done = tail & mask, 0
        while done < n:
            count = min(n - done, self.sq_entries - start)
            if flags or shapes[start:start + count] != self._nop_run[:count]:
                for slot in range(start, start + count):
                    _pack_sqe(sqe_bytes, slot << (shift + 3), _OP_NOP, flags, 0, -1,
                              0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
                    shapes[slot] = 0 if flags else _NOP_SHAPE
            first = start << shift
            sqe_words[first + 4: first + (count << shift): step] = words[done: done + count]
            done += count
            start = 0
        if not flags & _SKIP_SUCCESS:
            # each NOP's user_data filed with no record until its CQE (see prep_rw)
            self._requests.update(zip(words, _repeat(None)))
        self._sqe_tail = tail + n
        return n

    def set_owner(self, user_data: int, owner: Any) -> None:
        """Attach *owner* to the request prepared as *user_data*; its
        completion hands it back (``Completion.owner``, ``wait_owned``)
        (liburing: ``io_uring_sqe_set_data``).

        For a request that filed no record (one that holds no memory, like
        a NOP), one is made now, while its SQE is still unsubmitted."""
        record = self._requests.get(user_data)
        if record is None:
            record = self._record_unsubmitted(user_data)
        record.owner = owner

    def _record_unsubmitted(self, user_data: int) -> Request:
        """File a record for the unsubmitted SQE with *user_data* (the
        newest first: it is nearly always the one just prepared)."""
        words, step = self._sqe_words, 1 << self._sqe_shift
        for index in range(self._sqe_tail - 1, self._sq_published - 1, -1):
            slot = index & self._sq_mask
            if words[slot * step + 4] == user_data:
                opcode = self._sqe_bytes[slot * self._sqe_size]
                if self._sqe_bytes[slot * self._sqe_size + 1] & _SKIP_SUCCESS:
                    break
                record = Request(user_data, opcode, None)
                self._requests[user_data] = record
                return record
        raise ValueError(f"no unsubmitted request with user_data {user_data} holds a record "
                         "(set an owner before submitting; skip-success requests take none)")

    def set_sqe_flags(self, index: int, sqe_flags: int) -> None:
        """OR *sqe_flags* (``IOSQE_*``) into the flags of the SQE at SQ
        position *index*, prepared and not yet submitted (liburing:
        ``io_uring_sqe_set_flags``).  The slot stops passing for a clean
        NOP, so a later NOP in it is packed in full."""
        if not self._sq_published <= index < self._sqe_tail:
            raise ValueError(f"SQ position {index} is not a prepared, unsubmitted SQE")
        if sqe_flags & _IOSQE_UNKNOWN:
            raise _unknown_sqe_flags("set_sqe_flags", sqe_flags)
        slot = index & self._sq_mask
        self._slot_shape[slot] = 0
        self._sqe_bytes[slot * self._sqe_size + 1] |= sqe_flags

    @property
    def sq_prepared(self) -> int:
        """The SQ position the next prepared SQE takes (unbounded): SQEs
        from ``sq_tail`` up to it are prepared and not yet published.

        liburing: ``ring->sq.sqe_tail``.
        """
        return self._sqe_tail

    def _hold(self, user_data: int, obj: Any, sqe_flags: int, opcode: int = -1) -> None:
        """Keep *obj* alive until the final CQE of *user_data*, as a record.

        ``IOSQE_CQE_SKIP_SUCCESS``: no CQE comes on success, so none says
        when the memory is free.  The record goes to ``_skipped`` (its
        user_data names a failure) and is let go of when something else
        proves the request complete: inside ``link()``, the CQE of the
        chain's last member (the kernel runs a chain in order); a failure
        CQE for it (``completions()``); ``release_skipped()``; or close.
        (``prep_rw`` files by the same rules, inlined on its hot path.)
        """
        record = Request(user_data, opcode, None, obj)
        if user_data in self._requests or (self._skipped and self._skipped_holds(user_data)):
            raise _in_flight(opcode, user_data)
        if sqe_flags & _SKIP_SUCCESS:
            self._skipped.append(record)
        else:
            self._requests[user_data] = record

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

        liburing: none: liburing holds no memory for requests.
        """
        if self._state is not None or self._owner.ident != _get_ident():
            self._check()
        skipped = self._skipped
        if not skipped:
            return 0
        pending = set()
        words = self._sqe_size // 8
        for index in range(self._kernel_sq_head(), self._sqe_tail):
            slot = index & self._sq_mask
            if self._sqe_bytes[slot * self._sqe_size + 1] & _SKIP_SUCCESS:
                pending.add(self._sqe_words[slot * words + 4])
        kept = [record for record in skipped if record.user_data in pending]
        self._skipped = kept
        return len(skipped) - len(kept)

    def _skipped_failure(self, user_data: int) -> Optional[Request]:
        """The record of a skip-success request whose failure CQE carries
        *user_data* (it has no ``_requests`` entry), or None.  A failure CQE
        is final, so a record that only this request can own is released."""
        skipped = self._skipped
        found = [i for i, record in enumerate(skipped) if record.user_data == user_data]
        if not found:
            return None
        record = skipped[found[0]]
        if builtins_len(found) == 1:  # several with one user_data: which one ended is unknown
            del skipped[found[0]]
        return record

    # -- chains ---------------------------------------------------------------

    @contextlib.contextmanager
    def link(self, *, hard: bool = False) -> Iterator[Any]:
        """Link the SQEs prepared inside the block into one chain.

            with ring.link():
                ring.prep_write(fd, data, 0)
                ring.prep_fsync(fd)
                ring.prep_read(fd, back, 0)
                ring.prep_link_timeout(1.0)   # bounds the read before it

        Every SQE but the last gets ``IOSQE_IO_LINK`` (``IOSQE_IO_HARDLINK``
        with *hard*: the chain goes on even when a member fails), through
        ``set_sqe_flags``, so the slots' shapes stay true.  The kernel
        starts each member only after the previous one completed; with
        ``IO_LINK`` a failure (a short read or write counts) completes the
        rest with ``-ECANCELED``.  The chain must reach the kernel in one
        piece, so the block refuses to end if a submit (an SQ that filled up
        with ``sq_full="submit"``) split it.

        Members prepared with ``IOSQE_CQE_SKIP_SUCCESS`` post no CQE when
        they succeed; their records move onto the last member's (see
        ``_hold_chain_skipped``), so they are released with its CQE.

        liburing: ``io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK)`` on each member but the last.
        """
        start = self._sqe_tail
        published = self._sq_published
        skipped = self._skipped
        skipped_before = builtins_len(skipped)
        try:
            yield self
        except BaseException:
            # The block failed (a prep refused its arguments, or anything
            # else): the members prepared so far are taken back, if the
            # kernel cannot have seen them yet, so no broken chain runs.
            if self._sq_published <= start:
                self._discard_unsubmitted(start)
                if skipped is self._skipped:
                    del skipped[skipped_before:]
            raise
        end = self._sqe_tail
        if self._sq_published != published and self._sq_published > start:
            raise RuntimeError("a linked chain was split by a submit inside the link() block; "
                               "make room in the SQ before starting the chain")
        bit = _IO_HARDLINK if hard else _IO_LINK
        for index in range(start, end - 1):
            self.set_sqe_flags(index, bit)
        if builtins_len(skipped) > skipped_before and skipped is self._skipped:
            self._hold_chain_skipped(start, end, skipped, skipped_before)

    def _hold_chain_skipped(self, start: int, end: int, skipped: List[Request], first: int) -> None:
        """Hand the chain's skip-success records (``skipped[first:]``) to the
        record of the member whose CQE comes last.

        The kernel starts each member only once the one before it has
        completed, and fails the rest of a broken chain in order, so that
        member's CQE means every earlier one is done.  It is the last SQE,
        or the one before a closing ``IORING_OP_LINK_TIMEOUT`` (a timer that
        fires posts ``-ETIME`` while the member it cancels may still run).
        If that member skips its own CQE too, nothing moves: the records
        stay until ``release_skipped()`` or close.
        """
        size, mask, sqes = self._sqe_size, self._sq_mask, self._sqe_bytes
        last = end - 1
        if sqes[(last & mask) * size] == _OP_LINK_TIMEOUT:
            last -= 1
        if last < start:
            return
        at = (last & mask) * size
        if sqes[at + 1] & _SKIP_SUCCESS:
            return
        user_data = self._sqe_words[(at >> 3) + 4]
        moved = skipped[first:]
        del skipped[first:]
        # The last member's record (made now for a member that held
        # nothing) keeps the moved ones with its own.
        record = self._requests.get(user_data)
        if record is None:
            record = Request(user_data, sqes[at])
            self._requests[user_data] = record
        record.keep = (record.keep, moved)

    def write_sqe(self, slot: int, sqe: Union[abi.io_uring_sqe, bytes], keep: Any = None) -> None:
        """Copy a complete ``io_uring_sqe`` (or its bytes) into *slot* (from
        ``get_sqe``); *keep* as for ``prep``.

        liburing: ``*io_uring_get_sqe(ring) = sqe``.
        """
        raw = bytes(sqe)
        if len(raw) != self._sqe_size:
            raise ValueError(f"an SQE of this ring is {self._sqe_size} bytes, got {len(raw)}")
        start = slot * self._sqe_size
        self._slot_shape[slot] = 0
        self._sqe_bytes[start: start + self._sqe_size] = raw
        if keep is not None:
            user_data = int.from_bytes(raw[32:40], "little")
            self._hold(user_data, keep, raw[1], raw[0])

    def read_sqe(self, slot: int) -> Union[abi.io_uring_sqe, abi.io_uring_sqe128]:
        """A copy of the SQE in *slot*, as the ``io_uring_sqe`` structure.

        liburing: none (``ring->sq.sqes[slot]``).
        """
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

    def submit(self, to_submit: Optional[int] = None) -> int:
        """Hand every prepared SQE to the kernel (or the first *to_submit*
        of them); returns how many it took.

        Without SQPOLL this is ``io_uring_enter(to_submit)``; it can take
        fewer than offered (an SQE that fails to prepare stops the batch
        unless ``IORING_SETUP_SUBMIT_ALL``): the rest stay in the ring and
        go with the next submit.  The tail is published for all of them
        either way: the kernel consumes from the head, ``to_submit`` at
        most, so a bounded submit leaves the later SQEs in place, in order
        (a device fed a few at a time, as fio's ``iodepth_batch_submit``
        does).  With SQPOLL the thread takes them all; *to_submit* is moot.

        liburing: ``io_uring_submit``.
        """
        if self._state is not None or self._owner.ident != _get_ident():
            self._check()
        pending = self._publish()
        if self._sqpoll:
            return self._submit_sqpoll(pending, 0)
        if to_submit is not None:
            if to_submit.__class__ is not int or to_submit < 0:
                raise ValueError(f"to_submit must be an int >= 0, got {to_submit!r}")
            pending = min(pending, to_submit)
        if pending == 0 and not self._iopoll:
            return 0
        return self._enter(pending, 0, self._getevents_flags(0))

    def submit_and_wait(self, wait_nr: int = 1) -> int:
        """Submit, and block until at least *wait_nr* completions are in the CQ
        (they are *not* reaped: use ``reap()``).  Returns SQEs submitted.

        liburing: ``io_uring_submit_and_wait``.
        """
        if self._state is not None or self._owner.ident != _get_ident():
            self._check()
        wait_nr = _count(wait_nr)
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
        if self._state is not None or self._owner.ident != _get_ident():
            self._check()
        self._enter(0, 0, _ENTER_SQ_WAIT)

    def _enter(self, to_submit: int, min_complete: int, flags: int) -> int:
        """``io_uring_enter`` with ``EINTR`` retried, for the calls that do
        not wait with a deadline (submit, SQ_WAIT, flushing the overflow
        list); waits go through ``_wait_direct``.

        Retrying is safe: the kernel returns ``EINTR`` only when it consumed
        no SQE (once any is submitted it returns the count instead), so the
        same call asks for the same thing again.  Signal handlers run
        between attempts (a ``KeyboardInterrupt`` propagates).
        """
        fd = self._enter_fd
        if fd != self._fd:
            fd, flags = self._registered_target(flags)
        while True:
            try:
                return self._kernel.enter(fd, to_submit, min_complete, flags)
            except InterruptedError:
                pass

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

        liburing: ``io_uring_peek_batch_cqe`` + ``io_uring_cq_advance``.
        """
        if self._state is not None or self._owner.ident != _get_ident():
            self._check()
        limit = _NO_LIMIT if max_cqes is None else max_cqes
        out = self._reap_ring(limit, raw)
        if self._iopoll or self._sq_u32[self._i_sq_flags] & (_SQ_CQ_OVERFLOW | _SQ_TASKRUN):
            pairing = self._pairing
            try:
                out += self._reap_from_kernel(limit - len(out), raw)
            except BaseException:
                self._carry(out, None if pairing is None else pairing[-len(out):] if out else [])
                raise
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
        written before it visible to us.

        From the head's release to the return nothing runs Python code
        (no call, no loop of ours), so a signal handler's exception cannot
        break in between: what was taken reaches the caller."""
        if self._carried:
            return self._take_carried(limit, raw)
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
        requests = self._requests
        pairing = self._pairing
        if not requests and pairing is None:
            return out
        # the final CQE (no IORING_CQE_F_MORE) releases its record;
        # completions()/wait_owned() pair each CQE with its record
        if builtins_len(out) == 1:
            cqe = out[0]
            record = requests.get(cqe[0]) if cqe[2] & _CQE_F_MORE else requests.pop(cqe[0], None)
            if pairing is not None:
                pairing.append(record)
            return out
        if not any(map(_and, map(_third, out), _repeat(_CQE_F_MORE))):
            if pairing is not None:
                pairing.extend(map(requests.pop, map(_first, out), _repeat(None)))
            else:
                _consume(map(requests.pop, map(_first, out), _repeat(None)))
            return out
        pop, get = requests.pop, requests.get
        paired = [get(cqe[0]) if cqe[2] & _CQE_F_MORE else pop(cqe[0], None) for cqe in out]
        if pairing is not None:
            pairing.extend(paired)
        return out

    def _carry(self, out: List[Any], records: Optional[List[Optional[Request]]]) -> None:
        """Keep *out* (CQEs taken from the CQ, their records released into
        *records*, or dropped if None) for the next reap: an exception broke
        in before they reached the caller."""
        if out:
            self._carried[:0] = zip(map(tuple, out), records if records is not None
                                    else _repeat(None))

    def _take_carried(self, limit: int, raw: bool) -> List[Any]:
        """Up to *limit* of the carried CQEs, in order, as ``_reap_ring``
        returns CQEs (their records to the pairing, if one is kept)."""
        taken = self._carried[:limit]
        del self._carried[:limit]
        if self._pairing is not None:
            self._pairing.extend(record for _cqe, record in taken)
        return [cqe if raw else _make_cqe(cqe) for cqe, _record in taken]

    def reap_words(self, max_cqes: Optional[int] = None,
                   records: Optional[List[Optional[Request]]] = None) -> "_array[int]":
        """Every completion available now (at most *max_cqes*) as the CQ's
        own 64-bit words, copied out in one or two slices: per CQE its
        ``user_data``, then ``res | flags << 32`` (then ``big_cqe[2]`` on a
        ``CQE32`` ring); no Python object per CQE (liburing:
        ``io_uring_peek_batch_cqe`` + ``io_uring_cq_advance``).  Final
        CQEs release their records as ``reap`` does; with *records* (a
        list) each CQE's record is appended to it, in CQE order (None for
        a CQE without one, and for a non-final CQE, whose record stays).
        Not for ``IORING_SETUP_CQE_MIXED`` rings, whose CQEs differ in
        size."""
        if self._state is not None or self._owner.ident != _get_ident():
            self._check()
        if self._cqe_mixed:
            raise ValueError("reap_words: a CQE_MIXED ring's CQEs are not all one size")
        limit = _NO_LIMIT if max_cqes is None else max_cqes
        out = self._reap_words(limit, records)
        if self._iopoll or self._sq_u32[self._i_sq_flags] & (_SQ_CQ_OVERFLOW | _SQ_TASKRUN):
            while builtins_len(out) < limit * (self._cqe_size >> 3):
                self._enter(0, 0, _ENTER_GETEVENTS)
                more = self._reap_words(limit - builtins_len(out) // (self._cqe_size >> 3),
                                        records)
                out += more
                if not more or not self._sq_u32[self._i_sq_flags] & (_SQ_CQ_OVERFLOW | _SQ_TASKRUN):
                    break
        return out

    def _reap_words(self, limit: int,
                    records: Optional[List[Optional[Request]]] = None) -> "_array[int]":
        """``_reap_ring`` for ``reap_words``: the same acquire, copy and
        release of the head, the CQEs kept as words."""
        if self._carried:
            taken = self._carried[:limit]
            del self._carried[:limit]
            words = _array("Q")
            big = (self._cqe_size >> 3) - 2
            for cqe, record in taken:
                words.append(cqe[0])
                words.append((cqe[1] & 0xFFFFFFFF) | cqe[2] << 32)
                words.extend(cqe[3:3 + big])
                if records is not None:
                    records.append(record)
            return words
        head = self._cq_head
        tail = self._cq_u32[self._i_cq_tail]
        if not barriers.STRONG_ORDERING:
            barriers.acquire_fence()
        ready = (tail - head) & _U32
        words = _array("Q")
        if not ready:
            return words
        if ready > limit:
            ready = limit
        start, size = head & self._cq_mask, self._cqe_size
        first = self.cq_entries - start
        if ready <= first:
            words.frombytes(self._cqes[start * size:(start + ready) * size])
        else:  # the run wraps: two contiguous pieces
            words.frombytes(self._cqes[start * size:])
            words.frombytes(self._cqes[:(ready - first) * size])
        head = (head + ready) & _U32
        self._cq_head = head
        if not barriers.STRONG_ORDERING:
            barriers.release_fence()  # our copy completes before the slots are free
        self._cq_u32[self._i_cq_head] = head
        requests = self._requests
        if records is None and not requests:
            return words
        unit = size >> 3
        # IORING_CQE_F_MORE of each CQE, one byte apiece (1: more to come),
        # read from the flags field's low byte: no Python int per CQE
        more = memoryview(words).cast("B")[_CQE_FLAGS_LOW_BYTE::size].tobytes().translate(
            _MORE_BIT)
        if records is not None:
            if 1 in more:
                records.extend(None if m else requests.pop(ud, None)
                               for ud, m in zip(words[0::unit], more))
            else:
                records.extend(map(requests.pop, words[0::unit], _repeat(None)))
        elif 1 not in more:  # every CQE final: one C-level pass
            _consume(map(requests.pop, words[0::unit], _repeat(None)))
        else:
            pop = requests.pop
            for ud, m in zip(words[0::unit], more):
                if not m:
                    pop(ud, None)
        return words

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

    # -- completions with their records ------------------------------------------

    def reap_records(self, max_cqes: Optional[int] = None, *, wait: int = 0,
                     timeout: Timeout = None) -> List[Tuple[Tuple[int, ...], Optional[Request]]]:
        """Like ``reap`` (or, with *wait* > 0, ``wait(wait, timeout)``), each
        raw CQE paired with its ``Request`` (None where the request filed
        none); the final CQE releases the record.  The owner a block engine
        or an asyncio driver attached (``set_owner``) comes back here: they
        keep no table of their own (liburing: ``io_uring_cqe_get_data``).
        """
        pairing: List[Optional[Request]] = []
        self._pairing = pairing
        try:
            cqes = self.wait(wait, timeout, raw=True) if wait else self.reap(max_cqes, raw=True)
        finally:
            self._pairing = None
        if self._skipped:
            try:
                self._name_skipped_failures(cqes, pairing)
            except BaseException:
                self._carry(cqes, pairing)  # broken into as it started: kept (see _carry)
                raise
        return list(zip(cqes, pairing))

    def completions(self, n: int = 1, timeout: Timeout = None) -> List[Completion]:
        """Like ``wait``, but each CQE comes paired with its ``Request``
        (``Completion.result()`` decodes it or raises the op's ``OSError``).

        liburing: ``io_uring_wait_cqes`` + ``io_uring_cqe_get_data`` per CQE.
        """
        return [Completion(c, r) for c, r in self.reap_records(wait=n, timeout=timeout)] if n else \
            self.reap_completions()

    def reap_completions(self, max_cqes: Optional[int] = None) -> List[Completion]:
        """Like ``reap`` (no waiting), as ``Completion`` objects.

        liburing: ``io_uring_peek_batch_cqe`` + ``io_uring_cqe_get_data`` per CQE.
        """
        return [Completion(c, r) for c, r in self.reap_records(max_cqes)]

    def _name_skipped_failures(self, cqes: List[Any], records: List[Optional[Request]]) -> None:
        """A failed ``IOSQE_CQE_SKIP_SUCCESS`` request posts a CQE for which
        the ring holds no ``_requests`` record: find its record among the
        skipped ones, so the ``Completion`` names the op and target.  Only
        while skip-success records are held, and only for recordless
        failures: no cost per CQE otherwise."""
        for i, cqe in enumerate(cqes):
            if records[i] is None and cqe[1] < 0:
                records[i] = self._skipped_failure(cqe[0])

    def peek(self) -> Optional[Cqe]:
        """The oldest available completion, or None (no waiting).

        liburing: ``io_uring_peek_cqe`` + ``io_uring_cqe_seen``.
        """
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

        liburing: ``io_uring_submit_and_wait_timeout`` + ``io_uring_peek_batch_cqe`` + ``io_uring_cq_advance``.
        """
        if self._state is not None or self._owner.ident != _get_ident():
            self._check()
        if n.__class__ is not int or not 0 <= n <= _U32:
            n = _count(n)
        return self._wait_direct(n, raw, None if timeout is None else _seconds(timeout))

    def _wait_direct(self, n: int, raw: bool, seconds: Optional[float] = None) -> List[Any]:
        """The one wait loop (liburing: ``io_uring_submit_and_wait_timeout``
        then the CQ loop); *seconds* is the deadline, None for none.

        Each round: publish the tail; then, unless *n* completions are
        already there and nothing is pending, make one ``io_uring_enter``
        through the seam's direct form (``Kernel.raw_enter``: on the real
        kernel, libc's ``syscall`` with no Python frame between; a fault
        injector or a simulated kernel sees the same call), with
        ``GETEVENTS`` and the number still wanted (the kernel returns once
        the CQ holds that many, counting the ones we have not reaped); then
        reap everything.  The variants are flags of the same round:

        - a deadline: ``IORING_ENTER_EXT_ARG`` with an
          ``io_uring_getevents_arg`` whose timespec is set, each round, to
          the time that is left (so a signal never restarts the full
          timeout); ``ETIME`` ends the wait with what arrived.  The kernel
          reads the timespec when it is entered, so between the store and
          the call it must be this wait's alone: the ring's one reused pair
          by default, a pair of its own per wait on a ``threadsafe`` ring,
          where another thread's wait would store its own deadline there
          (``_own_wait_arg``);
        - SQPOLL: the kernel thread submits, so ``to_submit`` is 0 and the
          thread is woken (``IORING_ENTER_SQ_WAKEUP``) when it sleeps with
          SQEs pending: the full fence between our tail store and the
          flags load is ``_submit_sqpoll``'s;
        - IOPOLL: completions are found only by entering: GETEVENTS polls.

        Errors: ``EINTR`` consumed nothing, so the call goes again.
        ``EAGAIN`` (no memory for requests now) and ``EBUSY`` (the CQ
        overflow list is backed up) also consumed nothing: reaping frees
        what the kernel waits for, so while a reap makes progress the call
        is made again; with nothing to reap the error is raised, the SQEs
        still in the ring for the next submit.  Whatever was reaped before
        an error is returned instead (fewer than *n*; never lost), and the
        error comes again with the next call.
        """
        syscall, number = self._raw_enter
        threadsafe, sqpoll, iopoll = self._threadsafe, self._sqpoll, self._iopoll
        fd, base = self._enter_fd, _ENTER_GETEVENTS
        if fd != self._fd:
            fd, base = self._registered_target(base)
        if threadsafe and fd < 0:  # closed by another thread since this one was let in
            raise RingClosedError("wait: the ring was closed by another thread")
        arg: Any = None
        argsz: Any = 0
        deadline = None
        ts = self._ts
        if seconds is not None:
            if not self.params.features & abi.IORING_FEAT_EXT_ARG:
                raise UnsupportedOperation("IORING_ENTER_EXT_ARG (a wait with a timeout)")
            deadline = time.monotonic() + seconds
            base |= _ENTER_EXT_ARG
            arg, argsz = self._ext_arg_ptr, self._ext_arg_size
            if threadsafe:
                ts, arg = _own_wait_arg()
        sq, cq = self._sq_u32, self._cq_u32
        out: List[Any] = []
        pairing = self._pairing
        i_tail, i_head = self._i_sq_tail, self._i_sq_head
        if self._carried:  # taken before and kept: they count toward *n*
            out += self._take_carried(_NO_LIMIT, raw)
        try:
            while True:
                want = n - len(out)
                if threadsafe:
                    pending = self._publish()  # under the SQ lock
                else:  # _publish, inlined: one frame less per wait
                    tail = self._sqe_tail
                    if tail != self._sq_published:
                        if not barriers.STRONG_ORDERING:
                            barriers.release_fence()  # the SQEs before the tail that shows them
                        sq[i_tail] = tail & _U32
                        self._sq_published = tail
                    pending = (tail - sq[i_head]) & _U32
                flags = base
                if sqpoll:  # the thread submits; we may only have to wake it
                    to_submit = 0
                    if pending:
                        barriers.full_fence()  # see _submit_sqpoll
                        if sq[self._i_sq_flags] & _SQ_NEED_WAKEUP:
                            flags |= _ENTER_SQ_WAKEUP
                else:
                    to_submit = pending
                failed = 0
                if to_submit or flags & _ENTER_SQ_WAKEUP \
                        or (cq[self._i_cq_tail] - self._cq_head) & _U32 < want:
                    if deadline is not None:
                        left = deadline - time.monotonic()
                        # 0 at least; at most 2**40 s (a timespec's tv_sec
                        # would wrap past 2**63: the kernel saturates
                        # anything this long to "for ever" anyway)
                        left = (left if left < _LONGEST_WAIT else _LONGEST_WAIT) if left > 0 else 0.0
                        ts.tv_sec = int(left)
                        ts.tv_nsec = int((left - int(left)) * 1e9)
                    if syscall(number, fd, to_submit, want if want > 0 else 0, flags, arg, argsz) < 0:
                        failed = ctypes.get_errno()
                before = len(out)
                out += self._reap_ring(_NO_LIMIT, raw)
                if iopoll or sq[self._i_sq_flags] & (_SQ_CQ_OVERFLOW | _SQ_TASKRUN):
                    out += self._reap_from_kernel(_NO_LIMIT, raw)
                got = len(out) - before
                if threadsafe and self._closer is not None and self._closer != _get_ident():
                    return self._woken_by_close(out, pairing)
                if failed and failed != _errno.EINTR and failed != _errno.ETIME and not (
                        got and failed in (_errno.EAGAIN, _errno.EBUSY)):
                    if out:
                        return out  # never lose reaped CQEs: the error comes again next call
                    raise kernel_error(failed, "io_uring_enter")
                if len(out) >= n:
                    return out
                if deadline is not None and (failed == _errno.ETIME or time.monotonic() >= deadline):
                    return out
        except BaseException:
            # Broken into between two rounds (a signal handler's exception,
            # raised as a call starts once EINTR has brought us back): what
            # the earlier rounds took is kept for the next reap.
            self._carry(out, None if pairing is None else pairing[-len(out):] if out else [])
            raise

    def _registered_target(self, flags: int) -> Tuple[int, int]:
        """(fd, flags) for io_uring_enter once the ring fd is registered: the
        registered index is an entry in the *registering thread's* table,
        so only that thread passes it (with ``IORING_ENTER_REGISTERED_RING``);
        other threads use the real fd."""
        if threading.get_ident() == self._registered_thread:
            return self._enter_fd, flags | _ENTER_REGISTERED_RING
        return self._fd, flags

    # ------------------------------------------------------------------
    # registration (the raw call; conveniences are in uring.register)

    def register(self, opcode: int, arg: int = 0, nr_args: int = 0) -> int:
        """``io_uring_register(fd, opcode, arg, nr_args)``, ``EINTR`` retried
        (the kernel fails a register op with ``EINTR`` only before changing
        anything, e.g. while waiting for in-flight users of a table).

        liburing: ``io_uring_register`` (the raw system call).
        """
        if self._state != "disabled" and (self._state is not None or self._owner.ident != _get_ident()):
            self._check()
        opcode = check_int("io_uring_register opcode", opcode, 0, _U32)
        nr_args = check_int("io_uring_register nr_args", nr_args, 0, _U32)
        arg = check_int("io_uring_register arg (an address)", arg, 0, (1 << 64) - 1)
        while True:
            try:
                return self._kernel.register(self._fd, opcode, arg, nr_args)
            except InterruptedError:
                continue
            except OSError as exc:
                name = abi.IoringRegisterOp(opcode).name if opcode in abi.IoringRegisterOp._value2member_map_ else str(opcode)
                raise kernel_error(exc.errno or 0, f"io_uring_register({name})") from None

    def register_ring_fd(self) -> int:
        """Register the ring fd for the calling thread; enters made from
        this thread then pass the index with ``IORING_ENTER_REGISTERED_RING``
        (other threads keep using the real fd).  Returns the index
        (liburing: ``io_uring_register_ring_fd``)."""
        upd = abi.io_uring_rsrc_update()
        upd.offset = 0xFFFFFFFF  # -1: let the kernel pick a free index
        upd.data = self._fd
        self.register(abi.IORING_REGISTER_RING_FDS, ctypes.addressof(upd), 1)
        self._enter_fd = int(upd.offset)
        self._registered_thread = threading.get_ident()
        return self._enter_fd

    def unregister_ring_fd(self) -> None:
        """Undo ``register_ring_fd`` (liburing: ``io_uring_unregister_ring_fd``)."""
        if self._enter_fd == self._fd:
            return
        upd = abi.io_uring_rsrc_update()
        upd.offset = self._enter_fd
        self.register(abi.IORING_UNREGISTER_RING_FDS, ctypes.addressof(upd), 1)
        self._enter_fd = self._fd

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

        Both sizes are checked as ``Ring()`` checks them, before anything
        is published: ints (not bools), at least 1 and at most
        ``IORING_MAX_ENTRIES``/``IORING_MAX_CQ_ENTRIES`` (the struct's u32
        would take 2**32 + 8 as 8), the CQ no smaller than the SQ.

        liburing: ``io_uring_resize_rings``.
        """
        self._check()
        sq_entries = _setup_int("resize: sq_entries (IORING_MAX_ENTRIES at most)", sq_entries,
                                1, MAX_ENTRIES)
        if cq_entries is not None:
            cq_entries = _setup_int("resize: cq_entries (IORING_MAX_CQ_ENTRIES at most)",
                                    cq_entries, 1, MAX_CQ_ENTRIES)
            if _pow2(cq_entries) < _pow2(sq_entries):  # compared as the kernel rounds them
                raise ValueError(f"resize: cq_entries={cq_entries} is less than sq_entries="
                                 f"{sq_entries} (each rounded up to a power of two): the CQ "
                                 "must hold at least as many as the SQ")
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
        (``IORING_REGISTER_ENABLE_RINGS``); restrictions must be set before.

        liburing: ``io_uring_enable_rings``.
        """
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

        ``threadsafe=True``: other threads may be asleep in the ring (a
        ``wait``, ``completions``, ``submit_and_wait``).  First they are
        woken and waited for, within *timeout* (``_wake_waiters``): each
        gets ``RingClosedError``, or the CQEs it had already reaped, and
        a wait begun meanwhile is refused; then the above (SQEs prepared
        before the wake-up went to the kernel with it: they are cancelled
        with the rest).  For a waiter that cannot be woken (only the
        issuer may enter a ``SINGLE_ISSUER`` ring) the mappings are kept,
        leaked for the rest of the process: it returns at its own timeout
        to ``RingClosedError``, never to unmapped memory.

        liburing: ``io_uring_queue_exit``.
        """
        state = self._state
        if state in ("closed", "forked", "unset"):
            if state == "unset":
                self._unmap()
            return
        if os.getpid() != self._pid:
            self._forked()
            return
        if state is None and self._owner.ident != _get_ident():
            self._check_thread()  # another thread's ring: not ours to close
        try:
            if state is None:
                self._discard_unsubmitted()
                if self._requests:
                    self._drain(cancel, timeout)
        finally:
            leftover = [record.keep for record in chain(self._requests.values(), self._skipped)
                        if record is not None]
            if leftover:
                leftover += self.held_by_ring()
                _GRAVEYARD.extend(leftover)
            self._requests = {}
            self._skipped = []
            self._state = "closed"
            if self._in_wait:  # threadsafe: a waiter close could not wake is still inside
                _GRAVEYARD.extend(self._maps + self._views)  # its views stay valid
                self._maps, self._views = [], []
            self._unmap()
            fd, self._fd = self._fd, -1
            if fd >= 0 and not (self._in_wait and self._leave_fd_to_waiters(fd)):
                self._kernel.close(fd)

    def _discard_unsubmitted(self, start: Optional[int] = None) -> None:
        """Drop SQEs prepared but never published (from *start* on, if
        given: a position not before the published tail), and what they
        held."""
        tail, published = self._sqe_tail, self._sq_published if start is None else start
        words_per_sqe = self._sqe_size // 8
        while published != tail:
            slot = published & self._sq_mask
            self._requests.pop(self._sqe_words[slot * words_per_sqe + 4], None)
            published += 1
        self._sqe_tail = self._sq_published if start is None else start

    def _drain(self, cancel: bool, timeout: Timeout) -> None:
        deadline = time.monotonic() + (_seconds(timeout) if timeout is not None else 1e9)
        if cancel:
            self._cancel_everything()
        while self._requests:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                self.wait(1, timeout=min(left, 1.0))
            except OSError:
                break

    def _cancel_everything(self) -> None:
        """``IORING_OP_ASYNC_CANCEL`` with ``IORING_ASYNC_CANCEL_ANY|ALL``
        (5.19+), under the highest ``user_data`` no request in flight holds.
        Posted by a ``threadsafe`` ring's close, it is filed with the
        wake-ups: a waiter the close gave up on may reap its CQE, which is
        not one of its own (``_woken_by_close`` drops it)."""
        marker = (1 << 64) - 1
        while marker in self._requests or (self._skipped and self._skipped_holds(marker)):
            marker -= 1
        try:
            self.prep(abi.IORING_OP_ASYNC_CANCEL, fd=-1, user_data=marker,
                      op_flags=abi.IORING_ASYNC_CANCEL_ANY | abi.IORING_ASYNC_CANCEL_ALL)
            if self._closer is not None:  # close's own CQE, like a wake-up: no waiter's
                self._wakeups.add(marker)
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
                self._owner.ident = None  # unreachable: no thread is using it
                self.close(timeout=1.0)
            elif self._state == "unset":
                self._unmap()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


class _WaitArg(ctypes.Structure):
    """An ``io_uring_getevents_arg`` and the ``__kernel_timespec`` its
    ``ts`` points to, in one allocation (see ``_own_wait_arg``)."""

    _fields_ = [("arg", abi.io_uring_getevents_arg), ("ts", abi.kernel_timespec)]


_WAIT_ARG_TS = _WaitArg.ts.offset


def _own_wait_arg() -> Tuple[abi.kernel_timespec, ctypes.c_void_p]:
    """A timed wait's own ``IORING_ENTER_EXT_ARG`` argument on a
    ``threadsafe`` ring: (the timespec to set before each enter, the
    argument's address to pass).  The timespec keeps the pair alive."""
    pair = _WaitArg()
    pair.arg.sigmask_sz = _NSIG_BYTES
    address = ctypes.addressof(pair)
    pair.arg.ts = address + _WAIT_ARG_TS
    return pair.ts, ctypes.c_void_p(address)


# threadsafe=True: what each lock guards (see RingCore._install_locks).
# The calls that enter the kernel and return at once (submit, reap, ...)
# hold a lock through it: close() takes both before it closes the fd.
_SQ_SIDE = ("prep_rw", "prep_batch", "prep_copies", "prep_nop_batch", "get_sqe", "write_sqe",
            "set_owner", "set_sqe_flags", "_publish", "submit", "sq_wait")
_CQ_SIDE = ("_reap_ring", "_reap_words", "_reap_from_kernel", "reap_records", "reap",
            "reap_words")
_BOTH_SIDES = ("release_skipped", "register", "resize", "close", "_discard_unsubmitted")
# ... and the calls that may sleep in io_uring_enter without a lock: each
# is counted while it runs, so close() can wake them, and leaves the fd
# open until the last of them is out (RingCore._waiting).
_WAITS = ("_wait_direct", "submit_and_wait")


def _locked(locks: Tuple[Any, ...], method: Callable[..., Any]) -> Callable[..., Any]:
    """*method* called with *locks* held (re-entrant: a locked method may
    call another)."""
    if len(locks) == 1:
        lock = locks[0]

        def call(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(*args, **kwargs)
    else:
        first, second = locks

        def call(*args: Any, **kwargs: Any) -> Any:
            with first, second:
                return method(*args, **kwargs)

    functools.update_wrapper(call, method)
    return call

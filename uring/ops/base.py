"""What every ``prep_*`` shares: turning Python values into SQE fields,
the request record, the probe check, chains, and completions as objects.

Each ``prep_*`` reserves one SQE, fills it, and returns its ``user_data``
(a fresh number when none is given).  Nothing is submitted until
``submit()``/``wait()``.  The ring keeps a ``Request`` (opcode, target, and
every object whose memory the SQE points at) under the ``user_data`` until
the request's final CQE is reaped; ``completions()`` hands the pair back.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import os
import struct
from typing import Any, Callable, FrozenSet, Iterator, List, Optional, Tuple, Union

from .. import abi
from ..buffers import PinnedBuffer, pin
from ..errors import UnsupportedOperation
from ..register import RegisterMixin, _fileno
from ..request import Completion, Request
from ..ring import Timeout, op_name

__all__ = ["AT_FDCWD", "OpsBase", "Seconds", "timespec"]

#: ``AT_FDCWD``: a ``dirfd`` meaning "relative to the current directory".
AT_FDCWD = -100

#: A duration: seconds (int/float) or a ``datetime.timedelta``.
Seconds = Union[int, float, datetime.timedelta]

# ``off`` packed signed: -1 (the file position) is the u64 all-ones the
# kernel expects, and no valid offset needs bit 63.
_pack_sqe = struct.Struct("<BBHiqQIIQHHiQQ").pack_into
_SKIP_SUCCESS = int(abi.IOSQE_CQE_SKIP_SUCCESS)
_FIXED_FILE = int(abi.IOSQE_FIXED_FILE)
_IO_LINK = int(abi.IOSQE_IO_LINK)
_IO_HARDLINK = int(abi.IOSQE_IO_HARDLINK)
_FILE_INDEX_ALLOC = int(abi.IORING_FILE_INDEX_ALLOC)
_OP_LINK_TIMEOUT = int(abi.IORING_OP_LINK_TIMEOUT)

# Opcodes every kernel this package runs on has (5.6+), and that the hot
# paths use: not checked against the probe.
_BASIC_OPS = frozenset(int(op) for op in (
    abi.IORING_OP_NOP, abi.IORING_OP_READV, abi.IORING_OP_WRITEV, abi.IORING_OP_FSYNC,
    abi.IORING_OP_READ_FIXED, abi.IORING_OP_WRITE_FIXED, abi.IORING_OP_READ,
    abi.IORING_OP_WRITE, abi.IORING_OP_FALLOCATE,
))


def timespec(value: Seconds) -> abi.kernel_timespec:
    """A ``__kernel_timespec`` from seconds or a ``timedelta``."""
    if isinstance(value, datetime.timedelta):
        ns = (value.days * 86400 + value.seconds) * 10**9 + value.microseconds * 1000
    else:
        if value != value:
            raise ValueError("a duration cannot be NaN")
        ns = int(round(value * 1e9))
    if ns < 0:
        raise ValueError(f"a duration cannot be negative: {value!r}")
    ts = abi.kernel_timespec()
    ts.tv_sec, ts.tv_nsec = divmod(ns, 10**9)
    return ts


def c_path(path: Any) -> Tuple[bytes, int]:
    """A NUL-terminated path (``str``, ``bytes`` or ``os.PathLike``) and the
    address of its first byte; keep the bytes as long as the address is used."""
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise ValueError(f"embedded NUL in path {path!r}")
    raw += b"\0"
    return raw, PinnedBuffer(raw).address


class OpsBase(RegisterMixin):
    """Helpers shared by the op groups; see ``uring.ops.Ring``."""

    _supported_ops: Optional[FrozenSet[int]] = None

    # -- operands ------------------------------------------------------------

    def _file(self, fd: Any, fixed: bool) -> int:
        """An fd (int, or anything with ``fileno()``), or with *fixed* a slot
        of the registered file table; refused here when it cannot be one."""
        if fd.__class__ is not int:
            fd = _fileno(fd)
        if fd < 0:
            raise ValueError(f"bad file descriptor {fd}")
        if fixed and fd >= self._files:
            raise ValueError(
                f"fixed file index {fd} is outside the registered table ({self._files} slots)"
            )
        return fd  # type: ignore[no-any-return]

    def _require(self, opcode: int) -> None:
        """Refuse an opcode this kernel lacks, before submission (the probe,
        taken once per ring), instead of an ``EINVAL`` completion later."""
        ops = self._supported_ops
        if ops is None:
            try:
                ops = self.probe().supported
            except OSError:
                # Restricted rings may refuse the probe: ask a scratch ring.
                with type(self)(1, kernel=self._kernel) as scratch:
                    ops = scratch.probe().supported
            self._supported_ops = ops
        if opcode not in ops:
            raise UnsupportedOperation(op_name(opcode), "IORING_REGISTER_PROBE does not list it")

    def supports(self, opcode: int) -> bool:
        """Whether this kernel supports *opcode* (the probe, cached)."""
        try:
            self._require(int(opcode))
        except UnsupportedOperation:
            return False
        return True

    def _direct_slot(self, op: str, file_index: Optional[int], *, cloexec: str = "",
                     own_table: bool = True) -> int:
        """The SQE ``file_index`` for a *direct descriptor* (a file that goes
        straight into a registered-file slot, never into the fd table):
        slot + 1, ``IORING_FILE_INDEX_ALLOC`` as is (the kernel picks a free
        slot), 0 for None.  *cloexec* names the close-on-exec flag the
        caller was given (a slot is no fd: the kernel refuses it);
        *own_table*: check the slot against this ring's table."""
        if file_index is None:
            return 0
        if not isinstance(file_index, int) or isinstance(file_index, bool):
            raise TypeError(f"{op}: file_index must be an int, not {type(file_index).__name__}")
        if cloexec:
            raise ValueError(f"{op}: {cloexec} cannot be combined with file_index")
        if file_index == _FILE_INDEX_ALLOC:
            return _FILE_INDEX_ALLOC
        limit = self._files if own_table else _FILE_INDEX_ALLOC - 1
        if not 0 <= file_index < limit:
            where = f"the registered file table ({self._files} slots)" if own_table else "a file table"
            raise ValueError(f"{op}: file_index {file_index} is outside {where}")
        return file_index + 1

    # -- filling SQEs ----------------------------------------------------------

    def _rw(self, opcode: int, fd: int, addr: int, length: int, offset: int,
            user_data: Optional[int], rw_flags: int, sqe_flags: int,
            buf_index: int, keep: Any, target: Any = None) -> int:
        """Fill a read/write-shaped SQE in the next free slot (the hot path:
        one ``pack_into`` writes the whole SQE, one C call that also
        range-checks every field), holding the request's record until its
        completion."""
        if self._state is not None:
            self._check()
        if user_data is None:
            user_data = self._next_user_data
            self._next_user_data = user_data + 1
        tail = self._sqe_tail
        if tail >= self._sq_limit:
            self._make_room()
        slot = tail & self._sq_mask
        # The Request's facts as a plain tuple: cheaper to build, and what a
        # hot loop pays per request (Completion makes the Request from it).
        record = (opcode, fd if target is None else target, keep)
        if sqe_flags & _SKIP_SUCCESS:
            self._keep_skipped.append((user_data, record))
        elif self._keep.setdefault(user_data, record) is not record:
            raise ValueError(
                f"user_data {user_data} belongs to a request still in flight; "
                "reusing it would make its completion ambiguous"
            )
        # Forget the slot's shape first: a failed pack_into may have written
        # some fields, and the slot must never again pass for a clean NOP.
        self._slot_shape[slot] = 0
        try:
            _pack_sqe(self._sqe_bytes, slot * self._sqe_size, opcode, sqe_flags, 0, fd,
                      offset, addr, length, rw_flags, user_data, buf_index, 0, 0, 0, 0)
        except struct.error as exc:
            if not sqe_flags & _SKIP_SUCCESS:
                self._keep.pop(user_data, None)
            raise ValueError(f"{op_name(opcode)}: {exc}") from None
        self._sqe_tail = tail + 1
        return user_data

    def _op(self, opcode: int, *, fd: int = -1, fixed: bool = False, off: int = 0,
            addr: int = 0, len: int = 0, op_flags: int = 0, user_data: Optional[int] = None,
            flags: int = 0, ioprio: int = 0, buf_index: int = 0, personality: int = 0,
            file_index: int = 0, addr3: int = 0, target: Any = None, keep: Any = None,
            decode: Optional[Callable[[int], Any]] = None, cmd: Optional[bytes] = None) -> int:
        """Any SQE, from its ``io_uring_sqe`` fields (the unions by the name
        that applies: ``op_flags`` is ``rw_flags``/``timeout_flags``/...,
        ``file_index`` is ``splice_fd_in``/``optlen``/``addr_len``, ``off``
        is ``addr2``/``cmd_op``).  Probe-checked; *fd* is taken as given
        (``AT_FDCWD`` and -1 are valid for some ops), *fixed* sets
        ``IOSQE_FIXED_FILE``.  *keep*, *target* and *decode* go into the
        ``Request`` the ring holds until the final CQE.  *cmd*: the 80
        bytes of command data of a ``URING_CMD`` on an ``SQE128`` ring."""
        if opcode not in _BASIC_OPS:
            self._require(opcode)
        if fixed:
            flags |= _FIXED_FILE
        record = Request(opcode, fd if target is None else target, keep, decode)
        user_data = self.prep(opcode, fd=fd, off=off, addr=addr, len=len, op_flags=op_flags,
                              user_data=user_data, flags=flags, ioprio=ioprio,
                              buf_index=buf_index, personality=personality,
                              file_index=file_index, addr3=addr3, keep=record)
        if cmd is not None:
            slot = (self._sqe_tail - 1) & self._sq_mask
            start = slot * self._sqe_size + 48
            room = self._sqe_size - 48
            if len_(cmd) > room:
                self._abandon_last(user_data, flags)
                raise ValueError(f"{op_name(opcode)}: {len_(cmd)} bytes of command data; "
                                 f"this ring's SQEs hold {room} (IORING_SETUP_SQE128 for 80)")
            self._sqe_bytes[start: start + room] = bytes(cmd).ljust(room, b"\0")
        return user_data

    def _abandon_last(self, user_data: int, flags: int) -> None:
        """Take back the SQE just prepared (it was not published)."""
        self._sqe_tail -= 1
        if not flags & _SKIP_SUCCESS:
            self._keep.pop(user_data, None)
        else:
            self._keep_skipped.pop()

    # -- chains ---------------------------------------------------------------

    @contextlib.contextmanager
    def link(self, *, hard: bool = False) -> Iterator["OpsBase"]:
        """Link the SQEs prepared inside the block into one chain.

            with ring.link():
                ring.prep_write(fd, data, 0)
                ring.prep_fsync(fd)
                ring.prep_read(fd, back, 0)
                ring.prep_link_timeout(1.0)   # bounds the read before it

        Every SQE but the last gets ``IOSQE_IO_LINK`` (``IOSQE_IO_HARDLINK``
        with *hard*: the chain goes on even when a member fails).  The
        kernel starts each member only after the previous one completed;
        with ``IO_LINK`` a failure (a short read or write counts) completes
        the rest with ``-ECANCELED``.  The chain must reach the kernel in
        one piece, so the block refuses to end if a submit (an SQ that
        filled up with ``sq_full="submit"``) split it.

        Members prepared with ``IOSQE_CQE_SKIP_SUCCESS`` post no CQE when
        they succeed; their records move onto the last member's (see
        ``_hold_chain_skipped``), so they are released with its CQE.
        """
        start = self._sqe_tail
        published = self._sq_published
        skipped = self._keep_skipped
        skipped_before = len(skipped)
        yield self
        end = self._sqe_tail
        if self._sq_published != published and self._sq_published > start:
            raise RuntimeError("a linked chain was split by a submit inside the link() block; "
                               "make room in the SQ before starting the chain")
        bit = _IO_HARDLINK if hard else _IO_LINK
        size, mask, sqes = self._sqe_size, self._sq_mask, self._sqe_bytes
        for index in range(start, end - 1):
            at = (index & mask) * size + 1  # io_uring_sqe.flags
            sqes[at] |= bit
        if len(skipped) > skipped_before and skipped is self._keep_skipped:
            self._hold_chain_skipped(start, end, skipped, skipped_before)

    def _hold_chain_skipped(self, start: int, end: int, skipped: List[Any], first: int) -> None:
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
        # The last member keeps its own record, extended by the moved ones:
        # completions() and held() still see its Request (or hot-path tuple).
        record = self._keep.get(user_data)
        if record is None:
            record = moved  # a NOP holds nothing; a list is no Request either
        elif record.__class__ is tuple and len(record) == 3:
            record = (record[0], record[1], (record[2], moved))
        elif isinstance(record, Request):
            record.keep = (record.keep, moved)
        else:
            record = [record, moved]
        self._keep[user_data] = record

    # -- completions -------------------------------------------------------------

    def completions(self, n: int = 1, timeout: Timeout = None) -> List[Completion]:
        """Like ``wait``, but each CQE comes paired with its ``Request``
        (``Completion.result()`` decodes it or raises the op's ``OSError``)."""
        released: List[Any] = []
        self._released = released
        try:
            cqes = self.wait(n, timeout)
        finally:
            self._released = None
        if self._keep_skipped:
            self._name_skipped_failures(cqes, released)
        return [Completion(c, r) for c, r in zip(cqes, released)]

    def reap_completions(self, max_cqes: Optional[int] = None) -> List[Completion]:
        """Like ``reap`` (no waiting), as ``Completion`` objects."""
        released: List[Any] = []
        self._released = released
        try:
            cqes = self.reap(max_cqes)
        finally:
            self._released = None
        if self._keep_skipped:
            self._name_skipped_failures(cqes, released)
        return [Completion(c, r) for c, r in zip(cqes, released)]

    def _name_skipped_failures(self, cqes: List[Any], released: List[Any]) -> None:
        """A failed ``IOSQE_CQE_SKIP_SUCCESS`` request posts a CQE for which
        the ring holds no ``_keep`` record: find its record among the
        skipped ones, so the ``Completion`` names the op and target.  Only
        while skip-success records are held, and only for recordless
        failures: no cost per CQE otherwise."""
        for i, cqe in enumerate(cqes):
            if released[i] is None and cqe[1] < 0:
                released[i] = self._skipped_failure(cqe[0])

    # -- values --------------------------------------------------------------------

    @staticmethod
    def _writable(buf: Any) -> PinnedBuffer:
        if buf.__class__ is not PinnedBuffer or not buf.writable:
            buf = pin(buf, True)
        return buf  # type: ignore[no-any-return]

    @staticmethod
    def _readable(buf: Any) -> PinnedBuffer:
        if buf.__class__ is not PinnedBuffer:
            buf = pin(buf, False)
        return buf  # type: ignore[no-any-return]

    @staticmethod
    def _struct_address(obj: Any) -> int:
        return ctypes.addressof(obj)


len_ = len  # ``_op`` has a parameter named after the SQE field ``len``

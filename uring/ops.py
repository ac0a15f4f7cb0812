"""Operations: one ``prep_*`` method per opcode, and ``Ring``, the class users
hold (the protocol core of ``uring.ring`` + ``uring.register`` + these).

Each ``prep_*`` reserves one SQE, fills it, and returns its ``user_data``
(a fresh number when none is given).  Nothing is submitted until
``submit()``/``wait()``.  Every object whose memory the SQE points at
(buffers, iovec arrays) is pinned and held by the ring until the request's
final completion is reaped; a read refuses a read-only buffer here, before
the kernel could be asked to write into it.

The fast path: a read or write SQE is written whole with one
``struct.pack_into`` (one C call, every field range-checked), which costs no
more than storing its five changing 64-bit words one by one.  A NOP is
cheaper still: each slot remembers whether it already holds a flagless NOP
(``_slot_shape``), and then only its ``user_data`` word is rewritten.  The
kernel never writes the SQE array, so what we wrote last is what is there.
"""

from __future__ import annotations

import struct
from array import array as _array
from typing import Any, Optional, Sequence

from . import abi
from .buffers import IovecArray, PinnedBuffer, pin
from .errors import SubmissionQueueFull
from .register import RegisterMixin, _fileno
from .ring import SQE_STRUCT, op_name

# ``off`` packed signed: -1 (the file position) is the u64 all-ones the
# kernel expects, and no valid offset needs bit 63.
_pack_sqe = struct.Struct("<BBHiqQIIQHHiQQ").pack_into

__all__ = ["Ring"]

_OP_NOP = int(abi.IORING_OP_NOP)
_OP_READ = int(abi.IORING_OP_READ)
_OP_WRITE = int(abi.IORING_OP_WRITE)
_OP_READV = int(abi.IORING_OP_READV)
_OP_WRITEV = int(abi.IORING_OP_WRITEV)
_OP_READ_FIXED = int(abi.IORING_OP_READ_FIXED)
_OP_WRITE_FIXED = int(abi.IORING_OP_WRITE_FIXED)
_OP_FSYNC = int(abi.IORING_OP_FSYNC)
_OP_FALLOCATE = int(abi.IORING_OP_FALLOCATE)
_FIXED_FILE = int(abi.IOSQE_FIXED_FILE)
_SKIP_SUCCESS = int(abi.IOSQE_CQE_SKIP_SUCCESS)

# _slot_shape: 1 when the slot holds a flagless NOP (all but user_data fixed).
_NOP_SHAPE = 1
_NOP_RUN = bytes([_NOP_SHAPE]) * 65536  # compared against runs of _slot_shape


class Ring(RegisterMixin):
    """An io_uring: ``with uring.Ring(64) as ring: ...``.

    See ``RingCore`` for the constructor's arguments and the protocol;
    this class adds the operations.
    """

    # -- helpers -----------------------------------------------------------

    def _file(self, fd: Any, fixed: bool) -> int:
        if fd.__class__ is not int:
            fd = _fileno(fd)
        if fd < 0:
            raise ValueError(f"bad file descriptor {fd}")
        if fixed and fd >= self._files:
            raise ValueError(
                f"fixed file index {fd} is outside the registered table ({self._files} slots)"
            )
        return fd  # type: ignore[no-any-return]

    def _rw(self, opcode: int, fd: int, addr: int, length: int, offset: int,
            user_data: Optional[int], rw_flags: int, sqe_flags: int,
            buf_index: int, keep: Any) -> int:
        """Fill a read/write-shaped SQE in the next free slot, holding *keep*
        until its completion.  One ``pack_into`` writes the whole SQE: one C
        call that also range-checks every field."""
        if self._state is not None:
            self._check()
        if user_data is None:
            user_data = self._next_user_data
            self._next_user_data = user_data + 1
        tail = self._sqe_tail
        if tail >= self._sq_limit:
            self._make_room()
        slot = tail & self._sq_mask
        if keep is not None:
            if sqe_flags & _SKIP_SUCCESS:
                self._keep_skipped.append(keep)
            elif self._keep.setdefault(user_data, keep) is not keep:
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
            if keep is not None and not sqe_flags & _SKIP_SUCCESS:
                self._keep.pop(user_data, None)
            raise ValueError(f"{op_name(opcode)}: {exc}") from None
        self._sqe_tail = tail + 1
        return user_data

    # -- control -----------------------------------------------------------

    def prep_nop(self, user_data: Optional[int] = None, *, flags: int = 0) -> int:
        """``IORING_OP_NOP``: completes with ``res == 0``; a round trip
        through the ring and nothing else."""
        if self._state is not None:
            self._check()
        if user_data is None:
            user_data = self._next_user_data
            self._next_user_data = user_data + 1
        tail = self._sqe_tail
        if tail >= self._sq_limit:
            self._make_room()
        slot = tail & self._sq_mask
        b = slot << self._sqe_shift
        if flags or self._slot_shape[slot] != _NOP_SHAPE:
            SQE_STRUCT.pack_into(self._sqe_bytes, b << 3, _OP_NOP, flags, 0, -1,
                                 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            self._slot_shape[slot] = 0 if flags else _NOP_SHAPE
        try:
            self._sqe_words[b + 4] = user_data
        except (ValueError, OverflowError, TypeError) as exc:
            raise ValueError(f"IORING_OP_NOP: user_data {user_data!r}: {exc}") from None
        self._sqe_tail = tail + 1
        return user_data

    def prep_nops(self, user_data: Sequence[int], *, flags: int = 0) -> int:
        """Many ``IORING_OP_NOP`` in one call, one slot each, in order;
        returns how many.  All or nothing: with too little room in the SQ
        it raises ``SubmissionQueueFull`` (or submits first, with
        ``sq_full="submit"``) before writing any slot.

        The vectorised form of ``prep_nop``: slots that already hold a
        flagless NOP get only their ``user_data`` words rewritten, by one
        strided store per contiguous run of slots instead of a Python call
        per SQE (what a batch costs here is mostly interpreter time)."""
        if self._state is not None:
            self._check()
        n = len(user_data)
        if n > self.sq_entries:
            raise ValueError(f"{n} NOPs do not fit a {self.sq_entries}-entry SQ")
        try:
            words = _array("Q", user_data)
        except (OverflowError, TypeError) as exc:
            raise ValueError(f"IORING_OP_NOP: user_data: {exc}") from None
        tail = self._sqe_tail
        while tail + n > self._sq_limit:
            limit = self._sq_limit
            self._make_room()  # raises when nothing frees up
            if self._sq_limit == limit:
                raise SubmissionQueueFull(
                    f"submission queue has room for {limit - tail} of {n} NOPs")
        mask, shift, shapes = self._sq_mask, self._sqe_shift, self._slot_shape
        sqe_words, sqe_bytes = self._sqe_words, self._sqe_bytes
        step = 1 << shift
        start, done = tail & mask, 0
        while done < n:
            count = min(n - done, self.sq_entries - start)
            if flags or shapes[start:start + count] != _NOP_RUN[:count]:
                for slot in range(start, start + count):
                    SQE_STRUCT.pack_into(sqe_bytes, slot << (shift + 3), _OP_NOP, flags, 0, -1,
                                         0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
                    shapes[slot] = 0 if flags else _NOP_SHAPE
            first = start << shift
            sqe_words[first + 4: first + (count << shift): step] = words[done: done + count]
            done += count
            start = 0
        self._sqe_tail = tail + n
        return n

    # -- files ---------------------------------------------------------------

    def prep_read(self, fd: Any, buf: Any, offset: int = 0, user_data: Optional[int] = None,
                  *, length: Optional[int] = None, rw_flags: int = 0, flags: int = 0,
                  fixed: bool = False) -> int:
        """``IORING_OP_READ``: read into *buf* at *offset* (-1: the file
        position).  ``res`` is the byte count (0 at EOF)."""
        if buf.__class__ is not PinnedBuffer or not buf.writable:
            buf = pin(buf, True)
        if length is None:
            length = buf.nbytes
        elif not 0 <= length <= buf.nbytes:
            raise ValueError(f"length {length} exceeds the {buf.nbytes}-byte buffer")
        if fd.__class__ is not int or fd < 0 or fixed:
            fd = self._file(fd, fixed)
        return self._rw(_OP_READ, fd, buf.address, length, offset, user_data, rw_flags,
                        flags | _FIXED_FILE if fixed else flags, 0, buf)

    def prep_write(self, fd: Any, buf: Any, offset: int = 0, user_data: Optional[int] = None,
                   *, length: Optional[int] = None, rw_flags: int = 0, flags: int = 0,
                   fixed: bool = False) -> int:
        """``IORING_OP_WRITE``: write *buf* at *offset* (-1: the file position)."""
        if buf.__class__ is not PinnedBuffer:
            buf = pin(buf, False)
        if length is None:
            length = buf.nbytes
        elif not 0 <= length <= buf.nbytes:
            raise ValueError(f"length {length} exceeds the {buf.nbytes}-byte buffer")
        if fd.__class__ is not int or fd < 0 or fixed:
            fd = self._file(fd, fixed)
        return self._rw(_OP_WRITE, fd, buf.address, length, offset, user_data, rw_flags,
                        flags | _FIXED_FILE if fixed else flags, 0, buf)

    def prep_readv(self, fd: Any, buffers: Sequence[Any], offset: int = 0,
                   user_data: Optional[int] = None, *, rw_flags: int = 0, flags: int = 0,
                   fixed: bool = False) -> int:
        """``IORING_OP_READV``: scatter into *buffers* (an ``iovec[]`` the ring
        builds and keeps alive with the buffers)."""
        iov = buffers if isinstance(buffers, IovecArray) else IovecArray(buffers, writable=True)
        if any(not b.writable for b in iov.buffers):
            raise TypeError("prep_readv: every buffer must be writable")
        fd = self._file(fd, fixed)
        return self._rw(_OP_READV, fd, iov.address, iov.count, offset, user_data, rw_flags,
                        flags | _FIXED_FILE if fixed else flags, 0, iov)

    def prep_writev(self, fd: Any, buffers: Sequence[Any], offset: int = 0,
                    user_data: Optional[int] = None, *, rw_flags: int = 0, flags: int = 0,
                    fixed: bool = False) -> int:
        """``IORING_OP_WRITEV``: gather *buffers* into the file."""
        iov = buffers if isinstance(buffers, IovecArray) else IovecArray(buffers, writable=False)
        fd = self._file(fd, fixed)
        return self._rw(_OP_WRITEV, fd, iov.address, iov.count, offset, user_data, rw_flags,
                        flags | _FIXED_FILE if fixed else flags, 0, iov)

    def _fixed_buffer(self, buf_index: int, buf_offset: int, length: Optional[int]) -> Any:
        table = self._buffers
        if table is None or not 0 <= buf_index < table.count:
            raise ValueError(
                f"buffer index {buf_index} is not registered "
                f"({0 if table is None else table.count} registered buffers)"
            )
        buf = table.buffers[buf_index]
        if length is None:
            length = buf.nbytes - buf_offset
        if buf_offset < 0 or length < 0 or buf_offset + length > buf.nbytes:
            raise ValueError(
                f"[{buf_offset}, {buf_offset + length}) is outside registered buffer "
                f"{buf_index} ({buf.nbytes} bytes)"
            )
        return table, buf.address + buf_offset, length

    def prep_read_fixed(self, fd: Any, buf_index: int, offset: int = 0,
                        user_data: Optional[int] = None, *, length: Optional[int] = None,
                        buf_offset: int = 0, rw_flags: int = 0, flags: int = 0,
                        fixed: bool = False) -> int:
        """``IORING_OP_READ_FIXED``: read into registered buffer *buf_index*
        (at *buf_offset* within it)."""
        table, addr, length = self._fixed_buffer(buf_index, buf_offset, length)
        fd = self._file(fd, fixed)
        return self._rw(_OP_READ_FIXED, fd, addr, length, offset, user_data, rw_flags,
                        flags | _FIXED_FILE if fixed else flags, buf_index, table)

    def prep_write_fixed(self, fd: Any, buf_index: int, offset: int = 0,
                         user_data: Optional[int] = None, *, length: Optional[int] = None,
                         buf_offset: int = 0, rw_flags: int = 0, flags: int = 0,
                         fixed: bool = False) -> int:
        """``IORING_OP_WRITE_FIXED``: write from registered buffer *buf_index*."""
        table, addr, length = self._fixed_buffer(buf_index, buf_offset, length)
        fd = self._file(fd, fixed)
        return self._rw(_OP_WRITE_FIXED, fd, addr, length, offset, user_data, rw_flags,
                        flags | _FIXED_FILE if fixed else flags, buf_index, table)

    def prep_fsync(self, fd: Any, user_data: Optional[int] = None, *, datasync: bool = False,
                   offset: int = 0, length: int = 0, flags: int = 0, fixed: bool = False) -> int:
        """``IORING_OP_FSYNC`` (``IORING_FSYNC_DATASYNC``: fdatasync).  With
        *length*, only that range is synced."""
        fd = self._file(fd, fixed)
        return self._rw(_OP_FSYNC, fd, 0, length, offset, user_data,
                        int(abi.IORING_FSYNC_DATASYNC) if datasync else 0,
                        flags | _FIXED_FILE if fixed else flags, 0, None)

    def prep_fallocate(self, fd: Any, mode: int, offset: int, length: int,
                       user_data: Optional[int] = None, *, flags: int = 0,
                       fixed: bool = False) -> int:
        """``IORING_OP_FALLOCATE``: ``fallocate(fd, mode, offset, length)``
        (``FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`` to discard,
        ``FALLOC_FL_ZERO_RANGE`` to zero).  The SQE carries the length in
        ``addr`` and the mode in ``len``, as the kernel's ``io_fallocate_prep``
        reads them."""
        fd = self._file(fd, fixed)
        if length < 0 or offset < 0:
            raise ValueError(f"IORING_OP_FALLOCATE: negative offset/length {offset}/{length}")
        return self._rw(_OP_FALLOCATE, fd, length, mode, offset, user_data, 0,
                        flags | _FIXED_FILE if fixed else flags, 0, None)

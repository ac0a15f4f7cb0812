"""File operations: reads, writes, syncs, space, and the file-table ops.

The hot paths (READ/WRITE and their fixed and vectored forms) call the
ring's fill primitive ``RingCore.prep_rw`` positionally; ``prep_reads`` and
``prep_writes`` fill a whole batch through ``RingCore.prep_batch``;
everything else goes through ``OpsBase._op``.  A read refuses a read-only
buffer here, before the kernel could be asked to write into it.
"""

from __future__ import annotations

import ctypes
import mmap
from typing import Any, List, Optional, Sequence, Sized, Tuple, Union

from .. import abi
from ..buffers import IovecArray, PinnedBuffer, ReleasedBufferError, export, pin
from ..errors import FixedFile
from ..register import _fileno
from .base import OpsBase

__all__ = [
    "FileOps",
    "SYNC_FILE_RANGE_WAIT_AFTER",
    "SYNC_FILE_RANGE_WAIT_BEFORE",
    "SYNC_FILE_RANGE_WRITE",
]

#: ``sync_file_range(2)`` flags (``linux/fs.h``; the os module lacks them).
SYNC_FILE_RANGE_WAIT_BEFORE = 1
SYNC_FILE_RANGE_WRITE = 2
SYNC_FILE_RANGE_WAIT_AFTER = 4

_OP_READ = int(abi.IORING_OP_READ)
_OP_WRITE = int(abi.IORING_OP_WRITE)
_OP_READV = int(abi.IORING_OP_READV)
_OP_WRITEV = int(abi.IORING_OP_WRITEV)
_OP_READ_FIXED = int(abi.IORING_OP_READ_FIXED)
_OP_WRITE_FIXED = int(abi.IORING_OP_WRITE_FIXED)
_OP_FSYNC = int(abi.IORING_OP_FSYNC)
_OP_FALLOCATE = int(abi.IORING_OP_FALLOCATE)
_OP_SYNC_FILE_RANGE = int(abi.IORING_OP_SYNC_FILE_RANGE)
_OP_FADVISE = int(abi.IORING_OP_FADVISE)
_OP_MADVISE = int(abi.IORING_OP_MADVISE)
_OP_FTRUNCATE = int(abi.IORING_OP_FTRUNCATE)
_OP_SPLICE = int(abi.IORING_OP_SPLICE)
_OP_TEE = int(abi.IORING_OP_TEE)
_OP_READ_MULTISHOT = int(abi.IORING_OP_READ_MULTISHOT)
_OP_READV_FIXED = int(abi.IORING_OP_READV_FIXED)
_OP_WRITEV_FIXED = int(abi.IORING_OP_WRITEV_FIXED)
_OP_FILES_UPDATE = int(abi.IORING_OP_FILES_UPDATE)
_OP_FIXED_FD_INSTALL = int(abi.IORING_OP_FIXED_FD_INSTALL)
_FIXED_FILE = int(abi.IOSQE_FIXED_FILE)
_BUFFER_SELECT = int(abi.IOSQE_BUFFER_SELECT)
_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1
# Advice that discards memory contents: the kernel in effect writes the
# buffer, so it must be writable (never the bytes of an immutable object).
_DESTRUCTIVE_MADVICE = frozenset(
    getattr(mmap, name) for name in ("MADV_DONTNEED", "MADV_FREE", "MADV_REMOVE")
    if hasattr(mmap, name)
) | {24}  # MADV_DONTNEED_LOCKED


def _named(op: str, exc: ReleasedBufferError, where: str = "") -> ReleasedBufferError:
    """*exc* with the op (and which iovec) in front of its message."""
    exc.args = (f"{op}: {where}{exc}",)
    return exc


def _iovec_count(op: str, count: int) -> None:
    """At most ``UIO_MAXIOV`` iovecs in one request: the kernel refuses more
    (``-EINVAL``, or ``-EMSGSIZE`` for a ``msghdr``)."""
    if count > abi.UIO_MAXIOV:
        raise ValueError(f"{op}: {count} iovecs; one request takes at most "
                         f"{abi.UIO_MAXIOV} (UIO_MAXIOV)")


def _iovec_array(op: str, buffers: Any, writable: bool) -> IovecArray:
    """The ``IovecArray`` a vectored op hands the kernel: *buffers* itself
    when it is one, checked live (its iovecs hold the addresses its
    ``PinnedBuffer`` objects had when it was made: one released since may
    have moved or been freed), and writable for a read; else one made of
    *buffers* (counted first: no more than ``UIO_MAXIOV``).  Raises before
    any SQE is written."""
    if isinstance(buffers, IovecArray):
        iov = buffers
        _iovec_count(op, iov.count)
        for i, b in enumerate(iov.buffers):
            if not b.live:
                raise _named(op, ReleasedBufferError(b), f"iovec {i} of the IovecArray: ")
        if writable and not all(b.writable for b in iov.buffers):
            raise TypeError(f"{op}: every buffer must be writable")
        return iov
    if isinstance(buffers, Sized):
        _iovec_count(op, len(buffers))  # before a buffer is pinned
    try:
        iov = IovecArray(buffers, writable=writable)
    except ReleasedBufferError as exc:
        raise _named(op, exc) from None
    _iovec_count(op, iov.count)  # an iterable with no len()
    return iov


class FileOps(OpsBase):
    """Operations on open files (``uring.ops.Ring`` has them all)."""

    # -- files ---------------------------------------------------------------

    def prep_read(self, fd: Any, buf: Any, offset: int = 0, user_data: Optional[int] = None,
                  *, length: Optional[int] = None, rw_flags: int = 0, flags: int = 0,
                  fixed: bool = False, buf_group: Optional[int] = None) -> int:
        """``IORING_OP_READ``: read into *buf* at *offset* (-1: the file
        position).  ``res`` is the byte count (0 at EOF).

        With *buf* None and *buf_group*, the kernel picks a buffer of that
        provided-buffer group when data is there (``IOSQE_BUFFER_SELECT``,
        the group in ``buf_group``): at most *length* bytes (default: the
        whole buffer); the CQE names the buffer (``BufferRing.take``)."""
        if buf.__class__ is PinnedBuffer and buf.writable:  # pinned once, live
            keep, address, nbytes = buf, buf.address, buf.nbytes
        elif buf is None or buf_group is not None:
            return self._read_select(buf, fd, offset, user_data, length, rw_flags, flags, fixed,
                                     buf_group)
        else:
            keep, address, nbytes = export(buf, True)
        if length is None:
            length = nbytes
        elif not 0 <= length <= nbytes:
            raise ValueError(f"length {length} exceeds the {nbytes}-byte buffer")
        if fd.__class__ is not int or fd < 0 or fixed:
            fd = self._file(fd, fixed)
        return self.prep_rw(_OP_READ, fd, address, length, offset,
                            user_data, flags | _FIXED_FILE if fixed else flags, rw_flags, keep,
                            FixedFile(fd) if fixed else None)

    def prep_write(self, fd: Any, buf: Any, offset: int = 0, user_data: Optional[int] = None,
                   *, length: Optional[int] = None, rw_flags: int = 0, flags: int = 0,
                   fixed: bool = False) -> int:
        """``IORING_OP_WRITE``: write *buf* at *offset* (-1: the file position)."""
        if buf.__class__ is PinnedBuffer and buf.live:
            keep, address, nbytes = buf, buf.address, buf.nbytes
        else:
            keep, address, nbytes = export(buf, False)
        if length is None:
            length = nbytes
        elif not 0 <= length <= nbytes:
            raise ValueError(f"length {length} exceeds the {nbytes}-byte buffer")
        if fd.__class__ is not int or fd < 0 or fixed:
            fd = self._file(fd, fixed)
        return self.prep_rw(_OP_WRITE, fd, address, length, offset,
                            user_data, flags | _FIXED_FILE if fixed else flags, rw_flags, keep,
                            FixedFile(fd) if fixed else None)

    def prep_reads(self, fd: Any, buffers: Sequence[Any], offsets: Sequence[int],
                   user_data: Sequence[int], *, rw_flags: int = 0, flags: int = 0,
                   fixed: bool = False) -> int:
        """Many ``IORING_OP_READ``: ``buffers[i]`` (whole) at ``offsets[i]``
        as ``user_data[i]``, one SQE and one record each, in order; returns
        how many.  All or nothing: every buffer is pinned writable, the
        fields fit, the SQ has room and no ``user_data`` is in flight or
        given twice, before any slot is written (``RingCore.prep_batch``).
        A buffer pinned once (``PinnedBuffer``) is reused as it is."""
        return self._rw_batch(_OP_READ, fd, buffers, offsets, user_data, rw_flags, flags,
                              fixed, True)

    def prep_writes(self, fd: Any, buffers: Sequence[Any], offsets: Sequence[int],
                    user_data: Sequence[int], *, rw_flags: int = 0, flags: int = 0,
                    fixed: bool = False) -> int:
        """Many ``IORING_OP_WRITE``, as ``prep_reads`` (the buffers need not
        be writable)."""
        return self._rw_batch(_OP_WRITE, fd, buffers, offsets, user_data, rw_flags, flags,
                              fixed, False)

    def _rw_batch(self, opcode: int, fd: Any, buffers: Sequence[Any], offsets: Sequence[int],
                  user_data: Sequence[int], rw_flags: int, flags: int, fixed: bool,
                  writable: bool) -> int:
        if fd.__class__ is not int or fd < 0 or fixed:
            fd = self._file(fd, fixed)
        if fixed:
            flags |= _FIXED_FILE
        pins = []
        for buf in buffers:
            if buf.__class__ is not PinnedBuffer or not buf.live or (writable and not buf.writable):
                buf = pin(buf, writable)
            pins.append(buf)
        return self.prep_batch(opcode, fd, [b.address for b in pins], [b.nbytes for b in pins],
                               offsets, user_data, pins, flags, rw_flags,
                               FixedFile(fd) if fixed else None)

    def prep_readv(self, fd: Any, buffers: Union[Sequence[Any], IovecArray], offset: int = 0,
                   user_data: Optional[int] = None, *, rw_flags: int = 0, flags: int = 0,
                   fixed: bool = False) -> int:
        """``IORING_OP_READV``: scatter into *buffers* (an ``iovec[]`` the ring
        builds and keeps alive with the buffers), or an ``IovecArray`` made
        beforehand, whose buffers must all still be pinned and writable
        (``ReleasedBufferError``, ``TypeError``)."""
        iov = _iovec_array("IORING_OP_READV", buffers, True)
        fd = self._file(fd, fixed)
        return self.prep_rw(_OP_READV, fd, iov.address, iov.count, offset,
                            user_data, flags | _FIXED_FILE if fixed else flags, rw_flags, iov,
                            FixedFile(fd) if fixed else None)

    def prep_writev(self, fd: Any, buffers: Union[Sequence[Any], IovecArray], offset: int = 0,
                    user_data: Optional[int] = None, *, rw_flags: int = 0, flags: int = 0,
                    fixed: bool = False) -> int:
        """``IORING_OP_WRITEV``: gather *buffers* into the file (an
        ``IovecArray`` made beforehand: its buffers all still pinned)."""
        iov = _iovec_array("IORING_OP_WRITEV", buffers, False)
        fd = self._file(fd, fixed)
        return self.prep_rw(_OP_WRITEV, fd, iov.address, iov.count, offset,
                            user_data, flags | _FIXED_FILE if fixed else flags, rw_flags, iov,
                            FixedFile(fd) if fixed else None)

    def _fixed_buffer(self, buf_index: int, buf_offset: int, length: Optional[int],
                      op: str = "fixed buffer") -> Any:
        """(the slot's PinnedBuffer, address, length): the request holds the
        buffer itself, so replacing the slot or unregistering the table
        while it runs cannot free memory the kernel still writes."""
        buf = self._registered_buffer(op, buf_index)
        if length is None:
            length = buf.nbytes - buf_offset
        if buf_offset < 0 or length < 0 or buf_offset + length > buf.nbytes:
            raise ValueError(
                f"[{buf_offset}, {buf_offset + length}) is outside registered buffer "
                f"{buf_index} ({buf.nbytes} bytes)"
            )
        return buf, buf.address + buf_offset, length

    def prep_read_fixed(self, fd: Any, buf_index: int, offset: int = 0,
                        user_data: Optional[int] = None, *, length: Optional[int] = None,
                        buf_offset: int = 0, rw_flags: int = 0, flags: int = 0,
                        fixed: bool = False) -> int:
        """``IORING_OP_READ_FIXED``: read into registered buffer *buf_index*
        (at *buf_offset* within it)."""
        held, addr, length = self._fixed_buffer(buf_index, buf_offset, length,
                                                "IORING_OP_READ_FIXED")
        fd = self._file(fd, fixed)
        return self.prep_rw(_OP_READ_FIXED, fd, addr, length, offset,
                            user_data, flags | _FIXED_FILE if fixed else flags, rw_flags, held,
                            FixedFile(fd) if fixed else None,
                            buf_index)

    def prep_write_fixed(self, fd: Any, buf_index: int, offset: int = 0,
                         user_data: Optional[int] = None, *, length: Optional[int] = None,
                         buf_offset: int = 0, rw_flags: int = 0, flags: int = 0,
                         fixed: bool = False) -> int:
        """``IORING_OP_WRITE_FIXED``: write from registered buffer *buf_index*."""
        held, addr, length = self._fixed_buffer(buf_index, buf_offset, length,
                                                "IORING_OP_WRITE_FIXED")
        fd = self._file(fd, fixed)
        return self.prep_rw(_OP_WRITE_FIXED, fd, addr, length, offset,
                            user_data, flags | _FIXED_FILE if fixed else flags, rw_flags, held,
                            FixedFile(fd) if fixed else None,
                            buf_index)

    def prep_fsync(self, fd: Any, user_data: Optional[int] = None, *, datasync: bool = False,
                   offset: int = 0, length: int = 0, flags: int = 0, fixed: bool = False) -> int:
        """``IORING_OP_FSYNC`` (``IORING_FSYNC_DATASYNC``: fdatasync).  With
        *length*, only that range is synced."""
        fd = self._file(fd, fixed)
        return self.prep_rw(_OP_FSYNC, fd, 0, length, offset,
                            user_data, flags | _FIXED_FILE if fixed else flags, int(abi.IORING_FSYNC_DATASYNC) if datasync else 0, None,
                            FixedFile(fd) if fixed else None)

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
        return self.prep_rw(_OP_FALLOCATE, fd, length, mode, offset,
                            user_data, flags | _FIXED_FILE if fixed else flags, 0, None,
                            FixedFile(fd) if fixed else None)

    # -- buffer selection ------------------------------------------------------

    def _read_select(self, buf: Any, fd: Any, offset: int, user_data: Optional[int],
                     length: Optional[int], rw_flags: int, flags: int, fixed: bool,
                     buf_group: Optional[int]) -> int:
        """``prep_read`` with a provided buffer: ``addr`` 0,
        ``IOSQE_BUFFER_SELECT``, the group in ``buf_group`` (the
        ``buf_index`` union); the request holds the group's memory."""
        if buf is not None:
            raise TypeError("prep_read: with buf_group the kernel picks the buffer; pass buf=None")
        if buf_group is None:
            raise TypeError("prep_read: buf is None, but no buf_group names buffers to pick from")
        keep = self._group("IORING_OP_READ", buf_group)
        if length is None:
            length = 0  # the whole selected buffer
        elif not 0 <= length <= _U32:
            raise ValueError(f"IORING_OP_READ: bad length {length}")
        fd = self._file(fd, fixed)
        return self.prep_rw(_OP_READ, fd, 0, length, offset,
                            user_data, (flags | _BUFFER_SELECT | _FIXED_FILE) if fixed else flags | _BUFFER_SELECT,
                            rw_flags, keep, FixedFile(fd) if fixed else None, buf_group)

    def prep_read_multishot(self, fd: Any, buf_group: int, user_data: Optional[int] = None, *,
                            length: int = 0, offset: int = 0, flags: int = 0,
                            fixed: bool = False) -> int:
        """``IORING_OP_READ_MULTISHOT`` (6.7+): read from a pollable file
        (pipe, eventfd, tty, socket) every time data arrives, each time
        into a buffer the kernel takes from provided-buffer group
        *buf_group* (``IOSQE_BUFFER_SELECT``), at most *length* bytes (0:
        the whole buffer).  One CQE per read with ``IORING_CQE_F_MORE``;
        the last one lacks it (EOF: ``res`` 0; the group ran dry:
        ``-ENOBUFS``; an error).  The request holds the group's memory
        until that last CQE."""
        keep = self._group("IORING_OP_READ_MULTISHOT", buf_group)
        if not 0 <= length <= _U32:
            raise ValueError(f"IORING_OP_READ_MULTISHOT: bad length {length}")
        fd = self._file(fd, fixed)
        return self._op(_OP_READ_MULTISHOT, fd=fd, off=offset, len=length, buf_index=buf_group,
                        flags=flags | _BUFFER_SELECT, fixed=fixed, user_data=user_data,
                        target=fd, keep=keep)

    # -- vectored I/O on registered buffers --------------------------------------

    def _registered_iovecs(self, op: str, buf_index: int, buffers: Sequence[Any],
                           writable: bool) -> Tuple[int, int, Any]:
        """(address, count, keep) of an ``iovec[]`` whose entries all lie in
        registered buffer *buf_index*: each item is ``(buf_offset, length)``
        within it, or a buffer (e.g. ``memoryview(registered)[a:b]``)."""
        reg = self._registered_buffer(op, buf_index)
        items = list(buffers)
        if not items:
            raise ValueError(f"{op}: no iovecs")
        _iovec_count(op, len(items))
        array = (abi.iovec * len(items))()
        pins: List[PinnedBuffer] = []
        for i, item in enumerate(items):
            if isinstance(item, tuple):
                start, n = item
                if start < 0 or n < 0 or start + n > reg.nbytes:
                    raise ValueError(f"{op}: [{start}, {start + n}) is outside registered "
                                     f"buffer {buf_index} ({reg.nbytes} bytes)")
                address = reg.address + start
            else:
                p = pin(item, writable)
                pins.append(p)
                address, n = p.address, p.nbytes
                if address < reg.address or address + n > reg.address + reg.nbytes:
                    raise ValueError(f"{op}: iovec {i} is not inside registered buffer {buf_index} "
                                     "(pass (offset, length) pairs or slices of that buffer)")
            array[i].iov_base = address
            array[i].iov_len = n
        return ctypes.addressof(array), len(items), (array, reg, pins)

    def prep_readv_fixed(self, fd: Any, buf_index: int, buffers: Sequence[Any], offset: int = 0,
                         user_data: Optional[int] = None, *, rw_flags: int = 0, flags: int = 0,
                         fixed: bool = False) -> int:
        """``IORING_OP_READV_FIXED`` (6.15+): a scatter read whose iovecs all
        lie inside registered buffer *buf_index* (``(buf_offset, length)``
        pairs or slices of it): the pages are the ones pinned at
        registration.  ``res`` is the byte count."""
        addr, count, keep = self._registered_iovecs("IORING_OP_READV_FIXED", buf_index, buffers, True)
        fd = self._file(fd, fixed)
        return self._op(_OP_READV_FIXED, fd=fd, addr=addr, len=count, off=offset,
                        op_flags=rw_flags, buf_index=buf_index, fixed=fixed, flags=flags,
                        user_data=user_data, target=fd, keep=keep)

    def prep_writev_fixed(self, fd: Any, buf_index: int, buffers: Sequence[Any], offset: int = 0,
                          user_data: Optional[int] = None, *, rw_flags: int = 0, flags: int = 0,
                          fixed: bool = False) -> int:
        """``IORING_OP_WRITEV_FIXED`` (6.15+): a gather write from iovecs
        inside registered buffer *buf_index*."""
        addr, count, keep = self._registered_iovecs("IORING_OP_WRITEV_FIXED", buf_index, buffers,
                                                    False)
        fd = self._file(fd, fixed)
        return self._op(_OP_WRITEV_FIXED, fd=fd, addr=addr, len=count, off=offset,
                        op_flags=rw_flags, buf_index=buf_index, fixed=fixed, flags=flags,
                        user_data=user_data, target=fd, keep=keep)

    # -- syncs, advice, size ---------------------------------------------------------

    def prep_sync_file_range(self, fd: Any, offset: int, length: int,
                             user_data: Optional[int] = None, *,
                             sync_range_flags: int = SYNC_FILE_RANGE_WRITE, flags: int = 0,
                             fixed: bool = False) -> int:
        """``IORING_OP_SYNC_FILE_RANGE``: ``sync_file_range(fd, offset,
        length, sync_range_flags)`` (``length`` 0: to the end of the file;
        it travels in the 32-bit ``len``).  ``SYNC_FILE_RANGE_WRITE`` starts
        writeback of the dirty pages; with ``_WAIT_BEFORE|_WAIT_AFTER`` too
        it returns once they are written.  No metadata, no device flush."""
        if offset < 0 or not 0 <= length <= _U32:
            raise ValueError(f"IORING_OP_SYNC_FILE_RANGE: bad offset/length {offset}/{length} "
                             "(length is a u32)")
        fd = self._file(fd, fixed)
        return self._op(_OP_SYNC_FILE_RANGE, fd=fd, off=offset, len=length,
                        op_flags=sync_range_flags, fixed=fixed, flags=flags, user_data=user_data,
                        target=fd)

    def prep_fadvise(self, fd: Any, offset: int, length: int, advice: int,
                     user_data: Optional[int] = None, *, flags: int = 0,
                     fixed: bool = False) -> int:
        """``IORING_OP_FADVISE``: ``posix_fadvise(fd, offset, length,
        advice)`` (``os.POSIX_FADV_*``; length 0: to the end of the file).
        The length travels in ``len`` (32 bits); a longer one goes in
        ``addr``, which kernels before 6.12 refuse with ``EINVAL``."""
        if offset < 0 or not 0 <= length <= _U64:
            raise ValueError(f"IORING_OP_FADVISE: bad offset/length {offset}/{length}")
        fd = self._file(fd, fixed)
        small = length <= _U32
        return self._op(_OP_FADVISE, fd=fd, off=offset, len=length if small else 0,
                        addr=0 if small else length, op_flags=advice, fixed=fixed, flags=flags,
                        user_data=user_data, target=fd)

    def prep_madvise(self, buffer: Any, advice: int, length: Optional[int] = None,
                     user_data: Optional[int] = None, *, flags: int = 0) -> int:
        """``IORING_OP_MADVISE``: ``madvise(buffer, length, advice)``
        (``mmap.MADV_*``) on memory that starts on a page boundary (an
        ``mmap``); runs on an io-wq worker.  The buffer is pinned until the
        CQE; advice that discards contents (``MADV_DONTNEED``,
        ``MADV_FREE``, ``MADV_REMOVE``) needs it writable.  The length
        travels in ``len``; one beyond 32 bits goes in ``off`` (6.12+)."""
        buf = pin(buffer, advice in _DESTRUCTIVE_MADVICE)
        if buf.address % mmap.PAGESIZE:
            raise ValueError(f"IORING_OP_MADVISE: the buffer at {buf.address:#x} does not start "
                             f"on a page boundary ({mmap.PAGESIZE} bytes); use an mmap")
        if length is None:
            length = buf.nbytes
        elif not 0 <= length <= buf.nbytes:
            raise ValueError(f"IORING_OP_MADVISE: length {length} exceeds the "
                             f"{buf.nbytes}-byte buffer")
        small = length <= _U32
        return self._op(_OP_MADVISE, fd=-1, addr=buf.address, len=length if small else 0,
                        off=0 if small else length, op_flags=advice, flags=flags,
                        user_data=user_data, target=f"{buf.address:#x}", keep=buf)

    def prep_ftruncate(self, fd: Any, length: int, user_data: Optional[int] = None, *,
                       flags: int = 0, fixed: bool = False) -> int:
        """``IORING_OP_FTRUNCATE`` (6.9+): ``ftruncate(fd, length)``; the
        length travels in ``off``."""
        if length < 0:
            raise ValueError(f"IORING_OP_FTRUNCATE: negative length {length}")
        fd = self._file(fd, fixed)
        return self._op(_OP_FTRUNCATE, fd=fd, off=length, fixed=fixed, flags=flags,
                        user_data=user_data, target=fd)

    # -- splice ------------------------------------------------------------------------

    def prep_splice(self, fd_in: Any, off_in: int, fd_out: Any, off_out: int, nbytes: int,
                    user_data: Optional[int] = None, *, splice_flags: int = 0,
                    fixed_in: bool = False, flags: int = 0, fixed: bool = False) -> int:
        """``IORING_OP_SPLICE``: move up to *nbytes* from *fd_in* to
        *fd_out* without a user-space copy; one of them must be a pipe, and
        a pipe's offset is -1 (-1 on a file: its file position).  The SQE
        carries ``fd_out`` in ``fd`` (``fixed``: a registered slot),
        ``off_out`` in ``off``, ``off_in`` in ``splice_off_in`` and
        ``fd_in`` in ``splice_fd_in`` (*fixed_in*: a registered slot, via
        ``SPLICE_F_FD_IN_FIXED``).  ``res`` is the byte count."""
        if not 0 <= nbytes <= _U32:
            raise ValueError(f"IORING_OP_SPLICE: bad byte count {nbytes}")
        if off_in < -1 or off_out < -1:
            raise ValueError(f"IORING_OP_SPLICE: offsets must be >= -1, got {off_in}/{off_out}")
        fd_in = self._file(fd_in, fixed_in)
        fd_out = self._file(fd_out, fixed)
        if fixed_in:
            splice_flags |= abi.SPLICE_F_FD_IN_FIXED
        return self._op(_OP_SPLICE, fd=fd_out, off=off_out, addr=off_in & _U64, len=nbytes,
                        op_flags=splice_flags, file_index=fd_in, fixed=fixed, flags=flags,
                        user_data=user_data, target=f"{fd_in} -> {fd_out}")

    def prep_tee(self, fd_in: Any, fd_out: Any, nbytes: int, user_data: Optional[int] = None, *,
                 splice_flags: int = 0, fixed_in: bool = False, flags: int = 0,
                 fixed: bool = False) -> int:
        """``IORING_OP_TEE``: copy up to *nbytes* from pipe *fd_in* into pipe
        *fd_out* without consuming them (``tee(2)``); fields as for SPLICE,
        offsets 0.  ``res`` is the byte count."""
        if not 0 <= nbytes <= _U32:
            raise ValueError(f"IORING_OP_TEE: bad byte count {nbytes}")
        fd_in = self._file(fd_in, fixed_in)
        fd_out = self._file(fd_out, fixed)
        if fixed_in:
            splice_flags |= abi.SPLICE_F_FD_IN_FIXED
        return self._op(_OP_TEE, fd=fd_out, len=nbytes, op_flags=splice_flags, file_index=fd_in,
                        fixed=fixed, flags=flags, user_data=user_data,
                        target=f"{fd_in} -> {fd_out}")

    # -- the file table --------------------------------------------------------------------

    def prep_files_update(self, offset: int, fds: Sequence[Any], user_data: Optional[int] = None,
                          *, flags: int = 0) -> int:
        """``IORING_OP_FILES_UPDATE``: ``update_files`` as a request: put
        *fds* in the registered file table from slot *offset* on (-1/None
        empties a slot).  ``res``: how many slots were updated.  With
        *offset* ``IORING_FILE_INDEX_ALLOC`` the kernel picks a free slot
        for each fd and writes it back into the ``int[]`` (held until the
        CQE): ``result()`` is then the list of those slots."""
        values = [-1 if f is None else _fileno(f) for f in fds]
        if not values:
            raise ValueError("IORING_OP_FILES_UPDATE: no fds")
        alloc = offset == abi.IORING_FILE_INDEX_ALLOC
        if not alloc and not 0 <= offset <= 0x7FFFFFFF:
            raise ValueError(f"IORING_OP_FILES_UPDATE: bad slot offset {offset}")
        array = (ctypes.c_int32 * len(values))(*values)

        def slots(res: int) -> Any:
            return list(array[:res])

        return self._op(_OP_FILES_UPDATE, fd=-1, addr=ctypes.addressof(array), len=len(values),
                        off=offset, flags=flags, user_data=user_data,
                        target="IORING_FILE_INDEX_ALLOC" if alloc else f"file slot {offset}",
                        keep=array, decode=slots if alloc else None)

    def prep_fixed_fd_install(self, slot: int, user_data: Optional[int] = None, *,
                              no_cloexec: bool = False, flags: int = 0) -> int:
        """``IORING_OP_FIXED_FD_INSTALL`` (6.8+): a regular fd for the file in
        registered slot *slot* (``IOSQE_FIXED_FILE`` is implied); ``res``
        is the new fd, ``O_CLOEXEC`` unless *no_cloexec*
        (``IORING_FIXED_FD_NO_CLOEXEC``).  The caller owns and closes it."""
        fd = self._file(slot, True)
        return self._op(_OP_FIXED_FD_INSTALL, fd=fd, fixed=True,
                        op_flags=int(abi.IORING_FIXED_FD_NO_CLOEXEC) if no_cloexec else 0,
                        flags=flags, user_data=user_data, target=f"fixed file {slot}")

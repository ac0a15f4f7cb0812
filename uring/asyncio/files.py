"""Files whose every operation is an io_uring request: ``uring.asyncio.open``.

    async with uring.asyncio.open("data.bin", "rb") as f:
        head = await f.read(4096)          # IORING_OP_READ at the position
        tail = await f.pread(4096, 1 << 20)
        async for line in f: ...

The interface is ``aiofiles``' (a program ports by changing its import):
``open(file, mode, buffering, encoding, errors, newline, closefd, opener)``
as the builtin ``open`` (its errors too: the same ``OSError`` subclass,
strerror and filename, a directory refused at the open), and awaitable
``read``, ``read1``, ``readinto``, ``readline``, ``readlines``, ``peek``,
``readall``, ``write``, ``writelines``, ``seek`` (``SEEK_DATA``/``SEEK_HOLE``
on a binary file), ``tell``, ``flush``, ``truncate``, ``stat``, ``close``,
async iteration and ``async with``; ``fileno()`` and a binary file's
``readable()`` answer at once, and ``seekable()``, ``writable()``,
``isatty()`` and a text file's ``readable()`` answer at once *and* may be
awaited, as aiofiles awaits them (``fileproto.Answer``).  Plus
``pread``/``pwrite`` at explicit offsets, which leave the position alone
and may run concurrently, ``fsync`` and ``statx``.  The open itself is
``IORING_OP_OPENAT`` (an *opener* runs on a worker thread instead), reads
and writes ``IORING_OP_READ``/``WRITE``, the close ``IORING_OP_CLOSE``,
``stat``/``statx`` ``IORING_OP_STATX``, ``truncate``
``IORING_OP_FTRUNCATE``.  ``tests/test_asyncio_aiofiles_program.py`` runs
one aiofiles-style program against the builtins to keep all of this so.

Binary files (``"rb"``, ``"r+b"``, ...) are ``AsyncBinaryFile``: the
position is kept here, not in the kernel, so two awaited operations never
race on a shared file offset (each read or write is issued at the offset it
starts from; append mode writes at offset -1, where the kernel decides).
``readline``, iteration and ``read1`` read ahead one chunk (*buffering*
bytes, 64 KiB by default) and split lines out of it; ``read(n)`` with
nothing read ahead reads exactly *n* bytes.  Writes go straight to the
kernel, so ``flush`` has nothing to do.

Text files are ``AsyncTextFile``, CPython's ``io.TextIOWrapper`` algorithm
(``_pyio``'s, awaited) over the binary file (``f.buffer``): the same
incremental decoder and ``io.IncrementalNewlineDecoder``, so universal
newlines, *newline* ``""``/``"\\n"``/``"\\r"``/``"\\r\\n"`` and ``tell()``'s
opaque cookies are the builtin's.  One difference, on purpose: a write
(or ``truncate()``) after a read lands where the reading stopped, as if
``seek(tell())`` had come first, where the builtin writes after its own
read-ahead.

One file object may be shared by several tasks: the operations at the
position (``read``, ``read1``, ``readinto``, ``readline``, ``readlines``,
``peek``, ``readall``, iteration, ``write``, ``writelines``, ``seek``,
``tell``, ``truncate``, ``flush``, ``fsync``) run one at a time per file,
in the order they were called, as aiofiles' (the builtin file behind its
lock) do: ``gather(f.write(a), f.write(b))`` writes *a* then *b*, two tasks
reading lines each get different lines.  A text file and its ``buffer``
share the one queue.  An operation that finds nobody ahead of it starts
at once (no extra loop step).  ``pread``, ``preadinto``, ``pwrite``,
``stat`` and ``statx`` do not wait their turn (explicit offsets, no
position), nor does ``close``: it closes the fd at once; a request already
in the kernel finishes, the operations still waiting find the file closed.

Cancellation.  A cancelled read consumes nothing: the position does not
move, and what the cancelled read had read ahead is kept for the next read
(``readlines`` included: all of its lines or none).  On a file that cannot
be read twice (a pipe, FIFO or terminal: ``seekable()`` False), bytes the
kernel had already handed to a cancelled read are lost, in both backends.
A write cannot be taken back once the kernel has it: a cancelled write
may have landed in part or whole, and the position says how far.  It is
moved past every byte the kernel wrote before the cancel took (for a
write done in several requests, up to the first short or failed one),
and ``CancelledError`` is still raised; the same when a write fails part
way.  A text write's position is that of its encoded bytes that landed
(``tell()`` is then that byte offset).  The thread fallback
(``threadfile.ThreadFile``) keeps the same promises; on a file that is not
seekable, bytes a cancelled read took on the worker thread are lost there
too.

A pipe, FIFO, socket or terminal is not seekable, as for the builtin:
``seekable()`` is False, and ``tell``/``seek``/``truncate()`` raise the
builtin's errors.

The per-read path is one coroutine frame and one call into the driver
(``LoopRing.start_rw``, which stages the SQE for the tick's flush), a
pinned buffer reused from the file's pool, and the copy into the ``bytes``
returned; ``tools/bench_asyncio.py --breakdown`` says what each part costs.
"""

from __future__ import annotations

import asyncio
import codecs
import errno
import io
import locale
import operator
import os
import stat
import sys
from typing import (
    TYPE_CHECKING,
    Any,
    AnyStr,
    Awaitable,
    Callable,
    Dict,
    Generator,
    Generic,
    Iterable,
    List,
    Optional,
    Tuple,
    TypeVar,
    overload,
)

from .. import abi
from ..buffers import BYTES_OFFSET, PinnedBuffer, export
from ..errors import kernel_error
from ..ops.paths import STATX_BASIC_STATS, statx
from .driver import LoopRing, get_ring
from .fallback import use_threads
from .fileproto import Answer, AsyncFileProtocol, answer
from .os import _os_error
from .sockets import close_fd
from .threadfile import Gate, open_thread_file

if TYPE_CHECKING:
    from _typeshed import OpenBinaryMode, OpenTextMode, StrOrBytesPath

__all__ = ["AsyncBinaryFile", "AsyncFile", "AsyncTextFile", "open", "stat_result_from_statx"]

_READ = "IORING_OP_READ"
_WRITE = "IORING_OP_WRITE"
_OP_READ = int(abi.IORING_OP_READ)
_OP_WRITE = int(abi.IORING_OP_WRITE)
_CHUNK = 1 << 16  # read-ahead and read(-1) chunk
_SPARE_BUFFERS = 64  # pinned pread buffers kept per size and file
_AT_EMPTY_PATH = 0x1000
_OFF_MAX = (1 << 63) - 1  # off_t's range: what the builtin's seek takes
_OFF_MIN = -(1 << 63)
_FAR = 1 << 40  # a seek this far asks the kernel whether the file system goes there
_T = TypeVar("_T")
_SEEK_DATA_HOLE = tuple(getattr(os, name) for name in ("SEEK_DATA", "SEEK_HOLE") if hasattr(os, name))


def _einval() -> OSError:
    """The builtin file's error for a negative position or size."""
    return OSError(errno.EINVAL, os.strerror(errno.EINVAL))


def binary_mode(mode: str) -> str:
    """The mode the builtin's binary file of *mode* reports (``FileIO``'s:
    ``"w+b"`` -> ``"rb+"``, ``"ab"`` -> ``"ab"``, ``"x+"`` -> ``"xb+"``)."""
    chars = set(mode)
    plus = "+" in chars
    kind = "x" if "x" in chars else "a" if "a" in chars else "w" if "w" in chars and not plus \
        else "r"
    return kind + "b" + ("+" if plus else "")


def _mode_flags(mode: str) -> Tuple[int, bool, bool, bool, bool]:
    """``open()``'s mode string as ``(os flags, readable, writable, append, binary)``."""
    if not isinstance(mode, str):
        raise TypeError(f"open() argument 'mode' must be str, not {type(mode).__name__}")
    chars = set(mode)
    if len(chars) != len(mode) or not chars <= set("rwaxb+t") or len(chars & set("rwax")) != 1 \
            or {"b", "t"} <= chars:
        raise ValueError(f"invalid mode: {mode!r}")
    plus = "+" in chars
    if "r" in chars:
        flags = os.O_RDWR if plus else os.O_RDONLY
    else:
        flags = (os.O_RDWR if plus else os.O_WRONLY) | os.O_CREAT
        if "w" in chars:
            flags |= os.O_TRUNC
        elif "a" in chars:
            flags |= os.O_APPEND
        else:
            flags |= os.O_EXCL
    readable = "r" in chars or plus
    writable = "r" not in chars or plus
    return flags | os.O_CLOEXEC, readable, writable, "a" in chars, "b" in chars


def _size(size: Optional[int]) -> int:
    """A read size as the builtin takes it: None or any index; -1 for all."""
    if size is None:
        return -1
    try:
        return operator.index(size)
    except TypeError:
        raise TypeError(f"argument should be integer or None, not '{type(size).__name__}'") \
            from None


def stat_result_from_statx(sx: statx) -> os.stat_result:
    """A ``statx`` structure as the ``os.stat_result`` ``os.stat`` returns."""
    at, mt, ct = sx.stx_atime, sx.stx_mtime, sx.stx_ctime
    at_ns = at.tv_sec * 1_000_000_000 + at.tv_nsec
    mt_ns = mt.tv_sec * 1_000_000_000 + mt.tv_nsec
    ct_ns = ct.tv_sec * 1_000_000_000 + ct.tv_nsec
    return os.stat_result((
        sx.stx_mode, sx.stx_ino, sx.stx_dev, sx.stx_nlink, sx.stx_uid, sx.stx_gid, sx.stx_size,
        at.tv_sec, mt.tv_sec, ct.tv_sec,
        # The float times as os.stat computes them (seconds + ns * 1e-9).
        at.tv_sec + at.tv_nsec * 1e-9, mt.tv_sec + mt.tv_nsec * 1e-9,
        ct.tv_sec + ct.tv_nsec * 1e-9, at_ns, mt_ns, ct_ns,
        sx.stx_blksize, sx.stx_blocks, sx.stx_rdev,
    ))


class AsyncFile(AsyncFileProtocol, Generic[AnyStr]):
    """What the two kinds of file share: the fd, its name and mode, the
    requests that do not depend on the kind (``pread``, ``pwrite``,
    ``fsync``, ``stat``, ``statx``, ``close``), ``async with`` and async
    iteration.  ``AsyncBinaryFile`` reads ``bytes``, ``AsyncTextFile``
    ``str``."""

    name: Any
    mode: str

    # -- overridden -----------------------------------------------------------------

    async def read(self, size: Optional[int] = -1) -> AnyStr:
        raise NotImplementedError

    async def readline(self, size: Optional[int] = -1) -> AnyStr:
        raise NotImplementedError

    async def write(self, data: Any) -> int:
        raise NotImplementedError

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        raise NotImplementedError

    async def tell(self) -> int:
        raise NotImplementedError

    async def truncate(self, size: Optional[int] = None) -> int:
        raise NotImplementedError

    def _raw(self) -> "AsyncBinaryFile":
        raise NotImplementedError

    def _check_readable(self) -> Any:
        raise NotImplementedError

    def _save(self) -> Tuple[Any, ...]:
        raise NotImplementedError

    def _restore(self, state: Tuple[Any, ...]) -> None:
        raise NotImplementedError

    async def _readline(self, limit: int) -> AnyStr:
        raise NotImplementedError

    async def _write(self, data: Any) -> int:
        raise NotImplementedError

    # -- state ----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._raw()._fd < 0  # noqa: SLF001 - this module's own binary file

    def fileno(self) -> int:
        raw = self._raw()
        raw._check_open()  # noqa: SLF001 - this module's own binary file
        return raw._fd  # noqa: SLF001 - this module's own binary file

    # aiofiles calls a binary file's ``readable`` directly and awaits the
    # others (and a text file's ``readable``): each answers at once, and an
    # ``Answer`` may be awaited too.

    def readable(self) -> bool:
        raw = self._raw()
        raw._check_open()  # noqa: SLF001 - this module's own binary file
        return raw._readable  # noqa: SLF001 - this module's own binary file

    def writable(self) -> Answer:
        raw = self._raw()
        raw._check_open()  # noqa: SLF001 - this module's own binary file
        return answer(raw._writable)  # noqa: SLF001 - this module's own binary file

    def seekable(self) -> Answer:
        raw = self._raw()
        raw._check_open()  # noqa: SLF001 - this module's own binary file
        return answer(raw._seekable)  # noqa: SLF001 - this module's own binary file

    def isatty(self) -> Answer:
        return answer(os.isatty(self.fileno()))

    # -- the same in both kinds -------------------------------------------------------

    async def readlines(self, hint: Optional[int] = -1) -> List[AnyStr]:
        """The lines to the end of the file; with *hint* > 0, lines until
        their total length passes *hint* (as the builtin ``readlines``).
        One operation: no other runs between its lines, and a cancelled
        one consumes none of them."""
        limit = _size(hint)
        self._check_readable()
        raw = self._raw()
        return await raw._in_turn(self._check_readable, self._readlines, limit)  # noqa: SLF001

    async def _readlines(self, limit: int) -> List[AnyStr]:
        lines: List[AnyStr] = []
        total = 0
        saved = self._save()
        try:
            while True:
                line = await self._readline(-1)
                if not line:
                    return lines
                lines.append(line)
                total += len(line)
                if 0 < limit < total:
                    return lines
        except BaseException:
            self._restore(saved)  # all the lines or none
            raise

    async def writelines(self, lines: Iterable[Any]) -> None:
        """``write`` each item of *lines* (no newlines are added), as one
        operation: no other runs between them."""
        raw = self._raw()
        await raw._in_turn(None, self._writelines, lines)  # noqa: SLF001

    async def _writelines(self, lines: Iterable[Any]) -> None:
        for line in lines:
            await self._write(line)

    async def flush(self) -> None:
        """Nothing to flush: writes go straight to the kernel (no data
        waits in Python).  Checks that the file is open, as the builtin's
        does, once the operations called before it are done.  For
        durability, ``fsync``."""
        raw = self._raw()
        await raw._in_turn_sync(raw._check_open)  # noqa: SLF001

    async def pread(self, size: int, offset: int) -> bytes:
        """Up to *size* bytes at *offset* (fewer at end of file); the position
        is not used or moved."""
        return await self._raw().pread(size, offset)

    async def pwrite(self, data: Any, offset: int) -> int:
        """Write all of *data* (bytes) at *offset*; the position is not
        used or moved."""
        return await self._raw().pwrite(data, offset)

    async def fsync(self, *, datasync: bool = False) -> None:
        """``IORING_OP_FSYNC`` (``IORING_FSYNC_DATASYNC`` with *datasync*),
        once the operations called before it (the writes) are done."""
        raw = self._raw()
        raw._check_open()  # noqa: SLF001 - this module's own binary file
        await raw._in_turn(raw._check_open, self._fsync, datasync)  # noqa: SLF001

    async def _fsync(self, datasync: bool) -> None:
        raw = self._raw()
        lr = raw._ring  # noqa: SLF001 - this module's own binary file
        await lr.room()
        ud = lr.ring.prep_fsync(raw._fd, datasync=datasync)  # noqa: SLF001 - this module's own binary file
        await lr.run_res(ud, "IORING_OP_FSYNC", raw.name)

    async def statx(self, mask: int = STATX_BASIC_STATS) -> statx:
        """``IORING_OP_STATX`` on the open file (``AT_EMPTY_PATH``): the
        ``statx`` structure (``stx_size``, ``stx_mode``, ``stx_btime``, ...)."""
        raw = self._raw()
        raw._check_open()  # noqa: SLF001 - this module's own binary file
        lr = raw._ring  # noqa: SLF001 - this module's own binary file
        await lr.room()
        fd = raw._fd  # noqa: SLF001 - this module's own binary file
        ud = lr.ring.prep_statx("", mask, dir_fd=fd, statx_flags=_AT_EMPTY_PATH)
        return await lr.run(ud)  # type: ignore[no-any-return]

    async def stat(self) -> os.stat_result:
        """``os.fstat`` of the file as an ``os.stat_result``, by
        ``IORING_OP_STATX``."""
        return stat_result_from_statx(await self.statx())

    async def close(self) -> None:
        """``IORING_OP_CLOSE``; closing twice is allowed."""
        await self._raw()._close()  # noqa: SLF001 - this module's own binary file

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self.fileno()}"
        return f"<uring.asyncio.{type(self).__name__} {self.name!r} mode={self.mode!r} {state}>"




class AsyncBinaryFile(AsyncFile[bytes]):
    """An open binary file; made by ``uring.asyncio.open`` with a ``"b"``
    mode.  Reads return ``bytes``; writes take any bytes-like object."""

    def __init__(self, ring: LoopRing, fd: int, name: Any, mode: str, readable: bool,
                 writable: bool, append: bool, position: int = 0,
                 buffer_size: int = _CHUNK, *, closefd: bool = True,
                 seekable: bool = True) -> None:
        self._ring = ring
        self._fd = fd
        self._closefd = closefd
        self.name = name
        self.mode = mode
        self._readable = readable
        self._writable = writable
        self._append = append
        self._seekable = seekable  # False: a pipe, FIFO, socket, terminal
        self._pos = position  # the file offset of _buf[_off]
        self._buf = b""  # bytes read ahead: the file's from _pos - _off
        self._off = 0
        self._bufsize = buffer_size if buffer_size > 1 else _CHUNK
        self._keep_ahead = buffer_size != 0  # buffering=0: nothing kept between calls
        self._spare: Dict[int, List[PinnedBuffer]] = {}  # size -> pinned read buffers
        self._last_pinned: Optional[PinnedBuffer] = None  # the last one pread gave back
        # The gate of the operations at the position (the text file over
        # this one uses it too): one runs at a time, the others wait their
        # turn in call order.
        self._gate = Gate()

    def _raw(self) -> "AsyncBinaryFile":
        return self

    def _check_open(self) -> None:
        if self._fd < 0:
            raise ValueError("I/O operation on closed file.")

    # As the builtin's: a buffered file asked to do what its mode does not
    # allow says so even when closed; an unbuffered one (FileIO) says
    # closed first.

    def _check_readable(self) -> None:
        if not self._readable and (self._fd >= 0 or self._keep_ahead):
            raise io.UnsupportedOperation("read")
        self._check_open()

    def _check_writable(self) -> None:
        if not self._writable and (self._fd >= 0 or self._keep_ahead):
            raise io.UnsupportedOperation("write")
        self._check_open()

    def _drop(self) -> None:
        """Forget what was read ahead (the position stays)."""
        self._buf = b""
        self._off = 0

    def _set(self, buf: bytes, off: int, pos: int) -> None:
        if self._keep_ahead:
            self._buf, self._off = buf, off
        else:
            self._buf, self._off = b"", 0
        self._pos = pos

    def _save(self) -> Tuple[Any, ...]:
        """What a read changes, to put back if it is cancelled."""
        return self._buf, self._off, self._pos

    def _restore(self, state: Tuple[Any, ...]) -> None:
        self._buf, self._off, self._pos = state

    # -- the gate: the operations at the position one at a time, in call order -----

    @property
    def busy(self) -> bool:
        """An operation at the position is running (others wait their turn)."""
        return self._gate.busy

    async def _in_turn(self, check: Optional[Callable[[], Any]],
                       op: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        """``op(*args)`` holding the gate: at once when no operation holds
        it (taken without an await), else once the operations called
        before are done, and then after *check* (the file may have been
        closed meanwhile)."""
        gate = self._gate
        if gate.busy:
            await gate.wait_turn()
            try:
                if check is not None:
                    check()
            except BaseException:
                gate.leave()
                raise
        else:
            gate.busy = True
        try:
            return await op(*args)
        finally:
            gate.leave()

    async def _in_turn_sync(self, op: Callable[..., _T], *args: Any) -> _T:
        """``op(*args)`` (no I/O) holding the gate: at once when it is
        free, else once the operations called before are done."""
        gate = self._gate
        if not gate.busy:
            return op(*args)
        await gate.wait_turn()
        try:
            return op(*args)
        finally:
            gate.leave()

    # -- positional I/O ------------------------------------------------------------

    async def pread(self, size: int, offset: int) -> bytes:
        if self._fd < 0 or not self._readable:
            self._check_readable()
        if size < 0 or offset < 0:
            raise ValueError("size and offset must be >= 0")
        # A buffer pinned on an earlier read of this size is reused: pinning
        # a new one costs more than the 4 KiB copy out.  The last one given
        # back is at hand (one read at a time: no list), the others pooled.
        pinned = self._last_pinned
        if pinned is not None and pinned.nbytes == size:
            self._last_pinned = None
        else:
            spare = self._spare.get(size)
            pinned = spare.pop() if spare else PinnedBuffer(bytearray(size), writable=True)
        # The request path of every read, one frame (``_read_at`` written
        # out): it runs once per read.
        lr = self._ring
        if lr._awaited >= lr.capacity:  # noqa: SLF001 - the counter behind ``awaited``
            await lr.room()
        ud, fut = lr.start_rw(_OP_READ, self._fd, pinned.address, size, offset, pinned)
        try:
            cqe = await fut
        except asyncio.CancelledError:
            await lr.after_cancel(ud, fut)  # the kernel is done with the buffer
            raise
        n: int = cqe[1]
        if n < 0:
            raise kernel_error(-n, _READ, self.name)
        data = bytes(pinned.obj) if n == size else bytes(memoryview(pinned.obj)[:n])
        if self._last_pinned is None:
            self._last_pinned = pinned
        else:
            spare = self._spare.get(size)
            if spare is None:
                spare = self._spare.setdefault(size, [])
            if len(spare) < _SPARE_BUFFERS:
                spare.append(pinned)
        return data

    async def preadinto(self, buf: Any, offset: int) -> int:
        """Read into *buf* (a writable buffer; a ``uring.PinnedBuffer`` made
        once saves pinning it per request) at *offset*; the byte count."""
        if self._fd < 0 or not self._readable:
            self._check_readable()
        if offset < 0:
            raise ValueError("offset must be >= 0")
        lr = self._ring
        if buf.__class__ is not PinnedBuffer or lr._awaited >= lr.capacity:  # noqa: SLF001
            return await self._read_at(buf, offset)
        # A buffer pinned once: the request path in this one frame.
        if not buf.writable:  # released, or pinned read-only: prep_read says which
            return await self._read_at(buf, offset)
        ud, fut = lr.start_rw(_OP_READ, self._fd, buf.address, buf.nbytes, offset, buf)
        try:
            cqe = await fut
        except asyncio.CancelledError:
            await lr.after_cancel(ud, fut)  # the kernel is done with the buffer
            raise
        n: int = cqe[1]
        if n < 0:
            raise kernel_error(-n, _READ, self.name)
        return n

    async def pwrite(self, data: Any, offset: int) -> int:
        """Write all of *data* (bytes) at *offset*; the position is not
        used or moved.  Cancelled, it may have landed in part or whole."""
        self._check_writable()
        if offset < 0:
            raise ValueError("offset must be >= 0")
        self._drop()  # the read-ahead may hold the old bytes
        return await self._write_all(data, offset)

    async def _read_at(self, buf: Any, offset: int) -> int:
        """One ``IORING_OP_READ``: the request path of every read, kept flat
        (``LoopRing.wait`` written out) because it runs once per read."""
        lr = self._ring
        if lr.awaited >= lr.capacity:
            await lr.room()
        if buf.__class__ is PinnedBuffer and buf.writable and buf.live:  # pinned once: no pin now
            ud, fut = lr.start_rw(_OP_READ, self._fd, buf.address, buf.nbytes, offset, buf)
        else:
            ud = lr.ring.prep_read(self._fd, buf, offset)
            fut = lr.track(ud)
        try:
            cqe = await fut
        except asyncio.CancelledError:
            await lr.after_cancel(ud, fut)
            raise
        res: int = cqe[1]
        if res < 0:
            raise kernel_error(-res, _READ, self.name)
        return res

    async def _write_all(self, data: Any, offset: int, at_position: bool = False) -> int:
        """Write *data* at *offset* (-1: the kernel's position, append mode),
        going on after a short write as ``write(2)`` callers must.

        A write the kernel has cannot be taken back: with *at_position*
        (*offset* is the position), the position moves past each piece as
        the kernel reports it written, so when the task is cancelled (the
        CQE the cancel waits for may carry the piece's byte count) or a
        piece fails, it already says how far the write got."""
        lr = self._ring
        view = memoryview(data).cast("B")
        done, total = 0, view.nbytes
        if not total:
            return 0
        whole_bytes = data.__class__ is bytes
        while True:
            if lr.awaited >= lr.capacity:
                await lr.room()
            if whole_bytes and not done:  # bytes never move: holding them is the pin
                keep, address, nbytes = data, id(data) + BYTES_OFFSET, total
            else:
                keep, address, nbytes = export(view[done:] if done else view, False)
            ud, fut = lr.start_rw(_OP_WRITE, self._fd, address, nbytes,
                                  offset if offset < 0 else offset + done, keep)
            try:
                cqe = await fut
            except asyncio.CancelledError:
                late = await lr.after_cancel(ud, fut)  # the kernel is done with the piece
                if at_position and late is not None and late[1] > 0 and offset >= 0:
                    self._pos = offset + done + late[1]  # it landed: the position says so
                raise
            res: int = cqe[1]
            if res < 0:
                raise kernel_error(-res, _WRITE, self.name)
            done += res
            if at_position and offset >= 0:
                self._pos = offset + done
            if done >= total or res == 0:
                return done

    async def _read_all_from(self, offset: int) -> List[bytes]:
        chunks: List[bytes] = []
        while True:
            got = await self.pread(_CHUNK, offset)
            if not got:
                return chunks
            offset += len(got)
            chunks.append(got)

    # -- stream I/O at the position ---------------------------------------------
    #
    # Each public operation takes the gate (or waits its turn) and runs
    # its ``_name`` twin, which the text file over this one calls with the
    # gate already held.  What is served from the read-ahead without a
    # request is done at once when the gate is free.

    async def read(self, size: Optional[int] = -1) -> bytes:
        """Up to *size* bytes from the position (fewer only at the end of
        the file), or everything to the end with -1/None."""
        if self._fd < 0 or not self._readable:
            self._check_readable()
        n = _size(size)
        if n < -1 and self._keep_ahead:  # as BufferedReader (FileIO reads all)
            raise ValueError("read length must be non-negative or -1")
        gate = self._gate
        if gate.busy:
            return await self._in_turn(self._check_readable, self._read, n)
        buf, off = self._buf, self._off
        if 0 <= n <= len(buf) - off:
            self._off = off + n
            self._pos += n
            return buf[off:off + n]
        # _in_turn's uncontended case, written out: the hot read keeps its
        # one frame (a read served from the read-ahead, above, takes no gate)
        gate.busy = True
        try:
            return await self._read(n)
        finally:
            gate.leave()

    async def _read(self, n: int) -> bytes:
        buf, off, pos = self._buf, self._off, self._pos
        have = len(buf) - off
        if 0 <= n <= have:
            self._off = off + n
            self._pos = pos + n
            return buf[off:off + n]
        head = buf[off:]
        if n < 0:
            rest = b"".join(await self._read_all_from(pos + have))
            data = head + rest if head else rest
            self._set(b"", 0, pos + len(data))
            return data
        want = n - have
        got = await self.pread(want, pos + have)
        if len(got) == want or not got:
            data = head + got if head else got
        else:  # short (end of file, or a read past 2 GiB): go on to the end or to n
            parts = [head, got]
            done = have + len(got)
            while done < n:
                more = await self.pread(n - done, pos + done)
                if not more:
                    break
                parts.append(more)
                done += len(more)
            data = b"".join(parts)
        self._set(b"", 0, pos + len(data))
        return data

    async def read1(self, size: Optional[int] = -1) -> bytes:
        """Up to *size* bytes with at most one request: what was read ahead
        if anything was, else one read (of *size*, or one chunk with -1)."""
        if self._fd < 0 or not self._readable:
            self._check_readable()
        n = _size(size)
        return await self._in_turn(self._check_readable, self._read1, n)

    async def _read1(self, n: int) -> bytes:
        if n < 0:
            n = self._bufsize
        buf, off, pos = self._buf, self._off, self._pos
        have = len(buf) - off
        if have:
            n = min(n, have)
            self._off = off + n
            self._pos = pos + n
            return buf[off:off + n]
        if n == 0:
            return b""
        got = await self.pread(n, pos)
        self._set(b"", 0, pos + len(got))
        return got

    async def peek(self, size: int = 0) -> bytes:
        """The bytes ahead of the position, not consumed (the builtin
        ``BufferedReader.peek``): what was read ahead, else one chunk read
        now (and kept, unless *buffering* was 0); at least one byte before
        the end of the file, and maybe more than *size*."""
        if self._fd < 0 or not self._readable:
            self._check_readable()
        return await self._in_turn(self._check_readable, self._peek)

    async def _peek(self) -> bytes:
        buf, off, pos = self._buf, self._off, self._pos
        if off < len(buf):
            return buf[off:]
        got = await self.pread(self._bufsize, pos)
        self._set(got, 0, pos)
        return got

    async def readall(self) -> bytes:
        """Everything from the position to the end (``FileIO.readall``)."""
        return await self.read()

    async def readinto(self, buf: Any) -> int:
        """Fill *buf* (a writable buffer) from the position; the byte count
        (less than its size only at the end of the file)."""
        if self._fd < 0 or not self._readable:
            self._check_readable()
        return await self._in_turn(self._check_readable, self._readinto, buf)

    async def _readinto(self, buf: Any) -> int:
        have = len(self._buf) - self._off
        if not have:
            # Straight into the caller's buffer (a PinnedBuffer stays pinned).
            n = await self._read_at(buf, self._pos)
            self._set(b"", 0, self._pos + n)
            return n
        view = memoryview(buf.obj if isinstance(buf, PinnedBuffer) else buf)
        if view.readonly:
            raise TypeError("readinto() argument must be read-write bytes-like object")
        view = view.cast("B")
        size = view.nbytes
        take = min(size, have)
        off, pos = self._off, self._pos
        view[:take] = self._buf[off:off + take]
        done = take
        while done < size:
            got = await self._read_at(view[done:], pos + done)
            if not got:
                break
            done += got
        if done > take:
            self._set(b"", 0, pos + done)
        else:
            self._off = off + take
            self._pos = pos + take
        return done

    async def readline(self, size: Optional[int] = -1) -> bytes:
        """One line, with its ``b"\\n"`` (empty at the end of the file); at
        most *size* bytes with *size* >= 0.  Split out of one read-ahead
        chunk: one request per chunk, not per line."""
        if not self._gate.busy:
            buf, off = self._buf, self._off
            i = buf.find(b"\n", off)
            if i >= 0 and (size is None or size < 0 or i - off < size):
                i += 1
                self._off = i
                self._pos += i - off
                return buf[off:i]
        return await self._readline_in_turn(_size(size))

    async def _readline_in_turn(self, limit: int) -> bytes:
        return await self._in_turn(None, self._readline, limit)

    async def _readline(self, limit: int) -> bytes:
        if self._fd < 0 or not self._readable:
            self._check_readable()
        buf, off, start = self._buf, self._off, self._pos
        parts: List[bytes] = []
        total = 0
        while True:
            end = len(buf) if limit < 0 else min(len(buf), off + limit - total)
            i = buf.find(b"\n", off, end)
            cut = i + 1 if i >= 0 else end
            if cut > off:
                parts.append(buf[off:cut])
                total += cut - off
            off = cut
            if i >= 0 or total == limit:
                break
            buf = await self.pread(self._bufsize, start + total)
            off = 0
            if not buf:
                break
        # Nothing changes until the line is whole: a cancelled readline
        # consumes nothing.
        self._set(buf, off, start + total)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def __anext__(self) -> bytes:
        if not self._gate.busy:
            buf, off = self._buf, self._off
            i = buf.find(b"\n", off)
            if i >= 0:
                i += 1
                self._off = i
                self._pos += i - off
                return buf[off:i]
        line = await self._readline_in_turn(-1)
        if not line:
            raise StopAsyncIteration
        return line

    async def write(self, data: Any) -> int:
        """Write *data* (bytes-like) at the position (append mode: at the
        end); the byte count.  Cancelled, it may have landed in part or
        whole: the position says how far (see the module's docstring)."""
        return await self._in_turn(None, self._write, data)

    async def _write(self, data: Any) -> int:
        if self._fd < 0 or not self._writable:
            self._check_writable()
        if isinstance(data, str):
            raise TypeError("a bytes-like object is required, not 'str'")
        if not memoryview(data).nbytes:
            return 0  # as the builtin: nothing written, the position stays
        self._drop()
        if not self._append:
            return await self._write_all(data, self._pos, True)
        try:
            return await self._write_all(data, -1)
        finally:
            # The kernel appended (all, some or none of it): its file
            # position is the end of what it wrote.
            if self._seekable and self._fd >= 0:
                try:
                    self._pos = os.lseek(self._fd, 0, os.SEEK_CUR)
                except OSError:
                    pass

    def _check_seekable(self) -> None:
        """The builtin's error for seek on a file that cannot seek."""
        if self._keep_ahead:
            raise io.UnsupportedOperation("File or stream is not seekable.")
        raise OSError(errno.ESPIPE, os.strerror(errno.ESPIPE))

    def _seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check_open()
        offset = operator.index(offset)
        if not self._seekable:
            self._check_seekable()
        if not _OFF_MIN <= offset <= _OFF_MAX:  # the builtin's conversion to off_t
            if self._keep_ahead:
                raise ValueError("cannot fit 'int' into an offset-sized integer")
            raise OverflowError("Python int too large to convert to C long")
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        elif whence == os.SEEK_END or whence in _SEEK_DATA_HOLE:
            # SEEK_DATA/SEEK_HOLE as the builtin binary file takes them:
            # the kernel's answer for this file (ENXIO past the end).
            pos = os.lseek(self._fd, offset, whence)
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if pos < 0 or pos > _OFF_MAX:
            raise _einval()
        if pos >= _FAR:
            # Past what most file systems take: the kernel says whether
            # this one does (EINVAL as the builtin's seek, not a failing
            # read later).
            pos = os.lseek(self._fd, pos, os.SEEK_SET)
        # Inside what was read ahead: keep it.
        moved = pos - self._pos
        if 0 <= self._off + moved <= len(self._buf):
            self._off += moved
        else:
            self._drop()
        self._pos = pos
        return pos

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position; the new one.  No request: the position is
        kept here (``SEEK_END`` asks ``lseek`` for the size)."""
        return await self._in_turn_sync(self._seek, offset, whence)

    def _tell(self) -> int:
        self._check_open()
        if not self._seekable:
            raise OSError(errno.ESPIPE, os.strerror(errno.ESPIPE))
        return self._pos

    async def tell(self) -> int:
        """The position: the offset of the next byte read or written."""
        return await self._in_turn_sync(self._tell)

    async def truncate(self, size: Optional[int] = None) -> int:
        """``IORING_OP_FTRUNCATE`` to *size* (default: the position); the
        position does not move."""
        self._check_open()
        if not self._writable:
            raise io.UnsupportedOperation("truncate")
        return await self._in_turn(self._check_open, self._truncate, size)

    async def _truncate(self, size: Optional[int]) -> int:
        if size is None:
            size = self._tell()
        else:
            size = operator.index(size)
        if size < 0:
            raise _einval()
        self._drop()
        lr = self._ring
        await lr.room()
        await lr.run_res(lr.ring.prep_ftruncate(self._fd, size), "IORING_OP_FTRUNCATE", self.name)
        return size

    async def _close(self) -> None:
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        self._drop()
        if not self._closefd:
            # open(fd, closefd=False): the fd stays the caller's, its offset
            # where this file's position is (as an unbuffered builtin file
            # leaves it).
            try:
                if self._seekable:
                    os.lseek(fd, self._pos, os.SEEK_SET)
            except OSError:
                pass
            return
        lr = self._ring
        if lr.closed:
            os.close(fd)
            return
        await lr.room()
        await lr.run_res(lr.ring.prep_close(fd), "IORING_OP_CLOSE", self.name)

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0 and getattr(self, "_closefd", True):
            try:
                os.close(self._fd)
            except OSError:
                pass


class AsyncTextFile(AsyncFile[str]):
    """An open text file; made by ``uring.asyncio.open`` without ``"b"``.
    ``io.TextIOWrapper``'s algorithm over an ``AsyncBinaryFile``
    (``buffer``): reads return ``str``, ``tell()`` returns the builtin's
    cookie, newlines are handled as *newline* says (see ``open``)."""

    _CHUNK_SIZE = _CHUNK

    def __init__(self, buffer: AsyncBinaryFile, encoding: Optional[str] = None,
                 errors: Optional[str] = None, newline: Optional[str] = None,
                 line_buffering: bool = False) -> None:
        _check_newline(newline)
        encoding = _text_encoding(encoding)
        if not getattr(codecs.lookup(encoding), "_is_text_encoding", True):
            raise LookupError(f"{encoding!r} is not a text encoding; "
                              "use codecs.open() to handle arbitrary codecs")
        if errors is None:
            errors = "strict"
        elif not isinstance(errors, str):
            raise ValueError(f"invalid errors: {errors!r}")
        self.buffer = buffer
        self.name = buffer.name
        self.mode = buffer.mode
        self.encoding = encoding
        self.errors = errors
        self.line_buffering = line_buffering
        self._readuniversal = not newline
        self._readtranslate = newline is None
        self._readnl = newline
        self._writetranslate = newline != ""
        self._writenl = newline or os.linesep
        self._encoder: Optional[codecs.IncrementalEncoder] = None
        self._decoder: Any = None  # codecs.IncrementalDecoder or io.IncrementalNewlineDecoder
        self._decoded_chars = ""  # text decoded, not all returned yet
        self._decoded_chars_used = 0
        # (decoder flags, the bytes from a point where the decoder held no
        # bytes): tell() rebuilds the position from it.
        self._snapshot: Optional[Tuple[int, bytes]] = None
        self._b2cratio = 0.0
        self._dirty = False  # read ahead since the last seek or write
        if buffer._readable:  # noqa: SLF001 - this module's own binary file
            self._get_decoder()
        if buffer._writable and buffer._pos != 0:  # noqa: SLF001 - this module's own binary file
            self._get_encoder().setstate(0)  # no BOM in the middle of a file

    def _raw(self) -> AsyncBinaryFile:
        return self.buffer

    def readable(self) -> Answer:  # type: ignore[override]  # awaitable, as aiofiles' text file
        return answer(super().readable())

    @property
    def newlines(self) -> Any:
        """The newlines read so far (universal newlines mode), as the builtin's."""
        return getattr(self._decoder, "newlines", None)

    # -- TextIOWrapper's machinery -------------------------------------------------

    def _get_encoder(self) -> codecs.IncrementalEncoder:
        self._encoder = codecs.getincrementalencoder(self.encoding)(self.errors)
        return self._encoder

    def _get_decoder(self) -> Any:
        decoder: Any = codecs.getincrementaldecoder(self.encoding)(self.errors)
        if self._readuniversal:
            decoder = io.IncrementalNewlineDecoder(decoder, self._readtranslate)
        self._decoder = decoder
        return decoder

    def _set_decoded_chars(self, chars: str) -> None:
        self._decoded_chars = chars
        self._decoded_chars_used = 0

    def _get_decoded_chars(self, n: Optional[int] = None) -> str:
        offset = self._decoded_chars_used
        chars = self._decoded_chars[offset:] if n is None else \
            self._decoded_chars[offset:offset + n]
        self._decoded_chars_used += len(chars)
        return chars

    def _save(self) -> Tuple[Any, ...]:
        """Everything a read changes, to put back if it is cancelled."""
        b = self.buffer
        dec = self._decoder.getstate() if self._decoder is not None else None
        return (self._decoded_chars, self._decoded_chars_used, self._snapshot, self._b2cratio,
                dec, b._buf, b._off, b._pos, self._dirty)  # noqa: SLF001 - this module's own binary file

    def _restore(self, state: Tuple[Any, ...]) -> None:
        b = self.buffer
        (self._decoded_chars, self._decoded_chars_used, self._snapshot, self._b2cratio,
         dec, b._buf, b._off, b._pos, self._dirty) = state  # noqa: SLF001 - this module's own binary file
        if dec is not None and self._decoder is not None:
            self._decoder.setstate(dec)

    async def _read_chunk(self) -> bool:
        """Read and decode the next chunk; False at the end of the file."""
        decoder = self._decoder
        assert decoder is not None
        dec_buffer, dec_flags = decoder.getstate()
        input_chunk = await self.buffer._read1(self._CHUNK_SIZE)  # noqa: SLF001 - its own
        eof = not input_chunk
        decoded_chars = decoder.decode(input_chunk, eof)
        self._set_decoded_chars(decoded_chars)
        self._b2cratio = len(input_chunk) / len(decoded_chars) if decoded_chars else 0.0
        self._snapshot = (dec_flags, dec_buffer + input_chunk)
        self._dirty = True
        return not eof or bool(decoded_chars)  # as C: a chunk that gave text is not the end

    # The cookie is the C TextIOWrapper's (not _pyio's): a 64-bit byte
    # position, then 32 bits each of decoder flags, bytes to feed and
    # characters to skip, then the need-EOF flag.
    @staticmethod
    def _pack_cookie(position: int, dec_flags: int = 0, bytes_to_feed: int = 0,
                     need_eof: bool = False, chars_to_skip: int = 0) -> int:
        return (position | (dec_flags << 64) | (bytes_to_feed << 96) | (chars_to_skip << 128)
                | bool(need_eof) << 160)

    @staticmethod
    def _unpack_cookie(bigint: int) -> Tuple[int, int, int, bool, int]:
        rest, position = divmod(bigint, 1 << 64)
        rest, dec_flags = divmod(rest, 1 << 32)
        rest, bytes_to_feed = divmod(rest, 1 << 32)
        need_eof, chars_to_skip = divmod(rest, 1 << 32)
        return position, dec_flags, bytes_to_feed, bool(need_eof), chars_to_skip

    def _decoder_setstate(self, start_pos: int, dec_flags: int) -> None:
        assert self._decoder is not None
        if start_pos == 0 and dec_flags == 0:
            self._decoder.reset()
        else:
            self._decoder.setstate((b"", dec_flags))

    def _tell(self) -> int:
        self.buffer._check_open()  # noqa: SLF001 - this module's own binary file
        position = self.buffer._pos  # noqa: SLF001 - this module's own binary file
        decoder = self._decoder
        if decoder is None or self._snapshot is None:
            return position
        dec_flags, next_input = self._snapshot
        position -= len(next_input)
        chars_to_skip = self._decoded_chars_used
        if chars_to_skip == 0:
            return self._pack_cookie(position, dec_flags)
        saved_state = decoder.getstate()
        try:
            skip_bytes = int(self._b2cratio * chars_to_skip)
            skip_back = 1
            while skip_bytes > 0:
                self._decoder_setstate(position, dec_flags)
                n = len(decoder.decode(next_input[:skip_bytes]))
                if n <= chars_to_skip:
                    b, d = decoder.getstate()
                    if not b:
                        dec_flags = d
                        chars_to_skip -= n
                        break
                    skip_bytes -= len(b)
                    skip_back = 1
                else:
                    skip_bytes -= skip_back
                    skip_back *= 2
            if skip_bytes <= 0:
                skip_bytes = 0
                self._decoder_setstate(position, dec_flags)
            start_pos = position + skip_bytes
            start_flags = dec_flags
            if chars_to_skip == 0:
                return self._pack_cookie(start_pos, start_flags)
            bytes_fed = 0
            need_eof = False
            chars_decoded = 0
            for i in range(skip_bytes, len(next_input)):
                bytes_fed += 1
                chars_decoded += len(decoder.decode(next_input[i:i + 1]))
                dec_buffer, dec_flags = decoder.getstate()
                if not dec_buffer and chars_decoded <= chars_to_skip:
                    start_pos += bytes_fed
                    chars_to_skip -= chars_decoded
                    start_flags, bytes_fed, chars_decoded = dec_flags, 0, 0
                if chars_decoded >= chars_to_skip:
                    break
            else:
                chars_decoded += len(decoder.decode(b"", final=True))
                need_eof = True
                if chars_decoded < chars_to_skip:
                    raise OSError("can't reconstruct logical file position")
            return self._pack_cookie(start_pos, start_flags, bytes_fed, need_eof, chars_to_skip)
        finally:
            decoder.setstate(saved_state)

    def _check_seekable(self) -> None:
        b = self.buffer
        b._check_open()  # noqa: SLF001 - this module's own binary file
        if not b._seekable:  # noqa: SLF001 - this module's own binary file
            raise io.UnsupportedOperation("underlying stream is not seekable")

    def _tell_checked(self) -> int:
        self._check_seekable()
        return self._tell()

    async def tell(self) -> int:
        """The position as the builtin's ``tell()`` gives it: the byte
        offset when the decoder holds nothing, else an opaque cookie that
        ``seek`` takes back."""
        b = self.buffer
        return await b._in_turn_sync(self._tell_checked)  # noqa: SLF001

    def _reset_encoder(self, position: int) -> None:
        try:
            encoder = self._encoder or self._get_encoder()
        except LookupError:
            return
        if position != 0:
            encoder.setstate(0)
        else:
            encoder.reset()

    async def seek(self, cookie: int, whence: int = os.SEEK_SET) -> int:
        """As the builtin's: to a ``tell()`` cookie, or ``seek(0, SEEK_CUR)``
        / ``seek(0, SEEK_END)``; the new position."""
        self._check_seekable()
        b = self.buffer
        return await b._in_turn(self._check_seekable, self._seek, cookie, whence)  # noqa: SLF001

    async def _seek(self, cookie: int, whence: int = os.SEEK_SET) -> int:
        b = self.buffer
        b._check_open()  # noqa: SLF001 - this module's own binary file
        cookie = operator.index(cookie)
        if whence == os.SEEK_CUR:
            if cookie != 0:
                raise io.UnsupportedOperation("can't do nonzero cur-relative seeks")
            whence = os.SEEK_SET
            cookie = self._tell()
        elif whence == os.SEEK_END:
            if cookie != 0:
                raise io.UnsupportedOperation("can't do nonzero end-relative seeks")
            position = b._seek(0, os.SEEK_END)  # noqa: SLF001 - this module's own binary file
            self._set_decoded_chars("")
            self._snapshot = None
            if self._decoder is not None:
                self._decoder.reset()
            self._reset_encoder(position)
            self._dirty = False
            return position
        if whence != os.SEEK_SET:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if cookie < 0:
            raise ValueError(f"negative seek position {cookie}")
        if cookie >> 168:  # wider than the C cookie's 21 bytes
            raise OverflowError("int too big to convert")
        start_pos, dec_flags, bytes_to_feed, need_eof, chars_to_skip = self._unpack_cookie(cookie)
        if start_pos > _OFF_MAX:  # a negative off_t to the builtin: its seek's EINVAL
            raise _einval()
        saved = self._save()
        try:
            b._seek(start_pos)  # noqa: SLF001 - this module's own binary file
            self._set_decoded_chars("")
            self._snapshot = None
            self._dirty = False
            if self._decoder is not None:
                self._decoder_setstate(start_pos, dec_flags)
                self._snapshot = (dec_flags, b"")
            elif dec_flags or chars_to_skip:
                self._decoder_setstate(start_pos, dec_flags)  # type: ignore[unreachable]
            if chars_to_skip:
                decoder = self._decoder or self._get_decoder()
                input_chunk = await b._read(bytes_to_feed)  # noqa: SLF001 - its own
                self._snapshot = (dec_flags, input_chunk)
                self._set_decoded_chars(decoder.decode(input_chunk, need_eof))
                if len(self._decoded_chars) < chars_to_skip:
                    raise OSError("can't restore logical file position")
                self._decoded_chars_used = chars_to_skip
                self._dirty = True
        except BaseException:
            self._restore(saved)
            raise
        self._reset_encoder(cookie)
        return cookie

    async def _sync(self, clear: bool = True) -> None:
        """Before a write or truncate after a read: put the binary position
        where the reading stopped (``seek(tell())``); for a write, forget
        the decoder's state as the builtin's write does."""
        if self._dirty and self.buffer._seekable:  # noqa: SLF001 - its own binary file
            await self._seek(self._tell())
        if clear and (self._decoded_chars or self._snapshot is not None):
            self._set_decoded_chars("")
            self._snapshot = None
            if self._decoder is not None:
                self._decoder.reset()
        self._dirty = False

    # -- reading -------------------------------------------------------------------

    def _check_readable(self) -> AsyncBinaryFile:
        b = self.buffer
        if b._fd < 0 or not b._readable:  # noqa: SLF001 - this module's own binary file
            b._check_open()  # noqa: SLF001 - closed first, as the builtin text file
            b._check_readable()  # noqa: SLF001 - this module's own binary file
        return b

    async def read(self, size: Optional[int] = -1) -> str:
        """Up to *size* characters (fewer only at the end of the file), or
        everything to the end with -1/None."""
        b = self._check_readable()
        n = _size(size)
        return await b._in_turn(self._check_readable, self._read, n)  # noqa: SLF001

    async def _read(self, n: int) -> str:
        decoder = self._decoder or self._get_decoder()
        saved = self._save()
        try:
            if n < 0:
                raw = await self.buffer._read(-1)  # noqa: SLF001 - this module's own binary file
                result = self._get_decoded_chars() + decoder.decode(raw, final=True)
                self._set_decoded_chars("")
                self._snapshot = None
                self._dirty = True
                return result
            result = self._get_decoded_chars(n)
            eof = False
            while len(result) < n and not eof:
                eof = not await self._read_chunk()
                result += self._get_decoded_chars(n - len(result))
            return result
        except BaseException:
            self._restore(saved)
            raise

    async def readline(self, size: Optional[int] = -1) -> str:
        """One line with its newline as *newline* defines lines (empty at
        the end of the file); at most *size* characters with *size* >= 0."""
        if self._readtranslate and size == -1 and not self.buffer.busy:
            # The common case without copying the rest of the chunk per line.
            chars, start = self._decoded_chars, self._decoded_chars_used
            i = chars.find("\n", start)
            if i >= 0:
                self._decoded_chars_used = i + 1
                return chars[start:i + 1]
        b = self._check_readable()
        if size is None:  # as the builtin text file's (a binary file's takes None)
            raise TypeError("'NoneType' object cannot be interpreted as an integer")
        limit = _size(size)
        return await b._in_turn(self._check_readable, self._readline_whole, limit)  # noqa: SLF001

    async def _readline_whole(self, limit: int) -> str:
        """``_readline``, all or nothing: a cancelled one consumes nothing."""
        saved = self._save()
        try:
            return await self._readline(limit)
        except BaseException:
            self._restore(saved)
            raise

    def _line_end(self, line: str, start: int) -> int:
        """Where the first line of *line* ends (searching from *start*), or -1."""
        if self._readtranslate:
            pos = line.find("\n", start)
            return pos + 1 if pos >= 0 else -1
        if self._readuniversal:
            nlpos = line.find("\n", start)
            crpos = line.find("\r", start)
            if crpos == -1:
                return nlpos + 1 if nlpos >= 0 else -1
            if nlpos == -1 or crpos < nlpos - 1:
                return crpos + 1
            if nlpos < crpos:
                return nlpos + 1
            return crpos + 2  # \r\n (the decoder never splits one)
        assert self._readnl is not None
        pos = line.find(self._readnl, max(0, start - len(self._readnl) + 1))
        return pos + len(self._readnl) if pos >= 0 else -1

    async def _readline(self, limit: int) -> str:
        # C's _textiowrapper_readline: get text when none is left, find the
        # line end, put aside what has none (keeping a "\r" that may be half
        # of a "\r\n" newline for the next round).
        chunks: List[str] = []
        chunked = 0
        remaining = ""
        while True:
            while not self._decoded_chars:  # (C looks at the length, not what is left)
                if not await self._read_chunk():
                    self._set_decoded_chars("")
                    self._snapshot = None
                    return "".join(chunks) + remaining
            if remaining:
                line = remaining + self._decoded_chars[self._decoded_chars_used:]
                base = self._decoded_chars_used - len(remaining)
                start = 0
                remaining = ""
            else:
                line = self._decoded_chars
                base = 0
                start = self._decoded_chars_used
            endpos = self._line_end(line, start)
            if endpos >= 0:
                if limit >= 0 and endpos - start + chunked >= limit:
                    endpos = start + limit - chunked
                self._decoded_chars_used = max(base + endpos, 0)
                chunks.append(line[start:endpos])
                return "".join(chunks)
            endpos = len(line)
            if self._readnl == "\r\n" and line.endswith("\r"):
                endpos -= 1
            if limit >= 0 and endpos - start + chunked >= limit:
                endpos = start + limit - chunked
                self._decoded_chars_used = max(base + endpos, 0)
                chunks.append(line[start:endpos])
                return "".join(chunks)
            if endpos > start:
                chunks.append(line[start:endpos])
                chunked += endpos - start
            remaining = line[endpos:]
            self._set_decoded_chars("")

    async def __anext__(self) -> str:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    async def readinto(self, buf: Any) -> int:
        """Not in text mode (``io.UnsupportedOperation``), as the builtin."""
        raise io.UnsupportedOperation("readinto() needs binary mode")

    # -- writing -------------------------------------------------------------------

    async def write(self, s: str) -> int:
        """Write *s* at the position (append mode: at the end), ``"\\n"``
        as *newline* says; the number of characters.  Cancelled, its
        encoded bytes may have landed in part or whole: ``tell()`` then
        says how far (see the module's docstring)."""
        b = self.buffer
        return await b._in_turn(None, self._write, s)  # noqa: SLF001

    async def _write(self, s: Any) -> int:
        b = self.buffer
        if b._fd < 0 or not b._writable:  # noqa: SLF001 - this module's own binary file
            b._check_open()  # noqa: SLF001 - closed first, as the builtin text file
            b._check_writable()  # noqa: SLF001 - this module's own binary file
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        length = len(s)
        if self._writetranslate and self._writenl != "\n" and "\n" in s:
            s = s.replace("\n", self._writenl)
        encoder = self._encoder or self._get_encoder()
        state = encoder.getstate()
        data = encoder.encode(s)
        start: Optional[int] = None
        try:
            await self._sync()
            start = b._pos  # noqa: SLF001 - this module's own binary file
            await b._write(data)  # noqa: SLF001 - this module's own binary file
        except BaseException:
            # Nothing landed: the encoder is as before (a BOM still to
            # write).  What did land is past the position: _sync left no
            # decoded text, so tell() is that byte offset.
            if start is None or b._pos == start:  # noqa: SLF001 - this module's own binary file
                encoder.setstate(state)
            raise
        return length

    async def truncate(self, size: Optional[int] = None) -> int:
        """``IORING_OP_FTRUNCATE`` to *size* (default: the position); the
        position does not move."""
        b = self.buffer
        b._check_open()  # noqa: SLF001 - this module's own binary file
        b._check_writable()  # noqa: SLF001 - this module's own binary file
        return await b._in_turn(b._check_open, self._truncate, size)  # noqa: SLF001

    async def _truncate(self, size: Optional[int]) -> int:
        await self._sync(clear=False)
        return await self.buffer._truncate(size)  # noqa: SLF001 - this module's own binary file


def _check_newline(newline: Optional[str]) -> None:
    if newline is not None and not isinstance(newline, str):
        raise TypeError(f"illegal newline type: {type(newline)!r}")
    if newline not in (None, "", "\n", "\r", "\r\n"):
        raise ValueError(f"illegal newline value: {newline!r}")


def _text_encoding(encoding: Optional[str]) -> str:
    """The builtin's default: the locale's encoding (UTF-8 in UTF-8 mode)."""
    if encoding is None or encoding == "locale":
        # io.text_encoding (3.10+) without its EncodingWarning: UTF-8 mode
        # or the locale's encoding.
        encoding = "utf-8" if sys.flags.utf8_mode else locale.getpreferredencoding(False)
    if not isinstance(encoding, str):
        raise ValueError(f"invalid encoding: {encoding!r}")
    return encoding


_F = TypeVar("_F", bound=AsyncFile)  # type: ignore[type-arg]


class _Opening(Generic[_F]):
    """What ``open()`` returns: await it, or use it with ``async with``."""

    def __init__(self, path: Any, mode: str, buffering: int, encoding: Optional[str],
                 errors: Optional[str], newline: Optional[str], perms: int,
                 loop_ring: Optional[LoopRing], closefd: bool = True,
                 opener: Optional[Callable[[Any, int], int]] = None) -> None:
        # Bad arguments fail here, before anything is awaited, as open() would.
        if not isinstance(path, (str, bytes, int)) and not hasattr(path, "__fspath__"):
            raise TypeError(f"expected str, bytes or os.PathLike object, not "
                            f"{type(path).__name__}")
        _, _, _, _, binary = _mode_flags(mode)
        buffering = operator.index(buffering)
        if binary:
            if encoding is not None:
                raise ValueError("binary mode doesn't take an encoding argument")
            if errors is not None:
                raise ValueError("binary mode doesn't take an errors argument")
            if newline is not None:
                raise ValueError("binary mode doesn't take a newline argument")
        else:
            if buffering == 0:
                raise ValueError("can't have unbuffered text I/O")
            _check_newline(newline)
            if encoding is not None and not isinstance(encoding, str):
                raise TypeError(f"open() argument 'encoding' must be str or None, not "
                                f"{type(encoding).__name__}")
            if errors is not None and not isinstance(errors, str):
                raise TypeError(f"open() argument 'errors' must be str or None, not "
                                f"{type(errors).__name__}")
            codecs.lookup(_text_encoding(encoding))
        if not closefd and not isinstance(path, int):
            raise ValueError("Cannot use closefd=False with file name")
        self._args = (path, mode, buffering, encoding, errors, newline, perms, loop_ring, closefd,
                      opener)
        self._file: Optional[_F] = None

    def __await__(self) -> Generator[Any, None, _F]:
        return self._open().__await__()

    async def _open(self) -> _F:
        path, mode, buffering, encoding, errors, newline, perms, lr, closefd, opener = self._args
        if use_threads(lr):  # io_uring unavailable or refused: the builtin open() on a thread
            return await open_thread_file(path, mode, buffering, encoding,  # type: ignore[return-value]
                                          errors, newline, perms, closefd, opener)
        lr = lr if lr is not None else get_ring()
        flags, readable, writable, append, binary = _mode_flags(mode)
        given_fd = isinstance(path, int)
        if given_fd:  # as open(fd): that file, no open of our own
            res = name = path
        elif opener is not None:  # as open(opener=...): its fd, the call on a worker thread
            name = os.fspath(path)
            res = await asyncio.get_running_loop().run_in_executor(None, opener, name, flags)
            if not isinstance(res, int) or res < 0:
                raise ValueError(f"opener returned {res!r}")
        else:
            name = os.fspath(path)
            await lr.room()
            try:
                res = await lr.run_res(lr.ring.prep_openat(path, flags, perms), "IORING_OP_OPENAT",
                                       name, salvage=close_fd)
            except OSError as exc:
                if exc.errno is None:
                    raise
                # The builtin's error: its message and filename (the op in a note).
                raise _os_error(exc.errno, "IORING_OP_OPENAT", name) from None
        try:
            # As open(): a directory is refused (the kernel opens one for
            # reading); an append-mode file is positioned at its end, a
            # given fd where it is.  A file lseek refuses (a pipe, FIFO,
            # socket, terminal) is not seekable, as FileIO.seekable() says.
            st_mode = os.fstat(res).st_mode
            if stat.S_ISDIR(st_mode):
                raise _os_error(errno.EISDIR, "fstat", name)
            seekable = True
            try:
                if append or given_fd:
                    position = os.lseek(res, 0, os.SEEK_END if append else os.SEEK_CUR)
                else:
                    position = 0
                    if not (stat.S_ISREG(st_mode) or stat.S_ISBLK(st_mode)):
                        os.lseek(res, 0, os.SEEK_CUR)
            except OSError:
                position = 0
                seekable = False
        except BaseException:
            if closefd:
                os.close(res)
            raise
        size = buffering if buffering > 1 else (0 if buffering == 0 else _CHUNK)
        raw = AsyncBinaryFile(lr, res, name, binary_mode(mode) if binary else mode, readable,
                              writable, append, position, size, closefd=closefd,
                              seekable=seekable)
        if binary:
            return raw  # type: ignore[return-value]
        try:
            text = AsyncTextFile(raw, encoding, errors, newline, line_buffering=buffering == 1)
        except BaseException:
            await raw.close()
            raise
        return text  # type: ignore[return-value]

    async def __aenter__(self) -> _F:
        self._file = await self._open()
        return self._file

    async def __aexit__(self, *exc: Any) -> None:
        if self._file is not None:
            await self._file.close()


_Opener = Optional[Callable[[Any, int], int]]


@overload
def open(file: "StrOrBytesPath | int", mode: "OpenTextMode" = "r", buffering: int = -1,
         encoding: Optional[str] = None, errors: Optional[str] = None,
         newline: Optional[str] = None, closefd: bool = True, opener: _Opener = None, *,
         perms: int = 0o666, ring: Optional[LoopRing] = None) -> _Opening[AsyncTextFile]: ...


@overload
def open(file: "StrOrBytesPath | int", mode: "OpenBinaryMode", buffering: int = -1,
         encoding: None = None, errors: None = None, newline: None = None,
         closefd: bool = True, opener: _Opener = None, *,
         perms: int = 0o666, ring: Optional[LoopRing] = None) -> _Opening[AsyncBinaryFile]: ...


@overload
def open(file: "StrOrBytesPath | int", mode: str, buffering: int = -1,
         encoding: Optional[str] = None, errors: Optional[str] = None,
         newline: Optional[str] = None, closefd: bool = True, opener: _Opener = None, *,
         perms: int = 0o666, ring: Optional[LoopRing] = None) -> "_Opening[AsyncFile[Any]]": ...


def open(file: Any, mode: str = "r", buffering: int = -1, encoding: Optional[str] = None,
         errors: Optional[str] = None, newline: Optional[str] = None, closefd: bool = True,
         opener: _Opener = None, *, perms: int = 0o666,
         ring: Optional[LoopRing] = None) -> "_Opening[Any]":
    """Open *file* with ``IORING_OP_OPENAT`` on the running loop's ring;
    the arguments are the builtin ``open``'s.

    *mode* ``"r"``, ``"wb"``, ``"a+"``, ``"x"``, ...: with ``"b"`` an
    ``AsyncBinaryFile`` (``bytes``), else an ``AsyncTextFile`` (``str``,
    decoded with *encoding*, by default the locale's as the builtin's, and
    *errors*).  *newline* as the builtin's: ``None`` translates ``"\\r\\n"``
    and ``"\\r"`` to ``"\\n"`` on read and ``"\\n"`` to ``os.linesep`` on
    write; ``""`` splits lines on all three and translates nothing;
    ``"\\n"``, ``"\\r"``, ``"\\r\\n"`` end lines there only and are what
    ``"\\n"`` is written as.  *file* may be an open fd, as the builtin's
    (closed at ``close()`` unless *closefd* is False, and then left at
    the file's position; the position is kept here, so the fd's own offset
    does not move before that); *opener* is called
    on a worker thread as ``opener(path, flags)`` for the fd to use,
    instead of ``IORING_OP_OPENAT``.  *buffering*: the read-ahead size of a
    binary file (0: none kept between calls; -1 or 1: 64 KiB).  *perms*
    are the new file's permission bits (before the umask).  Use as
    ``async with uring.asyncio.open(p, "rb") as f`` or ``f = await
    uring.asyncio.open(p)`` (then ``await f.close()``).

    Where io_uring is unavailable (``uring.asyncio.backend()`` is
    ``"threads"``), the builtin ``open()``'s file, each call on the loop's
    default executor, with the same methods (``threadfile.ThreadFile``)."""
    return _Opening(file, mode, buffering, encoding, errors, newline, perms, ring, closefd, opener)

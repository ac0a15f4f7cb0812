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
awaited, as aiofiles awaits them (``fileproto.Answer``); ``detach()``, as
aiofiles calls it, at once (a text file's gives its binary file, a
buffered binary file's an unbuffered one over the same fd); the
attributes ``name``, ``mode``, ``closed``, ``raw`` (binary), ``buffer``,
``encoding``, ``errors``, ``newlines``, ``line_buffering`` (text).  An
operation the file cannot do (closed, detached, a mode without it, a bad
argument) raises the builtin file's exception with its message, checked
in its order (``io.UnsupportedOperation: read``/``not readable``/``File
not open for reading``, ``ValueError: read of closed file``/``I/O
operation on closed file.``, ``whence value 7 unsupported``, ...).  Plus
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
(C's, awaited) over the binary file (``f.buffer``): the same incremental
decoder and ``io.IncrementalNewlineDecoder``, the same chunks (8 KiB, or
what ``read(n)`` asks for, taken from the binary file's read-ahead), so
universal newlines, *newline* ``""``/``"\\n"``/``"\\r"``/``"\\r\\n"``,
``tell()``'s opaque cookies, and where a write or ``truncate()`` after a
read lands (as the builtin's: after its read-ahead, the binary position,
not where the reading stopped; ``seek(tell())`` first writes there;
after a ``seek()`` to a cookie that feeds the decoder, the block the
builtin's buffered file reads there counts too, except in a writable
file, whose reads are as if flushed first, as the thread fallback's are)
are the builtin's.  Two of the builtin's CPython 3.11 quirks are not copied:
its ``readlines()`` iterates, which turns its ``tell()`` off until a
``flush()``/``seek()`` and can leave it wrong after (here the lines are
``readline()``'s and ``tell()`` stays right), and its read after a write
reads from before its still-buffered write (here writes go straight to
the kernel).  A read that fails (a decoding error) leaves the file as the
builtin's failing read does.

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
be read twice (a pipe, FIFO or terminal: ``seekable()`` False,
``AsyncBinaryStream``), the bytes the kernel had already handed to the
cancelled read (a read the kernel completed before the cancel took
included) are kept in the file's read-ahead: the next read returns them.
A write cannot be taken back once the kernel has it: a cancelled write
may have landed in part or whole, and the position says how far.  It is
moved past every byte the kernel wrote before the cancel took (for a
write done in several requests, up to the first short or failed one),
and ``CancelledError`` is still raised; the same when a write fails part
way.  A text write's position is that of its encoded bytes that landed
(``tell()`` is then that byte offset).  The thread fallback
(``threadfile.ThreadFile``) keeps the same promises, a stream's bytes a
cancelled read took on the worker thread included.

Append mode.  Each write goes to the end of the file, where the kernel
puts it, and the position is then the end of the file (``tell()`` after a
read and a write in ``"a+b"`` too), as the builtin's once it has flushed
(its buffered file reports, before that, where the bytes would have gone
without ``O_APPEND``).

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
import functools
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

__all__ = ["AsyncBinaryFile", "AsyncBinaryStream", "AsyncFile", "AsyncTextFile", "open",
           "stat_result_from_statx"]

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


# The builtin's errors for an operation the file cannot do now, as
# ``_refuse`` raises them.  A closed file: the text file and ``IOBase``'s
# own methods (``readlines``, ``writelines``, ``flush``) say
# ``_CLOSED``; ``FileIO`` (``buffering=0``) and what the buffered file
# asks its ``FileIO`` say ``_CLOSED_RAW``; the buffered file's own methods
# name the operation (``_BUFFERED_CLOSED``).
_CLOSED = "I/O operation on closed file."
_CLOSED_RAW = "I/O operation on closed file"
_BUFFERED_CLOSED = {
    "read": "read of closed file", "read1": "read of closed file",
    "readall": "read of closed file", "readinto": "readinto of closed file",
    "readline": "readline of closed file", "peek": "peek of closed file",
    "write": "write to closed file", "seek": "seek of closed file",
    "truncate": "truncate of closed file", "tell": _CLOSED_RAW, "fileno": _CLOSED_RAW,
    "readable": _CLOSED_RAW, "writable": _CLOSED_RAW, "seekable": _CLOSED_RAW,
    "isatty": _CLOSED_RAW,
}
_RAW_PERIOD = frozenset({"readlines", "writelines", "flush"})  # IOBase's own, on FileIO too
_READS = frozenset({"read", "read1", "readall", "readinto", "readline", "readlines", "peek",
                    "pread", "preadinto"})
_WRITES = frozenset({"write", "writelines", "truncate", "pwrite"})
# Methods the builtin's buffered class lacks where its mode lacks them:
# ``BufferedIOBase``'s refuse them before anything else, even closed.
_LACKING = {"read": "read", "read1": "read1", "readall": "read", "readinto": "read",
            "readline": "read", "peek": "read", "write": "write"}
_DETACHED = "raw stream has been detached"
_TEXT_DETACHED = "underlying buffer has been detached"


def _interrupted(exc: BaseException) -> bool:
    """A read that did not finish because its task was cancelled (or a
    ``KeyboardInterrupt``): it consumes nothing.  One that failed (a
    decoding error, the kernel's) leaves the file as the builtin's failing
    read does: what it had consumed stays consumed."""
    return not isinstance(exc, Exception)


def _nbytes(data: Any) -> int:
    """The size of bytes-like *data*; the builtin's ``TypeError`` for anything else."""
    try:
        return memoryview(data).nbytes
    except TypeError:
        raise TypeError(f"a bytes-like object is required, not "
                        f"'{type(data).__name__}'") from None


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

    # -- overridden -----------------------------------------------------------------

    @property
    def name(self) -> Any:
        raise NotImplementedError

    @property
    def mode(self) -> str:
        raise NotImplementedError

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

    def _check_op(self, op: str) -> None:
        """Raise the builtin's error where this file cannot do *op* now
        (closed, detached, or its mode lacks it)."""
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
        raw = self._raw()
        if raw._detached:  # noqa: SLF001 - this module's own binary file
            raise ValueError(_DETACHED)
        return raw._fd < 0  # noqa: SLF001 - this module's own binary file

    def fileno(self) -> int:
        raw = self._raw()
        raw._check("fileno")  # noqa: SLF001 - this module's own binary file
        return raw._fd  # noqa: SLF001 - this module's own binary file

    # aiofiles calls a binary file's ``readable`` directly and awaits the
    # others (and a text file's ``readable``): each answers at once, and an
    # ``Answer`` may be awaited too.  As the builtin's: a buffered file
    # (the text file's too) answers False for what its mode lacks even
    # when closed; otherwise a closed file refuses to answer.

    def readable(self) -> bool:
        raw = self._raw()
        if raw._fd < 0 and (raw._readable or not raw._keep_ahead):  # noqa: SLF001
            raw._refuse("readable")  # noqa: SLF001 - this module's own binary file
        return raw._readable  # noqa: SLF001 - this module's own binary file

    def writable(self) -> Answer:
        raw = self._raw()
        if raw._fd < 0 and (raw._writable or not raw._keep_ahead):  # noqa: SLF001
            raw._refuse("writable")  # noqa: SLF001 - this module's own binary file
        return answer(raw._writable)  # noqa: SLF001 - this module's own binary file

    def seekable(self) -> Answer:
        raw = self._raw()
        raw._check("seekable")  # noqa: SLF001 - this module's own binary file
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
        self._check_op("readlines")
        raw = self._raw()
        return await raw._in_turn(functools.partial(self._check_op, "readlines"),  # noqa: SLF001
                                  self._readlines, limit)

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
        except BaseException as exc:
            if _interrupted(exc):
                self._restore(saved)  # all the lines or none
            raise

    async def writelines(self, lines: Iterable[Any]) -> None:
        """``write`` each item of *lines* (no newlines are added), as one
        operation: no other runs between them."""
        self._check_op("writelines")
        raw = self._raw()
        await raw._in_turn(functools.partial(self._check_op, "writelines"),  # noqa: SLF001
                           self._writelines, lines)

    async def _writelines(self, lines: Iterable[Any]) -> None:
        for line in lines:
            await self._write(line)

    async def flush(self) -> None:
        """Nothing to flush: writes go straight to the kernel (no data
        waits in Python).  Checks that the file is open, as the builtin's
        does, once the operations called before it are done.  For
        durability, ``fsync``."""
        raw = self._raw()
        await raw._in_turn_sync(self._check_op, "flush")  # noqa: SLF001

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
        try:
            state = "closed" if self.closed else f"fd={self.fileno()}"
        except ValueError:  # detached: no name or state to tell
            return f"<uring.asyncio.{self._kind} detached mode={self.mode!r}>"
        return f"<uring.asyncio.{self._kind} {self.name!r} mode={self.mode!r} {state}>"

    _kind = "AsyncFile"  # the class named by repr




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
        self._name = name
        self._mode = mode
        self._detached = False  # detach() gave the fd to another file object
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

    _kind = "AsyncBinaryFile"

    # A stream's (AsyncBinaryStream's) journal: the bytes the kernel has
    # handed the operation at the position that is running, and its task.
    _journal: Optional[List[bytes]] = None
    _journal_task: Any = None

    def _raw(self) -> "AsyncBinaryFile":
        return self

    def _keep_late(self, data: Any) -> None:
        """Bytes the kernel delivered to a read whose task was cancelled
        before it saw them: into the running operation's journal (a
        stream's), unless the read was not that operation's (a ``pread``
        of another task)."""
        if self._journal is not None and asyncio.current_task() is self._journal_task:
            self._journal.append(bytes(data))

    @property  # type: ignore[override]
    def name(self) -> Any:
        if self._detached:
            raise ValueError(_DETACHED)
        return self._name

    @name.setter
    def name(self, value: Any) -> None:
        self._name = value

    @property  # type: ignore[override]
    def mode(self) -> str:
        if self._detached:
            raise ValueError(_DETACHED)
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        self._mode = value

    # -- what the file can do now: the builtin's errors -----------------------------

    def _check(self, op: str) -> None:
        """Raise the builtin's error where this file cannot do *op* now."""
        if self._fd < 0 or (op in _READS and not self._readable) \
                or (op in _WRITES and not self._writable):
            self._refuse(op)

    _check_op = _check

    def _check_open(self) -> None:
        if self._fd < 0:
            self._refuse("")

    def _check_readable(self) -> None:
        if self._fd < 0 or not self._readable:
            self._refuse("read")

    def _refuse(self, op: str, convert: Optional[Callable[[], Any]] = None) -> None:
        """Raise the error the builtin binary file of this mode and
        buffering raises for *op* here (closed, detached, or a mode
        without *op*), checking in its order: a buffered file
        (``BufferedReader``/``Writer``/``Random``) refuses a method its
        class lacks first, then the argument's type (*convert*), then
        closed, then the mode; ``FileIO`` (``buffering=0``) the argument,
        closed, the mode.  Returns only if *op* can be done."""
        buffered = self._keep_ahead
        lacking = (op in _READS and not self._readable) or (op in _WRITES and not self._writable)
        if op == "readline" and convert is not None:  # IOBase.readline takes its argument first
            convert()
        if buffered and lacking and op in _LACKING:
            raise io.UnsupportedOperation(_LACKING[op])
        if convert is not None:
            convert()
        if self._detached:
            raise ValueError(_DETACHED)
        if self._fd < 0:
            if buffered:
                if op in ("flush", "detach") and self._writable:
                    raise ValueError("flush of closed file")
                raise ValueError(_BUFFERED_CLOSED.get(op, _CLOSED))
            raise ValueError(_CLOSED if op in _RAW_PERIOD or not op else _CLOSED_RAW)
        if not lacking:
            return
        if buffered:
            raise io.UnsupportedOperation("truncate" if op == "truncate"
                                          else "read" if op in _READS else "write")
        if op == "readall":  # FileIO.readall does not ask: the read(2) fails
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        raise io.UnsupportedOperation("File not open for reading" if op in _READS
                                      else "File not open for writing")

    # -- detach() and raw, as a buffered builtin file's --------------------------------

    def _no_attribute(self, attr: str) -> AttributeError:
        return AttributeError(f"'{self._kind}' object has no attribute '{attr}'")

    @property
    def raw(self) -> Optional["AsyncBinaryFile"]:
        """The file itself (None once detached): there is no separate
        unbuffered layer below it, its reads and writes are the kernel's.
        As the builtin's ``FileIO``, a file opened with ``buffering=0`` has
        no ``raw`` (``AttributeError``)."""
        if not self._keep_ahead:
            raise self._no_attribute("raw")
        return None if self._detached else self

    @property
    def detach(self) -> Callable[[], "AsyncBinaryFile"]:
        """``detach()``, as a buffered builtin file's: the file as an
        unbuffered one (``buffering=0``) over the same fd, position and
        mode, with what was read ahead still to be read (the builtin's
        raw file starts after its read-ahead; here nothing is lost); this
        object is unusable afterwards (``ValueError: raw stream has been
        detached``).  A file opened with ``buffering=0`` has no
        ``detach`` (``AttributeError``), as ``FileIO``."""
        if not self._keep_ahead:
            raise self._no_attribute("detach")
        return self._detach

    def _detach(self) -> "AsyncBinaryFile":
        if self._fd < 0:
            self._refuse("detach")
        if self._gate.busy:
            raise RuntimeError("detach() while an operation of the file is running")
        raw = type(self)(self._ring, self._fd, self._name, self._mode, self._readable,
                         self._writable, self._append, self._pos, 0, closefd=self._closefd,
                         seekable=self._seekable)
        raw._buf, raw._off = self._buf, self._off  # noqa: SLF001 - nothing read ahead is lost
        raw._spare, raw._last_pinned = self._spare, self._last_pinned  # noqa: SLF001
        self._fd = -1
        self._detached = True
        self._drop()
        return raw

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
            self._refuse("pread")
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
            late = await lr.after_cancel(ud, fut)  # the kernel is done with the buffer
            if late is not None and late[1] > 0 and self._journal is not None:
                self._keep_late(memoryview(pinned.obj)[:late[1]])
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
            self._refuse("preadinto")
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
        if self._fd < 0 or not self._writable:
            self._refuse("pwrite")
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
            late = await lr.after_cancel(ud, fut)
            if late is not None and late[1] > 0 and self._journal is not None:
                self._keep_late(memoryview(buf.obj if buf.__class__ is PinnedBuffer else buf)
                                .cast("B")[:late[1]])
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
            self._refuse("read", functools.partial(self._read_size, size))
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

    def _read_size(self, size: Optional[int]) -> int:
        n = _size(size)
        if n < -1 and self._keep_ahead:  # as BufferedReader (FileIO reads all)
            raise ValueError("read length must be non-negative or -1")
        return n

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
            self._refuse("read1", functools.partial(_size, size))
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

    async def _take(self, n: int) -> bytes:
        """*n* bytes from the position for the text file over this one
        (fewer only at the end of the file; from a stream, what is read
        ahead or what one read gives): what the builtin's ``read1(n)``
        returns there.  Served from the read-ahead, refilled a buffer
        size (64 KiB) at a time: the text file's 8 KiB chunks cost one
        request per buffer, not one each."""
        buf, off, pos = self._buf, self._off, self._pos
        have = len(buf) - off
        if n <= have:
            self._off = off + n
            self._pos = pos + n
            return buf[off:off + n]
        if have and not self._seekable:  # a stream: no waiting for more than it has
            self._set(b"", 0, pos + have)
            return buf[off:]
        got = await self.pread(max(self._bufsize, n - have), pos + have)
        take = n - have
        if have:
            data = buf[off:] + got[:take]
        else:
            data = got[:take] if len(got) > take else got
        if len(got) > take:
            self._set(got, take, pos + n)
        else:
            self._set(b"", 0, pos + len(data))
        return data

    async def peek(self, size: int = 0) -> bytes:
        """The bytes ahead of the position, not consumed (the builtin
        ``BufferedReader.peek``): what was read ahead, else one chunk read
        now (and kept, unless *buffering* was 0); at least one byte before
        the end of the file, and maybe more than *size*."""
        if self._fd < 0 or not self._readable:
            self._refuse("peek")
        return await self._in_turn(functools.partial(self._check, "peek"), self._peek)

    async def _peek(self) -> bytes:
        buf, off, pos = self._buf, self._off, self._pos
        if off < len(buf):
            return buf[off:]
        got = await self.pread(self._bufsize, pos)
        self._set(got, 0, pos)
        return got

    async def readall(self) -> bytes:
        """Everything from the position to the end (``FileIO.readall``)."""
        if self._fd < 0 or not self._readable:
            self._refuse("readall")
        return await self.read()

    async def readinto(self, buf: Any) -> int:
        """Fill *buf* (a writable buffer) from the position; the byte count
        (less than its size only at the end of the file)."""
        if self._fd < 0 or not self._readable:
            self._refuse("readinto")
        return await self._in_turn(functools.partial(self._check, "readinto"),
                                  self._readinto, buf)

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
        if self._fd < 0 or not self._readable:  # (the argument first, then the state)
            self._refuse("readline", functools.partial(_size, size))
        return await self._readline_in_turn(_size(size))

    async def _readline_in_turn(self, limit: int) -> bytes:
        return await self._in_turn(None, self._readline, limit)

    async def _readline(self, limit: int) -> bytes:
        if self._fd < 0 or not self._readable:
            self._refuse("readline")
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
            self._refuse("write", functools.partial(_nbytes, data))
        if not _nbytes(data):
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
        # In the builtin's order: a buffered file checks whence, closed,
        # seekable, then the offset; FileIO closed, the offset, then lets
        # lseek refuse (ESPIPE, EINVAL for a bad whence).
        whence = operator.index(whence)
        known = whence in (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END) or whence in _SEEK_DATA_HOLE
        if self._keep_ahead and not known:
            raise ValueError(f"whence value {whence} unsupported")
        if self._fd < 0:
            self._refuse("seek")
        if self._keep_ahead and not self._seekable:
            self._check_seekable()
        offset = operator.index(offset)
        if not _OFF_MIN <= offset <= _OFF_MAX:  # the builtin's conversion to off_t
            if self._keep_ahead:
                raise ValueError("cannot fit 'int' into an offset-sized integer")
            raise OverflowError("Python int too large to convert to C long")
        if not known:  # lseek(2) refuses the whence before anything else
            raise _einval()
        if not self._seekable:
            self._check_seekable()
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        else:
            # SEEK_END, and SEEK_DATA/SEEK_HOLE as the builtin binary file
            # takes them: the kernel's answer for this file (ENXIO past the end).
            pos = os.lseek(self._fd, offset, whence)
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
        if self._fd < 0:
            self._refuse("tell")
        if not self._seekable:
            raise OSError(errno.ESPIPE, os.strerror(errno.ESPIPE))
        return self._pos

    async def tell(self) -> int:
        """The position: the offset of the next byte read or written."""
        return await self._in_turn_sync(self._tell)

    async def truncate(self, size: Optional[int] = None) -> int:
        """``IORING_OP_FTRUNCATE`` to *size* (default: the position); the
        position does not move."""
        self._check("truncate")
        return await self._in_turn(functools.partial(self._check, "truncate"), self._truncate,
                                   size)

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
            if self._detached:
                raise ValueError(_DETACHED)
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


class AsyncBinaryStream(AsyncBinaryFile):
    """An ``AsyncBinaryFile`` that cannot be read twice: a pipe, FIFO,
    socket or terminal (``seekable()`` False), as ``open`` makes it.

    On a seekable file a read that does not finish (cancelled, or failed)
    consumes nothing by leaving the position where it was: the next read
    reads the bytes again.  A stream's bytes, once the kernel has handed
    them over, are gone from the kernel, so each operation at the position
    keeps a journal of the bytes the kernel hands it (a read cancelled
    after the kernel completed it included: ``LoopRing.after_cancel``
    gives its CQE back).  If the operation does not finish, the file is as
    before it (every read changes the state only once done, the text file's
    reads put it back) and the journal's bytes go to the read-ahead,
    after what was read ahead before: the next read returns them.  The
    same for the text file over it.  (``pread``/``preadinto``, which do
    not take their turn, keep no journal.)  What was read ahead is never
    dropped (see ``_set``)."""

    async def _in_turn(self, check: Optional[Callable[[], Any]],
                       op: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        return await super()._in_turn(check, self._journaled, op, *args)

    # What was read ahead is not a copy of the file here but bytes taken
    # from the stream: kept even unbuffered (buffering=0: a readline()
    # reads a chunk, the rest of it waits for the next read) and across a
    # write (an O_RDWR FIFO).

    def _set(self, buf: bytes, off: int, pos: int) -> None:
        self._buf, self._off, self._pos = buf, off, pos

    def _drop(self) -> None:
        pass

    async def _journaled(self, op: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        journal: List[bytes] = []
        self._journal, self._journal_task = journal, asyncio.current_task()
        try:
            return await op(*args)
        except BaseException as exc:
            if journal and _interrupted(exc):
                self._buf = self._buf[self._off:] + b"".join(journal)
                self._off = 0
            raise
        finally:
            self._journal = self._journal_task = None

    async def read(self, size: Optional[int] = -1) -> bytes:
        # No uncontended path of its own here: every read that reaches the
        # kernel keeps its journal (_in_turn).
        if self._fd < 0 or not self._readable:
            self._refuse("read", functools.partial(self._read_size, size))
        n = self._read_size(size)
        buf, off = self._buf, self._off
        if not self._gate.busy and 0 <= n <= len(buf) - off:
            self._off = off + n
            self._pos += n
            return buf[off:off + n]
        return await self._in_turn(self._check_readable, self._read, n)

    async def pread(self, size: int, offset: int) -> bytes:
        data = await super().pread(size, offset)
        if data and self._journal is not None and asyncio.current_task() is self._journal_task:
            self._journal.append(data)
        return data

    async def _read_at(self, buf: Any, offset: int) -> int:
        n = await super()._read_at(buf, offset)
        if n > 0 and self._journal is not None and asyncio.current_task() is self._journal_task:
            view = memoryview(buf.obj if buf.__class__ is PinnedBuffer else buf).cast("B")
            self._journal.append(bytes(view[:n]))
        return n


class AsyncTextFile(AsyncFile[str]):
    """An open text file; made by ``uring.asyncio.open`` without ``"b"``.
    ``io.TextIOWrapper``'s algorithm over an ``AsyncBinaryFile``
    (``buffer``): reads return ``str``, ``tell()`` returns the builtin's
    cookie, newlines are handled as *newline* says (see ``open``)."""

    _kind = "AsyncTextFile"
    #: The text layer's chunk: the builtin ``TextIOWrapper``'s (8 KiB, or
    #: what ``read(n)`` asks for), taken from the binary file's 64 KiB
    #: read-ahead, so that the binary position after a read (where a write
    #: lands) is the builtin's.
    _CHUNK_SIZE = 8192

    def __init__(self, buffer: AsyncBinaryFile, encoding: Optional[str] = None,
                 errors: Optional[str] = None, newline: Optional[str] = None,
                 line_buffering: bool = False, *,
                 buffer_size: int = io.DEFAULT_BUFFER_SIZE, mode: Optional[str] = None) -> None:
        _check_newline(newline)
        encoding = _text_encoding(encoding)
        if not getattr(codecs.lookup(encoding), "_is_text_encoding", True):
            raise LookupError(f"{encoding!r} is not a text encoding; "
                              "use codecs.open() to handle arbitrary codecs")
        if errors is None:
            errors = "strict"
        elif not isinstance(errors, str):
            raise ValueError(f"invalid errors: {errors!r}")
        self.buffer: AsyncBinaryFile = buffer
        self._text_mode = buffer.mode if mode is None else mode  # its own, kept after detach()
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
        # The buffer size of the builtin's buffered file under its text
        # file: *buffering*, else the file system's block size.
        self._buffer_size = buffer_size if buffer_size > 1 else io.DEFAULT_BUFFER_SIZE
        # After a seek() that fed the decoder, the builtin's buffered file
        # holds a block read ahead from the seek's position: (its start,
        # its end), which its next reads return first (see _read_chunk).
        self._block: Optional[Tuple[int, int]] = None
        if buffer._readable:  # noqa: SLF001 - this module's own binary file
            self._get_decoder()
        if buffer._writable and buffer._pos != 0:  # noqa: SLF001 - this module's own binary file
            self._get_encoder().setstate(0)  # no BOM in the middle of a file

    def _raw(self) -> AsyncBinaryFile:
        b = self.buffer
        if b is None:
            raise ValueError(_TEXT_DETACHED)
        return b

    @property  # type: ignore[override]
    def name(self) -> Any:
        return self._raw().name

    @name.setter
    def name(self, value: Any) -> None:
        self._raw().name = value

    @property  # type: ignore[override]
    def mode(self) -> str:
        return self._text_mode

    @mode.setter
    def mode(self, value: str) -> None:
        self._text_mode = value

    def readable(self) -> Answer:  # type: ignore[override]  # awaitable, as aiofiles' text file
        return answer(super().readable())

    @property
    def newlines(self) -> Any:
        """The newlines read so far (universal newlines mode), as the builtin's."""
        self._raw()
        return getattr(self._decoder, "newlines", None)

    # -- what the file can do now: the builtin's errors -----------------------------

    def _check_op(self, op: str) -> None:
        """Raise the builtin text file's error where it cannot do *op* now:
        detached, closed, then a mode without it (``not readable``, ``not
        writable``, ``truncate``) or a stream that cannot seek."""
        b = self._raw()
        if b._fd < 0:  # noqa: SLF001 - this module's own binary file
            raise ValueError(_CLOSED)
        if op in _READS and not b._readable:  # noqa: SLF001 - this module's own binary file
            raise io.UnsupportedOperation("not readable")
        if op in ("write", "writelines") and not b._writable:  # noqa: SLF001
            raise io.UnsupportedOperation("not writable")
        if op == "truncate" and not b._writable:  # noqa: SLF001 - its own binary file
            raise io.UnsupportedOperation("truncate")
        if op in ("seek", "tell") and not b._seekable:  # noqa: SLF001 - its own binary file
            raise io.UnsupportedOperation("underlying stream is not seekable")

    def detach(self) -> AsyncBinaryFile:
        """As the builtin's: the binary file (``buffer``), at the position
        where the builtin's would be (after this file's read-ahead); this
        object is unusable afterwards (``ValueError: underlying buffer has
        been detached``), its ``buffer`` None.  The text decoded ahead is
        dropped, as the builtin drops it."""
        self._check_op("detach")
        b = self.buffer
        if b.busy:
            raise RuntimeError("detach() while an operation of the file is running")
        self._set_decoded_chars("")
        self._snapshot = None
        self._block = None
        self.buffer = None  # type: ignore[assignment]
        return b

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
                dec, b._buf, b._off, b._pos, self._block)  # noqa: SLF001 - this module's own binary file

    def _restore(self, state: Tuple[Any, ...]) -> None:
        b = self.buffer
        (self._decoded_chars, self._decoded_chars_used, self._snapshot, self._b2cratio,
         dec, b._buf, b._off, b._pos, self._block) = state  # noqa: SLF001 - this module's own binary file
        if dec is not None and self._decoder is not None:
            self._decoder.setstate(dec)

    async def _read_chunk(self, size_hint: int = 0) -> bool:
        """Read and decode the next chunk; False at the end of the file.
        The chunk is C ``TextIOWrapper``'s: ``_CHUNK_SIZE`` bytes, or
        *size_hint* characters' worth (``read(n)``: the characters still
        wanted, times the bytes per character of the last chunk), fewer
        where the builtin's buffered file holds fewer read ahead
        (``_block``)."""
        decoder = self._decoder
        assert decoder is not None
        dec_buffer, dec_flags = decoder.getstate()
        b = self.buffer
        if size_hint > 0:
            size_hint = int(max(self._b2cratio, 1.0) * size_hint)
        size = max(self._CHUNK_SIZE, size_hint)
        # (A writable file reads as if flushed first: see _flush_block.)
        if self._block is not None and not b._writable:  # noqa: SLF001 - its own binary file
            # BufferedReader.read1: what it holds read ahead, if anything.
            left = self._block[1] - b._pos  # noqa: SLF001 - this module's own binary file
            if left > 0:
                size = min(size, left)
            if left <= size:
                self._block = None
        input_chunk = await b._take(size)  # noqa: SLF001 - this module's own binary file
        eof = not input_chunk
        decoded_chars = decoder.decode(input_chunk, eof)
        self._set_decoded_chars(decoded_chars)
        self._b2cratio = len(input_chunk) / len(decoded_chars) if decoded_chars else 0.0
        self._snapshot = (dec_flags, dec_buffer + input_chunk)
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
                # C decodes skip_bytes bytes of the input even past its end
                # (the ratio is the last chunk's): it reads the bytes
                # object's NUL terminator there, which sends the search
                # back; the same here (a slice would stop short, and the
                # position found would be past bytes never decoded).
                over = skip_bytes - len(next_input)
                n = len(decoder.decode(next_input[:skip_bytes] if over <= 0
                                       else next_input + b"\0" * over))
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

    def _tell_checked(self) -> int:
        self._check_op("tell")
        self._flush_block()
        return self._tell()

    def _flush_block(self) -> None:
        """The builtin text file's ``flush()`` (in its ``tell``, ``seek``,
        ``flush``, ``truncate``) flushes its buffered file, and a
        ``BufferedRandom``'s flush empties its read buffer (a
        ``BufferedReader``'s does not).  A writable file's reads here are
        as if that flush came first: so are the thread fallback's, whose
        text reads ask the builtin's ``tell()`` first (to undo a cancelled
        read); only after a ``seek()`` that fed the decoder does that
        change anything (the builtin's next chunk is the rest of the block
        it read there, here a whole one)."""
        if self.buffer._writable:  # noqa: SLF001 - this module's own binary file
            self._block = None

    def _flush_checked(self) -> None:
        self._check_op("flush")
        self._flush_block()

    async def flush(self) -> None:
        """Nothing to flush: writes go straight to the kernel.  Checks that
        the file is open, once the operations called before it are done."""
        await self._raw()._in_turn_sync(self._flush_checked)  # noqa: SLF001

    async def tell(self) -> int:
        """The position as the builtin's ``tell()`` gives it: the byte
        offset when the decoder holds nothing, else an opaque cookie that
        ``seek`` takes back."""
        b = self._raw()
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

    async def seek(self, cookie: Any, whence: int = os.SEEK_SET) -> Any:
        """As the builtin's: to a ``tell()`` cookie, or ``seek(0, SEEK_CUR)``
        / ``seek(0, SEEK_END)``; the new position (the cookie as given)."""
        whence = operator.index(whence)
        self._check_op("seek")
        b = self.buffer
        return await b._in_turn(functools.partial(self._check_op, "seek"),  # noqa: SLF001
                                self._seek, cookie, whence)

    async def _seek(self, cookie: Any, whence: int = os.SEEK_SET) -> Any:
        # C TextIOWrapper.seek's steps and errors, in its order: the
        # cookie is compared with 0 before it is taken as an int (so a
        # float is taken, a str refused by the comparison).
        b = self.buffer
        if whence == os.SEEK_CUR:
            if cookie != 0:
                raise io.UnsupportedOperation("can't do nonzero cur-relative seeks")
            self._flush_block()
            cookie = self._tell()
        elif whence == os.SEEK_END:
            if cookie != 0:
                raise io.UnsupportedOperation("can't do nonzero end-relative seeks")
            self._block = None
            position = b._seek(0, os.SEEK_END)  # noqa: SLF001 - this module's own binary file
            self._set_decoded_chars("")
            self._snapshot = None
            self._block = None
            if self._decoder is not None:
                self._decoder.reset()
            self._reset_encoder(position)
            return position
        elif whence != os.SEEK_SET:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if cookie < 0:
            raise ValueError(f"negative seek position {cookie!r}")
        self._flush_block()
        value = operator.index(cookie) if isinstance(cookie, int) else int(cookie)
        if value >> 168:  # wider than the C cookie's 21 bytes
            raise OverflowError("int too big to convert")
        start_pos, dec_flags, bytes_to_feed, need_eof, chars_to_skip = self._unpack_cookie(value)
        if start_pos > _OFF_MAX:  # a negative off_t to the builtin: its seek's EINVAL
            raise _einval()
        saved = self._save()
        try:
            self._block = self._block_after_seek(start_pos)
            b._seek(start_pos)  # noqa: SLF001 - this module's own binary file
            self._set_decoded_chars("")
            self._snapshot = None
            self._snapshot = (dec_flags, b"")
            decoder = self._decoder
            if decoder is not None:
                self._decoder_setstate(start_pos, dec_flags)
            if chars_to_skip:
                if decoder is None:  # C reads from the buffer: a write-only one refuses
                    raise io.UnsupportedOperation("read")
                self._block = self._block_after_read(start_pos, bytes_to_feed)
                input_chunk = await b._read(bytes_to_feed)  # noqa: SLF001 - its own
                self._snapshot = (dec_flags, input_chunk)
                self._set_decoded_chars(decoder.decode(input_chunk, need_eof))
                if len(self._decoded_chars) < chars_to_skip:
                    raise OSError("can't restore logical file position")
                self._decoded_chars_used = chars_to_skip
        except BaseException as exc:
            if _interrupted(exc):  # (a failing one leaves what it did, as the builtin's)
                self._restore(saved)
            raise
        self._reset_encoder(value)
        return cookie

    # The builtin's buffered file under the text file holds a block read
    # ahead only after a seek() that fed the decoder (its read(n) of the
    # bytes to feed fills its buffer); the text file's reads take the rest
    # of that block before anything else (read1).  Where its reads and
    # writes leave it, so that the next chunk, and so the position after
    # it, is the builtin's: ``_block`` = (start, end), or None.

    def _block_after_seek(self, target: int) -> Optional[Tuple[int, int]]:
        """The buffered file's seek keeps its block when the target is in
        it (and it had bytes not read yet)."""
        block = self._block
        if block is not None and self.buffer._pos < block[1] \
                and block[0] <= target <= block[1]:  # noqa: SLF001 - this module's own binary file
            return block
        return None

    def _block_after_read(self, pos: int, n: int) -> Optional[Tuple[int, int]]:
        """The block after the buffered file's read(n) at *pos*: the old one
        if it holds the n bytes, else a new one where the read left off a
        multiple of the buffer size (``_bufferedreader_read_generic``)."""
        block = self._block
        have = block[1] - pos if block is not None else 0
        if 0 <= n <= have:
            return block
        remaining = n - max(have, 0)
        size = self._buffer_size
        start = pos + max(have, 0) + remaining - remaining % size
        return (start, start + size) if remaining % size else None

    def _forget_decoded(self) -> None:
        """What the builtin's write does to the reading side: the text
        decoded ahead is dropped and the decoder reset (the binary
        position stays after the read-ahead: the write lands there)."""
        self._set_decoded_chars("")
        self._snapshot = None
        if self._decoder is not None:
            self._decoder.reset()

    # -- reading -------------------------------------------------------------------

    def _check_readable(self) -> AsyncBinaryFile:
        b = self.buffer
        if b is None or b._fd < 0 or not b._readable:  # noqa: SLF001 - its own binary file
            self._check_op("read")
        return b

    async def read(self, size: Optional[int] = -1) -> str:
        """Up to *size* characters (fewer only at the end of the file), or
        everything to the end with -1/None."""
        n = _size(size)  # (the argument first, then the state: the builtin's order)
        b = self._check_readable()
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
                self._block = None
                return result
            result = self._get_decoded_chars(n)
            eof = False
            while len(result) < n and not eof:
                eof = not await self._read_chunk(n - len(result))
                result += self._get_decoded_chars(n - len(result))
            return result
        except BaseException as exc:
            if _interrupted(exc):
                self._restore(saved)
            raise

    async def readline(self, size: Optional[int] = -1) -> str:
        """One line with its newline as *newline* defines lines (empty at
        the end of the file); at most *size* characters with *size* >= 0."""
        if self._readtranslate and size == -1:
            # The common case without copying the rest of the chunk per line
            # (nothing decoded once closed or detached: the checks below).
            chars, start = self._decoded_chars, self._decoded_chars_used
            i = chars.find("\n", start)
            if i >= 0 and not self.buffer.busy:
                self._decoded_chars_used = i + 1
                return chars[start:i + 1]
        # As the builtin text file's: an index (not None, as a binary file's
        # takes), then the state.
        limit = operator.index(size)  # type: ignore[arg-type]
        b = self._check_readable()
        return await b._in_turn(functools.partial(self._check_op, "readline"),  # noqa: SLF001
                                self._readline_whole, limit)

    async def _readline_whole(self, limit: int) -> str:
        """``_readline``, all or nothing: a cancelled one consumes nothing."""
        saved = self._save()
        try:
            return await self._readline(limit)
        except BaseException as exc:
            if _interrupted(exc):
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
        pos = line.find(self._readnl, start)
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
            if self._readnl == "\r\n" and line.endswith("\r") and endpos > start:
                endpos -= 1  # (a "\r" not read yet, that may be half of the newline)
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
        # The builtin's order: the argument's type, then the state.
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        b = self.buffer
        if b is None or b._fd < 0 or not b._writable:  # noqa: SLF001 - its own binary file
            self._check_op("write")
        return await b._in_turn(None, self._write, s)  # noqa: SLF001

    async def _write(self, s: Any) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        b = self.buffer
        if b is None or b._fd < 0 or not b._writable:  # noqa: SLF001 - its own binary file
            self._check_op("write")
        length = len(s)
        if self._writetranslate and self._writenl != "\n" and "\n" in s:
            s = s.replace("\n", self._writenl)
        encoder = self._encoder or self._get_encoder()
        state = encoder.getstate()
        data = encoder.encode(s)
        start: Optional[int] = None
        try:
            # As the builtin's: the write lands at the binary position, after
            # the text read ahead (C TextIOWrapper's chunk, see _read_chunk),
            # and the decoded text is dropped.
            self._forget_decoded()
            start = b._pos  # noqa: SLF001 - this module's own binary file
            # A read after a write reads as if a flush came between (which
            # empties the builtin's read buffer): the builtin reads from
            # before its pending write there (CPython 3.11's read1) or from
            # what it buffered, the thread fallback flushes first.
            self._block = None
            await b._write(data)  # noqa: SLF001 - this module's own binary file
        except BaseException:
            # Nothing landed: the encoder is as before (a BOM still to
            # write).  What did land is past the position: no decoded text
            # is left, so tell() is that byte offset.
            if start is None or b._pos == start:  # noqa: SLF001 - this module's own binary file
                encoder.setstate(state)
            raise
        return length

    async def truncate(self, size: Optional[int] = None) -> int:
        """``IORING_OP_FTRUNCATE`` to *size* (default: the position); the
        position does not move (as the builtin's: the default is the binary
        position, after the text read ahead)."""
        self._check_op("truncate")
        b = self.buffer
        return await b._in_turn(functools.partial(self._check_op, "truncate"),  # noqa: SLF001
                                self._truncate, size)

    async def _truncate(self, size: Optional[int]) -> int:
        self._block = None  # the buffered file's truncate empties its buffer
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
            st = os.fstat(res)
            st_mode = st.st_mode
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
        # A file that cannot be read twice keeps what a read that did not
        # finish had taken (AsyncBinaryStream).
        kind = AsyncBinaryFile if seekable else AsyncBinaryStream
        raw = kind(lr, res, name, binary_mode(mode), readable, writable, append, position, size,
                   closefd=closefd, seekable=seekable)
        if binary:
            return raw  # type: ignore[return-value]
        try:
            # The builtin's buffer under its text file: *buffering* bytes,
            # else the file system's block size (FileIO._blksize).
            block = buffering if buffering > 1 else st.st_blksize
            text = AsyncTextFile(raw, encoding, errors, newline, line_buffering=buffering == 1,
                                 buffer_size=block, mode=mode)
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

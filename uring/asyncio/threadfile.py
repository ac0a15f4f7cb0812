"""The file of the thread fallback (``backend() == "threads"``): the
builtin ``open()``'s file object, each call run on the loop's default
executor, with the method set of ``AsyncBinaryFile``/``AsyncTextFile``
(aiofiles' API).

It keeps ``files.py``'s promises:

* One at a time, in call order: the calls at the position (``read*``,
  ``readline*``, ``peek``, iteration, ``write*``, ``seek``, ``tell``,
  ``truncate``, ``flush``) of one file (and of its ``buffer``) wait their
  turn, so tasks sharing the file see them run one after another in the
  order they were called (worker threads alone would run them in any
  order, and the builtin text file is not thread-safe).  ``pread``,
  ``preadinto``, ``pwrite``, ``fsync``, ``stat`` and ``close`` do not wait.
* A cancelled read consumes nothing: the task unwinds only once the
  worker thread is done with the call (a call not started yet is not
  made), and if the read ran, the position is put back where it was (a
  binary file seeks back by the bytes read, a text file to the ``tell()``
  cookie taken before the read), so the next read returns those bytes.
  On a file that is not seekable (a pipe, FIFO, terminal) what the read
  took is kept instead (``_back``) and the next reads return it first,
  as the io_uring files keep it in their read-ahead.
* A cancelled write has landed (the builtin file's write finishes on its
  thread); its position says so, and ``CancelledError`` is raised once it
  is done.
* A binary file in append mode is flushed after each write, as the
  io_uring files write at once: the position is then the end of the
  file, where the kernel appended (the builtin's buffered file reports,
  until it flushes, the position the bytes would have had without
  ``O_APPEND``).
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import functools
import io
import operator
import os
from typing import Any, Callable, Deque, Iterable, List, Optional, Tuple, TypeVar

from .fileproto import Answer, AsyncFileProtocol, answer

__all__ = ["ThreadFile", "open_thread_file"]

T = TypeVar("T")


async def _call(func: Callable[..., T], *args: Any) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(func, *args))


_NOT_RUN: Any = object()  # what a call the cancelled task never started returns


async def _finish(fut: "asyncio.Future[Any]") -> None:
    """Wait for *fut* whatever cancellations come meanwhile (the caller
    raises its own ``CancelledError`` after)."""
    while not fut.done():
        try:
            await asyncio.wait((fut,))
        except asyncio.CancelledError:
            pass
    if not fut.cancelled():
        fut.exception()  # retrieved: no "never retrieved" warning


class Gate:
    """One operation at a time, in call order: the file position's gate,
    for ``ThreadFile`` and ``files.AsyncBinaryFile`` alike.

    An operation finds the gate free and takes it at once (``busy = True``:
    no await, no loop step), or waits its turn (``wait_turn``).  The one
    leaving hands the turn to the next waiter directly (``busy`` stays
    True), so an operation called meanwhile queues behind it: call order
    is kept.  A task cancelled while it waits leaves having done nothing."""

    __slots__ = ("busy", "waiters")

    def __init__(self) -> None:
        self.busy = False
        self.waiters: Deque["asyncio.Future[None]"] = collections.deque()

    async def wait_turn(self) -> None:
        turn: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()
        self.waiters.append(turn)
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.leave()  # handed the turn just as it was cancelled: pass it on
            else:
                try:
                    self.waiters.remove(turn)
                except ValueError:
                    pass
            raise

    def leave(self) -> None:
        waiters = self.waiters
        while waiters:
            turn = waiters.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.busy = False


class ThreadFile(AsyncFileProtocol):
    """An open builtin file whose blocking calls run on a worker thread,
    one at a time in call order (see the module's docstring)."""

    def __init__(self, file: Any, gate: Optional[Gate] = None, *,
                 newline: Optional[str] = None) -> None:
        self._file = file
        self._gate = gate if gate is not None else Gate()
        self._text = isinstance(file, io.TextIOBase)
        self._newline = newline  # the text file's, for lines in _back
        try:
            self._rewind = bool(file.seekable())  # a cancelled read can be undone
        except (OSError, ValueError):
            self._rewind = False
        # What cancelled reads of a stream took (bytes or str), returned first.
        self._back: Any = "" if self._text else b""
        # Writes in append mode go out at once (see the module's docstring).
        self._flush_writes = isinstance(file, io.BufferedIOBase) \
            and "a" in getattr(file, "mode", "")
        self._buffer: Optional[ThreadFile] = None
        self._raw: Optional[ThreadFile] = None
        # A write since the last flush: a read flushes first (CPython 3.11's
        # BufferedRandom.read1, under the text file's reads too, reads from
        # before its buffered writes; the io_uring files have none).
        self._unflushed = False

    # -- state (no I/O) ---------------------------------------------------------------

    @property
    def name(self) -> Any:
        return self._file.name

    @property
    def mode(self) -> str:
        return self._file.mode  # type: ignore[no-any-return]

    @property
    def closed(self) -> bool:
        return self._file.closed  # type: ignore[no-any-return]

    @property
    def encoding(self) -> Any:
        return getattr(self._file, "encoding", None)

    @property
    def errors(self) -> Any:
        return getattr(self._file, "errors", None)

    @property
    def newlines(self) -> Any:
        return getattr(self._file, "newlines", None)

    @property
    def line_buffering(self) -> Any:
        return getattr(self._file, "line_buffering", None)

    @property
    def buffer(self) -> Optional["ThreadFile"]:
        """The text file's binary file (in the text file's queue); None once
        detached, as the builtin's."""
        inner = self._file.buffer
        if inner is None:
            return None
        if self._buffer is None or self._buffer._file is not inner:  # noqa: SLF001 - this class's own
            self._buffer = ThreadFile(inner, self._gate)
        return self._buffer

    @property
    def raw(self) -> Optional["ThreadFile"]:
        """A buffered binary file's unbuffered one (in its queue); None once
        detached.  ``AttributeError`` where the builtin file has none."""
        inner = self._file.raw
        if inner is None:
            return None
        if self._raw is None or self._raw._file is not inner:  # noqa: SLF001 - this class's own
            self._raw = ThreadFile(inner, self._gate)
        return self._raw

    @property
    def detach(self) -> Callable[[], "ThreadFile"]:
        """``detach()``: the builtin's, called at once (as aiofiles calls
        it), the file it returns as a ``ThreadFile`` (the same object as
        ``buffer``/``raw``).  ``AttributeError`` where the builtin file has
        none (``FileIO``).  As the io_uring binary file's, a buffered binary
        file's raw file is put where the reading stopped (the builtin's is
        left after its read-ahead)."""
        detach = self._file.detach

        def run() -> "ThreadFile":
            if self._gate.busy:
                raise RuntimeError("detach() while an operation of the file is running")
            position = None
            if not self._text and self._rewind and not self._file.closed:
                position = self._file.tell()
            inner = detach()
            if position is not None:
                inner.seek(position)
            wrapped = self._buffer if self._text else self._raw
            if wrapped is None or wrapped._file is not inner:  # noqa: SLF001 - this class's own
                wrapped = ThreadFile(inner, self._gate)
            if not self._text and self._back:  # what cancelled reads took: still to be read
                wrapped._back = self._back + wrapped._back
            self._back = self._back[:0]
            return wrapped

        return run

    def fileno(self) -> int:
        return self._file.fileno()  # type: ignore[no-any-return]

    # As AsyncFile: a binary file's ``readable`` a bool, the others (and a
    # text file's ``readable``) an ``Answer``, which aiofiles' callers await.

    def readable(self) -> Any:
        flag = self._file.readable()
        return answer(flag) if isinstance(self._file, io.TextIOBase) else flag

    def writable(self) -> Answer:
        return answer(self._file.writable())

    def seekable(self) -> Answer:
        return answer(self._file.seekable())

    def isatty(self) -> Answer:
        return answer(self._file.isatty())

    # -- the file's own methods, on a thread, in turn ----------------------------------

    async def _op(self, func: Callable[..., T], *args: Any,
                  undo: Optional[Callable[[T], Any]] = None) -> T:
        """``func(*args)`` on a worker thread once the calls made before
        it are done.  If the task is cancelled meanwhile, the call is not
        made if it has not started, else it is waited for, and *undo*
        (given its result, run on a thread too) takes back what it did;
        then ``CancelledError``."""
        gate = self._gate
        if gate.busy:
            await gate.wait_turn()
        else:
            gate.busy = True
        try:
            loop = asyncio.get_running_loop()
            cancelled = False

            def work() -> T:
                return _NOT_RUN if cancelled else func(*args)  # type: ignore[no-any-return]

            fut = loop.run_in_executor(None, work)
            try:
                return await asyncio.shield(fut)
            except asyncio.CancelledError:
                cancelled = True
                await _finish(fut)
                if undo is not None and not fut.cancelled() and fut.exception() is None \
                        and fut.result() is not _NOT_RUN:
                    await _finish(loop.run_in_executor(None, undo, fut.result()))
                raise
        finally:
            gate.leave()

    def _flushed(self, func: Callable[..., T]) -> Callable[..., T]:
        """*func* with a flush first if a write came since the last one."""
        def run(*args: Any) -> T:
            f = self._file
            if self._unflushed and not f.closed and f.readable():  # (else: the read's own error)
                f.flush()
                self._unflushed = False
            return func(*args)

        return run

    async def _read_op(self, func: Callable[..., Any], *args: Any,
                       count: Callable[[Any], int] = len) -> Any:
        """A read, undone if its task is cancelled: the position put back
        (a seekable file), so the bytes it took are read again."""
        if not self._rewind:
            return await self._stream_op(func.__name__, *args)
        f = self._file
        func = self._flushed(func)
        if not self._text:
            return await self._op(func, *args,
                                  undo=lambda got: f.seek(-count(got), os.SEEK_CUR))

        def read_from_cookie() -> Any:
            try:
                cookie = f.tell()  # the builtin text file's position, decoder state and all
            except (OSError, ValueError):
                cookie = None
            return cookie, func(*args)

        def undo(done: Any) -> None:
            if done[0] is not None:
                f.seek(done[0])

        return (await self._op(read_from_cookie, undo=undo))[1]

    # -- a stream's reads: what cancelled ones took comes first -------------------------

    async def _stream_op(self, name: str, *args: Any) -> Any:
        """A read of a file that cannot seek (a pipe, FIFO, terminal):
        ``_back`` first, then the builtin file's.  Cancelled after it ran,
        what it took goes back to the front of ``_back``."""
        def undo(done: Tuple[Any, Any]) -> None:
            self._back = done[1] + self._back

        return (await self._op(self._flushed(self._from_back), name, args, undo=undo))[0]

    def _from_back(self, name: str, args: Tuple[Any, ...]) -> Tuple[Any, Any]:
        """(the result of ``name(*args)`` with ``_back`` read first, what
        it consumed); on the worker thread, in turn."""
        f = self._file
        back = self._back
        if name == "peek":
            return (back if back else f.peek(*args)), back[:0]
        if name == "readinto":
            view = memoryview(args[0]).cast("B")
            k = min(len(back), view.nbytes)
            view[:k] = back[:k]
            got = k
            if k < view.nbytes and (not k or isinstance(f, io.BufferedIOBase)):
                got += f.readinto(view[k:]) or 0
            self._back = back[k:]
            return got, bytes(view[:got])
        if name == "_readlines":
            name = "readlines"
        if not back:
            result = self._readlines(*args) if name == "readlines" else getattr(f, name)(*args)
            return result, ("".join(result) if self._text else b"".join(result)) \
                if name == "readlines" else result
        if name == "readlines":
            lines = self._readlines_back(*args)
            return lines, ("".join(lines) if self._text else b"".join(lines))
        if name == "readline":
            limit = -1 if not args or args[0] is None and not self._text \
                else operator.index(args[0])
            line = self._readline_back(limit)
            return line, line
        size = -1 if not args or args[0] is None else operator.index(args[0])
        if name in ("read", "readall") and size < 0:
            data = back + getattr(f, name)(*args)
        elif size < 0 or size <= len(back) or name == "read1" \
                or isinstance(f, io.RawIOBase):  # one read at most: what is here
            data = back[:size] if size >= 0 else back
        else:
            data = back + f.read(size - len(back))
        self._back = back[len(data):] if len(data) <= len(back) else back[:0]
        return data, data

    def _line_end(self, s: Any) -> int:
        """Where the first line of *s* (``_back``) ends, or -1; -1 too for
        a ``"\r"`` at its end that may be half of a ``"\r\n"``."""
        if not self._text:
            i = s.find(b"\n")
            return i + 1 if i >= 0 else -1
        nl = self._newline
        if nl is None or nl == "\n":  # (None: the text has "\n" only, translated)
            i = s.find("\n")
            return i + 1 if i >= 0 else -1
        if nl == "\r":
            i = s.find("\r")
            return i + 1 if i >= 0 else -1
        if nl == "\r\n":
            i = s.find("\r\n")
            return i + 2 if i >= 0 else -1
        ends = [i for i in (s.find("\n"), s.find("\r")) if i >= 0]  # "": any of the three
        if not ends:
            return -1
        i = min(ends)
        if s[i] == "\r":
            if i + 1 == len(s):
                return -1
            if s[i + 1] == "\n":
                return i + 2
        return i + 1

    def _readline_back(self, limit: int) -> Any:
        f = self._file
        back = self._back
        end = self._line_end(back)
        if end >= 0 and (limit < 0 or end <= limit):
            self._back = back[end:]
            return back[:end]
        if 0 <= limit <= len(back):
            self._back = back[limit:]
            return back[:limit]
        self._back = back[:0]
        rest = f.readline(limit - len(back) if limit >= 0 else -1)
        if self._text and back.endswith("\r") and self._newline in ("", "\r\n"):
            if rest.startswith("\n"):  # the "\r\n" was split
                self._back = rest[1:]
                return back + "\n"
            if self._newline == "":  # the "\r" ended the line
                self._back = rest
                return back
        return back + rest

    def _readlines_back(self, hint: Any = -1) -> List[Any]:
        hint = -1 if hint is None else operator.index(hint)
        lines: List[Any] = []
        total = 0
        while self._back:
            line = self._readline_back(-1)
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint < total:
                return lines
        if hint <= 0:
            return lines + self._readlines()
        if hint == total:  # the builtin would take one more line, then stop
            line = self._file.readline()
            return lines + [line] if line else lines
        return lines + self._readlines(hint - total)

    async def read(self, size: Optional[int] = -1) -> Any:
        return await self._read_op(self._file.read, size)

    # The arguments go to the builtin file as given (it decides what None means).

    async def read1(self, size: Optional[int] = -1) -> Any:
        return await self._read_op(self._file.read1, size)

    async def peek(self, size: int = 0) -> Any:
        if not self._rewind:
            return await self._stream_op("peek", size)  # consumes nothing
        return await self._op(self._file.peek, size)  # consumes nothing

    async def readall(self) -> Any:
        return await self._read_op(self._file.readall if hasattr(self._file, "readall")
                                   else self._file.read)

    async def readinto(self, buf: Any) -> int:
        return await self._read_op(self._file.readinto, buf, count=int)  # type: ignore[no-any-return]

    async def readline(self, size: Optional[int] = -1) -> Any:
        return await self._read_op(self._file.readline, size)

    def _readlines(self, hint: Any = -1) -> List[Any]:
        """The builtin's ``readlines``; a text file's by ``readline()``, as
        the io_uring text file reads them: the builtin text file's
        iterates, which turns its ``tell()`` off (and can leave it wrong
        after, CPython 3.11)."""
        f = self._file
        if not self._text:
            return f.readlines(hint)  # type: ignore[no-any-return]
        hint = -1 if hint is None else operator.index(hint)
        lines: List[Any] = []
        total = 0
        while True:
            line = f.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint < total:
                return lines

    async def readlines(self, hint: Optional[int] = -1) -> List[Any]:
        return await self._read_op(  # type: ignore[no-any-return]
            self._readlines, hint, count=lambda lines: sum(map(len, lines)))

    def _write(self, data: Any) -> int:
        n = self._file.write(data)
        if self._flush_writes:
            self._file.flush()
        else:
            self._unflushed = True
        return n  # type: ignore[no-any-return]

    def _writelines(self, lines: List[Any]) -> None:
        self._file.writelines(lines)
        if self._flush_writes:
            self._file.flush()
        else:
            self._unflushed = True

    async def write(self, data: Any) -> int:
        return await self._op(self._write, data)

    async def writelines(self, lines: Iterable[Any]) -> None:
        await self._op(self._writelines, list(lines))

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return await self._op(self._file.seek, offset, whence)

    async def tell(self) -> int:
        return await self._op(self._file.tell)

    def _flush(self) -> None:
        self._file.flush()
        self._unflushed = False

    async def flush(self) -> None:
        await self._op(self._flush)

    async def truncate(self, size: Optional[int] = None) -> int:
        return await self._op(self._file.truncate, size)

    async def close(self) -> None:
        """Close the file; closing twice is allowed."""
        await _call(self._file.close)

    # -- what AsyncFile adds: fd-level calls ---------------------------------------------

    def _flushed_fd(self) -> int:
        self._file.flush()  # what is buffered in Python reaches the fd first
        return self._file.fileno()  # type: ignore[no-any-return]

    async def pread(self, size: int, offset: int) -> bytes:
        """``os.pread``: up to *size* bytes at *offset*; the position is not moved."""
        return await _call(lambda: os.pread(self._flushed_fd(), size, offset))

    async def preadinto(self, buf: Any, offset: int) -> int:
        """``os.preadv`` into *buf* at *offset*; the byte count."""
        return await _call(lambda: os.preadv(self._flushed_fd(), [buf], offset))

    async def pwrite(self, data: Any, offset: int) -> int:
        """Write all of *data* at *offset* (``os.pwrite``, continued after a
        short write); the position is not moved."""
        def run() -> int:
            fd = self._flushed_fd()
            view = memoryview(data).cast("B")
            done = 0
            while done < view.nbytes:
                done += os.pwrite(fd, view[done:], offset + done)
            return done

        return await _call(run)

    async def fsync(self, *, datasync: bool = False) -> None:
        """``os.fsync`` (``os.fdatasync`` with *datasync*) after a flush."""
        sync = os.fdatasync if datasync else os.fsync
        await _call(lambda: sync(self._flushed_fd()))

    async def stat(self) -> os.stat_result:
        """``os.fstat`` of the file."""
        return await _call(lambda: os.fstat(self._file.fileno()))

    # -- protocols ----------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<uring.asyncio.ThreadFile {self._file!r}>"


async def open_thread_file(file: Any, mode: str, buffering: int, encoding: Optional[str],
                           errors: Optional[str], newline: Optional[str], perms: int,
                           closefd: bool = True,
                           opener: Optional[Callable[[Any, int], int]] = None) -> ThreadFile:
    """The builtin ``open()`` on a worker thread; *perms* as the new file's
    permission bits (an opener, unless one is given)."""
    def with_perms(path: Any, flags: int) -> int:
        return os.open(path, flags, perms)

    if opener is None and not isinstance(file, int):
        opener = with_perms

    def run() -> Any:
        return builtins.open(file, mode, buffering, encoding, errors, newline, closefd, opener)

    return ThreadFile(await _call(run), newline=newline)

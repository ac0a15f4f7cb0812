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
  On a file that is not seekable (a pipe, FIFO, terminal) that cannot be
  done: the bytes a cancelled read took are lost, as they are with
  io_uring.
* A cancelled write has landed (the builtin file's write finishes on its
  thread); its position says so, and ``CancelledError`` is raised once it
  is done.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import functools
import io
import os
from typing import Any, Callable, Deque, Iterable, List, Optional, TypeVar

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

    def __init__(self, file: Any, gate: Optional[Gate] = None) -> None:
        self._file = file
        self._gate = gate if gate is not None else Gate()
        self._text = isinstance(file, io.TextIOBase)
        try:
            self._rewind = bool(file.seekable())  # a cancelled read can be undone
        except (OSError, ValueError):
            self._rewind = False

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
    def buffer(self) -> "ThreadFile":
        return ThreadFile(self._file.buffer, self._gate)  # the text file's queue

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

    async def _read_op(self, func: Callable[..., Any], *args: Any,
                       count: Callable[[Any], int] = len) -> Any:
        """A read, undone if its task is cancelled: the position put back
        (a seekable file), so the bytes it took are read again."""
        if not self._rewind:
            return await self._op(func, *args)
        f = self._file
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

    async def read(self, size: Optional[int] = -1) -> Any:
        return await self._read_op(self._file.read, size)

    # The arguments go to the builtin file as given (it decides what None means).

    async def read1(self, size: Optional[int] = -1) -> Any:
        return await self._read_op(self._file.read1, size)

    async def peek(self, size: int = 0) -> Any:
        return await self._op(self._file.peek, size)  # consumes nothing

    async def readall(self) -> Any:
        return await self._read_op(self._file.readall if hasattr(self._file, "readall")
                                   else self._file.read)

    async def readinto(self, buf: Any) -> int:
        return await self._read_op(self._file.readinto, buf, count=int)  # type: ignore[no-any-return]

    async def readline(self, size: Optional[int] = -1) -> Any:
        return await self._read_op(self._file.readline, size)

    async def readlines(self, hint: Optional[int] = -1) -> List[Any]:
        return await self._read_op(  # type: ignore[no-any-return]
            self._file.readlines, hint, count=lambda lines: sum(map(len, lines)))

    async def write(self, data: Any) -> int:
        return await self._op(self._file.write, data)

    async def writelines(self, lines: Iterable[Any]) -> None:
        await self._op(self._file.writelines, list(lines))

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return await self._op(self._file.seek, offset, whence)

    async def tell(self) -> int:
        return await self._op(self._file.tell)

    async def flush(self) -> None:
        await self._op(self._file.flush)

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

    return ThreadFile(await _call(run))

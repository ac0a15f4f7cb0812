"""The file of the thread fallback (``backend() == "threads"``): the
builtin ``open()``'s file object, each call run on the loop's default
executor, with the method set of ``AsyncBinaryFile``/``AsyncTextFile``
(aiofiles' API)."""

from __future__ import annotations

import asyncio
import builtins
import functools
import io
import os
from typing import Any, Callable, Iterable, List, Optional, TypeVar

from .fileproto import Answer, AsyncFileProtocol, answer

__all__ = ["ThreadFile", "open_thread_file"]

T = TypeVar("T")


async def _call(func: Callable[..., T], *args: Any) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(func, *args))


class ThreadFile(AsyncFileProtocol):
    """An open builtin file whose blocking calls run on a worker thread."""

    def __init__(self, file: Any) -> None:
        self._file = file

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
        return ThreadFile(self._file.buffer)

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

    # -- the file's own methods, on a thread ---------------------------------------------

    async def read(self, size: Optional[int] = -1) -> Any:
        return await _call(self._file.read, size)

    # The arguments go to the builtin file as given (it decides what None means).

    async def read1(self, size: Optional[int] = -1) -> Any:
        return await _call(self._file.read1, size)

    async def peek(self, size: int = 0) -> Any:
        return await _call(self._file.peek, size)

    async def readall(self) -> Any:
        return await _call(self._file.readall if hasattr(self._file, "readall") else self._file.read)

    async def readinto(self, buf: Any) -> int:
        return await _call(self._file.readinto, buf)

    async def readline(self, size: Optional[int] = -1) -> Any:
        return await _call(self._file.readline, size)

    async def readlines(self, hint: Optional[int] = -1) -> List[Any]:
        return await _call(self._file.readlines, hint)

    async def write(self, data: Any) -> int:
        return await _call(self._file.write, data)

    async def writelines(self, lines: Iterable[Any]) -> None:
        await _call(self._file.writelines, list(lines))

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return await _call(self._file.seek, offset, whence)

    async def tell(self) -> int:
        return await _call(self._file.tell)

    async def flush(self) -> None:
        await _call(self._file.flush)

    async def truncate(self, size: Optional[int] = None) -> int:
        return await _call(self._file.truncate, size)

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

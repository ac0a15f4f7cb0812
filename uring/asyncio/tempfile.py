"""``aiofiles.tempfile`` on io_uring: ``uring.asyncio.tempfile``.

    from uring.asyncio import tempfile as atempfile

    async with atempfile.NamedTemporaryFile("w+b") as f:   # IORING_OP_OPENAT
        await f.write(b"data")
        ...                                                 # removed at the exit
    async with atempfile.TemporaryDirectory() as d:         # d: the path
        ...                                                 # removed with its contents

Each function takes the arguments of its ``tempfile`` namesake and returns
an object to use with ``async with`` (the file; for
``TemporaryDirectory`` the directory's path) or to ``await`` (the file,
closed with ``await f.close()``; the directory object, removed with
``await d.cleanup()``).  Deletion happens when the stdlib's does.

* ``TemporaryFile``, ``NamedTemporaryFile``: the file is created as
  ``mkstemp`` creates it (a random name in *dir*, ``O_EXCL``, mode 0o600,
  tried again on ``EEXIST``), by ``IORING_OP_OPENAT`` through
  ``uring.asyncio.open``; ``TemporaryFile``'s name is then removed
  (``IORING_OP_UNLINKAT``) and its ``name`` is the fd, as the stdlib's.
  ``NamedTemporaryFile`` removes the file at ``close()`` (*delete*; with
  *delete_on_close* False, at the ``async with`` exit).  The objects pass
  every other attribute to the ``uring.asyncio.AsyncFile`` they wrap.
  The file is opened readable and writable in ``"w"``/``"a"``/``"x"``
  modes only if the mode says ``+``; a ``"r"`` mode gets ``"x+"`` (the
  stdlib opens the new empty file read-only, which no one uses).
* ``SpooledTemporaryFile``: in memory (``io.BytesIO``/``io.TextIOWrapper``,
  as the stdlib) until more than *max_size* is written, ``fileno()`` is
  asked for or ``rollover()`` is called; then a ``TemporaryFile`` as above,
  the bytes so far written to it with ``IORING_OP_WRITE``.  Every method
  is awaited, as aiofiles' (``read``, ``write``, ``seek``, ``tell``,
  ``fileno``, ``rollover``, ...).
* ``TemporaryDirectory``: the stdlib's ``tempfile.TemporaryDirectory``,
  made and cleaned up on a worker thread (one ``mkdir``; the cleanup is
  the stdlib's tree removal, which has no io_uring op).

The first use of the default directory (``tempfile.gettempdir()``, which
probes candidate directories by writing to them) runs on a worker thread.
"""

from __future__ import annotations

import errno
import inspect
import io
import os
import secrets
import tempfile
from typing import Any, Awaitable, Callable, Generic, Iterable, List, Optional, TypeVar

from .driver import get_ring
from .fallback import use_threads
from .fileproto import AsyncFileProtocol
from .files import binary_mode
from .files import open as uring_open
from .os import to_thread, unlink

__all__ = [
    "AsyncSpooledTemporaryFile", "AsyncTemporaryDirectory", "AsyncTemporaryFile",
    "NamedTemporaryFile", "SpooledTemporaryFile", "TemporaryDirectory", "TemporaryFile",
]

T = TypeVar("T")
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"  # tempfile's own alphabet
_TMP_MAX = getattr(os, "TMP_MAX", 10000)


async def _maybe_await(value: Any) -> Any:
    """*value*, awaited if it is awaitable (``AsyncFile.seek``/``tell`` are
    plain methods today and may become coroutines)."""
    if inspect.isawaitable(value):
        return await value
    return value


def _check_mode(mode: str) -> None:
    """``open()``'s check of a mode string, done before anything is made."""
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a str, not {type(mode).__name__}")
    chars = set(mode)
    if len(chars) != len(mode) or not chars <= set("rwaxb+t") or len(chars & set("rwax")) != 1 \
            or {"b", "t"} <= chars:
        raise ValueError(f"invalid mode: {mode!r}")


def _reported_mode(mode: str) -> str:
    """The ``mode`` the stdlib's temporary file of *mode* reports: a binary
    file's is its ``FileIO``'s (``"w+b"`` -> ``"rb+"``), a text file's the
    mode given."""
    return binary_mode(mode) if "b" in mode else mode


def _create_mode(mode: str) -> str:
    """The exclusive-create mode for a temporary file of *mode*."""
    plus = "+" in mode or "r" in mode
    return "x" + ("+" if plus else "") + ("b" if "b" in mode else "")


async def _params(prefix: Any, suffix: Any, dir: Any) -> tuple:
    """``tempfile``'s defaults: str or bytes like the arguments (mixing
    them is a ``TypeError``), ``"tmp"`` and ``gettempdir()``."""
    kinds = {type(x) for x in (prefix, suffix, dir) if x is not None and not isinstance(x, os.PathLike)}
    if isinstance(dir, os.PathLike):
        kinds.add(type(os.fspath(dir)))
    if len(kinds) > 1:
        raise TypeError("Can't mix bytes and non-bytes in path components.")
    as_bytes = kinds == {bytes}
    if suffix is None:
        suffix = b"" if as_bytes else ""
    if prefix is None:
        prefix = tempfile.gettempprefixb() if as_bytes else tempfile.gettempprefix()
    if dir is None:
        get = tempfile.gettempdirb if as_bytes else tempfile.gettempdir
        dir = get() if tempfile.tempdir is not None else await to_thread(get)
    return prefix, suffix, dir, as_bytes


def _random_name(as_bytes: bool) -> Any:
    name = "".join(secrets.choice(_NAME_CHARS) for _ in range(8))
    return name.encode("ascii") if as_bytes else name


def _open_kwargs(buffering: int, encoding: Optional[str], errors: Optional[str],
                 newline: Optional[str]) -> dict:
    """``uring.asyncio.open``'s keyword arguments; *buffering* and *newline*
    only when given (``open`` may not take them)."""
    kwargs: dict = {"encoding": encoding, "errors": errors}
    if buffering != -1:
        kwargs["buffering"] = buffering
    if newline is not None:
        kwargs["newline"] = newline
    return kwargs


async def _mkstemp(mode: str, kwargs: dict, suffix: Any, prefix: Any, dir: Any) -> tuple:
    """(the open ``AsyncFile``, its absolute path): ``mkstemp``'s loop with
    ``IORING_OP_OPENAT``."""
    _check_mode(mode)
    prefix, suffix, dir, as_bytes = await _params(prefix, suffix, dir)
    dir = os.path.abspath(dir)
    create = _create_mode(mode)
    for _ in range(_TMP_MAX):
        name = os.path.join(dir, prefix + _random_name(as_bytes) + suffix)
        try:
            f = await uring_open(name, create, perms=0o600, **kwargs)
        except FileExistsError:
            continue  # try again
        except OSError as exc:
            if exc.errno is None:
                raise
            # The stdlib's error (message and filename), not the op's.
            raise OSError(exc.errno, os.strerror(exc.errno), name) from None
        return f, name
    raise FileExistsError(errno.EEXIST, "No usable temporary file name found")


# -- the file objects -------------------------------------------------------------------


class AsyncTemporaryFile:
    """A temporary file: the ``uring.asyncio.AsyncFile`` it wraps (every
    attribute not defined here is the file's), its ``name``, and the
    removal of its path at ``close()`` or at the ``async with`` exit."""

    def __init__(self, file: Any, name: Any, mode: str, *, path: Any = None,
                 delete_on_close: bool = False, delete_on_exit: bool = False) -> None:
        self.file = file
        self.name = name
        self.mode = mode
        self._path = path
        self._delete_on_close = delete_on_close
        self._delete_on_exit = delete_on_exit

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.__dict__["file"], attr)

    async def _delete(self) -> None:
        path, self._path = self._path, None
        if path is not None:
            try:
                await unlink(path)  # IORING_OP_UNLINKAT
            except FileNotFoundError:
                pass

    async def close(self) -> None:
        """Close the file (``IORING_OP_CLOSE``); a ``NamedTemporaryFile``
        with *delete* (and *delete_on_close*) is removed."""
        try:
            await self.file.close()
        finally:
            if self._delete_on_close:
                await self._delete()

    async def __aenter__(self) -> "AsyncTemporaryFile":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self.close()
        finally:
            if self._delete_on_exit:
                await self._delete()

    def __aiter__(self) -> "AsyncTemporaryFile":
        return self

    async def __anext__(self) -> Any:
        line = await self.file.readline()
        if not line:
            raise StopAsyncIteration
        return line

    def __del__(self) -> None:
        # As the stdlib's wrapper: a NamedTemporaryFile dropped unclosed
        # is removed (the AsyncFile closes its own fd).
        path = self.__dict__.get("_path")
        if path is not None and (self.__dict__.get("_delete_on_close")
                                 or self.__dict__.get("_delete_on_exit")):
            try:
                os.unlink(path)
            except OSError:
                pass

    def __repr__(self) -> str:
        return f"<uring.asyncio.tempfile.AsyncTemporaryFile {self.name!r} {self.file!r}>"


async def _temporary_file(mode: str, buffering: int, encoding: Optional[str],
                          newline: Optional[str], suffix: Any, prefix: Any, dir: Any,
                          errors: Optional[str]) -> AsyncTemporaryFile:
    f, path = await _mkstemp(mode, _open_kwargs(buffering, encoding, errors, newline),
                             suffix, prefix, dir)
    try:
        await unlink(path)
    except BaseException:
        await f.close()
        raise
    return AsyncTemporaryFile(f, f.fileno(), _reported_mode(mode))


async def _named_temporary_file(mode: str, buffering: int, encoding: Optional[str],
                                newline: Optional[str], suffix: Any, prefix: Any, dir: Any,
                                delete: bool, errors: Optional[str],
                                delete_on_close: bool) -> AsyncTemporaryFile:
    f, path = await _mkstemp(mode, _open_kwargs(buffering, encoding, errors, newline),
                             suffix, prefix, dir)
    return AsyncTemporaryFile(f, path, _reported_mode(mode), path=path,
                              delete_on_close=delete and delete_on_close, delete_on_exit=delete)


class AsyncSpooledTemporaryFile(AsyncFileProtocol):
    """``tempfile.SpooledTemporaryFile`` with every method awaited: in
    memory until *max_size* is passed (or ``fileno()``/``rollover()``),
    then a ``TemporaryFile`` on io_uring."""

    def __init__(self, max_size: int = 0, mode: str = "w+b", buffering: int = -1,
                 encoding: Optional[str] = None, newline: Optional[str] = None,
                 suffix: Any = None, prefix: Any = None, dir: Any = None, *,
                 errors: Optional[str] = None) -> None:
        _check_mode(mode)
        self._file: Any
        if "b" in mode:
            self._file = io.BytesIO()
        else:
            self._file = io.TextIOWrapper(io.BytesIO(), encoding=encoding, errors=errors,
                                          newline=newline)
            encoding = self._file.encoding  # what the rolled-over file must use
        self._max_size = max_size
        self._rolled = False
        self._mode = mode
        self._args = (mode, buffering, encoding, newline, suffix, prefix, dir, errors)

    @property
    def rolled(self) -> bool:
        """Whether the data is in a file now (``_rolled`` in the stdlib)."""
        return self._rolled

    async def _call(self, method: str, *args: Any) -> Any:
        return await _maybe_await(getattr(self._file, method)(*args))

    async def _roll_if_big(self) -> None:
        if self._max_size and not self._rolled and self._file.tell() > self._max_size:
            await self.rollover()

    async def rollover(self) -> None:
        """Move the data to a ``TemporaryFile`` (``IORING_OP_OPENAT``,
        ``UNLINKAT``, ``WRITE``), at the same position."""
        if self._rolled:
            return
        memory = self._file
        new = await _temporary_file(*self._args)
        try:
            pos = memory.tell()
            data = memory.getvalue() if isinstance(memory, io.BytesIO) else memory.detach().getvalue()
            await _write_all(new.fileno(), data)
            await _maybe_await(new.seek(pos))
        except BaseException:
            await new.close()
            raise
        self._file = new
        self._rolled = True

    # -- attributes ------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return bool(self._file.closed)

    @property
    def mode(self) -> str:
        """The mode given while in memory; the file's (``"rb+"`` for
        ``"w+b"``) once rolled over, as the stdlib's."""
        return self._file.mode if self._rolled else self._mode  # type: ignore[no-any-return]

    @property
    def name(self) -> Any:
        return getattr(self._file, "name", None) if self._rolled else None

    @property
    def encoding(self) -> Optional[str]:
        return getattr(self._file, "encoding", None)

    @property
    def newlines(self) -> Any:
        return getattr(self._file, "newlines", None)

    async def fileno(self) -> int:
        """Rolls over first, as the stdlib's."""
        await self.rollover()
        return int(self._file.fileno())

    # -- I/O -----------------------------------------------------------------------

    async def read(self, *args: Any) -> Any:
        return await self._call("read", *args)

    async def read1(self, *args: Any) -> Any:
        return await self._call("read1" if hasattr(self._file, "read1") else "read", *args)

    async def readline(self, *args: Any) -> Any:
        return await self._call("readline", *args)

    async def readlines(self, *args: Any) -> List[Any]:
        if hasattr(self._file, "readlines"):
            return await self._call("readlines", *args)  # type: ignore[no-any-return]
        lines: List[Any] = []
        while True:
            line = await self.readline()
            if not line:
                return lines
            lines.append(line)

    async def write(self, s: Any) -> int:
        rv = await self._call("write", s)
        await self._roll_if_big()
        return rv  # type: ignore[no-any-return]

    async def writelines(self, iterable: Iterable[Any]) -> None:
        if not self._rolled:
            self._file.writelines(iterable)
            await self._roll_if_big()
            return
        for line in iterable:
            await self._call("write", line)

    async def seek(self, *args: Any) -> int:
        return await self._call("seek", *args)  # type: ignore[no-any-return]

    async def tell(self) -> int:
        return await self._call("tell")  # type: ignore[no-any-return]

    async def truncate(self, size: Optional[int] = None) -> Any:
        if size is None:
            return await self._call("truncate")
        if size > self._max_size:
            await self.rollover()
        return await self._call("truncate", size)

    async def flush(self) -> None:
        if hasattr(self._file, "flush"):
            await self._call("flush")

    async def isatty(self) -> bool:
        return bool(await self._call("isatty"))

    async def close(self) -> None:
        await self._call("close")


async def _write_all(fd: int, data: bytes) -> None:
    """*data* at offset 0 of *fd*: ``IORING_OP_WRITE``, continued after a
    short write (``os.pwrite`` on a thread where io_uring is unavailable)."""
    if use_threads():
        def pwrite_all() -> None:
            view = memoryview(data)
            done = 0
            while done < len(view):
                done += os.pwrite(fd, view[done:], done)

        return await to_thread(pwrite_all)
    lr = get_ring()
    view = memoryview(data)
    done = 0
    while done < len(view):
        await lr.room()
        n = await lr.run_res(lr.ring.prep_write(fd, view[done:], done), "IORING_OP_WRITE", fd)
        if n == 0:
            raise OSError(errno.EIO, "IORING_OP_WRITE wrote nothing")
        done += n


class AsyncTemporaryDirectory:
    """``tempfile.TemporaryDirectory``, its ``cleanup`` awaited (on a
    worker thread)."""

    def __init__(self, directory: tempfile.TemporaryDirectory) -> None:
        self._directory = directory
        self.name = directory.name

    async def cleanup(self) -> None:
        await to_thread(self._directory.cleanup)

    async def __aenter__(self) -> Any:
        return self.name

    async def __aexit__(self, *exc: Any) -> None:
        if getattr(self._directory, "_delete", True):  # Python 3.12's delete=False
            await self.cleanup()

    def __repr__(self) -> str:
        return f"<uring.asyncio.tempfile.AsyncTemporaryDirectory {self.name!r}>"


# -- what the functions return --------------------------------------------------------


class TempContext(Generic[T]):
    """A temporary object being made: ``await`` it for the object, or use
    ``async with`` (the file, or the directory's path; removed at the exit
    as the stdlib's context managers remove it)."""

    def __init__(self, make: Callable[[], Awaitable[T]]) -> None:
        self._make = make
        self._obj: Optional[Any] = None

    def __await__(self) -> Any:
        return self._make().__await__()

    async def __aenter__(self) -> Any:
        obj: Any = await self._make()
        self._obj = obj
        return await obj.__aenter__()

    async def __aexit__(self, *exc: Any) -> None:
        if self._obj is not None:
            await self._obj.__aexit__(*exc)


def TemporaryFile(mode: str = "w+b", buffering: int = -1, encoding: Optional[str] = None,
                  newline: Optional[str] = None, suffix: Any = None, prefix: Any = None,
                  dir: Any = None, *, errors: Optional[str] = None
                  ) -> TempContext[AsyncTemporaryFile]:
    """``tempfile.TemporaryFile``: created with ``IORING_OP_OPENAT``, its
    name removed at once with ``IORING_OP_UNLINKAT``; ``name`` is the fd."""
    return TempContext(lambda: _temporary_file(mode, buffering, encoding, newline, suffix,
                                               prefix, dir, errors))


def NamedTemporaryFile(mode: str = "w+b", buffering: int = -1, encoding: Optional[str] = None,
                       newline: Optional[str] = None, suffix: Any = None, prefix: Any = None,
                       dir: Any = None, delete: bool = True, *, errors: Optional[str] = None,
                       delete_on_close: bool = True) -> TempContext[AsyncTemporaryFile]:
    """``tempfile.NamedTemporaryFile``: created with ``IORING_OP_OPENAT``;
    with *delete*, removed (``IORING_OP_UNLINKAT``) at ``close()``, or with
    *delete_on_close* False (Python 3.12's argument) at the exit."""
    return TempContext(lambda: _named_temporary_file(mode, buffering, encoding, newline, suffix,
                                                     prefix, dir, delete, errors,
                                                     delete_on_close))


def SpooledTemporaryFile(max_size: int = 0, mode: str = "w+b", buffering: int = -1,
                         encoding: Optional[str] = None, newline: Optional[str] = None,
                         suffix: Any = None, prefix: Any = None, dir: Any = None, *,
                         errors: Optional[str] = None
                         ) -> TempContext[AsyncSpooledTemporaryFile]:
    """``tempfile.SpooledTemporaryFile``: in memory, then (past *max_size*)
    a ``TemporaryFile`` on io_uring."""

    async def make() -> AsyncSpooledTemporaryFile:
        return AsyncSpooledTemporaryFile(max_size, mode, buffering, encoding, newline, suffix,
                                         prefix, dir, errors=errors)

    return TempContext(make)


def TemporaryDirectory(suffix: Any = None, prefix: Any = None, dir: Any = None,
                       **kwargs: Any) -> TempContext[AsyncTemporaryDirectory]:
    """``tempfile.TemporaryDirectory`` (and its keyword arguments:
    ``ignore_cleanup_errors``, ``delete`` where the Python has them), made
    and removed on a worker thread; ``async with`` gives its path."""

    async def make() -> AsyncTemporaryDirectory:
        directory = await to_thread(tempfile.TemporaryDirectory, suffix, prefix, dir, **kwargs)
        return AsyncTemporaryDirectory(directory)

    return TempContext(make)

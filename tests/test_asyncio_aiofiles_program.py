"""Acceptance (issue 15): one program written the aiofiles way gives the
builtin's results.

``program(ns)`` is a coroutine that uses every method and function
aiofiles offers the way aiofiles' users write them (``async with
ns.open(...)``, ``await f.read()``, ``await f.seekable()``,
``f.fileno()``, ``async for``, ``await ns.os.stat(...)``, ``async with
ns.tempfile.NamedTemporaryFile() as f``...).  It runs

* with ``ns`` = the builtins aiofiles mirrors (the sync twin): the builtin
  ``open()``, ``os``, ``os.path`` and ``tempfile``, each call made at once
  and wrapped in a coroutine, with aiofiles' split of awaited methods
  (``read``, ``seekable``, ...) and direct ones (``fileno``, a binary
  file's ``readable``, the properties);
* with ``ns`` = ``uring.asyncio`` on the stock asyncio loop (a ring
  attached), on ``UringEventLoop``, and on the thread fallback backend
  (``set_backend("threads")``).

Each run happens in a fresh directory of its own (``chdir``), with relative
paths, so every result, file name and error is comparable.  The
transcript records each step's value (or its exception: the class, and for
an ``OSError`` the errno, strerror, filename and filename2), the stable
fields of each ``stat`` result and the bytes on disk after each part; the
four transcripts must be equal, step by step.

What the program leaves out, on purpose: results that depend on the builtin's buffer size (``read1()``/``peek()``
beyond the end of a small file, the ``start`` of a ``UnicodeDecodeError``
in a large one).  No aiofiles needed: it wraps the builtins compared here.
"""

from __future__ import annotations

import asyncio
import io
import os
import pathlib
import stat as stat_mod
import tempfile
import warnings
from typing import Any, Awaitable, Callable, List, Tuple

import pytest

import uring.asyncio as ua
from uring.asyncio import fallback

# -- the sync twin: the builtins, with aiofiles' surface --------------------------------

#: Attributes aiofiles passes through as they are (properties).
_PROPERTIES = {"closed", "name", "mode", "encoding", "errors", "newlines", "line_buffering"}


def _awaitable(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)
    return call


class RefFile:
    """A builtin file object as aiofiles wraps it: the I/O methods (and
    ``seekable``/``writable``/``isatty``, and a text file's ``readable``)
    awaited, ``fileno`` and a binary file's ``readable`` called directly,
    the properties passed through; ``async with`` and ``async for``
    (by ``readline``, as aiofiles iterates)."""

    def __init__(self, f: Any) -> None:
        self._file = f

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._file, name)
        if name in _PROPERTIES:
            return attr
        if name == "fileno" or (name == "readable" and not isinstance(self._file, io.TextIOBase)):
            return attr
        return _awaitable(attr)

    async def __aenter__(self) -> "RefFile":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._file.close()

    def __aiter__(self) -> "RefFile":
        return self

    async def __anext__(self) -> Any:
        line = self._file.readline()
        if not line:
            raise StopAsyncIteration
        return line


class RefContext:
    """What aiofiles' ``open``/``tempfile`` functions return: awaitable,
    and an async context manager closing what it made."""

    def __init__(self, make: Callable[[], Any], wrap: Callable[[Any], Any] = RefFile) -> None:
        self._make, self._wrap = make, wrap
        self._obj: Any = None

    def __await__(self) -> Any:
        async def made() -> Any:
            return self._wrap(self._make())
        return made().__await__()

    async def __aenter__(self) -> Any:
        self._obj = self._wrap(self._make())
        return await self._obj.__aenter__()

    async def __aexit__(self, *exc: Any) -> None:
        await self._obj.__aexit__(*exc)


class RefSpooled:
    """``tempfile.SpooledTemporaryFile`` as aiofiles wraps it: every method
    awaited (``fileno`` and ``rollover`` included)."""

    def __init__(self, f: Any) -> None:
        self._file = f

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._file, name)
        return attr if name in _PROPERTIES else _awaitable(attr)

    async def __aenter__(self) -> "RefSpooled":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._file.close()


class RefTempDir:
    """``tempfile.TemporaryDirectory`` as aiofiles wraps it: ``async with``
    gives the path, ``await`` the object with an awaited ``cleanup``."""

    def __init__(self, d: tempfile.TemporaryDirectory) -> None:
        self._dir = d
        self.name = d.name

    async def cleanup(self) -> None:
        self._dir.cleanup()

    async def __aenter__(self) -> str:
        return self.name

    async def __aexit__(self, *exc: Any) -> None:
        self._dir.cleanup()


class _Namespace:
    pass


OS_NAMES = ["stat", "lstat", "rename", "renames", "replace", "remove", "unlink", "mkdir",
            "makedirs", "rmdir", "removedirs", "link", "symlink", "readlink", "listdir",
            "scandir", "access", "sendfile"]
PATH_NAMES = ["exists", "isfile", "isdir", "islink", "getsize", "getmtime", "getatime",
              "getctime", "samefile", "abspath"]


def builtins_namespace() -> Any:
    """The sync twin: what aiofiles would run on its threads, run at once."""
    ns = _Namespace()
    ns.open = lambda *a, **k: RefContext(lambda: open(*a, **k))  # type: ignore[attr-defined]
    ns.os = _Namespace()  # type: ignore[attr-defined]
    for name in OS_NAMES:
        setattr(ns.os, name, _awaitable(getattr(os, name)))  # type: ignore[attr-defined]
    ns.os.path = _Namespace()  # type: ignore[attr-defined]
    for name in PATH_NAMES:
        setattr(ns.os.path, name, _awaitable(getattr(os.path, name)))  # type: ignore[attr-defined]
    t = ns.tempfile = _Namespace()  # type: ignore[attr-defined]
    t.TemporaryFile = lambda *a, **k: RefContext(lambda: tempfile.TemporaryFile(*a, **k))
    t.NamedTemporaryFile = lambda *a, **k: RefContext(lambda: tempfile.NamedTemporaryFile(*a, **k))
    t.SpooledTemporaryFile = lambda *a, **k: RefContext(
        lambda: tempfile.SpooledTemporaryFile(*a, **k), RefSpooled)
    t.TemporaryDirectory = lambda *a, **k: RefContext(
        lambda: tempfile.TemporaryDirectory(*a, **k), RefTempDir)
    return ns


def uring_namespace() -> Any:
    ns = _Namespace()
    ns.open = ua.open  # type: ignore[attr-defined]
    ns.os = ua.os  # type: ignore[attr-defined]
    ns.tempfile = ua.tempfile  # type: ignore[attr-defined]
    return ns


# -- the transcript ----------------------------------------------------------------------


def _norm(value: Any) -> Any:
    """A result as the transcript keeps it: what does not differ between two
    directories (a stat result's stable fields, not its inode or times)."""
    if isinstance(value, os.stat_result):
        sized = stat_mod.S_ISREG(value.st_mode) or stat_mod.S_ISLNK(value.st_mode)
        return ("stat", stat_mod.S_IFMT(value.st_mode), stat_mod.S_IMODE(value.st_mode),
                value.st_size if sized else None, value.st_nlink, value.st_uid, value.st_gid)
    if isinstance(value, (bytearray, memoryview)):
        return ("buffer", bytes(value))
    if isinstance(value, int) and type(value) not in (int, bool):
        return ("int-like", type(value).__name__, int(value))  # a bool must be a bool
    return value


def _exc(exc: BaseException) -> Tuple[Any, ...]:
    name = type(exc).__name__
    if isinstance(exc, OSError) and exc.errno is not None:
        return ("raises", name, exc.errno, exc.strerror, exc.filename, exc.filename2)
    if isinstance(exc, UnicodeError):
        return ("raises", name, getattr(exc, "reason", None))
    return ("raises", name)


class Transcript:
    def __init__(self) -> None:
        self.lines: List[Tuple[Any, ...]] = []

    def note(self, label: str, *values: Any) -> None:
        self.lines.append((label, *(_norm(v) for v in values)))

    async def step(self, label: str, thunk: Callable[[], Any]) -> Any:
        """``await thunk()``: its value, or its exception, in the transcript."""
        try:
            value = await thunk()
        except Exception as exc:  # noqa: BLE001 - every exception is a result here
            self.lines.append((label, _exc(exc)))
            return None
        self.lines.append((label, _norm(value)))
        return value

    def disk(self, label: str, path: str) -> None:
        """The bytes of *path* on disk (read with the builtin, in both runs)."""
        with open(path, "rb") as fh:
            self.lines.append((label, "disk", fh.read()))


# -- the data ----------------------------------------------------------------------------

LINES = b"first line\nsecond\r\nthird\rfourth\n\nlast, no newline"
MIXED = "one\ntwo\r\nthree\rfour\r\n\rfive\n\n\r\r\nsix é€😀 end"
MIXED_WRITE = "a\nb\r\nc\rd\n\re\r\r\nf é"
NEWLINES = [None, "", "\n", "\r", "\r\n"]


def big_text() -> str:
    """Over 200 KiB of lines with every kind of newline, "\\r\\n" pairs put
    across 8 KiB and 64 KiB boundaries (the builtin's and the package's
    read chunks), and multi-byte characters."""
    parts: List[str] = []
    size = 0
    i = 0
    ends = ["\n", "\r\n", "\r", "\n\r", "\r\r\n"]
    while size < 210_000:
        body = ("é" if i % 7 == 0 else "x") * (i * 37 % 300) + f"line {i}"
        end = ends[i % len(ends)]
        # A "\r" as the last byte of a chunk: the "\n" after it comes with the next.
        nxt = size + len((body + end).encode())
        for boundary in (8192, 65536, 131072):
            if size < boundary <= nxt:
                pad = boundary - size - len(b"\r") - len(f"line {i}".encode())
                body = "y" * max(pad, 0) + f"line {i}"
                end = "\r\n"
        parts.append(body + end)
        size += len((body + end).encode())
        i += 1
    return "".join(parts)


# -- the program -------------------------------------------------------------------------


async def program(ns: Any) -> List[Tuple[Any, ...]]:
    """Every aiofiles method and function, the aiofiles way, in the
    current directory."""
    t = Transcript()
    await binary_files(ns, t)
    await text_files(ns, t)
    await newline_modes(ns, t)
    await open_arguments(ns, t)
    await os_functions(ns, t)
    await os_path_functions(ns, t)
    await tempfiles(ns, t)
    return t.lines


async def binary_files(ns: Any, t: Transcript) -> None:
    S = t.step
    # -- "wb": every write, seek, tell, truncate; the questions
    async with ns.open("b.bin", "wb") as f:
        t.note("wb attributes", f.mode, f.name, f.closed, f.readable(), isinstance(f.fileno(), int))
        await S("wb writable", lambda: f.writable())
        await S("wb seekable", lambda: f.seekable())
        await S("wb isatty", lambda: f.isatty())
        await S("write bytes", lambda: f.write(b"alpha\nbeta\r\ngamma\rdelta\n"))
        await S("write bytearray", lambda: f.write(bytearray(b"xyz")))
        await S("write memoryview", lambda: f.write(memoryview(b"0123456789")[2:5]))
        await S("write empty", lambda: f.write(b""))
        await S("write str", lambda: f.write("str"))
        await S("writelines", lambda: f.writelines([b"l1\n", bytearray(b"l2\n"), b"l3"]))
        await S("writelines generator", lambda: f.writelines(b"g%d" % i for i in range(3)))
        await S("tell", lambda: f.tell())
        await S("flush", lambda: f.flush())
        await S("read on wb", lambda: f.read())
        await S("seek 2", lambda: f.seek(2))
        await S("overwrite", lambda: f.write(b"PH"))
        await S("tell", lambda: f.tell())
        await S("seek end", lambda: f.seek(0, os.SEEK_END))
        await S("seek cur -3", lambda: f.seek(-3, os.SEEK_CUR))
        await S("write at cur", lambda: f.write(b"!"))
        await S("seek past end", lambda: f.seek(60))
        await S("write past end", lambda: f.write(b"gap"))
        await S("truncate 50", lambda: f.truncate(50))
        await S("tell after truncate", lambda: f.tell())
        await S("truncate at position", lambda: f.truncate())
        await S("seek negative", lambda: f.seek(-1))
        await S("seek cur negative", lambda: f.seek(-100, os.SEEK_CUR))
        await S("seek bad whence", lambda: f.seek(0, 7))
        await S("seek SEEK_DATA", lambda: f.seek(0, os.SEEK_DATA))
        await S("seek SEEK_HOLE", lambda: f.seek(0, os.SEEK_HOLE))
        await S("truncate negative", lambda: f.truncate(-1))
    t.note("wb closed", f.closed)
    await S("write closed", lambda: f.write(b"x"))
    await S("read closed", lambda: f.read())
    await S("seek closed", lambda: f.seek(0))
    await S("tell closed", lambda: f.tell())
    await S("flush closed", lambda: f.flush())
    await S("readline closed", lambda: f.readline())
    await S("truncate closed", lambda: f.truncate())
    await S("close twice", lambda: f.close())
    t.disk("wb result", "b.bin")

    with open("lines.bin", "wb") as fh:
        fh.write(LINES)
    # -- "rb": every read
    async with ns.open("lines.bin", "rb") as f:
        t.note("rb attributes", f.mode, f.name, f.readable())
        await S("rb writable", lambda: f.writable())
        await S("rb seekable", lambda: f.seekable())
        await S("read 5", lambda: f.read(5))
        await S("read1 3", lambda: f.read1(3))
        await S("read 0", lambda: f.read(0))
        await S("peek", lambda: _first(f.peek(1), 1))
        await S("tell", lambda: f.tell())
        buf = bytearray(4)
        await S("readinto", lambda: f.readinto(buf))
        t.note("readinto buffer", buf)
        mv = memoryview(bytearray(6))
        await S("readinto memoryview", lambda: f.readinto(mv[1:4]))
        t.note("readinto memoryview buffer", mv)
        await S("readinto readonly", lambda: f.readinto(b"12"))
        await S("readline", lambda: f.readline())
        await S("readline 3", lambda: f.readline(3))
        await S("readline 0", lambda: f.readline(0))
        await S("readline None", lambda: f.readline(None))
        await S("readline -1", lambda: f.readline(-1))
        await S("readlines hint 3", lambda: f.readlines(3))
        await S("readlines", lambda: f.readlines())
        await S("readline at end", lambda: f.readline())
        await S("read at end", lambda: f.read())
        await S("read1 at end", lambda: f.read1(5))
        await S("tell at end", lambda: f.tell())
        await S("seek 0", lambda: f.seek(0))
        t.note("async for", [line async for line in f])
        await S("seek -4 end", lambda: f.seek(-4, os.SEEK_END))
        await S("read rest", lambda: f.read())
        await S("seek 3", lambda: f.seek(3))
        await S("seek cur 2", lambda: f.seek(2, os.SEEK_CUR))
        await S("read None", lambda: f.read(None))
        await S("seek far", lambda: f.seek(1000))
        await S("read far", lambda: f.read(10))
        await S("readline far", lambda: f.readline())
        await S("tell far", lambda: f.tell())
        await S("seek 11", lambda: f.seek(11))
        await S("read1 all", lambda: f.read1())
        await S("seek 11 again", lambda: f.seek(11))
        await S("read1 -1", lambda: f.read1(-1))
        await S("write on rb", lambda: f.write(b"x"))
        await S("writelines on rb", lambda: f.writelines([b"x"]))
        await S("truncate on rb", lambda: f.truncate(0))
        await S("seek SEEK_DATA", lambda: f.seek(0, os.SEEK_DATA))
        await S("seek SEEK_HOLE", lambda: f.seek(0, os.SEEK_HOLE))
        await S("read after SEEK_HOLE", lambda: f.read())
        await S("seek 0 for readlines", lambda: f.seek(0))
        await S("readlines hint 0", lambda: f.readlines(0))
    t.note("rb closed", f.closed)
    await S("rb write closed", lambda: f.write(b"x"))
    await S("rb read closed", lambda: f.read(1))
    await S("rb truncate closed", lambda: f.truncate())
    await S("rb peek closed", lambda: f.peek(1))
    # -- "rb" unbuffered (buffering=0): the FileIO methods
    async with ns.open("lines.bin", "rb", 0) as f:
        t.note("rb0 attributes", f.mode, f.readable())
        await S("rb0 read 4", lambda: f.read(4))
        await S("rb0 readline", lambda: f.readline())
        await S("rb0 tell", lambda: f.tell())
        await S("rb0 readlines", lambda: f.readlines())
        await S("rb0 seek", lambda: f.seek(-6, os.SEEK_END))
        buf = bytearray(10)
        await S("rb0 readinto", lambda: f.readinto(buf))
        t.note("rb0 buffer", buf)
        await S("rb0 seek 0", lambda: f.seek(0))
        await S("rb0 read all", lambda: f.read())
        await S("rb0 seek 6", lambda: f.seek(6))
        t.note("rb0 async for", [line async for line in f])
    # -- a line longer than any read-ahead
    long = b"L" * 200_000 + b"\n" + b"short\n" + b"M" * 70_000
    with open("long.bin", "wb") as fh:
        fh.write(long)
    for buffering in (-1, 0, 16):
        async with ns.open("long.bin", "rb", buffering) as f:
            line = await f.readline()
            t.note(f"long line buffering={buffering}", len(line), line[-3:])
            await S("after long", lambda: f.readline())
            await S("long tell", lambda: f.tell())
            rest = await f.read()
            t.note("long rest", len(rest), await f.tell())
            await S("long seek", lambda: f.seek(199_990))
            await S("long readline 5", lambda: f.readline(5))
            t.note("long async for", [len(x) async for x in f])
    # -- "r+b": reads and writes on one position
    with open("rw.bin", "wb") as fh:
        fh.write(b"0123456789abcdef")
    async with ns.open("rw.bin", "r+b") as f:
        t.note("r+b attributes", f.mode, f.readable())
        await S("r+b writable", lambda: f.writable())
        await S("r+b read 4", lambda: f.read(4))
        await S("r+b write after read", lambda: f.write(b"XY"))
        await S("r+b tell", lambda: f.tell())
        await S("r+b read 3", lambda: f.read(3))
        await S("r+b readline", lambda: f.readline())
        await S("r+b seek 1", lambda: f.seek(1))
        await S("r+b write", lambda: f.write(b"__"))
        await S("r+b read 2", lambda: f.read(2))
        await S("r+b truncate 12", lambda: f.truncate(12))
        await S("r+b tell after truncate", lambda: f.tell())
        await S("r+b read rest", lambda: f.read())
        await S("r+b seek end", lambda: f.seek(0, os.SEEK_END))
        await S("r+b write end", lambda: f.write(b"END"))
        await S("r+b seek 0", lambda: f.seek(0))
        await S("r+b read all", lambda: f.read())
    t.disk("r+b result", "rw.bin")
    # -- "ab", "a+b": writes go to the end wherever the position is
    async with ns.open("rw.bin", "ab") as f:
        t.note("ab attributes", f.mode, f.readable())
        await S("ab tell", lambda: f.tell())
        await S("ab write", lambda: f.write(b"+1"))
        await S("ab flush", lambda: f.flush())
        await S("ab tell after", lambda: f.tell())
        await S("ab seek 0", lambda: f.seek(0))
        await S("ab write after seek", lambda: f.write(b"+2"))
        await S("ab flush", lambda: f.flush())
        await S("ab tell at end", lambda: f.tell())
        await S("ab read", lambda: f.read())
    async with ns.open("rw.bin", "a+b") as f:
        t.note("a+b attributes", f.mode, f.readable())
        await S("a+b tell", lambda: f.tell())
        await S("a+b read at end", lambda: f.read())
        await S("a+b seek 0", lambda: f.seek(0))
        await S("a+b read 3", lambda: f.read(3))
        await S("a+b write", lambda: f.write(b"+3"))
        await S("a+b flush", lambda: f.flush())
        await S("a+b tell", lambda: f.tell())
        await S("a+b seek 0 again", lambda: f.seek(0))
        await S("a+b read all", lambda: f.read())
    t.disk("append result", "rw.bin")
    # -- "xb", "x+b": only a new file
    async with ns.open("new.bin", "xb") as f:
        t.note("xb attributes", f.mode, f.readable())
        await S("xb write", lambda: f.write(b"new"))
    await S("xb existing", lambda: ns.open("new.bin", "xb"))
    async with ns.open("new2.bin", "x+b") as f:
        t.note("x+b attributes", f.mode, f.readable())
        await S("x+b write", lambda: f.write(b"new2"))
        await S("x+b seek", lambda: f.seek(1))
        await S("x+b read", lambda: f.read())
    t.disk("xb result", "new.bin")
    # -- "wb" unbuffered and with a small buffer; "w+b"
    for buffering in (0, 16):
        async with ns.open(f"wb{buffering}.bin", "wb", buffering) as f:
            t.note(f"wb buffering={buffering}", f.mode)
            await S("wbN write", lambda: f.write(b"a" * 40))
            await S("wbN writelines", lambda: f.writelines([b"b" * 20, b"c"]))
            await S("wbN tell", lambda: f.tell())
            await S("wbN seek", lambda: f.seek(5))
            await S("wbN write", lambda: f.write(b"Z"))
            await S("wbN truncate", lambda: f.truncate(30))
        t.disk(f"wb buffering={buffering} result", f"wb{buffering}.bin")
    async with ns.open("wplus.bin", "w+b") as f:
        t.note("w+b attributes", f.mode, f.readable())
        await S("w+b write", lambda: f.write(b"line1\nline2\n"))
        await S("w+b read at end", lambda: f.read())
        await S("w+b seek 0", lambda: f.seek(0))
        await S("w+b readline", lambda: f.readline())
        await S("w+b write after readline", lambda: f.write(b"LINE2\n"))
        await S("w+b seek 0 again", lambda: f.seek(0))
        t.note("w+b async for", [line async for line in f])
    # -- an fd instead of a path; closefd=False; an opener
    fd = os.open("lines.bin", os.O_RDONLY)
    async with ns.open(fd, "rb", 0, closefd=False) as f:  # unbuffered: the fd's offset is known
        t.note("fd name", f.name == fd, f.mode)
        await S("fd read", lambda: f.read(6))
    t.note("fd still open", os.fstat(fd).st_size)
    async with ns.open(fd, "rb") as f:
        await S("fd read again", lambda: f.readline())
    await S("fd closed with the file", lambda: _fstat_size(fd))
    await S("closefd=False with a path", lambda: ns.open("lines.bin", "rb", closefd=False))
    opened: List[Any] = []

    def opener(path: Any, flags: int) -> int:
        opened.append((path, flags & (os.O_CREAT | os.O_TRUNC | os.O_ACCMODE | os.O_CLOEXEC)))
        return os.open(path, flags, 0o600)

    async with ns.open("opened.bin", "wb", opener=opener) as f:
        await S("opener write", lambda: f.write(b"opened"))
    t.note("opener calls", opened, stat_mod.S_IMODE(os.stat("opened.bin").st_mode))
    await S("opener returning -1", lambda: ns.open("opened.bin", "rb", opener=lambda p, fl: -1))
    # -- await open() and close() by hand
    f = await ns.open("lines.bin", "rb")
    await S("awaited open read", lambda: f.read(5))
    await S("awaited open close", lambda: f.close())
    t.note("awaited open closed", f.closed)


async def _fstat_size(fd: int) -> int:
    return os.fstat(fd).st_size


async def _first(aw: Awaitable[Any], n: int) -> Any:
    """The first *n* items of what *aw* gives (``peek``'s result depends on
    the read-ahead beyond them)."""
    return (await aw)[:n]


async def text_files(ns: Any, t: Transcript) -> None:
    S = t.step
    # -- "w": writes, tells, the attributes
    async with ns.open("t.txt", "w", encoding="utf-8") as f:
        t.note("w attributes", f.mode, f.name, f.encoding, f.errors, f.line_buffering,
               f.newlines, f.closed, isinstance(f.fileno(), int))
        await S("w readable", lambda: f.readable())
        await S("w writable", lambda: f.writable())
        await S("w seekable", lambda: f.seekable())
        await S("w isatty", lambda: f.isatty())
        await S("write", lambda: f.write("héllo wörld\n"))
        await S("write empty", lambda: f.write(""))
        await S("write bytes", lambda: f.write(b"bytes"))
        await S("writelines", lambda: f.writelines(["€1\n", "😀2\n", "3"]))
        await S("writelines generator", lambda: f.writelines(str(i) for i in range(3)))
        await S("tell", lambda: f.tell())
        await S("flush", lambda: f.flush())
        await S("read on w", lambda: f.read())
        await S("readline on w", lambda: f.readline())
        await S("seek 0", lambda: f.seek(0))
        await S("overwrite", lambda: f.write("H"))
        await S("seek end", lambda: f.seek(0, os.SEEK_END))
        await S("seek cur 0", lambda: f.seek(0, os.SEEK_CUR))
        await S("seek cur nonzero", lambda: f.seek(1, os.SEEK_CUR))
        await S("seek end nonzero", lambda: f.seek(-1, os.SEEK_END))
        await S("seek negative", lambda: f.seek(-1))
        await S("seek bad whence", lambda: f.seek(0, 3))
        await S("truncate", lambda: f.truncate(20))
        await S("tell after truncate", lambda: f.tell())
    t.note("w closed", f.closed)
    await S("write closed", lambda: f.write("x"))
    await S("read closed", lambda: f.read())
    await S("tell closed", lambda: f.tell())
    await S("close twice", lambda: f.close())
    t.disk("w result", "t.txt")
    # -- "r": reads, tell cookies, seeks back to them
    with open("u.txt", "w", encoding="utf-8", newline="") as fh:
        fh.write("aé€😀b\nline two\nthird é line\nlast")
    async with ns.open("u.txt", encoding="utf-8") as f:
        t.note("r attributes", f.mode, f.encoding, f.errors, f.newlines)
        await S("r readable", lambda: f.readable())
        await S("r writable", lambda: f.writable())
        await S("read 2", lambda: f.read(2))
        cookie = await S("tell mid", lambda: f.tell())
        await S("read 3", lambda: f.read(3))
        await S("seek cookie", lambda: f.seek(cookie))
        await S("read 3 again", lambda: f.read(3))
        await S("readline", lambda: f.readline())
        await S("readline 4", lambda: f.readline(4))
        cookie2 = await S("tell in line", lambda: f.tell())
        await S("readline None", lambda: f.readline(None))
        await S("readlines hint 1", lambda: f.readlines(1))
        await S("readlines", lambda: f.readlines())
        await S("read at end", lambda: f.read())
        await S("tell at end", lambda: f.tell())
        await S("seek cookie2", lambda: f.seek(cookie2))
        await S("read rest", lambda: f.read())
        await S("seek 0", lambda: f.seek(0))
        t.note("r async for", [line async for line in f])
        await S("seek 0 again", lambda: f.seek(0))
        await S("read None", lambda: f.read(None))
        await S("write on r", lambda: f.write("x"))
        await S("truncate on r", lambda: f.truncate(0))
        await S("r newlines", lambda: _value(f.newlines))
    # -- "r+", "w+", "a", "a+", "x" in text
    async with ns.open("u.txt", "r+", encoding="utf-8") as f:
        await S("r+ read 4", lambda: f.read(4))
        await S("r+ seek to tell", lambda: _seek_tell(f))
        await S("r+ write", lambda: f.write("[R+]"))
        await S("r+ tell", lambda: f.tell())
        await S("r+ readline", lambda: f.readline())
        await S("r+ seek 0", lambda: f.seek(0))
        await S("r+ read all", lambda: f.read())
        await S("r+ truncate 9", lambda: f.truncate(9))
        await S("r+ seek 0 again", lambda: f.seek(0))
        await S("r+ read truncated", lambda: f.read())
    t.disk("r+ result", "u.txt")
    async with ns.open("wp.txt", "w+", encoding="utf-8") as f:
        await S("w+ write", lambda: f.write("one\ntwo\nthree\n"))
        await S("w+ tell", lambda: f.tell())
        await S("w+ seek 0", lambda: f.seek(0))
        await S("w+ readline", lambda: f.readline())
        await S("w+ seek to tell", lambda: _seek_tell(f))
        await S("w+ write", lambda: f.write("TWO\n"))
        await S("w+ seek 0 again", lambda: f.seek(0))
        await S("w+ readlines", lambda: f.readlines())
    async with ns.open("wp.txt", "a", encoding="utf-8") as f:
        t.note("a attributes", f.mode)
        await S("a tell", lambda: f.tell())
        await S("a write", lambda: f.write("four\n"))
        await S("a tell after", lambda: f.tell())
        await S("a read", lambda: f.read())
    async with ns.open("wp.txt", "a+", encoding="utf-8") as f:
        t.note("a+ attributes", f.mode)
        await S("a+ read at end", lambda: f.read())
        await S("a+ seek 0", lambda: f.seek(0))
        await S("a+ readline", lambda: f.readline())
        await S("a+ seek to tell", lambda: _seek_tell(f))
        await S("a+ write", lambda: f.write("five\n"))
        await S("a+ tell", lambda: f.tell())
        await S("a+ seek 0 again", lambda: f.seek(0))
        await S("a+ read all", lambda: f.read())
    t.disk("a result", "wp.txt")
    async with ns.open("x.txt", "x", encoding="utf-8") as f:
        t.note("x attributes", f.mode)
        await S("x write", lambda: f.write("x\n"))
    await S("x existing", lambda: ns.open("x.txt", "x"))
    async with ns.open("xp.txt", "x+", encoding="utf-8") as f:
        await S("x+ write", lambda: f.write("xp\n"))
        await S("x+ seek", lambda: f.seek(0))
        await S("x+ read", lambda: f.read())
    # -- encodings and errors
    for encoding in ("latin-1", "utf-16", "utf-8-sig", "utf-32", "cp1252", "ascii"):
        async with ns.open(f"enc-{encoding}.txt", "w", encoding=encoding,
                           errors="backslashreplace") as f:
            await S(f"{encoding} write", lambda: f.write("aé€\nb\n"))
            await S(f"{encoding} tell", lambda: f.tell())
        async with ns.open(f"enc-{encoding}.txt", "a", encoding=encoding) as f:
            await S(f"{encoding} append", lambda: f.write("c\n"))  # no second BOM
        t.disk(f"{encoding} bytes", f"enc-{encoding}.txt")
        async with ns.open(f"enc-{encoding}.txt", encoding=encoding) as f:
            await S(f"{encoding} read 2", lambda: f.read(2))
            cookie = await S(f"{encoding} tell", lambda: f.tell())
            await S(f"{encoding} readline", lambda: f.readline())
            await S(f"{encoding} seek", lambda cookie=cookie: f.seek(cookie))
            await S(f"{encoding} readlines", lambda: f.readlines())
    with open("bad.txt", "wb") as fh:
        fh.write(b"ok \xff\xfe bad \xc3\xa9 \xe2\x82 end\n")
    for errors in ("strict", "replace", "ignore", "surrogateescape", "backslashreplace"):
        async with ns.open("bad.txt", encoding="utf-8", errors=errors) as f:
            t.note(f"errors={errors}", f.errors)
            await S(f"{errors} read", lambda: f.read())
    async with ns.open("enc.txt", "w", encoding="ascii", errors="strict") as f:
        await S("ascii strict write", lambda: f.write("é"))
    async with ns.open("enc.txt", "w", encoding="ascii", errors="xmlcharrefreplace") as f:
        await S("ascii xmlcharrefreplace write", lambda: f.write("é€"))
    t.disk("xmlcharrefreplace result", "enc.txt")
    # -- line buffering (buffering=1) and a small buffer
    async with ns.open("lb.txt", "w", 1, encoding="utf-8") as f:
        t.note("line_buffering", f.line_buffering)
        await S("lb write", lambda: f.write("a\nb"))
        t.disk("lb on disk", "lb.txt")
    async with ns.open("lb.txt", "r", 3, encoding="utf-8") as f:
        await S("small buffer read", lambda: f.read())
    # -- a large file: line by line with tell, and by iteration
    big = big_text()
    with open("big.txt", "w", encoding="utf-8", newline="") as fh:
        fh.write(big)
    async with ns.open("big.txt", encoding="utf-8") as f:
        lines, tells = [], []
        while True:
            line = await f.readline()
            if not line:
                break
            lines.append(line)
            if len(lines) % 97 == 0:
                tells.append(await f.tell())
        t.note("big readline", len(lines), hash(tuple(lines)), tells)
        await S("big seek 0", lambda: f.seek(0))
        chunks = []
        while True:
            chunk = await f.read(1000)
            if not chunk:
                break
            chunks.append(chunk)
        t.note("big read 1000", "".join(chunks) == "".join(lines), len(chunks))
        await S("big seek to a tell", lambda: f.seek(tells[len(tells) // 2]))
        await S("big readline after seek", lambda: f.readline())
    async with ns.open("big.txt", encoding="utf-8", newline="") as f:
        got = [line async for line in f]
        t.note("big newline='' async for", len(got), "".join(got) == big)


async def _seek_tell(f: Any) -> int:
    """``f.seek(f.tell())``: what a program does before writing after a read."""
    return await f.seek(await f.tell())  # type: ignore[no-any-return]


async def _value(v: Any) -> Any:
    return v


async def newline_modes(ns: Any, t: Transcript) -> None:
    S = t.step
    mixed = MIXED.encode("utf-8")
    with open("mixed.txt", "wb") as fh:
        fh.write(mixed)
    for newline in NEWLINES:
        tag = f"newline={newline!r}"
        # writing: how "\n" goes to disk
        async with ns.open(f"nl-{NEWLINES.index(newline)}.txt", "w", encoding="utf-8",
                           newline=newline) as f:
            await S(f"{tag} write", lambda: f.write(MIXED_WRITE))
            await S(f"{tag} writelines", lambda: f.writelines(["x\n", "y\r\n", "z\r"]))
            await S(f"{tag} tell", lambda: f.tell())
        t.disk(f"{tag} on disk", f"nl-{NEWLINES.index(newline)}.txt")
        # reading: readline with tell, then seeks back
        async with ns.open("mixed.txt", encoding="utf-8", newline=newline) as f:
            cookies = []
            while True:
                cookies.append(await f.tell())
                line = await S(f"{tag} readline", lambda: f.readline())
                if not line:
                    break
            t.note(f"{tag} tells", cookies)
            await S(f"{tag} newlines", lambda: _value(f.newlines))
            for c in cookies[::2]:
                await S(f"{tag} seek", lambda c=c: f.seek(c))
                await S(f"{tag} readline after seek", lambda: f.readline())
            await S(f"{tag} seek 0", lambda: f.seek(0))
            await S(f"{tag} read 6", lambda: f.read(6))
            await S(f"{tag} read 5", lambda: f.read(5))
            await S(f"{tag} readline 2", lambda: f.readline(2))
            await S(f"{tag} read", lambda: f.read())
            await S(f"{tag} seek 0 again", lambda: f.seek(0))
            await S(f"{tag} readlines", lambda: f.readlines())
            await S(f"{tag} seek 0 for iteration", lambda: f.seek(0))
            t.note(f"{tag} async for", [line async for line in f])
        # the same through a 1-character-at-a-time read, which splits "\r\n"
        async with ns.open("mixed.txt", encoding="utf-8", newline=newline) as f:
            chars = []
            while True:
                c = await f.read(1)
                if not c:
                    break
                chars.append(c)
            t.note(f"{tag} read 1", chars)


async def open_arguments(ns: Any, t: Transcript) -> None:
    S = t.step
    os.mkdir("adir")
    with open("afile", "wb") as fh:
        fh.write(b"data")
    for label, args, kwargs in [
        ("missing", ("missing",), {}),
        ("missing bytes path", (b"missing",), {}),
        ("missing pathlike", (pathlib.Path("missing"),), {}),
        ("missing in missing dir", ("nodir/missing", "w"), {}),
        ("through a file", ("afile/x",), {}),
        ("directory", ("adir",), {}),
        ("directory rb", ("adir", "rb"), {}),
        ("directory w", ("adir", "w"), {}),
        ("bad mode", ("afile", "rw"), {}),
        ("bad mode chars", ("afile", "rq"), {}),
        ("mode not str", ("afile", 3), {}),
        ("binary encoding", ("afile", "rb"), {"encoding": "utf-8"}),
        ("binary errors", ("afile", "rb"), {"errors": "strict"}),
        ("binary newline", ("afile", "rb"), {"newline": "\n"}),
        ("text unbuffered", ("afile", "r", 0), {}),
        ("bad newline", ("afile",), {"newline": "x"}),
        ("bad encoding", ("afile",), {"encoding": "no-such-codec"}),
        ("not a text encoding", ("afile",), {"encoding": "hex"}),
        ("path not str", (1.5,), {}),
    ]:
        async def attempt(args: Any = args, kwargs: Any = kwargs) -> Any:
            async with ns.open(*args, **kwargs) as f:
                return await f.read()
        await S(f"open {label}", attempt)
    # pathlike and bytes paths that work
    async with ns.open(pathlib.Path("afile"), "rb") as f:
        t.note("pathlike name", f.name)
        await S("pathlike read", lambda: f.read())
    async with ns.open(b"afile", "rb") as f:
        t.note("bytes name", f.name)
        await S("bytes read", lambda: f.read())
    # permission denied (when not root) and read-only file written
    os.chmod("afile", 0o444)
    try:
        if os.geteuid() != 0:
            await S("open read-only for writing", lambda: ns.open("afile", "r+b"))
    finally:
        os.chmod("afile", 0o644)


async def os_functions(ns: Any, t: Transcript) -> None:
    S = t.step
    aos = ns.os
    await S("mkdir", lambda: aos.mkdir("d"))
    await S("mkdir existing", lambda: aos.mkdir("d"))
    await S("mkdir no parent", lambda: aos.mkdir("nx/y"))
    await S("mkdir mode", lambda: aos.mkdir("m", 0o700))
    await S("stat mkdir mode", lambda: aos.stat("m"))
    await S("makedirs", lambda: aos.makedirs("d/x/y/z"))
    await S("makedirs existing", lambda: aos.makedirs("d/x/y/z"))
    await S("makedirs exist_ok", lambda: aos.makedirs("d/x/y/z", exist_ok=True))
    await S("makedirs mode", lambda: aos.makedirs("e/f", 0o750))
    await S("stat makedirs mode", lambda: aos.stat("e/f"))
    async with ns.open("d/f", "wb") as f:
        await f.write(b"hello, world\n")
    await S("makedirs over a file", lambda: aos.makedirs("d/f/g", exist_ok=True))
    await S("stat", lambda: aos.stat("d/f"))
    await S("stat dir", lambda: aos.stat("d"))
    await S("stat missing", lambda: aos.stat("missing"))
    await S("stat bytes", lambda: aos.stat(b"d/f"))
    await S("stat pathlike", lambda: aos.stat(pathlib.Path("d/f")))
    await S("stat through a file", lambda: aos.stat("d/f/x"))
    st = await aos.stat("d/f")
    ref = os.stat("d/f")
    t.note("stat_result", type(st).__name__, len(st), st.st_size, st.st_mode == ref.st_mode,
           st.st_ino == ref.st_ino, st.st_dev == ref.st_dev, st.st_mtime_ns == ref.st_mtime_ns,
           st.st_atime == ref.st_atime, st.st_ctime == ref.st_ctime, st.st_blksize == ref.st_blksize,
           st.st_blocks == ref.st_blocks, st.st_rdev == ref.st_rdev, st[stat_mod.ST_SIZE],
           st[stat_mod.ST_MTIME] == ref[stat_mod.ST_MTIME], tuple(st) == tuple(ref))
    await S("symlink", lambda: aos.symlink("f", "d/l"))
    await S("symlink existing", lambda: aos.symlink("f", "d/l"))
    await S("symlink dangling", lambda: aos.symlink("nowhere", "d/dangling"))
    await S("readlink", lambda: aos.readlink("d/l"))
    await S("readlink bytes", lambda: aos.readlink(b"d/l"))
    await S("readlink not a link", lambda: aos.readlink("d/f"))
    await S("readlink missing", lambda: aos.readlink("missing"))
    await S("stat link", lambda: aos.stat("d/l"))
    await S("lstat link", lambda: aos.lstat("d/l"))
    await S("lstat file", lambda: aos.lstat("d/f"))
    await S("stat dangling", lambda: aos.stat("d/dangling"))
    await S("lstat dangling", lambda: aos.lstat("d/dangling"))
    await S("lstat missing", lambda: aos.lstat("missing"))
    lst = await aos.lstat("d/l")
    t.note("lstat_result", stat_mod.S_ISLNK(lst.st_mode), lst.st_size,
           lst.st_ino == os.lstat("d/l").st_ino)
    await S("link", lambda: aos.link("d/f", "d/h"))
    await S("stat nlink", lambda: aos.stat("d/f"))
    await S("link existing", lambda: aos.link("d/f", "d/h"))
    await S("link missing", lambda: aos.link("missing", "d/h2"))
    await S("rename", lambda: aos.rename("d/h", "d/h2"))
    await S("rename missing", lambda: aos.rename("missing", "d/zz"))
    await S("rename into missing dir", lambda: aos.rename("d/h2", "nx/h2"))
    await S("rename dir onto non-empty dir", lambda: aos.rename("m", "d"))
    await S("rename file onto dir", lambda: aos.rename("d/h2", "m"))
    await S("replace", lambda: aos.replace("d/h2", "d/f2"))
    await S("replace onto existing", lambda: aos.replace("d/f2", "d/l"))
    await S("lstat replaced", lambda: aos.lstat("d/l"))
    await S("replace missing", lambda: aos.replace("missing", "d/l"))
    await S("renames", lambda: aos.renames("d/l", "r/s/t"))
    await S("renames missing", lambda: aos.renames("missing", "r2/x"))
    await S("renames prunes", lambda: aos.renames("e/f", "ef"))
    await S("listdir", lambda: aos.listdir("."))
    await S("listdir d", lambda: aos.listdir("d"))
    await S("listdir bytes", lambda: aos.listdir(b"d"))
    await S("listdir missing", lambda: aos.listdir("missing"))
    await S("listdir file", lambda: aos.listdir("d/f"))
    it = await S("scandir", lambda: _entries_of(aos.scandir("d")))
    del it
    await S("scandir missing", lambda: aos.scandir("missing"))
    await S("access", lambda: aos.access("d/f", os.R_OK | os.W_OK))
    await S("access x", lambda: aos.access("d/f", os.X_OK))
    await S("access missing", lambda: aos.access("missing", os.F_OK))
    await S("remove", lambda: aos.remove("d/dangling"))
    await S("remove missing", lambda: aos.remove("missing"))
    await S("remove dir", lambda: aos.remove("m"))
    await S("unlink", lambda: aos.unlink("r/s/t"))
    await S("unlink missing", lambda: aos.unlink("missing"))
    await S("rmdir non-empty", lambda: aos.rmdir("d"))
    await S("rmdir missing", lambda: aos.rmdir("missing"))
    await S("rmdir file", lambda: aos.rmdir("d/f"))
    await S("rmdir", lambda: aos.rmdir("m"))
    await S("removedirs", lambda: aos.removedirs("d/x/y/z"))
    await S("after removedirs", lambda: aos.listdir("d"))
    await S("removedirs all", lambda: aos.removedirs("r/s"))
    await S("removedirs missing", lambda: aos.removedirs("missing"))
    await S("listdir after", lambda: aos.listdir("."))
    # sendfile: an offset, the position, the end
    with open("src", "wb") as fh:
        fh.write(bytes(range(256)) * 40)
    src = os.open("src", os.O_RDONLY)
    dst = os.open("dst", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        await S("sendfile at offset", lambda: aos.sendfile(dst, src, 100, 1000))
        t.note("src position", os.lseek(src, 0, os.SEEK_CUR))
        await S("sendfile at position", lambda: aos.sendfile(dst, src, None, 5000))
        t.note("src position", os.lseek(src, 0, os.SEEK_CUR))
        await S("sendfile to the end", lambda: aos.sendfile(dst, src, None, 100_000))
        await S("sendfile past end", lambda: aos.sendfile(dst, src, 100_000, 10))
        await S("sendfile bad fd", lambda: aos.sendfile(dst, 987654, 0, 10))
    finally:
        os.close(src)
        os.close(dst)
    t.disk("sendfile result", "dst")


async def _entries_of(scan: Awaitable[Any]) -> List[Any]:
    with await scan as entries:
        return sorted((e.name, e.path, e.is_dir(), e.is_file(), e.is_symlink(),
                       e.is_file(follow_symlinks=False), e.stat(follow_symlinks=False).st_size
                       if not e.is_dir() else None) for e in entries)


async def os_path_functions(ns: Any, t: Transcript) -> None:
    S = t.step
    path = ns.os.path
    os.makedirs("p/sub")
    with open("p/file", "wb") as fh:
        fh.write(b"12345")
    os.symlink("file", "p/link")
    os.symlink("nowhere", "p/dangling")
    os.symlink("sub", "p/dirlink")
    os.utime("p/file", ns=(1_600_000_000_123_456_789, 1_500_000_000_987_654_321))
    for p in ("p/file", "p/sub", "p/link", "p/dangling", "p/dirlink", "missing", "p/file/x",
              b"p/file", pathlib.Path("p/sub"), ""):
        for fn in ("exists", "isfile", "isdir", "islink"):
            await S(f"{fn} {p!r}", lambda fn=fn, p=p: getattr(path, fn)(p))
    await S("getsize", lambda: path.getsize("p/file"))
    await S("getsize link", lambda: path.getsize("p/link"))
    await S("getsize missing", lambda: path.getsize("missing"))
    await S("getmtime", lambda: path.getmtime("p/file"))
    await S("getatime", lambda: path.getatime("p/file"))
    await S("getctime equals stat", lambda: _eq(path.getctime("p/file"),
                                                os.stat("p/file").st_ctime))
    await S("getmtime missing", lambda: path.getmtime("missing"))
    await S("getatime missing", lambda: path.getatime("missing"))
    await S("getctime missing", lambda: path.getctime("missing"))
    await S("samefile", lambda: path.samefile("p/file", "p/link"))
    await S("samefile no", lambda: path.samefile("p/file", "p/sub"))
    await S("samefile missing", lambda: path.samefile("missing", "p/file"))
    await S("samefile missing 2", lambda: path.samefile("p/file", "missing"))
    await S("abspath", lambda: _rel(path.abspath("p/file")))
    await S("abspath dots", lambda: _rel(path.abspath("p/./sub/../file")))
    await S("abspath absolute", lambda: path.abspath("/a/./b/../c"))
    await S("abspath bytes", lambda: path.abspath(b"/a//b"))
    await S("abspath pathlike", lambda: _rel(path.abspath(pathlib.Path("p"))))


async def _eq(aw: Awaitable[Any], value: Any) -> bool:
    return bool(await aw == value)


async def _rel(aw: Awaitable[Any]) -> Any:
    """An absolute path from ``abspath`` as relative to this run's directory."""
    got = await aw
    return (os.path.isabs(got), os.path.relpath(got))


async def tempfiles(ns: Any, t: Transcript) -> None:
    S = t.step
    atf = ns.tempfile
    here = os.getcwd()
    # -- NamedTemporaryFile: a visible name, removed at the exit
    async with atf.NamedTemporaryFile(dir=".", prefix="nt", suffix=".x") as f:
        name = f.name
        t.note("named", os.path.dirname(name) == here, os.path.basename(name)[:2], name[-2:],
               len(os.path.basename(name)), os.path.exists(name), f.mode, f.closed,
               stat_mod.S_IMODE(os.stat(name).st_mode), isinstance(f.fileno(), int))
        await S("named writable", lambda: f.writable())
        await S("named write", lambda: f.write(b"abc\ndef\n"))
        await S("named flush", lambda: f.flush())
        t.disk("named on disk", name)
        await S("named seek", lambda: f.seek(0))
        await S("named readline", lambda: f.readline())
        await S("named read", lambda: f.read())
        await S("named tell", lambda: f.tell())
        await S("named truncate", lambda: f.truncate(2))
        await S("named seek 0", lambda: f.seek(0))
        t.note("named async for", [line async for line in f])
    t.note("named removed", os.path.exists(name))
    async with atf.NamedTemporaryFile("w+", dir=".", delete=False, encoding="utf-8") as f:
        t.note("named text", f.mode, f.encoding)
        await S("named text write", lambda: f.write("text é\nline\n"))
        await S("named text seek", lambda: f.seek(0))
        await S("named text readlines", lambda: f.readlines())
        name = f.name
    t.note("named kept", os.path.exists(name))
    os.unlink(name)
    f = await atf.NamedTemporaryFile(dir=".", mode="wb")
    name = f.name
    t.note("named awaited", os.path.exists(name), f.mode)
    await S("named awaited write", lambda: f.write(b"x"))
    await S("named awaited read", lambda: f.read())
    await S("named awaited close", lambda: f.close())
    t.note("named closed removed", os.path.exists(name), f.closed)
    await S("named in missing dir", lambda: _named_missing(atf))
    # -- TemporaryFile: no name in the directory
    before = sorted(os.listdir("."))
    async with atf.TemporaryFile(dir=".") as f:
        t.note("unnamed", isinstance(f.name, int), sorted(os.listdir(".")) == before, f.mode)
        await S("unnamed write", lambda: f.write(b"xyz" * 1000))
        await S("unnamed seek", lambda: f.seek(2))
        await S("unnamed read", lambda: f.read(5))
        await S("unnamed read1", lambda: f.read1(2))
        buf = bytearray(3)
        await S("unnamed readinto", lambda: f.readinto(buf))
        t.note("unnamed readinto buffer", buf)
    t.note("unnamed gone", sorted(os.listdir(".")) == before)
    async with atf.TemporaryFile("w+", dir=".", encoding="utf-8", newline="") as f:
        t.note("unnamed text", f.mode, f.encoding)
        await S("unnamed text write", lambda: f.write("héllo\r\nthere"))
        await S("unnamed text seek", lambda: f.seek(0))
        await S("unnamed text readline", lambda: f.readline())
        await S("unnamed text read", lambda: f.read())
    # -- SpooledTemporaryFile: in memory, then a file past max_size
    async with atf.SpooledTemporaryFile(max_size=10, dir=".") as f:
        t.note("spooled", f.name, f.mode, f.closed)
        await S("spooled write", lambda: f.write(b"12345"))
        t.note("spooled in memory", f.name is None)
        await S("spooled tell", lambda: f.tell())
        await S("spooled write past max", lambda: f.write(b"6789012"))
        t.note("spooled rolled", isinstance(f.name, int), f.mode)
        await S("spooled tell after", lambda: f.tell())
        await S("spooled seek", lambda: f.seek(3))
        await S("spooled read", lambda: f.read())
        await S("spooled seek 0", lambda: f.seek(0))
        await S("spooled readline", lambda: f.readline())
        await S("spooled truncate", lambda: f.truncate(4))
        await S("spooled seek 0 again", lambda: f.seek(0))
        await S("spooled readlines", lambda: f.readlines())
        await S("spooled flush", lambda: f.flush())
        await S("spooled isatty", lambda: f.isatty())
    t.note("spooled closed", f.closed)
    async with atf.SpooledTemporaryFile(max_size=10, dir=".") as f:
        await S("spooled truncate write", lambda: f.write(b"abc"))
        await S("spooled truncate within", lambda: f.truncate(5))
        t.note("spooled truncate in memory", f.name is None)
        await S("spooled truncate past max", lambda: f.truncate(20))
        t.note("spooled truncate rolled", isinstance(f.name, int))
        await S("spooled truncate seek", lambda: f.seek(0))
        await S("spooled truncate read", lambda: f.read())
    async with atf.SpooledTemporaryFile(max_size=8, dir=".") as f:
        await S("spooled writelines", lambda: f.writelines([b"ab\n", b"cd\n"]))
        t.note("spooled writelines in memory", f.name is None)
        await S("spooled writelines past max", lambda: f.writelines([b"ef\n", b"gh\n"]))
        t.note("spooled writelines rolled", isinstance(f.name, int))
        await S("spooled writelines seek", lambda: f.seek(0))
        await S("spooled writelines read", lambda: f.read())
    async with atf.SpooledTemporaryFile(dir=".") as f:
        await S("spooled no max write", lambda: f.write(b"abc\n" * 100))
        t.note("spooled no max in memory", f.name is None)
        await S("spooled seek 1", lambda: f.seek(1))
        await S("spooled rollover", lambda: f.rollover())
        t.note("spooled after rollover", isinstance(f.name, int))
        await S("spooled tell after rollover", lambda: f.tell())
        await S("spooled read after rollover", lambda: f.read(5))
        await S("spooled rollover again", lambda: f.rollover())
    async with atf.SpooledTemporaryFile(dir=".") as f:
        await S("spooled fileno write", lambda: f.write(b"xyz"))
        fd = await f.fileno()
        t.note("spooled fileno", isinstance(fd, int), isinstance(f.name, int))
        await S("spooled fileno seek", lambda: f.seek(0))
        await S("spooled fileno read", lambda: f.read())
    async with atf.SpooledTemporaryFile(max_size=6, mode="w+", dir=".", encoding="utf-8",
                                        newline="") as f:
        t.note("spooled text", f.mode, f.encoding)
        await S("spooled text write", lambda: f.write("ab\r\n"))
        await S("spooled text seek", lambda: f.seek(0))
        await S("spooled text readline", lambda: f.readline())
        await S("spooled text write past max", lambda: f.write("cdé\nfg"))
        t.note("spooled text rolled", isinstance(f.name, int))
        await S("spooled text seek 0", lambda: f.seek(0))
        await S("spooled text read", lambda: f.read())
    # -- TemporaryDirectory: a path, removed with its contents
    async with atf.TemporaryDirectory(dir=".", prefix="td", suffix="sfx") as d:
        t.note("tempdir", os.path.isdir(d), os.path.basename(d)[:2], d[-3:],
               stat_mod.S_IMODE(os.stat(d).st_mode), os.path.dirname(os.path.abspath(d)) == here)
        os.makedirs(os.path.join(d, "sub"))
        async with ns.open(os.path.join(d, "sub", "file"), "w") as g:
            await g.write("x")
    t.note("tempdir removed", os.path.exists(d))
    td = await atf.TemporaryDirectory(dir=".")
    t.note("tempdir awaited", os.path.isdir(td.name))
    await S("tempdir cleanup", lambda: td.cleanup())
    t.note("tempdir cleaned", os.path.exists(td.name))
    t.note("left behind", sorted(n for n in os.listdir(".")
                                 if n.startswith(("nt", "td", "tmp"))))


async def _named_missing(atf: Any) -> Any:
    try:
        await atf.NamedTemporaryFile(dir="missing", prefix="pre", suffix=".suf")
    except OSError as exc:
        name = os.path.basename(exc.filename)
        raise OSError(exc.errno, exc.strerror, (type(exc).__name__, name[:3], name[-4:], len(name),
                      os.path.relpath(os.path.dirname(exc.filename)))) from None


# -- running it ---------------------------------------------------------------------------


@pytest.fixture
def reference(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> List[Any]:
    """The program's transcript with the builtins, in a directory of its own."""
    d = tmp_path / "builtins"
    d.mkdir()
    monkeypatch.chdir(d)
    lines = asyncio.run(program(builtins_namespace()))
    monkeypatch.chdir(tmp_path)
    return lines


def assert_same(got: List[Any], expected: List[Any]) -> None:
    """Step by step, so a failure names the first step that differs."""
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"step {i} differs:\n  package:  {g!r}\n  builtins: {e!r}"
    assert len(got) == len(expected), (len(got), len(expected))


def test_builtins_transcript_is_sane(reference: List[Any]) -> None:
    """The reference really ran the program: the steps are there, with
    values and errors both."""
    labels = [line[0] for line in reference]
    assert len(labels) > 600
    assert ("open missing", ("raises", "FileNotFoundError", 2, "No such file or directory",
                             "missing", None)) in reference
    assert ("read 5", b"first") in reference
    assert any(line[0] == "big readline" and line[1] > 1000 for line in reference)


def test_program_on_the_stock_loop(reference: List[Any], tmp_path: pathlib.Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``uring.asyncio`` on the stock asyncio loop (a ring attached)."""
    d = tmp_path / "stock"
    d.mkdir()
    monkeypatch.chdir(d)
    got = asyncio.run(program(uring_namespace()))
    assert ua.backend() == "io_uring"
    assert_same(got, reference)


def test_program_on_the_uring_loop(reference: List[Any], tmp_path: pathlib.Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``uring.asyncio`` on ``UringEventLoop``."""
    d = tmp_path / "uring-loop"
    d.mkdir()
    monkeypatch.chdir(d)

    async def main() -> List[Any]:
        assert isinstance(asyncio.get_running_loop(), ua.UringEventLoop)
        return await program(uring_namespace())

    assert_same(ua.run(main()), reference)


def test_program_on_the_thread_fallback(reference: List[Any], tmp_path: pathlib.Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``uring.asyncio`` on its thread fallback (``set_backend("threads")``,
    what runs where io_uring is blocked), on the stock loop."""
    d = tmp_path / "threads"
    d.mkdir()
    monkeypatch.chdir(d)
    # The process-wide choice is put back afterwards (monkeypatch restores it).
    for name in ("_mode", "_source", "_decided", "_warned"):
        monkeypatch.setattr(fallback, name, getattr(fallback, name))
    ua.set_backend("threads")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert ua.backend() == "threads"

    async def main() -> List[Any]:
        got = await program(uring_namespace())
        f = await ua.open("afile", "rb")
        assert type(f).__name__ == "ThreadFile"  # the fallback really ran
        await f.close()
        return got

    assert_same(asyncio.run(main()), reference)


# -- regressions: what the program found, one test each (every one failed before) -------


def test_questions_answer_at_once_and_when_awaited(run: Any, tmp_path: pathlib.Path) -> None:
    """aiofiles awaits ``seekable``/``writable``/``isatty`` and a text
    file's ``readable``; this package's callers read them at once.  Both
    work, the awaited one giving a real bool."""
    p = tmp_path / "q"
    p.write_bytes(b"x")

    async def main() -> None:
        async with ua.open(p, "rb") as f:
            assert f.readable() is True  # aiofiles: direct on a binary file
            assert await f.seekable() is True and await f.writable() is False
            assert await f.isatty() is False
            assert f.seekable() and not f.writable() and f.seekable() == True  # noqa: E712
            assert repr(f.writable()) == "False"
        async with ua.open(p, "r+") as g:
            assert await g.readable() is True and g.readable()
            assert await g.writable() is True

    run(main())


def test_open_errors_are_the_builtins(run: Any, tmp_path: pathlib.Path) -> None:
    """``open``'s ``OSError`` has the builtin's strerror and filename (bytes
    stay bytes), and a directory is refused at the open, not at the first read."""
    (tmp_path / "d").mkdir()

    async def main() -> None:
        with pytest.raises(FileNotFoundError) as info:
            await ua.open(tmp_path / b"missing".decode(), "rb")
        assert info.value.strerror == os.strerror(2)
        assert info.value.filename == str(tmp_path / "missing")
        with pytest.raises(FileNotFoundError) as info:
            await ua.open(os.fsencode(tmp_path / "missing"), "rb")
        assert info.value.filename == os.fsencode(tmp_path / "missing")
        for mode in ("r", "rb"):
            with pytest.raises(IsADirectoryError) as info:
                await ua.open(tmp_path / "d", mode)
            assert (info.value.errno, info.value.filename) == (21, str(tmp_path / "d"))

    before = len(os.listdir("/proc/self/fd"))
    run(main())
    assert len(os.listdir("/proc/self/fd")) == before  # the directory's fd was closed


def test_binary_seek_data_hole_and_einval(run: Any, tmp_path: pathlib.Path) -> None:
    p = tmp_path / "s"
    p.write_bytes(b"0123456789")

    async def main() -> None:
        async with ua.open(p, "rb") as f:
            assert await f.seek(0, os.SEEK_DATA) == 0
            assert await f.seek(0, os.SEEK_HOLE) == 10
            assert await f.read() == b""
            with pytest.raises(OSError) as info:
                await f.seek(-1)
            assert (info.value.errno, info.value.strerror) == (22, os.strerror(22))
            with pytest.raises(OSError) as info:
                await f.seek(20, os.SEEK_DATA)  # past the end: the kernel's ENXIO
            assert info.value.errno == 6

    run(main())


def test_closed_file_errors_in_the_builtins_order(run: Any, tmp_path: pathlib.Path) -> None:
    """A closed buffered file asked what its mode never allowed says
    ``UnsupportedOperation`` (as the builtin's); unbuffered and text files,
    and allowed operations, say closed (``ValueError``)."""
    p = tmp_path / "c"
    p.write_bytes(b"abc")

    async def main() -> None:
        f = await ua.open(p, "ab")
        await f.close()
        with pytest.raises(io.UnsupportedOperation):
            await f.read()
        with pytest.raises(ValueError):
            await f.write(b"x")
        with pytest.raises(ValueError):
            await f.truncate()
        g = await ua.open(p, "rb")
        await g.close()
        with pytest.raises(io.UnsupportedOperation):
            await g.write(b"x")
        with pytest.raises(ValueError):
            await g.truncate()
        h = await ua.open(p, "wb", 0)
        await h.close()
        with pytest.raises(ValueError):
            await h.read()
        text = await ua.open(p, "w")
        await text.close()
        with pytest.raises(ValueError):
            await text.read()

    run(main())


def test_peek_and_readall(run: Any, tmp_path: pathlib.Path) -> None:
    p = tmp_path / "pk"
    p.write_bytes(b"hello world\n")

    async def main() -> None:
        for buffering in (-1, 0, 4):
            async with ua.open(p, "rb", buffering) as f:
                assert (await f.peek(1)).startswith(b"h")
                assert await f.read(2) == b"he"
                assert (await f.peek()).startswith(b"l")
                assert await f.tell() == 2
                assert await f.readall() == b"llo world\n"
                assert await f.peek() == b""

    run(main())


def test_text_readline_none_is_a_type_error(run: Any, tmp_path: pathlib.Path) -> None:
    """As the builtin text file's ``readline`` (the binary one takes None)."""
    p = tmp_path / "t"
    p.write_bytes(b"a\nb\n")

    async def main() -> None:
        async with ua.open(p) as f:
            with pytest.raises(TypeError):
                await f.readline(None)  # type: ignore[arg-type]
            assert await f.readline() == "a\n"
        async with ua.open(p, "rb") as b:
            assert await b.readline(None) == b"a\n"

    run(main())


def test_open_fd_closefd_and_opener(run: Any, tmp_path: pathlib.Path) -> None:
    p = tmp_path / "o"
    p.write_bytes(b"first\nsecond\n")

    async def main() -> None:
        fd = os.open(p, os.O_RDONLY)
        async with ua.open(fd, "rb", closefd=False) as f:
            assert f.name == fd and await f.readline() == b"first\n"
        assert os.lseek(fd, 0, os.SEEK_CUR) == 6  # left at the file's position
        async with ua.open(fd, "rb") as f:
            assert await f.read() == b"second\n"
        with pytest.raises(OSError):
            os.fstat(fd)  # closed with the file
        with pytest.raises(ValueError):
            ua.open(p, closefd=False)
        calls = []

        def opener(path: Any, flags: int) -> int:
            calls.append(path)
            return os.open(path, flags)

        async with ua.open(p, opener=opener) as t:
            assert await t.read() == "first\nsecond\n"
        assert calls == [str(p)]
        with pytest.raises(ValueError):
            await ua.open(p, opener=lambda path, flags: -1)

    run(main())


def test_temporary_file_modes_are_the_stdlibs(run: Any, tmp_path: pathlib.Path) -> None:
    async def main() -> None:
        async with ua.tempfile.NamedTemporaryFile(dir=tmp_path) as f:
            assert f.mode == tempfile.NamedTemporaryFile(dir=tmp_path).mode == "rb+"
        async with ua.tempfile.TemporaryFile("wb", dir=tmp_path) as f:
            assert f.mode == "wb"
        async with ua.tempfile.TemporaryFile("w+", dir=tmp_path) as f:
            assert f.mode == "w+"
        async with ua.tempfile.SpooledTemporaryFile(4, dir=tmp_path) as s:
            assert s.mode == "w+b" and await s.isatty() is False
            await s.write(b"12345")
            assert s.mode == "rb+" and await s.isatty() is False

    run(main())

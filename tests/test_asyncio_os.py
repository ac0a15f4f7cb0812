"""``uring.asyncio.os``, ``uring.asyncio.os.path`` and ``uring.asyncio.tempfile``
against the stdlib they mirror (as ``aiofiles.os``/``ospath``/``tempfile``
mirror it).

The core test is differential: one program, written the aiofiles way
(``await aos.rename(...)``, ``async with atempfile.NamedTemporaryFile()``),
runs once with the package's modules (on both loops) and once with the
stdlib's ``os``, ``os.path`` and ``tempfile`` made awaitable, each in a
fresh directory of its own entered with ``chdir`` (so every path, and so
every ``filename`` of an error, is the same relative one); the two
transcripts of results and errors (class, errno, message, filename,
filename2) must be equal.  ``stat`` is also compared field by field with
``os.stat`` on the same files.
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import os
import pathlib
import stat as stat_mod
import subprocess
import sys
import tempfile
from typing import Any, Callable, List

import pytest

import uring.asyncio as ua
import uring.asyncio.os as aos_mod
import uring.asyncio.tempfile as atempfile_mod

# -- the two loops ------------------------------------------------------------------------



# -- the stdlib, made awaitable (what aiofiles does, minus the thread) ---------------------


def _awaitable(fn: Callable[..., Any]) -> Callable[..., Any]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)
    return call


class _Namespace:
    def __init__(self, module: Any, names: List[str]) -> None:
        for name in names:
            setattr(self, name, _awaitable(getattr(module, name)))


OS_NAMES = ["stat", "lstat", "rename", "renames", "replace", "remove", "unlink", "mkdir",
            "makedirs", "rmdir", "removedirs", "link", "symlink", "readlink", "listdir",
            "scandir", "access", "sendfile", "getcwd", "statvfs"]
PATH_NAMES = ["exists", "lexists", "isfile", "isdir", "islink", "ismount", "getsize",
              "getmtime", "getatime", "getctime", "samefile", "sameopenfile", "abspath"]


def ref_os() -> Any:
    ns = _Namespace(os, OS_NAMES)
    ns.path = _Namespace(os.path, PATH_NAMES)  # type: ignore[attr-defined]
    return ns


class _RefFile:
    """A stdlib temporary file with aiofiles' awaited methods."""

    def __init__(self, f: Any) -> None:
        self._f = f
        self.name = f.name

    @property
    def rolled(self) -> bool:
        return bool(self._f._rolled)

    def fileno(self) -> Any:
        if isinstance(self._f, tempfile.SpooledTemporaryFile):  # aiofiles awaits this one
            return _awaitable(self._f.fileno)()
        return self._f.fileno()

    def __getattr__(self, name: str) -> Any:
        return _awaitable(getattr(self._f, name))

    async def __aenter__(self) -> "_RefFile":
        self._f.__enter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._f.__exit__(*exc)


class _RefContext:
    def __init__(self, make: Callable[[], Any], directory: bool = False) -> None:
        self._make = make
        self._directory = directory

    def __await__(self) -> Any:
        async def made() -> Any:
            obj = self._make()
            return obj if self._directory else _RefFile(obj)
        return made().__await__()

    async def __aenter__(self) -> Any:
        self._obj = self._make()
        if self._directory:
            return self._obj.__enter__()
        self._file = _RefFile(self._obj)
        return await self._file.__aenter__()

    async def __aexit__(self, *exc: Any) -> None:
        if self._directory:
            self._obj.__exit__(*exc)
        else:
            await self._file.__aexit__(*exc)


class ref_tempfile:
    @staticmethod
    def TemporaryFile(*a: Any, **k: Any) -> Any:
        return _RefContext(lambda: tempfile.TemporaryFile(*a, **k))

    @staticmethod
    def NamedTemporaryFile(*a: Any, **k: Any) -> Any:
        return _RefContext(lambda: tempfile.NamedTemporaryFile(*a, **k))

    @staticmethod
    def SpooledTemporaryFile(*a: Any, **k: Any) -> Any:
        return _RefContext(lambda: tempfile.SpooledTemporaryFile(*a, **k))

    @staticmethod
    def TemporaryDirectory(*a: Any, **k: Any) -> Any:
        return _RefContext(lambda: tempfile.TemporaryDirectory(*a, **k), directory=True)


# -- the program --------------------------------------------------------------------------


def _norm(value: Any) -> Any:
    """What a result says, without what differs between two directories
    (inode numbers, times)."""
    if isinstance(value, os.stat_result):
        size = value.st_size if stat_mod.S_ISREG(value.st_mode) or stat_mod.S_ISLNK(value.st_mode) else None
        return ("stat", stat_mod.S_IFMT(value.st_mode), stat_mod.S_IMODE(value.st_mode), size,
                value.st_nlink, value.st_uid, value.st_gid)
    if isinstance(value, list):
        return sorted(value)
    if type(value).__name__ == "ScandirIterator":
        return "ScandirIterator"
    return value


async def program(aos: Any, atempfile: Any) -> List[Any]:
    """Every function, the aiofiles way, in the current directory."""
    out: List[Any] = []

    async def step(label: str, awaitable: Any) -> Any:
        try:
            value = await awaitable
        except OSError as exc:
            out.append((label, type(exc).__name__, exc.errno, str(exc), exc.filename,
                        exc.filename2))
            return None
        out.append((label, "ok", _norm(value)))
        return value

    path = aos.path
    # directories
    await step("mkdir", aos.mkdir("d"))
    await step("mkdir existing", aos.mkdir("d"))
    await step("mkdir no parent", aos.mkdir("nx/y"))
    await step("mkdir mode", aos.mkdir("m", 0o700))
    await step("stat m", aos.stat("m"))
    await step("makedirs", aos.makedirs("d/x/y/z"))
    await step("makedirs existing", aos.makedirs("d/x/y/z"))
    await step("makedirs exist_ok", aos.makedirs("d/x/y/z", exist_ok=True))
    await step("makedirs trailing slash", aos.makedirs("d/x/y/z/", exist_ok=True))
    await step("makedirs pathlike", aos.makedirs(pathlib.Path("p/q")))
    with open("d/f", "wb") as f:
        f.write(b"hello, world\n")
    await step("makedirs over a file", aos.makedirs("d/f/g", exist_ok=True))
    await step("makedirs exist_ok on a file", aos.makedirs("d/f", exist_ok=True))
    # stat
    await step("stat file", aos.stat("d/f"))
    await step("stat dir", aos.stat("d"))
    await step("stat missing", aos.stat("missing"))
    await step("stat missing pathlike", aos.stat(pathlib.Path("missing")))
    await step("stat missing bytes", aos.stat(b"missing"))
    await step("stat empty", aos.stat(""))
    await step("stat through a file", aos.stat("d/f/x"))
    await step("lstat missing", aos.lstat("missing"))
    # symlinks
    await step("symlink", aos.symlink("f", "d/l"))
    await step("symlink existing", aos.symlink("f", "d/l"))
    await step("symlink dangling", aos.symlink("nowhere", "d/dangling"))
    await step("symlink no dir", aos.symlink("f", "nx/l"))
    await step("readlink", aos.readlink("d/l"))
    await step("readlink bytes", aos.readlink(b"d/l"))
    await step("readlink of a file", aos.readlink("d/f"))
    await step("readlink missing", aos.readlink("missing"))
    await step("stat link", aos.stat("d/l"))
    await step("lstat link", aos.lstat("d/l"))
    await step("stat nofollow", aos.stat("d/l", follow_symlinks=False))
    await step("stat dangling", aos.stat("d/dangling"))
    await step("lstat dangling", aos.lstat("d/dangling"))
    # hard links
    await step("link", aos.link("d/f", "d/h"))
    await step("stat nlink", aos.stat("d/f"))
    await step("link existing", aos.link("d/f", "d/h"))
    await step("link missing", aos.link("missing", "d/h2"))
    await step("link a symlink", aos.link("d/l", "d/hl"))
    await step("lstat linked symlink", aos.lstat("d/hl"))
    await step("link follow", aos.link("d/l", "d/hf", follow_symlinks=False))
    await step("lstat hf", aos.lstat("d/hf"))
    # rename, replace
    await step("rename", aos.rename("d/h", "d/h2"))
    await step("rename missing", aos.rename("missing", "d/zz"))
    await step("rename into missing dir", aos.rename("d/h2", "nx/h2"))
    await step("rename dir onto non-empty dir", aos.rename("m", "d"))
    await step("rename file onto dir", aos.rename("d/h2", "m"))
    await step("replace", aos.replace("d/h2", "d/hl"))
    await step("replace missing", aos.replace("missing", "d/hl"))
    await step("lstat replaced", aos.lstat("d/hl"))
    await step("renames", aos.renames("d/hl", "r/s/t"))
    await step("renames missing", aos.renames("missing", "r2/x"))
    await step("listdir r2", aos.listdir("."))
    await step("renames prunes", aos.renames("p/q", "pq"))
    await step("p gone", path.exists("p"))
    # listing
    await step("listdir", aos.listdir("d"))
    await step("listdir bytes", aos.listdir(b"d"))
    await step("listdir missing", aos.listdir("missing"))
    await step("listdir file", aos.listdir("d/f"))
    it = await step("scandir", aos.scandir("d"))
    if it is not None:
        with it as entries:
            out.append(sorted((e.name, e.is_dir(), e.is_file(), e.is_symlink(),
                               e.is_file(follow_symlinks=False), e.path) for e in entries))
    await step("scandir missing", aos.scandir("missing"))
    # access
    await step("access", aos.access("d/f", os.R_OK | os.W_OK))
    await step("access x", aos.access("d/f", os.X_OK))
    await step("access missing", aos.access("missing", os.F_OK))
    # os.path
    for p in ("d/f", "d", "d/l", "d/dangling", "missing", "d/f/x", b"d/f", pathlib.Path("d")):
        for fn in ("exists", "lexists", "isfile", "isdir", "islink", "ismount"):
            await step(f"{fn} {p!r}", getattr(path, fn)(p))
    await step("getsize", path.getsize("d/f"))
    await step("getsize missing", path.getsize("missing"))
    for fn, field in (("getmtime", "st_mtime"), ("getatime", "st_atime"), ("getctime", "st_ctime")):
        t = await path.__getattribute__(fn)("d/f")
        out.append((fn, type(t).__name__, t == getattr(os.stat("d/f"), field)))
        await step(f"{fn} missing", getattr(path, fn)("missing"))
    await step("samefile", path.samefile("d/f", "d/l"))
    await step("samefile no", path.samefile("d/f", "d"))
    await step("samefile missing 1", path.samefile("missing", "d"))
    await step("samefile missing 2", path.samefile("d", "missing"))
    fd1, fd2 = os.open("d/f", os.O_RDONLY), os.open("d/l", os.O_RDONLY)
    await step("sameopenfile", path.sameopenfile(fd1, fd2))
    os.close(fd1)
    os.close(fd2)
    a = await path.abspath("d/f")
    out.append(("abspath", os.path.relpath(a), os.path.isabs(a)))
    await step("abspath absolute", path.abspath("/a/./b/../c"))
    await step("abspath bytes", path.abspath(b"/a//b"))
    out.append(("getcwd", await aos.getcwd() == os.getcwd()))
    out.append(("statvfs", (await aos.statvfs(".")).f_bsize == os.statvfs(".").f_bsize))
    # removal
    await step("remove link", aos.remove("d/l"))
    await step("remove missing", aos.remove("missing"))
    await step("unlink dir", aos.unlink("d"))
    await step("unlink missing", aos.unlink("missing"))
    await step("rmdir non-empty", aos.rmdir("d"))
    await step("rmdir missing", aos.rmdir("missing"))
    await step("rmdir file", aos.rmdir("d/f"))
    await step("removedirs", aos.removedirs("d/x/y/z"))
    await step("after removedirs", aos.listdir("d"))
    await step("removedirs missing", aos.removedirs("missing"))
    await step("removedirs non-empty", aos.removedirs("d"))
    await step("removedirs all", aos.removedirs("r/s"))
    await step("rmdir m", aos.rmdir("m"))
    # dir_fd
    dfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY)
    try:
        await step("stat dir_fd", aos.stat("f", dir_fd=dfd))
        await step("stat dir_fd missing", aos.stat("missing", dir_fd=dfd))
        await step("mkdir dir_fd", aos.mkdir("k", dir_fd=dfd))
        await step("symlink dir_fd", aos.symlink("k", "kl", dir_fd=dfd))
        await step("lstat dir_fd", aos.lstat("kl", dir_fd=dfd))
        await step("link dir_fd", aos.link("f", "f2", src_dir_fd=dfd, dst_dir_fd=dfd))
        await step("rename dir_fd", aos.rename("f2", "f3", src_dir_fd=dfd, dst_dir_fd=dfd))
        await step("remove dir_fd", aos.remove("f3", dir_fd=dfd))
        await step("remove dir_fd missing", aos.remove("f3", dir_fd=dfd))
        await step("remove kl", aos.unlink("kl", dir_fd=dfd))
        await step("rmdir dir_fd", aos.rmdir("k", dir_fd=dfd))
        await step("stat fd", aos.stat(dfd))
        await step("readlink dir_fd", aos.readlink("dangling", dir_fd=dfd))
        await step("access dir_fd", aos.access("f", os.R_OK, dir_fd=dfd))
    finally:
        os.close(dfd)
    await step("stat bad fd", aos.stat(987654))
    # sendfile
    with open("src", "wb") as f:
        f.write(bytes(range(256)) * 40)
    src = os.open("src", os.O_RDONLY)
    dst = os.open("dst", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        await step("sendfile at offset", aos.sendfile(dst, src, 100, 1000))
        out.append(("src position", os.lseek(src, 0, os.SEEK_CUR)))
        await step("sendfile at position", aos.sendfile(dst, src, None, 5000))
        out.append(("src position", os.lseek(src, 0, os.SEEK_CUR)))
        await step("sendfile at end", aos.sendfile(dst, src, None, 100000))
        await step("sendfile past end", aos.sendfile(dst, src, 100000, 10))
        await step("sendfile bad fd", aos.sendfile(dst, 987654, 0, 10))
    finally:
        os.close(src)
        os.close(dst)
    with open("dst", "rb") as fh:
        out.append(("dst", fh.read() == (bytes(range(256)) * 40)[100:1100] + (bytes(range(256)) * 40)[:5000]))
    # tempfile
    here = os.getcwd()
    async with atempfile.NamedTemporaryFile(dir=".", prefix="nt", suffix=".x") as f:
        out.append(("named", os.path.dirname(f.name) == here, os.path.basename(f.name)[:2],
                    f.name[-2:], len(os.path.basename(f.name)), os.path.exists(f.name)))
        out.append(("named mode", stat_mod.S_IMODE(os.stat(f.name).st_mode)))
        out.append(("write", await f.write(b"abc\ndef\n")))
        out.append(("seek", await f.seek(0)))
        out.append(("read", await f.read()))
        out.append(("tell", await f.tell()))
        out.append(("fileno", isinstance(f.fileno(), int)))
        name = f.name
    out.append(("named removed", os.path.exists(name)))
    async with atempfile.NamedTemporaryFile("w+", dir=".", delete=False) as f:
        await f.write("text\n")
        await f.seek(0)
        out.append(("text read", await f.read()))
        name = f.name
    out.append(("kept", os.path.exists(name)))
    os.unlink(name)
    f = await atempfile.NamedTemporaryFile(dir=".")
    name = f.name
    out.append(("awaited", os.path.exists(name)))
    await f.close()
    out.append(("closed removes", os.path.exists(name)))
    before = sorted(os.listdir("."))
    async with atempfile.TemporaryFile(dir=".") as f:
        out.append(("unnamed", isinstance(f.name, int), sorted(os.listdir(".")) == before))
        await f.write(b"xyz" * 1000)
        await f.seek(2)
        out.append(("unnamed read", await f.read(5)))
    out.append(("unnamed gone", sorted(os.listdir(".")) == before))
    async with atempfile.TemporaryFile("w+", dir=".") as f:
        await f.write("héllo")
        await f.seek(0)
        out.append(("unnamed text", await f.read()))
    try:
        await atempfile.NamedTemporaryFile(dir="missing", prefix="pre", suffix=".suf")
    except OSError as exc:
        name = os.path.basename(exc.filename)
        out.append(("tempfile missing dir", type(exc).__name__, exc.errno, exc.filename2,
                    os.path.dirname(exc.filename) == os.path.join(here, "missing"),
                    name[:3], name[-4:], len(name), str(exc).replace(exc.filename, "NAME")))
    async with atempfile.SpooledTemporaryFile(max_size=10, dir=".") as f:
        await f.write(b"12345")
        out.append(("spooled", f.rolled, await f.tell()))
        await f.write(b"6789012")
        out.append(("spooled rolled", f.rolled, await f.tell()))
        await f.seek(3)
        out.append(("spooled read", await f.read()))
    async with atempfile.SpooledTemporaryFile(dir=".") as f:
        await f.write(b"abc")
        out.append(("spooled no max", f.rolled))
        await f.seek(1)
        out.append(("spooled fileno", isinstance(await f.fileno(), int), f.rolled,
                    await f.tell(), await f.read()))
    async with atempfile.SpooledTemporaryFile(max_size=4, mode="w+", dir=".") as f:
        await f.write("ab\ncd\n")
        await f.seek(0)
        out.append(("spooled text", f.rolled, await f.read()))
    async with atempfile.TemporaryDirectory(dir=".", prefix="td") as d:
        out.append(("tempdir", os.path.isdir(d), os.path.basename(d)[:2],
                    stat_mod.S_IMODE(os.stat(d).st_mode)))
        os.mkdir(os.path.join(d, "sub"))
        with open(os.path.join(d, "sub", "file"), "w") as f2:
            f2.write("x")
    out.append(("tempdir removed", os.path.exists(d)))
    t = await atempfile.TemporaryDirectory(dir=".")
    out.append(("tempdir awaited", os.path.isdir(t.name)))
    await _maybe(t.cleanup())
    out.append(("tempdir cleanup", os.path.exists(t.name)))
    out.append(("left", sorted(os.listdir("."))))
    return out


async def _maybe(x: Any) -> Any:
    return await x if asyncio.iscoroutine(x) else x


def test_the_program_gives_the_stdlib_results(run: Any, tmp_path: pathlib.Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "stdlib").mkdir()
    (tmp_path / "uring").mkdir()
    monkeypatch.chdir(tmp_path / "stdlib")
    expected = asyncio.run(program(ref_os(), ref_tempfile))
    monkeypatch.chdir(tmp_path / "uring")
    got = run(program(ua.os, ua.tempfile))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g == e
    assert ("stat missing", "FileNotFoundError", errno.ENOENT,
            "[Errno 2] No such file or directory: 'missing'", "missing", None) in got


# -- stat, field by field -----------------------------------------------------------------


def _fields(st: os.stat_result) -> dict:
    return {name: getattr(st, name) for name in dir(st) if name.startswith("st_")}


def test_stat_is_os_stat(run: Any, tmp_path: pathlib.Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x" * 12345)
    os.utime(f, ns=(1_234_567_891_123_456_789, 987_654_321_987_654_321))
    (tmp_path / "l").symlink_to("f")
    (tmp_path / "dl").symlink_to("nowhere")
    paths: List[Any] = [f, str(tmp_path), str(tmp_path / "l"), bytes(tmp_path / "f"),
                        "/dev/null", "/proc/self", "/"]

    async def main() -> None:
        for p in paths:
            for follow in (True, False):
                ours = await ua.os.stat(p, follow_symlinks=follow)
                theirs = os.stat(p, follow_symlinks=follow)
                assert _fields(ours) == _fields(theirs), p
                assert tuple(ours) == tuple(theirs)
            assert _fields(await ua.os.lstat(p)) == _fields(os.lstat(p))
        assert _fields(await ua.os.lstat(tmp_path / "dl")) == _fields(os.lstat(tmp_path / "dl"))
        fd = os.open(f, os.O_RDONLY)
        try:
            assert _fields(await ua.os.stat(fd)) == _fields(os.stat(fd))
            with pytest.raises(ValueError):
                await ua.os.stat(fd, follow_symlinks=False)
        finally:
            os.close(fd)
        st = await ua.os.stat(f)
        assert st.st_atime_ns == 1_234_567_891_123_456_789
        assert st.st_mtime == os.path.getmtime(f)

    run(main())


def test_many_at_once(run: Any, tmp_path: pathlib.Path) -> None:
    """More requests than the ring's capacity in flight: each gets its own result."""
    for i in range(50):
        (tmp_path / str(i)).write_bytes(b"x" * i)

    async def main() -> None:
        sizes = await asyncio.gather(*(ua.os.path.getsize(tmp_path / str(i % 50))
                                       for i in range(2000)))
        assert sizes == [i % 50 for i in range(2000)]
        await asyncio.gather(*(ua.os.mkdir(tmp_path / f"d{i}") for i in range(300)))
        await asyncio.gather(*(ua.os.rmdir(tmp_path / f"d{i}") for i in range(300)))
        assert sorted(os.listdir(tmp_path)) == sorted(str(i) for i in range(50))

    run(main())


# -- the module's shape ---------------------------------------------------------------


def test_os_path_is_a_module_and_an_attribute() -> None:
    mod = importlib.import_module("uring.asyncio.os.path")
    assert mod is ua.os.path is aos_mod.path is importlib.import_module("uring.asyncio.ospath")
    assert ua.tempfile is atempfile_mod


def test_stdlib_os_is_still_stdlib_os_inside_the_package() -> None:
    """``uring.asyncio.os`` does not shadow ``import os`` in the package's modules."""
    for name in ("driver", "files", "loop", "sockets", "streams", "os", "ospath", "tempfile"):
        module = importlib.import_module(f"uring.asyncio.{name}")
        if hasattr(module, "os") and name not in ("os",):
            assert module.os is os, name
    assert aos_mod.os is os  # type: ignore[attr-defined]
    assert atempfile_mod.tempfile is tempfile  # type: ignore[attr-defined]
    code = ("import uring.asyncio.os.path as p, uring.asyncio.files as f, os, tempfile;"
            "from uring.asyncio import *;"
            "assert f.os is os and os.path.join('a', 'b') == 'a/b' and tempfile.gettempdir();"
            "print(p.__name__)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "uring.asyncio.ospath"


def test_every_aiofiles_name_is_there() -> None:
    for name in OS_NAMES + ["wrap", "path"]:
        assert hasattr(ua.os, name), name
    for name in PATH_NAMES:
        assert hasattr(ua.os.path, name), name
    for name in ("TemporaryFile", "NamedTemporaryFile", "SpooledTemporaryFile",
                 "TemporaryDirectory"):
        assert hasattr(ua.tempfile, name), name


def test_wrap(run: Any) -> None:
    async def main() -> None:
        assert await ua.os.wrap(sum)([1, 2, 3]) == 6
    run(main())

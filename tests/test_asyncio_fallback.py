"""The thread fallback of ``uring.asyncio`` where io_uring is blocked.

One small program written the aiofiles way (files in ``w+``/``rb``/``r+``
with ``readline``, ``seek``/``tell``, ``uring.asyncio.os``, ``tempfile``,
a loopback echo through ``start_server``/``open_connection`` and through
``sock_*``) runs in a child process:

* on io_uring (the reference, where this machine has it);
* with ``URING_ASYNCIO_BACKEND=threads`` (the fallback forced);
* under a seccomp filter making ``io_uring_setup`` fail with ``EPERM``
  (Docker's default profile): the fallback by default, one warning naming
  seccomp; and with io_uring requested (the environment variable,
  ``set_backend``, ``run(backend=...)``) the clear error instead.

Each child is a separate process, so this one keeps its io_uring and the
once-per-process backend decision is fresh in every case."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from typing import Any, Dict, Optional

import pytest
from conftest import require_uring
from test_hostile import seccomp_prelude

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROGRAM = textwrap.dedent(
    r"""
    import asyncio, json, os, socket, stat, warnings
    import uring
    import uring.asyncio as ua
    from uring.asyncio import os as aos, tempfile as atf

    D = os.environ["FB_DIR"]
    LOOP = os.environ.get("FB_LOOP", "uring")
    REFUSE = os.environ.get("FB_REFUSE", "")
    out = {}


    async def files():
        p = os.path.join(D, "a.txt")
        r = {}
        async with ua.open(p, "w+") as f:
            r["w+write"] = await f.write("one\ntwo\r\nthree")
            await f.seek(0)
            r["w+readline"] = await f.readline()
            r["w+tell"] = await f.tell()
            r["w+rest"] = await f.read()
            await f.writelines(["\nx\n", "y\n"])
            await f.flush()
        async with ua.open(p, "rb") as f:
            r["rb"] = (await f.read()).decode()
            r["rb_seek"] = await f.seek(4)
            r["rb_line"] = (await f.readline()).decode()
            r["rb_tell"] = await f.tell()
            r["rb_iter"] = [line.decode() async for line in f]
            r["rb_pread"] = (await f.pread(3, 4)).decode()
            buf = bytearray(3)
            await f.seek(0)
            r["rb_readinto"] = [await f.readinto(buf), buf.decode()]
            r["rb_stat"] = (await f.stat()).st_size
        async with ua.open(p, "r+") as f:
            await f.seek(0, os.SEEK_END)
            await f.write("end\n")
            await f.seek(0)
            r["r+lines"] = await f.readlines()
            r["r+truncate"] = await f.truncate(3)
            await f.fsync()
        r["size"] = os.path.getsize(p)
        f = await ua.open(p, "ab")
        r["ab"] = [await f.tell(), await f.write(b"++"), await f.pwrite(b"Z", 0)]
        await f.close()
        await f.close()
        r["closed"] = f.closed
        with open(p, "rb") as g:
            r["final"] = g.read().decode()
        return r


    async def osfuncs():
        r = {}
        sub = os.path.join(D, "sub")
        deep = os.path.join(sub, "deep", "er")
        await aos.makedirs(deep, exist_ok=True)
        src = os.path.join(sub, "f")
        async with ua.open(src, "wb") as f:
            await f.write(b"12345")
        st = await aos.stat(src)
        r["stat"] = [st.st_size, stat.S_ISREG(st.st_mode)]
        await aos.rename(src, src + "2")
        r["exists"] = [await aos.path.exists(src), await aos.path.exists(src + "2"),
                       await aos.path.isdir(deep), await aos.path.getsize(src + "2")]
        r["listdir"] = sorted(await aos.listdir(sub))
        await aos.remove(src + "2")
        r["after_remove"] = sorted(await aos.listdir(sub))
        try:
            await aos.stat(src)
        except FileNotFoundError as exc:
            r["enoent"] = [exc.errno, exc.filename == src]
        await aos.mkdir(os.path.join(sub, "m"))
        await aos.rmdir(os.path.join(sub, "m"))
        r["final"] = sorted(await aos.listdir(sub))
        return r


    async def temp():
        async with atf.NamedTemporaryFile("w+b", dir=D) as f:
            await f.write(b"temp data\nline2\n")
            await f.seek(0)
            r = {"line": (await f.readline()).decode(), "exists": os.path.exists(f.name),
                 "dir": os.path.dirname(f.name) == D}
            name = f.name
        r["gone"] = not os.path.exists(name)
        async with atf.TemporaryFile("w+") as t:
            await t.write("unnamed\n")
            await t.seek(0)
            r["unnamed"] = await t.read()
        async with atf.SpooledTemporaryFile(max_size=4, dir=D) as s:
            await s.write(b"spooled past max")
            await s.seek(0)
            r["spooled"] = (await s.read()).decode()
        async with atf.TemporaryDirectory(dir=D) as td:
            r["tdir"] = os.path.isdir(td)
        r["tdir_gone"] = not os.path.exists(td)
        return r


    async def net():
        async def handle(reader, writer):
            data = await reader.readline()
            writer.write(data.upper() * 3)
            await writer.drain()
            writer.close()

        srv = await ua.start_server(handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        reader, writer = await ua.open_connection("127.0.0.1", port)
        writer.write(b"hello\n")
        await writer.drain()
        r = {"stream": (await reader.read()).decode()}
        writer.close()
        await writer.wait_closed()
        srv.close()
        await srv.wait_closed()

        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        lsock.setblocking(False)
        c = socket.socket()
        c.setblocking(False)
        acc = asyncio.ensure_future(ua.sock_accept(lsock))
        await ua.sock_connect(c, lsock.getsockname())
        conn, _ = await acc
        await ua.sock_sendall(c, b"ping" * 50000)
        got = b""
        while len(got) < 200000:
            got += await ua.sock_recv(conn, 65536)
        await ua.sock_sendall(conn, got[:5])
        back = bytearray(5)
        n = await ua.sock_recv_into(c, back)
        r["sock"] = [len(got), got[:8].decode(), n, back.decode()]
        for s in (c, conn, lsock):
            s.close()
        return r


    async def main():
        out["backend"] = ua.backend()
        out["loop"] = type(asyncio.get_running_loop()).__name__
        out["files"] = await files()
        out["os"] = await osfuncs()
        out["temp"] = await temp()
        out["net"] = await net()


    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if REFUSE == "set_backend":
                ua.set_backend("io_uring")
            if LOOP == "stock":
                asyncio.run(main())
            elif REFUSE == "run":
                ua.run(main(), backend="io_uring")
            else:
                ua.run(main())
        except uring.UringUnavailableError as exc:
            out["error"] = [type(exc).__name__, exc.errno, str(exc), getattr(exc, "cause", None),
                            getattr(exc, "__notes__", [])]
    out["warnings"] = [[w.category.__name__, str(w.message)] for w in caught
                       if w.category is RuntimeWarning and "never awaited" not in str(w.message)]
    print(json.dumps(out))
    """
)


def run_program(tmp_path: Any, *, seccomp: bool = False, backend: Optional[str] = None,
                loop: str = "uring", refuse: str = "", name: str = "run") -> Dict[str, Any]:
    """PROGRAM in a child (under the seccomp filter with *seccomp*), its
    JSON answer; the child must not hang (a timeout fails the test)."""
    d = os.path.join(str(tmp_path), name)
    os.makedirs(d)
    env = dict(os.environ, FB_DIR=d, FB_LOOP=loop, FB_REFUSE=refuse)
    env.pop("URING_ASYNCIO_BACKEND", None)
    if backend is not None:
        env["URING_ASYNCIO_BACKEND"] = backend
    source = (seccomp_prelude(errno.EPERM) if seccomp else "") + PROGRAM
    out = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    result: Dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if "skip" in result:
        pytest.skip("cannot be set up here: " + result["skip"])
    return result


def results(got: Dict[str, Any]) -> Dict[str, Any]:
    assert "error" not in got, got
    return {k: got[k] for k in ("files", "os", "temp", "net")}


#: What the program's steps give with the builtin open(), os and tempfile
#: (checked against the io_uring backend where it is available).
EXPECTED_FILES = {
    "w+write": 14, "w+readline": "one\n", "w+tell": 4, "w+rest": "two\nthree",
    "rb": "one\ntwo\r\nthree\nx\ny\n", "rb_seek": 4, "rb_line": "two\r\n", "rb_tell": 9,
    "rb_iter": ["three\n", "x\n", "y\n"], "rb_pread": "two", "rb_readinto": [3, "one"],
    "rb_stat": 19, "r+lines": ["one\n", "two\n", "three\n", "x\n", "y\n", "end\n"],
    "r+truncate": 3, "size": 3, "ab": [3, 2, 1], "closed": True, "final": "one++Z",  # O_APPEND: Linux pwrite appends
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: Any) -> Dict[str, Any]:
    """The program on io_uring (this machine's), on UringEventLoop."""
    require_uring()
    got = run_program(tmp_path_factory.mktemp("ref"))
    assert got["backend"] == "io_uring" and got["loop"] == "UringEventLoop", got
    assert got["warnings"] == [], got["warnings"]
    assert got["files"] == EXPECTED_FILES
    return results(got)


def assert_one_warning(got: Dict[str, Any], *words: str) -> None:
    assert len(got["warnings"]) == 1, got["warnings"]
    category, message = got["warnings"][0]
    assert category == "RuntimeWarning"
    assert message.startswith("uring.asyncio: ") and "thread pool" in message, message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("loop", ["uring", "stock"])
def test_forced_threads_gives_the_same_results(tmp_path: Any, reference: Dict[str, Any],
                                               loop: str) -> None:
    """``URING_ASYNCIO_BACKEND=threads`` on a machine with io_uring: the
    same results as on io_uring, ``backend()`` says threads, one warning
    naming the variable; ``uring.asyncio.run`` gives asyncio's own loop."""
    got = run_program(tmp_path, backend="threads", loop=loop)
    assert got["backend"] == "threads"
    assert got["loop"] == "_UnixSelectorEventLoop"
    assert_one_warning(got, "URING_ASYNCIO_BACKEND=threads")
    assert results(got) == reference


def test_auto_on_io_uring_has_no_warning(tmp_path: Any, reference: Dict[str, Any]) -> None:
    got = run_program(tmp_path, backend="auto", loop="stock")
    assert got["backend"] == "io_uring" and got["warnings"] == []
    assert results(got) == reference


def test_bad_backend_value_is_refused(tmp_path: Any) -> None:
    env = dict(os.environ, URING_ASYNCIO_BACKEND="uring-please")
    out = subprocess.run([sys.executable, "-c", "import uring.asyncio as ua; ua.backend()"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert out.returncode != 0 and "URING_ASYNCIO_BACKEND must be one of" in out.stderr


@pytest.mark.parametrize("loop", ["uring", "stock"])
def test_seccomp_falls_back_by_default(tmp_path: Any, loop: str) -> None:
    """Under a seccomp filter refusing ``io_uring_setup`` (EPERM): the
    program runs on threads, with one warning naming seccomp, and gives
    the builtin's results (the io_uring backend's, where this machine has it)."""
    got = run_program(tmp_path, seccomp=True, loop=loop)
    assert got["backend"] == "threads"
    assert got["loop"] == "_UnixSelectorEventLoop"
    assert_one_warning(got, "seccomp", "io_uring is unavailable")
    assert got["files"] == EXPECTED_FILES
    assert got["net"]["stream"] == "HELLO\n" * 3
    assert got["net"]["sock"] == [200000, "pingping", 5, "pingp"]
    assert got["os"]["listdir"] == ["deep", "f2"] and got["os"]["after_remove"] == ["deep"]
    assert got["temp"]["spooled"] == "spooled past max" and got["temp"]["gone"]


def test_seccomp_same_results_as_io_uring(tmp_path: Any, reference: Dict[str, Any]) -> None:
    got = run_program(tmp_path, seccomp=True)
    assert results(got) == reference


@pytest.mark.parametrize("how", [
    pytest.param({"backend": "io_uring"}, id="env-uring-loop"),
    pytest.param({"backend": "io_uring", "loop": "stock"}, id="env-stock-loop"),
    pytest.param({"refuse": "set_backend", "loop": "stock"}, id="set_backend-stock-loop"),
    pytest.param({"refuse": "set_backend"}, id="set_backend-uring-loop"),
    pytest.param({"refuse": "run"}, id="run-argument"),
])
def test_seccomp_with_fallback_refused_gets_the_clear_error(tmp_path: Any,
                                                            how: Dict[str, str]) -> None:
    """io_uring or nothing: the first operation (making the loop, or the
    first file open on the stock loop) raises ``UringUnavailableError``
    naming the seccomp filter, with a note that the fallback was refused;
    no warning, no hang."""
    got = run_program(tmp_path, seccomp=True, **how)
    assert "error" in got, got
    name, err, message, cause, notes = got["error"]
    assert name == "UringUnavailableError" and err == errno.EPERM and cause == "seccomp"
    assert "seccomp filter is active" in message, message
    assert any("fallback is refused" in note for note in notes), notes
    assert "files" not in got
    assert got["warnings"] == []
    if how.get("loop") == "stock":
        assert got["backend"] == "io_uring"  # backend() does not probe: the op raised

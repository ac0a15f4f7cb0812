"""uring.asyncio end to end: files, sockets, cancellation, loop shutdown and
streams, each test run on both loops.

Every test takes the ``run`` fixture: ``"default"`` runs the coroutine with
``asyncio.run`` (a stock loop; the ring is attached on first use by
``uring.asyncio.get_ring()``), ``"uring"`` with ``uring.asyncio.run`` (the
loop whose polling is the ring).  Real files in ``tmp_path``, real
loopback sockets, real threads; effects are checked outside the library
(``os.pread``, ``os.fstat``, plain socket calls, hashes).
"""

from __future__ import annotations

import asyncio
import errno
import gc
import hashlib
import io
import os
import random
import socket
import sys
import threading
import warnings
import weakref
from typing import Any, List

import pytest
from conftest import Loop, require_uring
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import uring.asyncio as ua

# -- the two loops ---------------------------------------------------------------------


def _fd_closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as exc:
        return exc.errno == errno.EBADF
    return False


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _content(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.fixture
def data_path(tmp_path: Any) -> Any:
    path = tmp_path / "data.bin"
    path.write_bytes(_content(200_000))
    return path


def _closed_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ======================================================================================
# 1. Files
# ======================================================================================


def test_loop_kind_uses_its_ring(run: Loop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        lr = ua.get_ring()
        assert lr is ua.get_ring() and lr.loop is loop and not lr.closed
        if run.kind == "uring":
            assert isinstance(loop, ua.UringEventLoop) and lr is loop.uring
        else:
            assert not isinstance(loop, ua.UringEventLoop)
    run(main())


def test_open_modes(run: Loop, tmp_path: Any) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"hello\nworld\n")

    async def main() -> None:
        async with ua.open(path, "r") as f:
            assert await f.read() == "hello\nworld\n"
            assert f.readable() and not f.writable()
        async with ua.open(path, "rb") as f:
            assert await f.read() == b"hello\nworld\n"
        async with ua.open(path, "r+b") as f:
            assert await f.read(5) == b"hello"
            await f.write(b"!")
            assert f.readable() and f.writable()
        assert path.read_bytes() == b"hello!world\n"
        async with ua.open(path, "ab") as f:
            await f.write(b"tail")
        assert path.read_bytes() == b"hello!world\ntail"
        async with ua.open(path, "wb") as f:  # truncates
            await f.write(b"new")
            assert not f.readable()
        assert path.read_bytes() == b"new"
        with pytest.raises(FileExistsError):
            await ua.open(path, "x")
        assert path.read_bytes() == b"new"
        fresh = tmp_path / "fresh"
        async with ua.open(fresh, "xb") as f:
            await f.write(b"made")
        assert fresh.read_bytes() == b"made"
        # A bad mode fails at the call, before anything is awaited or opened.
        for bad in ("rw", "q", "rbt", "wb+w", ""):
            with pytest.raises(ValueError):
                ua.open(tmp_path / "never", bad)
        with pytest.raises(TypeError):
            ua.open(tmp_path / "never", 1)  # type: ignore[arg-type]
        assert not (tmp_path / "never").exists()
        assert ua.get_ring().in_flight == 0
    run(main())


def test_read_whole_sized_eof(run: Loop, data_path: Any) -> None:
    content = data_path.read_bytes()

    async def main() -> None:
        async with ua.open(data_path, "rb") as f:
            assert await f.read() == content  # more than one internal chunk
            assert await f.read() == b""
            assert await f.read(10) == b""
        async with ua.open(data_path, "rb") as f:
            assert await f.read(7) == content[:7]
            assert await f.read(100) == content[7:107]
            assert await f.tell() == 107
            await f.seek(len(content) - 3)
            assert await f.read(10) == content[-3:]  # short at EOF
            assert await f.read(10) == b""
            assert await f.read(0) == b""
    run(main())


def test_readinto(run: Loop, data_path: Any) -> None:
    content = data_path.read_bytes()

    async def main() -> None:
        async with ua.open(data_path, "rb") as f:
            buf = bytearray(1000)
            assert await f.readinto(buf) == 1000 and buf == content[:1000]
            view = memoryview(bytearray(50))
            assert await f.readinto(view[10:30]) == 20
            assert bytes(view[10:30]) == content[1000:1020] and bytes(view[:10]) == bytes(10)
            assert await f.tell() == 1020
            await f.seek(0, os.SEEK_END)
            assert await f.readinto(buf) == 0
    run(main())


def test_readline_and_iteration(run: Loop, tmp_path: Any) -> None:
    lines = [f"line {i} {'x' * (i * 37 % 5000)}\n" for i in range(60)] + ["no newline at end"]
    text = "".join(lines)
    path = tmp_path / "lines.txt"
    path.write_text(text)

    async def main() -> None:
        async with ua.open(path, "rb") as f:
            got = [line async for line in f]
        assert got == [line.encode() for line in lines]
        async with ua.open(path, "r") as f:
            got_text = [line async for line in f]
        assert got_text == lines
        async with ua.open(path, "rb") as f:
            assert await f.readline() == lines[0].encode()
            assert await f.tell() == len(lines[0])
            assert await f.read(4) == lines[1][:4].encode()
            assert await f.readline() == lines[1][4:].encode()
            await f.seek(0, os.SEEK_END)
            assert await f.readline() == b""
        async with ua.open(path, "r") as f:  # tell() after a text readline marks the line's end
            assert await f.readline() == lines[0]
            mark = await f.tell()
            assert await f.readline() == lines[1]
            await f.seek(mark)
            assert await f.readline() == lines[1]
    run(main())


def test_text_read_sized_and_multibyte(run: Loop, tmp_path: Any) -> None:
    text = "añb€c😀d\n" * 3000  # multi-byte characters across internal chunks
    path = tmp_path / "u.txt"
    path.write_text(text, encoding="utf-8")

    async def main() -> None:
        async with ua.open(path, "r", encoding="utf-8") as f:
            parts = []
            while True:
                part = await f.read(7)
                if not part:
                    break
                assert len(part) <= 7
                parts.append(part)
        assert "".join(parts) == text
        async with ua.open(path, "r", encoding="utf-8") as f:
            first = await f.readline()
            rest = await f.read()
        assert first + rest == text
    run(main())


def test_write_bytes_and_text(run: Loop, tmp_path: Any) -> None:
    path = tmp_path / "w"
    payload = _content(300_000, seed=2)

    async def main() -> None:
        async with ua.open(path, "wb") as f:
            assert await f.write(payload) == len(payload)
            assert await f.write(memoryview(b"0123456789")[2:5]) == 3
            assert await f.tell() == len(payload) + 3
            with pytest.raises(TypeError):
                await f.write("text into a binary file")
        with open(path, "rb") as check:
            assert check.read() == payload + b"234"
        async with ua.open(path, "w", encoding="utf-8") as f:
            assert await f.write("héllo\n") == 6  # characters
            assert await f.write("wörld") == 5
            with pytest.raises(TypeError):
                await f.write(b"bytes into a text file")
        assert path.read_bytes() == "héllo\nwörld".encode()
        async with ua.open(path, "r+") as f:
            assert await f.readline() == "héllo\n"
            await f.write("W")  # as the builtin's: after its 8 KiB read-ahead (here the end)
        assert path.read_text(encoding="utf-8") == "héllo\nwörldW"
    run(main())


def test_seek_tell(run: Loop, data_path: Any) -> None:
    content = data_path.read_bytes()

    async def main() -> None:
        async with ua.open(data_path, "rb") as f:
            assert await f.tell() == 0
            assert await f.seek(100) == 100 and await f.tell() == 100
            assert await f.read(3) == content[100:103]
            assert await f.seek(-50, os.SEEK_CUR) == 53
            assert await f.read(2) == content[53:55]
            assert await f.seek(-10, os.SEEK_END) == len(content) - 10
            assert await f.read() == content[-10:]
            assert await f.seek(5, os.SEEK_END) == len(content) + 5
            assert await f.read() == b""
            with pytest.raises(OSError):
                await f.seek(-1)
            with pytest.raises(ValueError):
                await f.seek(0, 7)
        async with ua.open(data_path, "ab") as f:  # append: the position starts at the end
            assert await f.tell() == len(content)
            await f.write(b"xyz")
            assert await f.tell() == len(content) + 3
    run(main())


def test_pread_pwrite_leave_position(run: Loop, data_path: Any) -> None:
    content = bytearray(data_path.read_bytes())

    async def main() -> None:
        async with ua.open(data_path, "r+b") as f:
            await f.seek(1234)
            assert await f.pread(100, 5000) == content[5000:5100]
            assert await f.pread(100, len(content) - 10) == content[-10:]
            assert await f.pread(10, len(content) + 100) == b""
            buf = bytearray(64)
            assert await f.preadinto(buf, 70_000) == 64 and buf == content[70_000:70_064]
            assert await f.pwrite(b"PATCH", 9000) == 5
            content[9000:9005] = b"PATCH"
            assert await f.tell() == 1234
            assert await f.read(4) == content[1234:1238]
            with pytest.raises(ValueError):
                await f.pread(1, -1)
        fd = os.open(data_path, os.O_RDONLY)
        try:
            assert os.pread(fd, 5, 9000) == b"PATCH"
            assert os.pread(fd, len(content) + 1, 0) == bytes(content)
        finally:
            os.close(fd)
    run(main())


def test_fsync_truncate_stat(run: Loop, tmp_path: Any) -> None:
    path = tmp_path / "t"

    async def main() -> None:
        async with ua.open(path, "w+b") as f:
            await f.write(_content(10_000, seed=3))
            await f.fsync()
            await f.fsync(datasync=True)
            st_ = await f.stat()
            assert st_.st_size == os.stat(path).st_size == 10_000
            assert st_.st_ino == os.stat(path).st_ino
            assert await f.truncate(4000) == 4000
            assert os.stat(path).st_size == 4000
            assert (await f.stat()).st_size == 4000
            await f.seek(123)
            assert await f.truncate() == 123  # default: the position
            assert os.stat(path).st_size == 123
        async with ua.open(path, "rb") as f:
            with pytest.raises(io.UnsupportedOperation):
                await f.truncate(0)
        assert os.stat(path).st_size == 123
    run(main())


def test_close(run: Loop, data_path: Any) -> None:
    async def main() -> None:
        f = await ua.open(data_path, "r+b")
        fd = f.fileno()
        assert not _fd_closed(fd) and not f.closed
        await f.close()
        assert _fd_closed(fd) and f.closed
        await f.close()  # twice is fine
        for call in (lambda: f.read(1), lambda: f.write(b"x"), lambda: f.pread(1, 0),
                     lambda: f.readline(), lambda: f.fsync(), lambda: f.stat()):
            with pytest.raises(ValueError):
                await call()
        with pytest.raises(ValueError):
            await f.seek(0)
        with pytest.raises(ValueError):
            f.fileno()
        async with ua.open(data_path, "rb") as g:
            fd2 = g.fileno()
        assert _fd_closed(fd2) and g.closed
    run(main())


def test_file_errors(run: Loop, tmp_path: Any) -> None:
    missing = tmp_path / "no" / "such-file"
    path = tmp_path / "w"

    async def main() -> None:
        lr = ua.get_ring()
        with pytest.raises(FileNotFoundError) as info:
            await ua.open(missing, "rb")
        # The builtin open()'s error (message, filename); the op in a note.
        assert str(info.value) == str(FileNotFoundError(2, os.strerror(2), str(missing)))
        if hasattr(info.value, "add_note"):
            assert any("IORING_OP_OPENAT" in n for n in info.value.__notes__)
        async with ua.open(path, "wb") as f:
            with pytest.raises(io.UnsupportedOperation):
                await f.read()
            with pytest.raises(io.UnsupportedOperation):
                await f.pread(1, 0)
        async with ua.open(path, "rb") as f:
            with pytest.raises(io.UnsupportedOperation):
                await f.write(b"x")
            # A read-only buffer fails on the first step, before any request.
            coro = f.readinto(b"read-only")
            with pytest.raises(TypeError):
                coro.send(None)
            assert lr.in_flight == 0
        async with ua.open(path, "r") as f:
            with pytest.raises(io.UnsupportedOperation):
                await f.readinto(bytearray(4))  # text mode
    run(main())


def test_concurrent_preads_beyond_capacity(run: Loop, data_path: Any) -> None:
    content = data_path.read_bytes()

    async def main() -> None:
        lr = ua.get_ring()
        n = lr.capacity * 2 + 37  # more than can be in flight at once
        rnd = random.Random(5)
        spans = [(rnd.randrange(len(content)), rnd.randrange(1, 3000)) for _ in range(n)]
        async with ua.open(data_path, "rb") as f:
            tasks = [asyncio.ensure_future(f.pread(size, off)) for off, size in spans]
            await asyncio.sleep(0)  # every task has taken its first step
            assert 0 < lr.in_flight <= lr.capacity  # the rest wait for room
            got = await asyncio.gather(*tasks)
        assert got == [content[off:off + size] for off, size in spans]
        assert lr.in_flight == 0
    run(main())


def test_open_cancelled_does_not_leak_fd(run: Loop, data_path: Any) -> None:
    """An open whose task is cancelled after the kernel opened the file
    (inline, at submission) must not leave the new fd open."""
    async def main() -> None:
        ua.get_ring()  # the ring's own fds are made before counting
        before = _open_fds()
        for ticks in range(6):
            for _ in range(5):
                task = asyncio.ensure_future(ua.open(data_path, "rb"))
                for _ in range(ticks):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    f = await task
                except asyncio.CancelledError:
                    continue
                await f.close()
        assert ua.get_ring().in_flight == 0
        assert _open_fds() == before
    run(main())


# ======================================================================================
# 2. Sockets
# ======================================================================================


def test_sock_recv_and_recv_into(run: Loop) -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            task = asyncio.ensure_future(ua.sock_recv(a, 100))
            await asyncio.sleep(0.01)
            assert not task.done()  # waits for data, without blocking the loop
            b.sendall(b"first")
            assert await task == b"first"
            b.sendall(b"0123456789")
            buf = bytearray(4)
            assert await ua.sock_recv_into(a, buf) == 4 and buf == b"0123"
            view = memoryview(bytearray(20))
            assert await ua.sock_recv_into(a, view[5:]) == 6
            assert bytes(view[5:11]) == b"456789"
            b.shutdown(socket.SHUT_WR)
            assert await ua.sock_recv(a, 10) == b""
            with pytest.raises(ValueError):
                await ua.sock_recv(a, -1)
    run(main())


def test_sock_sendall_several_mib_tcp(run: Loop) -> None:
    payload = _content(6 << 20, seed=7)

    async def main() -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        got: List[Any] = []

        def receiver() -> None:
            conn, _ = listener.accept()
            h, n = hashlib.sha256(), 0
            with conn:
                while True:
                    chunk = conn.recv(1 << 16)
                    if not chunk:
                        break
                    h.update(chunk)
                    n += len(chunk)
            got.append((n, h.hexdigest()))

        thread = threading.Thread(target=receiver)
        thread.start()
        client = socket.socket()
        try:
            client.setblocking(False)
            await ua.sock_connect(client, listener.getsockname())
            await ua.sock_sendall(client, payload)
            await ua.sock_sendall(client, b"")
            client.shutdown(socket.SHUT_WR)
            await asyncio.get_running_loop().run_in_executor(None, thread.join)
        finally:
            client.close()
            listener.close()
        assert got == [(len(payload), hashlib.sha256(payload).hexdigest())]
    run(main())


def test_sock_udp_sendto_recvfrom(run: Loop) -> None:
    async def main() -> None:
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with a, b:
            a.bind(("127.0.0.1", 0))
            b.bind(("127.0.0.1", 0))
            assert await ua.sock_sendto(a, b"one", b.getsockname()) == 3
            data, addr = await ua.sock_recvfrom(b, 100)
            assert data == b"one" and addr == a.getsockname()
            # The other way, received with plain recvfrom: the address sent to is right.
            assert await ua.sock_sendto(b, b"back", a.getsockname()) == 4
            a.settimeout(5)
            assert a.recvfrom(100) == (b"back", b.getsockname())
            await ua.sock_sendto(a, b"0123456789", b.getsockname())
            buf = bytearray(16)
            n, addr = await ua.sock_recvfrom_into(b, buf, 4)
            assert (n, addr) == (4, a.getsockname())
            assert buf[:4] == b"0123" and buf[4:] == bytes(12)  # a datagram is cut at nbytes
            await ua.sock_sendto(a, b"xy", b.getsockname())
            n, addr = await ua.sock_recvfrom_into(b, buf)
            assert (n, addr, bytes(buf[:2])) == (2, a.getsockname(), b"xy")
            with pytest.raises(ValueError):
                await ua.sock_recvfrom_into(b, buf, 17)
    run(main())


def test_sock_accept(run: Loop) -> None:
    async def main() -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        client = socket.socket()
        try:
            accepting = asyncio.ensure_future(ua.sock_accept(listener))
            await asyncio.sleep(0)
            client.connect(listener.getsockname())
            conn, addr = await accepting
            with conn:
                assert addr == client.getsockname()
                assert conn.getpeername() == client.getsockname()
                assert conn.getblocking() is False
                assert os.get_inheritable(conn.fileno()) is False
                client.sendall(b"ping")
                assert await ua.sock_recv(conn, 10) == b"ping"
        finally:
            client.close()
            listener.close()
    run(main())


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_sock_connect(run: Loop, host: str) -> None:
    async def main() -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        client = socket.socket()
        try:
            client.setblocking(False)
            await ua.sock_connect(client, (host, listener.getsockname()[1]))
            assert client.getpeername() == listener.getsockname()
            listener.settimeout(5)
            conn, addr = listener.accept()
            with conn:
                assert addr == client.getsockname()
                await ua.sock_sendall(client, b"hello")
                conn.settimeout(5)
                assert conn.recv(10) == b"hello"
        finally:
            client.close()
            listener.close()
    run(main())


def test_sock_connect_refused(run: Loop) -> None:
    port = _closed_port()

    async def main() -> None:
        with socket.socket() as client:
            client.setblocking(False)
            with pytest.raises(ConnectionRefusedError) as info:
                await ua.sock_connect(client, ("127.0.0.1", port))
            assert "IORING_OP_CONNECT" in str(info.value)
        assert ua.get_ring().in_flight == 0
    run(main())


def test_sock_recv_on_closed_fd(run: Loop) -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        b.close()
        a.close()
        # A closed socket object: refused before anything is submitted.
        with pytest.raises(OSError) as info:
            await asyncio.wait_for(ua.sock_recv(a, 10), 5)
        assert info.value.errno == errno.EBADF
        # A raw fd number that is closed: the kernel's EBADF, with the op named.
        c, d = socket.socketpair()
        fd = os.dup(c.fileno())
        os.close(fd)
        try:
            with pytest.raises(OSError) as info:
                await asyncio.wait_for(ua.sock_recv(fd, 10), 5)
            assert info.value.errno == errno.EBADF and "IORING_OP_RECV" in str(info.value)
        finally:
            c.close()
            d.close()
        assert ua.get_ring().in_flight == 0
    run(main())


def test_sock_accept_cancelled_loses_no_connection(run: Loop) -> None:
    """The client connects (the kernel accepts) and the task is cancelled
    before it sees the CQE: the connection is neither leaked nor lost; the
    next sock_accept on the listener returns it."""
    async def main() -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        ua.get_ring()
        before = _open_fds()
        clients = []
        kept = 0
        try:
            for _ in range(3):
                task = asyncio.ensure_future(ua.sock_accept(listener))
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                clients.append(socket.create_connection(listener.getsockname()))
                task.cancel()
                try:
                    conn, _ = await task
                    conn.close()
                except asyncio.CancelledError:
                    kept += 1
            assert ua.get_ring().in_flight == 0
            peers = {c.getsockname() for c in clients}
            for _ in range(kept):  # every connection the kernel accepted is handed out
                conn, address = await asyncio.wait_for(ua.sock_accept(listener), 5)
                assert address in peers
                conn.close()
            assert _open_fds() == before + len(clients)
            assert ua.get_ring().in_flight == 0
        finally:
            for c in clients:
                c.close()
            listener.close()
    run(main())


# ======================================================================================
# 3. Cancellation and timeouts
# ======================================================================================


def test_cancel_sock_recv(run: Loop) -> None:
    async def main() -> None:
        lr = ua.get_ring()
        a, b = socket.socketpair()
        with a, b:
            task = asyncio.ensure_future(ua.sock_recv(a, 100))
            await asyncio.sleep(0.01)
            assert lr.in_flight >= 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert task.cancelled()
            assert lr.in_flight == 0
            # The cancelled receive took nothing: the data waits for the next reader.
            b.sendall(b"after")
            assert await ua.sock_recv(a, 100) == b"after"
    run(main())


def test_cancel_sock_recv_into_releases_buffer(run: Loop) -> None:
    async def main() -> None:
        lr = ua.get_ring()
        a, b = socket.socketpair()
        with a, b:
            buf = bytearray(b"." * 32)
            task = asyncio.ensure_future(ua.sock_recv_into(a, buf))
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert lr.in_flight == 0
            b.sendall(b"X" * 32)
            for _ in range(5):
                await asyncio.sleep(0.01)
            assert buf == b"." * 32  # the kernel no longer owns it
            a.setblocking(False)
            assert a.recv(100) == b"X" * 32  # and the bytes are still in the socket
    run(main())


def test_cancel_after_kernel_completed_loses_no_data(run: Loop) -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False)
            task = asyncio.ensure_future(ua.sock_recv(a, 100))
            await asyncio.sleep(0.01)
            b.sendall(b"data")  # the kernel completes the receive ...
            task.cancel()  # ... before the loop has reaped its CQE
            try:
                got = await task
            except asyncio.CancelledError:
                # The kernel had taken the bytes: the next receive gets them.
                got = await asyncio.wait_for(ua.sock_recv(a, 100), 5)
            assert got == b"data"
            assert ua.get_ring().in_flight == 0
    run(main())


def test_wait_for_timeout(run: Loop) -> None:
    async def main() -> None:
        lr = ua.get_ring()
        a, b = socket.socketpair()
        with a, b:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ua.sock_recv(a, 10), 0.05)
            assert lr.in_flight == 0
            b.sendall(b"z")
            assert await asyncio.wait_for(ua.sock_recv(a, 10), 5) == b"z"
    run(main())


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is 3.11+")
def test_asyncio_timeout(run: Loop) -> None:
    async def main() -> None:
        lr = ua.get_ring()
        a, b = socket.socketpair()
        with a, b:
            buf = bytearray(8)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await ua.sock_recv_into(a, buf)
            assert lr.in_flight == 0
            b.sendall(b"late")
            await asyncio.sleep(0.02)
            assert buf == bytes(8)
    run(main())


_FILE_SIZE = 50_000
_FILE = _content(_FILE_SIZE, seed=11)

_ops = st.one_of(
    st.tuples(st.just("pread"), st.integers(0, _FILE_SIZE - 1), st.integers(1, 4096)),
    st.tuples(st.just("recv"), st.one_of(st.none(), st.integers(0, 6))),  # tick data is sent
    st.tuples(st.just("sleep"), st.integers(0, 5)),  # milliseconds
)
_programs = st.lists(st.tuples(_ops, st.one_of(st.none(), st.integers(0, 8))),  # cancel tick
                     min_size=1, max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(program=_programs)
def test_random_programs_cancelled_at_random_points(run: Loop, tmp_path: Any, program: Any) -> None:
    path = tmp_path / "prog.bin"
    if not path.exists():
        path.write_bytes(_FILE)
    logged: List[dict] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: logged.append(context))
        lr = ua.get_ring()
        f = await ua.open(path, "rb")
        pairs = []
        tasks, expected, sends = [], [], []
        for i, (op, _cancel) in enumerate(program):
            if op[0] == "pread":
                _, off, size = op
                tasks.append(asyncio.ensure_future(f.pread(size, off)))
                expected.append(_FILE[off:off + size])
            elif op[0] == "recv":
                a, b = socket.socketpair()
                pairs.append((a, b))
                msg = f"message {i}".encode()
                tasks.append(asyncio.ensure_future(ua.sock_recv(a, 100)))
                expected.append(msg if op[1] is not None else b"")
                sends.append((op[1], b, msg))
            else:
                tasks.append(asyncio.ensure_future(asyncio.sleep(op[1] / 1000)))
                expected.append(None)
        for tick in range(10):
            for at, b, msg in sends:
                if at == tick:
                    b.sendall(msg)
            for task, (_op, cancel_at) in zip(tasks, program):
                if cancel_at == tick:
                    task.cancel()
            await asyncio.sleep(0)
        for at, b, _msg in sends:
            if at is None:
                b.shutdown(socket.SHUT_WR)  # an unsent receive ends with EOF
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
        for result, want, (_op, cancel_at) in zip(results, expected, program):
            if isinstance(result, asyncio.CancelledError):
                assert cancel_at is not None
            else:
                assert result == want
        assert lr.in_flight == 0
        await f.close()
        for a, b in pairs:
            a.close()
            b.close()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(main())
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert logged == []


class _Buf(bytearray):
    """A bytearray that can be weakly referenced."""


def test_buffer_kept_alive_while_in_flight(run: Loop) -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        with a, b:
            buf = _Buf(16)
            ref = weakref.ref(buf)
            task = asyncio.ensure_future(ua.sock_recv_into(a, buf))
            del buf
            for _ in range(3):
                await asyncio.sleep(0)
            assert ua.get_ring().in_flight >= 1
            gc.collect()
            kept = ref()  # only the request kept it alive through the collection
            assert kept is not None and kept == bytes(16)
            b.sendall(b"landed")
            n = await task
            assert n == 6 and bytes(kept[:n]) == b"landed"
    run(main())


# ======================================================================================
# 4. Loop shutdown
# ======================================================================================


def test_loop_close_with_request_in_flight(run: Loop) -> None:
    loop = run.new_event_loop()
    a, b = socket.socketpair()
    try:
        async def start() -> Any:
            task = asyncio.ensure_future(ua.sock_recv(a, 10))
            for _ in range(3):
                await asyncio.sleep(0)
            return ua.get_ring(), task

        lr, task = loop.run_until_complete(start())
        assert lr.in_flight == 1 and not task.done()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loop.close()
        messages = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        assert any("in flight" in m for m in messages), messages
        assert lr.closed and lr.in_flight == 0 and lr.ring.closed
        assert loop.is_closed()
        # The receive is gone from the kernel: data sent now stays in the socket.
        b.sendall(b"still here")
        a.setblocking(False)
        assert a.recv(100) == b"still here"
        task._log_destroy_pending = False  # it was left pending on purpose
    finally:
        a.close()
        b.close()


# ======================================================================================
# 5. Streams
# ======================================================================================


def test_streams_echo_many_clients(run: Loop) -> None:
    async def main() -> None:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                line = await reader.readline()
                if not line:
                    break
                writer.write(line.upper())
                await writer.drain()
            writer.close()

        server = await ua.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def client(k: int) -> int:
            reader, writer = await ua.open_connection("127.0.0.1", port)
            rnd = random.Random(k)
            for i in range(40):
                msg = f"client {k} msg {i} {'p' * rnd.randrange(2000)}\n".encode()
                writer.write(msg)
                assert await reader.readline() == msg.upper()
            writer.close()
            await writer.wait_closed()
            return k

        assert sorted(await asyncio.gather(*(client(k) for k in range(8)))) == list(range(8))
        server.close()
        await server.wait_closed()
    run(main())


def test_streams_readline_readexactly(run: Loop) -> None:
    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"header line\n" + bytes(range(256)) * 40 + b"last")
            await writer.drain()
            writer.close()

        server = await ua.start_server(handler, "127.0.0.1", 0)
        reader, writer = await ua.open_connection(*server.sockets[0].getsockname())
        assert isinstance(reader, asyncio.StreamReader) and isinstance(writer, asyncio.StreamWriter)
        assert await reader.readline() == b"header line\n"
        assert await reader.readexactly(256 * 40) == bytes(range(256)) * 40
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await reader.readexactly(10)
        assert info.value.partial == b"last"
        assert reader.at_eof()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
    run(main())


async def _slow_reader_exchange(chunks: List[bytes]) -> None:
    """Write *chunks* (32 MiB in all) to a server that does not read until
    told to: drain() must block while the server is idle (the kernel's
    socket buffers hold far less), and every byte must arrive."""
    total = b"".join(chunks)
    go = asyncio.Event()
    got: "asyncio.Future[Any]" = asyncio.get_running_loop().create_future()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await go.wait()
        h, n = hashlib.sha256(), 0
        while True:
            data = await reader.read(1 << 16)
            if not data:
                break
            h.update(data)
            n += len(data)
        got.set_result((n, h.hexdigest()))
        writer.close()

    server = await ua.start_server(handler, "127.0.0.1", 0)
    reader, writer = await ua.open_connection(*server.sockets[0].getsockname())
    drained = None
    for chunk in chunks:
        writer.write(chunk)
        drained = asyncio.ensure_future(writer.drain())
        # Only a drain that stays pending means the buffers are full: the
        # kernel may take a send short while the peer's transport still
        # reads (up to its StreamReader's pause), and take the rest once
        # the window opens again.
        try:
            await asyncio.wait_for(asyncio.shield(drained), 0.1)
        except asyncio.TimeoutError:
            break
    assert drained is not None
    for _ in range(5):
        await asyncio.sleep(0.01)
    assert not drained.done(), "drain() returned with the server reading nothing"
    assert writer.transport.get_write_buffer_size() > writer.transport.get_write_buffer_limits()[1]
    go.set()
    await asyncio.wait_for(drained, 20)
    for rest in chunks[chunks.index(chunk) + 1:]:
        writer.write(rest)
        await writer.drain()
    writer.write_eof()
    assert await asyncio.wait_for(got, 20) == (len(total), hashlib.sha256(total).hexdigest())
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()


def test_streams_drain_one_large_write(run: Loop) -> None:
    run(_slow_reader_exchange([_content(32 << 20, seed=13)]))


def test_streams_drain_many_writes(run: Loop) -> None:
    big = _content(32 << 20, seed=17)
    run(_slow_reader_exchange([big[i:i + (1 << 20)] for i in range(0, len(big), 1 << 20)]))


def test_streams_write_eof(run: Loop) -> None:
    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.read()  # to EOF
            assert await reader.read() == b""
            writer.write(b"got %d bytes" % len(data))
            await writer.drain()
            writer.close()

        server = await ua.start_server(handler, "127.0.0.1", 0)
        reader, writer = await ua.open_connection(*server.sockets[0].getsockname())
        assert writer.can_write_eof()
        writer.write(b"x" * 12345)
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 10) == b"got 12345 bytes"
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
    run(main())


def test_server_close_wait_closed(run: Loop) -> None:
    async def main() -> None:
        connected = asyncio.Event()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connected.set()
            await reader.read()
            writer.close()

        server = await ua.start_server(handler, "127.0.0.1", 0)
        assert server.is_serving()
        listening = server.sockets[0]
        address = listening.getsockname()
        reader, writer = await ua.open_connection(*address)
        await asyncio.wait_for(connected.wait(), 5)
        server.close()
        assert not server.is_serving()
        closing = asyncio.ensure_future(server.wait_closed())
        await asyncio.sleep(0.02)
        writer.close()  # the server waits for its connection
        await writer.wait_closed()
        await asyncio.wait_for(closing, 5)
        assert listening.fileno() == -1
        with pytest.raises(ConnectionRefusedError):
            await ua.open_connection(*address)
        assert ua.get_ring().in_flight == 0
    run(main())


def test_open_connection_refused(run: Loop) -> None:
    port = _closed_port()

    async def main() -> None:
        ua.get_ring()
        before = _open_fds()
        with pytest.raises(ConnectionRefusedError) as info:
            await ua.open_connection("127.0.0.1", port)
        assert "IORING_OP_CONNECT" in str(info.value)
        assert _open_fds() == before  # the socket tried is closed
    run(main())


def test_transport_extra_info_and_types(run: Loop) -> None:
    async def main() -> None:
        seen: "asyncio.Future[Any]" = asyncio.get_running_loop().create_future()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.set_result((writer.get_extra_info("peername"), writer.get_extra_info("sockname"),
                             type(writer.transport), isinstance(reader, asyncio.StreamReader),
                             isinstance(writer, asyncio.StreamWriter)))
            await reader.read()
            writer.close()

        server = await ua.start_server(handler, "127.0.0.1", 0)
        address = server.sockets[0].getsockname()
        reader, writer = await ua.open_connection(*address)
        assert isinstance(reader, asyncio.StreamReader) and isinstance(writer, asyncio.StreamWriter)
        transport = writer.transport
        assert type(transport).__module__ == "uring.asyncio.streams"  # not asyncio's own transport
        sock = transport.get_extra_info("socket")
        assert isinstance(sock, socket.socket)
        assert transport.get_extra_info("peername") == address == sock.getpeername()
        assert transport.get_extra_info("sockname") == sock.getsockname()
        assert transport.get_extra_info("nonexistent", "dflt") == "dflt"
        peer, local, server_type, r_ok, w_ok = await asyncio.wait_for(seen, 5)
        assert peer == sock.getsockname() and local == address
        assert server_type is type(transport) and r_ok and w_ok
        fd = sock.fileno()
        writer.close()
        await writer.wait_closed()
        assert _fd_closed(fd)
        server.close()
        await server.wait_closed()
    run(main())


def test_create_connection_protocol(run: Loop) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        received = bytearray()
        lost: "asyncio.Future[Any]" = loop.create_future()

        class Proto(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                received.extend(data)

            def eof_received(self) -> None:
                return None

            def connection_lost(self, exc: Any) -> None:
                lost.set_result(exc)

        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)
        try:
            transport, proto = await ua.create_connection(Proto, *listener.getsockname())
            assert isinstance(proto, Proto)
            conn, _ = await ua.sock_accept(listener)
            with conn:
                await ua.sock_sendall(conn, b"to the protocol")
                conn.shutdown(socket.SHUT_WR)
                assert await asyncio.wait_for(lost, 5) is None
            assert bytes(received) == b"to the protocol"
        finally:
            listener.close()
    run(main())


# ======================================================================================
# 6. The driver: back-pressure counts only awaited requests; a failing callback
# ======================================================================================


def test_back_pressure_does_not_count_open_connections(run: Loop) -> None:
    """A small ring (capacity 8) with more connections than that: each keeps
    a multishot receive armed, yet an awaited op still goes through, since
    back-pressure counts only the requests a coroutine awaits."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        lr = ua.LoopRing(loop, entries=4)  # a second ring, watched by the loop's poll
        try:
            assert lr.capacity == 8

            async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                w.write(await r.readline())
                await w.drain()
                w.close()

            server = await ua.start_server(handle, "127.0.0.1", 0, ring=lr)
            port = server.sockets[0].getsockname()[1]
            conns = [await ua.open_connection("127.0.0.1", port, ring=lr) for _ in range(12)]
            await asyncio.sleep(0.05)
            assert lr.in_flight > lr.capacity  # the receives are armed ...
            a, b = socket.socketpair()
            with a, b:
                b.sendall(b"still moving")
                got = await asyncio.wait_for(ua.sock_recv(a, 100, ring=lr), 5)  # ... and this runs
            assert got == b"still moving"
            for i, (r, w) in enumerate(conns):
                w.write(b"line %d\n" % i)
                assert await asyncio.wait_for(r.readline(), 5) == b"line %d\n" % i
                w.close()
            server.close()
            await server.wait_closed()
        finally:
            lr.close()

    async def bounded() -> None:  # counted wrongly, the connects wait for room for ever
        await asyncio.wait_for(main(), 30)
    run(bounded())


def test_a_failing_completion_callback_costs_no_other_cqe(run: Loop) -> None:
    """Two requests complete in one batch; the first's callback raises: the
    loop's exception handler hears of it and the second still completes."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        errors: List[Any] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        lr = ua.get_ring()

        def broken(cqe: Any) -> None:
            raise RuntimeError("callback broke")

        lr.watch(lr.ring.prep_nop(), broken)
        fut = lr.track(lr.ring.prep_nop())
        cqe = await asyncio.wait_for(fut, 5)
        assert cqe[1] == 0
        assert [str(c["exception"]) for c in errors] == ["callback broke"]
        assert lr.in_flight == 0
    run(main())


def test_tcp_transports_set_nodelay_both_ways(run: Loop) -> None:
    """As asyncio's own socket transports do, on the accepted side too."""
    async def main() -> None:
        seen: List[int] = []

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            sock = w.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            w.close()

        server = await ua.start_server(handle, "127.0.0.1", 0)
        r, w = await ua.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        assert w.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert await r.read() == b""
        assert seen and seen[0]
        w.close()
        server.close()
        await server.wait_closed()
    run(main())


def test_kept_bytes_do_not_pass_to_a_reused_fd_number(run: Loop) -> None:
    """What a cancelled receive kept belongs to its socket: closed, and its
    fd number reused for another socket, the new one does not get it."""
    async def main() -> None:
        lr = ua.get_ring()
        a, b = socket.socketpair()
        fd = a.fileno()
        lr.push_back(fd, (b"old bytes", None))  # as a cancelled sock_recv leaves them
        assert await ua.sock_recv(a, 3) == b"old"  # the same socket gets them, in order
        a.close()
        b.close()
        c, d = socket.socketpair()
        with c, d:
            assert c.fileno() == fd  # the lowest free number, reused
            d.sendall(b"new")
            assert await asyncio.wait_for(ua.sock_recv(c, 100), 5) == b"new"
    run(main())


# ======================================================================================
# 7. One table: the ring's record of a request is where its future or callback lives
# ======================================================================================


def _blocked_reads(lr: ua.LoopRing, rfd: int, n: int, futures: Any = None) -> List[Any]:
    """*n* tasks, each awaiting an 8-byte read of the empty pipe *rfd*
    (blocked until the test writes); *futures* gets user_data -> the
    future each awaits."""
    async def one() -> int:
        await lr.room()
        ud = lr.ring.prep_read(rfd, bytearray(8), -1)
        fut = lr.track(ud)
        if futures is not None:
            futures[ud] = fut
        return (await lr.wait(ud, fut))[1]  # type: ignore[no-any-return]
    return [asyncio.ensure_future(one()) for _ in range(n)]


def test_loop_ring_keeps_no_table_of_its_own(run: Loop) -> None:
    """Awaited reads blocked on an empty pipe: each request is one record in
    the ring, whose owner is the future its task awaits; the LoopRing holds
    no mapping keyed by user_data beside it."""
    async def main() -> None:
        lr = ua.LoopRing(asyncio.get_running_loop(), entries=8)  # a ring of its own
        rfd, wfd = os.pipe()
        try:
            n = 5
            futures: dict = {}
            tasks = _blocked_reads(lr, rfd, n, futures)
            await asyncio.sleep(0.02)
            assert not any(t.done() for t in tasks) and len(futures) == n
            assert lr.ring.in_flight == n and lr.in_flight == n
            uds = {r.user_data for r in lr.ring.requests_in_flight()}
            assert uds == set(futures)
            for ud, fut in futures.items():
                assert lr.ring.held(ud).owner is fut  # type: ignore[union-attr]
            for name, value in vars(lr).items():
                if isinstance(value, dict):
                    assert not uds & set(value), f"LoopRing.{name} is keyed by user_data"
            assert lr.awaited == n  # counted, not looked up
            os.write(wfd, b"x" * 8 * n)
            assert await asyncio.wait_for(asyncio.gather(*tasks), 5) == [8] * n
            assert lr.ring.in_flight == 0 and lr.in_flight == 0 and lr.awaited == 0
        finally:
            lr.close()
            os.close(rfd)
            os.close(wfd)
    run(main())


def test_back_pressure_counts_awaited_requests_only(run: Loop) -> None:
    """capacity (8 on a 4-entry ring) awaited reads block on a pipe: more
    wait in ``room()`` without preparing an SQE; a watched request is not
    counted; a cancelled one gives its place back exactly once."""
    async def main() -> None:
        lr = ua.LoopRing(asyncio.get_running_loop(), entries=4)
        rfd, wfd = os.pipe()
        try:
            cap = lr.capacity
            assert cap == 8
            seen: List[Any] = []
            watched = lr.ring.prep_read(rfd, bytearray(8), -1)
            lr.watch(watched, seen.append)
            assert lr.ring.held(watched).owner == seen.append  # type: ignore[union-attr]
            tasks = _blocked_reads(lr, rfd, cap + 3)
            await asyncio.sleep(0.02)
            assert lr.awaited == cap and lr.in_flight == cap + 1
            assert lr.ring.in_flight == cap + 1  # the three beyond prepared nothing
            assert not any(t.done() for t in tasks)
            # Cancel one that is in flight: its place goes to one waiting for room.
            in_flight = {id(r.owner) for r in lr.ring.requests_in_flight()}
            assert len(in_flight) == cap + 1
            tasks[0].cancel()
            with pytest.raises(asyncio.CancelledError):
                await tasks[0]
            await asyncio.sleep(0.02)
            assert lr.awaited == cap and lr.ring.in_flight == cap + 1
            os.write(wfd, b"y" * 8 * (cap + 3))
            got = await asyncio.wait_for(asyncio.gather(*tasks[1:]), 5)
            assert got == [8] * (cap + 2)
            await asyncio.sleep(0.02)
            assert [c[1] for c in seen] == [8]  # the watched read got its share
            assert lr.awaited == 0 and lr.in_flight == 0 and lr.ring.in_flight == 0
            # The counter alone bounds the next batch, as before.
            more = _blocked_reads(lr, rfd, cap + 1)
            await asyncio.sleep(0.02)
            assert lr.awaited == cap and lr.ring.in_flight == cap
            os.write(wfd, b"z" * 8 * (cap + 1))
            assert await asyncio.wait_for(asyncio.gather(*more), 5) == [8] * (cap + 1)
            assert lr.awaited == 0 and lr.ring.in_flight == 0
        finally:
            lr.close()
            os.close(rfd)
            os.close(wfd)
    run(main())


# -- staged reads and writes (LoopRing.start_rw) -------------------------------------------


def test_staged_requests_reach_the_kernel_in_one_batch(run: Loop, data_path: Any) -> None:
    """``start_rw`` stages: the SQEs are filed by the tick's flush (or, on
    UringEventLoop, before the selector's enter), all of one tick at once,
    and each read gets its own bytes."""
    content = data_path.read_bytes()

    async def main() -> None:
        lr = ua.get_ring()
        async with ua.open(data_path, "rb") as f:
            coros = [f.pread(1000, i * 1000) for i in range(100)]
            assert await asyncio.gather(*coros) == [content[i * 1000:(i + 1) * 1000]
                                                     for i in range(100)]
            assert lr.in_flight == 0 and not lr._staged  # noqa: SLF001 - the stage is empty
        with pytest.raises(ValueError):  # out of range: refused at the call, nothing counted
            async with ua.open(data_path, "rb") as g:
                await g.pread(10, 1 << 64)
        assert lr.in_flight == 0
    run(main())


def test_staged_request_cancelled_before_it_is_filed(run: Loop, data_path: Any) -> None:
    """A request taken back while still staged becomes a NOP owning
    nothing: the kernel never writes into its buffer, nothing stays counted,
    and its CQE is dropped."""
    import uring
    from uring import abi

    async def main() -> None:
        lr = ua.get_ring()
        polls = lr.ring.in_flight  # UringEventLoop's own polls
        fd = os.open(data_path, os.O_RDONLY)
        try:
            buf = uring.PinnedBuffer(bytearray(64), writable=True)
            ud, fut = lr.start_rw(int(abi.IORING_OP_READ), fd, buf.address, 64, 0, buf)
            keep_ud, keep_fut = lr.start_rw(int(abi.IORING_OP_READ), fd, buf.address, 8, 64, buf)
            fut.cancel()
            assert await lr.after_cancel(ud, fut) is None  # at once: the kernel never saw it
            assert lr.awaited == 1
            assert (await keep_fut)[1] == 8  # the other one of the batch is unaffected
            await asyncio.sleep(0.01)
            assert bytes(buf.obj)[8:] == bytes(56)  # the cancelled 64-byte read never ran
            assert lr.in_flight == 0 and lr.ring.in_flight == polls and not lr._late  # noqa: SLF001
            del keep_ud
        finally:
            os.close(fd)
    run(main())


def test_loop_closed_with_staged_requests(run: Loop, data_path: Any) -> None:
    """Requests staged when the loop closes fail with ``RingClosedError``
    and are named in the ``ResourceWarning``, as requests in flight are."""
    import uring
    from uring import abi

    loop: Any = run.new_event_loop()
    fd = os.open(data_path, os.O_RDONLY)
    try:
        lr = ua.get_ring(loop)
        buf = uring.PinnedBuffer(bytearray(16), writable=True)
        _ud, fut = lr.start_rw(int(abi.IORING_OP_READ), fd, buf.address, 16, 0, buf)
        assert lr.awaited == 1
        with pytest.warns(ResourceWarning, match="IORING_OP_READ"):
            loop.close()
        assert isinstance(fut.exception(), uring.RingClosedError)
        assert lr.awaited == 0
    finally:
        os.close(fd)


def test_staged_requests_fail_when_the_ring_refuses_them(data_path: Any) -> None:
    """A flush the ring refuses (closed under the LoopRing) fails the staged
    futures with the ring's error, and nothing stays counted; a request
    taken back before is not failed twice."""
    import uring
    from uring import abi

    require_uring()
    loop = asyncio.new_event_loop()
    fd = os.open(data_path, os.O_RDONLY)
    lr = ua.LoopRing(loop, watch=False, stage=True)
    try:
        buf = uring.PinnedBuffer(bytearray(16), writable=True)
        read = int(abi.IORING_OP_READ)
        ud1, fut1 = lr.start_rw(read, fd, buf.address, 16, 0, buf)
        _ud2, fut2 = lr.start_rw(read, fd, buf.address, 16, 16, buf)
        fut1.cancel()
        assert loop.run_until_complete(lr.after_cancel(ud1, fut1)) is None
        assert lr.awaited == 1
        lr.ring.close()
        lr.file_staged()
        assert isinstance(fut2.exception(), uring.RingClosedError)
        assert lr.awaited == 0 and lr.in_flight == 0
    finally:
        lr.close()
        loop.close()
        os.close(fd)


def test_staged_read_goes_before_a_later_close(run: Loop, data_path: Any) -> None:
    """A read started before a close in the same tick reaches the SQ first
    (``room()`` files what is staged before the close is prepared), so it
    reads, as it did when reads were prepared at once."""
    content = data_path.read_bytes()

    async def main() -> None:
        f = await ua.open(data_path, "rb")
        reading = asyncio.ensure_future(f.pread(100, 50))
        await asyncio.sleep(0)  # the read is staged, not filed
        await f.close()
        assert await reading == content[50:150]
    run(main())

"""Closing what the loop polled, and a loop that could not be made.

* A socket closed right after ``remove_reader``/``remove_writer`` (asyncio's
  ``Server.close``, a transport's close, user code) is closed in the kernel
  when ``close()`` returns, on ``UringEventLoop`` as on asyncio's own loop:
  a connect in the same tick is refused (not accepted by a socket the
  program closed, then reset) and the port can be bound again at once.
  The selector sends the ``POLL_REMOVE`` of an armed poll from
  ``unregister`` itself instead of with the next ``io_uring_enter``;
  ``uring.asyncio``'s own ``Server.close`` cancels its accepts
  synchronously and closes its sockets at once too.
* The hot path stays free of system calls: unregistering an fd whose
  one-shot poll already reported (``sock_recv``'s add/remove pair) submits
  nothing.
* ``UringEventLoop()`` failing with ``UringUnavailableError`` (io_uring
  blocked by seccomp, io_uring requested) leaves nothing for
  ``BaseEventLoop.__del__`` to complain about, and in auto mode the
  fallback's ``RuntimeWarning`` names the line that called
  ``uring.asyncio.run``.

Real loopback sockets on both loops (the ``run`` fixture); the seccomp
cases run in a child process.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import subprocess
import sys
import textwrap
from typing import Any, Dict, List, Tuple

import pytest
from conftest import Loop, require_uring
from test_hostile import seccomp_prelude

import uring
import uring.asyncio as ua
from uring.asyncio.loop import UringSelector

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
R = 1  # selectors.EVENT_READ


def _connect_and_rebind(port: int) -> Tuple[str, str]:
    """A blocking connect to *port* and a bind of it, as the program that
    closed its listening socket would try next."""
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
        connected = "connected"
    except OSError as exc:
        connected = type(exc).__name__
    finally:
        s.close()
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        bound = "rebind ok"
    except OSError as exc:
        bound = f"rebind failed: {exc.strerror}"
    finally:
        s.close()
    return connected, bound


def _listener() -> Tuple[socket.socket, int]:
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    ls.setblocking(False)
    return ls, ls.getsockname()[1]


REFUSED = ("ConnectionRefusedError", "rebind ok")


# -- the loop's remove_reader/remove_writer, then close ------------------------------


def test_stock_server_close_closes_the_port_at_once(run: Loop) -> None:
    """asyncio's Server.close (remove_reader, then sock.close) on either
    loop: a connect in the same tick is refused, the port binds again."""

    async def main() -> Tuple[str, str]:
        srv = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        srv.close()
        got = _connect_and_rebind(port)
        await srv.wait_closed()
        return got

    assert run(main()) == REFUSED


def test_remove_reader_then_close_closes_the_socket_at_once(run: Loop) -> None:
    async def main() -> List[Tuple[str, str]]:
        loop = asyncio.get_running_loop()
        out = []
        for _ in range(3):  # and again: the dropped CQEs disturb nothing
            ls, port = _listener()
            loop.add_reader(ls.fileno(), lambda: None)
            await asyncio.sleep(0.01)  # the poll is armed in the kernel
            assert loop.remove_reader(ls.fileno())
            ls.close()
            out.append(_connect_and_rebind(port))
        return out

    assert run(main()) == [REFUSED] * 3


def test_remove_writer_then_remove_reader_then_close(run: Loop) -> None:
    """remove_writer changes the fd's poll (its removal may wait for the
    next enter: the fd stays registered); the remove_reader that follows
    sends every removal still waiting."""

    async def main() -> Tuple[str, str]:
        loop = asyncio.get_running_loop()
        ls, port = _listener()
        loop.add_reader(ls.fileno(), lambda: None)
        loop.add_writer(ls.fileno(), lambda: None)  # a listening socket is never writable
        await asyncio.sleep(0.01)
        assert loop.remove_writer(ls.fileno())
        assert loop.remove_reader(ls.fileno())
        ls.close()
        got = _connect_and_rebind(port)
        await asyncio.sleep(0.01)  # the loop goes on, the removals' CQEs dropped
        return got

    assert run(main()) == REFUSED


def test_uring_server_close_closes_the_port_at_once(run: Loop) -> None:
    """uring.asyncio's own Server.close, as asyncio's: refused at once and
    the port free; with a connection still open, refused at once, that
    connection still served, and wait_closed waits for it."""

    async def main() -> Tuple[Tuple[str, str], str, bytes]:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.read(10))
            await writer.drain()
            writer.close()

        srv = await ua.start_server(echo, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        srv.close()
        idle = _connect_and_rebind(port)
        await asyncio.wait_for(srv.wait_closed(), 5)

        srv = await ua.start_server(echo, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        reader, writer = await ua.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.01)
        srv.close()
        busy = _connect_and_rebind(port)[0]  # (the open connection holds the port)
        writer.write(b"still")
        data = await reader.read(10)
        writer.close()
        await asyncio.wait_for(srv.wait_closed(), 5)
        return idle, busy, data

    assert run(main()) == (REFUSED, "ConnectionRefusedError", b"still")


# -- the selector -------------------------------------------------------------------


class _Counting:
    """The ring's ``submit``, counted."""

    def __init__(self, ring: uring.Ring) -> None:
        self.calls = 0
        self._submit = ring.submit

    def __call__(self, *args: Any) -> int:
        self.calls += 1
        return self._submit(*args)


def test_unregister_then_close_the_peer_sees_eof_at_once() -> None:
    require_uring()
    with uring.Ring(16) as ring:
        sel = UringSelector(ring)
        a, b = socket.socketpair()
        try:
            sel.register(a, R)
            assert sel.select(0) == []  # armed
            sel.unregister(a)
            a.close()
            b.setblocking(False)
            assert b.recv(1) == b""  # no poll of ours holds the file: EOF now
            assert sel.select(0) == []  # the removal's CQEs are dropped
            assert sel.get_map() is not None and len(sel.get_map()) == 0
        finally:
            sel.close()
            a.close()
            b.close()


def test_unregister_submits_only_for_an_armed_poll() -> None:
    """The hot path: an fd whose poll reported (one-shot: no longer armed)
    is unregistered with no system call; an armed one with one submit."""
    require_uring()
    with uring.Ring(16) as ring:
        sel = UringSelector(ring)
        a, b = socket.socketpair()
        try:
            b.send(b"x")
            key = sel.register(a, R)
            assert sel.select(5) == [(key, R)]  # the poll reported
            counting = _Counting(ring)
            ring.submit = counting  # type: ignore[method-assign,assignment]
            sel.unregister(a)
            assert counting.calls == 0
            sel.register(a, R)
            sel.unregister(a)  # never armed: nothing to remove
            assert counting.calls == 0
            sel.register(a, R)
            assert sel.select(0) == [(sel.get_key(a), R)]
            a.recv(1)
            assert sel.select(0) == []  # armed again, nothing to read
            before = counting.calls
            sel.unregister(a)
            assert counting.calls == before + 1
        finally:
            del ring.submit
            sel.close()
            a.close()
            b.close()


# -- a loop that could not be made (a child under seccomp) ----------------------------

INIT_FAIL = textwrap.dedent(
    """
    import gc, json
    import uring.asyncio as ua
    from uring.asyncio.loop import UringEventLoop
    out = {}
    for name, make in (("new_event_loop", ua.new_event_loop), ("UringEventLoop", UringEventLoop)):
        try:
            make()
            out[name] = "made"
        except Exception as exc:
            out[name] = type(exc).__name__
    gc.collect()
    print(json.dumps(out))
    """
)

WARNS = textwrap.dedent(
    """
    import json, sys, warnings
    import uring.asyncio as ua

    async def main():
        return 7

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = ua.run(main())  # THE LINE
    print(json.dumps({"result": result, "warnings": [
        [w.category.__name__, w.filename, w.lineno] for w in caught]}))
    """
)


def _child(tmp_path: Any, source: str, backend: str) -> Tuple[Dict[str, Any], str, str]:
    """*source* as a script under a seccomp filter refusing io_uring_setup
    (EPERM): its JSON answer, its path and its stderr."""
    require_uring()
    path = os.path.join(str(tmp_path), "prog.py")
    with open(path, "w") as f:
        f.write(seccomp_prelude(errno.EPERM) + source)
    env = dict(os.environ, URING_ASYNCIO_BACKEND=backend)
    out = subprocess.run([sys.executable, path], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    result: Dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if "skip" in result:
        pytest.skip("cannot be set up here: " + result["skip"])
    return result, path, out.stderr


def test_failed_construction_leaves_nothing_for_del(tmp_path: Any) -> None:
    got, _path, stderr = _child(tmp_path, INIT_FAIL, "io_uring")
    assert got == {"new_event_loop": "UringUnavailableError",
                   "UringEventLoop": "UringUnavailableError"}
    assert "Exception ignored" not in stderr, stderr
    assert "AttributeError" not in stderr, stderr


def test_fallback_warning_names_the_line_that_called_run(tmp_path: Any) -> None:
    got, path, _stderr = _child(tmp_path, WARNS, "auto")
    assert got["result"] == 7
    with open(path) as f:
        line = next(i for i, text in enumerate(f.read().splitlines(), 1) if "THE LINE" in text)
    runtime = [w for w in got["warnings"] if w[0] == "RuntimeWarning"]
    assert runtime == [["RuntimeWarning", path, line]], got["warnings"]

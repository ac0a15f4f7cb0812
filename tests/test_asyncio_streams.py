"""uring.asyncio's streams keep asyncio's transport contract (issue 15, item 1).

A transport never delivers data from inside ``pause_reading``/
``resume_reading``: data held while paused goes to the protocol on a later
loop iteration, in order, and only if the transport is still reading.
``StreamReader._wait_for_data`` resumes the transport *before* it creates
its waiter, so a transport that delivered synchronously there left
``readexactly(n)`` with ``n`` past twice the reader's limit waiting forever.

Every test runs on both loops (the ``run`` fixture, as in test_asyncio.py):
the stock asyncio loop with a ring attached, and ``uring.asyncio.run``'s
UringEventLoop.  Real loopback sockets only.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, Awaitable, Callable, List, Tuple

import pytest
from conftest import Loop
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import uring.asyncio as ua

# -- the two loops (the minimal copy of test_asyncio.py's fixture) ---------------------


MB4 = 4 << 20
LIMIT = 1024


def _content(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def _lines(total: int, max_line: int, seed: int = 2) -> bytes:
    """About *total* bytes of ``\\n``-ended lines, none longer than *max_line*
    (separator included), no other ``\\n``."""
    rnd = random.Random(seed)
    letters = bytes(97 + b % 26 for b in rnd.randbytes(max_line))
    out = bytearray()
    while len(out) < total:
        n = rnd.randrange(1, max_line + 1)
        at = rnd.randrange(max_line - n + 1)
        out += letters[at:at + n - 1] + b"\n"
    return bytes(out)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except ConnectionError:
        pass


# ======================================================================================
# 1. The reported hang
# ======================================================================================


def test_readexactly_past_twice_the_limit_after_data_arrived(run: Loop) -> None:
    """The issue's repro: the data is already in the reader when
    ``readexactly(300000)`` (> 2 * 64 KiB) starts; it must return."""
    async def main() -> None:
        srv = await asyncio.start_server(lambda r, w: w.write(b"y" * 300000), "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        r, w = await ua.open_connection("127.0.0.1", port)
        await asyncio.sleep(.2)
        assert await asyncio.wait_for(r.readexactly(300000), 3) == b"y" * 300000
        await _close(w)
        srv.close()
        await srv.wait_closed()
    run(main())


# ======================================================================================
# 2. CPython's stream tests, at sizes past twice the limit, both directions
# ======================================================================================


async def _check_readexactly(reader: asyncio.StreamReader, payload: bytes) -> None:
    assert await reader.readexactly(len(payload) // 2) == payload[:len(payload) // 2]
    pos = len(payload) // 2
    step = 3 * LIMIT + 7
    while len(payload) - pos >= step:
        assert await reader.readexactly(step) == payload[pos:pos + step]
        pos += step
    with pytest.raises(asyncio.IncompleteReadError) as info:
        await reader.readexactly(len(payload) - pos + 1)
    assert info.value.partial == payload[pos:]
    assert reader.at_eof()


async def _check_readuntil(reader: asyncio.StreamReader, payload: bytes) -> None:
    # First a line past twice the limit: LimitOverrunError, nothing consumed.
    long_line = payload.index(b"\n") + 1
    assert long_line > 2 * LIMIT
    with pytest.raises(asyncio.LimitOverrunError):
        await reader.readuntil(b"\n")
    assert await reader.readexactly(long_line) == payload[:long_line]
    pos = long_line
    while pos < len(payload):
        end = payload.index(b"\n", pos) + 1
        assert await reader.readuntil(b"\n") == payload[pos:end]
        pos = end
    with pytest.raises(asyncio.IncompleteReadError) as info:
        await reader.readuntil(b"\n")
    assert info.value.partial == b""


async def _check_read(reader: asyncio.StreamReader, payload: bytes) -> None:
    got = bytearray()
    first = await reader.read(3 * LIMIT)
    assert 0 < len(first) <= 3 * LIMIT
    got += first
    while True:
        chunk = await reader.read(5 * LIMIT + 3)
        assert len(chunk) <= 5 * LIMIT + 3
        if not chunk:
            break
        got += chunk
        if len(got) >= len(payload) // 2:
            got += await reader.read()  # read(-1): to EOF, past every limit
            break
    assert bytes(got) == payload
    assert await reader.read(10) == b""


async def _check_readline(reader: asyncio.StreamReader, payload: bytes) -> None:
    pos = 0
    while pos < len(payload):
        end = payload.index(b"\n", pos) + 1
        assert await reader.readline() == payload[pos:end]
        pos = end
    assert await reader.readline() == b""


CHECKS: dict = {
    "readexactly": (_check_readexactly, lambda: _content(MB4, seed=3)),
    "readuntil": (_check_readuntil,
                  lambda: b"L" * (3 * LIMIT) + b"\n" + _lines(MB4, LIMIT, seed=4)),
    "read": (_check_read, lambda: _content(MB4, seed=5)),
    "readline": (_check_readline, lambda: _lines(MB4, LIMIT, seed=6)),
}


@pytest.mark.parametrize("side", ["client", "server"])
@pytest.mark.parametrize("op", sorted(CHECKS))
def test_stream_reads_4mb_small_limit(run: Loop, op: str, side: str) -> None:
    """4 MB through a reader with ``limit=1024``: the reader is the client
    (``ua.open_connection``) or the server side (``ua.start_server``)."""
    check, make = CHECKS[op]
    payload = make()

    async def main() -> None:
        result: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                if side == "client":
                    writer.write(payload)
                    await writer.drain()
                else:
                    await check(reader, payload)
                result.set_result(None)
            except BaseException as exc:
                result.set_exception(exc)
            finally:
                writer.close()

        limit = LIMIT if side == "server" else 2 ** 16
        srv = await ua.start_server(handler, "127.0.0.1", 0, limit=limit)
        port = srv.sockets[0].getsockname()[1]
        reader, writer = await ua.open_connection(
            "127.0.0.1", port, limit=LIMIT if side == "client" else 2 ** 16)
        if side == "client":
            await asyncio.wait_for(check(reader, payload), 30)
        else:
            writer.write(payload)
            await writer.drain()
            writer.write_eof()
        await asyncio.wait_for(result, 30)
        await _close(writer)
        srv.close()
        await srv.wait_closed()
    run(main())


# ======================================================================================
# 3. Random read sequences against the stock transport's results
# ======================================================================================

Step = Tuple[str, int, float]  # (kind, size, sleep before it)


async def _do_steps(reader: asyncio.StreamReader, transport: asyncio.Transport,
                    steps: List[Step]) -> List[Tuple[str, bytes]]:
    """The steps' results, each consuming a deterministic part of the
    stream: ``read(n)`` returns what is buffered, so it is topped up with
    ``readexactly`` to *n* bytes (or to EOF); lines are never over limit."""
    log: List[Tuple[str, bytes]] = []
    for kind, size, pause in steps:
        if kind == "pause":
            # The transport paused, data held meanwhile, then resumed.
            if transport.is_reading():
                transport.pause_reading()
                await asyncio.sleep(pause)
                transport.resume_reading()
            continue
        if pause:
            await asyncio.sleep(pause)
        got = b""
        try:
            if kind == "readexactly":
                got = await reader.readexactly(size)
            elif kind == "read":
                got = await reader.read(size)
                assert len(got) <= size
                if got and len(got) < size:
                    got += await reader.readexactly(size - len(got))
            elif kind == "readline":
                got = await reader.readline()
            else:
                got = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            got = b"EOF:" + got + exc.partial
        log.append((kind, got))
    log.append(("rest", await reader.read()))
    return log


@st.composite
def _programs(draw: Callable[..., Any]) -> Tuple[int, int, int, List[int], List[Step]]:
    limit = draw(st.sampled_from([64, 100, 1024, 4096, 2 ** 16]) | st.integers(16, 8192))
    total = draw(st.integers(0, 400_000) | st.integers(200_000, 600_000))
    seed = draw(st.integers(0, 2 ** 16))
    # How the server writes it: chunks (cut at these offsets), with short sleeps.
    cuts = sorted(draw(st.lists(st.integers(0, total), max_size=4)))
    kinds = st.sampled_from(["readexactly", "read", "readline", "readuntil", "pause"])
    # Reads past twice the limit, and past what can be buffered: the hang.
    sizes = st.integers(1, 5 * limit) | st.integers(2 * limit + 1, 300_000)
    pauses = st.sampled_from([0.0, 0.0, 0.001, 0.02, 0.05])
    steps = draw(st.lists(st.tuples(kinds, sizes, pauses), max_size=12))
    return limit, total, seed, cuts, steps


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(program=_programs())
@example(program=(1024, 300_000, 9, [], [("readexactly", 250_000, 0.05), ("read", 40_000, 0.0)]))
def test_random_reads_match_the_stock_transport(run: Loop, program: Any) -> None:
    """Lines never exceed the limit (so readline/readuntil results do not
    depend on how the bytes arrived); the same steps on ``ua.open_connection``
    and on ``asyncio.open_connection`` against one server give the same log."""
    limit, total, seed, cuts, steps = program
    payload = _lines(total, limit, seed=seed) if total else b""
    bounds = [0] + [min(c, len(payload)) for c in cuts] + [len(payload)]
    chunks = [payload[a:b] for a, b in zip(bounds, bounds[1:])]

    async def main() -> Tuple[Any, Any]:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
                await asyncio.sleep(0.002)
            writer.close()

        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        logs = []
        opener: Callable[..., Awaitable[Any]]
        for opener in (ua.open_connection, asyncio.open_connection):
            reader, writer = await opener("127.0.0.1", port, limit=limit)
            logs.append(await asyncio.wait_for(_do_steps(reader, writer.transport, steps), 20))
            await _close(writer)
        srv.close()
        await srv.wait_closed()
        return logs[0], logs[1]

    ours, stock = run(main())
    assert ours == stock
    assert b"".join(got.removeprefix(b"EOF:") for _, got in ours) == payload


# ======================================================================================
# 4. The transport itself: nothing delivered from inside resume_reading
# ======================================================================================


def test_resume_reading_delivers_held_data_later(run: Loop) -> None:
    payload = _content(1 << 20, seed=7)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        calls: List[Tuple[str, Any]] = []
        inside = [False]
        done: "asyncio.Future[None]" = loop.create_future()

        class Proto(asyncio.Protocol):
            transport: Any = None

            def connection_made(self, transport: Any) -> None:
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                calls.append(("data", (inside[0], self.transport.is_reading(), data)))
                if len(calls) == 1:
                    self.transport.pause_reading()  # the rest of this batch is held

            def eof_received(self) -> None:
                calls.append(("eof", inside[0]))
                if not done.done():
                    done.set_result(None)

            def connection_lost(self, exc: Any) -> None:
                calls.append(("lost", exc))

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(payload)
            await writer.drain()
            writer.close()

        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        transport, _ = await ua.create_connection(Proto, "127.0.0.1", port)
        for _ in range(100):
            if calls:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # paused: nothing may arrive now
        assert len(calls) == 1 and not transport.is_reading()
        assert getattr(transport, "_held", True), "no data held: the test did not test"

        # Pause/resume again before the held data went out: still delivered once.
        inside[0] = True
        transport.resume_reading()
        transport.pause_reading()
        transport.resume_reading()
        inside[0] = False
        assert len(calls) == 1, "data_received called from inside resume_reading"
        assert transport.is_reading()

        # Paused again before the next iteration: the held data stays held.
        transport.pause_reading()
        await asyncio.sleep(0.05)
        assert len(calls) == 1
        transport.resume_reading()
        await asyncio.wait_for(done, 10)
        data_calls = [c[1] for c in calls if c[0] == "data"]
        assert not any(inside_ for inside_, _, _ in data_calls)
        assert all(reading for _, reading, _ in data_calls[1:])
        assert b"".join(d for _, _, d in data_calls) == payload
        assert [c[0] for c in calls].count("eof") == 1
        transport.close()
        await asyncio.sleep(0.05)
        assert calls[-1] == ("lost", None)
        srv.close()
        await srv.wait_closed()
    run(main())


def test_pause_inside_delivery_keeps_the_rest_in_order(run: Loop) -> None:
    """A protocol that pauses in each ``data_received`` gets one chunk per
    resume, in order, and never while paused; close drops what is held."""
    payload = _content(3 << 20, seed=8)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        got = bytearray()
        events: List[str] = []
        eof: "asyncio.Future[None]" = loop.create_future()

        class Proto(asyncio.Protocol):
            transport: Any = None

            def connection_made(self, transport: Any) -> None:
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                events.append("data" if self.transport.is_reading() else "data while paused")
                got.extend(data)
                self.transport.pause_reading()

            def eof_received(self) -> bool:
                events.append("eof")
                if not eof.done():
                    eof.set_result(None)
                return True  # keep open

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(payload)
            await writer.drain()
            writer.close()

        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        transport, _ = await ua.create_connection(Proto, "127.0.0.1", port)
        while not eof.done():
            await asyncio.sleep(0.001)
            before = len(events)
            transport.resume_reading()
            assert len(events) == before
            for _ in range(3):
                await asyncio.sleep(0)
        assert bytes(got) == payload
        # Paused and resumed after EOF: eof_received is not reported again.
        transport.pause_reading()
        transport.resume_reading()
        await asyncio.sleep(0.02)
        assert events.count("eof") == 1 and events[-1] == "eof"
        assert set(events) == {"data", "eof"}
        transport.close()
        srv.close()
        await srv.wait_closed()
    run(main())


def test_abort_takes_back_a_staged_send(run: Loop) -> None:
    """A send staged in this tick and aborted before the flush never reaches
    the kernel: the peer gets nothing, the transport's send ends with the
    ``-ECANCELED`` a cancelled request gets, ``connection_lost`` comes
    once, and nothing stays counted on the ring."""

    async def main() -> None:
        lr = ua.get_ring()
        got: List[bytes] = []
        peer_done = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got.append(await reader.read())
            peer_done.set_result(None)
            writer.close()

        server = await ua.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        lost: List[Any] = []

        class Client(asyncio.Protocol):
            def connection_lost(self, exc: Any) -> None:
                lost.append(exc)

        transport, _ = await ua.create_connection(Client, "127.0.0.1", port)
        base = lr.in_flight
        transport.write(b"never sent")  # staged: the flush has not run yet
        assert lr.in_flight == base + 1
        transport.abort()
        await asyncio.wait_for(peer_done, 5)
        await asyncio.sleep(0.01)
        assert got == [b""] and lost == [None]
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.01)
        assert lr.in_flight == 0

    run(main())


def test_loop_closed_with_a_staged_send_warns(run: Loop) -> None:
    """A send still staged when the loop closes is named in the
    ``ResourceWarning``, as a request in flight is, and stops counting."""
    import errno
    import socket

    from uring import abi
    from uring.buffers import export

    loop: Any = run.new_event_loop()
    a, b = socket.socketpair()
    try:
        lr = ua.get_ring(loop)
        seen: List[Any] = []
        keep, address, nbytes = export(b"staged", False)
        lr.start_watched(int(abi.IORING_OP_SEND), a.fileno(), address, nbytes, 0, keep,
                         seen.append)
        assert lr.in_flight == 1
        with pytest.warns(ResourceWarning, match="IORING_OP_SEND"):
            loop.close()
        assert lr.in_flight == 0
        assert [cqe[1] for cqe in seen] == [-errno.ECANCELED]  # as the drain ends those in flight
    finally:
        a.close()
        b.close()

"""uring.asyncio's streams take asyncio's keyword arguments.

``open_connection``/``start_server`` and ``create_connection``/
``create_server`` accept what asyncio's accept on the Python running
(``ssl``, ``local_addr``, ``family``/``proto``/``flags``, ``sock``,
``happy_eyeballs_delay``/``interleave``, ``backlog``, ``reuse_address``/
``reuse_port``, ``start_serving``, the ``ssl_*`` timeouts, ...), do on
io_uring what maps onto its transports, and hand TLS to asyncio's own
implementation.  Where they refuse something, they refuse it as asyncio
does (the same exception type, checked side by side on the same loop).
The thread fallback takes the same keywords.

Both loops (the ``run`` fixture), real loopback sockets.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import shutil
import socket
import ssl
import subprocess
import sys
from typing import Any, Awaitable, Callable, Dict, List, Tuple

import pytest
from conftest import Loop

import uring.asyncio as ua
from uring.asyncio import streams as ua_streams
from uring.asyncio.streams import RingSocketTransport

# -- helpers ----------------------------------------------------------------------------


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo, then the peer's address as the server saw it."""
    data = await reader.read(100)
    writer.write(data + b"|" + str(writer.get_extra_info("peername")[0]).encode())
    await writer.drain()
    writer.close()


async def _round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Tuple[str, str]:
    writer.write(b"ping")
    data = await reader.read(200)
    writer.close()
    try:
        await writer.wait_closed()
    except ConnectionError:
        pass
    echoed, _, peer = data.decode().partition("|")
    return echoed, peer


_SOCKETS: List[socket.socket] = []


def _sock(kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket for a call that must refuse it, closed after the test."""
    s = socket.socket(type=kind)
    _SOCKETS.append(s)
    return s


@pytest.fixture(autouse=True)
def _close_sockets() -> Any:
    yield
    while _SOCKETS:
        _SOCKETS.pop().close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


async def _outcome(make: Callable[[], Awaitable[Any]]) -> str:
    """What awaiting *make()* did: "ok", or the exception's class name."""
    try:
        got = await make()
    except BaseException as exc:  # noqa: BLE001 - the class is the answer
        return type(exc).__name__
    if isinstance(got, tuple) and len(got) == 2 and isinstance(got[1], asyncio.StreamWriter):
        got[1].close()
    elif isinstance(got, tuple) and len(got) == 2 and isinstance(got[0], asyncio.BaseTransport):
        got[0].close()
    elif isinstance(got, asyncio.AbstractServer):
        got.close()
        await got.wait_closed()
    return "ok"


# -- signatures -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["create_connection", "create_server"])
def test_signature_has_every_keyword_of_asyncio(name: str) -> None:
    stock = set(inspect.signature(getattr(asyncio.BaseEventLoop, name)).parameters) - {"self"}
    ours = set(inspect.signature(getattr(ua, name)).parameters)
    assert stock <= ours, stock - ours


# -- open_connection --------------------------------------------------------------------

CONNECT_CASES: Dict[str, Dict[str, Any]] = {
    "ssl=None": {"ssl": None},
    "ssl=False": {"ssl": False},
    "local_addr": {"local_addr": ("127.0.0.2", 0)},
    "family/proto/flags": {"family": socket.AF_INET, "proto": socket.IPPROTO_TCP,
                           "flags": socket.AI_NUMERICHOST},
    "happy_eyeballs": {"happy_eyeballs_delay": 0.05, "interleave": 1},
    "interleave": {"interleave": 2},
    "ssl defaults": {"server_hostname": None, "ssl_handshake_timeout": None},
    "sock": {"sock": None},  # a socket connected to the server, host/port not given
}
if sys.version_info >= (3, 11):
    CONNECT_CASES["ssl_shutdown_timeout=None"] = {"ssl_shutdown_timeout": None}
if sys.version_info >= (3, 12):
    CONNECT_CASES["all_errors"] = {"all_errors": True}


@pytest.mark.parametrize("case", sorted(CONNECT_CASES))
def test_open_connection_keywords(run: Loop, case: str) -> None:
    kwds = CONNECT_CASES[case]

    async def main() -> Tuple[Tuple[str, str], str, Any]:
        srv = await ua.start_server(_echo, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        if "sock" in kwds:
            reader, writer = await ua.open_connection(
                sock=socket.create_connection(("127.0.0.1", port)))
        else:
            reader, writer = await ua.open_connection("127.0.0.1", port, **kwds)
        kind = type(writer.transport).__name__
        sockname = writer.get_extra_info("sockname")
        got = await _round_trip(reader, writer)
        srv.close()
        await srv.wait_closed()
        return got, kind, sockname

    result: Any = run(main())
    got, kind, sockname = result
    assert kind == RingSocketTransport.__name__
    expected_peer = "127.0.0.2" if "local_addr" in kwds else "127.0.0.1"
    assert got == ("ping", expected_peer)
    assert sockname[0] == expected_peer


def test_open_connection_local_addr_with_a_port(run: Loop) -> None:
    async def main() -> Tuple[Any, Tuple[str, str]]:
        srv = await ua.start_server(_echo, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        local = ("127.0.0.3", _closed_port())
        reader, writer = await ua.open_connection("127.0.0.1", port, local_addr=local)
        sockname = writer.get_extra_info("sockname")
        got = await _round_trip(reader, writer)
        srv.close()
        await srv.wait_closed()
        return sockname == local, got

    assert run(main()) == (True, ("ping", "127.0.0.3"))


def test_happy_eyeballs_tries_every_address(run: Loop) -> None:
    """A name resolving to refused addresses of both families, then the
    server: the staggered attempts (and the interleaved order) reach it;
    with no server among them, the error is asyncio's."""

    async def main() -> List[str]:
        loop = asyncio.get_running_loop()
        srv = await ua.start_server(_echo, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        closed = _closed_port()
        v6 = (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", closed, 0, 0))
        v4_closed = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", closed))
        v4 = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))
        answers = {"good.invalid": [v6, v6, v4_closed, v4], "bad.invalid": [v6, v4_closed]}

        async def getaddrinfo(host: Any, *args: Any, **kwds: Any) -> List[Any]:
            return list(answers[host])

        loop.getaddrinfo = getaddrinfo  # type: ignore[method-assign]
        out = []
        for kwds in ({}, {"happy_eyeballs_delay": 0.02}, {"interleave": 1}):
            reader, writer = await ua.open_connection("good.invalid", 1, **kwds)
            out.append((await _round_trip(reader, writer))[0])
        for opener in (ua.open_connection, asyncio.open_connection):
            tries: List[Dict[str, Any]] = [{}, {"happy_eyeballs_delay": 0.02}]
            for kwds in tries:
                out.append(await _outcome(functools.partial(opener, "bad.invalid", 1, **kwds)))
        srv.close()
        await srv.wait_closed()
        return out

    # two refused attempts with different addresses: asyncio's "Multiple exceptions"
    assert run(main()) == ["ping"] * 3 + ["OSError"] * 4


def _stock_and_ours(run: Loop, call: Callable[[Any, int], Awaitable[Any]]) -> Tuple[str, str]:
    """*call(opener, port)* with uring.asyncio's open_connection and
    asyncio's, against a server on the same loop: both outcomes."""

    async def main() -> Tuple[str, str]:
        srv = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        ours = await _outcome(lambda: call(ua.open_connection, port))
        stock = await _outcome(lambda: call(asyncio.open_connection, port))
        srv.close()
        await srv.wait_closed()
        return ours, stock

    result: Any = run(main())
    return result  # type: ignore[no-any-return]


REFUSALS: Dict[str, Callable[[Any, int], Awaitable[Any]]] = {
    "server_hostname without ssl": lambda o, p: o("127.0.0.1", p, server_hostname="x"),
    "ssl_handshake_timeout without ssl": lambda o, p: o("127.0.0.1", p, ssl_handshake_timeout=1),
    "ssl_shutdown_timeout without ssl": lambda o, p: o("127.0.0.1", p, ssl_shutdown_timeout=1),
    "all_errors": lambda o, p: o("127.0.0.1", _closed_port(), all_errors=True),
    "unknown keyword": lambda o, p: o("127.0.0.1", p, bogus=1),
    "host and sock": lambda o, p: o("127.0.0.1", p, sock=_sock()),
    "neither host nor sock": lambda o, p: o(),
    "datagram sock": lambda o, p: o(sock=_sock(socket.SOCK_DGRAM)),
    "refused": lambda o, p: o("127.0.0.1", _closed_port()),
    "local_addr of another family": lambda o, p: o("127.0.0.1", p, local_addr=("::1", 0)),
    "local_addr in use": lambda o, p: o("127.0.0.1", p, local_addr=("127.0.0.1", p)),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_open_connection_refuses_as_asyncio(run: Loop, case: str) -> None:
    ours, stock = _stock_and_ours(run, REFUSALS[case])
    assert ours == stock
    if case == "ssl_shutdown_timeout without ssl":
        assert stock == ("ValueError" if sys.version_info >= (3, 11) else "TypeError")
    if case == "all_errors":
        assert stock == ("ExceptionGroup" if sys.version_info >= (3, 12) else "TypeError")


# -- start_server -----------------------------------------------------------------------

SERVER_CASES: Dict[str, Dict[str, Any]] = {
    "ssl=None": {"ssl": None},
    "backlog": {"backlog": 5},
    "reuse_address": {"reuse_address": True},
    "no reuse_address": {"reuse_address": False},
    "reuse_port": {"reuse_port": True},
    "family/flags": {"family": socket.AF_INET, "flags": socket.AI_PASSIVE},
    "ssl defaults": {"ssl_handshake_timeout": None, "start_serving": True},
}
if sys.version_info >= (3, 13):
    SERVER_CASES["keep_alive"] = {"keep_alive": True}


@pytest.mark.parametrize("case", sorted(SERVER_CASES))
def test_start_server_keywords(run: Loop, case: str) -> None:
    kwds = SERVER_CASES[case]

    async def main() -> Tuple[Tuple[str, str], bool, bool]:
        srv = await ua.start_server(_echo, "127.0.0.1", 0, **kwds)
        port = srv.sockets[0].getsockname()[1]
        reuse = bool(srv.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR))
        servers = [srv]
        if kwds.get("reuse_port"):  # a second server on the same port
            servers.append(await ua.start_server(_echo, "127.0.0.1", port, **kwds))
        for _ in range(len(servers) * 2):
            got = await _round_trip(*await ua.open_connection("127.0.0.1", port))
        mine = isinstance(srv, ua.Server)
        for s in servers:
            s.close()
            await s.wait_closed()
        return got, mine, reuse

    result: Any = run(main())
    got, mine, reuse = result
    assert got == ("ping", "127.0.0.1") and mine
    assert reuse is (kwds.get("reuse_address") is not False)


@pytest.mark.parametrize("given", ["host", "sock"])
def test_start_serving_false_listens_once_started(run: Loop, given: str) -> None:
    """As asyncio's: the sockets (bound from *host*, or the bound *sock*
    given) listen only from start_serving() on: a connect before is
    refused; then served, on the backlog given."""

    async def main() -> Tuple[str, bool, str, bool]:
        if given == "sock":
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            srv = await ua.start_server(_echo, sock=s, start_serving=False, backlog=3)
        else:
            srv = await ua.start_server(_echo, "127.0.0.1", 0, start_serving=False, backlog=3)
        port = srv.sockets[0].getsockname()[1]
        before = await _outcome(lambda: ua.open_connection("127.0.0.1", port))
        serving_before = srv.is_serving()
        await srv.start_serving()
        after = (await _round_trip(*await ua.open_connection("127.0.0.1", port)))[0]
        serving = srv.is_serving()
        srv.close()
        await srv.wait_closed()
        return before, serving_before, after, serving

    assert run(main()) == ("ConnectionRefusedError", False, "ping", True)


SERVER_REFUSALS: Dict[str, Callable[[Any], Awaitable[Any]]] = {
    "ssl_handshake_timeout without ssl": lambda s: s(_echo, "127.0.0.1", 0, ssl_handshake_timeout=1),
    "ssl_shutdown_timeout without ssl": lambda s: s(_echo, "127.0.0.1", 0, ssl_shutdown_timeout=1),
    "keep_alive": lambda s: s(_echo, "127.0.0.1", 0, keep_alive=True),
    "ssl=True": lambda s: s(_echo, "127.0.0.1", 0, ssl=True),
    "unknown keyword": lambda s: s(_echo, "127.0.0.1", 0, bogus=1),
    "host and sock": lambda s: s(_echo, "127.0.0.1", 0, sock=_sock()),
    "neither host nor sock": lambda s: s(_echo),
    "datagram sock": lambda s: s(_echo, sock=_sock(socket.SOCK_DGRAM)),
}


@pytest.mark.parametrize("case", sorted(SERVER_REFUSALS))
def test_start_server_refuses_as_asyncio(run: Loop, case: str) -> None:
    async def main() -> Tuple[str, str]:
        return (await _outcome(lambda: SERVER_REFUSALS[case](ua.start_server)),
                await _outcome(lambda: SERVER_REFUSALS[case](asyncio.start_server)))

    result: Any = run(main())
    ours, stock = result
    assert ours == stock
    if case == "keep_alive":
        assert stock == ("ok" if sys.version_info >= (3, 13) else "TypeError")


# -- TLS: asyncio's own implementation ---------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: Any) -> Tuple[ssl.SSLContext, ssl.SSLContext]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command to make a certificate")
    d = str(tmp_path_factory.mktemp("tls"))
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=cert)
    return server, client


def test_tls_is_asyncios_own(run: Loop, tls: Tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls

    async def main() -> List[Any]:
        srv = await ua.start_server(_echo, "127.0.0.1", 0, ssl=server_ctx,
                                    ssl_handshake_timeout=10)
        port = srv.sockets[0].getsockname()[1]
        out: List[Any] = [isinstance(srv, ua.Server)]
        cases: List[Dict[str, Any]] = [{"ssl": client_ctx, "server_hostname": "localhost"},
                                       {"ssl": client_ctx, "ssl_handshake_timeout": 10}]
        for kwds in cases:
            reader, writer = await ua.open_connection("127.0.0.1", port, **kwds)
            out.append(writer.get_extra_info("ssl_object") is not None)
            out.append((await _round_trip(reader, writer))[0])
        srv.close()
        await srv.wait_closed()
        return out

    assert run(main()) == [False, True, "ping", True, "ping"]


# -- the thread fallback takes the same keywords ----------------------------------------


def test_thread_fallback_takes_the_same_keywords(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the fallback in use (use_threads true), every call goes to
    asyncio's with the keywords as given: asyncio's transports."""
    monkeypatch.setattr(ua_streams, "use_threads", lambda ring=None: True)

    async def main() -> List[Any]:
        srv = await ua.create_server(asyncio.Protocol, "127.0.0.1", 0, backlog=5,
                                     reuse_port=True, start_serving=False, flags=socket.AI_PASSIVE,
                                     ssl=None)
        out: List[Any] = [isinstance(srv, ua.Server), srv.is_serving()]
        await srv.start_serving()
        port = srv.sockets[0].getsockname()[1]
        transport, _ = await ua.create_connection(
            asyncio.Protocol, "127.0.0.1", port, local_addr=("127.0.0.2", 0), proto=0, flags=0,
            ssl=None, happy_eyeballs_delay=0.05, interleave=1)
        out.append(type(transport).__name__ != RingSocketTransport.__name__)
        out.append(transport.get_extra_info("sockname")[0])
        transport.close()
        reader, writer = await ua.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0),
                                                  ssl=None)
        out.append(writer.get_extra_info("sockname")[0])
        writer.close()
        srv.close()
        await srv.wait_closed()
        return out

    assert asyncio.run(main()) == [False, False, True, "127.0.0.2", "127.0.0.2"]

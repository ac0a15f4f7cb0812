"""Socket operations as io_uring requests, with asyncio's own semantics.

Each function is the ``loop.sock_*`` method of the same name, done as one
(or, for ``sock_sendall``, as many as it takes) io_uring request instead of
"wait for readiness, then call":

=========================  ================================================
``sock_recv(sock, n)``     ``IORING_OP_RECV`` into a fresh buffer
``sock_recv_into``         ``IORING_OP_RECV`` into the caller's buffer
``sock_sendall``           ``IORING_OP_SEND`` until every byte is sent
``sock_sendto``            ``IORING_OP_SEND`` with a destination
``sock_recvfrom[_into]``   ``IORING_OP_RECVMSG`` with a ``msg_name``
``sock_accept``            ``IORING_OP_ACCEPT`` (the peer's address with it)
``sock_connect``           ``IORING_OP_CONNECT`` (names resolved first)
=========================  ================================================

The socket may be blocking or not: io_uring never blocks the loop (a
receive with no data arms the kernel's internal poll and completes when
data comes).  Accepted sockets are non-blocking and close-on-exec, as
asyncio's are.

Where io_uring is unavailable (``uring.asyncio.backend()`` is
``"threads"``), each is the running loop's own ``loop.sock_*`` method
(readiness, no thread needed); the socket must then be non-blocking, as
for the loop methods.  A ``ring`` given explicitly is always used.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any, Optional, Tuple

from ..ops.net import make_sockaddr
from ..request import Completion
from .driver import LoopRing, get_ring
from .fallback import use_threads

__all__ = [
    "sock_accept",
    "sock_connect",
    "sock_recv",
    "sock_recv_into",
    "sock_recvfrom",
    "sock_recvfrom_into",
    "sock_sendall",
    "sock_sendto",
]


def close_fd(cqe: Any) -> None:
    """``salvage`` for an open whose task was cancelled after the kernel
    made the fd: nobody will ever see that fd, so it is closed here."""
    try:
        os.close(cqe[1])
    except OSError:
        pass


def _loop() -> Any:
    """The running loop (its ``sock_*`` methods: the fallback)."""
    return asyncio.get_running_loop()


def _lr(ring: Optional[LoopRing]) -> LoopRing:
    return ring if ring is not None else get_ring()


def _fd(sock: Any) -> int:
    fd = sock if isinstance(sock, int) else sock.fileno()
    if fd < 0:
        raise OSError(9, "Bad file descriptor: the socket is closed")
    return fd  # type: ignore[no-any-return]


async def sock_recv(sock: socket.socket, nbytes: int, *, ring: Optional[LoopRing] = None) -> bytes:
    """Up to *nbytes* from *sock* (``b""``: the peer shut down)."""
    if use_threads(ring):  # io_uring unavailable: the loop's own method
        return await _loop().sock_recv(sock, nbytes)
    if nbytes < 0:
        raise ValueError("negative buffersize in recv")
    buf = bytearray(nbytes)
    n = await sock_recv_into(sock, buf, ring=ring)
    del buf[n:]
    return bytes(buf)


def _from_pushed(lr: LoopRing, fd: int, view: memoryview) -> Optional[Tuple[int, Any]]:
    """Fill *view* from what a cancelled receive on *fd* had already got
    (``LoopRing.push_back``): ``(nbytes, address)``, or None."""
    item = lr.take_back(fd)
    if item is None:
        return None
    data, address = item
    n = min(len(data), view.nbytes)
    view[:n] = data[:n]
    if n < len(data):
        lr.put_first(fd, (data[n:], address))
    return n, address


async def sock_recv_into(sock: socket.socket, buf: Any, *, ring: Optional[LoopRing] = None) -> int:
    """Receive into *buf* (writable); the byte count."""
    if use_threads(ring):
        return await _loop().sock_recv_into(sock, buf)
    lr = _lr(ring)
    fd = _fd(sock)
    if lr.holds_back(fd):
        got = _from_pushed(lr, fd, memoryview(buf).cast("B"))
        if got is not None:
            return got[0]
    if lr.awaited >= lr.capacity:
        await lr.room()

    def salvage(cqe: Any) -> None:  # the kernel took the bytes before the cancel did
        lr.push_back(fd, (bytes(memoryview(buf).cast("B")[:cqe[1]]), None))

    return await lr.run_res(lr.ring.prep_recv(fd, buf), "IORING_OP_RECV", fd, salvage)


async def sock_sendall(sock: socket.socket, data: Any, *, ring: Optional[LoopRing] = None) -> None:
    """Send all of *data*: a stream socket may take it in parts, and each
    part is another ``IORING_OP_SEND`` of the rest."""
    if use_threads(ring):
        return await _loop().sock_sendall(sock, data)
    lr = _lr(ring)
    fd = _fd(sock)
    view = memoryview(data).cast("B")
    done, total = 0, view.nbytes
    while True:
        if lr.awaited >= lr.capacity:
            await lr.room()
        done += await lr.run_res(lr.ring.prep_send(fd, view[done:] if done else view),
                                 "IORING_OP_SEND", fd)
        if done >= total:
            return


async def sock_sendto(sock: socket.socket, data: Any, address: Any, *,
                      ring: Optional[LoopRing] = None) -> int:
    """``sendto``: one datagram (or part of a stream) to *address*; the byte count."""
    if use_threads(ring):
        return await _loop().sock_sendto(sock, data, address)
    lr = _lr(ring)
    await lr.room()
    _fd(sock)
    address = await _resolved(lr, sock, address)
    return await lr.run_res(lr.ring.prep_send(sock, data, to=address), "IORING_OP_SEND", address)


async def sock_recvfrom(sock: socket.socket, bufsize: int, *,
                        ring: Optional[LoopRing] = None) -> Tuple[bytes, Any]:
    """``recvfrom``: ``(data, address)``."""
    if use_threads(ring):
        return await _loop().sock_recvfrom(sock, bufsize)
    buf = bytearray(bufsize)
    n, address = await sock_recvfrom_into(sock, buf, ring=ring)
    del buf[n:]
    return bytes(buf), address


async def sock_recvfrom_into(sock: socket.socket, buf: Any, nbytes: int = 0, *,
                             ring: Optional[LoopRing] = None) -> Tuple[int, Any]:
    """``recvfrom_into``: ``(nbytes, address)``; at most *nbytes* (0: all of *buf*)."""
    if use_threads(ring):
        return await _loop().sock_recvfrom_into(sock, buf, nbytes)
    lr = _lr(ring)
    fd = _fd(sock)
    view = memoryview(buf).cast("B")
    if nbytes:
        if nbytes > view.nbytes:
            raise ValueError("nbytes is greater than the length of the buffer")
        view = view[:nbytes]
    if lr.holds_back(fd):
        got = _from_pushed(lr, fd, view)
        if got is not None:
            return got
    await lr.room()
    ud = lr.ring.prep_recvmsg(fd, [view])
    record = lr.ring.held(ud)

    def salvage(cqe: Any) -> None:
        n, _anc, _flags, address = Completion(cqe, record).result()
        lr.push_back(fd, (bytes(view[:n]), address))

    cqe = await lr.wait(ud, lr.track(ud), salvage)
    n, _anc, _flags, address = Completion(cqe, record).result()
    return n, address


async def sock_accept(sock: socket.socket, *,
                      ring: Optional[LoopRing] = None) -> Tuple[socket.socket, Any]:
    """``accept``: ``(conn, address)``; *conn* non-blocking and close-on-exec.
    A connection accepted by a request whose task was cancelled is kept
    for the next ``sock_accept`` on *sock*."""
    if use_threads(ring):
        return await _loop().sock_accept(sock)
    lr = _lr(ring)
    fd = _fd(sock)
    kept = lr.take_back(fd)
    if kept is not None:
        return kept  # type: ignore[no-any-return]
    await lr.room()
    ud = lr.ring.prep_accept(fd, accept_flags=socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK,
                             want_address=True)
    record = lr.ring.held(ud)

    def connection(cqe: Any) -> Tuple[socket.socket, Any]:
        done = Completion(cqe, record)
        conn = socket.socket(fileno=done.result())
        conn.setblocking(False)
        return conn, lr.ring.peer_address(done)

    cqe = await lr.wait(ud, lr.track(ud), lambda late: lr.push_back(fd, connection(late)))
    return connection(cqe)


async def sock_connect(sock: socket.socket, address: Any, *,
                       ring: Optional[LoopRing] = None) -> None:
    """``connect``; a host name is resolved first (``loop.getaddrinfo``),
    as asyncio does."""
    if use_threads(ring):
        return await _loop().sock_connect(sock, address)
    lr = _lr(ring)
    await lr.room()
    address = await _resolved(lr, sock, address)
    _fd(sock)
    await lr.run_res(lr.ring.prep_connect(sock, address), "IORING_OP_CONNECT", address)


async def _resolved(lr: LoopRing, sock: Any, address: Any) -> Any:
    """*address* with a host name replaced by an address of the socket's
    family (a numeric address is used as is)."""
    family = getattr(sock, "family", None)
    if family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
        return address
    try:
        make_sockaddr(address, family)
        return address
    except (ValueError, OSError):
        pass
    host, port = address[0], address[1]
    infos = await lr.loop.getaddrinfo(host, port, family=family, type=sock.type, proto=sock.proto)
    if not infos:
        raise OSError(f"getaddrinfo({host!r}) returned no address")
    return infos[0][4]

"""asyncio transports and streams whose I/O is io_uring requests.

``create_connection``/``create_server`` are ``loop.create_connection``/
``loop.create_server`` for TCP (and Unix) sockets, and ``open_connection``/
``start_server`` are ``asyncio.open_connection``/``asyncio.start_server``:
the same protocols, ``StreamReader`` and ``StreamWriter`` on top, so code
written for asyncio's streams runs over them unchanged.  Underneath:

* a server keeps one multishot ``IORING_OP_ACCEPT`` per listening socket:
  one SQE accepts every connection, one CQE each;
* a connection keeps one multishot ``IORING_OP_RECV`` armed on the loop's
  provided-buffer ring (``LoopRing.recv_buffers``): each arrival is a CQE
  naming the buffer the kernel filled, copied out and recycled at once;
  ``pause_reading`` cancels it, ``resume_reading`` arms a new one;
  what arrives while paused is held, and goes to the protocol on the next
  loop iteration after ``resume_reading`` (never from inside it, as
  asyncio's own transports: ``StreamReader`` resumes before it makes the
  waiter that data must wake), in order, ahead of anything received later;
* ``write()`` appends to the connection's buffer; one ``IORING_OP_SEND``
  at a time sends all of it, and a short send is continued from where the
  kernel stopped.  A send of ``bytes`` is staged for the tick's flush,
  its completion callback the record's owner (``LoopRing.start_watched``);
  ``abort()`` before the flush takes it back unsent.

Flow control is asyncio's (``set_write_buffer_limits``, ``pause_writing``
/``resume_writing`` to the protocol, with asyncio's defaults and checks,
written out here), so ``StreamWriter.drain()`` works.
A transport reports ``connection_lost`` only once no request of its is in
flight: the kernel never holds its buffers after that.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import socket
from typing import Any, Callable, Deque, List, Optional, Set, Tuple

from .. import abi
from ..buffers import BYTES_OFFSET
from ..errors import kernel_error
from .driver import RECV_BUFFER_SIZE as _RECV_BUFFER_SIZE
from .driver import LoopRing, get_ring
from .fallback import use_threads
from .sockets import sock_connect

__all__ = ["Server", "create_connection", "create_server", "open_connection", "start_server"]

_F_MORE = int(abi.IORING_CQE_F_MORE)
_F_BUFFER = int(abi.IORING_CQE_F_BUFFER)
_BUFFER_SHIFT = int(abi.IORING_CQE_BUFFER_SHIFT)
_OP_SEND = int(abi.IORING_OP_SEND)
_INT_MAX = (1 << 31) - 1


class RingSocketTransport(asyncio.Transport):
    """A stream socket driven by io_uring requests (see the module)."""

    def __init__(self, lr: LoopRing, sock: socket.socket, protocol: asyncio.BaseProtocol,
                 waiter: Optional[asyncio.Future] = None, server: Optional["Server"] = None) -> None:
        super().__init__(None)
        self._loop = lr.loop
        self._protocol_paused = False
        self._high_water = self._low_water = 0
        self._set_write_buffer_limits()
        self._lr = lr
        self._give_back = lr.give_back_later
        self._ring = lr.ring
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._server = server
        self._extra = {"socket": sock}
        try:
            self._extra["sockname"] = sock.getsockname()
        except OSError:
            pass
        try:
            self._extra["peername"] = sock.getpeername()
        except OSError:
            pass
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            # As asyncio's socket transports: small writes go out at once.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pool = lr.recv_buffers()
        self._pool_view = self._pool.memory
        self._sent_cb = self._on_sent
        self._watch = lr.watch
        self._start_watched = lr.start_watched
        # A plain send fits one request (2**31-1 bytes) on a ring that has the op.
        self._plain_send = self._ring.supports(_OP_SEND)
        self._recv_ud: Optional[int] = None
        # Received while paused (or behind data still held): delivered in
        # order by _deliver_held, a loop iteration after resume_reading.
        self._held: Deque[bytes] = collections.deque()
        self._held_eof = False  # the EOF came in behind held data
        self._eof = False  # the kernel reported EOF: no more receives
        self._deliver_handle: Optional[asyncio.Handle] = None
        self._paused = False
        self._wbuf = bytearray()
        self._sending: Optional[Any] = None  # bytes, or a view of the unsent rest
        self._send_ud: Optional[int] = None
        self._eof_pending = False
        self._eof_sent = False
        self._closing = False
        self._write_shut = False  # _closing or _eof_pending or _eof_sent
        self._lost = False
        self._conn_lost = 0
        self._lost_exc: Optional[Exception] = None  # what a forced close reports
        if server is not None:
            server.add_connection(self)
        self._loop.call_soon(self._protocol.connection_made, self)
        self._loop.call_soon(self._start_reading)
        if waiter is not None:
            self._loop.call_soon(_set_result_unless_cancelled, waiter, None)

    # -- extra info / state --------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def is_closing(self) -> bool:
        return self._closing

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def is_reading(self) -> bool:
        return not self._paused and not self._closing

    def get_write_buffer_size(self) -> int:
        return len(self._wbuf) + (len(self._sending) if self._sending is not None else 0)

    # -- flow control (asyncio's _FlowControlMixin, written out) ---------------------

    def get_write_buffer_limits(self) -> Tuple[int, int]:
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high: Optional[int] = None, low: Optional[int] = None) -> None:
        self._set_write_buffer_limits(high, low)
        self._maybe_pause_protocol()

    def _set_write_buffer_limits(self, high: Optional[int] = None, low: Optional[int] = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water = high
        self._low_water = low

    def _maybe_pause_protocol(self) -> None:
        if self.get_write_buffer_size() <= self._high_water or self._protocol_paused:
            return
        self._protocol_paused = True
        try:
            self._protocol.pause_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._loop.call_exception_handler({
                "message": "protocol.pause_writing() failed", "exception": exc,
                "transport": self, "protocol": self._protocol})

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and self.get_write_buffer_size() <= self._low_water:
            self._protocol_paused = False
            try:
                self._protocol.resume_writing()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._loop.call_exception_handler({
                    "message": "protocol.resume_writing() failed", "exception": exc,
                    "transport": self, "protocol": self._protocol})

    # -- reading -----------------------------------------------------------------------

    def _start_reading(self) -> None:
        """Arm one multishot ``IORING_OP_RECV`` on the loop's provided-buffer
        group: every arrival is a CQE naming the buffer the kernel filled,
        with no SQE per receive."""
        if self._closing or self._paused or self._recv_ud is not None or self._eof:
            return
        ud = self._ring.prep_recv(self._fd, buf_group=self._pool.group, multishot=True)
        self._recv_ud = ud
        self._lr.watch(ud, self._on_recv)

    def _on_recv(self, cqe: Tuple[int, ...]) -> None:
        _ud, res, flags = cqe
        if not flags & _F_MORE:
            self._recv_ud = None  # the multishot ended: EOF, an error, or cancelled
        if flags & _F_BUFFER:
            # Copy the bytes out; the buffer goes back with the batch.
            bid = flags >> _BUFFER_SHIFT
            at = bid * _RECV_BUFFER_SIZE
            data = bytes(self._pool_view[at: at + res])
            self._give_back(bid)
            if self._paused or self._held:
                self._held.append(data)  # behind what is held, never before it
                if not self._paused:
                    self._schedule_delivery()
            elif not self._closing:
                try:
                    self._protocol.data_received(data)  # type: ignore[attr-defined]
                except Exception as exc:
                    self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")
                    return
            if self._recv_ud is not None:
                return  # the common case: more to come on the same SQE
        elif res == 0:
            self._eof = True
            if self._paused or self._held:
                self._held_eof = True
                if not self._paused:
                    self._schedule_delivery()
            else:
                self._eof_received()
        elif res == -errno.ENOBUFS or res == -errno.ECANCELED:
            # The group ran dry (the data waits in the socket), or our own
            # cancel (pause_reading, close) ended it: re-armed below unless
            # paused or closing.
            pass
        elif res < 0:
            self._fatal_error(kernel_error(-res, "IORING_OP_RECV", self._extra.get("peername")),
                              "Fatal read error on socket transport")
            return
        if self._recv_ud is None:
            self._start_reading()
            self._maybe_lost()

    def _eof_received(self) -> None:
        if self._closing:
            return
        try:
            keep_open = self._protocol.eof_received()  # type: ignore[attr-defined]
        except Exception as exc:
            self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return
        if not keep_open:
            self.close()

    def pause_reading(self) -> None:
        """Stop the multishot receive (data already on its way is held and
        delivered after ``resume_reading``; the rest waits in the socket).
        Calls nothing of the protocol."""
        if self._closing or self._paused:
            return
        self._paused = True
        if self._recv_ud is not None:
            self._lr.cancel(self._recv_ud)

    def resume_reading(self) -> None:
        """Receive again.  Held data (and a held EOF) goes to the protocol on
        the next loop iteration, never from in here: asyncio's transports
        only re-add their reader, and ``StreamReader._wait_for_data`` calls
        this before it makes the waiter that the data must wake."""
        if self._closing or not self._paused:
            return
        self._paused = False
        if self._held or self._held_eof:
            self._schedule_delivery()
        self._start_reading()

    def _schedule_delivery(self) -> None:
        if self._deliver_handle is None:
            self._deliver_handle = self._loop.call_soon(self._deliver_held)

    def _deliver_held(self) -> None:
        """Hand the held data to the protocol, in order, while the
        transport reads and is not closing (a ``pause_reading`` from the
        protocol keeps the rest held), then a held EOF."""
        self._deliver_handle = None
        held = self._held
        while held and not self._paused and not self._closing:
            data = held.popleft()
            try:
                self._protocol.data_received(data)  # type: ignore[attr-defined]
            except Exception as exc:
                self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")
                return
        if not held and self._held_eof and not self._paused and not self._closing:
            self._held_eof = False
            self._eof_received()

    # -- writing -----------------------------------------------------------------------

    def write(self, data: Any) -> None:
        cls = data.__class__
        if cls is not bytes and not isinstance(data, (bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, not {cls.__name__!r}")
        if self._write_shut:  # closing, or write_eof() was called: one check per write
            if self._eof_pending or self._eof_sent:
                raise RuntimeError("Cannot call write() after write_eof()")
            if data:
                self._conn_lost += 1
            return
        if not data:
            return
        if self._send_ud is None and not self._wbuf:
            # Nothing in flight: send it now (bytes() is no copy for bytes;
            # others are copied, as the caller may reuse its buffer).
            sending = data if cls is bytes else bytes(data)
            self._send(sending)
            if len(sending) > self._high_water:
                self._maybe_pause_protocol()
            return
        self._wbuf += data
        self._maybe_pause_protocol()

    def _send(self, sending: Optional[Any] = None) -> None:
        """One ``IORING_OP_SEND`` of *sending* or, by default, of everything
        buffered (as ``bytes``: an immutable object is pinned by holding it)."""
        if sending is None:
            sending = bytes(self._wbuf)
            self._wbuf.clear()
        self._sending = sending
        if sending.__class__ is bytes and self._plain_send and len(sending) <= _INT_MAX:
            # The per-write path: bytes never move (holding them is the pin),
            # and the SQE is read-shaped (fd, addr, len); the callback owns
            # the record from the start.
            self._send_ud = self._start_watched(_OP_SEND, self._fd, id(sending) + BYTES_OFFSET,
                                                len(sending), 0, sending, self._sent_cb)
            return
        ud = self._ring.prep_send(self._fd, sending)
        self._send_ud = ud
        self._watch(ud, self._sent_cb)

    def _on_sent(self, cqe: Tuple[int, ...]) -> None:
        self._send_ud = None
        sending: Any = self._sending
        self._sending = None
        res = cqe[1]
        if res == len(sending) and not self._wbuf and not self._protocol_paused \
                and not self._write_shut:
            return  # all sent, nothing waiting: the common case
        if res < 0:
            if not (res == -errno.ECANCELED and self._closing):
                self._fatal_error(kernel_error(-res, "IORING_OP_SEND", self._extra.get("peername")),
                                  "Fatal write error on socket transport")
            self._maybe_lost()
            return
        assert sending is not None
        if res < len(sending) and not self._lost:
            # A short send: the rest goes first, as a view of the same
            # bytes (no copy); what was written meanwhile waits behind it.
            self._send(memoryview(sending)[res:])
        elif self._wbuf and not self._lost:
            self._send()
        self._maybe_resume_protocol()
        if not self._wbuf and self._send_ud is None:
            if self._eof_pending:
                self._shutdown_write()
            self._maybe_lost()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._closing or self._eof_pending or self._eof_sent:
            return
        self._write_shut = True
        if self._send_ud is None and not self._wbuf:
            self._shutdown_write()
        else:
            self._eof_pending = True

    def _shutdown_write(self) -> None:
        self._eof_pending = False
        self._eof_sent = True
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    # -- closing -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop reading, send what is buffered, then close; ``connection_lost``
        comes once the kernel holds no request of this transport."""
        if self._closing:
            return
        self._closing = self._write_shut = True
        self._drop_held()
        if self._recv_ud is not None:
            self._lr.cancel(self._recv_ud)
        self._maybe_lost()

    def abort(self) -> None:
        self._force_close(None)

    def _force_close(self, exc: Optional[Exception]) -> None:
        if self._lost:
            return
        self._closing = self._write_shut = True
        self._drop_held()
        self._wbuf.clear()
        for ud in (self._recv_ud, self._send_ud):
            if ud is not None:
                self._lr.cancel(ud)
        self._lost_exc = exc
        self._maybe_lost(force=True)

    def _drop_held(self) -> None:
        """Closing: what is held is never delivered (as asyncio's transports,
        which stop reading on close)."""
        self._held.clear()
        self._held_eof = False
        if self._deliver_handle is not None:
            self._deliver_handle.cancel()
            self._deliver_handle = None

    def _fatal_error(self, exc: Exception, message: str) -> None:
        if not isinstance(exc, OSError) or exc.errno not in (errno.ECONNRESET, errno.EPIPE,
                                                             errno.ECONNABORTED, errno.ETIMEDOUT):
            self._loop.call_exception_handler({
                "message": message, "exception": exc, "transport": self,
                "protocol": self._protocol})
        self._force_close(exc)

    def _maybe_lost(self, force: bool = False) -> None:
        """Report ``connection_lost`` when closing and no request is in flight
        (and, for a graceful close, the buffer is sent)."""
        if not self._closing or self._lost:
            return
        if self._recv_ud is not None or self._send_ud is not None:
            return
        if self._wbuf and not force:
            self._send()
            return
        self._lost = True
        self._loop.call_soon(self._call_connection_lost, self._lost_exc)

    def _call_connection_lost(self, exc: Optional[Exception]) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._sock.close()
            self._protocol = None  # type: ignore[assignment]
            server, self._server = self._server, None
            if server is not None:
                server.remove_connection(self)

    def __del__(self) -> None:
        sock = getattr(self, "_sock", None)
        if sock is not None and sock.fileno() >= 0 and not getattr(self, "_lost", True):
            sock.close()


def _set_result_unless_cancelled(fut: asyncio.Future, result: Any) -> None:
    if not fut.cancelled():
        fut.set_result(result)


class Server(asyncio.AbstractServer):
    """Listening sockets, each with one multishot ``IORING_OP_ACCEPT``."""

    def __init__(self, lr: LoopRing, sockets: List[socket.socket],
                 protocol_factory: Callable[[], asyncio.BaseProtocol]) -> None:
        self._lr = lr
        self._loop = lr.loop
        self._sockets = sockets
        self._factory = protocol_factory
        self._accepts: dict = {}  # user_data -> listening socket
        self._serving = False
        self._closed = False
        self._connections: Set[RingSocketTransport] = set()
        self._waiters: List[asyncio.Future] = []
        self._serving_forever: Optional[asyncio.Future] = None

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def sockets(self) -> Tuple[socket.socket, ...]:
        return tuple(self._sockets)

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        self._start()
        await asyncio.sleep(0)

    def _start(self) -> None:
        if self._serving or self._closed:
            return
        self._serving = True
        for sock in self._sockets:
            self._arm(sock)

    def _arm(self, sock: socket.socket) -> None:
        ring = self._lr.ring
        ud = ring.prep_accept(sock.fileno(), multishot=True,
                              accept_flags=socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        self._accepts[ud] = sock
        self._lr.watch(ud, self._on_accept)

    def _on_accept(self, cqe: Tuple[int, ...]) -> None:
        ud, res, flags = cqe
        if not flags & _F_MORE:
            sock = self._accepts.pop(ud)
            if self._serving and res != -errno.ECANCELED:
                self._arm(sock)  # the multishot ended (an error): arm a new one
        if res >= 0:
            conn = socket.socket(fileno=res)
            if self._closed:
                conn.close()
                return
            conn.setblocking(False)
            try:
                protocol = self._factory()
            except Exception as exc:
                conn.close()
                self._loop.call_exception_handler({"message": "protocol factory failed",
                                                   "exception": exc})
                return
            RingSocketTransport(self._lr, conn, protocol, server=self)
        elif res not in (-errno.ECANCELED, -errno.EINTR, -errno.EAGAIN) and self._serving:
            self._loop.call_exception_handler({
                "message": "accept failed on a listening socket",
                "exception": kernel_error(-res, "IORING_OP_ACCEPT")})
        self._wake()

    def add_connection(self, transport: RingSocketTransport) -> None:
        """A transport of a connection this server accepted is made (asyncio's
        ``Server._attach``): ``wait_closed`` waits for it too."""
        self._connections.add(transport)

    def remove_connection(self, transport: RingSocketTransport) -> None:
        """That transport reported ``connection_lost`` (``Server._detach``)."""
        self._connections.discard(transport)
        self._wake()

    def close(self) -> None:
        """Stop accepting: cancel the accepts; each listening socket is
        closed once its accept's final CQE is in."""
        if self._closed:
            return
        self._closed = True
        self._serving = False
        for ud in list(self._accepts):
            self._lr.cancel(ud)
        if self._serving_forever is not None and not self._serving_forever.done():
            self._serving_forever.cancel()
        self._wake()

    def _wake(self) -> None:
        if self._closed and not self._accepts:
            for sock in self._sockets:
                sock.close()
            if not self._connections:
                waiters, self._waiters = self._waiters, []
                for w in waiters:
                    if not w.done():
                        w.set_result(None)

    async def wait_closed(self) -> None:
        """Until closed, every accept finished and every connection closed."""
        if not self._closed or (not self._accepts and not self._connections):
            if self._closed:
                return
        w = self._loop.create_future()
        self._waiters.append(w)
        self._wake()
        await w

    async def serve_forever(self) -> None:
        if self._serving_forever is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._closed:
            raise RuntimeError(f"server {self!r} is closed")
        self._start()
        self._serving_forever = self._loop.create_future()
        try:
            await self._serving_forever
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever = None

    def __repr__(self) -> str:
        return f"<uring.asyncio.Server sockets={self.sockets!r}>"


async def create_server(protocol_factory: Callable[[], asyncio.BaseProtocol], host: Any = None,
                        port: Optional[int] = None, *, family: int = socket.AF_UNSPEC,
                        backlog: int = 100, reuse_address: Optional[bool] = None,
                        reuse_port: Optional[bool] = None, sock: Optional[socket.socket] = None,
                        start_serving: bool = True, ring: Optional[LoopRing] = None) -> Server:
    """``loop.create_server`` for TCP on io_uring (or on the listening *sock*
    given); where io_uring is unavailable, ``loop.create_server`` itself
    (an ``asyncio.Server``)."""
    if use_threads(ring):
        stock: Any = asyncio.get_running_loop()
        return await stock.create_server(  # type: ignore[no-any-return]
            protocol_factory, host, port, family=family, backlog=backlog,
            reuse_address=reuse_address, reuse_port=reuse_port, sock=sock,
            start_serving=start_serving)
    lr = ring if ring is not None else get_ring()
    if sock is not None:
        if host is not None or port is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        sockets = [sock]
    else:
        hosts = [None] if host in (None, "") else ([host] if isinstance(host, str) else list(host))
        sockets = []
        try:
            for h in hosts:
                infos = await lr.loop.getaddrinfo(h, port, family=family, type=socket.SOCK_STREAM,
                                                  flags=socket.AI_PASSIVE)
                for af, socktype, proto, _name, address in sorted(set(infos), key=lambda i: i[0]):
                    s = socket.socket(af, socktype, proto)
                    sockets.append(s)
                    if reuse_address is not False:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if reuse_port:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                    if af == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
                    s.bind(address)
        except BaseException:
            for s in sockets:
                s.close()
            raise
    for s in sockets:
        s.listen(backlog)
        s.setblocking(False)
    server = Server(lr, sockets, protocol_factory)
    if start_serving:
        await server.start_serving()  # as asyncio's: the accepts armed, one loop step
    return server


async def create_connection(protocol_factory: Callable[[], asyncio.BaseProtocol], host: Any = None,
                            port: Optional[int] = None, *, family: int = 0,
                            sock: Optional[socket.socket] = None,
                            ring: Optional[LoopRing] = None) -> Tuple[asyncio.Transport, Any]:
    """``loop.create_connection`` for TCP on io_uring: connect
    (``IORING_OP_CONNECT``, each address in turn), then a transport; where
    io_uring is unavailable, ``loop.create_connection`` itself."""
    if use_threads(ring):
        connect: Any = asyncio.get_running_loop().create_connection
        return await connect(  # type: ignore[no-any-return]
            protocol_factory, host, port, family=family, sock=sock)
    lr = ring if ring is not None else get_ring()
    if sock is None:
        infos = await lr.loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
        if not infos:
            raise OSError(f"getaddrinfo({host!r}) returned empty list")
        errors: List[OSError] = []
        for af, socktype, proto, _name, address in infos:
            s = socket.socket(af, socktype, proto)
            s.setblocking(False)
            try:
                await sock_connect(s, address, ring=lr)
            except OSError as exc:
                s.close()
                errors.append(exc)
                continue
            except BaseException:
                s.close()
                raise
            sock = s
            break
        if sock is None:
            if len(errors) == 1:
                raise errors[0]
            raise OSError(f"Multiple exceptions: {', '.join(str(e) for e in errors)}")
    else:
        sock.setblocking(False)
    protocol = protocol_factory()
    waiter = lr.loop.create_future()
    transport = RingSocketTransport(lr, sock, protocol, waiter)
    await waiter
    return transport, protocol


async def open_connection(host: Any = None, port: Optional[int] = None, *, limit: int = 2 ** 16,
                          ring: Optional[LoopRing] = None,
                          **kwds: Any) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` over an io_uring transport (where
    io_uring is unavailable, ``asyncio.open_connection`` itself)."""
    if use_threads(ring):
        return await asyncio.open_connection(host, port, limit=limit, **kwds)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await create_connection(lambda: protocol, host, port, ring=ring, **kwds)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def start_server(client_connected_cb: Callable[..., Any], host: Any = None,
                       port: Optional[int] = None, *, limit: int = 2 ** 16,
                       ring: Optional[LoopRing] = None, **kwds: Any) -> Server:
    """``asyncio.start_server`` with io_uring accepting and transports
    (where io_uring is unavailable, ``asyncio.start_server`` itself: an
    ``asyncio.Server``)."""
    if use_threads(ring):
        return await asyncio.start_server(  # type: ignore[return-value]
            client_connected_cb, host, port, limit=limit, **kwds)
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.StreamReaderProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)

    return await create_server(factory, host, port, ring=ring, **kwds)

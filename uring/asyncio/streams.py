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

The four functions take asyncio's keyword arguments as the stock ones do
on the Python running (``local_addr``, ``family``/``proto``/``flags``,
``sock``, ``happy_eyeballs_delay``/``interleave``, ``backlog``,
``reuse_address``/``reuse_port``, ``start_serving``, ...) and refuse what
they refuse with the same exceptions.  TLS (``ssl``) is not done here: such
a call is asyncio's own ``loop.create_connection``/``create_server``
(``asyncio.open_connection``/``start_server``) on the running loop, as is
every call where io_uring is unavailable (the thread fallback).
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import collections.abc
import errno
import functools
import inspect
import itertools
import socket
from asyncio import staggered
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

try:
    import ssl as _ssl
except ImportError:  # pragma: no cover - Python built without ssl
    _ssl = None  # type: ignore[assignment]

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
                 protocol_factory: Callable[[], asyncio.BaseProtocol], backlog: int = 100) -> None:
        self._lr = lr
        self._backlog = backlog
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
            sock.listen(self._backlog)  # as asyncio's Server: listening once serving
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
        """Stop accepting and close the listening sockets: at once, as
        asyncio's ``Server.close`` (a connect right after it is refused, the
        port can be bound again), where the kernel cancels the accepts
        synchronously (``IORING_REGISTER_SYNC_CANCEL``, Linux 6.0+); else
        the accepts are cancelled and each socket is closed once its
        accept's final CQE is in."""
        if self._closed:
            return
        self._closed = True
        self._serving = False
        if not self._accepts:
            for sock in self._sockets:
                sock.close()
        elif self._cancel_accepts_now():
            for sock in self._sockets:
                sock.close()  # no accept of ours holds them: the port is closed
        else:
            for ud in list(self._accepts):
                self._lr.cancel(ud)
        if self._serving_forever is not None and not self._serving_forever.done():
            self._serving_forever.cancel()
        self._wake()

    def _cancel_accepts_now(self) -> bool:
        """Cancel every accept and wait for the kernel to let go of them
        (their final CQEs, ``-ECANCELED``, reach ``_on_accept`` with the
        next batch); False where that cannot be done (an older kernel)."""
        ring = self._lr.ring
        if ring.closed:
            return False
        try:
            ring.submit()  # an accept prepared in this tick reaches the kernel first
            for ud in list(self._accepts):
                try:
                    ring.cancel_sync(ud)
                except FileNotFoundError:
                    pass  # it has ended already: its final CQE is in the CQ
        except Exception:  # EINVAL before Linux 6.0, the ring's thread check, ...
            return False
        return True

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


# -- asyncio's create_connection/create_server, on the ring -----------------------------

#: The keywords of the stock loop's methods on the Python running (3.9 to
#: 3.13 differ: ``ssl_shutdown_timeout`` 3.11+, ``all_errors`` 3.12+,
#: ``keep_alive`` 3.13+).
_CONNECTION_KEYWORDS = frozenset(inspect.signature(asyncio.BaseEventLoop.create_connection).parameters)
_SERVER_KEYWORDS = frozenset(inspect.signature(asyncio.BaseEventLoop.create_server).parameters)
_ExceptionGroup: Any = getattr(builtins, "ExceptionGroup", None)  # 3.11+ (all_errors is 3.12+)


def _versioned(kwds: Dict[str, Any], accepted: frozenset, what: str,
               **later: Tuple[Any, Any]) -> None:
    """Add to *kwds* the keywords of *later* (name: (value, default)) that
    the stock method accepts on this Python; one it does not accept is
    ``TypeError``, as the stock method's, unless left at its default."""
    for name, (value, default) in later.items():
        if name in accepted:
            kwds[name] = value
        elif value is not default and value != default:
            raise TypeError(f"{what}() got an unexpected keyword argument {name!r} "
                            f"(asyncio's has it from a later Python)")


def _check_ssl_socket(sock: Any) -> None:
    if _ssl is not None and isinstance(sock, _ssl.SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


async def _resolve(loop: asyncio.AbstractEventLoop, host: Any, port: Any, family: int, proto: int,
                   flags: int) -> List[Tuple[Any, ...]]:
    infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM,
                                   proto=proto, flags=flags)
    if not infos:
        raise OSError(f"getaddrinfo({host!r}) returned empty list")
    return infos


def _interleave(infos: List[Tuple[Any, ...]], first_family_count: int) -> List[Tuple[Any, ...]]:
    """asyncio's ``interleave``: the addresses alternate between families,
    the first family's first *first_family_count* first (RFC 8305)."""
    by_family: Dict[int, List[Tuple[Any, ...]]] = {}
    for info in infos:
        by_family.setdefault(info[0], []).append(info)
    lists = list(by_family.values())
    out: List[Tuple[Any, ...]] = []
    if first_family_count > 1:
        out.extend(lists[0][:first_family_count - 1])
        del lists[0][:first_family_count - 1]
    out.extend(a for a in itertools.chain.from_iterable(itertools.zip_longest(*lists)) if a is not None)
    return out


async def _connect_sock(lr: LoopRing, exceptions: List[List[OSError]], info: Tuple[Any, ...],
                        local_infos: Optional[List[Tuple[Any, ...]]]) -> socket.socket:
    """One attempt of ``create_connection``, as asyncio's ``_connect_sock``:
    a socket of the address's family, bound to the first *local_infos*
    address of that family that binds, connected (``IORING_OP_CONNECT``);
    its errors go to *exceptions* too."""
    mine: List[OSError] = []
    exceptions.append(mine)
    family, type_, proto, _name, address = info
    sock = None
    try:
        sock = socket.socket(family=family, type=type_, proto=proto)
        sock.setblocking(False)
        if local_infos is not None:
            for lfamily, _t, _p, _n, laddr in local_infos:
                if lfamily != family:
                    continue  # a local address of another family
                try:
                    sock.bind(laddr)
                    break
                except OSError as exc:
                    why = (exc.strerror or str(exc)).lower()
                    mine.append(OSError(exc.errno,
                                        f"error while attempting to bind on address {laddr!r}: {why}"))
            else:
                if mine:
                    raise mine.pop()
                raise OSError(f"no matching local address with family={family!r} found")
        await sock_connect(sock, address, ring=lr)
        return sock
    except OSError as exc:
        mine.append(exc)
        if sock is not None:
            sock.close()
        raise
    except BaseException:
        if sock is not None:
            sock.close()
        raise


async def create_server(protocol_factory: Callable[[], asyncio.BaseProtocol], host: Any = None,
                        port: Optional[int] = None, *, family: int = socket.AF_UNSPEC,
                        flags: int = socket.AI_PASSIVE, sock: Optional[socket.socket] = None,
                        backlog: int = 100, ssl: Any = None, reuse_address: Optional[bool] = None,
                        reuse_port: Optional[bool] = None, keep_alive: Optional[bool] = None,
                        ssl_handshake_timeout: Optional[float] = None,
                        ssl_shutdown_timeout: Optional[float] = None, start_serving: bool = True,
                        ring: Optional[LoopRing] = None) -> Server:
    """``loop.create_server`` for TCP, its arguments and checks, with
    io_uring accepting (a ``Server``): the addresses of *host* (a name, a
    list of them, ``None``/``""`` for all interfaces) and *port*, resolved
    with *family* and *flags*, each bound with ``SO_REUSEADDR`` (unless
    *reuse_address* is False), ``SO_REUSEPORT`` with *reuse_port*,
    ``SO_KEEPALIVE`` with *keep_alive* (3.13+, as asyncio); or the bound
    socket *sock*.  Each listens with *backlog* once serving starts (at once
    with *start_serving*, else ``start_serving()``/``serve_forever()``).

    With *ssl* (TLS, an ``SSLContext``), and where io_uring is unavailable,
    the call is ``loop.create_server`` itself on the running loop: asyncio's
    own transports and ``asyncio.Server``.  Keywords asyncio has only on a
    later Python than the one running are ``TypeError``, as there, unless
    left at their defaults."""
    kwds: Dict[str, Any] = dict(family=family, flags=flags, sock=sock, backlog=backlog, ssl=ssl,
                                reuse_address=reuse_address, reuse_port=reuse_port,
                                ssl_handshake_timeout=ssl_handshake_timeout,
                                start_serving=start_serving)
    _versioned(kwds, _SERVER_KEYWORDS, "create_server", keep_alive=(keep_alive, None),
               ssl_shutdown_timeout=(ssl_shutdown_timeout, None))
    if ssl is not None or use_threads(ring):
        stock: Any = asyncio.get_running_loop()
        return await stock.create_server(  # type: ignore[no-any-return]
            protocol_factory, host, port, **kwds)
    if ssl_handshake_timeout is not None:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if ssl_shutdown_timeout is not None:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
    if sock is not None:
        _check_ssl_socket(sock)
    lr = ring if ring is not None else get_ring()
    if host is not None or port is not None:
        if sock is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        if reuse_address is None:
            reuse_address = True  # asyncio's default on POSIX
        if host == "":
            hosts: Any = [None]
        elif isinstance(host, str) or not isinstance(host, collections.abc.Iterable):
            hosts = [host]
        else:
            hosts = host
        found = await asyncio.gather(*[_resolve(lr.loop, h, port, family, 0, flags) for h in hosts])
        infos = sorted(set(itertools.chain.from_iterable(found)), key=lambda i: i[0])
        sockets: List[socket.socket] = []
        completed = False
        try:
            for af, socktype, proto, _name, address in infos:
                try:
                    s = socket.socket(af, socktype, proto)
                except OSError:
                    continue  # a family/type/protocol this host lacks, as asyncio
                sockets.append(s)
                if reuse_address:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if keep_alive:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                if af == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
                try:
                    s.bind(address)
                except OSError as err:
                    if err.errno == errno.EADDRNOTAVAIL:  # the family is not enabled
                        sockets.pop()
                        s.close()
                        continue
                    why = (err.strerror or str(err)).lower()
                    raise OSError(err.errno, f"error while attempting to bind on address "
                                             f"{address!r}: {why}") from None
            if not sockets:
                raise OSError(f"could not bind on any address out of {[i[4] for i in infos]!r}")
            completed = True
        finally:
            if not completed:
                for s in sockets:
                    s.close()
    else:
        if sock is None:
            raise ValueError("Neither host/port nor sock were specified")
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A Stream Socket was expected, got {sock!r}")
        sockets = [sock]
    for s in sockets:
        s.setblocking(False)
    server = Server(lr, sockets, protocol_factory, backlog)
    if start_serving:
        await server.start_serving()  # as asyncio's: the accepts armed, one loop step
    return server


async def create_connection(protocol_factory: Callable[[], asyncio.BaseProtocol], host: Any = None,
                            port: Optional[int] = None, *, ssl: Any = None, family: int = 0,
                            proto: int = 0, flags: int = 0, sock: Optional[socket.socket] = None,
                            local_addr: Any = None, server_hostname: Optional[str] = None,
                            ssl_handshake_timeout: Optional[float] = None,
                            ssl_shutdown_timeout: Optional[float] = None,
                            happy_eyeballs_delay: Optional[float] = None,
                            interleave: Optional[int] = None, all_errors: bool = False,
                            ring: Optional[LoopRing] = None) -> Tuple[asyncio.Transport, Any]:
    """``loop.create_connection`` for TCP, its arguments and checks, on
    io_uring: *host*/*port* resolved with *family*, *proto* and *flags*;
    each address tried in turn (``IORING_OP_CONNECT``), from a socket bound
    first to *local_addr* when given; with *happy_eyeballs_delay* the
    attempts are staggered (asyncio's ``staggered_race``) and *interleave*
    alternates the families (RFC 8305), as asyncio does; *all_errors*
    (3.12+) raises an ``ExceptionGroup`` of every attempt's error.  Or the
    connected socket *sock*.  The transport is a ``RingSocketTransport``.

    With *ssl* (TLS: True or an ``SSLContext``), and where io_uring is
    unavailable, the call is ``loop.create_connection`` itself on the
    running loop (asyncio's own transports; with *ssl*, *server_hostname*
    and the ``ssl_*`` timeouts mean what they mean there).  Keywords
    asyncio has only on a later Python than the one running are
    ``TypeError``, as there, unless left at their defaults."""
    kwds: Dict[str, Any] = dict(ssl=ssl, family=family, proto=proto, flags=flags, sock=sock,
                                local_addr=local_addr, server_hostname=server_hostname,
                                ssl_handshake_timeout=ssl_handshake_timeout,
                                happy_eyeballs_delay=happy_eyeballs_delay, interleave=interleave)
    _versioned(kwds, _CONNECTION_KEYWORDS, "create_connection",
               ssl_shutdown_timeout=(ssl_shutdown_timeout, None), all_errors=(all_errors, False))
    if ssl or use_threads(ring):
        connect: Any = asyncio.get_running_loop().create_connection
        return await connect(protocol_factory, host, port, **kwds)  # type: ignore[no-any-return]
    if server_hostname is not None:
        raise ValueError("server_hostname is only meaningful with ssl")
    if ssl_handshake_timeout is not None:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    if ssl_shutdown_timeout is not None:
        raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")
    if sock is not None:
        _check_ssl_socket(sock)
    lr = ring if ring is not None else get_ring()
    if happy_eyeballs_delay is not None and interleave is None:
        interleave = 1  # as asyncio: happy eyeballs interleaves the families
    if host is not None or port is not None:
        if sock is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        infos = await _resolve(lr.loop, host, port, family, proto, flags)
        local_infos = None
        if local_addr is not None:
            local_infos = await _resolve(lr.loop, local_addr[0], local_addr[1], family, proto, flags)
        if interleave:
            infos = _interleave(infos, interleave)
        exceptions: List[List[OSError]] = []
        if happy_eyeballs_delay is None:
            for info in infos:
                try:
                    sock = await _connect_sock(lr, exceptions, info, local_infos)
                    break
                except OSError:
                    continue
        else:
            sock, _, _ = await staggered.staggered_race(
                [functools.partial(_connect_sock, lr, exceptions, info, local_infos) for info in infos],
                happy_eyeballs_delay, loop=lr.loop)
        if sock is None:
            errors = [exc for sub in exceptions for exc in sub]
            if all_errors:
                raise _ExceptionGroup("create_connection failed", errors)
            if len(errors) == 1:
                raise errors[0]
            model = str(errors[0])
            if all(str(exc) == model for exc in errors):
                raise errors[0]
            raise OSError(f"Multiple exceptions: {', '.join(str(exc) for exc in errors)}")
    else:
        if sock is None:
            raise ValueError("host and port was not specified and no sock specified")
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"A Stream Socket was expected, got {sock!r}")
        sock.setblocking(False)
    protocol = protocol_factory()
    waiter = lr.loop.create_future()
    transport = RingSocketTransport(lr, sock, protocol, waiter)
    await waiter
    return transport, protocol


async def open_connection(host: Any = None, port: Optional[int] = None, *, limit: int = 2 ** 16,
                          ring: Optional[LoopRing] = None,
                          **kwds: Any) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` over an io_uring transport: *kwds* are
    ``create_connection``'s (asyncio's keywords: ``local_addr``, ``family``,
    ``happy_eyeballs_delay``, ``sock``, ...).  With TLS (*ssl* true), a
    ``loop=`` (Python 3.9), and where io_uring is unavailable, this is
    ``asyncio.open_connection`` itself, on asyncio's transports."""
    if kwds.get("ssl") or "loop" in kwds or use_threads(ring):
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
    """``asyncio.start_server`` with io_uring accepting and transports (a
    ``Server``): *kwds* are ``create_server``'s (asyncio's keywords:
    ``backlog``, ``reuse_port``, ``sock``, ``start_serving``, ...).  With
    TLS (*ssl* not None), a ``loop=`` (Python 3.9), and where io_uring is
    unavailable, this is ``asyncio.start_server`` itself: asyncio's
    transports and an ``asyncio.Server``."""
    if kwds.get("ssl") is not None or "loop" in kwds or use_threads(ring):
        return await asyncio.start_server(  # type: ignore[return-value]
            client_connected_cb, host, port, limit=limit, **kwds)
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.StreamReaderProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)

    return await create_server(factory, host, port, ring=ring, **kwds)

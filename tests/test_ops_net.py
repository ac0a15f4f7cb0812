"""Socket operations end to end on loopback: real sockets, and the effect
checked (a working fd, bytes arriving, an address bound, a peer seeing EOF),
not only ``res``."""

from __future__ import annotations

import array
import ctypes
import errno
import gc
import os
import socket
import threading
import weakref
from typing import Dict, Iterator, List, Tuple

import pytest
from conftest import require_op, submit_issued
from hypothesis import given, settings
from hypothesis import strategies as st

import uring
from uring import abi
from uring.ops.net import (
    SOCKADDR_STORAGE_SIZE,
    decode_sockaddr,
    make_sockaddr,
    parse_recvmsg_out,
)
from uring.request import Completion

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # include/uapi/linux/in.h
ALLOC = abi.IORING_FILE_INDEX_ALLOC
F_MORE = abi.IORING_CQE_F_MORE


class Buf(bytearray):
    """A bytearray that can be weakly referenced."""


def by_user_data(ring: uring.Ring, n: int) -> Dict[int, Completion]:
    out = ring.completions(n, timeout=5)
    assert len(out) == n, out
    return {c.user_data: c for c in out}


def one(ring: uring.Ring) -> Completion:
    (c,) = ring.completions(1, timeout=5)
    return c


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def tcp_pair(listener: socket.socket) -> Iterator[Tuple[socket.socket, socket.socket]]:
    """A connected loopback TCP pair: (client, server)."""
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    try:
        yield client, server
    finally:
        client.close()
        server.close()


def recv_exactly(s: socket.socket, n: int) -> bytes:
    out = b""
    s.settimeout(5)
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


# -- addresses ------------------------------------------------------------------


@pytest.mark.parametrize("address, family", [
    (("127.0.0.1", 8080), socket.AF_INET),
    (("", 0), socket.AF_INET),
    (("::1", 443, 0, 0), socket.AF_INET6),
    (("fe80::1", 1, 5, 3), socket.AF_INET6),
    ("/tmp/some.sock", socket.AF_UNIX),
    (b"\0abstract", socket.AF_UNIX),
])
def test_sockaddr_round_trip(address: object, family: int) -> None:
    sa, length = make_sockaddr(address)
    raw = ctypes.string_at(ctypes.addressof(sa), length)
    back = decode_sockaddr(raw)
    if address == ("", 0):
        assert back == ("0.0.0.0", 0)
    else:
        assert back == address
    assert int.from_bytes(raw[:2], "little") == family


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses(), st.integers(0, 0xFFFF))
def test_sockaddr_matches_the_kernel_layout(ip: object, port: int) -> None:
    """Any IPv4/IPv6 address and port: the address bytes where the kernel's
    sockaddr_in/sockaddr_in6 has them (as inet_pton packs them), the port in
    network order, and decoded back as Python spells it."""
    host = str(ip)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = (host, port) if family == socket.AF_INET else (host, port, 0, 0)
    sa, length = make_sockaddr(address)
    raw = ctypes.string_at(ctypes.addressof(sa), length)
    packed = socket.inet_pton(family, host)
    if family == socket.AF_INET:
        assert length == 16 and raw[4:8] == packed
    else:
        assert length == 28 and raw[8:24] == packed
    assert raw[2:4] == port.to_bytes(2, "big")
    assert decode_sockaddr(raw) == (socket.inet_ntop(family, packed),) + address[1:]


def test_sockaddr_refuses_what_it_cannot_build() -> None:
    with pytest.raises(ValueError, match="numeric"):
        make_sockaddr(("localhost", 80))
    with pytest.raises(ValueError, match="port"):
        make_sockaddr(("127.0.0.1", 70000))
    with pytest.raises(ValueError, match="too long"):
        make_sockaddr("x" * 200)
    with pytest.raises(TypeError):
        make_sockaddr(("127.0.0.1", 1, 2), socket.AF_INET)


# -- socket, bind, listen ---------------------------------------------------------


def test_socket_is_a_working_socket(ring: uring.Ring, listener: socket.socket) -> None:
    require_op(abi.IORING_OP_SOCKET)
    ring.prep_socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC, user_data=1)
    ring.prep_socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK, user_data=2)
    got = by_user_data(ring, 2)
    fd, ufd = got[1].result(), got[2].result()
    s = socket.socket(fileno=fd)
    u = socket.socket(fileno=ufd)
    try:
        assert s.family == socket.AF_INET and s.type == socket.SOCK_STREAM
        assert not os.get_inheritable(fd)  # SOCK_CLOEXEC went through
        assert u.family == socket.AF_UNIX and u.type == socket.SOCK_DGRAM
        assert not os.get_blocking(ufd)  # SOCK_NONBLOCK went through
        s.connect(listener.getsockname())
        peer, _ = listener.accept()
        with peer:
            s.sendall(b"round trip")
            assert recv_exactly(peer, 10) == b"round trip"
            peer.sendall(b"back")
            assert recv_exactly(s, 4) == b"back"
    finally:
        s.close()
        u.close()


def test_socket_error_names_the_op(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_SOCKET)
    ring.prep_socket(socket.AF_INET, socket.SOCK_STREAM, 255)  # no such protocol
    c = one(ring)
    with pytest.raises(OSError) as info:
        c.result()
    assert info.value.errno in (errno.EPROTONOSUPPORT, errno.EINVAL)
    assert "IORING_OP_SOCKET" in str(info.value)


def test_socket_direct_descriptor(ring: uring.Ring, listener: socket.socket) -> None:
    require_op(abi.IORING_OP_SOCKET)
    ring.register_files_sparse(4)
    ring.prep_socket(socket.AF_INET, socket.SOCK_STREAM, file_index=ALLOC, user_data=1)
    ring.prep_socket(socket.AF_INET, socket.SOCK_STREAM, file_index=3, user_data=2)
    got = by_user_data(ring, 2)
    slot = got[1].result()
    assert 0 <= slot < 4 and slot != 3 and got[2].result() == 0
    # The slots are sockets only the ring can name: connect and send through them.
    for s in (slot, 3):
        ring.prep_connect(s, listener.getsockname(), fixed=True, user_data=10)
        assert one(ring).result() == 0
        peer, _ = listener.accept()
        with peer:
            ring.prep_send(s, b"via slot %d" % s, fixed=True, user_data=11)
            assert one(ring).result() == len(b"via slot %d" % s)
            assert recv_exactly(peer, len(b"via slot %d" % s)) == b"via slot %d" % s
    with pytest.raises(ValueError, match="SOCK_CLOEXEC"):
        ring.prep_socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC, file_index=0)
    with pytest.raises(ValueError, match="outside"):
        ring.prep_socket(socket.AF_INET, socket.SOCK_STREAM, file_index=4)


@pytest.mark.parametrize("family, host", [(socket.AF_INET, "127.0.0.1"),
                                          (socket.AF_INET6, "::1")])
def test_bind_listen_then_connect(ring: uring.Ring, family: int, host: str) -> None:
    require_op(abi.IORING_OP_BIND)
    require_op(abi.IORING_OP_LISTEN)
    try:
        s = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:  # pragma: no cover - no IPv6 here
        pytest.skip(f"no {family!r} sockets: {exc}")
    with s:
        address = (host, 0) if family == socket.AF_INET else (host, 0, 0, 0)
        with ring.link():
            ring.prep_bind(s, address, user_data=1)
            ring.prep_listen(s, 8, user_data=2)
        got = by_user_data(ring, 2)
        assert got[1].result() == 0 and got[2].result() == 0
        bound = s.getsockname()
        assert bound[0] == host and bound[1] != 0
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        with socket.create_connection(bound[:2], timeout=5) as c:
            peer, _ = s.accept()
            with peer:
                c.sendall(b"hi")
                assert recv_exactly(peer, 2) == b"hi"


def test_bind_unix_paths(ring: uring.Ring, tmp_path: os.PathLike) -> None:
    require_op(abi.IORING_OP_BIND)
    path = os.path.join(os.fspath(tmp_path), "ring.sock")
    name = b"\0uring-test-%d" % os.getpid()
    a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        ring.prep_bind(a, path, user_data=1)
        ring.prep_bind(b.fileno(), name, user_data=2)  # family guessed from the path
        got = by_user_data(ring, 2)
        assert got[1].result() == 0 and got[2].result() == 0
        assert a.getsockname() == path and os.path.exists(path)
        assert b.getsockname() == name
        b.sendto(b"to the path", path)
        assert a.recv(100) == b"to the path"


def test_bind_in_use_is_an_error(ring: uring.Ring, listener: socket.socket) -> None:
    require_op(abi.IORING_OP_BIND)
    with socket.socket() as s:
        ring.prep_bind(s, listener.getsockname())
        c = one(ring)
        with pytest.raises(OSError) as info:
            c.result()
        assert info.value.errno == errno.EADDRINUSE
        assert "IORING_OP_BIND" in str(info.value)
        assert info.value.filename == str(listener.getsockname())


# -- accept -----------------------------------------------------------------------


def test_accept_gives_fd_and_peer_address(ring: uring.Ring, listener: socket.socket) -> None:
    require_op(abi.IORING_OP_ACCEPT)
    ud = ring.prep_accept(listener)
    with socket.create_connection(listener.getsockname()) as client:
        c = one(ring)
        assert c.user_data == ud
        fd = c.result()
        assert ring.peer_address(c) == client.getsockname()
        assert not os.get_inheritable(fd)  # SOCK_CLOEXEC by default
        with socket.socket(fileno=fd) as server:
            client.sendall(b"accepted")
            assert recv_exactly(server, 8) == b"accepted"


def test_accept_flags(ring: uring.Ring, listener: socket.socket) -> None:
    require_op(abi.IORING_OP_ACCEPT)
    # DONTWAIT: nothing pending, so EAGAIN instead of waiting.
    ring.prep_accept(listener, dontwait=True, user_data=1)
    c = one(ring)
    with pytest.raises(BlockingIOError) as info:
        c.result()
    assert "IORING_OP_ACCEPT" in str(info.value)
    # POLL_FIRST + SOCK_NONBLOCK, no address asked for.
    ring.prep_accept(listener, poll_first=True, want_address=False,
                     accept_flags=socket.SOCK_NONBLOCK, user_data=2)
    ring.submit()
    assert ring.reap() == []  # waits for a connection
    with socket.create_connection(listener.getsockname()) as client:
        c = one(ring)
        fd = c.result()
        assert ring.peer_address(c) is None
        assert not os.get_blocking(fd) and os.get_inheritable(fd)  # no CLOEXEC asked for
        with socket.socket(fileno=fd) as server:
            client.sendall(b"x")
            server.settimeout(5)
            assert server.recv(1) == b"x"


def test_accept_direct_descriptor(ring: uring.Ring, listener: socket.socket) -> None:
    require_op(abi.IORING_OP_ACCEPT)
    ring.register_files_sparse(2)
    ring.prep_accept(listener, file_index=ALLOC)
    with socket.create_connection(listener.getsockname()) as client:
        c = one(ring)
        slot = c.result()
        assert 0 <= slot < 2
        assert ring.peer_address(c) == client.getsockname()
        buf = bytearray(16)
        ring.prep_recv(slot, buf, fixed=True)
        client.sendall(b"direct")
        assert one(ring).result() == 6 and bytes(buf[:6]) == b"direct"
    with pytest.raises(ValueError, match="IORING_FILE_INDEX_ALLOC"):
        ring.prep_accept(listener, multishot=True, file_index=1)
    with pytest.raises(ValueError, match="multishot"):
        ring.prep_accept(listener, multishot=True, want_address=True)


def test_multishot_accept_into_allocated_slots(ring: uring.Ring, listener: socket.socket) -> None:
    """``IORING_ACCEPT_MULTISHOT`` with ``IORING_FILE_INDEX_ALLOC``: each
    connection becomes a direct descriptor in a slot the kernel picks, and
    ``res`` is the slot."""
    require_op(abi.IORING_OP_ACCEPT)
    ring.register_files_sparse(4)
    ud = ring.prep_accept(listener, multishot=True, file_index=ALLOC)
    ring.submit()
    clients = [socket.create_connection(listener.getsockname(), timeout=5) for _ in range(3)]
    try:
        accepted: List[Completion] = []
        while len(accepted) < 3:
            more = ring.completions(3 - len(accepted), timeout=5)
            assert more, f"only {len(accepted)} of 3 connections accepted"
            accepted += more
        assert all(c.user_data == ud and c.more for c in accepted)
        slots = [c.result() for c in accepted]
        assert len(set(slots)) == 3 and all(0 <= s < 4 for s in slots)
        # Each slot is the server end of one client: what the clients send
        # arrives through the slots, one message each.
        bufs = [bytearray(16) for _ in slots]
        for i, (slot, buf) in enumerate(zip(slots, bufs)):
            ring.prep_recv(slot, buf, user_data=10 + i, fixed=True)
        for i, client in enumerate(clients):
            client.sendall(b"client %d" % i)
        got = by_user_data(ring, 3)
        assert [got[10 + i].result() for i in range(3)] == [8] * 3
        assert sorted(bytes(b[:8]) for b in bufs) == [b"client %d" % i for i in range(3)]
        ring.prep_cancel(ud, user_data=3)
        got = by_user_data(ring, 2)
        assert got[3].res == 0 and got[ud].res == -errno.ECANCELED and not got[ud].more
    finally:
        for client in clients:
            client.close()


def test_multishot_accept_100_connections_from_one_sqe(ring: uring.Ring,
                                                       listener: socket.socket) -> None:
    """ACCEPTANCE: one SQE, 100 connections, 100 CQEs with F_MORE and 100
    distinct working fds; then cancelled, with a final CQE without F_MORE.

    The CQEs are reaped every 20 connections: a multishot request that
    finds the CQ full ends (its last CQE without F_MORE), so the CQ (128
    entries here) must never fill."""
    require_op(abi.IORING_OP_ACCEPT)
    ud = ring.prep_accept(listener, multishot=True)
    submit_issued(ring)
    assert ring.sq_ready == 0
    clients: List[socket.socket] = []
    servers: List[socket.socket] = []
    accepted: List[Completion] = []
    try:
        for i in range(100):
            clients.append(socket.create_connection(listener.getsockname(), timeout=5))
            if i % 20 == 19:
                while len(accepted) < i + 1:
                    more = ring.completions(i + 1 - len(accepted), timeout=5)
                    assert more, f"only {len(accepted)} of {i + 1} connections accepted"
                    accepted += more
        assert len(accepted) == 100
        assert all(c.user_data == ud and c.more for c in accepted)
        fds = [c.result() for c in accepted]
        assert len(set(fds)) == 100
        # Each fd is the server end of one client: match them by address.
        servers += [socket.socket(fileno=fd) for fd in fds]
        by_peer = {s.getpeername(): s for s in servers}
        assert set(by_peer) == {c.getsockname() for c in clients}
        for n, client in enumerate(clients):
            client.sendall(b"%03d" % n)
            assert recv_exactly(by_peer[client.getsockname()], 3) == b"%03d" % n
        for s in servers:
            s.close()
        assert all(s.fileno() == -1 for s in servers)
        assert ring.in_flight == 1  # still armed
        ring.prep(abi.IORING_OP_ASYNC_CANCEL, addr=ud, user_data=ud + 1000)
        got = by_user_data(ring, 2)
        assert got[ud + 1000].res == 0
        final = got[ud]
        assert not final.more and final.res == -errno.ECANCELED
        assert ring.in_flight == 0
    finally:
        for s in clients + servers:
            s.close()


# -- connect, shutdown ----------------------------------------------------------------


def test_connect_and_data_flow(ring: uring.Ring, listener: socket.socket) -> None:
    require_op(abi.IORING_OP_CONNECT)
    with socket.socket() as client:
        ring.prep_connect(client, listener.getsockname())
        assert one(ring).result() == 0
        assert client.getpeername() == listener.getsockname()
        server, _ = listener.accept()
        with server:
            client.sendall(b"over the connection")
            assert recv_exactly(server, 19) == b"over the connection"


def test_connect_refused(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_CONNECT)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()  # bound, not listening: refused
        with socket.socket() as client:
            ring.prep_connect(client, closed)
            c = one(ring)
            with pytest.raises(ConnectionRefusedError) as info:
                c.result()
            assert "IORING_OP_CONNECT" in str(info.value)
            assert info.value.filename == str(closed)


def test_shutdown_peer_sees_eof(ring: uring.Ring,
                                tcp_pair: Tuple[socket.socket, socket.socket]) -> None:
    require_op(abi.IORING_OP_SHUTDOWN)
    client, server = tcp_pair
    client.sendall(b"last")
    ring.prep_shutdown(client, socket.SHUT_WR)
    assert one(ring).result() == 0
    assert recv_exactly(server, 4) == b"last"
    assert server.recv(10) == b""  # EOF
    with pytest.raises(ValueError):
        ring.prep_shutdown(client, 7)


def test_shutdown_of_a_non_socket(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_SHUTDOWN)
    rd, wr = os.pipe()
    try:
        ring.prep_shutdown(rd, socket.SHUT_RDWR)
        with pytest.raises(OSError) as info:
            one(ring).result()
        assert info.value.errno == errno.ENOTSOCK and "IORING_OP_SHUTDOWN" in str(info.value)
    finally:
        os.close(rd)
        os.close(wr)


# -- send and recv --------------------------------------------------------------------


def test_send_and_recv(ring: uring.Ring, tcp_pair: Tuple[socket.socket, socket.socket]) -> None:
    require_op(abi.IORING_OP_SEND)
    require_op(abi.IORING_OP_RECV)
    client, server = tcp_pair
    ring.prep_send(client, memoryview(b"..payload..")[2:9], user_data=1)
    ring.prep_send(client, b"0123456789", length=4, user_data=2)
    got = by_user_data(ring, 2)
    assert got[1].result() == 7 and got[2].result() == 4
    assert recv_exactly(server, 11) == b"payload0123"
    buf = Buf(32)
    ref = weakref.ref(buf)
    ring.prep_recv(server, buf, length=5, user_data=3)
    ring.submit()
    del buf
    gc.collect()
    assert ref() is not None  # the request holds it while the kernel may write
    client.sendall(b"abcdefgh")
    c = one(ring)
    held = ref()
    assert held is not None and c.result() == 5
    assert bytes(held[:5]) == b"abcde" and held[5:] == bytes(27)
    del held
    del c
    gc.collect()
    assert ref() is None
    # MSG_PEEK leaves the rest in the socket.
    peek = bytearray(10)
    ring.prep_recv(server, peek, msg_flags=socket.MSG_PEEK)
    assert one(ring).result() == 3 and bytes(peek[:3]) == b"fgh"
    assert server.recv(10) == b"fgh"
    with pytest.raises(TypeError):
        ring.prep_recv(server, b"read-only")
    with pytest.raises(ValueError, match="length"):
        ring.prep_send(client, b"abc", length=4)


def test_send_vectorized(ring: uring.Ring, tcp_pair: Tuple[socket.socket, socket.socket]) -> None:
    require_op(abi.IORING_OP_SEND)
    client, server = tcp_pair
    ring.prep_send(client, [b"one ", bytearray(b"two "), memoryview(b"three")])
    c = one(ring)
    if c.res == -errno.EINVAL:  # pragma: no cover - kernel before IORING_SEND_VECTORIZED
        pytest.skip("this kernel has no IORING_SEND_VECTORIZED")
    assert c.result() == 13 and recv_exactly(server, 13) == b"one two three"


def test_sendto_and_recv_udp(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_SEND)
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with a, b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        ring.prep_send(a, b"datagram", to=b.getsockname())
        assert one(ring).result() == 8
        b.settimeout(5)
        data, sender = b.recvfrom(100)
        assert data == b"datagram" and sender == a.getsockname()
        # An unconnected UDP socket with no destination: the kernel's error.
        ring.prep_send(a, b"nowhere")
        with pytest.raises(OSError) as info:
            one(ring).result()
        assert info.value.errno == errno.EDESTADDRREQ and "IORING_OP_SEND" in str(info.value)


def test_recv_from_non_socket(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_RECV)
    rd, wr = os.pipe()
    try:
        ring.prep_recv(rd, bytearray(4))
        with pytest.raises(OSError) as info:
            one(ring).result()
        assert info.value.errno == errno.ENOTSOCK and "IORING_OP_RECV" in str(info.value)
    finally:
        os.close(rd)
        os.close(wr)


def test_recv_selects_a_provided_buffer(ring: uring.Ring,
                                        tcp_pair: Tuple[socket.socket, socket.socket]) -> None:
    require_op(abi.IORING_OP_RECV)
    client, server = tcp_pair
    br = ring.register_buf_ring(3, 4, 64)
    ring.prep_recv(server, None, buf_group=3, length=10)
    client.sendall(b"into a provided buffer")
    c = one(ring)
    assert c.result() == 10 and c.buffer_id is not None
    assert br.take(c) == b"into a pro"
    with pytest.raises(ValueError, match="no buffers are provided"):
        ring.prep_recv(server, None, buf_group=9)
    with pytest.raises(ValueError, match="buf_group"):
        ring.prep_recv(server, bytearray(4), multishot=True)
    with pytest.raises(ValueError, match="no length"):
        ring.prep_recv(server, None, buf_group=3, multishot=True, length=5)


def test_recv_and_send_bundles(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_RECV)
    if not ring.params.features & abi.IORING_FEAT_RECVSEND_BUNDLE:
        pytest.skip("no IORING_RECVSEND_BUNDLE on this kernel")
    a, b = socket.socketpair()
    with a, b:
        out = ring.register_buf_ring(1, 4, 16)
        for i in range(4):
            out.buffer(i)[:] = bytes([65 + i]) * 16
        ring.prep_send(a, None, buf_group=1, length=10, user_data=1)  # part of buffer 0
        assert one(ring).result() == 10
        assert b.recv(100) == b"A" * 10
        ring.prep_send(a, None, buf_group=1, bundle=True, user_data=2)  # 1, 2, 3 at once
        c = one(ring)
        assert c.result() == 48 and c.buffer_id == 1
        assert recv_exactly(b, 48) == b"B" * 16 + b"C" * 16 + b"D" * 16
        inbound = ring.register_buf_ring(2, 8, 8)
        a.sendall(b"0123456789abcdefghijklmnop")
        ring.prep_recv(b, None, buf_group=2, bundle=True, user_data=3)
        c = one(ring)
        assert c.result() == 26 and c.buffer_id == 0
        # A fresh ring hands out buffers 0, 1, 2, ... in order.
        got = b"".join(bytes(inbound.buffer(i)) for i in range(4))[:26]
        assert got == b"0123456789abcdefghijklmnop"


def test_multishot_recv_stream_larger_than_the_pool(ring: uring.Ring,
                                                    tcp_pair: Tuple[socket.socket,
                                                                    socket.socket]) -> None:
    """ACCEPTANCE: a 1 MiB stream through 8 x 4 KiB provided buffers, every
    byte accounted for; the pool runs dry (-ENOBUFS ends the multishot) and
    the receive is armed again."""
    require_op(abi.IORING_OP_RECV)
    client, server = tcp_pair
    stream = os.urandom(1 << 20)
    br = ring.register_buf_ring(7, 8, 4096)

    def send() -> None:
        client.sendall(stream)
        client.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send)
    sender.start()
    received: List[bytes] = []
    arms = enobufs = 0
    try:
        while True:
            ud = ring.prep_recv(server, None, buf_group=7, multishot=True)
            arms += 1
            # Odd arms hold every buffer until the arm ends, so the pool runs
            # dry while data is waiting; even arms recycle each one at once.
            hold = arms % 2 == 1
            held: List[Completion] = []
            final = None
            while final is None:
                batch = ring.completions(1, timeout=10)
                assert batch, "the multishot receive went silent"
                for c in batch:
                    assert c.user_data == ud
                    if c.buffer_id is not None:
                        assert 0 < c.res <= 4096
                        if hold:
                            received.append(bytes(br.buffer(c.buffer_id)[: c.res]))
                            held.append(c)
                        else:
                            received.append(br.take(c))
                    if not c.more:
                        final = c
            br.recycle(c.buffer_id for c in held)  # type: ignore[misc]
            if final.res == -errno.ENOBUFS:
                enobufs += 1
                assert not final.more and final.buffer_id is None
                continue
            if final.res == 0:
                break  # EOF: the sender shut down
            assert final.res > 0, final  # a final CQE with data: arm again
    finally:
        sender.join(10)
    assert b"".join(received) == stream
    assert enobufs >= 1 and arms >= 2
    assert ring.in_flight == 0


# -- zero-copy sends ------------------------------------------------------------------


def test_send_zc_two_cqes_and_buffer_held_until_notif(
        ring: uring.Ring, tcp_pair: Tuple[socket.socket, socket.socket]) -> None:
    require_op(abi.IORING_OP_SEND_ZC)
    client, server = tcp_pair
    data = Buf(b"zero copy payload")
    ref = weakref.ref(data)
    ud = ring.prep_send_zc(client, data)
    del data
    ring.submit_and_wait(2)  # both CQEs posted; reap them one at a time
    (first,) = ring.reap_completions(1)
    assert first.user_data == ud and first.more and not first.notif
    assert first.result() == 17
    del first
    gc.collect()
    assert ref() is not None and ring.in_flight == 1  # held until the notification
    (notif,) = ring.reap_completions(1)
    assert notif.notif and not notif.more and notif.user_data == ud and notif.res == 0
    del notif
    gc.collect()
    assert ref() is None and ring.in_flight == 0
    assert recv_exactly(server, 17) == b"zero copy payload"
    with pytest.raises(ValueError, match="SKIP_SUCCESS"):
        ring.prep_send_zc(client, b"x", flags=abi.IOSQE_CQE_SKIP_SUCCESS)


def zc_pair(ring: uring.Ring) -> Tuple[Completion, Completion]:
    out = ring.completions(2, timeout=5)
    assert len(out) == 2 and out[0].more and out[1].notif and not out[1].more
    return out[0], out[1]


def test_send_zc_flags(ring: uring.Ring, tcp_pair: Tuple[socket.socket, socket.socket]) -> None:
    require_op(abi.IORING_OP_SEND_ZC)
    client, server = tcp_pair
    # REPORT_USAGE: loopback delivers to a local socket, so the kernel had to copy.
    ring.prep_send_zc(client, b"usage", report_usage=True, poll_first=True)
    result, notif = zc_pair(ring)
    assert result.result() == 5
    assert (notif.res & 0xFFFFFFFF) & abi.IORING_NOTIF_USAGE_ZC_COPIED
    # FIXED_BUF: the bytes come from a registered buffer.
    registered = bytearray(b"....registered bytes....")
    ring.register_buffers([registered])
    ring.prep_send_zc(client, None, buf_index=0, buf_offset=4, length=16)
    result, notif = zc_pair(ring)
    assert result.result() == 16 and notif.res == 0
    # Vectorized.
    ring.prep_send_zc(client, [b"vec", b"tor"])
    result, _ = zc_pair(ring)
    vectorized = result.res != -errno.EINVAL
    if vectorized:
        assert result.result() == 6
    expect = b"usage" + b"registered bytes" + (b"vector" if vectorized else b"")
    assert recv_exactly(server, len(expect)) == expect
    with pytest.raises(ValueError, match="not registered"):
        ring.prep_send_zc(client, None, buf_index=5)


def test_send_zc_udp_and_unsupported_socket(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_SEND_ZC)
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with a, b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        ring.prep_send_zc(a, b"zc datagram", to=b.getsockname())
        result, _ = zc_pair(ring)
        assert result.result() == 11
        b.settimeout(5)
        assert b.recvfrom(100) == (b"zc datagram", a.getsockname())
    x, y = socket.socketpair()  # AF_UNIX has no zero-copy: the kernel says so
    with x, y:
        ring.prep_send_zc(x, b"no")
        result, _ = zc_pair(ring)
        with pytest.raises(OSError) as info:
            result.result()
        assert info.value.errno == errno.EOPNOTSUPP and "IORING_OP_SEND_ZC" in str(info.value)


def test_sendmsg_zc(ring: uring.Ring, tcp_pair: Tuple[socket.socket, socket.socket]) -> None:
    require_op(abi.IORING_OP_SENDMSG_ZC)
    client, server = tcp_pair
    parts = [Buf(b"gathered "), Buf(b"zero copy")]
    refs = [weakref.ref(p) for p in parts]
    ring.prep_sendmsg_zc(client, parts, report_usage=True)
    del parts
    ring.submit_and_wait(2)
    (first,) = ring.reap_completions(1)
    assert first.more and first.result() == 18
    del first
    gc.collect()
    assert all(r() is not None for r in refs)  # held until the notification
    (notif,) = ring.reap_completions(1)
    assert notif.notif and (notif.res & 0xFFFFFFFF) & abi.IORING_NOTIF_USAGE_ZC_COPIED
    del notif
    gc.collect()
    assert all(r() is None for r in refs)
    assert recv_exactly(server, 18) == b"gathered zero copy"
    # From a registered buffer (IORING_RECVSEND_FIXED_BUF, 6.15+).
    registered = bytearray(b"0123456789abcdef")
    ring.register_buffers([registered])
    view = memoryview(registered)
    ring.prep_sendmsg_zc(client, [view[2:5], view[10:14]], buf_index=0)
    result, _ = zc_pair(ring)
    if result.res != -errno.EINVAL:
        assert result.result() == 7 and recv_exactly(server, 7) == b"234abcd"
    with pytest.raises(ValueError, match="inside registered buffer"):
        ring.prep_sendmsg_zc(client, [b"elsewhere"], buf_index=0)


# -- messages -------------------------------------------------------------------------


def test_sendmsg_recvmsg_pass_an_fd(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_SENDMSG)
    require_op(abi.IORING_OP_RECVMSG)
    a, b = socket.socketpair()
    rd, wr = os.pipe()
    try:
        fds = array.array("i", [rd])
        ring.prep_sendmsg(a, [b"fd ", b"inside"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)],
                          user_data=1)
        buf = bytearray(32)
        ring.prep_recvmsg(b, [buf], socket.CMSG_SPACE(fds.itemsize), user_data=2)
        got = by_user_data(ring, 2)
        assert got[1].result() == 9
        nbytes, ancdata, flags, address = got[2].result()
        assert nbytes == 9 and bytes(buf[:9]) == b"fd inside" and flags == 0
        assert address is None  # as socket.recvmsg gives for a stream socketpair
        ((level, kind, data),) = ancdata
        assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
        (passed,) = array.array("i", data)
        assert passed not in (rd, wr)
        try:
            os.write(wr, b"through the passed fd")
            assert os.read(passed, 100) == b"through the passed fd"
        finally:
            os.close(passed)
        # Too little control space: MSG_CTRUNC, as recvmsg reports it.
        ring.prep_sendmsg(a, [b"again"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        ring.prep_recvmsg(b, [bytearray(8)], 0, user_data=3)
        got = by_user_data(ring, 2)
        assert got[3].result()[2] & socket.MSG_CTRUNC
    finally:
        a.close()
        b.close()
        os.close(rd)
        os.close(wr)


def test_sendmsg_recvmsg_udp_addresses(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_SENDMSG)
    require_op(abi.IORING_OP_RECVMSG)
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with a, b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        head, tail = bytearray(4), bytearray(16)
        ring.prep_recvmsg(b, [head, tail], user_data=2)
        ring.prep_sendmsg(a, [b"addr", b"essed"], address=b.getsockname(), user_data=1)
        got = by_user_data(ring, 2)
        assert got[1].result() == 9
        nbytes, ancdata, flags, address = got[2].result()
        assert (nbytes, ancdata, flags) == (9, [], 0)
        assert address == a.getsockname()
        assert bytes(head) == b"addr" and bytes(tail[:5]) == b"essed"
        # Without a destination on an unconnected socket: the kernel's error.
        ring.prep_sendmsg(a, [b"x"])
        with pytest.raises(OSError) as info:
            one(ring).result()
        assert info.value.errno == errno.EDESTADDRREQ and "IORING_OP_SENDMSG" in str(info.value)
        with pytest.raises(TypeError):
            ring.prep_sendmsg(a, b"one buffer")
        with pytest.raises(TypeError):
            ring.prep_recvmsg(b, [b"read-only"])


def test_recvmsg_single_shot_with_provided_buffer(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_RECVMSG)
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with a, b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        br = ring.register_buf_ring(4, 2, 256)
        ring.prep_recvmsg(b, None, buf_group=4)
        a.sendto(b"picked by the kernel", b.getsockname())
        c = one(ring)
        nbytes, _, _, address = c.result()
        assert nbytes == 20 and address == a.getsockname()
        assert br.take(c) == b"picked by the kernel"


def test_multishot_recvmsg_from_several_senders(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_RECVMSG)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    try:
        receiver.bind(("127.0.0.1", 0))
        receiver.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        for s in senders:
            s.bind(("127.0.0.1", 0))
        control = socket.CMSG_SPACE(12)  # struct in_pktinfo
        br = ring.register_buf_ring(5, 8, 512)
        ud = ring.prep_recvmsg(receiver, None, control, buf_group=5, multishot=True)
        ring.submit()
        sent = set()
        for n in range(2):
            for i, s in enumerate(senders):
                payload = b"sender %d datagram %d" % (i, n)
                s.sendto(payload, receiver.getsockname())
                sent.add((s.getsockname(), payload))
        out: List[Completion] = []
        while len(out) < 6:
            out += ring.completions(6 - len(out), timeout=5)
        received = set()
        for c in out:
            assert c.user_data == ud and c.more
            raw = br.take(c)
            assert len(raw) == c.result()
            msg = parse_recvmsg_out(raw, SOCKADDR_STORAGE_SIZE, control)
            assert msg.flags == 0
            ((level, kind, data),) = msg.ancdata
            assert (level, kind) == (socket.IPPROTO_IP, IP_PKTINFO)
            assert socket.inet_ntoa(data[8:12]) == "127.0.0.1"  # ipi_addr: where it went
            received.add((msg.address, msg.payload))
        assert received == sent
        # A datagram longer than the room left in the buffer: MSG_TRUNC.
        senders[0].sendto(b"L" * 1000, receiver.getsockname())
        c = one(ring)
        msg = parse_recvmsg_out(br.take(c), SOCKADDR_STORAGE_SIZE, control)
        assert msg.flags & socket.MSG_TRUNC and msg.payload == b"L" * len(msg.payload)
        assert 0 < len(msg.payload) < 1000
        ring.prep(abi.IORING_OP_ASYNC_CANCEL, addr=ud, user_data=ud + 1000)
        got = by_user_data(ring, 2)
        assert got[ud].res == -errno.ECANCELED and not got[ud].more
    finally:
        receiver.close()
        for s in senders:
            s.close()


def test_parse_recvmsg_out_validates() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        parse_recvmsg_out(bytes(20), 16, 0)
    header = (ctypes.c_uint32 * 4)(16, 0, 3, 0)
    sa, length = make_sockaddr(("10.1.2.3", 99))
    name = ctypes.string_at(ctypes.addressof(sa), length)
    msg = parse_recvmsg_out(bytes(header) + name + b"abc", 16, 0)
    assert msg == (("10.1.2.3", 99), [], b"abc", 0)
    # The name did not fit: the raw bytes that did.
    header = (ctypes.c_uint32 * 4)(28, 0, 1, 0)
    msg = parse_recvmsg_out(bytes(header) + bytes(8) + b"z", 8, 0)
    assert msg.address == bytes(8) and msg.payload == b"z"


def test_recvmsg_multishot_needs_a_group(ring: uring.Ring) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        with pytest.raises(ValueError, match="buf_group"):
            ring.prep_recvmsg(s, [bytearray(8)], multishot=True)
        with pytest.raises(ValueError, match="namelen"):
            ring.prep_recvmsg(s, [bytearray(8)], namelen=500)


def churn() -> List[object]:
    """Collect garbage and allocate over what was freed: memory a request
    forgot to hold would now hold these bytes instead."""
    gc.collect()
    return [ctypes.create_string_buffer(b"\xff" * n, n) for n in range(8, 264, 8) for _ in range(50)]


def test_structures_live_until_the_kernel_is_done(ring: uring.Ring,
                                                  listener: socket.socket) -> None:
    """Nothing but the request references the sockaddr, msghdr, iovecs,
    control buffer and accept address buffers between prep and submit."""
    require_op(abi.IORING_OP_SENDMSG)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    rd, wr = os.pipe()
    client = socket.socket()
    try:
        ud_accept = ring.prep_accept(listener, user_data=4)
        ring.prep_connect(client, listener.getsockname(), user_data=1)
        ring.prep_sendmsg(a, [bytearray(b"kept "), bytearray(b"alive")],
                          [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [rd]))],
                          user_data=2)
        ring.prep_recvmsg(b, [bytearray(16)], socket.CMSG_SPACE(4), user_data=3)
        junk = churn()
        got = by_user_data(ring, 4)
        del junk
        assert got[1].result() == 0 and got[2].result() == 10
        nbytes, ancdata, _, _ = got[3].result()
        assert nbytes == 10 and got[3].request.keep.iov.buffers[0].obj[:10] == b"kept alive"
        (passed,) = array.array("i", ancdata[0][2])
        os.close(passed)
        with socket.socket(fileno=got[ud_accept].result()) as server:
            assert ring.peer_address(got[ud_accept]) == client.getsockname()
            assert server.getpeername() == client.getsockname()
    finally:
        for s in (a, b, client):
            s.close()
        os.close(rd)
        os.close(wr)


# -- chains, probe ---------------------------------------------------------------------


def test_linked_connect_send_recv(ring: uring.Ring, listener: socket.socket) -> None:
    require_op(abi.IORING_OP_CONNECT)
    with socket.socket() as client:
        reply = bytearray(4)
        with ring.link():
            ring.prep_connect(client, listener.getsockname(), user_data=1)
            ring.prep_send(client, b"ping", user_data=2)
            ring.prep_recv(client, reply, user_data=3)
        got = by_user_data(ring, 2)  # the recv waits for the reply
        assert got[1].result() == 0 and got[2].result() == 4
        server, _ = listener.accept()
        with server:
            assert recv_exactly(server, 4) == b"ping"
            server.sendall(b"pong")
            c = one(ring)
            assert c.user_data == 3 and c.result() == 4 and bytes(reply) == b"pong"
    # A failed connect cancels the rest of the chain.
    with socket.socket() as probe, socket.socket() as client:
        probe.bind(("127.0.0.1", 0))
        with ring.link():
            ring.prep_connect(client, probe.getsockname(), user_data=4)
            ring.prep_send(client, b"never", user_data=5)
        got = by_user_data(ring, 2)
        assert got[4].res == -errno.ECONNREFUSED and got[5].res == -errno.ECANCELED


@pytest.mark.parametrize("prep", [
    lambda r, s: r.prep_socket(socket.AF_INET, socket.SOCK_STREAM),
    lambda r, s: r.prep_bind(s, ("127.0.0.1", 0)),
    lambda r, s: r.prep_listen(s, 1),
    lambda r, s: r.prep_accept(s),
    lambda r, s: r.prep_connect(s, ("127.0.0.1", 1)),
    lambda r, s: r.prep_send(s, b"x"),
    lambda r, s: r.prep_send_zc(s, b"x"),
    lambda r, s: r.prep_recv(s, bytearray(1)),
    lambda r, s: r.prep_sendmsg(s, [b"x"]),
    lambda r, s: r.prep_sendmsg_zc(s, [b"x"]),
    lambda r, s: r.prep_recvmsg(s, [bytearray(1)]),
    lambda r, s: r.prep_shutdown(s, socket.SHUT_RDWR),
])
def test_unsupported_op_refused_before_submission(ring: uring.Ring,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  prep: object) -> None:
    monkeypatch.setattr(ring, "_supported_ops", frozenset())
    with socket.socket() as s:
        before = ring.sq_ready
        with pytest.raises(uring.UnsupportedOperation):
            prep(ring, s)  # type: ignore[operator]
        assert ring.sq_ready == before and ring.in_flight == 0

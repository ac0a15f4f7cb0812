"""The socket ops that take an ``IovecArray`` (a vectored SEND/SEND_ZC,
SENDMSG, SENDMSG_ZC, RECVMSG) refuse one whose ``PinnedBuffer`` was
released: its iovec still holds the old address, which may have moved (a
resized ``bytearray``) or been freed.  The refusal is
``ReleasedBufferError`` naming the op and the iovec, raised before any SQE
is written: no stale heap bytes reach the peer, nothing is received into
freed memory.  A list holding a released buffer is refused naming the op
too.  Real kernel, loopback TCP."""

from __future__ import annotations

import socket
from typing import Callable, Dict, Iterator, Tuple

import pytest
from conftest import require_uring

import uring
from uring.buffers import IovecArray, PinnedBuffer, ReleasedBufferError

Pair = Tuple[socket.socket, socket.socket]

SENDS: Dict[str, Tuple[str, Callable[..., int]]] = {
    "send": ("IORING_OP_SEND", lambda r, s, data: r.prep_send(s, data)),
    "send_zc": ("IORING_OP_SEND_ZC", lambda r, s, data: r.prep_send_zc(s, data)),
    "sendmsg": ("IORING_OP_SENDMSG", lambda r, s, data: r.prep_sendmsg(s, data)),
    "sendmsg_zc": ("IORING_OP_SENDMSG_ZC", lambda r, s, data: r.prep_sendmsg_zc(s, data)),
}


@pytest.fixture
def pair() -> Iterator[Pair]:
    """A connected loopback TCP pair: (client, server)."""
    require_uring()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    try:
        yield client, server
    finally:
        client.close()
        server.close()


def released_iovecs(writable: bool, which: int) -> Tuple[IovecArray, bytearray]:
    """Two 64-byte buffers in an IovecArray; buffer *which* released and its
    bytearray grown (so its memory moves)."""
    sources = [bytearray(b"S" * 64), bytearray(b"T" * 64)]
    pins = [PinnedBuffer(s, writable=True) for s in sources]
    iov = IovecArray(pins, writable=writable)
    pins[which].release()
    sources[which].extend(b"\0" * 1_000_000)
    return iov, sources[which]


def assert_ring_untouched(ring: uring.Ring, before: Tuple[int, int]) -> None:
    assert (ring.sq_ready, ring.in_flight) == before
    ud = ring.prep_nop(user_data=77)
    (c,) = ring.completions(1, timeout=5)
    assert c.user_data == ud == 77 and c.res == 0
    assert ring.in_flight == 0


def first_bytes_at_peer(ring: uring.Ring, client: socket.socket, server: socket.socket) -> bytes:
    """Send a marker through the ring: the peer's first bytes show whether
    anything went before it."""
    ring.prep_send(client, b"marker", user_data=5)
    (c,) = ring.completions(1, timeout=5)
    assert c.result() == 6
    server.settimeout(5)
    got = b""
    while len(got) < 6:
        chunk = server.recv(6 - len(got))
        assert chunk
        got += chunk
    return got


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("kind", list(SENDS))
def test_sends_refuse_a_released_buffer_in_an_iovec_array(pair: Pair, kind: str,
                                                         which: int) -> None:
    client, server = pair
    name, prep = SENDS[kind]
    with uring.Ring(8) as ring:
        iov, _ = released_iovecs(writable=False, which=which)
        before = (ring.sq_ready, ring.in_flight)
        with pytest.raises(ReleasedBufferError, match=f"{name}: iovec {which} "):
            prep(ring, client, iov)
        assert_ring_untouched(ring, before)
        # no stale heap bytes went out ahead of the next send
        assert first_bytes_at_peer(ring, client, server) == b"marker"


@pytest.mark.parametrize("kind", list(SENDS))
def test_sends_refuse_a_released_buffer_in_a_list_naming_the_op(pair: Pair, kind: str) -> None:
    client, server = pair
    name, prep = SENDS[kind]
    pb = PinnedBuffer(bytearray(16))
    pb.release()
    with uring.Ring(8) as ring:
        before = (ring.sq_ready, ring.in_flight)
        with pytest.raises(ReleasedBufferError, match=f"{name}: .* was released"):
            prep(ring, client, [b"live", pb])
        assert_ring_untouched(ring, before)
        assert first_bytes_at_peer(ring, client, server) == b"marker"


@pytest.mark.parametrize("which", [0, 1])
def test_recvmsg_refuses_a_released_buffer_in_an_iovec_array(pair: Pair, which: int) -> None:
    client, server = pair
    client.sendall(b"payload")
    with uring.Ring(8) as ring:
        iov, grown = released_iovecs(writable=True, which=which)
        before = (ring.sq_ready, ring.in_flight)
        # not "every buffer must be writable" (a TypeError): the buffer was released
        with pytest.raises(ReleasedBufferError, match=f"IORING_OP_RECVMSG: iovec {which} "):
            ring.prep_recvmsg(server, iov)
        assert_ring_untouched(ring, before)
        assert grown[:64] == (b"S" if which == 0 else b"T") * 64  # nothing received into it
        # the payload is still waiting: a live array receives it
        a, b = bytearray(3), bytearray(4)
        into = IovecArray([PinnedBuffer(a, writable=True), b], writable=True)
        ring.prep_recvmsg(server, into, user_data=9)
        (c,) = ring.completions(1, timeout=5)
        assert c.result()[0] == 7 and a + b == b"payload"
        # a live read-only array for a receive: refused as before
        with pytest.raises(TypeError, match="IORING_OP_RECVMSG: every buffer must be writable"):
            ring.prep_recvmsg(server, IovecArray([b"ro"], writable=False))


def test_recvmsg_refuses_a_released_buffer_in_a_list_naming_the_op(pair: Pair) -> None:
    _, server = pair
    pb = PinnedBuffer(bytearray(16), writable=True)
    pb.release()
    with uring.Ring(8) as ring:
        before = (ring.sq_ready, ring.in_flight)
        with pytest.raises(ReleasedBufferError, match="IORING_OP_RECVMSG: .* was released"):
            ring.prep_recvmsg(server, [bytearray(8), pb])
        assert_ring_untouched(ring, before)

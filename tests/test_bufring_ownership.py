"""Who holds each provided buffer: ``BufferRing.take`` and ``recycle`` give
back only buffers a completion handed out, each once.

A buffer given back while the kernel still holds it is listed twice in the
ring: the tail runs more than ``entries`` past the kernel's head
(overwriting entries it has not consumed), and the kernel then fills one
buffer for two receives, overwriting data nobody has read.  Real kernel,
real sockets on loopback, receives that select from the group.
"""

from __future__ import annotations

import errno
import socket
from typing import Iterator, List, Tuple

import pytest
from conftest import require_op

import uring
from uring import abi
from uring.request import Completion

GROUP = 1


@pytest.fixture
def pair() -> Iterator[Tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    with a, b:
        yield a, b


def receive(ring: uring.Ring, a: socket.socket, b: socket.socket, data: bytes,
            **kwargs: object) -> Completion:
    """Send *data* on *a*, then one receive on *b* selecting from GROUP."""
    a.sendall(data)
    ring.prep_recv(b, None, buf_group=GROUP, **kwargs)  # type: ignore[arg-type]
    (c,) = ring.completions(1, timeout=5)
    return c


def ring_bytes(br: uring.BufferRing) -> bytes:
    return bytes(br._ring_map[: br.entries * 16])


def test_take_twice_is_refused_and_the_buffer_is_not_listed_twice(
        ring: uring.Ring, pair: Tuple[socket.socket, socket.socket]) -> None:
    require_op(abi.IORING_OP_RECV)
    a, b = pair
    br = ring.register_buf_ring(group=GROUP, entries=4, size=8)
    c = receive(ring, a, b, b"first")
    assert c.buffer_id == 0 and br.take(c) == b"first"
    tail, entries = br.tail, ring_bytes(br)
    with pytest.raises(ValueError, match="buffer id 0 of group 1 is in the kernel's hands"):
        br.take(c)  # the same completion again: buffer 0 is back in the ring already
    assert br.tail == tail == 5 and ring_bytes(br) == entries  # nothing written
    # Four receives, nothing given back: four different buffers, then the
    # group runs dry; every buffer still holds what it received.
    got = [receive(ring, a, b, b"msg%d" % i) for i in range(5)]
    assert [c.buffer_id for c in got[:4]] == [1, 2, 3, 0]
    assert got[4].res == -errno.ENOBUFS and got[4].buffer_id is None
    assert [br.take(c) for c in got[:4]] == [b"msg0", b"msg1", b"msg2", b"msg3"]
    assert (br.tail - br.head()) & 0xFFFF == br.entries


def test_recycle_refuses_a_bid_named_twice_in_one_call(
        ring: uring.Ring, pair: Tuple[socket.socket, socket.socket]) -> None:
    require_op(abi.IORING_OP_RECV)
    a, b = pair
    br = ring.register_buf_ring(group=GROUP, entries=4, size=8)
    c0, c1 = receive(ring, a, b, b"zero"), receive(ring, a, b, b"one")
    assert (c0.buffer_id, c1.buffer_id) == (0, 1)  # both are the user's now
    tail, entries = br.tail, ring_bytes(br)
    with pytest.raises(ValueError, match="buffer id 0 of group 1 is named more than once"):
        br.recycle([0, 0, 1])
    assert br.tail == tail == 4 and ring_bytes(br) == entries
    br.recycle([0, 1])  # once each: accepted
    assert br.tail == 6
    with pytest.raises(ValueError, match="in the kernel's hands"):
        br.recycle([1])  # given back already


def test_recycle_refuses_a_bid_the_kernel_holds_before_writing_anything(
        ring: uring.Ring, pair: Tuple[socket.socket, socket.socket]) -> None:
    require_op(abi.IORING_OP_RECV)
    a, b = pair
    br = ring.register_buf_ring(group=GROUP, entries=4, size=8)
    entries = ring_bytes(br)
    for bids in ([0], [3], [2, 1]):  # set up: every buffer is in the ring
        with pytest.raises(ValueError, match="in the kernel's hands"):
            br.recycle(bids)
    assert br.tail == 4 and ring_bytes(br) == entries and br.head() == 0
    c = receive(ring, a, b, b"data")
    assert c.buffer_id == 0
    # One buffer the user holds and one the kernel holds: all refused, so
    # buffer 0 is still the user's and can go back afterwards.
    with pytest.raises(ValueError, match="buffer id 1 of group 1"):
        br.recycle([0, 1])
    assert br.tail == 4 and ring_bytes(br) == entries
    br.recycle(iter([0]))  # any iterable, as before
    assert br.tail == 5


def test_a_buffer_from_a_completion_goes_back_once(
        ring: uring.Ring, pair: Tuple[socket.socket, socket.socket]) -> None:
    """The bid read straight off the CQE (``Completion.buffer_id``, as the
    asyncio transports do) is recyclable without ``take``, once."""
    require_op(abi.IORING_OP_RECV)
    a, b = pair
    br = ring.register_buf_ring(group=GROUP, entries=2, size=8)
    held: List[Completion] = [receive(ring, a, b, b"x" * 8) for _ in range(2)]
    assert receive(ring, a, b, b"y").res == -errno.ENOBUFS  # the pool ran dry
    assert b.recv(8) == b"y"
    br.recycle(c.buffer_id for c in held)  # type: ignore[misc]
    assert (br.tail - br.head()) & 0xFFFF == 2
    with pytest.raises(ValueError, match="in the kernel's hands"):
        br.recycle([held[0].buffer_id])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="in the kernel's hands"):
        br.take(held[1])
    assert (br.tail - br.head()) & 0xFFFF == 2 == br.entries
    again = [receive(ring, a, b, b"z%d" % i) for i in range(2)]
    assert sorted(c.buffer_id for c in again) == [0, 1]  # type: ignore[type-var]
    assert [br.take(c) for c in again] == [b"z0", b"z1"]


def test_the_ring_never_holds_more_than_entries_buffers(
        ring: uring.Ring, pair: Tuple[socket.socket, socket.socket]) -> None:
    """Many rounds of receive / give back, every wrong give-back refused:
    the published tail never runs more than ``entries`` past the kernel's
    head, and no buffer is handed out twice while it is held."""
    require_op(abi.IORING_OP_RECV)
    a, b = pair
    br = ring.register_buf_ring(group=GROUP, entries=4, size=16)
    for round_ in range(40):  # the u16 counters need not wrap; the slots do, 10 times
        held = [receive(ring, a, b, b"r%d-%d" % (round_, i)) for i in range(3)]
        bids = [c.flags >> abi.IORING_CQE_BUFFER_SHIFT for c in held]
        assert all(c.buffer_id is not None for c in held) and len(set(bids)) == 3
        for c in held[:2]:
            assert br.take(c).startswith(b"r%d-" % round_)
            with pytest.raises(ValueError):
                br.take(c)
        with pytest.raises(ValueError):
            br.recycle(bids)  # two of the three are back already
        assert 0 <= (br.tail - br.head()) & 0xFFFF <= br.entries
        br.recycle(bids[2:])
        assert (br.tail - br.head()) & 0xFFFF == br.entries


def test_a_bundle_hands_out_every_buffer_it_filled(
        ring: uring.Ring, pair: Tuple[socket.socket, socket.socket]) -> None:
    """A bundle receive takes several buffers for one CQE (which names the
    first): all of them are the user's, the ones after them still the
    kernel's."""
    require_op(abi.IORING_OP_RECV)
    if not ring.params.features & abi.IORING_FEAT_RECVSEND_BUNDLE:
        pytest.skip("no IORING_RECVSEND_BUNDLE on this kernel")
    a, b = pair
    br = ring.register_buf_ring(group=GROUP, entries=8, size=8)
    data = b"0123456789abcdefghijklmnop"
    c = receive(ring, a, b, data, bundle=True)
    assert c.buffer_id == 0 and 8 < c.res <= len(data)  # more than one buffer
    used = -(-c.res // 8)  # a fresh ring hands out buffers 0, 1, 2, ... in order
    assert b"".join(bytes(br.buffer(i)) for i in range(used))[:c.res] == data[:c.res]
    with pytest.raises(ValueError, match=f"buffer id {used} of group 1"):
        br.recycle(range(used + 1))  # one past the bundle: still the kernel's
    br.recycle(range(used))
    assert (br.tail - br.head()) & 0xFFFF == 8


def test_multishot_receives_give_back_through_take(
        ring: uring.Ring, pair: Tuple[socket.socket, socket.socket]) -> None:
    require_op(abi.IORING_OP_RECV)
    a, b = pair
    br = ring.register_buf_ring(group=GROUP, entries=2, size=8)
    ud = ring.prep_recv(b, None, buf_group=GROUP, multishot=True)
    got = []
    for i in range(6):  # three times round a two-buffer pool
        a.send(b"m%d" % i)
        (c,) = ring.completions(1, timeout=5)
        assert c.user_data == ud and c.more
        got.append(br.take(c))
        with pytest.raises(ValueError):
            br.take(c)
    assert got == [b"m%d" % i for i in range(6)]
    ring.prep_cancel(ud)
    ring.completions(2, timeout=5)

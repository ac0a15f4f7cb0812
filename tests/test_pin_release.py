"""A pinned buffer the kernel may still use cannot be released.

``PinnedBuffer.release()`` lets the object move or be freed, so while a
request in flight keeps the buffer (until its final CQE), or a registered
table holds it, the release is refused with ``BufferError``, the pin left
as it was; after the final completion (or the unregister) it goes.
"""

from __future__ import annotations

import os
from typing import Iterator, Tuple

import pytest
from conftest import require_uring

import uring
from uring.buffers import IovecArray, PinnedBuffer


@pytest.fixture
def ring() -> Iterator[uring.Ring]:
    require_uring()
    with uring.Ring(8) as r:
        yield r


def test_a_buffer_read_into_is_not_released_until_its_completion(
        ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    r, w = pipe
    target = bytearray(8)
    pb = PinnedBuffer(target, writable=True)
    ring.prep_read(r, pb, -1, 1)
    ring.submit()
    with pytest.raises(BufferError, match="in use by the kernel"):
        pb.release()
    assert pb.live
    with pytest.raises(BufferError):
        target.extend(b"x")  # still exported: it cannot move
    os.write(w, b"abcdefgh")
    assert ring.completions(1)[0].result() == 8 and bytes(target) == b"abcdefgh"
    pb.release()  # the final CQE is reaped: it may go
    assert not pb.live
    target.extend(b"x")


def test_a_buffer_in_an_iovec_array_in_flight_is_not_released(
        ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    r, w = pipe
    pins = [PinnedBuffer(bytearray(4), writable=True) for _ in range(2)]
    ring.prep_readv(r, IovecArray(pins, writable=True), -1, 1)
    ring.submit()
    for pb in pins:
        with pytest.raises(BufferError):
            pb.release()
    os.write(w, b"12345678")
    assert ring.completions(1)[0].result() == 8
    for pb in pins:
        pb.release()


def test_a_registered_buffer_is_not_released_until_unregistered(ring: uring.Ring) -> None:
    pb = PinnedBuffer(bytearray(16), writable=True)
    ring.register_buffers([pb])
    with pytest.raises(BufferError, match="registered table"):
        pb.release()
    ring.unregister_buffers()
    pb.release()
    assert not pb.live


def test_a_pin_nothing_keeps_is_released_and_collected_quietly(ring: uring.Ring) -> None:
    pb = PinnedBuffer(bytearray(16), writable=True)
    pb.release()
    assert not pb.live
    PinnedBuffer(bytearray(16), writable=True)  # collected at once: __del__ releases

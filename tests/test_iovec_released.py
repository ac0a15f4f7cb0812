"""A vectored read or write refuses an ``IovecArray`` one of whose
``PinnedBuffer``s was released: its iovec still holds the old address,
which may have moved (a resized ``bytearray``) or been freed.  The refusal
is ``ReleasedBufferError`` naming the op, raised before any SQE is written;
a write must not send stale heap memory to the file, a read must not write
into it.  Real kernel, real files."""

from __future__ import annotations

import os
from typing import Iterator, Tuple

import pytest

import uring
from uring.buffers import IovecArray, PinnedBuffer, ReleasedBufferError


@pytest.fixture
def file(tmp_path: "os.PathLike[str]") -> Iterator[Tuple[int, str]]:
    path = os.path.join(os.fspath(tmp_path), "iov.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        yield fd, path
    finally:
        os.close(fd)


def released_iovecs(writable: bool, which: int = 0) -> Tuple[IovecArray, bytearray]:
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


@pytest.mark.parametrize("which", [0, 1])
def test_writev_refuses_a_released_buffer_in_an_iovec_array(
        ring: uring.Ring, file: Tuple[int, str], which: int) -> None:
    fd, _ = file
    iov, _ = released_iovecs(writable=False, which=which)
    before = (ring.sq_ready, ring.in_flight)
    with pytest.raises(ReleasedBufferError, match=f"IORING_OP_WRITEV: iovec {which} "):
        ring.prep_writev(fd, iov, 0)
    assert_ring_untouched(ring, before)
    assert os.fstat(fd).st_size == 0  # no stale heap bytes reached the file


@pytest.mark.parametrize("which", [0, 1])
def test_readv_refuses_a_released_buffer_in_an_iovec_array(
        ring: uring.Ring, file: Tuple[int, str], which: int) -> None:
    fd, _ = file
    os.pwrite(fd, b"F" * 128, 0)
    iov, grown = released_iovecs(writable=True, which=which)
    before = (ring.sq_ready, ring.in_flight)
    # Not "every buffer must be writable" (a TypeError): the buffer was released.
    with pytest.raises(ReleasedBufferError, match=f"IORING_OP_READV: iovec {which} "):
        ring.prep_readv(fd, iov, 0)
    assert_ring_untouched(ring, before)
    assert grown[:64] == (b"S" if which == 0 else b"T") * 64  # nothing was read into it


@pytest.mark.parametrize("op", ["prep_readv", "prep_writev"])
def test_a_released_buffer_in_a_list_is_refused_naming_the_op(
        ring: uring.Ring, file: Tuple[int, str], op: str) -> None:
    fd, _ = file
    pb = PinnedBuffer(bytearray(16), writable=True)
    pb.release()
    before = (ring.sq_ready, ring.in_flight)
    name = "IORING_OP_READV" if op == "prep_readv" else "IORING_OP_WRITEV"
    with pytest.raises(ReleasedBufferError, match=f"{name}: .* was released"):
        getattr(ring, op)(fd, [bytearray(8), pb], 0)
    assert_ring_untouched(ring, before)


def test_a_live_iovec_array_still_reads_and_writes(ring: uring.Ring,
                                                   file: Tuple[int, str]) -> None:
    fd, _ = file
    out = IovecArray([PinnedBuffer(b"head-"), bytearray(b"tail")], writable=False)
    ring.prep_writev(fd, out, 0, user_data=1)
    (c,) = ring.completions(1, timeout=5)
    assert c.result() == 9 and os.pread(fd, 16, 0) == b"head-tail"
    a, b = bytearray(5), bytearray(4)
    into = IovecArray([PinnedBuffer(a, writable=True), b], writable=True)
    ring.prep_readv(fd, into, 0, user_data=2)
    (c,) = ring.completions(1, timeout=5)
    assert c.result() == 9 and (a, b) == (bytearray(b"head-"), bytearray(b"tail"))
    with pytest.raises(TypeError, match="IORING_OP_READV: every buffer must be writable"):
        ring.prep_readv(fd, out, 0)  # a read-only array for a read: refused as before

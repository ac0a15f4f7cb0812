"""One ``user_data`` per request in flight, whoever holds it.

The kernel hands back a CQE by its ``user_data`` alone, so two requests in
flight under one number make their completions ambiguous: the first CQE
would release the other's record, and with it the pin on the memory the
kernel is still writing.  The ring refuses the second, whatever the first
is: a request with a record, a bare NOP (filed with no record: its number
only) or an ``IOSQE_CQE_SKIP_SUCCESS`` request (held with the skipped).
"""

from __future__ import annotations

import os
from typing import Iterator, Tuple

import pytest
from conftest import require_uring

import uring
from uring import abi


@pytest.fixture
def ring() -> Iterator[uring.Ring]:
    require_uring()
    with uring.Ring(8) as r:
        yield r


def test_a_request_may_not_take_the_number_of_a_nop_in_flight(
        ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    r, w = pipe
    ring.prep_nop(5)
    ring.submit()  # the NOP's CQE waits in the CQ, unreaped: 5 is still taken
    buf = bytearray(8)
    with pytest.raises(ValueError, match="user_data 5 belongs to a request still in flight"):
        ring.prep_read(r, buf, 0, 5)
    with pytest.raises(ValueError, match="user_data \\[5\\]"):
        ring.prep_reads(r, [bytearray(8)], [0], [5])
    assert ring.sq_ready == 0 and ring.in_flight == 1
    assert [c.user_data for c in ring.completions(1)] == [5]
    # reaped: the number is free again, and the read's record lives until its own CQE
    ring.prep_read(r, buf, 0, 5)
    ring.submit()
    with pytest.raises(BufferError):
        buf.extend(b"x")  # still pinned: the NOP's CQE did not release the read's record
    os.write(w, b"abcdefgh")
    (c,) = ring.completions(1)
    assert (c.user_data, c.result(), bytes(buf)) == (5, 8, b"abcdefgh")


def test_a_nop_may_not_take_the_number_of_a_request_or_another_nop(
        ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    r, w = pipe
    ring.prep_read(r, bytearray(8), 0, 7)
    ring.prep_nop(8)
    for make in (lambda: ring.prep_nop(7), lambda: ring.prep_nop(8),
                 lambda: ring.prep_nops([9, 7]), lambda: ring.prep_nops([10, 10])):
        with pytest.raises(ValueError, match="in flight|given twice"):
            make()
    assert ring.sq_ready == 2 and ring.in_flight == 2  # nothing written, nothing filed
    os.write(w, b"12345678")
    assert sorted((c.user_data, c.result()) for c in ring.completions(2)) == [(7, 8), (8, 0)]
    assert ring.in_flight == 0


def test_skip_success_requests_hold_their_number_too(ring: uring.Ring,
                                                     pipe: Tuple[int, int]) -> None:
    r, w = pipe
    skip = int(abi.IOSQE_CQE_SKIP_SUCCESS)
    ring.prep_read(r, bytearray(4), 0, 7, flags=skip)
    for make in (lambda: ring.prep_read(r, bytearray(4), 0, 7),
                 lambda: ring.prep_nop(7),
                 lambda: ring.prep_reads(r, [bytearray(4)], [0], [7]),
                 lambda: ring.prep_read(r, bytearray(4), 0, 7, flags=skip)):
        with pytest.raises(ValueError, match="user_data \\[?7\\]? "):
            make()
    ring.prep_read(r, bytearray(4), 0, 8)
    with pytest.raises(ValueError, match="user_data 8 belongs"):
        ring.prep_read(r, bytearray(4), 0, 8, flags=skip)
    ring.submit()
    os.write(w, b"abcdefgh")
    # the skip-success read posts nothing; the other's CQE is its own
    assert [(c.user_data, c.result()) for c in ring.completions(1)] == [(8, 4)]


def test_a_user_data_of_the_wrong_type_is_named(ring: uring.Ring) -> None:
    for bad in ([1], {"a": 1}):
        with pytest.raises(TypeError, match="IORING_OP_NOP: user_data must be an int, not"):
            ring.prep_nop(bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="IORING_OP_READ: user_data must be an int"):
            ring.prep_read(0, bytearray(4), 0, bad)  # type: ignore[arg-type]
    assert ring.sq_ready == 0 and ring.in_flight == 0


def test_close_with_nops_unreaped() -> None:
    require_uring()
    ring = uring.Ring(8)
    ring.prep_nops([1, 2, 3])
    ring.submit()
    assert ring.in_flight == 3
    ring.close()
    assert ring.closed

"""What a broken step leaves behind: nothing that runs, nothing pinned.

A ``link()`` block that raises takes back the members it prepared (not
published yet: the kernel has not seen them), with their records, so no
broken chain runs at the next submit.  A timeout too long for a timespec
still waits.  ``close()`` cancels what is in flight under a number of its
own, whatever numbers the requests hold.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from conftest import require_uring

import uring
from uring import abi


def test_a_failed_link_block_takes_its_members_back(tmp_path: Any) -> None:
    require_uring()
    path = os.path.join(str(tmp_path), "f")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with uring.Ring(8) as ring:
            ring.prep_nop(1)  # before the block: stays
            skip = int(abi.IOSQE_CQE_SKIP_SUCCESS)
            with pytest.raises(TypeError):
                with ring.link():
                    ring.prep_write(fd, b"ABANDONED", 0)
                    ring.prep_fsync(fd, flags=skip)
                    ring.prep_read(fd, b"read-only", 0)  # refused: a read into bytes
            assert (ring.sq_ready, ring.in_flight, ring.skipped_in_flight) == (1, 1, 0)
            assert [c.user_data for c in ring.completions(1)] == [1]
            assert os.pread(fd, 64, 0) == b""  # the write never ran
            with pytest.raises(KeyError):
                with ring.link():
                    ring.prep_nop(2)
                    raise KeyError("the caller's own error")
            assert ring.sq_ready == 0 and ring.in_flight == 0
            with ring.link():  # the ring goes on: a whole chain
                ring.prep_write(fd, b"kept", 0)
                ring.prep_fsync(fd)
            assert sorted(c.result() for c in ring.completions(2)) == [0, 4]
            assert os.pread(fd, 64, 0) == b"kept"
    finally:
        os.close(fd)


def test_a_huge_timeout_waits() -> None:
    """A timeout past what a timespec holds is a wait (the kernel's "for
    ever"), not an immediate return: the NOP prepared later completes it."""
    require_uring()
    import threading

    with uring.Ring(4) as ring:
        r, w = os.pipe()
        try:
            ring.prep_read(r, bytearray(1), -1, 7)
            threading.Timer(0.2, os.write, (w, b"x")).start()
            got = ring.wait(1, timeout=2**63)
            assert [c.user_data for c in got] == [7]
        finally:
            os.close(r)
            os.close(w)


def test_close_cancels_a_request_that_holds_the_highest_user_data(pipe: Any) -> None:
    """``close()`` cancels what is in flight with one ASYNC_CANCEL under a
    number of its own: a request holding 2**64-1 does not stop it."""
    require_uring()
    r, _w = pipe
    ring = uring.Ring(4)
    buf = bytearray(4)
    ring.prep_read(r, buf, -1, (1 << 64) - 1)
    ring.submit()
    ring.close()  # used to raise (the number was taken) and cancel nothing
    assert ring.in_flight == 0
    buf.extend(b"x")  # the read was cancelled and its record released: no pin left

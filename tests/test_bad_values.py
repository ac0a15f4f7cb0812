"""Each bad value the hostile-use issue found, as a user passes it: refused
before the kernel with the right exception, naming the argument, and the
ring still usable; never silently truncated."""

from __future__ import annotations

import errno
import os
from typing import Any, Callable, Iterator

import pytest
from conftest import require_uring

import uring
from uring import abi


@pytest.fixture
def ring() -> Iterator[uring.Ring]:
    require_uring()
    with uring.Ring(8) as r:
        yield r


@pytest.mark.parametrize("kwargs, exc, text", [
    (dict(entries=2**32 + 8), ValueError, "entries"),
    (dict(entries=8, cq_entries=2**32 + 16), ValueError, "cq_entries"),
    (dict(entries=8, sq_thread_idle=-1), ValueError, "sq_thread_idle"),
    (dict(entries=8, sq_thread_cpu=2**32), ValueError, "sq_thread_cpu"),
    (dict(entries=8, wq_fd=-3), ValueError, "wq_fd"),
    (dict(entries="8"), TypeError, "entries"),
    (dict(entries=1 << 20), ValueError, "IORING_SETUP_CLAMP"),
    (dict(entries=8, flags=2**32), ValueError, "flags"),
])
def test_setup_values_are_checked_before_the_kernel(kwargs: dict, exc: type, text: str) -> None:
    require_uring()
    with pytest.raises(exc, match=text):
        uring.Ring(**kwargs)


def test_unknown_setup_flags_reach_the_kernel_and_come_back_named() -> None:
    """Not masked away (the NO_SQARRAY retry used to drop unknown bits
    through the IntFlag): the kernel refuses them, and the error names them."""
    require_uring()
    with pytest.raises(OSError) as info:
        uring.Ring(8, flags=1 << 30)
    assert info.value.errno == errno.EINVAL and "0x40000000" in str(info.value)


def test_the_no_sqarray_fallback_keeps_every_other_flag() -> None:
    """Through the seam, a kernel that refuses NO_SQARRAY: the retry keeps
    the other bits exactly, a known one (CLAMP: 40000 entries still work)
    and one no header of ours names (the kernel then refuses it)."""
    require_uring()
    from uring.faults import FaultInjector

    seen = []

    class Recording(FaultInjector):
        def setup(self, entries: int, params_address: int) -> int:
            seen.append(int(abi.io_uring_params.from_address(params_address).flags))
            return super().setup(entries, params_address)

    k = Recording()
    k.inject("setup", errno.EINVAL)
    with uring.Ring(40000, flags=abi.IORING_SETUP_CLAMP, kernel=k) as r:
        assert r.sq_entries == 32768
    assert seen[-1] == int(abi.IORING_SETUP_CLAMP)
    k.inject("setup", errno.EINVAL)
    with pytest.raises(OSError):
        uring.Ring(8, flags=abi.IORING_SETUP_CLAMP | (1 << 30), kernel=k)
    assert seen[-1] == int(abi.IORING_SETUP_CLAMP) | (1 << 30)
    assert seen[-2] == seen[-1] | int(abi.IORING_SETUP_NO_SQARRAY)


def test_a_block_queue_depth_is_not_truncated(tmp_path: Any) -> None:
    from uring import block

    p = tmp_path / "img"
    p.write_bytes(bytes(4096))
    with pytest.raises(ValueError, match="queue_depth"):
        block.open_image(p, aio="io_uring", queue_depth=2**32 + 4)


@pytest.mark.parametrize("call, exc", [
    (lambda r: r.wait(-1), ValueError),
    (lambda r: r.wait(1, timeout="0.5"), TypeError),
    (lambda r: r.wait(1, timeout=float("nan")), ValueError),
    (lambda r: r.prep_timeout("1"), TypeError),
    (lambda r: r.prep_timeout(float("inf")), ValueError),
    (lambda r: r.prep_read(0, bytearray(8), -5), ValueError),
    (lambda r: r.prep_nop("1"), TypeError),
    (lambda r: r.prep_nop(2**64), ValueError),
])
def test_bad_arguments_raise_before_the_kernel(ring: uring.Ring,
                                               call: Callable[[uring.Ring], Any],
                                               exc: type) -> None:
    ring.prep_nop(1)
    ring.submit()
    before = ring.sq_prepared
    with pytest.raises(exc):
        call(ring)
    assert ring.sq_prepared == before  # no half-written SQE
    assert [c.user_data for c in ring.wait(1)] == [1]  # nothing reaped and dropped


def test_a_wait_with_a_bad_timeout_loses_no_completion(ring: uring.Ring) -> None:
    """The timeout is checked before the reap: a CQE already in the CQ is
    still there for the next wait."""
    ring.prep_nop(5)
    ring.submit_and_wait(1)
    with pytest.raises(TypeError):
        ring.wait(1, timeout="soon")
    assert [c.user_data for c in ring.wait(1)] == [5]


def test_an_fd_in_an_error_reads_fd_n(ring: uring.Ring, tmp_path: Any) -> None:
    d = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        ring.prep_read(d, bytearray(8), 0)
        (c,) = ring.completions(1)
        assert f"on fd {d}" in str(c.error) and f"'{d}'" not in str(c.error)
    finally:
        os.close(d)


def test_a_bool_is_no_offset_length_or_fd(tmp_path: Any) -> None:
    """``struct`` would store True as 1: a bool offset, length or fd is a
    ``TypeError`` naming the op, and nothing is left in the SQ."""
    require_uring()
    path = os.path.join(str(tmp_path), "f")
    with open(path, "wb") as f:
        f.write(b"0123456789")
    fd = os.open(path, os.O_RDONLY)
    try:
        with uring.Ring(4) as ring:
            buf = bytearray(4)
            with pytest.raises(TypeError, match="IORING_OP_READ: .*offset must be an int, not bool"):
                ring.prep_read(fd, buf, True, 1)
            with pytest.raises(TypeError):
                ring.prep_read(True, buf, 0, 3)
            assert ring.sq_ready == 0 and ring.in_flight == 0
            ring.prep_read(fd, buf, 1, 4)
            assert ring.completions(1)[0].result() == 4 and bytes(buf) == b"1234"
    finally:
        os.close(fd)

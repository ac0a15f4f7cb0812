"""Memory safety and lifetime: buffers stay alive and pinned until their CQE,
bad input is refused before the kernel sees it, close() and fork() never
corrupt or free what the kernel may still use."""

from __future__ import annotations

import errno
import gc
import os
import signal
import weakref

import pytest
from conftest import require_uring

import uring
from uring import ring as ring_module


class Buf(bytearray):
    """A bytearray that can be weakly referenced, to watch its lifetime."""


def test_buffer_survives_gc_until_its_cqe(ring: uring.Ring) -> None:
    r, w = os.pipe()
    try:
        buf = Buf(32)
        ref = weakref.ref(buf)
        ring.prep_read(r, buf, -1, user_data=1)
        ring.submit()
        del buf
        gc.collect()
        held = ref()  # only the ring kept it alive through the collection
        assert held is not None, "the ring let go of a buffer the kernel may write"
        assert ring.in_flight == 1
        os.write(w, b"landed in the right place")
        (cqe,) = ring.wait(1)
        assert cqe.res == 25
        assert bytes(held[:25]) == b"landed in the right place"
        del held
        gc.collect()
        assert ref() is None, "the ring kept a buffer after its completion was reaped"
        assert ring.in_flight == 0
    finally:
        os.close(r)
        os.close(w)


def test_iovec_array_and_buffers_survive_gc(ring: uring.Ring) -> None:
    r, w = os.pipe()
    try:
        a, b = Buf(3), Buf(10)
        refs = [weakref.ref(a), weakref.ref(b)]
        ring.prep_readv(r, [a, b], -1, user_data=5)
        ring.submit()
        del a, b
        gc.collect()
        a2, b2 = refs[0](), refs[1]()
        assert a2 is not None and b2 is not None
        os.write(w, b"abcdefghij")
        assert ring.wait(1)[0].res == 10
        assert bytes(a2) == b"abc" and bytes(b2[:7]) == b"defghij"
    finally:
        os.close(r)
        os.close(w)


def test_pinned_buffer_cannot_be_resized_in_flight(ring: uring.Ring) -> None:
    r, w = os.pipe()
    try:
        buf = bytearray(8)
        ring.prep_read(r, buf, -1, user_data=1)
        ring.submit()
        with pytest.raises(BufferError):
            buf.extend(b"moved")  # a resize would move the memory under the kernel
        os.write(w, b"12345678")
        ring.wait(1)
        buf.extend(b"ok")  # released after the completion
        assert bytes(buf) == b"12345678ok"
    finally:
        os.close(r)
        os.close(w)


def test_read_into_read_only_buffer_is_refused(ring: uring.Ring, datafile: tuple) -> None:
    fd, _, _ = datafile
    for ro in (b"immutable", memoryview(bytearray(4)).toreadonly()):
        with pytest.raises(TypeError, match="read-only"):
            ring.prep_read(fd, ro, 0, user_data=1)
    with pytest.raises(TypeError):
        ring.prep_readv(fd, [bytearray(2), b"ro"], 0, user_data=1)
    assert ring.sq_ready == 0 and ring.in_flight == 0


def test_bad_arguments_are_refused_before_the_kernel(ring: uring.Ring, datafile: tuple) -> None:
    fd, _, _ = datafile
    with pytest.raises(ValueError, match="bad file descriptor"):
        ring.prep_read(-1, bytearray(4), 0)
    with pytest.raises(ValueError, match="exceeds"):
        ring.prep_read(fd, bytearray(4), 0, length=5)
    with pytest.raises(TypeError):
        ring.prep_read("not an fd", bytearray(4), 0)
    with pytest.raises(ValueError):
        ring.prep_nop(-1)
    with pytest.raises(ValueError):
        ring.prep_nop(1 << 64)
    with pytest.raises(ValueError):
        ring.prep_read(fd, bytearray(4), 0, user_data=1 << 64)
    assert ring.sq_ready == 0 and ring.in_flight == 0
    ring.prep_nop(3)
    assert [c.user_data for c in ring.wait(1)] == [3]


def test_failed_prep_leaves_no_half_written_sqe(datafile: tuple) -> None:
    """A prep that fails half-way through packing must not leave a slot the
    next NOP mistakes for clean: the kernel would run the half-written
    READ into freed memory.  (Found by this suite as a segfault.)"""
    require_uring()
    fd, _, _ = datafile
    failing_preps = [
        lambda r: r.prep_read(fd, bytearray(4), 0, user_data=1 << 64),
        lambda r: r.prep_write(fd, b"abcd", 0, user_data=1 << 64),
        lambda r: r.prep(uring.abi.IORING_OP_READ, fd=fd, len=1 << 40, user_data=5),
    ]
    for fail in failing_preps:
        with uring.Ring(1) as r:  # one slot: every prep reuses it
            r.prep_nop(1)
            assert r.wait(1)[0].res == 0
            with pytest.raises(ValueError):
                fail(r)
            r.prep_nop(2)
            (cqe,) = r.wait(1)
            assert (cqe.user_data, cqe.res) == (2, 0)
            assert r.read_sqe(0).opcode == uring.abi.IORING_OP_NOP


def test_live_user_data_is_not_reused(ring: uring.Ring) -> None:
    r, w = os.pipe()
    try:
        ring.prep_read(r, bytearray(4), -1, user_data=42)
        ring.submit()
        with pytest.raises(ValueError, match="still in flight"):
            ring.prep_read(r, bytearray(4), -1, user_data=42)
        assert ring.sq_ready == 0
        os.write(w, b"done")
        ring.wait(1)
        ring.prep_read(r, bytearray(4), -1, user_data=42)  # free again
        os.write(w, b"more")
        assert ring.wait(1)[0].res == 4
    finally:
        os.close(r)
        os.close(w)


def test_closed_ring_refuses_work() -> None:
    require_uring()
    r = uring.Ring(4)
    r.close()
    r.close()  # idempotent
    with pytest.raises(uring.RingClosedError):
        r.prep_nop(1)
    with pytest.raises(uring.RingClosedError):
        r.submit()
    with pytest.raises(uring.RingClosedError):
        r.wait(1)
    assert r.closed and r.fd == -1


def test_close_with_reads_in_flight_cancels_and_releases() -> None:
    require_uring()
    r = uring.Ring(64)
    pipes = [os.pipe() for _ in range(20)]
    try:
        refs = []
        for i, (rd, _) in enumerate(pipes):
            b = Buf(16)
            refs.append(weakref.ref(b))
            r.prep_read(rd, b, -1, user_data=i)
        r.submit()
        del b
        assert r.in_flight == 20
        graveyard = len(ring_module._GRAVEYARD)
        r.close(timeout=5)
        assert r.closed
        assert len(ring_module._GRAVEYARD) == graveyard  # all were cancelled in time
        gc.collect()
        assert all(x() is None for x in refs)
    finally:
        for rd, wr in pipes:
            os.close(rd)
            os.close(wr)


def test_close_never_frees_what_the_kernel_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """If in-flight requests do not finish in time, their buffers go to the
    graveyard for the life of the process instead of being freed."""
    require_uring()
    r = uring.Ring(8)
    rd, wr = os.pipe()
    try:
        buf = Buf(8)
        ref = weakref.ref(buf)
        r.prep_read(rd, buf, -1, user_data=1)
        r.submit()
        del buf
        r.close(cancel=False, timeout=0.05)  # not cancelled, not completed
        gc.collect()
        held = [getattr(x[2] if type(x) is tuple else getattr(x, "keep", x), "obj", None)
                for x in ring_module._GRAVEYARD]
        assert ref() is not None and any(h is ref() for h in held)
    finally:
        os.close(rd)
        os.close(wr)


def test_unsubmitted_sqes_are_discarded_on_close() -> None:
    require_uring()
    r = uring.Ring(8)
    buf = Buf(8)
    ref = weakref.ref(buf)
    r.prep_read(0, buf, 0, user_data=1)
    del buf
    graveyard = len(ring_module._GRAVEYARD)
    r.close()
    gc.collect()
    assert ref() is None and len(ring_module._GRAVEYARD) == graveyard


def test_ring_collected_with_requests_in_flight_keeps_buffers() -> None:
    require_uring()
    rd, wr = os.pipe()
    try:
        r = uring.Ring(8)
        buf = Buf(8)
        ref = weakref.ref(buf)
        r.prep_read(rd, buf, -1, user_data=1)
        r.submit()
        graveyard = len(ring_module._GRAVEYARD)
        del buf, r
        gc.collect()
        # __del__ cancelled the read (pipe reads are cancellable) and waited
        # for its completion: only then was the buffer let go.
        assert ref() is None
        assert len(ring_module._GRAVEYARD) == graveyard
    finally:
        os.close(rd)
        os.close(wr)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_cannot_use_the_parents_ring() -> None:
    require_uring()
    with uring.Ring(8) as r:
        r.prep_nop(1)
        r.wait(1)
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                r.prep_nop(2)
            except uring.RingForkedError:
                code = 0
            except BaseException:
                code = 2
            try:
                r.close()  # must not touch the parent's queues
                with uring.Ring(4) as own:  # the child can make its own ring
                    own.prep_nop(3)
                    if [c.user_data for c in own.wait(1)] != [3]:
                        code = 3
            except BaseException:
                code = 4
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The parent's ring is intact.
        r.prep_nop(5)
        assert [c.user_data for c in r.wait(1)] == [5]
        assert r.sq_head == r.sq_tail == 2


@pytest.mark.parametrize("timeout", [None, 10.0], ids=["direct-path", "ext-arg-path"])
def test_real_eintr_during_wait_is_retried(ring: uring.Ring, timeout: object) -> None:
    """A real signal interrupts io_uring_enter while it waits: the kernel
    returns EINTR, the ring runs the handler and waits again (both wait
    paths: the direct libc call, and the EXT_ARG wait with a timeout)."""
    rd, wr = os.pipe()
    fired = []

    def handler(signum: int, frame: object) -> None:
        fired.append(signum)
        os.write(wr, b"!")  # completes the read we wait for

    old = signal.signal(signal.SIGALRM, handler)
    try:
        buf = bytearray(1)
        ring.prep_read(rd, buf, -1, user_data=1)
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        (cqe,) = ring.wait(1, timeout=timeout)  # type: ignore[call-overload]
        assert fired == [signal.SIGALRM]
        assert cqe.res == 1 and buf == b"!"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        os.close(rd)
        os.close(wr)


def test_kernel_error_on_the_direct_wait_path_is_named(ring: uring.Ring) -> None:
    """A real io_uring_enter failure on wait's direct path: put /dev/null
    behind the ring's fd number, so the kernel answers EOPNOTSUPP (not an
    io_uring fd).  The error names the call; the queued SQE is not lost."""
    saved = os.dup(ring.fd)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, ring.fd)
        ring.prep_nop(1)
        with pytest.raises(OSError) as info:
            ring.wait(1)
        assert info.value.errno == errno.EOPNOTSUPP
        assert "io_uring_enter" in str(info.value)
    finally:
        os.dup2(saved, ring.fd)
        os.close(saved)
        os.close(null)
    assert [c.user_data for c in ring.wait(1)] == [1]

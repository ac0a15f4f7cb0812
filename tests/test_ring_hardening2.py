"""Hardening, second round: a shared ring closed under its waiters, and
values refused before they reach the kernel.

A ``threadsafe=True`` ring closed by one thread while others sleep in
``io_uring_enter`` inside it: ``close()`` wakes them (an expired
``IORING_OP_TIMEOUT`` wakes every waiter, whatever its count), lets them
leave before it unmaps the rings, and each gets ``RingClosedError``, or
the real CQEs it had already reaped; never a hang, never an error about a
released memoryview.

Then the values the kernel would answer ``EINVAL`` for (or, worse, take
modulo 2**32): a ``resize`` to a bool or an out-of-range size, an SQE flag
bit no ``IOSQE_*`` names, more iovecs than ``UIO_MAXIOV``, a float buffer
group.  Each is refused with the op and argument named, nothing prepared.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
from conftest import require_uring

import uring
from uring import abi

#: How long a waiter may take to come back once close() is called.
BOUND = 2.0


def _fd_is_a_ring(fd: int) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[io_uring]"
    except OSError:
        return False


def _run_waiters(ring: uring.Ring, calls: Dict[str, Callable[[], Any]],
                 close: Optional[Callable[[], None]] = None
                 ) -> Tuple[Dict[str, Tuple[str, Any, float]], List[threading.Thread], float]:
    """Start one thread per call, let them go to sleep in the ring, close it
    from another (``ring.close``, or *close*); returns (name ->
    (outcome, value, seconds from the close to the return), the threads,
    how long the close took)."""
    results: Dict[str, Tuple[str, Any, float]] = {}
    closed_at = [0.0]

    def run(name: str, call: Callable[[], Any]) -> None:
        try:
            outcome: Tuple[str, Any] = ("returned", call())
        except BaseException as exc:  # noqa: BLE001 - the outcome is the test
            outcome = ("raised", exc)
        results[name] = outcome + (time.monotonic() - closed_at[0],)

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in calls.items()]
    for t in threads:
        t.start()
    time.sleep(0.3)  # each is asleep in io_uring_enter (or queued on the CQ lock)
    assert not results, f"a waiter returned before the close: {results}"
    closed_at[0] = time.monotonic()
    closer = threading.Thread(target=ring.close if close is None else close, daemon=True)
    closer.start()  # in a thread of its own: a close that hangs fails the test, no more
    closer.join(BOUND)
    assert not closer.is_alive(), "close() hangs"
    took = time.monotonic() - closed_at[0]
    for t in threads:
        t.join(BOUND)
    return results, threads, took


def test_close_wakes_every_thread_waiting_in_a_threadsafe_ring() -> None:
    """Waits with and without a timeout, for one or more CQEs, paired
    (``completions``: it waits holding the CQ lock) or not reaping at all
    (``submit_and_wait``): each comes back within the bound with
    ``RingClosedError``, close() itself is quick, and the fd is gone."""
    require_uring()
    ring = uring.Ring(8, threadsafe=True)
    fd = ring.fd
    assert _fd_is_a_ring(fd)
    calls: Dict[str, Callable[[], Any]] = {
        "wait": lambda: ring.wait(1),
        "wait-timeout": lambda: ring.wait(1, timeout=30),
        "wait-many": lambda: ring.wait(5),
        "wait-raw": lambda: ring.wait(2, raw=True),
        "completions": lambda: ring.completions(1),
        "completions-timeout": lambda: ring.completions(3, timeout=30),
        "submit_and_wait": lambda: ring.submit_and_wait(4),
    }
    results, threads, took = _run_waiters(ring, calls)
    assert [t.name for t in threads if t.is_alive()] == [], results
    assert set(results) == set(calls)
    for name, (outcome, value, seconds) in results.items():
        assert outcome == "raised" and type(value) is uring.RingClosedError, (name, value)
        assert "closed" in str(value) and "memoryview" not in str(value), (name, value)
        assert seconds < BOUND, (name, seconds)
    assert took < BOUND
    assert ring.closed and not _fd_is_a_ring(fd)
    with pytest.raises(uring.RingClosedError):
        ring.wait(1, timeout=0)


def test_a_waiter_woken_by_close_keeps_the_completions_it_had() -> None:
    """A waiter asked for two and one was already in the CQ: woken by
    close() it hands that one out (with its record), not an error; the
    close's own wake-up CQE is not among them.  The next wait raises."""
    require_uring()
    for paired in (False, True):
        ring = uring.Ring(8, threadsafe=True)
        ring.prep(abi.IORING_OP_NOP, user_data=7, owner="mine")
        ring.submit()
        call = ring.completions if paired else ring.wait
        results, threads, _took = _run_waiters(ring, {"w": functools.partial(call, 2)})
        assert not threads[0].is_alive()
        outcome, value, seconds = results["w"]
        assert outcome == "returned", value
        assert seconds < BOUND
        assert [c.user_data for c in value] == [7]
        if paired:
            assert value[0].owner == "mine" and value[0].res == 0
        with pytest.raises(uring.RingClosedError):
            ring.wait(1)


def test_close_cancels_a_read_its_waiter_waits_for(pipe: Tuple[int, int]) -> None:
    """A request in flight (a pipe read nobody writes to) and a thread
    waiting for it: close() cancels the read and wakes the thread, which
    gets the read's ``-ECANCELED`` CQE or ``RingClosedError``, within the
    bound; the buffer is not freed under the kernel."""
    require_uring()
    r, _w = pipe
    ring = uring.Ring(8, threadsafe=True)
    buf = bytearray(16)
    ud = ring.prep_read(r, buf, 0)
    ring.submit()
    results, threads, took = _run_waiters(ring, {"w": lambda: ring.wait(1)})
    assert not threads[0].is_alive() and took < BOUND
    outcome, value, seconds = results["w"]
    assert seconds < BOUND
    if outcome == "returned":
        assert [(c.user_data, c.res) for c in value] == [(ud, -125)]  # ECANCELED
    else:
        assert type(value) is uring.RingClosedError, value
    assert ring.closed and ring.in_flight == 0


@pytest.mark.parametrize("round_", range(6))  # which closer goes first is up to the scheduler
def test_two_threads_closing_at_once_with_waiters(pipe: Tuple[int, int], round_: int) -> None:
    """Two closers, a waiter and a read in flight: the second close waits
    for the first (it neither unmaps the rings under the waiter the first
    is waking nor is taken for a waiter and refused while it cancels and
    drains the read)."""
    require_uring()
    ring = uring.Ring(8, threadsafe=True)
    ring.prep_read(pipe[0], bytearray(8), 0)
    ring.submit()
    errors: List[BaseException] = []

    def close() -> None:
        try:
            ring.close()
        except BaseException as exc:  # noqa: BLE001 - the outcome is the test
            errors.append(exc)

    other = threading.Thread(target=close)

    def close_twice() -> None:
        other.start()
        close()

    results, threads, took = _run_waiters(ring, {"w": lambda: ring.wait(1)}, close_twice)
    other.join(BOUND)
    assert not other.is_alive() and errors == []
    assert not threads[0].is_alive() and took < BOUND
    outcome, value, _seconds = results["w"]
    if outcome == "returned":  # it took the cancelled read's CQE
        assert [c.res for c in value] == [-125], value
    else:
        assert type(value) is uring.RingClosedError, value
    assert ring.closed and ring.in_flight == 0


def test_a_waiter_close_cannot_wake_keeps_its_mappings() -> None:
    """``SINGLE_ISSUER|DEFER_TASKRUN``: only the creating thread may enter
    the ring, so another thread's close() cannot post the wake-up (the
    kernel answers ``EEXIST``).  close() gives up after its timeout and
    closes the fd, but leaves the rings mapped for the waiter still in the
    kernel: at its own timeout it gets ``RingClosedError``, not an error
    about a released memoryview."""
    require_uring()
    flags = abi.IORING_SETUP_SINGLE_ISSUER | abi.IORING_SETUP_DEFER_TASKRUN
    try:
        ring = uring.Ring(8, threadsafe=True, flags=flags)
    except OSError as exc:  # pragma: no cover - a kernel before 6.1
        pytest.skip(f"DEFER_TASKRUN: {exc}")
    fd = ring.fd
    took: List[float] = []

    def close() -> None:
        time.sleep(0.3)  # the waiter is in the kernel by now
        start = time.monotonic()
        ring.close(timeout=0.3)
        took.append(time.monotonic() - start)

    closer = threading.Thread(target=close, daemon=True)
    closer.start()
    start = time.monotonic()
    with pytest.raises(uring.RingClosedError, match="closed by another thread"):
        ring.wait(1, timeout=1.5)  # this thread is the issuer: it waits
    assert 1.4 < time.monotonic() - start < 1.5 + BOUND
    closer.join(BOUND)
    assert not closer.is_alive() and took and took[0] < BOUND
    assert ring.closed and not _fd_is_a_ring(fd)


# -- resize: sizes checked as Ring() checks them --------------------------------------


def test_resize_refuses_a_bool_and_sizes_a_u32_would_wrap() -> None:
    """``p.sq_entries`` is a u32: ``resize(2**32 + 8)`` went in as 8, and
    ``resize(True)`` as 1.  Both are refused, the limit named, before
    anything is published; the rings stay as they were."""
    require_uring()
    try:
        ring = uring.Ring(8, flags=abi.IORING_SETUP_SINGLE_ISSUER
                          | abi.IORING_SETUP_DEFER_TASKRUN)
    except OSError as exc:  # pragma: no cover - a kernel before 6.1
        pytest.skip(f"DEFER_TASKRUN: {exc}")
    with ring:
        ring.prep_nop(1)  # prepared, not published
        cases: List[Tuple[Tuple[Any, ...], type, str]] = [
            ((True,), TypeError, "sq_entries .*not bool"),
            ((8.0,), TypeError, "sq_entries .*not float"),
            ((8, True), TypeError, "cq_entries .*not bool"),
            ((2**32 + 8,), ValueError, "sq_entries \\(IORING_MAX_ENTRIES.*1..32768, got 4294967304"),
            ((32769,), ValueError, "IORING_MAX_ENTRIES.*32768"),
            ((0,), ValueError, "sq_entries.*1..32768, got 0"),
            ((8, 2**32 + 16), ValueError, "IORING_MAX_CQ_ENTRIES.*65536, got 4294967312"),
            ((16, 8), ValueError, "cq_entries=8 is less than sq_entries=16"),
        ]
        for args, kind, match in cases:
            with pytest.raises(kind, match=match):
                ring.resize(*args)
            assert (ring.sq_entries, ring.cq_entries) == (8, 16), args
            assert (ring.sq_tail, ring.sq_prepared) == (0, 1), args  # nothing published
        try:
            ring.resize(16, 64)
        except OSError as exc:  # pragma: no cover - a kernel before 6.13
            pytest.skip(f"kernel {os.uname().release} cannot resize rings: {exc}")
        assert (ring.sq_entries, ring.cq_entries) == (16, 64)
        assert [c.user_data for c in ring.wait(1, timeout=5)] == [1]


# -- SQE flags: only the bits the header names ---------------------------------------


UNKNOWN_FLAGS = [(0x80, "bit 0x80 is"), (0x100 | int(abi.IOSQE_IO_LINK), "bit 0x100 is"),
                 (0x180, "bits 0x80, 0x100 are"), (-1, "a byte of IOSQE_.*not a negative number")]


@pytest.mark.parametrize("flags,named", UNKNOWN_FLAGS)
def test_an_unknown_sqe_flag_bit_is_refused_before_the_sqe_is_written(
        flags: int, named: str, tmp_path: Any) -> None:
    """A bit outside ``IOSQE_*`` reached the kernel (``-EINVAL`` in the
    CQE).  Every way in refuses it by name, with nothing prepared, filed
    or counted: ``prep_rw`` (a NOP, a read), ``prep_batch``
    (``prep_reads``), ``prep_nops``, ``set_sqe_flags``."""
    require_uring()
    path = os.path.join(str(tmp_path), "f")
    with open(path, "wb") as f:
        f.write(b"x" * 64)
    fd = os.open(path, os.O_RDONLY)
    try:
        with uring.Ring(8) as ring:
            calls: List[Tuple[str, Callable[[], Any]]] = [
                ("IORING_OP_NOP", lambda: ring.prep_nop(flags=flags)),
                ("IORING_OP_NOP", lambda: ring.prep_nop(5, flags=flags)),
                ("IORING_OP_READ", lambda: ring.prep_read(fd, bytearray(8), 0, flags=flags)),
                ("IORING_OP_READ", lambda: ring.prep_reads(fd, [bytearray(8)] * 2, [0, 8],
                                                           [6, 7], flags=flags)),
                ("IORING_OP_NOP", lambda: ring.prep_nops([8, 9], flags=flags)),
            ]
            for op, call in calls:
                with pytest.raises(ValueError, match=f"{op}: flags .*{named}") as info:
                    call()
                assert "IOSQE_CQE_SKIP_SUCCESS" in str(info.value)  # what is known, named
                assert (ring.sq_prepared, ring.in_flight) == (0, 0), op
            index = ring.sq_prepared
            assert ring.prep_nop() == 1  # the counter did not move
            with pytest.raises(ValueError, match=f"set_sqe_flags: flags .*{named}"):
                ring.set_sqe_flags(index, flags)
            ring.set_sqe_flags(index, int(abi.IOSQE_ASYNC))  # a known bit goes in
            assert [(c.user_data, c.res) for c in ring.wait(1)] == [(1, 0)]
    finally:
        os.close(fd)


def test_every_known_sqe_flag_still_reaches_the_kernel() -> None:
    """The mask is exactly the header's: each IOSQE_* bit alone is taken
    (the kernel answers for a NOP; FIXED_FILE and BUFFER_SELECT with their
    own errors, not the prep)."""
    require_uring()
    with uring.Ring(8) as ring:
        for bit in abi.IosqeFlags:
            if bit is abi.IOSQE_CQE_SKIP_SUCCESS:
                continue  # posts nothing on success
            ring.prep_nop(int(bit) + 100, flags=int(bit))
        got = ring.wait(6, timeout=5)
        assert sorted(c.user_data - 100 for c in got) == [1, 2, 4, 8, 16, 32]


# -- iovec counts: UIO_MAXIOV ------------------------------------------------------------


def test_more_than_uio_maxiov_iovecs_are_refused_before_the_sqe(tmp_path: Any) -> None:
    """READV/WRITEV (a list, a generator, an ``IovecArray``), their FIXED
    forms, SENDMSG/RECVMSG and a vectored SEND with 1025 iovecs: the kernel
    answered ``-EINVAL`` (``-EMSGSIZE`` for a msghdr); now a ``ValueError``
    naming ``UIO_MAXIOV``, nothing prepared.  1024 still go through."""
    require_uring()
    path = os.path.join(str(tmp_path), "f")
    with open(path, "wb") as f:
        f.write(b"x" * 4096)
    fd = os.open(path, os.O_RDWR)
    a, b = socket.socketpair()
    try:
        with uring.Ring(8) as ring:
            registered = bytearray(4096)
            ring.register_buffers([registered])
            many: Any = (b"y" for _ in range(1025))  # an iterable with no len()
            calls: List[Tuple[str, Callable[[int], Any]]] = [
                ("IORING_OP_READV", lambda n: ring.prep_readv(fd, [bytearray(1)] * n)),
                ("IORING_OP_WRITEV", lambda n: ring.prep_writev(fd, [b"y"] * n)),
                ("IORING_OP_WRITEV", lambda n: ring.prep_writev(
                    fd, many if n == 1025 else [b"y"] * n)),
                ("IORING_OP_WRITEV", lambda n: ring.prep_writev(
                    fd, uring.IovecArray([b"y"] * n, writable=False))),
                ("IORING_OP_SENDMSG", lambda n: ring.prep_sendmsg(a, [b"z"] * n)),
                ("IORING_OP_SEND", lambda n: ring.prep_send(a, [b"z"] * n)),
                ("IORING_OP_RECVMSG", lambda n: ring.prep_recvmsg(b, [bytearray(1)] * n)),
            ]
            if ring.supports(abi.IORING_OP_READV_FIXED):  # 6.15+
                calls.append(("IORING_OP_READV_FIXED", lambda n: ring.prep_readv_fixed(
                    fd, 0, [(i, 1) for i in range(n)])))
            for op, call in calls:
                with pytest.raises(ValueError, match=f"{op}: 1025 iovecs.*1024 \\(UIO_MAXIOV\\)"):
                    call(1025)
                assert (ring.sq_prepared, ring.in_flight) == (0, 0), op
            for op, call in calls:  # the limit itself is allowed
                call(1024)
                done = ring.completions(1, timeout=5)
                assert [c.res for c in done] == [1024], op
            assert abi.UIO_MAXIOV == 1024  # linux/uio.h
    finally:
        a.close()
        b.close()
        os.close(fd)


# -- buffer groups: the SQE's u16, an int -----------------------------------------------


def test_a_buffer_group_of_the_wrong_type_is_a_type_error(tmp_path: Any) -> None:
    """``buf_group=1.0`` was a ``ValueError`` (or, for a read, looked group 1
    up and failed in the SQE pack), ``buf_group=True`` picked group 1: both
    are ``TypeError`` naming the op and argument, as for every int field;
    out of the u16 is ``ValueError``.  Nothing is prepared."""
    require_uring()
    path = os.path.join(str(tmp_path), "f")
    with open(path, "wb") as f:
        f.write(b"x" * 64)
    fd = os.open(path, os.O_RDONLY)
    a, b = socket.socketpair()
    try:
        with uring.Ring(8) as ring:
            ring.register_buf_ring(1, 8, 64)  # group 1 exists: 1.0 and True must not find it
            calls: Dict[str, Callable[[Any], Any]] = {
                "IORING_OP_READ: buf_group": lambda g: ring.prep_read(fd, None, buf_group=g),
                "IORING_OP_READ_MULTISHOT: buf_group":
                    lambda g: ring.prep_read_multishot(fd, g),
                "IORING_OP_RECV: buf_group": lambda g: ring.prep_recv(b, None, buf_group=g),
                "IORING_OP_RECVMSG: buf_group": lambda g: ring.prep_recvmsg(b, None, buf_group=g),
                "IORING_OP_SEND: buf_group": lambda g: ring.prep_send(a, None, buf_group=g),
                "IORING_OP_PROVIDE_BUFFERS: buffer group":
                    lambda g: ring.prep_provide_buffers(bytearray(64), 4, 16, g),
                "IORING_OP_REMOVE_BUFFERS: buffer group": lambda g: ring.prep_remove_buffers(1, g),
                "register_buf_ring: group": lambda g: ring.register_buf_ring(g, 8, 64),
            }
            for what, call in calls.items():
                for bad in (1.0, True, "1"):
                    with pytest.raises(TypeError, match=f"{what}.* must be an int, not "
                                       f"{type(bad).__name__}"):
                        call(bad)
                for bad in (-1, 0x10000):
                    with pytest.raises(ValueError, match=f"{what}.* must be in 0..65535"):
                        call(bad)
                assert (ring.sq_prepared, ring.in_flight) == (0, 0), what
    finally:
        a.close()
        b.close()
        os.close(fd)

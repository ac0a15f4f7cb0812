"""Faults the kernel will not produce on demand, injected at the syscall
seam (uring.faults); the real-kernel counterparts (a real EINTR, a real
bad SQE stopping a batch, a real full CQ) are in test_ring/test_safety."""

from __future__ import annotations

import errno
import inspect
import time

import pytest
from conftest import require_uring

import uring
from uring import abi
from uring.faults import FaultInjector


def make(**kw: object) -> "tuple[uring.Ring, FaultInjector]":
    require_uring()
    k = FaultInjector()
    return uring.Ring(8, kernel=k, **kw), k  # type: ignore[arg-type]


def test_eintr_on_submit_is_retried() -> None:
    r, k = make()
    with r:
        k.inject("enter", errno.EINTR, times=3)
        for i in range(4):
            r.prep_nop(i)
        assert r.submit() == 4
        assert k.injected["enter"] == 3
        assert sorted(c.user_data for c in r.wait(4)) == [0, 1, 2, 3]


def test_eintr_while_waiting_is_retried_with_the_time_left() -> None:
    r, k = make()
    with r:
        k.inject("enter", errno.EINTR, times=2, when=lambda sub, mc, fl: mc > 0)
        r.prep_nop(1)
        assert [c.user_data for c in r.wait(1, timeout=5)] == [1]
        assert k.injected["enter"] == 2


def test_eagain_surfaces_and_the_sqes_stay_queued() -> None:
    """EAGAIN (no request memory): nothing was consumed; the caller sees
    BlockingIOError, and the SQEs go with the next submit, each once."""
    r, k = make()
    with r:
        k.inject("enter", errno.EAGAIN)
        r.prep_nop(1)
        r.prep_nop(2)
        with pytest.raises(BlockingIOError) as info:
            r.submit()
        assert "io_uring_enter" in str(info.value)
        assert r.sq_ready == 2
        assert r.submit() == 2
        assert sorted(c.user_data for c in r.wait(2)) == [1, 2]
        assert r.reap() == []


def test_ebusy_surfaces_named() -> None:
    r, k = make()
    with r:
        k.inject("enter", errno.EBUSY)
        r.prep_nop(1)
        with pytest.raises(OSError) as info:
            r.submit()
        assert info.value.errno == errno.EBUSY and "io_uring_enter" in str(info.value)
        assert [c.user_data for c in r.wait(1)] == [1]


def test_short_submit_leaves_the_rest_for_the_next() -> None:
    r, k = make()
    with r:
        k.inject("enter", short_submit=1)
        for i in range(3):
            r.prep_nop(i)
        assert r.submit() == 1
        assert r.sq_ready == 2
        got = r.wait(3)  # wait() submits what is still queued
        assert sorted(c.user_data for c in got) == [0, 1, 2]
        assert r.reap() == []


def test_short_submit_inside_wait_still_waits_for_all() -> None:
    r, k = make()
    with r:
        k.inject("enter", short_submit=1, times=2)
        for i in range(3):
            r.prep_nop(i)
        got = r.wait(3, timeout=5)
        assert sorted(c.user_data for c in got) == [0, 1, 2]


def test_eintr_on_register_is_retried() -> None:
    r, k = make()
    with r:
        k.inject("register", errno.EINTR)
        assert r.probe().supports(uring.abi.IORING_OP_NOP)
        assert k.injected["register"] == 1


@pytest.mark.parametrize(
    "err,words",
    [
        (errno.ENOSYS, "seccomp"),
        (errno.EPERM, "io_uring_disabled"),
        (errno.ENOMEM, "RLIMIT_MEMLOCK"),
    ],
)
def test_unavailable_names_cause_and_fix(err: int, words: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # EPERM names the sysctl only when it says so (else a seccomp filter or
    # a security module: tests/test_errors.py): here it says 2.
    monkeypatch.setattr(uring.errors, "io_uring_disabled", lambda: 2)
    k = FaultInjector()
    k.inject("setup", err, times=2)
    with pytest.raises(uring.UringUnavailableError) as info:
        uring.Ring(8, kernel=k)
    assert info.value.errno == err and words in str(info.value)
    assert isinstance(info.value, OSError)


def test_wait_submits_what_is_prepared_even_when_enough_are_there() -> None:
    """Through the seam: a completion already in the CQ satisfies the wait,
    and the SQE prepared since still goes to the kernel in the same enter."""
    require_uring()
    kernel = FaultInjector()
    with uring.Ring(8, kernel=kernel) as ring:
        ring.prep_nop(1)
        ring.submit()
        time.sleep(0.01)
        ring.prep_nop(2)
        got = [c.user_data for c in ring.wait(1)]
        assert got[0] == 1
        assert ring.sq_ready == 0  # NOP 2 was submitted
        if got == [1]:
            got += [c.user_data for c in ring.wait(1)]
        assert got == [1, 2]


def test_sq_wait_returning_early_does_not_fail_a_full_sqpoll_ring() -> None:
    """``IORING_ENTER_SQ_WAIT`` ends without an error when task work or a
    signal is pending, the SQ possibly still full.  A ring that makes room
    for itself (``sq_full="submit"``) must wait again, not raise
    SubmissionQueueFull while the SQ thread is about to consume."""
    require_uring()
    k = FaultInjector()
    sq_wait = int(abi.IORING_ENTER_SQ_WAIT)
    k.inject("enter", returns=0, times=10_000, when=lambda sub, mc, fl: bool(fl & sq_wait))
    with uring.Ring(4, flags=abi.IORING_SETUP_SQPOLL, sq_full="submit",
                    cq_entries=2048, kernel=k) as r:  # type: ignore[arg-type]
        for i in range(1000):
            r.prep_nop(i)
        r.submit()
        got = r.wait(1000, timeout=10)
        assert sorted(c.user_data for c in got) == list(range(1000))
    assert k.injected["enter"] > 0  # the early return was taken, and survived


# -- the path wait() takes by default (no timeout): Ring._wait_direct, reached
# through Kernel.raw_enter on every kernel, so these faults hit the same
# loop users run on the real kernel.


def test_default_wait_goes_through_the_seam() -> None:
    """wait(n) without a timeout calls the kernel's direct form; with a
    FaultInjector that form is the injector's, so every enter is seen."""
    require_uring()
    callers: list = []

    class Watching(FaultInjector):
        def enter(self, *args: int) -> int:  # type: ignore[override]
            callers.append({f.function for f in inspect.stack()[1:6]})
            return super().enter(*args)

    k = Watching()
    real_path = uring.Ring(8)._wait_direct.__name__  # what the real kernel's wait runs
    with uring.Ring(8, kernel=k) as r:
        r.prep_nop(1)
        assert [c.user_data for c in r.wait(1)] == [1]
        assert len(callers) == 1 and real_path in callers[0]


def test_eintr_in_the_default_wait_is_retried() -> None:
    r, k = make()
    with r:
        k.inject("enter", errno.EINTR, times=3, when=lambda sub, mc, fl: mc > 0)
        r.prep_nop(1)
        r.prep_nop(2)
        assert sorted(c[0] for c in r.wait(2, raw=True)) == [1, 2]
        assert k.injected["enter"] == 3
        assert r.reap() == []


@pytest.mark.parametrize("err", [errno.EAGAIN, errno.EBUSY])
def test_eagain_ebusy_in_the_default_wait_with_nothing_to_reap_raise(err: int) -> None:
    """Nothing consumed and nothing to reap: the error surfaces, named; the
    SQEs stay in the ring and the next wait delivers each exactly once."""
    r, k = make()
    with r:
        k.inject("enter", err)
        r.prep_nop(1)
        r.prep_nop(2)
        with pytest.raises(OSError) as info:
            r.wait(2)
        assert info.value.errno == err and "io_uring_enter" in str(info.value)
        assert r.sq_ready == 2
        assert sorted(c.user_data for c in r.wait(2)) == [1, 2]
        assert r.reap() == []


@pytest.mark.parametrize("err", [errno.EAGAIN, errno.EBUSY])
def test_eagain_ebusy_in_the_default_wait_reap_and_go_on(err: int) -> None:
    """A completion was already in the CQ: the failed enter is followed by a
    reap that makes progress, so the wait goes on and returns all it asked
    for, none twice, none lost."""
    r, k = make()
    with r:
        r.prep_nop(1)
        r.submit()
        time.sleep(0.01)
        r.prep_nop(2)
        k.inject("enter", err)
        got = [c.user_data for c in r.wait(2)]
        assert got == [1, 2]
        assert k.injected["enter"] == 1
        assert r.reap() == []


def test_a_hard_error_after_a_reap_returns_what_was_reaped() -> None:
    """An error that is not a retry (EBADF here) with completions already
    reaped in the same call: they are returned (never lost); the error
    comes with the next call."""
    r, k = make()
    with r:
        r.prep_nop(1)
        r.submit()
        time.sleep(0.01)
        r.prep_nop(2)
        k.inject("enter", errno.EBADF, times=2)
        assert [c.user_data for c in r.wait(2)] == [1]
        with pytest.raises(OSError) as info:
            r.wait(1)
        assert info.value.errno == errno.EBADF
        assert [c.user_data for c in r.wait(1)] == [2]

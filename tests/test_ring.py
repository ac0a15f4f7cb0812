"""The ring protocol against the real kernel: set-up variants, SQ/CQ, overflow,
waiting, SQPOLL, and the set-up flags the issue lists."""

from __future__ import annotations

import ctypes
import errno
import os
import threading
import time

import pytest
from conftest import require_uring, try_ring

import uring
import uring.syscalls
from uring import abi, barriers
from uring.faults import FaultInjector


def nops(ring: uring.Ring, user_datas: range) -> None:
    for ud in user_datas:
        ring.prep_nop(ud)


def test_nop_round_trip(ring: uring.Ring) -> None:
    ud = ring.prep_nop(0xDEADBEEF_CAFEF00D)
    assert ud == 0xDEADBEEF_CAFEF00D
    assert ring.sq_ready == 1
    (cqe,) = ring.wait(1)
    assert (cqe.user_data, cqe.res) == (0xDEADBEEF_CAFEF00D, 0)
    assert isinstance(cqe, uring.Cqe) and cqe.big == () and not cqe.more
    assert ring.sq_ready == 0 and ring.cq_ready == 0
    assert ring.sq_head == ring.sq_tail == 1 and ring.cq_head == ring.cq_tail == 1


def test_auto_user_data_is_unique(ring: uring.Ring) -> None:
    uds = [ring.prep_nop() for _ in range(10)]
    assert len(set(uds)) == 10
    got = ring.wait(10)
    assert sorted(c.user_data for c in got) == sorted(uds)


def test_entries_rounding_and_cq_default() -> None:
    require_uring()
    with uring.Ring(3) as r:
        assert r.sq_entries == 4 and r.cq_entries == 8
        assert r.params.sq_entries == 4


def test_cqsize() -> None:
    require_uring()
    with uring.Ring(4, cq_entries=100) as r:
        assert r.cq_entries == 128
        assert r.setup_flags & abi.IORING_SETUP_CQSIZE


def test_clamp_and_too_many_entries() -> None:
    """Too many entries is refused before the kernel, naming the limit and
    IORING_SETUP_CLAMP; the kernel's own limit is the same (its setup
    refuses one entry more), and CLAMP gets the most it allows."""
    require_uring()
    with pytest.raises(ValueError, match=r"32768.*IORING_SETUP_CLAMP"):
        uring.Ring(1 << 20)
    p = abi.io_uring_params()
    with pytest.raises(OSError) as info:
        uring.syscalls.default_kernel().setup(32769, ctypes.addressof(p))
    assert info.value.errno == errno.EINVAL
    with uring.Ring(32768) as r:
        assert r.sq_entries == 32768
    with uring.Ring(1 << 20, flags=abi.IORING_SETUP_CLAMP) as r:
        assert r.sq_entries == 32768  # IORING_MAX_ENTRIES


def test_no_sqarray_is_tried_first_and_sq_array_works() -> None:
    require_uring()
    with uring.Ring(8) as r:
        assert r.setup_flags & abi.IORING_SETUP_NO_SQARRAY
    with uring.Ring(8, sq_array=True) as r:
        assert not r.setup_flags & abi.IORING_SETUP_NO_SQARRAY
        nops(r, range(20, 28))
        r.submit()
        assert sorted(c.user_data for c in r.wait(8)) == list(range(20, 28))
        nops(r, range(8))  # wraps the array indirection
        assert len(r.wait(8)) == 8


def test_no_sqarray_falls_back_on_einval() -> None:
    """An older kernel answers NO_SQARRAY with EINVAL: the ring retries without."""
    require_uring()
    k = FaultInjector()
    k.inject("setup", errno.EINVAL)  # the first setup is the NO_SQARRAY one
    with uring.Ring(8, kernel=k) as r:
        assert k.calls["setup"] == 2
        assert not r.setup_flags & abi.IORING_SETUP_NO_SQARRAY
        r.prep_nop(5)
        assert r.wait(1)[0].user_data == 5


def test_three_mmap_layout() -> None:
    """Without IORING_FEAT_SINGLE_MMAP the CQ ring is mapped on its own."""
    require_uring()
    k = FaultInjector(hide_features=abi.IORING_FEAT_SINGLE_MMAP)
    with uring.Ring(16, kernel=k, sq_array=True) as r:
        assert not r.features & abi.IORING_FEAT_SINGLE_MMAP
        assert len(r._maps) == 3
        for round_ in range(5):
            nops(r, range(round_ * 16, round_ * 16 + 16))
            assert sorted(c.user_data for c in r.wait(16)) == list(range(round_ * 16, round_ * 16 + 16))
    with uring.Ring(16) as r:
        assert len(r._maps) == 2


def test_sq_full_raises_then_submits() -> None:
    require_uring()
    with uring.Ring(4) as r:
        nops(r, range(4))
        with pytest.raises(uring.SubmissionQueueFull):
            r.prep_nop(99)
        assert r.submit() == 4
        nops(r, range(4, 8))
        got = r.wait(8)
        assert sorted(c.user_data for c in got) == list(range(8))


def test_sq_full_submit_policy() -> None:
    require_uring()
    with uring.Ring(4, cq_entries=256, sq_full="submit") as r:
        nops(r, range(100))
        got = r.wait(100)
        assert sorted(c.user_data for c in got) == list(range(100))


def test_cq_overflow_loses_nothing() -> None:
    """Thousands of NOPs into a 16-slot CQ without reaping: the kernel keeps
    the excess on its overflow list (IORING_FEAT_NODROP), flags
    IORING_SQ_CQ_OVERFLOW, and reap() flushes it; each comes back once."""
    require_uring()
    with uring.Ring(8, cq_entries=16) as r:
        assert r.features & abi.IORING_FEAT_NODROP
        total = 4000
        for base in range(0, total, 8):
            nops(r, range(base, base + 8))
            r.submit()
        assert r.sq_flags & abi.IORING_SQ_CQ_OVERFLOW
        assert r.cq_ready == 16
        got = r.reap()
        uds = [c.user_data for c in got]
        assert len(uds) == total and set(uds) == set(range(total))
        assert not r.sq_flags & abi.IORING_SQ_CQ_OVERFLOW
        assert r.cq_overflow == 0  # nothing dropped
        assert r.reap() == []


def test_cq_overflow_reaped_in_small_batches() -> None:
    require_uring()
    with uring.Ring(8, cq_entries=16) as r:
        for base in range(0, 800, 8):
            nops(r, range(base, base + 8))
            r.submit()
        seen = []
        while True:
            batch = r.reap(7)
            if not batch:
                break
            assert len(batch) <= 7
            seen += [c.user_data for c in batch]
        assert sorted(seen) == list(range(800))


def test_wait_timeout_returns_what_arrived(ring: uring.Ring) -> None:
    t0 = time.monotonic()
    assert ring.wait(1, timeout=0.05) == []
    assert time.monotonic() - t0 >= 0.04
    ring.prep_nop(1)
    got = ring.wait(2, timeout=0.02)
    assert [c.user_data for c in got] == [1]


def test_wait_timeout_accepts_timedelta(ring: uring.Ring) -> None:
    import datetime

    assert ring.wait(1, timeout=datetime.timedelta(milliseconds=10)) == []
    with pytest.raises(ValueError):
        ring.wait(1, timeout=-1)


def test_peek_and_submit_and_wait(ring: uring.Ring) -> None:
    assert ring.peek() is None
    nops(ring, range(3))
    assert ring.submit_and_wait(3) == 3
    assert ring.cq_ready == 3
    assert ring.peek().user_data == 0  # type: ignore[union-attr]
    assert [c.user_data for c in ring.reap()] == [1, 2]


def test_nop_inject_result_surfaces_res(ring: uring.Ring) -> None:
    """IORING_NOP_INJECT_RESULT: the NOP completes with sqe->len as res."""
    ring.prep(abi.IORING_OP_NOP, user_data=7, op_flags=abi.IORING_NOP_INJECT_RESULT,
              len=(-errno.EIO) & 0xFFFFFFFF)
    (cqe,) = ring.wait(1)
    if cqe.res == -errno.EINVAL:
        pytest.skip("IORING_NOP_INJECT_RESULT not supported by this kernel")
    assert cqe.res == -errno.EIO


def test_sqe128_and_cqe32() -> None:
    require_uring()
    flags = abi.IORING_SETUP_SQE128 | abi.IORING_SETUP_CQE32
    with try_ring(8, flags=flags) as r:
        assert r._sqe_size == 128 and r._cqe_size == 32
        for base in range(0, 40, 8):
            nops(r, range(base, base + 8))
            got = r.wait(8)
            assert sorted(c.user_data for c in got) == list(range(base, base + 8))
            assert all(len(c.big) == 2 for c in got)


def test_cqe_mixed_big_and_small_with_skip_fillers() -> None:
    """CQE_MIXED (6.18): big CQEs take two slots, flagged IORING_CQE_F_32; a
    big CQE that would wrap is preceded by an IORING_CQE_F_SKIP filler,
    which reap() steps over."""
    require_uring()
    mixed = getattr(abi, "IORING_SETUP_CQE_MIXED", None)
    nop_cqe32 = getattr(abi, "IORING_NOP_CQE32", None)
    if mixed is None or nop_cqe32 is None:
        pytest.skip("ABI module lacks CQE_MIXED")
    with try_ring(4, flags=mixed, cq_entries=8) as r:
        expected = {}
        ud = 0
        slots = 0
        for round_ in range(24):
            # 0-3 small CQEs then a big one: 2 to 5 slots a round, so big
            # CQEs meet the wrap point (slot 7 of 8) in some rounds.
            pattern = [False] * (round_ % 4) + [True]
            for big in pattern:
                r.prep(abi.IORING_OP_NOP, user_data=ud, op_flags=nop_cqe32 if big else 0)
                expected[ud] = big
                slots += 2 if big else 1
                ud += 1
            got = r.wait(len(pattern))
            if any(c.res == -errno.EINVAL for c in got):
                pytest.skip("IORING_NOP_CQE32 refused by this kernel")
            assert len(got) == len(pattern)
            for c in got:
                assert expected.pop(c.user_data) == (len(c.big) == 2)
                assert bool(c.flags & abi.IORING_CQE_F_32) == (len(c.big) == 2)
                assert not c.flags & abi.IORING_CQE_F_SKIP
        assert not expected
        # The head moved past more slots than the CQEs filled: the
        # difference is SKIP fillers, posted by the kernel and stepped over.
        assert r.cq_head > slots


def test_sqpoll_submits_and_wakes_the_thread() -> None:
    require_uring()
    with uring.Ring(8, flags=abi.IORING_SETUP_SQPOLL, sq_thread_idle=1) as r:
        nops(r, range(4))
        assert r.submit() == 4
        assert sorted(c.user_data for c in r.wait(4)) == list(range(4))
        # Let the SQ thread go idle: it sets IORING_SQ_NEED_WAKEUP and sleeps.
        deadline = time.monotonic() + 5
        while not r.sq_flags & abi.IORING_SQ_NEED_WAKEUP:
            assert time.monotonic() < deadline, "SQ thread never went idle"
            time.sleep(0.005)
        nops(r, range(4, 8))
        with barriers.instrument() as fences:
            r.submit()
        assert fences.count >= 1  # the fence before reading NEED_WAKEUP ran
        assert sorted(c.user_data for c in r.wait(4, timeout=5)) == list(range(4, 8))


def test_non_sqpoll_submit_needs_no_full_fence(ring: uring.Ring) -> None:
    ring.prep_nop(1)
    with barriers.instrument() as fences:
        ring.submit()
    assert fences.count == 0
    ring.wait(1)


def test_sqpoll_sq_full_waits_for_the_thread() -> None:
    require_uring()
    with uring.Ring(4, flags=abi.IORING_SETUP_SQPOLL, sq_full="submit", cq_entries=512) as r:
        nops(r, range(200))
        r.submit()
        got = r.wait(200, timeout=10)
        assert sorted(c.user_data for c in got) == list(range(200))


def test_iopoll_ring_reports_unsupported_file_plainly(datafile: tuple) -> None:
    fd, _, _ = datafile
    with try_ring(8, flags=abi.IORING_SETUP_IOPOLL) as r:
        buf = bytearray(4096)
        r.prep_read(fd, buf, 0, user_data=1)
        (cqe,) = r.wait(1, timeout=5)
        # A buffered file cannot be polled for completion.
        assert cqe.res in (-errno.EOPNOTSUPP, -errno.EINVAL)


@pytest.mark.parametrize(
    "flags",
    [
        "IORING_SETUP_COOP_TASKRUN",
        "IORING_SETUP_COOP_TASKRUN|IORING_SETUP_TASKRUN_FLAG",
        "IORING_SETUP_SINGLE_ISSUER",
        "IORING_SETUP_SINGLE_ISSUER|IORING_SETUP_DEFER_TASKRUN",
        "IORING_SETUP_SUBMIT_ALL",
    ],
)
def test_taskrun_and_issuer_modes_complete_reads(flags: str, datafile: tuple) -> None:
    fd, _, content = datafile
    value = 0
    for name in flags.split("|"):
        value |= int(getattr(abi, name))
    with try_ring(8, flags=value) as r:
        bufs = [bytearray(512) for _ in range(4)]
        for i, b in enumerate(bufs):
            r.prep_read(fd, b, i * 1000, user_data=i)
        got = r.wait(4, timeout=5)
        assert sorted(c.user_data for c in got) == [0, 1, 2, 3]
        for i, b in enumerate(bufs):
            assert bytes(b) == content[i * 1000: i * 1000 + 512]


def test_single_issuer_refuses_another_thread() -> None:
    """The kernel's own refusal (a threadsafe ring lets the second thread's
    submit reach it): ``IORING_SETUP_SINGLE_ISSUER`` binds the ring to the
    first submitter, and another thread's enter fails with EEXIST."""
    with try_ring(8, flags=abi.IORING_SETUP_SINGLE_ISSUER, threadsafe=True) as r:
        r.prep_nop(1)
        r.wait(1)  # binds the ring to this thread
        errors = []

        def other() -> None:
            try:
                r.prep_nop(2)
                r.submit()
            except OSError as exc:
                errors.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert errors and errors[0].errno == errno.EEXIST
        assert "io_uring_enter" in str(errors[0])


def test_r_disabled_then_enable() -> None:
    with try_ring(8, flags=abi.IORING_SETUP_R_DISABLED) as r:
        with pytest.raises(uring.RingClosedError, match="enable"):
            r.prep_nop(1)
        r.enable()
        r.prep_nop(1)
        assert r.wait(1)[0].user_data == 1


def test_submit_stops_at_a_bad_sqe_unless_submit_all() -> None:
    """An SQE that fails to prepare ends the batch (its CQE carries the
    error); the SQEs after it stay queued and go with the next submit.
    With IORING_SETUP_SUBMIT_ALL the kernel goes on."""
    require_uring()
    bad_op = 255  # beyond IORING_OP_LAST: -EINVAL at prep
    with uring.Ring(8) as r:
        r.prep_nop(0)
        r.prep(bad_op, user_data=1)
        r.prep_nop(2)
        assert r.submit() == 2
        assert r.sq_ready == 1
        assert r.submit() == 1
        got = {c.user_data: c.res for c in r.wait(3)}
        assert got == {0: 0, 1: -errno.EINVAL, 2: 0}
    with uring.Ring(8, flags=abi.IORING_SETUP_SUBMIT_ALL) as r:
        r.prep_nop(0)
        r.prep(bad_op, user_data=1)
        r.prep_nop(2)
        assert r.submit() == 3
        got = {c.user_data: c.res for c in r.wait(3)}
        assert got == {0: 0, 1: -errno.EINVAL, 2: 0}


def test_submit_to_submit_takes_that_many_from_the_head() -> None:
    """io_uring_enter's to_submit bounds one submit: the kernel takes the
    first SQEs, the rest stay in the ring in order for the next one."""
    require_uring()
    with uring.Ring(8) as r:
        for i in range(7):
            r.prep_nop(i)
        assert r.submit(3) == 3
        assert r.sq_ready == 4
        assert sorted(c.user_data for c in r.reap()) == [0, 1, 2]  # NOPs finish inline
        assert r.submit(2) == 2 and r.sq_ready == 2
        assert sorted(c.user_data for c in r.reap()) == [3, 4]
        assert r.submit() == 2 and r.sq_ready == 0
        assert sorted(c.user_data for c in r.wait(2)) == [5, 6]
        r.prep_nop(9)
        for bad in (-1, 1.5, "2"):
            with pytest.raises(ValueError, match="to_submit"):
                r.submit(bad)  # type: ignore[arg-type]
        assert r.sq_ready == 1  # the refused call took nothing
        assert r.submit(0) == 0 and r.sq_ready == 1
        assert r.submit() == 1
        assert r.wait(1)[0].user_data == 9


def test_registered_ring_fd(ring: uring.Ring) -> None:
    index = ring.register_ring_fd()
    assert index >= 0 and ring._enter_fd == index
    nops(ring, range(5))
    assert len(ring.wait(5)) == 5
    # Another thread has no such registration: it must use the real fd.
    # (The ring is handed over and back: a default ring has one thread.)
    out = []
    ring.release_thread()
    t = threading.Thread(target=lambda: (ring.prep_nop(9), out.extend(ring.wait(1)),
                                         ring.release_thread()))
    t.start()
    t.join()
    assert [c.user_data for c in out] == [9]
    # Make the plain fd name a pipe instead: only an enter that passes the
    # registered index (IORING_ENTER_REGISTERED_RING) still reaches the ring.
    saved = os.dup(ring.fd)
    rd, wr = os.pipe()
    try:
        os.dup2(rd, ring.fd)
        ring.prep_nop(11)
        assert [c.user_data for c in ring.wait(1)] == [11]
    finally:
        os.dup2(saved, ring.fd)
        for fd in (saved, rd, wr):
            os.close(fd)
    ring.unregister_ring_fd()
    ring.prep_nop(10)
    assert ring.wait(1)[0].user_data == 10


def test_repr_and_facts(ring: uring.Ring) -> None:
    assert "fd=" in repr(ring)
    assert ring.features & abi.IORING_FEAT_NODROP
    assert os.fstat(ring.fd)  # a real fd
    ring.close()
    assert repr(ring) == "<Ring closed>"


def test_raw_records_are_plain_tuples_with_the_same_fields(ring: uring.Ring) -> None:
    ring.prep(abi.IORING_OP_NOP, user_data=1, op_flags=abi.IORING_NOP_INJECT_RESULT, len=77)
    ring.prep_nop(2)
    raw = ring.wait(2, raw=True)
    assert all(type(c) is tuple for c in raw)
    assert sorted(raw) == [(1, 77, 0), (2, 0, 0)]
    ring.prep_nop(3)
    ring.submit_and_wait(1)
    (one,) = ring.reap(raw=True)
    assert one == (3, 0, 0)
    with try_ring(4, flags=abi.IORING_SETUP_CQE32) as big:
        big.prep_nop(4)
        (rec,) = big.wait(1, raw=True)
        assert type(rec) is tuple and rec[:3] == (4, 0, 0) and len(rec) == 5


def test_cqe_repr_names_errno_and_flags() -> None:
    from uring.ring import Cqe

    assert repr(Cqe.of(1, -errno.ENOENT, 0)) == "Cqe(user_data=1, res=-ENOENT, flags=0)"
    more = Cqe.of(5, 4096, abi.IORING_CQE_F_BUFFER | abi.IORING_CQE_F_MORE | (3 << 16))
    assert repr(more) == ("Cqe(user_data=5, res=4096, "
                          "flags=IORING_CQE_F_BUFFER|IORING_CQE_F_MORE, buffer_id=3)")
    assert more.buffer_id == 3 and more.more
    assert repr(Cqe.of(1, 0, 0, 7, 8)).endswith("big=(7, 8))")


def test_resize_carries_pending_work_into_the_new_rings() -> None:
    """IORING_REGISTER_RESIZE_RINGS: CQEs not reaped, SQEs published and
    SQEs only prepared all survive the move to new ring memory."""
    ring = try_ring(4, flags=abi.IORING_SETUP_SINGLE_ISSUER | abi.IORING_SETUP_DEFER_TASKRUN)
    with ring:
        first = [ring.prep_nop() for _ in range(3)]  # fresh user_data 1, 2, 3
        ring.submit()
        ring.prep_nop(10)  # prepared, not yet submitted
        buf = bytearray(4)
        rd, wr = os.pipe()
        try:
            ring.prep_read(rd, buf, -1, 11)
            ring.submit()
            try:
                ring.resize(64, 256)
            except OSError as exc:
                if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                    pytest.skip(f"kernel {os.uname().release} cannot resize rings: {exc}")
                raise
            assert (ring.sq_entries, ring.cq_entries) == (64, 256)
            os.write(wr, b"data")
            got = {c.user_data: c.res for c in ring.wait(5, timeout=5)}
            assert got == {first[0]: 0, first[1]: 0, first[2]: 0, 10: 0, 11: 4} and buf == b"data"
            uds = [ring.prep_nop() for _ in range(60)]  # the bigger SQ, numbering goes on
            assert uds[0] == first[-1] + 1
            assert sorted(c.user_data for c in ring.wait(60)) == sorted(uds)
        finally:
            os.close(rd)
            os.close(wr)


def test_resize_too_small_for_what_is_pending_is_refused() -> None:
    ring = try_ring(8, flags=abi.IORING_SETUP_SINGLE_ISSUER | abi.IORING_SETUP_DEFER_TASKRUN)
    with ring:
        for ud in range(1, 9):
            ring.prep_nop(ud)
        ring.submit()
        with pytest.raises(OSError) as info:
            ring.resize(2, 4)  # 8 CQEs wait to be reaped: they do not fit
        if info.value.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            pytest.skip(f"kernel {os.uname().release} cannot resize rings")
        assert info.value.errno == errno.EOVERFLOW and "RESIZE_RINGS" in str(info.value)
        assert (ring.sq_entries, ring.cq_entries) == (8, 16)  # the old rings stay
        assert sorted(c.user_data for c in ring.wait(8)) == list(range(1, 9))


def test_resize_needs_defer_taskrun(ring: uring.Ring) -> None:
    with pytest.raises(OSError) as info:
        ring.resize(128)
    assert info.value.errno == errno.EINVAL and "RESIZE_RINGS" in str(info.value)
    ring.prep_nop(1)
    assert [c.user_data for c in ring.wait(1)] == [1]


def test_wait_timeout_is_kept_through_signals() -> None:
    """Signals arriving faster than the timeout: each EINTR goes round with
    the time that is left, so the wait still ends (resending the same
    timespec restarted the full timeout at every signal, and never ended)."""
    import signal

    ticks = []

    def tick(*_: object) -> None:
        ticks.append(1)
        if len(ticks) > 200:  # 4 s of signals: the wait is not ending
            raise RuntimeError("wait(timeout=0.3) still waiting after 4 s of signals")

    old = signal.signal(signal.SIGALRM, tick)
    signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)
    try:
        with uring.Ring(4) as ring:
            start = time.monotonic()
            assert ring.wait(1, timeout=0.3) == []
            elapsed = time.monotonic() - start
        assert elapsed >= 0.29  # not before the timeout
        assert ticks  # and signals did come meanwhile
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)

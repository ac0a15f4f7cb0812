"""Control operations against real objects: pipes, epoll instances, two rings,
futex words in shared memory, child processes, sockets.  Each test checks
the effect (data read, fd usable, child reaped, waiter woken), not only
``res``."""

from __future__ import annotations

import ctypes
import datetime
import errno
import fcntl
import gc
import mmap
import os
import select
import socket
import struct
import time
import weakref
from typing import Dict, Iterator, List, Tuple

import pytest
from conftest import require_op, submit_issued, try_ring

import uring
from uring import abi
from uring.ops import control as C
from uring.request import Completion

SAFE = 5  # seconds: a bound on waits that should end long before


class Buf(bytearray):
    """A bytearray that can be weakly referenced."""


def closed_fd() -> int:
    rd, wr = os.pipe()
    os.close(rd)
    os.close(wr)
    return rd


def by_ud(completions: List[Completion]) -> Dict[int, Completion]:
    out = {c.user_data: c for c in completions}
    assert len(out) == len(completions), completions
    return out


def raises(c: Completion, exc: type, op: str) -> OSError:
    with pytest.raises(exc) as info:
        c.result()
    assert op in str(info.value)
    assert isinstance(info.value, OSError)
    return info.value


# -- NOP ----------------------------------------------------------------------


def test_nop_injects_a_result(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_NOP)
    ring.prep_nop(1, result=-errno.EIO)
    ring.prep_nop(2, result=7)
    ring.prep_nop(3)  # the fast path, in a slot the slow one may have used
    got = by_ud(ring.completions(3, timeout=SAFE))
    assert got[1].res == -errno.EIO and got[2].res == 7 and got[3].res == 0
    err = raises(got[1], OSError, "IORING_OP_NOP")
    assert err.errno == errno.EIO
    assert got[2].result() == 7
    # Every slot the slow branch wrote is a plain NOP again for the fast path.
    for ud in range(10, 10 + ring.sq_entries):
        ring.prep_nop(ud)
    assert all(c.res == 0 for c in ring.completions(ring.sq_entries, timeout=SAFE))
    assert ring.in_flight == 0


def test_nop_hooks_look_up_files_and_buffers(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    rd, _ = pipe
    ring.prep_nop_hooks(1, fd=rd)
    ring.prep_nop_hooks(2, fd=closed_fd())
    ring.prep_nop_hooks(3, task_work=True, result=5)
    got = by_ud(ring.completions(3, timeout=SAFE))
    assert (got[1].res, got[2].res, got[3].res) == (0, -errno.EBADF, 5)
    raises(got[2], OSError, "IORING_OP_NOP")

    ring.register_files([rd, -1])
    ring.register_buffers([bytearray(4096)])
    ring.prep_nop_hooks(4, fd=0, fixed=True)
    ring.prep_nop_hooks(5, fd=1, fixed=True)  # an empty slot
    ring.prep_nop_hooks(6, buf_index=0)
    ring.prep_nop_hooks(7, buf_index=1)  # not registered
    got = by_ud(ring.completions(4, timeout=SAFE))
    assert [got[u].res for u in (4, 5, 6, 7)] == [0, -errno.EBADF, 0, -errno.EFAULT]
    with pytest.raises(ValueError):
        ring.prep_nop_hooks(8, fixed=True)  # a fixed slot needs fd
    assert ring.in_flight == 0


def test_nop_posts_a_big_cqe() -> None:
    with try_ring(8, flags=abi.IORING_SETUP_CQE32) as big:
        big.prep_nop_hooks(1, cqe32=(11, 1 << 63))
        (c,) = big.completions(1, timeout=SAFE)
        assert c.res == 0 and c.big == (11, 1 << 63)
    with uring.Ring(8) as small:
        small.prep_nop_hooks(1, cqe32=(1, 2))
        (c,) = small.completions(1, timeout=SAFE)
        assert c.res == -errno.EINVAL


# -- poll -----------------------------------------------------------------------


def test_poll_add_completes_with_revents(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_POLL_ADD)
    rd, wr = pipe
    ring.prep_poll_add(rd, select.POLLIN, user_data=1)
    ring.prep_poll_add(wr, select.POLLOUT, user_data=2)
    (out,) = ring.completions(1, timeout=SAFE)
    assert out.user_data == 2 and out.result() & select.POLLOUT
    assert ring.reap() == []  # the read end is not ready: still armed
    os.write(wr, b"x")
    (inp,) = ring.completions(1, timeout=SAFE)
    assert inp.user_data == 1 and inp.result() == select.POLLIN and not inp.more
    assert ring.in_flight == 0


def test_poll_multishot_until_removed(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_POLL_ADD)
    rd, wr = pipe
    ring.prep_poll_add(rd, select.POLLIN, user_data=1, multishot=True)
    ring.submit()
    for _ in range(2):
        os.write(wr, b"x")
        (c,) = ring.completions(1, timeout=SAFE)
        assert c.user_data == 1 and c.more and c.result() == select.POLLIN
        assert os.read(rd, 10) == b"x"
    assert ring.in_flight == 1  # the poll is still held
    ring.prep_poll_remove(1, user_data=2)
    got = by_ud(ring.completions(2, timeout=SAFE))
    assert got[2].result() == 0
    assert got[1].res == -errno.ECANCELED and not got[1].more
    assert ring.in_flight == 0


def test_poll_remove_unknown_is_enoent(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_POLL_REMOVE)
    ring.prep_poll_remove(12345, user_data=1)
    (c,) = ring.completions(1, timeout=SAFE)
    raises(c, FileNotFoundError, "IORING_OP_POLL_REMOVE")


def test_poll_update_events_and_user_data(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_POLL_REMOVE)
    rd, wr = pipe
    # The write end never becomes readable: only the update makes this fire.
    ring.prep_poll_add(wr, select.POLLIN, user_data=1)
    ring.submit()
    ring.prep_poll_update(1, events=select.POLLOUT, user_data=2)
    got = by_ud(ring.completions(2, timeout=SAFE))
    assert got[2].result() == 0 and got[1].result() & select.POLLOUT

    ring.prep_poll_add(rd, select.POLLIN, user_data=10)
    ring.submit()
    ring.prep_poll_update(10, new_user_data=20, user_data=11)
    (upd,) = ring.completions(1, timeout=SAFE)
    assert upd.user_data == 11 and upd.result() == 0
    os.write(wr, b"x")
    (c,) = ring.completions(1, timeout=SAFE)
    assert c.user_data == 20 and c.result() == select.POLLIN
    assert c.request is not None and c.request.opcode == abi.IORING_OP_POLL_ADD
    assert ring.in_flight == 0  # the record followed the poll to its new user_data
    # A poll whose final CQE is already posted keeps its record where it is.
    ring.prep_poll_add(wr, select.POLLOUT, user_data=30)
    ring.submit_and_wait(1)
    ring.prep_poll_update(30, new_user_data=40, user_data=31)
    got = by_ud(ring.completions(2, timeout=SAFE))
    assert got[30].result() & select.POLLOUT and got[30].request is not None
    assert got[31].res == -errno.ENOENT
    assert ring.in_flight == 0
    with pytest.raises(ValueError):
        ring.prep_poll_update(20)  # nothing to update
    with pytest.raises(ValueError):
        ring.prep_poll_update(20, new_user_data=21, multishot=True)


# -- epoll ----------------------------------------------------------------------


def test_epoll_ctl_add_mod_del(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_EPOLL_CTL)
    rd, wr = pipe
    with select.epoll() as ep:
        ring.prep_epoll_ctl(ep, C.EPOLL_CTL_ADD, rd, select.EPOLLIN, user_data=1)
        (c,) = ring.completions(1, timeout=SAFE)
        assert c.result() == 0
        os.write(wr, b"x")
        assert ep.poll(0) == [(rd, select.EPOLLIN)]
        ring.prep_epoll_ctl(ep, C.EPOLL_CTL_MOD, rd, select.EPOLLIN, user_data=2, data=4242)
        ring.completions(1, timeout=SAFE)[0].result()
        assert ep.poll(0) == [(4242, select.EPOLLIN)]  # select reports data as the fd
        ring.prep_epoll_ctl(ep, C.EPOLL_CTL_DEL, rd, user_data=3)
        ring.completions(1, timeout=SAFE)[0].result()
        assert ep.poll(0) == []
        ring.prep_epoll_ctl(ep, C.EPOLL_CTL_DEL, rd, user_data=4)  # no longer there
        (c,) = ring.completions(1, timeout=SAFE)
        raises(c, FileNotFoundError, "IORING_OP_EPOLL_CTL")


def test_epoll_wait_decodes_events(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_EPOLL_WAIT)
    rd, wr = pipe
    expected = 12 if C._EPOLL_PACKED else 16
    assert ctypes.sizeof(C.epoll_event) == expected
    data = 0xDEADBEEF_00C0FFEE  # all 64 bits must survive the struct layout
    with select.epoll() as ep:
        ring.prep_epoll_ctl(ep, C.EPOLL_CTL_ADD, rd, select.EPOLLIN, user_data=1, data=data)
        ring.completions(1, timeout=SAFE)[0].result()
        ep.register(wr, select.EPOLLOUT)
        ring.prep_epoll_wait(ep, 4, user_data=2)
        (c,) = ring.completions(1, timeout=SAFE)
        # select.epoll sets only the data's fd half: the rest is stack garbage.
        assert [(ev, d & 0xFFFFFFFF) for ev, d in c.result()] == [(select.EPOLLOUT, wr)]
        ep.unregister(wr)
        ring.prep_epoll_wait(ep, 4, user_data=3)
        ring.submit()
        assert ring.reap() == []  # nothing ready: the wait is armed
        os.write(wr, b"x")
        (c,) = ring.completions(1, timeout=SAFE)
        assert c.user_data == 3 and c.res == 1 and c.result() == [(select.EPOLLIN, data)]
    with pytest.raises(ValueError):
        ring.prep_epoll_wait(rd, 0)


# -- timeouts ----------------------------------------------------------------------


def test_timeout_expires_with_etime(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_TIMEOUT)
    ring.prep_timeout(0.01, user_data=1)
    ring.prep_timeout(datetime.timedelta(milliseconds=10), user_data=2)
    got = by_ud(ring.completions(2, timeout=SAFE))
    for c in got.values():
        assert c.res == -errno.ETIME
        assert raises(c, OSError, "IORING_OP_TIMEOUT").errno == errno.ETIME
    assert ring.in_flight == 0


def test_timeout_completes_after_count_completions(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_TIMEOUT)
    ring.prep_timeout(60, count=2, user_data=1)
    ring.prep_nop(2)
    ring.prep_nop(3)
    got = by_ud(ring.completions(3, timeout=SAFE))
    assert got[1].result() == 0 and got[2].res == got[3].res == 0


@pytest.mark.parametrize("clock", [None, "boottime", "realtime"])
def test_timeout_absolute_on_each_clock(ring: uring.Ring, clock: str) -> None:
    require_op(abi.IORING_OP_TIMEOUT)
    now = {None: time.monotonic, "boottime": lambda: time.clock_gettime(time.CLOCK_BOOTTIME),
           "realtime": time.time}[clock]()
    # Taken as relative, this many seconds would outlast the bound below.
    ring.prep_timeout(now + 0.01, user_data=1, absolute=True, clock=clock)
    (c,) = ring.completions(1, timeout=SAFE)
    assert c.res == -errno.ETIME


def test_timeout_absolute_datetime_is_wall_clock(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_TIMEOUT)
    when = datetime.datetime.now() + datetime.timedelta(milliseconds=10)
    ring.prep_timeout(when, user_data=1, absolute=True)
    (c,) = ring.completions(1, timeout=SAFE)
    assert c.res == -errno.ETIME
    with pytest.raises(ValueError):
        ring.prep_timeout(when)  # a point in time is not a duration
    with pytest.raises(ValueError):
        ring.prep_timeout(1, clock="tai")
    with pytest.raises(ValueError):
        ring.prep_timeout(1, absolute=True, multishot=True)
    with pytest.raises(ValueError):
        ring.prep_timeout(-1)


def test_timeout_multishot_fires_count_times(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_TIMEOUT)
    ring.prep_timeout(0.005, count=3, user_data=1, multishot=True)
    got: List[Completion] = []
    while len(got) < 3:
        more = ring.completions(1, timeout=SAFE)
        assert more, "a multishot timeout stopped firing"
        got += more
    assert [c.res for c in got] == [-errno.ETIME] * 3
    assert [c.more for c in got] == [True, True, False]
    assert ring.in_flight == 0


def test_timeout_etime_success_keeps_the_chain(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_TIMEOUT)
    with ring.link():
        ring.prep_timeout(0.005, user_data=1)
        ring.prep_nop(2)
    with ring.link():
        ring.prep_timeout(0.005, user_data=3, etime_success=True)
        ring.prep_nop(4)
    got = by_ud(ring.completions(4, timeout=SAFE))
    assert got[1].res == got[3].res == -errno.ETIME
    assert got[2].res == -errno.ECANCELED  # an expiry breaks an ordinary chain
    assert got[4].res == 0


def test_timeout_remove_and_update(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_TIMEOUT_REMOVE)
    ring.prep_timeout(60, user_data=1)
    ring.submit()
    ring.prep_timeout_remove(1, user_data=2)
    got = by_ud(ring.completions(2, timeout=SAFE))
    assert got[2].result() == 0 and got[1].res == -errno.ECANCELED

    ring.prep_timeout(60, user_data=3)
    ring.submit()
    ring.prep_timeout_update(3, 0.01, user_data=4)
    got = by_ud(ring.completions(2, timeout=SAFE))
    assert got[4].result() == 0 and got[3].res == -errno.ETIME  # 60 s became 10 ms

    ring.prep_timeout(60, user_data=5)
    ring.submit()
    ring.prep_timeout_update(5, time.monotonic() + 0.01, user_data=6, absolute=True)
    got = by_ud(ring.completions(2, timeout=SAFE))
    assert got[6].result() == 0 and got[5].res == -errno.ETIME

    ring.prep_timeout_remove(99, user_data=7)
    (c,) = ring.completions(1, timeout=SAFE)
    raises(c, FileNotFoundError, "IORING_OP_TIMEOUT_REMOVE")
    assert ring.in_flight == 0


def test_link_timeout_cancels_a_stuck_read(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_LINK_TIMEOUT)
    rd, wr = pipe
    buf = bytearray(8)
    with ring.link():
        ring.prep_read(rd, buf, user_data=1)
        ring.prep_link_timeout(0.05, user_data=2)
    got = by_ud(ring.completions(2, timeout=SAFE))
    assert got[1].res == -errno.ECANCELED and got[2].res == -errno.ETIME
    raises(got[2], OSError, "IORING_OP_LINK_TIMEOUT")

    os.write(wr, b"data")
    with ring.link():
        ring.prep_read(rd, buf, user_data=3)
        ring.prep_link_timeout(datetime.timedelta(seconds=60), user_data=4)
    got = by_ud(ring.completions(2, timeout=SAFE))
    assert got[3].result() == 4 and bytes(buf[:4]) == b"data"
    assert got[4].res == -errno.ECANCELED  # the read won
    assert ring.in_flight == 0


def test_link_timeout_update(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_LINK_TIMEOUT)
    rd, _ = pipe
    with ring.link():
        ring.prep_read(rd, bytearray(8), user_data=1)
        ring.prep_link_timeout(60, user_data=2)
    ring.submit()
    ring.prep_timeout_update(2, 0.01, user_data=3, link=True)
    got = by_ud(ring.completions(3, timeout=SAFE))
    assert got[3].result() == 0
    assert got[2].res == -errno.ETIME and got[1].res == -errno.ECANCELED


# -- cancellation -------------------------------------------------------------------


def test_cancel_by_user_data(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_ASYNC_CANCEL)
    rd, _ = pipe
    ring.prep_read(rd, bytearray(8), user_data=1)
    ring.submit()
    ring.prep_cancel(1, user_data=2)
    got = by_ud(ring.completions(2, timeout=SAFE))
    assert got[2].result() == 0 and got[1].res == -errno.ECANCELED
    ring.prep_cancel(1, user_data=3)  # gone
    (c,) = ring.completions(1, timeout=SAFE)
    err = raises(c, FileNotFoundError, "IORING_OP_ASYNC_CANCEL")
    assert "user_data 1" in str(err)
    assert ring.in_flight == 0


def test_cancel_by_fd_all(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_ASYNC_CANCEL)
    p1, p2 = os.pipe(), os.pipe()
    try:
        keep = bytearray(8)
        ring.prep_read(p1[0], bytearray(8), user_data=1)
        ring.prep_read(p1[0], bytearray(8), user_data=2)
        ring.prep_read(p2[0], keep, user_data=3)
        ring.submit()
        ring.prep_cancel(fd=p1[0], all=True, user_data=4)
        got = by_ud(ring.completions(3, timeout=SAFE))
        assert got[4].result() == 2
        assert got[1].res == got[2].res == -errno.ECANCELED
        os.write(p2[1], b"ok")  # the read on the other pipe was left alone
        (c,) = ring.completions(1, timeout=SAFE)
        assert c.user_data == 3 and c.result() == 2 and keep[:2] == b"ok"
    finally:
        for fd in (*p1, *p2):
            os.close(fd)


def test_cancel_by_fixed_fd(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_ASYNC_CANCEL)
    rd, _ = pipe
    ring.register_files([rd])
    ring.prep_read(0, bytearray(8), user_data=1, fixed=True)
    ring.submit()
    ring.prep_cancel(fd=0, fixed=True, user_data=2)
    got = by_ud(ring.completions(2, timeout=SAFE))
    assert got[2].result() == 0 and got[1].res == -errno.ECANCELED


def test_cancel_by_opcode_and_by_user_data_and_opcode(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_ASYNC_CANCEL)
    rd, wr = pipe
    ring.prep_read(rd, bytearray(8), user_data=1)
    ring.prep_read(rd, bytearray(8), user_data=2)
    ring.prep_poll_add(rd, select.POLLIN, user_data=3)
    ring.submit()
    ring.prep_cancel(1, opcode=abi.IORING_OP_POLL_ADD, user_data=4)  # both must match: none
    (c,) = ring.completions(1, timeout=SAFE)
    assert c.user_data == 4 and c.res == -errno.ENOENT
    ring.prep_cancel(opcode=abi.IORING_OP_READ, all=True, user_data=5)
    got = by_ud(ring.completions(3, timeout=SAFE))
    assert got[5].result() == 2 and got[1].res == got[2].res == -errno.ECANCELED
    os.write(wr, b"x")  # the poll survived
    (c,) = ring.completions(1, timeout=SAFE)
    assert c.user_data == 3 and c.result() == select.POLLIN


def test_cancel_any(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_ASYNC_CANCEL)
    rd, _ = pipe
    ring.prep_read(rd, bytearray(8), user_data=1)
    ring.prep_poll_add(rd, select.POLLIN, user_data=2)
    ring.prep_timeout(60, user_data=3)
    ring.submit()
    ring.prep_cancel(any=True, all=True, user_data=4)
    got = by_ud(ring.completions(4, timeout=SAFE))
    assert got[4].result() == 3
    assert {got[u].res for u in (1, 2, 3)} == {-errno.ECANCELED}
    with pytest.raises(ValueError):
        ring.prep_cancel()
    with pytest.raises(ValueError):
        ring.prep_cancel(1, any=True)
    with pytest.raises(ValueError):
        ring.prep_cancel(1, fixed=True)
    assert ring.in_flight == 0


def test_cancel_a_thousand_reads_one_cqe_each_nothing_leaked() -> None:
    """The acceptance test: 1,000 reads on 50 pipes (some satisfied by
    data), then one ANY|ALL cancel: exactly one CQE per read, and every
    buffer collectable afterwards."""
    require_op(abi.IORING_OP_ASYNC_CANCEL)
    pipes = [os.pipe() for _ in range(50)]
    try:
        with uring.Ring(256, cq_entries=4096, sq_full="submit") as ring:
            for _, wr in pipes[:10]:
                os.write(wr, b"!")  # one read on each of these gets data
            bufs = [Buf(16) for _ in range(1000)]
            refs = [weakref.ref(b) for b in bufs]
            for i, buf in enumerate(bufs):
                ring.prep_read(pipes[i % 50][0], buf, user_data=i)
            ring.submit()
            ring.prep_cancel(any=True, all=True, user_data=5000)
            seen: Dict[int, int] = {}
            cancelled = None
            while len(seen) < 1000 or cancelled is None:
                got = ring.completions(1, timeout=SAFE)
                assert got, f"only {len(seen)} reads completed"
                for c in got:
                    if c.user_data == 5000:
                        cancelled = c.result()
                        continue
                    assert c.user_data not in seen, f"second CQE for read {c.user_data}"
                    seen[c.user_data] = c.res
            assert sorted(seen) == list(range(1000))
            with_data = [ud for ud, res in seen.items() if res == 1]
            assert len(with_data) == 10 and all(bufs[ud][:1] == b"!" for ud in with_data)
            assert all(res == -errno.ECANCELED for res in seen.values() if res != 1)
            assert cancelled == 990
            assert ring.in_flight == 0
            assert ring.completions(1, timeout=0.05) == []  # and nothing more
            del bufs, buf, got, c  # the last batch of completions holds requests
            gc.collect()
            assert [r for r in refs if r() is not None] == []
    finally:
        for rd, wr in pipes:
            os.close(rd)
            os.close(wr)


# -- MSG_RING -----------------------------------------------------------------------


def test_msg_ring_posts_into_the_other_ring(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_MSG_RING)
    with uring.Ring(8) as other:
        ring.prep_msg_ring(other, 42, 0xABCDEF, user_data=1)
        ring.prep_msg_ring(other.fd, -errno.EPIPE, 7, user_data=2, cqe_flags=0x5A0000)
        got = by_ud(ring.completions(2, timeout=SAFE))
        assert got[1].result() == 0 and got[2].result() == 0
        arrived = by_ud(other.completions(2, timeout=SAFE))
        assert arrived[0xABCDEF].res == 42 and arrived[0xABCDEF].request is None
        assert arrived[7].res == -errno.EPIPE and arrived[7].flags == 0x5A0000
        # A CQE named after a request in flight there would be taken for its own.
        other.prep_timeout(60, user_data=9)
        other.submit()
        with pytest.raises(ValueError):
            ring.prep_msg_ring(other, 0, 9)
        other.prep_timeout_remove(9)
        other.completions(2, timeout=SAFE)


def test_msg_ring_to_a_non_ring_fails(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_MSG_RING)
    ring.prep_msg_ring(pipe[0], 1, 2, user_data=1)
    (c,) = ring.completions(1, timeout=SAFE)
    assert c.res == -errno.EBADFD
    raises(c, OSError, "IORING_OP_MSG_RING")


def test_msg_ring_fd_passes_a_file(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_MSG_RING)
    rd, wr = pipe
    ring.register_files([rd])
    with uring.Ring(8) as other:
        other.register_files_sparse(4)
        ring.prep_msg_ring_fd(other, 0, 2, data=9, user_data=1)
        ring.prep_msg_ring_fd(other, 0, 0, user_data=2, skip_cqe=True)
        ring.prep_msg_ring_fd(other.fd, 0, data=10, user_data=3)  # any free slot
        got = by_ud(ring.completions(3, timeout=SAFE))
        assert all(c.res >= 0 for c in got.values()), got
        arrived = by_ud(other.completions(2, timeout=SAFE))
        assert set(arrived) == {9, 10}  # none for the skipped one
        allocated = arrived[10].result()
        assert allocated in (1, 3) and got[3].res == allocated
        for slot in (2, 0, allocated):
            os.write(wr, b"via %d" % slot)
            buf = bytearray(16)
            other.prep_read(slot, buf, user_data=20, fixed=True)
            (c,) = other.completions(1, timeout=SAFE)
            assert bytes(buf[: c.result()]) == b"via %d" % slot
    with pytest.raises(ValueError):
        ring.prep_msg_ring_fd(ring, 1)  # not a registered slot here


# -- futexes ------------------------------------------------------------------------


@pytest.fixture
def shm() -> Iterator[mmap.mmap]:
    m = mmap.mmap(-1, 4096)  # anonymous, MAP_SHARED: shared with forked children
    yield m
    gc.collect()  # completions caught in tracebacks still pin it
    m.close()


def test_futex_wait_woken_by_wake(ring: uring.Ring, shm: mmap.mmap) -> None:
    require_op(abi.IORING_OP_FUTEX_WAIT)
    ring.prep_futex_wait(shm, 0, user_data=1, offset=8)
    ring.submit()
    assert ring.reap() == []  # asleep
    with pytest.raises(BufferError):
        shm.close()  # pinned while the kernel may read the word
    ring.prep_futex_wake(memoryview(shm)[8:12], 5, user_data=2)  # the same word
    got = by_ud(ring.completions(2, timeout=SAFE))
    assert got[2].result() == 1 and got[1].result() == 0
    ring.prep_futex_wake(shm, 1, user_data=3, offset=8)
    (c,) = ring.completions(1, timeout=SAFE)
    assert c.result() == 0  # nobody left to wake


def test_futex_wait_bitset_mask(ring: uring.Ring, shm: mmap.mmap) -> None:
    require_op(abi.IORING_OP_FUTEX_WAIT)
    ring.prep_futex_wait(shm, 0, 0b01, user_data=1)
    ring.prep_futex_wait(shm, 0, 0b10, user_data=2)
    ring.submit()
    ring.prep_futex_wake(shm, 10, 0b10, user_data=3)
    got = by_ud(ring.completions(2, timeout=SAFE))
    assert set(got) == {2, 3} and got[3].result() == 1
    ring.prep_futex_wake(shm, 10, user_data=4)
    got = by_ud(ring.completions(2, timeout=SAFE))
    assert got[4].result() == 1 and got[1].result() == 0


def test_futex_wait_on_a_changed_word_is_eagain(ring: uring.Ring, shm: mmap.mmap) -> None:
    require_op(abi.IORING_OP_FUTEX_WAIT)
    struct.pack_into("=I", shm, 8, 5)
    ring.prep_futex_wait(shm, 0, user_data=1, offset=8)
    (c,) = ring.completions(1, timeout=SAFE)
    raises(c, BlockingIOError, "IORING_OP_FUTEX_WAIT")
    with pytest.raises(ValueError):
        ring.prep_futex_wait(shm, 0, offset=2)  # misaligned
    with pytest.raises(ValueError):
        ring.prep_futex_wait(shm, 0, offset=4094)  # past the end
    with pytest.raises(ValueError):
        ring.prep_futex_wait(shm, 1 << 32)  # not a u32
    with pytest.raises(TypeError):
        ring.prep_futex_wait(b"\0\0\0\0", 0)  # read-only memory


def test_futex_woken_from_a_forked_child(ring: uring.Ring, shm: mmap.mmap) -> None:
    require_op(abi.IORING_OP_FUTEX_WAKE)
    ring.prep_futex_wait(shm, 0, user_data=1, offset=64)
    submit_issued(ring)  # armed before the child exists (SQPOLL: once the thread took it)
    pid = os.fork()
    if pid == 0:  # the child: its own ring, the same shared word
        code = 1
        try:
            struct.pack_into("=I", shm, 64, 1)
            with uring.Ring(4) as child_ring:
                child_ring.prep_futex_wake(shm, 1, offset=64)
                (c,) = child_ring.completions(1, timeout=SAFE)
                code = 0 if c.res == 1 else 2
        finally:
            os._exit(code)
    (c,) = ring.completions(1, timeout=SAFE)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert c.user_data == 1 and c.result() == 0
    assert struct.unpack_from("=I", shm, 64)[0] == 1


def test_futex_waitv_reports_which_woke(ring: uring.Ring, shm: mmap.mmap) -> None:
    require_op(abi.IORING_OP_FUTEX_WAITV)
    assert ctypes.sizeof(C.futex_waitv) == 24
    struct.pack_into("=II", shm, 16, 3, 4)
    ring.prep_futex_waitv([((shm, 16), 3), ((shm, 20), 4, C.FUTEX2_SIZE_U32)], user_data=1)
    ring.submit()
    assert ring.reap() == []
    ring.prep_futex_wake(shm, 1, user_data=2, offset=20)
    got = by_ud(ring.completions(2, timeout=SAFE))
    assert got[2].result() == 1 and got[1].result() == 1  # index 1 woke us

    ring.prep_futex_waitv([((shm, 16), 3), ((shm, 20), 99)], user_data=3)
    (c,) = ring.completions(1, timeout=SAFE)
    raises(c, BlockingIOError, "IORING_OP_FUTEX_WAITV")
    with pytest.raises(ValueError):
        ring.prep_futex_waitv([])
    with pytest.raises(TypeError):
        ring.prep_futex_waitv([(shm,)])


# -- waitid -----------------------------------------------------------------------------


def test_waitid_reaps_a_child(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_WAITID)
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    ring.prep_waitid(os.P_PID, pid, os.WEXITED, user_data=1)
    (c,) = ring.completions(1, timeout=SAFE)
    assert c.res == 0 and c.result() == (pid, 7, os.CLD_EXITED)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped: no zombie left


def test_waitid_without_info_and_errors(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_WAITID)
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    ring.prep_waitid(os.P_PID, pid, user_data=1, info=False)
    (c,) = ring.completions(1, timeout=SAFE)
    assert c.result() == 0
    ring.prep_waitid(os.P_PID, pid, user_data=2)  # reaped already: not our child now
    (c,) = ring.completions(1, timeout=SAFE)
    raises(c, ChildProcessError, "IORING_OP_WAITID")


# -- provided buffers ---------------------------------------------------------------------


def test_provide_buffers_selected_by_a_read(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_PROVIDE_BUFFERS)
    rd, wr = pipe
    pool = Buf(4 * 64)
    ref = weakref.ref(pool)
    ring.prep_provide_buffers(pool, 4, 64, group=7, start_id=10, user_data=1)
    (c,) = ring.completions(1, timeout=SAFE)
    assert c.result() == 0
    del pool
    gc.collect()
    assert ref() is not None  # the ring holds it while the kernel may pick from it

    picked = []
    for word in (b"hello", b"world"):
        os.write(wr, word)
        ring._op(abi.IORING_OP_READ, fd=rd, len=64, flags=int(abi.IOSQE_BUFFER_SELECT),
                 buf_index=7, user_data=2)
        (c,) = ring.completions(1, timeout=SAFE)
        bid = c.buffer_id
        assert c.res == 5 and bid is not None and 10 <= bid < 14
        pool_now = ref()
        assert pool_now is not None
        start = (bid - 10) * 64
        assert bytes(pool_now[start:start + 5]) == word
        picked.append(bid)
        del pool_now
    assert len(set(picked)) == 2

    ring.prep_remove_buffers(4, 7, user_data=3)
    (c,) = ring.completions(1, timeout=SAFE)
    assert c.result() == 2  # the two the reads did not take
    del c  # a completion holds what its request held
    gc.collect()
    assert ref() is None  # all asked back: the ring let the pool go
    ring.prep_remove_buffers(1, 7, user_data=4)
    (c,) = ring.completions(1, timeout=SAFE)
    assert c.result() == 0


def test_provided_pool_outlives_a_partial_remove(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_REMOVE_BUFFERS)
    pool = Buf(8 * 16)
    ref = weakref.ref(pool)
    ring.prep_provide_buffers(pool, 8, 16, 3)
    ring.prep_remove_buffers(5, 3)
    assert [c.res for c in ring.completions(2, timeout=SAFE)] == [0, 5]
    del pool
    gc.collect()
    assert ref() is not None  # three are still the kernel's
    ring.prep_remove_buffers(3, 3)
    assert ring.completions(1, timeout=SAFE)[0].result() == 3
    gc.collect()
    assert ref() is None


def test_provided_pool_outlives_a_close_with_requests_in_flight(pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_PROVIDE_BUFFERS)
    rd, _ = pipe
    pool, spare = Buf(64), Buf(64)
    refs = weakref.ref(pool), weakref.ref(spare)
    with uring.Ring(8) as calm, uring.Ring(8) as busy:
        for r, buf in ((calm, spare), (busy, pool)):
            r.prep_provide_buffers(buf, 2, 32, 1)
            r.completions(1, timeout=SAFE)
        busy._op(abi.IORING_OP_READ, fd=rd, len=32, flags=int(abi.IOSQE_BUFFER_SELECT), buf_index=1)
        busy.submit()
        busy.close(cancel=False, timeout=0)  # the read may pick a buffer any time
    del pool, spare, buf, r, calm, busy
    gc.collect()
    assert refs[0]() is not None  # kept for the life of the process, with the read
    assert refs[1]() is None  # nothing was in flight there


def test_provide_buffers_errors(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_REMOVE_BUFFERS)
    ring.prep_remove_buffers(1, 999, user_data=1)  # never provided
    (c,) = ring.completions(1, timeout=SAFE)
    raises(c, FileNotFoundError, "IORING_OP_REMOVE_BUFFERS")
    with pytest.raises(ValueError):
        ring.prep_provide_buffers(bytearray(100), 4, 32, 1)  # 128 bytes needed
    with pytest.raises(ValueError):
        ring.prep_provide_buffers(bytearray(64), 1, 64, 1 << 16)
    with pytest.raises(TypeError):
        ring.prep_provide_buffers(b"x" * 64, 1, 64, 1)
    with pytest.raises(ValueError):
        ring.prep_remove_buffers(0, 1)


# -- URING_CMD ------------------------------------------------------------------------------


@pytest.fixture
def socks() -> Iterator[Tuple[socket.socket, socket.socket]]:
    """A connected loopback TCP pair (the socket commands need an inet
    protocol: AF_UNIX has no ``sk_prot->ioctl``)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        a = socket.create_connection(server.getsockname())
        b, _ = server.accept()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_uring_cmd_siocinq_counts_unread_bytes(ring: uring.Ring, socks: Tuple[socket.socket, socket.socket]) -> None:
    require_op(abi.IORING_OP_URING_CMD)
    a, b = socks
    a.sendall(b"12345")
    while b.recv(5, socket.MSG_PEEK) != b"12345":
        pass  # loopback delivery is immediate; this only makes it certain
    ring.prep_cmd_sock(b, abi.SOCKET_URING_OP_SIOCINQ, user_data=1)
    ring.prep_uring_cmd(b, abi.SOCKET_URING_OP_SIOCINQ, user_data=2)  # the raw form
    ring.prep_cmd_sock(a, abi.SOCKET_URING_OP_SIOCINQ, user_data=3)
    got = by_ud(ring.completions(3, timeout=SAFE))
    assert got[1].result() == got[2].result() == 5 and got[3].result() == 0
    assert b.recv(10) == b"12345"


def test_uring_cmd_getsockopt_setsockopt(ring: uring.Ring, socks: Tuple[socket.socket, socket.socket]) -> None:
    require_op(abi.IORING_OP_URING_CMD)
    a, _ = socks
    ring.prep_cmd_sock(a, abi.SOCKET_URING_OP_GETSOCKOPT, socket.SOL_SOCKET, socket.SO_RCVBUF, 4,
                       user_data=1)
    (c,) = ring.completions(1, timeout=SAFE)
    assert c.result() == struct.pack("i", a.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    assert a.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
    ring.prep_cmd_sock(a, abi.SOCKET_URING_OP_SETSOCKOPT, socket.SOL_SOCKET, socket.SO_KEEPALIVE,
                       1, user_data=2)
    (c,) = ring.completions(1, timeout=SAFE)
    assert c.result() == 0
    assert a.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    with pytest.raises(TypeError):
        ring.prep_cmd_sock(a, abi.SOCKET_URING_OP_GETSOCKOPT, socket.SOL_SOCKET, socket.SO_RCVBUF)


def test_uring_cmd_errors(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_URING_CMD)
    ring.prep_uring_cmd(pipe[0], 0, user_data=1)  # a pipe takes no commands
    (c,) = ring.completions(1, timeout=SAFE)
    assert raises(c, OSError, "IORING_OP_URING_CMD").errno == errno.EOPNOTSUPP
    room = 80 if ring.setup_flags & abi.IORING_SETUP_SQE128 else 16  # from byte 48 of the SQE
    ring.prep_uring_cmd(pipe[0], 0, b"x" * room, user_data=2)  # exactly fits
    (c,) = ring.completions(1, timeout=SAFE)
    assert c.user_data == 2 and c.res == -errno.EOPNOTSUPP
    before = ring.sq_ready
    with pytest.raises(ValueError):
        ring.prep_uring_cmd(pipe[0], 0, b"x" * (room + 1))
    assert ring.sq_ready == before and ring.in_flight == 0


# -- pipes ------------------------------------------------------------------------------------


def test_pipe_returns_two_usable_fds(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_PIPE)
    ring.prep_pipe(user_data=1)
    ring.prep_pipe(os.O_NONBLOCK, user_data=2)
    got = by_ud(ring.completions(2, timeout=SAFE))
    rd, wr = got[1].result()
    nb_rd, nb_wr = got[2].result()
    try:
        assert os.write(wr, b"through the ring") == 16
        assert os.read(rd, 100) == b"through the ring"
        assert fcntl.fcntl(rd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC  # like os.pipe()
        assert not fcntl.fcntl(nb_rd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        with pytest.raises(BlockingIOError):
            os.read(nb_rd, 1)
    finally:
        for fd in (rd, wr, nb_rd, nb_wr):
            os.close(fd)


def test_pipe_direct_into_the_file_table(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_PIPE)
    ring.register_files_sparse(4)
    ring.prep_pipe(user_data=1, direct=1)
    (c,) = ring.completions(1, timeout=SAFE)
    assert c.result() == (1, 2)
    buf = bytearray(8)
    ring.prep_write(2, b"fixed", fixed=True, user_data=2)
    ring.prep_read(1, buf, fixed=True, user_data=3)
    got = by_ud(ring.completions(2, timeout=SAFE))
    assert got[2].result() == 5 and got[3].result() == 5 and buf[:5] == b"fixed"
    ring.prep_pipe(os.O_CLOEXEC, user_data=4, direct=3)  # a slot cannot be close-on-exec
    (c,) = ring.completions(1, timeout=SAFE)
    raises(c, OSError, "IORING_OP_PIPE")
    assert c.res == -errno.EINVAL
    with pytest.raises(ValueError):
        ring.prep_pipe(direct=-2)


# -- the probe ------------------------------------------------------------------------------------


def test_unsupported_ops_refused_before_submission(ring: uring.Ring, pipe: Tuple[int, int],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    require_op(abi.IORING_OP_POLL_ADD)
    rd, _ = pipe
    monkeypatch.setattr(ring, "_supported_ops", frozenset())
    before = ring.sq_ready
    shm = bytearray(8)
    attempts = [
        lambda: ring.prep_poll_add(rd),
        lambda: ring.prep_poll_remove(1),
        lambda: ring.prep_poll_update(1, events=select.POLLIN),
        lambda: ring.prep_epoll_ctl(rd, C.EPOLL_CTL_DEL, rd),
        lambda: ring.prep_epoll_wait(rd, 1),
        lambda: ring.prep_timeout(1),
        lambda: ring.prep_timeout_remove(1),
        lambda: ring.prep_timeout_update(1, 1),
        lambda: ring.prep_link_timeout(1),
        lambda: ring.prep_cancel(1),
        lambda: ring.prep_msg_ring(ring, 0, 0),
        lambda: ring.prep_futex_wait(shm, 0),
        lambda: ring.prep_futex_wake(shm),
        lambda: ring.prep_futex_waitv([(shm, 0)]),
        lambda: ring.prep_waitid(os.P_ALL, 0),
        lambda: ring.prep_provide_buffers(shm, 1, 8, 0),
        lambda: ring.prep_remove_buffers(1, 0),
        lambda: ring.prep_uring_cmd(rd, 0),
        lambda: ring.prep_cmd_sock(rd, abi.SOCKET_URING_OP_SIOCINQ),
        lambda: ring.prep_pipe(),
    ]
    for attempt in attempts:
        with pytest.raises(uring.UnsupportedOperation):
            attempt()
        assert ring.sq_ready == before and ring.in_flight == 0
    assert not getattr(ring, "_provided", None)  # nothing registered for the pool

"""What every op shares: completions mapped back to their requests, errors
named, the probe check, linked chains, and memory held through the garbage
collector until the final CQE; and the provided-buffer ring."""

from __future__ import annotations

import errno
import gc
import os
import socket
import weakref

import pytest
from conftest import require_op, require_uring

import uring
from uring import abi
from uring.request import Completion, Request


class Buf(bytearray):
    """A bytearray that can be weakly referenced."""


def closed_fd() -> int:
    """A number that was a valid fd a moment ago: the kernel answers EBADF."""
    rd, wr = os.pipe()
    os.close(rd)
    os.close(wr)
    return rd


# -- completions ------------------------------------------------------------


def test_completion_maps_back_to_its_request(ring: uring.Ring, datafile: tuple) -> None:
    fd, _, content = datafile
    buf = bytearray(100)
    ud = ring.prep_read(fd, buf, 10)
    with pytest.raises(BufferError):
        buf.extend(b"x")  # the request's record pins it from the prep to its CQE
    ring.prep_nop(user_data=77)
    got = {c.user_data: c for c in ring.completions(2)}
    read, nop = got[ud], got[77]
    assert isinstance(read.request, Request)
    assert read.request.opcode == abi.IORING_OP_READ and read.request.target == fd
    assert read.request.keep is not None  # what pinned it (a PinnedBuffer or a bare export)
    assert read.result() == 100 and bytes(buf) == content[10:110]
    assert nop.request is None and nop.result() == 0
    assert ring.in_flight == 0


def test_kernel_error_names_the_op_and_target(ring: uring.Ring) -> None:
    bad = closed_fd()
    ring.prep_read(bad, bytearray(8), 0, user_data=5)
    (c,) = ring.completions(1)
    assert c.res == -errno.EBADF
    with pytest.raises(OSError) as info:
        c.result()
    assert info.value.errno == errno.EBADF
    assert f"IORING_OP_READ on fd {bad}" in str(info.value) and info.value.filename is None
    assert isinstance(c.error, OSError) and "EBADF" in repr(c)


def test_errno_picks_the_oserror_subclass(ring: uring.Ring) -> None:
    rd, wr = os.pipe()
    try:
        ring.prep_read(rd, bytearray(8), -1, rw_flags=os.RWF_NOWAIT, user_data=1)
        (c,) = ring.completions(1, timeout=5)
        with pytest.raises(BlockingIOError, match="IORING_OP_READ"):
            c.result()
    finally:
        os.close(rd)
        os.close(wr)


def test_reap_completions_without_waiting(ring: uring.Ring) -> None:
    assert ring.reap_completions() == []
    ring.prep_nop(user_data=3)
    ring.submit()
    got = []
    while not got:
        got = ring.reap_completions()
    assert [c.user_data for c in got] == [3] and isinstance(got[0], Completion)


# -- probe -----------------------------------------------------------------


def test_unsupported_op_is_refused_before_submission(ring: uring.Ring) -> None:
    ring._supported_ops = frozenset({int(abi.IORING_OP_NOP)})  # a kernel without SOCKET
    before = ring.sq_ready
    with pytest.raises(uring.UnsupportedOperation, match="IORING_OP_SOCKET"):
        ring._op(abi.IORING_OP_SOCKET, fd=socket.AF_INET, off=socket.SOCK_STREAM)
    assert ring.sq_ready == before and ring.in_flight == 0
    assert not ring.supports(abi.IORING_OP_SOCKET)


def test_probe_is_taken_from_the_kernel(ring: uring.Ring) -> None:
    assert ring.supports(abi.IORING_OP_NOP)
    assert ring._supported_ops == uring.probe().supported
    assert not ring.supports(255)


# -- chains ----------------------------------------------------------------


def test_link_sets_io_link_on_all_but_the_last(ring: uring.Ring) -> None:
    with ring.link():
        for ud in (1, 2, 3):
            ring.prep_nop(user_data=ud)
    tail = ring.sq_prepared
    flags = [ring.read_sqe((tail - k) % ring.sq_entries).flags for k in (3, 2, 1)]
    assert flags == [abi.IOSQE_IO_LINK, abi.IOSQE_IO_LINK, 0]
    with ring.link(hard=True):
        ring.prep_nop(user_data=4)
        ring.prep_nop(user_data=5)
    assert ring.read_sqe((ring.sq_prepared - 2) % ring.sq_entries).flags == abi.IOSQE_IO_HARDLINK
    assert sorted(c.user_data for c in ring.wait(5)) == [1, 2, 3, 4, 5]


def test_failing_link_cancels_the_rest(ring: uring.Ring, datafile: tuple) -> None:
    fd, _, content = datafile
    untouched = bytearray(b"u" * 16)
    with ring.link():
        ring.prep_nop(user_data=1)
        ring.prep_read(closed_fd(), bytearray(8), 0, user_data=2)   # -EBADF
        ring.prep_read(fd, untouched, 0, user_data=3)
        ring.prep_write(fd, b"never", 0, user_data=4)
    got = {c.user_data: c.res for c in ring.wait(4)}
    assert got == {1: 0, 2: -errno.EBADF, 3: -errno.ECANCELED, 4: -errno.ECANCELED}
    assert untouched == b"u" * 16 and os.pread(fd, 5, 0) == content[:5]


def test_hardlink_goes_on_after_a_failure(ring: uring.Ring, datafile: tuple) -> None:
    fd, _, content = datafile
    buf = bytearray(16)
    with ring.link(hard=True):
        ring.prep_read(closed_fd(), bytearray(8), 0, user_data=1)
        ring.prep_read(fd, buf, 0, user_data=2)
    got = {c.user_data: c.res for c in ring.wait(2)}
    assert got == {1: -errno.EBADF, 2: 16} and bytes(buf) == content[:16]


def test_write_fsync_read_back_chain_with_link_timeout(ring: uring.Ring, tmp_path: object) -> None:
    require_op(abi.IORING_OP_LINK_TIMEOUT)
    path = os.path.join(str(tmp_path), "chain.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        back = bytearray(11)
        with ring.link():
            w = ring.prep_write(fd, b"hello chain", 0)
            s = ring.prep_fsync(fd)
            r = ring.prep_read(fd, back, 0)
            t = ring.prep_link_timeout(5.0)
        got = {c.user_data: c for c in ring.completions(4, timeout=10)}
        assert got[w].result() == 11 and got[s].result() == 0 and got[r].result() == 11
        assert bytes(back) == b"hello chain"
        # The read finished first, so its link timeout was cancelled.
        assert got[t].res == -errno.ECANCELED
    finally:
        os.close(fd)


def test_link_timeout_cancels_a_read_that_never_completes(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_LINK_TIMEOUT)
    rd, wr = os.pipe()
    try:
        with ring.link():
            r = ring.prep_read(rd, bytearray(8), -1)
            t = ring.prep_link_timeout(0.02)
        got = {c.user_data: c.res for c in ring.wait(2, timeout=10)}
        assert got == {r: -errno.ECANCELED, t: -errno.ETIME}
    finally:
        os.close(rd)
        os.close(wr)


def test_a_chain_split_by_a_submit_is_refused() -> None:
    require_uring()
    with uring.Ring(2, sq_full="submit") as ring:
        with pytest.raises(RuntimeError, match="split"):
            with ring.link():
                for ud in range(3):  # the third prep submits the first two
                    ring.prep_nop(user_data=ud)
        ring.wait(3)


# -- memory through the garbage collector ------------------------------------


def test_buffers_and_chain_objects_survive_gc_until_reaped(ring: uring.Ring, tmp_path: object) -> None:
    """Every user reference to the buffers and to the chain's objects is
    dropped and the collector forced before anything completes; the data
    still lands where it should."""
    pipes = [os.pipe() for _ in range(4)]
    path = os.path.join(str(tmp_path), "gc.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    refs = []
    try:
        for i, (rd, _) in enumerate(pipes):
            buf = Buf(6)
            refs.append(weakref.ref(buf))
            ring.prep_read(rd, buf, -1, user_data=100 + i)
        parts = [Buf(b"abc"), Buf(b"defg")]
        refs += [weakref.ref(p) for p in parts]
        back = Buf(7)
        refs.append(weakref.ref(back))
        with ring.link():
            ring.prep_writev(fd, parts, 0, user_data=1)
            ring.prep_readv(fd, [back], 0, user_data=2)
        del buf, parts, back
        ring.submit()
        gc.collect()
        assert all(r() is not None for r in refs)  # the ring holds them
        for i, (_, wr) in enumerate(pipes):
            os.write(wr, b"pipe-%d" % i)
        done = {c.user_data: c for c in ring.completions(6, timeout=10)}
        assert {ud: c.res for ud, c in done.items()} == {100: 6, 101: 6, 102: 6, 103: 6, 1: 7, 2: 7}
        # The completion carries what its request held: the data is there.
        assert [bytes(done[100 + i].request.keep.obj) for i in range(4)] == \
            [b"pipe-%d" % i for i in range(4)]
        assert bytes(done[2].request.keep.buffers[0].obj) == b"abcdefg"
        assert os.pread(fd, 7, 0) == b"abcdefg"
        del done
        gc.collect()
        assert all(r() is None for r in refs)  # and let go once reaped
    finally:
        os.close(fd)
        for rd, wr in pipes:
            os.close(rd)
            os.close(wr)


# -- IOSQE_CQE_SKIP_SUCCESS: records without a CQE to release them ----------------

SKIP = abi.IOSQE_CQE_SKIP_SUCCESS


def test_skip_success_read_is_held_until_release_skipped(ring: uring.Ring) -> None:
    rd, wr = os.pipe()
    try:
        buf = Buf(4)
        ref = weakref.ref(buf)
        ud = ring.prep_read(rd, buf, -1, flags=SKIP)
        del buf
        assert ring.release_skipped() == 0  # not submitted yet: kept
        ring.submit()
        gc.collect()
        assert ref() is not None  # in flight: nothing else holds it
        os.write(wr, b"data")
        # The read completes when its task work runs: at once, except under
        # DEFER_TASKRUN, where only our next io_uring_enter(GETEVENTS) runs
        # it, so a NOP round trip first (and SQPOLL may still be consuming).
        ring.prep_nop(user_data=999)
        assert [c.user_data for c in ring.completions(1, timeout=5)] == [999]
        # No CQE says it is done; a cancel that finds nothing to cancel does.
        ring.prep_cancel(ud, user_data=1000)
        (c,) = ring.completions(1, timeout=5)
        assert (c.user_data, c.res) == (1000, -errno.ENOENT)
        gc.collect()
        assert ref() is not None  # still held: only the caller knows
        assert ring.release_skipped() == 1
        gc.collect()
        assert ref() is None
    finally:
        os.close(rd)
        os.close(wr)


def test_chain_releases_its_skipped_members_with_the_last_cqe(ring: uring.Ring,
                                                               tmp_path: object) -> None:
    """[write(skip) -> fsync(skip) -> read]: the read's CQE comes after both
    others completed, so it releases their records too."""
    fd = os.open(os.path.join(str(tmp_path), "chain.bin"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        data, back = Buf(b"chained"), bytearray(7)
        ref = weakref.ref(data)
        with ring.link():
            ring.prep_write(fd, data, 0, user_data=1, flags=SKIP)
            ring.prep_fsync(fd, user_data=2, flags=SKIP)
            ring.prep_read(fd, back, 0, user_data=3)
        del data
        assert ring.skipped_in_flight == 0 and ring.in_flight == 1
        (c,) = ring.completions(1, timeout=5)
        assert (c.user_data, c.result(), bytes(back)) == (3, 7, b"chained")
        assert c.opcode == abi.IORING_OP_READ and c.request.target == fd  # the read's record
        del c
        gc.collect()
        assert ref() is None and ring.in_flight == 0
        # A closing LINK_TIMEOUT may post before the member it cancels ends:
        # the records go onto that member, not onto the timeout.
        rd, wr = os.pipe()
        try:
            with ring.link():
                ring.prep_write(fd, b"x", 0, user_data=4, flags=SKIP)
                ring.prep_read(rd, bytearray(1), -1, user_data=5)
                ring.prep_link_timeout(5, user_data=6)
            assert ring.skipped_in_flight == 0
            assert ring.held(5).keep[1][0].user_data == 4  # (buf, [the write's record])
            os.write(wr, b"y")
            assert sorted(c.user_data for c in ring.completions(2, timeout=5)) == [5, 6]
        finally:
            os.close(rd)
            os.close(wr)
    finally:
        os.close(fd)


def test_failed_skip_success_request_names_its_op(ring: uring.Ring) -> None:
    bad = closed_fd()
    ud = ring.prep_read(bad, bytearray(8), 0, flags=SKIP)
    (c,) = ring.completions(1, timeout=5)
    assert c.user_data == ud and c.res == -errno.EBADF
    with pytest.raises(OSError, match="IORING_OP_READ") as info:
        c.result()
    assert info.value.errno == errno.EBADF and f"on fd {bad}" in str(info.value)
    assert ring.skipped_in_flight == 0  # a failure CQE is final: released


# -- provided-buffer rings -------------------------------------------------------


def test_buffer_ring_publishes_its_tail_and_the_kernel_consumes(ring: uring.Ring) -> None:
    br = ring.register_buf_ring(group=3, entries=4, size=32)
    try:
        # The tail word (entry 0's resv) says all four buffers are there.
        assert int.from_bytes(bytes(br._ring_map[14:16]), "little") == 4 == br.tail
        assert br.head() == 0
        a, b = socket.socketpair()
        with a, b:
            a.send(b"first")
            ring._op(abi.IORING_OP_RECV, fd=b.fileno(), flags=abi.IOSQE_BUFFER_SELECT,
                     buf_index=3, keep=ring._buffer_group(3))
            (c,) = ring.completions(1, timeout=5)
            assert c.buffer_id is not None and c.result() == 5
            assert bytes(br.buffer(c.buffer_id)[:5]) == b"first"
            assert br.head() == 1  # the kernel took one
            assert br.take(c) == b"first" and br.tail == 5  # and got it back
    finally:
        ring.unregister_buf_ring(3)
    assert not br.registered


def test_buffer_ring_runs_dry_with_enobufs(ring: uring.Ring) -> None:
    br = ring.register_buf_ring(group=1, entries=2, size=8)
    a, b = socket.socketpair()
    with a, b:
        results = []
        for _ in range(3):
            a.send(b"x" * 8)
            ring._op(abi.IORING_OP_RECV, fd=b.fileno(), flags=abi.IOSQE_BUFFER_SELECT,
                     buf_index=1, keep=ring._buffer_group(1))
            results += ring.completions(1, timeout=5)
        assert [c.res for c in results] == [8, 8, -errno.ENOBUFS]
        br.recycle([results[0].buffer_id])  # type: ignore[list-item]
        ring._op(abi.IORING_OP_RECV, fd=b.fileno(), flags=abi.IOSQE_BUFFER_SELECT,
                 buf_index=1, keep=ring._buffer_group(1))
        (c,) = ring.completions(1, timeout=5)
        assert c.buffer_id == results[0].buffer_id and br.take(c) == b"x" * 8


def test_buffer_ring_refuses_bad_arguments(ring: uring.Ring) -> None:
    for entries in (0, 3, 1 << 16):
        with pytest.raises(ValueError, match="power of two"):
            ring.register_buf_ring(group=0, entries=entries, size=16)
    br = ring.register_buf_ring(group=0, entries=2, size=16)
    with pytest.raises(ValueError, match="already"):
        ring.register_buf_ring(group=0, entries=2, size=16)
    with pytest.raises(ValueError, match="not in group"):
        br.recycle([2])
    with pytest.raises(ValueError, match="no buffers are provided for group 9"):
        ring._buffer_group(9)


def test_a_short_read_breaks_the_link(ring: uring.Ring, datafile: tuple) -> None:
    """At end of file a read transfers less than asked: the kernel counts
    that as a failure of the link."""
    fd, _, content = datafile
    tail, after = bytearray(100), bytearray(4)
    with ring.link():
        ring.prep_read(fd, tail, len(content) - 10, user_data=1)  # 10 of 100 bytes
        ring.prep_read(fd, after, 0, user_data=2)
    got = {c.user_data: c.res for c in ring.wait(2)}
    assert got == {1: 10, 2: -errno.ECANCELED} and after == bytes(4)

"""Registration beyond the basics: tagged and sparse tables and their
updates, slots replaced while requests use them, file allocation ranges,
buffer cloning, personalities, restrictions, io-wq affinity and limits,
synchronous cancel, the wait clock, NAPI, ring-less MSG_RING and the query
interface.  Each test checks what the registration does, where that can be
seen."""

from __future__ import annotations

import ctypes
import errno
import gc
import glob
import os
import sys
import tempfile
import threading
import time
import traceback
import weakref
from typing import Any, Callable, List, Tuple

import pytest
from conftest import require_op, require_uring, submit_issued, try_ring

import uring
from uring import abi
from uring.ops.base import AT_FDCWD, c_path

T = 1 << 63  # tags with bit 63 set never meet the ring's own user_data numbers


class Buf(bytearray):
    """A bytearray that can be watched with a weak reference."""


def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run *fn* in a fresh thread (io-wq state is per thread: tests that
    change it must not leave it changed for the rest of the process)."""
    out: List[Any] = []

    def run() -> None:
        try:
            out.append((True, fn()))
        except BaseException as exc:  # pragma: no cover - re-raised below
            out.append((False, exc))

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    ok, value = out[0]
    if not ok:
        raise value
    return value


# -- buffers ---------------------------------------------------------------------------------


def test_buffer_tags_post_when_the_kernel_lets_go(ring: uring.Ring, datafile: tuple) -> None:
    fd, _, content = datafile
    a, b, c = bytearray(100), bytearray(200), bytearray(300)
    assert ring.register_buffers([a, b], tags=[T | 1, T | 2]) == [
        uring.buffers.address_of(a), uring.buffers.address_of(b)]
    assert ring.reap_completions() == []
    assert ring.update_buffers(0, [c], tags=[T | 3]) == 1
    (tag,) = ring.completions(1, timeout=5)  # slot 0's old buffer is released
    assert (tag.user_data, tag.res, tag.request) == (T | 1, 0, None)
    ring.prep_read_fixed(fd, 0, 1000, 1, length=300)  # slot 0 is now c
    assert ring.completions(1, timeout=5)[0].result() == 300
    assert c == content[1000:1300] and a == bytes(100)
    a.extend(b"x")  # no longer pinned: replaced in the table
    with pytest.raises(BufferError):
        b.extend(b"x")
    ring.unregister_buffers()
    tags = ring.completions(2, timeout=5)
    assert sorted(t.user_data for t in tags) == [T | 2, T | 3] and {t.res for t in tags} == {0}
    b.extend(b"x")
    c.extend(b"x")


def test_sparse_buffer_table_filled_by_updates(ring: uring.Ring, datafile: tuple) -> None:
    fd, _, content = datafile
    assert ring.register_buffers_sparse(4) == 4
    assert ring.registered_buffers == 4
    with pytest.raises(ValueError, match="empty"):
        ring.prep_read_fixed(fd, 2, 0, 1, length=10)
    buf = bytearray(64)
    assert ring.update_buffers(2, [buf]) == 1
    ring.prep_read_fixed(fd, 2, 64, 1)
    assert ring.completions(1, timeout=5)[0].result() == 64 and buf == content[64:128]
    assert ring.update_buffers(2, [None]) == 1  # emptied again
    with pytest.raises(ValueError, match="empty"):
        ring.prep_write_fixed(fd, 2, 0, 2)
    buf.extend(b"x")  # unpinned


def test_buffer_registration_arguments_are_checked(ring: uring.Ring,
                                                   pipe: Tuple[int, int]) -> None:
    r, w = pipe
    with pytest.raises(ValueError, match="no buffer table"):
        ring.update_buffers(0, [bytearray(8)])
    with pytest.raises(ValueError, match="tags"):
        ring.register_buffers([bytearray(8)], tags=[1, 2])
    with pytest.raises(ValueError, match="empty slot"):
        ring.register_buffers([None, bytearray(8)], tags=[T | 1, 0])
    with pytest.raises(TypeError):
        ring.register_buffers([b"read-only"])
    ring.register_buffers_sparse(2)
    with pytest.raises(ValueError, match="outside"):
        ring.update_buffers(1, [bytearray(8), bytearray(8)])
    ring.prep_read(r, bytearray(8), -1, T | 5)  # held by the ring from now on
    with pytest.raises(ValueError, match="in flight"):
        ring.update_buffers(0, [bytearray(8)], tags=[T | 5])
    os.write(w, b"x")
    ring.wait(1)
    with pytest.raises(ValueError):
        ring.register_buffers_sparse(0)
    with pytest.raises(OSError) as info:
        ring.register_buffers([bytearray(8)])  # a table is already registered
    assert info.value.errno == errno.EBUSY and "IORING_REGISTER_BUFFERS" in str(info.value)


@pytest.mark.parametrize("how", ["update", "unregister"])
def test_buffer_replaced_while_a_read_fixed_waits(ring: uring.Ring, pipe: Tuple[int, int],
                                                  how: str) -> None:
    """A READ_FIXED on a pipe is in flight when its slot is replaced or the
    table unregistered and our last reference to the buffer is dropped:
    the request still holds it, the data lands in it, nothing crashes, and
    the kernel's tag for the old slot comes only after the read."""
    r, w = pipe
    buf = Buf(4096)
    alive = weakref.ref(buf)
    ring.register_buffers([buf], tags=[T | 1])
    ud = ring.prep_read_fixed(r, 0, -1, 1, length=64)
    submit_issued(ring)  # SQPOLL: the read must have its buffer before the update
    if how == "update":
        ring.update_buffers(0, [bytearray(4096)])
    else:
        ring.unregister_buffers()
    del buf
    gc.collect()
    assert alive() is not None  # held by the request, not by the table
    assert ring.reap_completions() == []  # the kernel still uses the old buffer: no tag yet
    # Churn the allocator: memory freed too early would be handed out again here.
    junk = [bytearray(4096) for _ in range(64)]
    os.write(w, b"data for the original buffer")
    got = ring.completions(2, timeout=5)
    read = next(c for c in got if c.user_data == ud)
    tag = next(c for c in got if c.user_data != ud)
    assert read.result() == 28 and tag.user_data == T | 1
    assert got.index(read) < got.index(tag)
    original = alive()
    assert original is not None and bytes(original[:28]) == b"data for the original buffer"
    assert all(j == bytes(4096) for j in junk)
    del original, read, tag, got
    gc.collect()
    assert alive() is None  # released once the CQE was reaped


def test_clone_buffers_shares_the_registration(ring: uring.Ring, datafile: tuple) -> None:
    fd, _, content = datafile
    a, b = bytearray(32), bytearray(64)
    ring.register_buffers([a, b])
    with uring.Ring(8) as other:
        assert other.clone_buffers(ring) == 2
        other.prep_read_fixed(fd, 1, 200, 1)
        assert other.completions(1, timeout=5)[0].result() == 64 and b == content[200:264]
        ring.unregister_buffers()
        with pytest.raises(BufferError):
            b.extend(b"x")  # still registered in the clone: still pinned
        with pytest.raises(OSError) as info:
            other.clone_buffers(other)
        assert info.value.errno in (errno.EBUSY, errno.EINVAL)
        del info  # its traceback holds the tables
        with uring.Ring(8) as third:
            third.register_buffers_sparse(3)
            assert third.clone_buffers(other, src_offset=1, dst_offset=2, count=1,
                                       replace=True) == 3
            third.prep_read_fixed(fd, 2, 0, 1, length=8)
            assert third.completions(1, timeout=5)[0].result() == 8 and b[:8] == content[:8]
            with pytest.raises(ValueError, match="empty"):
                third.prep_read_fixed(fd, 0, 0, 2)
    b.extend(b"x")  # every ring that had it is closed: unpinned


# -- files -----------------------------------------------------------------------------------


def test_file_tags_post_when_slots_are_replaced(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    r, w = pipe
    assert ring.register_files([r, w, None], tags=[T | 10, T | 11, 0]) == 3
    assert ring.update_files(0, [None, abi.IORING_REGISTER_FILES_SKIP]) == 2
    (tag,) = ring.completions(1, timeout=5)
    assert (tag.user_data, tag.res, tag.request) == (T | 10, 0, None)
    assert ring.update_files(2, [r], tags=[T | 12]) == 1
    buf = bytearray(5)
    os.write(w, b"slot2")
    ring.prep_read(2, buf, -1, 1, fixed=True)
    assert ring.completions(1, timeout=5)[0].result() == 5 and buf == b"slot2"
    ring.unregister_files()
    assert sorted(c.user_data for c in ring.completions(2, timeout=5)) == [T | 11, T | 12]
    with pytest.raises(ValueError, match="empty slot"):
        ring.register_files([None], tags=[T | 1])


def test_file_slot_unregistered_while_a_read_waits(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    r, w = pipe
    ring.register_files([r])
    buf = bytearray(16)
    ring.prep_read(0, buf, -1, 1, fixed=True)
    submit_issued(ring)  # SQPOLL: the read must hold the file before the slot goes
    ring.unregister_files()
    os.close(r)  # neither the table nor our fd: only the request holds the file
    os.write(w, b"still delivered")
    (c,) = ring.completions(1, timeout=5)
    assert c.result() == 15 and buf[:15] == b"still delivered"


def test_file_alloc_range_bounds_allocation(ring: uring.Ring, datafile: tuple) -> None:
    require_op(abi.IORING_OP_FILES_UPDATE)
    fd, _, _ = datafile
    ring.register_files_sparse(10)
    ring.register_file_alloc_range(7, 3)
    ring.prep_files_update(abi.IORING_FILE_INDEX_ALLOC, [fd, fd, fd], user_data=1)
    assert sorted(ring.completions(1, timeout=5)[0].result()) == [7, 8, 9]
    ring.register_file_alloc_range(2, 1)
    ring.prep_files_update(abi.IORING_FILE_INDEX_ALLOC, [fd], user_data=2)
    assert ring.completions(1, timeout=5)[0].result() == [2]
    with pytest.raises(OSError) as info:
        ring.register_file_alloc_range(8, 10)  # beyond the 10-slot table
    assert info.value.errno == errno.EINVAL
    assert "IORING_REGISTER_FILE_ALLOC_RANGE" in str(info.value)


# -- credentials --------------------------------------------------------------------------------


def _personality_child(path: str) -> int:
    """In a forked child: 0 if OPENAT of the root-only *path* fails with
    EACCES as nobody but succeeds with the personality registered as root."""
    with uring.Ring(8) as ring:
        personality = ring.register_personality()
        os.seteuid(65534)
        raw, addr = c_path(path)
        results = []
        for pers in (0, personality):
            ring._op(abi.IORING_OP_OPENAT, fd=AT_FDCWD, addr=addr, op_flags=os.O_RDONLY,
                     personality=pers, keep=raw, target=path)
            (c,) = ring.completions(1, timeout=5)
            results.append(c.res)
        if results[0] != -errno.EACCES:
            return 2
        if results[1] < 0:
            return 3
        if os.read(results[1], 100) != b"root only":
            return 4
        os.close(results[1])
        ring.unregister_personality(personality)
        try:
            ring.unregister_personality(personality)
        except OSError as exc:
            return 0 if exc.errno == errno.EINVAL else 5
        return 6


def test_personality_opens_with_the_registered_credentials() -> None:
    require_op(abi.IORING_OP_OPENAT)
    if os.geteuid() != 0:
        pytest.skip("needs root, to drop to another user")
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        path = os.path.join(d, "secret")
        with open(path, "w") as f:
            f.write("root only")
        os.chmod(path, 0o600)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                code = _personality_child(path)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status), status
        assert os.WEXITSTATUS(status) == 0, f"child failed at step {os.WEXITSTATUS(status)}"


# -- restrictions -------------------------------------------------------------------------------


def test_restrictions_limit_ops_flags_and_registration(pipe: Tuple[int, int]) -> None:
    r, w = pipe
    ring = try_ring(8, flags=abi.IORING_SETUP_R_DISABLED)
    with ring:
        with pytest.raises(uring.RingClosedError):
            ring.prep_nop(1)
        with pytest.raises(ValueError):
            ring.register_restrictions()  # no rule at all
        ring.register_restrictions(
            sqe_ops=[abi.IORING_OP_NOP, abi.IORING_OP_READ],
            register_ops=[abi.IORING_REGISTER_FILES],
            sqe_flags_allowed=abi.IOSQE_IO_LINK,
        )
        ring.enable()
        os.write(w, b"ok")
        buf = bytearray(2)
        ring.prep_nop(1)
        ring.prep_read(r, buf, -1, 2)
        ring.prep_write(w, b"no", -1, 3)  # not an allowed op
        ring.prep_nop(4, flags=abi.IOSQE_ASYNC)  # not an allowed flag
        got = {c.user_data: c for c in ring.completions(4, timeout=5)}
        assert got[1].res == 0 and got[2].result() == 2 and buf == b"ok"
        with pytest.raises(PermissionError, match="IORING_OP_WRITE"):
            got[3].result()
        assert got[4].res == -errno.EACCES
        os.set_blocking(r, False)
        with pytest.raises(BlockingIOError):
            os.read(r, 10)  # the refused write wrote nothing
        ring.register_files([r])  # allowed
        with pytest.raises(PermissionError, match="IORING_REGISTER_BUFFERS"):
            ring.register_buffers([bytearray(8)])
        with pytest.raises(OSError):
            ring.register_restrictions(sqe_ops=[abi.IORING_OP_NOP])  # only while disabled


def test_restrictions_can_require_flags(pipe: Tuple[int, int]) -> None:
    ring = try_ring(8, flags=abi.IORING_SETUP_R_DISABLED)
    with ring:
        ring.register_restrictions(sqe_ops=[abi.IORING_OP_NOP],
                                   sqe_flags_required=abi.IOSQE_ASYNC)
        ring.enable()
        ring.prep_nop(1)
        ring.prep_nop(2, flags=abi.IOSQE_ASYNC)
        got = {c.user_data: c.res for c in ring.completions(2, timeout=5)}
        assert got == {1: -errno.EACCES, 2: 0}


# -- io-wq --------------------------------------------------------------------------------------


def _worker_cpus(owner: int) -> List[str]:
    out = []
    for task in glob.glob("/proc/self/task/*"):
        try:
            with open(task + "/comm") as f:
                comm = f.read().strip()
            if comm != f"iou-wrk-{owner}":
                continue
            with open(task + "/status") as f:
                for line in f:
                    if line.startswith("Cpus_allowed_list:"):
                        out.append(line.split(":", 1)[1].strip())
        except OSError:
            continue  # the worker exited meanwhile
    return out


def test_iowq_affinity_pins_new_workers() -> None:
    require_uring()
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        pytest.skip("needs two CPUs to tell a pinned worker from an unpinned one")
    cpu = allowed[-1]

    def body() -> List[str]:
        with uring.Ring(8) as ring:
            ring.register_iowq_affinity([cpu])
            try:
                ring.prep_nop(1, flags=abi.IOSQE_ASYNC)  # runs on a new io-wq worker
                ring.wait(1)
                return _worker_cpus(threading.get_native_id())
            finally:
                ring.unregister_iowq_affinity()

    cpus = _in_thread(body)
    assert cpus and set(cpus) == {str(cpu)}
    with uring.Ring(8) as ring, pytest.raises(ValueError):
        ring.register_iowq_affinity([])


def test_iowq_max_workers_returns_the_previous_limits() -> None:
    require_uring()

    def body() -> Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int]]:
        with uring.Ring(8) as ring:
            ring.prep_nop(1, flags=abi.IOSQE_ASYNC)  # this thread now has an io-wq
            ring.wait(1)
            first = ring.set_iowq_max_workers(3, 5)
            second = ring.set_iowq_max_workers()  # 0, 0: read only
            third = ring.set_iowq_max_workers(0, 7)  # change one limit
            ring.set_iowq_max_workers(*first)
            return first, second, third

    first, second, third = _in_thread(body)
    assert first[0] > 0 and first[1] > 0  # the defaults
    assert second == (3, 5)
    assert third == (3, 5)


# -- synchronous cancel ------------------------------------------------------------------------------


def test_cancel_sync_cancels_a_waiting_read(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    r, w = pipe
    ud = ring.prep_read(r, bytearray(8), -1, 1)
    submit_issued(ring)  # SQPOLL: nothing to cancel until the thread has issued it
    assert ring.cancel_sync(ud) == 0
    (c,) = ring.completions(1, timeout=5)
    assert c.user_data == ud and c.res == -errno.ECANCELED
    with pytest.raises(FileNotFoundError, match="IORING_REGISTER_SYNC_CANCEL"):
        ring.cancel_sync(ud)  # nothing left to cancel
    ring.prep_read(r, bytearray(8), -1, 2)
    ring.prep_read(r, bytearray(8), -1, 3)
    submit_issued(ring)
    assert ring.cancel_sync(fd=r, all=True, timeout=5) == 2
    got = ring.completions(2, timeout=5)
    assert sorted(c.user_data for c in got) == [2, 3] and {c.res for c in got} == {-errno.ECANCELED}
    with pytest.raises(ValueError):
        ring.cancel_sync()


def test_cancel_sync_by_opcode(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    r, w = pipe
    ring.prep_read(r, bytearray(8), -1, 1)
    submit_issued(ring)
    with pytest.raises(FileNotFoundError):
        ring.cancel_sync(opcode=abi.IORING_OP_RECV)
    assert ring.cancel_sync(opcode=abi.IORING_OP_READ) == 0
    assert ring.completions(1, timeout=5)[0].res == -errno.ECANCELED


# -- eventfd ---------------------------------------------------------------------------------------


def _nonblocking_eventfd() -> int:
    """eventfd(2) with EFD_NONBLOCK; ``os.eventfd`` is 3.10+, so libc on 3.9."""
    make = getattr(os, "eventfd", None)
    if make is not None:
        return int(make(0, os.O_NONBLOCK))
    libc = ctypes.CDLL(None, use_errno=True)
    fd = int(libc.eventfd(0, os.O_NONBLOCK))  # EFD_NONBLOCK is O_NONBLOCK
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


def _eventfd_read(efd: int) -> int:
    """The counter (which the read resets); BlockingIOError while it is 0."""
    return int.from_bytes(os.read(efd, 8), sys.byteorder)


def test_eventfd_signals_and_async_only(ring: uring.Ring) -> None:
    """``IORING_REGISTER_EVENTFD``: every posted CQE bumps the counter;
    ``IORING_REGISTER_EVENTFD_ASYNC``: only CQEs posted from io-wq (an
    ``IOSQE_ASYNC`` request), not those completed inline at submit."""
    efd = _nonblocking_eventfd()
    try:
        ring.register_eventfd(efd)
        ring.prep_nop(1)
        assert [c.user_data for c in ring.wait(1)] == [1]
        assert _eventfd_read(efd) >= 1
        ring.unregister_eventfd()
        ring.register_eventfd(efd, async_only=True)
        ring.prep_nop(2)
        assert [c.user_data for c in ring.wait(1)] == [2]
        with pytest.raises(BlockingIOError):
            _eventfd_read(efd)  # completed inline: no signal
        ring.prep_nop(3, flags=abi.IOSQE_ASYNC)
        assert [c.user_data for c in ring.wait(1)] == [3]
        assert _eventfd_read(efd) >= 1
        ring.unregister_eventfd()
        ring.prep_nop(4)
        ring.prep_nop(5, flags=abi.IOSQE_ASYNC)
        assert sorted(c.user_data for c in ring.wait(2)) == [4, 5]
        with pytest.raises(BlockingIOError):
            _eventfd_read(efd)
    finally:
        os.close(efd)


# -- waiting ---------------------------------------------------------------------------------------


def test_register_clock(ring: uring.Ring) -> None:
    ring.register_clock(time.CLOCK_BOOTTIME)
    ring.register_clock(time.CLOCK_MONOTONIC)
    with pytest.raises(OSError) as info:
        ring.register_clock(time.CLOCK_REALTIME)
    assert info.value.errno == errno.EINVAL and "IORING_REGISTER_CLOCK" in str(info.value)
    ring.register_clock(time.CLOCK_BOOTTIME)
    assert ring.wait(1, timeout=0.01) == []  # a timed wait still times out


def test_napi_settings_round_trip(ring: uring.Ring) -> None:
    try:
        before = ring.register_napi(100, True)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            pytest.skip(f"no NAPI busy poll in this kernel: {exc}")
        raise
    assert before == (0, False, abi.IO_URING_NAPI_TRACKING_INACTIVE)
    assert ring.register_napi(50) == (100, True, abi.IO_URING_NAPI_TRACKING_DYNAMIC)
    assert ring.unregister_napi() == (50, False, abi.IO_URING_NAPI_TRACKING_DYNAMIC)
    assert ring.register_napi(10) == (0, False, abi.IO_URING_NAPI_TRACKING_INACTIVE)


# -- ring-less calls -----------------------------------------------------------------------------------


def test_send_msg_ring_without_a_source_ring(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_MSG_RING)
    try:
        uring.Ring.send_msg_ring(ring, 42, 0xABC)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            pytest.skip(f"IORING_REGISTER_SEND_MSG_RING needs Linux 6.13: {exc}")
        raise
    uring.register.send_msg_ring(ring.fd, -5, T | 7, cqe_flags=0x80)
    got = ring.completions(2, timeout=5)
    assert [(c.user_data, c.res, c.request) for c in got] == [(0xABC, 42, None),
                                                               (T | 7, -5, None)]
    assert got[1].flags == 0x80
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as info:
            uring.register.send_msg_ring(r, 1, 1)  # not a ring
        assert "IORING_REGISTER_SEND_MSG_RING" in str(info.value)
    finally:
        os.close(r)
        os.close(w)


def test_query_opcodes_matches_the_probe(ring: uring.Ring) -> None:
    try:
        q = uring.Ring.query_opcodes()
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            pytest.skip(f"IORING_REGISTER_QUERY needs Linux 6.18: {exc}")
        raise
    probe = ring.probe()
    assert q.request_opcodes == probe.last_op + 1
    assert all(probe.supports(op) for op in range(q.request_opcodes))
    assert q.register_opcodes == abi.IORING_REGISTER_LAST
    assert q.features & ring.params.features == ring.params.features
    assert q.setup_flags & abi.IORING_SETUP_NO_SQARRAY
    assert q.sqe_flags == sum(int(f) for f in abi.IosqeFlags)
    assert q.enter_flags & abi.IORING_ENTER_GETEVENTS
    assert q.query_opcodes >= 1

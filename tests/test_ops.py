"""The first operations, end to end against real files: the effect on disk
or in memory is checked, not only ``res``."""

from __future__ import annotations

import errno
import os

import pytest

import uring
from uring import abi


def test_read(ring: uring.Ring, datafile: tuple) -> None:
    fd, _, content = datafile
    buf = bytearray(1000)
    ring.prep_read(fd, buf, 5000, user_data=1)
    (cqe,) = ring.wait(1)
    assert cqe.res == 1000 and bytes(buf) == content[5000:6000]


def test_read_at_eof_is_short(ring: uring.Ring, datafile: tuple) -> None:
    fd, _, content = datafile
    buf = bytearray(4096)
    ring.prep_read(fd, buf, len(content) - 100, user_data=1)
    ring.prep_read(fd, bytearray(10), len(content) + 5, user_data=2)
    got = {c.user_data: c.res for c in ring.wait(2)}
    assert got == {1: 100, 2: 0}
    assert bytes(buf[:100]) == content[-100:]


def test_read_with_length_and_current_position(ring: uring.Ring, datafile: tuple) -> None:
    fd, _, content = datafile
    os.lseek(fd, 300, os.SEEK_SET)
    buf = bytearray(64)
    ring.prep_read(fd, buf, -1, user_data=1, length=10)  # -1: file position
    (cqe,) = ring.wait(1)
    assert cqe.res == 10 and bytes(buf[:10]) == content[300:310] and buf[10:] == bytes(54)
    assert os.lseek(fd, 0, os.SEEK_CUR) == 310


def test_write_then_fsync(ring: uring.Ring, tmp_path: os.PathLike) -> None:
    path = os.path.join(os.fspath(tmp_path), "w.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        ring.prep_write(fd, b"hello, ring", 100, user_data=1)
        ring.prep_write(fd, memoryview(b"xxABCxx")[2:5], 0, user_data=2)
        got = {c.user_data: c.res for c in ring.wait(2)}
        assert got == {1: 11, 2: 3}
        ring.prep_fsync(fd, user_data=3)
        assert ring.read_sqe((ring.sq_prepared - 1) % ring.sq_entries).fsync_flags == 0
        ring.prep_fsync(fd, user_data=4, datasync=True)
        sqe = ring.read_sqe((ring.sq_prepared - 1) % ring.sq_entries)
        assert sqe.fsync_flags == abi.IORING_FSYNC_DATASYNC  # fdatasync(2)
        assert {c.user_data: c.res for c in ring.wait(2)} == {3: 0, 4: 0}
        with open(path, "rb") as f:
            data = f.read()
        assert data[:3] == b"ABC" and data[100:111] == b"hello, ring" and len(data) == 111
    finally:
        os.close(fd)


def test_readv_writev(ring: uring.Ring, tmp_path: os.PathLike) -> None:
    path = os.path.join(os.fspath(tmp_path), "v.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        ring.prep_writev(fd, [b"abc", bytearray(b"defg"), memoryview(b"hij")], 10, user_data=1)
        assert ring.wait(1)[0].res == 10
        with open(path, "rb") as f:
            assert f.read() == bytes(10) + b"abcdefghij"
        a, b = bytearray(4), bytearray(8)
        ring.prep_readv(fd, [a, b], 9, user_data=2)
        assert ring.wait(1)[0].res == 11
        assert bytes(a) == b"\0abc" and bytes(b[:7]) == b"defghij"
    finally:
        os.close(fd)


def test_read_fixed_write_fixed(ring: uring.Ring, datafile: tuple) -> None:
    fd, path, content = datafile
    bufs = [bytearray(4096), bytearray(8192)]
    addrs = ring.register_buffers(bufs)
    assert len(addrs) == 2 and ring.registered_buffers == 2
    ring.prep_read_fixed(fd, 1, 4096, user_data=1, length=4096, buf_offset=100)
    assert ring.wait(1)[0].res == 4096
    assert bytes(bufs[1][100:4196]) == content[4096:8192]
    bufs[0][:5] = b"FIXED"
    ring.prep_write_fixed(fd, 0, 60000, user_data=2, length=5)
    assert ring.wait(1)[0].res == 5
    assert os.pread(fd, 5, 60000) == b"FIXED"
    with pytest.raises(BufferError):
        bufs[0].extend(b"x")  # pinned while registered
    ring.unregister_buffers()
    bufs[0].extend(b"x")  # released


def test_fixed_buffer_bounds_checked(ring: uring.Ring, datafile: tuple) -> None:
    fd, _, _ = datafile
    with pytest.raises(ValueError, match="not registered"):
        ring.prep_read_fixed(fd, 0, 0, user_data=1, length=10)
    ring.register_buffers([bytearray(100)])
    with pytest.raises(ValueError, match="outside registered buffer"):
        ring.prep_read_fixed(fd, 0, 0, user_data=1, length=101)
    assert ring.sq_ready == 0


def test_registered_files(ring: uring.Ring, datafile: tuple) -> None:
    fd, _, content = datafile
    r, w = os.pipe()
    try:
        assert ring.register_files([r, fd, None]) == 3
        buf = bytearray(16)
        ring.prep_read(1, buf, 10, user_data=1, fixed=True)
        assert ring.wait(1)[0].res == 16 and bytes(buf) == content[10:26]
        # The kernel holds its own reference: closing our fd leaves the slot usable.
        dup = os.dup(fd)
        ring.update_files(2, [dup])
        os.close(dup)
        buf2 = bytearray(8)
        ring.prep_read(2, buf2, 0, user_data=2, fixed=True)
        assert ring.wait(1)[0].res == 8 and bytes(buf2) == content[:8]
        with pytest.raises(ValueError, match="outside the registered table"):
            ring.prep_read(3, buf, 0, user_data=3, fixed=True)
        ring.unregister_files()
    finally:
        os.close(r)
        os.close(w)


def test_read_on_closed_fd_completes_with_ebadf(ring: uring.Ring, tmp_path: os.PathLike) -> None:
    fd = os.open(os.path.join(os.fspath(tmp_path), "x"), os.O_RDWR | os.O_CREAT)
    os.close(fd)
    ring.prep_read(fd, bytearray(10), 0, user_data=1)
    (cqe,) = ring.wait(1)
    assert cqe.res == -errno.EBADF


def test_register_errors_name_the_call(ring: uring.Ring, tmp_path: os.PathLike) -> None:
    fd = os.open(os.path.join(os.fspath(tmp_path), "x"), os.O_RDWR | os.O_CREAT)
    os.close(fd)
    with pytest.raises(OSError) as info:
        ring.register_files([fd])
    assert info.value.errno == errno.EBADF
    assert "IORING_REGISTER_FILES" in str(info.value)


def test_probe() -> None:
    from conftest import require_uring

    require_uring()
    p = uring.probe()
    assert p.supports(abi.IORING_OP_NOP) and abi.IORING_OP_READ in p
    assert p.last_op >= abi.IORING_OP_READ
    assert p.table()["IORING_OP_NOP"] is True
    assert not p.supports(250)


def test_prep_nops_fills_slots_in_order_across_the_wrap(ring: uring.Ring) -> None:
    ring.prep_nop(1000)
    ring.wait(1)  # the tail is now at an odd slot: the next batch wraps
    assert ring.prep_nops(range(64)) == 64
    got = ring.wait(64)
    assert [c.user_data for c in got] == list(range(64))
    assert all(c.res == 0 for c in got)


def test_prep_nops_rewrites_slots_that_held_other_ops(ring: uring.Ring, datafile: tuple) -> None:
    """Slots that held a READ must become whole NOPs again (not a READ with
    a new user_data): each completes with res 0, not a byte count."""
    fd, _, _ = datafile
    bufs = [bytearray(100) for _ in range(64)]
    for i, b in enumerate(bufs):
        ring.prep_read(fd, b, 0, user_data=i)
    assert {c.res for c in ring.wait(64)} == {100}
    ring.prep_nops(range(64))
    assert {c.res for c in ring.wait(64)} == {0}


def test_prep_nops_is_all_or_nothing(ring: uring.Ring) -> None:
    for i in range(60):
        ring.prep_nop(i)
    with pytest.raises(uring.SubmissionQueueFull):
        ring.prep_nops(range(100, 110))
    with pytest.raises(ValueError):
        ring.prep_nops([1, -1])
    with pytest.raises(ValueError):
        ring.prep_nops(range(65))
    assert ring.sq_ready == 60  # nothing half-written was queued
    assert sorted(c.user_data for c in ring.wait(60)) == list(range(60))

"""Linux native AIO against the real kernel (no mocks of the kernel)."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import select
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

import pytest

from uring import linux_aio
from uring.linux_aio import AioContext, io_event, iocb

BLOCK = 4096


class iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


def address_of(m: mmap.mmap) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(m))


def make_eventfd() -> int:
    if sys.version_info >= (3, 10):
        return os.eventfd(0)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.eventfd(ctypes.c_uint(0), ctypes.c_int(0))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(fd)


def _try_direct(directory: Path) -> bool:
    probe = directory / "odirect-probe"
    try:
        fd = os.open(probe, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return False
        raise
    os.close(fd)
    probe.unlink()
    return True


@pytest.fixture
def direct_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on a filesystem that accepts O_DIRECT."""
    if _try_direct(tmp_path):
        yield tmp_path
        return
    if os.path.isdir("/var/tmp"):
        other = Path(tempfile.mkdtemp(dir="/var/tmp"))
        try:
            if _try_direct(other):
                yield other
                return
        finally:
            for child in other.iterdir():
                child.unlink()
            other.rmdir()
    pytest.skip("no filesystem here accepts O_DIRECT (tmp_path and /var/tmp refuse it)")


@pytest.fixture
def ctx() -> Iterator[AioContext]:
    with AioContext(64) as context:
        yield context


def open_direct(path: Path, size: int = 0) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
    if size:
        os.ftruncate(fd, size)
    return fd


def on_disk(path: Path, length: int, offset: int) -> bytes:
    """Read back through a buffered descriptor (O_DIRECT would need an
    aligned buffer; a direct write invalidates the page cache)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def wait_all(context: AioContext, n: int) -> List[Tuple[int, int, int]]:
    events: List[Tuple[int, int, int]] = []
    while len(events) < n:
        events += context.getevents(1, n - len(events), 10.0)
    return events


# -- (a) layout ---------------------------------------------------------------


def test_struct_sizes() -> None:
    assert ctypes.sizeof(iocb) == 64
    assert ctypes.sizeof(io_event) == 32
    assert ctypes.sizeof(linux_aio.aio_ring) == 32


def test_iocb_offsets() -> None:
    assert iocb.aio_data.offset == 0
    assert iocb.aio_lio_opcode.offset == 16
    assert iocb.aio_reqprio.offset == 18
    assert iocb.aio_fildes.offset == 20
    assert iocb.aio_buf.offset == 24
    assert iocb.aio_nbytes.offset == 32
    assert iocb.aio_offset.offset == 40
    assert iocb.aio_reserved2.offset == 48
    assert iocb.aio_flags.offset == 56
    assert iocb.aio_resfd.offset == 60
    if sys.byteorder == "little":
        assert (iocb.aio_key.offset, iocb.aio_rw_flags.offset) == (8, 12)
    else:
        assert (iocb.aio_rw_flags.offset, iocb.aio_key.offset) == (8, 12)


def test_io_event_and_ring_offsets() -> None:
    assert [io_event.data.offset, io_event.obj.offset, io_event.res.offset, io_event.res2.offset] == [
        0,
        8,
        16,
        24,
    ]
    ring = linux_aio.aio_ring
    assert [ring.head.offset, ring.tail.offset, ring.magic.offset, ring.header_length.offset] == [
        8,
        12,
        16,
        28,
    ]


def test_constants() -> None:
    assert linux_aio.IOCB_CMD_PREAD == 0
    assert linux_aio.IOCB_CMD_PWRITE == 1
    assert linux_aio.IOCB_CMD_FSYNC == 2
    assert linux_aio.IOCB_CMD_FDSYNC == 3
    assert linux_aio.IOCB_CMD_POLL == 5
    assert linux_aio.IOCB_CMD_NOOP == 6
    assert linux_aio.IOCB_CMD_PREADV == 7
    assert linux_aio.IOCB_CMD_PWRITEV == 8
    assert linux_aio.IOCB_FLAG_RESFD == 1
    assert linux_aio.IOCB_FLAG_IOPRIO == 2
    assert linux_aio.AIO_RING_MAGIC == 0xA10A10A1


def test_syscall_numbers() -> None:
    assert linux_aio.syscall_numbers("x86_64") == (206, 207, 208, 209, 210)
    assert linux_aio.syscall_numbers("generic") == (0, 1, 4, 2, 3)
    assert linux_aio.aio_abi("aarch64", 8) == "generic"
    assert linux_aio.aio_abi("riscv64", 8) == "generic"
    assert linux_aio.aio_abi("loongarch64", 8) == "generic"
    assert linux_aio.aio_abi("armv7l", 4) == "arm"
    assert linux_aio.aio_abi("i686", 4) == "i386"
    assert linux_aio.aio_abi("ppc64le", 8) == "ppc64"
    assert linux_aio.aio_abi("s390x", 8) == "s390x"
    assert linux_aio.aio_abi("x86_64", 8) == "x86_64"


def test_ring_header(ctx: AioContext) -> None:
    header = linux_aio.aio_ring.from_address(ctx.ctx)
    assert header.magic == linux_aio.AIO_RING_MAGIC
    assert header.nr >= 64
    assert header.header_length == 32
    assert header.head == header.tail == 0


# -- (b) pwrite then pread, O_DIRECT -----------------------------------------


def test_pwrite_then_pread_direct(direct_dir: Path, ctx: AioContext) -> None:
    fd = open_direct(direct_dir / "data", 4 * BLOCK)
    out = mmap.mmap(-1, 2 * BLOCK)
    back = mmap.mmap(-1, 2 * BLOCK)
    try:
        payload = bytes(range(256)) * (2 * BLOCK // 256)
        out[:] = payload
        w = iocb()
        AioContext.prep_pwrite(w, fd, address_of(out), 2 * BLOCK, BLOCK, data=0x1234)
        assert ctx.submit([w]) == 1
        assert wait_all(ctx, 1) == [(0x1234, 2 * BLOCK, 0)]
        assert on_disk(direct_dir / "data", 2 * BLOCK, BLOCK) == payload
        assert on_disk(direct_dir / "data", BLOCK, 0) == bytes(BLOCK)

        r = iocb()
        AioContext.prep_pread(r, fd, address_of(back), 2 * BLOCK, BLOCK, data=0xFFFF_FFFF_FFFF_FFFF)
        assert ctx.submit([r]) == 1
        assert wait_all(ctx, 1) == [(0xFFFF_FFFF_FFFF_FFFF, 2 * BLOCK, 0)]
        assert back[:] == payload

        s = iocb()
        AioContext.prep_fdsync(s, fd, data=7)
        assert ctx.submit([s]) == 1
        assert wait_all(ctx, 1) == [(7, 0, 0)]
    finally:
        os.close(fd)
        out.close()
        back.close()


# -- (c) preadv --------------------------------------------------------------


def test_preadv_two_iovecs(direct_dir: Path, ctx: AioContext) -> None:
    content = b"".join(bytes([i]) * BLOCK for i in range(1, 5))
    (direct_dir / "v").write_bytes(content)
    fd = open_direct(direct_dir / "v")
    first = mmap.mmap(-1, BLOCK)
    second = mmap.mmap(-1, 2 * BLOCK)
    vecs = (iovec * 2)(iovec(address_of(first), BLOCK), iovec(address_of(second), 2 * BLOCK))
    try:
        cb = iocb()
        AioContext.prep_preadv(cb, fd, ctypes.addressof(vecs), 2, BLOCK, data=42)
        assert cb.aio_lio_opcode == linux_aio.IOCB_CMD_PREADV
        assert ctx.submit([cb]) == 1
        assert wait_all(ctx, 1) == [(42, 3 * BLOCK, 0)]
        assert first[:] == content[BLOCK : 2 * BLOCK]
        assert second[:] == content[2 * BLOCK : 4 * BLOCK]
    finally:
        os.close(fd)
        first.close()
        second.close()


def test_pwritev_two_iovecs(direct_dir: Path, ctx: AioContext) -> None:
    fd = open_direct(direct_dir / "w")
    a = mmap.mmap(-1, BLOCK)
    b = mmap.mmap(-1, BLOCK)
    a[:] = b"a" * BLOCK
    b[:] = b"b" * BLOCK
    vecs = (iovec * 2)(iovec(address_of(a), BLOCK), iovec(address_of(b), BLOCK))
    try:
        cb = iocb()
        AioContext.prep_pwritev(cb, fd, ctypes.addressof(vecs), 2, 0, data=3)
        assert ctx.submit([cb]) == 1
        assert wait_all(ctx, 1) == [(3, 2 * BLOCK, 0)]
        assert on_disk(direct_dir / "w", 2 * BLOCK, 0) == b"a" * BLOCK + b"b" * BLOCK
    finally:
        os.close(fd)
        a.close()
        b.close()


# -- (d) peek: completions from the ring, no system call --------------------


def test_peek_reaps_from_ring_without_syscall(
    direct_dir: Path, ctx: AioContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = direct_dir / "p"
    path.write_bytes(b"z" * BLOCK)
    fd = open_direct(path)
    efd = make_eventfd()
    buf = mmap.mmap(-1, BLOCK)
    try:
        cb = iocb()
        AioContext.prep_pread(cb, fd, address_of(buf), BLOCK, 0, data=99)
        AioContext.set_eventfd(cb, efd)
        assert cb.aio_flags == linux_aio.IOCB_FLAG_RESFD and cb.aio_resfd == efd
        assert ctx.submit([cb]) == 1
        readable, _, _ = select.select([efd], [], [], 10.0)
        assert readable == [efd], "the kernel never signalled the eventfd"
        assert int.from_bytes(os.read(efd, 8), sys.byteorder) == 1

        header = linux_aio.aio_ring.from_address(ctx.ctx)
        assert (header.tail - header.head) % header.nr == 1

        # Any system call from here on would be a failure.
        real = linux_aio._syscall

        def forbidden(*args: object) -> int:
            raise AssertionError(f"peek made a system call {args!r}")

        monkeypatch.setattr(linux_aio, "_syscall", forbidden)
        assert ctx.peek(8) == [(99, BLOCK, 0)]
        assert ctx.peek(8) == []
        monkeypatch.setattr(linux_aio, "_syscall", real)

        assert header.head == header.tail
        assert ctx.getevents(0, 8, 0) == []
        assert buf[:] == b"z" * BLOCK
    finally:
        os.close(efd)
        os.close(fd)
        buf.close()


def test_peek_respects_max_nr_and_wraps(direct_dir: Path) -> None:
    path = direct_dir / "q"
    path.write_bytes(b"".join(bytes([i]) * BLOCK for i in range(8)))
    fd = open_direct(path)
    bufs = [mmap.mmap(-1, BLOCK) for _ in range(8)]
    try:
        with AioContext(4) as context:
            nr = linux_aio.aio_ring.from_address(context.ctx).nr
            seen: List[int] = []
            # Enough rounds to go around the ring (nr entries) at least twice.
            for round_ in range(2 * nr // 3 + 2):
                cbs = [iocb() for _ in range(3)]
                for i, cb in enumerate(cbs):
                    AioContext.prep_pread(cb, fd, address_of(bufs[i]), BLOCK, i * BLOCK, data=round_ * 3 + i)
                assert context.submit(cbs) == 3
                got: List[Tuple[int, int, int]] = []
                while len(got) < 3:
                    peeked = context.peek(2)
                    assert len(peeked) <= 2
                    got += peeked
                    if len(got) < 3 and not peeked:
                        got += context.getevents(1, 3 - len(got), 10.0)
                assert all(res == BLOCK for _, res, _ in got)
                seen += [data for data, _, _ in got]
            assert sorted(seen) == list(range(len(seen)))
    finally:
        os.close(fd)
        for m in bufs:
            m.close()


# -- (e) many requests, refilled queue ---------------------------------------


def test_many_reads_complete_exactly_once(direct_dir: Path) -> None:
    size = 1 << 20
    blocks = size // BLOCK
    path = direct_dir / "big"
    content = b"".join(i.to_bytes(4, "little") * (BLOCK // 4) for i in range(blocks))
    path.write_bytes(content)
    fd = open_direct(path)
    total, depth = 200, 64
    buffers: Dict[int, mmap.mmap] = {}
    cbs: Dict[int, iocb] = {}
    done: Dict[int, int] = {}
    try:
        with AioContext(depth) as context:
            next_id = 0
            while len(done) < total:
                batch: List[iocb] = []
                while next_id < total and len(buffers) + len(batch) < depth:
                    block = (next_id * 37) % blocks
                    m = mmap.mmap(-1, BLOCK)
                    cb = iocb()
                    AioContext.prep_pread(cb, fd, address_of(m), BLOCK, block * BLOCK, data=next_id)
                    buffers[next_id], cbs[next_id] = m, cb
                    batch.append(cb)
                    next_id += 1
                submitted = context.submit(batch) if batch else 0
                for cb in batch[submitted:]:  # not seen by the kernel: retry later
                    rid = cb.aio_data
                    buffers.pop(rid).close()
                    del cbs[rid]
                    next_id = min(next_id, rid)
                events = context.peek(depth) or context.getevents(1, depth, 10.0)
                for data, res, res2 in events:
                    assert data not in done, f"request {data} completed twice"
                    assert (res, res2) == (BLOCK, 0)
                    block = (data * 37) % blocks
                    assert buffers[data][:] == content[block * BLOCK : (block + 1) * BLOCK]
                    done[data] = res
                    buffers.pop(data).close()
                    del cbs[data]
            assert sorted(done) == list(range(total))
            assert context.getevents(0, depth, 0) == []
    finally:
        os.close(fd)
        for m in buffers.values():
            m.close()


# -- (f) errors --------------------------------------------------------------


def _closed_fd() -> int:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    return r


def test_bad_fd_rejected_at_submit(ctx: AioContext) -> None:
    buf = mmap.mmap(-1, BLOCK)
    try:
        cb = iocb()
        AioContext.prep_pread(cb, _closed_fd(), address_of(buf), BLOCK, 0)
        with pytest.raises(OSError) as info:
            ctx.submit([cb])
        assert info.value.errno == errno.EBADF
        assert "io_submit" in str(info.value)
        assert ctx.getevents(0, 8, 0) == []
    finally:
        buf.close()


def test_misaligned_direct_read_is_einval(direct_dir: Path, ctx: AioContext) -> None:
    path = direct_dir / "m"
    path.write_bytes(b"x" * BLOCK)
    fd = open_direct(path)
    buf = mmap.mmap(-1, BLOCK)
    try:
        cb = iocb()
        AioContext.prep_pread(cb, fd, address_of(buf), 100, 0, data=5)
        try:
            assert ctx.submit([cb]) == 1
        except OSError as exc:
            assert exc.errno == errno.EINVAL
        else:
            events = wait_all(ctx, 1)
            if events == [(5, 100, 0)]:
                pytest.skip("this filesystem does not enforce O_DIRECT alignment")
            assert events == [(5, -errno.EINVAL, 0)]
    finally:
        os.close(fd)
        buf.close()


def test_getevents_timeout_returns_empty(ctx: AioContext) -> None:
    assert ctx.getevents(1, 4, 0.01) == []
    assert ctx.peek(4) == []


def test_io_setup_error() -> None:
    with pytest.raises(ValueError):
        AioContext(0)
    with pytest.raises(OSError) as info:
        AioContext(1 << 30)  # beyond /proc/sys/fs/aio-max-nr
    assert info.value.errno in (errno.EAGAIN, errno.EINVAL, errno.ENOMEM)


# -- (g) close ----------------------------------------------------------------


@pytest.mark.parametrize(
    "use",
    [
        lambda c: c.submit([iocb()]),
        lambda c: c.getevents(0, 1, 0),
        lambda c: c.peek(1),
        lambda c: c.ctx,
        lambda c: c.__enter__(),
    ],
    ids=["submit", "getevents", "peek", "ctx", "enter"],
)
def test_use_after_close_raises(use: Callable[[AioContext], object]) -> None:
    context = AioContext(4)
    context.close()
    assert context.closed
    context.close()  # idempotent
    with pytest.raises(ValueError):
        use(context)


def test_close_waits_for_in_flight_io(direct_dir: Path) -> None:
    path = direct_dir / "c"
    path.write_bytes(b"c" * (16 * BLOCK))
    fd = open_direct(path)
    buf = mmap.mmap(-1, 16 * BLOCK)
    try:
        context = AioContext(4)
        cb = iocb()
        AioContext.prep_pread(cb, fd, address_of(buf), 16 * BLOCK, 0)
        assert context.submit([cb]) == 1
        context.close()  # returns only once the kernel is done with buf
        assert buf[:] == b"c" * (16 * BLOCK)
        with pytest.raises(ValueError):
            with context:
                pass
    finally:
        os.close(fd)
        buf.close()

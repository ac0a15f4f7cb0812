"""The block layer, one suite for every engine and both cache modes, on
real files (O_DIRECT included) under the real kernel."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import random
import threading
import time
from typing import Iterator, List, Mapping

import pytest
from conftest import require_uring

from uring import block
from uring.block import BlockRequest, IoFaults, Op

ENGINES = ["io_uring", "native", "threads"]
CACHES = ["writeback", "none"]
MiB = 1 << 20


@pytest.fixture
def image_path(tmp_path: "os.PathLike[str]") -> str:
    path = os.path.join(tmp_path, "disk.img")
    with open(path, "wb") as f:
        f.write(os.urandom(4 * MiB))
    return path


def needs(aio: str) -> None:
    if aio == "io_uring":
        require_uring()


@pytest.fixture(params=[(a, c) for a in ENGINES for c in CACHES],
                ids=[f"{a}-{c}" for a in ENGINES for c in CACHES])
def opened(request: pytest.FixtureRequest, image_path: str) -> Iterator[block.Image]:
    aio, cache = request.param
    needs(aio)
    with block.open_image(image_path, aio=aio, cache=cache, queue_depth=16) as img:
        yield img


def on_disk(path: str, length: int, offset: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


# --- the basic contract ------------------------------------------------------------


def test_write_is_what_pread_sees_and_back(opened: block.Image) -> None:
    data = os.urandom(3 * 4096)
    assert opened.pwrite(data, 8192) == len(data)
    assert on_disk(opened.path, len(data), 8192) == data
    fd = os.open(opened.path, os.O_WRONLY)
    other = os.urandom(4096)
    os.pwrite(fd, other, 65536)
    os.fsync(fd)
    os.close(fd)
    assert opened.pread(4096, 65536) == other


def test_vectored_large_and_eof_crossing(opened: block.Image) -> None:
    size = opened.size
    parts = [os.urandom(n) for n in (4096, 8192, 512 * 1024)]
    assert opened.pwritev(parts, MiB) == sum(map(len, parts))
    bufs = [bytearray(len(p)) for p in parts]
    assert opened.preadv(bufs, MiB) == sum(map(len, parts))
    assert bufs == [bytearray(p) for p in parts]
    big = os.urandom(3 * MiB)  # several MiB in one request
    opened.pwrite(big, 0)
    assert opened.pread(3 * MiB, 0) == big
    # A read across end of file: the kernel returns a short count, the rest
    # of the buffer is zero-filled (as QEMU does for raw images).
    tail = opened.pread(8192, size - 4096)
    assert tail[:4096] == on_disk(opened.path, 4096, size - 4096)
    assert tail[4096:] == bytes(4096)


def test_many_in_flight_from_one_thread(opened: block.Image) -> None:
    expected = on_disk(opened.path, 4 * MiB, 0)
    rng = random.Random(7)
    offsets = [rng.randrange(0, 4 * MiB // 4096) * 4096 for _ in range(300)]
    bufs = [bytearray(4096) for _ in offsets]
    done: List[BlockRequest] = []
    reqs = [opened.submit_read(b, off, done.append) for b, off in zip(bufs, offsets)]
    assert opened.engine.in_flight <= 16
    opened.wait()
    assert sorted(map(id, done)) == sorted(map(id, reqs))  # each callback once
    for b, off in zip(bufs, offsets):
        assert b == expected[off: off + 4096]


def test_flush_discard_write_zeroes(opened: block.Image) -> None:
    opened.pwrite(os.urandom(64 * 1024), 0)
    opened.flush()
    blocks_before = os.stat(opened.path).st_blocks
    opened.discard(0, 64 * 1024)
    assert opened.pread(64 * 1024, 0) == bytes(64 * 1024)
    assert os.stat(opened.path).st_blocks < blocks_before  # a real hole
    opened.pwrite(b"\xff" * 8192, 131072)
    opened.write_zeroes(131072, 8192)
    assert on_disk(opened.path, 8192, 131072) == bytes(8192)
    assert opened.size == 4 * MiB  # neither changes the size


def test_bad_input_is_refused_before_the_kernel(opened: block.Image) -> None:
    with pytest.raises(TypeError):
        opened.submit_read(b"read-only", 0)
    with pytest.raises(ValueError):
        opened.submit_read(bytearray(10), -1)
    assert opened.engine.in_flight == 0 and not opened.engine.pending


def test_closed_image_refuses_io(image_path: str) -> None:
    img = block.open_image(image_path, aio="threads")
    img.close()
    img.close()  # idempotent
    with pytest.raises(ValueError):
        img.pread(1, 0)


def test_callbacks_run_on_the_submitting_thread(opened: block.Image) -> None:
    seen = []
    opened.submit_read(bytearray(4096), 0, lambda r: seen.append(threading.get_ident()))
    opened.wait()
    assert seen == [threading.get_ident()]


def test_kernel_errors_name_the_operation(image_path: str, aio: str = "threads") -> None:
    for engine in ENGINES:
        needs(engine)
        with block.open_image(image_path, aio=engine, read_only=True) as img:
            req = img.engine  # writing through a read-only fd: EBADF from the kernel
            r = BlockRequest(Op.WRITE, 0, 4, [memoryview(b"abcd")])
            req.enqueue(r)
            img.engine.drain()
            assert isinstance(r.error, OSError) and r.error.errno == errno.EBADF
            assert "write of 4 bytes at offset 0" in str(r.error)


# --- QEMU's behaviours ----------------------------------------------------------------


@pytest.mark.parametrize("aio", ENGINES)
def test_plugged_requests_go_in_one_submit(image_path: str, aio: str) -> None:
    needs(aio)
    with block.open_image(image_path, aio=aio, queue_depth=32) as img:
        calls = img.engine.submit_calls
        with img.plugged():
            reqs = [img.submit_read(bytearray(4096), i * 4096) for i in range(10)]
            assert img.engine.submit_calls == calls and img.engine.in_flight == 0
        assert img.engine.submit_calls == calls + 1
        img.wait()
        assert all(r.value() == 4096 for r in reqs)


@pytest.mark.parametrize("aio", ENGINES)
def test_plug_submits_early_at_max_batch(image_path: str, aio: str) -> None:
    """QEMU's aio-max-batch: a plug holds at most max_batch requests; then
    they go, so the device starts while the rest are prepared."""
    needs(aio)
    with block.open_image(image_path, aio=aio, queue_depth=32, max_batch=4) as img:
        calls = img.engine.submit_calls
        with img.plugged():
            reqs = [img.submit_read(bytearray(4096), i * 4096) for i in range(10)]
            assert img.engine.submit_calls == calls + 2 and img.engine.in_flight == 8
        assert img.engine.submit_calls == calls + 3
        img.wait()
        assert all(r.value() == 4096 for r in reqs)


@pytest.mark.parametrize("aio", ENGINES)
def test_beyond_queue_depth_waits_in_software(image_path: str, aio: str) -> None:
    needs(aio)
    with block.open_image(image_path, aio=aio, queue_depth=4) as img:
        reqs = [img.submit_read(bytearray(4096), i * 4096) for i in range(50)]
        assert img.engine.in_flight == 4 and len(img.engine.pending) == 46
        img.wait()
        expected = on_disk(image_path, 50 * 4096, 0)
        assert b"".join(bytes(r.views[0]) for r in reqs) == expected


@pytest.mark.parametrize("aio", ENGINES)
@pytest.mark.parametrize("cache", CACHES)
def test_short_transfers_are_resubmitted_for_the_rest(image_path: str, aio: str,
                                                       cache: str) -> None:
    needs(aio)
    faults = IoFaults(short_every=1, granule=4096)
    with block.open_image(image_path, aio=aio, cache=cache, faults=faults) as img:
        data = os.urandom(64 * 1024)
        img.pwrite(data, 4096)
        buf = bytearray(64 * 1024)
        img.readinto(buf, 4096)
        assert buf == data and on_disk(image_path, len(data), 4096) == data
        assert faults.shortened >= 8 and img.engine.resubmitted >= 8


@pytest.mark.parametrize("aio", ENGINES)
def test_write_without_progress_is_enospc(image_path: str, aio: str) -> None:
    needs(aio)
    with block.open_image(image_path, aio=aio, faults=IoFaults(stall_writes=1)) as img:
        with pytest.raises(OSError) as info:
            img.pwrite(b"x" * 4096, 0)
        assert info.value.errno == errno.ENOSPC
        assert img.pwrite(b"y" * 4096, 0) == 4096  # only the stalled one failed


@pytest.mark.parametrize("aio", ENGINES)
@pytest.mark.parametrize("err", [errno.EAGAIN, errno.EINTR])
def test_eagain_and_eintr_results_are_retried(image_path: str, aio: str, err: int) -> None:
    needs(aio)
    faults = IoFaults(error_every=2, error=err)
    with block.open_image(image_path, aio=aio, faults=faults) as img:
        reqs = [img.submit_read(bytearray(4096), i * 4096) for i in range(20)]
        img.wait()
        assert all(r.value() == 4096 for r in reqs)
        assert faults.errors >= 10 and img.engine.resubmitted >= 10


def test_refused_io_uring_submit_marks_blocked_and_recovers(image_path: str) -> None:
    """EAGAIN from io_uring_enter itself (the kernel's "no memory for
    requests now"): the SQEs stay in the ring, the queue is marked blocked
    and submitted again from the completion path."""
    require_uring()
    from uring.faults import FaultInjector

    kernel = FaultInjector()
    with block.open_image(image_path, aio="io_uring", queue_depth=8, kernel=kernel) as img:
        kernel.inject("enter", errno.EAGAIN, times=2)
        reqs = [img.submit_read(bytearray(4096), i * 4096) for i in range(30)]
        assert img.engine.blocked
        img.wait()
        assert [r.value() for r in reqs] == [4096] * 30


# --- O_DIRECT alignment ------------------------------------------------------------------


@pytest.mark.parametrize("aio", ENGINES)
def test_o_direct_never_sees_misaligned_io(image_path: str, aio: str) -> None:
    needs(aio)
    with block.open_image(image_path, aio=aio, cache="none") as img:
        assert img.request_alignment >= 512 and img.memory_alignment >= 1
        assert fcntl.fcntl(img.fd, fcntl.F_GETFL) & os.O_DIRECT
        backing = bytearray(3 * 4096 + 1)
        misaligned_buf = memoryview(backing)[1: 1 + 8192]  # aligned range, odd address
        img.readinto(misaligned_buf, 8192)
        assert misaligned_buf == on_disk(image_path, 8192, 8192)
        data = os.urandom(1000)  # misaligned offset and length: read-modify-write
        img.pwrite(data, 4096 * 5 + 100)
        assert on_disk(image_path, 1000, 4096 * 5 + 100) == data
        assert img.pread(333, 4096 * 5 + 101) == data[1:334]
        assert img.bounced >= 3 and img.rmw >= 1


def test_concurrent_read_modify_writes_lose_nothing(image_path: str) -> None:
    """Misaligned writes into the same blocks, all in flight together with
    aligned ones: each read-modify-write is serialised, so the result is as
    if they ran one after the other."""
    for aio in ENGINES:
        needs(aio)
        with block.open_image(image_path, aio=aio, cache="none", queue_depth=8) as img:
            expected = bytearray(on_disk(image_path, 64 * 1024, 0))
            rng = random.Random(aio)
            for _ in range(40):
                off, n = rng.randrange(0, 60000), rng.randrange(1, 3000)
                data = os.urandom(n)
                expected[off: off + n] = data
                img.submit_write(data, off)
            img.wait()
            assert on_disk(image_path, 64 * 1024, 0) == bytes(expected)


# --- integrity across engines, with faults -----------------------------------------------


def _requests(rng: random.Random, size: int) -> Iterator["tuple[int, List[bytes]]"]:
    """Aligned, misaligned, vectored, large and EOF-adjacent writes."""
    yield 0, [os.urandom(4096)]
    yield 12345, [os.urandom(777)]
    yield 3 * 4096, [os.urandom(4096), os.urandom(8192), os.urandom(512)]
    yield MiB + 1, [os.urandom(2 * MiB + 3)]
    yield size - 4096, [os.urandom(4096)]
    for _ in range(30):
        off = rng.randrange(0, size - 70000)
        yield off, [os.urandom(rng.randrange(1, 30000)) for _ in range(rng.randrange(1, 4))]


@pytest.mark.parametrize("writer,reader", [("io_uring", "native"), ("native", "threads"),
                                           ("threads", "io_uring")])
@pytest.mark.parametrize("cache", CACHES)
def test_integrity_across_engines_with_faults(image_path: str, writer: str, reader: str,
                                              cache: str) -> None:
    needs(writer)
    needs(reader)
    size = 4 * MiB
    expected = bytearray(on_disk(image_path, size, 0))
    rng = random.Random(f"{writer}{reader}{cache}")
    faults = IoFaults(short_every=3, error_every=5, granule=4096)
    with block.open_image(image_path, aio=writer, cache=cache, faults=faults,
                          queue_depth=8) as img:
        for off, parts in _requests(rng, size):
            joined = b"".join(parts)
            expected[off: off + len(joined)] = joined
            img.submit_writev(parts, off)  # all in flight together
            img.wait()  # in order: overlapping writes must land as issued
        img.flush()
        assert faults.shortened and faults.errors
    with block.open_image(image_path, aio=reader, cache=cache,
                          faults=IoFaults(short_every=2, error_every=7, error=errno.EINTR,
                                          granule=4096)) as img:
        chunks = [bytearray(256 * 1024) for _ in range(size // (256 * 1024))]
        reqs = [img.submit_read(c, i * len(c)) for i, c in enumerate(chunks)]
        img.wait()
        assert all(r.value() == len(c) for r, c in zip(reqs, chunks))
        got = b"".join(chunks)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(expected).hexdigest()
    assert hashlib.sha256(on_disk(image_path, size, 0)).digest() == hashlib.sha256(expected).digest()


# --- engine choice and io_uring features ---------------------------------------------------


def test_auto_picks_io_uring_and_says_so(image_path: str) -> None:
    require_uring()
    with block.open_image(image_path, aio="auto") as img:
        assert img.aio == "io_uring" and "io_uring" in img.auto_reason


def test_options_of_other_engines_are_refused(image_path: str) -> None:
    with pytest.raises(ValueError, match="sqpoll is an io_uring option"):
        block.open_image(image_path, aio="threads", sqpoll=True)
    with pytest.raises(ValueError, match="cache must be one of"):
        block.open_image(image_path, cache="bogus")


@pytest.mark.parametrize("features", [dict(fixed_files=True), dict(sqpoll=True),
                                      dict(fixed_files=True, sqpoll=True)],
                         ids=["fixed_files", "sqpoll", "both"])
def test_io_uring_features_move_the_right_bytes(image_path: str, features: dict) -> None:
    require_uring()
    with block.open_image(image_path, aio="io_uring", cache="none", **features) as img:
        expected = on_disk(image_path, MiB, 0)
        import mmap

        arena = mmap.mmap(-1, MiB)
        reqs = [img.submit_read(memoryview(arena)[i * 4096:(i + 1) * 4096], i * 4096)
                for i in range(256)]
        img.wait()
        assert all(r.value() == 4096 for r in reqs)
        assert arena[:] == expected
        del reqs
        arena.close()


def test_fixed_buffers_use_read_fixed(image_path: str) -> None:
    require_uring()
    import mmap

    arena = mmap.mmap(-1, 256 * 1024)
    with block.open_image(image_path, aio="io_uring", cache="none", fixed_buffers=True) as img:
        img.register_buffers([arena])
        view = memoryview(arena)
        img.readinto(view[4096: 3 * 4096], 8192)
        img.pwrite(view[4096: 2 * 4096], 0)
        assert img.engine.fixed_buffer_ops == 2  # type: ignore[attr-defined]
        assert arena[4096: 3 * 4096] == on_disk(image_path, 8192, 8192)
        assert on_disk(image_path, 4096, 0) == arena[4096: 2 * 4096]
        view.release()


def test_iopoll_without_poll_queues_says_so(image_path: str) -> None:
    require_uring()
    try:
        img = block.open_image(image_path, aio="io_uring", cache="none", iopoll=True)
    except OSError as exc:
        assert exc.errno == errno.EOPNOTSUPP and "poll queues" in str(exc)
        return
    with img:  # a device with poll queues: then it must simply work
        assert img.pread(4096, 0) == on_disk(image_path, 4096, 0)


def test_cache_modes_map_to_open_flags_and_flush(image_path: str) -> None:
    modes: dict = {"writeback": 0, "none": os.O_DIRECT, "writethrough": os.O_DSYNC,
                   "directsync": os.O_DIRECT | os.O_DSYNC, "unsafe": 0}
    for cache, bits in modes.items():
        with block.open_image(image_path, aio="threads", cache=cache) as img:
            flags = fcntl.fcntl(img.fd, fcntl.F_GETFL)
            assert flags & (os.O_DIRECT | os.O_DSYNC) == bits, cache
            calls = img.engine.submit_calls
            img.flush()
            assert (img.engine.submit_calls == calls) == (cache == "unsafe"), cache




def test_threads_engine_hands_cache_misses_to_the_pool(image_path: str) -> None:
    """Reads are tried with RWF_NOWAIT: hits complete in the batch, misses
    (pages dropped with POSIX_FADV_DONTNEED, a real cold read) go to the
    blocking queue, and every byte still arrives."""
    from uring.bench.files import residency

    size = os.path.getsize(image_path)
    for _ in range(50):  # dropped for real (mincore says so) before the test reads
        fd = os.open(image_path, os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
        if residency(image_path, size) == 0.0:
            break
        time.sleep(0.02)
    else:
        pytest.fail(f"{image_path} stays in the page cache after POSIX_FADV_DONTNEED")
    with block.open_image(image_path, aio="threads", queue_depth=16) as img:
        bufs = [bytearray(4096) for _ in range(64)]
        reqs = [img.submit_read(b, i * 65536) for i, b in enumerate(bufs)]
        img.wait()
        assert all(r.value() == 4096 for r in reqs)
        assert img.engine.punted > 0  # type: ignore[attr-defined]
        for i, b in enumerate(bufs):
            assert b == on_disk(image_path, 4096, i * 65536)


# --- one table: the completion mechanism's, none in the engine ---------------------------


def _engine_tables_holding(engine: object, reqs: List[BlockRequest]) -> List[str]:
    """The engine's attributes that are mappings with any of *reqs* among
    their values (alone or inside a tuple): a second table beside the one
    the ring (or the AIO context) keeps."""
    ids = {id(r) for r in reqs}
    found = []
    for name, value in vars(engine).items():
        if isinstance(value, Mapping):
            held = {id(x) for v in value.values() for x in (v if isinstance(v, tuple) else (v,))}
            if held & ids:
                found.append(name)
    return found


@pytest.mark.parametrize("cache", CACHES)
def test_io_uring_engine_keeps_no_table_of_its_own(image_path: str, cache: str) -> None:
    """Every block request in flight is the owner of its one ring record
    (``set_owner``), and the engine keeps no user_data -> request table."""
    require_uring()
    with block.open_image(image_path, aio="io_uring", cache=cache, queue_depth=16) as img:
        engine = img.engine
        ring = engine.ring  # type: ignore[attr-defined]
        import mmap

        arena = mmap.mmap(-1, 64 * 1024)
        view = memoryview(arena)
        with img.plugged():
            reqs = [img.submit_read(view[i * 4096:(i + 1) * 4096], i * 4096) for i in range(6)]
            reqs.append(img.submit_readv([view[6 * 4096:7 * 4096], view[7 * 4096:8 * 4096]],
                                         MiB))  # READV
            reqs.append(img.submit_write(view[8 * 4096:9 * 4096], 2 * MiB))
            reqs.append(img.submit_flush())
            reqs.append(img.submit_discard(3 * MiB, 8192))
            reqs.append(img.submit_write_zeroes(3 * MiB + 65536, 8192))
        n = len(reqs)
        assert engine.in_flight == n and not engine.pending
        # submitted, nothing reaped: the ring holds one record per request,
        # and each record's owner is that block request
        assert ring.in_flight == n
        records = ring.requests_in_flight()
        assert sorted(id(r.owner) for r in records) == sorted(map(id, reqs))
        for record in records:
            assert ring.held(record.user_data) is record
            assert ring.held(record.user_data).owner in reqs
        assert _engine_tables_holding(engine, reqs) == []
        img.wait()
        assert [r.value() for r in reqs[:6]] == [4096] * 6
        assert reqs[6].value() == 8192 and reqs[7].value() == 4096
        assert [r.value() for r in reqs[8:]] == [0, 0, 0]
        assert ring.in_flight == 0  # every final CQE released its record
        assert arena[:6 * 4096] == on_disk(image_path, 6 * 4096, 0)


def test_native_engine_keeps_no_table_of_its_own(image_path: str) -> None:
    """Linux AIO: the request is filed once, under its iocb's aio_data, in
    the AioContext; the engine keeps no aio_data -> request table."""
    with block.open_image(image_path, aio="native", cache="none", queue_depth=16) as img:
        engine = img.engine
        ctx = engine.ctx  # type: ignore[attr-defined]
        import mmap

        arena = mmap.mmap(-1, 64 * 1024)
        view = memoryview(arena)
        with img.plugged():
            reqs = [img.submit_read(view[i * 4096:(i + 1) * 4096], i * 4096) for i in range(8)]
            reqs.append(img.submit_flush())
        assert engine.in_flight == len(reqs) == ctx.in_flight
        assert _engine_tables_holding(engine, reqs) == []
        img.wait()
        assert [r.value() for r in reqs] == [4096] * 8 + [0]
        assert ctx.in_flight == 0
        assert arena[:8 * 4096] == on_disk(image_path, 8 * 4096, 0)


@pytest.mark.parametrize("cache", CACHES)
def test_io_uring_short_reads_complete_exactly_once(image_path: str, cache: str) -> None:
    """Short transfers (the fault seam halves every one): each remainder
    goes as a new SQE whose record the same block request owns; at every
    step the ring holds one record per request in the kernel's hands, and
    every callback runs exactly once."""
    require_uring()
    faults = IoFaults(short_every=1, granule=4096)
    with block.open_image(image_path, aio="io_uring", cache=cache, queue_depth=8,
                          faults=faults) as img:
        engine = img.engine
        ring = engine.ring  # type: ignore[attr-defined]
        import mmap

        arena = mmap.mmap(-1, 20 * 16384)
        view = memoryview(arena)
        done: List[BlockRequest] = []
        reqs = [img.submit_read(view[i * 16384:(i + 1) * 16384], i * 16384, done.append)
                for i in range(20)]
        while engine.in_flight or engine.pending:
            records = ring.requests_in_flight()
            assert len(records) == ring.in_flight == engine.in_flight
            owners = [r.owner for r in records]
            assert all(o in reqs and not o.finished for o in owners)
            assert len({id(o) for o in owners}) == len(owners)  # one record per request
            engine.poll(wait=True)
        assert sorted(map(id, done)) == sorted(map(id, reqs))  # each callback once
        assert [r.value() for r in reqs] == [16384] * 20
        assert faults.shortened >= 20 and engine.resubmitted >= 20
        assert ring.in_flight == 0
        assert arena[:] == on_disk(image_path, 20 * 16384, 0)


def test_block_request_is_not_the_ring_record() -> None:
    import uring
    import uring.request

    assert block.BlockRequest is not uring.Request
    assert uring.Request is uring.request.Request
    assert "BlockRequest" in block.__all__ and "Request" not in block.__all__

"""Arena queues on ``aio=native`` (``AioEngine.open_arena``, the Linux AIO
``AioArena``): each slot's iocb formatted once, offsets written per
submit, events taken from the ring as words and split into slots and
results; on real files, buffered and O_DIRECT, under the real kernel."""

from __future__ import annotations

import errno
import os
import random
import shutil
import tempfile
import time
from array import array
from typing import Any, Iterator, List, Tuple

import pytest
from conftest import interrupted_at

from uring import block
from uring.arena import AioArena
from uring.block import BlockRequest
from uring.block.engine import Capability
from uring.block.engine_aio import AioEngine
from uring.block.faults import IoFaults
from uring.block.sysops import aligned_buffer
from uring.linux_aio import AioContext, iocb

BS = 4096
MiB = 1 << 20
CACHES = ["writeback", "none"]


def _direct_ok(directory: str) -> bool:
    probe = os.path.join(directory, "probe")
    try:
        fd = os.open(probe, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


@pytest.fixture
def workdir() -> Iterator[str]:
    """A directory on a real filesystem (/var/tmp: tmp_path may be a tmpfs,
    which refuses O_DIRECT), removed afterwards."""
    path = tempfile.mkdtemp(prefix="aio-arena-", dir="/var/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=CACHES)
def cache(request: pytest.FixtureRequest, workdir: str) -> str:
    if request.param == "none" and not _direct_ok(workdir):
        pytest.skip("/var/tmp refuses O_DIRECT")
    return str(request.param)


def make_file(workdir: str, size: int = 2 * MiB, name: str = "disk.img") -> Tuple[str, bytes]:
    path = os.path.join(workdir, name)
    data = os.urandom(size)
    with open(path, "wb") as f:
        f.write(data)
    return path, data


def contents(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def drain(ar: block.BlockArena, n: int) -> dict:
    got: dict = {}
    while len(got) < n:
        slots, res = ar.reap(wait=True)
        assert len(slots) == len(res)
        assert slots, "reap(wait=True) returned nothing with slots in flight"
        assert not set(slots) & set(got), "a slot finished twice"
        got.update(zip(slots, res))
    return got


def test_native_declares_arena_queues(workdir: str) -> None:
    path, _ = make_file(workdir)
    with block.open_image(path, aio="native") as img:
        assert img.supports(Capability.ARENA)
        ar = img.arena(4, BS)
        assert isinstance(ar._queue, AioArena)
        assert "ring" in repr(ar)
    # a fault plan acts on requests: no arena queue beside it (requests instead)
    with block.open_image(path, aio="native", faults=IoFaults()) as img:
        assert not img.supports(Capability.ARENA)
        ar = img.arena(4, BS)
        assert ar._queue is None
        ar.submit([0], [0])
        assert drain(ar, 1) == {0: BS}


def test_registered_refused_by_name(workdir: str) -> None:
    path, _ = make_file(workdir)
    with block.open_image(path, aio="native") as img:
        with pytest.raises(ValueError, match="fixed_buffers"):
            img.arena(4, BS, registered=True)
        with pytest.raises(ValueError, match="native has no registered buffers"):
            img.engine.open_arena(4, BS, False, lambda s, r: None, True)


def test_reads(workdir: str, cache: str) -> None:
    path, data = make_file(workdir)
    with block.open_image(path, aio="native", cache=cache, queue_depth=16) as img:
        ar = img.arena(16, BS)
        rnd = random.Random(7)
        offs = [rnd.randrange(len(data) // BS) * BS for _ in range(16)]
        ar.submit(list(range(16)), offs)
        assert ar.in_flight == 16 and img.engine.in_flight == 16
        for _ in range(200):  # the loop fio runs: reap some, send them again
            slots, res = ar.reap(True)
            assert list(res) == [BS] * len(slots)
            for s in slots:
                assert bytes(ar.buffer(s)) == data[offs[s]:offs[s] + BS]
            new = [rnd.randrange(len(data) // BS) * BS for _ in slots]
            for s, o in zip(slots, new):
                offs[s] = o
            ar.submit(slots, array("q", new))
        got = drain(ar, 16)
        assert set(got.values()) == {BS}
        for s in range(16):
            assert bytes(ar.buffer(s)) == data[offs[s]:offs[s] + BS]
        assert ar.in_flight == 0 and img.engine.in_flight == 0
        if cache == "writeback":  # done inside io_submit: the events wait in the ring
            assert img.engine.peeked > 0  # taken from it without a system call


def test_writes_land(workdir: str, cache: str) -> None:
    path, data = make_file(workdir, MiB)
    expect = bytearray(data)
    with block.open_image(path, aio="native", cache=cache, queue_depth=8) as img:
        ar = img.arena(8, 2 * BS, write=True)
        for round_ in range(3):
            offs = [((round_ * 8 + s) * 2 * BS) % MiB for s in range(8)]
            order = [5, 0, 7, 2, 1, 6, 3, 4]
            for s in order:
                ar.buffer(s)[:] = bytes([round_ * 16 + s + 1]) * (2 * BS)
                expect[offs[s]:offs[s] + 2 * BS] = bytes(ar.buffer(s))
            ar.submit(order, [offs[s] for s in order])
            assert drain(ar, 8) == {s: 2 * BS for s in range(8)}
        img.flush()
    assert contents(path) == bytes(expect)


@pytest.mark.parametrize("submit_batch", [0, 1, 3, 8])
def test_submit_batch_splits_io_submit(workdir: str, submit_batch: int) -> None:
    path, data = make_file(workdir)
    with block.open_image(path, aio="native", queue_depth=8,
                          submit_batch=submit_batch) as img:
        ar = img.arena(8, BS)
        before = img.engine.submit_calls
        ar.submit(list(range(8)), [s * 3 * BS for s in range(8)])
        calls = img.engine.submit_calls - before
        assert calls == (-(-8 // submit_batch) if submit_batch else 1)
        assert drain(ar, 8) == {s: BS for s in range(8)}
        for s in range(8):
            assert bytes(ar.buffer(s)) == data[s * 3 * BS:(s * 3 + 1) * BS]


def test_bad_submits_refused_with_nothing_queued(workdir: str, cache: str) -> None:
    path, data = make_file(workdir)
    with block.open_image(path, aio="native", cache=cache, queue_depth=8) as img:
        ar = img.arena(4, BS)
        engine = img.engine
        ar.submit([1], [BS])
        calls = engine.submit_calls
        for slots, offs in (([0, 4], [0, 0]),        # past the last slot
                            ([0, -1], [0, 0]),       # negative
                            ([0, 2, 0], [0, 0, 0]),  # given twice
                            ([2, 1], [0, 0]),        # in flight
                            ([0.0], [0]),            # not an int
                            ([0, 2], [0])):          # lengths differ
            with pytest.raises((ValueError, TypeError)):
                ar.submit(slots, offs)
            assert engine.in_flight == 1 and ar.in_flight == 1
            assert ar._queue.in_flight == 1
            assert engine.submit_calls == calls, "nothing reached io_submit"
        with pytest.raises(ValueError):
            ar.submit([0], [-BS])
        assert drain(ar, 1) == {1: BS}
        # the arena works on: every slot, the refused ones too
        ar.submit([3, 2, 1, 0], [0, BS, 2 * BS, 3 * BS])
        assert drain(ar, 4) == {s: BS for s in range(4)}
        for s in range(4):
            assert bytes(ar.buffer(s)) == data[(3 - s) * BS:(4 - s) * BS]


@pytest.mark.parametrize("tail", [100, 0])
def test_end_of_file_short_read_zero_filled(workdir: str, cache: str, tail: int) -> None:
    path, data = make_file(workdir, 2 * BS + tail, "short.img")
    with block.open_image(path, aio="native", cache=cache, queue_depth=4) as img:
        ar = img.arena(3, BS)
        ar.buffer(1)[:] = b"\xff" * BS
        ar.buffer(2)[:] = b"\xff" * BS
        ar.submit([0, 1, 2], [0, 2 * BS, 8 * BS])  # whole; at EOF; past EOF
        assert drain(ar, 3) == {0: BS, 1: BS, 2: BS}
        assert bytes(ar.buffer(0)) == data[:BS]
        assert bytes(ar.buffer(1)) == data[2 * BS:] + bytes(BS - tail)
        assert bytes(ar.buffer(2)) == bytes(BS)
        assert img.engine.in_flight == 0 and ar.in_flight == 0
        # and the slots go on as usual
        ar.submit([1, 2], [BS, 0])
        assert drain(ar, 2) == {1: BS, 2: BS}
        assert bytes(ar.buffer(1)) == data[BS:2 * BS] and bytes(ar.buffer(2)) == data[:BS]


def test_beside_ordinary_requests(workdir: str, cache: str) -> None:
    """One context, both kinds of events: neither loses the other's."""
    path, data = make_file(workdir)
    with block.open_image(path, aio="native", cache=cache, queue_depth=16) as img:
        ar = img.arena(4, BS)
        seen: List[BlockRequest] = []
        bufs = [aligned_buffer(BS) for _ in range(6)]
        rnd = random.Random(3)
        arena_offs = {}
        for _ in range(20):
            offs = [rnd.randrange(len(data) // BS) * BS for _ in range(4)]
            ar.submit([0, 1, 2, 3], offs)
            arena_offs.update(zip(range(4), offs))
            roffs = [rnd.randrange(len(data) // BS) * BS for _ in range(6)]
            reqs = [img.submit_read(b, o, seen.append) for b, o in zip(bufs[:3], roffs[:3])]
            reqs += img.submit_reads(bufs[3:], roffs[3:])
            assert img.engine.in_flight == 10
            got = drain(ar, 4)
            assert got == {s: BS for s in range(4)}
            for s in range(4):
                assert bytes(ar.buffer(s)) == data[arena_offs[s]:arena_offs[s] + BS]
            img.wait()
            assert len(img.reap()) == 3  # the batch's, collected
            for b, o, r in zip(bufs, roffs, reqs):
                assert r.finished and r.error is None
                assert bytes(b) == data[o:o + BS]
        assert len(seen) == 60
        assert img.engine.in_flight == 0


def test_request_path_still_works_after_arena(workdir: str) -> None:
    path, data = make_file(workdir)
    with block.open_image(path, aio="native", queue_depth=8) as img:
        img.arena(2, BS)
        assert img.pread(BS, 5 * BS) == data[5 * BS:6 * BS]
        img.pwrite(b"z" * 100, 7)
        img.flush()
        assert img.pread(200, 0) == data[:7] + b"z" * 100 + data[107:200]


def test_close_with_arena_io_in_flight(workdir: str, cache: str) -> None:
    path, data = make_file(workdir)
    img = block.open_image(path, aio="native", cache=cache, queue_depth=32)
    ar = img.arena(16, BS)
    write = img.arena(4, BS, write=True)
    for s in range(4):
        write.buffer(s)[:] = bytes([s + 1]) * BS
    ar.submit(list(range(16)), [s * BS for s in range(16)])
    write.submit(list(range(4)), [(100 + s) * BS for s in range(4)])
    img.submit_read(bytearray(BS), 0)
    assert img.engine.in_flight == 21
    img.close()
    assert img.engine.in_flight == 0 and img.engine.closed
    # what the kernel did was finished first: the reads landed, the writes too
    for s in range(16):
        assert bytes(ar.buffer(s)) == data[s * BS:(s + 1) * BS]
    on_disk = contents(path)
    for s in range(4):
        assert on_disk[(100 + s) * BS:(101 + s) * BS] == bytes([s + 1]) * BS
    with pytest.raises(ValueError):
        ar.submit([0], [0])


# --- the engine on its own: refusals by the kernel, sinks that raise ----------------------


class Sink:
    def __init__(self, raises: bool = False) -> None:
        self.got: List[Tuple[int, int]] = []
        self.raises = raises

    def __call__(self, slots: Any, res: Any) -> None:
        assert isinstance(slots, array) and slots.typecode == "I"
        assert isinstance(res, array) and res.typecode == "i"
        self.got.extend(zip(slots, res))
        if self.raises:
            raise RuntimeError("sink")


def test_kernel_refusals_come_back_once_each(workdir: str) -> None:
    """A write arena on a read-only fd: io_submit refuses every iocb
    (EBADF); each slot comes back exactly once with -EBADF, and idle."""
    path, _ = make_file(workdir, MiB)
    fd = os.open(path, os.O_RDONLY)
    engine = AioEngine(fd, 8)
    try:
        sink = Sink()
        queue = engine.open_arena(4, BS, True, sink)
        engine.arena_submit(queue, [2, 0, 3, 1], [0, BS, 2 * BS, 3 * BS])
        assert engine.in_flight == 4 and queue.in_flight == 4
        assert engine.submit_calls == 4  # the first refused, the rest again, ...
        engine.poll(wait=True)
        assert sorted(sink.got) == [(s, -errno.EBADF) for s in range(4)]
        assert engine.in_flight == 0 and queue.in_flight == 0
        engine.arena_submit(queue, [0], [0])  # idle again: may go again
        engine.drain()
        assert sink.got[-1] == (0, -errno.EBADF)
    finally:
        engine.close()
        os.close(fd)


def test_eagain_and_partial_acceptance(workdir: str) -> None:
    """More iocbs than the context has room for (the real kernel's limit,
    not an injected one): io_submit takes the first ones, then refuses
    the rest with EAGAIN; every slot comes back exactly once, the taken
    ones with their data, the refused ones with -EAGAIN, all idle again."""
    path, data = make_file(workdir, 4 * MiB)
    fd = os.open(path, os.O_RDONLY)
    engine = AioEngine(fd, 1)  # io_setup(1): room for ~a page of events
    try:
        sink = Sink()
        slots = 1024
        queue = engine.open_arena(slots, BS, False, sink)
        offsets = [(s * 7 % slots) * BS for s in range(slots)]
        engine.arena_submit(queue, list(range(slots)), offsets)
        assert engine.in_flight == slots
        while engine.in_flight:
            engine.poll(wait=True)
        got = dict(sink.got)
        assert len(sink.got) == slots and sorted(got) == list(range(slots))
        taken = [s for s, r in got.items() if r == BS]
        refused = [s for s, r in got.items() if r == -errno.EAGAIN]
        assert taken and refused and len(taken) + len(refused) == slots
        assert sorted(taken) == list(range(len(taken)))  # the first ones, in order
        for s in taken[:50]:
            assert bytes(queue.buffer(s)) == data[offsets[s]:offsets[s] + BS]
        assert queue.in_flight == 0
        engine.arena_submit(queue, refused[:4], [0, BS, 2 * BS, 3 * BS])  # idle: may go again
        engine.drain()
        assert [r for _, r in sink.got[-4:]] == [BS] * 4
    finally:
        engine.close()
        os.close(fd)


def test_sink_raising_is_raised_by_poll_after_the_rest(workdir: str) -> None:
    path, data = make_file(workdir, MiB)
    fd = os.open(path, os.O_RDONLY)
    engine = AioEngine(fd, 8)
    try:
        bad, good = Sink(raises=True), Sink()
        q1 = engine.open_arena(2, BS, False, bad)
        q2 = engine.open_arena(2, BS, False, good)
        engine.arena_submit(q1, [0, 1], [0, BS])
        engine.arena_submit(q2, [0, 1], [2 * BS, 3 * BS])
        while engine.in_flight:
            try:
                engine.poll(wait=True)
            except RuntimeError:
                pass
        assert sorted(bad.got) == [(0, BS), (1, BS)]
        assert sorted(good.got) == [(0, BS), (1, BS)]
        assert bytes(q2.buffer(1)) == data[3 * BS:4 * BS]
    finally:
        engine.close()
        os.close(fd)


# --- the AIO layer: AioArena on its own ------------------------------------------------


def test_aio_arena_on_its_own(workdir: str) -> None:
    path, data = make_file(workdir, MiB)
    fd = os.open(path, os.O_RDONLY)
    try:
        with AioContext(8) as ctx:
            arena = AioArena(ctx, fd, 4, BS)
            assert arena.submit([3, 1], [0, 5 * BS]) == 2
            with pytest.raises(ValueError, match="in flight"):
                arena.submit([1], [0])
            # an ordinary iocb, filed with hold, among the arena's events
            buf = bytearray(BS)
            cb = iocb()
            owner = object()
            key = ctx.hold(owner, cb)
            AioContext.prep_pread(cb, fd, ctypes_addr(buf), BS, 2 * BS, key)
            assert ctx.submit([cb]) == 1
            got: dict = {}
            while len(got) < 2 or not arena.others:
                slots, res = arena.reap(wait=True)
                got.update(zip(slots, res))
            assert got == {3: BS, 1: BS}
            assert arena.others == [(key, BS, 0)] and ctx.in_flight == 0
            assert bytes(arena.buffer(3)) == data[:BS]
            assert bytes(arena.buffer(1)) == data[5 * BS:6 * BS]
            assert bytes(buf) == data[2 * BS:3 * BS]
            assert arena.in_flight == 0
    finally:
        os.close(fd)


def ctypes_addr(buf: bytearray) -> int:
    import ctypes

    return ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))


def test_aio_arena_resfd_counts_completions(workdir: str) -> None:
    path, data = make_file(workdir, MiB)
    fd = os.open(path, os.O_RDONLY)
    efd = os.eventfd(0) if hasattr(os, "eventfd") else -1
    if efd < 0:
        os.close(fd)
        pytest.skip("os.eventfd needs Python 3.10")
    try:
        with AioContext(4) as ctx:
            arena = AioArena(ctx, fd, 3, BS, resfd=efd)
            arena.submit([0, 1, 2], [0, BS, 2 * BS])
            got: dict = {}
            while len(got) < 3:
                got.update(zip(*arena.reap(wait=True)))
            assert got == {0: BS, 1: BS, 2: BS}
            assert int.from_bytes(os.read(efd, 8), "little") == 3
            assert b"".join(bytes(arena.buffer(s)) for s in range(3)) == data[:3 * BS]
    finally:
        os.close(fd)
        os.close(efd)


def test_an_interrupted_submit_leaves_no_slot_waiting(workdir: str) -> None:
    """A signal handler's exception (Ctrl-C) raised in the middle of a
    submit, after two of eight one-iocb io_submit calls: those two are in
    the kernel; the six never handed over come back from the engine with
    -EINTR, which the arena retries (the engine's rule for EINTR), so all
    eight complete with their data, each once, nothing is left to wait
    for, and the image goes on.  (The interruption is made at that exact
    call by a trace function, not timed.)"""
    path, data = make_file(workdir, MiB)
    with block.open_image(path, aio="native", cache="none", queue_depth=8,
                          submit_batch=1) as img:
        ar = img.arena(8, BS)
        with interrupted_at(AioArena.submit_staged.__code__, 3):
            ar.submit(list(range(8)), [s * BS for s in range(8)])
        got: dict = {}
        deadline = time.monotonic() + 10
        while ar.in_flight and time.monotonic() < deadline:
            slots, res = ar.reap(wait=False)
            for s, r in zip(slots, res):
                assert s not in got, f"slot {s} came back twice"
                got[s] = r
            time.sleep(0.001)
        assert got == {s: BS for s in range(8)}
        assert ar.in_flight == 0 and img.engine.in_flight == 0
        for s in range(8):
            assert bytes(ar.buffer(s)) == data[s * BS:(s + 1) * BS]
        assert ar._retries == {}  # the retries are over, not pending
        ar.submit([2, 3], [4 * BS, 5 * BS])  # idle again: they go
        assert drain(ar, 2) == {2: BS, 3: BS}
        assert bytes(ar.buffer(3)) == data[5 * BS:6 * BS]

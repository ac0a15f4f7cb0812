"""``Image``'s batch surface (``submit_reads``/``submit_writes``,
``resubmit``, ``reap``) and the one engine interface (``Capability``,
``ENGINE_TABLE``), on every engine and both cache modes, on real files
under the real kernel."""

from __future__ import annotations

import errno
import mmap
import os
import random
from array import array
from typing import Any, Iterator, List

import pytest
from conftest import interrupted_at, require_uring

from uring import block
from uring.block import BlockRequest, Op
from uring.block.engine import ENGINE_TABLE, Capability, make_engine

ENGINES = ["io_uring", "native", "threads"]
CACHES = ["writeback", "none"]
MiB = 1 << 20
BS = 4096


@pytest.fixture
def image_path(tmp_path: "os.PathLike[str]") -> str:
    path = os.path.join(tmp_path, "disk.img")
    with open(path, "wb") as f:
        f.write(os.urandom(2 * MiB))
    return path


@pytest.fixture(params=[(a, c) for a in ENGINES for c in CACHES],
                ids=[f"{a}-{c}" for a in ENGINES for c in CACHES])
def opened(request: pytest.FixtureRequest, image_path: str) -> Iterator[block.Image]:
    aio, cache = request.param
    if aio == "io_uring":
        require_uring()
    with block.open_image(image_path, aio=aio, cache=cache, queue_depth=8) as img:
        yield img


def contents(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def slots(n: int, size: int = BS) -> List[memoryview]:
    arena = mmap.mmap(-1, n * size)  # page aligned, as O_DIRECT wants
    return [memoryview(arena)[i * size:(i + 1) * size] for i in range(n)]


def reap_all(img: block.Image, n: int) -> List[BlockRequest]:
    got: List[BlockRequest] = []
    while len(got) < n:
        more = img.reap(wait=True)
        assert more, "reap(wait=True) returned nothing with requests outstanding"
        got += more
    return got


# --- reads, writes, tags, reap -------------------------------------------------------


def test_a_batch_of_reads_beyond_the_queue_depth(opened: block.Image, image_path: str) -> None:
    data = contents(image_path)
    offs = random.Random(3).sample(range(0, len(data) - BS, BS), 20)  # queue depth is 8
    views = slots(20)
    reqs = opened.submit_reads(views, offs, tags=[f"t{i}" for i in range(20)])
    got = reap_all(opened, 20)
    assert sorted(r.tag for r in got) == sorted(f"t{i}" for i in range(20))
    assert {id(r) for r in got} == {id(r) for r in reqs}
    for r in got:
        i = int(r.tag[1:])
        assert r.result == BS and r.error is None and r.op is Op.READ
        assert bytes(views[i]) == data[offs[i]:offs[i] + BS]
    assert opened.reap() == []  # handed over once


def test_a_batch_of_writes_lands(opened: block.Image, image_path: str) -> None:
    views = slots(6)
    for i, v in enumerate(views):
        v[:] = bytes([i + 1]) * BS
    offs = [i * 3 * BS for i in range(6)]
    opened.submit_writes(views, offs)
    assert len(reap_all(opened, 6)) == 6
    opened.flush()
    data = contents(image_path)
    for i, off in enumerate(offs):
        assert data[off:off + BS] == bytes([i + 1]) * BS


def test_resubmit_reuses_the_requests(opened: block.Image, image_path: str) -> None:
    data = contents(image_path)
    views = slots(4)
    reqs = opened.submit_reads(views, [0, BS, 2 * BS, 3 * BS], tags=range(4))
    done = reap_all(opened, 4)
    for round_ in range(5):
        offs = [(round_ * 17 + r.tag * 5 + 40) * BS for r in done]
        opened.resubmit(done, offs)
        for r, off in zip(done, offs):
            assert not r.finished and r.offset == off
        again = reap_all(opened, 4)
        assert {id(r) for r in again} == {id(r) for r in reqs}  # the same objects
        for r in again:
            assert r.result == BS
            assert bytes(views[r.tag]) == data[r.offset:r.offset + BS]
        done = again


def test_resubmit_switches_direction(opened: block.Image, image_path: str) -> None:
    views = slots(2)
    reqs = opened.submit_reads(views, [0, BS])
    reap_all(opened, 2)
    views[0][:] = b"w" * BS
    opened.resubmit(reqs[:1], [5 * BS], ops=[Op.WRITE])
    (r,) = reap_all(opened, 1)
    assert r.op is Op.WRITE and r.result == BS
    opened.flush()
    assert contents(image_path)[5 * BS:6 * BS] == b"w" * BS


def test_callbacks_are_not_collected(opened: block.Image) -> None:
    seen: List[Any] = []
    opened.submit_reads(slots(3), [0, BS, 2 * BS], seen.append, tags=["a", "b", "c"])
    opened.wait()
    assert sorted(r.tag for r in seen) == ["a", "b", "c"]
    assert opened.reap() == []


def test_reap_waits_for_min_complete(opened: block.Image) -> None:
    opened.submit_reads(slots(6), [i * BS for i in range(6)])
    got = opened.reap(wait=True, min_complete=6)
    assert len(got) == 6 and all(r.finished for r in got)
    assert opened.reap(wait=True) == []  # nothing outstanding: returns at once


def test_zero_length_and_unaligned_requests_in_a_batch(opened: block.Image,
                                                       image_path: str) -> None:
    data = contents(image_path)
    odd = bytearray(100)  # unaligned length (O_DIRECT: bounced / widened)
    empty = bytearray(0)
    reqs = opened.submit_reads([odd, empty, slots(1)[0]], [7, 0, BS], tags=[0, 1, 2])
    got = reap_all(opened, 3)
    assert sorted(r.tag for r in got) == [0, 1, 2]
    assert bytes(odd) == data[7:107]
    assert reqs[1].result == 0


def test_a_failing_callback_costs_no_collected_request(image_path: str) -> None:
    require_uring()
    with block.open_image(image_path, aio="io_uring", queue_depth=8) as img:
        def boom(req: BlockRequest) -> None:
            raise KeyError("callback")

        img.submit_reads(slots(2), [0, BS], boom)
        img.submit_reads(slots(3), [0, BS, 2 * BS])
        got: List[BlockRequest] = []
        with pytest.raises(KeyError):
            while len(got) < 3:
                got += img.reap(wait=True)
        while len(got) < 3:
            got += img.reap(wait=True)
        assert len(got) == 3 and all(r.result == BS for r in got)


def test_reads_past_eof_are_zero_filled_in_a_batch(tmp_path: "os.PathLike[str]") -> None:
    require_uring()
    path = os.path.join(tmp_path, "ro.img")
    with open(path, "wb") as f:
        f.write(bytes(BS * 4))
    with block.open_image(path, aio="io_uring") as img:
        # EOF reads are zero-filled; a read at the largest offset the kernel
        # accepts is past EOF too: both succeed
        reqs = img.submit_reads(slots(2), [3 * BS, (1 << 62)])
        got = reap_all(img, 2)
        assert all(r.error is None and r.result == BS for r in got)
        assert bytes(reqs[1].views[0]) == bytes(BS)


# --- all or nothing ------------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    ([bytearray(BS), bytes(BS)], [0, BS], TypeError),          # a read into bytes
    ([bytearray(BS), memoryview(bytearray(2 * BS))[::2]], [0, BS], ValueError),  # strided
    ([bytearray(BS), bytearray(BS)], [0, 1.5], TypeError),      # a float offset
    ([bytearray(BS), bytearray(BS)], [0, -BS], ValueError),     # a negative one
    ([bytearray(BS), bytearray(BS)], [0], ValueError),          # one offset short
    ([bytearray(BS), 42], [0, BS], TypeError),                 # not a buffer
])
def test_a_bad_request_refuses_the_whole_batch(opened: block.Image, bad: Any) -> None:
    buffers, offsets, exc = bad
    with pytest.raises(exc):
        opened.submit_reads(buffers, offsets)
    assert opened.reap(wait=True) == []  # nothing was queued
    assert opened.engine.in_flight == 0 and not opened.engine.pending


def test_a_bad_write_batch_leaves_the_file_alone(opened: block.Image, image_path: str) -> None:
    before = contents(image_path)
    with pytest.raises(TypeError):
        opened.submit_writes([b"x" * BS, object()], [0, BS])
    opened.wait()
    assert contents(image_path) == before


def test_resubmit_refusals_touch_nothing(opened: block.Image) -> None:
    reqs = opened.submit_reads(slots(2), [0, BS])
    with pytest.raises(ValueError, match="still in flight"):
        opened.resubmit(reqs, [0, BS])
    reap_all(opened, 2)
    for bad_offsets, exc in (([0, -1], ValueError), ([0, "8"], TypeError),
                             ([0, (1 << 63) - 1], ValueError), ([0], ValueError)):
        with pytest.raises(exc):
            opened.resubmit(reqs, bad_offsets)
        assert all(r.finished for r in reqs) and [r.offset for r in reqs] == [0, BS]
    with pytest.raises(ValueError, match="twice"):
        opened.resubmit([reqs[0], reqs[0]], [0, BS])
    flush = opened.submit_flush()
    opened.wait()
    with pytest.raises(ValueError, match="only reads and writes"):
        opened.resubmit([reqs[0], flush], [0, 0])
    with pytest.raises(ValueError, match="only reads and writes"):
        opened.resubmit(reqs, [0, 0], ops=[Op.READ, Op.FLUSH])
    assert all(r.finished for r in reqs)


def test_resubmit_refuses_another_images_request(image_path: str) -> None:
    with block.open_image(image_path, aio="threads") as a, \
            block.open_image(image_path, aio="threads") as b:
        reqs = a.submit_reads(slots(1), [0])
        reap_all(a, 1)
        with pytest.raises(ValueError, match="not a request of this image"):
            b.resubmit(reqs, [0])
        with pytest.raises(ValueError, match="not a request of this image"):
            b.resubmit([object()], [0])  # type: ignore[list-item]


def test_read_only_images_refuse_writes(image_path: str) -> None:
    with block.open_image(image_path, aio="threads", read_only=True) as img:
        with pytest.raises(PermissionError):
            img.submit_writes([bytes(BS)], [0])
        reqs = img.submit_reads(slots(1), [0])
        reap_all(img, 1)
        with pytest.raises(PermissionError):
            img.resubmit(reqs, [0], ops=[Op.WRITE])
        data = bytes(BS)
        with block.open_image(image_path, aio="threads") as rw:
            w = rw.submit_writes([data], [0])
            reap_all(rw, 1)
            with pytest.raises(TypeError, match="read-only buffer"):
                rw.resubmit(w, [0], ops=[Op.READ])


# --- the memory the kernel writes stays put -------------------------------------------


def test_the_callers_view_released_does_not_free_the_buffer(image_path: str) -> None:
    require_uring()
    with block.open_image(image_path, aio="io_uring") as img:
        buf = bytearray(BS)
        view = memoryview(buf)
        req = img.submit_read(view, 0)
        view.release()  # the caller lets go of its view while the read is in flight
        with pytest.raises(BufferError):
            buf.extend(b"x")  # the request's own view still pins the bytearray
        img.wait(req)
        assert req.result == BS
        del req
    buf.extend(b"x")  # and lets go once the request is gone


def test_a_released_view_is_refused(opened: block.Image) -> None:
    view = memoryview(bytearray(BS))
    view.release()
    with pytest.raises(ValueError, match="released"):
        opened.submit_read(view, 0)
    with pytest.raises(ValueError, match="released"):
        opened.submit_reads([view], [0])


# --- one engine interface ---------------------------------------------------------------


def test_engines_declare_what_they_can_do(image_path: str) -> None:
    require_uring()
    assert set(ENGINE_TABLE) == set(block.ENGINES) == {"io_uring", "native", "threads"}
    with block.open_image(image_path, aio="io_uring") as img:
        assert img.supports(Capability.FIXED_BUFFERS) and img.supports("sqpoll")
    for aio in ("native", "threads"):
        with block.open_image(image_path, aio=aio, cache="none") as img:
            # native has arena queues (AioArena); nothing else beyond the basics
            assert img.supports(Capability.ARENA) == (aio == "native")
            assert not any(img.supports(c) for c in Capability if c is not Capability.ARENA)
            with pytest.raises(ValueError, match="needs fixed_buffers"):
                img.register_buffers([bytearray(BS)])
            with pytest.raises(ValueError, match="no registered buffers"):
                img.engine.register_buffers([bytearray(BS)])
        with pytest.raises(ValueError, match=f"aio={aio} has no registered buffers"):
            block.open_image(image_path, aio=aio, fixed_buffers=True)
    with pytest.raises(ValueError, match="aio must be one of"):
        block.Image(image_path, aio="bogus")


def test_make_engine_refuses_options_by_name(image_path: str) -> None:
    fd = os.open(image_path, os.O_RDONLY)
    try:
        with pytest.raises(ValueError, match="sqpoll is an io_uring option; aio=threads"):
            make_engine("threads", fd, 4, sqpoll=True)
        with pytest.raises(TypeError, match="unknown engine option"):
            make_engine("threads", fd, 4, colour="blue")
        with pytest.raises(ValueError, match="aio must be one of"):
            make_engine("posix", fd, 4)
        engine = make_engine("threads", fd, 4, sqpoll=False)  # unset is as if not given
        engine.close()
    finally:
        os.close(fd)


def test_fixed_buffers_go_as_read_fixed(image_path: str) -> None:
    require_uring()
    data = contents(image_path)
    with block.open_image(image_path, aio="io_uring", fixed_buffers=True) as img:
        arena = mmap.mmap(-1, 4 * BS)
        img.register_buffers([arena])
        views = [memoryview(arena)[i * BS:(i + 1) * BS] for i in range(4)]
        reqs = img.submit_reads(views, [i * BS for i in range(4)])
        reap_all(img, 4)
        img.resubmit(reqs, [(i + 8) * BS for i in range(4)])
        reap_all(img, 4)
        assert img.engine.fixed_buffer_ops == 8  # type: ignore[attr-defined]
        assert arena[:] == data[8 * BS:12 * BS]
        del views, reqs


def test_eof_short_reads_in_a_resubmitted_batch_are_zero_filled(tmp_path: Any) -> None:
    require_uring()
    path = os.path.join(tmp_path, "short.img")
    with open(path, "wb") as f:
        f.write(b"a" * (BS + 100))
    with block.open_image(path, aio="io_uring") as img:
        views = slots(2)
        reqs = img.submit_reads(views, [0, 8 * BS])
        reap_all(img, 2)
        img.resubmit(reqs, [BS, 0])
        reap_all(img, 2)
        assert bytes(views[0]) == b"a" * 100 + bytes(BS - 100)
        assert bytes(views[1]) == b"a" * BS
        assert all(r.result == BS for r in reqs)


# --- arenas: fixed slots, results as arrays -------------------------------------------


def drain_arena(ar: block.BlockArena, n: int) -> dict:
    got: dict = {}
    while len(got) < n:
        slots, res = ar.reap(wait=True)
        assert len(slots) == len(res) and (slots or ar.in_flight == 0)
        assert not set(slots) & set(got), "a slot finished twice"
        got.update(zip(slots, res))
        assert slots or len(got) == n, "reap(wait=True) returned nothing with slots in flight"
    return got


def test_arena_reads_on_every_engine(opened: block.Image, image_path: str) -> None:
    data = contents(image_path)
    ar = opened.arena(8, BS)
    assert (ar._queue is not None) == opened.supports(Capability.ARENA)
    rnd = random.Random(5)
    for _ in range(4):
        offs = [rnd.randrange(len(data) // BS) * BS for _ in range(8)]
        ar.submit(list(range(8)), offs)
        assert ar.in_flight == 8
        got = drain_arena(ar, 8)
        assert got == {s: BS for s in range(8)}
        for s in range(8):
            assert bytes(ar.buffer(s)) == data[offs[s]:offs[s] + BS]
    assert ar.in_flight == 0 and opened.engine.in_flight == 0


def test_arena_writes_land(opened: block.Image, image_path: str) -> None:
    ar = opened.arena(4, BS, write=True)
    for s in range(4):
        ar.buffer(s)[:] = bytes([s + 7]) * BS
    ar.submit([3, 1, 0, 2], [0, 4 * BS, 8 * BS, 12 * BS])
    assert drain_arena(ar, 4) == {s: BS for s in range(4)}
    opened.flush()
    data = contents(image_path)
    assert data[0:BS] == bytes([10]) * BS and data[8 * BS:9 * BS] == bytes([7]) * BS


def test_arena_beside_ordinary_requests(opened: block.Image, image_path: str) -> None:
    """The engine reaps both kinds from one ring: neither loses the other's."""
    data = contents(image_path)
    ar = opened.arena(4, BS)
    seen: List[BlockRequest] = []
    ar.submit([0, 1], [0, BS])
    opened.submit_reads(slots(3), [2 * BS, 3 * BS, 4 * BS], seen.append)
    ar.submit([2, 3], [5 * BS, 6 * BS])
    assert drain_arena(ar, 4) == {s: BS for s in range(4)}
    opened.wait()
    assert len(seen) == 3 and all(r.result == BS for r in seen)
    assert bytes(ar.buffer(3)) == data[6 * BS:7 * BS]


def test_arena_short_reads_at_eof_are_finished(tmp_path: Any) -> None:
    require_uring()
    path = os.path.join(tmp_path, "short.img")
    with open(path, "wb") as f:
        f.write(b"q" * (BS + 300))
    for aio in ENGINES:
        with block.open_image(path, aio=aio) as img:
            ar = img.arena(3, BS)
            ar.buffer(1)[:] = b"x" * BS
            ar.submit([0, 1, 2], [0, BS, 5 * BS])
            assert drain_arena(ar, 3) == {0: BS, 1: BS, 2: BS}
            assert bytes(ar.buffer(1)) == b"q" * 300 + bytes(BS - 300)
            assert bytes(ar.buffer(2)) == bytes(BS)


def test_arena_errors_are_named(opened: block.Image) -> None:
    """A write past RLIMIT_FSIZE fails in the kernel with EFBIG: that slot
    alone, as -EFBIG, named by ``failures``; the others land."""
    import resource
    import signal

    ar = opened.arena(2, BS, write=True)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * MiB, limits[1]))
    try:
        ar.submit([0, 1], [0, 64 * MiB])
        got = drain_arena(ar, 2)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, old)
    assert got == {0: BS, 1: -errno.EFBIG}
    (slot, err), = ar.failures(array("I", [0, 1]), array("i", [BS, -errno.EFBIG]))
    assert slot == 1 and err.errno == errno.EFBIG
    assert "arena slot 1 at offset 67108864" in str(err) and "write" in str(err)


def test_arena_submit_is_all_or_nothing(opened: block.Image) -> None:
    ar = opened.arena(4, BS)
    for slots_, offs, exc in (([0, 0], [0, BS], ValueError), ([0, 4], [0, BS], ValueError),
                              ([0, 1], [0, -BS], ValueError), ([0, 1], [0, 1.5], TypeError),
                              ([0, 1], [0], ValueError), ([-1], [0], ValueError)):
        with pytest.raises(exc):
            ar.submit(slots_, offs)
        assert ar.in_flight == 0 and opened.engine.in_flight == 0
    ar.submit([0], [0])
    with pytest.raises(ValueError, match="in flight"):
        ar.submit([0], [BS])
    drain_arena(ar, 1)
    with pytest.raises(ValueError, match="queue depth"):
        opened.arena(9, BS)  # the queue depth is 8
    if opened.direct:
        with pytest.raises(ValueError, match="O_DIRECT"):
            opened.arena(2, 1000)
        with pytest.raises(ValueError, match="O_DIRECT"):
            ar.submit([1], [100])


def test_close_waits_for_arena_io(image_path: str) -> None:
    require_uring()
    data = contents(image_path)
    img = block.open_image(image_path, aio="io_uring")
    ar = img.arena(8, BS)
    ar.submit(list(range(8)), [i * BS for i in range(8)])
    img.close()  # drains the arena's reads before the ring goes
    assert ar.in_flight == 0
    assert bytes(ar.buffer(7)) == data[7 * BS:8 * BS]


def test_a_registered_arena_goes_as_read_fixed(image_path: str) -> None:
    require_uring()
    data = contents(image_path)
    with block.open_image(image_path, aio="io_uring", fixed_buffers=True) as img:
        ar = img.arena(4, BS, registered=True)
        ar.submit([0, 1, 2, 3], [9 * BS, 2 * BS, 0, 5 * BS])
        assert drain_arena(ar, 4) == {s: BS for s in range(4)}
        assert bytes(ar.buffer(0)) == data[9 * BS:10 * BS]
        assert ar._queue.opcode == 4  # IORING_OP_READ_FIXED
        with pytest.raises(ValueError, match="registered-buffer table"):
            img.register_buffers([bytearray(BS)])
        with pytest.raises(ValueError, match="registered-buffer table"):
            img.arena(2, BS, registered=True)
    with block.open_image(image_path, aio="io_uring") as img:
        with pytest.raises(ValueError, match="fixed_buffers=True"):
            img.arena(2, BS, registered=True)
    with block.open_image(image_path, aio="threads") as img:
        with pytest.raises(ValueError, match="fixed_buffers=True"):
            img.arena(2, BS, registered=True)


@pytest.mark.parametrize("opts", [{"sqpoll": True}, {"fixed_files": True}, {}],
                         ids=["sqpoll", "fixed_files", "plain"])
def test_arena_refills_many_rounds(image_path: str, opts: Any) -> None:
    """Round after round of full-depth refills: the SQ always has room (an
    SQPOLL thread takes SQEs on its own time), every slot comes back once."""
    require_uring()
    data = contents(image_path)
    with block.open_image(image_path, aio="io_uring", queue_depth=8, **opts) as img:
        ar = img.arena(8, BS)
        rnd = random.Random(9)
        offs = {s: rnd.randrange(len(data) // BS) * BS for s in range(8)}
        ar.submit(list(offs), list(offs.values()))
        for _ in range(300):
            slots_, res = ar.reap(wait=True)
            assert list(res) == [BS] * len(slots_)
            for s in slots_:
                assert bytes(ar.buffer(s)) == data[offs[s]:offs[s] + BS]
                offs[s] = rnd.randrange(len(data) // BS) * BS
            ar.submit(list(slots_), [offs[s] for s in slots_])
        drain_arena(ar, ar.in_flight)


def test_an_arena_write_waits_for_a_read_modify_write(image_path: str) -> None:
    """O_DIRECT: a misaligned write is a read-modify-write of its block;
    an arena write to the same block submitted meanwhile goes after it,
    so neither undoes the other."""
    require_uring()
    with block.open_image(image_path, aio="io_uring", cache="none") as img:
        ar = img.arena(1, BS, write=True)
        ar.buffer(0)[:] = b"A" * BS
        rmw = img.submit_write(b"zz", 10)  # widened to the block at 0
        ar.submit([0], [0])                # the whole block, after the patch
        drain_arena(ar, 1)
        img.wait(rmw)
        assert rmw.error is None
        assert img.pread(BS, 0) == b"A" * BS  # the arena's write came last


# --- submit_batch: how many requests one submit call hands over ------------------------

@pytest.mark.parametrize("aio", ["io_uring", "native"])
def test_o_direct_submits_a_few_per_call(image_path: str, aio: str) -> None:
    """Under O_DIRECT a batch goes to the kernel DIRECT_SUBMIT_BATCH at a
    time (each its own io_uring_enter / io_submit), in order; buffered, all
    in one call; submit_batch= overrides either."""
    if aio == "io_uring":
        require_uring()
    data = contents(image_path)
    step = block.image.DIRECT_SUBMIT_BATCH
    for cache, batch, calls in (("none", None, -(-16 // step)), ("writeback", None, 1),
                                ("none", 0, 1), ("writeback", 3, 6)):
        with block.open_image(image_path, aio=aio, cache=cache, queue_depth=16,
                              submit_batch=batch) as img:
            bufs = slots(16)
            before = img.engine.submit_calls
            reqs = img.submit_reads(bufs, [i * BS for i in range(16)])
            assert img.engine.submit_calls - before == calls, (cache, batch)
            reap_all(img, 16)
            assert all(r.error is None for r in reqs)
            assert b"".join(bytes(b) for b in bufs) == data[:16 * BS]


def test_an_o_direct_arena_goes_to_the_device_at_once(image_path: str) -> None:
    """Buffered, an arena's SQEs wait in the SQ for the next reap (one
    io_uring_enter submits and waits); under O_DIRECT they are submitted
    at once, a few per enter, so the device starts on them."""
    require_uring()
    data = contents(image_path)
    for cache, left in (("writeback", 8), ("none", 0)):
        with block.open_image(image_path, aio="io_uring", cache=cache, queue_depth=8,
                              read_only=True) as img:
            ar = img.arena(8, BS)
            ar.submit(list(range(8)), [(7 - i) * BS for i in range(8)])
            assert img.engine.ring.sq_ready == left, cache
            drain_arena(ar, 8)
            for i in range(8):
                assert bytes(ar.buffer(i)) == data[(7 - i) * BS:(8 - i) * BS]


@pytest.mark.parametrize("bad,exc", [(-1, ValueError), (2.0, TypeError), ("4", TypeError),
                                     (True, TypeError)])
def test_submit_batch_is_checked_at_open(image_path: str, bad: Any, exc: type) -> None:
    with pytest.raises(exc, match="submit_batch"):
        block.open_image(image_path, aio="threads", submit_batch=bad)


def test_an_interrupted_o_direct_arena_submit_still_completes_each_slot_once(
        image_path: str) -> None:
    """io_uring under O_DIRECT hands an arena's SQEs over four per
    io_uring_enter; a signal handler's exception (Ctrl-C) at the third
    enter leaves the rest in the SQ, counted: they go with the next reap,
    so every slot completes once, with its data, and nothing is waited
    for in vain.  (The interruption is made at that exact call by a trace
    function, not timed.)"""
    require_uring()
    data = contents(image_path)
    with block.open_image(image_path, aio="io_uring", cache="none", queue_depth=16,
                          submit_batch=2) as img:
        ar = img.arena(12, BS)
        with interrupted_at(type(img.engine.ring).submit.__code__, 3):
            ar.submit(list(range(12)), [(11 - s) * BS for s in range(12)])
        got = drain_arena(ar, 12)
        assert got == {s: BS for s in range(12)}
        for s in range(12):
            assert bytes(ar.buffer(s)) == data[(11 - s) * BS:(12 - s) * BS]
        assert ar.in_flight == 0 and img.engine.in_flight == 0

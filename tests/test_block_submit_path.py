"""The one-buffer submit path of the block layer: the buffer's view and
address are taken once, at submit (``view_and_address``), for every kind
of buffer a caller may pass, on every engine; the request keeps its first
callback apart from those added later, and runs them all in order; the
io_uring engine's ring is set up with ``IORING_SETUP_COOP_TASKRUN`` (no
interrupt per completion) where the kernel allows it, and still finds
completions by polling.  Real kernel, real files."""

from __future__ import annotations

import array
import ctypes
import mmap
import os
import time
from typing import Any, Iterator, List

import pytest
from conftest import require_uring

from uring import abi, block
from uring.block.request import BlockRequest, view_and_address

ENGINES = ["io_uring", "native", "threads"]
BS = 4096


@pytest.fixture
def image_path(tmp_path: "os.PathLike[str]") -> Iterator[str]:
    path = os.path.join(tmp_path, "disk.img")
    with open(path, "wb") as f:
        f.write(os.urandom(16 * BS))
    yield path


def needs(aio: str) -> None:
    if aio == "io_uring":
        require_uring()


def on_disk(path: str, length: int, offset: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


# -- view_and_address ---------------------------------------------------------------


def test_view_and_address_is_the_buffer_s_own_first_byte() -> None:
    m = mmap.mmap(-1, 2 * BS)
    whole = ctypes.addressof(ctypes.c_char.from_buffer(m))
    v, address = view_and_address(memoryview(m)[BS:], True)
    assert address == whole + BS
    assert (v.nbytes, v.format, v.ndim) == (BS, "B", 1)
    ints = array.array("i", range(8))
    v, address = view_and_address(ints, True)
    assert (v.nbytes, v.format) == (32, "B")  # cast to bytes: a short read resumes by bytes
    assert address == ints.buffer_info()[0]
    two_d = memoryview(bytearray(64)).cast("B", (8, 8))
    v, address = view_and_address(two_d, False)
    assert (v.nbytes, v.ndim) == (64, 1)
    # a read-only buffer for a write: the engine takes its address (0 here)
    v, address = view_and_address(b"abc", False)
    assert (bytes(v), address) == (b"abc", 0)
    assert view_and_address(bytearray(), True)[1] == 0  # empty: nothing to point at


@pytest.mark.parametrize("bad, error", [
    (b"abc", TypeError),                          # a read into read-only memory
    (memoryview(bytearray(20))[::2], ValueError),  # strided
    (12, TypeError),                              # not a buffer
])
def test_view_and_address_refuses_what_as_view_refuses(bad: Any, error: type) -> None:
    with pytest.raises(error):
        view_and_address(bad, True)


def test_the_request_s_view_holds_the_memory_in_place() -> None:
    """The address taken at submit stays valid: the view the request keeps
    holds the export, so the bytearray cannot be resized under it."""
    buf = bytearray(BS)
    v, _ = view_and_address(buf, True)
    with pytest.raises(BufferError):
        buf.extend(b"x")
    del v
    buf.extend(b"x")


# -- every kind of buffer, every engine ---------------------------------------------


@pytest.mark.parametrize("aio", ENGINES)
def test_reads_and_writes_through_any_buffer_shape(image_path: str, aio: str) -> None:
    needs(aio)
    with block.open_image(image_path, aio=aio, queue_depth=8) as img:
        m = mmap.mmap(-1, 2 * BS)
        targets: List[Any] = [
            bytearray(BS),
            memoryview(m)[BS:],
            array.array("q", bytes(BS)),
            memoryview(bytearray(BS)).cast("B", (64, 64)),
        ]
        reqs = [img.submit_read(t, i * BS) for i, t in enumerate(targets)]
        img.wait()
        for i, (t, r) in enumerate(zip(targets, reqs)):
            assert r.value() == BS
            assert bytes(memoryview(t).cast("B")) == on_disk(image_path, BS, i * BS)
        payloads: List[Any] = [b"w" * BS, bytearray(b"x" * BS), array.array("B", b"y" * BS),
                               memoryview(bytearray(b"z" * BS)).cast("B", (64, 64))]
        for i, p in enumerate(payloads):
            img.submit_write(p, (8 + i) * BS)
        img.wait()
    for i, p in enumerate(payloads):
        assert on_disk(image_path, BS, (8 + i) * BS) == bytes(memoryview(p).cast("B"))


# -- callbacks ----------------------------------------------------------------------


@pytest.mark.parametrize("aio", ENGINES)
def test_submit_callback_runs_first_then_added_ones_in_order(image_path: str, aio: str) -> None:
    needs(aio)
    seen: List[str] = []
    with block.open_image(image_path, aio=aio, queue_depth=4) as img:
        req = img.submit_read(bytearray(BS), 0, lambda r: seen.append("submit"))
        req.add_done_callback(lambda r: seen.append("second"))
        req.add_done_callback(lambda r: seen.append("third"))
        assert len(req.callbacks) == 3
        bare = img.submit_read(bytearray(BS), BS)
        bare.add_done_callback(lambda r: seen.append("added to a bare request"))
        img.wait()
    assert seen == ["submit", "second", "third", "added to a bare request"]
    late: List[BlockRequest] = []
    req.add_done_callback(late.append)  # already finished: runs at once
    assert late == [req]


# -- the io_uring engine's ring ----------------------------------------------------


def test_the_engine_ring_defers_completion_task_work(image_path: str) -> None:
    """fio's io_uring engine sets up its ring with COOP_TASKRUN: a
    completion's task work waits for the thread's next entry into the
    kernel instead of interrupting it.  The image asks for it (with
    TASKRUN_FLAG, so a poll knows when to enter) and still sees every
    completion by polling alone, buffered and O_DIRECT."""
    require_uring()
    want = int(abi.IORING_SETUP_COOP_TASKRUN | abi.IORING_SETUP_TASKRUN_FLAG)
    for cache in ("writeback", "none"):
        with block.open_image(image_path, aio="io_uring", cache=cache, queue_depth=8) as img:
            flags = img.engine.ring.params.flags  # type: ignore[attr-defined]
            assert flags & want == want, (cache, hex(flags))
            page = mmap.mmap(-1, 4 * BS)
            reqs = [img.submit_read(memoryview(page)[i * BS:(i + 1) * BS], i * BS)
                    for i in range(4)]
            deadline = time.monotonic() + 10
            while not all(r.finished for r in reqs):
                assert time.monotonic() < deadline, "a poll never saw the completions"
                img.poll()
            for i, r in enumerate(reqs):
                assert r.value() == BS
                assert page[i * BS:(i + 1) * BS] == on_disk(image_path, BS, i * BS)


def test_sqpoll_engine_ring_is_set_up_without_coop_taskrun(image_path: str) -> None:
    """The kernel refuses COOP_TASKRUN beside SQPOLL (its thread runs the
    task work): an SQPOLL image must still open, and read."""
    require_uring()
    try:
        img = block.open_image(image_path, aio="io_uring", queue_depth=4, sqpoll=True)
    except PermissionError:
        pytest.skip("SQPOLL needs privileges this process lacks")
    with img:
        flags = img.engine.ring.params.flags  # type: ignore[attr-defined]
        assert flags & abi.IORING_SETUP_SQPOLL
        assert not flags & abi.IORING_SETUP_COOP_TASKRUN
        assert img.pread(BS, 0) == on_disk(image_path, BS, 0)

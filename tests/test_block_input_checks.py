"""Input checks of the block layer, on every engine: ``max_batch`` is
checked at open like ``queue_depth`` and ``submit_batch`` (nothing left
open when refused), ``BlockArena.submit`` refuses a bool slot or offset as
``pread`` refuses a bool offset (nothing submitted), and a closed image's
``reap``/``poll``/``step``/``wait`` say "I/O on a closed image" as a
submit does, whatever the engine (a fork child's copy still says
``RingForkedError``).  Real kernel, real files."""

from __future__ import annotations

import os
import signal
from array import array
from typing import Any, Callable, Iterator, List

import pytest
from conftest import require_uring

from uring import block
from uring.block.engine import make_engine
from uring.errors import RingForkedError

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


def open_fds() -> List[str]:
    return sorted(os.listdir("/proc/self/fd"))


def on_disk(path: str, length: int, offset: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


# -- max_batch ------------------------------------------------------------------------

BAD_MAX_BATCH = [(0, ValueError), (-1, ValueError), (2.5, TypeError), (True, TypeError),
                 (False, TypeError), ("x", TypeError), ("4", TypeError)]


@pytest.mark.parametrize("aio", ENGINES)
@pytest.mark.parametrize("value, error", BAD_MAX_BATCH, ids=[repr(v) for v, _ in BAD_MAX_BATCH])
def test_max_batch_is_refused_at_open_leaving_nothing_open(
        image_path: str, aio: str, value: Any, error: type) -> None:
    needs(aio)
    before = open_fds()
    with pytest.raises(error, match="max_batch must be"):
        block.open_image(image_path, aio=aio, queue_depth=8, max_batch=value)
    assert open_fds() == before  # no image fd, ring, AIO context or eventfd left
    # the engine itself refuses it too (make_engine without an image)
    fd = os.open(image_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with pytest.raises(error, match="max_batch must be"):
            make_engine(aio, fd, 8, None, value)
    finally:
        os.close(fd)
    assert open_fds() == before
    # None is still the default (half the queue depth); an int >= 1 is used
    with block.open_image(image_path, aio=aio, queue_depth=8, max_batch=None) as img:
        assert img.engine.max_batch == 4
    with block.open_image(image_path, aio=aio, queue_depth=8, max_batch=1) as img:
        assert img.engine.max_batch == 1
        with img.plugged():  # max_batch=1: each request goes as it is queued
            reqs = [img.submit_read(bytearray(512), i * 512) for i in range(3)]
            assert img.engine.submit_calls == 3 and not img.engine.pending
        img.wait()
        assert [r.value() for r in reqs] == [512] * 3
    assert open_fds() == before


# -- BlockArena.submit: bools ---------------------------------------------------------------

BOOL_CASES = [([0], [True]), ([0], [False]), ([True], [0]), ([False], [BS]),
              ([0, 1], [BS, True]), ([2, True], [0, BS])]


@pytest.mark.parametrize("aio", ENGINES)
@pytest.mark.parametrize("slots, offsets", BOOL_CASES, ids=[repr(c) for c in BOOL_CASES])
def test_arena_submit_refuses_bool_slots_and_offsets(image_path: str, aio: str,
                                                     slots: List[Any],
                                                     offsets: List[Any]) -> None:
    needs(aio)
    with block.open_image(image_path, aio=aio, queue_depth=8, read_only=True) as img:
        with pytest.raises(TypeError, match=r"offset"):
            img.pread(4, True)  # what the arena now matches
        ar = img.arena(4, BS)
        for s in range(4):
            ar.buffer(s)[:] = b"\xee" * BS
        which = "offsets" if any(o.__class__ is bool for o in offsets) else "slots"
        with pytest.raises(TypeError, match=f"{which} must be ints, not bool"):
            ar.submit(slots, offsets)
        # nothing submitted: nothing in flight, nothing to reap, no slot touched
        assert ar.in_flight == 0 and img.engine.in_flight == 0 and not img.engine.pending
        got, res = ar.reap(False)
        assert (list(got), list(res)) == ([], [])
        assert all(bytes(ar.buffer(s)) == b"\xee" * BS for s in range(4))
        # the same request with ints (as lists, arrays and a range) goes
        ints = [int(s) for s in slots]
        offs = [int(o) for o in offsets]
        for sl, of in ((ints, offs), (array("I", ints), array("q", offs)),
                       (ints, range(offs[0], offs[0] + BS * len(offs), BS))):
            ar.submit(sl, of)
            done: List[int] = []
            while len(done) < len(ints):
                got, res = ar.reap(True)
                assert list(res) == [BS] * len(got)
                done += got
            assert sorted(done) == sorted(ints)
            for s, o in zip(sl, of):
                assert bytes(ar.buffer(s)) == on_disk(image_path, BS, o)


# -- a closed image ---------------------------------------------------------------------------

CLOSED = "I/O on a closed image"


def outcome(fn: Callable[[], Any]) -> str:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - its class is the answer
        return type(exc).__name__
    return "ok"


def in_child(body: Callable[[], List[str]]) -> List[str]:
    """Run *body* in a forked child; its lines come back through a pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(r)
            signal.alarm(20)
            os.write(w, "\n".join(body()).encode())
            status = 0
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(w, f"child raised {type(exc).__name__}: {exc}".encode())
        finally:
            os._exit(status)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        out = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (status, out)
    return out.splitlines()


@pytest.mark.parametrize("aio", ENGINES)
def test_closed_image_refuses_reap_poll_step_wait_on_every_engine(image_path: str,
                                                                 aio: str) -> None:
    needs(aio)
    img = block.open_image(image_path, aio=aio, queue_depth=8)
    ar = img.arena(2, BS)
    img.submit_reads([bytearray(BS)], [0])
    assert len(img.reap(True)) == 1
    req = img.submit_read(bytearray(BS), BS)
    img.wait()
    img.close()
    calls = {
        "pread": lambda: img.pread(1, 0),
        "reap": img.reap,
        "reap(wait)": lambda: img.reap(True),
        "poll": img.poll,
        "step": img.step,
        "step(wait)": lambda: img.step(True),
        "wait": img.wait,
        "wait(req)": lambda: img.wait(req),
        "arena.reap": ar.reap,
        "arena.reap(wait)": lambda: ar.reap(True),
        "arena.submit": lambda: ar.submit([0], [0]),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=CLOSED) as info:
            call()
        assert type(info.value) is ValueError, (name, info.value)  # not RingClosedError
    img.close()  # still idempotent


@pytest.mark.parametrize("aio", ENGINES)
def test_fork_child_closed_copy_still_raises_forked_error(image_path: str, aio: str) -> None:
    """In a fork child the inherited image, closed there, is still the
    parent's business: every progress call says RingForkedError (wait too,
    with nothing outstanding), never the closed image's ValueError."""
    needs(aio)
    with block.open_image(image_path, aio=aio, queue_depth=8) as img:
        ar = img.arena(2, BS)

        def child() -> List[str]:
            img.close()
            return [outcome(img.reap), outcome(img.poll), outcome(img.step),
                    outcome(lambda: img.step(True)), outcome(img.wait),
                    outcome(lambda: ar.reap(True)), outcome(lambda: img.pread(1, 0))]

        assert in_child(child) == [RingForkedError.__name__] * 7
        assert img.pread(4, 0) == on_disk(image_path, 4, 0)  # the parent's goes on

"""A block image across ``fork()``: the child's copy is the parent's
business.  Whatever was in flight at the fork (arena slots and requests)
completes exactly once, in the parent, with its data; in the child every
use of the inherited image raises ``RingForkedError`` without touching the
parent's ring, AIO context or worker threads, ``close()`` closes the
child's copy quietly, and a new image opened in the child works.  Real
fork, real kernel, real files."""

from __future__ import annotations

import os
import signal
import time
from typing import Any, Callable, Dict, List

import pytest
from conftest import require_uring

from uring import block
from uring.errors import RingClosedError, RingForkedError
from uring.linux_aio import AioContext

ENGINES = ["io_uring", "native", "threads"]
BS = 4096
FORKED = RingForkedError.__name__


@pytest.fixture
def image_path(tmp_path: "os.PathLike[str]") -> str:
    path = os.path.join(tmp_path, "disk.img")
    with open(path, "wb") as f:
        f.write(os.urandom(64 * BS))
    return path


def contents(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def in_child(body: Callable[[], List[str]]) -> List[str]:
    """Run *body* in a forked child; what it returns (lines) comes back
    through a pipe.  The child leaves with ``os._exit``: no cleanup of the
    parent's objects runs there."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(r)
            signal.alarm(20)  # a child stuck in a wait dies, and the parent says so
            lines = body()
            os.write(w, "\n".join(lines).encode())
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


def outcome(fn: Callable[[], Any]) -> str:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - its class is the answer
        return type(exc).__name__
    return "ok"


@pytest.mark.parametrize("aio", ENGINES)
def test_in_flight_io_completes_once_in_the_parent(image_path: str, aio: str) -> None:
    if aio == "io_uring":
        require_uring()
    data = contents(image_path)
    with block.open_image(image_path, aio=aio, queue_depth=8, read_only=True) as img:
        ar = img.arena(4, BS)
        ar.submit([0, 1, 2], [5 * BS, 6 * BS, 7 * BS])
        bufs = [bytearray(BS) for _ in range(2)]
        reqs = img.submit_reads(bufs, [9 * BS, 10 * BS])

        def child() -> List[str]:
            new: Dict[str, str] = {}
            new["pread"] = outcome(lambda: img.pread(BS, 0))
            new["submit_read"] = outcome(lambda: img.submit_read(bytearray(BS), 0))
            new["arena.submit"] = outcome(lambda: ar.submit([3], [0]))
            new["arena.reap"] = outcome(lambda: ar.reap(True))
            new["reap"] = outcome(lambda: img.reap(True))
            new["poll"] = outcome(img.poll)
            new["wait"] = outcome(img.wait)
            new["close"] = outcome(img.close)
            new["close again"] = outcome(img.close)
            with block.open_image(image_path, aio=aio, read_only=True) as mine:
                new["own image"] = "ok" if mine.pread(BS, BS) == data[BS:2 * BS] else "bad data"
            return [f"{k}={v}" for k, v in new.items()]

        lines = dict(line.split("=", 1) for line in in_child(child))
        assert lines == {"pread": FORKED, "submit_read": FORKED, "arena.submit": FORKED,
                         "arena.reap": FORKED, "reap": FORKED, "poll": FORKED, "wait": FORKED,
                         "close": "ok", "close again": "ok", "own image": "ok"}
        # the parent: every slot and request once, with its data, without
        # blocking on anything the child may have taken
        got: Dict[int, int] = {}
        deadline = time.monotonic() + 10
        while (len(got) < 3 or not all(r.finished for r in reqs)) and time.monotonic() < deadline:
            slots, res = ar.reap(False)
            for s, n in zip(slots, res):
                assert s not in got, f"slot {s} came back twice"
                got[s] = n
            img.poll()
            time.sleep(0.001)
        assert got == {0: BS, 1: BS, 2: BS}
        for s in range(3):
            assert bytes(ar.buffer(s)) == data[(5 + s) * BS:(6 + s) * BS]
        assert [r.value() for r in reqs] == [BS, BS]
        assert bufs == [data[9 * BS:10 * BS], data[10 * BS:11 * BS]]
        # and the parent's image goes on
        assert img.pread(BS, 3 * BS) == data[3 * BS:4 * BS]


def test_an_aio_context_is_forgotten_in_the_child() -> None:
    """The completion ring's mapping is shared with the parent: the child
    must not read it (that would take the parent's events), nor
    io_destroy anything; using it raises RingForkedError."""
    ctx = AioContext(4)
    try:
        def child() -> List[str]:
            return [outcome(ctx.peek_words), outcome(lambda: ctx.wait_words(1, 0.01)),
                    outcome(ctx.close), str(ctx.closed)]

        assert in_child(child) == [FORKED, FORKED, "ok", "True"]
        assert not ctx.closed and len(ctx.peek_words()) == 0
    finally:
        ctx.close()


def test_ring_counters_after_close_raise_the_ring_s_error() -> None:
    """The SQ/CQ head and tail are read from the shared mapping: on a
    closed ring (unmapped) the ring's own error, not a released
    memoryview's; in a fork child, RingForkedError."""
    require_uring()
    import uring

    ring = uring.Ring(4)

    def child() -> List[str]:
        return [outcome(lambda: ring.sq_head), outcome(lambda: ring.cq_ready),
                outcome(lambda: ring.sq_ready)]

    assert in_child(child) == [FORKED] * 3
    assert ring.sq_ready == 0
    ring.close()
    for name in ("sq_head", "sq_tail", "sq_flags", "sq_dropped", "cq_head", "cq_tail",
                 "cq_overflow", "sq_ready", "cq_ready"):
        with pytest.raises(RingClosedError):
            getattr(ring, name)

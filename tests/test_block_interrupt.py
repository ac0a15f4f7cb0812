"""Ctrl-C in the middle of a wait loses nothing.

A signal handler's exception (``KeyboardInterrupt``) is raised where the
interpreter checks for signals: as a Python function starts.  These tests
raise it at every such point of an ``Image.wait()`` in turn (a trace
function counts the calls: the exact place, not a timed signal), on every
engine.  Whatever the place, the interrupt reaches the caller, and the next
``wait()`` finishes every request once, with its data: completions already
taken from the kernel are kept and delivered, none is lost (a lost one
would leave ``wait()`` and ``close()`` blocked for ever).
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from typing import Any, Iterator, List

import pytest
from conftest import require_uring

from uring import block

N = 6
BS = 4096


@pytest.fixture
def image_file(tmp_path: Any) -> Iterator[str]:
    path = os.path.join(str(tmp_path), "img")
    with open(path, "wb") as f:
        f.write(os.urandom(N * BS))
    yield path


def calls_during(fn: Any) -> int:
    """How many Python function calls *fn* makes (trace 'call' events)."""
    count = [0]

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if event == "call":
            count[0] += 1
        return None

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count[0]


def interrupt_at_call(nth: int, fn: Any) -> bool:
    """Run *fn*, raising KeyboardInterrupt as its *nth* Python call
    starts; whether it was raised (False: *fn* made fewer calls)."""
    count = [0]
    gc.collect()  # no earlier garbage's __del__ among the calls counted

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if event == "call":
            count[0] += 1
            if count[0] == nth:
                raise KeyboardInterrupt
        return None

    sys.settrace(tracer)
    try:
        fn()
    except KeyboardInterrupt:
        return True
    finally:
        sys.settrace(None)
    return False


def alarm(*_: Any) -> None:
    raise TimeoutError("wait() blocked: a completion was lost")


@pytest.mark.parametrize("aio", ["io_uring", "native", "threads"])
@pytest.mark.parametrize("callbacks", [False, True])
def test_an_interrupt_anywhere_in_wait_loses_no_completion(image_file: str, aio: str,
                                                           callbacks: bool) -> None:
    if aio == "io_uring":
        require_uring()
    with open(image_file, "rb") as f:
        content = f.read()

    def run(nth: int) -> bool:
        img = block.open_image(image_file, aio=aio)
        done: List[int] = []
        try:
            bufs = [bytearray(BS) for _ in range(N)]
            reqs = [img.submit_read(bufs[i], i * BS, (lambda r: done.append(r.offset))
                                    if callbacks else None) for i in range(N)]
            hit = interrupt_at_call(nth, img.wait) if nth else (img.wait() or False)
            old = signal.signal(signal.SIGALRM, alarm)
            signal.alarm(5)
            try:
                img.wait()
            finally:
                signal.alarm(0)
                signal.signal(signal.SIGALRM, old)
            assert all(r.finished and r.error is None for r in reqs), nth
            assert [bytes(b) for b in bufs] == [content[i * BS:(i + 1) * BS] for i in range(N)]
            if callbacks:
                # each callback ran once, unless the interrupt landed on its own first line
                assert len(done) == len(set(done)) and len(done) >= N - 1, (nth, done)
            assert img.engine.in_flight == 0 and not img.engine.pending
            return hit
        finally:
            img.close()

    hits = [run(nth) for nth in range(1, 80)]
    assert sum(hits) > 10  # the sweep did reach into the engine


def test_a_wait_broken_into_between_rounds_keeps_what_it_took() -> None:
    """The ring's own wait, with real signals: two NOPs are taken in the
    round that a first signal ends (EINTR, the handler returns), then a
    second signal's handler raises while the wait goes on for a pipe
    read; the next ``completions`` hands the NOPs out, with the read, and
    so does ``reap_words``."""
    require_uring()
    import uring

    signals = [0]

    def handler(*_: Any) -> None:
        signals[0] += 1
        if signals[0] >= 2:  # the first only ends a round (EINTR)
            signal.setitimer(signal.ITIMER_REAL, 0)
            raise KeyboardInterrupt

    r, w = os.pipe()
    old = signal.signal(signal.SIGALRM, handler)
    try:
        with uring.Ring(8) as ring:
            buf = bytearray(4)
            for take in ("completions", "reap_words"):
                signals[0] = 0
                ring.prep_nop(1)
                ring.prep_nop(2)
                ring.prep_read(r, buf, 0, 3)
                signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
                with pytest.raises(KeyboardInterrupt):
                    ring.completions(3)
                assert signals[0] >= 2
                assert ring.in_flight == 1  # the read; the NOPs' CQEs were taken and kept
                os.write(w, b"abcd")
                if take == "completions":
                    got = ring.completions(3)
                    assert sorted((c.user_data, c.result()) for c in got) == [(1, 0), (2, 0),
                                                                              (3, 4)]
                    assert [c.request.target for c in got if c.user_data == 3] == [r]
                else:
                    records: List[Any] = []
                    words = ring.reap_words(records=records)
                    assert list(words[0::2]) == [1, 2] and records == [None, None]
                    assert [c.user_data for c in ring.completions(1)] == [3]
                assert ring.in_flight == 0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("aio", ["io_uring", "native", "threads"])
def test_a_callback_that_resubmits_its_request_and_raises(image_file: str, aio: str) -> None:
    """Not an interruption: the request finished, its callback sent it again
    and then raised.  The exception reaches ``wait()``; the request is not
    delivered twice, and its second read lands once, with its data."""
    if aio == "io_uring":
        require_uring()
    with open(image_file, "rb") as f:
        content = f.read()
    img = block.open_image(image_file, aio=aio)
    try:
        buf = bytearray(BS)
        seen: List[int] = []

        def again(req: Any) -> None:
            seen.append(req.offset)
            if len(seen) == 1:
                img.resubmit([req], [2 * BS])
                raise ValueError("after resubmitting")

        req = img.submit_read(buf, 0, again)
        old = signal.signal(signal.SIGALRM, alarm)
        signal.alarm(10)
        try:
            with pytest.raises(ValueError, match="after resubmitting"):
                img.wait()
            img.wait()
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
        assert seen == [0, 2 * BS] and req.finished and req.result == BS
        assert bytes(buf) == content[2 * BS:3 * BS]
        assert img.engine.in_flight == 0
    finally:
        img.close()

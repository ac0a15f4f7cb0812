"""Rings and threads: a default ring belongs to one thread and says so; a
``threadsafe=True`` ring is shared and hands every completion out exactly
once, whatever the interleaving (real threads, real kernel)."""

from __future__ import annotations

import collections
import random
import sys
import threading
from typing import Any, Iterator, List

import pytest
from conftest import require_uring

import uring


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads as often as CPython allows: races show up at once."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def in_thread(fn: Any) -> List[BaseException]:
    errors: List[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert not t.is_alive()
    return errors


def test_a_default_ring_refuses_a_second_thread_and_names_the_way_out() -> None:
    require_uring()
    with uring.Ring(8) as ring:
        ring.prep_nop(1)
        errors = in_thread(lambda: ring.prep_nop(2))
        assert len(errors) == 1 and isinstance(errors[0], uring.RingThreadError)
        assert "threadsafe=True" in str(errors[0])
        assert ring.sq_ready == 1  # the refused prep wrote nothing
        for call in (ring.submit, ring.reap, lambda: ring.wait(1), ring.close,
                     lambda: ring.prep_nops([3, 4])):
            errors = in_thread(call)
            assert len(errors) == 1 and isinstance(errors[0], uring.RingThreadError), call
        assert [c.user_data for c in ring.wait(1)] == [1]


def test_release_thread_hands_a_default_ring_over() -> None:
    require_uring()
    with uring.Ring(8) as ring:
        ring.prep_nop(1)
        assert [c.user_data for c in ring.wait(1)] == [1]
        assert isinstance(in_thread(ring.release_thread)[0], uring.RingThreadError)
        ring.release_thread()
        got: List[int] = []

        def other() -> None:
            ring.prep_nop(2)
            got.extend(c.user_data for c in ring.wait(1))
            ring.release_thread()

        assert in_thread(other) == []
        assert got == [2]
        ring.prep_nop(3)
        assert [c.user_data for c in ring.wait(1)] == [3]


def test_a_collected_ring_is_closed_from_any_thread() -> None:
    """The finaliser may run in another thread: an unreachable ring has no
    user left, so it closes whoever owns it."""
    require_uring()
    ring = uring.Ring(8)
    ring.prep_nop(1)
    ring.wait(1)
    fd = ring.fd
    box = [ring]
    del ring
    assert in_thread(lambda: box.pop()) == []
    import os

    with pytest.raises(OSError):
        os.fstat(fd)


@pytest.mark.parametrize("run", range(20))
def test_concurrent_use_of_a_default_ring_is_an_error_never_a_duplicate(
        run: int, fast_switching: None) -> None:
    """Two threads prep, submit and reap NOPs on one default ring: every
    call either works or raises RingThreadError (while the other thread
    owns the ring); no completion is handed out twice, none is lost."""
    require_uring()
    with uring.Ring(64) as ring:
        seen: List[int] = []
        prepped: List[int] = []
        refused = collections.Counter()
        start = threading.Barrier(2)

        def worker(base: int) -> None:
            start.wait()
            for i in range(200):
                try:
                    ring.prep_nop(base + i)
                    prepped.append(base + i)
                    ring.submit()
                    seen.extend(c[0] for c in ring.reap(raw=True))
                except uring.RingThreadError:
                    refused[base] += 1

        threads = [threading.Thread(target=worker, args=(b,)) for b in (0, 10_000)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        # While one thread owned it, the other was refused, never both at once.
        assert min(refused[0], refused[10_000]) == 0, refused
        # The threads have ended: this one takes the ring over and drains.
        while len(seen) < len(prepped):
            got = ring.wait(1, timeout=5, raw=True)
            assert got, "a completion was lost"
            seen.extend(c[0] for c in got)
        assert sorted(seen) == sorted(prepped)  # each exactly once
        assert len(prepped) + sum(refused.values()) >= 200


def torture(ring: uring.Ring, threads: int, per_thread: int, seed: int) -> List[int]:
    rnd = random.Random(seed)
    seen: List[int] = []
    start = threading.Barrier(threads)
    errors: List[BaseException] = []

    def worker(base: int, rnd: random.Random) -> None:
        try:
            start.wait()
            i = 0
            while i < per_thread:
                action = rnd.random()
                if action < 0.4:
                    ring.prep_nop(base + i)
                    i += 1
                elif action < 0.55:
                    n = min(per_thread - i, rnd.randint(1, 4))
                    ring.prep_nops([base + i + k for k in range(n)])
                    i += n
                elif action < 0.7:
                    ring.submit()
                elif action < 0.85:
                    seen.extend(c[0] for c in ring.reap(raw=True))
                else:
                    seen.extend(c[0] for c in ring.wait(1, timeout=0.02, raw=True))
            ring.submit()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(t * 1_000_000, random.Random(rnd.random())))
            for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    assert not errors, errors[:3]
    total = threads * per_thread
    while len(seen) < total:
        got = ring.wait(1, timeout=5, raw=True)
        assert got, f"{total - len(seen)} completions never came"
        seen.extend(c[0] for c in got)
    return seen


@pytest.mark.parametrize("threads", [2, 8])
@pytest.mark.parametrize("run", range(20))
def test_a_threadsafe_ring_hands_every_completion_out_exactly_once(
        threads: int, run: int) -> None:
    require_uring()
    old = sys.getswitchinterval()
    rnd = random.Random(run * 31 + threads)
    sys.setswitchinterval(rnd.choice([1e-6, 1e-5, 1e-4, 5e-3]))
    try:
        with uring.Ring(16, threadsafe=True, sq_full="submit") as ring:
            per_thread = 400 if threads == 2 else 120
            seen = torture(ring, threads, per_thread, run)
            counts = collections.Counter(seen)
            expected = {t * 1_000_000 + i for t in range(threads) for i in range(per_thread)}
            assert set(counts) == expected
            assert max(counts.values()) == 1
            assert ring.in_flight == 0
    finally:
        sys.setswitchinterval(old)


def test_threadsafe_links_keep_other_threads_out_of_the_chain() -> None:
    """A chain is built under the SQ lock: another thread's SQE cannot land
    between its members (it would be linked in)."""
    require_uring()
    with uring.Ring(64, threadsafe=True) as ring:
        inside = threading.Event()
        release = threading.Event()

        def chain() -> None:
            with ring.link():
                ring.prep_nop(1)
                inside.set()
                release.wait(5)
                ring.prep_nop(2)

        t = threading.Thread(target=chain)
        t.start()
        inside.wait(5)
        other = threading.Thread(target=lambda: ring.prep_nop(3))
        other.start()
        other.join(0.2)
        assert other.is_alive()  # held off until the chain is complete
        release.set()
        t.join(5)
        other.join(5)
        flags = [ring.read_sqe(i).flags for i in range(3)]
        assert flags[:2] == [int(uring.abi.IOSQE_IO_LINK), 0] and flags[2] == 0
        assert sorted(c.user_data for c in ring.wait(3)) == [1, 2, 3]


@pytest.mark.parametrize("aio", ["io_uring", "native", "threads"])
def test_a_block_image_belongs_to_one_thread(aio: str, tmp_path: Any) -> None:
    """Every engine: another thread's call is refused (nothing queued),
    release_thread() hands the image over, the owner's data is intact."""
    require_uring()
    from uring import block

    path = tmp_path / "disk.img"
    path.write_bytes(b"\0" * 8192)
    cache = "none" if aio == "native" else "writeback"
    with block.open_image(path, aio=aio, cache=cache) as img:
        img.pwrite(b"a" * 4096, 0)
        for call in (lambda: img.pwrite(b"b" * 4096, 0), lambda: img.pread(4096, 0),
                     img.poll, img.wait, img.close):
            errors = in_thread(call)
            assert len(errors) == 1 and isinstance(errors[0], uring.RingThreadError), call
            assert "release_thread" in str(errors[0])
        assert img.pread(4096, 0) == b"a" * 4096
        img.release_thread()
        assert in_thread(lambda: (img.pwrite(b"c" * 4096, 0), img.release_thread())) == []
        assert img.pread(4096, 0) == b"c" * 4096


@pytest.mark.parametrize("depth", [0, -1, 2**32 + 4, 40000])
def test_a_block_queue_depth_is_checked_before_the_kernel(depth: int, tmp_path: Any) -> None:
    from uring import block

    path = tmp_path / "disk.img"
    path.write_bytes(b"\0" * 4096)
    with pytest.raises(ValueError, match="queue_depth"):
        block.open_image(path, aio="io_uring", queue_depth=depth)
    with pytest.raises(TypeError, match="queue_depth"):
        block.open_image(path, aio="io_uring", queue_depth="8")

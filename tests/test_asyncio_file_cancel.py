"""Cancellation of file operations: what the file says afterwards is what
happened on disk.

* A write the kernel has cannot be taken back.  A cancelled ``write``
  (binary or text, on both loops) may have landed in part or whole: the
  position moves past what landed, so the file holds exactly the bytes up
  to ``tell()`` and the next write lands after them.  Tens of MB, so that
  the cancel meets the write while the kernel is doing it.  A write that
  fails part way (``RLIMIT_FSIZE``: the first request short, the next
  ``EFBIG``) leaves the position past what landed too.
* The thread fallback (``ThreadFile``) keeps the read guarantee of the
  io_uring files: a read cancelled after its worker thread ran it
  consumes nothing (the position is put back), binary and text.
"""

from __future__ import annotations

import asyncio
import builtins
import resource
import signal
import time
from typing import Any, List, Tuple

import pytest

import uring.asyncio as ua
from uring.asyncio.threadfile import open_thread_file

_MB = 1 << 20


def _encoded(binary: bool, i: int, size: int) -> Tuple[Any, bytes]:
    """The *i*-th write's argument and its bytes on disk (text: two-byte
    characters, so the byte position is not the character count)."""
    if binary:
        data = bytes([65 + i % 26]) * size
        return data, data
    text = chr(0xC0 + i % 26) * (size // 2)
    return text, text.encode("utf-8")


@pytest.mark.parametrize("binary", [True, False])
def test_cancelled_write_moves_the_position_past_what_landed(run: Any, tmp_path: Any,
                                                             binary: bool) -> None:
    path = tmp_path / "w.dat"
    tail_arg, tail = _encoded(binary, 25, 10)

    async def main() -> List[Tuple[int, int, str]]:
        seen: List[Tuple[int, int, str]] = []
        kw: Any = {} if binary else {"encoding": "utf-8"}
        async with ua.open(path, "wb" if binary else "w", **kw) as f:
            for i, (size, delay) in enumerate([(s, d) for s in (64 << 10, 32 * _MB)
                                               for d in (0, 1, 2, 3)]):
                await f.seek(0)
                await f.truncate(0)
                arg, data = _encoded(binary, i, size)
                task = asyncio.ensure_future(f.write(arg))
                for _ in range(delay):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    await task
                    outcome = "written"
                except asyncio.CancelledError:
                    outcome = "cancelled"
                landed = await f.tell()
                seen.append((size, landed, outcome))
                if outcome == "written":
                    assert landed == len(data)
                # The file holds exactly what the position says landed ...
                assert 0 <= landed <= len(data)
                assert path.read_bytes() == data[:landed]
                # ... and the next write goes after it.
                await f.write(tail_arg)
                assert await f.tell() == landed + len(tail)
                assert path.read_bytes() == data[:landed] + tail
        return seen

    seen = run(main())
    # The case that matters happened: cancelled, yet (some of) it landed.
    assert any(outcome == "cancelled" and landed > 0 for _s, landed, outcome in seen), seen


@pytest.mark.parametrize("binary", [True, False])
def test_write_failing_part_way_moves_the_position_past_what_landed(
        run: Any, tmp_path: Any, binary: bool) -> None:
    path = tmp_path / "f.dat"
    limit = 60_000
    arg, data = _encoded(binary, 0, 100_000)

    async def main() -> Tuple[int, bytes]:
        kw: Any = {} if binary else {"encoding": "utf-8"}
        async with ua.open(path, "wb" if binary else "w", **kw) as f:
            soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
            old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
            try:
                with pytest.raises(OSError) as info:
                    await f.write(arg)  # 60000 bytes, then EFBIG
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
                signal.signal(signal.SIGXFSZ, old)
            assert info.value.errno == 27  # EFBIG
            pos = await f.tell()
            await f.write(b"!" if binary else "!")
        return pos, path.read_bytes()

    pos, on_disk = run(main())
    assert pos == limit
    assert on_disk == data[:limit] + b"!"


# -- the thread fallback ---------------------------------------------------------------


async def _cancel_after_the_worker_ran(coro: Any) -> None:
    """Start *coro* (a ThreadFile call), let its worker thread run the call
    to the end while the loop is held, then cancel the task before it sees
    the result: the call happened, the task is cancelled."""
    task = asyncio.ensure_future(coro)
    await asyncio.sleep(0)  # the call is on a worker thread now
    time.sleep(0.05)  # the loop held: the worker finishes
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("binary", [True, False])
def test_thread_file_cancelled_read_consumes_nothing(run: Any, tmp_path: Any,
                                                     binary: bool) -> None:
    path = tmp_path / "t.dat"
    lines = [f"line {i} {'é' * (i % 3)}\n" for i in range(50)]
    path.write_bytes("".join(lines).encode())

    async def main() -> List[Any]:
        f = await open_thread_file(path, "rb" if binary else "r", -1,
                                   None if binary else "utf-8", None, None, 0o666)
        got = []
        try:
            await _cancel_after_the_worker_ran(f.read(8))
            got.append(await f.read(8))
            await _cancel_after_the_worker_ran(f.readline())
            got.append(await f.readline())
            await _cancel_after_the_worker_ran(f.readlines(30))
            got.append(await f.readline())
            if binary:
                buf = bytearray(5)
                await _cancel_after_the_worker_ran(f.readinto(buf))
                got.append(await f.read(5))
            got.append(await f.tell())
        finally:
            await f.close()
        return got

    got = run(main())
    with builtins.open(path, "rb" if binary else "r", encoding=None if binary else "utf-8") as g:
        expected = [g.read(8), g.readline(), g.readline()]
        if binary:
            expected.append(g.read(5))
        expected.append(g.tell())
    assert got == expected


def test_thread_file_cancelled_reads_lose_no_data(run: Any, tmp_path: Any) -> None:
    """The tester's program: read(8) cancelled at random points, some
    after the worker read; the reads that returned are contiguous."""
    path = tmp_path / "c.dat"
    path.write_bytes(b"".join(b"%07d\n" % i for i in range(20_000)))

    async def main() -> Tuple[bytes, int]:
        f = await open_thread_file(path, "rb", -1, None, None, None, 0o666)
        out, cancels = [], 0
        for i in range(400):
            task = asyncio.ensure_future(f.read(8))
            if i % 3 == 0:
                await asyncio.sleep(0)
                time.sleep(0.002)  # the worker has it done; the task has not seen it
            elif i % 3 == 1:
                await asyncio.sleep(0.0002 * (i % 5))
            task.cancel()
            try:
                out.append(await task)
            except asyncio.CancelledError:
                cancels += 1
        await f.close()
        return b"".join(out), cancels

    data, cancels = run(main())
    assert cancels > 0
    assert data == b"".join(b"%07d\n" % k for k in range(len(data) // 8))

"""A cancelled read loses nothing, on a file that cannot be read twice too.

A FIFO (``os.mkfifo``) is read by a task that is then really cancelled,
at several points: before the bytes exist, after the kernel completed the
read (the loop held with ``time.sleep``, so the CQE is posted and not yet
reaped, or the worker thread is done), after the read's future resolved
but before its task resumed.  Whatever the point, the bytes written to the
FIFO come out of the file's reads exactly once and in order; in at least
one run the cancelled read had taken bytes out of the pipe (the case that
lost them before: they are kept in the file's read-ahead).  Binary and text
reads, both backends (io_uring files, ``kind="uring"``; the thread
fallback's ``ThreadFile``, ``kind="threads"``), both loops (``run``).

And a seekable file: a read cancelled after the kernel completed it moves
nothing, the next read returns the same bytes.
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import os
import termios
import time
from typing import Any, List, Tuple

import pytest

import uring.asyncio as ua
from uring.asyncio.threadfile import open_thread_file

KINDS = ["uring", "threads"]


async def _open(kind: str, path: Any, mode: str, buffering: int = -1) -> Any:
    encoding = None if "b" in mode else "utf-8"
    if kind == "threads":
        return await open_thread_file(path, mode, buffering, encoding, None, None, 0o666)
    return await ua.open(path, mode, buffering, encoding=encoding)


def _in_pipe(fd: int) -> int:
    """Bytes waiting in the pipe behind *fd* (``FIONREAD``)."""
    n = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, n)
    return n[0]


async def _cancel_at(task: "asyncio.Task[Any]", steps: int) -> Tuple[bool, Any]:
    """Hold the loop (the kernel or the worker finishes the read), then let
    *steps* loop steps pass, then cancel: (cancelled, result)."""
    time.sleep(0.05)
    for _ in range(steps):
        await asyncio.sleep(0)
    task.cancel()
    try:
        return False, await task
    except asyncio.CancelledError:
        return True, None


# One read of each kind, the data written, and how the rest is read back.
_READS = {
    "read": ("rb", lambda f: f.read(10)),
    "read1": ("rb", lambda f: f.read1(10)),
    "readinto": ("rb", None),
    "readline": ("rb", lambda f: f.readline()),
    "peek": ("rb", lambda f: f.peek(1)),
    "text read": ("r", lambda f: f.read(10)),
    "text readline": ("r", lambda f: f.readline()),
}
_PAYLOAD = "0123456789abcdéf\nline two\n"


def _applies(kind: str, what: str, buffering: int) -> bool:
    """Text, peek and read1 need a buffered file (as the builtin's)."""
    return not (buffering == 0 and (_READS[what][0] == "r" or what == "peek"
                                    or kind == "threads" and what == "read1"))


@pytest.mark.parametrize("kind, what, buffering", [
    (k, w, b) for k in KINDS for b in (-1, 0) for w in _READS if _applies(k, w, b)])
def test_cancelled_fifo_read_loses_nothing(run: Any, tmp_path: Any, kind: str, what: str,
                                           buffering: int) -> None:
    mode, start = _READS[what]
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    keep = os.open(fifo, os.O_RDWR)  # the write end, held open: no EOF, no blocking open
    payload = _PAYLOAD if mode == "r" else _PAYLOAD.encode()
    taken_by_cancelled: List[int] = []

    async def one(steps: int) -> Any:
        f = await _open(kind, fifo, mode, buffering)
        out: List[Any] = []
        try:
            if start is None:
                buf = bytearray(10)
                task = asyncio.ensure_future(f.readinto(buf))
            else:
                task = asyncio.ensure_future(start(f))
            await asyncio.sleep(0)
            await asyncio.sleep(0)  # the read is in the kernel (or on its thread)
            os.write(keep, _PAYLOAD.encode())
            cancelled, result = await _cancel_at(task, steps)
            if cancelled and _in_pipe(keep) < len(_PAYLOAD.encode()):
                taken_by_cancelled.append(steps)
            if not cancelled:
                out.append(bytes(buf[:result]) if start is None else
                           b"" if what == "peek" else result)
            # Everything else, as it comes: exactly the payload, in order.
            total = sum(map(len, out))
            while total < len(payload):
                piece = await asyncio.wait_for(f.read(len(payload) - total), 5)
                out.append(piece)
                total += len(piece)
            assert _in_pipe(keep) == 0
        finally:
            await f.close()
        return out

    try:
        for steps in range(4):
            got = run(one(steps))
            assert (b"" if mode == "rb" else "").join(got) == payload, (steps, got)
    finally:
        os.close(keep)
    # The case that lost the bytes before: a cancelled read had them.
    assert taken_by_cancelled, "no run cancelled a read the kernel had completed"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["rb", "r"])
def test_cancelled_fifo_readline_keeps_what_it_had_read(run: Any, tmp_path: Any, kind: str,
                                                        mode: str) -> None:
    """A ``readline`` that has taken part of a line (one read) and waits for
    the rest (a second read) is cancelled after the second read completed:
    both reads' bytes come back, in order, with the next ``readline``."""
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    keep = os.open(fifo, os.O_RDWR)
    line = "first part, second part\n"

    async def main() -> Tuple[bool, Any, int]:
        f = await _open(kind, fifo, mode)
        try:
            task = asyncio.ensure_future(f.readline())
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            os.write(keep, line[:12].encode())  # no newline yet: the line read goes on
            for _ in range(5):
                await asyncio.sleep(0.01)
            os.write(keep, line[12:].encode())
            cancelled, result = await _cancel_at(task, 0)
            left = _in_pipe(keep)
            if cancelled:
                result = await asyncio.wait_for(f.readline(), 5)
            return cancelled, result, left
        finally:
            await f.close()

    try:
        cancelled, got, left = run(main())
    finally:
        os.close(keep)
    assert got == (line if mode == "r" else line.encode())
    assert cancelled and left == 0  # the case: the cancelled readline had it all


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["rb", "r"])
def test_cancelled_read_of_a_seekable_file_moves_nothing(run: Any, tmp_path: Any, kind: str,
                                                         mode: str) -> None:
    """A regular file: a read cancelled at each point (the kernel completes
    it at once) leaves the position where it was: the reads that finished
    are the file, contiguous, each byte once."""
    path = tmp_path / "f"
    data = "".join(f"{i:07d}\n" for i in range(2000))
    path.write_bytes(data.encode())

    async def main() -> Tuple[Any, int]:
        f = await _open(kind, path, mode)
        out: List[Any] = []
        cancels = 0
        try:
            for i in range(60):
                task = asyncio.ensure_future(f.read(8) if i % 2 else f.readline())
                for _ in range(i % 4):
                    await asyncio.sleep(0)
                if i % 3 == 0:
                    time.sleep(0.002)
                task.cancel()
                try:
                    out.append(await task)
                except asyncio.CancelledError:
                    cancels += 1
        finally:
            await f.close()
        return (b"" if mode == "rb" else "").join(out), cancels

    got, cancels = run(main())
    assert cancels > 0
    assert got == (data if mode == "r" else data.encode())[:len(got)]


@pytest.mark.parametrize("kind", KINDS)
def test_unbuffered_fifo_readline_keeps_the_rest(run: Any, tmp_path: Any, kind: str) -> None:
    """``buffering=0``: ``readline`` takes the line, the bytes after it
    (read from the pipe with it) are the next read's, as the builtin's
    (which reads its line a byte at a time) leaves them in the pipe."""
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    keep = os.open(fifo, os.O_RDWR)

    async def main() -> List[bytes]:
        f = await _open(kind, fifo, "rb", 0)
        try:
            os.write(keep, b"one\ntwo\nthree")
            got = [await f.readline(), await f.readline()]
            got.append(await asyncio.wait_for(f.read(5), 5))
            return got
        finally:
            await f.close()

    try:
        assert run(main()) == [b"one\n", b"two\n", b"three"]
    finally:
        os.close(keep)

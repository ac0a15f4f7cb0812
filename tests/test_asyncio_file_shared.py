"""One ``uring.asyncio`` file object shared by several tasks, and the
small ways it must answer as the builtin file does.

aiofiles runs each call of the builtin file (which has its own lock) on a
thread: concurrent calls on one file behave as if made one after another.
Here the operations at the position wait their turn per file, in the order
they were called, so:

* two tasks looping ``read(100)`` read each byte once between them, in
  file order; ``gather(write(A), write(B))`` writes A then B; three tasks
  iterating the lines get each line once;
* a batch of ``seek``/``read``/``readline``/``tell``/``write``/
  ``truncate`` started at once gives, call by call, what the builtin file
  gives for the same calls made one by one;
* a call cancelled while it waits its turn does nothing.

Binary and text files, io_uring files on both loops (``run``) and the
thread fallback's ``ThreadFile``.  Then: ``read(-5)``, a FIFO's
``seekable()``/``tell()``/``seek()``, and a text ``seek()`` to a bogus
cookie, against the builtin's answers.
"""

from __future__ import annotations

import asyncio
import builtins
import errno
import functools
import os
import threading
from typing import Any, Callable, List, Tuple

import pytest

import uring.asyncio as ua
from uring.asyncio.threadfile import open_thread_file

KINDS = ["uring", "threads"]


async def _open(kind: str, path: Any, mode: str) -> Any:
    if kind == "threads":
        encoding = None if "b" in mode else "utf-8"
        return await open_thread_file(path, mode, -1, encoding, None, None, 0o666)
    if "b" in mode:
        return await ua.open(path, mode)
    return await ua.open(path, mode, encoding="utf-8")


def _content(binary: bool) -> Any:
    text = "".join(f"line {i:04d} {'é' * (i % 5)}\n" for i in range(300))
    return text.encode() if binary else text


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("binary", [True, False])
def test_two_readers_read_each_byte_once(run: Any, tmp_path: Any, kind: str,
                                         binary: bool) -> None:
    path = tmp_path / "r.dat"
    data = _content(binary)
    path.write_bytes(data if binary else data.encode())
    mode = "rb" if binary else "r"

    async def main() -> List[Any]:
        f = await _open(kind, path, mode)
        got: List[Any] = []

        async def reader() -> None:
            while True:
                chunk = await f.read(100)
                if not chunk:
                    return
                got.append(chunk)

        await asyncio.gather(reader(), reader())
        await f.close()
        return got

    got = run(main())
    with builtins.open(path, mode, encoding=None if binary else "utf-8") as g:
        expected = list(iter(lambda: g.read(100), b"" if binary else ""))
    assert got == expected


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("binary", [True, False])
def test_concurrent_writes_land_one_after_another(run: Any, tmp_path: Any, kind: str,
                                                  binary: bool) -> None:
    path = tmp_path / "w.dat"
    pieces = [c * 100_000 for c in "ABC"]
    if binary:
        pieces = [p.encode() for p in pieces]  # type: ignore[misc]

    async def main() -> List[int]:
        f = await _open(kind, path, "wb" if binary else "w")
        counts = await asyncio.gather(*(f.write(p) for p in pieces))
        await f.close()
        return list(counts)

    assert run(main()) == [100_000] * 3
    assert path.read_bytes() == b"A" * 100_000 + b"B" * 100_000 + b"C" * 100_000


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("binary", [True, False])
def test_three_iterators_get_each_line_once(run: Any, tmp_path: Any, kind: str,
                                            binary: bool) -> None:
    path = tmp_path / "lines.dat"
    data = _content(binary)
    path.write_bytes(data if binary else data.encode())

    async def main() -> List[Any]:
        f = await _open(kind, path, "rb" if binary else "r")
        got: List[Any] = []

        async def each() -> None:
            async for line in f:
                got.append(line)
                await asyncio.sleep(0)

        await asyncio.gather(each(), each(), each())
        await f.close()
        return got

    assert run(main()) == data.splitlines(keepends=True)


# A batch of calls at the position, started at once: each call's result
# must be the builtin's for the same calls made one by one.
_BATCH: List[Tuple[Any, ...]] = [
    ("read", 7), ("tell",), ("readline",), ("seek", 3), ("read", 4), ("tell",),
    ("write", "XYZ"), ("tell",), ("seek", 0), ("readline",), ("readline",),
    ("seek", 0, os.SEEK_END), ("write", "end\n"), ("tell",), ("seek", 0),
    ("truncate", 40), ("read",), ("tell",), ("flush",),
]


def _builtin_batch(path: Any, binary: bool) -> List[Any]:
    out: List[Any] = []
    with builtins.open(path, "r+b" if binary else "r+", encoding=None if binary else "utf-8") as g:
        for op in _BATCH:
            name, args = op[0], list(op[1:])
            if name == "write":
                args = [args[0].encode() if binary else args[0]]
            if name == "truncate":
                g.flush()
            out.append(getattr(g, name)(*args))
    return out


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("binary", [True, False])
def test_calls_started_together_run_in_call_order(run: Any, tmp_path: Any, kind: str,
                                                  binary: bool) -> None:
    initial = "".join(f"{i:02d}abcdefgh\n" for i in range(8))
    reference = tmp_path / "ref.dat"
    reference.write_bytes(initial.encode())
    expected = _builtin_batch(reference, binary)
    path = tmp_path / "f.dat"
    path.write_bytes(initial.encode())

    async def main() -> List[Any]:
        f = await _open(kind, path, "r+b" if binary else "r+")
        calls = []
        for op in _BATCH:
            name, args = op[0], list(op[1:])
            if name == "write":
                args = [args[0].encode() if binary else args[0]]
            calls.append(getattr(f, name)(*args))
        results = await asyncio.gather(*calls)
        if kind == "uring":
            # Nobody waiting: an operation served without the kernel does
            # not even take a loop step.
            step = f.tell()
            with pytest.raises(StopIteration):
                step.send(None)
        await f.close()
        return list(results)

    got = run(main())
    assert got == expected
    assert path.read_bytes() == reference.read_bytes()


@pytest.mark.parametrize("kind", KINDS)
def test_call_cancelled_in_the_queue_does_nothing(run: Any, tmp_path: Any, kind: str) -> None:
    path = tmp_path / "q.dat"
    path.write_bytes(bytes(range(100)))

    async def main() -> Tuple[Any, ...]:
        f = await _open(kind, path, "r+b")
        first = asyncio.ensure_future(f.read(10))
        second = asyncio.ensure_future(f.read(10))
        third = asyncio.ensure_future(f.write(b"!!"))
        fourth = asyncio.ensure_future(f.read(10))
        await asyncio.sleep(0)  # all four called; the first holds the file
        second.cancel()
        third.cancel()
        got = (await first, await fourth, second.cancelled(), third.cancelled())
        tell = await f.tell()
        await f.close()
        return got + (tell,)

    first, fourth, c2, c3, tell = run(main())
    assert (c2, c3) == (True, True)
    assert first == bytes(range(10))
    assert fourth == bytes(range(10, 20))
    assert tell == 20
    assert path.read_bytes() == bytes(range(100))


# -- answers as the builtin's ------------------------------------------------------------


def _outcome(fn: Callable[[], Any]) -> Any:
    try:
        return ("ok", fn())
    except OSError as exc:
        return (type(exc).__name__, exc.errno)
    except Exception as exc:  # noqa: BLE001 - the exception is the answer
        return (type(exc).__name__, str(exc))


async def _aoutcome(aw: Any) -> Any:
    try:
        return ("ok", await aw)
    except OSError as exc:
        return (type(exc).__name__, exc.errno)
    except Exception as exc:  # noqa: BLE001 - the exception is the answer
        return (type(exc).__name__, str(exc))


@pytest.mark.parametrize("mode,buffering", [("rb", -1), ("rb", 0), ("r", -1)])
def test_negative_read_size_as_builtin(run: Any, tmp_path: Any, mode: str,
                                       buffering: int) -> None:
    path = tmp_path / "n.dat"
    path.write_bytes(b"0123456789\nabc\n")
    async def main() -> List[Any]:
        out = []
        async with ua.open(path, mode, buffering) as f:
            for n in (-5, -2, -1):
                await f.seek(0)
                out.append(await _aoutcome(f.read(n)))
        return out

    with builtins.open(path, mode, buffering) as g:
        expected = []
        for n in (-5, -2, -1):
            g.seek(0)
            expected.append(_outcome(functools.partial(g.read, n)))
    assert run(main()) == expected


@pytest.mark.parametrize("mode,buffering", [("rb", -1), ("rb", 0), ("r", -1), ("wb", -1)])
def test_fifo_is_not_seekable(run: Any, tmp_path: Any, mode: str, buffering: int) -> None:
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    keep = os.open(fifo, os.O_RDWR)  # both ends open: no open blocks
    calls: List[Tuple[Any, ...]] = [("seekable",), ("tell",), ("seek", 0), ("seek", 0, 1)]
    if "w" in mode:
        calls.append(("truncate",))
    try:
        with builtins.open(fifo, mode, buffering) as g:
            expected = [_outcome(functools.partial(getattr(g, c[0]), *c[1:])) for c in calls]

        async def main() -> List[Any]:
            out = []
            async with ua.open(fifo, mode, buffering) as f:
                for c in calls:
                    value = getattr(f, c[0])(*c[1:])
                    out.append(await _aoutcome(value) if c[0] != "seekable"
                               else ("ok", bool(value)))
                if "r" in mode:
                    os.write(keep, b"data\n")
                    out.append(await f.readline())  # and it still reads
            return out

        got = run(main())
    finally:
        os.close(keep)
    assert got[:len(calls)] == expected
    assert expected[0] == ("ok", False)
    if "r" in mode:
        assert got[-1] in (b"data\n", "data\n")


@pytest.mark.parametrize("cookie", [123456789012345678901234567890, 1 << 200, (1 << 63) + 5])
def test_text_seek_to_a_bogus_cookie_fails_at_the_seek(run: Any, tmp_path: Any,
                                                       cookie: int) -> None:
    path = tmp_path / "t.txt"
    path.write_text("0123456789")
    with builtins.open(path) as g:
        g.read(2)
        expected = (_outcome(lambda: g.seek(cookie)), g.read())

    async def main() -> Any:
        async with ua.open(path) as f:
            await f.read(2)
            return (await _aoutcome(f.seek(cookie)), await f.read())

    got = run(main())
    assert got == expected
    assert got[0][0] != "ok"


@pytest.mark.parametrize("buffering", [-1, 0])
@pytest.mark.parametrize("offset", [1 << 62, 1 << 63, 1 << 64])
def test_binary_seek_far_fails_at_the_seek(run: Any, tmp_path: Any, buffering: int,
                                           offset: int) -> None:
    path = tmp_path / "b.dat"
    path.write_bytes(b"0123456789")
    with builtins.open(path, "rb", buffering) as g:
        g.read(2)
        first = _outcome(lambda: g.seek(offset))
        expected = (first, g.read() if first[0] != "ok" else None)

    async def main() -> Any:
        async with ua.open(path, "rb", buffering) as f:
            await f.read(2)
            first = await _aoutcome(f.seek(offset))
            return (first, await f.read() if first[0] != "ok" else None)

    assert run(main()) == expected


def test_fifo_open_blocks_until_a_writer(run: Any, tmp_path: Any) -> None:
    """(The FIFO above had both ends open; this one's writer comes later,
    on a thread, and the data still arrives in order through reads that
    do not seek.)"""
    fifo = str(tmp_path / "fifo2")
    os.mkfifo(fifo)
    payload = b"".join(b"%05d\n" % i for i in range(2000))

    def writer() -> None:
        with builtins.open(fifo, "wb") as w:
            w.write(payload)

    async def main() -> bytes:
        t = threading.Thread(target=writer)
        t.start()
        try:
            async with ua.open(fifo, "rb") as f:
                assert not f.seekable()
                with pytest.raises(OSError) as info:
                    await f.tell()
                assert info.value.errno == errno.ESPIPE
                lines = [line async for line in f]
        finally:
            await asyncio.get_running_loop().run_in_executor(None, t.join)
        return b"".join(lines)

    assert run(main()) == payload

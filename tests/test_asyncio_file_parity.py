"""The same steps give the same results as the builtin ``open()``'s file
(which aiofiles runs on a thread), on both backends (io_uring files,
``kind="uring"``, and the thread fallback's ``ThreadFile``,
``kind="threads"``) and both loops (``run``):

* append mode: ``tell()`` after writes, after a read and a write in
  ``"a+b"``, in ``"ab"``/``"a"``/``"a+"`` (the reference is the builtin
  file flushed after each write, as the package's writes go out at once:
  the builtin's buffered file reports, until it flushes, where the bytes
  would have gone without ``O_APPEND``);
* text ``"r+"``: a write or ``truncate()`` after a read lands where the
  builtin's lands (after its 8 KiB read-ahead, or what ``read(n)`` asked
  for, or the block its buffered file read at a ``seek()`` that fed the
  decoder); explicit cases, then random programs;
* ``detach()``, ``raw``, ``buffer``: what they return, and every
  operation afterwards, as the builtin's;
* the exception (type and message) of each operation a file cannot do:
  every mode and buffering, open and closed, bad arguments.
"""

from __future__ import annotations

import builtins
import functools
import io
import os
import random
from typing import Any, Callable, Dict, List, Tuple

import pytest

import uring.asyncio as ua
from uring.asyncio.threadfile import open_thread_file

KINDS = ["uring", "threads"]


async def _open(kind: str, path: Any, mode: str, buffering: int = -1,
                encoding: Any = None, newline: Any = None) -> Any:
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    if kind == "threads":
        return await open_thread_file(path, mode, buffering, encoding, None, newline, 0o666)
    return await ua.open(path, mode, buffering, encoding=encoding, newline=newline)


def _outcome(fn: Callable[[], Any]) -> Any:
    try:
        value = fn()
    except OSError as exc:
        return (type(exc).__name__, exc.errno, None if exc.errno else str(exc))
    except Exception as exc:  # noqa: BLE001 - the exception is the answer
        return (type(exc).__name__, str(exc))
    return ("ok", value if isinstance(value, (bytes, str, int, list, type(None))) else
            type(value).__name__)


async def _aoutcome(fn: Callable[[], Any]) -> Any:
    try:
        value = fn()
        if hasattr(value, "__await__"):
            value = await value
    except OSError as exc:
        return (type(exc).__name__, exc.errno, None if exc.errno else str(exc))
    except Exception as exc:  # noqa: BLE001 - the exception is the answer
        return (type(exc).__name__, str(exc))
    return ("ok", value if isinstance(value, (bytes, str, int, list, type(None))) else
            type(value).__name__)


def _result(obj: Any, name: Any, *args: Any) -> Any:
    """``obj.name(*args)``'s outcome (the method missing too)."""
    return _outcome(lambda: getattr(obj, name)(*args))


async def _aresult(obj: Any, name: Any, *args: Any) -> Any:
    """``obj.name(*args)``'s outcome, awaited if it is awaitable."""
    return await _aoutcome(lambda: getattr(obj, name)(*args))


def _attr(obj: Any, attr: str) -> Any:
    return _outcome(lambda: getattr(obj, attr))


def _builtin_steps(path: Any, mode: str, steps: List[Tuple[Any, ...]], buffering: int = -1,
                   encoding: Any = None, newline: Any = None,
                   flush_writes: bool = False) -> List[Any]:
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    out = []
    with builtins.open(path, mode, buffering, encoding=encoding, newline=newline) as g:
        for name, *args in steps:
            out.append(_result(g, name, *args))
            if flush_writes and name == "write":
                g.flush()
    return out


async def _our_steps(kind: str, path: Any, mode: str, steps: List[Tuple[Any, ...]],
                     buffering: int = -1, encoding: Any = None,
                     newline: Any = None) -> List[Any]:
    f = await _open(kind, path, mode, buffering, encoding, newline)
    try:
        return [await _aresult(f, name, *args) for name, *args in steps]
    finally:
        await f.close()


# -- 1. append mode ----------------------------------------------------------------------

_APPEND: Dict[str, List[Tuple[Any, ...]]] = {
    "a+b": [("seek", 0), ("read", 3), ("write", b"AB"), ("tell",), ("read",), ("seek", 0, 1),
            ("seek", 0), ("read", 4), ("write", b"CD"), ("tell",), ("seek", 2),
            ("readline",), ("write", b"EF"), ("tell",), ("seek", 0), ("read",), ("tell",)],
    "ab": [("tell",), ("write", b"AB"), ("tell",), ("seek", 0), ("write", b"CD"), ("tell",),
           ("seek", 3), ("tell",), ("write", b"EF"), ("seek", 0, 1)],
    "a+": [("seek", 0), ("read", 3), ("write", "AB"), ("tell",), ("read",), ("seek", 0),
           ("readline",), ("write", "CD\n"), ("tell",), ("seek", 0), ("read",), ("tell",)],
    "a": [("tell",), ("write", "AB"), ("tell",), ("seek", 0), ("write", "CD"), ("tell",),
          ("seek", 0, 1)],
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", list(_APPEND))
def test_append_mode_tell_as_builtin(run: Any, tmp_path: Any, kind: str, mode: str) -> None:
    initial = b"0123456789\nabc\n"
    ref, ours = tmp_path / "ref", tmp_path / "ours"
    ref.write_bytes(initial)
    ours.write_bytes(initial)
    steps = _APPEND[mode]
    expected = _builtin_steps(ref, mode, steps, flush_writes=True)
    got = run(_our_steps(kind, ours, mode, steps))
    assert got == expected
    assert ours.read_bytes() == ref.read_bytes()
    if mode == "a+b":  # the case: a read, a write, then tell() is the end of the file
        assert got[3] == ("ok", len(initial) + 2)


# -- 2. text "r+": where a write after a read lands -----------------------------------------

_LINES = "".join(f"line {i:05d} {'é' * (i % 3)}\n" for i in range(2000))  # ~30 KB

_R_PLUS: Dict[str, Tuple[str, List[Tuple[Any, ...]]]] = {
    "small read": ("0123456789\n", [("read", 2), ("write", "XY"), ("tell",), ("read",)]),
    "read": (_LINES, [("read", 2), ("write", "XY"), ("tell",), ("read", 5)]),
    "readline": (_LINES, [("readline",), ("write", "XY"), ("tell",), ("readline",)]),
    "read hint": (_LINES, [("read", 10000), ("write", "XY"), ("tell",), ("read", 5)]),
    "read 8200": (_LINES, [("read", 8200), ("write", "XY"), ("flush",), ("read", 3),
                           ("write", "Z"), ("tell",)]),
    "read all": (_LINES, [("read",), ("write", "END"), ("tell",)]),
    "truncate": (_LINES, [("read", 7), ("truncate",), ("tell",), ("read", 3), ("seek", 0, 2)]),
    "seek tell": (_LINES, [("read", 7), ("seek", 0, 1), ("write", "XY"), ("tell",)]),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", list(_R_PLUS))
def test_text_write_after_read_lands_as_builtin(run: Any, tmp_path: Any, kind: str,
                                                case: str) -> None:
    text, steps = _R_PLUS[case]
    ref, ours = tmp_path / "ref", tmp_path / "ours"
    ref.write_bytes(text.encode())
    ours.write_bytes(text.encode())
    expected = _builtin_steps(ref, "r+", steps)
    assert run(_our_steps(kind, ours, "r+", steps)) == expected
    assert ours.read_bytes() == ref.read_bytes()


def _feeding_cookie(path: Any, buffering: int) -> int:
    """A ``tell()`` cookie in the middle of a ``"\\r\\n"`` (a pending
    ``"\\r"``): a seek back to it feeds the decoder one byte."""
    with builtins.open(path, buffering=buffering, encoding="utf-8") as g:
        g.read(2)
        cookie = g.tell()
    assert cookie >> 96  # bytes to feed: the case these tests are about
    return cookie


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("buffering", [-1, 100, 5000])
def test_text_reads_after_a_seek_that_fed_the_decoder(run: Any, tmp_path: Any, kind: str,
                                                      buffering: int) -> None:
    """The builtin's seek to such a cookie reads a block of its buffer size
    there, and its next chunks take the rest of that block first: the
    ``tell()`` cookies after the reads are the builtin's."""
    path = tmp_path / "f"
    path.write_bytes(b"x\r" * 9000)
    cookie = _feeding_cookie(path, buffering)
    steps: List[Tuple[Any, ...]] = [("seek", cookie)]
    for n in (1, 40, 30, 5000, 3, 9000, 2):
        steps += [("read", n), ("tell",)]
    steps += [("seek", cookie), ("read", 3), ("seek", cookie), ("read", 1), ("tell",)]
    expected = _builtin_steps(path, "r", steps, buffering)
    assert run(_our_steps(kind, path, "r", steps, buffering)) == expected


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("buffering", [-1, 100, 5000])
def test_text_write_after_a_seek_that_fed_the_decoder(run: Any, tmp_path: Any, kind: str,
                                                      buffering: int) -> None:
    """In a writable file the reads are as if flushed first (both backends:
    the thread fallback's text reads ask ``tell()`` first, which flushes
    the builtin's ``BufferedRandom`` and empties its read buffer): the
    reference is the builtin flushed before each read."""
    text = "x\r" * 9000
    ref, ours = tmp_path / "ref", tmp_path / "ours"
    ref.write_bytes(text.encode())
    ours.write_bytes(text.encode())
    cookie = _feeding_cookie(ref, buffering)
    steps = [("seek", cookie), ("read", 1), ("write", "W"), ("tell",), ("read", 3),
             ("seek", cookie), ("read", 3), ("write", "V"), ("seek", cookie), ("read", 2),
             ("tell",), ("write", "U"), ("read", 2), ("seek", cookie), ("seek", 0, 1),
             ("read", 1), ("write", "T"), ("tell",)]
    expected = []
    with builtins.open(ref, "r+", buffering, encoding="utf-8") as g:
        for name, *args in steps:
            if name == "read":
                g.flush()
            expected.append(_result(g, name, *args))
    assert run(_our_steps(kind, ours, "r+", steps, buffering)) == expected
    assert ours.read_bytes() == ref.read_bytes()


@pytest.mark.parametrize("kind", KINDS)
def test_tell_after_a_seek_that_fed_the_decoder_loses_nothing(run: Any, tmp_path: Any,
                                                              kind: str) -> None:
    """``seek(tell())`` after a read that followed such a seek reads on
    from the same character: the cookie's search decodes past the bytes
    the snapshot holds (as C's does, reading its NUL terminator) instead
    of taking a position past bytes it never decoded (which skipped a
    ``"\\r"``, so a newline was lost)."""
    path = tmp_path / "f"
    path.write_bytes(b"x\r" * 9000)
    cookie = _feeding_cookie(path, -1)
    steps = [("seek", cookie), ("read", 3), ("seek", cookie), ("read", 1), ("tell",)]
    expected = _builtin_steps(path, "r", steps)

    async def main() -> Tuple[List[Any], str]:
        f = await _open(kind, path, "r")
        try:
            got = [await _aresult(f, name, *args) for name, *args in steps]
            await f.seek(got[-1][1])
            return got, await f.read(3)
        finally:
            await f.close()

    got, after = run(main())
    assert got == expected
    assert after == "\nx\n"


def _random_text(rnd: random.Random, n: int) -> str:
    return "".join(rnd.choice(["a", "bc", "é", "€", "\n", "\r\n", "\r", "😀", "xyz"])
                   for _ in range(n))


def _random_program(rnd: random.Random) -> List[Tuple[Any, ...]]:
    ops: List[Tuple[Any, ...]] = []
    for _ in range(20):
        c = rnd.random()
        if c < 0.3:
            ops.append(("read", rnd.choice([0, 1, 3, 100, 4000, 8191, 8193, 9000, 20000, -1])))
        elif c < 0.45:
            ops.append(("readline", rnd.choice([-1, -1, 0, 5, 9000])))
        elif c < 0.6:
            ops.append(("write", _random_text(rnd, rnd.choice([1, 3, 50, 5000]))))
        elif c < 0.72:
            ops.append(("tell",))
        elif c < 0.82:
            ops.append(("cookie", rnd.randrange(100)))
        elif c < 0.87:
            ops.append(("seek",) + rnd.choice([(0,), (0, 2), (0, 1)]))
        elif c < 0.92:
            ops.append(("truncate",) + rnd.choice([(), (), (10,), (5000,)]))
        else:
            ops.append(("readlines", rnd.choice([-1, 10, 3000])))
    return ops


def _builtin_readlines(g: Any, hint: int) -> List[str]:
    """The builtin text file's ``readlines`` as ``readline`` gives them (its
    own iterates, which turns ``tell()`` off and can leave it wrong after:
    a CPython quirk the package does not copy)."""
    lines: List[str] = []
    total = 0
    while True:
        line = g.readline()
        if not line:
            return lines
        lines.append(line)
        total += len(line)
        if 0 < hint < total:
            return lines


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(6))
def test_text_random_programs_as_builtin(run: Any, tmp_path: Any, kind: str, seed: int) -> None:
    """Random reads, writes, seeks (to ``tell()`` cookies too), truncates on
    a text file in ``r+``, ``w+``, ``a+`` with several encodings, newline
    modes and buffer sizes: every result, every cookie and the bytes on
    disk are the builtin's.  (A read right after a write is preceded by a
    flush on both: CPython 3.11's buffered file reads from before its
    pending writes there.)"""
    rnd = random.Random(seed)
    cases = []
    for _ in range(6):
        text = _random_text(rnd, rnd.choice([0, 10, 3000, 9000]))
        enc = rnd.choice(["utf-8", "utf-16", "latin-1"])
        newline = rnd.choice([None, "", "\n", "\r", "\r\n"])
        mode = rnd.choice(["r+", "r+", "w+", "a+"])
        buffering = rnd.choice([-1, 1, 16, 5000])
        cases.append((text, enc, newline, mode, buffering, _random_program(rnd)))

    async def ours(i: int, path: Any) -> List[Any]:
        text, enc, newline, mode, buffering, ops = cases[i]
        f = await _open(kind, path, mode, buffering, enc, newline)
        out: List[Any] = []
        cookies: List[Any] = []
        pending = False
        try:
            for name, *args in ops:
                if name == "cookie":
                    if not cookies:
                        continue
                    name, args = "seek", [cookies[args[0] % len(cookies)]]
                if pending and name in ("read", "readline", "readlines"):
                    await f.flush()
                pending = name == "write" or pending and name not in (
                    "read", "readline", "readlines", "seek", "truncate", "tell")
                got = await _aresult(f, name, *args)
                if name == "tell" and got[0] == "ok":
                    cookies.append(got[1])
                out.append((name, got))
        finally:
            await f.close()
        return out

    for i, (text, enc, newline, mode, buffering, ops) in enumerate(cases):
        data = text.encode(enc, "replace")
        ref, mine = tmp_path / f"ref{i}", tmp_path / f"ours{i}"
        ref.write_bytes(data)
        mine.write_bytes(data)
        expected: List[Any] = []
        cookies: List[Any] = []
        pending = False
        with builtins.open(ref, mode, buffering, encoding=enc, newline=newline) as g:
            for name, *args in ops:
                if name == "cookie":
                    if not cookies:
                        continue
                    name, args = "seek", [cookies[args[0] % len(cookies)]]
                if pending and name in ("read", "readline", "readlines"):
                    g.flush()
                pending = name == "write" or pending and name not in (
                    "read", "readline", "readlines", "seek", "truncate", "tell")
                if name == "readlines":
                    exp = _outcome(functools.partial(_builtin_readlines, g, args[0]))
                else:
                    exp = _result(g, name, *args)
                if name == "tell" and exp[0] == "ok":
                    cookies.append(exp[1])
                expected.append((name, exp))
        got = run(ours(i, mine))
        assert got == expected, (enc, newline, mode, buffering, ops)
        assert mine.read_bytes() == ref.read_bytes(), (enc, newline, mode, buffering, ops)


# -- 3. detach(), raw, buffer -------------------------------------------------------------

_AFTER_DETACH: List[Tuple[Any, ...]] = [("read", 1), ("readline",), ("write", "x"), ("tell",), ("seek", 0),
                 ("flush",), ("close",), ("fileno",), ("readable",), ("writable",),
                 ("seekable",), ("isatty",), ("truncate",), ("detach",), ("readlines",),
                 ("writelines", ["x"])]
_AFTER_DETACH_ATTRS = ["closed", "name", "mode", "encoding", "errors", "newlines",
                       "line_buffering", "buffer"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["r", "r+", "w", "a+"])
def test_text_detach_as_builtin(run: Any, tmp_path: Any, kind: str, mode: str) -> None:
    initial = _LINES.encode()
    ref, ours = tmp_path / "ref", tmp_path / "ours"
    ref.write_bytes(initial)
    ours.write_bytes(initial)
    g: Any = builtins.open(ref, mode, encoding="utf-8")  # (no with: its close() raises once detached)
    if "r" in mode or "+" in mode:
        g.read(3)
    raw = g.detach()
    expected: List[Any] = [raw.tell(), raw.read(5) if raw.readable() else None, raw.mode]
    expected += [_attr(g, attr) for attr in _AFTER_DETACH_ATTRS]
    expected += [_result(g, name, *args) for name, *args in _AFTER_DETACH]
    raw.close()

    async def main() -> List[Any]:
        f = await _open(kind, ours, mode)
        if "r" in mode or "+" in mode:
            await f.read(3)
        buffer = f.buffer
        raw = f.detach()
        assert raw is buffer  # the binary file the text file had, as the builtin's
        got: List[Any] = [await raw.tell(), await raw.read(5) if raw.readable() else None,
                          raw.mode]
        got += [_attr(f, attr) for attr in _AFTER_DETACH_ATTRS]
        got += [await _aresult(f, name, *args) for name, *args in _AFTER_DETACH]
        await raw.close()
        return got

    got = run(main())
    assert got == expected
    assert got[-3] == ("ValueError", "underlying buffer has been detached")  # detach()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["rb", "r+b", "wb", "ab"])
def test_binary_detach_and_raw_as_builtin(run: Any, tmp_path: Any, kind: str, mode: str) -> None:
    initial = bytes(range(256)) * 10
    path = tmp_path / "f"
    path.write_bytes(initial)
    steps: List[Tuple[Any, ...]] = [("read", 1), ("write", b"x"), ("tell",), ("seek", 0), ("flush",), ("close",),
             ("fileno",), ("readable",), ("writable",), ("seekable",), ("isatty",),
             ("detach",), ("peek",), ("read1",), ("readinto", bytearray(2))]
    g: Any = builtins.open(path, mode)  # (no with: its close() raises once detached)
    raw_before = g.raw
    if "r" in mode:
        g.read(3)
    g.detach()
    expected = [_attr(g, attr) for attr in ("closed", "name", "mode", "raw")]
    expected += [_result(g, name, *args) for name, *args in steps]
    raw_before.close()
    path.write_bytes(initial)

    async def main() -> List[Any]:
        f = await _open(kind, path, mode)
        assert f.raw is not None and f.raw.fileno() == f.fileno()
        if "r" in mode:
            assert await f.read(3) == initial[:3]
        raw = f.detach()
        # An unbuffered file over the same fd, where the reading stopped
        # (the builtin's starts after its read-ahead: here nothing is lost).
        assert raw.fileno() >= 0 and raw.mode == f"{mode[0]}b{'+' if '+' in mode else ''}"
        assert not hasattr(raw, "detach") and not hasattr(raw, "raw")  # as FileIO
        if "r" in mode:
            assert await raw.tell() == 3 and await raw.read(4) == initial[3:7]
        got = [_attr(f, attr) for attr in ("closed", "name", "mode", "raw")]
        for (name, *args), exp in zip(steps, expected[4:]):
            if exp[0] == "AttributeError":
                got.append(exp)  # (not the builtin file's method: ours may have it)
            else:
                got.append(await _aresult(f, name, *args))
        await raw.close()
        return got

    assert run(main()) == expected


@pytest.mark.parametrize("kind", KINDS)
def test_unbuffered_binary_has_no_detach_or_raw(run: Any, tmp_path: Any, kind: str) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    with builtins.open(path, "rb", 0) as g:
        expected = (hasattr(g, "detach"), hasattr(g, "raw"))

    async def main() -> Tuple[bool, bool]:
        f = await _open(kind, path, "rb", 0)
        try:
            return hasattr(f, "detach"), hasattr(f, "raw")
        finally:
            await f.close()

    assert run(main()) == expected == (False, False)


# -- 4. the exception of each operation the file cannot do ---------------------------------

_MODES = [("rb", -1), ("rb", 0), ("wb", -1), ("wb", 0), ("r+b", -1), ("ab", -1), ("a+b", -1),
          ("ab", 0), ("r", -1), ("w", -1), ("r+", -1), ("a", -1), ("a+", -1)]


def _calls(binary: bool) -> List[Tuple[Any, ...]]:
    d: Callable[[str], Any] = (lambda s: s.encode()) if binary else (lambda s: s)
    return [
        ("read",), ("read", 3), ("read", -5), ("read", "x"), ("read1",), ("readinto", bytearray(3)),
        ("readline",), ("readline", 1.5), ("readlines",), ("peek",), ("readall",),
        ("write", d("xy")), ("write", 1), ("write", "s" if binary else b"s"),
        ("writelines", [d("a")]), ("seek", 0, 3), ("seek", 0, 7), ("seek", -1), ("seek", -1, 0),
        ("seek", -100, 1), ("seek", -100, 2), ("seek", 1, 1), ("seek", 1, 2), ("seek", "a"),
        ("seek", 1.5), ("seek", 1 << 70), ("tell",), ("truncate",), ("truncate", -1),
        ("truncate", 2), ("flush",), ("readable",), ("writable",), ("seekable",), ("isatty",),
    ]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("closed", [False, True], ids=["open", "closed"])
@pytest.mark.parametrize("mode,buffering", _MODES)
def test_errors_as_builtin(run: Any, tmp_path: Any, kind: str, closed: bool, mode: str,
                           buffering: int) -> None:
    """Each call on a fresh file (open, or closed first): the builtin's
    result or exception, type and message.  Calls of methods the builtin
    file of that kind lacks (``AttributeError``: a text file's ``read1``,
    a ``FileIO``'s ``peek``) are left out: the package's files have them
    all."""
    path = tmp_path / "f"
    initial = b"0123456789\nabc\n"
    calls = _calls("b" in mode)
    expected = []
    for name, *args in calls:
        path.write_bytes(initial)
        g = builtins.open(path, mode, buffering, encoding=None if "b" in mode else "utf-8")
        if closed:
            g.close()
        expected.append(_result(g, name, *args))
        g.close()

    async def main() -> List[Any]:
        out = []
        for (name, *args), exp in zip(calls, expected):
            path.write_bytes(initial)
            f = await _open(kind, path, mode, buffering)
            if closed:
                await f.close()
            if exp[0] == "AttributeError":
                out.append(exp)  # (not the builtin file's method)
            else:
                out.append(await _aresult(f, name, *args))
            await f.close()
        return out

    got = run(main())
    for (name, *args), exp, mine in zip(calls, expected, got):
        assert mine == exp, (name, args)


@pytest.mark.parametrize("kind", KINDS)
def test_errors_of_a_pipe_as_builtin(run: Any, kind: str) -> None:
    """Not seekable: the builtin's errors for seek/tell/truncate, text and
    binary, buffered and not."""
    r, w = os.pipe()
    try:
        cases = [("rb", -1), ("rb", 0), ("r", -1)]
        calls: List[Tuple[Any, ...]] = [("seek", 0), ("seek", 0, 1), ("seek", 0, 7), ("tell",),
                                        ("truncate",), ("seekable",)]
        expected = []
        for mode, buffering in cases:
            g = builtins.open(os.dup(r), mode, buffering)
            expected.append([_result(g, name, *args) for name, *args in calls])
            g.close()

        async def main() -> List[Any]:
            out = []
            for mode, buffering in cases:
                f = await _open(kind, os.dup(r), mode, buffering)
                out.append([await _aresult(f, name, *args)
                            for name, *args in calls])
                await f.close()
            return out

        assert run(main()) == expected
    finally:
        os.close(r)
        os.close(w)


def test_read_only_truncate_and_closed_messages_spelled_out(run: Any, tmp_path: Any) -> None:
    """The messages the issue names, spelled out (the matrix above compares
    them with the builtin's)."""
    path = tmp_path / "f"
    path.write_bytes(b"abc")

    async def main() -> None:
        async with ua.open(path, "wb") as f:
            with pytest.raises(io.UnsupportedOperation, match="^read$"):
                await f.read()
        async with ua.open(path, "rb") as f:
            with pytest.raises(io.UnsupportedOperation, match="^write$"):
                await f.write(b"x")
            with pytest.raises(io.UnsupportedOperation, match="^truncate$"):
                await f.truncate()
            with pytest.raises(ValueError, match="^whence value 7 unsupported$"):
                await f.seek(0, 7)
            with pytest.raises(OSError) as info:
                await f.seek(-1)
            assert info.value.errno == 22
        with pytest.raises(ValueError, match="^read of closed file$"):
            await f.read()
        async with ua.open(path, "r", encoding="utf-8") as t:
            pass
        with pytest.raises(ValueError, match=r"^I/O operation on closed file\.$"):
            await t.read()

    run(main())

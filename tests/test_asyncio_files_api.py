"""``uring.asyncio.open`` as ``aiofiles.open``: the same program, awaited,
gives what the builtin ``open()`` gives (aiofiles runs the builtin file's
methods in a thread, so the builtin is the reference), on both loops.

* a hypothesis test drives random sequences of ``write``, ``writelines``,
  ``seek``, ``tell``, ``read(n)``, ``readline``, ``readlines``, ``read1``,
  ``readinto``, ``truncate`` and ``flush`` on an ``"rb"``-family or text
  file and on the builtin file side by side, comparing every result and
  then the bytes on disk;
* explicit tests: universal newlines in every *newline* mode, ``stat()``
  against ``os.stat``, binary ``readline`` across read-ahead boundaries and
  with long lines, the attributes and arguments of ``open``.

No aiofiles needed: the builtin is what it wraps.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
from typing import Any, Callable, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import uring.asyncio as ua

# -- the differential test -------------------------------------------------------------

_PIECES = ["a", "bc", "\n", "\r", "\r\n", "é", "€", "😀", "xyz\r\n", "line\n", "\r\r", "\n\r"]
_texts = st.lists(st.sampled_from(_PIECES), max_size=6).map("".join)
_op = st.one_of(
    st.tuples(st.just("write"), _texts),
    st.tuples(st.just("writelines"), st.lists(_texts, max_size=3)),
    st.tuples(st.just("read"), st.integers(-1, 12)),
    st.tuples(st.just("readline"), st.integers(-1, 8)),
    st.tuples(st.just("readlines"), st.integers(-1, 10)),
    st.tuples(st.just("read1"), st.integers(-1, 9)),
    st.tuples(st.just("readinto"), st.integers(0, 9)),
    st.tuples(st.just("seek"), st.integers(0, 40), st.integers(0, 2)),
    st.tuples(st.just("tell")),
    st.tuples(st.just("truncate"), st.one_of(st.none(), st.integers(0, 30))),
    st.tuples(st.just("flush")),
)


async def _step(f: Any, op: Tuple[Any, ...], binary: bool, cookies: List[int],
                aw: bool) -> Any:
    """One operation on *f*: awaited (ours) or called (the builtin)."""
    async def call(value: Any) -> Any:
        return await value if aw else value

    name = op[0]
    if name in ("write", "writelines"):
        arg = op[1]
        if binary:
            arg = arg.encode() if name == "write" else [s.encode() for s in arg]
        written = await call(getattr(f, name)(arg))
        if not aw and "a" in f.mode:
            # The builtin append-mode file knows it is at the end only
            # once its buffer has gone to the kernel (see tell below).
            f.flush()
        return written
    if name in ("read", "readline"):
        return await call(getattr(f, name)(op[1]))
    if name == "readlines":
        if aw or binary:
            return await call(f.readlines(op[1]))
        # The builtin text file's readlines() iterates, and iterating turns
        # its tell() off (and leaves it wrong after): the same lines by
        # readline(), as readlines() documents them.
        lines, total = [], 0
        while True:
            line = f.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < op[1] < total:
                return lines
    if name == "read1":
        return await call(f.read1(op[1]))
    if name == "readinto":
        buf = bytearray(op[1])
        n = await call(f.readinto(buf))
        return n, bytes(buf)
    if name == "seek":
        if binary:
            whence = op[2]
            offset = op[1] if whence == os.SEEK_SET else op[1] % 7 - 3
            try:
                return await call(f.seek(offset, whence))
            except OSError as exc:
                return type(exc)
        if op[2] == 2:
            return await call(f.seek(0, os.SEEK_END))
        target = cookies[op[1] % len(cookies)] if cookies else 0
        return await call(f.seek(target))
    if name == "tell":
        if not aw and "a" in f.mode:
            # A builtin append-mode file counts bytes it has not written
            # yet from where it was, not from the end they will go to.
            f.flush()
        cookie = await call(f.tell())
        cookies.append(cookie)
        return cookie
    if name == "truncate":
        return await call(f.truncate(op[1]))
    assert name == "flush"
    return await call(f.flush())


_READS = {"read", "readline", "readlines", "read1", "readinto"}


def _differential(run: Callable[[Any], Any], tmp_path: Any, mode: str, newline: Any,
                  initial: bytes, ops: List[Tuple[Any, ...]]) -> None:
    binary = "b" in mode
    ours_path, ref_path = tmp_path / "ours", tmp_path / "ref"
    ours_path.write_bytes(initial)
    ref_path.write_bytes(initial)
    kw = {} if binary else {"newline": newline, "encoding": "utf-8"}
    log: List[Any] = []

    async def main() -> None:
        ref = open(ref_path, mode, **kw)
        try:
            async with ua.open(ours_path, mode, **kw) as f:
                ours_cookies: List[int] = []
                ref_cookies: List[int] = []
                after_write = False
                for op in ops:
                    if not binary and (op[0] == "read1" or op[0] == "readinto"):
                        continue  # not text-file methods (the builtin has neither)
                    if after_write and (op[0] in _READS and not binary or op[0] == "read1"):
                        # And the builtin reads from before its pending
                        # writes (text files; read1 of binary ones in
                        # CPython 3.11): a portable program flushes first.
                        assert await f.flush() == ref.flush()
                    if op[0] in _READS:
                        after_write = False
                    elif op[0] in ("write", "writelines"):
                        after_write = True
                    elif op[0] in ("seek", "truncate"):
                        after_write = False
                    elif op[0] == "flush":
                        after_write = False
                    got = exp = None
                    try:
                        exp = await _step(ref, op, binary, ref_cookies, aw=False)
                    except Exception as exc:  # noqa: BLE001 - compared below
                        exp = ("raised", type(exc))
                    if op[0] == "read1" and not isinstance(exp, tuple):
                        # read1's size is the buffer's business: ours may
                        # return fewer bytes, never more, and from the same
                        # place; the builtin is brought to the same position.
                        try:
                            got = await _step(f, op, binary, ours_cookies, aw=True)
                        except Exception as exc:  # noqa: BLE001
                            got = ("raised", type(exc))
                        assert isinstance(got, bytes), (op, got, exp)
                        assert exp.startswith(got) or got.startswith(exp), (op, got, exp)
                        if len(got) > len(exp):
                            exp += ref.read(len(got) - len(exp))
                        elif len(got) < len(exp):
                            ref.seek(len(got) - len(exp), os.SEEK_CUR)
                            exp = exp[:len(got)]
                        assert not exp and not got or got == exp
                        log.append((op, got))
                        continue
                    try:
                        got = await _step(f, op, binary, ours_cookies, aw=True)
                    except Exception as exc:  # noqa: BLE001
                        got = ("raised", type(exc))
                    log.append((op, got))
                    assert got == exp, (op, got, exp, log)
                    if isinstance(exp, tuple) and exp and exp[0] == "raised":
                        # (A decode error after a write or truncate cut a
                        # character: where the builtin is after it is its
                        # own business; ours has consumed nothing.)
                        break
                else:
                    ref.flush()
                    assert await f.tell() == ref.tell()
        finally:
            ref.close()

    run(main())
    assert ours_path.read_bytes() == ref_path.read_bytes(), log


_initial = st.lists(st.sampled_from(_PIECES), max_size=12).map(lambda p: "".join(p).encode())


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mode=st.sampled_from(["w+b", "r+b", "a+b", "w+", "r+"]),
       newline=st.sampled_from([None, "", "\n", "\r\n"]),
       initial=_initial, ops=st.lists(_op, max_size=14))
def test_same_steps_as_builtin_open(run: Any, tmp_path: Any, mode: str, newline: Any,
                                    initial: bytes, ops: List[Tuple[Any, ...]]) -> None:
    _differential(run, tmp_path, mode, newline, initial, ops)


def test_differential_cases(run: Any, tmp_path: Any) -> None:
    """Sequences worth keeping whatever hypothesis draws."""
    crlf = "a\r\nb\rc\n€\r".encode()
    cases = [
        ("r+", None, crlf, [("read", 1), ("tell",), ("read", 1), ("tell",), ("read", 2),
                            ("tell",), ("seek", 1, 0), ("read", -1), ("tell",)]),
        ("r+", "", crlf, [("readline", -1), ("readline", -1), ("tell",), ("readlines", -1)]),
        ("r+", "\r\n", crlf, [("readlines", -1), ("seek", 0, 0), ("readline", 1)]),
        ("w+", "\r\n", b"", [("write", "x\ny\r\n"), ("seek", 0, 0), ("readlines", -1)]),
        ("r+", None, crlf, [("readline", -1), ("write", "W\n"), ("seek", 0, 0),
                            ("read", -1)]),
        ("r+b", None, crlf, [("readline", -1), ("write", "W"), ("tell",), ("read1", 3),
                             ("readinto", 4), ("truncate", None), ("seek", 0, 0),
                             ("readlines", 3)]),
        ("a+b", None, crlf, [("seek", 0, 0), ("read", 3), ("write", "end"), ("tell",),
                             ("seek", 0, 0), ("read", -1)]),
    ]
    for mode, newline, initial, ops in cases:
        _differential(run, tmp_path, mode, newline, initial, ops)


# -- universal newlines ----------------------------------------------------------------

_MIXED = "one\r\ntwo\rthree\nfour\r\r\nfive€\r"


@pytest.mark.parametrize("newline", [None, "", "\n", "\r", "\r\n"])
def test_universal_newlines_read(run: Any, tmp_path: Any, newline: Any) -> None:
    path = tmp_path / "nl"
    path.write_bytes(_MIXED.encode())
    with open(path, newline=newline, encoding="utf-8") as ref:
        lines = ref.readlines()
        ref.seek(0)
        whole = ref.read()
        ref.seek(0)
        sized = [ref.read(3) for _ in range(12)]
        newlines = ref.newlines

    async def main() -> None:
        async with ua.open(path, newline=newline, encoding="utf-8") as f:
            assert await f.readlines() == lines
            await f.seek(0)
            assert await f.read() == whole
            await f.seek(0)
            assert [await f.read(3) for _ in range(12)] == sized
            assert f.newlines == newlines
        async with ua.open(path, newline=newline, encoding="utf-8") as f:
            assert [line async for line in f] == lines
    run(main())
    if newline is None:
        assert whole == "one\ntwo\nthree\nfour\n\nfive€\n"
    if newline == "":
        assert lines == ["one\r\n", "two\r", "three\n", "four\r", "\r\n", "five€\r"]


@pytest.mark.parametrize("newline", [None, "", "\n", "\r", "\r\n"])
def test_newline_on_write(run: Any, tmp_path: Any, newline: Any) -> None:
    text = "a\nb\r\nc\rd\n"
    ref_path, path = tmp_path / "ref", tmp_path / "ours"
    with open(ref_path, "w", newline=newline, encoding="utf-8") as ref:
        ref.write(text)
        ref.writelines(["x\n", "y"])

    async def main() -> None:
        async with ua.open(path, "w", newline=newline, encoding="utf-8") as f:
            assert await f.write(text) == len(text)
            await f.writelines(["x\n", "y"])
    run(main())
    assert path.read_bytes() == ref_path.read_bytes()
    if newline is None:
        assert path.read_bytes() == text.replace("\n", os.linesep).encode() + \
            f"x{os.linesep}y".encode()


def test_line_split_across_chunks_crlf(run: Any, tmp_path: Any) -> None:
    """A \\r\\n that straddles the text layer's chunk boundary is one newline."""
    chunk = ua.AsyncTextFile._CHUNK_SIZE
    body = ("x" * (chunk - 1) + "\r\n" + "y\r\n") * 3
    path = tmp_path / "edge"
    path.write_bytes(body.encode())
    with open(path, encoding="utf-8") as ref:
        lines = ref.readlines()

    async def main() -> None:
        async with ua.open(path, encoding="utf-8") as f:
            got = [line async for line in f]
            assert await f.tell() == len(body)
        assert got == lines
    run(main())


# -- stat --------------------------------------------------------------------------------

def test_stat_is_os_stat_result(run: Any, tmp_path: Any) -> None:
    path = tmp_path / "s"
    path.write_bytes(b"x" * 12345)

    async def main() -> None:
        async with ua.open(path, "rb") as f:
            st_ = await f.stat()
            ref = os.stat(path)
            assert isinstance(st_, os.stat_result)
            for field in ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid",
                          "st_size", "st_mtime_ns", "st_ctime_ns", "st_atime_ns",
                          "st_blksize", "st_blocks", "st_rdev", "st_mtime", "st_ctime"):
                assert getattr(st_, field) == getattr(ref, field), field
            assert tuple(st_) == tuple(ref)
            sx = await f.statx()  # the statx structure, by its other name
            assert sx.stx_size == 12345 and sx.stx_ino == ref.st_ino
        async with ua.open(path, "r") as t:
            assert (await t.stat()).st_size == 12345
    run(main())


# -- binary read-ahead --------------------------------------------------------------------

@pytest.mark.parametrize("buffering", [-1, 0, 2, 7, 64])
def test_binary_readline_across_chunks(run: Any, tmp_path: Any, buffering: int) -> None:
    rnd = random.Random(buffering)
    long = 70_000 if buffering not in (2, 7) else 2_000  # longer than any read-ahead
    lines = [bytes(rnd.choice(b"abc\r") for _ in range(rnd.choice([0, 1, 5, 63, 64, 65, 300,
                                                                     long])))
             + b"\n" for _ in range(60)] + [b"tail without newline"]
    data = b"".join(lines)
    path = tmp_path / "lines"
    path.write_bytes(data)

    async def main() -> None:
        async with ua.open(path, "rb", buffering=buffering) as f:
            assert [line async for line in f] == lines
            assert await f.tell() == len(data)
        async with ua.open(path, "rb", buffering=buffering) as f:
            with open(path, "rb") as ref:
                for i in range(len(lines) + 2):
                    limit = [-1, 3, 1000][i % 3]
                    assert await f.readline(limit) == ref.readline(limit)
                    assert await f.tell() == ref.tell()
                    # The position after a readline is the line's end for
                    # everything else too.
                    assert await f.read(2) == ref.read(2)
                    buf, ref_buf = bytearray(5), bytearray(5)
                    assert await f.readinto(buf) == ref.readinto(ref_buf) and buf == ref_buf
                    assert await f.seek(-3, os.SEEK_CUR) == ref.seek(-3, os.SEEK_CUR)
                assert await f.readlines() == ref.readlines()
    run(main())


def test_binary_readline_one_read_per_chunk(run: Any, tmp_path: Any) -> None:
    path = tmp_path / "many"
    path.write_bytes(b"".join(b"%d\n" % i for i in range(20_000)))
    size = path.stat().st_size

    async def main() -> None:
        async with ua.open(path, "rb") as f:
            calls = 0
            pread = f.pread

            async def counting(n: int, offset: int) -> bytes:
                nonlocal calls
                calls += 1
                return await pread(n, offset)
            f.pread = counting  # type: ignore[method-assign]
            n = 0
            async for _ in f:
                n += 1
        assert n == 20_000
        assert calls <= size // (64 * 1024) + 2
    run(main())


def test_cancelled_readline_consumes_nothing(run: Any, tmp_path: Any) -> None:
    path = tmp_path / "c"
    data = b"x" * 200_000 + b"\nnext\n"
    path.write_bytes(data)

    async def main() -> None:
        for mode in ("rb", "r"):
            async with ua.open(path, mode) as f:
                for ticks in range(4):
                    task = asyncio.ensure_future(f.readline())
                    for _ in range(ticks):
                        await asyncio.sleep(0)
                    task.cancel()
                    try:
                        line = await task
                    except asyncio.CancelledError:
                        continue
                    assert len(line) == 200_001
                    break
                else:
                    assert len(await f.readline()) == 200_001
                assert await f.readline() in (b"next\n", "next\n")
    run(main())


# -- the rest of the API -------------------------------------------------------------------

def test_aiofiles_program(run: Any, tmp_path: Any) -> None:
    """An aiofiles-style program, method by method, against the builtin."""
    path, ref_path = tmp_path / "p", tmp_path / "r"

    def reference() -> List[Any]:
        out: List[Any] = []
        with open(ref_path, "w+", encoding="utf-8") as f:
            out += [f.write("héllo\nwörld\n"), f.writelines(["a\n", "b\n"]), f.flush(), f.tell()]
            out += [f.seek(0), f.read(3), f.readline(), f.readlines(), f.tell()]
            out += [f.seek(0), f.readline(2), f.truncate(5), f.seek(0, 2), f.tell()]
            out += [f.readable(), f.writable(), f.seekable(), f.closed, f.mode]
        out.append(f.closed)
        with open(ref_path, "r+b") as b:
            buf = bytearray(3)
            out += [b.read1(2), b.readinto(buf), bytes(buf), b.tell(), b.seek(-2, 2), b.read()]
            out += [b.write(b"Z"), b.writelines([b"1", b"2"]), b.truncate(), b.tell()]
            out += [b.readable(), b.writable(), b.seekable(), b.mode]
        return out

    async def ours() -> List[Any]:
        out: List[Any] = []
        async with ua.open(path, "w+", encoding="utf-8") as f:
            out += [await f.write("héllo\nwörld\n"), await f.writelines(["a\n", "b\n"]),
                    await f.flush(), await f.tell()]
            out += [await f.seek(0), await f.read(3), await f.readline(), await f.readlines(),
                    await f.tell()]
            out += [await f.seek(0), await f.readline(2), await f.truncate(5),
                    await f.seek(0, 2), await f.tell()]
            out += [f.readable(), f.writable(), f.seekable(), f.closed, f.mode]
            assert f.name == os.fspath(path) and f.fileno() >= 0 and f.encoding == "utf-8"
        out.append(f.closed)
        with pytest.raises(ValueError):
            await f.flush()
        with pytest.raises(ValueError):
            await f.tell()
        with pytest.raises(ValueError):
            await f.seek(0)
        b = await ua.open(path, "r+b")
        buf = bytearray(3)
        out += [await b.read1(2), await b.readinto(buf), bytes(buf), await b.tell(),
                await b.seek(-2, 2), await b.read()]
        out += [await b.write(b"Z"), await b.writelines([b"1", b"2"]), await b.truncate(),
                await b.tell()]
        out += [b.readable(), b.writable(), b.seekable(), b.mode]
        await b.close()
        await b.close()
        return out

    expected = reference()
    assert run(ours()) == expected
    assert path.read_bytes() == ref_path.read_bytes()


def test_open_arguments_as_builtin(run: Any, tmp_path: Any) -> None:
    path = tmp_path / "a"
    path.write_bytes("ü\r\n".encode("latin-1"))
    # Bad combinations fail as the builtin's do, before anything is awaited.
    for kwargs, exc in [({"mode": "rb", "encoding": "utf-8"}, ValueError),
                        ({"mode": "rb", "errors": "strict"}, ValueError),
                        ({"mode": "rb", "newline": "\n"}, ValueError),
                        ({"mode": "r", "buffering": 0}, ValueError),
                        ({"mode": "r", "newline": "x"}, ValueError),
                        ({"mode": "r", "encoding": "no-such-codec"}, LookupError),
                        ({"mode": "rw"}, ValueError)]:
        with pytest.raises(exc):
            open(path, **kwargs)
        with pytest.raises(exc):
            ua.open(path, **kwargs)

    async def main() -> None:
        async with ua.open(path, "r", -1, "latin-1", "strict", None) as f:
            assert await f.read() == "ü\n"
        async with ua.open(path, encoding="utf-8", errors="replace") as f:
            assert await f.read() == "\ufffd\n"
        async with ua.open(path, encoding="utf-8") as f:
            with pytest.raises(UnicodeDecodeError):
                await f.read()
        async with ua.open(path, "rb", 0) as f:  # unbuffered: nothing kept read ahead
            assert await f.readline() == "ü\r\n".encode("latin-1")
        async with ua.open(path) as f:
            assert f.encoding == io.TextIOWrapper(io.BytesIO()).encoding
        async with ua.open(path, "rb") as f:
            with pytest.raises(io.UnsupportedOperation):
                await f.write(b"x")
            with pytest.raises(io.UnsupportedOperation):
                await f.truncate(0)
    run(main())

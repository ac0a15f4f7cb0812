"""The fallback's one ``RuntimeWarning`` points at the user's line.

Where io_uring is unavailable (here: the thread fallback forced in this
process, ``set_backend("threads")``, with the once-per-process state put
back afterwards), the first operation warns once; whichever entry point
that is (``open``, awaited or with ``async with``, ``uring.asyncio.os``
and ``os.path`` functions, the tempfile functions, a socket function,
``run``), the warning's ``filename`` and ``lineno`` are the caller's, not
a line inside the package.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import warnings
from typing import Any, Callable, Coroutine, List

import pytest

import uring.asyncio as ua
import uring.asyncio.fallback as fallback
from uring.asyncio import os as aos
from uring.asyncio import tempfile as atf


@pytest.fixture
def threads_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """The thread fallback decided afresh, not warned yet; all of it put
    back after the test."""
    for name in ("_mode", "_source", "_decided"):
        monkeypatch.setattr(fallback, name, getattr(fallback, name))
    monkeypatch.setattr(fallback, "_warned", False)
    fallback.set_backend("threads")


def _line() -> int:
    """The caller's line number."""
    return sys._getframe(1).f_lineno


def _fallback_warnings(run: Callable[[], Any]) -> List[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
    return [w for w in caught if issubclass(w.category, RuntimeWarning)
            and str(w.message).startswith("uring.asyncio:")]


def _check(main: Callable[[List[int]], Coroutine[Any, Any, None]]) -> None:
    lines: List[int] = []
    caught = _fallback_warnings(lambda: asyncio.run(main(lines)))
    assert len(caught) == 1, [str(w.message) for w in caught]
    assert (caught[0].filename, caught[0].lineno) == (__file__, lines[0])
    assert "thread pool" in str(caught[0].message)


def test_open_awaited(threads_backend: None, tmp_path: Any) -> None:
    async def main(lines: List[int]) -> None:
        lines.append(_line() + 1)
        f = await ua.open(tmp_path / "f", "wb")
        await f.close()
    _check(main)


def test_open_async_with(threads_backend: None, tmp_path: Any) -> None:
    async def main(lines: List[int]) -> None:
        lines.append(_line() + 1)
        async with ua.open(tmp_path / "f", "w", encoding="utf-8") as f:
            await f.write("x")
    _check(main)


def test_os_function(threads_backend: None, tmp_path: Any) -> None:
    async def main(lines: List[int]) -> None:
        lines.append(_line() + 1)
        await aos.stat(tmp_path)
    _check(main)


def test_os_path_function(threads_backend: None, tmp_path: Any) -> None:
    async def main(lines: List[int]) -> None:
        lines.append(_line() + 1)
        assert await aos.path.exists(tmp_path)
    _check(main)


def test_os_function_as_its_own_task(threads_backend: None, tmp_path: Any) -> None:
    """Run as a task (``wait_for``): the line that awaits it is not on the
    stack, the coroutine's own frame is the package's; the warning goes
    past asyncio's frames to the line that ran the loop."""
    lines: List[int] = []

    async def main() -> None:
        await asyncio.wait_for(aos.stat(tmp_path), 5)

    lines.append(_line() + 1)
    caught = _fallback_warnings(lambda: asyncio.run(main()))
    assert len(caught) == 1
    assert (caught[0].filename, caught[0].lineno) == (__file__, lines[0])


def test_temporary_file(threads_backend: None) -> None:
    async def main(lines: List[int]) -> None:
        lines.append(_line() + 1)
        f = await atf.TemporaryFile()
        await f.close()
    _check(main)


def test_named_temporary_file(threads_backend: None) -> None:
    async def main(lines: List[int]) -> None:
        lines.append(_line() + 1)
        async with atf.NamedTemporaryFile("w+b") as f:
            await f.write(b"x")
    _check(main)


def test_spooled_temporary_file_rollover(threads_backend: None) -> None:
    async def main(lines: List[int]) -> None:
        f = await atf.SpooledTemporaryFile(max_size=4)
        lines.append(_line() + 1)
        await f.write(b"more than four bytes")  # rolls over: the first file operation
        await f.close()
    _check(main)


def test_socket_function(threads_backend: None) -> None:
    async def main(lines: List[int]) -> None:
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        try:
            lines.append(_line() + 1)
            await ua.sock_sendall(a, b"x")
        finally:
            a.close()
            b.close()
    _check(main)


def test_run(threads_backend: None) -> None:
    async def main() -> None:
        await asyncio.sleep(0)

    line = _line() + 1
    caught = _fallback_warnings(lambda: ua.run(main()))
    assert len(caught) == 1
    # run() is called from the lambda on the line above _fallback_warnings'.
    assert (caught[0].filename, caught[0].lineno) == (__file__, line)

"""What every async file of this package shares: ``async with`` closes
it, ``async for`` yields its lines (aiofiles' protocol, over the class's
own ``readline`` and ``close``); and ``Answer``, the yes/no of
``seekable()``, ``writable()``, ``isatty()`` and a text file's
``readable()``, which aiofiles awaits and this package's own callers
read at once."""

from __future__ import annotations

from typing import Any, Generator, TypeVar

__all__ = ["Answer", "AsyncFileProtocol", "answer"]


class Answer(int):
    """A yes/no known at once that may also be awaited: ``f.seekable()``
    is true or false, and ``await f.seekable()`` (as aiofiles, which runs
    ``seekable``, ``writable``, ``isatty`` and a text file's ``readable``
    on its thread, is written) is the ``bool``.  Compares equal to
    ``True``/``False`` and prints as them; only ``is True`` tells it apart."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, bool]:
        return bool(self)
        yield  # a generator: the await finishes at once, without a loop step

    def __repr__(self) -> str:
        return "True" if self else "False"

    __str__ = __repr__


YES = Answer(1)
NO = Answer(0)


def answer(flag: object) -> Answer:
    """*flag* as an ``Answer``."""
    return YES if flag else NO

_Self = TypeVar("_Self", bound="AsyncFileProtocol")


class AsyncFileProtocol:
    """Mixin: ``__aenter__``/``__aexit__`` and ``__aiter__``/``__anext__``
    for a class with awaitable ``readline()`` and ``close()``."""

    __slots__ = ()

    async def readline(self) -> Any:  # pragma: no cover - the class's own
        raise NotImplementedError

    async def close(self) -> None:  # pragma: no cover - the class's own
        raise NotImplementedError

    async def __aenter__(self: _Self) -> _Self:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __aiter__(self: _Self) -> _Self:
        return self

    async def __anext__(self) -> Any:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

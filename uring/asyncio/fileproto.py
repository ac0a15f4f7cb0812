"""What every async file of this package shares: ``async with`` closes
it, ``async for`` yields its lines (aiofiles' protocol, over the class's
own ``readline`` and ``close``)."""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["AsyncFileProtocol"]

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

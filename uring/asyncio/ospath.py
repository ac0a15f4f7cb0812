"""``aiofiles.ospath`` on io_uring: ``uring.asyncio.ospath``, also reached
as ``uring.asyncio.os.path``.

The tests of a file's kind, size and times are one ``IORING_OP_STATX``
each (through ``uring.asyncio.os.stat``/``lstat``), with the results and
errors of their ``os.path`` namesakes: ``exists``, ``isfile``, ``isdir``
and ``islink`` answer False where ``os.path``'s do (an ``OSError`` or a
``ValueError``), ``getsize``, ``getmtime``, ``getatime``, ``getctime``
and ``samefile`` raise what ``os.stat`` raises.  ``abspath`` of a
relative path and ``ismount`` run ``os.path``'s function on a worker
thread (there is no io_uring op for ``getcwd`` or for a mount lookup).
"""

from __future__ import annotations

import os
import stat as _stat
from typing import Any

from .os import lstat, stat, to_thread

__all__ = [
    "abspath", "exists", "getatime", "getctime", "getmtime", "getsize", "isdir", "isfile",
    "islink", "ismount", "lexists", "sameopenfile", "samefile",
]


async def exists(path: Any) -> bool:
    """``os.path.exists``: ``IORING_OP_STATX``; False on any ``OSError``
    or ``ValueError``."""
    try:
        await stat(path)
    except (OSError, ValueError):
        return False
    return True


async def lexists(path: Any) -> bool:
    """``os.path.lexists``: ``IORING_OP_STATX`` without following a final
    symlink (a dangling one exists)."""
    try:
        await lstat(path)
    except (OSError, ValueError):
        return False
    return True


async def isfile(path: Any) -> bool:
    """``os.path.isfile``: ``IORING_OP_STATX``; a regular file (a symlink
    followed)."""
    try:
        st = await stat(path)
    except (OSError, ValueError):
        return False
    return _stat.S_ISREG(st.st_mode)


async def isdir(path: Any) -> bool:
    """``os.path.isdir``: ``IORING_OP_STATX``; a directory (a symlink
    followed)."""
    try:
        st = await stat(path)
    except (OSError, ValueError):
        return False
    return _stat.S_ISDIR(st.st_mode)


async def islink(path: Any) -> bool:
    """``os.path.islink``: ``IORING_OP_STATX`` with ``AT_SYMLINK_NOFOLLOW``."""
    try:
        st = await lstat(path)
    except (OSError, ValueError, AttributeError):
        return False
    return _stat.S_ISLNK(st.st_mode)


async def getsize(path: Any) -> int:
    """``os.path.getsize``: ``IORING_OP_STATX``'s size."""
    return (await stat(path)).st_size


async def getmtime(path: Any) -> float:
    """``os.path.getmtime``: ``IORING_OP_STATX``'s ``st_mtime``."""
    return (await stat(path)).st_mtime


async def getatime(path: Any) -> float:
    """``os.path.getatime``: ``IORING_OP_STATX``'s ``st_atime``."""
    return (await stat(path)).st_atime


async def getctime(path: Any) -> float:
    """``os.path.getctime``: ``IORING_OP_STATX``'s ``st_ctime``."""
    return (await stat(path)).st_ctime


async def samefile(f1: Any, f2: Any) -> bool:
    """``os.path.samefile``: two ``IORING_OP_STATX`` (the first path's error
    first, as ``os.path`` stats them in order); same device and inode."""
    s1 = await stat(f1)
    s2 = await stat(f2)
    return os.path.samestat(s1, s2)


async def sameopenfile(fp1: int, fp2: int) -> bool:
    """``os.path.sameopenfile``: ``IORING_OP_STATX`` on each fd."""
    s1 = await stat(fp1)
    s2 = await stat(fp2)
    return os.path.samestat(s1, s2)


async def abspath(path: Any) -> Any:
    """``os.path.abspath``: an absolute path is normalized here (no system
    call); a relative one needs ``getcwd``, which runs on a worker thread."""
    path = os.fspath(path)
    if os.path.isabs(path):
        return os.path.normpath(path)
    return await to_thread(os.path.abspath, path)


async def ismount(path: Any) -> bool:
    """``os.path.ismount`` on a worker thread (it compares two ``lstat``
    results the stdlib way)."""
    return await to_thread(os.path.ismount, path)

"""``aiofiles.os`` on io_uring: ``uring.asyncio.os``.

    from uring.asyncio import os as aos

    st = await aos.stat("data.bin")            # IORING_OP_STATX -> os.stat_result
    await aos.rename("a.tmp", "a")             # IORING_OP_RENAMEAT
    if await aos.path.exists("old"):           # uring.asyncio.os.path (= ospath)
        await aos.remove("old")                # IORING_OP_UNLINKAT

Each function takes the arguments of the ``os`` function of the same name
and returns what it returns; a failure raises the same ``OSError``
subclass with the same ``errno``, message, ``filename`` and ``filename2``
(the io_uring op that failed is added as a note where the Python has notes).

Where the kernel has an io_uring op for the call, it is that op on the
running loop's ring (``get_ring()``; ``IORING_OP_STATX``, ``RENAMEAT``,
``UNLINKAT``, ``MKDIRAT``, ``LINKAT``, ``SYMLINKAT``); where it has none
(directory listing, ``readlink``, ``access``, ``sendfile``, ``getcwd``,
``statvfs``) the stdlib function runs on the loop's default executor
(``loop.run_in_executor``), as aiofiles runs all of them.  Each docstring
says which.  A kernel whose ring lacks an op (the probe, cached) gets the
thread for that op too, and so does every call where io_uring is
unavailable (``uring.asyncio.backend()`` is ``"threads"``).

``uring.asyncio.os.path`` is ``uring.asyncio.ospath`` (``exists``,
``isfile``, ``getsize``, ...), and ``import uring.asyncio.os.path`` works,
as ``os.path`` does for ``os``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import stat as _stat
import sys
from typing import Any, Awaitable, Callable, Iterator, List, Optional, TypeVar, Union

from .. import abi
from ..ops.paths import (
    AT_EMPTY_PATH,
    AT_NO_AUTOMOUNT,
    AT_REMOVEDIR,
    AT_SYMLINK_FOLLOW,
    AT_SYMLINK_NOFOLLOW,
    STATX_BASIC_STATS,
    statx,
)
from .driver import LoopRing, get_ring
from .fallback import use_threads

__all__ = [
    "access", "getcwd", "link", "listdir", "lstat", "makedirs", "mkdir", "path", "readlink",
    "remove", "removedirs", "rename", "renames", "replace", "rmdir", "scandir", "sendfile",
    "stat", "statvfs", "symlink", "unlink", "wrap",
]

T = TypeVar("T")
_AT_FDCWD = -100


# -- the two ways a call runs -----------------------------------------------------------


async def to_thread(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``func(*args, **kwargs)`` on the running loop's default executor."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(func, *args, **kwargs))


def wrap(func: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """A coroutine function running the blocking *func* on the loop's
    default executor (``aiofiles.os.wrap``)."""

    @functools.wraps(func)
    async def run(*args: Any, **kwargs: Any) -> T:
        return await to_thread(func, *args, **kwargs)

    return run


def _ring_for(opcode: int) -> Optional[LoopRing]:
    """The running loop's ring, or None when its kernel lacks *opcode*
    (the caller then runs the stdlib function on a thread)."""
    if use_threads():  # io_uring unavailable or refused: the stdlib function on a thread
        return None
    lr = get_ring()
    return lr if lr.ring.supports(opcode) else None


def _filename(path: Any) -> Any:
    """A path as the stdlib puts it in ``OSError.filename``: str, bytes and
    fds as given, any other path-like object as its ``os.fspath``."""
    if isinstance(path, (str, bytes, int)):
        return path
    return os.fspath(path)


def _os_error(err: int, op: str, path: Any, path2: Any = None, two: bool = False) -> OSError:
    """The ``OSError`` the stdlib raises for ``errno`` *err* on *path*
    (and *path2*, for the two-path calls): the subclass for the errno, the
    same message, ``filename`` and ``filename2``."""
    if two:
        exc = OSError(err, os.strerror(err), _filename(path), None, _filename(path2))
    else:
        exc = OSError(err, os.strerror(err), _filename(path))
    if hasattr(exc, "add_note"):  # Python 3.11+
        exc.add_note(f"uring.asyncio.os: {op} failed")
    return exc


async def _run(lr: LoopRing, ud: int, op: str, path: Any, path2: Any = None,
               two: bool = False) -> Any:
    """Await the request just prepared as *ud* (``LoopRing.run``), raising
    the stdlib's error for it."""
    try:
        return await lr.run(ud)
    except OSError as exc:
        if exc.errno is None:
            raise
        raise _os_error(exc.errno, op, path, path2, two) from None


def _dir_fd(dir_fd: Optional[int]) -> int:
    return _AT_FDCWD if dir_fd is None else dir_fd


# -- stat ------------------------------------------------------------------------------


def stat_result_from_statx(sx: statx) -> os.stat_result:
    """A ``statx`` structure as the ``os.stat_result`` ``os.stat`` returns:
    every field, the float times computed as CPython computes them."""
    def times(t: Any) -> tuple:
        sec, ns = int(t.tv_sec), int(t.tv_nsec)
        return sec, sec + ns * 1e-9, sec * 10**9 + ns

    a, m, c = times(sx.stx_atime), times(sx.stx_mtime), times(sx.stx_ctime)
    seq = (int(sx.stx_mode), int(sx.stx_ino), sx.stx_dev, int(sx.stx_nlink), int(sx.stx_uid),
           int(sx.stx_gid), int(sx.stx_size), a[0], m[0], c[0])
    return os.stat_result(seq, {
        "st_atime": a[1], "st_mtime": m[1], "st_ctime": c[1],
        "st_atime_ns": a[2], "st_mtime_ns": m[2], "st_ctime_ns": c[2],
        "st_blksize": int(sx.stx_blksize), "st_blocks": int(sx.stx_blocks),
        "st_rdev": sx.stx_rdev,
    })


async def stat(path: Any, *, dir_fd: Optional[int] = None,
               follow_symlinks: bool = True) -> os.stat_result:
    """``os.stat``: ``IORING_OP_STATX`` (``AT_EMPTY_PATH`` for an fd,
    ``AT_SYMLINK_NOFOLLOW`` without *follow_symlinks*), as an
    ``os.stat_result`` with every field ``os.stat`` fills."""
    fd = isinstance(path, int) and not isinstance(path, bool)
    if fd and (dir_fd is not None or not follow_symlinks):
        return os.stat(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)  # the ValueError
    lr = _ring_for(abi.IORING_OP_STATX)
    if lr is None:
        return await to_thread(os.stat, path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
    flags = AT_NO_AUTOMOUNT | (0 if follow_symlinks else AT_SYMLINK_NOFOLLOW)
    await lr.room()
    if fd:
        ud = lr.ring.prep_statx("", STATX_BASIC_STATS, dir_fd=path,
                                statx_flags=flags | AT_EMPTY_PATH)
    else:
        ud = lr.ring.prep_statx(path, STATX_BASIC_STATS, dir_fd=_dir_fd(dir_fd),
                                statx_flags=flags)
    return stat_result_from_statx(await _run(lr, ud, "IORING_OP_STATX", path))


async def lstat(path: Any, *, dir_fd: Optional[int] = None) -> os.stat_result:
    """``os.lstat``: ``IORING_OP_STATX`` with ``AT_SYMLINK_NOFOLLOW``."""
    return await stat(path, dir_fd=dir_fd, follow_symlinks=False)


# -- names: io_uring ops ---------------------------------------------------------------


async def rename(src: Any, dst: Any, *, src_dir_fd: Optional[int] = None,
                 dst_dir_fd: Optional[int] = None) -> None:
    """``os.rename``: ``IORING_OP_RENAMEAT`` (flags 0: replaces *dst*, as
    ``rename(2)``)."""
    lr = _ring_for(abi.IORING_OP_RENAMEAT)
    if lr is None:
        return await to_thread(os.rename, src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
    await lr.room()
    ud = lr.ring.prep_renameat(src, dst, _dir_fd(src_dir_fd), _dir_fd(dst_dir_fd))
    await _run(lr, ud, "IORING_OP_RENAMEAT", src, dst, two=True)


async def replace(src: Any, dst: Any, *, src_dir_fd: Optional[int] = None,
                  dst_dir_fd: Optional[int] = None) -> None:
    """``os.replace``: ``IORING_OP_RENAMEAT``, as ``rename`` (on Linux the
    two are one system call)."""
    await rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)


async def remove(path: Any, *, dir_fd: Optional[int] = None) -> None:
    """``os.remove``: ``IORING_OP_UNLINKAT``."""
    lr = _ring_for(abi.IORING_OP_UNLINKAT)
    if lr is None:
        return await to_thread(os.remove, path, dir_fd=dir_fd)
    await lr.room()
    await _run(lr, lr.ring.prep_unlinkat(path, _dir_fd(dir_fd)), "IORING_OP_UNLINKAT", path)


async def unlink(path: Any, *, dir_fd: Optional[int] = None) -> None:
    """``os.unlink``: ``IORING_OP_UNLINKAT`` (the same as ``remove``)."""
    await remove(path, dir_fd=dir_fd)


async def rmdir(path: Any, *, dir_fd: Optional[int] = None) -> None:
    """``os.rmdir``: ``IORING_OP_UNLINKAT`` with ``AT_REMOVEDIR``."""
    lr = _ring_for(abi.IORING_OP_UNLINKAT)
    if lr is None:
        return await to_thread(os.rmdir, path, dir_fd=dir_fd)
    await lr.room()
    ud = lr.ring.prep_unlinkat(path, _dir_fd(dir_fd), unlink_flags=AT_REMOVEDIR)
    await _run(lr, ud, "IORING_OP_UNLINKAT", path)


async def mkdir(path: Any, mode: int = 0o777, *, dir_fd: Optional[int] = None) -> None:
    """``os.mkdir``: ``IORING_OP_MKDIRAT`` (the umask applies)."""
    lr = _ring_for(abi.IORING_OP_MKDIRAT)
    if lr is None:
        return await to_thread(os.mkdir, path, mode, dir_fd=dir_fd)
    await lr.room()
    await _run(lr, lr.ring.prep_mkdirat(path, mode, _dir_fd(dir_fd)), "IORING_OP_MKDIRAT", path)


async def link(src: Any, dst: Any, *, src_dir_fd: Optional[int] = None,
               dst_dir_fd: Optional[int] = None, follow_symlinks: bool = True) -> None:
    """``os.link``: ``IORING_OP_LINKAT``.  As CPython on Linux: with no
    dir fd and *follow_symlinks* left True it is ``link(2)``, which links a
    symlink itself; otherwise ``AT_SYMLINK_FOLLOW`` follows *follow_symlinks*."""
    lr = _ring_for(abi.IORING_OP_LINKAT)
    if lr is None:
        return await to_thread(os.link, src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd,
                               follow_symlinks=follow_symlinks)
    plain = src_dir_fd is None and dst_dir_fd is None and follow_symlinks
    flags = AT_SYMLINK_FOLLOW if follow_symlinks and not plain else 0
    await lr.room()
    ud = lr.ring.prep_linkat(src, dst, _dir_fd(src_dir_fd), _dir_fd(dst_dir_fd), link_flags=flags)
    await _run(lr, ud, "IORING_OP_LINKAT", src, dst, two=True)


async def symlink(src: Any, dst: Any, target_is_directory: bool = False, *,
                  dir_fd: Optional[int] = None) -> None:
    """``os.symlink``: ``IORING_OP_SYMLINKAT`` (*dst* pointing at *src*;
    *target_is_directory* matters on Windows only)."""
    lr = _ring_for(abi.IORING_OP_SYMLINKAT)
    if lr is None:
        return await to_thread(os.symlink, src, dst, target_is_directory, dir_fd=dir_fd)
    await lr.room()
    ud = lr.ring.prep_symlinkat(src, dst, _dir_fd(dir_fd))
    await _run(lr, ud, "IORING_OP_SYMLINKAT", src, dst, two=True)


# -- composed of the ops above, as the stdlib composes them ----------------------------


async def makedirs(name: Any, mode: int = 0o777, exist_ok: bool = False) -> None:
    """``os.makedirs``: the stdlib's algorithm with ``IORING_OP_STATX``
    (does the parent exist?) and ``IORING_OP_MKDIRAT``."""
    head, tail = os.path.split(name)
    if not tail:
        head, tail = os.path.split(head)
    if head and tail and not await _exists(head):
        try:
            await makedirs(head, exist_ok=exist_ok)
        except FileExistsError:
            pass  # made meanwhile by someone else
        cdir: Union[str, bytes] = os.curdir
        if isinstance(tail, bytes):
            cdir = os.curdir.encode("ascii")
        if tail == cdir:  # xxx/newdir/. exists if xxx/newdir exists
            return
    try:
        await mkdir(name, mode)
    except OSError:
        if not exist_ok or not await _isdir(name):
            raise


async def removedirs(name: Any) -> None:
    """``os.removedirs``: ``rmdir`` (``IORING_OP_UNLINKAT``) of *name*,
    then of each parent until one fails."""
    await rmdir(name)
    head, tail = os.path.split(name)
    if not tail:
        head, tail = os.path.split(head)
    while head and tail:
        try:
            await rmdir(head)
        except OSError:
            break
        head, tail = os.path.split(head)


async def renames(old: Any, new: Any) -> None:
    """``os.renames``: ``makedirs`` of *new*'s parent, ``rename``, then
    ``removedirs`` of *old*'s parent (all io_uring ops)."""
    head, tail = os.path.split(new)
    if head and tail and not await _exists(head):
        await makedirs(head)
    await rename(old, new)
    head, tail = os.path.split(old)
    if head and tail:
        try:
            await removedirs(head)
        except OSError:
            pass


async def _exists(p: Any) -> bool:
    try:
        await stat(p)
    except (OSError, ValueError):
        return False
    return True


async def _isdir(p: Any) -> bool:
    try:
        st = await stat(p)
    except (OSError, ValueError):
        return False
    return _stat.S_ISDIR(st.st_mode)


# -- no io_uring op: a worker thread ---------------------------------------------------


async def readlink(path: Any, *, dir_fd: Optional[int] = None) -> Any:
    """``os.readlink`` on a worker thread (io_uring has no readlink op)."""
    return await to_thread(os.readlink, path, dir_fd=dir_fd)


async def listdir(path: Any = ".") -> List[Any]:
    """``os.listdir`` on a worker thread (io_uring has no getdents op)."""
    return await to_thread(os.listdir, path)


class ScandirIterator:
    """What ``scandir`` returns: the ``os.DirEntry`` objects of a directory,
    read in full on a worker thread, iterated without a system call per
    step; a context manager like ``os.scandir``'s iterator."""

    def __init__(self, entries: List[os.DirEntry]) -> None:
        self._entries: Optional[Iterator[os.DirEntry]] = iter(entries)

    def __iter__(self) -> "ScandirIterator":
        return self

    def __next__(self) -> os.DirEntry:
        if self._entries is None:
            raise StopIteration
        return next(self._entries)

    def close(self) -> None:
        self._entries = None

    def __enter__(self) -> "ScandirIterator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _scan(path: Any) -> List[os.DirEntry]:
    with os.scandir(path) as it:
        return list(it)


async def scandir(path: Any = ".") -> ScandirIterator:
    """``os.scandir`` on a worker thread (io_uring has no getdents op): the
    whole listing is read there, so iterating never blocks the loop.  The
    entries are ``os.DirEntry`` objects; their ``stat()`` and (where the
    directory did not say the type) ``is_dir()`` are system calls on the
    caller's thread, as with ``os.scandir``."""
    return ScandirIterator(await to_thread(_scan, path))


async def access(path: Any, mode: int, *, dir_fd: Optional[int] = None,
                 effective_ids: bool = False, follow_symlinks: bool = True) -> bool:
    """``os.access`` on a worker thread (io_uring has no faccessat op)."""
    return await to_thread(os.access, path, mode, dir_fd=dir_fd, effective_ids=effective_ids,
                           follow_symlinks=follow_symlinks)


async def sendfile(out_fd: int, in_fd: int, offset: Optional[int], count: int) -> int:
    """``os.sendfile`` on a worker thread.  io_uring has no sendfile op; a
    SPLICE pair through a pipe would not be ``sendfile``: the kernel's
    sendfile gives back to *in_fd*'s position the bytes *out_fd* did not
    take, and returns ``EAGAIN`` at once on a non-blocking socket, where
    the pair would leave bytes in the pipe or wait.  The thread keeps every
    one of its results: the count, a short count, the offsets, the errors."""
    return await to_thread(os.sendfile, out_fd, in_fd, offset, count)


async def getcwd() -> str:
    """``os.getcwd`` on a worker thread (as aiofiles)."""
    return await to_thread(os.getcwd)


async def statvfs(path: Any) -> os.statvfs_result:
    """``os.statvfs`` on a worker thread (io_uring has no statfs op)."""
    return await to_thread(os.statvfs, path)


# ``uring.asyncio.os.path``: an attribute, and a module ``import`` finds (as
# ``os.path``).  Imported last: ``ospath`` uses the functions above.
from . import ospath as path  # noqa: E402

sys.modules[__name__ + ".path"] = path

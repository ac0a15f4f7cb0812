"""Files whose every operation is an io_uring request: ``uring.asyncio.open``.

    async with uring.asyncio.open("data.bin", "rb") as f:
        head = await f.read(4096)          # IORING_OP_READ at the position
        tail = await f.pread(4096, 1 << 20)

The interface is the one ``aiofiles`` users know (``read``, ``readinto``,
``write``, ``seek``, ``tell``, ``fsync``, ``close``, ``stat``), plus
``pread``/``pwrite`` at explicit offsets, which leave the position alone
and may run concurrently.  The open itself is ``IORING_OP_OPENAT``, the
close ``IORING_OP_CLOSE``, the stat ``IORING_OP_STATX``.

The position is kept here, not in the kernel: each read or write is issued
at the offset it starts from (``offset`` -1, "the file position", only in
append mode, where the kernel decides), so two awaited operations never
race on a shared file offset.
"""

from __future__ import annotations

import asyncio
import codecs
import io
import os
from typing import Any, Dict, List, Optional, Union

from ..buffers import PinnedBuffer
from ..errors import kernel_error
from ..ops.paths import STATX_BASIC_STATS, statx
from .driver import LoopRing, get_ring
from .sockets import close_fd

__all__ = ["AsyncFile", "open"]

_READ = "IORING_OP_READ"
_WRITE = "IORING_OP_WRITE"
_CHUNK = 1 << 16
_SPARE_BUFFERS = 64  # pinned pread buffers kept per size and file


def _mode_flags(mode: str) -> tuple:
    """``open()``'s mode string as ``(os flags, readable, writable, append, binary)``."""
    if not isinstance(mode, str):
        raise TypeError(f"mode must be a str, not {type(mode).__name__}")
    chars = set(mode)
    if len(chars) != len(mode) or not chars <= set("rwaxb+t") or len(chars & set("rwax")) != 1 \
            or {"b", "t"} <= chars:
        raise ValueError(f"invalid mode: {mode!r}")
    plus = "+" in chars
    if "r" in chars:
        flags = os.O_RDWR if plus else os.O_RDONLY
    else:
        flags = (os.O_RDWR if plus else os.O_WRONLY) | os.O_CREAT
        if "w" in chars:
            flags |= os.O_TRUNC
        elif "a" in chars:
            flags |= os.O_APPEND
        else:
            flags |= os.O_EXCL
    readable = "r" in chars or plus
    writable = "r" not in chars or plus
    return flags | os.O_CLOEXEC, readable, writable, "a" in chars, "b" in chars


class AsyncFile:
    """An open file; made by ``uring.asyncio.open``.  Binary mode reads and
    writes bytes; text mode decodes and encodes with *encoding*."""

    def __init__(self, ring: LoopRing, fd: int, name: Any, mode: str, readable: bool,
                 writable: bool, append: bool, binary: bool, encoding: Optional[str],
                 errors: Optional[str], position: int = 0) -> None:
        self._ring = ring
        self._fd = fd
        self.name = name
        self.mode = mode
        self._readable = readable
        self._writable = writable
        self._append = append
        self._binary = binary
        self._pos = position
        self.encoding: Optional[str] = None
        self.errors: Optional[str] = None
        self._decoder: Optional[codecs.IncrementalDecoder] = None
        if not binary:
            self.encoding = encoding = encoding or "utf-8"
            self.errors = errors = errors or "strict"
            self._decoder = codecs.getincrementaldecoder(encoding)(errors)
        self._pending_text = ""
        self._spare: Dict[int, List[PinnedBuffer]] = {}  # size -> pinned read buffers

    # -- state ---------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def fileno(self) -> int:
        self._check_open()
        return self._fd

    def readable(self) -> bool:
        return self._readable

    def writable(self) -> bool:
        return self._writable

    def _check_open(self) -> None:
        if self._fd < 0:
            raise ValueError("I/O operation on closed file")

    def _check_readable(self) -> None:
        self._check_open()
        if not self._readable:
            raise io.UnsupportedOperation("not readable")

    def _check_writable(self) -> None:
        self._check_open()
        if not self._writable:
            raise io.UnsupportedOperation("not writable")

    # -- positional I/O ------------------------------------------------------------

    async def pread(self, size: int, offset: int) -> bytes:
        """Up to *size* bytes at *offset* (fewer at end of file); the position
        is not used or moved."""
        if self._fd < 0 or not self._readable:
            self._check_readable()
        if size < 0 or offset < 0:
            raise ValueError("size and offset must be >= 0")
        # A buffer pinned on an earlier read of this size is reused: pinning
        # a new one costs more than the 4 KiB copy out.
        spare = self._spare.get(size)
        pinned = spare.pop() if spare else PinnedBuffer(bytearray(size), writable=True)
        n = await self._read_at(pinned, offset)
        data = bytes(pinned.obj) if n == size else bytes(memoryview(pinned.obj)[:n])
        if spare is None:
            spare = self._spare.setdefault(size, [])
        if len(spare) < _SPARE_BUFFERS:
            spare.append(pinned)
        return data

    async def preadinto(self, buf: Any, offset: int) -> int:
        """Read into *buf* (a writable buffer; a ``uring.PinnedBuffer`` made
        once saves pinning it per request) at *offset*; the byte count."""
        if self._fd < 0 or not self._readable:
            self._check_readable()
        if offset < 0:
            raise ValueError("offset must be >= 0")
        return await self._read_at(buf, offset)

    async def pwrite(self, data: Any, offset: int) -> int:
        """Write all of *data* at *offset* (short writes are continued); the
        position is not used or moved."""
        self._check_writable()
        if offset < 0:
            raise ValueError("offset must be >= 0")
        return await self._write_all(data, offset)

    async def _read_at(self, buf: Any, offset: int) -> int:
        """One ``IORING_OP_READ``: the request path of every read, kept flat
        (``LoopRing.wait`` written out) because it runs once per read."""
        lr = self._ring
        if lr.awaited >= lr.capacity:
            await lr.room()
        ud = lr.ring.prep_read(self._fd, buf, offset)
        fut = lr.track(ud)
        try:
            cqe = await fut
        except asyncio.CancelledError:
            await lr.after_cancel(ud, fut)
            raise
        res: int = cqe[1]
        if res < 0:
            raise kernel_error(-res, _READ, self.name)
        return res

    async def _write_all(self, data: Any, offset: int) -> int:
        """Write *data* at *offset* (-1: the kernel's position, append mode),
        going on after a short write as ``write(2)`` callers must."""
        lr = self._ring
        view = memoryview(data).cast("B")
        done, total = 0, view.nbytes
        while True:
            if lr.awaited >= lr.capacity:
                await lr.room()
            part = view[done:] if done else view
            ud = lr.ring.prep_write(self._fd, part, offset if offset < 0 else offset + done)
            res = await lr.run_res(ud, _WRITE, self.name)
            done += res
            if done >= total or res == 0:
                return done

    # -- stream I/O at the position ---------------------------------------------

    async def read(self, size: int = -1) -> Union[bytes, str]:
        """Up to *size* bytes (text mode: characters) from the position, or
        everything to the end of the file with -1."""
        self._check_readable()
        if self._binary:
            return await self._read_bytes(size)
        return await self._read_text(size)

    async def _read_bytes(self, size: Optional[int]) -> bytes:
        if size is None or size < 0:
            chunks: List[bytes] = []
            while True:
                got = await self.pread(_CHUNK, self._pos)
                if not got:
                    return b"".join(chunks)
                self._pos += len(got)
                chunks.append(got)
        got = await self.pread(size, self._pos)
        self._pos += len(got)
        return got

    async def _read_text(self, size: Optional[int]) -> str:
        # Decoded text read ahead of the caller waits in _pending_text, and
        # what a chunk decodes to goes there before the next await: text
        # read from the file is never lost to a cancellation or repeated.
        assert self._decoder is not None
        if size is None or size < 0:
            while True:
                raw = await self._read_bytes(_CHUNK)
                self._pending_text += self._decoder.decode(raw, final=not raw)
                if not raw:
                    break
            text, self._pending_text = self._pending_text, ""
            return text
        while len(self._pending_text) < size:
            raw = await self._read_bytes(max(size - len(self._pending_text), 1))
            self._pending_text += self._decoder.decode(raw, final=not raw)
            if not raw:
                break
        text = self._pending_text
        self._pending_text = text[size:]
        return text[:size]

    async def readinto(self, buf: Any) -> int:
        """Read into *buf* from the position; the byte count (binary mode)."""
        self._check_readable()
        if not self._binary:
            raise io.UnsupportedOperation("readinto() needs binary mode")
        n = await self._read_at(buf, self._pos)
        self._pos += n
        return n

    async def readline(self) -> Union[bytes, str]:
        """One line, with its newline (empty at the end of the file)."""
        self._check_readable()
        if not self._binary:
            assert self._decoder is not None
            while "\n" not in self._pending_text:
                raw = await self._read_bytes(_CHUNK)
                self._pending_text += self._decoder.decode(raw, final=not raw)
                if not raw:
                    break
            text = self._pending_text
            cut = text.find("\n") + 1 or len(text)
            self._pending_text = text[cut:]
            return text[:cut]
        line = bytearray()
        while True:
            chunk = await self.pread(_CHUNK // 16, self._pos)
            if not chunk:
                return bytes(line)
            cut = chunk.find(b"\n") + 1
            piece = chunk[:cut] if cut else chunk
            line += piece
            self._pos += len(piece)
            if cut:
                return bytes(line)

    def __aiter__(self) -> "AsyncFile":
        return self

    async def __anext__(self) -> Union[bytes, str]:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    async def write(self, data: Union[bytes, str, Any]) -> int:
        """Write *data* at the position (append mode: at the end); returns
        the bytes (text mode: characters) written."""
        self._check_writable()
        if self._binary:
            if isinstance(data, str):
                raise TypeError("a bytes-like object is required, not 'str'")
            raw = data
        else:
            if not isinstance(data, str):
                raise TypeError(f"write() argument must be str, not {type(data).__name__}")
            raw = data.encode(self.encoding or "utf-8", self.errors or "strict")
        if not self._binary and self._pos != self.tell():
            # Text read ahead: write where the caller's reading stopped.
            self.seek(self.tell())
        if self._append:
            n = await self._write_all(raw, -1)
            self._pos = os.lseek(self._fd, 0, os.SEEK_CUR)
        else:
            n = await self._write_all(raw, self._pos)
            self._pos += n
        return len(data) if not self._binary else n

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position (no kernel request for SEEK_SET/SEEK_CUR;
        SEEK_END asks ``lseek``, which is not an io_uring op)."""
        self._check_open()
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self.tell() + offset
        elif whence == os.SEEK_END:
            pos = os.lseek(self._fd, offset, os.SEEK_END)
        else:
            raise ValueError(f"invalid whence ({whence})")
        if pos < 0:
            raise OSError(22, f"negative seek position {pos}")
        self._pos = pos
        self._pending_text = ""
        if self._decoder is not None:
            self._decoder.reset()
        return pos

    def tell(self) -> int:
        """The position: in text mode, the byte offset just past the text
        returned so far (text decoded ahead, and bytes of a character
        not yet complete, are not counted)."""
        self._check_open()
        if self._decoder is None:
            return self._pos
        ahead = len(self._decoder.getstate()[0])
        if self._pending_text:
            ahead += len(self._pending_text.encode(self.encoding or "utf-8",
                                                   self.errors or "strict"))
        return self._pos - ahead

    # -- the rest ----------------------------------------------------------------

    async def fsync(self, *, datasync: bool = False) -> None:
        """``IORING_OP_FSYNC`` (``IORING_FSYNC_DATASYNC`` with *datasync*)."""
        self._check_open()
        lr = self._ring
        await lr.room()
        await lr.run_res(lr.ring.prep_fsync(self._fd, datasync=datasync), "IORING_OP_FSYNC",
                         self.name)

    async def truncate(self, size: Optional[int] = None) -> int:
        """``IORING_OP_FTRUNCATE`` to *size* (default: the position)."""
        self._check_writable()
        size = self._pos if size is None else size
        lr = self._ring
        await lr.room()
        await lr.run_res(lr.ring.prep_ftruncate(self._fd, size), "IORING_OP_FTRUNCATE", self.name)
        return size

    async def stat(self, mask: int = STATX_BASIC_STATS) -> statx:
        """``IORING_OP_STATX`` on the open file (``AT_EMPTY_PATH``): a
        ``statx`` structure (``stx_size``, ``stx_mode``, ...)."""
        self._check_open()
        lr = self._ring
        await lr.room()
        ud = lr.ring.prep_statx("", mask, dir_fd=self._fd, statx_flags=_AT_EMPTY_PATH)
        return await lr.run(ud)  # type: ignore[no-any-return]

    async def close(self) -> None:
        """``IORING_OP_CLOSE``; closing twice is allowed."""
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        lr = self._ring
        if lr.closed:
            os.close(fd)
            return
        await lr.room()
        await lr.run_res(lr.ring.prep_close(fd), "IORING_OP_CLOSE", self.name)

    async def __aenter__(self) -> "AsyncFile":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass

    def __repr__(self) -> str:
        state = "closed" if self._fd < 0 else f"fd={self._fd}"
        return f"<uring.asyncio.AsyncFile {self.name!r} mode={self.mode!r} {state}>"


_AT_EMPTY_PATH = 0x1000


class _Opening:
    """What ``open()`` returns: await it, or use it with ``async with``."""

    def __init__(self, path: Any, mode: str, encoding: Optional[str], errors: Optional[str],
                 perms: int, loop_ring: Optional[LoopRing]) -> None:
        self._args = (path, mode, encoding, errors, perms, loop_ring)
        self._file: Optional[AsyncFile] = None
        _mode_flags(mode)  # bad modes fail here, before anything is awaited

    def __await__(self) -> Any:
        return self._open().__await__()

    async def _open(self) -> AsyncFile:
        path, mode, encoding, errors, perms, lr = self._args
        lr = lr if lr is not None else get_ring()
        flags, readable, writable, append, binary = _mode_flags(mode)
        await lr.room()
        name = os.fspath(path) if not isinstance(path, int) else path
        res = await lr.run_res(lr.ring.prep_openat(path, flags, perms), "IORING_OP_OPENAT", name,
                               salvage=close_fd)
        # As open(): an append-mode file is positioned at its end.
        position = os.lseek(res, 0, os.SEEK_END) if append else 0
        return AsyncFile(lr, res, name, mode, readable, writable, append, binary, encoding, errors,
                         position)

    async def __aenter__(self) -> AsyncFile:
        self._file = await self._open()
        return self._file

    async def __aexit__(self, *exc: Any) -> None:
        if self._file is not None:
            await self._file.close()


def open(path: Any, mode: str = "r", *, encoding: Optional[str] = None,
         errors: Optional[str] = None, perms: int = 0o666,
         ring: Optional[LoopRing] = None) -> _Opening:
    """Open *path* with ``IORING_OP_OPENAT`` on the running loop's ring.

    *mode* is ``open()``'s (``"r"``, ``"wb"``, ``"a+"``, ``"x"``, ...);
    text modes decode with *encoding* (default UTF-8).  Use as
    ``async with uring.asyncio.open(p, "rb") as f`` or ``f = await
    uring.asyncio.open(p)`` (then ``await f.close()``)."""
    return _Opening(path, mode, encoding, errors, perms, ring)


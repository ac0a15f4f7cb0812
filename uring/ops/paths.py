"""Path operations: open, close, stat, rename, unlink, mkdir, links, xattrs.

Paths are taken as ``str``, ``bytes`` or ``os.PathLike`` and passed to the
kernel as NUL-terminated bytes held by the request until it completes (the
kernel copies a path in when the request is issued, which may be on an
io-wq worker long after the submit).

Every op here names its file by ``dirfd`` + path, as the ``*at`` system
calls do: *dir_fd* is ``AT_FDCWD`` (the current directory; the default) or
an open directory (an ``int`` or anything with ``fileno()``).  The kernel
refuses ``IOSQE_FIXED_FILE`` on all of them (``-EBADF``): a ``dirfd`` cannot
be a registered-file slot, so only the fd-based xattr ops take ``fixed``.
The SQE layouts follow the kernel's ``io_uring/openclose.c``, ``fs.c``,
``statx.c`` and ``xattr.c`` prep functions (liburing's ``io_uring_prep_*``
fill the same fields).

In a ``link()`` chain, a failed OPENAT, OPENAT2 or CLOSE cancels the rest
of the chain (``-ECANCELED``), but since Linux 6.0 a failed RENAMEAT,
UNLINKAT, MKDIRAT, SYMLINKAT, LINKAT, STATX or xattr op does not: the
kernel posts the error and starts the next member anyway (5.x kernels
cancelled).  Check each ``res`` of such a chain.

The flag values below (``RESOLVE_*``, ``RENAME_*``, ``AT_*``, ``XATTR_*``,
``STATX_*``) are the kernel's UAPI ones; ``struct statx`` is not part of
``io_uring.h``, so it is defined here, from ``include/uapi/linux/stat.h``
(Linux 6.18 layout, 256 bytes).
"""

from __future__ import annotations

import ctypes
import os
from typing import Any, Callable, Optional, Tuple, Union

from .. import abi
from ..buffers import PinnedBuffer
from .base import AT_FDCWD, OpsBase, c_path

__all__ = [
    "AT_EMPTY_PATH", "AT_NO_AUTOMOUNT", "AT_REMOVEDIR", "AT_STATX_DONT_SYNC",
    "AT_STATX_FORCE_SYNC", "AT_STATX_SYNC_AS_STAT", "AT_SYMLINK_FOLLOW",
    "AT_SYMLINK_NOFOLLOW", "PathOps", "RENAME_EXCHANGE", "RENAME_NOREPLACE",
    "RENAME_WHITEOUT", "RESOLVE_BENEATH", "RESOLVE_CACHED", "RESOLVE_IN_ROOT",
    "RESOLVE_NO_MAGICLINKS", "RESOLVE_NO_SYMLINKS", "RESOLVE_NO_XDEV",
    "STATX_ALL", "STATX_ATIME", "STATX_ATTR_APPEND", "STATX_ATTR_AUTOMOUNT",
    "STATX_ATTR_COMPRESSED", "STATX_ATTR_DAX", "STATX_ATTR_ENCRYPTED",
    "STATX_ATTR_IMMUTABLE", "STATX_ATTR_MOUNT_ROOT", "STATX_ATTR_NODUMP",
    "STATX_ATTR_VERITY", "STATX_ATTR_WRITE_ATOMIC", "STATX_BASIC_STATS",
    "STATX_BLOCKS", "STATX_BTIME", "STATX_CTIME", "STATX_DIOALIGN",
    "STATX_DIO_READ_ALIGN", "STATX_GID", "STATX_INO", "STATX_MNT_ID",
    "STATX_MNT_ID_UNIQUE", "STATX_MODE", "STATX_MTIME", "STATX_NLINK",
    "STATX_SIZE", "STATX_SUBVOL", "STATX_TYPE", "STATX_UID",
    "STATX_WRITE_ATOMIC", "XATTR_CREATE", "XATTR_REPLACE", "statx",
    "statx_timestamp",
]

# -- flags (include/uapi/linux/fcntl.h, openat2.h, fs.h, xattr.h) ------------

AT_SYMLINK_NOFOLLOW = 0x100  #: statx: do not follow a final symlink
AT_REMOVEDIR = 0x200  #: unlinkat: remove a directory (rmdir)
AT_SYMLINK_FOLLOW = 0x400  #: linkat: follow a final symlink in the old path
AT_NO_AUTOMOUNT = 0x800  #: statx: do not trigger an automount
AT_EMPTY_PATH = 0x1000  #: statx: an empty path means *dir_fd* itself
AT_STATX_SYNC_AS_STAT = 0x0000  #: statx: do what stat() does
AT_STATX_FORCE_SYNC = 0x2000  #: statx: sync the attributes with the server
AT_STATX_DONT_SYNC = 0x4000  #: statx: take whatever is cached

RESOLVE_NO_XDEV = 0x01  #: openat2: no mount-point crossings
RESOLVE_NO_MAGICLINKS = 0x02  #: openat2: no /proc/*/fd-style links
RESOLVE_NO_SYMLINKS = 0x04  #: openat2: no symlinks at all
RESOLVE_BENEATH = 0x08  #: openat2: stay beneath *dir_fd* (EXDEV otherwise)
RESOLVE_IN_ROOT = 0x10  #: openat2: treat *dir_fd* as the root
RESOLVE_CACHED = 0x20  #: openat2: only from the dcache (EAGAIN otherwise)

RENAME_NOREPLACE = 1 << 0  #: renameat: fail (EEXIST) if the new name exists
RENAME_EXCHANGE = 1 << 1  #: renameat: swap the two names atomically
RENAME_WHITEOUT = 1 << 2  #: renameat: leave a whiteout (overlay filesystems)

XATTR_CREATE = 0x1  #: setxattr: fail (EEXIST) if the attribute exists
XATTR_REPLACE = 0x2  #: setxattr: fail (ENODATA) if it does not

# -- struct statx (include/uapi/linux/stat.h) ---------------------------------

STATX_TYPE = 0x00000001  #: stx_mode & S_IFMT
STATX_MODE = 0x00000002  #: stx_mode & ~S_IFMT
STATX_NLINK = 0x00000004
STATX_UID = 0x00000008
STATX_GID = 0x00000010
STATX_ATIME = 0x00000020
STATX_MTIME = 0x00000040
STATX_CTIME = 0x00000080
STATX_INO = 0x00000100
STATX_SIZE = 0x00000200
STATX_BLOCKS = 0x00000400
STATX_BASIC_STATS = 0x000007FF  #: what stat() fills
STATX_BTIME = 0x00000800
STATX_ALL = 0x00000FFF  #: deprecated: STATX_BASIC_STATS | STATX_BTIME
STATX_MNT_ID = 0x00001000
STATX_DIOALIGN = 0x00002000
STATX_MNT_ID_UNIQUE = 0x00004000
STATX_SUBVOL = 0x00008000
STATX_WRITE_ATOMIC = 0x00010000
STATX_DIO_READ_ALIGN = 0x00020000

STATX_ATTR_COMPRESSED = 0x00000004
STATX_ATTR_IMMUTABLE = 0x00000010
STATX_ATTR_APPEND = 0x00000020
STATX_ATTR_NODUMP = 0x00000040
STATX_ATTR_ENCRYPTED = 0x00000800
STATX_ATTR_AUTOMOUNT = 0x00001000
STATX_ATTR_MOUNT_ROOT = 0x00002000
STATX_ATTR_VERITY = 0x00100000
STATX_ATTR_DAX = 0x00200000
STATX_ATTR_WRITE_ATOMIC = 0x00400000

_u16, _u32, _s32, _u64, _s64 = (ctypes.c_uint16, ctypes.c_uint32, ctypes.c_int32,
                                ctypes.c_uint64, ctypes.c_int64)


class statx_timestamp(ctypes.Structure):
    """``struct statx_timestamp``: seconds and nanoseconds since the epoch."""

    _fields_ = [("tv_sec", _s64), ("tv_nsec", _u32), ("__reserved", _s32)]

    @property
    def ns(self) -> int:
        """The time in nanoseconds (as ``os.stat_result.st_mtime_ns``)."""
        return int(self.tv_sec) * 10**9 + int(self.tv_nsec)

    def __repr__(self) -> str:
        return f"statx_timestamp({self.tv_sec}, {self.tv_nsec})"


class statx(ctypes.Structure):
    """``struct statx`` (``include/uapi/linux/stat.h``), what
    ``IORING_OP_STATX`` writes.  ``stx_mask`` says which fields the kernel
    filled; the Linux 6.18 layout, 0x100 bytes (the spare words are future
    fields, zero-filled by the kernel)."""

    _fields_ = [
        ("stx_mask", _u32),
        ("stx_blksize", _u32),
        ("stx_attributes", _u64),
        ("stx_nlink", _u32),
        ("stx_uid", _u32),
        ("stx_gid", _u32),
        ("stx_mode", _u16),
        ("__spare0", _u16 * 1),
        ("stx_ino", _u64),
        ("stx_size", _u64),
        ("stx_blocks", _u64),
        ("stx_attributes_mask", _u64),
        ("stx_atime", statx_timestamp),
        ("stx_btime", statx_timestamp),
        ("stx_ctime", statx_timestamp),
        ("stx_mtime", statx_timestamp),
        ("stx_rdev_major", _u32),
        ("stx_rdev_minor", _u32),
        ("stx_dev_major", _u32),
        ("stx_dev_minor", _u32),
        ("stx_mnt_id", _u64),
        ("stx_dio_mem_align", _u32),
        ("stx_dio_offset_align", _u32),
        ("stx_subvol", _u64),
        ("stx_atomic_write_unit_min", _u32),
        ("stx_atomic_write_unit_max", _u32),
        ("stx_atomic_write_segments_max", _u32),
        ("stx_dio_read_offset_align", _u32),
        ("stx_atomic_write_unit_max_opt", _u32),
        ("__spare2", _u32 * 1),
        ("__spare3", _u64 * 8),
    ]

    @property
    def stx_dev(self) -> int:
        """The device as ``os.stat_result.st_dev`` (``os.makedev``)."""
        return os.makedev(self.stx_dev_major, self.stx_dev_minor)

    @property
    def stx_rdev(self) -> int:
        return os.makedev(self.stx_rdev_major, self.stx_rdev_minor)

    def __repr__(self) -> str:
        return (f"statx(mask={self.stx_mask:#x}, mode={self.stx_mode:#o}, ino={self.stx_ino}, "
                f"size={self.stx_size}, nlink={self.stx_nlink}, uid={self.stx_uid}, "
                f"gid={self.stx_gid})")


assert ctypes.sizeof(statx) == 0x100
assert statx.stx_atime.offset == 0x40 and statx.stx_rdev_major.offset == 0x80
assert statx.stx_atomic_write_unit_max_opt.offset == 0xB8

_OPEN_HOW_SIZE = ctypes.sizeof(abi.open_how)
_O_CLOEXEC = os.O_CLOEXEC
_O_CREAT = os.O_CREAT
_O_TMPFILE = getattr(os, "O_TMPFILE", 0o20200000)
_FILE_INDEX_ALLOC = int(abi.IORING_FILE_INDEX_ALLOC)
_U32 = 0xFFFFFFFF

PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


def _name(path: Any) -> str:
    """A path as the error message shows it."""
    return os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else repr(path)


def _xattr_name(name: Any) -> bytes:
    """An attribute name (``str`` or ``bytes``, e.g. ``"user.foo"``) as
    NUL-terminated bytes."""
    if not isinstance(name, (str, bytes)):
        raise TypeError(f"an xattr name must be str or bytes, not {type(name).__name__}")
    raw = os.fsencode(name)
    if b"\0" in raw:
        raise ValueError(f"embedded NUL in xattr name {name!r}")
    return raw + b"\0"


class PathOps(OpsBase):
    """Operations that name files by path (``dirfd`` + path, as the ``*at``
    system calls do), plus close and the xattr ops."""

    # -- operands ---------------------------------------------------------------

    def _dir_fd(self, dir_fd: Any) -> int:
        """*dir_fd* as the SQE's ``s32``: ``AT_FDCWD`` or an open fd."""
        if dir_fd.__class__ is int and dir_fd == AT_FDCWD:
            return AT_FDCWD
        fd = self._file(dir_fd, False)
        if fd > 0x7FFFFFFF:  # an s32 field (and a u32 one, for the new dirfd)
            raise ValueError(f"bad file descriptor {fd}: not an s32")
        return fd

    # -- open and close -------------------------------------------------------

    def prep_openat(self, path: PathArg, open_flags: int = os.O_RDONLY, mode: int = 0o644,
                    dir_fd: Any = AT_FDCWD, user_data: Optional[int] = None, *,
                    flags: int = 0, file_index: Optional[int] = None) -> int:
        """``IORING_OP_OPENAT``: ``openat(dir_fd, path, open_flags, mode)``;
        ``res`` is the new fd (no ``O_CLOEXEC`` unless asked for, as in C).

        With *file_index* (a slot of the registered file table, or
        ``IORING_FILE_INDEX_ALLOC`` to let the kernel pick a free one) the
        file goes straight into the table as a direct descriptor and no fd
        is created: ``res`` is 0, or the slot the kernel picked.  The SQE's
        ``file_index`` carries slot + 1 (0 means "not direct")."""
        slot = self._direct_slot("IORING_OP_OPENAT", file_index,
                                 cloexec="O_CLOEXEC" if open_flags & _O_CLOEXEC else "")
        raw, addr = c_path(path)
        return self._op(abi.IORING_OP_OPENAT, fd=self._dir_fd(dir_fd), addr=addr,
                        len=mode, op_flags=open_flags, file_index=slot,
                        user_data=user_data, flags=flags, target=_name(path), keep=raw)

    def prep_openat2(self, path: PathArg, how: Optional[abi.open_how] = None,
                     dir_fd: Any = AT_FDCWD, user_data: Optional[int] = None, *,
                     open_flags: Optional[int] = None, mode: Optional[int] = None,
                     resolve: Optional[int] = None, flags: int = 0,
                     file_index: Optional[int] = None) -> int:
        """``IORING_OP_OPENAT2``: ``openat2(dir_fd, path, how)``; ``res`` is
        the new fd (or, with *file_index*, as for ``prep_openat``).

        *how* is an ``abi.open_how`` (copied here), or built from
        *open_flags* (default ``O_RDONLY``), *mode* (default 0o644 when the
        flags create a file, else 0: openat2 refuses a mode otherwise) and
        *resolve* (``RESOLVE_*``).  The SQE points at the struct with
        ``addr2`` and gives its size in ``len`` (an extensible struct)."""
        if how is not None:
            if open_flags is not None or mode is not None or resolve is not None:
                raise TypeError("prep_openat2: pass either how or open_flags/mode/resolve")
            if not isinstance(how, abi.open_how):
                raise TypeError(f"prep_openat2: how must be an abi.open_how, "
                                f"not {type(how).__name__}")
            how = abi.open_how.from_buffer_copy(how)
        else:
            how = abi.open_how()
            how.flags = os.O_RDONLY if open_flags is None else open_flags
            if mode is None:
                creates = how.flags & _O_CREAT or how.flags & _O_TMPFILE == _O_TMPFILE
                mode = 0o644 if creates else 0
            how.mode = mode
            how.resolve = 0 if resolve is None else resolve
        slot = self._direct_slot("IORING_OP_OPENAT2", file_index,
                                 cloexec="O_CLOEXEC" if how.flags & _O_CLOEXEC else "")
        raw, addr = c_path(path)
        return self._op(abi.IORING_OP_OPENAT2, fd=self._dir_fd(dir_fd), addr=addr,
                        len=_OPEN_HOW_SIZE, off=ctypes.addressof(how), file_index=slot,
                        user_data=user_data, flags=flags, target=_name(path),
                        keep=(raw, how))

    def prep_close(self, fd: Any, user_data: Optional[int] = None, *, flags: int = 0,
                   fixed: bool = False) -> int:
        """``IORING_OP_CLOSE``: close *fd* (``res`` 0).  With *fixed*, *fd*
        is a slot of the registered file table and that slot is emptied:
        the SQE then has ``fd`` 0 and ``file_index`` slot + 1 (not
        ``IOSQE_FIXED_FILE``, which the kernel refuses here).

        Closing an fd a Python object owns (a file, a socket) leaves that
        object believing it is open; close raw fds."""
        fd = self._file(fd, fixed)
        if fixed:
            return self._op(abi.IORING_OP_CLOSE, fd=0, file_index=fd + 1, user_data=user_data,
                            flags=flags, target=f"fixed file {fd}")
        return self._op(abi.IORING_OP_CLOSE, fd=fd, user_data=user_data, flags=flags, target=fd)

    # -- stat ---------------------------------------------------------------------

    def prep_statx(self, path: PathArg, mask: int = STATX_BASIC_STATS,
                   dir_fd: Any = AT_FDCWD, user_data: Optional[int] = None, *,
                   statx_flags: int = 0, flags: int = 0) -> int:
        """``IORING_OP_STATX``: ``statx(dir_fd, path, statx_flags, mask)``;
        ``Completion.result()`` is the ``statx`` struct (a copy).

        The kernel writes the struct into memory of ours (``addr2``) when
        the request runs, possibly on an io-wq worker after the submit, so
        the request holds it.  ``AT_EMPTY_PATH`` with path ``""`` stats
        *dir_fd* itself (as ``fstat``)."""
        out = statx()
        raw, addr = c_path(path)

        def decode(res: int) -> statx:
            return statx.from_buffer_copy(out)

        return self._op(abi.IORING_OP_STATX, fd=self._dir_fd(dir_fd), addr=addr, len=mask,
                        off=ctypes.addressof(out), op_flags=statx_flags, user_data=user_data,
                        flags=flags, target=_name(path), keep=(raw, out), decode=decode)

    # -- names ----------------------------------------------------------------------

    def prep_renameat(self, old: PathArg, new: PathArg, old_dir_fd: Any = AT_FDCWD,
                      new_dir_fd: Any = AT_FDCWD, user_data: Optional[int] = None, *,
                      rename_flags: int = 0, flags: int = 0) -> int:
        """``IORING_OP_RENAMEAT``: ``renameat2(old_dir_fd, old, new_dir_fd,
        new, rename_flags)`` (``RENAME_NOREPLACE``, ``RENAME_EXCHANGE``,
        ``RENAME_WHITEOUT``); ``res`` 0.  The SQE has the old dirfd in
        ``fd``, the new one in ``len``, the new path in ``addr2``."""
        old_raw, old_addr = c_path(old)
        new_raw, new_addr = c_path(new)
        return self._op(abi.IORING_OP_RENAMEAT, fd=self._dir_fd(old_dir_fd), addr=old_addr,
                        len=self._dir_fd(new_dir_fd) & _U32, off=new_addr,
                        op_flags=rename_flags, user_data=user_data, flags=flags,
                        target=f"{_name(old)} -> {_name(new)}", keep=(old_raw, new_raw))

    def prep_unlinkat(self, path: PathArg, dir_fd: Any = AT_FDCWD,
                      user_data: Optional[int] = None, *, unlink_flags: int = 0,
                      flags: int = 0) -> int:
        """``IORING_OP_UNLINKAT``: ``unlinkat(dir_fd, path, unlink_flags)``
        (``AT_REMOVEDIR``: remove an empty directory); ``res`` 0."""
        raw, addr = c_path(path)
        return self._op(abi.IORING_OP_UNLINKAT, fd=self._dir_fd(dir_fd), addr=addr,
                        op_flags=unlink_flags, user_data=user_data, flags=flags,
                        target=_name(path), keep=raw)

    def prep_mkdirat(self, path: PathArg, mode: int = 0o777, dir_fd: Any = AT_FDCWD,
                     user_data: Optional[int] = None, *, flags: int = 0) -> int:
        """``IORING_OP_MKDIRAT``: ``mkdirat(dir_fd, path, mode)`` (the umask
        applies); ``res`` 0.  The mode travels in ``len``."""
        raw, addr = c_path(path)
        return self._op(abi.IORING_OP_MKDIRAT, fd=self._dir_fd(dir_fd), addr=addr, len=mode,
                        user_data=user_data, flags=flags, target=_name(path), keep=raw)

    def prep_symlinkat(self, target: PathArg, linkpath: PathArg, new_dir_fd: Any = AT_FDCWD,
                       user_data: Optional[int] = None, *, flags: int = 0) -> int:
        """``IORING_OP_SYMLINKAT``: ``symlinkat(target, new_dir_fd, linkpath)``:
        create *linkpath* pointing at *target* (stored as given, not
        resolved); ``res`` 0.  *target* is in ``addr``, *linkpath* in ``addr2``."""
        target_raw, target_addr = c_path(target)
        link_raw, link_addr = c_path(linkpath)
        return self._op(abi.IORING_OP_SYMLINKAT, fd=self._dir_fd(new_dir_fd), addr=target_addr,
                        off=link_addr, user_data=user_data, flags=flags,
                        target=f"{_name(target)} -> {_name(linkpath)}",
                        keep=(target_raw, link_raw))

    def prep_linkat(self, old: PathArg, new: PathArg, old_dir_fd: Any = AT_FDCWD,
                    new_dir_fd: Any = AT_FDCWD, user_data: Optional[int] = None, *,
                    link_flags: int = 0, flags: int = 0) -> int:
        """``IORING_OP_LINKAT``: ``linkat(old_dir_fd, old, new_dir_fd, new,
        link_flags)`` (``AT_SYMLINK_FOLLOW``: link what a symlink points
        at); ``res`` 0.  Laid out as RENAMEAT (new dirfd in ``len``)."""
        old_raw, old_addr = c_path(old)
        new_raw, new_addr = c_path(new)
        return self._op(abi.IORING_OP_LINKAT, fd=self._dir_fd(old_dir_fd), addr=old_addr,
                        len=self._dir_fd(new_dir_fd) & _U32, off=new_addr,
                        op_flags=link_flags, user_data=user_data, flags=flags,
                        target=f"{_name(old)} -> {_name(new)}", keep=(old_raw, new_raw))

    # -- extended attributes --------------------------------------------------------

    def _xattr_value(self, op: str, value: Any) -> PinnedBuffer:
        buf = self._readable(value)
        if buf.nbytes > _U32:
            raise ValueError(f"{op}: a {buf.nbytes}-byte value does not fit the SQE")
        return buf

    def _xattr_out(self, op: str, size_or_buffer: Any
                   ) -> Tuple[Optional[PinnedBuffer], int, Callable[[int], Any]]:
        """The buffer getxattr writes into, its size, and the decoder.  Size
        0 asks only for the value's length (``result()`` is then that int)."""
        if isinstance(size_or_buffer, int) and not isinstance(size_or_buffer, bool):
            if not 0 <= size_or_buffer <= _U32:
                raise ValueError(f"{op}: bad size {size_or_buffer}")
            if size_or_buffer == 0:
                return None, 0, int
            buf = self._writable(bytearray(size_or_buffer))
        elif isinstance(size_or_buffer, bool):
            raise TypeError(f"{op}: size_or_buffer must be an int or a writable buffer")
        else:
            buf = self._writable(size_or_buffer)
            if buf.nbytes > _U32:
                raise ValueError(f"{op}: a {buf.nbytes}-byte buffer does not fit the SQE")
        if buf.nbytes == 0:
            return None, 0, int

        def decode(res: int, _buf: PinnedBuffer = buf) -> bytes:
            return ctypes.string_at(_buf.address, res)

        return buf, buf.nbytes, decode

    def prep_setxattr(self, path: PathArg, name: Union[str, bytes], value: Any,
                      user_data: Optional[int] = None, *, xattr_flags: int = 0,
                      flags: int = 0) -> int:
        """``IORING_OP_SETXATTR``: ``setxattr(path, name, value, xattr_flags)``
        (``XATTR_CREATE``, ``XATTR_REPLACE``; symlinks followed); ``res`` 0.
        The SQE has the name in ``addr``, the value in ``addr2`` and its
        length in ``len``, the path in ``addr3``."""
        op = "IORING_OP_SETXATTR"
        key = _xattr_name(name)
        buf = self._xattr_value(op, value)
        raw, addr = c_path(path)
        return self._op(abi.IORING_OP_SETXATTR, fd=0, addr=PinnedBuffer(key).address,
                        off=buf.address, len=buf.nbytes, op_flags=xattr_flags, addr3=addr,
                        user_data=user_data, flags=flags,
                        target=f"{_name(path)} [{_name(name)}]", keep=(key, buf, raw))

    def prep_getxattr(self, path: PathArg, name: Union[str, bytes], size_or_buffer: Any,
                      user_data: Optional[int] = None, *, flags: int = 0) -> int:
        """``IORING_OP_GETXATTR``: ``getxattr(path, name, buf, size)``; ``res``
        is the value's length and ``result()`` the value (``bytes``).
        *size_or_buffer* is a size (a buffer of it is made) or a writable
        buffer; size 0 asks only for the length (``result()``: the int).
        ``ERANGE`` when the value does not fit."""
        op = "IORING_OP_GETXATTR"
        key = _xattr_name(name)
        buf, size, decode = self._xattr_out(op, size_or_buffer)
        raw, addr = c_path(path)
        return self._op(abi.IORING_OP_GETXATTR, fd=0, addr=PinnedBuffer(key).address,
                        off=0 if buf is None else buf.address, len=size, addr3=addr,
                        user_data=user_data, flags=flags,
                        target=f"{_name(path)} [{_name(name)}]", keep=(key, buf, raw),
                        decode=decode)

    def prep_fsetxattr(self, fd: Any, name: Union[str, bytes], value: Any,
                       user_data: Optional[int] = None, *, xattr_flags: int = 0,
                       flags: int = 0, fixed: bool = False) -> int:
        """``IORING_OP_FSETXATTR``: ``fsetxattr(fd, name, value, xattr_flags)``;
        ``res`` 0.  As ``prep_setxattr``, with the file in ``fd``."""
        op = "IORING_OP_FSETXATTR"
        key = _xattr_name(name)
        buf = self._xattr_value(op, value)
        fd = self._file(fd, fixed)
        return self._op(abi.IORING_OP_FSETXATTR, fd=fd, fixed=fixed,
                        addr=PinnedBuffer(key).address, off=buf.address, len=buf.nbytes,
                        op_flags=xattr_flags, user_data=user_data, flags=flags,
                        target=f"{fd} [{_name(name)}]", keep=(key, buf))

    def prep_fgetxattr(self, fd: Any, name: Union[str, bytes], size_or_buffer: Any,
                       user_data: Optional[int] = None, *, flags: int = 0,
                       fixed: bool = False) -> int:
        """``IORING_OP_FGETXATTR``: ``fgetxattr(fd, name, buf, size)``; as
        ``prep_getxattr`` (``result()`` is the value, or its length for size 0)."""
        op = "IORING_OP_FGETXATTR"
        key = _xattr_name(name)
        buf, size, decode = self._xattr_out(op, size_or_buffer)
        fd = self._file(fd, fixed)
        return self._op(abi.IORING_OP_FGETXATTR, fd=fd, fixed=fixed,
                        addr=PinnedBuffer(key).address,
                        off=0 if buf is None else buf.address, len=size,
                        user_data=user_data, flags=flags,
                        target=f"{fd} [{_name(name)}]", keep=(key, buf), decode=decode)

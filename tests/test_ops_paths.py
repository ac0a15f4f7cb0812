"""The path operations end to end, against real files in ``tmp_path``: each
test checks what happened on the filesystem (a file opened and readable, a
name moved, a link made, an attribute stored), not only ``res``."""

from __future__ import annotations

import errno
import fcntl
import gc
import os
import pathlib
import stat
from typing import Any, Callable, Iterator

import pytest
from conftest import require_op

import uring
from uring import abi
from uring.ops import paths as P

TIMEOUT = 5  # seconds; a safety bound only


def one(ring: uring.Ring) -> Any:
    """Submit, wait for one completion, return it."""
    (c,) = ring.completions(1, timeout=TIMEOUT)
    return c


def umasked(mode: int) -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


@pytest.fixture
def dirfd(tmp_path: pathlib.Path) -> Iterator[int]:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield fd
    finally:
        os.close(fd)


# -- OPENAT ---------------------------------------------------------------------


def test_openat_opens_for_reading(ring: uring.Ring, datafile: tuple) -> None:
    require_op(abi.IORING_OP_OPENAT)
    _, path, content = datafile
    ring.prep_openat(pathlib.Path(path), user_data=7)
    c = one(ring)
    assert c.user_data == 7
    fd = c.result()
    try:
        assert os.pread(fd, 100, 1000) == content[1000:1100]
        # As in C: no O_CLOEXEC unless asked for.
        assert not fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        with pytest.raises(OSError):
            os.write(fd, b"x")  # O_RDONLY
    finally:
        os.close(fd)


def test_openat_creates_relative_to_dir_fd(ring: uring.Ring, tmp_path: pathlib.Path,
                                           dirfd: int) -> None:
    require_op(abi.IORING_OP_OPENAT)
    ring.prep_openat(b"new.txt", os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o640,
                     dirfd)
    fd = one(ring).result()
    try:
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        os.write(fd, b"written through the ring's fd")
    finally:
        os.close(fd)
    created = tmp_path / "new.txt"
    assert created.read_bytes() == b"written through the ring's fd"
    assert stat.S_IMODE(created.stat().st_mode) == umasked(0o640)


def test_openat_error_names_op_and_path(ring: uring.Ring, tmp_path: pathlib.Path) -> None:
    require_op(abi.IORING_OP_OPENAT)
    missing = tmp_path / "missing"
    ring.prep_openat(missing)
    c = one(ring)
    with pytest.raises(FileNotFoundError) as info:
        c.result()
    assert "IORING_OP_OPENAT" in str(info.value) and info.value.filename == str(missing)
    # O_EXCL on an existing file: EEXIST, as openat(2) gives.
    missing.write_bytes(b"")
    ring.prep_openat(missing, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    with pytest.raises(FileExistsError, match="IORING_OP_OPENAT"):
        one(ring).result()


def test_openat_direct_into_fixed_table(ring: uring.Ring, datafile: tuple) -> None:
    require_op(abi.IORING_OP_OPENAT)
    _, path, content = datafile
    ring.register_files_sparse(4)
    ring.prep_openat(path, file_index=2)
    assert one(ring).result() == 0  # an explicit slot: res 0, no fd made
    buf = bytearray(64)
    ring.prep_read(2, buf, 300, fixed=True)
    assert one(ring).result() == 64 and bytes(buf) == content[300:364]
    # IORING_FILE_INDEX_ALLOC: the kernel picks a free slot and returns it.
    ring.prep_openat(path, file_index=abi.IORING_FILE_INDEX_ALLOC)
    slot = one(ring).result()
    assert slot in (0, 1, 3)
    ring.prep_read(slot, buf, 0, fixed=True)
    assert one(ring).result() == 64 and bytes(buf) == content[:64]
    # The SQE carried slot + 1 (a slot-0 SQE would not have been "direct").
    ring.prep_openat(path, file_index=0)
    assert one(ring).result() == 0
    ring.prep_read(0, buf, 64, fixed=True)
    assert one(ring).result() == 64 and bytes(buf) == content[64:128]


def test_openat_direct_refused_before_submission(ring: uring.Ring, datafile: tuple) -> None:
    require_op(abi.IORING_OP_OPENAT)
    _, path, _ = datafile
    ring.register_files_sparse(2)
    before = ring.sq_ready
    with pytest.raises(ValueError, match="O_CLOEXEC"):
        ring.prep_openat(path, os.O_RDONLY | os.O_CLOEXEC, file_index=0)
    with pytest.raises(ValueError, match="outside"):
        ring.prep_openat(path, file_index=2)
    with pytest.raises(TypeError):
        ring.prep_openat(path, file_index="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NUL"):
        ring.prep_openat("bad\0path")
    assert ring.sq_ready == before


# -- OPENAT2 --------------------------------------------------------------------


def test_openat2_with_open_how(ring: uring.Ring, datafile: tuple) -> None:
    require_op(abi.IORING_OP_OPENAT2)
    _, path, content = datafile
    how = abi.open_how()
    how.flags = os.O_RDWR
    ring.prep_openat2(path, how)
    how.flags = os.O_WRONLY | os.O_TRUNC  # copied at prep: this must not matter
    fd = one(ring).result()
    try:
        assert os.pread(fd, 10, 20) == content[20:30]  # readable: O_RDWR, not O_WRONLY
        os.pwrite(fd, b"ZZ", 0)
    finally:
        os.close(fd)
    with open(path, "rb") as f:
        assert f.read() == b"ZZ" + content[2:]  # not truncated


def test_openat2_keywords_create(ring: uring.Ring, tmp_path: pathlib.Path, dirfd: int) -> None:
    require_op(abi.IORING_OP_OPENAT2)
    ring.prep_openat2("made", dir_fd=dirfd, open_flags=os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    fd = one(ring).result()
    os.close(fd)
    assert stat.S_IMODE((tmp_path / "made").stat().st_mode) == umasked(0o644)
    ring.prep_openat2("made2", dir_fd=dirfd, open_flags=os.O_CREAT | os.O_WRONLY, mode=0o600)
    os.close(one(ring).result())
    assert stat.S_IMODE((tmp_path / "made2").stat().st_mode) == umasked(0o600)
    # openat2 is strict: a mode without O_CREAT is EINVAL (openat ignores it).
    ring.prep_openat2("made", dir_fd=dirfd, open_flags=os.O_RDONLY, mode=0o600)
    with pytest.raises(OSError, match="IORING_OP_OPENAT2") as info:
        one(ring).result()
    assert info.value.errno == errno.EINVAL


def test_openat2_resolve_beneath(ring: uring.Ring, tmp_path: pathlib.Path) -> None:
    require_op(abi.IORING_OP_OPENAT2)
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "ok").write_bytes(b"inside")
    (tmp_path / "x").write_bytes(b"outside")
    fd = os.open(inner, os.O_RDONLY | os.O_DIRECTORY)
    try:
        ring.prep_openat2("../x", dir_fd=fd, resolve=P.RESOLVE_BENEATH, user_data=1)
        ring.prep_openat2("ok", dir_fd=fd, resolve=P.RESOLVE_BENEATH, user_data=2)
        ring.prep_openat2("../x", dir_fd=fd, user_data=3)  # the control: no RESOLVE_*
        got = {c.user_data: c for c in ring.completions(3, timeout=TIMEOUT)}
    finally:
        os.close(fd)
    with pytest.raises(OSError, match="IORING_OP_OPENAT2") as info:
        got[1].result()
    assert info.value.errno == errno.EXDEV and info.value.filename == "../x"
    for ud, data in ((2, b"inside"), (3, b"outside")):
        new = got[ud].result()
        try:
            assert os.read(new, 100) == data
        finally:
            os.close(new)


def test_openat2_direct_and_argument_checks(ring: uring.Ring, datafile: tuple) -> None:
    require_op(abi.IORING_OP_OPENAT2)
    _, path, content = datafile
    ring.register_files_sparse(2)
    ring.prep_openat2(path, file_index=1)
    assert one(ring).result() == 0
    buf = bytearray(16)
    ring.prep_read(1, buf, 16, fixed=True)
    assert one(ring).result() == 16 and bytes(buf) == content[16:32]
    before = ring.sq_ready
    with pytest.raises(TypeError, match="either"):
        ring.prep_openat2(path, abi.open_how(), open_flags=os.O_RDONLY)
    with pytest.raises(TypeError, match="open_how"):
        ring.prep_openat2(path, {"flags": 0})  # type: ignore[arg-type]
    assert ring.sq_ready == before


# -- CLOSE ----------------------------------------------------------------------------


def test_close_closes_the_fd(ring: uring.Ring, datafile: tuple) -> None:
    require_op(abi.IORING_OP_CLOSE)
    _, path, _ = datafile
    fd = os.open(path, os.O_RDONLY)
    os.fstat(fd)
    ring.prep_close(fd)
    assert one(ring).result() == 0
    with pytest.raises(OSError) as info:
        os.fstat(fd)
    assert info.value.errno == errno.EBADF


def test_close_error(ring: uring.Ring, datafile: tuple) -> None:
    require_op(abi.IORING_OP_CLOSE)
    _, path, _ = datafile
    fd = os.open(path, os.O_RDONLY)
    os.close(fd)  # a number that is no longer an open fd
    ring.prep_close(fd)
    c = one(ring)
    assert c.res == -errno.EBADF
    with pytest.raises(OSError, match="IORING_OP_CLOSE") as info:
        c.result()
    assert info.value.errno == errno.EBADF
    with pytest.raises(ValueError):
        ring.prep_close(-1)


def test_close_fixed_slot(ring: uring.Ring, datafile: tuple) -> None:
    require_op(abi.IORING_OP_CLOSE)
    fd, _, content = datafile
    ring.register_files([None, fd])
    buf = bytearray(8)
    ring.prep_read(1, buf, 8, fixed=True)
    assert one(ring).result() == 8 and bytes(buf) == content[8:16]
    ring.prep_close(1, fixed=True)
    assert one(ring).result() == 0
    ring.prep_read(1, buf, 0, fixed=True)
    with pytest.raises(OSError, match="IORING_OP_READ") as info:
        one(ring).result()
    assert info.value.errno == errno.EBADF
    os.fstat(fd)  # the process's own fd is untouched: only the slot was closed
    # An empty slot cannot be closed again; out of the table is refused here.
    ring.prep_close(1, fixed=True)
    with pytest.raises(OSError, match="IORING_OP_CLOSE"):
        one(ring).result()
    with pytest.raises(ValueError, match="outside"):
        ring.prep_close(2, fixed=True)


# -- STATX --------------------------------------------------------------------------


def test_statx_matches_os_stat(ring: uring.Ring, datafile: tuple) -> None:
    require_op(abi.IORING_OP_STATX)
    _, path, content = datafile
    ring.prep_statx(path, user_data=5)
    gc.collect()  # only the request holds the struct the kernel writes
    c = one(ring)
    assert c.res == 0
    st, sx = os.stat(path), c.result()
    assert isinstance(sx, P.statx)
    assert sx.stx_mask & P.STATX_BASIC_STATS == P.STATX_BASIC_STATS
    assert sx.stx_size == st.st_size == len(content)
    assert sx.stx_mode == st.st_mode and stat.S_ISREG(sx.stx_mode)
    assert sx.stx_ino == st.st_ino and sx.stx_dev == st.st_dev
    assert sx.stx_nlink == st.st_nlink and sx.stx_uid == st.st_uid
    assert sx.stx_mtime.ns == st.st_mtime_ns and sx.stx_blocks == st.st_blocks
    assert c.result() is not sx  # a copy each time: no view of the ring's memory


def test_statx_flags_and_dir_fd(ring: uring.Ring, tmp_path: pathlib.Path, dirfd: int) -> None:
    require_op(abi.IORING_OP_STATX)
    (tmp_path / "f").write_bytes(b"12345")
    os.symlink("f", tmp_path / "l")
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        ring.prep_statx("", P.STATX_SIZE | P.STATX_INO, fd, user_data=1,
                        statx_flags=P.AT_EMPTY_PATH)
        ring.prep_statx("l", dir_fd=dirfd, user_data=2)
        ring.prep_statx("l", dir_fd=dirfd, user_data=3, statx_flags=P.AT_SYMLINK_NOFOLLOW)
        got = {c.user_data: c.result() for c in ring.completions(3, timeout=TIMEOUT)}
    finally:
        os.close(fd)
    ino = (tmp_path / "f").stat().st_ino
    assert got[1].stx_size == 5 and got[1].stx_ino == ino
    assert stat.S_ISREG(got[2].stx_mode) and got[2].stx_ino == ino
    assert stat.S_ISLNK(got[3].stx_mode) and got[3].stx_ino == os.lstat(tmp_path / "l").st_ino


def test_statx_error(ring: uring.Ring, tmp_path: pathlib.Path) -> None:
    require_op(abi.IORING_OP_STATX)
    ring.prep_statx(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="IORING_OP_STATX"):
        one(ring).result()


# -- RENAMEAT, UNLINKAT, MKDIRAT, SYMLINKAT, LINKAT ---------------------------------------


def test_renameat(ring: uring.Ring, tmp_path: pathlib.Path, dirfd: int) -> None:
    require_op(abi.IORING_OP_RENAMEAT)
    (tmp_path / "a").write_bytes(b"A")
    sub = tmp_path / "sub"
    sub.mkdir()
    subfd = os.open(sub, os.O_RDONLY | os.O_DIRECTORY)
    try:
        ring.prep_renameat(tmp_path / "a", tmp_path / "b")
        assert one(ring).result() == 0
        assert not (tmp_path / "a").exists() and (tmp_path / "b").read_bytes() == b"A"
        ring.prep_renameat("b", "c", dirfd, subfd)  # relative to two dir fds
        assert one(ring).result() == 0
    finally:
        os.close(subfd)
    assert not (tmp_path / "b").exists() and (sub / "c").read_bytes() == b"A"


def test_renameat_noreplace_and_exchange(ring: uring.Ring, tmp_path: pathlib.Path) -> None:
    require_op(abi.IORING_OP_RENAMEAT)
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"first")
    b.write_bytes(b"second")
    ring.prep_renameat(a, b, rename_flags=P.RENAME_NOREPLACE)
    with pytest.raises(FileExistsError, match="IORING_OP_RENAMEAT") as info:
        one(ring).result()
    assert str(a) in info.value.filename and str(b) in info.value.filename
    assert a.read_bytes() == b"first" and b.read_bytes() == b"second"
    ring.prep_renameat(a, b, rename_flags=P.RENAME_EXCHANGE)
    assert one(ring).result() == 0
    assert a.read_bytes() == b"second" and b.read_bytes() == b"first"
    # Without the flag the rename replaces; EXCHANGE needs both names.
    ring.prep_renameat(a, tmp_path / "none", rename_flags=P.RENAME_EXCHANGE)
    with pytest.raises(FileNotFoundError):
        one(ring).result()
    ring.prep_renameat(a, b)
    assert one(ring).result() == 0
    assert not a.exists() and b.read_bytes() == b"second"


def test_unlinkat(ring: uring.Ring, tmp_path: pathlib.Path, dirfd: int) -> None:
    require_op(abi.IORING_OP_UNLINKAT)
    (tmp_path / "f").write_bytes(b"")
    (tmp_path / "d").mkdir()
    ring.prep_unlinkat("f", dirfd, user_data=1)
    ring.prep_unlinkat(tmp_path / "d", user_data=2)  # a directory without AT_REMOVEDIR
    got = {c.user_data: c for c in ring.completions(2, timeout=TIMEOUT)}
    assert got[1].result() == 0 and not (tmp_path / "f").exists()
    with pytest.raises(IsADirectoryError, match="IORING_OP_UNLINKAT"):
        got[2].result()
    assert (tmp_path / "d").is_dir()
    ring.prep_unlinkat("d", dirfd, unlink_flags=P.AT_REMOVEDIR)
    assert one(ring).result() == 0 and not (tmp_path / "d").exists()
    ring.prep_unlinkat("d", dirfd)
    with pytest.raises(FileNotFoundError):
        one(ring).result()


def test_mkdirat(ring: uring.Ring, tmp_path: pathlib.Path, dirfd: int) -> None:
    require_op(abi.IORING_OP_MKDIRAT)
    ring.prep_mkdirat(tmp_path / "d1")
    ring.prep_mkdirat("d2", 0o700, dirfd)
    assert [c.result() for c in ring.completions(2, timeout=TIMEOUT)] == [0, 0]
    assert stat.S_IMODE((tmp_path / "d1").stat().st_mode) == umasked(0o777)
    assert (tmp_path / "d2").is_dir()
    assert stat.S_IMODE((tmp_path / "d2").stat().st_mode) == umasked(0o700)
    ring.prep_mkdirat("d2", dir_fd=dirfd)
    with pytest.raises(FileExistsError, match="IORING_OP_MKDIRAT"):
        one(ring).result()


def test_symlinkat(ring: uring.Ring, tmp_path: pathlib.Path, dirfd: int) -> None:
    require_op(abi.IORING_OP_SYMLINKAT)
    (tmp_path / "target").write_bytes(b"pointed at")
    ring.prep_symlinkat("target", tmp_path / "l1")
    ring.prep_symlinkat(b"no/such/thing", "l2", dirfd)  # stored as given, not resolved
    assert [c.result() for c in ring.completions(2, timeout=TIMEOUT)] == [0, 0]
    assert os.readlink(tmp_path / "l1") == "target"
    assert (tmp_path / "l1").read_bytes() == b"pointed at"
    assert os.readlink(tmp_path / "l2") == "no/such/thing"
    ring.prep_symlinkat("target", "l1", dirfd)
    with pytest.raises(FileExistsError, match="IORING_OP_SYMLINKAT"):
        one(ring).result()


def test_linkat(ring: uring.Ring, tmp_path: pathlib.Path, dirfd: int) -> None:
    require_op(abi.IORING_OP_LINKAT)
    f = tmp_path / "f"
    f.write_bytes(b"data")
    os.symlink("f", tmp_path / "sym")
    ring.prep_linkat(f, tmp_path / "hard", user_data=1)
    ring.prep_linkat("sym", "hard_sym", dirfd, dirfd, user_data=2)  # links the symlink
    ring.prep_linkat("sym", "hard_follow", dirfd, dirfd, user_data=3,
                     link_flags=P.AT_SYMLINK_FOLLOW)
    got = {c.user_data: c.result() for c in ring.completions(3, timeout=TIMEOUT)}
    assert got == {1: 0, 2: 0, 3: 0}
    ino = f.stat().st_ino
    assert (tmp_path / "hard").stat().st_ino == ino and f.stat().st_nlink == 3
    assert os.path.islink(tmp_path / "hard_sym")
    assert os.lstat(tmp_path / "hard_sym").st_ino == os.lstat(tmp_path / "sym").st_ino
    assert not os.path.islink(tmp_path / "hard_follow")
    assert os.lstat(tmp_path / "hard_follow").st_ino == ino
    ring.prep_linkat(f, tmp_path / "hard")
    with pytest.raises(FileExistsError, match="IORING_OP_LINKAT"):
        one(ring).result()


def test_linked_chain_mkdir_symlink_rename(ring: uring.Ring, tmp_path: pathlib.Path) -> None:
    require_op(abi.IORING_OP_OPENAT)
    require_op(abi.IORING_OP_MKDIRAT)
    require_op(abi.IORING_OP_SYMLINKAT)
    require_op(abi.IORING_OP_RENAMEAT)
    d = tmp_path / "d"
    with ring.link():
        ring.prep_mkdirat(d, 0o755, user_data=1)
        ring.prep_symlinkat("../elsewhere", d / "tmp-link", user_data=2)
        ring.prep_renameat(d / "tmp-link", d / "link", user_data=3)
    got = {c.user_data: c.result() for c in ring.completions(3, timeout=TIMEOUT)}
    assert got == {1: 0, 2: 0, 3: 0}
    assert sorted(os.listdir(d)) == ["link"]
    assert os.readlink(d / "link") == "../elsewhere"
    # A chain whose head fails (OPENAT marks itself failed) cancels the
    # rest: nothing below is created or moved.  (A failed MKDIRAT would not
    # do: since 6.0 the io_uring/fs.c ops do not fail their chain.)
    with ring.link():
        ring.prep_openat(tmp_path / "missing", user_data=4)
        ring.prep_mkdirat(d / "sub", user_data=5)
        ring.prep_symlinkat("x", d / "other", user_data=6)
        ring.prep_renameat(d / "link", d / "moved", user_data=7)
    got2 = {c.user_data: c for c in ring.completions(4, timeout=TIMEOUT)}
    with pytest.raises(FileNotFoundError):
        got2[4].result()
    assert [got2[u].res for u in (5, 6, 7)] == [-errno.ECANCELED] * 3
    with pytest.raises(OSError, match="IORING_OP_MKDIRAT") as info:
        got2[5].result()
    assert info.value.errno == errno.ECANCELED
    assert sorted(os.listdir(d)) == ["link"]


def test_failed_fs_ops_and_statx_do_not_break_their_chain(ring: uring.Ring,
                                                          tmp_path: pathlib.Path) -> None:
    """The other half: a failed MKDIRAT, SYMLINKAT, LINKAT, UNLINKAT,
    RENAMEAT or STATX posts its error and the next member still runs."""
    for op in (abi.IORING_OP_MKDIRAT, abi.IORING_OP_SYMLINKAT, abi.IORING_OP_LINKAT,
               abi.IORING_OP_UNLINKAT, abi.IORING_OP_RENAMEAT, abi.IORING_OP_STATX):
        require_op(op)
    d = tmp_path / "d"
    d.mkdir()
    (d / "taken").write_bytes(b"")
    missing = tmp_path / "missing"
    with ring.link():
        ring.prep_mkdirat(d, user_data=1)                            # EEXIST
        ring.prep_symlinkat("x", d / "taken", user_data=2)           # EEXIST
        ring.prep_linkat(missing, d / "hard", user_data=3)           # ENOENT
        ring.prep_unlinkat(missing, user_data=4)                     # ENOENT
        ring.prep_renameat(missing, d / "moved", user_data=5)        # ENOENT
        ring.prep_statx(missing, user_data=6)                        # ENOENT
        ring.prep_mkdirat(d / "reached", user_data=7)
    tail = ring._sqe_tail
    flags = [ring.read_sqe((tail - k) & ring._sq_mask).flags for k in range(7, 0, -1)]
    assert flags == [abi.IOSQE_IO_LINK] * 6 + [0]  # one chain, not seven requests
    got = {c.user_data: c.res for c in ring.completions(7, timeout=TIMEOUT)}
    assert got == {1: -errno.EEXIST, 2: -errno.EEXIST, 3: -errno.ENOENT, 4: -errno.ENOENT,
                   5: -errno.ENOENT, 6: -errno.ENOENT, 7: 0}
    assert sorted(os.listdir(d)) == ["reached", "taken"]


# -- xattrs ---------------------------------------------------------------------------------


@pytest.fixture
def xfile(tmp_path: pathlib.Path) -> pathlib.Path:
    """A file on a filesystem that takes ``user.*`` attributes (else skip)."""
    path = tmp_path / "x"
    path.write_bytes(b"")
    try:
        os.setxattr(path, "user.probe", b"1")
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            pytest.skip(f"{tmp_path} does not take user xattrs: {exc}")
        raise
    os.removexattr(path, "user.probe")
    return path


def test_setxattr_getxattr(ring: uring.Ring, xfile: pathlib.Path) -> None:
    require_op(abi.IORING_OP_SETXATTR)
    require_op(abi.IORING_OP_GETXATTR)
    ring.prep_setxattr(xfile, "user.color", bytearray(b"blue"))
    assert one(ring).result() == 0
    assert os.getxattr(xfile, "user.color") == b"blue"
    os.setxattr(xfile, b"user.shape", b"\x00round\xff")
    ring.prep_getxattr(str(xfile), b"user.shape", 64)
    c = one(ring)
    assert c.res == 7 and c.result() == b"\x00round\xff"
    ring.prep_getxattr(xfile, "user.shape", 0)  # size 0: the length only
    assert one(ring).result() == 7
    out = bytearray(10)
    ring.prep_getxattr(xfile, "user.color", out)
    assert one(ring).result() == b"blue" and out[:4] == b"blue"
    ring.prep_setxattr(xfile, "user.empty", b"")
    assert one(ring).result() == 0 and os.getxattr(xfile, "user.empty") == b""


def test_failed_xattr_op_does_not_break_its_chain(ring: uring.Ring, xfile: pathlib.Path) -> None:
    require_op(abi.IORING_OP_SETXATTR)
    require_op(abi.IORING_OP_GETXATTR)
    with ring.link():
        ring.prep_getxattr(xfile, "user.missing", 16, user_data=1)   # ENODATA
        ring.prep_setxattr(xfile, "user.after", b"ran", user_data=2)
    assert ring.read_sqe((ring._sqe_tail - 2) & ring._sq_mask).flags == abi.IOSQE_IO_LINK
    got = {c.user_data: c.res for c in ring.completions(2, timeout=TIMEOUT)}
    assert got == {1: -errno.ENODATA, 2: 0}
    assert os.getxattr(xfile, "user.after") == b"ran"


def test_setxattr_create_replace(ring: uring.Ring, xfile: pathlib.Path) -> None:
    require_op(abi.IORING_OP_SETXATTR)
    os.setxattr(xfile, "user.k", b"old")
    ring.prep_setxattr(xfile, "user.k", b"new", xattr_flags=P.XATTR_CREATE)
    with pytest.raises(FileExistsError, match="IORING_OP_SETXATTR") as info:
        one(ring).result()
    assert "user.k" in info.value.filename and str(xfile) in info.value.filename
    assert os.getxattr(xfile, "user.k") == b"old"
    ring.prep_setxattr(xfile, "user.k", b"new", xattr_flags=P.XATTR_REPLACE)
    assert one(ring).result() == 0 and os.getxattr(xfile, "user.k") == b"new"
    ring.prep_setxattr(xfile, "user.absent", b"v", xattr_flags=P.XATTR_REPLACE)
    with pytest.raises(OSError, match="IORING_OP_SETXATTR") as absent:
        one(ring).result()
    assert absent.value.errno == errno.ENODATA
    assert "user.absent" not in os.listxattr(xfile)


def test_getxattr_errors(ring: uring.Ring, xfile: pathlib.Path) -> None:
    require_op(abi.IORING_OP_GETXATTR)
    os.setxattr(xfile, "user.long", b"0123456789")
    ring.prep_getxattr(xfile, "user.long", 4, user_data=1)  # too small
    ring.prep_getxattr(xfile, "user.none", 4, user_data=2)
    got = {c.user_data: c for c in ring.completions(2, timeout=TIMEOUT)}
    with pytest.raises(OSError, match="IORING_OP_GETXATTR") as info:
        got[1].result()
    assert info.value.errno == errno.ERANGE
    with pytest.raises(OSError, match="IORING_OP_GETXATTR") as info:
        got[2].result()
    assert info.value.errno == errno.ENODATA
    before = ring.sq_ready
    with pytest.raises(TypeError):
        ring.prep_getxattr(xfile, "user.long", b"read-only buffer")
    with pytest.raises(ValueError):
        ring.prep_getxattr(xfile, "user.long", -1)
    with pytest.raises(TypeError):
        ring.prep_getxattr(xfile, 5, 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NUL"):
        ring.prep_setxattr(xfile, "user.a\0b", b"")
    assert ring.sq_ready == before


def test_fsetxattr_fgetxattr(ring: uring.Ring, xfile: pathlib.Path) -> None:
    require_op(abi.IORING_OP_FSETXATTR)
    require_op(abi.IORING_OP_FGETXATTR)
    fd = os.open(xfile, os.O_RDWR)
    try:
        ring.prep_fsetxattr(fd, "user.via_fd", b"fd value")
        assert one(ring).result() == 0
        assert os.getxattr(xfile, "user.via_fd") == b"fd value"
        os.setxattr(xfile, "user.from_os", b"os value")
        ring.prep_fgetxattr(fd, "user.from_os", 100)
        assert one(ring).result() == b"os value"
        # Through a registered-file slot.
        ring.register_files([fd])
        ring.prep_fsetxattr(0, "user.fixed", b"slot", fixed=True, xattr_flags=P.XATTR_CREATE)
        assert one(ring).result() == 0 and os.getxattr(xfile, "user.fixed") == b"slot"
        ring.prep_fgetxattr(0, "user.fixed", 0, fixed=True)
        assert one(ring).result() == 4
        ring.prep_fgetxattr(0, "user.missing", 10, fixed=True)
        with pytest.raises(OSError, match="IORING_OP_FGETXATTR") as info:
            one(ring).result()
        assert info.value.errno == errno.ENODATA
        ring.prep_fsetxattr(fd, "user.fixed", b"again", xattr_flags=P.XATTR_CREATE)
        with pytest.raises(FileExistsError, match="IORING_OP_FSETXATTR"):
            one(ring).result()
    finally:
        os.close(fd)


# -- the probe ------------------------------------------------------------------------------


PREPS: dict = {
    "openat": lambda r, p: r.prep_openat(p),
    "openat2": lambda r, p: r.prep_openat2(p),
    "close": lambda r, p: r.prep_close(0),
    "statx": lambda r, p: r.prep_statx(p),
    "renameat": lambda r, p: r.prep_renameat(p, p + "2"),
    "unlinkat": lambda r, p: r.prep_unlinkat(p),
    "mkdirat": lambda r, p: r.prep_mkdirat(p + "d"),
    "symlinkat": lambda r, p: r.prep_symlinkat(p, p + "l"),
    "linkat": lambda r, p: r.prep_linkat(p, p + "h"),
    "setxattr": lambda r, p: r.prep_setxattr(p, "user.a", b"v"),
    "getxattr": lambda r, p: r.prep_getxattr(p, "user.a", 8),
    "fsetxattr": lambda r, p: r.prep_fsetxattr(0, "user.a", b"v"),
    "fgetxattr": lambda r, p: r.prep_fgetxattr(0, "user.a", 8),
}


@pytest.mark.parametrize("name", sorted(PREPS))
def test_unsupported_op_refused_before_submission(ring: uring.Ring, datafile: tuple,
                                                  name: str) -> None:
    _, path, _ = datafile
    prep: Callable[[uring.Ring, str], int] = PREPS[name]
    ring._supported_ops = frozenset()
    before = ring.sq_ready
    with pytest.raises(uring.UnsupportedOperation, match=f"IORING_OP_{name.upper()}"):
        prep(ring, path)
    assert ring.sq_ready == before and ring.in_flight == 0
    assert os.path.exists(path) and not os.path.exists(path + "2")

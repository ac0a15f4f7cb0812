"""File preps beyond read/write: sync_file_range, fadvise, madvise,
ftruncate, splice, tee, multishot and buffer-selecting reads, vectored I/O
on registered buffers, FILES_UPDATE and FIXED_FD_INSTALL.  Each test checks
the effect (bytes moved, pages dropped, sizes, usable fds), not only res."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
from typing import Callable, Optional, Tuple

import pytest
from conftest import require_op

import uring
from uring import abi
from uring.buffers import address_of
from uring.ops.files import (
    SYNC_FILE_RANGE_WAIT_AFTER,
    SYNC_FILE_RANGE_WAIT_BEFORE,
    SYNC_FILE_RANGE_WRITE,
)

PAGE = mmap.PAGESIZE
_libc = ctypes.CDLL(None, use_errno=True)


def _file(tmp_path: os.PathLike, name: str, content: bytes = b"") -> int:
    fd = os.open(os.path.join(os.fspath(tmp_path), name), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    if content:
        os.write(fd, content)
    return fd


def _resident_pages(fd: int, size: int) -> int:
    """How many pages of the file are in the page cache (mincore(2) on a
    mapping that is never touched, so it maps nothing itself)."""
    m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    try:
        vec = (ctypes.c_ubyte * ((size + PAGE - 1) // PAGE))()
        if _libc.mincore(ctypes.c_void_p(address_of(m)), ctypes.c_size_t(size), vec) != 0:
            pytest.skip(f"mincore: {os.strerror(ctypes.get_errno())}")
        return sum(v & 1 for v in vec)
    finally:
        m.close()


def _page_dirty(fd: int) -> Optional[bool]:
    """PG_dirty of the file's first page-cache page, from /proc/self/pagemap
    and /proc/kpageflags (root only); None when they cannot be read."""
    m = mmap.mmap(fd, PAGE, prot=mmap.PROT_READ)
    try:
        m[0]  # map the page (a read: no dirty bit in the page table)
        try:
            with open("/proc/self/pagemap", "rb") as pm:
                pm.seek(address_of(m) // PAGE * 8)
                entry = int.from_bytes(pm.read(8), "little")
            pfn = entry & ((1 << 55) - 1)
            if not entry >> 63 or not pfn:
                return None
            with open("/proc/kpageflags", "rb") as kf:
                kf.seek(pfn * 8)
                flags = int.from_bytes(kf.read(8), "little")
        except OSError:
            return None
        return bool(flags >> 4 & 1)  # KPF_DIRTY
    finally:
        m.close()


# -- sync_file_range, fadvise, madvise, ftruncate ------------------------------------


def test_sync_file_range_writes_dirty_pages_back(ring: uring.Ring, tmp_path: os.PathLike) -> None:
    require_op(abi.IORING_OP_SYNC_FILE_RANGE)
    fd = _file(tmp_path, "sfr.bin", b"d" * (4 * PAGE))
    try:
        before = _page_dirty(fd)
        if before is not True:
            pytest.skip("page dirtiness is not observable here (/proc/kpageflags) "
                        "or the page was written back already")
        ring.prep_sync_file_range(fd, 0, 0, user_data=1, sync_range_flags=(
            SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER))
        (c,) = ring.completions(1, timeout=5)
        assert c.result() == 0
        assert _page_dirty(fd) is False  # written back, clean
    finally:
        os.close(fd)


def test_sync_file_range_error_names_the_op(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_SYNC_FILE_RANGE)
    ring.prep_sync_file_range(pipe[1], 0, 10, user_data=1)  # a pipe: ESPIPE
    (c,) = ring.completions(1, timeout=5)
    with pytest.raises(OSError) as info:
        c.result()
    assert info.value.errno == errno.ESPIPE and "IORING_OP_SYNC_FILE_RANGE" in str(info.value)
    with pytest.raises(ValueError):
        ring.prep_sync_file_range(pipe[1], 0, 1 << 32)  # len is a u32


def test_fadvise_dontneed_drops_the_page_cache(ring: uring.Ring, tmp_path: os.PathLike) -> None:
    require_op(abi.IORING_OP_FADVISE)
    size = 16 * PAGE
    control = _file(tmp_path, "control.bin", b"c" * size)
    fd = _file(tmp_path, "fadv.bin", b"f" * size)
    try:
        os.fsync(control)
        os.posix_fadvise(control, 0, 0, os.POSIX_FADV_DONTNEED)
        if _resident_pages(control, size):
            pytest.skip("this filesystem keeps its pages on POSIX_FADV_DONTNEED (tmpfs?)")
        os.fsync(fd)  # clean pages can be dropped
        assert _resident_pages(fd, size) == 16
        ring.prep_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED, user_data=1)
        (c,) = ring.completions(1, timeout=5)
        assert c.result() == 0
        assert _resident_pages(fd, size) == 0
        assert os.pread(fd, 4, size - 4) == b"ffff"  # the data is still on disk
    finally:
        os.close(control)
        os.close(fd)


def test_fadvise_bad_advice_is_einval(ring: uring.Ring, datafile: tuple) -> None:
    require_op(abi.IORING_OP_FADVISE)
    fd, _, _ = datafile
    ring.prep_fadvise(fd, 0, 100, 9999, user_data=1)
    (c,) = ring.completions(1, timeout=5)
    with pytest.raises(OSError) as info:
        c.result()
    assert info.value.errno == errno.EINVAL and "IORING_OP_FADVISE" in str(info.value)


def test_madvise_dontneed_zeroes_private_anonymous_memory(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_MADVISE)
    m = mmap.mmap(-1, 4 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    m[:] = b"z" * len(m)
    ring.prep_madvise(m, mmap.MADV_DONTNEED, 2 * PAGE, user_data=1)
    ring.submit()
    with pytest.raises(BufferError):
        m.close()  # pinned by the request until its CQE is reaped
    (c,) = ring.completions(1, timeout=5)
    assert c.result() == 0
    assert m[: 2 * PAGE] == bytes(2 * PAGE)  # dropped: fresh zero pages
    assert m[2 * PAGE:] == b"z" * (2 * PAGE)  # beyond length: untouched
    del c
    m.close()


def test_madvise_refuses_what_it_cannot_do(ring: uring.Ring) -> None:
    require_op(abi.IORING_OP_MADVISE)
    m = mmap.mmap(-1, 2 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    with pytest.raises(ValueError, match="page boundary"):
        ring.prep_madvise(memoryview(m)[1:], mmap.MADV_WILLNEED)
    with pytest.raises(TypeError):
        ring.prep_madvise(bytes(PAGE), mmap.MADV_DONTNEED)  # would zero an immutable object
    with pytest.raises(ValueError, match="exceeds"):
        ring.prep_madvise(m, mmap.MADV_WILLNEED, 3 * PAGE)
    assert ring.sq_ready == 0
    ring.prep_madvise(m, 12345, user_data=1)  # unknown advice
    (c,) = ring.completions(1, timeout=5)
    with pytest.raises(OSError) as info:
        c.result()
    assert info.value.errno == errno.EINVAL and "IORING_OP_MADVISE" in str(info.value)


def test_ftruncate_sets_the_size(ring: uring.Ring, tmp_path: os.PathLike) -> None:
    require_op(abi.IORING_OP_FTRUNCATE)
    fd = _file(tmp_path, "trunc.bin", b"0123456789")
    try:
        ring.prep_ftruncate(fd, 4, user_data=1)
        ring.prep_ftruncate(fd, 3 * PAGE, user_data=2, flags=abi.IOSQE_IO_DRAIN)
        got = {c.user_data: c.result() for c in ring.completions(2, timeout=5)}
        assert got == {1: 0, 2: 0}
        assert os.fstat(fd).st_size == 3 * PAGE
        assert os.pread(fd, 8, 0) == b"0123" + bytes(4)  # cut, then extended with zeros
        with pytest.raises(ValueError):
            ring.prep_ftruncate(fd, -1)
    finally:
        os.close(fd)


def test_ftruncate_of_a_read_only_fd_fails(ring: uring.Ring, datafile: tuple) -> None:
    require_op(abi.IORING_OP_FTRUNCATE)
    _, path, content = datafile
    fd = os.open(path, os.O_RDONLY)
    try:
        ring.prep_ftruncate(fd, 0, user_data=1)
        (c,) = ring.completions(1, timeout=5)
        with pytest.raises(OSError) as info:
            c.result()
        assert info.value.errno in (errno.EINVAL, errno.EBADF)
        assert "IORING_OP_FTRUNCATE" in str(info.value)
        assert os.fstat(fd).st_size == len(content)
    finally:
        os.close(fd)


FALLOC_FL_KEEP_SIZE = 0x01  # include/uapi/linux/falloc.h
FALLOC_FL_PUNCH_HOLE = 0x02


def test_fallocate_punches_a_hole_and_extends(ring: uring.Ring, tmp_path: os.PathLike) -> None:
    size = 16 * PAGE
    fd = _file(tmp_path, "falloc.bin", b"\xab" * size)
    try:
        os.fsync(fd)  # blocks allocated, not only reserved
        before = os.fstat(fd).st_blocks
        ring.prep_fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4 * PAGE, 8 * PAGE,
                            user_data=1)
        (c,) = ring.completions(1, timeout=5)
        assert (c.user_data, c.result()) == (1, 0)
        st = os.fstat(fd)
        assert st.st_size == size and st.st_blocks < before
        assert os.pread(fd, 8 * PAGE, 4 * PAGE) == bytes(8 * PAGE)  # the hole reads as zeros
        assert os.pread(fd, 4 * PAGE, 0) == os.pread(fd, 4 * PAGE, 12 * PAGE) == b"\xab" * 4 * PAGE
        ring.prep_fallocate(fd, 0, size, 4 * PAGE, user_data=2)  # mode 0: allocate, extend
        (c,) = ring.completions(1, timeout=5)
        assert (c.user_data, c.result()) == (2, 0)
        assert os.fstat(fd).st_size == size + 4 * PAGE
        assert os.pread(fd, 4 * PAGE, size) == bytes(4 * PAGE)
    finally:
        os.close(fd)


# -- splice and tee --------------------------------------------------------------------


def test_splice_file_to_pipe_to_file(ring: uring.Ring, datafile: tuple, tmp_path: os.PathLike,
                                     pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_SPLICE)
    src, _, content = datafile
    r, w = pipe
    dst = _file(tmp_path, "dst.bin")
    try:
        with ring.link():
            ring.prep_splice(src, 1000, w, -1, 5000, user_data=1)  # file -> pipe
            ring.prep_splice(r, -1, dst, 300, 5000, user_data=2)  # pipe -> file
        got = {c.user_data: c.result() for c in ring.completions(2, timeout=5)}
        assert got == {1: 5000, 2: 5000}
        assert os.pread(dst, 5300, 0) == bytes(300) + content[1000:6000]
        assert os.lseek(src, 0, os.SEEK_CUR) == 0  # an explicit offset leaves the position
    finally:
        os.close(dst)


def test_splice_from_a_registered_file(ring: uring.Ring, datafile: tuple,
                                       pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_SPLICE)
    src, _, content = datafile
    r, w = pipe
    ring.register_files([None, src, w])
    # fd_in is slot 1 (SPLICE_F_FD_IN_FIXED), fd_out slot 2 (IOSQE_FIXED_FILE).
    ring.prep_splice(1, 64, 2, -1, 100, user_data=1, fixed_in=True, fixed=True)
    (c,) = ring.completions(1, timeout=5)
    assert c.result() == 100
    assert os.read(r, 200) == content[64:164]
    sqe = ring.read_sqe((ring._sqe_tail - 1) & ring._sq_mask)
    assert sqe.splice_flags & abi.SPLICE_F_FD_IN_FIXED and sqe.flags & abi.IOSQE_FIXED_FILE
    assert sqe.splice_fd_in == 1 and sqe.fd == 2 and sqe.splice_off_in == 64


def test_splice_without_a_pipe_is_einval(ring: uring.Ring, datafile: tuple,
                                         tmp_path: os.PathLike) -> None:
    require_op(abi.IORING_OP_SPLICE)
    src, _, _ = datafile
    dst = _file(tmp_path, "d.bin")
    try:
        ring.prep_splice(src, 0, dst, 0, 10, user_data=1)
        (c,) = ring.completions(1, timeout=5)
        with pytest.raises(OSError) as info:
            c.result()
        assert info.value.errno == errno.EINVAL and "IORING_OP_SPLICE" in str(info.value)
        with pytest.raises(ValueError):
            ring.prep_splice(src, -2, dst, 0, 10)
    finally:
        os.close(dst)


def test_tee_duplicates_pipe_data(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_TEE)
    r1, w1 = pipe
    r2, w2 = os.pipe()
    try:
        os.write(w1, b"copy me twice")
        ring.prep_tee(r1, w2, 100, user_data=1)
        (c,) = ring.completions(1, timeout=5)
        assert c.result() == 13
        assert os.read(r1, 100) == b"copy me twice"  # not consumed from the source
        assert os.read(r2, 100) == b"copy me twice"
        ring.prep_tee(r1, r2, 10, user_data=2)  # the "output" is a read end
        (c,) = ring.completions(1, timeout=5)
        with pytest.raises(OSError) as info:
            c.result()
        assert info.value.errno in (errno.EBADF, errno.EINVAL) and "IORING_OP_TEE" in str(info.value)
    finally:
        os.close(r2)
        os.close(w2)


# -- provided buffers ------------------------------------------------------------------------


def test_read_multishot_posts_one_cqe_per_write(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_READ_MULTISHOT)
    r, w = pipe
    group = ring.register_buf_ring(7, 8, 64)
    ud = ring.prep_read_multishot(r, 7, user_data=100)
    ring.submit()
    got = []
    for chunk in (b"first", b"second", b"third"):
        os.write(w, chunk)
        (c,) = ring.completions(1, timeout=5)
        assert c.user_data == ud and c.more and c.buffer_id is not None
        assert c.request is not None and c.request.keep is group  # the group's memory is held
        got.append(group.take(c))
    assert got == [b"first", b"second", b"third"]
    assert ring.in_flight == 1
    os.close(w)
    (last,) = ring.completions(1, timeout=5)  # EOF: the final CQE, without F_MORE
    assert last.res == 0 and not last.more
    assert ring.in_flight == 0


def test_read_multishot_stops_when_the_group_runs_dry(ring: uring.Ring,
                                                      pipe: Tuple[int, int]) -> None:
    require_op(abi.IORING_OP_READ_MULTISHOT)
    r, w = pipe
    ring.register_buf_ring(3, 2, 16)
    ring.prep_read_multishot(r, 3, user_data=1)
    ring.submit()
    cs = []
    for chunk in (b"a", b"b", b"c"):  # buffers are not recycled
        os.write(w, chunk)
        cs += ring.completions(1, timeout=5)
    assert [c.res for c in cs[:2]] == [1, 1] and all(c.more for c in cs[:2])
    last = cs[2]
    assert not last.more and last.res == -errno.ENOBUFS
    with pytest.raises(OSError) as info:
        last.result()
    assert info.value.errno == errno.ENOBUFS and "IORING_OP_READ_MULTISHOT" in str(info.value)
    with pytest.raises(ValueError, match="no buffers"):
        ring.prep_read_multishot(r, 99)


def test_read_with_buffer_selection(ring: uring.Ring, pipe: Tuple[int, int]) -> None:
    r, w = pipe
    group = ring.register_buf_ring(5, 4, 32)
    os.write(w, b"picked by the kernel")
    ring.prep_read(r, None, -1, 1, buf_group=5, length=6)
    (c,) = ring.completions(1, timeout=5)
    assert c.result() == 6 and c.buffer_id is not None
    assert group.take(c) == b"picked"
    ring.prep_read(r, None, -1, 2, buf_group=5)  # no length: the whole buffer
    (c,) = ring.completions(1, timeout=5)
    assert group.take(c) == b" by the kernel"
    with pytest.raises(TypeError):
        ring.prep_read(r, None, -1)  # neither a buffer nor a group
    with pytest.raises(TypeError):
        ring.prep_read(r, bytearray(4), -1, buf_group=5)  # both
    with pytest.raises(ValueError, match="no buffers"):
        ring.prep_read(r, None, -1, buf_group=6)
    assert ring.sq_ready == 0


# -- vectored I/O on registered buffers -------------------------------------------------------


def test_readv_fixed_writev_fixed(ring: uring.Ring, datafile: tuple) -> None:
    require_op(abi.IORING_OP_READV_FIXED)
    require_op(abi.IORING_OP_WRITEV_FIXED)
    fd, _, content = datafile
    reg = bytearray(8192)
    ring.register_buffers([bytearray(16), reg])
    view = memoryview(reg)
    ring.prep_readv_fixed(fd, 1, [(0, 100), view[4000:4050]], 500, user_data=1)
    (c,) = ring.completions(1, timeout=5)
    assert c.result() == 150
    assert reg[:100] == content[500:600] and reg[4000:4050] == content[600:650]
    assert reg[100:4000] == bytes(3900)
    reg[6000:6003] = b"ABC"
    reg[7000:7002] = b"yz"
    ring.prep_writev_fixed(fd, 1, [(6000, 3), view[7000:7002]], 10, user_data=2)
    (c,) = ring.completions(1, timeout=5)
    assert c.result() == 5
    assert os.pread(fd, 7, 8) == content[8:10] + b"ABCyz"


def test_readv_fixed_checks_the_iovecs(ring: uring.Ring, datafile: tuple) -> None:
    require_op(abi.IORING_OP_READV_FIXED)
    fd, _, _ = datafile
    with pytest.raises(ValueError, match="not registered"):
        ring.prep_readv_fixed(fd, 0, [(0, 10)])
    reg = bytearray(100)
    ring.register_buffers([reg])
    with pytest.raises(ValueError, match="outside registered buffer"):
        ring.prep_readv_fixed(fd, 0, [(90, 11)])
    with pytest.raises(ValueError, match="not inside registered buffer"):
        ring.prep_readv_fixed(fd, 0, [bytearray(10)])
    assert ring.sq_ready == 0
    bad = os.dup(fd)
    os.close(bad)
    ring.prep_readv_fixed(bad, 0, [(0, 10)], user_data=1)  # a closed fd
    (c,) = ring.completions(1, timeout=5)
    with pytest.raises(OSError) as info:
        c.result()
    assert info.value.errno == errno.EBADF and "IORING_OP_READV_FIXED" in str(info.value)


# -- the file table ------------------------------------------------------------------------------


def test_files_update_fills_slots(ring: uring.Ring, datafile: tuple) -> None:
    require_op(abi.IORING_OP_FILES_UPDATE)
    fd, _, content = datafile
    ring.register_files_sparse(4)
    ring.prep_files_update(2, [fd, None], user_data=1)
    (c,) = ring.completions(1, timeout=5)
    assert c.result() == 2
    buf = bytearray(10)
    ring.prep_read(2, buf, 40, 2, fixed=True)
    assert ring.completions(1, timeout=5)[0].result() == 10 and bytes(buf) == content[40:50]


def test_files_update_allocates_slots(ring: uring.Ring, datafile: tuple) -> None:
    require_op(abi.IORING_OP_FILES_UPDATE)
    fd, _, content = datafile
    r, w = os.pipe()
    try:
        ring.register_files_sparse(8)
        ring.register_file_alloc_range(5, 2)
        ring.prep_files_update(abi.IORING_FILE_INDEX_ALLOC, [r, fd], user_data=1)
        (c,) = ring.completions(1, timeout=5)
        slots = c.result()
        assert sorted(slots) == [5, 6]  # the kernel's picks, written back into the array
        buf = bytearray(4)
        ring.prep_read(slots[1], buf, 0, 2, fixed=True)
        assert ring.completions(1, timeout=5)[0].result() == 4 and bytes(buf) == content[:4]
        ring.prep_files_update(abi.IORING_FILE_INDEX_ALLOC, [w], user_data=3)  # range full
        (c,) = ring.completions(1, timeout=5)
        with pytest.raises(OSError) as info:
            c.result()
        assert info.value.errno == errno.ENFILE and "IORING_OP_FILES_UPDATE" in str(info.value)
    finally:
        os.close(r)
        os.close(w)


def test_fixed_fd_install_gives_a_regular_fd(ring: uring.Ring, datafile: tuple) -> None:
    require_op(abi.IORING_OP_FIXED_FD_INSTALL)
    fd, _, content = datafile
    ring.register_files([None, fd])
    ring.prep_fixed_fd_install(1, user_data=1)
    ring.prep_fixed_fd_install(1, user_data=2, no_cloexec=True)
    got = {c.user_data: c.result() for c in ring.completions(2, timeout=5)}
    try:
        assert os.pread(got[1], 8, 100) == content[100:108]
        assert os.path.sameopenfile(got[1], fd)
        assert not os.get_inheritable(got[1])  # O_CLOEXEC by default
        assert os.get_inheritable(got[2])  # IORING_FIXED_FD_NO_CLOEXEC
    finally:
        os.close(got[1])
        os.close(got[2])
    ring.prep_fixed_fd_install(0, user_data=3)  # an empty slot
    (c,) = ring.completions(1, timeout=5)
    with pytest.raises(OSError) as info:
        c.result()
    assert info.value.errno == errno.EBADF and "IORING_OP_FIXED_FD_INSTALL" in str(info.value)
    with pytest.raises(ValueError, match="outside the registered table"):
        ring.prep_fixed_fd_install(2)


# -- the probe ------------------------------------------------------------------------------------


_PREPS: "dict[str, Callable[[uring.Ring, int, int], int]]" = {
    "sync_file_range": lambda ring, r, w: ring.prep_sync_file_range(w, 0, 0),
    "fadvise": lambda ring, r, w: ring.prep_fadvise(r, 0, 0, os.POSIX_FADV_NORMAL),
    "madvise": lambda ring, r, w: ring.prep_madvise(
        mmap.mmap(-1, PAGE), mmap.MADV_WILLNEED),
    "ftruncate": lambda ring, r, w: ring.prep_ftruncate(w, 0),
    "splice": lambda ring, r, w: ring.prep_splice(r, -1, w, -1, 1),
    "tee": lambda ring, r, w: ring.prep_tee(r, w, 1),
    "read_multishot": lambda ring, r, w: ring.prep_read_multishot(r, 1),
    "readv_fixed": lambda ring, r, w: ring.prep_readv_fixed(r, 0, [(0, 1)]),
    "writev_fixed": lambda ring, r, w: ring.prep_writev_fixed(w, 0, [(0, 1)]),
    "files_update": lambda ring, r, w: ring.prep_files_update(0, [r]),
    "fixed_fd_install": lambda ring, r, w: ring.prep_fixed_fd_install(0),
}


@pytest.mark.parametrize("name", sorted(_PREPS))
def test_unsupported_ops_are_refused_before_submission(ring: uring.Ring, pipe: Tuple[int, int],
                                                       name: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    r, w = pipe
    ring.register_buf_ring(1, 2, 16)
    ring.register_buffers([bytearray(16)])
    ring.register_files([r])
    monkeypatch.setattr(ring, "_supported_ops", frozenset())
    before = ring.sq_ready
    with pytest.raises(uring.UnsupportedOperation):
        _PREPS[name](ring, r, w)
    assert ring.sq_ready == before and ring.in_flight == 0

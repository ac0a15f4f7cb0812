"""Errors that name the cause: the refused io_uring_setup (sysctl, seccomp
filter, security module, kernel), the fd in a message, and O_DIRECT's
alignment behind an EINVAL read or write."""

from __future__ import annotations

import errno
import mmap
import os
from typing import Any, Iterator, Optional, Tuple

import pytest
from conftest import require_uring

import uring
from uring import errors
from uring.errors import kernel_error, unavailable

# -- io_uring_setup refused: which cause is named ------------------------------------


def env(monkeypatch: pytest.MonkeyPatch, *, disabled: Optional[int], seccomp: Optional[int],
        group: Optional[int] = -1, caps: Tuple[int, ...] = ()) -> None:
    """What errors.py reads from /proc, as given."""
    monkeypatch.setattr(errors, "io_uring_disabled", lambda: disabled)
    monkeypatch.setattr(errors, "seccomp_mode", lambda: seccomp)
    monkeypatch.setattr(errors, "_io_uring_group", lambda: group)
    monkeypatch.setattr(errors, "_has_capability", lambda bit: bit in caps)


def test_eperm_with_sysctl_2_names_the_sysctl(monkeypatch: pytest.MonkeyPatch) -> None:
    env(monkeypatch, disabled=2, seccomp=0)
    exc = unavailable(errno.EPERM, "entries=8")
    assert isinstance(exc, uring.UringUnavailableError) and isinstance(exc, OSError)
    assert exc.errno == errno.EPERM and exc.cause == "io_uring_disabled"
    assert "kernel.io_uring_disabled sysctl (= 2)" in str(exc) and "entries=8" in str(exc)
    assert "seccomp" not in str(exc)


def test_eperm_with_sysctl_1_names_the_group(monkeypatch: pytest.MonkeyPatch) -> None:
    env(monkeypatch, disabled=1, seccomp=0, group=-1)
    text = str(unavailable(errno.EPERM))
    assert "kernel.io_uring_disabled sysctl is 1" in text and "kernel.io_uring_group" in text
    assert "CAP_SYS_ADMIN" in text
    env(monkeypatch, disabled=1, seccomp=0, group=4242)
    text = str(unavailable(errno.EPERM))
    assert "not in kernel.io_uring_group (gid 4242)" in text


def test_eperm_with_sysctl_1_but_allowed_is_not_the_sysctl(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sysctl 1 does not stop a CAP_SYS_ADMIN process: then a seccomp filter is named."""
    env(monkeypatch, disabled=1, seccomp=2, caps=(errors._CAP_SYS_ADMIN,))
    exc = unavailable(errno.EPERM)
    assert exc.cause == "seccomp" and "io_uring_disabled" not in str(exc)


@pytest.mark.parametrize("disabled", [0, None])
def test_eperm_under_seccomp_names_the_filter(monkeypatch: pytest.MonkeyPatch,
                                               disabled: Optional[int]) -> None:
    env(monkeypatch, disabled=disabled, seccomp=2)
    exc = unavailable(errno.EPERM)
    assert exc.cause == "seccomp"
    assert "seccomp filter is active" in str(exc) and "Docker" in str(exc)
    assert "io_uring_disabled" not in str(exc)


def test_eperm_without_sysctl_or_filter_names_a_security_module(
        monkeypatch: pytest.MonkeyPatch) -> None:
    env(monkeypatch, disabled=0, seccomp=0)
    exc = unavailable(errno.EPERM)
    assert exc.cause == "lsm" and "security module" in str(exc)
    assert "io_uring_disabled" not in str(exc)


def test_enosys_names_the_filter_or_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    env(monkeypatch, disabled=0, seccomp=2)
    exc = unavailable(errno.ENOSYS)
    assert exc.errno == errno.ENOSYS and exc.cause == "seccomp"
    assert "seccomp filter is active" in str(exc) and "ENOSYS" in str(exc)
    env(monkeypatch, disabled=0, seccomp=0)
    exc = unavailable(errno.ENOSYS)
    assert exc.cause == "kernel" and "CONFIG_IO_URING" in str(exc)
    assert "no seccomp filter is active" in str(exc)


def test_seccomp_mode_reads_this_process() -> None:
    assert errors.seccomp_mode() in (0, 2, None)  # pytest itself is not in strict mode


# -- RLIMIT_MEMLOCK ------------------------------------------------------------------


def test_memlock_error_names_limit_and_request(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    monkeypatch.setattr(errors, "_has_capability", lambda bit: False)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (65536, resource.RLIM_INFINITY))
    exc = errors.memlock_error(errno.ENOMEM, "io_uring_register(IORING_REGISTER_BUFFERS)",
                               3 << 20, 2, 769)
    text = str(exc)
    assert exc.errno == errno.ENOMEM and text.startswith(
        "[Errno 12] io_uring_register(IORING_REGISTER_BUFFERS): Cannot allocate memory; ")
    assert "RLIMIT_MEMLOCK (ulimit -l) is soft 65536 bytes (64 KiB), hard unlimited" in text
    assert "2 buffers of 3145728 bytes (3 MiB)" in text and "769 pages" in text


# -- the fd in a message --------------------------------------------------------------


def test_an_fd_target_reads_fd_n() -> None:
    exc = kernel_error(errno.EINVAL, "IORING_OP_READ", 6)
    assert str(exc) == "[Errno 22] IORING_OP_READ on fd 6: Invalid argument"
    assert exc.filename is None
    path = kernel_error(errno.ENOENT, "IORING_OP_OPENAT", "/no/such")
    assert isinstance(path, FileNotFoundError) and path.filename == "/no/such"
    assert "'/no/such'" in str(path)


def test_completion_error_names_the_fd(ring: uring.Ring) -> None:
    r, w = os.pipe()
    os.close(w)
    os.close(r)
    ring.prep_read(r, bytearray(8), 0)
    (c,) = ring.completions(1, timeout=5)
    assert c.res == -errno.EBADF
    assert f"IORING_OP_READ on fd {r}: Bad file descriptor" in str(c.error)
    assert c.error is not None and c.error.filename is None
    assert f"'{r}'" not in str(c.error)


# -- O_DIRECT -----------------------------------------------------------------------


@pytest.fixture
def direct_fd(tmp_path: "os.PathLike[str]") -> Iterator[int]:
    path = os.path.join(tmp_path, "direct.bin")
    with open(path, "wb") as f:
        f.write(os.urandom(1 << 16))
    try:
        fd = os.open(path, os.O_RDWR | os.O_DIRECT)
    except OSError as exc:
        pytest.skip(f"O_DIRECT not supported here: {exc}")
    if errors.direct_io_alignment(fd, read=True) is None:
        os.close(fd)
        pytest.skip("the O_DIRECT alignment of this filesystem cannot be told")
    try:
        yield fd
    finally:
        os.close(fd)


def one_error(ring: uring.Ring) -> str:
    (c,) = ring.completions(1, timeout=5)
    if c.res >= 0:
        pytest.skip("this filesystem accepted misaligned O_DIRECT I/O")
    assert c.res == -errno.EINVAL and isinstance(c.error, OSError)
    with pytest.raises(OSError) as info:
        c.result()
    assert str(info.value) == str(c.error) and info.value.filename is None
    return str(c.error)


def test_o_direct_misaligned_address(ring: uring.Ring, direct_fd: int) -> None:
    require_uring()
    align = errors.direct_io_alignment(direct_fd, read=True)
    assert align is not None and align.memory > 1
    buf = mmap.mmap(-1, 1 << 16)
    ring.prep_read(direct_fd, memoryview(buf)[1: 1 + 4096], 0)
    text = one_error(ring)
    assert text.startswith(f"[Errno 22] IORING_OP_READ on fd {direct_fd}: Invalid argument; ")
    assert f"buffer address aligned to {align.memory} bytes" in text
    assert "the buffer address 0x" in text and "is not (1 byte past" in text
    assert "length" in text and "offset" in text


def test_o_direct_misaligned_length(ring: uring.Ring, direct_fd: int) -> None:
    align = errors.direct_io_alignment(direct_fd, read=True)
    assert align is not None
    buf = mmap.mmap(-1, 1 << 16)
    ring.prep_read(direct_fd, memoryview(buf)[: align.offset * 2 - 1], 0)
    text = one_error(ring)
    assert f"the buffer is {align.offset * 2 - 1} bytes, not a multiple of {align.offset}" in text
    assert "address 0x" not in text


def test_o_direct_misaligned_offset(ring: uring.Ring, direct_fd: int) -> None:
    align = errors.direct_io_alignment(direct_fd, read=False)
    assert align is not None
    buf = uring.PinnedBuffer(mmap.mmap(-1, 4096))
    ring.prep_write(direct_fd, buf, 1)
    text = one_error(ring)
    assert text.startswith(f"[Errno 22] IORING_OP_WRITE on fd {direct_fd}: Invalid argument; ")
    assert "so the file offset is not" in text
    if align.logical_block_size:
        assert "logical block size of device" in text


def test_o_direct_readv_names_the_misaligned_buffer(ring: uring.Ring, direct_fd: int) -> None:
    buf = mmap.mmap(-1, 1 << 16)
    view = memoryview(buf)
    ring.prep_readv(direct_fd, [view[:4096], view[8192 + 8: 8192 + 8 + 4096]], 0)
    text = one_error(ring)
    assert "IORING_OP_READV on fd" in text and "buffer 1 address 0x" in text
    assert "buffer 0 address" not in text


def test_einval_without_o_direct_has_no_alignment_hint(ring: uring.Ring,
                                                       tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(tmp_path, "plain.bin")
    with open(path, "wb") as f:
        f.write(b"x" * 4096)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert errors.direct_io_hint(fd, read=True, spans=[(1, 1)]) == ""
        ring.prep_read(fd, bytearray(16), -5)  # a negative offset: EINVAL from the kernel
        (c,) = ring.completions(1, timeout=5)
        if c.res == -errno.EINVAL:
            assert str(c.error) == f"[Errno 22] IORING_OP_READ on fd {fd}: Invalid argument"
    except ValueError:
        pass  # refused before the kernel (another change): nothing to name here
    finally:
        os.close(fd)


def test_a_registered_file_is_named_as_one_not_as_an_fd(tmp_path: Any) -> None:
    """With ``fixed=True`` the SQE's fd is a slot of the registered table:
    the error names the slot as such, never as a file descriptor."""
    import os as _os

    from conftest import require_uring as _require

    import uring as _uring

    _require()
    d = _os.open(str(tmp_path), _os.O_RDONLY | _os.O_DIRECTORY)
    try:
        with _uring.Ring(8) as ring:
            ring.register_files([d])
            ring.prep_read(0, bytearray(16), 0, fixed=True)
            (c,) = ring.completions(1)
            err = c.error
            assert err is not None and "registered file 0" in str(err)
            assert "fd 0" not in str(err)
    finally:
        _os.close(d)

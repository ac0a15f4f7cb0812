"""Exceptions, and the mapping from a kernel errno to the right ``OSError``.

The kernel reports failure two ways: a system call returns ``-errno``
(``io_uring_setup``, ``io_uring_enter``, ``io_uring_register``), or a
completion carries ``res = -errno`` for one request.  Both are turned into
``OSError(errno, message)``; ``OSError``'s constructor picks the subclass
(``FileNotFoundError`` for ``ENOENT``, ``InterruptedError`` for ``EINTR``,
...), and the message names the call or the operation and its target, so the
traceback says *what* failed, not only *how*.

Errors we can see coming are raised before anything reaches the kernel, as
ordinary Python exceptions (``TypeError``/``ValueError`` subclasses below).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import fcntl
import os
import resource
import stat
import struct
from typing import Iterable, NamedTuple, Optional, Tuple

__all__ = [
    "FixedFile",
    "check_int",
    "DirectIOAlignment",
    "RingClosedError",
    "RingForkedError",
    "RingThreadError",
    "SubmissionQueueFull",
    "UnsupportedOperation",
    "UringUnavailableError",
    "direct_io_alignment",
    "direct_io_hint",
    "io_uring_disabled",
    "kernel_error",
    "memlock_error",
    "seccomp_mode",
]


def check_int(name: str, value: object, low: int, high: int) -> int:
    """*value* as an int in [low, high], before it goes into a kernel
    structure (ctypes would store it modulo the field's width): a
    ``TypeError`` for a non-int (``bool`` included), a ``ValueError`` out
    of range, each naming *name*."""
    if value.__class__ is bool or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in {low}..{high}, got {value}")
    return int(value)


class FixedFile(int):
    """A request's target that is a registered-file slot (the SQE's ``fd``
    with ``IOSQE_FIXED_FILE``), not a file descriptor: named as such."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"registered file {int(self)}"


def kernel_error(err: int, what: str, target: Optional[object] = None,
                 detail: str = "") -> OSError:
    """Build the ``OSError`` subclass for ``errno`` *err*, naming *what* failed.

    *what* is a system call (``"io_uring_enter"``) or an operation
    (``"IORING_OP_READ"``).  An int *target* is a file descriptor and is
    named in the message (``IORING_OP_READ on fd 6: Invalid argument``);
    any other *target* (a path, an address) goes in the exception's
    ``filename`` slot, as ``open()`` does.  *detail*, when given, follows
    the error text (what the cause probably is).
    """
    if target.__class__ is int:
        what = f"{what} on fd {target}"
        target = None
    elif target.__class__ is FixedFile:
        what = f"{what} on registered file {int(target)}"  # type: ignore[call-overload]
        target = None
    message = f"{what}: {os.strerror(err)}"
    if detail:
        message += f"; {detail}"
    if target is None:
        return OSError(err, message)
    return OSError(err, message, str(target))


# -- what the environment says ---------------------------------------------------


def _read_text(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:  # bytes: no codec lookup on an error path
            return f.read().decode("ascii", "replace")
    except OSError:
        return None


def _status_field(name: str) -> Optional[str]:
    """A field of this thread's ``/proc/.../status`` (seccomp filters are
    per thread), or None when the kernel does not show it."""
    for path in ("/proc/thread-self/status", "/proc/self/status"):
        text = _read_text(path)
        if text is None:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key == name:
                return value.strip()
        return None
    return None


def seccomp_mode() -> Optional[int]:
    """This thread's seccomp mode (``Seccomp:`` in ``/proc/self/status``):
    0 none, 1 strict, 2 a filter is installed (containers, sandboxes,
    systemd's ``SystemCallFilter=``); None when the kernel does not say."""
    value = _status_field("Seccomp")
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def io_uring_disabled() -> Optional[int]:
    """The ``kernel.io_uring_disabled`` sysctl (Linux 6.6+): 0 io_uring for
    all, 1 only for ``CAP_SYS_ADMIN`` or members of ``kernel.io_uring_group``,
    2 for nobody; None when this kernel has no such sysctl."""
    text = _read_text("/proc/sys/kernel/io_uring_disabled")
    try:
        return None if text is None else int(text.strip())
    except ValueError:
        return None


def _io_uring_group() -> Optional[int]:
    text = _read_text("/proc/sys/kernel/io_uring_group")
    try:
        return None if text is None else int(text.strip())
    except ValueError:
        return None


def _has_capability(bit: int) -> bool:
    """Whether *bit* is in this thread's effective capability set."""
    value = _status_field("CapEff")
    try:
        return value is not None and bool(int(value, 16) >> bit & 1)
    except ValueError:
        return False


_CAP_IPC_LOCK = 14
_CAP_SYS_ADMIN = 21


def _size(n: int) -> str:
    """*n* bytes, with a binary unit when that reads better."""
    if n == resource.RLIM_INFINITY or n < 0:
        return "unlimited"
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            text = f"{value:.0f}" if value == int(value) else f"{value:.1f}"
            return f"{n} bytes ({text} {unit})"
    return f"{n} bytes"


def _memlock_text() -> str:
    """``RLIMIT_MEMLOCK`` as it is now, soft and hard."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    except (OSError, ValueError):
        return "RLIMIT_MEMLOCK (ulimit -l): unknown"
    return f"RLIMIT_MEMLOCK (ulimit -l) is soft {_size(soft)}, hard {_size(hard)}"


def memlock_error(err: int, what: str, nbytes: int, count: int = 1,
                  pages: Optional[int] = None) -> OSError:
    """The ``OSError`` for a buffer registration refused with *err*
    (``ENOMEM``): registered buffers are pinned and, unless the ring was
    created with ``CAP_IPC_LOCK``, counted page by page against the user's
    ``RLIMIT_MEMLOCK``; the message names the limit as it is now and what
    was asked (*count* buffers, *nbytes* bytes, *pages* pages)."""
    asked = f"{count} buffer{'s' if count != 1 else ''} of {_size(nbytes)} in all"
    if pages is not None:
        asked += f", {pages} pages of {os.sysconf('SC_PAGE_SIZE')} bytes to pin"
    if _has_capability(_CAP_IPC_LOCK):
        cause = (f"registering {asked}; this process has CAP_IPC_LOCK, which exempts its "
                 f"rings from RLIMIT_MEMLOCK, so memory itself ran short ({_memlock_text()})")
    else:
        cause = (f"registering {asked} goes over the locked-memory limit that registered "
                 f"buffers are pinned against: {_memlock_text()}, shared by every ring of "
                 "this user. Raise it (ulimit -l; systemd LimitMEMLOCK=; docker run "
                 "--ulimit memlock=...), register less, or run with CAP_IPC_LOCK")
    return kernel_error(err, what, detail=cause)


class UringUnavailableError(OSError):
    """io_uring cannot be used in this process; the message says why and what to do.

    Raised by ``Ring()`` when ``io_uring_setup`` itself is refused, which is
    never a problem with the arguments but with the environment:

    - ``ENOSYS``: the kernel is older than 5.1, was built without
      ``CONFIG_IO_URING``, or a seccomp filter (containers, sandboxes) blocks
      the system call;
    - ``EPERM``: the ``kernel.io_uring_disabled`` sysctl is 2, or is 1 and
      this process is neither privileged nor in ``kernel.io_uring_group``;
    - ``ENOMEM``: before Linux 5.12 ring memory counted against
      ``RLIMIT_MEMLOCK`` (``ulimit -l``), which is often 64 KiB.

    The message names the cause this process can see (the sysctl is read,
    ``/proc/self/status`` says whether a seccomp filter is installed);
    ``cause`` is a short tag for it: ``"io_uring_disabled"``,
    ``"seccomp"``, ``"lsm"``, ``"kernel"``, ``"memory"`` or ``"other"``.
    """

    cause: str = "other"


def _kernel_text() -> str:
    return f"Linux {os.uname().release}"


def _eperm_cause() -> Tuple[str, str]:
    """(cause tag, text) for ``EPERM`` from ``io_uring_setup``: the sysctl
    only when it says so, else a seccomp filter, else a security module."""
    disabled = io_uring_disabled()
    seccomp = seccomp_mode()
    filt = (" (a seccomp filter is active in this process too: Seccomp: 2 in "
            "/proc/self/status)") if seccomp == 2 else ""
    if disabled == 2:
        return "io_uring_disabled", (
            "io_uring is disabled for every process by the kernel.io_uring_disabled "
            f"sysctl (= 2); set it to 0, or to 1 with kernel.io_uring_group{filt}")
    if disabled == 1:
        group = _io_uring_group()
        member = group is not None and group >= 0 and (
            group == os.getegid() or group in os.getgroups())
        if not member and not _has_capability(_CAP_SYS_ADMIN):
            who = ("kernel.io_uring_group is -1 (no group)" if group is None or group < 0
                   else f"this process is not in kernel.io_uring_group (gid {group})")
            return "io_uring_disabled", (
                "the kernel.io_uring_disabled sysctl is 1: only processes with "
                f"CAP_SYS_ADMIN or in kernel.io_uring_group may create rings, and {who}; "
                f"add this user to that group, run privileged, or set the sysctl to 0{filt}")
    if seccomp == 2:
        return "seccomp", (
            "a seccomp filter is active in this process (Seccomp: 2 in /proc/self/status) "
            "and refuses io_uring_setup with EPERM, as Docker's and podman's default "
            "profiles do; allow io_uring_setup, io_uring_enter and io_uring_register in "
            "the profile (docker run --security-opt seccomp=...)")
    return "lsm", (
        "the kernel refused io_uring_setup although io_uring is enabled for this process "
        "and no seccomp filter is active in it: a security module (SELinux io_uring "
        "policy, BPF LSM) or a sandbox that traps system calls denies it")


def _enosys_cause() -> Tuple[str, str]:
    """(cause tag, text) for ``ENOSYS`` from ``io_uring_setup``."""
    if seccomp_mode() == 2:
        return "seccomp", (
            "a seccomp filter is active in this process (Seccomp: 2 in /proc/self/status) "
            "and answers io_uring_setup with ENOSYS, as container runtimes do for system "
            "calls their profile does not allow; allow io_uring_setup, io_uring_enter and "
            "io_uring_register in the profile (docker run --security-opt seccomp=...). "
            f"If the filter does allow it, {_kernel_text()} itself lacks io_uring (older "
            "than 5.1 or built without CONFIG_IO_URING)")
    return "kernel", (
        f"{_kernel_text()} has no io_uring_setup system call: it is older than 5.1 or "
        "built without CONFIG_IO_URING (no seccomp filter is active in this process)")


def unavailable(err: int, detail: str = "") -> UringUnavailableError:
    """The ``UringUnavailableError`` for a refused ``io_uring_setup``: the
    message names the cause this process can see (the
    ``kernel.io_uring_disabled`` sysctl, a seccomp filter, a security
    module, the kernel itself, ``RLIMIT_MEMLOCK``); ``cause`` is a short
    tag for it."""
    if err == _errno.EPERM:
        tag, cause = _eperm_cause()
    elif err == _errno.ENOSYS:
        tag, cause = _enosys_cause()
    elif err == _errno.EACCES:
        tag, cause = "lsm", (
            "io_uring is denied by a security module (SELinux/AppArmor policy "
            "for io_uring); allow it in the policy")
    elif err == _errno.ENOMEM:
        tag, cause = "memory", (
            "the ring's memory could not be allocated: before Linux 5.12 rings "
            f"count against the locked-memory limit, and {_memlock_text()}; raise it "
            "or use fewer entries")
    else:
        tag, cause = "other", os.strerror(err)
    message = f"io_uring unavailable: {cause}"
    if detail:
        message += f" ({detail})"
    exc = UringUnavailableError(err, message)
    exc.cause = tag
    return exc


# -- O_DIRECT ----------------------------------------------------------------------


class DirectIOAlignment(NamedTuple):
    """What ``O_DIRECT`` I/O on a file needs: the buffer address a multiple
    of ``memory``, the length and file offset multiples of ``offset``;
    ``logical_block_size`` is the device's (0 if unknown) and ``source``
    says where the numbers were learnt."""

    memory: int
    offset: int
    logical_block_size: int
    source: str


_STATX_DIOALIGN = 0x2000
_STATX_DIO_READ_ALIGN = 0x20000  # 6.16: reads may need less than writes
_AT_EMPTY_PATH = 0x1000
_BLKSSZGET = 0x1268
_libc = ctypes.CDLL(None, use_errno=True)
_statx = getattr(_libc, "statx", None)


def _statx_dio(fd: int, read: bool) -> Optional[Tuple[int, int]]:
    """(``stx_dio_mem_align``, offset alignment) from ``statx``
    ``STATX_DIOALIGN`` (Linux 6.1+; block devices 6.11+), or None."""
    if _statx is None:
        return None
    buf = ctypes.create_string_buffer(256)
    if _statx(fd, b"", _AT_EMPTY_PATH, _STATX_DIOALIGN | _STATX_DIO_READ_ALIGN, buf) != 0:
        return None
    mask = struct.unpack_from("I", buf, 0)[0]
    if not mask & _STATX_DIOALIGN:
        return None
    mem, off = struct.unpack_from("II", buf, 152)
    if read and mask & _STATX_DIO_READ_ALIGN:
        read_off = struct.unpack_from("I", buf, 180)[0]
        off = read_off or off
    return (mem, off) if mem and off else None


def _sysfs_int(path: str) -> Optional[int]:
    text = _read_text(path)
    try:
        return None if text is None else int(text.strip())
    except ValueError:
        return None


def _device(fd: int) -> Optional[Tuple[str, int, int]]:
    """(``MAJ:MIN``, logical block size, DMA alignment) of the block device
    *fd* is, or holds it: ``BLKSSZGET`` on a block device, else sysfs
    ``/sys/dev/block/MAJ:MIN/queue`` (a partition's is its disk's); zeros
    where they cannot be read."""
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    is_blk = stat.S_ISBLK(st.st_mode)
    dev = st.st_rdev if is_blk else st.st_dev
    lbs = 0
    if is_blk:
        try:
            lbs = struct.unpack("i", fcntl.ioctl(fd, _BLKSSZGET, b"\0" * 4))[0]
        except OSError:
            lbs = 0
    base = f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"
    dma = 0
    for q in (f"{base}/queue", f"{base}/../queue"):
        if os.path.isdir(q):
            lbs = lbs or _sysfs_int(f"{q}/logical_block_size") or 0
            dma_mask = _sysfs_int(f"{q}/dma_alignment")
            dma = 0 if dma_mask is None else dma_mask + 1
            break
    return f"{os.major(dev)}:{os.minor(dev)}", lbs, dma


def direct_io_alignment(fd: int, *, read: bool = False) -> Optional[DirectIOAlignment]:
    """The alignment ``O_DIRECT`` I/O on *fd* must keep, or None when it
    cannot be told.

    ``statx(STATX_DIOALIGN)`` answers for the file itself where the kernel
    can (with *read*, ``STATX_DIO_READ_ALIGN``'s offset alignment where
    given); otherwise the device under it does: its logical block size
    (``BLKSSZGET`` on a block device, ``queue/logical_block_size`` in sysfs
    for the disk holding a file) for lengths and offsets, and
    ``queue/dma_alignment`` + 1 for the buffer address."""
    device = _device(fd)
    name, lbs, dma = device if device is not None else ("?", 0, 0)
    got = _statx_dio(fd, read)
    if got is not None:
        source = "statx STATX_DIOALIGN"
        if lbs:
            source += f"; the logical block size of device {name} is {lbs}"
        return DirectIOAlignment(got[0], got[1], lbs, source)
    if not lbs:
        return None
    return DirectIOAlignment(dma or lbs, lbs, lbs, f"the logical block size of device {name}")


def direct_io_hint(fd: int, *, read: bool,
                   spans: Optional[Iterable[Tuple[int, Optional[int]]]] = None) -> str:
    """Why an ``O_DIRECT`` read or write on *fd* most likely failed with
    ``EINVAL``, or "" when *fd* is not open with ``O_DIRECT`` (now).

    *spans* are the request's buffers as ``(address, nbytes)`` (nbytes None
    when unknown); each is checked against the alignment, and the message
    says which of buffer address, length or file offset is misaligned as
    far as that tells.  Without them it says what must be aligned."""
    try:
        if not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            return ""
    except OSError:
        return ""
    align = direct_io_alignment(fd, read=read)
    if align is None:
        return (f"fd {fd} is open with O_DIRECT, which needs the buffer address, length "
                "and file offset aligned (to the device's logical block size)")
    mem, off = align.memory, align.offset
    need = (f"O_DIRECT on fd {fd} needs the buffer address aligned to {mem} bytes and the "
            f"length and file offset to {off} bytes ({align.source})")
    if spans is None:
        return need + ": one of them is not"
    found = []
    sizes_ok = True
    spans = list(spans)
    total = 0
    for i, (address, nbytes) in enumerate(spans):
        which = "the buffer" if len(spans) == 1 else f"buffer {i}"
        if address % mem:
            past = address % mem
            found.append(f"{which} address {address:#x} is not ({past} byte{'s' if past > 1 else ''} "
                         f"past a {mem}-byte boundary)")
        if nbytes is None:
            sizes_ok = False
        else:
            total += nbytes
            if nbytes % off and len(spans) == 1:
                found.append(f"the buffer is {nbytes} bytes, not a multiple of {off} (so is the "
                             "length, unless a shorter one was given)")
    if len(spans) > 1 and sizes_ok and total % off:
        found.append(f"the total length {total} is not a multiple of {off}")
    if found:
        return need + ": " + "; ".join(found)
    if sizes_ok:
        return (need + ": the buffer address and size are aligned, so the file offset is "
                "not (with offset -1: the file position), or a shorter length was given")
    return need + ": the buffer address is aligned, so the length or the file offset is not"


class RingClosedError(ValueError):
    """An operation on a ring that was closed (like I/O on a closed file)."""


class RingThreadError(RuntimeError):
    """A ring made without ``threadsafe=True`` was used by a second thread.

    Such a ring belongs to the first thread that uses it: its SQ tail, CQ
    head and request table are updated without locks, so two threads at
    once could hand one completion out twice or lose one.  Make the ring
    with ``threadsafe=True`` to share it, or call ``release_thread()`` in
    the owning thread to hand it over.
    """


class RingForkedError(RuntimeError):
    """A ring was used in a child process created by ``fork()``.

    The child inherits the ring's file descriptor and the shared mappings: it
    would be submitting into, and reaping from, the *parent's* queues.  The
    child must create its own ring.
    """


class SubmissionQueueFull(BufferError):
    """No free SQE: every slot of the submission queue holds an unsubmitted
    or not yet consumed entry.  Call ``submit()`` (or, under SQPOLL, wait for
    the kernel thread with ``sq_wait()``), or open the ring with
    ``sq_full="submit"`` to have that done for you."""


class UnsupportedOperation(OSError):
    """The running kernel lacks an opcode or feature (found through the probe)."""

    def __init__(self, what: str, detail: str = "") -> None:
        message = f"{what} is not supported by this kernel ({os.uname().release})"
        if detail:
            message += f": {detail}"
        super().__init__(_errno.EOPNOTSUPP, message)

"""The three io_uring system calls, made through ctypes, behind one seam.

Nothing in the package calls the kernel except through a ``Kernel`` object:
``io_uring_setup``, ``io_uring_enter``, ``io_uring_register``, plus the
``mmap``/``close`` of the ring's file descriptor.  ``LinuxKernel`` is the real
one.  Tests put a ``uring.faults.FaultInjector`` in front of it to produce
faults the kernel will not produce on demand (``EINTR``, ``EAGAIN``, a short
submit), and a simulated kernel can stand in its place, because the ring
never learns which one it talks to.

Every method raises ``OSError`` (the errno's own subclass, the call named)
instead of returning ``-1``; retrying ``EINTR`` is the ring's decision, since
only the ring knows whether a retry is safe and how much of a timeout is left.

System call numbers: since Linux 5.1 every architecture shares the
``asm-generic`` numbers 425/426/427, except those whose tables are offset:
alpha (+110), ia64 (+1024), the three MIPS ABIs (o32 4000+, n64 5000+,
n32 6000+), and x32 (the x86-64 number with ``__X32_SYSCALL_BIT`` set).
"""

from __future__ import annotations

import ctypes
import mmap as _mmap
import os
import platform
import struct
import sysconfig
import weakref
from typing import Any, Callable, Tuple

from .errors import kernel_error

__all__ = [
    "Kernel",
    "LinuxKernel",
    "SYSCALL_NUMBERS",
    "default_kernel",
    "syscall_numbers",
]

#: (io_uring_setup, io_uring_enter, io_uring_register) for the ABIs whose
#: numbers are not the generic 425/426/427.
SYSCALL_NUMBERS = {
    "generic": (425, 426, 427),
    "alpha": (535, 536, 537),
    "ia64": (1449, 1450, 1451),
    "mips-o32": (4425, 4426, 4427),
    "mips-n64": (5425, 5426, 5427),
    "mips-n32": (6425, 6426, 6427),
    "x32": (0x40000000 + 425, 0x40000000 + 426, 0x40000000 + 427),
}


def syscall_abi(machine: str = "", pointer_size: int = 0, multiarch: str = "") -> str:
    """Name the system call table of this process (or of the given facts)."""
    machine = machine or platform.machine()
    pointer_size = pointer_size or struct.calcsize("P")
    if not multiarch:
        multiarch = str(sysconfig.get_config_var("MULTIARCH") or "")
    if machine == "alpha":
        return "alpha"
    if machine == "ia64":
        return "ia64"
    if machine.startswith("mips"):
        if pointer_size == 8:
            return "mips-n64"
        return "mips-n32" if "n32" in multiarch else "mips-o32"
    if machine in ("x86_64", "amd64") and pointer_size == 4:
        return "x32"
    return "generic"


def syscall_numbers(abi: str = "") -> Tuple[int, int, int]:
    """The (setup, enter, register) numbers for *abi* (default: this process)."""
    return SYSCALL_NUMBERS[abi or syscall_abi()]


class Kernel:
    """The seam: what the ring needs from the kernel, one method per call.

    Arguments are plain integers; pointers are addresses (``ctypes.addressof``)
    so a simulated kernel can read the same memory the real one would.
    """

    def setup(self, entries: int, params_address: int) -> int:
        """``io_uring_setup(entries, params)``: a new ring's file descriptor."""
        raise NotImplementedError

    def enter(
        self,
        fd: int,
        to_submit: int,
        min_complete: int,
        flags: int,
        arg: int = 0,
        argsz: int = 0,
    ) -> int:
        """``io_uring_enter``: the number of SQEs consumed."""
        raise NotImplementedError

    def register(self, fd: int, opcode: int, arg: int, nr_args: int) -> int:
        """``io_uring_register``: the opcode's non-negative result."""
        raise NotImplementedError

    def raw_enter(self) -> Tuple[Callable[..., int], int]:
        """``(syscall, number)`` for the ring's hot wait loop to call
        ``syscall(number, fd, to_submit, min_complete, flags, NULL, 0)``
        directly, the way libc's ``syscall(2)`` is called: a negative
        return means failure, its errno in ``ctypes.get_errno()``.

        The real kernel hands out libc's ``syscall`` itself (two Python
        frames fewer per ``io_uring_enter``).  Any other kernel (a fault
        injector, a simulated kernel) gets this adapter over its ``enter``,
        so the hot loop is the same code on every kernel and every fault
        planned for ``enter`` reaches it."""
        enter = self.enter

        def syscall(number: int, fd: int, to_submit: int, min_complete: int, flags: int,
                    arg: Any = None, argsz: int = 0) -> int:
            try:  # arg/argsz may come as ctypes objects (c_void_p, c_size_t)
                return enter(fd, to_submit, min_complete, flags, getattr(arg, "value", arg) or 0,
                             getattr(argsz, "value", argsz) or 0)
            except OSError as exc:
                ctypes.set_errno(exc.errno or 0)
                return -1

        return syscall, syscall_numbers()[1]

    def mmap(self, fd: int, length: int, offset: int) -> _mmap.mmap:
        """Map *length* bytes of the ring at the magic *offset* (``IORING_OFF_*``)."""
        raise NotImplementedError

    def close(self, fd: int) -> None:
        """Close the ring's file descriptor (the kernel tears the ring down)."""
        raise NotImplementedError


class LinuxKernel(Kernel):
    """The running Linux kernel, reached through libc's ``syscall(2)``.

    Argument passing is the hot path of every submit: ctypes converting
    seven arguments through declared ``argtypes`` costs more than the
    system call itself here.  So ``syscall`` is called without
    ``argtypes``: Python ints go as C ``int`` (libffi widens them to the
    register), which is exact for the ``unsigned int``/``u32`` arguments
    the kernel's ``SYSCALL_DEFINE`` wrappers truncate to anyway; the two
    arguments that need the full width, pointers and ``size_t``, are
    passed as ``c_void_p``/``c_size_t`` objects.
    """

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.numbers = syscall_numbers()
        self._syscall = libc.syscall
        self._syscall.restype = ctypes.c_long
        self._syscall.argtypes = None  # type: ignore[assignment]
        self._get_errno = ctypes.get_errno
        self._ptr = ctypes.c_void_p
        self._size = ctypes.c_size_t

    def raw_enter(self) -> Tuple[Callable[..., int], int]:
        return self._syscall, self.numbers[1]

    def setup(self, entries: int, params_address: int) -> int:
        fd = self._syscall(self.numbers[0], entries, self._ptr(params_address))
        if fd < 0:
            raise kernel_error(self._get_errno(), "io_uring_setup")
        return int(fd)

    def enter(
        self,
        fd: int,
        to_submit: int,
        min_complete: int,
        flags: int,
        arg: int = 0,
        argsz: int = 0,
    ) -> int:
        if arg:
            ret = self._syscall(self.numbers[1], fd, to_submit, min_complete, flags,
                                self._ptr(arg), self._size(argsz))
        else:
            ret = self._syscall(self.numbers[1], fd, to_submit, min_complete, flags, None, 0)
        if ret < 0:
            raise kernel_error(self._get_errno(), "io_uring_enter")
        return ret  # type: ignore[no-any-return]

    def register(self, fd: int, opcode: int, arg: int, nr_args: int) -> int:
        ret = self._syscall(self.numbers[2], fd, opcode, self._ptr(arg or None), nr_args)
        if ret < 0:
            raise kernel_error(self._get_errno(), "io_uring_register")
        return int(ret)

    def mmap(self, fd: int, length: int, offset: int) -> _mmap.mmap:
        # MAP_SHARED: the pages are the kernel's ring memory; MAP_POPULATE
        # (where Python exposes it) saves the first-touch faults.
        flags = _mmap.MAP_SHARED | getattr(_mmap, "MAP_POPULATE", 0)
        try:
            return _mmap.mmap(
                fd, length, flags=flags, prot=_mmap.PROT_READ | _mmap.PROT_WRITE, offset=offset
            )
        except OSError as exc:
            raise kernel_error(exc.errno or 0, "mmap of io_uring ring") from None

    def close(self, fd: int) -> None:
        os.close(fd)


_default: Kernel | None = None


def default_kernel() -> Kernel:
    """The process-wide ``LinuxKernel`` (created on first use)."""
    global _default
    if _default is None:
        _default = LinuxKernel()
    return _default


# -- fork ------------------------------------------------------------------------------------

# What this process holds of the kernel through shared memory and inherited
# descriptors (rings, AIO contexts, the block engines on them), each with the
# method that makes its copy in a fork child let go of it untouched.
_FORK_CHILD_HOOKS: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def on_fork_in_child(obj: Any, method: str) -> None:
    """Call ``obj.<method>()`` in a child made by ``fork()``, first thing
    there (an ``os.register_at_fork`` hook).  The child shares the
    parent's mappings and file descriptors: its copy of a ring or an AIO
    context must never submit into or reap from the parent's queues.
    *obj* is held weakly."""
    _FORK_CHILD_HOOKS[obj] = method


def _after_fork_in_child() -> None:
    for obj, method in list(_FORK_CHILD_HOOKS.items()):
        getattr(obj, method)()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

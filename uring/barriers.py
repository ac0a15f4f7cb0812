"""Memory ordering for the shared ring words, with no C compiler.

The ring protocol needs three kinds of ordering (``NOTES.md`` chapter 3):

- *release* on the stores that hand memory to the kernel: the SQ tail (SQE
  contents first) and the CQ head (our reads of the CQEs first);
- *acquire* on the loads that take memory from it: the CQ tail (CQE
  contents after), and the SQ head under SQPOLL (slot reuse after);
- one *full* fence, store->load, under SQPOLL: between publishing the SQ
  tail and reading ``IORING_SQ_NEED_WAKEUP``, or the wake-up can be lost.

CPython is the compiler here: each ``memoryview`` access is its own C call
behind the interpreter's dispatch, so two accesses in two statements are
never merged or reordered by the C compiler.  What remains is the CPU.  On
TSO machines (x86, s390x) loads are not reordered with loads, stores not
with stores, and loads not with later stores, so acquire and release cost no
instruction (``STRONG_ORDERING``).  A store followed by a load of another
address *can* be reordered there (the store buffer), so the full fence is a
real instruction on every architecture.

``full_fence`` is a few bytes of machine code (``mfence``, ``dmb ish``,
``sync``, ``fence rw,rw``, ...) written to an anonymous mapping, made
executable (write, then ``mprotect`` to read+exec: never writable and
executable at once) and called through ctypes.  It returns a magic number so
a test can prove the code ran.  Where executable memory is refused (SELinux
``execmem``, hardened kernels) or the architecture is unknown, the fence is
``membarrier(2)``, which orders the caller's own accesses around the call.

Callers must call ``barriers.full_fence()`` through the module, not a local
alias, so ``instrument()`` can count the fences a code path issues.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
import platform
import struct
import sys
from typing import Callable, Dict, Iterator, List, Optional, Tuple

__all__ = [
    "FENCE_KIND",
    "STRONG_ORDERING",
    "acquire_fence",
    "fence_probe",
    "full_fence",
    "instrument",
    "load_acquire",
    "release_fence",
    "store_release",
]

#: The value every machine-code fence returns, proving the code ran.
MAGIC = 0x5A1

_MACHINE = platform.machine().lower()
_POINTER = struct.calcsize("P")

#: True where loads and stores are not reordered except store->load (TSO).
STRONG_ORDERING = _MACHINE in ("x86_64", "amd64", "i386", "i486", "i586", "i686", "s390x")


def _le32(*words: int) -> bytes:
    return b"".join(struct.pack("<I", w) for w in words)


def _be(*parts: Tuple[int, int]) -> bytes:
    return b"".join(value.to_bytes(size, "big") for value, size in parts)


#: Per architecture: (name of the fence instruction, code bytes).  Each
#: function is: fence; return MAGIC in the return register; return.
#: Encodings are from each ISA's manual:
CODE: Dict[str, Tuple[str, bytes]] = {
    # x86-64: mfence (0F AE F0); mov eax, imm32 (B8 id); ret (C3).
    "x86_64": ("mfence", b"\x0f\xae\xf0" + b"\xb8" + struct.pack("<I", MAGIC) + b"\xc3"),
    # i386 (no SSE2 assumed): lock or dword [esp], 0 (F0 83 0C 24 00) is a
    # full barrier; mov eax, imm32; ret.
    "i386": ("lock or", b"\xf0\x83\x0c\x24\x00" + b"\xb8" + struct.pack("<I", MAGIC) + b"\xc3"),
    # AArch64: dmb ish (D5033BBF); movz w0, #imm16 (52800000 | imm<<5); ret (D65F03C0).
    "aarch64": ("dmb ish", _le32(0xD5033BBF, 0x52800000 | (MAGIC << 5), 0xD65F03C0)),
    # ARMv7, ARM state: dmb ish (F57FF05B); movw r0, #imm16
    # (E3000000 | imm4<<16 | imm12); bx lr (E12FFF1E).
    "armv7": (
        "dmb ish",
        _le32(0xF57FF05B, 0xE3000000 | ((MAGIC >> 12) << 16) | (MAGIC & 0xFFF), 0xE12FFF1E),
    ),
    # RISC-V: fence rw,rw (0330000F); addi a0, zero, imm12 (00000513 | imm<<20);
    # jalr zero, 0(ra) (00008067).
    "riscv64": ("fence rw,rw", _le32(0x0330000F, 0x00000513 | (MAGIC << 20), 0x00008067)),
    # POWER, little-endian ELFv2 (no function descriptors): sync (7C0004AC);
    # li r3, imm (38600000 | imm); blr (4E800020).
    "ppc64le": ("sync", _le32(0x7C0004AC, 0x38600000 | MAGIC, 0x4E800020)),
    # LoongArch64: dbar 0 (38720000); ori $a0, $zero, imm12
    # (03800000 | imm<<10 | rj=0<<5 | rd=4); jirl $zero, $ra, 0 (4C000020).
    "loongarch64": ("dbar 0", _le32(0x38720000, 0x03800000 | (MAGIC << 10) | 4, 0x4C000020)),
    # s390x (big-endian): bcr 14,0 (07E0, serialising); lghi %r2, imm16
    # (A729 iiii); br %r14 (07FE).
    "s390x": ("bcr 14,0", _be((0x07E0, 2), (0xA729, 2), (MAGIC, 2), (0x07FE, 2))),
}

_ARCH_ALIASES = {
    "amd64": "x86_64",
    "i486": "i386",
    "i586": "i386",
    "i686": "i386",
    "arm64": "aarch64",
    "armv7l": "armv7",
    "armv8l": "armv7",
}


def _code_arch(machine: str = _MACHINE, pointer: int = _POINTER) -> Optional[str]:
    arch = _ARCH_ALIASES.get(machine, machine)
    if arch == "x86_64" and pointer == 4:
        return None  # x32: the same bytes work, but keep the tested path
    if arch == "ppc64le" or (arch == "ppc64" and sys.byteorder == "little"):
        return "ppc64le"
    return arch if arch in CODE else None


# --- the machine-code page --------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_code_pages: List[mmap.mmap] = []  # never unmapped: the fence may be called until exit


def _machine_code_fence(arch: str) -> Callable[[], int]:
    """Map *arch*'s code, make it read+exec, and return it as a callable.

    Raises ``PermissionError`` when the system refuses executable memory.
    """
    _name, code = CODE[arch]
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    page.write(code)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    _mprotect(address, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_EXEC)
    _code_pages.append(page)
    return ctypes.CFUNCTYPE(ctypes.c_int)(address)


def _mprotect(address: int, length: int, prot: int) -> None:
    mprotect = _libc.mprotect
    mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if mprotect(address, length, prot) != 0:
        err = ctypes.get_errno()
        raise PermissionError(err, f"mprotect(PROT_EXEC): {os.strerror(err)}")


# --- the syscall fallback -----------------------------------------------------

MEMBARRIER_CMD_GLOBAL = 1 << 0
MEMBARRIER_CMD_PRIVATE_EXPEDITED = 1 << 3
MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED = 1 << 4

#: membarrier(2) numbers; the asm-generic table (aarch64, riscv, loongarch) has 283.
MEMBARRIER_NR = {
    "x86_64": 324, "i386": 375, "armv7": 389, "ppc64le": 365, "ppc64": 365,
    "s390x": 356, "mips64": 5318, "mips": 4358,
}


def _membarrier_fence() -> Callable[[], int]:
    """``membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)``: the kernel issues a
    full barrier on the calling thread (and every running thread of the
    process) between entry and return.  Registered once; falls back to
    ``MEMBARRIER_CMD_GLOBAL`` where expedited is unavailable."""
    arch = _ARCH_ALIASES.get(_MACHINE, _MACHINE)
    nr = MEMBARRIER_NR.get(arch, 283)
    syscall = _libc.syscall
    cmd = MEMBARRIER_CMD_PRIVATE_EXPEDITED
    if syscall(nr, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) != 0:
        cmd = MEMBARRIER_CMD_GLOBAL
    if syscall(nr, cmd, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"membarrier: {os.strerror(err)}")

    def fence() -> int:
        if syscall(nr, cmd, 0, 0) != 0:  # pragma: no cover - worked at selection
            err = ctypes.get_errno()
            raise OSError(err, f"membarrier: {os.strerror(err)}")
        return MAGIC

    return fence


# --- selection ----------------------------------------------------------------

_fence_impl: Callable[[], int]
FENCE_KIND = ""


def _select_fence(force: Optional[str] = None) -> str:
    """Pick the fence: ``"machine-code"`` if possible, else ``"membarrier"``.
    *force* selects one (tests use it); returns the kind chosen."""
    global _fence_impl, FENCE_KIND
    arch = _code_arch()
    if force in (None, "machine-code") and arch is not None:
        try:
            impl = _machine_code_fence(arch)
            if impl() != MAGIC:  # pragma: no cover - would mean a wrong encoding
                raise OSError(errno.EINVAL, "fence code returned the wrong value")
            _fence_impl, FENCE_KIND = impl, f"machine-code:{arch}:{CODE[arch][0]}"
            return FENCE_KIND
        except PermissionError:
            if force == "machine-code":
                raise
    if force in (None, "membarrier"):
        _fence_impl, FENCE_KIND = _membarrier_fence(), "membarrier"
        return FENCE_KIND
    raise ValueError(f"no such fence kind {force!r}")


_select_fence()


def fence_probe() -> int:
    """Run the active fence and return what it returned (``MAGIC``)."""
    return _fence_impl()


def full_fence() -> None:
    """A full memory barrier: every load and store before it is globally
    visible before any load or store after it (store->load included)."""
    _fence_impl()


def _no_fence() -> None:
    """Nothing to do: the CPU keeps this order by itself (TSO)."""


#: Acquire / release: free on TSO, the full fence elsewhere (stronger than
#: needed, ``dmb ish`` for ``dmb ishld``, but correct).
acquire_fence: Callable[[], None] = _no_fence if STRONG_ORDERING else full_fence
release_fence: Callable[[], None] = _no_fence if STRONG_ORDERING else full_fence


def load_acquire(view: memoryview, index: int) -> int:
    """Load ``view[index]``; no later access moves before it."""
    value = int(view[index])
    if not STRONG_ORDERING:
        acquire_fence()
    return value


def store_release(view: memoryview, index: int, value: int) -> None:
    """Store ``view[index] = value``; no earlier access moves after it."""
    if not STRONG_ORDERING:
        release_fence()
    view[index] = value


class FenceCounter:
    count = 0


@contextlib.contextmanager
def instrument() -> Iterator[FenceCounter]:
    """Count ``full_fence`` calls made through this module while active."""
    global full_fence
    counter = FenceCounter()
    original = full_fence

    def counting() -> None:
        counter.count += 1
        original()

    full_fence = counting  # rebinds the module function: callers use barriers.full_fence
    try:
        yield counter
    finally:
        full_fence = original

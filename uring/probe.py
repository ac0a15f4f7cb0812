"""What this kernel supports, as ``IORING_REGISTER_PROBE`` reports it.

The probe fills ``io_uring_probe``: ``last_op`` (the highest opcode the
kernel knows) and one ``io_uring_probe_op`` per opcode whose ``flags`` has
``IO_URING_OP_SUPPORTED`` when the opcode can be used.  Checking the probe
before submitting turns "this kernel is too old" into a clear error instead
of an ``EINVAL`` completion.
"""

from __future__ import annotations

import os
from typing import Any, Dict, FrozenSet, Optional

from . import abi

__all__ = ["IO_URING_OP_SUPPORTED", "Availability", "Probe", "available"]

IO_URING_OP_SUPPORTED = 1 << 0


class Probe:
    """The kernel's answer: ``last_op``, the supported opcodes, the features."""

    def __init__(self, last_op: int, supported: FrozenSet[int], features: int) -> None:
        self.last_op = last_op
        self.supported = supported
        self.features = abi.IoringFeat(features)
        self.kernel = os.uname().release

    @classmethod
    def from_struct(cls, p: Any, features: int) -> "Probe":
        ops = {
            int(p.ops[i].op)
            for i in range(min(int(p.ops_len), len(p.ops)))
            if p.ops[i].flags & IO_URING_OP_SUPPORTED
        }
        return cls(int(p.last_op), frozenset(ops), features)

    def __contains__(self, op: int) -> bool:
        return int(op) in self.supported

    def supports(self, op: int) -> bool:
        return int(op) in self.supported

    def table(self) -> Dict[str, bool]:
        """Every opcode this package knows, by name, and whether it's usable."""
        return {op.name: int(op) in self.supported for op in abi.IoringOp if op.name != "IORING_OP_LAST"}

    def __repr__(self) -> str:
        return f"<Probe kernel={self.kernel} last_op={self.last_op} supported={len(self.supported)}>"


class Availability:
    """Whether this process can create an io_uring, and if not why: true
    when it can; else ``errno`` and ``reason`` (the message of the
    ``UringUnavailableError`` ``Ring()`` would raise, which names the
    cause: the ``kernel.io_uring_disabled`` sysctl, a seccomp filter, a
    security module, the kernel) and ``cause``, its short tag."""

    __slots__ = ("available", "errno", "reason", "cause")

    def __init__(self, available: bool, errno: int = 0, reason: str = "",
                 cause: str = "") -> None:
        self.available = available
        self.errno = errno
        self.reason = reason
        self.cause = cause

    def __bool__(self) -> bool:
        return self.available

    def __repr__(self) -> str:
        if self.available:
            return "<Availability: io_uring available>"
        return f"<Availability: unavailable ({self.cause}): {self.reason}>"


def available(kernel: Optional[Any] = None) -> Availability:
    """Try to set up a one-entry ring now (not cached: a seccomp filter
    or the sysctl may change) and say whether io_uring can be used here;
    false with the cause when ``io_uring_setup`` is refused.  Errors that
    are not about the environment are raised."""
    from .errors import UringUnavailableError
    from .ring import RingCore  # here: ring -> ... -> probe would be circular at import

    try:
        RingCore(1, kernel=kernel).close()
    except UringUnavailableError as exc:
        return Availability(False, exc.errno or 0, str(exc.strerror), exc.cause)
    return Availability(True)

"""What this kernel supports, as ``IORING_REGISTER_PROBE`` reports it.

The probe fills ``io_uring_probe``: ``last_op`` (the highest opcode the
kernel knows) and one ``io_uring_probe_op`` per opcode whose ``flags`` has
``IO_URING_OP_SUPPORTED`` when the opcode can be used.  Checking the probe
before submitting turns "this kernel is too old" into a clear error instead
of an ``EINVAL`` completion.
"""

from __future__ import annotations

import os
from typing import Any, Dict, FrozenSet

from . import abi

__all__ = ["IO_URING_OP_SUPPORTED", "Probe"]

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

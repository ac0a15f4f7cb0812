"""``uring.model``: the kernel's side of the ring, as a program you can read.

    from uring import Ring
    from uring.model import ModelKernel

    kernel = ModelKernel()
    fd = kernel.add_file(b"hello")
    with Ring(8, kernel=kernel) as ring:   # the same Ring code, a model kernel
        ring.prep_read(fd, buf := bytearray(5), 0, user_data=1)
        print(ring.wait(1))

Modules: ``layout`` (setup's arithmetic and the offsets), ``requests`` (what
each modeled opcode does and when it completes), ``kernel`` (submission,
completion, the overflow list, links, drain, timeouts, waiting) and
``rules`` (the user side's obligations, checked at every call).  NOTES.md,
chapter "The protocol as a program", walks through it.
"""

from __future__ import annotations

from .kernel import MODELED_OPS, ModelDeadlock, ModelKernel, ModelRing
from .rules import ProtocolViolation, weak_memory

__all__ = ["MODELED_OPS", "ModelDeadlock", "ModelKernel", "ModelRing", "ProtocolViolation", "weak_memory"]

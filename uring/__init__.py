"""io_uring from pure Python: the kernel's ring protocol through ctypes and mmap.

    import uring
    with uring.Ring(64) as ring:
        ring.prep_nop(user_data=1)
        print(ring.wait(1))         # [Cqe(user_data=1, res=0, flags=...)]

Layers, lowest first: ``abi`` (the header) -> ``syscalls`` (the seam) ->
``barriers`` -> ``ring`` (the protocol) -> ``bufring``/``register``/``request``
-> ``ops`` (``Ring``, one ``prep_*`` per opcode) -> ``block`` (the block layer)
-> ``asyncio`` (awaitable files and sockets, an event loop on io_uring).
"""

from __future__ import annotations

from typing import Optional

from . import abi
from .abi import *  # noqa: F401,F403  - the kernel's names, at the top level too
from .buffers import IovecArray, PinnedBuffer
from .bufring import BufferRing
from .errors import (
    RingClosedError,
    RingForkedError,
    RingThreadError,
    SubmissionQueueFull,
    UnsupportedOperation,
    UringUnavailableError,
)
from .ops import AT_FDCWD, Ring, timespec
from .probe import Probe
from .request import Completion, Request
from .ring import Cqe
from .syscalls import Kernel, LinuxKernel

__version__ = "0.1.0"

_probe: Optional[Probe] = None


def probe() -> Probe:
    """Which opcodes the running kernel supports (probed once per process,
    through a small temporary ring)."""
    global _probe
    if _probe is None:
        with Ring(1) as ring:
            _probe = ring.probe()
    return _probe


__all__ = [
    "AT_FDCWD",
    "BufferRing",
    "Completion",
    "Cqe",
    "IovecArray",
    "Kernel",
    "LinuxKernel",
    "PinnedBuffer",
    "Probe",
    "Request",
    "Ring",
    "RingClosedError",
    "RingForkedError",
    "RingThreadError",
    "SubmissionQueueFull",
    "UnsupportedOperation",
    "UringUnavailableError",
    "abi",
    "probe",
    "timespec",
]

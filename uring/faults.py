"""Fault injection at the syscall seam.

Some faults the kernel will not produce on demand: ``io_uring_enter``
interrupted by a signal at an exact moment (``EINTR``), out of request memory
(``EAGAIN``), a submit that consumes fewer SQEs than asked.  A
``FaultInjector`` stands in front of a real ``Kernel`` and, by a plan the
test writes, turns chosen calls into those faults.  The fault is made the way
the kernel makes it: an errno fault fails *before* the real call, so nothing
happened in the kernel, exactly as when the real call fails with that errno;
a short submit passes a smaller ``to_submit`` to the real kernel (and, like
the kernel after a short submit, does not wait), so the ring really holds
the SQEs that were left.

This is the only fake in the project, and it fakes only the *timing* of
faults: every call that is let through reaches the real kernel.
"""

from __future__ import annotations

import mmap as _mmap
from collections import Counter
from dataclasses import dataclass
from typing import Callable, List, Optional

from . import abi
from .errors import kernel_error
from .syscalls import Kernel, default_kernel

__all__ = ["Fault", "FaultInjector"]


@dataclass
class Fault:
    """One planned fault.

    call: ``"setup"``, ``"enter"`` or ``"register"``.
    errno: fail the call with this errno without calling the kernel.
    short_submit: for ``"enter"``: let at most this many SQEs be consumed.
    returns: for ``"enter"``: return this value without calling the kernel
    (a wait the kernel ends early with no error, e.g. ``IORING_ENTER_SQ_WAIT``
    stopping on pending task work).
    when: optional predicate on the call's arguments; the fault waits for a
    matching call (e.g. only ``enter`` calls that wait for completions).
    """

    call: str
    errno: int = 0
    short_submit: Optional[int] = None
    when: Optional[Callable[..., bool]] = None
    returns: Optional[int] = None


class FaultInjector(Kernel):
    """A ``Kernel`` that forwards to *inner*, except for the planned faults."""

    def __init__(self, inner: Optional[Kernel] = None, *, hide_features: int = 0) -> None:
        """*hide_features*: ``IORING_FEAT_*`` bits cleared from what setup
        reports, to drive the ring down an older kernel's path against this
        one (e.g. without ``IORING_FEAT_SINGLE_MMAP``, the three-mmap layout,
        which every kernel still serves)."""
        self.inner = inner if inner is not None else default_kernel()
        self.hide_features = hide_features
        self.plan: List[Fault] = []
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()

    def inject(self, call: str, errno: int = 0, *, times: int = 1,
               short_submit: Optional[int] = None,
               when: Optional[Callable[..., bool]] = None,
               returns: Optional[int] = None) -> None:
        """Plan *times* faults on *call* (they fire on the next matching calls)."""
        for _ in range(times):
            self.plan.append(Fault(call, errno, short_submit, when, returns))

    def _take(self, call: str, *args: int) -> Optional[Fault]:
        self.calls[call] += 1
        for i, fault in enumerate(self.plan):
            if fault.call == call and (fault.when is None or fault.when(*args)):
                del self.plan[i]
                self.injected[call] += 1
                return fault
        return None

    def setup(self, entries: int, params_address: int) -> int:
        fault = self._take("setup", entries)
        if fault is not None and fault.errno:
            raise kernel_error(fault.errno, "io_uring_setup")
        fd = self.inner.setup(entries, params_address)
        if self.hide_features:
            params = abi.io_uring_params.from_address(params_address)
            params.features &= ~self.hide_features
        return fd

    def enter(self, fd: int, to_submit: int, min_complete: int, flags: int,
              arg: int = 0, argsz: int = 0) -> int:
        fault = self._take("enter", to_submit, min_complete, flags)
        if fault is not None:
            if fault.errno:
                raise kernel_error(fault.errno, "io_uring_enter")
            if fault.returns is not None:
                return fault.returns
            if fault.short_submit is not None and fault.short_submit < to_submit:
                # The kernel, having consumed fewer SQEs than asked, returns
                # at once without waiting for completions: do the same.
                to_submit = fault.short_submit
                min_complete = 0
                flags &= ~int(abi.IORING_ENTER_GETEVENTS)
        return self.inner.enter(fd, to_submit, min_complete, flags, arg, argsz)

    def register(self, fd: int, opcode: int, arg: int, nr_args: int) -> int:
        fault = self._take("register", opcode, nr_args)
        if fault is not None and fault.errno:
            raise kernel_error(fault.errno, "io_uring_register")
        return self.inner.register(fd, opcode, arg, nr_args)

    def mmap(self, fd: int, length: int, offset: int) -> _mmap.mmap:
        return self.inner.mmap(fd, length, offset)

    def close(self, fd: int) -> None:
        self.inner.close(fd)

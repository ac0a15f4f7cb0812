"""The user side's obligations, checked by the model at every ``io_uring_enter``.

The kernel trusts user space to keep the protocol and defends only itself
(a bad tail is clamped, a bad index is dropped); a user-side bug shows up
as lost or duplicated work much later.  The model checks instead, and says
which rule was broken and where:

1. **The SQ tail stays within ``head + sq_entries``**: more would publish
   slots the kernel has not consumed yet, overwriting them.
2. **A published SQE is not rewritten before the kernel consumed it**: the
   slots between the kernel's head and the tail belong to the kernel.  (The
   model can see this when an ``io_uring_enter`` left some of them
   unconsumed, ``to_submit`` smaller than what was published: it keeps a
   copy and compares at the next call.)
3. **The CQ head never passes the CQ tail**: slots past the tail hold stale
   CQEs that were never posted.
4. **Heads and tails handed to the other side are release stores** (in
   ``weak_memory()`` mode, where ``uring.barriers`` behaves as on a weakly
   ordered CPU and the model counts its fences): a new SQ tail or CQ head
   with no release fence since the previous call is reported.  The model
   sees that a fence ran between the two calls, not that it ran between the
   SQE writes and the tail store; it catches a forgotten fence, not a
   misplaced one.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Dict, Iterator, List, Optional

from .. import barriers

__all__ = ["FenceLog", "ProtocolViolation", "RuleChecker", "weak_memory"]

_U32 = 0xFFFFFFFF


class ProtocolViolation(Exception):
    """The user side broke a rule of the ring protocol (see ``uring.model.rules``)."""


class FenceLog:
    """Release and acquire fences counted while ``weak_memory()`` is active."""

    releases = 0
    acquires = 0
    active = False


FENCES = FenceLog()


@contextlib.contextmanager
def weak_memory() -> Iterator[FenceLog]:
    """Run the ring code as on a weakly ordered CPU: ``barriers.STRONG_ORDERING``
    is False (so every acquire/release the protocol needs is called) and
    each fence is counted, for rule 4.  The fences still run (the real
    ``full_fence``), so the code stays correct on this machine."""
    saved = (barriers.STRONG_ORDERING, barriers.release_fence, barriers.acquire_fence)
    full: Callable[[], None] = barriers.full_fence

    def release() -> None:
        FENCES.releases += 1
        full()

    def acquire() -> None:
        FENCES.acquires += 1
        full()

    barriers.STRONG_ORDERING = False
    barriers.release_fence = release
    barriers.acquire_fence = acquire
    FENCES.active = True
    try:
        yield FENCES
    finally:
        barriers.STRONG_ORDERING, barriers.release_fence, barriers.acquire_fence = saved
        FENCES.active = False


class RuleChecker:
    """What the model remembers between two calls to check the rules."""

    def __init__(self, strict: bool, sink: Optional[List[str]] = None) -> None:
        self.strict = strict
        self.violations: List[str] = []
        # The kernel's list too, which outlives the ring: a violation is
        # still there to see after the ring is closed.
        self.sink = sink
        self.cq_head = 0
        self.sq_tail = 0
        self.releases = FENCES.releases
        self.unconsumed: Dict[int, bytes] = {}  # SQ position -> the SQE bytes

    def report(self, message: str) -> None:
        self.violations.append(message)
        if self.sink is not None:
            self.sink.append(message)
        if self.strict:
            raise ProtocolViolation(message)

    def check_sq(self, head: int, tail: int, entries: int,
                 sqe_at: Callable[[int], Optional[bytes]]) -> None:
        """Rules 1, 2 and the SQ half of 4, before the kernel consumes."""
        if (tail - head) & _U32 > entries:
            self.report(f"SQ tail {tail} moved past head {head} + {entries} entries: "
                        f"{((tail - head) & _U32) - entries} unconsumed SQEs overwritten")
        for position, seen in self.unconsumed.items():
            if (position - head) & _U32 < (tail - head) & _U32 and sqe_at(position) != seen:
                self.report(f"the SQE at SQ position {position} was rewritten after it was "
                            "published and before the kernel consumed it")
        if FENCES.active and tail != self.sq_tail and FENCES.releases == self.releases:
            self.report(f"SQ tail moved {self.sq_tail} -> {tail} with no release fence: "
                        "the kernel may read the SQEs before their contents")
        self.sq_tail = tail

    def remember_unconsumed(self, head: int, tail: int,
                            sqe_at: Callable[[int], Optional[bytes]]) -> None:
        """After consuming: keep copies of what was published but left in the ring."""
        self.unconsumed = {}
        for i in range((tail - head) & _U32):
            position = (head + i) & _U32
            sqe = sqe_at(position)
            if sqe is not None:
                self.unconsumed[position] = sqe

    def check_cq(self, head: int, tail: int) -> None:
        """Rule 3 and the CQ half of 4."""
        if (head - self.cq_head) & _U32 > (tail - self.cq_head) & _U32:
            self.report(f"CQ head {head} moved past the CQ tail {tail} "
                        f"(it was {self.cq_head}): CQEs never posted were consumed")
        if FENCES.active and head != self.cq_head and FENCES.releases == self.releases:
            self.report(f"CQ head moved {self.cq_head} -> {head} with no release fence: "
                        "the kernel may overwrite CQEs still being read")
        self.cq_head = head

    def end_of_call(self) -> None:
        self.releases = FENCES.releases

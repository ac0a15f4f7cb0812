"""Differential tests: hypothesis generates ring programs and runs each on
``uring.model`` and on the real kernel, comparing after every step.

Bounded for CI; ``--hypothesis-profile=long`` runs many more programs.
A failure shrinks to a minimal program and prints it.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import pytest
from conftest import require_op, require_uring
from differential import Twin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from uring import abi

FLAG_CHOICES = [0, 0, 0, int(abi.IOSQE_IO_LINK), int(abi.IOSQE_IO_HARDLINK),
                int(abi.IOSQE_IO_DRAIN), int(abi.IOSQE_CQE_SKIP_SUCCESS),
                int(abi.IOSQE_IO_LINK | abi.IOSQE_CQE_SKIP_SUCCESS)]


class RingPrograms(RuleBasedStateMachine):
    """One program: a ring shape, then preps, submits, reaps and waits."""

    twin: Optional[Twin] = None

    # Programs either use IOSQE_IO_DRAIN or timeouts, not both: when the
    # kernel lets a drained request go depends on when it *frees* the
    # requests before it (in batches, after their CQEs), which a request
    # parked on a timeout makes visible; the model lets it go when they
    # complete (NOTES.md, "The protocol as a program").
    @initialize(log_entries=st.integers(0, 3), cq_shift=st.sampled_from([None, 0, 1]),
                sq_array=st.booleans(), drain=st.booleans())
    def make(self, log_entries: int, cq_shift: Optional[int], sq_array: bool, drain: bool) -> None:
        entries = 1 << log_entries
        cq = None if cq_shift is None else entries << cq_shift
        self.twin = Twin(entries, cq, sq_array)
        self.drain = drain
        self.check(None)

    def check(self, results: Optional[List[object]]) -> None:
        assert self.twin is not None
        diffs = self.twin.differences(results)
        assert not diffs, "\n".join(diffs + ["program:"] + self.twin.log)

    @precondition(lambda self: self.twin is not None and self.twin.sq_room() > 0)
    # No writes here: a write to a disk file goes to io-wq whenever the
    # inode's mtime must change (IOCB_NOWAIT cannot), so when its CQE is
    # posted is not defined; test_writes_and_reads_one_by_one covers them.
    @rule(kind=st.sampled_from(["nop", "nop", "fail", "bad", "read", "read", "timeout"]),
          arg=st.integers(0, 16), flags=st.sampled_from(FLAG_CHOICES))
    def prep(self, kind: str, arg: int, flags: int) -> None:
        assert self.twin is not None
        if self.drain and kind == "timeout":
            kind = "nop"
        if not self.drain:
            flags &= ~int(abi.IOSQE_IO_DRAIN)
        if kind in ("read", "write"):
            arg *= 509  # offsets across the file and past its end
        elif kind == "timeout":
            arg = arg % 3 + 1
        self.twin.prep(kind, arg, flags)

    @precondition(lambda self: self.twin is not None and not self.twin.open_chain)
    @rule()
    def burst(self) -> None:
        """Fill the SQ with NOPs and submit: with a small CQ and nothing
        reaped, the CQ overflows."""
        assert self.twin is not None
        for _ in range(self.twin.sq_room()):
            self.twin.prep("nop", 0, 0)
        self.check(self.twin.submit())

    # A chain left open at the end of a submit goes to io-wq in the kernel
    # and completes at a time nobody can predict: programs end their chains.
    @precondition(lambda self: self.twin is not None and not self.twin.open_chain)
    @rule()
    def submit(self) -> None:
        assert self.twin is not None
        self.check(self.twin.submit())

    @precondition(lambda self: self.twin is not None)
    @rule(k=st.integers(1, 8))
    def reap(self, k: int) -> None:
        assert self.twin is not None
        if self.drain:
            # When the kernel lets a drained request go, relative to other
            # requests' completions, follows its allocation accounting:
            # drain programs reap whole and compare as multisets.
            self.check([sorted(r) for r in self.twin.reap(1 << 20)])
        else:
            self.check(self.twin.reap(k))

    @precondition(lambda self: self.twin is not None and self.twin.ready() > 0
                  and not self.twin.open_chain)
    @rule(data=st.data())
    def wait(self, data: st.DataObject) -> None:
        assert self.twin is not None
        n = data.draw(st.integers(1, self.twin.ready()))
        results = self.twin.wait(n)
        if self.drain:
            rest = self.twin.reap(1 << 20)
            results = [sorted(r + more) for r, more in zip(results, rest)]
        self.check(results)

    @invariant()
    def same_state(self) -> None:
        if self.twin is not None:
            self.check(None)

    def teardown(self) -> None:
        if self.twin is not None:
            self.twin.close()


# Example counts come from the profile (tests/conftest.py): "ci" by default,
# "long" with --hypothesis-profile=long.
RingPrograms.TestCase.settings = settings(
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(autouse=True)
def _kernel() -> None:
    require_uring()
    require_op(abi.IORING_OP_TIMEOUT)


TestRingPrograms = RingPrograms.TestCase


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(st.tuples(st.sampled_from(["read", "write", "read_pos", "write_pos"]),
                              st.integers(0, 20)), min_size=1, max_size=12))
def test_writes_and_reads_one_by_one(ops: List[Tuple[str, int]]) -> None:
    """Reads and writes at offsets through the file, past its end and at
    the file position (offset -1), each waited for: the same results, the
    same bytes read, the same file."""
    twin = Twin(4, None, False)
    try:
        for kind, arg in ops:
            offset = -1 if kind.endswith("_pos") else arg * 509
            twin.prep(kind.split("_")[0], offset, 0)
            twin.check_step(twin.wait_for(1))
    finally:
        twin.close()

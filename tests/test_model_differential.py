"""Differential tests: hypothesis generates ring programs and runs each on
``uring.model`` and on the real kernel, comparing after every step.

Bounded for CI; ``--hypothesis-profile=long`` runs many more programs.
A failure shrinks to a minimal program and prints it.
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Tuple

import pytest
from conftest import require_op, require_uring
from differential import FILE_SIZE, Twin, reset_patience
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import uring
from uring import abi
from uring.model import ModelKernel

FLAG_CHOICES = [0, 0, 0, int(abi.IOSQE_IO_LINK), int(abi.IOSQE_IO_HARDLINK),
                int(abi.IOSQE_IO_DRAIN), int(abi.IOSQE_CQE_SKIP_SUCCESS),
                int(abi.IOSQE_IO_LINK | abi.IOSQE_CQE_SKIP_SUCCESS)]
LINK, HARDLINK = int(abi.IOSQE_IO_LINK), int(abi.IOSQE_IO_HARDLINK)
SKIP, DRAIN = int(abi.IOSQE_CQE_SKIP_SUCCESS), int(abi.IOSQE_IO_DRAIN)
#: A read's offset is `arg * 509`: across the 8192-byte file, its last
#: bytes (a short read) and past its end (a read of 0).
READ_STEP = 509
#: How a chain member fails: an injected -EIO, a read at or past the end of
#: the file (0 bytes: short), a read of the last 192 bytes (short), or an
#: SQE refused before issue.
FAILURES = {"fail": ("fail", 0), "eof": ("read", FILE_SIZE), "past": ("read", FILE_SIZE + 1000),
            "short": ("read", FILE_SIZE - 192), "bad": ("bad", 0)}


class RingPrograms(RuleBasedStateMachine):
    """One program: a ring shape, then preps, submits, reaps and waits."""

    twin: Optional[Twin] = None

    # Programs either use IOSQE_IO_DRAIN or timeouts with a count, not both:
    # when the kernel lets a drained request go depends on when it *frees*
    # the requests before it (in batches, after their CQEs), which a request
    # parked on a timeout makes visible (6.18 can even leave a request
    # linked after such a timeout in its defer list for good); the model
    # lets it go when they complete (NOTES.md, "The protocol as a program").
    # Drain programs compare what they reap as multisets, check the drain
    # order on each side, and make the kernel wait for as many CQEs as the
    # model has: the kernel may let a drained request go after
    # io_uring_enter returned (uring.model.requests).  Their one timeout is
    # `drain_behind_a_timer`'s.
    # The CQ: the default (twice the SQ), or IORING_SETUP_CQSIZE at 1x, 2x
    # or 4x the SQ.
    @initialize(log_entries=st.integers(0, 3), cq_shift=st.sampled_from([None, 0, 1, 2]),
                sq_array=st.booleans(), drain=st.booleans(), timer_first=st.booleans())
    def make(self, log_entries: int, cq_shift: Optional[int], sq_array: bool, drain: bool,
             timer_first: bool) -> None:
        entries = 1 << log_entries
        cq = None if cq_shift is None else entries << cq_shift
        self.twin = Twin(entries, cq, sq_array)
        self.sq_array = sq_array
        self.drain = drain
        self.members = [("nop", 0), ("read", 0), ("read", 3 * READ_STEP)] + ([] if drain else [("timeout", 1)])
        self.check(None)
        if drain and timer_first and entries >= 2:  # (as a rule it may be left out: swarm testing)
            self.check([sorted(r) for r in self.twin.drain_behind_a_timer("nop", entries - 2)])

    def check(self, results: Optional[List[object]]) -> None:
        assert self.twin is not None
        diffs = self.twin.differences(results)
        assert not diffs, "\n".join(diffs + ["program:"] + self.twin.log)

    def _flags(self, flags: int) -> int:
        return flags if self.drain else flags & ~DRAIN

    @precondition(lambda self: self.twin is not None and self.twin.sq_room() > 0)
    # No writes here: a write to a disk file goes to io-wq whenever the
    # inode's mtime must change (IOCB_NOWAIT cannot), so when its CQE is
    # posted is not defined; test_writes_and_reads_one_by_one covers them.
    @rule(kind=st.sampled_from(["nop", "nop", "fail", "bad", "read", "read", "timeout"]),
          arg=st.integers(0, 20), flags=st.sampled_from(FLAG_CHOICES))
    def prep(self, kind: str, arg: int, flags: int) -> None:
        assert self.twin is not None
        if self.drain and kind == "timeout":
            kind = "nop"
        if kind == "read":
            arg *= READ_STEP  # offsets across the file and past its end
        elif kind == "timeout":
            arg = arg % 3 + 1
        self.twin.prep(kind, arg, self._flags(flags))

    @precondition(lambda self: self.twin is not None and self.twin.sq_room() >= 2
                  and not self.twin.open_chain)
    @rule(data=st.data())
    def chain(self, data: st.DataObject) -> None:
        """A chain of 2 to 4 members, one of which fails: with IO_LINK the
        members after it are cancelled, with IO_HARDLINK they go on."""
        assert self.twin is not None
        n = data.draw(st.integers(2, min(4, self.twin.sq_room())), label="members")
        failing = data.draw(st.integers(0, n - 2), label="failing member")  # members follow it
        how = data.draw(st.sampled_from(sorted(FAILURES)), label="failure")
        for i in range(n):
            link = data.draw(st.sampled_from([LINK, LINK, HARDLINK])) if i < n - 1 else 0
            extra = data.draw(st.sampled_from([0, 0, 0, SKIP, DRAIN]))
            if i == failing:
                kind, arg = FAILURES[how]
            else:
                kind, arg = data.draw(st.sampled_from(self.members))
            self.twin.prep(kind, arg, self._flags(link | extra))
        if data.draw(st.booleans(), label="submit now"):
            self.check(self.twin.submit())

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

    @precondition(lambda self: self.twin is not None and not self.twin.open_chain
                  and self.twin.sq_room() + len(self.twin.pending()) >= 2)
    @rule(data=st.data())
    def submit_some(self, data: st.DataObject) -> None:
        """``to_submit`` smaller than what is published (a few more SQEs are
        prepared first if needed), cut between chains (a chain cut in two
        goes to io-wq in the kernel, see above)."""
        assert self.twin is not None
        room = self.twin.sq_room()
        more = data.draw(st.integers(max(0, 2 - len(self.twin.pending())), min(room, 3)), label="more SQEs")
        for _ in range(more):
            kind, arg = data.draw(st.sampled_from([("nop", 0), ("fail", 0), ("read", 0), ("bad", 0)]))
            self.twin.prep(kind, arg, 0)
        pending = self.twin.pending()
        cuts = [i + 1 for i, ud in enumerate(pending[:-1]) if not self.twin.prepped[ud][1] & (LINK | HARDLINK)]
        if cuts:
            self.check(self.twin.submit_some(data.draw(st.sampled_from(cuts), label="to_submit")))

    @precondition(lambda self: self.twin is not None and self.sq_array and not self.twin.open_chain
                  and self.twin.sq_room() > 0)
    @rule()
    def submit_bad_index(self) -> None:
        """An SQ array entry past the SQE array: dropped, counted in sq_dropped."""
        assert self.twin is not None
        self.check(self.twin.submit_bad_index())

    @precondition(lambda self: self.twin is not None and self.drain and not self.twin.open_chain
                  and self.twin.sq_entries() >= 2)
    @rule(kind=st.sampled_from(["nop", "read", "fail"]), followers=st.integers(0, 2))
    def drain_behind_a_timer(self, kind: str, followers: int) -> None:
        """A short timer, then a drained request and *followers* NOPs: all
        wait for the timer, on both sides, and come in drain order.  What
        is prepared is submitted and everything reaped first."""
        assert self.twin is not None
        for _ in range(4):  # a batch stopped by a refused SQE leaves the rest
            if not self.twin.pending():
                break
            self.check(self.twin.submit())
        self.check([sorted(r) for r in self.twin.reap_settled()])
        if self.twin.pending():
            return
        followers = min(followers, self.twin.sq_room() - 2)
        self.check([sorted(r) for r in self.twin.drain_behind_a_timer(kind, followers)])

    @precondition(lambda self: self.twin is not None)
    @rule(k=st.integers(1, 8))
    def reap(self, k: int) -> None:
        assert self.twin is not None
        if self.drain:
            self.check([sorted(r) for r in self.twin.reap_settled()])
        else:
            self.check(self.twin.reap(k))

    @precondition(lambda self: self.twin is not None and self.twin.ready() > 0
                  and not self.twin.open_chain)
    @rule(data=st.data())
    def wait(self, data: st.DataObject) -> None:
        assert self.twin is not None
        if self.drain:
            # A wait submits what is prepared, then reaps: here a submit and
            # a settled reap.  (Ring.wait on the kernel would go round and
            # submit again while a late drained CQE is awaited: more SQEs
            # consumed than on the model, whose CQEs were all there.)
            self.check(self.twin.submit())
            self.check([sorted(r) for r in self.twin.reap_settled()])
            return
        self.check(self.twin.wait(data.draw(st.integers(1, self.twin.ready()))))

    @invariant()
    def same_state(self) -> None:
        if self.twin is not None:
            self.check(None)

    def teardown(self) -> None:
        if self.twin is not None:
            self.twin.close()


# Example counts come from the profile (tests/conftest.py): "ci" by default,
# "long" with --hypothesis-profile=long.
# A failure in CI: shrink the first bug found (free to slip to a smaller
# one) and skip the explain phase, so a failing run reports in well under a
# minute rather than shrinking every distinct failure and explaining each.
# The long profile keeps all of that.
FAILING_FAST = {} if settings.get_current_profile_name() == "long" else {
    "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    "report_multiple_bugs": False,
}
RingPrograms.TestCase.settings = settings(
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much], **FAILING_FAST,
)


@pytest.fixture(autouse=True)
def _kernel() -> Iterator[None]:
    require_uring()
    require_op(abi.IORING_OP_TIMEOUT)
    # Each test starts with full patience; once one of its programs failed,
    # the shrinker's reruns wait less (tests/differential.py, PATIENCE).
    reset_patience()
    yield
    reset_patience()


TestRingPrograms = RingPrograms.TestCase


def _timer_then_drain(kernel: Optional[ModelKernel]) -> Tuple[List[int], List[int]]:
    """A 50 ms timer, a NOP with IOSQE_IO_DRAIN, a NOP: what a reap right
    after the submit finds, then what a wait for the rest brings."""
    with uring.Ring(4, kernel=kernel) as ring:
        ring.prep_timeout(0.05, 0, user_data=1)
        ring.prep_nop(2, flags=abi.IOSQE_IO_DRAIN)
        ring.prep_nop(3)
        ring.submit()
        early = [c.user_data for c in ring.reap()]
        rest = [c.user_data for c in ring.wait(3 - len(early), timeout=5.0)]
        return early, rest


def test_a_drained_request_waits_for_a_timer() -> None:
    """Drain holds everything submitted with or after it until the timer
    before it fired: on the model nothing is there at first (its clock moves
    only in the wait); on the kernel at most a prefix of the same order (a
    slow machine may reap after the 50 ms); then timer, drained, last."""
    model, real = _timer_then_drain(ModelKernel()), _timer_then_drain(None)
    assert model == ([], [1, 2, 3])
    early, rest = real
    assert early + rest == [1, 2, 3] and early == [1, 2, 3][:len(early)], real


@settings(suppress_health_check=[HealthCheck.too_slow], **FAILING_FAST)
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

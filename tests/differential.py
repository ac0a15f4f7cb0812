"""A program run on two kernels at once: the model and the real one.

``Twin`` holds a ``uring.Ring`` on each, made with the same arguments, and
applies every step to both; ``differences()`` lists what differs after the
step: the ring's shared words, the CQEs reaped (in order: the model follows
the order 6.x posts them in for these opcodes, see
``uring.model.requests``), the data read into buffers and the file.  It
also checks, on each side on its own, that every CQE of a request drained
with ``IOSQE_IO_DRAIN`` comes after the CQEs of everything submitted
before it.

Timing: the model completes everything that can complete before
``io_uring_enter`` returns; the kernel may post some of it a moment later
(task work, and a request let go from behind a drain, which 6.18 may
issue only after enter returned).  ``settle`` gives the kernel that moment
before words are compared, and ``reap_settled`` makes the
kernel side *wait* for as many CQEs as the model has (its CQ and its
overflow list): with a full CQ the words can agree while a late CQE is
still on its way to the kernel's overflow list.  (Not with ``Ring.wait``:
it goes round, submitting what is prepared, for as long as CQEs are
missing; a late CQE would make the kernel side consume more SQEs.)
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
from typing import Any, Dict, List, Optional, Set, Tuple

import uring
from uring import abi
from uring.model import ModelKernel

FILE_SIZE = 8192
SKIP = int(abi.IOSQE_CQE_SKIP_SUCCESS)
DRAIN = int(abi.IOSQE_IO_DRAIN)
LINKS = int(abi.IOSQE_IO_LINK | abi.IOSQE_IO_HARDLINK)
#: A drained request that ends with one of these was refused before it was
#: issued (or cancelled with a chain refused whole): it never waited.
_NOT_DRAINED = (-errno.EINVAL, -errno.EOPNOTSUPP, -errno.ECANCELED)

#: How long the kernel is given to post what the model posted at once
#: (``settle``).  Only a step whose words differ waits; a difference that
#: persists this long is a failure.  Once one has (a program failed and
#: hypothesis is shrinking it), later settles are shorter: a late CQE can
#: only make a rerun fail sooner, never pass.
PATIENCE = 0.25
PATIENCE_AFTER_A_FAILURE = 0.03
#: How long the kernel side waits for the CQEs the model already has.
REAP_PATIENCE = 2.0
_failed_once = False


def reset_patience() -> None:
    """Full patience again (each test starts with it)."""
    global _failed_once
    _failed_once = False


def _note_failure() -> None:
    global _failed_once
    _failed_once = True


def words(r: uring.Ring) -> Tuple[int, ...]:
    return (r.sq_head, r.sq_tail, r.cq_head, r.cq_tail,
            int(r.sq_flags) & int(abi.IORING_SQ_CQ_OVERFLOW), r.cq_overflow, r.sq_dropped)


class Side:
    def __init__(self, kernel: Optional[ModelKernel], fd: int, ring_args: Dict[str, Any]) -> None:
        self.kernel = kernel
        self.fd = fd
        self.ring = uring.Ring(kernel=kernel, **ring_args)
        self.buffers: Dict[int, bytearray] = {}

    def file_bytes(self) -> bytes:
        if self.kernel is not None:
            return self.kernel.file_data(self.fd)
        return os.pread(self.fd, 1 << 20, 0)


class Twin:
    """The same ring on the model and on the real kernel."""

    def __init__(self, entries: int, cq_entries: Optional[int], sq_array: bool) -> None:
        content = bytes((i * 31 + 7) & 0xFF for i in range(FILE_SIZE))
        # A disk file with its pages cached: reads and writes complete
        # inline (on tmpfs a first read may go to io-wq and finish later).
        # Unlinked at once: the fd keeps it, and no program leaves it behind
        # (a failing or shrinking run may never reach close()).
        real_fd, path = tempfile.mkstemp(dir="/var/tmp" if os.path.isdir("/var/tmp") else None)
        os.unlink(path)
        os.pwrite(real_fd, content, 0)
        os.pread(real_fd, FILE_SIZE, 0)
        self.model_kernel = ModelKernel()
        args: Dict[str, Any] = {"entries": entries, "cq_entries": cq_entries, "sq_array": sq_array}
        self.sides = [Side(self.model_kernel, self.model_kernel.add_file(content), args),
                      Side(None, real_fd, args)]
        self.next_ud = 1
        self.open_chain = False  # the last SQE prepared asks to link to the next
        self.reaped: set = set()
        self.log: List[str] = []
        self.prepped: Dict[int, Tuple[str, int]] = {}  # user_data -> (kind, SQE flags)
        self.first_skip: Optional[int] = None  # user_data of the first SKIP_SUCCESS SQE
        # Per side: drained requests whose CQE was seen, and drain-order breaks.
        self.drained_seen: List[Set[int]] = [set(), set()]
        self.order_errors: List[str] = []

    # -- steps -------------------------------------------------------------------

    def prep(self, kind: str, arg: int, sqe_flags: int) -> None:
        ud = self.next_ud
        self.next_ud += 1
        self.open_chain = bool(sqe_flags & LINKS)
        self.prepped[ud] = (kind, sqe_flags)
        if sqe_flags & SKIP and self.first_skip is None:
            self.first_skip = ud
        self.log.append(f"prep {kind}({arg}) flags={abi.IosqeFlags(sqe_flags)!r} ud={ud}")
        for side in self.sides:
            r = side.ring
            if kind == "nop":
                r.prep_nop(ud, flags=sqe_flags)
            elif kind == "fail":  # a NOP that completes with -EIO
                r.prep(abi.IORING_OP_NOP, op_flags=abi.IORING_NOP_INJECT_RESULT,
                       len=(-errno.EIO) & 0xFFFFFFFF, user_data=ud, flags=sqe_flags)
            elif kind == "bad":  # refused before issue: NOP flags no kernel knows
                r.prep(abi.IORING_OP_NOP, op_flags=1 << 7, user_data=ud, flags=sqe_flags)
            elif kind == "read":
                buf = side.buffers[ud] = bytearray(512)
                r.prep_read(side.fd, buf, arg, ud, flags=sqe_flags)
            elif kind == "write":
                r.prep_write(side.fd, bytes([ud & 0xFF]) * 256, arg, ud, flags=sqe_flags)
            elif kind == "timeout":  # completes after `arg` other CQEs (never by time)
                r.prep_timeout(1000.0, arg, ud, flags=sqe_flags)
            else:
                raise ValueError(kind)

    def submit(self) -> List[Any]:
        self.log.append("submit")
        results = [s.ring.submit() for s in self.sides]
        self.settle()
        return results

    def pending(self) -> List[int]:
        """user_data of the SQEs prepared and not yet consumed, in SQ order
        (user_data grows with SQ position, from 1)."""
        return list(range(self.sides[0].ring.sq_head + 1, self.next_ud))

    def submit_some(self, count: int) -> List[Any]:
        """``io_uring_enter(to_submit=count)`` with more than *count* SQEs
        published: the kernel takes at most *count*, the rest wait."""
        self.log.append(f"submit {count} of {len(self.pending())}")
        results = []
        for s in self.sides:
            r = s.ring
            r._publish()
            results.append(r._enter(count, 0, r._getevents_flags(0)))
        self.settle()
        return results

    def submit_bad_index(self) -> List[Any]:
        """Prepare a NOP whose SQ array entry names no SQE, and submit: the
        kernel drops it (``sq_dropped``) and stops the batch there; what was
        queued behind it waits for the next submit."""
        ud = self.next_ud
        self.prep("nop", 0, 0)
        self.log[-1] += " (its SQ array entry made invalid)"
        self.log.append("submit")
        results = []
        for s in self.sides:
            r = s.ring
            pending = r._publish()
            array = r.params.sq_off.array // 4
            slot = (ud - 1) & r._sq_mask
            r._sq_u32[array + slot] = 1000 + slot
            try:
                results.append(r._enter(pending, 0, r._getevents_flags(0)))
            finally:
                r._sq_u32[array + slot] = slot  # the identity again, for the next use of the slot
        self.settle()
        return results

    def drain_behind_a_timer(self, kind: str, followers: int, timer: float = 0.02) -> List[Any]:
        """With nothing in flight and the CQ empty: a pure timer of *timer*
        seconds, a request of *kind* with ``IOSQE_IO_DRAIN`` and *followers*
        NOPs, submitted together; then each side waits for all of them (the
        model's clock jumps to the timer, the kernel's runs).  Nothing is
        compared in between: the kernel's timer runs on its own.  The drain
        holds everything until the timer's CQE, which therefore comes first."""
        ud = self.next_ud
        self.log.append(f"prep timer({timer}) flags=0 ud={ud}")
        self.next_ud += 1
        self.prepped[ud] = ("timer", 0)
        for side in self.sides:
            side.ring.prep_timeout(timer, 0, ud)
        self.prep(kind, 0, DRAIN)
        for _ in range(followers):
            self.prep("nop", 0, 0)
        n = 2 + followers
        self.log.append(f"submit, wait {n} on each side")
        model, real = self.sides[0].ring, self.sides[1].ring
        results = [[tuple(c) for c in model.wait(n, timeout=2.0)],
                   [tuple(c) for c in real.wait(n, timeout=2.0)]]
        self.settle()
        return self._note(results)

    def settle(self, patience: Optional[float] = None) -> None:
        """Give the kernel's deferred work (task work, a drained request
        issued late) time to post what the model posted at once: the model
        says what, not when.  Then the words are compared."""
        if patience is None:
            patience = PATIENCE_AFTER_A_FAILURE if _failed_once else PATIENCE
        model, real = self.sides[0].ring, self.sides[1].ring
        deadline = time.monotonic() + patience
        while words(model) != words(real):
            if time.monotonic() >= deadline:
                _note_failure()
                return
            time.sleep(0.0005)

    def reap(self, k: int) -> List[Any]:
        self.log.append(f"reap {k}")
        return self._note([[tuple(c) for c in s.ring.reap(k)] for s in self.sides])

    def reap_settled(self) -> List[Any]:
        """Reap everything on the model; on the kernel, reap and then wait
        (a while) until as many CQEs came: a late CQE cannot be missed
        because the words happened to agree before it was posted."""
        self.log.append("reap all")
        model = self.sides[0].ring
        m = [tuple(c) for c in model.reap()]
        k = self._reap_until(len(m), self._reap_patience())
        self.settle()
        return self._note([m, k])

    def _reap_until(self, n: int, patience: float) -> List[Any]:
        """Reap the kernel's ring until *n* CQEs came or *patience* ran out.
        Not ``Ring.wait``: that submits what is prepared, and a reap must
        not (the model's did not).  An ``io_uring_enter(0, 0, GETEVENTS)``
        now and then runs whatever the kernel waits to run at an enter."""
        real = self.sides[1].ring
        got = [tuple(c) for c in real.reap()]
        deadline = time.monotonic() + patience
        spins = 0
        while len(got) < n and time.monotonic() < deadline:
            time.sleep(0.0005)
            spins += 1
            if spins % 20 == 0:
                real._enter(0, 0, int(abi.IORING_ENTER_GETEVENTS))
            got += [tuple(c) for c in real.reap()]
        if len(got) < n:
            _note_failure()
        return got

    def _reap_patience(self) -> float:
        return PATIENCE_AFTER_A_FAILURE if _failed_once else REAP_PATIENCE

    def _note(self, results: List[Any]) -> List[Any]:
        if results[0] == results[1]:
            self.reaped.update(c[0] for c in results[0])
        for side, cqes in enumerate(results):
            self._check_drain_order(side, cqes)
        return results

    def _check_drain_order(self, side: int, cqes: List[Any]) -> None:
        """``IOSQE_IO_DRAIN``: a drained request starts only once everything
        submitted before it completed, so its CQE comes after theirs."""
        seen = self.drained_seen[side]
        name = ("model", "kernel")[side]
        for ud, res, *_ in cqes:
            later = [d for d in seen if d > ud]
            if later:
                self.order_errors.append(
                    f"{name}: the CQE of user_data {ud} came after that of {min(later)}, "
                    f"drained (IOSQE_IO_DRAIN) and submitted after it")
            kind, flags = self.prepped.get(ud, ("", 0))
            if (flags & DRAIN and kind != "bad" and res not in _NOT_DRAINED
                    and (self.first_skip is None or self.first_skip > ud)):
                seen.add(ud)

    def wait(self, n: int) -> List[Any]:
        self.log.append(f"wait {n}")
        model, real = self.sides[0].ring, self.sides[1].ring
        results = [[tuple(c) for c in model.wait(n, timeout=2.0)],
                   [tuple(c) for c in real.wait(n, timeout=self._reap_patience())]]
        self.settle()
        return self._note(results)

    def wait_for(self, n: int) -> List[Any]:
        """Submit and wait for *n* CQEs on each side (no timing involved)."""
        return self.wait(n)

    def check_step(self, results: List[Any]) -> None:
        diffs = self.differences(results)
        assert not diffs, "\n".join(diffs + ["program:"] + self.log)

    def ready(self) -> int:
        """CQEs the model says are available to a wait (in the CQ or its
        overflow list): waiting for no more than that never blocks."""
        model = self.sides[0].ring
        state = self.model_kernel.rings[model.fd]
        return model.cq_ready + len(state.overflow)

    def sq_entries(self) -> int:
        return self.sides[0].ring.sq_entries

    def sq_room(self) -> int:
        return min(s.ring.sq_space_left for s in self.sides)

    # -- comparison ----------------------------------------------------------------

    def differences(self, results: Optional[List[Any]] = None) -> List[str]:
        out = []
        model, real = self.sides
        if results is not None and results[0] != results[1]:
            out.append(f"results differ: model {results[0]} kernel {results[1]}")
        if words(model.ring) != words(real.ring):
            out.append(f"ring words (sq head, sq tail, cq head, cq tail, overflow flag, "
                       f"cq overflow, sq dropped) differ: model {words(model.ring)} "
                       f"kernel {words(real.ring)}")
        for ud in self.reaped:  # a read's data is compared once its CQE is in
            if ud in model.buffers and real.buffers.get(ud) != model.buffers[ud]:
                out.append(f"read buffer of user_data {ud} differs")
        if model.file_bytes() != real.file_bytes():
            out.append("file contents differ")
        out += self.order_errors
        return out

    def close(self) -> None:
        """Close both rings, then compare every read's data (a read whose
        success CQE was skipped may finish in the kernel after the submit
        that issued it: it is given a moment)."""
        model, real = self.sides
        state = self.model_kernel.rings[model.ring.fd]
        done = [ud for ud in model.buffers if ud in state.completed]
        deadline = time.monotonic() + self._reap_patience() / 2
        while any(model.buffers[ud] != real.buffers[ud] for ud in done) and time.monotonic() < deadline:
            time.sleep(0.001)
        differing = sorted(ud for ud in done if model.buffers[ud] != real.buffers[ud])
        if differing:
            _note_failure()
        # Closing cancels and waits for what is in flight, on each side in
        # its own time, so nothing is compared after; not for long: requests
        # held behind a drain waiting for a timeout's count may never
        # complete (the ring keeps their buffers alive).
        for side in self.sides:
            side.ring.close(timeout=0.02)
        try:
            assert not differing, "\n".join([f"read buffers differ at the end: {differing}", "program:"] + self.log)
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        os.close(self.sides[1].fd)

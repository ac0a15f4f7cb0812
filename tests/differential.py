"""A program run on two kernels at once: the model and the real one.

``Twin`` holds a ``uring.Ring`` on each, made with the same arguments, and
applies every step to both; ``differences()`` lists what differs after the
step: the ring's shared words, the CQEs reaped (in order: the model follows
the order 6.x posts them in for these opcodes, see
``uring.model.requests``), the data read into buffers and the file.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

import uring
from uring import abi
from uring.model import ModelKernel

FILE_SIZE = 8192
SKIP = int(abi.IOSQE_CQE_SKIP_SUCCESS)


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
        fd, self._path = tempfile.mkstemp(dir="/var/tmp" if os.path.isdir("/var/tmp") else None)
        os.close(fd)
        with open(self._path, "wb") as f:
            f.write(content)
        real_fd = os.open(self._path, os.O_RDWR)
        os.pread(real_fd, FILE_SIZE, 0)
        self.model_kernel = ModelKernel()
        args: Dict[str, Any] = {"entries": entries, "cq_entries": cq_entries, "sq_array": sq_array}
        self.sides = [Side(self.model_kernel, self.model_kernel.add_file(content), args),
                      Side(None, real_fd, args)]
        self.next_ud = 1
        self.open_chain = False  # the last SQE prepared asks to link to the next
        self.reaped: set = set()
        self.log: List[str] = []

    # -- steps -------------------------------------------------------------------

    def prep(self, kind: str, arg: int, sqe_flags: int) -> None:
        ud = self.next_ud
        self.next_ud += 1
        self.open_chain = bool(sqe_flags & (abi.IOSQE_IO_LINK | abi.IOSQE_IO_HARDLINK))
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

    def settle(self, patience: float = 0.25) -> None:
        """Give the kernel's deferred work (task work, a drained request
        issued late) time to post what the model posted at once: the model
        says what, not when.  Then the words are compared."""
        model, real = self.sides[0].ring, self.sides[1].ring
        deadline = time.monotonic() + patience
        while words(model) != words(real) and time.monotonic() < deadline:
            time.sleep(0.001)

    def reap(self, k: int) -> List[Any]:
        self.log.append(f"reap {k}")
        return self._note([[tuple(c) for c in s.ring.reap(k)] for s in self.sides])

    def _note(self, results: List[Any]) -> List[Any]:
        if results[0] == results[1]:
            self.reaped.update(c[0] for c in results[0])
        return results

    def wait(self, n: int) -> List[Any]:
        self.log.append(f"wait {n}")
        results = [[tuple(c) for c in s.ring.wait(n, timeout=2.0)] for s in self.sides]
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
        return out

    def close(self) -> None:
        """Close both rings, then compare every read's data (a read whose
        success CQE was skipped may finish in the kernel after the submit
        that issued it: it is given a moment)."""
        model, real = self.sides
        state = self.model_kernel.rings[model.ring.fd]
        done = [ud for ud in model.buffers if ud in state.completed]
        deadline = time.monotonic() + 1.0
        while any(model.buffers[ud] != real.buffers[ud] for ud in done) and time.monotonic() < deadline:
            time.sleep(0.001)
        differing = sorted(ud for ud in done if model.buffers[ud] != real.buffers[ud])
        for side in self.sides:
            # (Closing waits: the model's clock then jumps to the long
            # timeouts, the kernel's does not, so nothing is compared after.)
            side.ring.close(timeout=0.5)
        try:
            assert not differing, "\n".join([f"read buffers differ at the end: {differing}", "program:"] + self.log)
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        os.close(self.sides[1].fd)
        os.unlink(self._path)

"""The requests the model runs, and what each opcode does.

Everything completes at once except a timeout (it waits on the model's
clock), a request deferred behind ``IOSQE_IO_DRAIN``, and the members of a
chain waiting for the one before them.  *When* a completion is posted is
the one place where the kernel's behaviour depends on the path a request
took; the model follows what 6.x does for these opcodes, and says so:

- ``NOP``, ``READ``/``WRITE``/``READV``/``WRITEV``, ``TIMEOUT_REMOVE`` and
  ``ASYNC_CANCEL`` complete *inline*: their CQEs are posted, in submission
  order, when the submit batch ends (``io_submit_flush_completions``).  A
  read or write does so in the kernel only when it can finish without
  blocking (a page-cache hit; a write that needs no timestamp update);
  otherwise it goes to io-wq and completes later, at a time the model does
  not try to predict;
- ``FSYNC`` (which the kernel always hands to io-wq) and a request issued
  late (a chain's next member, a timeout that fires) complete through
  *task work*, which runs after the batch's inline completions and before
  ``io_uring_enter`` returns.

**A drained request: a timing choice.**  The model lets a request held
behind ``IOSQE_IO_DRAIN`` go as soon as nothing submitted before it is in
flight, through the same task work, so it completes *before the
io_uring_enter that made that so returns* (the submit, or the wait that
fired a timeout).  The kernel (6.18) may complete it later: it lets the
request go only once the requests before it are *freed*
(``nr_req_allocated`` against ``nr_drained``; a request is freed in a batch
a moment after its CQE is posted), and the drained request can then be
issued and posted after ``io_uring_enter`` returned, with no further call.
What the model posts, and in which order relative to the drain, is what the
kernel posts; when is "at the latest, once the kernel catches up".  The
differential tests therefore make the kernel side *wait* for as many CQEs
as the model has, rather than compare at once (``tests/differential.py``).
A request parked on a timeout makes the difference more than a delay (on
6.18 a request linked after a timeout that fired by its count, on a ring
that drained before, was seen to stay in the defer list until the ring
closed), so the random programs do not mix drains and timeouts with
counts.
"""

from __future__ import annotations

from typing import Any, List, Optional

from .. import abi

__all__ = ["ModelFile", "Req", "SQE64", "parse_sqe"]

#: ``io_uring_sqe``: opcode, flags, ioprio, fd, off, addr, len, op_flags,
#: user_data, buf_index, personality, splice_fd_in, addr3, pad: the one
#: layout, ``abi.SQE_STRUCT`` (``off`` unsigned: -1 reads as ``2**64 - 1``).
SQE64 = abi.SQE_STRUCT

_LINK_FLAGS = int(abi.IOSQE_IO_LINK | abi.IOSQE_IO_HARDLINK)
_VALID_SQE_FLAGS = (1 << len(abi.IosqeBit)) - 1


class ModelFile:
    """A regular file in memory: its bytes and a file position (for offset -1)."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = bytearray(data)
        self.pos = 0


class Req:
    """One request between its SQE and its final CQE."""

    def __init__(self, seq: int, fields: tuple) -> None:
        (self.opcode, self.flags, self.ioprio, self.fd, self.off, self.addr, self.len,
         self.op_flags, self.user_data, self.buf_index, self.personality,
         self.file_index, self.addr3, _) = fields
        self.seq = seq                  # submission order, for IOSQE_IO_DRAIN
        self.next: Optional[Req] = None  # the next member of its chain
        self.init_error = 0             # an error found before issue
        self.expected: Optional[int] = None  # READ/WRITE: the length asked for
        self.deadline: Optional[int] = None  # TIMEOUT: model-clock ns
        self.target_seq: Optional[int] = None  # TIMEOUT with a count
        self.done = False

    @property
    def linked(self) -> bool:
        return bool(self.flags & _LINK_FLAGS)

    @property
    def hard(self) -> bool:
        return bool(self.flags & abi.IOSQE_IO_HARDLINK)

    @property
    def skip_success(self) -> bool:
        return bool(self.flags & abi.IOSQE_CQE_SKIP_SUCCESS)

    def chain(self) -> List["Req"]:
        out, r = [], self
        while r is not None:
            out.append(r)
            r = r.next  # type: ignore[assignment]
        return out

    def __repr__(self) -> str:
        return f"<Req {abi.IoringOp(self.opcode).name} user_data={self.user_data}>"


def parse_sqe(raw: Any, seq: int) -> Req:
    return Req(seq, SQE64.unpack_from(raw, 0))


def valid_sqe_flags(flags: int) -> bool:
    return not flags & ~_VALID_SQE_FLAGS

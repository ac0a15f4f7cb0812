"""``ModelKernel``: the kernel's side of io_uring as a small Python program,
behind the same ``Kernel`` seam as the real one, so ``uring.Ring`` runs
against either without knowing which.

The shared memory is real: each ring is a ``memfd`` mapped twice, once by
the model (its "kernel mapping") and once by the ring through
``Kernel.mmap``, exactly as user space and kernel share pages.  The model
reads the SQ tail and the CQ head the user wrote there and writes the SQ
head, the CQEs, the CQ tail and the flags, at the offsets
``io_uring_params`` announced (``uring.model.layout``).

Time is a model clock, not the wall clock: it moves only when an
``io_uring_enter`` would otherwise sleep, jumping to the next timeout, so
a test never waits and never races.  A wait that nothing could ever end
(no timeout armed, no wait timeout) raises ``ModelDeadlock`` where the
kernel would sleep until a signal.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from .. import abi
from ..syscalls import Kernel
from . import layout as L
from .requests import ModelFile, Req, parse_sqe, valid_sqe_flags
from .rules import RuleChecker

__all__ = ["MODELED_OPS", "ModelDeadlock", "ModelKernel", "ModelRing"]

_U32 = 0xFFFFFFFF
_W = struct.Struct("<I")
_CQE = abi.CQE_STRUCT
_SETUP_MODELED = int(abi.IORING_SETUP_CQSIZE | abi.IORING_SETUP_CLAMP | abi.IORING_SETUP_NO_SQARRAY
                     | abi.IORING_SETUP_SUBMIT_ALL)
#: The features the model claims are the ones it implements, a subset of
#: what 6.18 reports (which adds CUR_PERSONALITY, FAST_POLL, POLL_32BITS,
#: SQPOLL_NONFIXED, NATIVE_WORKERS, RSRC_TAGS, LINKED_FILE, REG_REG_RING,
#: RECVSEND_BUNDLE, MIN_TIMEOUT, RW_ATTR, NO_IOWAIT): code that checks a
#: feature before using it takes the path the model can run.
_FEATURES = int(abi.IORING_FEAT_SINGLE_MMAP | abi.IORING_FEAT_NODROP | abi.IORING_FEAT_SUBMIT_STABLE
                | abi.IORING_FEAT_RW_CUR_POS | abi.IORING_FEAT_EXT_ARG | abi.IORING_FEAT_CQE_SKIP)
_ENTER_MODELED = int(abi.IORING_ENTER_GETEVENTS | abi.IORING_ENTER_EXT_ARG)
_OP = abi.IoringOp
MODELED_OPS = frozenset(int(op) for op in (
    _OP.IORING_OP_NOP, _OP.IORING_OP_READ, _OP.IORING_OP_WRITE, _OP.IORING_OP_READV,
    _OP.IORING_OP_WRITEV, _OP.IORING_OP_FSYNC, _OP.IORING_OP_TIMEOUT,
    _OP.IORING_OP_TIMEOUT_REMOVE, _OP.IORING_OP_ASYNC_CANCEL,
))
_NOP_MODELED = int(abi.IORING_NOP_INJECT_RESULT | abi.IORING_NOP_FILE | abi.IORING_NOP_TW)
_TIMEOUT_MODELED = int(abi.IORING_TIMEOUT_ABS | abi.IORING_TIMEOUT_ETIME_SUCCESS
                       | abi.IORING_TIMEOUT_BOOTTIME | abi.IORING_TIMEOUT_REALTIME)
_INLINE = frozenset(int(op) for op in (_OP.IORING_OP_NOP, _OP.IORING_OP_TIMEOUT_REMOVE,
                                       _OP.IORING_OP_ASYNC_CANCEL))
_RW = frozenset(int(op) for op in (_OP.IORING_OP_READ, _OP.IORING_OP_WRITE,
                                   _OP.IORING_OP_READV, _OP.IORING_OP_WRITEV))


class ModelDeadlock(RuntimeError):
    """``io_uring_enter`` was asked to wait for completions that nothing
    in flight can produce: the real kernel would sleep until a signal."""


class ModelRing:
    """One ring's kernel-side state."""

    def __init__(self, kernel: "ModelKernel", p: abi.io_uring_params, entries: int,
                 strict: bool, violations: List[str]) -> None:
        flags = int(p.flags)
        sq, cq = L.ring_sizes(entries, flags, int(p.cq_entries))
        self.layout = lay = L.Layout(sq, cq, flags)
        self.kernel = kernel
        self.flags = flags
        self.rings_bytes = -(-lay.rings_size // mmap.PAGESIZE) * mmap.PAGESIZE
        self.fd = os.memfd_create("io_uring model", 0)
        os.ftruncate(self.fd, self.rings_bytes + lay.sqes_size)
        self.mem = mmap.mmap(self.fd, self.rings_bytes + lay.sqes_size)
        self.sqes_at = self.rings_bytes
        for off, value in ((L.SQ_RING_MASK, sq - 1), (L.CQ_RING_MASK, cq - 1),
                           (L.SQ_RING_ENTRIES, sq), (L.CQ_RING_ENTRIES, cq)):
            self._store(off, value)
        self.cached_sq_head = 0
        self.cached_cq_tail = 0
        self.overflow: Deque[Tuple[int, int, int]] = deque()
        self.task_work: Deque[Callable[[], None]] = deque()
        self.chain_work: List[Callable[[], None]] = []  # queued at the next commit
        self.completed: set = set()  # user_data of every request that completed
        self.inflight: Dict[int, Req] = {}  # by submission seq
        self.timeouts: List[Req] = []       # armed, in arming order
        self.deferred: List[Req] = []       # waiting behind a drain
        self.cq_timeouts = 0
        self.cq_last_tm_flush = 0
        self.clock = 0                      # model time, ns
        self.seq = 0
        self.link_head: Optional[Req] = None
        self.link_last: Optional[Req] = None
        self.drain_next = False
        self.drain_disabled = False
        self.drain_active = False
        self.batching = False
        # Completions of the current batch (a submit, a run of task work),
        # posted together when it ends (the kernel's deferred completions).
        self.inline: List[Tuple[Req, int]] = []
        self.rules = RuleChecker(strict, violations)  # the kernel's list, kept after close
        p.sq_entries, p.cq_entries, p.features = sq, cq, _FEATURES
        lay.fill(p)

    # -- shared words ----------------------------------------------------------

    def load(self, off: int) -> int:
        """A shared ring word (``u32`` at byte *off* of the ring memory)."""
        return _W.unpack_from(self.mem, off)[0]  # type: ignore[no-any-return]

    def _store(self, off: int, value: int) -> None:
        _W.pack_into(self.mem, off, value & _U32)

    def _set_sq_flag(self, bit: int, on: bool) -> None:
        word = self.load(L.SQ_FLAGS)
        self._store(L.SQ_FLAGS, word | bit if on else word & ~bit)

    def _sqe_index(self, position: int) -> Optional[int]:
        """Which SQE the SQ position names (through the SQ array unless
        ``NO_SQARRAY``); None for an index past the SQE array."""
        lay = self.layout
        slot = position & (lay.sq_entries - 1)
        if lay.no_sqarray:
            return slot
        index = self.load(lay.sq_array + 4 * slot)
        return index if index < lay.sq_entries else None

    def _sqe_bytes(self, position: int) -> Optional[bytes]:
        index = self._sqe_index(position)
        if index is None:
            return None
        at = self.sqes_at + index * self.layout.sqe_size
        return bytes(self.mem[at: at + self.layout.sqe_size])

    # -- submission: io_submit_sqes ------------------------------------------------

    def submit(self, to_submit: int) -> int:
        """Consume up to *to_submit* SQEs from the kernel's head; returns how
        many were taken (an SQE that fails before issue stops the batch,
        counted, unless ``IORING_SETUP_SUBMIT_ALL``; an invalid SQ array
        index is consumed, counted in ``sq_dropped``, and stops it uncounted)."""
        tail = self.load(L.SQ_TAIL)
        head = self.cached_sq_head
        self.rules.check_sq(head, tail, self.layout.sq_entries, self._sqe_bytes)
        # io_sqring_entries: never more than the ring holds, whatever the
        # tail says (a tail past head + sq_entries is rule 1's business).
        available = min((tail - head) & _U32, self.layout.sq_entries)
        left = total = min(to_submit, available)
        self.batching = True
        self.inline = []
        while left:
            position = self.cached_sq_head
            self.cached_sq_head = (position + 1) & _U32
            raw = self._sqe_bytes(position)
            if raw is None:
                self._store(L.SQ_DROPPED, self.load(L.SQ_DROPPED) + 1)
                break
            if self._submit_one(parse_sqe(raw, self.seq)) and not self.flags & abi.IORING_SETUP_SUBMIT_ALL:
                left -= 1
                break
            self.seq += 1
            left -= 1
        if self.link_head is not None:  # a chain not ended in this batch goes as it is
            head_req, self.link_head = self.link_head, None
            self._queue(head_req)
        self.batching = False
        # io_submit_state_end: post the batch's inline completions, in order,
        # then publish the new SQ head (release: we are done with those SQEs).
        for req, res in self.inline:
            self._complete(req, res)
        self.inline = []
        self._commit()
        self._store(L.SQ_HEAD, self.cached_sq_head)
        self.rules.remember_unconsumed(self.cached_sq_head, tail, self._sqe_bytes)
        self.run_task_work()
        return total - left

    def _submit_one(self, req: Req) -> int:
        """``io_submit_sqe``: prepare, then queue or add to the chain being
        built.  Returns an errno when the batch must stop here."""
        self.seq = req.seq
        self.inflight[req.seq] = req
        err = self._prep(req)
        if err:
            return self._fail_init(req, err)
        if self.link_head is not None:
            self.link_last.next = req  # type: ignore[union-attr]
            self.link_last = req
            if req.flags & abi.IOSQE_IO_DRAIN:
                self.link_head.flags |= abi.IOSQE_IO_DRAIN
                self.drain_next = True
            if not req.linked:
                head, self.link_head = self.link_head, None
                self._queue(head)
        else:
            if self.drain_next:
                req.flags |= abi.IOSQE_IO_DRAIN
                self.drain_next = False
            if req.linked:
                self.link_head = self.link_last = req
            else:
                self._queue(req)
        return 0

    def _fail_init(self, req: Req, err: int) -> int:
        """``io_submit_fail_init``: an SQE refused before issue.  Inside a
        chain, the chain's head is failed with ``-ECANCELED`` and the chain
        goes on collecting members until it ends, then fails whole; the
        batch stops after the SQE that ended it.  A refused SQE that asks to
        link starts a failed chain of its own.  Otherwise it completes with
        its error and the batch stops (counting it)."""
        req.init_error = err
        head = self.link_head
        if head is not None:
            if not head.init_error:
                head.init_error = errno.ECANCELED
            self.link_last.next = req  # type: ignore[union-attr]
            self.link_last = req
            if req.linked:
                return 0
            self.link_head = None
            self._queue(head)
            return err
        if req.linked:
            self.link_head = self.link_last = req
            return 0
        self._complete_inline(req, -err)
        return err

    def _prep(self, req: Req) -> int:
        """What ``io_init_req`` and the opcode's ``prep`` refuse: an errno, or 0."""
        if req.opcode >= abi.IORING_OP_LAST:
            return errno.EINVAL
        if not valid_sqe_flags(req.flags):
            return errno.EINVAL
        # IOSQE_CQE_SKIP_SUCCESS and IOSQE_IO_DRAIN do not mix: once the ring
        # has seen a skip, drain can no longer count completions.
        if req.flags & abi.IOSQE_CQE_SKIP_SUCCESS:
            self.drain_disabled = True
        if req.flags & abi.IOSQE_IO_DRAIN:
            if self.drain_disabled:
                return errno.EOPNOTSUPP
            self.drain_active = True  # io_init_drain
        if req.opcode not in MODELED_OPS:
            raise NotImplementedError(f"{abi.IoringOp(req.opcode).name} is not modeled")
        if req.opcode == abi.IORING_OP_NOP:
            if req.op_flags & ~_NOP_MODELED:
                if req.op_flags & ~int(sum(abi.IoringNop)):
                    return errno.EINVAL
                raise NotImplementedError(f"NOP flags {abi.IoringNop(req.op_flags)!r} are not modeled")
        elif req.opcode == abi.IORING_OP_TIMEOUT:
            if req.len != 1 or req.op_flags & ~_TIMEOUT_MODELED or req.buf_index or req.ioprio:
                return errno.EINVAL
            sec, nsec = struct.unpack("<qq", ctypes.string_at(req.addr, 16))
            if sec < 0 or nsec < 0:
                return errno.EINVAL
            req.deadline = sec * 10**9 + nsec
            if not req.op_flags & abi.IORING_TIMEOUT_ABS:
                req.deadline += self.clock
        elif req.opcode in _RW:
            if req.opcode in (abi.IORING_OP_READ, abi.IORING_OP_WRITE):
                req.expected = req.len
            else:
                iovs = (abi.iovec * req.len).from_address(req.addr) if req.len else []
                req.iov = [(int(v.iov_base or 0), int(v.iov_len)) for v in iovs]  # type: ignore[attr-defined]
                req.expected = sum(n for _, n in req.iov)  # type: ignore[attr-defined]
        return 0

    # -- issue ----------------------------------------------------------------------

    def _queue(self, req: Req) -> None:
        """``io_queue_sqe``: a chain that failed before issue fails whole;
        while a drain is active every request goes through the defer list;
        else issue."""
        if req.init_error:
            # A chain refused before issue: the head completes with its error
            # (or -ECANCELED) in this batch; the members after the batch.
            self._complete_inline(req, -req.init_error)
            return
        if self.drain_active:
            # io_drain_req: queue behind the drain, let go what may go; the
            # drain ends once a plain request finds the list empty.
            self.deferred.append(req)
            self._queue_deferred()
            if not req.flags & abi.IOSQE_IO_DRAIN and not self.deferred:
                self.drain_active = False
            return
        self._issue(req)

    def _queue_deferred(self) -> None:
        """``io_queue_deferred``: the first deferred request, and every one
        from a drained request on, may go only when nothing outside the
        defer list is in flight; each goes through task work.  (The kernel
        counts requests *allocated*; a completed request is freed a moment
        after its CQE is posted, which the model does not distinguish, so
        the kernel may issue a drained request after the io_uring_enter
        that freed the way returned: see ``requests``.)"""
        drain_seen, first = False, True
        while self.deferred:
            req = self.deferred[0]
            drain_seen = drain_seen or bool(req.flags & abi.IOSQE_IO_DRAIN)
            if (drain_seen or first) and self._others_in_flight():
                return
            self.deferred.pop(0)
            self.task_work.append(lambda req=req: self._issue(req))  # type: ignore[misc]
            first = False

    def _others_in_flight(self) -> bool:
        held = {id(m) for r in self.deferred for m in r.chain()}
        return any(id(r) not in held for r in self.inflight.values())

    def _issue(self, req: Req) -> None:
        op = req.opcode
        if op == abi.IORING_OP_NOP:
            res = 0
            if req.op_flags & abi.IORING_NOP_FILE and req.fd not in self.kernel.files:
                res = -errno.EBADF
            elif req.op_flags & abi.IORING_NOP_INJECT_RESULT:
                res = ctypes.c_int32(req.len).value
            if req.op_flags & abi.IORING_NOP_TW:
                self.task_work.append(lambda: self._complete_inline(req, res))
            else:
                self._complete_inline(req, res)
        elif op in _RW:
            self._complete_inline(req, self._rw(req))
        elif op == abi.IORING_OP_FSYNC:
            res = 0 if req.fd in self.kernel.files else -errno.EBADF
            self.task_work.append(lambda: self._complete_inline(req, res))
        elif op == abi.IORING_OP_TIMEOUT:
            self._arm_timeout(req)
        elif op == abi.IORING_OP_TIMEOUT_REMOVE:
            found = self._take_timeout(req.addr)
            if found is not None:
                self._fire_timeout(found, -errno.ECANCELED)
            self._complete_inline(req, 0 if found is not None else -errno.ENOENT)
        elif op == abi.IORING_OP_ASYNC_CANCEL:
            self._complete_inline(req, self._cancel(req))

    def _rw(self, req: Req) -> int:
        """The I/O itself, on a model file, into or out of user memory."""
        f = self.kernel.files.get(req.fd)
        if f is None:
            return -errno.EBADF
        reading = req.opcode in (abi.IORING_OP_READ, abi.IORING_OP_READV)
        pieces = getattr(req, "iov", None) or [(req.addr, req.len)]
        off = req.off
        at = f.pos if off == (1 << 64) - 1 else off
        if at >= 1 << 63:
            return -errno.EINVAL
        done = 0
        for addr, length in pieces:
            if reading:
                chunk = bytes(f.data[at + done: at + done + length])
                ctypes.memmove(addr, chunk, len(chunk))
                done += len(chunk)
                if len(chunk) < length:
                    break
            else:
                end = at + done + length
                if end > len(f.data):
                    f.data.extend(bytes(end - len(f.data)))
                f.data[at + done: end] = ctypes.string_at(addr, length)
                done += length
        if off == (1 << 64) - 1:
            f.pos = at + done
        return done

    # -- completion -------------------------------------------------------------------

    def _complete_inline(self, req: Req, res: int) -> None:
        if self.batching:
            self.inline.append((req, res))
        else:
            self._complete(req, res)

    def _complete(self, req: Req, res: int) -> None:
        """A request is done: post its CQE (unless skipped), then its chain
        goes on (through task work) or, on failure, is cancelled."""
        failed = res < 0 or (req.expected is not None and res != req.expected)
        if getattr(req, "etime_success", False):
            failed = False
        self._finish(req, res, post_now=True, failed=failed)
        nxt = req.next
        if nxt is None:
            return
        # The chain goes on once this batch of completions is committed
        # (after timeouts are flushed: io_free_batch_list runs last).
        if failed and not req.hard or req.init_error:
            # io_fail_links: the rest of the chain is cancelled (a member
            # refused before issue reports its own error); if the failed
            # request asked to skip its CQE on success, the members' CQEs
            # are skipped too.
            quiet = req.skip_success
            self.chain_work.append(lambda: self._fail_links(nxt, quiet))
        else:
            self.chain_work.append(lambda: self._issue(nxt))

    def _fail_links(self, first: Req, quiet: bool) -> None:
        """Complete every member from *first* on with ``-ECANCELED`` (or
        its own refusal), in this batch, in chain order."""
        for r in first.chain():
            r.next = None  # each is done on its own now
            r.quiet = quiet  # type: ignore[attr-defined]
            self._complete_inline(r, -r.init_error if r.init_error else -errno.ECANCELED)

    def _finish(self, req: Req, res: int, *, post_now: bool, failed: Optional[bool] = None) -> None:
        if failed is None:
            failed = res < 0
        req.done = True
        self.completed.add(req.user_data)
        self.inflight.pop(req.seq, None)
        if not (req.skip_success and not failed) and not getattr(req, "quiet", False):
            self.post(req.user_data, res, 0)

    def _commit(self) -> None:
        """``io_commit_cqring_flush``, after each batch of completions:
        timeouts counting completions are checked, and requests waiting
        behind a drain are let go, once per batch rather than per CQE."""
        self._flush_timeouts()
        if self.drain_active:
            self._queue_deferred()
        self.task_work.extend(self.chain_work)
        self.chain_work = []

    def post(self, user_data: int, res: int, flags: int) -> None:
        """Post one CQE: into the CQ ring if there is room and nothing is
        already waiting in the overflow list (order is kept), else onto that
        list with ``IORING_SQ_CQ_OVERFLOW`` set (``IORING_FEAT_NODROP``:
        never dropped)."""
        head = self.load(L.CQ_HEAD)
        if self.overflow or (self.cached_cq_tail - head) & _U32 >= self.layout.cq_entries:
            self.overflow.append((user_data, res, flags))
            self._set_sq_flag(abi.IORING_SQ_CQ_OVERFLOW, True)
            return
        self._write_cqe(user_data, res, flags)

    def _write_cqe(self, user_data: int, res: int, flags: int) -> None:
        lay = self.layout
        slot = self.cached_cq_tail & (lay.cq_entries - 1)
        _CQE.pack_into(self.mem, L.CQES + slot * lay.cqe_size, user_data, res, flags)
        self.cached_cq_tail = (self.cached_cq_tail + 1) & _U32
        # Release: the CQE is written before the tail that publishes it.
        self._store(L.CQ_TAIL, self.cached_cq_tail)

    def flush_overflow(self) -> None:
        """``io_cqring_overflow_flush``: move what fits from the list into
        the CQ, oldest first; clear the flag once the list is empty."""
        head = self.load(L.CQ_HEAD)
        moved = False
        while self.overflow and (self.cached_cq_tail - head) & _U32 < self.layout.cq_entries:
            self._write_cqe(*self.overflow.popleft())
            moved = True
        if not self.overflow:
            self._set_sq_flag(abi.IORING_SQ_CQ_OVERFLOW, False)
        if moved:  # CQEs now count: timeouts with a count may be due
            self._commit()
            self.run_task_work()

    def run_task_work(self) -> None:
        """Run queued task work in batches (what was queued when the batch
        began): the batch's completions are posted together at its end, then
        committed; until none is left."""
        while self.task_work:
            self.batching = True
            for _ in range(len(self.task_work)):
                self.task_work.popleft()()
            self.batching = False
            done, self.inline = self.inline, []
            for req, res in done:
                self._complete(req, res)
            self._commit()

    # -- timeouts and cancellation --------------------------------------------------------

    def _arm_timeout(self, req: Req) -> None:
        """``io_timeout``: a timeout with a count *n* completes once *n* CQEs
        (not counting timeouts' own) are posted after it; the list is kept
        sorted by that target so the first entry is always due first.  A
        pure timer (count 0) goes at the end."""
        if not req.off:
            self.timeouts.append(req)
            return
        tail = (self.cached_cq_tail - self.cq_timeouts) & _U32
        req.target_seq = (tail + req.off) & _U32
        self.cq_last_tm_flush = tail
        at = len(self.timeouts)
        while at > 0:
            other = self.timeouts[at - 1]
            if req.off >= ((other.target_seq or 0) - tail) & _U32:
                break
            at -= 1
        self.timeouts.insert(at, req)

    def _flush_timeouts(self) -> None:
        """``io_flush_timeouts``: a timeout with a count fires once that many
        CQEs (not counting timeouts' own) were posted since it was armed."""
        seq = (self.cached_cq_tail - self.cq_timeouts) & _U32
        for req in list(self.timeouts):
            if req.target_seq is None:
                break  # a pure timer: sequenced timeouts are all before it
            needed = (req.target_seq - self.cq_last_tm_flush) & _U32
            got = (seq - self.cq_last_tm_flush) & _U32
            if got < needed:
                break
            self.timeouts.remove(req)
            self._fire_timeout(req, 0)
        self.cq_last_tm_flush = seq

    def _fire_timeout(self, req: Req, res: int) -> None:
        """A timeout ends: by its timer (``-ETIME``) or its count (0), both
        counted in ``cq_timeouts`` so that timeouts' own CQEs never count
        toward another timeout; or cancelled (``-ECANCELED``), not counted.
        Its CQE is posted through task work, as the timer's callback does."""
        if req in self.timeouts:
            self.timeouts.remove(req)
        if res != -errno.ECANCELED:
            self.cq_timeouts += 1
        if res == -errno.ETIME and req.op_flags & abi.IORING_TIMEOUT_ETIME_SUCCESS:
            req.etime_success = True  # type: ignore[attr-defined]
            self.task_work.append(lambda: self._complete_inline(req, res))
            return
        self.task_work.append(lambda: self._complete_inline(req, res))

    def _take_timeout(self, user_data: int) -> Optional[Req]:
        for req in self.timeouts:
            if req.user_data == user_data:
                self.timeouts.remove(req)
                return req
        return None

    def _cancel(self, req: Req) -> int:
        """``IORING_OP_ASYNC_CANCEL``: in the model only armed timeouts can
        still be cancelled (everything else has completed).  Requests held
        behind a drain cannot be: the kernel's cancel looks in io-wq, poll,
        and the timeout list, not in the drain's defer list."""
        flags = req.op_flags
        match_all = flags & abi.IORING_ASYNC_CANCEL_ALL
        match_any = flags & abi.IORING_ASYNC_CANCEL_ANY
        victims = [r for r in self.timeouts if match_any or r.user_data == req.addr]
        if not victims:
            return -errno.ENOENT
        if not match_all:
            victims = victims[:1]
        for r in victims:
            self._fire_timeout(r, -errno.ECANCELED)
        return len(victims) if match_all else 0

    # -- waiting: io_cqring_wait ------------------------------------------------------------

    def wait(self, min_complete: int, wait_ns: Optional[int]) -> int:
        """Flush the overflow list, then until *min_complete* CQEs are
        available: advance the model clock to the next timeout (or the
        wait's own deadline: ``-ETIME``)."""
        min_complete = min(min_complete, self.layout.cq_entries)
        deadline = None if wait_ns is None else self.clock + wait_ns
        while True:
            self.flush_overflow()
            if (self.cached_cq_tail - self.load(L.CQ_HEAD)) & _U32 >= min_complete:
                return 0
            timed = [r for r in self.timeouts if r.deadline is not None]
            nxt = min((r.deadline for r in timed), default=None)  # type: ignore[type-var]
            if nxt is not None and (deadline is None or nxt <= deadline):
                self.clock = max(self.clock, nxt)  # type: ignore[type-var]
                for r in [r for r in timed if r.deadline <= self.clock]:  # type: ignore[operator]
                    self._fire_timeout(r, -errno.ETIME)
                self._commit()
                self.run_task_work()
                continue
            if deadline is not None:
                self.clock = deadline
                return -errno.ETIME
            raise ModelDeadlock(
                f"io_uring_enter(min_complete={min_complete}) would sleep forever: "
                f"{(self.cached_cq_tail - self.load(L.CQ_HEAD)) & _U32} CQEs available, "
                f"nothing in flight can complete")

    def close(self) -> None:
        self.mem.close()
        os.close(self.fd)


class ModelKernel(Kernel):
    """The model kernel: rings, plus a table of in-memory files.

    strict: raise ``ProtocolViolation`` at the first broken rule (default);
            with False they are collected in ``violations`` (every ring's,
            kept after the ring is closed).
    """

    def __init__(self, *, strict: bool = True) -> None:
        self.rings: Dict[int, ModelRing] = {}
        self.files: Dict[int, ModelFile] = {}
        self.strict = strict
        self._violations: List[str] = []  # every ring's, in order, kept after close
        self._next_file = 1 << 20  # far from real fds

    @property
    def violations(self) -> List[str]:
        """Every rule broken on any of this kernel's rings, closed ones
        included, in the order they were found."""
        return list(self._violations)

    def add_file(self, data: bytes = b"") -> int:
        """An in-memory regular file; returns its (model) fd."""
        fd = self._next_file
        self._next_file += 1
        self.files[fd] = ModelFile(data)
        return fd

    def file_data(self, fd: int) -> bytes:
        return bytes(self.files[fd].data)

    def ring(self, fd: int) -> ModelRing:
        ring = self.rings.get(fd)
        if ring is None:
            raise OSError(errno.EBADF, f"fd {fd} is not a model io_uring")
        return ring

    # -- the seam ------------------------------------------------------------------------

    def setup(self, entries: int, params_address: int) -> int:
        p = abi.io_uring_params.from_address(params_address)
        if p.flags & ~_SETUP_MODELED:
            raise OSError(errno.EINVAL, f"io_uring_setup: flags {abi.IoringSetup(p.flags & ~_SETUP_MODELED)!r} "
                          "are not modeled")
        if any(p.resv) or p.sq_thread_cpu or p.sq_thread_idle or p.wq_fd:
            raise OSError(errno.EINVAL, "io_uring_setup: reserved fields must be zero")
        ring = ModelRing(self, p, entries, self.strict, self._violations)
        self.rings[ring.fd] = ring
        return ring.fd

    def enter(self, fd: int, to_submit: int, min_complete: int, flags: int,
              arg: int = 0, argsz: int = 0) -> int:
        ring = self.ring(fd)
        if flags & ~_ENTER_MODELED:
            raise OSError(errno.EINVAL, f"io_uring_enter: flags {flags:#x} are not modeled")
        wait_ns = None
        if flags & abi.IORING_ENTER_EXT_ARG:
            if argsz != ctypes.sizeof(abi.io_uring_getevents_arg):
                raise OSError(errno.EINVAL, "io_uring_enter: bad io_uring_getevents_arg size")
            ext = abi.io_uring_getevents_arg.from_address(arg)
            if ext.ts:
                ts = abi.kernel_timespec.from_address(ext.ts)
                wait_ns = ts.tv_sec * 10**9 + ts.tv_nsec
        ring.rules.check_cq(ring.load(L.CQ_HEAD), ring.cached_cq_tail)
        try:
            submitted = ring.submit(to_submit) if to_submit else 0
            if submitted != to_submit:
                # A short submit returns at once: no waiting, no overflow flush.
                return submitted
            if flags & abi.IORING_ENTER_GETEVENTS:
                waited = ring.wait(min_complete, wait_ns)
                if not submitted and waited < 0:
                    raise OSError(-waited, f"io_uring_enter: {os.strerror(-waited)}")
            return submitted
        finally:
            ring.rules.end_of_call()

    def register(self, fd: int, opcode: int, arg: int, nr_args: int) -> int:
        self.ring(fd)
        if opcode == abi.IORING_REGISTER_PROBE:
            nr = min(nr_args, int(abi.IORING_OP_LAST))
            probe = type(abi.probe_struct(nr_args)).from_address(arg)
            probe.last_op = int(abi.IORING_OP_LAST) - 1
            probe.ops_len = nr
            for i in range(nr):
                probe.ops[i].op = i
                probe.ops[i].flags = 1 if i in MODELED_OPS else 0
            return 0
        raise OSError(errno.EINVAL, f"io_uring_register: opcode {opcode} is not modeled")

    def mmap(self, fd: int, length: int, offset: int) -> mmap.mmap:
        ring = self.ring(fd)
        if offset in (abi.IORING_OFF_SQ_RING, abi.IORING_OFF_CQ_RING):
            start, size = 0, ring.rings_bytes
        elif offset == abi.IORING_OFF_SQES:
            start, size = ring.sqes_at, ring.layout.sqes_size
        else:
            raise OSError(errno.EINVAL, f"mmap of io_uring: bad offset {offset:#x}")
        if length > size:
            raise OSError(errno.EINVAL, f"mmap of io_uring: {length} bytes > {size}")
        # mmap offsets must be page aligned: map from the page, view the rest.
        return mmap.mmap(ring.fd, length, offset=start)

    def close(self, fd: int) -> None:
        ring = self.rings.pop(fd, None)
        if ring is None:
            raise OSError(errno.EBADF, f"close: fd {fd}")
        ring.close()


def as_model(kernel: Any) -> ModelKernel:
    if not isinstance(kernel, ModelKernel):
        raise TypeError("not a ModelKernel")
    return kernel

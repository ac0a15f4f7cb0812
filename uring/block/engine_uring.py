"""``aio=io_uring``: block requests as SQEs on one ring (QEMU's
``block/io_uring.c``).

Each request becomes one SQE (READ/WRITE for one buffer, READV/WRITEV for
several, READ_FIXED/WRITE_FIXED when the buffer lies inside a registered
one, FSYNC, FALLOCATE).  The engine keeps no table of its own: the block
request is the *owner* of the record the ring files for its SQE
(``ring.set_owner``, liburing's ``io_uring_sqe_set_data``), and
``ring.reap_records`` hands it back with the CQE (``io_uring_cqe_get_data``).
Submission is one ``io_uring_enter`` per batch; completions are reaped from
the CQ without a system call when they are already there.
"""

from __future__ import annotations

import errno
from array import array
from operator import attrgetter
from typing import Any, Callable, List, Optional, Sequence, Tuple

from .. import abi
from ..arena import ArenaQueue
from ..buffers import address_of, export
from ..errors import SubmissionQueueFull
from ..ops import Ring
from ..syscalls import Kernel
from .engine import Capability, Engine
from .faults import IoFaults
from .request import BlockRequest, Op
from .sysops import FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE

__all__ = ["UringEngine"]

_READ, _WRITE = Op.READ, Op.WRITE
_OP_READ, _OP_WRITE = int(abi.IORING_OP_READ), int(abi.IORING_OP_WRITE)
_get_address, _get_done, _get_op, _get_length, _get_offset = (
    attrgetter(name) for name in ("address", "done", "op", "length", "offset"))


def _address(req: BlockRequest) -> int:
    """The address of a one-buffer read's or write's buffer, kept on the
    request (its own view holds the memory in place); 0 for any other."""
    op = req.op
    if len(req.views) != 1 or (op is not _READ and op is not _WRITE):
        return 0
    address: int = export(req.views[0], op is _READ)[1]
    req.address = address
    return address


class UringEngine(Engine):
    name = "io_uring"
    capabilities = frozenset({Capability.FIXED_BUFFERS, Capability.FIXED_FILES,
                              Capability.SQPOLL, Capability.IOPOLL, Capability.ARENA})

    def __init__(self, fd: int, queue_depth: int, *, faults: Optional[IoFaults] = None,
                 max_batch: Optional[int] = None,
                 datasync: bool = True, fixed_files: bool = False, sqpoll: bool = False,
                 iopoll: bool = False, sq_thread_idle: int = 1000,
                 kernel: Optional[Kernel] = None) -> None:
        super().__init__(fd, queue_depth, faults, max_batch)
        flags = 0
        if sqpoll:
            flags |= abi.IORING_SETUP_SQPOLL
        if iopoll:
            flags |= abi.IORING_SETUP_IOPOLL
        try:
            # A completion that comes by interrupt (O_DIRECT) is posted by
            # task work in this thread.  By default the kernel interrupts
            # the thread for it wherever it is (an IPI and a trip into the
            # kernel per completion, in the middle of the interpreter);
            # IORING_SETUP_COOP_TASKRUN leaves it for the next entry into
            # the kernel, which the completion path makes anyway (a wait
            # enters; a poll that finds the CQ short enters when
            # IORING_SETUP_TASKRUN_FLAG raises IORING_SQ_TASKRUN), as
            # fio's io_uring engine sets it.  Not with SQPOLL (the kernel
            # refuses both: its thread runs the task work), nor before
            # Linux 5.19 (EINVAL: set up without).
            coop = 0 if sqpoll else int(abi.IORING_SETUP_COOP_TASKRUN
                                        | abi.IORING_SETUP_TASKRUN_FLAG)
            self.ring = Ring(queue_depth, flags=flags | coop, kernel=kernel,
                             sq_thread_idle=sq_thread_idle if sqpoll else None)
        except OSError as exc:
            if not coop or exc.errno != errno.EINVAL:
                raise
            self.ring = Ring(queue_depth, flags=flags, kernel=kernel,
                             sq_thread_idle=sq_thread_idle if sqpoll else None)
        self.fixed_buffer_ops = 0
        self.datasync = datasync
        self.target = fd
        self.fixed_files = fixed_files
        if fixed_files:
            self.ring.register_files([fd])
            self.target = 0
        self.iopoll = iopoll
        self.sqpoll = sqpoll
        self._fixed: List[Tuple[int, int, int]] = []  # (address, end, index)
        self._sqe_flags = int(abi.IOSQE_FIXED_FILE) if fixed_files else 0
        # the plain path applies: no registered buffers to look up, no faults
        self._plain = faults is None
        if faults is not None:  # a fault plan acts on requests: no arena queues beside it
            self.capabilities = self.capabilities - {Capability.ARENA}
        self._registered_arena = False

    # -- registered buffers --------------------------------------------------------

    def register_buffers(self, buffers: Sequence[Any]) -> None:
        """Register *buffers* (``IORING_REGISTER_BUFFERS``); a request whose
        single buffer lies inside one of them goes as READ_FIXED/WRITE_FIXED."""
        if self._registered_arena:
            raise ValueError("a registered arena is this ring's registered-buffer table")
        addresses = self.ring.register_buffers(buffers)
        self._fixed = [(a, a + memoryview(b).nbytes, i)
                       for i, (a, b) in enumerate(zip(addresses, buffers))]
        self._plain = False

    def _fixed_index(self, view: memoryview) -> Optional[Tuple[int, int]]:
        if not self._fixed:
            return None
        start = address_of(view)
        end = start + view.nbytes
        for lo, hi, index in self._fixed:
            if lo <= start and end <= hi:
                return index, start - lo
        return None

    # -- hooks ----------------------------------------------------------------------

    def _issue(self, req: BlockRequest) -> bool:
        # The ring numbers the request (no user_data passed); the block
        # request becomes its record's owner, handed back by _reap.
        op = req.op
        if (op is _READ or op is _WRITE) and self._plain and not req.done \
                and len(req.views) == 1:
            # The plain path: one buffer, nothing done yet, no fixed
            # buffers, no fault plan.  The SQE points at the request's own
            # view, whose export holds the memory in place; the record's
            # owner is the request, so the view lives until the final CQE.
            address = req.address or _address(req)
            try:
                self.ring.prep_rw(_OP_READ if op is _READ else _OP_WRITE, self.target, address,
                                  req.length, req.offset, None, self._sqe_flags, 0, None, None,
                                  0, 0, 0, 0, 0, None, req)
            except SubmissionQueueFull:
                return False
            return True
        return self._issue_other(req)

    def _issue_many(self, reqs: List[BlockRequest]) -> Tuple[int, int]:
        """A batch of plain reads (or of plain writes: one buffer each,
        nothing done yet) is filled by ``prep_batch`` in one call, each
        request its record's owner (a new request's buffer address is taken
        here, once); anything else goes one by one."""
        if self._plain and len(reqs) > 1:
            addrs = list(map(_get_address, reqs))  # taken at submit (Image.submit_read)
            if 0 in addrs:
                try:  # not yet: a request made some other way
                    addrs = [r.address or _address(r) for r in reqs]
                except Exception:  # noqa: BLE001 - one by one: the one that fails, fails alone
                    addrs = [0]
            if 0 not in addrs and not any(map(_get_done, reqs)):
                ops = list(map(_get_op, reqs))
                n = len(reqs)
                opcode = _OP_READ if ops.count(_READ) == n else \
                    _OP_WRITE if ops.count(_WRITE) == n else 0
                if opcode:
                    try:
                        self.ring.prep_batch(opcode, self.target, addrs,
                                             list(map(_get_length, reqs)),
                                             list(map(_get_offset, reqs)), None, None,
                                             self._sqe_flags, 0, None, reqs)
                    except SubmissionQueueFull:
                        pass  # one by one, as far as there is room
                    else:
                        return n, n
        return super()._issue_many(reqs)

    def _issue_other(self, req: BlockRequest) -> bool:
        """Every request but a plain one-buffer read or write: vectors,
        registered buffers, the rest of a short transfer, a fault plan's
        shortened one, flush, discard, write-zeroes."""
        ring, target, fixed = self.ring, self.target, self.fixed_files
        try:
            if req.op is Op.READ or req.op is Op.WRITE:
                offset, views = self._transfer(req)
                reading = req.op is Op.READ
                if len(views) == 1:
                    found = self._fixed_index(views[0]) if self._fixed else None
                    if found is not None:
                        self.fixed_buffer_ops += 1
                        prep_fixed = ring.prep_read_fixed if reading else ring.prep_write_fixed
                        ud = prep_fixed(target, found[0], offset, None, length=views[0].nbytes,
                                        buf_offset=found[1], fixed=fixed)
                    elif fixed:
                        prep = ring.prep_read if reading else ring.prep_write
                        ud = prep(target, views[0], offset, None, fixed=True)
                    elif reading:  # the plain path: positional, nothing else
                        ud = ring.prep_read(target, views[0], offset)
                    else:
                        ud = ring.prep_write(target, views[0], offset)
                else:
                    prepv = ring.prep_readv if reading else ring.prep_writev
                    ud = prepv(target, views, offset, None, fixed=fixed)
            elif req.op is Op.FLUSH:
                ud = ring.prep_fsync(target, None, datasync=self.datasync, fixed=fixed)
            elif req.op is Op.DISCARD:
                ud = ring.prep_fallocate(target, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                         req.offset, req.length, None, fixed=fixed)
            else:
                ud = ring.prep_fallocate(target, FALLOC_FL_ZERO_RANGE, req.offset, req.length,
                                         None, fixed=fixed)
        except SubmissionQueueFull:
            return False
        ring.set_owner(ud, req)
        return True

    # -- arena queues ---------------------------------------------------------------------

    def open_arena(self, slots: int, slot_size: int, write: bool,
                   sink: Callable[[Any, Any], None], registered: bool = False) -> ArenaQueue:
        """An ``ArenaQueue`` on this engine's ring: *slots* SQEs formatted
        once over one page-aligned arena (with *registered*, the ring's
        registered-buffer table: READ_FIXED/WRITE_FIXED, so it must have
        none yet).  Its CQEs are taken here, among the block requests'
        (``_reap``), and handed to ``sink(slots, results)`` as two arrays,
        no Python object per CQE."""
        if not self.supports(Capability.ARENA):
            raise ValueError("arena queues and a fault plan do not go together")
        if registered and (self._fixed or self._registered_arena):
            raise ValueError("registered: this ring has a registered-buffer table already "
                             "(register_buffers, or another registered arena)")
        queue = ArenaQueue(self.ring, self.target, slots, slot_size, write=write,
                           registered=registered, fixed_file=self.fixed_files)
        if registered:
            self._registered_arena = True
        self._arenas[queue.tag] = (queue, sink)
        return queue

    def arena_submit(self, queue: Any, slots: Sequence[int], offsets: Sequence[int]) -> None:
        """Queue *slots* of *queue* at *offsets* (all or nothing, checked by
        the queue); they count in ``in_flight`` until their CQEs are taken.
        The SQEs reach the kernel with the next ``poll``: a waiting one
        submits them and waits in the same ``io_uring_enter`` (liburing's
        ``io_uring_submit_and_wait``), one system call per batch, as
        ``ArenaQueue`` does on its own; any other submission takes them
        along too.  With ``submit_batch`` set (O_DIRECT: the device, not
        the CPU, is the limit) they go at once instead, that many per
        ``io_uring_enter``."""
        if self.closed:
            self.refuse_closed()
        try:
            n = queue.submit(slots, offsets)
        except SubmissionQueueFull:
            # SQEs of earlier batches not yet taken by the kernel (an SQPOLL
            # thread takes them on its own time): submit them, and with
            # SQPOLL wait until the thread has made room
            ring = self.ring
            self._commit()
            while self.sqpoll and ring.sq_space_left < len(slots):
                ring.sq_wait()
            n = queue.submit(slots, offsets)
        self.in_flight += n
        if self.submit_batch:
            self._commit()  # to the device now, a few at a time

    def _reap_arenas(self, wait: bool) -> int:
        """``_reap`` with arena queues open: the CQ is taken as words (and
        the records of the block requests' CQEs, in order).  All of one
        queue's, as in a loop that only reads through it: one call to its
        sink; mixed: split CQE by CQE."""
        ring = self.ring
        if wait:
            try:
                ring.submit_and_wait(1)
            except (BlockingIOError, InterruptedError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EBUSY, errno.EINTR):
                    raise
                self.blocked = exc.errno != errno.EINTR  # the completion path submits again
        records: List[Any] = []
        words = ring.reap_words(records=records)
        unit = ring.cqe_size // 8
        if unit != 2:
            words = array("Q", [w for i, w in enumerate(words) if i % unit < 2])
        n = len(words) // 2
        if not n:
            return 0
        if self._to_sole_arena(words, n):
            return n
        for i in self._split_arenas(words, 2):
            record = records[i >> 1]
            if record is None or record.owner is None:
                continue  # not a request of this engine's (nothing here makes one)
            res = words[i + 1] & 0xFFFFFFFF
            res = res - (1 << 32) if res >> 31 else res
            if self.iopoll and res == -errno.EOPNOTSUPP:
                self._failed(record.owner, errno.EOPNOTSUPP, None)
            else:
                self._completed(record.owner, res)
        return n

    def _commit(self) -> None:
        ring = self.ring
        step = self.submit_batch
        try:
            if step and not self.sqpoll:
                # a few SQEs per io_uring_enter (the tail already covers
                # them all: each enter takes the next *step* from the head)
                while ring.sq_ready:
                    self.submit_calls += 1
                    if not ring.submit(step):
                        break
            else:
                self.submit_calls += 1
                ring.submit()
        except (BlockingIOError, OSError) as exc:
            # EAGAIN/EBUSY from io_uring_enter: nothing was consumed, the
            # SQEs stay in the ring; the completion path submits again.
            if exc.errno not in (errno.EAGAIN, errno.EBUSY):
                raise
            self.blocked = True

    def _reap(self, wait: bool) -> int:
        ring = self.ring
        if self.blocked or (not wait and ring.sq_ready):
            # SQEs left by a short or refused submit (a wait submits them
            # itself, in the same io_uring_enter)
            self._commit()
        if self._arenas:
            return self._reap_arenas(wait)
        # Each CQE comes with the ring's record of its request (the final
        # CQE releases it); the record's owner is the block request.
        records = ring.reap_records(wait=1) if wait else ring.reap_records()
        completed = self._completed
        iopoll = self.iopoll
        # the whole reap leaves the in-flight count first: a callback that
        # submits (the next read) sees the room its completion made
        self.in_flight -= len(records)
        delivered = 0
        try:
            for cqe, record in records:
                req: BlockRequest = record.owner  # type: ignore[union-attr]  # every SQE here has one
                res = cqe[1]
                if res == req.length and not req.done and res:
                    # all of a read or write at once (the common case):
                    # finished here, one call less than _completed
                    req.done = res
                    before = req.deliveries
                    try:
                        req.complete(res)
                    except BaseException as exc:  # noqa: BLE001 - a callback's: raised by poll()
                        if req.deliveries == before:  # not a callback's: it never finished
                            req.done = 0
                            raise  # kept below
                        self._raised.append(exc)
                    delivered += 1
                    continue
                self.in_flight += 1  # _completed and _failed count it out themselves
                try:
                    if iopoll and res == -errno.EOPNOTSUPP:
                        self._failed(req, errno.EOPNOTSUPP, None)  # not retried as a short one
                    else:
                        completed(req, res)
                except BaseException:
                    # raised on the way in (what runs inside is caught
                    # there): nothing was done, it is kept below
                    self.in_flight -= 1
                    raise
                delivered += 1
        except BaseException:
            # Interrupted between taking these completions from the ring and
            # delivering them (a signal handler's exception: Ctrl-C): the
            # rest are kept, delivered first by the next poll.
            self._keep_undelivered([(record.owner, cqe[1])  # type: ignore[union-attr]
                                    for cqe, record in records[delivered:]], counted_out=True)
            raise
        return len(records)

    def release_thread(self) -> None:
        self.ring.release_thread()

    def _close(self) -> None:
        self.ring.close()

    def check_iopoll(self) -> None:
        """IOPOLL needs a device with poll queues; without them every read
        completes with -EOPNOTSUPP.  Found at open with one real read."""
        if not self.iopoll:
            return
        import mmap

        page = mmap.mmap(-1, 4096)
        try:
            req = BlockRequest(Op.READ, 0, 4096, [memoryview(page)])
            self.enqueue(req)
            while not req.finished:
                self.poll(wait=True)
            if req.error is not None and req.error.errno == errno.EOPNOTSUPP:
                raise OSError(
                    errno.EOPNOTSUPP,
                    "iopoll: the device under this file has no poll queues (NVMe with "
                    "nvme.poll_queues=0, or a device that cannot be polled), so every "
                    "IORING_SETUP_IOPOLL read fails with EOPNOTSUPP; open without iopoll",
                )
        finally:
            del req
            page.close()

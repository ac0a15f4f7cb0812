"""``aio=native``: Linux AIO through the raw system calls (QEMU's
``block/linux-aio.c``), from ``uring.linux_aio``.

Each read or write becomes one ``iocb`` (PREADV/PWRITEV over the request's
pinned buffers; FDSYNC for a flush), staged and handed to ``io_submit`` as
one batch.  Every iocb carries ``IOCB_FLAG_RESFD``: the kernel bumps one
eventfd per completion (QEMU's completion mode, and the fd an event loop
watches: ``notifier_fd``).  Completions are taken straight from the
completion ring in user memory (``AioContext.peek``, no system call); only
when nothing is there and the caller must wait does it block, in a read of
the eventfd.  Linux AIO has no fallocate: discard and write-zeroes run
``fallocate(2)`` inline on the submitting thread (QEMU hands them to its
thread pool).

**Arena queues** (``Capability.ARENA``, without a fault plan): an
``Image.arena`` here is an ``AioArena`` on the engine's context: each
slot's iocb formatted once, a submit writes only the chosen slots'
offsets and hands them to ``io_submit`` at once (``submit_batch`` per
call), and the ring's events are taken as words, the arena's split off by
the tag in their ``aio_data`` and handed to its sink as two arrays, the
block requests' to their owners.  With an arena open, a wait is one
``io_getevents`` (``min_nr=1``), which also brings the events back, and
the arena's iocbs go without ``IOCB_FLAG_RESFD`` (``notifier_fd`` then
counts only the block requests' completions).
"""

from __future__ import annotations

import ctypes
import errno
import os
from array import array
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..arena import AioArena
from ..buffers import IovecArray
from ..linux_aio import AioContext, iocb
from .engine import Capability, Engine, error_number
from .faults import IoFaults
from .request import BlockRequest, Op
from .sysops import FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, fallocate

__all__ = ["AioEngine"]

_libc = ctypes.CDLL(None, use_errno=True)


def _eventfd() -> int:
    make = getattr(os, "eventfd", None)  # Python 3.10+
    if make is not None:
        return int(make(0, os.EFD_CLOEXEC))  # type: ignore[attr-defined]
    fd = _libc.eventfd(0, 0o2000000)  # EFD_CLOEXEC
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"eventfd: {os.strerror(err)}")
    return int(fd)


class AioEngine(Engine):
    name = "native"
    capabilities = frozenset({Capability.ARENA})

    def __init__(self, fd: int, queue_depth: int, *, faults: Optional[IoFaults] = None,
                 max_batch: Optional[int] = None,
                 datasync: bool = True) -> None:
        super().__init__(fd, queue_depth, faults, max_batch)
        self.ctx = AioContext(queue_depth)
        self.notifier_fd = _eventfd()
        self.datasync = datasync
        # the batch being prepared for the next io_submit (not a table: the
        # requests in flight are the context's, filed with ctx.hold)
        self._staged: List[Tuple[iocb, BlockRequest]] = []
        self.peeked = 0  # events taken from the ring without a system call
        if faults is not None:  # a fault plan acts on requests: no arena queues beside it
            self.capabilities = self.capabilities - {Capability.ARENA}
        # arena slots io_submit refused: (queue, slot, -errno), for the next _reap
        self._arena_failed: List[Tuple[AioArena, int, int]] = []

    def _issue(self, req: BlockRequest) -> bool:
        cb = iocb()
        if req.op is Op.READ or req.op is Op.WRITE:
            offset, views = self._transfer(req)
            iov = IovecArray(views, writable=req.op is Op.READ)
            # the request is the owner of its aio_data; iocb and iovecs
            # stay alive with it until the event is reaped
            key = self.ctx.hold(req, (cb, iov))
            prep = AioContext.prep_preadv if req.op is Op.READ else AioContext.prep_pwritev
            try:
                prep(cb, self.fd, iov.address, iov.count, offset, key)
            except BaseException:
                self.ctx.release(key)  # never staged: kick fails the request
                raise
        elif req.op is Op.FLUSH:
            key = self.ctx.hold(req, cb)
            (AioContext.prep_fdsync if self.datasync else AioContext.prep_fsync)(cb, self.fd, key)
        else:
            mode = (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE if req.op is Op.DISCARD
                    else FALLOC_FL_ZERO_RANGE)
            try:
                fallocate(self.fd, mode, req.offset, req.length)
            except Exception as exc:
                self._synthetic.append((req, -error_number(exc),
                                        None if isinstance(exc, OSError) else exc))
            else:
                self._synthetic.append((req, 0, None))
            return True
        AioContext.set_eventfd(cb, self.notifier_fd)
        self._staged.append((cb, req))
        return True

    def _commit(self) -> None:
        staged, self._staged = self._staged, []
        step = self.submit_batch or len(staged) or 1
        for at in range(0, len(staged), step):
            chunk = staged[at:at + step]
            self.submit_calls += 1
            try:
                accepted = self.ctx.submit([cb for cb, _ in chunk])
            except BlockingIOError:
                accepted = 0  # EAGAIN: nothing taken; back to the queue
            except OSError as exc:
                # Refused at submission (e.g. EBADF, EINVAL): the first iocb is
                # bad; fail it and let the rest go again.
                cb, req = chunk[0]
                self.ctx.release(cb.aio_data)
                self._completed(req, -(exc.errno or errno.EIO))
                self._unstage(staged[at + 1:])
                if self.pending and not self.plugged:
                    self.kick()
                return
            if accepted < len(chunk):
                self._unstage(staged[at + accepted:])
                self.blocked = True  # resubmitted from the completion path
                return

    def _unstage(self, staged: List[Tuple[iocb, BlockRequest]]) -> None:
        for cb, req in reversed(staged):
            self.ctx.release(cb.aio_data)
            self.in_flight -= 1
            self.pending.appendleft(req)

    # -- arena queues ---------------------------------------------------------------------

    def open_arena(self, slots: int, slot_size: int, write: bool,
                   sink: Callable[[Any, Any], None], registered: bool = False) -> AioArena:
        """An ``AioArena`` on this engine's context: *slots* iocbs formatted
        once over one page-aligned arena.  Its events are taken here, among
        the block requests' (``_reap``), and handed to ``sink(slots,
        results)`` as two arrays, no Python object per event.  Its iocbs
        carry no ``IOCB_FLAG_RESFD``: with an arena open a wait is an
        ``io_getevents``, not a read of ``notifier_fd``, and an eventfd
        taken and signalled per request costs the kernel time at every
        submit and completion (measured: ~8% of 4 KiB O_DIRECT reads at
        QD32)."""
        if registered:
            raise ValueError(f"aio={self.name} has no registered buffers (only io_uring does)")
        if not self.supports(Capability.ARENA):
            raise ValueError("arena queues and a fault plan do not go together")
        if self.closed:
            self.refuse_closed()
        queue = AioArena(self.ctx, self.fd, slots, slot_size, write=write)
        self._arenas[queue.tag] = (queue, sink)
        return queue

    def arena_submit(self, queue: Any, slots: Sequence[int], offsets: Sequence[int]) -> None:
        """Submit *slots* of *queue* at *offsets* now (all or nothing,
        checked by the queue before anything is written), ``submit_batch``
        per ``io_submit`` (all at once when 0); they count in ``in_flight``
        until their events are taken.  A slot the kernel refuses (its
        errno, or ``EAGAIN`` for it and the rest when it takes none) is
        delivered to the sink with ``-errno`` by the next ``poll``: every
        slot submitted comes back exactly once."""
        if self.closed:
            self.refuse_closed()
        n = queue.stage(slots, offsets)
        self.in_flight += n
        step = self.submit_batch or n
        at = 0
        try:
            while at < n:
                self.submit_calls += 1
                try:
                    at += queue.submit_staged(at, min(step, n - at))
                except OSError as exc:
                    err = exc.errno or errno.EIO
                    failed = self._arena_failed
                    if err == errno.EAGAIN:  # no room: these come back to be retried
                        failed.extend([(queue, slot, -err) for slot in list(slots)[at:]])
                        return
                    failed.append((queue, list(slots)[at], -err))  # the first refused; the rest go on
                    at += 1
        except BaseException:
            # interrupted (a signal handler's exception) with slots staged and
            # counted but not handed over: they come back with -EINTR, so
            # nothing waits for an event that will never be posted
            self._arena_failed.extend([(queue, slot, -errno.EINTR) for slot in list(slots)[at:]])
            raise

    def _deliver_failed(self) -> int:
        """The arena slots ``io_submit`` refused, to their sinks."""
        failed, self._arena_failed = self._arena_failed, []
        by_queue: Dict[int, Tuple[AioArena, "array[int]", "array[int]"]] = {}
        for queue, slot, result in failed:
            got = by_queue.setdefault(queue.tag, (queue, array("I"), array("i")))
            got[1].append(slot)
            got[2].append(result)
        for queue, slots, results in by_queue.values():
            queue.release(slots)
            self.in_flight -= len(slots)
            self._deliver(self._arenas[queue.tag][1], (slots, results))
        return len(failed)

    def _reap_arenas(self, wait: bool) -> int:
        """``_reap`` with arena queues open: the ring taken as words; all
        of one arena's (a loop that only reads through it): one call to its
        sink; mixed: split event by event, the block requests' to their
        owners."""
        ctx = self.ctx
        words = ctx.peek_words()
        if words:
            self.peeked += len(words) >> 2
        elif wait:
            words = ctx.wait_words(1)  # blocks until one is there, and brings them
        n = len(words) >> 2
        if not n:
            return 0
        if self._to_sole_arena(words, n):
            return n
        pop_owner = ctx.pop_owner
        for i in self._split_arenas(words, 4):
            req = pop_owner(words[i])
            if req is None:
                continue  # not a request of this engine's (nothing here makes one)
            res = words[i + 2]
            self._completed(req, res - (1 << 64) if res >> 63 else res)
        return n

    # -- completion -----------------------------------------------------------------------

    def _reap(self, wait: bool) -> int:
        if self._arena_failed or self._arenas:
            n = self._deliver_failed() if self._arena_failed else 0
            return n + self._reap_arenas(wait and not n)
        # each event comes back with its owner, the block request
        events = self.ctx.peek_owned(self.queue_depth)
        while not events and wait:
            os.read(self.notifier_fd, 8)  # blocks until a completion is posted
            events = self.ctx.peek_owned(self.queue_depth)
        self._taken.extend(events)  # (request, res, res2): delivered below, or by the next poll
        self.peeked += len(events)
        self._deliver_taken()
        return len(events)

    def _close(self) -> None:
        self.ctx.close()
        os.close(self.notifier_fd)

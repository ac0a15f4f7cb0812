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
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import List, Optional, Tuple

from ..buffers import IovecArray
from ..linux_aio import AioContext, iocb
from .engine import Engine, error_number
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
        self.submit_calls += 1
        try:
            accepted = self.ctx.submit([cb for cb, _ in staged])
        except BlockingIOError:
            accepted = 0  # EAGAIN: nothing taken; back to the queue
        except OSError as exc:
            # Refused at submission (e.g. EBADF, EINVAL): the first iocb is
            # bad; fail it and let the rest go again.
            cb, req = staged[0]
            self.ctx.release(cb.aio_data)
            self._completed(req, -(exc.errno or errno.EIO))
            staged = staged[1:]
            accepted = 0
            self._unstage(staged)
            if self.pending and not self.plugged:
                self.kick()
            return
        if accepted < len(staged):
            self._unstage(staged[accepted:])
            self.blocked = True  # resubmitted from the completion path

    def _unstage(self, staged: List[Tuple[iocb, BlockRequest]]) -> None:
        for cb, req in reversed(staged):
            self.ctx.release(cb.aio_data)
            self.in_flight -= 1
            self.pending.appendleft(req)

    def _reap(self, wait: bool) -> int:
        # each event comes back with its owner, the block request
        events = self.ctx.peek_owned(self.queue_depth)
        while not events and wait:
            os.read(self.notifier_fd, 8)  # blocks until a completion is posted
            events = self.ctx.peek_owned(self.queue_depth)
        self.peeked += len(events)
        completed = self._completed
        for req, res, _res2 in events:
            completed(req, res)
        return len(events)

    def _close(self) -> None:
        self.ctx.close()
        os.close(self.notifier_fd)

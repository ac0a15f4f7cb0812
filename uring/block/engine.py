"""What every engine shares: QEMU's queueing rules around one submit path.

An engine turns block requests into kernel work (SQEs, iocbs, thread-pool
jobs) and completions back into finished requests.  The rules around that
are the same for all three, as in QEMU's ``block/io_uring.c`` and
``block/linux-aio.c``, so they live here once:

- **plug/unplug**: while plugged, requests only queue, up to ``max_batch``
  (QEMU's ``aio-max-batch``); the unplug that ends the outermost plug
  submits the rest with one submit.
- **queue depth**: at most ``queue_depth`` requests are in the kernel's
  hands; the rest wait in a software queue (``pending``) and go as
  completions free slots.
- **blocked**: if the kernel takes nothing (ring full, ``EAGAIN`` from the
  submit call), the queue is marked blocked and resubmitted from the
  completion path (``poll``), never spun on.
- **short transfers**: a read or write that moved fewer bytes than asked is
  resubmitted for the remainder, the offset advanced by what was done,
  accumulated across retries.  A read that hits end of file (0 bytes) is
  zero-filled to its length, as QEMU does for raw images; a write that makes
  no progress fails with ``ENOSPC``.
- **retries**: a request completing with ``-EAGAIN`` or ``-EINTR`` is
  resubmitted (a bounded number of times).

Engines implement four hooks: ``_issue`` (stage one request; False when
the kernel side has no room), ``_commit`` (hand the staged batch over),
``_reap`` (collect completions, calling ``_completed``) and ``_close``.
"""

from __future__ import annotations

import errno
from collections import deque
from typing import Deque, List, Optional

from .faults import IoFaults
from .request import BlockRequest, Op

__all__ = ["Engine", "MAX_RETRIES"]

#: Resubmissions of one request after -EAGAIN/-EINTR before giving up.
MAX_RETRIES = 1000


class Engine:
    name = "?"

    def __init__(self, fd: int, queue_depth: int, faults: Optional[IoFaults] = None,
                 max_batch: Optional[int] = None) -> None:
        if queue_depth < 1:
            raise ValueError(f"queue_depth must be >= 1, got {queue_depth}")
        self.fd = fd
        self.queue_depth = queue_depth
        # QEMU's aio-max-batch: even while plugged, submit once this many
        # wait, so the device starts on the first ones while the rest are
        # still being prepared (a whole queue in lockstep leaves it idle).
        self.max_batch = max_batch if max_batch else max(1, queue_depth // 2)
        self.faults = faults
        self.pending: Deque[BlockRequest] = deque()
        self.in_flight = 0
        self.plugged = 0
        self.blocked = False
        self.closed = False
        self._synthetic: Deque["tuple[BlockRequest, int]"] = deque()  # injected errno faults
        # counters, for tests and the benchmark
        self.submit_calls = 0
        self.resubmitted = 0

    # -- hooks -------------------------------------------------------------------

    def _issue(self, req: BlockRequest) -> bool:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _reap(self, wait: bool) -> int:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    # -- the queue ---------------------------------------------------------------

    def enqueue(self, req: BlockRequest) -> None:
        if self.closed:
            raise ValueError(f"{self.name} engine is closed")
        self.pending.append(req)
        if not self.plugged or len(self.pending) >= self.max_batch:
            self.kick()

    def plug(self) -> None:
        self.plugged += 1

    def unplug(self) -> None:
        if self.plugged <= 0:
            raise RuntimeError("unplug without plug")
        self.plugged -= 1
        if not self.plugged:
            self.kick()

    def kick(self) -> None:
        """Move pending requests into the kernel, up to the queue depth, and
        submit them as one batch."""
        staged = 0
        pending = self.pending
        while pending and self.in_flight < self.queue_depth and not self.blocked:
            req = pending[0]
            err = self.faults.error_for_next() if self.faults is not None else 0
            if err:  # fails as if refused by the kernel; delivered by poll()
                pending.popleft()
                self.in_flight += 1
                self._synthetic.append((req, -err))
                continue
            if not self._issue(req):
                self.blocked = True  # no room: the completion path retries
                break
            pending.popleft()
            self.in_flight += 1
            staged += 1
        if staged:
            self._commit()

    def poll(self, wait: bool = False) -> int:
        """Reap completions (blocking for at least one if *wait* and any are
        in flight), run their callbacks, and refill from the software queue.
        Returns the number of kernel completions handled."""
        n = 0
        synthetic = self._synthetic
        while synthetic:
            req, res = synthetic.popleft()
            self._completed(req, res)
            n += 1
        n += self._reap(wait and not n and self.in_flight > 0)
        if self.pending or self.blocked:
            self.blocked = False
            if not self.plugged:
                self.kick()
        return n

    def drain(self) -> None:
        """Wait until nothing is queued or in flight."""
        while self.in_flight or self.pending:
            if self.plugged and not self.in_flight:
                raise RuntimeError("drain while plugged with requests queued: unplug first")
            self.poll(wait=True)

    def release_thread(self) -> None:
        """The image is handed to another thread: an engine whose own
        object is bound to a thread (the io_uring engine's ring) lets go."""

    def close(self) -> None:
        if self.closed:
            return
        self.drain()
        self.closed = True
        self._close()

    # -- completion --------------------------------------------------------------

    def _completed(self, req: BlockRequest, res: int) -> None:
        """One kernel completion for *req*: finish it, or queue the rest."""
        self.in_flight -= 1
        if res < 0:
            if -res in (errno.EAGAIN, errno.EINTR) and req.retries < MAX_RETRIES:
                req.retries += 1
                self.resubmitted += 1
                self.pending.appendleft(req)
                return
            req.fail(-res)
            return
        op = req.op
        if op is Op.READ or op is Op.WRITE:
            done = req.done + res
            req.done = done
            if done == req.length:
                req.complete(done)  # the common case: all of it
                return
            if done < req.length:
                if res == 0:
                    if req.op is Op.WRITE:
                        req.fail(errno.ENOSPC)
                        return
                    for v in req.remaining_views():  # end of file: zeroes
                        v[:] = bytes(v.nbytes)
                    req.done = req.length
                else:
                    self.resubmitted += 1
                    self.pending.appendleft(req)  # the rest, at offset + done
                    return
            req.complete(req.length)
        else:
            req.complete(0)

    # -- what the engines share for staging ---------------------------------------

    def _transfer(self, req: BlockRequest) -> "tuple[int, List[memoryview]]":
        """(file offset, buffers) still to transfer for a read or write,
        shortened when a fault plan asks for a short count."""
        if not req.done and self.faults is None:
            return req.offset, req.views  # the common case: nothing done yet
        views = req.remaining_views()
        if self.faults is not None:
            views = self.faults.shorten(views, req.op is Op.WRITE)
        return req.offset + req.done, views

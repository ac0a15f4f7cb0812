"""``aio=threads``: a pool of worker threads doing ``preadv``/``pwritev``
(QEMU's ``util/thread-pool.c``).

Built the way QEMU builds its pool rather than as ``ThreadPoolExecutor``:
no future per request.  Jobs go through one ``SimpleQueue``; a worker does
the system call with the GIL released and appends ``(request, result)`` to
one completion list, waking the reaper only when that list goes from empty
to non-empty.  The submitting thread collects the whole list at once in
``poll``/``wait`` and runs the callbacks there: one hand-off per batch, and
callbacks always on the submitting thread.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import List, Optional, Tuple

from .engine import Engine
from .faults import IoFaults
from .request import Op, Request
from .sysops import FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, fallocate

__all__ = ["ThreadsEngine"]


class ThreadsEngine(Engine):
    name = "threads"

    def __init__(self, fd: int, queue_depth: int, *, faults: Optional[IoFaults] = None,
                 datasync: bool = True, workers: Optional[int] = None) -> None:
        super().__init__(fd, queue_depth, faults)
        self.datasync = datasync
        self._jobs: "queue.SimpleQueue[Optional[Tuple[Request, Op, int, list]]]" = queue.SimpleQueue()
        self._cond = threading.Condition(threading.Lock())
        self._done: List[Tuple[Request, int]] = []
        count = workers if workers is not None else min(queue_depth, 8)
        self._threads = [threading.Thread(target=self._worker, name=f"uring-block-{i}",
                                          daemon=True) for i in range(max(count, 1))]
        for t in self._threads:
            t.start()

    def _worker(self) -> None:
        fd, get, cond = self.fd, self._jobs.get, self._cond
        while True:
            job = get()
            if job is None:
                return
            req, op, offset, views = job
            try:
                if op is Op.READ:
                    res = os.preadv(fd, views, offset)
                elif op is Op.WRITE:
                    res = os.pwritev(fd, views, offset)
                elif op is Op.FLUSH:
                    (os.fdatasync if self.datasync else os.fsync)(fd)
                    res = 0
                elif op is Op.DISCARD:
                    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, req.length)
                    res = 0
                else:
                    fallocate(fd, FALLOC_FL_ZERO_RANGE, offset, req.length)
                    res = 0
            except OSError as exc:
                res = -(exc.errno or 5)
            with cond:
                done = self._done
                done.append((req, res))
                if len(done) == 1:
                    cond.notify()

    def _issue(self, req: Request) -> bool:
        if req.op is Op.READ or req.op is Op.WRITE:
            offset, views = self._transfer(req)
        else:
            offset, views = req.offset, []
        self._jobs.put((req, req.op, offset, views))
        return True

    def _commit(self) -> None:
        self.submit_calls += 1  # the jobs are already queued: nothing to hand over

    def _reap(self, wait: bool) -> int:
        with self._cond:
            if wait:
                while not self._done:
                    self._cond.wait()
            batch, self._done = self._done, []
        for req, res in batch:
            self._completed(req, res)
        return len(batch)

    def _close(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join()

"""``aio=threads``: a pool of worker threads doing ``preadv``/``pwritev``
(QEMU's ``util/thread-pool.c``).

Built the way QEMU builds its pool rather than as ``ThreadPoolExecutor``:
no future per request.  A submitted batch goes into one job queue with one
lock round trip; a worker takes the queue, does the system calls, and
appends all its ``(request, result)`` pairs to one completion list, waking
the reaper only when that list goes from empty to non-empty.  Reads are
tried with ``RWF_NOWAIT`` first, the way io_uring itself tries a read
inline before punting it to io-wq (see ``_worker``).  The submitting thread collects the whole list at once in
``poll``/``wait`` and runs the callbacks there: one hand-off per batch, and
callbacks always on the submitting thread.
"""

from __future__ import annotations

import errno
import fcntl
import os
import queue
import threading
from collections import deque
from typing import Deque, List, Optional, Tuple

from .engine import Engine, error_number
from .faults import IoFaults
from .request import BlockRequest, Op
from .sysops import FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, fallocate

__all__ = ["ThreadsEngine"]

_Job = Tuple[BlockRequest, Op, int, list]


class ThreadsEngine(Engine):
    name = "threads"

    def __init__(self, fd: int, queue_depth: int, *, faults: Optional[IoFaults] = None,
                 max_batch: Optional[int] = None,
                 datasync: bool = True, workers: Optional[int] = None) -> None:
        super().__init__(fd, queue_depth, faults, max_batch)
        self.datasync = datasync
        # Reads are first tried without blocking (RWF_NOWAIT): a page-cache
        # hit is done at once, a miss goes to the blocking queue.  With
        # O_DIRECT every read waits for the device: straight to blocking.
        self._try_nowait = (hasattr(os, "RWF_NOWAIT")
                            and not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)
        self._fast: Deque[_Job] = deque()
        self._slow: Deque[_Job] = deque()
        self._staged: List[_Job] = []
        self._job_cond = threading.Condition(threading.Lock())
        # Each worker batch, finished: (results, failures), the results
        # (request, res), the failures (request, -errno, cause: a job that
        # raised something other than OSError in the worker).  A C queue:
        # the owning thread's blocking get can be interrupted by a signal
        # handler's exception without taking anything (a Condition's wait
        # runs Python code that such an exception can break into, losing
        # the lock or the wake-up).
        self._finished: "queue.SimpleQueue[Tuple[List[Tuple[BlockRequest, int]], List[Tuple[BlockRequest, int, Optional[BaseException]]]]]" = queue.SimpleQueue()
        self._stopping = False
        self.punted = 0  # reads that would have blocked: handed to the pool
        count = workers if workers is not None else min(queue_depth, 8)
        self._threads = [threading.Thread(target=self._worker, name=f"uring-block-{i}",
                                          daemon=True) for i in range(max(count, 1))]
        for t in self._threads:
            t.start()

    def _worker(self) -> None:
        """Blocking jobs one at a time (so they overlap across the pool);
        otherwise the whole fast queue at once, reads with ``RWF_NOWAIT``:
        on page-cache hits one worker that keeps the GIL for a batch is
        several times faster than workers trading it per request.  Reads
        that would block are handed to the blocking queue and more workers
        woken, so misses still fan out over the pool."""
        fast, slow, job_cond, finished = self._fast, self._slow, self._job_cond, self._finished
        run, fd, threads = self._run, self.fd, len(self._threads)
        nowait = getattr(os, "RWF_NOWAIT", 0)
        while True:
            with job_cond:
                while not fast and not slow:
                    if self._stopping:
                        return
                    job_cond.wait()
                if slow:
                    batch, blocking = [slow.popleft()], True
                else:
                    batch, blocking = list(fast), False
                    fast.clear()
            results: List[Tuple[BlockRequest, int]] = []
            failed: List[Tuple[BlockRequest, int, Optional[BaseException]]] = []
            punted: List[_Job] = []
            for job in batch:
                req, op, offset, views = job
                try:
                    if not blocking and op is Op.READ and self._try_nowait:
                        try:
                            results.append((req, os.preadv(fd, views, offset, nowait)))
                        except BlockingIOError:
                            punted.append(job)
                        except OSError as exc:
                            if exc.errno == errno.EOPNOTSUPP:  # this file cannot NOWAIT
                                self._try_nowait = False
                                punted.append(job)
                            else:
                                results.append((req, -(exc.errno or errno.EIO)))
                        continue
                    results.append((req, run(req, op, offset, views)))
                except Exception as exc:
                    # A job the system call cannot take (a wrong type, a
                    # buffer it cannot use): that request fails; the
                    # worker, and every other job, goes on.
                    failed.append((req, -error_number(exc), exc))
            if punted:
                with job_cond:
                    self.punted += len(punted)
                    slow.extend(punted)
                    job_cond.notify(min(len(punted), threads))
            if results or failed:
                finished.put((results, failed))

    def _run(self, req: BlockRequest, op: Op, offset: int, views: list) -> int:
        fd = self.fd
        try:
            if op is Op.READ:
                return os.preadv(fd, views, offset)
            if op is Op.WRITE:
                return os.pwritev(fd, views, offset)
            if op is Op.FLUSH:
                (os.fdatasync if self.datasync else os.fsync)(fd)
            elif op is Op.DISCARD:
                fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, req.length)
            else:
                fallocate(fd, FALLOC_FL_ZERO_RANGE, offset, req.length)
            return 0
        except OSError as exc:
            return -(exc.errno or errno.EIO)

    def _issue(self, req: BlockRequest) -> bool:
        if req.op is Op.READ or req.op is Op.WRITE:
            offset, views = self._transfer(req)
        else:
            offset, views = req.offset, []
        self._staged.append((req, req.op, offset, views))
        return True

    def _commit(self) -> None:
        """Queue the staged batch with one lock round trip: to the fast
        queue for one worker, or (O_DIRECT) to the blocking queue for as
        many workers as there are jobs."""
        self.submit_calls += 1
        staged, self._staged = self._staged, []
        with self._job_cond:
            if self._try_nowait:
                self._fast.extend(staged)
                self._job_cond.notify()
            else:
                self._slow.extend(staged)
                self._job_cond.notify(min(len(staged), len(self._threads)))

    def _reap(self, wait: bool) -> int:
        # What the workers finished goes straight to the engine's queues,
        # then is delivered (see Engine._deliver_taken): from a get's
        # return to those C-level extends no Python code of ours runs, so a
        # signal handler's exception cannot lose a batch.
        finished, taken, synthetic = self._finished, self._taken, self._synthetic
        n = 0
        if wait and finished.empty():
            results, failed = finished.get()
            taken.extend(results)
            synthetic.extend(failed)
            n += len(results) + len(failed)
        while not finished.empty():
            results, failed = finished.get()
            taken.extend(results)
            synthetic.extend(failed)
            n += len(results) + len(failed)
        self._deliver_taken()
        return n

    def _close(self) -> None:
        with self._job_cond:
            self._stopping = True
            self._job_cond.notify_all()
        for t in self._threads:
            t.join()

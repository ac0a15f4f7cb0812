"""The timed loops: one job on one engine, every completion timed.

What is measured, per I/O, is *completion latency* as a program sees it:
from the moment it asks for the I/O (the ``os.preadv`` call, or
``Image.submit_read``) to the moment it learns the I/O is done (the call
returns, or the request's callback runs).  For the asynchronous engines
that includes staging the request in the software queue, the batched
submit system call and reaping; fio splits the same span into ``slat``
(submission) and ``clat`` (completion), this benchmark reports it whole as
``clat`` and leaves ``slat`` empty, as fio does for its synchronous
engines.

The loops keep the queue full: ``iodepth`` requests are always in flight,
each completion's callback issues the next one (refills made while one
batch of completions is handled go to the kernel as one submit, the
engine being plugged around ``poll``).  The synchronous loop is the
baseline every asynchronous engine must beat to be worth its machinery:
one ``os.preadv`` after another, no queue, no callbacks.

CPU time is ``getrusage(RUSAGE_SELF)`` over the timed part: it counts
every thread of the process, which includes the block layer's worker
threads and the kernel's io_uring threads (io-wq workers and the SQPOLL
thread belong to the submitting process's thread group).

Offsets: for random patterns a shuffled list of the region's blocks, so a
pass that is not ``time_based`` reads each block once, as fio's random map
does (regions above 2^18 blocks use 2^18 random blocks, repeating).  For
``randrw``/``rw`` each I/O is a read with probability ``rwmixread``%.
Every clone of a job (``numjobs``) gets its own seed.
"""

from __future__ import annotations

import errno
import mmap
import os
import random
import resource
import signal
import threading
import time
from array import array
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from .options import JobSpec

__all__ = ["Direction", "Measurement", "Progress", "run_job"]

#: ``progress(completed_ios, elapsed_seconds)``, called a few times a second.
Progress = Callable[[int, float], None]

_TICK_NS = 250_000_000
_NEVER = 1 << 62
_MAX_OFFSETS = 1 << 18
_PATTERN = 1 << 12  # op pattern length (power of two) for mixed jobs


@dataclass
class Direction:
    """Reads or writes of one run: a latency (ns) per completed I/O."""

    lat: "array[int]" = field(default_factory=lambda: array("q"))
    short: int = 0

    @property
    def ios(self) -> int:
        return len(self.lat)


@dataclass
class Measurement:
    """One run of one job (one clone)."""

    read: Direction
    write: Direction
    bs: int
    iodepth: int
    runtime: float = 0.0  # seconds, first submit to last completion
    usr: float = 0.0  # CPU seconds
    sys: float = 0.0
    ctx: int = 0
    majf: int = 0
    minf: int = 0
    error: int = 0
    error_text: str = ""

    @property
    def ios(self) -> int:
        return self.read.ios + self.write.ios


def _offsets(job: JobSpec, size: int, seed: int) -> Sequence[int]:
    blocks = size // job.bs
    if not job.random:
        return range(0, blocks * job.bs, job.bs)
    rnd = random.Random(seed)
    if blocks <= _MAX_OFFSETS:
        order = list(range(blocks))
        rnd.shuffle(order)
    else:
        order = [rnd.randrange(blocks) for _ in range(_MAX_OFFSETS)]
    bs = job.bs
    return [b * bs for b in order]


def _pattern(job: JobSpec, seed: int) -> List[int]:
    """1 for a write, 0 for a read; a power-of-two length."""
    reads = job.reads
    if reads >= 100:
        return [0]
    if reads <= 0:
        return [1]
    rnd = random.Random(seed ^ 0x5EED)
    return [0 if rnd.random() * 100 < reads else 1 for _ in range(_PATTERN)]


class _Clock:
    """The deadline and the progress ticks of one run."""

    def __init__(self, job: JobSpec, progress: Optional[Progress]) -> None:
        self.progress = progress
        self.start = time.perf_counter_ns()
        runtime_ns = int(job.runtime * 1e9)
        self.deadline = self.start + runtime_ns if runtime_ns > 0 else _NEVER
        self.next_check = min(self.deadline, self.start + _TICK_NS) if progress else self.deadline

    def check(self, now_ns: int, done: int) -> bool:
        """At or past ``next_check``: True once the runtime is over."""
        if now_ns >= self.deadline:
            return True
        if self.progress is not None:
            self.progress(done, (now_ns - self.start) / 1e9)
        self.next_check = min(self.deadline, now_ns + _TICK_NS)
        return False


def _io_count_limit(job: JobSpec, size: int) -> int:
    return _NEVER if job.time_based else size // job.bs


def _fill(m: mmap.mmap) -> None:
    m[:] = os.urandom(len(m))


def _finish(meas: Measurement, start_ns: int, ru0: Any) -> None:
    end = time.perf_counter_ns()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    meas.runtime = (end - start_ns) / 1e9
    meas.usr = ru1.ru_utime - ru0.ru_utime
    meas.sys = ru1.ru_stime - ru0.ru_stime
    meas.ctx = (ru1.ru_nvcsw - ru0.ru_nvcsw) + (ru1.ru_nivcsw - ru0.ru_nivcsw)
    meas.majf = ru1.ru_majflt - ru0.ru_majflt
    meas.minf = ru1.ru_minflt - ru0.ru_minflt


def _sync_loop(job: JobSpec, path: str, size: int, offs: Sequence[int], pattern: List[int],
               progress: Optional[Progress]) -> Measurement:
    """One ``os.preadv``/``os.pwritev`` after another on one page-aligned
    buffer (fio's psync/pvsync): the cost of the system call and of the
    interpreter around it, nothing else."""
    bs = job.bs
    writes = any(pattern)
    flags = (os.O_RDWR if writes else os.O_RDONLY) | os.O_CLOEXEC
    if job.direct:
        flags |= os.O_DIRECT
    meas = Measurement(Direction(), Direction(), bs, 1)
    fd = os.open(path, flags)
    buf = mmap.mmap(-1, bs)  # page aligned, as O_DIRECT wants
    try:
        if writes:
            _fill(buf)
        iov = [buf]
        now = time.perf_counter_ns
        limit = _io_count_limit(job, size)
        n_offs = len(offs)
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        clock = _Clock(job, progress)
        check = clock.next_check
        k = 0
        if pattern == [0]:  # the common case, kept free of per-I/O choices
            preadv = os.preadv
            append = meas.read.lat.append
            short = 0
            while k < limit:
                off = offs[k % n_offs]
                t = now()
                got = preadv(fd, iov, off)
                t1 = now()
                append(t1 - t)
                k += 1
                if got != bs:
                    short += 1
                if t1 >= check:
                    if clock.check(t1, k):
                        break
                    check = clock.next_check
            meas.read.short = short
        else:
            calls = (os.preadv, os.pwritev)
            appends = (meas.read.lat.append, meas.write.lat.append)
            dirs = (meas.read, meas.write)
            pmask = len(pattern) - 1
            while k < limit:
                w = pattern[k & pmask]
                off = offs[k % n_offs]
                t = now()
                got = calls[w](fd, iov, off)
                t1 = now()
                appends[w](t1 - t)
                k += 1
                if got != bs:
                    dirs[w].short += 1
                if t1 >= check:
                    if clock.check(t1, k):
                        break
                    check = clock.next_check
        _finish(meas, clock.start, ru0)
    finally:
        os.close(fd)
        buf.close()
    return meas


class _HeldSignals:
    """SIGINT and SIGTERM held while the block layer's bookkeeping runs.

    A ``KeyboardInterrupt`` raised between reaping a completion and
    finishing its request would lose the completion, and the draining
    close after it would then wait forever.  So while a job runs on an
    engine, the two signals are only recorded; the loop sees that, stops
    issuing, drains what is in flight, closes the image, and then the
    original handler runs (``KeyboardInterrupt``, or the command's
    ``SystemExit`` for SIGTERM).  Ignored or default dispositions are left
    alone, as is everything outside the main thread."""

    def __init__(self) -> None:
        self.pending: List[int] = []
        self._saved: Dict[int, Any] = {}

    def __enter__(self) -> "_HeldSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handler = signal.getsignal(sig)
                if callable(handler):
                    self._saved[sig] = handler
                    signal.signal(sig, self._hold)
        return self

    def _hold(self, signum: int, frame: Any) -> None:
        self.pending.append(signum)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        if self.pending and exc[0] is None:
            signum = self.pending[0]
            self._saved[signum](signum, None)


def _engine_loop(job: JobSpec, path: str, size: int, offs: Sequence[int], pattern: List[int],
                 progress: Optional[Progress]) -> Measurement:
    with _HeldSignals() as held:
        return _engine_run(job, path, size, offs, pattern, progress, held)


def _engine_run(job: JobSpec, path: str, size: int, offs: Sequence[int], pattern: List[int],
                progress: Optional[Progress], held: _HeldSignals) -> Measurement:
    """``iodepth`` requests kept in flight through ``uring.block``: each
    completion's callback records its latency and issues the next request;
    the loop polls with the engine plugged, so the refills of one batch of
    completions are submitted together."""
    from ..block import open_image

    bs, qd = job.bs, job.iodepth
    writes = any(pattern)
    meas = Measurement(Direction(), Direction(), bs, qd)
    arena = mmap.mmap(-1, qd * bs)  # one block per slot; page aligned at bs multiples of 4 KiB
    if writes:
        _fill(arena)
    views = [memoryview(arena)[i * bs:(i + 1) * bs] for i in range(qd)]
    extra: Dict[str, bool] = {}
    if job.engine == "io_uring":
        extra = dict(fixed_files=job.registerfiles, fixed_buffers=job.fixedbufs,
                     sqpoll=job.sqthread_poll, iopoll=job.hipri)
    img = open_image(path, aio=job.engine, cache="none" if job.direct else "writeback",
                     queue_depth=qd, read_only=not writes, **extra)
    now = time.perf_counter_ns
    limit = _io_count_limit(job, size)
    n_offs = len(offs)
    pmask = len(pattern) - 1
    lat_append = (meas.read.lat.append, meas.write.lat.append)
    started = [0] * qd
    kinds = [0] * qd
    issued = 0
    completed = 0
    stopping = False
    failure: List[OSError] = []
    try:
        if job.fixedbufs:
            img.register_buffers([arena])
        submit = (img.submit_read, img.submit_write)

        def issue(i: int) -> None:
            nonlocal issued
            k = issued
            issued = k + 1
            w = pattern[k & pmask]
            kinds[i] = w
            started[i] = now()
            submit[w](views[i], offs[k % n_offs], callbacks[i])

        def make_callback(i: int) -> Callable[[Any], None]:
            def done(req: Any) -> None:
                nonlocal completed, stopping
                t = now()
                completed += 1
                if req.error is not None:
                    failure.append(req.error)
                    stopping = True
                    return
                lat_append[kinds[i]](t - started[i])
                if not stopping and issued < limit:
                    issue(i)
            return done

        callbacks = [make_callback(i) for i in range(qd)]
        engine = img.engine
        poll, plug, unplug = engine.poll, engine.plug, engine.unplug
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        clock = _Clock(job, progress)
        check = clock.next_check
        plug()
        for i in range(min(qd, limit)):
            issue(i)
        unplug()
        signals = held.pending
        while completed < issued:
            plug()
            poll(True)
            unplug()
            t = now()
            if signals:
                stopping = True
            if t >= check:
                if clock.check(t, completed):
                    stopping = True
                check = clock.next_check if not stopping else _NEVER
        _finish(meas, clock.start, ru0)
    finally:
        stopping = True  # a Ctrl-C mid-run: the close below drains, nothing more is issued
        img.close()  # the arena is left to the collector: registered buffers pin it
    if failure:
        meas.error = failure[0].errno or errno.EIO
        meas.error_text = str(failure[0])
    return meas


def run_job(job: JobSpec, path: str, size: int, *, seed: int = 1,
            progress: Optional[Progress] = None) -> Measurement:
    """Run *job* on the first *size* bytes of *path*.  An engine that cannot
    be set up (``iopoll`` on a device without poll queues, O_DIRECT where
    the filesystem refuses it) is a Measurement with ``error`` set to the
    errno and ``error_text`` to the block layer's own explanation."""
    offs = _offsets(job, size, seed)
    pattern = _pattern(job, seed)
    try:
        if job.engine == "sync":
            return _sync_loop(job, path, size, offs, pattern, progress)
        return _engine_loop(job, path, size, offs, pattern, progress)
    except OSError as exc:
        meas = Measurement(Direction(), Direction(), job.bs, job.iodepth)
        meas.error = exc.errno or errno.EIO
        meas.error_text = str(exc)
        return meas
    except ValueError as exc:  # a combination the block layer refuses (iopoll without O_DIRECT)
        meas = Measurement(Direction(), Direction(), job.bs, job.iodepth)
        meas.error = errno.EINVAL
        meas.error_text = str(exc)
        return meas

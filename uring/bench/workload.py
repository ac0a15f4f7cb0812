"""The timed loops: one job on one engine, every completion timed.

What is measured, per I/O, is *completion latency* as a program sees it:
from the moment it asks for the I/O (the ``os.preadv`` call, or the
``Image.submit_reads``/``resubmit`` call) to the moment it learns the I/O
is done (the call returns, or ``Image.reap`` hands the request back).  For
the asynchronous engines that includes the batched submit system call and
reaping; fio splits the same span into ``slat`` (submission) and ``clat``
(completion), this benchmark reports it whole as ``clat`` and leaves
``slat`` empty, as fio does for its synchronous engines.  Each I/O's
completion time (``Direction.end``, ns since the job's start after
``ramp_time``) is kept too: the logs and the per-interval rates come from
it.

The engine loop is fio's io_u loop on ``uring.block.Image``'s batch
surface: ``iodepth`` requests, one per buffer slot, are kept in flight;
``reap`` hands back the finished ones (at least
``iodepth_batch_complete_min``, default 1, at most
``iodepth_batch_complete_max`` handled at a time), and they go again at
their next offsets with ``resubmit`` (fio's io_u reuse: no new objects),
all of a reap at once, or in batches of ``iodepth_batch_submit``.  The
batch sizes of both sides are counted (``submit_hist``, ``complete_hist``:
fio's ``iodepth_submit``/``iodepth_complete``; a submit counts as the
calls that carried it, ``submit_batch`` requests each under O_DIRECT).
A plain job (one block size, one direction, nothing else per I/O) runs on
``Image.arena`` instead, where the loop only logs each batch's reap and
resubmit times and slots; the latencies are worked out from that log after
the clock stops, the same numbers without the bookkeeping in the engine's
time (fio's is C, inside its loop).  The synchronous loop is
the baseline every asynchronous engine must beat to be worth its
machinery: one ``os.preadv`` after another, no queue.

What else a job may ask, and where it happens:

- ``ramp_time``: the loop runs from the start, but what completes before
  the ramp is over is not recorded; the runtime, the CPU time and a job's
  ``size`` count from then on (fio resets its counters at that point).
- ``fsync=N``/``fdatasync=N``: after every N writes issued the next slot
  carries a flush instead (``Image.submit_flush`` in the engines, which is
  a data sync; ``fsync``/``fdatasync`` in the synchronous loop); its
  latency goes to ``Measurement.sync``.  ``end_fsync``: one ``fsync`` when
  the job is done, outside the runtime.
- ``bsrange``: each I/O its own size, so it is submitted anew from its
  slot's buffer (``resubmit`` keeps a request's length).
- ``verify``: each write is stamped with a header (``verify.Stamper``);
  afterwards every block written is read back through the same engine
  and checked (``verify.Checker``), those reads counted as reads, as fio
  counts them, with the read direction's ``runtime`` including them.  A
  read-only job checks each block as it completes.  A bad block: the job
  fails with ``EILSEQ``, the first bad offset named.
- ``refill_buffers``/``zero_buffers``: new data before every write / all
  zeros (default: random data written once into the buffers).
- ``invalidate=1`` (buffered): the region is dropped from the page cache
  again as each new pass over it starts, as fio does when it reopens the
  file for the next pass of a time_based or ``loops`` job.
- ``exitall`` and interruption with clones as threads: a shared
  ``StopFlag``, looked at every 50 ms, ends the run.

CPU time is ``getrusage(RUSAGE_SELF)`` over the timed part: it counts
every thread of the process, which includes the block layer's worker
threads and the kernel's io_uring threads (io-wq workers and the SQPOLL
thread belong to the submitting process's thread group).  With clones as
threads (``thread``) each clone's CPU time is the whole process's.

The offsets, sizes and directions come from ``schedule``; every clone of a
job gets its own seed (from ``randseed``, or fixed with ``randrepeat=1``,
the default, or the time with ``randrepeat=0``).
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
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .options import JobSpec
from .schedule import NEVER, Schedule, build, dry_run_writes
from .verify import Checker, Stamper

__all__ = ["Direction", "Measurement", "Progress", "StopFlag", "clone_seed", "run_job"]

#: ``progress(completed_ios, elapsed_seconds)``, called a few times a second.
Progress = Callable[[int, float], None]

_TICK_NS = 250_000_000
_STOP_TICK_NS = 50_000_000  # how often a clone looks at the stop flag (exitall)
_NEVER = NEVER
_POOL = 1 << 20  # random data refill_buffers copies from


@dataclass
class Direction:
    """Reads, writes or syncs of one run, one entry per completed I/O at the
    same index in each array: ``lat``, its latency (ns); ``end``, its
    completion time in ns since the job's start (after ``ramp_time``);
    ``sizes``, its size in bytes, only when the job's sizes vary
    (``bsrange``; empty when every I/O is ``Measurement.bs``); ``offsets``,
    its file offset, only with ``log_offset`` (else empty).  ``bytes`` is
    the total moved; ``runtime`` the seconds this direction was measured
    (the job's runtime, plus the verify phase for reads)."""

    lat: "array[int]" = field(default_factory=lambda: array("q"))
    end: "array[int]" = field(default_factory=lambda: array("q"))
    sizes: "array[int]" = field(default_factory=lambda: array("q"))
    offsets: "array[int]" = field(default_factory=lambda: array("q"))
    short: int = 0
    bytes: int = 0
    runtime: float = 0.0

    @property
    def ios(self) -> int:
        return len(self.lat)


@dataclass
class Measurement:
    """One run of one job (one clone)."""

    read: Direction
    write: Direction
    bs: int  # the job's (smallest) block size
    iodepth: int
    runtime: float = 0.0  # seconds, from the start (after ramp_time) to the last completion
    usr: float = 0.0  # CPU seconds
    sys: float = 0.0
    ctx: int = 0
    majf: int = 0
    minf: int = 0
    error: int = 0
    error_text: str = ""
    #: submit batch size -> how many submits had it (fio's iodepth_submit)
    submit_hist: Dict[int, int] = field(default_factory=dict)
    #: completion batch size -> how many reaps returned that many (iodepth_complete)
    complete_hist: Dict[int, int] = field(default_factory=dict)
    #: fsync/fdatasync requests (fsync=N, fdatasync=N, end_fsync): fio's "sync" section
    sync: Direction = field(default_factory=Direction)
    #: the CPUs the job was allowed to run on (cpus_allowed), as it ran
    cpus: Tuple[int, ...] = ()
    #: verify: blocks checked and found bad
    verified: int = 0
    verify_bad: int = 0

    @property
    def ios(self) -> int:
        return self.read.ios + self.write.ios


class StopFlag:
    """One byte of shared memory the clones of a job look at a few times a
    second: set, they stop issuing, finish what is in flight and report
    (``exitall``, and Ctrl-C with clones as threads).  Anonymous shared
    memory, so forked clones see it as threads do."""

    def __init__(self) -> None:
        self._m = mmap.mmap(-1, 1)

    def set(self) -> None:
        self._m[0] = 1

    def is_set(self) -> bool:
        return self._m[0] != 0


class _Clock:
    """The deadline, the progress ticks and the stop flag of one run."""

    def __init__(self, ramp_ns: int, runtime_ns: int, progress: Optional[Progress],
                 stop: Optional[StopFlag]) -> None:
        self.progress = progress
        self.stop = stop
        self.start = time.perf_counter_ns()
        self.deadline = self.start + ramp_ns + runtime_ns if runtime_ns > 0 else _NEVER
        tick = _TICK_NS if progress is not None else _NEVER
        if stop is not None:
            tick = min(tick, _STOP_TICK_NS)
        self.tick = tick
        self.next_check = min(self.deadline, self.start + tick)

    def check(self, now_ns: int, done: int) -> bool:
        """At or past ``next_check``: True once the run must end."""
        if now_ns >= self.deadline:
            return True
        if self.stop is not None and self.stop.is_set():
            return True
        if self.progress is not None:
            self.progress(done, (now_ns - self.start) / 1e9)
        self.next_check = min(self.deadline, now_ns + self.tick)
        return False


@dataclass
class _Hooks:
    """What a phase does besides moving bytes (each None/0 when not asked)."""

    stamper: Optional[Stamper] = None  # verify: stamp every write
    checker: Optional[Checker] = None  # verify: check every read
    written: Optional[Dict[int, int]] = None  # verify: offset -> length of each block written
    pool: Optional[bytes] = None  # refill_buffers: random data to copy from
    fsync: int = 0
    fdatasync: int = 0
    log_offset: bool = False
    # invalidate=1, buffered: drop the region from the page cache again at the
    # start of every pass after the first (fio reopens, and so invalidates,
    # the file for each pass of a time_based or loops job)
    repass: Optional[Callable[[], None]] = None

    @property
    def plain(self) -> bool:
        return (self.stamper is None and self.checker is None and self.written is None
                and self.pool is None and not self.fsync and not self.fdatasync
                and not self.log_offset)


_consume: Callable[[Any], None] = deque(maxlen=0).extend


def count_submits(hist: Dict[int, int], n: int, per_call: int) -> None:
    """*n* requests handed to the image at once, as the submit calls that
    carried them (fio's ``iodepth_submit`` counts calls): one, or runs of
    *per_call* (the image's ``submit_batch``) and the rest."""
    if not per_call or n <= per_call:
        hist[n] = hist.get(n, 0) + 1
        return
    full, rest = divmod(n, per_call)
    hist[per_call] = hist.get(per_call, 0) + full
    if rest:
        hist[rest] = hist.get(rest, 0) + 1


def _fill(m: mmap.mmap) -> None:
    m[:] = os.urandom(len(m))


def _finish(meas: Measurement, start_ns: int, ru0: Any,
            replay: Optional[Callable[[], None]] = None) -> None:
    """The run's time and CPU, taken now; then *replay* (the latencies
    logged by batch, worked out after the clock stopped), then the totals."""
    end = time.perf_counter_ns()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    meas.runtime = (end - start_ns) / 1e9
    meas.usr = ru1.ru_utime - ru0.ru_utime
    meas.sys = ru1.ru_stime - ru0.ru_stime
    meas.ctx = (ru1.ru_nvcsw - ru0.ru_nvcsw) + (ru1.ru_nivcsw - ru0.ru_nivcsw)
    meas.majf = ru1.ru_majflt - ru0.ru_majflt
    meas.minf = ru1.ru_minflt - ru0.ru_minflt
    if replay is not None:
        replay()
    for d in (meas.read, meas.write):
        d.bytes = sum(d.sizes) if d.sizes else d.ios * meas.bs
        d.runtime = meas.runtime if d.ios else 0.0


def _refill(view: memoryview, pool: memoryview, at: int, length: int) -> int:
    """refill_buffers: new data in the first *length* bytes of *view*, from
    *pool* at *at*; returns where the next refill starts."""
    view[:length] = pool[at:at + length]
    return (at + 4093) % (len(pool) - length + 1)


def _sync_phase(job: JobSpec, path: str, sched: Schedule, limit: int, hooks: _Hooks,
                progress: Optional[Progress], stop: Optional[StopFlag], ramp_ns: int,
                runtime_ns: int) -> Measurement:
    """One ``os.preadv``/``os.pwritev`` after another on one page-aligned
    buffer (fio's psync/pvsync): the cost of the system call and of the
    interpreter around it, nothing else."""
    bs = sched.bs
    writes = sched.writes
    flags = (os.O_RDWR if writes else os.O_RDONLY) | os.O_CLOEXEC
    if job.direct:
        flags |= os.O_DIRECT
    meas = Measurement(Direction(), Direction(), bs, 1)
    fd = os.open(path, flags)
    var = sched.lens is not None
    buf = mmap.mmap(-1, -(-job.max_bs // mmap.PAGESIZE) * mmap.PAGESIZE if var else bs)
    try:
        if writes and not job.zero_buffers:
            _fill(buf)
        offs, period = sched.offs, sched.period
        now = time.perf_counter_ns
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        clock = _Clock(ramp_ns, runtime_ns, progress, stop)
        t0 = clock.start
        check = clock.next_check
        k = 0
        j = 0  # k % period
        repass = hooks.repass
        if hooks.plain and not var and not ramp_ns:
            iov = [buf]
            if sched.ops is None and not sched.op:  # reads only, kept free of per-I/O choices
                preadv = os.preadv
                append = meas.read.lat.append
                end_append = meas.read.end.append
                short = 0
                while k < limit:
                    off = offs[j]
                    t = now()
                    got = preadv(fd, iov, off)
                    t1 = now()
                    append(t1 - t)
                    end_append(t1 - t0)
                    k += 1
                    j += 1
                    if got != bs:
                        short += 1
                    if j == period:
                        j = 0
                        if repass is not None:
                            repass()
                    if t1 >= check:
                        if clock.check(t1, k):
                            break
                        check = clock.next_check
                meas.read.short = short
            else:
                calls = (os.preadv, os.pwritev)
                appends = (meas.read.lat.append, meas.write.lat.append)
                ends = (meas.read.end.append, meas.write.end.append)
                dirs = (meas.read, meas.write)
                ops = sched.ops
                w = sched.op
                while k < limit:
                    if ops is not None:
                        w = ops[j]
                    t = now()
                    got = calls[w](fd, iov, offs[j])
                    t1 = now()
                    appends[w](t1 - t)
                    ends[w](t1 - t0)
                    k += 1
                    j += 1
                    if got != bs:
                        dirs[w].short += 1
                    if j == period:
                        j = 0
                        if repass is not None:
                            repass()
                    if t1 >= check:
                        if clock.check(t1, k):
                            break
                        check = clock.next_check
        else:
            t0, ru0 = _sync_general(job, fd, buf, sched, limit, hooks, clock, meas, ramp_ns)
        _finish(meas, t0, ru0)
        meas.submit_hist = {1: meas.ios} if meas.ios else {}
        meas.complete_hist = dict(meas.submit_hist)
    finally:
        os.close(fd)
        buf.close()
    return meas


def _tpe_phase(job: JobSpec, path: str, sched: Schedule, limit: int, hooks: _Hooks,
               progress: Optional[Progress], stop: Optional[StopFlag], ramp_ns: int,
               runtime_ns: int) -> Measurement:
    """``ioengine=tpe``: what a Python program without this package writes
    for ``iodepth`` reads in flight: a ``concurrent.futures``
    ``ThreadPoolExecutor`` (``min(iodepth, 8)`` workers), one future per
    ``os.preadv``/``os.pwritev``, refilled from the main thread as futures
    finish.  The baseline the ``threads`` engine must beat.  Plain jobs
    only: one block size, no verify, fsync or buffer refills."""
    import concurrent.futures as cf

    if not hooks.plain or sched.lens is not None or ramp_ns:
        raise ValueError("ioengine=tpe runs plain jobs only: one block size, no verify, "
                         "fsync, fdatasync, refill_buffers, log_offset or ramp_time")
    bs, qd = sched.bs, max(1, min(job.iodepth, limit))
    writes = sched.writes
    flags = (os.O_RDWR if writes else os.O_RDONLY) | os.O_CLOEXEC
    if job.direct:
        flags |= os.O_DIRECT
    meas = Measurement(Direction(), Direction(), bs, job.iodepth)
    fd = os.open(path, flags)
    bufs = [[mmap.mmap(-1, bs)] for _ in range(qd)]  # page aligned, as O_DIRECT wants
    if writes and not job.zero_buffers:
        for b in bufs:
            _fill(b[0])
    calls = (os.preadv, os.pwritev)
    dirs = (meas.read, meas.write)
    offs, period, ops, repass = sched.offs, sched.period, sched.ops, hooks.repass
    now = time.perf_counter_ns
    futs: Dict[Any, Tuple[int, int, int]] = {}  # future -> (slot, direction, started)
    failure: List[BaseException] = []
    try:
        with cf.ThreadPoolExecutor(max_workers=min(qd, 8)) as pool:
            ru0 = resource.getrusage(resource.RUSAGE_SELF)
            clock = _Clock(0, runtime_ns, progress, stop)
            t0 = clock.start
            check = clock.next_check
            k = 0
            stopping = False

            def issue(slot: int) -> None:
                nonlocal k
                j = k % period
                if not j and k and repass is not None:
                    repass()
                w = sched.op if ops is None else ops[j]
                k += 1
                futs[pool.submit(calls[w], fd, bufs[slot], offs[j])] = (slot, w, now())

            for slot in range(qd):
                issue(slot)
            while futs:
                done, _ = cf.wait(futs, return_when=cf.FIRST_COMPLETED)
                t = now()
                for f in done:
                    slot, w, started = futs.pop(f)
                    try:
                        got = f.result()
                    except OSError as exc:
                        failure.append(exc)
                        stopping = True
                        continue
                    d = dirs[w]
                    d.lat.append(t - started)
                    d.end.append(t - t0)
                    if got != bs:
                        d.short += 1
                    if not stopping and k < limit:
                        issue(slot)
                n = len(done)
                meas.complete_hist[n] = meas.complete_hist.get(n, 0) + 1
                if t >= check:
                    if clock.check(t, meas.ios):
                        stopping = True
                    check = clock.next_check if not stopping else _NEVER
            _finish(meas, t0, ru0)
        meas.submit_hist = {1: meas.ios} if meas.ios else {}
    finally:
        os.close(fd)
    if failure:
        first = failure[0]
        meas.error = getattr(first, "errno", None) or errno.EIO
        meas.error_text = str(first)
    return meas


def _sync_general(job: JobSpec, fd: int, buf: mmap.mmap, sched: Schedule, limit: int,
                  hooks: _Hooks, clock: _Clock, meas: Measurement,
                  ramp_ns: int) -> Tuple[int, Any]:
    """The synchronous loop with everything a job may add: sizes that vary,
    ramp_time, fsync/fdatasync every N writes, verify stamps and checks,
    refill_buffers, log_offset.  Returns (start of the measured part, its
    rusage then)."""
    bs = sched.bs
    offs, lens, ops, period = sched.offs, sched.lens, sched.ops, sched.period
    whole = memoryview(buf)
    calls = (os.preadv, os.pwritev)
    dirs = (meas.read, meas.write)
    stamper, checker, written = hooks.stamper, hooks.checker, hooks.written
    pool = memoryview(hooks.pool) if hooks.pool is not None else None
    fs_n, fds_n = hooks.fsync, hooks.fdatasync
    log_off = hooks.log_offset
    fatal = job.verify_fatal
    sync = meas.sync
    now = time.perf_counter_ns
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    start = clock.start
    recording = not ramp_ns
    t0 = start + ramp_ns
    to_issue = limit if recording else _NEVER
    check = clock.next_check
    k = 0
    done = 0
    writes_issued = 0
    sync_due = 0
    refill_at = 0
    dirty = False
    w = sched.op
    length = bs
    iov = [whole[:bs]]
    repass = hooks.repass
    while to_issue > 0:
        if sync_due:
            t = now()
            (os.fsync if sync_due == 1 else os.fdatasync)(fd)
            t1 = now()
            sync_due = 0
            if recording:
                sync.lat.append(t1 - t)
                sync.end.append(t1 - t0)
        j = k % period
        if not j and k and repass is not None:
            repass()
        k += 1
        to_issue -= 1
        off = offs[j]
        if ops is not None:
            w = ops[j]
        if lens is not None:
            length = lens[j]
            iov = [whole[:length]]
        if w:
            if pool is not None:
                refill_at = _refill(whole, pool, refill_at, length)
            if stamper is not None:
                stamper.stamp(whole, 0, off, length, refill=pool is not None or dirty)
                dirty = False
            if written is not None:
                written[off] = length
            writes_issued += 1
            if fs_n and writes_issued % fs_n == 0:
                sync_due = 1
            elif fds_n and writes_issued % fds_n == 0:
                sync_due = 2
        t = now()
        got = calls[w](fd, iov, off)
        t1 = now()
        d = dirs[w]
        if got != length:
            d.short += 1
        if not w:
            dirty = True
            if checker is not None and checker.check(whole, off, length) is not None and fatal:
                to_issue = 0
        if not recording and t1 >= t0:
            recording = True
            ru0 = resource.getrusage(resource.RUSAGE_SELF)
            if limit < _NEVER:
                to_issue = limit - 1  # this one completed after the ramp: it counts
        if recording:
            d.lat.append(t1 - t)
            d.end.append(t1 - t0)
            if lens is not None:
                d.sizes.append(length)
            if log_off:
                d.offsets.append(off)
            done += 1
        if t1 >= check:
            if clock.check(t1, done):
                break
            check = clock.next_check
    return t0, ru0


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


def _engine_phase(job: JobSpec, path: str, sched: Schedule, limit: int, hooks: _Hooks,
                  progress: Optional[Progress], stop: Optional[StopFlag], ramp_ns: int,
                  runtime_ns: int) -> Measurement:
    with _HeldSignals() as held:
        return _engine_run(job, path, sched, limit, hooks, progress, stop, ramp_ns,
                           runtime_ns, held)


def _engine_run(job: JobSpec, path: str, sched: Schedule, limit: int, hooks: _Hooks,
                progress: Optional[Progress], stop: Optional[StopFlag], ramp_ns: int,
                runtime_ns: int, held: _HeldSignals) -> Measurement:
    """fio's io_u loop on ``Image``'s batch surface: one request per buffer
    slot (``tag`` = the slot), reaped in batches and sent again with
    ``resubmit``; the plain case (fixed size, nothing but reads and writes
    to time) keeps per-I/O work to a latency and a completion time."""
    from ..block import Capability, Op, open_image

    op_of = (Op.READ, Op.WRITE)
    bs = sched.bs
    var = sched.lens is not None
    nslots = max(1, min(job.iodepth, limit))
    slot = -(-job.max_bs // 4096) * 4096 if var else bs
    writes = sched.writes
    meas = Measurement(Direction(), Direction(), bs, job.iodepth)
    arena = mmap.mmap(-1, nslots * slot)  # page aligned; slots at bs multiples
    if writes and not job.zero_buffers:
        _fill(arena)
    whole = memoryview(arena)
    views = [whole[i * slot:i * slot + slot] for i in range(nslots)]
    extra: Dict[str, bool] = {}
    if job.engine == "io_uring":
        extra = dict(fixed_files=job.registerfiles, fixed_buffers=job.fixedbufs,
                     sqpoll=job.sqthread_poll, iopoll=job.hipri)
    bsub = job.iodepth_batch_submit if 0 < job.iodepth_batch_submit < nslots else 0
    # max_batch: the engine submits a plugged batch as one call; submit_batch:
    # that call hands over at most iodepth_batch_submit (unset: the image's
    # default, a few at a time under O_DIRECT, everything buffered)
    img = open_image(path, aio=job.engine, cache="none" if job.direct else "writeback",
                     queue_depth=nslots, read_only=not writes, max_batch=bsub or nslots,
                     submit_batch=bsub or None, **extra)
    per_call = img.submit_batch
    offs, lens, opsb, const, period = sched.offs, sched.lens, sched.ops, sched.op, sched.period
    stamper, checker, written = hooks.stamper, hooks.checker, hooks.written
    pool = memoryview(hooks.pool) if hooks.pool is not None else None
    fs_n, fds_n = hooks.fsync, hooks.fdatasync
    log_off = hooks.log_offset
    repass = hooks.repass
    fatal = job.verify_fatal
    cmin = job.iodepth_batch_complete_min
    cmax = job.iodepth_batch_complete_max
    if cmax and cmax < max(cmin, 1):
        cmax = max(cmin, 1)  # fio: a max below the min is the min
    general = var or not hooks.plain or bool(cmax) or cmin == 0
    rd, wr = meas.read, meas.write
    lat_app = (rd.lat.append, wr.lat.append)
    end_app = (rd.end.append, wr.end.append)
    lat_ext = (wr if const else rd).lat.extend
    end_ext = (wr if const else rd).end.extend
    size_app = (rd.sizes.append, wr.sizes.append)
    off_app = (rd.offsets.append, wr.offsets.append)
    sh, ch = meas.submit_hist, meas.complete_hist
    sync = meas.sync
    started = [0] * nslots
    kinds = [const] * nslots
    s_off = [0] * nslots
    s_len = [bs] * nslots
    dirty = [False] * nslots  # the slot holds read data: its stamp state is stale
    reqs: List[Any] = [None] * nslots
    unparked: List[int] = []  # slots whose flush finished
    failure: List[OSError] = []
    now = time.perf_counter_ns
    k = 0
    to_issue = limit if not ramp_ns else _NEVER
    inflight = 0
    flushes = 0
    writes_issued = 0
    sync_due = 0
    refill_at = 0
    stopping = False
    recording = not ramp_ns
    t0 = 0

    def prepare(free: Sequence[int]) -> Tuple[List[Tuple[int, int, int, int]], List[int]]:
        """The next I/O of each free slot, its buffer made ready (refill,
        stamp); a slot takes a flush instead when one is due."""
        nonlocal k, to_issue, writes_issued, sync_due, refill_at
        items: List[Tuple[int, int, int, int]] = []
        flush_slots: List[int] = []
        for s in free:
            if stopping or to_issue <= 0:
                break
            if sync_due:
                flush_slots.append(s)
                sync_due = 0
                continue
            j = k % period
            if not j and k and repass is not None:
                repass()
            k += 1
            to_issue -= 1
            off = offs[j]
            w = const if opsb is None else opsb[j]
            length = bs if lens is None else lens[j]
            if w:
                view = views[s]
                if pool is not None:
                    refill_at = _refill(view, pool, refill_at, length)
                if stamper is not None:
                    stamper.stamp(view, s, off, length, refill=pool is not None or dirty[s])
                    dirty[s] = False
                if written is not None:
                    written[off] = length
                writes_issued += 1
                if fs_n and writes_issued % fs_n == 0:
                    sync_due = 1
                elif fds_n and writes_issued % fds_n == 0:
                    sync_due = 2
            else:
                dirty[s] = True
            kinds[s] = w
            s_off[s] = off
            s_len[s] = length
            items.append((s, off, length, w))
        return items, flush_slots

    def submit(items: List[Tuple[int, int, int, int]]) -> None:
        """Send *items*: new requests for slots without one (or when sizes
        vary), ``resubmit`` for the rest; in batches of iodepth_batch_submit."""
        if not items:
            return
        step = bsub or len(items)
        for c in range(0, len(items), step):
            chunk = items[c:c + step]
            fresh = [it for it in chunk if var or reqs[it[0]] is None]
            again = [it for it in chunk if not (var or reqs[it[0]] is None)] if fresh else chunk
            ts = now()
            with img.plugged():  # one submit for the chunk, reads and writes together
                for w in (0, 1):
                    batch = [it for it in fresh if it[3] == w]
                    if batch:
                        submit_new = img.submit_writes if w else img.submit_reads
                        for r in submit_new([views[s][:n] for s, _, n, _ in batch],
                                            [o for _, o, _, _ in batch],
                                            tags=[s for s, _, _, _ in batch]):
                            reqs[r.tag] = r
                if again:
                    img.resubmit([reqs[s] for s, _, _, _ in again], [o for _, o, _, _ in again],
                                 None if opsb is None else [op_of[w] for _, _, _, w in again])
            for it in chunk:
                started[it[0]] = ts
            count_submits(sh, len(chunk), per_call)

    def flush(slots: List[int]) -> None:
        nonlocal flushes
        for s in slots:
            def flushed(req: Any, s: int = s, ts: int = now()) -> None:
                nonlocal flushes
                t = now()
                flushes -= 1
                if req.error is not None:
                    failure.append(req.error)
                elif recording:
                    sync.lat.append(t - ts)
                    sync.end.append(t - t0)
                unparked.append(s)

            img.submit_flush(flushed)
            flushes += 1

    if not general and opsb is None and not bsub and cmin <= 1 \
            and img.supports(Capability.ARENA):
        try:
            return _arena_run(job, img, sched, limit, hooks, meas, nslots, progress, stop,
                              ramp_ns, runtime_ns, held)
        finally:
            img.close()
    try:
        if job.fixedbufs:
            img.register_buffers([arena])
        reap, resubmit = img.reap, img.resubmit
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        clock = _Clock(ramp_ns, runtime_ns, progress, stop)
        start = clock.start
        t0 = start + ramp_ns
        check = clock.next_check
        signals = held.pending
        completed = 0
        backlog: List[Any] = []
        items, flush_slots = prepare(range(nslots))
        submit(items)
        flush(flush_slots)
        inflight = len(items)
        while inflight or flushes or unparked:
            if backlog:  # completions past iodepth_batch_complete_max: handled next
                done = backlog[:cmax]
                del backlog[:cmax]
                ch[len(done)] = ch.get(len(done), 0) + 1
            elif inflight:
                done = reap(True, min(cmin, inflight)) if cmin else reap(False)
                if cmax and len(done) > cmax:
                    backlog = done[cmax:]
                    done = done[:cmax]
                ch[len(done)] = ch.get(len(done), 0) + 1
            else:
                img.wait()  # only flushes out: their callbacks free the slots
                done = []
            t = now()
            n = len(done)
            inflight -= n
            if not recording and t >= t0:
                recording = True  # the ramp is over: counters start now
                ru0 = resource.getrusage(resource.RUSAGE_SELF)
                sh.clear()
                ch.clear()
                if limit < _NEVER:
                    to_issue = max(0, limit - inflight - n)
            if n:
                e = t - t0
                if general:
                    for r in done:
                        s = r.tag
                        if r.error is not None:
                            failure.append(r.error)
                            continue
                        w = kinds[s]
                        if checker is not None and not w:
                            if checker.check(views[s], s_off[s], s_len[s]) is not None and fatal:
                                stopping = True
                        if recording:
                            lat_app[w](t - started[s])
                            end_app[w](e)
                            if var:
                                size_app[w](s_len[s])
                            if log_off:
                                off_app[w](s_off[s])
                elif opsb is None:
                    if recording:
                        lats = [t - started[r.tag] for r in done if r.error is None]
                        lat_ext(lats)
                        end_ext([e] * len(lats))
                        if len(lats) != n:
                            failure.extend(r.error for r in done if r.error is not None)
                    elif any(r.error is not None for r in done):
                        failure.extend(r.error for r in done if r.error is not None)
                else:
                    for r in done:
                        if r.error is not None:
                            failure.append(r.error)
                        elif recording:
                            s = r.tag
                            w = kinds[s]
                            lat_app[w](t - started[s])
                            end_app[w](e)
                if recording:
                    completed += n
                if failure:
                    stopping = True
            if signals:
                stopping = True
            if t >= check:
                if clock.check(t, completed):
                    stopping = True
                check = clock.next_check if not stopping else _NEVER
            if general:
                free = [r.tag for r in done]
                if unparked:
                    free += unparked
                    unparked.clear()
                if free and not stopping:
                    items, flush_slots = prepare(free)
                    submit(items)
                    flush(flush_slots)
                    inflight += len(items)
            elif n and not stopping and to_issue > 0:
                m = n if n <= to_issue else to_issue
                sub = done if m == n else done[:m]
                j = k % period
                if repass is not None and ((not j and k) or j + m > period):
                    repass()  # a new pass starts in this batch
                if j + m <= period:
                    o: Sequence[int] = offs[j:j + m]
                    ob = None if opsb is None else opsb[j:j + m]
                else:
                    idx = [(k + x) % period for x in range(m)]
                    o = [offs[i] for i in idx]
                    ob = None if opsb is None else bytes(opsb[i] for i in idx)
                k += m
                to_issue -= m
                opl = None
                if ob is not None:
                    opl = [op_of[w] for w in ob]
                    for r, w in zip(sub, ob):
                        kinds[r.tag] = w
                if bsub and m > bsub:
                    ol = list(o)
                    for c in range(0, m, bsub):
                        part = sub[c:c + bsub]
                        ts = now()
                        for r in part:
                            started[r.tag] = ts
                        resubmit(part, ol[c:c + bsub], None if opl is None else opl[c:c + bsub])
                        count_submits(sh, len(part), per_call)
                else:
                    ts = now()
                    for r in sub:
                        started[r.tag] = ts
                    resubmit(sub, o, opl)
                    count_submits(sh, m, per_call)
                inflight += m
        if not recording:  # the ramp outlasted the run
            ru0 = resource.getrusage(resource.RUSAGE_SELF)
            t0 = now()
        _finish(meas, t0, ru0)
    finally:
        stopping = True  # a Ctrl-C mid-run: the close below drains, nothing more is issued
        img.close()  # the arena is left to the collector: registered buffers pin it
    if failure:
        meas.error = failure[0].errno or errno.EIO
        meas.error_text = str(failure[0])
    return meas


def _arena_run(job: JobSpec, img: Any, sched: Schedule, limit: int, hooks: _Hooks,
               meas: Measurement, nslots: int, progress: Optional[Progress],
               stop: Optional[StopFlag], ramp_ns: int, runtime_ns: int,
               held: _HeldSignals) -> Measurement:
    """The plain loop (one block size, only reads or only writes, nothing
    else to do per I/O) on ``Image.arena``: fio's io_u pool as fixed slots,
    each reap's slots and results two arrays, sent straight back with their
    next offsets.  The loop itself only logs each batch (the reap's time,
    slots and, when not all whole, results; the resubmit's time and count);
    the latencies and completion times are replayed from that log after the
    clock stops (``_replay``), so the harness's bookkeeping is not counted
    as the engine's time.  The numbers are the same ones: each I/O's
    latency is its reap's time minus its submit's."""
    bs, offs, period, repass = sched.bs, sched.offs, sched.period, hooks.repass
    ar = img.arena(nslots, bs, write=bool(sched.op), registered=job.fixedbufs)
    if sched.op and not job.zero_buffers:
        _fill(ar.arena)
    direction = meas.write if sched.op else meas.read
    sh, ch = meas.submit_hist, meas.complete_hist
    batches: List[Tuple[int, Any, Any, bool, int, int]] = []
    note = batches.append
    now = time.perf_counter_ns
    submit, reap = ar.submit, ar.reap
    failure: List[OSError] = []
    to_issue = limit if not ramp_ns else _NEVER
    recording = not ramp_ns
    stopping = False
    completed = 0
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    clock = _Clock(ramp_ns, runtime_ns, progress, stop)
    t0 = clock.start + ramp_ns
    check = clock.next_check
    signals = held.pending
    first = min(nslots, to_issue)
    ts = now()
    submit(list(range(first)), offs[:first])
    note((ts, array("I", range(first)), None, False, ts, first))  # the first batch: no reap
    per_call = img.submit_batch
    count_submits(sh, first, per_call)
    k = first
    to_issue -= first
    inflight = first
    while inflight:
        slots, res = reap(True)
        t = now()
        n = len(slots)
        inflight -= n
        ch[n] = ch.get(n, 0) + 1
        if not recording and t >= t0:
            recording = True  # the ramp is over: counters start now
            ru0 = resource.getrusage(resource.RUSAGE_SELF)
            sh.clear()
            ch.clear()
            if limit < _NEVER:
                to_issue = max(0, limit - inflight - n)
        whole = res.count(bs) == n
        if not whole:
            failure += [err for _, err in ar.failures(slots, res)]
            stopping = True
        if recording:
            completed += n
        if signals:
            stopping = True
        if t >= check:
            if clock.check(t, completed):
                stopping = True
            check = clock.next_check if not stopping else _NEVER
        if n and not stopping and to_issue > 0:
            m = n if n <= to_issue else to_issue
            sub = slots if m == n else slots[:m]
            j = k % period
            if repass is not None and ((not j and k) or j + m > period):
                repass()  # a new pass starts in this batch
            o = offs[j:j + m] if j + m <= period else [offs[(k + x) % period] for x in range(m)]
            k += m
            to_issue -= m
            ts = now()
            submit(sub, o)
            note((t, slots, None if whole else res, recording, ts, m))
            count_submits(sh, m, per_call)
            inflight += m
        else:
            note((t, slots, None if whole else res, recording, 0, 0))
    if not recording:  # the ramp outlasted the run
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = now()
    _finish(meas, t0, ru0, partial(_replay, batches, nslots, bs, t0, direction))
    if failure:
        meas.error = failure[0].errno or errno.EIO
        meas.error_text = str(failure[0])
    return meas


def _replay(batches: Sequence[Tuple[int, Any, Any, bool, int, int]], nslots: int, bs: int,
            t0: int, direction: Direction) -> None:
    """The latencies and completion times of an arena run, from its log:
    per batch ``(t, slots, res, recording, ts, m)``, the reap at *t* of
    *slots* (*res* their results when not all whole, else None; counted
    when *recording*, i.e. after the ramp), then the first *m* of them
    submitted again at *ts*.  A slot's latency is its reap's *t* minus
    the *ts* of the submit that sent it; only whole transfers count (a
    failed one ends the run, as in fio)."""
    started = array("q", bytes(8 * nslots))
    lat_ext, end_ext = direction.lat.extend, direction.end.extend
    for t, slots, res, recording, ts, m in batches:
        if recording and slots:
            if res is None:
                lats = [t - started[s] for s in slots]
            else:
                lats = [t - started[s] for s, r in zip(slots, res) if r == bs]
            lat_ext(lats)
            end_ext([t - t0] * len(lats))
        if m:
            _consume(map(started.__setitem__, slots[:m], repeat(ts)))


def _end_fsync(path: str, meas: Measurement) -> None:
    """end_fsync: one fsync(2) of the file once the job is done; its latency
    goes to the sync direction, outside the runtime."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        t = time.perf_counter_ns()
        os.fsync(fd)
        t1 = time.perf_counter_ns()
    finally:
        os.close(fd)
    meas.sync.lat.append(t1 - t)
    meas.sync.end.append(int(meas.runtime * 1e9) + (t1 - t))


def _verify_phase(job: JobSpec, path: str, written: Dict[int, int], checker: Checker,
                  phase: Any) -> Measurement:
    """Read back every block in *written* (in file order) through the job's
    engine, checking each against its header."""
    blocks = sorted(written.items())
    lens = array("q", [n for _, n in blocks]) if job.variable_bs else None
    sched = Schedule(array("q", [o for o, _ in blocks]), lens, None, 0, len(blocks),
                     job.min_bs)
    hooks = _Hooks(checker=checker, log_offset=job.log_offset)
    meas: Measurement = phase(job, path, sched, len(blocks), hooks, None, None, 0, 0)
    return meas


def _merge_verify(meas: Measurement, v: Measurement) -> None:
    """The verify phase's reads join the job's reads (fio counts them),
    after the job's runtime on the time axis."""
    shift = int(meas.runtime * 1e9)
    r, vr = meas.read, v.read
    r.lat.extend(vr.lat)
    r.end.extend([x + shift for x in vr.end])
    r.sizes.extend(vr.sizes)
    r.offsets.extend(vr.offsets)
    r.short += vr.short
    r.bytes += vr.bytes
    r.runtime += v.runtime
    for mine, theirs in ((meas.submit_hist, v.submit_hist), (meas.complete_hist, v.complete_hist)):
        for size, count in theirs.items():
            mine[size] = mine.get(size, 0) + count
    if v.error and not meas.error:
        meas.error, meas.error_text = v.error, v.error_text


def _run(job: JobSpec, path: str, size: int, offset: int, seed: int,
         progress: Optional[Progress], stop: Optional[StopFlag],
         repass: Optional[Callable[[], None]]) -> Measurement:
    sched = build(job, size, offset, seed)
    if not sched.period:
        raise ValueError(f"the region ({size} bytes from offset {offset}) holds no block of "
                         f"{job.min_bs} bytes")
    phase: Any = {"sync": _sync_phase, "tpe": _tpe_phase}.get(job.engine, _engine_phase)
    ramp_ns, runtime_ns = int(job.ramp_time * 1e9), int(job.runtime * 1e9)
    kind = job.verify
    writes = sched.writes
    checker = Checker(kind) if kind is not None else None
    if checker is not None and writes and job.verify_only:
        # what an earlier run of this job wrote: the same schedule, without writing
        meas = _verify_phase(job, path, dry_run_writes(sched, sched.limit), checker, phase)
    else:
        hooks = _Hooks(
            stamper=Stamper(kind) if kind is not None and writes else None,
            checker=checker if not writes else None,  # a read-only job checks as it reads
            written={} if checker is not None and writes and job.do_verify else None,
            pool=os.urandom(max(_POOL, 2 * job.max_bs)) if job.refill_buffers and writes
            else None,
            fsync=job.fsync if writes else 0,
            fdatasync=job.fdatasync if writes else 0,
            log_offset=job.log_offset,
            repass=repass)
        meas = phase(job, path, sched, sched.limit, hooks, progress, stop, ramp_ns, runtime_ns)
        if job.end_fsync and writes and not meas.error:
            _end_fsync(path, meas)
        if hooks.written and checker is not None and not meas.error:
            _merge_verify(meas, _verify_phase(job, path, hooks.written, checker, phase))
    if checker is not None:
        meas.verified, meas.verify_bad = checker.checked, checker.bad
        if checker.bad and not meas.error:
            meas.error = errno.EILSEQ
            meas.error_text = (f"{checker.first} ({checker.bad} of {checker.checked} blocks "
                               "checked are bad)")
    return meas


def run_job(job: JobSpec, path: str, size: int, *, seed: int = 1,
            progress: Optional[Progress] = None, offset: int = 0,
            stop: Optional[StopFlag] = None, invalidate: bool = False) -> Measurement:
    """Run *job* on *size* bytes of *path* from *offset* on (the region);
    *seed* makes its random choices; *stop*, when set, ends it early;
    *invalidate* (fio's ``invalidate=1``, the region already dropped from
    the page cache before the job) drops it again at the start of each new
    pass over it, as fio does reopening the file.  An engine that cannot be
    set up (``iopoll`` on a device without poll queues, O_DIRECT where the
    filesystem refuses it) is a Measurement with ``error`` set to the errno
    and ``error_text`` to the block layer's own explanation."""
    cpus = tuple(sorted(os.sched_getaffinity(0)))
    try:
        if invalidate and not job.direct:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                def repass() -> None:
                    os.posix_fadvise(fd, offset, size, os.POSIX_FADV_DONTNEED)

                meas = _run(job, path, size, offset, seed, progress, stop, repass)
            finally:
                os.close(fd)
        else:
            meas = _run(job, path, size, offset, seed, progress, stop, None)
    except OSError as exc:
        meas = Measurement(Direction(), Direction(), job.min_bs, job.iodepth)
        meas.error = exc.errno or errno.EIO
        meas.error_text = str(exc)
    except ValueError as exc:  # a combination the block layer refuses (iopoll without O_DIRECT)
        meas = Measurement(Direction(), Direction(), job.min_bs, job.iodepth)
        meas.error = errno.EINVAL
        meas.error_text = str(exc)
    meas.cpus = cpus
    return meas


def clone_seed(job: JobSpec, number: int) -> int:
    """The seed of job number *number* (1-based, counting every clone of
    every job, as fio's thread numbers): from ``randseed`` if given, else
    fixed (``randrepeat=1``, the default: every run the same) or from the
    clock (``randrepeat=0``); different for every clone, as fio's."""
    if job.randseed is not None or job.randrepeat:
        base = job.randseed if job.randseed is not None else 0xB1899BED  # fio's FIO_RANDSEED
    else:
        base = time.time_ns() ^ os.getpid() ^ random.getrandbits(64)
    return (base * 0x9E370001 + number * 0x61C88647) & ((1 << 64) - 1)

"""Running the planned cells: files, the page cache, clones, progress.

Files: a job's file is laid out before the cells run, as fio lays out its
files: the temporary file (one, shared, sized for the largest job), or the
job's ``filename`` if it does not exist (``filesize`` bytes, else
``offset`` + ``size``), or extended if the job's region runs past its end.
A file created with ``create_on_open`` is instead created empty when its
job starts.  Each cell's *region* is ``size`` bytes from ``offset``
(either may be a percentage of the file).  ``unlink`` removes a named
regular file after its job (a later job that names it lays it out again);
a block device is never removed, nor truncated or extended.

The page cache (``Cell.cache``, chosen by the plan): ``invalidate`` drops
the region (``files.invalidate``) and records the residency that is left,
and the job drops it again at every new pass over it, as fio does;
``warm`` reads the region whole and checks with ``mincore`` that it is
resident (pages idle for about a minute are evicted here, and a cold cell
measures the disk); if the cache cannot hold it, a note says so.  O_DIRECT
cells are invalidated or left alone, never warmed.

Clones: ``numjobs`` clones are separate processes (``fork``), as fio's
are: in one process the GIL would serialise them.  With ``thread`` they
are threads of this process instead (fio's ``thread``; the GIL then runs
one at a time).  They start together (each after its ``startdelay``),
each on its ``cpus_allowed``, each reports its measurement (a forked one
through a pipe), and each is one entry of the JSON's ``jobs`` (the report
sums them with ``group_reporting``).  With ``exitall`` the first clone
to finish sets a shared stop flag that ends the others, and the jobs after
this one in its fio group (until a ``stonewall``) do not run.

Logs (``write_bw_log`` ...) are written when the job is done
(``logs.write_logs``), named with fio's job numbers.

Cleanup: the temporary file lives in a private directory that ``close``
removes, called from a ``finally`` in the command, so Ctrl-C (and SIGTERM,
turned into ``SystemExit``) removes it too.  A forked clone never runs
that ``finally``: it leaves through ``os._exit``.
"""

from __future__ import annotations

import os
import pickle
import random
import signal
import stat
import sys
import threading
import time
from typing import Dict, List, Optional, Set, TextIO, Tuple

from .files import ScratchDir, ensure_hot, file_size, invalidate, make_file, residency
from .logs import write_logs
from .options import JobSpec, UsageError
from .plan import Cell, CellResult
from .workload import Direction, Measurement, Progress, StopFlag, clone_seed, run_job

__all__ = ["DEFAULT_SIZE", "ProgressLine", "Workspace", "run_cell"]

#: Size of the temporary file when no job gives one.
DEFAULT_SIZE = 1 << 30


def log(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


def _filesize(job: JobSpec) -> Optional[int]:
    """``filesize``: a size, or one picked in its range (fixed per job, so
    every run lays the file out alike)."""
    if job.filesize is None:
        return None
    lo, hi = job.filesize
    if lo == hi:
        return lo
    unit = job.min_bs
    return lo + random.Random(f"{job.name}/{lo}-{hi}").randrange((hi - lo) // unit + 1) * unit


def _region(job: JobSpec, have: int, path: str) -> Tuple[int, int]:
    """(offset, size) of the job's region in a file of *have* bytes."""
    unit = job.min_bs
    if job.offset_pct is not None:
        offset = int(have * job.offset_pct / 100) // unit * unit
    else:
        offset = job.offset
    if job.size_pct is not None:
        size = int(have * job.size_pct / 100) // unit * unit
    elif job.size is not None:
        size = job.size
    else:
        size = have - offset
    if size < unit:
        raise UsageError(f"{path}: offset={offset} leaves less than one block of {unit} bytes "
                         f"of its {have} bytes to use (give a size, or a smaller offset)")
    return offset, size


def _wanted(job: JobSpec, path: str) -> int:
    """Bytes to lay a missing file out to."""
    made = _filesize(job)
    if made is not None:
        return made
    if job.size is None:
        raise UsageError(f"filename={path} does not exist: give a size (or filesize) to "
                         "create it")
    offset = 0 if job.offset_pct is not None else job.offset
    return offset + job.size


class Workspace:
    """The files the cells use; ``close`` removes the temporary ones."""

    def __init__(self) -> None:
        self.scratch: Dict[str, ScratchDir] = {}
        self.notes: List[str] = []
        self.held: Dict[str, int] = {}  # block devices kept open until close()

    def prepare(self, cells: List[Cell]) -> None:
        """Give every cell its path and region, creating or extending files
        as fio lays them out."""
        temp: Dict[str, int] = {}  # directory -> size of its temporary file
        for cell in cells:
            job = cell.job
            if job.filename is None:
                parent = job.directory or "/var/tmp"
                made = _filesize(job)
                if made is None:
                    made = (job.size or DEFAULT_SIZE) + (job.offset if job.offset_pct is None
                                                         else 0)
                temp[parent] = max(temp.get(parent, 0), made)
        made_paths: Dict[str, str] = {}
        for parent, size in temp.items():
            if not os.path.isdir(parent):
                raise UsageError(f"directory={parent}: not a directory")
            scratch = ScratchDir(parent)
            self.scratch[parent] = scratch
            path = os.path.join(scratch.path, "bench.img")
            log(f"creating {path} ({_mib(size)}), removed at the end")
            make_file(path, size)
            made_paths[parent] = path
        laid_out: Set[str] = set()
        for cell in cells:
            job = cell.job
            if job.filename is None:
                cell.path = made_paths[job.directory or "/var/tmp"]
                cell.created = True
                have = file_size(cell.path)
                cell.offset, cell.size = _region(job, have, cell.path)
                cell.file_size = have
                continue
            path = job.filename
            if job.directory and not os.path.isabs(path):
                path = os.path.join(job.directory, path)
            cell.path = path
            if path in laid_out:
                cell.created = True
            if not os.path.exists(path):
                want = _wanted(job, path)
                if job.create_on_open:
                    cell.created = True  # made empty when the job opens it
                    cell.file_size = 0
                    cell.offset, cell.size = _region(job, max(want, job.min_bs), path)
                    continue
                log(f"laying out {path} ({_mib(want)})")
                make_file(path, want)
                laid_out.add(path)
                cell.created = True
            have = file_size(path)
            cell.offset, cell.size = _region(job, have, path)
            end = cell.offset + cell.size
            if end > have:
                if not stat.S_ISREG(os.stat(path).st_mode):
                    raise UsageError(f"offset+size ({cell.offset}+{cell.size}) is more than "
                                     f"{path} holds ({have} bytes)")
                log(f"extending {path} to {_mib(end)}")
                make_file(path, end)
                have = end
            cell.file_size = have
            if path not in self.held and stat.S_ISBLK(os.stat(path).st_mode):
                # The kernel drops a block device's page cache at its last
                # close (blkdev_put: sync_blockdev, then kill_bdev): held
                # open until the end, what warm() reads is still cached
                # for residency() and for the buffered cell.
                self.held[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def close(self) -> None:
        for scratch in self.scratch.values():
            scratch.close()
        self.scratch.clear()
        for fd in self.held.values():
            os.close(fd)
        self.held.clear()


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.0f} MiB" if size >= 1 << 20 else f"{size} bytes"


class ProgressLine:
    """A one-line status on a terminal (rewritten in place); silent
    otherwise, so logs and pipes get only the results."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream = stream
        self.total = total
        self.enabled = stream.isatty()
        self.shown = False

    def show(self, text: str) -> None:
        if self.enabled:
            self.stream.write(f"\r\x1b[K{text}")
            self.stream.flush()
            self.shown = True

    def for_cell(self, index: int, cell: Cell) -> Optional[Progress]:
        if not self.enabled:
            return None
        what = f"[{index + 1}/{self.total}] {cell.label}, {'O_DIRECT' if cell.job.direct else 'buffered'}"
        limit = f"/{cell.job.runtime:g}" if cell.job.runtime else ""

        def progress(done: int, elapsed: float) -> None:
            rate = done / elapsed if elapsed > 0 else 0.0
            self.show(f"{what}: {elapsed:.1f}{limit} s, {rate / 1e3:.1f}k IOPS")

        return progress

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


# -- one clone ------------------------------------------------------------------------------


def _cpus_of(job: JobSpec, clone: int) -> Optional[Set[int]]:
    """cpus_allowed for clone number *clone* (0-based): the whole set
    (``shared``), or its clone-th CPU (``split``)."""
    if job.cpus_allowed is None:
        return None
    if job.cpus_allowed_policy == "split":
        return {job.cpus_allowed[clone % len(job.cpus_allowed)]}
    return set(job.cpus_allowed)


def _start_delay(job: JobSpec, seed: int) -> float:
    lo, hi = job.startdelay
    return lo if hi <= lo else random.Random(seed).uniform(lo, hi)


def _clone(cell: Cell, clone: int, stop: Optional[StopFlag],
           progress: Optional[Progress] = None) -> Measurement:
    """Clone number *clone* of the cell, in the calling thread: its CPUs
    (the calling thread's affinity: a forked clone's process, a clone
    thread, or the command itself, restored after), its start delay, its
    run."""
    job = cell.job
    seed = clone_seed(job, cell.number + clone)
    cpus = _cpus_of(job, clone)
    saved = os.sched_getaffinity(0) if cpus is not None else None
    try:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)
        delay = _start_delay(job, seed)
        if delay > 0:
            time.sleep(delay)
        if stop is not None and stop.is_set():  # ended (exitall) before it started
            return Measurement(Direction(), Direction(), job.min_bs, job.iodepth)
        meas = run_job(job, cell.path, cell.size, seed=seed, progress=progress,
                       offset=cell.offset, stop=stop, invalidate=cell.cache == "invalidate")
        if job.exitall and stop is not None:
            stop.set()  # the first clone done ends the others
        return meas
    finally:
        if saved is not None:
            os.sched_setaffinity(0, saved)


def _run_forked(cell: Cell, count: int, stop: StopFlag) -> List[Measurement]:
    """*count* clones of the cell in child processes, run together."""
    children: List[Tuple[int, int]] = []
    results: List[Measurement] = []
    try:
        for clone in range(count):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the clone: measure, report, leave without cleaning anything up
                status = 1
                try:
                    os.close(r)
                    signal.signal(signal.SIGINT, signal.SIG_DFL)
                    meas = _clone(cell, clone, stop)
                    with os.fdopen(w, "wb") as pipe:
                        pipe.write(pickle.dumps(meas))
                    status = 0
                finally:
                    os._exit(status)
            os.close(w)
            children.append((pid, r))
        while children:
            pid, r = children[0]
            with os.fdopen(r, "rb") as pipe:
                data = pipe.read()
            os.waitpid(pid, 0)
            children.pop(0)
            if not data:
                raise RuntimeError(f"clone {pid} of {cell.jobname} died without a result")
            results.append(pickle.loads(data))
    finally:
        for pid, r in children:  # interrupted: the clones go too
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
            try:
                os.close(r)
            except OSError:
                pass
    return results


def _run_threads(cell: Cell, count: int, stop: StopFlag) -> List[Measurement]:
    """*count* clones of the cell as threads of this process (``thread``).
    Ctrl-C or SIGTERM while they run sets the stop flag: they finish what
    is in flight, and the interruption goes on once they have."""
    results: List[Optional[Measurement]] = [None] * count
    failures: List[BaseException] = []

    def body(clone: int) -> None:
        try:
            results[clone] = _clone(cell, clone, stop)
        except BaseException as exc:  # noqa: BLE001 - raised in the command's thread below
            failures.append(exc)
            stop.set()

    threads = [threading.Thread(target=body, args=(i,), name=f"{cell.jobname}.{i}", daemon=True)
               for i in range(count)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.1)  # a timeout, so Ctrl-C reaches this thread
    except BaseException:
        stop.set()
        for t in threads:
            if t.ident is not None:
                t.join()
        raise
    if failures:
        raise failures[0]
    return [m for m in results if m is not None]


# -- one cell ---------------------------------------------------------------------------------


def _prepare_cache(index: int, cell: Cell, result: CellResult, progress: ProgressLine,
                   notes: List[str]) -> None:
    job = cell.job
    if cell.cache == "invalidate" and os.path.exists(cell.path):
        invalidate(cell.path, cell.size, cell.offset)
        if not job.direct:
            result.residency = residency(cell.path, cell.size, cell.offset)
    elif cell.cache == "warm" and not job.direct:
        progress.show(f"[{index + 1}/{progress.total}] warming the page cache")
        if cell.offset:
            result.residency = ensure_hot(cell.path, cell.size, cell.offset)
        else:
            result.residency = ensure_hot(cell.path, cell.size)
        if result.residency < 0.99:
            note = (f"page cache: only {result.residency:.0%} of {_mib(cell.size)} of {cell.path} "
                    f"stayed resident before {cell.label} (buffered): the cache cannot hold it, "
                    "so that row measures the disk too; use a smaller --size")
            notes.append(note)
            progress.clear()
            log(note)


def _ensure_file(cell: Cell) -> None:
    """The cell's file, back if an earlier job unlinked it; created empty
    now if the job creates it on open."""
    if os.path.exists(cell.path):
        return
    if cell.job.create_on_open or not cell.file_size:
        os.close(os.open(cell.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
        return
    log(f"laying out {cell.path} ({_mib(cell.file_size)})")
    make_file(cell.path, cell.file_size)


def _unlink(cell: Cell) -> None:
    """unlink: a named regular file goes (the temporary one goes at the end)."""
    if cell.job.filename is None:
        return
    try:
        if stat.S_ISREG(os.stat(cell.path).st_mode):
            os.unlink(cell.path)
    except FileNotFoundError:
        pass


def run_cell(index: int, cell: Cell, progress: ProgressLine, notes: List[str]) -> CellResult:
    job = cell.job
    result = CellResult(cell)
    exited = cell.group_state.exited
    if cell.group is None and exited is not None:
        result.skipped = (f"not run: job '{exited}' finished with exitall, ending its group "
                          "(fio stops the jobs running beside it)")
        result.clones = [Measurement(Direction(), Direction(), job.min_bs, job.iodepth)
                         for _ in range(job.numjobs)]
        return result
    _ensure_file(cell)
    _prepare_cache(index, cell, result, progress, notes)
    stop = StopFlag()
    if job.numjobs > 1 or job.thread:
        what = f"{job.numjobs} clone{'s' if job.numjobs > 1 else ''}"
        progress.show(f"[{index + 1}/{progress.total}] {cell.label}: {what}"
                      f"{' (threads)' if job.thread else ''}")
        run = _run_threads if job.thread else _run_forked
        result.clones = run(cell, job.numjobs, stop)
    else:
        result.clones = [_clone(cell, 0, stop, progress.for_cell(index, cell))]
    if job.exitall and cell.group is None:
        cell.group_state.exited = cell.jobname
    if job.logs:
        try:
            result.logs = write_logs(job, result.clones, cell.number)
        except OSError as exc:
            note = f"{cell.jobname}: could not write its logs: {exc}"
            notes.append(note)
            log(note)
    if job.unlink:
        _unlink(cell)
    return result

"""Running the planned cells: files, a hot page cache, clones, progress.

Every buffered cell starts by reading its file region whole and checking
with ``mincore`` that it is resident (pages idle for about a minute are
evicted here, and a cold cell measures the disk); if the cache cannot hold
it, a note says so.  O_DIRECT cells need no preparation.

``numjobs`` clones are separate processes (``fork``), as fio's are: in one
process the GIL would serialise them.  They start together, each reports
its measurement through a pipe, and each is one entry of the JSON's
``jobs``; the table sums their rates.

Cleanup: the temporary file lives in a private directory that ``close``
removes, called from a ``finally`` in the command, so Ctrl-C (and SIGTERM,
turned into ``SystemExit``) removes it too.  A clone never runs that
``finally``: it leaves through ``os._exit``.
"""

from __future__ import annotations

import os
import pickle
import signal
import stat
import sys
from typing import Dict, List, Optional, TextIO, Tuple

from .files import ScratchDir, ensure_hot, file_size, make_file
from .options import UsageError
from .plan import Cell, CellResult
from .workload import Measurement, Progress, run_job

__all__ = ["DEFAULT_SIZE", "ProgressLine", "Workspace", "run_cell"]

#: Size of the temporary file when no job gives one.
DEFAULT_SIZE = 1 << 30


def log(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


class Workspace:
    """The files the cells use; ``close`` removes the temporary ones."""

    def __init__(self) -> None:
        self.scratch: Dict[str, ScratchDir] = {}
        self.notes: List[str] = []

    def prepare(self, cells: List[Cell]) -> None:
        """Give every cell its path and region size, creating or extending
        files as fio lays them out."""
        temp: Dict[str, int] = {}  # directory -> size of its temporary file
        for cell in cells:
            job = cell.job
            if job.filename is None:
                parent = job.directory or "/var/tmp"
                temp[parent] = max(temp.get(parent, 0), job.size or DEFAULT_SIZE)
        made: Dict[str, str] = {}
        for parent, size in temp.items():
            if not os.path.isdir(parent):
                raise UsageError(f"directory={parent}: not a directory")
            scratch = ScratchDir(parent)
            self.scratch[parent] = scratch
            path = os.path.join(scratch.path, "bench.img")
            log(f"creating {path} ({_mib(size)}), removed at the end")
            make_file(path, size)
            made[parent] = path
        for cell in cells:
            job = cell.job
            if job.filename is None:
                cell.path = made[job.directory or "/var/tmp"]
                cell.size = job.size or file_size(cell.path)
                continue
            path = job.filename
            if job.directory and not os.path.isabs(path):
                path = os.path.join(job.directory, path)
            if not os.path.exists(path):
                if not job.size:
                    raise UsageError(f"filename={path} does not exist: give a size to create it")
                log(f"laying out {path} ({_mib(job.size)})")
                make_file(path, job.size)
            have = file_size(path)
            size = job.size or have
            if size > have:
                if not stat.S_ISREG(os.stat(path).st_mode):
                    raise UsageError(f"size={size} is more than {path} holds ({have} bytes)")
                log(f"extending {path} to {_mib(size)}")
                make_file(path, size)
            cell.path, cell.size = path, size

    def close(self) -> None:
        for scratch in self.scratch.values():
            scratch.close()
        self.scratch.clear()


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


def _run_clones(cell: Cell, count: int) -> List[Measurement]:
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
                    meas = run_job(cell.job, cell.path, cell.size, seed=1 + clone)
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


def run_cell(index: int, cell: Cell, progress: ProgressLine, notes: List[str]) -> CellResult:
    result = CellResult(cell)
    if not cell.job.direct:
        progress.show(f"[{index + 1}/{progress.total}] warming the page cache")
        result.residency = ensure_hot(cell.path, cell.size)
        if result.residency < 0.99:
            note = (f"page cache: only {result.residency:.0%} of {_mib(cell.size)} of {cell.path} "
                    f"stayed resident before {cell.label} (buffered): the cache cannot hold it, "
                    "so that row measures the disk too; use a smaller --size")
            notes.append(note)
            progress.clear()
            log(note)
    if cell.job.numjobs > 1:
        progress.show(f"[{index + 1}/{progress.total}] {cell.label}: {cell.job.numjobs} clones")
        result.clones = _run_clones(cell, cell.job.numjobs)
    else:
        result.clones = [run_job(cell.job, cell.path, cell.size, seed=1,
                                 progress=progress.for_cell(index, cell))]
    return result

"""``uring bench`` (or ``python3 -m uring bench``): the command.

Output: with ``--output-format=normal`` (the default) the table's header
goes out once the files are ready, then a row as each cell finishes
(flushed, to a pipe or a file as much as to a terminal), then the
footnotes, the notes and a summary line.  JSON (``json``, ``json+``) is
one document at the end.  ``--output=FILE`` sends all of it to FILE
instead of stdout; ``--svg=FILE`` also draws the results as a bar chart.
Diagnostics go to stderr.

Exit status: 0; 1 when a job that was asked for by name (an explicit
engine) failed; 2 for a command line, job file or path it will not use
(one line on stderr naming the option or the path); 130 on Ctrl-C, after
printing what the finished cells measured and removing the temporary file.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import textwrap
import time
from types import FrameType
from typing import Any, Dict, List, Optional, Sequence, TextIO

from .. import __version__
from .options import COMMAND_OPTIONS, JOB_OPTIONS, Invocation, JobSpec, UsageError, parse_args
from .plan import Cell, CellResult, plan_cells
from .report import TableWriter, fio_json
from .runner import ProgressLine, Workspace, log, run_cell
from .stats import DiskSnapshot, disk_of, disk_util
from .svg import chart

__all__ = ["main"]

PROG = "uring bench"  # the console script `uring`; `python3 -m uring bench` is the same command

USAGE = f"""usage: {PROG} [--option=value ...] [jobfile ...]

A fio-compatible benchmark of the block layer's engines (uring.block).
Options are fio's, spelled as fio spells them; a job file is fio's ini
format with [global] merged into each job.  Options fio has and this
benchmark does not are refused by name (exit status 2).

With no engine chosen (no --ioengine, --fixedbufs, --registerfiles,
--sqthread_poll, --hipri) it runs the side-by-side matrix: a synchronous
os.preadv loop, a ThreadPoolExecutor (a future per read), threads, native,
io_uring (plain, fixed files, fixed buffers, sqpoll, iopoll), each buffered
and O_DIRECT, 2 s each,
4 KiB random reads at iodepth 32 on a temporary 1 GiB file in /var/tmp.
The page cache is warmed and checked (mincore) before every buffered cell.
Each row of the table is printed as soon as its cell is done; Ctrl-C
keeps the rows (and the JSON of the cells) already finished.
Where this differs from fio: rw defaults to randread; runtime defaults to
2 s; the matrix keeps the page cache warm (a job naming an engine, or a job
file, drops it first as fio's invalidate=1 does; --invalidate=0 warms and
checks it instead); jobs run one after another (as with stonewall).

examples:
  {PROG}
  {PROG} --svg=engines.svg --size=64M --runtime=1
  {PROG} --ioengine=io_uring --rw=randread --bs=4k --iodepth=32 --direct=1
  {PROG} --ioengine=libaio --size=16M --runtime=1 --output-format=json+ --output=run.json
  {PROG} job.fio
"""


def help_text() -> str:
    lines = [USAGE, "options:"]
    for opt in COMMAND_OPTIONS + JOB_OPTIONS:
        spelled = f"--{opt.name}" + ("" if opt.kind in ("bool", "flag") else "=VALUE")
        if opt.aliases:
            spelled += " (" + ", ".join(f"--{a}" for a in opt.aliases) + ")"
        lines.append(f"  {spelled}")
        lines.append(textwrap.fill(opt.help, width=100, initial_indent=" " * 6,
                                   subsequent_indent=" " * 6))
    return "\n".join(lines)


def version() -> str:
    """The package's version (what ``uring --version`` says too)."""
    return __version__


def _describe(job: JobSpec) -> str:
    """``4 KiB randread, iodepth 32, 2 s per cell (time based)``."""
    mode = "time based" if job.time_based else "or until size is done"
    return (f"{job.bs // 1024 if job.bs % 1024 == 0 else job.bs}"
            f"{' KiB' if job.bs % 1024 == 0 else ' B'} {job.rw}"
            + (f" ({job.rwmixread}% reads)" if job.rw in ("rw", "randrw") else "")
            + f", iodepth {job.iodepth}"
            + (f", numjobs {job.numjobs}" if job.numjobs > 1 else "")
            + f", {job.runtime:g} s per cell ({mode})")


def _header(cells: Sequence[Cell]) -> str:
    parts = [f"{job.name}: {_describe(job)}" for job in {c.job.name: c.job for c in cells}.values()]
    for path, size in sorted({(c.path, c.size) for c in cells}):
        parts.append(f"file {path}, {size / (1 << 20):.0f} MiB")
    return "\n".join(parts)


def _standard_notes(results: Sequence[CellResult]) -> List[str]:
    notes = ["latency: completion latency per I/O, from the submit call to the reap (or "
             "callback) that delivers it; CPU: % of one core, all threads of the process "
             "(io_uring's kernel workers and the SQPOLL thread included)"]
    if any(r.cell.group is not None for r in results):
        notes.append("vs sync, vs threads: a row's IOPS over the sync loop's and the threads "
                     "engine's in the same cache mode ('-' where that row had not run yet: rows "
                     "print as cells finish)")
    warm = [r.residency for r in results if r.residency is not None]
    if warm and min(warm) >= 0.99:
        notes.append(f"page cache: warmed and checked with mincore before each buffered cell "
                     f"({min(warm):.0%} resident)")
    return notes


def _summary(results: Sequence[CellResult], planned: int, seconds: float,
             interrupted: bool) -> str:
    ran = sum(1 for r in results if r.clones and not r.error)
    text = f"{ran} cells run"
    if ran < len(results):
        text += f", {len(results) - ran} not"
    if interrupted:
        text += f", {planned - len(results)} left out (interrupted)"
    return text + f", in {seconds:.0f} s"


def _sigterm(signum: int, frame: Optional[FrameType]) -> None:
    raise SystemExit(128 + signum)


# -- paths -----------------------------------------------------------------------------------


def _os_error(what: str, exc: OSError) -> UsageError:
    return UsageError(f"{what}: {exc.strerror or exc}")


def _job_path(job: JobSpec) -> Optional[str]:
    if job.filename is None:
        return None
    if job.directory and not os.path.isabs(job.filename):
        return os.path.join(job.directory, job.filename)
    return job.filename


def _check_paths(inv: Invocation, cells: Sequence[Cell]) -> None:
    """Paths that cannot work, refused before anything runs (each a
    ``UsageError``: one line, exit status 2)."""
    for path in {p for p in (_job_path(c.job) for c in cells) if p is not None}:
        if os.path.isdir(path):
            raise UsageError(f"filename={path}: is a directory (give a file or a block device, "
                             "or use --directory)")
        if not os.path.exists(path):
            parent = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent):
                raise UsageError(f"filename={path}: no such directory {parent}")
            try:  # the runner lays it out later; a file that cannot be made is refused now
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
                os.unlink(path)
            except OSError as exc:
                raise UsageError(f"filename={path}: cannot create it ({exc.strerror})") from None
    for directory in {c.job.directory for c in cells
                      if c.job.filename is None and c.job.directory is not None}:
        if not os.path.isdir(directory):
            raise UsageError(f"directory={directory}: not a directory")
        try:  # where the temporary file's private directory goes
            os.rmdir(tempfile.mkdtemp(prefix="uring-bench-check-", dir=directory))
        except OSError as exc:
            raise UsageError(f"directory={directory}: cannot create the temporary file there "
                             f"({exc.strerror})") from None
    if inv.svg is not None:
        parent = os.path.dirname(os.path.abspath(inv.svg))
        if os.path.isdir(inv.svg):
            raise UsageError(f"svg={inv.svg}: is a directory")
        if not os.path.isdir(parent):
            raise UsageError(f"svg={inv.svg}: no such directory {parent}")
        if not os.access(parent, os.W_OK):
            raise UsageError(f"svg={inv.svg}: cannot write in {parent} (permission denied)")


class _Output:
    """Where the results go: stdout, or ``--output``'s file (opened, and
    truncated, before anything runs, as fio does).  Every write is flushed."""

    def __init__(self, path: Optional[str]) -> None:
        self.file: Optional[TextIO] = None
        if path is not None:
            try:
                self.file = open(path, "w")
            except OSError as exc:
                raise _os_error(f"output={path}", exc) from None

    def lines(self, lines: Sequence[str]) -> None:
        if lines:
            stream = self.file or sys.stdout
            stream.write("\n".join(lines) + "\n")
            stream.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class _DiskWatch:
    """``/sys/block/<disk>/stat`` of the disks holding the cells' files, at
    the start and at the end of the run (fio's ``disk_util``)."""

    def __init__(self, cells: Sequence[Cell]) -> None:
        dirs = [disk_of(c.path) for c in cells]
        self.before: Dict[str, DiskSnapshot] = {}
        for d in dict.fromkeys(x for x in dirs if x is not None):
            snap = DiskSnapshot.read(d)
            if snap is not None:
                self.before[d] = snap
        self.start = time.monotonic()

    def finish(self) -> List[Dict[str, object]]:
        elapsed_ms = (time.monotonic() - self.start) * 1000
        out = []
        for d, before in self.before.items():
            after = DiskSnapshot.read(d)
            if after is not None:
                out.append(disk_util(before, after, elapsed_ms))
        return out


def _title(cells: Sequence[Cell]) -> str:
    jobs = list({c.job.name: c.job for c in cells}.values())
    more = f" (and {len(jobs) - 1} more jobs)" if len(jobs) > 1 else ""
    return f"python3 -m uring bench: {_describe(jobs[0])}{more}" if jobs else "python3 -m uring bench"


# -- the command -------------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        inv = parse_args(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if inv.help:
        print(help_text())
        return 0
    if inv.version:
        print(f"{PROG} {version()}")
        return 0
    cells = plan_cells(inv)
    formats = inv.output_formats
    try:
        _check_paths(inv, cells)
        out = _Output(inv.output)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    workspace = Workspace()
    progress = ProgressLine(sys.stderr, len(cells))
    previous: Any = None
    try:
        previous = signal.signal(signal.SIGTERM, _sigterm)
    except ValueError:  # not the main thread
        previous = None
    try:
        return _run(inv, cells, formats, workspace, progress, out)
    except UsageError as exc:
        progress.clear()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the first cell, or a second Ctrl-C while printing
        progress.clear()
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `uring bench | head`: the reader is gone
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # no real stdout (a test's capture)
            pass
        return 1
    finally:
        progress.clear()
        workspace.close()
        out.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(inv: Invocation, cells: List[Cell], formats: Sequence[str], workspace: Workspace,
         progress: ProgressLine, out: _Output) -> int:
    try:
        workspace.prepare(cells)
    except OSError as exc:
        raise UsageError(f"cannot lay out the files: {exc.filename or ''}: "
                         f"{exc.strerror or exc}") from None
    normal = "normal" in formats
    writer = TableWriter(cells)
    disks = _DiskWatch(cells)
    if normal:
        out.lines(writer.head(_header(cells)))
    results: List[CellResult] = []
    notes: List[str] = []
    interrupted = False
    try:
        for i, cell in enumerate(cells):
            result = run_cell(i, cell, progress, notes)
            results.append(result)
            if normal:
                progress.clear()
                out.lines(writer.rows(result))
    except KeyboardInterrupt:
        interrupted = True
    progress.clear()
    seconds = time.monotonic() - disks.start
    util = disks.finish()
    if normal:
        out.lines(writer.tail(_standard_notes(results) + notes)
                  + ["", _summary(results, len(cells), seconds, interrupted)])
    plus = "json+" in formats
    if plus or "json" in formats:
        doc = fio_json(results, inv.global_raw, version(), plus=plus, disk_util=util)
        out.lines([json.dumps(doc, indent=2)])
        if not normal:  # the table's footnotes say it otherwise
            for r in results:
                if r.error:
                    log(f"{r.cell.jobname}: {r.error_text}")
    status = 0
    if inv.svg is not None and results:
        try:
            with open(inv.svg, "w") as f:
                f.write(chart(results, _title(cells)))
        except OSError as exc:
            print(f"{PROG}: error: {_os_error(f'svg={inv.svg}', exc)}", file=sys.stderr)
            status = 2
    if interrupted:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    if status:
        return status
    failed = [r for r in results if r.error and r.cell.group is None]
    return 1 if failed else 0

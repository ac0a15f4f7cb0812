"""``uring bench`` (or ``python3 -m uring bench``): the command.

Exit status: 0; 1 when a job that was asked for by name (an explicit
engine) failed; 2 for a command line or job file it will not run (an
unsupported option is named); 130 on Ctrl-C, after removing the
temporary file.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from types import FrameType
from typing import Any, List, Optional, Sequence

from .. import __version__
from .options import COMMAND_OPTIONS, JOB_OPTIONS, UsageError, parse_args
from .plan import CellResult, plan_cells
from .report import fio_json, table
from .runner import ProgressLine, Workspace, log, run_cell

__all__ = ["main"]

PROG = "uring bench"  # the console script `uring`; `python3 -m uring bench` is the same command

USAGE = f"""usage: {PROG} [--option=value ...] [jobfile ...]

A fio-compatible benchmark of the block layer's engines (uring.block).
Options are fio's, spelled as fio spells them; a job file is fio's ini
format with [global] merged into each job.  Options fio has and this
benchmark does not are refused by name (exit status 2).

With no engine chosen (no --ioengine, --fixedbufs, --registerfiles,
--sqthread_poll, --hipri) it runs the side-by-side matrix: a synchronous
os.preadv loop, threads, native, io_uring (plain, fixed files, fixed
buffers, sqpoll, iopoll), each buffered and O_DIRECT, 2 s each,
4 KiB random reads at iodepth 32 on a temporary 1 GiB file in /var/tmp.
The page cache is warmed and checked (mincore) before every buffered cell.
Where this differs from fio: rw defaults to randread; runtime defaults to
2 s; the page cache is never dropped (fio's invalidate=1); jobs run one
after another (as with stonewall).

examples:
  {PROG}
  {PROG} --ioengine=io_uring --rw=randread --bs=4k --iodepth=32 --direct=1
  {PROG} --ioengine=libaio --size=16M --runtime=1 --output-format=json
  {PROG} job.fio
"""


def help_text() -> str:
    lines = [USAGE, "options:"]
    for opt in COMMAND_OPTIONS + JOB_OPTIONS:
        spelled = f"--{opt.name}" + ("" if opt.kind in ("bool", "flag") else "=VALUE")
        if opt.aliases:
            spelled += " (" + ", ".join(f"--{a}" for a in opt.aliases) + ")"
        lines.append(f"  {spelled}")
        lines.append(f"      {opt.help}")
    return "\n".join(lines)


def _header(results: Sequence[CellResult]) -> str:
    cells = [r.cell for r in results]
    parts = []
    for job in {c.job.name: c.job for c in cells}.values():
        mode = "time based" if job.time_based else "or until size is done"
        parts.append(f"{job.name}: {job.bs // 1024 if job.bs % 1024 == 0 else job.bs}"
                     f"{' KiB' if job.bs % 1024 == 0 else ' B'} {job.rw}"
                     + (f" ({job.rwmixread}% reads)" if job.rw in ("rw", "randrw") else "")
                     + f", iodepth {job.iodepth}"
                     + (f", numjobs {job.numjobs}" if job.numjobs > 1 else "")
                     + f", {job.runtime:g} s per cell ({mode})")
    files = {(c.path, c.size) for c in cells}
    for path, size in sorted(files):
        parts.append(f"file {path}, {size / (1 << 20):.0f} MiB")
    return "\n".join(parts)


def _standard_notes(results: Sequence[CellResult]) -> List[str]:
    notes = ["latency: completion latency per I/O, from the submit call to the completion "
             "callback; CPU: % of one core, all threads of the process (io_uring's kernel "
             "workers and the SQPOLL thread included)"]
    warm = [r.residency for r in results if r.residency is not None]
    if warm and min(warm) >= 0.99:
        notes.append(f"page cache: warmed and checked with mincore before each buffered cell "
                     f"({min(warm):.0%} resident)")
    return notes


def _sigterm(signum: int, frame: Optional[FrameType]) -> None:
    raise SystemExit(128 + signum)


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
    cells = plan_cells(inv)
    workspace = Workspace()
    progress = ProgressLine(sys.stderr, len(cells))
    previous: Any = None
    try:
        previous = signal.signal(signal.SIGTERM, _sigterm)
    except ValueError:  # not the main thread
        previous = None
    started = time.monotonic()
    try:
        workspace.prepare(cells)
        results: List[CellResult] = []
        notes: List[str] = []
        for i, cell in enumerate(cells):
            results.append(run_cell(i, cell, progress, notes))
        progress.clear()
        if inv.output_format == "json":
            doc = fio_json(results, inv.global_raw, __version__)
            print(json.dumps(doc, indent=2))
            for r in results:
                if r.error:
                    log(f"{r.cell.jobname}: {r.error_text}")
        else:
            notes = _standard_notes(results) + notes
            print(table(results, _header(results), notes))
            ran = sum(1 for r in results if not r.error)
            print(f"\n{ran} cells run" + (f", {len(cells) - ran} not" if ran < len(cells) else "")
                  + f", in {time.monotonic() - started:.0f} s")
        failed = [r for r in results if r.error and r.cell.group is None]
        return 1 if failed else 0
    except UsageError as exc:
        progress.clear()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        progress.clear()
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    finally:
        progress.clear()
        workspace.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

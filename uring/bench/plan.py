"""Which cells run: the jobs as asked, or the side-by-side matrix.

A job that names an engine (``ioengine``, or an io_uring-only flag such as
``fixedbufs``) runs as it is.  A job that names none is expanded into the
matrix: the synchronous ``os.preadv`` loop (the honest baseline: on a hot
page cache nothing written in Python beats it), the block layer's
``threads`` and ``native`` engines, and ``io_uring`` plain, with a
registered file, with registered buffers, with SQPOLL and with IOPOLL;
each buffered and with O_DIRECT unless the job says which.  Matrix cells
are time based (each runs for the whole ``runtime``, 2 s unless given) at
queue depth 32 unless given, so their rates compare.

The page cache before a cell (``Cell.cache``): fio drops the region from
it (``invalidate=1``, fio's default) and so does every job from a job file
and every job that names an engine; the matrix of a command line that
names none instead warms the region and checks with ``mincore`` that it
stayed resident, so its buffered rows measure the page cache; a job given
``invalidate=0`` is warmed the same way.

Groups: jobs run one after another here, each its own reporting group
(``groupid``).  fio runs the jobs of a file together unless ``stonewall``
or ``new_group`` separate them; ``Cell.fio_group`` numbers those groups,
for ``exitall`` (a job with it that finishes ends the rest of its group:
here, the jobs after it in the group do not run).  ``Cell.number`` is
fio's job number of the cell's first clone (every clone of every job
counted from 1): it names the log files and seeds the clone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .options import Invocation, JobSpec
from .workload import Measurement

__all__ = ["MATRIX", "Cell", "CellResult", "GroupState", "label_of", "plan_cells"]

#: (slug, label, options) of each matrix row, in table order.
MATRIX: Tuple[Tuple[str, str, Dict[str, object]], ...] = (
    ("sync", "sync (os.preadv loop)", {"ioengine": "psync"}),
    ("threads", "threads", {"ioengine": "threads"}),
    ("tpe", "ThreadPoolExecutor (a future per I/O)", {"ioengine": "tpe"}),
    ("native", "native (Linux AIO)", {"ioengine": "libaio"}),
    ("io_uring", "io_uring", {"ioengine": "io_uring"}),
    ("io_uring+registerfiles", "io_uring + fixed files",
     {"ioengine": "io_uring", "registerfiles": True}),
    ("io_uring+fixedbufs", "io_uring + fixed buffers",
     {"ioengine": "io_uring", "fixedbufs": True}),
    ("io_uring+sqthread_poll", "io_uring + sqpoll", {"ioengine": "io_uring", "sqthread_poll": True}),
    ("io_uring+hipri", "io_uring + iopoll", {"ioengine": "io_uring", "hipri": True}),
)

MATRIX_IODEPTH = 32


class GroupState:
    """What the cells of one fio group share: whether a job with
    ``exitall`` has finished (its name), ending the group."""

    def __init__(self) -> None:
        self.exited: Optional[str] = None


@dataclass
class Cell:
    """One run of one job: what to run, on which file, named how.  The
    runner fills in the file: ``path``, the region (``size`` bytes from
    ``offset``), ``file_size`` (what the file is laid out to) and whether
    the file is the benchmark's to remove (``created``)."""

    job: JobSpec
    label: str
    jobname: str
    job_options: Dict[str, str]
    groupid: int
    group: Optional[Tuple[int, bool]] = None  # (matrix, direct): rows compared by ratio
    slug: str = ""
    path: str = ""
    size: int = 0
    offset: int = 0
    file_size: int = 0
    created: bool = False
    cache: str = "warm"  # "warm" (read and check with mincore), "invalidate", or "none"
    number: int = 1
    fio_group: int = 0
    group_state: GroupState = field(default_factory=GroupState)


@dataclass
class CellResult:
    cell: Cell
    clones: List[Measurement] = field(default_factory=list)
    residency: Optional[float] = None  # buffered cells: page-cache residency before the run
    skipped: str = ""  # why the cell did not run (exitall), else ""
    logs: List[str] = field(default_factory=list)  # log files written (write_*_log)

    @property
    def error(self) -> int:
        return next((m.error for m in self.clones if m.error), 0)

    @property
    def error_text(self) -> str:
        return next((m.error_text for m in self.clones if m.error), "")

    @property
    def iops(self) -> float:
        """Sum over clones (they run at the same time)."""
        return sum(m.ios / m.runtime for m in self.clones if m.runtime > 0)


def label_of(job: JobSpec) -> str:
    """A row label for a job that chose its own engine."""
    if job.engine == "sync":
        return f"sync ({job.ioengine}: os.preadv loop)"
    name = "native (Linux AIO)" if job.engine == "native" else job.engine
    feats = [label for flag, label in (("registerfiles", "fixed files"),
                                       ("fixedbufs", "fixed buffers"),
                                       ("sqthread_poll", "sqpoll"), ("hipri", "iopoll"))
             if getattr(job, flag)]
    return " + ".join([name] + feats)


def _selects_engine(job: JobSpec) -> bool:
    return any(k in job.given for k in ("ioengine", "fixedbufs", "registerfiles",
                                        "sqthread_poll", "hipri"))


def _option_text(value: object) -> str:
    return "1" if value is True else "0" if value is False else str(value)


def _cache(job: JobSpec, explicit: bool) -> str:
    """How a cell's page cache is prepared (see the module docstring)."""
    drop = job.invalidate
    if drop is None:
        drop = explicit or job.jobfile is not None
    return "invalidate" if drop else "warm"


def plan_cells(inv: Invocation) -> List[Cell]:
    cells: List[Cell] = []
    number = 1
    fio_group = -1
    state = GroupState()
    for index, job in enumerate(inv.jobs):
        raw = dict(job.raw)
        if index == 0 or job.stonewall or job.new_group:
            fio_group += 1
            state = GroupState()
        if _selects_engine(job):
            if job.ioengine is None:
                job = job.with_options(ioengine="io_uring")
                raw.setdefault("ioengine", "io_uring")
            cells.append(Cell(job, label_of(job), job.name, raw, len(cells),
                              cache=_cache(job, True), number=number, fio_group=fio_group,
                              group_state=state))
            number += job.numjobs
            continue
        base = job.with_options(
            time_based=True,
            iodepth=job.iodepth if "iodepth" in job.given else MATRIX_IODEPTH)
        directs = [job.direct] if "direct" in job.given else [False, True]
        for direct in directs:
            for slug, label, opts in MATRIX:
                cell_job = base.with_options(direct=direct, **opts)
                options = dict(raw)
                options.update({k: _option_text(v) for k, v in opts.items()})
                options.update({"direct": _option_text(direct), "iodepth": str(base.iodepth),
                                "time_based": "1"})
                name = f"{job.name}/{slug}/{'direct' if direct else 'buffered'}"
                cells.append(Cell(cell_job, label, name, options, len(cells),
                                  group=(index, direct), slug=slug,
                                  cache=_cache(job, False), number=number,
                                  fio_group=fio_group, group_state=state))
                number += job.numjobs
    return cells

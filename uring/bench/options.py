"""fio's language, the part of it this benchmark speaks.

Options carry fio's names and fio's value syntax (``bs=4k``,
``runtime=500ms``, ``direct=1``, bare flags such as ``fixedbufs``), on the
command line (``--rw=randread`` or ``--rw randread``) and in job files (ini
sections, ``[global]`` merged into every job).  An option fio has and this
benchmark does not is *refused by name*, never ignored: a job that silently
dropped ``rate_iops`` or ``verify_backlog`` would measure something other
than what its author asked for.  An option that is here has fio's
meaning, not just its name (see each option's help).  ``UsageError`` carries the message; the command
line turns it into exit status 2.

Layering follows fio: defaults, then command-line options given before the
first ``--name`` (global), then a job file's ``[global]``, then the job's
own options.  ``--name`` on the command line starts a new job, as in fio.

Values: sizes (``4k``, ``1GiB``; ``size`` and ``offset`` also take a
percentage of the file, ``25%``), times (``2``, ``500ms``), ranges
(``bsrange=4k-64k``, ``startdelay=1-3``, ``filesize=1M-4M``; fio's ``:``
works as well as ``-``), CPU lists (``cpus_allowed=0-1,3``), booleans
(``1``/``0``, or the bare name for 1).  Where two options say the same
thing the last one given wins, as in fio (``rwmixread``/``rwmixwrite``,
``bs``/``bsrange``, ``direct``/``buffered``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = [
    "COMMAND_OPTIONS",
    "ENGINES",
    "JOB_OPTIONS",
    "Invocation",
    "JobSpec",
    "UsageError",
    "parse_args",
    "parse_job_file",
    "parse_cpus",
    "parse_size",
    "parse_time",
]


class UsageError(Exception):
    """A command line or job file this benchmark will not run (exit 2)."""


@dataclass(frozen=True)
class Option:
    name: str
    kind: str  # "str", "int", "size", "time", "bool", "flag", "choice"
    help: str
    choices: Tuple[str, ...] = ()
    aliases: Tuple[str, ...] = ()
    low: int = 0
    high: int = 1 << 62


#: fio ioengine names accepted, and the engine each one runs here.
ENGINES: Dict[str, str] = {
    "io_uring": "io_uring",
    "libaio": "native",
    "native": "native",
    "psync": "sync",
    "pvsync": "sync",
    "threads": "threads",
    "tpe": "tpe",
}

RW_MODES = ("read", "write", "randread", "randwrite", "rw", "readwrite", "randrw")

#: verify= checksums: fio's names; crc32c is computed in pure Python (Castagnoli).
VERIFY_KINDS = ("crc32c", "crc32c-intel", "crc32", "md5", "sha1", "sha256", "sha512")

JOB_OPTIONS: Tuple[Option, ...] = (
    # -- the job and its file -----------------------------------------------------------
    Option("name", "str", "job name; on the command line each --name starts a new job"),
    Option("filename", "str", "file or block device to use (default: a temporary file, removed "
           "at the end); one file per job (fio's 'a:b' lists are refused)"),
    Option("directory", "str", "where the temporary file goes (default /var/tmp), and what a "
           "relative filename is relative to"),
    Option("size", "sizepct", "bytes of the region to use, or a percentage of the file (size=50%) "
           "(default: the file's size from offset on, or 1G for the temporary file); without "
           "time_based a job ends after this many bytes (see io_size)", low=1),
    Option("filesize", "sizerange", "size the file is created with (a range lo-hi picks one at "
           "random); size then only says how much of it the job uses"),
    Option("offset", "sizepct", "start of the region in the file, in bytes or as a percentage "
           "(offset=25%, aligned down to the block size); the job never touches what lies before"),
    Option("io_size", "size", "bytes of I/O the job does (default: size); more than the region "
           "goes round it again", low=1, aliases=("io_limit",)),
    Option("create_on_open", "bool", "a file that does not exist is created (empty) when the job "
           "opens it, not laid out beforehand"),
    Option("unlink", "bool", "remove the job's file when the job is done (a named regular file; "
           "never a block device; the temporary file goes anyway)"),
    Option("invalidate", "bool", "drop the region from the page cache (posix_fadvise "
           "POSIX_FADV_DONTNEED; BLKFLSBUF on a block device) before the job: the default, as in "
           "fio, for job files and for jobs that name an engine; the matrix of a command line "
           "naming none instead warms the cache and checks it with mincore, and so does a "
           "buffered job given invalidate=0"),
    # -- the pattern -----------------------------------------------------------------------
    Option("bs", "size", "block size of each I/O (default 4k)", aliases=("blocksize",), low=1),
    Option("bsrange", "range", "each I/O a random size in lo-hi, a multiple of lo (bsrange=4k-64k; "
           "lo-hi,lo-hi gives reads and writes their own range)", aliases=("blocksize_range",)),
    Option("rw", "choice", "I/O pattern (default randread; fio's default is read); rw/readwrite "
           "are sequential reads and writes, each direction with its own position, as in fio",
           choices=RW_MODES, aliases=("readwrite",)),
    Option("rwmixread", "int", "percentage of reads in rw/randrw (default 50); the last of "
           "rwmixread and rwmixwrite given wins, as in fio", high=100),
    Option("rwmixwrite", "int", "percentage of writes in rw/randrw (sets rwmixread to 100 minus "
           "it)", high=100),
    Option("norandommap", "bool", "random offsets drawn independently (blocks may repeat or be "
           "missed); default: a random order that covers each block once per pass"),
    Option("randrepeat", "bool", "the same random sequence every run (default 1); 0 seeds from "
           "the time, unless randseed is given", aliases=("rand_repeatable",)),
    Option("randseed", "int", "seed of the random sequences (each clone's is derived from it "
           "and its job number, as in fio)", high=(1 << 64) - 1),
    Option("loops", "int", "run the job this many times over (not with time_based)", low=1,
           high=1 << 31),
    Option("zero_buffers", "bool", "write buffers are all zeros (default: random data)"),
    Option("refill_buffers", "bool", "new random data in the buffer before every write"),
    # -- the engine ------------------------------------------------------------------------
    Option("ioengine", "choice", "io_uring, libaio (the block layer's native engine), psync or "
           "pvsync (a synchronous os.preadv loop), threads (the block layer's thread pool), tpe "
           "(not fio's: a concurrent.futures ThreadPoolExecutor, a future per I/O, the baseline "
           "for threads); none given: the side-by-side matrix of every engine",
           choices=tuple(ENGINES)),
    Option("iodepth", "int", "requests in flight (default 1; 32 in the matrix)", low=1,
           high=65536),
    Option("iodepth_batch_submit", "int", "submit in batches of this many (0, the default: "
           "everything completions freed, at once; more than iodepth means iodepth)",
           aliases=("iodepth_batch",), high=65536),
    Option("iodepth_batch_complete_min", "int", "reap at least this many completions at a time "
           "(default 1; 0 polls without waiting)", aliases=("iodepth_batch_complete",),
           high=65536),
    Option("iodepth_batch_complete_max", "int", "handle at most this many completions at a time "
           "(default: as many as are ready; given a min and no max, max is the min, as in fio)",
           high=65536),
    Option("fixedbufs", "flag", "io_uring: registered buffers (READ_FIXED/WRITE_FIXED)"),
    Option("registerfiles", "flag", "io_uring: a registered file (IOSQE_FIXED_FILE)"),
    Option("sqthread_poll", "flag", "io_uring: IORING_SETUP_SQPOLL, a kernel thread polls the SQ"),
    Option("hipri", "flag", "io_uring: IORING_SETUP_IOPOLL, completions polled from the device "
           "(needs direct=1 and a device with poll queues)"),
    Option("direct", "bool", "O_DIRECT (0 or 1; the matrix runs both unless given)"),
    Option("buffered", "bool", "the opposite of direct"),
    Option("fsync", "int", "after every this many writes, a sync in the next slot, through the "
           "engine (the block layer's flush request, a data sync; fsync(2) in the sync loop); "
           "its latencies are fio's 'sync'"),
    Option("fdatasync", "int", "the same with fdatasync(2) in the sync loop"),
    Option("end_fsync", "bool", "fsync(2) the file when the job is done (outside the runtime)"),
    # -- time --------------------------------------------------------------------------------
    Option("runtime", "time", "stop after this long (seconds, or with a unit: 500ms, 1m); "
           "default 2s per job", aliases=("timeout",)),
    Option("time_based", "bool", "run for the whole runtime, going round the file as often as "
           "it takes (always on in the matrix)"),
    Option("ramp_time", "time", "run this long before measuring: what completes earlier is not "
           "counted (runtime and size count from its end)"),
    Option("startdelay", "timerange", "wait this long before starting the job, outside its "
           "runtime (a range a-b: a random time in it, per clone)"),
    # -- jobs and clones ---------------------------------------------------------------------
    Option("numjobs", "int", "clones of the job, run together: each its own process (forked), "
           "or a thread with 'thread'", low=1, high=1024),
    Option("thread", "bool", "clones are threads of this process, not forked processes (the GIL "
           "then runs one at a time)"),
    Option("group_reporting", "bool", "report the clones of a job as one entry"),
    Option("stonewall", "flag", "accepted: jobs here always run one after another; starts a new "
           "group (exitall)", aliases=("wait_for_previous",)),
    Option("new_group", "flag", "start a new group of jobs (exitall)"),
    Option("exitall", "bool", "when this job (or one clone) finishes, stop the others: its other "
           "clones, and the jobs after it in its group (until the next stonewall)"),
    Option("cpus_allowed", "cpus", "CPUs the job may run on, fio's list syntax: 0-1,3"),
    Option("cpus_allowed_policy", "choice", "shared (default: every clone gets the whole set) or "
           "split (clone i gets the i-th CPU of it)", choices=("shared", "split")),
    # -- verify ------------------------------------------------------------------------------
    Option("verify", "choice", "write, then read back and check every block written: each is "
           "stamped with a header carrying its offset and checksum (crc32c, crc32, md5, sha1, "
           "sha256, sha512); a read-only job checks every block it reads; a mismatch fails the "
           "job (EILSEQ, offset named, exit status 1)", choices=("0", "none") + VERIFY_KINDS),
    Option("do_verify", "bool", "run the verify phase after writing (default 1; 0: only stamp)"),
    Option("verify_only", "bool", "do not write: only verify what the same job wrote in an "
           "earlier run (same seed)"),
    Option("verify_fatal", "bool", "stop verifying at the first bad block (default: check all, "
           "report the first)"),
    # -- logs ----------------------------------------------------------------------------------
    Option("write_bw_log", "logname", "write fio's bandwidth log, NAME_bw.N.log (N: the job "
           "number; bare: the job name), KiB/s"),
    Option("write_lat_log", "logname", "write fio's latency logs, NAME_lat.N.log, NAME_clat.N.log "
           "and NAME_slat.N.log (empty: submission is not timed apart), in ns"),
    Option("write_iops_log", "logname", "write fio's IOPS log, NAME_iops.N.log"),
    Option("log_avg_msec", "int", "average the logs over windows of this many ms (default 0: a "
           "line per I/O)"),
    Option("log_offset", "bool", "add each I/O's offset to the log lines"),
    Option("per_job_logs", "bool", "include the job number in log file names (default 1)"),
)

COMMAND_OPTIONS: Tuple[Option, ...] = (
    Option("output-format", "choice", "normal (a table, a row as each cell finishes), json "
           "(fio's JSON, one document at the end) or json+ (json with each direction's clat_ns "
           "histogram bins); a comma list gives several, e.g. normal,json",
           choices=("normal", "json", "json+")),
    Option("output", "str", "write the output to this file instead of stdout"),
    Option("svg", "str", "also draw the engines side by side in this SVG file (a bar of "
           "IOPS per cell, buffered and O_DIRECT groups)"),
    Option("version", "flag", "print the version and exit"),
    Option("help", "flag", "show this help and exit"),
)

_JOB = {o.name: o for o in JOB_OPTIONS}
_JOB.update({a: o for o in JOB_OPTIONS for a in o.aliases})
_COMMAND = {o.name: o for o in COMMAND_OPTIONS}
_IO_URING_ONLY = ("fixedbufs", "registerfiles", "sqthread_poll", "hipri")

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)(b?)$", re.I)
_TIME = re.compile(r"^(\d+(?:\.\d+)?)\s*(us|usec|ms|msec|s|sec|m|min|h|d)?$", re.I)
_PCT = re.compile(r"^(\d+(?:\.\d+)?)\s*%$")


def parse_size(text: str, what: str = "size") -> int:
    """fio's sizes: ``4k``, ``16M``, ``1GiB``, ``512`` (powers of 1024, as
    fio's default kb_base)."""
    m = _SIZE.match(text.strip())
    if not m:
        raise UsageError(f"{what}={text}: not a size (e.g. 4k, 16M, 1G)")
    number, unit = float(m.group(1)), m.group(2).lower()
    scale = 1024 ** " kmgtp".index(unit) if unit else 1
    return int(number * scale)


def parse_time(text: str, what: str = "runtime") -> float:
    """fio's times, in seconds: ``2`` (seconds), ``500ms``, ``1m``."""
    m = _TIME.match(text.strip())
    if not m:
        raise UsageError(f"{what}={text}: not a time (e.g. 2, 2s, 500ms, 1m)")
    unit = (m.group(2) or "s").lower()
    scale = {"us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "s": 1.0, "sec": 1.0,
             "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}[unit]
    return float(m.group(1)) * scale


def _split_range(text: str, what: str) -> Tuple[str, str]:
    """``lo-hi`` (or fio's other spelling ``lo:hi``); a single value is lo=hi."""
    for sep in ("-", ":"):
        if sep in text:
            lo, _, hi = text.partition(sep)
            if not lo.strip() or not hi.strip():
                break
            return lo.strip(), hi.strip()
    else:
        return text.strip(), text.strip()
    raise UsageError(f"{what}={text}: not a range (e.g. 4k-64k)")


def parse_cpus(text: str, what: str = "cpus_allowed") -> Tuple[int, ...]:
    """fio's CPU lists: ``0-1,3`` (CPUs numbered from 0), checked against
    the CPUs this machine has."""
    cpus: List[int] = []
    have = os.cpu_count() or 1
    for part in text.split(","):
        part = part.strip()
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise UsageError(f"{what}={text}: {part!r} is not a CPU number or range (e.g. 0-1,3)")
        first, last = int(lo), int(hi) if hi else int(lo)
        if first > last:
            raise UsageError(f"{what}={text}: range {part} runs backwards")
        if last >= have:
            raise UsageError(f"{what}={text}: CPU {last} does not exist (this machine has "
                             f"CPUs 0-{have - 1})")
        cpus.extend(range(first, last + 1))
    return tuple(sorted(set(cpus)))


#: (lo, hi) block sizes of reads and of writes.
BsRange = Tuple[Tuple[int, int], Tuple[int, int]]


@dataclass(frozen=True)
class JobSpec:
    """One job, every value parsed; ``raw`` keeps its own options as given
    (fio's "job options": those given bare or empty are left out, as fio
    leaves them out) and ``given`` says which were set anywhere.
    The fields carry fio's option names; see ``JOB_OPTIONS`` for what each
    does."""

    name: str = "bench"
    filename: Optional[str] = None
    directory: Optional[str] = None
    size: Optional[int] = None
    size_pct: Optional[float] = None
    filesize: Optional[Tuple[int, int]] = None
    offset: int = 0
    offset_pct: Optional[float] = None
    io_size: Optional[int] = None
    create_on_open: bool = False
    unlink: bool = False
    invalidate: Optional[bool] = None  # None: the plan decides (jobs 1, the matrix warms)
    bs: int = 4096
    bsrange: Optional[BsRange] = None
    rw: str = "randread"
    rwmixread: int = 50
    norandommap: bool = False
    randrepeat: bool = True
    randseed: Optional[int] = None
    loops: int = 1
    zero_buffers: bool = False
    refill_buffers: bool = False
    ioengine: Optional[str] = None
    iodepth: int = 1
    iodepth_batch_submit: int = 0
    iodepth_batch_complete_min: int = 1
    iodepth_batch_complete_max: int = 0
    fixedbufs: bool = False
    registerfiles: bool = False
    sqthread_poll: bool = False
    hipri: bool = False
    direct: bool = False
    fsync: int = 0
    fdatasync: int = 0
    end_fsync: bool = False
    runtime: float = 2.0
    time_based: bool = False
    ramp_time: float = 0.0
    startdelay: Tuple[float, float] = (0.0, 0.0)
    numjobs: int = 1
    thread: bool = False
    group_reporting: bool = False
    stonewall: bool = False
    new_group: bool = False
    exitall: bool = False
    cpus_allowed: Optional[Tuple[int, ...]] = None
    cpus_allowed_policy: str = "shared"
    verify: Optional[str] = None
    do_verify: bool = True
    verify_only: bool = False
    verify_fatal: bool = False
    write_bw_log: Optional[str] = None  # "" (given bare): the job name
    write_lat_log: Optional[str] = None
    write_iops_log: Optional[str] = None
    log_avg_msec: int = 0
    log_offset: bool = False
    per_job_logs: bool = True
    jobfile: Optional[str] = None  # the job file it came from (None: the command line)
    given: Tuple[str, ...] = ()
    raw: Tuple[Tuple[str, str], ...] = ()

    @property
    def engine(self) -> str:
        """The engine that runs: ``sync``, ``threads``, ``native`` or ``io_uring``."""
        return ENGINES[self.ioengine or "io_uring"]

    @property
    def reads(self) -> int:
        """Percentage of I/Os that are reads."""
        if self.rw in ("read", "randread"):
            return 100
        if self.rw in ("write", "randwrite"):
            return 0
        return self.rwmixread

    @property
    def random(self) -> bool:
        return self.rw.startswith("rand")

    @property
    def writes(self) -> bool:
        """Whether the job writes at all."""
        return self.reads < 100

    def bs_range(self, write: bool) -> Tuple[int, int]:
        """(lo, hi) sizes of this job's reads or writes."""
        if self.bsrange is None:
            return self.bs, self.bs
        return self.bsrange[1 if write else 0]

    @property
    def min_bs(self) -> int:
        """The smallest I/O of the job: its offsets' granularity, as fio's."""
        if self.bsrange is None:
            return self.bs
        return min(self.bsrange[0][0], self.bsrange[1][0])

    @property
    def max_bs(self) -> int:
        """The largest I/O of the job: the size of each buffer."""
        if self.bsrange is None:
            return self.bs
        return max(self.bsrange[0][1], self.bsrange[1][1])

    @property
    def variable_bs(self) -> bool:
        """Whether I/O sizes vary (bsrange with lo < hi, or reads and writes
        of different sizes)."""
        if self.bsrange is None:
            return False
        (rlo, rhi), (wlo, whi) = self.bsrange
        if self.reads >= 100:
            return rlo != rhi
        if self.reads <= 0:
            return wlo != whi
        return rlo != rhi or wlo != whi or rlo != wlo

    @property
    def logs(self) -> bool:
        return any(v is not None for v in (self.write_bw_log, self.write_lat_log,
                                           self.write_iops_log))

    def with_options(self, **changes: object) -> "JobSpec":
        return replace(self, **changes)  # type: ignore[arg-type]


def _int(text: str, label: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise UsageError(f"{label}={text}: not an integer") from None


def _value(opt: Option, text: Optional[str], where: str) -> object:
    """Parse one option's value, naming the option in any error."""
    label = f"{where}{opt.name}"
    if opt.kind in ("bool", "flag"):
        if text is None or text.strip() in ("1", "true", "on", "yes"):
            return True
        if text.strip() in ("0", "false", "off", "no"):
            return False
        raise UsageError(f"{label}={text}: expected 0 or 1")
    if opt.kind == "logname":
        return "" if text is None else text.strip()
    if text is None or text.strip() == "":
        raise UsageError(f"{label} needs a value")
    text = text.strip()
    if opt.kind == "str":
        return text
    if opt.kind == "choice":
        if text not in opt.choices:
            raise UsageError(f"{label}={text}: not supported here (supported: "
                             f"{', '.join(opt.choices)})")
        return text
    if opt.kind == "cpus":
        return parse_cpus(text, label)
    if opt.kind == "sizepct":
        m = _PCT.match(text)
        if m:
            pct = float(m.group(1))
            if not (0 < pct <= 100 if opt.low else 0 <= pct <= 100):
                raise UsageError(f"{label}={text}: a percentage must be in "
                                 f"{'1' if opt.low else '0'}..100")
            return ("%", pct)
        value = parse_size(text, label)
    elif opt.kind == "range":
        parts = [p.strip() for p in text.split(",")]
        if len(parts) > 3 or not all(parts):
            raise UsageError(f"{label}={text}: expected lo-hi, or lo-hi,lo-hi for reads and "
                             "writes")
        ranges = []
        for part in parts[:2]:
            lo_text, hi_text = _split_range(part, label)
            lo, hi = parse_size(lo_text, label), parse_size(hi_text, label)
            if lo < 1 or hi < lo:
                raise UsageError(f"{label}={text}: {part} must run from a size of at least 1 "
                                 "up (lo-hi with lo <= hi)")
            if hi > 1 << 30:
                raise UsageError(f"{label}={text}: sizes above 1G are not supported")
            ranges.append((lo, hi))
        return (ranges[0], ranges[-1])
    elif opt.kind == "sizerange":
        lo_text, hi_text = _split_range(text, label)
        lo, hi = parse_size(lo_text, label), parse_size(hi_text, label)
        if lo < 1 or hi < lo:
            raise UsageError(f"{label}={text}: expected a size, or lo-hi with 1 <= lo <= hi")
        return (lo, hi)
    elif opt.kind == "timerange":
        first, second = _split_range(text, label)
        start, stop = parse_time(first, label), parse_time(second, label)
        if stop < start:
            raise UsageError(f"{label}={text}: the range runs backwards")
        return (start, stop)
    elif opt.kind == "int":
        value = _int(text, label)
    elif opt.kind == "size":
        value = parse_size(text, label)
    else:
        seconds = parse_time(text, label)
        if seconds < 0:
            raise UsageError(f"{label}={text}: negative")
        return seconds
    if not opt.low <= value <= opt.high:
        raise UsageError(f"{label}={text}: out of range ({opt.low}..{opt.high})")
    return value


def _apply(spec: JobSpec, name: str, text: Optional[str], where: str) -> JobSpec:
    """*spec* with option *name* (fio spelling, maybe an alias) set."""
    opt = _JOB.get(name)
    if opt is None:
        raise UsageError(f"{where}option '{name}' is not supported by this benchmark "
                         f"(supported: {', '.join(o.name for o in JOB_OPTIONS)})")
    value = _value(opt, text, where)
    key = opt.name
    changes: Dict[str, object] = {}
    if key == "buffered":
        key, value = "direct", not value
    elif key == "rwmixwrite":
        key, value = "rwmixread", 100 - int(value)  # type: ignore[call-overload]
    elif key == "rw" and value == "readwrite":
        value = "rw"
    elif key in ("size", "offset"):
        pct = value[1] if isinstance(value, tuple) else None
        changes[f"{key}_pct"] = pct
        value = None if pct is not None else value
        if key == "offset" and value is None:
            value = 0
    elif key == "bs":
        changes["bsrange"] = None  # the last of bs and bsrange given wins, as in fio
    elif key == "bsrange":
        ranges: BsRange = value  # type: ignore[assignment]
        changes["bs"] = min(ranges[0][0], ranges[1][0])
    elif key == "verify":
        value = None if value in ("0", "none") else "crc32c" if value == "crc32c-intel" else value
    elif key == "filename" and ":" in str(value):
        raise UsageError(f"{where}filename={value}: several files in one job (fio's "
                         "'a:b' list) are not supported; give each file its own job")
    changes[key] = value
    changes["given"] = tuple(dict.fromkeys(spec.given + (key,)))
    return replace(spec, **changes)  # type: ignore[arg-type]


def _listed(text: Optional[str]) -> bool:
    """Whether an option given with *text* goes into fio's "job options"/
    "global options": fio 3.33 lists an option with its value as given,
    and leaves out one given bare (``thread``, ``time_based``,
    ``group_reporting``, ``write_bw_log``) or with an empty value."""
    return text is not None and text.strip() != ""


def _with_raw(spec: JobSpec, name: str, text: Optional[str]) -> JobSpec:
    if not _listed(text):
        return spec
    return replace(spec, raw=spec.raw + ((name, str(text)),))


def check_job(spec: JobSpec, where: str = "") -> None:
    """Combinations fio would refuse too, and the ones this benchmark
    cannot run, refused by name."""
    engine = spec.ioengine
    for flag in _IO_URING_ONLY:
        if getattr(spec, flag) and engine is not None and engine != "io_uring":
            raise UsageError(f"{where}option '{flag}' is an io_uring option, but "
                             f"ioengine={engine}")
    if spec.time_based and spec.runtime <= 0:
        raise UsageError(f"{where}option 'time_based' needs a runtime")
    if spec.size is not None and spec.size < spec.min_bs:
        raise UsageError(f"{where}option 'size' ({spec.size}) is smaller than bs "
                         f"({spec.min_bs})")
    if spec.verify_only and spec.verify is None:
        raise UsageError(f"{where}option 'verify_only' needs verify= (which checksum)")
    if spec.verify_only and spec.time_based:
        raise UsageError(f"{where}option 'verify_only' cannot replay a time_based job (fio "
                         "does not support it either): drop time_based")
    if spec.verify is not None:
        from .verify import header_size

        need = header_size(spec.verify)
        if spec.min_bs < need:
            raise UsageError(f"{where}verify={spec.verify}: blocks of {spec.min_bs} bytes cannot "
                             f"hold the {need}-byte verify header")
        if spec.norandommap and spec.variable_bs and spec.writes:
            raise UsageError(f"{where}verify with norandommap and varying block sizes: a block "
                             "overwritten in part by a later write of another size cannot be "
                             "verified (fio warns 'verify limited'); use a fixed bs or drop "
                             "norandommap")
    if spec.zero_buffers and spec.refill_buffers:
        raise UsageError(f"{where}zero_buffers and refill_buffers contradict each other "
                         "(zeros, or new random data for every write?)")
    if spec.log_avg_msec < 0:
        raise UsageError(f"{where}log_avg_msec must not be negative")


@dataclass
class Invocation:
    """What the command line asked for."""

    jobs: List[JobSpec] = field(default_factory=list)
    global_raw: List[Tuple[str, str]] = field(default_factory=list)
    output_format: str = "normal"  # as given: "normal", "json", "json+" or a comma list
    output_formats: Tuple[str, ...] = ("normal",)  # the same, parsed, in order, no repeats
    output: Optional[str] = None
    svg: Optional[str] = None
    version: bool = False
    help: bool = False


def _split(token: str) -> Tuple[str, Optional[str]]:
    name, eq, value = token[2:].partition("=")
    return name, (value if eq else None)


def parse_args(argv: Sequence[str]) -> Invocation:
    """fio's command line: ``--opt=value``, ``--opt value``, ``--flag``,
    ``--name`` starting a job, and job files as positional arguments."""
    inv = Invocation()
    base = JobSpec()
    cmdline_jobs: List[JobSpec] = []
    files: List[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if not token.startswith("-") or token == "-":
            files.append(token)
            continue
        if token in ("-h", "--help"):
            inv.help = True
            continue
        if not token.startswith("--"):
            raise UsageError(f"option '{token}' is not supported (options are fio's, "
                             "spelled --name=value)")
        name, value = _split(token)
        opt = _COMMAND.get(name) or _JOB.get(name)
        if opt is None:
            raise UsageError(f"option '--{name}' is not supported by this benchmark "
                             "(python3 -m uring bench --help lists the options)")
        if value is None and opt.kind not in ("bool", "flag", "logname") and i < len(args):
            value = args[i]
            i += 1
        elif value is None and opt.kind == "logname" and i < len(args) \
                and not args[i].startswith("-"):
            value = args[i]  # as fio: a bare --write_bw_log takes the next word as its name
            i += 1
        elif value is None and opt.kind == "bool" and i < len(args) and args[i] in ("0", "1"):
            value = args[i]
            i += 1
        if opt.kind == "logname" and value is not None and not value.strip():
            # fio's getopt: an option that takes a name refuses "--write_bw_log=" (a bare
            # write_bw_log in a job file is the job's name, there and here)
            raise UsageError(f"option {opt.name} requires an argument")
        if name == "output-format":
            if value is None or not value.strip():
                raise UsageError("--output-format needs a value")
            parts = tuple(dict.fromkeys(p.strip() for p in value.split(",")))
            for part in parts:
                if part not in opt.choices:
                    raise UsageError(f"--output-format={value}: not supported here (supported: "
                                     f"{', '.join(opt.choices)}, or a comma list of them)")
            inv.output_format, inv.output_formats = value, parts
            continue
        if name in ("output", "svg"):
            setattr(inv, name, str(_value(opt, value, "--")))
            continue
        if name in ("help", "version"):
            setattr(inv, name, bool(_value(opt, value, "--")))
            continue
        if opt.name == "name":
            cmdline_jobs.append(_with_raw(_apply(base, "name", value, "--"), "name", value))
            continue
        if cmdline_jobs:
            job = _apply(cmdline_jobs[-1], name, value, "--")
            cmdline_jobs[-1] = _with_raw(job, name, value)
        else:
            base = _apply(base, name, value, "--")
            if _listed(value):
                inv.global_raw.append((name, str(value)))
    for path in files:
        inv.jobs.extend(parse_job_file(path, base, inv.global_raw))
    inv.jobs.extend(cmdline_jobs)
    if not inv.jobs and not inv.help:
        inv.jobs.append(base)
    for job in inv.jobs:
        check_job(job)
    return inv


_ENV = re.compile(r"\$\{([^}]*)\}")


def _expand(value: str) -> str:
    """fio's expansions in a job file's values: ``${VAR}`` from the
    environment (empty if unset), and the keywords ``$pagesize``,
    ``$ncpus`` and ``$mb_memory``."""
    value = _ENV.sub(lambda m: os.environ.get(m.group(1), "") if m.group(1) else "", value)
    if "$" in value:
        pages = os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
        for word, number in (("$pagesize", os.sysconf("SC_PAGESIZE")),
                             ("$ncpus", os.cpu_count() or 1),
                             ("$mb_memory", pages * os.sysconf("SC_PAGESIZE") >> 20)):
            value = value.replace(word, str(number))
    return value


def parse_job_file(path: str, base: Optional[JobSpec] = None,
                   global_raw: Optional[List[Tuple[str, str]]] = None) -> List[JobSpec]:
    """A fio job file: ``[section]`` headers, ``key=value`` or bare
    ``key`` lines, ``;`` and ``#`` comments; ``[global]`` applies to the jobs
    after it; ``${VAR}`` in a value is the environment variable, as in fio.
    *global_raw* collects the global options as given."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise UsageError(f"job file {path}: {exc.strerror}") from None
    glob = base if base is not None else JobSpec()
    jobs: List[JobSpec] = []
    current: Optional[JobSpec] = None
    in_global = False
    for number, line in enumerate(lines, 1):
        where = f"{os.path.basename(path)}:{number}: "
        text = line.strip()
        if not text or text[0] in ";#":
            continue
        if text.startswith("["):
            if not text.endswith("]") or len(text) < 3:
                raise UsageError(f"{where}bad section header {text!r}")
            if current is not None:
                jobs.append(current)
            section = text[1:-1].strip()
            in_global = section == "global"
            current = None if in_global else _apply(glob, "name", section, where)
            continue
        key, eq, value = text.partition("=")
        key = key.strip()
        val: Optional[str] = _expand(value.strip()) if eq else None
        if key in _COMMAND:
            raise UsageError(f"{where}option '{key}' belongs on the command line, not in a job file")
        if in_global:
            glob = _apply(glob, key, val, where)
            if global_raw is not None and _listed(val):
                global_raw.append((key, str(val)))
        elif current is not None:
            current = _with_raw(_apply(current, key, val, where), key, val)
        else:
            raise UsageError(f"{where}option '{key}' outside any [section]")
    if current is not None:
        jobs.append(current)
    if not jobs:
        raise UsageError(f"job file {path}: no jobs (only [global])")
    jobs = [replace(job, jobfile=path) for job in jobs]
    for job in jobs:
        check_job(job, f"{os.path.basename(path)}: job '{job.name}': ")
    return jobs

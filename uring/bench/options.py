"""fio's language, the part of it this benchmark speaks.

Options carry fio's names and fio's value syntax (``bs=4k``,
``runtime=500ms``, ``direct=1``, bare flags such as ``fixedbufs``), on the
command line (``--rw=randread`` or ``--rw randread``) and in job files (ini
sections, ``[global]`` merged into every job).  An option fio has and this
benchmark does not is *refused by name*, never ignored: a job that silently
dropped ``ramp_time`` or ``rate_iops`` would measure something other than
what its author asked for.  ``UsageError`` carries the message; the command
line turns it into exit status 2.

Layering follows fio: defaults, then command-line options given before the
first ``--name`` (global), then a job file's ``[global]``, then the job's
own options.  ``--name`` on the command line starts a new job, as in fio.
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
}

RW_MODES = ("read", "write", "randread", "randwrite", "rw", "readwrite", "randrw")

JOB_OPTIONS: Tuple[Option, ...] = (
    Option("name", "str", "job name; on the command line each --name starts a new job"),
    Option("filename", "str", "file or block device to use (default: a temporary file, removed "
           "at the end)"),
    Option("directory", "str", "where the temporary file goes (default /var/tmp)"),
    Option("size", "size", "bytes of the file to use (default: the file's size, or 1G for the "
           "temporary file); without time_based a job ends after this many bytes", low=1),
    Option("bs", "size", "block size of each I/O (default 4k)", aliases=("blocksize",), low=1),
    Option("rw", "choice", "I/O pattern (default randread; fio's default is read)",
           choices=RW_MODES, aliases=("readwrite",)),
    Option("rwmixread", "int", "percentage of reads in rw/randrw (default 50)", high=100),
    Option("rwmixwrite", "int", "percentage of writes in rw/randrw", high=100),
    Option("ioengine", "choice", "io_uring, libaio (the block layer's native engine), psync or "
           "pvsync (a synchronous os.preadv loop), threads (the block layer's thread pool); "
           "none given: the side-by-side matrix of every engine",
           choices=tuple(ENGINES)),
    Option("iodepth", "int", "requests in flight (default 1; 32 in the matrix)", low=1,
           high=65536),
    Option("numjobs", "int", "clones of the job, each its own process, run together", low=1,
           high=1024),
    Option("runtime", "time", "stop after this long (seconds, or with a unit: 500ms, 1m); "
           "default 2s per job"),
    Option("time_based", "bool", "run for the whole runtime, going round the file as often as "
           "it takes (always on in the matrix)"),
    Option("direct", "bool", "O_DIRECT (0 or 1; the matrix runs both unless given)"),
    Option("buffered", "bool", "the opposite of direct"),
    Option("fixedbufs", "flag", "io_uring: registered buffers (READ_FIXED/WRITE_FIXED)"),
    Option("registerfiles", "flag", "io_uring: a registered file (IOSQE_FIXED_FILE)"),
    Option("sqthread_poll", "flag", "io_uring: IORING_SETUP_SQPOLL, a kernel thread polls the SQ"),
    Option("hipri", "flag", "io_uring: IORING_SETUP_IOPOLL, completions polled from the device "
           "(needs direct=1 and a device with poll queues)"),
    Option("stonewall", "flag", "accepted: jobs here always run one after another",
           aliases=("wait_for_previous",)),
)

COMMAND_OPTIONS: Tuple[Option, ...] = (
    Option("output-format", "choice", "normal (a table) or json (fio's JSON)",
           choices=("normal", "json")),
    Option("help", "flag", "show this help and exit"),
)

_JOB = {o.name: o for o in JOB_OPTIONS}
_JOB.update({a: o for o in JOB_OPTIONS for a in o.aliases})
_COMMAND = {o.name: o for o in COMMAND_OPTIONS}
_IO_URING_ONLY = ("fixedbufs", "registerfiles", "sqthread_poll", "hipri")

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)(b?)$", re.I)
_TIME = re.compile(r"^(\d+(?:\.\d+)?)\s*(us|usec|ms|msec|s|sec|m|min|h|d)?$", re.I)


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


@dataclass(frozen=True)
class JobSpec:
    """One job, every value parsed; ``raw`` keeps its own options as given
    (fio's "job options") and ``given`` says which were set anywhere."""

    name: str = "bench"
    filename: Optional[str] = None
    directory: Optional[str] = None
    size: Optional[int] = None
    bs: int = 4096
    rw: str = "randread"
    rwmixread: int = 50
    ioengine: Optional[str] = None
    iodepth: int = 1
    numjobs: int = 1
    runtime: float = 2.0
    time_based: bool = False
    direct: bool = False
    fixedbufs: bool = False
    registerfiles: bool = False
    sqthread_poll: bool = False
    hipri: bool = False
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

    def with_options(self, **changes: object) -> "JobSpec":
        return replace(self, **changes)  # type: ignore[arg-type]


def _value(opt: Option, text: Optional[str], where: str) -> object:
    """Parse one option's value, naming the option in any error."""
    label = f"{where}{opt.name}"
    if opt.kind in ("bool", "flag"):
        if text is None or text.strip() in ("1", "true", "on", "yes"):
            return True
        if text.strip() in ("0", "false", "off", "no"):
            return False
        raise UsageError(f"{label}={text}: expected 0 or 1")
    if text is None or text == "":
        raise UsageError(f"{label} needs a value")
    if opt.kind == "str":
        return text
    if opt.kind == "choice":
        if text not in opt.choices:
            raise UsageError(f"{label}={text}: not supported here (supported: "
                             f"{', '.join(opt.choices)})")
        return text
    if opt.kind == "int":
        try:
            value = int(text, 0)
        except ValueError:
            raise UsageError(f"{label}={text}: not an integer") from None
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
    if key == "rwmixwrite":
        key, value = "rwmixread", 100 - int(value)  # type: ignore[call-overload]
    if key == "rw" and value == "readwrite":
        value = "rw"
    if key != "stonewall":
        changes[key] = value
    changes["given"] = tuple(dict.fromkeys(spec.given + (key,)))
    return replace(spec, **changes)  # type: ignore[arg-type]


def _with_raw(spec: JobSpec, name: str, text: Optional[str]) -> JobSpec:
    return replace(spec, raw=spec.raw + ((name, "1" if text is None else text),))


def check_job(spec: JobSpec, where: str = "") -> None:
    """Combinations fio would refuse too, refused by name."""
    engine = spec.ioengine
    for flag in _IO_URING_ONLY:
        if getattr(spec, flag) and engine is not None and engine != "io_uring":
            raise UsageError(f"{where}option '{flag}' is an io_uring option, but "
                             f"ioengine={engine}")
    if spec.time_based and spec.runtime <= 0:
        raise UsageError(f"{where}option 'time_based' needs a runtime")
    if spec.size is not None and spec.size < spec.bs:
        raise UsageError(f"{where}option 'size' ({spec.size}) is smaller than bs ({spec.bs})")


@dataclass
class Invocation:
    """What the command line asked for."""

    jobs: List[JobSpec] = field(default_factory=list)
    global_raw: List[Tuple[str, str]] = field(default_factory=list)
    output_format: str = "normal"
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
        if value is None and opt.kind not in ("bool", "flag") and i < len(args):
            value = args[i]
            i += 1
        elif value is None and opt.kind == "bool" and i < len(args) and args[i] in ("0", "1"):
            value = args[i]
            i += 1
        if name == "output-format":
            inv.output_format = str(_value(opt, value, "--"))
            continue
        if name == "help":
            inv.help = True
            continue
        if opt.name == "name":
            cmdline_jobs.append(_with_raw(_apply(base, "name", value, "--"), "name", value))
            continue
        if cmdline_jobs:
            job = _apply(cmdline_jobs[-1], name, value, "--")
            cmdline_jobs[-1] = _with_raw(job, name, value)
        else:
            base = _apply(base, name, value, "--")
            inv.global_raw.append((name, "1" if value is None else value))
    for path in files:
        inv.jobs.extend(parse_job_file(path, base, inv.global_raw))
    inv.jobs.extend(cmdline_jobs)
    if not inv.jobs and not inv.help:
        inv.jobs.append(base)
    for job in inv.jobs:
        check_job(job)
    return inv


def parse_job_file(path: str, base: Optional[JobSpec] = None,
                   global_raw: Optional[List[Tuple[str, str]]] = None) -> List[JobSpec]:
    """A fio job file: ``[section]`` headers, ``key=value`` or bare
    ``key`` lines, ``;`` and ``#`` comments; ``[global]`` applies to the jobs
    after it.  *global_raw* collects the global options as given."""
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
        val: Optional[str] = value.strip() if eq else None
        if key in _COMMAND:
            raise UsageError(f"{where}option '{key}' belongs on the command line, not in a job file")
        if in_global:
            glob = _apply(glob, key, val, where)
            if global_raw is not None:
                global_raw.append((key, "1" if val is None else val))
        elif current is not None:
            current = _with_raw(_apply(current, key, val, where), key, val)
        else:
            raise UsageError(f"{where}option '{key}' outside any [section]")
    if current is not None:
        jobs.append(current)
    if not jobs:
        raise UsageError(f"job file {path}: no jobs (only [global])")
    for job in jobs:
        check_job(job, f"{os.path.basename(path)}: job '{job.name}': ")
    return jobs

"""fio's per-job logs: ``write_bw_log``, ``write_lat_log``, ``write_iops_log``.

What fio writes (fio 3.33, "Log File Formats" in its HOWTO): a file per
log and job, ``NAME_bw.N.log``, ``NAME_iops.N.log``, and for latency three,
``NAME_lat.N.log`` (total), ``NAME_clat.N.log`` (completion) and
``NAME_slat.N.log`` (submission); NAME is the option's value (the job's
name when given bare), N the job's number counting every clone of every
job from 1 (without it when ``per_job_logs=0``: one file for all clones).
Each line is one sample::

    time, value, direction, bs, priority
    time, value, direction, bs, offset, priority      (log_offset=1)

*time* in ms since the job started (after ``ramp_time``); *value* a
latency in ns, a bandwidth in KiB/s or an IOPS count; *direction* 0 read,
1 write; *bs* the I/O's size in bytes; *priority* 0.  Without
``log_avg_msec`` there is a line per I/O (bandwidth then being the I/O's
bytes over its latency, fio's ``bytes * 10^6 / ns``, and IOPS 1); with
it, a line per direction per window of that many ms that saw I/O: the
mean latency, the window's KiB/s, its IOPS, at the window's end, with bs
and offset 0.

What this benchmark writes: the same files and lines, from the
measurement, when each job is done (fio writes them as it goes).  Latency
is measured whole (see ``workload``): the ``lat`` and ``clat`` logs carry
it, the ``slat`` log is empty, as fio's is for its synchronous engines.
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Sequence, Tuple

from .options import JobSpec
from .workload import Direction, Measurement

__all__ = ["log_paths", "write_logs"]

_NS_PER_MS = 1_000_000

#: one I/O: (end ns, direction, latency ns, bytes, offset)
_Sample = Tuple[int, int, int, int, int]


def _samples(m: Measurement) -> List[_Sample]:
    out: List[_Sample] = []
    for ddir, d in ((0, m.read), (1, m.write)):
        out.extend(_direction(ddir, d, m.bs))
    out.sort(key=lambda s: (s[0], s[1]))
    return out


def _direction(ddir: int, d: Direction, bs: int) -> Iterator[_Sample]:
    sizes = d.sizes if len(d.sizes) == len(d.lat) else None
    offsets = d.offsets if len(d.offsets) == len(d.lat) else None
    for i, (lat, end) in enumerate(zip(d.lat, d.end)):
        yield (end, ddir, lat, bs if sizes is None else sizes[i],
               0 if offsets is None else offsets[i])


def _line(ms: int, value: int, ddir: int, size: int, offset: int, with_offset: bool) -> str:
    if with_offset:
        return f"{ms}, {value}, {ddir}, {size}, {offset}, 0\n"
    return f"{ms}, {value}, {ddir}, {size}, 0\n"


def _per_io(kind: str, samples: Sequence[_Sample], with_offset: bool) -> List[str]:
    lines = []
    for end, ddir, lat, size, offset in samples:
        if kind == "bw":
            value = size * 1_000_000 // lat if lat > 0 else 0
        elif kind == "iops":
            value = 1
        else:
            value = lat
        lines.append(_line(end // _NS_PER_MS, value, ddir, size, offset, with_offset))
    return lines


def _windowed(kind: str, samples: Sequence[_Sample], msec: int, with_offset: bool) -> List[str]:
    # window index -> direction -> [ios, bytes, latency sum]
    windows: Dict[int, Dict[int, List[int]]] = {}
    width = msec * _NS_PER_MS
    for end, ddir, lat, size, _ in samples:
        acc = windows.setdefault(end // width, {}).setdefault(ddir, [0, 0, 0])
        acc[0] += 1
        acc[1] += size
        acc[2] += lat
    lines = []
    for index in sorted(windows):
        for ddir, (ios, moved, lat_sum) in sorted(windows[index].items()):
            if kind == "bw":
                value = moved * 1000 // msec // 1024
            elif kind == "iops":
                value = ios * 1000 // msec
            else:
                value = lat_sum // ios
            lines.append(_line((index + 1) * msec, value, ddir, 0, 0, with_offset))
    return lines


def log_paths(job: JobSpec, number: int) -> Dict[str, str]:
    """The log files job number *number* writes: kind (bw, lat, clat, slat,
    iops) -> path."""
    out: Dict[str, str] = {}
    suffix = f".{number}.log" if job.per_job_logs else ".log"
    for option, kinds in ((job.write_bw_log, ("bw",)), (job.write_lat_log, ("lat", "clat", "slat")),
                          (job.write_iops_log, ("iops",))):
        if option is None:
            continue
        stem = option or job.name
        for kind in kinds:
            out[kind] = f"{stem}_{kind}{suffix}"
    return out


def write_logs(job: JobSpec, clones: Sequence[Measurement], first_number: int) -> List[str]:
    """Write the logs the job asked for, for each clone (numbered from
    *first_number*); returns the paths written.  With ``per_job_logs=0``
    the clones share one file per log, their lines in time order."""
    if not job.logs:
        return []
    if job.per_job_logs:
        groups = [(first_number + i, [_samples(m)]) for i, m in enumerate(clones)]
    else:
        groups = [(first_number, [_samples(m) for m in clones])]
    written: List[str] = []
    for number, sample_sets in groups:
        samples = sorted((s for ss in sample_sets for s in ss), key=lambda s: (s[0], s[1]))
        for kind, path in log_paths(job, number).items():
            if kind == "slat":
                lines: List[str] = []  # submission is not timed apart: fio's sync engines too
            elif job.log_avg_msec:
                lines = _windowed("lat" if kind == "clat" else kind, samples, job.log_avg_msec,
                                  job.log_offset)
            else:
                lines = _per_io("lat" if kind == "clat" else kind, samples, job.log_offset)
            with open(path, "w") as f:
                f.writelines(lines)
            written.append(path)
    return written

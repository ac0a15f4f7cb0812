"""What a run prints: a table, a row at a time, and fio's JSON.

The table (``--output-format=normal``) has a row per cell, printed as soon
as the cell is done: IOPS, bandwidth, completion-latency percentiles, CPU
(user and system, % of one core, every thread of the process), and in the
matrix each engine's rate as a multiple of the synchronous loop's and of
the ``threads`` engine's in the same cache mode.  Its columns have fixed
widths worked out from the planned cells, so rows can go out before the
later cells have run.  A mixed job (``rw``/``randrw``) has two rows, one
per direction (an ``rw`` column says which), each with that direction's
IOPS, bandwidth and latencies; its CPU is on the read row only (it is the
cell's).  Rates compare only within one run: machines like this one drift
by tens of percent between runs.

The JSON is fio's (``--output-format=json``, fio 3.33's keys) so that fio
tooling reads it: a top-level object with ``fio version``, ``timestamp``,
``time``, ``global options``, ``jobs`` and ``disk_util``; per job (per
clone, as fio lists clones, unless ``group_reporting`` sums them into one
entry as fio's ``sum_thread_stats`` does: ``job_runtime`` the clones'
runtimes added up, the bandwidth and IOPS sample statistics added up) the ``read``/``write``/``trim`` sections with bytes, rates,
``slat_ns``/``clat_ns``/``lat_ns``, the per-interval bandwidth and IOPS
samples (``bw_min`` ... ``iops_samples``, 500 ms intervals as fio's
default), then CPU, context switches, faults, ``iodepth_level``,
``iodepth_submit``, ``iodepth_complete`` and the latency buckets.
``json+`` adds each direction's ``clat_ns`` ``bins``.  One key fio does not
have, ``uring``, says which engine and cache mode a job ran, the page
cache's state, and an error's explanation.
"""

from __future__ import annotations

import math
import time
from array import array
from dataclasses import fields, replace
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .plan import Cell, CellResult
from .stats import (
    LatencySummary,
    SampleStats,
    batch_distribution,
    clat_bins,
    interval_rates,
    latency_buckets,
    sample_stats,
    summarize,
)
from .workload import Direction, Measurement

__all__ = ["TableWriter", "fio_json", "fmt_rate", "merge_clones", "mixed", "table"]

_DEPTHS = (1, 2, 4, 8, 16, 32, 64)
_DIRS = ("read", "write")


def _cache(direct: bool) -> str:
    return "O_DIRECT" if direct else "buffered"


def mixed(cell: Cell) -> bool:
    """A job that both reads and writes (``rw``/``randrw`` with a mix)."""
    return 0 < cell.job.reads < 100


def _group_reporting(cell: Cell) -> bool:
    return cell.job.group_reporting


# -- one direction's numbers ----------------------------------------------------------------


def _sizes(d: Direction) -> Optional[Sequence[int]]:
    """Each I/O's bytes where a job's sizes vary (``bsrange``), else None (all ``bs``)."""
    sizes = d.sizes
    return sizes if len(sizes) and len(sizes) == len(d.lat) else None


def _bytes(d: Direction, m: Measurement) -> int:
    """Bytes moved in one direction."""
    if d.bytes:
        return d.bytes
    sizes = _sizes(d)
    return sum(sizes) if sizes is not None else d.ios * m.bs


def _seconds(d: Direction, m: Measurement) -> float:
    """How long one direction was measured: its own runtime where it has
    one (reads run on through a verify phase), else the job's."""
    return d.runtime if d.runtime > 0 else m.runtime


def _ends(d: Direction) -> Optional[Sequence[int]]:
    end = d.end
    return end if len(end) and len(end) == len(d.lat) else None


def merge_clones(ms: Sequence[Measurement]) -> Measurement:
    """The clones of one job as one measurement (fio's ``group_reporting``):
    the per-I/O arrays joined, counts and CPU summed, the longest runtime,
    the batch histograms added up, the first error."""
    if len(ms) == 1:
        return ms[0]

    def direction(ds: Sequence[Direction]) -> Direction:
        out = Direction()
        for f in fields(Direction):
            values = [getattr(d, f.name) for d in ds]
            if isinstance(values[0], array):
                joined = array(values[0].typecode)
                for v in values:
                    joined.extend(v)
                setattr(out, f.name, joined)
            elif f.name == "runtime":  # the clones ran at the same time
                setattr(out, f.name, max(values))
            elif isinstance(values[0], (int, float)) and not isinstance(values[0], bool):
                setattr(out, f.name, sum(values))
        return out

    failed = next((m for m in ms if m.error), None)
    changes: Dict[str, Any] = dict(
        read=direction([m.read for m in ms]), write=direction([m.write for m in ms]),
        runtime=max(m.runtime for m in ms), usr=sum(m.usr for m in ms),
        sys=sum(m.sys for m in ms), ctx=sum(m.ctx for m in ms), majf=sum(m.majf for m in ms),
        minf=sum(m.minf for m in ms), error=failed.error if failed else 0,
        error_text=failed.error_text if failed else "")
    changes["sync"] = direction([m.sync for m in ms])
    for name in ("submit_hist", "complete_hist"):
        total: Dict[int, int] = {}
        for m in ms:
            for size, count in getattr(m, name).items():
                total[size] = total.get(size, 0) + count
        changes[name] = total
    return replace(ms[0], **changes)


# -- fio JSON -----------------------------------------------------------------------


def _zero_stats() -> Dict[str, Any]:
    return {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0}


def _rate_samples(d: Direction, m: Measurement, deadline: float) -> Tuple[SampleStats,
                                                                          SampleStats]:
    """The bandwidth and IOPS samples of one direction of one clone, as
    fio's helper thread takes them: one per 500 ms interval while the job
    runs.  A job stopped by its *deadline* (``runtime``, seconds; 0: none)
    is not running when the interval that ends there is due, so that one
    is not sampled (fio: 1 sample in 1 s, 3 in 2 s, 2 in 1.2 s); a verify
    phase after the run keeps its own."""
    ends = _ends(d)
    if ends is None or not d.ios:
        return sample_stats([]), sample_stats([])
    seconds = _seconds(d, m)
    window = int(seconds * 1e9)
    stop = int(round(deadline * 1e9))
    if 0 < stop <= window and seconds <= m.runtime:
        window = stop - 1
    bw, iops = interval_rates(ends, m.bs, window, sizes=_sizes(d))
    return sample_stats(bw), sample_stats(iops)


def _pure_sum(parts: Sequence[SampleStats]) -> SampleStats:
    """fio's ``sum_stat(..., pure_sum=true)`` for a group's bandwidth and
    IOPS: the clones' min, max, mean, sample count and sum of squared
    deviations each added up (a group's rate is the sum of its clones'),
    the deviation then worked out from the summed ones (``calc_lat``:
    sqrt(S / (N - 1))).  Clones without samples are left out."""
    parts = [p for p in parts if p.n]
    if not parts:
        return sample_stats([])
    n = sum(p.n for p in parts)
    squares = sum(p.dev * p.dev * (p.n - 1) for p in parts)
    dev = math.sqrt(squares / (n - 1)) if n > 1 else 0.0
    return SampleStats(sum(p.min for p in parts), sum(p.max for p in parts),
                       sum(p.mean for p in parts), dev, n)


def _direction(d: Direction, m: Measurement, agg: float, plus: bool, deadline: float,
               members: Optional[Sequence[Direction]] = None,
               clones: Sequence[Measurement] = ()) -> Dict[str, Any]:
    """One of a job's ``read``/``write``/``trim``; *agg* is the group's
    bandwidth in this direction, bytes/s (fio's ``bw_agg`` is a share of it).
    A ``group_reporting`` entry (*d*, *m* the clones merged) takes its
    bandwidth and IOPS samples from each clone (*members*, the same
    direction of each of *clones*) and sums them as fio does."""
    ios = d.ios
    io_bytes = _bytes(d, m)
    seconds = _seconds(d, m) if ios else 0.0
    summary = LatencySummary(d.lat)
    clat = summary.fio(with_percentiles=True)
    if plus and ios:
        clat["bins"] = clat_bins(d.lat)
    if members is None:
        bw, iops = _rate_samples(d, m, deadline)
    else:
        each = [_rate_samples(x, c, deadline) for x, c in zip(members, clones)]
        bw, iops = _pure_sum([b for b, _ in each]), _pure_sum([i for _, i in each])
    share = 0.0
    if bw.n:
        share = min(100.0, bw.mean * 100 / (agg / 1024)) if agg >= 1024 else 100.0
    return {
        "io_bytes": io_bytes,
        "io_kbytes": io_bytes >> 10,
        "bw_bytes": int(io_bytes / seconds) if seconds else 0,
        "bw": int(io_bytes / seconds / 1024) if seconds else 0,
        "iops": ios / seconds if seconds else 0.0,
        "runtime": int(round(seconds * 1000)),
        "total_ios": ios,
        "short_ios": d.short,
        "drop_ios": 0,
        "slat_ns": _zero_stats(),  # not measured apart from clat: see workload.py
        "clat_ns": clat,
        "lat_ns": summary.fio(with_percentiles=False),
        "bw_min": bw.min,
        "bw_max": bw.max,
        "bw_agg": share,
        "bw_mean": bw.mean,
        "bw_dev": bw.dev,
        "bw_samples": bw.n,
        "iops_min": iops.min,
        "iops_max": iops.max,
        "iops_mean": iops.mean,
        "iops_stddev": iops.dev,
        "iops_samples": iops.n,
    }


def _sync(d: Direction, plus: bool) -> Dict[str, Any]:
    """fio's ``sync`` section: the fsync/fdatasync requests and their latencies."""
    if not d.ios:
        return {"total_ios": 0, "lat_ns": _zero_stats()}
    lat = LatencySummary(d.lat).fio(with_percentiles=True)
    if plus:
        lat["bins"] = clat_bins(d.lat)
    return {"total_ios": d.ios, "lat_ns": lat}


def _iodepth_level(depth: int) -> Dict[str, float]:
    """The queue is kept full, so every I/O is issued at the job's depth."""
    out: Dict[str, float] = {}
    for i, d in enumerate(_DEPTHS):
        key = ">=64" if d == 64 else str(d)
        top = _DEPTHS[i + 1] if i + 1 < len(_DEPTHS) else 1 << 30
        out[key] = 100.0 if d <= depth < top else 0.0
    return out


def _group_agg(ms: Sequence[Measurement]) -> Dict[str, float]:
    """fio's ``rs->agg``: a group's bytes over its longest runtime, per direction."""
    out: Dict[str, float] = {}
    for name in _DIRS:
        longest = max((_seconds(getattr(m, name), m) for m in ms), default=0.0)
        moved = sum(_bytes(getattr(m, name), m) for m in ms)
        out[name] = moved / longest if longest > 0 else 0.0
    return out


def _job(result: CellResult, clone: int, m: Measurement, agg: Dict[str, float],
         plus: bool, clones: Sequence[Measurement] = ()) -> Dict[str, Any]:
    """One entry of ``jobs``: clone number *clone*, or with *clones* (the
    members of a ``group_reporting`` entry, *m* them merged) the group,
    summed as fio's ``sum_thread_stats`` does: ``job_runtime`` is the
    members' runtimes added up (fio's ``total_run_time``), the CPU shares
    their CPU time over it, each direction's ``runtime`` the longest, the
    bandwidth and IOPS statistics the members' added up; ``elapsed`` is the
    wall time of the run, not summed (fio's seconds since it started,
    rounded up)."""
    cell = result.cell
    members = list(clones) if clones else [m]
    runtime_ms = sum(int(round(c.runtime * 1000)) for c in members)
    run_s = sum(c.runtime for c in members)
    usr, sys_ = sum(c.usr for c in members), sum(c.sys for c in members)
    both = summarize(m.read.lat, m.write.lat)
    deadline = cell.job.runtime

    def direction(name: str) -> Dict[str, Any]:
        d = getattr(m, name)
        if not clones:
            return _direction(d, m, agg[name], plus, deadline)
        return _direction(d, m, agg[name], plus, deadline,
                          [getattr(c, name) for c in clones], clones)

    job: Dict[str, Any] = {
        "jobname": cell.jobname,
        "groupid": cell.groupid,
        "error": m.error,
        "eta": 0,
        "elapsed": max(1, math.ceil(m.runtime)) if m.runtime else 0,
        "job options": dict(cell.job_options),
        "read": direction("read"),
        "write": direction("write"),
        "trim": _direction(Direction(), m, 0.0, plus, deadline),
        "sync": _sync(m.sync, plus),
        "job_runtime": runtime_ms,
        "usr_cpu": 100.0 * usr / run_s if run_s else 0.0,
        "sys_cpu": 100.0 * sys_ / run_s if run_s else 0.0,
        "ctx": m.ctx,
        "majf": m.majf,
        "minf": m.minf,
        "iodepth_level": _iodepth_level(m.iodepth),
        "iodepth_submit": batch_distribution(m.submit_hist),
        "iodepth_complete": batch_distribution(m.complete_hist),
    }
    job.update(latency_buckets(both))
    job.update({"latency_depth": m.iodepth, "latency_target": 0, "latency_percentile": 100.0,
                "latency_window": 0})
    job["uring"] = {
        "engine": cell.label,
        "cache": _cache(cell.job.direct),
        "clone": clone,
        "clones": len(result.clones),
        "filename": cell.path,
        "size": cell.size,
        "page_cache_residency": result.residency,
        "error_text": m.error_text,
    }
    return job


def _jobs(result: CellResult, plus: bool) -> List[Dict[str, Any]]:
    if not result.clones:
        return []
    agg = _group_agg(result.clones)
    if _group_reporting(result.cell):
        clones = result.clones if len(result.clones) > 1 else ()
        return [_job(result, 0, merge_clones(result.clones), agg, plus, clones)]
    return [_job(result, i, m, agg, plus) for i, m in enumerate(result.clones)]


def fio_json(results: Sequence[CellResult], global_options: Sequence[Tuple[str, str]],
             version: str, *, plus: bool = False,
             disk_util: Sequence[Dict[str, object]] = ()) -> Dict[str, Any]:
    """fio's JSON document (json+ with *plus*: ``clat_ns`` has its ``bins``)."""
    now = time.time()
    return {
        "fio version": f"uring-bench-{version} (fio-3.33 JSON)",
        "timestamp": int(now),
        "timestamp_ms": int(now * 1000),
        "time": time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(now)),
        "global options": dict(global_options),
        "jobs": [job for r in results for job in _jobs(r, plus)],
        "disk_util": [dict(d) for d in disk_util],
    }


# -- the table ----------------------------------------------------------------------


def fmt_rate(x: float) -> str:
    """A rate as the tables print it: 1.23M, 456.7k, 89."""
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def _fmt_us(ns: float) -> str:
    us = ns / 1000
    return f"{us:.1f}" if us < 1000 else f"{us:.0f}"


#: (group, engine slug, direction or None for both): the IOPS a ratio divides by.
BaseKey = Tuple[Any, str, Optional[str]]

_NUMERIC = (("IOPS", 7), ("MiB/s", 7), ("p50 us", 7), ("p99 us", 7), ("p99.9 us", 8),
            ("usr %", 5), ("sys %", 5))
_RATIOS = (("vs sync", 7), ("vs threads", 10))


def _row_dirs(cell: Cell, split: bool) -> List[Optional[str]]:
    """The rows of one cell: one for both directions, or one per direction."""
    if mixed(cell):
        return ["read", "write"]
    if split:
        return ["read" if cell.job.reads >= 100 else "write"]
    return [None]


def _rate(result: CellResult, direction: Optional[str]) -> Tuple[float, float]:
    """(IOPS, bytes/s) summed over the clones (they run at the same time)."""
    iops = bw = 0.0
    for m in result.clones:
        for d in [getattr(m, direction)] if direction else [m.read, m.write]:
            seconds = _seconds(d, m)
            if seconds > 0:
                iops += d.ios / seconds
                bw += _bytes(d, m) / seconds
    return iops, bw


def _base_entries(result: CellResult, split: bool) -> Dict[BaseKey, float]:
    cell = result.cell
    if cell.group is None or cell.slug not in ("sync", "threads") or result.error \
            or not result.clones:
        return {}
    return {(cell.group, cell.slug, d): _rate(result, d)[0] for d in _row_dirs(cell, split)}


class TableWriter:
    """The normal output a piece at a time: ``head`` (the run's header and
    the column heads), ``rows`` for each cell as it finishes, ``tail`` (the
    footnotes of failed cells, then the notes).  The column widths come
    from the planned cells, so a row never waits for a later one.  The
    ratio columns divide by the ``sync``/``threads`` rows seen so far (or
    by *base*, given every result at once)."""

    def __init__(self, cells: Sequence[Cell], base: Optional[Dict[BaseKey, float]] = None) -> None:
        self.show_job = len({c.job.name for c in cells}) > 1
        self.split = any(mixed(c) for c in cells)
        self.ratios = any(c.group is not None and c.slug in ("sync", "threads") for c in cells)
        self.base: Dict[BaseKey, float] = dict(base or {})
        self.failed: List[CellResult] = []
        self._previous: Optional[Tuple[str, bool]] = None
        heads: List[Tuple[str, int]] = []
        if self.show_job:
            heads.append(("job", max(len(c.job.name) for c in cells)))
        heads.append(("engine", max((len(c.label) for c in cells), default=0)))
        heads.append(("cache", 8))
        if self.split:
            heads.append(("rw", 5))
        self.text_cols = len(heads)
        heads.extend(_NUMERIC)
        if self.ratios:
            heads.extend(_RATIOS)
        self.heads = [h for h, _ in heads]
        self.widths = [max(len(h), w) for h, w in heads]

    def _fmt(self, cols: Sequence[str], message: str = "") -> str:
        out = []
        for i, v in enumerate(cols):
            out.append(v.ljust(self.widths[i]) if i < self.text_cols else v.rjust(self.widths[i]))
        if message:  # a "not run" message runs across the numeric columns
            out.append(message)
        return "  ".join(out).rstrip()

    def head(self, header: str) -> List[str]:
        return [header, "", self._fmt(self.heads)]

    def rows(self, result: CellResult) -> List[str]:
        """The row(s) of a finished cell (after a blank line where the job
        or the cache mode changes)."""
        cell = result.cell
        lines: List[str] = []
        key = (cell.job.name, cell.job.direct)
        if self._previous is not None and key != self._previous:
            lines.append("")
        self._previous = key
        for k, v in _base_entries(result, self.split).items():
            self.base.setdefault(k, v)
        lead = [cell.job.name] if self.show_job else []
        lead += [cell.label, _cache(cell.job.direct)]
        if result.error or not result.clones:
            self.failed.append(result)
            ran = any(m.ios for m in result.clones)
            cols = lead + ([""] if self.split else [])
            lines.append(self._fmt(cols, f"{'failed' if ran else 'not run'} [{len(self.failed)}]"))
            return lines
        ms = result.clones
        runtime = max((m.runtime for m in ms), default=0.0)
        for n, d in enumerate(_row_dirs(cell, self.split)):
            iops, bw = _rate(result, d)
            if d is None:
                lat = summarize(*[m.read.lat for m in ms], *[m.write.lat for m in ms])
            else:
                lat = summarize(*[getattr(m, d).lat for m in ms])
            cpu = ["", ""]
            if n == 0 and runtime:
                cpu = [f"{sum(m.usr for m in ms) / runtime * 100:.0f}",
                       f"{sum(m.sys for m in ms) / runtime * 100:.0f}"]
            elif n == 0:
                cpu = ["0", "0"]
            cols = lead + ([d or ""] if self.split else [])
            cols += [fmt_rate(iops), f"{bw / (1 << 20):.1f}", _fmt_us(lat.percentile(50)),
                     _fmt_us(lat.percentile(99)), _fmt_us(lat.percentile(99.9)), *cpu]
            if self.ratios:
                for ref in ("sync", "threads"):
                    other = self.base.get((cell.group, ref, d))
                    cols.append(f"{iops / other:.2f}x" if other and cell.group is not None
                                else "-")
            lines.append(self._fmt(cols))
        return lines

    def tail(self, notes: Iterable[str]) -> List[str]:
        lines: List[str] = []
        if self.failed:
            lines.append("")
        for i, r in enumerate(self.failed, 1):
            why = r.error_text or r.skipped or "did not run"
            lines.append(f"[{i}] {r.cell.label}, {_cache(r.cell.job.direct)}: {why}")
        notes = list(notes)
        if notes:
            lines.append("")
            lines.extend(notes)
        return lines


def table(results: Sequence[CellResult], header: str, notes: List[str]) -> str:
    """The normal output at once: a header, one aligned table, notes."""
    cells = [r.cell for r in results]
    split = any(mixed(c) for c in cells)
    base: Dict[BaseKey, float] = {}
    for r in results:
        base.update(_base_entries(r, split))
    writer = TableWriter(cells, base)
    lines = writer.head(header)
    for r in results:
        lines.extend(writer.rows(r))
    lines.extend(writer.tail(notes))
    return "\n".join(lines)

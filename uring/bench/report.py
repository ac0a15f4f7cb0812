"""What a run prints: one table, or fio's JSON.

The table has a row per cell: IOPS, bandwidth, completion-latency
percentiles, CPU (user and system, % of one core, every thread of the
process), and in the matrix each engine's rate as a multiple of the
synchronous loop's and of the ``threads`` engine's in the same cache mode.
Rates compare only within one run: machines like this one drift by tens
of percent between runs.

The JSON is fio's (``--output-format=json``, fio 3.33's keys) so that fio
tooling reads it: a top-level object with ``fio version``, ``timestamp``,
``time``, ``global options`` and ``jobs``; per job (and per clone, as fio
lists clones without ``group_reporting``) the ``read``/``write``/``trim``
sections with bytes, rates, ``slat_ns``/``clat_ns``/``lat_ns``, CPU,
context switches, faults, ``iodepth_level`` and the latency buckets.  fio's
per-interval bandwidth samples (``bw_min``, ``iops_mean``, ...),
``iodepth_submit``/``_complete`` and ``disk_util`` are not produced.  One
key fio does not have, ``uring``, says which engine and cache mode a job
ran, the page cache's state, and an error's explanation.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .plan import CellResult
from .stats import LatencySummary, latency_buckets, summarize
from .workload import Direction, Measurement

__all__ = ["fio_json", "table"]

_DEPTHS = (1, 2, 4, 8, 16, 32, 64)


def _cache(direct: bool) -> str:
    return "O_DIRECT" if direct else "buffered"


# -- fio JSON -----------------------------------------------------------------------


def _zero_stats() -> Dict[str, Any]:
    return {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0}


def _direction(d: Direction, m: Measurement) -> Dict[str, Any]:
    ios = d.ios
    io_bytes = ios * m.bs
    seconds = m.runtime if ios else 0.0
    summary = LatencySummary(d.lat)
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
        "clat_ns": summary.fio(with_percentiles=True),
        "lat_ns": summary.fio(with_percentiles=False),
    }


def _iodepth_level(depth: int) -> Dict[str, float]:
    """The queue is kept full, so every I/O is issued at the job's depth."""
    out: Dict[str, float] = {}
    for i, d in enumerate(_DEPTHS):
        key = ">=64" if d == 64 else str(d)
        top = _DEPTHS[i + 1] if i + 1 < len(_DEPTHS) else 1 << 30
        out[key] = 100.0 if d <= depth < top else 0.0
    return out


def _job(result: CellResult, clone: int, m: Measurement) -> Dict[str, Any]:
    cell = result.cell
    runtime_ms = int(round(m.runtime * 1000))
    both = summarize(m.read.lat, m.write.lat)
    job: Dict[str, Any] = {
        "jobname": cell.jobname,
        "groupid": cell.groupid,
        "error": m.error,
        "eta": 0,
        "elapsed": max(1, int(round(m.runtime))) if m.runtime else 0,
        "job options": dict(cell.job_options),
        "read": _direction(m.read, m),
        "write": _direction(m.write, m),
        "trim": _direction(Direction(), m),
        "sync": {"total_ios": 0, "lat_ns": _zero_stats()},
        "job_runtime": runtime_ms,
        "usr_cpu": 100.0 * m.usr / m.runtime if m.runtime else 0.0,
        "sys_cpu": 100.0 * m.sys / m.runtime if m.runtime else 0.0,
        "ctx": m.ctx,
        "majf": m.majf,
        "minf": m.minf,
        "iodepth_level": _iodepth_level(m.iodepth),
    }
    job.update(latency_buckets(both))
    job.update({"latency_depth": m.iodepth, "latency_target": 0, "latency_percentile": 100.0,
                "latency_window": 0})
    job["uring"] = {
        "engine": cell.label,
        "cache": _cache(cell.job.direct),
        "clone": clone,
        "filename": cell.path,
        "size": cell.size,
        "page_cache_residency": result.residency,
        "error_text": m.error_text,
    }
    return job


def fio_json(results: Sequence[CellResult], global_options: Sequence[Tuple[str, str]],
             version: str) -> Dict[str, Any]:
    now = time.time()
    return {
        "fio version": f"uring-bench-{version} (fio-3.33 JSON)",
        "timestamp": int(now),
        "timestamp_ms": int(now * 1000),
        "time": time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(now)),
        "global options": dict(global_options),
        "jobs": [_job(r, i, m) for r in results for i, m in enumerate(r.clones)],
    }


# -- the table ----------------------------------------------------------------------


def _fmt_rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def _fmt_us(ns: float) -> str:
    us = ns / 1000
    return f"{us:.1f}" if us < 1000 else f"{us:.0f}"


def _row(result: CellResult, base: Dict[Tuple[Any, str], float], show_job: bool,
         note: int) -> List[str]:
    cell = result.cell
    cols = [cell.job.name] if show_job else []
    cols += [cell.label, _cache(cell.job.direct)]
    if result.error:
        ran = any(m.ios for m in result.clones)
        return cols + [f"{'failed' if ran else 'not run'} [{note}]"]
    ms = result.clones
    runtime = max(m.runtime for m in ms)
    iops = result.iops
    bw = sum(m.ios * m.bs / m.runtime for m in ms if m.runtime)
    lat = summarize(*[m.read.lat for m in ms], *[m.write.lat for m in ms])
    usr = sum(m.usr for m in ms) / runtime * 100 if runtime else 0.0
    sys_ = sum(m.sys for m in ms) / runtime * 100 if runtime else 0.0
    cols += [_fmt_rate(iops), f"{bw / (1 << 20):.1f}", _fmt_us(lat.percentile(50)),
             _fmt_us(lat.percentile(99)), _fmt_us(lat.percentile(99.9)), f"{usr:.0f}",
             f"{sys_:.0f}"]
    if base:
        for ref in ("sync", "threads"):
            other = base.get((cell.group, ref))
            cols.append(f"{iops / other:.2f}x" if other and cell.group is not None else "-")
    return cols


def table(results: Sequence[CellResult], header: str, notes: List[str]) -> str:
    """The normal output: a header, one aligned table, notes."""
    show_job = len({r.cell.job.name for r in results}) > 1
    base: Dict[Tuple[Any, str], float] = {}
    for r in results:
        if r.cell.group is not None and r.cell.slug in ("sync", "threads") and not r.error:
            base[(r.cell.group, r.cell.slug)] = r.iops
    heads = (["job"] if show_job else []) + ["engine", "cache", "IOPS", "MiB/s", "p50 us",
                                             "p99 us", "p99.9 us", "usr %", "sys %"]
    if base:
        heads += ["vs sync", "vs threads"]
    failed = [r for r in results if r.error]
    note_of = {id(r): i for i, r in enumerate(failed, 1)}
    rows = [_row(r, base, show_job, note_of.get(id(r), 0)) for r in results]
    text_cols = 3 if show_job else 2
    widths = [max([len(heads[i])] + [len(row[i]) for row in rows if i < len(row)
                                     and not (len(row) == text_cols + 1 and i == text_cols)])
              for i in range(len(heads))]

    def fmt(row: List[str]) -> str:
        out = []
        for i, v in enumerate(row):
            if len(row) == text_cols + 1 and i == text_cols:
                out.append(v)  # a "not run" message runs across the numeric columns
            elif i < text_cols:
                out.append(v.ljust(widths[i]))
            else:
                out.append(v.rjust(widths[i]))
        return "  ".join(out).rstrip()

    lines = [header, "", fmt(heads)]
    previous: Optional[Any] = None
    for r, row in zip(results, rows):
        key = (r.cell.job.name, r.cell.job.direct)
        if previous is not None and key != previous:
            lines.append("")
        previous = key
        lines.append(fmt(row))
    if failed:
        lines.append("")
    for i, r in enumerate(failed, 1):
        lines.append(f"[{i}] {r.cell.label}, {_cache(r.cell.job.direct)}: {r.error_text}")
    if notes:
        lines.append("")
        lines.extend(notes)
    return "\n".join(lines)

"""fio's statistics: latency summaries, histogram bins, per-interval rates,
batch-size distributions and the disk's counters.

Every completion latency is kept (8 bytes per I/O in an ``array``), so the
percentiles are exact order statistics of what was measured, where fio
reports the upper edge of a histogram bin (within about 1.5%).  Percentile
*p* is the nearest-rank value: the smallest sample with at least *p*% of
the samples at or below it.  The buckets (``latency_ns``/``_us``/``_ms``)
are fio's: each key is the bucket's exclusive upper bound, the value the
percentage of I/Os that fell in it.

The rest follows fio 3.33's ``stat.c`` where its JSON reads it:

* ``clat_bins``: json+'s ``bins``, fio's log-linear latency histogram (64
  bins per power of two, each keyed by its midpoint in ns, only the bins
  that have I/Os);
* ``interval_rates``: fio's ``bw``/``iops`` samples, one per full 500 ms
  interval from the job's start that had any I/O (fio skips empty ones),
  bandwidth in KiB/s truncated to an integer as fio does, and
  ``sample_stats`` their min/max/mean/standard deviation;
* ``batch_distribution``: ``iodepth_submit``/``iodepth_complete``, the
  percentage of submit calls (of reaps) that carried 0, 1-4, 5-8, ... I/Os;
* ``disk_of``/``DiskSnapshot``/``disk_util``: ``disk_util`` from the deltas
  of ``/sys/block/<disk>/stat`` over the run.
"""

from __future__ import annotations

import math
import operator
import os
import stat
from bisect import bisect_left
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

__all__ = ["BW_INTERVAL_NS", "FIO_PERCENTILES", "DiskSnapshot", "LatencySummary",
           "batch_distribution", "clat_bins", "disk_of", "disk_util", "interval_rates",
           "latency_buckets", "plat_idx_to_val", "plat_val_to_idx", "SampleStats", "sample_stats",
           "summarize"]

#: fio's default ``percentile_list``.
FIO_PERCENTILES = (1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 95.0,
                   99.0, 99.5, 99.9, 99.95, 99.99)

_NS_EDGES = (2, 4, 10, 20, 50, 100, 250, 500, 750, 1000)
_MS_EDGES = (2, 4, 10, 20, 50, 100, 250, 500, 750, 1000, 2000)


class LatencySummary:
    """min/max/mean/stddev/N and the percentiles of a set of latencies (ns)."""

    __slots__ = ("n", "min", "max", "mean", "stddev", "sorted")

    def __init__(self, samples: Sequence[int]) -> None:
        data: List[int] = sorted(samples)
        self.sorted = data
        self.n = len(data)
        if not data:
            self.min = self.max = 0
            self.mean = self.stddev = 0.0
            return
        self.min, self.max = data[0], data[-1]
        total = sum(data)  # exact integers: no cancellation in the variance
        self.mean = total / self.n
        if self.n > 1:
            squares = sum(map(operator.mul, data, data))
            var = (squares * self.n - total * total) / (self.n * (self.n - 1))
            self.stddev = math.sqrt(max(var, 0.0))
        else:
            self.stddev = 0.0

    def percentile(self, p: float) -> int:
        if not self.sorted:
            return 0
        micro = int(round(p * 1_000_000))  # exact: 99.9 * n / 100 is not, in floating point
        rank = max(1, -(-micro * self.n // 100_000_000))
        return self.sorted[min(rank, self.n) - 1]

    def percentiles(self) -> Dict[str, int]:
        """fio's ``percentile`` dict: ``{"50.000000": ns, ...}``."""
        return {f"{p:.6f}": self.percentile(p) for p in FIO_PERCENTILES}

    def fio(self, with_percentiles: bool) -> Dict[str, object]:
        """fio's ``clat_ns``/``lat_ns`` object (``percentile`` only when
        there are samples, as fio omits it for an idle direction)."""
        out: Dict[str, object] = {"min": self.min, "max": self.max, "mean": self.mean,
                                  "stddev": self.stddev, "N": self.n}
        if with_percentiles and self.n:
            out["percentile"] = self.percentiles()
        return out


def summarize(*sample_sets: Sequence[int]) -> LatencySummary:
    """One summary over several sets of samples (directions, clones)."""
    if len(sample_sets) == 1:
        return LatencySummary(sample_sets[0])
    merged: List[int] = []
    for s in sample_sets:
        merged.extend(s)
    return LatencySummary(merged)


def latency_buckets(summary: LatencySummary) -> Dict[str, Dict[str, float]]:
    """fio's ``latency_ns``, ``latency_us`` and ``latency_ms``: percentages
    of I/Os per bucket; a bucket's key is its exclusive upper bound in
    that unit ([0,2), [2,4), [4,10), ...), ``>=2000`` the last in ms."""
    data, n = summary.sorted, summary.n

    def share(lo: int, hi: float) -> float:
        if not n:
            return 0.0
        count = bisect_left(data, hi) - bisect_left(data, lo)
        return 100.0 * count / n

    out: Dict[str, Dict[str, float]] = {"latency_ns": {}, "latency_us": {}, "latency_ms": {}}
    for unit, scale, edges in (("latency_ns", 1, _NS_EDGES), ("latency_us", 1000, _NS_EDGES),
                               ("latency_ms", 1000_000, _MS_EDGES)):
        lo = 0 if scale == 1 else scale  # below 1 µs belongs to latency_ns
        for edge in edges:
            hi = edge * scale
            out[unit][str(edge)] = share(lo, hi)
            lo = hi
        if unit == "latency_ms":
            out[unit][">=2000"] = share(lo, float("inf"))
    return out


# -- json+'s histogram ------------------------------------------------------------------

_PLAT_BITS = 6  # fio's FIO_IO_U_PLAT_BITS
_PLAT_VAL = 1 << _PLAT_BITS
_PLAT_NR = 29 * _PLAT_VAL  # FIO_IO_U_PLAT_GROUP_NR groups


def plat_val_to_idx(val: int) -> int:
    """fio's bin of a latency in ns (``stat.c: plat_val_to_idx``)."""
    msb = val.bit_length() - 1 if val > 0 else 0
    if msb <= _PLAT_BITS:  # small values are their own bin
        return max(val, 0)
    error_bits = msb - _PLAT_BITS
    base = (error_bits + 1) << _PLAT_BITS
    offset = (_PLAT_VAL - 1) & (val >> error_bits)
    return min(base + offset, _PLAT_NR - 1)


def plat_idx_to_val(idx: int) -> int:
    """The value fio prints for a bin: the midpoint of its range."""
    if idx < (_PLAT_VAL << 1):
        return idx
    error_bits = (idx >> _PLAT_BITS) - 1
    base = 1 << (error_bits + _PLAT_BITS)
    k = idx % _PLAT_VAL
    return base + ((2 * k + 1) << error_bits) // 2


def clat_bins(samples: Iterable[int]) -> Dict[str, int]:
    """json+'s ``bins``: ``{"<bin value in ns>": count}``, ascending, only
    the bins with I/Os; the counts add up to the number of samples."""
    counts: Dict[int, int] = {}
    for v in samples:
        i = plat_val_to_idx(v)
        counts[i] = counts.get(i, 0) + 1
    return {str(plat_idx_to_val(i)): counts[i] for i in sorted(counts)}


# -- per-interval rates -----------------------------------------------------------------

#: fio's default ``bw_avg_time``/``iops_avg_time``: 500 ms.
BW_INTERVAL_NS = 500_000_000


def interval_rates(ends: Iterable[int], bs: int, runtime_ns: int,
                   interval_ns: int = BW_INTERVAL_NS,
                   sizes: Optional[Sequence[int]] = None) -> Tuple[List[int], List[int]]:
    """(bandwidth samples in KiB/s, IOPS samples) of one direction, from
    each I/O's completion time (*ends*, ns since the job's start; *sizes*
    its bytes where they vary, else *bs*): one sample per full interval
    of the run that completed any I/O, truncated to integers as fio's
    ``__add_samples`` does."""
    full = int(runtime_ns // interval_ns) if interval_ns > 0 else 0
    if full <= 0:
        return [], []
    ios = [0] * full
    moved = [0] * full
    if sizes is None:
        for e in ends:
            k = e // interval_ns
            if 0 <= k < full:
                ios[k] += 1
        moved = [n * bs for n in ios]
    else:
        for e, size in zip(ends, sizes):
            k = e // interval_ns
            if 0 <= k < full:
                ios[k] += 1
                moved[k] += size
    spent_ms = interval_ns // 1_000_000 or 1
    bw = [b * 1000 // spent_ms // 1024 for b, n in zip(moved, ios) if n]
    iops = [n * 1000 // spent_ms for n in ios if n]
    return bw, iops


@dataclass(frozen=True)
class SampleStats:
    """fio's ``calc_lat`` over rate samples: min, max, mean, sample standard
    deviation (n - 1), and the number of samples."""

    min: int
    max: int
    mean: float
    dev: float
    n: int


def sample_stats(samples: Sequence[int]) -> SampleStats:
    n = len(samples)
    if not n:
        return SampleStats(0, 0, 0.0, 0.0, 0)
    mean = sum(samples) / n
    dev = math.sqrt(sum((x - mean) ** 2 for x in samples) / (n - 1)) if n > 1 else 0.0
    return SampleStats(min(samples), max(samples), mean, dev, n)


# -- batch sizes ------------------------------------------------------------------------

#: fio's ``iodepth_submit``/``iodepth_complete`` keys and each one's largest batch
#: ("0": calls that carried none; ">=64": more than 64).
_BATCH_KEYS: Tuple[Tuple[str, float], ...] = (
    ("0", 0), ("4", 4), ("8", 8), ("16", 16), ("32", 32), ("64", 64), (">=64", math.inf))


def batch_distribution(hist: Mapping[int, int]) -> Dict[str, float]:
    """Percentages of calls per batch-size bucket from raw counts keyed by
    batch size (``io_u_mark_submit``/``_complete`` and ``stat_calc_dist``:
    a bucket with any call shows at least 0.1)."""
    counts = [0] * len(_BATCH_KEYS)
    for size, count in hist.items():
        for i, (_, top) in enumerate(_BATCH_KEYS):
            if size <= top:
                counts[i] += count
                break
    total = sum(counts)
    out: Dict[str, float] = {}
    for (key, _), count in zip(_BATCH_KEYS, counts):
        share = 100.0 * count / total if total else 0.0
        out[key] = 0.1 if 0 < share < 0.1 else share
    return out


# -- the disk ---------------------------------------------------------------------------

_SYS_DEV_BLOCK = "/sys/dev/block"


def disk_of(path: str) -> Optional[str]:
    """The sysfs directory of the whole disk that holds *path* (the device
    itself for a block device), or None where /sys does not say (tmpfs,
    overlay and btrfs's anonymous devices, no /sys)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    dev = st.st_rdev if stat.S_ISBLK(st.st_mode) else st.st_dev
    link = os.path.join(_SYS_DEV_BLOCK, f"{os.major(dev)}:{os.minor(dev)}")
    if not os.path.exists(link):
        return None
    real = os.path.realpath(link)
    if os.path.exists(os.path.join(real, "partition")):  # a partition: its disk is the parent
        real = os.path.dirname(real)
    return real if os.path.isfile(os.path.join(real, "stat")) else None


@dataclass(frozen=True)
class DiskSnapshot:
    """The counters of one ``/sys/block/<disk>/stat`` (fio's ``disk_util_stat``)."""

    name: str
    ios: Tuple[int, int]
    merges: Tuple[int, int]
    ticks: Tuple[int, int]
    io_ticks: int
    time_in_queue: int

    @classmethod
    def read(cls, sysdir: str) -> Optional["DiskSnapshot"]:
        try:
            with open(os.path.join(sysdir, "stat")) as f:
                v = [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            return None
        if len(v) < 11:
            return None
        return cls(os.path.basename(sysdir), (v[0], v[4]), (v[1], v[5]), (v[3], v[7]),
                   v[9], v[10])


def disk_util(before: DiskSnapshot, after: DiskSnapshot, elapsed_ms: float) -> Dict[str, object]:
    """fio's ``disk_util`` entry: the counters' deltas, ``util`` the share
    of the run the disk was busy (io_ticks over the elapsed time, %)."""
    io_ticks = after.io_ticks - before.io_ticks
    util = min(100.0, 100.0 * io_ticks / elapsed_ms) if elapsed_ms > 0 else 0.0
    return {
        "name": after.name,
        "read_ios": after.ios[0] - before.ios[0],
        "write_ios": after.ios[1] - before.ios[1],
        "read_merges": after.merges[0] - before.merges[0],
        "write_merges": after.merges[1] - before.merges[1],
        "read_ticks": after.ticks[0] - before.ticks[0],
        "write_ticks": after.ticks[1] - before.ticks[1],
        "in_queue": after.time_in_queue - before.time_in_queue,
        "util": util,
    }

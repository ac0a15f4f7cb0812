"""Latency summaries in fio's terms.

Every completion latency is kept (8 bytes per I/O in an ``array``), so the
percentiles are exact order statistics of what was measured, where fio
reports the upper edge of a histogram bin (within about 1.5%).  Percentile
*p* is the nearest-rank value: the smallest sample with at least *p*% of
the samples at or below it.  The buckets (``latency_ns``/``_us``/``_ms``)
are fio's: each key is the bucket's exclusive upper bound, the value the
percentage of I/Os that fell in it.
"""

from __future__ import annotations

import math
import operator
from bisect import bisect_left
from typing import Dict, List, Sequence

__all__ = ["FIO_PERCENTILES", "LatencySummary", "latency_buckets", "summarize"]

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

"""Page-cache helpers for the benchmarks in ``tools/``: the package's own
(``uring.bench.files``), plus the refusal a benchmark wants when the cache
cannot hold its file (the figures would measure the disk)."""

from __future__ import annotations

import os

from uring.bench import files
from uring.bench.files import make_file, residency, warm

__all__ = ["ensure_hot", "make_file", "residency", "warm"]


def ensure_hot(path: str, min_fraction: float = 0.99) -> float:
    """Warm *path* whole and return its residency; raise if the page cache
    cannot hold it."""
    frac = files.ensure_hot(path, os.path.getsize(path))
    if frac < min_fraction:
        raise RuntimeError(
            f"only {frac:.0%} of {path} stays in the page cache: the buffered "
            "figures would measure the disk; use a smaller --size"
        )
    return frac

"""Which I/O comes next: the offsets, sizes and directions of a job.

A job's I/Os are laid out before it runs, as a *schedule*: item *k* is
I/O number *k* of the run (the schedule repeats when the run is longer,
``loops`` or ``time_based``).  What fio does, and what this follows:

- **random** (``randread``, ``randwrite``, ``randrw``): fio keeps a random
  map, so one pass touches every block of the region once, in random
  order; with ``norandommap`` each offset is drawn afresh (blocks repeat,
  others are missed).  Here: a shuffled list of the region's blocks (above
  2^18 blocks, 2^18 independent draws, as with ``norandommap``).
- **sequential** (``read``, ``write``, ``rw``): from the region's start to
  its end; in ``rw`` reads and writes each keep their own position, as
  fio's ``last_pos`` per direction does.
- **mixed** (``rw``, ``randrw``): each I/O a read with probability
  ``rwmixread`` %.
- **bsrange**: each I/O a random size in the direction's range, a
  multiple of the smallest size (fio's ``get_next_buflen`` without
  ``bs_unaligned``), cut where it would run past the region's end; with
  the random map an I/O is also cut where it would run into a block
  already done, so a pass still covers the region exactly once (fio trims
  it the same way).
- **offsets** are absolute (the region's ``offset`` added), multiples of
  the smallest block size from there.

How long a run is, without ``time_based``: ``io_size`` bytes (default the
region's size) times ``loops``, after ``ramp_time``.
"""

from __future__ import annotations

import random
from array import array
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from .options import JobSpec

__all__ = ["NEVER", "Schedule", "build", "dry_run_writes"]

NEVER = 1 << 62
_MAX_ITEMS = 1 << 18  # random draws kept when the region has more blocks than this
_MAX_SEQ = 1 << 20  # items of a materialised sequential mixed / variable schedule


@dataclass
class Schedule:
    """Item *k* (k counted from 0, taken modulo ``period``): offset
    ``offs[k]``, length ``lens[k]`` (or the job's ``bs`` when ``lens`` is
    None) and direction ``ops[k]`` (0 read, 1 write; ``op`` for all when
    ``ops`` is None).  ``limit``: items in a run that is not time based."""

    offs: Sequence[int]
    lens: Optional[Sequence[int]]
    ops: Optional[bytes]
    op: int
    limit: int
    bs: int

    @property
    def period(self) -> int:
        return len(self.offs)

    @property
    def writes(self) -> bool:
        return bool(self.op) if self.ops is None else 1 in self.ops


def _sizes(job: JobSpec) -> Tuple[Tuple[int, int, int], Tuple[int, int, int]]:
    """Per direction (lo, hi, step): sizes are lo + i * step up to hi,
    step the job's smallest block size."""
    unit = job.min_bs
    out = []
    for write in (False, True):
        lo, hi = job.bs_range(write)
        lo = max(unit, lo // unit * unit) if lo % unit else lo
        hi = max(lo, hi // unit * unit)
        out.append((lo, hi, unit))
    return out[0], out[1]


def _draw_len(rnd: random.Random, rng: Tuple[int, int, int]) -> int:
    lo, hi, step = rng
    if lo == hi:
        return lo
    return lo + rnd.randrange((hi - lo) // step + 1) * step


def _op_draw(job: JobSpec) -> Tuple[Optional[int], int]:
    """(None, reads %) for a mixed job, else (its one op, reads %)."""
    reads = job.reads
    if reads >= 100:
        return 0, 100
    if reads <= 0:
        return 1, 0
    return None, reads


def build(job: JobSpec, region: int, base: int, seed: int) -> Schedule:
    """The schedule of *job* on *region* bytes starting at file offset
    *base*, its random choices from *seed*."""
    rnd = random.Random(seed)
    unit = job.min_bs
    blocks = region // unit
    const_op, reads = _op_draw(job)
    opsrnd = random.Random(seed ^ 0x5EED)

    def next_op() -> int:
        return 0 if opsrnd.random() * 100 < reads else 1

    target = job.io_size if job.io_size is not None else blocks * unit
    target *= job.loops
    if not job.variable_bs:
        bs = unit
        offs: Sequence[int]
        if job.random:
            if blocks <= _MAX_ITEMS and not job.norandommap:
                order = list(range(blocks))
                rnd.shuffle(order)
                offs = [base + b * bs for b in order]
            else:
                offs = [base + rnd.randrange(blocks) * bs for _ in range(min(blocks, _MAX_ITEMS))]
            ops = None if const_op is not None else bytes(next_op() for _ in range(len(offs)))
        elif const_op is not None:
            offs, ops = range(base, base + blocks * bs, bs), None
        else:  # rw: each direction its own sequential position
            count = min(max(target // bs, 1), _MAX_SEQ)
            pos = [0, 0]
            arr = array("q")
            opb = bytearray()
            for _ in range(count):
                w = next_op()
                arr.append(base + pos[w] * bs)
                pos[w] = (pos[w] + 1) % blocks
                opb.append(w)
            offs, ops = arr, bytes(opb)
        limit = NEVER if job.time_based else max(target // bs, 0)
        return Schedule(offs, None, ops, const_op or 0, limit, bs)
    # -- sizes that vary ------------------------------------------------------------------
    ranges = _sizes(job)
    end = blocks * unit
    items_off = array("q")
    items_len = array("q")
    opb = bytearray()
    if job.random and not job.norandommap:
        if blocks > _MAX_ITEMS * 4:
            raise ValueError(f"bsrange with a random map over {blocks} blocks of {unit} bytes: "
                             f"at most {_MAX_ITEMS * 4} are mapped here (use norandommap or a "
                             "smaller size)")
        order = list(range(blocks))
        rnd.shuffle(order)
        done = bytearray(blocks)
        for b in order:
            if done[b]:
                continue
            w = const_op if const_op is not None else next_op()
            length = _draw_len(rnd, ranges[w]) // unit
            run = 1
            while run < length and b + run < blocks and not done[b + run]:
                run += 1
            done[b:b + run] = b"\x01" * run
            items_off.append(base + b * unit)
            items_len.append(run * unit)
            opb.append(w)
    elif job.random:  # norandommap: independent draws, region bytes' worth
        total = 0
        while total < end and len(items_off) < _MAX_ITEMS:
            w = const_op if const_op is not None else next_op()
            length = min(_draw_len(rnd, ranges[w]), end)
            items_off.append(base + rnd.randrange((end - length) // unit + 1) * unit)
            items_len.append(length)
            opb.append(w)
            total += length
    else:  # sequential, each direction its own position; stop before one wraps
        pos = [0, 0]
        total = 0
        while total < max(target, end) and len(items_off) < _MAX_SEQ:
            w = const_op if const_op is not None else next_op()
            if pos[w] >= end:
                if const_op is not None:
                    break  # one whole pass: the schedule repeats it
                if items_off:
                    break
            length = min(_draw_len(rnd, ranges[w]), end - pos[w])
            items_off.append(base + pos[w])
            items_len.append(length)
            opb.append(w)
            pos[w] += length
            total += length
    limit = NEVER if job.time_based else _items_for(items_len, target)
    ops_out = None if const_op is not None else bytes(opb)
    return Schedule(items_off, items_len, ops_out, const_op or 0, limit, unit)


def _items_for(lens: Sequence[int], target: int) -> int:
    """How many items, the schedule repeating, move at least *target*
    bytes (fio stops when what is left is less than one block)."""
    if target <= 0 or not lens:
        return 0
    cycle = sum(lens)
    whole, rest = divmod(target, cycle)
    count = whole * len(lens)
    moved = 0
    for length in lens:
        if moved >= rest:
            break
        moved += length
        count += 1
    return count


def dry_run_writes(sched: Schedule, limit: int) -> Dict[int, int]:
    """The blocks the first *limit* items of *sched* write: offset ->
    length (``verify_only``: what an earlier run of the job wrote)."""
    out: Dict[int, int] = {}
    period = sched.period
    if not period:
        return out
    ops, lens, bs = sched.ops, sched.lens, sched.bs
    for k in range(min(limit, period)):
        if (sched.op if ops is None else ops[k]):
            out[sched.offs[k]] = bs if lens is None else lens[k]
    return out


def extents(written: Dict[int, int]) -> List[Tuple[int, int]]:
    """The written blocks in file order."""
    return sorted(written.items())

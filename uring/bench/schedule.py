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
  ``rwmixread`` %, drawn afresh for every I/O, as fio draws each io_u's
  direction when it queues it.  The schedule holds the draws of the whole
  run, or of at least ``_MIX_ITEMS`` I/Os where the run is longer or
  time based (``rw``: one stream, each direction wrapping at the region's
  end on its own, as fio's time_based ``rw`` does; ``randrw``: the random
  order again for each pass, every I/O with its own draw; ``bsrange``:
  passes laid out until there are that many), so the mix of a run is that
  of that many independent draws, never of one short pass repeated.
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
_MIX_ITEMS = 1 << 16  # a mixed job's schedule: at least this many directions drawn


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


def _mix_target(limit: int) -> int:
    """How many I/Os a mixed job's schedule draws directions for: the
    whole run when it is short, else ``_MIX_ITEMS`` (the schedule then
    repeats, with the mix of that many draws)."""
    return max(1, min(limit, _MIX_ITEMS))


def build(job: JobSpec, region: int, base: int, seed: int) -> Schedule:
    """The schedule of *job* on *region* bytes starting at file offset
    *base*, its random choices from *seed*."""
    rnd = random.Random(seed)
    unit = job.min_bs
    blocks = region // unit
    const_op, reads = _op_draw(job)
    opsrnd = random.Random(seed ^ 0x5EED)
    draw = opsrnd.random

    def next_op() -> int:
        return 0 if draw() * 100 < reads else 1

    def draw_ops(count: int) -> bytes:
        return bytes([0 if draw() * 100 < reads else 1 for _ in range(count)])

    per_loop = job.io_size if job.io_size is not None else blocks * unit
    target = per_loop * job.loops
    if not job.variable_bs:
        bs = unit
        limit = NEVER if job.time_based else max(target // bs, 0)
        offs: Sequence[int]
        ops: Optional[bytes] = None
        if job.random:
            if blocks <= _MAX_ITEMS and not job.norandommap:
                order = list(range(blocks))
                rnd.shuffle(order)
                offs = [base + b * bs for b in order]
            else:
                offs = [base + rnd.randrange(blocks) * bs for _ in range(min(blocks, _MAX_ITEMS))]
            if const_op is None:  # the same order again each pass, each I/O its own direction
                passes = -(-_mix_target(limit) // len(offs)) if offs else 1
                if passes > 1:
                    offs = array("q", offs) * passes
                ops = draw_ops(len(offs))
        elif const_op is not None:
            offs = range(base, base + blocks * bs, bs)
        elif blocks:  # rw: each direction its own sequential position, wrapping on its own
            count = min(max(target // bs, 1), _MAX_SEQ)
            if job.time_based:  # the run's length is not known: enough draws for any
                count = min(max(count, _MIX_ITEMS), _MAX_SEQ)
            ops = draw_ops(count)
            pos = [0, 0]
            arr = array("q")
            append = arr.append
            for w in ops:
                append(base + pos[w] * bs)
                pos[w] = (pos[w] + 1) % blocks
            offs = arr
        else:
            offs = ()
        return Schedule(offs, None, ops, const_op or 0, limit, bs)
    # -- sizes that vary ------------------------------------------------------------------
    ranges = _sizes(job)
    end = blocks * unit
    items_off = array("q")
    items_len = array("q")
    opb = bytearray()
    mixed = const_op is None
    # a mixed job's schedule: passes until it holds enough draws (about as many
    # I/Os as _mix_target of a run of items of the mean size)
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    want = 0
    if mixed:
        mean = max(unit, (lo + hi) // 2)
        want = _mix_target(NEVER if job.time_based else max(target // mean, 1))
    if job.random and not job.norandommap:
        if blocks > _MAX_ITEMS * 4:
            raise ValueError(f"bsrange with a random map over {blocks} blocks of {unit} bytes: "
                             f"at most {_MAX_ITEMS * 4} are mapped here (use norandommap or a "
                             "smaller size)")
        order = list(range(blocks))
        rnd.shuffle(order)
        while True:  # one pass: every block once, in the same order each pass
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
            if len(items_off) >= want or len(items_off) >= _MAX_SEQ or not items_off:
                break
    elif job.random:  # norandommap: independent draws, region bytes' worth (or enough draws)
        total = 0
        while (total < end or len(items_off) < want) and len(items_off) < _MAX_ITEMS:
            w = const_op if const_op is not None else next_op()
            length = min(_draw_len(rnd, ranges[w]), end)
            items_off.append(base + rnd.randrange((end - length) // unit + 1) * unit)
            items_len.append(length)
            opb.append(w)
            total += length
    else:  # sequential, each direction its own position; a pass stops before one wraps
        while True:
            pos = [0, 0]
            total = 0
            first = len(items_off)
            while total < max(target, end) and len(items_off) < _MAX_SEQ:
                w = const_op if const_op is not None else next_op()
                if pos[w] >= end:
                    if const_op is not None:
                        break  # one whole pass: the schedule repeats it
                    if len(items_off) > first:
                        break
                length = min(_draw_len(rnd, ranges[w]), end - pos[w])
                items_off.append(base + pos[w])
                items_len.append(length)
                opb.append(w)
                pos[w] += length
                total += length
            if len(items_off) >= want or len(items_off) >= _MAX_SEQ or len(items_off) == first:
                break
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

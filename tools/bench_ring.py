#!/usr/bin/env python3
"""Side-by-side speed of the ring itself: this package, liburing from C, the
compiled ``liburing`` package from PyPI, and plain ``os.pread``.

    python3 tools/bench_ring.py                       # everything available
    python3 tools/bench_ring.py --only nop --rounds 5
    python3 tools/bench_ring.py --liburing-python /path/to/venv/bin/python

Cells (each a fresh subprocess, so one cell's heap or page faults never
bias the next), run in interleaved rounds because these machines drift up
to 40% between runs; ratios are computed within a round, then the median
over rounds is printed:

* ``nop-*-b32`` / ``nop-*-b1``: NOP submit + reap, batches of 32 and of 1
  (``nop-nops-b32``: the batch filled by one ``prep_nops`` call).
* ``rr-*``: 4 KiB random reads, queue depth 32, refilled as completions
  arrive, from a hot file (read whole and checked with ``mincore`` just
  before every cell: idle pages are evicted here after about a minute).
* ``blk-*``: the same through the block layer's public API on an io_uring
  image (``blk-arena``: ``Image.arena``; ``blk-batch``: ``resubmit`` +
  ``reap``; ``blk-cb``: ``submit_read`` with callbacks), beside
  ``fio-io_uring`` (fio's io_uring engine, ``--invalidate=0``) and the
  yardstick: the per-layer breakdown of a block read.

The C programs are built from ``tools/c`` into ``tools/c/build`` when a C
compiler and ``liburing.h`` are there (``apt-get install liburing-dev``); the
PyPI cells run under ``--liburing-python`` (default: this interpreter, if it
can import ``liburing``).  Missing yardsticks are reported, not faked.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]  # run from a checkout: the package and tools/pagecache

from benchlib import BS, N_OFFSETS, common_arguments, random_offsets, run_cell_process, scratch_file  # noqa: E402

QD = 32


# ---------------------------------------------------------------------------
# cells: each runs in its own process and prints {"rate": ops per second}


def cell_nop_uring(batch: int, seconds: float, vectored: bool = False) -> float:
    """NOPs through ``prep_nop`` one by one, or (*vectored*) the whole batch
    through one ``prep_nops`` call."""
    import uring

    with uring.Ring(64) as ring:
        wait = ring.wait
        uds = list(range(batch))
        prep = ring.prep_nop

        def one_by_one(uds: Sequence[int]) -> int:
            for i in uds:
                prep(i)
            return len(uds)

        prep_batch: Callable[[Sequence[int]], int] = ring.prep_nops if vectored else one_by_one

        n = 0
        t0 = time.perf_counter()
        end = t0 + seconds
        while True:
            for _ in range(64 // batch or 1):
                prep_batch(uds)
                got = wait(batch, raw=True)
                for c in got:
                    if c[1] != 0:
                        raise SystemExit(f"bad completion {c}")
                n += len(got)
            if time.perf_counter() >= end:
                break
        return n / (time.perf_counter() - t0)


def cell_nop_liburing(batch: int, seconds: float) -> float:
    import liburing as L  # type: ignore[import-not-found]  # the compiled PyPI package

    ring = L.io_uring()
    cqe = L.io_uring_cqe()
    L.io_uring_queue_init(64, ring, 0)
    get_sqe, prep_nop, set_data = L.io_uring_get_sqe, L.io_uring_prep_nop, L.io_uring_sqe_set_data64
    submit_and_wait, wait_cqe = L.io_uring_submit_and_wait, L.io_uring_wait_cqe
    cq_ready, cq_advance = L.io_uring_cq_ready, L.io_uring_cq_advance
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    try:
        while True:
            for _ in range(64 // batch or 1):
                for i in range(batch):
                    sqe = get_sqe(ring)
                    prep_nop(sqe)
                    set_data(sqe, i)
                submit_and_wait(ring, batch)
                wait_cqe(ring, cqe)
                ready = cq_ready(ring)
                for i in range(ready):
                    c = cqe[i]
                    if c.res != 0:
                        raise SystemExit(f"bad completion {c.user_data} {c.res}")
                cq_advance(ring, ready)
                n += ready
            if time.perf_counter() >= end:
                break
        return n / (time.perf_counter() - t0)
    finally:
        L.io_uring_queue_exit(ring)


def cell_rr_pread(path: str, seconds: float) -> float:
    """The honest baseline for page-cache hits: one synchronous call per read."""
    offs = random_offsets(os.path.getsize(path))
    fd = os.open(path, os.O_RDONLY)
    pread = os.pread
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    try:
        while True:
            for i in range(n, n + 1024):
                if len(pread(fd, BS, offs[i & (N_OFFSETS - 1)])) != BS:
                    raise SystemExit("short read")
            n += 1024
            if time.perf_counter() >= end:
                break
    finally:
        os.close(fd)
    return n / (time.perf_counter() - t0)


def cell_rr_uring(path: str, seconds: float, fixed: bool, sqpoll: bool) -> float:
    import uring
    from uring import abi

    offs = random_offsets(os.path.getsize(path))
    mask = N_OFFSETS - 1
    fd = os.open(path, os.O_RDONLY)
    flags = abi.IORING_SETUP_SQPOLL if sqpoll else 0
    try:
        with uring.Ring(QD * 2, flags=flags, sq_thread_idle=100) as ring:
            arena = bytearray(QD * BS)
            views = [memoryview(arena)[i * BS:(i + 1) * BS] for i in range(QD)]
            bufs = [uring.PinnedBuffer(v, writable=True) for v in views]
            target = fd
            if fixed:
                ring.register_buffers(views)
                ring.register_files([fd])
                target = 0

            prep_read, prep_fixed, wait = ring.prep_read, ring.prep_read_fixed, ring.wait
            k = 0
            for i in range(QD):  # fill the queue, then refill one per completion
                if fixed:
                    prep_fixed(target, i, offs[k], i, length=BS, fixed=True)
                else:
                    prep_read(target, bufs[i], offs[k], i)
                k += 1
            n = 0
            t0 = time.perf_counter()
            end = t0 + seconds
            while True:
                got = wait(1, raw=True)
                for c in got:
                    i = c[0]
                    if c[1] != BS:
                        raise SystemExit(f"bad completion {c}")
                    if fixed:
                        prep_fixed(target, i, offs[k & mask], i, length=BS, fixed=True)
                    else:
                        prep_read(target, bufs[i], offs[k & mask], i)
                    k += 1
                n += len(got)
                if n & 0x3FF < len(got) and time.perf_counter() >= end:
                    break
            rate = n / (time.perf_counter() - t0)
            ring.wait(QD)  # reap what is still in flight before the buffers go
            return rate
    finally:
        os.close(fd)


def cell_rr_reads(path: str, seconds: float) -> float:
    """QD32 refill through ``prep_reads``: every batch of freed slots goes
    back in one call (one record per request), buffers pinned once."""
    import uring

    offs = random_offsets(os.path.getsize(path))
    mask = N_OFFSETS - 1
    fd = os.open(path, os.O_RDONLY)
    try:
        with uring.Ring(QD * 2) as ring:
            arena = bytearray(QD * BS)
            bufs = [uring.PinnedBuffer(memoryview(arena)[i * BS:(i + 1) * BS], writable=True)
                    for i in range(QD)]
            prep_reads, wait = ring.prep_reads, ring.wait
            prep_reads(fd, bufs, offs[:QD], list(range(QD)))
            k = QD
            n = 0
            t0 = time.perf_counter()
            end = t0 + seconds
            while True:
                got = wait(1, raw=True)
                free = []
                for c in got:
                    if c[1] != BS:
                        raise SystemExit(f"bad completion {c}")
                    free.append(c[0])
                m = len(free)
                prep_reads(fd, [bufs[i] for i in free],
                           [offs[(k + j) & mask] for j in range(m)], free)
                k += m
                n += m
                if n & 0x3FF < m and time.perf_counter() >= end:
                    break
            rate = n / (time.perf_counter() - t0)
            ring.wait(QD)
            return rate
    finally:
        os.close(fd)


def arena_refill(submit: Callable[[Any, Any], Any], reap: Callable[[], Any],
                 offs: Sequence[int], end: float) -> int:
    """The refill loop of an arena (``ArenaQueue`` or ``Image.arena``):
    QD slots submitted, then each reap's slots straight back with new
    offsets until *end*; how many reads completed."""
    submit(list(range(QD)), offs[:QD])
    k = QD
    n = 0
    while True:
        slots, res = reap()
        m = len(slots)
        if res.count(BS) != m:
            raise SystemExit(f"bad completions {res.tolist()}")
        if k + m > N_OFFSETS:
            k = 0
        submit(slots, offs[k:k + m])
        k += m
        n += m
        if n & 0x3FF < m and time.perf_counter() >= end:
            return n


def cell_rr_arena(path: str, seconds: float) -> float:
    """QD32 refill through ``ArenaQueue``: SQEs formatted once, results
    reaped as arrays; each reap's slots go straight back with new offsets."""
    import uring
    from uring.arena import ArenaQueue

    offs = random_offsets(os.path.getsize(path))
    fd = os.open(path, os.O_RDONLY)
    try:
        with uring.Ring(QD * 2) as ring:
            q = ArenaQueue(ring, fd, QD, BS)
            t0 = time.perf_counter()
            rate = arena_refill(q.submit, lambda: q.reap(1), offs, t0 + seconds) \
                / (time.perf_counter() - t0)
            q.reap(q.in_flight)
            return rate
    finally:
        os.close(fd)


def cell_rr_user(path: str, seconds: float) -> float:
    """QD32 refill the way a first program is written: a new ``bytearray``
    per read, ``completions()`` and ``result()``."""
    import uring

    offs = random_offsets(os.path.getsize(path))
    mask = N_OFFSETS - 1
    fd = os.open(path, os.O_RDONLY)
    try:
        with uring.Ring(QD * 2) as ring:
            for k in range(QD):
                ring.prep_read(fd, bytearray(BS), offs[k])
            k = QD
            n = 0
            t0 = time.perf_counter()
            end = t0 + seconds
            while True:
                done = ring.completions(1)
                for c in done:
                    if c.result() != BS:
                        raise SystemExit(f"short read {c}")
                    ring.prep_read(fd, bytearray(BS), offs[k & mask])
                    k += 1
                n += len(done)
                if n & 0x3FF < len(done) and time.perf_counter() >= end:
                    break
            rate = n / (time.perf_counter() - t0)
            ring.wait(QD)
            return rate
    finally:
        os.close(fd)


def cell_blk(path: str, seconds: float, api: str) -> float:
    """QD32 refill through the block layer's public API on an io_uring
    image: *api* ``arena`` (``Image.arena``: slots, results as arrays),
    ``batch`` (``Image.resubmit`` + ``Image.reap``: one request object per
    slot, reused) or ``cb`` (``Image.submit_read`` with a callback that
    submits the next read, polled with the image plugged)."""
    import mmap

    from uring import block

    offs = random_offsets(os.path.getsize(path))
    mask = N_OFFSETS - 1
    img = block.open_image(path, aio="io_uring", queue_depth=QD, read_only=True)
    n = 0
    try:
        t0 = time.perf_counter()
        end = t0 + seconds
        if api == "arena":
            ar = img.arena(QD, BS)
            n = arena_refill(ar.submit, lambda: ar.reap(True), offs, end)
        elif api == "batch":
            arena = mmap.mmap(-1, QD * BS)
            views = [memoryview(arena)[i * BS:(i + 1) * BS] for i in range(QD)]
            img.submit_reads(views, offs[:QD])
            k = QD
            while True:
                done = img.reap(True)
                m = len(done)
                if k + m > N_OFFSETS:
                    k = 0
                img.resubmit(done, offs[k:k + m])
                k += m
                n += m
                if n & 0x3FF < m and time.perf_counter() >= end:
                    break
        else:
            arena = mmap.mmap(-1, QD * BS)
            views = [memoryview(arena)[i * BS:(i + 1) * BS] for i in range(QD)]
            state = {"k": QD, "n": 0, "stop": False}

            def make(i: int) -> Callable[[block.BlockRequest], None]:
                def done(req: block.BlockRequest) -> None:
                    if req.error is not None:
                        raise SystemExit(str(req.error))
                    state["n"] += 1
                    if not state["stop"]:
                        img.submit_read(views[i], offs[state["k"] & mask], callbacks[i])
                        state["k"] += 1
                return done

            callbacks = [make(i) for i in range(QD)]
            with img.plugged():
                for i, v in enumerate(views):
                    img.submit_read(v, offs[i], callbacks[i])
            while True:
                with img.plugged():
                    img.step(True)
                if state["n"] & 0x3FF < QD and time.perf_counter() >= end:
                    break
            n = state["n"]
            state["stop"] = True
        rate = n / (time.perf_counter() - t0)
    finally:
        img.close()
    return rate


def run_cell(name: str, args: argparse.Namespace) -> Dict[str, float]:
    kind, _, rest = name.partition("-")
    out: Dict[str, float] = {}
    if kind in ("rr", "blk"):
        import pagecache

        out["residency"] = pagecache.ensure_hot(args.file)
    if name.startswith("nop-nops-b"):
        out["rate"] = cell_nop_uring(int(name.rsplit("b", 1)[1]), args.seconds, vectored=True)
    elif name.startswith("nop-uring-b"):
        out["rate"] = cell_nop_uring(int(name.rsplit("b", 1)[1]), args.seconds)
    elif name.startswith("nop-liburing-b"):
        out["rate"] = cell_nop_liburing(int(name.rsplit("b", 1)[1]), args.seconds)
    elif name == "rr-pread":
        out["rate"] = cell_rr_pread(args.file, args.seconds)
    elif name == "rr-reads":
        out["rate"] = cell_rr_reads(args.file, args.seconds)
    elif name == "rr-user":
        out["rate"] = cell_rr_user(args.file, args.seconds)
    elif name == "rr-arena":
        out["rate"] = cell_rr_arena(args.file, args.seconds)
    elif name.startswith("blk-"):
        out["rate"] = cell_blk(args.file, args.seconds, rest)
    elif name.startswith("rr-uring"):
        out["rate"] = cell_rr_uring(args.file, args.seconds, "fixed" in name, "sqpoll" in name)
    else:
        raise SystemExit(f"unknown cell {name}")
    return out


# ---------------------------------------------------------------------------
# the driver


def build_c() -> Optional[str]:
    """Compile the liburing yardsticks; the build dir, or None with a reason printed."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or not os.path.exists("/usr/include/liburing.h"):
        print("# C yardsticks skipped: need a C compiler and liburing.h "
              "(apt-get install liburing-dev)", file=sys.stderr)
        return None
    src, build = os.path.join(HERE, "c"), os.path.join(HERE, "c", "build")
    os.makedirs(build, exist_ok=True)
    for prog in ("nop_bench", "randread_bench"):
        c_file, exe = os.path.join(src, prog + ".c"), os.path.join(build, prog)
        if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(c_file):
            subprocess.run([cc, "-O2", "-Wall", "-o", exe, c_file, "-luring"], check=True)
    return build


def liburing_python(requested: Optional[str]) -> Optional[str]:
    candidates = [requested] if requested else [sys.executable]
    for exe in candidates:
        probe = subprocess.run([exe, "-c", "import liburing"], capture_output=True)
        if probe.returncode == 0:
            return exe
    print("# PyPI liburing cells skipped: no interpreter here imports `liburing` "
          "(pass --liburing-python)", file=sys.stderr)
    return None


def c_cell(build: str, name: str, args: argparse.Namespace) -> List[str]:
    if name.startswith("nop-c-b"):
        return [os.path.join(build, "nop_bench"), name.rsplit("b", 1)[1], str(args.seconds)]
    extra = [w for w in ("fixed", "sqpoll") if w in name]
    return [os.path.join(build, "randread_bench"), args.file, str(args.seconds), str(QD), *extra]


#: The bare pure-CPython ring loops of the shared yardstick, run as they are
#: (never imported): cell -> its arguments before SECONDS (and FILE).
YARDSTICK_CELLS = {
    "yard-nop-prefmt-b32": ["nop", "prefmt", "32"],
    "yard-nop-pack-b1": ["nop", "pack", "1"],
    "yard-rr-refill": ["read", "refill", str(QD)],
}


def find_yardstick(given: Optional[str]) -> Optional[str]:
    """``proto_ring.py``: the path given, or ``../shared/yardsticks`` beside
    this checkout."""
    path = given or os.path.join(os.path.dirname(ROOT), "shared", "yardsticks", "proto_ring.py")
    if os.path.exists(path):
        return path
    print(f"# yardstick rows skipped: {path} not found (pass --yardstick)", file=sys.stderr)
    return None


def measure(name: str, args: argparse.Namespace, build: Optional[str], lpy: Optional[str]) -> float:
    if name in YARDSTICK_CELLS:
        cmd = [sys.executable, args.yardstick, *YARDSTICK_CELLS[name], str(args.seconds)]
        if name.startswith("yard-rr"):
            import pagecache

            pagecache.ensure_hot(args.file)
            cmd += [args.file, "0"]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        return float(res["ops_per_s"])
    if name == "fio-io_uring":
        import pagecache

        pagecache.ensure_hot(args.file)
        cmd = ["fio", "--name=rr", f"--filename={args.file}", "--ioengine=io_uring",
               "--rw=randread", f"--bs={BS}", f"--iodepth={QD}", f"--runtime={args.seconds}",
               "--time_based", "--invalidate=0", "--output-format=json"]
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        return float(res["jobs"][0]["read"]["iops"])
    if name.startswith("nop-c-") or name == "rr-c" or name.startswith("rr-c-"):
        assert build is not None
        if name.startswith("rr-"):
            import pagecache

            pagecache.ensure_hot(args.file)
        cmd = c_cell(build, name, args)
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        return float(res.get("ops_per_sec") or res["iops"])
    exe = lpy if "liburing" in name else sys.executable
    cell_args = ["--seconds", str(args.seconds), "--file", args.file or ""]
    return float(run_cell_process(__file__, name, cell_args, python=exe)["rate"])


RATIOS = [
    ("nop b32: prep_nops / yardstick nop prefmt 32", "nop-nops-b32", "yard-nop-prefmt-b32"),
    ("nop b1:  prep_nop / yardstick nop pack 1", "nop-uring-b1", "yard-nop-pack-b1"),
    ("randread QD32: prep_read / yardstick read refill", "rr-uring", "yard-rr-refill"),
    ("randread QD32: prep_reads / yardstick read refill", "rr-reads", "yard-rr-refill"),
    ("randread QD32: prep_reads / os.pread loop", "rr-reads", "rr-pread"),
    ("randread QD32: arena queue / C liburing", "rr-arena", "rr-c"),
    ("randread QD32: arena queue / yardstick", "rr-arena", "yard-rr-refill"),
    ("randread QD32: user style / os.pread loop", "rr-user", "rr-pread"),
    ("randread QD32: yardstick / C liburing", "yard-rr-refill", "rr-c"),
    ("randread QD32: yardstick / fio io_uring", "yard-rr-refill", "fio-io_uring"),
    ("randread QD32: Image.arena / fio io_uring", "blk-arena", "fio-io_uring"),
    ("randread QD32: Image resubmit+reap / fio io_uring", "blk-batch", "fio-io_uring"),
    ("randread QD32: Image callbacks / fio io_uring", "blk-cb", "fio-io_uring"),
    ("randread QD32: Image.arena / arena queue", "blk-arena", "rr-arena"),
    ("randread QD32: Image.arena / yardstick", "blk-arena", "yard-rr-refill"),
    ("nop b32: uring / PyPI liburing", "nop-uring-b32", "nop-liburing-b32"),
    ("nop b32: uring prep_nops / PyPI liburing", "nop-nops-b32", "nop-liburing-b32"),
    ("nop b1:  uring / PyPI liburing", "nop-uring-b1", "nop-liburing-b1"),
    ("nop b32: uring / C liburing", "nop-uring-b32", "nop-c-b32"),
    ("nop b1:  uring / C liburing", "nop-uring-b1", "nop-c-b1"),
    ("randread QD32: uring / C liburing", "rr-uring", "rr-c"),
    ("randread QD32: uring fixed / C fixed", "rr-uring-fixed", "rr-c-fixed"),
    ("randread QD32: uring sqpoll / C sqpoll", "rr-uring-sqpoll", "rr-c-sqpoll"),
    ("randread QD32: uring / os.pread loop", "rr-uring", "rr-pread"),
    ("randread QD32: uring fixed / os.pread loop", "rr-uring-fixed", "rr-pread"),
]


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_arguments(ap)
    ap.add_argument("--only", choices=["nop", "rr", "blk"], help="run one group")
    ap.add_argument("--cells", help="comma-separated cells to run (default: all available)")
    ap.add_argument("--yardstick", help="path of the shared proto_ring.py "
                    "(default: ../shared/yardsticks/proto_ring.py beside this checkout)")
    ap.add_argument("--liburing-python", help="interpreter that can import PyPI liburing")
    args = ap.parse_args(argv)

    if args.cell:
        print(json.dumps(run_cell(args.cell, args)))
        return 0

    build = build_c()
    lpy = liburing_python(args.liburing_python)
    args.yardstick = find_yardstick(args.yardstick)
    yard = args.yardstick is not None
    cells: List[str] = []
    if args.only in (None, "nop"):
        for b in (32, 1):
            cells += [f"nop-uring-b{b}"] + (["nop-nops-b32"] if b == 32 else []) + (
                [f"nop-liburing-b{b}"] if lpy else []) + ([f"nop-c-b{b}"] if build else [])
        if yard:
            cells += ["yard-nop-prefmt-b32", "yard-nop-pack-b1"]
    if args.only in (None, "rr"):
        cells += ["rr-pread", "rr-uring", "rr-reads", "rr-arena", "rr-user", "rr-uring-fixed",
                  "rr-uring-sqpoll"]
        if build:
            cells += ["rr-c", "rr-c-fixed", "rr-c-sqpoll"]
        if yard:
            cells += ["yard-rr-refill"]
    if args.only in (None, "rr", "blk"):
        cells += ["blk-arena", "blk-batch", "blk-cb"]
        if shutil.which("fio"):
            cells += ["fio-io_uring"]
        if yard and "yard-rr-refill" not in cells:
            cells += ["yard-rr-refill"]
    if args.cells:
        wanted = args.cells.split(",")
        unknown = [c for c in wanted if c not in cells]
        if unknown:
            raise SystemExit(f"unknown or unavailable cells: {', '.join(unknown)}")
        cells = wanted

    samples: Dict[str, List[float]] = {c: [] for c in cells}
    with scratch_file(args, needed=args.only in (None, "rr", "blk")):
        for rnd in range(args.rounds):
            for cell in cells:
                rate = measure(cell, args, build, lpy)
                samples[cell].append(rate)
                print(f"# round {rnd + 1} {cell:18s} {rate / 1e3:9.1f} k/s", file=sys.stderr)

    print(f"\n{'cell':20s} {'median k ops/s':>15s}   samples")
    for cell in cells:
        print(f"{cell:20s} {statistics.median(samples[cell]) / 1e3:15.1f}   "
              + " ".join(f"{s / 1e3:.0f}" for s in samples[cell]))
    print(f"\n{'ratio (within each round, median over rounds)':46s} {'median':>7s}   per round")
    ratios: Dict[str, List[float]] = {}
    for label, num, den in RATIOS:
        if num in samples and den in samples:
            per = [a / b for a, b in zip(samples[num], samples[den])]
            ratios[label] = per
            print(f"{label:46s} {statistics.median(per):7.2f}   " + " ".join(f"{r:.2f}" for r in per))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"samples": samples, "ratios": ratios, "seconds": args.seconds,
                       "python": sys.version.split()[0]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

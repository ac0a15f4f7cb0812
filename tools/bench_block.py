#!/usr/bin/env python3
"""The block layer's engines side by side with fio, 4 KiB random reads.

    python3 tools/bench_block.py                  # 1 GiB temp file, both cache modes
    python3 tools/bench_block.py --cache none --rounds 5 --seconds 3

Rows: a synchronous ``os.preadv`` loop (the honest baseline for page-cache
hits), a naive ``ThreadPoolExecutor`` (one future per read), the block
layer's ``threads``, ``native`` and ``io_uring`` engines (plain, fixed files
+ fixed buffers, SQPOLL), and fio 3.x's ``psync``, ``libaio`` and
``io_uring`` engines (when ``fio`` is installed) on the same file, same
queue depth.  Every cell is its own process; cells run in interleaved rounds
(these machines drift up to 40% between runs); a buffered cell is preceded
by reading the file whole and checking with ``mincore`` that it is resident
(idle pages are evicted here after about a minute).  Latency is completion
latency (submit to reap) per request: p50 and p99.
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
from functools import partial
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

from benchlib import BS, N_OFFSETS, common_arguments, random_offsets, run_cell_process, scratch_file  # noqa: E402

OURS = ["preadv", "tpe", "threads", "native", "io_uring", "io_uring+fixed", "io_uring+sqpoll"]
FIO = {"fio-psync": ["--ioengine=psync"], "fio-libaio": ["--ioengine=libaio"],
       "fio-io_uring": ["--ioengine=io_uring"],
       "fio-io_uring+fixed": ["--ioengine=io_uring", "--fixedbufs", "--registerfiles"],
       "fio-io_uring+sqpoll": ["--ioengine=io_uring", "--sqthread_poll=1", "--registerfiles",
                               "--fixedbufs"]}


def _percentiles(lat_ns: List[int]) -> Dict[str, float]:
    if not lat_ns:
        return {"p50_us": 0.0, "p99_us": 0.0}
    lat_ns.sort()
    return {"p50_us": lat_ns[len(lat_ns) // 2] / 1e3,
            "p99_us": lat_ns[min(len(lat_ns) - 1, int(len(lat_ns) * 0.99))] / 1e3}


def cell_preadv(path: str, seconds: float, direct: bool) -> Dict[str, float]:
    import mmap

    offs = random_offsets(os.path.getsize(path))
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECT if direct else 0))
    buf = [mmap.mmap(-1, BS)]  # page aligned: valid for O_DIRECT too
    preadv, now = os.preadv, time.perf_counter_ns
    lat: List[int] = []
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        for i in range(n, n + 256):
            t = now()
            preadv(fd, buf, offs[i & (N_OFFSETS - 1)])
            lat.append(now() - t)
        n += 256
        if time.perf_counter() >= end:
            break
    rate = n / (time.perf_counter() - t0)
    os.close(fd)
    return {"iops": rate, **_percentiles(lat)}


def cell_tpe(path: str, seconds: float, qd: int, direct: bool) -> Dict[str, float]:
    """The naive pool: one future per read, refilled from the main thread."""
    import concurrent.futures as cf
    import mmap

    offs = random_offsets(os.path.getsize(path))
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECT if direct else 0))
    bufs = [[mmap.mmap(-1, BS)] for _ in range(qd)]
    now = time.perf_counter_ns
    lat: List[int] = []
    with cf.ThreadPoolExecutor(max_workers=min(qd, 8)) as pool:
        k = 0
        futs = {}
        for i in range(qd):
            futs[pool.submit(os.preadv, fd, bufs[i], offs[k])] = (i, now())
            k += 1
        n = 0
        t0 = time.perf_counter()
        end = t0 + seconds
        while time.perf_counter() < end:
            done, _ = cf.wait(futs, return_when=cf.FIRST_COMPLETED)
            for f in done:
                i, t = futs.pop(f)
                f.result()
                lat.append(now() - t)
                futs[pool.submit(os.preadv, fd, bufs[i], offs[k & (N_OFFSETS - 1)])] = (i, now())
                k += 1
                n += 1
        rate = n / (time.perf_counter() - t0)
        cf.wait(futs)
    os.close(fd)
    return {"iops": rate, **_percentiles(lat)}


def cell_block(path: str, seconds: float, qd: int, direct: bool, engine: str) -> Dict[str, float]:
    import mmap

    from uring import block

    aio, _, feature = engine.partition("+")
    opts: Dict[str, object] = {}
    if feature == "fixed":
        opts = {"fixed_files": True, "fixed_buffers": True}
    elif feature == "sqpoll":
        opts = {"sqpoll": True, "fixed_files": True}
    offs = random_offsets(os.path.getsize(path))
    mask = N_OFFSETS - 1
    arena = mmap.mmap(-1, qd * BS)
    views = [memoryview(arena)[i * BS:(i + 1) * BS] for i in range(qd)]
    now = time.perf_counter_ns
    lat: List[int] = []
    started = [0] * qd
    state = {"k": 0, "n": 0, "stop": False}
    with block.open_image(path, aio=aio, cache="none" if direct else "writeback",
                          queue_depth=qd, **opts) as img:
        if feature == "fixed":
            img.register_buffers([arena])
        submit = img.submit_read

        def issue(i: int) -> None:
            k = state["k"]
            state["k"] = k + 1
            started[i] = now()
            submit(views[i], offs[k & mask], partial(done, i=i))

        def done(req: block.BlockRequest, *, i: int) -> None:
            lat.append(now() - started[i])
            if req.error is not None:
                raise req.error
            state["n"] += 1
            if not state["stop"]:
                issue(i)

        with img.plugged():
            for i in range(qd):
                issue(i)
        engine_ = img.engine
        t0 = time.perf_counter()
        end = t0 + seconds
        while True:
            engine_.plug()  # refills made by the callbacks go as one submit
            engine_.poll(wait=True)
            engine_.unplug()
            if state["n"] & 0xFF < 32 and time.perf_counter() >= end:
                break
        rate = state["n"] / (time.perf_counter() - t0)
        state["stop"] = True
        img.wait()
    return {"iops": rate, **_percentiles(lat)}


def cell_fio(path: str, seconds: float, qd: int, direct: bool, args: List[str]) -> Dict[str, float]:
    cmd = ["fio", "--name=randread", f"--filename={path}", "--rw=randread", f"--bs={BS}",
           f"--iodepth={qd}", f"--direct={int(direct)}", f"--runtime={seconds}",
           "--time_based", "--output-format=json", "--randrepeat=0",
           "--invalidate=0",  # fio drops the file's page cache by default
           *args]
    if "--ioengine=psync" in args:
        cmd = [c for c in cmd if not c.startswith("--iodepth")]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]["read"]
    pct = job["clat_ns"]["percentile"]
    p50, p99 = pct["50.000000"] / 1e3, pct["99.000000"] / 1e3
    if "--sqthread_poll=1" in args:
        p50 = p99 = float("nan")  # fio 3.33 reports no usable clat with SQPOLL
    return {"iops": job["iops"], "p50_us": p50, "p99_us": p99}


def run_cell(name: str, args: argparse.Namespace) -> Dict[str, float]:
    direct = args.cache == "none"
    if name == "preadv":
        return cell_preadv(args.file, args.seconds, direct)
    if name == "tpe":
        return cell_tpe(args.file, args.seconds, args.iodepth, direct)
    if name.startswith("fio-"):
        return cell_fio(args.file, args.seconds, args.iodepth, direct, FIO[name])
    return cell_block(args.file, args.seconds, args.iodepth, direct, name)


def measure(name: str, cache: str, args: argparse.Namespace) -> Dict[str, float]:
    import pagecache

    if cache != "none":
        pagecache.ensure_hot(args.file)
    if name.startswith("fio-"):
        ns = argparse.Namespace(**{**vars(args), "cache": cache})
        return run_cell(name, ns)
    return run_cell_process(__file__, name, ["--cache", cache, "--file", args.file, "--seconds",
                                             str(args.seconds), "--iodepth", str(args.iodepth)])


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    common_arguments(ap)
    ap.add_argument("--iodepth", type=int, default=32)
    ap.add_argument("--cache", choices=["writeback", "none", "both"], default="both")
    ap.add_argument("--only", help="comma-separated cell names")
    args = ap.parse_args(argv)
    if args.cell:
        print(json.dumps(run_cell(args.cell, args)))
        return 0


    cells = list(OURS)
    if shutil.which("fio"):
        cells += list(FIO)
    else:
        print("# fio rows skipped: fio is not installed (apt-get install fio)", file=sys.stderr)
    if args.only:
        cells = [c for c in cells if c in args.only.split(",")]
    caches = ["writeback", "none"] if args.cache == "both" else [args.cache]
    samples: Dict[str, List[Dict[str, float]]] = {}
    with scratch_file(args):
        for rnd in range(args.rounds):
            for cache in caches:
                for cell in cells:
                    r = measure(cell, cache, args)
                    samples.setdefault(f"{cache}:{cell}", []).append(r)
                    print(f"# round {rnd + 1} {cache:9s} {cell:20s} {r['iops'] / 1e3:8.1f}k IOPS "
                          f"p50 {r['p50_us']:7.1f}us p99 {r['p99_us']:8.1f}us", file=sys.stderr)

    print(f"4 KiB random reads, iodepth {args.iodepth}, median of {args.rounds} interleaved rounds\n")
    print(f"{'cache':9s} {'engine':20s} {'kIOPS':>7s} {'p50 us':>7s} {'p99 us':>8s}  ratios (per round, median)")
    for cache in caches:
        base = samples.get(f"{cache}:preadv")
        for cell in cells:
            rows = samples[f"{cache}:{cell}"]
            med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
            notes = []
            for ref in ("preadv", "threads", "fio-io_uring", "fio-libaio"):
                other = samples.get(f"{cache}:{ref}")
                if other and ref != cell and not cell.startswith("fio") and cell != "preadv":
                    ratio = statistics.median(a["iops"] / b["iops"] for a, b in zip(rows, other))
                    notes.append(f"{ratio:.2f}x {ref}")
            _ = base
            print(f"{cache:9s} {cell:20s} {med['iops'] / 1e3:7.1f} {med['p50_us']:7.1f} "
                  f"{med['p99_us']:8.1f}  {', '.join(notes)}")
        print()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"samples": samples, "args": {k: v for k, v in vars(args).items()}}, f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

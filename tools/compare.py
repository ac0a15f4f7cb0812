#!/usr/bin/env python3
"""This project's ``python3 -m uring bench`` against fio, engine by engine.

    python3 tools/compare.py                       # 1 GiB temp file, both cache modes
    python3 tools/compare.py --rounds 5 --runtime 3 --svg docs/compare.svg

Each row pairs an engine of the block layer with the fio engine that does
the same thing in C: the synchronous loop with ``psync``, ``native`` with
``libaio``, ``io_uring`` with ``io_uring`` (plain, with registered files and
buffers, with SQPOLL), and ``threads`` with ``posixaio`` (glibc runs POSIX
AIO on a thread pool: the nearest thing fio has).  Both run the same job on
the same file: the same options, spelled the same way, since the bench
speaks fio's language, and both answer in fio's JSON, read here by one
parser.

Machines like this one drift by tens of percent from one minute to the
next, so a number from one run means little beside a number from another.
The cells therefore run in interleaved rounds (ours, fio, ours, fio, ...,
the order flipped every round), and the ratio is taken *within* a round
and then the median over rounds.  Before every buffered cell the file is
read whole and checked with mincore to be resident (idle pages are evicted
here after about a minute); both get ``--invalidate=0`` so neither drops
them itself.  Without fio installed the rows show this project only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from uring.bench.files import ScratchDir, ensure_hot, make_file  # noqa: E402
from uring.bench.options import parse_size  # noqa: E402

#: (label, this project's engine, its options, fio's engine, fio's options)
PAIRS: List[Tuple[str, str, List[str], str, List[str]]] = [
    ("sync", "sync (os.preadv loop)", ["--ioengine=psync"], "psync", ["--ioengine=psync"]),
    ("threads", "threads", ["--ioengine=threads"], "posixaio", ["--ioengine=posixaio"]),
    ("native", "native (Linux AIO)", ["--ioengine=libaio"], "libaio", ["--ioengine=libaio"]),
    ("io_uring", "io_uring", ["--ioengine=io_uring"], "io_uring", ["--ioengine=io_uring"]),
    ("fixed", "io_uring + fixed files + buffers",
     ["--ioengine=io_uring", "--fixedbufs", "--registerfiles"],
     "io_uring fixedbufs registerfiles",
     ["--ioengine=io_uring", "--fixedbufs", "--registerfiles"]),
    ("sqpoll", "io_uring + sqpoll", ["--ioengine=io_uring", "--sqthread_poll"],
     "io_uring sqthread_poll", ["--ioengine=io_uring", "--sqthread_poll=1"]),
]


def _job(args: argparse.Namespace, direct: bool, engine: List[str]) -> List[str]:
    opts = ["--name=compare", f"--filename={args.filename}", f"--size={args.size}",
            f"--rw={args.rw}", f"--bs={args.bs}", f"--runtime={round(args.runtime * 1000)}ms", "--time_based",
            f"--direct={int(direct)}", "--invalidate=0", *engine]
    if "--ioengine=psync" not in engine:
        opts.append(f"--iodepth={args.iodepth}")
    return opts


def _first_job(out: str) -> Dict[str, Any]:
    doc = json.loads(out[out.index("{"):])  # fio may print notes before the JSON
    return dict(doc["jobs"][0])


def _iops(job: Dict[str, Any]) -> float:
    return float(job["read"]["iops"]) + float(job["write"]["iops"])


def run_ours(args: argparse.Namespace, direct: bool, engine: List[str]) -> Dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "uring", "bench", *_job(args, direct, engine),
           "--output-format=json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return _first_job(proc.stdout)


def run_fio(args: argparse.Namespace, direct: bool, engine: List[str]) -> Dict[str, Any]:
    if not direct:
        frac = ensure_hot(args.filename, parse_size(args.size))
        if frac < 0.99:
            print(f"# warning: only {frac:.0%} of the file is in the page cache", file=sys.stderr)
    cmd = ["fio", *_job(args, direct, engine), "--output-format=json"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return _first_job(proc.stdout)


def measure(args: argparse.Namespace, with_fio: bool) -> Dict[str, Dict[str, List[float]]]:
    """samples[f"{cache}:{pair}"] = {"ours": [iops per round], "fio": [...]}."""
    caches = {"both": [False, True], "buffered": [False], "direct": [True]}[args.cache]
    pairs = [p for p in PAIRS if not args.only or p[0] in args.only.split(",")]
    samples: Dict[str, Dict[str, List[float]]] = {}
    for rnd in range(args.rounds):
        for direct in caches:
            for key, _label, ours_opts, _fio_name, fio_opts in pairs:
                order = ["ours", "fio"] if rnd % 2 == 0 else ["fio", "ours"]
                for who in order:
                    if who == "fio" and not with_fio:
                        continue
                    job = (run_ours(args, direct, ours_opts) if who == "ours"
                           else run_fio(args, direct, fio_opts))
                    if job["error"]:
                        raise RuntimeError(f"{who} {key}: error {job['error']}: "
                                           f"{job.get('uring', {}).get('error_text', '')}")
                    iops = _iops(job)
                    cell = f"{'direct' if direct else 'buffered'}:{key}"
                    samples.setdefault(cell, {"ours": [], "fio": []})[who].append(iops)
                    print(f"# round {rnd + 1} {cell:18s} {who:4s} {iops / 1e3:8.1f}k IOPS",
                          file=sys.stderr, flush=True)
    return samples


def summarize(samples: Dict[str, Dict[str, List[float]]]) -> List[Dict[str, Any]]:
    rows = []
    for key, _label, _o, _f, _fo in PAIRS:
        for cache in ("buffered", "direct"):
            s = samples.get(f"{cache}:{key}")
            if not s:
                continue
            ours, fio = s["ours"], s["fio"]
            ratios = [a / b for a, b in zip(ours, fio)] if fio else []
            rows.append({"key": key, "cache": cache, "ours": statistics.median(ours),
                         "fio": statistics.median(fio) if fio else None,
                         "ratio": statistics.median(ratios) if ratios else None,
                         "ratios": ratios})
    rows.sort(key=lambda r: (r["cache"] != "buffered",))
    return rows


def table(rows: List[Dict[str, Any]], args: argparse.Namespace) -> str:
    labels = {p[0]: (p[1], p[3]) for p in PAIRS}
    out = [f"{args.bs} {args.rw}, iodepth {args.iodepth}, {args.runtime} s per cell, "
           f"{args.rounds} interleaved rounds, {args.size} file; medians, the ratio taken "
           "within each round", ""]
    head = (f"{'cache':9s} {'this project':34s} {'fio':34s} {'ours kIOPS':>10s} "
            f"{'fio kIOPS':>10s} {'ours/fio':>8s}  per round")
    out.append(head)
    previous = None
    for r in rows:
        if previous is not None and r["cache"] != previous:
            out.append("")
        previous = r["cache"]
        ours_label, fio_label = labels[r["key"]]
        fio = f"{r['fio'] / 1e3:10.1f}" if r["fio"] is not None else f"{'-':>10s}"
        ratio = f"{r['ratio']:7.2f}x" if r["ratio"] is not None else f"{'-':>8s}"
        per = " ".join(f"{x:.2f}" for x in r["ratios"])
        cache = "O_DIRECT" if r["cache"] == "direct" else "buffered"
        out.append(f"{cache:9s} {ours_label:34s} {fio_label:34s} {r['ours'] / 1e3:10.1f} "
                   f"{fio} {ratio}  {per}")
    return "\n".join(out)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg(rows: List[Dict[str, Any]], args: argparse.Namespace) -> str:
    """Horizontal bars, one pair per row (this project over fio), kIOPS,
    one panel per cache mode; the ratio at the end of each pair."""
    labels = {p[0]: (p[1], p[3]) for p in PAIRS}
    bar, gap, left, width = 14, 12, 250, 420
    panels = [(c, [r for r in rows if r["cache"] == c]) for c in ("buffered", "direct")]
    panels = [(c, rs) for c, rs in panels if rs]
    height = 70 + sum(30 + len(rs) * (2 * bar + gap) for _, rs in panels) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 110}" '
           f'height="{height}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="10" y="22" font-size="15" font-weight="bold">python3 -m uring bench vs '
           f'fio: {_esc(args.bs)} {_esc(args.rw)}, iodepth {args.iodepth}, kIOPS</text>',
           f'<text x="10" y="40" fill="#555">medians of {args.rounds} interleaved rounds of '
           f'{args.runtime} s; ratio = ours / fio within each round, then the median</text>',
           f'<rect x="{left}" y="50" width="12" height="10" fill="#1f77b4"/>'
           f'<text x="{left + 16}" y="59">this project (Python)</text>',
           f'<rect x="{left + 170}" y="50" width="12" height="10" fill="#aaaaaa"/>'
           f'<text x="{left + 186}" y="59">fio (C)</text>']
    y = 80
    for cache, rs in panels:
        top = max(max(r["ours"], r["fio"] or 0) for r in rs) or 1.0
        out.append(f'<text x="10" y="{y + 4}" font-weight="bold">'
                   f'{"O_DIRECT" if cache == "direct" else "page cache (buffered)"}</text>')
        y += 16
        for r in rs:
            ours_label, fio_label = labels[r["key"]]
            for i, (value, colour, name) in enumerate(
                    ((r["ours"], "#1f77b4", ours_label),
                     (r["fio"], "#aaaaaa", f"fio {fio_label}"))):
                yy = y + i * bar
                out.append(f'<text x="{left - 6}" y="{yy + bar - 3}" text-anchor="end">'
                           f'{_esc(name)}</text>')
                if value is None:
                    out.append(f'<text x="{left + 4}" y="{yy + bar - 3}" fill="#888">'
                               'fio not installed</text>')
                    continue
                w = max(1.0, width * value / top)
                out.append(f'<rect x="{left}" y="{yy}" width="{w:.1f}" height="{bar - 2}" '
                           f'fill="{colour}"/>')
                out.append(f'<text x="{left + w + 4:.1f}" y="{yy + bar - 3}">'
                           f'{value / 1e3:.1f}</text>')
            if r["ratio"] is not None:
                out.append(f'<text x="{left + width + 60}" y="{y + bar + 4}" font-weight="bold">'
                           f'{r["ratio"]:.2f}x</text>')
            y += 2 * bar + gap
        y += 20
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--runtime", type=float, default=2.0, help="seconds per cell (default 2)")
    ap.add_argument("--size", default="1G", help="file size (default 1G)")
    ap.add_argument("--filename", help="use this file (default: a temporary one in /var/tmp)")
    ap.add_argument("--rw", default="randread", help="fio's rw (default randread)")
    ap.add_argument("--bs", default="4k", help="block size (default 4k)")
    ap.add_argument("--iodepth", type=int, default=32, help="queue depth (default 32)")
    ap.add_argument("--cache", choices=["both", "buffered", "direct"], default="both")
    ap.add_argument("--only", help="comma-separated rows: " + ",".join(p[0] for p in PAIRS))
    ap.add_argument("--svg", help="write the results as an SVG bar chart here")
    ap.add_argument("--json", help="write every sample here")
    args = ap.parse_args(argv)

    with_fio = shutil.which("fio") is not None
    if not with_fio:
        print("# fio is not installed (apt-get install fio): measuring this project only",
              file=sys.stderr)
    scratch: Optional[ScratchDir] = None
    try:
        if not args.filename:
            scratch = ScratchDir()
            args.filename = os.path.join(scratch.path, "compare.img")
            print(f"# creating {args.filename} ({args.size})", file=sys.stderr)
            make_file(args.filename, parse_size(args.size))
        samples = measure(args, with_fio)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if scratch is not None:
            scratch.close()
    rows = summarize(samples)
    print(table(rows, args))
    if args.svg:
        with open(args.svg, "w") as f:
            f.write(svg(rows, args))
        print(f"\nchart: {args.svg}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "samples": samples, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

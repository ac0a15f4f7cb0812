"""What the benchmarks under ``tools/`` share: sizes, random offsets, the
scratch file, and running one cell in its own Python process."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Dict, Iterator, List, Optional

import pagecache

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BS = 4096
N_OFFSETS = 1 << 20  # a power of two: index with `& (N_OFFSETS - 1)`


def parse_size(text: str) -> int:
    """``1G``, ``16M``, ``512K`` or a byte count."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().rstrip("B").rstrip("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def random_offsets(size: int) -> List[int]:
    """N_OFFSETS block-aligned offsets in a file of *size* bytes, the same
    sequence in every process (so every cell reads the same blocks)."""
    rnd = random.Random(1)
    blocks = size // BS
    return [rnd.randrange(blocks) * BS for _ in range(N_OFFSETS)]


def common_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--seconds", type=float, default=2.0, help="per cell (default 2)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--size", default="1G", help="random-read file size (default 1G)")
    ap.add_argument("--file", help="use this file for random reads instead of a temp file")
    ap.add_argument("--json", help="write every sample here")
    ap.add_argument("--cell", help=argparse.SUPPRESS)


@contextlib.contextmanager
def scratch_file(args: argparse.Namespace, needed: bool = True) -> Iterator[None]:
    """Set ``args.file`` to a new file of ``args.size`` bytes in /var/tmp
    (a real disk: /tmp may be tmpfs elsewhere) unless one was given;
    removed afterwards, also on Ctrl-C."""
    if args.file or not needed:
        yield
        return
    tmpdir = tempfile.mkdtemp(prefix="uring-bench-", dir="/var/tmp")
    try:
        args.file = os.path.join(tmpdir, "randread.img")
        size = parse_size(args.size)
        print(f"# creating {args.file} ({size >> 20} MiB)", file=sys.stderr)
        pagecache.make_file(args.file, size)
        yield
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def run_cell_process(script: str, cell: str, cell_args: List[str],
                     python: Optional[str] = None) -> Dict[str, Any]:
    """Run ``script --cell CELL ...`` in a fresh interpreter (with this
    checkout importable) and return the JSON it prints."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [python or sys.executable, os.path.abspath(script), "--cell", cell, *cell_args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{cell} failed:\n{proc.stderr}")
    return dict(json.loads(proc.stdout))

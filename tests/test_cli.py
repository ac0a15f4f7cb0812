"""`python3 -m uring probe` against the running kernel."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import require_uring

import uring
from uring import abi


def run_probe() -> str:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    proc = subprocess.run([sys.executable, "-m", "uring", "probe"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_probe_prints_the_kernel_and_the_op_table() -> None:
    require_uring()
    out = run_probe()
    assert os.uname().release in out
    probe = uring.probe()
    rows = dict(re.findall(r"^\s+\d+\s+(IORING_OP_\w+)\s+(yes|no)$", out, re.M))
    assert set(rows) == {op.name for op in abi.IoringOp if op.name != "IORING_OP_LAST"}
    for name, mark in rows.items():
        assert (mark == "yes") == probe.supports(getattr(abi, name)), name
    supported = sum(mark == "yes" for mark in rows.values())
    assert f"{supported} of {len(rows)} opcodes supported" in out
    assert "SINGLE_MMAP" in out.split("features", 1)[1].splitlines()[0]


def test_help_lists_probe_and_bench() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-m", "uring", "--help"], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=root), timeout=60)
    assert proc.returncode == 0
    assert "probe" in proc.stdout and "bench" in proc.stdout

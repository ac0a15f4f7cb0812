"""The README's Python examples run (issue 12, item 7).

Every fenced ``python`` block of README.md runs as written, each in its own
interpreter (asyncio loops, rings and sockets stay the block's own), with
the working directory a fresh temporary directory and this checkout first
on ``sys.path``.  The only setup is what a block names and does not make:
``disk.img`` (the block layer's example) is created there as a small file
already in the page cache, and the fixed path ``/tmp/chain.txt`` is pointed
into the temporary directory.  Shell blocks (``sh``) and output blocks are
not run.  A block that cannot run as written is marked ``xfail(strict=True)``
here with the reason, until the README is fixed.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
from typing import Dict, List, Tuple

import pytest
from conftest import require_uring

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

#: Blocks that cannot run as written: a distinctive line of the block ->
#: the reason (reported for a README fix).
BROKEN: Dict[str, str] = {}


def python_blocks() -> List[Tuple[str, str]]:
    """(id, source) of every ```python block, the id from the heading above
    it and its place in the file."""
    text = README.read_text(encoding="utf-8")
    blocks = []
    heading = "top"
    pos = 0
    for m in re.finditer(r"^(#{1,6} [^\n]*)$|^```python[ \t]*\n(.*?)^```[ \t]*$", text, re.M | re.S):
        if m.group(1):
            heading = m.group(1).lstrip("#").strip()
            continue
        pos += 1
        slug = re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")
        blocks.append((f"{pos}-{slug}", m.group(2)))
    return blocks


BLOCKS = python_blocks()


def _param(block_id: str, source: str) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=reason)
             for key, reason in BROKEN.items() if key in source]
    return pytest.param(source, id=block_id, marks=marks)


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 3, [b for b, _ in BLOCKS]


@pytest.mark.parametrize("source", [_param(b, s) for b, s in BLOCKS])
def test_readme_example_runs(source: str, tmp_path: pathlib.Path) -> None:
    require_uring()
    if "disk.img" in source:
        # A small image, written (hence in the page cache) just now.
        (tmp_path / "disk.img").write_bytes(os.urandom(1 << 20))
    source = source.replace("/tmp/chain.txt", str(tmp_path / "chain.txt"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", source], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (
        f"exit status {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")

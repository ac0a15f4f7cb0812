"""tools/compare.py: this project's bench against fio, in interleaved rounds.

The script runs for real (tiny settings: a 4 MiB file, 0.2 s cells, two
rounds, two rows); with fio installed the fio side runs too, and a run with
fio taken off PATH shows what the rows say without it.  No assertion
depends on how fast anything is: the numbers checked are the script's own
samples, carried into its table, its chart and its JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from typing import Any, Dict, List, Optional, Tuple

import pytest
from conftest import require_uring

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tools", "compare.py")
SVG_NS = "{http://www.w3.org/2000/svg}"

#: --only key -> (this project's label, fio's label), as the table prints them
ROWS = {"sync": ("sync (os.preadv loop)", "psync"), "io_uring": ("io_uring", "io_uring")}
ROUNDS = 2
BAR_HEIGHT = "12"  # svg(): bar 14 px, drawn 2 px short; the legend swatches are 10 px


def load() -> Any:
    spec = importlib.util.spec_from_file_location("compare", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["compare"] = module
    spec.loader.exec_module(module)
    return module


def run_compare(tmp_path: Any, cache: str, env: Optional[Dict[str, str]] = None
                ) -> Tuple[subprocess.CompletedProcess, Dict[str, Any], str]:
    svg_path, json_path = tmp_path / "compare.svg", tmp_path / "compare.json"
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--rounds", str(ROUNDS), "--runtime", "0.2", "--size", "4M",
         "--only", ",".join(ROWS), "--cache", cache, "--svg", str(svg_path),
         "--json", str(json_path)],
        capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads(json_path.read_text()), svg_path.read_text()


def table_rows(stdout: str) -> List[Tuple[str, str, str, List[str]]]:
    """(cache, ours label, fio label, numeric columns) of each table row; the
    columns are fixed width: 9, 34 and 34 characters, a space apart."""
    rows = []
    for line in stdout.splitlines():
        if line.startswith(("buffered ", "O_DIRECT ")):
            rows.append((line[:9].strip(), line[10:44].strip(), line[45:79].strip(),
                         line[79:].split()))
    return rows


def progress(stderr: str) -> List[Tuple[int, str, str]]:
    """(round, cell, who) of each '# round N cell who ...k IOPS' line, in order."""
    out = []
    for line in stderr.splitlines():
        parts = line.split()
        if parts[:2] == ["#", "round"]:
            out.append((int(parts[2]), parts[3], parts[4]))
    return out


def bars(svg_text: str) -> List[ET.Element]:
    root = ET.fromstring(svg_text)
    assert root.tag == SVG_NS + "svg"
    return [r for r in root.iter(SVG_NS + "rect") if r.get("height") == BAR_HEIGHT]


def texts(svg_text: str) -> List[str]:
    return [t.text or "" for t in ET.fromstring(svg_text).iter(SVG_NS + "text")]


def check_run(proc: subprocess.CompletedProcess, doc: Dict[str, Any], svg_text: str,
              cache: str, with_fio: bool) -> None:
    label = "O_DIRECT" if cache == "direct" else "buffered"
    samples = doc["samples"]
    assert set(samples) == {f"{cache}:{key}" for key in ROWS}

    # one table row per --only key, and nothing else
    rows = table_rows(proc.stdout)
    assert [(c, o, f) for c, o, f, _ in rows] == [(label, *ROWS[k]) for k in ROWS]
    for (_, _, _, cols), key in zip(rows, ROWS):
        s = samples[f"{cache}:{key}"]
        assert len(s["ours"]) == ROUNDS
        assert cols[0] == f"{statistics.median(s['ours']) / 1e3:.1f}"
        if with_fio:
            assert len(s["fio"]) == ROUNDS
            ratios = [a / b for a, b in zip(s["ours"], s["fio"])]
            # ours kIOPS, fio kIOPS, the median ratio, then one ratio per round
            assert len(cols) == 3 + ROUNDS
            assert cols[1] == f"{statistics.median(s['fio']) / 1e3:.1f}"
            assert cols[2] == f"{statistics.median(ratios):.2f}x"
            assert cols[3:] == [f"{r:.2f}" for r in ratios]
        else:
            assert s["fio"] == []
            assert cols[1:] == ["-", "-"]  # no fio column, no ratio, no rounds

    # the run order: ours first in odd rounds, fio first in even ones
    seen = progress(proc.stderr)
    expected = []
    for rnd in range(1, ROUNDS + 1):
        for key in ROWS:
            order = ["ours", "fio"] if rnd % 2 else ["fio", "ours"]
            expected += [(rnd, f"{cache}:{key}", who) for who in order
                         if with_fio or who == "ours"]
    assert seen == expected

    # the chart: a bar per row for this project, one for fio when it ran
    drawn = bars(svg_text)
    assert len(drawn) == len(ROWS) * (2 if with_fio else 1)
    words = texts(svg_text)
    assert words.count("fio not installed") == (0 if with_fio else len(ROWS))
    assert ("O_DIRECT" if cache == "direct" else "page cache (buffered)") in words
    for ours_label, fio_label in ROWS.values():
        assert ours_label in words and f"fio {fio_label}" in words
    if with_fio:
        for row in doc["rows"]:
            assert f"{row['ratio']:.2f}x" in words

    # the temporary file's directory is gone
    assert not os.path.exists(os.path.dirname(doc["args"]["filename"]))


def test_compare_runs_both_sides_in_alternating_rounds(tmp_path: Any) -> None:
    """As installed here: with fio, both sides per round and the ratios
    within rounds; without fio, this project's rows only, saying so."""
    require_uring()
    with_fio = shutil.which("fio") is not None
    proc, doc, svg_text = run_compare(tmp_path, "buffered")
    check_run(proc, doc, svg_text, "buffered", with_fio)
    assert ("fio is not installed" in proc.stderr) == (not with_fio)


def test_compare_without_fio_shows_this_project_only(tmp_path: Any) -> None:
    """fio off PATH (the interpreter is run by absolute path): the rows say
    there is no fio, whether or not this machine has one."""
    require_uring()
    empty = tmp_path / "bin"
    empty.mkdir()
    env = dict(os.environ, PATH=str(empty))
    proc, doc, svg_text = run_compare(tmp_path, "direct", env=env)
    assert "fio is not installed" in proc.stderr
    check_run(proc, doc, svg_text, "direct", with_fio=False)


def test_svg_draws_a_row_without_fio() -> None:
    compare = load()
    args = argparse.Namespace(bs="4k", rw="randread", iodepth=32, rounds=3, runtime=2.0)
    rows = [
        {"key": "sync", "cache": "buffered", "ours": 350e3, "fio": None, "ratio": None,
         "ratios": []},
        {"key": "io_uring", "cache": "direct", "ours": 30e3, "fio": 120e3, "ratio": 0.25,
         "ratios": [0.2, 0.25, 0.3]},
        {"key": "native", "cache": "direct", "ours": 60e3, "fio": 80e3, "ratio": 0.75,
         "ratios": [0.75]},
    ]
    text = compare.svg(rows, args)
    drawn = bars(text)
    assert len(drawn) == 1 + 2 + 2  # the fio-less row has one bar
    words = texts(text)
    assert words.count("fio not installed") == 1
    assert "page cache (buffered)" in words and "O_DIRECT" in words
    assert "0.25x" in words and "0.75x" in words
    assert sum(w.endswith("x") and w[:-1].replace(".", "").isdigit() for w in words) == 2
    # bar lengths are proportional within a panel; the panel's largest fills the width
    widths = [float(r.get("width", "0")) for r in drawn]
    full = max(widths)
    assert widths[0] == full  # alone in its panel
    assert widths[1:] == [pytest.approx(full * v / 120e3, abs=0.1)
                          for v in (30e3, 120e3, 60e3, 80e3)]
    # the values are printed beside the bars, in kIOPS
    for v in (350e3, 30e3, 120e3, 60e3, 80e3):
        assert f"{v / 1e3:.1f}" in words

"""`python3 -m uring bench`'s output side: rows as cells finish, Ctrl-C,
mixed jobs, the SVG chart, bad paths, --version, --output, json+, fio's
per-interval and disk fields, group_reporting.

The command runs for real in a subprocess on small files (4 MiB, runs of
a fraction of a second; the two that need fio's 500 ms samples run 2 s).
No assertion depends on how fast anything is, only on what was measured
and when it was printed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from array import array
from typing import Any, Dict, List, Optional, Tuple

import pytest
from conftest import require_uring

from uring.bench import options, stats
from uring.bench.options import parse_args
from uring.bench.plan import CellResult, plan_cells
from uring.bench.report import fio_json, fmt_rate, merge_clones, table
from uring.bench.svg import chart
from uring.bench.workload import Direction, Measurement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SVG = "{http://www.w3.org/2000/svg}"
ENV = dict(os.environ, PYTHONPATH=ROOT)
SYNC_LABEL = "sync (psync: os.preadv loop)"


def bench(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uring", "bench", *args], capture_output=True,
                          text=True, env=ENV, timeout=timeout)


def popen(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "uring", "bench", *args], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=ENV,
        # a shell may have started us with SIGINT ignored, which a child inherits
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def split_json(stdout: str) -> Tuple[str, Dict[str, Any]]:
    """(the normal output, the JSON document after it) of normal,json."""
    start = stdout.index("\n{") + 1 if not stdout.startswith("{") else 0
    return stdout[:start], dict(json.loads(stdout[start:]))


def columns(line: str) -> List[str]:
    return re.split(r"\s{2,}", line.strip())


# -- rows as cells finish ---------------------------------------------------------------------


def test_rows_arrive_through_a_pipe_as_each_cell_finishes(tmp_path: Any) -> None:
    """Two 1.5 s cells, stdout a pipe: the first row is read while the
    second cell is still running, well before the process ends."""
    proc = popen(f"--directory={tmp_path}", "--ioengine=psync", "--size=4M", "--time_based",
                 "--runtime=1.5", "--name=one", "--name=two")
    assert proc.stdout is not None
    seen: List[Tuple[float, str]] = []
    try:
        for line in proc.stdout:
            seen.append((time.monotonic(), line.rstrip("\n")))
            if re.match(r"one\s+sync", line):
                assert proc.poll() is None, "the first row came only once the run was over"
        proc.wait(timeout=30)
        ended = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == 0
    lines = [text for _, text in seen]
    heads = [i for i, text in enumerate(lines) if text.startswith("job ")]
    first = next(i for i, text in enumerate(lines) if re.match(r"one\s+sync", text))
    second = next(i for i, text in enumerate(lines) if re.match(r"two\s+sync", text))
    assert heads and heads[0] < first < second
    assert ended - seen[first][0] >= 1.0  # the whole second cell ran after the first row was read
    assert seen[second][0] - seen[first][0] >= 1.0
    assert lines[-1].startswith("2 cells run")


def test_ctrl_c_keeps_the_finished_rows(tmp_path: Any) -> None:
    """SIGINT during the second cell: the first row stays, the notes and
    the summary follow, the JSON has the finished cell, exit 130, and the
    temporary file is gone."""
    proc = popen(f"--directory={tmp_path}", "--ioengine=psync", "--size=4M", "--time_based",
                 "--output-format=normal,json", "--name=one", "--runtime=0.3", "--name=two",
                 "--runtime=60")
    assert proc.stdout is not None
    head: List[str] = []
    try:
        for line in proc.stdout:
            head.append(line)
            if re.match(r"one\s+sync", line):
                break
        time.sleep(0.5)  # into the second cell's timed loop
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    text, doc = split_json("".join(head) + rest)
    assert re.search(r"^one\s+sync", text, re.M)
    assert not re.search(r"^two\s+sync", text, re.M)
    assert "1 cells run, 1 left out (interrupted)" in text
    assert [j["jobname"] for j in doc["jobs"]] == ["one"]
    assert doc["jobs"][0]["read"]["total_ios"] > 0
    assert os.listdir(tmp_path) == []


def test_a_closed_pipe_ends_the_run_quietly(tmp_path: Any) -> None:
    """`uring bench | head -1`: no traceback when the reader goes away."""
    proc = popen(f"--directory={tmp_path}", "--ioengine=psync", "--size=4M", "--runtime=0.2",
                 "--time_based", "--name=one", "--name=two", "--name=three")
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=30)
    assert "Traceback" not in err
    assert proc.returncode in (0, 1)
    assert os.listdir(tmp_path) == []


# -- mixed jobs -------------------------------------------------------------------------------


def test_randrw_table_has_read_and_write_rows() -> None:
    proc = bench("--ioengine=psync", "--rw=randrw", "--rwmixread=70", "--size=4M",
                 "--output-format=normal,json")
    assert proc.returncode == 0, proc.stderr
    text, doc = split_json(proc.stdout)
    (job,) = doc["jobs"]
    head = next(line for line in text.splitlines() if line.startswith("engine"))
    assert columns(head)[:4] == ["engine", "cache", "rw", "IOPS"]
    rows = {columns(line)[2]: columns(line) for line in text.splitlines()
            if line.startswith(SYNC_LABEL)}
    assert set(rows) == {"read", "write"}
    for direction in ("read", "write"):
        row, fio = rows[direction], job[direction]
        assert fio["total_ios"] > 0
        assert row[3] == fmt_rate(fio["iops"])
        assert float(row[4]) == pytest.approx(fio["bw_bytes"] / (1 << 20), abs=0.06)
        assert float(row[5]) == pytest.approx(fio["clat_ns"]["percentile"]["50.000000"] / 1000,
                                              rel=0.01, abs=0.06)
    assert job["read"]["total_ios"] + job["write"]["total_ios"] == 1024  # one pass of 4 MiB
    assert job["read"]["total_ios"] > job["write"]["total_ios"]
    assert len(rows["read"]) == 10 and len(rows["write"]) == 8  # CPU once, on the read row


# -- the SVG chart ----------------------------------------------------------------------------


def test_svg_draws_a_bar_per_cell_with_its_label(tmp_path: Any) -> None:
    require_uring()
    out = tmp_path / "engines.svg"
    proc = bench("--direct=1", "--size=4M", "--runtime=0.1", f"--directory={tmp_path}",
                 f"--svg={out}", "--output-format=json")
    assert proc.returncode == 0, proc.stderr
    jobs = json.loads(proc.stdout)["jobs"]
    assert len(jobs) == 9
    root = ET.parse(out).getroot()
    assert root.tag == SVG + "svg"
    cells = [g for g in root.iter(SVG + "g") if g.get("class") == "cell"]
    assert [g.get("data-label") for g in cells] == [j["uring"]["engine"] for j in jobs]
    assert all(g.get("data-cache") == "O_DIRECT" for g in cells)
    widths: Dict[str, float] = {}
    for g, job in zip(cells, jobs):
        texts = ["".join(t.itertext()) for t in g.iter(SVG + "text")]
        assert texts[0] == job["uring"]["engine"]
        bars = [r for r in g.iter(SVG + "rect") if r.get("class") == "bar"]
        if job["error"]:
            assert bars == [] and "not run" in texts
            continue
        (bar,) = bars
        widths[job["jobname"]] = float(bar.get("width", "0"))
        assert fmt_rate(job["read"]["iops"]) + " IOPS" in texts[1]
    iops = {j["jobname"]: j["read"]["iops"] for j in jobs if not j["error"]}
    top = max(iops, key=lambda k: iops[k])
    for name, width in widths.items():  # one scale: bar lengths are the rates' ratios
        assert width / widths[top] == pytest.approx(iops[name] / iops[top], abs=0.01)
    headings = [t.text for t in root.iter(SVG + "text") if t.get("font-weight") == "bold"]
    assert "O_DIRECT" in headings and "page cache (buffered)" not in headings


def _measured(ios: int, runtime: float, writes: int = 0) -> Measurement:
    lat = array("q", [1000 + 10 * i for i in range(ios)])
    end = array("q", [int(runtime * 1e9 * i / ios) for i in range(ios)])
    wlat = array("q", [2000] * writes)
    wend = array("q", [int(runtime * 1e9 * i / max(writes, 1)) for i in range(writes)])
    m = Measurement(read=Direction(lat), write=Direction(wlat), bs=4096, iodepth=4,
                    runtime=runtime, usr=runtime / 2, sys=runtime / 4)
    m.read.end, m.write.end = end, wend
    return m


def test_svg_escapes_labels_and_splits_mixed_bars() -> None:
    inv = parse_args(["--ioengine=psync", "--rw=randrw", "--name=a<&>\"b", "--name=c"])
    results = [CellResult(c, clones=[_measured(3000, 1.0, writes=1000)])
               for c in plan_cells(inv)]
    root = ET.fromstring(chart(results, "t <&>"))
    cells = [g for g in root.iter(SVG + "g") if g.get("class") == "cell"]
    assert [g.get("data-label") for g in cells] == [f"a<&>\"b: {SYNC_LABEL}", f"c: {SYNC_LABEL}"]
    for g in cells:
        rects = list(g.iter(SVG + "rect"))
        assert len(rects) == 2  # the whole bar, its read part over it
        assert float(rects[1].get("width", "0")) == pytest.approx(
            0.75 * float(rects[0].get("width", "0")), abs=0.1)
        assert "(r 3.0k, w 1.0k)" in "".join(g.itertext())


# -- paths it will not use --------------------------------------------------------------------


@pytest.mark.parametrize("make_args,named", [
    (lambda t: ["--filename=/nonexistent-uring-dir/f", "--size=4M"], "/nonexistent-uring-dir"),
    (lambda t: [f"--filename={t}", "--size=4M"], "is a directory"),
    (lambda t: [f"--filename={t}"], "is a directory"),
    (lambda t: ["--filename=/sys/kernel/uring-bench-test", "--size=4M"], "cannot create it"),
    (lambda t: ["--directory=/proc"], "directory=/proc"),
    (lambda t: [f"--directory={t}/missing"], "not a directory"),
    (lambda t: [f"--output={t}/missing/out.txt"], "output="),
    (lambda t: [f"--output={t}"], "output="),
    (lambda t: [f"--svg={t}/missing/x.svg"], "svg="),
], ids=["missing-dir", "dir-as-file", "dir-as-file-no-size", "unwritable-dir", "proc-directory",
        "missing-directory", "output-missing-dir", "output-is-dir", "svg-missing-dir"])
def test_a_bad_path_is_one_line_and_exit_2(tmp_path: Any, make_args: Any, named: str) -> None:
    proc = bench("--ioengine=psync", "--runtime=0.1", *make_args(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("uring bench: error: ") and named in proc.stderr
    assert proc.stdout == ""
    assert not os.path.exists("/sys/kernel/uring-bench-test")
    assert [p for p in os.listdir(tmp_path) if p.startswith("uring-bench")] == []


# -- --version, --help, --output, output formats ---------------------------------------------


def test_version_of_the_command_and_of_bench() -> None:
    from uring.__main__ import version

    top = subprocess.run([sys.executable, "-m", "uring", "--version"], capture_output=True,
                         text=True, env=ENV, timeout=60)
    sub = bench("--version")
    assert top.returncode == sub.returncode == 0
    assert top.stdout.strip() == f"uring {version()}"
    assert sub.stdout.strip() == f"uring bench {version()}"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", version())


def test_help_lists_every_option() -> None:
    proc = bench("--help")
    assert proc.returncode == 0
    for opt in options.COMMAND_OPTIONS + options.JOB_OPTIONS:
        assert re.search(rf"^  --{re.escape(opt.name)}\b", proc.stdout, re.M), opt.name
        for alias in opt.aliases:
            assert f"--{alias}" in proc.stdout


def test_output_file_gets_what_stdout_would(tmp_path: Any) -> None:
    out = tmp_path / "run.txt"
    out.write_text("old contents\n")  # truncated, as fio does
    proc = bench("--ioengine=psync", "--size=4M", f"--output={out}",
                 "--output-format=normal,json+")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    text, doc = split_json(out.read_text())
    assert "old contents" not in text
    assert re.search(r"^sync \(psync: os\.preadv loop\)\s+buffered\s+\S+", text, re.M)
    assert text.rstrip().splitlines()[-1].startswith("1 cells run")
    (job,) = doc["jobs"]
    read = job["read"]
    assert read["total_ios"] == 1024
    bins = read["clat_ns"]["bins"]
    assert sum(bins.values()) == read["total_ios"]
    keys = [int(k) for k in bins]
    assert keys == sorted(keys)
    assert all(stats.plat_idx_to_val(stats.plat_val_to_idx(k)) == k for k in keys)
    assert keys[0] <= read["clat_ns"]["min"] * 1.02 and keys[-1] >= read["clat_ns"]["max"] * 0.98
    assert "bins" not in job["write"]["clat_ns"]  # an idle direction has none, as in fio
    assert "bins" not in read["lat_ns"]


@pytest.mark.parametrize("fmt,bad", [("json,normal", False), ("normal,terse", True),
                                     ("", True)])
def test_output_format_lists(fmt: str, bad: bool) -> None:
    proc = bench("--ioengine=psync", "--size=1M", f"--output-format={fmt}")
    if bad:
        assert proc.returncode == 2 and "output-format" in proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    text, doc = split_json(proc.stdout)
    assert "IOPS" in text and len(doc["jobs"]) == 1
    assert "bins" not in doc["jobs"][0]["read"]["clat_ns"]


# -- fio's per-interval samples, batch sizes and the disk -------------------------------------


def _disk_of_var_tmp() -> Optional[str]:
    return stats.disk_of("/var/tmp")


def test_interval_samples_batches_and_disk_util_on_a_2s_run(tmp_path: Any) -> None:
    """2 s of O_DIRECT random reads on io_uring: fio's 500 ms bandwidth and
    IOPS samples, the submit and completion batch sizes, and the disk's
    counters (/var/tmp is on a real disk here)."""
    require_uring()
    proc = bench("--ioengine=io_uring", "--direct=1", "--iodepth=8", "--size=4M",
                 "--runtime=2", "--time_based", "--directory=/var/tmp", "--output-format=json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    (job,) = doc["jobs"]
    read = job["read"]
    assert 3 <= read["bw_samples"] <= 4 and read["iops_samples"] == read["bw_samples"]
    assert 0 < read["bw_min"] <= read["bw_mean"] <= read["bw_max"]
    assert 0 < read["iops_min"] <= read["iops_mean"] <= read["iops_max"]
    assert read["bw_mean"] == pytest.approx(read["iops_mean"] * 4, rel=0.01)  # 4 KiB I/Os
    assert read["bw_mean"] == pytest.approx(read["bw"], rel=0.25)  # samples of the same run
    assert read["bw_dev"] >= 0 and read["iops_stddev"] >= 0
    assert 0 < read["bw_agg"] <= 100
    assert job["write"]["bw_samples"] == 0 and job["write"]["bw_agg"] == 0
    for key in ("iodepth_submit", "iodepth_complete"):
        dist = job[key]
        assert list(dist) == ["0", "4", "8", "16", "32", "64", ">=64"]
        assert sum(dist.values()) == pytest.approx(100.0, abs=0.5)
        assert dist["16"] == dist["32"] == dist["64"] == dist[">=64"] == 0  # iodepth 8
    disk = _disk_of_var_tmp()
    if disk is None:
        assert doc["disk_util"] == []
        return
    (util,) = doc["disk_util"]
    assert util["name"] == os.path.basename(disk)
    assert list(util) == ["name", "read_ios", "write_ios", "read_merges", "write_merges",
                          "read_ticks", "write_ticks", "in_queue", "util"]
    assert util["read_ios"] > 0  # O_DIRECT reads reach the disk
    assert 0 < util["util"] <= 100


def test_disk_util_is_empty_where_sys_does_not_say(tmp_path: Any) -> None:
    shm = "/dev/shm"
    if not os.path.isdir(shm) or stats.disk_of(shm) is not None:
        pytest.skip("no tmpfs at /dev/shm")
    proc = bench("--ioengine=psync", "--size=1M", f"--directory={shm}", "--output-format=json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["disk_util"] == []


@pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed (apt-get install fio)")
def test_json_plus_has_fios_fields(tmp_path: Any) -> None:
    """Field names and shapes against a real fio 3.33 json+ run of the same job."""
    target = tmp_path / "f"
    job = ["--name=x", f"--filename={target}", "--size=4M", "--rw=randrw", "--ioengine=psync",
           "--runtime=600ms", "--time_based"]
    fio = subprocess.run(["fio", *job, "--output-format=json+"], capture_output=True, text=True,
                         timeout=60)
    assert fio.returncode == 0, fio.stderr
    theirs = json.loads(fio.stdout[fio.stdout.index("{"):])
    proc = bench(*job, "--output-format=json+")
    assert proc.returncode == 0, proc.stderr
    ours = json.loads(proc.stdout)
    assert set(theirs) <= set(ours) <= set(theirs) | {"global options"}
    a, b = ours["jobs"][0], theirs["jobs"][0]
    assert set(a) - {"uring"} == set(b)
    for direction in ("read", "write"):
        assert list(a[direction]) == list(b[direction])
        for key in ("clat_ns", "lat_ns", "slat_ns"):
            assert list(a[direction][key]) == list(b[direction][key]), (direction, key)
        assert a[direction]["bw_samples"] >= 1 and b[direction]["bw_samples"] >= 1
        for k in b[direction]["clat_ns"]["bins"]:  # fio's bins are where ours would put them
            assert stats.plat_idx_to_val(stats.plat_val_to_idx(int(k))) == int(k)
    for key in ("iodepth_level", "iodepth_submit", "iodepth_complete"):
        assert list(a[key]) == list(b[key])
    if theirs["disk_util"] and ours["disk_util"]:
        assert list(ours["disk_util"][0]) == list(theirs["disk_util"][0])


# -- group_reporting ---------------------------------------------------------------------------


def test_group_reporting_sums_the_clones() -> None:
    if "group_reporting" not in {o.name for o in options.JOB_OPTIONS}:
        pytest.skip("group_reporting is not an option yet")
    common = ["--name=g", "--ioengine=psync", "--size=4M", "--numjobs=2"]
    proc = bench(*common, "--group_reporting", "--output-format=normal,json")
    assert proc.returncode == 0, proc.stderr
    text, doc = split_json(proc.stdout)
    (job,) = doc["jobs"]
    assert job["read"]["total_ios"] == 2 * 1024  # each clone did its own pass
    assert job["read"]["clat_ns"]["N"] == 2 * 1024
    assert len([line for line in text.splitlines() if line.startswith(SYNC_LABEL)]) == 1
    apart = json.loads(bench(*common, "--output-format=json").stdout)["jobs"]
    assert [j["read"]["total_ios"] for j in apart] == [1024, 1024]


def test_merge_clones_and_group_json_from_constructed_results() -> None:
    """Two clones of 1 s: the merged entry has both clones' I/Os and
    samples summed per interval (the group's bandwidth over time)."""
    inv = parse_args(["--ioengine=psync", "--name=g", "--numjobs=2"])
    (cell,) = plan_cells(inv)
    a, b = _measured(2000, 1.0), _measured(1000, 1.2)
    a.submit_hist, b.submit_hist = {1: 2000}, {1: 1000}
    merged = merge_clones([a, b])
    assert merged.read.ios == 3000 and len(merged.read.end) == 3000
    assert merged.runtime == 1.2 and merged.usr == pytest.approx(1.1)
    assert merged.submit_hist == {1: 3000}
    assert (a.read.ios, b.read.ios) == (2000, 1000)  # the clones are left as they were
    doc = fio_json([CellResult(cell, clones=[a, b])], [], "0")
    assert [j["read"]["bw_samples"] for j in doc["jobs"]] == [2, 2]
    # a's 2000 IOPS: 1000 I/Os in each 500 ms
    assert doc["jobs"][0]["read"]["iops_samples"] == 2
    assert doc["jobs"][0]["read"]["iops_mean"] == 2000
    assert doc["jobs"][0]["iodepth_submit"]["4"] == 100.0
    text = table([CellResult(cell, clones=[a, b])], "h", [])
    rows = [line for line in text.splitlines() if line.startswith(SYNC_LABEL)]
    assert len(rows) == 1 and columns(rows[0])[2] == fmt_rate(2000 / 1.0 + 1000 / 1.2)


# -- the statistics themselves -----------------------------------------------------------------


def test_interval_rates_follow_fio() -> None:
    ms = 1_000_000
    ends = [100 * ms] * 10 + [600 * ms] * 20 + [1200 * ms] * 5  # the last interval is partial
    bw, iops = stats.interval_rates(ends, 4096, 1300 * ms)
    assert iops == [20, 40] and bw == [80, 160]  # KiB/s; the 1200 ms I/Os are in no full interval
    bw, iops = stats.interval_rates([100 * ms] * 10 + [1200 * ms] * 5, 4096, 1500 * ms)
    assert iops == [20, 10]  # the empty 500-1000 ms interval is skipped, as fio does
    s = stats.sample_stats([20, 40])
    assert (s.min, s.max, s.mean, s.n) == (20, 40, 30.0, 2)
    assert s.dev == pytest.approx(14.142135, rel=1e-6)  # n - 1, as fio
    assert stats.interval_rates([1], 4096, 400 * ms) == ([], [])


def test_batch_distribution_and_bins() -> None:
    d = stats.batch_distribution({1: 5000, 4: 4000, 5: 999, 200: 1})
    assert d == {"0": 0.0, "4": 90.0, "8": 9.99, "16": 0.0, "32": 0.0, "64": 0.0, ">=64": 0.1}
    assert sum(stats.batch_distribution({}).values()) == 0
    assert stats.clat_bins([37632, 37700, 100, 100]) == {"100": 2, "37632": 2}
    for v in (0, 1, 127, 128, 129, 10**6, 10**10):
        mid = stats.plat_idx_to_val(stats.plat_val_to_idx(v))
        assert abs(mid - v) <= max(1, v / 64)
    assert stats.plat_val_to_idx(10**12) == 29 * 64 - 1  # past fio's last bin (~17 s): the last


def test_disk_util_deltas() -> None:
    before = stats.DiskSnapshot("vdz", (10, 5), (1, 2), (100, 50), 400, 1000)
    after = stats.DiskSnapshot("vdz", (110, 25), (3, 2), (300, 150), 900, 1700)
    assert stats.disk_util(before, after, 1000.0) == {
        "name": "vdz", "read_ios": 100, "write_ios": 20, "read_merges": 2, "write_merges": 0,
        "read_ticks": 200, "write_ticks": 100, "in_queue": 700, "util": 50.0}
    disk = _disk_of_var_tmp()
    if disk is not None:
        snap = stats.DiskSnapshot.read(disk)
        assert snap is not None and snap.name == os.path.basename(disk)
        assert not os.path.exists(os.path.join(disk, "partition"))  # the whole disk

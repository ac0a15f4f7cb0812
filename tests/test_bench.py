"""`python3 -m uring bench`: fio's options and JSON, every engine, cleanup.

Each engine runs for real in a subprocess on a 16 MiB file (a job that is
not time based ends once it has moved ``size`` bytes, so the byte counts
are exact).  No assertion depends on how fast anything is.
"""

from __future__ import annotations

import io
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

import pytest
from conftest import require_uring

from uring.bench import options, stats
from uring.bench.options import UsageError, parse_args, parse_size, parse_time
from uring.bench.report import _iodepth_level

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 16 << 20

# fio 3.33's keys (`fio --output-format=json`, recorded on this machine): what
# we emit must be among them, so that fio tooling finds what it expects.
FIO_TOP = {"fio version", "timestamp", "timestamp_ms", "time", "global options", "jobs",
           "disk_util"}
FIO_JOB = {"jobname", "groupid", "error", "eta", "elapsed", "job options", "read", "write",
           "trim", "sync", "job_runtime", "usr_cpu", "sys_cpu", "ctx", "majf", "minf",
           "iodepth_level", "iodepth_submit", "iodepth_complete", "latency_ns", "latency_us",
           "latency_ms", "latency_depth", "latency_target", "latency_percentile",
           "latency_window"}
FIO_DIR = {"io_bytes", "io_kbytes", "bw_bytes", "bw", "iops", "runtime", "total_ios",
           "short_ios", "drop_ios", "slat_ns", "clat_ns", "lat_ns", "bw_min", "bw_max",
           "bw_agg", "bw_mean", "bw_dev", "bw_samples", "iops_min", "iops_max", "iops_mean",
           "iops_stddev", "iops_samples"}
FIO_STAT = {"min", "max", "mean", "stddev", "N", "percentile"}
FIO_PCT = {"1.000000", "5.000000", "10.000000", "20.000000", "30.000000", "40.000000",
           "50.000000", "60.000000", "70.000000", "80.000000", "90.000000", "95.000000",
           "99.000000", "99.500000", "99.900000", "99.950000", "99.990000"}
FIO_LAT_NS = {"2", "4", "10", "20", "50", "100", "250", "500", "750", "1000"}
FIO_LAT_MS = FIO_LAT_NS | {"2000", ">=2000"}
FIO_DEPTH = {"1", "2", "4", "8", "16", "32", ">=64"}

REQUIRED_DIR = {"io_bytes", "io_kbytes", "bw_bytes", "bw", "iops", "runtime", "total_ios",
                "short_ios", "drop_ios", "slat_ns", "clat_ns", "lat_ns"}


def bench(*args: str, timeout: float = 120, stderr: Any = subprocess.PIPE,
          **popen: Any) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "uring", "bench", *args], stdout=subprocess.PIPE,
                          stderr=stderr, text=True, env=env, timeout=timeout, **popen)


def bench_json(*args: str) -> Dict[str, Any]:
    proc = bench(*args, "--output-format=json")
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def check_stats(obj: Dict[str, Any], n: int, percentiles: bool) -> None:
    assert set(obj) <= FIO_STAT
    assert {"min", "max", "mean", "stddev", "N"} <= set(obj)
    assert obj["N"] == n
    if n:
        assert 0 < obj["min"] <= obj["mean"] <= obj["max"]
    if percentiles and n:
        pct = obj["percentile"]
        assert set(pct) == FIO_PCT
        values = [pct[k] for k in sorted(pct, key=float)]
        assert values == sorted(values)  # order statistics never go down
        assert obj["min"] <= values[0] and values[-1] <= obj["max"]


def check_direction(d: Dict[str, Any], bs: int) -> None:
    assert REQUIRED_DIR <= set(d) <= FIO_DIR
    assert d["io_bytes"] == d["total_ios"] * bs
    assert d["io_kbytes"] == d["io_bytes"] >> 10
    assert d["bw"] == d["bw_bytes"] // 1024
    assert d["short_ios"] == 0 and d["drop_ios"] == 0
    check_stats(d["clat_ns"], d["total_ios"], percentiles=True)
    check_stats(d["lat_ns"], d["total_ios"], percentiles=False)
    check_stats(d["slat_ns"], 0, percentiles=False)
    if d["total_ios"]:
        assert d["iops"] > 0 and d["bw_bytes"] > 0
        assert d["runtime"] >= 0
        # the rates are the counts over one runtime
        assert d["bw_bytes"] == pytest.approx(d["iops"] * bs, rel=1e-6, abs=1)
    else:
        assert d["iops"] == 0 and d["runtime"] == 0


def check_document(doc: Dict[str, Any]) -> List[Dict[str, Any]]:
    assert {"fio version", "timestamp", "time", "global options", "jobs"} <= set(doc) <= FIO_TOP
    assert isinstance(doc["timestamp"], int)
    for job in doc["jobs"]:
        ours = set(job) - {"uring"}
        assert ours <= FIO_JOB, ours - FIO_JOB
        assert {"jobname", "groupid", "error", "job options", "read", "write", "trim", "usr_cpu",
                "sys_cpu", "ctx", "majf", "minf", "iodepth_level", "latency_ns", "latency_us",
                "latency_ms"} <= ours
        assert set(job["latency_ns"]) == FIO_LAT_NS and set(job["latency_us"]) == FIO_LAT_NS
        assert set(job["latency_ms"]) == FIO_LAT_MS
        assert set(job["iodepth_level"]) == FIO_DEPTH
    return list(doc["jobs"])


def check_job(job: Dict[str, Any], bs: int, size: Optional[int]) -> None:
    assert job["error"] == 0, job["uring"]["error_text"]
    for name in ("read", "write", "trim"):
        check_direction(job[name], bs)
    rd, wr = job["read"], job["write"]
    assert rd["total_ios"] + wr["total_ios"] > 0
    if size is not None:  # not time based: exactly one pass over the region
        assert rd["io_bytes"] + wr["io_bytes"] == size
    assert job["trim"]["total_ios"] == 0
    total = sum(job["latency_ns"].values()) + sum(job["latency_us"].values()) \
        + sum(job["latency_ms"].values())
    assert total == pytest.approx(100.0)
    assert sum(job["iodepth_level"].values()) == pytest.approx(100.0)
    assert job["usr_cpu"] + job["sys_cpu"] > 0


# -- every engine, both cache modes ---------------------------------------------------------

ENGINE_CASES = [
    ("psync", [], 0), ("psync", [], 1), ("pvsync", [], 0),
    ("threads", [], 0), ("threads", [], 1),
    ("libaio", [], 0), ("libaio", [], 1), ("native", [], 1),
    ("io_uring", [], 0), ("io_uring", [], 1),
    ("io_uring", ["--fixedbufs"], 0), ("io_uring", ["--fixedbufs"], 1),
    ("io_uring", ["--registerfiles"], 0), ("io_uring", ["--registerfiles"], 1),
    ("io_uring", ["--sqthread_poll"], 0), ("io_uring", ["--sqthread_poll=1"], 1),
]

LABELS = {"psync": "sync", "pvsync": "sync", "threads": "threads", "libaio": "native",
          "native": "native", "io_uring": "io_uring"}


@pytest.mark.parametrize("engine,flags,direct", ENGINE_CASES,
                         ids=[f"{e}{''.join(f)}-direct{d}" for e, f, d in ENGINE_CASES])
def test_json_for_each_engine(engine: str, flags: List[str], direct: int) -> None:
    if engine == "io_uring":
        require_uring()
    doc = bench_json(f"--ioengine={engine}", *flags, f"--direct={direct}", "--rw=randread",
                     "--iodepth=8", "--runtime", "1", "--size", "16M", "--invalidate=0")
    (job,) = check_document(doc)
    check_job(job, 4096, SIZE)
    assert job["read"]["total_ios"] == SIZE // 4096 and job["write"]["total_ios"] == 0
    assert job["uring"]["engine"].startswith(LABELS[engine])
    assert job["uring"]["cache"] == ("O_DIRECT" if direct else "buffered")
    for flag, label in (("fixedbufs", "fixed buffers"), ("registerfiles", "fixed files"),
                        ("sqthread_poll", "sqpoll")):
        assert (label in job["uring"]["engine"]) == any(flag in f for f in flags)
    expected_depth = "1" if engine in ("psync", "pvsync") else "8"
    assert job["iodepth_level"][expected_depth] == 100.0
    assert doc["global options"]["ioengine"] == engine
    if not direct:
        assert job["uring"]["page_cache_residency"] >= 0.99


SEQ_CASES = [
    ("read", "psync", 0), ("read", "io_uring", 1), ("read", "threads", 0),
    ("write", "psync", 1), ("write", "io_uring", 0), ("write", "libaio", 1),
]


@pytest.mark.parametrize("rw,engine,direct", SEQ_CASES,
                         ids=[f"{rw}-{e}-direct{d}" for rw, e, d in SEQ_CASES])
def test_json_for_sequential_patterns(rw: str, engine: str, direct: int) -> None:
    """rw=read and rw=write: one pass over the region, every byte of it
    moved in the named direction and none in the other."""
    if engine == "io_uring":
        require_uring()
    doc = bench_json(f"--ioengine={engine}", f"--rw={rw}", f"--direct={direct}", "--iodepth=8",
                     "--runtime", "5", "--size", "16M")
    (job,) = check_document(doc)
    check_job(job, 4096, SIZE)
    moved, idle = (job["read"], job["write"]) if rw == "read" else (job["write"], job["read"])
    assert moved["io_bytes"] == SIZE and moved["total_ios"] == SIZE // 4096
    assert idle["io_bytes"] == 0 and idle["total_ios"] == 0
    assert doc["global options"]["rw"] == rw
    assert job["uring"]["engine"].startswith(LABELS[engine])
    assert job["uring"]["cache"] == ("O_DIRECT" if direct else "buffered")


def test_hipri_runs_or_says_why_not() -> None:
    """IOPOLL: this machine's disk has no poll queues, and the block layer's
    EOPNOTSUPP explanation is what the job reports (fio's "error")."""
    require_uring()
    proc = bench("--ioengine=io_uring", "--hipri", "--direct=1", "--size=16M", "--runtime=1",
                 "--output-format=json")
    (job,) = check_document(json.loads(proc.stdout))
    if job["error"]:
        assert job["error"] == 95  # EOPNOTSUPP
        assert proc.returncode == 1
        assert "poll queues" in job["uring"]["error_text"]
        assert "poll queues" in proc.stderr
    else:
        assert proc.returncode == 0
        check_job(job, 4096, SIZE)


def test_mixed_reads_and_writes_add_up() -> None:
    require_uring()
    doc = bench_json("--ioengine=io_uring", "--rw=randrw", "--rwmixread=70", "--bs=8k",
                     "--iodepth=4", "--size=16M", "--runtime=1")
    (job,) = check_document(doc)
    check_job(job, 8192, SIZE)
    reads, writes = job["read"]["total_ios"], job["write"]["total_ios"]
    assert reads > writes > 0  # 70% reads over 2048 I/Os


def test_numjobs_clones_are_separate_jobs() -> None:
    doc = bench_json("--name=clone", "--ioengine=threads", "--numjobs=2", "--iodepth=4",
                     "--size=16M", "--runtime=1")
    jobs = check_document(doc)
    assert [j["jobname"] for j in jobs] == ["clone", "clone"]
    assert [j["uring"]["clone"] for j in jobs] == [0, 1]
    for job in jobs:
        check_job(job, 4096, SIZE)  # each clone does its own pass, as in fio
        assert job["job options"]["numjobs"] == "2"


def test_time_based_runs_past_one_pass() -> None:
    """time_based: the job goes round the file until the runtime is over."""
    doc = bench_json("--ioengine=psync", "--size=1M", "--runtime=0.3", "--time_based")
    (job,) = check_document(doc)
    check_job(job, 4096, None)
    assert job["read"]["io_bytes"] > 1 << 20
    assert job["read"]["runtime"] >= 300


# -- the matrix -------------------------------------------------------------------------------


def test_matrix_table_has_every_engine_in_both_modes() -> None:
    require_uring()
    proc = bench("--size=16M", "--runtime=0.2")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    rows = [line for line in out.splitlines() if "buffered" in line or "O_DIRECT" in line]
    for label in ("sync (os.preadv loop)", "threads", "native (Linux AIO)", "io_uring",
                  "io_uring + fixed files", "io_uring + fixed buffers", "io_uring + sqpoll",
                  "io_uring + iopoll"):
        for cache in ("buffered", "O_DIRECT"):
            assert any(r.startswith(label + " ") and f" {cache} " in r + " " for r in rows), \
                (label, cache, out)
    header = next(line for line in out.splitlines() if line.startswith("engine"))
    for col in ("IOPS", "MiB/s", "p50 us", "p99 us", "p99.9 us", "usr %", "sys %", "vs sync",
                "vs threads"):
        assert col in header
    sync_rows = [r for r in rows if r.startswith("sync (os.preadv loop)")]
    assert all(r.split()[-2] == "1.00x" for r in sync_rows)  # the loop against itself
    # iopoll with buffered I/O is refused by the block layer, and says why
    assert "iopoll needs O_DIRECT" in out
    iopoll_direct = next(r for r in rows if r.startswith("io_uring + iopoll") and "O_DIRECT" in r)
    if "not run" in iopoll_direct:
        assert "EOPNOTSUPP" in out or "poll queues" in out
    assert "page cache: warmed and checked with mincore" in out


def test_matrix_json_lists_every_cell() -> None:
    require_uring()
    doc = bench_json("--size=16M", "--runtime=0.2", "--direct=1", "--rw=randwrite")
    jobs = check_document(doc)
    names = [j["jobname"] for j in jobs]
    assert names == [f"bench/{s}/direct" for s in
                     ("sync", "threads", "tpe", "native", "io_uring", "io_uring+registerfiles",
                      "io_uring+fixedbufs", "io_uring+sqthread_poll", "io_uring+hipri")]
    assert [j["groupid"] for j in jobs] == list(range(9))
    for job in jobs:
        if "hipri" in job["jobname"] and job["error"]:
            continue
        check_job(job, 4096, None)
        assert job["read"]["total_ios"] == 0 and job["write"]["total_ios"] > 0
        assert job["job options"]["time_based"] == "1"


def test_default_run_plans_eighteen_cells_on_a_1g_file_in_var_tmp(monkeypatch: Any) -> None:
    """No options at all: 9 engines x (buffered, O_DIRECT), 2 s each (at
    most 40 s of measuring), on one temporary 1 GiB file in /var/tmp.  The
    file's creation is replaced by a record of what would be made."""
    from uring.bench import runner
    from uring.bench.plan import plan_cells

    inv = parse_args([])
    cells = plan_cells(inv)
    slugs = ["sync", "threads", "tpe", "native", "io_uring", "io_uring+registerfiles",
             "io_uring+fixedbufs", "io_uring+sqthread_poll", "io_uring+hipri"]
    assert len(cells) == 18
    assert [(c.slug, c.job.direct) for c in cells] == \
        [(s, d) for d in (False, True) for s in slugs]
    assert len({c.label for c in cells}) == 9
    assert sum(c.job.runtime for c in cells) <= 40
    assert all(c.job.time_based and c.job.iodepth == 32 for c in cells)
    assert all(c.job.rw == "randread" and c.job.bs == 4096 for c in cells)

    made: List[Any] = []
    monkeypatch.setattr(runner, "make_file", lambda path, size: made.append((path, size)))
    monkeypatch.setattr(runner, "file_size", lambda path: dict(made)[path])
    workspace = runner.Workspace()
    try:
        workspace.prepare(cells)
        (path, size), = made  # one file, shared by every cell
        scratch = os.path.dirname(path)
        assert os.path.dirname(scratch) == "/var/tmp" and os.path.isdir(scratch)
        assert size == 1 << 30
        assert all(c.path == path and c.size == 1 << 30 for c in cells)
    finally:
        workspace.close()
    assert not os.path.exists(scratch)


def test_normal_exit_removes_the_temporary_file(tmp_path: Any) -> None:
    proc = bench(f"--directory={tmp_path}", "--ioengine=psync", "--size=1M", "--runtime=0.1",
                 "--output-format=json")
    assert proc.returncode == 0, proc.stderr
    (job,) = check_document(json.loads(proc.stdout))
    check_job(job, 4096, 1 << 20)
    used = job["uring"]["filename"]
    assert os.path.dirname(os.path.dirname(used)) == str(tmp_path)  # it was made there
    assert f"creating {used}" in proc.stderr
    assert os.listdir(tmp_path) == []


def _measured(ios: int, runtime: float) -> Any:
    from array import array

    from uring.bench.workload import Direction, Measurement

    lat = array("q", [1000 + 10 * i for i in range(ios)])
    return Measurement(read=Direction(lat), write=Direction(), bs=4096, iodepth=32,
                       runtime=runtime, usr=runtime / 2, sys=runtime / 4)


def test_ratio_columns_are_each_rows_iops_over_sync_and_threads() -> None:
    """The matrix table, from constructed results: each engine's rate over
    the sync loop's and over threads' in the same cache mode."""
    from uring.bench.plan import CellResult, plan_cells
    from uring.bench.report import table

    cells = plan_cells(parse_args(["--size=16M"]))
    # (I/Os, seconds) per cell: different rates in each cache mode, so that a
    # ratio taken against the other mode's baseline would show
    work = {"sync": (9000, 1.0), "threads": (1600, 0.8), "tpe": (400, 1.0), "native": (1500, 1.0),
            "io_uring": (2600, 1.25), "io_uring+registerfiles": (2700, 1.0),
            "io_uring+fixedbufs": (2900, 1.0), "io_uring+sqthread_poll": (3100, 1.0),
            "io_uring+hipri": (700, 0.5)}
    results = []
    iops: Dict[Any, float] = {}
    for c in cells:
        ios, seconds = work[c.slug]
        if c.job.direct:
            ios = ios // 3 + 17
        results.append(CellResult(c, clones=[_measured(ios, seconds)]))
        iops[(c.slug, c.job.direct)] = ios / seconds
    text = table(results, "header", [])
    lines = text.splitlines()
    head = next(line for line in lines if line.startswith("engine"))
    assert head.split()[-4:] == ["vs", "sync", "vs", "threads"]
    for c in cells:
        cache = "O_DIRECT" if c.job.direct else "buffered"
        (row,) = [line for line in lines if line.startswith(c.label + "  ")
                  and line[len(c.label):].split()[0] == cache]
        vs_sync, vs_threads = row.split()[-2:]
        mine = iops[(c.slug, c.job.direct)]
        assert vs_sync == f"{mine / iops[('sync', c.job.direct)]:.2f}x", row
        assert vs_threads == f"{mine / iops[('threads', c.job.direct)]:.2f}x", row
        if c.slug == "threads":
            assert vs_threads == "1.00x"
        if c.slug == "sync":
            assert vs_sync == "1.00x"


# -- fio's language ---------------------------------------------------------------------------


def test_job_file_with_global_and_two_sections_runs_both(tmp_path: Any) -> None:
    path = tmp_path / "two.fio"
    path.write_text("; two jobs sharing [global]\n"
                    "[global]\nioengine=psync\nsize=16M\nruntime=5\ndirect=1\n\n"
                    "[first]\nrw=randread\n\n"
                    "# the second writes, with a bigger block\n"
                    "[second]\nrw=randwrite\nbs=8k\nbuffered=1\n")
    doc = bench_json(str(path))
    jobs = check_document(doc)
    assert [j["jobname"] for j in jobs] == ["first", "second"]
    assert [j["groupid"] for j in jobs] == [0, 1]
    assert doc["global options"] == {"ioengine": "psync", "size": "16M", "runtime": "5",
                                     "direct": "1"}
    assert jobs[0]["job options"] == {"rw": "randread"}
    assert jobs[1]["job options"] == {"rw": "randwrite", "bs": "8k", "buffered": "1"}
    check_job(jobs[0], 4096, SIZE)
    check_job(jobs[1], 8192, SIZE)
    assert jobs[0]["read"]["total_ios"] == SIZE // 4096 and jobs[0]["write"]["total_ios"] == 0
    assert jobs[1]["write"]["total_ios"] == SIZE // 8192 and jobs[1]["read"]["total_ios"] == 0
    assert jobs[0]["uring"]["cache"] == "O_DIRECT"
    assert jobs[1]["uring"]["cache"] == "buffered"  # the job's buffered=1 beats [global]


def test_unsupported_option_in_a_job_file_is_refused_by_name(tmp_path: Any) -> None:
    path = tmp_path / "bad.fio"
    path.write_text("[global]\nioengine=psync\nsize=16M\n\n[job]\nrw=randread\nrate_iops=2\n")
    proc = bench(str(path))
    assert proc.returncode == 2
    assert "'rate_iops'" in proc.stderr and "bad.fio:7" in proc.stderr
    assert proc.stdout == ""
    path.write_text("[global]\nverify_backlog=16\n\n[job]\nrw=randread\n")
    proc = bench(str(path))
    assert proc.returncode == 2 and "'verify_backlog'" in proc.stderr


@pytest.mark.parametrize("args,named", [
    (["--rate_iops=100"], "--rate_iops"),
    (["--ioengine=io_uring", "--iodepth_low", "2"], "--iodepth_low"),
    (["--ioengine=posixaio"], "ioengine=posixaio"),
    (["--rw=trim"], "rw=trim"),
    (["--ioengine=libaio", "--fixedbufs"], "fixedbufs"),
    (["--output-format=terse"], "output-format=terse"),
    (["-q"], "-q"),
])
def test_unsupported_command_line_options_are_refused_by_name(args: List[str], named: str) -> None:
    proc = bench(*args)
    assert proc.returncode == 2
    assert named in proc.stderr
    assert proc.stdout == ""


def test_help_lists_the_fio_options() -> None:
    proc = bench("--help")
    assert proc.returncode == 0
    for opt in options.JOB_OPTIONS:
        assert f"--{opt.name}" in proc.stdout


def test_command_line_layering_follows_fio(tmp_path: Any) -> None:
    """defaults < command line before --name < a job file's [global] < the job."""
    path = tmp_path / "j.fio"
    path.write_text("[global]\nbs=8k\n\n[a]\n\n[b]\nbs=16k\niodepth=4\n")
    inv = parse_args(["--bs=2k", "--iodepth", "2", "--ioengine=threads", str(path),
                      "--name=c", "--rw", "randwrite", "--direct=1"])
    a, b, c = inv.jobs
    assert (a.name, a.bs, a.iodepth, a.ioengine) == ("a", 8192, 2, "threads")
    assert (b.bs, b.iodepth) == (16384, 4)
    assert (c.name, c.bs, c.rw, c.direct, c.engine) == ("c", 2048, "randwrite", True, "threads")
    assert dict(inv.global_raw)["bs"] == "8k"  # the file's [global] over the command line
    assert dict(c.raw) == {"name": "c", "rw": "randwrite", "direct": "1"}


def test_option_values() -> None:
    assert parse_size("4k") == 4096 and parse_size("16M") == 16 << 20
    assert parse_size("1GiB") == 1 << 30 and parse_size("512") == 512
    assert parse_time("2") == 2.0 and parse_time("500ms") == 0.5 and parse_time("1m") == 60.0
    inv = parse_args(["--ioengine=libaio", "--fixedbufs=0", "--buffered=0", "--rwmixwrite=30",
                      "--rw=readwrite"])
    (job,) = inv.jobs
    assert job.engine == "native" and job.direct and not job.fixedbufs
    assert job.rw == "rw" and job.reads == 70
    assert parse_args(["--ioengine=pvsync"]).jobs[0].engine == "sync"
    for bad in (["--bs=4q"], ["--runtime=soon"], ["--iodepth=0"], ["--direct=2"],
                ["--size=1k", "--bs=4k"], ["--time_based", "--runtime=0"]):
        with pytest.raises(UsageError):
            parse_args(bad)


# -- statistics --------------------------------------------------------------------------------


def test_percentiles_are_nearest_rank_and_buckets_are_fios() -> None:
    samples = list(range(1, 1001))  # 1..1000 ns
    s = stats.LatencySummary(samples)
    assert (s.min, s.max, s.n) == (1, 1000, 1000)
    assert s.mean == 500.5
    assert s.stddev == pytest.approx(288.8194361, rel=1e-9)
    assert s.percentile(50) == 500 and s.percentile(99) == 990 and s.percentile(99.9) == 999
    assert s.percentiles()["99.990000"] == 1000
    buckets = stats.latency_buckets(stats.LatencySummary([1, 3, 1500, 1_500_000, 3_000_000_000]))
    assert buckets["latency_ns"]["2"] == 20.0 and buckets["latency_ns"]["4"] == 20.0
    assert buckets["latency_us"]["2"] == 20.0  # [1, 2) µs
    assert buckets["latency_ms"]["2"] == 20.0 and buckets["latency_ms"][">=2000"] == 20.0
    assert _iodepth_level(32)["32"] == 100.0 and _iodepth_level(100)[">=64"] == 100.0
    assert _iodepth_level(3)["2"] == 100.0


# -- the terminal, and Ctrl-C -------------------------------------------------------------------


def test_progress_line_only_on_a_terminal() -> None:
    args = ["--ioengine=psync", "--size=1M", "--runtime=0.8", "--time_based"]
    plain = bench(*args)
    assert plain.returncode == 0 and "\x1b[K" not in plain.stderr
    master, slave = pty.openpty()
    try:
        proc = bench(*args, stderr=slave)
        os.close(slave)
        slave = -1
        seen = b""
        while select.select([master], [], [], 0.5)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert proc.returncode == 0
    assert b"\r\x1b[K[1/1] sync (psync: os.preadv loop), buffered:" in seen
    assert b"k IOPS" in seen
    assert "IOPS" in proc.stdout  # the results themselves go to stdout


@pytest.mark.parametrize("engine", [["--ioengine=io_uring", "--iodepth=16"],
                                    ["--ioengine=threads", "--numjobs=2"]])
def test_ctrl_c_removes_the_temporary_file(tmp_path: Any, engine: List[str]) -> None:
    if "--ioengine=io_uring" in engine:
        require_uring()
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uring", "bench", f"--directory={tmp_path}", "--size=32M",
         "--runtime=60", "--time_based", *engine],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        # a shell may have started us with SIGINT ignored, which a child inherits
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 30
        made: List[str] = []
        while time.monotonic() < deadline and not made:
            made = [os.path.join(d, f) for d, _, files in os.walk(tmp_path) for f in files]
            time.sleep(0.05)
        assert made, "the benchmark never created its file"
        time.sleep(1.0)  # into the timed loop (32 MiB is laid out and warmed well before)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert os.listdir(tmp_path) == []
    assert "Traceback" not in err


@pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed (apt-get install fio)")
def test_keys_match_a_real_fio_run(tmp_path: Any) -> None:
    """Whatever we emit, fio 3.x emits too, at the same place."""
    target = tmp_path / "f"
    fio = subprocess.run(["fio", "--name=x", f"--filename={target}", "--size=4M", "--rw=randread",
                          "--ioengine=psync", "--output-format=json"],
                         capture_output=True, text=True, timeout=120)
    assert fio.returncode == 0, fio.stderr
    theirs = json.loads(fio.stdout[fio.stdout.index("{"):])
    ours = bench_json("--name=x", f"--filename={target}", "--size=4M", "--rw=randread",
                      "--ioengine=psync")

    def compare(a: Dict[str, Any], b: Dict[str, Any], where: str) -> None:
        for key, value in a.items():
            if key in ("uring", "percentile", "job options", "global options"):
                continue
            assert key in b, f"{where}{key}"
            if isinstance(value, dict):
                compare(value, b[key], f"{where}{key}.")

    compare({k: v for k, v in ours.items() if k not in ("jobs", "global options")}, theirs, "")
    compare(ours["jobs"][0], theirs["jobs"][0], "jobs[0].")
    assert set(ours["jobs"][0]["read"]["clat_ns"]["percentile"]) == \
        set(theirs["jobs"][0]["read"]["clat_ns"]["percentile"])


def test_a_cache_too_small_for_the_file_is_reported(tmp_path: Any, monkeypatch: Any) -> None:
    """When mincore says the warmed file did not stay resident, the run says
    so (the buffered numbers would be the disk's)."""
    from uring.bench import runner
    from uring.bench.plan import plan_cells

    path = tmp_path / "f"
    inv = parse_args(["--ioengine=psync", f"--filename={path}", "--size=64k", "--invalidate=0"])
    (cell,) = plan_cells(inv)
    runner.Workspace().prepare([cell])
    real = runner.ensure_hot(cell.path, cell.size)
    assert real == 1.0  # 64 KiB just read: resident, and mincore says so
    monkeypatch.setattr(runner, "ensure_hot", lambda p, s: 0.42)
    notes: List[str] = []
    result = runner.run_cell(0, cell, runner.ProgressLine(io.StringIO(), 1), notes)
    assert result.residency == 0.42
    assert len(notes) == 1 and "only 42%" in notes[0] and "use a smaller --size" in notes[0]
    assert result.clones[0].read.ios == 16  # it still ran

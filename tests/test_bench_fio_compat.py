"""`uring bench` against fio 3.33 where they used to part ways: the
read/write mix of ``rw``/``randrw`` over a small region, a
``group_reporting`` entry's sums, the "job options" of bare flags, and an
empty ``--write_bw_log=``.

Real files (a few MiB under pytest's tmp_path), runs of at most 1.2 s.
Where fio is installed the same job runs under fio and the fields are
compared; without it that comparison is skipped, with the reason.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from array import array
from typing import Any, Dict, List, Sequence

import pytest
from conftest import require_uring

from uring.bench import schedule
from uring.bench.options import parse_args
from uring.bench.plan import CellResult, plan_cells
from uring.bench.report import fio_json
from uring.bench.workload import Direction, Measurement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT)
FIO = shutil.which("fio")
NO_FIO = "fio is not installed (apt-get install fio): the comparison with fio is skipped"


def bench(*args: str, cwd: Any = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uring", "bench", *args], capture_output=True,
                          text=True, env=ENV, timeout=120, cwd=cwd)


def bench_json(*args: str, cwd: Any = None) -> Dict[str, Any]:
    proc = bench(*args, "--output-format=json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def fio_json_of(*args: str, cwd: Any = None) -> Dict[str, Any]:
    assert FIO is not None
    proc = subprocess.run([FIO, *args, "--output-format=json"], capture_output=True, text=True,
                          timeout=120, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout[proc.stdout.index("{"):]))


def read_share(job: Dict[str, Any]) -> float:
    r, w = job["read"]["total_ios"], job["write"]["total_ios"]
    return float(r / (r + w))


# -- 1. the read/write mix is drawn per I/O, for the whole run -------------------------------


MIXED = [
    ["--rw=rw", "--bs=256k"],  # 16 blocks: the schedule used to be 16 draws, repeated
    ["--rw=randrw", "--bs=256k"],  # the random map's 16 blocks, one draw each
    ["--rw=rw", "--bsrange=64k-256k"],
    ["--rw=randrw", "--bsrange=64k-256k"],
]


@pytest.mark.parametrize("pattern", MIXED, ids=lambda p: " ".join(p))
def test_schedule_read_share_converges_to_rwmixread(pattern: List[str]) -> None:
    """What a long time_based run on a 4 MiB region issues (item k of the
    schedule, k modulo its period) is a read 60% of the time with
    rwmixread=60, for every seed, not the share of one short pass's draws;
    the same seed gives the same schedule (randseed/randrepeat)."""
    (job,) = parse_args(["--ioengine=psync", "--size=4M", "--rwmixread=60", "--time_based",
                         "--runtime=1", *pattern]).jobs
    n = 20000
    for seed in range(1, 7):
        s = schedule.build(job, 4 << 20, 0, seed)
        assert s.ops is not None
        ops = s.ops
        reads = sum(1 for k in range(n) if ops[k % s.period] == 0)
        assert abs(reads / n - 0.60) < 0.015, (seed, reads / n, s.period)
        again = schedule.build(job, 4 << 20, 0, seed)
        assert again.ops == s.ops and list(again.offs) == list(s.offs)
    other = schedule.build(job, 4 << 20, 0, 2)
    assert other.ops != schedule.build(job, 4 << 20, 0, 1).ops


def test_schedule_rw_keeps_each_direction_sequential() -> None:
    """rw: reads and writes each go through the region in order from its
    start, wrapping at its end on their own, whatever the mix draws."""
    (job,) = parse_args(["--ioengine=psync", "--size=1M", "--rw=rw", "--rwmixread=60",
                         "--bs=64k", "--time_based", "--runtime=1", "--offset=64k"]).jobs
    s = schedule.build(job, 1 << 20, 65536, 7)
    assert s.ops is not None and s.period >= 1 << 16
    for w in (0, 1):
        offs = [s.offs[k] for k in range(s.period) if s.ops[k] == w]
        assert offs == [65536 + (i % 16) * 65536 for i in range(len(offs))]


@pytest.mark.parametrize("engine", ["psync", "io_uring"])
def test_rw_run_read_share_is_rwmixread_like_fio(tmp_path: Any, engine: str) -> None:
    """A 1 s time_based rw run, rwmixread=60, bs=256k on a 4 MiB file
    (the tester's repro: 0.50/0.63/0.75/0.75 for randseed 1-4 before):
    thousands of I/Os, a read share within 0.04 of 0.60, as fio's."""
    if engine == "io_uring":
        require_uring()
    target = tmp_path / "mix.img"
    job = ["--name=m", f"--filename={target}", "--size=4M", "--bs=256k", "--rw=rw",
           "--rwmixread=60", f"--ioengine={engine}", "--runtime=1", "--time_based"]
    shares = []
    for seed in (1, 3, 4):
        (ours,) = bench_json(*job, f"--randseed={seed}")["jobs"]
        total = ours["read"]["total_ios"] + ours["write"]["total_ios"]
        assert total >= 1500, total
        shares.append(read_share(ours))
    assert all(abs(s - 0.60) < 0.04 for s in shares), shares
    if FIO is None:
        pytest.skip(NO_FIO)
    (theirs,) = fio_json_of(*job, "--randseed=3")["jobs"]
    assert abs(read_share(theirs) - 0.60) < 0.04
    assert abs(read_share(theirs) - shares[1]) < 0.05, (read_share(theirs), shares)


# -- 2. group_reporting sums the clones as fio's sum_thread_stats -------------------------


def _clone(rate: Sequence[int], runtime: float, usr: float) -> Measurement:
    """A clone that completed rate[i] reads in each 500 ms interval i."""
    lat, end = array("q"), array("q")
    for i, count in enumerate(rate):
        for j in range(count):
            lat.append(1000)
            end.append(i * 500_000_000 + j * (500_000_000 // count))
    m = Measurement(read=Direction(lat, end), write=Direction(), bs=4096, iodepth=1,
                    runtime=runtime, usr=usr, sys=usr / 2)
    m.read.bytes = len(lat) * 4096
    m.read.runtime = runtime
    return m


def test_group_entry_sums_like_fio_from_constructed_clones() -> None:
    """Three clones of 1.2 s, two 500 ms samples each: the group's
    job_runtime is their sum, its CPU shares their CPU time over that sum,
    its bandwidth/IOPS min, max, mean and sample count the clones' added
    up, the deviation sqrt(sum S / (N - 1)) (fio's pure_sum), and each
    direction's runtime the longest."""
    inv = parse_args(["--ioengine=psync", "--name=g", "--numjobs=3", "--group_reporting",
                      "--runtime=1200ms", "--time_based"])
    (cell,) = plan_cells(inv)
    clones = [_clone([100, 300], 1.2, 0.3), _clone([200, 200], 1.2, 0.6),
              _clone([50, 150], 1.25, 0.9)]
    (job,) = fio_json([CellResult(cell, clones=clones)], [], "0")["jobs"]
    assert job["job_runtime"] == 1200 + 1200 + 1250
    assert job["usr_cpu"] == pytest.approx(100 * 1.8 / 3.65)
    assert job["elapsed"] == 2  # the run's wall time, not summed
    read = job["read"]
    iops = [[200, 600], [400, 400], [100, 300]]  # per clone, per interval
    assert read["iops_samples"] == read["bw_samples"] == 6
    assert read["iops_min"] == 200 + 400 + 100 and read["iops_max"] == 600 + 400 + 300
    assert read["iops_mean"] == pytest.approx(400 + 400 + 200)
    squares = sum((x - sum(c) / 2) ** 2 for c in iops for x in c)
    assert read["iops_stddev"] == pytest.approx(math.sqrt(squares / 5))
    assert read["bw_min"] == (200 + 400 + 100) * 4 and read["bw_max"] == (600 + 400 + 300) * 4
    assert read["bw_mean"] == pytest.approx(4 * 1000)
    assert read["runtime"] == 1250 and read["total_ios"] == 400 + 400 + 200


def test_a_sample_is_not_taken_where_the_runtime_ends() -> None:
    """fio's helper thread samples a job while it runs: a 1 s time_based
    job has one 500 ms sample (the one due at 1000 ms finds it done), a
    2 s job three; an unlimited run keeps every full interval."""
    inv = parse_args(["--ioengine=psync", "--name=g", "--runtime=1", "--time_based"])
    (cell,) = plan_cells(inv)
    (job,) = fio_json([CellResult(cell, clones=[_clone([100, 100], 1.0004, 0.1)])], [],
                      "0")["jobs"]
    assert job["read"]["bw_samples"] == job["read"]["iops_samples"] == 1
    assert job["elapsed"] == 2  # fio: seconds since it started, rounded up
    inv = parse_args(["--ioengine=psync", "--name=g", "--runtime=2", "--time_based"])
    (cell,) = plan_cells(inv)
    (job,) = fio_json([CellResult(cell, clones=[_clone([100, 100, 100, 100], 2.0004, 0.1)])],
                      [], "0")["jobs"]
    assert job["read"]["bw_samples"] == 3


def test_group_reporting_run_matches_fio(tmp_path: Any) -> None:
    """numjobs=3, group_reporting, 1.2 s: job_runtime is the three clones'
    runtimes summed (about 3600 ms, not one clone's 1200), the samples are
    every clone's (2 each), as fio reports the same job."""
    target = tmp_path / "grp.img"
    job = ["--name=a", f"--filename={target}", "--size=4M", "--rw=randread", "--ioengine=psync",
           "--numjobs=3", "--group_reporting", "--runtime=1200ms", "--time_based"]
    (ours,) = bench_json(*job)["jobs"]
    assert 3 * 1200 <= ours["job_runtime"] < 3 * 1200 + 300
    assert ours["read"]["runtime"] < 1200 + 100  # a direction's runtime: the longest clone's
    assert ours["read"]["bw_samples"] == ours["read"]["iops_samples"] == 6
    assert ours["elapsed"] == 2
    assert ours["read"]["bw_min"] <= ours["read"]["bw_mean"] <= ours["read"]["bw_max"]
    if FIO is None:
        pytest.skip(NO_FIO)
    (theirs,) = fio_json_of(*job)["jobs"]
    assert ours["job_runtime"] == pytest.approx(theirs["job_runtime"], rel=0.1)
    assert ours["read"]["runtime"] == pytest.approx(theirs["read"]["runtime"], rel=0.1)
    for key in ("bw_samples", "iops_samples"):
        assert ours["read"][key] == theirs["read"][key], key
    assert ours["elapsed"] == theirs["elapsed"]
    assert ours["job options"] == theirs["job options"]


# -- 3. bare flags in "job options", an empty --write_bw_log= ---------------------------------


def test_bare_flags_are_left_out_of_job_options_like_fio(tmp_path: Any) -> None:
    """fio 3.33 lists an option with the value it was given and leaves out
    one given bare (thread, stonewall, time_based, group_reporting, a bare
    write_bw_log) or empty; time_based=1 spelled out stays '1'."""
    (tmp_path / "f.img").write_bytes(b"\0" * (1 << 20))
    path = tmp_path / "flags.fio"
    path.write_text("[global]\nioengine=psync\ntime_based\nruntime=300ms\ngroup_reporting\n"
                    "filename=f.img\nsize=1M\n\n"
                    "[a]\nrw=read\nthread\nstonewall\nwrite_bw_log\n\n"
                    "[b]\nrw=read\nstonewall\ntime_based=1\nwrite_iops_log=\n")
    doc = bench_json(str(path), cwd=tmp_path)
    assert doc["global options"] == {"ioengine": "psync", "runtime": "300ms",
                                     "filename": "f.img", "size": "1M"}
    assert [j["job options"] for j in doc["jobs"]] == [{"rw": "read"},
                                                       {"rw": "read", "time_based": "1"}]
    assert os.path.exists(tmp_path / "a_bw.1.log") and os.path.exists(tmp_path / "b_iops.2.log")
    cmd = ["--name=c", f"--filename={tmp_path / 'f.img'}", "--size=1M", "--rw=read",
           "--ioengine=psync", "--runtime=300ms", "--time_based", "--thread", "--stonewall",
           "--group_reporting"]
    (ours,) = bench_json(*cmd)["jobs"]
    assert ours["job options"] == {"name": "c", "filename": str(tmp_path / "f.img"),
                                   "size": "1M", "rw": "read", "ioengine": "psync",
                                   "runtime": "300ms"}
    if FIO is None:
        pytest.skip(NO_FIO)
    theirs = fio_json_of(str(path), cwd=tmp_path)
    assert doc["global options"] == theirs["global options"]
    assert [j["job options"] for j in doc["jobs"]] == [j["job options"] for j in theirs["jobs"]]
    (one,) = fio_json_of(*cmd)["jobs"]
    assert ours["job options"] == one["job options"]


@pytest.mark.parametrize("option", ["write_bw_log", "write_lat_log", "write_iops_log"])
def test_empty_log_name_on_the_command_line_is_refused_like_fio(tmp_path: Any,
                                                                 option: str) -> None:
    """``--write_bw_log=`` (no name): fio refuses it, "option write_bw_log
    requires an argument"; so does the bench, one line on stderr and its
    exit status for a command line it will not run (2; fio's is 1), before
    anything runs.  In a job file an empty or bare name is the job's, in
    both."""
    job = ["--name=c", f"--filename={tmp_path / 'f.img'}", "--size=1M", "--rw=read",
           "--ioengine=psync"]
    proc = bench(*job, f"--{option}=", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"option {option} requires an argument" in lines[0], proc.stderr
    assert proc.stdout == "" and not os.listdir(tmp_path)
    if FIO is None:
        pytest.skip(NO_FIO)
    theirs = subprocess.run([FIO, *job, f"--{option}="], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert theirs.returncode != 0
    assert f"option {option} requires an argument" in theirs.stderr

"""fio's job options in ``uring bench``: each with its fio semantics, on the
real kernel and real files, and fio's own job files run through both fio
and the bench, their JSON read by one reader.

Small files (a few MiB) and short runtimes: the whole file runs in well
under a minute.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, Iterator, List

import pytest
from conftest import require_uring

from uring.bench import files, schedule
from uring.bench.options import UsageError, parse_args
from uring.bench.plan import CellResult, plan_cells
from uring.bench.runner import ProgressLine, Workspace, run_cell
from uring.bench.verify import Checker, Stamper, crc32c
from uring.bench.workload import Measurement, StopFlag, clone_seed, run_job

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOBS = os.path.join(ROOT, "tests", "jobs")
MiB = 1 << 20
ENGINES = ["psync", "io_uring", "libaio", "threads"]


@pytest.fixture
def realdir() -> Iterator[str]:
    """A directory on a real filesystem (O_DIRECT; tmpfs refuses it)."""
    path = tempfile.mkdtemp(prefix="bench-jobs-", dir="/var/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def engine_args(engine: str) -> List[str]:
    if engine == "io_uring":
        require_uring()
    return [f"--ioengine={engine}"]


def run_cells(*args: str) -> List[CellResult]:
    """Plan, lay out and run a command line in this process, as the
    command does."""
    inv = parse_args(list(args))
    cells = plan_cells(inv)
    workspace = Workspace()
    try:
        workspace.prepare(cells)
        notes: List[str] = []
        return [run_cell(i, c, ProgressLine(io.StringIO(), len(cells)), notes)
                for i, c in enumerate(cells)]
    finally:
        workspace.close()


def one(*args: str) -> Measurement:
    (result,) = run_cells(*args)
    (m,) = result.clones
    assert m.error == 0, m.error_text
    return m


def fill(path: str, size: int, byte: int) -> None:
    with open(path, "wb") as f:
        f.write(bytes([byte]) * size)


def blocks_of(path: str, bs: int) -> List[bytes]:
    with open(path, "rb") as f:
        data = f.read()
    return [data[i:i + bs] for i in range(0, len(data), bs)]


# -- crc32c and the verify header ------------------------------------------------------------


def _crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def test_crc32c_is_castagnoli() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    # RFC 3720 (iSCSI) B.4
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(b"") == 0
    data = os.urandom(3 * 4096 + 77)
    for n in (1, 3, 4, 63, 64, 65, 4095, 4096, 4097, 8192, len(data)):
        assert crc32c(data[:n]) == _crc32c_bitwise(data[:n]), n
        assert crc32c(data[n // 3:n], crc32c(data[:n // 3])) == crc32c(data[:n])  # continues


@pytest.mark.parametrize("kind", ["crc32c", "crc32", "md5", "sha1", "sha256", "sha512"])
def test_a_stamped_block_checks_and_any_change_is_caught(kind: str) -> None:
    stamper, checker = Stamper(kind), Checker(kind)
    buf = bytearray(os.urandom(8192))
    view = memoryview(buf)
    stamper.stamp(view, 0, 40960, 8192)
    assert checker.check(buf, 40960, 8192) is None
    problem = checker.check(buf, 49152, 8192)  # read back from another offset
    assert problem is not None and "offset 49152" in problem and "40960" in problem
    for at in (0, 9, 20, 8191):  # magic, id, offset field, the data
        bad = bytearray(buf)
        bad[at] ^= 0x10
        assert checker.check(bad, 40960, 8192) is not None, at
    assert checker.bad == 5 and checker.first_offset == 49152
    stamper.stamp(view, 0, 8192, 8192)  # restamped elsewhere, data state cached
    assert Checker(kind).check(buf, 8192, 8192) is None


# -- parsing ---------------------------------------------------------------------------------


def test_option_values_and_aliases() -> None:
    (job,) = parse_args(["--ioengine=io_uring", "--bsrange=4k-64k", "--timeout=3",
                         "--iodepth_batch=4", "--iodepth_batch_complete=2",
                         "--iodepth_batch_complete_max=8", "--offset=25%", "--size=50%",
                         "--startdelay=1-2", "--cpus_allowed=0", "--verify=crc32c-intel",
                         "--randseed=7", "--norandommap", "--thread", "--group_reporting",
                         "--write_bw_log=x", "--write_lat_log", "--loops=3"]).jobs
    assert job.bsrange == ((4096, 65536), (4096, 65536)) and (job.min_bs, job.max_bs) == \
        (4096, 65536)
    assert job.runtime == 3.0 and job.iodepth_batch_submit == 4
    assert (job.iodepth_batch_complete_min, job.iodepth_batch_complete_max) == (2, 8)
    assert job.offset_pct == 25.0 and job.size_pct == 50.0 and job.size is None
    assert job.startdelay == (1.0, 2.0) and job.cpus_allowed == (0,)
    assert job.verify == "crc32c" and job.randseed == 7 and job.loops == 3
    assert job.norandommap and job.thread and job.group_reporting
    assert job.write_bw_log == "x" and job.write_lat_log == "" and job.write_iops_log is None
    (job,) = parse_args(["--bsrange=1k-4k,8k-16k", "--rw=randrw"]).jobs
    assert job.bs_range(False) == (1024, 4096) and job.bs_range(True) == (8192, 16384)
    assert job.variable_bs and job.bs == 1024
    (job,) = parse_args(["--bsrange=4k-8k", "--bs=16k"]).jobs  # the last one wins, as in fio
    assert job.bsrange is None and job.bs == 16384 and not job.variable_bs


def test_rwmixread_and_rwmixwrite_the_last_wins() -> None:
    assert parse_args(["--rw=randrw", "--rwmixwrite=30"]).jobs[0].reads == 70
    assert parse_args(["--rw=randrw", "--rwmixwrite=30", "--rwmixread=10"]).jobs[0].reads == 10
    assert parse_args(["--rw=randrw", "--rwmixread=10", "--rwmixwrite=60"]).jobs[0].reads == 40


def test_job_file_expands_environment_variables(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("BENCH_TEST_DIR", "/some/where")
    path = tmp_path / "env.fio"
    path.write_text("[global]\nfilename=${BENCH_TEST_DIR}/f.img\nnumjobs=$ncpus\n[j]\n")
    (job,) = parse_args([str(path)]).jobs
    assert job.filename == "/some/where/f.img" and job.numjobs == (os.cpu_count() or 1)
    assert job.jobfile == str(path)


@pytest.mark.parametrize("args,named", [
    (["--bsrange=8k-4k"], "bsrange=8k-4k"),
    (["--bsrange=4k-"], "bsrange=4k-"),
    (["--cpus_allowed=0-999"], "CPU 999 does not exist"),
    (["--cpus_allowed=a"], "cpus_allowed=a"),
    (["--offset=101%"], "offset=101%"),
    (["--size=0%"], "size=0%"),
    (["--startdelay=3-1"], "startdelay=3-1"),
    (["--loops=0"], "loops=0"),
    (["--verify=crc64"], "verify=crc64"),
    (["--verify_only"], "'verify_only' needs verify="),
    (["--verify=md5", "--verify_only", "--time_based"], "time_based"),
    (["--verify=md5", "--rw=randwrite", "--bsrange=4k-8k", "--norandommap"], "norandommap"),
    (["--verify=sha512", "--bs=64"], "verify header"),
    (["--zero_buffers", "--refill_buffers"], "zero_buffers and refill_buffers"),
    (["--filename=a:b"], "'a:b'"),
    (["--rate_iops=100"], "--rate_iops"),
    (["--verify_backlog=8"], "--verify_backlog"),
    (["--iodepth_low=2"], "--iodepth_low"),
    (["--bs=4k,8k"], "bs=4k,8k"),
])
def test_bad_values_and_what_is_not_implemented_are_refused_by_name(args: List[str],
                                                                    named: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_args(args)
    assert named in str(err.value)


def test_page_cache_policy_of_the_plan(tmp_path: Any) -> None:
    """fio's invalidate=1 for explicit jobs and job files; the matrix warms;
    invalidate=0 warms."""
    explicit, = plan_cells(parse_args(["--ioengine=psync"]))
    assert explicit.cache == "invalidate"
    matrix = plan_cells(parse_args(["--size=1M"]))
    assert {c.cache for c in matrix} == {"warm"}
    kept, = plan_cells(parse_args(["--ioengine=psync", "--invalidate=0"]))
    assert kept.cache == "warm"
    path = tmp_path / "j.fio"
    path.write_text("[j]\nioengine=psync\n")
    from_file, = plan_cells(parse_args([str(path)]))
    assert from_file.cache == "invalidate"


# -- the schedule ----------------------------------------------------------------------------


def test_random_map_norandommap_and_seeds() -> None:
    job = parse_args(["--rw=randread"]).jobs[0]
    sched = schedule.build(job, MiB, 4096, clone_seed(job, 1))
    assert sorted(sched.offs) == list(range(4096, 4096 + MiB, 4096))  # every block once
    again = schedule.build(job, MiB, 4096, clone_seed(job, 1))
    assert list(again.offs) == list(sched.offs)  # randrepeat=1: the same every run
    other = schedule.build(job, MiB, 4096, clone_seed(job, 2))
    assert list(other.offs) != list(sched.offs)  # each clone its own
    seeded = job.with_options(randseed=99)
    assert clone_seed(seeded, 1) == clone_seed(seeded, 1) != clone_seed(job, 1)
    fresh = job.with_options(randrepeat=False)
    assert clone_seed(fresh, 1) != clone_seed(fresh, 1)  # randrepeat=0: from the clock
    free = schedule.build(job.with_options(norandommap=True), MiB, 0, 5)
    assert len(free.offs) == 256 and len(set(free.offs)) < 256  # draws repeat


# -- the options at work -----------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_offset_and_size_keep_writes_inside_the_region(engine: str, realdir: str) -> None:
    path = os.path.join(realdir, "region.img")
    fill(path, 4 * MiB, 0xAA)
    one(*engine_args(engine), f"--filename={path}", "--rw=randwrite", "--offset=1m",
        "--size=1m", "--iodepth=4")
    blocks = blocks_of(path, 4096)
    assert len(blocks) == 1024
    untouched = b"\xaa" * 4096
    assert all(b == untouched for b in blocks[:256] + blocks[512:])
    assert all(b != untouched for b in blocks[256:512])  # every block of the region written
    fill(path, 4 * MiB, 0xAA)
    one(*engine_args(engine), f"--filename={path}", "--rw=write", "--offset=75%", "--iodepth=4")
    blocks = blocks_of(path, 4096)
    assert all(b == untouched for b in blocks[:768])
    assert all(b != untouched for b in blocks[768:])


@pytest.mark.parametrize("engine", ENGINES)
def test_ramp_time_drops_the_ios_before_it(engine: str, realdir: str) -> None:
    path = os.path.join(realdir, "ramp.img")
    files.make_file(path, MiB)
    started = time.monotonic()
    m = one(*engine_args(engine), f"--filename={path}", "--rw=randread", "--iodepth=4",
            "--ramp_time=0.4", "--runtime=0.2", "--time_based")
    wall = time.monotonic() - started
    assert wall >= 0.55
    assert 0.15 <= m.runtime < 0.4  # the runtime counts from the ramp's end
    assert m.read.ios > 0 and min(m.read.end) >= 0
    assert max(m.read.end) <= m.runtime * 1e9
    # not time based: after the ramp, exactly one size's worth is counted
    m = one(*engine_args(engine), f"--filename={path}", "--rw=randread", "--iodepth=4",
            "--ramp_time=0.2")
    assert m.read.ios == 256 and m.read.bytes == MiB


@pytest.mark.parametrize("engine", ENGINES)
def test_fsync_every_n_writes_goes_through_the_engine(engine: str, realdir: str) -> None:
    path = os.path.join(realdir, "fsync.img")
    m = one(*engine_args(engine), f"--filename={path}", "--size=1m", "--rw=randwrite",
            "--iodepth=4", "--fsync=8")
    assert m.write.ios == 256
    assert m.sync.ios == 31  # after writes 8, 16, ..., 248: fio's count too (the 256th ends it)
    assert all(lat > 0 for lat in m.sync.lat) and len(m.sync.end) == 31
    m = one(*engine_args(engine), f"--filename={path}", "--size=1m", "--rw=randrw",
            "--iodepth=4", "--fdatasync=16", "--end_fsync=1")
    assert m.sync.ios == (m.write.ios - 1) // 16 + 1  # and one at the end


@pytest.mark.parametrize("engine", ["psync", "io_uring"])
def test_loops_repeat_the_job(engine: str, realdir: str) -> None:
    path = os.path.join(realdir, "loops.img")
    m = one(*engine_args(engine), f"--filename={path}", "--size=256k", "--rw=randread",
            "--loops=3", "--iodepth=4")
    assert m.read.ios == 3 * 64 and m.read.bytes == 3 * 256 * 1024


@pytest.mark.parametrize("engine", ENGINES)
def test_bsrange_sizes_are_in_range_and_cover_the_region(engine: str, realdir: str) -> None:
    path = os.path.join(realdir, "bsrange.img")
    fill(path, 2 * MiB, 0xAA)
    m = one(*engine_args(engine), f"--filename={path}", "--rw=randwrite", "--bsrange=4k-32k",
            "--iodepth=4")
    sizes = list(m.write.sizes)
    assert len(sizes) == m.write.ios and len(set(sizes)) > 3
    assert all(4096 <= s <= 32768 and s % 4096 == 0 for s in sizes)
    assert sum(sizes) == m.write.bytes == 2 * MiB  # the random map: each block once
    assert all(b != b"\xaa" * 4096 for b in blocks_of(path, 4096))
    m = one(*engine_args(engine), f"--filename={path}", "--rw=read", "--bsrange=1k-8k",
            "--iodepth=4", "--direct=0")
    assert all(1024 <= s <= 8192 and s % 1024 == 0 for s in m.read.sizes)
    assert sum(m.read.sizes) == 2 * MiB


def test_invalidate_drops_the_region_from_the_page_cache(realdir: str) -> None:
    path = os.path.join(realdir, "cold.img")
    files.make_file(path, 4 * MiB)
    files.warm(path, 4 * MiB)
    assert files.residency(path, 4 * MiB) == 1.0
    (result,) = run_cells("--ioengine=psync", f"--filename={path}", "--rw=randread",
                          "--offset=1m", "--size=2m")
    assert result.residency is not None and result.residency < 0.05  # before the job
    assert files.residency(path, MiB) == 1.0  # outside the region: left alone
    (result,) = run_cells("--ioengine=psync", f"--filename={path}", "--invalidate=0",
                          "--rw=randread", "--size=2m")
    assert result.residency is not None and result.residency >= 0.99  # warmed instead


@pytest.mark.parametrize("engine", ["psync", "io_uring"])
def test_invalidate_again_at_every_pass_as_fio_reopens(engine: str, realdir: str,
                                                       monkeypatch: Any) -> None:
    """fio drops the cache each time it opens the file: a time_based job's
    every new pass starts cold again."""
    path = os.path.join(realdir, "passes.img")
    files.make_file(path, 2 * MiB)
    dropped: List[Any] = []
    real = os.posix_fadvise

    def fadvise(fd: int, offset: int, length: int, advice: int) -> None:
        if advice == os.POSIX_FADV_DONTNEED:
            dropped.append((offset, length))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", fadvise)
    m = one(*engine_args(engine), f"--filename={path}", "--offset=1m", "--size=256k",
            "--rw=randread", "--time_based", "--runtime=0.3", "--iodepth=4")
    passes = m.read.ios // 64
    assert passes >= 2
    assert len(dropped) >= passes and set(dropped) == {(MiB, 256 * 1024)}
    dropped.clear()
    one(*engine_args(engine), f"--filename={path}", "--size=256k", "--invalidate=0",
        "--time_based", "--runtime=0.2")
    assert dropped == []


def test_cpus_allowed_is_applied_to_the_job(realdir: str) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    path = os.path.join(realdir, "cpus.img")
    before = os.sched_getaffinity(0)
    m = one("--ioengine=psync", f"--filename={path}", "--size=256k", "--cpus_allowed=1")
    assert m.cpus == (1,)
    assert os.sched_getaffinity(0) == before  # the command's own affinity is back
    (result,) = run_cells("--ioengine=psync", f"--filename={path}", "--size=256k",
                          "--numjobs=2", "--cpus_allowed=0-1", "--cpus_allowed_policy=split")
    assert sorted(m.cpus for m in result.clones) == [(0,), (1,)]
    (result,) = run_cells("--ioengine=threads", f"--filename={path}", "--size=256k",
                          "--numjobs=2", "--thread", "--cpus_allowed=0,1",
                          "--cpus_allowed_policy=split")
    assert sorted(m.cpus for m in result.clones) == [(0,), (1,)]


def test_thread_runs_clones_as_threads(realdir: str, monkeypatch: Any) -> None:
    def no_fork() -> int:
        raise AssertionError("thread=1 must not fork")

    monkeypatch.setattr(os, "fork", no_fork)
    path = os.path.join(realdir, "thread.img")
    (result,) = run_cells("--ioengine=threads", f"--filename={path}", "--size=512k",
                          "--numjobs=3", "--thread", "--rw=randread", "--iodepth=4")
    assert len(result.clones) == 3
    assert all(m.error == 0 and m.read.ios == 128 for m in result.clones)


def test_exitall_ends_the_rest_of_the_group(tmp_path: Any, realdir: str) -> None:
    job = tmp_path / "exitall.fio"
    job.write_text(f"[global]\nioengine=psync\nfilename={realdir}/x.img\nsize=256k\n"
                   "[first]\nexitall\n[beside]\n[after-wall]\nstonewall\n")
    results = run_cells(str(job))
    assert [r.cell.fio_group for r in results] == [0, 0, 1]
    first, beside, after = results
    assert first.clones[0].read.ios == 64 and not first.skipped
    assert beside.skipped and "exitall" in beside.skipped and beside.clones[0].ios == 0
    assert after.clones[0].read.ios == 64 and not after.skipped


@pytest.mark.parametrize("how", ["--thread=1", "--thread=0"])
def test_exitall_stops_the_other_clones(how: str, realdir: str, monkeypatch: Any) -> None:
    """The first clone done ends the others (threads, or forked processes
    through shared memory): here clone 1 starts late (its startdelay) and
    finds the job over; clone 0 runs whole."""
    from uring.bench import runner

    path = os.path.join(realdir, "clones.img")
    job = parse_args(["--numjobs=2"]).jobs[0]
    late = clone_seed(job, 2)  # clone 1 of the first job: fio's job number 2
    monkeypatch.setattr(runner, "_start_delay", lambda job, seed: 0.5 if seed == late else 0.0)
    (result,) = run_cells("--ioengine=psync", f"--filename={path}", "--size=256k", how,
                          "--numjobs=2", "--exitall")
    assert [m.read.ios for m in result.clones] == [64, 0]
    (result,) = run_cells("--ioengine=psync", f"--filename={path}", "--size=256k", how,
                          "--numjobs=2")
    assert [m.read.ios for m in result.clones] == [64, 64]  # without exitall: both whole


def test_a_set_stop_flag_ends_a_run() -> None:
    """exitall's mechanism: a clone that finishes sets the flag the others
    look at."""
    path = os.path.join(tempfile.gettempdir(), f"stop-{os.getpid()}.img")
    files.make_file(path, MiB)
    try:
        stop = StopFlag()
        stop.set()
        job = parse_args(["--ioengine=psync", "--time_based", "--runtime=30"]).jobs[0]
        started = time.monotonic()
        m = run_job(job, path, MiB, stop=stop)
        assert time.monotonic() - started < 5 and m.error == 0
    finally:
        os.unlink(path)


def test_startdelay_waits_before_the_job(realdir: str) -> None:
    path = os.path.join(realdir, "delay.img")
    started = time.monotonic()
    m = one("--ioengine=psync", f"--filename={path}", "--size=256k", "--startdelay=0.3",
            "--invalidate=0")
    assert time.monotonic() - started >= 0.3
    assert m.runtime < 0.25  # the delay is not in the runtime


def test_files_made_by_filesize_create_on_open_and_removed_by_unlink(realdir: str) -> None:
    path = os.path.join(realdir, "made.img")
    m = one("--ioengine=psync", f"--filename={path}", "--filesize=2m", "--size=1m",
            "--rw=write")
    assert os.path.getsize(path) == 2 * MiB and m.write.bytes == MiB
    one("--ioengine=psync", f"--filename={path}", "--size=1m", "--rw=read", "--unlink")
    assert not os.path.exists(path)
    opened = os.path.join(realdir, "opened.img")
    inv = parse_args(["--ioengine=io_uring", f"--filename={opened}", "--size=512k",
                      "--rw=write", "--create_on_open", "--iodepth=4"])
    cells = plan_cells(inv)
    Workspace().prepare(cells)
    assert not os.path.exists(opened)  # not laid out beforehand
    require_uring()
    result = run_cell(0, cells[0], ProgressLine(io.StringIO(), 1), [])
    assert result.clones[0].write.bytes == 512 * 1024
    assert os.path.getsize(opened) == 512 * 1024


@pytest.mark.parametrize("engine", ["psync", "io_uring"])
def test_buffer_contents_zero_default_and_refill(engine: str, realdir: str) -> None:
    path = os.path.join(realdir, "buffers.img")
    fill(path, 256 * 1024, 0xAA)
    common = [*engine_args(engine), f"--filename={path}", "--rw=write", "--iodepth=1"]
    one(*common, "--zero_buffers")
    assert set(b"".join(blocks_of(path, 4096))) == {0}
    one(*common)  # data written once into the buffer, reused: every block the same
    assert len(set(blocks_of(path, 4096))) == 1
    one(*common, "--refill_buffers")  # new data for every write
    assert len(set(blocks_of(path, 4096))) == 64


def test_batches_of_submit_and_completion(realdir: str) -> None:
    require_uring()
    path = os.path.join(realdir, "batch.img")
    m = one("--ioengine=io_uring", f"--filename={path}", "--size=1m", "--iodepth=8",
            "--iodepth_batch_submit=2")
    assert set(m.submit_hist) <= {1, 2} and sum(m.submit_hist.values()) >= 128
    m = one("--ioengine=io_uring", f"--filename={path}", "--size=1m", "--iodepth=8",
            "--iodepth_batch_complete_min=4", "--iodepth_batch_complete_max=4")
    # never more than the max; mostly the min (a reap that finds more than
    # four leaves the rest for the next, which may then hold fewer)
    assert set(m.complete_hist) <= {1, 2, 3, 4} and m.complete_hist[4] >= 32
    assert sum(n * c for n, c in m.complete_hist.items()) == 256
    m = one("--ioengine=threads", f"--filename={path}", "--size=1m", "--iodepth=8",
            "--iodepth_batch_complete_max=1")
    assert m.complete_hist == {1: 256}
    m = one("--ioengine=psync", f"--filename={path}", "--size=1m")
    assert m.submit_hist == m.complete_hist == {1: 256}


@pytest.mark.parametrize("engine", ["io_uring", "libaio"])
def test_o_direct_submits_are_counted_as_the_calls_that_carry_them(engine: str,
                                                                   realdir: str) -> None:
    """Under O_DIRECT the image hands the kernel a few requests per submit
    call (DIRECT_SUBMIT_BATCH): iodepth_submit counts those calls, as
    fio's does; iodepth_batch_submit sets the size, buffered too."""
    if engine == "io_uring":
        require_uring()
    from uring.block.image import DIRECT_SUBMIT_BATCH
    path = os.path.join(realdir, "direct.img")
    m = one(f"--ioengine={engine}", f"--filename={path}", "--size=1m", "--iodepth=32",
            "--direct=1")
    assert max(m.submit_hist) == DIRECT_SUBMIT_BATCH < 32
    assert sum(n * c for n, c in m.submit_hist.items()) == 256
    m = one(f"--ioengine={engine}", f"--filename={path}", "--size=1m", "--iodepth=32",
            "--iodepth_batch_submit=8")
    assert max(m.submit_hist) == 8
    assert sum(n * c for n, c in m.submit_hist.items()) == 256


@pytest.mark.parametrize("engine,kind", [("psync", "sha256"), ("io_uring", "crc32c"),
                                         ("libaio", "md5"), ("threads", "crc32")])
def test_verify_writes_checks_and_catches_a_corrupted_block(engine: str, kind: str,
                                                            realdir: str) -> None:
    path = os.path.join(realdir, "verify.img")
    common = [*engine_args(engine), f"--filename={path}", "--size=512k", "--rw=randwrite",
              "--iodepth=4", f"--verify={kind}"]
    m = one(*common)
    assert m.write.ios == 128 and m.read.ios == 128  # every block read back, counted as reads
    assert m.verified == 128 and m.verify_bad == 0
    assert m.read.runtime > 0 and m.write.runtime == m.runtime
    with open(path, "r+b") as f:
        f.seek(5 * 4096 + 1000)
        f.write(b"\x00\x01\x02")
    (result,) = run_cells(*common, "--verify_only")
    (m,) = result.clones
    assert m.error == errno.EILSEQ and m.write.ios == 0 and m.verify_bad == 1
    assert f"offset {5 * 4096}" in m.error_text and f"verify={kind}" in m.error_text


def test_verify_reads_of_a_read_job_and_a_misplaced_block(realdir: str) -> None:
    path = os.path.join(realdir, "misplaced.img")
    one("--ioengine=psync", f"--filename={path}", "--size=256k", "--rw=write",
        "--verify=crc32c", "--do_verify=0")
    with open(path, "r+b") as f:
        data = f.read()
        f.seek(8192)
        f.write(data[4096:8192])  # block 1 copied over block 2
    (result,) = run_cells("--ioengine=psync", f"--filename={path}", "--size=256k",
                          "--rw=randread", "--verify=crc32c")
    (m,) = result.clones
    assert m.read.ios == 64 and m.verified == 64 and m.verify_bad == 1
    assert "offset 8192" in m.error_text and "misplaced" in m.error_text


@pytest.mark.parametrize("engine", ["psync", "io_uring"])
def test_logs_are_fios_format(engine: str, realdir: str, monkeypatch: Any) -> None:
    monkeypatch.chdir(realdir)
    path = os.path.join(realdir, "logs.img")
    (result,) = run_cells(*engine_args(engine), f"--filename={path}", "--name=lg",
                          "--size=512k", "--rw=randrw", "--iodepth=4", "--numjobs=2",
                          "--write_bw_log=lg", "--write_lat_log=lg", "--write_iops_log=lg",
                          "--log_offset=1")
    expected = {f"lg_{kind}.{n}.log" for kind in ("bw", "lat", "clat", "slat", "iops")
                for n in (1, 2)}
    assert set(os.listdir(realdir)) >= expected
    for n, m in enumerate(result.clones, 1):
        rows = [[int(x) for x in line.split(", ")]
                for line in open(f"lg_lat.{n}.log").read().splitlines()]
        assert len(rows) == m.ios and all(len(r) == 6 for r in rows)
        assert [r[0] for r in rows] == sorted(r[0] for r in rows)  # ms since the start
        assert sorted(r[1] for r in rows) == sorted(list(m.read.lat) + list(m.write.lat))
        assert {r[2] for r in rows} == {0, 1} and {r[3] for r in rows} == {4096}
        assert all(0 <= r[4] < 512 * 1024 and r[4] % 4096 == 0 and r[5] == 0 for r in rows)
        iops = open(f"lg_iops.{n}.log").read().splitlines()
        assert len(iops) == m.ios and all(line.split(", ")[1] == "1" for line in iops)
        assert open(f"lg_slat.{n}.log").read() == ""
    (result,) = run_cells(*engine_args(engine), f"--filename={path}", "--name=avg",
                          "--size=1m", "--rw=randread", "--runtime=0.35", "--time_based",
                          "--write_bw_log", "--log_avg_msec=100")
    rows = [[int(x) for x in line.split(", ")] for line in open("avg_bw.1.log")]
    assert [r[0] for r in rows] == [100 * (i + 1) for i in range(len(rows))]  # window ends
    assert 3 <= len(rows) <= 5
    assert all(len(r) == 5 and r[1] > 0 and r[2:] == [0, 0, 0] for r in rows)


# -- fio's job files through fio and the bench ---------------------------------------------------


def read_fio_json(text: str) -> List[Dict[str, Any]]:
    """One reader for both: the jobs of a fio JSON document (fio may print a
    line before it), each as io_bytes, iops, bw, latency means and error."""
    doc = json.loads(text[text.index("{"):])
    out = []
    for job in doc["jobs"]:
        entry: Dict[str, Any] = {"name": job["jobname"], "error": job["error"],
                                 "sync": job.get("sync", {}).get("total_ios", 0)}
        for ddir in ("read", "write"):
            d = job[ddir]
            entry[ddir] = {"io_bytes": d["io_bytes"], "iops": d["iops"], "bw": d["bw"],
                           "lat_mean": d["lat_ns"]["mean"], "clat_mean": d["clat_ns"]["mean"]}
        out.append(entry)
    return out


def run_both(jobfile: str, directory: str) -> Dict[str, List[Dict[str, Any]]]:
    env = dict(os.environ, BENCH_DIR=directory, PYTHONPATH=ROOT)
    out: Dict[str, List[Dict[str, Any]]] = {}
    for who, cmd in (("fio", ["fio", "--output-format=json", jobfile]),
                     ("bench", [sys.executable, "-m", "uring", "bench", "--output-format=json",
                                jobfile])):
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))  # each lays its files out afresh
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=directory,
                              timeout=60)
        assert proc.returncode == 0, f"{who}: {proc.stderr}"
        out[who] = read_fio_json(proc.stdout)
    return out


def moved(entry: Dict[str, Any]) -> Dict[str, int]:
    return {d: entry[d]["io_bytes"] for d in ("read", "write")}


def busy(entry: Dict[str, Any], ddir: str) -> bool:
    d = entry[ddir]
    return d["io_bytes"] > 0 and d["iops"] > 0 and d["bw"] > 0 and d["lat_mean"] > 0 \
        and d["clat_mean"] > 0


needs_fio = pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed")


@needs_fio
def test_job_randrw_two_clones_group_reporting(realdir: str) -> None:
    require_uring()
    both = run_both(os.path.join(JOBS, "randrw-group.fio"), realdir)
    for who, jobs in both.items():
        (job,) = jobs  # group_reporting: the two clones as one entry
        assert job["name"] == "randrw-mix" and job["error"] == 0, who
        assert sum(moved(job).values()) == 2 * 4 * MiB, who  # each clone its size
        assert job["read"]["io_bytes"] > job["write"]["io_bytes"] > 0, who  # 70/30
        assert busy(job, "read") and busy(job, "write"), who


@needs_fio
def test_job_four_stonewalled_direct_phases(realdir: str) -> None:
    both = run_both(os.path.join(JOBS, "four-phases.fio"), realdir)
    for who, jobs in both.items():
        assert [j["name"] for j in jobs] == ["seq-write", "rand-write", "seq-read",
                                             "rand-read"], who
        for job, ddir in zip(jobs, ("write", "write", "read", "read")):
            other = "read" if ddir == "write" else "write"
            assert job["error"] == 0 and busy(job, ddir), who
            assert moved(job) == {ddir: 4 * MiB, other: 0}, (who, job)


@needs_fio
def test_job_threads_with_bsrange_and_timeout(realdir: str) -> None:
    require_uring()
    both = run_both(os.path.join(JOBS, "thread-bsrange.fio"), realdir)
    for who, jobs in both.items():
        assert len(jobs) == 2, who
        for job in jobs:
            assert job["error"] == 0 and busy(job, "read"), who
            assert moved(job) == {"read": 8 * MiB, "write": 0}, (who, job)  # well within 2 s


@needs_fio
def test_job_write_then_verify_crc32c_and_md5(realdir: str) -> None:
    require_uring()
    both = run_both(os.path.join(JOBS, "write-verify.fio"), realdir)
    for who, jobs in both.items():
        assert [j["name"] for j in jobs] == ["crc32c", "md5"], who
        for job in jobs:
            assert job["error"] == 0, who
            # every block written, then every block read back and checked
            assert moved(job) == {"read": 2 * MiB, "write": 2 * MiB}, (who, job)
            assert busy(job, "read") and busy(job, "write"), who


@needs_fio
def test_job_cold_reads_then_fsynced_writes_at_an_offset(realdir: str) -> None:
    both = run_both(os.path.join(JOBS, "cold-then-fsync.fio"), realdir)
    for who, jobs in both.items():
        reads, writes = jobs
        assert reads["error"] == 0 and busy(reads, "read") and reads["write"]["io_bytes"] == 0
        assert writes["error"] == 0 and moved(writes) == {"read": 0, "write": 2 * MiB}, who
        assert writes["sync"] == 31, who  # 512 writes, an fsync after every 16 (not the last)


def test_verify_failure_through_the_command(realdir: str) -> None:
    """The command's side of a bad block: exit status 1, the job's error
    EILSEQ in the JSON, the offset named on stderr."""
    path = os.path.join(realdir, "cmd.img")
    env = dict(os.environ, PYTHONPATH=ROOT)
    common = [sys.executable, "-m", "uring", "bench", "--ioengine=psync", f"--filename={path}",
              "--size=256k", "--rw=write", "--verify=md5", "--output-format=json"]
    proc = subprocess.run(common, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    with open(path, "r+b") as f:
        f.seek(12288 + 4000)
        f.write(b"!")
    proc = subprocess.run(common + ["--verify_only"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 1
    (job,) = read_fio_json(proc.stdout)
    assert job["error"] == errno.EILSEQ
    assert "offset 12288" in proc.stderr


# --- the plain loop on Image.arena -------------------------------------------------------


def test_plain_io_uring_jobs_run_on_the_arena(realdir: str, monkeypatch: Any) -> None:
    """A job with one block size and one direction runs on ``Image.arena``
    (fixed slots, results as arrays); anything more on requests."""
    require_uring()
    from uring import block

    made: List[Any] = []
    real = block.Image.arena

    def spy(self: Any, *a: Any, **kw: Any) -> Any:
        made.append(kw.get("write", False))
        return real(self, *a, **kw)

    monkeypatch.setattr(block.Image, "arena", spy)
    path = os.path.join(realdir, "arena.img")
    fill(path, 1 << 20, 7)
    m = one("--ioengine=io_uring", f"--filename={path}", "--size=1m", "--iodepth=8",
            "--rw=randwrite", "--zero_buffers")
    assert made == [True] and m.write.ios == 256 and len(m.write.end) == 256
    assert blocks_of(path, 4096) == [bytes(4096)] * 256  # every block written, with zeros
    m = one("--ioengine=io_uring", f"--filename={path}", "--size=1m", "--iodepth=8",
            "--rw=read", "--direct=1")
    assert made == [True, False] and m.read.ios == 256
    one("--ioengine=io_uring", f"--filename={path}", "--size=1m", "--iodepth=8",
        "--rw=randrw")
    assert len(made) == 2  # a mixed job: requests
    m = one("--ioengine=libaio", f"--filename={path}", "--size=1m", "--iodepth=8")
    assert made[2:] == [False] and m.read.ios == 256  # native has an arena of its own
    one("--ioengine=threads", f"--filename={path}", "--size=1m", "--iodepth=8")
    assert len(made) == 3  # threads: requests


def test_an_arena_failure_stops_the_job_and_is_named(realdir: str) -> None:
    """A write past RLIMIT_FSIZE fails in the kernel (EFBIG): the job ends
    with that error, the slot and offset named."""
    require_uring()
    import resource
    import signal

    path = os.path.join(realdir, "big.img")
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        fill(path, 1 << 20, 1)
        resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 1024, limits[1]))
        (result,) = run_cells("--ioengine=io_uring", f"--filename={path}", "--size=1m",
                              "--iodepth=8", "--rw=write")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, old)
    (m,) = result.clones
    assert m.error == errno.EFBIG and "arena slot" in m.error_text
    assert 0 < m.write.ios <= 128


def test_tpe_reads_and_writes_and_refuses_more(realdir: str) -> None:
    path = os.path.join(realdir, "tpe.img")
    fill(path, 1 << 20, 3)
    m = one("--ioengine=tpe", f"--filename={path}", "--size=1m", "--iodepth=8", "--rw=randrw")
    assert m.read.ios + m.write.ios == 256 and m.read.ios and m.write.ios
    assert max(m.complete_hist) >= 1 and sum(n * c for n, c in m.complete_hist.items()) == 256
    m = one("--ioengine=tpe", f"--filename={path}", "--size=1m", "--iodepth=4", "--rw=write",
            "--zero_buffers")
    assert m.write.ios == 256 and blocks_of(path, 4096) == [bytes(4096)] * 256
    (result,) = run_cells("--ioengine=tpe", f"--filename={path}", "--size=1m",
                          "--rw=write", "--verify=md5")
    assert result.clones[0].error == errno.EINVAL
    assert "tpe runs plain jobs only" in result.clones[0].error_text

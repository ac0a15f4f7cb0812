"""The block layer on real block devices: loop devices over sparse files.

Every engine x cache mode runs on a loop device with 512-byte logical
sectors and on one with 4096-byte sectors (both with the loop driver's
buffered backing I/O, ``--direct-io=off``), and on a 4096-byte one whose
loop driver does O_DIRECT to its backing file (``--direct-io=on``).  What
the image does is checked three ways: read back through the image, read
with ``os.pread`` from the device, and read from the backing file once
flushed.

What the kernel does on a block device (Linux 6.x, ``block/fops.c``),
which these tests pin down:

- O_DIRECT needs offsets and lengths in multiples of the logical sector
  size (``BLKSSZGET``) and buffers aligned to ``queue/dma_alignment`` + 1:
  ``Image.request_alignment`` is the former; misaligned buffers are
  bounced, misaligned ranges widened (read-modify-write).
- ``fallocate`` on a block device (``blkdev_fallocate``) takes only
  ``PUNCH_HOLE|KEEP_SIZE`` (discard: zeroes the range, the loop driver
  punches a hole in its backing file) and ``ZERO_RANGE`` with or without
  ``KEEP_SIZE`` (write-zeroes); any other mode is ``EOPNOTSUPP``.  The
  range must be a multiple of the logical sector size (else ``EINVAL``,
  whatever the cache mode), must start inside the device, and may run past
  its end only with ``KEEP_SIZE`` (then it is cut at the end).
- ``PUNCH_HOLE|KEEP_SIZE`` is a zero-out that may not fall back to writing
  zeroes (``blkdev_issue_zeroout``, ``BLKDEV_ZERO_NOFALLBACK``): on a
  device without write-zeroes (``queue/write_zeroes_max_bytes`` 0) it is
  ``EOPNOTSUPP``; ``ZERO_RANGE`` falls back and always works.
- A read at or past the end of the device returns 0 bytes, one across it a
  short count: the image zero-fills the rest, as for end of file.  A write
  there fails with ``ENOSPC``.
- The page cache of a block device is dropped at its last close.


The benchmark is run on the devices too (``--filename=/dev/loopN``), and
must never create, extend or remove one.

Loop devices are always detached: each fixture detaches in a ``finally``;
a session-wide safety net detaches every loop device whose backing file is
under this session's temporary directories (and, at start, leftovers of
killed runs).  Without root, ``/dev/loop-control`` or ``losetup`` the tests
skip, saying which (as root under ``URING_REQUIRE_KERNEL``, as in CI, they
fail instead); anything else that goes wrong attaching a device is a
failure.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import mmap
import os
import random
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional

import pytest
from conftest import REQUIRE_KERNEL, require_uring

from uring import block
from uring.block import BlockRequest
from uring.block.sysops import BLKSSZGET, FALLOC_FL_ZERO_RANGE, fallocate, probe_alignment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KiB = 1 << 10
MiB = 1 << 20
DEV_SIZE = 16 * MiB
PREFIX = "uring-blkdev-test-"  # every backing file's name starts with it
BLKGETSIZE64 = 0x80081272  # include/uapi/linux/fs.h: _IOR(0x12, 114, size_t)

ENGINES = ["io_uring", "native", "threads"]
CACHES = ["writeback", "none", "writethrough", "directsync", "unsafe"]
COMBOS = [(a, c) for a in ENGINES for c in CACHES]


# --- attaching and detaching ------------------------------------------------------------


def loop_unavailable() -> str:
    """Why loop devices cannot be made here ("" if they can)."""
    if os.geteuid() != 0:
        return "loop devices need root (LOOP_CTL_GET_FREE, LOOP_CONFIGURE): not running as root"
    if not os.path.exists("/dev/loop-control"):
        return "no /dev/loop-control (loop driver not loaded, or no /dev in this container)"
    if shutil.which("losetup") is None:
        return "losetup (util-linux) is not installed"
    return ""


def require_loop() -> None:
    """Skip, saying why, where loop devices cannot be made; but as root
    under URING_REQUIRE_KERNEL (CI) a missing loop driver or losetup is a
    failure, not a skip."""
    reason = loop_unavailable()
    if reason:
        if REQUIRE_KERNEL and os.geteuid() == 0:
            pytest.fail(f"URING_REQUIRE_KERNEL is set and this runs as root, but {reason}")
        pytest.skip(reason)


def attached() -> Dict[str, str]:
    """Every attached loop device -> its backing file, from sysfs (the
    path as the kernel has it: `` (deleted)`` appended once unlinked)."""
    found = {}
    for entry in glob.glob("/sys/block/loop*/loop/backing_file"):
        name = entry.split("/")[3]
        try:
            with open(entry) as f:
                found[f"/dev/{name}"] = f.read().rstrip("\n")
        except OSError:
            continue  # detached meanwhile
    return found


def backing_of(dev: str) -> Optional[str]:
    return attached().get(dev)


def attach(backing: str, sector_size: int, *, direct_io: bool = False, offset: int = 0,
           sizelimit: int = 0) -> str:
    """``losetup --find --show`` *backing*: the new device's path."""
    cmd = ["losetup", "--find", "--show", "--sector-size", str(sector_size),
           f"--direct-io={'on' if direct_io else 'off'}"]
    if offset:
        cmd += ["--offset", str(offset)]
    if sizelimit:
        cmd += ["--sizelimit", str(sizelimit)]
    cmd.append(backing)
    err = ""
    for attempt in range(5):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        dev = proc.stdout.strip()
        if proc.returncode == 0 and dev.startswith("/dev/loop"):
            return dev
        if dev.startswith("/dev/loop"):  # attached, then something failed: not ours to keep
            detach(dev)
        # e.g. another process took the same free device between find and configure
        err = proc.stderr.strip()
        time.sleep(0.05 * (attempt + 1))
    pytest.fail(f"{' '.join(cmd)} failed: {err}")


def detach(dev: str) -> None:
    """``losetup -d``; waits until the kernel has let the device go (a
    device still open somewhere is detached on its last close: autoclear)."""
    for _ in range(50):
        if backing_of(dev) is None:
            return
        subprocess.run(["losetup", "-d", dev], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30)
        if backing_of(dev) is None:
            return
        time.sleep(0.02)


def sweep(belongs: Callable[[str], bool]) -> List[str]:
    """Detach every loop device whose backing file *belongs*; the ones
    detached."""
    gone = []
    for dev, back in attached().items():
        if belongs(back):
            detach(dev)
            gone.append(dev)
    return gone


def _ours_and_deleted(back: str) -> bool:
    return back.endswith(" (deleted)") and os.path.basename(back).startswith(PREFIX)


#: Directories outside the session's temporary directory that hold backing
#: files (on tmpfs), swept with it.
SHM = "/dev/shm"
_ROOTS: List[str] = []


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _of_a_dead_session(path: str) -> bool:
    """*path* (a backing file, or the /dev/shm directory of one) is named
    PREFIX + "<pid>-" by a test process that is gone (killed mid-run)."""
    name = os.path.basename(path.rsplit(" (deleted)", 1)[0])
    if not name.startswith(PREFIX):
        return False
    pid = name[len(PREFIX):].partition("-")[0]
    return pid.isdigit() and not _pid_alive(int(pid))


def _stale(back: str) -> bool:
    return (_ours_and_deleted(back) or _of_a_dead_session(back)
            or _of_a_dead_session(os.path.dirname(back)))


def _sweep_stale() -> None:
    sweep(_stale)
    for path in glob.glob(os.path.join(SHM, PREFIX + "*")):
        if _of_a_dead_session(path):
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _loop_safety_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Whatever happens in the tests (a fixture's detach that never ran, a
    device attached by hand), no loop device outlives the session on one of
    its files.  At start: devices of earlier, killed runs (our prefix with
    the pid of a process that is gone, or the file deleted since; another
    session running now still has its pid and its files)."""
    if loop_unavailable():
        yield
        return
    root = os.path.join(str(tmp_path_factory.getbasetemp()), "")
    _sweep_stale()
    try:
        yield
    finally:
        roots = [root] + [os.path.join(r, "") for r in _ROOTS]
        sweep(lambda back: back.startswith(tuple(roots)))
        for r in _ROOTS:
            shutil.rmtree(r, ignore_errors=True)


@dataclass
class LoopDevice:
    path: str
    backing: str
    sector_size: int
    direct_io: bool
    size: int
    offset: int = 0  # of the device in its backing file


@contextlib.contextmanager
def loop_device(directory: str, size: int, sector_size: int, *, direct_io: bool = False,
                offset: int = 0, sizelimit: int = 0) -> Iterator[LoopDevice]:
    """A loop device over a new sparse file in *directory*, detached
    (``losetup -d``) when the block ends, however it ends."""
    require_loop()
    fd, backing = _mkstemp(directory)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)
    dev = attach(backing, sector_size, direct_io=direct_io, offset=offset, sizelimit=sizelimit)
    try:
        name = os.path.basename(dev)
        with open(f"/sys/block/{name}/loop/dio") as f:
            dio = f.read().strip() == "1"
        if dio != direct_io:
            pytest.skip(f"losetup --direct-io={'on' if direct_io else 'off'} did not take on "
                        f"{dev} (the backing filesystem cannot do O_DIRECT at {sector_size} bytes?)")
        yield LoopDevice(dev, backing, sector_size, direct_io, sizelimit or size - offset, offset)
    finally:
        detach(dev)


def _mkstemp(directory: str) -> "tuple[int, str]":
    return tempfile.mkstemp(prefix=f"{PREFIX}{os.getpid()}-", suffix=".img", dir=directory)


# --- the devices --------------------------------------------------------------------------

CONFIGS = [
    pytest.param((512, False), id="lbs512"),
    pytest.param((4096, False), id="lbs4096"),
    pytest.param((4096, True), id="lbs4096-dio"),
]


@pytest.fixture(scope="module", params=CONFIGS)
def device(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopDevice]:
    """One loop device per configuration for the module: tests write only
    what they then check, so they can share it."""
    sector_size, direct_io = request.param
    directory = str(tmp_path_factory.mktemp("loop"))
    with loop_device(directory, DEV_SIZE, sector_size, direct_io=direct_io) as dev:
        yield dev


@pytest.fixture(params=COMBOS, ids=[f"{a}-{c}" for a, c in COMBOS])
def opened(request: pytest.FixtureRequest, device: LoopDevice) -> Iterator[block.Image]:
    aio, cache = request.param
    if aio == "io_uring":
        require_uring()
    with block.open_image(device.path, aio=aio, cache=cache, queue_depth=16) as img:
        yield img


def dev_read(dev: LoopDevice, length: int, offset: int) -> bytes:
    """What the device holds, read past the image (through the page cache
    of the device, which O_DIRECT writes invalidate)."""
    fd = os.open(dev.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


def dev_fill(dev: LoopDevice, data: bytes, offset: int) -> None:
    """Write *data* to the device past the image, down to the backing file."""
    fd = os.open(dev.path, os.O_RDWR | os.O_CLOEXEC)
    try:
        assert os.pwrite(fd, data, offset) == len(data)
        os.fsync(fd)
    finally:
        os.close(fd)


def dev_sync(dev: LoopDevice) -> None:
    fd = os.open(dev.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backing_read(dev: LoopDevice, length: int, offset: int) -> bytes:
    fd = os.open(dev.backing, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.pread(fd, length, dev.offset + offset)
    finally:
        os.close(fd)


def flushed(img: block.Image, dev: LoopDevice) -> None:
    """``img.flush()``: then the backing file holds what was written.
    With cache=unsafe flush is a no-op, so the device is synced directly."""
    img.flush()
    if img.cache == "unsafe":
        dev_sync(dev)


def ioctl_int(path: str, request: int, fmt: str) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        buf = fcntl.ioctl(fd, request, b"\0" * struct.calcsize(fmt))
        return int(struct.unpack(fmt, buf)[0])
    finally:
        os.close(fd)


def sysfs(dev: LoopDevice, name: str) -> str:
    with open(f"/sys/block/{os.path.basename(dev.path)}/{name}") as f:
        return f.read().strip()


def misaligned(data: bytes) -> memoryview:
    """*data* in memory one byte off any alignment O_DIRECT accepts."""
    buf = bytearray(len(data) + 1)
    view = memoryview(buf)[1:]
    view[:] = data
    return view


# --- reads and writes -----------------------------------------------------------------------


def test_write_read_back(opened: block.Image, device: LoopDevice) -> None:
    assert opened.is_block_device
    base = 1 * MiB
    one = os.urandom(3 * 4096)
    assert opened.pwrite(one, base) == len(one)
    parts = [os.urandom(n) for n in (device.sector_size, 2 * device.sector_size, 64 * KiB)]
    at = base + 64 * KiB
    assert opened.pwritev(parts, at) == sum(map(len, parts))
    big = os.urandom(MiB)
    assert opened.pwrite(big, 2 * MiB) == MiB
    vec = b"".join(parts)

    assert opened.pread(len(one), base) == one
    bufs = [bytearray(len(p)) for p in parts]
    assert opened.preadv(bufs, at) == len(vec)
    assert bufs == [bytearray(p) for p in parts]
    assert opened.pread(MiB, 2 * MiB) == big

    assert dev_read(device, len(one), base) == one
    assert dev_read(device, len(vec), at) == vec
    assert dev_read(device, MiB, 2 * MiB) == big

    flushed(opened, device)
    assert backing_read(device, len(one), base) == one
    assert backing_read(device, len(vec), at) == vec
    assert backing_read(device, MiB, 2 * MiB) == big

    # and the other way: written past the image, read through it
    other = os.urandom(8192)
    dev_fill(device, other, 4 * MiB)
    assert opened.pread(8192, 4 * MiB) == other
    assert opened.size == DEV_SIZE


def test_many_in_flight(opened: block.Image, device: LoopDevice) -> None:
    region = 2 * MiB
    content = os.urandom(region)
    dev_fill(device, content, 6 * MiB)
    rng = random.Random(device.sector_size)
    lbs = device.sector_size
    offsets = [rng.randrange(0, region // lbs) * lbs for _ in range(200)]
    bufs = [bytearray(lbs) for _ in offsets]
    done: List[BlockRequest] = []
    for b, off in zip(bufs, offsets):
        opened.submit_read(b, 6 * MiB + off, done.append)
    assert opened.engine.in_flight <= 16
    opened.wait()
    assert len(done) == len(offsets) and all(r.error is None for r in done)
    for b, off in zip(bufs, offsets):
        assert b == content[off: off + lbs]
    # writes to distinct blocks, all in flight together
    blocks = rng.sample(range(region // lbs), 64)
    datas = [os.urandom(lbs) for _ in blocks]
    for d, blk in zip(datas, blocks):
        opened.submit_write(d, 6 * MiB + blk * lbs)
    opened.wait()
    expected = bytearray(content)
    for d, blk in zip(datas, blocks):
        expected[blk * lbs: (blk + 1) * lbs] = d
    assert dev_read(device, region, 6 * MiB) == expected
    flushed(opened, device)
    assert backing_read(device, region, 6 * MiB) == expected


# --- O_DIRECT alignment ------------------------------------------------------------------------


def test_alignment_is_the_logical_sector(opened: block.Image, device: LoopDevice) -> None:
    lbs = ioctl_int(device.path, BLKSSZGET, "i")
    assert lbs == device.sector_size == int(sysfs(device, "queue/logical_block_size"))
    if opened.direct:
        assert opened.request_alignment == lbs
        assert opened.memory_alignment == int(sysfs(device, "queue/dma_alignment")) + 1
    else:
        assert (opened.request_alignment, opened.memory_alignment) == (1, 1)
    assert opened.engine.granule == opened.request_alignment


def test_kernel_enforces_the_sector_size(device: LoopDevice) -> None:
    """The alignment is not a formality: O_DIRECT at 512 bytes on a
    4096-byte-sector device is EINVAL, and probe_alignment says so."""
    fd = os.open(device.path, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
    buf = mmap.mmap(-1, 8192)
    try:
        view = memoryview(buf)
        assert probe_alignment(fd)[0] == device.sector_size
        if device.sector_size > 512:
            with pytest.raises(OSError) as info:
                os.preadv(fd, [view[:512]], 512)
            assert info.value.errno == errno.EINVAL
        else:
            assert os.preadv(fd, [view[:512]], 512) == 512
        assert os.preadv(fd, [view[:device.sector_size]], device.sector_size) == device.sector_size
        view.release()
    finally:
        buf.close()
        os.close(fd)


def test_misaligned_buffer_is_bounced(opened: block.Image, device: LoopDevice) -> None:
    lbs = device.sector_size
    base = 8 * MiB
    data = os.urandom(4 * lbs)
    bounced, rmw = opened.bounced, opened.rmw
    assert opened.pwrite(misaligned(data), base) == len(data)
    assert dev_read(device, len(data), base) == data
    out = misaligned(bytes(len(data)))
    assert opened.readinto(out, base) == len(data)
    assert out == data
    if opened.direct:
        assert opened.bounced == bounced + 2
    else:
        assert opened.bounced == bounced  # the page cache takes any buffer
    assert opened.rmw == rmw  # an aligned range needs no read-modify-write


def test_misaligned_range_read_modify_write(opened: block.Image, device: LoopDevice) -> None:
    lbs = device.sector_size
    base = 9 * MiB
    old = os.urandom(6 * lbs)
    dev_fill(device, old, base)
    model = bytearray(old)
    rmw = opened.rmw

    def write(data: bytes, at: int) -> None:
        assert opened.pwrite(data, base + at) == len(data)
        model[at: at + len(data)] = data

    write(os.urandom(lbs + 200), lbs - 100)   # both ends inside blocks
    write(os.urandom(7), 3 * lbs + 5)         # a few bytes inside one block
    write(os.urandom(lbs - 1), 4 * lbs + 1)   # to the end of a block, not from its start
    assert opened.pread(len(model), base) == model
    assert opened.pread(333, base + 17) == model[17: 350]            # misaligned read
    assert opened.pread(lbs + 3, base + lbs - 1) == model[lbs - 1: 2 * lbs + 2]
    assert dev_read(device, len(model), base) == model
    if opened.direct:
        assert opened.rmw == rmw + 3
    flushed(opened, device)
    assert backing_read(device, len(model), base) == model


def test_rmw_keeps_neighbours_in_flight(opened: block.Image, device: LoopDevice) -> None:
    """Misaligned writes to different bytes of the same sectors, all in
    flight together with aligned writes around them: no update lost."""
    lbs = device.sector_size
    base = 10 * MiB
    old = os.urandom(8 * lbs)
    dev_fill(device, old, base)
    model = bytearray(old)
    rng = random.Random(lbs + 1)
    pieces = []  # (at, length): sectors 1, 3, 5 cut at random into pieces; 0, 2, 4, 6 whole
    for blk in range(7):
        if blk % 2:
            cuts = sorted(rng.sample(range(1, lbs), 5))
            pieces += [(blk * lbs + a, b - a) for a, b in zip([0] + cuts, cuts + [lbs])]
        else:
            pieces.append((blk * lbs, lbs))
    rng.shuffle(pieces)  # no two overlap: any order of completion gives the same bytes
    for at, n in pieces:
        data = os.urandom(n)
        opened.submit_write(data, base + at)
        model[at: at + n] = data
    opened.wait()
    assert opened.pread(len(model), base) == model
    assert dev_read(device, len(model), base) == model


# --- flush, discard, write-zeroes -----------------------------------------------------------------


def test_flush(opened: block.Image, device: LoopDevice) -> None:
    data = os.urandom(64 * KiB)
    opened.pwrite(data, 11 * MiB)
    calls = opened.engine.submit_calls
    req = opened.submit_flush()
    opened.wait(req)
    assert req.finished and req.error is None
    if opened.cache == "unsafe":
        assert opened.engine.submit_calls == calls  # a no-op: nothing reached the kernel
        dev_sync(device)
    assert backing_read(device, len(data), 11 * MiB) == data


def test_discard(opened: block.Image, device: LoopDevice) -> None:
    """PUNCH_HOLE|KEEP_SIZE on a block device zeroes the range (the kernel's
    blkdev_issue_zeroout, NOFALLBACK); the loop driver carries it out by
    punching a hole in its backing file."""
    base = 12 * MiB
    old = os.urandom(256 * KiB)
    dev_fill(device, old, base)
    blocks = os.stat(device.backing).st_blocks
    opened.discard(base + 64 * KiB, 128 * KiB)
    expected = old[:64 * KiB] + bytes(128 * KiB) + old[192 * KiB:]
    assert opened.pread(len(old), base) == expected
    assert dev_read(device, len(old), base) == expected
    flushed(opened, device)
    assert backing_read(device, len(old), base) == expected
    assert os.stat(device.backing).st_blocks <= blocks - 128 * KiB // 512  # a real hole
    assert opened.size == DEV_SIZE


def test_write_zeroes(opened: block.Image, device: LoopDevice) -> None:
    lbs = device.sector_size
    base = 13 * MiB
    old = os.urandom(16 * lbs)
    dev_fill(device, old, base)
    opened.write_zeroes(base + 2 * lbs, 5 * lbs)
    expected = old[:2 * lbs] + bytes(5 * lbs) + old[7 * lbs:]
    assert opened.pread(len(old), base) == expected
    assert dev_read(device, len(old), base) == expected
    flushed(opened, device)
    assert backing_read(device, len(old), base) == expected
    assert opened.size == DEV_SIZE


# blkdev_fallocate refuses a range that is not whole logical sectors (EINVAL, in
# every cache mode); on a block device the image zeroes the partial head/tail
# sectors with writes and fallocates only the whole sectors between them
# (Image._split_fallocate), so a misaligned one zeroes exactly the range, as on
# a file.


@pytest.mark.parametrize("op", ["discard", "write_zeroes"])
def test_misaligned_discard_and_write_zeroes(opened: block.Image, device: LoopDevice,
                                             op: str) -> None:
    lbs = device.sector_size
    base = 14 * MiB
    old = os.urandom(8 * lbs)
    dev_fill(device, old, base)
    start, length = lbs + 100, 3 * lbs  # starts and ends inside a sector
    getattr(opened, op)(base + start, length)
    expected = old[:start] + bytes(length) + old[start + length:]
    assert opened.pread(len(old), base) == expected
    assert dev_read(device, len(old), base) == expected


# --- size and the end of the device ------------------------------------------------------------


def test_size_is_the_device_size(opened: block.Image, device: LoopDevice) -> None:
    assert opened.size == DEV_SIZE == device.size
    assert opened.size == ioctl_int(device.path, BLKGETSIZE64, "Q")
    assert opened.size == int(sysfs(device, "size")) * 512
    assert os.fstat(opened.fd).st_size == 0  # what fstat says of a device: no use


def test_read_past_the_end_is_zero_filled(opened: block.Image, device: LoopDevice) -> None:
    """As at end of file: the kernel returns 0 bytes at or past the end of
    the device, a short count across it; the image fills the rest with
    zeros (uring/block/engine.py: "A read that hits end of file (0 bytes)
    is zero-filled to its length")."""
    lbs = device.sector_size
    size = opened.size
    tail = os.urandom(2 * lbs)
    dev_fill(device, tail, size - len(tail))
    assert opened.pread(lbs, size) == bytes(lbs)                     # at the end
    assert opened.pread(4096, size + 10 * MiB) == bytes(4096)        # far past it
    assert opened.pread(4 * lbs, size - 2 * lbs) == tail + bytes(2 * lbs)  # across it
    assert opened.pread(300, size - 100) == tail[-100:] + bytes(200)       # misaligned, across
    bufs = [bytearray(lbs), bytearray(3 * lbs)]
    assert opened.preadv(bufs, size - lbs) == 4 * lbs
    assert bufs == [bytearray(tail[lbs:]), bytearray(3 * lbs)]
    assert opened.size == size


def test_write_past_the_end_is_enospc(opened: block.Image, device: LoopDevice) -> None:
    """A device cannot grow: a write at or past its end fails with ENOSPC
    (the kernel's answer; engine.py: a write that makes no progress fails
    with ENOSPC), and the device keeps its size."""
    lbs = device.sector_size
    size = opened.size
    for data, at in ((os.urandom(lbs), size), (os.urandom(100), size + 7),
                     (os.urandom(2 * lbs), size - lbs), (os.urandom(300), size - 100)):
        with pytest.raises(OSError) as info:
            opened.pwrite(data, at)
        assert info.value.errno == errno.ENOSPC, (at - size, len(data))
    assert opened.size == size == DEV_SIZE
    # the image is still usable
    last = os.urandom(lbs)
    assert opened.pwrite(last, size - lbs) == lbs
    assert dev_read(device, lbs, size - lbs) == last


def test_discard_and_write_zeroes_at_the_end(opened: block.Image, device: LoopDevice) -> None:
    """Across the end: a discard is cut at the end (KEEP_SIZE); write-zeroes
    (ZERO_RANGE without KEEP_SIZE, which on a file would extend it) fails.
    Neither changes the size."""
    lbs = device.sector_size
    size = opened.size
    old = os.urandom(4 * lbs)
    dev_fill(device, old, size - len(old))
    with pytest.raises(OSError):
        opened.write_zeroes(size - 2 * lbs, 4 * lbs)
    assert dev_read(device, len(old), size - len(old)) == old
    opened.discard(size - 2 * lbs, 4 * lbs)
    assert opened.pread(len(old), size - len(old)) == old[:2 * lbs] + bytes(2 * lbs)
    assert opened.size == size


# --- a device that is a window of its backing file ---------------------------------------------


@pytest.mark.parametrize("aio", ENGINES)
@pytest.mark.parametrize("cache", ["writeback", "none"])
def test_offset_and_sizelimit(tmp_path: "os.PathLike[str]", aio: str, cache: str) -> None:
    """A device 3 MiB long at 1 MiB into a 8 MiB file: its size is the
    window's, its end is the window's end (zeros past it, not the file's
    bytes), and its bytes land at the offset in the file."""
    if aio == "io_uring":
        require_uring()
    with loop_device(os.fspath(tmp_path), 8 * MiB, 4096, offset=MiB, sizelimit=3 * MiB) as dev:
        fd = os.open(dev.backing, os.O_RDWR | os.O_CLOEXEC)
        try:
            beyond = os.urandom(64 * KiB)  # in the file right after the window
            os.pwrite(fd, beyond, 4 * MiB)
            os.fsync(fd)
        finally:
            os.close(fd)
        with block.open_image(dev.path, aio=aio, cache=cache) as img:
            assert img.size == 3 * MiB
            data = os.urandom(8192)
            img.pwrite(data, 0)
            img.pwrite(data, 3 * MiB - 8192)
            assert img.pread(8192 + 4096, 3 * MiB - 8192) == data + bytes(4096)
            img.flush()
            assert backing_read(dev, 8192, 0) == data
            assert backing_read(dev, len(beyond), 3 * MiB) == beyond
            with pytest.raises(OSError) as info:
                img.pwrite(b"x" * 4096, 3 * MiB)
            assert info.value.errno == errno.ENOSPC
        assert backing_read(dev, len(beyond), 3 * MiB) == beyond  # untouched


# --- a device without write-zeroes --------------------------------------------------------------


@pytest.fixture(scope="module")
def no_write_zeroes() -> Iterator[LoopDevice]:
    """A loop device that cannot write zeroes (``queue/write_zeroes_max_bytes``
    0), as many real disks cannot: one over a tmpfs file, after a
    ZERO_RANGE (the loop driver passes it on to tmpfs, which refuses it, and
    from then on the device declares no write-zeroes; the kernel zeroes
    by writing zero pages instead)."""
    require_loop()
    if not os.path.isdir(SHM):
        pytest.skip(f"no {SHM} (tmpfs) to put the backing file on")
    directory = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=SHM)
    _ROOTS.append(directory)
    try:
        with loop_device(directory, 4 * MiB, 512) as dev:
            fd = os.open(dev.path, os.O_RDWR | os.O_CLOEXEC)
            try:
                fallocate(fd, FALLOC_FL_ZERO_RANGE, 0, 4096)
            finally:
                os.close(fd)
            if sysfs(dev, "queue/write_zeroes_max_bytes") != "0":
                pytest.skip(f"the loop driver of Linux {os.uname().release} keeps write-zeroes "
                            "on a tmpfs file: no device without it to test on")
            yield dev
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_write_zeroes_without_device_support(opened_nwz: block.Image,
                                             no_write_zeroes: LoopDevice) -> None:
    """ZERO_RANGE on a block device falls back to writing zeroes."""
    dev = no_write_zeroes
    old = os.urandom(64 * KiB)
    dev_fill(dev, old, 0)
    opened_nwz.write_zeroes(8 * KiB, 32 * KiB)
    expected = old[:8 * KiB] + bytes(32 * KiB) + old[40 * KiB:]
    assert opened_nwz.pread(len(old), 0) == expected
    assert dev_read(dev, len(old), 0) == expected


# PUNCH_HOLE|KEEP_SIZE on a block device is blkdev_issue_zeroout(NOFALLBACK):
# a device without write-zeroes (many SATA disks; here a loop device over
# tmpfs) answers EOPNOTSUPP to every discard.  The engine (_completed) then
# does that discard as write-zeroes (ZERO_RANGE, which the kernel falls back
# to zero writes for), so it still reads back zeros, as on a file.


def test_discard_without_device_support(opened_nwz: block.Image,
                                        no_write_zeroes: LoopDevice) -> None:
    dev = no_write_zeroes
    old = os.urandom(64 * KiB)
    dev_fill(dev, old, 64 * KiB)
    opened_nwz.discard(72 * KiB, 32 * KiB)
    expected = old[:8 * KiB] + bytes(32 * KiB) + old[40 * KiB:]
    assert opened_nwz.pread(len(old), 64 * KiB) == expected
    assert dev_read(dev, len(old), 64 * KiB) == expected


@pytest.fixture(params=COMBOS, ids=[f"{a}-{c}" for a, c in COMBOS])
def opened_nwz(request: pytest.FixtureRequest,
               no_write_zeroes: LoopDevice) -> Iterator[block.Image]:
    aio, cache = request.param
    if aio == "io_uring":
        require_uring()
    with block.open_image(no_write_zeroes.path, aio=aio, cache=cache) as img:
        yield img


# --- open options on a device --------------------------------------------------------------------


def test_iopoll_on_a_device_without_poll_queues(device: LoopDevice) -> None:
    """A loop device has no poll queues (``queue/io_poll`` 0): iopoll is
    refused at open with the reason, not left to fail every read."""
    require_uring()
    assert sysfs(device, "queue/io_poll") == "0"
    with pytest.raises(OSError) as info:
        block.open_image(device.path, aio="io_uring", cache="none", iopoll=True)
    assert info.value.errno == errno.EOPNOTSUPP
    assert "poll queues" in str(info.value)


@pytest.mark.parametrize("cache", ["writeback", "none"])
def test_read_only_and_auto(device: LoopDevice, cache: str) -> None:
    data = os.urandom(device.sector_size)
    dev_fill(device, data, 15 * MiB)
    with block.open_image(device.path, aio="auto", cache=cache, read_only=True) as img:
        assert img.is_block_device and img.auto_reason
        assert img.pread(len(data), 15 * MiB) == data
        for call in (lambda: img.pwrite(data, 0), lambda: img.discard(0, 4096),
                     lambda: img.write_zeroes(0, 4096)):
            with pytest.raises(PermissionError):
                call()
        assert img.size == DEV_SIZE
    assert dev_read(device, len(data), 15 * MiB) == data


# --- cleanup ------------------------------------------------------------------------------------


def test_fixture_detaches_when_the_test_fails(tmp_path: "os.PathLike[str]") -> None:
    seen: List[str] = []
    with pytest.raises(RuntimeError, match="boom"):
        with loop_device(os.fspath(tmp_path), MiB, 512) as dev:
            seen.append(dev.path)
            assert backing_of(dev.path) == dev.backing
            img = block.open_image(dev.path, aio="threads")  # still open when it fails
            try:
                raise RuntimeError("boom")
            finally:
                img.close()
    assert backing_of(seen[0]) is None


def test_safety_net_detaches_what_is_left(tmp_path: "os.PathLike[str]") -> None:
    require_loop()
    fd, backing = _mkstemp(os.fspath(tmp_path))
    os.ftruncate(fd, MiB)
    os.close(fd)
    dev = attach(backing, 512)
    try:
        root = os.path.join(os.fspath(tmp_path), "")
        assert sweep(lambda back: back.startswith(root)) == [dev]
        assert backing_of(dev) is None
        # ours, in use by this live session: never taken for stale
        dev = attach(backing, 512)
        assert not _stale(backing_of(dev) or "")
        # a leftover of a killed run: named after a pid that is gone
        child = subprocess.Popen([sys.executable, "-c", ""])
        child.wait()
        dead = os.path.join(os.fspath(tmp_path), f"{PREFIX}{child.pid}-x.img")
        os.rename(backing, dead)  # the kernel follows the file
        assert backing_of(dev) == dead and _stale(dead)
        assert dev in sweep(_stale)
        assert backing_of(dev) is None
        # or our file, deleted since
        dev = attach(dead, 512)
        os.unlink(dead)
        assert _ours_and_deleted(backing_of(dev) or "")
        assert dev in sweep(_stale)
        assert backing_of(dev) is None
    finally:
        detach(dev)


# --- the benchmark on a device ----------------------------------------------------------------


def bench(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "uring", "bench", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def device_state(dev: LoopDevice) -> tuple:
    st = os.stat(dev.path)
    assert stat.S_ISBLK(st.st_mode)
    bst = os.stat(dev.backing)
    return (st.st_rdev, st.st_mode, ioctl_int(dev.path, BLKGETSIZE64, "Q"), backing_of(dev.path),
            bst.st_size, bst.st_ino)


@pytest.mark.parametrize("size", ["4M", None], ids=["size4M", "whole-device"])
def test_bench_on_a_device(device: LoopDevice, size: Optional[str]) -> None:
    require_uring()
    before = device_state(device)
    args = [f"--filename={device.path}", "--ioengine=io_uring", "--rw=randread",
            "--runtime=0.3", "--direct=1", "--output-format=json"]
    if size:
        args.append(f"--size={size}")
    proc = bench(*args)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["global options"]["filename"] == device.path
    (job,) = doc["jobs"]
    assert job["error"] == 0
    assert job["read"]["total_ios"] > 0 and job["read"]["io_bytes"] > 0
    assert job["write"]["total_ios"] == 0
    if size:  # not time based: done once it has read the region, or at the runtime
        assert job["read"]["io_bytes"] <= 4 * MiB
    assert "laying out" not in proc.stderr and "extending" not in proc.stderr
    assert device_state(device) == before


# The kernel drops a block device's page cache at its last close (blkdev_put:
# sync_blockdev, then kill_bdev).  The bench opens and closes the device in
# warm(), again in residency() and again for the cell, so it holds every block
# device open from Workspace.prepare() to close(): what it warmed stays
# cached.  (invalidate=0 asks for that warming: a job naming an engine
# otherwise drops the cache, as fio does.)


def test_bench_buffered_on_a_device_is_cached(device: LoopDevice) -> None:
    require_uring()
    proc = bench(f"--filename={device.path}", "--ioengine=io_uring", "--rw=randread",
                 "--size=4M", "--runtime=0.3", "--direct=0", "--invalidate=0",
                 "--output-format=json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["jobs"][0]["read"]["total_ios"] > 0
    assert "stayed resident" not in proc.stderr, proc.stderr


def test_bench_never_grows_or_removes_a_device(device: LoopDevice) -> None:
    """More than the device holds is a usage error, not a file to extend;
    and the bench itself neither creates, extends nor unlinks the device."""
    before = device_state(device)
    proc = bench(f"--filename={device.path}", "--ioengine=threads", "--rw=randread",
                 f"--size={2 * DEV_SIZE}", "--runtime=0.1", "--direct=1")
    assert proc.returncode == 2, proc.stderr
    assert "more than" in proc.stderr and device.path in proc.stderr
    assert device_state(device) == before


def test_bench_touches_no_device_file_in_process(device: LoopDevice,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    """The same, watched from inside: every call that could create,
    extend, truncate or remove a file is refused for the device's path."""
    from uring.bench import cli, files, runner

    touched: List[str] = []

    def guard(name: str, real: Callable) -> Callable:
        def call(path: object, *args: object, **kwargs: object) -> object:
            if isinstance(path, (str, bytes, os.PathLike)) and os.fsdecode(path) == device.path:
                touched.append(name)
                raise AssertionError(f"bench called {name} on {device.path}")
            return real(path, *args, **kwargs)
        return call

    for mod, name in ((os, "unlink"), (os, "remove"), (os, "truncate"), (os, "rename"),
                      (shutil, "rmtree"), (files, "make_file"), (runner, "make_file")):
        monkeypatch.setattr(mod, name, guard(name, getattr(mod, name)))
    real_open = os.open

    def guarded_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if (isinstance(path, (str, bytes, os.PathLike)) and os.fsdecode(path) == device.path
                and flags & (os.O_CREAT | os.O_TRUNC)):
            touched.append("open(O_CREAT|O_TRUNC)")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)
    before = device_state(device)
    rc = cli.main([f"--filename={device.path}", "--ioengine=threads", "--rw=randread",
                   "--size=1M", "--direct=1", "--output-format=json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert json.loads(out.out)["jobs"][0]["read"]["total_ios"] > 0
    assert touched == []
    assert device_state(device) == before

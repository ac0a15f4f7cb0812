"""Batch surfaces: ``prep_reads``/``prep_writes`` (one call, one record per
request, all or nothing), ``ArenaQueue`` (fixed slots, SQEs formatted once,
results as arrays) and ``reap_words``; on a real file, real kernel."""

from __future__ import annotations

import errno
import gc
import os
import time
import weakref
from array import array
from typing import Any, Iterator, List, Optional, Tuple

import pytest
from conftest import require_uring

import uring
from uring import abi
from uring.arena import ArenaQueue

BS = 4096


@pytest.fixture
def data_file(tmp_path: object) -> Iterator[Tuple[int, bytes]]:
    path = os.path.join(str(tmp_path), "data.bin")
    content = os.urandom(64 * BS)
    with open(path, "wb") as f:
        f.write(content)
    fd = os.open(path, os.O_RDWR)
    try:
        yield fd, content
    finally:
        os.close(fd)


@pytest.fixture
def ring() -> Iterator[uring.Ring]:
    require_uring()
    with uring.Ring(32) as r:
        yield r


def test_prep_reads_reads_each_buffer_at_its_offset(ring: uring.Ring,
                                                    data_file: Tuple[int, bytes]) -> None:
    fd, content = data_file
    bufs = [bytearray(BS) for _ in range(8)]
    offsets = [(7 - i) * 3 * BS for i in range(8)]
    assert ring.prep_reads(fd, bufs, offsets, list(range(100, 108))) == 8
    assert ring.in_flight == 8  # one record per request
    assert all(ring.held(100 + i).keep is not None for i in range(8))
    got = {c.user_data: c.result() for c in ring.completions(8)}
    assert got == {100 + i: BS for i in range(8)}
    for buf, off in zip(bufs, offsets):
        assert bytes(buf) == content[off:off + BS]
    assert ring.in_flight == 0


def test_prep_reads_sqes_are_what_was_asked(ring: uring.Ring,
                                            data_file: Tuple[int, bytes]) -> None:
    """Each SQE of the batch equals an ``io_uring_sqe`` built here, field by
    field (the template and strided stores write nothing else)."""
    fd, _ = data_file
    pins = [uring.PinnedBuffer(bytearray(BS + i), writable=True) for i in range(5)]
    offsets = [0, BS, -1, 2**40, 7]
    first = ring.sq_prepared
    ring.prep_reads(fd, pins, offsets, [11, 12, 13, 14, 15], rw_flags=4)
    for i in range(5):
        sqe = ring.read_sqe((first + i) & (ring.sq_entries - 1))
        want = abi.io_uring_sqe()
        want.opcode, want.fd, want.off = int(abi.IORING_OP_READ), fd, offsets[i] % 2**64
        want.addr, want.len, want.rw_flags, want.user_data = pins[i].address, BS + i, 4, 11 + i
        assert bytes(sqe)[:64] == bytes(want)
    ring.wait(5)


def test_prep_reads_batches_of_other_shapes_are_packed_as_asked(
        ring: uring.Ring, data_file: Tuple[int, bytes], tmp_path: object) -> None:
    """``prep_batch`` keeps the common fields it packed, by opcode, flags,
    fd and op flags: batches alternating between two files and two sets of
    flags each carry their own, read back from the SQ and by their data
    (a kept template of the wrong shape would read the other file)."""
    fd, content = data_file
    other_path = os.path.join(str(tmp_path), "other.bin")
    other = os.urandom(8 * BS)
    with open(other_path, "wb") as f:
        f.write(other)
    fd2 = os.open(other_path, os.O_RDONLY)
    try:
        for k, (f, data, rw_flags) in enumerate([(fd, content, 0), (fd2, other, 0),
                                                 (fd, content, 4), (fd2, other, 4),
                                                 (fd, content, 0)]):
            bufs = [bytearray(BS) for _ in range(3)]
            first = ring.sq_prepared
            ring.prep_reads(f, bufs, [2 * BS, 0, BS], [10 * k + i for i in range(3)],
                            rw_flags=rw_flags)
            for i in range(3):
                sqe = ring.read_sqe((first + i) & (ring.sq_entries - 1))
                assert (sqe.fd, sqe.rw_flags, sqe.user_data) == (f, rw_flags, 10 * k + i)
            assert all(c.result() == BS for c in ring.completions(3))
            assert [bytes(b) for b in bufs] == [data[2 * BS:3 * BS], data[:BS], data[BS:2 * BS]]
    finally:
        os.close(fd2)


def test_prep_writes_writes_and_records(ring: uring.Ring, data_file: Tuple[int, bytes]) -> None:
    fd, content = data_file
    chunks = [bytes([i]) * BS for i in range(4)]
    ring.prep_writes(fd, chunks, [i * BS for i in range(4)], [1, 2, 3, 4])
    assert sorted((c.user_data, c.result()) for c in ring.completions(4)) == [
        (i, BS) for i in range(1, 5)]
    assert os.pread(fd, 4 * BS, 0) == b"".join(chunks)


@pytest.mark.parametrize("bad", ["offset", "user_data", "read-only", "clash", "twice", "length"])
def test_prep_reads_is_all_or_nothing(ring: uring.Ring, data_file: Tuple[int, bytes],
                                      bad: str) -> None:
    """One bad request refuses the whole batch before any slot or record is
    written: the SQ and the table are as before, and the ring goes on."""
    fd, _ = data_file
    ring.prep_read(fd, bytearray(BS), 0, 50)  # a live request
    bufs: List[object] = [bytearray(BS) for _ in range(6)]
    offsets: List[object] = [i * BS for i in range(6)]
    uds: List[object] = list(range(1, 7))
    if bad == "offset":
        offsets[3] = -7
    elif bad == "user_data":
        uds[3] = 2**64
    elif bad == "read-only":
        bufs[3] = b"x" * BS
    elif bad == "clash":
        uds[3] = 50
    elif bad == "twice":
        uds[3] = 2
    else:
        offsets = offsets[:5]
    before = (ring.sq_prepared, ring.in_flight)
    with pytest.raises((ValueError, TypeError)):
        ring.prep_reads(fd, bufs, offsets, uds)  # type: ignore[arg-type]
    assert (ring.sq_prepared, ring.in_flight) == before
    assert [c.user_data for c in ring.completions(1)] == [50]
    assert ring.prep_reads(fd, [bytearray(BS)] * 2, [0, BS], [1, 2]) == 2
    assert len(ring.wait(2)) == 2


def test_prep_reads_without_room_writes_nothing(data_file: Tuple[int, bytes]) -> None:
    require_uring()
    fd, _ = data_file
    with uring.Ring(4) as ring:
        ring.prep_nop(1)
        with pytest.raises(uring.SubmissionQueueFull):
            ring.prep_reads(fd, [bytearray(BS)] * 4, [0] * 4, [2, 3, 4, 5])
        assert ring.sq_ready == 1 and ring.in_flight == 1  # the NOP's user_data only
    with uring.Ring(4, sq_full="submit") as ring:  # makes room by submitting
        ring.prep_nop(1)
        ring.prep_reads(fd, [bytearray(BS)] * 4, [0] * 4, [2, 3, 4, 5])
        assert sorted(c.user_data for c in ring.wait(5)) == [1, 2, 3, 4, 5]


def test_reap_words_are_the_cq_s_own_words(ring: uring.Ring) -> None:
    ring.prep_nop(7)
    ring.prep_nop_hooks(8, result=-errno.EIO)
    ring.submit_and_wait(2)
    words = ring.reap_words()
    assert len(words) == 4
    pairs = {words[0]: words[1], words[2]: words[3]}
    assert pairs[7] & 0xFFFFFFFF == 0
    assert pairs[8] & 0xFFFFFFFF == (-errno.EIO) & 0xFFFFFFFF
    assert ring.in_flight == 0 and ring.reap_words() == array("Q")


@pytest.mark.parametrize("with_records", [False, True])
def test_reap_words_keeps_a_multishot_record_until_its_final_cqe(ring: uring.Ring,
                                                                 with_records: bool) -> None:
    """A multishot timeout posts CQEs flagged IORING_CQE_F_MORE, then a
    final one: reap_words leaves its record (and the timespec it holds)
    in place through the first ones and releases it with the last; with
    *records*, a non-final CQE's entry is None, the final one's the
    record, in CQE order beside a NOP's."""
    ud = ring.prep_timeout(0.001, count=3, multishot=True)
    ring.prep_nop(9)
    seen: List[int] = []
    got: List[Any] = []
    deadline = time.monotonic() + 5
    while len(seen) < 4 and time.monotonic() < deadline:
        ring.submit_and_wait(1)
        records: Optional[List[Any]] = [] if with_records else None
        words = ring.reap_words(records=records)
        for i in range(0, len(words), 2):
            seen.append(words[i])
            final = not (words[i + 1] >> 32) & abi.IORING_CQE_F_MORE
            if records is not None:
                got.append((words[i], final, records[i // 2]))
            if words[i] == ud:  # held while more are to come, released by the last
                assert ring.in_flight_user_data(ud) == (not final)
    assert sorted(seen) == sorted([ud, ud, ud, 9])
    assert ring.in_flight == 0
    if with_records:
        timeouts = [(final, record) for user_data, final, record in got if user_data == ud]
        assert [final for final, _ in timeouts] == [False, False, True]
        assert [record is None for _, record in timeouts] == [True, True, False]
        assert timeouts[-1][1].user_data == ud


@pytest.mark.parametrize("registered", [False, True])
def test_arena_queue_reads_and_reaps_arrays(registered: bool,
                                            data_file: Tuple[int, bytes]) -> None:
    require_uring()
    fd, content = data_file
    with uring.Ring(16) as ring:
        q = ArenaQueue(ring, fd, 8, BS, registered=registered)
        assert q.opcode == int(abi.IORING_OP_READ_FIXED if registered else abi.IORING_OP_READ)
        offsets = [(i * 5 % 64) * BS for i in range(8)]
        assert q.submit(list(range(8)), offsets) == 8
        assert q.in_flight == 8 and ring.in_flight == 8
        seen = {}
        while len(seen) < 8:
            slots, res = q.reap(wait=1)
            assert isinstance(slots, array) and isinstance(res, array)
            seen.update(zip(slots, res))
        assert seen == {i: BS for i in range(8)}
        for i in range(8):
            assert bytes(q.buffer(i)) == content[offsets[i]:offsets[i] + BS]
        assert q.in_flight == 0 and ring.in_flight == 0
        # a slot in flight is refused; a slot given twice too
        q.submit([3], [0])
        with pytest.raises(ValueError, match="in flight"):
            q.submit([3], [BS])
        with pytest.raises(ValueError):
            q.submit([4, 4], [0, BS])
        with pytest.raises(ValueError, match="offset"):
            q.submit([4], [-2])
        assert q.in_flight == 1
        assert q.reap(wait=1)[0].tolist() == [3]


def test_arena_queue_failures_and_other_cqes(tmp_path: object) -> None:
    """A failed request is a negative result at its index, named by
    ``failures``; another request's CQE reaped meanwhile is kept, not lost."""
    require_uring()
    d = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        with uring.Ring(16) as ring:
            q = ArenaQueue(ring, d, 2, BS)
            q.submit([0, 1], [0, 0])
            ring.prep_nop(77)
            got = {}
            while len(got) < 2:
                slots, res = q.reap(wait=1)
                got.update(zip(slots, res))
                fails = q.failures(slots, res)
                assert all(isinstance(e, IsADirectoryError) for _, e in fails)
            assert got == {0: -errno.EISDIR, 1: -errno.EISDIR}
            while not q.others:
                q.reap(wait=1)
            assert q.others == [(77, 0, 0)]
    finally:
        os.close(d)


def test_arena_queue_writes(data_file: Tuple[int, bytes]) -> None:
    require_uring()
    fd, _ = data_file
    with uring.Ring(8) as ring:
        q = ArenaQueue(ring, fd, 2, BS, write=True)
        q.buffer(0)[:] = b"a" * BS
        q.buffer(1)[:] = b"b" * BS
        q.submit([0, 1], [BS, 0])
        done: List[int] = []
        while len(done) < 2:
            done += q.reap(wait=1)[1].tolist()
        assert done == [BS, BS]
        assert os.pread(fd, 2 * BS, 0) == b"b" * BS + b"a" * BS


def test_the_arena_lives_while_its_requests_are_in_flight(tmp_path: object) -> None:
    """The records hold the queue (and so its arena): dropping every
    reference of ours keeps it alive until the final CQE."""
    require_uring()
    rd, wr = os.pipe()
    try:
        with uring.Ring(8) as ring:
            q = ArenaQueue(ring, rd, 1, 16)
            q.submit([0], [-1])  # a pipe, at the file position: the read waits for data
            ref = weakref.ref(q)
            del q
            gc.collect()
            assert ref() is not None and ring.in_flight == 1
            os.write(wr, b"hello")
            cqe = ring.wait(1)[0]
            assert cqe.res == 5
            gc.collect()
            assert ref() is None
    finally:
        os.close(rd)
        os.close(wr)

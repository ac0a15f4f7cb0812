"""Every SQE the kernel is handed is the SQE the prep asked for.

A property test (issue 12, item 7): hypothesis generates a program of
actions on a 4-entry ring (NOPs with and without flags, reads and writes on
a small temporary file at random offsets, -1 included, and random lengths,
fsyncs, chains built with ``ring.link()``, preps that must fail, submits and
waits that wrap the SQ around).  The ring talks to the real kernel through
``SnoopKernel``, a ``uring.syscalls.Kernel`` that copies, at every
``io_uring_enter``, the SQEs the kernel then consumes (from its SQ head
before the call to its head after it), so what is checked is exactly what
the kernel read.  Each is compared, field by field, with an
``abi.io_uring_sqe`` the test builds on its own from what the prep was
asked: opcode, flags (``IOSQE_IO_LINK``/``IOSQE_IO_HARDLINK`` on every
member of a chain but the last), fd, ``off`` as a u64, the buffer's
address (taken here with ctypes, not from the library), ``len``,
``rw_flags``/``fsync_flags``, ``user_data``, and zero everywhere else.

A prep that must fail (a field out of range, a negative length, a released
``PinnedBuffer``, a user_data still in flight, a full SQ) must raise before
anything is written: the SQ does not move, and no later SQE carries a trace
of it.

Below it, the two defects of issue 12 as users met them, as plain tests.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
from typing import Any, Dict, List, Optional, Set, Tuple

import pytest
from conftest import require_uring
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import uring
from uring import abi
from uring.syscalls import Kernel, LinuxKernel

ENTRIES = 4
U32, U64 = 1 << 32, 1 << 64
FILE_SIZE = 8192
LINK = int(abi.IOSQE_IO_LINK)
HARDLINK = int(abi.IOSQE_IO_HARDLINK)
#: SQE flags a prep may carry here: none makes the kernel refuse the SQE at
#: submission (that would stop a batch) or skip its CQE (the program counts
#: one CQE per SQE).
PREP_FLAGS = st.sampled_from([0, 0, 0, 0, LINK, HARDLINK, int(abi.IOSQE_ASYNC),
                              int(abi.IOSQE_IO_DRAIN), LINK | int(abi.IOSQE_ASYNC)])
SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None  # fsync is free on tmpfs


class SnoopKernel(Kernel):
    """The running kernel, with a copy of every SQE it consumes.

    ``handed`` maps each SQ position (the kernel's u32 head value) to the
    bytes of the SQE the kernel read there.  ``enter`` snapshots the
    published SQEs (from the SQ head to the published tail) before
    forwarding, then keeps those the kernel's head moved past.  Without
    ``IORING_SETUP_NO_SQARRAY`` the ring's array is the identity, so
    position p is slot p % entries either way (the program's ring uses
    ``IORING_SETUP_NO_SQARRAY``, where the kernel reads slot p % entries
    itself)."""

    def __init__(self) -> None:
        self.real = LinuxKernel()
        self.ring: Optional[uring.Ring] = None
        self.handed: Dict[int, bytes] = {}
        self.twice: List[int] = []

    def setup(self, entries: int, params_address: int) -> int:
        return self.real.setup(entries, params_address)

    def register(self, fd: int, opcode: int, arg: int, nr_args: int) -> int:
        return self.real.register(fd, opcode, arg, nr_args)

    def mmap(self, fd: int, length: int, offset: int) -> Any:
        return self.real.mmap(fd, length, offset)

    def close(self, fd: int) -> None:
        self.real.close(fd)

    def enter(self, fd: int, to_submit: int, min_complete: int, flags: int,
              arg: int = 0, argsz: int = 0) -> int:
        ring = self.ring
        if ring is None or not to_submit:
            return self.real.enter(fd, to_submit, min_complete, flags, arg, argsz)
        head, tail = ring.sq_head, ring.sq_tail
        snap = [bytes(ring.read_sqe((head + i) % ring.sq_entries))
                for i in range(min(to_submit, (tail - head) % U32))]
        try:
            return self.real.enter(fd, to_submit, min_complete, flags, arg, argsz)
        finally:
            for i in range((ring.sq_head - head) % U32):
                position = (head + i) % U32
                if position in self.handed:
                    self.twice.append(position)
                self.handed[position] = snap[i]


def sqe(opcode: int, user_data: int, *, flags: int = 0, fd: int = -1, off: int = 0,
        addr: int = 0, length: int = 0, op_flags: int = 0, op_flags_name: str = "rw_flags") -> bytes:
    """The 64 bytes of an ``io_uring_sqe`` with these fields, every other zero."""
    s = abi.io_uring_sqe()
    s.opcode = opcode
    s.flags = flags
    s.fd = fd
    s.off = off % U64
    s.addr = addr
    s.len = length
    setattr(s, op_flags_name, op_flags)
    s.user_data = user_data
    return bytes(s)


def describe(raw: bytes) -> Dict[str, int]:
    s = abi.io_uring_sqe.from_buffer_copy(raw[:64])
    fields = {name: getattr(s, name) for name in (
        "opcode", "flags", "ioprio", "fd", "off", "addr", "len", "rw_flags", "user_data",
        "buf_index", "personality", "splice_fd_in", "addr3")}
    fields["__pad2"] = int.from_bytes(raw[56:64], "little")
    return fields


def address(buf: bytearray) -> int:
    """Where *buf*'s bytes are, found with ctypes (the export is dropped at
    once; nothing resizes these buffers while the program runs)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


class Program:
    """One generated run: the ring, the model of what the kernel must be
    handed, and the bookkeeping of CQEs."""

    def __init__(self, data: Any, path: str) -> None:
        self.data = data
        self.kernel = SnoopKernel()
        self.ring = uring.Ring(ENTRIES, kernel=self.kernel)
        self.kernel.ring = self.ring
        self.fd = os.open(path, os.O_RDWR)
        self.buffers = [bytearray(os.urandom(n)) for n in (1, 7, 64, 512)]
        self.pinned = [uring.PinnedBuffer(b, writable=True) for b in self.buffers[:2]]
        self.expected: Dict[int, bytes] = {}  # SQ position -> the SQE asked for
        self.what: Dict[int, str] = {}
        self.position = self.ring.sq_tail  # of the next successful prep
        self.used: Set[int] = set()       # every user_data given so far
        self.live: Set[int] = set()       # user_data of records not yet reaped
        self.reaped = 0
        self.fresh = 1 << 40
        self.log: List[str] = []

    # -- drawing ------------------------------------------------------------------

    def draw(self, strategy: Any, label: str = "") -> Any:
        return self.data.draw(strategy, label=label or None)

    def user_data(self) -> int:
        ud = self.draw(st.one_of(st.integers(0, 16), st.integers(0, U64 - 1),
                                 st.just(U64 - 1)), "user_data")
        if ud in self.used:  # the ring refuses a live one; a NOP's would be ambiguous
            self.fresh += 1
            ud = self.fresh
        self.used.add(ud)
        return ud

    def buffer(self) -> Tuple[Any, bytearray]:
        i = self.draw(st.integers(0, len(self.buffers) - 1), "buffer")
        if i < len(self.pinned) and self.draw(st.booleans(), "pinned"):
            return self.pinned[i], self.buffers[i]
        return self.buffers[i], self.buffers[i]

    # -- preps that succeed --------------------------------------------------------

    def prep(self, chain_flag: int = 0) -> int:
        """One successful prep of a random kind; returns its SQ position.
        *chain_flag* is the flag ``link()`` will OR in (not in the model
        yet: the caller adds it once the block closed)."""
        kind = self.draw(st.sampled_from(["nop", "nop", "nop", "read", "write", "fsync"]), "kind")
        flags = self.draw(PREP_FLAGS, "flags")
        ud = self.user_data()
        ring = self.ring
        if kind == "nop":
            if flags or self.draw(st.booleans(), "flags keyword"):
                got = ring.prep_nop(user_data=ud, flags=flags)
            else:
                got = ring.prep_nop(ud)
            want = sqe(abi.IORING_OP_NOP, ud, flags=flags)
        elif kind in ("read", "write"):
            buf, raw = self.buffer()
            offset = self.draw(st.one_of(st.just(-1), st.integers(0, FILE_SIZE),
                                         *([st.integers(0, (1 << 63) - 1)] if kind == "read" else [])),
                               "offset")
            length = self.draw(st.one_of(st.none(), st.integers(0, len(raw))), "length")
            rw_flags = self.draw(st.sampled_from([0, 0, getattr(os, "RWF_NOWAIT", 8)]), "rw_flags")
            prep = ring.prep_read if kind == "read" else ring.prep_write
            got = prep(self.fd, buf, offset, ud, length=length, rw_flags=rw_flags, flags=flags)
            opcode = abi.IORING_OP_READ if kind == "read" else abi.IORING_OP_WRITE
            want = sqe(opcode, ud, flags=flags, fd=self.fd, off=offset, addr=address(raw),
                       length=len(raw) if length is None else length, op_flags=rw_flags)
            self.live.add(ud)
        else:
            datasync = self.draw(st.booleans(), "datasync")
            got = ring.prep_fsync(self.fd, ud, datasync=datasync, flags=flags)
            want = sqe(abi.IORING_OP_FSYNC, ud, flags=flags, fd=self.fd,
                       op_flags=int(abi.IORING_FSYNC_DATASYNC) if datasync else 0,
                       op_flags_name="fsync_flags")
            self.live.add(ud)
        assert got == ud
        position = self.position
        self.expected[position] = want
        self.what[position] = f"{kind} flags={flags:#x} ud={ud}"
        self.log.append(f"{position}: {self.what[position]}")
        self.position += 1
        return position

    def one(self) -> None:
        """The "prep" action: a full SQ is submitted first ("full" is the
        action that tries it)."""
        if not self.ring.sq_space_left:
            self.submit()
        self.prep()

    def chain(self) -> None:
        hard = self.draw(st.booleans(), "hard")
        n = self.draw(st.integers(1, ENTRIES), "members")
        if self.ring.sq_space_left < n:
            self.submit()
        bit = HARDLINK if hard else LINK
        members = []
        with self.ring.link(hard=hard):
            for _ in range(n):
                members.append(self.prep())
        for position in members[:-1]:  # every member but the last
            s = abi.io_uring_sqe.from_buffer_copy(self.expected[position])
            s.flags |= bit
            self.expected[position] = bytes(s)
        self.log.append(f"  chained {members} hard={hard}")

    # -- preps that must fail -------------------------------------------------------

    def failing(self) -> None:
        ring = self.ring
        kinds = ["nop ud 2**64", "nop ud -1", "nop flags 256", "read negative length",
                 "read too long", "read released", "write released", "read off 2**64",
                 "read fd 2**31", "read into bytes", "write rw_flags 2**32", "fsync ud 2**64",
                 "read live user_data"]
        kind = self.draw(st.sampled_from(kinds), "failure")
        # What is live depends on how fast the kernel was: draw the same way
        # whatever it holds (hypothesis replays the draws, not the timing).
        pick = self.draw(st.integers(0, 1 << 16), "which live")
        if kind == "read live user_data" and not self.live:
            kind = "nop ud 2**64"
        before = (ring.sq_ready, ring.sq_tail)
        fd, buf = self.fd, self.buffers[2]
        released = None
        if "released" in kind:
            grown = bytearray(64)
            released = uring.PinnedBuffer(grown, writable=True)
            released.release()
            grown.extend(bytes(1 << 16))  # its memory moves
        expect: Tuple[type, ...] = (TypeError,) if kind == "read into bytes" else (ValueError,)
        if ring.sq_space_left == 0:  # which check comes first is the library's choice
            expect += (uring.SubmissionQueueFull,)
        with pytest.raises(expect):
            if kind == "nop ud 2**64":
                ring.prep_nop(U64)
            elif kind == "nop ud -1":
                ring.prep_nop(-1)
            elif kind == "nop flags 256":
                ring.prep_nop(user_data=self.user_data(), flags=256)
            elif kind == "read negative length":
                ring.prep_read(fd, buf, 0, self.user_data(), length=-1)
            elif kind == "read too long":
                ring.prep_read(fd, buf, 0, self.user_data(), length=len(buf) + 1)
            elif kind == "read released":
                ring.prep_read(fd, released, 0, self.user_data())
            elif kind == "write released":
                ring.prep_write(fd, released, 0, self.user_data())
            elif kind == "read off 2**64":
                ring.prep_read(fd, buf, U64, self.user_data())
            elif kind == "read fd 2**31":
                ring.prep_read(1 << 31, buf, 0, self.user_data())
            elif kind == "read into bytes":
                ring.prep_read(fd, b"read-only", 0, self.user_data())
            elif kind == "write rw_flags 2**32":
                ring.prep_write(fd, buf, 0, self.user_data(), rw_flags=U32)
            elif kind == "fsync ud 2**64":
                ring.prep_fsync(fd, U64)
            else:
                live = sorted(self.live)
                ring.prep_read(fd, buf, 0, live[pick % len(live)])
        assert (ring.sq_ready, ring.sq_tail) == before, f"{kind} moved the SQ"
        self.log.append(f"  refused: {kind}")

    def full(self) -> None:
        """A prep on a full SQ raises SubmissionQueueFull and writes nothing."""
        while self.ring.sq_space_left:
            self.prep()
        before = self.ring.sq_ready
        with pytest.raises(uring.SubmissionQueueFull):
            self.ring.prep_nop(self.user_data())
        assert self.ring.sq_ready == before
        self.log.append("  refused: SQ full")

    # -- the kernel side --------------------------------------------------------------

    def in_kernel(self) -> int:
        return len(self.kernel.handed) - self.reaped

    def reap(self, cqes: List[Any]) -> None:
        self.reaped += len(cqes)
        for c in cqes:
            self.live.discard(c[0])

    def submit(self) -> None:
        self.ring.submit()
        self.check()
        self.log.append("  submit")

    def wait(self) -> None:
        outstanding = self.in_kernel() + self.ring.sq_ready
        # A fraction of what is outstanding (how many earlier waits reaped
        # depends on the kernel's timing; the draws must not).
        n = outstanding * self.draw(st.integers(0, 4), "wait quarters") // 4
        timeout = self.draw(st.sampled_from([None, None, 5.0]), "timeout")
        got = self.ring.wait(n, timeout=timeout, raw=True)
        assert len(got) >= n, (n, got)
        self.reap(got)
        self.check()
        self.log.append(f"  wait({n}, timeout={timeout}) -> {len(got)}")

    def check(self) -> None:
        handed, expected = self.kernel.handed, self.expected
        assert not self.kernel.twice, f"SQ positions handed twice: {self.kernel.twice}"
        for position, raw in handed.items():
            assert position in expected, f"the kernel read SQ position {position}, never prepared"
            want = expected[position]
            if raw[:64] != want:
                got_f, want_f = describe(raw), describe(want)
                diff = {k: (got_f[k], want_f[k]) for k in got_f if got_f[k] != want_f[k]}
                raise AssertionError(
                    f"SQ position {position} ({self.what[position]}), slot "
                    f"{position % ENTRIES}: kernel got != asked for, (got, want) per field: "
                    f"{diff}\nprogram:\n" + "\n".join(self.log))

    def finish(self) -> None:
        """Submit the rest, reap every CQE, and check all of it."""
        while self.in_kernel() + self.ring.sq_ready:
            self.reap(self.ring.wait(self.in_kernel() + self.ring.sq_ready, timeout=10, raw=True))
        assert self.ring.sq_ready == 0 and self.ring.cq_ready == 0
        self.check()
        assert sorted(self.kernel.handed) == sorted(self.expected), "prepared SQEs never handed"
        assert self.reaped == len(self.expected)
        assert self.ring.in_flight == 0

    def close(self) -> None:
        self.ring.close()
        os.close(self.fd)
        for p in self.pinned:
            p.release()


ACTIONS = ["prep", "prep", "prep", "chain", "chain", "fail", "submit", "wait", "wait", "full"]


def test_every_sqe_the_kernel_is_handed_is_what_the_prep_asked_for() -> None:
    require_uring()
    with tempfile.TemporaryDirectory(dir=SHM) as tmp:
        path = os.path.join(tmp, "data.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(FILE_SIZE))

        @settings(max_examples=100, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(st.data())
        def run(data: Any) -> None:
            program = Program(data, path)
            try:
                steps = data.draw(st.integers(1, 40), label="steps")
                for _ in range(steps):
                    action = data.draw(st.sampled_from(ACTIONS), label="action")
                    getattr(program, {"fail": "failing", "prep": "one"}.get(action, action))()
                program.finish()
            finally:
                program.close()

        run()


# -- the two defects of issue 12, as users met them ---------------------------------------


def test_plain_nop_in_a_slot_that_link_flagged_goes_out_unlinked() -> None:
    """A plain ``prep_nop`` landing in a slot an earlier ``link()`` flagged
    went out still carrying ``IOSQE_IO_LINK`` (the NOP fast path trusted a
    stale cache of the slot's shape)."""
    require_uring()
    with uring.Ring(4) as ring:
        with ring.link():
            ring.prep_nop(user_data=1)
            ring.prep_nop(user_data=2)
        assert sorted(c.user_data for c in ring.wait(2)) == [1, 2]
        ring.prep_nop(user_data=3)
        ring.prep_nop(user_data=4)  # positions 2 and 3: the next wraps to slot 0
        ring.prep_nop(user_data=5)
        slot = (ring.sq_tail + ring.sq_ready - 1) % ring.sq_entries
        assert slot == 0
        s = ring.read_sqe(slot)
        assert (s.opcode, s.user_data, s.flags) == (abi.IORING_OP_NOP, 5, 0)
        assert sorted(c.user_data for c in ring.wait(3)) == [3, 4, 5]


def test_released_pinned_buffer_is_refused_before_the_kernel_sees_it() -> None:
    """A ``PinnedBuffer`` used after ``release()`` handed the kernel its old
    address: after the bytearray grew (and moved), a read into it wrote into
    freed memory and the process died.  Now every prep refuses it with
    ``ReleasedBufferError`` (a ``ValueError``) and the SQ does not move."""
    require_uring()
    from uring.buffers import ReleasedBufferError

    assert issubclass(ReleasedBufferError, ValueError)
    data = bytearray(64)
    pinned = uring.PinnedBuffer(data, writable=True)
    pinned.release()
    data.extend(bytes(1 << 20))  # resizable again: its memory moves
    r, w = os.pipe()
    try:
        os.write(w, b"x" * 64)
        with uring.Ring(8) as ring:
            before = (ring.sq_ready, ring.sq_tail)
            with pytest.raises(ReleasedBufferError):
                ring.prep_read(r, pinned, -1)
            with pytest.raises(ReleasedBufferError):
                ring.prep_read(r, pinned, -1, length=8)
            with pytest.raises(ReleasedBufferError):
                ring.prep_write(w, pinned, -1)
            with pytest.raises(ReleasedBufferError):
                uring.PinnedBuffer(pinned)
            assert (ring.sq_ready, ring.sq_tail) == before
            assert ring.in_flight == 0
            ring.prep_nop(user_data=9)  # the ring is fine
            assert [c.user_data for c in ring.wait(1)] == [9]
    finally:
        os.close(r)
        os.close(w)

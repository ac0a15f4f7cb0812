#!/usr/bin/env python3
"""Watch the io_uring protocol happen on a real ring, one step at a time.

    python3 tools/ringviz.py            # on a terminal: Enter for each step
    python3 tools/ringviz.py --trace    # the whole trace at once (the default
                                        # when stdout is not a terminal)
    python3 tools/ringviz.py --model    # on uring.model, the kernel's side
                                        # single-stepped too

A scripted scenario runs on a real ``uring.Ring`` with a 4-entry SQ and an
8-entry CQ: a batch submitted and reaped, the SQ and then the CQ wrapping
round, the CQ overflowing into the kernel's overflow list and being
flushed, a linked chain failing part-way, and an SQPOLL ring whose kernel
thread goes idle (``IORING_SQ_NEED_WAKEUP``) and is woken.  After each step
both rings are drawn: every slot, who owns it, what it holds; the head,
tail, mask and flags words; and which index words moved, with the barrier
that orders each one (the stores that publish, the loads that acquire) and
the value it carried.

What is drawn comes from the ring's public properties (``sq_head``,
``sq_tail``, ``sq_ready``, ``cq_head``, ``cq_tail``, ``sq_flags``,
``cq_overflow``, ``read_sqe``) and, for the contents of CQE slots the
program has not reaped yet, from this tool's own *read-only* mapping of
the ring memory (``PROT_READ``, the offsets from ``ring.params``): reading
a CQE through the ring would consume it.  ``io_uring_enter`` calls are
counted by a ``Kernel`` seam passed to the ring, so each step also says how
many system calls it took.
"""

from __future__ import annotations

import argparse
import errno
import mmap
import os
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import uring  # noqa: E402
from uring import abi, barriers  # noqa: E402
from uring.model import ModelKernel  # noqa: E402
from uring.syscalls import Kernel, LinuxKernel  # noqa: E402

SQ_ENTRIES = 4
SQ_THREAD_IDLE_MS = 100
_CQE = abi.CQE_STRUCT


class CountingKernel(LinuxKernel):
    """The real kernel, every ``io_uring_enter`` counted (the ring's direct
    form goes through ``enter`` too: ``Kernel.raw_enter``'s adapter)."""

    def __init__(self) -> None:
        super().__init__()
        self.enters: List[Tuple[int, int, int]] = []  # (to_submit, min_complete, flags)

    raw_enter = Kernel.raw_enter

    def enter(self, fd: int, to_submit: int, min_complete: int, flags: int, arg: int = 0,
              argsz: int = 0) -> int:
        self.enters.append((to_submit, min_complete, flags))
        return super().enter(fd, to_submit, min_complete, flags, arg, argsz)


class CountingModel(ModelKernel):
    """The model kernel (``uring.model``), every ``io_uring_enter`` counted."""

    def __init__(self) -> None:
        super().__init__()
        self.enters: List[Tuple[int, int, int]] = []

    def enter(self, fd: int, to_submit: int, min_complete: int, flags: int, arg: int = 0,
              argsz: int = 0) -> int:
        self.enters.append((to_submit, min_complete, flags))
        return super().enter(fd, to_submit, min_complete, flags, arg, argsz)


class RingView:
    """A read-only mapping of a ring's SQ and CQ ring memory."""

    def __init__(self, ring: uring.Ring) -> None:
        p = ring.params
        self.sq_off, self.cq_off = p.sq_off, p.cq_off
        self.cqe_size = 32 if p.flags & abi.IORING_SETUP_CQE32 else 16
        no_sqarray = bool(p.flags & abi.IORING_SETUP_NO_SQARRAY)
        sq_size = (0 if no_sqarray else p.sq_off.array) + p.sq_entries * 4
        sq_size = max(sq_size, p.sq_off.flags + 4, p.sq_off.dropped + 4)
        cq_size = p.cq_off.cqes + p.cq_entries * self.cqe_size
        self.maps: List[mmap.mmap] = []
        if p.features & abi.IORING_FEAT_SINGLE_MMAP:
            m = mmap.mmap(ring.fd, max(sq_size, cq_size), flags=mmap.MAP_SHARED,
                          prot=mmap.PROT_READ, offset=abi.IORING_OFF_SQ_RING)
            self.maps = [m]
            self.sq = self.cq = m
        else:
            self.sq = mmap.mmap(ring.fd, sq_size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ,
                                offset=abi.IORING_OFF_SQ_RING)
            self.cq = mmap.mmap(ring.fd, cq_size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ,
                                offset=abi.IORING_OFF_CQ_RING)
            self.maps = [self.sq, self.cq]

    def sq_word(self, name: str) -> int:
        return int(struct.unpack_from("<I", self.sq, getattr(self.sq_off, name))[0])

    def cq_word(self, name: str) -> int:
        return int(struct.unpack_from("<I", self.cq, getattr(self.cq_off, name))[0])

    def cqe(self, slot: int) -> Tuple[int, int, int]:
        ud, res, flags = _CQE.unpack_from(self.cq, self.cq_off.cqes + slot * self.cqe_size)
        return int(ud), int(res), int(flags)

    def close(self) -> None:
        for m in self.maps:
            m.close()


@dataclass
class Snapshot:
    """Both rings at one instant."""

    sq_entries: int
    sq_mask: int
    sq_head: int
    sq_tail: int  # published
    sq_local_tail: int  # prepared here, maybe not yet published
    sq_flags: int
    sq_dropped: int
    cq_entries: int
    cq_mask: int
    cq_head: int
    cq_tail: int
    cq_overflow: int
    sqes: Dict[int, Tuple[int, int, int, int]] = field(default_factory=dict)  # slot: op, flags, len, ud
    cqes: Dict[int, Tuple[int, int, int]] = field(default_factory=dict)  # slot: ud, res, flags

    @classmethod
    def take(cls, ring: uring.Ring, view: RingView) -> "Snapshot":
        head, tail = ring.sq_head, ring.sq_tail
        snap = cls(
            sq_entries=ring.sq_entries, sq_mask=view.sq_word("ring_mask"), sq_head=head,
            sq_tail=tail, sq_local_tail=(head + ring.sq_ready) & 0xFFFFFFFF,
            sq_flags=int(ring.sq_flags), sq_dropped=ring.sq_dropped,
            cq_entries=ring.cq_entries, cq_mask=view.cq_word("ring_mask"),
            cq_head=ring.cq_head, cq_tail=ring.cq_tail, cq_overflow=ring.cq_overflow)
        for slot in range(snap.sq_entries):
            # The head of abi.SQE_STRUCT: opcode flags ioprio fd off addr len op_flags user_data.
            sqe = abi.SQE_STRUCT.unpack_from(bytes(ring.read_sqe(slot)))
            op, flags, _prio, _fd, _off, _addr, length, _opf, ud = sqe[:9]
            snap.sqes[slot] = (op, flags, length, ud)
        for slot in range(snap.cq_entries):
            snap.cqes[slot] = view.cqe(slot)
        return snap

    def sq_owner(self, slot: int) -> str:
        """``kernel`` (published, not consumed), ``prepared`` (filled here,
        not published) or ``free``."""
        for counter in range(self.sq_head, self.sq_local_tail):
            if counter & self.sq_mask == slot:
                return "kernel" if counter < self.sq_tail else "prepared"
        return "free"

    def sq_counter(self, slot: int) -> Optional[int]:
        for counter in range(self.sq_head, self.sq_local_tail):
            if counter & self.sq_mask == slot:
                return counter
        return None

    def cq_counter(self, slot: int) -> Optional[int]:
        for counter in range(self.cq_head, self.cq_tail):
            if counter & self.cq_mask == slot:
                return counter
        return None


@dataclass
class Step:
    number: int
    title: str
    explanation: str
    ring: uring.Ring
    view: RingView
    before: Snapshot
    after: Snapshot
    enters: List[Tuple[int, int, int]]
    reaped: List[uring.Cqe] = field(default_factory=list)


def _names(enum_cls: Any, value: int, prefix: str) -> str:
    names = [f.name.replace(prefix, "") for f in enum_cls if f.value and f.name and value & f.value]
    return "|".join(names) if names else "0"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _op_name(op: int) -> str:
    try:
        return abi.IoringOp(op).name.replace("IORING_OP_", "")
    except ValueError:
        return str(op)


def _res(res: int) -> str:
    return f"-{errno.errorcode.get(-res, str(-res))}" if res < 0 else str(res)


W = 11  # characters per slot column
_COLOURS = {"kernel": "31", "prepared": "33", "ours": "32"}


def _grid(labels: List[str], columns: List[Tuple[str, List[str]]], colour: bool) -> List[str]:
    """One column per slot, one row per label; the owner row painted on a
    terminal; rows no slot uses are left out."""
    rows = []
    for r, label in enumerate(labels):
        if r > 1 and not any(lines[r] for _, lines in columns):
            continue
        parts = []
        for owner, lines in columns:
            text = lines[r].ljust(W)
            if colour and r == 1 and owner in _COLOURS:
                text = f"\x1b[{_COLOURS[owner]}m{text}\x1b[0m"
            parts.append(text)
        rows.append(f"    {label:<7}" + "".join(parts).rstrip())
    return rows


def _pointers(head: int, tail: int, mask: int, entries: int) -> str:
    marks: Dict[int, List[str]] = {}
    marks.setdefault(head & mask, []).append("head")
    marks.setdefault(tail & mask, []).append("tail")
    return "           " + "".join(("^" + ",".join(marks[s]) if s in marks else "").ljust(W)
                                    for s in range(entries)).rstrip()


def sq_line(b: Snapshot) -> str:
    return (f"  SQ  entries {b.sq_entries}  mask {b.sq_mask}  head {b.sq_head}  tail {b.sq_tail}"
            f"  local tail {b.sq_local_tail}  flags {_names(abi.IoringSqFlags, b.sq_flags, 'IORING_SQ_')}"
            f"  dropped {b.sq_dropped}")


def cq_line(b: Snapshot) -> str:
    ready = (b.cq_tail - b.cq_head) & 0xFFFFFFFF
    return (f"  CQ  entries {b.cq_entries}  mask {b.cq_mask}  head {b.cq_head}  tail {b.cq_tail}"
            f"  ready {ready}  overflow {b.cq_overflow}")


def render(step: Step, colour: bool = False) -> str:
    """The step as text: what was done, both rings, the words that moved."""
    a, b = step.before, step.after
    out = [f"step {step.number}: {step.title}", ""]
    out += ["  " + line for line in step.explanation.splitlines()]
    calls = ", ".join(f"(to_submit={s}, min_complete={m}, "
                      f"flags={_names(abi.IoringEnter, f, 'IORING_ENTER_')})"
                      for s, m, f in step.enters)
    out.append(f"  io_uring_enter calls: {len(step.enters)}" + (f"  {calls}" if calls else ""))
    out += ["", sq_line(b)]
    columns = []
    for slot in range(b.sq_entries):
        owner = b.sq_owner(slot)
        op, flags, length, ud = b.sqes[slot]
        counter = b.sq_counter(slot)
        lines = [f"[{slot}]", owner, "", "", "", "", ""]
        if counter is not None or op or ud:
            injected = length - (1 << 32) if length >> 31 else length
            lines[2:] = [_op_name(op), f"{ud:#x}",
                         _names(abi.IosqeFlags, flags, "IOSQE_").replace("IO_LINK", "LINK")
                         if flags else "",
                         _res(injected) if op == abi.IORING_OP_NOP and length else "",
                         f"#{counter}" if counter is not None else "(old)"]
        columns.append((owner, lines))
    out += _grid(["slot", "owner", "opcode", "ud", "flags", "len", "count"], columns, colour)
    out += [_pointers(b.sq_head, b.sq_tail, b.sq_mask, b.sq_entries), "", cq_line(b)]
    columns = []
    for slot in range(b.cq_entries):
        counter = b.cq_counter(slot)
        ud, res, _flags = b.cqes[slot]
        owner = "ours" if counter is not None else "kernel"
        lines = [f"[{slot}]", owner, "", "", ""]
        if counter is not None:
            lines[2:] = [f"{ud:#x}", _res(res), f"#{counter}"]
        elif ud or res:
            lines[2:] = ["(old)", "", ""]
        columns.append((owner, lines))
    out += _grid(["slot", "owner", "ud", "res", "count"], columns, colour)
    out += [_pointers(b.cq_head, b.cq_tail, b.cq_mask, b.cq_entries), ""]

    moved = []
    if b.sq_local_tail != a.sq_local_tail:
        moved.append(f"local    SQ tail {a.sq_local_tail} -> {b.sq_local_tail}: SQEs filled, "
                     "not yet visible to the kernel")
    if b.sq_tail != a.sq_tail:
        moved.append(f"release  SQ tail {a.sq_tail} -> {b.sq_tail}: stored after the SQE bytes, "
                     "so the kernel finds them filled")
    sqpoll = bool(step.ring.setup_flags & abi.IORING_SETUP_SQPOLL)
    if b.sq_head != a.sq_head:
        # Without SQPOLL the kernel moved it inside our io_uring_enter, whose
        # return orders it; an SQ thread moves it concurrently: acquire.
        moved.append(f"{'acquire' if sqpoll else 'load   '}  SQ head read {b.sq_head} "
                     f"(was {a.sq_head}): the kernel consumed "
                     f"{_n((b.sq_head - a.sq_head) & 0xFFFFFFFF, 'SQE')}; those slots are ours again")
    if b.cq_tail != a.cq_tail:
        moved.append(f"acquire  CQ tail read {b.cq_tail} (was {a.cq_tail}): "
                     f"{_n((b.cq_tail - a.cq_tail) & 0xFFFFFFFF, 'CQE')} posted, their bytes visible")
    if b.cq_head != a.cq_head:
        moved.append(f"release  CQ head {a.cq_head} -> {b.cq_head}: stored after the CQEs were "
                     "copied out, handing the slots back")
    if b.sq_flags != a.sq_flags:
        moved.append(f"{'fence' if sqpoll else 'load '}    SQ flags read {_names(abi.IoringSqFlags, b.sq_flags, 'IORING_SQ_')}"
                     f" (was {_names(abi.IoringSqFlags, a.sq_flags, 'IORING_SQ_')})")
    if b.cq_overflow != a.cq_overflow:
        moved.append(f"load     CQ overflow (dropped CQEs) read {b.cq_overflow}")
    out.append("  moved:" if moved else "  moved: nothing")
    out += ["    " + m for m in moved]
    if step.reaped:
        out.append("  reaped: " + ", ".join(f"{c.user_data:#x}:{_res(c.res)}" for c in step.reaped))
    return "\n".join(out)


def _wait_until(predicate: Any, seconds: float = 2.0) -> None:
    end = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError("the kernel did not get there in time")
        time.sleep(0.001)


def scenario(model: bool = False) -> Iterator[Step]:
    """The steps; each is yielded with its ring still open and unchanged
    until the next step begins.  With *model*, the ring runs on
    ``uring.model`` and the kernel's side is single-stepped too (it takes
    the first batch one SQE per call); SQPOLL, which the model does not
    have, is left out."""
    kernel: Any = CountingModel() if model else CountingKernel()
    ring = uring.Ring(SQ_ENTRIES, kernel=kernel)
    view = RingView(ring)
    number = 0
    snap = Snapshot.take(ring, view)
    empty = snap

    def step(title: str, explanation: str, action: Any) -> Step:
        nonlocal number, snap
        before = snap
        calls = len(kernel.enters)
        result = action()
        reaped = result if isinstance(result, list) else []
        snap = Snapshot.take(ring, view)
        number += 1
        return Step(number, title, explanation, ring, view, before, snap, kernel.enters[calls:],
                    list(reaped))

    try:
        no_array = ("IORING_SETUP_NO_SQARRAY: the SQE for SQ counter t\nis slot t & mask"
                    if ring.setup_flags & abi.IORING_SETUP_NO_SQARRAY else
                    "an SQ index array, filled with the identity once")
        yield Step(0, "io_uring_setup(4)",
                   f"An SQ of {ring.sq_entries} entries and a CQ of {ring.cq_entries} (twice as "
                   "many). Heads and tails are free-running\n"
                   f"u32 counters; a slot is counter & mask. Set-up: {no_array}.\n"
                   "Owners: 'kernel' slots are the kernel's to read (SQ) or to fill (CQ); "
                   "'prepared' and 'ours' are ours.\n"
                   f"Barriers here: {'no instruction for acquire/release (TSO)' if barriers.STRONG_ORDERING else 'acquire/release fences'}"
                   f", full fence {barriers.FENCE_KIND}.",
                   ring, view, empty, snap, [])
        def prepare(first: int, count: int) -> None:
            for i in range(count):
                ring.prep_nop(user_data=first + i)

        def prepare_and_submit(first: int, count: int) -> None:
            prepare(first, count)
            ring.submit()

        yield step("prepare 3 NOPs",
                   "prep_nop fills three SQEs. Only our local tail moves: the kernel cannot see "
                   "them yet.",
                   lambda: prepare(0x11, 3))
        if model:
            def kernel_takes_one() -> None:
                ring._publish()  # the SQ tail store (release), as submit() makes it
                kernel.enter(ring.fd, 1, 0, 0)  # the model's io_submit_sqes, one SQE

            for k in range(1, 4):
                yield step(f"the kernel takes SQE {k} of 3",
                           "Single-stepping the kernel's side (uring.model): io_uring_enter("
                           "to_submit=1) consumes one SQE from the\nkernel's head, issues it, "
                           "posts its CQE at the end of the batch and publishes the new SQ head.",
                           kernel_takes_one)
        else:
            yield step("submit",
                       "submit() stores the SQ tail (release) and calls io_uring_enter(to_submit=3). "
                       "The kernel consumes the\nthree SQEs (SQ head 0 -> 3) and, NOPs finishing "
                       "at once, posts three CQEs (CQ tail 0 -> 3).",
                       ring.submit)
        yield step("reap",
                   "reap() loads the CQ tail (acquire), copies the three CQEs out and stores the "
                   "CQ head (release). No system call.",
                   ring.reap)
        yield step("prepare 4 NOPs: the SQ wraps",
                   "Counters 3..6 land in slots 3, 0, 1, 2: the counters keep growing, the slots "
                   "go round.",
                   lambda: prepare(0x21, 4))
        yield step("submit them", "Four CQEs posted in CQ slots 3..6, not reaped.", ring.submit)
        yield step("4 more without reaping: the CQ wraps and is full",
                   "CQ counters 7..10 land in slots 7, 0, 1, 2. Eight CQEs are waiting: the CQ "
                   "is full.",
                   lambda: prepare_and_submit(0x31, 4))
        yield step("4 more: the CQ overflows",
                   "No room in the CQ: the kernel keeps the four CQEs on its overflow list and "
                   "sets IORING_SQ_CQ_OVERFLOW.\nThe CQ tail does not move; nothing is lost "
                   "(IORING_FEAT_NODROP), so 'overflow' (dropped) stays 0.",
                   lambda: prepare_and_submit(0x35, 4))
        yield step("reap: the overflow list is flushed",
                   "reap() takes the eight CQEs in the ring, sees IORING_SQ_CQ_OVERFLOW, and "
                   "enters with GETEVENTS:\nthe kernel moves the four overflowed CQEs into the "
                   "ring, and reap() takes those too (12 in all).",
                   ring.reap)

        def chain() -> None:
            ring.prep_nop(user_data=0x41, flags=abi.IOSQE_IO_LINK)
            ring.prep(abi.IORING_OP_NOP, op_flags=abi.IORING_NOP_INJECT_RESULT,
                      len=(-errno.EINVAL) & 0xFFFFFFFF, flags=abi.IOSQE_IO_LINK, user_data=0x42)
            ring.prep_nop(user_data=0x43)

        yield step("a linked chain",
                   "Three NOPs linked with IOSQE_IO_LINK; the second has "
                   "IORING_NOP_INJECT_RESULT with len=-EINVAL,\nso it fails.",
                   chain)
        yield step("submit the chain",
                   "The first completes (0), the second fails (-EINVAL), and the link is broken: "
                   "the third is never run\nand completes with -ECANCELED.",
                   ring.submit)
        yield step("reap the chain", "The three results, in order.", ring.reap)
    finally:
        view.close()
        ring.close()

    if model:
        return  # the model has no SQ thread
    # SQPOLL: a second ring
    ring = uring.Ring(SQ_ENTRIES, flags=abi.IORING_SETUP_SQPOLL, sq_thread_idle=SQ_THREAD_IDLE_MS,
                      kernel=kernel)
    view = RingView(ring)
    snap = Snapshot.take(ring, view)
    try:
        yield step("SQPOLL ring, idle",
                   f"A new ring with IORING_SETUP_SQPOLL: a kernel thread polls the SQ. After "
                   f"sq_thread_idle ({SQ_THREAD_IDLE_MS} ms)\nwithout work it sleeps and sets "
                   "IORING_SQ_NEED_WAKEUP.",
                   lambda: _wait_until(lambda: ring.sq_flags & abi.IORING_SQ_NEED_WAKEUP))

        def wake() -> List[uring.Cqe]:
            ring.prep_nop(user_data=0x51)
            ring.prep_nop(user_data=0x52)
            ring.submit()  # NEED_WAKEUP is set: one enter with IORING_ENTER_SQ_WAKEUP
            _wait_until(lambda: ring.sq_head == ring.sq_tail and ring.cq_ready >= 2)
            return []

        yield step("submit wakes it",
                   "submit() stores the tail, then (after a full fence) reads the SQ flags: "
                   "NEED_WAKEUP is set, so it calls\nio_uring_enter(IORING_ENTER_SQ_WAKEUP). "
                   "The thread consumes both SQEs and posts their CQEs.",
                   wake)

        def awake() -> List[uring.Cqe]:
            ring.prep_nop(user_data=0x53)
            ring.submit()  # the thread is still awake: normally no system call at all
            _wait_until(lambda: ring.sq_head == ring.sq_tail and ring.cq_ready >= 3)
            return []

        yield step("submit while it is awake",
                   "Within sq_thread_idle of its last work the thread is still polling: submit() "
                   "only stores the tail,\nthe thread notices it, and no io_uring_enter is needed "
                   "(one is, if the machine was too slow).",
                   awake)
        yield step("reap", "Completions are reaped from the CQ as on any ring.", ring.reap)
    finally:
        view.close()
        ring.close()


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", action="store_true",
                    help="print every step at once (default when stdout is not a terminal)")
    ap.add_argument("--model", action="store_true",
                    help="run on uring.model instead of the kernel, single-stepping its side")
    args = ap.parse_args(argv)
    interactive = not args.trace and sys.stdout.isatty() and sys.stdin.isatty()
    if not args.model:
        try:
            uring.Ring(1).close()
        except uring.UringUnavailableError as exc:
            print(exc, file=sys.stderr)
            return 1
    for step in scenario(args.model):
        if interactive:
            sys.stdout.write("\x1b[H\x1b[2J")
            print(render(step, colour=True))
            try:
                if input("\n[Enter: next step, q: quit] ").strip().lower() == "q":
                    break
            except EOFError:
                break
        else:
            print(render(step))
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""tools/ringviz.py: the numbers it draws are the real ring's."""

from __future__ import annotations

import errno
import importlib.util
import os
import re
import subprocess
import sys
from typing import Any, Dict, List, Set, Tuple

import pytest
from conftest import require_uring

from uring import abi

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tools", "ringviz.py")

SQ_LINE = re.compile(r"^  SQ  entries (\d+)  mask (\d+)  head (\d+)  tail (\d+)  local tail (\d+)"
                     r"  flags (\S+)  dropped (\d+)$", re.M)
CQ_LINE = re.compile(r"^  CQ  entries (\d+)  mask (\d+)  head (\d+)  tail (\d+)  ready (\d+)"
                     r"  overflow (\d+)$", re.M)


def load() -> Any:
    spec = importlib.util.spec_from_file_location("ringviz", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ringviz"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def grid(text: str, header: str, entries: int, width: int) -> Dict[str, List[str]]:
    """The drawn slot table under the line starting with *header*: row
    label -> one cell per slot."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows: Dict[str, List[str]] = {}
    for line in lines[start + 1:]:
        if not line.strip() or line.strip().startswith("^"):
            break
        label = line[4:11].strip()
        rows[label] = [line[11 + i * width: 11 + (i + 1) * width].strip() for i in range(entries)]
    return rows


def flag_names(flags: int) -> str:
    names = [f.name.replace("IORING_SQ_", "") for f in abi.IoringSqFlags
             if f.value and f.name and flags & f.value]
    return "|".join(names) if names else "0"


@pytest.mark.parametrize("model", [False, True], ids=["kernel", "model"])
def test_trace_numbers_are_the_real_rings(model: bool) -> None:
    """Every number drawn is the ring's own, on the kernel and on the model."""
    if not model:
        require_uring()
    viz = load()
    printed: List[Tuple[int, int, int]] = []  # (count, ud, res) of CQEs drawn, not yet reaped
    titles = []
    for step in viz.scenario(model):
        text = viz.render(step)
        ring = step.ring
        titles.append(step.title)
        sqpoll = bool(ring.setup_flags & abi.IORING_SETUP_SQPOLL)

        entries, mask, head, tail, local, flags, dropped = SQ_LINE.search(text).groups()
        assert int(entries) == ring.sq_entries and int(mask) == ring.sq_entries - 1
        assert (int(head), int(tail)) == (ring.sq_head, ring.sq_tail)
        assert int(local) == ring.sq_head + ring.sq_ready
        assert int(dropped) == ring.sq_dropped == 0
        if not sqpoll or "idle" in step.title:  # an SQ thread may change the flags any time
            assert flags == flag_names(int(ring.sq_flags))
        # the read-only mapping sees what the ring's properties see
        assert step.view.sq_word("head") == ring.sq_head
        assert step.view.sq_word("tail") == ring.sq_tail
        assert step.view.cq_word("tail") == ring.cq_tail

        entries, mask, head, tail, ready, overflow = map(int, CQ_LINE.search(text).groups())
        assert entries == ring.cq_entries and mask == ring.cq_entries - 1
        assert (head, tail) == (ring.cq_head, ring.cq_tail)
        assert ready == ring.cq_ready == tail - head
        assert overflow == ring.cq_overflow == 0

        calls = int(re.search(r"io_uring_enter calls: (\d+)", text).group(1))
        assert calls == len(step.enters)

        # every drawn counter sits in slot counter & mask, in both rings
        sq = grid(text, "  SQ  entries", ring.sq_entries, viz.W)
        cq = grid(text, "  CQ  entries", ring.cq_entries, viz.W)
        for rows, size in ((sq, ring.sq_entries), (cq, ring.cq_entries)):
            for slot, cell in enumerate(rows["count"] if "count" in rows else []):
                if cell.startswith("#"):
                    assert int(cell[1:]) & (size - 1) == slot
        owners = sq["owner"]
        assert owners.count("kernel") == ring.sq_tail - ring.sq_head
        assert owners.count("prepared") == ring.sq_ready - (ring.sq_tail - ring.sq_head)
        assert cq["owner"].count("ours") == ring.cq_ready

        # CQEs drawn before they were reaped are the ones reap() returns
        if step.reaped:
            got = [(c.user_data, c.res) for c in step.reaped]
            assert got[:len(printed)] == [(ud, res) for _, ud, res in printed]
            printed = []
        if ring.cq_ready:
            drawn = [(int(cq["count"][s][1:]), int(cq["ud"][s], 16), cq["res"][s])
                     for s in range(ring.cq_entries) if cq["owner"][s] == "ours"]
            printed = [(c, ud, -getattr(errno, r[1:]) if r.startswith("-") else int(r))
                       for c, ud, r in sorted(drawn)]

        if step.title == "prepare 4 NOPs: the SQ wraps":
            assert ring.sq_head + ring.sq_ready > ring.sq_entries  # counters past the ring
            assert sq["count"] == ["#4", "#5", "#6", "#3"]
        if step.title == "4 more without reaping: the CQ wraps and is full":
            assert ring.cq_ready == ring.cq_entries
        if step.title == "4 more: the CQ overflows":
            assert ring.sq_flags & abi.IORING_SQ_CQ_OVERFLOW and "CQ_OVERFLOW" in flags
            assert ring.cq_ready == ring.cq_entries
        if step.title.startswith("reap: the overflow"):
            assert len(step.reaped) == 12 and flags == "0"
            assert any(f & abi.IORING_ENTER_GETEVENTS for _, _, f in step.enters)
        if step.title == "reap the chain":
            assert [c.res for c in step.reaped] == [0, -errno.EINVAL, -errno.ECANCELED]
        if step.title == "SQPOLL ring, idle":
            assert ring.sq_flags & abi.IORING_SQ_NEED_WAKEUP and "NEED_WAKEUP" in flags
        if step.title == "submit wakes it":
            assert any(f & abi.IORING_ENTER_SQ_WAKEUP for _, _, f in step.enters)
            assert ring.sq_head == ring.sq_tail == 2
    if model:  # the first submit single-stepped (3 steps); no SQPOLL (4 steps)
        assert len(titles) == 14 and titles[2:5] == [f"the kernel takes SQE {k} of 3" for k in (1, 2, 3)]
    else:
        assert len(titles) == 16 and titles[0] == "io_uring_setup(4)"


def test_model_trace_agrees_with_the_kernels() -> None:
    """The same scenario on uring.model and on the kernel: after every step
    both have, both rings draw the same head, tail, flags and slots."""
    require_uring()
    viz = load()

    def lines(model: bool) -> Dict[str, Tuple[str, str]]:
        out = {}
        for step in viz.scenario(model):
            text = viz.render(step)
            out[step.title] = (SQ_LINE.search(text).group(0), CQ_LINE.search(text).group(0))
        return out

    real, modeled = lines(False), lines(True)
    common = [t for t in modeled if t in real]
    assert len(common) >= 10
    for title in common:
        assert modeled[title] == real[title], title


def test_script_prints_the_whole_trace_when_not_on_a_terminal() -> None:
    require_uring()
    proc = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert len(re.findall(r"^step \d+: ", out, re.M)) == 16
    assert "reaped: 0x41:0, 0x42:-EINVAL, 0x43:-ECANCELED" in out
    assert "flags CQ_OVERFLOW" in out and "flags NEED_WAKEUP" in out
    assert "\x1b[" not in out  # no terminal colours in a trace


BARRIER = {
    "sq_tail": re.compile(r"^    release  SQ tail (\d+) -> (\d+): ", re.M),
    "sq_head": re.compile(r"^    (acquire|load   )  SQ head read (\d+) \(was (\d+)\): "
                          r"the kernel consumed (\d+) SQEs?;", re.M),
    "cq_tail": re.compile(r"^    acquire  CQ tail read (\d+) \(was (\d+)\): (\d+) CQEs? posted",
                          re.M),
    "cq_head": re.compile(r"^    release  CQ head (\d+) -> (\d+): ", re.M),
}


@pytest.mark.parametrize("model", [False, True], ids=["kernel", "model"])
def test_barrier_lines_carry_the_real_rings_values(model: bool) -> None:
    """Each 'moved' line names the barrier of its index word and the value
    that word now holds on the ring (cq_tail, sq_head, ...), with the value
    the ring held after the step before; a word that did not move has no
    line."""
    if not model:
        require_uring()
    viz = load()
    ring_seen: Any = None
    prev: Dict[str, int] = {}
    lines_seen = {name: 0 for name in BARRIER}
    head_kinds: Set[str] = set()
    for step in viz.scenario(model):
        ring = step.ring
        now = {"sq_tail": ring.sq_tail, "sq_head": ring.sq_head, "cq_tail": ring.cq_tail,
               "cq_head": ring.cq_head}
        if ring is not ring_seen:  # a new ring starts from zero
            ring_seen, prev = ring, dict.fromkeys(now, 0)
        text = viz.render(step)
        sqpoll = bool(ring.setup_flags & abi.IORING_SETUP_SQPOLL)
        found = {name: pattern.findall(text) for name, pattern in BARRIER.items()}
        for name, hits in found.items():
            assert len(hits) == (now[name] != prev[name]), (step.title, name, hits)
            lines_seen[name] += len(hits)
        if found["sq_tail"]:
            ((was, value),) = found["sq_tail"]
            assert (int(was), int(value)) == (prev["sq_tail"], ring.sq_tail), step.title
        if found["cq_head"]:
            ((was, value),) = found["cq_head"]
            assert (int(was), int(value)) == (prev["cq_head"], ring.cq_head), step.title
        if found["sq_head"]:
            ((kind, value, was, count),) = found["sq_head"]
            assert kind.strip() == ("acquire" if sqpoll else "load"), step.title
            head_kinds.add(kind.strip())
            assert (int(value), int(was)) == (ring.sq_head, prev["sq_head"]), step.title
            assert int(count) == ring.sq_head - prev["sq_head"]
        if found["cq_tail"]:
            ((value, was, count),) = found["cq_tail"]
            assert (int(value), int(was)) == (ring.cq_tail, prev["cq_tail"]), step.title
            assert int(count) == ring.cq_tail - prev["cq_tail"]
        if step.number == 0:
            assert "  moved: nothing" in text
        if step.title == "4 more: the CQ overflows":
            assert not found["cq_tail"]  # the CQEs went to the overflow list
        prev = now
    # every kind of line was drawn at least once
    assert all(lines_seen.values()), lines_seen
    assert head_kinds == ({"load"} if model else {"load", "acquire"})  # acquire: the SQ thread

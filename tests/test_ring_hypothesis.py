"""Random programs of prepare/submit/reap on rings of 1..4096 entries, through
SQ and CQ wraparound and CQ overflow: every user_data comes back exactly once."""

from __future__ import annotations

from typing import List, Set, Tuple

from conftest import require_uring
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import uring

actions = st.lists(
    st.tuples(st.sampled_from(["prep", "submit", "reap", "wait"]), st.floats(0.0, 2.0)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    log_entries=st.integers(0, 12),
    cq_factor=st.sampled_from([1, 2, 4]),
    program=actions,
    sq_array=st.booleans(),
)
def test_every_user_data_comes_back_once(
    log_entries: int, cq_factor: int, program: List[Tuple[str, float]], sq_array: bool
) -> None:
    require_uring()
    entries = 1 << log_entries
    with uring.Ring(entries, cq_entries=entries * cq_factor, sq_array=sq_array) as r:
        assert r.sq_entries == entries
        outstanding: Set[int] = set()
        reaped: Set[int] = set()
        next_ud = 0
        laps = 0

        def take(cqes: List[uring.Cqe]) -> None:
            for c in cqes:
                assert c.res == 0
                assert c.user_data in outstanding, f"unknown or duplicate user_data {c.user_data}"
                outstanding.remove(c.user_data)
                reaped.add(c.user_data)

        for action, scale in program:
            n = max(1, int(scale * entries))
            if action == "prep":
                for _ in range(min(n, r.sq_space_left)):
                    r.prep_nop(next_ud)
                    outstanding.add(next_ud)
                    next_ud += 1
            elif action == "submit":
                r.submit()
            elif action == "reap":
                batch = r.reap(n)
                assert len(batch) <= n
                take(batch)
            else:
                if outstanding:
                    take(r.wait(min(n, len(outstanding)), timeout=10))
            laps = max(laps, next_ud // entries)
        take(r.wait(len(outstanding), timeout=10) if outstanding else [])
        assert not outstanding
        assert reaped == set(range(next_ud))
        assert r.reap() == []
        # Head/tail bookkeeping agrees with the kernel's words.
        assert r.sq_head == r.sq_tail == next_ud & 0xFFFFFFFF
        assert r.cq_head == r.cq_tail

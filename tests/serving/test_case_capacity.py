"""The served bank's capacity: oldest traffic cases leave first, hand-written ones stay, and a
restart comes back within the capacity."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from recsys.records import Case
from serving.case_capacity import (
    AgeQueue,
    auto_byte_capacity,
    auto_capacity,
    case_bytes,
    slack_of,
)
from serving.core import ServingCore
from serving.service import NewCase
from serving.store import Store
from tests.serving.test_serving_core import _core, _decide, _events


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Tiny networks: one torch thread avoids oversubscription on shared cores."""
    import torch

    torch.set_num_threads(1)


def test_age_queue_pops_the_oldest_live_ids() -> None:
    """The queue skips ids that left otherwise and breaks time ties by id."""
    q = AgeQueue()
    for ts, sid in [(3.0, "c"), (1.0, "b"), (1.0, "a"), (2.0, "gone")]:
        q.push(ts, sid)
    assert q.pop_oldest(2, {"a", "b", "c"}) == ["a", "b"]
    assert q.pop_oldest(5, {"c"}) == ["c"]
    assert auto_capacity(None, 15_000) == 15_000 and auto_capacity(None, 3) == 10_000
    assert auto_capacity(0, 15_000) == 0 and slack_of(50) == 1


def test_bank_stays_within_capacity_oldest_feedback_first_manual_kept(tmp_path: Path) -> None:
    """Over capacity, the oldest feedback cases leave the bank and the case log; a hand-written
    case never leaves by age; a restart loads no more than the capacity."""
    core = _core(tmp_path, case_capacity=8)
    manual = core.write_case(NewCase("s", ("i10",), 1.0, _events("i0")))
    rt = core.runtime
    for k in range(20):
        _decide_and_feed(core, k)
    live = set(rt.int_of)
    assert manual in live
    assert len(rt.bank) <= 8 + slack_of(8)
    assert rt.evicted >= 20 + 1 - (8 + slack_of(8))
    kept = sorted((rt.bank.get(rt.int_of[s]).ts, s) for s in live if s != manual)
    newest = sorted(
        (c.ts, c.case_id)
        for c in Store(tmp_path / "db.sqlite3").live_cases()
        if c.case_id != manual
    )
    assert [s for _, s in kept] == [s for _, s in newest]  # the log holds what the bank holds
    core.close()
    again = _core(tmp_path, case_capacity=8).runtime
    assert manual in again.int_of and len(again.bank) == 8  # trimmed exactly at load
    assert set(again.int_of) == {manual} | {s for _, s in kept[len(kept) - 7 :]}


def _decide_and_feed(core: ServingCore, k: int) -> None:
    """Decision k for u1 and a click on its first item (one feedback case)."""
    d = dataclasses.replace(_decide(core, _events("i0", "i1")), decision_id=f"d{k}")
    core.apply_feedback(d, d.items[0], "click", None)


def test_unbounded_when_capacity_is_zero(tmp_path: Path) -> None:
    """capacity 0 keeps every case."""
    core = _core(tmp_path, case_capacity=0)
    for k in range(12):
        _decide_and_feed(core, k)
    assert len(core.runtime.bank) == 12 and core.runtime.evicted == 0


def test_bank_stays_within_its_byte_capacity_when_cases_grow(tmp_path: Path) -> None:
    """Cases larger than the ones held evict several old cases each: the bank's case bytes
    stay within the byte capacity while the count capacity alone would let them grow."""
    core = _core(tmp_path, case_capacity=1_000)
    for k in range(12):
        _decide_and_feed(core, k)
    rt = core.runtime
    with rt.lock:
        assert rt.held_bytes == sum(case_bytes(rt.bank.get(i)) for i in rt.bank.ids())
        held, n = rt.held_bytes, len(rt.bank)
        rt.byte_capacity = 2 * held  # as if loaded with twice these cases' bytes
        big = [
            Case(np.ones(rt.dim, np.float32), {"item_id": "i1", "text": "x" * 4_000}, 1.0, 4e9 + k)
            for k in range(40)
        ]
        rt.add_cases(big, [f"big{k}" for k in range(40)], ["u9"] * 40)
        slack = slack_of(rt.byte_capacity)
        assert rt.held_bytes <= rt.byte_capacity + slack
        assert len(rt.bank) < n  # the oldest (the small ones) left, more than one per new case
        assert {f"big{k}" for k in range(30, 40)} <= set(rt.int_of)  # the newest stayed
        assert rt.held_bytes == sum(case_bytes(rt.bank.get(i)) for i in rt.bank.ids())
    assert auto_byte_capacity(1_000, 10, 5_000) == 500_000
    assert auto_byte_capacity(0, 10, 100) == 0 and auto_byte_capacity(5, 0, 0) == 0

"""The item lane (`recsys.rec.item_lane`): per item, its latest cases written to a real case
bank, as of a decision time, without the cases already retrieved or since evicted."""

from __future__ import annotations

import numpy as np

from recsys.config import CaseBankConfig
from recsys.memory.case_bank import CaseBank
from recsys.rec.item_lane import ItemLane
from recsys.records import Case


def _bank(items_ts: list[tuple[int, float]], capacity: int = 0) -> CaseBank:
    """A 4-d bank with one case per (item row, time), in that write order."""
    bank = CaseBank(CaseBankConfig(capacity=capacity), 4)
    for k, (row, ts) in enumerate(items_ts):
        key = np.eye(4, dtype=np.float32)[k % 4]
        bank.write(Case(key=key, payload={"row": row}, reward=float(k), ts=ts))
    return bank


def _rows(payload: dict[str, object]) -> list[int]:
    return [int(payload["row"])]  # type: ignore[call-overload]


def test_each_item_gets_its_latest_cases_before_the_decision_newest_first() -> None:
    """Item 0 has cases at t = 1, 2, 3, 4 (ids 0, 2, 3, 5): depth 2 keeps ids 5 and 3, and
    as of t = 4 only id 3 (id 5 is not in the past); item 1's case is its own."""
    bank = _bank([(0, 1.0), (1, 1.5), (0, 2.0), (0, 3.0), (2, 3.5), (0, 4.0)])
    lane = ItemLane(2)
    lane.sync(bank, _rows)
    assert lane.cases(bank, [0, 1], before=10.0, skip=set()) == [5, 3, 1]
    assert lane.cases(bank, [0], before=4.0, skip=set()) == [3]
    assert lane.cases(bank, [0, 7], before=10.0, skip={5}) == [3]


def test_sync_reads_only_new_cases_and_skips_evicted_ones() -> None:
    """Cases written after a sync join on the next one; with a capacity of 3 the bank evicts
    the oldest, and the lane no longer returns them."""
    bank = _bank([(0, 1.0), (0, 2.0)], capacity=3)
    lane = ItemLane(8)
    lane.sync(bank, _rows)
    assert lane.cases(bank, [0], before=10.0, skip=set()) == [1, 0]
    for ts in (3.0, 4.0):
        bank.write(Case(key=np.ones(4, np.float32), payload={"row": 0}, reward=0.0, ts=ts))
    assert lane.cases(bank, [0], before=10.0, skip=set()) == [1]  # 0 evicted, 2 and 3 unread
    lane.sync(bank, _rows)
    assert lane.cases(bank, [0], before=10.0, skip=set()) == [3, 2, 1]


def test_bank_similarities_match_the_search() -> None:
    """`CaseBank.candidates_of` gives the similarity `search` ranks by, for any listed cases."""
    bank = _bank([(0, 1.0), (1, 1.0), (2, 1.0)])
    q = np.array([0.5, 1.0, 0.0, 0.0], np.float32)
    found = bank.search(q, 3, now=5.0, before=5.0)
    sims = bank.candidates_of(q, found.case_ids.tolist(), now=5.0).sims
    np.testing.assert_allclose(sims, found.sims, rtol=1e-6)

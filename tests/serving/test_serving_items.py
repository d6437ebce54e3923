"""Serving with the items scorer: the policy's softmax over the item pool is the list, items
carry the retrieved cases behind them, and feedback learns Q(s, item) online."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest

from recsys.rec.request import RecRequest
from serving.core import ServingCore
from serving.interactions import interactions
from tests.serving.test_serving_core import _core, _decide, _events, _write_cases


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _q_item(core: ServingCore, events: tuple, item: str) -> float:
    """Min twin Q of `item` in u1's item pool, as the policy sees it."""
    rt = core.runtime
    now = time.time() + 1.0
    cands = rt.rec.candidates_for(RecRequest("u1", interactions("u1", events), now))
    row = [rt.items.ids[int(i)] for i in cands.case_ids].index(item)
    state = core.encode_state("u1", events, {}, now)
    return float(rt.learner.scores(state.vec, cands)[row])


def test_item_policy_lists_items_with_their_cases_and_learns_from_feedback(
    tmp_path: Path,
) -> None:
    core = _core(
        tmp_path, recommend={"scorer": "items"}, learner={"lr": 1e-2}, updates_per_feedback=8
    )
    sids = _write_cases(core)
    ev = _events("i0", "i2")
    # the whole pool listed: an untrained Q orders it arbitrarily, so a top 10 may miss the hats
    r = core.recommend("u1", 30, {}, ev, [], False)
    assert len(r.items) >= 10 and len({i.item_id for i in r.items}) == len(r.items)
    behind = {i.item_id: i.cases for i in r.items if i.cases}
    assert behind, "items proposed by the written cases carry their case ids"
    assert set().union(*behind.values()) <= set(sids)
    assert {c.case_id for c in r.cases} == set().union(*behind.values())
    d = _decide(core, ev)
    item = d.items[3]
    before = _q_item(core, ev, item)
    for k in range(5):
        u = core.apply_feedback(dataclasses.replace(d, decision_id=f"d{k}"), item, "alipay", None)
        assert u.td_loss is not None and np.isfinite(u.td_loss)
    after = _q_item(core, ev, item)
    assert after > before + 0.3, (before, after)


def test_explore_items_widen_the_pool_and_no_memory_writes_no_case(tmp_path: Path) -> None:
    """MEMENTO_FRESH__RECOMMEND__N_EXPLORE adds random unseen items the other sources do not
    propose; MEMENTO_MEMORY=false learns from feedback but writes no case."""
    ev = _events("i0", "i2")

    def pool(core: ServingCore) -> set[str]:
        rt = core.runtime
        req = RecRequest("u1", interactions("u1", ev), time.time() + 1.0)
        return {rt.items.ids[int(i)] for i in rt.rec.candidates_for(req).case_ids}

    plain = _core(tmp_path / "a", recommend={"scorer": "items", "n_neighbours": 1})
    wide = _core(tmp_path / "b", recommend={"scorer": "items", "n_neighbours": 1, "n_explore": 20})
    assert len(pool(wide) - pool(plain)) >= 5
    off = _core(tmp_path / "c", recommend={"scorer": "items"}, memory=False, updates_per_feedback=2)
    d = _decide(off, ev)
    update = off.apply_feedback(d, d.items[0], "alipay", 30.0)
    assert update.new_case_id is None and off.bank_size() == 0


def test_the_item_lane_brings_each_pool_item_its_own_cases(tmp_path: Path) -> None:
    """With one case retrieved per request, only one written item carries a case; with the item
    lane on, the written items of the pool carry their own (5 of the 6 are in the pool; a
    list longer than the pool is filled by popularity, without evidence)."""
    ev = _events("i0", "i2")
    found = []
    for k, lane in enumerate((0, 4)):
        recommend = {"scorer": "items", "top_k": 1, "item_lane": lane}
        core = _core(tmp_path / str(k), recommend=recommend)
        sids = _write_cases(core)
        r = core.recommend("u1", 30, {}, ev, [], False)
        behind = {i.item_id for i in r.items if i.cases}
        assert set().union(*(set(i.cases) for i in r.items)) <= set(sids)
        found.append(behind)
    hats = {f"i{10 + k}" for k in range(6)}
    assert len(found[0]) == 1 and found[0] <= hats
    assert found[0] < found[1] <= hats and len(found[1]) >= 5

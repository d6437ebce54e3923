"""One transition per decision + outcome: serving's feedback (the decision read back from its
log) and the replay's path (`Recommender.transition` on the fresh `RecResult`) build the same
one, with the rewards the credit rule gives by hand."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recsys.rec.request import RecRequest
from recsys.rec.scorers import LoggedDecision, Outcome
from serving.interactions import interactions
from serving.service import DecisionSnapshot
from tests.serving.test_serving_core import _core, _events, _write_cases


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.mark.parametrize(("scorer", "other"), [("blend", 0.1), ("items", 0.0)])
def test_serving_learns_the_transition_the_replay_builds(
    tmp_path: Path, scorer: str, other: float
) -> None:
    """For one request at a fixed time and one purchase of the first chosen candidate's
    item, serving's `apply_feedback` hands `MemoryLoop.learn` exactly the (s, snapshot, chosen,
    logp, rewards) that `Recommender.transition` builds from the `RecResult` of the same
    request; the rewards are the hand-computed credit (blend: 1 for the case holding the item,
    beta = 0.1 for the others; items: 1 for the item, 0 for the other shown items), and s' has
    its own snapshot (blend; the items scorer learns online with gamma 0, so none is built)."""
    core = _core(
        tmp_path,
        recommend={"scorer": scorer, "num_chosen": 3},
        memory=False,
        updates_per_feedback=0,
    )
    _write_cases(core)
    rt = core.runtime
    ev = _events("i0", "i2")
    t = time.time()
    rec = core.recommend("u1", 10, {}, ev, [], False, at=t)
    decision = DecisionSnapshot(
        "d1", "u1", rec.state, rec.candidates, (), tuple(i.item_id for i in rec.items), "v", t
    )
    # the replay's side: the same request through the pipeline, its transition built directly
    res = rt.rec.recommend(RecRequest("u1", interactions("u1", ev), t, frozenset(), 10, None))
    assert [rt.items.ids[r] for r in res.items] == list(decision.items)
    item = rt.items.ids[res.chosen[0].items[0]]  # the first chosen case's (or item's) item
    logged = LoggedDecision.from_result(res, rt.items)
    assert logged is not None
    built = rt.rec.transition(logged, Outcome(1.0, frozenset({item})))
    assert built is not None
    want, want_rewards = built
    # serving's side: the feedback, with MemoryLoop.learn watched
    seen: list[tuple[Any, ...]] = []
    learn = rt.rec.loop.learn  # type: ignore[union-attr]

    def spy(*args: Any) -> Any:
        seen.append(args)
        return learn(*args)

    rt.rec.loop.learn = spy  # type: ignore[union-attr,method-assign]
    core.apply_feedback(decision, item, "alipay", None)
    assert len(seen) == 1
    got, rewards, s2, c2 = seen[0]
    np.testing.assert_array_equal(got.state, want.state)
    for f in ("case_ids", "keys", "sims", "features", "mask"):
        np.testing.assert_array_equal(getattr(got.cands, f), getattr(want.cands, f), err_msg=f)
    np.testing.assert_array_equal(got.chosen, want.chosen)
    np.testing.assert_array_equal(got.logp, want.logp)
    np.testing.assert_array_equal(rewards, want_rewards)
    holds = [item in (rt.items.ids[r] for r in c.items) for c in res.chosen]
    by_hand = [1.0 if h else other for h in holds]
    np.testing.assert_allclose(rewards, by_hand)
    assert sum(holds) == 1 and len(holds) >= 3
    if scorer == "items":  # gamma 0 online (`presets.online`): y = r, s' is never built
        assert rt.bundle.config.learner.gamma == 0 and s2 is None and c2 is None
        return
    assert s2.shape == (rt.dim,) and np.any(s2)
    assert c2.features.shape[1] == rt.rec.scorer.feature_width and c2.num_valid > 0

"""The reward-drop alarm in the served pipeline (`RecommendConfig.drift_drop`): closed outcomes
of shown items feed it, and an alarm restarts the cross model's AdaGrad steps and widens the
item pool for `drift_explore_hours`."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from recsys.rec.drift import RewardDrift
from recsys.rec.request import RecRequest
from recsys.rec.scorers.items import ItemsScorer
from recsys.records import Action, Interaction
from recsys.rl.slotted import ExploreWindow
from serving.core import ServingCore
from serving.service import IMPRESSION
from tests.serving.test_serving_core import _core, _decide, _events, _write_cases

DRIFT = {
    "scorer": "items",
    "item_crosses_lr": 0.1,
    "drift_drop": 0.5,
    "drift_explore": 6,
    "n_neighbours": 2,
    "n_popular": 2,
}
"""The items scorer with a cross model, the alarm, and a small pool (so 6 more items show)."""


def _pool_size(core: ServingCore) -> int:
    """Items in the pool of the items scorer for u1 after i0 and i2, now."""
    rec, now = core.runtime.rec, time.time()
    events = [Interaction("u1", i, Action.CLICK, now - 10 + k) for k, i in enumerate(["i0", "i2"])]
    req = RecRequest("u1", events, now)
    state = rec.encode_state("u1", events, now)
    return ItemsScorer().pool(rec, req, state, rec.exclusions(req, True)).cands.num_valid


def test_an_alarm_restarts_the_crosses_steps_and_widens_the_pool(tmp_path: Path) -> None:
    """An alarm restarts the cross model's AdaGrad steps and widens the pool for its window;
    the cross model steps at the window's rate while the window lasts, at its own after."""
    core = _core(tmp_path, recommend={**DRIFT, "drift_crosses_lr": 0.3}, learner={"lr": 1e-2})
    _write_cases(core)
    rec = core.runtime.rec
    assert rec.drift is not None and rec.crosses is not None
    rec.drift = RewardDrift(0.5, half_life=2)  # an alarm within a few dozen outcomes
    d = _decide(core, _events("i0", "i2"))
    updates = []
    for k in range(20):  # every shown item bought, then every one ignored
        dk = dataclasses.replace(d, decision_id=f"buy{k}")
        updates += [core.apply_feedback(dk, item, "alipay", None) for item in d.items[:2]]
    assert not any(u.drift_alarm for u in updates)
    assert np.any(rec.crosses.g2 > 0)
    assert rec.crosses.lr == 0.1
    fired = None
    for k in range(40):
        dk = dataclasses.replace(d, decision_id=f"skip{k}")
        for item in d.items[:2]:
            if core.apply_feedback(dk, item, IMPRESSION, None).drift_alarm:
                fired = fired or (k, item)
                assert not np.any(rec.crosses.g2), "the alarm's AdaGrad accumulators"
    assert fired is not None and rec.drift.alarms >= 1
    assert rec.crosses.lr == 0.3
    rec.note_reward(1.0, time.time() + 13 * 3600.0)  # the window is over (12 hours by default)
    assert rec.crosses.lr == 0.1
    assert rec.drift_explore(time.time()) == 6
    assert rec.drift_explore(time.time() + 13 * 3600.0) == 0  # 12 hours by default
    widened, at = _pool_size(core), rec.drift_at
    rec.drift_at = -np.inf  # the same request without the alarm
    assert widened > _pool_size(core)
    rec.drift_at = at


def test_an_alarm_forgets_the_old_cases_and_replay_and_ranks_by_the_bias_in_its_window(
    tmp_path: Path,
) -> None:
    """`drift_forget` "all": after an alarm retrieval finds no case written before it and the
    learner's replay is empty; `drift_q_weight` 0, `drift_explore_slots` 4 and
    `drift_gamma_scale` 100 set the window's exploration, and none is set outside the window."""
    core = _core(
        tmp_path,
        recommend={
            **DRIFT,
            "drift_forget": "all",
            "drift_q_weight": 0.0,
            "drift_explore_slots": 4,
            "drift_gamma_scale": 100.0,
        },
        learner={"lr": 1e-2},
    )
    _write_cases(core)
    rec = core.runtime.rec
    assert rec.loop is not None
    now = time.time()
    events = [Interaction("u1", i, Action.CLICK, now - 10 + k) for k, i in enumerate(["i0", "i1"])]
    state = rec.encode_state("u1", events, now)
    assert len(rec.retrieve(state.vec, now)[0]) > 0
    d = _decide(core, _events("i0", "i2"))
    core.apply_feedback(d, d.items[0], "alipay", None)
    assert len(rec.loop.learner.replay) > 0 and rec.explore_window(now) is None
    rec.drift = RewardDrift(0.5, half_life=2)
    for _ in range(20):
        assert not rec.note_reward(1.0, now)
    assert any(rec.note_reward(0.0, now + 1.0) for _ in range(40))
    assert len(rec.retrieve(state.vec, now + 2.0)[0]) == 0  # every case is older than the alarm
    assert len(rec.loop.learner.replay) == 0
    window = rec.explore_window(now + 2.0)
    assert window == ExploreWindow(4, 0.0, 100.0)
    assert rec.explore_window(now + 13 * 3600.0) is None


def test_no_alarm_without_the_setting(tmp_path: Path) -> None:
    core = _core(tmp_path, recommend={**DRIFT, "drift_drop": 0.0})
    rec = core.runtime.rec
    assert rec.drift is None
    assert not rec.note_reward(0.0, time.time())
    assert rec.drift_explore(time.time()) == 0
    assert rec.crosses is not None and rec.crosses.lr == 0.1  # no window: the rate stays

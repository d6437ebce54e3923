"""Credit assignment, reward weights, replay collation and config round trips."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.config import CoreConfig, CreditConfig, RewardConfig, config_from_dict, config_to_dict
from recsys.rec.reward import action_reward, list_reward
from recsys.records import Action, Candidates, Feedback, Transition
from recsys.rl.credit import assign_credit
from recsys.rl.replay import ReplayBuffer, collate_transitions


def test_attributed_and_equal_credit() -> None:
    """Attributed: acted case gets r, others beta*r (all beta*r if none); equal: all r."""
    items = [{"a", "b"}, {"c"}, {"d"}]
    att = CreditConfig(rule="attributed", beta=0.1)
    assert assign_credit(1.0, items, {"c"}, att).tolist() == pytest.approx([0.1, 1.0, 0.1])
    assert assign_credit(1.0, items, {"z"}, att).tolist() == pytest.approx([0.1, 0.1, 0.1])
    assert assign_credit(0.6, items, {"c"}, CreditConfig(rule="equal")).tolist() == pytest.approx(
        [0.6, 0.6, 0.6]
    )


def test_reward_weights_and_dwell() -> None:
    """Default weights alipay 1, cart 0.6, collect 0.3, click 0.1; dwell capped; max aggregate."""
    cfg = RewardConfig()
    assert [action_reward(a, cfg) for a in Action] == [0.1, 0.3, 0.6, 1.0]
    assert action_reward(None, cfg) == 0.0
    dw = RewardConfig(dwell_weight=0.1, dwell_cap_seconds=120)
    assert action_reward(Action.CLICK, dw, dwell_seconds=600) == pytest.approx(0.1 + 0.2)
    fbs = [Feedback("r", "u", "i", Action.CLICK, 0.0), Feedback("r", "u", "j", Action.CART, 0.0)]
    assert list_reward(fbs, cfg) == pytest.approx(0.6)
    assert list_reward(fbs, RewardConfig(aggregate="sum")) == pytest.approx(0.7)


def _t(k: int, nk: int, m: int, r: float) -> Transition:
    rng = np.random.default_rng(k)

    def c(n: int) -> Candidates:
        return Candidates(
            np.arange(n),
            rng.normal(size=(n, 4)).astype(np.float32),
            np.ones(n, np.float32),
            np.ones((n, 4), np.float32),
            np.ones(n, bool),
        )

    return Transition(
        np.ones(4, np.float32),
        c(k),
        np.arange(m),
        np.zeros(m, np.float32),
        np.full(m, r, np.float32),
        np.ones(4, np.float32),
        c(nk),
        done=nk == 0,
    )


def test_collate_pads_candidates_and_slates() -> None:
    """Collation pads K and M with masks and keeps each next candidate snapshot."""
    b = collate_transitions([_t(3, 5, 1, 1.0), _t(5, 0, 2, 0.5)])
    assert b.cands.mask.shape == (2, 5) and b.cands.mask[0].tolist() == [1, 1, 1, 0, 0]
    assert b.next_cands.mask[1].sum() == 0 and b.done.tolist() == [0.0, 1.0]
    assert b.chosen_mask.tolist() == [[True, False], [True, True]]
    assert b.rewards[1].tolist() == [0.5, 0.5]


def test_replay_ring_overwrites_oldest() -> None:
    """A full buffer drops its oldest transition and samples uniformly from the rest."""
    buf = ReplayBuffer(3, seed=0)
    for r in range(5):
        buf.add(_t(2, 2, 1, float(r)))
    assert len(buf) == 3
    assert sorted(float(t.rewards[0]) for t in buf.transitions()) == [2.0, 3.0, 4.0]
    assert buf.sample(16).rewards.shape == (16, 1)


def test_core_config_round_trip() -> None:
    """config_from_dict(config_to_dict(cfg)) == cfg, and unknown keys are rejected."""
    cfg = CoreConfig()
    assert config_from_dict(CoreConfig, config_to_dict(cfg)) == cfg
    with pytest.raises(ValueError):
        config_from_dict(CoreConfig, {"nope": 1})

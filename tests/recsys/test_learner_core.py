"""Learner: Polyak exactness, reward direction, tabular rule, checkpoints, acting contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recsys.config import LearnerConfig, PolicyConfig, QNetworkConfig
from recsys.records import CASE_FEATURES, Candidates, Transition
from recsys.rl.learner import Learner, NoCandidatesError, polyak_update
from recsys.rl.q_network import TwinQNetwork

D = 8


def _cands(k: int = 6, seed: int = 0, valid: int | None = None) -> Candidates:
    rng = np.random.default_rng(seed)
    mask = np.zeros(k, bool)
    mask[: (k if valid is None else valid)] = True
    return Candidates(
        case_ids=np.arange(100, 100 + k, dtype=np.int64),
        keys=rng.normal(size=(k, D)).astype(np.float32),
        sims=np.linspace(0.9, 0.4, k).astype(np.float32),
        features=rng.uniform(size=(k, len(CASE_FEATURES))).astype(np.float32),
        mask=mask,
    )


def _learner(mode: str = "soft-q", **kw: object) -> Learner:
    cfg = LearnerConfig(mode=mode, min_replay=1, batch_size=8, lr=3e-3, **kw)  # type: ignore[arg-type]
    return Learner(cfg, D, D)


def test_polyak_update_exact() -> None:
    """target <- (1 - tau) target + tau online, checked element-wise."""
    online, target = TwinQNetwork(QNetworkConfig(), D, D), TwinQNetwork(QNetworkConfig(), D, D)
    before = [p.detach().clone() for p in target.parameters()]
    polyak_update(target, online, 0.25)
    for b, p_t, p_o in zip(before, target.parameters(), online.parameters(), strict=True):
        assert torch.allclose(p_t, 0.75 * b + 0.25 * p_o, atol=1e-7)


@pytest.mark.parametrize("mode", ["soft-q", "parametric-ce"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_reward_moves_chosen_case_q(mode: str, sign: float) -> None:
    """A positive reward raises that case's Q, a negative (or zero-label) one lowers it."""
    learner = _learner(mode, gamma=0.0, ce_threshold=0.0)
    s = np.ones(D, np.float32) / np.sqrt(D)
    c = _cands()
    before = learner.scores(s, c)[2]
    t = Transition(
        s,
        c,
        np.array([2]),
        np.array([-1.0], np.float32),
        np.array([sign], np.float32),
        s,
        Candidates.empty(D),
        done=True,
    )
    learner.observe(t)
    for _ in range(30):
        learner.update()
    after = learner.scores(s, c)[2]
    assert (after - before) * sign > 0.05, (before, after)


def test_tabular_rule_and_ranking() -> None:
    """Tabular Q moves by lr * (r - Q) and ranks by 0.5 sim + 0.5 Q."""
    learner = _learner("tabular", tabular_lr=0.5, tabular_epsilon=0.0)
    s, c = np.zeros(D, np.float32), _cands()
    t = Transition(
        s,
        c,
        np.array([5]),
        np.zeros(1, np.float32),
        np.array([1.0], np.float32),
        s,
        Candidates.empty(D),
        done=True,
    )
    learner.observe(t)
    learner.observe(t)
    assert learner.tabular.q[105] == pytest.approx(0.75)
    scores = learner.scores(s, c)
    assert scores[5] == pytest.approx(0.5 * c.sims[5] + 0.5 * 0.75)
    assert learner.act(s, c, m=1, greedy=True).case_ids[0] == 105


def test_non_parametric_is_similarity_greedy_and_update_noop() -> None:
    """Non-parametric picks the most similar cases and never learns."""
    learner = _learner("non-parametric")
    choice = learner.act(np.zeros(D, np.float32), _cands(), m=2)
    assert choice.indices.tolist() == [0, 1]
    assert learner.update() == {}


def test_act_respects_mask_and_empty_raises() -> None:
    """act never returns a masked case, clips m to the valid count, and refuses empty sets."""
    learner = _learner()
    c = _cands(k=6, valid=3)
    for seed in range(20):
        ch = learner.act(np.full(D, seed, np.float32), c, m=4)
        assert len(ch.indices) == 3 and bool(c.mask[ch.indices].all())
        assert ch.probs[3:].sum() == 0.0 and abs(ch.probs.sum() - 1) < 1e-5
    with pytest.raises(NoCandidatesError):
        learner.act(np.zeros(D, np.float32), _cands(valid=0), m=4)


def test_td_bootstraps_from_next_candidates() -> None:
    """With r = 0 and gamma > 0, Q(s, c) moves towards the soft value of the next set."""
    learner = _learner(gamma=0.9, tau=1.0)
    s, c = np.ones(D, np.float32), _cands()
    t = Transition(
        s, c, np.array([0]), np.zeros(1, np.float32), np.zeros(1, np.float32), s, c, done=False
    )
    learner.observe(t)
    for _ in range(5):
        metrics = learner.update()
    assert metrics["q/target_mean"] != 0.0  # target = gamma * V(s'), not the reward


def test_auto_alpha_moves_alpha() -> None:
    """With automatic temperature the alpha changes after updates."""
    learner = _learner(policy=PolicyConfig(auto_alpha=True, alpha_lr=0.05))
    s, c = np.ones(D, np.float32), _cands()
    learner.observe(
        Transition(
            s, c, np.array([1]), np.zeros(1, np.float32), np.ones(1, np.float32), s, c, done=False
        )
    )
    a0 = learner.alpha
    for _ in range(10):
        m = learner.update()
    assert learner.alpha != pytest.approx(a0) and "losses/alpha" in m


@pytest.mark.parametrize("mode", ["soft-q", "tabular"])
def test_checkpoint_round_trip_identical_q(mode: str, tmp_path: Path) -> None:
    """save then from_checkpoint gives identical Q values / scores and config."""
    learner = _learner(mode)
    s, c = np.ones(D, np.float32), _cands()
    learner.observe(
        Transition(
            s,
            c,
            np.array([1, 2]),
            np.zeros(2, np.float32),
            np.array([1.0, -1.0], np.float32),
            s,
            c,
            done=False,
        )
    )
    for _ in range(3):
        learner.update()
    learner.save(tmp_path / "ckpt.pt")
    loaded = Learner.from_checkpoint(tmp_path / "ckpt.pt")
    assert loaded.cfg == learner.cfg and loaded.step == learner.step
    assert np.array_equal(loaded.scores(s, c), learner.scores(s, c))
    q1a, q2a = learner.q_values(s, c)
    q1b, q2b = loaded.q_values(s, c)
    assert np.array_equal(q1a, q1b) and np.array_equal(q2a, q2b)

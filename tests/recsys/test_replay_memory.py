"""What the replay buffer holds: a Q network without vectors never reads the candidates' keys,
so its transitions keep keys of width 0 (no memory) and learn exactly as with the keys."""

from __future__ import annotations

import numpy as np
import torch

from recsys.config import LearnerConfig, QNetworkConfig
from recsys.records import CASE_FEATURES, Candidates, Transition
from recsys.rl.learner import Learner

D = 16


def _transition(seed: int, zero_keys: bool) -> Transition:
    rng = np.random.default_rng(seed)
    k = 12
    keys = rng.normal(size=(k, D)) * (0.0 if zero_keys else 1.0)
    c = Candidates(
        case_ids=np.arange(k, dtype=np.int64),
        keys=keys.astype(np.float32),
        sims=rng.uniform(size=k).astype(np.float32),
        features=rng.uniform(size=(k, len(CASE_FEATURES))).astype(np.float32),
        mask=np.ones(k, bool),
    )
    s = rng.normal(size=D).astype(np.float32)
    chosen, r = np.array([0, 3]), rng.uniform(size=2).astype(np.float32)
    return Transition(s, c, chosen, np.full(2, -1.0, np.float32), r, s, c, done=False)


def _learner(use_vectors: bool) -> Learner:
    q = QNetworkConfig(use_vectors=use_vectors)
    return Learner(LearnerConfig(min_replay=1, batch_size=4, gamma=0.5, q=q), D, D)


def test_a_q_without_vectors_stores_no_keys_and_learns_as_with_them() -> None:
    """Keys have width 0 in the replay; 10 updates give the same weights whether the observed
    keys were random or zero."""
    a, b = _learner(False), _learner(False)
    for seed in range(6):
        a.observe(_transition(seed, zero_keys=False))
        b.observe(_transition(seed, zero_keys=True))
    stored = a.replay.transitions()[0]
    assert stored.cands.keys.shape == (12, 0) and stored.next_cands.keys.shape == (12, 0)
    for _ in range(10):
        a.update()
        b.update()
    for pa, pb in zip(a.q.parameters(), b.q.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_a_q_with_vectors_keeps_the_keys() -> None:
    """With vectors the Q network reads the keys: the replay stores them unchanged."""
    learner = _learner(True)
    t = _transition(0, zero_keys=False)
    learner.observe(t)
    assert np.array_equal(learner.replay.transitions()[0].cands.keys, t.cands.keys)

"""Batched online learning: a deferred `MemoryLoop` observes without stepping, then trains each
chunk of new transitions in the step right after, and gamma 0 never reads s'."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from recsys.config import LearnerConfig
from recsys.loop import MAX_PENDING_CHUNKS, Decided, MemoryLoop
from recsys.records import CASE_FEATURES, Candidates, Transition
from recsys.rl.learner import Learner

D = 8


def _cands(k: int = 5, seed: int = 0) -> Candidates:
    rng = np.random.default_rng(seed)
    return Candidates(
        case_ids=np.arange(k, dtype=np.int64),
        keys=rng.normal(size=(k, D)).astype(np.float32),
        sims=np.linspace(0.9, 0.4, k).astype(np.float32),
        features=rng.uniform(size=(k, len(CASE_FEATURES))).astype(np.float32),
        mask=np.ones(k, bool),
    )


def _loop(updates: float = 2.0, batch: int = 4, gamma: float = 0.0) -> MemoryLoop:
    cfg = LearnerConfig(min_replay=1, batch_size=batch, gamma=gamma, lr=1e-2)
    return MemoryLoop(Learner(cfg, D, D), updates, deferred=True)


def _decided(seed: int) -> Decided:
    s = np.random.default_rng(seed).normal(size=D).astype(np.float32)
    return Decided(s, _cands(seed=seed), np.array([1, 3]), np.array([-1.0, -2.0], np.float32))


def _spy(loop: MemoryLoop) -> list[list[Transition] | None]:
    """Record the `fresh` argument of every `Learner.update` call."""
    seen: list[list[Transition] | None] = []
    update = loop.learner.update

    def spy(fresh: list[Transition] | None = None) -> dict[str, float]:
        seen.append(None if fresh is None else list(fresh))
        return update(fresh)

    loop.learner.update = spy  # type: ignore[method-assign]
    return seen


def test_deferred_learn_observes_only_and_train_steps_per_chunk() -> None:
    """Ten transitions with batch 4 and 2 updates each: no step while learning, then 2 steps
    for each of the chunks 4, 4, 2, each step given exactly its chunk; nothing left pending."""
    loop = _loop(updates=2.0, batch=4)
    seen = _spy(loop)
    steps = [
        loop.learn(_decided(k), np.array([1.0, 0.0], np.float32), None, None) for k in range(10)
    ]
    assert seen == [] and all(not s.metrics for s in steps)
    assert loop.pending == 10 and len(loop.learner.replay) == 10
    metrics = loop.train()
    assert [len(f or []) for f in seen] == [4, 4, 4, 4, 2, 2]
    assert seen[0] == seen[1] and seen[4] is not None
    assert [t.state for t in seen[4]] == [s.transition.state for s in steps[8:]]
    assert len(metrics) == 6 and loop.pending == 0
    assert loop.train() == []


def test_a_step_on_fresh_transitions_fills_the_batch_from_the_replay() -> None:
    """One fresh transition in a batch of 4: the collated batch holds it plus 3 replay samples
    (the third step: chunks of 4 and 2 before it; the loss is finite)."""
    loop = _loop(updates=1.0, batch=4)
    for k in range(6):
        loop.learn(_decided(k), np.array([1.0, 0.0], np.float32), None, None)
    loop.train()
    fresh = loop.learn(_decided(99), np.array([0.0, 1.0], np.float32), None, None).transition
    batches: list[Any] = []
    import recsys.rl.learner as learner_mod

    collate = learner_mod.collate_transitions
    learner_mod.collate_transitions = lambda items: batches.append(items) or collate(items)  # type: ignore[assignment]
    try:
        (m,) = loop.train()
    finally:
        learner_mod.collate_transitions = collate
    assert len(batches) == 1 and len(batches[0]) == 4 and batches[0][0] is fresh
    assert np.isfinite(m["losses/td"]) and m["learner/step"] == 3.0  # chunks 4 + 2, then this one


def test_a_deferred_loop_nobody_trains_stays_bounded() -> None:
    """Without `train`, the loop trains by itself once MAX_PENDING_CHUNKS batches wait."""
    loop = _loop(updates=1.0, batch=2)
    seen = _spy(loop)
    for k in range(MAX_PENDING_CHUNKS * 2):
        loop.learn(_decided(k), np.array([1.0, 0.0], np.float32), None, None)
    assert loop.pending == 0 and len(seen) == MAX_PENDING_CHUNKS


@pytest.mark.parametrize("gamma", [0.0, 0.9])
def test_gamma_zero_never_runs_the_target_network(gamma: float) -> None:
    """With gamma 0 the target is the reward (no pass of the target network over s'); with
    gamma > 0 the target network scores the next candidates."""
    loop = _loop(updates=1.0, batch=2, gamma=gamma)
    calls: list[int] = []
    forward = loop.learner.q_target.forward
    loop.learner.q_target.forward = lambda *a: calls.append(1) or forward(*a)  # type: ignore[method-assign]
    d = _decided(0)
    loop.learn(d, np.array([1.0, 0.0], np.float32), d.state, _cands(seed=5))
    loop.train()
    assert (len(calls) > 0) == (gamma > 0)

"""Weights between serving cores travel as the bundle's learner part: what the shared learner
publishes makes a replica score exactly like it, without the learner's optimiser state."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recsys.bundle import LearnerPart
from serving.core import ServingCore
from serving.shared_learner import apply_published, part_host, q_digest
from tests.serving.test_serving_core import _core, _decide, _events, _write_cases


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Tiny networks: one torch thread avoids oversubscription on shared cores."""
    import torch

    torch.set_num_threads(1)


def _learning_core(tmp: Path, learn: int = 0) -> ServingCore:
    """A fresh core (`test_serving_core`'s 30-item setup) with manual cases, after `learn`
    purchases of a recommended item (gradient steps)."""
    core = _core(tmp, recommend={"num_chosen": 1}, learner={"lr": 1e-2}, updates_per_feedback=4)
    _write_cases(core)
    d = _decide(core, _events("i0", "i2"))
    for k in range(learn):
        core.apply_feedback(dataclasses.replace(d, decision_id=f"d{k}"), d.items[0], "alipay", None)
    return core


def test_published_part_makes_a_replica_score_like_the_learner(tmp_path: Path) -> None:
    """After the learner core learned, its publication (no optimiser state, no target network)
    applied to a fresh replica core gives the same Q fingerprint and step; the replica's
    optimiser stays empty and its target network its own."""
    learner, replica = _learning_core(tmp_path / "learner", 3), _learning_core(tmp_path / "r")
    assert q_digest(learner) != q_digest(replica)
    published = learner.learner_part(optimiser=False).publication()
    assert published.optimiser is None and "q_target" not in published.weights
    target = {k: v.clone() for k, v in replica.runtime.learner.q_target.state_dict().items()}
    apply_published(replica, published.to_bytes())
    assert q_digest(replica) == q_digest(learner)
    rl, ll = replica.runtime.learner, learner.runtime.learner
    assert rl.step == ll.step > 0
    assert rl.opt.state_dict()["state"] == {} and ll.opt.state_dict()["state"] != {}
    assert all(v.equal(target[k]) for k, v in rl.q_target.state_dict().items())


def test_checkpoint_part_carries_the_optimiser_state(tmp_path: Path) -> None:
    """The checkpoint part (as the shared learner keeps it) restores the Adam moments too."""
    learner, other = _learning_core(tmp_path / "learner", 3), _learning_core(tmp_path / "o")
    ckpt = LearnerPart.from_bytes(learner.learner_part(optimiser=True).to_bytes())
    other.apply_learner_part(ckpt)
    a = learner.runtime.learner.opt.state_dict()["state"]
    b = other.runtime.learner.opt.state_dict()["state"]
    assert a.keys() == b.keys() and all(
        np.array_equal(a[k]["exp_avg"].numpy(), b[k]["exp_avg"].numpy()) for k in a
    )


def test_a_core_without_learner_parts_is_refused() -> None:
    """A custom core that cannot ship its learner is named in a `TypeError`."""

    class Bare:
        model_version: Any = "x"

    with pytest.raises(TypeError, match="Bare has no learner_part"):
        part_host(Bare())  # type: ignore[arg-type]

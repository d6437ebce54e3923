"""The items scorer's cross model in the learner part (`recsys.rec.item_crosses.CrossesState`):
a checkpoint restores it exactly, a publication scores the same without the AdaGrad state and
stays small, parts written before it travelled still load."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch

from recsys.bundle import LearnerPart
from recsys.config import LearnerConfig
from recsys.errors import BundleError
from recsys.rec.item_crosses import ItemCrosses
from recsys.rl.learner import Learner

D = 8


def _trained(bits: int = 20, n: int = 200) -> tuple[ItemCrosses, list[np.ndarray]]:
    """A cross model after `n` updates of 10 shown items out of 300 (random histories and
    rewards), and every item's tokens."""
    cx = ItemCrosses(bits=bits, lr=0.1)
    rng = np.random.default_rng(0)
    items = [cx.tokens(f"i{k}", f"cat={k % 7} brand={k % 11}") for k in range(300)]
    for _ in range(n):
        shown = rng.choice(300, 10, replace=False)
        hist = [items[int(h)] for h in rng.choice(300, 5, replace=False)]
        rewards = (rng.uniform(size=10) < 0.2).astype(np.float32)
        cx.update([items[int(s)] for s in shown], hist, rewards, np.arange(10))
    return cx, items


def _part(cx: ItemCrosses, *, optimiser: bool) -> LearnerPart:
    """A fresh learner's part carrying `cx`, as `ModelBundle.learner_part` builds it."""
    part = Learner(LearnerConfig(), D, D).part(optimiser=optimiser)
    return dataclasses.replace(part, crosses=cx.state(optimiser=optimiser))


@pytest.mark.parametrize(("bits", "dense"), [(16, False), (10, True)])
def test_checkpoint_part_restores_the_cross_model_exactly(bits: int, dense: bool) -> None:
    """Through a checkpoint's bytes (sparse, or dense for a table more than half filled) a new
    model gets the same weights, biases and AdaGrad state, so its next update is the
    original's."""
    a, items = _trained(bits=bits)
    back = LearnerPart.from_bytes(_part(a, optimiser=True).to_bytes())
    b = ItemCrosses(bits=bits, lr=0.1)
    assert back.crosses is not None and (back.crosses.index is None) == dense
    b.load(back.crosses)
    for name in ("w", "g2", "pos", "pos_g2"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    for cx in (a, b):
        cx.update(items[:3], items[3:5], np.ones(3, np.float32), np.array([1, 2, 3]))
    assert np.array_equal(a.w, b.w) and np.array_equal(a.pos, b.pos)


def test_publication_scores_the_same_without_adagrad_state_and_stays_small() -> None:
    """A publication's file holds no accumulators, is under a quarter of the dense float32
    table (4 MiB) and under the checkpoint's, and a replica loaded from it scores every item like
    the learner after any history; the replica keeps its own (zero) accumulators."""
    a, items = _trained()
    pub = _part(a, optimiser=True).publication().to_bytes()
    ckpt = _part(a, optimiser=True).to_bytes()
    raw = torch.load(io.BytesIO(pub), weights_only=True)
    assert {"g2", "pos_g2"}.isdisjoint(raw["crosses"]) and "g2" in torch.load(
        io.BytesIO(ckpt), weights_only=True
    )["crosses"]
    dense = a.w.nbytes
    assert len(pub) < dense / 4 and len(pub) < len(ckpt), (len(pub), len(ckpt), dense)
    b = ItemCrosses(lr=0.1)
    part = LearnerPart.from_bytes(pub)
    assert part.crosses is not None and part.crosses.g2 is None
    b.load(part.crosses)
    for hist in ([], items[10:15], items[200:201]):
        assert np.array_equal(a.scores(items, hist), b.scores(items, hist))
    assert not b.g2.any() and a.g2.any()


def test_a_part_without_a_cross_model_loads() -> None:
    """A part written before the cross model travelled (no "crosses" in the file) loads with
    none and applies to a learner as before."""
    a = Learner(LearnerConfig(), D, D)
    blob = a.part(optimiser=False).to_bytes()
    assert "crosses" not in torch.load(io.BytesIO(blob), weights_only=True)
    part = LearnerPart.from_bytes(blob)
    assert part.crosses is None and part.publication().crosses is None
    Learner(LearnerConfig(), D, D).apply_part(part)


def test_a_cross_model_of_another_size_is_refused() -> None:
    """Loading the state of a table of another size raises `BundleError`, the model unchanged."""
    a, _ = _trained(bits=12, n=5)
    b = ItemCrosses(bits=14)
    with pytest.raises(BundleError, match="is not this"):
        b.load(a.state())
    assert not b.w.any()

"""Shapes, causality and window cutting of the sequence model (`recsys.rec.seq`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.rec.seq import (
    SeqModelConfig,
    SeqQModel,
    UserSequence,
    gap_bucket,
    histories_batch,
    windows,
)


def _seq(items: list[int], t0: float = 0.0) -> UserSequence:
    n = len(items)
    return UserSequence(
        np.array(items, np.int64),
        np.ones(n, np.int64),
        t0 + np.arange(n, dtype=np.float64) * 60.0,
        np.full(n, 0.5, np.float32),
    )


@pytest.mark.parametrize("encoder", ["transformer", "gru"])
def test_shapes_of_states_and_heads(encoder: str) -> None:
    """States are (B, L, d) and every head scores all N items for each transition."""
    cfg = SeqModelConfig(n_items=11, encoder=encoder, dim=8, layers=1, heads=2, max_len=6)
    model = SeqQModel(cfg).eval()
    batch = windows([_seq([1, 2, 3]), _seq([4, 5, 6, 7, 8])], 6, cfg.n_gaps)
    h = model(batch)
    assert h.shape == (2, 6, 8)
    p = int(batch.has_target.sum())
    assert p == 2 + 4
    heads = model.heads(h[batch.has_target])
    assert heads.logits.shape == heads.q1.shape == heads.q2.shape == (p, 11)


@pytest.mark.parametrize("encoder", ["transformer", "gru"])
def test_states_are_causal(encoder: str) -> None:
    """Changing a later event leaves the states of earlier positions unchanged."""
    torch.manual_seed(0)
    cfg = SeqModelConfig(n_items=11, encoder=encoder, dim=8, layers=2, heads=2, max_len=6)
    model = SeqQModel(cfg).eval()
    a = histories_batch([_seq([1, 2, 3, 4])], 6, cfg.n_gaps)
    b = histories_batch([_seq([1, 2, 3, 9])], 6, cfg.n_gaps)
    ha, hb = model(a), model(b)
    assert torch.allclose(ha[:, 2:5], hb[:, 2:5], atol=1e-6)
    assert not torch.allclose(ha[:, 5], hb[:, 5])


def test_windows_cover_each_transition_once() -> None:
    """A long sequence is cut into overlapping windows holding each (t -> t+1) exactly once."""
    s = _seq(list(range(1, 12)))  # 11 events, 10 transitions
    batch = windows([s], 4, 32)
    pairs = []
    for row in range(len(batch.items)):
        for t in range(4):
            if batch.targets[row, t] > 0:
                pairs.append((int(batch.items[row, t]), int(batch.targets[row, t])))
    assert sorted(pairs) == [(i, i + 1) for i in range(1, 11)]
    assert float(batch.target_ts[batch.has_target].max()) == 600.0


def test_gap_buckets() -> None:
    """First event -> 1; a gap of g seconds -> 2 + floor(log2(1 + g)), capped."""
    got = gap_bucket(np.array([np.nan, 0.0, 1.0, 3.0, 1e12]), 32)
    assert got.tolist() == [1, 2, 3, 4, 31]

"""Property tests of the masked soft policy and slate sampling."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.rl.policy import (
    entropy,
    masked_log_softmax,
    sample_without_replacement,
    slate_log_prob,
)

rows = st.integers(1, 4)
cols = st.integers(1, 12)


@settings(max_examples=60, deadline=None)
@given(b=rows, k=cols, seed=st.integers(0, 10_000), alpha=st.floats(0.01, 10.0))
def test_probabilities_sum_to_one_and_masked_are_zero(
    b: int, k: int, seed: int, alpha: float
) -> None:
    """Valid probabilities sum to 1 per row and masked candidates get exactly 0."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, k, generator=g) * 5
    mask = torch.rand(b, k, generator=g) > 0.4
    mask[:, 0] = True
    p = masked_log_softmax(q, mask, alpha).exp()
    assert torch.allclose(p.sum(-1), torch.ones(b), atol=1e-5)
    assert bool((p[~mask] == 0).all())


@settings(max_examples=40, deadline=None)
@given(k=st.integers(2, 12), seed=st.integers(0, 10_000))
def test_sampling_never_picks_masked_and_is_distinct(k: int, seed: int) -> None:
    """Gumbel top-m draws distinct indices and never a masked candidate."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(1, k, generator=g) > 0.5
    mask[0, 0] = True
    m = int(mask.sum())
    logp = masked_log_softmax(torch.randn(1, k, generator=g), mask, 0.5)
    idx = sample_without_replacement(logp, m, g)[0]
    assert len(set(idx.tolist())) == m
    assert bool(mask[0, idx].all())


def test_sampling_frequencies_match_policy() -> None:
    """The first Gumbel draw follows softmax(Q/alpha) (chi-square-free tolerance check)."""
    q = torch.tensor([[1.0, 0.0, -1.0, 5.0]])
    mask = torch.tensor([[True, True, True, False]])
    logp = masked_log_softmax(q, mask, 1.0).expand(20000, 4)
    g = torch.Generator().manual_seed(0)
    first = sample_without_replacement(logp, 1, g)[:, 0]
    freq = torch.bincount(first, minlength=4).float() / 20000
    assert torch.allclose(freq, logp[0].exp(), atol=0.015)


def test_entropy_uniform_and_slate_prob() -> None:
    """Uniform over 3 valid entries: entropy log 3; Plackett-Luce 2-slate prob p1*p2/(1-p1)."""
    mask = torch.tensor([[True, True, True, False]])
    logp = masked_log_softmax(torch.zeros(1, 4), mask, 1.0)
    assert abs(entropy(logp, mask).item() - math.log(3)) < 1e-6
    lp = slate_log_prob(logp, torch.tensor([[0, 2]])).item()
    assert abs(lp - math.log((1 / 3) * (1 / 3) / (2 / 3))) < 1e-6

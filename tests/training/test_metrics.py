"""Metric functions against hand-computed values."""

from __future__ import annotations

import math

import pytest

from training.errors import EmptyEvaluationError
from training.metrics import (
    hit_rate_at_k,
    hit_rate_at_k_multi,
    item_coverage,
    mrr,
    mrr_multi,
    ndcg_at_k,
    ndcg_at_k_multi,
    ranks_of_targets,
    reward_per_decision,
    summarize,
)

# Three decisions: target at rank 1, rank 3, absent.
RANKED = [[7, 2, 3], [4, 5, 6, 9], [1, 2]]
TARGETS = [7, 6, 8]


def test_ranks_are_one_based_and_zero_when_absent() -> None:
    """The rank helper returns 1-based positions and 0 for a missing target."""
    assert ranks_of_targets(RANKED, TARGETS).tolist() == [1, 3, 0]


def test_hit_rate_by_hand() -> None:
    """HR@k counts targets within the top k: k=1 -> 1/3, k=3 -> 2/3, k=2 -> 1/3."""
    assert hit_rate_at_k(RANKED, TARGETS, 1) == pytest.approx(1 / 3)
    assert hit_rate_at_k(RANKED, TARGETS, 2) == pytest.approx(1 / 3)
    assert hit_rate_at_k(RANKED, TARGETS, 3) == pytest.approx(2 / 3)


def test_ndcg_by_hand() -> None:
    """NDCG@k is the mean of 1/log2(rank+1) within k: (1 + 0.5 + 0) / 3 at k=3."""
    assert ndcg_at_k(RANKED, TARGETS, 3) == pytest.approx((1.0 + 1.0 / math.log2(4)) / 3)
    assert ndcg_at_k(RANKED, TARGETS, 2) == pytest.approx(1.0 / 3)
    assert ndcg_at_k([[3, 1, 2, 5, 4]], [4], 10) == pytest.approx(1.0 / math.log2(6))


def test_mrr_by_hand_and_truncated() -> None:
    """MRR is (1 + 1/3 + 0)/3; truncated at k=2 the rank-3 hit no longer counts."""
    assert mrr(RANKED, TARGETS) == pytest.approx((1 + 1 / 3) / 3)
    assert mrr(RANKED, TARGETS, k=2) == pytest.approx(1 / 3)


def test_multi_target_reduces_to_single() -> None:
    """With singleton target sets the multi-target metrics equal the single-target ones."""
    sets = [{t} for t in TARGETS]
    assert hit_rate_at_k_multi(RANKED, sets, 3) == hit_rate_at_k(RANKED, TARGETS, 3)
    assert ndcg_at_k_multi(RANKED, sets, 3) == pytest.approx(ndcg_at_k(RANKED, TARGETS, 3))
    assert mrr_multi(RANKED, sets) == pytest.approx(mrr(RANKED, TARGETS))


def test_multi_target_ndcg_by_hand() -> None:
    """Two targets at ranks 1 and 3: DCG = 1 + 1/2, IDCG = 1 + 1/log2(3)."""
    value = ndcg_at_k_multi([[1, 2, 3]], [{1, 3}], 3)
    assert value == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert mrr_multi([[5, 1, 3]], [{1, 3}]) == pytest.approx(0.5)


def test_reward_and_coverage() -> None:
    """Reward is the plain mean; coverage counts distinct items in the top-k lists."""
    assert reward_per_decision([1.0, 0.0, 0.3, 0.1]) == pytest.approx(0.35)
    assert item_coverage(RANKED, 10) == pytest.approx(8 / 10)
    assert item_coverage(RANKED, 10, k=1) == pytest.approx(3 / 10)


def test_empty_and_invalid_inputs_raise() -> None:
    """Zero decisions and non-positive k are errors, not silent zeros."""
    with pytest.raises(EmptyEvaluationError):
        ndcg_at_k([], [], 10)
    with pytest.raises(ValueError):
        hit_rate_at_k(RANKED, TARGETS, 0)


def test_summarize_keys() -> None:
    """The summary dict carries every project metric name with consistent values."""
    out = summarize(RANKED, TARGETS, n_items=10, rewards=[1.0, 0.0, 0.5])
    assert set(out) == {
        "hr@5",
        "hr@10",
        "hr@20",
        "ndcg@10",
        "mrr",
        "coverage@10",
        "reward_per_decision",
    }
    assert out["hr@10"] == pytest.approx(2 / 3)
    assert out["reward_per_decision"] == pytest.approx(0.5)

"""The evaluation policies of the off-policy check (`bench.online.eval_policies`): their
first-item distributions and exact values against hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.online.eval_policies import EVAL_POLICIES, first_item_dist, true_value

VALUES = np.array([0.5, 0.9, 0.1, 0.7, 0.3], np.float32)
COUNTS = np.array([4, 0, 9, 4, 1], np.float32)
POOL = np.array([True, False, False, True, True])


def test_the_policies_are_the_three_rules_on_both_supports() -> None:
    """Old names stay for the unseen-item support; the pool ones carry a `pool-` prefix."""
    assert [(p.name, p.rule, p.support) for p in EVAL_POLICIES] == [
        ("oracle", "oracle", "allowed"),
        ("popularity", "popularity", "allowed"),
        ("uniform", "uniform", "allowed"),
        ("pool-oracle", "oracle", "pool"),
        ("pool-popularity", "popularity", "pool"),
        ("pool-uniform", "uniform", "pool"),
    ]


@pytest.mark.parametrize(
    ("rule", "want", "value"),
    [
        ("oracle", [0, 0, 0, 1, 0], 0.7),  # row 1 (0.9) is outside the pool
        ("popularity", [1, 0, 0, 0, 0], 0.5),  # rows 0 and 3 tie at 4: the lower row; 2 is out
        ("uniform", [1 / 3, 0, 0, 1 / 3, 1 / 3], 0.5),
    ],
)
def test_each_rule_chooses_within_its_support_with_its_exact_value(
    rule: str, want: list[float], value: float
) -> None:
    """On the pool {0, 3, 4}: the best item, the most acted-on (lowest row on ties), uniform;
    the value is the distribution times the items' values."""
    dist = first_item_dist(rule, POOL, VALUES, COUNTS)  # type: ignore[arg-type]
    assert dist == pytest.approx(want)
    assert true_value(dist, VALUES) == pytest.approx(value)


@given(st.lists(st.booleans(), min_size=5, max_size=5).filter(any))
def test_every_distribution_sums_to_one_and_stays_in_its_support(mask: list[bool]) -> None:
    """Any non-empty support: each rule's distribution sums to 1 with no mass outside it."""
    support = np.array(mask)
    for rule in ("oracle", "popularity", "uniform"):
        dist = first_item_dist(rule, support, VALUES, COUNTS)  # type: ignore[arg-type]
        assert dist.sum() == pytest.approx(1.0) and (dist[~support] == 0).all(), rule

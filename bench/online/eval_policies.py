"""The evaluation policies of the off-policy check (`bench.online.ope`), first position only.

Each policy is a rule applied to a support, a set of catalogue rows of one decision:

- support `allowed`: every item the user has not acted on (the seen-item rule). The logging
  policy samples from a pool of about a hundred of them, so most of this support has no
  logged propensity: the unsupported case, kept to show what OBP does there;
- support `pool`: the decision's own candidate pool, the items with a positive position-0
  propensity under the logging policy (`bench.online.ope` reads it from the export, never
  from the simulator). Every item a `pool-*` policy can show could have been logged there.

Rules: `oracle` shows the support's best item for the user now (the simulator's value,
lowest row on ties), `popularity` its most acted-on item so far (acted events of all users,
lowest row on ties), `uniform` each of its items with equal probability.

The truth is exact: a policy's value on one decision is
``sum_a dist[a] * theta[0] * value[a]`` (`true_value`), the expected first-position reward
that OBP's per-record value estimates at position 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["EVAL_POLICIES", "EvalPolicy", "first_item_dist", "true_value"]

Rule = Literal["oracle", "popularity", "uniform"]
Support = Literal["allowed", "pool"]


@dataclass(frozen=True)
class EvalPolicy:
    """One evaluation policy: a rule over a support (module docstring)."""

    name: str
    """Its name in results."""
    rule: Rule
    """What it shows first within its support."""
    support: Support
    """Which items it chooses from: the user's unseen items or the logged pool."""


EVAL_POLICIES: tuple[EvalPolicy, ...] = tuple(
    EvalPolicy(f"{prefix}{rule}", rule, support)
    for support, prefix in (("allowed", ""), ("pool", "pool-"))
    for rule in ("oracle", "popularity", "uniform")
)
"""oracle, popularity, uniform (unsupported) and pool-oracle, pool-popularity, pool-uniform."""


def first_item_dist(
    rule: Rule, support: np.ndarray, values: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """(items,) float64 probability of each catalogue row at position 0 under `rule` restricted
    to `support` ((items,) bool, not empty); `values` (items,) the items' first-position
    values for the user now (only `oracle` reads them), `counts` (items,) acted events so far."""
    assert support.shape == values.shape == counts.shape, (
        f"{support.shape=} {values.shape=} {counts.shape=}"
    )
    assert support.any(), "empty support"
    dist = np.zeros(support.shape, np.float64)
    if rule == "uniform":
        dist[support] = 1.0 / int(support.sum())
        return dist
    score = values if rule == "oracle" else counts
    dist[int(np.argmax(np.where(support, score, -np.inf)))] = 1.0
    return dist


def true_value(dist: np.ndarray, values: np.ndarray) -> float:
    """Exact first-position value of a policy on one decision: sum_a dist[a] * values[a]
    (`values` already carry the position-0 examination probability theta[0])."""
    assert dist.shape == values.shape, f"{dist.shape=} {values.shape=}"
    return float(np.dot(dist, values.astype(np.float64)))

"""Confidence intervals over test rows: percentile bootstrap, plain and paired.

Every method of a run is evaluated on the same test rows (`training.evaluate.eval_decisions`),
so methods are compared PAIRED: the bootstrap resamples rows and recomputes the mean of the
per-row difference, which cancels the between-row variance both methods share (a hard row is
hard for everyone). A method run with several seeds enters with its per-row mean over seeds, so
the interval is about the test sample, with seed noise averaged inside each row.

Per-row metrics: NDCG@10 = 1 / log2(rank + 1) if the target is in the top 10, else 0;
HR@10 = 1 if it is; cold = the user had no earlier event (every method gives them the same
causal-popularity list).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recsys.stats import N_BOOT, bootstrap_ci, paired_ci
from training.replay_env import Decision

__all__ = ["N_BOOT", "RowMetrics", "bootstrap_ci", "paired_ci", "row_metrics", "seed_mean"]


@dataclass
class RowMetrics:
    """Per-test-row metrics of one method (rows sorted by event index)."""

    events: np.ndarray
    """(R,) event indices of the rows."""
    ndcg: np.ndarray
    """(R,) NDCG@10 per row."""
    hit: np.ndarray
    """(R,) HR@10 per row."""
    cold: np.ndarray
    """(R,) bool: the user had no earlier event."""

    @property
    def warm(self) -> np.ndarray:
        """(R,) bool: the user had an earlier event."""
        return ~self.cold


def row_metrics(decisions: Sequence[Decision], k: int = 10) -> RowMetrics:
    """NDCG@k and HR@k of each decision, sorted by event index."""
    order = sorted(range(len(decisions)), key=lambda i: decisions[i].event)
    ndcg = np.zeros(len(order))
    hit = np.zeros(len(order))
    for out, i in enumerate(order):
        d = decisions[i]
        top = d.items[:k]
        if d.target in top:
            rank = top.index(d.target) + 1
            ndcg[out] = 1.0 / np.log2(rank + 1.0)
            hit[out] = 1.0
    return RowMetrics(
        np.array([decisions[i].event for i in order], np.int64),
        ndcg,
        hit,
        np.array([decisions[i].cold for i in order], bool),
    )


def seed_mean(per_seed: Sequence[RowMetrics]) -> RowMetrics:
    """Row-wise mean over seeds (every seed must have evaluated the same rows)."""
    assert per_seed, "no seed"
    first = per_seed[0]
    for r in per_seed[1:]:
        assert np.array_equal(r.events, first.events), "seeds evaluated different rows"
    return RowMetrics(
        first.events,
        np.mean([r.ndcg for r in per_seed], axis=0),
        np.mean([r.hit for r in per_seed], axis=0),
        first.cold,
    )


def compare(
    rows: dict[str, RowMetrics], reference: str = "soft-q"
) -> tuple[dict[str, dict[str, object]], dict[str, dict[str, object]]]:
    """({method: means and CIs}, {method: paired diff `reference` - method and its CI}).

    Per method: `ndcg@10`, `ndcg@10_ci`, `hr@10`, `hr@10_ci`, `warm_ndcg@10`,
    `warm_ndcg@10_ci`, `n_rows`, `n_warm`. Paired (when `reference` is in `rows`): `diff`,
    `ci` (NDCG@10, all rows), `warm_diff`, `warm_ci` (warm rows)."""
    summary: dict[str, dict[str, object]] = {}
    for name, r in rows.items():
        w = r.warm
        summary[name] = {
            "ndcg@10": float(r.ndcg.mean()),
            "ndcg@10_ci": list(bootstrap_ci(r.ndcg)),
            "hr@10": float(r.hit.mean()),
            "hr@10_ci": list(bootstrap_ci(r.hit)),
            "warm_ndcg@10": float(r.ndcg[w].mean()) if w.any() else float("nan"),
            "warm_ndcg@10_ci": list(bootstrap_ci(r.ndcg[w])),
            "n_rows": len(r.ndcg),
            "n_warm": int(w.sum()),
        }
    paired: dict[str, dict[str, object]] = {}
    ref = rows.get(reference)
    if ref is None:
        return summary, paired
    for name, r in rows.items():
        if name == reference:
            continue
        assert np.array_equal(r.events, ref.events), f"{name} was evaluated on other rows"
        diff, ci = paired_ci(ref.ndcg, r.ndcg)
        w = ref.warm
        wdiff, wci = paired_ci(ref.ndcg[w], r.ndcg[w])
        paired[name] = {"diff": diff, "ci": list(ci), "warm_diff": wdiff, "warm_ci": list(wci)}
    return summary, paired

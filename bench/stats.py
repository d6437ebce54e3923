"""Confidence intervals over test rows: percentile bootstrap, plain and paired.

Every method of a run is evaluated on the same test rows (`training.evaluate.eval_decisions`),
so methods are compared PAIRED: the bootstrap resamples rows and recomputes the mean of the
per-row difference, which cancels the between-row variance both methods share (a hard row is
hard for everyone). A method run with several seeds enters with every seed: the bootstrap has
two levels (`two_level_means`: seeds resampled, then rows), so the interval covers seed noise
as well as the test sample, and each seed's own figure is reported beside it.

docs/protocol.md pre-declares one primary comparison (soft-q minus the peer with the best
validation NDCG@10); every other paired comparison gets a Holm-adjusted p-value (`holm`).

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

__all__ = [
    "N_BOOT",
    "RowMetrics",
    "bootstrap_ci",
    "holm",
    "paired_ci",
    "paired_two_level",
    "row_metrics",
    "seed_mean",
    "two_level_ci",
    "two_level_means",
]


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


def two_level_means(
    per_seed: np.ndarray, n_boot: int = N_BOOT, seed: int = 0, rows: np.ndarray | None = None
) -> np.ndarray:
    """(n_boot,) bootstrap means of a (S, R) seeds x rows matrix: each replicate resamples R
    rows (`rows`, (n_boot, R) indices, when given: a paired comparison shares them) and S
    seeds with replacement, and averages the chosen cells. With S = 1 it is the plain row
    bootstrap of `recsys.stats.bootstrap_ci` (same draws for the same `seed`)."""
    x = np.atleast_2d(np.asarray(per_seed, np.float64))
    n_seeds, n_rows = x.shape
    rng = np.random.default_rng(seed)
    if rows is None:
        rows = rng.integers(0, n_rows, size=(n_boot, n_rows))
    assert rows.shape == (n_boot, n_rows), f"{rows.shape=} {n_boot=} {n_rows=}"
    if n_seeds == 1:
        return x[0][rows].mean(axis=1)
    picks = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    out = np.empty(n_boot)
    for b in range(n_boot):
        out[b] = x[picks[b]].mean(axis=0)[rows[b]].mean()
    return out


def _interval(means: np.ndarray, level: float) -> tuple[float, float]:
    a = (1.0 - level) / 2.0
    return (float(np.quantile(means, a)), float(np.quantile(means, 1.0 - a)))


def two_level_ci(
    per_seed: np.ndarray, level: float = 0.95, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float]:
    """Percentile CI of the mean of a (S, R) seeds x rows matrix (`two_level_means`)."""
    x = np.atleast_2d(np.asarray(per_seed, np.float64))
    if x.shape[1] == 0:
        return (float("nan"), float("nan"))
    return _interval(two_level_means(x, n_boot, seed), level)


def paired_two_level(
    a: np.ndarray, b: np.ndarray, level: float = 0.95, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, tuple[float, float], float]:
    """(mean of a - b, its CI, two-sided bootstrap p-value) for (Sa, R) and (Sb, R) per-seed
    rows: each replicate resamples the rows once for both methods and each method's seeds on
    their own. p = 2 min(P*(diff <= 0), P*(diff >= 0)), capped at 1."""
    a, b = np.atleast_2d(np.asarray(a, np.float64)), np.atleast_2d(np.asarray(b, np.float64))
    assert a.shape[1] == b.shape[1], f"paired metrics need the same rows: {a.shape=} {b.shape=}"
    n_rows = a.shape[1]
    if n_rows == 0:
        return float("nan"), (float("nan"), float("nan")), float("nan")
    rows = np.random.default_rng(seed).integers(0, n_rows, size=(n_boot, n_rows))
    diffs = two_level_means(a, n_boot, seed + 1, rows) - two_level_means(b, n_boot, seed + 2, rows)
    p = min(1.0, 2.0 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))))
    return float(a.mean() - b.mean()), _interval(diffs, level), p


def holm(pvalues: dict[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values (step-down, Holm 1979): the i-th smallest of m becomes
    max over j <= i of min(1, (m - j + 1) p_(j)); NaN p-values stay NaN and do not count."""
    finite = sorted((p, k) for k, p in pvalues.items() if np.isfinite(p))
    m, running, out = len(finite), 0.0, {k: float("nan") for k in pvalues}
    for j, (p, k) in enumerate(finite):
        running = max(running, min(1.0, (m - j) * p))
        out[k] = running
    return out


def _seeds(r: RowMetrics | Sequence[RowMetrics]) -> list[RowMetrics]:
    """A method's per-seed rows (one `RowMetrics` = one seed)."""
    seeds = [r] if isinstance(r, RowMetrics) else list(r)
    assert seeds, "no seed"
    for x in seeds[1:]:
        assert np.array_equal(x.events, seeds[0].events), "seeds evaluated different rows"
    return seeds


def compare(
    rows: dict[str, RowMetrics | Sequence[RowMetrics]],
    reference: str = "soft-q",
    primary: str | None = None,
) -> tuple[dict[str, dict[str, object]], dict[str, dict[str, object]]]:
    """({method: means and CIs}, {method: paired diff `reference` - method and its CI}).

    `rows[method]`: one `RowMetrics` per seed (or one). Per method: `ndcg@10` (mean over seeds
    and rows), `ndcg@10_ci` (two-level bootstrap), `ndcg@10_per_seed`, `hr@10`, `hr@10_ci`,
    `warm_ndcg@10`, `warm_ndcg@10_ci`, `n_rows`, `n_warm`, `n_seeds`. Paired (when `reference`
    is in `rows`): `diff`, `ci` (NDCG@10, all rows), `p`, `warm_diff`, `warm_ci`, `primary`
    (the pre-declared comparison with `primary`, unadjusted) and `p_holm` (Holm over every
    other comparison; the primary's own p)."""
    seeds = {name: _seeds(r) for name, r in rows.items()}
    summary: dict[str, dict[str, object]] = {}
    for name, rs in seeds.items():
        ndcg = np.stack([r.ndcg for r in rs])
        hit = np.stack([r.hit for r in rs])
        w = rs[0].warm
        summary[name] = {
            "ndcg@10": float(ndcg.mean()),
            "ndcg@10_ci": list(two_level_ci(ndcg)),
            "ndcg@10_per_seed": [float(x) for x in ndcg.mean(axis=1)],
            "hr@10": float(hit.mean()),
            "hr@10_ci": list(two_level_ci(hit)),
            "warm_ndcg@10": float(ndcg[:, w].mean()) if w.any() else float("nan"),
            "warm_ndcg@10_ci": list(two_level_ci(ndcg[:, w])),
            "n_rows": int(ndcg.shape[1]),
            "n_warm": int(w.sum()),
            "n_seeds": len(rs),
        }
    paired: dict[str, dict[str, object]] = {}
    ref = seeds.get(reference)
    if ref is None:
        return summary, paired
    ref_ndcg = np.stack([r.ndcg for r in ref])
    w = ref[0].warm
    for name, rs in seeds.items():
        if name == reference:
            continue
        assert np.array_equal(rs[0].events, ref[0].events), f"{name} was evaluated on other rows"
        other = np.stack([r.ndcg for r in rs])
        diff, ci, p = paired_two_level(ref_ndcg, other)
        wdiff, wci, _ = paired_two_level(ref_ndcg[:, w], other[:, w])
        paired[name] = {
            "diff": diff,
            "ci": list(ci),
            "p": p,
            "warm_diff": wdiff,
            "warm_ci": list(wci),
            "primary": name == primary,
        }
    adjusted = holm({k: float(v["p"]) for k, v in paired.items() if not v["primary"]})  # type: ignore[arg-type]
    for k, v in paired.items():
        v["p_holm"] = v["p"] if v["primary"] else adjusted[k]
    return summary, paired

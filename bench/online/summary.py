"""Figures of an online run: last-20% reward, regret, curves, recovery after the shift, and
seed-level confidence intervals (t intervals over seeds; paired ones on seed differences)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from bench.online.loop import Trace


@dataclass(frozen=True)
class SeedFigures:
    """The figures of one (method, seed) run."""

    reward_last_20pct: float
    """Mean observed reward per decision over the last 20% of decisions."""
    expected_last_20pct: float
    """Mean exact expected reward of the shown lists over the last 20%."""
    oracle_last_20pct: float
    """Mean exact expected reward of the oracle lists for the same states."""
    cumulative_regret: float
    """Sum over decisions of (oracle expected - shown expected)."""
    recovery: int | None
    """Decisions after the shift until the rolling expected reward is back to 90% of its
    level before the shift (None: no shift, or never within the run)."""
    before_shift_ratio: float | None = None
    """Expected reward of the shown lists over the last 20% of the decisions before the shift,
    as a share of the oracle's on the same states (None: no shift)."""


def rolling(x: np.ndarray, window: int) -> np.ndarray:
    """(len(x) - window + 1,) trailing means."""
    c = np.cumsum(np.concatenate([[0.0], x]))
    return (c[window:] - c[:-window]) / window


def recovery_steps(trace: Trace, window: int) -> int | None:
    """See `SeedFigures.recovery`: the rolling window ends at the decision counted."""
    s = trace.shift_step
    if s < window:
        return None
    before = float(trace.expected[s - window : s].mean())
    after = rolling(trace.expected[s:], window)
    hit = np.flatnonzero(after >= 0.9 * before)
    return int(hit[0]) + window if hit.size else None


def before_shift_ratio(trace: Trace) -> float | None:
    """See `SeedFigures.before_shift_ratio`."""
    s = trace.shift_step
    if s <= 0 or s >= len(trace.expected):
        return None
    part = slice(int(s * 0.8), s)
    oracle = float(trace.oracle[part].mean())
    return float(trace.expected[part].mean()) / oracle if oracle > 0 else None


def seed_figures(trace: Trace, window: int) -> SeedFigures:
    """`SeedFigures` of one trace."""
    tail = slice(int(len(trace.reward) * 0.8), None)
    return SeedFigures(
        reward_last_20pct=float(trace.reward[tail].mean()),
        expected_last_20pct=float(trace.expected[tail].mean()),
        oracle_last_20pct=float(trace.oracle[tail].mean()),
        cumulative_regret=float((trace.oracle - trace.expected).sum()),
        recovery=recovery_steps(trace, window),
        before_shift_ratio=before_shift_ratio(trace),
    )


def binned(x: np.ndarray, points: int) -> list[float]:
    """Means of `points` equal consecutive bins of x."""
    return [float(b.mean()) for b in np.array_split(x, min(points, len(x)))]


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi): Student t interval over seeds (lo = hi = mean for one seed)."""
    v = np.asarray(values, np.float64)
    m = float(v.mean())
    if len(v) < 2:
        return m, m, m
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return m, m - half, m + half


def curve(traces: Sequence[Trace], points: int) -> dict[str, list[float]]:
    """Seed-mean curves: reward per decision (observed and expected) and cumulative regret
    at the end of each bin, with the std over seeds; x = decisions at each bin's end."""
    n = len(traces[0].reward)
    edges = [int(e[-1]) + 1 for e in np.array_split(np.arange(n), min(points, n))]
    obs = np.array([binned(t.reward, points) for t in traces])
    exp = np.array([binned(t.expected, points) for t in traces])
    reg = np.array([np.cumsum(t.oracle - t.expected)[np.array(edges) - 1] for t in traces])
    return {
        "x": [float(e) for e in edges],
        "reward": obs.mean(0).tolist(),
        "reward_std": obs.std(0).tolist(),
        "expected": exp.mean(0).tolist(),
        "expected_std": exp.std(0).tolist(),
        "cumulative_regret": reg.mean(0).tolist(),
        "cumulative_regret_std": reg.std(0).tolist(),
    }


__all__ = [
    "SeedFigures",
    "before_shift_ratio",
    "binned",
    "curve",
    "recovery_steps",
    "rolling",
    "seed_figures",
    "t_interval",
]

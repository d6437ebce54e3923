"""Percentile-bootstrap confidence intervals over evaluated rows, plain and paired.

Methods are compared PAIRED: the bootstrap resamples rows and recomputes the mean of the
per-row difference, which cancels the between-row variance both methods share (a hard row is
hard for everyone). Used by the replay evaluation (`bench.stats`) and the agent benchmark.
"""

from __future__ import annotations

import numpy as np

__all__ = ["N_BOOT", "bootstrap_ci", "paired_ci"]

N_BOOT = 2000
"""Bootstrap resamples (the CI bounds move by ~0.001 between seeds of the resampler at 2000)."""


def _resample_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    return values[idx].mean(axis=1)


def bootstrap_ci(
    values: np.ndarray, level: float = 0.95, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `values` (R,) over resampled rows."""
    values = np.asarray(values, np.float64)
    if len(values) == 0:
        return (float("nan"), float("nan"))
    means = _resample_means(values, n_boot, seed)
    a = (1.0 - level) / 2.0
    return (float(np.quantile(means, a)), float(np.quantile(means, 1.0 - a)))


def paired_ci(
    a: np.ndarray, b: np.ndarray, level: float = 0.95, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """(mean of a - b, its percentile bootstrap CI) over the same rows resampled together."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, f"paired metrics need the same rows: {a.shape=} {b.shape=}"
    diff = a - b
    return float(diff.mean()) if len(diff) else float("nan"), bootstrap_ci(
        diff, level, n_boot, seed
    )

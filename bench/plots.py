"""Result plots as PNG files (matplotlib with the Agg backend, no display needed).

- :func:`plot_learning_curves`: per-iteration reward per mode, the mean over seeds as a line
  and the spread (min..max over seeds, or mean ± std) as a band: the paper's
  continual-learning curve (no memory < non-parametric < parametric).
- :func:`plot_comparison`: one metric per method as bars with the std over seeds as error bars.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")  # headless; must precede the pyplot import

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

__all__ = ["plot_comparison", "plot_learning_curves"]

Spread = Literal["std", "minmax"]


def _as_matrix(curves: Sequence[Sequence[float]], name: str) -> np.ndarray:
    if len(curves) == 0:
        raise ValueError(f"mode {name!r} has no seeds")
    lengths = {len(c) for c in curves}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"mode {name!r}: curves of unequal or zero length {sorted(lengths)}")
    return np.asarray(curves, dtype=np.float64)


def plot_learning_curves(
    curves: Mapping[str, Sequence[Sequence[float]]],
    path: str | Path,
    title: str = "Reward per decision by iteration",
    ylabel: str = "reward per decision",
    spread: Spread = "std",
) -> Path:
    """Plot ``{mode: [per-seed curve]}`` (each curve = one value per iteration) to ``path``.

    The line is the mean over seeds; the band is mean ± std (``spread="std"``) or the
    min..max range (``"minmax"``). Returns the written path.
    """
    if not curves:
        raise ValueError("no curves to plot")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    try:
        for name, per_seed in curves.items():
            m = _as_matrix(per_seed, name)
            x = np.arange(1, m.shape[1] + 1)
            mean = m.mean(axis=0)
            if spread == "std":
                lo, hi = mean - m.std(axis=0), mean + m.std(axis=0)
            else:
                lo, hi = m.min(axis=0), m.max(axis=0)
            (line,) = ax.plot(x, mean, marker="o", label=f"{name} (n={m.shape[0]})")
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2)
        ax.set_xlabel("iteration")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out)
    finally:
        plt.close(fig)
    return out


def plot_comparison(
    values: Mapping[str, Sequence[float]],
    path: str | Path,
    metric: str = "ndcg@10",
    title: str | None = None,
    ci: Mapping[str, Sequence[float]] | None = None,
) -> Path:
    """Bar chart of ``{method: [per-seed value]}``: mean as bar; error bar = the 95% CI over
    test rows from ``ci`` ({method: [lo, hi]}) where given, else the std over seeds."""
    if not values:
        raise ValueError("no methods to plot")
    for name, v in values.items():
        if len(v) == 0:
            raise ValueError(f"method {name!r} has no values")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    names = list(values)
    means = np.array([np.mean(values[n]) for n in names])
    stds = np.array([np.std(values[n]) for n in names])
    err: np.ndarray = stds
    if ci is not None:
        lo = np.array([means[k] - ci[n][0] if n in ci else stds[k] for k, n in enumerate(names)])
        hi = np.array([ci[n][1] - means[k] if n in ci else stds[k] for k, n in enumerate(names)])
        err = np.maximum(np.stack([lo, hi]), 0.0)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(names) + 2), 4.5), dpi=120)
    try:
        x = np.arange(len(names))
        bars = ax.bar(x, means, yerr=err, capsize=4, color=plt.cm.tab10(x % 10))
        ax.bar_label(bars, labels=[f"{m:.3f}" for m in means], fontsize=7, padding=2)
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_ylabel(metric)
        ax.set_title(title or f"{metric} by method")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out)
    finally:
        plt.close(fig)
    return out

"""Figures and the table of `memento bench online`, drawn from its JSON payload alone.

- `reward.png`: reward per decision vs decisions, two panels: the exact expected reward of the
  shown lists (left) and the observed reward (right); seed mean as a line, mean ± std over
  seeds as a band, a dashed vertical line at the taste shift.
- `regret.png`: cumulative regret (oracle expected - shown expected) vs decisions, same style.
- `last20.png`: observed reward per decision over the last 20% of decisions per method, with
  its t interval over seeds (`bench.plots.plot_comparison`).
- `results.md`: the table (`markdown_report`).

Everything reads the payload (`bench.online.bench.summarise` + the off-policy check), so a
saved JSON redraws without rerunning anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless; must precede the pyplot import

import matplotlib.pyplot as plt

from bench.plots import plot_comparison

__all__ = ["markdown_report", "plot_curves", "write_report"]


def plot_curves(
    payload: Mapping[str, Any],
    keys: Sequence[str],
    path: Path,
    *,
    titles: Sequence[str],
    ylabel: str,
) -> Path:
    """One panel per curve key of `payload["results"][method]["curve"]` (each with its
    `<key>_std`): every method's seed mean and mean ± std band vs decisions, and the shift."""
    results: Mapping[str, Any] = payload["results"]
    if not results:
        raise ValueError("no method results to plot")
    shift = payload.get("shift_at_decision")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(keys), figsize=(6.5 * len(keys), 4.5), dpi=120, squeeze=False)
    try:
        for ax, key, title in zip(axes[0], keys, titles, strict=True):
            for k, (method, row) in enumerate(results.items()):
                c = row["curve"]
                x, mean, std = c["x"], c[key], c[f"{key}_std"]
                colour = plt.cm.tab10(k % 10)
                ax.plot(x, mean, color=colour, label=method, lw=1.5)
                lo = [m - s for m, s in zip(mean, std, strict=True)]
                hi = [m + s for m, s in zip(mean, std, strict=True)]
                ax.fill_between(x, lo, hi, color=colour, alpha=0.18, lw=0)
            if shift:
                ax.axvline(shift, color="0.3", ls="--", lw=1, label="taste shift")
            ax.set_xlabel("decisions")
            ax.set_ylabel(ylabel)
            ax.set_title(title)
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=8)
        n = len(payload.get("seeds", []))
        fig.suptitle(f"{payload.get('simulator', '')}: mean ± std over {n} seed(s)", fontsize=10)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _ci(ci: Sequence[Any] | None, digits: int = 4, sign: str = "") -> str:
    if not ci or any(v is None for v in ci):
        return "–"
    return f"[{ci[0]:{sign}.{digits}f}, {ci[1]:{sign}.{digits}f}]"


def markdown_report(payload: Mapping[str, Any]) -> str:
    """The results table (one row per method) and, when present, the off-policy check's."""
    res: Mapping[str, Any] = payload["results"]
    paired: Mapping[str, Any] = payload.get("paired_expected_last_20pct", {})
    lines = [
        f"Online benchmark, `{payload.get('simulator')}` simulator: "
        f"{payload.get('interactions')} decisions per run, seeds {payload.get('seeds')}, "
        f"taste shift at decision {payload.get('shift_at_decision')}. Reward per decision over "
        "the last 20% of decisions (observed, 95% t interval over seeds); ratio to oracle and "
        "the paired difference use the exact expected reward of the shown lists.",
        "",
        "| method | reward last 20% | 95% CI | expected last 20% | ratio to oracle | "
        "ratio to oracle before the shift | cumulative regret | recovery after shift (per seed) "
        "| soft-q − method (95% CI) |",
        "|---|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for m, r in res.items():
        rec = ", ".join("never" if v is None else str(v) for v in r["recovery_after_shift"])
        p = paired.get(m)
        diff = f"{p['soft-q_minus_method']:+.4f} {_ci(p['ci'], sign='+')}" if p else "–"
        lines.append(
            f"| {m} | {_fmt(r['reward_per_decision_last_20pct'])} "
            f"| {_ci(r['reward_per_decision_last_20pct_ci'])} "
            f"| {_fmt(r['expected_last_20pct'])} | {_fmt(r['ratio_to_oracle'], 3)} "
            f"| {_fmt(r.get('before_shift_ratio_to_oracle'), 3)} "
            f"| {_fmt(r['cumulative_regret'], 1)} | {rec} | {diff} |"
        )
    ope: Mapping[str, Any] = payload.get("ope") or {}
    if ope:
        lines += [
            "",
            "Off-policy check on the soft-q logs (first position): OBP's DR estimate with its "
            "bootstrap CI against the exact value of each evaluation policy on the same states "
            "(ESS: the importance weights' effective sample size).",
            "",
            "| seed | policy | true value | DR | DR 95% CI | covered | IPW | SNIPW | DM | ESS |",
            "|---|---|---:|---:|---|---|---:|---:|---:|---:|",
        ]
        for seed, check in ope.items():
            if "policies" not in check:
                lines.append(f"| {seed} | – | – | – | – | {check.get('error', '?')} | | | | |")
                continue
            for name, c in check["policies"].items():
                e = c["estimates"]
                lines.append(
                    f"| {seed} | {name} | {_fmt(c['true_value'])} | {_fmt(e['dr'][0])} "
                    f"| {_ci(e['dr'][1:])} | {'yes' if c['dr_within_ci'] else 'no'} "
                    f"| {_fmt(e['ipw'][0])} | {_fmt(e['snipw'][0])} | {_fmt(e['dm'][0])} "
                    f"| {_fmt(c.get('ess'), 0)} |"
                )
        fits = {s: c["reward_model"] for s, c in ope.items() if c.get("reward_model")}
        if fits:
            model = next(iter(fits.values())).get("base_model", "?")
            lines += [
                "",
                f"Reward model of DM / DR ({model}): its cross-fitted squared error on the "
                "logged records / that of their mean reward (the model explains some of the "
                "reward where the first is the smaller): "
                + ", ".join(
                    f"seed {s} {f['mse']:.4f} / {f['mse_of_mean']:.4f}" for s, f in fits.items()
                )
                + ".",
            ]
    return "\n".join(lines) + "\n"


def write_report(payload: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """Write the PNGs and `results.md` of the payload under `out`; their paths by name."""
    out.mkdir(parents=True, exist_ok=True)
    res: Mapping[str, Any] = payload["results"]
    paths = {
        "reward": plot_curves(
            payload,
            ("expected", "reward"),
            out / "reward.png",
            titles=("expected reward of the shown list", "observed reward"),
            ylabel="reward per decision",
        ),
        "regret": plot_curves(
            payload,
            ("cumulative_regret",),
            out / "regret.png",
            titles=("cumulative regret (oracle − shown, expected)",),
            ylabel="cumulative regret",
        ),
        "last20": plot_comparison(
            {m: [s["reward_last_20pct"] for s in r["seeds"].values()] for m, r in res.items()},
            out / "last20.png",
            metric="reward per decision, last 20%",
            title=f"{payload.get('simulator')}: reward per decision, last 20% (95% CI)",
            ci={m: r["reward_per_decision_last_20pct_ci"] for m, r in res.items()},
        ),
    }
    table = out / "results.md"
    table.write_text(markdown_report(payload))
    paths["table"] = table
    return paths

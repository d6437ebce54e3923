"""MLflow tracking of one `memento bench online` payload (`bench.online.cli`): params,
namespaced figures, curves, the off-policy check and the report files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.online.bench import OnlineConfig

__all__ = ["EXPERIMENT", "track_online"]

EXPERIMENT = "memento-bench-online"
"""MLflow experiment of the online benchmark."""


def track_online(
    payload: dict[str, Any], cfg: OnlineConfig, files: dict[str, Path], uri: str | None
) -> str:
    """Log the benchmark to MLflow: params, namespaced figures, curves (step = decisions),
    the off-policy check (step = seed), the PNGs, table and JSON. Returns the run id."""
    from tracking.registry import Tracker, TrackingConfig

    tcfg = TrackingConfig(uri=uri, experiment=EXPERIMENT)
    name = f"online-{cfg.simulator}"
    with Tracker(tcfg, run_name=name, tags={"simulator": cfg.simulator}) as tr:
        params: tuple[str, ...] = ("simulator", "interactions", "seeds", "methods", "shift_at")
        params += ("recovery_window", "curve_points", "updates_per_feedback", "ope", "ope_rounds")
        params += ("ope_model",)
        params += ("transport", "learn_every")
        tr.log_params({k: getattr(cfg, k) for k in params})
        for m, r in payload["results"].items():
            lo, hi = r["reward_per_decision_last_20pct_ci"]
            figures = {
                "reward_last_20pct": r["reward_per_decision_last_20pct"],
                "reward_last_20pct_ci_lo": lo,
                "reward_last_20pct_ci_hi": hi,
                "expected_last_20pct": r["expected_last_20pct"],
                "oracle_expected_last_20pct": r["oracle_expected_last_20pct"],
                "ratio_to_oracle": r["ratio_to_oracle"],
                "cumulative_regret": r["cumulative_regret"],
            }
            tr.log_metrics(
                {k: v for k, v in figures.items() if v is not None}, namespace=f"online/{m}"
            )
            c = r["curve"]
            for i, x in enumerate(c["x"]):
                point = {f"curve_{k}": c[k][i] for k in ("reward", "expected", "cumulative_regret")}
                tr.log_metrics(point, step=int(x), namespace=f"online/{m}")
        for m, p in payload.get("paired_expected_last_20pct", {}).items():
            lo, hi = p["ci"]
            diff = {"diff": p["soft-q_minus_method"], "ci_lo": lo, "ci_hi": hi}
            tr.log_metrics(diff, namespace=f"paired/soft-q-vs-{m}")
        for seed, check in payload.get("ope", {}).items():
            for pol, c in check.get("policies", {}).items():
                v, lo, hi = c["estimates"]["dr"]
                row = {"true_value": c["true_value"], "dr": v, "dr_ci_lo": lo, "dr_ci_hi": hi}
                tr.log_metrics(row, step=int(seed), namespace=f"ope/{pol}")
        for pol, s in payload.get("ope_summary", {}).items():
            tr.log_metrics(
                {"dr_covers": s["dr_covers"], "seeds": s["seeds"]}, namespace=f"ope/{pol}"
            )
        for path in files.values():
            tr.log_artifact(path)
        return tr.run_id

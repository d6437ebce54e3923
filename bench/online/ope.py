"""The off-policy check: do OBP's estimators, run on the soft-q service's own logs, recover
the true value of other policies on the same states?

The soft-q run of the online benchmark is the logging policy. Its service database is exported
with `serving.logs_export.export_logs` (what `memento logs export --format obp` runs);
the last `rounds` exported decisions that the run's `OpeTrace` recorded are kept (joined by
decision id), and only their first position is evaluated. For each evaluation policy of
`bench.online.eval_policies.EVAL_POLICIES` the action_dist is (D, A, 1), OBP's
``action_dist[i, a, 0] = pi_e(a at position 0 | decision i)``, built by `first_item_dist` over
its support:

- `allowed` (oracle, popularity, uniform): the items the user had not acted on yet (the
  trace's seen-item rule); most of them lie outside the logger's pool (no support);
- `pool` (pool-oracle, pool-popularity, pool-uniform): the decision's logged candidate pool
  (the export's `pool_decision` / `pool_action`, from the service's own log), the items with a
  positive position-0 propensity; a decision whose first item was logged with propensity 1
  (a deterministic draw) supports that item only.

OBP weighs each position-0 record by ``action_dist[i, action, 0] / pscore`` with the logged
P(action at position 0 | state) as pscore, so on a pool support every weight is finite.
Simulator rows are mapped to export actions through the catalogue ids (`item_ids` of the
export), never by position. The truth is exact: the mean over the same decisions of
`true_value` (the policy's distribution times theta[0] * each item's expected value, from the
trace), which is what OBP's per-record value estimates at position 0. The estimators see the
logs and the action_dists only, never the simulator's values.
"""

from __future__ import annotations

import logging
import math
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bench.errors import OpeRunError
from bench.online.bench import Run
from bench.online.eval_policies import EVAL_POLICIES, first_item_dist, true_value
from bench.ope.runner import ESTIMATORS, estimate_policy_values, reward_model_fit

log = logging.getLogger(__name__)

__all__ = ["export_command", "ope_check", "ope_summary"]


def export_command(db: Path, out: Path) -> list[str]:
    """The `memento logs export` command line that reproduces `_export` (shown in results)."""
    return [sys.executable, "-m", "memento", "logs", "export", "--format", "obp",
            "--db", str(db), "--out", str(out), "--json"]  # fmt: skip


def _export(db: Path, out: Path) -> dict[str, Any]:
    """Export `db`'s logs to `out` (OBP .npz) with `serving.logs_export.export_logs`, the
    library call behind `memento logs export`; its summary. `OpeRunError` on bad input."""
    from serving.logs_export import export_logs

    try:
        return export_logs(db, out, "obp", None).as_dict()
    except ValueError as exc:
        raise OpeRunError(f"`memento logs export` refused {db}: {exc}") from exc


def _catalogue_ids(run: Run, catalogue: Sequence[str] | None) -> list[str]:
    """Simulator item ids by simulator row: given, else the catalogue the service was started
    with (`items.parquet` beside its database, written in simulator order)."""
    if catalogue is not None:
        return [str(s) for s in catalogue]
    assert run.db is not None
    import polars as pl

    path = run.db.parent / "items.parquet"
    if not path.is_file():
        raise ValueError(f"no service catalogue at {path}: pass the simulator's catalogue ids")
    return [str(s) for s in pl.read_parquet(path)["item_id"].to_list()]


def _window(
    fb: dict[str, np.ndarray], trace_ids: Sequence[str], rounds: int
) -> tuple[np.ndarray, dict[str, int]]:
    """Export rows (into `decisions`) of the last `rounds` decisions that are in the trace and
    have a first-position record; counts of the decisions left out, by reason."""
    in_trace = set(trace_ids)
    exported = [str(d) for d in fb["decisions"]]
    first = np.zeros(len(exported), bool)
    first[fb["decision_index"][fb["position"] == 0]] = True
    pooled = np.zeros(len(exported), bool)
    pooled[fb["pool_decision"]] = True
    traced = [i for i, d in enumerate(exported) if d in in_trace]
    usable = [i for i in traced if first[i] and pooled[i]]
    keep = np.asarray(usable[-rounds:], np.int64)
    counts = {
        "not_in_trace": len(exported) - len(traced),
        "not_exported": len(in_trace - set(exported)),
        "no_first_position": sum(not first[i] for i in traced),
        "no_pool": sum(first[i] and not pooled[i] for i in traced),
        "before_window": len(usable) - len(keep),
    }
    return keep, counts


def _subset(fb: dict[str, np.ndarray], keep: np.ndarray, path: Path) -> dict[str, np.ndarray]:
    """Write the export restricted to the decisions `keep` (same layout, rows renumbered)."""
    new_index = np.full(len(fb["decisions"]), -1, np.int64)
    new_index[keep] = np.arange(len(keep))
    rec = np.flatnonzero(new_index[fb["decision_index"]] >= 0)
    per_record = {k for k, v in fb.items() if v.ndim >= 1 and len(v) == len(fb["decision_index"])}
    per_record -= {"decisions", "item_ids", "action_context", "pool_decision", "pool_action"}
    out: dict[str, np.ndarray] = {k: (v[rec] if k in per_record else v) for k, v in fb.items()}
    out["decision_index"] = new_index[fb["decision_index"][rec]]
    out["decisions"] = fb["decisions"][keep]
    pool = np.flatnonzero(new_index[fb["pool_decision"]] >= 0)
    out["pool_decision"] = new_index[fb["pool_decision"][pool]]
    out["pool_action"] = fb["pool_action"][pool]
    out["n_rounds"] = np.asarray(len(rec), np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        np.savez(fh, **out)  # type: ignore[arg-type]
    return out


def _pool_supports(sub: dict[str, np.ndarray], row_of_col: np.ndarray) -> list[np.ndarray]:
    """(items,) bool per decision of `sub` (simulator rows): its logged pool, or only its first
    item where that was logged with propensity 1 (a deterministic draw supports nothing else)."""
    n_items = int(row_of_col.max()) + 1
    supports = [np.zeros(n_items, bool) for _ in range(len(sub["decisions"]))]
    for i, a in zip(sub["pool_decision"].tolist(), sub["pool_action"].tolist(), strict=True):
        if row_of_col[a] >= 0:
            supports[i][row_of_col[a]] = True
    first = np.flatnonzero(sub["position"] == 0)
    for i, a, p in zip(sub["decision_index"][first], sub["action"][first], sub["pscore"][first],
                       strict=True):  # fmt: skip
        if p >= 1.0:
            supports[i][:] = False
            supports[i][row_of_col[a]] = True
    return supports


def _action_dists(
    run: Run, trace_rows: np.ndarray, pools: list[np.ndarray], col_of_row: np.ndarray,
    n_actions: int,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:  # fmt: skip
    """(D, A, 1) action_dist per evaluation policy for the trace decisions `trace_rows` (pools:
    each one's logged support by simulator row), and each policy's true value on them."""
    assert run.ope is not None
    dists = {p.name: np.zeros((len(trace_rows), n_actions, 1)) for p in EVAL_POLICIES}
    truth = {p.name: 0.0 for p in EVAL_POLICIES}
    for i, j in enumerate(trace_rows.tolist()):
        values, counts = run.ope.values[j], run.ope.counts[j]
        for p in EVAL_POLICIES:
            support = run.ope.allowed[j] if p.support == "allowed" else pools[i]
            dist = first_item_dist(p.rule, support, values, counts)
            dists[p.name][i, col_of_row, 0] = dist
            truth[p.name] += true_value(dist, values) / len(trace_rows)
    return dists, truth


def ope_check(
    run: Run,
    workdir: Path,
    *,
    rounds: int,
    seed: int,
    catalogue: Sequence[str] | None = None,
    n_bootstrap: int = 200,
    base_model: Literal["ridge", "gbr"] = "ridge",
) -> dict[str, Any]:
    """OBP's IPW / SNIPW / DM / DR estimates of each `EVAL_POLICIES` policy on the last
    `rounds` logged decisions of one soft-q run, next to its true value (module docstring).

    catalogue: simulator item ids by simulator row (None: the service's `items.parquet`).
    seed: OBP's bootstrap / cross-fitting seed. base_model: the DM / DR reward model
    (`bench.ope.runner.estimate_policy_values`). Returns ``{"policies": {name: {"true_value",
    "estimates": {estimator: [value, lo, hi]}, "dr_within_ci", "matches" (logged first items
    with a non-zero weight), "ess" (the weights' effective sample size (sum w)^2 / sum w^2)}},
    "logging_first_position_reward" (the logged first items' mean reward),
    "logging_first_position_true_value" (their exact value: the log's reward and the truth
    share one scale), "reward_model" (its cross-fitted fit, `bench.ope.runner.reward_model_fit`),
    "pool_size" (mean pool support), "counts", "export"}``. Raises
    `ValueError` for a run that cannot be checked (no OPE trace, no propensities, no database)
    and `OpeRunError` when the export or OBP fails.
    """
    if rounds <= 0:
        raise ValueError(f"rounds must be > 0, got {rounds}")
    if run.ope is None or not run.ope.decision_ids:
        raise ValueError(
            "the run has no OPE trace (only soft-q runs of a benchmark with --ope record one; "
            "delete its cached .npz to rerun it)"
        )
    if run.db is None or not run.db.is_file():
        raise ValueError(
            f"the run's service database is missing ({run.db}): delete its cached "
            ".npz under <workdir>/runs to rerun it"
        )
    if run.trace.missing_pscores:
        log.warning(
            "%d shown positions of the run logged no propensity (pscore None): the "
            "export leaves them out",
            run.trace.missing_pscores,
        )
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        summary = _export(run.db, workdir / "export.npz")
    except OpeRunError as exc:
        if "no logged position has a propensity" in str(exc):
            raise ValueError(
                f"the soft-q run logged no propensities (pscores None): {exc}"
            ) from exc
        raise
    with np.load(workdir / "export.npz") as z:
        fb = {k: z[k] for k in z.files}
    keep, left_decisions = _window(fb, run.ope.decision_ids, rounds)
    if len(keep) < 2:
        raise ValueError(
            f"only {len(keep)} logged decisions with a first-position propensity match the "
            f"run's trace (left out: {left_decisions}, positions left out at export: "
            f"{summary.get('left_out')}): too few for the off-policy check"
        )
    sub = _subset(fb, keep, workdir / "window.npz")
    col = {str(s): a for a, s in enumerate(fb["item_ids"])}
    ids = _catalogue_ids(run, catalogue)
    missing = [s for s in ids if s not in col]
    if missing:
        raise ValueError(
            f"{len(missing)} catalogue items are not in the export, e.g. {missing[:3]}"
        )
    col_of_row = np.array([col[s] for s in ids], np.int64)
    row_of_col = np.full(int(fb["n_actions"]), -1, np.int64)
    row_of_col[col_of_row] = np.arange(len(ids))
    pos = {d: j for j, d in enumerate(run.ope.decision_ids)}
    trace_rows = np.array([pos[str(d)] for d in sub["decisions"]], np.int64)
    pools = _pool_supports(sub, row_of_col)
    dists, truths = _action_dists(run, trace_rows, pools, col_of_row, int(fb["n_actions"]))
    est = estimate_policy_values(
        workdir / "window.npz",
        dists,
        positions=1,
        seed=seed,
        n_bootstrap=n_bootstrap,
        workdir=workdir / "obp",
        base_model=base_model,
    )
    first = np.flatnonzero(sub["position"] == 0)
    decided, logged = sub["decision_index"][first], sub["action"][first]
    policies: dict[str, Any] = {}
    for name, truth in truths.items():
        e = {k: [float(x) for x in est[name][k]] for k in ESTIMATORS}
        _, lo, hi = e["dr"]
        w = dists[name][decided, logged, 0] / sub["pscore"][first]  # OBP's importance weights
        policies[name] = {
            "true_value": truth,
            "estimates": e,
            "dr_within_ci": bool(lo <= truth <= hi),
            "dr_error": e["dr"][0] - truth,
            "matches": int(np.count_nonzero(w)),
            "ess": float(w.sum() ** 2 / (w**2).sum()) if w.any() else 0.0,
        }
    logged_rows = row_of_col[logged]
    logged_truth = [
        run.ope.values[trace_rows[i]][r] for i, r in zip(decided, logged_rows, strict=True)
    ]
    return {
        "policies": policies,
        "logging_first_position_reward": float(sub["reward"][first].mean()),
        "logging_first_position_true_value": float(np.mean(logged_truth)),
        "pool_size": float(np.mean([p.sum() for p in pools])),
        "reward_model": reward_model_fit(workdir / "obp"),
        "counts": {
            "decisions_used": len(keep),
            "decisions_logged": len(run.ope.decision_ids),
            "decisions_exported": int(summary.get("decisions", len(fb["decisions"]))),
            "left_out_decisions": left_decisions,
            "left_out_positions": dict(summary.get("left_out", {})),
        },
        "export": summary,
        "export_command": shlex.join(
            ["memento", *export_command(run.db, workdir / "export.npz")[3:]]
        ),
    }


def ope_summary(checks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per evaluation policy: on how many seeds DR's CI covers the true value, and the mean
    absolute DR error. `checks`: {seed: `ope_check` result, or {"error": message}}."""
    ok = {s: c for s, c in checks.items() if "policies" in c}
    out: dict[str, Any] = {}
    for name in (p.name for p in EVAL_POLICIES):
        covered = [s for s, c in ok.items() if c["policies"][name]["dr_within_ci"]]
        errors = [abs(c["policies"][name]["dr_error"]) for c in ok.values()]
        out[name] = {
            "dr_covers": len(covered),
            "seeds": len(ok),
            "covered_seeds": covered,
            "mean_abs_dr_error": float(np.mean(errors)) if errors else math.nan,
        }
    return out

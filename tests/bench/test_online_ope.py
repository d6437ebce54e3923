"""The off-policy check of `memento bench online` (`bench.online.ope`): the join of the
export with the run's trace, the evaluation policies' action_dists and exact truths on
hand-built logs, and the whole check on a real soft-q run."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.online import ope as ope_mod
from bench.online.bench import OnlineConfig, Run, run_one
from bench.online.eval_policies import EVAL_POLICIES
from bench.online.loop import OpeTrace, Trace
from bench.online.ope import ope_check
from bench.ope import ObpEnvConfig
from bench.ope.runner import ESTIMATORS, Estimate


def _fake_logs(tmp: Path) -> tuple[Run, dict[str, Any]]:
    """A 4-item catalogue (simulator order a, b, c, d; export order d, c, b, a), 4 logged
    decisions (d0 has no first-position record, d1 no pool, x is not in the trace) and their
    trace: d2 logs c first from the pool {c, d}, d3 logs d first from {d, a} (d3 has acted on
    b); values already carry theta[0]."""
    fb: dict[str, Any] = {
        "decisions": np.array(["x", "d0", "d1", "d2", "d3"]),
        "decision_index": np.array([0, 1, 2, 2, 3, 4]),
        "position": np.array([0, 1, 0, 1, 0, 0]),
        "action": np.array([0, 1, 2, 3, 1, 0]),
        "reward": np.array([9.0, 9.0, 1.0, 9.0, 0.0, 0.5]),
        "pscore": np.full(6, 0.5),
        "context": np.zeros((6, 2), np.float32),
        "action_context": np.eye(4, dtype=np.float32),
        "n_actions": np.int64(4),
        "item_ids": np.array(["d", "c", "b", "a"]),
        "pool_decision": np.array([0, 3, 3, 4, 4]),
        "pool_action": np.array([0, 1, 0, 0, 3]),
    }
    values = [np.zeros(4, np.float32)] * 2 + [
        np.array([0.1, 0.9, 0.3, 0.2], np.float32),
        np.array([0.4, 0.9, 0.1, 0.8], np.float32),
    ]
    counts = [np.zeros(4, np.float32)] * 2 + [
        np.array([0, 1, 5, 2], np.float32),
        np.array([3, 9, 0, 3], np.float32),
    ]
    allowed = [np.ones(4, bool)] * 3 + [np.array([True, False, True, True])]
    ope = OpeTrace(["d0", "d1", "d2", "d3"], allowed=allowed, values=values, counts=counts)
    db = tmp / "db.sqlite3"
    db.write_bytes(b"")
    trace = Trace(np.zeros(4), np.zeros(4), np.zeros(4), -1)
    return Run(trace, ope, db), fb


def _check_fake(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, fb: dict[str, Any], run: Run
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`ope_check` of the fake logs with the export and OBP replaced: (its result, what the
    estimator was given); every estimator answers 0.5 [0.5, 0.6]."""
    summary = {"decisions": 5, "left_out": {"cold_start": 2}}

    def export(db: Path, out: Path) -> dict[str, Any]:
        with out.open("wb") as fh:
            np.savez(fh, **fb)
        return summary

    seen: dict[str, Any] = {}

    def estimate(npz: Path, dists: dict[str, np.ndarray], **kw: Any) -> Any:
        seen["dists"], seen["kw"] = dists, kw
        with np.load(npz) as z:
            seen["fb"] = {k: z[k] for k in z.files}
        return {n: {e: Estimate(0.5, 0.5, 0.6) for e in ESTIMATORS} for n in dists}

    monkeypatch.setattr(ope_mod, "_export", export)
    monkeypatch.setattr(ope_mod, "estimate_policy_values", estimate)
    cat = ["a", "b", "c", "d"]
    out = ope_check(run, tmp / "ope", rounds=2, seed=7, catalogue=cat, base_model="gbr")
    return out, seen


def test_ope_check_joins_by_id_and_maps_rows_through_the_catalogue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last `rounds` trace decisions with a first-position record and a pool (d2, d3),
    action_dists mapped through ids ((D, A, 1); uniform over the allowed items), the truth
    averaged over the same decisions, DR's coverage and the counts."""
    run, fb = _fake_logs(tmp_path)
    out, seen = _check_fake(tmp_path, monkeypatch, fb, run)
    sub = seen["fb"]
    assert sub["decisions"].tolist() == ["d2", "d3"]
    assert sub["decision_index"].tolist() == [0, 1] and sub["action"].tolist() == [1, 0]
    assert sub["pool_decision"].tolist() == [0, 0, 1, 1]
    assert sub["pool_action"].tolist() == [1, 0, 0, 3]
    assert seen["kw"]["positions"] == 1 and seen["kw"]["seed"] == 7
    assert seen["kw"]["base_model"] == "gbr"
    col = {"a": 3, "b": 2, "c": 1, "d": 0}
    oracle = seen["dists"]["oracle"]
    assert oracle.shape == (2, 4, 1)
    assert oracle[0, col["b"], 0] == 1.0 and oracle[1, col["d"], 0] == 1.0
    popularity = seen["dists"]["popularity"][:, :, 0]
    assert popularity[0, col["c"]] == 1.0 and popularity[1, col["a"]] == 1.0  # a, d tie: a
    uniform = seen["dists"]["uniform"][:, :, 0]
    assert uniform[0].tolist() == [0.25] * 4 and uniform[1, col["b"]] == 0.0
    assert uniform[1].sum() == pytest.approx(1.0)
    pol = out["policies"]["oracle"]
    assert pol["true_value"] == pytest.approx((0.9 + 0.8) / 2) and pol["dr_within_ci"] is False
    assert pol["estimates"]["dr"] == [0.5, 0.5, 0.6]
    assert out["policies"]["uniform"]["true_value"] == pytest.approx((0.375 + 1.3 / 3) / 2)
    assert out["logging_first_position_reward"] == pytest.approx(0.25)
    assert out["logging_first_position_true_value"] == pytest.approx((0.3 + 0.8) / 2)
    counts = out["counts"]
    assert counts["decisions_used"] == 2 and counts["left_out_positions"] == {"cold_start": 2}
    assert counts["left_out_decisions"] == {
        "not_in_trace": 1,
        "not_exported": 0,
        "no_first_position": 1,
        "no_pool": 1,
        "before_window": 0,
    }


def test_pool_policies_choose_within_each_decisions_logged_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pool-oracle / pool-popularity / pool-uniform put mass only on the decision's logged pool
    (d2: c, d; d3: d, a), with exact truths (0.3 + 0.8) / 2, (0.3 + 0.4) / 2, (0.25 + 0.6) / 2,
    and the importance weights' matches and effective sample size."""
    run, fb = _fake_logs(tmp_path)
    out, seen = _check_fake(tmp_path, monkeypatch, fb, run)
    col = {"a": 3, "b": 2, "c": 1, "d": 0}
    d = {n: seen["dists"][n][:, :, 0] for n in ("pool-oracle", "pool-popularity", "pool-uniform")}
    assert d["pool-oracle"][0, col["c"]] == 1.0 and d["pool-oracle"][1, col["d"]] == 1.0
    assert d["pool-popularity"][0, col["c"]] == 1.0 and d["pool-popularity"][1, col["a"]] == 1.0
    assert d["pool-uniform"][0, [col["c"], col["d"]]].tolist() == [0.5, 0.5]
    assert d["pool-uniform"][1, [col["d"], col["a"]]].tolist() == [0.5, 0.5]
    assert d["pool-uniform"][:, col["b"]].tolist() == [0.0, 0.0]
    truth = {n: out["policies"][n]["true_value"] for n in d}
    assert truth["pool-oracle"] == pytest.approx(0.55)
    assert truth["pool-popularity"] == pytest.approx(0.35)
    assert truth["pool-uniform"] == pytest.approx(0.425)
    assert out["policies"]["pool-oracle"]["dr_within_ci"] is True
    # OBP's weights pi_e(logged first item) / pscore: pool-uniform 1 and 1, oracle 0 and 2
    assert (out["policies"]["pool-uniform"]["matches"], out["policies"]["pool-uniform"]["ess"]) == (
        2,
        2.0,
    )
    assert (out["policies"]["oracle"]["matches"], out["policies"]["oracle"]["ess"]) == (1, 1.0)
    assert out["pool_size"] == pytest.approx(2.0)


def test_a_first_item_logged_with_propensity_one_is_its_decisions_only_support(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """d3's first item d logged with pscore 1 (a deterministic draw): every pool policy shows d
    there, whatever else its pool held."""
    run, fb = _fake_logs(tmp_path)
    fb["pscore"] = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 1.0])
    out, seen = _check_fake(tmp_path, monkeypatch, fb, run)
    for name in ("pool-oracle", "pool-popularity", "pool-uniform"):
        assert seen["dists"][name][1, :, 0].tolist() == [1.0, 0.0, 0.0, 0.0], name
    assert out["policies"]["pool-uniform"]["true_value"] == pytest.approx((0.25 + 0.8) / 2)
    assert out["pool_size"] == pytest.approx(1.5)


def test_ope_check_refuses_a_run_without_a_trace_or_propensities(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No OPE trace, no database, or logs without a single propensity: a clear ValueError."""
    run, _ = _fake_logs(tmp_path)
    with pytest.raises(ValueError, match="no OPE trace"):
        ope_check(Run(run.trace), tmp_path, rounds=10, seed=0)
    with pytest.raises(ValueError, match="database is missing"):
        ope_check(Run(run.trace, run.ope, tmp_path / "gone.sqlite3"), tmp_path, rounds=10, seed=0)

    def export(db: Path, out: Path) -> dict[str, Any]:
        raise ope_mod.OpeRunError("failed (exit 2): error: no logged position has a propensity")

    monkeypatch.setattr(ope_mod, "_export", export)
    with pytest.raises(ValueError, match=r"no propensities \(pscores None\)"):
        ope_check(run, tmp_path, rounds=10, seed=0)


_OBP_READY = (ObpEnvConfig().path / "bin" / "python").exists()


@pytest.mark.skipif(
    not _OBP_READY and not os.environ.get("CI"), reason="OBP venv not built (tests -m slow)"
)
def test_ope_check_on_a_real_soft_q_service_run(tmp_path: Path) -> None:
    """300 planted decisions of the real soft-q service, exported through the CLI and
    estimated by OBP: every policy gets finite estimates with ordered CIs and a finite truth;
    the last 200 decisions are used and none is left out."""
    cfg = OnlineConfig(interactions=300, seeds=(0,), methods=("soft-q",), workdir=tmp_path)
    run = run_one(cfg, "soft-q", 0)
    assert run.ope is not None and run.trace.missing_pscores == 0
    out = ope_check(run, tmp_path / "ope", rounds=200, seed=0)
    assert list(out["policies"]) == [p.name for p in EVAL_POLICIES]
    for pol in out["policies"].values():
        assert math.isfinite(pol["true_value"]) and pol["true_value"] > 0
        no_match = pol["estimates"]["ipw"][0] == 0.0  # no logged first item matches
        for name, (value, lo, hi) in pol["estimates"].items():
            if name == "snipw" and no_match:  # self-normalised 0 / 0 is undefined (nan)
                continue
            assert all(math.isfinite(v) for v in (value, lo, hi)) and lo <= hi, (name, pol)
        assert isinstance(pol["dr_within_ci"], bool)
    # the oracle's first item is worth more than a uniform one on the same states, the pool's
    # best no more than the catalogue's; the pool is a real choice (more than one item)
    truth = {n: p["true_value"] for n, p in out["policies"].items()}
    assert truth["oracle"] > truth["uniform"] and truth["pool-oracle"] > truth["pool-uniform"]
    assert truth["pool-oracle"] <= truth["oracle"] and out["pool_size"] > 1
    counts = out["counts"]
    assert counts["decisions_used"] == 200 and counts["decisions_logged"] == 300
    assert counts["left_out_decisions"]["before_window"] == 100
    assert counts["left_out_decisions"]["no_pool"] == 0
    assert counts["left_out_positions"] == {}
    assert math.isfinite(out["logging_first_position_reward"])
    fit = out["reward_model"]  # the cross-fitted fit of the DM, reported beside the estimates
    assert fit["base_model"] == "ridge" and fit["mse"] > 0.0 and fit["mse_of_mean"] > 0.0
    assert out["export_command"].startswith("memento logs export --format obp --db ")

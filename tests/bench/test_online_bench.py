"""`memento bench online`: bad input, a tiny in-process run, its cache, report and tracking,
and the off-policy check (`bench.online.ope`) on hand-built logs and on a real soft-q run."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from bench.errors import ServiceUnavailableError
from bench.online import bench as bench_mod
from bench.online import ope as ope_mod
from bench.online.bench import OnlineConfig, Run, run_one
from bench.online.loop import EVAL_POLICIES, OpeTrace, Trace
from bench.online.ope import ope_check
from bench.online.report import write_report
from bench.ope import ObpEnvConfig
from bench.ope.runner import ESTIMATORS, Estimate
from memento.cli import app


def _invoke(tmp: Path, *args: str) -> Any:
    base = ["bench", "online", "--workdir", str(tmp / "work"), "--out", str(tmp / "out")]
    return CliRunner().invoke(app, [*base, *args])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--simulator", "nope"], "unknown simulator 'nope'"),
        (["--interactions", "0"], "--interactions must be > 0"),
        (["--methods", "random,bogus"], "unknown methods ['bogus']"),
        (["--seeds", "0,x"], "comma-separated integers"),
        (["--url", "http://127.0.0.1:9"], "--url drives one service method"),
    ],
)
def test_bad_input_exits_2_with_a_message(tmp_path: Path, args: list[str], message: str) -> None:
    """Unknown simulator / method, no decisions and bad seeds: exit 2, the reason, no
    traceback, nothing run."""
    res = _invoke(tmp_path, *args, "--no-track", "--json")
    assert res.exit_code == 2, res.output
    assert message in res.stderr and "Traceback" not in res.output
    assert res.stdout == "" and not (tmp_path / "work" / "runs").exists()


def test_a_service_that_stops_answering_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ServiceUnavailableError` during a run is a clear error with exit code 2."""

    def down(*_: Any, **__: Any) -> Run:
        raise ServiceUnavailableError("soft-q: the service did not start: port in use")

    monkeypatch.setattr(bench_mod, "run_one", down)
    res = _invoke(tmp_path, "--methods", "soft-q", "--interactions", "10", "--no-track")
    assert res.exit_code == 2, res.output
    assert "the service did not start" in res.stderr and "Traceback" not in res.output


TINY = ["--methods", "random,oracle", "--interactions", "200", "--seeds", "0", "--no-ope"]


def test_tiny_run_prints_json_caches_and_writes_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--json prints only the payload; oracle beats random; a second run reads the cache
    (the loop is never called) and gives the same numbers; the PNGs and table exist."""
    res = _invoke(tmp_path, *TINY, "--no-track", "--json")
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    results = payload["results"]
    assert set(results) == {"random", "oracle"}
    for row in results.values():
        assert math.isfinite(row["reward_per_decision_last_20pct"])
        assert math.isfinite(row["cumulative_regret"])
        assert len(row["curve"]["x"]) == len(row["curve"]["expected"]) == 40
        assert row["curve"]["x"][-1] == 200
    oracle, rand = results["oracle"], results["random"]
    assert oracle["reward_per_decision_last_20pct"] > rand["reward_per_decision_last_20pct"]
    assert oracle["cumulative_regret"] < rand["cumulative_regret"]
    assert payload["runs"]["random"]["0"]["cached"] is False
    assert payload["commands"][0].startswith("memento bench online --simulator planted")
    assert "ope" not in payload
    for name in ("reward", "regret", "last20", "table", "json"):
        assert Path(payload["files"][name]).is_file(), name
    assert (tmp_path / "out" / "results.md").read_text().count("| random |") == 1

    def never(*_: Any, **__: Any) -> Trace:
        raise AssertionError("a cached run was recomputed")

    monkeypatch.setattr(bench_mod, "run_policy", never)
    again = json.loads(_invoke(tmp_path, *TINY, "--no-track", "--json").stdout)
    assert again["results"] == results
    assert again["runs"]["oracle"]["0"]["cached"] is True


def test_report_draws_every_figure_from_the_payload(tmp_path: Path) -> None:
    """`write_report` writes three non-trivial PNGs and a table with one row per method and
    the off-policy rows, from a hand-made payload."""
    curve = {"x": [50.0, 100.0], **{k: [0.1, 0.2] for k in ("reward", "expected")}}
    curve |= {"cumulative_regret": [5.0, 9.0]}
    curve |= {f"{k}_std": [0.01, 0.02] for k in ("reward", "expected", "cumulative_regret")}
    row = {
        "reward_per_decision_last_20pct": 0.2,
        "reward_per_decision_last_20pct_ci": [0.1, 0.3],
        "expected_last_20pct": 0.2,
        "ratio_to_oracle": 0.5,
        "cumulative_regret": 9.0,
        "recovery_after_shift": [30, None],
        "seeds": {"0": {"reward_last_20pct": 0.15}, "1": {"reward_last_20pct": 0.25}},
        "curve": curve,
    }
    check = {
        "policies": {
            "uniform": {
                "true_value": 0.05,
                "estimates": {e: [0.05, 0.04, 0.06] for e in ESTIMATORS},
                "dr_within_ci": True,
            }
        }
    }
    payload = {
        "simulator": "planted",
        "interactions": 100,
        "seeds": [0, 1],
        "shift_at_decision": 50,
        "results": {"soft-q": row, "random": row},
        "paired_expected_last_20pct": {"random": {"soft-q_minus_method": 0.0, "ci": [-1, 1]}},
        "ope": {"0": check, "1": {"error": "no propensities"}},
    }
    files = write_report(payload, tmp_path / "r")
    for name in ("reward", "regret", "last20"):
        assert files[name].read_bytes()[:4] == b"\x89PNG" and files[name].stat().st_size > 10_000
    table = files["table"].read_text()
    assert "| soft-q | 0.2000 | [0.1000, 0.3000] |" in table
    assert "30, never" in table and "+0.0000 [-1.0000, +1.0000]" in table
    assert "| 0 | uniform | 0.0500 |" in table and "no propensities" in table


def test_tracking_logs_namespaced_figures_curves_and_artifacts(tmp_path: Path) -> None:
    """--track: per-method figures under online/<method>/, the curve with step = decisions,
    the PNGs and JSON as artifacts."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    res = _invoke(tmp_path, *TINY, "--json", "--tracking-uri", uri)
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    client = MlflowClient(uri)
    run = client.get_run(payload["mlflow_run_id"])
    last = run.data.metrics["online/oracle/reward_last_20pct"]
    assert last == pytest.approx(payload["results"]["oracle"]["reward_per_decision_last_20pct"])
    hist = client.get_metric_history(run.info.run_id, "online/random/curve_expected")
    assert [int(m.step) for m in hist][-1] == 200 and len(hist) == 40
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"reward.png", "regret.png", "last20.png", "results.md", "results.json"} <= arts


# --- the off-policy check ---------------------------------------------------------------


def _fake_logs(tmp: Path) -> tuple[Run, dict[str, Any]]:
    """A 4-item catalogue (simulator order a, b, c, d; export order d, c, b, a), 4 logged
    decisions (d0 has no first-position record, x is not in the trace) and their trace."""
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
    }
    ope = OpeTrace(["d0", "d1", "d2", "d3"])
    ope.actions = {"oracle": [0, 0, 1, 3], "popularity": [2, 2, 2, 2], "uniform": [-1] * 4}
    ope.true_value = {n: [10.0, 1.0, 2.0, 3.0] for n in EVAL_POLICIES}
    ope.allowed = [np.ones(4, bool)] * 3 + [np.array([True, False, True, False])]
    db = tmp / "db.sqlite3"
    db.write_bytes(b"")
    trace = Trace(np.zeros(4), np.zeros(4), np.zeros(4), -1)
    return Run(trace, ope, db), fb


def test_ope_check_joins_by_id_and_maps_rows_through_the_catalogue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last `rounds` trace decisions with a first-position record (d2, d3), action_dists
    mapped through ids ((D, A, 1), uniform over the allowed items), the truth averaged over
    the same decisions, DR's coverage and the counts."""
    run, fb = _fake_logs(tmp_path)
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
        return {n: {e: Estimate(2.4, 2.0, 3.0) for e in ESTIMATORS} for n in dists}

    monkeypatch.setattr(ope_mod, "_export", export)
    monkeypatch.setattr(ope_mod, "estimate_policy_values", estimate)
    out = ope_check(run, tmp_path / "ope", rounds=2, seed=7, catalogue=["a", "b", "c", "d"])
    sub = seen["fb"]
    assert sub["decisions"].tolist() == ["d2", "d3"]
    assert sub["decision_index"].tolist() == [0, 1] and sub["action"].tolist() == [1, 0]
    assert seen["kw"]["positions"] == 1 and seen["kw"]["seed"] == 7
    col = {"a": 3, "b": 2, "c": 1, "d": 0}
    oracle = seen["dists"]["oracle"]
    assert oracle.shape == (2, 4, 1)
    assert oracle[0, col["b"], 0] == 1.0 and oracle[1, col["d"], 0] == 1.0
    assert (seen["dists"]["popularity"][:, col["c"], 0] == 1.0).all()
    uniform = seen["dists"]["uniform"][:, :, 0]
    assert uniform[0].tolist() == [0.25] * 4
    assert uniform[1, col["a"]] == uniform[1, col["c"]] == 0.5 and uniform[1].sum() == 1.0
    pol = out["policies"]["oracle"]
    assert pol["true_value"] == pytest.approx(2.5) and pol["dr_within_ci"] is True
    assert pol["estimates"]["dr"] == [2.4, 2.0, 3.0]
    assert out["logging_first_position_reward"] == pytest.approx(0.25)
    counts = out["counts"]
    assert counts["decisions_used"] == 2 and counts["left_out_positions"] == {"cold_start": 2}
    assert counts["left_out_decisions"] == {
        "not_in_trace": 1,
        "not_exported": 0,
        "no_first_position": 1,
        "before_window": 1,
    }


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
    assert set(out["policies"]) == set(EVAL_POLICIES)
    for pol in out["policies"].values():
        assert math.isfinite(pol["true_value"]) and pol["true_value"] > 0
        no_match = pol["estimates"]["ipw"][0] == 0.0  # no logged first item matches
        for name, (value, lo, hi) in pol["estimates"].items():
            if name == "snipw" and no_match:  # self-normalised 0 / 0 is undefined (nan)
                continue
            assert all(math.isfinite(v) for v in (value, lo, hi)) and lo <= hi, (name, pol)
        assert isinstance(pol["dr_within_ci"], bool)
    # the oracle's first item is worth more than a uniform one on the same states
    assert out["policies"]["oracle"]["true_value"] > out["policies"]["uniform"]["true_value"]
    counts = out["counts"]
    assert counts["decisions_used"] == 200 and counts["decisions_logged"] == 300
    assert counts["left_out_decisions"]["before_window"] == 100
    assert counts["left_out_positions"] == {}
    assert math.isfinite(out["logging_first_position_reward"])
    assert out["export_command"].startswith("memento logs export --format obp --db ")


def test_a_service_that_is_not_running_exits_2(tmp_path: Path) -> None:
    """--url at a port nobody listens on: exit 2 with how to start one, nothing run."""
    res = _invoke(
        tmp_path,
        *("--url", "http://127.0.0.1:9", "--methods", "soft-q", "--interactions", "5"),
        *("--seeds", "0", "--no-track", "--json"),
    )
    assert res.exit_code == 2, res.output
    assert "no service answers at http://127.0.0.1:9" in res.stderr
    assert "memento serve" in res.stderr and "Traceback" not in res.output


def test_an_in_process_service_run_repeats_on_its_seed_and_reports_its_cpu(
    tmp_path: Path,
) -> None:
    """Two in-process soft-q runs of 40 planted decisions on seed 0 (learner applied before
    every decision) show the same lists under the same decision ids (they name the cases,
    whose ids order the bank's evictions), and the run says where a decision's CPU went."""
    from serving.store import read_logs

    traces, infos, ids = [], [], []
    for k in range(2):
        cfg = OnlineConfig(
            interactions=40, seeds=(0,), methods=("soft-q",), workdir=tmp_path / f"w{k}"
        )
        run = run_one(cfg, "soft-q", 0)
        traces.append(run.trace)
        infos.append(run.info)
        assert run.db is not None
        ids.append([d.decision_id for d in read_logs(run.db).decisions])
    assert np.array_equal(traces[0].expected, traces[1].expected)
    assert len(ids[0]) == 40 and ids[0] == ids[1]
    assert traces[0].missing_pscores == 0
    assert set(infos[0]["cpu_ms_per_decision"]) >= {"recommend", "outcomes", "learner"}


def test_the_transport_and_learn_every_are_checked_and_keyed() -> None:
    """An unknown transport or learn_every 0 is refused; runs with another transport or
    learner cadence are cached apart."""
    with pytest.raises(ValueError, match="--transport"):
        OnlineConfig(transport="grpc").validate()
    with pytest.raises(ValueError, match="--learn-every"):
        OnlineConfig(learn_every=0).validate()
    keys = {
        OnlineConfig(transport=t, learn_every=k).key("soft-q", 0)
        for t, k in (("http", 1), ("in-process", 1), ("in-process", 4))
    }
    assert len(keys) == 3


def test_a_model_override_in_the_environment_keys_the_run_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A `MEMENTO_FRESH__*` override changes the served model, so the cached run of the same
    command line without it is not reused."""
    monkeypatch.delenv("MEMENTO_PRESET", raising=False)
    for k in [k for k in os.environ if k.startswith("MEMENTO_FRESH__")]:
        monkeypatch.delenv(k)
    plain = OnlineConfig().key("soft-q", 0)
    monkeypatch.setenv("MEMENTO_FRESH__RECOMMEND__CASE_VOTE_WEIGHT", "1")
    assert OnlineConfig().key("soft-q", 0) != plain


def test_runs_in_worker_processes_equal_the_runs_one_after_another(tmp_path: Path) -> None:
    """random and oracle on seeds 0 and 1, two at a time in spawned processes, give the same
    traces as one after another, in the same (seed, method) order."""
    from bench.online.runs import run_all

    cfgs = [
        OnlineConfig(
            interactions=50, seeds=(0, 1), methods=("random", "oracle"), workdir=tmp_path / d
        )
        for d in ("seq", "par")
    ]
    seq, par = run_all(cfgs[0], jobs=1), run_all(cfgs[1], jobs=2)
    assert list(seq) == list(par) == [("random", 0), ("oracle", 0), ("random", 1), ("oracle", 1)]
    for key, done in seq.items():
        assert np.array_equal(done.run.trace.expected, par[key].run.trace.expected), key
        assert not done.cached and not par[key].cached


def test_the_cross_model_learns_from_every_shown_item_unless_switched_off(
    tmp_path: Path,
) -> None:
    """A fresh served items model has the cross model (`presets.online`): 30 in-process soft-q
    decisions teach it (weights and lower positions' biases move); with
    MEMENTO_FRESH__RECOMMEND__ITEM_CROSSES_LR=0 the model has none."""
    from bench.online.inprocess import InProcessService
    from bench.online.loop import run_policy
    from bench.online.service_policy import ServicePolicy, SimClock, service_env
    from bench.sim.registry import make_simulator

    for lr in (None, "0"):
        sim = make_simulator("planted", 0)
        extra = {"MEMENTO_FRESH__RECOMMEND__ITEM_CROSSES_LR": lr} if lr else {}
        work = tmp_path / str(lr)
        env = service_env("soft-q", sim.catalogue(), work, seed=0, extra_env=extra)
        svc = InProcessService("soft-q", env)
        try:
            run_policy(sim, ServicePolicy("soft-q", transport=svc, clock=SimClock.start()), 30)
            svc._worker.apply_queued()
            crosses = svc._core._rt.rec.crosses  # type: ignore[attr-defined]
            if lr == "0":
                assert crosses is None
            else:
                assert crosses is not None and (crosses.w != 0).sum() > 100
                assert crosses.pos[0] == 0.0 and np.any(crosses.pos[1:10] != 0)
        finally:
            svc.close()


def test_the_share_of_the_oracle_before_the_shift_reads_the_last_fifth_before_it() -> None:
    """Shift at decision 10: decisions 8 and 9 (the last 20% before it) earn 0.3 and 0.5
    against an oracle of 1.0 each, so the share is 0.4; a run without a shift has none."""
    from bench.online.summary import before_shift_ratio

    expected = np.zeros(20)
    expected[8:10] = [0.3, 0.5]
    expected[:8] = 0.9
    assert before_shift_ratio(Trace(np.zeros(20), expected, np.ones(20), 10)) == pytest.approx(0.4)
    assert before_shift_ratio(Trace(np.zeros(20), expected, np.ones(20), -1)) is None

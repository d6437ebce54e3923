"""`memento bench online`: bad input, a tiny in-process run, its cache, report and tracking
(the off-policy check: `test_online_ope.py`)."""

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
from bench.online.bench import OnlineConfig, Run, run_one
from bench.online.loop import Trace
from bench.online.report import write_report
from bench.ope.runner import ESTIMATORS
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
        (["--ope-model", "forest"], "--ope-model must be one of ridge, gbr"),
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
        },
        "reward_model": {"base_model": "gbr", "mse": 0.1234, "mse_of_mean": 0.2},
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
    assert "Reward model of DM / DR (gbr)" in table and "seed 0 0.1234 / 0.2000" in table


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

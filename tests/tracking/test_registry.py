"""MLflow tracking: a tiny run logs params, metrics, artifacts and a registered model."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path

import pytest

from tracking.errors import ModelNotFoundError
from tracking.registry import (
    Tracker,
    TrackingConfig,
    download_model,
    flatten_params,
    metric_key,
    resolve_uri,
)


@dataclasses.dataclass(frozen=True)
class _Inner:
    """Nested config."""

    alpha: float = 0.1
    ks: tuple[int, ...] = (5, 10)


@dataclasses.dataclass(frozen=True)
class _Outer:
    """Outer config."""

    name: str = "soft-q"
    inner: _Inner = dataclasses.field(default_factory=_Inner)
    path: Path = Path("/tmp/x")


def _cfg(tmp_path: Path) -> TrackingConfig:
    return TrackingConfig(uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="test-exp")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sqlite store shared by this module's tests (creating the schema takes seconds)."""
    return tmp_path_factory.mktemp("mlflow")


def test_flatten_params_nested() -> None:
    """Nested dataclasses flatten to dotted keys with string values."""
    assert flatten_params(_Outer()) == {
        "name": "soft-q",
        "inner.alpha": "0.1",
        "inner.ks": "(5, 10)",
        "path": "/tmp/x",
    }


def test_uri_resolution_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Config URI beats the env variable, which beats the repo sqlite default."""
    monkeypatch.delenv("MEMENTO_MLFLOW_URI", raising=False)
    assert resolve_uri().endswith("mlflow/mlflow.db")
    assert resolve_uri().startswith("sqlite:///")
    monkeypatch.setenv("MEMENTO_MLFLOW_URI", "sqlite:///elsewhere.db")
    assert resolve_uri() == "sqlite:///elsewhere.db"
    assert resolve_uri(_cfg(tmp_path)) == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_metric_key_spelling() -> None:
    """Namespaced names keep their slash; '@' becomes '_at_' for MLflow."""
    assert metric_key("eval/ndcg@10") == "eval/ndcg_at_10"
    assert metric_key("losses/td") == "losses/td"
    assert metric_key("a#b") == "a_b"


def test_tiny_run_logs_and_registers_model(store: Path, tmp_path: Path) -> None:
    """Params, step metrics, artifacts and an aliased model version round-trip via the store."""
    cfg = _cfg(store)
    model_dir = tmp_path / "policy"
    (model_dir / "case_bank").mkdir(parents=True)
    (model_dir / "q.pt").write_bytes(b"\x00checkpoint")
    (model_dir / "case_bank" / "cases.jsonl").write_text('{"id": 1}\n')
    png = tmp_path / "curve.png"
    png.write_bytes(b"\x89PNG fake")

    with Tracker(cfg, run_name="tiny") as t:
        logged = t.log_params(_Outer())
        for step, td in enumerate([1.0, 0.5, 0.25]):
            t.log_metrics({"td": td}, step=step, namespace="losses")
        t.log_metrics({"ndcg@10": 0.2, "hr@10": 0.4}, step=1, namespace="eval")
        t.log_metric("replay/reward", 0.3, step=0)
        t.log_artifact(png)
        t.log_config(_Outer())
        t.log_table([{"method": "pop", "ndcg@10": 0.1}], name="results", markdown="| x |\n")
        reg = t.register_model(model_dir, name="memento-policy", alias="champion")
        run_id = t.run_id
        assert t.status == "RUNNING"
        assert t.metric_history("losses/td") == [(0, 1.0), (1, 0.5), (2, 0.25)]
    assert t.status == "FINISHED"
    assert logged["inner.alpha"] == "0.1"

    run = t.client.get_run(run_id)
    assert run.data.params["inner.ks"] == "(5, 10)"
    assert set(run.data.metrics) == {
        "losses/td",
        "eval/ndcg_at_10",
        "eval/hr_at_10",
        "replay/reward",
    }, "every metric is stored under its namespace"
    assert run.data.metrics["eval/ndcg_at_10"] == pytest.approx(0.2)
    assert run.data.metrics["losses/td"] == pytest.approx(0.25)
    assert {"curve.png", "config.json", "results.csv", "results.md", "model"} <= set(
        t.list_artifacts()
    )
    assert (store / "artifacts").is_dir()
    art = t.artifact_dir
    assert art is not None and (art / "curve.png").read_bytes() == b"\x89PNG fake"
    assert json.loads((art / "config.json").read_text()) == {
        "name": "soft-q",
        "inner": {"alpha": 0.1, "ks": [5, 10]},
        "path": "/tmp/x",
    }
    with (art / "results.csv").open(newline="") as fh:
        assert list(csv.DictReader(fh)) == [{"method": "pop", "ndcg@10": "0.1"}]
    assert (art / "results.md").read_text() == "| x |\n"
    assert t.metric_history("eval/ndcg@10") == [(1, 0.2)]

    assert reg.version == "1"
    out = download_model("memento-policy", "champion", tmp_path / "dl", config=cfg)
    assert (out / "q.pt").read_bytes() == b"\x00checkpoint"
    assert (out / "case_bank" / "cases.jsonl").read_text() == '{"id": 1}\n'

    with Tracker(cfg, run_name="second") as t2:
        reg2 = t2.register_model(model_dir, name="memento-policy", alias="champion")
    assert reg2.version == "2"
    assert str(t2.client.get_model_version_by_alias("memento-policy", "champion").version) == "2"


def test_download_unknown_alias_raises(store: Path, tmp_path: Path) -> None:
    """Asking for a missing model or alias raises a named error."""
    with pytest.raises(ModelNotFoundError):
        download_model("nope", "champion", tmp_path / "dl", config=_cfg(store))


def test_failed_block_marks_run_failed(store: Path) -> None:
    """An exception inside the context marks the run FAILED and propagates."""
    with pytest.raises(RuntimeError), Tracker(_cfg(store)) as t:
        raise RuntimeError("boom")
    assert t.status == "FAILED"


def test_run_leaves_the_global_tracking_uri_alone(store: Path) -> None:
    """The URI comes from the config per client: a run sets no process-wide MLflow URI."""
    import mlflow

    cfg = _cfg(store)
    with Tracker(cfg, run_name="edge"):
        pass
    assert mlflow.get_tracking_uri() != cfg.uri
    assert os.environ.get("MLFLOW_TRACKING_URI") != cfg.uri

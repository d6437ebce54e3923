"""MLflow tracking at the edge: the ONLY module in the project that imports mlflow.

Everything goes through an explicit ``MlflowClient`` built from a ``TrackingConfig`` at run
time; nothing sets a global tracking URI, at import or later. The default store is a local
sqlite file (no server needed) with artifacts in a folder beside it:

- tracking/registry URI: ``TrackingConfig.uri`` if set, else env ``MEMENTO_MLFLOW_URI``, else
  ``sqlite:///<repo>/mlflow/mlflow.db``;
- artifacts: ``TrackingConfig.artifact_root`` if set, else ``<repo>/mlflow/artifacts``.

Metric names are namespaced (``losses/td``, ``policy/entropy``, ``eval/ndcg@10``,
``replay/reward``). A trained policy checkpoint + case bank snapshot is logged as a directory of
plain artifacts, registered as a model version, and given an alias (``champion``); serving
fetches it back with :func:`download_model`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from mlflow.artifacts import download_artifacts
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tracking.errors import ModelNotFoundError  # raised by download_model, re-exported

__all__ = [
    "ENV_URI",
    "REPO_ROOT",
    "ModelNotFoundError",
    "RegisteredModel",
    "Tracker",
    "TrackingConfig",
    "download_model",
    "flatten_params",
    "jsonable",
    "metric_key",
    "resolve_uri",
]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV_URI = "MEMENTO_MLFLOW_URI"
_MAX_PARAM_LEN = 6000  # MLflow 3 param value limit


@dataclasses.dataclass(frozen=True)
class TrackingConfig:
    """Where and under which experiment runs are tracked."""

    uri: str | None = None
    """Tracking + registry URI; None: env ``MEMENTO_MLFLOW_URI``, else the repo sqlite store."""
    artifact_root: Path | None = None
    """Folder for artifacts of new experiments; None: ``<repo>/mlflow/artifacts`` (or beside a
    sqlite file given in ``uri``)."""
    experiment: str = "memento"
    """Experiment name (created on first use)."""


@dataclasses.dataclass(frozen=True)
class RegisteredModel:
    """A registered model version as returned by :meth:`Tracker.register_model`."""

    name: str
    """Registered model name."""
    version: str
    """Model version (string, as MLflow reports it)."""
    alias: str | None
    """Alias pointing to this version, if one was set."""
    source: str
    """Artifact URI of the logged model directory."""
    run_id: str
    """Run that produced the model."""


def resolve_uri(config: TrackingConfig | None = None) -> str:
    """The tracking URI for ``config`` (config field, then env, then the repo sqlite file)."""
    config = config or TrackingConfig()
    if config.uri:
        return config.uri
    env = os.environ.get(ENV_URI)
    if env:
        return env
    return f"sqlite:///{REPO_ROOT / 'mlflow' / 'mlflow.db'}"


def _artifact_root(config: TrackingConfig, uri: str) -> Path:
    if config.artifact_root is not None:
        return Path(config.artifact_root)
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).parent / "artifacts"
    return REPO_ROOT / "mlflow" / "artifacts"


def _client(config: TrackingConfig) -> MlflowClient:
    uri = resolve_uri(config)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def metric_key(name: str) -> str:
    """The MLflow-safe spelling of a metric name: ``eval/ndcg@10`` -> ``eval/ndcg_at_10``.

    MLflow 3 allows only alphanumerics, ``_ - . : /`` and spaces in metric names; ``@`` is
    spelled ``_at_`` and any other character becomes ``_``.
    """
    name = name.replace("@", "_at_")
    return re.sub(r"[^\w\-. :/]", "_", name)


def flatten_params(obj: Any, prefix: str = "") -> dict[str, str]:
    """Flatten a (nested) dataclass / mapping into ``{"a.b.c": "value"}`` strings.

    Sequences of scalars become their ``repr``; Paths and Enums become strings.
    """
    out: dict[str, str] = {}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        items: Mapping[str, Any] = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    elif isinstance(obj, Mapping):
        items = obj
    else:
        return {prefix or "value": _param_str(obj)}
    for key, value in items.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if (dataclasses.is_dataclass(value) and not isinstance(value, type)) or isinstance(
            value, Mapping
        ):
            out.update(flatten_params(value, name))
        else:
            out[name] = _param_str(value)
    return out


def _param_str(value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    text = str(value) if isinstance(value, str | Path) else repr(value)
    return text[:_MAX_PARAM_LEN]


def jsonable(obj: Any) -> Any:
    """A config (nested dataclasses, mappings, paths, enums, sequences) as plain JSON values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    return obj


class Tracker:
    """One MLflow run; use as a context manager (FINISHED on success, FAILED on error).

    >>> with Tracker(TrackingConfig(), run_name="soft-q") as t:  # doctest: +SKIP
    ...     t.log_params(cfg)
    ...     t.log_metrics({"td": 0.3}, step=10, namespace="losses")
    """

    def __init__(
        self,
        config: TrackingConfig | None = None,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config or TrackingConfig()
        self.tracking_uri = resolve_uri(self.config)
        self.client = _client(self.config)
        self.experiment_id = self._experiment_id()
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=dict(tags or {}))
        self.run_id: str = run.info.run_id
        self.run_name: str = run.info.run_name
        self.artifact_uri: str = run.info.artifact_uri or ""
        self._ended = False
        log.info("mlflow run %s (%s) at %s", self.run_name, self.run_id, self.tracking_uri)

    def _experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(self.config.experiment)
        if exp is not None:
            return str(exp.experiment_id)
        root = _artifact_root(self.config, self.tracking_uri)
        root.mkdir(parents=True, exist_ok=True)
        try:
            return str(
                self.client.create_experiment(
                    self.config.experiment, artifact_location=root.resolve().as_uri()
                )
            )
        except MlflowException:  # created concurrently by another process
            exp = self.client.get_experiment_by_name(self.config.experiment)
            assert exp is not None, f"experiment {self.config.experiment!r} vanished"
            return str(exp.experiment_id)

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Tracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end("FAILED" if exc_type is not None else "FINISHED")

    def end(self, status: str = "FINISHED") -> None:
        """Terminate the run (idempotent)."""
        if not self._ended:
            self.client.set_terminated(self.run_id, status=status)
            self._ended = True

    @property
    def artifact_dir(self) -> Path | None:
        """Local folder of this run's artifacts (None when the store is not on local disk)."""
        if self.artifact_uri.startswith("file://"):
            return Path(url2pathname(urlparse(self.artifact_uri).path))
        if "://" not in self.artifact_uri and self.artifact_uri:
            return Path(self.artifact_uri)
        return None

    @property
    def status(self) -> str:
        """Current run status as MLflow reports it (``RUNNING``, ``FINISHED``...)."""
        return str(self.client.get_run(self.run_id).info.status)

    # -- params and metrics ------------------------------------------------------------------
    def log_params(self, config: Any, prefix: str = "") -> dict[str, str]:
        """Log a (nested) dataclass or mapping as flattened params; returns what was logged."""
        params = flatten_params(config, prefix)
        batch = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(batch), 100):  # MLflow batch limit is 100 params
            self.client.log_batch(self.run_id, params=batch[start : start + 100])
        return params

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set run tags."""
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, v)

    def log_metrics(
        self,
        metrics: Mapping[str, float],
        step: int | None = None,
        namespace: str | None = None,
    ) -> None:
        """Log metrics at ``step``; ``namespace="eval"`` turns ``ndcg@10`` into ``eval/ndcg@10``.

        Names pass through :func:`metric_key` (so MLflow stores ``eval/ndcg_at_10``).
        """
        ts = int(time.time() * 1000)
        prefix = f"{namespace.rstrip('/')}/" if namespace else ""
        batch = [
            Metric(metric_key(prefix + k), float(v), ts, int(step or 0)) for k, v in metrics.items()
        ]
        for start in range(0, len(batch), 1000):
            self.client.log_batch(self.run_id, metrics=batch[start : start + 1000])

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Log one (already namespaced) metric."""
        self.log_metrics({key: value}, step=step)

    def metric_history(self, key: str) -> list[tuple[int, float]]:
        """``(step, value)`` pairs logged for ``key``, by step."""
        hist = self.client.get_metric_history(self.run_id, metric_key(key))
        return sorted((int(m.step), float(m.value)) for m in hist)

    # -- artifacts ---------------------------------------------------------------------------
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file (PNG, CSV, ...) or a whole directory into the run's artifacts."""
        p = Path(path)
        if p.is_dir():
            self.client.log_artifacts(self.run_id, str(p), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(p), artifact_path)

    def log_config(self, config: Any, name: str = "config.json") -> None:
        """Write ``config`` (dataclass or mapping) as JSON into the run's artifacts."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_text(json.dumps(jsonable(config), indent=2, sort_keys=True))
            self.client.log_artifact(self.run_id, str(path))

    def log_table(
        self, rows: Sequence[Mapping[str, Any]], name: str = "results", markdown: str | None = None
    ) -> None:
        """Log ``rows`` as ``<name>.csv``, plus ``<name>.md`` when ``markdown`` text is given."""
        if not rows:
            raise ValueError("log_table needs at least one row")
        fields = list(dict.fromkeys(k for row in rows for k in row))
        with tempfile.TemporaryDirectory() as tmp:
            csv_path = Path(tmp) / f"{name}.csv"
            with csv_path.open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)
            self.client.log_artifact(self.run_id, str(csv_path))
            if markdown is not None:
                md_path = Path(tmp) / f"{name}.md"
                md_path.write_text(markdown)
                self.client.log_artifact(self.run_id, str(md_path))

    def list_artifacts(self, path: str | None = None) -> list[str]:
        """Artifact paths directly under ``path`` in this run."""
        return [a.path for a in self.client.list_artifacts(self.run_id, path)]

    # -- models ------------------------------------------------------------------------------
    def register_model(
        self,
        model_dir: str | Path,
        name: str,
        alias: str | None = "champion",
        artifact_path: str = "model",
        description: str | None = None,
    ) -> RegisteredModel:
        """Log ``model_dir`` (checkpoint + case bank snapshot) under ``artifact_path`` and
        register it as a new version of ``name``; point ``alias`` at that version."""
        src = Path(model_dir)
        if not src.is_dir():
            raise NotADirectoryError(f"model directory not found: {src}")
        self.client.log_artifacts(self.run_id, str(src), artifact_path)
        source = f"{self.artifact_uri.rstrip('/')}/{artifact_path}"
        try:
            self.client.create_registered_model(name)
        except MlflowException as err:
            if "RESOURCE_ALREADY_EXISTS" not in str(err.error_code):
                raise
        mv = self.client.create_model_version(
            name, source, run_id=self.run_id, description=description
        )
        if alias:
            self.client.set_registered_model_alias(name, alias, mv.version)
        log.info("registered %s version %s (alias %s)", name, mv.version, alias)
        return RegisteredModel(
            name=name, version=str(mv.version), alias=alias, source=source, run_id=self.run_id
        )


def download_model(
    name: str, alias: str, dst: str | Path, config: TrackingConfig | None = None
) -> Path:
    """Fetch the model directory registered as ``name@alias`` into ``dst``; returns its path.

    The returned folder holds exactly what was passed to :meth:`Tracker.register_model`.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bar in logs
    client = _client(config or TrackingConfig())
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException as err:
        raise ModelNotFoundError(f"no registered model {name!r} with alias {alias!r}") from err
    source = client.get_model_version_download_uri(name, mv.version)
    dst_path = Path(dst)
    dst_path.mkdir(parents=True, exist_ok=True)
    local = download_artifacts(
        artifact_uri=source, dst_path=str(dst_path), tracking_uri=resolve_uri(config)
    )
    return Path(local)

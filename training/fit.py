"""`fit(cfg) -> FitResult`: the product's offline trainer.

It replays the training period for one policy (soft-q), keeps the pass with the best
validation NDCG@10, evaluates it on the held-out rows, and registers the `ModelBundle` in
MLflow (name `cfg.register_name`, alias `champion`): its policy, the training rows' case bank,
catalogue, item vectors, popularity log and co-occurrence counts, with the pipeline config.
Comparisons against other methods call `fit` (`bench.replay.compare`); nothing here knows them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from recsys.bundle import ModelBundle
from recsys.llm.protocol import FrozenLLM
from training.config import TrainConfig
from training.modes import MethodResult, run_memory_mode
from training.prepare import Prepared, prepare
from training.replay_env import ReplayParts

__all__ = ["POLICY", "FitResult", "build_bundle", "fit", "log_method"]

log = logging.getLogger(__name__)

POLICY = "soft-q"
"""The method `fit` trains and ships."""

Progress = Callable[[str, int, int], None]
MemoryRunner = Callable[..., list[MethodResult]]
"""Runs one case-memory mode and seed: `run_memory_mode`'s signature (the Ray engine swaps in
`training.distributed.RayMemoryRunner`, which distributes the training passes)."""


def build_bundle(
    result: MethodResult, parts: ReplayParts, cfg: TrainConfig, dataset: str
) -> ModelBundle:
    """The evaluated model as one bundle: what the replay measured is what serving loads
    (`cfg.core` with the trained learner's own settings and the bank's)."""
    assert result.learner is not None, f"{result.name} has no learner to ship"
    core = replace(cfg.core, learner=result.learner.cfg, case_bank=parts.bank.cfg)
    meta = {
        "mode": result.name,
        "dataset": dataset,
        "data": cfg.data,
        "trained_until": parts.popularity.last_ts,
    }
    return ModelBundle(
        core, result.learner, parts.bank, parts.items, parts.popularity, parts.cooc, meta=meta
    )


@dataclass
class FitResult:
    """What `fit` produced."""

    results: list[MethodResult]
    """The fitted policy's evaluation (first) and its variants (`no-llm`)."""
    prepared: Prepared
    """The replay it was fitted on."""
    bundle: ModelBundle
    """The shipped model."""
    paths: dict[str, Path] = field(default_factory=dict)
    """model: the saved bundle folder."""
    run_id: str | None = None
    """MLflow run id."""
    model_version: str | None = None
    """Registered model version (alias `champion`), when registered."""
    elapsed_s: float = 0.0
    """Wall time."""


def log_method(tracker: Any, result: MethodResult, curve: list[float] | None = None) -> None:
    """One method's learner metrics, per-pass curve and evaluation metrics into a run."""
    m = result.name
    for step, lm in enumerate(result.learn[:: max(1, len(result.learn) // 200)]):
        tracker.log_metrics(lm, step=step, namespace=f"train/{m}")
    for it, v in enumerate(curve if curve is not None else result.curve):
        tracker.log_metrics({"reward_per_decision": v}, step=it, namespace=f"iter/{m}")


def fit(
    cfg: TrainConfig,
    progress: Progress | None = None,
    memory_runner: MemoryRunner | None = None,
    prepared: Prepared | None = None,
    llm: FrozenLLM | None = None,
    tracker: Any = None,
) -> FitResult:
    """Fit the soft-q policy (the model `cfg.core`, seed `cfg.seed`) on the configured data,
    register it as `champion`.

    `prepared`: a replay already built (a comparison shares one across methods); `tracker`: an
    open `tracking.registry.Tracker` to log into (default: a run of its own); `llm`: the frozen
    LLM of evaluation (none by default)."""
    import torch

    from tracking.registry import Tracker, TrackingConfig, jsonable

    t0 = time.perf_counter()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    prep = prepared or prepare(cfg)
    run = memory_runner or run_memory_mode
    results = run(prep.world, prep.parts, cfg, POLICY, cfg.seed, llm, progress)
    bundle = build_bundle(results[0], prep.parts.served, cfg, prep.name)
    out = FitResult(results, prep, bundle)
    opened = (
        nullcontext(tracker)
        if tracker is not None
        else Tracker(
            TrackingConfig(uri=cfg.tracking_uri, experiment=cfg.experiment),
            run_name=f"fit-{prep.name}",
            tags={"dataset": prep.name},
        )
    )
    with opened as tr:
        if tracker is None:
            tr.log_params(jsonable(cfg))
            for r in results:
                log_method(tr, r)
                tr.log_metrics(r.metrics, namespace=f"eval/{r.name}")
        out.run_id = tr.run_id
        # the served model names the run that trained it (the /ui dashboard shows it)
        bundle.meta["mlflow_run_id"] = tr.run_id
        bundle.meta["mlflow_experiment_id"] = tr.experiment_id
        out.paths["model"] = bundle.save(Path(cfg.output_dir) / "model")
        if cfg.register:
            reg = tr.register_model(out.paths["model"], cfg.register_name, alias="champion")
            out.model_version = reg.version
    out.elapsed_s = time.perf_counter() - t0
    log.info("fit %s: %s in %.1f s", prep.name, np.round(results[0].curve, 4), out.elapsed_s)
    return out

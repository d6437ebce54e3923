"""`train(cfg) -> TrainResult`: data, split, replay iterations, evaluation, MLflow, registry.

The registered model (name `cfg.register_name`, alias `champion`) is the `recsys.bundle`
`ModelBundle` of the evaluated soft-q method: its policy, the training rows' case bank,
catalogue, item vectors, popularity log and co-occurrence counts, with the pipeline config.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys.bundle import ModelBundle
from training.config import (
    ABLATIONS,
    BASELINES,
    LEARNED_MODES,
    LLM_MODES,
    RECBOLE_PEERS,
    TrainConfig,
)
from training.evaluate import aggregate_seeds
from training.modes import (
    MethodResult,
    recommend_config_of,
    run_baseline,
    run_memory_mode,
    run_peers,
)
from training.replay_env import ReplayParts, SplitParts, build_split_parts
from training.replay_world import ReplayWorld, build_world

__all__ = ["TrainResult", "load_data", "train"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
MemoryRunner = Callable[..., list[MethodResult]]
"""Runs one case-memory mode and seed: `run_memory_mode`'s signature (the Ray engine swaps in
`training.distributed.RayMemoryRunner`, which distributes the training passes)."""


@dataclass
class TrainResult:
    """What a training run produced."""

    metrics: dict[str, dict[str, float]]
    """{method: metric mean over seeds (+ `<metric>_std`)}."""
    curves: dict[str, list[list[float]]]
    """{method: [per-seed reward per decision by iteration]}."""
    per_seed: dict[str, list[dict[str, float]]]
    """{method: [per-seed metrics]}."""
    paths: dict[str, Path] = field(default_factory=dict)
    """learning_curve, comparison, table, config, model."""
    run_id: str | None = None
    """MLflow run id."""
    model_version: str | None = None
    """Registered model version (alias `champion`)."""
    dataset: str = ""
    """Dataset name."""
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    """{method: NDCG@10 / HR@10 / warm NDCG@10 over the test rows with bootstrap CIs}."""
    paired: dict[str, dict[str, Any]] = field(default_factory=dict)
    """{method: soft-q minus method on the same rows, NDCG@10, with paired bootstrap CIs}."""
    info: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """{method: per-seed facts (a peer's epochs and validation curve, EASE's lambda)}."""
    elapsed_s: float = 0.0
    """Wall time."""


def load_data(cfg: TrainConfig) -> tuple[pl.DataFrame, pl.DataFrame, str]:
    """(interactions, items, dataset name) in the canonical schema, prepared once and cached."""
    from data.paths import cache_dir, tmall_sample_dir
    from data.schema import load_canonical
    from data.tianchi import PrepareConfig, prepare_tianchi

    root = cache_dir() / "memento" / "replay-data"
    if cfg.data == "movielens-100k":
        from data.movielens import fetch_movielens_100k

        d = load_canonical(fetch_movielens_100k())
        return d.interactions, d.items, "movielens-100k"
    if cfg.data == "synthetic":
        from data.synthetic import SynthConfig, generate_synthetic

        sc = SynthConfig(cfg.synth_users, cfg.synth_items, cfg.synth_events, cfg.synth_seed)
        tag = f"synthetic-u{sc.users}-i{sc.items}-e{sc.events}-s{sc.seed}"
        raw, canon, name = root / tag / "raw", root / tag / "canonical", "synthetic"
        if not (canon / "interactions.parquet").is_file():
            generate_synthetic(sc, raw)
    elif cfg.data == "tmall-sample":
        raw, canon, name = tmall_sample_dir(), root / "tmall-sample", "tmall-sample"
    elif cfg.data.startswith("tianchi:"):
        raw = Path(cfg.data.removeprefix("tianchi:")).expanduser()
        tag = hashlib.sha1(str(raw.resolve()).encode()).hexdigest()[:10]
        canon, name = root / f"tianchi-{tag}", f"tianchi:{raw}"
    else:
        raise ValueError(f"unknown data source {cfg.data!r}")
    if not (canon / "interactions.parquet").is_file():
        prepare_tianchi(raw, canon, PrepareConfig())
    d = load_canonical(canon)
    return d.interactions, d.items, name


def split_data(cfg: TrainConfig, interactions: pl.DataFrame) -> Any:
    """The `data.splits.Split` of the configured protocol."""
    from data.splits import leave_last_out, temporal_split

    if cfg.split == "leave-last-out":
        return leave_last_out(interactions, with_valid=True)
    return temporal_split(interactions, valid_fraction=0.0, test_fraction=cfg.test_fraction)


def _encoder(cfg: TrainConfig) -> Any:
    from data.paths import cache_dir
    from recsys.config import TextEncoderConfig
    from recsys.memory.text_encoder import build_text_encoder

    return build_text_encoder(
        TextEncoderConfig(
            kind=cfg.text_encoder,
            dim=cfg.text_dim,
            cache_dir=str(cache_dir() / "memento" / "text-cache"),
        )
    )


def build_bundle(
    result: MethodResult, parts: ReplayParts, cfg: TrainConfig, dataset: str
) -> ModelBundle:
    """The evaluated model as one bundle: what the replay measured is what serving loads."""
    from recsys.config import CoreConfig, TextEncoderConfig

    assert result.learner is not None, f"{result.name} has no learner to ship"
    dim = 512 if cfg.text_encoder == "use" else cfg.text_dim
    core = CoreConfig(
        text=TextEncoderConfig(kind=cfg.text_encoder, dim=dim, threads=1),
        state=cfg.state,
        case_bank=parts.bank.cfg,
        learner=result.learner.cfg,
        reward=cfg.reward,
        credit=cfg.credit,
        recommend=recommend_config_of(cfg, result.name),
    )
    meta = {
        "mode": result.name,
        "dataset": dataset,
        "data": cfg.data,
        "trained_until": parts.popularity.last_ts,
    }
    return ModelBundle(
        core, result.learner, parts.bank, parts.items, parts.popularity, parts.cooc, meta=meta
    )


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


@dataclass
class RunOutput:
    """What `run_methods` produced."""

    results: dict[str, list[MethodResult]]
    """{method: per-seed results}."""
    world: ReplayWorld
    """The replayed log."""
    parts: SplitParts
    """The training parts and the evaluated (served) parts."""
    split: Any
    """The `data.splits.Split`."""
    name: str
    """Dataset name."""


def prepare_world(cfg: TrainConfig) -> tuple[ReplayWorld, Any, str]:
    """(world, split, dataset name): the configured data, split and replayed as arrays."""
    interactions, items, name = load_data(cfg)
    split = split_data(cfg, interactions)
    world = build_world(
        interactions,
        split.test,
        items,
        _encoder(cfg),
        cfg.state,
        cfg.reward,
        cfg.window_hours,
        collab_dim=cfg.collab_dim,
        collab_weight=cfg.collab_weight,
        case_state_weight=cfg.case_state_weight,
    )
    return world, split, name


def run_methods(
    cfg: TrainConfig, progress: Progress | None = None, memory_runner: MemoryRunner | None = None
) -> RunOutput:
    """Every configured method and seed on one world and one set of training parts;
    `memory_runner` (default `run_memory_mode`) runs the case-memory modes."""
    import torch

    run_memory = memory_runner or run_memory_mode

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    world, split, name = prepare_world(cfg)
    parts = build_split_parts(world, cfg)
    llm = None
    if cfg.use_llm and any(m in LLM_MODES for m in cfg.modes):
        from recsys.llm.ranker import LLMRanker

        llm = LLMRanker.from_name(cfg.llm_model)
    results: dict[str, list[MethodResult]] = {}
    for seed in cfg.seeds:
        for mode in cfg.modes:
            if mode in ABLATIONS and seed not in (cfg.ablation_seeds or cfg.seeds):
                continue
            if mode in ("non-parametric", "no-memory") and seed != cfg.seeds[0] and llm is None:
                # nothing learned or sampled: every seed gives the same lists
                for r in [copy.copy(results[mode][0])]:
                    r.seed = seed
                    results[mode].append(r)
            elif mode in (*LEARNED_MODES, "no-memory"):
                for r in run_memory(world, parts, cfg, mode, seed, llm, progress):
                    results.setdefault(r.name, []).append(r)
            elif mode == "no-llm" and "soft-q" in cfg.modes and cfg.llm_fraction == 0.0:
                continue  # produced by the soft-q run
            elif mode == "no-llm":
                for r in run_memory(world, parts, cfg, "soft-q", seed, None, progress):
                    r.name = "no-llm"
                    results.setdefault("no-llm", []).append(r)
            elif mode in BASELINES and seed == cfg.seeds[0]:
                results[mode] = [run_baseline(world, parts, cfg, mode, split)]
    peers = [m for m in cfg.modes if m in RECBOLE_PEERS]
    if peers:
        results.update(run_peers(world, parts, cfg, split, peers))
    return RunOutput(results, world, parts, split, name)


def compare_methods(
    results: dict[str, list[MethodResult]], reference: str = "soft-q"
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Means with bootstrap CIs over the test rows and paired CIs against `reference`
    (`training.stats.compare`); a method with several seeds enters with its per-row mean."""
    from training.stats import compare, row_metrics, seed_mean

    rows = {
        m: seed_mean([row_metrics(r.decisions) for r in rs])
        for m, rs in results.items()
        if rs and rs[0].decisions
    }
    return compare(rows, reference)


def train(
    cfg: TrainConfig, progress: Progress | None = None, memory_runner: MemoryRunner | None = None
) -> TrainResult:
    """Run the configured methods, evaluate, log to MLflow, register soft-q as `champion`
    (`memory_runner`: see `run_methods`)."""
    from training.plots import plot_comparison, plot_learning_curves
    from training.report import aggregate, markdown_table
    from training.tracking import Tracker, TrackingConfig

    t0 = time.perf_counter()
    run = run_methods(cfg, progress, memory_runner)
    results, name = run.results, run.name
    per_seed = {m: [r.metrics for r in rs] for m, rs in results.items()}
    # learning curves of the methods that train (a baseline has none: its flat line would be an
    # evaluation reward on a training-reward axis)
    curves = {
        m: [r.curve for r in rs]
        for m, rs in results.items()
        if rs[0].curve and m in (*LLM_MODES, "no-llm")
    }
    metrics = {m: aggregate_seeds(v) for m, v in per_seed.items()}
    summary_ci, paired = compare_methods(results)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if curves:
        shown = {m: c for m, c in curves.items() if m != "no-llm" or "soft-q" not in curves}
        paths["learning_curve"] = plot_learning_curves(
            shown,
            out / "learning_curve.png",
            title="Validation NDCG@10 after each training pass",
            ylabel="validation NDCG@10",
        )
    paths["comparison"] = plot_comparison(
        {m: [s["ndcg@10"] for s in v] for m, v in per_seed.items()},
        out / "comparison.png",
        title="NDCG@10 on every test row (95% bootstrap CI)",
        ci={m: v["ndcg@10_ci"] for m, v in summary_ci.items()},
    )
    summary = aggregate(per_seed)
    cols = ["hr@5", "hr@10", "hr@20", "ndcg@10", "mrr", "reward_per_decision", "coverage@10"]
    table = markdown_table(summary, cols)
    paths["table"] = out / "metrics.md"
    paths["table"].write_text(table)
    paths["config"] = out / "config.json"
    paths["config"].write_text(json.dumps(_jsonable(cfg), indent=2, ensure_ascii=False))
    result = TrainResult(
        metrics,
        curves,
        per_seed,
        paths,
        dataset=name,
        summary=summary_ci,
        paired=paired,
        info={m: [r.info for r in rs] for m, rs in results.items()},
    )
    tcfg = TrackingConfig(uri=cfg.tracking_uri, experiment=cfg.experiment)
    with Tracker(tcfg, run_name=f"replay-{name}", tags={"dataset": name}) as tr:
        tr.log_params(_jsonable(cfg))
        for m, rs in results.items():
            for r in rs[:1]:
                for step, lm in enumerate(r.learn[:: max(1, len(r.learn) // 200)]):
                    tr.log_metrics(lm, step=step, namespace=f"train/{m}")
            for it, v in enumerate(np.mean(curves.get(m, [[]]), axis=0).tolist()):
                tr.log_metrics({"reward_per_decision": v}, step=it, namespace=f"iter/{m}")
        for m, ms in metrics.items():
            tr.log_metrics(ms, namespace=f"eval/{m}")
        for m, v in summary_ci.items():
            lo, hi = v["ndcg@10_ci"]
            tr.log_metrics({"ndcg@10_ci_lo": lo, "ndcg@10_ci_hi": hi}, namespace=f"ci/{m}")
        for m, v in paired.items():
            lo, hi = v["ci"]
            tr.log_metrics(
                {"diff": v["diff"], "ci_lo": lo, "ci_hi": hi}, namespace=f"paired/soft-q-vs-{m}"
            )
        for p in paths.values():
            tr.log_artifact(p)
        rows = [{"method": m, **v} for m, v in metrics.items()]
        tr.log_table(rows, "metrics", markdown=table)
        result.run_id = tr.run_id
        if cfg.register and "soft-q" in results:
            bundle = build_bundle(results["soft-q"][0], run.parts.served, cfg, name)
            # the served model names the run that trained it (the /ui dashboard shows it)
            bundle.meta["mlflow_run_id"] = tr.run_id
            bundle.meta["mlflow_experiment_id"] = tr.experiment_id
            mdir = bundle.save(out / "model")
            paths["model"] = mdir
            reg = tr.register_model(mdir, cfg.register_name, alias="champion")
            result.model_version = reg.version
    result.elapsed_s = time.perf_counter() - t0
    return result

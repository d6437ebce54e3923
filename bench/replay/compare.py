"""`compare(cfg) -> CompareResult`: the fitted policy against the other methods, same rows.

`training.fit.fit` trains and registers the soft-q policy (the product); this module runs every
other configured method and seed on the same prepared replay, scores them on the same test
rows, and reports means with bootstrap CIs and paired CIs against soft-q, as one MLflow run
(the fit logs into it) with plots and a table. `memento train` is fit + this comparison.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.replay.config import ABLATIONS, BASELINES, LLM_MODES, RECBOLE_PEERS, CompareConfig
from bench.replay.methods import run_baseline, run_peers
from bench.replay.protocol import split_sha256
from training.config import LEARNED_MODES
from training.evaluate import aggregate_seeds
from training.fit import POLICY, FitResult, MemoryRunner, fit, log_method
from training.modes import MethodResult, run_memory_mode
from training.prepare import Prepared, prepare
from training.replay_env import SplitParts
from training.replay_world import ReplayWorld

__all__ = ["CompareResult", "RunOutput", "compare", "compare_methods", "run_methods"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass
class CompareResult:
    """What a comparison run produced."""

    metrics: dict[str, dict[str, float]]
    """{method: metric mean over seeds (+ `<metric>_std`)}."""
    curves: dict[str, list[list[float]]]
    """{method: [per-seed validation NDCG@10 by pass]}."""
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
    split_sha256: dict[str, str] = field(default_factory=dict)
    """sha256 of each split frame (`bench.replay.protocol.split_sha256`, docs/protocol.md)."""


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
    fitted: FitResult | None = None
    """The fitted (shipped) soft-q policy, when soft-q ran and `fit_policy` asked for it."""


def run_methods(
    cfg: CompareConfig,
    progress: Progress | None = None,
    memory_runner: MemoryRunner | None = None,
    fit_policy: Callable[[Prepared, Any], FitResult] | None = None,
    prepared: Prepared | None = None,
) -> RunOutput:
    """Every configured method and seed on one prepared replay; `memory_runner` (default
    `run_memory_mode`) runs the case-memory modes, each with its own model
    (`CompareConfig.train_of`); `fit_policy(prepared, llm)` produces soft-q's first seed (the
    shipped model) instead of the memory runner; `prepared`: the replay (default:
    `training.prepare.prepare(cfg.train)`)."""
    import torch

    run_memory = memory_runner or run_memory_mode
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    prep = prepared or prepare(cfg.train)
    world, parts = prep.world, prep.parts
    llm = None
    if cfg.use_llm and any(m in LLM_MODES for m in cfg.modes):
        from recsys.llm.ranker import LLMRanker

        llm = LLMRanker.from_name(cfg.llm_model)
    results: dict[str, list[MethodResult]] = {}
    fitted: FitResult | None = None
    seq = cfg.policy == "seq"
    for seed in cfg.seeds:
        for mode in cfg.modes:
            if mode in ABLATIONS and seed not in (cfg.ablation_seeds or cfg.seeds):
                continue
            if (mode == POLICY and seq) or (mode == "items-scorer" and not seq):
                continue  # done above / the items scorer is soft-q itself
            if mode in ("non-parametric", "no-memory") and seed != cfg.seeds[0] and llm is None:
                # nothing learned or sampled: every seed gives the same lists
                for r in [copy.copy(results[mode][0])]:
                    r.seed = seed
                    results[mode].append(r)
            elif mode == POLICY and seed == cfg.seeds[0] and fit_policy is not None:
                fitted = fit_policy(prep, llm)
                for r in fitted.results:
                    results.setdefault(r.name, []).append(r)
            elif mode == "items-scorer":
                tc = cfg.train_of(POLICY, seed)
                for r in run_memory(world, parts, tc, POLICY, seed, None, progress):
                    if r.name == POLICY:
                        r.name = mode
                        results.setdefault(mode, []).append(r)
            elif mode in (*LEARNED_MODES, "no-memory"):
                tc = cfg.train_of(mode, seed)
                for r in run_memory(world, parts, tc, mode, seed, llm, progress):
                    results.setdefault(r.name, []).append(r)
            elif mode == "no-llm" and POLICY in cfg.modes and cfg.train.llm_fraction == 0.0:
                continue  # produced by the soft-q run
            elif mode == "no-llm":
                tc = cfg.train_of(POLICY, seed)
                for r in run_memory(world, parts, tc, POLICY, seed, None, progress):
                    r.name = "no-llm"
                    results.setdefault("no-llm", []).append(r)
            elif mode in BASELINES and seed == cfg.seeds[0]:
                results[mode] = [run_baseline(world, parts, cfg.train, mode, prep.split)]
    if seq and POLICY in cfg.modes:
        # soft-q and its ablations, one fitted model per seed (last: its fits may still be
        # running in other processes, `bench.replay.seq_method`)
        from bench.replay.seq_method import run_seq_policy, split_key

        key = split_key(prep.name, cfg.train, prep.split)
        model = Path(cfg.train.output_dir) / "model"
        tuned = {m: rs[0].info["setting"] for m, rs in results.items()
                 if rs and "setting" in rs[0].info}  # fmt: skip
        results.update(
            run_seq_policy(
                world, parts.served, cfg.train, prep.split, key, cfg.seeds, cfg.seq, model, tuned
            )
        )
    peers = [m for m in cfg.modes if m in RECBOLE_PEERS]
    if peers:
        results.update(run_peers(world, parts, cfg, prep.split, peers))
    return RunOutput(results, world, parts, prep.split, prep.name, fitted)


def compare_methods(
    results: dict[str, list[MethodResult]], reference: str = POLICY
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Means with two-level bootstrap CIs (seeds, rows) and paired CIs against `reference`
    (`bench.stats.compare`); the primary comparison is with the best validation peer."""
    from bench.replay.tuning import best_validation_peer
    from bench.stats import compare as paired_compare
    from bench.stats import row_metrics

    rows = {
        m: [row_metrics(r.decisions) for r in rs]
        for m, rs in results.items()
        if rs and rs[0].decisions
    }
    primary = best_validation_peer({m: rs[0].info for m, rs in results.items() if rs})
    return paired_compare(rows, reference, primary)


def _plots(
    cfg: CompareConfig,
    curves: dict[str, list[list[float]]],
    per_seed: dict[str, list[dict[str, float]]],
    summary_ci: dict[str, dict[str, Any]],
) -> dict[str, Path]:
    from bench.plots import plot_comparison, plot_learning_curves
    from bench.report import aggregate, markdown_table
    from tracking.registry import jsonable

    out = Path(cfg.train.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if curves:
        shown = {m: c for m, c in curves.items() if m != "no-llm" or POLICY not in curves}
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
    cols = ["hr@5", "hr@10", "hr@20", "ndcg@10", "mrr", "reward_per_decision", "coverage@10"]
    paths["table"] = out / "metrics.md"
    paths["table"].write_text(markdown_table(aggregate(per_seed), cols))
    paths["config"] = out / "config.json"
    paths["config"].write_text(json.dumps(jsonable(cfg), indent=2, ensure_ascii=False))
    return paths


def compare(
    cfg: CompareConfig,
    progress: Progress | None = None,
    memory_runner: MemoryRunner | None = None,
) -> CompareResult:
    """Fit soft-q (registered as `champion` when `cfg.train.register`), run the configured
    methods, evaluate every one on the same test rows, log the comparison to one MLflow run."""
    from tracking.registry import Tracker, TrackingConfig

    t0 = time.perf_counter()
    tc = cfg.train
    tcfg = TrackingConfig(uri=tc.tracking_uri, experiment=tc.experiment)
    prep = prepare(tc)
    with Tracker(tcfg, run_name=f"replay-{prep.name}", tags={"dataset": prep.name}) as tr:

        def fit_policy(prep: Prepared, llm: Any) -> FitResult:
            fc = cfg.train_of(POLICY, cfg.seeds[0])
            return fit(fc, progress, memory_runner, prepared=prep, llm=llm, tracker=tr)

        run = run_methods(cfg, progress, memory_runner, fit_policy, prep)
        results, name = run.results, run.name
        per_seed = {m: [r.metrics for r in rs] for m, rs in results.items()}
        # learning curves of the methods that train (a baseline has none)
        curves = {
            m: [r.curve for r in rs]
            for m, rs in results.items()
            if rs[0].curve and m in (*LLM_MODES, "no-llm", "items-scorer")
        }
        metrics = {m: aggregate_seeds(v) for m, v in per_seed.items()}
        summary_ci, paired = compare_methods(results)
        paths = _plots(cfg, curves, per_seed, summary_ci)
        result = CompareResult(
            metrics,
            curves,
            per_seed,
            paths,
            dataset=name,
            summary=summary_ci,
            paired=paired,
            info={m: [r.info for r in rs] for m, rs in results.items()},
            split_sha256=split_sha256(run.split),
        )
        _log_run(tr, cfg, results, curves, metrics, summary_ci, paired, paths)
        result.run_id = tr.run_id
        if run.fitted is not None:
            result.paths.update(run.fitted.paths)
            result.model_version = run.fitted.model_version
    result.elapsed_s = time.perf_counter() - t0
    return result


def _log_run(
    tr: Any,
    cfg: CompareConfig,
    results: dict[str, list[MethodResult]],
    curves: dict[str, list[list[float]]],
    metrics: dict[str, dict[str, float]],
    summary_ci: dict[str, dict[str, Any]],
    paired: dict[str, dict[str, Any]],
    paths: dict[str, Path],
) -> None:
    """Params, per-method learning and evaluation metrics, CIs and artifacts of one run."""
    from tracking.registry import jsonable

    tr.log_params(jsonable(cfg))
    for m, rs in results.items():
        log_method(tr, rs[0], np.mean(curves.get(m, [[]]), axis=0).tolist())
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
    tr.log_table(rows, "metrics", markdown=paths["table"].read_text())

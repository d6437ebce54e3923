"""Every method through one harness and one split.

- `soft-q`, `parametric-ce`, `non-parametric`, `tabular`: a `recsys.rl.learner.Learner` of that
  mode chooses cases; `iterations` training passes, then a frozen (and optionally
  prequential) evaluation pass with the LLM in the ranking blend.
- `no-memory`: the LLM blend without cases (candidates = state neighbours + popularity).
- `no-llm`: the trained soft-q policy ranking without the LLM (same passes as soft-q: with
  `llm_fraction` = 0 soft-q's training never uses the LLM, so its learner is reused).
- `popularity`, `item-knn`: `training.baselines` fitted on the training rows.
- `causal-popularity`: (time-decayed) counts of the events before the decision, the list the
  memory modes give cold users (their share of a leave-last-out test is large: compare
  against this too).
- `recbole-bpr`, `recbole-sasrec`: `training.peers.recbole_runner` on the identical split
  (full ranking over all items, their own metric code; no reward, no curve).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from recsys.llm.protocol import FrozenLLM
from recsys.loop import MemoryLoop
from recsys.rec.recommender import Recommender
from recsys.rl.learner import Learner
from training.config import LEARNED_MODES, TrainConfig
from training.evaluate import eval_decisions, list_metrics, train_decisions
from training.replay_env import Decision, PassResult, ReplayParts, SplitParts, run_pass
from training.replay_world import ReplayWorld

__all__ = ["MethodResult", "recommender_for", "run_baseline", "run_memory_mode", "run_peers"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
"""(task label, advance, total) callback for progress bars."""


@dataclass
class MethodResult:
    """One method, one seed."""

    name: str
    """Method name."""
    seed: int
    """Seed."""
    metrics: dict[str, float]
    """Frozen evaluation metrics (prequential ones prefixed `preq_`)."""
    curve: list[float] = field(default_factory=list)
    """Training reward per decision, one value per iteration."""
    learn: list[dict[str, float]] = field(default_factory=list)
    """Learner metrics of every gradient step (all iterations)."""
    learner: Learner | None = None
    """The trained learner (learned modes)."""
    decisions: list[Decision] = field(default_factory=list)
    """The evaluated decisions (frozen evaluation)."""


def _learner(cfg: TrainConfig, mode: str, seed: int, dim: int) -> Learner:
    lc = dataclasses.replace(
        cfg.learner,
        mode=mode,  # type: ignore[arg-type]
        seed=seed,
        policy=dataclasses.replace(cfg.learner.policy, num_chosen=cfg.num_chosen),
    )
    return Learner(lc, dim, dim)


def recommender_for(
    parts: ReplayParts, cfg: TrainConfig, learner: Learner | None, llm: FrozenLLM | None
) -> Recommender:
    """The one pipeline over a set of parts (no learner: the no-memory method)."""
    loop = MemoryLoop(learner, cfg.updates_per_transition) if learner is not None else None
    return Recommender(
        cfg.recommend_config(),
        cfg.state,
        parts.items,
        parts.bank,
        parts.popularity,
        loop,
        parts.cooc,
        llm,
    )


def _tick(progress: Progress | None, label: str, total: int) -> Callable[[int], None] | None:
    if progress is None:
        return None
    return lambda _j: progress(label, 1, total)


def run_memory_mode(
    world: ReplayWorld,
    parts: SplitParts,
    cfg: TrainConfig,
    mode: str,
    seed: int,
    llm: FrozenLLM | None,
    progress: Progress | None = None,
) -> list[MethodResult]:
    """Train (iterations) and evaluate a case-memory mode or `no-memory`; soft-q also
    yields `no-llm` (its policy evaluated without the LLM)."""
    learner = _learner(cfg, mode, seed, world.dim) if mode in LEARNED_MODES else None
    rec = recommender_for(parts.train, cfg, learner, llm)
    rng = np.random.default_rng(seed)
    train_idx = train_decisions(world, cfg.max_train_decisions, seed)
    test_idx = eval_decisions(world, cfg.max_eval_decisions, 0)
    curve: list[float] = []
    learn: list[dict[str, float]] = []
    # no learner and no LLM draw: every pass is identical, so one pass stands for all
    static = learner is None and (llm is None or cfg.llm_fraction == 0.0)
    for it in range(cfg.iterations):
        label = f"{mode} s{seed} iter {it + 1}"
        if static and curve:
            curve.append(curve[-1])
            continue
        res: PassResult = run_pass(
            world,
            rec,
            cfg,
            train_idx,
            learn=learner is not None,
            greedy=False,
            llm_fraction=cfg.llm_fraction,
            rng=rng,
            on_decision=_tick(progress, label, len(train_idx)),
        )
        curve.append(res.reward_per_decision)
        learn.extend(res.learn)
        log.info("%s: reward/decision %.4f, %d updates", label, curve[-1], len(res.learn))
    rec = recommender_for(parts.served, cfg, learner, llm)  # evaluation: what is served
    results: list[MethodResult] = []
    variants = [(mode, llm)]
    if mode == "soft-q" and cfg.llm_fraction == 0.0:
        variants.append(("no-llm", None))
    for name, model in variants:
        rec.set_llm(model)
        ev = run_pass(
            world,
            rec,
            cfg,
            test_idx,
            learn=False,
            greedy=True,
            llm_fraction=1.0,
            rng=rng,
            on_decision=_tick(progress, f"{name} s{seed} eval", len(test_idx)),
        )
        metrics = list_metrics(world, ev.decisions)
        results.append(MethodResult(name, seed, metrics, list(curve), learn, learner, ev.decisions))
    rec.set_llm(llm)
    if cfg.prequential and learner is not None:
        # learning continues on the test decisions, on a copy: the evaluated learner ships
        pq_rec = recommender_for(parts.served, cfg, copy.deepcopy(learner), llm)
        pq = run_pass(world, pq_rec, cfg, test_idx, True, True, 1.0, rng, training=False)
        results[0].metrics.update(
            {f"preq_{k}": v for k, v in list_metrics(world, pq.decisions).items()}
        )
    return results


def _baseline_decisions(
    world: ReplayWorld, cfg: TrainConfig, rank: Callable[[int, list[int], set[int]], list[int]]
) -> list[Decision]:
    """Score `rank(event, history items, exclude)` lists on the evaluated decisions (history =
    the user's events strictly before the decision)."""
    decisions = []
    for j in eval_decisions(world, cfg.max_eval_decisions, 0):
        hist = [int(world.item[e]) for e in world.history[j]]
        items = rank(int(j), hist, set(hist) if cfg.exclude_seen else set())
        r, _ = world.list_reward(int(j), items[: cfg.reward_top], cfg.reward)
        decisions.append(
            Decision(int(j), items, int(world.item[j]), r, False, not world.has_history[j])
        )
    return decisions


def _causal_popularity(world: ReplayWorld, parts: ReplayParts, cfg: TrainConfig) -> list[Decision]:
    """The list every memory mode gives a cold user: the served parts' popularity (events
    strictly before the decision, `recsys.rec.popularity.Popularity`)."""

    def rank(j: int, _hist: list[int], exclude: set[int]) -> list[int]:
        rows = {world.item_index[i] for i in exclude}
        top = parts.popularity.top(cfg.top_n, float(world.ts[j]), rows)
        return [int(world.item_ids[r]) for r in top]

    return _baseline_decisions(world, cfg, rank)


def run_baseline(
    world: ReplayWorld, parts: SplitParts, cfg: TrainConfig, name: str, train_rows: pl.DataFrame
) -> MethodResult:
    """popularity / item-knn fitted on the training rows, ranked for the evaluated decisions;
    causal-popularity counts every event before each decision (the memory modes' cold-user
    list)."""
    from training.baselines import ItemKNN, Popularity

    if name == "causal-popularity":
        decisions = _causal_popularity(world, parts.served, cfg)
    else:
        model: Any = (
            Popularity(world.item_ids) if name == "popularity" else ItemKNN(catalog=world.item_ids)
        )
        model.fit(train_rows)
        decisions = _baseline_decisions(
            world, cfg, lambda j, hist, ex: model.rank(int(world.user[j]), hist, cfg.top_n, ex)
        )
    metrics = list_metrics(world, decisions)
    return MethodResult(name, 0, metrics, [metrics["reward_per_decision"]] * cfg.iterations)


def run_peers(
    split: Any, cfg: TrainConfig, names: list[str], seeds: tuple[int, ...]
) -> dict[str, dict[str, Any]]:
    """RecBole BPR / SASRec on the identical split; {name: {"ndcg@10", "hr@10", "mrr", ...}}."""
    import hashlib
    import re

    from data.paths import cache_dir
    from training.peers.recbole_runner import run_recbole_peers

    # one folder per dataset: concurrent benchmarks must not share RecBole's data files
    tag = re.sub(r"[^A-Za-z0-9_.-]", "_", cfg.data)[:40]
    tag += "-" + hashlib.sha1(cfg.data.encode()).hexdigest()[:8]

    models = [{"recbole-bpr": "BPR", "recbole-sasrec": "SASRec"}[n] for n in names]
    out: dict[str, dict[str, Any]] = {}
    for m in models:
        own = cfg.sasrec_seeds if m == "SASRec" and cfg.sasrec_seeds is not None else seeds
        epochs = cfg.sasrec_epochs if m == "SASRec" and cfg.sasrec_epochs else cfg.peers_epochs
        out.update(
            run_recbole_peers(
                split.train,
                split.valid,
                split.test,
                models=(m,),
                seeds=own,
                epochs=epochs,
                workdir=cache_dir() / "memento" / "recbole-replay" / tag,
            )
        )
    return {f"recbole-{m.lower()}": out[m] for m in models}

"""Every method through one harness and one split.

- `soft-q`, `parametric-ce`, `non-parametric`, `tabular`: a `recsys.rl.learner.Learner` of that
  mode chooses cases; `iterations` training passes, then a frozen (and optionally
  prequential) evaluation pass with the LLM in the ranking blend.
- `no-memory`: the LLM blend without cases (candidates = state neighbours + popularity).
- `no-llm`: the trained soft-q policy ranking without the LLM (same passes as soft-q: with
  `llm_fraction` = 0 soft-q's training never uses the LLM, so its learner is reused).
- `popularity`, `item-knn`: `bench.replay.baselines` fitted on the training rows.
- `causal-popularity`: (time-decayed) counts of the events before the decision, the list the
  memory modes give cold users (their share of a leave-last-out test is large: compare
  against this too).
- `recbole-bpr`, `recbole-sasrec`: `bench.peers.recbole_runner` on the identical split
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

from recsys.llm.protocol import FrozenLLM
from recsys.loop import MemoryLoop
from recsys.rec.recommender import Recommender
from recsys.rl.learner import Learner
from training.config import LEARNED_MODES, TrainConfig
from training.evaluate import (
    eval_decisions,
    list_metrics,
    train_decisions,
    validation_decisions,
)
from training.replay_env import Decision, PassResult, ReplayParts, SplitParts, run_pass
from training.replay_world import ReplayWorld

__all__ = [
    "MethodResult",
    "recommender_for",
    "recommender_over",
    "run_memory_mode",
]

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
    """Validation NDCG@10 after each training pass (the learning curve)."""
    learn: list[dict[str, float]] = field(default_factory=list)
    """Learner metrics of every gradient step (all iterations)."""
    learner: Learner | None = None
    """The trained learner (learned modes)."""
    decisions: list[Decision] = field(default_factory=list)
    """The evaluated decisions (frozen evaluation)."""
    info: dict[str, Any] = field(default_factory=dict)
    """Method-specific facts (a peer's epochs and validation curve, EASE's lambda)."""


def _learner(cfg: TrainConfig, mode: str, seed: int, dim: int) -> Learner:
    """A fresh learner of the mode's model (`cfg.core.learner`: its scorer-dependent fields
    already derived, `recsys.presets.derive`) with the mode's algorithm and `seed`."""
    lc = dataclasses.replace(
        cfg.core.learner,
        mode="soft-q" if mode.startswith("soft-q") else mode,  # type: ignore[arg-type]
        seed=seed,
    )
    return Learner(lc, dim, dim)


def recommender_for(
    parts: ReplayParts,
    cfg: TrainConfig,
    learner: Learner | None,
    llm: FrozenLLM | None,
    mode: str = "soft-q",
) -> Recommender:
    """The one pipeline (the model `cfg.core`; a comparison gives each mode its own,
    `bench.replay.config.CompareConfig.core_of`) over a set of parts (no learner: the
    no-memory method)."""
    loop = MemoryLoop(learner, cfg.updates_per_transition) if learner is not None else None
    return recommender_over(parts, cfg, loop, llm, mode)


def recommender_over(
    parts: ReplayParts,
    cfg: TrainConfig,
    loop: MemoryLoop | None,
    llm: FrozenLLM | None,
    mode: str = "soft-q",
) -> Recommender:
    """The one pipeline over a set of parts with a given memory loop (the distributed actors'
    forwarding loop)."""
    return Recommender(
        cfg.core.recommend,
        cfg.core.state,
        parts.items,
        parts.bank,
        parts.popularity,
        loop,
        parts.cooc,
        llm,
        cfg.core.credit,
    )


def _tick(progress: Progress | None, label: str, total: int) -> Callable[[int], None] | None:
    if progress is None:
        return None
    return lambda _j: progress(label, 1, total)


TrainPass = Callable[[np.ndarray, Learner, str], tuple[float, list[dict[str, float]]]]
"""One training pass over the given decisions that updates the learner in place; returns
(reward per decision, learner metrics). `training.distributed` runs it on Ray actors."""


def run_memory_mode(
    world: ReplayWorld,
    parts: SplitParts,
    cfg: TrainConfig,
    mode: str,
    seed: int,
    llm: FrozenLLM | None,
    progress: Progress | None = None,
    train_pass: TrainPass | None = None,
    info: dict[str, Any] | None = None,
) -> list[MethodResult]:
    """Train (iterations) and evaluate a case-memory mode or `no-memory`; soft-q also
    yields `no-llm` (its policy evaluated without the LLM). `train_pass` replaces the
    in-process training pass of a learned mode (validation, the kept pass and the test rows
    stay here); `info` is added to every result's `info`."""
    learner = _learner(cfg, mode, seed, world.dim) if mode in LEARNED_MODES else None
    rec = recommender_for(parts.train, cfg, learner, llm, mode)
    rng = np.random.default_rng(seed)
    valid_idx = validation_decisions(world, cfg.max_valid_decisions)
    train_idx = train_decisions(world, cfg.max_train_decisions, seed, without=valid_idx)
    test_idx = eval_decisions(world, cfg.max_eval_decisions, 0)
    curve: list[float] = []
    train_reward: list[float] = []
    learn: list[dict[str, float]] = []
    # no learner and no LLM draw: every pass is identical, so one pass stands for all
    best: tuple[float, int, dict[str, Any] | None] = (-1.0, 0, None)
    static = learner is None or mode == "non-parametric"
    static = static and (llm is None or cfg.llm_fraction == 0.0)
    for it in range(cfg.iterations):
        label = f"{mode} s{seed} pass {it + 1}"
        if static and curve:
            curve.append(curve[-1])
            train_reward.append(train_reward[-1])
            continue
        if train_pass is not None and learner is not None:
            reward, learned = train_pass(train_idx, learner, label)
        else:
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
            reward, learned = res.reward_per_decision, res.learn
        train_reward.append(reward)
        learn.extend(learned)
        if len(valid_idx):
            val = run_pass(world, rec, cfg, valid_idx, False, True, 0.0, rng, training=True)
            curve.append(list_metrics(world, val.decisions)["ndcg@10"])
            if learner is not None and cfg.keep_best_pass and curve[-1] > best[0]:
                best = (curve[-1], it + 1, copy.deepcopy(learner.state_dict()))
        log.info(
            "%s: training reward/decision %.4f, validation NDCG@10 %s, %d updates",
            label,
            train_reward[-1],
            f"{curve[-1]:.4f}" if curve else "-",
            len(learned),
        )
    if learner is not None and best[2] is not None:  # early stopping on validation NDCG@10
        learner.load_state_dict(best[2])
    rec = recommender_for(parts.served, cfg, learner, llm, mode)  # evaluation: what is served
    results: list[MethodResult] = []
    variants = [(mode, llm)]
    if mode == "soft-q" and llm is not None and cfg.llm_fraction == 0.0:
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
        res_m = MethodResult(name, seed, metrics, list(curve), learn, learner, ev.decisions)
        res_m.info = {
            "train_reward": list(train_reward),
            "valid_rows": len(valid_idx),
            "kept_pass": best[1] or len(curve),
            **(info or {}),
        }
        results.append(res_m)
    rec.set_llm(llm)
    if cfg.prequential and learner is not None:
        # learning continues on the test decisions, on a copy: the evaluated learner ships
        pq_rec = recommender_for(parts.served, cfg, copy.deepcopy(learner), llm, mode)
        pq = run_pass(world, pq_rec, cfg, test_idx, True, True, 1.0, rng, training=False)
        results[0].metrics.update(
            {f"preq_{k}": v for k, v in list_metrics(world, pq.decisions).items()}
        )
    return results

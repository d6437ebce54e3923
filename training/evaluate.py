"""Evaluation on the held-out period: metrics of produced lists, decision subsets, seeds.

Frozen evaluation: the learner does not learn during the test replay (the case bank still
fills in time order, past cases only). Prequential: the same replay with learning on (each
test decision's transition is learned from once its reward window has closed).
Metrics (`training.metrics.summarize`): HR@5/10/20, NDCG@10, MRR, coverage@10 and reward per
decision, computed on the produced top-N list of every evaluated decision (cold decisions
included: they get the causal popularity list).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

import numpy as np

from training.metrics import summarize
from training.replay_env import Decision
from training.replay_world import ReplayWorld

__all__ = [
    "aggregate_seeds",
    "eval_decisions",
    "list_metrics",
    "train_decisions",
    "validation_decisions",
]


def eval_decisions(world: ReplayWorld, cap: int, seed: int = 0) -> np.ndarray:
    """Held-out event indices to evaluate: all, or a fixed seeded subset of `cap` (shared by
    every method and seed so the comparison is on identical decisions)."""
    idx = np.flatnonzero(world.held_out)
    if cap and len(idx) > cap:
        idx = np.sort(np.random.default_rng([seed, 17]).choice(idx, cap, replace=False))
    return idx


def validation_decisions(world: ReplayWorld, cap: int = 0) -> np.ndarray:
    """Each user's latest non-held-out event that has history (under leave-last-out: the
    validation row), a fixed subset of `cap` when capped. The learning curve is measured on
    them and training passes leave them out."""
    last: dict[int, int] = {}
    for e in np.flatnonzero(~world.held_out & world.has_history).tolist():
        last[int(world.user[e])] = e
    idx = np.array(sorted(last.values()), np.int64)
    if cap and len(idx) > cap:
        idx = np.sort(np.random.default_rng(23).choice(idx, cap, replace=False))
    return idx


def train_decisions(
    world: ReplayWorld, cap: int, seed: int = 0, without: np.ndarray | None = None
) -> np.ndarray:
    """Training decision points (non-held-out events with user history, minus `without`),
    capped by a fixed seeded subset."""
    keep = ~world.held_out & world.has_history
    if without is not None:
        keep[without] = False
    idx = np.flatnonzero(keep)
    if cap and len(idx) > cap:
        idx = np.sort(np.random.default_rng([seed, 29]).choice(idx, cap, replace=False))
    return idx


def list_metrics(world: ReplayWorld, decisions: Sequence[Decision]) -> dict[str, float]:
    """HR@5/10/20, NDCG@10, MRR, coverage@10, reward per decision of these decisions; with
    an item pool, `pool_recall` (share of all rows whose target is in it) and `pool_size`."""
    ranked = [d.items for d in decisions]
    targets = [d.target for d in decisions]
    out = summarize(ranked, targets, len(world.item_ids), [d.reward for d in decisions])
    warm = [d for d in decisions if not d.cold]
    if warm:
        w = summarize([d.items for d in warm], [d.target for d in warm], len(world.item_ids))
        out["warm_ndcg@10"] = w["ndcg@10"]
        out["warm_reward_per_decision"] = float(np.mean([d.reward for d in warm]))
    pooled = [d for d in decisions if d.in_pool is not None]
    if pooled:  # an item-choosing scorer: share of rows whose target Q could choose at all
        out["pool_recall"] = float(np.mean([bool(d.in_pool) for d in decisions]))
        out["pool_size"] = float(np.mean([d.pool_size for d in pooled]))
    out["decisions"] = float(len(decisions))
    out["llm_share"] = float(np.mean([d.used_llm for d in decisions])) if decisions else 0.0
    return out


def aggregate_seeds(per_seed: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each metric over seeds plus `<metric>_std` (sample std, 0 for one seed)."""
    out: dict[str, float] = {}
    keys = list(dict.fromkeys(k for m in per_seed for k in m))
    for k in keys:
        vals = [float(m[k]) for m in per_seed if k in m]
        out[k] = statistics.fmean(vals)
        out[f"{k}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return out

"""Figures of a benchmark pass: accuracy with a bootstrap CI, pass@k (unbiased estimator),
judge labels, effort, and paired differences between memory modes on the same tasks."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from agent.memory import MemoryMode
from recsys.stats import bootstrap_ci, paired_ci

__all__ = ["MODES", "paired_modes", "pass_at_k", "per_task_reward", "summarize_mode"]

MODES: tuple[MemoryMode, ...] = ("soft-q", "non-parametric", "no-memory")
"""The memory modes, in report order."""


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one task from n samples with c correct (Chen et al., 2021)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _correct(rec: dict[str, Any]) -> bool:
    """Solved as the benchmark counts it: the SimpleQA judge's CORRECT label where it graded
    the answer, else an exact match (GAIA's quasi-exact match for GAIA)."""
    if rec.get("judge_label") in ("CORRECT", "INCORRECT", "NOT_ATTEMPTED", "UNPARSED"):
        return bool(rec["judge_label"] == "CORRECT")
    return float(rec["em"]) >= 1.0


def summarize_mode(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy (EM, F1, reward with CI, pass@k) and effort figures of one pass. Accuracy
    figures use each task's first sample; pass@k uses all its samples."""
    first = [r for r in records if int(r.get("sample", 0)) == 0]
    n = len(first)
    if n == 0:
        return {"n": 0}

    def mean(key: Callable[[dict[str, Any]], float]) -> float:
        return round(sum(key(r) for r in first) / n, 4)

    rewards = np.array([float(r["reward"]) for r in first])
    lo, hi = bootstrap_ci(rewards)
    out: dict[str, Any] = {
        "n": n,
        "em": mean(lambda r: r["em"]),
        "f1": mean(lambda r: r["f1"]),
        "reward": round(float(rewards.mean()), 4),
        "reward_ci": [round(lo, 4), round(hi, 4)],
        "mean_tool_calls": mean(lambda r: sum(s["tool_calls"] for s in r["steps"])),
        "mean_chosen_cases": mean(lambda r: len(r["chosen_ids"])),
        "followed_rate": _followed_rate(first),
        "mean_policy_entropy": _mean_entropy(first),
        "plan_fallbacks": int(sum(r["plan_fallbacks"] for r in first)),
        "plan_parse_errors": int(
            sum(len(c.get("parse_errors", [])) for r in first for c in r.get("planner_calls", []))
        ),
        "mean_duration_s": mean(lambda r: r["duration_s"]),
    }
    labels = [str(r["judge_label"]) for r in first if r.get("judge_label")]
    if labels:
        out["judge_labels"] = {lab: labels.count(lab) for lab in sorted(set(labels))}
    out.update(_pass_at(records))
    return out


def _followed_rate(records: Sequence[dict[str, Any]]) -> float | None:
    flags = [f for r in records for f in r.get("followed", [])]
    return round(sum(flags) / len(flags), 4) if flags else None


def _mean_entropy(records: Sequence[dict[str, Any]]) -> float | None:
    ents = [r["policy_entropy"] for r in records if r.get("policy_entropy") is not None]
    return round(sum(ents) / len(ents), 4) if ents else None


def _pass_at(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    by_task: dict[str, list[bool]] = {}
    for r in records:
        by_task.setdefault(str(r["task_id"]), []).append(_correct(r))
    n = min(len(v) for v in by_task.values())
    if n < 2:
        return {}
    return {
        f"pass@{k}": round(
            sum(pass_at_k(n, sum(v[:n]), k) for v in by_task.values()) / len(by_task), 4
        )
        for k in range(1, n + 1)
    }


def per_task_reward(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Task id -> mean reward over its samples."""
    acc: dict[str, list[float]] = {}
    for r in records:
        acc.setdefault(str(r["task_id"]), []).append(float(r["reward"]))
    return {k: sum(v) / len(v) for k, v in acc.items()}


def paired_modes(per_mode: dict[str, Sequence[dict[str, Any]]]) -> dict[str, Any]:
    """Paired differences of mean reward between every two modes on the same tasks."""
    names = [m for m in MODES if m in per_mode] + [m for m in per_mode if m not in MODES]
    rows = {m: per_task_reward(per_mode[m]) for m in names}
    out: dict[str, Any] = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ids = sorted(set(rows[a]) & set(rows[b]))
            if not ids:
                continue
            diff, (lo, hi) = paired_ci(
                np.array([rows[a][t] for t in ids]), np.array([rows[b][t] for t in ids])
            )
            out[f"{a} - {b}"] = {"diff": round(diff, 4), "ci": [round(lo, 4), round(hi, 4)]}
    return out

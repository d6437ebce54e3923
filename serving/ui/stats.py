"""`GET /ui/api/stats`: the dashboard's numbers, read from the app's own metrics registry.

Open like `/metrics` (no ids, no case contents). The page polls it and plots each series;
recommend latency is the mean over the `/v1/recommend` histogram since the previous poll
(the page differences `latency_sum` / `latency_count`).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from serving.metrics import ServingMetrics
from serving.recommend_service import RecommendService

router = APIRouter(prefix="/ui/api", include_in_schema=False)


class Stats(BaseModel):
    """One sample of the learning dashboard."""

    ts: float
    ready: bool
    message: str | None = None
    model_version: str | None = None
    loaded_at: float | None = None
    """When this app first served `model_version` (first dashboard poll after a (re)load)."""
    mlflow_run: str | None = None
    bank_size: float | None = None
    queue_depth: float | None = None
    lag_decisions: float | None = None
    """Decisions served between the last applied feedback's acknowledgement and its
    application (`memento_learner_lag_decisions`)."""
    td_loss: float | None = None
    last_reward: float | None = None
    updates: float | None = None
    policy_entropy: float | None = None
    greedy_top1_share: float | None = None
    """Share of the policy's first choices that went to its greedy candidate, since start
    (`memento_policy_top1_greedy_total / memento_policy_top1_total`; None before any)."""
    latency_sum: float = 0.0
    latency_count: float = 0.0


def _samples(metrics: ServingMetrics) -> dict[str, float]:
    """Unlabelled samples by name, plus the `/v1/recommend` latency sum and count."""
    out: dict[str, float] = {"latency_sum": 0.0, "latency_count": 0.0}
    for family in metrics.registry.collect():
        for s in family.samples:
            if not s.labels:
                out[s.name] = s.value
            elif s.labels.get("route") == "/v1/recommend" and s.name.endswith(("_sum", "_count")):
                key = "latency_sum" if s.name.endswith("_sum") else "latency_count"
                out[key] += s.value
    return out


def _share(part: float | None, whole: float | None) -> float | None:
    """part / whole (None without a whole)."""
    return None if not whole or part is None else part / whole


def _provenance(service: RecommendService) -> dict[str, Any]:
    """The served bundle's free provenance (`ModelBundle.meta`), when the core has one."""
    runtime = getattr(service.core, "runtime", None)
    bundle = getattr(runtime, "bundle", None)
    meta = getattr(bundle, "meta", None)
    return meta if isinstance(meta, dict) else {}


@router.get("/stats", response_model=Stats)
def stats(request: Request) -> Stats:
    """Model served, learner and queue numbers, recommend latency totals."""
    now = time.time()
    service: RecommendService | None = getattr(request.app.state, "service", None)
    if service is None:
        return Stats(ts=now, ready=False, message="the recommender core is not loaded")
    s = _samples(request.app.state.metrics)
    version = service.core.model_version
    seen: dict[str, float] = request.app.state.ui_model_seen
    meta = _provenance(service)
    run = meta.get("mlflow_run_id") or meta.get("run_id")
    return Stats(
        ts=now,
        ready=service.not_ready_reason() is None,
        message=service.not_ready_reason(),
        model_version=version,
        loaded_at=seen.setdefault(version, now),
        mlflow_run=str(run) if run else None,
        bank_size=s.get("memento_case_bank_size"),
        queue_depth=s.get("memento_learner_queue_depth"),
        lag_decisions=s.get("memento_learner_lag_decisions"),
        td_loss=s.get("memento_learner_td_loss"),
        last_reward=s.get("memento_learner_last_reward"),
        updates=s.get("memento_learner_updates_total"),
        policy_entropy=s.get("memento_policy_entropy"),
        greedy_top1_share=_share(
            s.get("memento_policy_top1_greedy_total"), s.get("memento_policy_top1_total")
        ),
        latency_sum=s["latency_sum"],
        latency_count=s["latency_count"],
    )

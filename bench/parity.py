"""`memento bench parity`: the offline evaluator and the HTTP service give the same lists.

1. Train (or load) a model on a dataset with the replay (`training.modes.run_memory_mode`, LLM
   off; or, with `ParityConfig.seq`, the learned sequence policy of `bench.replay.seq_method`
   as a `seq`-scorer bundle), evaluate its held-out decisions greedily, and save the evaluated
   model as a bundle.
2. Start the real service (`python -m serving.cli` under uvicorn) on that bundle (as its local
   snapshot; greedy policy; LLM off).
3. Send every evaluated decision as `POST /v1/recommend` with `recent_events` = the decision's
   history and `at` = its time, under a fresh user id, and compare the item lists.

Prints `{"decisions": N, "identical_lists": M, "mismatches": [...], ...}`; the lists match when
serving and evaluation share one pipeline, one configuration and one bundle, and rank with
`recsys.ranking.top_n_stable` (scores at a stated precision, ties by id), so that the thread
count of either side does not decide near-ties. Each mismatch names the first position where
the lists differ, the two items there, their scores offline (recomputed from the bundle in this
process) and served, and the score gap on each side (`score_gap`).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.replay.config import SeqMethodConfig
from recsys.rec.request import RecRequest
from training.config import TrainConfig

__all__ = ["ParityConfig", "recommend_body", "run_parity", "score_gap"]

log = logging.getLogger(__name__)

READ_KEY = "parity-read-key"
WRITE_KEY = "parity-write-key"


@dataclasses.dataclass(frozen=True)
class ParityConfig:
    """What `run_parity` replays."""

    train: TrainConfig
    """Dataset, split, passes and the model (`core`) of the soft-q policy trained and served."""
    decisions: int = 0
    """Held-out decisions to compare (0: all)."""
    bundle: Path | None = None
    """An existing bundle to serve instead of training one (its offline lists are recomputed)."""
    workdir: Path | None = None
    """Where the bundle, service database and log go (None: a temporary folder)."""
    seq: SeqMethodConfig | None = None
    """Train the learned sequence policy with this setting (the `seq` scorer) instead of the
    items scorer's soft-q (its fits are cached in `seq.work`)."""


def _offline(cfg: ParityConfig, progress: Callable[[str, int, int], None] | None) -> Any:
    """(world, evaluated decisions, bundle) of a replay-trained soft-q model, LLM off."""
    from recsys.bundle import ModelBundle
    from training.evaluate import eval_decisions
    from training.fit import build_bundle
    from training.modes import run_memory_mode
    from training.prepare import prepare_world
    from training.replay_env import build_split_parts, run_pass

    tc = dataclasses.replace(cfg.train, max_eval_decisions=cfg.decisions, prequential=False)
    world, split, name = prepare_world(tc)
    if cfg.bundle is not None or cfg.seq is not None:
        if cfg.bundle is not None:
            bundle = ModelBundle.load(cfg.bundle)
        else:
            from bench.replay.seq_method import (
                fitted_policy,
                prior_candidates,
                seed_stem,
                seq_bundle,
                seq_protocol,
            )

            assert cfg.seq is not None
            stem = seed_stem(cfg.seq, f"parity-{name}", tc.seed)
            priors = prior_candidates(cfg.seq, tc, split, world.item_ids)
            proto = seq_protocol(world.item_ids, tc, split)
            policy, _ = fitted_policy(proto, cfg.seq, tc.seed, stem, priors)
            served = build_split_parts(world, tc).served
            bundle = seq_bundle(policy, served, tc, {"mode": "soft-q", "dataset": name})
        rec = bundle.recommender()  # the bundle's own configuration, as the service uses
        idx = eval_decisions(world, tc.max_eval_decisions, 0)
        ev = run_pass(world, rec, tc, idx, False, True, 0.0, np.random.default_rng(0))
        return world, ev.decisions, bundle
    parts = build_split_parts(world, tc)
    res = run_memory_mode(world, parts, tc, "soft-q", tc.seed, None, progress)[0]
    return world, res.decisions, build_bundle(res, parts.served, tc, name)


def recommend_body(req: RecRequest, user_id: str, n: int) -> dict[str, Any]:
    """The `POST /v1/recommend` body of a replayed request: its history as `recent_events`
    and its time as `at`, under `user_id`."""
    return {
        "user_id": user_id,
        "n": n,
        "at": req.now,
        "recent_events": [
            {"item_id": e.item_id, "action": e.action.value, "ts": e.ts} for e in req.events
        ],
    }


def score_gap(
    event: int,
    offline: list[int],
    offline_scores: dict[int, float],
    served: list[int],
    served_scores: dict[int, float],
) -> dict[str, Any]:
    """One mismatch: the first position where the lists differ, the offline item `a` and the
    served item `b` there, each one's score on both sides (None: not in that side's list) and
    the gaps score(a) - score(b) offline and served (None when a score is missing)."""
    k = next((i for i, (x, y) in enumerate(zip(offline, served, strict=False)) if x != y), None)
    if k is None:  # one list is a prefix of the other
        k = min(len(offline), len(served))
    a = offline[k] if k < len(offline) else None
    b = served[k] if k < len(served) else None

    def side(scores: dict[int, float]) -> tuple[list[float | None], float | None]:
        sa = None if a is None else scores.get(a)
        sb = None if b is None else scores.get(b)
        return [sa, sb], (None if sa is None or sb is None else sa - sb)

    off, off_gap = side(offline_scores)
    srv, srv_gap = side(served_scores)
    return {
        "event": event,
        "position": k,
        "items": [a, b],
        "offline_scores": off,
        "served_scores": srv,
        "gap_offline": off_gap,
        "gap_served": srv_gap,
    }


def run_parity(
    cfg: ParityConfig, progress: Callable[[str, int, int], None] | None = None
) -> dict[str, Any]:
    """Replay the evaluated decisions through the real service; the comparison as a dict."""
    import httpx

    from serving.process import ServerProcess
    from training.replay_env import request_at

    t0 = time.perf_counter()
    world, decisions, bundle = _offline(cfg, progress)
    work = cfg.workdir or Path(tempfile.mkdtemp(prefix="memento-parity-"))
    snap = work / "checkpoints" / "snapshot"
    shutil.rmtree(work / "checkpoints", ignore_errors=True)
    bundle.save(snap)
    env = {
        "MEMENTO_MODEL_URI": "none",
        "MEMENTO_CHECKPOINT_DIR": str(work / "checkpoints"),
        "MEMENTO_DB_PATH": str(work / "parity.sqlite3"),
        "MEMENTO_POLICY": "greedy",
        "MEMENTO_LLM": "none",
        "MEMENTO_API_KEY": WRITE_KEY,
        "MEMENTO_READ_API_KEY": READ_KEY,
    }
    (work / "parity.sqlite3").unlink(missing_ok=True)
    identical = 0
    diffs: list[tuple[int, list[int], list[int], dict[int, float]]] = []
    offline_s = time.perf_counter() - t0
    headers = {"Authorization": f"Bearer {READ_KEY}"}
    with (
        ServerProcess(env, log=work / "serve.log").start(timeout_s=180.0) as server,
        httpx.Client(base_url=server.url, timeout=60.0, headers=headers) as http,
    ):
        for k, d in enumerate(decisions):
            req = request_at(world, d.event)
            body = recommend_body(req, f"parity-{req.user_id}-{d.event}", len(d.items))
            r = http.post("/v1/recommend", json=body)
            r.raise_for_status()
            out = r.json()["items"]
            served = [int(i["item_id"]) for i in out]
            if served == d.items:
                identical += 1
            else:
                scores = {int(i["item_id"]): float(i["score"]) for i in out}
                diffs.append((d.event, d.items, served, scores))
            if progress is not None:
                progress("parity: HTTP replay", 1, len(decisions))
            del k
    rec = bundle.recommender()  # the offline scores of each mismatch, recomputed here
    mismatches = []
    for event, offline, served, served_scores in diffs:
        res = rec.recommend(request_at(world, event), greedy=True)
        scores = {int(world.item_ids[r]): s for r, s in zip(res.items, res.scores, strict=True)}
        mismatches.append(score_gap(event, offline, scores, served, served_scores))
    return {
        "dataset": cfg.train.data,
        "decisions": len(decisions),
        "identical_lists": identical,
        "cold_decisions": int(sum(d.cold for d in decisions)),
        "list_length": int(max((len(d.items) for d in decisions), default=0)),
        "mismatches": mismatches,
        "offline_s": round(offline_s, 1),
        "total_s": round(time.perf_counter() - t0, 1),
        "workdir": str(work),
    }

"""The serving memory budget, measured in process on the model `memento serve` would load.

`measure_budget()` builds the serving core the service builds (`serving.core.build_core`, a
temporary store) and measures what grows with traffic:
- per case: resident-memory delta of writing `n_cases` cases through the runtime (bank `Case`
  with its key and payload, the faiss vector, the id maps), next to the Python/numpy share
  (tracemalloc);
- per catalogue item: item vector + id + title (the table), from the model's own arrays;
- per pending decision: state + candidate snapshot of served decisions (what the decision
  writer holds until its next flush, and what SQLite stores per decision);
- per queued feedback: a `FeedbackJob` in the learner queue (tracemalloc over 10,000);
- per replayed transition: the arrays a transition of the online replay holds (after
  `apply_feedback` on served decisions);
- per served event: popularity log (int64 row + float64 time) + the live co-occurrence window
  (int64 row + float64 time + a pointer to the interned user id), by construction.
The serving/README.md budget table comes from here (the README gives the command).
"""

from __future__ import annotations

import gc
import queue
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench.service.bare_learner import served_decision
from recsys.records import Candidates
from serving.core import ServingCore, build_core
from serving.learner_worker import FeedbackJob
from serving.service import EventRecord
from serving.settings import ServingSettings
from serving.store import Store

__all__ = ["MemoryBudget", "measure_budget"]

EVENT_BYTES = 16 + 24
"""Per served event: popularity (8 + 8) + co-occurrence window (8 + 8 + an 8-byte pointer)."""


@dataclass(frozen=True)
class MemoryBudget:
    """Bytes held per unit of what the service accumulates, and the settings that cap it."""

    model: str
    """Model version measured."""
    dim: int
    """State / key / item-vector width."""
    cases: int
    """Cases in the bank before the measurement."""
    items: int
    """Catalogue items."""
    per_case_rss: float
    """Resident bytes per case written (bank + index + id maps)."""
    per_case_traced: float
    """The Python/numpy part of `per_case_rss` (tracemalloc; the faiss vector is not in it)."""
    per_item: float
    """Item table bytes per catalogue item (vector + id + title)."""
    per_pending_decision: float
    """State + candidate snapshot bytes of a served decision (mean)."""
    per_queued_feedback: float
    """Bytes per feedback waiting in the learner queue."""
    per_transition: float
    """Array bytes per transition in the online replay (mean)."""
    per_event: float
    """Bytes per served event kept in memory (popularity + co-occurrence window)."""
    caps: dict[str, int]
    """Settings bounding what grows with traffic (name -> value in force)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _array_bytes(c: Candidates) -> int:
    """Memory the arrays of a candidate set own (a zero-stride view owns none)."""
    arrays = (c.case_ids, c.keys, c.sims, c.features, c.mask)
    return sum(0 if 0 in a.strides else a.nbytes for a in arrays)


def _decisions(core: ServingCore, store: Store, n: int) -> tuple[list[float], list[float]]:
    """Serve and learn from `n` decisions of users with a history: (decision bytes, transition
    bytes)."""
    rt = core.runtime
    ids = rt.items.ids
    now = time.time()
    for u in range(10):
        events = [
            EventRecord(ids[(u * 7 + j) % len(ids)], "click", now - 100 + j) for j in range(5)
        ]
        store.append_events(f"budget-u{u}", events)
        core.observe_events(f"budget-u{u}", events)
    sizes = []
    for k in range(n):
        user = f"budget-u{k % 10}"
        rec = core.recommend(user, 10, {}, store.recent_events(user, 50), [], False)
        d = served_decision(core, user, rec)
        store.put_decision(d)
        sizes.append(float(len(d.state) + len(d.candidates)))
        core.apply_feedback(d, d.items[0], "click", None)
    kept = rt.learner.replay.transitions()
    trans = [
        float(_array_bytes(t.cands) + _array_bytes(t.next_cands) + 2 * t.state.nbytes) for t in kept
    ]
    return sizes, trans


def _per_case(core: ServingCore, n: int, seed: int = 0) -> tuple[float, float]:
    """(RSS bytes, traced bytes) per case keyed like the core's and written through the
    runtime, measured over building and writing them (the inputs freed before the reading)."""
    rt = core.runtime
    rng = np.random.default_rng(seed)
    vecs, ids = rt.items.vecs, rt.items.ids
    gc.collect()
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    tracemalloc.start()
    states = vecs[rng.integers(0, len(ids), size=(n, 5))].mean(1)
    states /= np.maximum(np.linalg.norm(states, axis=1, keepdims=True), 1e-12)
    acted = rng.integers(0, len(ids), size=n).tolist()
    sids = [f"budget-{uuid.uuid4().hex[:12]}" for _ in range(n)]
    owners = [f"budget-o{k}" for k in range(n)]
    payloads = [
        {"items": [ids[a]], "title": rt.items.titles[a], "sid": s, "user_id": o}
        for a, s, o in zip(acted, sids, owners, strict=True)
    ]
    cases = rt.case_encoder.make_cases(states, payloads, [1.0] * n, [time.time()] * n, "feedback")
    with rt.lock:
        rt.add_cases(cases, sids, owners)
    del cases, states, payloads, acted
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (proc.memory_info().rss - rss0) / n, traced / n


def _per_queued_feedback(n: int = 10_000) -> float:
    """Traced bytes per `FeedbackJob` in a `queue.Queue` (ids like the service's)."""
    gc.collect()
    tracemalloc.start()
    q: queue.Queue[FeedbackJob] = queue.Queue()
    for k in range(n):
        q.put(FeedbackJob(k, uuid.uuid4().hex, f"item-{k}", "click", None))
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return traced / n


def measure_budget(
    settings: ServingSettings | None = None, n_cases: int = 5_000, n_decisions: int = 40
) -> MemoryBudget:
    """Build the service's core on a temporary store and measure (module docstring)."""
    with tempfile.TemporaryDirectory(prefix="memento-budget-") as tmp:
        db = Path(tmp) / "budget.sqlite3"
        settings = settings or ServingSettings(db_path=db)
        store = Store(settings.db_path)
        core = build_core(settings, store)
        rt = core.runtime
        n_items, n0 = len(rt.items), len(rt.bank)
        strings = sum(sys.getsizeof(x) for x in [*rt.items.ids, *rt.items.titles])
        per_item = (rt.items.vecs.nbytes + strings) / max(n_items, 1)
        decisions, transitions = _decisions(core, store, n_decisions)
        per_case_rss, per_case_traced = _per_case(core, n_cases)
        caps = {
            "queue_size": settings.queue_size,
            "online_replay_capacity": settings.fresh.learner.replay_capacity,
            "cooccurrence_max_events": settings.cooccurrence_max_events,
            "bank_capacity": rt.bank.cfg.capacity,
        }
        budget = MemoryBudget(
            model=core.model_version,
            dim=rt.dim,
            cases=n0,
            items=n_items,
            per_case_rss=round(per_case_rss),
            per_case_traced=round(per_case_traced),
            per_item=round(per_item),
            per_pending_decision=round(statistics.fmean(decisions)),
            per_queued_feedback=round(_per_queued_feedback()),
            per_transition=round(statistics.fmean(transitions)) if transitions else 0.0,
            per_event=float(EVENT_BYTES),
            caps=caps,
        )
        core.close()
        store.close()
    return budget

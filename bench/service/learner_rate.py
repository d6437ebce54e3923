"""The shared learner's apply rate in `memento bench replicas`, read from its own counter.

Two phases on the decisions of the 2-replica run:

- **HTTP** (`http_feedback`): one feedback per decision through the replicas with
  `2 x --concurrency` in flight; the acknowledge rate, and the learner's rate while it keeps up
  (bounded by the posting when the learner is faster).
- **Backlog** (`backlog_drain`): feedback on every other listed item of each decision
  acknowledged in one durable transaction (`Store.insert_feedback_many`, the path of a
  multi-item `/v1/outcomes`), so the learner starts with a backlog; its `applied` counter,
  sampled every 20 ms, gives the rate it drains at: the learner's own ceiling on this machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from bench.service.drive import drive_requests
from bench.service.load import LoadConfig
from serving.testing import AUTH

__all__ = ["DrainStats", "backlog_drain", "backlog_rows", "http_feedback", "learner_pid"]

FeedbackRow = tuple[str, str, str, str, float | None]
"""(idempotency_key, decision_id, item_id, action, dwell), as `Store.insert_feedback_many`."""


@dataclass(frozen=True)
class DrainStats:
    """How fast the learner applied a backlog, from its own `applied` counter."""

    rows: int
    """Feedback rows acknowledged at once."""
    applied: int
    """Of those, applied by the learner before the bound."""
    seconds: float
    """Acknowledged (commit returned) -> the last of them applied."""
    applied_per_s: float
    """applied / seconds."""
    first_apply_s: float
    """Acknowledged -> the learner's counter first moved."""
    learner_cpu_s_per_feedback: float | None
    """Learner process CPU seconds over the drain / applied (None: process not found)."""


def learner_pid(pids: Sequence[int]) -> int | None:
    """The `ray::SharedLearner` worker among `pids`."""
    for pid in pids:
        try:
            if any("SharedLearner" in part for part in psutil.Process(pid).cmdline()):
                return pid
        except psutil.Error:
            continue
    return None


def _cpu(pid: int | None) -> float:
    """user+system CPU seconds of `pid` (0 when gone or unknown)."""
    if pid is None:
        return 0.0
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(t.user + t.system)


def _wait_applied(applied: Callable[[], int], want: int, bound_s: float) -> list[tuple[float, int]]:
    """Sample `applied()` every 20 ms until it reaches `want` or `bound_s` passed: (time, n)."""
    t0 = time.perf_counter()
    samples = [(t0, applied())]
    while samples[-1][1] < want and time.perf_counter() - t0 < bound_s:
        time.sleep(0.02)
        samples.append((time.perf_counter(), applied()))
    return samples


def http_feedback(
    urls: str | Sequence[str],
    applied: Callable[[], int],
    pid: int | None,
    decisions: list[dict[str, Any]],
    cfg: LoadConfig,
) -> dict[str, Any]:
    """One feedback on the first item of each decision through the replicas (`2 x
    cfg.concurrency` in flight), then until the learner applied it all."""
    bodies = [
        (
            "/v1/feedback",
            {
                "decision_id": d["decision_id"],
                "item_id": d["items"][0]["item_id"],
                "action": "click",
                "idempotency_key": f"br-{k}",
            },
            AUTH,
        )
        for k, d in enumerate(decisions)
        if d["items"]
    ]
    cpu0, applied0, t0 = _cpu(pid), applied(), time.perf_counter()
    fb, _ = asyncio.run(drive_requests(urls, bodies, cfg, 2 * cfg.concurrency))
    posted_s = time.perf_counter() - t0
    samples = _wait_applied(lambda: applied() - applied0, fb.count, cfg.max_seconds)
    done, n = samples[-1][0] - t0, samples[-1][1]
    cpu = _cpu(pid) - cpu0
    return {
        "feedback_posted": asdict(fb),
        "applied": n,
        "applied_per_s_observed": round(n / done, 1) if done > 0 else 0.0,
        "drain_after_last_post_s": round(done - posted_s, 2),
        "learner_cpu_s_per_feedback": round(cpu / n, 5) if n and cpu else None,
    }


def backlog_rows(decisions: list[dict[str, Any]], limit: int) -> list[FeedbackRow]:
    """A click on every listed item but the first (`http_feedback`'s) of each decision, at
    most `limit` rows, decision by decision."""
    rows: list[FeedbackRow] = [
        (f"bl-{d['decision_id']}-{i}", d["decision_id"], item["item_id"], "click", None)
        for d in decisions
        for i, item in enumerate(d["items"][1:], start=1)
    ]
    return rows[:limit]


def backlog_drain(
    store_url: str,
    applied: Callable[[], int],
    pid: int | None,
    rows: list[FeedbackRow],
    bound_s: float,
) -> DrainStats:
    """Acknowledge `rows` in one durable transaction, then time the learner applying them."""
    from serving.pg_store import PgStore

    store = PgStore(store_url)
    try:
        applied0 = applied()
        store.insert_feedback_many(rows)
        cpu0 = _cpu(pid)
        samples = _wait_applied(lambda: applied() - applied0, len(rows), bound_s)
    finally:
        store.close()
    t0, (t_end, n) = samples[0][0], samples[-1]
    last = next((t for t, k in samples if k >= n), t_end)  # first sample at the final count
    moved = next((t for t, k in samples if k > 0), t_end)
    seconds = last - t0
    cpu = _cpu(pid) - cpu0
    return DrainStats(
        len(rows),
        n,
        round(seconds, 2),
        round(n / seconds, 1) if seconds > 0 else 0.0,
        round(moved - t0, 3),
        round(cpu / n, 5) if n and cpu else None,
    )

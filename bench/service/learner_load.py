"""The learner phases of `memento bench serving`: recommend latency while the learner runs,
the learner's apply rate and its lag.

- `with_learner`: `concurrency` clients loop recommend -> one feedback on the list's first
  item (the simulator's and the soak's pattern: every decision gets an outcome), bounded in
  requests and seconds; recommend p50 / p99 while the learner applies that feedback, the
  decisions and feedback per second, and the learner's queue depth and lag in decisions
  (`memento_learner_lag_decisions`, polled; a server without that metric reports None) over
  the phase.
- `drain`: after a phase that posted feedback, how long until the learner applied all of it,
  from the phase's start: its apply rate when the posting outran it (the flood of the
  feedback phase).

Both read the server's own counters (`memento_learner_updates_total`: feedback applied), so
they compare servers of different trees (`--baseline-tree`).
"""

from __future__ import annotations

import asyncio
import random
import re
import statistics
import time
from dataclasses import dataclass
from typing import Any

import httpx

from serving.testing import AUTH, READ_AUTH

__all__ = ["LearnerPhase", "counters", "drain", "with_learner"]

_POLL_S = 0.25
"""How often the phases read `/metrics`."""


def counters(text: str) -> dict[str, float]:
    """Unlabelled samples of a Prometheus exposition by name."""
    out: dict[str, float] = {}
    for m in re.finditer(r"^([a-z_]+) ([0-9.e+-]+|NaN)$", text, re.MULTILINE):
        out[m.group(1)] = float(m.group(2))
    return out


async def _read(client: httpx.AsyncClient) -> dict[str, float]:
    return counters((await client.get("/metrics")).text)


@dataclass(frozen=True)
class LearnerPhase:
    """Recommend while every list gets one feedback, and the learner meanwhile."""

    recommend_p50_ms: float
    """Median recommend latency during the phase."""
    recommend_p99_ms: float
    """99th-percentile recommend latency during the phase."""
    wall_s: float
    """Length of the phase."""
    decisions: int
    """Recommend answers during the phase."""
    decisions_per_s: float
    """Recommend answers per second of the phase (the benchmark's request rate)."""
    feedback_per_s: float
    """Feedback accepted (202) per second of the phase."""
    applied_per_s: float
    """Feedback the learner applied per second of the phase."""
    errors: int
    """Non-2xx answers or transport errors (a 503 of a full queue counts)."""
    poll_failures: int
    """`/metrics` reads that failed (timed out) during the phase."""
    queue_depth_max: float
    """Largest learner queue depth polled."""
    lag_decisions_p50: float | None
    """Median of the polled lag in decisions (None: the server has no such metric)."""
    lag_decisions_max: float | None
    """Largest polled lag in decisions."""


async def _with_learner(
    url: str, users: list[str], n: int, requests: int, concurrency: int, max_seconds: float
) -> LearnerPhase:
    rng = random.Random(7)
    lat: list[float] = []
    depth: list[float] = []
    lag: list[float] = []
    counts = {"decisions": 0, "feedback": 0, "errors": 0, "poll_failures": 0}
    limits = httpx.Limits(max_connections=concurrency + 1)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        before = await _read(client)
        start = time.perf_counter()
        deadline = start + max_seconds
        done = asyncio.Event()

        async def loop(k: int) -> None:
            while counts["decisions"] < requests and time.perf_counter() < deadline:
                body = {"user_id": rng.choice(users), "n": n}
                t0 = time.perf_counter()
                try:
                    r = await client.post("/v1/recommend", json=body, headers=READ_AUTH)
                except httpx.HTTPError:
                    counts["errors"] += 1
                    continue
                if not r.is_success:
                    counts["errors"] += 1
                    continue
                lat.append(time.perf_counter() - t0)
                counts["decisions"] += 1
                d = r.json()
                if not d["items"]:
                    continue
                fb = {
                    "decision_id": d["decision_id"],
                    "item_id": d["items"][0]["item_id"],
                    "action": "click",
                    "idempotency_key": f"ll-{k}-{counts['decisions']}",
                }
                try:
                    f = await client.post("/v1/feedback", json=fb, headers=AUTH)
                except httpx.HTTPError:
                    counts["errors"] += 1
                    continue
                counts["feedback" if f.status_code == 202 else "errors"] += 1

        async def poll() -> None:
            while not done.is_set():
                try:
                    m = await _read(client)
                except httpx.HTTPError:  # a stalled server: count it, keep polling
                    counts["poll_failures"] += 1
                    continue
                depth.append(m.get("memento_learner_queue_depth", 0.0))
                if "memento_learner_lag_decisions" in m:
                    lag.append(m["memento_learner_lag_decisions"])
                await asyncio.sleep(_POLL_S)

        poller = asyncio.create_task(poll())
        await asyncio.gather(*(loop(k) for k in range(concurrency)))
        wall = time.perf_counter() - start
        done.set()
        await poller
        after = await _read(client)
    applied = after.get("memento_learner_updates_total", 0.0) - before.get(
        "memento_learner_updates_total", 0.0
    )
    ms = sorted(x * 1000 for x in lat) or [float("nan")]
    return LearnerPhase(
        recommend_p50_ms=round(statistics.median(ms), 3),
        recommend_p99_ms=round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 3),
        wall_s=round(wall, 2),
        decisions=counts["decisions"],
        decisions_per_s=round(counts["decisions"] / wall, 1),
        feedback_per_s=round(counts["feedback"] / wall, 1),
        applied_per_s=round(applied / wall, 1),
        errors=counts["errors"],
        poll_failures=counts["poll_failures"],
        queue_depth_max=max(depth, default=0.0),
        lag_decisions_p50=round(statistics.median(lag), 1) if lag else None,
        lag_decisions_max=max(lag) if lag else None,
    )


def with_learner(
    url: str, users: list[str], n: int, requests: int, concurrency: int, max_seconds: float
) -> LearnerPhase:
    """The recommend -> feedback loop (module docstring), bounded in decisions and seconds."""
    return asyncio.run(_with_learner(url, users, n, requests, concurrency, max_seconds))


def drain(
    url: str, applied_before: float, since: float, expected: int, timeout_s: float
) -> dict[str, Any]:
    """Wait until the learner applied `expected` feedback since `applied_before` (a
    `memento_learner_updates_total` reading taken at `since`, a `time.perf_counter()`), or
    `timeout_s`; the feedback applied, the seconds from `since`, and their ratio."""
    deadline = time.perf_counter() + timeout_s
    applied = 0.0
    with httpx.Client(base_url=url, timeout=30) as client:
        while True:
            try:
                m = counters(client.get("/metrics").text)
                applied = m.get("memento_learner_updates_total", 0.0) - applied_before
            except httpx.HTTPError:  # a stalled server: keep the last reading, try again
                pass
            if applied >= expected or time.perf_counter() > deadline:
                break
            time.sleep(_POLL_S / 5)
    wall = time.perf_counter() - since
    return {
        "applied": applied,
        "seconds": round(wall, 2),
        "applied_per_s": round(applied / wall, 1) if wall > 0 else 0.0,
        "drained": applied >= expected,
    }

"""Bounded HTTP phases of the load tests: drive a list of requests with a fixed number in
flight, and the latency and throughput of what answered."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import httpx

from serving.testing import AUTH

if TYPE_CHECKING:  # the load test's configuration imports this module
    from bench.service.load import LoadConfig

__all__ = ["PhaseStats", "drive_requests", "feedback_bodies", "phase_stats", "recommend_figures"]


@dataclass(frozen=True)
class PhaseStats:
    """Latency and throughput of one phase."""

    count: int
    """Completed requests."""
    errors: int
    """Non-2xx answers or transport errors."""
    p50_ms: float
    """Median latency."""
    p99_ms: float
    """99th-percentile latency."""
    per_s: float
    """Completed requests per second of wall clock."""


def phase_stats(lat: list[float], errors: int, wall: float) -> PhaseStats:
    """The stats of a phase from its latencies (seconds), errors and wall clock."""
    ms = sorted(x * 1000 for x in lat) or [float("nan")]
    p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
    return PhaseStats(
        len(lat),
        errors,
        round(statistics.median(ms), 3),
        round(p99, 3),
        round(len(lat) / wall, 1) if wall > 0 else 0.0,
    )


async def drive_requests(
    url: str | Sequence[str],
    bodies: list[tuple[str, dict[str, Any], dict[str, str]]],
    cfg: LoadConfig,
    concurrency: int,
) -> tuple[PhaseStats, list[dict[str, Any]]]:
    """POST each (path, body, headers) with `concurrency` in flight until done or
    `cfg.max_seconds`; the phase's stats and the JSON answers of the successful ones. Several
    base URLs (replicas without a balancer in front): request k goes to URL k mod their count,
    as a round-robin balancer would send it."""
    urls = [url] if isinstance(url, str) else list(url)
    assert urls, "drive_requests needs at least one URL"
    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []
    answers: list[dict[str, Any]] = []
    errors = 0
    deadline = time.perf_counter() + cfg.max_seconds
    limits = httpx.Limits(max_connections=concurrency)
    clients = [httpx.AsyncClient(base_url=u, timeout=30, limits=limits) for u in urls]

    async def one(k: int, path: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        nonlocal errors
        async with sem:
            if time.perf_counter() > deadline:
                return
            t0 = time.perf_counter()
            try:
                r = await clients[k % len(clients)].post(path, json=body, headers=headers)
            except httpx.HTTPError:
                errors += 1
                return
            if r.is_success:
                lat.append(time.perf_counter() - t0)
                answers.append(r.json())
            else:
                errors += 1

    try:
        start = time.perf_counter()
        await asyncio.gather(*(one(k, p, b, h) for k, (p, b, h) in enumerate(bodies)))
        wall = time.perf_counter() - start
    finally:
        for c in clients:
            await c.aclose()
    return phase_stats(lat, errors, wall), answers


def feedback_bodies(
    decisions: list[dict[str, Any]], rng: random.Random, key_prefix: str
) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """One feedback (random action) on the first item of each decision that listed one."""
    return [
        (
            "/v1/feedback",
            {
                "decision_id": d["decision_id"],
                "item_id": d["items"][0]["item_id"],
                "action": rng.choice(["click", "cart", "alipay"]),
                "idempotency_key": f"{key_prefix}-{k}",
            },
            AUTH,
        )
        for k, d in enumerate(decisions)
        if d["items"]
    ]


def recommend_figures(
    sequential: PhaseStats, concurrent: PhaseStats, cpu_s: tuple[float, float, float], c: int
) -> dict[str, Any]:
    """Both recommend phases, the server CPU ms per recommend in each (`cpu_s`: the server's
    CPU seconds before, between and after them) and the throughput ratio."""
    c0, c1, c2 = cpu_s
    return {
        "http_recommend_sequential": asdict(sequential),
        "server_cpu_ms_per_recommend_sequential": round(1000 * (c1 - c0) / sequential.count, 2)
        if sequential.count
        else None,
        f"http_recommend_concurrency_{c}": asdict(concurrent),
        f"server_cpu_ms_per_recommend_concurrency_{c}": round(
            1000 * (c2 - c1) / concurrent.count, 2
        )
        if concurrent.count
        else None,
        "ratio_throughput_concurrent_vs_sequential": round(concurrent.per_s / sequential.per_s, 2)
        if sequential.per_s
        else None,
    }

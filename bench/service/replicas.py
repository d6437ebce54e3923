"""Plain service vs Ray Serve with 1 and 2 replicas, side by side, no LLM, and a projection.

`memento bench replicas --cases 5000 --requests 400 --concurrency 8` seeds the synthetic
catalogue, events and cases of `memento bench serving` (`bench.service.load.seed_store`) into a
SQLite store, copies the same rows into a fresh PostgreSQL database (`scripts/postgres.sh`, or
`--store-url` / `MEMENTO_TEST_PG_URL`) and gives the replicas a copy of the same bank snapshot.
Then, with the same request mix (`bench.service.drive.drive_requests`): (a) `memento serve`
(uvicorn, SQLite), (b) Ray Serve with 1 replica, (c) with 2 replicas (`serving.ray_app.run`, shared
PostgreSQL store, one learner actor): recommend latency with one request in flight and
throughput with `--concurrency` in flight, and the CPU seconds the serving processes spent per
request at saturation. Last, feedback on the 2-replica decisions measures the learner actor's
apply rate. `project_throughput` turns per-request cost and learner rate into req/s for N
machines (assumptions in `ASSUMPTIONS` and in the printed JSON).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.service.drive import drive_requests
from bench.service.load import LoadConfig, _env, seed_store
from bench.service.pg_setup import copy_store, pg_server
from bench.service.projection import (
    ASSUMPTIONS,
    P50_TARGET,
    THROUGHPUT_TARGET,
    project_throughput,
)
from serving.process import ServerProcess, free_port
from serving.settings import ServingSettings
from serving.store import Store
from serving.testing import AUTH, READ_AUTH

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplicaBenchConfig:
    """One replica benchmark run."""

    load: LoadConfig = field(
        default_factory=lambda: LoadConfig(cases=5_000, requests=400, concurrency=8, llm="none")
    )
    """Sizes, request mix and bounds (the LLM field is ignored: no LLM here)."""
    store_url: str | None = None
    """PostgreSQL server to create the benchmark database on (None: start a throwaway one)."""
    machine_cores: int = 0
    """Cores per machine of the projection (0: this machine's `os.cpu_count()`)."""
    feedback_per_request: float = 1.0
    """Feedback rows per recommendation assumed by the projection (1.0: every one answered)."""
    machines: tuple[int, ...] = (1, 2, 4, 8)
    """Machine counts of the projection."""


def _cpu_times(pids: list[int]) -> dict[int, float]:
    """user+system CPU seconds of each live process."""
    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system
        except psutil.Error:
            continue
    return out


def _tree(root: int) -> list[int]:
    """The process and all its descendants."""
    try:
        p = psutil.Process(root)
        return [root, *(c.pid for c in p.children(recursive=True))]
    except psutil.Error:
        return []


def _cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two samples (processes started meanwhile count in full)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def _phase(
    url: str, pids: Callable[[], list[int]], users: list[str], cfg: LoadConfig
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Warm up, then recommend with 1 and with `cfg.concurrency` in flight; CPU per request."""
    import random

    rng = random.Random(cfg.seed + 2)  # the request mix of `memento bench serving`
    bodies = [
        ("/v1/recommend", {"user_id": rng.choice(users), "n": cfg.n}, READ_AUTH)
        for _ in range(cfg.requests)
    ]
    for u in users[:20]:
        httpx.post(url + "/v1/recommend", json={"user_id": u}, headers=READ_AUTH, timeout=120)
    rec1, _ = asyncio.run(drive_requests(url, bodies, cfg, 1))
    before, t0 = _cpu_times(pids()), time.perf_counter()
    rec, decisions = asyncio.run(drive_requests(url, bodies, cfg, cfg.concurrency))
    wall, cpu = time.perf_counter() - t0, _cpu_delta(before, _cpu_times(pids()))
    return {
        "recommend_1_in_flight": asdict(rec1),
        f"recommend_{cfg.concurrency}_in_flight": asdict(rec),
        "cpu_s_per_request": round(cpu / rec.count, 5) if rec.count else None,
        "cores_used": round(cpu / wall, 2),
    }, decisions


def _learner_pid(root: int) -> int | None:
    """Pid of the `ray::SharedLearner` worker under the driver."""
    for pid in _tree(root):
        try:
            if any("SharedLearner" in part for part in psutil.Process(pid).cmdline()):
                return pid
        except psutil.Error:
            continue
    return None


def _learner_rate(
    url: str, running: Any, decisions: list[dict[str, Any]], cfg: LoadConfig
) -> dict[str, Any]:
    """Feedback on the decisions (`cfg.concurrency` in flight), then wait until the learner
    applied it: observed apply rate and learner CPU seconds per applied row."""
    import ray

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
    pid = _learner_pid(os.getpid())
    cpu0 = _cpu_times([pid]) if pid else {}
    applied0 = ray.get(running.learner.stats.remote())["applied"]
    t0 = time.perf_counter()
    fb, _ = asyncio.run(drive_requests(url, bodies, cfg, cfg.concurrency))
    posted_s = time.perf_counter() - t0
    applied = 0
    while time.perf_counter() - t0 < cfg.max_seconds:
        applied = ray.get(running.learner.stats.remote())["applied"] - applied0
        if applied >= fb.count:
            break
        time.sleep(0.05)
    drained_s = time.perf_counter() - t0
    cpu = _cpu_delta(cpu0, _cpu_times([pid])) if pid else 0.0
    return {
        "feedback_posted": asdict(fb),
        "applied": applied,
        "applied_per_s_observed": round(applied / drained_s, 1) if drained_s else 0.0,
        "drain_after_last_post_s": round(drained_s - posted_s, 2),
        "learner_cpu_s_per_feedback": round(cpu / applied, 5) if applied and cpu else None,
    }


def _replica_pids(running: Any, want: int) -> list[int]:
    """Pids of the replicas (asks the deployment until `want` distinct ones answered)."""
    seen: dict[str, int] = {}
    for _ in range(20 * want):
        s = running.handle.stats.remote().result(timeout_s=30)
        seen[s["replica"]] = s["pid"]
        if len(seen) >= want:
            break
    return list(seen.values())


def _ray_phase(
    settings: ServingSettings, replicas: int, users: list[str], cfg: LoadConfig, learn: bool
) -> dict[str, Any]:
    from serving.ray_app import run

    running = run(settings, replicas, "127.0.0.1", free_port())
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(running.url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pids = _replica_pids(running, replicas)
        out, decisions = _phase(running.url, lambda: _tree(os.getpid()), users, cfg)
        out["replica_pids"] = len(set(pids))
        if learn:
            out["learner"] = _learner_rate(running.url, running, decisions, cfg)
        return out
    finally:
        running.shutdown()


def run_replicas_bench(bc: ReplicaBenchConfig, workdir: Path) -> dict[str, Any]:
    """Seed, then plain (SQLite, then PostgreSQL) / 1 replica / 2 replicas and the learner
    rate; the figures."""
    import psycopg
    import ray

    cfg = bc.load
    load_start = os.getloadavg()
    db, items = workdir / "load.sqlite3", workdir / "catalogue" / "items.parquet"
    t0 = time.perf_counter()
    histories = seed_store(db, items, cfg)
    users = list(histories)
    env = _env(db, items, cfg, "none")
    pg_ckpt = workdir / "pg-checkpoints"  # the replicas' copy of the seeded bank snapshot
    shutil.copytree(workdir / "checkpoints", pg_ckpt)
    with pg_server(bc.store_url or os.environ.get("MEMENTO_TEST_PG_URL"), workdir) as server:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        store_url = server.rsplit("/", 1)[0] + "/" + name
        from serving.pg_store import PgStore

        src, dst = Store(db), PgStore(store_url)
        n_events, n_cases = copy_store(src, dst)
        src.close()
        dst.close()
        seed_s = time.perf_counter() - t0
        with ServerProcess(env, log=workdir / "plain.log").start(timeout_s=600) as proc:
            assert proc.proc is not None
            plain, _ = _phase(proc.url, lambda: _tree(proc.proc.pid), users, cfg)  # type: ignore[union-attr]
        # the same single process on the PostgreSQL store: what the store costs, without Ray
        pg_env = {**env, "MEMENTO_STORE_URL": store_url, "MEMENTO_CHECKPOINT_DIR": str(pg_ckpt)}
        with ServerProcess(pg_env, log=workdir / "plain-pg.log").start(timeout_s=600) as proc:
            assert proc.proc is not None
            plain_pg, _ = _phase(proc.url, lambda: _tree(proc.proc.pid), users, cfg)  # type: ignore[union-attr]
        fields = {k.removeprefix("MEMENTO_").lower(): v for k, v in env.items()}
        settings = ServingSettings.model_validate(
            {**fields, "store_url": store_url, "checkpoint_dir": pg_ckpt}
        )
        ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
        try:
            one = _ray_phase(settings, 1, users, cfg, learn=False)
            two = _ray_phase(settings, 2, users, cfg, learn=True)
        finally:
            ray.shutdown()
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conc = f"recommend_{cfg.concurrency}_in_flight"
    p50_ratio = one["recommend_1_in_flight"]["p50_ms"] / plain["recommend_1_in_flight"]["p50_ms"]
    p50_pg = plain_pg["recommend_1_in_flight"]["p50_ms"]
    ray_ratio = one["recommend_1_in_flight"]["p50_ms"] / p50_pg if p50_pg else 0.0
    tput_ratio = two[conc]["per_s"] / one[conc]["per_s"] if one[conc]["per_s"] else 0.0
    cores = bc.machine_cores or os.cpu_count() or 1
    learner = two["learner"]
    lrate = (
        1.0 / learner["learner_cpu_s_per_feedback"]
        if learner["learner_cpu_s_per_feedback"]
        else learner["applied_per_s_observed"]
    )
    cpu_req = two["cpu_s_per_request"] or one["cpu_s_per_request"]
    projection = project_throughput(cpu_req, cores, lrate, bc.feedback_per_request, bc.machines)
    return {
        "config": {**asdict(bc), "load": asdict(cfg)},
        "seed_seconds": round(seed_s, 1),
        "seeded": {"events": n_events, "cases": n_cases, "users": len(users)},
        "cpu_count": os.cpu_count(),
        "plain_uvicorn_sqlite": plain,
        "plain_uvicorn_pg": plain_pg,
        "ray_serve_1_replica_pg": one,
        "ray_serve_2_replicas_pg": two,
        "targets": {
            "replica1_p50_over_plain_p50": round(p50_ratio, 2),
            "replica1_p50_target_max": P50_TARGET,
            "replica1_p50_met": p50_ratio <= P50_TARGET,
            "replica1_p50_over_plain_pg_p50": round(ray_ratio, 2),
            "replicas2_over_replicas1_throughput": round(tput_ratio, 2),
            "replicas2_throughput_target_min": THROUGHPUT_TARGET,
            "replicas2_throughput_met": tput_ratio >= THROUGHPUT_TARGET,
        },
        "projection": {
            "cpu_s_per_request": cpu_req,
            "machine_cores": cores,
            "learner_feedback_per_s": round(lrate, 1),
            "feedback_per_request": bc.feedback_per_request,
            "rows": [asdict(p) for p in projection],
            "assumptions": list(ASSUMPTIONS),
        },
        "load_average_start_1_5_15": [round(x, 2) for x in load_start],
        "load_average_end_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def main(bc: ReplicaBenchConfig) -> dict[str, Any]:
    """Run in a temporary folder (deleted afterwards) and return the figures."""
    with tempfile.TemporaryDirectory(prefix="memento-replicas-") as tmp:
        return run_replicas_bench(bc, Path(tmp))

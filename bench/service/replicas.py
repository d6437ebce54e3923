"""Plain service vs Ray Serve with 1 and 2 replicas, side by side, no LLM, and a projection.

`memento bench replicas --cases 5000 --requests 400 --concurrency 8` seeds the synthetic
catalogue, events and cases of `memento bench serving` (`bench.service.load.seed_store`) into a
SQLite store, copies the same rows into a fresh PostgreSQL database (`scripts/postgres.sh`, or
`--store-url` / `MEMENTO_TEST_PG_URL`) and gives the replicas a copy of the same bank snapshot.
Then, with the same request mix (`bench.service.drive.drive_requests`): (a) `memento serve`
(uvicorn, SQLite), (b) Ray Serve with 1 replica, (c) with 2 replicas (`serving.ray_app.run` with
`serving.ray_app.SERVE_ENV`, shared PostgreSQL store, one learner actor): recommend latency with
one request in flight and throughput with `--concurrency` in flight, and the CPU seconds the
serving processes spent per request at saturation (the benchmark's own process, the load
generator, not counted), per Ray process role too. Each Ray variant is driven twice: at the
replicas' own ports (direct ingress; requests spread round-robin over the replicas, as a load
balancer in front would) and through Serve's proxy. Last, the learner actor's apply rate from
its own counter (`bench.service.learner_rate`: feedback through the replicas, then a backlog).
`project_throughput` turns per-request cost and learner rate into req/s for N machines
(assumptions in `ASSUMPTIONS` and in the printed JSON).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.service.drive import drive_requests
from bench.service.load import LoadConfig, _env, seed_store
from bench.service.pg_setup import copy_store, pg_server
from bench.service.proc_cpu import cpu_by_role, cpu_delta, cpu_times, idle_cores, ray_pids, tree
from bench.service.projection import (
    ASSUMPTIONS,
    interleaved_ratios,
    project_throughput,
    targets,
)
from serving.process import ServerProcess, free_port
from serving.settings import ServingSettings
from serving.store import Store
from serving.testing import READ_AUTH

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
    learner_backlog: int = 3_000
    """Feedback rows acknowledged at once for the learner's drain rate (at most 9 per
    decision of the 2-replica throughput phase: every listed item but the first)."""


def _bodies(users: list[str], cfg: LoadConfig) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """`cfg.requests` recommend requests, the request mix of `memento bench serving`."""
    import random

    rng = random.Random(cfg.seed + 2)
    return [
        ("/v1/recommend", {"user_id": rng.choice(users), "n": cfg.n}, READ_AUTH)
        for _ in range(cfg.requests)
    ]


def _interleaved(
    targets: dict[str, str | list[str]], users: list[str], cfg: LoadConfig, rounds: int = 5
) -> dict[str, dict[str, Any]]:
    """Recommend p50 with 1 in flight, the targets taking turns in `rounds` rounds of
    `cfg.requests / rounds` requests each, so that the machine's load (shared, moving) weighs on
    each alike: the median of each target's round p50s, and those."""
    bodies = _bodies(users, cfg)
    size = max(1, len(bodies) // rounds)
    p50s: dict[str, list[float]] = {name: [] for name in targets}
    for r in range(rounds):
        for name, url in targets.items():
            stats, _ = asyncio.run(drive_requests(url, bodies[r * size : (r + 1) * size], cfg, 1))
            p50s[name].append(stats.p50_ms)
    return {k: {"p50_ms": statistics.median(v), "round_p50s_ms": v} for k, v in p50s.items()}


def _phase(
    url: str | list[str],
    pids: Callable[[], list[int]],
    users: list[str],
    cfg: LoadConfig,
    roles: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Warm up, then recommend with 1 and with `cfg.concurrency` in flight; CPU per request
    (and per Ray process role with `roles`)."""
    bodies = _bodies(users, cfg)
    warm = [("/v1/recommend", {"user_id": u}, READ_AUTH) for u in users[:40]]
    asyncio.run(drive_requests(url, warm, cfg, 2))
    rec1, _ = asyncio.run(drive_requests(url, bodies, cfg, 1))
    before, t0 = cpu_times(pids()), time.perf_counter()
    rec, decisions = asyncio.run(drive_requests(url, bodies, cfg, cfg.concurrency))
    wall, after = time.perf_counter() - t0, cpu_times(pids())
    cpu = cpu_delta(before, after)
    out = {
        "recommend_1_in_flight": asdict(rec1),
        f"recommend_{cfg.concurrency}_in_flight": asdict(rec),
        "cpu_s_per_request": round(cpu / rec.count, 5) if rec.count else None,
        "cores_used": round(cpu / wall, 2),
    }
    if roles:
        out["cpu_ms_per_request_by_role"] = cpu_by_role(before, after, rec.count)
    return out, decisions


def _wait_ready(running: Any, replicas: int, bound_s: float = 120.0) -> list[str]:
    """Until the proxy answers /readyz and every replica's own port is listed: those URLs."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline and not _ready(running.url):
        time.sleep(0.2)
    urls: list[str] = []
    while time.monotonic() < deadline:
        urls = running.replica_urls()
        if len(urls) >= replicas and all(_ready(u) for u in urls):
            break
        time.sleep(0.5)
    return urls


def _ready(url: str) -> bool:
    """/readyz answers 200 at `url`."""
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _replica_pids(running: Any, want: int) -> list[int]:
    """Pids of the replicas (asks the deployment until `want` distinct ones answered)."""
    seen: dict[str, int] = {}
    for _ in range(20 * want):
        s = running.handle.stats.remote().result(timeout_s=30)
        seen[s["replica"]] = s["pid"]
        if len(seen) >= want:
            break
    return list(seen.values())


def _learner(
    running: Any, urls: list[str], store_url: str, decisions: list[dict[str, Any]], bc: Any
) -> dict[str, Any]:
    """The learner actor's apply rate: feedback through the replicas, then a backlog."""
    import ray

    from bench.service.learner_rate import (
        backlog_drain,
        backlog_rows,
        http_feedback,
        learner_pid,
    )

    def applied() -> int:
        return int(ray.get(running.learner.stats.remote())["applied"])

    pid = learner_pid(ray_pids())
    out = http_feedback(urls or running.url, applied, pid, decisions, bc.load)
    rows = backlog_rows(decisions, bc.learner_backlog)
    out["backlog"] = asdict(backlog_drain(store_url, applied, pid, rows, bc.load.max_seconds))
    return out


def _ray_phase(
    settings: ServingSettings,
    replicas: int,
    users: list[str],
    bc: ReplicaBenchConfig,
    learn: bool,
    plain_urls: dict[str, str] | None = None,
    pids: Callable[[], list[int]] = ray_pids,
) -> dict[str, Any]:
    """Serve `replicas` replicas; recommend at their own ports and through the proxy (with
    `plain_urls`: the 1-in-flight p50s of those and of Ray's paths interleaved too); with
    `learn`, the learner. `pids`: Ray's processes (the plain services' excluded)."""
    from serving.ray_app import run

    cfg = bc.load
    running = run(settings, replicas, "127.0.0.1", free_port())
    try:
        urls = _wait_ready(running, replicas)
        replica_pids = _replica_pids(running, replicas)
        out: dict[str, Any] = {"replica_pids": len(set(replica_pids)), "replica_urls": len(urls)}
        out["idle_cores"] = idle_cores(pids)
        decisions: list[dict[str, Any]] = []
        if urls:
            out["direct"], decisions = _phase(urls, pids, users, cfg, roles=True)
        out["proxy"], via_proxy = _phase(running.url, pids, users, cfg, roles=True)
        if plain_urls:
            turns: dict[str, str | list[str]] = {**plain_urls, "proxy": running.url}
            if urls:
                turns["direct"] = urls
            out["interleaved_1_in_flight"] = _interleaved(turns, users, cfg)
        if learn:
            out["learner"] = _learner(
                running, urls, settings.store_url or "", decisions or via_proxy, bc
            )
        return out
    finally:
        t0 = time.perf_counter()
        running.shutdown()
        logger.info("Serve shut down in %.1f s", time.perf_counter() - t0)


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
        # the same single process on its own copy of the PostgreSQL store (what the store costs,
        # without Ray; a copy: its learner and change feed stay apart from the replicas')
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}_plain TEMPLATE {name}")
        plain_ckpt = workdir / "plain-pg-checkpoints"
        shutil.copytree(pg_ckpt, plain_ckpt)
        pg_env = {
            **env,
            "MEMENTO_STORE_URL": f"{store_url}_plain",
            "MEMENTO_CHECKPOINT_DIR": str(plain_ckpt),
        }
        fields = {k.removeprefix("MEMENTO_").lower(): v for k, v in env.items()}
        settings = ServingSettings.model_validate(
            {**fields, "store_url": store_url, "checkpoint_dir": pg_ckpt}
        )
        from serving.ray_app import serve_env

        serve_env()  # before Ray starts: its processes read Serve's settings from the env
        ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
        try:
            # both plain services stay up (idle) for the interleaved p50s of 1 replica
            with (
                ServerProcess(env, log=workdir / "plain.log").start(timeout_s=600) as sq,
                ServerProcess(pg_env, log=workdir / "plain-pg.log").start(timeout_s=600) as pg,
            ):
                assert sq.proc is not None and pg.proc is not None
                plain, _ = _phase(sq.url, lambda: tree(sq.proc.pid), users, cfg)  # type: ignore[union-attr]
                plain_pg, _ = _phase(pg.url, lambda: tree(pg.proc.pid), users, cfg)  # type: ignore[union-attr]
                plains = {"plain_sqlite": sq.url, "plain_pg": pg.url}
                servers = set(tree(sq.proc.pid)) | set(tree(pg.proc.pid))

                def ray_only() -> list[int]:
                    return [p for p in ray_pids() if p not in servers]

                one = _ray_phase(settings, 1, users, bc, False, plains, ray_only)
            two = _ray_phase(settings, 2, users, bc, learn=True)
        finally:
            ray.shutdown()
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}_plain WITH (FORCE)")
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    turns = interleaved_ratios(one)
    learner = two["learner"]
    lrate = learner["backlog"]["applied_per_s"] or learner["applied_per_s_observed"]
    path = "direct" if "direct" in two else "proxy"
    cpu_req = two[path]["cpu_s_per_request"] or one[path]["cpu_s_per_request"]
    cores = bc.machine_cores or os.cpu_count() or 1
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
        "targets": targets(plain, plain_pg, one, two, cfg.concurrency, lrate, turns),
        "interleaved_1_in_flight_p50_over_plain": turns,
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


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """File descriptor 1 goes to stderr meanwhile: Ray's processes write notes there (a task
    of the stopped Serve controller failing) that would break `--json`'s stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main(bc: ReplicaBenchConfig) -> dict[str, Any]:
    """Run in a temporary folder (deleted afterwards) and return the figures."""
    with _stdout_to_stderr(), tempfile.TemporaryDirectory(prefix="memento-replicas-") as tmp:
        return run_replicas_bench(bc, Path(tmp))

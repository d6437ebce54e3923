"""The worker phases of `memento bench serving --workers N`: `memento serve --workers N`
(uvicorn workers + one learner process, `serving.workers`) on a PostgreSQL copy of the seeded
store, with the request mix and bounds of the single-process phases (`bench.service.load`).

Recommend with one request in flight and with `--concurrency` in flight, the CPU seconds of
the whole process tree (parent, workers, learner) per recommend in each, then feedback on the
decisions returned and the learner process applying all of it (its apply rate, read from the
store's applied flags: the workers keep no learner counters). The PostgreSQL server's own CPU
is not in the figures (it is not a child of the service); its database is dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import httpx
import psutil

from bench.service.drive import drive_requests, feedback_bodies, recommend_figures
from bench.service.pg_setup import copy_store, pg_server
from serving.process import ServerProcess
from serving.store import Store
from serving.testing import READ_AUTH

if TYPE_CHECKING:  # the load test imports this module
    from bench.service.load import LoadConfig, Seeded

__all__ = ["worker_phases", "worker_variant"]


def _tree_cpu(root: int) -> float:
    """user+system CPU seconds of a process and its live descendants."""
    total = 0.0
    try:
        procs = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
    except psutil.Error:
        return total
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


@contextmanager
def pg_copy(seeded: Seeded, server_url: str) -> Iterator[str]:
    """A fresh database on `server_url` holding the seeded store's events and cases (dropped
    afterwards); its URL."""
    import psycopg

    from serving.pg_store import PgStore

    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = server_url.rsplit("/", 1)[0] + "/" + name
    try:
        src, dst = Store(seeded.db), PgStore(url)
        copy_store(src, dst)
        src.close()
        dst.close()
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _drain(store_url: str, ids: set[int], since: float, timeout_s: float) -> dict[str, Any]:
    """Wait until the learner flagged every feedback row of `ids` applied (or `timeout_s`)."""
    from serving.pg_store import PgStore

    store = PgStore(store_url)
    deadline = time.perf_counter() + timeout_s
    applied = 0
    while True:
        applied = sum(r.applied for r in store.feedback() if r.feedback_id in ids)
        if applied >= len(ids) or time.perf_counter() > deadline:
            break
        time.sleep(0.05)
    store.close()
    wall = time.perf_counter() - since
    return {
        "applied": applied,
        "seconds": round(wall, 2),
        "applied_per_s": round(applied / wall, 1) if wall > 0 else 0.0,
        "drained": applied >= len(ids),
    }


def worker_phases(
    seeded: Seeded, cfg: LoadConfig, env: dict[str, str], pg_server: str
) -> dict[str, Any]:
    """The phases (module docstring) against `memento serve --workers cfg.workers`, `env`
    being the single-process server's environment."""
    run = seeded.workdir / f"workers-{cfg.workers}"
    run.mkdir()
    if (seeded.db.parent / "checkpoints").exists():
        shutil.copytree(seeded.db.parent / "checkpoints", run / "checkpoints")
    rng = random.Random(cfg.seed + 2)  # the request mix of the single-process phases
    users = list(seeded.histories)
    bodies = [
        ("/v1/recommend", {"user_id": rng.choice(users), "n": cfg.n}, READ_AUTH)
        for _ in range(cfg.requests)
    ]
    with pg_copy(seeded, pg_server) as store_url:
        wenv = {
            **env,
            "MEMENTO_STORE_URL": store_url,
            "MEMENTO_WORKERS": str(cfg.workers),
            "MEMENTO_CHECKPOINT_DIR": str(run / "checkpoints"),
        }
        log = seeded.workdir / f"server-workers-{cfg.workers}.log"
        with ServerProcess(wenv, log=log).start(timeout_s=600) as server:
            assert server.proc is not None
            root = server.proc.pid
            for u in users[: 20 * cfg.workers]:  # warm-up, every worker
                httpx.post(
                    server.url + "/v1/recommend",
                    json={"user_id": u},
                    headers=READ_AUTH,
                    timeout=120,
                )
            load_before = os.getloadavg()
            cpu0 = _tree_cpu(root)
            rec1, _ = asyncio.run(drive_requests(server.url, bodies, cfg, 1))
            cpu1 = _tree_cpu(root)
            rec, decisions = asyncio.run(drive_requests(server.url, bodies, cfg, cfg.concurrency))
            cpu2 = _tree_cpu(root)
            fb_bodies = feedback_bodies(decisions, rng, "lt-workers")
            since = time.perf_counter()
            fb, answers = asyncio.run(drive_requests(server.url, fb_bodies, cfg, cfg.concurrency))
            ids = {int(a["feedback_id"]) for a in answers}
            drained = _drain(store_url, ids, since, cfg.max_seconds * 4)
            load_after = os.getloadavg()
    return {
        "workers": cfg.workers,
        **recommend_figures(rec1, rec, (cpu0, cpu1, cpu2), cfg.concurrency),
        f"http_feedback_concurrency_{cfg.concurrency}": asdict(fb),
        "learner_drain_after_feedback": drained,
        "load_average_1_5_15": [round(x, 2) for x in (*load_before[:1], *load_after)],
    }


def worker_variant(seeded: Seeded, cfg: LoadConfig, env: dict[str, str]) -> dict[str, Any]:
    """`worker_phases` on `cfg.store_url`'s server (else `MEMENTO_TEST_PG_URL`'s, else a
    throwaway `scripts/postgres.sh` one, stopped afterwards)."""
    url = cfg.store_url or os.environ.get("MEMENTO_TEST_PG_URL")
    with pg_server(url, seeded.workdir) as server_url:
        return worker_phases(seeded, cfg, env, server_url)

"""HTTP load test of the running service on loopback, next to the bare in-process core call.

`memento bench serving --cases 100000 --requests 2000 --concurrency 8 --llm smollm2-135m`
writes a synthetic catalogue (`MEMENTO_ITEMS_PATH`), seeds a fresh SQLite store with event
histories over it, and writes `--cases` cases through an in-process `serving.core.ServingCore`
keyed exactly as the core keys them (`Runtime.case_encoder` over the runtime's item vectors:
state = mean of 5 item vectors, + the case item's vector), into both the case log and the bank
(`Runtime.add_cases`), then checkpoints a bank snapshot. Then, for each variant (no LLM, then
`--llm` unless `none`): times `ServingCore.recommend` in-process on that snapshot (the baseline,
same settings, same request mix), starts `memento serve` on 127.0.0.1 with the same settings
and drives it with httpx (async, bounded in requests and seconds): recommend with one request
in flight (latency, compared with the bare call), recommend with `--concurrency` in flight
(throughput), then feedback on the decisions it returned (the flood) and the time the learner
takes to apply all of it (its apply rate), then recommend while every list gets one feedback
(latency with the learner running, the learner's lag in decisions:
`bench.service.learner_load`). Prints one JSON object: p50/p99 and throughput per phase, load
average. Recommend sends the read key, feedback the write key. `--scorer items` serves the
item scorer (what `memento train` ships); `--baseline-tree DIR` runs the same server phases
with the server of another checkout first, on a copy of the same seeded store, beside.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import os
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import psutil

from bench.service.bare_learner import in_subprocess
from bench.service.drive import (
    PhaseStats,
    drive_requests,
    feedback_bodies,
    phase_stats,
    recommend_figures,
)
from bench.service.learner_load import drain, with_learner
from serving.app import limit_blas_threads
from serving.core import build_core
from serving.process import ServerProcess
from serving.service import EventRecord
from serving.settings import ServingSettings
from serving.store import CaseRecord, Store
from serving.testing import READ_AUTH, metric, server_env

logger = logging.getLogger(__name__)


FLOOD_IN_FLIGHT = 8
"""Feedback requests in flight in the flood (at least; `--concurrency` when higher): one at a
time, the client's own posting rate (about 200/s here) bounded the learner's drain figure."""


@dataclass(frozen=True)
class LoadConfig:
    """Size and bounds of one load-test run."""

    cases: int = 100_000
    """Synthetic cases seeded into the bank."""
    users: int = 2_000
    """Synthetic users with event histories."""
    items: int = 20_000
    """Catalog size (Zipf-distributed popularity)."""
    requests: int = 2_000
    """Requests per HTTP phase (recommend, feedback) and bare-core calls."""
    concurrency: int = 8
    """In-flight HTTP requests."""
    max_seconds: float = 60.0
    """Wall-clock bound per phase."""
    n: int = 10
    """Items per recommendation."""
    seed: int = 0
    """Random seed of the synthetic data and request mix."""
    dim: int = 64
    """Hashing text-encoder dimension (= key and state dimension)."""
    index: str = "hnsw"
    """faiss index of the bank: flat or hnsw."""
    llm: str = "smollm2-135m"
    """LLM of the ranking variant (none: only the variant without LLM)."""
    llm_requests: int = 100
    """Requests per phase (and bare calls) of the LLM variant."""
    fresh_scorer: str | None = None
    """Override of the fresh model's scorer (`MEMENTO_FRESH__RECOMMEND__SCORER`): `items` (the
    scorer `memento train` ships; its lists carry propensities) or `blend`; None: the online
    preset's."""
    baseline_tree: str | None = None
    """A checkout of another commit (a git worktree): its server runs the same HTTP phases
    on a copy of the same seeded store, reported beside this tree's (no bare-core phase)."""
    workers: int = 1
    """More than 1: `memento serve --workers N` also runs the recommend and feedback phases,
    on a PostgreSQL copy of the seeded store (`bench.service.workers_load`; no LLM variant)."""
    store_url: str | None = None
    """PostgreSQL server of the worker phases (None: `MEMENTO_TEST_PG_URL`, else a throwaway
    `scripts/postgres.sh` server)."""


_KINDS = ("running shoe", "wool hat", "garden chair", "desk lamp", "phone case", "tea cup")
_COLOURS = ("red", "blue", "green", "black", "white")


def write_catalogue(path: Path, cfg: LoadConfig) -> list[str]:
    """A canonical `items.parquet` of `cfg.items` items (ids `i<k>`, unique titles); the ids."""
    ids = [f"i{k}" for k in range(cfg.items)]
    titles = [
        f"{_COLOURS[k % len(_COLOURS)]} {_KINDS[(k // len(_COLOURS)) % len(_KINDS)]} {k}"
        for k in range(cfg.items)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"item_id": ids, "title": titles}).write_parquet(path)
    return ids


def _settings(db: Path, items: Path, cfg: LoadConfig, llm: str) -> ServingSettings:
    """The settings of the bare core; `_env` gives the server the same ones. The bank is
    unbounded here (the seeding core starts empty, so its automatic capacity would stop it at
    `MIN_AUTO_CAPACITY`); the server's automatic capacity is then the seeded bank's size."""
    return ServingSettings(
        db_path=db,
        case_capacity=0,
        fresh={
            "text": {"kind": "hashing", "dim": cfg.dim},
            "case_bank": {"index": cfg.index},
            **({"recommend": {"scorer": cfg.fresh_scorer}} if cfg.fresh_scorer else {}),
        },
        llm=llm,  # type: ignore[arg-type]
        model_uri="none",
        items_path=items,
    )


def _env(db: Path, items: Path, cfg: LoadConfig, llm: str) -> dict[str, str]:
    scorer = {"MEMENTO_FRESH__RECOMMEND__SCORER": cfg.fresh_scorer} if cfg.fresh_scorer else {}
    return server_env(
        db,
        MEMENTO_CHECKPOINT_EVERY="500",
        MEMENTO_UPDATES_PER_FEEDBACK="2",  # `memento serve`'s default (the tests' servers: 4)
        MEMENTO_QUEUE_SIZE="100000",
        MEMENTO_FRESH__TEXT__DIM=str(cfg.dim),
        MEMENTO_FRESH__CASE_BANK__INDEX=cfg.index,
        MEMENTO_LLM=llm,
        MEMENTO_MODEL_URI="none",
        MEMENTO_ITEMS_PATH=str(items),
        **scorer,
    )


def seed_store(db: Path, items: Path, cfg: LoadConfig) -> dict[str, list[EventRecord]]:
    """Catalogue events per user into the store, then `cfg.cases` cases written through an
    in-process core (case log + bank) and a bank snapshot; each user's history."""
    rng = random.Random(cfg.seed)
    weights = list(itertools.accumulate(1.0 / (k + 1) for k in range(cfg.items)))
    catalog = write_catalogue(items, cfg)
    store = Store(db)
    now = time.time()
    histories: dict[str, list[EventRecord]] = {}
    for u in range(cfg.users):
        picks = rng.choices(catalog, cum_weights=weights, k=rng.randint(3, 15))
        events = [
            EventRecord(i, rng.choice(["click"] * 8 + ["cart", "alipay"]), now - 3600 + 60 * t)
            for t, i in enumerate(picks)
        ]
        histories[f"u{u}"] = events
        store.append_events(f"u{u}", events)
    core = build_core(_settings(db, items, cfg, "none"), store)
    rt = core.runtime
    assert rt.items.ids == catalog, "the core must serve the written catalogue"
    vecs = rt.items.vecs  # the core's own item vectors
    for lo in range(0, cfg.cases, 20_000):
        hi = min(cfg.cases, lo + 20_000)
        hist = np.array(
            [rng.choices(range(cfg.items), cum_weights=weights, k=5) for _ in range(lo, hi)]
        )
        acted = rng.choices(range(cfg.items), cum_weights=weights, k=hi - lo)
        states = vecs[hist].mean(1)
        states /= np.maximum(np.linalg.norm(states, axis=1, keepdims=True), 1e-12)
        sids = [f"s{c}" for c in range(lo, hi)]
        owners = [f"u{c % cfg.users}" for c in range(lo, hi)]
        payloads = [
            {
                "item_id": catalog[a],
                "items": [catalog[a]],
                "title": rt.items.titles[a],
                "source": "replay",
                "sid": sid,
                "user_id": owner,
            }
            for a, sid, owner in zip(acted, sids, owners, strict=True)
        ]
        ts = [now - 7200] * len(sids)
        cases = rt.case_encoder.make_cases(states, payloads, [1.0] * len(sids), ts, "replay")
        store.put_cases(
            CaseRecord(sid, owner, c.payload, c.key.tobytes(), c.reward, c.ts, False)
            for sid, owner, c in zip(sids, owners, cases, strict=True)
        )
        with rt.lock:
            rt.add_cases(cases, sids, owners)
    assert core.bank_size() == cfg.cases, (core.bank_size(), cfg.cases)
    core.checkpoint()  # the bank snapshot: the bare cores and servers restore it, no re-index
    core.close()
    store.close()
    return histories


def bare_core(
    db: Path,
    items: Path,
    histories: dict[str, list[EventRecord]],
    cfg: LoadConfig,
    llm: str,
    requests: int,
) -> tuple[PhaseStats, PhaseStats, int]:
    """Time `ServingCore.recommend` in-process on the same store, settings and request mix:
    wall clock, and the calling thread's CPU time (`time.thread_time`: what a call costs
    whatever else runs on the machine); the bank size."""
    limit_blas_threads(1)  # same BLAS setting as the server (MEMENTO_BLAS_THREADS default)
    store = Store(db)
    core = build_core(_settings(db, items, cfg, llm), store)
    size = core.bank_size()
    rng = random.Random(cfg.seed + 1)
    users = list(histories)
    for u in users[:20]:  # warm-up, like the server phase
        core.recommend(u, cfg.n, {}, histories[u], [], explain=False)
    lat, cpu = [], []
    start = time.perf_counter()
    for _ in range(requests):
        u = rng.choice(users)
        t0, c0 = time.perf_counter(), time.thread_time()
        core.recommend(u, cfg.n, {}, histories[u], [], explain=False)
        lat.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        if time.perf_counter() - start > cfg.max_seconds:
            break
    wall = time.perf_counter() - start
    core.close()
    store.close()
    del core
    gc.collect()
    return phase_stats(lat, 0, wall), phase_stats(cpu, 0, wall), size


@dataclass(frozen=True)
class Seeded:
    """A seeded store and where it lives."""

    db: Path
    """The SQLite store (its bank snapshot under `checkpoints/` beside it)."""
    items: Path
    """The catalogue parquet."""
    workdir: Path
    """Folder of the run (copies of the store, server logs)."""
    histories: dict[str, list[EventRecord]]
    """Each user's event history."""


def _server_phases(seeded: Seeded, cfg: LoadConfig, llm: str, tree: str | None) -> dict[str, Any]:
    """The HTTP phases against a server of this checkout (`tree` None) or of `tree` (its
    modules first on the path), on a copy of the seeded store: recommend with 1 and
    `concurrency` in flight, feedback on those decisions (the flood, `FLOOD_IN_FLIGHT` or more
    in flight) and the learner draining it, then recommend while every list gets one feedback
    (`bench.service.learner_load`)."""
    db, items, workdir, histories = seeded.db, seeded.items, seeded.workdir, seeded.histories
    requests = cfg.requests if llm == "none" else cfg.llm_requests
    name = "baseline" if tree else "this"
    run = workdir / f"{name}-{llm}"
    run.mkdir()
    shutil.copy(db, run / db.name)
    if (db.parent / "checkpoints").exists():
        shutil.copytree(db.parent / "checkpoints", run / "checkpoints")
    env = _env(run / db.name, items, cfg, llm)
    if tree:  # the other checkout's modules, not this one's (no cwd on the path)
        env.update(PYTHONSAFEPATH="1", PYTHONPATH=str(Path(tree).resolve()))
    in_process = in_subprocess(seeded.db, run / "in-process", env, tree, requests, cfg.users)
    rng = random.Random(cfg.seed + 2)
    users = list(histories)
    rec_bodies = [
        ("/v1/recommend", {"user_id": rng.choice(users), "n": cfg.n}, READ_AUTH)
        for _ in range(requests)
    ]
    log = workdir / f"server-{name}-{llm}.log"
    with ServerProcess(env, log=log).start(timeout_s=600) as server:
        assert server.proc is not None
        for u in users[:20]:  # warm-up
            httpx.post(
                server.url + "/v1/recommend", json={"user_id": u}, headers=READ_AUTH, timeout=120
            )
        with httpx.Client(base_url=server.url, timeout=30) as client:
            served_cases = int(metric(client, "memento_case_bank_size"))
            applied0 = metric(client, "memento_learner_updates_total")
        proc = psutil.Process(server.proc.pid)

        def cpu() -> float:  # the server's CPU seconds: what a phase cost, whatever the load
            t = proc.cpu_times()
            return float(t.user + t.system)

        load_before = os.getloadavg()
        cpu0 = cpu()
        rec1, _ = asyncio.run(drive_requests(server.url, rec_bodies, cfg, 1))
        cpu1 = cpu()
        rec, decisions = asyncio.run(drive_requests(server.url, rec_bodies, cfg, cfg.concurrency))
        fb_bodies = feedback_bodies(decisions, rng, f"lt-{llm}")
        since, cpu2 = time.perf_counter(), cpu()  # cpu2 - cpu1: the concurrent recommends
        flood = max(cfg.concurrency, FLOOD_IN_FLIGHT)
        fb, _ = asyncio.run(drive_requests(server.url, fb_bodies, cfg, flood))
        drained = drain(server.url, applied0, since, fb.count, cfg.max_seconds * 4)
        cpu3 = cpu()
        live = with_learner(server.url, users, cfg.n, requests, cfg.concurrency, cfg.max_seconds)
        cpu4 = cpu()
        load_after = os.getloadavg()
    drained["server_cpu_ms_per_applied"] = (
        round(1000 * (cpu3 - cpu2) / drained["applied"], 2) if drained["applied"] else None
    )
    return {
        "server_tree": tree or "this checkout",
        "in_process_thread_cpu": in_process,
        "server_bank_cases": served_cases,
        "http_share_with_cases": round(sum(bool(d["cases"]) for d in decisions) / len(decisions), 3)
        if decisions
        else 0.0,
        **recommend_figures(rec1, rec, (cpu0, cpu1, cpu2), cfg.concurrency),
        f"http_feedback_concurrency_{flood}": asdict(fb),
        "learner_drain_after_feedback": drained,
        f"recommend_with_learner_concurrency_{cfg.concurrency}": asdict(live),
        "server_cpu_ms_per_decision_with_learner": round(
            1000 * (cpu4 - cpu3) / max(1, live.decisions), 2
        ),
        "load_average_1_5_15": [round(x, 2) for x in (*load_before[:1], *load_after)],
    }


def _variant(seeded: Seeded, cfg: LoadConfig, llm: str) -> dict[str, Any]:
    requests = cfg.requests if llm == "none" else cfg.llm_requests
    bare, bare_cpu, size = bare_core(seeded.db, seeded.items, seeded.histories, cfg, llm, requests)
    out: dict[str, Any] = {
        "llm": llm,
        "bank_cases": size,
        "bare_core_recommend": asdict(bare),
        "bare_core_recommend_thread_cpu": asdict(bare_cpu),
    }
    if cfg.baseline_tree:  # first, so this checkout's server runs on the warmer machine
        out["baseline"] = _server_phases(seeded, cfg, llm, cfg.baseline_tree)
    this = _server_phases(seeded, cfg, llm, None)
    rec1 = this["http_recommend_sequential"]
    out.update(this)
    out["ratio_p99_http_vs_bare"] = round(rec1["p99_ms"] / bare.p99_ms, 2) if bare.p99_ms else None
    out["ratio_p50_http_vs_bare"] = round(rec1["p50_ms"] / bare.p50_ms, 2) if bare.p50_ms else None
    if cfg.workers > 1 and llm == "none":  # `memento serve --workers N` on PostgreSQL
        from bench.service.workers_load import worker_variant

        out["workers"] = worker_variant(seeded, cfg, _env(seeded.db, seeded.items, cfg, llm))
    return out


def run_loadtest(cfg: LoadConfig, workdir: Path) -> dict[str, Any]:
    """Seed, then per LLM variant: bare core, server, both HTTP phases; the figures."""
    db, items = workdir / "load.sqlite3", workdir / "catalogue" / "items.parquet"
    t0 = time.perf_counter()
    histories = seed_store(db, items, cfg)
    seed_s = time.perf_counter() - t0
    seeded = Seeded(db, items, workdir, histories)
    variants = ["none"] + ([cfg.llm] if cfg.llm != "none" else [])
    return {
        "config": asdict(cfg),
        "seed_seconds": round(seed_s, 1),
        "core": "serving.core (fresh ModelBundle over the catalogue), hashing text encoder",
        "cpu_count": os.cpu_count(),
        "variants": [_variant(seeded, cfg, llm) for llm in variants],
        "note": "load_average_1_5_15 = [1-min before the recommend phases, 1/5/15-min after]; "
        "ratios compare sequential HTTP (one request in flight) with the sequential bare call",
    }


def main(cfg: LoadConfig) -> dict[str, Any]:
    """Run in a temporary folder (deleted afterwards) and return the figures."""
    with tempfile.TemporaryDirectory(prefix="memento-load-") as tmp:
        return run_loadtest(cfg, Path(tmp))

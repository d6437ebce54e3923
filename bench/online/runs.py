"""Every (seed, method) run of an online benchmark, one after another or `jobs` at a time.

Each run is `bench.online.bench.run_one` (cached as an .npz as soon as it ends). With
`jobs` > 1 the runs go to that many worker processes (spawned: each imports its own torch and
service), seeds outermost in submission order; an in-process service run repeats on its seed
(`bench.online.inprocess`), so its result does not depend on what runs beside it. Progress
is then reported per finished run instead of per decision.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context

from bench.online import bench
from bench.online.bench import OnlineConfig, Run

__all__ = ["Finished", "run_all"]

RunProgress = Callable[[str, int, int | None], None]
"""Called with (method, seed, decisions done); None when the run came from the cache."""


@dataclass
class Finished:
    """One (method, seed) run and how it went."""

    run: Run
    wall_s: float
    """Seconds it took (a cached run: the time to load it)."""
    cached: bool
    """Loaded from the cache rather than run."""


def _one(cfg: OnlineConfig, method: str, seed: int, progress: RunProgress | None) -> Finished:
    fresh = False

    def step(done: int) -> None:
        nonlocal fresh
        fresh = True
        if progress is not None:
            progress(method, seed, done)

    t = time.perf_counter()
    run = bench.run_one(cfg, method, seed, step)  # looked up per call (tests replace it)
    if not fresh and progress is not None:
        progress(method, seed, None)
    return Finished(run, time.perf_counter() - t, not fresh)


def _worker(cfg: OnlineConfig, method: str, seed: int) -> Finished:
    return _one(cfg, method, seed, None)


def run_all(
    cfg: OnlineConfig, jobs: int = 1, progress: RunProgress | None = None
) -> dict[tuple[str, int], Finished]:
    """Every (method, seed) run of `cfg`, `jobs` at a time (module docstring)."""
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    order = [(m, s) for s in cfg.seeds for m in cfg.methods]
    if jobs == 1 or len(order) == 1:
        return {(m, s): _one(cfg, m, s, progress) for m, s in order}
    out: dict[tuple[str, int], Finished] = {}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_worker, cfg, m, s): (m, s) for m, s in order}
        for fut in as_completed(futures):
            m, s = futures[fut]
            out[(m, s)] = done = fut.result()
            if progress is not None:
                progress(m, s, None if done.cached else cfg.interactions)
    return {k: out[k] for k in order}

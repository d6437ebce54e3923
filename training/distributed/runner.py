"""The driver of the Ray engine: training passes on actors, validation and the test rows in
process, exactly as `training.modes.run_memory_mode` (package docstring)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recsys.llm.protocol import FrozenLLM
from recsys.rl.learner import Learner
from recsys.rl.learner_part import LearnerPart
from training.config import LEARNED_MODES, TrainConfig
from training.distributed.actors import LearnerActor, ReplayWorker
from training.distributed.config import DistributedConfig
from training.distributed.shards import shard_decisions
from training.modes import MethodResult, run_memory_mode
from training.replay_env import SplitParts
from training.replay_world import ReplayWorld

__all__ = ["RayMemoryRunner", "RunStats", "ensure_ray", "ray_session"]

log = logging.getLogger(__name__)


def ensure_ray(dcfg: DistributedConfig) -> bool:
    """Join `dcfg.address`, or the running cluster, or start a local one; True when this call
    started (and so should shut down) the connection."""
    import ray

    if ray.is_initialized():
        return False
    if dcfg.address:
        ray.init(address=dcfg.address, log_to_driver=False)
    else:
        ray.init(
            num_cpus=dcfg.num_cpus or dcfg.workers + 1,
            include_dashboard=False,
            object_store_memory=dcfg.object_store_mb * 1024 * 1024,
            log_to_driver=False,
            configure_logging=False,
        )
    return True


@dataclass
class RunStats:
    """What the actors of one (mode, seed) run did."""

    mode: str
    seed: int
    learner: dict[str, Any] = field(default_factory=dict)
    """`LearnerActor.stats` at the end."""
    workers: list[dict[str, Any]] = field(default_factory=list)
    """`ReplayWorker.stats` of each actor at the end."""
    shard_sizes: list[int] = field(default_factory=list)
    """Training decisions per actor per pass."""
    pass_s: list[float] = field(default_factory=list)
    """Wall seconds of each distributed training pass."""
    startup_s: float = 0.0
    """Wall seconds until every actor was up with its parts built."""


class RayMemoryRunner:
    """`run_memory_mode` with the training passes on W actors and one learner actor; a drop-in
    `memory_runner` for `training.fit.fit`. Modes that learn nothing (`non-parametric`,
    `no-memory`) run in process."""

    def __init__(self, dcfg: DistributedConfig) -> None:
        self.dcfg = dcfg
        self.stats: list[RunStats] = []

    def __call__(
        self,
        world: ReplayWorld,
        parts: SplitParts,
        cfg: TrainConfig,
        mode: str,
        seed: int,
        llm: FrozenLLM | None,
        progress: Any = None,
    ) -> list[MethodResult]:
        if mode not in LEARNED_MODES or mode == "non-parametric":
            return run_memory_mode(world, parts, cfg, mode, seed, llm, progress)
        if llm is not None and cfg.llm_fraction > 0:
            raise ValueError("the ray engine does not run the LLM in training (llm_fraction 0)")
        import ray

        ensure_ray(self.dcfg)
        w = self.dcfg.workers
        cpus = self.dcfg.cpus_per_actor
        if cpus is None:
            cpus = min(1.0, float(ray.cluster_resources().get("CPU", 1.0)) / (w + 1))
        env = {"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}}
        opts: dict[str, Any] = {"num_cpus": cpus, "runtime_env": env}
        world_ref = ray.put(world)
        learner_actor: Any = (
            ray.remote(LearnerActor)
            .options(**opts)
            .remote(cfg, mode, seed, world.dim, self.dcfg.broadcast_every)
        )
        workers: list[Any] = [
            ray.remote(ReplayWorker)
            .options(**opts)
            .remote(i, world_ref, cfg, mode, seed, learner_actor, self.dcfg.sync_every)
            for i in range(w)
        ]
        stats = RunStats(mode, seed)
        try:
            t0 = time.perf_counter()
            ray.get([a.stats.remote() for a in [*workers, learner_actor]])  # started, parts built
            stats.startup_s = time.perf_counter() - t0
            results = self._run(
                world, parts, cfg, mode, seed, llm, learner_actor, workers, stats, progress
            )
            stats.learner = ray.get(learner_actor.stats.remote())
            stats.workers = ray.get([a.stats.remote() for a in workers])
        finally:
            for a in [*workers, learner_actor]:
                ray.kill(a)
        self.stats.append(stats)
        return results

    def _run(
        self,
        world: ReplayWorld,
        parts: SplitParts,
        cfg: TrainConfig,
        mode: str,
        seed: int,
        llm: FrozenLLM | None,
        learner_actor: Any,
        workers: list[Any],
        stats: RunStats,
        progress: Any,
    ) -> list[MethodResult]:
        """`run_memory_mode` with its training pass on the actors (`_ActorPass`)."""
        train_pass = _ActorPass(world, learner_actor, workers, stats, progress)
        info = {"engine": "ray", "workers": len(workers)}
        return run_memory_mode(world, parts, cfg, mode, seed, llm, progress, train_pass, info)


class _ActorPass:
    """One distributed training pass: the decisions are split into user shards (once), each
    worker replays its shard, then the driver's learner takes the learner actor's weights."""

    def __init__(
        self,
        world: ReplayWorld,
        learner_actor: Any,
        workers: list[Any],
        stats: RunStats,
        progress: Any,
    ) -> None:
        self.world, self.learner_actor, self.workers = world, learner_actor, workers
        self.stats, self.progress = stats, progress
        self._shards: list[np.ndarray] | None = None

    def __call__(
        self, train_idx: np.ndarray, learner: Learner, label: str
    ) -> tuple[float, list[dict[str, float]]]:
        import ray

        if self._shards is None:
            self._shards = shard_decisions(self.world, train_idx, len(self.workers))
            self.stats.shard_sizes = [len(s) for s in self._shards]
        t0 = time.perf_counter()
        passes = ray.get([a.run.remote(s) for a, s in zip(self.workers, self._shards, strict=True)])
        end = ray.get(self.learner_actor.end_pass.remote())
        self.stats.pass_s.append(time.perf_counter() - t0)
        if self.progress is not None:
            self.progress(f"{label} (ray)", len(train_idx), len(train_idx))
        learner.apply_part(LearnerPart.from_bytes(end["part"], "learner actor's checkpoint"))
        rewards = [d.reward for p in passes for d in p.decisions]
        log.info(
            "%s (ray, %d workers): %d decisions in %.1f s",
            label,
            len(self.workers),
            len(rewards),
            self.stats.pass_s[-1],
        )
        return (float(np.mean(rewards)) if rewards else 0.0), list(end["learn"])


@contextmanager
def ray_session(dcfg: DistributedConfig) -> Iterator[RayMemoryRunner]:
    """A `RayMemoryRunner` for `training.fit.fit` (`memento train --engine ray`): joins or
    starts a cluster, and shuts down only a cluster it started."""
    import ray

    started = ensure_ray(dcfg)
    try:
        yield RayMemoryRunner(dcfg)
    finally:
        if started:
            ray.shutdown()

"""The actors of the Ray engine (plain classes; `runner` wraps them with `ray.remote`).

`ForwardingLoop` is the actor side of `MemoryLoop`: it decides with a local copy of the
learner's weights and forwards every `learn` call to the learner actor, which applies it with
the one `MemoryLoop.learn` (package docstring: the staleness this introduces).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from recsys.loop import Decided, LearnStep, MemoryLoop
from recsys.records import Candidates
from recsys.rl.learner import Learner
from recsys.rl.learner_part import LearnerPart
from training.config import TrainConfig
from training.modes import _learner, recommender_over
from training.replay_env import PassResult, build_parts, run_pass
from training.replay_world import ReplayWorld

__all__ = ["ForwardingLoop", "LearnerActor", "Outgoing", "ReplayWorker", "worker_seed"]

Outgoing = tuple[Decided, np.ndarray, np.ndarray | None, Candidates | None]
"""One `MemoryLoop.learn` call as it travels: (decided, rewards, s', snapshot of s')."""


def worker_seed(seed: int, index: int) -> int:
    """Sampling seed of actor `index` (actor 0 draws the single-process run's stream)."""
    return seed + 7919 * index


class ForwardingLoop(MemoryLoop):
    """`MemoryLoop` whose `learn` sends the call to the learner actor (via `send`, every
    `sync_every` calls and on `flush`) instead of updating the local acting copy. The local
    copy still assembles the `Transition` (the returned `LearnStep`) but runs no gradient step
    and keeps a one-slot replay buffer."""

    def __init__(
        self, learner: Learner, send: Callable[[list[Outgoing], bool], None], sync_every: int
    ) -> None:
        super().__init__(learner, updates_per_learn=0.0)
        self.send = send
        self.sync_every = sync_every
        self.outbox: list[Outgoing] = []
        self.forwarded = 0

    def learn(
        self,
        decided: Decided,
        rewards: np.ndarray,
        next_state: np.ndarray | None,
        next_cands: Candidates | None,
    ) -> LearnStep:
        """Queue the call for the learner actor; send the queue once it holds `sync_every`."""
        step = super().learn(decided, rewards, next_state, next_cands)
        self.outbox.append((decided, np.asarray(rewards, np.float32), next_state, next_cands))
        if len(self.outbox) >= self.sync_every:
            self.flush(wait=False)
        return step

    def flush(self, wait: bool = True) -> None:
        """Send what is queued (wait: until the learner has applied everything sent)."""
        batch, self.outbox = self.outbox, []
        self.forwarded += len(batch)
        self.send(batch, wait)


class LearnerActor:
    """Owns the one `Learner`; applies forwarded transitions with `MemoryLoop.learn` and
    publishes its weights to the object store every `broadcast_every`: the bundle's learner
    part without the optimiser state (`LearnerPart.to_bytes`), all an acting copy needs."""

    def __init__(
        self, cfg: TrainConfig, mode: str, seed: int, dim: int, broadcast_every: int
    ) -> None:
        import torch

        torch.set_num_threads(1)
        self.learner = _learner(cfg, mode, seed, dim)
        self.loop = MemoryLoop(self.learner, cfg.updates_per_transition)
        self.broadcast_every = broadcast_every
        self.version = 0
        self.received: dict[int, int] = {}
        self.metrics: list[dict[str, float]] = []
        self.busy_s = 0.0
        self._since = 0
        self._ref: Any = None
        self.publish()

    def publish(self) -> int:
        """Put the current weights in the object store as a new version; returns it."""
        import ray

        self._ref = ray.put(self.learner.part(optimiser=False).to_bytes())
        self.version += 1
        self._since = 0
        return self.version

    def push(self, worker: int, batch: list[Outgoing]) -> tuple[int, Any]:
        """Apply `batch` in order; (newest published version, its object ref)."""
        t0 = time.perf_counter()
        for decided, rewards, s2, c2 in batch:
            self.metrics.extend(self.loop.learn(decided, rewards, s2, c2).metrics)
            self._since += 1
            if self._since >= self.broadcast_every:
                self.publish()
        self.received[worker] = self.received.get(worker, 0) + len(batch)
        self.busy_s += time.perf_counter() - t0
        return self.version, self._ref

    def weights(self) -> tuple[int, Any]:
        """(newest published version, its object ref)."""
        return self.version, self._ref

    def end_pass(self) -> dict[str, Any]:
        """Publish, then hand over the checkpoint part (with the optimiser state, so the
        driver's learner is the one this actor trained) and the metrics of the updates since
        the last call: {"part": `LearnerPart` bytes, "learn", "version"}."""
        self.publish()
        learn, self.metrics = self.metrics, []
        part = self.learner.part(optimiser=True).to_bytes()
        return {"part": part, "learn": learn, "version": self.version}

    def stats(self) -> dict[str, Any]:
        """Transitions received per worker, published version, gradient steps, busy seconds."""
        return {
            "received": dict(self.received),
            "version": self.version,
            "steps": self.learner.step,
            "busy_s": self.busy_s,
        }


class ReplayWorker:
    """Replays its shard of each training pass through the one `Recommender` and `run_pass`,
    acting with the newest weights the learner actor published."""

    def __init__(
        self,
        index: int,
        world: ReplayWorld,
        cfg: TrainConfig,
        mode: str,
        seed: int,
        learner: Any,
        sync_every: int,
    ) -> None:
        import torch

        torch.set_num_threads(1)
        self.index = index
        self.world = world
        self.cfg = cfg
        self.learner_actor = learner
        parts = build_parts(world, cfg, ~world.held_out)  # = build_split_parts(...).train
        # acting copy: weights come from the learner actor; its own replay is never sampled
        acting = dataclasses.replace(cfg.core.learner, replay_capacity=1)
        acting_cfg = dataclasses.replace(cfg, core=dataclasses.replace(cfg.core, learner=acting))
        local = _learner(acting_cfg, mode, worker_seed(seed, index), world.dim)
        self.loop = ForwardingLoop(local, self._send, sync_every)
        self.rec = recommender_over(parts, cfg, self.loop, None, mode)
        self.rng = np.random.default_rng(worker_seed(seed, index))
        self.version = 0
        self.versions_seen: list[int] = []
        self.decisions = 0
        self.replay_s = 0.0
        self._inflight: Any = None

    def _adopt(self, reply: tuple[int, Any]) -> None:
        import ray

        version, ref = reply
        if version > self.version:
            self.loop.learner.apply_part(LearnerPart.from_bytes(ray.get(ref), "broadcast"))
            self.version = version
            self.versions_seen.append(version)

    def _send(self, batch: list[Outgoing], wait: bool) -> None:
        """At most one batch in flight: collect the previous reply, send this one."""
        import ray

        if self._inflight is not None:
            self._adopt(ray.get(self._inflight))
            self._inflight = None
        if batch:
            self._inflight = self.learner_actor.push.remote(self.index, batch)
        if wait and self._inflight is not None:
            self._adopt(ray.get(self._inflight))
            self._inflight = None

    def run(self, decisions: np.ndarray) -> PassResult:
        """One training pass over this shard (event indices, time order) with learning on."""
        import ray

        self._adopt(ray.get(self.learner_actor.weights.remote()))
        t0 = time.perf_counter()
        res = run_pass(
            self.world,
            self.rec,
            self.cfg,
            decisions,
            learn=True,
            greedy=False,
            llm_fraction=0.0,
            rng=self.rng,
        )
        self.loop.flush(wait=True)
        self.replay_s += time.perf_counter() - t0
        self.decisions += len(decisions)
        return res

    def stats(self) -> dict[str, Any]:
        """Weights version held, versions adopted, transitions forwarded, decisions, seconds."""
        return {
            "index": self.index,
            "version": self.version,
            "versions_seen": list(self.versions_seen),
            "forwarded": self.loop.forwarded,
            "decisions": self.decisions,
            "replay_s": self.replay_s,
        }

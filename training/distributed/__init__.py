"""Distributed replay training, Ape-X style (`memento train --engine ray --workers W`).

Orchestration only: every actor replays through the one `Recommender` / `run_pass` and the one
`MemoryLoop.learn`; what differs from the single-process replay is who calls them.

- **Actors** (`actors.ReplayWorker`, W of them) each replay a disjoint shard of the training
  users (`shards.shard_decisions`, balanced by decision count) in time order against their own
  copy of the training case bank, acting with a broadcast copy of the learner's weights. Their
  `ForwardingLoop` turns `MemoryLoop.learn` into "send this transition to the learner".
- **The learner actor** (`actors.LearnerActor`) owns the one `Learner`; it applies each
  received transition with `MemoryLoop.learn` (same gradient steps per transition as the
  single-process run) and publishes its weights to the object store every `broadcast_every`
  transitions; actors pick up the newest version whenever they send a batch.
- **The driver** (`runner.RayMemoryRunner`) runs validation after each pass, keeps the best
  pass and evaluates the test rows exactly as `training.modes.run_memory_mode` does, in
  process, with the learner's final weights: the test rows are evaluated identically.

Staleness (the only behavioural difference):

- *weights*: an actor acts with weights that can miss the transitions still in its outbox (up
  to `sync_every`), its one batch in flight, the other actors' recent batches and up to
  `broadcast_every` transitions the learner applied since its last publication. With W = 1,
  `sync_every` = 1 and `broadcast_every` = 1 it is one batch behind the single-process loop.
- *learning order*: the learner applies shards' transitions in arrival order, so the order of
  updates interleaves users differently from the global time order (each user's own
  transitions stay in time order). Each transition still reaches the learner only after its
  reward window closed on its actor's clock.
- *cases*: none. The replay writes every training case up front with its outcome time and
  searches the bank as of each decision's time (`training.replay_env`), so "writing a case once
  its outcome is known" is the as-of filter; every actor holds the same time-indexed bank,
  built from the same world (shipped once through the object store), and no case is written
  during a pass. A replay that wrote cases during a pass (serving-style feedback) would route
  them to the bank's owner and publish them with the weights, adding up to one broadcast
  period of case staleness; this engine has no such writes.

Not distributed: the LLM in training (`llm_fraction` > 0 is refused), validation and test
passes, prequential evaluation, baselines and peers (all in the driver, as before).
"""

from __future__ import annotations

from training.distributed.config import ENGINES, DistributedConfig
from training.distributed.runner import RayMemoryRunner, ensure_ray, ray_session
from training.distributed.shards import shard_decisions, shard_users

__all__ = [
    "ENGINES",
    "DistributedConfig",
    "RayMemoryRunner",
    "ensure_ray",
    "ray_session",
    "shard_decisions",
    "shard_users",
]

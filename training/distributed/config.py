"""Settings of the distributed (Ray) replay engine."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ENGINES", "DistributedConfig"]

ENGINES: tuple[str, ...] = ("local", "ray")
"""`memento train --engine`: local (one process, the default) or ray (Ape-X style actors)."""


@dataclass(frozen=True)
class DistributedConfig:
    """How the Ray engine splits and synchronises a replay pass."""

    workers: int = 2
    """W: replay actors, each with a disjoint shard of the training users."""
    sync_every: int = 16
    """Transitions an actor buffers before sending them to the learner actor (and picking up
    the newest published weights)."""
    broadcast_every: int = 32
    """Transitions the learner actor applies between two weight publications."""
    address: str | None = None
    """An existing cluster to join (`ray.init(address=...)`); None: the running one, else a
    local cluster started for this run."""
    num_cpus: int | None = None
    """CPUs of a local cluster started for this run (None: W + 1)."""
    object_store_mb: int = 512
    """Object store of a local cluster started for this run (MiB)."""
    cpus_per_actor: float | None = None
    """CPU resource each actor reserves (None: min(1, cluster CPUs / (W + 1)), so W workers and
    the learner always fit on the cluster)."""

    def __post_init__(self) -> None:
        assert self.workers >= 1, f"{self.workers=}"
        assert self.sync_every >= 1 and self.broadcast_every >= 1, f"{self=}"

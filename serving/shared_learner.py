"""The shared learner of `memento serve --replicas N`: `serving.learner_loop.LearnerLoop` as
one named Ray actor (the loop, the weight format and the resume rules are documented there;
`memento serve --workers N` runs the same loop in a plain process, `serving.workers`)."""

from __future__ import annotations

from typing import Any

import ray

from serving.learner_loop import (
    CHECKPOINT_BLOB,
    LearnerLoop,
    LearnerPartHost,
    apply_published,
    part_host,
    q_digest,
)
from serving.settings import ServingSettings

__all__ = [
    "CHECKPOINT_BLOB",
    "LEARNER_NAME",
    "LearnerPartHost",
    "SharedLearner",
    "actor_options",
    "apply_published",
    "part_host",
    "q_digest",
    "start_learner",
]

LEARNER_NAME = "memento-learner"
"""Ray actor name of the shared learner."""


@ray.remote(num_cpus=0)
class SharedLearner(LearnerLoop):
    """`LearnerLoop` as a Ray actor (its process title names it: `ray::SharedLearner`)."""


def actor_options(settings: ServingSettings) -> dict[str, Any]:
    """Ray options of the replicas and the learner: no CPU reservation (they share the
    machine's cores with the proxy), and the BLAS/OpenMP thread caps set before torch loads in
    the actor process (as `memento serve` does for its own process: OpenMP threads left at
    the core count spin and cost ~10x latency on a small shared machine)."""
    n = str(max(1, settings.blas_threads))
    env = {var: n for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    return {"num_cpus": 0, "runtime_env": {"env_vars": env}}


def start_learner(settings: ServingSettings) -> Any:
    """The named shared learner actor (one per cluster; an existing one is reused); Ray
    restarts it whenever its process dies (it resumes from the store: `_resume`)."""
    opts = actor_options(settings)
    return SharedLearner.options(  # type: ignore[attr-defined]
        name=LEARNER_NAME, get_if_exists=True, runtime_env=opts["runtime_env"], max_restarts=-1
    ).remote(settings)

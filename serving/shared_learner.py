"""The shared learner of `memento serve --replicas N` and the weight format it publishes.

`SharedLearner` (one named Ray actor) polls unapplied feedback from the PostgreSQL store,
applies each row with the same `core.apply_feedback` the single-process learner thread calls,
and publishes a model version (weights + new case ids) in the same transaction that flags
those rows applied (`PgStore.publish`): each acknowledged feedback is reflected exactly once.
A restarted learner resumes from the newest published weights (the replay buffer is not kept,
as in the single process).
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from typing import Any

import ray
import torch

from serving.app import load_core_factory
from serving.pg_store import PgStore
from serving.service import RecommenderBackend
from serving.settings import ServingSettings

logger = logging.getLogger(__name__)

LEARNER_NAME = "memento-learner"
"""Ray actor name of the shared learner."""


def learner_of(core: RecommenderBackend) -> Any:
    """The served learner of a `ServingCore` (its runtime's)."""
    return core.runtime.learner  # type: ignore[attr-defined]


def dump_weights(core: RecommenderBackend) -> bytes:
    """The learner's state (networks, optimisers, alpha, tabular Q) as bytes."""
    learner = learner_of(core)
    buf = io.BytesIO()
    torch.save({"state_dict": learner.state_dict(), "step": learner.step}, buf)
    return buf.getvalue()


def load_weights(core: RecommenderBackend, blob: bytes) -> None:
    """Inverse of `dump_weights`, in place (requests in flight see old or new weights)."""
    learner = learner_of(core)
    ckpt = torch.load(io.BytesIO(blob), weights_only=False)
    learner.load_state_dict(ckpt["state_dict"])
    learner.step = int(ckpt["step"])


def q_digest(core: RecommenderBackend) -> str:
    """Fingerprint of the Q network this core scores with (changes with every update)."""
    h = hashlib.sha1()
    for t in learner_of(core).q.state_dict().values():
        h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


@ray.remote(num_cpus=0)
class SharedLearner:
    """The one learner: applies unapplied feedback from the shared store, publishes versions."""

    def __init__(self, settings: ServingSettings, batch: int = 64) -> None:
        assert settings.store_url, "the shared learner needs MEMENTO_STORE_URL"
        if settings.blas_threads > 0:
            torch.set_num_threads(settings.blas_threads)
        self._store = PgStore(settings.store_url)
        self._core = load_core_factory(settings.core)(settings, self._store)
        self._batch = batch
        self.applied = 0
        self.version = self._store.latest_version()
        if self.version:
            weights = self._store.versions_after(self.version - 1)[-1].weights
            if weights is not None:
                load_weights(self._core, weights)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memento-learner", daemon=True)
        self._thread.start()

    def _step(self) -> bool:
        """Apply one batch of unapplied feedback and publish it; False when there was none."""
        rows = self._store.unapplied_after(0, self._batch)
        if not rows:
            return False
        case_ids: list[str] = []
        for r in rows:
            decision = self._store.get_decision(r.decision_id)
            if decision is None:  # erased meanwhile: flagged applied, nothing learned
                continue
            try:
                update = self._core.apply_feedback(decision, r.item_id, r.action, r.dwell)
            except Exception:
                logger.exception("apply_feedback failed for feedback %d", r.feedback_id)
                continue
            if update.new_case_id:
                case_ids.append(update.new_case_id)
        self.version = self._store.publish(
            dump_weights(self._core), case_ids, [r.feedback_id for r in rows]
        )
        self.applied += len(rows)
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if not self._step():
                    self._stop.wait(0.02)
            except Exception:
                logger.exception("learner step failed; retrying")
                self._stop.wait(1.0)

    def stats(self) -> dict[str, Any]:
        """Version published and feedback rows applied by this actor."""
        return {"version": self.version, "applied": self.applied, "alive": self._thread.is_alive()}

    def stop(self) -> None:
        """Stop polling (the current batch finishes)."""
        self._stop.set()
        self._thread.join()


def actor_options(settings: ServingSettings) -> dict[str, Any]:
    """Ray options of the replicas and the learner: no CPU reservation (they share the
    machine's cores with the proxy), and the BLAS/OpenMP thread caps set before torch loads in
    the actor process (as `memento serve` does for its own process: OpenMP threads left at
    the core count spin and cost ~10x latency on a small shared machine)."""
    n = str(max(1, settings.blas_threads))
    env = {var: n for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    return {"num_cpus": 0, "runtime_env": {"env_vars": env}}


def start_learner(settings: ServingSettings) -> Any:
    """The named shared learner actor (one per cluster; an existing one is reused)."""
    opts = actor_options(settings)
    return SharedLearner.options(  # type: ignore[attr-defined]
        name=LEARNER_NAME, get_if_exists=True, runtime_env=opts["runtime_env"]
    ).remote(settings)

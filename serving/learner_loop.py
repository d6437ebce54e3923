"""The one learner of several serving processes, and the weight format it publishes.

`LearnerLoop` (the body of the Ray actor `serving.shared_learner.SharedLearner` for
`memento serve --replicas N`, and of the learner process of `memento serve --workers N`,
`serving.workers`; no Ray import here) polls unapplied feedback from the PostgreSQL store (up
to `batch` rows per version, their decisions read in one query), applies the rows with the
same `core.apply_feedback` the single-process learner thread calls, inside the core's
`batched()` (one round of gradient steps per version, `serving.learner_worker.BatchLearner`)
and the store's `deferred_cases()` (the version's cases written and fed in one transaction,
`PgStore.put_case_many`), and publishes a model version
(weights + new case ids) in the same transaction that flags those rows applied
(`PgStore.publish`): each acknowledged feedback is reflected exactly once.

Weights travel as the bundle's learner part (`recsys.bundle.LearnerPart`, tensors and plain
data, read with `weights_only=True`): a version carries its publication (`q`, alpha, no
target network, no optimiser state: what the replicas act with); the learner keeps its
checkpoint part, with the target network and the optimiser state, in the store blob
`CHECKPOINT_BLOB`, rewritten once `checkpoint_every` feedback were applied since the last
one (`MEMENTO_CHECKPOINT_EVERY`, as the single process checkpoints). A restarted learner
resumes from both: the checkpoint, then the newest version's weights on top (its target
network and Adam moments are then up to `checkpoint_every` feedback older than the weights;
the replay buffer is not kept, as in the single process).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import torch

from recsys.bundle import LearnerPart
from serving.app import load_core_factory
from serving.change_feed import ChangeFollower
from serving.learner_worker import BatchLearner
from serving.pg_store import PgStore
from serving.service import RecommenderBackend
from serving.settings import ServingSettings

__all__ = [
    "CHECKPOINT_BLOB",
    "LearnerLoop",
    "LearnerPartHost",
    "apply_published",
    "part_host",
    "q_digest",
]

logger = logging.getLogger(__name__)

CHECKPOINT_BLOB = "shared_learner.checkpoint"
"""Store blob: the learner's checkpoint part (with the optimiser state), after each version."""


@runtime_checkable
class LearnerPartHost(Protocol):
    """A core whose learner travels as a bundle part (`serving.core.ServingCore` is one)."""

    def learner_part(self, *, optimiser: bool) -> LearnerPart:
        """The served learner as a bundle part (with the optimiser state when asked)."""
        ...

    def apply_learner_part(self, part: LearnerPart) -> None:
        """Load a learner part into the served learner in place."""
        ...


def part_host(core: RecommenderBackend) -> LearnerPartHost:
    """`core` as a `LearnerPartHost`; `TypeError` for a core that cannot ship its learner."""
    if not isinstance(core, LearnerPartHost):
        raise TypeError(
            f"{type(core).__name__} has no learner_part/apply_learner_part: replicas need a "
            "core whose learner travels as a bundle part (serving.core:build_core)"
        )
    return core


def apply_published(core: RecommenderBackend, blob: bytes) -> None:
    """Load a published version's weights (a `LearnerPart` as bytes) into `core`, in place."""
    part_host(core).apply_learner_part(LearnerPart.from_bytes(blob, "published weights"))


def q_digest(core: RecommenderBackend) -> str:
    """Fingerprint of the Q network this core scores with (changes with every update)."""
    return part_host(core).learner_part(optimiser=False).q_digest()


class LearnerLoop:
    """The one learner: applies unapplied feedback from the shared store, publishes versions."""

    def __init__(self, settings: ServingSettings, batch: int = 128) -> None:
        assert settings.store_url, "the shared learner needs MEMENTO_STORE_URL"
        if settings.blas_threads > 0:
            torch.set_num_threads(settings.blas_threads)
        self._store = PgStore(settings.store_url)
        self._core = load_core_factory(settings.core)(settings, self._store)
        self._host = part_host(self._core)
        self._batch = batch
        self._checkpoint_every = max(1, settings.checkpoint_every)
        self._since_checkpoint = self._checkpoint_every  # the first version checkpoints
        self.applied = 0
        self.version = self._store.latest_version()
        if self.version:
            self._resume()
        # other processes' case writes, deletes, erasures and events (serving.change_feed)
        self._feed = ChangeFollower(self._store, self._core, on_gap=self._rebuild)  # type: ignore[arg-type]
        self._feed_every = settings.sync_interval_ms / 1000.0
        self._feed_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memento-learner", daemon=True)
        self._thread.start()

    def _resume(self) -> None:
        """Continue from the newest published version: the checkpoint part (weights, target
        network and optimiser state, saved every `checkpoint_every` feedback), then that
        version's weights on top (the target network and the optimiser state are then up to
        `checkpoint_every` feedback older than the weights)."""
        ckpt = self._store.load_blob(CHECKPOINT_BLOB)
        if ckpt is not None:
            self._host.apply_learner_part(LearnerPart.from_bytes(ckpt, CHECKPOINT_BLOB))
        weights = self._store.versions_after(self.version - 1)[-1].weights
        if weights is not None:
            apply_published(self._core, weights)

    def _batched(self) -> AbstractContextManager[list[dict[str, float]]]:
        """The core's batch of feedback (one round of steps), or none for a core without."""
        if isinstance(self._core, BatchLearner):
            return self._core.batched()
        return contextlib.nullcontext([])

    def _step(self) -> bool:
        """Apply one batch of unapplied feedback and publish it; False when there was none."""
        rows = self._store.unapplied_after(0, self._batch)
        if not rows:
            return False
        case_ids: list[str] = []
        decisions = self._store.get_decisions([r.decision_id for r in rows])
        # the batch's cases are written and fed in one transaction when the block ends
        with self._store.deferred_cases(), self._batched():
            for r in rows:
                decision = decisions.get(r.decision_id)
                if decision is None:  # erased meanwhile: flagged applied, nothing learned
                    continue
                try:
                    update = self._core.apply_feedback(decision, r.item_id, r.action, r.dwell)
                except Exception:
                    logger.exception("apply_feedback failed for feedback %d", r.feedback_id)
                    continue
                if update.new_case_id:
                    case_ids.append(update.new_case_id)
        self._since_checkpoint += len(rows)
        checkpoint = self._since_checkpoint >= self._checkpoint_every
        part = self._host.learner_part(optimiser=checkpoint)
        self.version = self._store.publish(
            part.publication().to_bytes(), case_ids, [r.feedback_id for r in rows]
        )
        if checkpoint:
            self._store.save_blob(CHECKPOINT_BLOB, part.to_bytes())
            self._since_checkpoint = 0
        self.applied += len(rows)
        return True

    def _follow(self) -> None:
        """Apply the change feed (every sync interval)."""
        now = time.monotonic()
        if now - self._feed_at >= self._feed_every:
            self._feed_at = now
            self._feed.poll()

    def _rebuild(self) -> None:
        """The feed was pruned past us: rebuild the core from the store, then resume the
        published weights and the optimiser state."""
        self._core.reload()
        if self.version:
            self._resume()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
                if not self._step():
                    self._stop.wait(0.02)
            except Exception:
                logger.exception("learner step failed; retrying")
                self._stop.wait(1.0)

    def stats(self) -> dict[str, Any]:
        """Version published, feedback rows applied by this actor, whether its thread runs,
        its process id."""
        return {
            "version": self.version,
            "applied": self.applied,
            "alive": self._thread.is_alive(),
            "pid": os.getpid(),
        }

    def stop(self) -> None:
        """Stop polling (the current batch finishes)."""
        self._stop.set()
        self._thread.join()

"""Online learner: a bounded queue of stored feedback consumed by one background thread.

Feedback is already durable in SQLite when it is queued. The worker calls
`core.apply_feedback`, and every `checkpoint_every` updates it checkpoints the core and only
then marks those feedback rows `applied`; at start, rows not yet applied are re-queued, so an
acknowledged feedback is reflected exactly once in the persisted model even across `kill -9`
(case writes are idempotent per (decision, item), the core's contract).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from serving.errors import LearnerBusyError
from serving.metrics import ServingMetrics
from serving.service import RecommenderBackend
from serving.store import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedbackJob:
    """A stored feedback row waiting to be applied."""

    feedback_id: int
    """Store row id."""
    decision_id: str
    """Decision it is about."""
    item_id: str
    """Item acted on."""
    action: str
    """click | collect | cart | alipay."""
    dwell_seconds: float | None
    """Dwell if reported."""


class LearnerWorker:
    """Owns the queue and the consumer thread; `submit` never blocks."""

    def __init__(
        self,
        core: RecommenderBackend,
        store: Store,
        metrics: ServingMetrics,
        *,
        queue_size: int,
        checkpoint_every: int,
        retry_after_s: int,
    ) -> None:
        self._core, self._store, self._metrics = core, store, metrics
        self._queue: queue.Queue[FeedbackJob] = queue.Queue(maxsize=queue_size)
        self._checkpoint_every = checkpoint_every
        self._retry_after_s = retry_after_s
        self._pending: list[int] = []
        self._ckpt_lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memento-learner", daemon=True)

    def depth(self) -> int:
        """Jobs waiting in the queue."""
        return self._queue.qsize()

    def alive(self) -> bool:
        """Whether the consumer thread runs."""
        return self._thread.is_alive()

    def start(self) -> int:
        """Start the thread, then re-queue unapplied feedback from the store; returns how many."""
        self._thread.start()
        backlog = self._store.feedback(unapplied_only=True)
        for r in backlog:
            self._queue.put(FeedbackJob(r.feedback_id, r.decision_id, r.item_id, r.action, r.dwell))
        if backlog:
            logger.info("re-queued %d unapplied feedback rows", len(backlog))
        return len(backlog)

    def submit(self, job: FeedbackJob) -> None:
        """Queue without blocking; `LearnerBusyError` (-> 503 + Retry-After) when full."""
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise LearnerBusyError(
                "online learner queue is full; retry later", self._retry_after_s
            ) from None

    def _apply(self, job: FeedbackJob) -> None:
        # Apply and record under the checkpoint lock, so a checkpoint never captures an
        # update whose feedback row would stay unapplied (it would be replayed twice).
        with self._ckpt_lock:
            decision = self._store.get_decision(job.decision_id)
            if decision is not None:
                try:
                    update = self._core.apply_feedback(
                        decision, job.item_id, job.action, job.dwell_seconds
                    )
                except Exception:
                    logger.exception("apply_feedback failed for feedback %d", job.feedback_id)
                    self._metrics.update_errors.inc()
                else:
                    self._metrics.updates.inc()
                    self._metrics.reward.set(update.reward)
                    if update.td_loss is not None:
                        self._metrics.td_loss.set(update.td_loss)
            self._pending.append(job.feedback_id)
            if len(self._pending) >= self._checkpoint_every:
                self.checkpoint()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """No feedback is applied and no checkpoint is written while inside (a reload
        checkpoints, then swaps the model, with nothing learned in between and no snapshot
        rewritten while the new runtime reads it)."""
        with self._ckpt_lock:
            yield

    def checkpoint(self) -> None:
        """Checkpoint the core, then mark the feedback it now reflects as applied."""
        with self._ckpt_lock:
            done, self._pending = self._pending, []
            self._core.checkpoint()
            self._store.mark_applied(done)
        self._metrics.checkpoints.inc()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            self._apply(job)

    def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Stop the thread, apply what is queued within the deadline, checkpoint."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        deadline = time.monotonic() + drain_timeout_s
        while time.monotonic() < deadline:
            try:
                self._apply(self._queue.get_nowait())
            except queue.Empty:
                break
        self.checkpoint()

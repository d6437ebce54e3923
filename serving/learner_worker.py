"""Online learner: a bounded queue of stored feedback consumed by one background thread.

Feedback is already durable in SQLite when it is queued. The thread takes what is queued as
one batch (up to `max_batch` jobs) and calls `core.apply_feedback` for each (the reward, the
transition, the case); a core that batches its learning (`BatchLearner`) then runs the
gradient steps owed by the whole batch at once (`core.batched()`): off the request path, a
share of a step per feedback under load, a step right after each feedback when idle. Every
`checkpoint_every` applied feedback it checkpoints the core and only then marks those feedback
rows `applied`; at start, rows not yet applied are re-queued, so an acknowledged feedback is
reflected exactly once in the persisted model even across `kill -9` (case writes are
idempotent per (decision, item), the core's contract).

Lag: each job is stamped with the decisions served (`ServingMetrics.served`) and the clock
when it is queued; applying it sets `memento_learner_lag_decisions` (decisions served in
between) and `memento_learner_lag_seconds`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from serving.errors import LearnerBusyError
from serving.metrics import ServingMetrics
from serving.service import DecisionSnapshot, RecommenderBackend
from serving.store import Store

logger = logging.getLogger(__name__)

MAX_BATCH = 256
"""Most queued feedback applied as one batch (one `train_pending` call)."""


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


@dataclass(frozen=True)
class _Queued:
    """A job with the decisions served and the clock when it was queued (its lag)."""

    job: FeedbackJob
    decisions: int
    ts: float


@runtime_checkable
class BatchLearner(Protocol):
    """A core that learns from a batch of feedback at once (`serving.core.ServingCore`)."""

    def batched(self) -> AbstractContextManager[list[dict[str, float]]]:
        """Feedback applied inside only observes; on leaving, the gradient steps owed by all of
        it run, their metrics appended to the yielded list."""
        ...


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
        max_batch: int = MAX_BATCH,
        linger_s: float = 0.0,
    ) -> None:
        self._core, self._store, self._metrics = core, store, metrics
        self._linger_s = max(0.0, linger_s)
        self._queue: queue.Queue[_Queued] = queue.Queue(maxsize=queue_size)
        self._checkpoint_every = checkpoint_every
        self._retry_after_s = retry_after_s
        self._max_batch = max(1, max_batch)
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

    def _stamp(self, job: FeedbackJob) -> _Queued:
        return _Queued(job, self._metrics.served, time.time())

    def start(self) -> int:
        """Start the thread, then re-queue unapplied feedback from the store; returns how many."""
        self._thread.start()
        backlog = self._store.feedback(unapplied_only=True)
        for r in backlog:
            job = FeedbackJob(r.feedback_id, r.decision_id, r.item_id, r.action, r.dwell)
            self._queue.put(self._stamp(job))
        if backlog:
            logger.info("re-queued %d unapplied feedback rows", len(backlog))
        return len(backlog)

    def submit(self, job: FeedbackJob) -> None:
        """Queue without blocking; `LearnerBusyError` (-> 503 + Retry-After) when full."""
        try:
            self._queue.put_nowait(self._stamp(job))
        except queue.Full:
            raise LearnerBusyError(
                "online learner queue is full; retry later", self._retry_after_s
            ) from None

    def _apply_one(self, job: FeedbackJob, read: dict[str, DecisionSnapshot | None]) -> None:
        """Apply one job; `read`: the decisions this batch has read (an outcome's rows share
        one)."""
        if job.decision_id not in read:
            read[job.decision_id] = self._store.get_decision(job.decision_id)
        decision = read[job.decision_id]
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
                if update.drift_alarm:
                    self._metrics.drift_alarms.inc()
                if update.td_loss is not None:
                    self._metrics.td_loss.set(update.td_loss)
        self._pending.append(job.feedback_id)

    def _apply(self, batch: list[_Queued]) -> None:
        # Apply, train and record under the checkpoint lock, so a checkpoint never captures
        # an update whose feedback row would stay unapplied (it would be replayed twice).
        with self._ckpt_lock:
            read: dict[str, DecisionSnapshot | None] = {}
            if isinstance(self._core, BatchLearner):
                steps: list[dict[str, float]] = []
                try:
                    with self._core.batched() as steps:
                        for q in batch:
                            self._apply_one(q.job, read)
                except Exception:
                    logger.exception("learner steps failed for a batch of %d", len(batch))
                    self._metrics.update_errors.inc()
                self._metrics.steps.inc(len(steps))
                loss = steps[-1].get("losses/td", steps[-1].get("losses/ce")) if steps else None
                if loss is not None:
                    self._metrics.td_loss.set(loss)
            else:
                for q in batch:
                    self._apply_one(q.job, read)
            now, served = time.time(), self._metrics.served
            self._metrics.batch_size.set(len(batch))
            self._metrics.lag_decisions.set(max(served - q.decisions for q in batch))
            self._metrics.lag_seconds.set(max(now - q.ts for q in batch))
            if len(self._pending) >= self._checkpoint_every:
                self.checkpoint()

    def _take(self, first: _Queued) -> list[_Queued]:
        """`first` and whatever else is queued now, up to `max_batch`."""
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def apply_queued(self) -> int:
        """Apply everything queued now in the caller's thread, in batches as the thread takes
        them, for a caller that drives the learner itself instead of starting the thread (the
        online benchmark's in-process service: no lag, no polling). How many jobs."""
        assert not self._thread.is_alive(), "the learner thread applies the queue itself"
        done = 0
        while True:
            try:
                first = self._queue.get_nowait()
            except queue.Empty:
                return done
            batch = self._take(first)
            self._apply(batch)
            done += len(batch)

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
                first = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            self._apply(self._linger(first))

    def _linger(self, first: _Queued) -> list[_Queued]:
        """`first` and what arrives within the linger (`ServingSettings.learner_linger_ms`),
        up to `max_batch` and the queue's own capacity (a collecting batch holds feedback the
        queue would otherwise hold, so a full queue still answers 503); at once when the
        linger is 0 or the thread is stopping."""
        batch = self._take(first)
        deadline = time.monotonic() + self._linger_s
        most = min(self._max_batch, self._queue.maxsize)
        while len(batch) < most and not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=left))
            except queue.Empty:
                break
        return batch

    def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Stop the thread, apply what is queued within the deadline, checkpoint."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        deadline = time.monotonic() + drain_timeout_s
        while time.monotonic() < deadline:
            try:
                first = self._queue.get_nowait()
            except queue.Empty:
                break
            self._apply(self._take(first))
        self.checkpoint()

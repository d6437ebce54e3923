"""`ReplicaSync`: a serving process that does not learn, following the one shared learner.

It takes the place of the in-process `LearnerWorker` in the app of every Ray Serve replica
(`serving.ray_app`, `memento serve --replicas N`) and of every uvicorn worker process
(`serving.workers`, `memento serve --workers N`): feedback rows are already durable in the
shared PostgreSQL store, where the learner (`serving.learner_loop.LearnerLoop`) takes them; a
thread loads each model version it publishes and applies the change feed
(`serving.change_feed`) every `MEMENTO_SYNC_INTERVAL_MS`. No Ray import here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Gauge, Histogram

from serving.case_log import log_case
from serving.change_feed import ChangeFollower
from serving.learner_loop import apply_published
from serving.learner_worker import FeedbackJob, LearnerWorker
from serving.metrics import ServingMetrics
from serving.pg_store import PgStore
from serving.service import RecommenderBackend
from serving.settings import ServingSettings
from serving.store import Store

__all__ = ["LAG_BUCKETS", "SYNCS", "ReplicaSync"]

logger = logging.getLogger(__name__)

LAG_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)

SYNCS: list[ReplicaSync] = []
"""The sync of this replica process (read by `MementoReplica.stats`)."""


class ReplicaSync(LearnerWorker):
    """A replica's stand-in for the learner thread: feedback rows are already durable in the
    shared store (the learner actor polls them), so `submit` only records; a thread loads each
    new model version. Subclasses `LearnerWorker` for its interface only."""

    def __init__(
        self, settings: ServingSettings, core: RecommenderBackend, store: Store, m: ServingMetrics
    ) -> None:
        assert isinstance(store, PgStore), "replicas need the PostgreSQL store (MEMENTO_STORE_URL)"
        super().__init__(core, store, m, queue_size=1, checkpoint_every=1, retry_after_s=1)
        self._pg, self._interval = store, settings.sync_interval_ms / 1000.0
        self.version = 0
        self.lags: list[float] = []
        self._lag = Histogram(
            "memento_propagation_lag_seconds",
            "Feedback acknowledged -> this replica serves a model version that includes it.",
            buckets=LAG_BUCKETS,
            registry=m.registry,
        )
        Gauge(
            "memento_model_sync_version", "Model version served.", registry=m.registry
        ).set_function(lambda: self.version)
        change_lag = Histogram(
            "memento_change_lag_seconds",
            "A change written by another process (case, delete, erasure, events) -> applied here.",
            buckets=LAG_BUCKETS,
            registry=m.registry,
        )
        self.feed = ChangeFollower(
            store,
            core,
            on_gap=self._rebuild,
            observe_lag=change_lag.observe,  # type: ignore[arg-type]
        )
        self._sync_thread = threading.Thread(target=self._loop, name="memento-sync", daemon=True)

    @property
    def core(self) -> RecommenderBackend:
        """The replica's core."""
        return self._core

    def start(self) -> int:
        """Load the newest version, then follow; nothing to re-queue (the learner owns it)."""
        self.sync()
        self._sync_thread.start()
        SYNCS.append(self)
        return 0

    def submit(self, job: FeedbackJob) -> None:
        """The row is in the shared store; the learner actor picks it up."""

    def depth(self) -> int:
        """Nothing queued here."""
        return 0

    def alive(self) -> bool:
        """Whether the sync thread runs."""
        return self._sync_thread.is_alive()

    def checkpoint(self) -> None:
        """The learner actor publishes; a replica has nothing to save."""

    @contextmanager
    def held(self) -> Iterator[None]:
        """Around a reload: afterwards every version is loaded again into the new runtime."""
        with self._ckpt_lock:
            yield
            self.version = 0

    def sync(self) -> None:
        """Load the versions published since ours (their cases, then the newest weights), then
        apply the change feed (after the versions: an erasure read there removes what a
        version read before it brought)."""
        with self._ckpt_lock:
            self._sync_versions()
            self.feed.poll()

    def _rebuild(self) -> None:
        """The feed was pruned past us: rebuild the runtime from the store, reload weights."""
        self._core.reload()
        self.version = 0
        self._sync_versions()

    def _sync_versions(self) -> None:
        """The versions published since ours: their cases, then the newest weights (caller
        holds `_ckpt_lock`)."""
        if self._pg.latest_version() <= self.version:
            return
        versions = self._pg.versions_after(self.version)
        rt = self._core.runtime  # type: ignore[attr-defined]
        sids = [s for v in versions for s in v.case_ids if s not in rt.int_of]
        records = self._pg.get_cases(sids) if sids else []
        with rt.lock:
            new = [r for r in records if r.case_id not in rt.int_of]
            rt.add_cases(
                [log_case(rt, r) for r in new], [r.case_id for r in new], [r.user_id for r in new]
            )
        weights = versions[-1].weights
        if weights is not None:
            apply_published(self._core, weights)
        self.version = versions[-1].version
        now = time.time()
        for v in versions:
            if v.first_ack_ts is not None:
                self.lags.append(now - v.first_ack_ts)
                self._lag.observe(now - v.first_ack_ts)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.sync()
            except Exception:
                logger.exception("model sync failed; retrying")

    def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Stop following."""
        self._stop.set()
        if self._sync_thread.is_alive():
            self._sync_thread.join()
        if self in SYNCS:
            SYNCS.remove(self)

"""`memento serve --replicas N`: N replicas of the FastAPI app on Ray Serve, one shared learner.

- Replicas (`MementoReplica`, `@serve.ingress` over `create_app`): recommend, store decisions
  and acknowledge feedback into the shared PostgreSQL store (`serving.pg_store.PgStore`,
  synchronous commit before the 202). They never learn: their `ReplicaSync` (in the place of
  the in-process `LearnerWorker`) polls the store every `MEMENTO_SYNC_INTERVAL_MS` for a new
  model version and loads its weights (the bundle's learner part without the optimiser state,
  applied with the core's `apply_learner_part`) and the cases it wrote into the runtime.
- The learner (`serving.shared_learner.SharedLearner`, one named Ray actor) applies the feedback
  and publishes versions, exactly once per acknowledged row.
- Lag: per version, `publish time - oldest ack` is the learner part; each replica observes
  `load time - oldest ack` of every version it loads (`memento_propagation_lag_seconds` on
  `/metrics`, and `MementoReplica.stats` through a deployment handle).
- Case writes, deletes, erasures and events taken by another replica arrive through the change
  feed (`serving.change_feed`), polled in the same loop right after the versions;
  `memento_change_lag_seconds` is written -> applied here.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import ray
from fastapi import FastAPI, Request, Response
from prometheus_client import Gauge, Histogram
from ray import serve

from serving.app import create_app
from serving.case_log import log_case
from serving.change_feed import ChangeFollower
from serving.learner_worker import FeedbackJob, LearnerWorker
from serving.metrics import ServingMetrics
from serving.pg_store import PgStore
from serving.service import RecommenderBackend
from serving.settings import ServingSettings
from serving.shared_learner import actor_options, apply_published, q_digest, start_learner
from serving.store import Store

logger = logging.getLogger(__name__)

LAG_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)

_SYNCS: list[ReplicaSync] = []
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
        _SYNCS.append(self)
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
        if self in _SYNCS:
            _SYNCS.remove(self)


def replica_stats() -> dict[str, Any]:
    """This replica's id, pid, model version, Q fingerprint and observed lags, its change-feed
    cursor and lags, and the events its popularity counts (module level: the deployment class
    is pickled by value, this module's `_SYNCS` by reference)."""
    rid, pid = serve.get_replica_context().replica_id.unique_id, os.getpid()
    if not _SYNCS:
        return {"replica": rid, "pid": pid, "version": -1, "q": "", "lags": []}
    sync = _SYNCS[0]
    rt = sync.core.runtime  # type: ignore[attr-defined]
    return {
        "replica": rid,
        "pid": pid,
        "version": sync.version,
        "q": q_digest(sync.core),
        "lags": sync.lags,
        "feed_cursor": sync.feed.cursor,
        "change_lags": list(sync.feed.lags),
        "events_counted": len(rt.bundle.popularity),
        "events_base": len(rt.base_popularity[0]),
        "cases": len(rt.bank),
    }


def _tag_replica(app: FastAPI) -> None:
    """Every answer names the replica that served it (`X-Memento-Replica`)."""

    @app.middleware("http")
    async def tag(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers["X-Memento-Replica"] = serve.get_replica_context().replica_id.unique_id
        return response


def build_app(settings: ServingSettings, replicas: int) -> Any:
    """The Serve application: `replicas` copies of the app, each following the shared learner."""
    if not settings.store_url:
        raise ValueError("more than one replica needs MEMENTO_STORE_URL=postgresql://...")
    app = create_app(settings, learner=ReplicaSync)
    _tag_replica(app)

    @serve.deployment(num_replicas=replicas, ray_actor_options=actor_options(settings))
    @serve.ingress(app)
    class MementoReplica:
        """One replica of the FastAPI app."""

        def stats(self) -> dict[str, Any]:
            """This replica's id, model version, Q fingerprint and observed lags."""
            return replica_stats()

    return MementoReplica.bind()  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ServeRun:
    """A running replica set: hold it, or the learner actor is collected with its last handle."""

    handle: Any
    """Deployment handle of the replicas (`handle.stats.remote()`)."""
    learner: Any
    """The shared learner actor."""
    url: str
    """HTTP address of Serve's proxy."""

    def shutdown(self) -> None:
        """Stop the replicas, then the learner."""
        serve.shutdown()
        ray.kill(self.learner)


def run(settings: ServingSettings, replicas: int, host: str, port: int) -> ServeRun:
    """Start the learner, then the replicas behind Serve's HTTP proxy on host:port."""
    learner = start_learner(settings)
    serve.start(http_options={"host": host, "port": port})
    handle = serve.run(build_app(settings, replicas), name="memento", route_prefix="/")
    return ServeRun(handle, learner, f"http://{host}:{port}")


def serve_until_signalled(settings: ServingSettings, replicas: int, host: str, port: int) -> None:
    """`memento serve --replicas N`: a local Ray cluster, the learner and the replicas, until
    SIGINT/SIGTERM, then a clean shutdown."""
    import signal

    # Blocked before Ray starts its threads (they inherit the mask), so the signal waits for
    # `sigwait` here instead of hitting Ray's own handler.
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    ray.init(include_dashboard=False, configure_logging=False)
    running = run(settings, replicas, host, port)
    logger.info("%d replicas serving on %s", replicas, running.url)
    signal.sigwait(stop_signals)
    running.shutdown()
    ray.shutdown()

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
- Serving path (`SERVE_ENV`, set before Ray starts): Ray's throughput-optimised Serve. Every
  replica also listens on its own port (direct ingress, `ServeRun.replica_urls`): a load
  balancer in front of those skips the proxy hop (measured by `memento bench replicas`); the
  proxy on `host:port` still answers, over gRPC to the replicas. No per-request access log
  (as `memento serve`), up to `MAX_ONGOING` requests queue in a replica instead of in the
  proxy's router.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import ray
from ray import serve

from serving.app import create_app
from serving.middleware import TagMiddleware
from serving.replica_sync import SYNCS, ReplicaSync
from serving.settings import ServingSettings
from serving.shared_learner import actor_options, q_digest, start_learner

logger = logging.getLogger(__name__)

SERVE_ENV: dict[str, str] = {
    # direct ingress, user code on the replica's own event loop, gRPC proxy -> replica, no
    # stderr copy of Serve's logs, GC frozen after start (Ray's `RAY_SERVE_THROUGHPUT_OPTIMIZED`)
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    # a stopping replica keeps its port this long for the load balancer to notice (Ray: 30 s)
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
}
"""Ray Serve settings of the replicas: environment variables read when Ray's processes start
(a running cluster keeps those it was started with: `ray start` takes them the same way)."""
MAX_ONGOING = 32
"""Requests a replica takes at once (Serve's default 5 leaves the rest in the proxy's router,
which retries them with backoff); the app's thread pool bounds the work in flight anyway."""


def serve_env() -> None:
    """Default `SERVE_ENV` into this process's environment (call before `ray.init` starts a
    local cluster: Ray's processes inherit it); variables already set win."""
    for var, value in SERVE_ENV.items():
        os.environ.setdefault(var, value)


def replica_stats() -> dict[str, Any]:
    """This replica's id, pid, model version, Q fingerprint and observed lags, its change-feed
    cursor and lags, and the events its popularity counts (module level: the deployment class
    is pickled by value, this module's `SYNCS` by reference)."""
    rid, pid = serve.get_replica_context().replica_id.unique_id, os.getpid()
    if not SYNCS:
        return {"replica": rid, "pid": pid, "version": -1, "q": "", "lags": []}
    sync = SYNCS[0]
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


def _replica_id() -> str:
    """This replica's id (inside a replica process)."""
    rid: str = serve.get_replica_context().replica_id.unique_id
    return rid


def build_app(settings: ServingSettings, replicas: int) -> Any:
    """The Serve application: `replicas` copies of the app, each following the shared learner."""
    if not settings.store_url:
        raise ValueError("more than one replica needs MEMENTO_STORE_URL=postgresql://...")
    app = create_app(settings, learner=ReplicaSync)
    # every answer names the replica that served it
    app.add_middleware(TagMiddleware, header="X-Memento-Replica", value=_replica_id)

    @serve.deployment(
        num_replicas=replicas,
        ray_actor_options=actor_options(settings),
        max_ongoing_requests=MAX_ONGOING,
        logging_config={"enable_access_log": False},
    )
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
    host: str
    """Host the proxy and the replicas' own HTTP servers listen on."""

    def replica_urls(self, want: int = 0, timeout_s: float = 0.0) -> list[str]:
        """HTTP address of each running replica's own server (direct ingress; empty without:
        `SERVE_ENV` was not in Ray's environment), from Serve's target groups; asks again for
        up to `timeout_s` until `want` are listed (their ports are allocated after start)."""
        import time

        deadline = time.monotonic() + timeout_s
        urls = self._replica_urls()
        while len(urls) < want and time.monotonic() < deadline:
            time.sleep(0.5)
            urls = self._replica_urls()
        return urls

    def _replica_urls(self) -> list[str]:
        """`replica_urls` as Serve's controller lists them now."""
        from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

        controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        details: Any = ray.get(controller.get_serve_instance_details.remote())
        proxy_port = int(self.url.rsplit(":", 1)[1])
        host = self.host if self.host not in ("0.0.0.0", "::") else None
        return sorted(
            f"http://{host or t['ip']}:{t['port']}"
            for g in details.get("target_groups", [])
            if str(g["protocol"]).upper().endswith("HTTP")
            for t in g["targets"]
            if t["port"] != proxy_port
        )

    def shutdown(self) -> None:
        """Stop the replicas, then the learner."""
        serve.shutdown()
        ray.kill(self.learner)


def run(settings: ServingSettings, replicas: int, host: str, port: int) -> ServeRun:
    """Start the learner, then the replicas behind Serve's HTTP proxy on host:port."""
    learner = start_learner(settings)
    serve.start(http_options={"host": host, "port": port})
    handle = serve.run(build_app(settings, replicas), name="memento", route_prefix="/")
    return ServeRun(handle, learner, f"http://{host}:{port}", host)


def serve_until_signalled(settings: ServingSettings, replicas: int, host: str, port: int) -> None:
    """`memento serve --replicas N`: a local Ray cluster, the learner and the replicas, until
    SIGINT/SIGTERM, then a clean shutdown."""
    import signal

    # Blocked before Ray starts its threads (they inherit the mask), so the signal waits for
    # `sigwait` here instead of hitting Ray's own handler.
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    serve_env()
    ray.init(include_dashboard=False, configure_logging=False)
    running = run(settings, replicas, host, port)
    logger.info("%d replicas serving on %s", replicas, running.url)
    urls = running.replica_urls(want=replicas, timeout_s=30)
    logger.info("each replica's own port (for a load balancer): %s", urls)
    signal.sigwait(stop_signals)
    running.shutdown()
    ray.shutdown()

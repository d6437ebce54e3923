"""The served method in the benchmark's own process: the service without HTTP.

`InProcessService` builds what `serving.app.create_app`'s lifespan builds (settings from the
same `MEMENTO_*` variables, store, core, learner worker, `RecommendService`) and answers a
`ServicePolicy`'s calls by validating the same request bodies into the routes' schemas and
calling the same `RecommendService` methods the routes call: what differs from a uvicorn
process is the transport (no sockets, no JSON, no event loop) and the learner.

The learner thread is not started: the queued feedback is applied in the caller's thread, in
the batches the thread would take, before every `learn_every`-th recommendation
(`LearnerWorker.apply_queued`). With `learn_every` 1 every decision is taken by a model that
has learned from every earlier outcome (lag 0, as the in-process peers learn; the service's
learner thread when idle); with k > 1 the outcomes of k decisions are applied as one batch (a
lag of at most k - 1 decisions, and `updates_per_feedback` steps per batch instead of per
decision: the service under load). Either way the lag does not depend on the machine's load,
and with decision ids drawn from the learner's seed (they name the cases, whose ids order
the bank's evictions) a run repeats decision for decision on its seed; no call waits on a
busy queue.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, ValidationError

from bench.errors import ServiceUnavailableError
from serving.errors import ServingError

__all__ = ["InProcessService"]


@contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    """`env` set in `os.environ` while inside (the settings read it as a process would)."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class InProcessService:
    """A `Transport` (`bench.online.service_policy`) over a service built in this process
    (module docstring); `close` stops it as the app's shutdown does (drain, checkpoint)."""

    def __init__(self, name: str, env: dict[str, str], learn_every: int = 1) -> None:
        from serving import schemas
        from serving.app import default_learner, limit_blas_threads, load_core_factory, open_store
        from serving.metrics import ServingMetrics
        from serving.recommend_service import RecommendService
        from serving.settings import ServingSettings

        if learn_every < 1:
            raise ValueError(f"learn_every must be >= 1, got {learn_every}")
        self.name = name
        self.learn_every = learn_every
        self.retries = 0  # the queue is drained before each recommendation: never full
        self.cpu_s: dict[str, float] = defaultdict(float)
        """CPU seconds of this thread per route and in the learner (`learner`)."""
        self.calls: Counter[str] = Counter()
        """Calls per route."""
        with _environ(env):
            settings = ServingSettings()
        limit_blas_threads(settings.blas_threads)
        self._store = open_store(settings)
        try:
            self._core = load_core_factory(settings.core)(settings, self._store)
        except Exception:
            self._store.close()
            raise
        metrics = ServingMetrics()
        self._worker = default_learner(settings, self._core, self._store, metrics)
        metrics.bind(self._worker.depth, self._core.bank_size)
        ids = random.Random(settings.fresh.learner.seed)  # decision ids repeat on the seed
        service = RecommendService(
            settings,
            self._core,
            self._store,
            self._worker,
            metrics,
            new_id=lambda: f"{ids.getrandbits(128):032x}",
        )
        reason = self._core.not_ready_reason()
        if reason is not None:
            self.close()
            raise ServiceUnavailableError(f"{name}: the service is not ready: {reason}")
        self._routes: dict[str, tuple[type[BaseModel], Callable[[Any], BaseModel]]] = {
            "/v1/recommend": (schemas.RecommendRequest, service.recommend),
            "/v1/outcomes": (schemas.OutcomeRequest, service.outcome),
            "/v1/events": (schemas.EventsRequest, service.add_events),
        }

    def post(self, path: str, body: dict[str, Any], key: str) -> dict[str, Any]:
        """What `POST path` would answer (the key is not checked: no caller but the bench);
        the learner first applies whatever is queued before every `learn_every`-th
        recommendation."""
        if path not in self._routes:
            raise ServiceUnavailableError(f"{self.name}: no in-process route {path}")
        schema, call = self._routes[path]
        if path == "/v1/recommend" and self.calls[path] % self.learn_every == 0:
            t = time.thread_time()
            self._worker.apply_queued()
            self.cpu_s["learner"] += time.thread_time() - t
        t = time.thread_time()
        try:
            answer = call(schema.model_validate(body))
        except (ValidationError, ServingError) as exc:  # what the app answers 4xx / 503
            raise ServiceUnavailableError(f"{self.name}: {path} failed: {exc}") from exc
        out: dict[str, Any] = answer.model_dump(mode="json")
        self.cpu_s[path] += time.thread_time() - t
        self.calls[path] += 1
        return out

    def cpu_ms_per_decision(self) -> dict[str, float]:
        """CPU milliseconds per recommendation spent in each route and in the learner."""
        n = max(1, self.calls["/v1/recommend"])
        return {k.removeprefix("/v1/"): round(1000.0 * v / n, 2) for k, v in self.cpu_s.items()}

    def close(self) -> None:
        """Apply what is queued, checkpoint, close the core and the store."""
        try:
            self._worker.stop()
        finally:
            self._core.close()
            self._store.close()

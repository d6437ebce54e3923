"""`create_app(settings, core)`: the FastAPI application with lifespan, middlewares, routes.

The lifespan opens the store, builds the core (the instance passed in, else the factory named
by `settings.core`), starts the online learner (re-queueing unapplied feedback) and stops it,
checkpointing, on shutdown.
"""

from __future__ import annotations

import gc
import importlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from serving.errors import KEYED, error_responses, install_error_handlers
from serving.learner_worker import LearnerWorker
from serving.malloc import Trimmer, tune_malloc
from serving.metrics import ServingMetrics
from serving.middleware import BodyLimitMiddleware, LatencyMiddleware
from serving.recommend_service import RecommendService
from serving.routes import cases, events, feedback, health, outcomes, recommend, users
from serving.security import read_access
from serving.service import RecommenderBackend
from serving.settings import ServingSettings
from serving.store import Store
from serving.ui import mount_ui

logger = logging.getLogger(__name__)

CoreFactory = Callable[[ServingSettings, Store], RecommenderBackend]
"""`factory(settings, store) -> core`, named by `MEMENTO_CORE=module:function`."""


def load_core_factory(path: str) -> CoreFactory:
    """Import `module:function`."""
    module, _, name = path.partition(":")
    if not module or not name:
        raise ValueError(f"MEMENTO_CORE must be 'module:function', got {path!r}")
    factory: CoreFactory = getattr(importlib.import_module(module), name)
    return factory


def limit_blas_threads(n: int) -> None:
    """Cap BLAS threads (OpenBLAS oversubscribes badly on a small shared machine)."""
    if n <= 0:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: shipped with scikit-learn
        logger.warning("threadpoolctl missing; BLAS thread count left as is")
        return
    threadpool_limits(limits=n, user_api="blas")


LearnerFactory = Callable[
    [ServingSettings, RecommenderBackend, Store, ServingMetrics], LearnerWorker
]
"""`learner(settings, core, store, metrics) -> worker` (Ray replicas relay to a shared learner)."""


def open_store(settings: ServingSettings) -> Store:
    """The PostgreSQL store when `MEMENTO_STORE_URL` is set, else the embedded SQLite file."""
    if settings.store_url:
        from serving.pg_store import PgStore

        return PgStore(settings.store_url)
    return Store(settings.db_path, settings.decision_flush_ms)


def default_learner(
    settings: ServingSettings, core: RecommenderBackend, store: Store, metrics: ServingMetrics
) -> LearnerWorker:
    """The in-process learner thread."""
    return LearnerWorker(
        core,
        store,
        metrics,
        queue_size=settings.queue_size,
        checkpoint_every=settings.checkpoint_every,
        retry_after_s=settings.retry_after_s,
        linger_s=settings.learner_linger_ms / 1000.0,
    )


def create_app(
    settings: ServingSettings | None = None,
    core: RecommenderBackend | None = None,
    learner: LearnerFactory | None = None,
) -> FastAPI:
    """Build the app; raises `InsecureSettingsError` for an insecure production config."""
    settings = settings or ServingSettings()
    settings.check_startup()
    metrics = ServingMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_blas_threads(settings.blas_threads)
        tune_malloc(settings.malloc_arena_max, settings.malloc_mmap_threshold_kib)  # before threads
        trimmer = Trimmer(settings.malloc_trim_s)
        trimmer.start()
        store = open_store(settings)
        the_core = core or load_core_factory(settings.core)(settings, store)
        assert isinstance(the_core, RecommenderBackend), f"{type(the_core)=} lacks the Protocol"
        worker = (learner or default_learner)(settings, the_core, store, metrics)
        metrics.bind(worker.depth, the_core.bank_size)
        requeued = worker.start()
        app.state.service = RecommendService(settings, the_core, store, worker, metrics)
        logger.info(
            "serving model %s, %d cases, %d feedback re-queued",
            the_core.model_version,
            the_core.bank_size(),
            requeued,
        )
        gc.collect()
        gc.freeze()  # the loaded bank and model leave the collector's generations: shorter pauses
        try:
            yield
        finally:
            gc.unfreeze()
            app.state.service = None
            worker.stop()
            trimmer.stop()
            the_core.close()
            store.close()

    app = FastAPI(
        title="memento-recsys",
        version="1",
        lifespan=lifespan,
        description="Soft-Q case retrieval recommender that learns online from feedback.",
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.service = None
    install_error_handlers(app)
    read = read_access(settings)  # no key dependency (nor 401/403) in public mode
    app.include_router(
        recommend.router, dependencies=read, responses=error_responses(*KEYED) if read else None
    )
    for module in (feedback, outcomes, events, cases, users, health):
        app.include_router(module.router)
    mount_ui(app)  # the /ui page (serving/ui): same keys as the API, assets served here
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    return app

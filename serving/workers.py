"""`memento serve --workers N`: N uvicorn worker processes on one port, one learner process,
over the shared PostgreSQL store. No Ray, no proxy: the workers share the listening socket.

One process serves with one core at a time (the GIL: a recommend holds it for most of its
CPU time), so the single process's throughput stays near its sequential rate whatever the
concurrency. Several processes need one learner, since every process serving its own learner
would serve diverging models: the design of `memento serve --replicas N` (`serving.ray_app`),
without Ray:

- the parent (`serve_workers`, the CLI's process) starts the learner process (`python -m
  serving.workers`: `serving.learner_loop.LearnerLoop`, which applies the acknowledged
  feedback from the store and publishes model versions, exactly once per row) and restarts it
  whenever it dies (it resumes from the store), then runs uvicorn's worker supervisor until
  SIGINT/SIGTERM, then stops the learner (SIGTERM: its current batch finishes);
- each worker (`worker_app`) is `create_app` with `ReplicaSync` in the place of the learner
  thread: feedback is committed to the store before its 202, and a thread loads each
  published version and applies the change feed (cases, deletes, erasures and events taken
  by the other workers) every `MEMENTO_SYNC_INTERVAL_MS`; every answer names its worker
  (`X-Memento-Worker: <pid>`).

The workers and the learner read their settings from the `MEMENTO_*` environment, which the
parent completes with the store URL it was given.

Not on the embedded SQLite store: the publication of model versions (`PgStore.publish`,
feedback rows flagged applied in the same transaction), the change feed and the row locks
exist on PostgreSQL only; on SQLite `memento serve` stays one process with its learner thread.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading

from fastapi import FastAPI

from serving.settings import ServingSettings

__all__ = ["LearnerProcess", "run_learner", "serve_workers", "worker_app"]

logger = logging.getLogger(__name__)

WORKER_HEADER = "X-Memento-Worker"
"""Response header naming the worker process (its pid) that answered."""


def _pid() -> str:
    return str(os.getpid())


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn's factory): follows the shared learner."""
    from serving.app import create_app
    from serving.middleware import TagMiddleware
    from serving.replica_sync import ReplicaSync

    settings = ServingSettings()
    if not settings.store_url:
        raise ValueError("worker processes need MEMENTO_STORE_URL=postgresql://...")
    app = create_app(settings, learner=ReplicaSync)
    app.add_middleware(TagMiddleware, header=WORKER_HEADER, value=_pid)
    return app


def run_learner(settings: ServingSettings) -> None:
    """Body of the learner process: `LearnerLoop` until SIGTERM (SIGINT is left to the parent,
    which stops the workers first)."""
    from serving.learner_loop import LearnerLoop

    stop = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    loop = LearnerLoop(settings)
    logger.info("learner process %d: model version %d", os.getpid(), loop.version)
    stop.wait()
    loop.stop()


class LearnerProcess:
    """The learner as a child process (`python -m serving.workers`), restarted when it dies."""

    def __init__(self, check_every_s: float = 1.0) -> None:
        self._every = check_every_s
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._watcher = threading.Thread(target=self._watch, name="learner-watch", daemon=True)
        self.restarts = 0
        """Times the learner process died and was started again."""

    @property
    def pid(self) -> int | None:
        """The current learner process."""
        return self._proc.pid if self._proc is not None else None

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "serving.workers"])

    def start(self) -> None:
        """Start the process and its watcher."""
        self._proc = self._spawn()
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.wait(self._every):
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                logger.warning("learner process exited with %s; starting it again", code)
                self._proc = self._spawn()
                self.restarts += 1

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop watching, then SIGTERM (SIGKILL after `timeout_s`)."""
        self._stop.set()
        if self._watcher.is_alive():
            self._watcher.join()
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def serve_workers(settings: ServingSettings, workers: int, host: str, port: int) -> None:
    """`memento serve --workers N`: the learner process, then N uvicorn workers until
    SIGINT/SIGTERM, then the learner stops."""
    import uvicorn

    if not settings.store_url:
        raise ValueError("more than one worker needs MEMENTO_STORE_URL=postgresql://...")
    os.environ["MEMENTO_STORE_URL"] = settings.store_url  # the children read their settings
    learner = LearnerProcess()
    learner.start()
    try:
        uvicorn.run(
            "serving.workers:worker_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="info",
            access_log=False,
        )
    finally:
        learner.stop()


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run_learner(ServingSettings())

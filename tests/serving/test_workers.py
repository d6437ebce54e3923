"""`memento serve --workers 2` (uvicorn workers + one learner process, PostgreSQL store): the
serving contract on one port, feedback applied once and reaching every worker, the learner
process restarted after kill -9, and SIGTERM stopping every process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from serving.pg_store import PgStore
from serving.process import ServerProcess
from serving.testing import AUTH, READ_AUTH, server_env
from serving.workers import WORKER_HEADER
from tests.serving.shared_store import assert_applied_once

LAG_BOUND_S = 10.0
"""Feedback ack -> applied and served by every worker (generous: 2 shared cores, 3 processes)."""


@pytest.fixture(scope="module")
def server(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Two workers + the learner process on a fresh database (items scorer: each feedback
    makes gradient steps)."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    tmp = tmp_path_factory.mktemp("workers")
    env = server_env(
        tmp / "unused.sqlite3",
        MEMENTO_STORE_URL=pg_server.rsplit("/", 1)[0] + "/" + name,
        MEMENTO_WORKERS="2",
        MEMENTO_FRESH__RECOMMEND__SCORER="items",
        MEMENTO_CHECKPOINT_DIR=str(tmp / "ckpt"),
    )
    with ServerProcess(env, log=tmp / "server.log").start(timeout_s=180) as proc:
        yield proc


def _store(server: ServerProcess) -> PgStore:
    return PgStore(server.env["MEMENTO_STORE_URL"])


def _children(server: ServerProcess) -> list[psutil.Process]:
    assert server.proc is not None
    return psutil.Process(server.proc.pid).children(recursive=True)


def _learner_pid(server: ServerProcess) -> int | None:
    """The learner process (`python -m serving.workers`) under the server, if running."""
    for p in _children(server):
        try:
            if "serving.workers" in p.cmdline():
                return p.pid
        except psutil.Error:
            continue
    return None


def _decision(c: httpx.Client, user: str) -> tuple[str, str]:
    r = c.post("/v1/recommend", json={"user_id": user, "n": 3}, headers=READ_AUTH)
    assert r.status_code == 200, r.text
    return r.json()["decision_id"], r.json()["items"][0]["item_id"]


def _feedback(c: httpx.Client, decision_id: str, item: str) -> httpx.Response:
    body = {"decision_id": decision_id, "item_id": item, "action": "cart"}
    return c.post("/v1/feedback", json={**body, "idempotency_key": uuid.uuid4().hex}, headers=AUTH)


def _acknowledged(server: ServerProcess, prefix: str, n: int = 5) -> set[int]:
    """`n` decisions, each with one acknowledged feedback: the feedback ids."""
    ids = set()
    with httpx.Client(base_url=server.url, timeout=10) as c:
        for k in range(n):
            decision_id, item = _decision(c, f"{prefix}{k}")
            r = _feedback(c, decision_id, item)
            assert r.status_code == 202, r.text
            ids.add(r.json()["feedback_id"])
    return ids


def _per_worker(server: ServerProcess, path: str, want: int = 2) -> dict[str, str]:
    """GET `path` on fresh connections, 8 at a time, until `want` workers answered: the
    last body of each."""
    seen: dict[str, str] = {}

    def one(_: int) -> tuple[str, str]:
        r = httpx.get(server.url + path, timeout=10)
        return r.headers[WORKER_HEADER], r.text

    with ThreadPoolExecutor(8) as pool:
        for _ in range(25):
            seen.update(pool.map(one, range(8)))
            if len(seen) >= want:
                break
    assert len(seen) >= want, f"only workers {sorted(seen)} answered"
    return seen


def test_workers_answer_under_the_serving_contract(server: ServerProcess) -> None:
    """On the one port: 401 without a key, 403 with a wrong one, 422 on a bad body, 404 on an
    unknown decision, 200/202 on good requests; both workers answer."""
    with httpx.Client(base_url=server.url, timeout=10) as c:
        assert c.post("/v1/recommend", json={"user_id": "u"}).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert c.post("/v1/recommend", json={"user_id": "u"}, headers=wrong).status_code == 403
        bad = c.post("/v1/recommend", json={"user_id": "u", "n": "3"}, headers=READ_AUTH)
        assert bad.status_code == 422 and bad.json()["error"] == "validation_error", bad.text
        unknown = {"decision_id": "nope", "item_id": "k1", "action": "click"}
        r = c.post("/v1/feedback", json={**unknown, "idempotency_key": "x1"}, headers=AUTH)
        assert r.status_code == 404 and r.json()["error"] == "unknown_decision", r.text
        decision_id, item = _decision(c, "contract")
        assert _feedback(c, decision_id, item).status_code == 202
    pids = _per_worker(server, "/readyz")
    assert all('"ready"' in body for body in pids.values()), pids


def test_feedback_is_applied_once_and_reaches_every_worker(server: ServerProcess) -> None:
    """Feedback through the port is applied once by the learner process and every worker
    serves the version that includes it within the bound."""
    store = _store(server)
    ids = _acknowledged(server, "learn")
    assert_applied_once(store, ids, LAG_BOUND_S)
    version = store.latest_version()
    assert version >= 1
    deadline = time.monotonic() + LAG_BOUND_S
    while True:
        served = {
            w: float(line.split()[-1])
            for w, text in _per_worker(server, "/metrics").items()
            for line in text.splitlines()
            if line.startswith("memento_model_sync_version ")
        }
        if len(served) >= 2 and min(served.values()) >= version:
            break
        assert time.monotonic() < deadline, f"workers serve {served}, published {version}"
        time.sleep(0.2)
    store.close()


def test_learner_process_killed_is_restarted(server: ServerProcess) -> None:
    """kill -9 of the learner process: the parent starts it again, it resumes from the store
    and applies every acknowledged feedback exactly once."""
    store = _store(server)
    pid = _learner_pid(server)
    assert pid is not None, "no learner process"
    os.kill(pid, signal.SIGKILL)
    ids = _acknowledged(server, "kill")
    deadline = time.monotonic() + 30
    while _learner_pid(server) in (None, pid):
        assert time.monotonic() < deadline, "the learner process was not started again"
        time.sleep(0.2)
    assert_applied_once(store, ids, 60.0)
    store.close()


def test_sigterm_stops_every_process(server: ServerProcess, tmp_path: Path) -> None:
    """SIGTERM to `memento serve --workers 2` stops both workers and the learner (runs last:
    it stops the module's server)."""
    children = _children(server)
    assert len(children) >= 3, [p.cmdline() for p in children]
    server.stop()
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, [p.pid for p in alive]


@pytest.mark.parametrize(
    ("args", "workers_env", "says"),
    [
        (["--workers", "2"], None, "2 workers on the embedded SQLite store"),
        ([], "3", "3 workers on the embedded SQLite store"),
        (["--workers", "2", "--replicas", "2", "--store-url", "postgresql://x/y"], None, "one"),
    ],
)
def test_serve_refuses_workers_without_postgres_or_with_replicas(
    tmp_path: Path, args: list[str], workers_env: str | None, says: str
) -> None:
    """Workers without a PostgreSQL URL (flag or `MEMENTO_WORKERS`), or beside `--replicas`,
    exit 2 with the reason."""
    env = {**os.environ, **server_env(tmp_path / "db.sqlite3")}
    env.pop("MEMENTO_STORE_URL", None)
    if workers_env:
        env["MEMENTO_WORKERS"] = workers_env
    run = subprocess.run(
        [sys.executable, "-m", "serving.cli", *args], env=env, capture_output=True, text=True
    )
    assert run.returncode == 2 and says in run.stderr, run.stderr

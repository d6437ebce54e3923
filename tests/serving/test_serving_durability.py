"""Crash safety (on both stores), startup refusal and backpressure, each on its own real server
process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from serving.pg_store import PgStore
from serving.process import ServerProcess
from serving.store import FeedbackRecord, Store
from serving.testing import AUTH, READ_AUTH, server_env, wait_idle


def _decision(url: str) -> tuple[str, str]:
    with httpx.Client(base_url=url, timeout=10) as c:
        c.post(
            "/v1/events",
            headers=AUTH,
            json={"user_id": "k", "events": [{"item_id": "k1"}, {"item_id": "k2"}]},
        )
        body = c.post("/v1/recommend", json={"user_id": "k", "n": 2}, headers=READ_AUTH).json()
    return body["decision_id"], body["items"][0]["item_id"]


@pytest.mark.parametrize(("backend", "want"), [("sqlite", 60), ("postgres", 40)])
def test_kill9_keeps_every_acknowledged_feedback(
    tmp_path: Path, backend: str, want: int, request: pytest.FixtureRequest
) -> None:
    """On either store, feedback acknowledged with 202 before a kill -9 is stored; after restart
    each stored row is applied exactly once and flagged applied."""
    db = tmp_path / "db.sqlite3"
    pg_url = str(request.getfixturevalue("pg_url")) if backend == "postgres" else None
    store_env = {"MEMENTO_STORE_URL": pg_url} if pg_url else {}
    env = server_env(db, MEMENTO_CHECKPOINT_EVERY="1000", **store_env)

    def feedback_rows() -> list[FeedbackRecord]:
        store = PgStore(pg_url) if pg_url else Store(db)
        rows = store.feedback()
        store.close()
        return rows

    server = ServerProcess(env, log=tmp_path / "server.log").start()
    decision_id, item = _decision(server.url)
    acked: list[str] = []
    stop = threading.Event()

    def stream() -> None:
        with httpx.Client(base_url=server.url, timeout=5) as c:
            while not stop.is_set():
                key = uuid.uuid4().hex
                body = {
                    "decision_id": decision_id,
                    "item_id": item,
                    "action": "click",
                    "idempotency_key": key,
                }
                try:
                    r = c.post("/v1/feedback", headers=AUTH, json=body)
                except httpx.HTTPError:
                    return
                if r.status_code == 202:
                    acked.append(key)

    threads = [threading.Thread(target=stream) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked) < want and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill9()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= want, len(acked)
    rows = feedback_rows()
    stored = {r.idempotency_key for r in rows}
    assert set(acked) <= stored, f"lost {len(set(acked) - stored)} acknowledged feedback"
    assert not any(r.applied for r in rows), "nothing was checkpointed before the crash"
    if pg_url:
        assert not db.exists(), "the SQLite file is never opened"
    with (
        ServerProcess(env, log=tmp_path / "server.log") as again,
        httpx.Client(base_url=again.url, timeout=10) as c,
    ):
        assert wait_idle(c, len(rows)) == len(rows), "each stored row applied exactly once"
    assert all(r.applied for r in feedback_rows()), "graceful stop checkpoints and marks"


@pytest.mark.parametrize(
    ("weak", "key"),
    [
        ("MEMENTO_API_KEY", None),
        ("MEMENTO_API_KEY", "memento-dev-key"),
        ("MEMENTO_READ_API_KEY", ""),
        ("MEMENTO_READ_API_KEY", "memento-dev-read-key"),
    ],
)
def test_production_mode_refuses_default_or_empty_key(
    tmp_path: Path, weak: str, key: str | None
) -> None:
    """`memento serve` in production with a default/empty write or read key exits 2, naming it."""
    env = {
        **os.environ,
        "MEMENTO_PRODUCTION": "true",
        "MEMENTO_API_KEY": "a-real-write-key",
        "MEMENTO_READ_API_KEY": "a-real-read-key",
        "MEMENTO_DB_PATH": str(tmp_path / "db.sqlite3"),
    }
    if key is None:
        env.pop(weak)  # unset: the development default
    else:
        env[weak] = key
    proc = subprocess.run(
        [sys.executable, "-m", "serving.cli", "--port", "1"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert b"refusing to start" in proc.stderr and weak.encode() in proc.stderr


def test_queue_full_is_503_with_retry_after(tmp_path: Path) -> None:
    """A saturated learner queue answers 503 + Retry-After; the rejected key can be retried."""
    env = server_env(
        tmp_path / "db.sqlite3",
        MEMENTO_QUEUE_SIZE="1",
        MEMENTO_DEMO_APPLY_DELAY_S="0.4",
        MEMENTO_PRODUCTION="true",
    )
    with (
        ServerProcess(env, log=tmp_path / "server.log") as server,
        httpx.Client(base_url=server.url, timeout=10) as c,
    ):
        decision_id, item = _decision(server.url)
        answers = []
        for _ in range(6):
            body = {
                "decision_id": decision_id,
                "item_id": item,
                "action": "collect",
                "idempotency_key": uuid.uuid4().hex,
            }
            answers.append((body, c.post("/v1/feedback", headers=AUTH, json=body)))
        busy = [(b, r) for b, r in answers if r.status_code == 503]
        assert busy, [r.status_code for _, r in answers]
        assert {r.status_code for _, r in answers} == {202, 503}
        body, r = busy[0]
        assert r.headers["Retry-After"] == "1" and r.json()["error"] == "learner_busy"
        wait_idle(c, sum(r.status_code == 202 for _, r in answers))
        retry = c.post("/v1/feedback", headers=AUTH, json=body)
        assert retry.status_code == 202 and retry.json()["duplicate"] is False

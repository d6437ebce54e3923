"""`memento serve --replicas 2` on Ray Serve: the serving contract, cross-replica learning with
a measured lag, and kill -9 of a replica (PostgreSQL store)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.pg_store import PgStore
from serving.process import free_port
from serving.settings import ServingSettings
from serving.testing import AUTH, READ_AUTH, server_env

LAG_BOUND_S = 5.0
"""Feedback ack -> every replica serves weights that include it (generous: 2 shared cores)."""


class Cluster:
    """The Serve app's URL, its deployment handle and the store URL."""

    def __init__(self, running: Any, store_url: str) -> None:
        self.running, self.url, self.handle = running, running.url, running.handle
        self.store_url = store_url

    def replica_stats(self, want: int = 2, timeout_s: float = 30.0) -> dict[str, dict[str, Any]]:
        """`stats()` of every replica (calls until `want` distinct replicas answered)."""
        seen: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout_s
        while len(seen) < want and time.monotonic() < deadline:
            s = self.handle.stats.remote().result(timeout_s=10)
            seen[s["replica"]] = s
        assert len(seen) >= want, f"only {len(seen)} replicas answered"
        return seen


@pytest.fixture(scope="module")
def cluster(
    ray_cluster: None, pg_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """Two replicas + the shared learner on a fresh PostgreSQL database (items scorer, so
    each feedback makes gradient steps)."""
    import psycopg

    from serving.ray_app import run

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    store_url = pg_server.rsplit("/", 1)[0] + "/" + name
    tmp = tmp_path_factory.mktemp("ray")
    env = server_env(
        tmp / "unused.sqlite3",
        MEMENTO_STORE_URL=store_url,
        MEMENTO_FRESH__RECOMMEND__SCORER="items",
    )
    fields = {k.removeprefix("MEMENTO_").lower(): v for k, v in env.items()}
    settings = ServingSettings.model_validate({**fields, "checkpoint_dir": tmp / "ckpt"})
    port = free_port()
    running = run(settings, 2, "127.0.0.1", port)
    url = running.url
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    try:
        yield Cluster(running, store_url)
    finally:
        running.shutdown()


def _decision(c: httpx.Client, user: str) -> tuple[str, str]:
    c.post("/v1/events", headers=AUTH, json={"user_id": user, "events": [{"item_id": "k1"}]})
    r = c.post("/v1/recommend", json={"user_id": user, "n": 3}, headers=READ_AUTH)
    assert r.status_code == 200, r.text
    return r.json()["decision_id"], r.json()["items"][0]["item_id"]


def test_replicas_answer_under_the_serving_contract(cluster: Cluster) -> None:
    """Through the Serve proxy: 401 without a key, 403 with a wrong one, 422 on a bad body,
    404 on an unknown decision, 200/202 on good requests; both replicas serve."""
    with httpx.Client(base_url=cluster.url, timeout=10) as c:
        body = {"user_id": "u"}
        assert c.post("/v1/recommend", json=body).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert c.post("/v1/recommend", json=body, headers=wrong).status_code == 403
        bad = c.post("/v1/recommend", json={"user_id": "u", "n": "3"}, headers=READ_AUTH)
        assert bad.status_code == 422 and bad.json()["error"] == "validation_error", bad.text
        unknown = {"decision_id": "nope", "item_id": "k1", "action": "click"}
        r = c.post("/v1/feedback", json={**unknown, "idempotency_key": "x1"}, headers=AUTH)
        assert r.status_code == 404 and r.json()["error"] == "unknown_decision", r.text
        served = set()
        for k in range(20):
            decision_id, item = _decision(c, f"c{k}")
            fb = {"decision_id": decision_id, "item_id": item, "action": "click"}
            r = c.post(
                "/v1/feedback", json={**fb, "idempotency_key": uuid.uuid4().hex}, headers=AUTH
            )
            assert r.status_code == 202, r.text
            served.add(r.headers["X-Memento-Replica"])
        assert len(served) == 2, f"one replica answered everything: {served}"


def test_feedback_on_one_replica_changes_q_on_the_other(cluster: Cluster) -> None:
    """Feedback acknowledged by replica A is applied once by the learner and replica B scores
    with the updated Q network within the measured lag."""
    with httpx.Client(base_url=cluster.url, timeout=10) as c:
        before = cluster.replica_stats()
        decision_id, item = _decision(c, "lag-user")
        fb = {"decision_id": decision_id, "item_id": item, "action": "alipay"}
        t0 = time.time()
        r = c.post("/v1/feedback", json={**fb, "idempotency_key": uuid.uuid4().hex}, headers=AUTH)
        assert r.status_code == 202, r.text
        fid, a = r.json()["feedback_id"], r.headers["X-Memento-Replica"]
    store = PgStore(cluster.store_url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        mine = [v for v in store.versions_after(0) if fid in v.feedback_ids]
        if mine:
            stats = cluster.replica_stats()
            if all(s["version"] >= mine[0].version for s in stats.values()):
                break
        time.sleep(0.05)
    lag = time.time() - t0
    after = cluster.replica_stats()
    others = [rid for rid in after if rid != a]
    assert others, "no second replica"
    b = others[0]
    assert after[b]["version"] >= mine[0].version
    assert after[b]["q"] != before[b]["q"], "replica B still scores with the old Q network"
    assert lag < LAG_BOUND_S, f"propagation took {lag:.2f} s"
    measured = [x for s in after.values() for x in s["lags"]]
    assert measured and max(measured) < LAG_BOUND_S, measured
    applied = [r for r in store.feedback() if r.feedback_id == fid]
    assert applied[0].applied, "flagged applied by the version that includes it"
    counted = sum(fid in v.feedback_ids for v in store.versions_after(0))
    assert counted == 1, "applied exactly once"
    store.close()
    v = mine[0]
    assert v.first_ack_ts is not None
    print(
        f"propagation: observed {lag:.3f} s (learner ack->publish {v.ts - v.first_ack_ts:.3f} s);"
        f" replica-measured lags {sorted(round(x, 3) for x in measured)}"
    )


def test_kill9_of_a_replica_loses_no_acknowledged_feedback(cluster: Cluster) -> None:
    """SIGKILL a replica process right after its 202s: every acknowledged row is in PostgreSQL
    and applied exactly once; Serve replaces the replica."""
    acked: list[tuple[int, str]] = []
    with httpx.Client(base_url=cluster.url, timeout=10) as c:
        decision_id, item = _decision(c, "crash-user")
        for _ in range(30):
            fb = {"decision_id": decision_id, "item_id": item, "action": "click"}
            r = c.post(
                "/v1/feedback", json={**fb, "idempotency_key": uuid.uuid4().hex}, headers=AUTH
            )
            if r.status_code == 202:
                acked.append((r.json()["feedback_id"], r.headers["X-Memento-Replica"]))
    victim = acked[-1][1]
    pid = cluster.replica_stats()[victim]["pid"]
    os.kill(pid, signal.SIGKILL)
    store = PgStore(cluster.store_url)
    ids = {fid for fid, _ in acked}
    assert ids <= {r.feedback_id for r in store.feedback()}, "acknowledged feedback lost"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(r.applied for r in store.feedback() if r.feedback_id in ids):
            break
        time.sleep(0.1)
    counts = [fid for v in store.versions_after(0) for fid in v.feedback_ids if fid in ids]
    assert sorted(counts) == sorted(ids), "each acknowledged row applied exactly once"
    store.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(cluster.url + "/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    assert len(cluster.replica_stats(timeout_s=60)) == 2, "Serve replaced the killed replica"


def test_serve_refuses_replicas_on_sqlite(tmp_path: Path) -> None:
    """`memento serve --replicas 2` without a PostgreSQL URL exits 2 and says what to pass."""
    env = {**os.environ, **server_env(tmp_path / "db.sqlite3")}
    env.pop("MEMENTO_STORE_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "serving.cli", "--replicas", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "--store-url postgresql://" in proc.stderr and "SQLite" in proc.stderr


@pytest.mark.slow  # a second Ray cluster in a subprocess: ~50 s on 2 cores
def test_cli_serves_two_replicas(tmp_path: Path, pg_url: str) -> None:
    """`memento serve --replicas 2 --store-url URL` (its own Ray cluster) answers 401 / 422 /
    404 / 200 and stops cleanly on SIGTERM."""
    port = free_port()
    env = {**os.environ, **server_env(tmp_path / "db.sqlite3"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "serving.cli", "--port", str(port), "--replicas", "2"]
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen([*cmd, "--store-url", pg_url], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        with httpx.Client(base_url=url, timeout=10) as c:
            assert c.post("/v1/recommend", json={"user_id": "u"}).status_code == 401
            assert c.post("/v1/recommend", json={}, headers=READ_AUTH).status_code == 422
            fb = {"decision_id": "nope", "item_id": "i", "action": "click", "idempotency_key": "k"}
            assert c.post("/v1/feedback", json=fb, headers=AUTH).status_code == 404
            r = c.post("/v1/recommend", json={"user_id": "u"}, headers=READ_AUTH)
            assert r.status_code == 200 and r.json()["items"], r.text
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    assert rc == 0, (tmp_path / "serve.log").read_text()[-2000:]

"""`memento serve --replicas 2` on Ray Serve: the serving contract, cross-replica learning with
a measured lag, kill -9 of a replica, case writes / deletes / events / erasure reaching the
other replica through the change feed, and kill -9 of the shared learner mid-stream
(PostgreSQL store)."""

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
import ray

from serving.pg_store import PgStore
from serving.process import free_port
from serving.settings import ServingSettings
from serving.testing import AUTH, READ_AUTH, server_env
from tests.serving.shared_store import assert_applied_once

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


def _feedback(c: httpx.Client, decision_id: str, item: str, action: str) -> httpx.Response:
    """Feedback on one decision's item, with a fresh idempotency key."""
    fb = {"decision_id": decision_id, "item_id": item, "action": action}
    return c.post("/v1/feedback", json={**fb, "idempotency_key": uuid.uuid4().hex}, headers=AUTH)


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
            r = _feedback(c, decision_id, item, "click")
            assert r.status_code == 202, r.text
            served.add(r.headers["X-Memento-Replica"])
        assert len(served) == 2, f"one replica answered everything: {served}"


def test_each_replica_answers_on_its_own_port(cluster: Cluster) -> None:
    """Direct ingress: each replica's own port (from Serve's target groups) serves the
    contract (401 without a key, 200 with one), always by that one replica."""
    urls = cluster.running.replica_urls(want=2, timeout_s=30)
    assert len(urls) == 2 and cluster.url not in urls, urls
    names: set[str] = set()
    for url in urls:
        with httpx.Client(base_url=url, timeout=10) as c:
            assert c.post("/v1/recommend", json={"user_id": "u"}).status_code == 401
            answers = [
                c.post("/v1/recommend", json={"user_id": f"p{k}"}, headers=READ_AUTH)
                for k in range(4)
            ]
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
        here = {r.headers["X-Memento-Replica"] for r in answers}
        assert len(here) == 1, f"{url} answered as {here}"
        names |= here
    assert len(names) == 2, f"both ports reached the same replica: {names}"


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
            r = _feedback(c, decision_id, item, "click")
            if r.status_code == 202:
                acked.append((r.json()["feedback_id"], r.headers["X-Memento-Replica"]))
    victim = acked[-1][1]
    pid = cluster.replica_stats()[victim]["pid"]
    os.kill(pid, signal.SIGKILL)
    store = PgStore(cluster.store_url)
    assert_applied_once(store, {fid for fid, _ in acked}, timeout_s=30)
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


def _until_both(
    c: httpx.Client, method: str, path: str, ok: Any, timeout_s: float = 30.0
) -> dict[str, float]:
    """Repeat a request until the latest answer of each of the 2 replicas satisfies `ok`
    (response -> bool); returns replica -> seconds from the call until its first good answer
    in the final run of good answers."""
    t0, good_since, last_ok = time.monotonic(), {}, {}
    while time.monotonic() - t0 < timeout_s:
        r = c.request(method, path, headers=AUTH)
        rid, now = r.headers["X-Memento-Replica"], time.monotonic() - t0
        last_ok[rid] = bool(ok(r))
        if last_ok[rid]:
            good_since.setdefault(rid, now)
        else:
            good_since.pop(rid, None)
        if len(last_ok) >= 2 and all(last_ok.values()):
            return good_since
        time.sleep(0.01)
    raise AssertionError(f"{method} {path}: not every replica agreed in {timeout_s} s: {last_ok}")


def _listed(user: str) -> str:
    return f"/v1/cases?user_id={user}"


def _sids(r: httpx.Response) -> set[str]:
    assert r.status_code == 200, r.text
    return {c["case_id"] for c in r.json()["cases"]}


def test_case_writes_deletes_and_events_reach_the_other_replica(cluster: Cluster) -> None:
    """A hand-written case is listed by both replicas, then gone from both after its delete;
    events posted through either replica are counted exactly once by each (the feed)."""
    with httpx.Client(base_url=cluster.url, timeout=10) as c:
        case = {"user_id": "feed-user", "items": ["k2"], "reward": 1.0}
        r = c.post("/v1/cases", json=case, headers=AUTH)
        assert r.status_code in (200, 201), r.text
        sid = r.json()["case_id"]
        written = _until_both(c, "GET", _listed("feed-user"), lambda r: sid in _sids(r))
        assert c.delete(f"/v1/cases/{sid}", headers=AUTH).status_code == 204
        deleted = _until_both(c, "GET", f"/v1/cases/{sid}", lambda r: r.status_code == 404)
        for k in range(12):
            body = {"user_id": f"pop{k % 3}", "events": [{"item_id": "l3"}, {"item_id": "l2"}]}
            assert c.post("/v1/events", json=body, headers=AUTH).status_code == 202
    store = PgStore(cluster.store_url)
    stored = len(list(store.iter_events()))
    store.close()
    deadline = time.monotonic() + LAG_BOUND_S
    while True:
        stats = cluster.replica_stats()
        counts = {rid: s["events_counted"] - s["events_base"] for rid, s in stats.items()}
        if set(counts.values()) == {stored} or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert set(counts.values()) == {stored}, f"{counts} counted, {stored} stored"
    lags = sorted(round(x, 3) for s in stats.values() for x in s["change_lags"])
    assert lags and max(lags) < LAG_BOUND_S, lags
    print(f"case write seen by both after {written}, delete after {deleted}; change lags {lags}")


def test_erasure_through_one_replica_leaves_no_case_on_the_other(cluster: Cluster) -> None:
    """A user with hand-written cases and a feedback's case (written by the learner) is erased
    through replica A: within the lag replica B lists none of them and answers 404 for each,
    while another user's case stays on both."""
    with httpx.Client(base_url=cluster.url, timeout=10) as c:
        user, keeper = "erase-me", "keep-me"
        sids = set()
        for item in ("k1", "k2", "a1"):
            r = c.post("/v1/cases", json={"user_id": user, "items": [item]}, headers=AUTH)
            assert r.status_code in (200, 201), r.text
            sids.add(r.json()["case_id"])
        r = c.post("/v1/cases", json={"user_id": keeper, "items": ["a2"]}, headers=AUTH)
        kept = r.json()["case_id"]
        decision_id, item = _decision(c, user)
        r = _feedback(c, decision_id, item, "cart")
        assert r.status_code == 202, r.text
        _until_both(c, "GET", _listed(user), lambda r: len(_sids(r)) == 4)
        every = _sids(c.get(_listed(user), headers=AUTH))
        assert sids < every and any(s.startswith("fb-") for s in every), every
        r = c.delete(f"/v1/users/{user}", headers=AUTH)
        assert r.status_code == 200 and r.json()["cases"] >= 4, r.text
        a = r.headers["X-Memento-Replica"]
        seen = _until_both(c, "GET", _listed(user), lambda r: not _sids(r))
        lag = max(t for rid, t in seen.items() if rid != a)
        b = next(rid for rid in seen if rid != a)
        for sid in every:
            gone = _until_both(c, "GET", f"/v1/cases/{sid}", lambda r: r.status_code == 404)
            assert set(gone) == {a, b}
        both = _until_both(c, "GET", _listed(keeper), lambda r: _sids(r) == {kept})
        assert set(both) == {a, b}
    assert lag < LAG_BOUND_S, f"replica B still listed the erased user's cases after {lag:.2f} s"
    store = PgStore(cluster.store_url)
    assert store.list_cases(user) == [] and store.get_case(kept) is not None
    store.close()
    print(f"erasure via {a}: replica {b} listed none {lag:.3f} s after the answer")


def test_killing_the_learner_mid_stream_loses_no_acknowledged_feedback(cluster: Cluster) -> None:
    """SIGKILL the shared learner's process while feedback streams in: Ray restarts it, it
    resumes from the store, and every acknowledged row is applied exactly once, its case
    logged once."""
    learner = cluster.running.learner
    old = ray.get(learner.stats.remote(), timeout=30)
    acked: dict[int, tuple[str, str]] = {}
    killed_after, backlog = -1, -1
    store = PgStore(cluster.store_url)
    with httpx.Client(base_url=cluster.url, timeout=10) as c:
        for k in range(36):
            decision_id, item = _decision(c, f"stream-{k}")
            r = _feedback(c, decision_id, item, "click")
            assert r.status_code == 202, r.text
            acked[r.json()["feedback_id"]] = (decision_id, item)
            if k == 12:
                backlog = len(store.feedback(unapplied_only=True))
                os.kill(old["pid"], signal.SIGKILL)
                killed_after = len(acked)
    assert killed_after > 0
    assert_applied_once(store, set(acked), timeout_s=120)
    cases = {c.case_id for u in {f"stream-{k}" for k in range(36)} for c in store.list_cases(u)}
    assert len(cases) == len({(d, i) for d, i in acked.values()}), "one case per feedback"
    store.close()
    new = ray.get(learner.stats.remote(), timeout=30)
    assert new["pid"] != old["pid"] and new["alive"], (old, new)
    print(
        f"learner {old['pid']} killed after {killed_after} acks ({backlog} unapplied), "
        f"restarted as {new['pid']}"
    )


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

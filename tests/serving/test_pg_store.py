"""The PostgreSQL store: the SQLite store's semantics on a server, and kill -9 of a real server."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from serving.pg_store import PgStore
from serving.process import ServerProcess
from serving.service import DecisionSnapshot, EventRecord
from serving.store import CaseRecord
from serving.testing import AUTH, READ_AUTH, server_env, wait_idle


def _snapshot(decision_id: str, user: str = "u") -> DecisionSnapshot:
    return DecisionSnapshot(decision_id, user, b"\x00\x01", b"{}", ("c1",), ("i1", "i2"), "v", 1.0)


def test_feedback_insert_is_idempotent_under_concurrency(pg_url: str) -> None:
    """Eight connections racing on one key insert it exactly once; all get the same id."""
    PgStore(pg_url).close()
    results: list[tuple[int, bool]] = []

    def insert() -> None:
        s = PgStore(pg_url)
        results.append(s.insert_feedback("same-key", "d1", "i1", "click", None))
        s.close()

    threads = [threading.Thread(target=insert) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(inserted for _, inserted in results) == 1, results
    assert len({fid for fid, _ in results}) == 1, results
    store = PgStore(pg_url)
    assert [r.idempotency_key for r in store.feedback()] == ["same-key"]
    store.close()


def test_store_round_trips_like_sqlite(pg_url: str) -> None:
    """Decisions, events (oldest first, `before`), cases (once, soft delete), blobs, erasure."""
    s = PgStore(pg_url)
    s.put_decision(_snapshot("d1"))
    assert s.get_decision("d1") == _snapshot("d1")
    assert s.get_decision("nope") is None
    s.append_events("u", [EventRecord("a", "click", 1.0), EventRecord("b", "click", 2.0)])
    assert [e.item_id for e in s.recent_events("u", 10)] == ["a", "b"]
    assert [e.item_id for e in s.recent_events("u", 10, before=2.0)] == ["a"]
    case = CaseRecord("c1", "u", {"items": ["a"]}, b"\x00" * 8, 1.0, 3.0, False)
    assert s.put_case(case) and not s.put_case(case)
    assert s.get_case("c1") == case and [c.case_id for c in s.list_cases("u")] == ["c1"]
    assert s.delete_case("c1") and not s.delete_case("c1") and s.get_case("c1") is None
    s.save_blob("x", b"1")
    s.save_blob("x", b"2")
    assert s.load_blob("x") == b"2" and s.load_blob("y") is None
    fid, _ = s.insert_feedback("k", "d1", "i1", "click", 3.5)
    assert [r.feedback_id for r in s.feedback(unapplied_only=True)] == [fid]
    s.mark_applied([fid])
    assert s.feedback(unapplied_only=True) == [] and s.feedback()[0].applied
    counts = s.erase_user("u")
    assert (counts.events, counts.decisions, counts.feedback, counts.cases) == (2, 1, 1, 1)
    s.close()


def test_publish_applies_each_feedback_exactly_once(pg_url: str) -> None:
    """A version flags its rows applied in the same transaction; publishing them again fails
    and rolls back (no second version, no double count)."""
    s = PgStore(pg_url)
    ids = [s.insert_feedback(f"k{i}", "d", "i", "click", None)[0] for i in range(3)]
    assert [r.feedback_id for r in s.unapplied_after(0)] == ids
    v1 = s.publish(b"w1", ["fb-1"], ids[:2])
    assert [r.feedback_id for r in s.unapplied_after(0)] == [ids[2]]
    with pytest.raises(RuntimeError, match="already applied"):
        s.publish(b"w2", [], ids[1:])
    assert s.latest_version() == v1 and [r.feedback_id for r in s.unapplied_after(0)] == [ids[2]]
    v2 = s.publish(b"w3", ["fb-2"], ids[2:])
    versions = s.versions_after(0)
    assert [v.version for v in versions] == [v1, v2]
    assert versions[0].weights is None and versions[1].weights == b"w3", "newest weights only"
    assert versions[0].case_ids == ["fb-1"] and versions[1].feedback_ids == ids[2:]
    s.close()


def _decision(url: str) -> tuple[str, str]:
    with httpx.Client(base_url=url, timeout=10) as c:
        c.post(
            "/v1/events",
            headers=AUTH,
            json={"user_id": "k", "events": [{"item_id": "k1"}, {"item_id": "k2"}]},
        )
        body = c.post("/v1/recommend", json={"user_id": "k", "n": 2}, headers=READ_AUTH).json()
    return body["decision_id"], body["items"][0]["item_id"]


def test_kill9_keeps_acknowledged_feedback_in_postgres(tmp_path: Path, pg_url: str) -> None:
    """A server on the PostgreSQL store killed with -9 mid-stream keeps every 202-acknowledged
    feedback; after restart each is applied once and flagged applied."""
    env = server_env(
        tmp_path / "db.sqlite3", MEMENTO_CHECKPOINT_EVERY="1000", MEMENTO_STORE_URL=pg_url
    )
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
    while len(acked) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill9()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 40, len(acked)
    store = PgStore(pg_url)
    rows = store.feedback()
    stored = {r.idempotency_key for r in rows}
    assert set(acked) <= stored, f"lost {len(set(acked) - stored)} acknowledged feedback"
    assert not any(r.applied for r in rows), "nothing was checkpointed before the crash"
    assert not (tmp_path / "db.sqlite3").exists(), "the SQLite file is never opened"
    with (
        ServerProcess(env, log=tmp_path / "server.log") as again,
        httpx.Client(base_url=again.url, timeout=10) as c,
    ):
        assert wait_idle(c, len(rows)) == len(rows), "each stored row applied exactly once"
    assert all(r.applied for r in store.feedback()), "graceful stop checkpoints and marks"
    store.close()

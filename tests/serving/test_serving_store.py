"""SQLite store: idempotent feedback under threads, erasure, event order, case log."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from serving.service import DecisionSnapshot, EventRecord
from serving.store import CaseRecord, Store


def _decision(store: Store, did: str, user: str) -> None:
    store.put_decision(DecisionSnapshot(did, user, b"s", b"c", ("c1",), ("i1", "i2"), "v", 1.0))


def test_concurrent_duplicate_feedback_inserts_once(tmp_path: Path) -> None:
    """Sixteen threads inserting one key get one row and exactly one `inserted_now`."""
    store = Store(tmp_path / "db.sqlite3")
    _decision(store, "d1", "u")
    results: list[tuple[int, bool]] = []
    barrier = threading.Barrier(16)

    def insert() -> None:
        barrier.wait()
        results.append(store.insert_feedback("same", "d1", "i1", "click", None))

    threads = [threading.Thread(target=insert) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(inserted for _, inserted in results) == 1
    assert len({fid for fid, _ in results}) == 1
    assert len(store.feedback()) == 1


def test_decision_round_trip_and_unapplied_feedback(tmp_path: Path) -> None:
    """Decisions come back field for field; marking applied removes rows from the backlog."""
    store = Store(tmp_path / "db.sqlite3")
    _decision(store, "d1", "u")
    d = store.get_decision("d1")
    assert d == DecisionSnapshot("d1", "u", b"s", b"c", ("c1",), ("i1", "i2"), "v", 1.0)
    assert store.get_decision("nope") is None
    a, _ = store.insert_feedback("k1", "d1", "i1", "click", 3.0)
    b, _ = store.insert_feedback("k2", "d1", "i2", "cart", None)
    store.mark_applied([a])
    assert [r.feedback_id for r in store.feedback(unapplied_only=True)] == [b]
    store.delete_unapplied_feedback(a)  # applied rows are never withdrawn
    assert len(store.feedback()) == 2


def test_erase_user_removes_only_that_users_rows(tmp_path: Path) -> None:
    """Erasure deletes the user's events, decisions, their feedback and cases, nobody else's."""
    store = Store(tmp_path / "db.sqlite3")
    key = np.zeros(4, np.float32).tobytes()
    for user in ("gone", "kept"):
        store.append_events(user, [EventRecord("i1", "click", 1.0), EventRecord("i2", "cart", 2.0)])
        _decision(store, f"d-{user}", user)
        store.insert_feedback(f"k-{user}", f"d-{user}", "i1", "click", None)
        store.put_case(CaseRecord(f"c-{user}", user, {"items": ["i1"]}, key, 1.0, 1.0, False))
    counts = store.erase_user("gone")
    assert (counts.events, counts.decisions, counts.feedback, counts.cases) == (2, 1, 1, 1)
    assert store.recent_events("gone", 10) == [] and store.get_decision("d-gone") is None
    assert [r.idempotency_key for r in store.feedback()] == ["k-kept"]
    assert [c.case_id for c in store.live_cases()] == ["c-kept"]


def test_recent_events_are_the_latest_oldest_first(tmp_path: Path) -> None:
    """`recent_events` returns the last `limit` events in chronological order."""
    store = Store(tmp_path / "db.sqlite3")
    store.append_events("u", [EventRecord(f"i{t}", "click", float(t)) for t in (5, 1, 3, 4, 2)])
    assert [e.item_id for e in store.recent_events("u", 3)] == ["i3", "i4", "i5"]


def test_recent_events_as_of_a_past_time(tmp_path: Path) -> None:
    """With `before`, the latest events strictly earlier than that time (a replayed decision
    never sees the user's later history), oldest first."""
    store = Store(tmp_path / "db.sqlite3")
    store.append_events("u", [EventRecord(f"i{t}", "click", float(t)) for t in (5, 1, 3, 4, 2)])
    assert [e.item_id for e in store.recent_events("u", 2, before=4.0)] == ["i2", "i3"]
    assert [e.item_id for e in store.recent_events("u", 10, before=1.0)] == []
    assert len(store.recent_events("u", 10)) == 5


def test_case_log_soft_delete_and_idempotent_put(tmp_path: Path) -> None:
    """A replayed case insert is a no-op; a deleted case disappears from live views."""
    store = Store(tmp_path / "db.sqlite3")
    rec = CaseRecord("c1", "u", {"items": ["a"]}, b"\x00" * 16, 0.5, 1.0, False)
    assert store.put_case(rec) and not store.put_case(rec)
    assert store.get_case("c1") == rec
    assert store.delete_case("c1") and not store.delete_case("c1")
    assert store.get_case("c1") is None and store.list_cases("u") == []


def test_write_behind_decisions_are_visible_at_once_and_on_disk_before_feedback(
    tmp_path: Path,
) -> None:
    """A write-behind decision is readable immediately, and a feedback insert puts it on disk
    first (a second connection sees it) even when the batch timer has not fired."""
    db = tmp_path / "db.sqlite3"
    store = Store(db, write_behind_ms=60_000.0)  # the timer never fires within the test
    _decision(store, "d1", "u")
    assert store.get_decision("d1") is not None
    other = Store(db)
    assert other.get_decision("d1") is None, "still pending: not on disk yet"
    store.insert_feedback("k1", "d1", "i1", "click", None)
    assert other.get_decision("d1") == store.get_decision("d1")
    _decision(store, "d2", "u")
    store.close()  # closing writes what is pending
    assert other.get_decision("d2") is not None
    other.close()


def test_write_behind_timer_writes_batches(tmp_path: Path) -> None:
    """With a short timer, queued decisions reach disk without any feedback or close."""
    db = tmp_path / "db.sqlite3"
    store = Store(db, write_behind_ms=5.0)
    for k in range(50):
        _decision(store, f"d{k}", "u")
    other = Store(db)
    deadline = time.monotonic() + 10.0
    while other.get_decision("d49") is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(other.get_decision(f"d{k}") is not None for k in range(50))
    store.close()
    other.close()

"""The PostgreSQL store: the SQLite store's semantics on a server (its kill -9 test lives with the
SQLite one in test_serving_durability.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from serving.pg_store import PgStore
from serving.service import DecisionSnapshot, EventRecord
from serving.store import CaseRecord, Store


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


def test_both_dialects_answer_alike(tmp_path: Path, pg_url: str) -> None:
    """The same calls on the SQLite and the PostgreSQL store (bulk cases and events, a batch
    of cases and of decisions read at once, marking many rows applied, replays, erasure)
    return the same records."""

    def drive(s: Store) -> list[object]:
        key = b"\x00" * 8
        cases = [
            CaseRecord(f"c{i}", f"u{i % 2}", {"i": i}, key, i / 2, 10.0 - i, False)
            for i in range(5)
        ]
        s.put_cases(cases + cases[:2])  # replayed rows are no-ops
        s.delete_case("c3")
        s.append_events("u0", [EventRecord(f"i{t}", "click", float(t)) for t in (3, 1, 2)])
        s.append_events("u1", [EventRecord("j", "cart", 1.0)])
        s.put_decision(_snapshot("d0", "u0"))
        extra = CaseRecord("c9", "u1", {"i": 9}, key, 0.5, 1.0, False)
        bulk = s.put_case_many([cases[1], extra, extra])  # the learner's batch of cases
        decisions = s.get_decisions(["d0", "nope", "d0"])
        ids = [s.insert_feedback(f"k{i}", "d0", "i1", "click", None)[0] for i in range(4)]
        again = s.insert_feedback("k1", "d0", "i2", "cart", 9.0)
        s.mark_applied(ids[:3])
        unapplied = [(r.idempotency_key, r.applied) for r in s.feedback(unapplied_only=True)]
        out: list[object] = [
            sorted(s.live_cases(), key=lambda c: c.case_id),
            s.list_cases("u0"),
            list(s.iter_events()),
            s.recent_events("u0", 2),
            again == (ids[1], False),
            unapplied,
            bulk == [False, True, False],
            decisions == {"d0": _snapshot("d0", "u0")},
            s.erase_user("u0"),
            [(r.idempotency_key, r.applied) for r in s.feedback()],
        ]
        s.close()
        return out

    assert drive(PgStore(pg_url)) == drive(Store(tmp_path / "db.sqlite3"))


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

"""The change feed (`serving.change_feed`) between two serving cores on one PostgreSQL store:
case writes, deletes, erasure and events written through core A reach core B, once each, and
the store-side guards that make erasure hold across processes; `memento logs export` reads
the PostgreSQL store like the SQLite one."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from serving.case_log import TOMBSTONES
from serving.change_feed import ERASE, EVENTS, TOMBSTONE, ChangeFollower
from serving.core import ServingCore, build_core
from serving.logs_export import export_logs
from serving.pg_store import PgStore
from serving.service import DecisionSnapshot, EventRecord, NewCase
from serving.store import CaseRecord, Store
from tests.serving.test_serving_core import _settings


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Tiny networks: one torch thread avoids oversubscription on shared cores."""
    import torch

    torch.set_num_threads(1)


class Replica:
    """One serving process in miniature: its own store connection, core and feed follower."""

    def __init__(self, tmp: Path, url: str, **kw: object) -> None:
        self.store = PgStore(url)
        self.core: ServingCore = build_core(_settings(tmp, **kw), self.store)
        self.gaps = 0
        self.feed = ChangeFollower(self.store, self.core, on_gap=self._gap)

    def _gap(self) -> None:
        self.gaps += 1
        self.core.reload()

    def add_events(self, user: str, *items: str) -> None:
        """`POST /v1/events` as `RecommendService.add_events` runs it."""
        now = time.time()
        events = [EventRecord(i, "click", now + k * 1e-3) for k, i in enumerate(items)]
        self.store.append_events(user, events)
        self.core.observe_events(user, events)

    def erase(self, user: str) -> None:
        """`DELETE /v1/users/{id}` as `RecommendService.erase_user` runs it."""
        self.store.erase_user(user)
        self.core.erase_user(user)

    def case_ids(self, user: str) -> list[str]:
        """`GET /v1/cases?user_id=`: the user's cases this core's bank holds."""
        return [c.case_id for c in self.core.list_cases(user)]

    def events_counted(self) -> int:
        """Events in this core's popularity log."""
        return len(self.core.runtime.bundle.popularity)


@pytest.fixture
def pair(tmp_path: Path, pg_url: str) -> Iterator[tuple[Replica, Replica]]:
    """Replicas A and B on one fresh PostgreSQL database."""
    a, b = Replica(tmp_path / "a", pg_url), Replica(tmp_path / "b", pg_url)
    yield a, b
    a.store.close()
    b.store.close()


def _case(core: ServingCore, user: str, item: str) -> str:
    return core.write_case(NewCase(user, (item,), 1.0, (EventRecord("i0", "click", 1.0),)))


def test_a_case_written_and_deleted_on_a_reaches_b(pair: tuple[Replica, Replica]) -> None:
    """A hand-written case on A is listed and readable on B after one poll; deleted on A, it
    is gone from B's bank after the next."""
    a, b = pair
    sid = _case(a.core, "u1", "i11")
    assert b.case_ids("u1") == [] and b.core.get_case(sid) is None
    b.feed.poll()
    assert b.case_ids("u1") == [sid] and b.core.get_case(sid) is not None
    assert a.core.delete_case(sid)
    b.feed.poll()
    assert b.case_ids("u1") == [] and b.core.get_case(sid) is None
    assert sid not in b.core.runtime.int_of


def test_erasure_on_a_leaves_none_of_the_users_cases_on_b(pair: tuple[Replica, Replica]) -> None:
    """A user with cases written through both replicas is erased through A: after B polls,
    B lists and reads none of them, other users keep theirs, and nothing comes back."""
    a, b = pair
    mine = [_case(a.core, "gone", "i12"), _case(b.core, "gone", "i13")]
    other = _case(a.core, "stays", "i14")
    a.feed.poll()
    b.feed.poll()
    assert sorted(b.case_ids("gone")) == sorted(mine) and b.case_ids("stays") == [other]
    a.erase("gone")
    b.feed.poll()
    assert b.case_ids("gone") == [] and all(b.core.get_case(s) is None for s in mine)
    assert a.case_ids("gone") == [] and b.case_ids("stays") == [other]
    b.feed.poll()
    a.feed.poll()
    assert b.case_ids("gone") == [] and a.case_ids("gone") == []
    assert b.store.list_cases("gone") == []


def test_events_are_counted_once_on_every_replica(pair: tuple[Replica, Replica]) -> None:
    """Events posted through A and through B, interleaved: after both poll, each popularity log
    holds every stored event exactly once (its own counted at the post, the other's fed)."""
    a, b = pair
    base = a.events_counted()
    assert b.events_counted() == base
    a.add_events("u1", "i3", "i3", "i4")
    b.add_events("u2", "i3")
    a.add_events("u3", "i5")
    for r in (a, b, a, b):
        r.feed.poll()
    assert a.events_counted() == b.events_counted() == base + 5
    rows, _ = b.core.runtime.bundle.popularity.log()
    i3 = b.core.runtime.items.row_of["i3"]
    assert int(np.sum(rows == i3)) == 3


def test_an_erased_users_events_leave_popularity_on_the_other_replica(
    pair: tuple[Replica, Replica],
) -> None:
    """Events of a user erased before B polled them are never counted on B; counted ones
    leave with the erasure."""
    a, b = pair
    base = b.events_counted()
    a.add_events("early", "i6", "i6")
    b.feed.poll()
    a.add_events("late", "i7")
    a.erase("late")
    a.erase("early")
    b.feed.poll()
    assert b.events_counted() == a.events_counted() == base


def test_a_poll_that_fails_midway_applies_nothing_twice(
    pair: tuple[Replica, Replica], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store fails while B applies a case after some events: the next poll applies the
    case and counts the events no second time (the cursor moved past them)."""
    a, b = pair
    base = b.events_counted()
    a.add_events("u1", "i8", "i9")
    sid = _case(a.core, "u1", "i17")
    real = b.store.get_cases

    def broken(ids: list[str]) -> list[CaseRecord]:
        raise OSError("connection lost")

    monkeypatch.setattr(b.store, "get_cases", broken)
    with pytest.raises(OSError):
        b.feed.poll()
    assert b.events_counted() == base + 2 and b.case_ids("u1") == []
    monkeypatch.setattr(b.store, "get_cases", real)
    b.feed.poll()
    assert b.events_counted() == base + 2 and b.case_ids("u1") == [sid]


def test_a_follower_started_after_writes_applies_them_once(
    tmp_path: Path, pg_url: str, pair: tuple[Replica, Replica]
) -> None:
    """A replica opened after events and cases were written starts from its own full read:
    polling the feed then adds nothing twice."""
    a, _ = pair
    a.add_events("u1", "i1", "i2")
    sid = _case(a.core, "u1", "i15")
    c = Replica(tmp_path / "c", pg_url)
    try:
        counted = c.events_counted()
        assert counted == a.events_counted() and c.case_ids("u1") == [sid]
        c.feed.poll()
        assert c.events_counted() == counted and c.case_ids("u1") == [sid]
    finally:
        c.store.close()


def test_a_feedback_case_of_an_erased_decision_is_refused(pg_url: str) -> None:
    """The store logs a feedback's case only while its decision exists, so a learner that
    writes it after the user's erasure committed leaves nothing; other cases are fed."""
    s = PgStore(pg_url)
    d = DecisionSnapshot("d1", "u", b"\x00", b"{}", (), ("i1",), "v", 1.0)
    s.put_decision(d)
    fb = CaseRecord("fb-1", "u", {"decision_id": "d1"}, b"\x00" * 4, 1.0, 2.0, False)
    s.erase_user("u")
    assert not s.put_case(fb) and s.get_case("fb-1") is None
    s.put_decision(d)
    assert s.put_case(fb) and s.get_case("fb-1") is not None
    manual = CaseRecord("m-1", "u", {"items": ["i1"]}, b"\x00" * 4, 1.0, 2.0, False)
    assert s.put_case(manual)
    kinds = [c.kind for c in s.changes_after(0, 100)]
    assert kinds == [ERASE, "case", "case"], kinds
    s.close()


def test_a_learner_batchs_cases_are_written_and_fed_in_one_transaction(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cases queued in `deferred_cases` reach the store only on leaving, all with their
    changes in one transaction: a failure after the insert leaves no case and no change, the
    queue is kept and the next batch writes it; a case of a decision not stored is refused."""
    s, other = PgStore(pg_url), PgStore(pg_url)
    for d in ("d1", "d2", "d3"):
        s.put_decision(DecisionSnapshot(d, "u", b"\x00", b"{}", (), ("i1",), "v", 1.0))
    cases = [
        CaseRecord(f"fb-{d}", "u", {"decision_id": d}, b"\x00" * 4, 1.0, 2.0, False)
        for d in ("d1", "d2", "gone")
    ]
    real_feed = s._feed_many

    def fail_after_insert(kind: str, subjects: list[str], body: object = None) -> None:
        real_feed(kind, subjects, body)
        raise RuntimeError("connection lost mid-batch")

    monkeypatch.setattr(s, "_feed_many", fail_after_insert)
    with pytest.raises(RuntimeError), s.deferred_cases():
        for c in cases:
            assert s.put_case(c)
        assert other.get_cases([c.case_id for c in cases]) == []  # queued, not written
    assert other.get_cases([c.case_id for c in cases]) == []
    assert other.changes_after(0, 100) == []
    monkeypatch.setattr(s, "_feed_many", real_feed)
    late = CaseRecord("fb-d3", "u", {"decision_id": "d3"}, b"\x00" * 4, 1.0, 2.0, False)
    with s.deferred_cases():
        s.put_case(late)
    written = sorted(c.case_id for c in other.get_cases([*(c.case_id for c in cases), "fb-d3"]))
    assert written == ["fb-d1", "fb-d2", "fb-d3"]
    fed = [(c.kind, c.subject) for c in other.changes_after(0, 100)]
    assert fed == [("case", "fb-d1"), ("case", "fb-d2"), ("case", "fb-d3")], fed
    s.close()
    other.close()


def test_tombstones_from_two_stores_are_merged_and_fed(pg_url: str) -> None:
    """Two processes saving their own tombstone sets keep both (a union), and each new id is
    fed once; a replayed save feeds nothing."""
    a, b = PgStore(pg_url), PgStore(pg_url)
    a.save_blob(TOMBSTONES, json.dumps(["x"]).encode())
    b.save_blob(TOMBSTONES, json.dumps(["y"]).encode())
    b.save_blob(TOMBSTONES, json.dumps(["y"]).encode())
    blob = a.load_blob(TOMBSTONES)
    assert blob is not None and sorted(json.loads(blob)) == ["x", "y"]
    fed = [(c.kind, c.body, c.origin) for c in a.changes_after(0, 100)]
    assert fed == [(TOMBSTONE, ["x"], a.origin), (TOMBSTONE, ["y"], b.origin)]
    a.close()
    b.close()


def test_event_ids_follow_the_feed_order(pg_url: str) -> None:
    """Each events change names exactly the ids its append wrote, in feed order."""
    s = PgStore(pg_url)
    s.append_events("u", [EventRecord("a", "click", 1.0), EventRecord("b", "click", 2.0)])
    s.append_events("v", [EventRecord("c", "click", 3.0)])
    changes = [c for c in s.changes_after(0, 100) if c.kind == EVENTS]
    ranges = [tuple(c.body) for c in changes]
    got = [[e.item_id for _, _, e in s.events_between(*r)] for r in ranges]
    assert got == [["a", "b"], ["c"]], (ranges, got)
    s.close()


def test_a_follower_behind_the_pruned_feed_rebuilds(pair: tuple[Replica, Replica]) -> None:
    """Changes pruned before B read them: B rebuilds from the store (and so still holds the
    case), then follows from the newest change."""
    a, b = pair
    sid = _case(a.core, "u1", "i16")
    newest = a.store.changes_after(0, 100)[-1].change_id
    assert a.store.prune_changes(time.time() + 1.0) >= 1
    assert a.store.changes_after(0, 100) == [] and a.store.pruned_upto() == newest
    b.feed.poll()
    assert b.gaps == 1 and b.case_ids("u1") == [sid] and b.feed.cursor == newest
    b.feed.poll()
    assert b.gaps == 1


def test_a_writer_prunes_changes_past_retention(pg_url: str) -> None:
    """A feed write, once per prune interval, deletes the changes older than the retention and
    records the largest id it deleted; younger changes stay."""
    import psycopg

    s = PgStore(pg_url)
    key = b"\x00" * 4
    s.put_case(CaseRecord("old", "u", {}, key, 1.0, 1.0, False))
    with psycopg.connect(pg_url, autocommit=True) as db:
        db.execute("UPDATE changes SET ts = ts - 2 * 86400")
    old = s.changes_after(0, 10)[0].change_id
    s.put_case(CaseRecord("young", "u", {}, key, 1.0, 1.0, False))
    assert len(s.changes_after(0, 10)) == 2, "pruned before the interval passed"
    s._pruned_at = 0.0
    s.put_case(CaseRecord("newest", "u", {}, key, 1.0, 1.0, False))
    assert [c.subject for c in s.changes_after(0, 10)] == ["young", "newest"]
    assert s.pruned_upto() == old
    s.close()


def test_logs_export_reads_postgresql_like_sqlite(tmp_path: Path, pg_url: str) -> None:
    """The same logged decisions and feedback in a SQLite and a PostgreSQL store export to
    the same arrays (`--store-url` needs `--bundle`)."""
    core = build_core(
        _settings(tmp_path / "m", recommend={"scorer": "items"}, policy="sample"),
        Store(tmp_path / "m" / "db.sqlite3"),
    )
    sqlite, pg = Store(tmp_path / "db.sqlite3"), PgStore(pg_url)
    now = time.time()
    for k in range(6):
        events = (EventRecord(f"i{k}", "click", now - 50), EventRecord(f"i{k + 10}", "click", now))
        r = core.recommend(f"u{k % 2}", 3, {}, events, [], False)
        items = tuple(i.item_id for i in r.items)
        d = DecisionSnapshot(f"d{k}", f"u{k % 2}", r.state, r.candidates, (), items, "v", now + k)
        for s in (sqlite, pg):
            s.put_decision(d)
            s.insert_feedback(f"d{k}-0", d.decision_id, items[0], "alipay", None)
    core.checkpoint()
    sqlite.close()
    pg.close()
    bundle = tmp_path / "m" / "checkpoints" / "snapshot"
    with pytest.raises(ValueError, match="needs --bundle"):
        export_logs(None, tmp_path / "x.npz", store_url=pg_url)
    one = export_logs(tmp_path / "db.sqlite3", tmp_path / "sqlite.npz", bundle=bundle)
    two = export_logs(None, tmp_path / "pg.npz", bundle=bundle, store_url=pg_url)
    assert one.records == two.records == 18 and one.rewarded == two.rewarded == 6
    x, y = np.load(tmp_path / "sqlite.npz"), np.load(tmp_path / "pg.npz")
    assert sorted(x.files) == sorted(y.files)
    for name in x.files:
        assert np.array_equal(x[name], y[name]), name


def test_logs_export_names_an_unreachable_store(tmp_path: Path) -> None:
    """An unreachable PostgreSQL URL is a message (`ValueError`), its password left out."""
    url = "postgresql://me:secret@127.0.0.1:9/none"
    with pytest.raises(ValueError, match="cannot read the PostgreSQL store") as err:
        export_logs(None, tmp_path / "x.npz", bundle=tmp_path, store_url=url)
    assert "secret" not in str(err.value)

"""PostgreSQL store: the `Store` contract on a server, for more than one serving replica.

`PgStore` runs every `Store` method's SQL unchanged on a `PgConnection` (the PostgreSQL
dialect of `serving.store_sql`): feedback is inserted once per idempotency key (`UNIQUE` +
`ON CONFLICT DO NOTHING`) and committed with `synchronous_commit=on` before the 202 leaves, so
acknowledged feedback survives `kill -9` of the replica that took it. Decisions commit with
`synchronous_commit=off` (a replica kill cannot lose them; only a crash of the database server
within ~200 ms can).

Beyond `Store`: `unapplied_after` / `publish` let one learner take unapplied feedback and, in
ONE transaction (its rows locked `FOR UPDATE`), record a model version (weights + new case
ids) and flag those rows applied: a row is reflected exactly once in the published model.
One connection per store guarded by one lock (like the SQLite store).

The change feed (`serving.change_feed`): `put_case` / `put_case_many`, `append_events`,
`erase_user` and the tombstone blob append a change in their own transaction, after the feed's
advisory lock, so every replica and the learner can follow them. Two guards make erasure hold
across processes: a feedback's case is logged only while its decision exists (an erasure
committed first wins over the learner writing that case late), and the tombstone blob is
merged (a union), never overwritten by one process's set. Bulk `put_cases` (seeding before the
service starts) is not fed. Inside `deferred_cases` (the learner's batch) `put_case` queues,
and the batch's cases are written and fed in one transaction on leaving (one commit per
version instead of one per feedback).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from serving.case_log import TOMBSTONES
from serving.change_feed import (
    CASE,
    ERASE,
    EVENTS,
    FEED_LOCK,
    PRUNE_EVERY_S,
    RETENTION_S,
    TOMBSTONE,
    Change,
    decode_rows,
    encode_body,
)
from serving.pg_connection import PgConnection
from serving.service import EventRecord
from serving.store import (
    _CASE_COLS,
    CaseRecord,
    ErasureCounts,
    FeedbackRecord,
    Store,
    StoredLogs,
    _case,
    _case_row,
    _decision,
    _feedback,
)

__all__ = ["ModelVersion", "PgConnection", "PgStore", "read_pg_logs"]


@dataclass(frozen=True)
class ModelVersion:
    """One published model version."""

    version: int
    """Monotone version number (the learner's publish count)."""
    weights: bytes | None
    """Serialised learner state (kept for the newest version only)."""
    case_ids: list[str]
    """Cases the learner wrote while applying this version's feedback."""
    feedback_ids: list[int]
    """Feedback rows this version applied."""
    first_ack_ts: float | None
    """When the oldest of those rows was acknowledged (None: no feedback)."""
    ts: float
    """When the version was published."""


_GUARDED_PUT_CASE = (
    f"INSERT INTO cases ({_CASE_COLS}) SELECT ?,?,?,?,?,?,? WHERE CAST(? AS TEXT) IS NULL "
    "OR EXISTS (SELECT 1 FROM decisions WHERE decision_id = ?) ON CONFLICT (case_id) DO NOTHING"
)
"""`Store`'s case insert, refused for a feedback's case whose decision is gone (erased)."""
_GUARDED_PUT_CASES = (
    f"INSERT INTO cases ({_CASE_COLS}) SELECT {_CASE_COLS} FROM unnest(?::text[], ?::text[], "
    "?::text[], ?::bytea[], ?::float8[], ?::float8[], ?::int[], ?::text[]) AS v(case_id, "
    "user_id, payload, key, reward, ts, deleted, decision_id) WHERE v.decision_id IS NULL OR "
    "EXISTS (SELECT 1 FROM decisions d WHERE d.decision_id = v.decision_id) "
    "ON CONFLICT (case_id) DO NOTHING RETURNING case_id"
)
"""`_GUARDED_PUT_CASE` for many rows in one statement (column arrays); the ids inserted."""
_PRUNED = "feed.pruned_upto"
"""Store blob: the largest change id `prune_changes` deleted (ASCII digits)."""


class PgStore(Store):
    """Thread-safe PostgreSQL store (`url`: `postgresql://...`); open once per process."""

    _db: PgConnection

    def __init__(self, url: str) -> None:
        """Connect and create the schema if missing (decisions need no write-behind here: they
        commit asynchronously on the server, `synchronous_commit=off`)."""
        self.url = url
        self._db = PgConnection(url)
        self._writer = None
        self.origin = uuid.uuid4().hex
        """Tag of the changes this store writes (its process's own)."""
        self.feed_start = int(
            self._db.read("SELECT COALESCE(MAX(change_id), 0) FROM changes")[0][0]
        )
        """The newest change when the store opened: a core built from it has seen it."""
        self.events_seen = 0
        """Every event with an id <= this was in the last full read (`iter_events`)."""
        self._local = threading.local()
        self._pruned_at = 0.0

    # --- the change feed (`serving.change_feed`) ----------------------------------------------
    def _feed(self, kind: str, subject: str, body: Any) -> None:
        """Append a change (inside the writing transaction, after `_lock_feed`)."""
        self._feed_many(kind, [subject], body)

    def _feed_many(self, kind: str, subjects: Sequence[str], body: Any = None) -> None:
        """Append one change per subject, in order (inside the writing transaction, after
        `_lock_feed`); prune the feed once per `PRUNE_EVERY_S`."""
        now = time.time()
        sql = "INSERT INTO changes (origin, kind, subject, body, ts) VALUES (?,?,?,?,?)"
        rows = [(self.origin, kind, s, encode_body(body), now) for s in subjects]
        if len(rows) == 1:
            self._db.write(sql, rows[0])  # one change: no pipeline
        else:
            self._db.write_many(sql, rows)
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            self.prune_changes(now - RETENTION_S)

    def _lock_feed(self) -> None:
        """Take the feed's advisory lock until the transaction ends (commit order = id order)."""
        self._db.read("SELECT pg_advisory_xact_lock(?)", (FEED_LOCK,))

    @contextmanager
    def replaying(self) -> Iterator[None]:
        """While inside (this thread): `erase_user` leaves the rows alone (they were erased
        where the change was written) and no change is written."""
        self._local.replaying = True
        try:
            yield
        finally:
            self._local.replaying = False

    def _replaying(self) -> bool:
        return bool(getattr(self._local, "replaying", False))

    def put_case(self, c: CaseRecord) -> bool:
        """Insert a case once, fed; a feedback's case only while its decision exists. Inside
        `deferred_cases` (this thread): queued, written on leaving, and True."""
        if getattr(self._local, "deferring", False):
            self._local.queued.append(c)
            return True
        decision = _decision_of(c)
        with self._db.transaction():
            self._lock_feed()
            inserted = self._db.write(_GUARDED_PUT_CASE, (*_case_row(c), decision, decision)) == 1
            if inserted:
                self._feed(CASE, c.case_id, None)
        return inserted

    def put_case_many(self, cases: Sequence[CaseRecord]) -> list[bool]:
        """`put_case` for several cases in ONE transaction (one statement, one commit): each
        inserted once, a feedback's case only while its decision exists, one change per case
        inserted, in order; whether each was inserted now (a repeated id: its first only)."""
        if not cases:
            return []
        first: dict[str, CaseRecord] = {}
        for c in cases:
            first.setdefault(c.case_id, c)
        rows = [(*_case_row(c), _decision_of(c)) for c in first.values()]
        columns = [list(col) for col in zip(*rows, strict=True)]
        with self._db.transaction():
            self._lock_feed()
            got = {r[0] for r in self._db.read(_GUARDED_PUT_CASES, columns)}
            self._feed_many(CASE, [i for i in first if i in got])
        inserted = []
        for c in cases:
            inserted.append(c.case_id in got)
            got.discard(c.case_id)
        return inserted

    @contextmanager
    def deferred_cases(self) -> Iterator[None]:
        """While inside (this thread): `put_case` queues; on leaving (an exception too) the
        queue is written by `put_case_many`, one transaction. A write that fails keeps the
        queue for the next leaving (the cases are in the caller's bank already)."""
        queued: list[CaseRecord] = self._local.__dict__.setdefault("queued", [])
        self._local.deferring = True
        try:
            yield
        finally:
            self._local.deferring = False
            if queued:
                self.put_case_many(queued)
                queued.clear()

    def append_events(self, user_id: str, events: Sequence[EventRecord]) -> int:
        """Append a user's interactions, fed as their id range."""
        with self._db.transaction():
            self._lock_feed()
            prev = int(self._db.read("SELECT COALESCE(MAX(event_id), 0) FROM events")[0][0])
            n = super().append_events(user_id, events)
            if n:
                last = int(self._db.read("SELECT MAX(event_id) FROM events")[0][0])
                self._feed(EVENTS, "", [prev + 1, last])
        return n

    def erase_user(self, user_id: str) -> ErasureCounts:
        """Hard-delete the user's rows and feed the erasure (replaying: nothing, see there)."""
        if self._replaying():
            return ErasureCounts(events=0, decisions=0, feedback=0, cases=0)
        with self._db.transaction():
            self._lock_feed()
            counts = super().erase_user(user_id)
            self._feed(ERASE, user_id, None)
        return counts

    def save_blob(self, name: str, blob: bytes) -> None:
        """Replace a blob; the tombstone list is merged (a union) and its new ids are fed."""
        if name != TOMBSTONES:
            super().save_blob(name, blob)
            return
        with self._db.transaction():
            self._lock_feed()
            old = self.load_blob(name)
            have = set(json.loads(old)) if old else set()
            new = sorted(set(json.loads(blob)) - have)
            if new:
                super().save_blob(name, json.dumps(sorted(have | set(new))).encode())
                if not self._replaying():
                    self._feed(TOMBSTONE, "", new)

    def iter_events(self) -> Iterator[tuple[str, EventRecord]]:
        """Every stored (user_id, event) in id order; records the largest id (`events_seen`)."""
        rows = self._db.read(
            "SELECT event_id, user_id, item_id, action, ts FROM events ORDER BY event_id"
        )
        if rows:
            self.events_seen = max(self.events_seen, int(rows[-1][0]))
        for r in rows:
            yield r[1], EventRecord(r[2], r[3], r[4])

    def events_between(self, first: int, last: int) -> list[tuple[int, str, EventRecord]]:
        """Stored (event id, user id, event) with first <= id <= last, in id order."""
        rows = self._db.read(
            "SELECT event_id, user_id, item_id, action, ts FROM events "
            "WHERE event_id BETWEEN ? AND ? ORDER BY event_id",
            (first, last),
        )
        return [(int(r[0]), r[1], EventRecord(r[2], r[3], r[4])) for r in rows]

    def changes_after(self, change_id: int, limit: int) -> list[Change]:
        """Changes with a larger id, oldest first."""
        rows = self._db.read(
            "SELECT change_id, origin, kind, subject, body, ts FROM changes "
            "WHERE change_id > ? ORDER BY change_id LIMIT ?",
            (change_id, limit),
        )
        return list(decode_rows(rows))

    def pruned_upto(self) -> int:
        """Changes up to this id were pruned (0: none)."""
        blob = self.load_blob(_PRUNED)
        return int(blob) if blob else 0

    def prune_changes(self, before_ts: float) -> int:
        """Delete the changes written before `before_ts` and record the largest id deleted
        (`pruned_upto`); how many."""
        with self._db.transaction():
            self._lock_feed()
            gone = self._db.read(
                "DELETE FROM changes WHERE ts < ? RETURNING change_id", (before_ts,)
            )
            if gone:
                top = max(self.pruned_upto(), max(int(r[0]) for r in gone))
                super().save_blob(_PRUNED, str(top).encode())
        return len(gone)

    def get_cases(self, case_ids: Sequence[str]) -> list[CaseRecord]:
        """The live cases among these ids (any order)."""
        rows = self._db.read(
            f"SELECT {_CASE_COLS} FROM cases WHERE case_id = ANY(?) AND deleted=0",
            (list(case_ids),),
        )
        return [_case(r) for r in rows]

    # --- the shared learner ------------------------------------------------------------------
    def unapplied_after(self, feedback_id: int, limit: int = 256) -> list[FeedbackRecord]:
        """Unapplied feedback with a larger id, in arrival order (the learner's poll)."""
        rows = self._db.read(
            "SELECT * FROM feedback WHERE applied=0 AND feedback_id > ? "
            "ORDER BY feedback_id LIMIT ?",
            (feedback_id, limit),
        )
        return [_feedback(r) for r in rows]

    def publish(self, weights: bytes, case_ids: Sequence[str], feedback_ids: Sequence[int]) -> int:
        """In one transaction: record a model version (older weights dropped) and flag its
        feedback applied; a row already flagged makes it fail and roll back (exactly once)."""
        ids = [int(i) for i in feedback_ids]
        db = self._db
        with db.transaction():
            rows = db.read(
                "SELECT feedback_id, ts, applied FROM feedback WHERE feedback_id = ANY(?) "
                "FOR UPDATE",
                (ids,),
            )
            twice = sorted(int(r[0]) for r in rows if r[2])
            if twice:  # erased rows are simply gone; applied ones must not count twice
                raise RuntimeError(f"feedback already applied by another learner: {twice}")
            first = min((float(r[1]) for r in rows), default=None)
            db.write("UPDATE model_versions SET weights=NULL WHERE weights IS NOT NULL")
            (version,) = db.read(
                "INSERT INTO model_versions (weights, case_ids, feedback_ids, first_ack_ts, ts) "
                "VALUES (?,?,?,?,?) RETURNING version",
                (weights, json.dumps(list(case_ids)), json.dumps(ids), first, time.time()),
            )
            db.write("UPDATE feedback SET applied=1 WHERE feedback_id = ANY(?)", (ids,))
        return int(version[0])

    def latest_version(self) -> int:
        """The newest published version (0: none)."""
        rows = self._db.read("SELECT COALESCE(MAX(version), 0) FROM model_versions")
        return int(rows[0][0])

    def versions_after(self, version: int) -> list[ModelVersion]:
        """Versions newer than `version`, oldest first (weights only on the newest)."""
        rows = self._db.read(
            "SELECT version, weights, case_ids, feedback_ids, first_ack_ts, ts "
            "FROM model_versions WHERE version > ? ORDER BY version",
            (version,),
        )
        return [
            ModelVersion(
                int(r[0]),
                bytes(r[1]) if r[1] is not None else None,
                json.loads(r[2]),
                json.loads(r[3]),
                r[4],
                r[5],
            )
            for r in rows
        ]


def _decision_of(c: CaseRecord) -> str | None:
    """The decision a feedback's case is about (None: a case of no decision)."""
    decision = c.payload.get("decision_id")
    return None if decision is None else str(decision)


def read_pg_logs(url: str) -> StoredLogs:
    """The decisions and feedback of a PostgreSQL store, read in one read-only snapshot
    (`serving.store.read_logs` is the SQLite twin). Raises `ValueError` when the server cannot
    be reached or the database is not a store."""
    try:
        with psycopg.connect(url) as conn:
            conn.read_only = True
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with conn.transaction():
                found = conn.execute(
                    "SELECT to_regclass('decisions') IS NOT NULL AND "
                    "to_regclass('feedback') IS NOT NULL"
                ).fetchone()
                if not found or not found[0]:
                    raise ValueError(f"{_safe(url)} is not a memento store (no decisions/feedback)")
                dec = conn.execute("SELECT * FROM decisions ORDER BY ts, decision_id").fetchall()
                fb = conn.execute("SELECT * FROM feedback ORDER BY feedback_id").fetchall()
    except psycopg.Error as exc:
        raise ValueError(f"cannot read the PostgreSQL store {_safe(url)}: {exc}") from exc
    return StoredLogs([_decision(r) for r in dec], [_feedback(r) for r in fb])


def _safe(url: str) -> str:
    """The URL without its password (for messages)."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{creds.split(':')[0]}{at}{host}" if at else url

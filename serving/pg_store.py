"""PostgreSQL store: the `Store` contract on a server, for more than one serving replica.

Same methods and semantics as the embedded SQLite `serving.store.Store` (the single-process
default): feedback is inserted once per idempotency key (`UNIQUE` + `ON CONFLICT DO NOTHING`)
and committed with `synchronous_commit=on` before the 202 leaves, so acknowledged feedback
survives `kill -9` of the replica that took it. Decisions commit with `synchronous_commit=off`
(a replica kill cannot lose them; only a crash of the database server within ~200 ms can).

Beyond `Store`: `claim_unapplied` / `publish` let one learner take unapplied feedback
(`FOR UPDATE SKIP LOCKED`) and, in ONE transaction, record a model version (weights + new case
ids) and flag those rows applied: a row is reflected exactly once in the published model.
One connection per store guarded by one lock (like the SQLite store).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from serving.decision_writer import decision_row
from serving.service import DecisionSnapshot, EventRecord
from serving.store import (
    CaseRecord,
    ErasureCounts,
    FeedbackRecord,
    Store,
    _decision,
    _feedback,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    decision_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, state BYTEA NOT NULL,
    candidates BYTEA NOT NULL, chosen_case_ids TEXT NOT NULL, items TEXT NOT NULL,
    model_version TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS decisions_user ON decisions(user_id);
CREATE TABLE IF NOT EXISTS feedback (
    feedback_id BIGSERIAL PRIMARY KEY, idempotency_key TEXT NOT NULL UNIQUE,
    decision_id TEXT NOT NULL, item_id TEXT NOT NULL, action TEXT NOT NULL,
    dwell DOUBLE PRECISION, ts DOUBLE PRECISION NOT NULL, applied INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS feedback_decision ON feedback(decision_id);
CREATE INDEX IF NOT EXISTS feedback_unapplied ON feedback(feedback_id) WHERE applied=0;
CREATE TABLE IF NOT EXISTS events (
    event_id BIGSERIAL PRIMARY KEY, user_id TEXT NOT NULL, item_id TEXT NOT NULL,
    action TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS events_user ON events(user_id, ts);
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, payload TEXT NOT NULL, key BYTEA NOT NULL,
    reward DOUBLE PRECISION NOT NULL, ts DOUBLE PRECISION NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS cases_user ON cases(user_id);
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY, blob BYTEA NOT NULL, ts DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS model_versions (
    version BIGSERIAL PRIMARY KEY, weights BYTEA, case_ids TEXT NOT NULL,
    feedback_ids TEXT NOT NULL, first_ack_ts DOUBLE PRECISION, ts DOUBLE PRECISION NOT NULL);
"""

_CASE_COLS = "case_id, user_id, payload, key, reward, ts, deleted"


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


def _case(r: Sequence[Any]) -> CaseRecord:
    return CaseRecord(r[0], r[1], json.loads(r[2]), bytes(r[3]), r[4], r[5], bool(r[6]))


class PgStore(Store):
    """Thread-safe PostgreSQL store (`url`: `postgresql://...`); open once per process.

    Subclasses `Store` for its type only: every method is overridden, no SQLite file opens."""

    def __init__(self, url: str) -> None:
        """Connect and create the schema if missing (decisions need no write-behind here: they
        commit asynchronously on the server, `synchronous_commit=off`)."""
        self.url = url
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[tuple[Any, ...]] = psycopg.connect(url, autocommit=True)
        # one schema creator at a time (replicas start together)
        with self._lock, self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(7226001)")
            self._conn.execute(_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def flush_decisions(self) -> None:
        """Decisions are written in the request: nothing pending."""

    def _write(self, sql: str, params: Sequence[Any] = ()) -> int:  # type: ignore[override]
        with self._lock:
            return self._conn.execute(sql, params).rowcount

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # --- decisions -------------------------------------------------------------------------
    def put_decision(self, d: DecisionSnapshot) -> None:
        """Persist a decision (asynchronous commit: a replica kill cannot lose it)."""
        with self._lock, self._conn.transaction():
            self._conn.execute("SET LOCAL synchronous_commit = off")
            self._conn.execute(
                "INSERT INTO decisions VALUES (%s,%s,%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (decision_id) DO NOTHING",
                decision_row(d),
            )

    def get_decision(self, decision_id: str) -> DecisionSnapshot | None:
        """The decision, or None if unknown or erased."""
        rows = self._read("SELECT * FROM decisions WHERE decision_id=%s", (decision_id,))
        return _decision(rows[0]) if rows else None

    # --- feedback --------------------------------------------------------------------------
    def insert_feedback(
        self,
        idempotency_key: str,
        decision_id: str,
        item_id: str,
        action: str,
        dwell: float | None,
    ) -> tuple[int, bool]:
        """Durably insert feedback once per key (synchronous commit): (feedback_id, inserted)."""
        with self._lock, self._conn.transaction():
            self._conn.execute("SET LOCAL synchronous_commit = on")
            row = self._conn.execute(
                "INSERT INTO feedback (idempotency_key, decision_id, item_id, action, dwell, ts) "
                "VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (idempotency_key) DO NOTHING "
                "RETURNING feedback_id",
                (idempotency_key, decision_id, item_id, action, dwell, time.time()),
            ).fetchone()
            if row is not None:
                return int(row[0]), True
            row = self._conn.execute(
                "SELECT feedback_id FROM feedback WHERE idempotency_key=%s", (idempotency_key,)
            ).fetchone()
            assert row is not None, "a conflicting key must exist"
            return int(row[0]), False

    def delete_unapplied_feedback(self, feedback_id: int) -> None:
        """Withdraw a feedback row that could not be queued (the client got 503)."""
        self._write("DELETE FROM feedback WHERE feedback_id=%s AND applied=0", (feedback_id,))

    def mark_applied(self, feedback_ids: Iterable[int]) -> None:
        """Flag feedback as reflected in a core checkpoint."""
        ids = [int(i) for i in feedback_ids]
        if ids:
            self._write("UPDATE feedback SET applied=1 WHERE feedback_id = ANY(%s)", (ids,))

    def feedback(self, *, unapplied_only: bool = False) -> list[FeedbackRecord]:
        """Feedback rows in arrival order (optionally only those not yet applied)."""
        where = "WHERE applied=0" if unapplied_only else ""
        rows = self._read(f"SELECT * FROM feedback {where} ORDER BY feedback_id")
        return [_feedback(r) for r in rows]

    # --- events ----------------------------------------------------------------------------
    def append_events(self, user_id: str, events: Sequence[EventRecord]) -> int:
        """Append a user's interactions; returns how many."""
        rows = [(user_id, e.item_id, e.action, e.ts) for e in events]
        with self._lock, self._conn.transaction(), self._conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO events (user_id, item_id, action, ts) VALUES (%s,%s,%s,%s)", rows
            )
        return len(rows)

    def recent_events(
        self, user_id: str, limit: int, before: float | None = None
    ) -> list[EventRecord]:
        """The user's last `limit` events (strictly before `before`, if given), oldest first."""
        rows = self._read(
            "SELECT item_id, action, ts FROM events WHERE user_id=%s AND ts < %s "
            "ORDER BY ts DESC, event_id DESC LIMIT %s",
            (user_id, float("inf") if before is None else before, limit),
        )
        return [EventRecord(r[0], r[1], r[2]) for r in reversed(rows)]

    def iter_events(self) -> Iterator[tuple[str, EventRecord]]:
        """Every stored (user_id, event), in insertion order."""
        rows = self._read("SELECT user_id, item_id, action, ts FROM events ORDER BY event_id")
        for r in rows:
            yield r[0], EventRecord(r[1], r[2], r[3])

    # --- cases -----------------------------------------------------------------------------
    @staticmethod
    def _case_row(c: CaseRecord) -> tuple[Any, ...]:
        return (c.case_id, c.user_id, json.dumps(c.payload), c.key, c.reward, c.ts, int(c.deleted))

    def put_case(self, c: CaseRecord) -> bool:
        """Insert a case once (replays are no-ops); True if inserted now."""
        n = self._write(
            f"INSERT INTO cases ({_CASE_COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s) "
            "ON CONFLICT (case_id) DO NOTHING",
            self._case_row(c),
        )
        return n == 1

    def put_cases(self, cases: Iterable[CaseRecord]) -> None:
        """Bulk insert (seeding, replay import) in one transaction."""
        rows = [self._case_row(c) for c in cases]
        with self._lock, self._conn.transaction(), self._conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO cases ({_CASE_COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s) "
                "ON CONFLICT (case_id) DO NOTHING",
                rows,
            )

    def get_case(self, case_id: str) -> CaseRecord | None:
        """A live case, or None."""
        rows = self._read(
            f"SELECT {_CASE_COLS} FROM cases WHERE case_id=%s AND deleted=0", (case_id,)
        )
        return _case(rows[0]) if rows else None

    def get_cases(self, case_ids: Sequence[str]) -> list[CaseRecord]:
        """The live cases among these ids (any order)."""
        rows = self._read(
            f"SELECT {_CASE_COLS} FROM cases WHERE case_id = ANY(%s) AND deleted=0",
            (list(case_ids),),
        )
        return [_case(r) for r in rows]

    def list_cases(self, user_id: str) -> list[CaseRecord]:
        """Live cases of a user, oldest first."""
        rows = self._read(
            f"SELECT {_CASE_COLS} FROM cases WHERE user_id=%s AND deleted=0 ORDER BY ts, case_id",
            (user_id,),
        )
        return [_case(r) for r in rows]

    def live_cases(self) -> list[CaseRecord]:
        """Every live case (used to rebuild the bank at start)."""
        return [_case(r) for r in self._read(f"SELECT {_CASE_COLS} FROM cases WHERE deleted=0")]

    def delete_case(self, case_id: str) -> bool:
        """Soft-delete a case; False if unknown or already deleted."""
        n = self._write("UPDATE cases SET deleted=1 WHERE case_id=%s AND deleted=0", (case_id,))
        return n == 1

    # --- erasure and checkpoints -----------------------------------------------------------
    def erase_user(self, user_id: str) -> ErasureCounts:
        """Hard-delete a user's events, decisions, their feedback and cases in one transaction."""
        with self._lock, self._conn.transaction():
            ex = self._conn.execute
            fb = ex(
                "DELETE FROM feedback WHERE decision_id IN "
                "(SELECT decision_id FROM decisions WHERE user_id=%s)",
                (user_id,),
            ).rowcount
            ev = ex("DELETE FROM events WHERE user_id=%s", (user_id,)).rowcount
            de = ex("DELETE FROM decisions WHERE user_id=%s", (user_id,)).rowcount
            ca = ex("DELETE FROM cases WHERE user_id=%s", (user_id,)).rowcount
        return ErasureCounts(events=ev, decisions=de, feedback=fb, cases=ca)

    def save_blob(self, name: str, blob: bytes) -> None:
        """Store a named checkpoint blob (replaces the previous one)."""
        self._write(
            "INSERT INTO checkpoints VALUES (%s,%s,%s) "
            "ON CONFLICT (name) DO UPDATE SET blob=EXCLUDED.blob, ts=EXCLUDED.ts",
            (name, blob, time.time()),
        )

    def load_blob(self, name: str) -> bytes | None:
        """A named checkpoint blob, or None."""
        rows = self._read("SELECT blob FROM checkpoints WHERE name=%s", (name,))
        return bytes(rows[0][0]) if rows else None

    # --- the shared learner ------------------------------------------------------------------
    def unapplied_after(self, feedback_id: int, limit: int = 256) -> list[FeedbackRecord]:
        """Unapplied feedback with a larger id, in arrival order (the learner's poll)."""
        rows = self._read(
            "SELECT * FROM feedback WHERE applied=0 AND feedback_id > %s "
            "ORDER BY feedback_id LIMIT %s",
            (feedback_id, limit),
        )
        return [_feedback(r) for r in rows]

    def publish(self, weights: bytes, case_ids: Sequence[str], feedback_ids: Sequence[int]) -> int:
        """In one transaction: record a model version (older weights dropped) and flag its
        feedback applied; a row already flagged makes it fail and roll back (exactly once)."""
        ids = [int(i) for i in feedback_ids]
        with self._lock, self._conn.transaction():
            ex = self._conn.execute
            rows = ex(
                "SELECT feedback_id, ts, applied FROM feedback WHERE feedback_id = ANY(%s) "
                "FOR UPDATE",
                (ids,),
            ).fetchall()
            twice = sorted(int(r[0]) for r in rows if r[2])
            if twice:  # erased rows are simply gone; applied ones must not count twice
                raise RuntimeError(f"feedback already applied by another learner: {twice}")
            first = min((float(r[1]) for r in rows), default=None)
            ex("UPDATE model_versions SET weights=NULL WHERE weights IS NOT NULL")
            row = ex(
                "INSERT INTO model_versions (weights, case_ids, feedback_ids, first_ack_ts, ts) "
                "VALUES (%s,%s,%s,%s,%s) RETURNING version",
                (weights, json.dumps(list(case_ids)), json.dumps(ids), first, time.time()),
            ).fetchone()
            ex("UPDATE feedback SET applied=1 WHERE feedback_id = ANY(%s)", (ids,))
        assert row is not None
        return int(row[0])

    def latest_version(self) -> int:
        """The newest published version (0: none)."""
        rows = self._read("SELECT COALESCE(MAX(version), 0) FROM model_versions")
        return int(rows[0][0])

    def versions_after(self, version: int) -> list[ModelVersion]:
        """Versions newer than `version`, oldest first (weights only on the newest)."""
        rows = self._read(
            "SELECT version, weights, case_ids, feedback_ids, first_ack_ts, ts "
            "FROM model_versions WHERE version > %s ORDER BY version",
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

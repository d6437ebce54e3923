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
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from serving.store import (
    _CASE_COLS,
    CaseRecord,
    FeedbackRecord,
    Store,
    _case,
    _feedback,
)
from serving.store_sql import SCHEMA

__all__ = ["ModelVersion", "PgConnection", "PgStore"]

_TYPES = {"blob": "BYTEA", "real": "DOUBLE PRECISION", "serial": "BIGSERIAL PRIMARY KEY"}
"""How `serving.store_sql.SCHEMA`'s column types are spelled here."""

_LEARNER_SCHEMA = """
CREATE TABLE IF NOT EXISTS model_versions (
    version BIGSERIAL PRIMARY KEY, weights BYTEA, case_ids TEXT NOT NULL,
    feedback_ids TEXT NOT NULL, first_ack_ts DOUBLE PRECISION, ts DOUBLE PRECISION NOT NULL);
"""


class PgConnection:
    """The store's SQL on PostgreSQL: `?` becomes `%s`; autocommit outside `transaction`."""

    def __init__(self, url: str) -> None:
        """Connect and create the tables if missing (one creator at a time: replicas start
        together)."""
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[tuple[Any, ...]] = psycopg.connect(url, autocommit=True)
        with self.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(7226001)")
            self._conn.execute(SCHEMA.format(**_TYPES) + _LEARNER_SCHEMA)

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one statement."""
        with self._lock:
            return self._conn.execute(sql.replace("?", "%s"), params).fetchall()

    def write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; rows it changed."""
        with self._lock:
            return self._conn.execute(sql.replace("?", "%s"), params).rowcount

    def write_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per row (pipelined)."""
        with self._lock, self._conn.cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), rows)

    @contextmanager
    def transaction(self, durable: bool | None = None) -> Iterator[None]:
        """One transaction; durable sets `synchronous_commit` on (True) or off (False)."""
        with self._lock, self._conn.transaction():
            if durable is not None:
                self._conn.execute(f"SET LOCAL synchronous_commit = {'on' if durable else 'off'}")
            yield

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


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


class PgStore(Store):
    """Thread-safe PostgreSQL store (`url`: `postgresql://...`); open once per process."""

    _db: PgConnection

    def __init__(self, url: str) -> None:
        """Connect and create the schema if missing (decisions need no write-behind here: they
        commit asynchronously on the server, `synchronous_commit=off`)."""
        self.url = url
        self._db = PgConnection(url)
        self._writer = None

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

"""The SQL dialect layer under `serving.store.Store`: one schema, one connection interface.

`Store` writes every statement once, with `?` placeholders and `ON CONFLICT` upserts (SQLite
>= 3.24 and PostgreSQL both speak them). A connection (`SqlConnection`) adapts what differs:
placeholders, column types, how a transaction begins and how durable its commit is, and
locking. `SqliteConnection` is the embedded one; `serving.pg_connection.PgConnection` the server.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

__all__ = ["SCHEMA", "SqlConnection", "SqliteConnection"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    decision_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, state {blob} NOT NULL,
    candidates {blob} NOT NULL, chosen_case_ids TEXT NOT NULL, items TEXT NOT NULL,
    model_version TEXT NOT NULL, ts {real} NOT NULL);
CREATE INDEX IF NOT EXISTS decisions_user ON decisions(user_id);
CREATE TABLE IF NOT EXISTS feedback (
    feedback_id {serial}, idempotency_key TEXT NOT NULL UNIQUE,
    decision_id TEXT NOT NULL, item_id TEXT NOT NULL, action TEXT NOT NULL, dwell {real},
    ts {real} NOT NULL, applied INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS feedback_decision ON feedback(decision_id);
CREATE INDEX IF NOT EXISTS feedback_unapplied ON feedback(feedback_id) WHERE applied=0;
CREATE TABLE IF NOT EXISTS events (
    event_id {serial}, user_id TEXT NOT NULL, item_id TEXT NOT NULL,
    action TEXT NOT NULL, ts {real} NOT NULL);
CREATE INDEX IF NOT EXISTS events_user ON events(user_id, ts);
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, payload TEXT NOT NULL, key {blob} NOT NULL,
    reward {real} NOT NULL, ts {real} NOT NULL, deleted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS cases_user ON cases(user_id);
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY, blob {blob} NOT NULL, ts {real} NOT NULL);
"""
"""The store's tables; a dialect fills in `{blob}`, `{real}` and `{serial}` (an auto-numbered
integer primary key)."""


class SqlConnection(Protocol):
    """One thread-safe connection speaking the store's SQL (`?` placeholders)."""

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one statement."""
        ...

    def write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement (committed at once outside `transaction`); rows it changed."""
        ...

    def write_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per row (call inside `transaction`)."""
        ...

    def transaction(self, durable: bool | None = None) -> AbstractContextManager[None]:
        """Hold the connection for one write transaction, committed on exit (rolled back on
        an exception). durable=True: on disk before commit returns; False: may trail a
        database crash (never a kill of the calling process); None: the connection's default."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


class SqliteConnection:
    """SQLite in WAL mode (`synchronous=NORMAL`, FULL for durable commits); one lock."""

    def __init__(self, path: Path) -> None:
        """Open (creating) the database file and its tables."""
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=30.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        types = {"blob": "BLOB", "real": "REAL", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"}
        self._db.executescript(SCHEMA.format(**types))

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one statement."""
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; rows it changed."""
        with self._lock:
            return self._db.execute(sql, params).rowcount

    def write_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per row."""
        with self._lock:
            self._db.executemany(sql, rows)

    @contextmanager
    def transaction(self, durable: bool | None = None) -> Iterator[None]:
        """`BEGIN IMMEDIATE` (the write lock up front) ... `COMMIT`; durable=True commits with
        `synchronous=FULL` (survives power loss), otherwise NORMAL (survives a process kill)."""
        with self._lock:
            if durable:
                self._db.execute("PRAGMA synchronous=FULL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            finally:
                if durable:
                    self._db.execute("PRAGMA synchronous=NORMAL")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

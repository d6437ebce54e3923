"""The PostgreSQL dialect of the store's SQL (`serving.store_sql`): `PgConnection`, the
connection `serving.pg_store.PgStore` runs every statement on, and the tables it creates."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from serving.change_feed import FEED_SCHEMA
from serving.store_sql import SCHEMA

__all__ = ["PgConnection"]

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
            self._conn.execute(SCHEMA.format(**_TYPES) + _LEARNER_SCHEMA + FEED_SCHEMA)

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

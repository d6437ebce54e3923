"""Durable store: decisions, feedback, events and the case log; SQLite in WAL mode by default.

Every statement is written once here and runs on a `serving.store_sql.SqlConnection` (SQLite
here, PostgreSQL in `serving.pg_store`). One connection guarded by one lock (SQLite has a
single writer anyway). Feedback commits durably (SQLite `synchronous=FULL`), so an
acknowledged (202) feedback row is on disk before the answer leaves, surviving `kill -9` and
power loss; other writes use `NORMAL` (safe against a process kill in WAL mode). Idempotency
is the database's job: `ON CONFLICT DO NOTHING` on a UNIQUE key inside one transaction, so
concurrent duplicates insert exactly once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.decision_writer import DecisionWriter, decision_row
from serving.service import DecisionSnapshot, EventRecord
from serving.store_sql import SqlConnection, SqliteConnection


@dataclass(frozen=True)
class FeedbackRecord:
    """A stored feedback row."""

    feedback_id: int
    """Row id (monotone)."""
    idempotency_key: str
    """Client key; unique."""
    decision_id: str
    """Decision the feedback is about."""
    item_id: str
    """Item acted on."""
    action: str
    """click | collect | cart | alipay."""
    dwell: float | None
    """Dwell seconds if reported."""
    ts: float
    """Unix seconds of receipt."""
    applied: bool
    """True once the update is reflected in a core checkpoint."""


@dataclass(frozen=True)
class CaseRecord:
    """A row of the case log."""

    case_id: str
    """Case id."""
    user_id: str
    """Owner."""
    payload: dict[str, Any]
    """JSON payload (items, source, core-specific fields)."""
    key: bytes
    """Key vector bytes (float32) the bank retrieves on."""
    reward: float
    """Observed reward."""
    ts: float
    """Unix seconds of writing."""
    deleted: bool
    """Soft-deleted by memory editing."""


@dataclass(frozen=True)
class ErasureCounts:
    """Rows removed for one user."""

    events: int
    """Events removed."""
    decisions: int
    """Decisions removed."""
    feedback: int
    """Feedback rows removed (those on the user's decisions)."""
    cases: int
    """Case-log rows removed."""


def _decision(r: Sequence[Any]) -> DecisionSnapshot:
    """A `decisions` row as a snapshot."""
    chosen, items = tuple(json.loads(r[4])), tuple(json.loads(r[5]))
    return DecisionSnapshot(r[0], r[1], bytes(r[2]), bytes(r[3]), chosen, items, r[6], r[7])


def _feedback(r: Sequence[Any]) -> FeedbackRecord:
    """A `feedback` row as a record."""
    return FeedbackRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]))


@dataclass(frozen=True)
class StoredLogs:
    """What the service logged: every decision and every piece of feedback."""

    decisions: list[DecisionSnapshot]
    """Decisions in time order (ties by id); each blob keeps its logged propensities
    (`serving.decision_blob.DecisionBlob.pscores`)."""
    feedback: list[FeedbackRecord]
    """Feedback rows in arrival order."""


def read_logs(path: Path) -> StoredLogs:
    """The decisions and feedback of a store database, opened read-only (a running service
    keeps writing: WAL readers do not block it; decisions still in its write-behind buffer
    are not seen). Raises `FileNotFoundError` when there is no file and `ValueError` when it is
    not a store database."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no store database at {path}")
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"decisions", "feedback"} <= tables:
            raise ValueError(f"{path} is not a memento store (no decisions/feedback tables)")
        dec = db.execute("SELECT * FROM decisions ORDER BY ts, decision_id").fetchall()
        fb = db.execute("SELECT * FROM feedback ORDER BY feedback_id").fetchall()
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{path} is not a readable SQLite store: {exc}") from exc
    finally:
        db.close()
    return StoredLogs([_decision(r) for r in dec], [_feedback(r) for r in fb])


_CASE_COLS = "case_id, user_id, payload, key, reward, ts, deleted"
_PUT_CASE = (
    f"INSERT INTO cases ({_CASE_COLS}) VALUES (?,?,?,?,?,?,?) ON CONFLICT (case_id) DO NOTHING"
)


_IN_CHUNK = 500
"""Ids per `IN (...)` list of a bulk read (SQLite allows 999 parameters on old builds)."""


def _case(r: Sequence[Any]) -> CaseRecord:
    """A `cases` row (`_CASE_COLS` order) as a record."""
    return CaseRecord(r[0], r[1], json.loads(r[2]), bytes(r[3]), r[4], r[5], bool(r[6]))


def _case_row(c: CaseRecord) -> tuple[Any, ...]:
    """The `cases` row (`_CASE_COLS` order) of a record."""
    return (c.case_id, c.user_id, json.dumps(c.payload), c.key, c.reward, c.ts, int(c.deleted))


class Store:
    """Thread-safe store; open once per process. `Store(path)` is the SQLite one; every method's
    SQL is written here once and runs on any `SqlConnection` (`serving.pg_store.PgStore`)."""

    _db: SqlConnection
    """The connection (dialect) every statement runs on."""
    _writer: DecisionWriter | None
    """Write-behind of decisions (SQLite with write_behind_ms > 0), else None."""

    def __init__(self, path: Path, write_behind_ms: float = 0.0) -> None:
        """write_behind_ms > 0: decisions are written by a `DecisionWriter` (see there)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = SqliteConnection(path)
        self._writer = DecisionWriter(path, write_behind_ms) if write_behind_ms > 0 else None

    def close(self) -> None:
        """Write pending decisions and close the connections."""
        if self._writer is not None:
            self._writer.close()
        self._db.close()

    def flush_decisions(self) -> None:
        """Put every pending (write-behind) decision on disk now."""
        if self._writer is not None:
            self._writer.flush()

    # --- decisions -------------------------------------------------------------------------
    def put_decision(self, d: DecisionSnapshot) -> None:
        """Persist a decision (state, candidate snapshot, chosen cases, items); its commit need
        not wait for the disk (a kill -9 of the serving process cannot lose it)."""
        if self._writer is not None:
            self._writer.put(d)
            return
        with self._db.transaction(durable=False):
            self._db.write(
                "INSERT INTO decisions VALUES (?,?,?,?,?,?,?,?) "
                "ON CONFLICT (decision_id) DO NOTHING",
                decision_row(d),
            )

    def get_decision(self, decision_id: str) -> DecisionSnapshot | None:
        """The decision, or None if unknown or erased."""
        pending = self._writer.get(decision_id) if self._writer is not None else None
        if pending is not None:
            return pending
        rows = self._db.read("SELECT * FROM decisions WHERE decision_id=?", (decision_id,))
        return _decision(rows[0]) if rows else None

    def get_decisions(self, decision_ids: Sequence[str]) -> dict[str, DecisionSnapshot]:
        """The known decisions among these ids, by id (unknown or erased ones absent): one
        query per `_IN_CHUNK` ids (the learner reads a batch's decisions at once)."""
        found: dict[str, DecisionSnapshot] = {}
        wanted = list(dict.fromkeys(decision_ids))
        if self._writer is not None:
            for d in (self._writer.get(i) for i in wanted):
                if d is not None:
                    found[d.decision_id] = d
            wanted = [i for i in wanted if i not in found]
        for k in range(0, len(wanted), _IN_CHUNK):
            part = wanted[k : k + _IN_CHUNK]
            marks = ",".join("?" * len(part))
            for r in self._db.read(f"SELECT * FROM decisions WHERE decision_id IN ({marks})", part):
                found[r[0]] = _decision(r)
        return found

    # --- feedback --------------------------------------------------------------------------
    def insert_feedback(
        self,
        idempotency_key: str,
        decision_id: str,
        item_id: str,
        action: str,
        dwell: float | None,
    ) -> tuple[int, bool]:
        """Durably insert feedback once per key: (feedback_id, inserted_now). Pending
        decisions are written first, so the row never refers to a decision not on disk."""
        row = (idempotency_key, decision_id, item_id, action, dwell)
        return self.insert_feedback_many([row])[0]

    def insert_feedback_many(
        self, rows: Sequence[tuple[str, str, str, str, float | None]]
    ) -> list[tuple[int, bool]]:
        """`insert_feedback` for several (idempotency_key, decision_id, item_id, action, dwell)
        rows in one durable transaction: (feedback_id, inserted_now) per row, in order."""
        self.flush_decisions()
        now = time.time()
        out: list[tuple[int, bool]] = []
        with self._db.transaction(durable=True):
            for key, decision_id, item_id, action, dwell in rows:
                n = self._db.write(
                    "INSERT INTO feedback (idempotency_key, decision_id, item_id, action, dwell, "
                    "ts) VALUES (?,?,?,?,?,?) ON CONFLICT (idempotency_key) DO NOTHING",
                    (key, decision_id, item_id, action, dwell, now),
                )
                got = self._db.read(
                    "SELECT feedback_id FROM feedback WHERE idempotency_key=?", (key,)
                )
                out.append((int(got[0][0]), n == 1))
        return out

    def delete_unapplied_feedback(self, feedback_id: int) -> None:
        """Withdraw a feedback row that could not be queued (the client got 503)."""
        self._db.write("DELETE FROM feedback WHERE feedback_id=? AND applied=0", (feedback_id,))

    def mark_applied(self, feedback_ids: Iterable[int]) -> None:
        """Flag feedback as reflected in a core checkpoint."""
        ids = [(int(i),) for i in feedback_ids]
        with self._db.transaction():
            self._db.write_many("UPDATE feedback SET applied=1 WHERE feedback_id=?", ids)

    def feedback(self, *, unapplied_only: bool = False) -> list[FeedbackRecord]:
        """Feedback rows in arrival order (optionally only those not yet applied)."""
        where = "WHERE applied=0" if unapplied_only else ""
        rows = self._db.read(f"SELECT * FROM feedback {where} ORDER BY feedback_id")
        return [_feedback(r) for r in rows]

    # --- events ----------------------------------------------------------------------------
    def append_events(self, user_id: str, events: Sequence[EventRecord]) -> int:
        """Append a user's interactions; returns how many."""
        rows = [(user_id, e.item_id, e.action, e.ts) for e in events]
        with self._db.transaction():
            self._db.write_many(
                "INSERT INTO events (user_id, item_id, action, ts) VALUES (?,?,?,?)", rows
            )
        return len(rows)

    def recent_events(
        self, user_id: str, limit: int, before: float | None = None
    ) -> list[EventRecord]:
        """The user's last `limit` events (strictly before `before`, if given), oldest first."""
        rows = self._db.read(
            "SELECT item_id, action, ts FROM events WHERE user_id=? AND ts < ? "
            "ORDER BY ts DESC, event_id DESC LIMIT ?",
            (user_id, float("inf") if before is None else before, limit),
        )
        return [EventRecord(r[0], r[1], r[2]) for r in reversed(rows)]

    def iter_events(self) -> Iterator[tuple[str, EventRecord]]:
        """Every stored (user_id, event), in insertion order."""
        rows = self._db.read("SELECT user_id, item_id, action, ts FROM events ORDER BY event_id")
        for r in rows:
            yield r[0], EventRecord(r[1], r[2], r[3])

    # --- cases -----------------------------------------------------------------------------
    def put_case(self, c: CaseRecord) -> bool:
        """Insert a case once (replays are no-ops); True if inserted now."""
        return self._db.write(_PUT_CASE, _case_row(c)) == 1

    def put_case_many(self, cases: Sequence[CaseRecord]) -> list[bool]:
        """`put_case` for several cases in one transaction (one commit): whether each was
        inserted now, in order."""
        with self._db.transaction():
            return [self._db.write(_PUT_CASE, _case_row(c)) == 1 for c in cases]

    def put_cases(self, cases: Iterable[CaseRecord]) -> None:
        """Bulk insert (seeding, replay import) in one transaction."""
        rows = [_case_row(c) for c in cases]
        with self._db.transaction():
            self._db.write_many(_PUT_CASE, rows)

    def get_case(self, case_id: str) -> CaseRecord | None:
        """A live case, or None."""
        rows = self._db.read(
            f"SELECT {_CASE_COLS} FROM cases WHERE case_id=? AND deleted=0", (case_id,)
        )
        return _case(rows[0]) if rows else None

    def list_cases(self, user_id: str) -> list[CaseRecord]:
        """Live cases of a user, oldest first."""
        rows = self._db.read(
            f"SELECT {_CASE_COLS} FROM cases WHERE user_id=? AND deleted=0 ORDER BY ts, case_id",
            (user_id,),
        )
        return [_case(r) for r in rows]

    def live_cases(self) -> list[CaseRecord]:
        """Every live case (used to rebuild the bank at start)."""
        return [_case(r) for r in self._db.read(f"SELECT {_CASE_COLS} FROM cases WHERE deleted=0")]

    def delete_case(self, case_id: str) -> bool:
        """Soft-delete a case; False if unknown or already deleted."""
        return (
            self._db.write("UPDATE cases SET deleted=1 WHERE case_id=? AND deleted=0", (case_id,))
            == 1
        )

    # --- erasure and checkpoints -----------------------------------------------------------
    def erase_user(self, user_id: str) -> ErasureCounts:
        """Hard-delete a user's events, decisions, their feedback and cases in one transaction."""
        self.flush_decisions()
        with self._db.transaction():
            fb = self._db.write(
                "DELETE FROM feedback WHERE decision_id IN "
                "(SELECT decision_id FROM decisions WHERE user_id=?)",
                (user_id,),
            )
            ev = self._db.write("DELETE FROM events WHERE user_id=?", (user_id,))
            de = self._db.write("DELETE FROM decisions WHERE user_id=?", (user_id,))
            ca = self._db.write("DELETE FROM cases WHERE user_id=?", (user_id,))
        return ErasureCounts(events=ev, decisions=de, feedback=fb, cases=ca)

    def save_blob(self, name: str, blob: bytes) -> None:
        """Store a named checkpoint blob (replaces the previous one)."""
        self._db.write(
            "INSERT INTO checkpoints VALUES (?,?,?) "
            "ON CONFLICT (name) DO UPDATE SET blob=excluded.blob, ts=excluded.ts",
            (name, blob, time.time()),
        )

    def load_blob(self, name: str) -> bytes | None:
        """A named checkpoint blob, or None."""
        rows = self._db.read("SELECT blob FROM checkpoints WHERE name=?", (name,))
        return bytes(rows[0][0]) if rows else None

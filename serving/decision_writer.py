"""Write-behind of decision snapshots: the recommend path never waits for SQLite.

A decision (state, candidate snapshot, chosen cases, items) is needed only when feedback
arrives for it. `DecisionWriter.put` keeps it in memory and a background thread writes
batches on its own connection (one transaction per batch, so SQLite's WAL checkpoints run
there too, not inside a request). Lookups see pending decisions first, then the database.

Durability rule: a decision reaches disk within `flush_ms`, and `flush()` (called by the
store before every feedback insert and erasure) writes everything pending synchronously, so
an acknowledged feedback row never refers to a decision that is not on disk. A `kill -9`
within `flush_ms` of a recommend can lose that decision only: its feedback then gets 404.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from serving.service import DecisionSnapshot

__all__ = ["DecisionWriter", "decision_row"]

log = logging.getLogger(__name__)

_INSERT = "INSERT OR REPLACE INTO decisions VALUES (?,?,?,?,?,?,?,?)"


def decision_row(d: DecisionSnapshot) -> tuple[Any, ...]:
    """The `decisions` table row of a snapshot."""
    return (
        d.decision_id,
        d.user_id,
        d.state,
        d.candidates,
        json.dumps(d.chosen_case_ids),
        json.dumps(d.items),
        d.model_version,
        d.ts,
    )


class DecisionWriter:
    """Pending decisions in memory, written in batches by one daemon thread."""

    def __init__(self, path: Path, flush_ms: float = 20.0, max_pending: int = 10_000) -> None:
        assert flush_ms > 0 and max_pending > 0, f"{flush_ms=} {max_pending=}"
        self._db = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=30.0
        )
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._pending: dict[str, DecisionSnapshot] = {}
        self._lock = threading.Lock()  # guards _pending
        self._io = threading.Lock()  # one batch write at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_s = flush_ms / 1000.0
        self._max_pending = max_pending
        self._thread = threading.Thread(target=self._run, name="decision-writer", daemon=True)
        self._thread.start()

    def put(self, d: DecisionSnapshot) -> None:
        """Queue a decision (written synchronously when `max_pending` are already waiting)."""
        with self._lock:
            self._pending[d.decision_id] = d
            full = len(self._pending) >= self._max_pending
        if full:
            self.flush()
        else:
            self._wake.set()

    def get(self, decision_id: str) -> DecisionSnapshot | None:
        """The pending decision, or None when it is not pending (look in the database)."""
        with self._lock:
            return self._pending.get(decision_id)

    def pending(self) -> int:
        """Decisions not yet on disk."""
        with self._lock:
            return len(self._pending)

    def flush(self) -> None:
        """Write everything pending now (returns once it is committed)."""
        with self._io:
            with self._lock:
                batch = list(self._pending.values())
            if not batch:
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(_INSERT, [decision_row(d) for d in batch])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            with self._lock:
                for d in batch:
                    if self._pending.get(d.decision_id) is d:
                        del self._pending[d.decision_id]

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.wait(self._flush_s):  # gather a batch (close() writes the rest)
                break
            try:
                self.flush()
            except sqlite3.Error:  # keep them pending; the next flush retries
                log.exception("decision write failed; %d decisions pending", self.pending())

    def close(self) -> None:
        """Stop the thread and write what is pending."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10.0)
        self.flush()
        self._db.close()

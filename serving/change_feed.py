"""The change feed: a write taken by one replica reaches every replica and the shared learner.

Each process of `memento serve --replicas N` holds the model in memory (case bank, popularity,
live co-occurrence). A write to the shared PostgreSQL store that changes what they hold appends
one row to `changes` IN THE SAME TRANSACTION (`serving.pg_store.PgStore`), tagged with the
writing store's `origin`:

    kind       subject   body                  written by
    case       case id   -                     put_case (a hand-written or a feedback's case)
    tombstone  -         [case id, ...]        the tombstone blob gaining ids (delete, erasure)
    erase      user id   -                     erase_user
    events     -         [first, last] ids     append_events (popularity, co-occurrence)

Every such transaction takes one advisory lock (`FEED_LOCK`) before it writes, so change ids,
event ids and commits come in the same order: a follower that has read up to change N has
seen every change <= N, and a full read of the events table that saw event E has seen every
stored event <= E (`PgStore.events_seen`).

`ChangeFollower.poll()` reads the changes after its cursor and applies those of other origins
to its core, oldest first (its own were applied where they were written):
- case: the live rows are read back and added to the bank (a case deleted or erased meanwhile
  is no longer live, so it is not added);
- tombstone: the ids leave the bank (a bank snapshot's or registry model's copy included);
- erase: `core.erase_user` (cases, popularity recount, co-occurrence), under
  `PgStore.replaying()`, so the store rows (erased where it was written) are not touched
  again and no second change is written; several erasures of one user in one poll run once,
  at the last;
- events: the rows are read back (an erased user's are gone) and counted with
  `core.observe_events`, except those a full read already counted.

Locking follows `serving/runtime.py`: bank writes hold `Runtime.lock`; a write that lands on a
runtime a reload has just replaced is repeated on the new one (the reload itself rebuilt from
the store, so the repeat finds nothing left to do); erasure takes the core's own locks.
Each writing store prunes changes older than `RETENTION_S` once per `PRUNE_EVERY_S`
(`PgStore.prune_changes`); a follower whose cursor fell behind the pruned part rebuilds from
the store (`on_gap`).
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from serving.case_log import log_case
from serving.runtime import Runtime
from serving.service import EventRecord
from serving.store import CaseRecord

logger = logging.getLogger(__name__)

__all__ = [
    "CASE",
    "ERASE",
    "EVENTS",
    "FEED_LOCK",
    "FEED_SCHEMA",
    "PRUNE_EVERY_S",
    "RETENTION_S",
    "TOMBSTONE",
    "Change",
    "ChangeFollower",
    "FeedStore",
    "FollowedCore",
    "decode_rows",
    "encode_body",
]

CASE, TOMBSTONE, ERASE, EVENTS = "case", "tombstone", "erase", "events"
"""The kinds of change (module docstring)."""
FEED_LOCK = 7226002
"""PostgreSQL advisory lock every feed-writing transaction takes first (commit order = id order)."""
RETENTION_S = 24 * 3600.0
"""Changes older than this are pruned (a follower further behind rebuilds from the store)."""
PRUNE_EVERY_S = 60.0
"""How often a writing store prunes (inside a feed write, under the feed lock)."""

FEED_SCHEMA = """
CREATE TABLE IF NOT EXISTS changes (
    change_id BIGSERIAL PRIMARY KEY, origin TEXT NOT NULL, kind TEXT NOT NULL,
    subject TEXT NOT NULL, body TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS changes_ts ON changes(ts);
"""
"""The feed's table (PostgreSQL)."""


@dataclass(frozen=True)
class Change:
    """One row of the feed."""

    change_id: int
    """Position in the feed (commit order)."""
    origin: str
    """`PgStore.origin` of the process that wrote it."""
    kind: str
    """case | tombstone | erase | events."""
    subject: str
    """Case id (case), user id (erase), else ""."""
    body: Any
    """Decoded JSON: case ids (tombstone), [first, last] event ids (events), else None."""
    ts: float
    """Unix seconds when it was written (the lag is measured from here)."""


class FeedStore(Protocol):
    """What a follower reads (`serving.pg_store.PgStore`)."""

    origin: str
    """This process's tag on the changes it writes."""
    feed_start: int
    """The newest change id when the store was opened (before the core was built from it)."""
    events_seen: int
    """Every stored event with an id <= this was in the last full read of the events table."""

    def changes_after(self, change_id: int, limit: int) -> list[Change]:
        """Changes with a larger id, oldest first."""
        ...

    def pruned_upto(self) -> int:
        """Changes up to this id were pruned (0: none)."""
        ...

    def get_cases(self, case_ids: list[str]) -> list[CaseRecord]:
        """The live cases among these ids."""
        ...

    def events_between(self, first: int, last: int) -> list[tuple[int, str, EventRecord]]:
        """Stored (event id, user id, event) with first <= id <= last, in id order."""
        ...

    def replaying(self) -> AbstractContextManager[None]:
        """While inside (this thread): erasures leave the rows alone and nothing is fed."""
        ...


class FollowedCore(Protocol):
    """The core a follower applies changes to (`serving.core.ServingCore`)."""

    @property
    def runtime(self) -> Runtime:
        """The runtime serving now."""
        ...

    def erase_user(self, user_id: str) -> int:
        """Drop the user's cases, recount popularity, forget their events."""
        ...

    def observe_events(self, user_id: str, events: list[EventRecord]) -> None:
        """Count events in popularity and the live co-occurrence."""
        ...


class ChangeFollower:
    """Applies other processes' changes to one core (module docstring); one poller at a time."""

    def __init__(
        self,
        store: FeedStore,
        core: FollowedCore,
        *,
        on_gap: Callable[[], None],
        observe_lag: Callable[[float], None] | None = None,
        batch: int = 1000,
    ) -> None:
        """on_gap: rebuild the core from the store (the cursor fell behind the pruned feed);
        observe_lag: called with `now - change.ts` for each applied change."""
        self._store, self._core = store, core
        self._on_gap, self._observe = on_gap, observe_lag
        self._batch = batch
        self.cursor = store.feed_start
        """Every change up to this id is applied (or was this process's own)."""
        self.applied = 0
        """Changes of other origins applied."""
        self.lags: list[float] = []
        """Lag of the latest applied changes (seconds, at most `_KEEP_LAGS`)."""

    def poll(self) -> int:
        """Apply what the feed holds after the cursor; how many changes were read."""
        pruned = self._store.pruned_upto()
        if pruned > self.cursor:
            logger.warning("change feed pruned past %d: rebuilding from the store", self.cursor)
            start = max(pruned, self._newest())
            self._on_gap()
            self.cursor = start
        read = 0
        while True:
            changes = self._store.changes_after(self.cursor, self._batch)
            if not changes:
                return read
            theirs = [c for c in changes if c.origin != self._store.origin]
            self._apply(theirs)  # advances the cursor run by run (a failure re-reads the rest)
            self.cursor = changes[-1].change_id
            read += len(changes)
            now = time.time()
            for c in theirs:
                self.lags.append(now - c.ts)
                if self._observe is not None:
                    self._observe(now - c.ts)
            self.applied += len(theirs)
            del self.lags[:-_KEEP_LAGS]
            if len(changes) < self._batch:
                return read

    def _newest(self) -> int:
        """The newest change id now (read before a rebuild, which then reflects it)."""
        newest = self.cursor
        while batch := self._store.changes_after(newest, self._batch):
            newest = batch[-1].change_id
        return newest

    def _apply(self, changes: list[Change]) -> None:
        """Runs of one kind, in feed order, the cursor moved past each; an erasure only at its
        user's last one."""
        last_erase = {c.subject: k for k, c in enumerate(changes) if c.kind == ERASE}
        run: list[Change] = []
        for k, c in enumerate(changes):
            if c.kind == ERASE and last_erase[c.subject] != k:
                continue
            if run and run[0].kind != c.kind:
                self._apply_run(run)
                self.cursor = run[-1].change_id
                run = []
            run.append(c)
        if run:
            self._apply_run(run)
            self.cursor = run[-1].change_id

    def _apply_run(self, run: list[Change]) -> None:
        kind = run[0].kind
        if kind == CASE:
            records = self._store.get_cases([c.subject for c in run])
            self._on_runtime(lambda rt: _add(rt, records))
        elif kind == TOMBSTONE:
            sids = [str(s) for c in run for s in c.body]
            self._on_runtime(lambda rt: rt.remove(sids))
        elif kind == ERASE:
            with self._store.replaying():
                for c in run:
                    self._core.erase_user(c.subject)
        elif kind == EVENTS:
            self._count_events(run)
        else:
            logger.warning("unknown change kind %r skipped", kind)

    def _on_runtime(self, write: Callable[[Runtime], object]) -> None:
        """`write` under the runtime lock; again on the new runtime if a reload swapped it."""
        while True:
            rt = self._core.runtime
            with rt.lock:
                write(rt)
            if self._core.runtime is rt:
                return

    def _count_events(self, run: list[Change]) -> None:
        ranges = [(int(c.body[0]), int(c.body[1])) for c in run]
        rows = self._store.events_between(min(a for a, _ in ranges), max(b for _, b in ranges))
        seen = self._store.events_seen
        wanted = {i for a, b in ranges for i in range(max(a, seen + 1), b + 1)}
        by_user: defaultdict[str, list[EventRecord]] = defaultdict(list)
        for event_id, user, event in rows:
            if event_id in wanted:
                by_user[user].append(event)
        for user, events in by_user.items():
            self._core.observe_events(user, events)


_KEEP_LAGS = 1000
"""Lags a follower keeps for `stats` (the histogram keeps them all)."""


def _add(rt: Runtime, records: list[CaseRecord]) -> None:
    """Add the logged cases the bank lacks (caller holds `rt.lock`)."""
    new = [r for r in records if r.case_id not in rt.int_of]
    rt.add_cases([log_case(rt, r) for r in new], [r.case_id for r in new], [r.user_id for r in new])


def encode_body(body: Any) -> str:
    """A change body as stored (JSON)."""
    return json.dumps(body)


def decode_rows(rows: list[tuple[Any, ...]]) -> Iterator[Change]:
    """`changes` rows (table column order) as changes."""
    for r in rows:
        yield Change(int(r[0]), r[1], r[2], r[3], json.loads(r[4]), float(r[5]))

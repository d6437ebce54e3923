"""The served case bank's capacity: once the bank holds more cases than it, the oldest leave.

Every case the service writes from traffic (feedback cases, cases of the bundle and the case
log) enters an age queue keyed by its time; hand-written cases (`POST /v1/cases`, source
`manual`) are an operator's and never leave by age (only by deletion or erasure). Evicting in
steps of `slack` cases keeps the faiss removal (a copy of the index's vectors) off most writes.

    capacity = settings.case_capacity, or (None) max(cases at load, MIN_AUTO_CAPACITY)
    byte capacity = capacity x the mean `case_bytes` of the model's cases at load (0: none)

So a served bank never grows past what it was trained with (or 10,000 cases), and never holds
more case bytes than that many cases of the loaded size: a served case (its payload carries
the decision, position, propensity and state summary) is about twice a trained one, so
counting cases alone let the bank's memory double while it turned over to served cases.
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Container
from typing import Any

from recsys.records import Case

__all__ = [
    "MIN_AUTO_CAPACITY",
    "AgeQueue",
    "auto_byte_capacity",
    "auto_capacity",
    "case_bytes",
    "slack_of",
]

MIN_AUTO_CAPACITY = 10_000
"""The automatic capacity is at least this many cases (a small or empty bank may grow to it)."""


def auto_capacity(setting: int | None, loaded: int) -> int:
    """The capacity in force: the setting (0: unbounded), or from the bank size at load."""
    if setting is not None:
        return setting
    return max(loaded, MIN_AUTO_CAPACITY)


def _deep(value: Any) -> int:
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        return size + sum(_deep(k) + _deep(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return size + sum(_deep(v) for v in value)
    return size


def case_bytes(case: Case) -> int:
    """What a case holds in the bank, estimated: its key and its payload's Python objects
    (shared strings counted each time; the faiss vector and id maps are alike for every case)."""
    return int(case.key.nbytes) + _deep(case.payload)


def auto_byte_capacity(capacity: int, loaded: int, loaded_bytes: int) -> int:
    """Case bytes the bank may hold: `capacity` cases of the loaded mean size (0: no byte
    bound, for an unbounded bank or an empty one at load)."""
    if capacity <= 0 or loaded <= 0:
        return 0
    return capacity * loaded_bytes // loaded


def slack_of(capacity: int) -> int:
    """Cases the bank may exceed its capacity by before an eviction step (1% of it, >= 1)."""
    return max(1, capacity // 100)


class AgeQueue:
    """(time, case id) of the evictable cases, oldest first.

    A heap with lazy deletion: ids removed otherwise (deleted, erased) stay in the heap until
    popped or until the heap is rebuilt, which happens when stale entries outnumber live ones.
    Not thread-safe: the runtime calls it under `Runtime.lock`."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, ts: float, case_id: str) -> None:
        """A case that may leave by age."""
        heapq.heappush(self._heap, (float(ts), case_id))

    def pop_oldest(self, n: int, live: Container[str]) -> list[str]:
        """The `n` oldest ids still in `live` (ties: smaller id first), removed from the queue."""
        out: list[str] = []
        while self._heap and len(out) < n:
            _, sid = heapq.heappop(self._heap)
            if sid in live:
                out.append(sid)
        return out

    def compact(self, live: Container[str], n_live: int) -> None:
        """Drop stale entries when they outnumber the live ones (erasures, deletions)."""
        if len(self._heap) > 2 * max(n_live, 1):
            self._heap = [e for e in self._heap if e[1] in live]
            heapq.heapify(self._heap)

"""`ItemLane`: per catalogue item, the latest cases written about it, so that every pool item
of the items scorer can bring its own case evidence (`RecommendConfig.item_lane`).

The bank's top-K search returns the K cases nearest to the state. Online, each case is one
shown item of one decision (clicked or ignored), so K = 32 cases cover about three decisions'
lists, and in the planted benchmark at 20,000 decisions only ~1% of the ~140 pool items had any
case behind them: the memory had evidence on almost none of the items the policy chose among.
The lane looks the other way round: for each pool item, the `depth` most recent cases about it
known before the decision, weighted like retrieved cases by their similarity to the state and
their age (`recsys.rec.item_features.case_weights`). The evidence of an item is then its own
recent, position-corrected outcome rate in situations like this one, and an item nobody has
been shown yet still has none (unknown is not bad).

The index follows the bank by case id (ids are assigned in write order and never reused):
`sync` reads the cases written since the last call; a case evicted or deleted since is
skipped when read. It holds the latest cases written, so it serves a bank written as decisions
happen (the online service); a bank written ahead of an as-of replay would find the latest
cases in the decision's future (offline replay keeps the lane off).
Not thread-safe on its own: callers hold the bank's owner lock (`Recommender.lock`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from recsys.memory.case_bank import CaseBank

__all__ = ["ItemLane"]

RowsOf = Callable[[dict[str, Any]], list[int]]
"""A case payload -> the catalogue rows of the items it is about."""


class ItemLane:
    """Per item row (`per_user`: per (case owner, item row)), the ids of the latest `depth`
    cases written about it (module docstring)."""

    def __init__(self, depth: int, per_user: bool = False) -> None:
        assert depth > 0, f"{depth=}"
        self.depth = depth
        self.per_user = per_user
        self._bank: CaseBank | None = None
        self._upto = 0
        self._by_row: dict[tuple[str, int], deque[int]] = {}

    def sync(self, bank: CaseBank, rows_of: RowsOf) -> None:
        """Index the cases written to `bank` since the last call (a new bank: all of them)."""
        if bank is not self._bank or bank.next_id < self._upto:
            self._bank, self._upto, self._by_row = bank, 0, {}
        for cid in range(self._upto, bank.next_id):
            if cid not in bank:
                continue
            payload = bank.get(cid).payload
            owner = str(payload.get("user_id", "")) if self.per_user else ""
            for r in rows_of(payload):
                lane = self._by_row.get((owner, r))
                if lane is None:
                    lane = self._by_row[(owner, r)] = deque(maxlen=self.depth)
                lane.append(cid)
        self._upto = bank.next_id

    def cases(
        self, bank: CaseBank, rows: Sequence[int], before: float, skip: set[int], user: str = ""
    ) -> list[int]:
        """Ids of the live cases about each of `rows` (newest first per row, rows in order;
        `per_user`: the cases of `user`) stamped strictly before `before`, leaving out `skip`
        (cases already retrieved)."""
        owner = user if self.per_user else ""
        out: list[int] = []
        for r in rows:
            for cid in reversed(self._by_row.get((owner, int(r)), ())):
                if cid in skip or cid not in bank or bank.get(cid).ts >= before:
                    continue
                out.append(cid)
        return out

"""What a feedback row means for its decision: its time on the decision's clock, where the
decision showed the item, and whether the row closes a decision nobody acted on.

`ServingCore.apply_feedback` builds a `Feedback` per row; `CaseMemory.add_feedback_case` writes
its case with the `ShownAt` position and propensity; `OpenDecisions` counts the rows of each
decision closed by `POST /v1/outcomes` (one per shown item) so that a no-click decision makes
one learning step when its last row is applied.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from recsys.records import Action, UserState
from serving.decision_blob import DecisionBlob
from serving.service import DecisionSnapshot


@dataclass(frozen=True)
class Feedback:
    """One feedback row with the decision it answers (`ServingCore.apply_feedback`)."""

    decision: DecisionSnapshot
    """The decision, as stored."""
    snap: DecisionBlob
    """Its candidate snapshot."""
    state: UserState
    """The decision state."""
    item_id: str
    """The item."""
    act: Action | None
    """The action; None: shown, not acted on (`IMPRESSION`)."""
    reward: float
    """Its reward (0 for an impression)."""
    at: float
    """The feedback time on the decision's clock (`feedback_time`): s' is built
    at it."""


@dataclass(frozen=True)
class ShownAt:
    """Where a decision showed an item."""

    position: int
    """0-based position in the list (-1: not in it)."""
    propensity: float | None
    """The logged propensity of that position (None: none logged)."""
    served_at: float
    """Wall-clock seconds when the decision was served (erasure ordering)."""


def feedback_time(decision: DecisionSnapshot, served_at: float | None, wall_now: float) -> float:
    """The time of a feedback on the decision's clock: its decision time plus the wall seconds
    since it was served (`served_at`: `DecisionBlob.wall_ts`; None for decisions stored before
    it was logged, whose decision time is the wall time)."""
    served = decision.ts if served_at is None else served_at
    return decision.ts + max(0.0, wall_now - served)


def shown_at(decision: DecisionSnapshot, snap: DecisionBlob, item_id: str) -> ShownAt:
    """Where the decision showed the item: position and logged propensity."""
    k = decision.items.index(item_id) if item_id in decision.items else -1
    p = snap.pscores[k] if snap.pscores and 0 <= k < len(snap.pscores) else None
    served = decision.ts if snap.wall_ts is None else snap.wall_ts
    return ShownAt(k, p, served)


OPEN_DECISIONS_LIMIT = 4_096
"""Open decisions remembered (~0.45 KB each: 1.8 MB at most). An outcome's rows are queued
together and applied within one or two learner batches, so only decisions answered by plain
`/v1/feedback` rows (which never cover every shown item) stay open. Before this cap (100,000:
45 MB) they grew the service by ~0.45 KB per plain feedback for the soak's whole run."""


class OpenDecisions:
    """Per open decision: the shown items whose feedback rows were applied, and whether one was
    acted on (the learner thread's own; the oldest are forgotten past `limit` decisions)."""

    def __init__(self, limit: int = OPEN_DECISIONS_LIMIT) -> None:
        self._open: OrderedDict[str, tuple[set[str], bool]] = OrderedDict()
        self._limit = limit

    def add(self, decision: DecisionSnapshot, item_id: str, acted: bool) -> bool:
        """Record one row; True when it completes a decision none of whose items was acted on."""
        seen, any_act = self._open.pop(decision.decision_id, (set(), False))
        seen.add(item_id)
        any_act = any_act or acted
        if seen >= set(decision.items):
            return not any_act
        self._open[decision.decision_id] = (seen, any_act)
        while len(self._open) > self._limit:
            self._open.popitem(last=False)
        return False


__all__ = [
    "OPEN_DECISIONS_LIMIT",
    "Feedback",
    "OpenDecisions",
    "ShownAt",
    "feedback_time",
    "shown_at",
]

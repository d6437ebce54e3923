"""`FakeCore`: an in-memory, deterministic `RecommenderBackend` for HTTP-layer unit tests.

It ranks catalogue items by observed popularity (ties in catalogue order), shows the first
live cases with uniform weights, maps feedback actions to fixed rewards and never learns.
Only catalogue items are ever recommended. `ready_reason` is writable: set it to a message
to make the service not ready (503), back to None to make it ready.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Mapping, Sequence

from serving.service import (
    CaseChoice,
    CaseView,
    DecisionSnapshot,
    EventRecord,
    LearnerUpdate,
    NewCase,
    RankedItem,
    RecommendationRecord,
)
from serving.settings import ServingSettings
from serving.store import Store

DEFAULT_CATALOGUE = {
    "i1": "red wool scarf",
    "i2": "winter gloves",
    "i3": "warm winter hat",
    "i4": "beach sandals",
    "i5": "wool socks",
}
"""Catalogue of `build_fake_core`: item id -> title."""
REWARD = {"click": 0.1, "collect": 0.3, "cart": 0.5, "alipay": 1.0}
"""Fixed reward of each feedback action."""
MAX_CASES_SHOWN = 4
"""Most cases shown per decision."""


class FakeCore:
    """Popularity over a fixed catalogue plus an in-memory case dict; thread-safe."""

    def __init__(
        self, catalogue: Mapping[str, str] | None = None, ready_reason: str | None = None
    ) -> None:
        self.catalogue = dict(DEFAULT_CATALOGUE if catalogue is None else catalogue)
        self.ready_reason = ready_reason
        """None: ready; else the message `/readyz` and `/v1/recommend` answer 503 with."""
        self.feedback: list[tuple[str, str, str]] = []
        """(decision id, item id, action) of every applied feedback, in order."""
        self.checkpoints = 0
        self._lock = threading.Lock()
        self._popularity: Counter[str] = Counter()
        self._cases: dict[str, CaseView] = {}
        self._next_case = 0
        self._version = 1

    @property
    def model_version(self) -> str:
        """`fake:<reloads + 1>`."""
        return f"fake:{self._version}"

    def bank_size(self) -> int:
        """Live cases."""
        return len(self._cases)

    def not_ready_reason(self) -> str | None:
        """`ready_reason` as configured."""
        return self.ready_reason

    def recommend(
        self,
        user_id: str,
        n: int,
        context: Mapping[str, str],
        recent_events: Sequence[EventRecord],
        exclude_items: Sequence[str],
        explain: bool,
        at: float | None = None,
    ) -> RecommendationRecord:
        """Most popular catalogue items not excluded; the first live cases, uniform weights."""
        with self._lock:
            order = {item: k for k, item in enumerate(self.catalogue)}
            excluded = set(exclude_items)
            ranked = sorted(
                (i for i in self.catalogue if i not in excluded),
                key=lambda i: (-self._popularity[i], order[i]),
            )[:n]
            items = tuple(
                RankedItem(i, self.catalogue[i], float(self._popularity[i])) for i in ranked
            )
            shown = list(self._cases)[:MAX_CASES_SHOWN]
        cases = tuple(CaseChoice(c, 1.0 / len(shown)) for c in shown)
        state = json.dumps({"user": user_id, "events": [e.item_id for e in recent_events]})
        return RecommendationRecord(
            items=items,
            cases=cases,
            state=state.encode(),
            candidates=json.dumps(shown).encode(),
            explanation="the most popular catalogue items" if explain else None,
        )

    def observe_events(self, user_id: str, events: Sequence[EventRecord]) -> None:
        """Count the events' items (only catalogue items are ever recommended)."""
        with self._lock:
            self._popularity.update(e.item_id for e in events)

    def apply_feedback(
        self, decision: DecisionSnapshot, item_id: str, action: str, dwell_seconds: float | None
    ) -> LearnerUpdate:
        """Record the feedback; reward from `REWARD`, no update, no case."""
        with self._lock:
            self.feedback.append((decision.decision_id, item_id, action))
        return LearnerUpdate(reward=REWARD[action])

    def write_case(self, case: NewCase) -> str:
        """Store the case as `case-<k>` with its reward as value."""
        with self._lock:
            case_id = f"case-{self._next_case}"
            self._next_case += 1
            self._cases[case_id] = CaseView(
                case_id, case.user_id, case.items, case.reward, case.reward, 0.0, "manual"
            )
        return case_id

    def get_case(self, case_id: str) -> CaseView | None:
        """A live case, or None."""
        with self._lock:
            return self._cases.get(case_id)

    def delete_case(self, case_id: str) -> bool:
        """Remove a case; False if unknown."""
        with self._lock:
            return self._cases.pop(case_id, None) is not None

    def list_cases(self, user_id: str) -> list[CaseView]:
        """Live cases of one user, oldest first."""
        with self._lock:
            return [c for c in self._cases.values() if c.user_id == user_id]

    def erase_user(self, user_id: str) -> int:
        """Remove the user's cases; how many."""
        with self._lock:
            gone = [k for k, c in self._cases.items() if c.user_id == user_id]
            for k in gone:
                del self._cases[k]
        return len(gone)

    def checkpoint(self) -> None:
        """Count the checkpoint (nothing to persist)."""
        with self._lock:
            self.checkpoints += 1

    def reload(self) -> str:
        """Bump the model version."""
        with self._lock:
            self._version += 1
        return self.model_version

    def close(self) -> None:
        """Nothing to release."""


def build_fake_core(settings: ServingSettings, store: Store) -> FakeCore:
    """Factory for `MEMENTO_CORE=tests.serving.fake_core:build_fake_core`."""
    return FakeCore()

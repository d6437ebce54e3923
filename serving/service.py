"""The seam between the web service and a recommender core: records plus `RecommenderBackend`.

The service never looks inside a core. A core receives plain typed records and returns opaque
`state` / `candidates` blobs that the service persists with each decision and hands back on
feedback, so a core can rebuild the exact transition (s, candidate snapshot, chosen cases)
even after a restart, while its case bank keeps changing.

Plugging a core in: write `factory(settings: ServingSettings, store: Store) -> RecommenderBackend`
and point `MEMENTO_CORE=package.module:factory` at it, or pass the instance to
`create_app(settings, core=...)`. Cores must be thread-safe: `recommend` runs on request
threads while the learner thread calls `apply_feedback`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

IMPRESSION = "impression"
"""Feedback action of a shown item the user did not act on (`POST /v1/outcomes`): reward 0, a
zero-reward case (the item was shown in this situation and ignored)."""


@dataclass(frozen=True)
class EventRecord:
    """One interaction in a user's history."""

    item_id: str
    """Catalog item id."""
    action: str
    """click | collect | cart | alipay."""
    ts: float
    """Unix seconds."""


@dataclass(frozen=True)
class RankedItem:
    """One recommended item with the core's score."""

    item_id: str
    """Catalog item id."""
    title: str
    """Human-readable title (the item id when the catalog has none)."""
    score: float
    """Ranking score, higher is better (scale is core-specific)."""
    cases: tuple[str, ...] = ()
    """Ids of the chosen cases that proposed this item (empty: another candidate source)."""
    explored: bool = False
    """Placed by an exploration slot of the policy's slotted draw (`recsys.rl.slotted`)."""


@dataclass(frozen=True)
class CaseChoice:
    """A case chosen for the decision and its selection probability mu(c | s, M)."""

    case_id: str
    """Case id in the case log."""
    weight: float
    """Selection probability under the policy over the retrieved candidates, in [0, 1]."""


@dataclass(frozen=True)
class RecommendationRecord:
    """What `RecommenderBackend.recommend` returns."""

    items: tuple[RankedItem, ...]
    """At most n items, best first."""
    cases: tuple[CaseChoice, ...]
    """Chosen cases, highest weight first."""
    state: bytes
    """Opaque encoded state s, stored with the decision and returned on feedback."""
    candidates: bytes
    """Opaque snapshot of the retrieved candidate cases (and whatever Q needs) for s."""
    explanation: str | None = None
    """Free-text rationale when `explain` was requested."""
    policy_entropy: float | None = None
    """Entropy (nats) of the policy's distribution over its candidates (None: cold list)."""
    greedy_top1: bool | None = None
    """The policy's first choice was its greedy one (None: cold list, or unknown)."""


@dataclass(frozen=True)
class DecisionSnapshot:
    """A persisted decision, as handed back to the core with each piece of feedback."""

    decision_id: str
    """Service-assigned id (uuid4 hex)."""
    user_id: str
    """Who the decision was for."""
    state: bytes
    """`RecommendationRecord.state` as returned at decision time."""
    candidates: bytes
    """`RecommendationRecord.candidates` as returned at decision time."""
    chosen_case_ids: tuple[str, ...]
    """Ids of `RecommendationRecord.cases`."""
    items: tuple[str, ...]
    """Recommended item ids in order."""
    model_version: str
    """Core model version that made the decision."""
    ts: float
    """Unix seconds of the decision."""


@dataclass(frozen=True)
class LearnerUpdate:
    """What one online update did (exported as metrics)."""

    reward: float
    """Reward the feedback was mapped to."""
    td_loss: float | None = None
    """TD (or CE) loss of the update; None when the core made no gradient step."""
    new_case_id: str | None = None
    """Case written from this feedback, if any."""
    drift_alarm: bool = False
    """This feedback fired the reward-drop alarm (`recsys.rec.drift`)."""


@dataclass(frozen=True)
class NewCase:
    """A case to write by hand: the state it is taken in and its outcome."""

    user_id: str
    """Owner of the case (erasure removes it)."""
    items: tuple[str, ...]
    """Items acted on."""
    reward: float
    """Outcome reward."""
    recent_events: tuple[EventRecord, ...] = ()
    """History defining the state the case is keyed on."""
    context: Mapping[str, str] = field(default_factory=dict)
    """Request context defining the state."""


@dataclass(frozen=True)
class CaseView:
    """A case of the memory, as inspected through the API."""

    case_id: str
    """Case id."""
    user_id: str
    """Owner."""
    items: tuple[str, ...]
    """Items acted on."""
    reward: float
    """Observed reward when the case was written."""
    value: float
    """The core's current value estimate for the case (e.g. tabular Q or mean Q)."""
    ts: float
    """Unix seconds of writing."""
    source: str
    """Where the case came from: `feedback`, `manual`, `replay`, ..."""


@runtime_checkable
class RecommenderBackend(Protocol):
    """What the service needs from a recommender core. Implementations must be thread-safe."""

    @property
    def model_version(self) -> str:
        """Identifier of the loaded model (e.g. registry version); changes on reload."""
        ...

    def bank_size(self) -> int:
        """Number of live cases in the case bank."""
        ...

    def not_ready_reason(self) -> str | None:
        """None when ready to recommend; else why not and the command that fixes it, e.g.
        "no model and no catalogue: run `memento train` (registers memento-recsys@champion)
        or set MEMENTO_ITEMS_PATH". `/readyz` and `/v1/recommend` answer 503 with it."""
        ...

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
        """Encode state, retrieve and choose cases, rank items as of `at` (None: now);
        cold-start, never raise on users."""
        ...

    def observe_events(self, user_id: str, events: Sequence[EventRecord]) -> None:
        """New interactions were stored for a user (update state caches / statistics)."""
        ...

    def apply_feedback(
        self, decision: DecisionSnapshot, item_id: str, action: str, dwell_seconds: float | None
    ) -> LearnerUpdate:
        """Feedback -> reward -> transition -> online update; may write a new case. `action`
        is a user action or `IMPRESSION` (shown, not acted on: reward 0).

        Called from the learner thread; must be idempotent per (decision, item) for case writes
        because unapplied feedback is replayed after a crash.
        """
        ...

    def write_case(self, case: NewCase) -> str:
        """Add a case to the bank and the durable case log; returns its id."""
        ...

    def get_case(self, case_id: str) -> CaseView | None:
        """A live case, or None."""
        ...

    def delete_case(self, case_id: str) -> bool:
        """Remove a case from the bank and mark it deleted in the log; False if unknown."""
        ...

    def list_cases(self, user_id: str) -> list[CaseView]:
        """Live cases owned by a user."""
        ...

    def erase_user(self, user_id: str) -> int:
        """Remove every case of a user from bank and log; returns how many."""
        ...

    def checkpoint(self) -> None:
        """Persist learned parameters so that already-applied feedback need not be replayed."""
        ...

    def reload(self) -> str:
        """Reload model and bank (e.g. from the registry alias) without downtime; new version."""
        ...

    def close(self) -> None:
        """Release resources at shutdown."""
        ...

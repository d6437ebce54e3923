"""What one recommend call takes and gives: `RecRequest`, `RecResult`, the `ChosenCase`s behind a
list, and which items a case is about (`case_item_ids`). Shared by the pipeline
(`recsys.rec.recommender`) and its callers (replay, serving)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recsys.ranking import top_n_stable
from recsys.records import Candidates, Choice, Interaction, UserState

__all__ = [
    "PSCORE_CASES",
    "PSCORE_COLD",
    "PSCORE_FILL",
    "PSCORE_LLM",
    "ChosenCase",
    "RecRequest",
    "RecResult",
    "case_item_ids",
]

PSCORE_COLD = "cold_start"
"""No propensity: a cold user's popularity list (no state, no policy)."""
PSCORE_FILL = "popularity_fill"
"""No propensity: appended in popularity order because the candidate pool was short."""
PSCORE_LLM = "llm_rerank"
"""No propensity: in the head the frozen LLM re-ordered (not part of the logged policy)."""
PSCORE_CASES = "case_scorer"
"""No propensity: the blend (case) scorer's lists (an item's position marginal under a
sampled case choice would need the whole blend per sampled case slate)."""


def case_item_ids(payload: dict[str, Any]) -> list[str]:
    """Items a case is about: `items`, else the recommendation payload's `item_id`."""
    items = payload.get("items")
    if isinstance(items, list) and items:
        return [str(i) for i in items]
    item = payload.get("item_id")
    return [str(item)] if item is not None else []


@dataclass(frozen=True)
class RecRequest:
    """What one decision needs from its caller."""

    user_id: str
    """Who the list is for."""
    events: Sequence[Interaction]
    """The user's history, oldest first: every earlier event at or before `now` (the caller
    orders same-second events; unknown items are ignored). Input and seen-item mask."""
    now: float
    """Decision time (unix seconds): state decay, case ages, as-of retrieval, popularity."""
    exclude: frozenset[str] = frozenset()
    """Item ids never to return."""
    n: int | None = None
    """List length (None: `RecommendConfig.top_n`)."""
    profile: np.ndarray | None = None
    """Optional (d,) profile vector mixed into the state (serving's request context)."""
    knn_without_user: bool = False
    """Leave the user's own rows out of the co-occurrence counts (replay TRAINING decisions,
    whose user's fitted rows include their future)."""


@dataclass(frozen=True)
class ChosenCase:
    """A case the policy chose, in the policy's order."""

    case_id: int
    """Bank id."""
    row: int
    """Row in `RecResult.cands`."""
    prob: float
    """mu(c | s, M) under the policy over the K retrieved cases."""
    logp: float
    """Behaviour log-probability of choosing it."""
    items: tuple[int, ...]
    """Item rows it proposes (catalogue items only)."""
    payload: dict[str, Any]
    """The case's payload."""


@dataclass
class RecResult:
    """One produced list and how it came about."""

    items: list[int]
    """Item rows, best first."""
    scores: list[float]
    """Score of each item (blend, + LLM on the head; popularity for a cold user)."""
    state: UserState
    """The state the decision was taken in."""
    cands: Candidates | None = None
    """The K retrieved cases as the policy saw them (None: cold user or nothing retrieved)."""
    choice: Choice | None = None
    """The policy's choice (None: no case chosen)."""
    chosen: list[ChosenCase] = field(default_factory=list)
    """Chosen cases, policy order."""
    used_llm: bool = False
    """Whether the LLM re-scored the head."""
    prompt: str = ""
    """The LLM prompt (empty without the LLM)."""
    support: dict[int, list[int]] = field(default_factory=dict)
    """items scorer: item row -> bank ids of the retrieved cases proposing it."""
    propensities: list[float | None] | None = None
    """Per shown position k (asked with `Recommender.recommend(..., propensities=True)`):
    pscore_k = P(this item at position k | state) under the policy that drew the list, in
    (0, 1] (a slotted draw, `recsys.rl.slotted`: conditional on the items above it for k > 0);
    1.0 for a deterministic (greedy) policy; None where undefined (reason in
    `propensity_gaps`). None overall when not asked."""
    explored: set[int] = field(default_factory=set)
    """Item rows the policy placed in an exploration slot of a slotted draw
    (`recsys.rl.slotted`; empty otherwise, and for the case scorer, whose slots hold cases)."""
    propensity_gaps: list[str] = field(default_factory=list)
    """Per shown position: why its propensity is None (a `PSCORE_*` reason), "" where it is
    defined; empty when propensities were not asked."""

    def set_propensities(self, drawn: Sequence[float], llm_depth: int) -> None:
        """Fill `propensities` from the policy's `drawn` positions (`items[:len(drawn)]`,
        `recsys.rl.policy.choice_propensities`): the head an LLM re-ordered (`llm_depth`, when
        `used_llm`) gets None (`PSCORE_LLM`), positions past `drawn` are popularity fill-in
        (None, `PSCORE_FILL`)."""
        head = min(llm_depth, len(drawn)) if self.used_llm else 0
        self.propensities, self.propensity_gaps = [], []
        for k in range(len(self.items)):
            gap = PSCORE_LLM if k < head else "" if k < len(drawn) else PSCORE_FILL
            self.propensities.append(None if gap else float(drawn[k]))
            self.propensity_gaps.append(gap)

    @property
    def greedy_top1(self) -> bool | None:
        """Whether the policy's first choice is its greedy one (the best-scoring valid
        candidate, ties by id); None without a choice or its scores."""
        c, cands = self.choice, self.cands
        if c is None or cands is None or c.scores is None or len(c.indices) == 0:
            return None
        valid = np.flatnonzero(cands.mask)
        best = valid[top_n_stable(c.scores[valid].astype(np.float64), 1, cands.case_ids[valid])]
        return bool(best[0] == c.indices[0])

    @property
    def cold(self) -> bool:
        """No usable history: the popularity list."""
        return not bool(np.any(self.state.vec))

    def behind(self, row: int) -> list[int]:
        """Bank ids of the cases behind item `row`: the chosen cases proposing it (blend
        scorer) or the retrieved cases proposing it (items scorer)."""
        if self.support:
            return list(self.support.get(row, []))
        return [c.case_id for c in self.chosen if row in c.items]

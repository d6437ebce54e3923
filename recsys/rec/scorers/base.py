"""The scorer seam: what the policy decides, behind one interface (`Scorer`).

A scorer is one way of turning the policy into a list. Each is one module and one class,
registered under the name `recsys.config.RecommendConfig.scorer` stores
(`recsys.rec.scorers.get_scorer`); nothing outside the registry compares scorer names. The
interface:

- `pool`: what the policy chooses from for a request (`Pool`: the candidates as Q sees them);
- `rank`: one list for a warm request (the `Recommender` answers cold users itself);
- `snapshot`: the candidate snapshot of a request, the s' snapshot of a transition;
- `transition`: a decision + its outcome -> the `Decided` half of a transition and one reward
  per learned candidate (`Recommender.learn` adds s' and hands it to `MemoryLoop.learn`);
- the decision log (serving): `log_ids` / `restore` write and read back a decision's
  candidates, `cases_behind` names the cases that explain a list.

Scorer-dependent model settings are properties of the class too: the feature width, the
listwise weight, whether Q sees vectors, the pool sizes (`chooses_items`), whether the
co-occurrence counts are needed. The records a transition is built from (`LoggedDecision`,
`Outcome`) are shared by every caller: replay, serving, the simulators (through serving) and
the distributed learner (through the replay).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from recsys.config import BlendConfig
from recsys.loop import Decided
from recsys.rec.request import RecRequest, RecResult
from recsys.records import Candidates, UserState

if TYPE_CHECKING:
    from recsys.rec.items import ItemTable
    from recsys.rec.recommender import Recommender

__all__ = ["LoggedDecision", "Outcome", "Pool", "Scorer", "WarmRequest", "finish_list"]


@dataclass(frozen=True)
class Pool:
    """What the policy chooses from for one request."""

    cands: Candidates
    """(K) the candidates as the Q network sees them (cases, or items with evidence)."""
    payloads: Sequence[dict[str, Any]] = ()
    """Per candidate row: the retrieved case's payload (case-choosing scorers; else empty)."""
    support: Mapping[int, list[int]] = field(default_factory=dict)
    """Item row -> bank ids of the retrieved cases proposing it (item-choosing scorers)."""
    vote: np.ndarray | None = None
    """(K,) the case memory's direct vote per candidate (`RecommendConfig.case_vote_weight`;
    None: off)."""


@dataclass(frozen=True)
class WarmRequest:
    """A request with a state, as every scorer's `rank` takes it (`Recommender.recommend`)."""

    req: RecRequest
    """The request."""
    state: UserState
    """Its (non-zero) state."""
    exclude: set[int]
    """Item rows never to show."""
    n: int
    """List length."""
    greedy: bool
    """Choose greedily (else sample from the policy)."""
    use_llm: bool
    """Re-score the head with the frozen LLM (when the recommender has one)."""
    propensities: bool
    """Log each shown item's propensity (`RecResult.set_propensities`)."""


def finish_list(
    rec: Recommender,
    warm: WarmRequest,
    res: RecResult,
    items: list[int],
    score: np.ndarray,
    pscores: list[float],
) -> RecResult:
    """`res` with the list of an item-ranking scorer (`items` best first, their `score`): the
    frozen LLM re-scores the head when asked; a list shorter than `warm.n` is filled in
    popularity order as of the request (excluded and listed rows skipped), each fill item scored
    1 below the lowest score (0 for an empty list); the first `warm.n` are kept, with `pscores`
    (one per policy-drawn item) as their propensities when asked."""
    n = warm.n
    if warm.use_llm and rec.llm is not None and items:
        items, score = rec.llm_rescore(warm.req, res, items, score)
    if len(items) < n:
        have = set(items) | warm.exclude
        fill = rec.popularity.top(n + len(have), warm.req.now, have)[: n - len(items)]
        low = float(np.min(score)) if len(score) else 0.0
        items = items + fill
        score = np.concatenate([score, np.full(len(fill), low - 1.0)])
    res.items = items[:n]
    res.scores = [float(v) for v in score[:n]]
    if warm.propensities:
        res.set_propensities(pscores, rec.cfg.blend.llm_depth)
    return res


@dataclass(frozen=True)
class LoggedDecision:
    """A decision as learning needs it: made just now (replay: `from_result`) or read back
    from the decision log (serving: the scorer's `restore`)."""

    state: np.ndarray
    """(d,) state vector s."""
    cands: Candidates
    """(K) candidate snapshot of s as the policy saw it; rows whose candidate is gone since
    (a deleted case, an item no longer in the catalogue) are masked."""
    chosen: np.ndarray
    """(m,) int64 rows of `cands` the policy chose (shown), in the policy's order."""
    logp: np.ndarray
    """(m,) float32 behaviour log-probabilities of the chosen rows."""
    chosen_items: tuple[tuple[str, ...], ...]
    """(m) item ids each chosen row put into the list (a case's items, an item itself)."""
    probs: np.ndarray | None = None
    """(K,) the policy's probability of every candidate, when known (a decision just made;
    the log keeps only the chosen rows' log-probabilities)."""

    def __post_init__(self) -> None:
        m = self.chosen.shape[0]
        assert self.logp.shape == (m,), f"{self.logp.shape=} {self.chosen.shape=}"
        assert len(self.chosen_items) == m, f"{len(self.chosen_items)=} {m=}"

    @classmethod
    def from_result(cls, res: RecResult, items: ItemTable) -> LoggedDecision | None:
        """The decision behind a list just produced (None: cold, or nothing was chosen)."""
        if res.cands is None or res.choice is None or not res.chosen:
            return None
        return cls(
            res.state.vec,
            res.cands,
            np.array([c.row for c in res.chosen], np.int64),
            np.array([c.logp for c in res.chosen], np.float32),
            tuple(tuple(items.ids[i] for i in c.items) for c in res.chosen),
            res.choice.probs,
        )


@dataclass(frozen=True)
class Outcome:
    """What followed a decision, as learning needs it."""

    reward: float
    """The list's reward (replay: `ReplayWorld.list_reward`; serving: the feedback's
    `action_reward`)."""
    acted: frozenset[str] = frozenset()
    """Ids of the shown items the user acted on."""
    labels: Mapping[str, float] | None = None
    """Full information: item id -> label of every item the user turned to next (log replay
    knows what any list would have earned). None: only the shown items' outcome is known."""
    negatives: int = 0
    """With `labels`: unlabelled pool items kept per transition (a sample seeded by `seed`;
    0 = all of them). Every labelled item is kept."""
    seed: int = 0
    """Seed of that sample (the decision's event: passes repeat it)."""
    next_request: RecRequest | None = None
    """s' as a request (the user's events through the outcome, at its time): its state and
    its own candidate snapshot. None: a terminal transition."""
    next_state: np.ndarray | None = None
    """(d,) s' when the caller has it already (the replay's past-only states); None: encoded
    from `next_request`."""


class Scorer(ABC):
    """One way the policy makes the list (module docstring). Stateless: one shared instance
    per class; the per-model state lives in the `Recommender` passed to every method."""

    name: ClassVar[str]
    """Registry key: the value of `RecommendConfig.scorer`."""
    log_kind: ClassVar[str]
    """What a decision log calls this scorer's candidates (`DecisionBlob.kind`)."""
    features: ClassVar[tuple[str, ...]]
    """Names of the candidate features Q sees, in column order."""
    chooses_items: ClassVar[bool]
    """The policy scores items (Q(s, item), an over-fetched item pool; a case's value is the
    credit it has received) rather than cases that feed a hand-weighted blend."""

    @property
    def feature_width(self) -> int:
        """F: candidate feature columns (`QNetworkConfig.feature_dim`)."""
        return len(self.features)

    @abstractmethod
    def listwise_weight(self, configured: float) -> float:
        """Weight of the listwise term (`LearnerConfig.listwise_weight`) given the configured
        item-scorer weight."""

    @abstractmethod
    def use_vectors(self, configured: bool) -> bool:
        """Whether Q sees state and candidate vectors (`QNetworkConfig.use_vectors`) given the
        configured item-scorer setting."""

    @abstractmethod
    def needs_cooccurrence(self, blend: BlendConfig) -> bool:
        """Whether the model needs the co-occurrence counts (`recsys.rec.cooccurrence`)."""

    # -- deciding ---------------------------------------------------------------------------
    @abstractmethod
    def pool(self, rec: Recommender, req: RecRequest, state: UserState, exclude: set[int]) -> Pool:
        """What the policy chooses from for a warm request (`exclude`: item rows never shown)."""

    @abstractmethod
    def rank(self, rec: Recommender, warm: WarmRequest) -> RecResult:
        """The list of `warm.n` items for a warm request (`Recommender.recommend`)."""

    def snapshot(self, rec: Recommender, req: RecRequest) -> Candidates:
        """The candidates the policy would choose from for `req` (empty for a cold user):
        the s' snapshot of a transition."""
        state = rec.encode_state(req.user_id, req.events, req.now, req.profile)
        if not np.any(state.vec):
            return Candidates.empty(rec.items.dim, self.feature_width)
        return self.pool(rec, req, state, rec.exclusions(req, seen=True)).cands

    # -- learning ---------------------------------------------------------------------------
    @abstractmethod
    def transition(
        self, rec: Recommender, decision: LoggedDecision, outcome: Outcome
    ) -> tuple[Decided, np.ndarray] | None:
        """The decision half of a transition and (m',) float32 rewards of its chosen rows;
        None when no chosen candidate is still live."""

    @staticmethod
    def shown(decision: LoggedDecision) -> list[int]:
        """Indices into `decision.chosen` of the chosen rows still live in its snapshot."""
        mask = decision.cands.mask
        return [k for k, j in enumerate(decision.chosen.tolist()) if mask[j]]

    # -- the decision log (serving) -----------------------------------------------------------
    @abstractmethod
    def log_ids(
        self, rec: Recommender, cands: Candidates, sid_of: Callable[[int], str]
    ) -> list[str]:
        """(K) the stable ids a decision log keeps for its candidates (`sid_of`: bank id ->
        the service's case id)."""

    @abstractmethod
    def restore(
        self,
        rec: Recommender,
        ids: Sequence[str],
        sims: Sequence[float],
        feats: Sequence[Sequence[float]],
        case_row: Callable[[str], int],
    ) -> Candidates:
        """Inverse of `log_ids`: the logged snapshot as Q sees it now, candidates gone since
        masked (`case_row`: the service's case id -> bank id, -1 when gone)."""

    @abstractmethod
    def cases_behind(
        self, res: RecResult, ids: Sequence[str], support: Mapping[int, Sequence[str]]
    ) -> list[tuple[str, float]]:
        """(case id, weight) of the cases that explain the list (`ids`: `log_ids` of
        `res.cands`; `support`: item row -> the case ids behind it)."""

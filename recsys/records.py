"""Typed records shared by every part of the system.

Shapes: `d` key/state dimension, `K` candidates per request, `F` candidate features,
`m` cases chosen per request, `B` batch size.

The core (case bank, Q network, policy, learner) never looks inside `Case.payload`:
recommendation-specific fields (item id, action, user summary) or agent fields (task, plan,
outcome) live there and only their encoders read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

import numpy as np
import torch

__all__ = [
    "CASE_FEATURES",
    "Action",
    "CandidateBatch",
    "Candidates",
    "Case",
    "Choice",
    "Feedback",
    "Interaction",
    "Recommendation",
    "Transition",
    "TransitionBatch",
    "UserState",
]

CASE_FEATURES: tuple[str, ...] = ("sim", "reward", "log_age_days", "log_visits")
"""Names of the per-candidate features the case bank attaches, in column order (F = 4)."""


class Action(StrEnum):
    """A user's response to an item (Tianchi Rec-Tmall action types)."""

    CLICK = "click"
    COLLECT = "collect"
    CART = "cart"
    ALIPAY = "alipay"


@dataclass(frozen=True, slots=True)
class Interaction:
    """One logged event: `user_id` did `action` on `item_id` at unix time `ts`."""

    user_id: str
    item_id: str
    action: Action
    ts: float
    dwell_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class UserState:
    """An encoded user state s.

    vec: (d,) float32, L2-normalised. text: readable summary for prompts. ts: unix time.
    recent_item_ids: the items the summary was built from, newest first.
    """

    user_id: str
    vec: np.ndarray
    text: str
    ts: float
    recent_item_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        assert self.vec.ndim == 1, f"UserState.vec must be (d,), got {self.vec.shape=}"


@dataclass(slots=True)
class Case:
    """A past episode stored in the case bank (memory M).

    case_id: assigned by the bank (-1 before writing). key: (d,) float32 retrieval key.
    payload: any JSON-able dict; the core never inspects it. reward: observed outcome
    (running mean after merges). ts: unix time of the (latest) episode. source: free label
    ("tmall-log", "online", "agent"...). payload_key: dedup key from the payload encoder
    (near-duplicates merge only when it matches; "" never merges). utility: learned value used
    for eviction. visits: times chosen and updated. merged: raw episodes folded into this case.
    """

    key: np.ndarray
    payload: dict[str, Any]
    reward: float = 0.0
    ts: float = 0.0
    source: str = ""
    payload_key: str = ""
    case_id: int = -1
    utility: float = 0.0
    visits: int = 0
    merged: int = 1

    def __post_init__(self) -> None:
        assert self.key.ndim == 1, f"Case.key must be (d,), got {self.key.shape=}"


@dataclass(frozen=True, slots=True)
class Candidates:
    """The retrieved candidate cases for one request (numpy, unpadded or padded).

    case_ids: (K,) int64, -1 where padded. keys: (K, d) float32. sims: (K,) float32 cosine.
    features: (K, F) float32 (columns `CASE_FEATURES`). mask: (K,) bool, True = valid.
    """

    case_ids: np.ndarray
    keys: np.ndarray
    sims: np.ndarray
    features: np.ndarray
    mask: np.ndarray

    def __post_init__(self) -> None:
        k = self.case_ids.shape[0]
        assert self.keys.ndim == 2 and self.keys.shape[0] == k, f"{self.keys.shape=} {k=}"
        assert self.sims.shape == (k,), f"{self.sims.shape=} {k=}"
        assert self.features.ndim == 2 and self.features.shape[0] == k, f"{self.features.shape=}"
        assert self.mask.shape == (k,), f"{self.mask.shape=} {k=}"

    def __len__(self) -> int:
        return int(self.case_ids.shape[0])

    @property
    def num_valid(self) -> int:
        """Number of real (unmasked) candidates."""
        return int(self.mask.sum())

    @classmethod
    def empty(cls, dim: int, num_features: int = len(CASE_FEATURES)) -> Candidates:
        """A zero-length candidate set (e.g. the next state of a terminal transition)."""
        return cls(
            case_ids=np.zeros(0, np.int64),
            keys=np.zeros((0, dim), np.float32),
            sims=np.zeros(0, np.float32),
            features=np.zeros((0, num_features), np.float32),
            mask=np.zeros(0, bool),
        )

    def padded(self, k: int) -> Candidates:
        """This set padded (mask False, id -1) or truncated to exactly `k` rows."""
        n = len(self)
        if n >= k:
            return Candidates(
                self.case_ids[:k], self.keys[:k], self.sims[:k], self.features[:k], self.mask[:k]
            )
        pad = k - n
        return Candidates(
            case_ids=np.concatenate([self.case_ids, np.full(pad, -1, np.int64)]),
            keys=np.concatenate([self.keys, np.zeros((pad, self.keys.shape[1]), np.float32)]),
            sims=np.concatenate([self.sims, np.zeros(pad, np.float32)]),
            features=np.concatenate(
                [self.features, np.zeros((pad, self.features.shape[1]), np.float32)]
            ),
            mask=np.concatenate([self.mask, np.zeros(pad, bool)]),
        )


def _to_device(obj: Any, device: torch.device | str) -> Any:
    return type(obj)(**{f.name: getattr(obj, f.name).to(device) for f in fields(obj)})


@dataclass(frozen=True, slots=True)
class CandidateBatch:
    """Candidates of B requests as padded tensors.

    case_ids: (B, K) long. keys: (B, K, d) float. sims: (B, K). features: (B, K, F).
    mask: (B, K) bool.
    """

    case_ids: torch.Tensor
    keys: torch.Tensor
    sims: torch.Tensor
    features: torch.Tensor
    mask: torch.Tensor

    def to(self, device: torch.device | str) -> CandidateBatch:
        """A copy on `device`."""
        return _to_device(self, device)

    @classmethod
    def from_candidates(cls, cands: list[Candidates], k: int | None = None) -> CandidateBatch:
        """Pad every set to `k` (default: the largest, at least 1) and stack."""
        assert cands, "need at least one candidate set"
        k = k if k is not None else max(1, max(len(c) for c in cands))
        b, d, f = len(cands), cands[0].keys.shape[1], cands[0].features.shape[1]
        # filled in place: what `padded(k)` of each set stacked gives, without a copy per set
        case_ids = np.full((b, k), -1, np.int64)
        keys = np.zeros((b, k, d), np.float32)
        sims = np.zeros((b, k), np.float32)
        features = np.zeros((b, k, f), np.float32)
        mask = np.zeros((b, k), bool)
        cut = [c if len(c) <= k else c.padded(k) for c in cands]  # longer sets truncated
        lens = np.fromiter((len(c) for c in cut), np.int64, b)
        rows = np.arange(k)[None, :] < lens[:, None]  # each set's rows, left-aligned
        case_ids[rows] = np.concatenate([c.case_ids for c in cut])
        keys[rows] = np.concatenate([c.keys for c in cut])
        sims[rows] = np.concatenate([c.sims for c in cut])
        features[rows] = np.concatenate([c.features for c in cut])
        mask[rows] = np.concatenate([c.mask for c in cut])
        return cls(
            case_ids=torch.from_numpy(case_ids),
            keys=torch.from_numpy(keys),
            sims=torch.from_numpy(sims),
            features=torch.from_numpy(features),
            mask=torch.from_numpy(mask),
        )


@dataclass(frozen=True, slots=True)
class Choice:
    """What the policy chose for one request.

    indices: (m,) int64 rows into the Candidates. case_ids: (m,) int64. logp: (m,) log pi(c|s)
    of each chosen case under the full softmax (a slotted draw: log P(case at its position |
    the cases above it), `recsys.rl.slotted`). probs: (K,) policy over all candidates (a
    slotted draw: P(candidate at position 0)). slate_logp: log-probability of the ordered
    chosen slate (Plackett-Luce for sampling without replacement, equal to sum(logp) only when
    m = 1; a slotted draw: sum(logp)). explored: (m,) bool, the position was an exploration
    slot of a slotted draw (None: not a slotted draw). scores: (K,) the ranking scores the
    choice was made from (None: not recorded).
    """

    indices: np.ndarray
    case_ids: np.ndarray
    logp: np.ndarray
    probs: np.ndarray
    slate_logp: float
    explored: np.ndarray | None = None
    scores: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """One learning step (s, candidates, chosen, logp, r, s', candidates', done).

    state / next_state: (d,) float32. cands / next_cands: snapshots of the candidate sets
    (the bank changes as cases are added). chosen: (m,) int64 rows into `cands`.
    logp: (m,) behaviour log-probabilities. rewards: (m,) per-chosen-case reward after credit
    assignment (see `recsys.rl.credit`). done: no bootstrap from s'.
    """

    state: np.ndarray
    cands: Candidates
    chosen: np.ndarray
    logp: np.ndarray
    rewards: np.ndarray
    next_state: np.ndarray
    next_cands: Candidates
    done: bool

    def __post_init__(self) -> None:
        m = self.chosen.shape[0]
        assert self.chosen.ndim == 1 and m >= 1, f"{self.chosen.shape=}"
        assert self.rewards.shape == (m,), f"{self.rewards.shape=} {m=}"
        assert self.logp.shape == (m,), f"{self.logp.shape=} {m=}"
        assert int(self.chosen.max()) < len(self.cands), "chosen index out of range"
        assert bool(self.cands.mask[self.chosen].all()), "a chosen candidate is masked"


@dataclass(frozen=True, slots=True)
class TransitionBatch:
    """B transitions as padded tensors.

    state / next_state: (B, d). cands / next_cands: CandidateBatch (B, K, ...).
    chosen: (B, M) long, 0 where padded. chosen_mask: (B, M) bool. rewards: (B, M).
    logp: (B, M). done: (B,) float 0/1.
    """

    state: torch.Tensor
    cands: CandidateBatch
    chosen: torch.Tensor
    chosen_mask: torch.Tensor
    logp: torch.Tensor
    rewards: torch.Tensor
    next_state: torch.Tensor
    next_cands: CandidateBatch
    done: torch.Tensor

    def to(self, device: torch.device | str) -> TransitionBatch:
        """A copy on `device`."""
        return _to_device(self, device)


@dataclass(frozen=True, slots=True)
class Recommendation:
    """A served list.

    item_ids / scores: the ranked list. case_ids: the chosen cases shown to the LLM.
    case_item_ids: for each chosen case, the items it contributed (for credit assignment).
    logp: (m,) behaviour log-probabilities of the chosen cases.
    """

    request_id: str
    user_id: str
    item_ids: tuple[str, ...]
    scores: tuple[float, ...]
    case_ids: tuple[int, ...]
    case_item_ids: tuple[tuple[str, ...], ...] = ()
    logp: tuple[float, ...] = ()
    ts: float = 0.0
    explanation: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Feedback:
    """The user's response to a Recommendation: `action` on `item_id` (None = no response)."""

    request_id: str
    user_id: str
    item_id: str | None
    action: Action | None
    ts: float
    dwell_seconds: float | None = None

"""One interface for interactive user simulators: users arrive, see a list, answer with events.

A simulator owns a catalogue (ids, titles, public item features), a population of users whose
state evolves with what they were shown and did, and a response model. The response model is
a position-based click model (examination probability `theta[k]` at position k, independent
per position) with an action funnel and a dwell time per click, so the expected reward of any
list is a closed-form sum and the best list for a state is known: regret is exact with respect
to the simulator's own model.

Reward of one decision (`decision_reward`): for each acted item, the weight of its deepest
action plus `dwell_weight` per capped dwell minute (`recsys.rec.reward.action_reward`), summed
over the list. Every method is scored by the same function.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from recsys.config import RewardConfig
from recsys.rec.reward import action_reward
from recsys.records import Action

FUNNEL: tuple[str, ...] = ("click", "collect", "cart", "alipay")
"""Actions from shallow to deep; a clicked item ends at one of them."""

SIM_REWARD = RewardConfig(dwell_weight=0.05, dwell_cap_seconds=300.0, aggregate="sum")
"""The reward every method is scored with online (and the service is configured with)."""


@dataclass(frozen=True, slots=True)
class SimEvent:
    """One acted item of a decision: its deepest action and the seconds spent on it."""

    item_id: str
    action: str
    dwell_seconds: float
    position: int


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One past event of a user, as a client would send it (`ts` in simulator seconds)."""

    item_id: str
    action: str
    ts: float


def examination(n: int, eta: float) -> np.ndarray:
    """(n,) position-based examination probabilities 1 / (k + 1)^eta."""
    return 1.0 / np.arange(1, n + 1, dtype=np.float64) ** eta


def decision_reward(events: Sequence[SimEvent], cfg: RewardConfig = SIM_REWARD) -> float:
    """Summed reward of one decision's events (deepest action + capped dwell per item)."""
    return float(sum(action_reward(Action(e.action), cfg, e.dwell_seconds) for e in events))


def expected_click_value(
    attract: np.ndarray, buy: np.ndarray, dwell_mean: np.ndarray, cfg: RewardConfig = SIM_REWARD
) -> np.ndarray:
    """(n,) expected reward of an item given it is clicked, for the funnel of `FunnelModel`.

    attract is unused here (kept for shape checks); buy: P(alipay | click); the rest of the
    funnel is fixed: P(cart | click, no alipay) = 0.2, P(collect | ...) = 0.15. Dwell is
    exponential with mean `dwell_mean`, so E[min(D, cap)] = mean * (1 - exp(-cap / mean)).
    """
    assert attract.shape == buy.shape == dwell_mean.shape, f"{attract.shape=} {buy.shape=}"
    rest = 1.0 - buy
    value = (
        buy * cfg.alipay
        + rest * 0.2 * cfg.cart
        + rest * 0.8 * 0.15 * cfg.collect
        + rest * 0.8 * 0.85 * cfg.click
    )
    cap = cfg.dwell_cap_seconds
    dwell = dwell_mean * (1.0 - np.exp(-cap / np.maximum(dwell_mean, 1e-9)))
    return value + cfg.dwell_weight * dwell / 60.0


def draw_funnel(rng: np.random.Generator, buy: float) -> str:
    """The deepest action of one click (the funnel of `expected_click_value`)."""
    if rng.random() < buy:
        return "alipay"
    u = rng.random()
    if u < 0.2:
        return "cart"
    return "collect" if rng.random() < 0.15 else "click"


class Simulator(Protocol):
    """What `bench.online` drives; see the module docstring."""

    name: str
    list_size: int

    def catalogue(self) -> tuple[list[str], list[str]]:
        """(item ids, titles) of every item a list may show."""
        ...

    def item_features(self) -> list[list[str]]:
        """Public tokens per item (category, brand, genre): what a bandit peer may use."""
        ...

    def next_user(self) -> str:
        """The user who arrives now (arrivals, departures and newcomers follow the seed)."""
        ...

    def now(self) -> float:
        """Simulator seconds now (every history event is stamped at or before it)."""
        ...

    def history(self, user_id: str) -> list[HistoryEvent]:
        """The user's past events, oldest first (what a client knows about them)."""
        ...

    def expected_reward(self, user_id: str, items: Sequence[str]) -> float:
        """Exact expected `decision_reward` of showing `items` to the user now."""
        ...

    def item_values(self, user_id: str) -> np.ndarray:
        """(items,) expected reward of each catalogue item once examined, for the user now:
        `expected_reward(items) == sum(theta[k] * item_values[row(items[k])])`."""
        ...

    def examination(self) -> np.ndarray:
        """(list_size,) examination probability of each position."""
        ...

    def oracle(self, user_id: str, n: int) -> list[str]:
        """The list of n items with the highest expected reward for the user now."""
        ...

    def respond(self, user_id: str, items: Sequence[str]) -> list[SimEvent]:
        """Draw the user's events for the shown list and move their state on."""
        ...

    def shift(self) -> None:
        """Change tastes (a new season or a category trend) from now on."""
        ...


def best_list(value: np.ndarray, n: int, allowed: np.ndarray) -> np.ndarray:
    """Rows of the n best allowed items, best first: with additive position-based values the
    best list sorts items by value, the best at the most examined position (theta decreases).
    n may exceed the list size (callers then drop items by their own rule)."""
    v = np.where(allowed, value, -np.inf)
    n = min(n, int(allowed.sum()))
    top = np.argpartition(-v, n - 1)[:n] if n < len(v) else np.arange(len(v))
    return top[np.argsort(-v[top], kind="stable")][:n]


__all__ = [
    "FUNNEL",
    "SIM_REWARD",
    "HistoryEvent",
    "SimEvent",
    "Simulator",
    "best_list",
    "decision_reward",
    "draw_funnel",
    "examination",
    "expected_click_value",
]

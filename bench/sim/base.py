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

`UserPoolSimulator` is that user pool and response model, once: `active` users are present at
a time, one arrives per decision, a shown item is examined with theta[k] and clicked with its
attraction, a click ends at a funnel action with an exponential dwell, and after each decision
the user leaves with probability `leave` (`leave_idle` when they did nothing) and a newcomer
takes the seat. A simulator adds what its users are (`_new_user`, with a warm-up history) and
how they respond to each item (`_response`: attraction, P(alipay | click), mean dwell).
Every run on a seed meets the same random numbers at each decision (`bench.sim.streams`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np

from bench.sim.streams import SimStreams
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


def draw_funnel(u: np.ndarray, buy: float) -> str:
    """The deepest action of one click (the funnel of `expected_click_value`) from three
    uniforms `u`: alipay, cart and collect in turn."""
    if u[0] < buy:
        return "alipay"
    if u[1] < 0.2:
        return "cart"
    return "collect" if u[2] < 0.15 else "click"


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


class PoolSettings(Protocol):
    """The population and position settings a `UserPoolSimulator` reads from its config."""

    @property
    def active(self) -> int:
        """Users present at any time."""
        ...

    @property
    def list_size(self) -> int:
        """Items per shown list."""
        ...

    @property
    def eta(self) -> float:
        """Position bias: theta[k] = 1 / (k + 1)^eta."""
        ...

    @property
    def leave(self) -> float:
        """Departure probability after a decision with an action."""
        ...

    @property
    def leave_idle(self) -> float:
        """Departure probability after a decision with no action."""
        ...

    @property
    def step_seconds(self) -> float:
        """Simulator clock advance per decision."""
        ...


class ItemValues(NamedTuple):
    """A user's response to every catalogue item now, each (items,)."""

    attract: np.ndarray
    """Click probability once examined."""
    buy: np.ndarray
    """P(alipay | click)."""
    dwell: np.ndarray
    """Mean dwell seconds of a click."""
    value: np.ndarray
    """Expected reward once examined: attract * E[value | click]."""


@dataclass
class PoolUser:
    """One simulated user: who they are to the response model and what they did."""

    kind: int
    """What the response model knows them by (a segment, a real user's row)."""
    history: list[HistoryEvent] = field(default_factory=list)
    """Past events, oldest first."""
    seen: set[int] = field(default_factory=set)
    """Rows of the items they acted on."""
    last: int = -1
    """Row of the item they acted on last (-1: none)."""
    values: ItemValues | None = None
    """Their `ItemValues`, cached until they act, leave or tastes shift."""


class UserPoolSimulator(ABC):
    """The user pool and response model of the module docstring; subclasses build their
    catalogue, call `__init__`, then `_fill` once their response model is ready."""

    name: str

    def __init__(
        self,
        cfg: PoolSettings,
        ids: list[str],
        titles: list[str],
        streams: SimStreams,
    ) -> None:
        self.list_size = cfg.list_size
        self.ids = ids
        self.titles = titles
        self.row_of = {s: k for k, s in enumerate(ids)}
        self._pool = cfg
        self._theta = examination(cfg.list_size, cfg.eta)
        self.streams = streams
        self._arrive = streams.arrivals()
        self._season = streams.season()
        """Draws of the taste shifts (`shift`)."""
        self._decision = -1
        """Number of the current decision, from 0 (`next_user` starts the next one)."""
        self._users: dict[str, PoolUser] = {}
        self._next_uid = 0
        self._clock = 0.0
        self._active: list[str] = []

    def _fill(self) -> None:
        """Seat the first `active` users."""
        self._active = [self._newcomer() for _ in range(self._pool.active)]

    @abstractmethod
    def _new_user(self, index: int) -> PoolUser:
        """The `index`-th newcomer, with their warm-up history (through `_act`)."""

    @abstractmethod
    def _response(self, user: PoolUser) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(attraction, P(alipay | click), mean dwell seconds) of every item, for the user now."""

    def _values(self, user: PoolUser) -> ItemValues:
        """The user's `ItemValues` (cached)."""
        if user.values is None:
            a, buy, dwell = self._response(user)
            user.values = ItemValues(a, buy, dwell, a * expected_click_value(a, buy, dwell))
        return user.values

    def _forget_values(self) -> None:
        """Drop every cached `ItemValues` (tastes changed)."""
        for user in self._users.values():
            user.values = None

    def _newcomer(self) -> str:
        index = self._next_uid
        self._next_uid += 1
        uid = f"u{index}"
        self._users[uid] = self._new_user(index)
        return uid

    def _act(self, user: PoolUser, row: int, action: str, ts: float) -> None:
        user.history.append(HistoryEvent(self.ids[row], action, ts))
        user.seen.add(row)
        user.last = row
        user.values = None

    def _rows(self, items: Sequence[str]) -> np.ndarray:
        unknown = [s for s in items if s not in self.row_of]
        if unknown:
            raise KeyError(f"items not in the {self.name} catalogue: {unknown[:5]}")
        return np.array([self.row_of[s] for s in items], np.int64)

    # --- the Simulator protocol ---------------------------------------------------------
    def catalogue(self) -> tuple[list[str], list[str]]:
        """(item ids, titles) of every item a list may show."""
        return list(self.ids), list(self.titles)

    def next_user(self) -> str:
        """The user who arrives now (the clock advances one step)."""
        self._clock += self._pool.step_seconds
        self._decision += 1
        k = int(self._arrive.integers(len(self._active)))
        return self._active[k]

    def now(self) -> float:
        """Simulator seconds now."""
        return self._clock

    def history(self, user_id: str) -> list[HistoryEvent]:
        """The user's past events, oldest first."""
        return list(self._users[user_id].history)

    def expected_reward(self, user_id: str, items: Sequence[str]) -> float:
        """Exact expected `decision_reward` of showing `items` to the user now."""
        rows = self._rows(items[: self.list_size])
        v = self._values(self._users[user_id]).value
        return float((self._theta[: len(rows)] * v[rows]).sum())

    def item_values(self, user_id: str) -> np.ndarray:
        """(items,) expected reward of each item once examined, for the user now."""
        return self._values(self._users[user_id]).value.copy()

    def examination(self) -> np.ndarray:
        """(list_size,) examination probability of each position."""
        return self._theta.copy()

    def oracle(self, user_id: str, n: int) -> list[str]:
        """The n items with the highest expected reward for the user now, best first."""
        v = self._values(self._users[user_id]).value
        rows = best_list(v, n, np.ones(len(v), bool))
        return [self.ids[r] for r in rows]

    def respond(self, user_id: str, items: Sequence[str]) -> list[SimEvent]:
        """Draw the user's events for the shown list, then their departure, from the current
        decision's common random numbers (`bench.sim.streams`)."""
        if self._decision < 0:
            raise RuntimeError("respond() before next_user(): no decision has started")
        user = self._users[user_id]
        rows = self._rows(items[: self.list_size])
        a, buy, dwell, _ = self._values(user)
        rng = self.streams.responses(self._decision)
        n = self.list_size
        u = rng.random((4, n))  # examination-and-click, then the funnel's three
        unit_dwell = rng.exponential(1.0, n)
        u_leave = rng.random()
        events: list[SimEvent] = []
        for k, r in enumerate(rows.tolist()):
            if u[0, k] < self._theta[k] * a[r]:
                action = draw_funnel(u[1:, k], float(buy[r]))
                events.append(SimEvent(self.ids[r], action, float(unit_dwell[k] * dwell[r]), k))
        for e in events:
            self._act(user, self.row_of[e.item_id], e.action, self._clock)
        leave = self._pool.leave if events else self._pool.leave_idle
        if u_leave < leave:
            user.values = None  # a departed user is never shown a list again
            seat = self._active.index(user_id)
            self._active[seat] = self._newcomer()
        return events


__all__ = [
    "FUNNEL",
    "SIM_REWARD",
    "HistoryEvent",
    "ItemValues",
    "PoolSettings",
    "PoolUser",
    "SimEvent",
    "Simulator",
    "UserPoolSimulator",
    "best_list",
    "decision_reward",
    "draw_funnel",
    "examination",
    "expected_click_value",
]

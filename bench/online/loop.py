"""Drive one method through one simulator: users arrive, see a list, answer, the method learns.

Every method gets the same simulator seed (same world, same arrival stream), the same list
size and the same seen-item rule (items the user already acted on are never shown). Per
decision the loop records the observed reward, the exact expected reward of the shown list and
the exact expected reward of the oracle list for the same state (regret = the difference).
Halfway (`shift_at`) the simulator shifts tastes. For the logging method it also records what
off-policy evaluation needs (`OpeTrace`): the decision id, the items the user may still be
shown, each item's exact first-position value and the acted-event counts so far (the
evaluation policies and their truth are built from these in `bench.online.eval_policies`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from bench.sim.base import HistoryEvent, SimEvent, Simulator, decision_reward

Progress = Callable[[int], None]
"""Called with the number of decisions done so far."""


class OnlinePolicy(Protocol):
    """A method under test: the service adapter or an in-process peer."""

    name: str

    def recommend(
        self, user_id: str, history: list[HistoryEvent], n: int, now: float
    ) -> tuple[list[str], list[float | None]]:
        """n items for the user (acted items excluded) and each shown position's propensity."""
        ...

    def learn(self, user_id: str, events: Sequence[SimEvent], now: float) -> None:
        """The user's events for the list last recommended to them."""
        ...


@dataclass
class Trace:
    """Per-decision records of one (method, seed) run, each (interactions,)."""

    reward: np.ndarray
    """Observed `decision_reward`."""
    expected: np.ndarray
    """Exact expected reward of the shown list."""
    oracle: np.ndarray
    """Exact expected reward of the oracle list for the same state."""
    shift_step: int
    """Decision index at which tastes shifted (-1: no shift)."""
    missing_pscores: int = 0
    """Shown positions without a propensity."""


@dataclass
class OpeTrace:
    """What off-policy evaluation of the first position needs, per decision of the logger."""

    decision_ids: list[str] = field(default_factory=list)
    """The service's decision id."""
    allowed: list[np.ndarray] = field(default_factory=list)
    """(items,) bool per decision: items not yet acted on."""
    values: list[np.ndarray] = field(default_factory=list)
    """(items,) float32 per decision: theta[0] * the expected value of each catalogue item
    for the user at that moment (the simulator's truth, never given to the estimators)."""
    counts: list[np.ndarray] = field(default_factory=list)
    """(items,) float32 per decision: acted events per item before it (all users)."""


def run_policy(
    sim: Simulator,
    policy: OnlinePolicy,
    interactions: int,
    *,
    shift_at: float = 0.5,
    ope: OpeTrace | None = None,
    decision_id: Callable[[str], str] | None = None,
    progress: Progress | None = None,
) -> Trace:
    """`interactions` decisions of `policy` on `sim` (module docstring)."""
    if interactions <= 0:
        raise ValueError(f"interactions must be > 0, got {interactions}")
    ids, _ = sim.catalogue()
    row_of = {s: i for i, s in enumerate(ids)}
    n = sim.list_size
    theta = sim.examination()
    shift_step = int(interactions * shift_at) if 0 < shift_at < 1 else -1
    reward = np.zeros(interactions)
    expected = np.zeros(interactions)
    oracle = np.zeros(interactions)
    counts = np.zeros(len(ids))
    missing = 0
    for t in range(interactions):
        if t == shift_step:
            sim.shift()
        user = sim.next_user()
        now = sim.now() + 0.5
        history = sim.history(user)
        items, pscores = policy.recommend(user, history, n, now)
        seen = {e.item_id for e in history}
        items = [i for i in items if i not in seen][:n]
        missing += sum(p is None for p in pscores[: len(items)])
        values = sim.item_values(user)
        rows = np.array([row_of[i] for i in items], np.int64)
        expected[t] = float((theta[: len(rows)] * values[rows]).sum())
        best = np.sort(np.delete(values, [row_of[s] for s in seen]))[::-1][:n]
        oracle[t] = float((theta[: len(best)] * best).sum())
        if ope is not None and decision_id is not None:
            allowed = np.ones(len(ids), bool)
            allowed[[row_of[s] for s in seen]] = False
            ope.decision_ids.append(decision_id(user))
            ope.allowed.append(allowed)
            ope.values.append((float(theta[0]) * values).astype(np.float32))
            ope.counts.append(counts.astype(np.float32))
        events = sim.respond(user, items)
        reward[t] = decision_reward(events)
        for e in events:
            counts[row_of[e.item_id]] += 1
        policy.learn(user, events, now)
        if progress is not None:
            progress(t + 1)
    return Trace(reward, expected, oracle, shift_step, missing)


__all__ = ["OnlinePolicy", "OpeTrace", "Trace", "run_policy"]

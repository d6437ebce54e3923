"""Reference peers of the online benchmark, with the `recommend` / `learn` of `VWPolicy`.

- `RandomPolicy`: a uniform-random list, the floor every learner must beat;
- `OraclePolicy`: the simulator's own best list for the user now, the ceiling (its regret is 0
  by construction, so it checks the benchmark's bookkeeping rather than a method).
"""

from __future__ import annotations

import numpy as np

from bench.sim.base import HistoryEvent, Simulator


class RandomPolicy:
    """n distinct items drawn uniformly from the catalogue (without the user's seen items when
    `exclude_seen`, the seen-item rule every method of the benchmark gets)."""

    name = "random"

    def __init__(self, item_ids: list[str], *, seed: int = 0, exclude_seen: bool = True) -> None:
        if not item_ids:
            raise ValueError("RandomPolicy needs a non-empty catalogue (item_ids is empty)")
        if len(set(item_ids)) != len(item_ids):
            raise ValueError("item_ids has duplicates")
        self.ids = np.array(item_ids, dtype=object)
        self.row_of = {s: i for i, s in enumerate(item_ids)}
        self.exclude_seen = exclude_seen
        self._rng = np.random.default_rng(seed)

    def recommend(
        self, user_id: str, history: list[HistoryEvent], n: int
    ) -> tuple[list[str], list[float]]:
        """n distinct items; pscores are the exact position-wise marginals 1 / n_actions, with
        n_actions the items eligible (the whole catalogue when fewer than n are unseen)."""
        if n <= 0:
            raise ValueError(f"n must be positive, got {n}")
        if n > len(self.ids):
            raise ValueError(f"n={n} exceeds the catalogue size {len(self.ids)}")
        allowed = np.ones(len(self.ids), bool)
        if self.exclude_seen:
            seen = [self.row_of[e.item_id] for e in history if e.item_id in self.row_of]
            allowed[seen] = False
            if int(allowed.sum()) < n:
                allowed[:] = True
        rows = np.flatnonzero(allowed)
        picked = self._rng.choice(rows, size=n, replace=False)
        return [str(s) for s in self.ids[picked]], [1.0 / len(rows)] * n

    def learn(
        self,
        user_id: str,
        history: list[HistoryEvent],
        shown: list[str],
        pscores: list[float],
        rewards: list[float],
    ) -> None:
        """Nothing to learn."""


class OraclePolicy:
    """The simulator's best list for the user now (`Simulator.oracle`); pscores 1.0."""

    name = "oracle"

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def recommend(
        self, user_id: str, history: list[HistoryEvent], n: int
    ) -> tuple[list[str], list[float]]:
        """The oracle list (deterministic, so every propensity is 1.0)."""
        if n <= 0:
            raise ValueError(f"n must be positive, got {n}")
        items = self.sim.oracle(user_id, n)
        return items, [1.0] * len(items)

    def learn(
        self,
        user_id: str,
        history: list[HistoryEvent],
        shown: list[str],
        pscores: list[float],
        rewards: list[float],
    ) -> None:
        """Nothing to learn: the oracle reads the simulator's state."""


__all__ = ["OraclePolicy", "RandomPolicy"]

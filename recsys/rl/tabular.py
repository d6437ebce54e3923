"""MemRL-style tabular baseline: one Q per case, Q(c) += lr * (r - Q(c)),
ranking score = w * sim + (1 - w) * Q(c) (state enters only through similarity)."""

from __future__ import annotations

import numpy as np

__all__ = ["TabularQ"]


class TabularQ:
    """Per-case values (unseen cases have Q = 0)."""

    def __init__(self, lr: float = 0.1, sim_weight: float = 0.5) -> None:
        self.lr = lr
        self.sim_weight = sim_weight
        self.q: dict[int, float] = {}

    def values(self, case_ids: np.ndarray) -> np.ndarray:
        """(K,) current Q of each case id."""
        return np.array([self.q.get(int(c), 0.0) for c in case_ids], np.float32)

    def scores(self, case_ids: np.ndarray, sims: np.ndarray) -> np.ndarray:
        """(K,) w * sim + (1 - w) * Q."""
        w = self.sim_weight
        return (w * sims + (1.0 - w) * self.values(case_ids)).astype(np.float32)

    def update(self, case_ids: np.ndarray, rewards: np.ndarray) -> float:
        """Move each case's Q towards its reward; returns the mean absolute change."""
        deltas = []
        for c, r in zip(case_ids, rewards, strict=True):
            old = self.q.get(int(c), 0.0)
            self.q[int(c)] = old + self.lr * (float(r) - old)
            deltas.append(abs(self.q[int(c)] - old))
        return float(np.mean(deltas)) if deltas else 0.0

"""Simple non-LLM baselines run through the same harness and split: popularity and item-kNN.

Both learn only from the interaction frame given to ``fit`` (the training period; the caller
passes past data only) and rank the full catalog: every item seen in training plus any extra
``catalog`` items given at construction. Ties are broken by popularity, then by item id, so
rankings are deterministic.

Interaction frame columns: ``user_id`` (int), ``item_id`` (int), ``ts`` (datetime or int);
other columns (``action``...) are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys.rec.cooccurrence import Cooccurrence
from training.errors import NotFittedError

__all__ = ["ItemKNN", "ItemKNNConfig", "Popularity", "Ranker"]


class Ranker(Protocol):
    """Interface shared by the baselines: fit on past interactions, then rank all items."""

    def fit(self, train_interactions: pl.DataFrame) -> Ranker:
        """Learn from the training period only."""
        ...

    def rank(self, user_id: int, history: list[int], n: int, exclude: set[int]) -> list[int]:
        """Top ``n`` catalog items (best first), never an item in ``exclude``."""
        ...


def _check_frame(df: pl.DataFrame) -> None:
    missing = {"user_id", "item_id"} - set(df.columns)
    if missing:
        raise ValueError(f"interaction frame lacks columns {sorted(missing)}")


def _top_n(scores: np.ndarray, items: np.ndarray, n: int, exclude: set[int]) -> list[int]:
    """Items by descending score (stable: ``items`` is already in tie-break order)."""
    order = np.argsort(-scores, kind="stable")
    out: list[int] = []
    for idx in order:
        item = int(items[idx])
        if item in exclude:
            continue
        out.append(item)
        if len(out) >= n:
            break
    return out


class Popularity:
    """Most interacted items in the training period, the same list for every user."""

    def __init__(self, catalog: Iterable[int] | None = None) -> None:
        self._extra = sorted({int(i) for i in catalog}) if catalog is not None else []
        self.items: np.ndarray | None = None
        self.counts: np.ndarray | None = None

    def fit(self, train_interactions: pl.DataFrame) -> Popularity:
        """Count interactions per item (all actions) in ``train_interactions``."""
        _check_frame(train_interactions)
        counts = train_interactions.group_by("item_id").len()
        count_of = dict(zip(counts["item_id"].to_list(), counts["len"].to_list(), strict=True))
        universe = sorted(set(count_of) | set(self._extra))
        c = np.array([count_of.get(i, 0) for i in universe], dtype=np.float64)
        order = np.lexsort((np.array(universe), -c))  # count desc, then id asc
        self.items = np.array(universe, dtype=np.int64)[order]
        self.counts = c[order]
        return self

    def rank(self, user_id: int, history: list[int], n: int, exclude: set[int]) -> list[int]:
        """Top ``n`` items by training count, skipping ``exclude``; user and history unused."""
        if self.items is None or self.counts is None:
            raise NotFittedError("Popularity.rank called before fit")
        return _top_n(self.counts, self.items, n, exclude)


@dataclass(frozen=True)
class ItemKNNConfig:
    """Settings of the item-kNN baseline."""

    recent: int = 10
    """How many of the user's most recent history items score the candidates."""
    decay: float = 0.9
    """Weight multiplier per step back in the history (1.0 = all recent items equal)."""
    shrink: float = 0.0
    """Added to the cosine denominator to damp similarities from tiny supports."""


class ItemKNN:
    """Item-item cosine over co-occurrence in users' training histories.

    ``sim(i, j) = |U_i & U_j| / (sqrt(|U_i| |U_j|) + shrink)`` with ``U_i`` the training users
    of item i; a candidate's score is ``sum_t decay^t * sim(candidate, h_t)`` over the user's
    ``recent`` latest history items ``h_0`` (latest), ``h_1``, ... Items with equal scores (for
    instance a cold user with no history) fall back to popularity order.
    """

    def __init__(
        self, config: ItemKNNConfig | None = None, catalog: Iterable[int] | None = None
    ) -> None:
        self.config = config or ItemKNNConfig()
        self._pop = Popularity(catalog)
        self.items: np.ndarray | None = None
        self._index: dict[int, int] = {}
        self._sim: sp.csr_matrix | None = None

    def fit(self, train_interactions: pl.DataFrame) -> ItemKNN:
        """Build the item-item cosine matrix from ``train_interactions``."""
        _check_frame(train_interactions)
        self._pop.fit(train_interactions)
        assert self._pop.items is not None
        self.items = self._pop.items  # popularity order = tie-break order
        self._index = {int(item): k for k, item in enumerate(self.items)}
        pairs = train_interactions.select("user_id", "item_id")
        item_idx = np.array([self._index[int(i)] for i in pairs["item_id"].to_list()], np.int64)
        counts = Cooccurrence.fit(pairs["user_id"].to_numpy(), item_idx, len(self.items))
        self._sim = counts.cosine(self.config.shrink)
        return self

    def scores(self, history: Sequence[int]) -> np.ndarray:
        """Score of every catalog item (in ``self.items`` order) for this history."""
        if self._sim is None or self.items is None:
            raise NotFittedError("ItemKNN used before fit")
        weights = np.zeros(len(self.items))
        recent = list(history)[-self.config.recent :][::-1]  # latest first
        for t, item in enumerate(recent):
            k = self._index.get(int(item))
            if k is not None:
                weights[k] += self.config.decay**t
        return np.asarray(self._sim.T @ weights).ravel()

    def rank(self, user_id: int, history: list[int], n: int, exclude: set[int]) -> list[int]:
        """Top ``n`` items by similarity to the recent history, skipping ``exclude``."""
        s = self.scores(history)
        assert self.items is not None
        return _top_n(s, self.items, n, exclude)

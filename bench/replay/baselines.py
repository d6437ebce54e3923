"""Simple non-LLM baselines run through the same harness and split: popularity, item-kNN, EASE.

Both learn only from the interaction frame given to ``fit`` (the training period; the caller
passes past data only) and rank the full catalog: every item seen in training plus any extra
``catalog`` items given at construction. Ties are broken by popularity, then by item id, so
rankings are deterministic.

Interaction frame columns: ``user_id`` (int), ``item_id`` (int), ``ts`` (datetime or int);
other columns (``action``...) are ignored.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl
import scipy.sparse as sp

from bench.errors import NotFittedError
from recsys.rec.cooccurrence import Cooccurrence

__all__ = [
    "EASE",
    "EASE_MAX_ITEMS",
    "ItemKNN",
    "ItemKNNConfig",
    "Popularity",
    "Ranker",
    "select_ease_lambda",
]


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


EASE_MAX_ITEMS = 20_000
"""Largest catalog EASE accepts: the dense item x item inverse needs O(items^2) memory."""


def _ease_weights(gram: np.ndarray, lam: float) -> np.ndarray:
    """EASE closed form (Steck 2019, eq. 8): ``P = (G + lam I)^-1``, ``B = I - P / diag(P)``.

    Shapes: ``gram`` (I, I) -> ``B`` (I, I) with a zero diagonal; ``B[i, j]`` weighs history
    item i for candidate j.
    """
    assert gram.ndim == 2 and gram.shape[0] == gram.shape[1], f"{gram.shape=}"
    if lam <= 0:
        raise ValueError(f"EASE lambda must be positive, got {lam}")
    p = np.linalg.inv(gram + lam * np.eye(gram.shape[0]))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


class EASE:
    """Embarrassingly Shallow Autoencoder (Steck 2019): item-item weights in closed form.

    ``X`` is the binary user x item matrix of the fit rows, ``G = X^T X``,
    ``B = I - P / diag(P)`` with ``P = (G + lam I)^-1`` (so ``diag(B) = 0``); a history scores
    the catalog as ``x_hist B`` with ``x_hist`` the binary vector of its items (order and
    repeats ignored). Ties (a cold user scores all zero) fall back to popularity, then id.
    Dense numpy: catalogs above ``EASE_MAX_ITEMS`` items are refused.
    """

    def __init__(self, lam: float = 500.0, catalog: Iterable[int] | None = None) -> None:
        self.lam = float(lam)
        self._pop = Popularity(catalog)
        self.items: np.ndarray | None = None
        self._index: dict[int, int] = {}
        self._gram: np.ndarray | None = None
        self.weights: np.ndarray | None = None  # B (I, I) in self.items order, zero diagonal

    def fit(self, train_interactions: pl.DataFrame) -> EASE:
        """Build ``G`` from the (user, item) pairs of ``train_interactions`` and solve for ``B``."""
        _check_frame(train_interactions)
        self._pop.fit(train_interactions)
        assert self._pop.items is not None
        if len(self._pop.items) > EASE_MAX_ITEMS:
            raise ValueError(f"EASE is dense: {len(self._pop.items)} items exceed {EASE_MAX_ITEMS}")
        self.items = self._pop.items  # popularity order = tie-break order
        self._index = {int(item): k for k, item in enumerate(self.items)}
        pairs = train_interactions.select("user_id", "item_id").unique()
        users = pairs["user_id"].to_numpy()
        _, rows = np.unique(users, return_inverse=True)
        cols = np.array([self._index[int(i)] for i in pairs["item_id"].to_list()], np.int64)
        x = sp.csr_matrix(
            (np.ones(len(cols)), (rows, cols)),
            shape=(int(rows.max(initial=-1)) + 1, len(self.items)),
        )
        self._gram = np.asarray((x.T @ x).todense(), dtype=np.float64)
        return self.set_lambda(self.lam)

    def set_lambda(self, lam: float) -> EASE:
        """Re-solve ``B`` for another ``lam`` on the same fit rows (``G`` is kept)."""
        if self._gram is None:
            raise NotFittedError("EASE.set_lambda called before fit")
        self.lam = float(lam)
        self.weights = _ease_weights(self._gram, self.lam)
        return self

    def history_vector(self, history: Sequence[int]) -> np.ndarray:
        """Binary (I,) vector of the catalog items in ``history`` (unknown items ignored)."""
        if self.items is None:
            raise NotFittedError("EASE used before fit")
        x = np.zeros(len(self.items))
        for item in history:
            k = self._index.get(int(item))
            if k is not None:
                x[k] = 1.0
        return x

    def scores(self, history: Sequence[int]) -> np.ndarray:
        """Score of every catalog item (in ``self.items`` order): ``x_hist B``, shape (I,)."""
        if self.weights is None:
            raise NotFittedError("EASE used before fit")
        return self.history_vector(history) @ self.weights

    def rank(self, user_id: int, history: list[int], n: int, exclude: set[int]) -> list[int]:
        """Top ``n`` items by ``x_hist B``, skipping ``exclude``; the user id is unused."""
        s = self.scores(history)
        assert self.items is not None
        return _top_n(s, self.items, n, exclude)


def _earlier_items(train: pl.DataFrame, rows: pl.DataFrame) -> list[list[int]]:
    """Per row of ``rows``: its user's ``train`` items strictly before the row's ts, in time
    order."""
    by_user: dict[int, tuple[list[object], list[int]]] = {}
    ordered = train.select("user_id", "item_id", "ts").sort(["user_id", "ts"], maintain_order=True)
    for u, i, t in ordered.iter_rows():
        ts_list, items = by_user.setdefault(int(u), ([], []))
        ts_list.append(t)
        items.append(int(i))
    out: list[list[int]] = []
    for u, t in rows.select("user_id", "ts").iter_rows():
        ts_list, items = by_user.get(int(u), ([], []))
        out.append(items[: bisect.bisect_left(ts_list, t)])
    return out


def select_ease_lambda(
    train: pl.DataFrame,
    valid: pl.DataFrame,
    grid: Sequence[float] = (10, 50, 100, 250, 500, 1000, 2000),
    catalog: Iterable[int] | None = None,
    exclude_seen: bool = False,
) -> tuple[float, dict[float, float]]:
    """The ``lam`` of ``grid`` with the best validation NDCG@10, and the curve ``{lam: ndcg}``.

    EASE is fit on ``train`` (``G`` once, one solve per ``lam``); each ``valid`` row is ranked
    from its user's ``train`` items before the row's ts (nothing excluded, unless
    ``exclude_seen``: then those history items are left out of its list, the rule of a
    benchmark that never recommends a seen item) and scored by ``training.metrics.ndcg_at_k``
    against its item. Ties between lambdas go to the first in ``grid``.
    """
    from training.metrics import ndcg_at_k

    if not grid:
        raise ValueError("empty lambda grid")
    if valid.height == 0:
        raise ValueError("empty validation frame")
    model = EASE(grid[0], catalog).fit(train)
    assert model.items is not None
    hist = np.stack([model.history_vector(h) for h in _earlier_items(train, valid)])
    targets = [int(i) for i in valid["item_id"].to_list()]
    curve: dict[float, float] = {}
    for lam in grid:
        model.set_lambda(lam)
        assert model.weights is not None
        order = np.argsort(-(hist @ model.weights), axis=1, kind="stable")  # (V, I)
        if exclude_seen:
            top = [o[hist[v, o] == 0][:10] for v, o in enumerate(order)]
        else:
            top = list(order[:, :10])
        ranked = [[int(i) for i in model.items[row]] for row in top]
        curve[float(lam)] = ndcg_at_k(ranked, targets, 10)
    best = max(curve, key=lambda lam: (curve[lam], -list(curve).index(lam)))
    return best, curve

"""Simple non-LLM baselines run through the same harness and split: popularity, item-kNN, EASE,
RP3beta.

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

from bench.errors import NotFittedError
from recsys.rec.cooccurrence import Cooccurrence
from recsys.rec.seq.item_prior import recency_input

__all__ = [
    "EASE",
    "EASE_MAX_ITEMS",
    "ItemKNN",
    "ItemKNNConfig",
    "Popularity",
    "RP3beta",
    "Ranker",
    "recency_vector",
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


def _keep_top(sim: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """``sim`` with each row cut to its ``k`` largest entries (ties: lower column first);
    ``k`` 0 keeps every entry."""
    sim = sp.csr_matrix(sim)
    if k <= 0:
        return sim
    rows, cols, vals = [], [], []
    for r in range(sim.shape[0]):
        lo, hi = sim.indptr[r], sim.indptr[r + 1]
        c, v = sim.indices[lo:hi], sim.data[lo:hi]
        keep = np.lexsort((c, -v))[:k]
        rows.append(np.full(len(keep), r))
        cols.append(c[keep])
        vals.append(v[keep])
    if not rows:
        return sim
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=sim.shape
    )


def recency_vector(
    history: Sequence[int], index: dict[int, int], n: int, window: int = 0, decay: float = 1.0
) -> np.ndarray:
    """(n,) input of a history: the t-th latest item (t = 0, 1, ...) weighs ``decay^t``, an
    item seen twice keeps its latest weight; only the ``window`` latest items count (0 = all).
    ``window`` 0 and ``decay`` 1 give the binary vector of the history's items
    (`recsys.rec.seq.item_prior.recency_input` over the items' positions in ``index``)."""
    pos = np.array([index.get(int(i), -1) for i in history], np.int64)
    return recency_input(pos, n, window, decay)


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
    """How many of the user's most recent history items score the candidates (0 = all)."""
    decay: float = 0.9
    """Weight multiplier per step back in the history (1.0 = all recent items equal)."""
    shrink: float = 0.0
    """Added to the cosine denominator to damp similarities from tiny supports."""
    neighbours: int = 0
    """k: each history item votes for its k most similar items only (0 = all of them)."""


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
        self._sim = _keep_top(counts.cosine(self.config.shrink), self.config.neighbours)
        return self

    @property
    def item_matrix(self) -> sp.csr_matrix:
        """(I, I) similarities in ``self.items`` order: ``scores = history_vector @ it``."""
        if self._sim is None:
            raise NotFittedError("ItemKNN used before fit")
        return self._sim

    def history_vector(self, history: Sequence[int]) -> np.ndarray:
        """(I,) weights of the ``recent`` latest history items: ``decay^t`` summed per item."""
        if self.items is None:
            raise NotFittedError("ItemKNN used before fit")
        weights = np.zeros(len(self.items))
        recent = list(history)[-self.config.recent :][::-1]  # latest first; 0 = all
        for t, item in enumerate(recent):
            k = self._index.get(int(item))
            if k is not None:
                weights[k] += self.config.decay**t
        return weights

    def scores(self, history: Sequence[int]) -> np.ndarray:
        """Score of every catalog item (in ``self.items`` order) for this history."""
        return np.asarray(self.item_matrix.T @ self.history_vector(history)).ravel()

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


def _binary_matrix(frame: pl.DataFrame, index: dict[int, int]) -> sp.csr_matrix:
    """(U, I) binary user x item matrix of the frame's distinct (user, item) pairs."""
    pairs = frame.select("user_id", "item_id").unique()
    _, rows = np.unique(pairs["user_id"].to_numpy(), return_inverse=True)
    cols = np.array([index[int(i)] for i in pairs["item_id"].to_list()], np.int64)
    shape = (int(rows.max(initial=-1)) + 1, len(index))
    return sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=shape)


class _ItemItem:
    """A peer that scores a history as ``x_hist M``: ``M`` an (I, I) item matrix fitted on
    the binary user x item matrix of its fit rows, ``x_hist = recency_vector(history, window,
    decay)`` (binary by default). Ties (a cold user scores all zero) fall back to popularity,
    then id. Dense numpy: catalogs above ``EASE_MAX_ITEMS`` items are refused."""

    def __init__(self, catalog: Iterable[int] | None, window: int, decay: float) -> None:
        self.window = int(window)
        """Latest history items in the input (0 = all)."""
        self.decay = float(decay)
        """Input weight multiplier per step back in the history (1 = binary input)."""
        self._pop = Popularity(catalog)
        self.items: np.ndarray | None = None
        self._index: dict[int, int] = {}
        self.weights: np.ndarray | None = None  # M (I, I) in self.items order

    def _binary(self, train_interactions: pl.DataFrame) -> sp.csr_matrix:
        """Fit popularity (the tie-break order) and return ``X`` (U, I) of the fit rows."""
        _check_frame(train_interactions)
        self._pop.fit(train_interactions)
        assert self._pop.items is not None
        if len(self._pop.items) > EASE_MAX_ITEMS:
            name = type(self).__name__
            raise ValueError(
                f"{name} is dense: {len(self._pop.items)} items exceed {EASE_MAX_ITEMS}"
            )
        self.items = self._pop.items  # popularity order = tie-break order
        self._index = {int(item): k for k, item in enumerate(self.items)}
        return _binary_matrix(train_interactions, self._index)

    @property
    def item_matrix(self) -> np.ndarray:
        """(I, I) ``M``: ``scores = history_vector @ it``."""
        if self.weights is None:
            raise NotFittedError(f"{type(self).__name__} used before fit")
        return self.weights

    def history_vector(self, history: Sequence[int]) -> np.ndarray:
        """(I,) input of ``history`` (``recency_vector``; unknown items ignored)."""
        if self.items is None:
            raise NotFittedError(f"{type(self).__name__} used before fit")
        return recency_vector(history, self._index, len(self.items), self.window, self.decay)

    def scores(self, history: Sequence[int]) -> np.ndarray:
        """Score of every catalog item (in ``self.items`` order): ``x_hist M``, shape (I,)."""
        return self.history_vector(history) @ self.item_matrix

    def rank(self, user_id: int, history: list[int], n: int, exclude: set[int]) -> list[int]:
        """Top ``n`` items by ``x_hist M``, skipping ``exclude``; the user id is unused."""
        s = self.scores(history)
        assert self.items is not None
        return _top_n(s, self.items, n, exclude)


class EASE(_ItemItem):
    """Embarrassingly Shallow Autoencoder (Steck 2019): item-item weights in closed form.

    ``X`` is the binary user x item matrix of the fit rows, ``G = X^T X``,
    ``M = B = I - P / diag(P)`` with ``P = (G + lam I)^-1`` (so ``diag(B) = 0``); a history
    scores the catalog as ``x_hist B`` (`_ItemItem`).
    """

    def __init__(
        self,
        lam: float = 500.0,
        catalog: Iterable[int] | None = None,
        window: int = 0,
        decay: float = 1.0,
    ) -> None:
        super().__init__(catalog, window, decay)
        self.lam = float(lam)
        self._gram: np.ndarray | None = None

    def fit(self, train_interactions: pl.DataFrame) -> EASE:
        """Build ``G`` from the (user, item) pairs of ``train_interactions`` and solve for ``B``."""
        x = self._binary(train_interactions)
        self._gram = np.asarray((x.T @ x).todense(), dtype=np.float64)
        return self.set_lambda(self.lam)

    def set_lambda(self, lam: float) -> EASE:
        """Re-solve ``B`` for another ``lam`` on the same fit rows (``G`` is kept)."""
        if self._gram is None:
            raise NotFittedError("EASE.set_lambda called before fit")
        self.lam = float(lam)
        self.weights = _ease_weights(self._gram, self.lam)
        return self


class RP3beta(_ItemItem):
    """RP3beta (Paudel et al. 2017; as in Dacrema et al. 2019): a 3-step random walk
    item -> user -> item, popularity-penalised.

    With ``X`` the binary user x item matrix of the fit rows, ``deg`` its row / column sums:
    ``W[i, j] = pop_j^-beta * sum_u (X_ui / deg_i)^alpha (X_uj / deg_u)^alpha`` for ``i != j``,
    ``W[i, i] = 0``; a history scores the catalog as ``x_hist W`` (`_ItemItem`).
    """

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 0.5,
        catalog: Iterable[int] | None = None,
        window: int = 0,
        decay: float = 1.0,
    ) -> None:
        super().__init__(catalog, window, decay)
        self.alpha = float(alpha)
        """Exponent of the transition probabilities (1 = the plain random walk)."""
        self.beta = float(beta)
        """Popularity penalty: the walk's arrival at j is divided by ``pop_j^beta``."""

    def fit(self, train_interactions: pl.DataFrame) -> RP3beta:
        """Walk probabilities of ``train_interactions``' (user, item) pairs -> ``W``."""
        x = self._binary(train_interactions)
        deg_u = np.asarray(x.sum(axis=1)).ravel()
        deg_i = np.asarray(x.sum(axis=0)).ravel()
        p_ui = sp.diags(1.0 / np.maximum(deg_u, 1.0)) @ x  # user -> item
        p_iu = sp.diags(1.0 / np.maximum(deg_i, 1.0)) @ x.T  # item -> user
        w = np.asarray((p_iu.power(self.alpha) @ p_ui.power(self.alpha)).todense())
        w /= np.where(deg_i > 0, deg_i, 1.0)[None, :] ** self.beta
        np.fill_diagonal(w, 0.0)
        self.weights = w
        return self

"""`top_n_stable`: THE order of every list recsys decides from float scores.

The offline evaluator and the service must give the same list for the same request on any
machine and at any thread count. Float kernels do not promise that: a faiss search, a BLAS
product or a torch matmul may split a sum differently across threads and return scores that
differ in their last bits, so two candidates whose scores tie (an item with two identical
cases, two items with the same evidence) would be ordered by that noise. Every ranking
therefore compares scores at a stated precision and breaks the remaining ties by id:

1. scores are rounded to `RANK_DECIMALS` decimal places (as float64; NaN counts as -inf);
2. higher rounded scores come first;
3. equal rounded scores are ordered by ascending id: an item's catalogue row (its position in
   the bundle's `ItemTable`, the same in every process that loads the bundle), a case's bank
   id, or, when no id is given, the position in `scores`.

The order is then a function of the rounded scores and the ids only: permuting the input
permutes nothing in the output. Callers that need bit-exact scores too (the case bank's
similarities) compute them with a thread-independent reduction before ranking.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RANK_DECIMALS", "rank_key", "top_n_stable", "top_positive"]

RANK_DECIMALS = 6
"""Decimal places at which ranking scores are compared (a grid of 1e-6). Why this value: the
scores ranked here (Q values and log-probabilities around 0.1 to 10, cosines, blend and
popularity scores) differ between thread counts by a few float32 ulps (about 1e-8 at 0.1),
well below the grid, while the gaps between neighbouring items of a list are about 1e-5 and
up, well above it. Scores closer than the grid are treated as equal. Limits: the rounding
cannot absorb noise of float32 scores above about 10 (their ulp approaches the grid), and two
scores that straddle a grid boundary can still round apart (probability about noise / 1e-6)."""


def rank_key(scores: np.ndarray, decimals: int = RANK_DECIMALS) -> np.ndarray:
    """(n,) scores as rankings compare them: float64 rounded to `decimals` places, NaN -> -inf."""
    s = np.round(np.asarray(scores, np.float64), decimals)
    return np.where(np.isnan(s), -np.inf, s)


def top_n_stable(
    scores: np.ndarray,
    n: int,
    ids: np.ndarray | None = None,
    decimals: int = RANK_DECIMALS,
) -> np.ndarray:
    """Indices of the n best of (m,) `scores`, best first (module docstring): descending by
    `rank_key(scores, decimals)`, ties by ascending `ids` (m,) (None: by position).

    O(m) + O(k log k) for the k entries that can make the top n, not a full sort."""
    key = rank_key(scores, decimals)
    m = len(key)
    tie = np.arange(m) if ids is None else np.asarray(ids)
    assert key.ndim == 1 and tie.shape == (m,), f"{key.shape=} {tie.shape=}"
    if n <= 0 or m == 0:
        return np.zeros(0, np.int64)
    if n < m:
        kth = np.partition(key, m - n)[m - n]  # the n-th largest rounded value
        cand = np.flatnonzero(key >= kth)  # every index that can be in the top n (ties too)
    else:
        cand = np.arange(m)
    order = cand[np.lexsort((tie[cand], -key[cand]))]
    return order[:n].astype(np.int64)


def top_positive(scores: np.ndarray, n: int) -> list[int]:
    """The entries of `top_n_stable(scores, n)` whose score is > 0, in that order.

    Ranked among the positive entries alone (a sparse score, e.g. item-kNN over a catalogue,
    costs O(its non-zeros) after one comparison pass), which gives the same list: the
    non-positive entries rank below every positive one whose rounded key is > 0. Only when a
    positive score rounds to 0 (it then ties with the zeros, ordered by position among them)
    and fewer than n keys are > 0 is the whole array ranked."""
    pos = np.flatnonzero(np.asarray(scores) > 0)
    if n <= 0 or len(pos) == 0:
        return []
    sub = np.asarray(scores)[pos]
    above = int(np.count_nonzero(rank_key(sub) > 0))
    if above < n and above < len(pos):  # a positive ties with the zeros: rank them all
        full = top_n_stable(scores, n).tolist()
        return [r for r in full if scores[r] > 0]
    return pos[top_n_stable(sub, n)].tolist()

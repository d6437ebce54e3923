"""The slotted explorer: a served list that follows the policy's ranking except in a bounded
number of exploration slots, each drawn by SquareCB over the items not yet placed.

`PolicyConfig.list_draw` "slotted" (`Learner.act`): positions 0..m-1 are filled in order; a
greedy slot takes the best remaining candidate (score order, `recsys.ranking.top_n_stable`),
an exploration slot (`exploration_slots`: position 0 and the last `explore_slots - 1`
positions) draws one remaining candidate from SquareCB's distribution (Foster & Rakhlin 2020,
"Beyond UCB", Algorithm 1; Vowpal Wabbit's `--squarecb`):

    p_i = 1 / (A + gamma * (s_max - s_i))  for every remaining i but the greedy one,
    p_greedy = 1 - sum of the others,

with A the number of remaining candidates and gamma = gamma_scale * sqrt(t) (VW's schedule; t:
the learner's update count), so exploration narrows as the learner has seen more, not by a
fixed temperature. Every propensity is exact and cheap (no Monte-Carlo): position 0's is its
marginal probability; a later position's is P(item at j | the items above it), 1.0 for a greedy
slot's item and the SquareCB probability for an exploration slot's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recsys.ranking import top_n_stable

__all__ = [
    "ExploreWindow",
    "SlottedDraw",
    "exploration_slots",
    "slotted_draw",
    "squarecb_gamma",
    "squarecb_probs",
]


@dataclass(frozen=True)
class ExploreWindow:
    """The slotted explorer's settings for a while (a drift alarm's window,
    `RecommendConfig.drift_explore_slots`)."""

    slots: int
    """Exploration slots; 0: the policy's own (`PolicyConfig.explore_slots`)."""
    q_weight: float = 1.0
    """Q's scores times this before the bias is added (0: the bias alone ranks)."""
    gamma_scale: float = 0.0
    """SquareCB's gamma scale; 0: the policy's own (`PolicyConfig.squarecb_gamma_scale`)."""


def squarecb_gamma(gamma_scale: float, t: int) -> float:
    """SquareCB's learning-rate parameter gamma = gamma_scale * sqrt(t) (VW: `--gamma_scale`,
    exponent 0.5); t: updates (feedbacks) the scores have learned from."""
    assert gamma_scale >= 0.0 and t >= 0, f"{gamma_scale=} {t=}"
    return gamma_scale * math.sqrt(t)


def squarecb_probs(scores: np.ndarray, gamma: float, greedy: int) -> np.ndarray:
    """(A,) SquareCB's distribution over A candidates with `scores` (higher is better):
    p_i = 1 / (A + gamma * (s_greedy - s_i)) for i != greedy, the greedy row gets the rest.

    `greedy`: row of the best score (the caller's tie rule); gamma 0 is uniform. The sum of the
    others is at most (A - 1) / A, so the greedy row keeps at least 1 / A."""
    s = np.asarray(scores, np.float64)
    a = len(s)
    assert s.ndim == 1 and 0 <= greedy < a, f"{s.shape=} {greedy=}"
    gap = np.maximum(s[greedy] - s, 0.0)
    p = 1.0 / (a + gamma * gap)
    p[greedy] = 0.0
    p[greedy] = max(1.0 - p.sum(), 0.0)
    return p / p.sum()


def exploration_slots(m: int, n_slots: int) -> np.ndarray:
    """(m,) bool: which of m positions explore: position 0 (so position 0's propensity has
    support over the whole pool) and the last `n_slots - 1` positions; none when n_slots is 0,
    all when n_slots >= m."""
    assert m >= 0 and n_slots >= 0, f"{m=} {n_slots=}"
    out = np.zeros(m, bool)
    if m == 0 or n_slots == 0:
        return out
    out[0] = True
    tail = min(n_slots - 1, m - 1)
    if tail > 0:
        out[m - tail :] = True
    return out


@dataclass(frozen=True)
class SlottedDraw:
    """One slotted list (rows into the candidates, in list order)."""

    indices: np.ndarray
    """(m,) int64 candidate rows, position 0 first."""
    pscores: np.ndarray
    """(m,) float64 P(indices[j] at position j | indices[:j]): exact; position 0's is its
    marginal probability."""
    explored: np.ndarray
    """(m,) bool: the position is an exploration slot."""
    first: np.ndarray
    """(K,) float64 P(candidate at position 0): the SquareCB distribution over the valid
    candidates when position 0 explores, else one-hot on the greedy candidate (0 where masked)."""


def slotted_draw(
    score: np.ndarray,
    mask: np.ndarray,
    ids: np.ndarray,
    m: int,
    n_slots: int,
    gamma: float,
    rng: np.random.Generator,
) -> SlottedDraw:
    """Draw m distinct valid candidates: greedy slots in score order, exploration slots
    (`exploration_slots`) from `squarecb_probs` over the candidates not yet placed.

    score, mask, ids: (K,) scores, validity and tie-break ids (`top_n_stable`: scores at
    `RANK_DECIMALS`, ties by ascending id). m <= valid candidates."""
    score = np.asarray(score, np.float64)
    assert score.shape == mask.shape == ids.shape, f"{score.shape=} {mask.shape=} {ids.shape=}"
    valid = np.flatnonzero(mask)
    assert 0 <= m <= len(valid), f"{m=} valid={len(valid)}"
    rest = valid[top_n_stable(score[valid], len(valid), ids[valid])]  # best first, ties by id
    slots = exploration_slots(m, n_slots)
    first = np.zeros(len(score), np.float64)
    idx = np.zeros(m, np.int64)
    ps = np.ones(m, np.float64)
    for j in range(m):
        if slots[j]:
            p = squarecb_probs(score[rest], gamma, 0)  # rest[0] is the greedy candidate
            k = int(rng.choice(len(rest), p=p))
            ps[j] = p[k]
            if j == 0:
                first[rest] = p
        else:
            k = 0
            if j == 0:
                first[rest[0]] = 1.0
        idx[j] = rest[k]
        rest = np.delete(rest, k)
    return SlottedDraw(idx, ps, slots, first)

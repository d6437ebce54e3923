"""Candidate items for the frozen LLM: the chosen cases' items plus item-space neighbours.

The ground truth is never added here: candidates come only from the cases' items (the past)
and from nearest neighbours of the state vector among the catalogue item vectors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from recsys.ranking import top_n_stable

__all__ = ["candidate_items", "nearest_items", "top_n_stable"]


def nearest_items(
    state_vec: np.ndarray, item_ids: np.ndarray, item_vecs: np.ndarray, n: int
) -> list[int]:
    """The `n` item ids with the largest inner product with `state_vec`, best first.

    state_vec (d,), item_ids (m,), item_vecs (m, d). Ranked by `recsys.ranking.top_n_stable`
    (scores at `RANK_DECIMALS`, ties by ascending item id). Normalise the vectors beforehand
    for cosine similarity.
    """
    assert state_vec.ndim == 1, f"{state_vec.shape=}"
    assert item_vecs.ndim == 2 and item_vecs.shape[1] == state_vec.shape[0], (
        f"{item_vecs.shape=} {state_vec.shape=}"
    )
    assert item_ids.shape == (item_vecs.shape[0],), f"{item_ids.shape=} {item_vecs.shape=}"
    if n <= 0 or len(item_ids) == 0:
        return []
    scores = item_vecs @ state_vec
    return [int(i) for i in item_ids[top_n_stable(scores, n, item_ids)]]


def candidate_items(
    case_items: Sequence[int],
    state_vec: np.ndarray,
    item_ids: np.ndarray,
    item_vecs: np.ndarray,
    n_neighbours: int,
    exclude: Iterable[int] = (),
    max_candidates: int | None = None,
) -> list[int]:
    """Case items first (in order), then state neighbours; de-duplicated, `exclude` removed.

    case_items: items of the chosen cases, best case first. n_neighbours: how many nearest
    catalogue items (by inner product with state_vec (d,)) are added after exclusion.
    max_candidates: cap on the returned list (None = no cap).
    """
    banned = {int(i) for i in exclude}
    out: list[int] = []
    seen: set[int] = set()
    for item in case_items:
        item = int(item)
        if item not in banned and item not in seen:
            seen.add(item)
            out.append(item)
    if n_neighbours > 0:
        # ask for enough neighbours to survive exclusion and de-duplication
        wanted = n_neighbours + len(banned) + len(seen)
        added = 0
        for item in nearest_items(state_vec, item_ids, item_vecs, wanted):
            if added >= n_neighbours:
                break
            if item not in banned and item not in seen:
                seen.add(item)
                out.append(item)
                added += 1
    return out if max_candidates is None else out[:max_candidates]

"""Ranking metrics for offline evaluation: pure numpy over (ranked lists, ground truth).

Conventions (the standard leave-one-out definitions, as in RecBole's full-ranking metrics):

- One decision = one ranked list (best first) and one held-out target item.
- ``rank`` is 1-based: the target's position in the list, or "absent" if it is not in it.
- HR@k  = 1 if rank <= k else 0.
- NDCG@k = 1 / log2(rank + 1) if rank <= k else 0 (the ideal DCG of one target is 1).
- MRR   = 1 / rank if the target appears anywhere in the list else 0 (so MRR is truncated at
  the list length; pass ``k`` to truncate explicitly, e.g. MRR@10 like RecBole).
- Every metric is averaged over decisions; an empty set of decisions is an error.

Multi-target decisions (a user acts on several items next): use ``targets`` sets with the
``*_multi`` helpers. HR@k counts a hit if any target is in the top k; NDCG@k uses the binary
relevance DCG over all targets in the top k divided by the ideal DCG of
``min(len(targets), k)`` hits; MRR uses the first target found. With one target each these
reduce exactly to the single-target definitions.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

import numpy as np

from training.errors import EmptyEvaluationError

__all__ = [
    "hit_rate_at_k",
    "hit_rate_at_k_multi",
    "item_coverage",
    "mrr",
    "mrr_multi",
    "ndcg_at_k",
    "ndcg_at_k_multi",
    "ranks_of_targets",
    "reward_per_decision",
    "summarize",
]


def _check_nonempty(n: int) -> None:
    if n == 0:
        raise EmptyEvaluationError("cannot compute a metric over zero decisions")


def _check_k(k: int) -> None:
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")


def ranks_of_targets(ranked: Sequence[Sequence[int]], targets: Sequence[int]) -> np.ndarray:
    """1-based rank of each decision's target in its ranked list; 0 where it is absent.

    Shapes: ``ranked`` has D lists (any lengths), ``targets`` has D items; returns int64 (D,).
    """
    assert len(ranked) == len(targets), f"{len(ranked)=} {len(targets)=}"
    out = np.zeros(len(targets), dtype=np.int64)
    for i, (items, target) in enumerate(zip(ranked, targets, strict=True)):
        for pos, item in enumerate(items):
            if item == target:
                out[i] = pos + 1
                break
    return out


def hit_rate_at_k(ranked: Sequence[Sequence[int]], targets: Sequence[int], k: int) -> float:
    """HR@k: fraction of decisions whose target is in the top k."""
    _check_k(k)
    _check_nonempty(len(targets))
    r = ranks_of_targets(ranked, targets)
    return float(np.mean((r > 0) & (r <= k)))


def ndcg_at_k(ranked: Sequence[Sequence[int]], targets: Sequence[int], k: int) -> float:
    """NDCG@k with one target per decision: mean of 1/log2(rank+1) for rank <= k, else 0."""
    _check_k(k)
    _check_nonempty(len(targets))
    r = ranks_of_targets(ranked, targets)
    hit = (r > 0) & (r <= k)
    gains = np.where(hit, 1.0 / np.log2(np.maximum(r, 1) + 1.0), 0.0)
    return float(np.mean(gains))


def mrr(ranked: Sequence[Sequence[int]], targets: Sequence[int], k: int | None = None) -> float:
    """Mean reciprocal rank: 1/rank of the target (0 if absent, or if rank > k when k given)."""
    if k is not None:
        _check_k(k)
    _check_nonempty(len(targets))
    r = ranks_of_targets(ranked, targets)
    hit = r > 0 if k is None else (r > 0) & (r <= k)
    return float(np.mean(np.where(hit, 1.0 / np.maximum(r, 1), 0.0)))


def _multi_ranks(items: Sequence[int], targets: Collection[int]) -> list[int]:
    return [pos + 1 for pos, item in enumerate(items) if item in targets]


def hit_rate_at_k_multi(
    ranked: Sequence[Sequence[int]], targets: Sequence[Collection[int]], k: int
) -> float:
    """HR@k with target sets: a hit if any target is in the top k."""
    _check_k(k)
    _check_nonempty(len(targets))
    assert len(ranked) == len(targets), f"{len(ranked)=} {len(targets)=}"
    hits = [
        any(r <= k for r in _multi_ranks(items, t))
        for items, t in zip(ranked, targets, strict=True)
    ]
    return float(np.mean(hits))


def ndcg_at_k_multi(
    ranked: Sequence[Sequence[int]], targets: Sequence[Collection[int]], k: int
) -> float:
    """NDCG@k with binary relevance over target sets, ideal DCG of min(|targets|, k) hits."""
    _check_k(k)
    _check_nonempty(len(targets))
    assert len(ranked) == len(targets), f"{len(ranked)=} {len(targets)=}"
    values = []
    for items, t in zip(ranked, targets, strict=True):
        if len(t) == 0:
            raise ValueError("a decision with an empty target set has no defined NDCG")
        dcg = sum(1.0 / np.log2(r + 1.0) for r in _multi_ranks(items, t) if r <= k)
        idcg = sum(1.0 / np.log2(i + 2.0) for i in range(min(len(t), k)))
        values.append(dcg / idcg)
    return float(np.mean(values))


def mrr_multi(
    ranked: Sequence[Sequence[int]], targets: Sequence[Collection[int]], k: int | None = None
) -> float:
    """MRR with target sets: reciprocal rank of the first target found (0 if none)."""
    _check_nonempty(len(targets))
    assert len(ranked) == len(targets), f"{len(ranked)=} {len(targets)=}"
    values = []
    for items, t in zip(ranked, targets, strict=True):
        rs = [r for r in _multi_ranks(items, t) if k is None or r <= k]
        values.append(1.0 / rs[0] if rs else 0.0)
    return float(np.mean(values))


def reward_per_decision(rewards: Sequence[float] | np.ndarray) -> float:
    """Mean reward over decisions (0 rewards for unanswered lists count in the denominator)."""
    arr = np.asarray(rewards, dtype=np.float64)
    _check_nonempty(arr.size)
    return float(arr.mean())


def item_coverage(ranked: Iterable[Sequence[int]], n_items: int, k: int | None = None) -> float:
    """Fraction of the catalog (``n_items`` items) that appears in any top-k list."""
    if n_items <= 0:
        raise ValueError(f"n_items must be positive, got {n_items}")
    if k is not None:
        _check_k(k)
    seen: set[int] = set()
    for items in ranked:
        seen.update(items if k is None else items[:k])
    return len(seen) / n_items


def summarize(
    ranked: Sequence[Sequence[int]],
    targets: Sequence[int],
    n_items: int,
    rewards: Sequence[float] | None = None,
    ks: Sequence[int] = (5, 10, 20),
) -> dict[str, float]:
    """All evaluation metrics in one dict with the project's metric names.

    Keys: ``hr@k`` for each k, ``ndcg@10``, ``mrr``, ``coverage@10`` and, when rewards are
    given, ``reward_per_decision``.
    """
    out: dict[str, float] = {f"hr@{k}": hit_rate_at_k(ranked, targets, k) for k in ks}
    out["ndcg@10"] = ndcg_at_k(ranked, targets, 10)
    out["mrr"] = mrr(ranked, targets)
    out["coverage@10"] = item_coverage(ranked, n_items, 10)
    if rewards is not None:
        out["reward_per_decision"] = reward_per_decision(rewards)
    return out

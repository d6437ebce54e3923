"""`case_sums` and the seen-item look-ups, vectorised, equal bit for bit a loop over the
retrieved cases and the pool (the straightforward computation they replaced)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.rec.item_features import (
    ItemEvidence,
    case_sums,
    case_weights,
    exam_weight,
    item_feature_matrix,
)

N_ITEMS = 12


def _evidence(seed: int) -> tuple[list[int], ItemEvidence]:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(0, 9))
    case_rows = [
        tuple(int(r) for r in rng.choice(N_ITEMS, int(rng.integers(0, 4)), replace=False))
        for _ in range(k)
    ]
    seen = rng.choice(N_ITEMS, int(rng.integers(0, 5)), replace=False).tolist()
    pool = rng.permutation(N_ITEMS)[: int(rng.integers(1, N_ITEMS))].tolist()
    ev = ItemEvidence(
        nb_sim=rng.uniform(-1, 1, N_ITEMS),
        pop=rng.uniform(0, 5, N_ITEMS),
        knn=rng.uniform(0, 1, N_ITEMS),
        knn_last=rng.uniform(0, 1, N_ITEMS),
        nxt=rng.uniform(0, 1, N_ITEMS),
        seen_count={int(r): int(rng.integers(1, 4)) for r in seen},
        seen_last_ts={int(r): float(rng.uniform(0, 1e5)) for r in seen},
        last_vec=None,
        case_rows=case_rows,
        case_sims=rng.uniform(-0.2, 1, k).astype(np.float32),
        case_rewards=rng.choice([0.0, 0.0, 1.0, 2.5], k).astype(np.float32),
        case_ids=rng.integers(0, 10_000, k),
        case_age_hours=rng.uniform(0, 100, k),
        case_positions=rng.integers(-1, 10, k),
        half_life_hours=24.0,
    )
    return pool, ev


def _loop_sums(pool: list[int], ev: ItemEvidence) -> dict[str, object]:
    """The cases x items loop `case_sums` was before it was vectorised."""
    p = len(pool)
    at = {r: k for k, r in enumerate(pool)}
    votes, max_sim, outcome, exams, count = (np.zeros(p) for _ in range(5))
    best, support = np.full(p, -1, np.int64), {}
    sims = np.maximum(ev.case_sims.astype(np.float64), 0.0)
    w = case_weights(ev)
    total = float(w.sum()) or 1.0
    assert ev.case_positions is not None
    exam = exam_weight(ev.case_positions)
    for c, items in enumerate(ev.case_rows):
        for r in items:
            k = at.get(r)
            if k is None:
                continue
            votes[k] += w[c] / total
            max_sim[k] = max(max_sim[k], sims[c])
            outcome[k] += w[c] * float(ev.case_rewards[c])
            exams[k] += w[c] * exam[c]
            count[k] += 1
            if best[k] < 0:
                best[k] = c
            support.setdefault(r, []).append(int(ev.case_ids[c]))
    return dict(
        votes=votes, max_sim=max_sim, outcome=outcome, exams=exams, count=count, best=best,
        support=support,
    )  # fmt: skip


@settings(max_examples=60)
@given(st.integers(0, 100_000))
def test_case_sums_equal_the_loop_over_cases(seed: int) -> None:
    """Every sum, the best rank and the supporting case ids, bit for bit."""
    pool, ev = _evidence(seed)
    got = case_sums(pool, ev)
    want = _loop_sums(pool, ev)
    for name, value in want.items():
        if name == "support":
            assert got.support == value
        else:
            assert np.array_equal(getattr(got, name), value), name


@settings(max_examples=60)
@given(st.integers(0, 100_000))
def test_seen_features_equal_a_look_up_per_pool_item(seed: int) -> None:
    """seen_log_count and seen_recency: log1p(count) and exp(-hours / 72) per pool item."""
    pool, ev = _evidence(seed)
    now = 2e5
    cands, _ = item_feature_matrix(pool, ev, np.eye(N_ITEMS, dtype=np.float32), now)
    seen = np.array([ev.seen_count.get(r, 0) for r in pool], np.float64)
    age = np.array([(now - ev.seen_last_ts.get(r, -np.inf)) / 3600.0 for r in pool])
    assert np.array_equal(cands.features[:, 14], np.log1p(seen).astype(np.float32))
    assert np.array_equal(
        cands.features[:, 15], np.exp(-np.maximum(age, 0) / 72).astype(np.float32)
    )

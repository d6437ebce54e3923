"""Candidate items from chosen cases plus item-space neighbours."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.rec.candidates import candidate_items, nearest_items


def test_nearest_items_brute_force_oracle() -> None:
    """Neighbours equal a brute-force loop over inner products."""
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(50, 8)).astype(np.float32)
    ids = np.arange(1000, 1050)
    state = rng.normal(size=8).astype(np.float32)
    brute = sorted(ids.tolist(), key=lambda i: -float(vecs[i - 1000] @ state))[:7]
    assert nearest_items(state, ids, vecs, 7) == brute


def test_cases_first_then_neighbours_dedup_and_exclude() -> None:
    """Case items keep their order, duplicates and excluded items are removed, neighbours fill."""
    ids = np.array([10, 20, 30, 40])
    vecs = np.array([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.5, 0.5]])
    state = np.array([1.0, 0.0])
    got = candidate_items([30, 30, 99, 10], state, ids, vecs, n_neighbours=2, exclude=[99])
    # neighbours by score: 10, 20, 40, 30 -> 10 and 30 already present -> 20, 40
    assert got == [30, 10, 20, 40]


@settings(max_examples=50, deadline=None)
@given(
    case_items=st.lists(st.integers(0, 29), max_size=10),
    exclude=st.sets(st.integers(0, 29), max_size=10),
    n=st.integers(0, 15),
    seed=st.integers(0, 1000),
)
def test_candidate_properties(case_items: list[int], exclude: set[int], n: int, seed: int) -> None:
    """Unique, never excluded, contains every allowed case item, and n neighbours when possible."""
    rng = np.random.default_rng(seed)
    ids = np.arange(30)
    vecs = rng.normal(size=(30, 4))
    got = candidate_items(case_items, rng.normal(size=4), ids, vecs, n, exclude)
    assert len(got) == len(set(got))
    assert not set(got) & exclude
    allowed_cases = [c for c in dict.fromkeys(case_items) if c not in exclude]
    assert got[: len(allowed_cases)] == allowed_cases
    available = 30 - len(exclude | set(allowed_cases))
    assert len(got) - len(allowed_cases) == min(n, available)


@given(
    st.lists(st.integers(0, 4), min_size=1, max_size=60),
    st.integers(0, 70),
)
def test_top_n_stable_equals_a_stable_full_sort(values: list[int], n: int) -> None:
    """The partial top-n equals the first n of a stable argsort, ties included (n = 0: none)."""
    from recsys.rec.candidates import top_n_stable

    s = np.array(values, float)
    np.testing.assert_array_equal(top_n_stable(s, n), np.argsort(-s, kind="stable")[:n])

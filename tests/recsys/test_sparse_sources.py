"""The items scorer's sparse shortcuts give what the catalogue-wide computation gives:
item-kNN over a co-occurrence row, successions, the top positive entries of a score,
popularity's top."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from recsys.ranking import top_n_stable, top_positive
from recsys.rec.cooccurrence import Cooccurrence
from recsys.rec.popularity import Popularity


def _fitted(seed: int, n_items: int = 30) -> Cooccurrence:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 12, size=120).astype(str)
    rows = rng.integers(0, n_items, size=120)
    return Cooccurrence.fit(users, rows, n_items, rng.uniform(0.2, 1.0, size=120))


@given(st.integers(0, 10_000), st.sampled_from([None, "3", "7", "nobody"]))
def test_scores_without_equals_the_dense_formula(seed: int, user: str | None) -> None:
    """Row by row, bit for bit the catalogue-wide cosine sum, with and without a user left out."""
    co = _fitted(seed)
    recent = np.random.default_rng(seed + 1).integers(0, 32, size=6).tolist()  # 30, 31: unknown
    got = co.scores_without(user, recent, decay=0.9)
    assert np.array_equal(got, co._scores_dense(user, recent, decay=0.9))


@given(st.integers(0, 10_000), st.sampled_from([None, "3", "7"]))
def test_next_scores_equal_the_dense_formula(seed: int, user: str | None) -> None:
    """Successions: bit for bit sum_t decay^t * row_t / row_t.sum() over whole dense rows."""
    co = _fitted(seed)
    assert co.succ is not None
    recent = np.random.default_rng(seed + 2).integers(0, 32, size=4).tolist()
    own_src, own_dst = co.user_steps.get(str(user), (None, None)) if user else (None, None)
    want = np.zeros(30)
    for t, h in enumerate(recent):
        if h >= 30:
            continue
        row = np.asarray(co.succ[h].toarray(), np.float64).ravel()
        if own_src is not None and own_dst is not None:
            np.subtract.at(row, own_dst[own_src == h], 1.0)
        if row.sum() > 0:
            want += 0.5**t * row / float(row.sum())
    assert np.array_equal(co.next_scores_without(user, recent, decay=0.5), want)


def test_scores_without_adds_up_duplicate_entries() -> None:
    """A non-canonical CSR row (a column twice) counts the sum, as the dense row does."""
    co = sp.csr_matrix(
        (np.array([1.0, 2.0, 4.0]), np.array([2, 1, 2]), np.array([0, 3, 3, 3])), shape=(3, 3)
    )
    co.has_canonical_format = False
    counts = Cooccurrence(co, np.array([5.0, 3.0, 6.0]))
    got = counts.scores_without(None, [0], decay=1.0)
    assert np.allclose(got, [0.0, 2.0 / np.sqrt(15.0), 5.0 / np.sqrt(30.0)])
    assert np.array_equal(got, counts._scores_dense(None, [0], decay=1.0))


sparse_scores = st.integers(1, 60).flatmap(
    lambda m: st.tuples(
        st.lists(
            st.sampled_from([0.0, 0.0, 0.0, -1.0, 1e-8, 3e-7, 0.25, 0.5, 0.5, 2.0]),
            min_size=m,
            max_size=m,
        ),
        st.integers(0, m + 3),
    )
)


@given(sparse_scores)
def test_top_positive_is_the_positive_part_of_top_n_stable(case: tuple[list[float], int]) -> None:
    """Ties, negatives and positives that round to 0 included: the filtered full ranking."""
    values, n = case
    s = np.array(values)
    want = [r for r in top_n_stable(s, n).tolist() if s[r] > 0]
    assert top_positive(s, n) == want


def test_popularity_top_positive_follows_new_events() -> None:
    """Cached between requests with the same counted events, recomputed after an append."""
    pop = Popularity(6, np.array([3, 3, 1, 5]), np.array([1.0, 2.0, 3.0, 4.0]))
    s = pop.scores(10.0)
    assert pop.top_positive(s, 2) == (3, 1)
    assert pop.scores(11.0) is s
    assert pop.top_positive(pop.scores(11.0), 2) == (3, 1)
    pop.add(np.array([5, 5]), np.array([5.0, 6.0]))
    assert pop.scores(12.0) is not s
    assert pop.top_positive(pop.scores(12.0), 2) == (5, 3)
    assert pop.top_positive(pop.scores(4.5), 5) == (3, 1, 5)

"""`recsys.ranking.top_n_stable`: rounding, id tie-break, permutation invariance, and its
call sites (greedy policy, as-of case retrieval) ordering exact ties by id."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from recsys.config import CaseBankConfig, LearnerConfig
from recsys.memory.case_bank import CaseBank
from recsys.ranking import RANK_DECIMALS, top_n_stable
from recsys.records import CASE_FEATURES, Candidates, Case
from recsys.rl.learner import Learner
from recsys.rl.policy import greedy_top_m

GRID = 10.0**-RANK_DECIMALS

scores_and_ids = st.integers(1, 40).flatmap(
    lambda m: st.tuples(
        st.lists(st.integers(-5, 5), min_size=m, max_size=m),  # coarse levels: many ties
        st.lists(st.floats(-0.4, 0.4), min_size=m, max_size=m),  # noise below half the grid
        st.permutations(list(range(1000, 1000 + m))),  # distinct ids, in any order
        st.integers(0, m + 2),
    )
)


@given(scores_and_ids)
def test_equal_after_rounding_orders_by_id(
    case: tuple[list[int], list[float], list[int], int],
) -> None:
    """Scores that differ by less than the grid rank as equal: by level, then ascending id."""
    levels, noise, ids, n = case
    s = np.array(levels, np.float64) * 1e-3 + np.array(noise) * GRID
    got = np.asarray(ids)[top_n_stable(s, n, np.asarray(ids))].tolist()
    want = [i for _, i in sorted(zip((-v for v in levels), ids, strict=True))][:n]
    assert got == want


@given(scores_and_ids, st.randoms(use_true_random=False))
def test_order_is_permutation_invariant(
    case: tuple[list[int], list[float], list[int], int], rnd: object
) -> None:
    """Shuffling (score, id) pairs leaves the ranked ids unchanged."""
    levels, noise, ids, n = case
    s = np.array(levels, np.float64) * 1e-3 + np.array(noise) * GRID
    ids_a = np.asarray(ids)
    perm = np.arange(len(s))
    rnd.shuffle(perm)  # type: ignore[attr-defined]
    first = ids_a[top_n_stable(s, n, ids_a)]
    second = ids_a[perm][top_n_stable(s[perm], n, ids_a[perm])]
    np.testing.assert_array_equal(first, second)


def test_rounding_oracle_and_non_finite_scores() -> None:
    """Hand-checked: 0.3000004 ties 0.3 (id order), 0.300002 beats both, NaN and -inf go last."""
    s = np.array([0.3, np.nan, 0.3000004, -np.inf, 0.300002, 0.1])
    ids = np.array([9, 1, 2, 0, 7, 5])
    assert top_n_stable(s, 6, ids).tolist() == [4, 2, 0, 5, 3, 1]
    assert top_n_stable(s, 2, ids).tolist() == [4, 2]
    assert top_n_stable(s, 0, ids).tolist() == []


def test_greedy_top_m_skips_masked_and_breaks_ties_by_id() -> None:
    """Greedy choice ranks Q at the grid: a 1e-9 lead loses to a lower id, masked never wins."""
    q = torch.tensor([[0.5, 0.5 + 1e-9, 0.9, 0.2]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False, True]])
    ids = np.array([[31, 30, 10, 20]])
    assert greedy_top_m(q, mask, 3, ids).tolist() == [[1, 0, 3]]
    assert greedy_top_m(q, mask, 3).tolist() == [[0, 1, 3]]  # no ids: position


def test_learner_greedy_picks_identical_candidates_by_case_id() -> None:
    """Identical candidates (same key, features) are chosen in ascending case id."""
    d = 8
    learner = Learner(LearnerConfig(mode="soft-q"), d, d)
    rng = np.random.default_rng(0)
    key = rng.normal(size=d).astype(np.float32)
    feats = rng.uniform(size=len(CASE_FEATURES)).astype(np.float32)
    cands = Candidates(
        case_ids=np.array([57, 12, 33, 40], np.int64),
        keys=np.stack([key] * 4),
        sims=np.full(4, 0.5, np.float32),
        features=np.stack([feats] * 4),
        mask=np.ones(4, bool),
    )
    choice = learner.act(rng.normal(size=d).astype(np.float32), cands, 4, greedy=True)
    assert choice.case_ids.tolist() == [12, 33, 40, 57]


def test_as_of_search_orders_equal_keys_by_case_id() -> None:
    """Cases with the same key come back in ascending id with bit-identical similarities."""
    d = 16
    bank = CaseBank(CaseBankConfig(merge_threshold=2.0), d)
    rng = np.random.default_rng(3)
    twin = rng.normal(size=d).astype(np.float32)
    keys = [rng.normal(size=d).astype(np.float32) for _ in range(40)] + [twin] * 5
    bank.write_batch([Case(key=k, payload={}, reward=0.0, ts=float(i)) for i, k in enumerate(keys)])
    got = bank.search(twin + 0.01, 8, now=100.0, before=100.0)
    top = got.case_ids[:5].tolist()
    assert top == [40, 41, 42, 43, 44], top
    assert len(set(got.sims[:5].tolist())) == 1

"""EASE baseline: closed form by hand, against the per-column regression, lambda selection."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from bench.errors import NotFittedError
from bench.replay.baselines import EASE, Ranker
from bench.replay.tuning import select_ease_lambda
from tests.training.frames import minute_frame
from training.metrics import ndcg_at_k


def _frame(rows: list[tuple[int, int, int]]) -> pl.DataFrame:
    """(user, item, minute) rows as an interaction frame."""
    return minute_frame(rows)


def _users(groups: list[tuple[list[int], int]]) -> list[tuple[int, int, int]]:
    """``count`` users per item list, each list's items at minutes 0, 1, ..."""
    rows, u = [], 0
    for items, count in groups:
        for _ in range(count):
            rows += [(u, i, k) for k, i in enumerate(items)]
            u += 1
    return rows


def test_two_items_by_hand() -> None:
    """Users {10, 11} and {10}: G = [[2,1],[1,1]], lam 1 gives P = [[2,-1],[-1,3]]/5, so
    B[10->11] = 1/3 and B[11->10] = 1/2."""
    ease = EASE(lam=1.0).fit(_frame([(0, 10, 0), (0, 11, 1), (1, 10, 0)]))
    assert ease.items is not None and ease.items.tolist() == [10, 11]
    assert ease.weights == pytest.approx(np.array([[0.0, 1 / 3], [1 / 2, 0.0]]))
    assert ease.scores([10]) == pytest.approx([0.0, 1 / 3])
    assert ease.scores([11, 11]) == pytest.approx([0.5, 0.0])  # repeats count once


def test_diagonal_zero_and_equal_to_per_column_regression() -> None:
    """B has a zero diagonal and each column solves the constrained ridge regression
    min ||X_j - X B_j||^2 + lam ||B_j||^2 with B_jj = 0 (Steck 2019, eq. 1), solved directly."""
    rng = np.random.default_rng(0)
    rows = [(u, int(i), k) for u in range(40) for k, i in enumerate(rng.choice(12, 5))]
    lam = 3.0
    ease = EASE(lam=lam).fit(_frame(rows))
    b = ease.weights
    assert b is not None and ease.items is not None
    assert np.all(np.diag(b) == 0.0)
    col = {int(i): k for k, i in enumerate(ease.items)}
    x = np.zeros((40, len(ease.items)))
    for u, i, _ in rows:
        x[u, col[i]] = 1.0
    for j in range(x.shape[1]):
        rest = [k for k in range(x.shape[1]) if k != j]
        xr = x[:, rest]
        w = np.linalg.solve(xr.T @ xr + lam * np.eye(len(rest)), xr.T @ x[:, j])
        assert b[rest, j] == pytest.approx(w, abs=1e-9)


def test_rank_excludes_and_falls_back_to_popularity() -> None:
    """A cold or unknown history ranks by popularity then id; exclude is honoured."""
    rows = _users([([1, 2], 3), ([2, 3], 2), ([4], 1)])
    ease: Ranker = EASE(lam=10.0, catalog=[99]).fit(_frame(rows))
    assert ease.rank(0, [], 10, set()) == [2, 1, 3, 4, 99]
    assert ease.rank(0, [777], 10, set()) == [2, 1, 3, 4, 99]
    assert ease.rank(0, [1], 2, {1})[0] == 2


def test_errors() -> None:
    """Use before fit, a non-positive lambda and an oversized catalog are refused."""
    with pytest.raises(NotFittedError):
        EASE().scores([1])
    tiny = _frame([(0, 1, 0), (0, 2, 1)])
    with pytest.raises(ValueError, match="positive"):
        EASE(lam=0.0).fit(tiny)
    with pytest.raises(ValueError, match="exceed"):
        EASE(catalog=range(20_001)).fit(tiny)


# A predicts N; P is explained by B (always together), yet co-occurs with A more than N does:
# a small lambda (regression explains P away) ranks N first after A, a large one (close to raw
# co-occurrence counts) ranks P first.
A, B, N, P = 1, 2, 3, 4
PLANTED = _users([([A, B, P], 20), ([B, P], 20), ([A, N], 10), ([A], 5)])
VALID = [(u, N, 10) for u in range(50, 55)]  # the five users with train history [A]


def test_lambda_selection_on_planted_example() -> None:
    """The curve matches EASE's own rankings per lambda; ties go to the first in the grid."""
    train, valid = _frame(PLANTED), _frame(VALID)
    assert EASE(lam=1.0).fit(train).rank(50, [A], 1, set()) == [N]
    assert EASE(lam=1000.0).fit(train).rank(50, [A], 1, set()) == [P]
    best, curve = select_ease_lambda(train, valid, grid=(1000, 100, 10, 1))
    assert best == 10.0
    assert list(curve) == [1000.0, 100.0, 10.0, 1.0]
    for lam, value in curve.items():
        ease = EASE(lam=lam).fit(train)
        assert value == pytest.approx(ndcg_at_k([ease.rank(50, [A], 10, set())] * 5, [N] * 5, 10))
    assert curve[10.0] == 1.0 and curve[1000.0] < 1.0


def test_lambda_selection_uses_only_earlier_train_items() -> None:
    """A valid row sees only its user's train items before its ts: a later train row of the
    same user does not enter the history."""
    train = _frame([*PLANTED, (50, B, 20)])  # after the valid row of user 50
    valid = _frame(VALID)
    _, curve = select_ease_lambda(train, valid, grid=(1,))
    assert curve[1.0] == 1.0  # history [A] for every row, N ranked first


def test_lambda_selection_can_exclude_seen_items() -> None:
    """With exclude_seen a row's history items leave its list: a user who re-acts on a seen
    item scores 0 then, and 1 without the rule."""
    train = _frame(PLANTED)
    valid = _frame([(50, A, 10)])  # user 50 (history [A]) acts on A again
    _, kept = select_ease_lambda(train, valid, grid=(1,))
    _, dropped = select_ease_lambda(train, valid, grid=(1,), exclude_seen=True)
    assert kept[1.0] > 0.0 and dropped[1.0] == 0.0

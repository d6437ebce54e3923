"""Popularity and item-kNN baselines on tiny hand-made interaction frames."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import polars as pl
import pytest

from bench.errors import NotFittedError
from bench.replay.baselines import ItemKNN, ItemKNNConfig, Popularity, Ranker


def _frame(rows: list[tuple[int, int]]) -> pl.DataFrame:
    """Interactions (user, item) with increasing timestamps."""
    t0 = datetime(2014, 9, 1)
    return pl.DataFrame(
        {
            "user_id": [u for u, _ in rows],
            "item_id": [i for _, i in rows],
            "action": ["click"] * len(rows),
            "ts": [t0 + timedelta(minutes=k) for k in range(len(rows))],
        },
        schema={
            "user_id": pl.Int64,
            "item_id": pl.Int64,
            "action": pl.String,
            "ts": pl.Datetime("us"),
        },
    )


# user 1: 10, 11; user 2: 10, 11, 12; user 3: 12, 13; user 4: 10
TRAIN = _frame([(1, 10), (1, 11), (2, 10), (2, 11), (2, 12), (3, 12), (3, 13), (4, 10)])


def test_popularity_orders_by_count_then_id() -> None:
    """Item 10 (3 events) first, then 11 and 12 (2 each, id order), then 13; extras last."""
    pop = Popularity(catalog=[99]).fit(TRAIN)
    assert pop.rank(7, [], 10, set()) == [10, 11, 12, 13, 99]
    assert pop.rank(7, [], 2, {10}) == [11, 12]


def test_popularity_ignores_future_rows_not_given() -> None:
    """Only the frame passed to fit counts: a later burst on item 13 is not seen."""
    future = _frame([(5, 13)] * 5)
    pop = Popularity().fit(TRAIN)
    assert pop.rank(1, [], 1, set())[0] == 10
    pop_all = Popularity().fit(pl.concat([TRAIN, future]))
    assert pop_all.rank(1, [], 1, set())[0] == 13


def test_itemknn_cosine_by_hand() -> None:
    """sim(12, 11) = 1/sqrt(2*2) = 0.5, sim(12, 13) = 1/sqrt(2*1); history [12] ranks 13 first."""
    knn = ItemKNN(ItemKNNConfig(recent=1)).fit(TRAIN)
    s = dict(zip(knn.items.tolist(), knn.scores([12]).tolist(), strict=True))  # type: ignore[union-attr]
    assert s[13] == pytest.approx(1 / math.sqrt(2))
    assert s[11] == pytest.approx(0.5)
    assert s[10] == pytest.approx(1 / math.sqrt(2 * 3))
    assert s[12] == 0.0
    assert knn.rank(3, [12], 3, {12}) == [13, 11, 10]


def test_itemknn_recent_window_and_decay() -> None:
    """With recent=1 only the latest item counts; with decay the latest item dominates."""
    knn1 = ItemKNN(ItemKNNConfig(recent=1)).fit(TRAIN)
    assert knn1.rank(9, [13, 10], 1, {10, 13}) == [11]
    knn2 = ItemKNN(ItemKNNConfig(recent=2, decay=0.1)).fit(TRAIN)
    assert knn2.rank(9, [13, 10], 1, {10, 13}) == [11]
    knn3 = ItemKNN(ItemKNNConfig(recent=2, decay=1.0)).fit(TRAIN)
    # 12 gets 1/sqrt(2) (from 13) + 1/sqrt(6) (from 10) > 11's 2/sqrt(6) from 10 alone
    assert knn3.rank(9, [13, 10], 1, {10, 13}) == [12]


def test_itemknn_cold_user_falls_back_to_popularity() -> None:
    """An empty or unknown history gives the popularity order over the full catalog."""
    knn = ItemKNN(catalog=[50]).fit(TRAIN)
    assert knn.rank(0, [], 10, set()) == [10, 11, 12, 13, 50]
    assert knn.rank(0, [777], 10, set()) == [10, 11, 12, 13, 50]


def test_rank_before_fit_raises_and_protocol() -> None:
    """Unfitted baselines raise a named error; both satisfy the Ranker protocol."""
    with pytest.raises(NotFittedError):
        Popularity().rank(1, [], 5, set())
    with pytest.raises(NotFittedError):
        ItemKNN().rank(1, [10], 5, set())
    rankers: list[Ranker] = [Popularity(), ItemKNN()]
    assert len(rankers) == 2

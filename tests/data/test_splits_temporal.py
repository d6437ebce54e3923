"""Temporal splits never let a later period leak into an earlier one."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from data.splits import leave_last_out, temporal_split

T0 = datetime(2014, 9, 1)


def _frame(rows: list[tuple[int, int, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": [u for u, _, _ in rows],
            "item_id": [i for _, i, _ in rows],
            "ts": [T0 + timedelta(minutes=m) for _, _, m in rows],
        },
        schema={"user_id": pl.Int64, "item_id": pl.Int64, "ts": pl.Datetime("us")},
    )


rows_strategy = st.lists(
    st.tuples(st.integers(1, 5), st.integers(1, 50), st.integers(0, 300)), min_size=1, max_size=60
)


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy, a=st.integers(0, 300), b=st.integers(0, 300))
def test_time_cutoff_partitions_without_leakage(
    rows: list[tuple[int, int, int]], a: int, b: int
) -> None:
    """Every row lands in exactly one part and train < valid_start <= valid < test_start <= test."""
    df = _frame(rows)
    v, t = T0 + timedelta(minutes=min(a, b)), T0 + timedelta(minutes=max(a, b))
    s = temporal_split(df, v, t)
    assert s.train.height + s.valid.height + s.test.height == df.height
    assert all(x < v for x in s.train["ts"])
    assert all(v <= x < t for x in s.valid["ts"])
    assert all(x >= t for x in s.test["ts"])


def test_time_cutoff_by_fraction() -> None:
    """Default fractions put the latest ~10% in test and the next ~10% in valid."""
    df = _frame([(1, i, i) for i in range(100)])
    s = temporal_split(df)
    assert (s.train.height, s.valid.height, s.test.height) == (80, 10, 10)
    assert s.train["ts"].max() < s.valid["ts"].min()  # type: ignore[operator]


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy)
def test_leave_last_out_per_user_order(rows: list[tuple[int, int, int]]) -> None:
    """Per user: train ts <= valid ts <= test ts, test is the user's last event, nothing lost."""
    df = _frame(rows)
    s = leave_last_out(df)
    assert s.train.height + s.valid.height + s.test.height == df.height
    assert s.test["user_id"].n_unique() == s.test.height == df["user_id"].n_unique()
    for user in df["user_id"].unique():
        tr = s.train.filter(pl.col("user_id") == user)["ts"]
        va = s.valid.filter(pl.col("user_id") == user)["ts"]
        te = s.test.filter(pl.col("user_id") == user)["ts"]
        assert te.item() == df.filter(pl.col("user_id") == user)["ts"].max()
        later = list(va) + list(te)
        assert all(x <= y for x in tr for y in later)
        assert all(x <= y for x in va for y in te)


def test_leave_last_out_ties_keep_input_order() -> None:
    """With equal timestamps the later input row is the held-out one (stable order)."""
    df = _frame([(1, 10, 5), (1, 11, 5), (1, 12, 5)])
    s = leave_last_out(df)
    assert s.test["item_id"].to_list() == [12]
    assert s.valid["item_id"].to_list() == [11]
    assert s.train["item_id"].to_list() == [10]

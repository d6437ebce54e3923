"""Temporal splits: nothing from a later period leaks into an earlier one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl


@dataclass(frozen=True)
class Split:
    """Train / valid / test interaction tables."""

    train: pl.DataFrame
    """Earliest rows."""
    valid: pl.DataFrame
    """Middle rows."""
    test: pl.DataFrame
    """Latest rows."""


def time_cutoffs(
    interactions: pl.DataFrame, valid_fraction: float = 0.1, test_fraction: float = 0.1
) -> tuple[datetime, datetime]:
    """(valid_start, test_start): timestamps at the given quantiles of `ts` from the end."""
    assert valid_fraction >= 0 and test_fraction >= 0 and valid_fraction + test_fraction < 1, (
        f"{valid_fraction=} {test_fraction=}"
    )
    ts = interactions["ts"]
    valid_start = ts.quantile(1 - valid_fraction - test_fraction, "higher")
    test_start = ts.quantile(1 - test_fraction, "higher")
    assert isinstance(valid_start, datetime) and isinstance(test_start, datetime)
    return valid_start, test_start


def temporal_split(
    interactions: pl.DataFrame,
    valid_start: datetime | None = None,
    test_start: datetime | None = None,
    *,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> Split:
    """Global time cutoff: train ts < valid_start <= valid ts < test_start <= test ts.

    Cutoffs default to the quantiles given by the fractions. Order inside each part is kept.
    """
    if valid_start is None or test_start is None:
        q_valid, q_test = time_cutoffs(interactions, valid_fraction, test_fraction)
        valid_start = valid_start or q_valid
        test_start = test_start or q_test
    assert valid_start <= test_start, f"{valid_start=} must not be after {test_start=}"
    ts = pl.col("ts")
    return Split(
        train=interactions.filter(ts < valid_start),
        valid=interactions.filter((ts >= valid_start) & (ts < test_start)),
        test=interactions.filter(ts >= test_start),
    )


def leave_last_out(interactions: pl.DataFrame, *, with_valid: bool = True) -> Split:
    """Per user in time order: last event -> test, the one before -> valid, the rest -> train.

    Ties in `ts` keep the input order (stable sort), so for every user all train rows come
    no later than the valid row, which comes no later than the test row. Users with a single
    event only get a test row; with two, a valid and a test row (valid empty if not with_valid).
    """
    df = interactions.with_row_index("_pos").sort(["user_id", "ts", "_pos"])
    df = df.with_columns(
        _rank=pl.int_range(pl.len(), 0, -1).over("user_id")  # 1 = last event of the user
    )
    test = df.filter(pl.col("_rank") == 1)
    valid_mask = pl.col("_rank") == 2 if with_valid else pl.lit(False)
    valid = df.filter(valid_mask)
    train = df.filter((pl.col("_rank") > 1) & ~valid_mask)

    def restore(part: pl.DataFrame) -> pl.DataFrame:
        return part.sort("_pos").drop("_pos", "_rank")

    return Split(train=restore(train), valid=restore(valid), test=restore(test))

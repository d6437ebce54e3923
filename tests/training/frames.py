"""Small interaction frames for the baseline and peer tests."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl


def minute_frame(
    rows: list[tuple[int, int, int]], t0: datetime = datetime(2020, 1, 1)
) -> pl.DataFrame:
    """(user, item, minute after t0) rows as an interaction frame."""
    return pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "ts": [t0 + timedelta(minutes=r[2]) for r in rows],
        },
        schema={"user_id": pl.Int64, "item_id": pl.Int64, "ts": pl.Datetime("us")},
    )

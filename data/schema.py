"""Canonical tables every dataset adapter produces (see data/README.md).

All tables are parquet written by polars. Ids are `Int64` (prefixes such as `i161` / `u2625`
stripped). Timestamps are `Datetime("us")` without a time zone: the wall-clock time as logged
(Tianchi logs China local time; MovieLens unix seconds are converted as UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

ACTIONS: tuple[str, ...] = ("click", "collect", "cart", "alipay")
"""Allowed actions, in funnel order (weakest signal first)."""

ACTION_DTYPE = pl.Enum(list(ACTIONS))
"""Polars dtype of the `action` column."""

TS_DTYPE = pl.Datetime("us")
"""Polars dtype of every timestamp column (time-zone naive)."""

INTERACTIONS_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.Int64(),
    "item_id": pl.Int64(),
    "action": ACTION_DTYPE,
    "ts": TS_DTYPE,
    "dwell_seconds": pl.Float64(),
    "source": pl.String(),
}
"""interactions.parquet: one row per logged action, sorted by `ts` (stable in input order).
`dwell_seconds` is null where the dataset has no dwell time; `source` names the dataset."""

ITEMS_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.Int64(),
    "title": pl.String(),
    "category": pl.String(),
    "brand_id": pl.String(),
    "seller_id": pl.String(),
    "pict_url": pl.String(),
}
"""items.parquet: catalogue rows; `brand_id` null where the raw file says `null`.
Titles are word-segmented (space-separated) text; category/brand/seller are opaque strings."""

REVIEWS_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.Int64(),
    "user_id": pl.Int64(),
    "feedback": pl.String(),
    "ts": TS_DTYPE,
}
"""reviews.parquet: one row per written review."""

REJECTS_SCHEMA: dict[str, pl.DataType] = {
    "table": pl.String(),
    "row": pl.Int64(),
    "reason": pl.String(),
    "raw": pl.String(),
}
"""rejects.parquet: every unusable input row: which table, 0-based data row, reason, raw text."""

REJECT_REASONS: tuple[str, ...] = (
    "missing_id",
    "unknown_action",
    "bad_timestamp",
    "undecodable_text",
    "dangling_item",
)
"""Why a row was rejected. One reason per row, checked in the order
undecodable_text, missing_id, unknown_action, bad_timestamp, dangling_item."""

INTERACTIONS_FILE = "interactions.parquet"
ITEMS_FILE = "items.parquet"
REVIEWS_FILE = "reviews.parquet"
REJECTS_FILE = "rejects.parquet"
REPORT_FILE = "report.json"


def empty_frame(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """An empty DataFrame with the given canonical schema."""
    return pl.DataFrame(schema=schema)


def conform(df: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Select and cast `df` to exactly the columns and dtypes of `schema` (missing -> null)."""
    cols = [
        (pl.col(name) if name in df.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in schema.items()
    ]
    return df.select(cols)


@dataclass(frozen=True)
class CanonicalData:
    """The three canonical tables of one prepared dataset."""

    interactions: pl.DataFrame
    """user_id, item_id, action, ts, dwell_seconds, source; sorted by ts."""
    items: pl.DataFrame
    """item_id, title, category, brand_id, seller_id, pict_url."""
    reviews: pl.DataFrame
    """item_id, user_id, feedback, ts."""


def load_canonical(directory: Path) -> CanonicalData:
    """Read a prepared dataset folder (missing items/reviews files read as empty tables)."""
    directory = Path(directory)
    inter_path = directory / INTERACTIONS_FILE
    if not inter_path.is_file():
        raise FileNotFoundError(f"no {INTERACTIONS_FILE} in {directory}")

    def read(name: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
        path = directory / name
        return conform(pl.read_parquet(path), schema) if path.is_file() else empty_frame(schema)

    return CanonicalData(
        interactions=read(INTERACTIONS_FILE, INTERACTIONS_SCHEMA),
        items=read(ITEMS_FILE, ITEMS_SCHEMA),
        reviews=read(REVIEWS_FILE, REVIEWS_SCHEMA),
    )

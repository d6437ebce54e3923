"""The frozen protocol's fingerprint: a sha256 of each split frame (docs/protocol.md).

A frame hashes to the sha256 of its CSV text (columns user_id, item_id, ts as integer
microseconds, action; in the frame's own row order, header included), so the same split of
the same data gives the same digest on any machine, and any changed, added, dropped or
re-ordered row changes it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import polars as pl

__all__ = ["HASH_COLUMNS", "frame_sha256", "split_sha256"]

HASH_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "ts", "action")
"""The columns a split digest covers."""


def frame_sha256(frame: pl.DataFrame) -> str:
    """Hex sha256 of a frame's `HASH_COLUMNS` as CSV (module docstring)."""
    cols = [
        pl.col("user_id").cast(pl.Int64),
        pl.col("item_id").cast(pl.Int64),
        pl.col("ts").cast(pl.Datetime("us")).dt.epoch("us").alias("ts"),
        pl.col("action").cast(pl.String),
    ]
    text = frame.select(cols).write_csv()
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_sha256(split: Any) -> dict[str, str]:
    """{part: digest} of a `data.splits.Split` (train, valid, test)."""
    return {part: frame_sha256(getattr(split, part)) for part in ("train", "valid", "test")}

"""Pass 2 of the Tianchi log: time bucket by time bucket, de-duplicate, sort, append.

Exact duplicates share a timestamp, hence a bucket, so each bucket is de-duplicated alone
(first occurrence in input order kept) and stable-sorted by time; buckets are appended in
time order, so interactions.parquet is sorted by `ts`, stable in input order, whatever the
bucket width, block size or engine. Every step is a polars expression over a whole bucket.

`process_bucket` is the unit both engines share: the local engine (`write_buckets`) runs it
on one thread while the main thread encodes the previous bucket's parquet; the Ray engine
runs it for groups of consecutive buckets in parallel tasks (`data.tianchi_ray`).
Peak memory: a few buckets plus the distinct user and item ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from data.schema import ACTION_DTYPE, ACTIONS, INTERACTIONS_SCHEMA

__all__ = [
    "BucketResult",
    "IdSet",
    "ordered_counts",
    "output_schema",
    "process_bucket",
    "read_bucket",
    "to_output",
    "write_buckets",
]

_KEY = ["user_id", "item_id", "action", "ts"]
_ACTION_VALUES = pl.Series("action", ACTIONS, dtype=ACTION_DTYPE)


class IdSet:
    """Exact distinct count of int64 ids added batch by batch (hash-unique polars Series;
    pending batches are merged when they outgrow it, so merging is amortised)."""

    def __init__(self) -> None:
        self._ids = pl.Series("id", [], dtype=pl.Int64)
        self._pending: list[pl.Series] = []
        self._pending_n = 0

    def add(self, ids: np.ndarray | pl.Series) -> None:
        """Add a batch of ids (any order, repeats allowed)."""
        batch = pl.Series("id", ids).cast(pl.Int64).unique()
        self._pending.append(batch)
        self._pending_n += batch.len()
        if self._pending_n > max(self._ids.len(), 1 << 16):
            self._merge()

    def _merge(self) -> None:
        if self._pending:
            self._ids = pl.concat([self._ids, *self._pending]).unique()
            self._pending, self._pending_n = [], 0

    def values(self) -> np.ndarray:
        """The distinct ids (any order)."""
        self._merge()
        return self._ids.to_numpy()

    def __len__(self) -> int:
        self._merge()
        return self._ids.len()


@dataclass
class BucketResult:
    """What pass 2 counted (one bucket, a group of them, or all)."""

    duplicates_dropped: int = 0
    """Exact duplicates dropped."""
    actions_kept: Counter[str] = field(default_factory=Counter)
    """Action -> rows written."""
    users: int = 0
    """Distinct users written (set by `finish`)."""
    items: int = 0
    """Distinct items written (set by `finish`)."""
    user_ids: IdSet = field(default_factory=IdSet, repr=False)
    """Distinct users seen so far."""
    item_ids: IdSet = field(default_factory=IdSet, repr=False)
    """Distinct items seen so far."""

    def count(self, df: pl.DataFrame, dropped: int) -> None:
        """Add one processed bucket (`action` as its UInt8 index) to the counts."""
        self.duplicates_dropped += dropped
        per = np.bincount(df["action"].to_numpy(), minlength=len(ACTIONS))
        self.actions_kept.update({a: int(n) for a, n in zip(ACTIONS, per, strict=True) if n})
        self.user_ids.add(df["user_id"])
        self.item_ids.add(df["item_id"])

    def merge(self, other: BucketResult) -> None:
        """Add another group's counts and ids."""
        self.duplicates_dropped += other.duplicates_dropped
        self.actions_kept.update(other.actions_kept)
        self.user_ids.add(other.user_ids.values())
        self.item_ids.add(other.item_ids.values())

    def finish(self) -> BucketResult:
        """Set `users` and `items` from the id sets; returns self."""
        self.users, self.items = len(self.user_ids), len(self.item_ids)
        return self


def read_bucket(refs: Iterable[tuple[Path, int]]) -> pl.DataFrame:
    """One bucket's rows from its (bucket file, record batch) list, in input order."""
    batches = []
    readers: dict[Path, pa.ipc.RecordBatchFileReader] = {}
    for path, i in refs:
        if path not in readers:
            readers[path] = pa.ipc.open_file(pa.memory_map(str(path)))
        batches.append(readers[path].get_batch(i))
    df = pl.from_arrow(pa.Table.from_batches(batches))
    assert isinstance(df, pl.DataFrame), "a table converts to a DataFrame"
    return df


def process_bucket(df: pl.DataFrame, keep_duplicates: bool) -> tuple[pl.DataFrame, int]:
    """(rows de-duplicated, first occurrence kept, then stable-sorted by `ts`; rows dropped)."""
    before = df.height
    if not keep_duplicates:
        df = df.unique(subset=_KEY, keep="first", maintain_order=True)
    return df.sort("ts", maintain_order=True), before - df.height


def output_schema() -> pa.Schema:
    """Arrow schema of interactions.parquet."""
    return pl.DataFrame(schema=INTERACTIONS_SCHEMA).to_arrow().schema


def to_output(df: pl.DataFrame, source: str, schema: pa.Schema) -> pa.Table:
    """A processed bucket (`action` as its UInt8 index) in the interactions schema."""
    return (
        df.select(
            "user_id",
            "item_id",
            pl.lit(_ACTION_VALUES).gather(pl.col("action")).alias("action"),
            "ts",
            dwell_seconds=pl.lit(None, dtype=pl.Float64),
            source=pl.lit(source),
        )
        .to_arrow()
        .cast(schema)
    )


def _processed(
    buckets: dict[int, list[tuple[Path, int]]], keep_duplicates: bool, res: BucketResult
) -> Iterator[pl.DataFrame]:
    """Each bucket in time order, processed and counted."""
    for key in sorted(buckets):
        df, dropped = process_bucket(read_bucket(buckets[key]), keep_duplicates)
        res.count(df, dropped)
        yield df


def write_buckets(
    buckets: dict[int, list[tuple[Path, int]]],
    out_path: Path,
    keep_duplicates: bool,
    source: str,
) -> BucketResult:
    """Pass 2 in this process: each bucket in time order -> one row group of `out_path`.

    A worker thread reads and processes the next bucket while this one encodes the parquet
    of the current one (both release the GIL).
    """
    res = BucketResult()
    schema = output_schema()
    writer = pq.ParquetWriter(out_path, schema, compression="zstd")
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            frames = _processed(buckets, keep_duplicates, res)
            fut = pool.submit(next, frames, None)
            while (df := fut.result()) is not None:
                fut = pool.submit(next, frames, None)
                table = to_output(df, source, schema)
                writer.write_table(table, row_group_size=max(1, table.num_rows))
                del df, table
    finally:
        writer.close()
    return res.finish()


def ordered_counts(counts: Counter[str]) -> dict[str, int]:
    """Action counts in funnel order, only actions that occur."""
    return {a: int(counts[a]) for a in ACTIONS if counts.get(a, 0) > 0}

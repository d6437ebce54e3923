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
    "parquet_writer",
    "process_bucket",
    "read_bucket",
    "to_output",
    "write_buckets",
]

_KEY = ["user_id", "item_id", "action", "ts"]
_ACTION_VALUES = pl.Series("action", ACTIONS, dtype=ACTION_DTYPE)


class IdSet:
    """Exact distinct count of int64 ids added batch by batch.

    Ids in `[0, DENSE_LIMIT)` (the usual case) mark a byte array indexed by id, grown as
    larger ids arrive (memory: the largest id in bytes, at most `DENSE_LIMIT`). The first id
    outside that range switches the set to sorted-unique batches merged when the pending ones
    outgrow the merged set (memory: the distinct ids), so merging is amortised.
    """

    DENSE_LIMIT = 1 << 27
    """Largest id + 1 kept in the byte array (128 MiB)."""

    def __init__(self) -> None:
        self._seen: np.ndarray | None = np.zeros(0, dtype=bool)
        self._ids = np.empty(0, dtype=np.int64)
        self._pending: list[np.ndarray] = []
        self._pending_n = 0

    def add(self, ids: np.ndarray | pl.Series) -> None:
        """Add a batch of ids (any order, repeats allowed)."""
        arr = ids.to_numpy() if isinstance(ids, pl.Series) else np.asarray(ids)
        arr = arr.astype(np.int64, copy=False)
        if arr.size == 0:
            return
        if self._seen is not None:
            lo, hi = int(arr.min()), int(arr.max())
            if lo >= 0 and hi < self.DENSE_LIMIT:
                if hi >= self._seen.size:
                    grown = np.zeros(min(self.DENSE_LIMIT, max(hi + 1, 2 * self._seen.size)), bool)
                    grown[: self._seen.size] = self._seen
                    self._seen = grown
                self._seen[arr] = True
                return
            self._ids, self._seen = np.flatnonzero(self._seen).astype(np.int64), None
        batch = np.unique(arr)
        self._pending.append(batch)
        self._pending_n += len(batch)
        if self._pending_n > max(len(self._ids), 1 << 16):
            self._merge()

    def _merge(self) -> None:
        if self._pending:
            self._ids = np.unique(np.concatenate([self._ids, *self._pending]))
            self._pending, self._pending_n = [], 0

    def values(self) -> np.ndarray:
        """The distinct ids, ascending."""
        if self._seen is not None:
            return np.flatnonzero(self._seen).astype(np.int64)
        self._merge()
        return self._ids

    def __len__(self) -> int:
        if self._seen is not None:
            return int(np.count_nonzero(self._seen))
        self._merge()
        return len(self._ids)


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


def first_occurrences(df: pl.DataFrame) -> pl.Series:
    """Boolean mask: True where no earlier row has the same (user, item, action, ts).

    Exact, and cheaper than hashing four columns in a group-by: one 64-bit hash per row,
    sorted with numpy to find the hashes seen more than once; only those rows (the true
    duplicates and the rare hash collisions) go through the exact first-distinct test.
    """
    h = df.select(pl.struct(_KEY).hash())[:, 0].to_numpy()
    ordered = np.sort(h)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    keep = pl.Series("keep", np.ones(df.height, dtype=bool))
    if repeated.size == 0:
        return keep
    candidates = pl.Series("h", h).is_in(pl.Series("r", repeated).implode())
    idx = candidates.arg_true()
    first = df[idx].select(pl.struct(_KEY).is_first_distinct())[:, 0]
    return keep.scatter(idx.filter(~first), False)


def process_bucket(df: pl.DataFrame, keep_duplicates: bool) -> tuple[pl.DataFrame, int]:
    """(rows de-duplicated, first occurrence kept, then stable-sorted by `ts`; rows dropped)."""
    before = df.height
    if not keep_duplicates:
        df = df.filter(first_occurrences(df))
    return df.sort("ts", maintain_order=True), before - df.height


def output_schema() -> pa.Schema:
    """Arrow schema of interactions.parquet."""
    return pl.DataFrame(schema=INTERACTIONS_SCHEMA).to_arrow().schema


def parquet_writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    """The interactions.parquet writer: zstd; dictionary pages only for the two low-cardinality
    columns (building a dictionary of ids or timestamps costs time and then is discarded)."""
    return pq.ParquetWriter(path, schema, compression="zstd", use_dictionary=["action", "source"])


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
    writer = parquet_writer(out_path, schema)
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

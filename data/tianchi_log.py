"""Bounded-memory processing of the Tianchi log: byte blocks -> time buckets -> sorted output.

The log (tens of GB in the full dataset) is never held whole, and no polars streaming query
spans the whole file (polars' streaming sinks were measured to grow with input size):

1. `split_log`: every log file is read in line-aligned byte blocks (`block_bytes`); each block
   is parsed and validated eagerly by polars, its rejected rows are appended to the rejects
   file and its valid rows to one parquet file per block, one row group per time bucket. Only
   the (file, row group) index of every bucket, the counts and the time range stay in memory.
2. `write_buckets`: bucket by bucket in time order, the bucket's row groups are read, exact
   duplicates dropped (duplicates share a timestamp, hence a bucket), the rows sorted by time
   (stable in input order) and appended as row groups to interactions.parquet.

Peak memory: one block plus the largest bucket, plus the distinct user/item ids (int64 arrays,
exact distinct counts) and the product id set for the dangling check.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data.schema import ACTION_DTYPE, ACTIONS, INTERACTIONS_SCHEMA, REJECTS_SCHEMA, TS_DTYPE
from data.tianchi_files import TIME_FORMATS, TextLayout

_RAW = ("item_raw", "user_raw", "action_raw", "vtime_raw")
_KEY = ["user_id", "item_id", "action", "ts"]
_VALID_COLS = ("user_id", "item_id", "action", "ts", "row")


def iter_blocks(path: Path, block_bytes: int, skip_header: bool) -> Iterator[bytes]:
    """Yield the bytes of `path` in blocks of whole lines of about `block_bytes` each."""
    with path.open("rb") as f:
        if skip_header:
            f.readline()
        carry = b""
        while buf := f.read(block_bytes):
            data = carry + buf
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            yield data[: cut + 1]
            carry = data[cut + 1 :]
        if carry:
            yield carry


def read_block(block: bytes, layout: TextLayout) -> pl.DataFrame:
    """Raw string columns of one block of log lines (undecodable bytes become U+FFFD)."""
    return pl.read_csv(
        io.BytesIO(block),
        has_header=False,
        separator=layout.separator,
        quote_char='"' if layout.separator == "," else None,
        schema=dict.fromkeys(_RAW, pl.String()),
        encoding="utf8-lossy",
        truncate_ragged_lines=True,
        empty_string_is_null=True,
        raise_if_empty=False,
        missing_columns="insert",  # a short first line must not narrow the block's columns
    )


def parse_log(df: pl.DataFrame, product_ids: pl.Series | None) -> pl.DataFrame:
    """Add parsed columns and a `reason` (null for valid rows); row order is kept."""

    def to_id(col: str) -> pl.Expr:
        return (
            pl.col(col)
            .str.strip_chars()
            .str.replace(r"^[A-Za-z]+", "")
            .cast(pl.Int64, strict=False)
        )

    vtime = pl.col("vtime_raw").str.strip_chars()
    df = df.with_columns(
        item_id=to_id("item_raw"),
        user_id=to_id("user_raw"),
        action_str=pl.col("action_raw").str.strip_chars().str.to_lowercase(),
        ts=pl.coalesce([vtime.str.strptime(TS_DTYPE, f, strict=False) for f in TIME_FORMATS]),
        bad_text=pl.any_horizontal(
            [pl.col(c).str.contains("\ufffd", literal=True).fill_null(False) for c in _RAW]
        ),
    )
    reason = (
        pl.when(pl.col("bad_text"))
        .then(pl.lit("undecodable_text"))
        .when(pl.col("item_id").is_null() | pl.col("user_id").is_null())
        .then(pl.lit("missing_id"))
        .when(~pl.col("action_str").is_in(list(ACTIONS)).fill_null(False))
        .then(pl.lit("unknown_action"))
        .when(pl.col("ts").is_null())
        .then(pl.lit("bad_timestamp"))
    )
    if product_ids is not None:
        has_product = pl.col("item_id").is_in(product_ids.implode()).fill_null(False)
        reason = reason.when(~has_product).then(pl.lit("dangling_item"))
    return df.with_columns(reason=reason.otherwise(pl.lit(None, dtype=pl.String)))


class IdSet:
    """Exact distinct count of int64 ids added batch by batch (sorted unique numpy array;
    pending batches are merged when they outgrow it, so merging is amortised)."""

    def __init__(self) -> None:
        self._ids = np.empty(0, dtype=np.int64)
        self._pending: list[np.ndarray] = []
        self._pending_n = 0

    def add(self, ids: np.ndarray) -> None:
        """Add a batch of ids (any order, repeats allowed)."""
        batch = np.unique(ids.astype(np.int64, copy=False))
        self._pending.append(batch)
        self._pending_n += len(batch)
        if self._pending_n > max(len(self._ids), 1 << 16):
            self._merge()

    def _merge(self) -> None:
        if self._pending:
            self._ids = np.unique(np.concatenate([self._ids, *self._pending]))
            self._pending, self._pending_n = [], 0

    def __len__(self) -> int:
        self._merge()
        return len(self._ids)


@dataclass
class BlockResult:
    """What `split_block` did with one block; small and picklable (a Ray task returns it)."""

    rows_read: int = 0
    """Log data rows in the block (valid + rejected)."""
    n_valid: int = 0
    """Valid rows (before de-duplication)."""
    actions: Counter[str] = field(default_factory=Counter)
    """Action -> valid rows."""
    rejected: Counter[str] = field(default_factory=Counter)
    """Reason -> rejected rows."""
    time_min: datetime | None = None
    """Earliest valid timestamp."""
    time_max: datetime | None = None
    """Latest valid timestamp."""
    path: Path | None = None
    """Block parquet file of the valid rows (None when the block has none)."""
    buckets: list[int] = field(default_factory=list)
    """Bucket key of each row group of `path`, in row-group order."""


@dataclass
class LogSplit:
    """What pass 1 leaves behind: where each bucket's rows are, and running counts."""

    buckets: dict[int, list[tuple[Path, int]]] = field(default_factory=dict)
    """Bucket key -> (block file, row group index) in input order."""
    rows_read: int = 0
    """Log data rows read (valid + rejected)."""
    n_valid: int = 0
    """Valid rows (before de-duplication)."""
    actions: Counter[str] = field(default_factory=Counter)
    """Action -> valid rows before de-duplication."""
    rejected: Counter[str] = field(default_factory=Counter)
    """Reason -> rejected log rows."""
    time_min: datetime | None = None
    """Earliest valid timestamp."""
    time_max: datetime | None = None
    """Latest valid timestamp."""
    row_offsets: dict[Path, int] = field(default_factory=dict)
    """Block file -> amount to add to its `row` column (blocks numbered from 0 in isolation,
    as Ray tasks do); absent means the rows are already global."""

    def add(self, res: BlockResult, row_offset: int | None = None) -> None:
        """Merge the next block in input order; `row_offset`: see `row_offsets`."""
        self.rows_read += res.rows_read
        self.n_valid += res.n_valid
        self.actions.update(res.actions)
        self.rejected.update(res.rejected)
        if res.time_min is not None and res.time_max is not None:
            lo, hi = self.time_min, self.time_max
            self.time_min = res.time_min if lo is None else min(lo, res.time_min)
            self.time_max = res.time_max if hi is None else max(hi, res.time_max)
        if res.path is not None:
            for i, key in enumerate(res.buckets):
                self.buckets.setdefault(key, []).append((res.path, i))
            if row_offset:
                self.row_offsets[res.path] = row_offset


class LogSplitter(Protocol):
    """Pass 1 as `prepare_tianchi` calls it (`split_log` here, `RaySplitter` on Ray)."""

    def __call__(
        self,
        logs: list[tuple[Path, TextLayout]],
        product_ids: pl.Series | None,
        stage: Path,
        rejects: pq.ParquetWriter,
        bucket_hours: int,
        block_bytes: int,
    ) -> LogSplit:
        """Validate every log row; rejects -> `rejects`, valid rows -> block files in `stage`."""
        ...


def shift_rows(table: pa.Table, offset: int) -> pa.Table:
    """`table` with `offset` added to its int64 `row` column."""
    if not offset:
        return table
    i = table.schema.get_field_index("row")
    shifted = pc.add(table.column(i), pa.scalar(offset, pa.int64()))
    return table.set_column(i, "row", shifted)


def split_block(
    block: bytes,
    layout: TextLayout,
    product_ids: pl.Series | None,
    row_offset: int,
    bucket_hours: int,
    path: Path,
) -> tuple[BlockResult, pa.Table | None]:
    """Parse and validate one block of whole log lines; rows are numbered from `row_offset`.

    Valid rows go to `path` (one row group per time bucket); returns the counts and the
    rejected rows (rejects schema, input order) or None when there are none.
    """
    res = BlockResult()
    raw = read_block(block, layout)
    parsed = parse_log(raw.with_row_index("row", offset=row_offset), product_ids)
    res.rows_read = raw.height
    del raw
    bad = parsed.filter(pl.col("reason").is_not_null())
    rej: pa.Table | None = None
    if bad.height:
        res.rejected.update(dict(bad.group_by("reason").len().iter_rows()))
        rej_schema = pl.DataFrame(schema=REJECTS_SCHEMA).to_arrow().schema
        rej = (
            bad.select(
                pl.lit("log").alias("table"),
                pl.col("row").cast(pl.Int64),
                pl.col("reason"),
                pl.concat_str([pl.col(c).fill_null("") for c in _RAW], separator=",").alias("raw"),
            )
            .to_arrow()
            .cast(rej_schema)
        )
    good = parsed.filter(pl.col("reason").is_null()).select(
        pl.col("user_id"),
        pl.col("item_id"),
        pl.col("action_str").cast(ACTION_DTYPE).alias("action"),
        pl.col("ts"),
        pl.col("row").cast(pl.Int64),
        (pl.col("ts").dt.epoch("s") // (3600 * bucket_hours)).alias("_bucket"),
    )
    del parsed, bad
    if good.height:
        _write_block(good, path, res)
    return res, rej


def split_log(
    logs: list[tuple[Path, TextLayout]],
    product_ids: pl.Series | None,
    stage: Path,
    rejects: pq.ParquetWriter,
    bucket_hours: int,
    block_bytes: int,
    on_block: Callable[[int], None] | None = None,
) -> LogSplit:
    """Pass 1: validate every log row; rejects -> `rejects`, valid rows -> bucketed block files."""
    out = LogSplit()
    stage.mkdir(parents=True, exist_ok=True)
    n_block = 0
    for path, layout in logs:
        for block in iter_blocks(path, block_bytes, layout.has_header):
            res, rej = split_block(
                block, layout, product_ids, out.rows_read, bucket_hours, block_path(stage, n_block)
            )
            del block
            if rej is not None:
                rejects.write_table(rej)
            out.add(res)
            n_block += 1
            if on_block is not None:
                on_block(n_block)
    return out


def block_path(stage: Path, n: int) -> Path:
    """Parquet file of the valid rows of block `n`."""
    return stage / f"block_{n:06d}.parquet"


def _write_block(good: pl.DataFrame, path: Path, out: BlockResult) -> None:
    out.n_valid += good.height
    tmin, tmax = good["ts"].min(), good["ts"].max()
    assert isinstance(tmin, datetime) and isinstance(tmax, datetime), "valid rows have a ts"
    out.time_min, out.time_max = tmin, tmax
    out.actions.update({str(a): int(n) for a, n in good.group_by("action").len().iter_rows()})
    parts = good.partition_by("_bucket", as_dict=True, include_key=False, maintain_order=True)
    writer: pq.ParquetWriter | None = None
    try:
        for key in sorted(parts, key=lambda k: int(k[0])):
            table = parts[key].select(_VALID_COLS).to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="lz4")
            writer.write_table(table, row_group_size=max(1, table.num_rows))
            out.buckets.append(int(key[0]))
    finally:
        if writer is not None:
            writer.close()
    out.path = path


@dataclass
class BucketResult:
    """What pass 2 counted."""

    duplicates_dropped: int = 0
    """Exact duplicates dropped."""
    actions_kept: Counter[str] = field(default_factory=Counter)
    """Action -> rows written."""
    users: int = 0
    """Distinct users written."""
    items: int = 0
    """Distinct items written."""


def write_buckets(
    split: LogSplit,
    out_path: Path,
    keep_duplicates: bool,
    source: str,
    on_bucket: Callable[[int], None] | None = None,
) -> BucketResult:
    """Pass 2: bucket by bucket in time order: de-duplicate, sort, append to `out_path`."""
    res = BucketResult()
    users, items = IdSet(), IdSet()
    out_schema = pl.DataFrame(schema=INTERACTIONS_SCHEMA).to_arrow().schema
    writer = pq.ParquetWriter(out_path, out_schema, compression="zstd")
    try:
        for k, key in enumerate(sorted(split.buckets)):
            tables = [
                shift_rows(pq.ParquetFile(p).read_row_group(i), split.row_offsets.get(p, 0))
                for p, i in split.buckets[key]
            ]
            df = pl.from_arrow(pa.concat_tables(tables))
            assert isinstance(df, pl.DataFrame), "a table converts to a DataFrame"
            del tables
            df = df.with_columns(pl.col("action").cast(ACTION_DTYPE)).sort("row")
            if not keep_duplicates:
                before = df.height
                df = df.unique(subset=_KEY, keep="first", maintain_order=True)
                res.duplicates_dropped += before - df.height
            df = df.sort("ts", maintain_order=True).with_columns(
                dwell_seconds=pl.lit(None, dtype=pl.Float64), source=pl.lit(source)
            )
            res.actions_kept.update(
                {str(a): int(n) for a, n in df.group_by("action").len().iter_rows()}
            )
            users.add(df["user_id"].to_numpy())
            items.add(df["item_id"].to_numpy())
            table = df.select(list(INTERACTIONS_SCHEMA)).to_arrow().cast(out_schema)
            writer.write_table(table, row_group_size=max(1, table.num_rows))
            del df, table
            if on_bucket is not None:
                on_bucket(k + 1)
    finally:
        writer.close()
    res.users, res.items = len(users), len(items)
    return res


def ordered_counts(counts: Counter[str]) -> dict[str, int]:
    """Action counts in funnel order, only actions that occur."""
    return {a: int(counts[a]) for a in ACTIONS if counts.get(a, 0) > 0}

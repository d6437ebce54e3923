"""Pass 1 of the Tianchi log: byte ranges -> validated rows in time buckets, rejects, counts.

The log (tens of GB in the full dataset) is never held whole. Every log file is cut into
line-aligned byte ranges of about `block_bytes` (`tianchi_parse.byte_ranges`); a range is the
unit of work (one Ray task on the Ray engine, one thread's job on the local engine):

- its text is parsed in sub-blocks of at most `PARSE_BYTES` and validated by vectorised polars
  expressions (`tianchi_parse.parse_log`); the rejected rows keep their raw text and their
  0-based row number in the log, and are counted by reason;
- its valid rows are stable-sorted by time bucket (`bucket_hours`, a day by default) and
  written to one Arrow IPC file, one record batch per bucket, in input order within a bucket.

Only the (file, batch) index of every bucket, the counts and the time range stay in memory;
pass 2 (`data.tianchi_buckets`) reads the buckets back one at a time. Peak memory: the
valid rows of `workers` ranges (the local engine runs two at a time), not the file size.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data.schema import ACTIONS, REJECTS_SCHEMA
from data.tianchi_files import TextLayout
from data.tianchi_parse import (
    RAW_COLUMNS,
    ByteRange,
    byte_ranges,
    iter_range_blocks,
    parse_log,
    read_block,
)

__all__ = [
    "PARSE_BYTES",
    "ChunkResult",
    "LogSplit",
    "SplitJob",
    "chunk_path",
    "iter_ranges",
    "shift_rows",
    "split_chunk",
    "split_log",
]

PARSE_BYTES = 16 << 20
"""Most bytes of log text handed to one `read_csv` (bounds the raw strings held at once)."""
VALID_COLUMNS = ("user_id", "item_id", "action", "ts")
"""Columns of the bucket files; `action` is stored as its UInt8 index into `ACTIONS`."""


@dataclass(frozen=True)
class SplitJob:
    """What pass 1 reads and where it writes (both engines)."""

    logs: list[tuple[Path, TextLayout]]
    """Log files and their layouts, in input order."""
    product_ids: pl.Series | None
    """Known item ids (the dangling check), or None without a product file."""
    stage: Path
    """Folder of the bucket files."""
    bucket_hours: int
    """Width of a time bucket."""
    block_bytes: int
    """Bytes of log text per range."""


@dataclass
class ChunkResult:
    """What `split_chunk` did with one byte range; small and picklable (a Ray task returns it)."""

    rows_read: int = 0
    """Log data rows in the range (valid + rejected)."""
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
    """Bucket file of the valid rows (None when the range has none)."""
    buckets: list[int] = field(default_factory=list)
    """Bucket key of each record batch of `path`, in batch order (ascending)."""


@dataclass
class LogSplit:
    """What pass 1 leaves behind: where each bucket's rows are, and running counts."""

    buckets: dict[int, list[tuple[Path, int]]] = field(default_factory=dict)
    """Bucket key -> (bucket file, record batch index), in input order."""
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

    def add(self, res: ChunkResult) -> None:
        """Merge the next range's result, in input order."""
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


def iter_ranges(logs: list[tuple[Path, TextLayout]], block_bytes: int) -> Iterator[ByteRange]:
    """Every log file's line-aligned byte ranges, in input order."""
    for path, layout in logs:
        yield from byte_ranges(path, layout, block_bytes)


def chunk_path(stage: Path, n: int) -> Path:
    """Bucket file of the valid rows of range `n`."""
    return stage / f"chunk_{n:06d}.arrow"


def shift_rows(table: pa.Table, offset: int) -> pa.Table:
    """`table` with `offset` added to its int64 `row` column."""
    if not offset:
        return table
    i = table.schema.get_field_index("row")
    shifted = pc.add(table.column(i), pa.scalar(offset, pa.int64()))
    return table.set_column(i, "row", shifted)


def _rejects(bad: pl.DataFrame, offset: int) -> pa.Table:
    """Rejected rows in the rejects schema; `row` is the block's row index plus `offset`."""
    schema = pl.DataFrame(schema=REJECTS_SCHEMA).to_arrow().schema
    return (
        bad.select(
            pl.lit("log").alias("table"),
            (pl.col("row").cast(pl.Int64) + offset).alias("row"),
            pl.col("reason").cast(pl.String),
            pl.concat_str([pl.col(c).fill_null("") for c in RAW_COLUMNS], separator=",").alias(
                "raw"
            ),
        )
        .to_arrow()
        .cast(schema)
    )


def split_chunk(
    rng: ByteRange,
    product_ids: pl.Series | None,
    row_offset: int,
    bucket_hours: int,
    path: Path,
) -> tuple[ChunkResult, pa.Table | None]:
    """Parse and validate one byte range; its rows are numbered from `row_offset`.

    Valid rows go to `path` (one record batch per time bucket); returns the counts and the
    rejected rows (rejects schema, input order), or None when there are none.
    """
    res = ChunkResult()
    parts: dict[int, list[pa.Table]] = {}
    rejects: list[pa.Table] = []
    for block in iter_range_blocks(rng, PARSE_BYTES):
        text = not block.isascii()  # only non-ASCII bytes can be undecodable text
        parsed = parse_log(read_block(block, rng.layout, text), product_ids, text)
        del block
        valid = parsed["reason"].is_null()
        good = parsed.select(VALID_COLUMNS)
        if not valid.all():
            bad = parsed.with_row_index("row").filter(~valid)
            counts = bad.group_by("reason").len().iter_rows()
            res.rejected.update({str(reason): int(n) for reason, n in counts})
            rejects.append(_rejects(bad, row_offset + res.rows_read))
            good = good.filter(valid)
        res.rows_read += parsed.height
        del parsed
        if good.height:
            _add_block(good, bucket_hours, res, parts)
    if parts:
        _write_chunk(parts, path, res)
    return res, (pa.concat_tables(rejects) if rejects else None)


def _add_block(
    good: pl.DataFrame, bucket_hours: int, out: ChunkResult, parts: dict[int, list[pa.Table]]
) -> None:
    """Count one block's valid rows and add them to `parts` (bucket key -> slices, in input
    order): a stable radix argsort on the bucket key, one gather, one slice per bucket."""
    out.n_valid += good.height
    tmin, tmax = good["ts"].min(), good["ts"].max()
    assert isinstance(tmin, datetime) and isinstance(tmax, datetime), "valid rows have a ts"
    out.time_min = tmin if out.time_min is None else min(out.time_min, tmin)
    out.time_max = tmax if out.time_max is None else max(out.time_max, tmax)
    good = good.with_columns(pl.col("action").to_physical())
    per_action = np.bincount(good["action"].to_numpy(), minlength=len(ACTIONS))
    out.actions.update({a: int(n) for a, n in zip(ACTIONS, per_action, strict=True) if n})
    keys = good["ts"].dt.epoch("s").to_numpy() // (3600 * bucket_hours)
    offset = keys - keys.min()
    small = offset.max() < 1 << 16  # numpy's stable sort is a radix sort on 16-bit keys
    order = np.argsort(offset.astype(np.uint16) if small else offset, kind="stable")
    keys = keys[order]
    table = good[pl.Series("order", order)].to_arrow()
    uniq, starts = np.unique(keys, return_index=True)
    ends = [*starts[1:], len(keys)]
    for key, start, end in zip(uniq, starts, ends, strict=True):
        parts.setdefault(int(key), []).append(table.slice(int(start), int(end - start)))


def _write_chunk(parts: dict[int, list[pa.Table]], path: Path, out: ChunkResult) -> None:
    """The bucket file of one range: one record batch per bucket, ascending."""
    writer: pa.ipc.RecordBatchFileWriter | None = None
    try:
        for key in sorted(parts):
            batch = pa.concat_tables(parts.pop(key)).combine_chunks().to_batches()[0]
            if writer is None:
                writer = pa.ipc.new_file(path, batch.schema)
            writer.write_batch(batch)
            out.buckets.append(key)
    finally:
        if writer is not None:
            writer.close()
    out.path = path


def split_log(job: SplitJob, rejects: pq.ParquetWriter, threads: int = 2) -> LogSplit:
    """Pass 1 in this process: `threads` ranges at once (polars releases the GIL), merged
    in input order; rejects -> `rejects`, valid rows -> bucket files in `job.stage`."""
    out = LogSplit()
    job.stage.mkdir(parents=True, exist_ok=True)
    pending: list[Future[tuple[ChunkResult, pa.Table | None]]] = []

    def merge(fut: Future[tuple[ChunkResult, pa.Table | None]]) -> None:
        res, rej = fut.result()
        if rej is not None:  # the range's rows follow every row merged so far
            rejects.write_table(shift_rows(rej, out.rows_read))
        out.add(res)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for n, rng in enumerate(iter_ranges(job.logs, job.block_bytes)):
            if len(pending) >= max(1, threads):
                merge(pending.pop(0))
            path = chunk_path(job.stage, n)
            ids, hours = job.product_ids, job.bucket_hours
            pending.append(pool.submit(split_chunk, rng, ids, 0, hours, path))
        for fut in pending:
            merge(fut)
    return out

"""Products and reviews of the Tianchi dataset: row-by-row validation into parquet.

These files are far smaller than the log; they are decoded line by line (GB18030 or UTF-8,
per file) so that one undecodable row is rejected instead of failing the whole file, and
written in bounded chunks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from data.schema import ITEMS_SCHEMA, REJECTS_SCHEMA, REVIEWS_SCHEMA, conform, empty_frame
from data.tianchi_files import (
    is_xlsx,
    iter_text_rows,
    iter_xlsx_rows,
    opt_text,
    parse_id,
    parse_time,
    sniff_layout,
)

CHUNK_ROWS = 200_000
"""Rows buffered before a chunk is written."""


@dataclass
class TableResult:
    """Outcome of reading one side table."""

    rows_read: int = 0
    """Data rows read."""
    rows_kept: int = 0
    """Rows written."""
    rejects: list[dict[str, object]] = field(default_factory=list)
    """Rejected rows in REJECTS_SCHEMA form."""


class _ChunkWriter:
    """Append polars chunks to one parquet file with a fixed schema."""

    def __init__(self, path: Path, schema: dict[str, pl.DataType]) -> None:
        self.path = path
        self.schema = schema
        self.writer: pq.ParquetWriter | None = None

    def write(self, rows: list[dict[str, object]]) -> None:
        df = conform(pl.DataFrame(rows, schema=self.schema, orient="row"), self.schema)
        table = df.to_arrow()
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is None:
            empty_frame(self.schema).write_parquet(self.path)
        else:
            self.writer.close()


def _rows(path: Path) -> Iterator[tuple[int, list[object] | None, str]]:
    if is_xlsx(path):
        yield from iter_xlsx_rows(path)
    else:
        for i, fields, raw in iter_text_rows(path, sniff_layout(path)):
            yield i, (list(fields) if fields is not None else None), raw


def _reject(table: str, row: int, reason: str, raw: str) -> dict[str, object]:
    return {"table": table, "row": row, "reason": reason, "raw": raw}


def read_products(path: Path, out_path: Path) -> TableResult:
    """Validate the product file into items.parquet (item_id, title, pict_url, category,
    brand_id, seller_id in the raw column order)."""
    result = TableResult()
    writer = _ChunkWriter(out_path, ITEMS_SCHEMA)
    buf: list[dict[str, object]] = []
    for i, fields, raw in _rows(path):
        result.rows_read += 1
        if fields is None:
            result.rejects.append(_reject("product", i, "undecodable_text", raw))
            continue
        fields = fields + [None] * (6 - len(fields))
        item_id = parse_id(fields[0])
        if item_id is None:
            result.rejects.append(_reject("product", i, "missing_id", raw))
            continue
        buf.append(
            {
                "item_id": item_id,
                "title": opt_text(fields[1]),
                "pict_url": opt_text(fields[2]),
                "category": opt_text(fields[3]),
                "brand_id": opt_text(fields[4]),
                "seller_id": opt_text(fields[5]),
            }
        )
        if len(buf) >= CHUNK_ROWS:
            writer.write(buf)
            result.rows_kept += len(buf)
            buf = []
    if buf:
        writer.write(buf)
        result.rows_kept += len(buf)
    writer.close()
    return result


def read_reviews(path: Path, out_path: Path) -> TableResult:
    """Validate the review file (item_id, rater_uid, feedback, gmt_create, rate_pic_url) into
    reviews.parquet."""
    result = TableResult()
    writer = _ChunkWriter(out_path, REVIEWS_SCHEMA)
    buf: list[dict[str, object]] = []
    for i, fields, raw in _rows(path):
        result.rows_read += 1
        if fields is None:
            result.rejects.append(_reject("review", i, "undecodable_text", raw))
            continue
        fields = fields + [None] * (5 - len(fields))
        item_id, user_id = parse_id(fields[0]), parse_id(fields[1])
        if item_id is None or user_id is None:
            result.rejects.append(_reject("review", i, "missing_id", raw))
            continue
        ts = parse_time(fields[3])
        if ts is None:
            result.rejects.append(_reject("review", i, "bad_timestamp", raw))
            continue
        feedback = fields[2]
        buf.append(
            {
                "item_id": item_id,
                "user_id": user_id,
                "feedback": None if feedback is None else str(feedback).strip(),
                "ts": ts,
            }
        )
        if len(buf) >= CHUNK_ROWS:
            writer.write(buf)
            result.rows_kept += len(buf)
            buf = []
    if buf:
        writer.write(buf)
        result.rows_kept += len(buf)
    writer.close()
    return result


def rejects_frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    """Python-side rejects as a REJECTS_SCHEMA frame."""
    return (
        pl.DataFrame(rows, schema=REJECTS_SCHEMA, orient="row")
        if rows
        else empty_frame(REJECTS_SCHEMA)
    )

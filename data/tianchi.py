"""Tianchi Rec-Tmall adapter: raw files -> canonical parquet + rejects + report.

The log (tens of GB in the full dataset) never sits in memory whole:

1. one streaming pass (polars lazy scan -> two sinks run together) parses and validates every
   row, writes rejected rows to a rejects file and valid rows to parquet files partitioned by
   time bucket (`PrepareConfig.bucket_hours`, default one day);
2. each bucket is then read alone, exact duplicates dropped (duplicates share a timestamp, so
   they always share a bucket) and sorted by time (stable in input order);
3. the sorted buckets are concatenated in time order by a streaming sink.

Peak memory is therefore bounded by the largest time bucket, not by the file size.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from data.report import PrepareReport
from data.schema import (
    ACTION_DTYPE,
    ACTIONS,
    INTERACTIONS_FILE,
    INTERACTIONS_SCHEMA,
    ITEMS_FILE,
    REJECTS_FILE,
    REJECTS_SCHEMA,
    REPORT_FILE,
    REVIEWS_FILE,
    REVIEWS_SCHEMA,
    TS_DTYPE,
    empty_frame,
)
from data.tianchi_catalog import read_products, read_reviews, rejects_frame
from data.tianchi_files import TIME_FORMATS, TextLayout, discover_files, sniff_layout

log = logging.getLogger(__name__)

_RAW = ("item_raw", "user_raw", "action_raw", "vtime_raw")
_KEY = ("user_id", "item_id", "action", "ts")


@dataclass(frozen=True)
class PrepareConfig:
    """Options of `prepare_tianchi`."""

    keep_duplicates: bool = False
    """Keep exact duplicate log rows instead of dropping them (they are counted either way)."""
    max_reject_fraction: float = 0.01
    """Rejected rows / rows read above which the CLI exits 2 (prepare itself never fails)."""
    bucket_hours: int = 24
    """Width of the time buckets de-duplicated and sorted one at a time (bounds peak memory)."""
    source: str = "tianchi"
    """Value of the `source` column."""


def _scan_log(path: Path, layout: TextLayout) -> pl.LazyFrame:
    return pl.scan_csv(
        path,
        has_header=False,
        skip_rows=1 if layout.has_header else 0,
        separator=layout.separator,
        quote_char='"' if layout.separator == "," else None,
        schema=dict.fromkeys(_RAW, pl.String()),
        encoding="utf8-lossy",
        truncate_ragged_lines=True,
        empty_string_is_null=True,
    )


def _parse_log(lf: pl.LazyFrame, product_ids: pl.LazyFrame | None) -> pl.LazyFrame:
    """Add parsed columns and a `reason` (null for valid rows)."""

    def to_id(col: str) -> pl.Expr:
        return (
            pl.col(col)
            .str.strip_chars()
            .str.replace(r"^[A-Za-z]+", "")
            .cast(pl.Int64, strict=False)
        )

    vtime = pl.col("vtime_raw").str.strip_chars()
    lf = lf.with_columns(
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
        lf = lf.join(product_ids.with_columns(has_product=pl.lit(True)), on="item_id", how="left")
        reason = reason.when(pl.col("has_product").is_null()).then(pl.lit("dangling_item"))
    return lf.with_columns(reason=reason.otherwise(pl.lit(None, dtype=pl.String)))


def _bucket_files(valid_dir: Path) -> list[list[Path]]:
    """Partition folders `_bucket=K` in increasing K, each as its parquet files."""
    buckets: list[tuple[int, list[Path]]] = []
    if valid_dir.is_dir():
        for sub in valid_dir.iterdir():
            if sub.is_dir() and sub.name.startswith("_bucket="):
                files = sorted(sub.glob("*.parquet"))
                if files:
                    buckets.append((int(sub.name.split("=", 1)[1]), files))
    return [files for _, files in sorted(buckets)]


def _counts(df: pl.DataFrame, col: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in df.select(col, "len").iter_rows()}


def prepare_tianchi(input_dir: Path, out_dir: Path, cfg: PrepareConfig) -> PrepareReport:
    """Read a Tianchi Rec-Tmall folder (official or sample layout) into canonical parquet.

    Writes interactions/items/reviews/rejects parquet and report.json into `out_dir`; returns
    the report. Never raises on bad rows: they are counted by reason and written to rejects.
    """
    start = time.perf_counter()
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = out_dir / "_stage"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        files = discover_files(input_dir, stage / "unzipped")
        report = PrepareReport(source=cfg.source, log_files=[p.name for p in files.logs])
        side_rejects: list[dict[str, object]] = []

        product_ids: pl.LazyFrame | None = None
        if files.product is not None:
            res = read_products(files.product, out_dir / ITEMS_FILE)
            report.products_read, report.products_kept = res.rows_read, res.rows_kept
            side_rejects += res.rejects
            product_ids = pl.scan_parquet(out_dir / ITEMS_FILE).select("item_id").unique()
        else:
            empty_frame({"item_id": pl.Int64()}).write_parquet(out_dir / ITEMS_FILE)
        if files.review is not None:
            res = read_reviews(files.review, out_dir / REVIEWS_FILE)
            report.reviews_read, report.reviews_kept = res.rows_read, res.rows_kept
            side_rejects += res.rejects
        else:
            empty_frame(REVIEWS_SCHEMA).write_parquet(out_dir / REVIEWS_FILE)

        log.info("pass 1: validating %d log file(s)", len(files.logs))
        raw = pl.concat([_scan_log(p, sniff_layout(p)) for p in files.logs], how="vertical")
        parsed = _parse_log(raw.with_row_index("row"), product_ids)
        bucket = (pl.col("ts").dt.epoch("s") // (3600 * cfg.bucket_hours)).alias("_bucket")
        valid_sink = (
            parsed.filter(pl.col("reason").is_null())
            .select(
                pl.col("user_id"),
                pl.col("item_id"),
                pl.col("action_str").cast(ACTION_DTYPE).alias("action"),
                pl.col("ts"),
                pl.col("row"),
                bucket,
            )
            .sink_parquet(
                pl.PartitionBy(stage / "valid", key="_bucket", include_key=False),
                lazy=True,
                mkdir=True,
            )
        )
        reject_sink = (
            parsed.filter(pl.col("reason").is_not_null())
            .select(
                pl.lit("log").alias("table"),
                pl.col("row").cast(pl.Int64),
                pl.col("reason"),
                pl.concat_str([pl.col(c).fill_null("") for c in _RAW], separator=",").alias("raw"),
            )
            .sink_parquet(stage / "log_rejects.parquet", lazy=True)
        )
        pl.collect_all([valid_sink, reject_sink])

        buckets = _bucket_files(stage / "valid")
        log_rejects = pl.read_parquet(stage / "log_rejects.parquet")
        all_rejects = pl.concat([log_rejects.cast(REJECTS_SCHEMA), rejects_frame(side_rejects)])  # type: ignore[arg-type]
        all_rejects.write_parquet(out_dir / REJECTS_FILE)
        report.rejected = {
            r: int(n) for r, n in all_rejects.group_by("reason").len().sort("reason").iter_rows()
        }

        valid = pl.scan_parquet([f for fs in buckets for f in fs]) if buckets else None
        n_valid = 0
        if valid is not None:
            stats = valid.select(
                n=pl.len(),
                users=pl.col("user_id").n_unique(),
                items=pl.col("item_id").n_unique(),
                tmin=pl.col("ts").min(),
                tmax=pl.col("ts").max(),
            ).collect()
            n_valid = int(stats["n"][0])
            report.users, report.items = int(stats["users"][0]), int(stats["items"][0])
            report.time_min = stats["tmin"][0].isoformat()
            report.time_max = stats["tmax"][0].isoformat()
            report.actions = _counts(
                valid.group_by("action").len().sort("action").collect(), "action"
            )
            if product_ids is not None:
                report.items_with_product = report.items
        report.rows_read = n_valid + int(log_rejects.height)

        log.info("pass 2: de-duplicating and sorting %d time bucket(s)", len(buckets))
        sorted_dir = stage / "sorted"
        sorted_dir.mkdir()
        sorted_files: list[Path] = []
        for k, files_k in enumerate(buckets):
            df = pl.read_parquet(files_k).sort("row")
            if not cfg.keep_duplicates:
                before = df.height
                df = df.unique(subset=list(_KEY), keep="first", maintain_order=True)
                report.duplicates_dropped += before - df.height
            df = df.sort("ts", maintain_order=True).with_columns(
                dwell_seconds=pl.lit(None, dtype=pl.Float64), source=pl.lit(cfg.source)
            )
            path = sorted_dir / f"{k:06d}.parquet"
            df.select(list(INTERACTIONS_SCHEMA)).write_parquet(path)
            sorted_files.append(path)
        if sorted_files:
            pl.scan_parquet(sorted_files).sink_parquet(out_dir / INTERACTIONS_FILE)
        else:
            empty_frame(INTERACTIONS_SCHEMA).write_parquet(out_dir / INTERACTIONS_FILE)
        kept = pl.scan_parquet(out_dir / INTERACTIONS_FILE).group_by("action").len().collect()
        report.actions_kept = _counts(kept.sort("action"), "action")
        report.rows_kept = sum(report.actions_kept.values())
        total_read = report.rows_read + report.products_read + report.reviews_read
        report.reject_fraction = report.total_rejected / total_read if total_read else 0.0
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    report.elapsed_s = round(time.perf_counter() - start, 3)
    report.write(out_dir / REPORT_FILE)
    return report

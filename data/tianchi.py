"""Tianchi Rec-Tmall adapter: raw files -> canonical parquet + rejects + report.

The log (tens of GB in the full dataset) never sits in memory whole (see `data.tianchi_log`):

1. pass 1 reads every log file in line-aligned byte blocks, parses and validates each block
   eagerly, appends its rejected rows to the rejects file and writes its valid rows to one
   parquet file per block, one row group per time bucket (`PrepareConfig.bucket_hours`,
   default one day);
2. pass 2 reads one bucket at a time (its row groups from every block file), drops exact
   duplicates (duplicates share a timestamp, so they always share a bucket), sorts by time
   (stable in input order) and appends it to interactions.parquet.

Peak memory is bounded by one block plus the largest time bucket plus the distinct user and
item ids (int64), not by the file size.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl
import pyarrow.parquet as pq

from data.report import PrepareReport
from data.schema import (
    INTERACTIONS_FILE,
    ITEMS_FILE,
    REJECTS_FILE,
    REJECTS_SCHEMA,
    REPORT_FILE,
    REVIEWS_FILE,
    REVIEWS_SCHEMA,
    empty_frame,
)
from data.tianchi_catalog import read_products, read_reviews, rejects_frame
from data.tianchi_files import discover_files, sniff_layout
from data.tianchi_log import LogSplitter, ordered_counts, split_log, write_buckets

log = logging.getLogger(__name__)


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
    block_bytes: int = 16 << 20
    """Bytes of log text parsed at a time in pass 1 (bounds peak memory with the bucket)."""
    engine: Literal["local", "ray"] = "local"
    """Pass 1 in this process (`local`) or as parallel Ray tasks over byte blocks (`ray`,
    see `data.tianchi_ray`); the output is identical."""
    workers: int | None = None
    """Ray engine: blocks parsed at once (default: the cluster's CPUs)."""


def prepare_tianchi(
    input_dir: Path, out_dir: Path, cfg: PrepareConfig, splitter: LogSplitter | None = None
) -> PrepareReport:
    """Read a Tianchi Rec-Tmall folder (official or sample layout) into canonical parquet.

    Writes interactions/items/reviews/rejects parquet and report.json into `out_dir`; returns
    the report. Never raises on bad rows: they are counted by reason and written to rejects.
    `splitter`: pass 1 (default: `split_log`, or a `RaySplitter` for `cfg.engine == "ray"`).
    """
    if splitter is None:
        splitter = split_log
        if cfg.engine == "ray":
            from data.tianchi_ray import RaySplitter

            splitter = RaySplitter(workers=cfg.workers)
    start = time.perf_counter()
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = out_dir / "_stage"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        files = discover_files(input_dir, stage / "unzipped")
        report = PrepareReport(
            source=cfg.source, log_files=[p.name for p in files.logs], engine=cfg.engine
        )
        side_rejects: list[dict[str, object]] = []

        product_ids: pl.Series | None = None
        if files.product is not None:
            res = read_products(files.product, out_dir / ITEMS_FILE)
            report.products_read, report.products_kept = res.rows_read, res.rows_kept
            side_rejects += res.rejects
            product_ids = pl.read_parquet(out_dir / ITEMS_FILE, columns=["item_id"])[
                "item_id"
            ].unique()
        else:
            empty_frame({"item_id": pl.Int64()}).write_parquet(out_dir / ITEMS_FILE)
        if files.review is not None:
            res = read_reviews(files.review, out_dir / REVIEWS_FILE)
            report.reviews_read, report.reviews_kept = res.rows_read, res.rows_kept
            side_rejects += res.rejects
        else:
            empty_frame(REVIEWS_SCHEMA).write_parquet(out_dir / REVIEWS_FILE)

        log.info("pass 1: validating %d log file(s)", len(files.logs))
        layouts = [(p, sniff_layout(p)) for p in files.logs]
        rej_schema = empty_frame(REJECTS_SCHEMA).to_arrow().schema
        rejects = pq.ParquetWriter(out_dir / REJECTS_FILE, rej_schema, compression="zstd")
        try:
            split = splitter(
                layouts, product_ids, stage / "blocks", rejects, cfg.bucket_hours, cfg.block_bytes
            )
            if side_rejects:
                rejects.write_table(rejects_frame(side_rejects).to_arrow().cast(rej_schema))
        finally:
            rejects.close()
        rejected = split.rejected + Counter(str(r["reason"]) for r in side_rejects)
        report.rejected = {r: int(rejected[r]) for r in sorted(rejected)}
        report.rows_read = split.rows_read
        report.actions = ordered_counts(split.actions)
        if split.time_min is not None and split.time_max is not None:
            report.time_min = split.time_min.isoformat()
            report.time_max = split.time_max.isoformat()

        log.info("pass 2: de-duplicating and sorting %d time bucket(s)", len(split.buckets))
        kept = write_buckets(split, out_dir / INTERACTIONS_FILE, cfg.keep_duplicates, cfg.source)
        report.duplicates_dropped = kept.duplicates_dropped
        report.users, report.items = kept.users, kept.items
        if product_ids is not None and split.n_valid:
            report.items_with_product = report.items
        report.actions_kept = ordered_counts(kept.actions_kept)
        report.rows_kept = sum(report.actions_kept.values())
        total_read = report.rows_read + report.products_read + report.reviews_read
        report.reject_fraction = report.total_rejected / total_read if total_read else 0.0
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    report.elapsed_s = round(time.perf_counter() - start, 3)
    report.write(out_dir / REPORT_FILE)
    return report

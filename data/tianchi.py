"""Tianchi Rec-Tmall adapter: raw files -> canonical parquet + rejects + report.

The log (tens of GB in the full dataset) never sits in memory whole:

1. pass 1 (`data.tianchi_log`) cuts every log file into line-aligned byte ranges, parses and
   validates each with vectorised polars expressions, appends its rejected rows to the rejects
   file and writes its valid rows to one Arrow file per range, one record batch per time
   bucket (`PrepareConfig.bucket_hours`, default one day);
2. pass 2 (`data.tianchi_buckets`) reads one bucket at a time (its batches from every range
   file), drops exact duplicates (duplicates share a timestamp, so they always share a
   bucket), sorts by time (stable in input order) and appends it to interactions.parquet.

An engine runs both passes: `LocalEngine` here (two threads), `RayEngine` on a Ray cluster
(`data.tianchi_ray`: ranges and groups of buckets as parallel tasks); the output is identical.
Peak memory is bounded by a few ranges plus a few time buckets plus the distinct user and item
ids (int64), not by the file size.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

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
from data.tianchi_buckets import BucketResult, ordered_counts, write_buckets
from data.tianchi_catalog import read_products, read_reviews, rejects_frame
from data.tianchi_files import discover_files, sniff_layout
from data.tianchi_log import LogSplit, SplitJob, split_log

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
    block_bytes: int = 128 << 20
    """Bytes of log text per pass-1 range (one Ray task; bounds peak memory with the bucket)."""
    engine: Literal["local", "ray"] = "local"
    """Both passes in this process (`local`) or as parallel Ray tasks (`ray`, see
    `data.tianchi_ray`); the output is identical."""
    workers: int | None = None
    """Ray engine: tasks at once (default: the cluster's CPUs)."""


class PrepareEngine(Protocol):
    """The two log passes as `prepare_tianchi` calls them (`LocalEngine`, `RayEngine`)."""

    def split(self, job: SplitJob, rejects: pq.ParquetWriter) -> LogSplit:
        """Pass 1: validate every log row; rejects -> `rejects`, valid rows -> `job.stage`."""
        ...

    def write(
        self, split: LogSplit, stage: Path, out_path: Path, keep_duplicates: bool, source: str
    ) -> BucketResult:
        """Pass 2: de-duplicate and sort every bucket of `split`, in time order, to `out_path`
        (scratch files in `stage`)."""
        ...

    def session(self) -> AbstractContextManager[None]:
        """Held around both passes (the Ray engine connects to or starts its cluster)."""
        ...


@dataclass(frozen=True)
class LocalEngine:
    """Both passes in this process, on `threads` threads (polars releases the GIL)."""

    threads: int = 2
    """Pass-1 ranges parsed at once."""

    def split(self, job: SplitJob, rejects: pq.ParquetWriter) -> LogSplit:
        """Pass 1 (`split_log`)."""
        return split_log(job, rejects, self.threads)

    def write(
        self, split: LogSplit, stage: Path, out_path: Path, keep_duplicates: bool, source: str
    ) -> BucketResult:
        """Pass 2 (`write_buckets`)."""
        return write_buckets(split.buckets, out_path, keep_duplicates, source)

    def session(self) -> AbstractContextManager[None]:
        """Nothing to hold."""
        return nullcontext()


def prepare_tianchi(
    input_dir: Path, out_dir: Path, cfg: PrepareConfig, engine: PrepareEngine | None = None
) -> PrepareReport:
    """Read a Tianchi Rec-Tmall folder (official or sample layout) into canonical parquet.

    Writes interactions/items/reviews/rejects parquet and report.json into `out_dir`; returns
    the report. Never raises on bad rows: they are counted by reason and written to rejects.
    `engine`: runs the two passes (default: `LocalEngine`, or a `RayEngine` for
    `cfg.engine == "ray"`).
    """
    if engine is None:
        engine = LocalEngine()
        if cfg.engine == "ray":
            from data.tianchi_ray import RayEngine

            engine = RayEngine(workers=cfg.workers)
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

        layouts = [(p, sniff_layout(p)) for p in files.logs]
        rej_schema = empty_frame(REJECTS_SCHEMA).to_arrow().schema
        rejects = pq.ParquetWriter(out_dir / REJECTS_FILE, rej_schema, compression="zstd")
        with engine.session():
            try:
                log.info("pass 1: validating %d log file(s)", len(files.logs))
                job = SplitJob(
                    layouts, product_ids, stage / "chunks", cfg.bucket_hours, cfg.block_bytes
                )
                split = engine.split(job, rejects)
                if side_rejects:
                    rejects.write_table(rejects_frame(side_rejects).to_arrow().cast(rej_schema))
            finally:
                rejects.close()
            log.info("pass 2: de-duplicating and sorting %d time bucket(s)", len(split.buckets))
            kept = engine.write(
                split,
                stage / "parts",
                out_dir / INTERACTIONS_FILE,
                cfg.keep_duplicates,
                cfg.source,
            )
        rejected = split.rejected + Counter(str(r["reason"]) for r in side_rejects)
        report.rejected = {r: int(rejected[r]) for r in sorted(rejected)}
        report.rows_read = split.rows_read
        report.actions = ordered_counts(split.actions)
        if split.time_min is not None and split.time_max is not None:
            report.time_min = split.time_min.isoformat()
            report.time_max = split.time_max.isoformat()
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

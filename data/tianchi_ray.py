"""Pass 1 of the Tianchi prepare as parallel Ray tasks over line-aligned byte blocks.

`RaySplitter` is a drop-in `LogSplitter` for `prepare_tianchi` (`PrepareConfig.engine="ray"`):

1. the driver cuts every log file into byte ranges of about `block_bytes` that end on a line
   break (a seek and a `readline` per block; nothing is read whole);
2. one Ray task per range reads its bytes and runs the local engine's `split_block` on them,
   rows numbered from 0: valid rows -> its block parquet, rejects -> its own rejects parquet;
   it returns only the `BlockResult` counts (a few hundred bytes) and its process's peak RSS.
   At most `workers` tasks run and twice that are in flight, so memory is bounded by
   `workers` blocks;
3. the driver merges the results in block (= input) order: each block's global row offset is
   the sum of the rows of the blocks before it; it is recorded in `LogSplit.row_offsets` for
   pass 2 and added to the block's rejects, appended to the rejects file in order.

Pass 2 (`write_buckets`) is the local code, unchanged: it sees the same rows with the same
global row numbers in the same order, so interactions.parquet, rejects.parquet and the report
are identical to the local engine's whatever the block boundaries.

The block files live in the stage folder, so every Ray worker must see the driver's file
system (one node, or a shared mount).
"""

from __future__ import annotations

import logging
import os
import resource
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from data.tianchi_files import TextLayout
from data.tianchi_log import BlockResult, LogSplit, block_path, shift_rows, split_block

__all__ = ["ByteRange", "RaySplitter", "byte_ranges", "ensure_ray"]

log = logging.getLogger(__name__)

OBJECT_STORE_BYTES = 512 << 20
"""Object store of a Ray cluster started here (tasks exchange paths and counts, not rows)."""


@dataclass(frozen=True)
class ByteRange:
    """Whole lines `[start, end)` of one log file: the unit of work of one Ray task."""

    path: Path
    """Log file."""
    start: int
    """First byte (at a line start)."""
    end: int
    """One past the last byte (after a line break, or the end of the file)."""
    layout: TextLayout
    """How the file is laid out."""


def byte_ranges(path: Path, layout: TextLayout, block_bytes: int) -> Iterator[ByteRange]:
    """Cut `path` (header skipped) into line-aligned ranges of about `block_bytes` each."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if layout.has_header:
            f.readline()
        start = f.tell()
        while start < size:
            end = start + max(1, block_bytes)
            if end < size:
                f.seek(end - 1)
                f.readline()  # to just past the line break at or after end - 1
                end = f.tell()
            yield ByteRange(path, start, min(end, size), layout)
            start = end


def _split_range(
    rng: ByteRange,
    product_ids: pl.Series | None,
    bucket_hours: int,
    out: Path,
    rejects_out: Path,
) -> tuple[BlockResult, bool, int, int]:
    """Ray task: `split_block` on one range, rows from 0; rejects -> `rejects_out`.

    Returns (counts, whether rejects were written, worker pid, worker peak RSS in bytes).
    """
    with rng.path.open("rb") as f:
        f.seek(rng.start)
        block = f.read(rng.end - rng.start)
    res, rej = split_block(block, rng.layout, product_ids, 0, bucket_hours, out)
    del block
    if rej is not None:
        pq.write_table(rej, rejects_out, compression="lz4")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return res, rej is not None, os.getpid(), peak


def ensure_ray(num_cpus: int | None = None) -> bool:
    """Start a local Ray cluster unless one is connected; True if this call started it."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        object_store_memory=OBJECT_STORE_BYTES,
        log_to_driver=False,
        configure_logging=False,
    )
    return True


@dataclass
class RaySplitter:
    """`LogSplitter` running `split_block` as Ray tasks; see the module docstring."""

    workers: int | None = None
    """Tasks running at once (default: the cluster's CPUs)."""
    peak_rss: dict[int, int] = field(default_factory=dict)
    """Filled by a call: Ray worker pid -> its peak RSS in bytes, as the tasks reported it."""

    def __call__(
        self,
        logs: list[tuple[Path, TextLayout]],
        product_ids: pl.Series | None,
        stage: Path,
        rejects: pq.ParquetWriter,
        bucket_hours: int,
        block_bytes: int,
    ) -> LogSplit:
        """Pass 1 on Ray: same `LogSplit` and rejects as `split_log`, block files aside."""
        import ray

        started = ensure_ray(self.workers)
        try:
            return self._run(logs, product_ids, stage, rejects, bucket_hours, block_bytes)
        finally:
            if started:
                ray.shutdown()

    def _run(
        self,
        logs: list[tuple[Path, TextLayout]],
        product_ids: pl.Series | None,
        stage: Path,
        rejects: pq.ParquetWriter,
        bucket_hours: int,
        block_bytes: int,
    ) -> LogSplit:
        import ray

        stage.mkdir(parents=True, exist_ok=True)
        workers = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        task = ray.remote(num_cpus=1, max_retries=2)(_split_range)
        ids: Any = None if product_ids is None else ray.put(product_ids)
        ranges = (r for path, layout in logs for r in byte_ranges(path, layout, block_bytes))
        results: dict[int, tuple[BlockResult, bool]] = {}
        pending: dict[Any, int] = {}
        n = 0
        for rng in ranges:
            if len(pending) >= 2 * workers:
                self._collect(pending, results, wait_all=False)
            ref = task.remote(rng, ids, bucket_hours, block_path(stage, n), _rejects_path(stage, n))
            pending[ref] = n
            n += 1
        self._collect(pending, results, wait_all=True)
        log.info("ray pass 1: %d block(s) on %d worker process(es)", n, len(self.peak_rss))

        out = LogSplit()
        for k in range(n):
            res, has_rejects = results.pop(k)
            offset = out.rows_read
            if has_rejects:
                path = _rejects_path(stage, k)
                rejects.write_table(shift_rows(pq.read_table(path), offset))
                path.unlink()
            out.add(res, offset)
        return out

    def _collect(
        self,
        pending: dict[Any, int],
        results: dict[int, tuple[BlockResult, bool]],
        wait_all: bool,
    ) -> None:
        """Move finished tasks from `pending` to `results` (at least one, or all)."""
        import ray

        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                res, has_rejects, pid, peak = ray.get(ref)
                results[pending.pop(ref)] = (res, has_rejects)
                self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), peak)
            if not wait_all:
                return


def _rejects_path(stage: Path, n: int) -> Path:
    return stage / f"rejects_{n:06d}.parquet"

"""The Tianchi prepare as parallel Ray tasks: both log passes (`PrepareConfig.engine="ray"`).

`RayEngine` is a `data.tianchi.PrepareEngine`:

1. pass 1: the driver cuts every log file into byte ranges of about `block_bytes` that end on
   a line break (a seek and a `readline` per range; nothing is read whole); one Ray task per
   range runs the local engine's `split_chunk` on it, rows numbered from 0: valid rows -> its
   bucket file, rejects -> its own rejects file; it returns only the `ChunkResult` counts.
   The driver merges the results in range (= input) order: each range's global row offset is
   the sum of the rows of the ranges before it, added to its rejects as they are appended;
2. pass 2: the sorted bucket keys are cut into groups of consecutive buckets (at least four
   per worker, at most about `GROUP_ROWS` rows each); one Ray task per group runs the local
   engine's `read_bucket` + `process_bucket` on each of its buckets (de-duplicate, stable
   sort by time) and writes them to a part file, returning the counts and the group's
   distinct ids. The driver appends the parts in time
   order to interactions.parquet (one row group per bucket, as the local engine writes).

At most `workers` tasks run and twice that are in flight, so memory is bounded by `workers`
ranges or bucket groups. Each bucket sees the same rows in the same order as on the local
engine, so interactions.parquet, rejects.parquet and the report are identical to the local
engine's whatever the range boundaries. The files live in the stage folder, so every Ray
worker must see the driver's file system (one node, or a shared mount).
"""

from __future__ import annotations

import logging
import os
import resource
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from data.tianchi_buckets import (
    BucketResult,
    output_schema,
    parquet_writer,
    process_bucket,
    read_bucket,
    to_output,
)
from data.tianchi_log import (
    ChunkResult,
    LogSplit,
    SplitJob,
    chunk_path,
    iter_ranges,
    shift_rows,
    split_chunk,
)
from data.tianchi_parse import ByteRange, byte_ranges

__all__ = ["ByteRange", "RayEngine", "byte_ranges", "ensure_ray"]

log = logging.getLogger(__name__)

OBJECT_STORE_BYTES = 512 << 20
"""Object store of a Ray cluster started here (tasks exchange paths and counts, not rows)."""
GROUPS_PER_WORKER = 4
"""Pass 2: bucket groups per worker at least (more: better balance and overlap)."""
GROUP_ROWS = 2_000_000
"""Pass 2: about the most valid rows in one bucket group (bounds a task's part file)."""

Buckets = list[tuple[int, list[tuple[Path, int]]]]
"""Consecutive buckets of one pass-2 task: (bucket key, its (file, batch) list)."""


def _peak_rss() -> int:
    """This process's peak RSS in bytes (`ru_maxrss` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _split_range(
    rng: ByteRange,
    product_ids: pl.Series | None,
    bucket_hours: int,
    out: Path,
    rejects_out: Path,
) -> tuple[tuple[ChunkResult, bool], int, int]:
    """Ray task: `split_chunk` on one range, rows from 0; rejects -> `rejects_out`.

    Returns ((counts, whether rejects were written), worker pid, worker peak RSS in bytes).
    """
    res, rej = split_chunk(rng, product_ids, 0, bucket_hours, out)
    if rej is not None:
        pq.write_table(rej, rejects_out, compression="lz4")
    return (res, rej is not None), os.getpid(), _peak_rss()


def _write_group(group: Buckets, keep_duplicates: bool, out: Path) -> tuple[BucketResult, int, int]:
    """Ray task: de-duplicate and sort each bucket of `group`; one record batch each -> `out`.

    Returns (counts with the group's distinct ids, worker pid, worker peak RSS in bytes).
    """
    res = BucketResult()
    writer: pa.ipc.RecordBatchFileWriter | None = None
    try:
        for _, refs in group:
            df, dropped = process_bucket(read_bucket(refs), keep_duplicates)
            res.count(df, dropped)
            table = df.to_arrow()
            if writer is None:
                writer = pa.ipc.new_file(out, table.schema)
            if table.num_rows:
                writer.write_batch(table.combine_chunks().to_batches()[0])
    finally:
        if writer is not None:
            writer.close()
    return res, os.getpid(), _peak_rss()


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


def _groups(buckets: dict[int, list[tuple[Path, int]]], n_groups: int) -> list[Buckets]:
    """The buckets in time order, cut into at most `n_groups` runs of about equal rows count
    (by batches, a proxy for rows)."""
    keys = sorted(buckets)
    total = sum(len(v) for v in buckets.values())
    per = max(1, -(-total // max(1, n_groups)))
    groups: list[Buckets] = [[]]
    size = 0
    for key in keys:
        if size >= per:
            groups.append([])
            size = 0
        groups[-1].append((key, buckets[key]))
        size += len(buckets[key])
    return [g for g in groups if g]


@dataclass
class RayEngine:
    """`PrepareEngine` running both passes as Ray tasks; see the module docstring."""

    workers: int | None = None
    """Tasks running at once (default: the cluster's CPUs)."""
    peak_rss: dict[int, int] = field(default_factory=dict)
    """Filled by a call: Ray worker pid -> its peak RSS in bytes, as the tasks reported it."""

    @contextmanager
    def session(self) -> Iterator[None]:
        """Connect to Ray (or start a local cluster, stopped after) for one prepare."""
        import ray

        started = ensure_ray(self.workers)
        try:
            yield
        finally:
            if started:
                ray.shutdown()

    def _workers(self) -> int:
        import ray

        return self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    def split(self, job: SplitJob, rejects: pq.ParquetWriter) -> LogSplit:
        """Pass 1 on Ray: the same `LogSplit` and rejects as `split_log`."""
        import ray

        stage, bucket_hours = job.stage, job.bucket_hours
        stage.mkdir(parents=True, exist_ok=True)
        task = ray.remote(num_cpus=1, max_retries=2)(_split_range)
        ids: Any = None if job.product_ids is None else ray.put(job.product_ids)
        out = LogSplit()

        def merge(k: int, result: tuple[ChunkResult, bool]) -> None:
            res, has_rejects = result
            if has_rejects:
                path = _rejects_path(stage, k)
                rejects.write_table(shift_rows(pq.read_table(path), out.rows_read))
                path.unlink()
            out.add(res)

        calls = (
            (task, (rng, ids, bucket_hours, chunk_path(stage, n), _rejects_path(stage, n)))
            for n, rng in enumerate(iter_ranges(job.logs, job.block_bytes))
        )
        n = self._run_in_order(calls, self._workers(), merge)
        log.info("ray pass 1: %d range(s) on %d worker process(es)", n, len(self.peak_rss))
        return out

    def write(
        self, split: LogSplit, stage: Path, out_path: Path, keep_duplicates: bool, source: str
    ) -> BucketResult:
        """Pass 2 on Ray: groups of consecutive buckets as tasks; parts appended in order."""
        import ray

        task = ray.remote(num_cpus=1, max_retries=2)(_write_group)
        stage.mkdir(parents=True, exist_ok=True)
        res = BucketResult()
        schema = output_schema()
        writer = parquet_writer(out_path, schema)

        def append(k: int, part: BucketResult) -> None:
            res.merge(part)
            path = _part_path(stage, k)
            if path.exists():  # read, not mapped: one batch resident at a time
                reader = pa.ipc.open_file(pa.OSFile(str(path)))
                for i in range(reader.num_record_batches):
                    df = pl.from_arrow(reader.get_batch(i))
                    assert isinstance(df, pl.DataFrame), "a batch converts to a DataFrame"
                    table = to_output(df, source, schema)
                    writer.write_table(table, row_group_size=max(1, table.num_rows))
                del reader
                path.unlink()

        workers = self._workers()
        n_groups = max(GROUPS_PER_WORKER * workers, -(-split.n_valid // GROUP_ROWS))
        groups = _groups(split.buckets, n_groups)
        calls = ((task, (g, keep_duplicates, _part_path(stage, k))) for k, g in enumerate(groups))
        try:
            self._run_in_order(calls, workers, append)
        finally:
            writer.close()
        log.info("ray pass 2: %d bucket group(s)", len(groups))
        return res.finish()

    def _run_in_order(
        self,
        calls: Iterator[tuple[Any, tuple[Any, ...]]],
        workers: int,
        consume: Callable[[int, Any], None],
    ) -> int:
        """Run the remote `calls` (at most 2 x `workers` in flight); `consume(k, result)` in
        call order as results arrive. Returns the number of calls."""
        pending: dict[Any, int] = {}
        done: dict[int, Any] = {}
        next_k = n = 0
        for task, args in calls:
            while len(pending) >= 2 * workers:
                self._collect(pending, done)
                next_k = _drain(done, next_k, consume)
            pending[task.remote(*args)] = n
            n += 1
        while pending:
            self._collect(pending, done)
            next_k = _drain(done, next_k, consume)
        _drain(done, next_k, consume)
        return n

    def _collect(self, pending: dict[Any, int], done: dict[int, Any]) -> None:
        """Move at least one finished task from `pending` to `done`."""
        import ray

        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            result, pid, peak = ray.get(ref)
            done[pending.pop(ref)] = result
            self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), peak)


def _drain(done: dict[int, Any], next_k: int, consume: Callable[[int, Any], None]) -> int:
    """Consume the finished results that come next in order; the next index awaited."""
    while next_k in done:
        consume(next_k, done.pop(next_k))
        next_k += 1
    return next_k


def _rejects_path(stage: Path, n: int) -> Path:
    return stage / f"rejects_{n:06d}.parquet"


def _part_path(stage: Path, n: int) -> Path:
    return stage / f"part_{n:06d}.arrow"

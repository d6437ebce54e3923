"""Block-wise log processing gives the same result whatever the block and bucket sizes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

from data.report import PrepareReport
from data.synthetic import SynthConfig, generate_synthetic
from data.tianchi import PrepareConfig, prepare_tianchi
from data.tianchi_buckets import IdSet
from data.tianchi_parse import iter_blocks


def test_iter_blocks_reassembles_whole_lines(tmp_path: Path) -> None:
    """Blocks concatenate back to the file (minus header) and each ends on a line break."""
    path = tmp_path / "log.txt"
    lines = [f"header{i}" if i == 0 else f"i{i}\x01u{i * 7}\x01click" for i in range(500)]
    path.write_bytes(("\n".join(lines)).encode())  # no trailing newline on purpose
    blocks = list(iter_blocks(path, 97, skip_header=True))
    assert len(blocks) > 10
    assert all(b.endswith(b"\n") for b in blocks[:-1])
    assert b"".join(blocks) == ("\n".join(lines[1:])).encode()


def test_id_set_counts_distinct() -> None:
    """IdSet's count equals numpy's distinct count over all batches added."""
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 5000, size=int(rng.integers(1, 3000))) for _ in range(40)]
    ids = IdSet()
    for b in batches:
        ids.add(b)
    assert len(ids) == len(np.unique(np.concatenate(batches)))


def test_id_set_switches_from_dense_to_sorted_ids_exactly() -> None:
    """Small ids, then huge and negative ones: the count and the ids stay exact."""
    rng = np.random.default_rng(1)
    batches = [rng.integers(0, 5000, size=2000) for _ in range(5)]
    batches += [np.array([IdSet.DENSE_LIMIT + 7, -3, 42, 2**40]), rng.integers(0, 9000, 3000)]
    ids = IdSet()
    for b in batches:
        ids.add(pl.Series(b))
    expected = np.unique(np.concatenate(batches))
    assert len(ids) == len(expected)
    assert np.array_equal(np.sort(ids.values()), expected)


def test_small_blocks_and_buckets_match_defaults(tmp_path: Path) -> None:
    """Tiny blocks (many row groups) and hourly buckets give the same table and report."""
    raw = generate_synthetic(
        SynthConfig(users=300, items=200, events=8_000, seed=3), tmp_path / "raw"
    )
    base = prepare_tianchi(raw, tmp_path / "a", PrepareConfig())
    small = prepare_tianchi(
        raw, tmp_path / "b", replace(PrepareConfig(), block_bytes=8_192, bucket_hours=1)
    )
    skip = {"elapsed_s"}
    assert {k: v for k, v in base.to_dict().items() if k not in skip} == {
        k: v for k, v in small.to_dict().items() if k not in skip
    }
    a = pl.read_parquet(tmp_path / "a" / "interactions.parquet")
    b = pl.read_parquet(tmp_path / "b" / "interactions.parquet")
    assert a.equals(b)
    assert a["ts"].is_sorted()
    assert base.duplicates_dropped > 0
    assert (
        a.height == base.rows_kept == PrepareReport.read(tmp_path / "b" / "report.json").rows_kept
    )

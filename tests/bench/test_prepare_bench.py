"""`memento bench prepare`: the streamed log generator and the benchmark's figures."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from bench import prepare as bench
from bench.prepare import bench_prepare, generate_log


def _lines(folder: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in folder.glob("*rec_tmall_log*"))


def test_generate_log_streams_exactly_the_rows_and_reuses_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of 1,000 rows add up to exactly `rows` lines in 3 parts; a cache hit rewrites none."""
    monkeypatch.setattr(bench, "CHUNK_ROWS", 1_000)
    out = generate_log(5_001, tmp_path / "rows")
    parts = sorted(out.glob("*rec_tmall_log_part*"))
    assert [p.name[-9:] for p in parts] == ["parta.txt", "partb.txt", "partc.txt"]
    assert _lines(out) == 5_001
    first = parts[0].read_bytes().splitlines()[0].split(b"\x01")
    assert len(first) == 4 and first[0].startswith(b"i") and first[1].startswith(b"u")
    mtimes = [p.stat().st_mtime_ns for p in parts]
    generate_log(5_001, out)
    assert [p.stat().st_mtime_ns for p in parts] == mtimes


def test_bench_prepare_local_counts_every_generated_row(tmp_path: Path) -> None:
    """Local-only (the default): scan and prepare both read every line; no Ray keys appear."""
    (run,) = bench_prepare([3_000], work_dir=tmp_path, data_dir=tmp_path / "data")
    scan, local = run["scan_baseline"], run["local"]
    assert isinstance(scan, dict) and isinstance(local, dict)
    assert scan["rows"] == local["rows"] == 3_000
    assert float(local["driver_peak_rss_mb"]) > 0
    assert "ray" not in run and "ray_over_local_rows_per_s" not in run
    raw = pl.read_csv(
        next((tmp_path / "data" / "rows_3000").glob("*parta*")),
        has_header=False,
        separator="\x01",
        quote_char=None,
    )
    assert raw.width == 4
    assert [p.name for p in tmp_path.iterdir()] == ["data"], "scratch outputs are removed"

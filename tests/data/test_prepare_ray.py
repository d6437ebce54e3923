"""The Ray prepare engine writes exactly what the local engine writes, row for row."""

from __future__ import annotations

import itertools
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from data.cli import app
from data.report import PrepareReport
from data.schema import INTERACTIONS_FILE, ITEMS_FILE, REJECTS_FILE, REPORT_FILE, REVIEWS_FILE
from data.synthetic import SynthConfig, generate_synthetic
from data.tianchi import PrepareConfig, prepare_tianchi
from data.tianchi_files import sniff_layout
from data.tianchi_parse import iter_blocks
from data.tianchi_ray import RayEngine, byte_ranges

OUTPUTS = (INTERACTIONS_FILE, ITEMS_FILE, REVIEWS_FILE, REJECTS_FILE)
BAD_LINES = [
    b"i1\x01u5\x01click\n",  # too few fields
    b"i1\x01u5\x01click\x012014-09-02 10:00:00\x01extra\n",  # too many fields
    b"just garbage without separators\n",
    b"\n",  # blank line
    b"i2\x01u6\x01buy\x012014-09-02 10:00:00\n",  # unknown action
    b"i2\x01u6\x01click\x012014-09-31 10:00:00\n",  # bad timestamp
    b"i2\x01u6\x01click\x01yesterday\n",
    b"i2\x01ux\x01click\x012014-09-02 10:00:00\n",  # missing id
    b"i2\x01u6\x01cl\xff\xfeick\x012014-09-02 10:00:00\n",  # undecodable
    b"i999999\x01u6\x01click\x012014-09-02 10:00:00\n",  # dangling item
    b"i3\x01u7\x01cart\x012014/9/3 08:15\r\n",  # CRLF, sample time layout
    b"i3\x01u7\x01cart\x012014/9/3 08:15\r\n",  # its exact duplicate
]


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Official layout: three synthetic log parts with bad rows injected, part c zipped."""
    root = generate_synthetic(
        SynthConfig(users=300, items=200, events=6_000, seed=7, log_parts=3),
        tmp_path_factory.mktemp("raw"),
    )
    parts = sorted(root.glob("*rec_tmall_log_part*"))
    assert len(parts) == 3
    for k, part in enumerate(parts):
        lines = part.read_bytes().splitlines(keepends=True)
        for j, bad in enumerate(BAD_LINES):  # spread over the file, so across blocks
            lines.insert((j * 997 + k * 131) % len(lines), bad)
        lines += lines[100:130]  # exact duplicates far from their originals
        part.write_bytes(b"".join(lines))
    with zipfile.ZipFile(root / f"{parts[2].stem}.zip", "w") as zf:
        zf.write(parts[2], parts[2].name)
    parts[2].unlink()
    return root


def _assert_same_outputs(a: Path, b: Path) -> None:
    for name in OUTPUTS:
        left, right = pl.read_parquet(a / name), pl.read_parquet(b / name)
        assert left.schema == right.schema, name
        assert left.equals(right), name
    ra, rb = PrepareReport.read(a / REPORT_FILE), PrepareReport.read(b / REPORT_FILE)
    skip = {"elapsed_s", "engine"}
    assert {k: v for k, v in ra.to_dict().items() if k not in skip} == {
        k: v for k, v in rb.to_dict().items() if k not in skip
    }


def test_byte_ranges_tile_the_file_on_line_breaks(tmp_path: Path) -> None:
    """Ranges are contiguous, end on line breaks and hold the same bytes as `iter_blocks`."""
    path = tmp_path / "log.txt"
    path.write_bytes(b"".join(f"i{i}\x01u{i * 3}\x01click\n".encode() for i in range(400))[:-1])
    layout = sniff_layout(path)
    ranges = list(byte_ranges(path, layout, 101))
    assert len(ranges) > 10
    assert ranges[0].start == 0 and ranges[-1].end == path.stat().st_size
    assert all(r.end == s.start for r, s in itertools.pairwise(ranges))
    data = path.read_bytes()
    assert all(data[r.end - 1 : r.end] == b"\n" for r in ranges[:-1])
    assert b"".join(data[r.start : r.end] for r in ranges) == b"".join(
        iter_blocks(path, 101, skip_header=False)
    )


def test_ray_engine_matches_local_row_for_row(
    raw_dir: Path, tmp_path: Path, ray_cluster: None
) -> None:
    """Tiny Ray blocks (many tasks, offsets, rejects in several blocks) = local defaults."""
    local = prepare_tianchi(raw_dir, tmp_path / "local", PrepareConfig())
    engine = RayEngine(workers=2)
    ray_cfg = replace(PrepareConfig(), engine="ray", block_bytes=8_192)
    ray_rep = prepare_tianchi(raw_dir, tmp_path / "ray", ray_cfg, engine)
    _assert_same_outputs(tmp_path / "local", tmp_path / "ray")
    assert (local.engine, ray_rep.engine) == ("local", "ray")
    assert engine.peak_rss and all(v > 0 for v in engine.peak_rss.values())
    assert local.duplicates_dropped > 30
    assert {"bad_timestamp", "unknown_action", "missing_id", "undecodable_text"} <= set(
        local.rejected
    )
    assert local.rejected["dangling_item"] >= 3
    assert len(local.log_files) == 3
    rejects = pl.read_parquet(tmp_path / "ray" / REJECTS_FILE)
    assert rejects["row"].is_sorted() and rejects["row"].n_unique() == rejects.height
    assert not (tmp_path / "ray" / "_stage").exists()


def test_ray_engine_matches_local_with_duplicates_kept_and_hourly_buckets(
    raw_dir: Path, tmp_path: Path, ray_cluster: None
) -> None:
    """keep_duplicates and hourly buckets: still identical to the local engine."""
    cfg = PrepareConfig(keep_duplicates=True, bucket_hours=1, block_bytes=32_768)
    prepare_tianchi(raw_dir, tmp_path / "local", cfg)
    prepare_tianchi(raw_dir, tmp_path / "ray", replace(cfg, engine="ray", workers=2))
    _assert_same_outputs(tmp_path / "local", tmp_path / "ray")


def test_ray_engine_matches_local_on_the_real_sample(
    tmall_sample_dir: Path, tmp_path: Path, ray_cluster: None
) -> None:
    """The sample layout (comma CSV with a header, xlsx reviews) too."""
    prepare_tianchi(tmall_sample_dir, tmp_path / "local", PrepareConfig())
    ray_cfg = PrepareConfig(engine="ray", block_bytes=16_384)
    prepare_tianchi(tmall_sample_dir, tmp_path / "ray", ray_cfg)
    _assert_same_outputs(tmp_path / "local", tmp_path / "ray")


def test_cli_engine_ray_and_invalid_engine(
    raw_dir: Path, tmp_path: Path, ray_cluster: None
) -> None:
    """`--engine ray --workers 2` exits 0 with the ray report; an unknown engine exits 2."""
    args = ["prepare", "--input", str(raw_dir), "--json", "--max-reject-fraction", "0.5"]
    result = CliRunner().invoke(
        app, [*args, "--out", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(next(ln for ln in result.output.splitlines() if ln.startswith("{")))
    assert report["engine"] == "ray" and report["rows_read"] > 6_000
    bad = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "x"), "--engine", "spark"])
    assert bad.exit_code == 2
    assert "spark" in bad.output


def test_bucket_groups_are_consecutive_and_cover_every_bucket() -> None:
    """Pass-2 groups: time order kept, every bucket once, at most the asked number of groups."""
    from data.tianchi_ray import _groups

    refs = {k: [(Path(f"f{j}"), 0) for j in range(1 + k % 3)] for k in (5, 1, 9, 3, 7, 2, 8)}
    for n in (1, 2, 3, 7, 20):
        groups = _groups(refs, n)
        assert 1 <= len(groups) <= n
        keys = [k for g in groups for k, _ in g]
        assert keys == sorted(refs)
        assert all(v == refs[k] for g in groups for k, v in g)

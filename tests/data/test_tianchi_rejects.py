"""Bad rows of each kind are counted under their reason; the CLI's two exit paths."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from data.cli import app
from data.tianchi import PrepareConfig, prepare_tianchi

SEP = b"\x01"
GOOD = [
    (b"i1", b"u10", b"click", b"2014-09-02 10:00:00"),
    (b"i2", b"u10", b"cart", b"2014-09-01 09:00:00"),
    (b"i3", b"u11", b"alipay", b"2014-09-03 11:00:00"),
    (b"i1", b"u11", b"collect", b"2014/9/4 12:30"),
]
BAD = {
    "bad_timestamp": [
        (b"i1", b"u12", b"click", b"2014-09-31 10:00:00"),
        (b"i2", b"u12", b"click", b"yesterday"),
        (b"i2", b"u12", b"click", b""),
    ],
    "unknown_action": [(b"i1", b"u13", b"buy", b"2014-09-05 10:00:00")],
    "missing_id": [
        (b"", b"u14", b"click", b"2014-09-05 10:00:00"),
        (b"i1", b"ux", b"click", b"2014-09-05 10:00:00"),
    ],
    "undecodable_text": [(b"i1", b"u15", b"cl\xff\xfeick", b"2014-09-05 10:00:00")],
    "dangling_item": [(b"i999", b"u16", b"click", b"2014-09-05 10:00:00")],
}


def _line(fields: tuple[bytes, ...]) -> bytes:
    return SEP.join(fields) + b"\n"


def _write_input(root: Path, n_good_copies: int) -> Path:
    """Official-format folder: product file, plain part a (with bad rows), zipped part b."""
    root.mkdir(parents=True, exist_ok=True)
    products = [
        SEP.join([str(i).encode(), "新款 外套".encode(), b"http://x", b"1-1", b"null", b"s1"])
        for i in (1, 2, 3)
    ]
    (root / "tianchi_2014001_rec_tmall_product.txt").write_bytes(b"\n".join(products) + b"\n")
    part_a = b"".join(_line(r) for r in GOOD * n_good_copies)
    part_a += b"".join(_line(r) for rows in BAD.values() for r in rows)
    (root / "tianchi_2014002_rec_tmall_log_parta.txt").write_bytes(part_a)
    with zipfile.ZipFile(root / "tianchi_2014002_rec_tmall_log_partb.zip", "w") as zf:
        zf.writestr("tianchi_2014002_rec_tmall_log_partb.txt", _line(GOOD[0]) * 2)
    return root


def test_each_bad_row_counted_under_its_reason(tmp_path: Path) -> None:
    """Every injected bad row lands in rejects under its own reason, with nothing else lost."""
    src = _write_input(tmp_path / "in", n_good_copies=1)
    rep = prepare_tianchi(src, tmp_path / "out", PrepareConfig())
    assert rep.rejected == {k: len(v) for k, v in sorted(BAD.items())}
    n_bad = sum(len(v) for v in BAD.values())
    assert rep.rows_read == len(GOOD) + n_bad + 2
    # part b holds GOOD[0] twice, part a once: two exact duplicates dropped
    assert rep.duplicates_dropped == 2
    assert rep.rows_kept + rep.duplicates_dropped + n_bad == rep.rows_read
    rejects = pl.read_parquet(tmp_path / "out" / "rejects.parquet")
    assert rejects.height == n_bad
    assert set(rejects["table"]) == {"log"}
    assert rejects.filter(pl.col("reason") == "unknown_action")["raw"][0].startswith("i1,u13,buy")
    inter = pl.read_parquet(tmp_path / "out" / "interactions.parquet")
    assert inter["ts"].to_list() == sorted(inter["ts"].to_list())
    assert inter["item_id"][0] == 2  # the 2014-09-01 row comes first after sorting
    assert rep.log_files == [
        "tianchi_2014002_rec_tmall_log_parta.txt",
        "tianchi_2014002_rec_tmall_log_partb.txt",
    ]


def test_no_dangling_check_without_product_file(tmp_path: Path) -> None:
    """Without a product file unknown items are kept, not rejected as dangling."""
    src = _write_input(tmp_path / "in", n_good_copies=1)
    (src / "tianchi_2014001_rec_tmall_product.txt").unlink()
    rep = prepare_tianchi(src, tmp_path / "out", PrepareConfig())
    assert "dangling_item" not in rep.rejected
    assert rep.items_with_product is None


@pytest.mark.parametrize(("limit", "code"), [(0.5, 0), (0.01, 2)])
def test_cli_reject_fraction_exit_paths(tmp_path: Path, limit: float, code: int) -> None:
    """Under the limit: exit 0 with a warning; over it: exit 2 naming the reasons."""
    src = _write_input(tmp_path / "in", n_good_copies=25)
    out = tmp_path / "out"
    args = ["prepare", "--source", "tianchi", "--input", str(src), "--out", str(out), "--json"]
    result = CliRunner().invoke(app, [*args, "--max-reject-fraction", str(limit)])
    assert result.exit_code == code, result.output
    report = json.loads(next(ln for ln in result.output.splitlines() if ln.startswith("{")))
    for key in ("rows_read", "rows_kept", "duplicates_dropped", "rejected", "users", "items",
                "actions", "time_min", "time_max"):  # fmt: skip
        assert key in report
    assert 0.01 < report["reject_fraction"] < 0.5
    if code == 0:
        assert "warning" in result.output
    else:
        assert "exceeds" in result.output
        for reason in BAD:
            assert reason in result.output

"""The Tianchi adapter on the real public sample reproduces the documented figures."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from data.report import PrepareReport
from data.schema import INTERACTIONS_SCHEMA, ITEMS_SCHEMA, REVIEWS_SCHEMA, load_canonical
from data.tianchi import PrepareConfig, prepare_tianchi


@pytest.fixture(scope="module")
def prepared(tmall_sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample prepared once for this module."""
    out = tmp_path_factory.mktemp("sample_prepared")
    prepare_tianchi(tmall_sample_dir, out, PrepareConfig())
    return out


def test_sample_report_figures(prepared: Path) -> None:
    """Report shows the documented rows, duplicates, users, items, actions and time range."""
    rep = PrepareReport.read(prepared / "report.json")
    assert rep.rows_read == 4844
    assert rep.duplicates_dropped == 241
    assert rep.rows_kept == 4844 - 241
    assert rep.users == 836
    assert rep.items == 554
    assert rep.actions == {"click": 4474, "collect": 5, "cart": 358, "alipay": 7}
    assert sum(rep.actions_kept.values()) == rep.rows_kept
    assert rep.rejected == {}
    assert rep.items_with_product == 554
    assert rep.products_read == 562 and rep.reviews_read == 2712
    assert datetime(2014, 9, 1) <= datetime.fromisoformat(rep.time_min or "")
    assert datetime.fromisoformat(rep.time_max or "") < datetime(2014, 10, 1)


def test_sample_canonical_tables(prepared: Path) -> None:
    """Tables have the canonical schema, ts is sorted and every log item joins a product."""
    data = load_canonical(prepared)
    assert dict(data.interactions.schema) == INTERACTIONS_SCHEMA
    assert dict(data.items.schema) == ITEMS_SCHEMA
    assert dict(data.reviews.schema) == REVIEWS_SCHEMA
    inter = data.interactions
    assert inter["ts"].is_sorted()
    assert inter.is_duplicated().sum() == 0
    missing = inter.join(data.items, on="item_id", how="anti")
    assert missing.height == 0
    assert data.items.filter(pl.col("brand_id").is_null()).height == 198
    assert (data.items["brand_id"] == "null").sum() == 0
    # GB18030 titles decoded to real Chinese text
    assert data.items["title"].str.contains("新款").any()
    assert data.reviews.height == 2712
    assert data.reviews["ts"].min() >= datetime(2014, 9, 1)  # type: ignore[operator]


def test_keep_duplicates_keeps_all_rows(tmall_sample_dir: Path, tmp_path: Path) -> None:
    """With keep_duplicates every valid row is written and none counted as dropped."""
    rep = prepare_tianchi(tmall_sample_dir, tmp_path, PrepareConfig(keep_duplicates=True))
    assert rep.duplicates_dropped == 0
    assert rep.rows_kept == 4844
    assert rep.actions_kept == rep.actions

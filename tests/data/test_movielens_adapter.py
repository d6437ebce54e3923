"""MovieLens-100K atomic files map to the canonical schema with the documented rating ladder."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from data.movielens import ATOMIC_DIR, fetch_movielens_100k, movielens_from_wheel
from data.schema import INTERACTIONS_SCHEMA, load_canonical


def _fake_wheel(path: Path) -> Path:
    inter = (
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t10\t5\t874965758\n1\t11\t1\t874965700\n2\t10\t3\t874965800\n2\t12\t4\t874965800\n"
        "3\t11\t2\t874965900\n"
    )
    item = (
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "10\tToy Story\t1995\tAnimation Comedy\n11\tHeat\t1995\tAction\n12\tFargo\t1996\tCrime\n"
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(ATOMIC_DIR + "ml-100k.inter", inter)
        zf.writestr(ATOMIC_DIR + "ml-100k.item", item)
    return path


def test_rating_ladder_and_schema(tmp_path: Path) -> None:
    """Ratings 5/4/3/<=2 become alipay/cart/collect/click; rows sorted by time; items titled."""
    out = movielens_from_wheel(_fake_wheel(tmp_path / "recbole.whl"), tmp_path / "ml")
    data = load_canonical(out)
    inter = data.interactions
    assert dict(inter.schema) == INTERACTIONS_SCHEMA
    assert inter["ts"].is_sorted()
    got = {(u, i): a for u, i, a in inter.select("user_id", "item_id", "action").iter_rows()}
    assert got == {(1, 10): "alipay", (1, 11): "click", (2, 10): "collect", (2, 12): "cart",
                   (3, 11): "click"}  # fmt: skip
    assert inter["ts"][0] == datetime.fromtimestamp(874965700, UTC).replace(tzinfo=None)
    assert inter["source"].unique().to_list() == ["movielens-100k"]
    assert data.items.filter(item_id=10)["title"].item() == "Toy Story (1995)"
    assert data.items.filter(item_id=10)["category"].item() == "Animation Comedy"
    assert data.reviews.height == 0


@pytest.mark.slow
def test_fetch_real_movielens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real wheel download yields the 100,000 ratings of 943 users on 1,682 movies."""
    monkeypatch.setenv("MEMENTO_CACHE_DIR", str(tmp_path))
    data = load_canonical(fetch_movielens_100k())
    assert data.interactions.height == 100_000
    assert data.interactions["user_id"].n_unique() == 943
    assert data.items.height == 1682

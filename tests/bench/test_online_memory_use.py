"""Case-support share of a served run, read back from the service's decision log."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.online.memory_use import case_support
from recsys.rec.item_features import ITEM_FEATURES
from serving.decision_blob import DecisionBlob
from serving.service import DecisionSnapshot
from serving.store import Store

COUNT = ITEM_FEATURES.index("case_log_count")


def _decision(store: Store, k: int, supported: list[bool], chosen: list[int]) -> None:
    feats = [[0.0] * len(ITEM_FEATURES) for _ in supported]
    for row, has in zip(feats, supported, strict=True):
        row[COUNT] = 0.7 if has else 0.0
    blob = DecisionBlob([], [], feats, chosen, [], [], "", kind="items")
    store.put_decision(DecisionSnapshot(f"d{k}", "u", b"", blob.encode(), (), (), "v", float(k)))


def test_case_support_is_the_share_of_pool_and_shown_items_some_case_proposed(
    tmp_path: Path,
) -> None:
    """Two decisions: pool shares 1/4 and 3/4, shown shares 0/2 and 2/2; the last half is the
    second decision alone; a log without items-scorer decisions gives None."""
    store = Store(tmp_path / "db.sqlite3")
    _decision(store, 0, [True, False, False, False], [1, 2])
    _decision(store, 1, [True, True, True, False], [0, 2])
    store.close()
    got = case_support(tmp_path / "db.sqlite3", last_share=0.5)
    assert got == pytest.approx({"pool": 0.5, "shown": 0.5, "pool_last": 0.75, "shown_last": 1.0})
    empty = Store(tmp_path / "empty.sqlite3")
    empty.close()
    assert case_support(tmp_path / "empty.sqlite3")["pool"] is None

"""The score-parts probe (`bench.online.score_parts`) on a short real soft-q run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.online.bench import OnlineConfig
from bench.online.score_parts import PARTS, probe, windows
from bench.sim.base import UserPoolSimulator
from recsys.loop import MemoryLoop
from recsys.rec.scorers.items import ItemsScorer


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Tiny networks: one torch thread avoids oversubscription on shared cores."""
    import torch

    torch.set_num_threads(1)


def test_the_probe_ranks_each_pool_by_each_part_and_leaves_no_wrapper(tmp_path: Path) -> None:
    """300 planted decisions: one row per warm decision, every ranking finite and none above
    the truth (the pool sorted by value is the best list inside it: theta falls with the
    position) and the truth none above the catalogue's best list; the wrapped methods are the
    originals afterwards; a cached run is refused."""
    originals = (ItemsScorer.cross_bias, MemoryLoop.decide, UserPoolSimulator.item_values)
    cfg = OnlineConfig(
        interactions=300, seeds=(0,), methods=("soft-q",), ope=False, workdir=tmp_path
    )
    rows = probe(cfg, 0)
    assert 100 < len(rows) <= 300
    for row in rows:
        assert all(math.isfinite(row[p]) for p in PARTS)
        assert all(row[p] <= row["truth"] + 1e-9 for p in PARTS), row
        assert row["truth"] <= row["catalogue"] + 1e-9, "the pool is part of the catalogue"
    assert any(row["Q"] != row["r"] for row in rows), "two parts that never differ say nothing"
    assert (ItemsScorer.cross_bias, MemoryLoop.decide, UserPoolSimulator.item_values) == originals
    labels = [label for label, _ in windows(rows, 150, 300)]  # windows without rows are left out
    assert labels == ["before -1,000..0", "after 0..250", "last 20%"]
    with pytest.raises(ValueError, match="is cached"):
        probe(cfg, 0)

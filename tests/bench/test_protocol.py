"""The frozen protocol's split fingerprints: stable, sensitive, and equal to docs/protocol.md."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from bench.replay.protocol import frame_sha256, split_sha256

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def _frame(rows: list[tuple[int, int, int, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "ts": [datetime(2020, 1, 1, 0, 0, r[2]) for r in rows],
            "action": [r[3] for r in rows],
            "source": ["x"] * len(rows),
        }
    )


def test_frame_hash_is_stable_and_sees_order_and_values() -> None:
    """The same rows hash alike (other columns ignored); a swapped, changed or dropped row
    changes the digest."""
    rows = [(1, 10, 0, "click"), (2, 11, 1, "cart")]
    a = frame_sha256(_frame(rows))
    assert a == frame_sha256(_frame(rows).with_columns(source=pl.lit("y")))
    assert a != frame_sha256(_frame(rows[::-1]))
    assert a != frame_sha256(_frame([(1, 10, 0, "click"), (2, 11, 2, "cart")]))
    assert a != frame_sha256(_frame(rows[:1]))


def _doc_hashes(dataset: str) -> dict[tuple[str, str], str]:
    pat = re.compile(
        rf"^\| {re.escape(dataset)} \| (\S+) \| (\w+) \| \d+ \| `([0-9a-f]{{64}})` \|$"
    )
    out = {}
    for line in DOC.read_text().splitlines():
        m = pat.match(line)
        if m:
            out[(m.group(1), m.group(2))] = m.group(3)
    return out


@pytest.mark.parametrize("split", ["leave-last-out", "time-cutoff"])
def test_doc_hashes_match_the_synthetic_default(
    split: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The synthetic default's split digests, generated into an empty cache, are the ones
    docs/protocol.md records."""
    from training.config import TrainConfig
    from training.prepare import load_data, split_data

    monkeypatch.setenv("MEMENTO_CACHE_DIR", str(tmp_path))
    cfg = TrainConfig(data="synthetic", split=split)  # type: ignore[arg-type]
    got = split_sha256(split_data(cfg, load_data(cfg)[0]))
    want = _doc_hashes("synthetic")
    assert {p: want[(split, p)] for p in ("train", "valid", "test")} == got

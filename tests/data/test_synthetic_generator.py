"""The synthetic generator is deterministic and its planted structure is recoverable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from data.report import PrepareReport
from data.synthetic import GROUND_TRUTH_FILE, SynthConfig, generate_synthetic, load_ground_truth
from data.tianchi import PrepareConfig, prepare_tianchi

CFG = SynthConfig(users=1500, items=800, events=60_000, seed=7, chunk_events=20_000)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(raw folder, prepared folder) for CFG."""
    raw = generate_synthetic(CFG, tmp_path_factory.mktemp("synth_raw"))
    prepared = tmp_path_factory.mktemp("synth_prepared")
    prepare_tianchi(raw, prepared, PrepareConfig())
    return raw, prepared


def test_same_seed_byte_identical(generated: tuple[Path, Path], tmp_path: Path) -> None:
    """Generating again with the same seed gives byte-identical files; another seed differs."""
    raw, _ = generated
    again = generate_synthetic(CFG, tmp_path / "again")
    assert _digest(again) == _digest(raw)
    other = generate_synthetic(SynthConfig(**{**CFG.__dict__, "seed": 8}), tmp_path / "other")
    assert _digest(other) != _digest(raw)


def test_adapter_reads_generated_files(generated: tuple[Path, Path]) -> None:
    """Official-format output passes the adapter with no rejects and the planted duplicates."""
    raw, prepared = generated
    rep = PrepareReport.read(prepared / "report.json")
    truth = load_ground_truth(raw / GROUND_TRUTH_FILE)
    assert rep.rejected == {}
    assert rep.rows_kept == CFG.events
    assert rep.duplicates_dropped == truth.duplicates_planted > 0
    assert len(list(raw.glob("tianchi_2014002_rec_tmall_log_part*.txt"))) == CFG.log_parts
    times = pl.read_parquet(prepared / "interactions.parquet")["ts"]
    assert times.min().month == 9 and times.max().month == 9  # type: ignore[union-attr]


def test_funnel_rates_recovered(generated: tuple[Path, Path]) -> None:
    """Observed action shares match the planted funnel (about 92% click, 7% cart)."""
    raw, prepared = generated
    truth = load_ground_truth(raw / GROUND_TRUTH_FILE)
    inter = pl.read_parquet(prepared / "interactions.parquet")
    shares = inter["action"].cast(pl.String).value_counts(normalize=True)
    observed = dict(zip(shares["action"], shares["proportion"], strict=True))
    for action, p in truth.funnel.items():
        assert abs(observed.get(action, 0.0) - p) < max(0.01, 0.3 * p), (action, observed)
    assert observed["click"] > 0.9 and observed["collect"] < 0.01 and observed["alipay"] < 0.01


def test_transitions_and_segments_recovered(generated: tuple[Path, Path]) -> None:
    """Next items follow the planted transitions ~p_follow of the time; users favour their
    segment's categories."""
    raw, prepared = generated
    truth = load_ground_truth(raw / GROUND_TRUTH_FILE)
    inter = pl.read_parquet(prepared / "interactions.parquet").sort(
        "user_id", "ts", maintain_order=True
    )
    trans = pl.DataFrame(
        {"prev": list(truth.transitions), "planted": list(truth.transitions.values())}
    )
    pairs = (
        inter.with_columns(
            prev=pl.col("item_id").shift(1).over("user_id"),
            gap=(pl.col("ts") - pl.col("ts").shift(1).over("user_id")).dt.total_seconds(),
        )
        .filter(pl.col("gap") < 1800)
        .join(trans, on="prev")
    )
    follow = (pairs["item_id"] == pairs["planted"]).mean()
    assert isinstance(follow, float)
    # within-session pairs: p_follow by construction plus rare chance hits
    assert abs(follow - truth.p_follow) < 0.06, follow
    # baseline: a random next item almost never hits the planted one
    shuffled = pairs["planted"].shuffle(seed=0)
    assert (pairs["item_id"] == shuffled).mean() < 0.1  # type: ignore[operator]

    seg = pl.DataFrame(
        {"user_id": list(truth.user_segment), "seg": list(truth.user_segment.values())}
    )
    cat = pl.DataFrame(
        {"item_id": list(truth.item_category), "cat": list(truth.item_category.values())}
    )
    pref = pl.DataFrame(
        [{"seg": s["segment"], "cat": c} for s in truth.segments for c in s["categories"]]  # type: ignore[attr-defined]
    ).with_columns(is_pref=pl.lit(True))
    joined = (
        inter.join(seg, on="user_id")
        .join(cat, on="item_id")
        .join(pref, on=["seg", "cat"], how="left")
    )
    share = joined["is_pref"].fill_null(False).mean()
    assert isinstance(share, float)
    assert share > truth.p_pref - 0.05, share


def test_item_popularity_long_tail(generated: tuple[Path, Path]) -> None:
    """Item popularity is long-tailed: the top 10% of items get most of the events."""
    _, prepared = generated
    counts = pl.read_parquet(prepared / "interactions.parquet")["item_id"].value_counts()["count"]
    top = counts.sort(descending=True).head(max(1, counts.len() // 10)).sum()
    assert top / counts.sum() > 0.4

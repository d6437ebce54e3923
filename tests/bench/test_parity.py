"""Offline evaluation and the real HTTP service produce the same lists from one bundle."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bench.parity import ParityConfig, run_parity, score_gap
from bench.replay.config import SeqMethodConfig
from recsys.bundle import ModelBundle
from training.config import TrainConfig


def test_parity_tiny_model_through_uvicorn(tmp_path: Path) -> None:
    """Every held-out decision of a tiny trained model gets the identical list over HTTP."""
    train = TrainConfig(
        synth_users=60,
        synth_items=90,
        synth_events=1000,
        iterations=1,
        max_train_decisions=120,
        llm_fraction=0.0,
    )
    text = dataclasses.replace(train.core.text, kind="hashing", dim=64)
    train = dataclasses.replace(train, core=dataclasses.replace(train.core, text=text))
    out = run_parity(ParityConfig(train, decisions=0, workdir=tmp_path))
    assert out["decisions"] >= 50, out
    assert out["decisions"] - out["cold_decisions"] >= 40, "too few warm decisions to test"
    assert out["identical_lists"] == out["decisions"], out["mismatches"]
    assert out["list_length"] == train.core.recommend.top_n


def test_parity_of_the_sequence_policy_through_uvicorn(tmp_path: Path) -> None:
    """A tiny trained sequence policy (the seq scorer) gives the identical list over HTTP on
    every held-out decision, from the bundle the service loads."""
    train = TrainConfig(synth_users=60, synth_items=90, synth_events=1000, llm_fraction=0.0)
    text = dataclasses.replace(train.core.text, kind="hashing", dim=64)
    train = dataclasses.replace(train, core=dataclasses.replace(train.core, text=text))
    seq = SeqMethodConfig(epochs=1, work=tmp_path / "fits")
    out = run_parity(ParityConfig(train, decisions=0, workdir=tmp_path, seq=seq))
    served = ModelBundle.load(tmp_path / "checkpoints" / "snapshot")
    assert served.config.recommend.scorer == "seq" and served.seq is not None
    assert out["decisions"] - out["cold_decisions"] >= 40, "too few warm decisions to test"
    assert out["identical_lists"] == out["decisions"], out["mismatches"]


def test_score_gap_names_the_swapped_pair_with_both_sides_scores() -> None:
    """An adjacent swap reports its position, both items, their scores per side and the gaps."""
    offline, served = [5, 383, 136, 7], [5, 136, 383, 7]
    out = score_gap(
        42, offline, {5: 0.9, 383: 0.5000004, 136: 0.5, 7: 0.1}, served, {136: 0.5, 383: 0.4999999}
    )
    assert out["event"] == 42 and out["position"] == 1 and out["items"] == [383, 136]
    assert out["offline_scores"] == [0.5000004, 0.5]
    assert out["served_scores"] == [0.4999999, 0.5]
    assert abs(out["gap_offline"] - 4e-7) < 1e-12
    assert abs(out["gap_served"] + 1e-7) < 1e-12


def test_score_gap_of_a_prefix_and_of_a_missing_score() -> None:
    """A shorter list differs where it ends; an item a side did not list has no score or gap."""
    out = score_gap(1, [1, 2, 3], {1: 1.0, 2: 0.5, 3: 0.2}, [1, 2], {1: 1.0, 2: 0.5})
    assert out["position"] == 2 and out["items"] == [3, None]
    assert out["offline_scores"] == [0.2, None] and out["gap_offline"] is None

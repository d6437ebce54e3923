"""Offline evaluation and the real HTTP service produce the same lists from one bundle."""

from __future__ import annotations

from pathlib import Path

from bench.parity import ParityConfig, run_parity
from training.config import TrainConfig


def test_parity_tiny_model_through_uvicorn(tmp_path: Path) -> None:
    """Every held-out decision of a tiny trained model gets the identical list over HTTP."""
    train = TrainConfig(
        synth_users=60,
        synth_items=90,
        synth_events=1000,
        text_encoder="hashing",
        text_dim=64,
        iterations=1,
        max_train_decisions=120,
        llm_fraction=0.0,
        seeds=(0,),
    )
    out = run_parity(ParityConfig(train, decisions=0, workdir=tmp_path))
    assert out["decisions"] >= 50, out
    assert out["decisions"] - out["cold_decisions"] >= 40, "too few warm decisions to test"
    assert out["identical_lists"] == out["decisions"], out["mismatches"]
    assert out["list_length"] == train.top_n

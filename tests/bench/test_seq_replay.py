"""The sequence policy as soft-q in a replay comparison: soft-q and its ablations on the same
rows as the peers, its validation curve, and per-seed fits cached so a rerun resumes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from bench.replay.compare import compare_methods, run_methods
from bench.replay.config import SEQ_ABLATIONS, CompareConfig, SeqMethodConfig
from training.config import TrainConfig


def _config(tmp_path: Path) -> CompareConfig:
    """A tiny synthetic comparison: soft-q (sequence policy, 2 epochs, 2 seeds) and causal
    popularity."""
    train = TrainConfig(
        synth_users=60,
        synth_items=90,
        synth_events=1000,
        iterations=1,
        max_train_decisions=100,
        output_dir=tmp_path / "out",
    )
    text = dataclasses.replace(train.core.text, kind="hashing", dim=64)
    train = dataclasses.replace(train, core=dataclasses.replace(train.core, text=text))
    return CompareConfig(
        train=train,
        modes=("soft-q", "causal-popularity"),
        seeds=(0, 1),
        policy="seq",
        seq=SeqMethodConfig(epochs=2, ks=(5,), weights=(0.0, 1.0), work=tmp_path / "fits"),
    )


def test_soft_q_and_its_ablations_share_the_rows_and_resume_from_the_cache(
    tmp_path: Path,
) -> None:
    """Every seq result covers the peers' rows; the curve has one point per epoch; a second
    run reads the cached fits and gives the same lists."""
    cfg = _config(tmp_path)
    first = run_methods(cfg)
    names = {"soft-q", *SEQ_ABLATIONS, "causal-popularity"}
    assert set(first.results) == names
    rows = [d.event for d in first.results["causal-popularity"][0].decisions]
    for name in ("soft-q", *SEQ_ABLATIONS):
        assert [r.seed for r in first.results[name]] == [0, 1]
        assert [d.event for d in first.results[name][0].decisions] == rows
    soft = first.results["soft-q"][0]
    assert len(soft.curve) == 2 and len(soft.info["valid_curve"]) == 2
    chosen = soft.info["chosen_memory"]
    assert {"k", "w", "k_vote", "prior", "v"} <= set(chosen)
    assert "v=0" in soft.info["prior_valid"], "no prior must be a validation candidate"
    no_prior = first.results["no-prior"][0].info
    assert no_prior["prior_weight"] == 0.0 and no_prior["case_weight"] == chosen["w"]
    assert "valid_ndcg@10" not in soft.info, "soft-q must not be a primary-peer candidate"
    assert len(list((tmp_path / "fits").glob("*-select.pt"))) == 2
    assert len(list((tmp_path / "fits").glob("*-refit.pt"))) == 2
    assert (tmp_path / "out" / "model" / "seq" / "seq.pt").is_file()
    again = run_methods(cfg)
    for name in ("soft-q", *SEQ_ABLATIONS):
        for a, b in zip(first.results[name], again.results[name], strict=True):
            assert [d.items for d in a.decisions] == [d.items for d in b.decisions]
    summary, paired = compare_methods(first.results)
    assert summary["soft-q"]["n_seeds"] == 2
    assert set(paired) == names - {"soft-q"}
    assert all(np.isfinite(p["diff"]) for p in paired.values())

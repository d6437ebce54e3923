"""The cross-model stream of the score-parts probe and its replay (`bench.online.cross_replay`)
on a short real soft-q run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.online.bench import OnlineConfig
from bench.online.cross_replay import _served, main, parse_setting, replay, window_means
from bench.online.score_parts import probe, read_stream, write_stream


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Tiny networks: one torch thread avoids oversubscription on shared cores."""
    import torch

    torch.set_num_threads(1)


def test_the_served_setting_replayed_ranks_every_pool_as_the_run_did(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """300 planted decisions: the stream holds one valued score event per probed row and the
    run's training steps; played to the served setting it gives the probe's `r` ranking and
    `truth` on every decision (the same model, the same steps in the same order); another rate
    ranks differently; the file round-trips and the CLI prints one line per setting."""
    cfg = OnlineConfig(
        interactions=300, seeds=(0,), methods=("soft-q",), ope=False, workdir=tmp_path / "w"
    )
    stream: list[dict] = []
    rows = probe(cfg, 0, stream)
    kinds = [e["kind"] for e in stream]
    assert kinds[0] == "catalogue" and kinds.count("score") == len(rows)
    assert kinds.count("learn") > 1000, "every shown item of every closed decision is a step"
    t, got, best = replay(stream, _served())
    assert t.tolist() == [int(x["t"]) for x in rows]
    np.testing.assert_allclose(got, [x["r"] for x in rows], rtol=1e-6)
    np.testing.assert_allclose(best, [x["truth"] for x in rows], rtol=1e-6)
    _, other, _ = replay(stream, _served() | {"lr": 0.01})
    assert not np.allclose(other, got)
    _, mixed, _ = replay(stream, _served() | {"mix": 20.0})  # a float, as parse_setting reads it
    assert not np.allclose(mixed, got)
    # with the exact values to learn from, the same features rank the pools better
    t_fit, fit, _ = replay(stream, _served(), fit_values=True)
    late = t_fit >= 100
    assert fit[late].mean() > got[late].mean() + 0.05, (fit[late].mean(), got[late].mean())

    path = tmp_path / "crosses.jsonl.gz"
    meta = {"simulator": "planted", "seed": 0, "interactions": 300, "shift": 150}
    write_stream(path, stream, meta)
    assert read_stream(path) == (meta | {"kind": "meta"}, stream)
    assert main([str(path), "--setting", "lr=0.01,power_t=0.25", "--fit-values"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = ["served", "lr=0.01,power_t=0.25", "served", "best"]
    assert [line.split()[0] for line in out[2:]] == names


def test_settings_and_windows_are_read_as_written() -> None:
    """Unknown or malformed settings are refused by name; windows without decisions are left
    out and the others hold their means."""
    assert parse_setting("lr=0.03, power_t=0.25") == {"lr": 0.03, "power_t": 0.25}
    assert parse_setting("mix=20,target=click") == {"mix": 20.0, "target": "click"}
    for bad in ("alpha=1", "lr"):
        with pytest.raises(ValueError, match="NAME=VALUE"):
            parse_setting(bad)
    t = np.arange(2000)
    means = dict(window_means(t, {"x": t.astype(float)}, 1500, 2000))
    assert list(means) == ["first 1,000", "before -1,000..0", "after 0..500", "last 20%"]
    assert means["after 0..500"]["x"] == pytest.approx(1749.5)

"""RecBole peer runner: atomic files reproduce our split; end to end on a planted split (slow)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from bench.peers.recbole_runner import run_recbole_peers, write_atomic_files


def _frame(rows: list[tuple[int, int, int]]) -> pl.DataFrame:
    """(user, item, minute) rows as a canonical interaction frame."""
    t0 = datetime(2014, 9, 1)
    return pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "action": ["click"] * len(rows),
            "ts": [t0 + timedelta(minutes=r[2]) for r in rows],
        },
        schema={
            "user_id": pl.Int64,
            "item_id": pl.Int64,
            "action": pl.String,
            "ts": pl.Datetime("us"),
        },
    )


def _read(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


def test_atomic_files_follow_our_split(tmp_path: Path) -> None:
    """General files copy each split; sequential files carry only strictly earlier items."""
    train = _frame([(1, 10, 0), (1, 11, 1), (2, 12, 0)])
    valid = _frame([(1, 12, 2)])
    test = _frame([(1, 13, 3), (2, 10, 5), (3, 11, 6)])
    counts = write_atomic_files(train, valid, test, tmp_path, max_seq_len=2)
    gen = _read(tmp_path / "memento" / "memento.test.inter")
    assert gen[0] == ["user_id:token", "item_id:token", "timestamp:float"]
    assert gen[1] == [
        "1",
        "13",
        f"{(datetime(2014, 9, 1, 0, 3) - datetime(1970, 1, 1)).total_seconds():.3f}",
    ]
    assert len(gen) == 4
    seq_train = _read(tmp_path / "memento_seq" / "memento_seq.train.inter")
    assert seq_train[1:] == [["1", "10", "11", seq_train[1][3]]]
    seq_test = _read(tmp_path / "memento_seq" / "memento_seq.test.inter")
    # user 1: history truncated to the last 2 items (11, 12); user 3 has no history: dropped
    assert [r[:3] for r in seq_test[1:]] == [["1", "11 12", "13"], ["2", "12", "10"]]
    assert counts == {
        "train": 3,
        "valid": 1,
        "test": 3,
        "seq_train": 1,
        "seq_valid": 1,
        "seq_test": 2,
    }


def test_integer_seconds_timestamps(tmp_path: Path) -> None:
    """Integer-second ts columns are written unchanged as float seconds."""
    df = pl.DataFrame({"user_id": [1, 1], "item_id": [5, 6], "ts": [100, 200]})
    write_atomic_files(df, df.head(0), df.tail(1), tmp_path)
    rows = _read(tmp_path / "memento" / "memento.train.inter")
    assert [r[2] for r in rows[1:]] == ["100.000", "200.000"]


@pytest.mark.slow
def test_recbole_peers_end_to_end(tmp_path: Path) -> None:
    """On a planted next-item walk SASRec nails the next item and both peers report metrics."""
    rows = []
    for u in range(48):
        c, start = u % 4, (u * 7) % 10
        rows += [(u, c * 10 + (start + k) % 10, u + 100 * k) for k in range(8)]
    rows += [(100, 999, 0), (100, 1, 1), (100, 2, 2), (100, 3, 3)]  # 999 only ever in a history
    df = _frame(rows).sort("user_id", "ts")
    df = df.with_columns(pl.col("ts").rank("ordinal").over("user_id").alias("r"))
    train, valid, test = (
        df.filter(p).drop("r") for p in (pl.col("r") <= 6, pl.col("r") == 7, pl.col("r") == 8)
    )
    res = run_recbole_peers(
        train, valid, test, models=("BPR", "SASRec"), seeds=(0,), epochs=15, workdir=tmp_path
    )
    assert set(res) == {"BPR", "SASRec"}
    for r in res.values():
        assert 0.0 <= r["ndcg@10"] <= r["hr@10"] <= 1.0
        assert r["n_test"] == 48
    assert res["SASRec"]["hr@10"] > 0.8
    assert res["SASRec"]["ndcg@10"] > res["BPR"]["ndcg@10"]


def test_finished_seeds_are_reused_without_running_recbole(tmp_path: Path) -> None:
    """A result stored for (split, settings, model, seed) is read back; a new split misses."""
    import json

    from bench.errors import PeerRunError
    from bench.peers.recbole_runner import PeerEnvConfig, _cache_key, _settings

    rows = [(u, u % 5 + k, 10 * k + u) for u in range(6) for k in range(4)]
    df = _frame(rows).sort("user_id", "ts")
    df = df.with_columns(pl.col("ts").rank("ordinal").over("user_id").alias("r"))
    train, valid, test = (
        df.filter(p).drop("r") for p in (pl.col("r") <= 2, pl.col("r") == 3, pl.col("r") == 4)
    )
    settings = _settings(3, 3, True, 50, 256, None)
    write_atomic_files(train, valid, test, tmp_path / "data")
    key = _cache_key(tmp_path / "data", settings)
    (tmp_path / "results").mkdir()
    for seed, ndcg in ((0, 0.2), (1, 0.4)):
        stored = {"ndcg@10": ndcg, "hit@10": 0.5, "mrr@10": 0.1, "sequential": False}
        stored |= {"lists": [[1]] * 6, "curve": [0.1], "epochs_run": 1, "best_epoch": 1}
        stored |= {"epoch_seconds": [1.0]}
        (tmp_path / "results" / f"{key}-BPR-{seed}.json").write_text(json.dumps(stored))
    broken = PeerEnvConfig(path=tmp_path / "no-venv", python="/nonexistent/python")
    res = run_recbole_peers(
        train, valid, test, models=("BPR",), seeds=(0, 1), epochs=3, workdir=tmp_path, env=broken
    )
    assert res["BPR"]["ndcg@10"] == pytest.approx(0.3)
    assert res["BPR"]["per_seed"]["1"]["ndcg@10"] == pytest.approx(0.4)
    with pytest.raises(PeerRunError):  # another split: nothing stored, the job must run
        run_recbole_peers(
            train.head(5),
            valid,
            test,
            models=("BPR",),
            seeds=(0,),
            epochs=3,
            workdir=tmp_path,
            env=broken,
        )


def test_concurrent_runs_train_a_seed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs asking for the same (split, model, seed) at once: one trains, the other waits
    for its stored result."""
    import threading
    import time

    from bench.peers import recbole_runner

    calls: list[int] = []

    def fake_job(*args: object, **kwargs: object) -> dict[str, dict[str, object]]:
        calls.append(1)
        time.sleep(0.5)
        r = {"ndcg@10": 0.25, "hit@10": 0.5, "mrr@10": 0.1, "sequential": False}
        r |= {"lists": [[1]] * 6, "curve": [0.1], "epochs_run": 1, "best_epoch": 1}
        return {"0": r | {"epoch_seconds": [1.0]}}

    monkeypatch.setattr(recbole_runner, "_run_job", fake_job)
    rows = [(u, u % 5 + k, 10 * k + u) for u in range(6) for k in range(4)]
    df = _frame(rows).sort("user_id", "ts")
    df = df.with_columns(pl.col("ts").rank("ordinal").over("user_id").alias("r"))
    train, valid, test = (
        df.filter(p).drop("r") for p in (pl.col("r") <= 2, pl.col("r") == 3, pl.col("r") == 4)
    )
    out: list[float] = []

    def one() -> None:
        res = run_recbole_peers(train, valid, test, models=("BPR",), seeds=(0,), workdir=tmp_path)
        out.append(res["BPR"]["ndcg@10"])

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert out == [pytest.approx(0.25)] * 2

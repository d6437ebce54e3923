"""RecBole peers hand back one ranked list per test row: alignment, nulls, cache key, harness."""

from __future__ import annotations

import importlib.util
import json
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl
import pytest

from bench.errors import PeerRunError
from bench.peers import harness, recbole_runner
from bench.peers.recbole_runner import (
    QUERY_ROWS,
    _cache_key,
    _settings,
    run_recbole_peers,
    write_atomic_files,
)
from bench.peers.rows import LIST_MARGIN, QueryRow, check_lists, read_query_rows
from tests.training.frames import minute_frame


def _frame(rows: list[tuple[int, int, int]]) -> pl.DataFrame:
    """(user, item, minute) rows as an interaction frame."""
    return minute_frame(rows, datetime(2014, 9, 1))


# user 1: 10, 11, 10 in train, 12 in valid, tests 13 then 14; user 2: 12 then test 10;
# user 3: test only (no earlier item). Test rows deliberately out of time and user order.
TRAIN = _frame([(1, 10, 0), (1, 11, 1), (1, 10, 2), (2, 12, 0)])
VALID = _frame([(1, 12, 3)])
TEST = _frame([(3, 11, 6), (1, 14, 8), (2, 10, 5), (1, 13, 4)])


def _job_result(lists: list[list[int] | None], sequential: bool) -> dict[str, Any]:
    """What the RecBole job writes for one seed."""
    return {
        "ndcg@10": 0.5,
        "hit@10": 0.5,
        "mrr@10": 0.5,
        "best_valid": {"ndcg@10": 0.3},
        "sequential": sequential,
        "curve": [0.1, 0.3, 0.2],
        "epochs_run": 3,
        "best_epoch": 2,
        "epoch_seconds": [1.0, 2.0, 3.0],
        "lists": lists,
    }


def test_query_rows_follow_test_frame_order(tmp_path: Path) -> None:
    """One query row per test row, in the frame's order, with every earlier item (all splits,
    earlier test rows too) and the distinct count; the test-only user has none."""
    write_atomic_files(TRAIN, VALID, TEST, tmp_path, max_seq_len=3)
    rows = read_query_rows(tmp_path / QUERY_ROWS)
    assert rows == [
        QueryRow(3, (), 0),
        QueryRow(1, (10, 12, 13), 4),  # 10, 11, 10, 12, 13: last 3, distinct 4
        QueryRow(2, (12,), 1),
        QueryRow(1, (11, 10, 12), 3),
    ]


def test_check_lists_alignment_and_nulls() -> None:
    """None exactly where a sequential model has no earlier item; one entry per row; lists no
    longer than LIST_MARGIN + n_seen and without repeats."""
    rows = [QueryRow(3, (), 0), QueryRow(1, (10,), 1)]
    check_lists([None, [1, 2]], rows, sequential=True)
    check_lists([[5], [1, 2]], rows, sequential=False)
    with pytest.raises(ValueError, match="2 test rows"):
        check_lists([[1, 2]], rows, sequential=True)
    with pytest.raises(ValueError, match="given"):
        check_lists([[1], [1, 2]], rows, sequential=True)
    with pytest.raises(ValueError, match="missing"):
        check_lists([None, [1, 2]], rows, sequential=False)
    with pytest.raises(ValueError, match="items"):
        check_lists([None, [1, 1]], rows, sequential=True)
    with pytest.raises(ValueError, match="items"):
        check_lists([None, list(range(LIST_MARGIN + 2))], rows, sequential=True)


def test_cache_key_covers_version_and_test_row_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key changes with RESULT_VERSION, with the patience, and with the test frame's row
    order (the lists' alignment), though the atomic files are the same."""
    settings = _settings(60, 3, True, 50, 256, None)
    write_atomic_files(TRAIN, VALID, TEST, tmp_path / "a")
    write_atomic_files(TRAIN, VALID, TEST.reverse(), tmp_path / "b")
    for name in ("memento/memento.test.inter", "memento_seq/memento_seq.test.inter"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    key = _cache_key(tmp_path / "a", settings)
    assert _cache_key(tmp_path / "b", settings) != key
    assert _cache_key(tmp_path / "a", _settings(60, 5, True, 50, 256, None)) != key
    monkeypatch.setattr(recbole_runner, "RESULT_VERSION", recbole_runner.RESULT_VERSION + 1)
    assert _cache_key(tmp_path / "a", settings) != key


def test_stored_result_without_lists_is_not_reused(tmp_path: Path) -> None:
    """A result stored before lists existed (same key) is a miss: the job must run."""
    write_atomic_files(TRAIN, VALID, TEST, tmp_path / "data")
    key = _cache_key(tmp_path / "data", _settings(20, 3, True, 50, 256, None))
    (tmp_path / "results").mkdir()
    old = {"ndcg@10": 0.2, "hit@10": 0.5, "mrr@10": 0.1, "sequential": False}
    (tmp_path / "results" / f"{key}-BPR-0.json").write_text(json.dumps(old))
    broken = recbole_runner.PeerEnvConfig(path=tmp_path / "no-venv", python="/nonexistent/py")
    with pytest.raises(PeerRunError):
        run_recbole_peers(TRAIN, VALID, TEST, models=("BPR",), workdir=tmp_path, env=broken)


def test_runner_returns_lists_curves_epochs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per model: lists per seed aligned with the test rows, the valid curves and the epochs;
    the lists stay out of ``recbole``; a second call reads them back from the cache."""
    lists: list[list[int] | None] = [None, [14, 10], [10], [13]]
    calls: list[int] = []

    def fake_job(*args: object, **kwargs: object) -> dict[str, dict[str, Any]]:
        calls.append(1)
        return {"0": _job_result(lists, sequential=True)}

    monkeypatch.setattr(recbole_runner, "_run_job", fake_job)
    for _ in range(2):
        res = run_recbole_peers(TRAIN, VALID, TEST, models=("SASRec",), workdir=tmp_path)
        r = res["SASRec"]
        assert r["lists"] == {"0": lists}
        assert r["curves"] == {"0": [0.1, 0.3, 0.2]}
        assert r["epochs"] == {"0": {"run": 3, "best": 2, "epoch_s": 2.0}}
        assert "lists" not in r["recbole"]["0"] and r["recbole"]["0"]["best_epoch"] == 2
        assert r["n_test"] == 4 and r["n_test_evaluated"] == 3
    assert len(calls) == 1


def test_runner_rejects_misaligned_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job answering a sequential model's cold row (or the wrong number of rows) fails and
    nothing is stored."""

    def fake_job(*args: object, **kwargs: object) -> dict[str, dict[str, Any]]:
        return {"0": _job_result([[1], [14], [10], [13]], sequential=True)}

    monkeypatch.setattr(recbole_runner, "_run_job", fake_job)
    with pytest.raises(PeerRunError, match="test row 0"):
        run_recbole_peers(TRAIN, VALID, TEST, models=("GRU4Rec",), workdir=tmp_path)
    assert not list((tmp_path / "results").glob("*.json"))


def test_peer_runs_names_and_workdir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """peer_runs keys results by harness name, one RecBole model per call, in the dataset's
    own work folder, with the early-stopping settings passed through."""
    seen: list[dict[str, Any]] = []

    def fake(*frames: pl.DataFrame, **kw: Any) -> dict[str, dict[str, Any]]:
        seen.append(kw)
        return {kw["models"][0]: {"model": kw["models"][0]}}

    monkeypatch.setenv("MEMENTO_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(recbole_runner, "run_recbole_peers", fake)
    split = SimpleNamespace(train=TRAIN, valid=VALID, test=TEST)
    out = harness.peer_runs(split, "tmall-sample", ["bpr", "GRU4Rec", "recbole-sasrec"], [0, 1])
    assert out == {
        "recbole-bpr": {"model": "BPR"},
        "recbole-gru4rec": {"model": "GRU4Rec"},
        "recbole-sasrec": {"model": "SASRec"},
    }
    assert {kw["epochs"] for kw in seen} == {harness.PEER_MAX_EPOCHS}
    assert {kw["patience"] for kw in seen} == {harness.PEER_PATIENCE}
    assert seen[0]["seeds"] == (0, 1)
    workdir = seen[0]["workdir"]
    assert workdir.parent == tmp_path / "memento" / "recbole-replay"
    assert workdir.name.startswith("tmall-sample-")
    assert harness.peer_workdir("movielens-100k") != workdir
    with pytest.raises(ValueError, match="unknown peer"):
        harness.peer_method("lightgcn")


def test_best_epoch_follows_recbole_early_stopping() -> None:
    """The job's best epoch is RecBole's: the last score matching or beating all before it."""
    spec = importlib.util.spec_from_file_location("recbole_job", recbole_runner.JOB_SCRIPT)
    assert spec is not None and spec.loader is not None
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    assert job._best_epoch([0.1, 0.3, 0.2, 0.3, 0.25]) == 4
    assert job._best_epoch([0.5, 0.4]) == 1
    assert job._best_epoch([]) == 0
    assert job.LIST_MARGIN == LIST_MARGIN


@pytest.mark.slow
def test_peer_lists_reproduce_recbole_metrics(tmp_path: Path) -> None:
    """On a planted next-item walk with the test rows shuffled, each peer's lists give back
    RecBole's own test NDCG@10 (BPR after masking the user's earlier items, the sequential
    peers on the rows they evaluate); the test-only user is None for the sequential peers."""
    from training.metrics import ndcg_at_k

    rows = []
    for u in range(48):
        c, start = u % 4, (u * 7) % 10
        rows += [(u, c * 10 + (start + k) % 10, u + 100 * k) for k in range(8)]
    df = _frame(rows).with_columns(pl.col("ts").rank("ordinal").over("user_id").alias("r"))
    train, valid, test = (
        df.filter(p).drop("r") for p in (pl.col("r") <= 6, pl.col("r") == 7, pl.col("r") == 8)
    )
    test = pl.concat([test, _frame([(200, 5, 1000)])]).sample(fraction=1.0, shuffle=True, seed=3)
    res = run_recbole_peers(
        train,
        valid,
        test,
        models=("BPR", "SASRec", "GRU4Rec"),
        epochs=8,
        patience=2,
        workdir=tmp_path,
    )
    targets, users = test["item_id"].to_list(), test["user_id"].to_list()
    seen: dict[int, set[int]] = {}
    for u, i in pl.concat([train, valid]).select("user_id", "item_id").iter_rows():
        seen.setdefault(u, set()).add(i)
    cold = users.index(200)
    for model, r in res.items():
        lists = r["lists"]["0"]
        assert len(lists) == test.height and 1 <= r["epochs"]["0"]["run"] <= 8
        assert len(r["curves"]["0"]) == r["epochs"]["0"]["run"]
        if model == "BPR":
            pairs = zip(lists, users, strict=True)
            ranked = [[x for x in li if x not in seen.get(u, set())] for li, u in pairs]
            ours = ndcg_at_k(ranked, targets, 10)
        else:
            assert lists[cold] is None
            keep = [k for k in range(len(lists)) if k != cold]
            ours = ndcg_at_k([lists[k] for k in keep], [targets[k] for k in keep], 10)
        assert ours == pytest.approx(r["recbole"]["0"]["ndcg@10"], abs=1e-4)

"""What `memento train` prints: library chatter goes to the log file, tables fit 100 columns."""

from __future__ import annotations

import io
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from bench.replay.console import print_result
from training.console import QuietLibraries, log_to_file


@pytest.fixture()
def console_log() -> Iterator[io.StringIO]:
    """A console handler on the root logger, as `memento`'s root callback installs one."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(QuietLibraries())
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


def test_library_output_goes_to_the_log_file(console_log: io.StringIO, tmp_path: Path) -> None:
    """faiss INFO lines, library warnings and raw stderr land in the file; the project's own
    warnings still reach the console; stderr is restored afterwards."""
    real_stderr = sys.stderr
    with log_to_file(tmp_path / "run" / "memento.log") as path:
        logging.getLogger("faiss.loader").info("Loading faiss with AVX2 support.")
        logging.getLogger("training.modes").info("soft-q s0 iter 1")
        warnings.warn("past_key_values is deprecated", FutureWarning, stacklevel=1)
        print("Loading weights: 100%", file=sys.stderr)
        logging.getLogger("bench.replay.compare").warning("no test decisions")
    assert sys.stderr is real_stderr
    log = path.read_text()
    for line in ("Loading faiss", "soft-q s0 iter 1", "past_key_values", "Loading weights"):
        assert line in log, line
    console = console_log.getvalue()
    assert "no test decisions" in console
    for noise in ("faiss", "past_key_values", "Loading weights", "soft-q s0 iter 1"):
        assert noise not in console, noise


def test_console_filter_drops_library_info_only(console_log: io.StringIO) -> None:
    """Outside a job the console shows the project's INFO but a library's only from WARNING."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    try:
        logging.getLogger("faiss.loader").info("Loading faiss.")
        logging.getLogger("data.tianchi").info("pass 1: validating")
        # (not an mlflow logger: mlflow stops propagating to the root once it is imported)
        logging.getLogger("urllib3.connectionpool").warning("schema is old")
    finally:
        root.setLevel(level)
    text = console_log.getvalue()
    assert "Loading faiss" not in text
    assert "pass 1" in text and "schema is old" in text


def test_printed_summary_fits_100_columns(tmp_path: Path) -> None:
    """The summary `memento train` prints (every method and metric over 3 seeds, long paths)
    has no line over 100 characters, on a 200-column terminal, and names the log file."""
    from bench.replay.config import ALL_MODES

    metrics = ("hr@5", "hr@10", "hr@20", "ndcg@10", "mrr", "reward_per_decision", "coverage@10")
    result = SimpleNamespace(
        dataset="movielens-100k",
        per_seed={m: [{k: 0.1 + s / 100 for k in metrics} for s in range(3)] for m in ALL_MODES},
        paths={"table": tmp_path / "metrics.md"},
        run_id="0" * 32,
        model_version="3",
        elapsed_s=12.3,
    )
    console = Console(width=200, record=True, file=io.StringIO())
    print_result(result, tmp_path / "memento.log", console)
    lines = console.export_text().splitlines()
    table_lines = [line for line in lines if line[:1] in "┏┃┡│└"]
    assert len(table_lines) >= 2 * (len(ALL_MODES) + 4), "expected the table split in two"
    assert all(len(line) <= 100 for line in table_lines), max(table_lines, key=len)
    assert "…" not in "\n".join(lines)
    assert f"log: {tmp_path / 'memento.log'}" in lines


def test_bench_payload_follows_the_output_contract() -> None:
    """`memento bench replay --json` prints n_decisions, results[method] with ndcg@10 and its CI,
    hr@10, warm_ndcg@10, and paired[method] = soft-q minus method with its CI; the markdown
    table of the docs renders it."""
    from bench.replay.payload import bench_payload
    from bench.report import ci_markdown
    from bench.stats import compare, row_metrics
    from training.replay_env import Decision

    rows = {
        "soft-q": row_metrics([Decision(e, [e], e, 0.0, False, e < 3) for e in range(10)]),
        "item-knn": row_metrics([Decision(e, [-1], e, 0.0, False, e < 3) for e in range(10)]),
    }
    summary, paired = compare(rows)
    result = SimpleNamespace(
        summary=summary,
        paired=paired,
        metrics={"soft-q": {"mrr": 1.0}, "item-knn": {"mrr": 0.0}},
        curves={"soft-q": [[0.1, 0.2], [0.1, 0.3]]},
        per_seed={"soft-q": [{}, {}], "item-knn": [{}]},
        info={"item-knn": [{}]},
        dataset="fixture",
        paths={},
        run_id=None,
        elapsed_s=1.0,
    )
    cfg = SimpleNamespace(
        train=SimpleNamespace(split="leave-last-out"), seeds=(0, 1), peer_seeds=(0,)
    )
    out = bench_payload(result, cfg, {})
    assert out["n_decisions"] == 10 and out["n_warm"] == 7
    r = out["results"]["soft-q"]
    assert r["ndcg@10"] == 1.0 and r["ndcg@10_ci"] == [1.0, 1.0] and r["hr@10"] == 1.0
    assert r["warm_ndcg@10"] == 1.0 and r["curve"] == [0.1, 0.25] and r["seeds"] == 2
    assert out["paired"]["item-knn"]["diff"] == 1.0 and out["paired"]["item-knn"]["ci"] == [
        1.0,
        1.0,
    ]
    table = ci_markdown(out)
    assert "| soft-q | 1.0000 [1.0000, 1.0000]" in table and "+1.0000 [1.0000, 1.0000]" in table

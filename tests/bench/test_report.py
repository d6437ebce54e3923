"""Results tables: mean ± std over seeds, best per column, markdown/rich/CSV forms."""

from __future__ import annotations

import io
import math

import pytest
from rich.console import Console

from bench.report import (
    DEFAULT_METRICS,
    SHORT_HEADERS,
    MetricSummary,
    aggregate,
    markdown_table,
    rich_table,
    rich_tables,
    table_rows,
)

RUNS = {
    "popularity": [{"ndcg@10": 0.07, "mrr": 0.05}, {"ndcg@10": 0.07, "mrr": 0.05}],
    "soft-q": [
        {"ndcg@10": 0.08, "mrr": 0.06, "reward_per_decision": 0.2},
        {"ndcg@10": 0.10, "mrr": 0.04, "reward_per_decision": float("nan")},
    ],
}


def test_aggregate_mean_and_sample_std() -> None:
    """Mean and ddof=1 std over seeds; NaN seeds are skipped."""
    s = aggregate(RUNS)
    assert s["soft-q"]["ndcg@10"].mean == pytest.approx(0.09)
    assert s["soft-q"]["ndcg@10"].std == pytest.approx(math.sqrt(2 * 0.01**2))
    assert s["soft-q"]["reward_per_decision"].n == 1
    assert s["popularity"]["mrr"].std == 0.0
    assert "reward_per_decision" not in s["popularity"]


def test_markdown_bolds_best_and_marks_missing() -> None:
    """The best mean per column is bold; a missing metric shows a dash."""
    md = markdown_table(aggregate(RUNS), metrics=["ndcg@10", "mrr", "reward_per_decision"])
    lines = md.strip().splitlines()
    assert lines[0] == "| method | ndcg@10 | mrr | reward_per_decision |"
    assert lines[2] == "| popularity | 0.0700 ± 0.0000 | **0.0500 ± 0.0000** | – |"
    # tied means are both bold
    assert lines[3] == "| soft-q | **0.0900 ± 0.0141** | **0.0500 ± 0.0141** | **0.2000** |"


def test_lower_is_better_and_rows() -> None:
    """lower_is_better flips the bold choice; CSV rows carry mean and std columns."""
    md = markdown_table(aggregate(RUNS), metrics=["ndcg@10"], lower_is_better={"ndcg@10"})
    assert "| popularity | **0.0700 ± 0.0000** |" in md
    rows = table_rows(aggregate(RUNS), metrics=["ndcg@10", "reward_per_decision"])
    assert rows[1]["method"] == "soft-q" and rows[1]["n_seeds"] == 2
    assert rows[1]["ndcg@10"] == pytest.approx(0.09)
    assert rows[0]["reward_per_decision"] == ""


def test_rich_table_renders() -> None:
    """The rich table renders every method and the default metric columns in order."""
    console = Console(width=200, record=True)
    console.print(rich_table(aggregate(RUNS), title="results"))
    text = console.export_text()
    assert "soft-q" in text and "popularity" in text and "0.0900 ± 0.0141" in text
    assert text.index("ndcg@10") < text.index("mrr") < text.index("reward_per_decision")


def _all_methods_summary() -> dict[str, dict[str, MetricSummary]]:
    """Every method of the benchmark with every default metric over three seeds."""
    from bench.replay.config import ALL_MODES

    runs = {
        m: [{k: 0.1234 + 0.01 * s for k in DEFAULT_METRICS} for s in range(3)] for m in ALL_MODES
    }
    return aggregate(runs)


@pytest.mark.parametrize("width", [100, 80])
def test_console_tables_fit_the_width(width: int) -> None:
    """Split tables of all methods x all metrics (mean ± std) stay within `width` columns,
    on a terminal wider than that too, and lose no header or cell to truncation."""
    summary = _all_methods_summary()
    console = Console(width=200, record=True, file=io.StringIO())
    for table in rich_tables(summary, title="replay: synthetic", width=width):
        console.print(table)
    text = console.export_text()
    widest = max(text.splitlines(), key=len)
    assert len(widest) <= width, f"{len(widest)} > {width}: {widest!r}"
    assert "…" not in text
    for metric in DEFAULT_METRICS:
        assert SHORT_HEADERS.get(metric, metric) in text, metric
    assert "recbole-sasrec" in text and "0.1334 ± 0.0100" in text


def test_console_tables_one_table_when_it_fits() -> None:
    """A narrow summary stays one table with the plain title."""
    tables = rich_tables(aggregate(RUNS), ["ndcg@10", "mrr"], title="t", width=100)
    assert len(tables) == 1 and tables[0].title == "t"

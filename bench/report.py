"""Results tables across methods and seeds: mean ± std as a rich table, markdown and CSV rows.

Input is what a benchmark collects: ``{method: [per-seed metric dict, ...]}``. The std is the
sample standard deviation over seeds (ddof=1; 0 with a single seed). In markdown the best mean
of each column is bold (highest, or lowest for metrics listed in ``lower_is_better``). On the
console (``rich_tables``) long metric names are abbreviated (``SHORT_HEADERS``) and the columns
are split over several tables so that each fits the given width (100 by default).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.table import Table

__all__ = [
    "DEFAULT_METRICS",
    "SHORT_HEADERS",
    "MetricSummary",
    "aggregate",
    "ci_markdown",
    "markdown_table",
    "rich_table",
    "rich_tables",
    "table_rows",
]

DEFAULT_METRICS: tuple[str, ...] = (
    "hr@5",
    "hr@10",
    "hr@20",
    "ndcg@10",
    "mrr",
    "reward_per_decision",
    "warm_ndcg@10",
    "warm_reward_per_decision",
    "coverage@10",
)

SHORT_HEADERS: dict[str, str] = {
    "reward_per_decision": "reward/dec",
    "warm_reward_per_decision": "warm reward/dec",
    "coverage@10": "cov@10",
}
"""Console column headers of long metric names (markdown and CSV keep the full names)."""


@dataclass(frozen=True)
class MetricSummary:
    """One metric of one method over seeds."""

    mean: float
    """Mean over seeds."""
    std: float
    """Sample std over seeds (0 for one seed)."""
    n: int
    """Number of seeds that reported the metric."""

    def format(self, digits: int = 4) -> str:
        """``mean ± std`` (just the mean for a single seed)."""
        if self.n <= 1:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


Summary = dict[str, dict[str, MetricSummary]]


def aggregate(runs: Mapping[str, Sequence[Mapping[str, float]]]) -> Summary:
    """``{method: [per-seed metrics]}`` -> ``{method: {metric: MetricSummary}}``.

    Non-finite values (NaN) are skipped; a metric absent from every seed is absent.
    """
    out: Summary = {}
    for method, seeds in runs.items():
        keys = list(dict.fromkeys(k for s in seeds for k in s))
        out[method] = {}
        for key in keys:
            vals = [float(s[key]) for s in seeds if key in s and math.isfinite(float(s[key]))]
            if not vals:
                continue
            std = statistics.stdev(vals) if len(vals) > 1 else 0.0
            out[method][key] = MetricSummary(statistics.fmean(vals), std, len(vals))
    return out


def _columns(summary: Summary, metrics: Sequence[str] | None) -> list[str]:
    if metrics is not None:
        return list(metrics)
    present = {k for m in summary.values() for k in m}
    cols = [m for m in DEFAULT_METRICS if m in present]
    cols += sorted(present - set(cols))
    return cols


def _best(summary: Summary, col: str, lower_is_better: Collection[str]) -> float | None:
    means = [m[col].mean for m in summary.values() if col in m]
    if not means:
        return None
    return min(means) if col in lower_is_better else max(means)


def _cell(
    summary: Summary,
    ms: Mapping[str, MetricSummary],
    col: str,
    digits: int,
    lower_is_better: Collection[str],
    best_fmt: str,
) -> str:
    """Formatted cell; ``best_fmt`` wraps the best mean of the column (when >1 method)."""
    s = ms.get(col)
    if s is None:
        return "–"
    text = s.format(digits)
    best = _best(summary, col, lower_is_better)
    is_best = best is not None and round(s.mean, digits) == round(best, digits)
    return best_fmt.format(text) if is_best and len(summary) > 1 else text


def table_rows(summary: Summary, metrics: Sequence[str] | None = None) -> list[dict[str, object]]:
    """Flat rows for CSV: ``method``, ``n_seeds``, then ``<metric>`` and ``<metric>_std``."""
    rows: list[dict[str, object]] = []
    for method, ms in summary.items():
        row: dict[str, object] = {
            "method": method,
            "n_seeds": max((s.n for s in ms.values()), default=0),
        }
        for col in _columns(summary, metrics):
            s = ms.get(col)
            row[col] = s.mean if s else ""
            row[f"{col}_std"] = s.std if s else ""
        rows.append(row)
    return rows


def markdown_table(
    summary: Summary,
    metrics: Sequence[str] | None = None,
    digits: int = 4,
    lower_is_better: Collection[str] = (),
) -> str:
    """A GitHub markdown table, one row per method, best mean per column in bold."""
    cols = _columns(summary, metrics)
    lines = [
        "| method | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for method, ms in summary.items():
        cells = [_cell(summary, ms, c, digits, lower_is_better, "**{}**") for c in cols]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def rich_table(
    summary: Summary,
    metrics: Sequence[str] | None = None,
    digits: int = 4,
    title: str | None = None,
    lower_is_better: Collection[str] = (),
    headers: Mapping[str, str] | None = None,
) -> Table:
    """A rich ``Table`` of the same content (best mean per column in bold green).

    ``headers`` renames columns (metric -> header); unnamed ones keep the metric name.
    """
    cols = _columns(summary, metrics)
    table = Table(title=title)
    table.add_column("method", style="bold")
    for col in cols:
        table.add_column((headers or {}).get(col, col), justify="right")
    for method, ms in summary.items():
        cells = [_cell(summary, ms, c, digits, lower_is_better, "[bold green]{}[/]") for c in cols]
        table.add_row(method, *cells)
    return table


def _rendered_width(header: str, cells: Sequence[str]) -> int:
    """Characters a rich column takes: its widest text + padding (2) + its right border (1)."""
    return max(cell_len(header), *(cell_len(c) for c in cells)) + 3


def rich_tables(
    summary: Summary,
    metrics: Sequence[str] | None = None,
    digits: int = 4,
    title: str | None = None,
    lower_is_better: Collection[str] = (),
    width: int = 100,
) -> list[Table]:
    """``rich_table`` with ``SHORT_HEADERS``, split by columns into tables of at most ``width``
    characters each (the method column repeats; a title gets ``(i/n)`` when split)."""
    cols = _columns(summary, metrics)
    plain = [[(ms[c].format(digits) if c in ms else "–") for ms in summary.values()] for c in cols]
    method_w = _rendered_width("method", list(summary)) + 1  # + the left border
    groups: list[list[str]] = []
    used = width + 1
    for col, cells in zip(cols, plain, strict=True):
        w = _rendered_width(SHORT_HEADERS.get(col, col), cells)
        if used + w > width:
            groups.append([])
            used = method_w
        groups[-1].append(col)
        used += w
    groups = groups or [[]]
    return [
        rich_table(
            summary,
            group,
            digits,
            title if title is None or len(groups) == 1 else f"{title} ({i}/{len(groups)})",
            lower_is_better,
            SHORT_HEADERS,
        )
        for i, group in enumerate(groups, start=1)
    ]


def _fmt_ci(ci: Sequence[float | None] | None) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "-"
    return f"[{ci[0]:.4f}, {ci[1]:.4f}]"


def ci_markdown(payload: Mapping[str, Any]) -> str:
    """The benchmark JSON (`bench.replay.payload.bench_payload`) as a markdown table: every method's
    NDCG@10 with its 95% CI over test rows, HR@10, warm NDCG@10, and soft-q minus the method
    with its paired CI (all rows and warm rows), best NDCG@10 first."""
    res = payload["results"]
    paired = payload.get("paired", {})
    lines = [
        "| method | NDCG@10 [95% CI] | HR@10 | warm NDCG@10 | soft-q − method [paired CI] "
        "| warm: soft-q − method [paired CI] | seeds |",
        "|---|---|---:|---:|---|---|---:|",
    ]
    order = sorted(res, key=lambda m: -(res[m].get("ndcg@10") or 0.0))
    for m in order:
        r = res[m]
        p = paired.get(m)
        diff = f"{p['diff']:+.4f} {_fmt_ci(p['ci'])}" if p else "(reference)"
        wdiff = f"{p['warm_diff']:+.4f} {_fmt_ci(p['warm_ci'])}" if p else "(reference)"
        lines.append(
            f"| {m} | {r['ndcg@10']:.4f} {_fmt_ci(r.get('ndcg@10_ci'))} | {r['hr@10']:.4f} "
            f"| {r['warm_ndcg@10']:.4f} | {diff} | {wdiff} | {r.get('seeds', 1)} |"
        )
    return "\n".join(lines) + "\n"

"""Smoke test of the stdio vs in-process tool-latency benchmark."""

from __future__ import annotations

from bench.research.tool_latency import measure_tool_latency


def test_measure_tool_latency_reports_both_transports() -> None:
    """Both transports are measured with positive medians and a ratio computed from them."""
    out = measure_tool_latency(n_calls=5, n_docs=50)
    for label in ("in_process", "stdio"):
        for tool in ("search", "math"):
            assert out[label][tool]["median_ms"] > 0
    ratio = out["stdio"]["search"]["median_ms"] / out["in_process"]["search"]["median_ms"]
    assert out["search_stdio_over_inprocess_median"] == ratio

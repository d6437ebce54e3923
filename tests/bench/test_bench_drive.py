"""The load test's phase figures: CPU per recommend, the throughput ratio, feedback bodies."""

from __future__ import annotations

import random

from bench.service.drive import PhaseStats, feedback_bodies, recommend_figures


def test_recommend_figures_divide_cpu_by_requests_and_rates() -> None:
    """1 in flight: 0.5 CPU s over 100 requests = 5 ms; 8: 1.0 s over 200 = 5 ms; 250/100/s."""
    seq = PhaseStats(100, 0, 5.0, 9.0, 100.0)
    conc = PhaseStats(200, 0, 30.0, 60.0, 250.0)
    out = recommend_figures(seq, conc, (1.0, 1.5, 2.5), 8)
    assert out["server_cpu_ms_per_recommend_sequential"] == 5.0
    assert out["server_cpu_ms_per_recommend_concurrency_8"] == 5.0
    assert out["ratio_throughput_concurrent_vs_sequential"] == 2.5
    assert out["http_recommend_concurrency_8"]["p99_ms"] == 60.0


def test_recommend_figures_without_answers_give_none() -> None:
    """A phase where nothing answered has no CPU per request and no ratio."""
    empty = PhaseStats(0, 3, float("nan"), float("nan"), 0.0)
    out = recommend_figures(empty, empty, (0.0, 0.0, 0.0), 4)
    assert out["server_cpu_ms_per_recommend_sequential"] is None
    assert out["ratio_throughput_concurrent_vs_sequential"] is None


def test_feedback_bodies_skip_empty_lists_and_keep_positions() -> None:
    """One feedback on the first item of each non-empty decision, keyed by its position."""
    decisions = [
        {"decision_id": "d0", "items": [{"item_id": "a"}, {"item_id": "b"}]},
        {"decision_id": "d1", "items": []},
        {"decision_id": "d2", "items": [{"item_id": "c"}]},
    ]
    bodies = feedback_bodies(decisions, random.Random(0), "k")
    assert [(b["decision_id"], b["item_id"], b["idempotency_key"]) for _, b, _ in bodies] == [
        ("d0", "a", "k-0"),
        ("d2", "c", "k-2"),
    ]
    assert all(
        path == "/v1/feedback" and b["action"] in {"click", "cart", "alipay"}
        for path, b, _ in bodies
    )

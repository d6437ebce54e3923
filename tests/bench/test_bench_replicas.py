"""The N-machine projection, the done-when ratios and the learner backlog of `memento bench
replicas` (pure arithmetic, no servers)."""

from __future__ import annotations

import math

import pytest

from bench.service.learner_rate import backlog_rows
from bench.service.projection import interleaved_ratios, project_throughput, targets


def test_projection_is_cpu_bound_until_the_learner_caps_it() -> None:
    """10 ms CPU per request on 4 cores = 400 req/s per machine; a learner applying 1000
    feedback/s at 0.5 feedback per request caps recommend at 2000 req/s (hand-computed)."""
    rows = project_throughput(0.01, 4, 1000.0, 0.5, (1, 2, 4, 8))
    assert [r.machines for r in rows] == [1, 2, 4, 8]
    assert [r.cpu_capacity_per_s for r in rows] == [400.0, 800.0, 1600.0, 3200.0]
    assert all(r.learner_cap_per_s == 2000.0 for r in rows)
    assert [r.projected_per_s for r in rows] == [400.0, 800.0, 1600.0, 2000.0]
    assert [r.bound for r in rows] == ["cpu", "cpu", "cpu", "learner"]


def test_projection_without_a_learner_rate_is_uncapped() -> None:
    """A learner rate of 0 (not measured) leaves the CPU capacity uncapped."""
    (row,) = project_throughput(0.004, 2, 0.0, 1.0, (3,))
    assert row.projected_per_s == pytest.approx(1500.0)
    assert math.isinf(row.learner_cap_per_s) and row.bound == "cpu"


def test_projection_rejects_a_non_positive_cost() -> None:
    """A zero CPU cost per request is a measurement error, not infinite capacity."""
    with pytest.raises(AssertionError, match="cpu_s_per_request"):
        project_throughput(0.0, 4, 100.0, 1.0)


def _figures(p50: float, per_s: float) -> dict[str, object]:
    """One variant's recommend figures (only what `targets` reads)."""
    return {"recommend_1_in_flight": {"p50_ms": p50}, "recommend_8_in_flight": {"per_s": per_s}}


def test_targets_compare_each_path_within_the_run() -> None:
    """Direct 6 ms over plain 5 ms = 1.2 (met); 2 replicas 150 over 100 req/s = 1.5 (not met
    at 1.6); through the proxy 15 / 5 = 3.0 (not met); the learner's 250/s meets 200."""
    plain, plain_pg = _figures(5.0, 120.0), _figures(6.0, 110.0)
    one = {"direct": _figures(6.0, 100.0), "proxy": _figures(15.0, 60.0)}
    two = {"direct": _figures(6.5, 150.0), "proxy": _figures(14.0, 120.0)}
    t = targets(plain, plain_pg, one, two, 8, 250.0, {"direct_over_plain_sqlite": 1.6})
    assert t["direct"]["replica1_p50_over_plain_p50"] == 1.2 and t["direct"]["replica1_p50_met"]
    assert not t["direct"]["replica1_p50_interleaved_met"]  # 1.6 > 1.5
    assert "replica1_p50_interleaved_met" not in t["proxy"]
    assert t["direct"]["replica1_p50_over_plain_pg_p50"] == 1.0
    assert t["direct"]["replicas2_over_replicas1_throughput"] == 1.5
    assert not t["direct"]["replicas2_throughput_met"]
    assert t["proxy"]["replica1_p50_over_plain_p50"] == 3.0 and not t["proxy"]["replica1_p50_met"]
    assert t["proxy"]["replicas2_throughput_met"]  # 120 / 60 = 2.0
    assert t["learner_met"] and t["learner_target_min_per_s"] == 200.0


def test_targets_without_direct_ingress_report_the_proxy_only() -> None:
    """A run whose replicas had no port of their own has no `direct` ratios."""
    one, two = {"proxy": _figures(10.0, 50.0)}, {"proxy": _figures(10.0, 90.0)}
    t = targets(_figures(5.0, 100.0), _figures(5.0, 100.0), one, two, 8, 150.0)
    assert "direct" not in t and t["proxy"]["replicas2_over_replicas1_throughput"] == 1.8
    assert not t["learner_met"]


def test_backlog_rows_skip_the_first_item_and_stop_at_the_limit() -> None:
    """Every listed item but the first, decision by decision, unique keys, cut at `limit`."""
    decisions = [
        {"decision_id": "d1", "items": [{"item_id": "a"}, {"item_id": "b"}, {"item_id": "c"}]},
        {"decision_id": "d2", "items": []},
        {"decision_id": "d3", "items": [{"item_id": "x"}, {"item_id": "y"}]},
    ]
    rows = backlog_rows(decisions, 10)
    assert [(r[1], r[2]) for r in rows] == [("d1", "b"), ("d1", "c"), ("d3", "y")]
    assert len({r[0] for r in rows}) == 3 and all(r[3] == "click" for r in rows)
    assert backlog_rows(decisions, 2) == rows[:2]


def test_interleaved_ratios_divide_each_path_by_each_plain_service() -> None:
    """Direct 6 ms, proxy 15 ms over plain SQLite 5 ms and PostgreSQL 6 ms (hand-computed)."""
    turns = {"plain_sqlite": 5.0, "plain_pg": 6.0, "direct": 6.0, "proxy": 15.0}
    one = {"interleaved_1_in_flight": {k: {"p50_ms": v} for k, v in turns.items()}}
    r = interleaved_ratios(one)
    assert r["direct_over_plain_sqlite"] == 1.2 and r["direct_over_plain_pg"] == 1.0
    assert r["proxy_over_plain_sqlite"] == 3.0 and r["proxy_over_plain_pg"] == 2.5
    assert r["plain_pg_over_plain_sqlite"] == 1.2 and "direct_over_direct" not in r
    assert interleaved_ratios({}) == {}

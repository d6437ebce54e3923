"""The N-machine projection of `memento bench replicas` (pure arithmetic, no servers)."""

from __future__ import annotations

import math

import pytest

from bench.service.projection import project_throughput


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

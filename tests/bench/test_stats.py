"""Bootstrap CIs over test rows, paired comparisons and per-row metrics."""

from __future__ import annotations

import numpy as np
import pytest

from bench.stats import bootstrap_ci, compare, paired_ci, row_metrics, seed_mean
from training.replay_env import Decision


def _decision(event: int, items: list[int], target: int, cold: bool = False) -> Decision:
    return Decision(event, items, target, 0.0, False, cold)


def test_row_metrics_are_the_leave_one_out_definitions() -> None:
    ds = [
        _decision(5, [1, 2, 3], 1),  # rank 1
        _decision(2, [1, 2, 3], 3),  # rank 3
        _decision(9, [*range(100, 111), 7], 7, cold=True),  # rank 12: outside the top 10
    ]
    r = row_metrics(ds)
    np.testing.assert_array_equal(r.events, [2, 5, 9])  # sorted by event
    np.testing.assert_allclose(r.ndcg, [1 / np.log2(4), 1.0, 0.0])
    np.testing.assert_array_equal(r.hit, [1, 1, 0])
    np.testing.assert_array_equal(r.cold, [False, False, True])


def test_bootstrap_ci_covers_the_mean_and_shrinks_with_rows() -> None:
    rng = np.random.default_rng(0)
    small, large = rng.random(100), rng.random(10_000)
    lo_s, hi_s = bootstrap_ci(small)
    lo_l, hi_l = bootstrap_ci(large)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 5  # ~ 1 / sqrt(rows)


def test_paired_ci_sees_a_small_shift_an_unpaired_view_would_miss() -> None:
    """Rows vary a lot, methods differ by a constant 0.01: the paired CI excludes 0 while
    the two methods' own CIs overlap."""
    rng = np.random.default_rng(1)
    base = rng.random(500)
    a, b = base + 0.01 + rng.normal(0, 0.02, 500), base
    diff, (lo, hi) = paired_ci(a, b)
    assert diff == pytest.approx(0.01, abs=0.003)
    assert 0.0 < lo < diff < hi
    assert bootstrap_ci(a)[0] < bootstrap_ci(b)[1]  # unpaired intervals overlap
    same, (lo0, hi0) = paired_ci(b, b)
    assert same == 0.0 and lo0 == hi0 == 0.0


def test_compare_reports_warm_rows_and_refuses_other_rows() -> None:
    ds_a = [_decision(e, [e], e, cold=e % 2 == 0) for e in range(20)]  # every target at rank 1
    ds_b = [_decision(e, [-1], e, cold=e % 2 == 0) for e in range(20)]  # every target missed
    rows = {"soft-q": row_metrics(ds_a), "other": row_metrics(ds_b)}
    summary, paired = compare(rows)
    assert summary["soft-q"]["ndcg@10"] == 1.0 and summary["other"]["ndcg@10"] == 0.0
    assert summary["soft-q"]["n_rows"] == 20 and summary["soft-q"]["n_warm"] == 10
    assert paired["other"]["diff"] == 1.0 and paired["other"]["ci"] == [1.0, 1.0]
    assert paired["other"]["warm_diff"] == 1.0
    shifted = row_metrics([_decision(e + 1, [e], e) for e in range(20)])
    with pytest.raises(AssertionError, match="other rows"):
        compare({"soft-q": rows["soft-q"], "x": shifted})


def test_seed_mean_averages_rows_of_the_same_events() -> None:
    a = row_metrics([_decision(1, [1], 1), _decision(2, [0], 2)])
    b = row_metrics([_decision(1, [0], 1), _decision(2, [2], 2)])
    m = seed_mean([a, b])
    np.testing.assert_allclose(m.ndcg, [0.5, 0.5])
    with pytest.raises(AssertionError):
        seed_mean([a, row_metrics([_decision(3, [3], 3), _decision(2, [2], 2)])])

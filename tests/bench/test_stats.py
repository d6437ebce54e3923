"""Bootstrap CIs over test rows, paired comparisons and per-row metrics."""

from __future__ import annotations

import numpy as np
import pytest

from bench.stats import RowMetrics, bootstrap_ci, compare, paired_ci, row_metrics, seed_mean
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


def test_holm_matches_a_hand_computed_example() -> None:
    """p = (.01, .04, .03, .005): sorted x4, x3, x2, x1 with a running max gives
    (.03, .06, .06, .02); a NaN stays out of the count."""
    from bench.stats import holm

    adj = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005, "e": float("nan")})
    assert adj["a"] == pytest.approx(0.03) and adj["d"] == pytest.approx(0.02)
    assert adj["b"] == pytest.approx(0.06) and adj["c"] == pytest.approx(0.06)
    assert np.isnan(adj["e"])
    assert holm({"x": 0.7, "y": 0.6}) == {"x": 1.0, "y": 1.0}


def test_two_level_with_one_seed_is_the_row_bootstrap() -> None:
    """One seed: the same interval as `bootstrap_ci` with the same resampler seed."""
    from bench.stats import two_level_ci

    x = np.random.default_rng(1).random(300)
    assert two_level_ci(x[None, :], seed=4) == bootstrap_ci(x, seed=4)


def test_two_level_widens_with_seed_spread_and_keeps_the_mean() -> None:
    """Seeds that disagree by a constant widen the CI beyond the row bootstrap of their
    row-wise mean; seeds that agree leave it as the one-seed interval."""
    from bench.stats import two_level_ci

    x = np.random.default_rng(2).random(400) * 0.1
    spread = np.stack([x - 0.05, x, x + 0.05])
    lo, hi = two_level_ci(spread)
    mlo, mhi = bootstrap_ci(spread.mean(axis=0))
    assert lo < mlo and hi > mhi and lo < spread.mean() < hi
    assert two_level_ci(np.stack([x, x, x])) == pytest.approx(bootstrap_ci(x), abs=2e-3)


def test_paired_two_level_of_a_method_against_itself() -> None:
    """A one-seed method against itself: difference 0, CI [0, 0], p = 1; with 3 seeds each
    side draws its own seeds, so the CI holds 0 with seed noise around it; a clear gain has p
    near 0."""
    from bench.stats import paired_two_level

    x = np.random.default_rng(3).random((3, 200))
    diff, ci, p = paired_two_level(x[:1], x[:1])
    assert diff == 0.0 and ci == (0.0, 0.0) and p == 1.0
    diff, (lo, hi), p = paired_two_level(x, x)
    assert diff == 0.0 and lo < 0.0 < hi and hi - lo > 0 and p > 0.2
    diff, (lo, _), p = paired_two_level(x + 0.2, x[:1])
    assert lo > 0 and p < 0.01


def test_compare_reports_per_seed_figures_a_primary_and_holm() -> None:
    """Per-seed NDCG means are listed; the primary comparison keeps its own p, the others are
    Holm-adjusted (never below their raw p)."""
    rng = np.random.default_rng(4)
    ev = np.arange(50)
    cold = np.zeros(50, bool)

    def rm(v: np.ndarray) -> RowMetrics:
        return RowMetrics(ev, v, (v > 0).astype(float), cold)

    base = rng.random(50)
    rows = {
        "soft-q": [rm(base + 0.1), rm(base + 0.2)],
        "ease": rm(base),
        "knn": rm(base + 0.05),
        "pop": rm(base * 0.5),
    }
    summary, paired = compare(rows, primary="ease")
    assert summary["soft-q"]["ndcg@10_per_seed"] == pytest.approx(
        [float((base + 0.1).mean()), float((base + 0.2).mean())]
    )
    assert summary["soft-q"]["n_seeds"] == 2
    assert paired["ease"]["primary"] and paired["ease"]["p_holm"] == paired["ease"]["p"]
    for k in ("knn", "pop"):
        assert not paired[k]["primary"] and paired[k]["p_holm"] >= paired[k]["p"]

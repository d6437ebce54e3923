"""The reward-drop alarm (`recsys.rec.drift`) and what an alarm restarts."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.rec.drift import RewardDrift
from recsys.rec.item_crosses import ItemCrosses


def _clicks(rng: np.random.Generator, rate: float, n: int) -> np.ndarray:
    return (rng.random(n) < rate).astype(np.float64)


def test_a_fall_to_a_third_fires_within_two_half_lives_and_a_steady_rate_never_does() -> None:
    rng = np.random.default_rng(0)
    drift = RewardDrift(0.4, half_life=500)
    steady = _clicks(rng, 0.07, 60_000)
    assert not any(drift.observe(r) for r in steady)
    assert drift.alarms == 0
    fired = [t for t, r in enumerate(_clicks(rng, 0.023, 2_500)) if drift.observe(r)]
    assert len(fired) == 1 and fired[0] < 1_000, fired  # two half-lives
    assert drift.before == pytest.approx(0.07, abs=0.01)
    assert drift.fast < 0.6 * drift.before
    for r in _clicks(rng, 0.023, 2_500):  # five half-lives after the alarm: the new baseline
        drift.observe(r)
    assert drift.slow == pytest.approx(0.023, abs=0.008)


def test_a_climbing_rate_never_fires() -> None:
    rng = np.random.default_rng(1)
    drift = RewardDrift(0.4, half_life=500)
    rates = np.linspace(0.01, 0.1, 40_000)
    assert not any(drift.observe(float(rng.random() < p)) for p in rates)


def test_a_large_first_reward_sets_no_false_baseline() -> None:
    drift = RewardDrift(0.4, half_life=500)
    assert not drift.observe(10.0)  # a purchase first, then a steady click rate
    rng = np.random.default_rng(2)
    assert not any(drift.observe(r) for r in _clicks(rng, 0.07, 60_000))
    assert drift.slow == pytest.approx(0.07, abs=0.01)


def test_no_alarm_before_five_half_lives() -> None:
    drift = RewardDrift(0.5, half_life=10)
    assert not any(drift.observe(1.0) for _ in range(10))
    assert not any(drift.observe(0.0) for _ in range(39))  # 49 < 50 observations
    assert drift.observe(0.0)


@pytest.mark.parametrize(("drop", "half_life"), [(0.0, 10), (1.0, 10), (0.5, 0)])
def test_bad_settings_are_refused(drop: float, half_life: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        RewardDrift(drop, half_life)


def test_crosses_restart_makes_the_next_step_a_first_step() -> None:
    cx = ItemCrosses(bits=12, lr=0.1, history=0)
    cand = [np.array([7], np.uint64)]
    for _ in range(50):
        cx.update(cand, [], np.array([1.0], np.float32), np.array([0]))
    before = float(cx.scores(cand, [])[0])
    cx.update(cand, [], np.array([0.0], np.float32), np.array([0]))
    small = before - float(cx.scores(cand, [])[0])
    cx.restart()
    mid = float(cx.scores(cand, [])[0])
    cx.update(cand, [], np.array([0.0], np.float32), np.array([0]))
    big = mid - float(cx.scores(cand, [])[0])
    assert big == pytest.approx(0.1 * np.sign(mid), rel=1e-3)  # AdaGrad's first step: lr
    assert big > 3 * small

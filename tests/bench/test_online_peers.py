"""The random and oracle peers of the online benchmark."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from bench.online.peers import OraclePolicy, RandomPolicy
from bench.sim.base import HistoryEvent
from bench.sim.planted import PlantedConfig, PlantedSimulator

IDS = [f"item{i}" for i in range(6)]


def test_random_lists_are_distinct_unseen_and_uniform() -> None:
    """Distinct unseen items; each eligible item's frequency at position 0 matches its pscore
    1 / n_actions (5 eligible of 6)."""
    pol = RandomPolicy(IDS, seed=3)
    hist = [HistoryEvent("item0", "click", 0.0)]
    first: Counter[str] = Counter()
    draws = 10_000
    for _ in range(draws):
        items, ps = pol.recommend("u", hist, 3)
        assert len(set(items)) == 3 and "item0" not in items
        assert ps == [pytest.approx(1 / 5)] * 3
        first[items[0]] += 1
    assert set(first) == set(IDS) - {"item0"}
    for c in first.values():
        assert c / draws == pytest.approx(1 / 5, abs=0.02)


def test_random_falls_back_to_the_whole_catalogue_and_rejects_bad_input() -> None:
    """Too few unseen items -> the whole catalogue (pscore 1/6); n <= 0, n too large and an
    empty catalogue are ValueErrors."""
    pol = RandomPolicy(IDS)
    hist = [HistoryEvent(s, "click", 0.0) for s in IDS[:5]]
    items, ps = pol.recommend("u", hist, 2)
    assert len(set(items)) == 2 and ps == [pytest.approx(1 / 6)] * 2
    with pytest.raises(ValueError, match="n must be positive"):
        pol.recommend("u", [], 0)
    with pytest.raises(ValueError, match="exceeds the catalogue size 6"):
        pol.recommend("u", [], 7)
    with pytest.raises(ValueError, match="non-empty catalogue"):
        RandomPolicy([])


def test_oracle_returns_the_simulators_best_list() -> None:
    """The oracle's list is `sim.oracle`'s, with pscores 1.0, and its expected reward is at
    least a random list's."""
    sim = PlantedSimulator(seed=0, cfg=PlantedConfig(users=200, items=60, active=20))
    ids, _ = sim.catalogue()
    oracle, rand = OraclePolicy(sim), RandomPolicy(ids, seed=0)
    for _ in range(20):
        u = sim.next_user()
        items, ps = oracle.recommend(u, sim.history(u), 5)
        assert items == sim.oracle(u, 5) and ps == [1.0] * 5
        other, _ = rand.recommend(u, sim.history(u), 5)
        assert sim.expected_reward(u, items) >= sim.expected_reward(u, other) - 1e-12
        oracle.learn(u, sim.history(u), items, ps, [0.0] * 5)
        sim.respond(u, items)
    with pytest.raises(ValueError, match="n must be positive"):
        oracle.recommend("u", [], 0)


def test_the_oracle_method_has_zero_regret_under_the_seen_item_rule() -> None:
    """Through the loop's seen-item rule the oracle still shows a full best list: its
    expected reward equals the reference best list's at every decision."""
    from bench.online.adapters import PeerAdapter
    from bench.online.loop import run_policy
    from bench.sim.planted import PlantedSimulator

    sim = PlantedSimulator(3)
    trace = run_policy(sim, PeerAdapter(OraclePolicy(sim)), 300, shift_at=0.5)
    np.testing.assert_allclose(trace.expected, trace.oracle, rtol=1e-9)

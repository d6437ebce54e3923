"""The Vowpal Wabbit peer: slates, exact propensities, learning a next-item pattern, errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from bench.online.vw_policy import VWConfig, VWPolicy
from bench.sim.base import HistoryEvent

IDS = [f"item{i}" for i in range(20)]
FEATS = [[f"cat={i % 4}", f"brand={i % 7}"] for i in range(20)]


def _h(*items: str) -> list[HistoryEvent]:
    return [HistoryEvent(s, "click", float(t)) for t, s in enumerate(items)]


class _FixedPMF:
    """Stands in for the VW workspace: the same PMF for every prediction."""

    def __init__(self, pmf: list[float]) -> None:
        self.pmf = pmf

    def parse(self, lines: list[str], label_type: object) -> list[str]:
        return lines

    def predict(self, lines: list[str]) -> list[float]:
        assert len(lines) == 1 + len(self.pmf), f"{len(lines)=} {len(self.pmf)=}"
        return self.pmf

    def finish_example(self, lines: list[str]) -> None:
        pass


def test_recommend_returns_distinct_catalogue_items_with_valid_pscores() -> None:
    """n distinct catalogue items, none from the history, every pscore in (0, 1]."""
    pol = VWPolicy(IDS, FEATS, VWConfig())
    for n in (1, 5, 10):
        items, ps = pol.recommend("u", _h("item1", "item2"), n)
        assert len(items) == len(set(items)) == len(ps) == n
        assert set(items) <= set(IDS) - {"item1", "item2"}
        assert all(0.0 < p <= 1.0 for p in ps), ps
        pol.learn("u", _h("item1", "item2"), items, ps, [0.0] * n)


def test_pscores_are_exact_position_marginals() -> None:
    """With a fixed PMF, each reported pscore equals the empirical frequency of that item at
    that position over many slates (position 0 = pmf, others from the slate rule)."""
    ids, pmf = IDS[:5], [0.1, 0.5, 0.05, 0.2, 0.15]
    pol = VWPolicy(ids, FEATS[:5], VWConfig(exclude_seen=False))
    pol.vw = _FixedPMF(pmf)
    draws, reported = 20_000, {}
    counts: Counter[tuple[int, str]] = Counter()
    for _ in range(draws):
        items, ps = pol.recommend("u", [], 3)
        for k, (s, p) in enumerate(zip(items, ps, strict=True)):
            counts[k, s] += 1
            reported[k, s] = p
    assert reported[0, "item1"] == pytest.approx(0.5)
    for key, p in reported.items():
        assert counts[key] / draws == pytest.approx(p, abs=0.015), key
    # position 1 holds item1 (PMF rank 0) unless it was drawn first, else item3 (rank 1)
    assert reported[1, "item1"] == pytest.approx(0.5)
    assert reported[1, "item3"] == pytest.approx(0.5)


def test_learns_a_next_item_pattern() -> None:
    """item7 pays 1 right after item3 (item5 pays 0.3 after anything else): after a few
    hundred rounds item7 leads the list after item3 far more often than chance (1/19)."""
    pol = VWPolicy(IDS, FEATS, VWConfig(seed=1))
    rng = np.random.default_rng(0)
    top_after_3: list[bool] = []
    top_after_other: list[bool] = []
    for t in range(600):
        last = "item3" if rng.random() < 0.5 else IDS[int(rng.choice([0, 1, 2, 4, 6, 8, 9]))]
        hist = _h(last)
        items, ps = pol.recommend(f"u{t}", hist, 4)
        good = "item7" if last == "item3" else "item5"
        pay = 1.0 if last == "item3" else 0.3
        pol.learn(f"u{t}", hist, items, ps, [pay if s == good else 0.0 for s in items])
        if t >= 400:
            (top_after_3 if last == "item3" else top_after_other).append(items[0] == "item7")
    assert np.mean(top_after_3) > 0.6, np.mean(top_after_3)
    assert np.mean(top_after_other) < 0.2, np.mean(top_after_other)


def test_large_catalogue_pool_is_capped_and_keeps_learned_followers() -> None:
    """With more items than max_actions the pool has max_actions distinct unseen items and
    includes the item the policy saw acted on right after the last history item."""
    ids = [f"x{i}" for i in range(300)]
    feats = [[f"cat={i % 30}"] for i in range(300)]
    pol = VWPolicy(ids, feats, VWConfig(max_actions=40))
    pol.learn("u", _h("x0", "x1"), ["x250", "x2"], [0.5, 0.5], [1.0, 0.0])
    pool = pol._pool([pol.row_of["x0"], pol.row_of["x1"]], 10)
    assert len(pool) == len(set(pool.tolist())) == 40
    assert pol.row_of["x250"] in pool and pol.row_of["x1"] not in pool
    items, ps = pol.recommend("u", _h("x0", "x1"), 10)
    assert len(set(items)) == 10 and all(0.0 < p <= 1.0 for p in ps)


@pytest.mark.parametrize("n", [0, -3])
def test_non_positive_n_is_rejected(n: int) -> None:
    """n <= 0 is a ValueError that names n."""
    pol = VWPolicy(IDS, FEATS, VWConfig())
    with pytest.raises(ValueError, match="n must be positive"):
        pol.recommend("u", [], n)


def test_bad_catalogue_and_learn_input_are_rejected() -> None:
    """An empty catalogue, n above the catalogue, and mismatched or invalid learn input."""
    with pytest.raises(ValueError, match="non-empty catalogue"):
        VWPolicy([], [], VWConfig())
    with pytest.raises(ValueError, match="item_features has 1 rows"):
        VWPolicy(IDS, FEATS[:1], VWConfig())
    pol = VWPolicy(IDS, FEATS, VWConfig())
    with pytest.raises(ValueError, match="exceeds the catalogue size 20"):
        pol.recommend("u", [], 21)
    with pytest.raises(ValueError, match="must be equal"):
        pol.learn("u", [], ["item1"], [0.5, 0.5], [1.0])
    with pytest.raises(ValueError, match="not in the catalogue"):
        pol.learn("u", [], ["nope"], [0.5], [1.0])
    with pytest.raises(ValueError, match=r"pscores must be in \(0, 1\]"):
        pol.learn("u", [], ["item1"], [0.0], [1.0])

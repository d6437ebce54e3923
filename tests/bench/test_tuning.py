"""RP3beta against a brute-force walk, item-kNN neighbours, recency input, and the
validation search of the tuned peers."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from bench.replay.baselines import EASE, ItemKNN, ItemKNNConfig, RP3beta, recency_vector
from bench.replay.tuning import (
    TUNED_PEERS,
    TuningConfig,
    best_validation_peer,
    build_peer,
    earlier_items,
    tune_peer,
)
from training.metrics import ndcg_at_k


def _frame(rows: list[tuple[int, int]], start: int = 0) -> pl.DataFrame:
    """(user, item) interactions one minute apart from minute `start`."""
    t0 = datetime(2020, 1, 1)
    return pl.DataFrame(
        {
            "user_id": [u for u, _ in rows],
            "item_id": [i for _, i in rows],
            "action": ["click"] * len(rows),
            "ts": [t0 + timedelta(minutes=start + k) for k in range(len(rows))],
        },
        schema={
            "user_id": pl.Int64,
            "item_id": pl.Int64,
            "action": pl.String,
            "ts": pl.Datetime("us"),
        },
    )


rng = np.random.default_rng(5)
PAIRS = sorted({(int(rng.integers(0, 12)), int(rng.integers(0, 9))) for _ in range(60)})
TRAIN = _frame(PAIRS)


@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 0.0), (0.5, 0.3), (1.5, 0.8)])
def test_rp3beta_matches_a_brute_force_walk(alpha: float, beta: float) -> None:
    """W[i, j] = pop_j^-beta sum_u (1/deg_i)^alpha (1/deg_u)^alpha over users of i and j, and
    a history scores x_hist W, computed with plain loops."""
    model = RP3beta(alpha, beta).fit(TRAIN)
    items = [int(i) for i in model.items]
    users = sorted({u for u, _ in PAIRS})
    has = {(u, i) for u, i in PAIRS}
    deg_u = {u: sum((u, i) in has for i in items) for u in users}
    deg_i = {i: sum((u, i) in has for u in users) for i in items}
    w = np.zeros((len(items), len(items)))
    for (a, i), (b, j) in itertools.product(enumerate(items), repeat=2):
        if i != j:
            walk = sum(
                (1 / deg_i[i]) ** alpha * (1 / deg_u[u]) ** alpha
                for u in users
                if (u, i) in has and (u, j) in has
            )
            w[a, b] = walk / deg_i[j] ** beta
    np.testing.assert_allclose(model.weights, w, rtol=1e-12, atol=1e-15)
    hist = [items[0], items[3]]
    np.testing.assert_allclose(model.scores(hist), w[0] + w[3], rtol=1e-12)


def test_knn_neighbours_keep_each_items_k_most_similar() -> None:
    """With k neighbours a history item votes for its k most similar items only."""
    full = ItemKNN(ItemKNNConfig(recent=1)).fit(TRAIN)
    top2 = ItemKNN(ItemKNNConfig(recent=1, neighbours=2)).fit(TRAIN)
    item = int(full.items[0])
    s_full, s_top = full.scores([item]), top2.scores([item])
    assert np.count_nonzero(s_top) <= 2
    kept = np.flatnonzero(s_top)
    best = np.sort(s_full)[::-1][: len(kept)]
    np.testing.assert_allclose(np.sort(s_top[kept])[::-1], best)


def test_recency_vector_weighs_the_latest_items() -> None:
    """Latest item 1, one step back decay, beyond the window 0; a repeat keeps its latest."""
    index = {10: 0, 11: 1, 12: 2, 13: 3}
    x = recency_vector([13, 10, 11, 12, 11], index, 4, window=4, decay=0.5)
    np.testing.assert_allclose(x, [0.125, 1.0, 0.5, 0.0])  # 11, 12, (11), 10 | 13
    np.testing.assert_allclose(recency_vector([13, 10, 13], index, 4), [1, 0, 0, 1])


def test_grids_share_one_budget() -> None:
    """Every tuned peer's grid has the same number of settings (the validation budget)."""
    cfg = TuningConfig()
    assert {len(cfg.grid(n)) for n in TUNED_PEERS} == {cfg.budget}


def test_tune_peer_picks_the_grid_setting_with_the_best_validation_ndcg() -> None:
    """The search's curve equals each setting's own ranked NDCG@10 on the validation rows
    (brute force through `rank`), and the choice is its first maximum."""
    valid = _frame([(u, (u * 5 + 3) % 9) for u in range(12)], start=1000)
    cfg = TuningConfig(ease_lambdas=(1.0, 30.0), ease_windows=(1, 0), ease_decays=(1.0, 0.5))
    for name in TUNED_PEERS:
        tuned = tune_peer(name, TRAIN, valid, cfg, exclude_seen=True)
        hists = earlier_items(TRAIN, valid)
        targets = valid["item_id"].to_list()
        for point in tuned.curve:
            setting = {k: v for k, v in point.items() if k != "valid_ndcg@10"}
            model = build_peer(name, setting).fit(TRAIN)
            lists = [model.rank(0, h, 10, set(h)) for h in hists]
            assert point["valid_ndcg@10"] == pytest.approx(ndcg_at_k(lists, targets, 10)), setting
        scores = [p["valid_ndcg@10"] for p in tuned.curve]
        assert tuned.valid_ndcg == max(scores)
        first = tuned.curve[scores.index(max(scores))]
        assert tuned.setting == {k: v for k, v in first.items() if k != "valid_ndcg@10"}


def test_ease_recency_input_changes_the_ranking_input_only() -> None:
    """Recency-weighted EASE keeps B and scores x_hist B with the weighted history."""
    plain = EASE(10.0).fit(TRAIN)
    recent = EASE(10.0, window=2, decay=0.5).fit(TRAIN)
    np.testing.assert_allclose(plain.weights, recent.weights)
    hist = [int(plain.items[0]), int(plain.items[1]), int(plain.items[2])]
    np.testing.assert_allclose(recent.scores(hist), 0.5 * plain.weights[1] + plain.weights[2])


def test_best_validation_peer_is_the_highest_validation_score() -> None:
    """The primary comparison's peer: highest validation NDCG@10, methods without one skipped."""
    info = {"soft-q": {}, "ease": {"valid_ndcg@10": 0.2}, "item-knn": {"valid_ndcg@10": 0.3}}
    assert best_validation_peer(info) == "item-knn"
    assert best_validation_peer({"soft-q": {}}) is None

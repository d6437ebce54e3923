"""Replay honesty: a planted future event is invisible to earlier decisions."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from data.schema import INTERACTIONS_SCHEMA, ITEMS_SCHEMA, conform
from recsys.config import LearnerConfig, PolicyConfig
from recsys.memory.text_encoder import HashingTextEncoder
from recsys.rl.learner import Learner
from training.config import TrainConfig
from training.replay_env import ReplayAgent, TimedBank, run_pass
from training.replay_world import build_world

T0 = datetime(2024, 1, 1)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Tiny networks: one torch thread avoids oversubscription on shared cores."""
    import torch

    torch.set_num_threads(1)


PLANT_ITEM = 999


def _log(plant: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(0)
    rows = []
    for k in range(200):
        rows.append((int(rng.integers(0, 20)), int(rng.integers(0, 40)), T0 + timedelta(hours=k)))
    if plant:  # user 0 acts on a brand-new item at the very end
        rows.append((0, PLANT_ITEM, T0 + timedelta(hours=1000)))
    df = pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "action": ["click"] * len(rows),
            "ts": [r[2] for r in rows],
            "dwell_seconds": [None] * len(rows),
            "source": ["test"] * len(rows),
        }
    )
    titles = [f"shoe red size {i % 7} model {i}" for i in range(40)] + ["zzq plant unique"]
    items = pl.DataFrame(
        {
            "item_id": [*range(40), PLANT_ITEM],
            "title": titles,
            "category": ["c"] * 41,
            "brand_id": [None] * 41,
            "seller_id": ["s"] * 41,
            "pict_url": [""] * 41,
        }
    )
    return conform(df, INTERACTIONS_SCHEMA), conform(items, ITEMS_SCHEMA)


def _run(plant: bool, mode: str) -> tuple[list[list[int]], list[float], dict[str, object]]:
    inter, items = _log(plant)
    held = inter.filter(pl.col("ts") > T0 + timedelta(hours=190))
    cfg = TrainConfig(top_k=8, num_chosen=4, n_neighbours=10, n_popular=5, top_n=15)
    w = build_world(inter, held, items, HashingTextEncoder(64), cfg.state, cfg.reward, 24.0)
    lc = LearnerConfig(mode=mode, batch_size=8, min_replay=8, policy=PolicyConfig(num_chosen=4))  # type: ignore[arg-type]
    agent = ReplayAgent(
        w, dataclasses.replace(cfg, updates_per_transition=0.25), Learner(lc, 64, 64), None, 0
    )
    seen: dict[str, object] = {"max_case_ts_gap": -np.inf, "plant_case": False}

    def check(j: int) -> None:
        bank = agent.last_bank
        assert bank is not None
        for cid in bank.bank.ids():
            c = bank.bank.get(cid)
            seen["max_case_ts_gap"] = max(float(seen["max_case_ts_gap"]), c.ts - w.ts[j])  # type: ignore[arg-type]
            seen["plant_case"] = bool(seen["plant_case"]) or c.payload["item_id"] == str(PLANT_ITEM)

    decisions = np.flatnonzero(w.has_history & (w.ts < (T0 + timedelta(hours=999)).timestamp()))
    res = run_pass(w, agent, decisions, np.ones(w.n, bool), True, False, 0.0, on_decision=check)
    # every decision's state is built from strictly earlier events of the same user
    for j in decisions:
        assert all(w.ts[e] < w.ts[j] and w.user[e] == w.user[j] for e in w.history[j])
    return [d.items for d in res.decisions], [d.reward for d in res.decisions], seen


@pytest.mark.parametrize("mode", ["soft-q", "non-parametric"])
def test_planted_future_event_is_invisible(mode: str) -> None:
    """Lists, rewards and bank contents of earlier decisions ignore a planted future event."""
    lists_a, rewards_a, seen_a = _run(False, mode)
    lists_b, rewards_b, seen_b = _run(True, mode)
    assert lists_a == lists_b
    assert rewards_a == rewards_b
    assert all(PLANT_ITEM not in lst for lst in lists_b)
    assert seen_b["plant_case"] is False
    assert float(seen_b["max_case_ts_gap"]) < 0  # every stored case is strictly older
    assert float(seen_a["max_case_ts_gap"]) < 0


def test_planted_event_states_unchanged() -> None:
    """Past-only states of all earlier events are identical with and without the plant."""
    cfg = TrainConfig()
    worlds = []
    for plant in (False, True):
        inter, items = _log(plant)
        held = inter.filter(pl.col("ts") > T0 + timedelta(hours=190))
        worlds.append(
            build_world(inter, held, items, HashingTextEncoder(64), cfg.state, cfg.reward, 24.0)
        )
    a, b = worlds
    assert b.n == a.n + 1
    np.testing.assert_array_equal(a.state_vec, b.state_vec[: a.n])
    np.testing.assert_array_equal(a.case_key, b.case_key[: a.n])


def test_causal_popularity_is_the_cold_list_and_sees_only_the_past() -> None:
    """The causal-popularity baseline gives exactly the list a memory mode gives a cold user,
    counts only earlier events, and never ranks the planted future item."""
    from training.modes import _causal_popularity

    inter, items = _log(True)
    cold_user = pl.DataFrame(  # a user whose only event is held out: a cold test decision
        {"user_id": [77], "item_id": [3], "action": ["click"], "ts": [T0 + timedelta(hours=195)]}
    )
    inter = pl.concat([inter, conform(cold_user, INTERACTIONS_SCHEMA)]).sort("ts")
    held = inter.filter(pl.col("ts") > T0 + timedelta(hours=190))
    cfg = TrainConfig(top_k=8, num_chosen=4, n_neighbours=10, n_popular=5, top_n=15)
    w = build_world(inter, held, items, HashingTextEncoder(64), cfg.state, cfg.reward, 24.0)
    base = _causal_popularity(w, cfg)
    agent = ReplayAgent(w, cfg, None, None, 0)
    idx = np.array([d.event for d in base])
    replay = run_pass(w, agent, idx, np.ones(w.n, bool), False, True, 0.0)
    cold = [k for k, d in enumerate(base) if d.cold]
    assert cold, "the fixture must hold a cold decision"
    for k in cold:
        assert base[k].items == replay.decisions[k].items
    for d in base:
        j = d.event
        assert PLANT_ITEM not in d.items or w.ts[j] > (T0 + timedelta(hours=1000)).timestamp()
        past = np.flatnonzero(w.ts < w.ts[j])
        counts = np.bincount(
            [w.item_index[int(w.item[e])] for e in past], minlength=len(w.item_ids)
        )
        assert counts[w.item_index[d.items[0]]] == counts.max()


def test_item_knn_term_counts_other_users_past_training_rows_only() -> None:
    """The blend's item-kNN term ranks exactly like the item-kNN baseline fitted on the
    non-held-out rows of the OTHER users: held-out rows never count, and the decision's own
    user (whose later events a training decision must not see) is left out."""
    from training.baselines import ItemKNN
    from training.config import BlendConfig

    inter, items = _log(True)
    held = inter.filter(pl.col("ts") > T0 + timedelta(hours=190))
    cfg = TrainConfig(
        top_k=8, num_chosen=4, n_neighbours=0, n_popular=0, top_n=15,
        blend=BlendConfig(w_knn=1.0, w_nb=0.0, w_pop=0.0, n_knn=15),
    )  # fmt: skip
    w = build_world(
        inter, held, items, HashingTextEncoder(64), cfg.state, cfg.reward, 24.0, item_knn=True
    )
    assert w.knn is not None
    # the planted item occurs only in a held-out row: it co-occurs with nothing
    assert w.knn.co[w.item_index[PLANT_ITEM]].nnz == 0
    train_rows = inter.filter(pl.col("ts") <= T0 + timedelta(hours=190))
    agent = ReplayAgent(w, cfg, None, None, 0)
    tb = TimedBank(w, ~w.held_out, cfg.top_k, agent.visits)
    checked = 0
    for j in np.flatnonzero(w.has_history & ~w.held_out)[::7]:
        j = int(j)
        u = int(w.user[j])
        knn = ItemKNN().fit(train_rows.filter(pl.col("user_id") != u))
        hist = [int(w.item[e]) for e in w.history[j]]
        scores = knn.scores(hist)
        ranked = knn.rank(u, hist, cfg.top_n, set())
        want = [i for i in ranked if scores[knn._index[i]] > 1e-12]
        got, _ = agent.rank(j, tb, use_llm=False, greedy=True)
        # same scores in the same order (equal scores may swap: tie orders differ)
        got_scores = [scores[knn._index[i]] if i in knn._index else 0.0 for i in got[: len(want)]]
        np.testing.assert_allclose(got_scores, [scores[knn._index[i]] for i in want], atol=1e-9)
        checked += len(want) > 0
    assert checked >= 5

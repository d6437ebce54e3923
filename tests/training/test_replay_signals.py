"""Replay honesty of the fitted signals: causal popularity and the item-kNN term."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from data.schema import INTERACTIONS_SCHEMA, conform
from recsys.config import BlendConfig
from recsys.memory.text_encoder import HashingTextEncoder
from tests.training.replay_fixture import (
    HELD_AFTER,
    PLANT_ITEM,
    T0,
    tiny_cfg,
    tiny_compare,
    tiny_learner,
    tiny_log,
    tiny_recommender,
    tiny_world,
    with_recommend,
)
from training.replay_env import build_parts, run_pass
from training.replay_world import build_world


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Tiny networks: one torch thread avoids oversubscription on shared cores."""
    import torch

    torch.set_num_threads(1)


def test_causal_popularity_is_the_cold_list_and_sees_only_the_past() -> None:
    """The causal-popularity baseline gives exactly the list a memory mode gives a cold user,
    and every list is the brute-force count order of the training events strictly before the
    decision (so the planted future item is never ranked above a counted one)."""
    from bench.replay.methods import baseline_decisions

    inter, items = tiny_log(True)
    cold_user = pl.DataFrame(  # a user whose only event is held out: a cold test decision
        {"user_id": [77], "item_id": [3], "action": ["click"], "ts": [T0 + timedelta(hours=195)]}
    )
    inter = pl.concat([inter, conform(cold_user, INTERACTIONS_SCHEMA)]).sort("ts")
    held = inter.filter(pl.col("ts") > HELD_AFTER)
    cfg = tiny_cfg()
    w = build_world(
        inter, held, items, HashingTextEncoder(64), cfg.core.state, cfg.core.reward, 24.0
    )
    parts = build_parts(w, cfg, ~w.held_out)
    base = baseline_decisions(w, parts, cfg, lambda j, hist, ex: None)
    rec = tiny_recommender(parts, cfg, tiny_learner("soft-q-blend"))
    idx = np.array([d.event for d in base])
    replay = run_pass(w, rec, cfg, idx, False, True, 0.0, np.random.default_rng(0))
    cold = [k for k, d in enumerate(base) if d.cold]
    assert cold, "the fixture must hold a cold decision"
    for k in cold:
        assert base[k].items == replay.decisions[k].items
    for d in base:
        j = d.event
        past = np.flatnonzero((w.ts < w.ts[j]) & ~w.held_out)
        counts = np.bincount(
            [w.item_index[int(w.item[e])] for e in past], minlength=len(w.item_ids)
        )
        want = sorted(range(len(counts)), key=lambda r: (-counts[r], r))[: cfg.core.recommend.top_n]
        assert d.items == [int(w.item_ids[r]) for r in want], j
        assert counts[w.item_index[PLANT_ITEM]] == 0


def test_item_knn_term_counts_other_users_past_training_rows_only() -> None:
    """The item-kNN term of a TRAINING decision (`RecRequest(knn_without_user=True)`) ranks
    exactly like the item-kNN baseline fitted on the non-held-out rows of the OTHER users:
    held-out rows never count, and the decision's own user (whose later events a training
    decision must not see) is left out."""
    from bench.replay.baselines import ItemKNN

    inter, _ = tiny_log(True)
    cfg = with_recommend(
        tiny_cfg(blend=BlendConfig(w_knn=1.0, w_nb=0.0, w_pop=0.0, n_knn=15)),
        n_neighbours=0,
        n_popular=0,
    )
    w = tiny_world(cfg, True)
    parts = build_parts(w, cfg, ~w.held_out)
    assert parts.cooc is not None
    # the planted item occurs only in a held-out row: it co-occurs with nothing
    assert parts.cooc.co[w.item_index[PLANT_ITEM]].nnz == 0
    train_rows = inter.filter(pl.col("ts") <= HELD_AFTER)
    decisions = np.flatnonzero(w.has_history & ~w.held_out)[::7]
    # a training pass (learn=True) with no case memory: the list is the item-kNN term alone
    rec = tiny_recommender(parts, cfg, None)
    res = run_pass(w, rec, cfg, decisions, True, True, 0.0, np.random.default_rng(0))
    assert [d.event for d in res.decisions] == decisions.tolist()
    checked = 0
    for d in res.decisions:
        j, u = d.event, int(w.user[d.event])
        knn = ItemKNN().fit(train_rows.filter(pl.col("user_id") != u))
        hist = [int(w.item[e]) for e in w.history[j]]
        scores = knn.scores(hist)
        ranked = knn.rank(u, hist, cfg.core.recommend.top_n, set())
        want = [i for i in ranked if scores[knn._index[i]] > 1e-12]
        # same scores in the same order (equal scores may swap: tie orders differ), then
        # only items the baseline scores 0 (the list is filled up in popularity order)
        got_scores = [scores[knn._index[i]] if i in knn._index else 0.0 for i in d.items]
        want_scores = [scores[knn._index[i]] for i in want]
        np.testing.assert_allclose(got_scores[: len(want)], want_scores, atol=1e-9)
        assert all(s <= 1e-12 for s in got_scores[len(want) :]), (j, got_scores)
        checked += len(want) > 0
    assert checked >= 5


def test_parametric_ce_labels_only_attributed_cases() -> None:
    """parametric-ce learns (reward > 0) labels: a chosen case is positive only when the user
    acted on its item (no share of the list's reward for the others)."""
    from tests.training.replay_fixture import train_pass

    _, spy, res = train_pass("parametric-ce", False)
    reward_of = {d.event: d.reward for d in res.decisions}
    positives = 0
    for j, _d, rewards, _, _ in spy.learned:
        assert set(np.unique(rewards).tolist()) <= {0.0, np.float32(reward_of[j])}, (j, rewards)
        positives += int((rewards > 0).sum())
    assert positives > 0


def test_time_cutoff_split_scores_every_peer_on_the_same_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under the time-cutoff split (no validation rows) EASE still chooses its lambda, and
    every method is scored on the same held-out rows, so the paired CIs are defined."""
    import training.prepare as train_mod
    from bench.replay.compare import compare_methods, run_methods

    inter, items = tiny_log(True)
    monkeypatch.setattr(train_mod, "load_data", lambda cfg: (inter, items, "fixture"))
    cfg = tiny_compare(
        hashing=True,
        modes=("ease", "item-knn", "rp3beta", "causal-popularity"),
        split="time-cutoff",
    )
    run = run_methods(cfg)
    assert 0 < run.split.test.height < run.world.n
    summary, _ = compare_methods(run.results, reference="ease")
    assert {s["n_rows"] for s in summary.values()} == {run.split.test.height}
    assert run.results["ease"][0].info["setting"]["lambda"] > 0

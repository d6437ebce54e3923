"""Replay honesty: a decision sees only its past, training never sees held-out events."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.config import BlendConfig
from tests.training.replay_fixture import (
    PLANT_ITEM,
    tiny_cfg,
    tiny_compare,
    tiny_learner,
    tiny_log,
    tiny_recommender,
    tiny_world,
    train_pass,
    valid_ids,
)
from training.config import TrainConfig
from training.replay_env import build_parts, request_at


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Tiny networks: one torch thread avoids oversubscription on shared cores."""
    import torch

    torch.set_num_threads(1)


@pytest.mark.parametrize("mode", ["soft-q", "soft-q-blend", "non-parametric"])
def test_planted_future_event_is_invisible(mode: str) -> None:
    """Lists and rewards of earlier decisions ignore a planted future event, and its item is
    in no list and no case; the learned transitions carry the same rewards (soft-q: the labels
    of every pooled item, taken from the user's next events)."""
    _, spy_a, res_a = train_pass(mode, False)
    w, spy_b, res_b = train_pass(mode, True)
    assert [d.items for d in res_a.decisions] == [d.items for d in res_b.decisions]
    assert [d.reward for d in res_a.decisions] == [d.reward for d in res_b.decisions]
    assert all(PLANT_ITEM not in d.items for d in res_b.decisions)
    bank = spy_b.rec.bank
    assert all(bank.get(c).payload["item_id"] != str(PLANT_ITEM) for c in bank.ids())
    assert w.item[-1] == PLANT_ITEM and w.held_out[-1]
    assert len(spy_a.learned) == len(spy_b.learned) > 50
    for a, b in zip(spy_a.learned, spy_b.learned, strict=True):
        assert a[0] == b[0]
        np.testing.assert_array_equal(a[2], b[2])  # same credited rewards


def test_item_scorer_evidence_is_as_of_the_decision() -> None:
    """soft-q (items scorer): every retrieved case behind a pooled item has an outcome strictly
    before the decision, and its labels never include a held-out event."""
    w, spy, _ = train_pass("soft-q", True)
    bank = spy.rec.bank
    behind = 0
    for j, _, res in spy.lists:
        for cases in res.support.values():
            ts = [bank.get(c).ts for c in cases]
            assert all(t < w.ts[j] for t in ts), (j, max(ts) - w.ts[j])
            behind += len(ts)
    assert behind > 500
    for j, d, rewards, _, _ in spy.learned:
        labels = w.next_labels(j, 3, 0.5, skip_held_out=True)
        ids = w.item_ids[d.cands.case_ids[d.chosen]]
        np.testing.assert_allclose(rewards, [labels.get(int(i), 0.0) for i in ids])
        assert PLANT_ITEM not in labels


@pytest.mark.parametrize("mode", ["soft-q-blend", "non-parametric"])
def test_retrieval_is_as_of_the_decision_and_of_s_prime(mode: str) -> None:
    """Every case retrieved for a decision has an outcome strictly before the decision; s' of a
    learned transition is the user's next (non-held-out) event state and its snapshot holds
    only cases strictly before that event; the bank holds later cases a plain (not as-of)
    search would have returned."""
    w, spy, _ = train_pass(mode, True)
    bank = spy.rec.bank
    retrieved = 0
    for j, _, res in spy.lists:
        if res.cands is not None:
            ts = [bank.get(c).ts for c in valid_ids(res.cands)]
            assert all(t < w.ts[j] for t in ts), (j, max(ts) - w.ts[j])
            retrieved += len(ts)
    assert retrieved > 500
    leaks = 0  # the check has teeth: without `before`, the bank would hand out the future
    for j, _, res in spy.lists[::5]:
        plain = bank.search(res.state.vec, spy.rec.cfg.top_k, float(w.ts[j]))
        leaks += any(bank.get(c).ts >= w.ts[j] for c in valid_ids(plain))
    assert leaks > 5
    with_next = 0
    for j, _, _, s2, c2 in spy.learned:
        nxt = int(w.next_event[j])
        if s2 is None:
            continue
        assert nxt >= 0 and not w.held_out[nxt], (j, nxt)
        np.testing.assert_array_equal(s2, w.state_vec[nxt])
        assert c2 is not None
        ts = [bank.get(c).ts for c in valid_ids(c2)]
        assert all(t < w.ts[nxt] for t in ts), (j, nxt, max(ts) - w.ts[nxt])
        with_next += len(ts) > 0
    assert with_next > 20


def test_held_out_events_never_reach_training_rewards() -> None:
    """A training pass scores each list without held-out events and credits no chosen case
    more than that reward, although the fixture has lists a held-out event would reward."""
    cfg = tiny_cfg("soft-q-blend")
    w, spy, res = train_pass("soft-q-blend", False)
    reward_of = {d.event: d.reward for d in res.decisions}
    only_held = 0
    for j, _, res_j in spy.lists:
        items = [int(w.item_ids[r]) for r in res_j.items][: cfg.reward_top]
        r_train, _ = w.list_reward(j, items, cfg.core.reward, skip_held_out=True)
        r_all, _ = w.list_reward(j, items, cfg.core.reward)
        assert reward_of[j] == r_train, j
        only_held += r_all > r_train == 0.0
    assert only_held > 0, "the fixture must hold a list only a held-out event rewards"
    credited_zero = 0
    for j, _, rewards, _, _ in spy.learned:
        r_train = reward_of[j]
        assert float(rewards.max()) <= r_train + 1e-6, (j, rewards, r_train)
        credited_zero += r_train == 0.0
    assert credited_zero > 0


def test_training_parts_hold_only_training_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """`run_methods` builds the training passes' bank, popularity log and co-occurrence counts
    from the non-held-out rows only: a brute-force recount of the training rows gives the same
    parts, and the planted held-out item has no case, no popularity and no co-occurrence. The
    served (evaluated) parts hold every event for as-of reads, but their co-occurrence counts
    (which have no time) are the training rows' too."""
    import training.prepare as train_mod
    from bench.replay.compare import run_methods

    inter, items = tiny_log(True)
    monkeypatch.setattr(train_mod, "load_data", lambda tiny_cfg: (inter, items, "fixture"))
    cfg = tiny_compare(BlendConfig(w_knn=0.5), hashing=True, modes=("popularity",))
    run = run_methods(cfg)
    w, parts = run.world, run.parts.train
    train = np.flatnonzero(~w.held_out)
    assert w.held_out.sum() == run.split.test.height == 20  # leave-last-out: one per user
    assert w.held_out[int(np.flatnonzero(w.item == PLANT_ITEM)[0])]
    # case bank: one case per training event, its own item and time
    events = {}
    for cid in parts.bank.ids():
        c = parts.bank.get(cid)
        e = int(c.payload["event"])
        assert c.payload["item_id"] == str(int(w.item[e])) and c.ts == w.ts[e]
        events[e] = cid
    assert sorted(events) == train.tolist()
    # popularity: exactly the training events
    rows = np.array([w.item_index[int(i)] for i in w.item], np.int64)
    log_rows, log_ts = parts.popularity.log()
    np.testing.assert_array_equal(log_rows, rows[train])
    np.testing.assert_array_equal(log_ts, w.ts[train])
    plant = w.item_index[PLANT_ITEM]
    assert parts.popularity.scores(float("inf"))[plant] == 0.0
    # co-occurrence: brute-force users per item and per item pair over the training rows
    assert parts.cooc is not None
    users: list[set[int]] = [set() for _ in w.item_ids]
    for e in train:
        users[rows[e]].add(int(w.user[e]))
    np.testing.assert_array_equal(parts.cooc.support, [len(u) for u in users])
    co = parts.cooc.co.toarray()
    for a in range(len(users)):
        for b in range(len(users)):
            assert co[a, b] == (len(users[a] & users[b]) if a != b else 0), (a, b)
    assert parts.cooc.support[plant] == 0
    served = run.parts.served
    assert sorted(int(served.bank.get(c).payload["event"]) for c in served.bank.ids()) == list(
        range(w.n)
    )
    assert len(served.popularity) == w.n
    assert served.cooc is not None
    np.testing.assert_array_equal(served.cooc.support, parts.cooc.support)
    assert (served.cooc.co != parts.cooc.co).nnz == 0


@pytest.mark.parametrize("mode", ["soft-q-blend", "soft-q"])
@pytest.mark.parametrize("training", [True, False])
def test_ground_truth_is_never_a_candidate_source(training: bool, mode: str) -> None:
    """Changing the item acted on at decision j to a brand-new item leaves the list produced at
    j unchanged (case, neighbour, popularity and item-kNN terms all on), and the new item is
    not in it: for a training decision (own user left out of item-kNN) and a held-out one."""
    cfg = tiny_cfg(mode, blend=BlendConfig(w_knn=1.0))
    base = tiny_world(cfg, False)
    pick = base.has_history & (base.held_out != training)
    checked = 0
    for j in np.flatnonzero(pick)[:: 4 if training else 1][:6]:
        lists = []
        for swap in (None, (int(j), PLANT_ITEM)):
            w = tiny_world(cfg, False, swap)
            assert (int(w.item[j]) == PLANT_ITEM) == (swap is not None)
            parts = build_parts(w, cfg, ~w.held_out)
            rec = tiny_recommender(parts, cfg, tiny_learner(mode), mode)
            res = rec.recommend(request_at(w, int(j), knn_without_user=training), greedy=True)
            lists.append(([int(w.item_ids[r]) for r in res.items], res.scores))
            assert res.chosen, "the case term must take part"
        assert lists[0] == lists[1], j
        assert PLANT_ITEM not in lists[1][0]
        checked += 1
    assert checked == 6


def test_planted_event_states_unchanged() -> None:
    """Past-only states of all earlier events are identical with and without the plant."""
    cfg = TrainConfig()
    a, b = (tiny_world(cfg, plant) for plant in (False, True))
    assert b.n == a.n + 1
    np.testing.assert_array_equal(a.state_vec, b.state_vec[: a.n])
    np.testing.assert_array_equal(a.case_key, b.case_key[: a.n])


def test_collaborative_vectors_ignore_held_out_rows() -> None:
    """The fitted item vectors (title + collaborative part) are identical with and without a
    planted held-out event: they are fitted on the training rows only."""
    cfg = tiny_cfg(collab_dim=8)
    a, b = (tiny_world(cfg, plant) for plant in (False, True))
    assert b.held_out[-1] and b.item[-1] == PLANT_ITEM
    np.testing.assert_array_equal(a.item_ids, b.item_ids)
    np.testing.assert_allclose(a.item_vecs, b.item_vecs, atol=1e-6)

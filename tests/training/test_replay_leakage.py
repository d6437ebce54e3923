"""Replay honesty: a decision sees only its past, training never sees held-out events."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from data.schema import INTERACTIONS_SCHEMA, ITEMS_SCHEMA, conform
from recsys.config import BlendConfig, LearnerConfig, PolicyConfig
from recsys.loop import Decided
from recsys.memory.text_encoder import HashingTextEncoder
from recsys.rec.recommender import Recommender, RecRequest, RecResult
from recsys.records import Candidates
from recsys.rl.learner import Learner
from training.config import TrainConfig
from training.replay_env import ReplayParts, build_parts, request_at, run_pass
from training.replay_world import ReplayWorld, build_world

T0 = datetime(2024, 1, 1)
PLANT_ITEM = 999
HELD_AFTER = T0 + timedelta(hours=190)
"""Events after this are held out (the test period)."""


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Tiny networks: one torch thread avoids oversubscription on shared cores."""
    import torch

    torch.set_num_threads(1)


def _log(plant: bool, swap: tuple[int, int] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """200 clicks of 20 users on 40 items, one per hour (unique times); `plant`: user 0 acts on
    a brand-new item at hour 1000; `swap` = (hour, item): the event at that hour is on `item`."""
    rng = np.random.default_rng(0)
    rows = []
    for k in range(200):
        rows.append((int(rng.integers(0, 20)), int(rng.integers(0, 40)), T0 + timedelta(hours=k)))
    if plant:
        rows.append((0, PLANT_ITEM, T0 + timedelta(hours=1000)))
    if swap is not None:
        u, _, t = rows[swap[0]]
        rows[swap[0]] = (u, swap[1], t)
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


def _cfg(**kw: Any) -> TrainConfig:
    """Small lists over the 41-item catalogue; plain popularity counts."""
    base: dict[str, Any] = dict(
        top_k=8, num_chosen=4, n_neighbours=10, n_popular=5, top_n=15, pop_half_life_hours=0.0
    )
    return TrainConfig(**{**base, **kw})


def _world(cfg: TrainConfig, plant: bool, swap: tuple[int, int] | None = None) -> ReplayWorld:
    inter, items = _log(plant, swap)
    held = inter.filter(pl.col("ts") > HELD_AFTER)
    return build_world(
        inter,
        held,
        items,
        HashingTextEncoder(64),
        cfg.state,
        cfg.reward,
        cfg.window_hours,
        case_state_weight=cfg.case_state_weight,
    )


def _learner(mode: str) -> Learner:
    lc = LearnerConfig(mode=mode, batch_size=8, min_replay=8, policy=PolicyConfig(num_chosen=4))  # type: ignore[arg-type]
    return Learner(lc, 64, 64)


def _recommender(parts: ReplayParts, cfg: TrainConfig, learner: Learner | None) -> Recommender:
    from training.modes import recommender_for

    return recommender_for(parts, cfg, learner, None)


def _valid_ids(c: Candidates) -> list[int]:
    return [int(i) for i in c.case_ids[c.mask]]


@dataclasses.dataclass
class _Spy:
    """What the pipeline produced and learned during a pass (wraps the instance's methods)."""

    world: ReplayWorld
    rec: Recommender
    lists: list[tuple[int, bool, RecResult]] = dataclasses.field(default_factory=list)
    """(event, training request, result) per recommend call."""
    learned: list[tuple[int, Decided, np.ndarray, np.ndarray | None, Candidates | None]] = (
        dataclasses.field(default_factory=list)
    )
    """(decision event, decided, rewards, s', s' snapshot) per learn call."""

    def __post_init__(self) -> None:
        event_at = {float(t): j for j, t in enumerate(self.world.ts)}  # times are unique
        by_cands: dict[int, int] = {}
        recommend, loop = self.rec.recommend, self.rec.loop

        def spy_recommend(req: RecRequest, greedy: bool = True, use_llm: bool = False) -> Any:
            res = recommend(req, greedy, use_llm)
            j = event_at[req.now]
            self.lists.append((j, req.knn_without_user, res))
            if res.cands is not None:
                by_cands[id(res.cands)] = j
            return res

        self.rec.recommend = spy_recommend  # type: ignore[method-assign]
        if loop is not None:
            learn = loop.learn

            def spy_learn(d: Decided, r: np.ndarray, s2: Any, c2: Any) -> Any:
                self.learned.append((by_cands[id(d.cands)], d, np.asarray(r), s2, c2))
                return learn(d, r, s2, c2)

            loop.learn = spy_learn  # type: ignore[method-assign]


def _train_pass(mode: str, plant: bool) -> tuple[ReplayWorld, _Spy, Any]:
    """One learning pass over every decision point before the plant, as `run_memory_mode`
    trains (learn=True, sampled choices)."""
    cfg = dataclasses.replace(_cfg(), updates_per_transition=0.25)
    w = _world(cfg, plant)
    parts = build_parts(w, cfg, ~w.held_out)
    spy = _Spy(w, _recommender(parts, cfg, _learner(mode)))
    decisions = np.flatnonzero(w.has_history & (w.ts < (T0 + timedelta(hours=999)).timestamp()))
    res = run_pass(w, spy.rec, cfg, decisions, True, False, 0.0, np.random.default_rng(0))
    # every decision's state is built from strictly earlier events of the same user
    for j in decisions:
        assert all(w.ts[e] < w.ts[j] and w.user[e] == w.user[j] for e in w.history[j])
    return w, spy, res


@pytest.mark.parametrize("mode", ["soft-q", "non-parametric"])
def test_planted_future_event_is_invisible(mode: str) -> None:
    """Lists and rewards of earlier decisions ignore a planted future event, and its item is
    in no list and no case; the learned transitions carry the same rewards."""
    _, spy_a, res_a = _train_pass(mode, False)
    w, spy_b, res_b = _train_pass(mode, True)
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


@pytest.mark.parametrize("mode", ["soft-q", "non-parametric"])
def test_retrieval_is_as_of_the_decision_and_of_s_prime(mode: str) -> None:
    """Every case retrieved for a decision has an outcome strictly before the decision; s' of a
    learned transition is the user's next (non-held-out) event state and its snapshot holds
    only cases strictly before that event; the bank holds later cases a plain (not as-of)
    search would have returned."""
    w, spy, _ = _train_pass(mode, True)
    bank = spy.rec.bank
    retrieved = 0
    for j, _, res in spy.lists:
        if res.cands is not None:
            ts = [bank.get(c).ts for c in _valid_ids(res.cands)]
            assert all(t < w.ts[j] for t in ts), (j, max(ts) - w.ts[j])
            retrieved += len(ts)
    assert retrieved > 500
    leaks = 0  # the check has teeth: without `before`, the bank would hand out the future
    for j, _, res in spy.lists[::5]:
        plain = bank.search(res.state.vec, spy.rec.cfg.top_k, float(w.ts[j]))
        leaks += any(bank.get(c).ts >= w.ts[j] for c in _valid_ids(plain))
    assert leaks > 5
    with_next = 0
    for j, _, _, s2, c2 in spy.learned:
        nxt = int(w.next_event[j])
        if s2 is None:
            continue
        assert nxt >= 0 and not w.held_out[nxt], (j, nxt)
        np.testing.assert_array_equal(s2, w.state_vec[nxt])
        assert c2 is not None
        ts = [bank.get(c).ts for c in _valid_ids(c2)]
        assert all(t < w.ts[nxt] for t in ts), (j, nxt, max(ts) - w.ts[nxt])
        with_next += len(ts) > 0
    assert with_next > 20


def test_held_out_events_never_reach_training_rewards() -> None:
    """A training pass scores each list without held-out events and credits no chosen case
    more than that reward, although the fixture has lists a held-out event would reward."""
    cfg = _cfg()
    w, spy, res = _train_pass("soft-q", False)
    reward_of = {d.event: d.reward for d in res.decisions}
    only_held = 0
    for j, _, res_j in spy.lists:
        items = [int(w.item_ids[r]) for r in res_j.items][: cfg.reward_top]
        r_train, _ = w.list_reward(j, items, cfg.reward, skip_held_out=True)
        r_all, _ = w.list_reward(j, items, cfg.reward)
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
    import training.train as train_mod
    from training.train import run_methods

    inter, items = _log(True)
    monkeypatch.setattr(train_mod, "load_data", lambda _cfg: (inter, items, "fixture"))
    cfg = _cfg(
        modes=("popularity",),
        text_encoder="hashing",
        text_dim=64,
        blend=BlendConfig(w_knn=0.5),
    )
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


@pytest.mark.parametrize("training", [True, False])
def test_ground_truth_is_never_a_candidate_source(training: bool) -> None:
    """Changing the item acted on at decision j to a brand-new item leaves the list produced at
    j unchanged (case, neighbour, popularity and item-kNN terms all on), and the new item is
    not in it: for a training decision (own user left out of item-kNN) and a held-out one."""
    cfg = _cfg(blend=BlendConfig(w_knn=1.0))
    base = _world(cfg, False)
    pick = base.has_history & (base.held_out != training)
    checked = 0
    for j in np.flatnonzero(pick)[:: 4 if training else 1][:6]:
        lists = []
        for swap in (None, (int(j), PLANT_ITEM)):
            w = _world(cfg, False, swap)
            assert (int(w.item[j]) == PLANT_ITEM) == (swap is not None)
            rec = _recommender(build_parts(w, cfg, ~w.held_out), cfg, _learner("soft-q"))
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
    a, b = (_world(cfg, plant) for plant in (False, True))
    assert b.n == a.n + 1
    np.testing.assert_array_equal(a.state_vec, b.state_vec[: a.n])
    np.testing.assert_array_equal(a.case_key, b.case_key[: a.n])


def test_causal_popularity_is_the_cold_list_and_sees_only_the_past() -> None:
    """The causal-popularity baseline gives exactly the list a memory mode gives a cold user,
    and every list is the brute-force count order of the training events strictly before the
    decision (so the planted future item is never ranked above a counted one)."""
    from training.modes import _causal_popularity

    inter, items = _log(True)
    cold_user = pl.DataFrame(  # a user whose only event is held out: a cold test decision
        {"user_id": [77], "item_id": [3], "action": ["click"], "ts": [T0 + timedelta(hours=195)]}
    )
    inter = pl.concat([inter, conform(cold_user, INTERACTIONS_SCHEMA)]).sort("ts")
    held = inter.filter(pl.col("ts") > HELD_AFTER)
    cfg = _cfg()
    w = build_world(inter, held, items, HashingTextEncoder(64), cfg.state, cfg.reward, 24.0)
    parts = build_parts(w, cfg, ~w.held_out)
    base = _causal_popularity(w, parts, cfg)
    rec = _recommender(parts, cfg, _learner("soft-q"))
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
        want = sorted(range(len(counts)), key=lambda r: (-counts[r], r))[: cfg.top_n]
        assert d.items == [int(w.item_ids[r]) for r in want], j
        assert counts[w.item_index[PLANT_ITEM]] == 0


def test_item_knn_term_counts_other_users_past_training_rows_only() -> None:
    """The item-kNN term of a TRAINING decision (`RecRequest(knn_without_user=True)`) ranks
    exactly like the item-kNN baseline fitted on the non-held-out rows of the OTHER users:
    held-out rows never count, and the decision's own user (whose later events a training
    decision must not see) is left out."""
    from training.baselines import ItemKNN

    inter, _ = _log(True)
    cfg = _cfg(
        n_neighbours=0,
        n_popular=0,
        blend=BlendConfig(w_knn=1.0, w_nb=0.0, w_pop=0.0, n_knn=15),
    )
    w = _world(cfg, True)
    parts = build_parts(w, cfg, ~w.held_out)
    assert parts.cooc is not None
    # the planted item occurs only in a held-out row: it co-occurs with nothing
    assert parts.cooc.co[w.item_index[PLANT_ITEM]].nnz == 0
    train_rows = inter.filter(pl.col("ts") <= HELD_AFTER)
    decisions = np.flatnonzero(w.has_history & ~w.held_out)[::7]
    # a training pass (learn=True) with no case memory: the list is the item-kNN term alone
    rec = _recommender(parts, cfg, None)
    res = run_pass(w, rec, cfg, decisions, True, True, 0.0, np.random.default_rng(0))
    assert [d.event for d in res.decisions] == decisions.tolist()
    checked = 0
    for d in res.decisions:
        j, u = d.event, int(w.user[d.event])
        knn = ItemKNN().fit(train_rows.filter(pl.col("user_id") != u))
        hist = [int(w.item[e]) for e in w.history[j]]
        scores = knn.scores(hist)
        ranked = knn.rank(u, hist, cfg.top_n, set())
        want = [i for i in ranked if scores[knn._index[i]] > 1e-12]
        # same scores in the same order (equal scores may swap: tie orders differ), then
        # only items the baseline scores 0 (the list is filled up in popularity order)
        got_scores = [scores[knn._index[i]] if i in knn._index else 0.0 for i in d.items]
        want_scores = [scores[knn._index[i]] for i in want]
        np.testing.assert_allclose(got_scores[: len(want)], want_scores, atol=1e-9)
        assert all(s <= 1e-12 for s in got_scores[len(want) :]), (j, got_scores)
        checked += len(want) > 0
    assert checked >= 5

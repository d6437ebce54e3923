"""The shared history rule: every earlier row of the user in split order is input and mask,
no later row ever is, and fitted signals stay strictly causal."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl

from bench.replay.methods import baseline_decisions
from bench.replay.tuning import earlier_items
from data.schema import INTERACTIONS_SCHEMA, ITEMS_SCHEMA, conform
from data.splits import leave_last_out
from recsys.memory.text_encoder import HashingTextEncoder
from recsys.rec.request import RecRequest
from recsys.records import Action, Interaction
from tests.training.replay_fixture import tiny_cfg, tiny_recommender, with_recommend
from training.replay_env import build_split_parts
from training.replay_world import ReplayWorld, build_world

T0 = datetime(2024, 1, 1)


def _log(rows: list[tuple[int, int, int]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(user, item, second) clicks in this input order, and a 30-item catalogue."""
    df = pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "action": ["click"] * len(rows),
            "ts": [T0 + timedelta(seconds=r[2]) for r in rows],
            "dwell_seconds": [None] * len(rows),
            "source": ["test"] * len(rows),
        }
    )
    items = pl.DataFrame(
        {
            "item_id": list(range(30)),
            "title": [f"item title {i}" for i in range(30)],
            "category": ["c"] * 30,
            "brand_id": [None] * 30,
            "seller_id": ["s"] * 30,
            "pict_url": [""] * 30,
        }
    )
    return conform(df, INTERACTIONS_SCHEMA), conform(items, ITEMS_SCHEMA)


# user 1 rates 11, 12, 13 in the same second (input order); 13 is the test row, 12 the valid
SAME_SECOND = [(1, 10, 0), (2, 20, 5), (1, 11, 9), (1, 12, 9), (2, 21, 9), (1, 13, 9), (2, 22, 9)]


def _world(rows: list[tuple[int, int, int]]) -> ReplayWorld:
    inter, items = _log(rows)
    split = leave_last_out(inter)
    cfg = tiny_cfg()
    world = build_world(
        inter,
        split.test,
        items,
        HashingTextEncoder(32),
        cfg.core.state,
        cfg.core.reward,
        cfg.window_hours,
    )
    return world


def _items(world: ReplayWorld, events: tuple[int, ...]) -> list[int]:
    return [int(world.item[e]) for e in events]


def test_same_second_earlier_rows_are_history_and_later_rows_never() -> None:
    """The test row of user 1 sees 10, 11 and 12 (two in its own second); 12's history holds
    10 and 11 but not 13, which comes later in split order."""
    world = _world(SAME_SECOND)
    test = int(np.flatnonzero(world.held_out & (world.user == 1))[0])
    assert int(world.item[test]) == 13
    assert _items(world, world.history[test]) == [10, 11, 12]
    twelve = int(np.flatnonzero(world.item == 12)[0])
    assert _items(world, world.history[twelve]) == [10, 11]
    assert world.has_history[test]


def test_history_matches_the_split_order_oracle() -> None:
    """On a random log with many ties, every history is exactly the user's rows that precede
    it in stable (ts, input position) order (brute force)."""
    rng = np.random.default_rng(3)
    rows = [
        (int(rng.integers(0, 4)), int(rng.integers(0, 30)), int(rng.integers(0, 6)))
        for _ in range(60)
    ]
    world = _world(rows)
    order = sorted(range(len(rows)), key=lambda p: (rows[p][2], p))  # world order = split order
    for e, p in enumerate(order):
        want = [rows[q][1] for q in order[:e] if rows[q][0] == rows[p][0]]
        assert _items(world, world.history[e]) == want, e


def test_seen_mask_drops_same_second_earlier_items_only() -> None:
    """With exclude_seen, the test list never holds 10, 11 or 12 and still offers 13 (the
    target, later in split order)."""
    world = _world(SAME_SECOND)
    cfg = with_recommend(tiny_cfg(), exclude_seen=True, top_n=30)
    parts = build_split_parts(world, cfg)
    everything = list(range(30))
    decisions = baseline_decisions(world, parts.served, cfg, lambda j, h, ex: everything)
    test = next(d for d in decisions if d.target == 13)
    assert not {10, 11, 12} & set(test.items)
    assert 13 in test.items and not test.cold


def test_recommender_masks_and_reads_events_at_the_decision_second() -> None:
    """A request's event stamped at `now` enters the seen mask (the caller orders the second);
    an event after `now` does not."""
    cfg = with_recommend(tiny_cfg(), exclude_seen=True)
    world = _world(SAME_SECOND)
    parts = build_split_parts(world, cfg)
    rec = tiny_recommender(parts.served, cfg, None, "soft-q")
    now = 9.0
    events = [
        Interaction("1", "11", Action.CLICK, now),
        Interaction("1", "12", Action.CLICK, now + 1),
    ]
    ex = rec.exclusions(RecRequest("1", events, now), seen=True)
    assert rec.items.rows(["11"])[0] in ex
    assert rec.items.rows(["12"])[0] not in ex


def test_fitted_popularity_stays_strictly_before_the_decision() -> None:
    """The served popularity at the test row counts no row of its own second (causal fit)."""
    world = _world(SAME_SECOND)
    parts = build_split_parts(world, tiny_cfg())
    test = int(np.flatnonzero(world.held_out & (world.user == 1))[0])
    scores = parts.served.popularity.scores(float(world.ts[test]))
    before = world.ts < world.ts[test]
    for item in range(30):
        row = world.item_index[item]
        assert (scores[row] > 0) == bool(np.any(before & (world.item == item))), item


def test_validation_history_includes_same_second_fit_rows() -> None:
    """The tuning history of a valid row holds its user's fit rows of the same second and none
    after it."""
    inter, _ = _log([(1, 10, 0), (1, 11, 9), (1, 12, 9), (1, 14, 20)])
    fit = inter.filter(pl.col("item_id") != 12)
    valid = inter.filter(pl.col("item_id") == 12)
    assert earlier_items(fit, valid) == [[10, 11]]

"""A tiny replayed log with a planted held-out event, and a spy on the replay (shared by the
replay-honesty tests)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from bench.replay.config import DEFAULT_MODES, CompareConfig, replay_cores
from data.schema import INTERACTIONS_SCHEMA, ITEMS_SCHEMA, conform
from recsys.config import BlendConfig, CoreConfig, LearnerConfig, RecommendConfig
from recsys.loop import Decided
from recsys.memory.text_encoder import HashingTextEncoder
from recsys.presets import ITEMS_LISTWISE_WEIGHT, derive
from recsys.rec.recommender import Recommender
from recsys.rec.request import RecRequest, RecResult
from recsys.records import Candidates
from recsys.rl.learner import Learner
from training.config import TrainConfig
from training.replay_env import ReplayParts, build_parts, run_pass
from training.replay_world import ReplayWorld, build_world

T0 = datetime(2024, 1, 1)
PLANT_ITEM = 999
HELD_AFTER = T0 + timedelta(hours=190)
"""Events after this are held out (the test period)."""


def tiny_log(plant: bool, swap: tuple[int, int] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
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


def tiny_compare(
    blend: BlendConfig | None = None,
    hashing: bool = False,
    modes: tuple[str, ...] = DEFAULT_MODES,
    **train: Any,
) -> CompareConfig:
    """Small lists over the 41-item catalogue, plain popularity counts (every model); the
    case-choosing methods retrieve K = 8 cases and take 5 popular items; `blend` for every
    model; `hashing`: the 64-d hashing encoder; `train`: `TrainConfig` fields."""

    def edit(core: CoreConfig) -> CoreConfig:
        rc = dataclasses.replace(
            core.recommend,
            num_chosen=4,
            n_neighbours=10,
            top_n=15,
            pop_half_life_hours=0.0,
            blend=blend or core.recommend.blend,
        )
        text = dataclasses.replace(core.text, kind="hashing", dim=64) if hashing else core.text
        return dataclasses.replace(core, recommend=rc, text=text)

    product, cases = replay_cores(edit)
    rc = dataclasses.replace(cases.recommend, top_k=8, n_popular=5)
    cases = dataclasses.replace(cases, recommend=rc)
    return CompareConfig(TrainConfig(core=product, **train), case_core=cases, modes=modes)


def tiny_cfg(
    mode: str = "soft-q-blend", blend: BlendConfig | None = None, **kw: Any
) -> TrainConfig:
    """The training run of harness mode `mode` in `tiny_compare` (its own model)."""
    return tiny_compare(blend, **kw).train_of(mode, 0)


def with_recommend(cfg: TrainConfig, **fields: Any) -> TrainConfig:
    """`cfg` with these `RecommendConfig` fields changed in its model."""
    rc = dataclasses.replace(cfg.core.recommend, **fields)
    return dataclasses.replace(cfg, core=dataclasses.replace(cfg.core, recommend=rc))


def tiny_world(cfg: TrainConfig, plant: bool, swap: tuple[int, int] | None = None) -> ReplayWorld:
    inter, items = tiny_log(plant, swap)
    held = inter.filter(pl.col("ts") > HELD_AFTER)
    return build_world(
        inter,
        held,
        items,
        HashingTextEncoder(64),
        cfg.core.state,
        cfg.core.reward,
        cfg.window_hours,
        case_state_weight=cfg.core.case_bank.key_state_weight,
        collab_dim=cfg.collab_dim,
    )


def tiny_learner(mode: str) -> Learner:
    """A small learner of a harness mode (`soft-q` scores items, `soft-q-blend` cases)."""
    lc = LearnerConfig(
        mode="soft-q" if mode.startswith("soft-q") else mode,  # type: ignore[arg-type]
        batch_size=8,
        min_replay=8,
        listwise_weight=ITEMS_LISTWISE_WEIGHT,
    )
    scorer = "items" if mode in ("soft-q", "soft-q-cases") else "blend"
    core = derive(CoreConfig(learner=lc, recommend=RecommendConfig(scorer=scorer)))
    return Learner(core.learner, 64, 64)


def tiny_recommender(
    parts: ReplayParts, cfg: TrainConfig, learner: Learner | None, mode: str = "soft-q-blend"
) -> Recommender:
    """The pipeline of `cfg` (the run of `mode`, `tiny_cfg(mode)`)."""
    from training.modes import recommender_for

    return recommender_for(parts, cfg, learner, None, mode)


def valid_ids(c: Candidates) -> list[int]:
    return [int(i) for i in c.case_ids[c.mask]]


@dataclasses.dataclass
class Spy:
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
                by_cands[id(res.state.vec)] = j
            return res

        self.rec.recommend = spy_recommend  # type: ignore[method-assign]
        if loop is not None:
            learn = loop.learn

            def spy_learn(d: Decided, r: np.ndarray, s2: Any, c2: Any) -> Any:
                self.learned.append((by_cands[id(d.state)], d, np.asarray(r), s2, c2))
                return learn(d, r, s2, c2)

            loop.learn = spy_learn  # type: ignore[method-assign]


def train_pass(mode: str, plant: bool) -> tuple[ReplayWorld, Spy, Any]:
    """One learning pass over every decision point before the plant, as `run_memory_mode`
    trains (learn=True, sampled choices)."""
    cfg = tiny_cfg(mode, updates_per_transition=0.25)
    w = tiny_world(cfg, plant)
    parts = build_parts(w, cfg, ~w.held_out)
    spy = Spy(w, tiny_recommender(parts, cfg, tiny_learner(mode), mode))
    decisions = np.flatnonzero(w.has_history & (w.ts < (T0 + timedelta(hours=999)).timestamp()))
    res = run_pass(w, spy.rec, cfg, decisions, True, False, 0.0, np.random.default_rng(0))
    # every decision's state is built from strictly earlier events of the same user
    for j in decisions:
        assert all(w.ts[e] < w.ts[j] and w.user[e] == w.user[j] for e in w.history[j])
    return w, spy, res

"""Time-ordered replay: the offline adapter around `recsys.rec.Recommender` and `MemoryLoop`.

The replay builds the model's parts once (`build_split_parts`): the catalogue table, the case
bank (one case per event, "state before the event -> its item"), the popularity log and the
co-occurrence counts. Training passes use parts of the TRAINING rows; evaluation uses parts of
every row read as of the decision time (what a service that logged every event would know),
and these evaluated parts are exactly what the bundle ships to serving. At a decision event j
(user u, time t):

1. the request is u's earlier events in split order (`ReplayWorld.history`: same-second
   earlier rows included), at time t;
2. the recommender searches the bank AS OF t (only cases whose outcome time is strictly before
   t), chooses m cases, builds and ranks the candidates (`Recommender.recommend`);
3. reward = `ReplayWorld.list_reward` (u's events within W hours; a training pass never counts
   held-out events); the transition (`Recommender.transition`) reaches `MemoryLoop.learn`
   (`Recommender.observe`) at the first decision after the window has closed. s' is u's state
   at their next event if that event happened by then, with its candidates retrieved as of
   s''s own time, else the transition is terminal.

A cold decision (no earlier event of the user) gets the popularity list and no transition.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recsys.memory.case_bank import CaseBank
from recsys.rec.cooccurrence import Cooccurrence
from recsys.rec.items import ItemTable
from recsys.rec.popularity import Popularity
from recsys.rec.recommender import Recommender
from recsys.rec.request import RecRequest
from recsys.rec.scorers import LoggedDecision, Outcome, get_scorer
from recsys.records import Action, Case, Interaction
from training.config import TrainConfig
from training.replay_world import ReplayWorld

__all__ = [
    "Decision",
    "PassResult",
    "ReplayParts",
    "SplitParts",
    "build_parts",
    "build_split_parts",
    "request_at",
    "run_pass",
]

log = logging.getLogger(__name__)


@dataclass
class ReplayParts:
    """The model parts fitted on the training rows (shared by every method of a run)."""

    items: ItemTable
    """Catalogue (rows = `ReplayWorld.item_ids` order)."""
    bank: CaseBank
    """One case per training event, written in time order."""
    popularity: Popularity
    """Training events as a popularity log."""
    cooc: Cooccurrence | None
    """Co-occurrence counts of the training rows (None when the blend does not use them)."""


@dataclass
class SplitParts:
    """The parts training passes use and the parts evaluation uses (and the bundle ships)."""

    train: ReplayParts
    """From the training rows only: a training pass never sees a held-out event."""
    served: ReplayParts
    """From every row, read as of each decision's time (what a service that logged every
    event would know then); co-occurrence from the training rows (its counts have no time)."""


def build_split_parts(world: ReplayWorld, cfg: TrainConfig) -> SplitParts:
    """Training parts and evaluation/served parts of one world."""
    train = ~world.held_out
    return SplitParts(
        build_parts(world, cfg, train),
        build_parts(world, cfg, np.ones(world.n, bool), cooc_rows=train),
    )


def build_parts(
    world: ReplayWorld, cfg: TrainConfig, rows: np.ndarray, cooc_rows: np.ndarray | None = None
) -> ReplayParts:
    """Parts from the events where `rows` (bool, (n,)) is True; co-occurrence from
    `cooc_rows` (default `rows`)."""
    items = ItemTable(
        [str(int(i)) for i in world.item_ids],
        [world.title(int(i)) for i in world.item_ids],
        world.item_vecs,
    )
    bank = CaseBank(cfg.core.case_bank, world.dim)
    events = np.flatnonzero(rows)  # in time order (the world is sorted)
    cases = []
    for e in events:
        prev = world.history[e][-1:]
        context = "、".join(world.title(int(world.item[p]))[:20] for p in prev) or "-"
        cases.append(
            Case(
                key=world.case_key[e],
                payload={
                    "item_id": str(int(world.item[e])),
                    "title": world.title(int(world.item[e])),
                    "action": world.action[e],
                    "event": int(e),
                    "sid": f"e{int(e)}",  # stable across bundles (serving's case id)
                    "context": context,
                    "reward": float(world.case_reward[e]),
                },
                reward=float(world.case_reward[e]),
                ts=float(world.ts[e]),
                source="replay",
                visits=0,  # visit counts stay out of the Q features (rich-get-richer)
            )
        )
    for k in range(0, len(cases), 20_000):
        bank.write_batch(cases[k : k + 20_000])
    item_rows = np.array([world.item_index[int(i)] for i in world.item[events]], np.int64)
    rc = cfg.core.recommend
    pop = Popularity(len(items), item_rows, world.ts[events], rc.pop_half_life_hours)
    cooc = None
    if get_scorer(rc.scorer).needs_cooccurrence(rc.blend):
        fit = np.flatnonzero(rows if cooc_rows is None else cooc_rows)
        fit_rows = np.array([world.item_index[int(i)] for i in world.item[fit]], np.int64)
        cooc = Cooccurrence.fit(world.user[fit], fit_rows, len(items))
    return ReplayParts(items, bank, pop, cooc)


def request_at(world: ReplayWorld, j: int, knn_without_user: bool = False) -> RecRequest:
    """The recommend request of decision j: the user's earlier events in split order
    (`ReplayWorld.history`), at ts[j]."""
    uid = str(int(world.user[j]))
    events = [
        Interaction(uid, str(int(world.item[e])), Action(world.action[e]), float(world.ts[e]))
        for e in world.history[j]
    ]
    return RecRequest(uid, events, float(world.ts[j]), knn_without_user=knn_without_user)


@dataclass
class Decision:
    """One decision's outcome."""

    event: int
    """Event index (the decision point)."""
    items: list[int]
    """The produced top-N list (item ids)."""
    target: int
    """The item the user acted on at this event (metrics only; never a candidate source)."""
    reward: float
    """Window reward of the list."""
    used_llm: bool
    """Whether the LLM ranked this list."""
    cold: bool
    """No earlier event of the user: popularity list."""
    in_pool: bool | None = None
    """An item-choosing scorer's decision: whether the target was in the pool Q chose from
    (pool recall; False for an empty pool). None: no item pool (cold, peers, case scorers)."""
    pool_size: int = 0
    """Items in that pool."""


@dataclass
class PassResult:
    """Everything one pass produced."""

    decisions: list[Decision] = field(default_factory=list)
    """Decisions in time order."""
    learn: list[dict[str, float]] = field(default_factory=list)
    """Learner metrics per update."""

    @property
    def reward_per_decision(self) -> float:
        """Mean window reward over decisions (0 when none)."""
        return float(np.mean([d.reward for d in self.decisions])) if self.decisions else 0.0


Hook = Callable[[int], None]


def _outcome(
    world: ReplayWorld, j: int, reward: float, acted: set[int], cfg: TrainConfig, training: bool
) -> Outcome:
    """What followed decision j as log replay knows it: the list's window reward and the shown
    items acted on, and (full information) a label for every item of the user's next
    `label_events` events (`ReplayWorld.next_labels`); s' is added once the window closed."""
    labels = world.next_labels(j, cfg.label_events, cfg.label_decay, skip_held_out=training)
    return Outcome(
        reward,
        frozenset(str(a) for a in acted),
        {str(i): v for i, v in labels.items()},
        cfg.label_negatives,
        j,
    )


def run_pass(
    world: ReplayWorld,
    rec: Recommender,
    cfg: TrainConfig,
    decisions: np.ndarray,
    learn: bool,
    greedy: bool,
    llm_fraction: float,
    rng: np.random.Generator,
    on_decision: Hook | None = None,
    training: bool | None = None,
) -> PassResult:
    """Replay `decisions` (event indices) in time order through `rec`.

    learn: each decision's transition (`Recommender.transition`, built at decision time) is
    completed with s' and learned (`Recommender.observe`) once its reward window has closed.
    training: a training pass (default: `learn`): reward windows skip held-out events and the
    co-occurrence term leaves the decision's own user out. A prequential evaluation learns
    without being a training pass.
    llm_fraction: share of warm decisions ranked with the LLM (1.0 in evaluation).
    """
    training = learn if training is None else training
    out = PassResult()
    pending: list[tuple[float, int, dict[str, Any]]] = []
    loop = rec.loop if learn else None
    seq = 0

    def finish(item: dict[str, Any], now: float) -> None:
        nxt, s2, req2 = item["next"], None, None
        if nxt >= 0 and world.ts[nxt] < now:  # s' only once it has happened, as of its time
            s2 = world.state_vec[nxt]
            req2 = request_at(world, nxt, knn_without_user=training)
        step = rec.observe(item["decided"], item["rewards"], req2, s2)
        out.learn.extend(step.metrics)

    def flush(now: float) -> None:
        while pending and pending[0][0] < now:
            _, _, item = heapq.heappop(pending)
            finish(item, now)

    for j in np.sort(decisions):
        j = int(j)
        now = float(world.ts[j])
        if loop is not None:
            flush(now)
        warm = bool(world.has_history[j])
        use_llm = warm and rec.llm is not None and bool(rng.random() < llm_fraction)
        res = rec.recommend(request_at(world, j, knn_without_user=training), greedy, use_llm)
        items = [int(world.item_ids[r]) for r in res.items]
        r, acted = world.list_reward(
            j, items[: cfg.reward_top], cfg.core.reward, skip_held_out=training
        )
        dec = Decision(j, items, int(world.item[j]), r, res.used_llm, not warm)
        if warm and rec.scorer.chooses_items and rec.loop is not None:
            pool = res.cands.case_ids[res.cands.mask] if res.cands is not None else []
            dec.in_pool = world.item_index[dec.target] in {int(i) for i in pool}
            dec.pool_size = len(pool)
        out.decisions.append(dec)
        decision = LoggedDecision.from_result(res, rec.items)
        if loop is not None and decision is not None:
            built = rec.transition(decision, _outcome(world, j, r, acted, cfg, training))
            nxt = int(world.next_event[j])
            if (nxt >= 0 and world.held_out[nxt]) or loop.learner.cfg.gamma == 0.0:
                nxt = -1  # gamma 0 (log replay is a bandit): s' is never used
            if built is not None:
                ready = now + cfg.window_hours * 3600.0  # the reward is known once W has passed
                item = {"decided": built[0], "rewards": built[1], "next": nxt}
                heapq.heappush(pending, (ready, seq, item))
                seq += 1
        if on_decision is not None:
            on_decision(j)
    if loop is not None:
        end = float(world.ts.max()) + cfg.window_hours * 3600.0 + 1.0 if world.n else 0.0
        flush(end)
    return out

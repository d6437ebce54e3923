"""Time-ordered replay: the offline adapter around `recsys.rec.Recommender` and `MemoryLoop`.

The replay builds the model's parts once (`build_split_parts`): the catalogue table, the case
bank (one case per event, "state before the event -> its item"), the popularity log and the
co-occurrence counts. Training passes use parts of the TRAINING rows; evaluation uses parts of
every row read as of the decision time (what a service that logged every event would know),
and these evaluated parts are exactly what the bundle ships to serving. At a decision event j
(user u, time t):

1. the request is u's events strictly before t, at time t;
2. the recommender searches the bank AS OF t (only cases whose outcome time is strictly before
   t), chooses m cases, builds and ranks the candidates (`Recommender.recommend`);
3. reward = `ReplayWorld.list_reward` (u's events within W hours; a training pass never counts
   held-out events); the transition reaches `MemoryLoop.learn` at the first decision after the
   window has closed. s' is u's state at their next event if that event happened by then,
   with its candidates retrieved as of s''s own time, else the transition is terminal.

A cold decision (no earlier event of the user) gets the popularity list and no transition.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recsys.config import CaseBankConfig
from recsys.loop import Decided
from recsys.memory.case_bank import CaseBank
from recsys.rec.cooccurrence import Cooccurrence
from recsys.rec.items import ItemTable
from recsys.rec.popularity import Popularity
from recsys.rec.recommender import Recommender
from recsys.rec.request import RecRequest, RecResult
from recsys.records import Action, Candidates, Case, Interaction
from recsys.rl.credit import assign_credit
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
    bank_cfg = CaseBankConfig(
        merge_threshold=2.0,
        top_k=cfg.top_k,
        key_state_weight=cfg.case_state_weight,
        q_input="content" if cfg.q_content_keys else "key",
    )
    bank = CaseBank(bank_cfg, world.dim)
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
    pop = Popularity(len(items), item_rows, world.ts[events], cfg.pop_half_life_hours)
    cooc = None
    if cfg.blend.w_knn > 0 or cfg.soft_q_scorer == "items":
        fit = np.flatnonzero(rows if cooc_rows is None else cooc_rows)
        fit_rows = np.array([world.item_index[int(i)] for i in world.item[fit]], np.int64)
        cooc = Cooccurrence.fit(world.user[fit], fit_rows, len(items))
    return ReplayParts(items, bank, pop, cooc)


def request_at(world: ReplayWorld, j: int, knn_without_user: bool = False) -> RecRequest:
    """The recommend request of decision j: the user's events strictly before ts[j]."""
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


def _item_transition(
    world: ReplayWorld, j: int, res: RecResult, cfg: TrainConfig, training: bool
) -> tuple[Decided, np.ndarray]:
    """items scorer: every pooled item is labelled from the user's next events
    (`ReplayWorld.next_labels`), so the replay learns Q(s, item) for the whole pool (log replay
    knows what any list would have earned); behaviour log-probabilities = the policy's."""
    assert res.cands is not None and res.choice is not None
    labels = world.next_labels(j, cfg.label_events, cfg.label_decay, skip_held_out=training)
    rows = np.flatnonzero(res.cands.mask)
    ids = world.item_ids[res.cands.case_ids[rows]]
    rewards = np.array([labels.get(int(i), 0.0) for i in ids], np.float32)
    if cfg.label_negatives and (rewards == 0).sum() > cfg.label_negatives:
        # every labelled item, a fixed-size sample of the others (the update's cost is
        # linear in the pool; the sample is seeded by the decision, so passes repeat it)
        neg = np.flatnonzero(rewards == 0)
        pick = np.random.default_rng([j, 31]).choice(neg, cfg.label_negatives, replace=False)
        keep = np.sort(np.concatenate([np.flatnonzero(rewards > 0), pick]))
        rows, rewards = rows[keep], rewards[keep]
    logp = np.log(np.maximum(res.choice.probs[rows], 1e-12)).astype(np.float32)
    sub = Candidates(
        case_ids=res.cands.case_ids[rows],
        keys=res.cands.keys[rows],
        sims=res.cands.sims[rows],
        features=res.cands.features[rows],
        mask=np.ones(len(rows), bool),
    )
    return Decided(res.state.vec, sub, np.arange(len(rows), dtype=np.int64), logp), rewards


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

    learn: finished transitions go to `rec.loop.learn`.
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
        assert loop is not None
        nxt = item["next"]
        s2 = c2 = None
        if nxt >= 0 and world.ts[nxt] < now:  # s' only once it has happened, as of its time
            s2 = world.state_vec[nxt]
            c2 = rec.candidates_for(request_at(world, nxt, knn_without_user=training))
        step = loop.learn(item["decided"], item["rewards"], s2, c2)
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
        r, acted = world.list_reward(j, items[: cfg.reward_top], cfg.reward, skip_held_out=training)
        out.decisions.append(Decision(j, items, int(world.item[j]), r, res.used_llm, not warm))
        if loop is not None and res.choice is not None and res.cands is not None:
            nxt = int(world.next_event[j])
            if (nxt >= 0 and world.held_out[nxt]) or loop.learner.cfg.gamma == 0.0:
                nxt = -1  # gamma 0 (log replay is a bandit): s' is never used
            if rec.cfg.scorer == "items":
                decided, rewards = _item_transition(world, j, res, cfg, training)
            else:
                case_items = [[rec.items.ids[i] for i in c.items] for c in res.chosen]
                credit = cfg.credit
                if loop.learner.mode == "parametric-ce":  # its label is reward > 0: only
                    credit = dataclasses.replace(credit, beta=0.0)  # attributed cases count
                rewards = assign_credit(r, case_items, {str(a) for a in acted}, credit)
                decided = Decided(
                    res.state.vec,
                    res.cands,
                    np.array([c.row for c in res.chosen], np.int64),
                    np.array([c.logp for c in res.chosen], np.float32),
                )
            ready = now + cfg.window_hours * 3600.0  # the reward is known once W has passed
            heapq.heappush(
                pending, (ready, seq, {"decided": decided, "rewards": rewards, "next": nxt})
            )
            seq += 1
        if on_decision is not None:
            on_decision(j)
    if loop is not None:
        end = float(world.ts.max()) + cfg.window_hours * 3600.0 + 1.0 if world.n else 0.0
        flush(end)
    return out

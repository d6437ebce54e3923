"""Time-ordered replay: one pass over the log, deciding at each chosen decision point.

At a decision event j (user u, time t):
1. the case bank holds exactly the cases whose outcome time is STRICTLY before t (pending
   cases are written in time order as the clock advances; a training pass never writes
   held-out rows);
2. the state is `world.state_vec[j]` (u's events strictly before t);
3. the policy chooses m of the Top-K retrieved cases; candidate items = the chosen cases'
   items + the state's catalogue neighbours (`recsys.rec.candidates`), never the ground truth;
4. the items are ranked by the blend of `training.config.BlendConfig` (case score, neighbour
   score, causal popularity, and the frozen LLM's z-scored log-likelihood when the LLM is used)
   into a top-N list;
5. reward = `ReplayWorld.list_reward` (the user's events within W hours); the transition
   (s, K snapshot, chosen, logp, credited rewards, s', K' snapshot, done) reaches the learner
   at the first decision after the window has closed (`recsys.rl.credit` rule); s' is the
   user's next state if that event has already happened by then, else the transition is
   terminal (done) - so nothing about the future decides when or what is learned.

A cold decision (no earlier event of the user) gets the causal popularity list and no
transition. Case ids handed to the learner are event indices, stable across passes, so the
tabular Q and per-case visit counts carry over from one iteration to the next.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recsys.config import CaseBankConfig
from recsys.llm.prompts import CaseExample, HistoryItem, PromptBuilder, PromptConfig
from recsys.llm.protocol import FrozenLLM
from recsys.memory.case_bank import CaseBank
from recsys.rec.candidates import candidate_items, nearest_items
from recsys.records import Candidates, Case, Transition
from recsys.rl.credit import assign_credit
from recsys.rl.learner import Learner
from training.config import TrainConfig
from training.replay_world import ReplayWorld

__all__ = ["Decision", "PassResult", "ReplayAgent", "TimedBank", "run_pass"]

log = logging.getLogger(__name__)


class TimedBank:
    """A `CaseBank` filled in time order: `advance(now)` writes every allowed case with
    outcome time < now. Candidates come back with case ids = event indices."""

    def __init__(
        self,
        world: ReplayWorld,
        allowed: np.ndarray,
        top_k: int,
        visits: np.ndarray,
        key_state_weight: float = 0.5,
        q_content: bool = False,
    ):
        self.world = world
        bank_cfg = CaseBankConfig(
            merge_threshold=2.0,
            top_k=top_k,
            key_state_weight=key_state_weight,
            q_input="content" if q_content else "key",
        )
        self.bank = CaseBank(bank_cfg, world.dim)
        self._events = np.flatnonzero(allowed)  # in time order (world is sorted)
        self._next = 0
        self._bank_to_event: list[int] = []
        self.visits = visits
        self.pop = np.zeros(len(world.item_ids), np.float64)

    def advance(self, now: float) -> None:
        """Write the cases of allowed events with ts < now (and count them in popularity)."""
        w = self.world
        stop = self._next
        while stop < len(self._events) and w.ts[self._events[stop]] < now:
            stop += 1
        if stop == self._next:
            return
        batch = self._events[self._next : stop]
        cases = [
            Case(
                key=w.case_key[e],
                payload={
                    "item_id": str(int(w.item[e])),
                    "title": w.title(int(w.item[e])),
                    "action": w.action[e],
                    "event": int(e),
                },
                reward=float(w.case_reward[e]),
                ts=float(w.ts[e]),
                source="replay",
                visits=0,  # visit counts stay out of the Q features (rich-get-richer)
            )
            for e in batch
        ]
        ids = self.bank.write_batch(cases)
        assert ids == list(range(len(self._bank_to_event), len(self._bank_to_event) + len(ids)))
        self._bank_to_event.extend(int(e) for e in batch)
        for e in batch:
            self.pop[w.item_index[int(w.item[e])]] += 1.0
        self._next = stop

    def search(self, state: np.ndarray, k: int, now: float) -> Candidates:
        """Top-k cases for a state (case ids = event indices)."""
        if len(self.bank) == 0 or not np.any(state):
            return Candidates.empty(self.world.dim)
        c = self.bank.search(state, k, now)
        ev = np.array([self._bank_to_event[int(i)] for i in c.case_ids], np.int64)
        keys = c.keys
        if self.bank.cfg.q_input == "content":  # Q sees the case's item, retrieval its state
            w = self.world
            keys = keys.copy()
            for r in np.flatnonzero(c.mask):
                keys[r] = w.item_vecs[w.item_index[int(w.item[ev[r]])]]
        return Candidates(ev, keys, c.sims, c.features, c.mask)

    def popular(self, n: int, exclude: set[int]) -> list[int]:
        """Top-n items by count of past events (ties: catalogue order)."""
        order = np.argsort(-self.pop, kind="stable")
        out: list[int] = []
        for k in order:
            it = int(self.world.item_ids[k])
            if it not in exclude:
                out.append(it)
                if len(out) >= n:
                    break
        return out


@dataclass
class Decision:
    """One decision's outcome."""

    event: int
    """Event index (the decision point)."""
    items: list[int]
    """The produced top-N list."""
    target: int
    """The item the user acted on at this event (metrics only; never a candidate source)."""
    reward: float
    """Window reward of the list."""
    used_llm: bool
    """Whether the LLM ranked this list."""
    cold: bool
    """No earlier event of the user: popularity fallback."""


@dataclass
class PassResult:
    """Everything one pass produced."""

    decisions: list[Decision] = field(default_factory=list)
    """Decisions in time order."""
    learn: list[dict[str, float]] = field(default_factory=list)
    """Learner metrics per update."""
    n_cases: int = 0
    """Cases in the bank at the end."""

    @property
    def reward_per_decision(self) -> float:
        """Mean window reward over decisions (0 when none)."""
        return float(np.mean([d.reward for d in self.decisions])) if self.decisions else 0.0


def _rank_score(n: int) -> np.ndarray:
    return 1.0 / np.log2(2.0 + np.arange(n))


class ReplayAgent:
    """Chooses cases and ranks candidate items for one method.

    learner: None for no-memory (no cases). llm: None = never use the LLM.
    """

    def __init__(
        self,
        world: ReplayWorld,
        cfg: TrainConfig,
        learner: Learner | None,
        llm: FrozenLLM | None,
        seed: int,
    ) -> None:
        self.world = world
        self.cfg = cfg
        self.learner = learner
        self.llm = llm
        self.visits = np.zeros(world.n, np.int64)
        self.last_bank: TimedBank | None = None
        self.rng = np.random.default_rng(seed)
        lang = world.lang if cfg.prompt_lang == "auto" else cfg.prompt_lang
        counter = getattr(llm, "count_tokens", None)
        self.prompts = PromptBuilder(PromptConfig(lang=lang, max_prompt_tokens=320), counter)

    # -- ranking ----------------------------------------------------------------------------
    def _prompt(self, j: int, chosen_events: list[int], cand_items: list[int]) -> str:
        w = self.world
        hist = [HistoryItem(w.title(int(w.item[e])), w.action[e]) for e in w.history[j][-6:]]
        cases = []
        for e in chosen_events[:3]:
            prev = w.history[e][-1:] if w.history[e] else ()
            st = "、".join(w.title(int(w.item[p]))[:20] for p in prev) or "-"
            cases.append(CaseExample(st, w.title(int(w.item[e])), w.case_reward[e] > 0))
        cands = [w.title(i) for i in cand_items]
        return self.prompts.build(hist, cases, cands).text

    def _knn_rank(self, j: int, exclude: set[int]) -> dict[int, int]:
        """item -> rank by co-occurrence with the user's recent past items, counted over the
        other users (`Cooccurrence.scores_without`); empty when off."""
        w, b = self.world, self.cfg.blend
        if b.w_knn <= 0 or w.knn is None or not w.history[j]:
            return {}
        recent = [w.item_index[int(w.item[e])] for e in reversed(w.history[j][-b.knn_recent :])]
        s = w.knn.scores_without(int(w.user[j]), recent, decay=0.9)
        top = np.argsort(-s, kind="stable")[: b.n_knn + len(exclude)]
        ranked = [int(w.item_ids[k]) for k in top if s[k] > 0]
        return {it: r for r, it in enumerate(i for i in ranked if i not in exclude)}

    def rank(
        self, j: int, bank: TimedBank, use_llm: bool, greedy: bool
    ) -> tuple[list[int], dict[str, Any] | None]:
        """(top-N list, choice info or None) for decision j."""
        w, cfg, b = self.world, self.cfg, self.cfg.blend
        now = float(w.ts[j])
        seen = {int(w.item[e]) for e in w.history[j]}
        exclude = seen if cfg.exclude_seen else set()
        state = w.state_vec[j]
        info: dict[str, Any] | None = None
        case_score: dict[int, float] = {}
        case_items: list[int] = []
        if self.learner is not None:
            cands = bank.search(state, cfg.top_k, now)
            if cands.num_valid > 0:
                choice = self.learner.act(state, cands, cfg.num_chosen, greedy=greedy)
                # rank weights in the policy's order (independent of the temperature)
                p = _rank_score(len(choice.indices))
                events = [int(cands.case_ids[i]) for i in choice.indices]
                for e, pv in zip(events, p, strict=True):
                    it = int(w.item[e])
                    case_score[it] = case_score.get(it, 0.0) + float(pv)
                    case_items.append(it)
                    self.visits[e] += 1
                info = {"cands": cands, "choice": choice, "events": events}
        items = candidate_items(
            case_items, state, w.item_ids, w.item_vecs, cfg.n_neighbours, exclude
        )
        nb = nearest_items(state, w.item_ids, w.item_vecs, cfg.n_neighbours + len(exclude))
        nb_rank = {it: r for r, it in enumerate(i for i in nb if i not in exclude)}
        pop_order = bank.popular(max(cfg.top_n, 200), exclude)
        pop_rank = {it: r for r, it in enumerate(pop_order)}
        if b.w_pop > 0:
            items += [i for i in pop_order[: cfg.n_popular] if i not in set(items)]
        knn_rank = self._knn_rank(j, exclude)
        if knn_rank:
            have = set(items)
            items += [i for i in knn_rank if knn_rank[i] < b.n_knn and i not in have]
        rs = _rank_score(len(w.item_ids) + 1)
        score = np.array(
            [
                b.w_case * min(case_score.get(i, 0.0), 1.5)
                + b.w_nb * (rs[nb_rank[i]] if i in nb_rank else 0.0)
                + b.w_pop * (rs[pop_rank[i]] if i in pop_rank else 0.0)
                + b.w_knn * (rs[knn_rank[i]] if i in knn_rank else 0.0)
                for i in items
            ]
        )
        order = np.argsort(-score, kind="stable")
        items = [items[k] for k in order]
        score = score[order]
        if use_llm and self.llm is not None and items:
            depth = min(b.llm_depth, len(items))
            head = items[:depth]
            prompt = self._prompt(j, info["events"] if info else [], head)
            ll = np.asarray(self.llm.rank(prompt, [w.title(i) for i in head]), np.float64)
            z = (ll - ll.mean()) / (ll.std() + 1e-6) if depth > 1 else np.zeros(depth)
            head_score = score[:depth] + b.w_llm * z
            sub = np.argsort(-head_score, kind="stable")
            items = [head[k] for k in sub] + items[depth:]
        return items[: cfg.top_n], info


Hook = Callable[[int], None]


def run_pass(
    world: ReplayWorld,
    agent: ReplayAgent,
    decisions: np.ndarray,
    allowed: np.ndarray,
    learn: bool,
    greedy: bool,
    llm_fraction: float,
    on_decision: Hook | None = None,
) -> PassResult:
    """Replay `decisions` (event indices) in time order over the cases of `allowed` events.

    learn: finished transitions go to the learner (and gradient steps run).
    llm_fraction: share of warm decisions ranked with the LLM (1.0 in evaluation).
    """
    cfg = agent.cfg
    bank = TimedBank(
        world, allowed, cfg.top_k, agent.visits, cfg.case_state_weight, cfg.q_content_keys
    )
    agent.last_bank = bank
    out = PassResult()
    pending: list[tuple[float, int, dict[str, Any]]] = []
    learner = agent.learner
    seq = 0
    credit = [0.0]  # fractional gradient steps owed

    def finish(item: dict[str, Any], now: float) -> None:
        assert learner is not None
        nxt = item["next"]
        if nxt >= 0 and world.ts[nxt] < now:  # s' only once it has happened
            s2 = world.state_vec[nxt]
            c2 = bank.search(s2, cfg.top_k, now)
            done = False
        else:
            s2, c2, done = item["state"], Candidates.empty(world.dim), True
        t = Transition(
            state=item["state"],
            cands=item["cands"],
            chosen=item["chosen"],
            logp=item["logp"],
            rewards=item["rewards"],
            next_state=s2,
            next_cands=c2,
            done=done,
        )
        learner.observe(t)
        credit[0] += cfg.updates_per_transition
        while credit[0] >= 1.0:
            credit[0] -= 1.0
            m = learner.update()
            if m:
                out.learn.append(m)

    def flush(now: float) -> None:
        while pending and pending[0][0] < now:
            _, _, item = heapq.heappop(pending)
            finish(item, now)

    for j in np.sort(decisions):
        j = int(j)
        now = float(world.ts[j])
        bank.advance(now)
        if learn and learner is not None:
            flush(now)
        if not world.has_history[j]:
            items = bank.popular(cfg.top_n, set())
            r, _ = world.list_reward(j, items[: cfg.reward_top], cfg.reward)
            out.decisions.append(Decision(j, items, int(world.item[j]), r, False, True))
            continue
        use_llm = agent.llm is not None and bool(agent.rng.random() < llm_fraction)
        items, info = agent.rank(j, bank, use_llm, greedy)
        r, acted = world.list_reward(j, items[: cfg.reward_top], cfg.reward)
        out.decisions.append(Decision(j, items, int(world.item[j]), r, use_llm, False))
        if learn and learner is not None and info is not None:
            events = info["events"]
            rewards = assign_credit(
                r, [[str(int(world.item[e]))] for e in events], {str(a) for a in acted}, cfg.credit
            )
            nxt = int(world.next_event[j])
            if nxt >= 0 and not allowed[nxt]:
                nxt = -1
            ready = now + cfg.window_hours * 3600.0  # the reward is known once W has passed
            choice = info["choice"]
            item = {
                "state": world.state_vec[j],
                "cands": info["cands"],
                "chosen": choice.indices,
                "logp": choice.logp,
                "rewards": rewards,
                "next": nxt,
            }
            heapq.heappush(pending, (ready, seq, item))
            seq += 1
        if on_decision is not None:
            on_decision(j)
    if learn and learner is not None:
        # a finite end clock: case ages (a Q feature) of s' candidates must stay finite
        end = float(world.ts.max()) + cfg.window_hours * 3600.0 + 1.0 if world.n else 0.0
        bank.advance(end)
        flush(end)
    out.n_cases = len(bank.bank)
    agent.last_bank = bank
    return out

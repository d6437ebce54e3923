"""`Recommender`: THE recommend pipeline. Offline replay, evaluation and serving all call it.

    events -> StateEncoder -> UserState (zero vector: a cold user -> popularity list)
      -> the scorer (`RecommendConfig.scorer`, `recsys.rec.scorers`): its pool (the cases
         retrieved from the CaseBank as of `now`, Q view of the keys; or candidate items with
         their evidence) -> MemoryLoop.decide: softmax(Q / alpha) (greedy in evaluation and
         serving) -> the list (`blend`: the chosen cases' items blended with neighbours,
         popularity and item-kNN; `items`: the policy's order) -> optional frozen-LLM re-score
         of the head (never the ground truth: every source is the past or the catalogue)
      -> `RecResult`: items (rows of the `ItemTable`), scores, the chosen cases behind each item.

`learn(decision, outcome)` is the one learning step of a decision: the scorer builds the
transition, s' and its snapshot come from the outcome, `MemoryLoop.learn` observes it.

Everything that decides the list comes from the model bundle (`recsys.bundle.ModelBundle`):
item table and vectors, popularity log, co-occurrence counts, case bank, learner, config. The
request brings only the user's events, the time and what to exclude.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from recsys.config import CreditConfig, RecommendConfig, StateConfig
from recsys.llm.prompts import CaseExample, HistoryItem, PromptBuilder, PromptConfig
from recsys.llm.protocol import FrozenLLM
from recsys.loop import Decided, LearnStep, MemoryLoop
from recsys.memory.case_bank import CaseBank
from recsys.memory.case_encoder import case_summary
from recsys.ranking import top_n_stable
from recsys.rec.cooccurrence import Cooccurrence
from recsys.rec.drift import RewardDrift
from recsys.rec.item_attrs import ItemAttributes
from recsys.rec.item_crosses import ItemCrosses, crosses_for
from recsys.rec.item_lane import ItemLane
from recsys.rec.items import ItemTable
from recsys.rec.popularity import Popularity
from recsys.rec.request import RecRequest, RecResult, case_item_ids
from recsys.rec.scorers import LoggedDecision, Outcome, Scorer, WarmRequest, get_scorer
from recsys.rec.seq.policy import SeqPolicy
from recsys.rec.state_encoder import StateEncoder
from recsys.records import Candidates, Interaction, UserState
from recsys.rl.slotted import ExploreWindow

__all__ = ["Recommender"]

log = logging.getLogger(__name__)


class Recommender:
    """The pipeline over one model's parts (module docstring). Thread-safe: `lock` guards the
    bank (callers that write cases take it too)."""

    def __init__(
        self,
        cfg: RecommendConfig,
        state_cfg: StateConfig,
        items: ItemTable,
        bank: CaseBank,
        popularity: Popularity,
        loop: MemoryLoop | None,
        cooc: Cooccurrence | None = None,
        llm: FrozenLLM | None = None,
        credit: CreditConfig | None = None,
        seq: SeqPolicy | None = None,
        crosses: ItemCrosses | None = None,
    ) -> None:
        get_scorer(cfg.scorer)  # an unknown scorer fails here, naming the known ones
        self.cfg = cfg
        self.credit = CreditConfig() if credit is None else credit
        """Credit rule across chosen cases (`CoreConfig.credit`), used by `learn`."""
        self.items = items
        self.bank = bank
        self.popularity = popularity
        self.loop = loop
        self.cooc = cooc
        self.seq = seq
        """The learned sequence policy (the `seq` scorer's model; None for the others)."""
        self.lock = threading.RLock()
        self.explore = np.random.default_rng(0)
        """Draws of the item pool's exploration items (`RecommendConfig.n_explore`)."""
        self.crosses = crosses if crosses is not None else crosses_for(cfg)
        """The items scorer's cross model (`RecommendConfig.item_crosses_lr`): the bundle's
        (`ModelBundle.crosses`, it travels in the learner part), else a new one."""
        self.drift = RewardDrift(cfg.drift_drop) if cfg.drift_drop > 0 else None
        """The reward-drop alarm (`RecommendConfig.drift_drop`; None: off)."""
        self.drift_at = -math.inf
        """Time of the last drift alarm (-inf: none)."""
        scope = cfg.item_lane_scope == "user"
        self.lane = ItemLane(cfg.item_lane, scope) if cfg.item_lane > 0 else None
        """Per item, its latest cases (`RecommendConfig.item_lane`; None: off)."""
        self._attrs: ItemAttributes | None = None
        self.state_encoder = StateEncoder(state_cfg, items.vectors, items.titles_of, items.dim)
        self.set_llm(llm)

    def set_llm(self, llm: FrozenLLM | None) -> None:
        """Use (or, with None, stop using) a frozen LLM for the head re-score."""
        self.llm = llm
        lang = self.items.lang if self.cfg.prompt_lang == "auto" else self.cfg.prompt_lang
        counter = getattr(llm, "count_tokens", None)
        self.prompts = PromptBuilder(PromptConfig(lang=lang, max_prompt_tokens=320), counter)

    # -- state ------------------------------------------------------------------------------
    def encode_state(
        self,
        user_id: str,
        events: Sequence[Interaction],
        now: float,
        profile: np.ndarray | None = None,
    ) -> UserState:
        """The user's state from their catalogue events before `now` (+ profile)."""
        known = [e for e in events if e.item_id in self.items]
        if profile is not None and profile.shape != (self.items.dim,):
            profile = None
        return self.state_encoder.encode(user_id, known, now, profile)

    # -- drift ----------------------------------------------------------------------------
    def note_reward(self, reward: float, at: float) -> bool:
        """One shown item's closed outcome at time `at` into the reward-drop alarm
        (`recsys.rec.drift`); on an alarm the cross model's AdaGrad steps restart at full size and
        the pool widens for a while (`RecommendConfig.drift_drop`). The cross model's rate is
        then the window's (`RecommendConfig.drift_crosses_lr`) or its own, for the steps that
        follow. True on an alarm."""
        alarm = self.drift is not None and self.drift.observe(reward)
        if alarm:
            assert self.drift is not None
            log.warning(
                "reward drift: the reward per shown item fell to %.4f against %.4f before; "
                "relearning (alarm %d)",
                self.drift.fast,
                self.drift.before,
                self.drift.alarms,
            )
            self.drift_at = at
            if self.crosses is not None:
                self.crosses.restart()
            if self.cfg.drift_forget in ("replay", "all") and self.loop is not None:
                self.loop.learner.replay.clear()
        c = self.cfg
        if self.crosses is not None and c.drift_crosses_lr > 0:
            self.crosses.lr = c.drift_crosses_lr if self.drift_window(at) else c.item_crosses_lr
        return alarm

    def drift_explore(self, now: float) -> int:
        """Random catalogue items a pool at `now` takes after a drift alarm
        (`RecommendConfig.drift_explore`, for `drift_explore_hours`)."""
        if self.drift_window(now):
            return self.cfg.drift_explore
        return 0

    def drift_window(self, now: float) -> bool:
        """`now` is within `drift_explore_hours` of the last drift alarm."""
        return now - self.drift_at < self.cfg.drift_explore_hours * 3600.0

    def explore_window(self, now: float) -> ExploreWindow | None:
        """The slotted explorer's settings at `now` while a drift alarm's window lasts
        (`RecommendConfig.drift_explore_slots`, `drift_q_weight`, `drift_gamma_scale`); None:
        the policy's own (also when every knob keeps its default)."""
        c = self.cfg
        w = ExploreWindow(c.drift_explore_slots, c.drift_q_weight, c.drift_gamma_scale)
        return w if w != ExploreWindow(0) and self.drift_window(now) else None

    # -- retrieval --------------------------------------------------------------------------
    def retrieve(self, state: np.ndarray, now: float) -> tuple[Candidates, list[dict[str, Any]]]:
        """The K cases known before `now` nearest to the state, as Q sees them, + payloads."""
        with self.lock:
            if len(self.bank) == 0 or not np.any(state):
                return Candidates.empty(self.items.dim), []
            forget = self.cfg.drift_forget in ("cases", "all") and self.drift_at > -math.inf
            since = self.drift_at if forget else None  # cases before the alarm are forgotten
            c = self.bank.search(state, self.cfg.top_k, now, before=now, since=since)
            payloads = [self.bank.get(int(i)).payload for i in c.case_ids]
        return self.q_view(c, payloads), payloads

    def attributes(self) -> ItemAttributes:
        """The catalogue's attribute words (`recsys.rec.item_attrs`), rebuilt when the
        catalogue grew."""
        with self.lock:
            if self._attrs is None or len(self._attrs) != len(self.items):
                self._attrs = ItemAttributes(self.items.titles)
            return self._attrs

    def lane_cases(
        self, rows: Sequence[int], state: np.ndarray, now: float, skip: set[int], user: str
    ) -> tuple[Candidates, list[dict[str, Any]]]:
        """The item lane's cases about `rows` known before `now` (`recsys.rec.item_lane`),
        leaving out `skip`, with their similarity to the state, as Q sees them, + payloads."""
        with self.lock:
            if self.lane is None or len(self.bank) == 0 or not np.any(state):
                return Candidates.empty(self.items.dim), []
            self.lane.sync(self.bank, lambda p: self.items.rows(case_item_ids(p)))
            ids = self.lane.cases(self.bank, rows, now, skip, user)
            c = self.bank.candidates_of(state, ids, now)
            payloads = [self.bank.get(i).payload for i in ids]
        return self.q_view(c, payloads), payloads

    def q_view(self, cands: Candidates, payloads: Sequence[dict[str, Any]]) -> Candidates:
        """Retrieved cases as the Q network sees them: with a bank keyed for content
        (`CaseBankConfig.q_input == "content"`) each valid case shows the normalised mean vector
        of its catalogue items instead of its retrieval key."""
        if self.bank.cfg.q_input != "content" or len(cands) == 0:
            return cands
        keys = cands.keys.copy()
        for r in np.flatnonzero(cands.mask).tolist():
            rows = self.items.rows(case_item_ids(payloads[r]))
            if rows:
                v = self.items.vecs[rows].mean(axis=0)
                keys[r] = v / max(float(np.linalg.norm(v)), 1e-12)
        return replace(cands, keys=keys.astype(np.float32))

    # -- the pipeline -----------------------------------------------------------------------
    @property
    def scorer(self) -> Scorer:
        """What the policy decides (`RecommendConfig.scorer`, `recsys.rec.scorers`)."""
        return get_scorer(self.cfg.scorer)

    def exclusions(self, req: RecRequest, seen: bool) -> set[int]:
        """Item rows never to show: the request's exclusions, + the user's past items when
        `seen` and `RecommendConfig.exclude_seen`."""
        exclude = set(self.items.rows(sorted(req.exclude)))
        if seen and self.cfg.exclude_seen:
            exclude |= set(self.items.rows([e.item_id for e in req.events if e.ts <= req.now]))
        return exclude

    def recommend(
        self,
        req: RecRequest,
        greedy: bool = True,
        use_llm: bool = False,
        propensities: bool = False,
    ) -> RecResult:
        """One list for one request (module docstring), + `RecResult.propensities` if asked."""
        n = self.cfg.top_n if req.n is None else req.n
        state = self.encode_state(req.user_id, req.events, req.now, req.profile)
        if not np.any(state.vec):
            return self._cold(state, n, req.now, self.exclusions(req, seen=False))
        exclude = self.exclusions(req, seen=True)
        warm = WarmRequest(req, state, exclude, n, greedy, use_llm, propensities)
        return self.scorer.rank(self, warm)

    def candidates_for(self, req: RecRequest) -> Candidates:
        """What the policy chooses from for a request (the scorer's pool; empty for a cold
        user): the s' snapshot of a transition."""
        return self.scorer.snapshot(self, req)

    # -- learning ---------------------------------------------------------------------------
    def learn(self, decision: LoggedDecision, outcome: Outcome) -> LearnStep | None:
        """THE learning step of a decision (replay, serving, the distributed learner):
        `transition`, then `observe` with s' from `outcome.next_request`. None when no chosen
        candidate is still live."""
        built = self.transition(decision, outcome)
        if built is None:
            return None
        return self.observe(*built, outcome.next_request, outcome.next_state)

    def transition(
        self, decision: LoggedDecision, outcome: Outcome
    ) -> tuple[Decided, np.ndarray] | None:
        """The scorer's half of a transition: the learned rows of the decision's snapshot and
        (m,) float32 rewards. The replay builds it at decision time and `observe`s it once
        the reward window has closed (s' is known only then)."""
        return self.scorer.transition(self, decision, outcome)

    def observe(
        self,
        decided: Decided,
        rewards: np.ndarray,
        next_request: RecRequest | None,
        next_state: np.ndarray | None = None,
    ) -> LearnStep:
        """s' (`next_state`, else encoded from `next_request`) and its own candidate snapshot
        (`candidates_for(next_request)`) -> `MemoryLoop.learn`; terminal without a request, and
        with gamma 0 (y = r: neither s' nor its snapshot is read, so neither is built)."""
        assert self.loop is not None, "learning needs a learner"
        s2 = c2 = None
        if next_request is not None and self.loop.learner.cfg.gamma == 0:
            next_request = None  # gamma 0: y = r, s' and its candidates are never read
        if next_request is not None:
            s2 = next_state
            if s2 is None:
                r = next_request
                s2 = self.encode_state(r.user_id, r.events, r.now, r.profile).vec
            c2 = self.candidates_for(next_request)
        return self.loop.learn(decided, rewards, s2, c2)

    def _cold(self, state: UserState, n: int, now: float, exclude: set[int]) -> RecResult:
        """A user with no usable history: the popularity list as of `now`."""
        rows = self.popularity.top(n, now, exclude)
        pop = self.popularity.scores(now)
        top = float(pop[rows[0]]) if rows and pop[rows[0]] > 0 else 1.0
        return RecResult(rows, [float(pop[r]) / top for r in rows], state)

    def llm_rescore(
        self, req: RecRequest, res: RecResult, items: list[int], score: np.ndarray
    ) -> tuple[list[int], np.ndarray]:
        """Add w_llm x the z-scored LLM log-likelihood to the top `llm_depth` items."""
        assert self.llm is not None, "no LLM"
        b = self.cfg.blend
        depth = min(b.llm_depth, len(items))
        head = items[:depth]
        res.prompt = self.prompt(req, res, head)
        titles = [self.items.titles[i] or "?" for i in head]
        ll = np.asarray(self.llm.rank(res.prompt, titles), np.float64)
        z = (ll - ll.mean()) / (ll.std() + 1e-6) if depth > 1 else np.zeros(depth)
        head_score = score[:depth] + b.w_llm * z
        sub = top_n_stable(head_score, depth, np.asarray(head, np.int64))
        res.used_llm = True
        new_items = [head[k] for k in sub] + items[depth:]
        new_score = np.concatenate([head_score[sub], score[depth:]])
        return new_items, new_score

    def prompt(self, req: RecRequest, res: RecResult, head: Sequence[int]) -> str:
        """The LLM prompt: the user's latest 6 events, up to 3 chosen cases, the candidates."""
        known = [e for e in req.events if e.item_id in self.items and e.ts <= req.now][-6:]
        titles = self.items.titles_of([e.item_id for e in known])
        hist = [HistoryItem(t, e.action.value) for t, e in zip(titles, known, strict=True)]
        cases = []
        for c in res.chosen[:3]:
            title = " ".join(self.items.titles[r] for r in c.items) or "-"
            context = str(c.payload.get("context") or c.payload.get("user_summary") or "-")
            reward = c.payload.get("reward", 1.0)
            positive = float(reward) > 0 if isinstance(reward, int | float) else True
            cases.append(CaseExample(case_summary(context), title, positive))
        return self.prompts.build(hist, cases, [self.items.titles[i] for i in head]).text

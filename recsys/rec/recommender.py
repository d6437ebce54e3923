"""`Recommender`: THE recommend pipeline. Offline replay, evaluation and serving all call it.

    events -> StateEncoder -> UserState (zero vector: a cold user -> popularity list)
      -> CaseBank.search(state, K, as of `now`) -> Candidates (Q view of the keys)
      -> MemoryLoop.decide: softmax(Q / alpha) -> m chosen cases (greedy in evaluation/serving)
      -> candidate items: chosen cases' items, the state's catalogue neighbours, popular items,
         item-kNN items (never the ground truth: every source is the past or the catalogue)
      -> blend score (`recsys.config.BlendConfig`) -> optional frozen-LLM re-score of the head
      -> `RecResult`: items (rows of the `ItemTable`), scores, the chosen cases behind each item.

Everything that decides the list comes from the model bundle (`recsys.bundle.ModelBundle`):
item table and vectors, popularity log, co-occurrence counts, case bank, learner, config. The
request brings only the user's events, the time and what to exclude.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from recsys.config import RecommendConfig, StateConfig
from recsys.llm.prompts import CaseExample, HistoryItem, PromptBuilder, PromptConfig
from recsys.llm.protocol import FrozenLLM
from recsys.loop import MemoryLoop
from recsys.memory.case_bank import CaseBank
from recsys.rec.candidates import candidate_items, nearest_items, top_n_stable
from recsys.rec.cooccurrence import Cooccurrence
from recsys.rec.item_features import ITEM_FEATURES, ItemEvidence, item_feature_matrix
from recsys.rec.items import ItemTable
from recsys.rec.popularity import Popularity
from recsys.rec.request import ChosenCase, RecRequest, RecResult, case_item_ids
from recsys.rec.state_encoder import StateEncoder
from recsys.records import CASE_FEATURES, Candidates, Interaction, UserState
from recsys.rl.policy import logged_propensities

__all__ = ["Recommender"]


@functools.lru_cache(maxsize=8)
def _rank_score(n: int) -> np.ndarray:
    """(n,) 1 / log2(2 + rank), cached: the catalogue-length array is read on every request."""
    out = 1.0 / np.log2(2.0 + np.arange(n))
    out.flags.writeable = False
    return out


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
    ) -> None:
        self.cfg = cfg
        self.items = items
        self.bank = bank
        self.popularity = popularity
        self.loop = loop
        self.cooc = cooc
        self.lock = threading.RLock()
        self._explore = np.random.default_rng(0)
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

    # -- retrieval --------------------------------------------------------------------------
    def retrieve(self, state: np.ndarray, now: float) -> tuple[Candidates, list[dict[str, Any]]]:
        """The K cases known before `now` nearest to the state, as Q sees them, + payloads."""
        with self.lock:
            if len(self.bank) == 0 or not np.any(state):
                return Candidates.empty(self.items.dim), []
            c = self.bank.search(state, self.cfg.top_k, now, before=now)
            payloads = [self.bank.get(int(i)).payload for i in c.case_ids]
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
    def recommend(
        self,
        req: RecRequest,
        greedy: bool = True,
        use_llm: bool = False,
        propensities: bool = False,
    ) -> RecResult:
        """One list for one request (module docstring), + `RecResult.propensities` if asked."""
        cfg, b = self.cfg, self.cfg.blend
        n = cfg.top_n if req.n is None else req.n
        state = self.encode_state(req.user_id, req.events, req.now, req.profile)
        exclude = set(self.items.rows(sorted(req.exclude)))
        if not np.any(state.vec):
            return self._cold(state, n, req.now, exclude)
        seen = {r for r in self.items.rows([e.item_id for e in req.events if e.ts < req.now])}
        if cfg.exclude_seen:
            exclude |= seen
        if cfg.scorer == "items" and self.loop is not None:
            return self._recommend_items(req, state, exclude, n, greedy, use_llm, propensities)
        res = RecResult([], [], state)
        case_score: dict[int, float] = {}
        case_rows: list[int] = []
        if self.loop is not None:
            cands, payloads = self.retrieve(state.vec, req.now)
            if cands.num_valid > 0:
                choice = self.loop.decide(state.vec, cands, cfg.num_chosen, greedy=greedy)
                res.cands, res.choice = cands, choice
                weights = _rank_score(len(choice.indices))
                for k, (idx, w) in enumerate(zip(choice.indices.tolist(), weights, strict=True)):
                    rows = tuple(self.items.rows(case_item_ids(payloads[int(idx)])))
                    res.chosen.append(
                        ChosenCase(
                            int(cands.case_ids[idx]),
                            int(idx),
                            float(choice.probs[idx]),
                            float(choice.logp[k]),
                            rows,
                            payloads[int(idx)],
                        )
                    )
                    for r in rows:
                        case_score[r] = case_score.get(r, 0.0) + float(w)
                        case_rows.append(r)
        all_rows = np.arange(len(self.items), dtype=np.int64)
        vecs = self.items.vecs
        items = candidate_items(case_rows, state.vec, all_rows, vecs, cfg.n_neighbours, exclude)
        nb = nearest_items(state.vec, all_rows, vecs, cfg.n_neighbours + len(exclude))
        nb_rank = {it: r for r, it in enumerate(i for i in nb if i not in exclude)}
        pop_order = self.popularity.top(max(n, 200), req.now, exclude)
        pop_rank = {it: r for r, it in enumerate(pop_order)}
        if b.w_pop > 0:
            have = set(items)
            items += [i for i in pop_order[: cfg.n_popular] if i not in have]
        knn_rank = self._knn_rank(req, exclude)
        if knn_rank:
            have = set(items)
            items += [i for i in knn_rank if knn_rank[i] < b.n_knn and i not in have]
        rs = _rank_score(len(self.items) + 1)
        score = np.array(
            [
                b.w_case * min(case_score.get(i, 0.0), 1.5)
                + b.w_nb * (rs[nb_rank[i]] if i in nb_rank else 0.0)
                + b.w_pop * (rs[pop_rank[i]] if i in pop_rank else 0.0)
                + b.w_knn * (rs[knn_rank[i]] if i in knn_rank else 0.0)
                for i in items
            ],
            np.float64,
        )
        order = top_n_stable(score, len(score), np.asarray(items, np.int64))  # ties: item row
        items = [items[k] for k in order]
        score = score[order]
        if use_llm and self.llm is not None and items:
            items, score = self._llm_rescore(req, res, items, score)
        if len(items) < n:  # a short candidate list is filled in popularity order
            have = set(items)
            fill = [i for i in pop_order if i not in have][: n - len(items)]
            items = items + fill
            score = np.concatenate([score, [b.w_pop * rs[pop_rank[i]] for i in fill]])
        res.items = items[:n]
        res.scores = [float(s) for s in score[:n]]
        return res

    def candidates_for(self, req: RecRequest) -> Candidates:
        """What the policy chooses from for a request: the retrieved cases (blend scorer) or
        the item pool (items scorer); empty for a cold user. The s' snapshot of a transition."""
        state = self.encode_state(req.user_id, req.events, req.now, req.profile)
        width = len(ITEM_FEATURES) if self.cfg.scorer == "items" else len(CASE_FEATURES)
        if not np.any(state.vec):
            return Candidates.empty(self.items.dim, width)
        if self.cfg.scorer != "items":
            return self.retrieve(state.vec, req.now)[0]
        exclude = set(self.items.rows(sorted(req.exclude)))
        if self.cfg.exclude_seen:
            exclude |= set(self.items.rows([e.item_id for e in req.events if e.ts < req.now]))
        return self.item_candidates(req, state, exclude)[0]

    # -- the items scorer -------------------------------------------------------------------
    def item_candidates(
        self, req: RecRequest, state: UserState, exclude: set[int]
    ) -> tuple[Candidates, dict[int, list[int]]]:
        """The item pool of a request with its evidence features (`recsys.rec.item_features`)
        and, per item row, the retrieved cases proposing it."""
        cfg, b = self.cfg, self.cfg.blend
        cands, payloads = (
            self.retrieve(state.vec, req.now)
            if self.loop is not None
            else (Candidates.empty(self.items.dim), [])
        )
        valid = np.flatnonzero(cands.mask).tolist()
        case_rows = [
            tuple(r for r in self.items.rows(case_item_ids(payloads[c])) if r not in exclude)
            for c in valid
        ]
        hist = [
            (r, e.ts) for e in req.events if e.ts < req.now for r in self.items.rows([e.item_id])
        ]
        seen_count: dict[int, int] = {}
        seen_last: dict[int, float] = {}
        for r, ts in hist:
            seen_count[r] = seen_count.get(r, 0) + 1
            seen_last[r] = max(seen_last.get(r, -np.inf), ts)
        n_items = len(self.items)
        knn = knn_last = nxt = np.zeros(n_items)
        if self.cooc is not None and hist:
            recent = [r for r, _ in hist][-b.knn_recent :][::-1]
            who = req.user_id if req.knn_without_user else None
            knn = self.cooc.scores_without(who, recent, decay=0.9)
            knn_last = self.cooc.scores_without(who, recent[:1], decay=1.0)
            nxt = self.cooc.next_scores_without(who, recent[:3], decay=0.5)
        nb_sim = self.items.vecs @ state.vec
        pop = self.popularity.scores(req.now)
        pool: dict[int, None] = {}

        def add(rows: Sequence[int], limit: int, scores: np.ndarray | None = None) -> None:
            taken = 0
            for r in rows:
                if taken >= limit:
                    break
                if r in exclude or (scores is not None and scores[r] <= 0):
                    continue
                pool.setdefault(int(r), None)
                taken += 1

        for rows in case_rows:
            add(rows, len(rows))
        add(top_n_stable(nb_sim, cfg.n_neighbours + len(exclude)).tolist(), cfg.n_neighbours)
        add(top_n_stable(pop, cfg.n_popular + len(exclude)).tolist(), cfg.n_popular, pop)
        if self.cooc is not None and hist:
            add(top_n_stable(knn, b.n_knn + len(exclude)).tolist(), b.n_knn, knn)
            half = b.n_knn // 2
            add(top_n_stable(knn_last, half + len(exclude)).tolist(), half, knn_last)
            add(top_n_stable(nxt, half + len(exclude)).tolist(), half, nxt)
        if cfg.n_explore > 0 and n_items > 0:
            draw = self._explore.choice(n_items, size=min(n_items, cfg.n_explore + len(exclude)))
            add(draw.tolist(), cfg.n_explore)
        latest = list(dict.fromkeys(r for r, _ in reversed(hist)))
        add(latest, cfg.n_seen)
        ev = ItemEvidence(
            nb_sim=nb_sim,
            pop=pop,
            knn=knn,
            knn_last=knn_last,
            nxt=nxt,
            seen_count=seen_count,
            seen_last_ts=seen_last,
            last_vec=self.items.vecs[hist[-1][0]] if hist else None,
            case_rows=case_rows,
            case_sims=cands.sims[valid],
            case_rewards=cands.features[valid, 1] if valid else np.zeros(0),
            case_ids=cands.case_ids[valid],
        )
        return item_feature_matrix(list(pool), ev, self.items.vecs, req.now)

    def _recommend_items(
        self,
        req: RecRequest,
        state: UserState,
        exclude: set[int],
        n: int,
        greedy: bool,
        use_llm: bool,
        propensities: bool = False,
    ) -> RecResult:
        """The items scorer: softmax(Q(s, item) / alpha) over the item pool is the list."""
        assert self.loop is not None, "the items scorer needs a learner"
        icands, support = self.item_candidates(req, state, exclude)
        res = RecResult([], [], state, support=support)
        items: list[int] = []
        score = drawn = np.zeros(0)
        if icands.num_valid > 0:
            choice = self.loop.decide(state.vec, icands, min(n, icands.num_valid), greedy)
            res.cands, res.choice = icands, choice
            for k, idx in enumerate(choice.indices.tolist()):
                row = int(icands.case_ids[idx])
                sup = support.get(row, [])
                res.chosen.append(
                    ChosenCase(
                        sup[0] if sup else -1,
                        int(idx),
                        float(choice.probs[idx]),
                        float(choice.logp[k]),
                        (row,),
                        {"item_id": self.items.ids[row], "support": list(sup)},
                    )
                )
                items.append(row)
            # alpha * log softmax(Q / alpha) = Q(s, i) - V(s): Q's order without a second pass
            probs = np.maximum(choice.probs[choice.indices].astype(np.float64), 1e-30)
            score = self.loop.learner.alpha * np.log(probs)
            if propensities:  # seeded by the request: the same request logs the same pscores
                lr, key = self.loop.learner, f"{req.user_id}|{req.now!r}"
                drawn = logged_propensities(lr, state.vec, icands, choice, greedy, key)
        if use_llm and self.llm is not None and items:
            items, score = self._llm_rescore(req, res, items, score)
        if len(items) < n:  # a short pool is filled in popularity order
            have = set(items) | exclude
            fill = [r for r in self.popularity.top(n + len(have), req.now, have)][: n - len(items)]
            low = float(score.min()) if len(score) else 0.0
            items = items + fill
            score = np.concatenate([score, np.full(len(fill), low - 1.0)])
        res.items = items[:n]
        res.scores = [float(s) for s in score[:n]]
        if propensities:
            res.set_propensities(drawn.tolist(), self.cfg.blend.llm_depth)
        return res

    def _cold(self, state: UserState, n: int, now: float, exclude: set[int]) -> RecResult:
        """A user with no usable history: the popularity list as of `now`."""
        rows = self.popularity.top(n, now, exclude)
        pop = self.popularity.scores(now)
        top = float(pop[rows[0]]) if rows and pop[rows[0]] > 0 else 1.0
        return RecResult(rows, [float(pop[r]) / top for r in rows], state)

    def _knn_rank(self, req: RecRequest, exclude: set[int]) -> dict[int, int]:
        """item row -> rank by co-occurrence with the user's recent items; empty when off."""
        b = self.cfg.blend
        if b.w_knn <= 0 or self.cooc is None:
            return {}
        hist = self.items.rows([e.item_id for e in req.events if e.ts < req.now])
        if not hist:
            return {}
        recent = list(reversed(hist[-b.knn_recent :]))
        who = req.user_id if req.knn_without_user else None
        s = self.cooc.scores_without(who, recent, decay=0.9)
        top = top_n_stable(s, b.n_knn + len(exclude))  # position = item row
        ranked = [int(k) for k in top if s[k] > 0]
        return {it: r for r, it in enumerate(i for i in ranked if i not in exclude)}

    def _llm_rescore(
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
        known = [e for e in req.events if e.item_id in self.items and e.ts < req.now][-6:]
        titles = self.items.titles_of([e.item_id for e in known])
        hist = [HistoryItem(t, e.action.value) for t, e in zip(titles, known, strict=True)]
        cases = []
        for c in res.chosen[:3]:
            title = " ".join(self.items.titles[r] for r in c.items) or "-"
            context = str(c.payload.get("context") or c.payload.get("user_summary") or "-")
            reward = c.payload.get("reward", 1.0)
            positive = float(reward) > 0 if isinstance(reward, int | float) else True
            cases.append(CaseExample(context[:200], title, positive))
        return self.prompts.build(hist, cases, [self.items.titles[i] for i in head]).text

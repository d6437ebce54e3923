"""The `blend` scorer: the policy chooses m retrieved cases, whose items join the state's
catalogue neighbours, popular items and item-kNN items in a hand-weighted blend
(`recsys.config.BlendConfig`; every term but the case term a rank score 1 / log2(2 + rank)).

Learning: each chosen case gets its credited share of the list's reward
(`recsys.rl.credit.assign_credit`: attributed cases the reward, the others beta times it).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from recsys.config import BlendConfig
from recsys.loop import Decided
from recsys.ranking import top_n_stable
from recsys.rec.candidates import candidate_items, nearest_items
from recsys.rec.request import ChosenCase, RecRequest, RecResult, case_item_ids
from recsys.rec.scorers.base import LoggedDecision, Outcome, Pool, Scorer, WarmRequest
from recsys.records import CASE_FEATURES, Candidates, UserState
from recsys.rl.credit import assign_credit

if TYPE_CHECKING:
    from recsys.rec.recommender import Recommender

__all__ = ["BlendScorer", "rank_score"]


@functools.lru_cache(maxsize=8)
def rank_score(n: int) -> np.ndarray:
    """(n,) 1 / log2(2 + rank), cached: the catalogue-length array is read on every request."""
    out = 1.0 / np.log2(2.0 + np.arange(n))
    out.flags.writeable = False
    return out


class BlendScorer(Scorer):
    """m chosen cases feed a hand-weighted blend (module docstring)."""

    name = "blend"
    log_kind = "cases"
    features = CASE_FEATURES
    chooses_items = False

    def listwise_weight(self, configured: float) -> float:
        """0: the policy chooses cases for a blend, not the list's order."""
        return 0.0

    def use_vectors(self, configured: bool) -> bool:
        """Always: Q tells cases apart by their (content) keys."""
        return True

    def needs_cooccurrence(self, blend: BlendConfig) -> bool:
        """Only for an item-kNN term."""
        return blend.w_knn > 0

    def pool(self, rec: Recommender, req: RecRequest, state: UserState, exclude: set[int]) -> Pool:
        """The K cases retrieved as of the request's time."""
        cands, payloads = rec.retrieve(state.vec, req.now)
        return Pool(cands, payloads)

    def rank(self, rec: Recommender, warm: WarmRequest) -> RecResult:
        """Choose m cases, blend their items with the other sources, LLM on the head, fill."""
        req, state, exclude, n = warm.req, warm.state, warm.exclude, warm.n
        cfg, b = rec.cfg, rec.cfg.blend
        res = RecResult([], [], state)
        case_score: dict[int, float] = {}
        case_rows: list[int] = []
        if rec.loop is not None:
            pool = self.pool(rec, req, state, exclude)
            cands, payloads = pool.cands, pool.payloads
            if cands.num_valid > 0:
                choice = rec.loop.decide(state.vec, cands, cfg.num_chosen, greedy=warm.greedy)
                res.cands, res.choice = cands, choice
                weights = rank_score(len(choice.indices))
                for k, (idx, w) in enumerate(zip(choice.indices.tolist(), weights, strict=True)):
                    rows = tuple(rec.items.rows(case_item_ids(payloads[int(idx)])))
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
        all_rows = np.arange(len(rec.items), dtype=np.int64)
        vecs = rec.items.vecs
        items = candidate_items(case_rows, state.vec, all_rows, vecs, cfg.n_neighbours, exclude)
        nb = nearest_items(state.vec, all_rows, vecs, cfg.n_neighbours + len(exclude))
        nb_rank = {it: r for r, it in enumerate(i for i in nb if i not in exclude)}
        pop_order = rec.popularity.top(max(n, 200), req.now, exclude)
        pop_rank = {it: r for r, it in enumerate(pop_order)}
        if b.w_pop > 0:
            have = set(items)
            items += [i for i in pop_order[: cfg.n_popular] if i not in have]
        knn_rank = self._knn_rank(rec, req, exclude)
        if knn_rank:
            have = set(items)
            items += [i for i in knn_rank if knn_rank[i] < b.n_knn and i not in have]
        rs = rank_score(len(rec.items) + 1)
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
        if warm.use_llm and rec.llm is not None and items:
            items, score = rec.llm_rescore(req, res, items, score)
        if len(items) < n:  # a short candidate list is filled in popularity order
            have = set(items)
            fill = [i for i in pop_order if i not in have][: n - len(items)]
            items = items + fill
            score = np.concatenate([score, [b.w_pop * rs[pop_rank[i]] for i in fill]])
        res.items = items[:n]
        res.scores = [float(s) for s in score[:n]]
        return res

    @staticmethod
    def _knn_rank(rec: Recommender, req: RecRequest, exclude: set[int]) -> dict[int, int]:
        """item row -> rank by co-occurrence with the user's recent items; empty when off."""
        b = rec.cfg.blend
        if b.w_knn <= 0 or rec.cooc is None:
            return {}
        hist = rec.items.rows([e.item_id for e in req.events if e.ts <= req.now])
        if not hist:
            return {}
        recent = list(reversed(hist[-b.knn_recent :]))
        who = req.user_id if req.knn_without_user else None
        s = rec.cooc.scores_without(who, recent, decay=0.9)
        top = top_n_stable(s, b.n_knn + len(exclude))  # position = item row
        ranked = [int(k) for k in top if s[k] > 0]
        return {it: r for r, it in enumerate(i for i in ranked if i not in exclude)}

    def transition(
        self, rec: Recommender, decision: LoggedDecision, outcome: Outcome
    ) -> tuple[Decided, np.ndarray] | None:
        """The live chosen cases, each with its credited share of the list's reward. A
        parametric-ce learner's label is reward > 0, so only attributed cases count there."""
        keep = self.shown(decision)
        if not keep:
            return None
        assert rec.loop is not None, "learning needs a learner"
        credit = rec.credit
        if rec.loop.learner.mode == "parametric-ce":
            credit = dataclasses.replace(credit, beta=0.0)
        items = [decision.chosen_items[k] for k in keep]
        rewards = assign_credit(outcome.reward, items, outcome.acted, credit)
        chosen = decision.chosen[keep].astype(np.int64)
        decided = Decided(decision.state, decision.cands, chosen, decision.logp[keep])
        return decided, rewards

    def log_ids(
        self, rec: Recommender, cands: Candidates, sid_of: Callable[[int], str]
    ) -> list[str]:
        """The service's case ids."""
        return [sid_of(int(i)) for i in cands.case_ids]

    def restore(
        self,
        rec: Recommender,
        ids: Sequence[str],
        sims: Sequence[float],
        feats: Sequence[Sequence[float]],
        case_row: Callable[[str], int],
    ) -> Candidates:
        """The logged cases with their keys read from the bank now (deleted ones masked)."""
        keys = np.zeros((len(ids), rec.items.dim), np.float32)
        payloads: list[dict[str, Any]] = [{} for _ in ids]
        with rec.lock:
            rows = [case_row(s) for s in ids]
            for k, r in enumerate(rows):
                if r >= 0:
                    case = rec.bank.get(r)
                    keys[k], payloads[k] = case.key, case.payload
        cands = Candidates(
            case_ids=np.array(rows, np.int64),
            keys=keys,
            sims=np.array(sims, np.float32),
            features=np.array(feats, np.float32).reshape(len(rows), -1),
            mask=np.array([r >= 0 for r in rows], bool),
        )
        return rec.q_view(cands, payloads)

    def cases_behind(
        self, res: RecResult, ids: Sequence[str], support: Mapping[int, Sequence[str]]
    ) -> list[tuple[str, float]]:
        """Each chosen case with its probability under the policy."""
        return [(ids[c.row], c.prob) for c in res.chosen]

"""The `items` scorer: the policy scores candidate ITEMS and softmax(Q(s, item) / alpha) over
the item pool is the list. Each item is described by its vector and its evidence
(`recsys.rec.item_features`: the retrieved cases proposing it, neighbours, popularity,
item-kNN, the user's own history). Without a learner it falls back to the blend.

Learning: with full information (log replay labels every pooled item from the user's next
events) every pooled item is learned (every labelled one, a seeded sample of the others);
otherwise (serving) the shown items are the chosen actions, the acted item gets the reward
and the other shown items 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from recsys.config import BlendConfig
from recsys.loop import Decided
from recsys.ranking import top_positive
from recsys.rec.candidates import top_n_stable
from recsys.rec.item_features import (
    ITEM_FEATURES,
    ItemEvidence,
    case_sums,
    case_vote,
    item_feature_matrix,
)
from recsys.rec.request import ChosenCase, RecRequest, RecResult, case_item_ids
from recsys.rec.scorers.base import (
    LoggedDecision,
    Outcome,
    Pool,
    Scorer,
    WarmRequest,
    finish_list,
)
from recsys.rec.scorers.blend import BlendScorer
from recsys.records import Candidates, Interaction, UserState
from recsys.rl.policy import logged_propensities

if TYPE_CHECKING:
    from recsys.rec.item_crosses import ItemCrosses
    from recsys.rec.recommender import Recommender

__all__ = ["ItemsScorer", "history_ids"]


class ItemsScorer(Scorer):
    """The policy's softmax over the item pool is the list (module docstring)."""

    name = "items"
    log_kind = "items"
    features = ITEM_FEATURES
    chooses_items = True

    def listwise_weight(self, configured: float) -> float:
        """The configured weight: the policy's order is the list's."""
        return configured

    def use_vectors(self, configured: bool) -> bool:
        """As configured (off by default: Q memorised replayed items with them)."""
        return configured

    def needs_cooccurrence(self, blend: BlendConfig) -> bool:
        """Always: item-kNN and succession evidence are item features."""
        return True

    def pool(self, rec: Recommender, req: RecRequest, state: UserState, exclude: set[int]) -> Pool:
        """The item pool of a request with its evidence features (`recsys.rec.item_features`)
        and, per item row, the retrieved cases proposing it."""
        cfg, b = rec.cfg, rec.cfg.blend
        cands, payloads = (
            rec.retrieve(state.vec, req.now)
            if rec.loop is not None
            else (Candidates.empty(rec.items.dim), [])
        )
        valid = np.flatnonzero(cands.mask).tolist()
        case_rows = [
            tuple(r for r in rec.items.rows(case_item_ids(payloads[c])) if r not in exclude)
            for c in valid
        ]
        hist = [
            (r, e.ts) for e in req.events if e.ts <= req.now for r in rec.items.rows([e.item_id])
        ]
        seen_count: dict[int, int] = {}
        seen_last: dict[int, float] = {}
        for r, ts in hist:
            seen_count[r] = seen_count.get(r, 0) + 1
            seen_last[r] = max(seen_last.get(r, -np.inf), ts)
        n_items = len(rec.items)
        knn = knn_last = nxt = np.zeros(n_items)
        if rec.cooc is not None and hist:
            recent = [r for r, _ in hist][-b.knn_recent :][::-1]
            who = req.user_id if req.knn_without_user else None
            knn = rec.cooc.scores_without(who, recent, decay=0.9)
            knn_last = rec.cooc.scores_without(who, recent[:1], decay=1.0)
            nxt = rec.cooc.next_scores_without(who, recent[:3], decay=0.5)
        nb_sim = rec.items.vecs @ state.vec
        pop = rec.popularity.scores(req.now)
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
        add(rec.popularity.top_positive(pop, cfg.n_popular + len(exclude)), cfg.n_popular, pop)
        if rec.cooc is not None and hist:
            add(top_positive(knn, b.n_knn + len(exclude)), b.n_knn, knn)
            half = b.n_knn // 2
            add(top_positive(knn_last, half + len(exclude)), half, knn_last)
            add(top_positive(nxt, half + len(exclude)), half, nxt)
        n_explore = cfg.n_explore + rec.drift_explore(req.now)
        if n_explore > 0 and n_items > 0:
            draw = rec.explore.choice(n_items, size=min(n_items, n_explore + len(exclude)))
            add(draw.tolist(), n_explore)
        latest = list(dict.fromkeys(r for r, _ in reversed(hist)))
        add(latest, cfg.n_seen)
        if rec.lane is not None and rec.loop is not None:  # each pool item's own latest cases
            skip = set(cands.case_ids[valid].tolist())
            lane, lane_payloads = rec.lane_cases(list(pool), state.vec, req.now, skip, req.user_id)
            cands = _concat(_take(cands, np.asarray(valid, np.int64)), lane)
            payloads = [payloads[c] for c in valid] + lane_payloads
            case_rows += [
                tuple(r for r in rec.items.rows(case_item_ids(p)) if r not in exclude)
                for p in lane_payloads
            ]
            valid = list(range(len(cands)))
        attrs = rec.attributes()
        ev = ItemEvidence(
            nb_sim=nb_sim,
            pop=pop,
            knn=knn,
            knn_last=knn_last,
            nxt=nxt,
            seen_count=seen_count,
            seen_last_ts=seen_last,
            last_vec=rec.items.vecs[hist[-1][0]] if hist else None,
            case_rows=case_rows,
            case_sims=cands.sims[valid],
            case_rewards=cands.features[valid, 1] if valid else np.zeros(0),
            case_ids=cands.case_ids[valid],
            # CASE_FEATURES: log1p(age days) in column 2
            case_age_hours=np.expm1(cands.features[valid, 2].astype(np.float64)) * 24.0
            if valid
            else np.zeros(0),
            case_positions=np.array(
                [int(payloads[c].get("position", -1)) for c in valid], np.int64
            ),
            attributes=attrs,
            affinity=attrs.affinity([r for r, _ in reversed(hist)]),
            half_life_hours=cfg.evidence_half_life_hours,
        )
        sums = case_sums(list(pool), ev)
        icands, support = item_feature_matrix(list(pool), ev, rec.items.vecs, req.now, sums)
        vote = case_vote(sums) if cfg.case_vote_weight > 0 else None
        return Pool(icands, support=support, vote=vote)

    def rank(self, rec: Recommender, warm: WarmRequest) -> RecResult:
        """softmax(Q(s, item) / alpha) over the item pool is the list (the blend's without a
        learner); LLM on the head, a short pool filled in popularity order."""
        if rec.loop is None:
            return BlendScorer().rank(rec, warm)
        req, state, exclude, n = warm.req, warm.state, warm.exclude, warm.n
        pool = self.pool(rec, req, state, exclude)
        icands, support = pool.cands, dict(pool.support)
        res = RecResult([], [], state, support=support)
        items: list[int] = []
        score = drawn = np.zeros(0)
        if icands.num_valid > 0:
            bias = self.cross_bias(rec, req, icands)
            if pool.vote is not None and rec.loop.learner.mode != "tabular":
                vote = (rec.cfg.case_vote_weight * pool.vote).astype(np.float32)
                bias = vote if bias is None else bias + vote
            m = min(n, icands.num_valid)
            window = rec.explore_window(req.now)
            choice = rec.loop.decide(state.vec, icands, m, warm.greedy, bias=bias, window=window)
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
                        {"item_id": rec.items.ids[row], "support": list(sup)},
                    )
                )
                items.append(row)
            if choice.explored is not None:  # a slotted list: the scores it ranked by
                assert choice.scores is not None, "a slotted choice records its scores"
                score = choice.scores[choice.indices].astype(np.float64)
                res.explored = {items[k] for k in np.flatnonzero(choice.explored).tolist()}
            else:  # alpha * log softmax(Q / alpha) = Q(s, i) - V(s): Q's order, no second pass
                probs = np.maximum(choice.probs[choice.indices].astype(np.float64), 1e-30)
                score = rec.loop.learner.alpha * np.log(probs)
            if warm.propensities:  # seeded by the request: the same request logs the same pscores
                lr, key = rec.loop.learner, f"{req.user_id}|{req.now!r}"
                drawn = logged_propensities(lr, state.vec, icands, choice, warm.greedy, key)
        return finish_list(rec, warm, res, items, score, drawn.tolist())

    def cross_bias(self, rec: Recommender, req: RecRequest, cands: Candidates) -> np.ndarray | None:
        """(K,) the cross model's r(s, item) of each pool item given the request's
        history (`recsys.rec.item_crosses`), times `RecommendConfig.item_crosses_weight`; None
        without one (or with the tabular learner,
        whose logged propensities re-read its own scores)."""
        cx = _crosses(rec)
        if cx is None:
            return None
        hist = history_ids([e for e in req.events if e.ts <= req.now])
        r = cx.scores(_row_tokens(rec, cands.case_ids), _tokens(rec, hist))
        w = rec.cfg.item_crosses_weight
        return r if w == 1.0 else (w * r).astype(np.float32)

    def learn_crosses(
        self,
        rec: Recommender,
        cands: Candidates,
        history: Sequence[Interaction],
        shown: Sequence[tuple[int, int, float]],
    ) -> float | None:
        """One step of the cross model (`ItemCrosses.update`) for shown items of a logged
        decision: `shown` (pool row, position, reward) each, `history` the user's events before
        it. None without a cross model (or with the tabular learner, which never uses it)."""
        cx = _crosses(rec)
        if cx is None or not shown:
            return None
        ids = [rec.items.ids[int(cands.case_ids[r])] for r, _, _ in shown]
        return cx.update(
            _tokens(rec, ids),
            _tokens(rec, history_ids(history)),
            np.array([x for _, _, x in shown], np.float32),
            np.array([k for _, k, _ in shown], np.int64),
        )

    def transition(
        self, rec: Recommender, decision: LoggedDecision, outcome: Outcome
    ) -> tuple[Decided, np.ndarray] | None:
        """Full information (`outcome.labels` and the decision's probabilities known): every
        pooled item, labelled from the user's next events, behaviour log-probabilities = the
        policy's. Else (serving) the live shown items and only those: the acted one gets the
        reward, the others 0, and the candidates of the transition are the shown list (the
        pool items never shown carry no evidence, so they are no negatives of the listwise
        term; an update also costs the list's length instead of the pool's)."""
        cands = decision.cands
        if outcome.labels is None or decision.probs is None:
            keep = self.shown(decision)
            if not keep:
                return None
            rows = decision.chosen[keep].astype(np.int64)
            hit = [bool(outcome.acted & set(decision.chosen_items[k])) for k in keep]
            rewards = np.array([outcome.reward if h else 0.0 for h in hit], np.float32)
            chosen = np.arange(len(rows), dtype=np.int64)
            return Decided(decision.state, _take(cands, rows), chosen, decision.logp[keep]), rewards
        labels = outcome.labels
        rows = np.flatnonzero(cands.mask)
        rewards = np.array(
            [labels.get(rec.items.ids[int(r)], 0.0) for r in cands.case_ids[rows]], np.float32
        )
        if outcome.negatives and (rewards == 0).sum() > outcome.negatives:
            # every labelled item, a fixed-size sample of the others (the update's cost is
            # linear in the pool; the sample is seeded by the decision, so passes repeat it)
            neg = np.flatnonzero(rewards == 0)
            rng = np.random.default_rng([outcome.seed, 31])
            pick = rng.choice(neg, outcome.negatives, replace=False)
            keep_rows = np.sort(np.concatenate([np.flatnonzero(rewards > 0), pick]))
            rows, rewards = rows[keep_rows], rewards[keep_rows]
        logp = np.log(np.maximum(decision.probs[rows], 1e-12)).astype(np.float32)
        sub = _take(cands, rows)
        return Decided(decision.state, sub, np.arange(len(rows), dtype=np.int64), logp), rewards

    def log_ids(
        self, rec: Recommender, cands: Candidates, sid_of: Callable[[int], str]
    ) -> list[str]:
        """The items' catalogue ids (the candidates are item rows)."""
        return [rec.items.ids[int(i)] for i in cands.case_ids]

    def restore(
        self,
        rec: Recommender,
        ids: Sequence[str],
        sims: Sequence[float],
        feats: Sequence[Sequence[float]],
        case_row: Callable[[str], int],
    ) -> Candidates:
        """The logged items with their evidence at decision time (items gone masked)."""
        rows = [rec.items.row_of.get(s, -1) for s in ids]
        safe = np.array([max(r, 0) for r in rows], np.int64)
        return Candidates(
            case_ids=safe,
            keys=rec.items.vecs[safe].astype(np.float32),
            sims=np.array(sims, np.float32),
            features=np.array(feats, np.float32).reshape(len(rows), -1),
            mask=np.array([r >= 0 for r in rows], bool),
        )

    def cases_behind(
        self, res: RecResult, ids: Sequence[str], support: Mapping[int, Sequence[str]]
    ) -> list[tuple[str, float]]:
        """Each supporting case once, weighted by its best item's probability."""
        best: dict[str, float] = {}
        for c in res.chosen:
            for sid in support.get(c.items[0], []):
                best.setdefault(sid, c.prob)
        return list(best.items())


def _crosses(rec: Recommender) -> ItemCrosses | None:
    """The recommender's cross model, or None without one or with the tabular learner (which
    neither uses nor trains it: its logged propensities re-read its own scores)."""
    if rec.crosses is None or rec.loop is None or rec.loop.learner.mode == "tabular":
        return None
    return rec.crosses


def history_ids(events: Sequence[Interaction]) -> list[str]:
    """Distinct item ids of the events, most recent first."""
    ordered = sorted(events, key=lambda e: e.ts, reverse=True)
    return list(dict.fromkeys(e.item_id for e in ordered))


def _tokens(rec: Recommender, ids: Sequence[str]) -> list[np.ndarray]:
    """Each catalogue item's cross tokens (`ItemCrosses.tokens`); unknown ids are skipped."""
    cx = rec.crosses
    assert cx is not None, "no cross model"
    titles = rec.items.titles_of(list(ids))
    return [cx.tokens(i, t) for i, t in zip(ids, titles, strict=True) if i in rec.items.row_of]


def _row_tokens(rec: Recommender, rows: np.ndarray) -> list[np.ndarray]:
    """Each catalogue row's cross tokens (`_tokens` of its id, read by row)."""
    cx = rec.crosses
    assert cx is not None, "no cross model"
    ids, titles = rec.items.ids, rec.items.titles
    return [cx.tokens(ids[r], titles[r]) for r in rows.tolist()]


def _take(cands: Candidates, rows: np.ndarray) -> Candidates:
    """The valid candidates `rows` (in that order) as a candidate set of their own."""
    return Candidates(
        case_ids=cands.case_ids[rows],
        keys=cands.keys[rows],
        sims=cands.sims[rows],
        features=cands.features[rows],
        mask=np.ones(len(rows), bool),
    )


def _concat(a: Candidates, b: Candidates) -> Candidates:
    """Two candidate sets as one, `a`'s rows first."""
    return Candidates(
        case_ids=np.concatenate([a.case_ids, b.case_ids]),
        keys=np.concatenate([a.keys, b.keys.astype(a.keys.dtype)]),
        sims=np.concatenate([a.sims, b.sims]),
        features=np.concatenate([a.features, b.features]),
        mask=np.concatenate([a.mask, b.mask]),
    )

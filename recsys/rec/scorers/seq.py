"""The `seq` scorer: a learned sequence state, a soft-Q head and case memory in one policy
(`recsys.rec.seq.policy.SeqPolicy`, issue 26) ranks the whole catalogue.

The request's events (split order, at or before `now`, items of the catalogue the model knows)
are the history; the policy scores every item (policy logits + w x the case vote as of `now`),
the excluded items are dropped, and the greedy list is the top n (`top_n_stable`; ties by the
popularity order as of `now`, then item row). The model is a part of the `Recommender`
(`Recommender.seq`, from `ModelBundle.seq`); item row r of the `ItemTable` is the model's item
r + 1 (rows past the model's catalogue are never scored).

Learning: the model is trained offline (`training.seq_fit`); no decision is learned online
(`transition` returns None), so the case loop of the service stores cases but does not change
this policy. Its decision log has no candidates (kind "seq": nothing to learn from it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from recsys.config import BlendConfig
from recsys.errors import BundleError
from recsys.loop import Decided
from recsys.ranking import top_n_stable
from recsys.rec.request import RecRequest, RecResult
from recsys.rec.scorers.base import LoggedDecision, Outcome, Pool, WarmRequest, finish_list
from recsys.rec.scorers.items import ItemsScorer
from recsys.rec.seq.batch import sequence_of
from recsys.rec.seq.policy import SeqPolicy
from recsys.records import Candidates, UserState

if TYPE_CHECKING:
    from recsys.rec.recommender import Recommender

__all__ = ["SeqScorer"]


class SeqScorer(ItemsScorer):
    """The sequence policy ranks the catalogue (module docstring). The decision log and the
    cases behind a list are the items scorer's (the candidates are item rows)."""

    name = "seq"
    log_kind = "seq"
    chooses_items = False

    def needs_cooccurrence(self, blend: BlendConfig) -> bool:
        """Never: the policy reads only the sequence."""
        return False

    @staticmethod
    def policy(rec: Recommender) -> SeqPolicy:
        """The recommender's sequence policy; a `BundleError` when it has none."""
        if rec.seq is None:
            raise BundleError("the seq scorer needs a sequence policy (ModelBundle.seq)")
        return rec.seq

    def scores(self, rec: Recommender, req: RecRequest) -> np.ndarray | None:
        """(N,) scores of the model's items 1..N for a request (item row r = column r), None
        when no event of the request is an item the model knows."""
        pol = self.policy(rec)
        index = {rec.items.ids[r]: r + 1 for r in range(min(len(rec.items), pol.n_items))}
        events = [e for e in req.events if e.ts <= req.now]
        seq = sequence_of(events, index)
        if len(seq.items) == 0:
            return None
        return pol.scores([seq], np.array([req.now]))[0]

    def pool(self, rec: Recommender, req: RecRequest, state: UserState, exclude: set[int]) -> Pool:
        """No pool: the policy scores the whole catalogue (an empty snapshot)."""
        return Pool(Candidates.empty(rec.items.dim, self.feature_width))

    def rank(self, rec: Recommender, warm: WarmRequest) -> RecResult:
        """The top n unexcluded items by the policy's scores (greedy; the policy is
        deterministic, so a shown item's propensity is 1); LLM on the head when asked; a
        history of unknown items gets the popularity list."""
        req, state, exclude, n = warm.req, warm.state, warm.exclude, warm.n
        s = self.scores(rec, req)
        if s is None:
            return rec._cold(state, n, req.now, exclude)  # the pipeline's cold list
        pop = rec.popularity.scores(req.now)
        width = len(s)
        order = np.argsort(-pop[:width], kind="stable")  # ties: popularity as of now, then row
        tie = np.empty(width, np.int64)
        tie[order] = np.arange(width)
        allowed = np.array([r for r in range(width) if r not in exclude], np.int64)
        top = allowed[top_n_stable(s[allowed], min(n, len(allowed)), tie[allowed])]
        items = [int(r) for r in top]
        score = s[top].astype(np.float64)
        res = RecResult([], [], state)
        return finish_list(rec, warm, res, items, score, [1.0] * len(top))

    def transition(
        self, rec: Recommender, decision: LoggedDecision, outcome: Outcome
    ) -> tuple[Decided, np.ndarray] | None:
        """None: the sequence policy is not learned online (module docstring)."""
        return None

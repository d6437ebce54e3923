"""`FeedbackLearning`: the core's learning path (`ServingCore.apply_feedback` and
`ServingCore.batched` delegate to it).

feedback: `action_reward` -> the decision read back from its log (the scorer's `restore`) ->
`Recommender.learn` (the scorer's transition; s' = history + the acted item, its own candidate
snapshot at the feedback's time) -> a case keyed on the decision state, id
`fb-<sha1(decision/item)>` (idempotent), written to bank and case log
(`serving.case_memory.CaseMemory.add_feedback_case`).

Outcomes: a decision closed by `POST /v1/outcomes` brings one feedback row per shown item;
an `IMPRESSION` row (shown, not acted on) writes a zero-reward case (exposure evidence for the
items scorer) and learns nothing by itself, except that the row completing a decision with no
acted item makes one learning step with every shown item at reward 0 (a decision's acted rows
learn as feedback does). `serving.outcomes.OpenDecisions` counts the rows per decision in
memory: after a restart, a no-click decision whose rows straddle the last checkpoint teaches
nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import numpy as np

from recsys.rec.request import RecRequest
from recsys.rec.reward import action_reward
from recsys.rec.scorers import LoggedDecision, Outcome
from recsys.rec.scorers.items import ItemsScorer
from recsys.records import Candidates, Interaction, UserState
from serving.case_memory import CaseMemory
from serving.decision_blob import DecisionBlob
from serving.interactions import ACTIONS, interactions
from serving.outcomes import Feedback, OpenDecisions, feedback_time, shown_at
from serving.runtime import Runtime
from serving.service import IMPRESSION, DecisionSnapshot, EventRecord, LearnerUpdate
from serving.settings import ServingSettings
from serving.store import Store

__all__ = ["FeedbackLearning"]


class FeedbackLearning:
    """The learning path of one `ServingCore` (module docstring), on the runtime serving at
    each call."""

    def __init__(
        self,
        settings: ServingSettings,
        store: Store,
        memory: CaseMemory,
        runtime: Callable[[], Runtime],
        limit_threads: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._store = store
        self._memory = memory
        self._runtime = runtime  # the core's runtime of the moment (a reload swaps it)
        self._limit_threads = limit_threads  # the core's per-thread faiss cap
        self._closing = OpenDecisions()
        self._snap: tuple[str, DecisionBlob] | None = None  # the last decision's, decoded
        self._pool: tuple[str, Candidates, list[Interaction]] | None = None  # its pool, history
        self._restore: tuple[str, Runtime, Candidates] | None = None  # its candidates

    def _decoded(self, decision: DecisionSnapshot) -> DecisionBlob:
        """The decision's blob, decoded once for the consecutive rows of one decision (an
        outcome brings one row per shown item; a blob never changes)."""
        last = self._snap
        if last is not None and last[0] == decision.decision_id:
            return last[1]
        snap = DecisionBlob.decode(decision.candidates)
        self._snap = (decision.decision_id, snap)
        return snap

    def apply(
        self, decision: DecisionSnapshot, item_id: str, action: str, dwell_seconds: float | None
    ) -> LearnerUpdate:
        """Reward -> `Recommender.learn` (a decision logged by this model's scorer) -> case
        (idempotent id). An `IMPRESSION` (reward 0) learns only when it closes a decision with
        no acted item (module docstring)."""
        if self._settings.demo_apply_delay_s:
            time.sleep(self._settings.demo_apply_delay_s)
        rt = self._runtime()
        self._limit_threads()
        act = ACTIONS.get(action)
        if act is None and action != IMPRESSION:
            raise ValueError(f"unknown feedback action {action!r}")
        reward = 0.0 if act is None else action_reward(act, rt.bundle.config.reward, dwell_seconds)
        learn = act is not None
        if item_id in decision.items:
            learn = self._closing.add(decision, item_id, act is not None) or learn
        snap = self._decoded(decision)
        vec = np.frombuffer(decision.state, np.float32).copy()
        state = UserState(decision.user_id, vec, snap.text, decision.ts)
        fb = Feedback(
            decision,
            snap,
            state,
            item_id,
            act,
            reward,
            feedback_time(decision, snap.wall_ts, time.time()),
        )
        td_loss = None
        if learn and snap.chosen and vec.shape == (rt.dim,) and snap.kind == rt.rec.scorer.log_kind:
            td_loss = self._learn(rt, fb)
        if rt.rec.crosses is not None and vec.shape == (rt.dim,) and snap.kind == "items":
            self._learn_crosses(rt, fb)
        alarm = item_id in decision.items and rt.rec.note_reward(reward, fb.at)
        sid = None
        if self._settings.memory:
            sid = self._memory.add_feedback_case(rt, fb, shown_at(decision, snap, item_id))
        return LearnerUpdate(reward=reward, td_loss=td_loss, new_case_id=sid, drift_alarm=alarm)

    @contextlib.contextmanager
    def batched(self) -> Iterator[list[dict[str, float]]]:
        """Feedback applied inside only observes (`MemoryLoop.deferred`); on leaving, the
        gradient steps owed by all of it run at once (`MemoryLoop.train`), their metrics
        appended to the yielded list (the learner thread's batches)."""
        loop = self._runtime().rec.loop
        steps: list[dict[str, float]] = []
        if loop is None:
            yield steps
            return
        loop.deferred = True
        try:
            yield steps
        finally:
            loop.deferred = False
            steps.extend(loop.train())

    def _learn_crosses(self, rt: Runtime, fb: Feedback) -> None:
        """The cross model's step for the shown item (`ItemsScorer.learn_crosses`):
        its reward (an impression's 0) at the position it was shown, on the decision's pool
        and the user's stored history before the decision (both read once per decision)."""
        snap, decision = fb.snap, fb.decision
        k = shown_at(decision, snap, fb.item_id).position
        if k < 0 or fb.item_id not in snap.sids:
            return
        scorer = rt.rec.scorer
        assert isinstance(scorer, ItemsScorer), f"{type(scorer)=}"
        ctx = self._pool
        if ctx is None or ctx[0] != decision.decision_id:
            cands = self._restored(rt, fb)
            limit = self._settings.recent_events_limit
            events = self._store.recent_events(decision.user_id, limit, before=decision.ts)
            ctx = self._pool = (decision.decision_id, cands, interactions(decision.user_id, events))
        _, cands, history = ctx
        row = snap.sids.index(fb.item_id)
        if cands.mask[row]:
            scorer.learn_crosses(rt.rec, cands, history, [(row, k, fb.reward)])

    def _restored(self, rt: Runtime, fb: Feedback) -> Candidates:
        """The decision's candidates read back from its blob (the scorer's `restore`); an items
        decision's once per runtime for its consecutive calls (item rows do not depend on the
        bank, and nothing changes the restored arrays), a case decision's at each call (the
        bank may have changed)."""
        snap, did = fb.snap, fb.decision.decision_id
        last = self._restore
        if last is not None and last[0] == did and last[1] is rt and snap.kind == "items":
            return last[2]
        cands = rt.rec.scorer.restore(
            rt.rec, snap.sids, snap.sims, snap.feats, lambda s: rt.int_of.get(s, -1)
        )
        self._restore = (did, rt, cands)
        return cands

    def _learn(self, rt: Runtime, fb: Feedback) -> float | None:
        """The decision read back from its log + the feedback -> `Recommender.learn` (s' = the
        user's stored history before the feedback time with the acted item appended unless
        the client already stored it, its own candidate snapshot at the feedback time; gamma > 0
        online: what was shown changes s'). None when no chosen candidate is still live or no
        gradient step ran."""
        assert rt.rec.loop is not None, "the served pipeline has no learner"
        snap, user = fb.snap, fb.decision.user_id
        cands = self._restored(rt, fb)
        decision = LoggedDecision(
            fb.state.vec,
            cands,
            np.array(snap.chosen, np.int64),
            np.array(snap.logp, np.float32),
            tuple(tuple(i) for i in snap.case_items),
        )
        history = self._store.recent_events(
            user, self._settings.recent_events_limit, before=fb.at + 1e-3
        )
        if fb.act is not None:  # the acted item, unless the client stored it already
            stored = any(e.item_id == fb.item_id and e.ts >= fb.decision.ts for e in history)
            if not stored:
                history = [*history, EventRecord(fb.item_id, fb.act.value, fb.at)]
        acted = frozenset({fb.item_id}) if fb.act is not None else frozenset()
        nxt = RecRequest(user, interactions(user, history), fb.at + 1e-3)
        step = rt.rec.learn(decision, Outcome(fb.reward, acted, next_request=nxt))
        # visit counts stay 0, as in the replay that trained and evaluated the model (a Q
        # feature: counting online visits would move the served Q away from the evaluated one)
        loss = None
        for m in step.metrics if step is not None else []:
            loss = m.get("losses/td", m.get("losses/ce", loss))
        return loss

"""`ServingCore`: the service's core, a thin adapter over `recsys.rec.Recommender` + `ModelBundle`.

recommend: stored + request events -> `RecRequest` -> `Recommender.recommend` (the same
pipeline, configuration and bundle parts the offline evaluator measured) -> ranked items with
the cases behind them; the decision blob keeps the K snapshot for learning.
feedback and outcomes: `action_reward` -> `Recommender.learn` -> a feedback case, in
`serving.learning.FeedbackLearning` (the learning path, one per core). Case inspection and
editing live in `serving.case_memory.CaseMemory`.

One clock: a decision is taken at the request's `at` (now when absent) and stored with that
time; its feedback case is stamped with it (so the next request at a later `at` retrieves it);
s' is built at the feedback time = the decision time + the wall seconds since it was served
(`serving.outcomes.feedback_time`): a replayed or simulated decision stays on its own clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager

import numpy as np

from recsys.bundle import LearnerPart
from recsys.memory.faiss_index import FaissIndex
from recsys.rec.request import PSCORE_CASES, PSCORE_COLD, RecRequest, RecResult
from recsys.records import UserState
from serving.case_log import log_case
from serving.case_memory import CaseMemory
from serving.decision_blob import DecisionBlob
from serving.errors import NotReadyError
from serving.interactions import interactions
from serving.learning import FeedbackLearning
from serving.model_source import SNAPSHOT_DIR
from serving.runtime import EventGate, Runtime, build_runtime, load_events, save_snapshot
from serving.serial_llm import SerialLLM
from serving.service import (
    CaseChoice,
    CaseView,
    DecisionSnapshot,
    EventRecord,
    LearnerUpdate,
    NewCase,
    RankedItem,
    RecommendationRecord,
)
from serving.settings import ServingSettings
from serving.store import Store

logger = logging.getLogger(__name__)


def _sid(sid_of: Mapping[int, str]) -> Callable[[int], str]:
    """Bank id -> the service's case id (`r<id>` for a case without one)."""
    return lambda i: sid_of.get(i, f"r{i}")


def _entropy(res: RecResult) -> float | None:
    """Entropy (nats) of the policy's distribution of its first choice over its candidates
    (the softmax of a Plackett-Luce draw, SquareCB's distribution of a slotted one; None
    without a choice)."""
    if res.choice is None:
        return None
    p = res.choice.probs[res.choice.probs > 0].astype(np.float64)
    return float(-(p * np.log(p)).sum()) if len(p) else None


class ServingCore:
    """Thread-safe core (module docstring); `reload` swaps a new runtime in."""

    def __init__(self, settings: ServingSettings, store: Store) -> None:
        self._settings = settings
        self._store = store
        self._swap = threading.Lock()  # reload, erasure, deletion: one at a time
        self._events = EventGate()  # observe_events vs the reload's swap
        self._generation = 0
        self._llm = SerialLLM(settings.llm) if settings.llm != "none" else None
        self._ctx_cache: dict[str, np.ndarray] = {}
        self._rt: Runtime = self._new_runtime()
        self._memory = CaseMemory(store, lambda: self._rt, self.encode_state)
        self._thread = threading.local()
        self._learning = FeedbackLearning(
            settings, store, self._memory, lambda: self._rt, self._limit_threads
        )

    def _new_runtime(self, events: bool = True) -> Runtime:
        rt = build_runtime(self._settings, self._store, events=events)
        rt.rec.set_llm(self._llm)
        return rt

    def _limit_threads(self) -> None:
        """Cap faiss's OpenMP threads once per request thread (the ICV is per thread)."""
        n = self._settings.blas_threads
        if n > 0 and not getattr(self._thread, "limited", False):
            FaissIndex.set_threads(n)
            self._thread.limited = True

    # --- versions, sizes, readiness -------------------------------------------------------
    @property
    def model_version(self) -> str:
        """`<model version>.r<reload generation>`."""
        return f"{self._rt.version}.r{self._generation}"

    def bank_size(self) -> int:
        """Live cases in the bank."""
        return len(self._rt.bank)

    @property
    def runtime(self) -> Runtime:
        """The runtime now serving (tests, load test)."""
        return self._rt

    def not_ready_reason(self) -> str | None:
        """None when there is something to recommend from, else what to do about it."""
        if len(self._rt.items) == 0:
            return (
                "no model and no catalogue: run `memento train` (registers "
                "memento-recsys@champion) or set MEMENTO_ITEMS_PATH to a catalogue parquet"
            )
        return None

    # --- state ------------------------------------------------------------------------------
    def _profile(self, rt: Runtime, context: Mapping[str, str]) -> np.ndarray | None:
        if not context or rt.text is None:
            return None
        text = "; ".join(f"{k}={v}" for k, v in sorted(context.items()))
        vec = self._ctx_cache.get(text)
        if vec is None:
            vec = np.asarray(rt.text.encode([text])[0], np.float32)
            if len(self._ctx_cache) < 10_000:
                self._ctx_cache[text] = vec
        return vec

    def encode_state(
        self,
        user_id: str,
        events: Sequence[EventRecord],
        context: Mapping[str, str],
        now: float,
        rt: Runtime | None = None,
    ) -> UserState:
        """The user's state from events + context (zero vector for a cold start)."""
        rt = rt or self._rt
        return rt.rec.encode_state(
            user_id, interactions(user_id, events), now, self._profile(rt, context)
        )

    # --- recommend --------------------------------------------------------------------------
    def recommend(
        self,
        user_id: str,
        n: int,
        context: Mapping[str, str],
        recent_events: Sequence[EventRecord],
        exclude_items: Sequence[str],
        explain: bool,
        at: float | None = None,
    ) -> RecommendationRecord:
        """The one pipeline for one request; `at` replays a past decision time."""
        reason = self.not_ready_reason()
        if reason is not None:
            raise NotReadyError(reason)
        rt = self._rt
        self._limit_threads()
        wall = time.time()
        now = wall if at is None else float(at)
        req = RecRequest(
            user_id,
            interactions(user_id, recent_events),
            now,
            frozenset(exclude_items),
            n,
            self._profile(rt, context),
        )
        greedy = self._settings.policy == "greedy"
        res = rt.rec.recommend(req, greedy=greedy, use_llm=self._llm is not None, propensities=True)
        scorer = rt.rec.scorer
        with rt.lock:  # candidates as logged: case ids, or item ids for an item scorer
            sid = _sid(rt.sid_of)
            sids = scorer.log_ids(rt.rec, res.cands, sid) if res.cands is not None else []
            # -1: an item no retrieved case proposes (the items scorer's chosen "case")
            support = {r: [sid(int(c)) for c in res.behind(r) if c >= 0] for r in res.items}
        items = tuple(
            RankedItem(
                rt.items.ids[r],
                rt.items.titles[r],
                round(float(s), 6),
                tuple(support[r]),
                r in res.explored,
            )
            for r, s in zip(res.items, res.scores, strict=True)
        )
        cases = tuple(CaseChoice(sid, p) for sid, p in scorer.cases_behind(res, sids, support))
        blob = DecisionBlob(
            sids=sids,
            sims=[float(x) for x in res.cands.sims] if res.cands is not None else [],
            feats=res.cands.features.astype(float).tolist() if res.cands is not None else [],
            chosen=[c.row for c in res.chosen],
            logp=[c.logp for c in res.chosen],
            case_items=[[rt.items.ids[i] for i in c.items] for c in res.chosen],
            text=res.state.text,
            kind=scorer.log_kind,
            # logged propensities: the items scorer's; none for a cold list or the case scorer
            pscores=res.propensities or [None] * len(res.items),
            pscore_gaps=res.propensity_gaps
            or [PSCORE_COLD if res.cold else PSCORE_CASES] * len(res.items),
            wall_ts=wall,
        )
        why = None
        if explain:
            why = self._explain(rt, res, cases)
        return RecommendationRecord(
            items,
            cases,
            res.state.vec.tobytes(),
            blob.encode(),
            why,
            _entropy(res),
            res.greedy_top1,
        )

    def _explain(self, rt: Runtime, res: RecResult, cases: tuple[CaseChoice, ...]) -> str:
        if res.cold:
            return "cold start: the most popular catalogue items, no case chosen"
        if self._llm is not None and res.prompt and res.items:
            return self._llm.explain(res.prompt, rt.items.titles[res.items[0]])
        why = "; ".join(f"case {c.case_id} mu={c.weight:.3f}" for c in cases)
        return f"{why}; state: {res.state.text}" if why else f"state: {res.state.text}"

    # --- learning ---------------------------------------------------------------------------
    def observe_events(self, user_id: str, events: Sequence[EventRecord]) -> None:
        """Count catalogue events in the popularity log (the state is rebuilt per request)."""
        with self._events.observing():
            self._rt.observe(user_id, [e.item_id for e in events], [float(e.ts) for e in events])

    def apply_feedback(
        self, decision: DecisionSnapshot, item_id: str, action: str, dwell_seconds: float | None
    ) -> LearnerUpdate:
        """Reward -> `Recommender.learn` (a decision logged by this model's scorer) -> case
        (idempotent id). An `IMPRESSION` (reward 0) learns only when it closes a decision with
        no acted item (`serving.learning`)."""
        return self._learning.apply(decision, item_id, action, dwell_seconds)

    def batched(self) -> AbstractContextManager[list[dict[str, float]]]:
        """Feedback applied inside only observes (`MemoryLoop.deferred`); on leaving, the
        gradient steps owed by all of it run at once (`MemoryLoop.train`), their metrics
        appended to the yielded list (the learner thread's batches)."""
        return self._learning.batched()

    # --- memory inspection and editing (`CaseMemory`) ---------------------------------------
    def write_case(self, case: NewCase) -> str:
        """A case keyed on the state its events/context define, about its items."""
        return self._memory.write_case(case)

    def get_case(self, case_id: str) -> CaseView | None:
        """A live case; value = min twin Q of the case in its own key state."""
        return self._memory.get_case(case_id)

    def delete_case(self, case_id: str) -> bool:
        """Remove from bank, soft-delete in the log, tombstone (snapshot/registry copies)."""
        with self._swap:
            return self._memory.delete_case(case_id)

    def list_cases(self, user_id: str) -> list[CaseView]:
        """Live cases owned by a user, oldest first."""
        return self._memory.list_cases(user_id)

    def erase_user(self, user_id: str) -> int:
        """Drop the user's cases (bank + tombstones), recount popularity, force a snapshot."""
        with self._swap:
            return self._memory.erase_user(user_id)

    # --- persistence ------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Save the learner; the bank too once enough cases changed (or after an erasure)."""
        rt = self._rt
        dst = self._settings.resolved_checkpoint_dir() / SNAPSHOT_DIR
        with rt.lock:
            with_bank = rt.force_snapshot or rt.changed >= self._settings.snapshot_every_cases
            save_snapshot(rt, dst, with_bank=with_bank or not (dst / "bank").exists())
            if with_bank:
                rt.changed, rt.force_snapshot = 0, False

    def learner_part(self, *, optimiser: bool) -> LearnerPart:
        """The served learner as a bundle part (`ModelBundle.learner_part`): a checkpoint with
        the optimiser state, what a replica acts with without it."""
        return self._rt.bundle.learner_part(optimiser=optimiser)

    def apply_learner_part(self, part: LearnerPart) -> None:
        """Load a learner part (+ its cross model) into the served model in place
        (`ModelBundle.apply_learner_part`): requests in flight score with the old or the new
        weights, never a mix."""
        self._rt.bundle.apply_learner_part(part)

    def reload(self) -> str:
        """Build a new runtime (registry alias / snapshot + log), then, with events held, load
        the stored events into it and swap it in (`serving.runtime`: the lock discipline)."""
        with self._swap:
            new = self._new_runtime(events=False)
            old = self._rt
            with self._events.swapping(), old.lock:
                load_events(new, self._store)
                missing = [
                    r
                    for r in self._store.live_cases()
                    if r.case_id not in new.int_of and not self._memory.is_tombstoned(r.case_id)
                ]
                with new.lock:
                    new.add_cases(
                        [log_case(new, r) for r in missing],
                        [r.case_id for r in missing],
                        [r.user_id for r in missing],
                    )
                self._rt = new
            self._generation += 1
        return self.model_version

    def close(self) -> None:
        """Nothing to release (the learner thread checkpoints before)."""


def build_core(settings: ServingSettings, store: Store) -> ServingCore:
    """Factory for `MEMENTO_CORE=serving.core:build_core` (the default)."""
    if settings.blas_threads > 0:
        import torch

        torch.set_num_threads(settings.blas_threads)
    return ServingCore(settings, store)


__all__ = ["ServingCore", "build_core"]

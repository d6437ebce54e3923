"""`RecommendService`: what the routes call. Persistence + core + learner, no HTTP types.

Each method is one use case: schema in, domain records through the core and the store,
schema out. Domain failures raise `serving.errors` exceptions.

One clock: a recommendation is decided at the request's `at` (now when absent); the decision
is stored with that time and request events without a `ts` are stamped with it. Events posted
without a `ts` are stamped now.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from serving import schemas
from serving.decision_blob import DecisionBlob
from serving.errors import (
    ItemNotInDecisionError,
    NotReadyError,
    OutcomeMismatchError,
    UnknownCaseError,
    UnknownDecisionError,
)
from serving.learner_worker import FeedbackJob, LearnerWorker
from serving.metrics import ServingMetrics
from serving.service import (
    IMPRESSION,
    CaseView,
    DecisionSnapshot,
    EventRecord,
    NewCase,
    RecommenderBackend,
)
from serving.settings import ServingSettings
from serving.store import Store


def _events(events: list[schemas.EventIn] | None, now: float) -> list[EventRecord]:
    return [
        EventRecord(e.item_id, e.action, e.ts if e.ts is not None else now) for e in events or []
    ]


def _propensities(candidates: bytes, n: int) -> list[float | None]:
    """The logged propensity of each of the n items, as stored in the decision (`ServingCore`'s
    `DecisionBlob.pscores`); None for another core's snapshot or a decision without them."""
    pscores = DecisionBlob.decode(candidates).pscores or []
    return [pscores[k] if k < len(pscores) else None for k in range(n)]


OUTCOME_KEY = "\x1foutcome"
"""Prefix of the idempotency keys of an outcome's rows, `<prefix>/<decision id>/<position>`: no
client key can equal one (ids refuse control characters), and the decision closes once."""


def _impressions(decision: DecisionSnapshot, req: schemas.OutcomeRequest) -> list[int]:
    """The position of each impression in the decision's list; `ItemNotInDecisionError` for an
    item it did not show, `OutcomeMismatchError` unless every shown item is listed once."""
    position = {item: k for k, item in enumerate(decision.items)}
    foreign = [i.item_id for i in req.impressions if i.item_id not in position]
    if foreign:
        raise ItemNotInDecisionError(
            f"items {foreign[:5]!r} were not recommended in decision {decision.decision_id!r}"
        )
    listed = [i.item_id for i in req.impressions]
    twice = sorted({i for i in listed if listed.count(i) > 1})
    missing = [i for i in decision.items if i not in set(listed)]
    if twice or missing:
        raise OutcomeMismatchError(
            f"an outcome lists every item decision {decision.decision_id!r} showed exactly once"
            f" (null action: shown, not acted on); missing {missing[:5]!r}, repeated {twice[:5]!r}"
        )
    return [position[i] for i in listed]


def _case_out(c: CaseView) -> schemas.CaseOut:
    return schemas.CaseOut(
        case_id=c.case_id,
        user_id=c.user_id,
        items=list(c.items),
        reward=c.reward,
        value=c.value,
        ts=c.ts,
        source=c.source,
    )


class RecommendService:
    """Glue between the API, the core, the store and the online learner."""

    def __init__(
        self,
        settings: ServingSettings,
        core: RecommenderBackend,
        store: Store,
        worker: LearnerWorker,
        metrics: ServingMetrics,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self.settings, self.core, self.store = settings, core, store
        self.worker, self.metrics = worker, metrics
        self._new_id = new_id or (lambda: uuid.uuid4().hex)
        """Id of a new decision (uuid4 hex; a seeded source makes a benchmark run repeat: the
        decision id names its cases, which order the bank's evictions)."""

    def not_ready_reason(self) -> str | None:
        """Why the service cannot answer recommendations yet (None: ready)."""
        if not self.worker.alive():
            return "the online-learner thread is not running"
        return self.core.not_ready_reason()

    def recommend(self, req: schemas.RecommendRequest) -> schemas.RecommendResponse:
        """Stored history + request events -> core decision -> persisted decision."""
        reason = self.core.not_ready_reason()
        if reason is not None:
            raise NotReadyError(reason)
        now = time.time() if req.at is None else req.at
        history = self.store.recent_events(
            req.user_id, self.settings.recent_events_limit, before=req.at
        )
        result = self.core.recommend(
            req.user_id,
            req.n,
            dict(req.context or {}),
            history + _events(req.recent_events, now),
            list(req.exclude_items or []),
            req.explain,
            at=req.at,
        )
        decision = DecisionSnapshot(
            decision_id=self._new_id(),
            user_id=req.user_id,
            state=result.state,
            candidates=result.candidates,
            chosen_case_ids=tuple(c.case_id for c in result.cases),
            items=tuple(i.item_id for i in result.items),
            model_version=self.core.model_version,
            ts=now,
        )
        self.store.put_decision(decision)
        self.metrics.decision_served()
        if result.policy_entropy is not None:
            self.metrics.policy_entropy.set(result.policy_entropy)
        if result.greedy_top1 is not None:
            self.metrics.top1_served(result.greedy_top1)
        pscores = _propensities(result.candidates, len(result.items))
        return schemas.RecommendResponse(
            decision_id=decision.decision_id,
            items=[
                schemas.ItemOut(
                    item_id=i.item_id,
                    title=i.title,
                    score=i.score,
                    cases=list(i.cases),
                    propensity=p,
                    explored=i.explored,
                )
                for i, p in zip(result.items, pscores, strict=True)
            ],
            cases=[schemas.CaseWeightOut(case_id=c.case_id, weight=c.weight) for c in result.cases],
            model_version=decision.model_version,
            explanation=result.explanation if req.explain else None,
        )

    def feedback(self, req: schemas.FeedbackRequest) -> schemas.FeedbackAccepted:
        """Durably store once per idempotency key, then queue for the learner."""
        decision = self.store.get_decision(req.decision_id)
        if decision is None:
            raise UnknownDecisionError(f"unknown decision_id {req.decision_id!r}")
        if req.item_id not in decision.items:
            raise ItemNotInDecisionError(
                f"item {req.item_id!r} was not recommended in decision {req.decision_id!r}"
            )
        fid, inserted = self.store.insert_feedback(
            req.idempotency_key, req.decision_id, req.item_id, req.action, req.dwell_seconds
        )
        if not inserted:
            self.metrics.feedback.labels("duplicate").inc()
            return schemas.FeedbackAccepted(feedback_id=fid, duplicate=True)
        try:
            self.worker.submit(
                FeedbackJob(fid, req.decision_id, req.item_id, req.action, req.dwell_seconds)
            )
        except Exception:
            self.store.delete_unapplied_feedback(fid)
            self.metrics.feedback.labels("rejected").inc()
            raise
        self.metrics.feedback.labels("accepted").inc()
        return schemas.FeedbackAccepted(feedback_id=fid, duplicate=False)

    def outcome(self, req: schemas.OutcomeRequest) -> schemas.OutcomeAccepted:
        """Close a decision: one durable feedback row per shown item (acted: its action; the
        rest `IMPRESSION`, zero-reward evidence), in list order, each queued for the learner.
        Keys derive from the decision (`OUTCOME_KEY`): a repeat stores nothing and answers the
        same rows; a full queue withdraws the rows not yet queued (503: the retry adds them)."""
        decision = self.store.get_decision(req.decision_id)
        if decision is None:
            raise UnknownDecisionError(f"unknown decision_id {req.decision_id!r}")
        positions = _impressions(decision, req)
        order = sorted(range(len(positions)), key=positions.__getitem__)
        imps = [req.impressions[k] for k in order]
        rows = [
            (
                f"{OUTCOME_KEY}/{decision.decision_id}/{positions[k]}",
                decision.decision_id,
                i.item_id,
                i.action or IMPRESSION,
                i.dwell_seconds,
            )
            for k, i in zip(order, imps, strict=True)
        ]
        stored = self.store.insert_feedback_many(rows)
        for at, ((fid, inserted), row) in enumerate(zip(stored, rows, strict=True)):
            if not inserted:
                continue
            try:
                self.worker.submit(FeedbackJob(fid, row[1], row[2], row[3], row[4]))
            except Exception:
                for later, new in stored[at:]:
                    if new:
                        self.store.delete_unapplied_feedback(later)
                self.metrics.feedback.labels("rejected").inc()
                raise
        duplicate = not any(new for _, new in stored)
        self.metrics.feedback.labels("duplicate" if duplicate else "accepted").inc()
        pscores = _propensities(decision.candidates, len(decision.items))
        return schemas.OutcomeAccepted(
            decision_id=decision.decision_id,
            impressions=[
                schemas.ImpressionOut(
                    item_id=i.item_id,
                    position=positions[k],
                    action=i.action,
                    propensity=pscores[positions[k]],
                    feedback_id=fid,
                )
                for k, i, (fid, _) in zip(order, imps, stored, strict=True)
            ],
            duplicate=duplicate,
        )

    def add_events(self, req: schemas.EventsRequest) -> schemas.EventsAccepted:
        """Append to the user's stored history and tell the core."""
        events = _events(req.events, time.time())
        stored = self.store.append_events(req.user_id, events)
        self.core.observe_events(req.user_id, events)
        return schemas.EventsAccepted(stored=stored)

    def write_case(self, req: schemas.CaseIn) -> schemas.CaseOut:
        """Write a case by hand."""
        case_id = self.core.write_case(
            NewCase(
                user_id=req.user_id,
                items=tuple(req.items),
                reward=req.reward,
                recent_events=tuple(_events(req.recent_events, time.time())),
                context=dict(req.context or {}),
            )
        )
        return self.get_case(case_id)

    def get_case(self, case_id: str) -> schemas.CaseOut:
        """One live case."""
        case = self.core.get_case(case_id)
        if case is None:
            raise UnknownCaseError(f"unknown case_id {case_id!r}")
        return _case_out(case)

    def delete_case(self, case_id: str) -> None:
        """Remove a case from memory."""
        if not self.core.delete_case(case_id):
            raise UnknownCaseError(f"unknown case_id {case_id!r}")

    def list_cases(self, user_id: str) -> schemas.CaseList:
        """Live cases of one user."""
        return schemas.CaseList(cases=[_case_out(c) for c in self.core.list_cases(user_id)])

    def erase_user(self, user_id: str) -> schemas.ErasureReport:
        """Delete events, decisions, their feedback and cases of a user (store, then core)."""
        counts = self.store.erase_user(user_id)
        bank = self.core.erase_user(user_id)
        return schemas.ErasureReport(
            events=counts.events,
            decisions=counts.decisions,
            feedback=counts.feedback,
            cases=max(counts.cases, bank),
        )

    def reload(self) -> str:
        """Checkpoint pending learning, then reload the core, with the learner held in
        between (nothing learned on the old model is lost); returns the new version."""
        with self.worker.held():
            self.worker.checkpoint()
            return self.core.reload()

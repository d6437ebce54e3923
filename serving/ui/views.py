"""View models of the `/ui` page, built from the service's own records (no HTTP types).

`explain` turns a recommend response into rows per item with the cases behind it (state
summary, item, outcome, reward, Q, policy probability, age, similarity to the decision state);
`search_cases` filters the live case log; `case_history` lists what a case went through.
Values come from the same service calls the API makes (`RecommendService.get_case` for Q);
the case log payload and the stored decision give the summary, outcome and similarity.
A served bundle's own cases (a registered champion's bank) are not in the case log: with the
serving core they are read from its bank, so they show, explain and search like logged ones.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from serving.decision_blob import DecisionBlob
from serving.recommend_service import RecommendService
from serving.runtime import Runtime
from serving.schemas import RecommendResponse
from serving.service import CaseView
from serving.store import CaseRecord

logger = logging.getLogger(__name__)

SortKey = Literal["q", "visits", "age", "reward"]
"""Memory browser orderings (highest Q / most visits / newest / highest reward first)."""
MAX_ROWS = 200
"""Most cases the memory browser shows."""
_UNVALUED: set[str] = set()
"""Cases the core failed to value (the traceback is logged for the first one only)."""


@dataclass(frozen=True)
class CaseRow:
    """One case as the page shows it."""

    case_id: str
    user_id: str
    items: str
    summary: str
    outcome: str
    reward: float
    q: float | None
    age_s: float
    source: str
    visits: int | None = None
    prob: float | None = None
    """Policy probability of the case in the decision being explained."""
    sim: float | None = None
    """Cosine similarity of the case key to the decision state."""


@dataclass(frozen=True)
class ItemRow:
    """One recommended item with the cases behind it."""

    rank: int
    item_id: str
    title: str
    score: float
    propensity: float | None
    cases: list[CaseRow] = field(default_factory=list)
    explored: bool = False
    """Placed by an exploration slot of the policy (`ItemOut.explored`)."""


@dataclass(frozen=True)
class Explanation:
    """A decision as the page shows it."""

    decision_id: str
    user_id: str
    model_version: str
    state_summary: str
    explanation: str | None
    items: list[ItemRow]
    cold: bool
    """No stored history for the user and no events typed: a cold-start list."""


def _cosine(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.shape != b.shape or a.size == 0:
        return None
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else None


def _runtime(service: RecommendService) -> Runtime | None:
    """The serving core's runtime (None for other cores)."""
    runtime = getattr(service.core, "runtime", None)
    rt = runtime() if callable(runtime) else runtime
    return rt if isinstance(rt, Runtime) else None


def _visits(service: RecommendService, case_id: str) -> int | None:
    """Times the case was chosen, from the serving core's bank (None for other cores)."""
    rt = _runtime(service)
    if rt is None:
        return None
    with rt.lock:
        cid = rt.int_of.get(case_id)
        return int(rt.bank.get(cid).visits) if cid is not None else None


def _bank_records(rt: Runtime, sids: list[str]) -> list[CaseRecord]:
    """Bank cases as case-log records (a loaded bundle's cases are only in its bank)."""
    out = []
    with rt.lock:
        for sid in sids:
            cid = rt.int_of.get(sid)
            if cid is None:
                continue
            c = rt.bank.get(cid)
            payload = {"source": c.source or "replay", **c.payload}
            owner = str(c.payload.get("user_id", ""))
            key = np.asarray(c.key, np.float32).tobytes()
            out.append(CaseRecord(sid, owner, payload, key, float(c.reward), float(c.ts), False))
    return out


def find_case(service: RecommendService, case_id: str) -> CaseRecord | None:
    """A live case from the case log, else from the serving core's bank."""
    rec = service.store.get_case(case_id)
    if rec is not None:
        return rec
    rt = _runtime(service)
    found = _bank_records(rt, [case_id]) if rt is not None else []
    return found[0] if found else None


def _live_records(service: RecommendService, user: str) -> list[CaseRecord]:
    """Every live case (of `user` when given): the case log, + bank cases not logged."""
    records = service.store.list_cases(user) if user else service.store.live_cases()
    rt = _runtime(service)
    if rt is None:
        return records
    logged = {r.case_id for r in records}
    with rt.lock:
        sids = sorted(rt.by_user.get(user, ())) if user else list(rt.int_of)
    return records + _bank_records(rt, [s for s in sids if s not in logged])


def _core_view(service: RecommendService, case_id: str) -> CaseView | None:
    """The core's view of a case (its Q); None when the core cannot value it (logged once)."""
    try:
        return service.core.get_case(case_id)
    except RuntimeError:  # the core's bug: case Q of an items-scorer bundle (see report)
        if not _UNVALUED:
            logger.warning("the core cannot value case %s: Q not shown", case_id, exc_info=True)
        _UNVALUED.add(case_id)
        return None


def case_row(
    service: RecommendService,
    rec: CaseRecord,
    *,
    now: float,
    prob: float | None = None,
    state: np.ndarray | None = None,
) -> CaseRow:
    """A case-log record with the core's current Q (None when the bank no longer has it)."""
    view = _core_view(service, rec.case_id)
    p: dict[str, Any] = rec.payload
    items = p.get("items") or ([p["item_id"]] if p.get("item_id") else [])
    sim = None
    if state is not None and rec.key:
        sim = _cosine(np.frombuffer(rec.key, np.float32), state)
    return CaseRow(
        case_id=rec.case_id,
        user_id=rec.user_id,
        items=", ".join(str(i) for i in items),
        summary=str(p.get("user_summary") or ""),
        outcome=str(p.get("action") or p.get("source") or "—"),
        reward=float(rec.reward),
        q=view.value if view is not None else None,
        age_s=max(0.0, now - rec.ts),
        source=view.source if view is not None else str(p.get("source") or "log"),
        visits=_visits(service, rec.case_id),
        prob=prob,
        sim=sim,
    )


def explain(service: RecommendService, resp: RecommendResponse, user_id: str) -> Explanation:
    """Rows per item with the cases that proposed it, from the stored decision."""
    service.store.flush_decisions()
    decision = service.store.get_decision(resp.decision_id)
    blob = DecisionBlob.decode(decision.candidates) if decision is not None else None
    state = np.frombuffer(decision.state, np.float32) if decision is not None else None
    weights = {c.case_id: c.weight for c in resp.cases}
    now = time.time()
    rows: list[ItemRow] = []
    for rank, item in enumerate(resp.items, start=1):
        cases = []
        for cid in item.cases:
            rec = find_case(service, cid)
            if rec is not None:
                cases.append(case_row(service, rec, now=now, prob=weights.get(cid), state=state))
        rows.append(
            ItemRow(
                rank, item.item_id, item.title, item.score, item.propensity, cases, item.explored
            )
        )
    cold = not service.store.recent_events(user_id, 1) and not resp.cases
    return Explanation(
        decision_id=resp.decision_id,
        user_id=user_id,
        model_version=resp.model_version,
        state_summary=blob.text if blob is not None else "",
        explanation=resp.explanation,
        items=rows,
        cold=cold,
    )


def search_cases(
    service: RecommendService,
    *,
    text: str = "",
    item: str = "",
    user: str = "",
    outcome: str = "",
    sort: SortKey = "q",
) -> list[CaseRow]:
    """Live cases matching every non-empty filter (substring, case-insensitive), sorted."""
    now = time.time()
    text, item, user, outcome = (s.strip().lower() for s in (text, item, user, outcome))
    records = _live_records(service, user)
    hits: list[CaseRecord] = []
    for rec in records:
        p = rec.payload
        items = " ".join(str(i) for i in (p.get("items") or [p.get("item_id", "")]))
        blob = f"{p.get('title', '')} {p.get('user_summary', '')} {items}".lower()
        if text and text not in blob:
            continue
        if item and item not in items.lower():
            continue
        if outcome and outcome != str(p.get("action") or p.get("source") or "").lower():
            continue
        hits.append(rec)
    hits = hits[: MAX_ROWS * 5]
    rows = [case_row(service, rec, now=now) for rec in hits]
    key = {
        "q": lambda r: -(r.q if r.q is not None else -1e9),
        "visits": lambda r: -(r.visits or 0),
        "age": lambda r: r.age_s,
        "reward": lambda r: -r.reward,
    }[sort]
    return sorted(rows, key=key)[:MAX_ROWS]


@dataclass(frozen=True)
class HistoryEntry:
    """One thing that happened to a case."""

    ts: float
    what: str


def case_history(service: RecommendService, rec: CaseRecord) -> list[HistoryEntry]:
    """Written (by which decision and feedback), and the feedback on the decision behind it."""
    p = rec.payload
    how = "feedback" if p.get("decision_id") else str(p.get("source") or "log")
    out = [HistoryEntry(rec.ts, f"written ({how}), reward {rec.reward:+.3f}")]
    decision_id = p.get("decision_id")
    if decision_id:
        decision = service.store.get_decision(str(decision_id))
        if decision is not None:
            out.append(
                HistoryEntry(
                    decision.ts,
                    f"decision {decision.decision_id} for {decision.user_id}: "
                    f"{', '.join(decision.items[:5])} (model {decision.model_version})",
                )
            )
        for fb in service.store.feedback():
            if fb.decision_id == decision_id:
                out.append(HistoryEntry(fb.ts, f"feedback {fb.action} on {fb.item_id}"))
    return sorted(out, key=lambda e: e.ts)


__all__ = [
    "CaseRow",
    "Explanation",
    "HistoryEntry",
    "ItemRow",
    "SortKey",
    "case_history",
    "case_row",
    "explain",
    "find_case",
    "search_cases",
]

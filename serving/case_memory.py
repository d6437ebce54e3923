"""`CaseMemory`: writing, inspecting and editing the serving core's cases (bank + case log).

add_feedback_case writes a feedback's case (`ServingCore.apply_feedback`), keyed on the
decision state and stamped with the decision time (the request's `at`, so a later request on
the same clock retrieves it), id `fb-<sha1(decision/item)>` (idempotent); write_case keys a
manual case (id `m-<sha1>`) on the state its events/context define. A case view's value is the
min twin Q of the case in its own key state. Deleting or erasing removes cases from the bank,
soft-deletes them in the case log and tombstones their ids (a store blob), so copies in a bank
snapshot or registry model stay dead across feedback and `reload()`.
Calls work on the runtime serving now (`ServingCore` swaps it on reload); add_feedback_case on
the runtime its request started with.
Locking follows `serving.runtime` (bank and id maps under `Runtime.lock`; the tombstone set
under `_tomb_lock`; `ServingCore` runs erasures and deletions one at a time).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from recsys.memory.case_encoder import case_summary
from recsys.rec.request import case_item_ids as case_items
from recsys.records import Candidates, Case, UserState
from serving.case_log import TOMBSTONES, load_tombstones
from serving.outcomes import Feedback, ShownAt
from serving.runtime import Runtime
from serving.service import CaseView, EventRecord, NewCase
from serving.store import CaseRecord, Store

EncodeState = Callable[[str, Sequence[EventRecord], Mapping[str, str], float, Runtime], UserState]
"""(user id, events, context, now, runtime) -> the user's state (`ServingCore.encode_state`)."""


class CaseMemory:
    """Case inspection/editing on the current runtime, plus the tombstone set (thread-safe)."""

    def __init__(
        self, store: Store, runtime: Callable[[], Runtime], encode_state: EncodeState
    ) -> None:
        """`runtime` returns the runtime serving now; `encode_state` keys manual cases."""
        self._store = store
        self._runtime = runtime
        self._encode_state = encode_state
        self._tomb_lock = threading.Lock()
        self._tomb = load_tombstones(store)
        self._erased_at: dict[str, float] = {}
        """User -> time of their last erasure in this process (guarded by the runtime lock):
        feedback on an older decision, still queued then, writes no case. ~100 B per erased
        user, like the tombstones; after a restart the store holds no such feedback."""

    def is_tombstoned(self, case_id: str) -> bool:
        """Whether the case was deleted or erased (it must not come back)."""
        return case_id in self._tomb

    def write_case(self, case: NewCase) -> str:
        """A case keyed on the state its events/context define, about its items."""
        rt = self._runtime()
        now = time.time()
        state = self._encode_state(case.user_id, case.recent_events, case.context, now, rt)
        digest = hashlib.sha1(f"{case.user_id}/{time.time_ns()}/{case.items}".encode())
        sid = "m-" + digest.hexdigest()[:20]
        title = " ".join(rt.items.titles_of(list(case.items)))
        payload = {
            "items": list(case.items),
            "title": title,
            "user_summary": case_summary(state.text),
            "sid": sid,
            "user_id": case.user_id,
            "source": "manual",
        }
        key = rt.case_encoder.keys(state.vec[None, :], [payload])[0]
        rec = Case(key=key, payload=payload, reward=case.reward, ts=now, source="manual")
        with rt.lock:
            self._store.put_case(
                CaseRecord(sid, case.user_id, payload, key.tobytes(), case.reward, now, False)
            )
            rt.add_cases([rec], [sid], [case.user_id])
        return sid

    def add_feedback_case(self, rt: Runtime, fb: Feedback, shown: ShownAt) -> str:
        """The feedback's case, keyed on the decision state (zero if of another dimension) and
        stamped with the decision time, id `fb-<sha1(decision/item)>`, its payload with the
        position and propensity the item was shown at (an impression: action None, reward 0,
        source `impression`): written to bank and case log once, never if tombstoned, nor when
        the decision's user was erased after it was served (`shown.served_at`, wall clock: the
        feedback waited in the queue; checked and written under `rt.lock`, where the erasure
        records its wall time)."""
        decision, state, item_id, act, reward = fb.decision, fb.state, fb.item_id, fb.act, fb.reward
        sid = "fb-" + hashlib.sha1(f"{decision.decision_id}/{item_id}".encode()).hexdigest()[:20]
        if state.vec.shape != (rt.dim,):
            state = UserState(decision.user_id, np.zeros(rt.dim, np.float32), state.text, state.ts)
        with rt.lock:
            erased = self._erased_at.get(decision.user_id, -1.0) >= shown.served_at
            if sid not in rt.int_of and sid not in self._tomb and not erased:
                case = rt.case_encoder.make_case(
                    state,
                    item_id,
                    rt.items.titles_of([item_id])[0],
                    act,
                    reward,
                    decision.ts,
                    "feedback" if act is not None else "impression",
                )
                case.payload.update(
                    sid=sid,
                    items=[item_id],
                    user_id=decision.user_id,
                    decision_id=decision.decision_id,
                    position=shown.position,
                    propensity=shown.propensity,
                    source=case.source,
                )
                self._store.put_case(
                    CaseRecord(
                        sid,
                        decision.user_id,
                        case.payload,
                        case.key.tobytes(),
                        reward,
                        case.ts,
                        False,
                    )
                )
                rt.add_cases([case], [sid], [decision.user_id])
        return sid

    def _view(self, rt: Runtime, sid: str) -> CaseView | None:
        with rt.lock:
            cid = rt.int_of.get(sid)
            if cid is None:
                return None
            c = rt.bank.get(cid)
        # the items scorer's Q is over (state, item) with per-request item evidence: it values
        # items, never cases; there a case's value is the credit it has received
        items = rt.rec.scorer.chooses_items
        value = float(c.utility) if items else self._case_q(rt, cid, c)
        return CaseView(
            sid,
            str(c.payload.get("user_id", "")),
            tuple(case_items(c.payload)),
            float(c.reward),
            value,
            float(c.ts),
            str(c.payload.get("source") or c.source or "replay"),
        )

    @staticmethod
    def _case_q(rt: Runtime, cid: int, c: Case) -> float:
        """Min twin Q of a case in its own key state (the blend scorer's case policy)."""
        one = Candidates(
            case_ids=np.array([cid], np.int64),
            keys=c.key[None, :].astype(np.float32),
            sims=np.ones(1, np.float32),
            features=np.array([[1.0, c.reward, 0.0, np.log1p(c.visits)]], np.float32),
            mask=np.ones(1, bool),
        )
        one = rt.rec.q_view(one, [c.payload])
        return float(rt.learner.scores(c.key.astype(np.float32), one)[0])

    def get_case(self, case_id: str) -> CaseView | None:
        """A live case; value = min twin Q of the case in its own key state."""
        return self._view(self._runtime(), case_id)

    def _tombstone(self, sids: list[str]) -> None:
        with self._tomb_lock:
            self._tomb |= set(sids)
            self._store.save_blob(TOMBSTONES, json.dumps(sorted(self._tomb)).encode())

    def delete_case(self, case_id: str) -> bool:
        """Remove from bank, soft-delete in the log, tombstone (snapshot/registry copies)."""
        rt = self._runtime()
        with rt.lock:
            live = rt.remove([case_id]) > 0
        logged = self._store.delete_case(case_id)
        if live or logged:
            self._tombstone([case_id])
        return live or logged

    def list_cases(self, user_id: str) -> list[CaseView]:
        """Live cases owned by a user, oldest first."""
        rt = self._runtime()
        with rt.lock:
            sids = sorted(rt.by_user.get(user_id, set()))
        views = [v for v in (self._view(rt, s) for s in sids) if v is not None]
        return sorted(views, key=lambda v: (v.ts, v.case_id))

    def erase_user(self, user_id: str) -> int:
        """After the store's erasure: drop the user's cases (bank + tombstones), erase the store
        rows written meanwhile, recount popularity, forget their events in the live
        co-occurrence, force a snapshot. Callers run one erasure at a time (`ServingCore`)."""
        rt = self._runtime()
        with rt.lock:
            self._erased_at[user_id] = time.time()
            sids = sorted(rt.by_user.pop(user_id, set()))
            n = rt.remove(sids)
            rt.force_snapshot = True
        if sids:
            self._tombstone(sids)
        # a feedback case checked in before the store's erasure may have been logged after it;
        # from here on none is written (the erasure time is set), so this pass leaves nothing
        self._store.erase_user(user_id)
        rt.rebuild_popularity(self._store)  # leaf locks only: recommends are not held up
        rt.forget_user_events(user_id)
        return n


__all__ = ["CaseMemory"]

"""Online soft-Q learning from one piece of feedback (the `SoftQCore.apply_feedback` step).

`learn_from_feedback`: per-case credit (`assign_credit`) -> `Transition` (candidate snapshot
from the decision, next state = history + the acted item, its own Top-K) ->
`learner.observe` + `updates_per_feedback` x `learner.update()`; the chosen cases still in the
bank get a visit. Cases deleted since the decision are masked out of the snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from recsys.records import Action, Candidates, Transition, UserState
from recsys.rl.credit import assign_credit
from serving.core_state import DecisionBlob, Runtime
from serving.service import CoreEvent, DecisionSnapshot
from serving.settings import ServingSettings
from serving.store import Store

EncodeState = Callable[[str, Sequence[CoreEvent], Mapping[str, str], float, Runtime], UserState]
"""(user id, events, context, now, runtime) -> the user's state (`SoftQCore.encode_state`)."""


def learn_from_feedback(
    rt: Runtime,
    settings: ServingSettings,
    store: Store,
    encode_state: EncodeState,
    decision: DecisionSnapshot,
    snap: DecisionBlob,
    state: UserState,
    item_id: str,
    act: Action,
    reward: float,
) -> float | None:
    """Observe the credited transition of `decision` and update the learner online.

    Returns the last update's TD (or CE) loss, None when no chosen case is still live.
    """
    bank = rt.model.bank
    with rt.lock:
        rows = [rt.int_of.get(s, -1) for s in snap.sids]
        keys = np.stack([bank.get(r).key if r >= 0 else np.zeros(rt.dim, np.float32) for r in rows])
        payloads = [bank.get(r).payload if r >= 0 else {} for r in rows]
    mask = np.array([r >= 0 for r in rows], bool)
    keep = [k for k, j in enumerate(snap.chosen) if mask[j]]
    if not keep:
        return None
    cands = Candidates(
        case_ids=np.array(rows, np.int64),
        keys=keys.astype(np.float32),
        sims=np.array(snap.sims, np.float32),
        features=np.array(snap.feats, np.float32).reshape(len(rows), -1),
        mask=mask,
    )
    cands = rt.q_view(cands, payloads)
    history = store.recent_events(decision.user_id, settings.recent_events_limit)
    now = time.time()
    nxt = encode_state(
        decision.user_id, [*history, CoreEvent(item_id, act.value, now)], {}, now, rt
    )
    with rt.lock:
        next_cands = bank.search(nxt.vec, settings.top_k, now)
        next_payloads = [
            bank.get(int(i)).payload if ok else {}
            for i, ok in zip(next_cands.case_ids, next_cands.mask, strict=True)
        ]
    next_cands = rt.q_view(next_cands, next_payloads)
    chosen = np.array([snap.chosen[k] for k in keep], np.int64)
    credit = assign_credit(
        reward, [snap.case_items[k] for k in keep], [item_id], rt.model.config.credit
    )
    rt.model.learner.observe(
        Transition(
            state=state.vec,
            cands=cands,
            chosen=chosen,
            logp=np.array([snap.logp[k] for k in keep], np.float32),
            rewards=credit,
            next_state=nxt.vec,
            next_cands=next_cands,
            done=False,
        )
    )
    with rt.lock:
        for r in chosen:
            bank.update_stats(int(rows[int(r)]), visits=1)
    loss = None
    for _ in range(settings.updates_per_feedback):
        metrics = rt.model.learner.update()
        loss = metrics.get("losses/td", metrics.get("losses/ce", loss))
    return loss


__all__ = ["EncodeState", "learn_from_feedback"]

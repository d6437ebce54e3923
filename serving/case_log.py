"""The store's case log as the served bank sees it: the tombstones of deleted cases, a logged
case rebuilt as a bank `Case` (`log_case`), and cases that left the bank by age leaving the log
(`forget_cases`). `serving.runtime.build_runtime` restores the bank from a snapshot plus this
log; a reload and the change feed add logged cases the same way."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from recsys.rec.request import case_item_ids
from recsys.records import Case
from serving.store import CaseRecord, Store

if TYPE_CHECKING:
    from serving.runtime import Runtime

__all__ = ["TOMBSTONES", "forget_cases", "load_tombstones", "log_case"]

TOMBSTONES = "soft_q.tombstones"
"""Store blob: JSON list of deleted/erased case ids (they may live in a bank snapshot)."""


def forget_cases(store: Store, sids: list[str]) -> None:
    """Cases that left the bank by age leave the case log too (soft-deleted, not tombstoned:
    a bank snapshot that still holds them is trimmed again by the capacity at load)."""
    for sid in sids:
        store.delete_case(sid)


def load_tombstones(store: Store) -> set[str]:
    """Deleted case ids."""
    blob = store.load_blob(TOMBSTONES)
    return set(json.loads(blob)) if blob else set()


def log_case(rt: Runtime, rec: CaseRecord) -> Case:
    """A bank `Case` for a case-log record (re-keyed when its key does not fit the model)."""
    payload = {**rec.payload, "sid": rec.case_id, "user_id": rec.user_id}
    payload.setdefault("items", case_item_ids(rec.payload))
    key = np.frombuffer(rec.key, np.float32)
    if key.shape != (rt.dim,) or not np.any(key):
        title = " ".join(rt.items.titles_of(case_item_ids(payload))) or rec.case_id
        key = rt.case_encoder.keys(np.zeros((1, rt.dim), np.float32), [{"title": title}])[0]
    return Case(key=key.copy(), payload=payload, reward=rec.reward, ts=rec.ts, source="log")

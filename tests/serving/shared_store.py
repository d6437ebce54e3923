"""Assertions shared by the tests of several processes over one PostgreSQL store."""

from __future__ import annotations

import time

from serving.pg_store import PgStore


def assert_applied_once(store: PgStore, ids: set[int], timeout_s: float) -> None:
    """Every acknowledged feedback row is stored, then (within the timeout) flagged applied,
    and exactly one published version applied it."""
    assert ids <= {r.feedback_id for r in store.feedback()}, "acknowledged feedback lost"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(r.applied for r in store.feedback() if r.feedback_id in ids):
            break
        time.sleep(0.1)
    counts = [fid for v in store.versions_after(0) for fid in v.feedback_ids if fid in ids]
    assert sorted(counts) == sorted(ids), "each acknowledged row applied exactly once"

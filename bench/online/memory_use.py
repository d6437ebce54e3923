"""How much a served run used its case memory, read back from the service's own decision log.

Each decision of the items scorer stores its item pool with the evidence features Q saw
(`serving.decision_blob.DecisionBlob.feats`, columns `recsys.rec.item_features.ITEM_FEATURES`). An
item has case support when at least one retrieved case proposed it (`case_log_count` > 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recsys.rec.item_features import ITEM_FEATURES

_COUNT = ITEM_FEATURES.index("case_log_count")


def case_support(db: Path, last_share: float = 0.2) -> dict[str, float | None]:
    """Share of pool items and of shown items with case support, over all decisions and over
    the last `last_share` of them (None: no items-scorer decision). Reads `db` read-only."""
    from serving.decision_blob import DecisionBlob
    from serving.store import read_logs

    pool: list[float] = []
    shown: list[float] = []
    for d in read_logs(db).decisions:
        blob = DecisionBlob.decode(d.candidates)
        if blob.kind != "items" or not blob.feats:
            continue
        feats = np.asarray(blob.feats, np.float64)
        if feats.ndim != 2 or feats.shape[1] != len(ITEM_FEATURES):
            continue
        has = feats[:, _COUNT] > 0
        pool.append(float(has.mean()))
        rows = [r for r in blob.chosen if 0 <= r < len(has)]
        shown.append(float(has[rows].mean()) if rows else 0.0)
    if not pool:
        return {"pool": None, "shown": None, "pool_last": None, "shown_last": None}
    tail = max(1, round(len(pool) * last_share))
    return {
        "pool": float(np.mean(pool)),
        "shown": float(np.mean(shown)),
        "pool_last": float(np.mean(pool[-tail:])),
        "shown_last": float(np.mean(shown[-tail:])),
    }


__all__ = ["case_support"]

"""Credit assignment when several cases were shown to the LLM for one recommendation.

Rule "attributed" (default): a chosen case whose contributed items include an item the user
acted on gets the full reward r; every other chosen case gets beta * r. If no chosen case can
be attributed (the acted item came from elsewhere, e.g. retrieval neighbours), all chosen cases
get beta * r. Rule "equal" (the ablation): every chosen case gets the full r, i.e. the slate
reward is credited to each case as if it alone had caused it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from recsys.config import CreditConfig

__all__ = ["assign_credit"]


def assign_credit(
    reward: float,
    case_items: Sequence[Collection[str]],
    acted_items: Collection[str],
    cfg: CreditConfig,
) -> np.ndarray:
    """(m,) per-case rewards for the m chosen cases (see the module docstring)."""
    m = len(case_items)
    if cfg.rule == "equal":
        return np.full(m, reward, np.float32)
    if cfg.rule != "attributed":
        raise ValueError(f"unknown credit rule {cfg.rule!r}")
    acted = set(acted_items)
    hit = np.array([bool(acted & set(items)) for items in case_items], bool)
    return np.where(hit, reward, cfg.beta * reward).astype(np.float32)

"""Rewards from user responses: configurable action weights plus an optional dwell term."""

from __future__ import annotations

from collections.abc import Iterable

from recsys.config import RewardConfig
from recsys.records import Action, Feedback

__all__ = ["action_reward", "feedback_reward", "list_reward"]


def action_reward(
    action: Action | None, cfg: RewardConfig, dwell_seconds: float | None = None
) -> float:
    """Weight of one action (0 for no response) + dwell_weight * capped dwell minutes."""
    r = 0.0 if action is None else float(getattr(cfg, Action(action).value))
    if dwell_seconds is not None and cfg.dwell_weight:
        r += cfg.dwell_weight * min(max(dwell_seconds, 0.0), cfg.dwell_cap_seconds) / 60.0
    return r


def feedback_reward(fb: Feedback, cfg: RewardConfig) -> float:
    """Reward of one Feedback record."""
    return action_reward(fb.action, cfg, fb.dwell_seconds)


def list_reward(feedback: Iterable[Feedback], cfg: RewardConfig) -> float:
    """Reward of a whole list: max (default) or sum of the per-feedback rewards; 0 if none."""
    rs = [feedback_reward(f, cfg) for f in feedback]
    if not rs:
        return 0.0
    return max(rs) if cfg.aggregate == "max" else sum(rs)

"""User state s: profile + recent action sequence -> vector and readable summary.

Fixed part (`StateEncoder.encode`): action-type-aware, time-decayed pooling of item vectors,

    w_i = action_weight[a_i] * 0.5 ** ((now - ts_i) / half_life),
    s = normalise(sum_i w_i v_i / sum_i w_i + profile_weight * profile),

so the state lives in the same space as item/case keys. Learnable part (`AttentionPooling`):
an nn.Module that pools the same sequence with action embeddings and an age feature, for a
learner that wants to train the state representation end to end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from recsys.config import StateConfig
from recsys.records import Action, Interaction, UserState

__all__ = ["ACTION_INDEX", "AttentionPooling", "StateEncoder", "summarize_events"]

ACTION_INDEX: dict[Action, int] = {a: i for i, a in enumerate(Action)}
"""Action -> embedding row (0 click, 1 collect, 2 cart, 3 alipay)."""


def _ago(seconds: float) -> str:
    if seconds < 3600:
        return f"{max(0, int(seconds // 60))}m ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h ago"
    return f"{int(seconds // 86400)}d ago"


def summarize_events(
    user_id: str, events: Sequence[Interaction], titles: Sequence[str], now: float, limit: int = 8
) -> str:
    """A readable summary, newest first: `User u1 recent actions: cart 「title」 (2h ago); ...`."""
    if not events:
        return f"User {user_id} has no recent actions."
    parts = [
        f"{e.action.value} 「{t}」 ({_ago(now - e.ts)})"
        for e, t in list(zip(events, titles, strict=True))[:limit]
    ]
    return f"User {user_id} recent actions: " + "; ".join(parts)


class StateEncoder:
    """Builds `UserState` from a user's recent events and item vectors (fixed pooling).

    item_vectors: callable mapping item ids (n,) -> (n, d) float32 vectors.
    item_titles: callable mapping item ids -> titles for the text summary.
    """

    def __init__(
        self,
        cfg: StateConfig,
        item_vectors: Callable[[Sequence[str]], np.ndarray],
        item_titles: Callable[[Sequence[str]], Sequence[str]],
        dim: int,
    ) -> None:
        self.cfg = cfg
        self._item_vectors = item_vectors
        self._item_titles = item_titles
        self.dim = dim

    def action_weight(self, action: Action) -> float:
        """Pooling weight of one action type."""
        return float(getattr(self.cfg, action.value))

    def weights(self, events: Sequence[Interaction], now: float) -> np.ndarray:
        """(n,) pooling weights: action weight times half-life time decay."""
        half_life = self.cfg.half_life_hours * 3600.0
        return np.array(
            [
                self.action_weight(e.action) * 0.5 ** (max(0.0, now - e.ts) / half_life)
                for e in events
            ],
            np.float64,
        )

    def encode(
        self,
        user_id: str,
        events: Sequence[Interaction],
        now: float | None = None,
        profile: np.ndarray | None = None,
    ) -> UserState:
        """State from the user's events (any order; only those before `now` are used)."""
        now = time.time() if now is None else now
        recent = sorted((e for e in events if e.ts <= now), key=lambda e: e.ts, reverse=True)
        recent = recent[: self.cfg.max_events]
        vec = np.zeros(self.dim, np.float64)
        if recent:
            ids = [e.item_id for e in recent]
            v = np.asarray(self._item_vectors(ids), np.float64)
            assert v.shape == (len(ids), self.dim), f"{v.shape=} {self.dim=}"
            w = self.weights(recent, now)
            vec = (w[:, None] * v).sum(0) / max(w.sum(), 1e-12)
        if profile is not None:
            assert profile.shape == (self.dim,), f"{profile.shape=} {self.dim=}"
            vec = vec + self.cfg.profile_weight * profile
        norm = float(np.linalg.norm(vec))
        vec = vec / norm if norm > 0 else vec
        shown = recent[: self.cfg.summary_events]
        titles = list(self._item_titles([e.item_id for e in shown])) if shown else []
        text = summarize_events(user_id, shown, titles, now, self.cfg.summary_events)
        return UserState(
            user_id=user_id,
            vec=vec.astype(np.float32),
            text=text,
            ts=now,
            recent_item_ids=tuple(e.item_id for e in recent),
        )


class AttentionPooling(nn.Module):
    """Learnable pooling over an action sequence.

    forward(item_vecs (B, L, d), actions (B, L) long, age_hours (B, L), mask (B, L) bool)
    -> (B, d) L2-normalised. Rows with no valid event give zeros.
    """

    def __init__(self, dim: int, num_actions: int = len(Action), hidden: int = 64) -> None:
        super().__init__()
        self.action_emb = nn.Embedding(num_actions, dim)
        self.score = nn.Sequential(nn.Linear(dim + 1, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.out = nn.Linear(dim, dim)
        nn.init.zeros_(self.action_emb.weight)

    def forward(
        self,
        item_vecs: torch.Tensor,
        actions: torch.Tensor,
        age_hours: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        b, length, _ = item_vecs.shape
        assert actions.shape == (b, length), f"{actions.shape=} {item_vecs.shape=}"
        assert age_hours.shape == mask.shape == (b, length), f"{age_hours.shape=} {mask.shape=}"
        x = item_vecs + self.action_emb(actions)
        logits = self.score(torch.cat([x, torch.log1p(age_hours.clamp(min=0))[..., None]], -1))
        logits = logits.squeeze(-1).masked_fill(~mask, float("-inf"))
        attn = torch.softmax(logits, -1).nan_to_num(0.0)
        pooled = self.out((attn[..., None] * x).sum(1))
        return nn.functional.normalize(pooled, dim=-1) * mask.any(-1, keepdim=True)

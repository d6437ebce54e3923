"""Case keys for the case bank, generic over the payload.

A case key mixes the state the episode happened in with the content of the payload:

    key = normalise(state_weight * state_vec + (1 - state_weight) * text_vec(payload_text)),

so retrieving with the current state finds episodes from similar states about relevant content.
`PayloadCaseEncoder` takes two small functions (payload -> text, payload -> dedup key), so the
recommender's (state, item, outcome) cases and the agent's (task, plan, outcome) cases go through
the same code; `RecCaseEncoder` is the recommender's instance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from recsys.memory.text_encoder import TextEncoder
from recsys.records import Action, Case, UserState

__all__ = ["SUMMARY_CHARS", "PayloadCaseEncoder", "RecCaseEncoder", "case_summary", "rec_payload"]

Payload = dict[str, Any]

SUMMARY_CHARS = 200
"""A case keeps this much of its state's text summary: what the LLM prompt shows of a case
(`Recommender.prompt`). A served state's summary lists the user's recent events (1-2 KB of
text); kept whole, every online case held ~1.5 KB more than a trained one."""


def case_summary(text: str) -> str:
    """The part of a state summary a case keeps (`SUMMARY_CHARS`)."""
    return text[:SUMMARY_CHARS]


class PayloadCaseEncoder:
    """Encodes any payload into a case key; the payload schema is known only to the two callables.

    payload_text: payload -> text embedded with the text encoder.
    payload_key: payload -> dedup key for near-duplicate merging ("" = never merge).
    """

    def __init__(
        self,
        text_encoder: TextEncoder,
        payload_text: Callable[[Payload], str],
        payload_key: Callable[[Payload], str] = lambda p: "",
        state_weight: float = 0.5,
    ) -> None:
        assert 0.0 <= state_weight <= 1.0, f"{state_weight=}"
        self.text_encoder = text_encoder
        self.payload_text = payload_text
        self.payload_key = payload_key
        self.state_weight = state_weight

    @property
    def dim(self) -> int:
        """Key width d (the text encoder's)."""
        return self.text_encoder.dim

    def keys(self, state_vecs: np.ndarray, payloads: list[Payload]) -> np.ndarray:
        """(n, d) state vectors + n payloads -> (n, d) L2-normalised keys."""
        assert state_vecs.shape == (len(payloads), self.dim), f"{state_vecs.shape=} {self.dim=}"
        text = self.text_encoder.encode([self.payload_text(p) for p in payloads])
        w = self.state_weight
        k = w * state_vecs.astype(np.float32) + (1.0 - w) * text
        norm = np.linalg.norm(k, axis=1, keepdims=True)
        empty = norm[:, 0] < 1e-9  # no state (a cold user) with state_weight 1: key by content
        if np.any(empty):
            k[empty] = text[empty]
            norm[empty] = np.linalg.norm(text[empty], axis=1, keepdims=True)
        return (k / np.maximum(norm, 1e-12)).astype(np.float32)

    def make_cases(
        self,
        state_vecs: np.ndarray,
        payloads: list[Payload],
        rewards: list[float],
        ts: list[float],
        source: str = "",
    ) -> list[Case]:
        """Unwritten `Case`s (case_id -1) for a batch of episodes."""
        assert len(payloads) == len(rewards) == len(ts), "payloads, rewards, ts lengths differ"
        keys = self.keys(state_vecs, payloads)
        return [
            Case(
                key=keys[i],
                payload=payloads[i],
                reward=float(rewards[i]),
                ts=float(ts[i]),
                source=source,
                payload_key=self.payload_key(payloads[i]),
            )
            for i in range(len(payloads))
        ]


def rec_payload(state: UserState, item_id: str, title: str, action: Action | None) -> Payload:
    """The recommender's case payload: what the user did on which item, from which state."""
    return {
        "item_id": item_id,
        "title": title,
        "action": action.value if action is not None else None,
        "user_summary": case_summary(state.text),
    }


class RecCaseEncoder(PayloadCaseEncoder):
    """(state, item, outcome) cases: key text = item title, dedup key = item_id + action."""

    def __init__(self, text_encoder: TextEncoder, state_weight: float = 0.5) -> None:
        super().__init__(
            text_encoder,
            payload_text=lambda p: str(p.get("title", "")),
            payload_key=lambda p: f"{p.get('item_id')}|{p.get('action')}",
            state_weight=state_weight,
        )

    def make_case(
        self,
        state: UserState,
        item_id: str,
        title: str,
        action: Action | None,
        reward: float,
        ts: float,
        source: str = "",
    ) -> Case:
        """One recommendation case."""
        payload = rec_payload(state, item_id, title, action)
        return self.make_cases(state.vec[None, :], [payload], [reward], [ts], source)[0]

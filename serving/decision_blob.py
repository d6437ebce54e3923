"""`DecisionBlob`: what a served decision remembers for its transition, stored as the
decision's opaque `candidates` blob (`serving.service.DecisionSnapshot.candidates`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["DecisionBlob"]


@dataclass(frozen=True)
class DecisionBlob:
    """What a decision remembers for its transition (stored as the `candidates` blob)."""

    sids: list[str]
    """Candidate case ids (K)."""
    sims: list[float]
    """Their cosine similarity to the state (K)."""
    feats: list[list[float]]
    """Their features at decision time (K, F)."""
    chosen: list[int]
    """Rows of the chosen cases."""
    logp: list[float]
    """Behaviour log-probabilities of the chosen cases."""
    case_items: list[list[str]]
    """Items of each chosen case (credit assignment)."""
    text: str
    """Readable state summary."""
    kind: str = "cases"
    """What the policy chose from: "cases" (`sids` are case ids) or "items" (the items
    scorer: `sids` are item ids, `feats` their evidence features)."""
    pscores: list[float | None] | None = None
    """Per shown item, in order: P(it at that position | state) under the policy that drew the
    list (`RecResult.propensities`); None at a position without one (why: `pscore_gaps`), and
    None overall in decisions stored before propensities were logged."""
    pscore_gaps: list[str] | None = None
    """Per shown item: why its pscore is None (`recsys.rec.request.PSCORE_*`), "" if it has one."""
    wall_ts: float | None = None
    """Wall-clock unix seconds when the decision was served (the decision's own time, its
    `DecisionSnapshot.ts`, is the request's `at` when one was given). The feedback time is the
    decision time plus the wall seconds since (`serving.outcomes.feedback_time`); None in
    decisions stored before it was logged (then the decision time is the wall time)."""

    def encode(self) -> bytes:
        """Compact JSON."""
        return json.dumps(self.__dict__, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, blob: bytes) -> DecisionBlob:
        """Inverse of `encode` (an unreadable blob gives an empty decision)."""
        try:
            return cls(**json.loads(blob))
        except (ValueError, TypeError):
            return cls([], [], [], [], [], [], "")

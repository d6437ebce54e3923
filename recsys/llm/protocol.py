"""The ranking interface every frozen-LLM backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["FrozenLLM", "RankRequest"]


@dataclass(frozen=True)
class RankRequest:
    """One ranking request: a prompt and the candidate texts to score after it."""

    prompt: str
    """The shared prompt prefix (state summary, cases, instruction)."""
    candidates: tuple[str, ...]
    """Candidate item texts, scored as continuations of the prompt."""


@runtime_checkable
class FrozenLLM(Protocol):
    """A frozen language model that ranks candidates by likelihood and explains picks."""

    @property
    def model_id(self) -> str:
        """A stable identifier of the model (used in cache keys and logs)."""
        ...

    def rank(self, prompt: str, candidates: Sequence[str]) -> np.ndarray:
        """Scores (n,) float64, higher = better: length-normalised mean log-prob per candidate."""
        ...

    def rank_batch(self, requests: Sequence[RankRequest]) -> list[np.ndarray]:
        """`rank` for several requests at once (offline replay); one score array per request."""
        ...

    def explain(self, prompt: str, item: str) -> str:
        """A short natural-language reason for recommending `item` after `prompt`."""
        ...

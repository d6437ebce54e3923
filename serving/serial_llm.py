"""The packaged frozen LLM behind the service: one request at a time."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

__all__ = ["SerialLLM"]


class SerialLLM:
    """The packaged frozen LLM, one request at a time (it already uses its CPU threads)."""

    def __init__(self, name: str) -> None:
        from recsys.llm.ranker import LLMRanker

        self.ranker = LLMRanker.from_name(name)
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        """Prompt length in tokens."""
        return int(self.ranker.count_tokens(text))

    def rank(self, prompt: str, candidates: Sequence[str]) -> np.ndarray:
        """(n,) calibrated log-likelihood of each candidate after the prompt."""
        with self._lock:
            return np.asarray(self.ranker.rank(prompt, list(candidates)))

    def explain(self, prompt: str, item: str) -> str:
        """A one-line generated reason for recommending `item`."""
        with self._lock:
            return str(self.ranker.explain(prompt, item))

"""Optional frozen-LLM ranking of the candidate items (`MEMENTO_LLM`).

The prompt shows the user's recent items and the chosen cases (positive when their reward was
positive) as in-context examples; every candidate title is scored by its mean token
log-likelihood after the prompt (`recsys.llm.LLMRanker.rank`, cached prefix). One lock: the
model runs one request at a time (it already uses the CPU threads it was given).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from recsys.llm import CaseExample, HistoryItem, LLMRanker, PromptBuilder, PromptConfig
from recsys.llm.prompts import detect_lang


class LLMReranker:
    """Loads the packaged model once; `rank` and `explain` are serialised."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ranker = LLMRanker.from_name(name)
        self._builders = {
            lang: PromptBuilder(PromptConfig(lang=lang), self.ranker.count_tokens)
            for lang in ("zh", "en")
        }
        self._lock = threading.Lock()

    def prompt(
        self,
        history: Sequence[tuple[str, str]],
        cases: Sequence[tuple[str, str, bool]],
        candidates: Sequence[str],
    ) -> str:
        """Prompt text: history (title, action) oldest first, cases (state, title, positive)."""
        lang = detect_lang(" ".join([*candidates, *(t for t, _ in history)]))
        if self.name.startswith("smollm2"):
            lang = "en"  # English-only model
        built = self._builders[lang].build(
            [HistoryItem(t, a) for t, a in history],
            [CaseExample(s, t, p) for s, t, p in cases],
            candidates,
        )
        return built.text

    def rank(self, prompt: str, candidates: Sequence[str]) -> np.ndarray:
        """(n,) mean log-likelihood of each candidate after the prompt."""
        texts = [c if c.strip() else "?" for c in candidates]
        with self._lock:
            return self.ranker.rank(prompt, texts)

    def explain(self, prompt: str, item: str) -> str:
        """A one-line generated reason for recommending `item`."""
        with self._lock:
            return self.ranker.explain(prompt, item)

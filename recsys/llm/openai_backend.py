"""Rank with an OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp server, Ollama, ...).

Scoring, best first:
1. "echo": `completions.create(prompt=[prompt + c for c in candidates], echo=True,
   logprobs=0, max_tokens=0)`; the score of a candidate is the mean log-prob of the echoed
   tokens whose text offset lies inside the candidate (same definition as the local ranker).
2. "listwise" fallback (servers without prompt logprobs, e.g. chat-only APIs): one chat call
   lists the numbered candidates and asks for the numbers best first; score = -(position in
   the answer), candidates the answer omits get scores below all mentioned ones, in their
   original order. Coarser and position-biased on small models: use echo where possible.
`mode="auto"` tries echo and falls back to listwise when the server rejects it or returns no
logprobs. Transient errors (timeouts, connection errors, 429, 5xx) are retried with
exponential backoff; everything else raises `LLMBackendError` with the server's message.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import openai

from recsys.llm.errors import LLMBackendError
from recsys.llm.prompts import detect_lang, explanation_prompt
from recsys.llm.protocol import RankRequest

__all__ = ["OpenAIConfig", "OpenAIRanker"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_RETRYABLE = (
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.RateLimitError,
    openai.InternalServerError,
)


@dataclass(frozen=True)
class OpenAIConfig:
    """Settings of the OpenAI-compatible backend."""

    base_url: str
    """Server root including the version path, e.g. http://127.0.0.1:8000/v1."""
    model: str
    """Model name sent with each request."""
    api_key: str = "EMPTY"
    """API key (local servers usually ignore it)."""
    mode: str = "auto"
    """"echo" (prompt logprobs), "listwise" (chat ordering) or "auto" (echo, else listwise)."""
    timeout_s: float = 30.0
    """Per-request timeout in seconds."""
    max_retries: int = 3
    """Retries of a transient failure (so at most max_retries + 1 attempts)."""
    backoff_s: float = 0.5
    """First retry delay; doubles after each failed attempt."""
    explain_max_tokens: int = 64
    """Token budget of an explanation."""


class OpenAIRanker:
    """`FrozenLLM` over an OpenAI-compatible HTTP API."""

    def __init__(self, config: OpenAIConfig, client: Any | None = None) -> None:
        if config.mode not in ("auto", "echo", "listwise"):
            raise ValueError(f"unknown mode {config.mode!r}")
        self.config = config
        self.client = client or openai.OpenAI(
            base_url=config.base_url,
            api_key=config.api_key,
            timeout=config.timeout_s,
            max_retries=0,  # retries are ours (logged, with our backoff)
        )
        self._echo_works: bool | None = None if config.mode == "auto" else config.mode == "echo"
        self.attempts = 0

    @property
    def model_id(self) -> str:
        """`openai:<base_url>:<model>`."""
        return f"openai:{self.config.base_url}:{self.config.model}"

    def _call(self, fn: Callable[[], T]) -> T:
        """Run one API call with retries and exponential backoff on transient errors."""
        delay = self.config.backoff_s
        for attempt in range(self.config.max_retries + 1):
            self.attempts += 1
            try:
                return fn()
            except _RETRYABLE as exc:
                if attempt == self.config.max_retries:
                    raise LLMBackendError(
                        f"{self.config.base_url} failed after {attempt + 1} attempts: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                log.warning(
                    "transient error from %s (%s); retry in %.2fs",
                    self.config.base_url,
                    type(exc).__name__,
                    delay,
                )
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _rank_echo(self, prompt: str, candidates: Sequence[str]) -> np.ndarray | None:
        """Scores from echoed prompt logprobs, or None when the server gives none."""
        response = self._call(
            lambda: self.client.completions.create(
                model=self.config.model,
                prompt=[prompt + c for c in candidates],
                echo=True,
                logprobs=0,
                max_tokens=0,
                temperature=0.0,
            )
        )
        choices = sorted(response.choices, key=lambda ch: ch.index)
        if len(choices) != len(candidates):
            raise LLMBackendError(f"asked {len(candidates)} completions, got {len(choices)}")
        scores = []
        for choice in choices:
            lp = choice.logprobs
            if lp is None or not lp.token_logprobs or lp.text_offset is None:
                return None
            picked = [
                v
                for v, off in zip(lp.token_logprobs, lp.text_offset, strict=True)
                if off >= len(prompt) and v is not None
            ]
            if not picked:
                return None
            scores.append(float(np.mean(picked)))
        return np.array(scores, dtype=np.float64)

    def _rank_listwise(self, prompt: str, candidates: Sequence[str]) -> np.ndarray:
        """Scores from one chat answer that orders the numbered candidates."""
        zh = detect_lang(prompt) == "zh"
        numbered = "\n".join(f"{i + 1}. {c}" for i, c in enumerate(candidates))
        ask = (
            "按推荐优先级从高到低输出候选编号，用逗号分隔，不要输出其他内容。"
            if zh
            else "List the candidate numbers best first, comma-separated, nothing else."
        )
        response = self._call(
            lambda: self.client.chat.completions.create(
                model=self.config.model,
                messages=[{"role": "user", "content": f"{prompt}\n{numbered}\n{ask}"}],
                temperature=0.0,
                max_tokens=8 * len(candidates) + 16,
            )
        )
        text = response.choices[0].message.content or ""
        order: list[int] = []
        for token in re.findall(r"\d+", text):
            k = int(token) - 1
            if 0 <= k < len(candidates) and k not in order:
                order.append(k)
        n = len(candidates)
        scores = np.empty(n, dtype=np.float64)
        for pos, k in enumerate(order):
            scores[k] = -float(pos)
        missing = [k for k in range(n) if k not in order]
        for extra, k in enumerate(missing):
            scores[k] = -float(len(order) + extra)
        return scores

    def rank(self, prompt: str, candidates: Sequence[str]) -> np.ndarray:
        """Scores (n,) float64, higher = better (see module docstring for both modes)."""
        if not candidates:
            return np.zeros(0)
        if self._echo_works is not False:
            try:
                scores = self._rank_echo(prompt, candidates)
            except (
                openai.BadRequestError,
                openai.NotFoundError,
                openai.UnprocessableEntityError,
            ) as exc:
                if self.config.mode == "echo":
                    raise LLMBackendError(f"server rejected echo scoring: {exc}") from exc
                scores = None
            except openai.APIStatusError as exc:
                raise LLMBackendError(f"{self.config.base_url}: {exc}") from exc
            if scores is not None:
                self._echo_works = True
                return scores
            if self.config.mode == "echo":
                raise LLMBackendError("server returned no prompt logprobs for echo scoring")
            log.info("no prompt logprobs from %s: using listwise ranking", self.config.base_url)
            self._echo_works = False
        try:
            return self._rank_listwise(prompt, candidates)
        except openai.APIStatusError as exc:
            raise LLMBackendError(f"{self.config.base_url}: {exc}") from exc

    def rank_batch(self, requests: Sequence[RankRequest]) -> list[np.ndarray]:
        """`rank` for each request in turn."""
        return [self.rank(r.prompt, r.candidates) for r in requests]

    def explain(self, prompt: str, item: str) -> str:
        """A one-line reason from a chat completion."""
        try:
            response = self._call(
                lambda: self.client.chat.completions.create(
                    model=self.config.model,
                    messages=[{"role": "user", "content": explanation_prompt(prompt, item)}],
                    temperature=0.0,
                    max_tokens=self.config.explain_max_tokens,
                )
            )
        except openai.APIStatusError as exc:
            raise LLMBackendError(f"{self.config.base_url}: {exc}") from exc
        text = (response.choices[0].message.content or "").strip()
        return text.splitlines()[0].strip() if text else ""

"""Frozen LLM: offline model provider, likelihood ranking with a cached prefix, prompts.

The only package that imports `transformers` (through `recsys.llm.hf`). The OpenAI-compatible
ranking backend lives in `recsys.llm.openai_backend` and the chat-with-tools clients in
`recsys.llm.chat` (both imported on demand).
"""

from recsys.llm.errors import (
    ChecksumMismatch,
    CorruptModelCache,
    LLMBackendError,
    LLMError,
    ModelNotAvailable,
    ModelPackageMissing,
)
from recsys.llm.prompts import (
    BuiltPrompt,
    CaseExample,
    HistoryItem,
    PromptBuilder,
    PromptConfig,
    explanation_prompt,
)
from recsys.llm.protocol import FrozenLLM, RankRequest
from recsys.llm.provider import DEFAULT_MODEL, LoadedModel, default_cache_dir, load_model
from recsys.llm.ranker import LLMRanker, RankerConfig

__all__ = [
    "DEFAULT_MODEL",
    "BuiltPrompt",
    "CaseExample",
    "ChecksumMismatch",
    "CorruptModelCache",
    "FrozenLLM",
    "HistoryItem",
    "LLMBackendError",
    "LLMError",
    "LLMRanker",
    "LoadedModel",
    "ModelNotAvailable",
    "ModelPackageMissing",
    "PromptBuilder",
    "PromptConfig",
    "RankRequest",
    "RankerConfig",
    "default_cache_dir",
    "explanation_prompt",
    "load_model",
]

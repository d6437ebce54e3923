"""Named errors of the frozen-LLM layer; each message names the fix."""

from __future__ import annotations

__all__ = [
    "ChecksumMismatch",
    "CorruptModelCache",
    "LLMBackendError",
    "LLMError",
    "ModelNotAvailable",
    "ModelPackageMissing",
]


class LLMError(Exception):
    """Base class of every frozen-LLM error."""


class ModelPackageMissing(LLMError):
    """A pip package that ships the model weights is not installed."""


class ChecksumMismatch(LLMError):
    """The assembled model file does not have the pinned sha256."""


class CorruptModelCache(LLMError):
    """The converted model folder in the cache is incomplete or unreadable."""


class ModelNotAvailable(LLMError):
    """A model path or hub id cannot be resolved (e.g. offline and not cached locally)."""


class LLMBackendError(LLMError):
    """A remote (OpenAI-compatible) backend failed after retries or answered unusably."""

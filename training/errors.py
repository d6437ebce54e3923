"""Named exceptions of the training package (one module, one place to find them).

Each keeps the built-in base it had before it moved here, so callers that catch
``ValueError``/``RuntimeError``/``LookupError`` still do.
"""

from __future__ import annotations

__all__ = [
    "EmptyEvaluationError",
    "ModelNotFoundError",
    "NotFittedError",
    "PeerRunError",
    "TrainingError",
]


class TrainingError(Exception):
    """Base class of every training-package error."""


class EmptyEvaluationError(TrainingError, ValueError):
    """A metric was asked for over zero decisions."""


class NotFittedError(TrainingError, RuntimeError):
    """A baseline's ``rank`` was called before ``fit``."""


class PeerRunError(TrainingError, RuntimeError):
    """The peer (RecBole) environment cannot be built or a RecBole job failed."""


class ModelNotFoundError(TrainingError, LookupError):
    """A registered model name/alias does not exist in the registry."""

"""Named exceptions of the training package (one module, one place to find them).

Each keeps the built-in base it had before it moved here, so callers that catch
``ValueError`` still do.
"""

from __future__ import annotations

__all__ = ["EmptyEvaluationError", "TrainingError"]


class TrainingError(Exception):
    """Base class of every training-package error."""


class EmptyEvaluationError(TrainingError, ValueError):
    """A metric was asked for over zero decisions."""

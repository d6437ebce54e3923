"""Named exceptions of the training package (one module, one place to find them).

Each keeps the built-in base it had before it moved here, so callers that catch
``ValueError``/``RuntimeError``/``LookupError`` still do.
"""

from __future__ import annotations

__all__ = [
    "EmptyEvaluationError",
    "ModelNotFoundError",
    "NotFittedError",
    "OpeRunError",
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


class OpeRunError(TrainingError, RuntimeError):
    """The off-policy evaluation (OBP) environment cannot be built or an OBP job failed; the
    message carries the tail of the job's output."""


class ModelNotFoundError(TrainingError, LookupError):
    """A registered model name/alias does not exist in the registry."""


class ServiceUnavailableError(TrainingError, RuntimeError):
    """The online benchmark's service did not start, or stopped answering."""


class UnknownSimulatorError(TrainingError, ValueError):
    """An online benchmark was asked for a simulator or method it does not know."""

"""Named exceptions of the experiments package (one module, one place to find them).

Each keeps the built-in base it had before it moved here, so callers that catch
``ValueError``/``RuntimeError`` still do.
"""

from __future__ import annotations

__all__ = [
    "BenchError",
    "NotFittedError",
    "OpeRunError",
    "PeerRunError",
    "ServiceUnavailableError",
    "UnknownSimulatorError",
]


class BenchError(Exception):
    """Base class of every experiments-package error."""


class NotFittedError(BenchError, RuntimeError):
    """A baseline's ``rank`` was called before ``fit``."""


class PeerRunError(BenchError, RuntimeError):
    """The peer (RecBole) environment cannot be built or a RecBole job failed."""


class OpeRunError(BenchError, RuntimeError):
    """The off-policy evaluation (OBP) environment cannot be built or an OBP job failed; the
    message carries the tail of the job's output."""


class ServiceUnavailableError(BenchError, RuntimeError):
    """The online benchmark's service did not start, or stopped answering."""


class UnknownSimulatorError(BenchError, ValueError):
    """An online benchmark was asked for a simulator or method it does not know."""

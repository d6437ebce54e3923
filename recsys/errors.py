"""The core's named exceptions (one module for the package; `recsys.llm.errors` holds the LLM's).

Adapters map them to their own answers: serving turns them into HTTP codes in one table
(`serving.errors.ERROR_STATUS`), the CLIs into readable messages.
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "CaseBankError",
    "CaseNotFoundError",
    "NoCandidatesError",
    "RecsysError",
    "UnknownScorerError",
]


class RecsysError(Exception):
    """Base of every error the core raises on purpose."""


class NoCandidatesError(RecsysError, ValueError):
    """A policy was asked to choose among zero valid candidate cases."""


class CaseBankError(RecsysError, RuntimeError):
    """The case bank cannot do what was asked (bad dimension, untrained IVF, corrupt files)."""


class CaseNotFoundError(RecsysError, KeyError):
    """No case with this id."""


class BundleError(RecsysError):
    """A model bundle directory is missing, incomplete, or of an unknown format version."""


class UnknownScorerError(RecsysError, ValueError):
    """`RecommendConfig.scorer` names no registered scorer (`recsys.rec.scorers`)."""

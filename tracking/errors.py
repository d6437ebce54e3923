"""Named exceptions of the tracking package."""

from __future__ import annotations

__all__ = ["ModelNotFoundError", "TrackingError"]


class TrackingError(Exception):
    """Base class of every tracking-package error."""


class ModelNotFoundError(TrackingError, LookupError):
    """A registered model name/alias does not exist in the registry."""

"""Named exceptions of the data layer."""

from __future__ import annotations


class DataError(Exception):
    """Base class of every data-layer error."""


class InputLayoutError(DataError):
    """The input folder does not hold the files an adapter expects."""


class TooManyRejectsError(DataError):
    """More rows were rejected than the configured fraction allows."""

    def __init__(self, fraction: float, limit: float, rejected: dict[str, int]) -> None:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(rejected.items()) if v)
        super().__init__(
            f"rejected fraction {fraction:.4%} exceeds the limit {limit:.4%} ({reasons})"
        )
        self.fraction = fraction
        self.limit = limit
        self.rejected = rejected


class FetchError(DataError):
    """A run-time download (e.g. the RecBole wheel holding MovieLens) failed."""

"""The one command runner of the pinned side environments (RecBole peers, OBP estimators)."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence

log = logging.getLogger(__name__)

__all__ = ["run_checked"]


def run_checked(cmd: Sequence[str], what: str, error: type[Exception]) -> None:
    """Run `cmd`; raise `error` naming the step `what` with the output's tail on failure."""
    log.info("%s: %s", what, " ".join(cmd))
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    except OSError as exc:  # e.g. the interpreter does not exist
        raise error(f"{what} failed: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise error(f"{what} failed (exit {proc.returncode}):\n{tail}")

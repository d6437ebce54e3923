"""Where shared (read-only) data and the run-time download cache live."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The repository root (the folder that holds `data/`, `recsys/`, ...)."""


def shared_data_dir() -> Path:
    """`$MEMENTO_SHARED_DATA` if set, else `../shared/data` beside the repository."""
    env = os.environ.get("MEMENTO_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def tmall_sample_dir() -> Path:
    """The public Tianchi Rec-Tmall sample files inside the shared data folder."""
    return shared_data_dir() / "tmall-sample"


def cache_dir() -> Path:
    """Download cache: `$MEMENTO_CACHE_DIR` if set, else `<repo>/.cache` (git-ignored)."""
    env = os.environ.get("MEMENTO_CACHE_DIR")
    return Path(env) if env else REPO_ROOT / ".cache"

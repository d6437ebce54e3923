"""Shared fixtures: where the read-only shared data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """`MEMENTO_SHARED_DATA` if set, else `../shared/data` beside the repository."""
    env = os.environ.get("MEMENTO_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; on CI its absence is a failure, elsewhere a skip."""
    path = shared_data_dir()
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"shared data folder missing on CI: {path}")
        pytest.skip(f"shared data folder not found: {path}")
    return path


@pytest.fixture(scope="session")
def tmall_sample_dir(shared_data: Path) -> Path:
    """The real Tianchi Rec-Tmall sample files."""
    return shared_data / "tmall-sample"

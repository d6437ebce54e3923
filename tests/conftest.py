"""Shared fixtures: where the read-only shared data lives."""

from __future__ import annotations

import os
from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One real one-node Ray cluster for the whole session (2 CPUs, small object store, no
    dashboard), shut down at the end. Tests that need Ray take this fixture."""
    import ray

    if not ray.is_initialized():
        from serving.ray_app import serve_env

        serve_env()  # Serve as `memento serve --replicas` runs it (read as Ray's processes start)
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=256 * 1024 * 1024,
            log_to_driver=False,
            configure_logging=False,
        )
    yield
    ray.shutdown()

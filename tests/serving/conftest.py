"""Fixtures for the serving tests: a real uvicorn server process on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from serving.process import ServerProcess
from serving.testing import server_env


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server per test module, 64 KiB body limit, checkpoint every 5 updates."""
    tmp = tmp_path_factory.mktemp("srv")
    env = server_env(
        tmp / "db.sqlite3", MEMENTO_MAX_BODY_BYTES="65536", MEMENTO_CHECKPOINT_EVERY="5"
    )
    with ServerProcess(env, log=tmp / "server.log") as proc:
        yield proc


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    """HTTP client bound to the module's server."""
    with httpx.Client(base_url=server.url, timeout=10.0) as c:
        yield c

"""Fixtures for the serving tests: a real uvicorn server process on loopback."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server: `MEMENTO_TEST_PG_URL` if set, else one started here with
    `scripts/postgres.sh` (skipped only when no PostgreSQL binaries exist)."""
    url = os.environ.get("MEMENTO_TEST_PG_URL")
    if url:
        yield url
        return
    script = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"
    folder = tmp_path_factory.mktemp("pg")
    started = subprocess.run(
        ["bash", str(script), "start", str(folder)], capture_output=True, text=True, timeout=120
    )
    if started.returncode == 3:
        pytest.skip(f"no PostgreSQL binaries: {started.stderr.strip()}")
    assert started.returncode == 0, started.stderr
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run(["bash", str(script), "stop", str(folder)], timeout=120, check=False)


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return pg_server.rsplit("/", 1)[0] + "/" + name

"""Helpers for black-box tests and load tests of a running server (no pytest imports)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

TEST_API_KEY = "test-key-0123456789"
"""Write key the test servers are started with."""
TEST_READ_API_KEY = "test-read-key-0123456789"
"""Read key the test servers are started with."""
AUTH = {"Authorization": f"Bearer {TEST_API_KEY}"}
"""Authorization header for `TEST_API_KEY` (every route)."""
READ_AUTH = {"Authorization": f"Bearer {TEST_READ_API_KEY}"}
"""Authorization header for `TEST_READ_API_KEY` (`POST /v1/recommend` only)."""


TEST_ITEMS: dict[str, str] = {
    **{i: f"test item {i}" for i in ("p1", "p2", "a1", "a2", "l1", "l2", "l3", "k1", "k2")},
    **{i: f"test item {i}" for i in ("e1", "e2", "e3", "z0", "z1", "z2", "i")},
    "case-item": "case item",
    "other-item": "other item",
    "target-item": "target item",
    **{f"rival-{k}": f"rival item {k}" for k in range(3)},
    "red wool scarf": "red wool scarf",
    "winter gloves": "winter gloves",
    "warm winter hat": "warm winter hat",
    "beach sandals": "beach sandals",
    "wool socks": "wool socks",
}
"""The catalogue test servers recommend from (id -> title): only these items can be shown."""


def write_catalogue(path: Path, items: dict[str, str]) -> Path:
    """A canonical `items.parquet` (item_id, title) at `path`."""
    import polars as pl

    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"item_id": list(items), "title": list(items.values())}).write_parquet(path)
    return path


def server_env(db: Path, **extra: str) -> dict[str, str]:
    """`MEMENTO_*` environment for a test server on database `db` (fast hashing encoder), no
    registry model, the `TEST_ITEMS` catalogue (written beside the database)."""
    items = write_catalogue(db.parent / "test-items.parquet", TEST_ITEMS)
    return {
        "MEMENTO_API_KEY": TEST_API_KEY,
        "MEMENTO_READ_API_KEY": TEST_READ_API_KEY,
        "MEMENTO_DB_PATH": str(db),
        "MEMENTO_FRESH__TEXT__KIND": "hashing",
        "MEMENTO_UPDATES_PER_FEEDBACK": "4",
        "MEMENTO_MODEL_URI": "none",
        "MEMENTO_ITEMS_PATH": str(items),
        **extra,
    }


def metric(client: httpx.Client, name: str) -> float:
    """Current value of an unlabelled metric from /metrics."""
    text = client.get("/metrics").text
    match = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def wait_idle(client: httpx.Client, updates_at_least: float, timeout_s: float = 20.0) -> float:
    """Wait until the learner queue is empty and at least that many updates ran; the count."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = metric(client, "memento_learner_updates_total")
        if metric(client, "memento_learner_queue_depth") == 0 and done >= updates_at_least:
            return done
        time.sleep(0.05)
    raise TimeoutError("learner did not drain in time")

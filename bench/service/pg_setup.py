"""PostgreSQL for the replica and worker benchmarks: a server (given, or a throwaway one from
`scripts/postgres.sh`) and a copy of the seeded store in it."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from serving.service import EventRecord
from serving.store import Store

__all__ = ["copy_store", "pg_server"]

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"


def copy_store(src: Store, dst: Store) -> tuple[int, int]:
    """Every user's events and every live case of `src` into `dst`; (events, cases)."""
    by_user: dict[str, list[EventRecord]] = defaultdict(list)
    for uid, e in src.iter_events():
        by_user[uid].append(e)
    for uid, events in by_user.items():
        dst.append_events(uid, events)
    cases = src.live_cases()
    dst.put_cases(cases)
    return sum(len(v) for v in by_user.values()), len(cases)


@contextmanager
def pg_server(url: str | None, workdir: Path) -> Iterator[str]:
    """A server URL: the given one, else a throwaway `scripts/postgres.sh` server (stopped)."""
    if url:
        yield url
        return
    folder = workdir / "pg"
    started = subprocess.run(
        ["bash", str(_SCRIPT), "start", str(folder)], capture_output=True, text=True, timeout=120
    )
    if started.returncode != 0:
        raise RuntimeError(f"scripts/postgres.sh start failed: {started.stderr.strip()}")
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run(["bash", str(_SCRIPT), "stop", str(folder)], timeout=120, check=False)

"""In-process CPU cost of one checkout's core: recommend, and the learner per feedback.

Run as a script in a subprocess (`bench.service.load` does) with the checkout's modules first
on the path (`PYTHONSAFEPATH=1 PYTHONPATH=<checkout>`) and the server's `MEMENTO_*`
environment, so a checkout of another commit is measured with its own code on the same
seeded store. Thread CPU time (`time.thread_time`), not wall clock: what a call costs, the
same on a quiet machine and on a loaded one (up to cache contention). It times `requests`
recommends of users `u0..u<users-1>` (their stored histories), then applies one click on each
decision's first item: one feedback at a time, then in batches of `BATCH` (inside
`core.batched()` when the core has it, as the learner thread does). Prints one JSON line.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serving.service import DecisionSnapshot, RecommendationRecord

BATCH = 32
"""Feedback per learner batch of the batched measurement (the learner's `batch_size`)."""


def served_decision(core: Any, user_id: str, rec: RecommendationRecord) -> DecisionSnapshot:
    """The decision the service stores for a core's answer `rec` to `user_id`, stamped now
    (its positional fields: any checkout's `DecisionSnapshot` takes them)."""
    from serving.service import DecisionSnapshot

    return DecisionSnapshot(
        uuid.uuid4().hex,
        user_id,
        rec.state,
        rec.candidates,
        tuple(c.case_id for c in rec.cases),
        tuple(i.item_id for i in rec.items),
        core.model_version,
        time.time(),
    )


def _ms(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return round(1000 * s[min(len(s) - 1, int(q * len(s)))], 3)


def measure(requests: int, users: int) -> dict[str, Any]:
    """The figures of the checkout on the path (module docstring)."""
    import torch

    from serving.app import limit_blas_threads, open_store
    from serving.core import build_core
    from serving.settings import ServingSettings

    limit_blas_threads(1)
    torch.set_num_threads(1)
    settings = ServingSettings()
    store = open_store(settings)
    core = build_core(settings, store)
    rng = random.Random(3)
    ids = [f"u{k}" for k in range(users)]
    cpu: list[float] = []
    decisions = []
    for k in range(requests + 20):  # 20 warm-up calls
        u = rng.choice(ids)
        events = store.recent_events(u, settings.recent_events_limit)
        c0 = time.thread_time()
        r = core.recommend(u, 10, {}, events, [], explain=False)
        if k >= 20:
            cpu.append(time.thread_time() - c0)
        d = served_decision(core, u, r)
        store.put_decision(d)
        decisions.append(d)
    out: dict[str, Any] = {
        "recommend_thread_cpu_ms_p50": _ms(cpu, 0.5),
        "recommend_thread_cpu_ms_p99": _ms(cpu, 0.99),
        "learner_gamma": core.runtime.bundle.config.learner.gamma,
    }
    batched = getattr(core, "batched", None)
    half = len(decisions) // 2
    for size, todo in ((1, decisions[:half]), (BATCH, decisions[half:])):
        c0 = time.thread_time()
        for lo in range(0, len(todo), size):
            with batched() if batched is not None else contextlib.nullcontext():
                for d in todo[lo : lo + size]:
                    core.apply_feedback(d, d.items[0], "click", None)
        ms = 1000 * (time.thread_time() - c0) / max(1, len(todo))
        out[f"learner_thread_cpu_ms_per_feedback_batch_{size}"] = round(ms, 3)
        out[f"learner_feedback_per_cpu_second_batch_{size}"] = round(1000 / ms, 1) if ms else None
    core.close()
    store.close()
    return out


def in_subprocess(
    db: Path, folder: Path, env: dict[str, str], tree: str | None, requests: int, users: int
) -> dict[str, Any]:
    """`measure` in a subprocess with a server's `MEMENTO_*` settings `env` and the modules
    of `tree` (None: this checkout), on a copy of the seeded store `db` (and its
    `checkpoints/`) in `folder`; its figures, or the error it ended with."""
    folder.mkdir(parents=True)
    shutil.copy(db, folder / db.name)
    if (db.parent / "checkpoints").exists():
        shutil.copytree(db.parent / "checkpoints", folder / "checkpoints")
    root = Path(tree).resolve() if tree else Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        **env,
        "MEMENTO_DB_PATH": str(folder / db.name),
        "PYTHONSAFEPATH": "1",
        "PYTHONPATH": str(root),
    }
    done = subprocess.run(
        [sys.executable, str(Path(__file__)), str(requests), str(users)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


if __name__ == "__main__":
    sys.stdout.write(json.dumps(measure(int(sys.argv[1]), int(sys.argv[2]))) + "\n")

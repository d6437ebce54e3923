"""CPU seconds of a process tree, and of Ray's processes by role, for the replica benchmark
(`bench.service.replicas`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import psutil

__all__ = ["cpu_by_role", "cpu_delta", "cpu_times", "idle_cores", "ray_pids", "tree"]


def cpu_times(pids: list[int]) -> dict[int, float]:
    """user+system CPU seconds of each live process."""
    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system
        except psutil.Error:
            continue
    return out


def tree(root: int) -> list[int]:
    """The process and all its descendants."""
    try:
        p = psutil.Process(root)
        return [root, *(c.pid for c in p.children(recursive=True))]
    except psutil.Error:
        return []


def ray_pids() -> list[int]:
    """Every process Ray started under this one (the benchmark itself, the load generator,
    excluded)."""
    return tree(os.getpid())[1:]


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two samples (processes started meanwhile count in full)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


_ROLES = (
    ("ServeReplica", "replicas"),
    ("ProxyActor", "proxy"),
    ("ServeController", "controller"),
    ("SharedLearner", "learner"),
    ("raylet", "raylet"),
    ("gcs_server", "gcs"),
)
"""Command-line marker -> role of a Ray process (anything else: `other`)."""


def _role(pid: int) -> str:
    """The role of a Ray process by its command line."""
    try:
        cmd = " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return "other"
    return next((role for mark, role in _ROLES if mark in cmd), "other")


def cpu_by_role(before: dict[int, float], after: dict[int, float], n: int) -> dict[str, float]:
    """CPU ms per request of each role between two samples (`n` requests)."""
    out: dict[str, float] = {}
    for pid, t in after.items():
        role = _role(pid)
        out[role] = out.get(role, 0.0) + t - before.get(pid, 0.0)
    return {k: round(1000 * v / n, 2) for k, v in sorted(out.items())} if n else {}


def idle_cores(pids: Callable[[], list[int]], seconds: float = 3.0) -> float:
    """Cores the processes use with no request in flight (Ray's polls and heartbeats, the
    replicas' and learner's store polls)."""
    before = cpu_times(pids())
    time.sleep(seconds)
    return round(cpu_delta(before, cpu_times(pids())) / seconds, 3)

"""Watching the service during a soak (`bench.soak`): its resident memory (psutil) and the
online learner's metrics (`/metrics`: queue depth, updates applied), sampled in a thread; the
learner's apply rate, queue depth, lag and drain time computed from the samples."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench.soak_report import Sample

__all__ = ["LearnerStats", "Sampler", "drain", "learner_stats", "pid_of_port"]


@dataclass(frozen=True)
class LearnerStats:
    """The online learner while and after the traffic ran."""

    updates_during: float | None
    """Feedback applied during the traffic."""
    updates_per_s: float | None
    """Applied per second of traffic."""
    queue_depth_mean: float | None
    """Mean sampled queue depth during the traffic."""
    queue_depth_max: float | None
    """Largest sampled queue depth."""
    lag_s_mean: float | None
    """Mean of queue depth / apply rate over the samples: how long a feedback waits."""
    drain_s: float | None
    """Seconds after the traffic until the queue was empty (None: not within the timeout)."""


def _metric(text: str, name: str) -> float | None:
    """An unlabelled sample of a Prometheus exposition."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


class Sampler:
    """Reads the learner's metrics every period and the RSS every `RSS_EVERY_S` in between, in
    its own thread; a sample keeps the last RSS and the period's lowest (the floor: what stays
    held once the transient arrays of requests and updates are freed)."""

    RSS_EVERY_S = 0.5
    """Resident-memory reading period within a sample period."""

    def __init__(self, url: str, pid: int | None, period: float) -> None:
        self.url, self.period = url, period
        self.samples: list[Sample] = []
        self._proc: Any = None
        self._low: float | None = None
        if pid is not None:
            import psutil

            self._proc = psutil.Process(pid)

    def _rss(self) -> float | None:
        """The RSS now (MiB), folded into the period's floor."""
        if self._proc is None:
            return None
        rss = float(self._proc.memory_info().rss / 2**20)
        self._low = rss if self._low is None else min(self._low, rss)
        return rss

    def sample(self, t: float) -> Sample:
        """One sample now (t = seconds since the traffic started); starts the next period."""
        rss = self._rss()
        low, self._low = self._low, None
        depth = updates = None
        try:
            text = httpx.get(self.url + "/metrics", timeout=30.0).text
            depth = _metric(text, "memento_learner_queue_depth")
            updates = _metric(text, "memento_learner_updates_total")
        except httpx.HTTPError:
            pass
        s = Sample(
            round(t, 2),
            None if rss is None else round(rss, 1),
            None if low is None else round(low, 1),
            depth,
            updates,
        )
        self.samples.append(s)
        return s

    def run(self, stop: threading.Event, t0: float) -> None:
        """Sample until `stop` (first sample at once), reading the RSS in between."""
        while True:
            self.sample(time.monotonic() - t0)
            end = time.monotonic() + self.period
            while time.monotonic() < end:
                if stop.wait(min(self.RSS_EVERY_S, max(0.0, end - time.monotonic()))):
                    return
                self._rss()


def pid_of_port(url: str) -> int | None:
    """The process listening on the URL's port (psutil; None when it cannot tell)."""
    import psutil

    port = httpx.URL(url).port
    try:
        for c in psutil.net_connections(kind="tcp"):
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid:
                return int(c.pid)
    except psutil.Error:
        return None
    return None


def learner_stats(run: list[Sample], seconds: float, drain_s: float | None) -> LearnerStats:
    """Apply rate, queue depth and lag (depth / rate between consecutive samples)."""
    pts = [(s.t, s.queue_depth, s.updates) for s in run if s.queue_depth is not None]
    if len(pts) < 2 or pts[0][2] is None or pts[-1][2] is None:
        return LearnerStats(None, None, None, None, None, drain_s)
    done = float(pts[-1][2] - pts[0][2])
    lags = []
    for (t0, _, u0), (t1, d1, u1) in itertools.pairwise(pts):
        rate = (u1 - u0) / (t1 - t0) if u0 is not None and u1 is not None and t1 > t0 else 0.0
        if d1:
            lags.append(d1 / rate if rate > 0 else float("inf"))
    depths = [d for _, d, _ in pts]
    finite = [x for x in lags if x != float("inf")]
    return LearnerStats(
        updates_during=done,
        updates_per_s=round(done / seconds, 2) if seconds > 0 else None,
        queue_depth_mean=round(sum(depths) / len(depths), 1),
        queue_depth_max=max(depths),
        lag_s_mean=round(sum(finite) / len(finite), 1) if finite else (0.0 if not lags else None),
        drain_s=drain_s,
    )


def drain(sampler: Sampler, t0: float, timeout_s: float) -> float | None:
    """Seconds until the learner queue is empty after the traffic (None: not in time)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        s = sampler.sample(time.monotonic() - t0)
        if s.queue_depth is not None and s.queue_depth == 0:
            return round(time.monotonic() - start, 1)
        time.sleep(1.0)
    return None

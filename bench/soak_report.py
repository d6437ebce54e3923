"""Figures of a soak run (`bench.soak`): per-route status counts and latency percentiles over
time, the service's resident memory and its slope, the store check, and the plot.

The store check reads the service's SQLite file read-only with plain SQL (a running service
keeps writing; WAL readers never block it): every acknowledged event and feedback of the run
is stored exactly once, no feedback answered 503 is stored, and nothing of an erased user is
left (events, decisions, cases, the feedback the run sent on that user's decisions).
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "Call",
    "Ledger",
    "RouteStats",
    "Sample",
    "StoreCheck",
    "WindowStats",
    "check_store",
    "plot_soak",
    "route_stats",
    "slope_per_minute",
]


@dataclass(frozen=True)
class Call:
    """One HTTP call of a soak client."""

    route: str
    """Route label: recommend, feedback, feedback_repeat, events, cases_list, case_get, erase."""
    status: int
    """HTTP status; 0 for a transport error (connection refused, timeout)."""
    t: float
    """Seconds since the traffic started, when the call was sent."""
    ms: float
    """Latency in milliseconds."""


@dataclass(frozen=True)
class Sample:
    """What the sampler read from the service at one time."""

    t: float
    """Seconds since the traffic started."""
    rss_mb: float | None
    """Resident memory of the service process (MiB); None when its process is unknown."""
    rss_floor_mb: float | None
    """Lowest resident memory read since the previous sample (what stays held)."""
    queue_depth: float | None
    """`memento_learner_queue_depth` (feedback waiting for the learner)."""
    updates: float | None
    """`memento_learner_updates_total` (feedback the learner applied so far)."""


@dataclass(frozen=True)
class WindowStats:
    """Latency of one route in one time window."""

    t0: float
    """Window start (seconds since the traffic started)."""
    calls: int
    """Calls sent in the window."""
    p50_ms: float
    """Median latency."""
    p99_ms: float
    """99th percentile latency."""


@dataclass(frozen=True)
class RouteStats:
    """Status counts and latency of one route over the whole run."""

    calls: int
    """Calls made."""
    statuses: dict[str, int]
    """HTTP status (as text; "0": transport error) -> count."""
    share_5xx: float
    """Share of answers with a status of 500 or more."""
    share_503: float
    """Share of 503 answers (learner queue full, not ready)."""
    p50_ms: float
    """Median latency over the run."""
    p99_ms: float
    """99th percentile latency over the run."""
    windows: list[WindowStats] = field(default_factory=list)
    """Latency per time window (percentiles over time)."""


def _pct(sorted_ms: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted values (nan when empty)."""
    if not sorted_ms:
        return float("nan")
    return round(float(sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]), 2)


def route_stats(calls: Iterable[Call], window_s: float) -> dict[str, RouteStats]:
    """Per route: status counts, 5xx / 503 shares, p50 / p99 overall and per window."""
    assert window_s > 0, f"{window_s=}"
    by_route: defaultdict[str, list[Call]] = defaultdict(list)
    for c in calls:
        by_route[c.route].append(c)
    out: dict[str, RouteStats] = {}
    for route, cs in sorted(by_route.items()):
        statuses = Counter(str(c.status) for c in cs)
        windows: defaultdict[int, list[float]] = defaultdict(list)
        for c in cs:
            windows[int(c.t // window_s)].append(c.ms)
        per_window = [
            WindowStats(k * window_s, len(v), _pct(sorted(v), 0.5), _pct(sorted(v), 0.99))
            for k, v in sorted(windows.items())
        ]
        ms = sorted(c.ms for c in cs)
        n = len(cs)
        out[route] = RouteStats(
            calls=n,
            statuses=dict(sorted(statuses.items())),
            share_5xx=round(sum(1 for c in cs if c.status >= 500) / n, 5),
            share_503=round(statuses.get("503", 0) / n, 5),
            p50_ms=_pct(ms, 0.5),
            p99_ms=_pct(ms, 0.99),
            windows=per_window,
        )
    return out


def slope_per_minute(t_s: Sequence[float], y: Sequence[float]) -> float | None:
    """Least-squares slope of y per minute of t (seconds); None with fewer than 2 points."""
    if len(t_s) < 2 or len(set(t_s)) < 2:
        return None
    minutes = np.asarray(t_s, np.float64) / 60.0
    slope = np.polyfit(minutes, np.asarray(y, np.float64), 1)[0]
    return round(float(slope), 3)


@dataclass
class Ledger:
    """What the service acknowledged to the run's clients (merged over clients)."""

    events: list[tuple[str, str, str, float]] = field(default_factory=list)
    """(user, item, action, ts) of every event answered 202."""
    feedback: dict[str, int] = field(default_factory=dict)
    """Idempotency key -> feedback id of every feedback answered 202 (first time)."""
    refused: set[str] = field(default_factory=set)
    """Keys answered 503 and never accepted later (they must not be stored)."""
    erased: list[str] = field(default_factory=list)
    """Users erased (answered 200); the run never uses them again."""
    erased_keys: set[str] = field(default_factory=set)
    """Feedback keys sent on erased users' decisions (they must be gone)."""
    repeat_mismatch: int = 0
    """Repeated keys answered without `duplicate: true` or with another feedback id."""

    def merge(self, other: Ledger) -> None:
        """Add another client's ledger (clients own disjoint users and keys)."""
        self.events += other.events
        self.feedback.update(other.feedback)
        self.refused |= other.refused
        self.erased += other.erased
        self.erased_keys |= other.erased_keys
        self.repeat_mismatch += other.repeat_mismatch


@dataclass(frozen=True)
class StoreCheck:
    """Acknowledged writes against the store, after the run."""

    db: str
    """The SQLite file read."""
    events_acknowledged: int
    """Events answered 202 (erased users' excluded)."""
    events_missing: int
    """Acknowledged events not stored."""
    events_duplicated: int
    """Acknowledged events stored more than once (extra rows)."""
    feedback_acknowledged: int
    """Feedback keys answered 202 (erased users' excluded)."""
    feedback_missing: int
    """Acknowledged keys not stored."""
    feedback_wrong_id: int
    """Acknowledged keys stored under another feedback id than the one answered."""
    refused_stored: int
    """Keys answered 503 (never accepted) that are stored anyway."""
    repeat_mismatch: int
    """Repeated keys not answered as the duplicate of the first (same id)."""
    erased_users: int
    """Users the run erased."""
    erased_leftovers: dict[str, int]
    """Rows of erased users still stored, per table (events, decisions, cases, feedback)."""
    ok: bool
    """Every count above that must be 0 is 0."""


def _in_chunks(db: sqlite3.Connection, sql: str, values: Sequence[str]) -> list[tuple]:
    """`sql` with `IN ({})` run over values in chunks of 500 (SQLite's variable limit)."""
    rows: list[tuple] = []
    for k in range(0, len(values), 500):
        chunk = values[k : k + 500]
        rows += db.execute(sql.format(",".join("?" * len(chunk))), chunk).fetchall()
    return rows


def check_store(db_path: Path, ledger: Ledger, user_prefix: str) -> StoreCheck:
    """Compare the ledger with the store's rows of the run's users (ids start `user_prefix`)."""
    db = sqlite3.connect(f"{Path(db_path).resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
    try:
        like = user_prefix.replace("%", "") + "%"
        stored = Counter(
            (u, i, a, float(t))
            for u, i, a, t in db.execute(
                "SELECT user_id, item_id, action, ts FROM events WHERE user_id LIKE ?", (like,)
            )
        )
        erased = set(ledger.erased)
        acked = Counter(e for e in ledger.events if e[0] not in erased)
        missing = sum(max(0, n - stored.get(e, 0)) for e, n in acked.items())
        duplicated = sum(max(0, stored.get(e, 0) - n) for e, n in acked.items())
        keys = sorted(ledger.feedback)
        found = dict(
            _in_chunks(
                db,
                "SELECT idempotency_key, feedback_id FROM feedback WHERE idempotency_key IN ({})",
                keys,
            )
        )
        live = [k for k in keys if k not in ledger.erased_keys]
        fb_missing = sum(1 for k in live if k not in found)
        wrong = sum(1 for k in live if k in found and found[k] != ledger.feedback[k])
        refused = sorted(ledger.refused - set(ledger.feedback))
        refused_stored = len(
            _in_chunks(db, "SELECT 1 FROM feedback WHERE idempotency_key IN ({})", refused)
        )
        users = sorted(erased)
        left = {
            t: len(_in_chunks(db, f"SELECT 1 FROM {t} WHERE user_id IN ({{}})", users))
            for t in ("events", "decisions", "cases")
        }
        left["feedback"] = sum(1 for k in ledger.erased_keys if k in found)
    finally:
        db.close()
    bad = missing + duplicated + fb_missing + wrong + refused_stored + ledger.repeat_mismatch
    return StoreCheck(
        db=str(db_path),
        events_acknowledged=sum(acked.values()),
        events_missing=missing,
        events_duplicated=duplicated,
        feedback_acknowledged=len(live),
        feedback_missing=fb_missing,
        feedback_wrong_id=wrong,
        refused_stored=refused_stored,
        repeat_mismatch=ledger.repeat_mismatch,
        erased_users=len(users),
        erased_leftovers=left,
        ok=bad == 0 and sum(left.values()) == 0,
    )


def plot_soak(
    routes: dict[str, RouteStats], samples: Sequence[Sample], path: Path, title: str
) -> Path:
    """Three panels over minutes: p50 / p99 latency per route, RSS, learner queue depth."""
    import matplotlib

    matplotlib.use("Agg")  # headless
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax_lat, ax_rss, ax_q) = plt.subplots(3, 1, figsize=(8, 9), dpi=110, sharex=True)
    try:
        for route, st in routes.items():
            if not st.windows:
                continue
            x = [w.t0 / 60.0 for w in st.windows]
            (line,) = ax_lat.plot(x, [w.p50_ms for w in st.windows], label=f"{route} p50")
            ax_lat.plot(x, [w.p99_ms for w in st.windows], "--", color=line.get_color())
        ax_lat.set_yscale("log")
        ax_lat.set_ylabel("latency ms (p50 solid, p99 dashed)")
        ax_lat.legend(fontsize=7, ncol=2)
        rss = [(s.t / 60.0, s.rss_mb) for s in samples if s.rss_mb is not None]
        if rss:
            ax_rss.plot(*zip(*rss, strict=True), marker=".", label="at the sample")
        low = [(s.t / 60.0, s.rss_floor_mb) for s in samples if s.rss_floor_mb is not None]
        if low:
            ax_rss.plot(*zip(*low, strict=True), label="floor since the previous sample")
            ax_rss.legend(fontsize=7)
        ax_rss.set_ylabel("service RSS (MiB)")
        depth = [(s.t / 60.0, s.queue_depth) for s in samples if s.queue_depth is not None]
        if depth:
            ax_q.plot(*zip(*depth, strict=True), marker=".")
        ax_q.set_ylabel("learner queue depth")
        ax_q.set_xlabel("minutes")
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path

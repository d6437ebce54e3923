"""Popularity as of a time: (time-decayed) counts of the events strictly before `now`.

The model bundle ships the event log it was fitted on (item row, time); serving appends the
events it is told about. The same object answers the replay's "causal popularity" at a
decision's time and the service's cold-start list, so both rank cold users identically.

    score_i(now) = sum over events e of item i with ts_e < now of 0.5 ** ((t_last - ts_e) / h)

(h = half-life; h = 0 gives plain counts; t_last = the newest event before `now`, which scales
every score by the same factor as decaying to `now` would, without underflowing when a model
trained on old logs serves years later).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from recsys.ranking import top_positive

__all__ = ["Popularity"]


class Popularity:
    """Item popularity from an append-only event log sorted by time (16 bytes per event).

    Thread-safe: `_lock` guards the log and the score cache; every method takes it for the
    whole read or swap, and none calls out while holding it (a leaf lock). Writers build new
    arrays and swap them in, so an array handed out is never changed afterwards."""

    def __init__(
        self,
        n_items: int,
        rows: np.ndarray | None = None,
        ts: np.ndarray | None = None,
        half_life_hours: float = 0.0,
    ) -> None:
        rows = np.zeros(0, np.int64) if rows is None else np.asarray(rows, np.int64)
        ts = np.zeros(0, np.float64) if ts is None else np.asarray(ts, np.float64)
        assert rows.shape == ts.shape, f"{rows.shape=} {ts.shape=}"
        order = np.argsort(ts, kind="stable")
        self._rows, self._ts = rows[order], ts[order]
        self.n_items = n_items
        self.half_life_hours = half_life_hours
        self._lock = threading.Lock()
        self._cache: tuple[int, np.ndarray] | None = None
        """(events counted, their scores): the scores depend on the counted prefix alone."""
        self._top: tuple[np.ndarray, int, tuple[int, ...]] | None = None
        """(scores, n, `top_positive(scores, n)`) of the last `top_positive` call."""

    def __len__(self) -> int:
        return int(self._rows.shape[0])

    def log(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the event log: (item rows, times), in time order."""
        with self._lock:
            return self._rows.copy(), self._ts.copy()

    @property
    def last_ts(self) -> float:
        """Time of the latest event (0 when empty)."""
        ts = self._ts  # one read of the reference: a concurrent swap cannot split the check
        return float(ts[-1]) if len(ts) else 0.0

    def grow(self, n_items: int) -> None:
        """The catalogue grew to `n_items` rows."""
        assert n_items >= self.n_items, f"{n_items=} {self.n_items=}"
        self.n_items = n_items
        self._cache = None

    def add(self, rows: np.ndarray, ts: np.ndarray) -> None:
        """Append events (any order; kept sorted by time)."""
        rows, ts = np.asarray(rows, np.int64), np.asarray(ts, np.float64)
        if rows.size == 0:
            return
        assert int(rows.max()) < self.n_items, "event item outside the catalogue"
        order = np.argsort(ts, kind="stable")
        rows, ts = rows[order], ts[order]
        with self._lock:
            if len(self._ts) == 0 or ts[0] >= self._ts[-1]:  # the usual case: newest events
                self._rows = np.concatenate([self._rows, rows])
                self._ts = np.concatenate([self._ts, ts])
            else:  # after every logged event of the same time, as a stable sort would put them
                at = np.searchsorted(self._ts, ts, side="right")
                self._rows, self._ts = np.insert(self._rows, at, rows), np.insert(self._ts, at, ts)
            self._cache = None

    def replace(self, rows: np.ndarray, ts: np.ndarray) -> None:
        """Swap the whole event log for (rows, ts) (any order) in one step."""
        rows, ts = np.asarray(rows, np.int64), np.asarray(ts, np.float64)
        order = np.argsort(ts, kind="stable")
        with self._lock:
            self._rows, self._ts, self._cache = rows[order], ts[order], None

    def scores(self, now: float) -> np.ndarray:
        """(I,) float64 popularity of every item from the events strictly before `now` (the
        same array object while no event is added before `now`)."""
        with self._lock:
            stop = int(np.searchsorted(self._ts, now, side="left"))
            if self._cache is not None and self._cache[0] == stop:
                return self._cache[1]
            rows, ts = self._rows[:stop], self._ts[:stop]
            if self.half_life_hours > 0 and stop:
                # relative to the newest counted event: same order, no underflow years later
                w = 0.5 ** ((ts[-1] - ts) / (self.half_life_hours * 3600.0))
            else:
                w = np.ones(stop)
            s = np.bincount(rows, weights=w, minlength=self.n_items).astype(np.float64)
            self._cache = (stop, s)
            return s

    def top_positive(self, scores: np.ndarray, n: int) -> tuple[int, ...]:
        """`recsys.ranking.top_positive(scores, n)` of an array `scores` handed out (never
        changed afterwards): the n most popular item rows with a count > 0 (ties: catalogue
        order), kept for the last array asked about (held, so its identity is not reused)."""
        with self._lock:
            top = self._top
            if top is None or top[0] is not scores or top[1] != n:
                top = self._top = (scores, n, tuple(top_positive(scores, n)))
            return top[2]

    def top(self, n: int, now: float, exclude: set[int]) -> list[int]:
        """The n most popular item rows at `now` (ties: catalogue order), `exclude` removed."""
        from recsys.rec.candidates import top_n_stable

        s = self.scores(now)
        out: list[int] = []
        for r in top_n_stable(s, n + len(exclude)).tolist():
            if r not in exclude:
                out.append(int(r))
                if len(out) >= n:
                    break
        return out

    def save(self, path: Path) -> None:
        """Write the event log to one .npz file."""
        with self._lock:
            np.savez_compressed(
                path, rows=self._rows, ts=self._ts, n_items=self.n_items, h=self.half_life_hours
            )

    @classmethod
    def load(cls, path: Path) -> Popularity:
        """Inverse of `save`."""
        z = np.load(path)
        return cls(int(z["n_items"]), z["rows"], z["ts"], float(z["h"]))

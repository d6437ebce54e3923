"""Item co-occurrence over users: the counts behind the item-kNN baseline and the recommend
pipeline's item-kNN term (shipped in the model bundle).

``co[i, j]`` = users holding both items i and j (each user counts once per item; zero
diagonal), ``support[i]`` = users holding item i. Replay TRAINING decisions score a user with that
user's own rows taken out of the counts, so a training decision never sees its own later
events; evaluation and serving use the counts as fitted (a test user's fitted rows are their
past).
"""

from __future__ import annotations

import sys
import threading
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

__all__ = ["Cooccurrence", "LiveCooccurrence"]


def _dense_row(m: sp.spmatrix, h: int) -> np.ndarray:
    """Row h of a sparse matrix as a dense float64 vector, read straight from the CSR arrays
    (what `m[h].toarray().ravel()` gives, without building a sparse matrix per row: that
    costs ~0.15 ms, several times per request)."""
    if not sp.isspmatrix_csr(m):
        return np.asarray(m[h].toarray(), np.float64).ravel()
    lo, hi = m.indptr[h], m.indptr[h + 1]
    out = np.zeros(m.shape[1])
    if m.has_canonical_format:
        out[m.indices[lo:hi]] = m.data[lo:hi]
    else:  # duplicate entries add up, as in toarray
        np.add.at(out, m.indices[lo:hi], m.data[lo:hi])
    return out


def _csr_row(m: sp.csr_matrix, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Row h of a CSR matrix as (column indices, values), each column once (duplicate
    entries added up, as `_dense_row` adds them)."""
    lo, hi = m.indptr[h], m.indptr[h + 1]
    idx, val = m.indices[lo:hi], np.asarray(m.data[lo:hi], np.float64)
    if m.has_canonical_format:
        return idx, val
    cols, inv = np.unique(idx, return_inverse=True)
    out = np.zeros(len(cols))
    np.add.at(out, inv, val)
    return cols, out


def _previous(us: np.ndarray, ts: np.ndarray | None) -> np.ndarray:
    """Per event (sorted by user, then time): the index of the event it succeeds, -1 for a
    user's first. Without times the event just before; with times the last event of the
    user's previous time (-1 at the user's first time)."""
    n = len(us)
    prev = np.arange(-1, n - 1)
    new_user = np.ones(n, bool)
    new_user[1:] = us[1:] != us[:-1]
    if ts is not None and n:
        new_time = new_user.copy()
        new_time[1:] |= ts[1:] != ts[:-1]
        start = np.flatnonzero(new_time)  # each (user, time) group's first event
        group = np.cumsum(new_time) - 1
        prev = start[group] - 1  # the last event before the group
        new_user = new_user[start][group]  # the group is the user's first
    prev[new_user] = -1
    return prev


@dataclass(frozen=True)
class Cooccurrence:
    """Co-occurrence counts of ``n_items`` items over a set of (user, item row) pairs."""

    co: sp.csr_matrix
    """(I, I) users holding both items, zero diagonal."""
    support: np.ndarray
    """(I,) users holding each item."""
    user_rows: dict[str, np.ndarray] = field(default_factory=dict)
    """user id -> the item rows that user holds (in memory only: not saved)."""
    succ: sp.csr_matrix | None = None
    """(I, I) successions: how often item j immediately followed item i in a user's sequence
    (rows given in time order; None: not fitted)."""
    user_steps: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """user id -> (from rows, to rows) of that user's successions (in memory only)."""

    @classmethod
    def fit(
        cls,
        user: np.ndarray,
        item_rows: np.ndarray,
        n_items: int,
        weights: np.ndarray | None = None,
        ts: np.ndarray | None = None,
    ) -> Cooccurrence:
        """Counts from parallel arrays of user ids and item rows (co-occurrence: duplicates
        count once; successions: consecutive rows of a user, so pass them in time order).
        `weights` (per event, in (0, 1]; None: all 1): a user holds an item with the sum of
        its events' weights capped at 1, a pair of items counts the product of the two, and a
        succession counts its later event's weight. `ts` (per event, non-decreasing per user;
        None: every event its own time): events at one time (e.g. clicks on one shown list)
        have no order among themselves, so each counts as a succession of the user's last
        event at the time before, and never of one another."""
        users, u = np.unique(np.asarray(user), return_inverse=True)
        rows = np.asarray(item_rows, np.int64)
        wt = np.ones(len(rows)) if weights is None else np.asarray(weights, np.float64)
        assert wt.shape == rows.shape, f"{wt.shape=} {rows.shape=}"
        x = sp.csr_matrix((wt, (u, rows)), shape=(len(users), n_items))
        x.sum_duplicates()
        x.data[:] = np.minimum(x.data, 1.0)
        co = (x.T @ x).tocsr()
        co.setdiag(0.0)
        co.eliminate_zeros()
        ptr, idx = x.indptr, x.indices
        held = {str(uid): idx[ptr[k] : ptr[k + 1]].copy() for k, uid in enumerate(users)}
        order = np.argsort(u, kind="stable")  # per user, in the given (time) order
        us, rs, ws = u[order], rows[order], wt[order]
        prev = _previous(us, None if ts is None else np.asarray(ts, np.float64)[order])
        same = (prev >= 0) & (rs != rs[np.maximum(prev, 0)])
        src, dst = rs[prev[same]], rs[same]
        succ = sp.csr_matrix((ws[same], (src, dst)), shape=(n_items, n_items), dtype=np.float64)
        succ.sum_duplicates()
        owner = us[same]  # sorted: each user's successions are one contiguous run
        first, start = np.unique(owner, return_index=True)
        stop = np.append(start[1:], len(owner))[: len(start)]
        steps = {
            str(users[k]): (src[a:b], dst[a:b])
            for k, a, b in zip(first.tolist(), start.tolist(), stop.tolist(), strict=True)
        }
        return cls(co, np.asarray(x.sum(axis=0)).ravel(), held, succ, steps)

    def next_scores_without(
        self, user: str | None, recent: Sequence[int], decay: float
    ) -> np.ndarray:
        """Score of every item: ``sum_t decay^t * P(next = item | recent[t])`` from the
        succession counts (``recent`` = item rows, latest first) of every user except
        ``user``; zeros when successions were not fitted."""
        n = self.co.shape[0]
        s = np.zeros(n)
        if self.succ is None:
            return s
        own_src, own_dst = self.user_steps.get(str(user), (None, None)) if user else (None, None)
        for t, h in enumerate(recent):
            if h >= n:
                continue
            row = _dense_row(self.succ, h)
            if own_src is not None and own_dst is not None:
                np.subtract.at(row, own_dst[own_src == h], 1.0)
            total = float(row.sum())
            if total > 0:  # the row's non-zero entries alone: the others would add 0
                nz = np.flatnonzero(row)
                s[nz] += decay**t * row[nz] / total
        return s

    def cosine(self, shrink: float = 0.0) -> sp.csr_matrix:
        """Item-item cosine |U_i & U_j| / (sqrt(|U_i| |U_j|) + shrink)."""
        coo = self.co.tocoo()
        den = np.sqrt(self.support[coo.row] * self.support[coo.col]) + shrink
        return sp.csr_matrix((coo.data / den, (coo.row, coo.col)), shape=self.co.shape)

    def save(self, path: Path) -> None:
        """Write the counts (not the per-user rows) to one .npz file."""
        co = self.co.tocsr()
        np.savez_compressed(
            path,
            data=co.data,
            indices=co.indices,
            indptr=co.indptr,
            shape=co.shape,
            support=self.support,
            **(
                {}
                if self.succ is None
                else {
                    "succ_data": self.succ.data,
                    "succ_indices": self.succ.indices,
                    "succ_indptr": self.succ.indptr,
                }
            ),
        )

    @classmethod
    def load(cls, path: Path) -> Cooccurrence:
        """Inverse of `save` (no per-user rows: `scores_without` then leaves nobody out)."""
        z = np.load(path)
        shape = tuple(z["shape"])
        co = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=shape)
        succ = None
        if "succ_data" in z.files:
            succ = sp.csr_matrix((z["succ_data"], z["succ_indices"], z["succ_indptr"]), shape=shape)
        return cls(co, z["support"], succ=succ)

    def scores_without(self, user: str | None, recent: Sequence[int], decay: float) -> np.ndarray:
        """Score of every item: ``sum_t decay^t * cosine(item, recent[t])`` (``recent`` = item
        rows, latest first) over the counts of every user except ``user`` (None: everyone).

        Only the items sharing a user with ``recent[t]`` (its non-zero row of `co`) can score,
        so each step touches that row alone: the same numbers, element by element, as the
        catalogue-wide formula (`_scores_dense`), at O(row) instead of O(I) per history item."""
        n = self.co.shape[0]
        if not sp.isspmatrix_csr(self.co):
            return self._scores_dense(user, recent, decay)
        rows = self.user_rows.get(str(user)) if user is not None else None
        own: np.ndarray | None = None
        if rows is not None and len(rows):
            own = np.zeros(n)
            own[rows] = 1.0
        # every history item's row at once; np.add.at adds them in history order, so each
        # score sums the same terms in the same order as a loop over the history
        idx_l, val_l, own_l, sup_l, dec_l = [], [], [], [], []
        for t, h in enumerate(recent):
            if h >= n:  # an item added to the catalogue after the counts were fitted
                continue
            own_h = float(own[h]) if own is not None else 0.0
            sup_h = self.support[h] - own_h
            if sup_h <= 0:
                continue
            idx, val = _csr_row(self.co, h)
            idx_l.append(idx)
            val_l.append(val)
            own_l.append(np.full(len(idx), own_h))
            sup_l.append(np.full(len(idx), sup_h, np.float64))
            dec_l.append(np.full(len(idx), decay**t))
        s = np.zeros(n)
        if not idx_l:
            return s
        idx = np.concatenate(idx_l)
        own_i = own[idx] if own is not None else np.zeros(len(idx))
        num = np.maximum(np.concatenate(val_l) - own_i * np.concatenate(own_l), 0.0)
        den = np.sqrt(np.maximum(self.support[idx] - own_i, 0.0) * np.concatenate(sup_l))
        q = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        np.add.at(s, idx, np.concatenate(dec_l) * q)
        return s

    def _scores_dense(self, user: str | None, recent: Sequence[int], decay: float) -> np.ndarray:
        """`scores_without` over the whole catalogue per history item (any sparse format)."""
        n = self.co.shape[0]
        own = np.zeros(n)
        if user is not None:
            own[self.user_rows.get(str(user), np.zeros(0, np.int64))] = 1.0
        sup_c = np.maximum(self.support - own, 0.0)
        s = np.zeros(n)
        for t, h in enumerate(recent):
            if h >= n:
                continue
            sup_h = self.support[h] - own[h]
            if sup_h <= 0:
                continue
            num = np.maximum(_dense_row(self.co, h) - own * own[h], 0.0)
            den = np.sqrt(sup_c * sup_h)
            s += decay**t * np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        return s


def _add(a: sp.csr_matrix | None, b: sp.csr_matrix | None) -> sp.csr_matrix | None:
    if a is None:
        return b
    if b is None:
        return a
    return (a + b).tocsr()


class LiveCooccurrence:
    """Co-occurrence that grows with served events: the bundle's own counts (fitted offline,
    no per-user rows) plus a refit over the events seen online, every `refit_every` new
    events. Online users are taken as distinct from the offline ones (counts add). Only the
    latest `max_events` online events are kept (a sliding window bounds memory and refit
    time: about 24 bytes per event, `array` columns + one interned id per user); `forget(user)`
    drops a user's events at once (erasure).

    Thread-safe (request threads add while others refit or erase): `_lock` guards the window
    (appends, the erasure filter, the trim, the snapshot a refit reads) and is held only for
    those list operations; `_refit_lock` lets one refit run at a time, outside `_lock`, and
    publishes its counts (`current`, then `publish(counts)`) before the next refit starts, so
    the published counts never go back to an older window. A refit due while another runs is
    skipped (its events are in the next one); `forget` and `refit` wait for it.

    `half_life_hours` > 0 weights each online event by 2^(-(t_newest - t) / h) at every refit
    (`Cooccurrence.fit` weights), so the counts follow what users do now.
    `successions_across_times`: a succession runs from a user's last event at one time to each
    event at their next time (`Cooccurrence.fit` with `ts`), never between events at one time."""

    def __init__(
        self,
        base: Cooccurrence | None,
        n_items: int,
        refit_every: int = 200,
        max_events: int = 500_000,
        publish: Callable[[Cooccurrence], None] | None = None,
        half_life_hours: float = 0.0,
        successions_across_times: bool = False,
    ) -> None:
        assert refit_every >= 1, f"{refit_every=}"
        assert half_life_hours >= 0, f"{half_life_hours=}"
        self.half_life_hours = half_life_hours
        self.successions_across_times = successions_across_times
        assert max_events >= 1, f"{max_events=}"
        self.base = base
        self.n_items = n_items
        self.refit_every = refit_every
        self.max_events = max_events
        self._publish = publish
        self._users: list[str] = []
        self._rows = array("q")
        self._ts = array("d")
        self._pending = 0
        self._lock = threading.Lock()
        self._refit_lock = threading.Lock()
        self.current: Cooccurrence | None = base

    def __len__(self) -> int:
        """Online events in the window."""
        with self._lock:
            return len(self._rows)

    def add(
        self, user: str, rows: Sequence[int], ts: Sequence[float], *, refit: bool = True
    ) -> Cooccurrence | None:
        """Record a user's events; the refitted counts when this call ran a refit, else None
        (`refit=False`: never here, e.g. while loading stored events before one `refit()`)."""
        user = sys.intern(user)  # one copy of each id in the window
        with self._lock:
            for r, t in zip(rows, ts, strict=True):
                if 0 <= r < self.n_items:
                    self._users.append(user)
                    self._rows.append(int(r))
                    self._ts.append(float(t))
                    self._pending += 1
            due = refit and self._pending >= self.refit_every
        if not due or not self._refit_lock.acquire(blocking=False):
            return None
        try:
            return self._refit()
        finally:
            self._refit_lock.release()

    def forget(self, user: str) -> Cooccurrence:
        """Drop every event of the user and refit."""
        with self._refit_lock:
            with self._lock:
                keep = [k for k, u in enumerate(self._users) if u != user]
                if len(keep) < len(self._users):
                    self._users = [self._users[k] for k in keep]
                    self._rows = array("q", (self._rows[k] for k in keep))
                    self._ts = array("d", (self._ts[k] for k in keep))
            return self._refit()

    def refit(self) -> Cooccurrence:
        """Counts of the base + the online window (per user in time order), published."""
        with self._refit_lock:
            return self._refit()

    def _refit(self) -> Cooccurrence:
        """`refit` with `_refit_lock` held: snapshot the window under `_lock`, fit outside."""
        with self._lock:
            if len(self._rows) > self.max_events:
                cut = len(self._rows) - self.max_events
                del self._users[:cut], self._rows[:cut], self._ts[:cut]
            self._pending = 0
            names = list(self._users)
            rows = np.array(self._rows, np.int64)
            ts = np.array(self._ts, np.float64)
        users = np.asarray(names) if names else np.zeros(0, str)
        order = np.argsort(ts, kind="stable")
        weights = None
        if self.half_life_hours > 0 and len(ts):
            weights = 0.5 ** ((ts.max() - ts[order]) / (self.half_life_hours * 3600.0))
        at = ts[order] if self.successions_across_times else None
        online = Cooccurrence.fit(users[order], rows[order], self.n_items, weights, at)
        b = self.base
        if b is not None and b.co.shape == online.co.shape:
            online = Cooccurrence(
                _add(b.co, online.co),
                b.support + online.support,
                online.user_rows,
                _add(b.succ, online.succ),
                online.user_steps,
            )
        self.current = online
        if self._publish is not None:
            self._publish(online)
        return online

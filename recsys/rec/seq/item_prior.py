"""An item x item prior for the sequence policy: what followed a history's items in other users'
histories (an EASE or RP3beta matrix fitted on past rows), read in the policy's item index.

    prior(s, .) = x_hist M                (N,)   x_hist = recency input of the history
    x_hist[i]   = decay^t for the t-th latest event on item i (t = 0, 1, ...; the latest
                  weight wins), only the `window` latest events (0 = all)

`M` (N, N) is fitted outside (`bench.replay.seq_method` fits the tuned peer's matrix on the rows
a decision may see) and travels with the policy (`save` / `load`). The policy adds it to its
scores standardised per row (`standardised`), so one weight works for any scale of `M`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recsys.rec.seq.batch import UserSequence

__all__ = ["ItemPrior", "recency_input", "standardised"]


def recency_input(items: np.ndarray, n: int, window: int = 0, decay: float = 1.0) -> np.ndarray:
    """(n,) input of a history of item positions 0..n-1 (oldest first; -1 = an unknown item,
    counted in t but not in the input): the t-th latest event weighs `decay**t`, an item seen
    twice keeps its latest weight; only the `window` latest events count (0 = all). `window` 0
    and `decay` 1 give the binary vector of its items."""
    x = np.zeros(n)
    latest_first = np.asarray(items, np.int64)[::-1]
    if window > 0:
        latest_first = latest_first[:window]
    w = float(decay) ** np.arange(len(latest_first), dtype=np.float64)
    known = latest_first >= 0
    np.maximum.at(x, latest_first[known], w[known])
    return x


def standardised(scores: np.ndarray) -> np.ndarray:
    """(R, N) scores -> per row (x - mean) / std (a constant row -> zeros)."""
    mu = scores.mean(axis=1, keepdims=True)
    sd = scores.std(axis=1, keepdims=True)
    return np.where(sd > 0, (scores - mu) / np.where(sd > 0, sd, 1.0), 0.0)


@dataclass(frozen=True)
class ItemPrior:
    """A fitted item x item matrix in the policy's index and how a history is read."""

    matrix: np.ndarray
    """(N, N) float32 M: row i - 1 weighs history item i, column j - 1 scores item j."""
    window: int = 0
    """Latest history events in the input (0 = all)."""
    decay: float = 1.0
    """Input weight multiplier per step back in the history (1 = binary input)."""
    name: str = ""
    """Which peer's matrix it is (e.g. "ease", "rp3beta"), for reports."""

    def __post_init__(self) -> None:
        m = self.matrix
        assert m.ndim == 2 and m.shape[0] == m.shape[1], f"{m.shape=}"

    @property
    def n_items(self) -> int:
        """N: the catalogue the matrix scores."""
        return int(self.matrix.shape[0])

    def scores(self, histories: Sequence[UserSequence]) -> np.ndarray:
        """(R, N) prior of R histories (item indices 1..N)."""
        n = self.n_items
        x = np.stack([recency_input(h.items - 1, n, self.window, self.decay) for h in histories])
        return (x @ self.matrix).astype(np.float64)

    def save(self, path: str | Path) -> Path:
        """Write the matrix and its input settings to one `.npz` file."""
        out = Path(path)
        np.savez(out, matrix=self.matrix, window=self.window, decay=self.decay, name=self.name)
        return out

    @classmethod
    def load(cls, path: str | Path) -> ItemPrior:
        """Read a prior written by `save`."""
        with np.load(Path(path)) as z:
            return cls(
                np.asarray(z["matrix"], np.float32),
                int(z["window"]),
                float(z["decay"]),
                str(z["name"]),
            )

"""Case memory keyed by the learned state: the K nearest past situations vote for what followed.

A case is one training prefix: key = its state s_t (d,), payload = the item that followed
(a_t), ts = when that item was logged. For a decision at time T with state s, the bank returns
the K most similar cases logged strictly before T (an as-of search: only the past of the
decision), and

    vote(s, i) = sum_k max(sim_k, 0) * [a_k = i] / sum_k max(sim_k, 0)          (N,), sums to 1

so an item that followed several similar situations gets their summed similarity (count- and
similarity-weighted). The policy adds it to Q with a weight chosen on validation; weight 0
switches memory off. Storage and search are the project's `CaseBank` (cosine over normalised
keys, faiss behind `recsys.memory.faiss_index`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recsys.config import CaseBankConfig
from recsys.memory.case_bank import CaseBank
from recsys.records import Case

__all__ = ["CaseVote"]


class CaseVote:
    """A case bank of (state, next item, time) and the vote it casts over N items."""

    def __init__(self, dim: int, n_items: int) -> None:
        cfg = CaseBankConfig(index="flat", normalize=True, merge_threshold=1.01, capacity=0)
        self.bank = CaseBank(cfg, dim)
        self.n_items = n_items
        self._next: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.bank)

    def save(self, folder: str | Path) -> None:
        """Write the bank (`CaseBank.save`); each case's payload holds its next item."""
        self.bank.save(folder)

    @classmethod
    def load(cls, folder: str | Path, n_items: int) -> CaseVote:
        """Reopen a memory written by `save` that votes over `n_items` items."""
        bank = CaseBank.load(folder)
        out = cls.__new__(cls)
        out.bank, out.n_items = bank, n_items
        out._next = {cid: int(bank.get(cid).payload["next"]) for cid in bank.ids()}
        return out

    def write(self, states: np.ndarray, next_items: np.ndarray, ts: np.ndarray) -> None:
        """Store M cases: states (M, d), next_items (M,) in 1..N, ts (M,) unix seconds."""
        assert states.ndim == 2 and len(states) == len(next_items) == len(ts), (
            f"{states.shape=} {next_items.shape=} {ts.shape=}"
        )
        cases = [
            Case(
                key=states[m],
                payload={"next": int(next_items[m])},
                ts=float(ts[m]),
            )
            for m in range(len(states))
        ]
        ids = self.bank.write_batch(cases)
        for cid, item in zip(ids, next_items, strict=True):
            self._next[cid] = int(item)

    def neighbours(self, query: np.ndarray, k: int, before: float) -> tuple[np.ndarray, np.ndarray]:
        """(sims (k',), next items (k',)) of the k nearest cases logged before `before`, best
        first (k' < k when the past holds fewer cases)."""
        found = self.bank.search(np.asarray(query, np.float32), k=k, now=before, before=before)
        items = np.array([self._next[int(c)] for c in found.case_ids], np.int64)
        return found.sims.astype(np.float64), items

    def votes(
        self, queries: np.ndarray, before: np.ndarray, ks: Sequence[int]
    ) -> dict[int, np.ndarray]:
        """{k: (R, N) vote} for (R, d) states and (R,) decision times, one search at max(ks) per
        row; column i - 1 is item i; a row with no earlier case (or no positive similarity) is
        all zero."""
        assert queries.ndim == 2 and len(queries) == len(before), (
            f"{queries.shape=} {before.shape=}"
        )
        out = {k: np.zeros((len(queries), self.n_items)) for k in ks}
        for r in range(len(queries)):
            sims, items = self.neighbours(queries[r], max(ks), float(before[r]))
            for k in ks:
                w = np.maximum(sims[:k], 0.0)
                if w.sum() > 0:
                    np.add.at(out[k][r], items[:k] - 1, w / w.sum())
        return out

"""`ItemCatalog`: item ids <-> rows, titles, text-encoded item vectors and popularity.

Items come from a canonical `items.parquet` (item_id, title) when one is given; any other item
id seen in events, cases or feedback is added on first sight with its id as title. Vectors are
encoded with the model's text encoder once per item (titles are fixed) and kept in one growing
(n, d) float32 matrix, so the state encoder and the neighbour search never re-encode.
Thread-safe: one lock around every mutation and every read of the matrix.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from recsys.memory.text_encoder import TextEncoder


def read_items_parquet(path: Path) -> dict[str, str]:
    """item_id (as string) -> title from a canonical `items.parquet`."""
    import polars as pl

    df = pl.read_parquet(path, columns=["item_id", "title"])
    return {
        str(i): (t if isinstance(t, str) and t.strip() else str(i))
        for i, t in zip(df["item_id"].to_list(), df["title"].to_list(), strict=True)
    }


class ItemCatalog:
    """Item rows with titles, vectors (L2-normalised) and event popularity."""

    def __init__(self, encoder: TextEncoder, titles: dict[str, str] | None = None) -> None:
        self.encoder = encoder
        self.dim = encoder.dim
        self._lock = threading.RLock()
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._titles: list[str] = []
        self._vecs = np.zeros((1024, self.dim), np.float32)
        self.popularity: Counter[str] = Counter()
        self._popular: list[str] | None = None
        if titles:
            self._add(list(titles), titles)

    def __len__(self) -> int:
        return len(self._ids)

    def _add(self, ids: Sequence[str], titles: dict[str, str] | None = None) -> None:
        new = [i for i in dict.fromkeys(ids) if i not in self._row]
        if not new:
            return
        texts = [(titles or {}).get(i) or i for i in new]
        vecs = self.encoder.encode(texts)
        assert vecs.shape == (len(new), self.dim), f"{vecs.shape=} {self.dim=}"
        n = len(self._ids)
        if n + len(new) > len(self._vecs):
            grown = np.zeros((max(2 * len(self._vecs), n + len(new)), self.dim), np.float32)
            grown[:n] = self._vecs[:n]
            self._vecs = grown
        self._vecs[n : n + len(new)] = vecs
        for k, (i, t) in enumerate(zip(new, texts, strict=True)):
            self._row[i] = n + k
            self._ids.append(i)
            self._titles.append(t)

    def ensure(self, ids: Iterable[str]) -> None:
        """Add unknown ids (title = id)."""
        with self._lock:
            self._add(list(ids))

    def rows(self, ids: Sequence[str]) -> list[int]:
        """Row of each id (adding unknown ones)."""
        with self._lock:
            self._add(ids)
            return [self._row[i] for i in ids]

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """(n, d) vectors of the ids; unknown ids are encoded but NOT added (request input
        must not grow the catalog: stored events and cases add items, see `ensure`)."""
        with self._lock:
            unknown = [i for i in dict.fromkeys(ids) if i not in self._row]
            extra = dict(zip(unknown, self.encoder.encode(unknown), strict=True)) if unknown else {}
            out = np.zeros((len(ids), self.dim), np.float32)
            for k, i in enumerate(ids):
                row = self._row.get(i)
                out[k] = self._vecs[row] if row is not None else extra[i]
            return out

    def known_rows(self, ids: Iterable[str]) -> list[int]:
        """Rows of the ids already in the catalog (unknown ones skipped, nothing added)."""
        with self._lock:
            return [self._row[i] for i in ids if i in self._row]

    def titles(self, ids: Sequence[str]) -> list[str]:
        """Titles of the ids (the id itself when unknown)."""
        with self._lock:
            return [self._titles[self._row[i]] if i in self._row else i for i in ids]

    def title(self, item_id: str) -> str:
        """One title."""
        return self.titles([item_id])[0]

    def id_of(self, row: int) -> str:
        """Item id of a row."""
        return self._ids[row]

    def matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(row ids (n,), vectors (n, d)) as views of the current rows (no copy)."""
        with self._lock:
            n = len(self._ids)
            return np.arange(n, dtype=np.int64), self._vecs[:n]

    def count(self, item_ids: Iterable[str]) -> None:
        """Add events to the popularity counts."""
        with self._lock:
            self.popularity.update(item_ids)
            self._popular = None

    def reset_popularity(self, item_ids: Iterable[str]) -> None:
        """Recount popularity from scratch (after an erasure)."""
        with self._lock:
            self.popularity = Counter(item_ids)
            self._popular = None

    def popular(self, n: int, exclude: set[str]) -> list[str]:
        """The n most frequent items not excluded (catalog order once counts run out)."""
        with self._lock:
            if self._popular is None:
                ranked = [i for i, _ in self.popularity.most_common(500)]
                seen = set(ranked)
                ranked += [i for i in self._ids[:500] if i not in seen]
                self._popular = ranked
            cached = self._popular
        return [i for i in cached if i not in exclude][:n]

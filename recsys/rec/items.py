"""`ItemTable`: the catalogue a model recommends from (ids, titles, vectors), row-indexed.

An item is recommendable only if it is in the table: the table comes with the model bundle
(and, in serving, from a catalogue file); events or cases naming other ids never add to it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recsys.llm.prompts import detect_lang

__all__ = ["ItemTable", "TableTitleEncoder"]


class ItemTable:
    """Rows 0..I-1 of items: string ids, titles and L2-normalised (I, d) float32 vectors."""

    def __init__(self, ids: Sequence[str], titles: Sequence[str], vecs: np.ndarray) -> None:
        assert len(ids) == len(titles) == vecs.shape[0], f"{len(ids)=} {len(titles)=} {vecs.shape=}"
        self.ids = [str(i) for i in ids]
        self.titles = [str(t) for t in titles]
        self.vecs = np.ascontiguousarray(vecs, np.float32)
        self.row_of = {i: r for r, i in enumerate(self.ids)}
        assert len(self.row_of) == len(self.ids), "duplicate item ids"
        self._lock = threading.Lock()
        self.lang = detect_lang("".join(self.titles[:200]))

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.row_of

    @property
    def dim(self) -> int:
        """Vector width d."""
        return int(self.vecs.shape[1])

    def rows(self, item_ids: Sequence[str]) -> list[int]:
        """Rows of the ids that are in the table (unknown ids are skipped)."""
        return [self.row_of[i] for i in item_ids if i in self.row_of]

    def vectors(self, item_ids: Sequence[str]) -> np.ndarray:
        """(n, d) vectors of known ids (`StateEncoder`'s item-vector callable)."""
        return self.vecs[[self.row_of[i] for i in item_ids]]

    def titles_of(self, item_ids: Sequence[str]) -> list[str]:
        """Titles (the id itself for an unknown id)."""
        return [self.titles[self.row_of[i]] if i in self.row_of else i for i in item_ids]

    def extend(self, ids: Sequence[str], titles: Sequence[str], vecs: np.ndarray) -> int:
        """Add catalogue items not yet in the table; returns how many were added."""
        new = [k for k, i in enumerate(ids) if str(i) not in self.row_of]
        if not new:
            return 0
        assert vecs.shape[1] == self.dim, f"{vecs.shape=} {self.dim=}"
        v = vecs[new].astype(np.float32)
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        with self._lock:
            for k in new:
                self.row_of[str(ids[k])] = len(self.ids)
                self.ids.append(str(ids[k]))
                self.titles.append(str(titles[k]))
            self.vecs = np.concatenate([self.vecs, v])
        return len(new)

    def save(self, folder: Path) -> None:
        """`items.parquet` (item_id, title) and `item_vecs.npy`."""
        import polars as pl

        pl.DataFrame(
            {"item_id": self.ids, "title": self.titles},
            schema={"item_id": pl.String, "title": pl.String},
        ).write_parquet(folder / "items.parquet")
        np.save(folder / "item_vecs.npy", self.vecs)

    @classmethod
    def load(cls, folder: Path) -> ItemTable:
        """Inverse of `save`."""
        import polars as pl

        df = pl.read_parquet(folder / "items.parquet")
        vecs = np.load(folder / "item_vecs.npy")
        return cls(df["item_id"].cast(pl.String).to_list(), df["title"].to_list(), vecs)


class TableTitleEncoder:
    """A `TextEncoder` over the table's item vectors keyed by title, so case keys use the same
    item vectors as the state (collaborative vectors included); an unknown title -> zeros.
    Several items with one title: the last one's vector."""

    def __init__(self, table: ItemTable) -> None:
        self._table = table
        self._row: dict[str, int] = {}
        self._size = -1

    @property
    def name(self) -> str:
        """Encoder name."""
        return "item-table"

    @property
    def dim(self) -> int:
        """Vector width."""
        return self._table.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Rows of the titles' items (the title map is rebuilt only when the table grew)."""
        t = self._table
        if self._size != len(t):
            self._row = {title: r for r, title in enumerate(t.titles)}
            self._size = len(t)
        out = np.zeros((len(texts), t.dim), np.float32)
        for k, text in enumerate(texts):
            row = self._row.get(text)
            if row is not None:
                out[k] = t.vecs[row]
        return out

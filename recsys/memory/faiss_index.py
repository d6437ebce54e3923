"""`FaissIndex`: the one faiss adapter (the only module that imports faiss).

Inner-product indexes with int64 ids via `IndexIDMap2` (flat, HNSW or IVF-flat); faiss pads
missing hits with -1 (filtered here); tombstones stand in for indexes that cannot remove ids
(HNSW). A search asks faiss for k + (tombstones) hits, so once the tombstones outnumber the
live vectors (and `COMPACT_MIN`) the index is rebuilt from its live vectors: a served bank at
its capacity evicts a case per case written, and without the rebuild every search would walk
the whole history of evicted cases (`memento bench online`, planted, 20,000 decisions: 10,000
live cases, ~190,000 tombstones, 22 ms of a 26 ms recommend).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from recsys.config import CaseBankConfig
from recsys.errors import CaseBankError

__all__ = ["COMPACT_MIN", "FaissIndex"]

COMPACT_MIN = 1024
"""Tombstones below this never trigger a rebuild (small banks keep their index)."""


class FaissIndex:
    """Inner-product faiss index with int64 ids (flat, HNSW or IVF-flat)."""

    def __init__(self, cfg: CaseBankConfig, dim: int, index: Any = None) -> None:
        self.cfg = cfg
        self.dim = dim
        self._tomb: set[int] = set()
        if index is not None:
            self.index = index
        elif cfg.index == "flat":
            self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        elif cfg.index == "hnsw":
            base = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            base.hnsw.efConstruction = cfg.hnsw_ef_construction
            self.index = faiss.IndexIDMap2(base)
        elif cfg.index == "ivf":
            quant = faiss.IndexFlatIP(dim)
            ivf = faiss.IndexIVFFlat(quant, dim, cfg.ivf_nlist, faiss.METRIC_INNER_PRODUCT)
            self.index = faiss.IndexIDMap2(ivf)
            self._quant = quant  # keep the quantizer alive
        else:
            raise CaseBankError(f"unknown index kind {cfg.index!r}")
        self._tune()

    def _tune(self) -> None:
        base = faiss.downcast_index(self.index.index)
        if isinstance(base, faiss.IndexHNSW):
            base.hnsw.efSearch = self.cfg.hnsw_ef_search
        if isinstance(base, faiss.IndexIVF):
            base.nprobe = self.cfg.ivf_nprobe

    @property
    def ntotal(self) -> int:
        """Live vectors (tombstoned ones excluded)."""
        return int(self.index.ntotal) - len(self._tomb)

    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        """Add (n,) int64 ids with (n, d) vectors; trains an untrained IVF on this batch."""
        assert vecs.ndim == 2 and vecs.shape[1] == self.dim, f"{vecs.shape=} {self.dim=}"
        vecs = np.ascontiguousarray(vecs, np.float32)
        if not self.index.is_trained:
            if len(vecs) < self.cfg.ivf_nlist:
                raise CaseBankError(
                    f"IVF needs >= {self.cfg.ivf_nlist} vectors in its first batch, got {len(vecs)}"
                )
            self.index.train(vecs)
        self.index.add_with_ids(vecs, np.ascontiguousarray(ids, np.int64))

    def remove(self, ids: Sequence[int]) -> None:
        """Remove ids (tombstones when the index cannot remove, e.g. HNSW)."""
        arr = np.asarray(list(ids), np.int64)
        if arr.size == 0:
            return
        try:
            self.index.remove_ids(arr)
        except RuntimeError:
            self._tomb.update(int(i) for i in arr)
            if len(self._tomb) >= max(COMPACT_MIN, self.ntotal):
                self._compact()

    def _compact(self) -> None:
        """Rebuild the index from its live vectors, in insertion order (the tombstones go)."""
        base = faiss.downcast_index(self.index.index)
        ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        vecs = base.reconstruct_n(0, int(base.ntotal))
        keep = ~np.isin(ids, np.fromiter(self._tomb, np.int64, len(self._tomb)))
        fresh = FaissIndex(self.cfg, self.dim)
        if keep.any():
            fresh.add(ids[keep], vecs[keep])
        self.index, self._tomb = fresh.index, set()

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(B, d) queries -> (sims (B, k) float32, ids (B, k) int64) with -1 padding."""
        assert queries.ndim == 2 and queries.shape[1] == self.dim, f"{queries.shape=}"
        q = np.ascontiguousarray(queries, np.float32)
        if self.index.ntotal == 0 or k <= 0:
            b = len(q)
            return np.zeros((b, max(k, 0)), np.float32), np.full((b, max(k, 0)), -1, np.int64)
        kk = min(k + len(self._tomb), int(self.index.ntotal))
        sims, ids = self.index.search(q, kk)
        if self._tomb:
            dead = np.isin(ids, np.fromiter(self._tomb, np.int64))
            ids = np.where(dead, -1, ids)
            order = np.argsort(ids == -1, axis=1, kind="stable")
            ids = np.take_along_axis(ids, order, 1)
            sims = np.take_along_axis(sims, order, 1)
        out_s = np.zeros((len(q), k), np.float32)
        out_i = np.full((len(q), k), -1, np.int64)
        w = min(k, ids.shape[1])
        out_s[:, :w], out_i[:, :w] = sims[:, :w], ids[:, :w]
        out_s[out_i < 0] = 0.0
        return out_s, out_i

    def nbytes(self) -> int:
        """Serialized size of the index in bytes."""
        return int(faiss.serialize_index(self.index).size)

    def save(self, path: Path) -> None:
        """Write the index (tombstones in a side file)."""
        faiss.write_index(self.index, str(path))
        path.with_suffix(".tomb.json").write_text(json.dumps(sorted(self._tomb)))

    @classmethod
    def load(cls, cfg: CaseBankConfig, dim: int, path: Path) -> FaissIndex:
        """Read an index written by `save`."""
        idx = cls(cfg, dim, index=faiss.read_index(str(path)))
        tomb = path.with_suffix(".tomb.json")
        if tomb.exists():
            idx._tomb = set(json.loads(tomb.read_text()))
        return idx

    @staticmethod
    def set_threads(n: int) -> None:
        """faiss OpenMP threads."""
        faiss.omp_set_num_threads(n)
